"""The core's era switches of issue 10 steps 4, 5 and 12, on both sides of each boundary, in
both cores (later-eras-hotplug-evidence.md §1 rows 5.4, 5.6, 5.9, 5.12; §3.3; §4 rows "5.5→5.6
poison", "5.8→5.9 early partial (core)", "5.11→5.12 pfn_to_online_page", "5.11→5.12 TAINT").

- v5.4 (``shrink_probes_online_sections``, ``SM_K_PROBE_ONLINE``): mm/memory_hotplug.c
  ``find_smallest_section_pfn`` / ``find_biggest_section_pfn`` take a pfn through
  ``pfn_to_online_page`` (5.3.0: ``pfn_valid``; 5.4.0: the include/linux/memory_hotplug.h macro,
  section number bound and ``online_section_nr`` only).  From v5.12 that is the function of
  mm/memory_hotplug.c (read at 5.12.9 and 6.12.0): also ``pfn_section_valid`` and, in a TAINTed
  online section, ``get_dev_pagemap``.
- v5.6 ``remove_pfn_range_from_zone`` poisons the memmap of the range (5.6.4): the core method
  ``page_init_poison`` (its hotplug caller belongs to the spans work).
- v5.3-v5.8 ``section_deactivate`` frees the part of an early section's boot memmap that a
  partial removal covers while ``pfn_valid`` stays true (ef69bc9f689d, v5.9): a later read of
  those struct pages is a KernelBug in both cores.
- v5.12 ``section_taint_zone_device`` and ``move_pfn_range_to_zone`` (5.12.9, 1f90a3477df3):
  bit 4 of the section word, cleared only by the final ``section_mem_map = 0``.
"""

from __future__ import annotations

import pytest

from helpers import PMEM_AFTER_RAM_IN_SECTION, boot_table
from sparsemem import KernelBug
from sparsemem import constants as C
from sparsemem import hotplug as H
from sparsemem.kernel import kernel_model, replace
from sparsemem.machine import Machine

SEC = 0x8000            # pfns per 128 MiB section (written out: helpers.py explains why)
SUB = 0x200             # pfns per 2 MiB sub-section
TAINT = 0x10            # SECTION_TAINT_ZONE_DEVICE, include/linux/mmzone.h (5.12.9)
NORMAL, DEVICE = 2, 4   # zone indexes of x86_64 (ZONE_NORMAL, ZONE_DEVICE)

#: one boot section, 32 (4 GiB), all RAM
BOOT32 = [(0x100000, 0x108000)]
#: section 32 of which only sub-sections 0 and 1 are RAM (4 MiB at 4 GiB)
BOOT32_4M = [(0x100000, 0x100400)]


def table(impl, kernel, ranges=BOOT32):
    return boot_table(impl[0], kernel, ranges)


# ---------------------------------------------------------------------------------------------
# v5.4: the span probes take online sections only


@pytest.mark.parametrize("kernel, before_online", [("5.3", 0x180000), ("5.4", 0)])
def test_probe_of_an_offline_added_section(impl, kernel, before_online):
    """Row 5.4 (5.3.0 → 5.4.0 ``find_smallest_section_pfn``): a hot-added section whose memmap
    says (node 0, Normal) but which is not online is found by the 5.3 probe (``pfn_valid``) and
    skipped by the 5.4 one (``pfn_to_online_page``); once online, both find it."""
    t = table(impl, kernel)
    t.sparse_add_section(0, 0x180000, SEC)
    t.memmap_init_zone(0, NORMAL, 0x180000, SEC)
    assert t.find_smallest_section_pfn(0, NORMAL, 0x180000, 0x188000) == before_online
    assert t.find_biggest_section_pfn(0, NORMAL, 0x108000, 0x188000) == (0x187FFF if before_online else 0)
    t.online_mem_sections(0x180000, 0x188000)
    assert t.find_smallest_section_pfn(0, NORMAL, 0x180000, 0x188000) == 0x180000
    assert t.find_biggest_section_pfn(0, NORMAL, 0x108000, 0x188000) == 0x187FFF


def test_probe_mode_is_the_switch_not_the_release(impl):
    """The 5.3 model with only ``shrink_probes_online_sections`` set probes as 5.4 does."""
    t = table(impl, replace(kernel_model("5.3"), shrink_probes_online_sections=True))
    t.sparse_add_section(0, 0x180000, SEC)
    t.memmap_init_zone(0, NORMAL, 0x180000, SEC)
    assert t.find_smallest_section_pfn(0, NORMAL, 0x180000, 0x188000) == 0
    assert kernel_model("5.3").shrink_probes_online_sections is False
    assert kernel_model("5.4").shrink_probes_online_sections is True


def test_probe_of_an_offlined_boot_section(impl):
    """5.4: offlining a boot section (``offline_mem_sections``) hides it from the probes; 5.3
    still finds it (its sub-sections stay ``pfn_valid``)."""
    found = {}
    for kernel in ("5.3", "5.4"):
        t = table(impl, kernel)
        t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
        t.offline_mem_sections(0x100000, 0x108000)
        found[kernel] = t.find_smallest_section_pfn(0, NORMAL, 0x100000, 0x108000)
    assert found == {"5.3": 0x100000, "5.4": 0}


@pytest.mark.parametrize("kernel, hole_found", [("5.11", True), ("5.12", False), ("6.0", False)])
def test_probe_of_a_hole_subsection_of_a_boot_section(impl, kernel, hole_found):
    """Row 5.12: the 5.11 macro takes every pfn of an online section; the 5.12 function also
    needs the sub-section bit (``pfn_section_valid`` ignores SECTION_IS_EARLY), so a hole
    sub-section of a boot section is skipped even when its struct page says (node 0, Normal)."""
    t = table(impl, kernel, BOOT32_4M)
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    assert t.pfn_valid(0x100800)          # early: pfn_valid is true for the whole section
    assert t.find_smallest_section_pfn(0, NORMAL, 0x100800, 0x108000) == (0x100800 if hole_found else 0)
    assert t.find_smallest_section_pfn(0, NORMAL, 0x100000, 0x108000) == 0x100000


@pytest.mark.parametrize("kernel", ["5.11", "5.12"])
def test_probe_of_device_pages_in_a_tainted_section(impl, kernel):
    """Row 5.12: in an online section tainted with SECTION_TAINT_ZONE_DEVICE the function asks
    ``get_dev_pagemap``; the core, which has no pgmap table, takes a ZONE_DEVICE struct page
    there as one a pgmap covers (memmap_init_zone_device writes that zone).  5.11 (no function,
    no flag) and 5.12 before the taint find the device pfn; 5.12 after the taint does not,
    while the RAM pfns of the same section are still found."""
    t = table(impl, kernel, [(0x100000, 0x104000)])      # RAM: the first half of section 32
    t.sparse_add_section(0, 0x104000, 0x4000)            # device memory: the second half
    t.memmap_init_zone(0, NORMAL, 0x100000, 0x4000)
    t.memmap_init_zone(0, DEVICE, 0x104000, 0x4000)
    assert t.find_smallest_section_pfn(0, DEVICE, 0x100000, 0x108000) == 0x104000
    if kernel == "5.11":
        with pytest.raises(RuntimeError, match="SECTION_TAINT_ZONE_DEVICE"):
            t.section_taint_zone_device(0x104000)
        return
    t.section_taint_zone_device(0x104000)
    assert t.find_smallest_section_pfn(0, DEVICE, 0x100000, 0x108000) == 0
    assert t.find_smallest_section_pfn(0, NORMAL, 0x100000, 0x108000) == 0x100000
    assert t.find_biggest_section_pfn(0, NORMAL, 0x100000, 0x108000) == 0x103FFF


# ---------------------------------------------------------------------------------------------
# page_init_poison (the v5.6 poison of remove_pfn_range_from_zone; the method is the kernel's
# memset, present in every release)


def test_page_init_poison_makes_struct_pages_read_as_poisoned(impl):
    """§4 "5.5→5.6 poison", core part: after ``page_init_poison`` of a range its struct pages
    read -1 (``page_zonenum``) / -1 (``pfn_to_nid``), the pages around it keep (node, zone);
    pageblock flags (usage, not struct pages) stay; the probes no longer find the range."""
    t = table(impl, "5.6")
    t.sparse_add_section(1, 0x180000, SEC)
    t.memmap_init_zone(1, NORMAL, 0x180000, SEC)
    t.online_mem_sections(0x180000, 0x188000)
    flags = t.pageblock_flags(48)
    assert (t.page_zonenum(0x180000), t.pfn_to_nid(0x180000)) == (NORMAL, 1)
    t.page_init_poison(0x180000, 0x4000)
    assert (t.page_zonenum(0x180000), t.pfn_to_nid(0x180000)) == (-1, -1)
    assert (t.page_zonenum(0x183FFF), t.pfn_to_nid(0x184000)) == (-1, 1)
    assert t.pageblock_flags(48) == flags
    assert t.find_smallest_section_pfn(1, NORMAL, 0x180000, 0x188000) == 0x184000
    t.memmap_init_zone(1, NORMAL, 0x180000, 0x4000)   # onlining again initialises them again
    assert t.page_zonenum(0x180000) == NORMAL


def test_page_init_poison_granularity_and_holes(impl):
    """Per 2 MiB sub-section, like ``memmap_init_zone``: a partly covered one counts as poisoned;
    a range through sections without a memmap poisons where a memmap exists; nr 0 is a no-op."""
    t = table(impl, "5.6")
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    before = t.snapshot()
    t.page_init_poison(0x100000, 0)
    assert t.snapshot() == before
    t.page_init_poison(0x1001FF, 2)                   # the last pfn of sub 0, the first of sub 1
    assert [t.page_zonenum(p) for p in (0x100000, 0x100200, 0x100400)] == [-1, -1, NORMAL]
    t.page_init_poison(0x107E00, 3 * SEC)             # into sections 33, 34 (no memmap)
    assert t.page_zonenum(0x107E00) == -1 and t.page_zonenum(0x107C00) == NORMAL


def test_page_init_poison_arguments(impl):
    """TypeError / ValueError before anything changes, with the memmap_init_zone rules."""
    t = table(impl, "5.6")
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    before = t.snapshot()
    with pytest.raises(TypeError, match="pfn"):
        t.page_init_poison("0x100000", 1)
    with pytest.raises(TypeError, match="nr_pages"):
        t.page_init_poison(0x100000, 1.0)
    with pytest.raises(ValueError, match="negative"):
        t.page_init_poison(-1, 1)
    with pytest.raises(ValueError, match="exceeds max pfn 0x400000000"):
        t.page_init_poison(t.pfn_limit - SUB, 2 * SUB)
    assert t.snapshot() == before


# ---------------------------------------------------------------------------------------------
# v5.3-v5.8: reads of the boot memmap freed by a partial removal from an early section


@pytest.mark.parametrize("kernel", ["5.3", "5.4", "5.8"])
def test_read_of_freed_early_memmap_is_a_kernel_bug(impl, kernel):
    """§4 "5.8→5.9 early partial (core)", before side: after ``sparse_remove_section`` of the
    first sub-section of boot section 32, ``pfn_valid`` stays true there, the sub-section holds
    the 0xFD marks of the vmemmap teardown, and every struct-page read of it -- page_zonenum,
    pfn_to_nid, the span probes -- is a KernelBug naming the pfn and the fix; the other
    sub-sections read normally."""
    t = table(impl, kernel)
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    assert t.sparse_remove_section(0x100000, SUB)
    assert t.pfn_valid(0x100000) and t.vmemmap_stats()["fd_subsections"] == 1
    for read in (t.page_zonenum, t.pfn_to_nid):
        with pytest.raises(KernelBug, match=r"pfn 0x100000 .*early section 32.*ef69bc9f689d.*0xFD"):
            read(0x100000)
    with pytest.raises(KernelBug, match="pfn 0x100000"):
        t.find_smallest_section_pfn(0, NORMAL, 0x100000, 0x108000)
    with pytest.raises(KernelBug, match="pfn 0x1001ff"):
        t.find_biggest_section_pfn(0, NORMAL, 0x100000, 0x100200)
    assert t.page_zonenum(0x100200) == NORMAL
    assert t.find_smallest_section_pfn(0, NORMAL, 0x100200, 0x108000) == 0x100200


@pytest.mark.parametrize("kernel", ["5.9", "5.12", "6.0"])
def test_early_partial_removal_keeps_the_memmap_from_59(impl, kernel):
    """§4 "5.8→5.9 early partial (core)", after side (ef69bc9f689d): the boot memmap stays and is
    not marked; ``section_deactivate`` still clears the initialised state of the range, so the
    struct page reads as poisoned (-1), without a KernelBug."""
    t = table(impl, kernel)
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    assert t.sparse_remove_section(0x100000, SUB)
    assert t.pfn_valid(0x100000) and t.vmemmap_stats()["fd_subsections"] == 0
    assert (t.page_zonenum(0x100000), t.pfn_to_nid(0x100000)) == (-1, -1)
    assert t.find_smallest_section_pfn(0, NORMAL, 0x100000, 0x108000) == 0x100200


def test_freed_early_memmap_written_again_reads_normally(impl):
    """5.8: re-adding the removed sub-section reuses the (0xFD-filled, still mapped) boot memmap
    (``section_activate``: early and partial); once ``memmap_init_zone`` has written it again,
    the reads are ordinary."""
    t = table(impl, "5.8")
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    t.sparse_remove_section(0x100000, SUB)
    t.sparse_add_section(0, 0x100000, SUB)
    with pytest.raises(KernelBug):
        t.page_zonenum(0x100000)
    t.memmap_init_zone(0, NORMAL, 0x100000, SUB)
    assert t.page_zonenum(0x100000) == NORMAL


def test_freed_early_memmap_whose_pmd_is_gone_faults(impl):
    """5.8: when the 0xFD marks cover the whole 2 MiB PMD, the teardown frees and unmaps it even
    though the section still has active sub-sections (0-31 re-added before 32-63 go): every
    read of the section is then a page fault."""
    t = table(impl, "5.8")
    t.memmap_init_zone(0, NORMAL, 0x100000, SEC)
    t.sparse_remove_section(0x100000, SEC // 2)
    t.sparse_add_section(0, 0x100000, SEC // 2)
    t.sparse_remove_section(0x104000, SEC // 2)
    assert t.section_vmemmap(32) is None and t.pfn_valid(0x100000)
    with pytest.raises(KernelBug, match="unmapped: page fault"):
        t.page_zonenum(0x100000)
    t9 = table(impl, "5.9")
    for t9_step in ((t9.sparse_remove_section, 0x100000, SEC // 2), (t9.sparse_add_section, 0, 0x100000, SEC // 2),
                    (t9.sparse_remove_section, 0x104000, SEC // 2)):
        t9_step[0](*t9_step[1:])
    assert t9.section_vmemmap(32) == "boot-pmd" and t9.page_zonenum(0x100000) == -1


def test_a_hot_added_section_partly_removed_is_not_reported(impl):
    """Only early sections keep ``pfn_valid`` over a freed memmap: a hot-added section's removed
    sub-section is not valid, and its read stays the plain poisoned answer."""
    t = table(impl, "5.8")
    t.sparse_add_section(0, 0x180000, SEC)
    t.memmap_init_zone(0, NORMAL, 0x180000, SEC)
    t.sparse_remove_section(0x180000, SUB)
    assert not t.pfn_valid(0x180000)
    assert t.page_zonenum(0x180000) == -1


# ---------------------------------------------------------------------------------------------
# v5.12: SECTION_TAINT_ZONE_DEVICE in the core


def test_taint_bit_lifetime(impl):
    """Row 5.12 (5.12.9 ``section_taint_zone_device``, ``section_deactivate``): the bit is ORed
    into the word, kept by a partial removal and by a re-add (``sparse_add_section`` keeps the
    flag bits below SECTION_MAP_LAST_BIT), and cleared with the rest of the word by the full
    deactivation."""
    t = table(impl, "5.12")
    t.sparse_add_section(0, 0x180000, SEC // 2)
    t.section_taint_zone_device(0x180000 + 5)
    word = t.section_mem_map(48)
    assert word & TAINT
    t.section_taint_zone_device(0x187FFF)
    assert t.section_mem_map(48) == word
    t.sparse_remove_section(0x180000, SUB)
    assert t.section_mem_map(48) & TAINT
    t.sparse_add_section(0, 0x180000, SUB)
    assert t.section_mem_map(48) & TAINT
    t.sparse_remove_section(0x180000, SEC // 2)
    assert t.section_mem_map(48) == 0


def test_taint_of_a_boot_section_and_of_an_empty_one(impl):
    """The kernel ORs the bit whatever the section holds: a boot section keeps its other flags;
    a section of an allocated root without memory gets a word of 0x10 (not present, not
    valid); a section whose root was never allocated is a NULL dereference."""
    t = table(impl, "5.12")
    before = t.section_mem_map(32)
    t.section_taint_zone_device(0x100000)
    assert t.section_mem_map(32) == before | TAINT
    t.section_taint_zone_device(0x108000)
    assert t.section_mem_map(33) == TAINT and not t.present_section_nr(33) and not t.pfn_valid(0x108000)
    with pytest.raises(KernelBug, match="NULL"):
        t.section_taint_zone_device(300 * SEC)


@pytest.mark.parametrize("kernel", ["5.3", "5.11"])
def test_no_taint_before_512(impl, kernel):
    """Before 5.12 SECTION_MAP_LAST_BIT is 1<<4: bit 4 belongs to the encoded memmap and the
    setter does not exist (RuntimeError, nothing changed)."""
    t = table(impl, kernel)
    before = t.snapshot()
    with pytest.raises(RuntimeError, match="v5.12"):
        t.section_taint_zone_device(0x100000)
    assert t.snapshot() == before


def test_taint_arguments(impl):
    t = table(impl, "5.12")
    before = t.snapshot()
    with pytest.raises(TypeError, match="pfn"):
        t.section_taint_zone_device(None)
    with pytest.raises(ValueError, match="negative"):
        t.section_taint_zone_device(-1)
    with pytest.raises(ValueError, match="exceeds max pfn"):
        t.section_taint_zone_device(t.pfn_limit)
    assert t.snapshot() == before
    with pytest.raises(ValueError, match="section_map_last_bit"):
        impl[0](46, replace(kernel_model("5.11"), section_taint_zone_device=True))


# ---------------------------------------------------------------------------------------------
# v5.12: hotplug.pfn_to_online_page and the TAINT of move_pfn_range_to_zone


@pytest.fixture(params=["compiled", "reference"])
def core(request):
    return request.param


@pytest.mark.parametrize("kernel, hole_online", [("5.11", True), ("5.12", False), ("6.12", False)])
def test_pfn_to_online_page_of_a_hole_subsection(core, kernel, hole_online):
    """§4 "5.11→5.12 pfn_to_online_page": RAM 0x100000000-0x1003fffff only in section 32;
    ``pfn_to_online_page(0x100800)``: the 5.11 macro answers the page (section online), the
    5.12 function NULL (sub-section 4 is not in the usage bitmap); pfn 0x100000 is online in
    both; a pfn beyond NR_MEM_SECTIONS and a negative one are not."""
    m = Machine.from_iomem("100000000-1003fffff : System RAM\n", kernel=kernel, core=core)
    assert H.pfn_to_online_page(m, 0x100800) is hole_online
    assert m.pfn_to_online_page(0x100800) is hole_online
    assert H.pfn_to_online_page(m, 0x100000) is True
    assert H.pfn_to_online_page(m, 0x108000) is False
    assert H.pfn_to_online_page(m, 1 << 40) is False and H.pfn_to_online_page(m, -1) is False


@pytest.mark.parametrize("kernel, device_online, taint", [("5.11", True, 0), ("5.12", False, TAINT),
                                                          ("6.0", False, TAINT)])
def test_pfn_to_online_page_and_taint_of_pmem_sharing_a_ram_section(core, kernel, device_online, taint):
    """§4 "5.11→5.12 TAINT": pmem from 0x204000000 shares boot section 64 with RAM
    (``PMEM_AFTER_RAM_IN_SECTION``); after ``memremap_pages`` the section of the misaligned start
    is tainted in 5.12+ (``move_pfn_range_to_zone``), and ``pfn_to_online_page`` of a device pfn
    there is NULL (``get_dev_pagemap`` finds the pgmap) while a RAM pfn stays online; 5.11
    answers the page for both and leaves the word alone.  The section of the aligned end
    (0x300000, section 96) is not tainted."""
    m = Machine.from_iomem(PMEM_AFTER_RAM_IN_SECTION, kernel=kernel, core=core)
    before = m.sections.section_mem_map(64)
    assert not before & TAINT
    pgmap = m.memremap_pages(0x204000000, 0x300000000 - 0x204000000)
    assert m.sections.section_mem_map(64) & TAINT == taint
    assert m.sections.section_mem_map(64) & ~TAINT == before
    assert m.sections.section_mem_map(95) & TAINT == 0
    assert H.pfn_to_online_page(m, 0x204000) is device_online
    assert H.pfn_to_online_page(m, 0x203FFF) is True
    assert H.pfn_to_online_page(m, 0x280000) is False      # a device-only section is never online
    m.memunmap_pages(pgmap)
    assert m.sections.section_mem_map(64) & TAINT == taint  # the boot section is never emptied
    assert H.pfn_to_online_page(m, 0x203FFF) is True


@pytest.mark.parametrize("kernel", ["5.11", "5.12"])
def test_move_pfn_range_to_zone_taint_rule(core, kernel):
    """5.12.9 ``move_pfn_range_to_zone``: for ZONE_DEVICE only, the section of ``start`` when it is
    not section-aligned and the section of ``start + nr`` when that is not; other zones and
    aligned edges taint nothing; 5.11 nothing at all."""
    m = Machine.from_iomem("100000000-2ffffffff : System RAM\n", kernel=kernel, core=core)
    words = {nr: m.sections.section_mem_map(nr) for nr in range(32, 96)}
    on = kernel == "5.12"
    H.move_pfn_range_to_zone(m, 0, C.ZONE_DEVICE, 0x120000, 2 * SEC)              # both aligned
    H.move_pfn_range_to_zone(m, 0, C.ZONE_NORMAL, 0x140200, SEC)                  # not ZONE_DEVICE
    H.move_pfn_range_to_zone(m, 0, C.ZONE_DEVICE, 0x150200, 2 * SEC)              # start and end
    H.move_pfn_range_to_zone(m, 0, C.ZONE_DEVICE, 0x160000, SEC + SUB)            # end only
    tainted = {nr for nr in range(32, 96) if m.sections.section_mem_map(nr) != words[nr]}
    assert tainted == ({0x150200 >> 15, 0x160200 >> 15, 0x168200 >> 15} if on else set())
    assert all(m.sections.section_mem_map(nr) == words[nr] | TAINT for nr in tainted)
