"""The pure-Python twin of the compiled core: ``mm/sparse.c`` written to be read.

:class:`SectionTable` here has the same constructor, methods and answers as
:class:`sparsemem.SectionTable` (``sparsemem._sparsecore``).  It is the oracle of the
differential tests (tests/test_core_statemachine.py) and the baseline of the benchmarks.
Where the compiled core keeps derived words and running counters for speed, this module
recomputes everything from the kernel's own fields, as the kernel's predicates do: a
disagreement between the two is a bug in one of them.

Section numbers in the docstrings refer to docs/spec/sparse-hotplug.md ("§") and
memremap-nvdimm.md ("MN §").
"""

from __future__ import annotations

import errno
import sys

import numpy as np

from . import _common as K
from . import constants as C
from ._common import U64 as _U64
from ._common import index as _index
from ._common import unsigned as _unsigned
from .errors import KernelBug
from .kernel import DEFAULT_KERNEL, as_model

__all__ = ["SectionTable", "VmemAltmap"]

_ALL = _U64  # all 64 sub-sections
_HUGE = (C.VMM_BOOT_PMD, C.VMM_PMD_RAM, C.VMM_PMD_ALTMAP)  # memmap mapped by one 2 MiB PMD


# phases of the boot protocol (§3): memory_present* -> sparse_init -> subsection_map_init*
_FRESH, _PRESENT, _BOOTED = 0, 1, 2


def _popcount(x: int) -> int:
    return x.bit_count()


def subsection_mask(pfn: int, nr_pages: int) -> int:
    """``subsection_mask_set`` for ``nr_pages >= 1`` pfns inside one section (§2.3)."""
    first = (pfn & (C.PAGES_PER_SECTION - 1)) >> C.PFN_SUBSECTION_SHIFT
    last = ((pfn + nr_pages - 1) & (C.PAGES_PER_SECTION - 1)) >> C.PFN_SUBSECTION_SHIFT
    return ((1 << (last + 1)) - 1) & ~((1 << first) - 1)


class VmemAltmap:
    """``struct vmem_altmap`` and its bump allocator (MN §6.6).

    ``base_pfn`` is the first pfn the altmap manages, ``reserve`` pfns at its start are never
    handed out, ``free`` pfns are available for memmap, ``align`` counts pfns skipped for
    alignment (never decremented) and ``alloc`` the pfns currently handed out.
    """

    __slots__ = ("base_pfn", "reserve", "free", "align", "alloc")

    def __init__(self, base_pfn: int, reserve: int = 0, free: int = 0, align: int = 0, alloc: int = 0):
        self.base_pfn = _unsigned(base_pfn, "base_pfn")
        self.reserve = _unsigned(reserve, "reserve")
        self.free = _unsigned(free, "free")
        self.align = _unsigned(align, "align")
        self.alloc = _unsigned(alloc, "alloc")

    def offset(self) -> int:
        """``vmem_altmap_offset``: pfns from ``base_pfn`` that are not device data."""
        return self.reserve + self.free

    def next_pfn(self) -> int:
        """``vmem_altmap_next_pfn``."""
        return (self.base_pfn + self.reserve + self.alloc + self.align) & _U64

    def nr_free(self) -> int:
        """``vmem_altmap_nr_free``: pfns still available (never negative)."""
        allocated = self.alloc + self.align
        return self.free - allocated if self.free > allocated else 0

    def alloc_block_buf(self, nr_pfns: int):
        """``altmap_alloc_block_buf``: first pfn of ``nr_pfns`` aligned pfns, or None."""
        nr_pfns = _unsigned(nr_pfns, "nr_pfns")
        if nr_pfns == 0:
            return None
        nr_align = nr_pfns & -nr_pfns  # largest power of two dividing nr_pfns
        pfn = self.next_pfn()
        pad = (-pfn) % nr_align
        if nr_pfns + pad > self.nr_free():
            return None
        self.alloc += nr_pfns
        self.align += pad
        return pfn + pad

    def free_pfns(self, nr_pfns: int) -> None:
        """``vmem_altmap_free``: ``alloc -= nr`` (unsigned, as in the kernel)."""
        self.alloc = (self.alloc - nr_pfns) & _U64

    def _fields(self):
        return (self.base_pfn, self.reserve, self.free, self.align, self.alloc)

    def __eq__(self, other):
        if not hasattr(other, "base_pfn"):
            return NotImplemented
        return self._fields() == (other.base_pfn, other.reserve, other.free, other.align, other.alloc)

    def __repr__(self):
        return "VmemAltmap(base_pfn=0x%x, reserve=%d, free=%d, align=%d, alloc=%d)" % self._fields()

    def __reduce__(self):
        return (type(self), self._fields())


class _Section:
    """One ``struct mem_section`` with its usage and the simulation's bookkeeping."""

    __slots__ = ("mem_map", "subsection_map", "init_mask", "pte_mask", "fd_mask", "zn", "usemap",
                 "nid", "usage", "vmm")

    def __init__(self):
        self.mem_map = 0          # section_mem_map: flags | encoded memmap (or early nid)
        self.subsection_map = 0   # usage->subsection_map
        self.init_mask = 0        # sub-sections whose struct pages are initialised
        self.pte_mask = 0         # VMM_PTE: sub-sections whose 8 memmap pages exist
        self.fd_mask = 0          # huge PMD: sub-sections of memmap filled with 0xFD
        self.zn = None            # 64 zone/nid words once memmap_init_zone touched it
        self.usemap = 0           # usage->pageblock_flags (256 bits)
        self.nid = 0
        self.usage = C.USAGE_NONE
        self.vmm = C.VMM_NONE


class SectionTable:
    """``mem_section[]`` of one machine (pure Python): see :class:`sparsemem.SectionTable`."""

    def __init__(self, max_physmem_bits: int = 46, kernel: str = DEFAULT_KERNEL):
        bits = K.check_bits(max_physmem_bits)
        self._model = as_model(kernel)
        self._usage_free_unless_early = K.usage_freed_unless_early(self._model)
        self._taint = K.taint_zone_device(self._model)
        self._bits = bits
        self._nr_sections = 1 << (bits - C.SECTION_SIZE_BITS)
        self._pfn_limit = 1 << (bits - C.PAGE_SHIFT)
        self._roots: dict[int, list] = {}          # root number -> SECTIONS_PER_ROOT sections
        self._highest_present = 0                   # __highest_present_section_nr
        self._phase = _FRESH
        self._sparse_init_done = False
        self._warned_once: set = set()
        self._vmemmap_base = C.vmemmap_base(bits)
        self._page_offset = C.page_offset(bits)
        self.dmesg: list[str] = []

    # ------------------------------------------------------------------ properties
    @property
    def kernel(self) -> str:
        return self._model.name

    @property
    def model(self):
        return self._model

    @property
    def max_physmem_bits(self) -> int:
        return self._bits

    @property
    def nr_mem_sections(self) -> int:
        return self._nr_sections

    @property
    def nr_section_roots(self) -> int:
        return -(-self._nr_sections // C.SECTIONS_PER_ROOT)

    @property
    def pfn_limit(self) -> int:
        """First pfn beyond the physical address space (``1 << (MAX_PHYSMEM_BITS - 12)``)."""
        return self._pfn_limit

    @property
    def highest_present_section_nr(self) -> int:
        return self._highest_present

    @property
    def nr_roots_allocated(self) -> int:
        return len(self._roots)

    @property
    def nbytes(self) -> int:
        """Host bytes this table holds (a Python estimate; not comparable with the compiled one)."""
        total = sys.getsizeof(self.__dict__) + sys.getsizeof(self._roots)
        for root in self._roots.values():
            total += sys.getsizeof(root) + len(root) * _Section.__basicsize__
        return total

    # ------------------------------------------------------------------ section access
    def _nr_to_section(self, nr: int):
        """``__nr_to_section``: None when the root is not allocated (or nr is out of range)."""
        if nr < 0 or nr >= self._nr_sections:
            return None
        root = self._roots.get(nr // C.SECTIONS_PER_ROOT)
        if root is None:
            return None
        return root[nr % C.SECTIONS_PER_ROOT]

    def _sparse_index_init(self, nr: int) -> None:
        """``sparse_index_init``: allocate the root holding section ``nr`` (§3.2)."""
        r = nr // C.SECTIONS_PER_ROOT
        if r not in self._roots:
            self._roots[r] = [_Section() for _ in range(C.SECTIONS_PER_ROOT)]

    def _section_arg(self, nr) -> int:
        return _index(nr, "section number")

    def present_section_nr(self, nr) -> bool:
        """``present_section_nr``: SECTION_MARKED_PRESENT is set."""
        ms = self._nr_to_section(self._section_arg(nr))
        return bool(ms and ms.mem_map & C.SECTION_MARKED_PRESENT)

    def valid_section_nr(self, nr) -> bool:
        """``valid_section_nr``: SECTION_HAS_MEM_MAP is set."""
        ms = self._nr_to_section(self._section_arg(nr))
        return bool(ms and ms.mem_map & C.SECTION_HAS_MEM_MAP)

    def online_section_nr(self, nr) -> bool:
        """``online_section_nr``: SECTION_IS_ONLINE is set."""
        ms = self._nr_to_section(self._section_arg(nr))
        return bool(ms and ms.mem_map & C.SECTION_IS_ONLINE)

    def early_section_nr(self, nr) -> bool:
        """``early_section``: SECTION_IS_EARLY is set (never in the legacy era)."""
        ms = self._nr_to_section(self._section_arg(nr))
        return bool(ms and self._model.section_is_early and ms.mem_map & C.SECTION_IS_EARLY)

    def subsection_map(self, nr) -> int:
        """``usage->subsection_map`` of section ``nr`` (0 without a usage; always 0 in legacy)."""
        ms = self._nr_to_section(self._section_arg(nr))
        if ms is None or ms.usage == C.USAGE_NONE or not self._model.subsection:
            return 0
        return ms.subsection_map

    def section_mem_map(self, nr) -> int:
        """The raw ``section_mem_map`` word (flags, encoded memmap or early nid)."""
        ms = self._nr_to_section(self._section_arg(nr))
        return ms.mem_map if ms else 0

    def section_nid(self, nr) -> int:
        """Node recorded for section ``nr`` by ``memory_present``/``sparse_add_section`` (-1: none)."""
        ms = self._nr_to_section(self._section_arg(nr))
        if ms is None or not (ms.mem_map & C.SECTION_MARKED_PRESENT):
            return -1
        return ms.nid

    def section_usage(self, nr):
        """Where section ``nr``'s usage came from: ``"boot"``, ``"slab"`` or None."""
        ms = self._nr_to_section(self._section_arg(nr))
        return C.USAGE_NAMES[ms.usage] if ms else None

    def pageblock_flags(self, nr) -> int:
        """``usage->pageblock_flags`` as a 256-bit integer (4 bits per 2 MiB pageblock)."""
        ms = self._nr_to_section(self._section_arg(nr))
        return ms.usemap if ms and ms.usage != C.USAGE_NONE else 0

    def section_vmemmap(self, nr):
        """How section ``nr``'s memmap is mapped: None, "boot-pmd", "pmd-ram", "pmd-altmap", "pte"."""
        ms = self._nr_to_section(self._section_arg(nr))
        return C.VMM_NAMES[ms.vmm] if ms else None

    # ------------------------------------------------------------------ pfn queries
    def pfn_valid(self, pfn) -> bool:
        """``pfn_valid`` (§4.2): legacy = ``valid_section``; v5.3 adds the early/bitmap test."""
        pfn = _index(pfn, "pfn")
        if pfn < 0 or pfn > _U64:
            return False
        nr = pfn >> C.PFN_SECTION_SHIFT
        if nr >= self._nr_sections:
            return False
        ms = self._nr_to_section(nr)
        if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
            return False
        if not self._model.subsection:
            return True
        if ms.mem_map & C.SECTION_IS_EARLY:
            return True
        if ms.usage == C.USAGE_NONE:
            raise KernelBug(f"pfn_valid(0x{pfn:x}): section {nr} is valid but has no usage (NULL dereference)")
        return bool(ms.subsection_map >> ((pfn & (C.PAGES_PER_SECTION - 1)) >> C.PFN_SUBSECTION_SHIFT) & 1)

    __contains__ = pfn_valid

    def pfn_valid_many(self, pfns, out=None):
        """``pfn_valid`` of every element of an integer array-like, as a bool array."""
        arr, out = K.batch_args(pfns, out)
        flat = out.reshape(-1)
        for i, p in enumerate(arr.reshape(-1).tolist()):
            flat[i] = self.pfn_valid(p)
        return out

    def pfn_to_nid(self, pfn) -> int:
        """Node of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent.

        KernelBug when v5.3-v5.8 freed that struct page (:meth:`page_zonenum`)."""
        zn = self._zn(pfn)
        return -1 if zn is None else zn >> 3

    def page_zonenum(self, pfn) -> int:
        """Zone index of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent.

        KernelBug when the struct page was freed while ``pfn_valid`` stays true: a v5.3-v5.8
        partial removal from an early section (``early_partial_remove_frees_memmap``) fills
        that part of the boot memmap with 0xFD, or unmaps its PMD once all of it is 0xFD, and a
        later read gets garbage or faults (later-eras-hotplug-evidence.md §1 row 5.9, §3.3).
        The same goes for the span probes, which read the struct page too; a sub-section that
        ``memmap_init_zone`` wrote again since (a re-added range, onlined) reads normally."""
        zn = self._zn(pfn)
        return -1 if zn is None else zn & 7

    def _memmap_freed(self, ms, sub: int) -> bool:
        """The struct pages of sub-section ``sub`` of early, valid section ``ms`` were freed
        by a v5.3-v5.8 partial removal: its PMD is gone, or it holds the 0xFD marks and has not
        been initialised since."""
        if not (self._model.early_partial_remove_frees_memmap and ms.mem_map & C.SECTION_IS_EARLY):
            return False
        if ms.vmm == C.VMM_NONE:
            return True
        return bool(ms.vmm in _HUGE and ms.fd_mask >> sub & 1 and not ms.init_mask >> sub & 1)

    def _zn(self, pfn):
        pfn = _index(pfn, "pfn")
        if pfn < 0 or pfn >= self._pfn_limit:
            return None
        ms = self._nr_to_section(pfn >> C.PFN_SECTION_SHIFT)
        if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
            return None
        sub = (pfn & (C.PAGES_PER_SECTION - 1)) >> C.PFN_SUBSECTION_SHIFT
        if self._memmap_freed(ms, sub):
            raise KernelBug(K.freed_memmap_message(pfn, ms.vmm == C.VMM_NONE))
        if not ms.init_mask >> sub & 1:
            return None
        return ms.zn[sub]

    # ------------------------------------------------------------------ argument checks
    def _check_range(self, start_pfn, nr_pages, *, one_section: bool, what: str):
        return K.check_range(start_pfn, nr_pages, self._pfn_limit, self._bits, self._model.subsection,
                             one_section=one_section, what=what)

    def _enter_hotplug(self, what: str):
        if self._phase == _PRESENT:
            raise RuntimeError(f"{what}: memory_present() ran but sparse_init() has not: finish booting first")
        self._phase = _BOOTED

    def _warn(self, where: str, text: str) -> None:
        """A WARN()/WARN_ON(): the cut-here banner folded into one dmesg line."""
        self.dmesg.append(f"WARNING: at {where}: {text}")

    def _warn_once(self, key, where: str, text: str) -> None:
        if key not in self._warned_once:
            self._warned_once.add(key)
            self._warn(where, text)

    # ------------------------------------------------------------------ boot (§3)
    def memory_present(self, nid, start_pfn, end_pfn) -> None:
        """``memory_present`` (§3.1): mark the sections of a memblock range present with nid."""
        nid = K.check_nid(nid)
        start = _unsigned(start_pfn, "start_pfn")
        end = _unsigned(end_pfn, "end_pfn")
        if start > end:
            raise ValueError(f"memory_present: start_pfn 0x{start:x} > end_pfn 0x{end:x}")
        if self._phase == _BOOTED:
            raise RuntimeError("memory_present() after sparse_init() or a hot-add: boot ranges come first")
        self._phase = _PRESENT
        start &= C.PAGE_SECTION_MASK
        # mminit_validate_memmodel_limits
        if start > self._pfn_limit:
            self._warn_once(("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                            f"Start of range {start} -> {end} exceeds SPARSEMEM max {self._pfn_limit}")
            start = end = self._pfn_limit
        elif end > self._pfn_limit:
            self._warn_once(("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                            f"End of range {start} -> {end} exceeds SPARSEMEM max {self._pfn_limit}, truncating")
            end = self._pfn_limit
        for pfn in range(start, end, C.PAGES_PER_SECTION):
            nr = pfn >> C.PFN_SECTION_SHIFT
            self._sparse_index_init(nr)
            ms = self._nr_to_section(nr)
            if ms.mem_map == 0:
                ms.mem_map = (nid << self._model.section_nid_shift) | C.SECTION_IS_ONLINE
                ms.nid = nid
                ms.mem_map |= C.SECTION_MARKED_PRESENT
                self._highest_present = max(self._highest_present, nr)

    def sparse_init(self) -> None:
        """``sparse_init`` (§3.3-3.4): boot usage and a boot PMD of memmap for every present section."""
        if self._phase == _BOOTED:
            raise RuntimeError("sparse_init() runs once, before any hot-add")
        self._phase = _BOOTED
        self._sparse_init_done = True
        flags = C.SECTION_IS_EARLY if self._model.section_is_early else 0
        keep = self._model.section_map_last_bit - 1
        for nr in self._present_nrs():
            ms = self._nr_to_section(nr)
            ms.usage = C.USAGE_BOOT
            ms.subsection_map = 0
            ms.usemap = 0
            ms.vmm = C.VMM_BOOT_PMD
            ms.fd_mask = 0
            ms.init_mask = 0      # the boot memmap is poisoned until memmap_init_zone
            ms.mem_map = (ms.mem_map & keep) | self._vmemmap_base | C.SECTION_HAS_MEM_MAP | flags

    def subsection_map_init(self, pfn, nr_pages) -> None:
        """``subsection_map_init`` (§3.5): mark the boot sub-sections a memblock range covers."""
        pfn = _unsigned(pfn, "pfn")
        nr = _unsigned(nr_pages, "nr_pages")
        if not self._sparse_init_done:
            raise RuntimeError("subsection_map_init() needs sparse_init() first")
        if pfn + nr > self._pfn_limit:
            raise ValueError(f"subsection_map_init: pfn range [0x{pfn:x}-0x{pfn + nr:x}) "
                             f"exceeds max pfn 0x{self._pfn_limit:x}")
        if not self._model.subsection or nr == 0:
            return
        # check every section first: the kernel would dereference a NULL usage
        p, left = pfn, nr
        while left:
            nr_sec = p >> C.PFN_SECTION_SHIFT
            ms = self._nr_to_section(nr_sec)
            if ms is None or ms.usage == C.USAGE_NONE:
                raise KernelBug(f"subsection_map_init: section {nr_sec} (pfn 0x{p:x}) has no usage: "
                                f"the kernel dereferences NULL (range not passed to memory_present?)")
            step = min(left, C.PAGES_PER_SECTION - (p & (C.PAGES_PER_SECTION - 1)))
            p += step
            left -= step
        p, left = pfn, nr
        while left:
            step = min(left, C.PAGES_PER_SECTION - (p & (C.PAGES_PER_SECTION - 1)))
            self._nr_to_section(p >> C.PFN_SECTION_SHIFT).subsection_map |= subsection_mask(p, step)
            p += step
            left -= step

    # ------------------------------------------------------------------ vmemmap (MN §7)
    def _populate(self, ms, mask: int, full: bool, altmap) -> bool:
        """``__populate_section_memmap`` for the sub-sections ``mask`` (§5.4 step 6, MN §7.1)."""
        if not full:
            # Rule 1 (v5.3): partial sections use 4 KiB pages from RAM, even with an altmap
            if ms.vmm in (C.VMM_BOOT_PMD, C.VMM_PMD_RAM, C.VMM_PMD_ALTMAP):
                ms.fd_mask &= ~mask  # the huge mapping is reused; its memmap is rewritten
                return True
            if ms.vmm == C.VMM_NONE:
                ms.vmm = C.VMM_PTE  # one new PTE table page
                ms.pte_mask = 0
            ms.pte_mask |= mask
            return True
        if ms.vmm in (C.VMM_BOOT_PMD, C.VMM_PMD_RAM, C.VMM_PMD_ALTMAP):
            ms.fd_mask = 0
            return True
        if ms.vmm == C.VMM_PTE:
            ms.pte_mask = _ALL  # the missing PTEs are filled with RAM pages
            return True
        if altmap is not None:
            if altmap.alloc_block_buf(C.PMD_PFNS) is None:
                return False  # -ENOMEM: no fallback with an altmap
            ms.vmm = C.VMM_PMD_ALTMAP
        else:
            ms.vmm = C.VMM_PMD_RAM
        ms.fd_mask = 0
        return True

    def _free_pmd(self, ms, altmap) -> None:
        """``free_hugepage_table``: back to the altmap if one is passed, else to RAM."""
        if altmap is not None:
            altmap.free_pfns(C.PMD_PFNS)
        ms.vmm = C.VMM_NONE
        ms.fd_mask = 0

    def _depopulate(self, ms, mask: int, altmap) -> None:
        """``vmemmap_free`` of the memmap of sub-sections ``mask`` (MN §7.2)."""
        if ms.vmm in (C.VMM_BOOT_PMD, C.VMM_PMD_RAM, C.VMM_PMD_ALTMAP):
            if mask == _ALL:
                self._free_pmd(ms, altmap)
            else:
                ms.fd_mask |= mask  # partially covered PMD: filled with 0xFD
                if ms.fd_mask == _ALL:
                    self._free_pmd(ms, altmap)
        elif ms.vmm == C.VMM_PTE:
            ms.pte_mask &= ~mask
            if ms.pte_mask == 0:
                ms.vmm = C.VMM_NONE  # the empty PTE table is freed

    def _free_whole_memmap(self, ms) -> None:
        """``free_map_bootmem`` of the whole section (no altmap)."""
        ms.vmm = C.VMM_NONE
        ms.fd_mask = 0
        ms.pte_mask = 0

    def _free_usage(self, ms, nr: int) -> None:
        if ms.usage == C.USAGE_BOOT:
            self.dmesg.append(
                f"BUG: kfree() of the boot-time mem_section_usage of section {nr} "
                f"(memblock memory: the v5.3 re-added early section bug)"
            )
        ms.usage = C.USAGE_NONE
        ms.subsection_map = 0
        ms.usemap = 0

    # ------------------------------------------------------------------ hotplug (§5-§7)
    def _encoded_memmap(self, nr: int, start_pfn: int) -> int:
        sec_pfn = nr << C.PFN_SECTION_SHIFT
        if start_pfn != sec_pfn and self._model.subsection_memmap_kaddr_bug:
            # v5.3-v5.6: pfn_to_kaddr(section start) encoded (§5.3 step 5)
            return (self._page_offset + sec_pfn * (C.PAGE_SIZE - C.STRUCT_PAGE_SIZE)) & _U64
        return self._vmemmap_base

    def _mark_present(self, ms, nr: int, nid: int) -> None:
        ms.mem_map |= C.SECTION_MARKED_PRESENT
        ms.nid = nid
        if nr > self._highest_present:
            self._highest_present = nr

    def _section_activate(self, nr: int, ms, nid: int, pfn: int, nr_pages: int, altmap) -> int:
        """``section_activate`` (§5.4); returns 0 or -errno, leaving the documented state."""
        mask = subsection_mask(pfn, nr_pages)
        new_usage = ms.usage == C.USAGE_NONE
        if new_usage:
            ms.usage = C.USAGE_SLAB
            ms.subsection_map = 0
            ms.usemap = 0
        if ms.subsection_map & mask:
            if new_usage:
                ms.usage = C.USAGE_NONE
            return -errno.EEXIST
        ms.subsection_map |= mask
        if nr_pages < C.PAGES_PER_SECTION and ms.mem_map & C.SECTION_IS_EARLY:
            return 0  # the boot memmap already covers the whole section
        if not self._populate(ms, mask, nr_pages == C.PAGES_PER_SECTION, altmap):
            self._section_deactivate(nr, ms, pfn, nr_pages, altmap)
            return -errno.ENOMEM
        return 0

    def _section_deactivate(self, nr: int, ms, pfn: int, nr_pages: int, altmap) -> bool:
        """``section_deactivate`` in its exact v5.3 order (§6.4); False after the WARN.  Step 5a
        follows the model's ``usage_free_rule``: v5.3-v5.4 free the usage (kfree, NULL) unless
        the section was early at entry; v5.5+ free it only if it is not a boot array
        (PageReserved), i.e. only a slab usage, and otherwise keep usage and pointer
        (later-eras-hotplug.md A8)."""
        m = self._model
        was_early = bool(ms.mem_map & C.SECTION_IS_EARLY)
        mask = subsection_mask(pfn, nr_pages)
        if ms.usage == C.USAGE_NONE or ms.subsection_map & mask != mask:
            self._warn("mm/sparse.c section_deactivate", K.deactivated_message(pfn, nr_pages))
            return False
        ms.subsection_map ^= mask
        empty = ms.subsection_map == 0
        if empty:
            if self._usage_free_unless_early:
                free_usage = not was_early
            else:
                free_usage = ms.usage == C.USAGE_SLAB
            if free_usage:
                self._free_usage(ms, nr)
            ms.mem_map = K.encode_null(nr) if m.deactivate_writes_encoded_null else 0
        if was_early and empty:
            self._free_whole_memmap(ms)
        elif not was_early or m.early_partial_remove_frees_memmap:
            self._depopulate(ms, mask, altmap)
        ms.init_mask &= ~mask
        return True

    def _legacy_add_section(self, nr: int, nid: int, altmap) -> int:
        """v5.2 ``__add_section`` + ``sparse_add_one_section`` on the whole section (§7)."""
        ms = self._nr_to_section(nr)
        if ms is not None and ms.mem_map & C.SECTION_HAS_MEM_MAP:
            return -errno.EEXIST  # pfn_valid(section start)
        self._sparse_index_init(nr)
        ms = self._nr_to_section(nr)
        if not self._populate(ms, _ALL, True, altmap):
            return -errno.ENOMEM
        if ms.mem_map & C.SECTION_MARKED_PRESENT:
            self._depopulate(ms, _ALL, altmap)  # both allocations are given back
            return -errno.EEXIST
        ms.usage = C.USAGE_SLAB
        ms.usemap = 0
        ms.subsection_map = 0
        ms.init_mask = 0
        self._mark_present(ms, nr, nid)
        ms.mem_map = (ms.mem_map & (self._model.section_map_last_bit - 1)) | self._vmemmap_base | C.SECTION_HAS_MEM_MAP
        return 0

    def _add_piece(self, nid: int, pfn: int, nr_pages: int, altmap) -> int:
        nr = pfn >> C.PFN_SECTION_SHIFT
        if not self._model.subsection:
            return self._legacy_add_section(nr, nid, altmap)
        self._sparse_index_init(nr)
        ms = self._nr_to_section(nr)
        rc = self._section_activate(nr, ms, nid, pfn, nr_pages, altmap)
        if rc:
            return rc
        ms.init_mask &= ~subsection_mask(pfn, nr_pages)  # page_init_poison
        self._mark_present(ms, nr, nid)
        keep = self._model.section_map_last_bit - 1
        ms.mem_map = (ms.mem_map & keep) | self._encoded_memmap(nr, pfn) | C.SECTION_HAS_MEM_MAP
        return 0

    def _raise_add(self, rc: int, nid: int, pfn: int, nr_pages: int, altmap) -> None:
        ms = self._nr_to_section(pfn >> C.PFN_SECTION_SHIFT)
        overlap = ms.subsection_map & subsection_mask(pfn, nr_pages) if ms and ms.usage else 0
        raise K.add_error(rc, self._model.subsection, pfn, nr_pages, overlap, altmap)

    def sparse_add_section(self, nid, start_pfn, nr_pages, altmap=None) -> None:
        """``sparse_add_section`` (§5.3) for one section's piece; legacy: ``__add_section`` (§7).

        Raises KernelError(EEXIST) when a requested sub-section is already active (legacy: the
        section already has a memmap) and KernelError(ENOMEM) when the altmap cannot supply a
        PMD.  On -ENOMEM the kernel leaves the documented state of §5.4 step 7: the bits are
        cleared again but ``section_mem_map`` holds ``sparse_encode_mem_map(NULL, nr)``.
        """
        nid = K.check_nid(nid)
        pfn, nr_pages = self._check_range(start_pfn, nr_pages, one_section=True, what="sparse_add_section")
        altmap = K.check_altmap(altmap, VmemAltmap)
        self._enter_hotplug("sparse_add_section")
        rc = self._add_piece(nid, pfn, nr_pages, altmap)
        if rc:
            self._raise_add(rc, nid, pfn, nr_pages, altmap)

    def _remove_piece(self, pfn: int, nr_pages: int, altmap) -> bool:
        nr = pfn >> C.PFN_SECTION_SHIFT
        ms = self._nr_to_section(nr)
        if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
            self._warn_once(("remove_section", 0), "mm/memory_hotplug.c __remove_section",
                            f"section {nr} (pfn 0x{pfn:x}) has no valid memmap")
            return False
        if self._model.subsection:
            return self._section_deactivate(nr, ms, pfn, nr_pages, altmap)
        # v5.2 sparse_remove_one_section: whole section, usemap and memmap released
        usage = ms.usage
        ms.mem_map = 0
        ms.usage = C.USAGE_NONE
        ms.usemap = 0
        ms.init_mask = 0
        if usage == C.USAGE_SLAB:
            self._depopulate(ms, _ALL, altmap)
        else:
            self._free_whole_memmap(ms)
        return True

    def sparse_remove_section(self, start_pfn, nr_pages, altmap=None) -> bool:
        """``__remove_section`` -> ``sparse_remove_section`` -> ``section_deactivate`` (§6.3-6.4).

        The kernel function is void: a section without a memmap (WARN_ON_ONCE) or a request
        covering inactive sub-sections ("section already deactivated" WARN) changes nothing
        and returns False here, with the warning in ``dmesg``.  Legacy: the whole section
        (``sparse_remove_one_section``).
        """
        pfn, nr_pages = self._check_range(start_pfn, nr_pages, one_section=True, what="sparse_remove_section")
        altmap = K.check_altmap(altmap, VmemAltmap)
        self._enter_hotplug("sparse_remove_section")
        return self._remove_piece(pfn, nr_pages, altmap)

    def sparse_add_range(self, nid, start_pfn, nr_pages, altmap=None) -> None:
        """The section loop of ``__add_pages`` (§5.2 step 3; legacy §7).

        One ``sparse_add_section`` per section piece; the first error stops the loop and is
        raised, and the pieces added before it stay added (the kernel has no rollback).
        Legacy: every section the range touches is added whole and -EEXIST is ignored.
        """
        nid = K.check_nid(nid)
        pfn, nr_pages = self._check_range(start_pfn, nr_pages, one_section=False, what="sparse_add_range")
        altmap = K.check_altmap(altmap, VmemAltmap)
        self._enter_hotplug("sparse_add_range")
        for p, n in K.pieces(pfn, nr_pages):
            rc = self._add_piece(nid, p, n, altmap)
            if rc == -errno.EEXIST and self._model.add_pages_swallows_eexist:
                continue
            if rc:
                self._raise_add(rc, nid, p, n, altmap)

    def sparse_remove_range(self, start_pfn, nr_pages, altmap=None) -> int:
        """The section loop of ``__remove_pages`` (§6.2 step 4): returns the pieces removed."""
        pfn, nr_pages = self._check_range(start_pfn, nr_pages, one_section=False, what="sparse_remove_range")
        altmap = K.check_altmap(altmap, VmemAltmap)
        self._enter_hotplug("sparse_remove_range")
        return sum(1 for p, n in K.pieces(pfn, nr_pages) if self._remove_piece(p, n, altmap))

    # ------------------------------------------------------------------ online state
    def _mem_sections(self, start_pfn, end_pfn, what: str):
        start, end = K.check_span(start_pfn, end_pfn, self._pfn_limit, what)
        return range(start, end, C.PAGES_PER_SECTION)

    def online_mem_sections(self, start_pfn, end_pfn) -> None:
        """``online_mem_sections`` (§5.5): set SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        for pfn in self._mem_sections(start_pfn, end_pfn, "online_mem_sections"):
            nr = pfn >> C.PFN_SECTION_SHIFT
            ms = self._nr_to_section(nr)
            if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
                self._warn("mm/sparse.c online_mem_sections", f"section {nr} has no valid memmap")
                continue
            ms.mem_map |= C.SECTION_IS_ONLINE

    def offline_mem_sections(self, start_pfn, end_pfn) -> None:
        """``offline_mem_sections`` (§5.6): clear SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        for pfn in self._mem_sections(start_pfn, end_pfn, "offline_mem_sections"):
            nr = pfn >> C.PFN_SECTION_SHIFT
            ms = self._nr_to_section(nr)
            if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
                self._warn("mm/sparse.c offline_mem_sections", f"section {nr} has no valid memmap")
                continue
            ms.mem_map &= ~C.SECTION_IS_ONLINE

    # ------------------------------------------------------------------ memmap contents
    def memmap_init_zone(self, nid, zone, start_pfn, nr_pages) -> None:
        """``memmap_init_zone``: link the struct pages of a range to (zone, nid).

        Recorded per 2 MiB sub-section (the granularity of every probe that reads them), only
        where a memmap exists; pageblocks starting inside the range become MIGRATE_MOVABLE.
        """
        nid = K.check_nid(nid)
        zone = K.check_zone(zone)
        start = _unsigned(start_pfn, "start_pfn")
        nr = _unsigned(nr_pages, "nr_pages")
        if start + nr > self._pfn_limit:
            raise ValueError(f"memmap_init_zone: pfn range [0x{start:x}-0x{start + nr:x}) "
                             f"exceeds max pfn 0x{self._pfn_limit:x}")
        zn = zone | (nid << 3)
        for p, n in K.pieces(start, nr):
            ms = self._nr_to_section(p >> C.PFN_SECTION_SHIFT)
            if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
                continue
            mask = subsection_mask(p, n)
            if ms.zn is None:
                ms.zn = [C.ZN_POISON] * C.SUBSECTIONS_PER_SECTION
            for i in range(C.SUBSECTIONS_PER_SECTION):
                if mask >> i & 1:
                    ms.zn[i] = zn
            ms.init_mask |= mask
            if ms.usage != C.USAGE_NONE:
                # pageblocks whose first pfn lies in [p, p + n)
                first = -(-(p & (C.PAGES_PER_SECTION - 1)) // C.PAGEBLOCK_NR_PAGES)
                last = ((p & (C.PAGES_PER_SECTION - 1)) + n - 1) // C.PAGEBLOCK_NR_PAGES
                for b in range(first, last + 1):
                    shift = b * C.NR_PAGEBLOCK_BITS
                    ms.usemap = (ms.usemap & ~(0xF << shift)) | (C.MIGRATE_MOVABLE << shift)

    def page_init_poison(self, pfn, nr_pages) -> None:
        """``page_init_poison(pfn_to_page(pfn), sizeof(struct page) * nr_pages)``: the struct
        pages of the range read as never initialised again (``page_zonenum``/``pfn_to_nid``
        -1), as v5.6+ ``remove_pfn_range_from_zone`` leaves them after an offline
        (later-eras-hotplug-evidence.md §1 row 5.6, "mm/memory_hotplug: poison memmap in
        remove_pfn_range_from_zone()").  The kernel fills them with 0xFF only under
        CONFIG_DEBUG_VM; the model's "poisoned" means "not initialised" whatever the build, as
        for a hot-added memmap.  Per 2 MiB sub-section like :meth:`memmap_init_zone` (a
        partially covered one counts as poisoned), only where a memmap exists; pageblock flags
        are not struct pages and stay.  ``nr_pages`` 0 does nothing.  TypeError / ValueError
        (range beyond the address space) before anything changes."""
        start = _unsigned(pfn, "pfn")
        nr = _unsigned(nr_pages, "nr_pages")
        if start + nr > self._pfn_limit:
            raise ValueError(f"page_init_poison: pfn range [0x{start:x}-0x{start + nr:x}) "
                             f"exceeds max pfn 0x{self._pfn_limit:x}")
        for p, n in K.pieces(start, nr):
            ms = self._nr_to_section(p >> C.PFN_SECTION_SHIFT)
            if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
                continue
            ms.init_mask &= ~subsection_mask(p, n)

    def section_taint_zone_device(self, pfn) -> None:
        """``section_taint_zone_device(pfn)`` (v5.12+, mm/memory_hotplug.c): OR
        SECTION_TAINT_ZONE_DEVICE (bit 4) into the word of ``pfn``'s section, whatever that
        section holds; only the final ``section_mem_map = 0`` of a full deactivation clears it
        (later-eras-hotplug-evidence.md §1 row 5.12).  RuntimeError in a kernel without the flag
        (``model.section_taint_zone_device`` False: before v5.12 bit 4 is part of the encoded
        memmap); TypeError / ValueError (pfn beyond the address space) before anything
        changes; KernelBug when the section's root is not allocated (``__pfn_to_section`` is
        NULL and the kernel dereferences it)."""
        pfn = _unsigned(pfn, "pfn")
        if not self._taint:
            raise RuntimeError(K.no_taint_message(self._model))
        if pfn >= self._pfn_limit:
            raise ValueError(f"section_taint_zone_device: pfn 0x{pfn:x} exceeds max pfn 0x{self._pfn_limit:x}")
        nr = pfn >> C.PFN_SECTION_SHIFT
        ms = self._nr_to_section(nr)
        if ms is None:
            raise KernelBug(f"section_taint_zone_device(pfn 0x{pfn:x}): __pfn_to_section is NULL (the root of "
                            f"section {nr} is not allocated): NULL dereference")
        ms.mem_map |= C.SECTION_TAINT_ZONE_DEVICE

    # ------------------------------------------------------------------ span scans (§6.5)
    def _probed_section(self, nr: int) -> bool:
        """A section whose pfns a span probe may take: valid, and online in the v5.4+ mode
        (the section tests of ``pfn_valid`` / ``pfn_to_online_page``)."""
        ms = self._nr_to_section(nr)
        if ms is None or not ms.mem_map & C.SECTION_HAS_MEM_MAP:
            return False
        return not self._model.shrink_probes_online_sections or bool(ms.mem_map & C.SECTION_IS_ONLINE)

    def _probe(self, pfn: int, nid: int, zone) -> bool:
        """One probe of ``find_smallest/biggest_section_pfn``: v5.2 ``valid_section``, v5.3
        ``pfn_valid``, v5.4+ ``pfn_to_online_page`` (``shrink_probes_online_sections``): the
        section is online; from v5.12 (``pfn_to_online_page_subsection``) also its sub-section
        bit (``pfn_section_valid``: the usage bitmap, early or not), and in an online section
        tainted with SECTION_TAINT_ZONE_DEVICE a pfn that ``get_dev_pagemap`` finds is not
        online.  The core has no pgmap table: it takes a struct page of ZONE_DEVICE there for
        a pfn a pgmap covers (``memmap_init_zone_device`` writes that zone for every pfn of a
        pgmap).  Then the struct page is read: node, then zone."""
        m = self._model
        nr = pfn >> C.PFN_SECTION_SHIFT
        ms = self._nr_to_section(nr)
        if m.shrink_probes_online_sections:
            if ms is None or not ms.mem_map & C.SECTION_IS_ONLINE:
                return False
            if m.pfn_to_online_page_subsection:
                sub = (pfn & (C.PAGES_PER_SECTION - 1)) >> C.PFN_SUBSECTION_SHIFT
                if ms.usage == C.USAGE_NONE or not ms.subsection_map >> sub & 1:
                    return False
        elif m.subsection:
            if not self.pfn_valid(pfn):
                return False
        elif not self.valid_section_nr(nr):
            return False
        zn = self._zn(pfn)
        if zn is None:
            return False
        if (m.pfn_to_online_page_subsection and m.shrink_probes_online_sections and zn & 7 == C.ZONE_DEVICE
                and ms.mem_map & (C.SECTION_IS_ONLINE | C.SECTION_TAINT_ZONE_DEVICE)
                == C.SECTION_IS_ONLINE | C.SECTION_TAINT_ZONE_DEVICE):
            return False  # get_dev_pagemap finds the pfn's pgmap: offline
        if zn >> 3 != nid:
            return False
        return zone is None or zn & 7 == zone

    def _span_args(self, nid, zone, start_pfn, end_pfn):
        nid = K.check_nid(nid)
        zone = K.check_zone(zone, allow_none=True)
        return nid, zone, _unsigned(start_pfn, "start_pfn"), _unsigned(end_pfn, "end_pfn")

    def find_smallest_section_pfn(self, nid, zone, start_pfn, end_pfn) -> int:
        """``find_smallest_section_pfn``: first probe in [start, end) of (nid, zone), else 0.

        Probes every ``shrink_step`` pfns (512 in v5.3, 32768 in v5.2) from ``start_pfn``;
        ``zone=None`` means any zone (the node scan).
        """
        nid, zone, start, end = self._span_args(nid, zone, start_pfn, end_pfn)
        step = self._model.shrink_step
        end = min(end, self._pfn_limit)
        pfn = start
        while pfn < end:
            nr = pfn >> C.PFN_SECTION_SHIFT
            if not self._probed_section(nr):
                # no probe in a section without memmap (v5.4+: or offline) matches: go to the first one past it
                pfn += -(-(((nr + 1) << C.PFN_SECTION_SHIFT) - pfn) // step) * step
                continue
            if self._probe(pfn, nid, zone):
                return pfn
            pfn += step
        return 0

    def find_biggest_section_pfn(self, nid, zone, start_pfn, end_pfn) -> int:
        """``find_biggest_section_pfn``: probes end-1, end-1-step, ... >= start; else 0.

        The kernel's loop variable is unsigned: when nothing matches and a probe would go
        below pfn 0 (or ``end_pfn`` is 0), v5.3 spins for ~2^55 iterations; this raises
        KernelBug instead (§6.5).
        """
        nid, zone, start, end = self._span_args(nid, zone, start_pfn, end_pfn)
        step = self._model.shrink_step
        pfn = end - 1
        while pfn >= start:
            nr = pfn >> C.PFN_SECTION_SHIFT
            if pfn >= self._pfn_limit or not self._probed_section(nr):
                # skip the probes left in this section (or above the address space)
                low = min(nr << C.PFN_SECTION_SHIFT, self._pfn_limit)
                pfn -= max(1, -(-(pfn - low + 1) // step)) * step if pfn >= low else step
                continue
            if self._probe(pfn, nid, zone):
                return pfn
            pfn -= step
        if pfn < 0:
            raise KernelBug(K.wrap_message(start, end, step))
        return 0

    # ------------------------------------------------------------------ accounting
    def _all_sections(self):
        for r in sorted(self._roots):
            root = self._roots[r]
            for i, ms in enumerate(root):
                yield r * C.SECTIONS_PER_ROOT + i, ms

    def _present_nrs(self):
        return [nr for nr, ms in self._all_sections() if ms.mem_map & C.SECTION_MARKED_PRESENT]

    def present_section_nrs(self):
        """Numbers of all present sections, ascending (``for_each_present_section_nr``)."""
        return np.array(self._present_nrs(), dtype=np.uint64)

    def vmemmap_stats(self) -> dict:
        """vmemmap population by backing (MN §7.4), recomputed from every section."""
        boot = ram = alt = pages = tables = fd = 0
        for _, ms in self._all_sections():
            if ms.vmm == C.VMM_BOOT_PMD:
                boot += 1
            elif ms.vmm == C.VMM_PMD_RAM:
                ram += 1
            elif ms.vmm == C.VMM_PMD_ALTMAP:
                alt += 1
            elif ms.vmm == C.VMM_PTE:
                tables += 1
                pages += C.SUBSECTION_MEMMAP_PAGES * _popcount(ms.pte_mask)
            if ms.vmm in (C.VMM_BOOT_PMD, C.VMM_PMD_RAM, C.VMM_PMD_ALTMAP):
                fd += _popcount(ms.fd_mask)
        return K.stats(boot, ram, alt, pages, tables, fd)

    def count_valid_subsections(self) -> int:
        """Number of 2 MiB sub-sections for which ``pfn_valid`` is true."""
        n = 0
        for nr, ms in self._all_sections():
            if ms.mem_map & C.SECTION_HAS_MEM_MAP:
                if not self._model.subsection or ms.mem_map & C.SECTION_IS_EARLY:
                    n += C.SUBSECTIONS_PER_SECTION
                else:
                    n += _popcount(ms.subsection_map)
        return n

    def snapshot(self) -> dict:
        """Every observable field of the table, for equality tests (dmesg excluded)."""
        sections = {}
        for nr, ms in self._all_sections():
            if ms.mem_map or ms.usage or ms.vmm or ms.init_mask:
                zn = tuple(ms.zn[i] if ms.init_mask >> i & 1 else -1 for i in range(64)) if ms.init_mask else None
                sections[nr] = (ms.mem_map, ms.subsection_map if ms.usage else 0, ms.usage,
                                ms.nid if ms.mem_map & C.SECTION_MARKED_PRESENT else -1,
                                ms.init_mask, ms.vmm, ms.pte_mask if ms.vmm == C.VMM_PTE else 0,
                                ms.fd_mask, ms.usemap if ms.usage else 0, zn)
        return {
            "kernel": self.kernel,
            "max_physmem_bits": self._bits,
            "highest_present_section_nr": self._highest_present,
            "sections": sections,
            "vmemmap": self.vmemmap_stats(),
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        rows = []
        for nr, ms in self._all_sections():
            if ms.mem_map or ms.usage or ms.vmm or ms.init_mask or ms.zn is not None:
                rows.append((nr, ms.mem_map, ms.subsection_map, ms.init_mask, ms.pte_mask, ms.fd_mask,
                             None if ms.zn is None else tuple(ms.zn), ms.usemap, ms.nid, ms.usage, ms.vmm))
        return {
            "version": 1,
            "roots": sorted(self._roots),
            "sections": rows,
            "highest": self._highest_present,
            "phase": self._phase,
            "sparse_init_done": self._sparse_init_done,
            "warned_once": sorted(self._warned_once),
            "dmesg": list(self.dmesg),
        }

    def __setstate__(self, state):
        for r in state["roots"]:
            self._roots[r] = [_Section() for _ in range(C.SECTIONS_PER_ROOT)]
        for (nr, mem_map, smap, init, pte, fd, zn, usemap, nid, usage, vmm) in state["sections"]:
            self._sparse_index_init(nr)
            ms = self._nr_to_section(nr)
            ms.mem_map, ms.subsection_map, ms.init_mask, ms.pte_mask, ms.fd_mask = mem_map, smap, init, pte, fd
            ms.zn = None if zn is None else list(zn)
            ms.usemap, ms.nid, ms.usage, ms.vmm = usemap, nid, usage, vmm
        self._highest_present = state["highest"]
        self._phase = state["phase"]
        self._sparse_init_done = state["sparse_init_done"]
        self._warned_once = {tuple(k) for k in state["warned_once"]}
        self.dmesg = list(state["dmesg"])

    def __reduce__(self):
        return (type(self), (self._bits, self.kernel), self.__getstate__())

    def __repr__(self):
        return (f"<{type(self).__module__}.SectionTable kernel={self.kernel} max_physmem_bits={self._bits} "
                f"present={len(self._present_nrs())}>")


