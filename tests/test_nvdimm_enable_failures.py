"""Namespace creations that the kernel refuses, and what they leave (issue #17, defects 1, 3, 4
and the tiny-namespace read found by the stateful fuzzer).

* BTT minimum: ``nvdimm_namespace_attach_btt`` (drivers/nvdimm/btt.c, v5.1-v5.3) refuses a
  sector namespace whose capacity after the BTT v1.1 initial offset (4 KiB,
  ``nd_btt_version`` in btt_devs.c) is below ``ARENA_MIN_SIZE`` (16 MiB) with -ENXIO, before
  ``btt_init`` writes any arena metadata.
* A pfn/dax info block that does not fit in the namespace: ``nd_pfn_validate`` reads it with
  ``nvdimm_read_bytes(ndns, SZ_4K, ...)``, which ``nsio_rw_bytes`` (drivers/nvdimm/claim.c)
  refuses with ``dev_WARN_ONCE(... "request out of range")``; the validate returns -ENXIO
  (MN §4 check #3).
* devdax: ``dev_dax_probe`` (drivers/dax/device.c, v5.1-v5.3) claims the dax range with
  ``devm_request_mem_region`` *before* ``devm_memremap_pages``, so a busy range (System RAM
  hot-added inside the region, a Reserved tail) fails with -EBUSY before any section is
  touched (MN §5.2, §6.1).
* A region that starts part-way into a page: v5.3 truncates the pgmap range to whole pages in
  ``arch_add_memory`` and ``check_pfn_span`` refuses it (-EINVAL, MN §3.2, §6.2); the v5.2
  legacy trim makes ``nd_pfn_init`` fail (-ENXIO, MN §3.1).  Either way nothing is left, and
  any exception, not only a KernelError, leaves the region as it was (api.md
  ``create_namespace``).

From v5.7 a region has an ``align`` attribute (16 MiB; 4 KiB for a region under 16 MiB from
v5.18): namespace sizes are multiples of it and free space is trimmed to it
(later-eras-nvdimm-evidence.md R9, R15), so in 5.7-5.17 the 4 KiB region below has no capacity
at all (ENOSPC, nothing read or written), and the sector sizes below step by the region align.
"""

from __future__ import annotations

import errno

import pytest

from helpers import RAM_4G_PMEM_4G as LAYOUT
from helpers import KiB, MiB
from sparsemem import KernelError, Machine
from sparsemem.kernel import parse_version, row_releases
from sparsemem.nvdimm import namespace as NS

KERNELS = row_releases()
BTT_MIN = 16 * MiB + 4 * KiB          # ARENA_MIN_SIZE + the v1.1 initial offset

TINY = "00100000-bfffffff : System RAM\n100000000-100000fff : Persistent Memory\n"
RAM_IN_REGION = "00100000-bfffffff : System RAM\n100000000-13fffffff : Persistent Memory\n"
L7 = ("00100000-bfffffff : System RAM\n100000000-10001efff : System RAM\n"
      "10001f000-2c001efff : Persistent Memory\n2c001f000-6c001efff : Persistent Memory (legacy)\n")
L7_RESERVED = L7 + "  6bfe1f000-6c001efff : Reserved\n"


def tiny_has_no_capacity(m) -> bool:
    """5.7-5.17: the 4 KiB region's align is 16 MiB, so ``available_size`` is 0 (R9; 5.18 gives
    a region under 16 MiB a 4 KiB align, R15)."""
    r = m.regions[0]
    return r.align is not None and r.align > r.size


def refused(m, fn, *args, **kw) -> KernelError:
    """Run ``fn``; it must raise KernelError and leave ``m.snapshot()`` unchanged."""
    before = m.snapshot()
    with pytest.raises(KernelError) as ei:
        fn(*args, **kw)
    assert m.snapshot() == before
    return ei.value


# ----------------------------------------------------------------------------- defect 1: BTT
@pytest.mark.parametrize("kernel", KERNELS)
def test_sector_namespace_below_btt_minimum_is_enxio_and_leaves_no_ghost(kernel):
    """The issue's reproducer: a 4 KiB region, ``mode="sector"``."""
    m = Machine.from_iomem(TINY, kernel=kernel)
    e = refused(m, m.regions[0].create_namespace, mode="sector")
    if tiny_has_no_capacity(m):       # updated for 5.7-5.17 (R9/R15): nothing to allocate
        assert e.errno == errno.ENOSPC and m.regions[0].available_size == 0
        assert parse_version(kernel)[:2] in {(5, minor) for minor in range(7, 18)}
        return
    assert e.errno == errno.ENXIO and e.kernel_errno == errno.ENXIO
    assert f"at least {BTT_MIN} bytes" in str(e)
    assert m.regions[0].namespaces == [] and m.regions[0].available_size == 4 * KiB
    ns = m.regions[0].create_namespace(mode="raw")          # no ghost holds the capacity
    assert ns.size == 4 * KiB and ns.enabled
    assert [n.mode for n in m.reboot().regions[0].namespaces] == ["raw"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_sector_namespace_btt_minimum_boundary(kernel):
    m = Machine.from_iomem(RAM_IN_REGION, kernel=kernel)
    region = m.regions[0]
    step = region.align or 4 * KiB          # updated: 5.7+ sizes are multiples of the region align (R9)
    smallest = -(-BTT_MIN // step) * step
    for size in (4 * KiB, 8 * KiB, 16 * MiB, BTT_MIN - 4 * KiB):
        e = refused(m, region.create_namespace, size=size, mode="sector")
        if size % step:                     # ndctl: "align setting is 0x1000000 size ... is misaligned"
            assert e.errno == errno.EINVAL and "is misaligned" in str(e), size
        else:
            assert e.kernel_errno == errno.ENXIO, size
    if step > 4 * KiB:
        e = refused(m, region.create_namespace, size=BTT_MIN, mode="sector")
        assert e.errno == errno.EINVAL
    ns = region.create_namespace(size=smallest, mode="sector")
    assert ns.enabled and ns.size == smallest and ns.to_dict()["blockdev"] == "pmem0s"
    # its BTT signature lies inside it: the neighbour created next and a reboot see it so
    region.create_namespace(size=64 * MiB, mode="raw")
    after = m.reboot().regions[0].namespaces
    assert [(n.mode, n.enabled, n.size) for n in after] == [("sector", True, smallest), ("raw", True, 64 * MiB)]


# ----------------------------------------------------------------------------- tiny pfn/dax
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("mode", ["fsdax", "devdax"])
def test_pfn_namespace_too_small_for_its_info_block_is_enxio(kernel, mode):
    """Found by the stateful fuzzer: was a ValueError from the media model."""
    m = Machine.from_iomem(TINY, kernel=kernel)
    e = refused(m, m.regions[0].create_namespace, mode=mode)
    if tiny_has_no_capacity(m):       # updated for 5.7-5.17 (R9/R15): refused before any read
        assert e.errno == errno.ENOSPC and not any("request out of range" in ln for ln in m.dmesg)
        return
    assert e.errno == errno.ENXIO and e.kernel_errno == errno.ENXIO
    assert "nd namespace0.0: request out of range" in m.dmesg
    n = len(m.dmesg)
    refused(m, m.regions[0].create_namespace, mode=mode)
    assert "request out of range" not in "".join(m.dmesg[n:])     # dev_WARN_ONCE


@pytest.mark.parametrize("kernel", KERNELS)
def test_tiny_raw_namespace_reprobes_as_raw_after_reboot(kernel):
    """``nd_pmem_probe``: the BTT probe needs 16 MiB, the pfn/dax probes fail their read
    (-ENXIO), and v5.1-v5.3 fall back to a raw pmem device."""
    m = Machine.from_iomem(TINY, kernel=kernel)
    if tiny_has_no_capacity(m):       # updated for 5.7-5.17 (R9/R15): no namespace to reboot with
        assert refused(m, m.regions[0].create_namespace, mode="raw").errno == errno.ENOSPC
        return
    m.regions[0].create_namespace(mode="raw")
    m2 = m.reboot()
    (ns,) = m2.regions[0].namespaces
    assert (ns.mode, ns.enabled, ns.size) == ("raw", True, 4 * KiB)
    assert ns.error is not None and ns.error[0] == errno.ENXIO
    assert "nd_pmem namespace0.0: request out of range" in m2.dmesg


# ----------------------------------------------------------------------------- defects 3 and 4
@pytest.mark.parametrize("kernel", KERNELS)
def test_devdax_over_hot_added_ram_fails_before_touching_sections(kernel):
    """Defect 3: System RAM hot-added inside the region makes the dax range busy; the RAM's
    section, memory block and resource stay, and it can still be removed (was a KernelBug:
    the failed create had removed its section).  The nested "System RAM" resource outlives
    the removal, as in the kernel: ``release_mem_region_adjustable`` backs off at the
    containing "Persistent Memory" resource, which lacks IORESOURCE_SYSRAM (kernel/resource.c
    since be4a8d628f32, v5.1), so adding it again is -EEXIST."""
    m = Machine.from_iomem(RAM_IN_REGION, kernel=kernel)
    m.add_memory(0, 0x120000000, 0x8000000)
    e = refused(m, m.regions[0].create_namespace, mode="devdax")
    assert e.errno == errno.ENXIO and e.kernel_errno == errno.EBUSY
    if m.model.dax_bus_probe:     # updated: v5.10 reserves per range (drivers/dax/device.c, R13)
        assert m.dmesg[-1].startswith("device_dax dax0.0: mapping0: 0x1")
        assert m.dmesg[-1].endswith("-0x13fffffff could not reserve range")
    else:
        assert m.dmesg[-1].startswith("device_dax dax0.0: could not reserve region [mem 0x1")
        assert m.dmesg[-1].endswith("-0x13fffffff]")
    assert m.memory_block(36).state == "offline" and m.pfn_valid(0x120000)
    assert "  120000000-127ffffff : System RAM" in m.iomem_text()
    m.remove_memory(0, 0x120000000, 0x8000000)
    assert not m.pfn_valid(0x120000)
    assert "  120000000-127ffffff : System RAM" in m.iomem_text()
    assert refused(m, m.add_memory, 0, 0x120000000, 0x8000000).errno == errno.EEXIST


@pytest.mark.parametrize("kernel", KERNELS)
def test_fsdax_over_hot_added_ram_fails_at_its_claim(kernel):
    """fsdax claims the whole namespace first (``pmem_attach_disk``): the same layout fails
    with -EBUSY and changes nothing."""
    m = Machine.from_iomem(RAM_IN_REGION, kernel=kernel)
    m.add_memory(0, 0x120000000, 0x8000000)
    e = refused(m, m.regions[0].create_namespace, mode="fsdax")
    assert e.kernel_errno == errno.EBUSY


@pytest.mark.parametrize("kernel", KERNELS)
def test_devdax_over_reserved_tail_leaves_node_span(kernel):
    """Defect 4: the Reserved tail of the legacy region makes the dax range busy before
    ``devm_memremap_pages``, so no teardown runs and node 0 keeps its span."""
    m = Machine.from_iomem(L7_RESERVED, kernel=kernel)
    node = (m.nodes[0].node_start_pfn, m.nodes[0].node_spanned_pages)
    e = refused(m, m.regions[1].create_namespace, mode="devdax")
    # updated: from v5.7 nd_pfn_init refuses the start 0x2c001f000, not a multiple of
    # memremap_compat_align() (2 MiB), before anything is written (R7); earlier the dax range is busy
    assert e.kernel_errno == (errno.EINVAL if m.model.compat_align else errno.EBUSY)
    assert (m.nodes[0].node_start_pfn, m.nodes[0].node_spanned_pages) == node == (0x100, 0x10001f - 0x100)


@pytest.mark.parametrize("kernel", [k for k in KERNELS if parse_version(k) < (5, 3, 0)])
def test_v52_devdax_teardown_shrinks_node_past_uninitialised_memmap(kernel):
    """What the kernel does leave, on the success path: v5.1/v5.2 tear a devdax namespace down
    section by section, and ``shrink_pgdat_span`` -> ``find_biggest_section_pfn`` probes the
    last pfn of each lower section.  Boot RAM ends at pfn 0x10001f, inside section 0x20, and
    ``zero_resv_unavail`` (mm/page_alloc.c, v5.2) initialises struct pages only up to
    ``max_pfn``: the one at pfn 0x107fff is uninitialised (poisoned, sparse-hotplug.md §6.5),
    does not read as node 0, and the node ends at the last pfn of section 0x17 (0xbffff).
    Commit e822969cab48 (v5.6) zeroes that memmap up to the section end."""
    m = Machine.from_iomem(L7, kernel=kernel)
    ns = m.regions[1].create_namespace(mode="devdax")
    assert m.nodes[0].node_start_pfn + m.nodes[0].node_spanned_pages == 0x6c0000
    ns.disable()
    assert (m.nodes[0].node_start_pfn, m.nodes[0].node_spanned_pages) == (0x100, 0xc0000 - 0x100)


# ----------------------------------------------------------------------------- page-misaligned regions, rollback
def test_create_on_page_misaligned_region_v53_einval_no_leak():
    """§3.2 + §6.2 step 2: a region starting 2 KiB into a page: v5.3 writes the block, the pgmap
    range [0x200000800, 0x203ffffff] is PHYS_PFN-truncated by arch_add_memory (pfn 0x200000,
    0x3fff pages) and check_pfn_span fails -> "Misaligned __add_pages ..." -EINVAL; the
    region is exactly as before (no leaked namespace, labels, media or iomem claim)."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n200000800-2400007ff : Persistent Memory\n",
                           kernel="5.3")
    r = m.regions[0]
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=64 * MiB)
    assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.EINVAL
    assert "Misaligned __add_pages start: 0x200000 end: #203ffe" in m.dmesg
    assert m.snapshot() == snap and r.namespaces == [] and r.available_size == r.size
    assert m.pgmaps == [] and m.get_dev_pagemap(0x200000) is None


def test_create_on_page_misaligned_region_v52_enxio():
    """§3.1: the legacy trim truncates the unaligned tail (end_trunc = 64 MiB + 2 KiB) and
    nd_pfn_init fails with -ENXIO; nothing is left behind."""
    m = Machine.from_iomem("100000000-1ffffffff : System RAM\n200000800-2400007ff : Persistent Memory\n",
                           kernel="5.2")
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.regions[0].create_namespace(size=64 * MiB)
    assert ei.value.kernel_errno == errno.ENXIO and m.snapshot() == snap


def test_create_rolls_back_on_non_kernel_error(monkeypatch):
    """api.md create_namespace: any exception (not only KernelError) leaves the region as before."""
    def boom(*a, **k):
        raise RuntimeError("injected")
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    snap = m.snapshot()
    monkeypatch.setattr(NS, "memremap_pages", boom)
    with pytest.raises(RuntimeError):
        m.regions[0].create_namespace(size=256 * MiB)
    assert m.snapshot() == snap and m.regions[0].namespaces == []
