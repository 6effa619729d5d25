"""Batch readers against a writer (issue #6, sparse-hotplug.md §11).

``pfn_valid_many`` runs without the GIL and holds the table's read lock for each chunk of
2**20 pfns; every mutator holds the write lock.  So within one chunk a reader sees the table
between two writes: each section's answers are one of the finitely many bitmaps the writer
passes through, and a multi-section ``sparse_add_range``/``sparse_remove_range`` is seen whole
or not at all.  The writer below walks known states; readers probe a 512-pfn pattern (one pfn
per sub-section of each watched section) repeated so that every chunk holds whole copies.
"""

from __future__ import annotations

import threading
import time

import numpy as np

import sparsemem

PPS = 32768
SUB = 512
KERNEL = "5.3"
A = 40                      # section toggled sub-section by sub-section
B0, NB = 48, 4              # sections added/removed whole, as one range
FRESH0, NFRESH = 256 * 3, 60  # one section in each of 60 fresh roots: forces realloc of the root array
M1 = (1 << 16) - 1          # sub-sections 0..15
M2 = ((1 << 40) - 1) ^ M1   # sub-sections 16..39
LEGAL_A = {0, M1, M1 | M2, M2}
ROUNDS = 1000


def _section_probe(nr):
    return np.arange(64, dtype=np.uint64) * SUB + nr * PPS + 7


def _pattern():
    parts = [_section_probe(1)]                                    # boot memory: always valid
    parts.append(_section_probe(A))
    parts += [_section_probe(B0 + i) for i in range(NB)]
    used = sum(len(p) for p in parts)
    fresh = np.array([(FRESH0 + 256 * i) * PPS for i in range(NFRESH)], dtype=np.uint64)
    parts.append(fresh)
    used += len(fresh)
    parts.append(np.full(512 - used, 1 << 40, dtype=np.uint64))    # untouched: never valid
    pat = np.concatenate(parts)
    assert len(pat) == 512 and (1 << 20) % 512 == 0
    return pat


def check_chunk(rows, seen_fresh):
    """rows: (k, 512) bool answers, each row one copy of the pattern from one chunk."""
    boot = rows[:, 0:64]
    assert boot.all(), "boot memory became invalid"
    a = rows[:, 64:128]
    weights = (1 << np.arange(64, dtype=np.uint64))
    a_words = (a.astype(np.uint64) * weights).sum(axis=1)
    for w in np.unique(a_words):
        assert int(w) in LEGAL_A, f"torn sub-section state of section {A}: {int(w):#x}"
    b = rows[:, 128:128 + 64 * NB]
    per_row = b.reshape(len(rows), -1)
    assert np.all(per_row.all(axis=1) | ~per_row.any(axis=1)), "a sparse_add_range was seen half done"
    fresh = rows[:, 128 + 64 * NB:128 + 64 * NB + NFRESH]
    # fresh roots are only ever added, in order: a prefix of them is valid
    for row in np.unique(fresh, axis=0):
        k = int(row.sum())
        assert row[:k].all() and not row[k:].any(), "fresh sections appeared out of order"
    assert not rows[:, 128 + 64 * NB + NFRESH:].any()


def test_readers_see_only_legal_states():
    t = sparsemem.SectionTable(46, KERNEL)
    t.memory_present(0, 0x100, 0x10000)
    t.sparse_init()
    t.subsection_map_init(0x100, 0x10000 - 0x100)
    pat = _pattern()
    reps = 3 * (1 << 20) // 512 + 1024            # 3.5 chunks: the last chunk is partial
    batch = np.tile(pat, reps)
    stop = threading.Event()
    errors, calls, rounds = [], [0], [0]

    def reader():
        out = np.empty(len(batch), dtype=bool)
        try:
            while not stop.is_set():
                t.pfn_valid_many(batch, out=out)
                rows = out.reshape(reps, 512)
                for c in range(0, reps, 2048):     # 2048 pattern copies per 2**20-pfn chunk
                    check_chunk(rows[c:c + 2048], None)
                calls[0] += 1
        except BaseException as e:  # noqa: BLE001 - reported to the main thread
            errors.append(e)
            stop.set()

    def writer():
        try:
            base = A * PPS
            r = 0
            deadline = time.perf_counter() + 10
            # at least ROUNDS rounds, and on until the readers have overlapped many of them
            while r < ROUNDS or (calls[0] < 40 and time.perf_counter() < deadline):
                if stop.is_set():
                    return
                t.sparse_add_section(0, base, 16 * SUB)                  # 0 -> M1
                t.sparse_add_section(0, base + 16 * SUB, 24 * SUB)       # M1 -> M1|M2
                t.sparse_remove_section(base, 16 * SUB)                  # -> M2
                t.sparse_remove_section(base + 16 * SUB, 24 * SUB)       # -> 0
                t.sparse_add_range(0, B0 * PPS, NB * PPS)
                t.sparse_remove_range(B0 * PPS, NB * PPS)
                if r < NFRESH:
                    t.sparse_add_section(0, (FRESH0 + 256 * r) * PPS, PPS)
                if r % 50 == 0:
                    time.sleep(0)                                        # let readers interleave
                r += 1
            rounds[0] = r
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            stop.set()

    readers = [threading.Thread(target=reader) for _ in range(2)]
    w = threading.Thread(target=writer)
    for th in readers:
        th.start()
    w.start()
    w.join(30)
    stop.set()
    for th in readers:
        th.join(30)
    assert not w.is_alive() and not any(th.is_alive() for th in readers), "deadlock"
    if errors:
        raise errors[0]
    assert rounds[0] >= ROUNDS and calls[0] >= 40, (rounds, calls)
    # end state: the writer's last state, fully consistent with the scalar answers
    assert t.subsection_map(A) == 0 and not t.valid_section_nr(B0)
    assert t.nr_roots_allocated >= NFRESH + 1
    final = t.pfn_valid_many(pat)
    assert list(final) == [t.pfn_valid(int(p)) for p in pat]


def test_reader_keeps_table_alive():
    """The batch call holds a reference to the table: dropping every other reference while a
    reader runs cannot free the roots under it (the use-after-free of CVE-2023-52489 has no
    analogue: roots and validity words are freed only in __dealloc__)."""
    t = sparsemem.SectionTable(46, KERNEL)
    t.memory_present(0, 0, 0x100000)
    t.sparse_init()
    batch = np.arange(0, 1 << 22, dtype=np.uint64)
    res = []

    def reader(tab):
        res.append(int(tab.pfn_valid_many(batch).sum()))

    th = threading.Thread(target=reader, args=(t,))
    th.start()
    del t
    th.join(30)
    assert res == [0x100000]
