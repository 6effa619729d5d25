"""``mm/memory-failure.c`` as the sysfs files ``/sys/devices/system/memory/soft_offline_page``
and ``hard_offline_page`` reach it (CONFIG_MEMORY_FAILURE, which distribution kernels set;
sparse-hotplug.md §8.6, api.md "sysfs").

A write of a physical address (``kstrtoull(buf, 0)``: decimal, ``0x`` hex or ``0`` octal, one
trailing newline; anything else -EINVAL) names the page ``addr >> PAGE_SHIFT``.
``soft_offline_page`` takes a page out of use without losing data (a free page is simply
marked), ``hard_offline_page`` treats it as corrupted (``memory_failure``).  Either sets the
page's ``PG_hwpoison`` (:attr:`Machine.hwpoison <sparsemem.state.MachineState.hwpoison>`, a
set of pfns) where the release does; the write returns the byte count or fails with the
release's errno, and logs the release's lines.

What a page is, as far as the simulation knows it: not ``pfn_valid``; ZONE_DEVICE (a live
``dev_pagemap``); in an offline section (``pfn_to_online_page`` fails); ``PageReserved`` with
refcount 1 (kernel image, boot memmap, holes in present sections:
:func:`sparsemem.hotplug.first_unmovable_pfn`); otherwise a free buddy page (page
allocations are not modelled).  ZONE_DEVICE pages are never mapped by a file here, so
``dax_lock_page`` finds no mapping.  The outcomes per rule set
(:attr:`KernelModel.memory_failure <sparsemem.kernel.KernelModel.memory_failure>`):

==================  ===================================  ==================================
page                soft_offline_page                    hard_offline_page
==================  ===================================  ==================================
not pfn_valid       -ENXIO                               -ENXIO "memory outside kernel
                                                         control"
ZONE_DEVICE         -EIO                                 -EBUSY "recovery action for dax
                                                         page: Failed" (6.1: -ENXIO in the
                                                         altmap part, ``pgmap_pfn_valid``)
offline             5.3: -EIO "unknown zero refcount     5.3: poisoned, -EBUSY "high-order
                    page type"; 5.4+: -EIO               kernel page: Ignored"; 5.4+:
                                                         -ENXIO "memory outside kernel
                                                         control"
already poisoned    5.3/5.4: -EBUSY "page already        5.3/5.4: 0 "already hardware
                    poisoned"; 6.1: 0 (same line)        poisoned"; 6.1: -EHWPOISON
reserved            -EIO "unknown non LRU page type"     poisoned, -EBUSY "reserved kernel
                    (6.1: "unhandlable page.")           page: Ignored" (6.1: "unhandlable
                                                         page." then "unknown page:
                                                         Ignored")
free                poisoned, 0 ("free buddy page"       poisoned, 0 "free buddy page:
                    line before 6.1)                     Delayed" (6.1: taken off the
                                                         buddy, "Recovered")
==================  ===================================  ==================================

Sources: 5.3 ``drivers/base/memory.c`` ``soft_offline_page_store`` / ``hard_offline_page_store``
(``pfn_valid`` then ``soft_offline_page(pfn_to_page(pfn), 0)``; ``memory_failure(pfn, 0)``),
5.3 ``mm/memory-failure.c`` ``soft_offline_page``, ``get_any_page`` / ``__get_any_page``,
``soft_offline_free_page`` (``set_hwpoison_free_buddy_page``), ``memory_failure``,
``memory_failure_dev_pagemap`` (``dax_lock_page`` finds no mapping: -EBUSY),
``identify_page_state`` (``me_kernel``: Ignored, ``page_action``: -EBUSY), ``action_result``;
5.4 the two "don't access uninitialized memmaps" fixes (an offline or ZONE_DEVICE pfn is
refused before its memmap is read); 6.1 (Debian linux-source-6.1) the same files:
``soft_offline_page`` (-EIO unless ``pfn_to_online_page``, 0 for a poisoned page,
``page_handle_poison``), ``get_any_page`` / ``HWPoisonHandlable`` ("unhandlable page." after
the retries), ``memory_failure`` (``take_page_off_buddy``, -EHWPOISON, MF_MSG_UNKNOWN),
``memory_failure_dev_pagemap`` (``pgmap_pfn_valid``, the pmem ``memory_failure`` op answers
-EOPNOTSUPP without a holder, then ``mf_generic_kill_procs``: -EBUSY), and the store, which
turns -EOPNOTSUPP into success.  Releases between 5.4 and 6.0 run with the 5.4 rules, 6.2 and
later with the 6.1 rules (6.2.1 read: the outcomes and lines of the table are those of 6.1)
plus the 6.2 per-block count below; releases after 6.2 not re-read.

From 6.2 (5033091de814 "mm/hwpoison: introduce per-memory_block hwpoison counter";
:attr:`KernelModel.hwpoison_block_counter
<sparsemem.kernel.KernelModel.hwpoison_block_counter>`) every page poisoned here is also
counted by its memory block (``MemoryBlock.nr_hwpoison``, :func:`num_poisoned_pages_inc`):
soft offline of a free page (``page_handle_poison``) and every hard outcome that prints a
"recovery action" line (``action_result``: free, reserved and ZONE_DEVICE pages, the last
counted only where a memory block covers the pfn), not "already hardware poisoned" nor
"memory outside kernel control".  ``memory_block_online`` then refuses the block with
-EHWPOISON (:func:`sparsemem.memory_block.memory_block_action`); the count goes with the
block device on removal.

Where the offline/online paths look at ``PageHWPoison``: ``has_unmovable_pages`` and
``test_pages_isolated`` skip a poisoned page when offlining (SKIP_HWPOISON in 5.3,
MEMORY_OFFLINE in 6.1) and ``do_migrate_range`` does not migrate it (6.1), so a poisoned page
never keeps a block online -- but the ``PageReserved`` test comes first, so a poisoned
reserved page still does (:func:`sparsemem.hotplug.first_unmovable_pfn`).  Onlining frees
the pages with the flag kept (5.3 ``generic_online_page``; 6.1 ``__free_pages_core`` of
whole MAX_ORDER chunks), so a page stays poisoned across offline and online; from 6.2 such a
block is not onlined at all (above).  Removing the memory clears the flags
(``sparse_remove_section`` → ``clear_hwpoisoned_pages``, 5.3 and 6.1); from 6.2 it does not
call ``clear_hwpoisoned_pages`` and a flag goes only with a freed memmap
(:func:`sparsemem.hotplug.remove_section`).

Not modelled: ``CAP_SYS_ADMIN`` (the simulation is root), hugetlb and THP pages, processes
to kill, ``hwpoison_filter``, ``/proc/sys/vm/memory_failure_recovery`` 0 (a panic),
``unpoison_memory``.  The page-flags value printed in the "type" lines follows the build
described at :func:`sparsemem.hotplug.dump_unmovable_page`.
"""

from __future__ import annotations

import errno

from . import _common as K
from . import constants as C
from .errors import KernelError
from .hotplug import _LAST_CPUPID_RESET, _PG_RESERVED, first_unmovable_pfn, pfn_to_online_page

__all__ = ["soft_offline_page_store", "hard_offline_page_store", "soft_offline_page", "memory_failure",
           "page_state", "EHWPOISON"]

#: include/uapi/asm-generic/errno.h
EHWPOISON = getattr(errno, "EHWPOISON", 133)

def page_state(m, pfn: int) -> str:
    """What the page at ``pfn`` is for memory-failure handling: ``"invalid"``, ``"device"``,
    ``"offline"``, ``"reserved"`` or ``"free"`` (see the module docstring)."""
    S = m.sections
    if pfn >= S.pfn_limit or not S.pfn_valid(pfn):
        return "invalid"
    if m.get_dev_pagemap(pfn) is not None:  # the Machine façade: memremap is a layer above
        return "device"
    if not pfn_to_online_page(m, pfn):
        return "offline"
    if first_unmovable_pfn(m, pfn, 1) is not None:
        return "reserved"
    return "free"


def _flags(m, pfn: int) -> int:
    """``page->flags`` of a reserved page (the layout of :func:`sparsemem.hotplug.dump_unmovable_page`)."""
    zone = m.page_zone(pfn)
    zidx = zone.idx if zone is not None else 0
    nid = zone.nid if zone is not None else 0
    return (nid << 54) | (zidx << 51) | _LAST_CPUPID_RESET | _PG_RESERVED


def _fail(err: int, what: str, pfn: int, why: str):
    raise KernelError(err, f"{what}: pfn {pfn:#x}: {why}")


def _poison(m, pfn: int) -> None:
    m.hwpoison.add(pfn)


def num_poisoned_pages_inc(m, pfn: int) -> None:
    """``num_poisoned_pages_inc(pfn)`` → ``memblk_nr_poison_inc``: from 6.2 the memory block
    that holds ``pfn``, if one exists, counts one more poisoned page (6.2.1
    mm/memory-failure.c, drivers/base/memory.c; :attr:`KernelModel.hwpoison_block_counter
    <sparsemem.kernel.KernelModel.hwpoison_block_counter>`).  The global
    ``num_poisoned_pages`` (``HardwareCorrupted`` in /proc/meminfo) is not modelled."""
    if m.model.hwpoison_block_counter:
        blk = m.blocks.get((pfn << C.PAGE_SHIFT) // m.memory_block_size)
        if blk is not None:
            blk.nr_hwpoison += 1


def soft_offline_page(m, pfn: int) -> None:
    """``soft_offline_page_store`` + ``soft_offline_page`` of the release (module docstring);
    returns on success, raises :class:`KernelError` otherwise."""
    rules = m.model.memory_failure
    what = "soft_offline_page"
    state = page_state(m, pfn)
    if state == "invalid":
        _fail(errno.ENXIO, what, pfn, "not pfn_valid")
    if rules != "5.3" and state in ("device", "offline"):
        # 5.4+: "Only online pages can be soft-offlined (esp., not ZONE_DEVICE)"
        _fail(errno.EIO, what, pfn, "not an online page")
    if state == "device":
        # 5.3 is_zone_device_page: pr_debug_ratelimited only (not logged, module docstring)
        _fail(errno.EIO, what, pfn, "ZONE_DEVICE page")
    if pfn in m.hwpoison:
        if rules == "6.1":
            m.log(f"soft_offline_page: {pfn:#x} page already poisoned")
            return
        m.log(f"soft offline: {pfn:#x} page already poisoned")
        _fail(errno.EBUSY, what, pfn, "page already poisoned")
    if state == "offline":
        # 5.3: an offlined page is PageReserved with refcount 0 (__offline_isolated_pages)
        m.log(f"__get_any_page: {pfn:#x}: unknown zero refcount page type {_flags(m, pfn):x}")
        _fail(errno.EIO, what, pfn, "unknown zero refcount page")
    if state == "reserved":
        if rules == "6.1":
            m.log(f"Memory failure: {pfn:#x}: unhandlable page.")
        else:
            m.log(f"soft_offline: {pfn:#x}: unknown non LRU page type {_flags(m, pfn):x} (reserved)")
        _fail(errno.EIO, what, pfn, "reserved page cannot be migrated")
    if rules != "6.1":
        m.log(f"__get_any_page: {pfn:#x} free buddy page")
    _poison(m, pfn)
    num_poisoned_pages_inc(m, pfn)  # page_handle_poison


def memory_failure(m, pfn: int) -> None:
    """``hard_offline_page_store`` + ``memory_failure(pfn, ...)`` of the release (module
    docstring); returns on success, raises :class:`KernelError` otherwise."""
    rules = m.model.memory_failure
    what = "hard_offline_page"

    def result(kind: str, action: str) -> None:  # action_result
        num_poisoned_pages_inc(m, pfn)
        m.log(f"Memory failure: {pfn:#x}: recovery action for {kind}: {action}")

    state = page_state(m, pfn)
    if state == "device":
        pg = m.get_dev_pagemap(pfn)
        assert pg is not None  # page_state() said "device": a pgmap covers pfn
        if rules == "6.1" and pfn < pg.pfn_first:
            # pgmap_pfn_valid: the device's own metadata (info block, memmap) is not recoverable
            result("dax page", "Failed")
            _fail(errno.ENXIO, what, pfn, "device metadata page")
        result("dax page", "Failed")
        _fail(errno.EBUSY, what, pfn, "dax page not mapped by any file")
    if state == "invalid" or (state == "offline" and rules != "5.3"):
        m.log(f"Memory failure: {pfn:#x}: memory outside kernel control")
        _fail(errno.ENXIO, what, pfn, "memory outside kernel control")
    if pfn in m.hwpoison:
        m.log(f"Memory failure: {pfn:#x}: already hardware poisoned")
        if rules == "6.1":
            _fail(EHWPOISON, what, pfn, "already hardware poisoned")
        return
    _poison(m, pfn)  # TestSetPageHWPoison, before the page is looked at
    if state == "free":
        result("free buddy page", "Recovered" if rules == "6.1" else "Delayed")
        return
    if state == "offline":  # 5.3: refcount 0 and not in the buddy
        result("high-order kernel page", "Ignored")
        _fail(errno.EBUSY, what, pfn, "high-order kernel page")
    if rules == "6.1":
        m.log(f"Memory failure: {pfn:#x}: unhandlable page.")
        result("unknown page", "Ignored")
    else:
        result("reserved kernel page", "Ignored")
    _fail(errno.EBUSY, what, pfn, "reserved kernel page")


def _store(m, name: str, value: str, count: int, fn) -> int:
    addr = K.kstrtox(value)
    addr = addr if addr is not None and addr <= K.U64 else None
    if addr is None:
        raise KernelError(errno.EINVAL, f"{name}: invalid address {value!r}")
    fn(m, addr >> C.PAGE_SHIFT)
    m.sync_core_dmesg()
    return count


def soft_offline_page_store(m, value: str, count: int) -> int:
    """The ``soft_offline_page`` write: the byte count, or KernelError."""
    return _store(m, "soft_offline_page", value, count, soft_offline_page)


def hard_offline_page_store(m, value: str, count: int) -> int:
    """The ``hard_offline_page`` write: the byte count, or KernelError."""
    return _store(m, "hard_offline_page", value, count, memory_failure)
