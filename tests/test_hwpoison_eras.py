"""Hardware-poisoned pages and memory blocks, 6.1 against 6.2 (issue 10 step 15;
later-eras-hotplug.md A5.4, A7.2 and the A10 6.2 row; later-eras-hotplug-evidence.md §1 row
6.2, §2 item 8, §4 "6.1→6.2 hwpoison").

6.2 (5033091de814 "mm/hwpoison: introduce per-memory_block hwpoison counter"; absent at
6.1.192, present at 6.2.1): drivers/base/memory.c ``memory_block_online`` returns
-EHWPOISON (133), without a dmesg line, before any work while the block's ``nr_hwpoison`` is
not 0.  mm/memory-failure.c raises it through ``num_poisoned_pages_inc`` →
``memblk_nr_poison_inc`` from ``page_handle_poison`` (soft offline) and ``action_result``
(hard offline: every outcome with a "recovery action" line); ``remove_memory_block_devices``
drops it with the device, and ``sparse_remove_section`` no longer calls
``clear_hwpoisoned_pages`` (6.1.192 does), so a flag goes only with a freed memmap.  Every
scenario runs in both cores."""

from __future__ import annotations

import errno

import pytest

from helpers import RAM_5G_PMEM_2G
from sparsemem import KernelError, Machine
from sparsemem import hotplug as H
from sparsemem.kernel import kernel_model
from sparsemem.memory_failure import EHWPOISON

HOT = 0x180000000      # block 48 (128 MiB blocks), beyond the default VM's RAM
FREE = 1 << 30         # a free page of boot block 8 of the default VM
CORES = ("compiled", "reference")
HOW = {"soft": "soft_offline_page", "hard": "hard_offline_page"}


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def _refuses(kernel: str) -> bool:
    """What the spec says (A7.2: 6.1.192 lacks the counter, 6.2.1 has it), not the model."""
    return {"6.1": False, "6.2": True}[kernel]


def _hot_block(kernel, core):
    """``add_memory(0, HOT, BLK)`` and online: block 48, its first page poisonable."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, m.memory_block_size)
    bid = HOT // m.memory_block_size
    m.online_memory_block(bid)
    return m, bid


def _online_errno(m, how, bid):
    """Online block ``bid`` one way; 0 or the KernelError's errno."""
    try:
        if how == "machine":
            m.online_memory_block(bid)
        elif how == "state":
            m.sysfs[f"memory{bid}/state"] = "online_movable"
        else:
            m.sysfs[f"memory{bid}/online"] = "1"
    except KernelError as e:
        return e.errno
    return 0


def test_the_switch_follows_the_release():
    """kernel.py ERAS row 6.2: off through 6.1 (6.1.192, a late stable, still lacks it), on from
    6.2.0 to the newest row."""
    got = {k: kernel_model(k).hwpoison_block_counter
           for k in ("5.3", "5.4", "6.0", "6.1", "6.1.192", "6.2", "6.2.1", "6.8", "6.12")}
    assert got == {"5.3": False, "5.4": False, "6.0": False, "6.1": False, "6.1.192": False,
                   "6.2": True, "6.2.1": True, "6.8": True, "6.12": True}


@pytest.mark.parametrize("via", ("machine", "state", "online"))
@pytest.mark.parametrize("poison", sorted(HOW))
@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_online_of_a_block_with_a_poisoned_page(kernel, core, poison, via):
    """Evidence §4 "6.1→6.2 hwpoison": add and online 48, soft or hard offline one of its free
    pages, offline 48, online it (``Machine.online_memory_block``, or a write to
    ``memory48/state`` / ``memory48/online``).  6.1 onlines as before; 6.2 refuses with
    EHWPOISON, no dmesg line, nothing changed (the block stays offline, the page poisoned)."""
    m, bid = _hot_block(kernel, core)
    pfn = (HOT >> 12) + 1
    m.sysfs[HOW[poison]] = hex(pfn << 12)
    assert m.hwpoison == {pfn}
    assert m.blocks[bid].nr_hwpoison == (1 if _refuses(kernel) else 0)
    m.offline_memory_block(bid)  # a poisoned free page does not keep the block online
    before, n = m.snapshot(), len(m.dmesg)
    err = _online_errno(m, via, bid)
    if _refuses(kernel):
        assert err == EHWPOISON == 133
        assert m.snapshot() == before and m.dmesg[n:] == []
        assert m.sysfs[f"memory{bid}/state"] == "offline\n" and m.sysfs[f"memory{bid}/online"] == "0\n"
        assert m.blocks[bid].nr_hwpoison == 1
    else:
        assert err == 0
        assert m.sysfs[f"memory{bid}/state"] == "online\n" and m.blocks[bid].zone is not None
        assert m.hwpoison == {pfn}


@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_the_error_names_the_count(kernel, core):
    """The KernelError of a refused online carries errno 133 and the block's count."""
    m, bid = _hot_block(kernel, core)
    m.sysfs["soft_offline_page"] = hex(HOT + 0x1000)
    m.sysfs["hard_offline_page"] = hex(HOT + 0x2000)
    m.offline_memory_block(bid)
    if not _refuses(kernel):
        m.online_memory_block(bid)
        return
    with pytest.raises(KernelError) as ei:
        m.sysfs[f"memory{bid}/state"] = "online"
    assert ei.value.errno == EHWPOISON
    assert "memory48/state" in str(ei.value) and "counts 2 hardware-poisoned" in str(ei.value)


@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_boot_block(kernel, core):
    """The same on boot block 8 (made on first use): 6.2 refuses its online after a poisoned
    page, 6.1 onlines it."""
    m = Machine(kernel, core=core)
    bid = FREE // m.memory_block_size
    m.sysfs["hard_offline_page"] = hex(FREE)
    m.offline_memory_block(bid)
    n = len(m.dmesg)
    err = _online_errno(m, "online", bid)
    assert (err, m.dmesg[n:]) == ((EHWPOISON, []) if _refuses(kernel) else (0, []))
    assert m.sysfs[f"memory{bid}/state"] == ("offline\n" if _refuses(kernel) else "online\n")


def test_what_counts_in_6_2(core):
    """6.2 counting (6.2.1 mm/memory-failure.c): soft offline of a free page
    (page_handle_poison) and hard offline of a free or reserved page (action_result) count; an
    already poisoned page (soft: 0 with "page already poisoned"; hard: -EHWPOISON "already
    hardware poisoned"), a soft offline refused with -EIO and a page of an offline block
    (-ENXIO "memory outside kernel control") do not.  Each count goes to the block of the pfn."""
    m = Machine("6.2", core=core)
    bs = m.memory_block_size
    bid = FREE // bs
    m.sysfs["soft_offline_page"] = hex(FREE)
    m.sysfs["hard_offline_page"] = hex(FREE + 0x1000)
    assert m.blocks[bid].nr_hwpoison == 2
    m.sysfs["soft_offline_page"] = hex(FREE)        # already poisoned: 0, not counted
    with pytest.raises(KernelError) as ei:
        m.sysfs["hard_offline_page"] = hex(FREE + 0x1000)
    assert ei.value.errno == EHWPOISON
    assert m.blocks[bid].nr_hwpoison == 2
    memmap = m.boot_reserved[-1][0] << 12            # a reserved page (the boot memmap)
    mbid = memmap // bs
    with pytest.raises(KernelError) as ei:
        m.sysfs["soft_offline_page"] = hex(memmap)
    assert ei.value.errno == errno.EIO and m.blocks[mbid].nr_hwpoison == 0
    with pytest.raises(KernelError) as ei:
        m.sysfs["hard_offline_page"] = hex(memmap)   # poisoned, "unknown page: Ignored", -EBUSY
    assert ei.value.errno == errno.EBUSY and m.blocks[mbid].nr_hwpoison == 1
    other = bid + 1
    m.offline_memory_block(other)
    with pytest.raises(KernelError) as ei:
        m.sysfs["hard_offline_page"] = hex(other * bs)
    assert ei.value.errno == errno.ENXIO and m.blocks[other].nr_hwpoison == 0
    assert m.blocks[bid].nr_hwpoison == 2 and m.hwpoison == {FREE >> 12, (FREE >> 12) + 1, memmap >> 12}


@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_device_page_counts_no_block(kernel, core):
    """A ZONE_DEVICE page beyond every memory block: 6.2 action_result counts it, but
    memblk_nr_poison_inc finds no block, so no block counts anything; 6.1 has no count."""
    m = Machine(kernel, core=core, iomem=RAM_5G_PMEM_2G)
    m.regions[0].create_namespace(mode="fsdax")
    data = m.get_dev_pagemap(0x140000).pfn_first << 12
    with pytest.raises(KernelError) as ei:
        m.sysfs["hard_offline_page"] = hex(data)
    assert ei.value.errno == errno.EBUSY
    assert data // m.memory_block_size not in m.blocks
    assert sum(m.blocks[b].nr_hwpoison for b in m.blocks) == 0


@pytest.mark.parametrize("poison", sorted(HOW))
@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_removal_and_re_add(kernel, core, poison):
    """Remove the offline poisoned block and add it again: 6.1 clears the flag in
    sparse_remove_section (clear_hwpoisoned_pages); 6.2 does not clear it there, but the
    hot-added memmap is freed with the section and the count goes with the block device.
    Either way the new block counts 0 and onlines; its page can be poisoned again."""
    m, bid = _hot_block(kernel, core)
    pfn = (HOT >> 12) + 1
    m.sysfs[HOW[poison]] = hex(pfn << 12)
    m.offline_memory_block(bid)
    m.remove_memory(0, HOT, m.memory_block_size)
    assert bid not in m.blocks and not m.hwpoison
    m.add_memory(0, HOT, m.memory_block_size)
    assert m.blocks[bid].nr_hwpoison == 0
    m.online_memory_block(bid)
    assert m.sysfs[f"memory{bid}/state"] == "online\n"
    m.sysfs[HOW[poison]] = hex(pfn << 12)
    assert m.hwpoison == {pfn} and m.blocks[bid].nr_hwpoison == (1 if _refuses(kernel) else 0)


@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_boot_block_removal_and_re_add(kernel, core):
    """Boot block 8 with a poisoned page, offlined, removed whole (its early sections empty:
    the boot memmap is freed) and added again: no flag left, a fresh block counting 0 that
    onlines, in both releases."""
    m = Machine(kernel, core=core)
    bs = m.memory_block_size
    bid = FREE // bs
    m.sysfs["soft_offline_page"] = hex(FREE)
    m.offline_memory_block(bid)
    m.remove_memory(0, FREE, bs)
    assert bid not in m.blocks and not m.hwpoison
    m.add_memory(0, FREE, bs)
    assert m.blocks[bid].nr_hwpoison == 0
    m.online_memory_block(bid)
    assert m.sysfs[f"memory{bid}/state"] == "online\n"


@pytest.mark.parametrize("kernel", ("6.1", "6.2"))
def test_sparse_remove_section_clears_flags_until_6_1(kernel, core):
    """``__remove_pages`` of the 2 MiB sub-section holding a poisoned page of offline boot
    block 8: the section stays valid and early, and from 5.9 its boot memmap is kept.  6.1
    clears the flag (clear_hwpoisoned_pages); 6.2 keeps it, and the block still counts it.
    The same on a hot-added section frees that part of the memmap: the flag goes in both."""
    m = Machine(kernel, core=core)
    bid = FREE // m.memory_block_size
    pfn = (FREE >> 12) + 3
    m.sysfs["hard_offline_page"] = hex(pfn << 12)
    m.offline_memory_block(bid)
    n = len(m.dmesg)
    assert H.remove_pages(m, None, FREE >> 12, 512) == 1
    assert m.dmesg[n:] == []
    assert m.sections.pfn_valid(pfn) and m.sections.early_section_nr(pfn >> 15)
    assert m.hwpoison == ({pfn} if _refuses(kernel) else set())
    assert m.blocks[bid].nr_hwpoison == (1 if _refuses(kernel) else 0)

    m, hot = _hot_block(kernel, core)
    hpfn = (HOT >> 12) + 3
    m.sysfs["hard_offline_page"] = hex(hpfn << 12)
    m.offline_memory_block(hot)
    assert H.remove_pages(m, None, HOT >> 12, 512) == 1
    assert not m.sections.pfn_valid(hpfn)
    assert not m.hwpoison
