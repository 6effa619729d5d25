"""Persistent media and reboot: labels and info-blocks survive, namespaces are re-probed with the
probe path of nd_pfn_validate (memremap-nvdimm.md, "MN", §4 #10a); media is sparse.  Blocks
rewritten on the media before a reboot exercise the later steps of the probe: the raw
fallback of a failed validation (§4 "Deltas: v5.4"), ``alloc_dax_region``'s raw align (§5.2),
the u64 wrap of the altmap's free pages (§5) and ``check_pfn_span`` on a page-misaligned
range (§6.2); the reboot itself never raises."""

from __future__ import annotations

import errno
from dataclasses import replace

import pytest

from helpers import RAM_4G_PMEM_4G as LAYOUT
from helpers import MiB
from sparsemem.machine import Machine
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.bus import probe_all
from sparsemem.nvdimm.infoblock import PFN_SIG, InfoBlock


def _rewrite(m, ns, **fields):
    media = m.regions[0].media
    sb = InfoBlock.unpack(media.read(ns.offset + 4096, 4096))
    media.write(ns.offset + 4096, sb.copy(**fields).pack())
    return sb


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_reboot_reprobes_every_mode(kernel):
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    r = m.regions[0]
    made = [r.create_namespace(size=256 * MiB, mode=mode, map=mp)
            for mode, mp in (("fsdax", "dev"), ("devdax", "dev"), ("raw", "dev"), ("sector", "dev"),
                             ("fsdax", "mem"))]
    made[2].media.write(made[2].offset + 8192, b"user data")
    before = [ns.to_dict() for ns in made]
    assert len(r.media.pages) <= 2 * len(made)            # sparse: a few pages, not 4 GiB
    m2 = m.reboot()
    r2 = m2.regions[0]
    assert [ns.to_dict() for ns in r2.namespaces] == before
    assert all(ns.enabled for ns in r2.namespaces)
    assert r2.media.read(made[2].offset + 8192, 9) == b"user data"
    assert r2.available_size == r.available_size
    assert m2.iomem.snapshot() == m.iomem.snapshot()


def test_reboot_corrupt_block_falls_back_to_raw():
    """A corrupted checksum makes nd_pfn_validate return -ENODEV (§4 #5): the namespace probes raw."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    ns = m.regions[0].create_namespace(size=256 * MiB)
    raw = bytearray(m.regions[0].media.read(ns.offset + 4096, 4096))
    raw[200] ^= 0xFF
    m.regions[0].media.write(ns.offset + 4096, bytes(raw))
    (ns2,) = m.reboot().regions[0].namespaces
    assert ns2.mode == "raw" and ns2.enabled and ns2.size == 256 * MiB


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_reboot_bad_offset_records_error(kernel):
    """A block whose dataoff breaks the alignment rule (§4 #13) fails the pfn probe with -ENXIO;
    before v5.4 nd_pmem_probe then attaches the namespace as raw pmem (§4 "Deltas: v5.4"):
    enabled, full raw size, the dev_err line kept and recorded in ns.error, no driver-core
    "probe of ... failed" line.  (Updated: this test used to lock in a disabled namespace.)"""
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    ns = m.regions[0].create_namespace(size=256 * MiB)
    sb = InfoBlock.unpack(m.regions[0].media.read(ns.offset + 4096, 4096))
    m.regions[0].media.write(ns.offset + 4096, sb.copy(dataoff=sb.dataoff + 4096).pack())
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    line = f"nd_pmem pfn0.0: bad offset: {sb.dataoff + 4096:#x} dax disabled align: 0x200000"
    assert ns2.enabled and ns2.mode == "raw" and ns2.size == ns2.raw_size == 256 * MiB
    assert ns2.pgmap is None and ns2.dataoff == ns2.start_pad == ns2.end_trunc == 0
    assert ns2.error == (errno.ENXIO, line)
    assert line in m2.dmesg
    assert not any("probe of" in ln for ln in m2.dmesg)
    assert m2.regions[0].media.read(ns.offset + 4096, 16) == PFN_SIG


def test_failed_create_restores_media_and_labels():
    m = Machine.from_iomem(LAYOUT, kernel="5.2")
    r = m.regions[0]
    r.create_namespace(size=16 * MiB)
    snap = m.snapshot()
    with pytest.raises(OSError):
        r.create_namespace(size=16 * MiB)
    assert m.snapshot() == snap


# ------------------------------------------------------------------ crafted blocks at re-probe
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
    assert m2.model.probe_raw_fallback == "any"
    assert [res.name for res in ns2.resources] == ["namespace0.0"]


@pytest.mark.parametrize("eopnotsupp", [False, True])
def test_probe_raw_fallback_switch_stops_only_for_eopnotsupp(eopnotsupp):
    """The KernelModel switch (§4 "Deltas: v5.4"; later-eras-nvdimm-evidence.md R3, R8; updated:
    it was a bool that stopped every fallback): ``"unless_eopnotsupp"`` (v5.4+) still falls back
    for the -EINVAL of #11 (v5.4-v5.6) and leaves the namespace unbound for -EOPNOTSUPP (#11
    from v5.7), with driver core's line for the namespace's own nd_pmem probe."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    ns = m.regions[0].create_namespace(size=256 * MiB)
    _rewrite(m, ns, align=1 << 30)
    m2 = m.reboot()
    for old in list(m2.regions[0].namespaces):
        old.disable()
    m2.regions[0].namespaces.clear()
    m2.model = replace(m2.model, probe_raw_fallback="unless_eopnotsupp", pfn_validate_eopnotsupp=eopnotsupp)
    mark = len(m2.dmesg)
    probe_all(m2.nvdimm)
    (ns2,) = m2.regions[0].namespaces
    if eopnotsupp:
        assert not ns2.enabled and ns2.error[0] == errno.EOPNOTSUPP
        assert m2.dmesg[mark:][-1] == f"nd_pmem: probe of namespace0.0 failed with error -{errno.EOPNOTSUPP}"
    else:
        assert ns2.enabled and ns2.mode == "raw" and ns2.error[0] == errno.EINVAL
        assert not any("probe of" in ln for ln in m2.dmesg[mark:])


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
