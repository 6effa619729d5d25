"""``mm/memory_hotplug.c`` (and the x86 ``arch_*_memory`` glue) as functions over the
:class:`~sparsemem.state.MachineState`, each named after the kernel function it models
(``__add_pages`` is :func:`add_pages`); era differences come from ``m.model``
(:mod:`sparsemem.kernel`).  "§" refers to docs/spec/sparse-hotplug.md; failure and partial
state, and the simulation's documented deviations: docs/hotplug.md.
"""

from __future__ import annotations

import errno
from typing import Optional

from . import _common as K
from . import constants as C
from .errors import KernelBug, KernelError
from .mmzone import Zone
from .printk import (  # noqa: F401  (WARN names re-exported for existing callers)
    CUT_HERE,
    WARN_SITES,
    core_warning_lines,
    pr_once,
    warn,
    warn_lines,
    warn_on_once,
    warn_once,
    warning_line,
)
from .resource import IORESOURCE_BUSY, IORESOURCE_SYSTEM_RAM, KERNEL_RESERVED, Resource

__all__ = [
    "MMOP_OFFLINE", "MMOP_ONLINE_KEEP", "MMOP_ONLINE_KERNEL", "MMOP_ONLINE_MOVABLE",
    "MEM_ONLINE", "MEM_GOING_OFFLINE", "MEM_OFFLINE", "MEM_GOING_ONLINE", "MEM_CANCEL_ONLINE",
    "MEM_CANCEL_OFFLINE", "ONLINE_TYPES",
    "check_pfn_span", "add_pages", "arch_add_pages", "arch_add_memory", "move_pfn_range_to_zone",
    "zone_for_pfn_range", "default_kernel_zone_for_pfn", "walk_system_ram_range", "online_pages",
    "test_pages_in_a_zone", "first_unmovable_pfn", "dump_unmovable_page", "offline_pages", "shrink_zone_span",
    "shrink_pgdat_span",
    "remove_zone", "remove_section", "remove_pages", "arch_remove_memory",
    "check_hotplug_memory_range", "register_memory_resource", "add_memory_resource",
    "add_memory", "remove_memory", "try_offline_node", "pfn_to_online_page",
]

# include/linux/memory_hotplug.h (v5.3 values, §8.5)
MMOP_OFFLINE = -1
MMOP_ONLINE_KEEP = 0
MMOP_ONLINE_KERNEL = 1
MMOP_ONLINE_MOVABLE = 2
#: the strings ``state`` accepts for the online types (§8.6)
ONLINE_TYPES = {"online": MMOP_ONLINE_KEEP, "online_kernel": MMOP_ONLINE_KERNEL,
                "online_movable": MMOP_ONLINE_MOVABLE}

# include/linux/memory.h (§8.6)
MEM_ONLINE = 1
MEM_GOING_OFFLINE = 2
MEM_OFFLINE = 4
MEM_GOING_ONLINE = 8
MEM_CANCEL_ONLINE = 16
MEM_CANCEL_OFFLINE = 32

MAX_ORDER_NR_PAGES = 1024
_SEC = C.PAGES_PER_SECTION


# ---------------------------------------------------------------------------------------------
# helpers

def _pct_hash_010x(v: int) -> str:
    """The kernel's ``%#010llx``: ``0x`` + hex, zero-padded to 10 characters in all, zero
    included (``0x00000000``: lib/vsprintf.c ``number()``, §8.1)."""
    return f"{v:#010x}"


def _pa(v: int) -> str:
    """``%pa``: ``0x`` + 16 zero-padded hex digits."""
    return f"0x{v:016x}"


# ---------------------------------------------------------------------------------------------
# §5.1 / §5.2: adding pages

def _pfn_span_text(m, pfn: int, nr_pages: int, reason: str) -> Optional[str]:
    """The "Misaligned" WARN text for a span that is not sub-section aligned, else None.  The
    end is inclusive; until v6.4 it is printed ``#%lx`` (the kernel's typo, ``end: #1002ff``),
    from v6.5 ``%#lx`` (``end: 0x1002ff``; ``model.pfn_span_end_hash_typo``)."""
    align = C.PAGES_PER_SUBSECTION
    if not (pfn % align or nr_pages % align):
        return None
    last = (pfn + nr_pages - 1) & K.U64
    end = f"#{last:x}" if m.model.pfn_span_end_hash_typo else K.hexfmt(last)
    return f"Misaligned __{reason}_pages start: {K.hexfmt(pfn)} end: {end}"


def check_pfn_span(m, pfn, nr_pages, reason: str) -> None:
    """``check_pfn_span(pfn, nr_pages, reason)`` (§5.1, v5.3).

    ``pfn`` and ``nr_pages`` must be multiples of 512 (VMEMMAP); otherwise the WARN
    ``Misaligned __<reason>_pages start: %#lx end: #%lx`` (the ``#`` typo and the inclusive
    end are the kernel's; ``end: %#lx`` from v6.5) is logged and ``KernelError(EINVAL)``
    raised.  From v6.0 (``model.pfn_span_warn_in_caller``) this function is silent and its
    callers ``__add_pages`` / ``__remove_pages`` WARN the same text (their WARNING line names
    them): called directly it then only raises.  The check does not exist before v5.3
    (``model.check_pfn_span`` false): then this returns without checking (v5.2 widens an add
    to whole sections and BUG_ONs a misaligned remove instead, §7).
    """
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    if reason not in ("add", "remove"):
        raise ValueError(f"reason must be 'add' or 'remove', not {reason!r}")
    if not m.model.check_pfn_span:
        return
    text = _pfn_span_text(m, pfn, nr_pages, reason)
    if text is None:
        return
    if not m.model.pfn_span_warn_in_caller:
        warn(m, "mm/memory_hotplug.c check_pfn_span", text)
    raise KernelError(errno.EINVAL, f"__{reason}_pages: {text} (pfn and nr_pages must be multiples of "
                                    f"{C.PAGES_PER_SUBSECTION})")


def _pfn_span_or_warn(m, pfn: int, nr_pages: int, reason: str) -> None:
    """The span check as ``__add_pages`` / ``__remove_pages`` run it: :func:`check_pfn_span`,
    and from v6.0 (``model.pfn_span_warn_in_caller``) the caller's own WARN of the same text
    (``WARN(1, "Misaligned %s start: ...", __func__, ...)``, mm/memory_hotplug.c 6.0)."""
    try:
        check_pfn_span(m, pfn, nr_pages, reason)
    except KernelError:
        if m.model.pfn_span_warn_in_caller:
            warn(m, f"mm/memory_hotplug.c __{reason}_pages", _pfn_span_text(m, pfn, nr_pages, reason))
        raise


def _check_addressable(m, pfn: int, nr_pages: int) -> None:
    """``check_hotplug_memory_addressable(pfn, nr_pages)`` (v5.5-v5.11,
    ``model.add_pages_addressable_check``; later-eras-hotplug.md A4.1): the last byte
    ``PFN_PHYS(pfn + nr_pages) - 1`` (64-bit arithmetic, so ``pfn + nr_pages == 0`` gives
    U64_MAX) must fit in MAX_PHYSMEM_BITS, else WARN "Hotplugged memory exceeds maximum
    addressable address, range=<start>-<last byte>, maximum=<(1 << (MAX_PHYSMEM_BITS + 1)) - 1>"
    (the maximum is the kernel's, one bit too wide) and -E2BIG, before anything changes."""
    bits = m.sections.max_physmem_bits
    last = ((((pfn + nr_pages) & K.U64) << C.PAGE_SHIFT) - 1) & K.U64
    if not last >> bits:
        return
    start = ((pfn & K.U64) << C.PAGE_SHIFT) & K.U64
    text = (f"Hotplugged memory exceeds maximum addressable address, range={K.hexfmt(start)}-"
            f"{K.hexfmt(last)}, maximum={K.hexfmt((1 << (bits + 1)) - 1)}")
    warn(m, "mm/memory_hotplug.c check_hotplug_memory_addressable", text)
    raise KernelError(errno.E2BIG, f"__add_pages(pfn {pfn:#x}, nr_pages {nr_pages:#x}): {text}")


def _beyond_section_array(m, what: str, pfn: int, nr_pages: int) -> KernelBug:
    """A range reaching past the last section of ``mem_section[]`` (``pfn_limit``) that no
    check of the release stops: ``sparse_add_section`` indexes past the section array
    (``sparse_index_init``), i.e. memory corruption (later-eras-hotplug-evidence.md §3.3)."""
    return KernelBug(f"{what}(pfn {pfn:#x}, nr_pages {nr_pages:#x}): the range ends above the last section "
                     f"of mem_section[] (pfn {m.sections.pfn_limit:#x}, MAX_PHYSMEM_BITS "
                     f"{m.sections.max_physmem_bits}) and this release does not check it: "
                     f"sparse_add_section indexes past the section array")


def add_pages(m, nid, pfn, nr_pages, altmap=None) -> None:
    """``__add_pages(nid, pfn, nr_pages, restrictions{altmap})`` (§5.2; legacy §7;
    later-eras-hotplug.md A4.1 for 5.5+).

    1. v5.5-v5.11 (``model.add_pages_addressable_check``): :func:`_check_addressable`, WARN
       "Hotplugged memory exceeds maximum addressable address, ..." and -E2BIG;
    2. altmap check (``base_pfn == pfn`` and ``vmem_altmap_offset <= nr_pages``), else
       pr_warn_once ``memory add fail, invalid altmap`` and -EINVAL; then ``altmap.alloc = 0``;
    3. :func:`check_pfn_span` (v5.3; from v6.0 the WARN is this function's);
    4. the per-section ``sparse_add_section`` loop, stopping at the first error (v5.2: whole
       sections, -EEXIST swallowed).  **No rollback**: earlier pieces stay added.
    A range ending above the section array that step 1 does not refuse (v5.1-v5.4, v5.12+:
    from v5.12 only ``add_memory`` checks it, in ``register_memory_resource``) is memory
    corruption in the kernel: KernelBug, raised before any piece is added (the kernel would
    add the pieces below the limit first).
    ``nr_pages == 0`` (the loop is empty):
    * v5.3-v5.6 (§5.2 corner): section-aligned non-zero pfn → no-op; pfn 0 → one piece
      ``sparse_add_section(nid, 0, 0)`` whose mask is all 64 bits (-EEXIST on a boot section
      0); 2 MiB- but not section-aligned → empty mask → -EINVAL.  v5.5-v5.6 with pfn 0: step 1
      refuses it first (``range=0x0-0xffffffffffffffff``, -E2BIG).  v5.2: an unaligned pfn
      adds its whole section; pfn 0 would loop over every section number (KernelBug).
    * v5.7-v5.19 (``model.add_pages_end_loop``): returns 0 for any aligned pfn (v5.7-v5.11
      pfn 0: step 1's WARN and -E2BIG).  The same holds when ``pfn + nr_pages`` wraps.
    * v6.0+ (``model.add_pages_err_uninitialised``): the kernel returns an uninitialised
      ``err``, an undefined value; the simulation does not invent one and raises KernelBug
      (nothing changed) (later-eras-hotplug.md A4.1: "flag/reject this input").
    """
    _add_pages(m, nid, pfn, nr_pages, altmap, want_memblock=False)


def _add_pages(m, nid, pfn, nr_pages, altmap, want_memblock: bool) -> None:
    nid = K.check_nid(nid)
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    altmap = K.check_altmap(altmap, m.altmap_cls)
    S = m.sections
    model = m.model
    if model.add_pages_addressable_check:
        _check_addressable(m, pfn, nr_pages)
    if altmap is not None:
        if altmap.base_pfn != pfn or altmap.offset() > nr_pages:
            pr_once(m, "invalid altmap", "memory add fail, invalid altmap")
            raise KernelError(errno.EINVAL, f"__add_pages: invalid altmap {altmap!r} for pfn {pfn:#x} "
                                            f"nr_pages {nr_pages:#x} (base_pfn must equal pfn and "
                                            f"reserve + free must not exceed nr_pages)")
        altmap.alloc = 0
    _pfn_span_or_warn(m, pfn, nr_pages, "add")
    if model.add_pages_end_loop and (pfn + nr_pages) & K.U64 <= pfn:
        # for (; pfn < end_pfn; ...) never runs (nr_pages 0, or the end wrapped)
        if model.add_pages_err_uninitialised:
            raise KernelBug(f"__add_pages(pfn {pfn:#x}, nr_pages {nr_pages:#x}): the loop is empty and "
                            f"err is never assigned (v6.0+): the return value is uninitialised")
        return
    if nr_pages and pfn + nr_pages > S.pfn_limit:
        raise _beyond_section_array(m, "__add_pages", pfn, nr_pages)
    try:
        if nr_pages == 0:
            _add_pages_zero(m, nid, pfn, altmap)
        elif model.memory_blocks_after_arch_add or not want_memblock:
            S.sparse_add_range(nid, pfn, nr_pages, altmap)
        else:
            # v5.2 __add_pages with MHP_MEMBLOCK_API: __add_section per whole section, then
            # hotplug_memory_register (§7)
            for sec in range(pfn >> C.PFN_SECTION_SHIFT, ((pfn + nr_pages - 1) >> C.PFN_SECTION_SHIFT) + 1):
                try:
                    S.sparse_add_section(nid, sec << C.PFN_SECTION_SHIFT, _SEC, altmap)
                except KernelError as e:
                    if e.errno == errno.EEXIST and model.add_pages_swallows_eexist:
                        continue
                    raise
                m.memory_subsys.hotplug_memory_register(m, nid, sec)
    finally:
        m.sync_core_dmesg()


def _add_pages_zero(m, nid: int, pfn: int, altmap) -> None:
    """``nr_pages == 0`` with the section-number loop (v5.2-v5.6, §5.2 corner)."""
    S = m.sections
    if pfn and not pfn % _SEC:
        return  # end section (from pfn - 1) is below the start section: the loop is empty
    if pfn >= S.pfn_limit:
        raise _beyond_section_array(m, "__add_pages", pfn, 0)
    if not m.model.subsection:
        if pfn == 0:
            raise KernelBug("__add_pages(pfn 0, nr_pages 0): the v5.2 section loop runs up to "
                            "pfn_to_section_nr(-1) and walks off mem_section[]")
        # the whole section; the core swallows -EEXIST (model.add_pages_swallows_eexist)
        S.sparse_add_range(nid, pfn & ~(_SEC - 1), _SEC, altmap)
        return
    if pfn == 0:
        # the mask of sparse_add_section(nid, 0, 0) covers all 64 sub-sections (§2.3)
        if S.subsection_map(0) or S.valid_section_nr(0):
            raise KernelError(errno.EEXIST, "sparse_add_section(nid, pfn 0, nr_pages 0): the all-ones "
                                            "sub-section mask intersects the active sub-sections of section 0")
        S.sparse_add_section(nid, 0, _SEC, altmap)
        return
    raise KernelError(errno.EINVAL, f"sparse_add_section(pfn {pfn:#x}, nr_pages 0): empty sub-section "
                                    f"mask (section_activate returns -EINVAL)")


def arch_add_pages(m, nid, pfn, nr_pages, altmap=None) -> None:
    """x86 ``add_pages``: :func:`add_pages`, then ``WARN_ON_ONCE(ret)`` and
    ``update_end_of_memory_vars`` (``max_pfn`` grows even on failure), then the error (§5.2).
    ``devm_memremap_pages`` calls this for MEMORY_DEVICE_PRIVATE in v5.3."""
    # validated here (before __add_pages checks nid) to keep the order of argument errors
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    _x86_add_pages(m, nid, pfn, nr_pages, altmap, want_memblock=False)


def _x86_add_pages(m, nid, pfn: int, nr: int, altmap, want_memblock: bool) -> None:
    """x86 ``add_pages``: ``__add_pages``, ``WARN_ON_ONCE(ret)`` and
    ``update_end_of_memory_vars`` (also on failure), then the error (§5.2)."""
    try:
        _add_pages(m, nid, pfn, nr, altmap, want_memblock=want_memblock)
    except KernelError:
        warn_on_once(m, ("x86 add_pages",), "arch/x86/mm/init_64.c add_pages")
        _update_end_of_memory_vars(m, pfn, nr)
        raise
    _update_end_of_memory_vars(m, pfn, nr)


def _update_end_of_memory_vars(m, pfn: int, nr: int) -> None:
    if pfn + nr > m.max_pfn:
        m.max_pfn = pfn + nr


def arch_add_memory(m, nid, start, size, altmap=None, *, _want_memblock: bool = False) -> None:
    """x86 ``arch_add_memory(nid, start, size, restrictions)`` (§5.2, §8.1 step 5).

    ``init_memory_mapping`` (the direct map, not modelled) then x86 ``add_pages``
    (:func:`arch_add_pages`).  Raises the error of ``__add_pages`` after the
    ``WARN_ON_ONCE``; added pieces stay added and ``max_pfn`` is raised (no rollback).
    """
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    _x86_add_pages(m, nid, start >> C.PAGE_SHIFT, size >> C.PAGE_SHIFT, altmap, want_memblock=_want_memblock)


# ---------------------------------------------------------------------------------------------
# §5.5: onlining

def move_pfn_range_to_zone(m, nid, zone_idx, start_pfn, nr_pages, altmap=None) -> None:
    """``move_pfn_range_to_zone(zone, start_pfn, nr_pages, altmap)`` (§5.5 step 3).

    ``resize_zone_range`` / ``resize_pgdat_range`` (zones may overlap; an empty node keeps
    its stale start in the ``old_end`` computation, as the kernel does), then
    ``memmap_init_zone(MEMMAP_HOTPLUG)``: every struct page of the range for normal zones;
    for ZONE_DEVICE nothing without an altmap and, with one, only the altmap-backed pfns
    ``[base (+reserve if the range starts at base), base + reserve + free)`` -- the caller
    (memremap) initialises the rest (``memmap_init_zone_device``).
    """
    nid = K.check_nid(nid)
    zone_idx = K.check_zone(zone_idx)
    pfn = K.unsigned(start_pfn, "start_pfn")
    nr = K.unsigned(nr_pages, "nr_pages")
    altmap = K.check_altmap(altmap, m.altmap_cls)
    pgdat = m.node_data(nid)
    zone = pgdat.zones[zone_idx]
    # zone
    if zone.spanned_pages == 0:
        zone.zone_start_pfn = pfn  # init_currently_empty_zone
    old_end = zone.zone_start_pfn + zone.spanned_pages
    if zone.spanned_pages == 0 or pfn < zone.zone_start_pfn:
        zone.zone_start_pfn = pfn
    zone.spanned_pages = max(pfn + nr, old_end) - zone.zone_start_pfn
    # node
    old_end = pgdat.node_start_pfn + pgdat.node_spanned_pages
    if pgdat.node_spanned_pages == 0 or pfn < pgdat.node_start_pfn:
        pgdat.node_start_pfn = pfn
    pgdat.node_spanned_pages = max(pfn + nr, old_end) - pgdat.node_start_pfn
    # memmap_init_zone
    if zone_idx == C.ZONE_DEVICE:
        if altmap is None:
            return
        first = pfn + altmap.reserve if pfn == altmap.base_pfn else pfn
        end = altmap.base_pfn + altmap.offset()
        if end > first:
            m.sections.memmap_init_zone(nid, zone_idx, first, end - first)
        return
    if nr:
        m.sections.memmap_init_zone(nid, zone_idx, pfn, nr)


def default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages):
    """``default_kernel_zone_for_pfn``: first of DMA, DMA32, Normal intersecting, else Normal."""
    zones = m.node_data(nid).zones
    for zi in (C.ZONE_DMA, C.ZONE_DMA32, C.ZONE_NORMAL):
        if zones[zi].intersects(start_pfn, nr_pages):
            return zones[zi]
    return zones[C.ZONE_NORMAL]


def zone_for_pfn_range(m, online_type: int, nid, start_pfn, nr_pages):
    """``zone_for_pfn_range(online_type, nid, start_pfn, nr_pages)`` (§8.5)."""
    nid = K.check_nid(nid)
    if online_type == MMOP_ONLINE_KERNEL:
        return default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)
    movable = m.node_data(nid).zones[C.ZONE_MOVABLE]
    if online_type == MMOP_ONLINE_MOVABLE:
        return movable
    kernel = default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)
    in_kernel = kernel.intersects(start_pfn, nr_pages)
    in_movable = movable.intersects(start_pfn, nr_pages)
    if in_kernel ^ in_movable:
        return kernel if in_kernel else movable
    return movable if m.movable_node else kernel


def walk_system_ram_range(m, start_pfn: int, nr_pages: int) -> list[tuple[int, int]]:
    """``walk_system_ram_range(start_pfn, nr_pages)``: ``(pfn, nr)`` pieces of busy System RAM
    at any depth of ``m.iomem`` (kernel/resource.c)."""
    if nr_pages <= 0:
        return []
    return m.iomem.walk_system_ram_range(start_pfn, nr_pages)

def _notify(m, action: str) -> int:
    """``memory_notify(action)`` with notifier-error-inject: returns 0 or -errno."""
    inject = m.memory_notifier_error_inject
    err = 0
    if inject:
        err = inject.get(action, 0) or 0
    if err:
        m.log(f"Injecting error ({err}) to {action}")
        return -abs(int(err))
    return 0


def online_pages(m, pfn, nr_pages, online_type=MMOP_ONLINE_KEEP, nid=0) -> int:
    """``online_pages(pfn, nr_pages, online_type)`` (§5.5); ``nid`` is the memory block's.

    Zone choice (§8.5), ``move_pfn_range_to_zone``, MEM_GOING_ONLINE (notifier error →
    failure), ``walk_system_ram_range`` → ``online_mem_sections`` per piece (-EINVAL when the
    range has no busy System RAM), present pages accounting.  Returns the pages onlined.
    On failure: pr_debug ``online_pages [mem %#010llx-%#010llx] failed``, MEM_CANCEL_ONLINE,
    and the span growth / memmap init are **not** undone (v5.3, §5.5).
    """
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    nid = K.check_nid(nid)
    if online_type not in (MMOP_ONLINE_KEEP, MMOP_ONLINE_KERNEL, MMOP_ONLINE_MOVABLE):
        raise ValueError(f"online_type must be MMOP_ONLINE_KEEP/KERNEL/MOVABLE (0/1/2), not {online_type!r}")
    zone = zone_for_pfn_range(m, online_type, nid, pfn, nr_pages)
    move_pfn_range_to_zone(m, nid, zone.idx, pfn, nr_pages)
    rc = _notify(m, "MEM_GOING_ONLINE")
    why = "MEM_GOING_ONLINE notifier failed"
    if not rc:
        pieces = walk_system_ram_range(m, pfn, nr_pages)
        if not pieces:
            rc = -errno.EINVAL
            why = "no busy System RAM resource in the range (walk_system_ram_range)"
    if rc:
        m.log(f"online_pages [mem {_pct_hash_010x(pfn << C.PAGE_SHIFT)}-"
              f"{_pct_hash_010x(((pfn + nr_pages) << C.PAGE_SHIFT) - 1)}] failed")
        _notify(m, "MEM_CANCEL_ONLINE")
        raise KernelError(-rc, f"online_pages(pfn {pfn:#x}, nr_pages {nr_pages:#x}): {why}")
    onlined = 0
    S = m.sections
    for p, n in pieces:
        onlined += n
        S.online_mem_sections(p, p + n)
    m.sync_core_dmesg()
    zone.present_pages += onlined
    zone.zone_pgdat.node_present_pages += onlined
    return onlined


# ---------------------------------------------------------------------------------------------
# §5.6: offlining

def test_pages_in_a_zone(m, start_pfn: int, end_pfn: int):
    """``test_pages_in_a_zone(start, end, &valid_start, &valid_end)`` (§5.6 step 2).

    Probes every ``MAX_ORDER_NR_PAGES`` (1024) pfns of the present sections of the range via
    ``page_zone``; returns ``(zone, valid_start, valid_end)`` when exactly one zone is found,
    else None (``multizone range``).  A poisoned memmap counts as a mismatch.
    """
    S = m.sections
    zone = None
    first = last = None
    pfn = start_pfn
    sec_end = (start_pfn + 1 + _SEC - 1) & ~(_SEC - 1)
    while pfn < end_pfn:
        if S.present_section_nr(pfn >> C.PFN_SECTION_SHIFT):
            while pfn < sec_end and pfn < end_pfn:
                if zone is not None and not zone.spans(pfn):
                    return None
                z = m.page_zone(pfn)
                if z is None or (zone is not None and z is not zone):
                    return None
                if first is None:
                    first = pfn
                zone = z
                last = pfn + MAX_ORDER_NR_PAGES
                pfn += MAX_ORDER_NR_PAGES
        pfn = sec_end
        sec_end += _SEC
    if zone is None or last is None:   # one is set when the other is
        return None
    return zone, first, min(end_pfn, last)


def _next_valid_pfn(S, q: int, end: int) -> int:
    """Skip to the next ``pfn_valid`` sub-section: the first of ``q``, then the start of each
    following 2 MiB sub-section, that is ``pfn_valid``; a value ``>= end`` when none below
    ``end`` is."""
    while q < end and not S.pfn_valid(q):
        q = (q | (C.PAGES_PER_SUBSECTION - 1)) + 1
    return q


def first_unmovable_pfn(m, start_pfn: int, nr_pages: int) -> Optional[int]:
    """The lowest pfn of the range that ``has_unmovable_pages`` finds ``PageReserved``, or
    None.  Reserved are: a ``pfn_valid`` page that is not System RAM (an e820 hole inside a
    present section), the kernel image and crash kernel of the layout's iomem lines, and the
    boot allocations of ``m.boot_reserved`` (the image without such lines, each node's boot
    memmap: :func:`sparsemem.machine.boot_allocations`).  Page allocations are otherwise not
    modelled, so nothing else is unmovable."""
    found = []
    end_pfn = start_pfn + nr_pages
    pieces = walk_system_ram_range(m, start_pfn, nr_pages)
    covered = sum(n for _, n in pieces)
    S = m.sections
    if covered < nr_pages:
        cur = start_pfn
        for p, n in pieces + [(end_pfn, 0)]:
            q = _next_valid_pfn(S, cur, p)
            if q < p:
                found.append(q)
                break
            cur = p + n
    lo, hi = start_pfn << C.PAGE_SHIFT, (end_pfn << C.PAGE_SHIFT) - 1
    for r in m.iomem.top_level_overlapping(lo, hi):
        for _, c in m.iomem.walk(r):
            if c.name in KERNEL_RESERVED and c.overlaps(lo, hi):
                found.append(max(c.start, lo) >> C.PAGE_SHIFT)
    for s, e in m.boot_reserved:
        if s < end_pfn and e > start_pfn:
            found.append(max(s, start_pfn))
    return min(found) if found else None


def _has_unmovable(m, start_pfn: int, nr_pages: int) -> bool:
    """Pages the isolation would find unmovable (:func:`first_unmovable_pfn`)."""
    return first_unmovable_pfn(m, start_pfn, nr_pages) is not None


# include/linux/page-flags.h PG_reserved (bit 12 in 5.2-6.8) and the page->flags layout of a
# distribution x86_64 build (CONFIG_NODES_SHIFT=10, 3 zone bits, LAST_CPUPID of 21 bits in
# page->flags and reset to all ones): node at bit 54, zone at bit 51, last_cpupid at bit 30
_PG_RESERVED = 1 << 12
_LAST_CPUPID_RESET = 0x1FFFFF << 30


def dump_unmovable_page(m, pfn: int) -> None:
    """``dump_page(page, "unmovable page")`` of ``has_unmovable_pages`` when offlining
    (``REPORT_FAILURE``, mm/page_alloc.c 5.0-5.7, mm/page_isolation.c from 5.8), in the 5.3
    format of mm/debug.c ``__dump_page``: a boot page that is ``PageReserved`` with refcount
    1, mapcount 0, no mapping, ``lru`` pointing at itself; ``%px`` of the struct page in the
    vmemmap.  The flags value follows the build described at ``_LAST_CPUPID_RESET`` (nominal
    like the WARN line numbers: another configuration gives other upper bits)."""
    base = C.vmemmap_base(int(m.boot_args.get("max_physmem_bits", 46)))
    page = base + pfn * C.STRUCT_PAGE_SIZE
    zone = m.page_zone(pfn)
    zidx = zone.idx if zone is not None else 0
    nid = zone.nid if zone is not None else 0
    flags = (nid << 54) | (zidx << 51) | _LAST_CPUPID_RESET | _PG_RESERVED
    m.log(f"page:{page:016x} refcount:1 mapcount:0 mapping:{0:016x} index:0x0")
    m.log(f"flags: {flags:#x}(reserved)")
    m.log(f"raw: {flags:016x} {page + 8:016x} {page + 8:016x} {0:016x}")
    m.log(f"raw: {0:016x} {0:016x} 00000001ffffffff {0:016x}")
    m.log("page dumped because: unmovable page")


def offline_pages(m, start_pfn, nr_pages) -> int:
    """``offline_pages(start_pfn, nr_pages)`` → ``__offline_pages`` (§5.6).  Returns the pages
    offlined and logs ``Offlined Pages N``.

    Failure reasons (pr_debug ``memory offlining [mem ...] failed due to <reason>``):
    ``multizone range`` (-EINVAL), ``failure to isolate range`` (-EBUSY, reserved pages),
    ``notifier failure`` (MEM_GOING_OFFLINE error injection).  Nothing changes on failure.
    **v5.3 does not shrink the zone or node span here** (§5.6; done at removal, §6.5).
    """
    start_pfn = K.unsigned(start_pfn, "start_pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    end_pfn = start_pfn + nr_pages
    if start_pfn % C.PAGEBLOCK_NR_PAGES or end_pfn % C.PAGEBLOCK_NR_PAGES:
        raise KernelError(errno.EINVAL, f"offline_pages(pfn {start_pfn:#x}, nr_pages {nr_pages:#x}): "
                                        f"not pageblock aligned")

    def fail(err: int, reason: str):
        m.log(f"memory offlining [mem {_pct_hash_010x(start_pfn << C.PAGE_SHIFT)}-"
              f"{_pct_hash_010x((end_pfn << C.PAGE_SHIFT) - 1)}] failed due to {reason}")
        return KernelError(err, f"offline_pages(pfn {start_pfn:#x}, nr_pages {nr_pages:#x}) failed due to {reason}")

    found = test_pages_in_a_zone(m, start_pfn, end_pfn)
    if found is None:
        raise fail(errno.EINVAL, "multizone range")
    zone = found[0]
    unmovable = first_unmovable_pfn(m, start_pfn, nr_pages)
    if unmovable is not None:
        # start_isolate_page_range walks the pageblocks upwards: the first reserved page
        # found is dumped (REPORT_FAILURE), then the offline fails
        dump_unmovable_page(m, unmovable)
        raise fail(errno.EBUSY, "failure to isolate range")
    rc = _notify(m, "MEM_GOING_OFFLINE")
    if rc:
        _notify(m, "MEM_CANCEL_OFFLINE")
        raise fail(-rc, "notifier failure")
    pieces = walk_system_ram_range(m, start_pfn, nr_pages)
    if not pieces:
        # the "check again" loop would spin on -EINVAL until a signal arrives
        raise fail(errno.EINTR, "signal backoff")
    S = m.sections
    offlined = 0
    for p, n in pieces:
        e = p + n
        q = _next_valid_pfn(S, p, e)
        if q >= e:
            continue
        S.offline_mem_sections(q, e)
        offlined += e - q
    m.log(f"Offlined Pages {offlined}")  # forwards the core's WARN lines first
    zone.present_pages -= offlined
    zone.zone_pgdat.node_present_pages -= offlined
    return offlined


# ---------------------------------------------------------------------------------------------
# §6.5: span shrinking

def _probe(m, pfn: int, nid: int, zidx) -> bool:
    S = m.sections
    if m.model.subsection:
        if not S.pfn_valid(pfn):
            return False
    elif not S.valid_section_nr(pfn >> C.PFN_SECTION_SHIFT):
        return False
    if S.pfn_to_nid(pfn) != nid:
        return False
    return zidx is None or S.page_zonenum(pfn) == zidx


def _first_match(m, nid: int, zidx, lo: int, hi: int):
    """First probe ``lo + k*step`` in ``[lo, hi)`` that matches, or None (0 is a real pfn)."""
    if lo >= hi:
        return None
    if lo == 0:
        if _probe(m, 0, nid, zidx):
            return 0
        lo = m.model.shrink_step
        if lo >= hi:
            return None
    r = m.sections.find_smallest_section_pfn(nid, zidx, lo, hi)
    return r if r else None


def _all_holes(m, nid: int, zidx, zs: int, ze: int, start: int, end: int) -> bool:
    """The "all holes?" scan of shrink_zone_span/shrink_pgdat_span: True when nothing of
    this zone (node) is left outside the excluded window.  v5.3 excludes ``[start, end)``;
    v5.2 only the probe equal to ``start`` (§6.5, §7)."""
    step = m.model.shrink_step
    lo_ex, hi_ex = (start, end) if m.model.subsection else (start, start + 1)
    if _first_match(m, nid, zidx, zs, min(lo_ex, ze)) is not None:
        return False
    g = zs if hi_ex <= zs else zs + -(-(hi_ex - zs) // step) * step
    return _first_match(m, nid, zidx, g, ze) is None


def _shrink_span(m, nid: int, zone_idx, span_start: int, span_end: int, start_pfn: int, end_pfn: int):
    """The algorithm shared by ``shrink_zone_span`` and ``shrink_pgdat_span`` (§6.5).

    Returns the new ``(start, spanned)`` after removing [start_pfn, end_pfn) from the span
    [span_start, span_end) of node ``nid`` (``zone_idx`` None: any zone).
    """
    S = m.sections
    start, spanned = span_start, span_end - span_start
    if span_start == start_pfn:
        pfn = S.find_smallest_section_pfn(nid, zone_idx, end_pfn, span_end)
        if pfn:
            start, spanned = pfn, span_end - pfn
    elif span_end == end_pfn:
        pfn = S.find_biggest_section_pfn(nid, zone_idx, span_start, start_pfn)
        if pfn:
            spanned = pfn - span_start + 1
    if _all_holes(m, nid, zone_idx, span_start, span_end, start_pfn, end_pfn):
        return 0, 0
    return start, spanned


def shrink_zone_span(m, zone, start_pfn: int, end_pfn: int) -> None:
    """``shrink_zone_span(zone, start, end)`` (§6.5; legacy step 32768, §7)."""
    zs = zone.zone_start_pfn
    zone.zone_start_pfn, zone.spanned_pages = _shrink_span(
        m, zone.nid, zone.idx, zs, zs + zone.spanned_pages, start_pfn, end_pfn)


def shrink_pgdat_span(m, pgdat, start_pfn: int, end_pfn: int) -> None:
    """``shrink_pgdat_span(pgdat, start, end)`` (§6.5): as the zone version, any zone.

    The probes read struct pages that may never have been initialised: in v5.1/v5.2 the boot
    memmap beyond ``max_pfn`` in the last boot section is left so (``zero_resv_unavail``
    stops at ``max_pfn`` until e822969cab48, v5.6) and reads as no node, so removing device
    memory at the node's end can leave the node ending below that section's boot RAM (e.g.
    0xc0000 with RAM up to pfn 0x10001f), as the kernel does."""
    ps = pgdat.node_start_pfn
    pgdat.node_start_pfn, pgdat.node_spanned_pages = _shrink_span(
        m, pgdat.nid, None, ps, ps + pgdat.node_spanned_pages, start_pfn, end_pfn)


def remove_zone(m, zone, start_pfn: int, nr_pages: int) -> None:
    """``__remove_zone(zone, start_pfn, nr_pages)`` (§6.5): shrink the zone, then its node.
    May raise KernelBug where the kernel's ``find_biggest_section_pfn`` would spin."""
    shrink_zone_span(m, zone, start_pfn, start_pfn + nr_pages)
    shrink_pgdat_span(m, zone.zone_pgdat, start_pfn, start_pfn + nr_pages)


def remove_section(m, zone, pfn: int, nr: int, altmap=None) -> bool:
    """``__remove_section(zone, pfn, nr, map_offset, altmap)`` (§6.3; legacy §7).

    Not valid → WARN_ON_ONCE (the core's) and nothing (v5.1: no WARN, KernelError(EINVAL),
    §7); else (v5.2: unregister the section
    from its memory block,) ``__remove_zone`` while the range is still valid, then
    ``sparse_remove_section``.  Returns whether the piece was removed.
    """
    S = m.sections
    sec = pfn >> C.PFN_SECTION_SHIFT
    if not S.valid_section_nr(sec):
        if m.model.remove_pages_stops_on_invalid:
            # v5.1.15 __remove_section: no WARN, -EINVAL (§7)
            raise KernelError(errno.EINVAL, f"__remove_section(pfn {pfn:#x}): section {sec:#x} is not valid")
        S.sparse_remove_section(pfn, nr, altmap)  # WARN_ON_ONCE, returns False
        return False
    if not m.model.memory_blocks_after_arch_add:
        m.memory_subsys.unregister_memory_section(m, sec)
    if zone is not None:
        remove_zone(m, zone, pfn, nr)
    early = bool(m.hwpoison) and S.early_section_nr(sec)  # before the flag is cleared
    removed = S.sparse_remove_section(pfn, nr, altmap)
    if removed and m.hwpoison:
        # 5.3-6.1: sparse_remove_section -> clear_hwpoisoned_pages.  6.2+ no longer clears
        # (KernelModel.hwpoison_block_counter): a flag goes only with its memmap, which
        # section_deactivate frees for a section that empties, for any range of a hot-added
        # section, and for part of an early one only in 5.3-5.8
        freed = not S.valid_section_nr(sec) or not early or m.model.early_partial_remove_frees_memmap
        if freed or not m.model.hwpoison_block_counter:
            m.hwpoison.difference_update([p for p in m.hwpoison if pfn <= p < pfn + nr])
    return removed


def _resolve_zone(m, zone, pfn: int):
    if zone is None or isinstance(zone, Zone):
        return zone
    zi = K.check_zone(zone)
    nid = m.sections.pfn_to_nid(pfn)
    pg = m.nodes.get(nid if nid >= 0 else 0)
    return None if pg is None else pg.zones[zi]


def remove_pages(m, zone, pfn, nr_pages, altmap=None) -> int:
    """``__remove_pages(zone, pfn, nr_pages, altmap)`` (§6.2; legacy §7).  The kernel
    function is void; this returns the number of section pieces removed.

    ``zone`` is a :class:`~sparsemem.mmzone.Zone`, a zone index (resolved on the node of
    the first pfn's struct page, or node 0) or None (no span shrinking, see the module doc).
    v5.3: :func:`check_pfn_span` -- a misaligned range WARNs and nothing happens (returns 0;
    from v6.0 the WARN is ``__remove_pages``'s, from v6.5 its end reads ``0x...``);
    pieces are split at section boundaries.  ``nr_pages == 0``: v5.3-v5.5 loop by section
    number, so pfn 0 runs to section -1 (KernelBug) and a pfn inside a section is not modelled
    (ValueError); from v5.6 (``model.remove_pages_end_loop``, the loop runs to ``pfn +
    nr_pages``) it is a no-op for every aligned pfn, as is a range whose end wraps past 2^64
    (later-eras-hotplug.md A5.4, later-eras-hotplug-evidence.md §2 item 18).  A range ending
    above the section array otherwise raises ValueError.  v5.2: ``BUG_ON`` unless section-aligned
    (KernelBug), whole sections.  v5.1 (``model.remove_pages_stops_on_invalid``, §7): the
    loop stops at the first section that is not valid and raises its KernelError(EINVAL),
    the pieces before it staying removed (the kernel returns the error).  May raise
    KernelBug from the span scan (§6.5 wrap hazard), leaving the pieces before it removed.
    """
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    altmap = K.check_altmap(altmap, m.altmap_cls)
    zone = _resolve_zone(m, zone, pfn)
    if m.model.check_pfn_span:
        try:
            _pfn_span_or_warn(m, pfn, nr_pages, "remove")
        except KernelError:
            return 0
    elif pfn % _SEC or nr_pages % _SEC:
        m.log("kernel BUG at mm/memory_hotplug.c:__remove_pages!")
        raise KernelBug(f"__remove_pages(pfn {pfn:#x}, nr_pages {nr_pages:#x}): BUG_ON: v5.2 requires a "
                        f"section-aligned range")
    if m.model.remove_pages_end_loop and (pfn + nr_pages) & K.U64 <= pfn:
        return 0  # for (; pfn < end_pfn; ...) never runs (v5.6+)
    if nr_pages == 0:
        if pfn == 0 and m.model.check_pfn_span:
            raise KernelBug("__remove_pages(pfn 0, nr_pages 0): the section loop runs up to "
                            "pfn_to_section_nr(-1) and walks off mem_section[]")
        if pfn % _SEC:
            raise ValueError(f"__remove_pages(pfn {pfn:#x}, nr_pages 0): an empty piece inside a section "
                             f"is not modelled")
        return 0
    if pfn + nr_pages > m.sections.pfn_limit:
        raise ValueError(f"__remove_pages: pfn range [{pfn:#x}-{pfn + nr_pages:#x}) exceeds max pfn "
                         f"{m.sections.pfn_limit:#x}")
    removed = 0
    try:
        for p, n in K.pieces(pfn, nr_pages):
            removed += bool(remove_section(m, zone, p, n, altmap))
    finally:
        m.sync_core_dmesg()
    return removed


def _first_page_unmapped(m, pfn: int) -> bool:
    """True when the struct page of ``pfn`` has no vmemmap at all (its section never got a
    memmap, or it was freed): ``page_zone(pfn_to_page(pfn))`` then reads an unmapped
    address and faults (§6.1).  A memmap that exists but was never initialised (poisoned)
    is not "unmapped": ``m.page_zone`` returns None for it."""
    S = m.sections
    if pfn >= S.pfn_limit:
        return False  # the range check of remove_pages reports this (ValueError)
    nr = pfn >> C.PFN_SECTION_SHIFT
    return not S.valid_section_nr(nr) and S.section_vmemmap(nr) is None


def _check_first_page(m, pfn: int, what: str) -> None:
    """Raise KernelBug (after the oops line) if x86 ``arch_remove_memory`` would fault reading
    the zone of ``pfn`` (§6.1); nothing has changed when it raises."""
    if not _first_page_unmapped(m, pfn):
        return
    addr = (C.vmemmap_base(m.sections.max_physmem_bits) + pfn * C.STRUCT_PAGE_SIZE) & K.U64
    m.log(f"BUG: unable to handle page fault for address: {addr:016x}")
    raise KernelBug(f"{what}: page_zone(pfn_to_page({pfn:#x})) reads the vmemmap of section "
                    f"{pfn >> C.PFN_SECTION_SHIFT:#x}, which has no memmap (never added or already "
                    f"removed): page fault at {addr:#x}")


def arch_remove_memory(m, nid, start, size, altmap=None) -> int:
    """x86 ``arch_remove_memory(nid, start, size, altmap)`` (§6.1): the zone is read from the
    struct page of ``start_pfn + vmem_altmap_offset(altmap)`` (None when that memmap exists
    but was never initialised), then :func:`remove_pages` and the direct-map teardown (not
    modelled).  Returns the section pieces removed.

    * If that struct page has no memmap at all (the section was never added, or its memmap
      was freed), the kernel faults on the unmapped vmemmap: KernelBug in every era, with
      ``BUG: unable to handle page fault for address: ...`` logged and nothing changed.
    * v5.1 (``model.remove_pages_stops_on_invalid``, §7): ``__remove_pages`` returns an error;
      x86 ``WARN_ON_ONCE(ret)``s it and returns it: this returns the negative errno instead
      of raising (every v5.1 caller ignores it); the pieces before the failing one stay
      removed.
    """
    K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    altmap = K.check_altmap(altmap, m.altmap_cls)
    pfn = start >> C.PAGE_SHIFT
    off = altmap.offset() if altmap is not None else 0
    nr = size >> C.PAGE_SHIFT
    if pfn + nr <= m.sections.pfn_limit:
        _check_first_page(m, pfn + off, "arch_remove_memory")
    zone = m.page_zone(pfn + off) if pfn + off < m.sections.pfn_limit else None
    try:
        return remove_pages(m, zone, pfn, nr, altmap)
    except KernelError as e:
        if not m.model.remove_pages_stops_on_invalid:
            raise
        warn_on_once(m, ("x86 arch_remove_memory",), "arch/x86/mm/init_64.c arch_remove_memory")
        return -e.errno


# ---------------------------------------------------------------------------------------------
# §8.1 / §6.6: the top half

def check_hotplug_memory_range(m, start: int, size: int) -> None:
    """``check_hotplug_memory_range`` (§8.1 step 1): pr_err
    ``Block size [%#lx] unaligned hotplug range: start %#llx, size %#llx`` and -EINVAL."""
    bs = m.memory_block_size
    if size == 0 or start % bs or size % bs:
        line = (f"Block size [{K.hexfmt(bs)}] unaligned hotplug range: start {K.hexfmt(start)}, "
                f"size {K.hexfmt(size)}")
        m.log(line)
        raise KernelError(errno.EINVAL, line)


def register_memory_resource(m, start: int, size: int) -> Resource:
    """``register_memory_resource(start, size)`` (§8.1): -E2BIG beyond ``max_mem_size``
    (default U64_MAX), then a busy "System RAM" region under iomem (``__request_region``);
    overlap → pr_debug ``Unable to reserve System RAM region: %016llx->%016llx`` and -EEXIST.

    x86 ``setup_arch`` sets ``iomem_resource.end`` to ``(1 << x86_phys_bits) - 1``, the CPU's
    physical address width (``Machine(phys_bits=...)``, by default the build limit
    ``max_physmem_bits``; arch/x86/kernel/setup.c 5.3 and 6.1), so a range ending beyond it
    does not fit under the root and fails the same way (pr_debug line, -EEXIST).
    :class:`~sparsemem.iomem.ResourceTree` has no constructor argument for the root's end (its
    root spans 64 bits), so that check is emulated here.  From v5.12
    (``KernelModel.mhp_range_allowed``) ``mhp_range_allowed(start, size, true)`` comes first:
    a range that is empty or ends above ``(1 << MAX_PHYSMEM_BITS) - 1`` gets the pr_warn
    ``Hotplug memory [start-end) exceeds maximum addressable range [0x0-limit]`` and -E2BIG
    (mm/memory_hotplug.c 6.1).
    """
    limit = (1 << m.sections.max_physmem_bits) - 1
    if m.model.mhp_range_allowed and not (start < start + size and start + size - 1 <= limit):
        line = (f"Hotplug memory [{start:#x}-{start + size:#x}] exceeds maximum addressable range "
                f"[{0:#x}-{limit:#x}]")
        m.log(line)
        raise KernelError(errno.E2BIG, line)
    if start + size > m.max_mem_size:
        raise KernelError(errno.E2BIG, f"add_memory: [mem {start:#x}-{start + size - 1:#x}] ends above "
                                       f"max_mem_size {m.max_mem_size:#x}")
    end = start + size - 1
    phys_bits = getattr(m, "phys_bits", m.sections.max_physmem_bits)
    root_end = (1 << phys_bits) - 1
    line = f"Unable to reserve System RAM region: {start:016x}->{start + size:016x}"
    if size and end > root_end:
        m.log(line)
        raise KernelError(errno.EEXIST, f"{line} ([mem {start:#x}-{end:#x}] ends above the end of "
                                        f"iomem_resource {root_end:#x}, (1 << x86_phys_bits {phys_bits}) - 1)")
    try:
        return m.iomem.request(start, size, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)
    except KernelError as e:
        m.log(line)
        raise KernelError(errno.EEXIST, f"{line} ({e.strerror})") from None


def add_memory_resource(m, nid: int, res: Resource) -> None:
    """``add_memory_resource(nid, res)`` (§8.1): range check, ``__try_online_node``,
    ``arch_add_memory`` (v5.2: blocks registered per section inside it), v5.3
    ``create_memory_block_devices``, node online, ``link_mem_sections``, auto-online walk that
    stops at the first block failing to online (error not passed on).

    Partial state on an ``arch_add_memory`` error: the sections added stay (no rollback),
    ``max_pfn`` raised; a new node's pgdat is freed again.
    """
    MB = m.memory_subsys
    start, size = res.start, res.size
    check_hotplug_memory_range(m, start, size)
    new_node = nid not in m.nodes or not m.nodes[nid].online
    created = nid not in m.nodes
    if created:
        m.node_data(nid)
    legacy_blocks = not m.model.memory_blocks_after_arch_add
    try:
        arch_add_memory(m, nid, start, size, _want_memblock=legacy_blocks)
        if not legacy_blocks:
            try:
                MB.create_memory_block_devices(m, start, size)
            except KernelError:
                arch_remove_memory(m, nid, start, size)
                raise
    except KernelError:
        if created:
            m.drop_pgdat(nid)
        raise
    if new_node:
        m.nodes[nid].online = True
    MB.link_mem_sections(m, nid, start, size)
    if m.auto_online:
        for blk in MB.walk_memory_blocks(m, start, size):
            blk.online_type = MMOP_ONLINE_KEEP
            if MB.device_online(m, blk) < 0:
                break
    m.sync_core_dmesg()


def add_memory(m, nid, start, size) -> None:
    """``add_memory(nid, start, size)`` → ``__add_memory`` (§8.1).  Order of checks: -E2BIG,
    the "System RAM" request (-EEXIST), then the block alignment (-EINVAL with the pr_err
    line); the resource is released again on any error."""
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    res = register_memory_resource(m, start, size)
    try:
        add_memory_resource(m, nid, res)
    except BaseException:
        if res.parent is not None:
            m.iomem.release(res)
        raise


def try_offline_node(m, nid: int) -> None:
    """``try_offline_node(nid)`` (§6.6 step 8): offline the node when no present section of its
    span maps to it and it has no CPU (CPUs are on node 0 only in this model)."""
    pg = m.nodes.get(nid)
    if pg is None or not pg.online or nid == 0:
        return
    S = m.sections
    pfn = pg.node_start_pfn
    end = pg.node_start_pfn + pg.node_spanned_pages
    for nr in S.present_section_nrs().tolist():
        p = nr << C.PFN_SECTION_SHIFT
        # the kernel's probes are pfn, pfn + 32768, ... from node_start_pfn; a section
        # outside [pfn, end) gets none (q lands in another section or at/after end)
        q = pfn + ((p - pfn + _SEC - 1) // _SEC) * _SEC if p > pfn else pfn
        while q < end and q >> C.PFN_SECTION_SHIFT == nr:
            if S.pfn_to_nid(q) == nid:
                return
            q += _SEC
    pg.online = False


def remove_memory(m, nid, start, size) -> None:
    """``remove_memory(nid, start, size)`` → ``try_remove_memory`` (§6.6; legacy §7).

    A misaligned range logs the §8.1 pr_err and hits ``BUG_ON`` (KernelBug).  A block that is
    not offline: pr_warn ``removing memory fails, because memory [%pa-%pa] is onlined`` and
    -EBUSY with nothing changed (v5.2: ``BUG()``, KernelBug).  Then (v5.3) the block devices
    go, ``arch_remove_memory``, the "System RAM" resource is released
    (``release_mem_region_adjustable``; a failure only warns ``Unable to release resource``),
    and ``try_offline_node``.  A range whose first section has no memmap makes x86
    ``arch_remove_memory`` fault (§6.1): KernelBug, raised before anything changes.
    """
    MB = m.memory_subsys
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    try:
        check_hotplug_memory_range(m, start, size)
    except KernelError as e:
        raise KernelBug(f"remove_memory: BUG_ON(check_hotplug_memory_range): {e.strerror}") from None
    for blk in MB.walk_memory_blocks(m, start, size):
        if blk.state_value != MEM_OFFLINE:
            b0 = blk.start
            line = f"removing memory fails, because memory [{_pa(b0)}-{_pa(b0 + blk.size - 1)}] is onlined"
            m.log(line)
            if m.model.remove_memory_ebusy:
                raise KernelError(errno.EBUSY, line)
            raise KernelBug(f"__remove_memory: BUG() (v5.2 cannot fail): {line}")
    # arch_remove_memory would fault on an unmapped first struct page (§6.1); checked before
    # the block devices go, so the KernelBug leaves everything as it was
    _check_first_page(m, start >> C.PAGE_SHIFT, "remove_memory: arch_remove_memory")
    if m.model.memory_blocks_after_arch_add:
        MB.remove_memory_block_devices(m, start, size)
    arch_remove_memory(m, nid, start, size)  # v5.1: its error return is ignored (§7)
    try:
        m.iomem.release_mem_region_adjustable(start, size)
    except KernelError as e:
        m.log(f"Unable to release resource <{_pa(start)}-{_pa(start + size - 1)}> ({-e.errno})")
    try_offline_node(m, nid)
    m.sync_core_dmesg()


def pfn_to_online_page(m, pfn) -> bool:
    """``pfn_to_online_page(pfn)`` (§4.3, the v5.2/v5.3 macro): the section is online; no
    ``pfn_valid``, no sub-section test -- a ZONE_DEVICE pfn sharing an online section counts."""
    pfn = K.index(pfn, "pfn")
    if pfn < 0:
        return False
    nr = pfn >> C.PFN_SECTION_SHIFT
    S = m.sections
    return nr < S.nr_mem_sections and S.online_section_nr(nr)
