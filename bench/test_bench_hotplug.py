"""Hotplug 1 TiB in 128 MiB blocks (add, online, offline, remove): compiled core vs
reference core in one pytest-benchmark group (sparse-hotplug.md §5-§8)."""

import pytest

from sparsemem import Machine

BLK = 128 << 20
N = 8192                       # 1 TiB
BASE = 0x180000000             # above the default layout's RAM


def cycle(core):
    m = Machine("5.3", core=core)
    for i in range(N):
        m.add_memory(0, BASE + i * BLK, BLK)
    first = BASE // BLK
    for i in range(first, first + N):
        m.sysfs.write(f"memory{i}/state", "online")
    for i in range(first, first + N):
        m.sysfs.write(f"memory{i}/state", "offline")
    for i in range(N):
        m.remove_memory(0, BASE + i * BLK, BLK)
    return m


@pytest.mark.benchmark(group="hotplug-1TiB")
@pytest.mark.parametrize("core", ["compiled", "reference"])
def test_hotplug_1tib(benchmark, core):
    m = benchmark.pedantic(cycle, args=(core,), rounds=3, iterations=1, warmup_rounds=0)
    assert len(m.memory_blocks) == 32
    assert m.zones[0][2].zone_end_pfn == 0x140000
