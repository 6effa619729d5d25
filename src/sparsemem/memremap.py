"""Device memory: ``devm_memremap_pages`` / release / ``get_dev_pagemap`` (kernel/memremap.c of
v5.1/v5.2, mm/memremap.c of v5.3) over the :class:`~sparsemem.state.MachineState`.  Spec:
docs/spec/memremap-nvdimm.md ("MN") §6, §6.5, §6.6, §7; later releases: later-eras-nvdimm.md
§13-§15 and later-eras-nvdimm-evidence.md rows R5, R12 (texts, ``memremap_msgs``) and R14
(``vmemmap_shift``, ``compound_devmap``); era differences and failure semantics: docs/memremap.md.
"""

from __future__ import annotations

import bisect
import builtins
import errno
from typing import Optional

from . import constants as C
from . import hotplug as hp
from . import printk
from ._common import strict_int
from .errors import KernelError
from .resource import REGION_DISJOINT, REGION_INTERSECTS, REGION_MIXED

__all__ = ["DevPagemap", "memremap_pages", "memunmap_pages", "get_dev_pagemap", "PGMAP_TYPES",
           "pgmap_index"]

#: ``enum memory_type`` values the simulation accepts (MEMORY_DEVICE_*).
PGMAP_TYPES = ("fsdax", "devdax", "private", "p2pdma")

SECTION_SIZE = C.SECTION_SIZE


# byte-address rounding (memremap.c's align_start/align_end); not pfn.py's _sec_dn/_sec_up,
# which go through PHYS_PFN like PHYS_SECTION_ALIGN_DOWN/UP: keep the two pairs apart
def _sec_dn(addr: int) -> int:
    return addr & ~(SECTION_SIZE - 1)


def _sec_up(addr: int) -> int:
    return (addr + SECTION_SIZE - 1) & ~(SECTION_SIZE - 1)


def _pr(start: int, end: int) -> str:
    """``%pr`` of an IORESOURCE_MEM resource: ``[mem 0x...-0x... flags 0x200]``."""
    return f"[mem {start:#010x}-{end:#010x} flags 0x200]"


class DevPagemap:
    """``struct dev_pagemap``: one live device memory range.

    ``start``/``end`` (inclusive) are ``pgmap->res``; ``mapped_start``/``mapped_size`` the range
    given to ``arch_add_memory`` (section-widened before v5.3, MN §6.1 step 1; exact after,
    §6.2); ``altmap`` the ``vmem_altmap`` (or None); ``pfn_first``/``pfn_end`` the refcounted
    pfns (MN §5, §6.1 step 8); ``dev`` the owning device name used in messages; ``owner`` the
    driver object whose devres action releases it (a namespace), or None for a caller's own map.
    ``memmap_ram``: the struct-page bytes that adding this range populated from System RAM
    (``vmemmap_stats()["memmap_ram_bytes"]`` after minus before; adding only ever populates,
    MN §7.4, and releasing the maps in reverse order gives back exactly these bytes).
    """

    __slots__ = ("type", "start", "end", "altmap", "nid", "dev", "mapped_start", "mapped_size",
                 "pfn_first", "pfn_end", "init_start_pfn", "live", "owner", "memmap_ram", "vmemmap_shift")

    def __init__(self, type, start, end, altmap, nid, dev, mapped_start, mapped_size, vmemmap_shift=0):
        self.type = type
        self.start = start
        self.end = end
        self.altmap = altmap
        self.nid = nid
        self.dev = dev
        self.mapped_start = mapped_start
        self.mapped_size = mapped_size
        off = altmap.offset() if altmap is not None else 0
        self.pfn_first = C.PHYS_PFN(start) + off
        self.pfn_end = C.PHYS_PFN(end + 1)
        # memmap_init_zone_device starts at the first data pfn with an altmap (MN §5)
        self.init_start_pfn = (altmap.base_pfn + off) if altmap is not None else C.PHYS_PFN(mapped_start)
        self.live = True
        self.owner = None
        self.memmap_ram = 0
        #: ``pgmap->vmemmap_shift`` (v5.17+): pages are compound pages of 2^shift base pages
        self.vmemmap_shift = vmemmap_shift

    @property
    def size(self) -> int:
        return self.end - self.start + 1

    @property
    def res(self) -> tuple[int, int]:
        return (self.start, self.end)

    @property
    def nr_pages(self) -> int:
        return self.mapped_size >> C.PAGE_SHIFT

    def to_dict(self) -> dict:
        a = self.altmap
        return {
            "dev": self.dev, "type": self.type, "start": self.start, "end": self.end,
            "mapped_start": self.mapped_start, "mapped_size": self.mapped_size,
            "pfn_first": self.pfn_first, "pfn_end": self.pfn_end, "vmemmap_shift": self.vmemmap_shift,
            "altmap": None if a is None else dict(base_pfn=a.base_pfn, reserve=a.reserve, free=a.free,
                                                  align=a.align, alloc=a.alloc),
        }

    def __repr__(self):
        return (f"DevPagemap({self.dev or '?'} {self.type} [mem {self.start:#x}-{self.end:#x}] "
                f"mapped {self.mapped_start:#x}+{self.mapped_size:#x}{' altmap' if self.altmap else ''})")


# ------------------------------------------------------------------------------ pfn index (§6.5)
class _PgmapIndex:
    """``pgmap_array``: an XArray of pfn -> pgmap, with ``xa_store_range`` that overwrites
    silently and ``xa_erase`` over a range (MN §6.5).  Kept as sorted disjoint intervals."""

    def __init__(self):
        self.starts: list[int] = []
        self.items: list[tuple[int, int, DevPagemap]] = []  # (first, last, pgmap)

    def load(self, pfn: int) -> Optional[DevPagemap]:
        i = bisect.bisect_right(self.starts, pfn) - 1
        if i >= 0:
            lo, hi, pg = self.items[i]
            if lo <= pfn <= hi:
                return pg
        return None

    def _cut(self, lo: int, hi: int) -> None:
        """Erase pfns [lo, hi]: trim or drop the (contiguous run of) intervals that overlap."""
        i = bisect.bisect_right(self.starts, lo) - 1
        if i < 0 or self.items[i][1] < lo:
            i += 1
        j = bisect.bisect_right(self.starts, hi)
        if i >= j:
            return
        keep = []
        a, _, pg = self.items[i]
        if a < lo:
            keep.append((a, lo - 1, pg))
        _, b, pg = self.items[j - 1]
        if b > hi:
            keep.append((hi + 1, b, pg))
        self.items[i:j] = keep
        self.starts[i:j] = [t[0] for t in keep]

    def store_range(self, lo: int, hi: int, pg: DevPagemap) -> None:
        self._cut(lo, hi)
        i = bisect.bisect_left(self.starts, lo)
        self.items.insert(i, (lo, hi, pg))
        self.starts.insert(i, lo)

    def erase_range(self, lo: int, hi: int) -> None:
        self._cut(lo, hi)

    def snapshot(self):
        return tuple((a, b, pg.dev, pg.start) for a, b, pg in self.items)


def pgmap_index(machine) -> _PgmapIndex:
    """The machine's ``pgmap_array`` (``MachineState.pgmap_index``, created on first use)."""
    idx = machine.pgmap_index
    if idx is None:
        idx = machine.pgmap_index = _PgmapIndex()
    return idx


def make_altmap(machine, base_pfn: int, reserve: int, free: int):
    """A fresh ``struct vmem_altmap`` (align = alloc = 0) of the machine's core type (MN §6.6)."""
    return machine.altmap_cls(base_pfn, reserve, free, 0, 0)


def get_dev_pagemap(machine, pfn) -> Optional[DevPagemap]:
    """``get_dev_pagemap(pfn, NULL)``: the live pgmap whose index entry covers ``pfn`` (MN §6.5)."""
    strict_int(pfn, "pfn")
    if pfn < 0:
        return None
    pg = pgmap_index(machine).load(pfn)
    return pg if pg is not None and pg.live else None


def _check_args(start, size, type, altmap, nid, byte_range=False):
    if not (builtins.type(start) is int and builtins.type(size) is int and builtins.type(nid) is int
            and start >= 0 and size >= 0 and nid >= 0):
        for name, v in (("start", start), ("size", size), ("nid", nid)):
            strict_int(v, name, minimum=0)
    if size == 0:
        raise ValueError("size must be > 0")
    if start + size > 1 << 64:
        raise ValueError(f"range {start:#x}+{size:#x} runs past the 64-bit address space")
    if not byte_range and (start | size) & (C.PAGE_SIZE - 1):
        raise ValueError(f"start {start:#x} and size {size:#x} must be page (4 KiB) aligned")
    if type not in PGMAP_TYPES:
        raise ValueError(f"unknown pgmap type {type!r}; expected one of {PGMAP_TYPES}")
    if altmap is not None and not hasattr(altmap, "alloc_block_buf"):
        raise TypeError(f"altmap must be a VmemAltmap, not {type_name(altmap)}")


def type_name(v) -> str:
    return builtins.type(v).__name__


def _site(machine) -> str:
    """The function the memremap WARNs name (their WARNING line): ``devm_memremap_pages``
    (v5.1-v5.3), ``memremap_pages`` (v5.4-v5.9), ``pagemap_range`` (v5.10+; R5, R12)."""
    fn = {"5.3": "devm_memremap_pages", "5.4": "memremap_pages"}.get(machine.model.memremap_msgs, "pagemap_range")
    return f"{machine.model.memremap_file} {fn}"


def _check_shift(machine, vmemmap_shift) -> int:
    """``vmemmap_shift`` of :func:`memremap_pages`: an int >= 0, and 0 before v5.17
    (``compound_devmap``; api.md: a nonzero value before 5.17 is a ValueError naming the
    release)."""
    if builtins.type(vmemmap_shift) is not int:
        strict_int(vmemmap_shift, "vmemmap_shift", minimum=0)
    if not 0 <= vmemmap_shift < 64:
        raise ValueError(f"vmemmap_shift must be in [0, 64), not {vmemmap_shift}")
    if vmemmap_shift and not machine.model.compound_devmap:
        raise ValueError(f"vmemmap_shift={vmemmap_shift}: ZONE_DEVICE compound pages (pgmap->vmemmap_shift) "
                         f"exist from 5.17; this machine runs {machine.model.name}")
    return vmemmap_shift


def memremap_pages(machine, start: int, size: int, *, type: str = "fsdax", altmap=None, nid: int = 0,
                   dev: Optional[str] = None, byte_range: bool = False, owner=None,
                   vmemmap_shift: int = 0) -> DevPagemap:
    """``devm_memremap_pages`` (MN §6.1 v5.1/v5.2, §6.2 v5.3): map ``[start, start+size)`` as
    ZONE_DEVICE memory and return its :class:`DevPagemap`.

    Steps, in the kernel's order: (legacy) widen to sections; conflict probes at the first and
    last pfn of the (widened) range -> ``-ENOMEM`` with ``"<dev>: Conflicting mapping in same
    section"``; ``region_intersects`` with top-level System RAM -> WARN_ONCE
    ``"devm_memremap_pages attempted on mixed|ram region [mem ...]"`` and ``-ENXIO``; store
    the exact pfn range in the index; ``arch_add_memory`` (``add_pages`` for device-private)
    with the altmap -- its ``-EINVAL`` ("memory add fail, invalid altmap", "Misaligned
    __add_pages ...") and ``-ENOMEM``/``-EEXIST`` propagate; ``move_pfn_range_to_zone``
    (ZONE_DEVICE) and ``memmap_init_zone_device``.

    On an ``arch_add_memory`` failure the index entries are erased but the sections added
    before the failing one **stay** (MN §6.1 step 9, §6.2: the kernel never calls
    ``arch_remove_memory`` on that path).  Every earlier failure changes nothing.

    ``byte_range`` (used by the nvdimm driver, whose ``pgmap->res`` comes from on-media
    offsets): accept a range that is not page aligned, as the kernel does -- ``arch_add_memory``
    then works on ``PHYS_PFN(start)`` and ``PHYS_PFN(size)``, so in v5.3 such a range fails
    ``check_pfn_span`` with -EINVAL ("Misaligned __add_pages ...", MN §6.2 step 2).  Without it
    (the public API) a misaligned range is a ``ValueError``.  A range that ends beyond the
    machine's physical address space is a ``ValueError`` raised before anything (the pfn
    index included) is touched.

    The texts follow ``model.memremap_msgs`` (R5, R12): v5.4 drops the device prefix of the
    conflict WARN and names ``memremap_pages`` in the RAM one; v5.10 prints ``"attempted on %s
    region %#llx-%#llx"`` from ``pagemap_range``.  ``vmemmap_shift`` (v5.17+, R14) is recorded
    in the pgmap; the memmap it would save from v5.19 (compound-page dedup in the cores,
    later-eras-nvdimm-evidence.md §6 step 9) is not modelled: the vmemmap is populated as before.
    """
    _check_args(start, size, type, altmap, nid, byte_range)
    _check_shift(machine, vmemmap_shift)
    m = machine.model
    # 5.1-5.3 dev_WARN names the device; from 5.4 a plain WARN (R5)
    devp = f"{dev}: " if dev and m.memremap_msgs == "5.3" else ""
    end = start + size - 1
    if m.memremap_expands_to_sections:
        a0, a1 = _sec_dn(start), _sec_up(end + 1)           # MN §6.1 step 1
    else:
        a0, a1 = start, end + 1                               # MN §6.2
    limit = machine.sections.pfn_limit
    if C.PHYS_PFN(a1 - 1) >= limit:
        raise ValueError(f"devm_memremap_pages: range [mem {a0:#x}-{a1 - 1:#x}] exceeds the "
                         f"{machine.sections.max_physmem_bits}-bit physical address space")
    # step 2: the two endpoint probes (get_dev_pagemap on the first and the last pfn)
    idx = pgmap_index(machine)
    for probe in (C.PHYS_PFN(a0), C.PHYS_PFN(a1 - 1)):
        other = idx.load(probe)         # get_dev_pagemap (probe is a pfn >= 0)
        if other is not None and other.live:
            # dev_WARN: banner, message, WARNING line
            printk.warn(machine, _site(machine), f"{devp}Conflicting mapping in same section")
            raise KernelError(errno.ENOMEM,
                              f"devm_memremap_pages {_pr(start, end)}: pfn {probe:#x} is already mapped by "
                              f"{other.dev or 'a pgmap'} [mem {other.start:#x}-{other.end:#x}]: "
                              f"Conflicting mapping in same section")
    # step 3: System RAM (top-level resources only)
    is_ram = machine.iomem.region_intersects_ram(a0, a1 - a0)
    if is_ram != REGION_DISJOINT:
        word = "mixed" if is_ram == REGION_MIXED else "ram"
        if m.memremap_msgs == "5.10":       # pagemap_range: range start and inclusive end
            line = f"attempted on {word} region {start:#x}-{end:#x}"
        else:                               # "%s attempted on %s region %pr" with __func__
            fn = "devm_memremap_pages" if m.memremap_msgs == "5.3" else "memremap_pages"
            line = f"{fn} attempted on {word} region {_pr(start, end)}"
        printk.warn_once(machine, ("devm_memremap_pages", "ram"), _site(machine), line)
        raise KernelError(errno.ENXIO, f"{line}: [mem {a0:#x}-{a1 - 1:#x}] "
                                       f"{'overlaps' if is_ram == REGION_INTERSECTS else 'mixes'} System RAM")
    pg = DevPagemap(type, start, end, altmap, nid, dev, a0, a1 - a0, vmemmap_shift)
    pg.owner = owner
    lo, hi = C.PHYS_PFN(start), C.PHYS_PFN(end)
    idx.store_range(lo, hi, pg)                               # step 4 (exact range)
    ram_before = machine.sections.vmemmap_stats()["memmap_ram_bytes"]
    try:
        if type == "private":
            # x86 add_pages (no direct map)
            hp.arch_add_pages(machine, nid, C.PHYS_PFN(a0), (a1 - a0) >> C.PAGE_SHIFT, altmap)
        else:
            hp.arch_add_memory(machine, nid, a0, a1 - a0, altmap)
    except BaseException:
        # unwind on any exception: xarray erased; added sections stay (§6.1 step 9)
        idx.erase_range(lo, hi)
        pg.live = False
        raise
    pg.memmap_ram = machine.sections.vmemmap_stats()["memmap_ram_bytes"] - ram_before
    start_pfn, nr = C.PHYS_PFN(a0), (a1 - a0) >> C.PAGE_SHIFT
    hp.move_pfn_range_to_zone(machine, nid, C.ZONE_DEVICE, start_pfn, nr, altmap)
    first = pg.init_start_pfn
    if first < start_pfn + nr:
        machine.sections.memmap_init_zone(nid, C.ZONE_DEVICE, first, start_pfn + nr - first)
    pgs = machine.pgmaps
    keys = [p.start for p in pgs]
    pgs.insert(bisect.bisect_right(keys, start), pg)
    return pg


def memunmap_pages(machine, pgmap: DevPagemap, *, owner=None) -> None:
    """``devm_memremap_pages_release`` (MN §6.3): ``arch_remove_memory`` over the mapped range
    (legacy: the whole widened sections, including ones silently shared with another pgmap --
    the **DERIVED** hazard of §6.3), erase the index range, WARN_ONCE
    ``"<dev>: devm_memremap_pages_release: failed to free all reserved pages"`` (once per
    boot) if altmap pages are still allocated.
    Device-private memory is removed with ``__remove_pages`` and a NULL altmap (MN §6.3).
    Spans: v5.3 shrinks the ZONE_DEVICE zone and the node during the removal; from v5.4 the
    ZONE_DEVICE zone and so the node keep the range (``model.shrink_skips_zone_device``); from
    v5.6 ``remove_pfn_range_from_zone`` runs first and poisons the range's memmap
    (``model.shrink_at_memunmap``; later-eras-hotplug.md A9).

    A pgmap mapped for a driver (``owner`` given to :func:`memremap_pages`, e.g. a bound fsdax
    or devdax namespace) is released only by that owner: the kernel registers
    ``devm_memremap_pages_release`` as a devres action of the driver's device, run when it
    unbinds, and ``devm_memunmap_pages(dev, pgmap)`` with any other device finds no such
    action and releases nothing (``devm_release_action``, v5.1-v5.3).  Any other caller gets
    ``KernelError(EBUSY)`` with nothing changed; disable the namespace instead."""
    if not isinstance(pgmap, DevPagemap):
        raise TypeError(f"expected a DevPagemap, not {type_name(pgmap)}")
    if not pgmap.live or pgmap not in machine.pgmaps:
        raise KernelError(errno.EINVAL, f"memunmap_pages: {pgmap!r} is not live on this machine")
    if pgmap.owner is not None and owner is not pgmap.owner:
        raise KernelError(errno.EBUSY, f"memunmap_pages: [mem {pgmap.start:#x}-{pgmap.end:#x}] is devm-managed by "
                                       f"{pgmap.dev or 'its driver'}: it is released when that device unbinds")
    if machine.model.shrink_at_memunmap:
        # v5.6+ (mm/memremap.c 5.6.4; 5.5.0-rc5 lacks it): remove_pfn_range_from_zone over
        # pgmap->res with the zone of the first data page, before the removal; for ZONE_DEVICE it
        # only poisons the range's memmap (later-eras-hotplug.md A9).  v5.4/v5.5 leave the
        # ZONE_DEVICE span alone too (the early return of __remove_zone, hotplug.remove_zone)
        zone = machine.page_zone(pgmap.pfn_first) if pgmap.pfn_first < pgmap.pfn_end else None
        if zone is None:
            zone = machine.node_data(pgmap.nid).zones[C.ZONE_DEVICE]
        hp.remove_pfn_range_from_zone(machine, zone, C.PHYS_PFN(pgmap.start), pgmap.size >> C.PAGE_SHIFT)
    if pgmap.type == "private":
        # MEMORY_DEVICE_PRIVATE: __remove_pages with a NULL altmap (MN §6.3; sparse-hotplug §8.7)
        hp.remove_pages(machine, C.ZONE_DEVICE, C.PHYS_PFN(pgmap.mapped_start), pgmap.nr_pages, None)
    else:
        hp.arch_remove_memory(machine, pgmap.nid, pgmap.mapped_start, pgmap.mapped_size, pgmap.altmap)
    pgmap_index(machine).erase_range(C.PHYS_PFN(pgmap.start), C.PHYS_PFN(pgmap.end))
    pgmap.live = False
    machine.pgmaps.remove(pgmap)
    if pgmap.altmap is not None and pgmap.altmap.alloc:
        if machine.model.memremap_msgs == "5.3":
            # a device WARN_ONCE whose text carries the releasing function's name: printed once
            # per boot, prefixed with the device (MN §6.3)
            printk.warn_once(machine, ("devm_memremap_pages_release", "altmap.alloc"),
                             f"{machine.model.memremap_file} devm_memremap_pages_release",
                             f"{pgmap.dev + ': ' if pgmap.dev else ''}devm_memremap_pages_release: "
                             f"failed to free all reserved pages")
        else:
            # v5.4+: a plain WARN_ONCE in memunmap_pages (R5; mm/memremap.c 5.4.0 .. 6.12.0)
            printk.warn_once(machine, ("devm_memremap_pages_release", "altmap.alloc"),
                             f"{machine.model.memremap_file} memunmap_pages", "failed to free all reserved pages")
