"""pytest-benchmark: nvdimm namespace lifecycle and info-block codec (compiled vs reference core
in the same group)."""

from __future__ import annotations

import pytest

from sparsemem.machine import Machine
from sparsemem.nvdimm.infoblock import PFN_SIG, InfoBlock, sb_checksum

MiB, GiB = 1 << 20, 1 << 30
LAYOUT = "100000000-1ffffffff : System RAM\n400000000-7ffffffff : Persistent Memory\n"   # 16 GiB region


def _machine(core):
    return Machine.from_iomem(LAYOUT, kernel="5.3", core=core)


@pytest.mark.parametrize("core", ["compiled", "reference"])
def test_bench_1000_namespaces(benchmark, core):
    benchmark.group = "nvdimm: create+enable+destroy 1000 x 16 MiB fsdax"

    def run():
        m = _machine(core)
        r = m.regions[0]
        nss = [r.create_namespace(size=16 * MiB) for _ in range(1000)]
        for ns in nss:
            ns.destroy()
        assert r.available_size == r.size
        return m

    benchmark.pedantic(run, rounds=2, iterations=1)


def test_bench_infoblock_pack_unpack(benchmark):
    benchmark.group = "nvdimm: info-block pack+unpack+checksum"
    sb = InfoBlock.new(PFN_SIG, bytes(range(16)), bytes(range(16, 32)), dataoff=0x1200000, npfns=257536,
                       align=0x200000, version_minor=3)

    def run():
        raw = sb.pack()
        InfoBlock.unpack(raw)
        return sb_checksum(raw)

    benchmark.pedantic(run, rounds=20, iterations=10)


@pytest.mark.parametrize("kernel", ["5.3", "6.8"])
def test_bench_1000_namespaces_by_release(benchmark, kernel):
    """Issue 11: create, enable and destroy 1000 fsdax namespaces in the 6.8 row vs the 5.3
    row (compiled core; 16 MiB each, a multiple of 6.8's 16 MiB region align).  Run with
    ``--benchmark-timer=time.process_time`` for CPU time on a shared machine; the ratio of the
    two medians is the figure (bench/README.md), never asserted."""
    benchmark.group = "nvdimm: 1000 x 16 MiB fsdax create+enable+destroy, by release"

    def run():
        m = Machine.from_iomem(LAYOUT, kernel=kernel)
        r = m.regions[0]
        nss = [r.create_namespace(size=16 * MiB) for _ in range(1000)]
        assert all(ns.enabled for ns in nss)
        for ns in nss:
            ns.destroy()
        assert r.available_size == r.size and not r.namespaces
        return m

    benchmark.pedantic(run, rounds=5, iterations=1)
