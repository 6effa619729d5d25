"""Zone/node spans and nodes at the 5.4, 5.5 and 5.6 boundaries (issue 10 step 6), each on both
sides and on both cores.

Sources: later-eras-hotplug-evidence.md §1 rows 5.4-5.6, §2 items 10, 17, 19, §4 (the
scenarios and their expected values); later-eras-hotplug.md A9; sparse-hotplug.md §6.5.  The
kernel code read: mm/memory_hotplug.c ``find_smallest_section_pfn``,
``find_biggest_section_pfn``, ``shrink_zone_span``, ``shrink_pgdat_span`` /
``update_pgdat_span``, ``__remove_zone`` / ``remove_pfn_range_from_zone``,
``__offline_pages``, ``online_pages``, ``try_offline_node`` and drivers/base/memory.c
``init_memory_block`` at 5.3.0, 5.4.0, 5.5.0-rc5 and 5.6.4; mm/memremap.c ``memunmap_pages``
and arch/x86/mm/init_64.c ``arch_remove_memory`` at 5.4.0, 5.5.0-rc5 and 5.6.4.

The default machine has RAM up to 5 GiB (``Machine()``: Normal and node 0 end at pfn
0x140000); ``HOT`` = 6 GiB is block/section 48 (pfn 0x180000), block 49 is pfn 0x188000.  Each
expected value below is worked out from the probes of the release (512-pfn steps, a probe
counting only if its section is valid (5.3, ``pfn_valid``) or online (5.4+,
``pfn_to_online_page``) and its struct page has the node and zone), not read off the output.
"""

from __future__ import annotations

import errno

import pytest

from helpers import BLK, CUT, RAM_5G_PMEM_2G
from sparsemem import KernelBug, KernelError, Machine
from sparsemem import constants as C
from sparsemem import hotplug as H
from sparsemem import memory_block as MB
from sparsemem import memremap as MR

HOT = 0x180000000
P48, P49, P50 = 0x180000, 0x188000, 0x190000
BOOT_END = 0x140000            # end pfn of Normal and of node 0 on the default 5 GiB layout

CORES = ("compiled", "reference")


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def normal(m, nid=0):
    return m.nodes[nid].zones[C.ZONE_NORMAL]


def ends(m, nid=0):
    """(Normal zone end, node end) of node ``nid``."""
    return normal(m, nid).zone_end_pfn, m.nodes[nid].node_end_pfn


# ------------------------------------------------------------------------------------- 5.3 / 5.4
@pytest.mark.parametrize("kernel, expected", [
    # 5.3: find_biggest_section_pfn(.., 0x188000) probes 0x187fff first: section 48 is valid
    # (added, offline) and its memmap still says node 0 / Normal -> end 0x188000; the node
    # scan (shrink_pgdat_span) finds the same pfn
    ("5.3", (P49, P49)),
    # 5.4: section 48 is offline, so the probes skip it and the sections 40-47 (not present)
    # down to 0x13ffff, the last pfn of boot section 39 -> end 0x140000; the node span is the
    # union of the zone spans (update_pgdat_span) -> 0x140000
    ("5.4", (BOOT_END, BOOT_END)),
])
def test_removal_span_probes_skip_offline_sections(core, kernel, expected):
    """§4 "5.3→5.4 spans": add two blocks, online 48 and 49, offline 49 and 48, remove 49."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 2 * BLK)
    m.online_memory_block(48)
    m.online_memory_block(49)
    m.offline_memory_block(49)
    m.offline_memory_block(48)
    assert ends(m) == (P50, P50)          # neither release shrinks at offline
    m.remove_memory(0, HOT + BLK, BLK)
    assert ends(m) == expected


@pytest.mark.parametrize("kernel, online_after_first", [("5.3", False), ("5.4", True)])
def test_try_offline_node_keeps_a_node_with_a_memory_block(core, kernel, online_after_first):
    """§4 "5.3→5.4 try_offline_node": node 1 gets two blocks that are never onlined (its span
    stays empty); removing the first one: 5.3 finds no present section in the (empty) node span
    and offlines the node although block 49 is still there; 5.4 keeps it online because block 49
    records nid 1 (``check_no_memblock_for_node_cb``).  Removing the last block offlines it in
    both (no span, no block, no CPU)."""
    m = Machine(kernel, core=core)
    m.add_memory(1, HOT, 2 * BLK)
    assert m.nodes[1].online and m.nodes[1].node_spanned_pages == 0
    assert m.memory_block(49).nid == 1
    m.remove_memory(1, HOT, BLK)
    assert m.nodes[1].online is online_after_first
    if online_after_first:
        m.remove_memory(1, HOT + BLK, BLK)
        assert m.nodes[1].online is False


@pytest.mark.parametrize("kernel, device_span, node_end", [
    # 5.3: the removal shrinks ZONE_DEVICE like any zone: start == start_pfn, nothing valid
    # after it, the "all holes" scan finds nothing -> empty; the node scan
    # (find_biggest_section_pfn from 0x13ffff) finds boot RAM -> 0x140000
    ("5.3", (0, 0), BOOT_END),
    # 5.4: __remove_zone returns at once for ZONE_DEVICE: zone and node keep the range
    ("5.4", (0x140000, 0x8000), 0x148000),
    ("5.6", (0x140000, 0x8000), 0x148000),   # remove_pfn_range_from_zone: only the poison
])
def test_memunmap_leaves_the_zone_device_span(core, kernel, device_span, node_end):
    """§4 "5.3→5.4 ZONE_DEVICE": memremap_pages of 128 MiB of pmem at 5 GiB, memunmap_pages."""
    m = Machine.from_iomem(RAM_5G_PMEM_2G, kernel=kernel, core=core)
    pg = m.memremap_pages(0x140000000, BLK, type="devdax")
    dev = m.nodes[0].zones[C.ZONE_DEVICE]
    assert (dev.zone_start_pfn, dev.spanned_pages) == (0x140000, 0x8000)
    assert m.nodes[0].node_end_pfn == 0x148000
    m.memunmap_pages(pg)
    assert (dev.zone_start_pfn, dev.spanned_pages) == device_span
    assert m.nodes[0].node_end_pfn == node_end
    assert not m.sections.valid_section_nr(0x140000000 >> 27)


@pytest.mark.parametrize("kernel, online", [("5.3", False), ("5.4", True)])
def test_try_offline_node_keeps_a_node_that_spans_device_memory(core, kernel, online):
    """The "spanned pages" test of 5.4 ``try_offline_node``: node 1 mapped 128 MiB of pmem and
    unmapped it again; then a block of node 1 is added and removed.  5.3: the unmap emptied
    ZONE_DEVICE and the node span (as above), so nothing keeps node 1 online; 5.4: node 1 still
    spans the device range (not shrunk), so it stays online."""
    m = Machine.from_iomem(RAM_5G_PMEM_2G, kernel=kernel, core=core)
    pg = MR.memremap_pages(m, 0x140000000, BLK, type="devdax", nid=1)
    m.memunmap_pages(pg)
    m.add_memory(1, 0x200000000, BLK)
    assert m.nodes[1].online
    m.remove_memory(1, 0x200000000, BLK)
    assert m.nodes[1].online is online
    assert (m.nodes[1].node_spanned_pages != 0) is online


@pytest.mark.parametrize("kernel, nid", [("5.3", 0), ("5.4", -1)])
def test_new_block_nid_until_linked(core, kernel, nid):
    """``init_memory_block``: 5.3 zero-allocates ``mem->nid`` (0), 5.4 sets NUMA_NO_NODE (-1);
    ``link_mem_sections`` then stores the node.  A boot block was linked at boot (node 0)."""
    m = Machine(kernel, core=core)
    H.add_pages(m, 1, HOT >> 12, BLK >> 12)
    MB.create_memory_block_devices(m, HOT, BLK)
    assert m.memory_block(48).nid == nid
    MB.link_mem_sections(m, 1, HOT, BLK)
    assert m.memory_block(48).nid == 1
    assert m.memory_block(0).nid == 0


# ------------------------------------------------------------------------------------- 5.4 / 5.5
@pytest.mark.parametrize("kernel, after_49, after_48", [
    ("5.4", P50, P50),               # offline never shrinks
    # 5.5: offlining 49 (the zone's end) -> find_biggest probes 0x187fff: 48 online -> 0x188000;
    # offlining 48 -> the probes from 0x17ffff find nothing online before 0x13ffff -> 0x140000
    ("5.5", P49, BOOT_END),
])
def test_spans_shrink_at_offline(core, kernel, after_49, after_48):
    """§4 "5.4→5.5 spans at offline"."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 2 * BLK)
    m.online_memory_block(48)
    m.online_memory_block(49)
    assert ends(m) == (P50, P50)
    m.offline_memory_block(49)
    assert ends(m) == (after_49, after_49)
    m.offline_memory_block(48)
    assert ends(m) == (after_48, after_48)
    assert normal(m).present_pages == 0x40000          # the boot RAM of Normal either way
    m.remove_memory(0, HOT, 2 * BLK)                   # 5.4 shrinks here, 5.5 has nothing left to do
    assert ends(m) == (BOOT_END, BOOT_END)


@pytest.mark.parametrize("kernel, end", [("5.4", P49), ("5.5", BOOT_END)])
def test_failed_online_gives_the_span_back(core, kernel, end):
    """§4 "5.4→5.5 failed online": MEM_GOING_ONLINE fails after ``move_pfn_range_to_zone``
    grew Normal and node 0 to 0x188000; 5.4 never undoes it, 5.5 calls
    ``remove_pfn_range_from_zone`` on the failure path (the probes below 0x180000 find boot
    section 39 at 0x13ffff)."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    m.inject_memory_notifier_error("online", -errno.ENOMEM)
    with pytest.raises(KernelError) as ei:
        m.online_memory_block(48)
    assert ei.value.errno == errno.ENOMEM
    assert m.memory_block(48).state == "offline"
    assert ends(m) == (end, end)


def test_removal_of_a_never_added_range(core):
    """§4 "5.4→5.5 removal of never-added range": 5.4 x86 ``arch_remove_memory`` reads
    ``page_zone`` of the first struct page, which has no vmemmap: page fault, nothing changed;
    5.5 reads no struct page and ``__remove_section`` WARN_ON_ONCEs the invalid section."""
    m4 = Machine("5.4", core=core)
    before = m4.snapshot()
    with pytest.raises(KernelBug, match="page fault"):
        H.arch_remove_memory(m4, 0, HOT, BLK)
    assert m4.dmesg[-1].startswith("BUG: unable to handle page fault for address: ")
    assert m4.snapshot()["sections"] == before["sections"]
    m5 = Machine("5.5", core=core)
    n = len(m5.dmesg)
    assert H.arch_remove_memory(m5, 0, HOT, BLK) == 0
    assert m5.dmesg[n:] == [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:510 __remove_section+0x0/0x100"]


@pytest.mark.parametrize("kernel, end", [("5.4", P49), ("5.5", P50)])
def test_remove_pages_has_no_zone_from_5_5(core, kernel, end):
    """``__remove_pages`` shrinks through ``__remove_section`` -> ``__remove_zone`` in 5.4 and
    has no zone from 5.5 (the spans are handled at offline).  Called directly on block 49 while
    it is online, only to show where the shrinking is: 5.4 probes 0x187fff (block 48, online)
    -> end 0x188000; 5.5 leaves the span."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 2 * BLK)
    m.online_memory_block(48)
    m.online_memory_block(49)
    assert H.remove_pages(m, normal(m), P49, 0x8000) == 1
    assert ends(m) == (end, end)


# ------------------------------------------------------------------------------------- 5.5 / 5.6
@pytest.mark.parametrize("kernel, zonenum", [("5.5", C.ZONE_NORMAL), ("5.6", -1)])
def test_offline_poisons_the_memmap(core, kernel, zonenum):
    """§4 "5.5→5.6 poison": 5.6 ``remove_pfn_range_from_zone`` runs ``page_init_poison`` over
    the offlined range first; 5.5 leaves the struct pages saying Normal."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    m.online_memory_block(48)
    assert m.sections.page_zonenum(P48) == C.ZONE_NORMAL
    m.offline_memory_block(48)
    assert m.sections.page_zonenum(P48) == zonenum
    assert m.sections.page_zonenum(P49 - 1) == zonenum
    assert m.sections.page_zonenum(BOOT_END - 1) == C.ZONE_NORMAL     # boot RAM untouched
    assert ends(m) == (BOOT_END, BOOT_END)                            # both shrink
    m.online_memory_block(48)                                         # re-initialised
    assert m.sections.page_zonenum(P48) == C.ZONE_NORMAL


@pytest.mark.parametrize("kernel, zonenum", [("5.5", C.ZONE_NORMAL), ("5.6", -1)])
def test_failed_online_poisons_the_memmap(core, kernel, zonenum):
    """The failure path of ``online_pages`` calls ``remove_pfn_range_from_zone`` too: 5.6 poisons
    what ``move_pfn_range_to_zone`` initialised."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    m.inject_memory_notifier_error("online", -errno.EBUSY)
    with pytest.raises(KernelError):
        m.online_memory_block(48)
    assert m.sections.page_zonenum(P48) == zonenum
    assert ends(m) == (BOOT_END, BOOT_END)


@pytest.mark.parametrize("kernel, span", [
    # 5.5: neither edge; the "all holes" scan finds no online Movable pfn outside the range
    # (48 and 50 are offline) -> the zone is emptied
    ("5.5", (0, 0)),
    # 5.6: no such scan: a range strictly inside leaves the span
    ("5.6", (P48, 0x18000)),
])
def test_shrink_zone_span_all_holes_scan(core, kernel, span):
    """``shrink_zone_span`` with and without the "all holes" scan (5.5.0-rc5 has it, 5.6.4
    not).  No sequence of public calls reaches this case (the zone edges are online pfns of the
    zone once spans shrink at offline, evidence §1 row 5.6), so it is set up with the core's
    ``offline_mem_sections`` directly: Movable spans blocks 48-50, only block 49 is online, and
    block 49's range is taken out."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 3 * BLK)
    for b in (48, 49, 50):
        m.online_memory_block(b, "online_movable")
    mov = m.nodes[0].zones[C.ZONE_MOVABLE]
    assert (mov.zone_start_pfn, mov.spanned_pages) == (P48, 0x18000)
    m.sections.offline_mem_sections(P48, P49)
    m.sections.offline_mem_sections(P50, P50 + 0x8000)
    H.shrink_zone_span(m, mov, P49, P50)
    assert (mov.zone_start_pfn, mov.spanned_pages) == span


@pytest.mark.parametrize("kernel, zonenum_at_removal", [("5.5", C.ZONE_DEVICE), ("5.6", -1)])
def test_memunmap_poisons_before_the_removal(core, kernel, zonenum_at_removal, monkeypatch):
    """5.6 ``memunmap_pages`` calls ``remove_pfn_range_from_zone`` before
    ``arch_remove_memory`` (5.5.0-rc5 ``mm/memremap.c`` does not): for ZONE_DEVICE it only
    poisons, so the struct pages read as uninitialised when the removal starts; the span stays
    in both (the ZONE_DEVICE early return)."""
    m = Machine.from_iomem(RAM_5G_PMEM_2G, kernel=kernel, core=core)
    pg = m.memremap_pages(0x140000000, BLK, type="devdax")
    seen = []
    real = H.arch_remove_memory

    def spy(machine, nid, start, size, altmap=None):
        seen.append(machine.sections.page_zonenum(start >> 12))
        return real(machine, nid, start, size, altmap)

    monkeypatch.setattr(H, "arch_remove_memory", spy)
    m.memunmap_pages(pg)
    assert seen == [zonenum_at_removal]
    dev = m.nodes[0].zones[C.ZONE_DEVICE]
    assert (dev.zone_start_pfn, dev.spanned_pages) == (0x140000, 0x8000)


# ------------------------------------------------------------------------------------- functions
def test_update_pgdat_span_is_the_union_of_zone_spans():
    """``update_pgdat_span`` (5.4.0): union of the non-empty zones, ZONE_DEVICE included; all
    empty -> 0/0.  Reads no struct page (a bare pgdat is enough)."""
    m = Machine("5.4")
    pg = m.node_data(3)
    pg.node_start_pfn, pg.node_spanned_pages = 0x1234, 0x99
    H.update_pgdat_span(m, pg)
    assert (pg.node_start_pfn, pg.node_spanned_pages) == (0, 0)
    pg.zones[C.ZONE_MOVABLE].zone_start_pfn, pg.zones[C.ZONE_MOVABLE].spanned_pages = 0x200000, 0x8000
    pg.zones[C.ZONE_DEVICE].zone_start_pfn, pg.zones[C.ZONE_DEVICE].spanned_pages = 0x180000, 0x200
    pg.zones[C.ZONE_NORMAL].zone_start_pfn = 0x100000          # spanned 0: ignored
    H.update_pgdat_span(m, pg)
    assert (pg.node_start_pfn, pg.node_end_pfn) == (0x180000, 0x208000)


def test_remove_pfn_range_from_zone_arguments():
    m = Machine("5.6")
    with pytest.raises(TypeError):
        H.remove_pfn_range_from_zone(m, C.ZONE_NORMAL, P48, 0x8000)
    with pytest.raises(ValueError):
        H.remove_pfn_range_from_zone(m, normal(m), -1, 0x8000)
