/*
 * thread_posix.c — thread.h over pthreads.
 */
#if !defined(_WIN32)
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "os/thread.h"

int iqdb__mutex_init(iqdb__mutex *m) { return pthread_mutex_init(m, NULL); }
void iqdb__mutex_destroy(iqdb__mutex *m) { pthread_mutex_destroy(m); }
void iqdb__mutex_lock(iqdb__mutex *m) { pthread_mutex_lock(m); }
void iqdb__mutex_unlock(iqdb__mutex *m) { pthread_mutex_unlock(m); }

int iqdb__cond_init(iqdb__cond *c) {
    pthread_condattr_t a;
    if (pthread_condattr_init(&a)) return 1;
#if !defined(__APPLE__)
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
#endif
    int rc = pthread_cond_init(c, &a);
    pthread_condattr_destroy(&a);
    return rc;
}
void iqdb__cond_destroy(iqdb__cond *c) { pthread_cond_destroy(c); }
void iqdb__cond_wait(iqdb__cond *c, iqdb__mutex *m) { pthread_cond_wait(c, m); }
void iqdb__cond_signal(iqdb__cond *c) { pthread_cond_signal(c); }
void iqdb__cond_broadcast(iqdb__cond *c) { pthread_cond_broadcast(c); }

int iqdb__cond_timedwait(iqdb__cond *c, iqdb__mutex *m, uint32_t ms) {
    struct timespec ts;
#if defined(__APPLE__)
    clock_gettime(CLOCK_REALTIME, &ts);
#else
    clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(c, m, &ts) == ETIMEDOUT;
}

int iqdb__thread_create(iqdb__thread *t, void *(*fn)(void *), void *arg) {
    return pthread_create(t, NULL, fn, arg);
}
void iqdb__thread_join(iqdb__thread t) { pthread_join(t, NULL); }

void iqdb__thread_yield(void) { sched_yield(); }

void iqdb__call_once(iqdb__once *o, void (*fn)(void)) { pthread_once(o, fn); }

unsigned iqdb__cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : (unsigned)n;
}

uint64_t iqdb__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
#endif
