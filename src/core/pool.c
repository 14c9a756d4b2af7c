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

struct pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *head, *tail;
    struct job *free_jobs; /* recycled job records */
    bool stopping;
    unsigned nthreads;
    pthread_t *threads;
};

static void *worker(void *arg)
{
    struct pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->cv, &p->mu);
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
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    /* Handlers may block (awaiting a client's answer), so keep a few more than the cores. */
    return n < 1 ? 4 : (unsigned)n * 2 + 2;
}

struct pool *pool_new(unsigned nthreads)
{
    struct pool *p = xcalloc(1, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->nthreads = nthreads ? nthreads : pool_default_size();
    p->threads = xcalloc(p->nthreads, sizeof(*p->threads));
    for (unsigned i = 0; i < p->nthreads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0)
            abort();
    }
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
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    while (p->free_jobs != NULL) {
        struct job *j = p->free_jobs;
        p->free_jobs = j->next;
        free(j);
    }
    free(p->threads);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
