/* A fixed pool of worker threads running queued jobs in FIFO order. */
#ifndef MCPGATE_CORE_POOL_H
#define MCPGATE_CORE_POOL_H

#include "core/err.h"

struct pool;
typedef void (*pool_job_fn)(void *arg);

struct pool *pool_new(unsigned nthreads);
/* Queues fn(arg). Never blocks; the queue is bounded by the callers' own limits. */
void pool_submit(struct pool *p, pool_job_fn fn, void *arg);
/* Runs every queued job, then joins the threads and frees the pool. NULL is a no-op. */
void pool_free(struct pool *p);
unsigned pool_default_size(void);

#endif
