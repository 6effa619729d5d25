"""``nd_region_conflict`` and the legacy trim of a pfn device next to another region
(memremap-nvdimm.md, "MN", §3.1): which probe ranges conflict with a neighbouring region, and
what ``trim_pfn_device`` makes of a namespace whose section-rounded tail reaches into one."""

from __future__ import annotations

import errno

import pytest

from helpers import MiB
from sparsemem.errors import KernelError
from sparsemem.machine import Machine
from sparsemem.nvdimm import pfn as P


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
