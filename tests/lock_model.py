#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""lock_model.py - every interleaving of engine/lock.c's reader/writer lock.

A model of lk_rdlock/lk_rdunlock/lk_wrlock/lk_wrunlock, one atomic step
per transition: loads, compare-and-swaps, fetch-and-subtract, exchange,
and the futex (wait: compare and sleep in one step; wake: every sleeper).
A spinning thread may retry or go to sleep at each turn.  Each thread runs
a short program of lock-unlock pairs ("R" reads, "W" writes); a
breadth-first search visits every reachable state and fails on

  - two writers, or a writer and a reader, inside at once;
  - a deadlock: no thread can move, yet one has not finished (a lost
    wake-up: somebody asleep whom nobody will wake);
  - a lock word that is not 0 when everyone has finished.

The model must follow lock.c: change one, change the other.  Exit 0 when
every program passes, 1 with the first failure otherwise.
"""
import sys
from collections import deque

READERS, SLEEP, WWAIT, WRITER = 0x1FFFFFFF, 0x20000000, 0x40000000, 0x80000000
MASK = 0xFFFFFFFF


def moves(word, op, pc, s):
    """The steps a thread can take: (new word, new pc, new local, wakes all)."""
    if pc == "start":
        return [(word, "load", 0, False)]
    if pc == "load":
        return [(word, "decide", word, False)]
    if pc == "decide":
        if op == "R":
            if not s & (WRITER | WWAIT):
                return [(s + 1, "inside", 0, False) if word == s else (word, "load", 0, False)]
            return [(word, "load", 0, False), (word, "sleep", s, False)]
        if not s & (READERS | WRITER):
            if word == s:
                return [((s | WRITER) & ~WWAIT, "inside", 0, False)]
            return [(word, "load", 0, False)]
        if not s & WWAIT:
            return [(s | WWAIT if word == s else word, "load", 0, False)]
        return [(word, "load", 0, False), (word, "sleep", s, False)]
    if pc == "sleep":  # rw_sleep: announce SLEEP, then wait while the word is unchanged
        if s & SLEEP:
            return [(word, "futex", s, False)]
        if word == s:
            return [(s | SLEEP, "futex", s | SLEEP, False)]
        return [(word, "load", 0, False)]
    if pc == "futex":
        return [(word, "asleep", s, False) if word == s else (word, "load", 0, False)]
    if pc == "inside":
        return [(word, "unlock", 0, False)]
    if pc == "unlock":
        if op == "W":
            return [(0, "done", 0, bool(word & SLEEP))]
        return [((word - 1) & MASK, "last", (word - 1) & MASK, False)]
    if pc == "last":  # lk_rdunlock's loop: the last reader out clears SLEEP and wakes
        if (s & READERS) == 0 and s & SLEEP:
            if word == s:
                return [(s & ~SLEEP, "done", 0, True)]
            return [(word, "last", word, False)]
        return [(word, "done", 0, False)]
    return []  # asleep: only a wake moves it


def check(programs):
    start = (0, tuple((0, "start", 0) for _ in programs))
    seen, queue = {start}, deque([start])
    while queue:
        word, threads = queue.popleft()
        inside = [programs[i][t[0]] for i, t in enumerate(threads) if t[1] == "inside"]
        if inside.count("W") > 1 or ("W" in inside and "R" in inside):
            return "two inside at once: word %#x, threads %s" % (word, threads)
        moved = False
        for i, (k, pc, s) in enumerate(threads):
            if k >= len(programs[i]):
                continue
            for w2, pc2, s2, wake in moves(word, programs[i][k], pc, s):
                moved = True
                t2 = list(threads)
                t2[i] = (k + 1, "start", 0) if pc2 == "done" else (k, pc2, s2)
                if wake:
                    t2 = [(a, "load", 0) if b == "asleep" else (a, b, c) for a, b, c in t2]
                state = (w2, tuple(t2))
                if state not in seen:
                    seen.add(state)
                    queue.append(state)
        if not moved:
            if any(t[0] < len(programs[i]) for i, t in enumerate(threads)):
                return "deadlock (a lost wake-up): word %#x, threads %s" % (word, threads)
            if word:
                return "word %#x left when all are done" % word
    return None


PROGRAMS = [("R", "R", "W"), ("RR", "R", "W"), ("R", "RW", "W"), ("RW", "RW", "WR"),
            ("RR", "W", "WR"), ("W", "W", "R"), ("WR", "RW", "RR"), ("R", "R", "W", "W")]

if __name__ == "__main__":
    for programs in PROGRAMS:
        failure = check(programs)
        print("%-28s %s" % (" ".join(programs), failure or "ok"))
        if failure:
            sys.exit(1)
