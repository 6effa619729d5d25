"""Boot allocations are real (issue 12 item 3) and the removable / sysfs-write audit findings
(item 4).  Kernel functions and releases are cited per test; the placement rules are in
:func:`sparsemem.machine.boot_allocations`."""

from __future__ import annotations

import errno
import re

import pytest

from helpers import SECTION as SEC
from helpers import MiB
from sparsemem import KernelError, Machine
from sparsemem import constants as C
from sparsemem.machine import DEFAULT_KERNEL_IMAGE_SIZE, PHYSICAL_START, X86_RESERVE_LOW
from sparsemem.memory_block import show_removable

KERNELS = ("5.2", "5.3", "6.8")
TWO_MIB = 2 * MiB


def _ram_end(m) -> int:
    return max(r.end + 1 for r in m.iomem.top_level() if r.name == "System RAM")


def _block_of(m, addr: int) -> int:
    return addr // m.memory_block_size


@pytest.mark.parametrize("kernel", KERNELS)
def test_boot_memmap_sits_at_the_top_of_the_node(kernel):
    """mm/sparse.c sparse_init_nid → sparse_buffer_init (5.2, 5.3; 6.8 aligned to
    section_map_size): one buffer of 2 MiB per present section, memblock top-down (x86
    default, mm/memblock.c memblock_find_in_range_node) from the end of RAM."""
    m = Machine(kernel)
    present = len(m.sections.present_section_nrs())
    size = present * TWO_MIB
    top = _ram_end(m)
    memmap = [(s << 12, e << 12) for s, e in m.boot_reserved if (e << 12) == top]
    assert memmap == [(top - size, top)]
    # the default VM: the last boot block holds it
    blk = _block_of(m, top - 1)
    assert blk == m.memory_blocks[-1].id


@pytest.mark.parametrize("kernel", KERNELS)
def test_kernel_image_at_physical_start_without_image_lines(kernel):
    """arch/x86 setup_arch reserves [_text, __bss_stop); CONFIG_PHYSICAL_START is 16 MiB."""
    m = Machine(kernel)
    img = (PHYSICAL_START >> 12, (PHYSICAL_START + DEFAULT_KERNEL_IMAGE_SIZE) >> 12)
    assert img in m.boot_reserved
    # and trim_low_memory_range's 64 KiB, as far as they are RAM (the VM's RAM starts at 4 KiB)
    assert (1, X86_RESERVE_LOW >> 12) in m.boot_reserved


def test_layout_kernel_lines_replace_the_default_image_and_are_avoided():
    """A layout with "Kernel code/bss" lines (a relocated image, here just below the top of
    RAM) has no image at 16 MiB, and the memmap buffer goes below the image, not over it."""
    text = ("00001000-0009ffff : System RAM\n"
            "00100000-bfffffff : System RAM\n"
            "100000000-13fffffff : System RAM\n"
            "  13e000000-13effffff : Kernel code\n"
            "  13f000000-13f7fffff : Kernel bss\n")
    m = Machine.from_iomem(text, kernel="5.3")
    assert all(s != PHYSICAL_START >> 12 for s, _ in m.boot_reserved)
    size = len(m.sections.present_section_nrs()) * TWO_MIB
    image_start = 0x13E000000
    memmap = [(s << 12, e << 12) for s, e in m.boot_reserved if (e - s) << 12 == size]
    # the highest free range that fits is below the image (the 8 MiB above it is too small)
    assert memmap == [(image_start - size, image_start)]


def test_movable_node_allocates_bottom_up_above_the_image():
    """arch/x86/kernel/setup.c setup_arch: movable_node sets memblock bottom-up, so the boot
    memmap lands just above the kernel image instead of in hot-removable high memory."""
    m = Machine("5.3", movable_node=True)
    img_end = (PHYSICAL_START + DEFAULT_KERNEL_IMAGE_SIZE) >> 12
    size = len(m.sections.present_section_nrs()) * TWO_MIB >> 12
    assert (img_end, img_end + size) in m.boot_reserved
    assert m.memory_blocks[-1].removable


def test_fragmented_ram_falls_back_to_one_allocation_per_section():
    """When no free range holds the whole buffer, each section's memmap PMD comes from its own
    2 MiB aligned allocation (mm/sparse-vmemmap.c vmemmap_alloc_block_buf fallback)."""
    lines = ["00001000-0009ffff : System RAM", "00100000-03ffffff : System RAM"]
    # 20 sections of RAM in 16 MiB pieces with 16 MiB holes: the 44 MiB buffer fits nowhere
    for i in range(20):
        base = 0x100000000 + i * SEC
        lines.append(f"{base:x}-{base + (16 << 20) - 1:x} : System RAM")
    m = Machine.from_iomem("\n".join(lines) + "\n", kernel="5.3")
    present = len(m.sections.present_section_nrs())
    pieces = [(s << 12, e << 12) for s, e in m.boot_reserved if (e - s) << 12 == TWO_MIB]
    assert len(pieces) == present
    assert all(s % TWO_MIB == 0 for s, _ in pieces)
    # top-down: the first ones fill the highest RAM piece from its end
    top = _ram_end(m)
    assert max(e for _, e in pieces) == top


@pytest.mark.parametrize("kernel", ("5.2", "5.3"))
def test_memmap_block_reads_removable_0_and_refuses_offline(kernel):
    """5.2/5.3 removable_show → is_mem_section_removable → has_unmovable_pages: the reserved
    memmap pages make the block read 0; offlining fails in start_isolate_page_range with
    -EBUSY, after has_unmovable_pages dumped the first reserved page (REPORT_FAILURE) and
    __offline_pages logged "failure to isolate range" (pr_debug: Machine(dyndbg=True));
    nothing changes."""
    m = Machine(kernel, dyndbg=True)
    blk = _block_of(m, _ram_end(m) - 1)
    assert m.sysfs[f"memory{blk}/removable"] == "0\n"
    before = m.snapshot()
    n = len(m.dmesg)
    with pytest.raises(KernelError) as ei:
        m.sysfs[f"memory{blk}/state"] = "offline"
    assert ei.value.errno == errno.EBUSY
    assert m.snapshot() == before
    new = m.dmesg[n:]
    first = min(s for s, e in m.boot_reserved if (s << 12) // m.memory_block_size == blk)
    page = C.vmemmap_base(46) + first * C.STRUCT_PAGE_SIZE
    assert new[0] == f"page:{page:016x} refcount:1 mapcount:0 mapping:{0:016x} index:0x0"
    assert re.fullmatch(r"flags: 0x[0-9a-f]+\(reserved\)", new[1])
    assert new[2].startswith("raw: ") and new[3].startswith("raw: ")
    assert new[4] == "page dumped because: unmovable page"
    start = blk * m.memory_block_size
    assert new[5] == (f"memory offlining [mem {start:#010x}-{start + m.memory_block_size - 1:#010x}] "
                      f"failed due to failure to isolate range")


def test_kernel_image_block_refuses_offline():
    """A layout whose image sits in a block of its own zone (no multizone excuse): the block
    reads removable 0 and offlining is -EBUSY (has_unmovable_pages, 5.3)."""
    text = ("00001000-0009ffff : System RAM\n"
            "00100000-bfffffff : System RAM\n"
            "100000000-1ffffffff : System RAM\n"
            "  142000000-143002e16 : Kernel code\n"
            "  144227000-144ffffff : Kernel bss\n")
    m = Machine.from_iomem(text, kernel="5.3")
    blk = _block_of(m, 0x142000000)
    assert m.sysfs[f"memory{blk}/removable"] == "0\n"
    with pytest.raises(KernelError) as ei:
        m.sysfs[f"memory{blk}/state"] = "offline"
    assert ei.value.errno == errno.EBUSY
    assert m.sysfs[f"memory{blk}/state"] == "online\n"
    # its neighbours are ordinary memory
    assert m.sysfs[f"memory{blk - 2}/removable"] == "1\n"
    m.sysfs[f"memory{blk - 2}/state"] = "offline"


def test_removable_checks_reserved_pages_before_the_movable_shortcut():
    """mm/page_alloc.c has_unmovable_pages (5.2, 5.3): a PageReserved page is unmovable even in
    ZONE_MOVABLE; the "movable zone, so the rest is movable" shortcut comes after that test.
    (A boot allocation inside ZONE_MOVABLE happens with movablecore=, which the simulation
    does not boot: the reserved range is placed by hand.)"""
    m = Machine("5.3")
    m.add_memory(0, 0x180000000, SEC)
    m.sysfs["memory48/state"] = "online_movable"
    assert m.sysfs["memory48/valid_zones"] == "Movable\n"
    assert m.sysfs["memory48/removable"] == "1\n"
    pfn = 0x180000000 >> 12
    m.boot_reserved.append((pfn + 4096, pfn + 4097))
    assert m.sysfs["memory48/removable"] == "0\n"


def test_removable_scan_stops_at_the_end_of_the_first_pages_zone():
    """mm/memory_hotplug.c is_mem_section_removable (5.2, 5.3): the pageblocks are checked from
    the section's first pfn up to min(section end, zone_end_pfn(page_zone(first page))); a
    reserved page after the end of that zone is not seen.  (Zone ends inside a section arise
    from movablecore= and boot zone boundaries; here the Movable span is trimmed by hand.)"""
    m = Machine("5.3")
    m.add_memory(0, 0x180000000, SEC)
    m.sysfs["memory48/state"] = "online_movable"
    blk = m.memory_block(48)
    pfn = 0x180000000 >> 12
    zone = m.page_zone(pfn)
    m.boot_reserved.append((pfn + 20000, pfn + 20001))
    assert show_removable(blk) == "0\n"
    zone.spanned_pages = 16384  # the zone now ends halfway through the section
    assert show_removable(blk) == "1\n"
    zone.spanned_pages = 32768
    assert show_removable(blk) == "0\n"


@pytest.mark.parametrize("kernel", KERNELS)
def test_sysfs_write_with_a_nul_byte_parses_as_the_kernel_parses(kernel):
    """fs/kernfs/file.c kernfs_fop_write_iter copies the write and NUL-terminates it; the
    stores parse C strings (sysfs_streq in state_store, strtobool in online_store), so the
    value ends at the first NUL, and the whole byte count is returned.  An empty write returns
    0 without reaching the store (fs/sysfs/file.c sysfs_kf_write)."""
    m = Machine(kernel)
    m.add_memory(0, 0x180000000, 2 * SEC)
    assert m.sysfs.write("memory48/state", b"online\0junk") == 11
    assert m.sysfs["memory48/state"] == "online\n"
    assert m.sysfs.write("memory48/online", b"0\0\n") == 3
    assert m.sysfs["memory48/state"] == "offline\n"
    assert m.sysfs.write("memory49/state", b"") == 0
    assert m.sysfs["memory49/state"] == "offline\n"
    with pytest.raises(KernelError) as ei:
        m.sysfs.write("memory49/state", b"\0online")  # the store sees ""
    assert ei.value.errno == errno.EINVAL
    assert m.sysfs.write("auto_online_blocks", "online\0") == 7 and m.auto_online
