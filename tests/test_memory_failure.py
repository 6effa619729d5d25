"""``/sys/devices/system/memory/soft_offline_page`` and ``hard_offline_page`` (issue 12 item 4;
sparse-hotplug.md §8.6, api.md "sysfs"): drivers/base/memory.c ``soft_offline_page_store`` /
``hard_offline_page_store`` and mm/memory-failure.c ``soft_offline_page`` / ``memory_failure``
read at 5.3 and 6.1 (5.4: the "don't access uninitialized memmaps" fixes); the table of
:mod:`sparsemem.memory_failure`.  Also the Soft Reserved (5.5) and ``phys_bits`` boot rules."""

from __future__ import annotations

import errno

import pytest

from helpers import RAM_5G, MiB
from sparsemem import KernelError, Machine
from sparsemem.kernel import kernel_model
from sparsemem.memory_failure import EHWPOISON
from sparsemem.sysroot import MEMORY_DIR, SysRoot

GiB = 1 << 30
FREE = 1 * GiB          # a page of block 8 of the default VM, nothing reserved there
IMAGE = 16 * MiB        # the kernel image at CONFIG_PHYSICAL_START (setup_arch reserves it)
ABSENT = 8 * GiB        # no section present
HOLE_SECTION = 3 * GiB  # the e820 hole below 4 GiB: section 24 is not present
KERNELS = ("5.1", "5.2", "5.3", "5.4", "5.10", "6.1", "6.8")


def _write(m, name, value):
    n = len(m.dmesg)
    try:
        m.sysfs.write(name, value)
        err = 0
    except KernelError as e:
        err = e.errno
    return err, m.dmesg[n:]


def test_rule_sets_follow_the_release():
    """kernel.py ERAS rows 5.4 and 6.1: 5.1-5.3 read at 5.3, 5.4-6.0 with the v5.4 fixes, 6.1+ read at 6.1."""
    assert [kernel_model(k).memory_failure for k in KERNELS] == ["5.3", "5.3", "5.3", "5.4", "5.4", "6.1", "6.1"]


@pytest.mark.parametrize("kernel", KERNELS)
def test_files_are_write_only_and_listed(kernel):
    """DEVICE_ATTR_WO (CONFIG_MEMORY_FAILURE): listed, mode 0200, a read is EACCES, an empty write
    never reaches the store, a bad number is -EINVAL (kstrtoull error) and changes nothing."""
    m = Machine(kernel)
    names = m.sysfs.listdir("")
    assert "soft_offline_page" in names and "hard_offline_page" in names
    root = SysRoot(m)
    for name in ("soft_offline_page", "hard_offline_page"):
        assert root.stat(f"{MEMORY_DIR}/{name}").mode == 0o200
        with pytest.raises(KernelError) as ei:
            m.sysfs.read(name)
        assert ei.value.errno == errno.EACCES
        assert root.write(f"{MEMORY_DIR}/{name}", b"") == 0
        before = m.snapshot()
        for bad in ("abc", "-1", "0x", "1 2", "0x1g", "18446744073709551616"):
            assert _write(m, name, bad) == (errno.EINVAL, [])
        assert m.snapshot() == before and not m.hwpoison


@pytest.mark.parametrize("kernel", KERNELS)
def test_free_page(kernel):
    """5.3 soft: __get_any_page "free buddy page", set_hwpoison_free_buddy_page; 6.1:
    page_handle_poison, silent.  hard: 5.3 action_result(MF_MSG_BUDDY, MF_DELAYED); 6.1
    take_page_off_buddy → Recovered.  A second write: 5.3/5.4 soft -EBUSY "page already
    poisoned", 6.1 soft 0; hard 5.3/5.4 0, 6.1 -EHWPOISON."""
    rules = kernel_model(kernel).memory_failure
    pfn = FREE >> 12
    m = Machine(kernel)
    err, log = _write(m, "soft_offline_page", hex(FREE) + "\n")
    assert err == 0 and m.hwpoison == {pfn}
    assert log == ([] if rules == "6.1" else [f"__get_any_page: {pfn:#x} free buddy page"])
    err, log = _write(m, "soft_offline_page", str(FREE))
    if rules == "6.1":
        assert (err, log) == (0, [f"soft_offline_page: {pfn:#x} page already poisoned"])
    else:
        assert (err, log) == (errno.EBUSY, [f"soft offline: {pfn:#x} page already poisoned"])
    err, log = _write(m, "hard_offline_page", hex(FREE))
    assert err == (EHWPOISON if rules == "6.1" else 0)
    assert log == [f"Memory failure: {pfn:#x}: already hardware poisoned"]
    m2 = Machine(kernel)
    err, log = _write(m2, "hard_offline_page", hex(FREE + 0x234))  # any address in the page
    action = "Recovered" if rules == "6.1" else "Delayed"
    assert (err, log) == (0, [f"Memory failure: {pfn:#x}: recovery action for free buddy page: {action}"])
    assert m2.hwpoison == {pfn}


@pytest.mark.parametrize("kernel", KERNELS)
def test_reserved_kernel_image_page(kernel):
    """The kernel image (PageReserved, refcount 1).  soft: 5.3 get_any_page "unknown non LRU
    page type" -EIO, 6.1 get_any_page "unhandlable page." -EIO; nothing poisoned.  hard:
    TestSetPageHWPoison first, then 5.3 identify_page_state → me_kernel "reserved kernel page:
    Ignored", 6.1 get_hwpoison_page -EIO → MF_MSG_UNKNOWN; -EBUSY and the page stays poisoned."""
    rules = kernel_model(kernel).memory_failure
    pfn = IMAGE >> 12
    m = Machine(kernel)
    before = m.snapshot()
    err, log = _write(m, "soft_offline_page", hex(IMAGE))
    assert err == errno.EIO and m.snapshot() == before
    if rules == "6.1":
        assert log == [f"Memory failure: {pfn:#x}: unhandlable page."]
    else:
        assert len(log) == 1 and log[0].startswith(f"soft_offline: {pfn:#x}: unknown non LRU page type ")
        assert log[0].endswith(" (reserved)")
    err, log = _write(m, "hard_offline_page", hex(IMAGE))
    assert err == errno.EBUSY and m.hwpoison == {pfn}
    if rules == "6.1":
        assert log == [f"Memory failure: {pfn:#x}: unhandlable page.",
                       f"Memory failure: {pfn:#x}: recovery action for unknown page: Ignored"]
    else:
        assert log == [f"Memory failure: {pfn:#x}: recovery action for reserved kernel page: Ignored"]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("addr", [ABSENT, HOLE_SECTION, 1 << 63])
def test_not_pfn_valid(kernel, addr):
    """soft: the store's / soft_offline_page's pfn_valid → -ENXIO, silent; hard: memory_failure
    "memory outside kernel control" -ENXIO (5.3 pfn_valid, 6.1 pfn_to_online_page + pfn_valid)."""
    m = Machine(kernel)
    pfn = addr >> 12
    assert _write(m, "soft_offline_page", hex(addr)) == (errno.ENXIO, [])
    assert _write(m, "hard_offline_page", hex(addr)) == (
        errno.ENXIO, [f"Memory failure: {pfn:#x}: memory outside kernel control"])
    assert not m.hwpoison


@pytest.mark.parametrize("kernel", KERNELS)
def test_offline_block(kernel):
    """A page of an offlined block (PageReserved, refcount 0 after __offline_isolated_pages).
    5.3: soft "__get_any_page: ... unknown zero refcount page type" -EIO; hard poisons it,
    "high-order kernel page: Ignored", -EBUSY.  5.4+ (the uninitialized-memmaps fixes): soft
    -EIO silently, hard "memory outside kernel control" -ENXIO, nothing poisoned."""
    rules = kernel_model(kernel).memory_failure
    pfn = FREE >> 12
    m = Machine(kernel)
    m.offline_memory_block(FREE // m.memory_block_size)
    err, log = _write(m, "soft_offline_page", hex(FREE))
    assert err == errno.EIO
    if rules == "5.3":
        assert len(log) == 1 and log[0].startswith(f"__get_any_page: {pfn:#x}: unknown zero refcount page type ")
    else:
        assert log == []
    err, log = _write(m, "hard_offline_page", hex(FREE))
    if rules == "5.3":
        assert (err, log) == (errno.EBUSY, [f"Memory failure: {pfn:#x}: recovery action for high-order kernel "
                                            f"page: Ignored"])
        assert m.hwpoison == {pfn}
    else:
        assert (err, log) == (errno.ENXIO, [f"Memory failure: {pfn:#x}: memory outside kernel control"])
        assert not m.hwpoison


@pytest.mark.parametrize("kernel", KERNELS)
def test_zone_device_page(kernel):
    """fsdax pmem: soft -EIO (5.3 is_zone_device_page, pr_debug only; 5.4+ not online); hard
    memory_failure_dev_pagemap: dax_lock_page finds no file mapping → -EBUSY "dax page:
    Failed"; 6.1 pgmap_pfn_valid refuses the device's metadata pages with -ENXIO."""
    rules = kernel_model(kernel).memory_failure
    m = Machine(kernel, iomem=RAM_5G + "140000000-1bfffffff : Persistent Memory\n")
    m.regions[0].create_namespace(mode="fsdax")
    pg = m.get_dev_pagemap(0x140000)
    data = pg.pfn_first << 12
    before = m.snapshot()
    for addr, hard in ((0x140000000, errno.ENXIO if rules == "6.1" else errno.EBUSY), (data, errno.EBUSY)):
        assert _write(m, "soft_offline_page", hex(addr)) == (errno.EIO, [])
        assert _write(m, "hard_offline_page", hex(addr)) == (
            hard, [f"Memory failure: {addr >> 12:#x}: recovery action for dax page: Failed"])
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ("5.3", "6.1"))
def test_poisoned_pages_and_the_offline_online_paths(kernel):
    """has_unmovable_pages / test_pages_isolated skip PageHWPoison when offlining (5.3
    SKIP_HWPOISON, 6.1 MEMORY_OFFLINE), so a hard-offlined page does not keep its block
    online; the flag survives offline and online (generic_online_page keeps it); removal
    clears it (sparse_remove_section → clear_hwpoisoned_pages).  A poisoned reserved page
    still refuses offline: PageReserved is tested first."""
    m = Machine(kernel)
    blk = FREE // m.memory_block_size
    assert _write(m, "hard_offline_page", hex(FREE))[0] == 0
    m.offline_memory_block(blk)
    m.online_memory_block(blk)
    assert m.hwpoison == {FREE >> 12}
    assert _write(m, "soft_offline_page", hex(FREE))[0] == (0 if kernel == "6.1" else errno.EBUSY)
    memmap = m.boot_reserved[-1][0] << 12  # the boot memmap, top-down in the node's last block
    assert _write(m, "hard_offline_page", hex(memmap))[0] == errno.EBUSY
    with pytest.raises(KernelError) as ei:
        m.offline_memory_block(memmap // m.memory_block_size)
    assert ei.value.errno == errno.EBUSY
    # hot-added memory: poison, offline, remove, add again: the flag is gone with the memmap
    start = 8 * GiB
    m.add_memory(0, start, m.memory_block_size)
    new = start // m.memory_block_size
    m.online_memory_block(new)
    assert _write(m, "hard_offline_page", hex(start + 4096))[0] == 0
    m.offline_memory_block(new)
    m.remove_memory(0, start, m.memory_block_size)
    assert (start + 4096) >> 12 not in m.hwpoison
    m.add_memory(0, start, m.memory_block_size)
    m.online_memory_block(new)
    assert _write(m, "soft_offline_page", hex(start + 4096))[0] == 0


def test_the_sysroot_write_reaches_the_store():
    """What chmem-like tools and the FUSE mount use: SysRoot.write → the byte count."""
    m = Machine("5.3")
    assert SysRoot(m).write(f"{MEMORY_DIR}/soft_offline_page", b"0x40000000\n") == 11
    assert m.hwpoison == {FREE >> 12}
    # a NUL ends the C string the store parses (kernfs NUL-terminates the buffer)
    assert SysRoot(m).write(f"{MEMORY_DIR}/hard_offline_page", b"0x40001000\0junk") == 15
    assert m.hwpoison == {FREE >> 12, (FREE >> 12) + 1}


# ---------------------------------------------------------------------------------------------
# "Soft Reserved" (kmem.md K §2.2) and the CPU's physical address width

SOFT = RAM_5G + ("140000000-17fffffff : Soft Reserved\n"
                 "  140000000-17fffffff : dax0.0\n"
                 "    140000000-17fffffff : System RAM (kmem)\n"
                 "180000000-1bfffffff : System RAM\n")


@pytest.mark.parametrize("kernel", KERNELS)
def test_soft_reserved_per_release(kernel):
    """v5.5 262b45ae3ab4 (x86/efi: EFI soft reservation to E820 enumeration): EFI_MEMORY_SP
    memory is e820 0xefffffff / "Soft Reserved", not boot RAM, and nested "System RAM (kmem)"
    is not boot RAM either.  Before 5.5 the same firmware range is conventional memory:
    System RAM, merged with its RAM neighbours (e820__update_table), with boot blocks."""
    m = Machine(kernel, iomem=SOFT)
    sr_blocks = [b for b in m.memory_blocks if 0x140000000 <= b.start < 0x180000000]
    if kernel_model(kernel).efi_soft_reserve:
        assert "140000000-17fffffff : Soft Reserved" in m.iomem_text()
        if kernel_model(kernel).dax_kmem_default:
            # 6.3+: hmem's device binds to kmem at boot, its blocks offline (kmem.md K §2.2)
            assert len(sr_blocks) == 8 and {str(b.state) for b in sr_blocks} == {"offline"}
        else:
            assert sr_blocks == []
    else:
        assert len(sr_blocks) == (1 << 30) // m.memory_block_size
        assert "100000000-1bfffffff : System RAM\n" in m.iomem_text()
        assert "Soft Reserved" not in m.iomem_text() and "kmem" not in m.iomem_text()
    assert m.boot_args["iomem"] == Machine("6.8", iomem=SOFT).boot_args["iomem"]  # reboot sees the firmware map
    assert [b.start for b in m.reboot(kernel="6.8").memory_blocks] == \
           [b.start for b in Machine("6.8", iomem=SOFT).memory_blocks]


def test_soft_reserved_from_dmesg_e820_lines():
    """The e820 table form ("soft reserved") follows the same rule."""
    text = ("BIOS-e820: [mem 0x0000000000100000-0x00000000bfffffff] usable\n"
            "BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable\n"
            "BIOS-e820: [mem 0x0000000140000000-0x000000017fffffff] soft reserved\n")
    assert len(Machine("5.4", iomem=text).memory_blocks) == len(Machine("6.1", iomem=text).memory_blocks) + 8


@pytest.mark.parametrize("kernel", KERNELS)
def test_phys_bits_bounds_hot_add(kernel):
    """arch/x86/kernel/setup.c setup_arch (5.3, 6.1): iomem_resource.end = (1 <<
    x86_phys_bits) - 1, so register_memory_resource's __request_region fails beyond the CPU's
    width: pr_debug "Unable to reserve System RAM region" and -EEXIST.  From v5.12
    (bca3feaa0764) mhp_range_allowed checks the build limit MAX_PHYSMEM_BITS first: pr_warn
    "Hotplug memory [...] exceeds maximum addressable range [...]", -E2BIG.  (pr_debug lines
    need dynamic debug: Machine(dyndbg=True).)"""
    m = Machine(kernel, phys_bits=40, dyndbg=True)
    bs = m.memory_block_size
    m.add_memory(0, (1 << 40) - bs, bs)
    before = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.add_memory(0, 1 << 40, bs)
    assert ei.value.errno == errno.EEXIST
    assert m.dmesg[-1] == f"Unable to reserve System RAM region: {1 << 40:016x}->{(1 << 40) + bs:016x}"
    assert m.snapshot() == before
    with pytest.raises(KernelError) as ei:
        m.add_memory(0, 1 << 46, bs)
    if kernel_model(kernel).mhp_range_allowed:
        assert ei.value.errno == errno.E2BIG
        assert m.dmesg[-1] == (f"Hotplug memory [{1 << 46:#x}-{(1 << 46) + bs:#x}] exceeds maximum "
                               f"addressable range [0x0-{(1 << 46) - 1:#x}]")
    else:
        assert ei.value.errno == errno.EEXIST
    assert m.snapshot() == before
    assert Machine(kernel).phys_bits == 46 and m.reboot().phys_bits == 40


@pytest.mark.parametrize("bad", [35, 53, -1])
def test_phys_bits_is_checked(bad):
    with pytest.raises(ValueError, match="phys_bits"):
        Machine(phys_bits=bad)
    with pytest.raises(TypeError):
        Machine(phys_bits="40")
