"""memremap-nvdimm.md §3.4 worked example (1 GiB fsdax at 0x2_0400_0000, align 2 MiB), both eras,
and §4.1/§4.2 (legacy block re-placed by firmware)."""

from __future__ import annotations

import errno

import pytest

from helpers import PMEM_AFTER_RAM_IN_SECTION, RAM_4G_PMEM_4G, GiB, MiB
from sparsemem.errors import KernelError
from sparsemem.kernel import row_releases
from sparsemem.machine import Machine
from sparsemem.nvdimm import bus
from sparsemem.nvdimm.infoblock import InfoBlock

NS_START = 0x2_0400_0000

# scenario A: System RAM fills section 64 below the namespace (pmem follows RAM, §3.4)
LAYOUT_A = PMEM_AFTER_RAM_IN_SECTION
# scenario B: nothing but this region in sections 64 and 72; a raw 64 MiB namespace (never
# memremapped, invisible to trim_pfn_device) fills [0x2_0000_0000, 0x2_0400_0000)
LAYOUT_B = RAM_4G_PMEM_4G


def _ns_b(m, size=GiB, **kw):
    r = m.regions[0]
    r.create_namespace(size=64 * MiB, mode="raw")
    return r.create_namespace(size=size, **kw)


def test_scenario_a_pre_series():
    """§3.4 scenario A (v5.2): start_pad 64 MiB, dataoff 18 MiB, npfns 241 152, 8 altmap PMDs."""
    m = Machine.from_iomem(LAYOUT_A, kernel="5.2")
    before = m.sections.vmemmap_stats()
    ns = m.regions[0].create_namespace(size=GiB)
    assert ns.start == NS_START
    assert (ns.start_pad, ns.end_trunc, ns.dataoff, ns.npfns) == (64 * MiB, 0, 18 * MiB, 241152)
    assert ns.size == 942 * MiB
    assert "nd_pmem pfn0.0: namespace0.0 alignment collision, truncate 67108864 bytes" in m.dmesg
    pg = ns.pgmap
    assert (pg.start, pg.end) == (0x2_0800_0000, 0x2_43FF_FFFF)
    assert (pg.mapped_start, pg.mapped_size) == (0x2_0800_0000, 8 * 128 * MiB)   # sections 65-72
    a = pg.altmap
    assert (a.base_pfn, a.reserve, a.free, a.align, a.alloc) == (0x208000, 2, 4606, 510, 4096)
    after = m.sections.vmemmap_stats()
    assert after["pmds_altmap"] - before["pmds_altmap"] == 8          # 16 MiB memmap, all pmem
    assert after["base_pages_ram"] == before["base_pages_ram"]        # 0 RAM pages
    assert after["pmds_ram"] == before["pmds_ram"]
    # the on-media block: version 1.2, the §1.3 field values
    sb = InfoBlock.unpack(m.regions[0].media.read(ns.offset + 4096, 4096))
    fields = (sb.version_minor, sb.dataoff, sb.npfns, sb.start_pad, sb.align)
    assert fields == (2, 0x1200000, 241152, 0x4000000, 0x200000)


def test_scenario_b_pre_series_enomem_partial_state():
    """§3.4 scenario B (v5.2): block written fine, enabling needs 9 PMDs but the altmap holds 8
    -> -ENOMEM (create reports ENXIO, §8); DERIVED: sections 64-71 stay added (no rollback)."""
    m = Machine.from_iomem(LAYOUT_B, kernel="5.2")
    r = m.regions[0]
    r.create_namespace(size=64 * MiB, mode="raw")
    iomem_before = m.iomem.snapshot()
    avail = r.available_size
    alt0 = m.sections.vmemmap_stats()["pmds_altmap"]
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=GiB)
    assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.ENOMEM
    assert r.available_size == avail and m.iomem.snapshot() == iomem_before
    assert not any("alignment collision" in line for line in m.dmesg)   # start_pad = end_trunc = 0
    # partial state: sections 64..71 present with their memmaps in the altmap, section 72 not
    assert [m.sections.present_section_nr(n) for n in range(64, 73)] == [True] * 8 + [False]
    assert m.sections.vmemmap_stats()["pmds_altmap"] - alt0 == 8
    assert m.pgmaps == [] and m.get_dev_pagemap(0x204000) is None


def test_scenario_b_960mib_counter_example_enables():
    """§3.4 reviewer correction: 960 MiB at the same start enables (K = N = 8, 510 + 8*512 = 4606)."""
    m = Machine.from_iomem(LAYOUT_B, kernel="5.2")
    ns = _ns_b(m, size=960 * MiB)
    assert (ns.start, ns.start_pad, ns.end_trunc) == (NS_START, 0, 0)
    a = ns.pgmap.altmap
    assert (a.base_pfn, a.reserve, a.free) == (0x200000, 2 + 16384, 4606)
    assert a.align + a.alloc == 4606


def test_v53_numbers_not_early():
    """§3.4 After (v5.3), section 64 not early: 14 MiB in pmem + 2 MiB (512 pages) in RAM."""
    m = Machine.from_iomem(LAYOUT_B, kernel="5.3")
    before = m.sections.vmemmap_stats()
    ns = _ns_b(m)
    assert (ns.start_pad, ns.end_trunc, ns.dataoff, ns.npfns) == (0, 0, 18 * MiB, 257536)
    assert ns.size == GiB - 18 * MiB
    a = ns.pgmap.altmap
    assert (a.base_pfn, a.reserve, a.free, a.align, a.alloc) == (0x204000, 2, 4606, 510, 3584)
    d = {k: m.sections.vmemmap_stats()[k] - before[k] for k in before}
    assert d["pmds_altmap"] == 7 and d["base_pages_ram"] == 512 and d["pte_tables"] == 2
    assert d["memmap_bytes"] == 16 * MiB                 # 262 144 struct pages
    assert m.sections.subsection_map(64) == 0xFFFFFFFF00000000 and m.sections.subsection_map(72) == 0xFFFFFFFF
    sb = InfoBlock.unpack(m.regions[0].media.read(ns.offset + 4096, 4096))
    assert (sb.version_minor, sb.dataoff, sb.npfns, sb.align) == (3, 0x1200000, 257536, 0x200000)


def test_v53_numbers_early_section():
    """§3.4 After (v5.3) with RAM below: section 64 is early -> zero new pages there."""
    m = Machine.from_iomem(LAYOUT_A, kernel="5.3")
    before = m.sections.vmemmap_stats()
    ns = m.regions[0].create_namespace(size=GiB)
    assert (ns.start, ns.start_pad, ns.dataoff, ns.npfns) == (NS_START, 0, 18 * MiB, 257536)
    d = {k: m.sections.vmemmap_stats()[k] - before[k] for k in before}
    assert d["pmds_altmap"] == 7 and d["base_pages_ram"] == 256
    assert not any("alignment collision" in line for line in m.dmesg)


def test_v53_ram_mode_variant():
    """§3.4 PFN_MODE_RAM (v5.3): dataoff 2 MiB, npfns 261 632, 7 RAM PMDs + 512 base pages."""
    m = Machine.from_iomem(LAYOUT_B, kernel="5.3")
    before = m.sections.vmemmap_stats()
    ns = _ns_b(m, map="mem")
    assert (ns.dataoff, ns.npfns, ns.map) == (2 * MiB, 261632, "mem")
    assert ns.pgmap.altmap is None
    d = {k: m.sections.vmemmap_stats()[k] - before[k] for k in before}
    assert d["pmds_ram"] == 7 and d["base_pages_ram"] == 512 and d["pmds_altmap"] == 0


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_section_4_2_firmware_moves_legacy_block(kernel):
    """§4.2: the scenario-A block (start_pad 64 MiB) re-placed 32 MiB lower by firmware.
    Validation passes everywhere; v5.1/v5.2 widen to a section holding RAM -> -ENXIO (mixed
    region WARN); v5.3 maps the exact range and enables."""
    m = Machine.from_iomem(LAYOUT_A, kernel="5.2")
    m.regions[0].create_namespace(size=GiB)
    moved = "100000000-201ffffff : System RAM\n202000000-2fdffffff : Persistent Memory\n"
    m2 = bus.reboot(m, iomem=moved, kernel=kernel)   # same media, possibly the newer kernel
    (ns,) = m2.regions[0].namespaces
    assert ns.start == 0x2_0200_0000 and ns.mode == "fsdax"
    if kernel == "5.2":
        assert not ns.enabled
        assert ns.error[0] == errno.ENXIO
        assert "devm_memremap_pages attempted on mixed region [mem 0x206000000-0x241ffffff flags 0x200]" in ns.error[1]
    else:
        assert ns.enabled and ns.error is None
        assert (ns.pgmap.start, ns.pgmap.end) == (0x2_0600_0000, 0x2_41FF_FFFF)
        assert ns.start_pad == 64 * MiB


# ------------------------------------------------------------------ every row (issue 11)
def _n1_expected(model):
    """§3.4's N1 (1 GiB fsdax from 0x2_0400_0000, align 2 MiB) recomputed from the formulas of
    MN §3.1/§3.2 and later-eras-nvdimm.md §11 for the row: (start_pad, dataoff, npfns, usable,
    minor, page_struct_size recorded)."""
    start = NS_START
    if model.nvdimm_pads_to_sections:        # 5.1/5.2: section 64 holds RAM -> pad to section 65
        sp = -(-start // (128 * MiB)) * 128 * MiB - start
        npfns_r = -(-((GiB - sp - 8192) // 4096) // 32768) * 32768
        dataoff = -(-(start + sp + 8192 + 64 * npfns_r) // (2 * MiB)) * 2 * MiB - (start + sp)
        return sp, dataoff, (GiB - sp - dataoff) // 4096, GiB - sp - dataoff, 2, 0
    psz = model.max_struct_page_size         # 128 in 6.1.0-6.1.11 (R18), else 64
    dataoff = -(-(start + 8192 + psz * ((GiB - 8192) // 4096)) // (2 * MiB)) * 2 * MiB - start
    minor = model.infoblock_minor
    return 0, dataoff, (GiB - dataoff) // 4096, GiB - dataoff, minor, (psz if minor >= 4 else 0)


@pytest.mark.parametrize("kernel", list(row_releases()) + ["6.1.5", "6.1.11"])
def test_n1_on_every_row(kernel):
    """The §3.4 worked example (scenario A) on every row of the table, numbers from the
    formulas; the memmap placement is the §3.4 "After" one from 5.3 on (7 altmap PMDs, section
    64 early, section 72's 64 MiB in RAM base pages), the 8 PMDs of "Before" in 5.1/5.2."""
    m = Machine.from_iomem(LAYOUT_A, kernel=kernel)
    before = m.sections.vmemmap_stats()
    ns = m.regions[0].create_namespace(size=GiB)
    sp, dataoff, npfns, usable, minor, psz = _n1_expected(m.model)
    assert (ns.start, ns.start_pad, ns.dataoff, ns.npfns, ns.size) == (NS_START, sp, dataoff, npfns, usable)
    sb = InfoBlock.unpack(m.regions[0].media.read(ns.offset + 4096, 4096))
    assert (sb.version_minor, sb.page_struct_size, sb.dataoff, sb.npfns) == (minor, psz, dataoff, npfns)
    d = {k: m.sections.vmemmap_stats()[k] - before[k] for k in before}
    if m.model.nvdimm_pads_to_sections:
        assert (d["pmds_altmap"], d["base_pages_ram"]) == (8, 0)
    else:
        assert (d["pmds_altmap"], d["base_pages_ram"]) == (7, 64 * MiB // 4096 * 64 // 4096)
