/* SPDX-License-Identifier: MIT */
/* lock.c - 4-byte mutex and reader/writer lock built on futexes.
 *
 * Why not pthread's: a pthread_rwlock_t is 56 bytes and every file has one;
 * a filesystem with millions of small files pays that for locks that are
 * almost never contended.  These locks are one 32-bit word: an uncontended
 * acquire is one compare-and-swap, and a thread only sleeps in the kernel
 * (futex) after a short spin.
 *
 * Reader/writer word:
 *   bits 0..28  number of readers holding the lock
 *   bit  29     SLEEP:  somebody sleeps on the word; unlockers must wake
 *   bit  30     WWAIT:  a writer waits; new readers hold back (no writer
 *                       starvation under a stream of readers)
 *   bit  31     WRITER: a writer holds the lock
 * Wakeups wake everybody; contention is rare, and a woken thread simply
 * retries.  Acquire/release orderings on the word give the happens-before
 * edges (and let ThreadSanitizer see them).  tests/lock_model.py searches
 * every interleaving of a model of these four functions for two holders
 * at once and for a lost wake-up.
 */
#include "sectorfs/engine.h"

#include "os.h"

#define RW_READERS 0x1fffffffu
#define RW_SLEEP 0x20000000u
#define RW_WWAIT 0x40000000u
#define RW_WRITER 0x80000000u

enum { SPIN_LIMIT = 100 };

/* ---- mutex: 0 free, 1 held, 2 held and someone may sleep ---- */

bool lk_trylock(struct lk_mutex *m)
{
	uint32_t expected = 0;
	return atomic_compare_exchange_strong_explicit(&m->state, &expected, 1,
	                                               memory_order_acquire,
	                                               memory_order_relaxed);
}

void lk_lock(struct lk_mutex *m)
{
	if (lk_trylock(m))
		return;
	for (int i = 0; i < SPIN_LIMIT; i++) {
		os_cpu_relax();
		if (atomic_load_explicit(&m->state, memory_order_relaxed) == 0 && lk_trylock(m))
			return;
	}
	while (atomic_exchange_explicit(&m->state, 2, memory_order_acquire) != 0)
		os_futex_wait(&m->state, 2);
}

void lk_unlock(struct lk_mutex *m)
{
	if (atomic_exchange_explicit(&m->state, 0, memory_order_release) == 2)
		os_futex_wake_all(&m->state);
}

/* ---- reader/writer lock ---- */

/* Sleep until the word changes from `seen`, after announcing SLEEP. */
static void rw_sleep(struct lk_rwlock *l, uint32_t seen)
{
	if (!(seen & RW_SLEEP)) {
		if (!atomic_compare_exchange_strong_explicit(&l->state, &seen, seen | RW_SLEEP,
		                                             memory_order_relaxed,
		                                             memory_order_relaxed))
			return; /* changed under us: let the caller retry */
		seen |= RW_SLEEP;
	}
	os_futex_wait(&l->state, seen);
}

void lk_rdlock(struct lk_rwlock *l)
{
	int spins = 0;
	for (;;) {
		uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
		if (!(s & (RW_WRITER | RW_WWAIT))) {
			if (atomic_compare_exchange_weak_explicit(&l->state, &s, s + 1,
			                                          memory_order_acquire,
			                                          memory_order_relaxed))
				return;
			continue;
		}
		if (spins++ < SPIN_LIMIT) {
			os_cpu_relax();
			continue;
		}
		rw_sleep(l, s);
	}
}

void lk_rdunlock(struct lk_rwlock *l)
{
	uint32_t s = atomic_fetch_sub_explicit(&l->state, 1, memory_order_release) - 1;
	/* The last reader out wakes sleepers (a waiting writer, and readers
	 * that held back for it). */
	while ((s & RW_READERS) == 0 && (s & RW_SLEEP)) {
		if (atomic_compare_exchange_weak_explicit(&l->state, &s, s & ~RW_SLEEP,
		                                          memory_order_relaxed,
		                                          memory_order_relaxed)) {
			os_futex_wake_all(&l->state);
			return;
		}
	}
}

void lk_wrlock(struct lk_rwlock *l)
{
	int spins = 0;
	for (;;) {
		uint32_t s = atomic_load_explicit(&l->state, memory_order_relaxed);
		if (!(s & (RW_READERS | RW_WRITER))) {
			/* Take it; clear WWAIT (other waiting writers set it again). */
			uint32_t want = (s | RW_WRITER) & ~RW_WWAIT;
			if (atomic_compare_exchange_weak_explicit(&l->state, &s, want,
			                                          memory_order_acquire,
			                                          memory_order_relaxed))
				return;
			continue;
		}
		if (!(s & RW_WWAIT)) {
			atomic_compare_exchange_weak_explicit(&l->state, &s, s | RW_WWAIT,
			                                      memory_order_relaxed,
			                                      memory_order_relaxed);
			continue;
		}
		if (spins++ < SPIN_LIMIT) {
			os_cpu_relax();
			continue;
		}
		rw_sleep(l, s);
	}
}

void lk_wrunlock(struct lk_rwlock *l)
{
	/* No reader can hold the lock now; WWAIT and SLEEP belong to waiters,
	 * who will set them again if they still need to. */
	uint32_t s = atomic_exchange_explicit(&l->state, 0, memory_order_release);
	if (s & RW_SLEEP)
		os_futex_wake_all(&l->state);
}
