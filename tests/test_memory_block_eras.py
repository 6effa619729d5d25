"""Memory block sysfs attributes across releases (issue 10, later-eras-hotplug-evidence.md §5
step 8): ``removable`` reads ``1`` always from 5.6 (later-eras-hotplug.md A7.1; evidence §1 row
5.6, 53cdc1cb29e8 "drivers/base/memory.c: indicate all memory blocks as removable") and the
``online`` store parses with the 5.19 ``kstrtobool`` that also takes t/T/f/F (A7.1; evidence §1
row 5.19 and §2 item 22, 0d6ea3ac94ca "lib/kstrtox.c: add "false"/"true" support to
kstrtobool()").  Every scenario runs in both cores."""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelError, Machine
from sparsemem.kernel import kernel_model

HOT = 0x180000000      # block 48 (128 MiB blocks), beyond the default VM's RAM
CORES = ("compiled", "reference")

#: A layout whose kernel image sits in a block of its own zone (as in
#: test_boot_allocations.test_kernel_image_block_refuses_offline).
IMAGE_LAYOUT = ("00001000-0009ffff : System RAM\n"
                "00100000-bfffffff : System RAM\n"
                "100000000-1ffffffff : System RAM\n"
                "  142000000-143002e16 : Kernel code\n"
                "  144227000-144ffffff : Kernel bss\n")


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def _constant(kernel: str) -> bool:
    """What the spec says (A7.1: 5.5.0-rc5 computes removable, 5.6.4 prints 1), not the model."""
    return {"5.5": False, "5.6": True}[kernel]


def _ram_end(m) -> int:
    return max(r.end + 1 for r in m.iomem.top_level() if r.name == "System RAM")


def test_the_rows_set_the_switches():
    """kernel.py ERAS: the 5.6 row sets removable_constant, the 5.19 row kstrtobool_true_false;
    the releases before keep the 5.3 rules."""
    assert [kernel_model(v).removable_constant for v in ("5.3", "5.5", "5.6", "6.8")] == [
        False, False, True, True]
    assert [kernel_model(v).kstrtobool_true_false for v in ("5.3", "5.18", "5.19", "6.8")] == [
        False, False, True, True]


@pytest.mark.parametrize("kernel", ("5.5", "5.6"))
def test_boot_memmap_block(kernel, core):
    """A7.1: the block holding the boot memmap (top of RAM, reserved pages) reads ``0`` while
    ``removable_show`` runs ``is_mem_section_removable`` (5.5) and ``1`` from 5.6.  The file
    is only a hint: offlining still fails in ``start_isolate_page_range`` with -EBUSY
    (``has_unmovable_pages`` finds the reserved pages) and changes nothing."""
    m = Machine(kernel, core=core)
    blk = (_ram_end(m) - 1) // m.memory_block_size
    assert m.sysfs[f"memory{blk}/removable"] == ("1\n" if _constant(kernel) else "0\n")
    assert m.memory_block(blk).removable is _constant(kernel)
    before = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.sysfs[f"memory{blk}/state"] = "offline"
    assert ei.value.errno == errno.EBUSY
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ("5.5", "5.6"))
def test_kernel_image_block(kernel, core):
    """A7.1: the block holding the kernel image (reserved text/bss) reads ``0`` in 5.5 and
    ``1`` in 5.6; an ordinary neighbouring block reads ``1`` in both."""
    m = Machine.from_iomem(IMAGE_LAYOUT, kernel=kernel, core=core)
    blk = 0x142000000 // m.memory_block_size
    assert m.sysfs[f"memory{blk}/removable"] == ("1\n" if _constant(kernel) else "0\n")
    assert m.sysfs[f"memory{blk - 2}/removable"] == "1\n"


@pytest.mark.parametrize("kernel", ("5.5", "5.6"))
def test_movable_block(kernel, core):
    """A7.1 with has_unmovable_pages (5.3-5.5: a PageReserved page is unmovable even in
    ZONE_MOVABLE): a hot-added Movable block reads ``1`` in both releases (and when offline);
    with a reserved page placed in it by hand it reads ``0`` in 5.5 and still ``1`` in 5.6."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, m.memory_block_size)
    bid = HOT // m.memory_block_size
    assert m.sysfs[f"memory{bid}/removable"] == "1\n"  # offline: 1 in every release
    m.sysfs[f"memory{bid}/state"] = "online_movable"
    assert m.sysfs[f"memory{bid}/valid_zones"] == "Movable\n"
    assert m.sysfs[f"memory{bid}/removable"] == "1\n"
    pfn = HOT >> 12
    m.boot_reserved.append((pfn + 4096, pfn + 4097))
    assert m.sysfs[f"memory{bid}/removable"] == ("1\n" if _constant(kernel) else "0\n")


def _accepts(kernel: str) -> bool:
    """What the spec says (A7.1: 5.18.12 kstrtobool lacks t/f, 5.19.0 has it), not the model."""
    return {"5.18": False, "5.19": True}[kernel]


def _offline_hot_block(kernel, core):
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, m.memory_block_size)
    return m, HOT // m.memory_block_size


@pytest.mark.parametrize("word", ("true", "t", "T", "true\n", "True"))
@pytest.mark.parametrize("kernel", ("5.18", "5.19"))
def test_online_store_true(kernel, core, word):
    """A7.1 ``online`` store (device core ``online_store`` → ``kstrtobool``): a first character
    ``t``/``T`` onlines the block from 5.19; 5.18 answers -EINVAL and nothing changes."""
    m, bid = _offline_hot_block(kernel, core)
    assert m.sysfs[f"memory{bid}/online"] == "0\n"
    before = m.snapshot()
    if _accepts(kernel):
        assert m.sysfs.write(f"memory{bid}/online", word) == len(word)
        assert m.sysfs[f"memory{bid}/online"] == "1\n"
        assert m.sysfs[f"memory{bid}/state"] == "online\n"
    else:
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"memory{bid}/online"] = word
        assert ei.value.errno == errno.EINVAL
        assert m.snapshot() == before
        assert m.sysfs[f"memory{bid}/state"] == "offline\n"


@pytest.mark.parametrize("word", ("false", "f", "F", "false\n"))
@pytest.mark.parametrize("kernel", ("5.18", "5.19"))
def test_online_store_false(kernel, core, word):
    """A7.1: a first character ``f``/``F`` offlines an online block from 5.19 (``false``); 5.18
    answers -EINVAL and the block stays online."""
    m, bid = _offline_hot_block(kernel, core)
    m.sysfs[f"memory{bid}/online"] = "1"
    before = m.snapshot()
    if _accepts(kernel):
        m.sysfs[f"memory{bid}/online"] = word
        assert m.sysfs[f"memory{bid}/online"] == "0\n"
        assert m.sysfs[f"memory{bid}/state"] == "offline\n"
    else:
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"memory{bid}/online"] = word
        assert ei.value.errno == errno.EINVAL
        assert m.snapshot() == before
        assert m.sysfs[f"memory{bid}/online"] == "1\n"


@pytest.mark.parametrize("kernel", ("5.18", "5.19"))
def test_online_store_other_words_unchanged(kernel, core):
    """kstrtobool in both releases: y/n/1/0/on/off parse as before; other first characters
    (``e``, ``x``, a lone ``o``) stay -EINVAL with the state unchanged."""
    m, bid = _offline_hot_block(kernel, core)
    for word, want in (("on", "1\n"), ("off", "0\n"), ("y", "1\n"), ("n", "0\n"), ("1", "1\n"), ("0", "0\n")):
        m.sysfs[f"memory{bid}/online"] = word
        assert m.sysfs[f"memory{bid}/online"] == want
    before = m.snapshot()
    for word in ("enable", "x", "o"):
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"memory{bid}/online"] = word
        assert ei.value.errno == errno.EINVAL
        assert m.snapshot() == before
