"""cases.md section A: the ndctl unit tests ported as kernel-level scenarios (both eras)."""

from __future__ import annotations

import errno

import pytest

from helpers import GiB, MiB
from sparsemem.errors import KernelError
from sparsemem.machine import Machine
from sparsemem.nvdimm.infoblock import InfoBlock

# an ACPI.NFIT-like region at a 128 MiB-aligned base, alone in its sections (cases.md A1, A9)
REGION_ALIGNED = "100000000-1ffffffff : System RAM\n200000000-23fffffff : Persistent Memory\n"
# variant: region base R + 64 MiB (A1 variant)
REGION_PLUS64 = "100000000-1ffffffff : System RAM\n204000000-243ffffff : Persistent Memory\n"


@pytest.mark.parametrize("layout,base", [(REGION_ALIGNED, 0x200000000)])
def test_A1_sub_section_v52_second_namespace_conflicts(layout, base):
    """A1 on v5.1/v5.2: ns0 succeeds with 12 MiB; ns1 (same section, same region) fails with
    "Conflicting mapping in same section" and the create returns ENXIO (cases.md A1)."""
    m = Machine.from_iomem(layout, kernel="5.2")
    r = m.regions[0]
    ns0 = r.create_namespace(size=16 * MiB)
    assert ns0.start == base and ns0.size == 12 * MiB
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=16 * MiB)
    assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.ENOMEM
    # dev_WARN: message, WARNING line
    assert m.dmesg[-2] == "nd_pmem pfn0.1: Conflicting mapping in same section"
    assert "devm_memremap_pages+" in m.dmesg[-1]
    assert m.snapshot() == snap                      # nothing changed
    assert len(r.namespaces) == 1


def test_A1_sub_section_v52_plus64_variant_endpoint_probe_hole():
    """A1 variant R + 64 MiB on v5.2 (DERIVED from MN §6.5: only the two endpoint pfns of the
    widened range are probed).  ns0..ns3 lie in the upper half of section 64; the probes of
    ns1..ns3 (pfns 0x200000 and 0x207fff) miss the exact ranges of ns0..ns2, so they enable and
    silently share section 64's memmap (-EEXIST swallowed by __add_pages); ns4 opens
    section 65; ns5's widened start probes ns4's first pfn -> "Conflicting mapping"."""
    m = Machine.from_iomem(REGION_PLUS64, kernel="5.2")
    r = m.regions[0]
    ok = [r.create_namespace(size=16 * MiB) for _ in range(5)]
    assert [ns.start for ns in ok] == [0x204000000 + 16 * MiB * i for i in range(5)]
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=16 * MiB)
    assert ei.value.kernel_errno == errno.ENOMEM
    # dev_WARN: message, WARNING line
    assert m.dmesg[-2] == "nd_pmem pfn0.5: Conflicting mapping in same section"
    assert "devm_memremap_pages+" in m.dmesg[-1]


@pytest.mark.parametrize("layout,base", [(REGION_ALIGNED, 0x200000000), (REGION_PLUS64, 0x204000000)])
def test_A1_sub_section_v53_all_succeed(layout, base):
    """A1 on v5.3: ten 16 MiB namespaces back to back, each 14 MiB; disable/enable restores the
    same 8 sub-section bits; after the final destroy every touched section is released."""
    m = Machine.from_iomem(layout, kernel="5.3")
    r = m.regions[0]
    nss = [r.create_namespace(size=16 * MiB) for _ in range(10)]
    sec = base >> 27
    for i, ns in enumerate(nss):
        assert ns.start == base + 16 * MiB * i and ns.size == 14 * MiB and ns.dataoff == 2 * MiB
        assert ns.to_dict()["blockdev"] == ("pmem0" if i == 0 else f"pmem0.{i}")
    touched = sorted({(ns.start >> 27) for ns in nss} | {((ns.end - 1) >> 27) for ns in nss})
    assert touched[0] == sec

    def bits(ns):
        s = ns.start >> 27
        return s, m.sections.subsection_map(s)

    for ns in nss:
        s, full = bits(ns)
        shift = (ns.start - (s << 27)) >> 21
        mine = 0xFF << shift
        assert full & mine == mine
        ns.disable()
        assert m.sections.subsection_map(s) & mine == 0
        assert m.get_dev_pagemap(ns.start >> 12) is None
        ns.enable()
        assert m.sections.subsection_map(s) == full       # exactly the same 8 bits back
        ns.destroy()
    for s in touched:
        assert m.sections.subsection_map(s) == 0
        assert not m.sections.present_section_nr(s)
    # (v5.3-v5.5 leave sparse_encode_mem_map(NULL) in section_mem_map: not present, not valid)
    assert all(not m.sections.valid_section_nr(s) for s in touched)
    assert r.available_size == r.size and m.pgmaps == []


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A2_multi_dax(kernel):
    """A2 real-hardware translation: two 16 MiB devdax, align 4 KiB, in one region."""
    m = Machine.from_iomem(REGION_ALIGNED, kernel=kernel)
    r = m.regions[0]
    d0 = r.create_namespace(size=16 * MiB, mode="devdax", align=4096)
    assert d0.to_dict()["chardev"] == "dax0.0"
    if kernel == "5.2":
        with pytest.raises(KernelError) as ei:
            r.create_namespace(size=16 * MiB, mode="devdax", align=4096)
        assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.ENOMEM
        # dev_WARN: message, WARNING line
        assert m.dmesg[-2] == "dax_pmem dax0.1: Conflicting mapping in same section"
        assert "devm_memremap_pages+" in m.dmesg[-1]
    else:
        d1 = r.create_namespace(size=16 * MiB, mode="devdax", align=4096)
        assert d1.size == 14 * MiB
        assert m.sections.subsection_map(0x200000000 >> 27) == 0xFFFF      # bits 0-7 and 8-15
        assert not any("Call Trace" in line for line in m.dmesg)


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A3_max_available_extent(kernel):
    """A3: 3 x available/4 in a 64 MiB region, destroy the middle one, create with no size."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n200000000-203ffffff : Persistent Memory\n",
                           kernel=kernel)
    r = m.regions[0]
    a = r.create_namespace(size=r.available_size // 4)
    if kernel == "5.2":
        with pytest.raises(KernelError):
            r.create_namespace(size=16 * MiB)          # "v5.1 fails at B already"
        return
    b = r.create_namespace(size=16 * MiB)
    c = r.create_namespace(size=16 * MiB)
    assert (a.offset, b.offset, c.offset) == (0, 16 * MiB, 32 * MiB)
    b_bits = 0xFF << 8
    b.disable()
    b.destroy()
    assert m.sections.subsection_map(0x200000000 >> 27) & b_bits == 0
    d = r.create_namespace()                          # largest extent; tie -> lowest (the hole)
    assert d.offset == 16 * MiB and d.raw_size == 16 * MiB
    assert m.sections.subsection_map(0x200000000 >> 27) == 0xFFFFFF


def test_A4_align_v53():
    """A4 under pure v5.3 rules: 1 GiB + 8 KiB align 4K at a 1 GiB-aligned start succeeds
    (end_trunc 8 KiB) and survives disable/enable; the next one starts 8 KiB past a 1 GiB
    boundary and fails ("memory add fail, invalid altmap", -EINVAL -> ENXIO)."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n400000000-4ffffffff : Persistent Memory\n",
                           kernel="5.3")
    r = m.regions[0]
    ns = r.create_namespace(size=GiB + 8192, align=4096)
    assert (ns.end_trunc, ns.dataoff, ns.size) == (8192, 18 * MiB, GiB - 18 * MiB)
    ns.disable()
    ns.enable()
    assert ns.enabled
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=GiB + 8192, align=4096)
    assert ei.value.kernel_errno == errno.EINVAL
    assert m.snapshot() == snap


def test_A4_align_v52_derived():
    """A4 step 1 under v5.2 rules (DERIVED): end not section aligned, no neighbour -> no
    end_trunc; 9 sections mapped with an 8-section memmap reserve -> altmap -ENOMEM."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n400000000-4ffffffff : Persistent Memory\n",
                           kernel="5.2")
    with pytest.raises(KernelError) as ei:
        m.regions[0].create_namespace(size=GiB + 8192, align=4096)
    assert ei.value.kernel_errno == errno.ENOMEM


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
@pytest.mark.parametrize("align", [GiB, 2 * MiB, 4096])
def test_A4_step5_aligns(kernel, align):
    """A4 step 5: fsdax 2 GiB at a 1 GiB-aligned start with align 1G/2M/4K: create, disable,
    enable, destroy all succeed."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n400000000-4ffffffff : Persistent Memory\n",
                           kernel=kernel)
    ns = m.regions[0].create_namespace(size=2 * GiB, align=align)
    assert ns.to_dict()["align"] == align
    ns.disable()
    ns.enable()
    ns.destroy()
    assert m.regions[0].available_size == 4 * GiB and m.pgmaps == []


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A5_e820_legacy_pmem_reconfigure(kernel):
    """A5: memmap=4G!4G legacy pmem, 128 MiB aligned: raw -> fsdax -> raw both succeed."""
    m = Machine.from_iomem("BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable\n"
                           "BIOS-e820: [mem 0x0000000100000000-0x00000001ffffffff] persistent (type 12)\n",
                           kernel=kernel)
    r = m.regions[0]
    raw = r.create_namespace(mode="raw")
    assert raw.to_dict() == {**raw.to_dict(), "mode": "raw", "size": 4 * GiB, "blockdev": "pmem0"}
    raw.destroy()
    fs = r.create_namespace(mode="fsdax", map="dev")
    assert fs.start_pad == 0 and fs.end_trunc == 0 and fs.dataoff == 66 * MiB
    fs.destroy()
    assert r.create_namespace(mode="raw").size == 4 * GiB


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A6_pfn_meta_dataoff_matches_formula(kernel):
    """A6: the data offset read from the info block (offset 4096 + 56) is §2's formula."""
    m = Machine.from_iomem(REGION_ALIGNED, kernel=kernel)
    ns = m.regions[0].create_namespace(size=512 * MiB)
    raw = m.regions[0].media.read(ns.offset + 4096 + 56, 8)
    dataoff = int.from_bytes(raw, "little")
    npfns_r = (512 * MiB - 8192) // 4096
    if kernel == "5.2":
        npfns_r = -(-npfns_r // 32768) * 32768
    expect = -(-(0x200000000 + 8192 + 64 * npfns_r) // (2 * MiB)) * 2 * MiB - 0x200000000
    assert dataoff == expect == ns.dataoff


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A8_multi_range_subsection_stress(kernel):
    """A8: several memremap_pages ranges on 2 MiB boundaries inside one section: v5.3 only;
    the section-widening era refuses the second range of the same section."""
    m = Machine.from_iomem(REGION_ALIGNED, kernel=kernel)
    base = 0x200000000
    p0 = m.memremap_pages(base, 32 * MiB, type="devdax")
    if kernel == "5.2":
        with pytest.raises(KernelError) as ei:
            m.memremap_pages(base + 64 * MiB, 32 * MiB, type="devdax")
        assert ei.value.errno == errno.ENOMEM
        return
    p1 = m.memremap_pages(base + 64 * MiB, 32 * MiB, type="devdax")
    p2 = m.memremap_pages(base + 32 * MiB, 2 * MiB, type="devdax")
    assert m.sections.subsection_map(base >> 27) == (0xFFFF | (0xFFFF << 32) | (1 << 16))
    for p in (p1, p0, p2):
        m.memunmap_pages(p)
    assert m.sections.subsection_map(base >> 27) == 0


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A9_nfit_test_regions_alone_in_their_sections(kernel):
    """A9: nfit_test SPA ranges at 128 MiB-aligned addresses: whole-region fsdax works."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n"
                           "108000000-109ffffff : Persistent Memory\n".replace("108000000-109ffffff",
                                                                             "208000000-209ffffff")
                           + "210000000-213ffffff : Persistent Memory\n", kernel=kernel)
    for r in m.regions:
        ns = r.create_namespace()
        assert ns.enabled and ns.start_pad == 0 and ns.end_trunc == 0


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_A10_create_raw_fsdax_sector_destroy(kernel):
    """A10 (create.sh): raw -> fsdax -> sector(4K) -> destroy on one namespace; both pass."""
    m = Machine.from_iomem(REGION_ALIGNED, kernel=kernel)
    r = m.regions[0]
    for mode in ("raw", "fsdax", "sector"):
        ns = r.create_namespace(size=256 * MiB, mode=mode)
        d = ns.to_dict()
        assert d["mode"] == mode and d["dev"] == "namespace0.0"
        if mode == "sector":
            assert d["sector_size"] == 4096 and d["blockdev"] == "pmem0s"
        if mode == "fsdax":
            sb = InfoBlock.unpack(r.media.read(4096, 4096))
            assert sb.parent_uuid == ns.uuid
        ns.destroy()
        assert m.iomem.snapshot() == Machine.from_iomem(REGION_ALIGNED, kernel=kernel).iomem.snapshot()
    assert r.available_size == r.size and r.namespaces == []
