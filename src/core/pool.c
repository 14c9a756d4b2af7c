#include "core/pool.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/xmalloc.h"

struct job {
    pool_job_fn fn;
    void *arg;
    struct job *next;
};

static void *worker(void *arg);
struct pool;
static void spawn(struct pool *p);

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    struct job *free_jobs; /* recycled job records */
    bool stopping;
    unsigned base, nthreads, max_threads; /* wanted runnable; started; cap */
    unsigned nidle, nblocked;
    pthread_t *threads;
};

/* Workers that are neither blocked nor running a job are idle; while fewer than base workers
 * can run (the rest are blocked) and there is work for them, start another. mu held. */
static void maybe_grow(struct pool *p)
{
    if (p->head != NULL && p->nidle == 0 && p->nthreads - p->nblocked < p->base &&
        p->nthreads < p->max_threads && !p->stopping)
        spawn(p);
}

static void spawn(struct pool *p)
{
    if (pthread_create(&p->threads[p->nthreads], NULL, worker, p) != 0)
        abort();
    p->nthreads++;
}

static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        p->nidle++;
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
        p->nidle--;
        struct job *j = p->head;
        if (j == NULL)
            break; /* stopping and drained */
        p->head = j->next;
        if (p->head == NULL)
            p->tail = NULL;
        pool_job_fn fn = j->fn;
        void *jarg = j->arg;
        j->next = p->free_jobs;
        p->free_jobs = j;
        pthread_mutex_unlock(&p->mu);
        fn(jarg);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

unsigned pool_default_size(void)
{
    /* One per core: handlers that block make the pool grow (pool_block_enter). */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 2 : (unsigned)n;
}

#define POOL_MAX_THREADS 256

void pool_block_enter(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->nblocked++;
    maybe_grow(p);
    pthread_mutex_unlock(&p->mu);
}

void pool_block_exit(struct pool *p)
{
    pthread_mutex_lock(&p->mu);
    p->nblocked--;
    pthread_mutex_unlock(&p->mu);
}

struct pool *pool_new(unsigned nthreads)
{
    struct pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    unsigned start = nthreads ? nthreads : pool_default_size();
    p->base = start;
    p->max_threads = start > POOL_MAX_THREADS ? start : POOL_MAX_THREADS;
    p->threads = xcalloc(p->max_threads, sizeof(*p->threads));
    pthread_mutex_lock(&p->mu);
    for (unsigned i = 0; i < start; i++)
        spawn(p);
    pthread_mutex_unlock(&p->mu);
    return p;
}

void pool_submit(struct pool *p, pool_job_fn fn, void *arg)
{
    pthread_mutex_lock(&p->mu);
    struct job *j = p->free_jobs;
    if (j != NULL)
        p->free_jobs = j->next;
    else
        j = xmalloc(sizeof(*j));
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    if (p->tail != NULL)
        p->tail->next = j;
    else
        p->head = j;
    p->tail = j;
    maybe_grow(p);
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

void pool_free(struct pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    unsigned n = p->nthreads; /* no spawns after stopping: blocked jobs have all returned */
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < n; i++)
        pthread_join(p->threads[i], NULL);
    pthread_mutex_lock(&p->mu);
    while (p->free_jobs != NULL) {
        struct job *j = p->free_jobs;
        p->free_jobs = j->next;
        free(j);
    }
    pthread_mutex_unlock(&p->mu);
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
