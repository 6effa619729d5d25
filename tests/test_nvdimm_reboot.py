"""Persistent media and reboot: labels and info-blocks survive, namespaces are re-probed with the
probe path of nd_pfn_validate (memremap-nvdimm.md §4 #10a); media is sparse."""

from __future__ import annotations

import errno

import pytest

from sparsemem.machine import Machine
from sparsemem.nvdimm.infoblock import PFN_SIG

MiB = 1 << 20
LAYOUT = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory\n"


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


def test_reboot_bad_offset_records_error():
    """A block whose dataoff breaks the alignment rule (§4 #13) cannot be enabled: -ENXIO recorded."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    ns = m.regions[0].create_namespace(size=256 * MiB)
    from sparsemem.nvdimm.infoblock import InfoBlock
    sb = InfoBlock.unpack(m.regions[0].media.read(ns.offset + 4096, 4096))
    m.regions[0].media.write(ns.offset + 4096, sb.copy(dataoff=sb.dataoff + 4096).pack())
    m2 = m.reboot()
    (ns2,) = m2.regions[0].namespaces
    assert not ns2.enabled and ns2.error[0] == errno.ENXIO
    assert ns2.error[1] == "nd_pmem pfn0.0: bad offset: 0x601000 dax disabled align: 0x200000"
    assert m2.regions[0].media.read(ns.offset + 4096, 16) == PFN_SIG


def test_failed_create_restores_media_and_labels():
    m = Machine.from_iomem(LAYOUT, kernel="5.2")
    r = m.regions[0]
    r.create_namespace(size=16 * MiB)
    snap = m.snapshot()
    with pytest.raises(OSError):
        r.create_namespace(size=16 * MiB)
    assert m.snapshot() == snap
