"""``memunmap_pages`` of a pgmap that a driver owns (issue #17, defect 2).

A bound fsdax/devdax namespace maps its range with ``devm_memremap_pages``, which registers
``devm_memremap_pages_release`` as a devres action of the driver's device (kernel/memremap.c
v5.1/v5.2, mm/memremap.c v5.3): it runs when that device unbinds, and
``devm_memunmap_pages(dev, pgmap)`` releases it only for the owning ``dev``
(``devm_release_action``).  Nobody else can tear it down, so the simulation refuses
(``KernelError(EBUSY)``, nothing changed) and the namespace's own disable/destroy still work.
"""

from __future__ import annotations

import errno
import pickle

import pytest

from helpers import RAM_5G_PMEM_2G as LAYOUT
from sparsemem import KernelError, Machine
from sparsemem.kernel import row_releases

KERNELS = row_releases()


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("mode", ["fsdax", "devdax"])
def test_foreign_memunmap_of_a_namespace_pgmap_is_refused(kernel, mode):
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    region = m.regions[0]
    ns = region.create_namespace(mode=mode)
    assert ns.pgmap is not None and ns.pgmap in m.pgmaps
    before, log = m.snapshot(), len(m.dmesg)
    with pytest.raises(KernelError) as ei:
        m.memunmap_pages(ns.pgmap)
    assert ei.value.errno == errno.EBUSY and f"{ns.pgmap.start:#x}" in str(ei.value)
    assert m.snapshot() == before and len(m.dmesg) == log
    # the namespace is not wedged: its own teardown works and gives everything back
    ns.disable()
    assert m.pgmaps == [] and "namespace0.0" not in m.iomem_text() and "dax0.0" not in m.iomem_text()
    ns.destroy()
    assert region.namespaces == [] and region.available_size == region.size
    region.create_namespace(mode=mode)


@pytest.mark.parametrize("kernel", KERNELS)
def test_ownership_survives_pickling_and_callers_unmap_their_own(kernel):
    m = Machine.from_iomem(LAYOUT, kernel=kernel)
    m.regions[0].create_namespace(mode="fsdax")
    own = m.memremap_pages(0x200000000, 128 << 20)
    m2 = pickle.loads(pickle.dumps(m))
    ns2 = m2.regions[0].namespaces[0]
    with pytest.raises(KernelError) as ei:
        m2.memunmap_pages(ns2.pgmap)
    assert ei.value.errno == errno.EBUSY
    m.memunmap_pages(own)                        # a caller's own map is the caller's to release
    assert [p.start for p in m.pgmaps] == [m.regions[0].namespaces[0].pgmap.start]
    ns2.destroy()
    assert m2.pgmaps == [p for p in m2.pgmaps if p.start == 0x200000000]
