"""A 1 TiB device-dax device (8192 memory blocks of 128 MiB) reconfigured to system-ram and
back in the 6.8 row: ``daxctl reconfigure-device --mode=system-ram`` (kmem probe: one
``add_memory_driver_managed`` of 1 TiB, then daxctl onlines 8192 blocks movable) and
``--mode=devdax --force`` (daxctl offlines the 8192 blocks, kmem's remove hot-removes them,
device_dax claims and maps the range again) (kmem.md K §5, K §8).  The device is an hmem
device over 1 TiB of Soft Reserved memory on memory-only node 1; the 6.8 kernel binds it to
kmem at boot, so the setup first puts it in devdax mode.  Both cores; nothing asserts a time."""

import pytest

from sparsemem import Machine

TiB = 1 << 40
LAYOUT = """\
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
100000000-43fffffff : System RAM
10000000000-1ffffffffff : Soft Reserved
"""


def boot(core):
    m = Machine(kernel="6.8", iomem=LAYOUT, core=core, numa=[(TiB, 2 * TiB, 1)])
    (dev,) = m.dax_devices
    dev.reconfigure("devdax", force=True)
    return m, dev


def there_and_back(dev):
    to_ram = dev.reconfigure("system-ram")
    back = dev.reconfigure("devdax", force=True)
    return to_ram, back


@pytest.mark.benchmark(group="kmem-1TiB-system-ram-and-back")
@pytest.mark.parametrize("core", ["compiled", "reference"])
def test_reconfigure_1tib_and_back(benchmark, core):
    m, dev = boot(core)
    to_ram, back = benchmark.pedantic(there_and_back, args=(dev,), rounds=5 if core == "compiled" else 2,
                                      iterations=1, warmup_rounds=0)
    assert (to_ram["total_memblocks"], to_ram["online_memblocks"], to_ram["movable"]) == (8192, 8192, True)
    assert back["mode"] == "devdax" and dev.enabled and not dev.memory_blocks()
