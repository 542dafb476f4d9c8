/*
 * thread.h — threads, mutexes, condition variables, a once-flag and the handle's reader–writer
 * lock, over POSIX (thread_posix.c) or Win32 (thread_win32.c).
 *
 * The rwlock is phase-fair: a waiting writer stops new readers from entering, and a writer that
 * leaves while readers wait hands the lock to all of them before the next writer. So a stream
 * of searches cannot starve a writer, and a stream of writes cannot starve searches. (glibc's
 * pthread_rwlock prefers readers by default; Windows' SRW locks promise no order.)
 */
#ifndef IQDB_OS_THREAD_H
#define IQDB_OS_THREAD_H

#include <stdint.h>

#if defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
typedef CRITICAL_SECTION iqdb__mutex;
typedef CONDITION_VARIABLE iqdb__cond;
typedef HANDLE iqdb__thread;
typedef INIT_ONCE iqdb__once;
#define IQDB__ONCE_INIT INIT_ONCE_STATIC_INIT
#else
#include <pthread.h>
typedef pthread_mutex_t iqdb__mutex;
typedef pthread_cond_t iqdb__cond;
typedef pthread_t iqdb__thread;
typedef pthread_once_t iqdb__once;
#define IQDB__ONCE_INIT PTHREAD_ONCE_INIT
#endif

/* Mutex and condition variable. init returns 0 or a non-zero error. */
int iqdb__mutex_init(iqdb__mutex *m);
void iqdb__mutex_destroy(iqdb__mutex *m);
void iqdb__mutex_lock(iqdb__mutex *m);
void iqdb__mutex_unlock(iqdb__mutex *m);
int iqdb__cond_init(iqdb__cond *c);
void iqdb__cond_destroy(iqdb__cond *c);
void iqdb__cond_wait(iqdb__cond *c, iqdb__mutex *m);
/* Waits at most `ms` milliseconds; returns 0 when signalled (or spuriously), 1 on timeout. */
int iqdb__cond_timedwait(iqdb__cond *c, iqdb__mutex *m, uint32_t ms);
void iqdb__cond_signal(iqdb__cond *c);
void iqdb__cond_broadcast(iqdb__cond *c);

/* Threads. create returns 0 or a non-zero error. */
int iqdb__thread_create(iqdb__thread *t, void *(*fn)(void *), void *arg);
void iqdb__thread_join(iqdb__thread t);
/* Gives the CPU to another runnable thread (a spinning waiter whose lock holder may have been
 * preempted). */
void iqdb__thread_yield(void);

/* Runs fn exactly once per process. */
void iqdb__call_once(iqdb__once *o, void (*fn)(void));

/* Number of online CPUs (at least 1). */
unsigned iqdb__cpu_count(void);

/* Monotonic clock in nanoseconds. */
uint64_t iqdb__now_ns(void);

/* ---- phase-fair reader–writer lock ------------------------------------------------------ */
typedef struct iqdb__rwlock {
    iqdb__mutex m;
    iqdb__cond rcond, wcond;
    unsigned readers; /* active readers */
    unsigned waiting_readers;
    unsigned waiting_writers;
    unsigned pending; /* readers admitted by the last writer that have not entered yet */
    uint64_t gen;     /* bumped each time a leaving writer admits the waiting readers */
    int writer;       /* a writer holds the lock */
} iqdb__rwlock;

int iqdb__rwlock_init(iqdb__rwlock *l);
void iqdb__rwlock_destroy(iqdb__rwlock *l);
void iqdb__rwlock_rdlock(iqdb__rwlock *l);
void iqdb__rwlock_rdunlock(iqdb__rwlock *l);
void iqdb__rwlock_wrlock(iqdb__rwlock *l);
void iqdb__rwlock_wrunlock(iqdb__rwlock *l);

#endif /* IQDB_OS_THREAD_H */
