"""Differential test: the compiled SectionTable against the pure-Python reference.

A Hypothesis RuleBasedStateMachine boots both tables from the same random memblock layout and
drives them with the same random hotplug steps (sparse-hotplug.md §3, §5, §6, §7) in both eras.
After every step it compares every observable: the full snapshot (section words, usage, bitmap,
nid, memmap zone/nid, vmemmap backing), ``vmemmap_stats()``, ``pfn_valid`` and
``pfn_valid_many`` on probe pfns at sub-section edges, the span scans, the altmap fields, the
return value, the dmesg lines, and the exception (type and errno) of a failing step.

One machine runs per release of :data:`KERNELS` (the one list to extend; the CI profile runs 300
examples per machine, tests/conftest.py): v5.2 (legacy), v5.3, v5.4 (span probes through
``pfn_to_online_page``, ``SM_K_PROBE_ONLINE``), v5.5 (the usage-freeing rule), v5.9 (early partial
removal keeps the memmap), v5.12 (the ``pfn_to_online_page`` function and SECTION_TAINT_ZONE_DEVICE)
and v6.0 (nid shift 5).  Rules include ``page_init_poison`` and ``section_taint_zone_device``
(later-eras-hotplug-evidence.md §5 step 4), and every struct-page read compares its outcome, so a
read of a memmap freed by a v5.3-v5.8 partial early removal must be a KernelBug in both cores.
"""

from __future__ import annotations

import pickle

import numpy as np
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

import sparsemem
from sparsemem import KernelBug, KernelError, reference
from sparsemem import constants as C
from sparsemem.kernel import kernel_model

SEC = C.PAGES_PER_SECTION
SUB = C.PAGES_PER_SUBSECTION
WINDOW = 40  # sections 0..39 (+ a few in a far root) keep the states dense


def outcome(fn, *args):
    """('ok', value) or ('err', type name, errno)."""
    try:
        return ("ok", fn(*args))
    except KernelError as e:
        return ("err", "KernelError", e.errno)
    except KernelBug:
        return ("err", "KernelBug", None)
    except (ValueError, TypeError, RuntimeError) as e:
        return ("err", type(e).__name__, None)


sub_pfn = st.integers(0, WINDOW * 64 - 1).map(lambda i: i * SUB)
far_sub_pfn = st.integers(0, 63).map(lambda i: (300 * SEC) + i * SUB)  # root 1
pfn_any = st.one_of(sub_pfn, far_sub_pfn, st.integers(0, WINDOW * SEC))
nr_subs = st.integers(1, 3 * 64)


class CoreMachine(RuleBasedStateMachine):
    kernel = "5.3"

    @initialize(
        ranges=st.lists(st.tuples(st.integers(0, WINDOW * SEC - 1), st.integers(1, 6 * SEC)), max_size=4),
        nid=st.integers(0, 3),
        with_altmap=st.booleans(),
    )
    def boot(self, ranges, nid, with_altmap):
        self.c = sparsemem.SectionTable(46, self.kernel)
        self.r = reference.SectionTable(46, self.kernel)
        self.probes = set()
        self.ranges = sorted((s, min(s + n, WINDOW * SEC)) for s, n in ranges)
        for t in (self.c, self.r):
            for s, e in self.ranges:
                t.memory_present(nid, s, e)
            if self.ranges:
                t.sparse_init()
                for s, e in self.ranges:
                    t.subsection_map_init(s, e - s)
        for s, e in self.ranges:
            self.probes.update((s, e - 1, e, s & ~(SUB - 1)))
        self.altmaps = None
        if with_altmap:
            self.altmaps = (sparsemem.VmemAltmap(0, 2, 3000), reference.VmemAltmap(0, 2, 3000))
        self.compare()

    def both(self, name, *args, altmap=False):
        """Run the same call on both tables and require the same outcome."""
        extra_c = extra_r = ()
        if altmap and self.altmaps is not None:
            extra_c, extra_r = (self.altmaps[0],), (self.altmaps[1],)
        oc = outcome(getattr(self.c, name), *args, *extra_c)
        orf = outcome(getattr(self.r, name), *args, *extra_r)
        assert oc == orf, (name, args, oc, orf)
        return oc

    def compare(self):
        assert self.c.snapshot() == self.r.snapshot()
        assert self.c.vmemmap_stats() == self.r.vmemmap_stats()
        assert self.c.dmesg == self.r.dmesg
        assert self.c.highest_present_section_nr == self.r.highest_present_section_nr
        assert self.c.count_valid_subsections() == self.r.count_valid_subsections()
        if self.altmaps is not None:
            assert self.altmaps[0] == self.altmaps[1]
        probes = sorted(p for p in self.probes if p >= 0)
        got = self.c.pfn_valid_many(probes)
        want = [self.r.pfn_valid(p) for p in probes]
        assert got.tolist() == want
        assert [self.c.pfn_valid(p) for p in probes] == want
        assert (self.c.present_section_nrs() == self.r.present_section_nrs()).all()

    def note(self, pfn, nr):
        for p in (pfn, pfn + nr - 1, pfn + nr, pfn - 1, pfn + SUB):
            self.probes.add(p)

    @rule(nid=st.integers(0, 3), pfn=st.one_of(sub_pfn, far_sub_pfn), n=nr_subs, use_altmap=st.booleans())
    def add_range(self, nid, pfn, n, use_altmap):
        self.both("sparse_add_range", nid, pfn, n * SUB, altmap=use_altmap)
        self.note(pfn, n * SUB)
        self.compare()

    @rule(pfn=st.one_of(sub_pfn, far_sub_pfn), n=nr_subs, use_altmap=st.booleans())
    def remove_range(self, pfn, n, use_altmap):
        self.both("sparse_remove_range", pfn, n * SUB, altmap=use_altmap)
        self.note(pfn, n * SUB)
        self.compare()

    @rule(nid=st.integers(0, 3), sec=st.integers(0, WINDOW - 1), first=st.integers(0, 63), n=st.integers(1, 64),
          use_altmap=st.booleans())
    def add_section(self, nid, sec, first, n, use_altmap):
        n = min(n, 64 - first)
        pfn = sec * SEC + first * SUB
        self.both("sparse_add_section", nid, pfn, n * SUB, altmap=use_altmap)
        self.note(pfn, n * SUB)
        self.compare()

    @rule(sec=st.integers(0, WINDOW - 1), first=st.integers(0, 63), n=st.integers(1, 64), use_altmap=st.booleans())
    def remove_section(self, sec, first, n, use_altmap):
        n = min(n, 64 - first)
        pfn = sec * SEC + first * SUB
        self.both("sparse_remove_section", pfn, n * SUB, altmap=use_altmap)
        self.note(pfn, n * SUB)
        self.compare()

    def _runs(self, word: int, value: int):
        """Maximal runs [first, last] of bits equal to ``value`` in a 64-bit word."""
        runs, i = [], 0
        while i < 64:
            if (word >> i & 1) == value:
                j = i
                while j + 1 < 64 and (word >> (j + 1) & 1) == value:
                    j += 1
                runs.append((i, j))
                i = j + 1
            else:
                i += 1
        return runs

    @rule(data=st.data(), use_altmap=st.booleans(), whole=st.booleans())
    def remove_active_run(self, data, use_altmap, whole):
        """Remove (part of) a run of active sub-sections: drives the 'bitmap becomes empty' paths."""
        live = [nr for nr in range(WINDOW) if self.r.subsection_map(nr)]
        if not live:
            return
        nr = data.draw(st.sampled_from(live))
        first, last = data.draw(st.sampled_from(self._runs(self.r.subsection_map(nr), 1)))
        if not whole:
            first = data.draw(st.integers(first, last))
            last = data.draw(st.integers(first, last))
        pfn = nr * SEC + first * SUB
        self.both("sparse_remove_section", pfn, (last - first + 1) * SUB, altmap=use_altmap)
        self.note(pfn, (last - first + 1) * SUB)
        self.compare()

    @rule(data=st.data(), use_altmap=st.booleans())
    def drain_section(self, data, use_altmap):
        """Remove every active sub-section of one section, each run in one or two pieces."""
        live = [nr for nr in range(WINDOW) if self.r.subsection_map(nr)]
        if not live:
            return
        nr = data.draw(st.sampled_from(live))
        for first, last in self._runs(self.r.subsection_map(nr), 1):
            cut = data.draw(st.integers(first, last + 1))
            for a, b in ((first, cut - 1), (cut, last)):
                if a <= b:
                    self.both("sparse_remove_section", nr * SEC + a * SUB, (b - a + 1) * SUB, altmap=use_altmap)
        self.note(nr * SEC, SEC)
        self.compare()

    @rule(data=st.data(), nid=st.integers(0, 3), use_altmap=st.booleans())
    def add_free_run(self, data, nid, use_altmap):
        """Add (part of) a run of inactive sub-sections of a section that has some active ones."""
        live = [nr for nr in range(WINDOW) if 0 < self.r.subsection_map(nr) < (1 << 64) - 1]
        if not live:
            return
        nr = data.draw(st.sampled_from(live))
        first, last = data.draw(st.sampled_from(self._runs(self.r.subsection_map(nr), 0)))
        first = data.draw(st.integers(first, last))
        last = data.draw(st.integers(first, last))
        pfn = nr * SEC + first * SUB
        self.both("sparse_add_section", nid, pfn, (last - first + 1) * SUB, altmap=use_altmap)
        self.note(pfn, (last - first + 1) * SUB)
        self.compare()

    @rule(data=st.data(), nid=st.integers(0, 3), use_altmap=st.booleans())
    def readd_emptied_section(self, data, nid, use_altmap):
        """Add (part of) a section that was emptied but kept its usage (a boot usage: §6.4 row 4,
        and from v5.5 also a re-added early section's): the §10 #5 re-added early section path."""
        kept = [nr for nr in range(WINDOW) if self.r.section_usage(nr) and not self.r.subsection_map(nr)]
        if not kept:
            return
        nr = data.draw(st.sampled_from(kept))
        first = data.draw(st.integers(0, 63))
        last = data.draw(st.one_of(st.just(63), st.integers(first, 63)))
        pfn = nr * SEC + first * SUB
        self.both("sparse_add_section", nid, pfn, (last - first + 1) * SUB, altmap=use_altmap)
        self.note(pfn, (last - first + 1) * SUB)
        self.compare()

    @rule(start=sub_pfn, n=st.integers(0, 6 * SEC), online=st.booleans())
    def online_state(self, start, n, online):
        self.both("online_mem_sections" if online else "offline_mem_sections", start, start + n)
        self.compare()
        for nr in range(start // SEC, (start + n) // SEC + 1):
            assert self.c.online_section_nr(nr) == self.r.online_section_nr(nr)

    @rule(nid=st.integers(0, 3), zone=st.integers(0, 4), start=pfn_any, n=st.integers(0, 4 * SEC))
    def memmap_init(self, nid, zone, start, n):
        self.both("memmap_init_zone", nid, zone, start, n)
        self.compare()

    @rule(start=pfn_any, n=st.integers(0, 4 * SEC))
    def poison(self, start, n):
        """``page_init_poison`` (v5.6+ ``remove_pfn_range_from_zone``), any range."""
        self.both("page_init_poison", start, n)
        self.note(start, max(n, 1))
        self.compare()

    @rule(pfn=pfn_any)
    def taint(self, pfn):
        """``section_taint_zone_device`` (RuntimeError in both before v5.12)."""
        self.both("section_taint_zone_device", pfn)
        self.compare()

    @rule(nid=st.integers(0, 3), zone=st.one_of(st.none(), st.integers(0, 4)), start=pfn_any,
          n=st.integers(0, 8 * SEC))
    def span_scans(self, nid, zone, start, n):
        self.both("find_smallest_section_pfn", nid, zone, start, start + n)
        self.both("find_biggest_section_pfn", nid, zone, start, start + n)
        for p in (start, start + n // 2):
            self.both("pfn_to_nid", p)
            self.both("page_zonenum", p)

    @rule(data=st.data(), nid=st.integers(0, 3))
    def read_struct_pages(self, data, nid):
        """Struct-page reads at the edges of the ranges added or removed so far: after a v5.3-v5.8
        partial removal from an early section they hit the freed boot memmap."""
        if not self.probes:
            return
        for p in data.draw(st.lists(st.sampled_from(sorted(self.probes)), min_size=1, max_size=4)):
            self.both("pfn_to_nid", p)
            self.both("page_zonenum", p)
            if p >= 0:
                self.both("find_smallest_section_pfn", nid, None, p, p + 2 * SUB)
                self.both("find_biggest_section_pfn", nid, None, p + 1, p + 2 * SUB)

    @rule(args=st.tuples(st.one_of(st.integers(-5, WINDOW * SEC), st.just(1 << 70), st.just(1.5), st.just("x")),
                         st.one_of(st.integers(-3, 3 * SEC), st.just(1 << 64))))
    def bad_arguments(self, args):
        """Random (often invalid) arguments: same error class on both, state unchanged."""
        before = self.c.snapshot()
        self.both("sparse_add_section", 0, *args)
        self.both("sparse_remove_range", *args)
        self.both("page_init_poison", *args)
        if not isinstance(args[0], (float, str)):
            self.note(int(args[0]), 1)
        self.compare()
        if before != self.c.snapshot():
            # only a successful call may change the state: check it really was a valid call
            assert all(isinstance(a, int) and a >= 0 for a in args)
        before = self.c.snapshot()
        self.both("section_taint_zone_device", args[0])
        self.compare()
        if before != self.c.snapshot():
            assert isinstance(args[0], int) and args[0] >= 0

    @invariant()
    def sections_consistent(self):
        # valid implies present, early implies boot usage (§2.2, §3.4)
        if not hasattr(self, "c"):
            return
        for nr in self.c.present_section_nrs().tolist():
            if self.c.early_section_nr(nr):
                assert self.c.section_usage(nr) == "boot"
        for nr in range(WINDOW):
            if self.c.valid_section_nr(nr):
                assert self.c.present_section_nr(nr)
        # the compiled core's derived words (pfn_valid word, fresh/plain bits of the
        # whole-section loops) always equal what the section fields give
        assert self.c._derived_word_errors() == []


#: The releases the differential machine runs in, one machine each (later-eras-hotplug-evidence.md
#: §4 "Cross-row tests": one release per row; extend this list to cover more rows).
KERNELS = ("5.2", "5.3", "5.4", "5.5", "5.9", "5.12", "6.0")

MACHINES = {k: type(f"CoreMachine_{k.replace('.', '_')}", (CoreMachine,), {"kernel": k}) for k in KERNELS}
for _k, _machine in MACHINES.items():
    globals()[f"TestCore_{_k.replace('.', '_')}"] = _machine.TestCase
del _k, _machine


def test_the_machines_cover_every_core_switch():
    """Between them the machines run both values of every switch the cores read (the SM_K_* bits
    of include/sparsemem.h: sub-section era, usage rule, kaddr bug, early partial free, encoded
    NULL, probe mode, pfn_to_online_page function, TAINT) and two early-nid shifts."""
    models = [kernel_model(k) for k in KERNELS]
    for switch in ("subsection", "subsection_memmap_kaddr_bug", "early_partial_remove_frees_memmap",
                   "deactivate_writes_encoded_null", "shrink_probes_online_sections",
                   "pfn_to_online_page_subsection", "section_taint_zone_device"):
        assert {bool(getattr(m, switch)) for m in models} == {False, True}, switch
    assert {m.usage_free_rule for m in models} == {"unless_early", "unless_boot"}
    assert {m.section_nid_shift for m in models} >= {3, 5}


def test_pickle_roundtrip_both_ways():
    """__reduce__: a pickled table continues identically; compiled and reference states interchange."""
    c = sparsemem.SectionTable(46, "5.3")
    c.memory_present(0, 0, 0x7F000)
    c.sparse_init()
    c.subsection_map_init(0, 0x7F000)
    c.sparse_add_range(0, 0x7F000, 4096)
    c.memmap_init_zone(0, C.ZONE_NORMAL, 0, 0x80000)
    c.sparse_add_range(1, 0x100000, 3 * SEC)
    c.sparse_remove_range(0x100000, SUB)
    c2 = pickle.loads(pickle.dumps(c))
    assert c2.snapshot() == c.snapshot() and c2.dmesg == c.dmesg
    r = reference.SectionTable(46, "5.3")
    r.__setstate__(c.__getstate__())
    assert r.snapshot() == c.snapshot()
    for t in (c, c2, r):
        t.sparse_add_range(0, 0x200000, SEC)
    assert c.snapshot() == c2.snapshot() == r.snapshot()
    probes = np.arange(0, 0x210000, 97, dtype=np.uint64)
    assert (c2.pfn_valid_many(probes) == c.pfn_valid_many(probes)).all()
