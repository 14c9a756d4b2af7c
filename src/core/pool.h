/* A fixed pool of worker threads running queued jobs in FIFO order. */
#ifndef MCPGATE_CORE_POOL_H
#define MCPGATE_CORE_POOL_H

#include "core/err.h"

struct pool;
typedef void (*pool_job_fn)(void *arg);

/* nthreads workers to start with (0: one per core); grows to max_threads under blocking. */
struct pool *pool_new(unsigned nthreads);
/* Queues fn(arg). Never blocks; the queue is bounded by the callers' own limits. */
void pool_submit(struct pool *p, pool_job_fn fn, void *arg);
/* Runs every queued job, then joins the threads and frees the pool. NULL is a no-op. */
void pool_free(struct pool *p);
unsigned pool_default_size(void);
/* A job about to block (waiting for a client, sleeping) calls enter, and exit when it resumes.
 * While every worker is blocked or busy and work is queued, the pool adds a thread (up to its
 * maximum), so blocking handlers cannot starve the others. */
void pool_block_enter(struct pool *p);
void pool_block_exit(struct pool *p);

#endif
