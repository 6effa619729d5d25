"""One test per rule of the core, run on the compiled table and on its Python twin.

"§" refers to docs/spec/sparse-hotplug.md, "MN §" to memremap-nvdimm.md.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest

from helpers import boot_table
from sparsemem import KernelBug, KernelError, SectionTable
from sparsemem import constants as C

MiB = 1 << 20
GiB = 1 << 30
ALL = (1 << 64) - 1


boot = boot_table  # tests/helpers.py (sparse-hotplug.md §3)


# ---------------------------------------------------------------- §1, §2.3 constants and helpers
def test_constants_section1():
    """§1: x86_64 values."""
    assert (C.PAGE_SHIFT, C.SECTION_SIZE_BITS, C.PFN_SECTION_SHIFT) == (12, 27, 15)
    assert C.PAGES_PER_SECTION == 32768 and C.PAGES_PER_SUBSECTION == 512
    assert C.SUBSECTIONS_PER_SECTION == 64 and C.SECTIONS_PER_ROOT == 256
    assert C.SECTION_MEMMAP_BYTES == 2 * MiB == C.PMD_SIZE
    assert C.PAGE_SECTION_MASK == ~0x7FFF
    assert C.pfn_to_section_nr(0x100000) == 32 and C.section_nr_to_pfn(32) == 0x100000
    assert C.subsection_map_index(0x7F000) == 56
    assert C.PHYS_PFN(0x2_0400_0000) == 0x204000 and C.PFN_PHYS(0x204000) == 0x2_0400_0000


def test_nr_section_roots(impl):
    """§1: NR_SECTION_ROOTS 2048 (4-level) / 131072 (5-level); roots allocated on first use (§3.1)."""
    T, _ = impl
    assert T(46).nr_section_roots == 2048 and T(52).nr_section_roots == 131072
    assert T(46).nr_mem_sections == 1 << 19 and T(52).nr_mem_sections == 1 << 25
    t = T(46)
    assert t.nr_roots_allocated == 0
    t.memory_present(0, 0x100000, 0x108000)  # section 32, root 0
    t.memory_present(0, 256 << 15, 257 << 15)  # section 256, root 1
    assert t.nr_roots_allocated == 2


@pytest.mark.parametrize("bits", [45, 47, 64, "46"])
def test_bad_max_physmem_bits(impl, bits):
    """api.md: only 46 or 52."""
    T, _ = impl
    with pytest.raises((ValueError, TypeError)):
        T(bits)


# ---------------------------------------------------------------- §3 boot
def test_memory_present_early_nid(impl, kernel):
    """§2.4/§3.1: before sparse_init the word holds nid << 3 | IS_ONLINE | PRESENT; first nid wins."""
    T, _ = impl
    t = T(46, kernel)
    t.memory_present(2, 0x8000, 0x10000)
    t.memory_present(1, 0x8000, 0x10000)
    assert t.section_mem_map(1) == (2 << 3) | C.SECTION_IS_ONLINE | C.SECTION_MARKED_PRESENT
    assert t.section_nid(1) == 2
    assert t.present_section_nr(1) and not t.valid_section_nr(1)
    assert t.highest_present_section_nr == 1


def test_memory_present_rounds_start_down(impl, kernel):
    """§3.1: start rounded down to a section; every touched section present."""
    T, _ = impl
    t = T(46, kernel)
    t.memory_present(0, 0x8100, 0x18001)
    assert [t.present_section_nr(n) for n in range(5)] == [False, True, True, True, False]


def test_memory_present_clamps_with_warning(impl, kernel):
    """§3.1 mminit_validate_memmodel_limits: end beyond the address space is truncated with a WARN."""
    T, _ = impl
    t = T(46, kernel)
    t.memory_present(0, t.pfn_limit - 0x8000, t.pfn_limit + 0x10000)
    assert t.present_section_nr(t.nr_mem_sections - 1)
    assert any("exceeds SPARSEMEM max" in line for line in t.dmesg)


def test_sparse_init_flags(impl, kernel):
    """§3.4: boot sections are PRESENT|HAS_MEM_MAP|ONLINE|EARLY (v5.2: no EARLY bit), boot PMD each."""
    T, _ = impl
    t = boot(T, kernel, [(0x100, 0x20000)])
    word = t.section_mem_map(2)
    expect = C.SECTION_MARKED_PRESENT | C.SECTION_HAS_MEM_MAP | C.SECTION_IS_ONLINE
    if kernel == "5.3":
        expect |= C.SECTION_IS_EARLY
    assert word & 0xF == expect
    assert word & ~0xF == C.VMEMMAP_BASE_4LVL  # §2.4: encoded map of a boot section
    assert t.vmemmap_stats()["boot_pmds"] == 4
    assert t.section_usage(0) == "boot"


def test_subsection_map_init_example(impl):
    """§3.5 example: RAM ends at pfn 0x7F000 inside section 15 -> bits 0..55."""
    T, _ = impl
    t = boot(T, "5.3", [(0, 0x7F000)])
    assert t.subsection_map(15) == (1 << 56) - 1
    assert t.subsection_map(14) == ALL
    assert all(t.pfn_valid(p) for p in (0x7F000, 0x7FFFF))  # §4.2: early sections valid everywhere


def test_boot_protocol_order(impl, kernel):
    """§3: memory_present only before sparse_init; subsection_map_init only after it."""
    T, _ = impl
    t = T(46, kernel)
    with pytest.raises(RuntimeError):
        t.subsection_map_init(0, 512)
    t.memory_present(0, 0, 0x8000)
    with pytest.raises(RuntimeError):
        t.sparse_add_section(0, 0x100000, 512)
    t.sparse_init()
    with pytest.raises(RuntimeError):
        t.memory_present(0, 0x8000, 0x10000)
    with pytest.raises(RuntimeError):
        t.sparse_init()


def test_subsection_map_init_without_usage_is_kernel_bug(impl):
    """§3.4-3.5: a range that never went through memory_present has no usage: NULL dereference."""
    T, _ = impl
    t = boot(T, "5.3", [(0, 0x8000)])
    with pytest.raises(KernelBug):
        t.subsection_map_init(0x100000, 512)


# ---------------------------------------------------------------- §4.2 pfn_valid
def test_pfn_valid_legacy_is_valid_section(impl):
    """§4.2 <= v5.2 / §7: pfn_valid = valid_section: a hot-added 2 MiB makes the whole section valid."""
    T, _ = impl
    t = T(46, "5.2")
    t.sparse_add_range(0, 0x100000, 512)
    assert t.pfn_valid(0x100000) and t.pfn_valid(0x107FFF)
    assert t.subsection_map(32) == 0


def test_pfn_valid_subsection(impl):
    """§4.2 v5.3 / §9.3: non-early sections are valid only where the bitmap says so."""
    T, _ = impl
    t = T(46, "5.3")
    t.sparse_add_range(0, 0x100000, 1024)
    assert t.pfn_valid(0x100000) and t.pfn_valid(0x1003FF)
    assert not t.pfn_valid(0x100400)
    assert t.subsection_map(32) == 0b11
    assert t.present_section_nr(32) and t.valid_section_nr(32)
    assert not t.online_section_nr(32) and not t.early_section_nr(32)


def test_pfn_valid_any_int(impl, kernel):
    """api.md: any int; beyond the address space or negative is simply not valid."""
    T, _ = impl
    t = boot(T, kernel, [(0, 0x8000)])
    for p in (-1, -(1 << 70), t.pfn_limit, 1 << 64, 1 << 80):
        assert not t.pfn_valid(p) and p not in t
    assert t.pfn_valid(np.uint64(5)) and True in t  # numpy ints and bool are ints
    for bad in (1.0, "1", None, [1]):
        with pytest.raises(TypeError):
            t.pfn_valid(bad)


def test_pfn_valid_many_matches_scalar(impl, kernel):
    """api.md: same answers as the scalar call, any integer array-like, any shape, out=."""
    T, _ = impl
    t = boot(T, kernel, [(0x100, 0x9000)])
    t.sparse_add_range(0, 0x100000, 1024)
    pfns = np.array([0, 0x100, 0x8FFF, 0x9000, 0x10000, 0x100000, 0x100400, t.pfn_limit - 1], dtype=np.uint64)
    expect = np.array([t.pfn_valid(int(p)) for p in pfns])
    assert (t.pfn_valid_many(pfns) == expect).all()
    assert (t.pfn_valid_many(pfns.astype(np.int64).tolist()) == expect).all()
    assert t.pfn_valid_many(pfns.reshape(2, 4)).shape == (2, 4)
    out = np.zeros(8, dtype=bool)
    assert t.pfn_valid_many(pfns, out=out) is out and (out == expect).all()
    assert (t.pfn_valid_many([-1, 1 << 70, 0x100]) == [False, False, True]).all()
    assert t.pfn_valid_many([]).shape == (0,)
    with pytest.raises(TypeError):
        t.pfn_valid_many([1.5])
    with pytest.raises(ValueError):
        t.pfn_valid_many(pfns, out=np.zeros(3, dtype=bool))
    with pytest.raises(TypeError):
        t.pfn_valid_many(pfns, out=np.zeros(8, dtype=np.uint8))


# ---------------------------------------------------------------- §5.3-5.4 activation
def test_overlap_is_eexist_and_changes_nothing(impl):
    """§5.4 step 3 / §9.2: a second add overlapping an active sub-section -> -EEXIST, no change."""
    T, _ = impl
    t = boot(T, "5.3", [(0, 0x7F000)])
    t.sparse_add_range(0, 0x7F000, 4096)  # §9.1: bits 56..63 of early section 15
    before = t.snapshot()
    with pytest.raises(KernelError) as e:
        t.sparse_add_section(0, 0x7F800, 512)  # bit 60
    assert e.value.errno == errno.EEXIST and "section 15" in str(e.value)
    assert t.snapshot() == before


def test_early_partial_add_reuses_boot_memmap(impl):
    """§5.4 step 5 / §9.1: a partial add into an early section populates nothing; flags stay."""
    T, _ = impl
    t = boot(T, "5.3", [(0, 0x7F000)])
    stats = t.vmemmap_stats()
    t.sparse_add_range(0, 0x7F000, 4096)
    assert t.vmemmap_stats() == stats
    assert t.subsection_map(15) == ALL
    assert t.section_mem_map(15) & 0xF == 0xF
    # §5.3 step 5 (v5.3-v5.6 bug): the encoded memmap is the direct-map address of the section
    assert t.section_mem_map(15) & ~0xF == C.PAGE_OFFSET_4LVL + (15 << 15) * 4032


def test_new_section_partial_add_uses_base_pages(impl):
    """§9.3 / MN §7.1 Rule 1: 1024 pfns into a new section -> 16 RAM pages + 1 PTE table."""
    T, A = impl
    t = T(46, "5.3")
    altmap = A(0x100000, reserve=2, free=4096)
    t.sparse_add_section(0, 0x100000, 1024, altmap)
    s = t.vmemmap_stats()
    assert (s["base_pages_ram"], s["pte_tables"], s["pmds_altmap"]) == (16, 1, 0)
    assert altmap.alloc == 0  # Rule 1: the altmap is ignored for partial sections
    assert t.section_vmemmap(32) == "pte"


def test_mn74_accounting_example(impl):
    """MN §7.4 example: 4 MiB then 124 MiB into one section stay base pages; full add -> 1 altmap PMD."""
    T, A = impl
    t = T(46, "5.3")
    a = A(0x100000, reserve=0, free=1 << 20)
    t.sparse_add_section(0, 0x100000, 1024, a)
    assert t.vmemmap_stats()["base_pages_ram"] == 16
    t.sparse_add_section(0, 0x100400, 32768 - 1024, a)
    s = t.vmemmap_stats()
    assert (s["base_pages_ram"], s["pte_tables"], s["memmap_ram_bytes"]) == (512, 1, 2 * MiB + 4096)
    t.sparse_remove_section(0x100000, 1024, a)
    t.sparse_remove_section(0x100400, 32768 - 1024, a)
    s = t.vmemmap_stats()
    assert (s["base_pages_ram"], s["pte_tables"]) == (0, 0)
    t.sparse_add_section(0, 0x100000, 32768, a)
    assert t.vmemmap_stats()["pmds_altmap"] == 1 and a.alloc == 512


def test_mn34_subsection_namespace_accounting(impl):
    """MN §3.4 'After (v5.3)': 1 GiB at 0x2_0400_0000 with altmap base 0x204000, reserve 2, free 4606:
    7 PMDs from the altmap (510 + 3584 pfns used), 2 x 256 RAM base pages for the partial sections."""
    T, A = impl
    t = T(46, "5.3")
    a = A(0x204000, reserve=2, free=4606)
    t.sparse_add_range(0, 0x204000, GiB >> 12, a)
    s = t.vmemmap_stats()
    assert (s["pmds_altmap"], s["base_pages_ram"], s["pte_tables"]) == (7, 512, 2)
    assert (a.alloc, a.align) == (3584, 510)
    assert s["memmap_altmap_bytes"] == 14 * MiB and s["base_pages_ram"] * 4096 == 2 * MiB
    assert t.subsection_map(64) == ALL << 32 & ALL and t.subsection_map(72) == (1 << 32) - 1


def test_altmap_exhausted_enomem_state(impl):
    """§5.4 step 7: populate failure -> section_deactivate then -ENOMEM; the word holds encode(NULL)."""
    T, A = impl
    t = T(46, "5.3")
    a = A(0x100000, reserve=2, free=100)
    with pytest.raises(KernelError) as e:
        t.sparse_add_section(0, 0x100000, 32768, a)
    assert e.value.errno == errno.ENOMEM and "altmap" in str(e.value)
    assert not t.present_section_nr(32) and not t.valid_section_nr(32)
    assert t.subsection_map(32) == 0 and t.section_usage(32) is None
    assert t.section_mem_map(32) == (-(32 << 21)) & ALL  # §2.4 garbage with every flag clear
    assert t.vmemmap_stats()["pmds_altmap"] == 0


def test_legacy_altmap_shortfall_scenario_b(impl):
    """MN §3.4 scenario B (DERIVED): 9 sections need 9 PMDs, the altmap holds 8 -> -ENOMEM at the
    9th, sections 64-71 stay added (no rollback in __add_pages)."""
    T, A = impl
    t = T(46, "5.2")
    a = A(0x200000, reserve=2 + 16384, free=4606)
    with pytest.raises(KernelError) as e:
        t.sparse_add_range(0, 0x200000, 9 * 32768, a)
    assert e.value.errno == errno.ENOMEM
    assert [t.valid_section_nr(n) for n in range(64, 73)] == [True] * 8 + [False]
    assert t.vmemmap_stats()["pmds_altmap"] == 8 and a.align == 510


def test_legacy_add_widens_and_swallows_eexist(impl):
    """§7: legacy __add_pages adds whole sections and ignores -EEXIST; v5.3 reports it."""
    T, _ = impl
    t = T(46, "5.2")
    t.sparse_add_range(0, 0x100000 + 512, 512)
    assert t.valid_section_nr(32) and t.pfn_valid(0x100000)
    t.sparse_add_range(0, 0x100000, 2 * 32768)  # section 32 present: skipped silently
    assert t.valid_section_nr(33)
    with pytest.raises(KernelError) as e:
        t.sparse_add_section(0, 0x100000, 512)
    assert e.value.errno == errno.EEXIST
    u = T(46, "5.3")
    u.sparse_add_range(0, 0x100000, 512)
    with pytest.raises(KernelError) as e:
        u.sparse_add_range(0, 0x100000, 2 * 32768)
    assert e.value.errno == errno.EEXIST


# ---------------------------------------------------------------- §6 removal
def test_example_9_4_partial_then_full_removal(impl):
    """§9.4 and §6.4 table: partial removal keeps flags; the last bits free the usage and clear flags."""
    T, _ = impl
    t = T(46, "5.3")
    t.sparse_add_range(0, 0x100000, 1024)
    assert t.sparse_remove_section(0x100000, 512)
    assert t.subsection_map(32) == 0b10 and t.present_section_nr(32) and t.valid_section_nr(32)
    assert t.vmemmap_stats()["base_pages_ram"] == 8
    assert t.sparse_remove_section(0x100200, 512)
    assert not t.present_section_nr(32) and t.section_usage(32) is None
    assert t.section_mem_map(32) == (-(32 << 21)) & ALL
    assert t.highest_present_section_nr == 32  # never lowered
    s = t.vmemmap_stats()
    assert (s["base_pages_ram"], s["pte_tables"]) == (0, 0)


def test_example_9_5_removal_of_invalid_section_warns_once(impl):
    """§9.5 / §6.3: removing from a section with no memmap: WARN_ON_ONCE, nothing changes."""
    T, _ = impl
    t = T(46, "5.3")
    t.sparse_add_range(0, 0x100000, 1024)
    t.sparse_remove_range(0x100000, 1024)
    before = t.snapshot()
    assert not t.sparse_remove_section(0x100000, 1024)
    assert not t.sparse_remove_section(0x100000, 1024)
    assert t.snapshot() == before
    assert sum("__remove_section" in line for line in t.dmesg) == 1


def test_section_already_deactivated_warning(impl):
    """§6.4 step 3: a request covering inactive sub-sections WARNs with the exact text, no change."""
    T, _ = impl
    t = T(46, "5.3")
    t.sparse_add_range(0, 0x100000, 1024)
    t.sparse_remove_section(0x100000, 512)
    before = t.snapshot()
    assert not t.sparse_remove_section(0x100000, 512)
    assert t.snapshot() == before
    assert t.dmesg[-1].endswith("section already deactivated (0x100000 + 512)")


def test_early_partial_removal_frees_boot_memmap_bug(impl):
    """§6.4 table row 2 (v5.3-v5.8 bug): partial removal from an early section 0xFD-fills part of the
    boot PMD while pfn_valid stays true; the last bits free the whole memmap and keep the usage."""
    T, _ = impl
    t = boot(T, "5.3", [(0, 0x8000)])
    assert t.sparse_remove_section(0, 512)
    assert t.pfn_valid(0) and t.early_section_nr(0)
    assert t.vmemmap_stats()["fd_subsections"] == 1
    t.sparse_remove_section(512, 32768 - 512)
    assert not t.present_section_nr(0) and t.section_usage(0) == "boot"
    assert t.section_mem_map(0) == 0  # encode(NULL, 0) is 0 for section 0 (§2.4)
    assert t.vmemmap_stats()["boot_pmds"] == 0


def test_readded_early_section_frees_boot_usage(impl):
    """§10 #5: an early section removed, re-added (no longer early) and removed again: v5.3 kfree()s
    the boot usage (memblock memory)."""
    T, _ = impl
    t = boot(T, "5.3", [(0x8000, 0x10000)])
    t.sparse_remove_section(0x8000, 32768)
    t.sparse_add_section(0, 0x8000, 32768)
    assert not t.early_section_nr(1) and t.section_usage(1) == "boot"
    t.sparse_remove_section(0x8000, 32768)
    assert any(line.startswith("BUG: kfree() of the boot-time mem_section_usage of section 1") for line in t.dmesg)


def test_legacy_remove_whole_section(impl):
    """§7 sparse_remove_one_section: the whole section goes, word 0, memmap freed."""
    T, _ = impl
    t = T(46, "5.2")
    t.sparse_add_range(0, 0x100000, 512)
    assert t.vmemmap_stats()["pmds_ram"] == 1
    assert t.sparse_remove_section(0x100000, 512)
    assert t.section_mem_map(32) == 0 and not t.pfn_valid(0x107000)
    assert t.vmemmap_stats()["pmds_ram"] == 0


# ---------------------------------------------------------------- §5.5 online sections
def test_online_offline_mem_sections(impl, kernel):
    """§5.5/§5.6: IS_ONLINE set/cleared per section; sections without memmap get a WARN_ON."""
    T, _ = impl
    t = T(46, kernel)
    t.sparse_add_range(0, 0x100000, 32768)
    t.online_mem_sections(0x100000, 0x110000)
    assert t.online_section_nr(32) and not t.online_section_nr(33)
    assert any("section 33 has no valid memmap" in line for line in t.dmesg)
    t.offline_mem_sections(0x100000, 0x108000)
    assert not t.online_section_nr(32)


# ---------------------------------------------------------------- §6.5 span scans
def test_span_scans_granularity(impl, kernel):
    """§6.5: probes every 512 pfns in v5.3 with pfn_valid, every 32768 with valid_section in v5.2."""
    T, _ = impl
    t = T(46, kernel)
    t.sparse_add_range(0, 0x100000 + 1024, 512)
    t.memmap_init_zone(0, C.ZONE_NORMAL, 0x100000, 32768)
    small = t.find_smallest_section_pfn(0, C.ZONE_NORMAL, 0x100000, 0x108000)
    big = t.find_biggest_section_pfn(0, C.ZONE_NORMAL, 0x100000, 0x108000)
    if kernel == "5.3":
        assert (small, big) == (0x100400, 0x1005FF)
    else:
        assert (small, big) == (0x100000, 0x107FFF)
    assert t.find_smallest_section_pfn(1, None, 0x100000, 0x108000) == 0  # other node
    assert t.find_smallest_section_pfn(0, C.ZONE_MOVABLE, 0x100000, 0x108000) == 0


def test_poisoned_memmap_never_matches(impl):
    """§5.3 step 3: sparse_add_section poisons the struct pages; probes read them (§6.5 danger)."""
    T, _ = impl
    t = T(46, "5.3")
    t.sparse_add_range(0, 0x100000, 1024)
    assert t.pfn_to_nid(0x100000) == -1 and t.page_zonenum(0x100000) == -1
    t.memmap_init_zone(3, C.ZONE_MOVABLE, 0x100000, 1024)
    assert (t.pfn_to_nid(0x100200), t.page_zonenum(0x100200)) == (3, C.ZONE_MOVABLE)
    assert t.pageblock_flags(32) == 0x11  # two pageblocks MIGRATE_MOVABLE


def test_find_biggest_unsigned_wrap_is_reported(impl, kernel):
    """§6.5: nothing matches in a span starting below one step: the kernel spins; we raise KernelBug."""
    T, _ = impl
    t = T(46, kernel)
    with pytest.raises(KernelBug):
        t.find_biggest_section_pfn(0, C.ZONE_NORMAL, 0, 0x100000)
    assert t.find_biggest_section_pfn(0, C.ZONE_NORMAL, 0x100000, 0x200000) == 0


# ---------------------------------------------------------------- MN §6.6 altmap
def test_altmap_allocator(impl):
    """MN §6.6: alignment = largest power of two dividing n; pad counted in align; free only alloc."""
    _, A = impl
    a = A(0x204000, reserve=2, free=4606)
    assert a.offset() == 4608 and a.next_pfn() == 0x204002
    assert a.alloc_block_buf(512) == 0x204200 and (a.alloc, a.align) == (512, 510)
    assert a.alloc_block_buf(1) == 0x204400
    assert a.nr_free() == 4606 - 1023
    a.free_pfns(512)
    assert a.alloc == 1 and a.align == 510
    assert A(0, free=10).alloc_block_buf(512) is None


# ---------------------------------------------------------------- accounting and size
def test_count_valid_subsections(impl, kernel):
    T, _ = impl
    t = boot(T, kernel, [(0, 0x7F000)])
    t.sparse_add_range(0, 0x100000, 1024)
    expect = 16 * 64 + (2 if kernel == "5.3" else 64)
    assert t.count_valid_subsections() == expect


def test_nbytes_grows_with_populated_sections():
    """Issue #2: an empty 52-bit table stays under 1 MiB; memory grows with populated roots only."""
    assert SectionTable(52).nbytes <= 1 << 20
    t = SectionTable(46)
    empty = t.nbytes
    t.sparse_add_range(0, 0, 1 << 28)  # 1 TiB
    assert t.nbytes - empty < 2 << 20


def test_huge_pmd_freed_once_all_0xfd(impl):
    """MN §7.2: a partially covered huge PMD is 0xFD-filled and freed only when all 2 MiB are 0xFD."""
    T, A = impl
    t = T(46, "5.3")
    a = A(0x100000, reserve=0, free=1024)
    t.sparse_add_section(0, 0x100000, 32768, a)
    t.sparse_remove_section(0x100000, 512, a)
    s = t.vmemmap_stats()
    assert (s["pmds_altmap"], s["fd_subsections"], a.alloc) == (1, 1, 512)
    t.sparse_remove_section(0x100200, 32768 - 512, a)
    s = t.vmemmap_stats()
    assert (s["pmds_altmap"], s["fd_subsections"], a.alloc) == (0, 0, 0)


def test_five_level_address_space(impl, kernel):
    """§1: with 5-level paging (52 bits) sections above 64 TiB exist; roots allocate lazily there."""
    T, _ = impl
    high = (1 << 40) - 32768  # the last section of the 52-bit space
    t = T(52, kernel)
    t.sparse_add_range(0, high, 32768)
    assert t.pfn_valid(high) and t.pfn_valid(high + 32767) and not t.pfn_valid(1 << 40)
    assert t.nr_roots_allocated == 1 and t.highest_present_section_nr == (1 << 25) - 1
    assert t.section_mem_map(t.highest_present_section_nr) & ~0xF == C.VMEMMAP_BASE_5LVL
    with pytest.raises(ValueError):
        T(46, kernel).sparse_add_range(0, high, 32768)
