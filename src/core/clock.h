/* Time for timeouts and waits: a monotonic millisecond clock, and a condition-variable wait
 * bounded in milliseconds (pthread_cond_timedwait takes an absolute CLOCK_REALTIME time). */
#ifndef MCPGATE_CORE_CLOCK_H
#define MCPGATE_CORE_CLOCK_H

#include <pthread.h>
#include <time.h>

/* Milliseconds of CLOCK_MONOTONIC. */
long long clock_ms(void);
/* The CLOCK_REALTIME time ms milliseconds from now (pthread_cond_timedwait's kind). */
struct timespec clock_deadline(long ms);
/* Waits on cv (mu held) for at most ms milliseconds; returns pthread_cond_timedwait's result. */
int cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, long ms);

#endif
