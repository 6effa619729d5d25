"""Every shared layout boots under every row of the release table, on both cores, and a block
hot-added above it goes through add, online, offline and remove (issue 10 "Every shared layout
boots under every row"; the rows: later-eras-hotplug.md A10, ``sparsemem.kernel.ERAS``).

The compiled core and the pure-Python reference must agree after each step (``snapshot()``,
dmesg), whatever the row does; the block count, the block's state and the ``/proc/iomem``
"System RAM" line of the hot-added range are checked against what hotplug must do in every
release (§8.1 ``add_memory``: one block device per block; §6.6 ``remove_memory``: gone again).
"""

from __future__ import annotations

import random
import uuid
from unittest import mock

import pytest

from helpers import all_layouts
from sparsemem.kernel import kernel_model, row_releases
from sparsemem.machine import Machine

ROWS = row_releases()
LAYOUTS = {p.name: p.read_text() for p in all_layouts()}


def test_rows_are_the_table():
    """Each row's first release runs that row (its label names it)."""
    for r in ROWS:
        model = kernel_model(r)
        assert model.rules == r and model.label.startswith(r + " (")


def _boot(text, kernel, core):
    """Boot adopting the layout's namespaces; their new uuids come from one seeded source, the
    same for both cores (as in test_fuzz_stateful), so that the snapshots can be compared."""
    src = random.Random(kernel)
    with mock.patch("uuid.uuid4", lambda: uuid.UUID(int=src.getrandbits(128), version=4)):
        return Machine.from_iomem(text, kernel=kernel, core=core)


def _hot_range(m):
    """One memory block just above everything the layout and its boot configuration hold."""
    top = max(r.end for r in m.iomem.top_level()) + 1
    bs = m.memory_block_size
    return -(-top // bs) * bs, bs


@pytest.mark.parametrize("kernel", ROWS)
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_layout_boots_and_hotplugs_under_row(name, kernel):
    text = LAYOUTS[name]
    ms = [_boot(text, kernel, core) for core in ("compiled", "reference")]
    assert ms[0].snapshot() == ms[1].snapshot()
    assert ms[0].dmesg == ms[1].dmesg
    start, size = _hot_range(ms[0])
    if (start + size - 1) >> ms[0].sections.max_physmem_bits:
        pytest.skip(f"{name}: no room for a hot-added block under MAX_PHYSMEM_BITS")  # pragma: no cover
    nblocks = len(ms[0].blocks)
    block_id = start // ms[0].memory_block_size
    for m in ms:
        m.add_memory(0, start, size)
        assert len(m.blocks) == nblocks + 1 and m.memory_block(block_id).state == "offline"
        assert f"{start:08x}-{start + size - 1:08x} : System RAM" in m.iomem_text()
        m.online_memory_block(block_id)
        assert m.memory_block(block_id).state == "online"
    assert ms[0].snapshot() == ms[1].snapshot()
    for m in ms:
        m.offline_memory_block(block_id)
        m.remove_memory(0, start, size)
        assert len(m.blocks) == nblocks and block_id not in m.blocks
        assert f"{start:08x}-" not in m.iomem_text()
    assert ms[0].snapshot() == ms[1].snapshot()
    assert ms[0].dmesg == ms[1].dmesg
