"""devm_memremap_pages / release / get_dev_pagemap (memremap-nvdimm.md §6), both eras."""

from __future__ import annotations

import errno

import pytest

import sparsemem.hotplug as hp
from helpers import PMEM_AFTER_RAM_IN_SECTION as LAYOUT
from helpers import MiB
from sparsemem.constants import ZONE_DEVICE
from sparsemem.errors import KernelError
from sparsemem.machine import Machine
from sparsemem.memremap import make_altmap, memremap_pages


@pytest.fixture(params=["5.2", "5.3"])
def m(request):
    return Machine.from_iomem(LAYOUT, kernel=request.param)


def test_exact_vs_section_expansion(m):
    """§6.1 step 1 (legacy widening) vs §6.2 (exact range)."""
    pg = m.memremap_pages(0x2_1000_0000, 32 * MiB, type="devdax")
    if m.model.memremap_expands_to_sections:
        assert (pg.mapped_start, pg.mapped_size) == (0x2_1000_0000, 128 * MiB)
        assert m.sections.present_section_nr(0x2_1000_0000 >> 27)
    else:
        assert (pg.mapped_start, pg.mapped_size) == (0x2_1000_0000, 32 * MiB)
        assert m.sections.subsection_map(0x2_1000_0000 >> 27) == 0xFFFF
    assert m.get_dev_pagemap(0x2_1000_0000 >> 12) is pg
    assert m.get_dev_pagemap((0x2_1000_0000 + 32 * MiB) >> 12) is None   # index holds the exact range
    assert m.pgmaps == [pg]
    m.memunmap_pages(pg)
    assert m.pgmaps == [] and m.get_dev_pagemap(0x2_1000_0000 >> 12) is None
    assert not m.sections.valid_section_nr(0x2_1000_0000 >> 27)


def test_conflict_in_same_section(m):
    """§6.1 step 2 / §6.2: endpoint probes; legacy catches a neighbour in the same section."""
    a = m.memremap_pages(0x2_1000_0000, 16 * MiB, type="devdax")
    snap = m.snapshot()
    if m.model.memremap_expands_to_sections:
        with pytest.raises(KernelError) as ei:
            m.memremap_pages(0x2_1100_0000, 16 * MiB, type="devdax")
        assert ei.value.errno == errno.ENOMEM
        # dev_WARN: message, WARNING line
        assert m.dmesg[-2] == "Conflicting mapping in same section" and "devm_memremap_pages+" in m.dmesg[-1]
        assert m.snapshot() == snap
    else:
        b = m.memremap_pages(0x2_1100_0000, 16 * MiB, type="devdax")
        m.memunmap_pages(b)
    # an exact overlap conflicts in both eras
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x2_1000_0000, 2 * MiB, type="devdax")
    assert ei.value.errno == errno.ENOMEM
    m.memunmap_pages(a)


def test_mixed_region_enxio_warn_once(m):
    """§6.1 step 3: System RAM in the (widened) range -> WARN_ONCE + -ENXIO, nothing changed."""
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x2_0000_0000, 128 * MiB, type="devdax")
    assert ei.value.errno == errno.ENXIO
    assert "devm_memremap_pages attempted on mixed region [mem 0x200000000-0x207ffffff flags 0x200]" in m.dmesg
    where = {"5.2": "kernel/memremap.c", "5.3": "mm/memremap.c"}[m.kernel]  # MN §0 sources
    assert any(line.startswith(f"WARNING: CPU: 0 PID: 1 at {where}:188 devm_memremap_pages") for line in m.dmesg)
    n = len(m.dmesg)
    with pytest.raises(KernelError):
        m.memremap_pages(0x2_0000_0000, 64 * MiB, type="devdax")
    assert not any("attempted on" in line for line in m.dmesg[n:])     # WARN_ONCE
    assert m.snapshot() == snap
    # legacy widening turns a pure-pmem range sharing section 64 with RAM into a mixed one
    if m.model.memremap_expands_to_sections:
        with pytest.raises(KernelError) as ei:
            m.memremap_pages(0x2_0400_0000, 4 * MiB, type="devdax")
        assert ei.value.errno == errno.ENXIO
    else:
        m.memunmap_pages(m.memremap_pages(0x2_0400_0000, 4 * MiB, type="devdax"))


def test_invalid_altmap(m):
    """§6.2 __add_pages step 1: base_pfn must equal the first (mapped) pfn -> -EINVAL."""
    alt = make_altmap(m, 0x210000 + 1, 2, 100)
    snap = m.snapshot()["nvdimm"]
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x2_1000_0000, 128 * MiB, type="fsdax", altmap=alt)
    assert ei.value.errno == errno.EINVAL
    assert "memory add fail, invalid altmap" in m.dmesg
    assert m.pgmaps == [] and m.get_dev_pagemap(0x210000) is None
    assert m.snapshot()["nvdimm"] == snap


def test_misaligned_v53(m):
    """§6.2 step 2: check_pfn_span on the exact range (v5.3 only; legacy widens)."""
    if m.model.memremap_expands_to_sections:
        pg = m.memremap_pages(0x2_1000_1000, 4 * MiB, type="devdax")
        assert pg.mapped_size == 128 * MiB
        return
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x2_1000_1000, 4 * MiB, type="devdax")
    assert ei.value.errno == errno.EINVAL
    assert any("Misaligned __add_pages start: 0x210001 end: #210400" in line for line in m.dmesg)


def test_zone_device_memmap(m):
    """§6.1 step 8 / §6.2: pages become ZONE_DEVICE from the first data pfn to the mapped end."""
    alt = make_altmap(m, 0x210000, 2, 1022)
    pg = m.memremap_pages(0x2_1000_0000, 128 * MiB, type="fsdax", altmap=alt)
    assert m.sections.page_zonenum(0x210000 + 1024) == ZONE_DEVICE
    assert m.sections.page_zonenum(0x210000 + 32767) == ZONE_DEVICE
    assert alt.alloc == 512 and m.sections.vmemmap_stats()["pmds_altmap"] == 1
    m.memunmap_pages(pg)
    assert alt.alloc == 0


def test_argument_errors(m):
    with pytest.raises(TypeError):
        m.memremap_pages("0", 4096)
    with pytest.raises(ValueError):
        m.memremap_pages(-4096, 4096)
    with pytest.raises(ValueError):
        m.memremap_pages(0x2_1000_0000, 4096, type="bogus")
    with pytest.raises(TypeError):
        m.get_dev_pagemap(1.5)
    assert m.get_dev_pagemap(-1) is None


# ----------------------------------------------------------------------- review fixes (§6)
def test_out_of_range_leaves_no_ghost_pgmap(m):
    """§6.5/§6.1 step 4: a range beyond the physical address space is a ValueError raised
    before the pfn index is touched -- no ghost pgmap is left behind."""
    snap = m.snapshot()
    top = 1 << m.sections.max_physmem_bits
    with pytest.raises(ValueError):
        m.memremap_pages(top, 2 * MiB)
    assert m.get_dev_pagemap(top >> 12) is None
    assert m.pgmaps == [] and m.snapshot() == snap


def test_unwind_on_any_exception(m, monkeypatch):
    """§6.1 step 9 / §6.2: the index entries are erased whatever arch_add_memory raises."""
    def boom(*a, **k):
        raise RuntimeError("injected")
    monkeypatch.setattr(hp, "arch_add_memory", boom)
    with pytest.raises(RuntimeError):
        m.memremap_pages(0x2_1000_0000, 32 * MiB, type="devdax")
    assert m.get_dev_pagemap(0x2_1000_0000 >> 12) is None and m.pgmaps == []


def test_release_warn_once_with_function_name(m):
    """§6.3: the release WARN when altmap pages remain allocated names the releasing function
    and is printed once per boot."""
    line = "nd_pmem pfn0.0: devm_memremap_pages_release: failed to free all reserved pages"
    for _ in range(2):
        alt = make_altmap(m, 0x2_8000_0000 >> 12, 2, 4094)
        pg = memremap_pages(m, 0x2_8000_0000, 256 * MiB, type="fsdax", altmap=alt, dev="nd_pmem pfn0.0")
        alt.alloc += 1          # one pfn never handed back
        m.memunmap_pages(pg)
    assert m.dmesg.count(line) == 1
    assert not any(ln.endswith("failed to free all reserved pages") and ln != line for ln in m.dmesg)


def test_device_private_removed_with_null_altmap(m):
    """§6.3 (sparse-hotplug §8.7): MEMORY_DEVICE_PRIVATE is released with __remove_pages and
    a NULL altmap, so memmap PMDs taken from an altmap are not given back to it (alloc stays)."""
    alt = make_altmap(m, 0x2_8000_0000 >> 12, 2, 4094)
    pg = m.memremap_pages(0x2_8000_0000, 256 * MiB, type="private", altmap=alt)
    used = alt.alloc
    assert used == 2 * 512
    m.memunmap_pages(pg)
    assert alt.alloc == used
    assert any(ln.endswith("devm_memremap_pages_release: failed to free all reserved pages") for ln in m.dmesg)
    assert not m.sections.valid_section_nr(0x2_8000_0000 >> 27)
    # an fsdax pgmap with the same altmap layout gives everything back (arch_remove_memory + altmap)
    alt2 = make_altmap(m, 0x2_8000_0000 >> 12, 2, 4094)
    pg = m.memremap_pages(0x2_8000_0000, 256 * MiB, type="fsdax", altmap=alt2)
    m.memunmap_pages(pg)
    assert alt2.alloc == 0
