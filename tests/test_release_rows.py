"""The switches the rows of the release table set after 5.3, seen through the layers, each on both
sides of its row (later-eras-hotplug-evidence.md §4, with the releases read there; issue 10 item 3).

Run on the compiled core and on its Python twin (the ``impl`` fixture) where the switch lives in
the core.  "§" is sparse-hotplug.md, "A" later-eras-hotplug.md.
"""

from __future__ import annotations

import pytest

from helpers import boot_table
from sparsemem import Machine
from sparsemem import constants as C
from sparsemem._common import encode_null

MiB = 1 << 20
GiB = 1 << 30
SEC48 = 0x180000            # pfn of section 48 (0x180000000, above the default layout's RAM)


boot = boot_table  # tests/helpers.py (sparse-hotplug.md §3)


@pytest.mark.parametrize("kernel,word", [("5.5", encode_null(48)), ("5.6", 0), ("6.12", 0)])
def test_full_deactivation_stores_zero_from_5_6(impl, kernel, word):
    """A8 / §6.4: 5.3-5.5 store ``sparse_encode_mem_map(NULL, 48)`` (0xfffffffffa000000) after a
    whole hot-added section is removed; 5.6 (1f503443e7df, read 5.6.4) stores 0."""
    T, _ = impl
    t = T(46, kernel)
    t.sparse_add_section(0, SEC48, 0x8000)
    assert t.sparse_remove_section(SEC48, 0x8000)
    assert not t.present_section_nr(48)
    assert t.section_mem_map(48) == word


@pytest.mark.parametrize("kernel,fixed", [("5.6", False), ("5.7", True), ("6.12", True)])
def test_subsection_add_stores_struct_page_address_from_5_7(impl, kernel, fixed):
    """§5.3 step 5: a sub-section add into a new section stores the encoded ``pfn_to_kaddr`` of
    the section start in 5.3-5.6 (direct map: PAGE_OFFSET + pfn * (4096 - 64)); 5.7 ("get
    address to page struct instead of address to pfn", read 5.7.14) the vmemmap encoding, whose
    decoded value is VMEMMAP_START."""
    T, _ = impl
    t = T(46, kernel)
    t.sparse_add_section(0, SEC48 + 0x200, 0x200)
    addr = t.section_mem_map(48) & ~0x1F
    expected = C.VMEMMAP_BASE_4LVL if fixed else C.PAGE_OFFSET_4LVL + SEC48 * (4096 - 64)
    assert addr == expected
    assert t.pfn_valid(SEC48 + 0x200) and not t.pfn_valid(SEC48)


@pytest.mark.parametrize("kernel,frees", [("5.8", True), ("5.9", False), ("6.12", False)])
def test_partial_removal_from_early_section_keeps_memmap_from_5_9(impl, kernel, frees):
    """§6.4 table row 2: 5.3-5.8 free (0xFD-fill) the boot memmap of the removed sub-section while
    ``pfn_valid`` stays true; 5.9 (ef69bc9f689d "mm/sparse: never partially remove memmap for
    early section", read 5.9.1) leaves the boot memmap alone."""
    T, _ = impl
    t = boot(T, kernel, [(0, 0x8000)])
    pmds = t.vmemmap_stats()["boot_pmds"]
    assert t.sparse_remove_section(0, 512)
    assert t.early_section_nr(0) and t.pfn_valid(512)
    assert t.vmemmap_stats()["fd_subsections"] == (1 if frees else 0)
    assert t.vmemmap_stats()["boot_pmds"] == pmds


@pytest.mark.parametrize("kernel,bare_metal", [("5.8", 128 * MiB), ("5.9", 2 * GiB), ("6.12", 2 * GiB)])
def test_bare_metal_block_size_from_5_9(kernel, bare_metal):
    """§1.1 ``probe_memory_block_size``: from 5.9 (fe124c95df9e, read 5.9.1) bare metal with boot
    memory ending at or above 64 GiB uses 2 GiB blocks whatever the alignment; under a hypervisor
    (and before 5.9) the largest block size dividing the end (here 128 MiB)."""
    text = f"00001000-0009ffff : System RAM\n100000000-{64 * GiB + 128 * MiB - 1:x} : System RAM\n"
    m = Machine.from_iomem(text, kernel=kernel, hypervisor=False)
    assert m.memory_block_size == bare_metal
    assert m.sysfs["block_size_bytes"] == f"{bare_metal:x}\n"
    assert Machine.from_iomem(text, kernel=kernel).memory_block_size == 128 * MiB


@pytest.mark.parametrize("kernel,before,after", [
    ("5.11", 0x15, 0x0F),       # shift 3, mask 1<<4: nid bit 0 on IS_EARLY, bit 1 dropped
    ("5.12", 0x15, 0x1F),       # mask 1<<5: nid bit 1 survives as SECTION_TAINT_ZONE_DEVICE
    ("5.14", 0x15, 0x1F),
    ("5.15", 0x85, 0x0F),       # SECTION_NID_SHIFT 6 (§10 #17)
    ("5.19", 0x85, 0x0F),
    ("6.0", 0x45, 0x0F),        # SECTION_NID_SHIFT = SECTION_MAP_LAST_BIT = 5 (§10 #19)
    ("6.12", 0x45, 0x0F),
])
def test_early_nid_and_flag_mask_per_row(impl, kernel, before, after):
    """A1 / §3: ``memory_present`` stores ``nid << SECTION_NID_SHIFT | ONLINE | PRESENT``;
    ``sparse_init`` keeps the bits below SECTION_MAP_LAST_BIT.  For node 2 the word before and the
    flag bits after ``sparse_init`` (later-eras-hotplug-evidence.md §4, rows 5.12, 5.15, 6.0)."""
    T, _ = impl
    t = T(46, kernel)
    t.memory_present(2, SEC48, SEC48 + 0x8000)
    assert t.section_mem_map(48) == before
    t.sparse_init()
    assert t.section_mem_map(48) & 0xFF == after
    assert t.section_mem_map(48) & ~0x1F == C.VMEMMAP_BASE_4LVL
