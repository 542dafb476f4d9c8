/*
 * thread_win32.c — thread.h over Win32 (critical sections, condition variables, InitOnce).
 */
#if defined(_WIN32)
#include "os/thread.h"

int iqdb__mutex_init(iqdb__mutex *m) {
    InitializeCriticalSection(m);
    return 0;
}
void iqdb__mutex_destroy(iqdb__mutex *m) { DeleteCriticalSection(m); }
void iqdb__mutex_lock(iqdb__mutex *m) { EnterCriticalSection(m); }
void iqdb__mutex_unlock(iqdb__mutex *m) { LeaveCriticalSection(m); }

int iqdb__cond_init(iqdb__cond *c) {
    InitializeConditionVariable(c);
    return 0;
}
void iqdb__cond_destroy(iqdb__cond *c) { (void)c; }
void iqdb__cond_wait(iqdb__cond *c, iqdb__mutex *m) { SleepConditionVariableCS(c, m, INFINITE); }
int iqdb__cond_timedwait(iqdb__cond *c, iqdb__mutex *m, uint32_t ms) {
    if (SleepConditionVariableCS(c, m, ms)) return 0;
    return GetLastError() == ERROR_TIMEOUT;
}
void iqdb__cond_signal(iqdb__cond *c) { WakeConditionVariable(c); }
void iqdb__cond_broadcast(iqdb__cond *c) { WakeAllConditionVariable(c); }

typedef struct thread_start {
    void *(*fn)(void *);
    void *arg;
} thread_start;

static DWORD WINAPI trampoline(LPVOID p) {
    thread_start s = *(thread_start *)p;
    HeapFree(GetProcessHeap(), 0, p);
    s.fn(s.arg);
    return 0;
}

int iqdb__thread_create(iqdb__thread *t, void *(*fn)(void *), void *arg) {
    /* The start record comes from the process heap, not the handle allocator: it is freed by the
     * new thread and never counted. */
    thread_start *s = HeapAlloc(GetProcessHeap(), 0, sizeof *s);
    if (!s) return 1;
    s->fn = fn;
    s->arg = arg;
    HANDLE h = CreateThread(NULL, 0, trampoline, s, 0, NULL);
    if (!h) {
        HeapFree(GetProcessHeap(), 0, s);
        return 1;
    }
    *t = h;
    return 0;
}
void iqdb__thread_yield(void) { SwitchToThread(); }

void iqdb__thread_join(iqdb__thread t) {
    WaitForSingleObject(t, INFINITE);
    CloseHandle(t);
}

static BOOL CALLBACK once_tramp(PINIT_ONCE o, PVOID fn, PVOID *ctx) {
    (void)o;
    (void)ctx;
    ((void (*)(void))fn)();
    return TRUE;
}
void iqdb__call_once(iqdb__once *o, void (*fn)(void)) {
    InitOnceExecuteOnce(o, once_tramp, (PVOID)fn, NULL);
}

unsigned iqdb__cpu_count(void) {
    SYSTEM_INFO si;
    GetSystemInfo(&si);
    return si.dwNumberOfProcessors < 1 ? 1u : (unsigned)si.dwNumberOfProcessors;
}

uint64_t iqdb__now_ns(void) {
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (uint64_t)((double)c.QuadPart * 1e9 / (double)f.QuadPart);
}
#endif
