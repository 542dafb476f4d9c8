/*
 * rwlock.c — the phase-fair reader–writer lock of thread.h, built on the platform's mutex and
 * condition variables (so it is the same algorithm on every platform).
 *
 * Rules:
 *  - A reader enters when no writer holds the lock and either no writer waits or it is the
 *    readers' turn.
 *  - A writer enters when nobody holds the lock and it is not the readers' turn.
 *  - A leaving writer gives the turn to the readers waiting at that moment, if any; the turn
 *    ends when the last of them has entered.
 */
#include "os/thread.h"

int iqdb__rwlock_init(iqdb__rwlock *l) {
    l->readers = l->waiting_readers = l->waiting_writers = 0;
    l->writer = l->read_turn = 0;
    if (iqdb__mutex_init(&l->m)) return 1;
    if (iqdb__cond_init(&l->rcond)) {
        iqdb__mutex_destroy(&l->m);
        return 1;
    }
    if (iqdb__cond_init(&l->wcond)) {
        iqdb__cond_destroy(&l->rcond);
        iqdb__mutex_destroy(&l->m);
        return 1;
    }
    return 0;
}

void iqdb__rwlock_destroy(iqdb__rwlock *l) {
    iqdb__cond_destroy(&l->wcond);
    iqdb__cond_destroy(&l->rcond);
    iqdb__mutex_destroy(&l->m);
}

void iqdb__rwlock_rdlock(iqdb__rwlock *l) {
    iqdb__mutex_lock(&l->m);
    l->waiting_readers++;
    while (l->writer || (l->waiting_writers > 0 && !l->read_turn))
        iqdb__cond_wait(&l->rcond, &l->m);
    l->waiting_readers--;
    l->readers++;
    if (l->waiting_readers == 0) l->read_turn = 0;
    iqdb__mutex_unlock(&l->m);
}

void iqdb__rwlock_rdunlock(iqdb__rwlock *l) {
    iqdb__mutex_lock(&l->m);
    l->readers--;
    if (l->readers == 0 && l->waiting_writers > 0 && !l->read_turn) iqdb__cond_signal(&l->wcond);
    iqdb__mutex_unlock(&l->m);
}

void iqdb__rwlock_wrlock(iqdb__rwlock *l) {
    iqdb__mutex_lock(&l->m);
    l->waiting_writers++;
    while (l->writer || l->readers > 0 || l->read_turn) iqdb__cond_wait(&l->wcond, &l->m);
    l->waiting_writers--;
    l->writer = 1;
    iqdb__mutex_unlock(&l->m);
}

void iqdb__rwlock_wrunlock(iqdb__rwlock *l) {
    iqdb__mutex_lock(&l->m);
    l->writer = 0;
    if (l->waiting_readers > 0) {
        l->read_turn = 1;
        iqdb__cond_broadcast(&l->rcond);
    } else if (l->waiting_writers > 0) {
        iqdb__cond_signal(&l->wcond);
    }
    iqdb__mutex_unlock(&l->m);
}
