"""Regression tests for review findings on the nvdimm pfn/dax paths (memremap-nvdimm.md, "MN").

Each test names the § it checks: §3.1 nd_region_conflict, §4 "Deltas: v5.4" raw fallback,
§5 u64 wrap of free/npfns, §5.2 alloc_dax_region raw align, §6.2 check_pfn_span on a
page-misaligned range, and the create/reboot robustness rules of api.md."""

from __future__ import annotations

import errno

import pytest

from sparsemem.errors import KernelError
from sparsemem.machine import Machine
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import InfoBlock

MiB = 1 << 20
LAYOUT = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory\n"


def _rewrite(m, ns, **fields):
    media = m.regions[0].media
    sb = InfoBlock.unpack(media.read(ns.offset + 4096, 4096))
    media.write(ns.offset + 4096, sb.copy(**fields).pack())
    return sb


# ------------------------------------------------------------------ §3.1 nd_region_conflict
class _R:
    def __init__(self, start, size):
        self.start, self.size = start, size


def test_region_conflict_inclusive_exclusive_end():
    """§3.1: conflict iff o.start <= start < o.start+o.size, or the probe's exclusive end lies
    in (o.start, o.start+o.size] -- the other region's *exclusive* end is included."""
    me, other = _R(0x1_0000_0000, 64 * MiB), _R(0x1_0400_0000, 64 * MiB)
    regs = [me, other]
    # probe ending exactly at the other region's exclusive end: conflict (was missed)
    assert P.nd_region_conflict(regs, me, 0x1_0000_0000, 128 * MiB)
    # probe ending exactly at the other region's start: no conflict
    assert not P.nd_region_conflict(regs, me, 0x1_0000_0000, 64 * MiB)
    # first byte at the other region's last byte: conflict; at its exclusive end: none
    assert P.nd_region_conflict(regs, me, 0x1_07ff_f000, 4096)
    assert not P.nd_region_conflict(regs, me, 0x1_0800_0000, 4096)
    # strictly containing the other region: not a conflict (§3.1)
    assert not P.nd_region_conflict(regs, me, 0x1_0000_0000, 256 * MiB)


def test_adjacent_regions_tail_conflict_v52():
    """§3.1 steps 4-7: namespace0.0 fills region0 [4 GiB, +64 MiB); the tail probe
    [start, SEC_UP(end)) = [4 GiB, 4 GiB + 128 MiB) ends exactly at region1's end -> conflict ->
    end_trunc = end - min(SEC_DN(end), ADN(end, 2M)) = 64 MiB; then dataoff + 64 MiB >= 64 MiB
    -> "unable to satisfy requested alignment", -ENXIO, nothing created."""
    m = Machine.from_iomem("00100000-bfffffff : System RAM\n100000000-103ffffff : Persistent Memory\n"
                           "104000000-107ffffff : Persistent Memory\n", kernel="5.2")
    r = m.regions[0]
    assert P.trim_pfn_device(m.iomem, m.regions, r, r.start, r.size, P.SZ_2M) == (0, 64 * MiB)
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace()
    assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.ENXIO
    assert m.dmesg[-2:] == ["nd_pmem pfn0.0: namespace0.0 alignment collision, truncate 67108864 bytes",
                            "nd_pmem pfn0.0: namespace0.0 unable to satisfy requested alignment"]
    assert m.snapshot() == snap and r.namespaces == []


# ------------------------------------------------------------------ §4 Deltas: raw fallback
@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_probe_validation_error_falls_back_to_raw(kernel):
    """§4 "Deltas: v5.4" (v5.1-v5.3 fall back): a pfn block failing #11 (align > capacity)
    leaves the namespace attached raw with ns.error = (EINVAL, dev_err line)."""
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    ns = m.regions[0].create_namespace(size=256 * MiB, align=P.SZ_2M)
    _rewrite(m, ns, align=1 << 30)
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    line = f"nd_pmem pfn0.0: alignment: {1 << 30:x} exceeds capacity {256 * MiB:x}"
    assert ns2.enabled and ns2.mode == "raw" and ns2.size == 256 * MiB
    assert ns2.error == (errno.EINVAL, line) and m2.dmesg[-1] == line
    assert m2.model.pmem_probe_falls_back_to_raw
    assert [res.name for res in ns2.resources] == ["namespace0.0"]


def test_probe_without_raw_fallback_switch_raises_validation_error():
    """The KernelModel switch (§4 "Deltas: v5.4"): without the fallback the probe fails and the
    namespace stays disabled with the validation error, and no driver-core line is invented."""
    from dataclasses import replace

    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    ns = m.regions[0].create_namespace(size=256 * MiB)
    _rewrite(m, ns, align=1 << 30)
    m2 = m.reboot()
    for old in list(m2.regions[0].namespaces):
        old.disable()
    m2.regions[0].namespaces.clear()
    m2.model = replace(m2.model, pmem_probe_falls_back_to_raw=False)
    from sparsemem.nvdimm.bus import probe_all
    probe_all(m2.nvdimm)
    (ns2,) = m2.regions[0].namespaces
    assert not ns2.enabled and ns2.error[0] == errno.EINVAL
    assert not any("probe of" in l for l in m2.dmesg)


# ------------------------------------------------------------------ §6.2: page-misaligned ranges
def test_create_on_page_misaligned_region_v53_einval_no_leak():
    """§3.2 + §6.2 step 2: a region starting 2 KiB into a page: v5.3 writes the block, the pgmap
    range [0x200000800, 0x203ffffff] is PHYS_PFN-truncated by arch_add_memory (pfn 0x200000,
    0x3fff pages) and check_pfn_span fails -> "Misaligned __add_pages ..." -EINVAL; the
    region is exactly as before (no leaked namespace, labels, media or iomem claim)."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n200000800-2400007ff : Persistent Memory\n",
                           kernel="5.3")
    r = m.regions[0]
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=64 * MiB)
    assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.EINVAL
    assert "Misaligned __add_pages start: 0x200000 end: #203ffe" in m.dmesg
    assert m.snapshot() == snap and r.namespaces == [] and r.available_size == r.size
    assert m.pgmaps == [] and m.get_dev_pagemap(0x200000) is None


def test_create_on_page_misaligned_region_v52_enxio():
    """§3.1: the legacy trim truncates the unaligned tail (end_trunc = 64 MiB + 2 KiB) and
    nd_pfn_init fails with -ENXIO; nothing is left behind."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n200000800-2400007ff : Persistent Memory\n",
                           kernel="5.2")
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.regions[0].create_namespace(size=64 * MiB)
    assert ei.value.kernel_errno == errno.ENXIO and m.snapshot() == snap


def test_create_rolls_back_on_non_kernel_error(monkeypatch):
    """api.md create_namespace: any exception (not only KernelError) leaves the region as before."""
    from sparsemem.nvdimm import namespace as NS

    def boom(*a, **k):
        raise RuntimeError("injected")
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    snap = m.snapshot()
    monkeypatch.setattr(NS, "memremap_pages", boom)
    with pytest.raises(RuntimeError):
        m.regions[0].create_namespace(size=256 * MiB)
    assert m.snapshot() == snap and m.regions[0].namespaces == []


def test_reboot_page_misaligned_start_pad_never_raises():
    """§5 + §6.2: a crafted block with start_pad = align = 0x800 passes validation; v5.3's
    __nvdimm_setup_pfn range [ns_start+0x800, ...] fails check_pfn_span (-EINVAL), recorded in
    ns.error (the Misaligned line, not the WARN banner); reboot does not raise."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    ns = m.regions[0].create_namespace(size=256 * MiB)
    _rewrite(m, ns, start_pad=0x800, align=0x800)
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    assert not ns2.enabled and ns2.error == (errno.EINVAL, "Misaligned __add_pages start: 0x200000 end: #20fffe")
    assert m2.pgmaps == [] and ns2.resources == []
    assert m2.dmesg[-1] == "nd_pmem: probe of pfn0.0 failed with error -22"


# ------------------------------------------------------------------ §5.2 alloc_dax_region
@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_devdax_zero_raw_align_enomem(kernel):
    """§5.2: alloc_dax_region uses the raw on-media sb.align; a zero align fails -ENOMEM even
    though validation (#9) substituted 2^ilog2(dataoff) = 2 MiB and passed."""
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    ns = m.regions[0].create_namespace(size=256 * MiB, mode="devdax", map="mem")
    sb = _rewrite(m, ns, align=0)
    assert sb.dataoff == 2 * MiB
    vr = P.nd_pfn_validate(m.regions[0].media.read(ns.offset + 4096, 4096), P.DAX_SIG, ns_start=ns.start,
                           ns_size=ns.raw_size, ns_uuid=ns.uuid)
    assert vr.rc == 0 and vr.sb.align == 2 * MiB and vr.raw_align == 0
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    assert not ns2.enabled and ns2.error[0] == errno.ENOMEM
    assert m2.pgmaps == [] and ns2.resources == []


# ------------------------------------------------------------------ §5 u64 wrap
@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_pmem_dataoff_below_8k_wraps_free(kernel):
    """§5/§6.2: PMEM mode dataoff 4 KiB: free = PFN(dataoff - 8K) wraps as u64, so __add_pages
    rejects the altmap ("memory add fail, invalid altmap", -EINVAL) with nothing added."""
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    sb = InfoBlock.new(P.PFN_SIG, bytes(16), bytes(16), dataoff=4096, npfns=1, mode=P.PFN_MODE_PMEM,
                       start_pad=0, end_trunc=0, align=4096, version_minor=3)
    rc, setup, _ = P.nvdimm_setup_pfn(m.model, sb, 0x2_0000_0000, 256 * MiB)
    assert rc == 0 and setup.altmap[2] == ((4096 - 8192) & (2**64 - 1)) >> 12
    ns = m.regions[0].create_namespace(size=256 * MiB, align=4096)
    _rewrite(m, ns, dataoff=4096)
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    assert not ns2.enabled and ns2.error == (errno.EINVAL, "memory add fail, invalid altmap")
    assert m2.pgmaps == [] and not m2.sections.valid_section_nr(0x2_0000_0000 >> 27)


def test_npfns_wraps_when_range_shorter_than_dataoff():
    """§5: range_len < dataoff: npfns = PFN(range_len - dataoff) wraps (u64), so no spurious
    "number of pfns truncated" message."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    sb = InfoBlock.new(P.PFN_SIG, bytes(16), bytes(16), dataoff=16 * MiB, npfns=64000, mode=P.PFN_MODE_PMEM,
                       start_pad=248 * MiB, end_trunc=0, align=4096, version_minor=3)
    rc, setup, _ = P.nvdimm_setup_pfn(m.model, sb, 0x2_0000_0000, 256 * MiB)
    assert rc == 0 and setup.message is None
    assert setup.npfns == ((8 * MiB - 16 * MiB) & (2**64 - 1)) >> 12
