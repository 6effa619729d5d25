"""Machine-level Hypothesis state machine: random add_memory / remove_memory / online /
offline / sysfs writes on a compiled-core and a reference-core machine driven identically
(sparse-hotplug.md §5.5, §5.6, §6.5, §6.6, §8)."""

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from helpers import BLK
from sparsemem import KernelBug, KernelError, Machine
from sparsemem import constants as C
from sparsemem.hotplug import walk_system_ram_range

LAYOUT = "00000000-00000fff : Reserved\n00001000-0009ffff : System RAM\n00100000-3fffffff : System RAM\n"
FIRST, LAST = 12, 20          # hot-plug candidates: blocks 12..19 (1.5 GiB .. 2.5 GiB)
TYPES = ["online", "online_kernel", "online_movable"]


def outcome(fn):
    try:
        fn()
        return None
    except KernelError as e:
        return ("KernelError", e.errno)
    except KernelBug:
        return ("KernelBug",)


class HotplugMachine(RuleBasedStateMachine):
    kernel = "5.3"

    @initialize(auto=st.booleans(), movable_node=st.booleans())
    def boot(self, auto, movable_node):
        self.ms = [Machine.from_iomem(LAYOUT, kernel=self.kernel, core=c, auto_online=auto,
                                      movable_node=movable_node) for c in ("compiled", "reference")]
        # boot blocks are never touched by the rules: their pages stay counted as booted
        self.boot_present = {(z.nid, z.idx): z.present_pages for z in self.ms[0].nodes[0].zones}

    def both(self, fn):
        results = [outcome(lambda m=m: fn(m)) for m in self.ms]
        assert results[0] == results[1]
        return results[0]

    @rule(first=st.integers(FIRST, LAST - 1), n=st.integers(1, 3), nid=st.integers(0, 1),
          skew=st.sampled_from([0, 0, 0, 2 << 20]))
    def add(self, first, n, nid, skew):
        start, size = first * BLK + skew, n * BLK
        before = self.ms[0].snapshot()
        r = self.both(lambda m: m.add_memory(nid, start, size))
        if r is not None:   # §8.1: a failing add_memory (EEXIST/EINVAL here) changes nothing
            assert self.ms[0].snapshot() == before

    @rule(first=st.integers(FIRST, LAST - 1), n=st.integers(1, 3), nid=st.integers(0, 1))
    def remove(self, first, n, nid):
        before = self.ms[0].snapshot()
        r = self.both(lambda m: m.remove_memory(nid, first * BLK, n * BLK))
        if r is not None:
            assert self.ms[0].snapshot() == before

    @rule(bid=st.integers(FIRST, LAST - 1), how=st.sampled_from(TYPES + ["offline", "1", "0"]))
    def sysfs_write(self, bid, how):
        attr = "online" if how in ("1", "0") else "state"
        path = f"memory{bid}/{attr}"
        if path not in self.ms[0].sysfs:
            return
        self.both(lambda m: m.sysfs.write(path, how))

    @rule(action=st.sampled_from(["MEM_GOING_ONLINE", "MEM_GOING_OFFLINE"]), err=st.sampled_from([0, 0, -12, -16]))
    def inject(self, action, err):
        for m in self.ms:
            m.inject_memory_notifier_error(action, err)

    @invariant()
    def cores_agree(self):
        a, b = (m.snapshot() for m in self.ms)
        assert a == b
        assert self.ms[0].dmesg == self.ms[1].dmesg

    @invariant()
    def blocks_match_sections(self):
        m = self.ms[0]
        S = m.sections
        for blk in m.memory_blocks:
            bits = {S.online_section_nr(n) for n in range(blk.start_section_nr, blk.end_section_nr + 1)
                    if S.present_section_nr(n)}
            assert bits == {blk.state == "online"}, blk
            assert blk.state in ("online", "offline")

    @invariant()
    def pfn_valid_matches_sections(self):
        m = self.ms[0]
        S = m.sections
        for bid in range(FIRST, LAST):
            for sec in range(bid, bid + 1):
                for sub in (0, 31, 63):
                    pfn = (sec << C.PFN_SECTION_SHIFT) + sub * C.PAGES_PER_SUBSECTION
                    if not S.valid_section_nr(sec):
                        expect = False
                    elif not m.model.subsection or S.early_section_nr(sec):
                        expect = True
                    else:
                        expect = bool(S.subsection_map(sec) >> sub & 1)
                    assert S.pfn_valid(pfn) == expect

    @invariant()
    def spans_cover_online_memory(self):
        # What v5.3 (and v5.2) guarantee: offline never shrinks, removal shrinks only at the
        # edges, so every online block lies inside the span of the zone its pages belong to,
        # and inside its node's span; present pages are the online System RAM pages.
        m = self.ms[0]
        present = {}
        for blk in m.memory_blocks:
            if blk.state != "online" or blk.id < FIRST:
                continue
            z = m.nodes[blk.nid].zones[m.sections.page_zonenum(blk.start_pfn)]
            pg = z.zone_pgdat
            assert z.zone_start_pfn <= blk.start_pfn and blk.start_pfn + blk.nr_pages <= z.zone_end_pfn
            assert pg.node_start_pfn <= blk.start_pfn and blk.start_pfn + blk.nr_pages <= pg.node_end_pfn
            ram = sum(n for _, n in walk_system_ram_range(m, blk.start_pfn, blk.nr_pages))
            present[(z.nid, z.idx)] = present.get((z.nid, z.idx), 0) + ram
        for pg in m.nodes.values():
            assert pg.node_present_pages == sum(z.present_pages for z in pg.zones)
            for z in pg.zones:
                key = (z.nid, z.idx)
                assert z.present_pages == present.get(key, 0) + self.boot_present.get(key, 0)
        # iomem: a hot block exists only under a System RAM resource (the converse fails when
        # remove_memory is given a range wider than what was added: the resource release
        # then only warns, §6.6 step 7)
        for bid in range(FIRST, LAST):
            if bid in m._blocks:
                assert walk_system_ram_range(m, bid * 0x8000, 0x8000)


class HotplugMachine52(HotplugMachine):
    kernel = "5.2"


SETTINGS = settings(max_examples=60, stateful_step_count=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

TestHotplug53 = HotplugMachine.TestCase
TestHotplug53.settings = SETTINGS
TestHotplug52 = HotplugMachine52.TestCase
TestHotplug52.settings = SETTINGS
