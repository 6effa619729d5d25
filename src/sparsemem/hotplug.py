"""``mm/memory_hotplug.c`` (and the x86 ``arch_*_memory`` glue) as functions over the
:class:`~sparsemem.state.MachineState`, each named after the kernel function it models
(``__add_pages`` is :func:`add_pages`); era differences come from ``m.model``
(:mod:`sparsemem.kernel`).  "§" refers to docs/spec/sparse-hotplug.md; failure and partial
state, and the simulation's documented deviations: docs/hotplug.md.
"""

from __future__ import annotations

import errno
from typing import NamedTuple, Optional

from . import _common as K
from . import constants as C
from .errors import KernelBug, KernelError
from .mmzone import Zone
from .printk import (  # noqa: F401  (WARN names re-exported for existing callers)
    CUT_HERE,
    WARN_SITES,
    core_warning_lines,
    pr_debug,
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
    "MEM_CANCEL_OFFLINE", "ONLINE_TYPES", "Mmop", "MMOP_NUMBERING", "mmop",
    "check_pfn_span", "add_pages", "arch_add_pages", "arch_add_memory", "move_pfn_range_to_zone",
    "zone_for_pfn_range", "default_kernel_zone_for_pfn", "auto_movable_zone_for_pfn", "walk_system_ram_range",
    "adjust_present_page_count", "online_pages",
    "test_pages_in_a_zone", "first_unmovable_pfn", "dump_unmovable_page", "offline_pages", "shrink_zone_span",
    "shrink_pgdat_span",
    "update_pgdat_span", "remove_zone", "remove_pfn_range_from_zone", "remove_section", "remove_pages",
    "arch_remove_memory",
    "check_hotplug_memory_range", "register_memory_resource", "add_memory_resource",
    "add_memory", "remove_memory", "try_offline_node", "pfn_to_online_page",
    "MHP_NONE", "MHP_MEMMAP_ON_MEMORY", "MHP_FLAGS", "check_mhp_flags", "memory_block_memmap_size",
    "memory_block_memmap_on_memory_pages", "mhp_supports_memmap_on_memory", "mhp_init_memmap_on_memory",
    "mhp_deinit_memmap_on_memory", "create_altmaps_and_memory_blocks", "remove_memory_blocks_and_altmaps",
    "memory_blocks_have_altmaps", "memmap_on_memory_remove_check", "arch_remove_memory_altmaps",
]

# include/linux/memory_hotplug.h, v5.3 values (§8.5).  The numbers change in v5.7: code reads
# them per release with mmop(m.model) (KernelModel.mmop_numbering); these names keep the v5.3
# numbering for callers that spell it out.
MMOP_OFFLINE = -1
MMOP_ONLINE_KEEP = 0
MMOP_ONLINE_KERNEL = 1
MMOP_ONLINE_MOVABLE = 2
#: the strings ``state`` accepts for the online types (§8.6), with their v5.3 numbers; the
#: release's numbers: ``mmop(model).of(word)``
ONLINE_TYPES = {"online": MMOP_ONLINE_KEEP, "online_kernel": MMOP_ONLINE_KERNEL,
                "online_movable": MMOP_ONLINE_MOVABLE}


class Mmop(NamedTuple):
    """The ``MMOP_*`` numbers of one numbering (:data:`MMOP_NUMBERING`): ``OFFLINE``,
    ``ONLINE`` (``MMOP_ONLINE_KEEP`` before v5.7), ``KERNEL``, ``MOVABLE``."""

    OFFLINE: int
    ONLINE: int
    KERNEL: int
    MOVABLE: int

    def of(self, word: str) -> int:
        """The number of an online-type word (``offline``/``online``/``online_kernel``/
        ``online_movable``: ``online_type_to_str[]`` from v5.7, the ``state_store`` words before);
        KeyError for any other."""
        return {"offline": self.OFFLINE, "online": self.ONLINE, "online_kernel": self.KERNEL,
                "online_movable": self.MOVABLE}[word]

    def word(self, online_type: int) -> str:
        """The word of a number of this numbering; KeyError for any other."""
        return {v: k for k, v in zip(("offline", "online", "online_kernel", "online_movable"), self)}[online_type]


#: include/linux/memory_hotplug.h ``enum { MMOP_* }`` per :attr:`KernelModel.mmop_numbering
#: <sparsemem.kernel.KernelModel.mmop_numbering>`: ``"keep"`` (5.3.0 .. 5.6.4: OFFLINE -1,
#: ONLINE_KEEP 0, KERNEL 1, MOVABLE 2), ``"offline0"`` (from 5.7.14: OFFLINE 0, ONLINE 1,
#: KERNEL 2, MOVABLE 3; later-eras-hotplug.md A7.1)
MMOP_NUMBERING = {"keep": Mmop(-1, 0, 1, 2), "offline0": Mmop(0, 1, 2, 3)}


def mmop(model) -> Mmop:
    """The ``MMOP_*`` numbers of ``model``'s release (:data:`MMOP_NUMBERING`)."""
    return MMOP_NUMBERING[model.mmop_numbering]

# include/linux/memory_hotplug.h ``mhp_t`` (v5.10+): MHP_MERGE_RESOURCE is BIT(0) (kmem, not
# accepted by add_memory here), MHP_MEMMAP_ON_MEMORY BIT(1) from v5.13 (5.14.0-rc5, 6.6.0)
MHP_NONE = 0
MHP_MEMMAP_ON_MEMORY = 1 << 1
#: the flags :func:`add_memory` accepts, by name (api.md "Boot options")
MHP_FLAGS = {"MHP_NONE": MHP_NONE, "MHP_MEMMAP_ON_MEMORY": MHP_MEMMAP_ON_MEMORY}

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
    if zone_idx == C.ZONE_DEVICE and m.model.section_taint_zone_device:
        # v5.12+ (1f90a3477df3; read at 5.12.9, 6.12.0): a ZONE_DEVICE range that starts or
        # ends inside a section taints that section, so that pfn_to_online_page asks
        # get_dev_pagemap there (later-eras-hotplug-evidence.md §1 row 5.12)
        if pfn % _SEC:
            m.sections.section_taint_zone_device(pfn)
        if (pfn + nr) % _SEC:
            m.sections.section_taint_zone_device(pfn + nr)
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


def _auto_movable_can_online_movable(m, nid: Optional[int], nr_pages: int) -> bool:
    """``auto_movable_can_online_movable(nid, NULL, nr_pages)`` (mm/memory_hotplug.c 5.15.16;
    later-eras-hotplug.md A7.3): over the populated zones (present pages) of every node
    (``nid`` None: NUMA_NO_NODE) or of node ``nid``, KERNEL_EARLY = the ``present_early_pages``
    of the non-Movable zones and MOVABLE = the ``present_pages`` of the Movable ones; true when
    KERNEL_EARLY > 0 and ``MOVABLE + nr_pages <= ratio * KERNEL_EARLY / 100`` (integer
    division).  CMA is not modelled (0 pages) and neither are memory groups (ACPI/virtio-mem
    only), so their terms are 0."""
    kernel_early = movable = 0
    nodes = m.nodes.values() if nid is None else [m.nodes[nid]] if nid in m.nodes else []
    for pg in nodes:
        for z in pg.zones:
            if not z.present_pages:
                continue                # populated_zone
            if z.idx == C.ZONE_MOVABLE:
                movable += z.present_pages
            else:
                kernel_early += z.present_early_pages
    if kernel_early <= 0:               # no group needs early kernel pages: "<= 0" fails
        return False
    return movable + nr_pages <= m.auto_movable_ratio * kernel_early // 100


def auto_movable_zone_for_pfn(m, nid: int, start_pfn: int, nr_pages: int):
    """``auto_movable_zone_for_pfn(nid, NULL, pfn, nr_pages)`` (mm/memory_hotplug.c 5.15.16,
    ``memory_hotplug.online_policy=auto-movable``; later-eras-hotplug.md A7.3): ratio 0 → the
    default kernel zone; else Movable when :func:`_auto_movable_can_online_movable` holds over
    all nodes and, with ``auto_movable_numa_aware``, over node ``nid`` too; else the default
    kernel zone (:func:`default_kernel_zone_for_pfn`, not the §8.5 ``default_zone_for_pfn``:
    ``movable_node`` and an intersecting Movable zone do not matter)."""
    if m.auto_movable_ratio and _auto_movable_can_online_movable(m, None, nr_pages) and (
            not m.auto_movable_numa_aware or _auto_movable_can_online_movable(m, nid, nr_pages)):
        return m.node_data(nid).zones[C.ZONE_MOVABLE]
    return default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)


def zone_for_pfn_range(m, online_type: int, nid, start_pfn, nr_pages):
    """``zone_for_pfn_range(online_type, nid, start_pfn, nr_pages)`` (§8.5); ``online_type`` in
    the release's numbering (:func:`mmop`).  MMOP_ONLINE_KERNEL → the default kernel zone,
    MMOP_ONLINE_MOVABLE → Movable, anything else (MMOP_ONLINE / ONLINE_KEEP): from v5.15 with
    ``online_policy`` ``auto-movable`` :func:`auto_movable_zone_for_pfn`, else the zone the range
    already intersects (kernel or Movable, if exactly one), else Movable with ``movable_node``,
    else the kernel zone (``default_zone_for_pfn``)."""
    nid = K.check_nid(nid)
    T = mmop(m.model)
    if online_type == T.KERNEL:
        return default_kernel_zone_for_pfn(m, nid, start_pfn, nr_pages)
    movable = m.node_data(nid).zones[C.ZONE_MOVABLE]
    if online_type == T.MOVABLE:
        return movable
    if m.model.online_policy_param and m.online_policy == "auto-movable":
        return auto_movable_zone_for_pfn(m, nid, start_pfn, nr_pages)
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


def _check_onoffline_range(m, what: str, pfn: int, nr_pages: int) -> None:
    """The range test at the top of ``online_pages`` / ``offline_pages``
    (``model.onoffline_alignment``): v5.10 ``WARN_ON_ONCE(!nr_pages || !IS_ALIGNED(pfn |
    nr_pages, PAGES_PER_SECTION))``, v5.13 ``WARN_ON_ONCE(!nr_pages || !IS_ALIGNED(pfn,
    pageblock_nr_pages) || !IS_ALIGNED(pfn + nr_pages, PAGES_PER_SECTION))`` (mm/memory_hotplug.c
    5.10.0, 5.14.0-rc5, 6.12.0), then -EINVAL before the hotplug lock, with no other line.  Only
    a direct caller can fail it: memory blocks are whole sections."""
    rule = m.model.onoffline_alignment
    if not rule:
        return
    if rule == "section":
        bad = not nr_pages or (pfn | nr_pages) % _SEC
        need = f"nr_pages > 0 and pfn, nr_pages multiples of PAGES_PER_SECTION ({_SEC:#x})"
    else:
        bad = not nr_pages or pfn % C.PAGEBLOCK_NR_PAGES or (pfn + nr_pages) % _SEC
        need = (f"nr_pages > 0, pfn a multiple of pageblock_nr_pages ({C.PAGEBLOCK_NR_PAGES:#x}) and "
                f"pfn + nr_pages of PAGES_PER_SECTION ({_SEC:#x})")
    if bad:
        warn_on_once(m, (what, "alignment"), f"mm/memory_hotplug.c {what}")
        raise KernelError(errno.EINVAL, f"{what}(pfn {pfn:#x}, nr_pages {nr_pages:#x}): WARN_ON_ONCE: "
                                        f"needs {need}")


def _check_memmap_mapped(m, pfn: int, nr_pages: int, what: str) -> None:
    """``memmap_init_zone`` (via ``move_pfn_range_to_zone``) writes every struct page of the
    range: a section of the range with no vmemmap at all (never added, or its memmap freed by
    ``__remove_pages``) faults on the unmapped address.  Before v5.7 a memory block's online is
    stopped earlier by ``pages_correctly_probed`` (-EBUSY); from v5.7 nothing stops it
    (later-eras-hotplug-evidence.md §4 "5.6→5.7 probed").  KernelBug after the oops line,
    raised before anything changes."""
    S = m.sections
    for nr in range(pfn >> C.PFN_SECTION_SHIFT, (pfn + nr_pages + _SEC - 1) >> C.PFN_SECTION_SHIFT):
        if nr >= S.nr_mem_sections or S.valid_section_nr(nr) or S.section_vmemmap(nr) is not None:
            continue
        first = max(pfn, nr << C.PFN_SECTION_SHIFT)
        addr = (C.vmemmap_base(S.max_physmem_bits) + first * C.STRUCT_PAGE_SIZE) & K.U64
        m.log(f"BUG: unable to handle page fault for address: {addr:016x}")
        raise KernelBug(f"{what}: memmap_init_zone writes the struct page of pfn {first:#x}, whose section "
                        f"{nr} has no memmap (never added or already removed): page fault at {addr:#x}")


def adjust_present_page_count(m, zone, pfn: int, nr_pages: int) -> None:
    """``adjust_present_page_count(pfn_to_page(pfn), group, nr_pages)`` (mm/memory_hotplug.c
    5.15.16; the v5.3 code adds to ``present_pages`` and ``node_present_pages`` inline):
    ``nr_pages`` (negative to take away) to the zone's and its node's present pages, and to the
    zone's ``present_early_pages`` when the section of ``pfn`` is early (boot memory)."""
    if m.sections.early_section_nr(pfn >> C.PFN_SECTION_SHIFT):
        zone.present_early_pages += nr_pages
    zone.present_pages += nr_pages
    zone.zone_pgdat.node_present_pages += nr_pages


def online_pages(m, pfn, nr_pages, online_type=None, nid=0, *, zone=None) -> int:
    """``online_pages(pfn, nr_pages, online_type)`` (§5.5); ``nid`` is the memory block's.

    ``online_type``: an ``MMOP_*`` number of the release (:func:`mmop`; None: its MMOP_ONLINE,
    ``MMOP_ONLINE_KEEP`` before v5.7; MMOP_OFFLINE is a ValueError).  ``zone``: the
    :class:`~sparsemem.mmzone.Zone` the caller chose (v5.14+ ``online_pages(pfn, nr_pages,
    zone)``: the memory block code picks it); None: :func:`zone_for_pfn_range` here.

    From v5.10 (``model.onoffline_alignment``) a range that is empty or not section-aligned
    (v5.13: start not pageblock-aligned or end not section-aligned) is WARN_ON_ONCE and
    -EINVAL first.  A range with a section that has no memmap faults (KernelBug, see
    :func:`_check_memmap_mapped`).  Then the zone choice (§8.5), ``move_pfn_range_to_zone``,
    MEM_GOING_ONLINE (notifier error → failure), then ``walk_system_ram_range`` →
    ``online_mem_sections`` per piece (-EINVAL when the range has no busy System RAM; only
    those pieces are counted) -- from v5.10 (``model.online_walks_system_ram`` false) the whole
    range is onlined and counted -- and the present pages accounting.  Returns the pages onlined.
    On failure: pr_debug ``online_pages [mem %#010llx-%#010llx] failed``, MEM_CANCEL_ONLINE,
    and the span growth / memmap init are **not** undone (v5.3, §5.5); from v5.5
    (``model.shrink_at_offline``) :func:`remove_pfn_range_from_zone` then shrinks the zone and
    node again (v5.6+: and poisons the range's memmap; later-eras-hotplug-evidence.md §2 item 19).
    """
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    nid = K.check_nid(nid)
    T = mmop(m.model)
    if online_type is None:
        online_type = T.ONLINE
    if isinstance(online_type, bool) or online_type not in (T.ONLINE, T.KERNEL, T.MOVABLE):
        raise ValueError(f"online_type must be MMOP_ONLINE{'' if T.ONLINE else '_KEEP'}/KERNEL/MOVABLE "
                         f"({T.ONLINE}/{T.KERNEL}/{T.MOVABLE} in {m.model.name}), not {online_type!r}")
    if zone is not None and not isinstance(zone, Zone):
        raise TypeError(f"zone must be a Zone or None, not {type(zone).__name__}")
    _check_onoffline_range(m, "online_pages", pfn, nr_pages)
    if zone is None:
        zone = zone_for_pfn_range(m, online_type, nid, pfn, nr_pages)
    _check_memmap_mapped(m, pfn, nr_pages, "online_pages")
    move_pfn_range_to_zone(m, zone.nid, zone.idx, pfn, nr_pages)
    rc = _notify(m, "MEM_GOING_ONLINE")
    why = "MEM_GOING_ONLINE notifier failed"
    if not rc:
        if m.model.online_walks_system_ram:
            pieces = walk_system_ram_range(m, pfn, nr_pages)
            if not pieces:
                rc = -errno.EINVAL
                why = "no busy System RAM resource in the range (walk_system_ram_range)"
        else:
            pieces = [(pfn, nr_pages)] if nr_pages else []    # online_pages_range (v5.10)
    if rc:
        pr_debug(m, f"online_pages [mem {_pct_hash_010x(pfn << C.PAGE_SHIFT)}-"
                    f"{_pct_hash_010x(((pfn + nr_pages) << C.PAGE_SHIFT) - 1)}] failed")
        _notify(m, "MEM_CANCEL_ONLINE")
        if m.model.shrink_at_offline:
            # v5.5+ (feee6b298916; read at 5.5.0-rc5): the failure path gives the range back
            remove_pfn_range_from_zone(m, zone, pfn, nr_pages)
        raise KernelError(-rc, f"online_pages(pfn {pfn:#x}, nr_pages {nr_pages:#x}): {why}")
    onlined = 0
    S = m.sections
    for p, n in pieces:
        onlined += n
        S.online_mem_sections(p, p + n)
    m.sync_core_dmesg()
    adjust_present_page_count(m, zone, pfn, onlined)
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


def offline_pages(m, start_pfn, nr_pages, zone=None) -> int:
    """``offline_pages(start_pfn, nr_pages)`` → ``__offline_pages`` (§5.6).  Returns the pages
    offlined and logs ``Offlined Pages N`` (pr_info; from v5.11, ``model.offlined_pages_loglevel``,
    pr_debug: absent from a distribution kernel's dmesg; mm/memory_hotplug.c 5.10.0, 5.11.0).

    Failure reasons (pr_debug ``memory offlining [mem ...] failed due to <reason>``):
    from v5.5 (``model.offline_holes_check``) first ``memory holes`` (-EINVAL: the busy System
    RAM of the range covers fewer pages than the range, mm/memory_hotplug.c 5.5.0-rc5 ..
    6.12.0), then ``multizone range`` (-EINVAL), ``failure to isolate range`` (-EBUSY, reserved
    pages), ``notifier failure`` (MEM_GOING_OFFLINE error injection).  Nothing changes on
    failure.  From v5.10 (``model.onoffline_alignment``) an empty or misaligned range is
    WARN_ON_ONCE and -EINVAL before all of them, with no other line (as in
    :func:`online_pages`); before, the simulation refuses a range that is not pageblock-aligned
    with -EINVAL and no line (a range it cannot model).

    ``zone``: from v5.18 (``model.block_stores_zone``) the zone stored in the memory block
    (``offline_pages(start_pfn, nr_pages, zone, group)``): the multizone test becomes the sanity
    check ``WARN_ON_ONCE(page_zone(first page) != zone || page_zone(last page) != zone)`` with
    the same ``multizone range`` line; None (a direct caller) runs ``test_pages_in_a_zone`` as
    before.  Giving a zone to an earlier release is a ValueError (its function has no such
    argument).
    **v5.3 does not shrink the zone or node span here** (§5.6; done at removal, §6.5); from
    v5.5 (``model.shrink_at_offline``) a successful offline ends with
    :func:`remove_pfn_range_from_zone` over the range (v5.6+: poisoning its memmap first).
    """
    start_pfn = K.unsigned(start_pfn, "start_pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    end_pfn = start_pfn + nr_pages
    if zone is not None:
        if not isinstance(zone, Zone):
            raise TypeError(f"zone must be a Zone or None, not {type(zone).__name__}")
        if not m.model.block_stores_zone:
            raise ValueError(f"offline_pages takes the memory block's zone from v5.18, not in {m.model.name}")
    _check_onoffline_range(m, "offline_pages", start_pfn, nr_pages)
    if start_pfn % C.PAGEBLOCK_NR_PAGES or end_pfn % C.PAGEBLOCK_NR_PAGES:
        raise KernelError(errno.EINVAL, f"offline_pages(pfn {start_pfn:#x}, nr_pages {nr_pages:#x}): "
                                        f"not pageblock aligned")

    def fail(err: int, reason: str):
        pr_debug(m, f"memory offlining [mem {_pct_hash_010x(start_pfn << C.PAGE_SHIFT)}-"
                    f"{_pct_hash_010x((end_pfn << C.PAGE_SHIFT) - 1)}] failed due to {reason}")
        return KernelError(err, f"offline_pages(pfn {start_pfn:#x}, nr_pages {nr_pages:#x}) failed due to {reason}")

    if m.model.offline_holes_check:
        # v5.5+ count_system_ram_pages_cb over walk_system_ram_range, before the zone test
        ram = sum(n for _, n in walk_system_ram_range(m, start_pfn, nr_pages))
        if ram != nr_pages:
            raise fail(errno.EINVAL, "memory holes")
    if zone is None:
        found = test_pages_in_a_zone(m, start_pfn, end_pfn)
        if found is None:
            raise fail(errno.EINVAL, "multizone range")
        zone = found[0]
    elif m.page_zone(start_pfn) is not zone or m.page_zone(end_pfn - 1) is not zone:
        # v5.18+ sanity check of the zone the block stored
        warn_on_once(m, ("offline_pages", "zone"), "mm/memory_hotplug.c offline_pages")
        raise fail(errno.EINVAL, "multizone range")
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
    # pr_info; pr_debug from v5.11 (model.offlined_pages_loglevel): forwards the core's WARN
    # lines first either way
    if m.model.offlined_pages_loglevel == "debug":
        pr_debug(m, f"Offlined Pages {offlined}")
    else:
        m.log(f"Offlined Pages {offlined}", "info")
    adjust_present_page_count(m, zone, start_pfn, -offlined)
    if m.model.shrink_at_offline:
        # v5.5+ (feee6b298916; read at 5.5.0-rc5, 5.6.4): after MEM_OFFLINE, the whole range
        remove_pfn_range_from_zone(m, zone, start_pfn, nr_pages)
    return offlined


# ---------------------------------------------------------------------------------------------
# §6.5: span shrinking

def _probe(m, pfn: int, nid: int, zidx) -> bool:
    """One probe of ``find_smallest_section_pfn`` / ``find_biggest_section_pfn`` and of the
    "all holes" scans, as the cores run it (their ``_probe``): v5.2 a valid section, v5.3
    ``pfn_valid``, from v5.4 (``model.shrink_probes_online_sections``)
    :func:`pfn_to_online_page` (an online section; from v5.12 that function's sub-section and
    ZONE_DEVICE tests); then the struct page's nid and, for a zone, its zone index."""
    S = m.sections
    if m.model.shrink_probes_online_sections:
        if not pfn_to_online_page(m, pfn):
            return False
    elif m.model.subsection:
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
    v5.2 only the probe equal to ``start`` (§6.5, §7).  Its probes are :func:`_probe`'s (from
    v5.4 online sections only); from v5.6 shrink_zone_span has no such scan
    (``model.shrink_all_holes_scan``, see :func:`_shrink_span`)."""
    step = m.model.shrink_step
    lo_ex, hi_ex = (start, end) if m.model.subsection else (start, start + 1)
    if _first_match(m, nid, zidx, zs, min(lo_ex, ze)) is not None:
        return False
    g = zs if hi_ex <= zs else zs + -(-(hi_ex - zs) // step) * step
    return _first_match(m, nid, zidx, g, ze) is None


def _shrink_span(m, nid: int, zone_idx, span_start: int, span_end: int, start_pfn: int, end_pfn: int):
    """The algorithm shared by ``shrink_zone_span`` and ``shrink_pgdat_span`` (§6.5).

    Returns the new ``(start, spanned)`` after removing [start_pfn, end_pfn) from the span
    [span_start, span_end) of node ``nid`` (``zone_idx`` None: any zone).  The probes are
    :func:`_probe`'s (``pfn_valid`` in v5.3, online sections from v5.4).  Until v5.5 the
    "all holes" scan follows and empties the span when nothing of it is left outside the
    range; from v5.6 (``model.shrink_all_holes_scan`` false; 5.5.0-rc5 scans, 5.6.4 does not,
    later-eras-hotplug.md A9) the span is emptied only when the range is at an edge and no
    probe beyond it matches (a found pfn 0 counts as none, as the kernel's ``if (pfn)``), and a
    range strictly inside leaves the span as it is.  The node version (``zone_idx`` None) is
    the v5.3 ``shrink_pgdat_span``, which always scans.
    """
    S = m.sections
    start, spanned = span_start, span_end - span_start
    holes_scan = zone_idx is None or m.model.shrink_all_holes_scan
    if span_start == start_pfn:
        pfn = S.find_smallest_section_pfn(nid, zone_idx, end_pfn, span_end)
        if pfn:
            start, spanned = pfn, span_end - pfn
        elif not holes_scan:
            return 0, 0
    elif span_end == end_pfn:
        pfn = S.find_biggest_section_pfn(nid, zone_idx, span_start, start_pfn)
        if pfn:
            spanned = pfn - span_start + 1
        elif not holes_scan:
            return 0, 0
    if holes_scan and _all_holes(m, nid, zone_idx, span_start, span_end, start_pfn, end_pfn):
        return 0, 0
    return start, spanned


def shrink_zone_span(m, zone, start_pfn: int, end_pfn: int) -> None:
    """``shrink_zone_span(zone, start, end)`` (§6.5; legacy step 32768, §7; v5.4 online
    probes, v5.6 no "all holes" scan: :func:`_shrink_span`)."""
    zs = zone.zone_start_pfn
    zone.zone_start_pfn, zone.spanned_pages = _shrink_span(
        m, zone.nid, zone.idx, zs, zs + zone.spanned_pages, start_pfn, end_pfn)


def shrink_pgdat_span(m, pgdat, start_pfn: int, end_pfn: int) -> None:
    """``shrink_pgdat_span(pgdat, start, end)`` (§6.5, v5.1-v5.3): as the zone version, any
    zone.  From v5.4 the kernel has no such function: :func:`remove_zone` calls
    :func:`update_pgdat_span` instead (``model.node_span_from_zones``).

    The probes read struct pages that may never have been initialised: in v5.1/v5.2 the boot
    memmap beyond ``max_pfn`` in the last boot section is left so (``zero_resv_unavail``
    stops at ``max_pfn`` until e822969cab48, v5.6) and reads as no node, so removing device
    memory at the node's end can leave the node ending below that section's boot RAM (e.g.
    0xc0000 with RAM up to pfn 0x10001f), as the kernel does."""
    ps = pgdat.node_start_pfn
    pgdat.node_start_pfn, pgdat.node_spanned_pages = _shrink_span(
        m, pgdat.nid, None, ps, ps + pgdat.node_spanned_pages, start_pfn, end_pfn)


def update_pgdat_span(m, pgdat) -> None:
    """``update_pgdat_span(pgdat)`` (v5.4+, ``model.node_span_from_zones``; read at 5.4.0,
    5.6.4, 6.12.0): the node span becomes the union of its non-empty zone spans, ZONE_DEVICE
    included (start and end 0 when every zone is empty).  Reads no struct page."""
    start = end = 0
    for z in pgdat.zones:
        if not z.spanned_pages:
            continue
        if not end:
            start, end = z.zone_start_pfn, z.zone_end_pfn
            continue
        end = max(end, z.zone_end_pfn)
        start = min(start, z.zone_start_pfn)
    pgdat.node_start_pfn, pgdat.node_spanned_pages = start, end - start


def remove_zone(m, zone, start_pfn: int, nr_pages: int) -> None:
    """``__remove_zone(zone, start_pfn, nr_pages)`` (§6.5; v5.5+ the shrinking part of
    ``remove_pfn_range_from_zone``): shrink the zone, then its node.

    From v5.4 (``model.shrink_skips_zone_device``) a ZONE_DEVICE zone returns at once, so it
    and its node keep the range, and the node span is recomputed from the zones
    (:func:`update_pgdat_span`, ``model.node_span_from_zones``) instead of probed
    (:func:`shrink_pgdat_span`).  May raise KernelBug where the kernel's
    ``find_biggest_section_pfn`` would spin."""
    if zone.idx == C.ZONE_DEVICE and m.model.shrink_skips_zone_device:
        return
    shrink_zone_span(m, zone, start_pfn, start_pfn + nr_pages)
    if m.model.node_span_from_zones:
        update_pgdat_span(m, zone.zone_pgdat)
    else:
        shrink_pgdat_span(m, zone.zone_pgdat, start_pfn, start_pfn + nr_pages)


def remove_pfn_range_from_zone(m, zone, start_pfn, nr_pages) -> None:
    """``remove_pfn_range_from_zone(zone, start_pfn, nr_pages)`` (v5.5+, read at 5.5.0-rc5,
    5.6.4, 6.12.0; later-eras-hotplug.md A9): from v5.6 (``model.offline_poisons_memmap``)
    the struct pages of the range are poisoned first (``page_init_poison``: they read as
    uninitialised memmap, ``page_zonenum`` -1, also for ZONE_DEVICE), then
    :func:`remove_zone` (ZONE_DEVICE returns; else shrink the zone and recompute the node).
    ``zone`` is a :class:`~sparsemem.mmzone.Zone`.

    The callers: ``offline_pages`` after a successful offline and ``online_pages`` after a
    failed online (v5.5+, ``model.shrink_at_offline``), ``memunmap_pages`` before the
    removal (v5.6+, ``model.shrink_at_memunmap``).  The kernel's ``page_init_poison`` writes
    only with CONFIG_DEBUG_VM; the simulation treats the memmap as uninitialised afterwards
    either way, as it does for the memmap of a freshly added section."""
    start_pfn = K.unsigned(start_pfn, "start_pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    if not isinstance(zone, Zone):
        raise TypeError(f"zone must be a Zone, not {type(zone).__name__}")
    if m.model.offline_poisons_memmap and nr_pages:
        m.sections.page_init_poison(start_pfn, nr_pages)
    remove_zone(m, zone, start_pfn, nr_pages)


def remove_section(m, zone, pfn: int, nr: int, altmap=None) -> bool:
    """``__remove_section(zone, pfn, nr, map_offset, altmap)`` (§6.3; legacy §7).

    Not valid → WARN_ON_ONCE (the core's) and nothing (v5.1: no WARN, KernelError(EINVAL),
    §7); else (v5.2: unregister the section
    from its memory block,) ``__remove_zone`` while the range is still valid, then
    ``sparse_remove_section``.  Returns whether the piece was removed.  From v5.5
    (``model.shrink_at_offline``: ``__remove_section(pfn, nr, map_offset, altmap)``, read at
    5.5.0-rc5) there is no zone and removal never touches the spans: ``zone`` is ignored.
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
    if zone is not None and not m.model.shrink_at_offline:
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
    the zone of ``pfn`` (§6.1); nothing has changed when it raises.  From v5.5
    (``model.x86_remove_reads_memmap`` false; 5.4.0 reads, 5.5.0-rc5 does not) x86
    ``arch_remove_memory`` reads no struct page, so this never raises."""
    if not m.model.x86_remove_reads_memmap or not _first_page_unmapped(m, pfn):
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
    * v5.5+ (``model.x86_remove_reads_memmap`` false; arch/x86/mm/init_64.c 5.5.0-rc5): no
      struct page is read and ``__remove_pages`` has no zone, so a range without memmap does
      not fault: each section that is not valid gets the ``__remove_section`` WARN_ON_ONCE.
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
    reads = m.model.x86_remove_reads_memmap and pfn + off < m.sections.pfn_limit
    zone = m.page_zone(pfn + off) if reads else None
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
        m.log(line, "err")
        raise KernelError(errno.EINVAL, line)


def check_mem_limit(m, start: int, size: int, *, booting: bool = False) -> None:
    """The ``mem=`` test of ``register_memory_resource`` (§8.1): -E2BIG, with no dmesg line,
    when the range ends above ``max_mem_size`` (``Machine(mem=...)``; U64_MAX by default).
    From v5.7 (``model.mem_limit_boot_only``) only while ``system_state < SYSTEM_RUNNING``
    (``booting``): every hot-add the simulation runs after boot -- ``add_memory`` and kmem
    (a module: its hot-add follows a driver bind at run time, kmem.md K §5.1 step 5) -- ignores
    ``mem=`` (mm/memory_hotplug.c 5.6.4 tests ``max_mem_size`` always, 5.7.14 .. 6.12.0 with
    the ``system_state`` term)."""
    if start + size > m.max_mem_size and (booting or not m.model.mem_limit_boot_only):
        raise KernelError(errno.E2BIG, f"add_memory: [mem {start:#x}-{start + size - 1:#x}] ends above "
                                       f"max_mem_size {m.max_mem_size:#x} (mem=)")


def node_possible(m, nid: int) -> bool:
    """``node_possible(nid)``: ``nid`` is in ``node_possible_map`` (``Machine(possible_nodes=)``).
    None there means the nodes of the layout, which names no NUMA affinity: without an SRAT,
    x86 ``numa_init(dummy_numa_init)`` parses node 0 alone and ``numa_register_memblks``
    copies ``numa_nodes_parsed`` into ``node_possible_map`` (arch/x86/mm/numa.c 5.3, 6.1), so
    node 0 is the only possible node."""
    possible = m.possible_nodes
    return nid == 0 if possible is None else nid in possible


def register_memory_resource(m, start: int, size: int) -> Resource:
    """``register_memory_resource(start, size)`` (§8.1): -E2BIG beyond ``max_mem_size``
    (default U64_MAX; ``mem=``; from v5.7 only during boot, so never for ``add_memory``:
    :func:`check_mem_limit`), then a busy "System RAM" region under iomem
    (``__request_region``); overlap → pr_debug ``Unable to reserve System RAM region:
    %016llx->%016llx`` (only with ``Machine(dyndbg=True)``) and -EEXIST.

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
        m.log(line, "warning")
        raise KernelError(errno.E2BIG, line)
    check_mem_limit(m, start, size)
    end = start + size - 1
    phys_bits = getattr(m, "phys_bits", m.sections.max_physmem_bits)
    root_end = (1 << phys_bits) - 1
    line = f"Unable to reserve System RAM region: {start:016x}->{start + size:016x}"
    if size and end > root_end:
        pr_debug(m, line)
        raise KernelError(errno.EEXIST, f"{line} ([mem {start:#x}-{end:#x}] ends above the end of "
                                        f"iomem_resource {root_end:#x}, (1 << x86_phys_bits {phys_bits}) - 1)")
    try:
        return m.iomem.request(start, size, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)
    except KernelError as e:
        pr_debug(m, line)
        raise KernelError(errno.EEXIST, f"{line} ({e.strerror})") from None


# ---------------------------------------------------------------------------------------------
# memmap_on_memory (v5.13+; later-eras-hotplug.md A6, later-eras-hotplug-evidence.md §1 rows
# 5.13, 6.6, 6.8; KernelModel.memmap_on_memory_rules)

def check_mhp_flags(flags) -> int:
    """The ``flags`` of :func:`add_memory`: MHP_NONE or MHP_MEMMAP_ON_MEMORY (:data:`MHP_FLAGS`).
    TypeError for anything but an int (a bool too), ValueError naming the accepted values for
    a negative number or any other bit.  Checked in every release: the kernel's own flags are
    a ``mhp_t`` argument from v5.10, and before v5.13 the bit means nothing there."""
    if isinstance(flags, bool):
        raise TypeError("flags must be an int (MHP_NONE or MHP_MEMMAP_ON_MEMORY), not bool")
    flags = K.index(flags, "flags")
    known = 0
    for bit in MHP_FLAGS.values():
        known |= bit
    if flags < 0 or flags & ~known:
        accepted = ", ".join(f"{name} ({bit:#x})" for name, bit in MHP_FLAGS.items())
        raise ValueError(f"flags {flags:#x} has bits add_memory does not take; accepted: {accepted}")
    return flags


def memory_block_memmap_size(block_size: int) -> int:
    """``memory_block_memmap_size()`` (mm/memory_hotplug.c 6.6.0): the bytes of struct page
    (64 each) of a memory block of ``block_size`` bytes (128 MiB: 2 MiB)."""
    return (block_size >> C.PAGE_SHIFT) * C.STRUCT_PAGE_SIZE


def memory_block_memmap_on_memory_pages(m, block_size: Optional[int] = None) -> int:
    """``memory_block_memmap_on_memory_pages()`` (mm/memory_hotplug.c 6.6.0): the pages the
    memmap of one block takes, ``PFN_UP(memory_block_memmap_size())``, in ``force`` mode
    rounded up to whole pageblocks (512 pages).  ``block_size``: another block size than the
    machine's (for the support test of :func:`mhp_supports_memmap_on_memory`)."""
    bs = m.memory_block_size if block_size is None else block_size
    pages = -(-memory_block_memmap_size(bs) // C.PAGE_SIZE)
    if m.memmap_on_memory == "force":
        pages = -(-pages // C.PAGEBLOCK_NR_PAGES) * C.PAGEBLOCK_NR_PAGES
    return pages


def _memmap_on_memory_refusal(m, size: int, block_size: Optional[int] = None) -> Optional[str]:
    """Why ``mhp_supports_memmap_on_memory(size)`` is false in ``m``'s release (the first term
    that fails, in the kernel's order), or None when it is true.

    * v5.13-v6.5 (mm/memory_hotplug.c 5.14.0-rc5, 6.5.0): the parameter is on, ``size`` is one
      memory block, its memmap ``V = size / 4096 * 64`` bytes is a multiple of PMD_SIZE (2 MiB)
      and ``size - V`` a multiple of a pageblock (2 MiB).  5.14-5.18 also need hugetlb vmemmap
      freeing off (``hugetlb_free_vmemmap=on``, not modelled: always off).
    * v6.6+ (6.6.0, 6.8.1): the parameter is on (``force`` too), ``size`` is one block; with
      ``V = memory_block_memmap_size()`` and ``P = memory_block_memmap_on_memory_pages()``:
      V page-aligned, P pageblock-aligned, P not the whole block, and the generic (x86)
      ``arch_supports_memmap_on_memory``: V a multiple of PMD_SIZE.
    On x86 every block size (128 MiB .. 64 GiB, powers of two) passes the size terms."""
    rules = m.model.memmap_on_memory_rules
    bs = m.memory_block_size if block_size is None else block_size
    if not m.memmap_on_memory:
        return "memory_hotplug.memmap_on_memory is off"
    if size != bs:
        return f"size {size:#x} is not one memory block ({bs:#x})"
    if rules == "5.13":
        vmemmap = (size >> C.PAGE_SHIFT) * C.STRUCT_PAGE_SIZE
        if vmemmap % C.PMD_SIZE:
            return f"its memmap ({vmemmap:#x} bytes) does not span whole PMDs ({C.PMD_SIZE:#x})"
        if (size - vmemmap) % (C.PAGEBLOCK_NR_PAGES << C.PAGE_SHIFT):
            return f"the rest of the block ({size - vmemmap:#x} bytes) is not made of whole pageblocks"
        return None
    vmemmap = memory_block_memmap_size(bs)
    pages = memory_block_memmap_on_memory_pages(m, bs)
    if vmemmap % C.PAGE_SIZE:
        return f"its memmap ({vmemmap:#x} bytes) is not page-aligned"
    if pages % C.PAGEBLOCK_NR_PAGES:
        return f"its memmap pages ({pages}) are not whole pageblocks ({C.PAGEBLOCK_NR_PAGES})"
    if pages == bs >> C.PAGE_SHIFT:
        return f"its memmap pages ({pages}) would fill the whole block"
    if vmemmap % C.PMD_SIZE:
        return (f"its memmap ({vmemmap:#x} bytes) does not span whole PMDs ({C.PMD_SIZE:#x}; "
                f"arch_supports_memmap_on_memory)")
    return None


def mhp_supports_memmap_on_memory(m, size, *, block_size: Optional[int] = None) -> bool:
    """``mhp_supports_memmap_on_memory(size)`` of ``m``'s release (:func:`_memmap_on_memory_refusal`
    gives the rules); False before v5.13 (no such feature).  ``block_size``: evaluate it for
    another memory block size than the machine's (the terms other than the size can only fail
    for block sizes x86 does not use)."""
    size = K.unsigned(size, "size")
    if block_size is not None:
        block_size = K.unsigned(block_size, "block_size")
    if not m.model.memmap_on_memory_rules:
        return False
    return _memmap_on_memory_refusal(m, size, block_size) is None


def _mhp_altmap(m, rules: str, start: int, size: int):
    """The altmap ``add_memory_resource`` gives ``arch_add_memory`` for a request with
    MHP_MEMMAP_ON_MEMORY (v5.13-v6.7; v6.8 is :func:`create_altmaps_and_memory_blocks`), or None:
    v5.13-v6.5 ``{base_pfn = PHYS_PFN(start), free = PHYS_PFN(size)}`` and -EINVAL, with no
    dmesg line, when the request is not supported; v6.6-v6.7 ``{base_pfn, free =
    memory_block_memmap_on_memory_pages()}``, or None (a plain add, silently) when it is not."""
    if rules == "5.13":
        why = _memmap_on_memory_refusal(m, size)
        if why is not None:
            raise KernelError(errno.EINVAL, f"add_memory_resource: MHP_MEMMAP_ON_MEMORY for [mem {start:#x}-"
                                            f"{start + size - 1:#x}] is not supported: {why} "
                                            f"(mhp_supports_memmap_on_memory)")
        return m.altmap_cls(start >> C.PAGE_SHIFT, 0, size >> C.PAGE_SHIFT)
    if rules == "6.6" and _memmap_on_memory_refusal(m, size) is None:
        return m.altmap_cls(start >> C.PAGE_SHIFT, 0, memory_block_memmap_on_memory_pages(m))
    return None


def _give_blocks_altmap(m, start: int, size: int, altmap) -> None:
    """What ``create_memory_block_devices`` stores in the new blocks of ``[start, start+size)``:
    v5.13-v6.5 ``nr_vmemmap_pages`` = ``altmap->alloc`` after ``arch_add_memory`` (the pages the
    memmap took; drivers/base/memory.c 5.14.0-rc5 ``init_memory_block``); v6.6+ the altmap
    itself (``mem->altmap``; its ``free`` is what ``memory_block_online`` takes, 6.6.0)."""
    owns = m.model.memmap_on_memory_rules != "5.13"
    for blk in m.memory_subsys.walk_memory_blocks(m, start, size):
        if owns:
            blk.altmap = altmap
            blk.nr_vmemmap_pages = altmap.free
        else:
            blk.nr_vmemmap_pages = altmap.alloc


def create_altmaps_and_memory_blocks(m, nid, start, size) -> None:
    """v6.8 ``create_altmaps_and_memory_blocks`` (mm/memory_hotplug.c 6.8.1): per memory block
    of the range, an altmap ``{base_pfn, free = memory_block_memmap_on_memory_pages()}``,
    ``arch_add_memory`` of that block with it, then its block device (which owns the altmap).
    On an error the blocks done so far are taken down again
    (:func:`remove_memory_blocks_and_altmaps`) and the error raised; the failing block keeps what
    ``arch_add_memory`` left (no rollback there, as for any add)."""
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    bs = m.memory_block_size
    cur = start
    try:
        while cur < start + size:
            altmap = m.altmap_cls(cur >> C.PAGE_SHIFT, 0, memory_block_memmap_on_memory_pages(m))
            arch_add_memory(m, nid, cur, bs, altmap)
            try:
                m.memory_subsys.create_memory_block_devices(m, cur, bs)
            except KernelError:
                arch_remove_memory(m, nid, cur, bs)  # 6.8.1: without the altmap
                raise
            _give_blocks_altmap(m, cur, bs, altmap)
            cur += bs
    except KernelError:
        if cur != start:
            remove_memory_blocks_and_altmaps(m, nid, start, cur - start)
        raise


def _block_altmaps(m, start: int, size: int, *, warn_missing: bool) -> list:
    """``[(block start, block size, altmap)]`` of every block of the range, taking each block's
    altmap away (``mem->altmap = NULL``); v6.8 ``remove_memory_blocks_and_altmaps`` WARN_ON_ONCEs
    a missing block and skips it."""
    bs = m.memory_block_size
    plan = []
    for cur in range(start, start + size, bs):
        blk = m.blocks.get(cur // bs)
        if blk is None:
            if warn_missing:
                warn_on_once(m, ("remove_memory_blocks_and_altmaps",),
                             "mm/memory_hotplug.c remove_memory_blocks_and_altmaps")
            continue
        plan.append((cur, bs, blk.altmap))
        blk.altmap = None
    return plan


def arch_remove_memory_altmaps(m, nid, start, size, plan=None) -> int:
    """``arch_remove_memory`` as ``try_remove_memory`` runs it: ``plan`` None (no memmap on
    memory in the range) is one plain call over the range; else ``[(start, size, altmap)]``
    from :func:`memmap_on_memory_remove_check`, one call per entry with its altmap, and from
    v6.6 ``WARN(altmap->alloc, "Altmap not fully unmapped")`` after each (6.6.0/6.7.3
    ``try_remove_memory``, 6.8.1 ``remove_memory_blocks_and_altmaps``): every memmap PMD the
    altmap handed out must have come back through it.  Returns the section pieces removed
    (v5.1: the negative errno of :func:`arch_remove_memory`)."""
    if plan is None:
        return arch_remove_memory(m, nid, start, size)
    rules = m.model.memmap_on_memory_rules
    removed = 0
    for s, n, altmap in plan:
        removed += arch_remove_memory(m, nid, s, n, altmap)
        if rules != "5.13" and altmap is not None and altmap.alloc:
            site = "remove_memory_blocks_and_altmaps" if rules == "6.8" else "try_remove_memory"
            warn(m, f"mm/memory_hotplug.c {site}", "Altmap not fully unmapped")
    return removed


def remove_memory_blocks_and_altmaps(m, nid, start, size) -> None:
    """v6.8 ``remove_memory_blocks_and_altmaps`` (mm/memory_hotplug.c 6.8.1): per memory block
    of the range, take its altmap, remove its block device, ``arch_remove_memory`` with the
    altmap and WARN ``Altmap not fully unmapped`` if pages stay allocated from it; a missing
    block is WARN_ON_ONCE and skipped."""
    plan = _block_altmaps(m, start, size, warn_missing=True)
    for s, n, _altmap in plan:
        m.memory_subsys.remove_memory_block_devices(m, s, n)
    arch_remove_memory_altmaps(m, nid, start, size, plan)


def memory_blocks_have_altmaps(m, start: int, size: int) -> int:
    """v6.8 ``memory_blocks_have_altmaps`` (mm/memory_hotplug.c 6.8.1): 0 when the parameter is
    off or no block of the range has an altmap, 1 when every block of the range
    (``size / memory_block_size``) has one, else WARN_ON_ONCE and -EINVAL."""
    if not m.memmap_on_memory:
        return 0
    blocks = m.memory_subsys.walk_memory_blocks(m, start, size)
    num_altmaps = sum(1 for blk in blocks if blk.altmap is not None)
    if num_altmaps == 0:
        return 0
    if size // m.memory_block_size != num_altmaps:
        warn_on_once(m, ("memory_blocks_have_altmaps",), "mm/memory_hotplug.c memory_blocks_have_altmaps")
        return -errno.EINVAL
    return 1


def memmap_on_memory_remove_check(m, start: int, size: int) -> Optional[list]:
    """The memmap_on_memory part of ``try_remove_memory``, after the offline check and before
    anything is removed (:func:`remove_memory` calls it); returns the ``plan`` of
    :func:`arch_remove_memory_altmaps` (None: a plain removal).  Only while the parameter is on
    (``mhp_memmap_on_memory()``): with it off no block can have its memmap inside.

    * v5.13-v6.5 (5.14.0-rc5, 6.5.0): the ``nr_vmemmap_pages`` of the first block of the range
      that has some; if any and ``size`` is not one block: pr_warn ``Refuse to remove %#llx -
      %#llx,wrong granularity`` (start, end exclusive) and -EINVAL; else an altmap whose only
      field is ``alloc = nr_vmemmap_pages`` (``base_pfn`` 0, ``free`` 0).
    * v6.6-v6.7 (6.6.0, 6.7.3): the same test on the first block that has an altmap; else that
      block's altmap, taken from the block (``mem->altmap = NULL``).
    * v6.8+ (6.8.1): ``memory_blocks_have_altmaps``: some but not all blocks of the range have
      one → WARN_ON_ONCE and -EINVAL (the kernel has already removed the firmware memmap entry,
      which the simulation does not model: nothing it models has changed); all → each block's
      altmap (``remove_memory_blocks_and_altmaps``).
    """
    rules = m.model.memmap_on_memory_rules
    if not rules or not m.memmap_on_memory:
        return None
    MB = m.memory_subsys
    bs = m.memory_block_size
    if rules == "6.8":
        rc = memory_blocks_have_altmaps(m, start, size)
        if rc < 0:
            n = sum(1 for blk in MB.walk_memory_blocks(m, start, size) if blk.altmap is not None)
            raise KernelError(-rc, f"try_remove_memory: [mem {start:#x}-{start + size - 1:#x}] spans "
                                   f"{size // bs} memory blocks of which {n} have their memmap inside "
                                   f"(memory_blocks_have_altmaps: all or none)")
        return _block_altmaps(m, start, size, warn_missing=True) if rc else None
    owns = rules != "5.13"
    found = next((blk for blk in MB.walk_memory_blocks(m, start, size)
                  if (blk.altmap is not None if owns else blk.nr_vmemmap_pages)), None)
    if found is None:
        return None
    if size != bs:
        line = f"Refuse to remove {start:#x} - {start + size:#x},wrong granularity"
        m.log(line, "warning")
        raise KernelError(errno.EINVAL, f"{line} (memory{found.id} has its memmap inside; such memory "
                                        f"is removed one block ({bs:#x}) at a time)")
    if owns:
        altmap, found.altmap = found.altmap, None
    else:
        altmap = m.altmap_cls(0, 0, 0, 0, found.nr_vmemmap_pages)
    return [(start, size, altmap)]


def mhp_init_memmap_on_memory(m, pfn, nr_pages, zone) -> None:
    """``mhp_init_memmap_on_memory(pfn, nr_pages, zone)`` (mm/memory_hotplug.c 5.14.0-rc5,
    6.6.0): the block's vmemmap pages join ``zone`` (``move_pfn_range_to_zone``, as
    MIGRATE_UNMOVABLE: span and memmap, not the buddy), and sections they fill completely are
    marked online (``nr_pages >= PAGES_PER_SECTION``, e.g. a 64 GiB block).  The present
    pages are counted by the caller once the online succeeded."""
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    move_pfn_range_to_zone(m, zone.nid, zone.idx, pfn, nr_pages)
    if nr_pages >= _SEC:
        m.sections.online_mem_sections(pfn, (pfn + nr_pages) & ~(_SEC - 1))
        m.sync_core_dmesg()


def mhp_deinit_memmap_on_memory(m, pfn, nr_pages) -> None:
    """``mhp_deinit_memmap_on_memory(pfn, nr_pages)`` (5.14.0-rc5, 6.6.0): the reverse of
    :func:`mhp_init_memmap_on_memory`: sections the vmemmap pages fill are marked offline, then
    ``remove_pfn_range_from_zone(page_zone(pfn), pfn, nr_pages)``."""
    pfn = K.unsigned(pfn, "pfn")
    nr_pages = K.unsigned(nr_pages, "nr_pages")
    if nr_pages >= _SEC:
        m.sections.offline_mem_sections(pfn, (pfn + nr_pages) & ~(_SEC - 1))
        m.sync_core_dmesg()
    zone = m.page_zone(pfn)
    if zone is not None:
        remove_pfn_range_from_zone(m, zone, pfn, nr_pages)


def add_memory_resource(m, nid: int, res: Resource, flags: int = MHP_NONE) -> None:
    """``add_memory_resource(nid, res)`` (§8.1): range check, ``__try_online_node``,
    ``arch_add_memory`` (v5.2: blocks registered per section inside it), v5.3
    ``create_memory_block_devices``, node online, ``link_mem_sections``, auto-online walk that
    stops at the first block failing to online (error not passed on).

    From v5.8 (``model.node_possible_check``; mm/memory_hotplug.c 5.8.1 .. 6.12.0) a ``nid``
    outside ``node_possible_map`` (:func:`node_possible`) is ``WARN(1, "node %d was absent from
    the node_possible_map")`` and -EINVAL right after the range check, before anything changes
    (before v5.8 any node is created).

    Partial state on an ``arch_add_memory`` error: the sections added stay (no rollback),
    ``max_pfn`` raised; a new node's pgdat is freed again.

    ``flags`` with MHP_MEMMAP_ON_MEMORY (``model.memmap_on_memory_rules``; later-eras-hotplug.md
    A6), after ``__try_online_node``: before v5.13 ignored; v5.13-v6.5 one altmap over the range
    or, when :func:`mhp_supports_memmap_on_memory` says no (e.g. more than one block), -EINVAL
    before ``arch_add_memory`` with nothing changed; v6.6-v6.7 the same altmap, or silently a
    plain add; v6.8 (supported for one block) :func:`create_altmaps_and_memory_blocks`, one
    altmap per block.  The memmap of each section then comes from the block's first pages
    (``SectionTable.section_vmemmap`` ``"pmd-altmap"``).
    """
    MB = m.memory_subsys
    start, size = res.start, res.size
    check_hotplug_memory_range(m, start, size)
    if m.model.node_possible_check and not node_possible(m, nid):
        text = f"node {nid} was absent from the node_possible_map"
        warn(m, "mm/memory_hotplug.c add_memory_resource", text)
        raise KernelError(errno.EINVAL, f"add_memory_resource: {text} (possible: "
                                        f"{sorted(m.possible_nodes or {0})})")
    new_node = nid not in m.nodes or not m.nodes[nid].online
    created = nid not in m.nodes
    if created:
        m.node_data(nid)
    legacy_blocks = not m.model.memory_blocks_after_arch_add
    rules = m.model.memmap_on_memory_rules if flags & MHP_MEMMAP_ON_MEMORY else ""
    try:
        if rules == "6.8" and mhp_supports_memmap_on_memory(m, m.memory_block_size):
            create_altmaps_and_memory_blocks(m, nid, start, size)
        else:
            altmap = _mhp_altmap(m, rules, start, size)
            arch_add_memory(m, nid, start, size, altmap, _want_memblock=legacy_blocks)
            if not legacy_blocks:
                try:
                    MB.create_memory_block_devices(m, start, size)
                except KernelError:
                    arch_remove_memory(m, nid, start, size)  # 6.7+: with the altmap (no difference here)
                    raise
                if altmap is not None:
                    _give_blocks_altmap(m, start, size, altmap)
    except KernelError:
        if created:
            m.drop_pgdat(nid)
        raise
    if new_node:
        m.nodes[nid].online = True
    MB.link_mem_sections(m, nid, start, size)
    if m.auto_online:
        # online_memory_block: v5.7+ stores memhp_default_online_type (online / online_kernel /
        # online_movable, mm/memory_hotplug.c 5.7.14) in the block first; 5.3-5.6 call
        # device_online only, on a new block whose online_type is the kzalloc 0 =
        # MMOP_ONLINE_KEEP, the number "online" has there (the only word those releases
        # auto-online with), so storing it is the same
        online_type = mmop(m.model).of(m.auto_online_type)
        for blk in MB.walk_memory_blocks(m, start, size):
            blk.online_type = online_type
            if MB.device_online(m, blk) < 0:
                break
    m.sync_core_dmesg()


def add_memory(m, nid, start, size, *, flags=MHP_NONE) -> None:
    """``add_memory(nid, start, size, mhp_flags)`` → ``__add_memory`` (§8.1).  Order of checks:
    -E2BIG, the "System RAM" request (-EEXIST), then the block alignment (-EINVAL with the pr_err
    line), from v5.8 the possible node (-EINVAL with a WARN), from v5.13 an unsupported
    MHP_MEMMAP_ON_MEMORY request (-EINVAL, no line, until v6.5); the resource is released again
    on any error.  ``flags``: MHP_NONE or MHP_MEMMAP_ON_MEMORY (:func:`check_mhp_flags`; what
    the release does with it: :func:`add_memory_resource`)."""
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    flags = check_mhp_flags(flags)
    res = register_memory_resource(m, start, size)
    try:
        add_memory_resource(m, nid, res, flags)
    except BaseException:
        if res.parent is not None:
            m.iomem.release(res)
        raise


def try_offline_node(m, nid: int) -> None:
    """``try_offline_node(nid)`` (§6.6 step 8): offline the node when no present section of its
    span maps to it and it has no CPU (CPUs are on node 0 only in this model).

    From v5.4 (``model.try_offline_node_spanned``, 2c91f8fc6c99; read at 5.4.0, 5.6.4) no struct
    page is read: the node stays online while it spans pages (``node_spanned_pages``, ZONE_DEVICE
    included), while any memory block records its nid (``check_no_memblock_for_node_cb``: an
    added block that was never onlined keeps a node without span online) or while a CPU is on
    it (later-eras-hotplug.md A9)."""
    pg = m.nodes.get(nid)
    if pg is None or not pg.online or nid == 0:
        return
    if m.model.try_offline_node_spanned:
        if pg.node_spanned_pages:
            return
        blocks = m.blocks
        if any(blocks[bid].nid == nid for bid in blocks):  # for_each_memory_block
            return
        pg.online = False
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
    (``release_mem_region_adjustable``; a failure only warns ``Unable to release resource
    <%pa-%pa> (%d)``; from v5.10, ``model.release_failure_message`` false, the function is void
    and prints nothing, except the WARN_ON_ONCE of an adjust that fails: kernel/resource.c
    5.10.0), and ``try_offline_node``.  A range whose first section has no memmap makes x86
    ``arch_remove_memory`` fault (§6.1): KernelBug, raised before anything changes.

    v5.6-v5.8 (``model.remove_memory_unpaired_unlock``): the -EBUSY path runs
    ``mem_hotplug_done`` although ``mem_hotplug_begin`` never ran (mm/memory_hotplug.c 5.6.4,
    5.7.14, 5.8.1; fixed in 5.9.1): ``percpu_up_write`` → ``rcu_sync_exit`` logs its two
    WARN_ON_ONCEs (``gp_state`` is GP_IDLE, ``gp_count`` 0; kernel/rcu/sync.c lines 170, 171,
    no message) on the first such failure of the boot, after the pr_warn, and
    ``mem_hotplug_lock_unbalanced`` becomes True.  **A real kernel's locks are corrupt from
    then on**: ``gp_count`` of ``mem_hotplug_lock`` is -1 (the next ``mem_hotplug_begin``
    WARNs in ``rcu_sync_enter`` and readers stay on the slow path), ``cpu_hotplug_lock``'s
    reader count is -1 (CPU hotplug waits for it forever), and on 5.6 the writer
    ``rw_semaphore``'s count is -1 so the next add, remove, online or offline blocks forever.
    The simulation logs the two WARNs and carries on as if the locks were sound.

    From v5.15 (``model.remove_memory_has_nid`` false) the kernel function has no ``nid``: the
    argument is checked and ignored, and ``try_offline_node`` gets the nid of the last memory
    block the offline check visited (``check_memblock_offlined_cb``; none, or one that is
    ``NUMA_NO_NODE``: no node is offlined) (mm/memory_hotplug.c 5.14.0-rc5 / 5.15.16).
    """
    MB = m.memory_subsys
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    try:
        check_hotplug_memory_range(m, start, size)
    except KernelError as e:
        raise KernelBug(f"remove_memory: BUG_ON(check_hotplug_memory_range): {e.strerror}") from None
    last_nid = -1   # NUMA_NO_NODE; v5.15+ check_memblock_offlined_cb records each block's nid
    for blk in MB.walk_memory_blocks(m, start, size):
        last_nid = blk.nid
        if blk.state_value != MEM_OFFLINE:
            b0 = blk.start
            line = f"removing memory fails, because memory [{_pa(b0)}-{_pa(b0 + blk.size - 1)}] is onlined"
            m.log(line, "warning")
            if m.model.remove_memory_ebusy:
                if m.model.remove_memory_unpaired_unlock:
                    # "goto done": mem_hotplug_done() -> percpu_up_write() -> rcu_sync_exit()
                    for line_nr in (170, 171):
                        warn_on_once(m, ("rcu_sync_exit", line_nr), f"kernel/rcu/sync.c:{line_nr} rcu_sync_exit")
                    m.mem_hotplug_lock_unbalanced = True
                raise KernelError(errno.EBUSY, line)
            raise KernelBug(f"__remove_memory: BUG() (v5.2 cannot fail): {line}")
    altmaps = memmap_on_memory_remove_check(m, start, size)  # v5.13+: Refuse / mixed altmaps (H5)
    # arch_remove_memory would fault on an unmapped first struct page (§6.1); checked before
    # the block devices go, so the KernelBug leaves everything as it was
    _check_first_page(m, start >> C.PAGE_SHIFT, "remove_memory: arch_remove_memory")
    if m.model.memory_blocks_after_arch_add:
        MB.remove_memory_block_devices(m, start, size)
    arch_remove_memory_altmaps(m, nid, start, size, altmaps)  # v5.1: its error return is ignored (§7)
    try:
        m.iomem.release_mem_region_adjustable(start, size)
    except KernelError as e:
        if m.model.release_failure_message:
            m.log(f"Unable to release resource <{_pa(start)}-{_pa(start + size - 1)}> ({-e.errno})", "warning")
        elif e.errno == errno.EBUSY:
            # v5.10+: __adjust_resource failing is WARN_ON_ONCE; a range no resource holds is silent
            warn_on_once(m, ("release_mem_region_adjustable",), "kernel/resource.c release_mem_region_adjustable")
    offline_nid = nid if m.model.remove_memory_has_nid else last_nid
    if offline_nid >= 0:
        try_offline_node(m, offline_nid)
    m.sync_core_dmesg()


def pfn_to_online_page(m, pfn) -> bool:
    """``pfn_to_online_page(pfn)``: True when it gives the struct page, False for NULL.

    Before v5.12 the macro of include/linux/memory_hotplug.h (§4.3; read at 5.3.0, 5.4.0,
    5.11.0): the section number is below NR_MEM_SECTIONS and the section is online -- no
    ``pfn_valid``, no sub-section test, so a ZONE_DEVICE pfn sharing an online section counts.
    From v5.12 (``model.pfn_to_online_page_subsection``) the function of mm/memory_hotplug.c
    (read at 5.12.9 and 6.12.0; later-eras-hotplug-evidence.md §1 row 5.12): then also the
    sub-section bit of the usage (``pfn_section_valid``, which ignores SECTION_IS_EARLY: a hole
    sub-section of a boot section is not online; a NULL usage is dereferenced before v6.10,
    KernelBug, and is "not valid" from v6.10), and in a section with both SECTION_IS_ONLINE and
    SECTION_TAINT_ZONE_DEVICE (``online_device_section``, set by
    :func:`move_pfn_range_to_zone`) a pfn that ``get_dev_pagemap`` finds is not online."""
    pfn = K.index(pfn, "pfn")
    if pfn < 0:
        return False
    nr = pfn >> C.PFN_SECTION_SHIFT
    S = m.sections
    if nr >= S.nr_mem_sections or not S.online_section_nr(nr):
        return False
    if not m.model.pfn_to_online_page_subsection:
        return True
    if S.section_usage(nr) is None:
        if m.model.pfn_section_valid_null_safe:
            return False
        raise KernelBug(f"pfn_to_online_page({pfn:#x}): pfn_section_valid dereferences the NULL usage of "
                        f"online section {nr}")
    if not S.subsection_map(nr) >> C.subsection_map_index(pfn) & 1:
        return False
    if not S.section_mem_map(nr) & C.SECTION_TAINT_ZONE_DEVICE:
        return True
    # the slow path: the pgmap lookup lives in the device-memory layer, above this one; a
    # machine without it (a bare MachineState) has no pgmap
    get_dev_pagemap = getattr(m, "get_dev_pagemap", None)
    return get_dev_pagemap is None or get_dev_pagemap(pfn) is None


# ---------------------------------------------------------------------------------------------
# kmem.md K §5.1 step 5: driver-managed System RAM (v5.8+)

#: ``IORESOURCE_SYSRAM_DRIVER_MANAGED`` (include/linux/ioport.h 5.8.1 .. 6.12.0): System RAM
#: that only a driver adds (kexec and ``/sys/firmware/memmap`` leave it alone)
IORESOURCE_SYSRAM_DRIVER_MANAGED = 0x02000000


def add_memory_driver_managed(m, nid, start, size, resource_name: str, flags: int = 0) -> None:
    """``add_memory_driver_managed(nid, start, size, resource_name, mhp_flags)``
    (mm/memory_hotplug.c 5.8.1, 5.10.44, 5.15.16, 6.12.0; kmem.md K §5.1 step 5, K §5.2): a
    name that is not ``"System RAM (...)"`` is -EINVAL before anything; then
    :func:`register_memory_resource` (its errors and pr_debug line; the busy resource is
    named ``resource_name`` and flagged IORESOURCE_SYSRAM_DRIVER_MANAGED, so no firmware
    memmap entry is made) and :func:`add_memory_resource`; the resource is released again on
    any error.  ``flags``: the ``MHP_*`` flags the hotplug core takes (``MHP_MEMMAP_ON_MEMORY``,
    6.8 kmem); ``MHP_NID_IS_MGID`` is resolved by the caller, which passes the group's node
    as ``nid`` (kmem.md K §5.3)."""
    nid = K.check_nid(nid)
    start = K.unsigned(start, "start")
    size = K.unsigned(size, "size")
    flags = K.unsigned(flags, "flags")
    if not isinstance(resource_name, str):
        raise TypeError(f"resource_name must be a str, not {type(resource_name).__name__}")
    if not (resource_name.startswith("System RAM (") and resource_name.endswith(")")):
        raise KernelError(errno.EINVAL, f"add_memory_driver_managed: resource name {resource_name!r} is not "
                                        f"\"System RAM (...)\"")
    res = register_memory_resource(m, start, size)
    res.name = resource_name
    res.flags |= IORESOURCE_SYSRAM_DRIVER_MANAGED
    try:
        if flags:
            add_memory_resource(m, nid, res, flags)  # the core with MHP flags (H5)
        else:
            add_memory_resource(m, nid, res)
    except BaseException:
        if res.parent is not None:
            m.iomem.release(res)
        raise


__all__ += ["add_memory_driver_managed", "IORESOURCE_SYSRAM_DRIVER_MANAGED"]
