"""The one partial state of a refused ``memoryN/state`` write (issue #17, defect 5; kept, and
documented in the ``Sysfs`` docstring and the README's list of partial-state paths).

``state_store`` (drivers/base/memory.c, v5.1-v5.3; sparse-hotplug.md §8.6) stores the
requested type in ``mem->online_type`` and then calls ``device_online``: for a block that is
already online that returns 1, the write fails with -EINVAL, and the type stays for the next
online through the ``online`` file (``memory_subsys_online`` keeps any type but MMOP_OFFLINE,
which it replaces by MMOP_ONLINE).  A state change that fails resets it to MMOP_OFFLINE
(``memory_subsys_online``).

The numbers are the release's: include/linux/memory_hotplug.h has MMOP_OFFLINE -1 and
MMOP_ONLINE_MOVABLE 2 in 5.3.0 .. 5.6.4, MMOP_OFFLINE 0 and MMOP_ONLINE_MOVABLE 3 from 5.7.14
(later-eras-hotplug.md A7.1; the expectations changed with issue 10 step 8).
"""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelError, Machine
from sparsemem.kernel import parse_version, row_releases

KERNELS = row_releases()
LAYOUT = "00100000-bfffffff : System RAM\n100000000-13fffffff : System RAM\n"
BLK = 0x8000000


def _mmop(kernel: str) -> tuple[int, int]:
    """(MMOP_OFFLINE, MMOP_ONLINE_MOVABLE) of the release's include/linux/memory_hotplug.h."""
    return (-1, 2) if parse_version(kernel) < (5, 7, 0) else (0, 3)


def _without_online_type(m: Machine) -> tuple:
    snap = m.snapshot()
    blocks = tuple((b.id, b.state, b.nid, b.section_count, b.zone) for b in m.memory_blocks)
    return tuple((k, v) for k, v in sorted(snap.items()) if k != "blocks"), blocks


@pytest.mark.parametrize("kernel", KERNELS)
def test_refused_state_write_keeps_the_requested_online_type(kernel):
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    m.add_memory(0, 0x180000000, 2 * BLK)
    blk = m.memory_block(48)
    m.sysfs["memory48/state"] = "online"
    assert blk.state == "online" and blk.zone == "Normal"
    before = _without_online_type(m)
    with pytest.raises(KernelError) as ei:
        m.sysfs["memory48/state"] = "online_movable"
    assert ei.value.errno == errno.EINVAL
    mmop_offline, mmop_online_movable = _mmop(kernel)
    assert blk.online_type == mmop_online_movable           # the documented partial state
    assert _without_online_type(m) == before                 # and nothing else
    # ... which a later online through the "online" file uses: Movable, where the same
    # sequence without the refused write onlines to Normal again
    m.sysfs["memory48/state"] = "offline"
    m.sysfs["memory48/online"] = "1"
    assert (blk.state, blk.zone, blk.online_type) == ("online", "Movable", mmop_offline)
    m.sysfs["memory49/state"] = "online"
    m.sysfs["memory49/state"] = "offline"
    m.sysfs["memory49/online"] = "1"
    assert m.memory_block(49).zone == "Normal"


@pytest.mark.parametrize("kernel", KERNELS)
def test_failed_online_resets_online_type(kernel):
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    m.add_memory(0, 0x180000000, BLK)
    blk = m.memory_block(48)
    m.inject_memory_notifier_error("MEM_GOING_ONLINE", -errno.EBUSY)
    with pytest.raises(KernelError) as ei:
        m.sysfs["memory48/state"] = "online_kernel"
    assert ei.value.errno == errno.EBUSY
    assert blk.state == "offline" and blk.online_type == _mmop(kernel)[0]
