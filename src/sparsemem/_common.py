"""Argument checks, messages and accounting shared by the compiled core and its Python twin.

Both ``sparsemem._sparsecore.SectionTable`` and ``sparsemem.reference.SectionTable`` call
these, so a rule (what a bad argument is, how an error reads) lives in one place.
"""

from __future__ import annotations

import errno
import operator
from typing import Optional

import numpy as np

from . import constants as C
from .errors import KernelError

U64 = (1 << 64) - 1



def index(value, what: str) -> int:
    """``operator.index`` with a message that names the argument."""
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an integer, not {type(value).__name__}") from None


def unsigned(value, what: str) -> int:
    """A non-negative integer that fits an ``unsigned long``."""
    if type(value) is int and 0 <= value <= U64:
        return value  # the common case, answered without a call (hot-add runs this often)
    v = index(value, what)
    if v < 0:
        raise ValueError(f"{what} must not be negative (got {v})")
    if v > U64:
        raise ValueError(f"{what} 0x{v:x} does not fit in an unsigned long")
    return v


def check_bits(max_physmem_bits) -> int:
    bits = index(max_physmem_bits, "max_physmem_bits")
    if bits not in (C.MAX_PHYSMEM_BITS_4LVL, C.MAX_PHYSMEM_BITS_5LVL):
        raise ValueError(f"max_physmem_bits must be 46 (4-level paging) or 52 (5-level), not {bits}")
    return bits


def check_nid(nid) -> int:
    if type(nid) is int and 0 <= nid < C.MAX_NUMNODES:
        return nid
    nid = index(nid, "nid")
    if not 0 <= nid < C.MAX_NUMNODES:
        raise ValueError(f"nid {nid} out of range 0..{C.MAX_NUMNODES - 1}")
    return nid


def check_zone(zone, allow_none: bool = False):
    if type(zone) is int and 0 <= zone <= C.ZONE_DEVICE:
        return zone
    if zone is None and allow_none:
        return None
    zone = index(zone, "zone")
    if not 0 <= zone <= C.ZONE_DEVICE:
        raise ValueError(f"zone index {zone} out of range 0..{C.ZONE_DEVICE}")
    return zone


def check_altmap(altmap, cls):
    """``altmap`` if it is None or a ``cls`` (the core's ``VmemAltmap``), else TypeError."""
    if altmap is None or type(altmap) is cls:
        return altmap
    if not isinstance(altmap, cls):
        raise TypeError(f"altmap must be a {cls.__module__}.VmemAltmap or None, not {type(altmap).__name__}")
    return altmap


def check_range(start_pfn, nr_pages, pfn_limit: int, bits: int, subsection: bool, *,
                one_section: bool, what: str) -> tuple[int, int]:
    """Validate a hotplug pfn range: the caller contract of the core's mutating calls.

    ``nr_pages`` must be >= 1, the range must lie inside the physical address space, inside
    one section when ``one_section``, and (sub-section era) be 512-pfn aligned, which
    ``check_pfn_span`` guarantees for every kernel caller.
    """
    start = unsigned(start_pfn, "start_pfn")
    nr = unsigned(nr_pages, "nr_pages")
    if nr == 0:
        raise ValueError(f"{what}: nr_pages is 0 (an empty range; __add_pages handles that case)")
    end = start + nr
    if end > pfn_limit:
        raise ValueError(
            f"{what}: pfn range [0x{start:x}-0x{end:x}) exceeds the {bits}-bit physical "
            f"address space (max pfn 0x{pfn_limit:x})"
        )
    if one_section and (start >> C.PFN_SECTION_SHIFT) != ((end - 1) >> C.PFN_SECTION_SHIFT):
        raise ValueError(
            f"{what}: pfn range [0x{start:x}-0x{end:x}) crosses a section boundary "
            f"(one call handles one section's piece, as __add_pages splits them)"
        )
    if subsection and (start | nr) & (C.PAGES_PER_SUBSECTION - 1):
        raise ValueError(
            f"{what}: pfn 0x{start:x} nr_pages 0x{nr:x} is not sub-section (512-pfn) aligned; "
            f"check_pfn_span in __add_pages/__remove_pages guarantees that"
        )
    return start, nr


def check_span(start_pfn, end_pfn, pfn_limit: int, what: str) -> tuple[int, int]:
    """A [start, end) pfn span for the per-section walks (online/offline_mem_sections)."""
    start = unsigned(start_pfn, "start_pfn")
    end = unsigned(end_pfn, "end_pfn")
    if start > end:
        raise ValueError(f"{what}: start_pfn 0x{start:x} > end_pfn 0x{end:x}")
    if end > pfn_limit:
        raise ValueError(f"{what}: end_pfn 0x{end:x} exceeds max pfn 0x{pfn_limit:x}")
    return start, end


def pieces(pfn: int, nr: int):
    """Split ``[pfn, pfn+nr)`` at section boundaries (the __add_pages/__remove_pages loop):
    yields ``(pfn, nr_pages)`` per section piece."""
    end = pfn + nr
    while pfn < end:
        step = min(end - pfn, C.PAGES_PER_SECTION - (pfn & (C.PAGES_PER_SECTION - 1)))
        yield pfn, step
        pfn += step


def kstrtox(text: str, signed: bool = False) -> Optional[int]:
    """lib/kstrtox.c ``kstrtoull(s, 0)`` (``signed``: ``kstrtoll(s, 0)``): an optional ``+``
    (and ``-`` when signed), ``0x`` hex, ``0`` octal or decimal, one trailing newline, nothing
    else.  The value, not yet range-checked (the callers turn their range into -ERANGE or
    -EINVAL); None on a parse error."""
    s = text[:-1] if text.endswith("\n") else text
    neg = signed and s[:1] == "-"
    if s[:1] == "+" or neg:
        s = s[1:]
    if s[:2].lower() == "0x":
        base, digits = 16, s[2:]
    elif s[:1] == "0" and len(s) > 1:
        base, digits = 8, s[1:]
    else:
        base, digits = 10, s
    if not digits or any(c.lower() not in "0123456789abcdef"[:base] for c in digits):
        return None
    v = int(digits, base)
    return -v if neg else v


def hexfmt(v: int) -> str:
    """The kernel's ``%#lx``: ``0x`` + lowercase hex, zero included (``0x0``: lib/vsprintf.c
    ``number()`` emits the prefix for base 16 whatever the value, unlike glibc; §5.1)."""
    return f"0x{v:x}"


def encode_null(nr: int) -> int:
    """``sparse_encode_mem_map(NULL, nr)`` = ``-(nr << 21)`` as an unsigned long (§2.4)."""
    return (-(nr << 21)) & U64


def wrap_message(start: int, end: int, step: int) -> str:
    return (f"find_biggest_section_pfn(start 0x{start:x}, end 0x{end:x}): nothing matched and the "
            f"unsigned probe pfn would wrap below 0; the v5.3 kernel spins ~2^55 iterations "
            f"(step {step}) here")


#: values of ``KernelModel.usage_free_rule``: which usage ``section_deactivate`` frees when a
#: section's bitmap empties (sparse-hotplug.md §6.4 step 5a and its v5.5 note;
#: later-eras-hotplug.md A8).
USAGE_FREE_RULES = ("unless_early", "unless_boot")


def usage_freed_unless_early(model) -> bool:
    """True for the v5.3-v5.4 rule (free the usage of a section that was not early at entry),
    False for the v5.5+ rule (free only a usage that ``section_activate`` allocated, i.e. whose
    page is not PageReserved): ``SM_K_USAGE_FREE_UNLESS_EARLY`` in include/sparsemem.h.
    ValueError for any other value of ``model.usage_free_rule``, so that neither core guesses."""
    rule = model.usage_free_rule
    if rule not in USAGE_FREE_RULES:
        raise ValueError(f"KernelModel.usage_free_rule {rule!r} of kernel {model.name}: expected one of "
                         f"{', '.join(repr(r) for r in USAGE_FREE_RULES)}")
    return rule == "unless_early"


def taint_zone_device(model) -> bool:
    """``model.section_taint_zone_device`` (``SM_K_TAINT_ZONE_DEVICE`` in include/sparsemem.h),
    checked against the word layout: SECTION_TAINT_ZONE_DEVICE is bit 4, which is a flag only
    when ``section_map_last_bit`` is 1<<5 (v5.12+); with a narrower flag field bit 4 belongs to
    the encoded memmap, so such a model is refused (ValueError) rather than corrupting words."""
    on = bool(model.section_taint_zone_device)
    if on and model.section_map_last_bit <= C.SECTION_TAINT_ZONE_DEVICE:
        raise ValueError(f"KernelModel of kernel {model.name}: section_taint_zone_device needs "
                         f"section_map_last_bit > 0x{C.SECTION_TAINT_ZONE_DEVICE:x}, not "
                         f"0x{model.section_map_last_bit:x}")
    return on


def no_taint_message(model) -> str:
    return (f"section_taint_zone_device: kernel {model.name} has no SECTION_TAINT_ZONE_DEVICE "
            f"(the flag and its setter are v5.12+, 1f90a3477df3)")


def freed_memmap_message(pfn: int, unmapped: bool) -> str:
    """The KernelBug of a read of a struct page that a v5.3-v5.8 partial removal from an early
    section freed (``section_deactivate`` depopulates that part of the boot memmap while
    ``pfn_valid`` stays true: later-eras-hotplug-evidence.md §1 row 5.9, §3.3)."""
    nr = pfn >> C.PFN_SECTION_SHIFT
    how = ("its vmemmap PMD is unmapped: page fault" if unmapped else
           "it reads the 0xFD filler of the vmemmap teardown (node and zone garbage; page_zone "
           "dereferences the NODE_DATA of a node that does not exist)")
    return (f"struct page of pfn 0x{pfn:x} (early section {nr}) was freed by a partial removal: "
            f"v5.3-v5.8 section_deactivate frees that part of the boot memmap while pfn_valid stays "
            f"true (fixed by ef69bc9f689d in v5.9); {how}")


def deactivated_message(pfn: int, nr_pages: int) -> str:
    return f"section already deactivated ({hexfmt(pfn)} + {nr_pages})"


def add_error(rc: int, subsection: bool, pfn: int, nr_pages: int, overlap: int, altmap) -> KernelError:
    """The KernelError for a failed ``sparse_add_section`` piece."""
    nr = pfn >> C.PFN_SECTION_SHIFT
    if rc == -errno.EEXIST:
        if subsection:
            return KernelError(errno.EEXIST, f"sparse_add_section: pfn 0x{pfn:x} nr_pages 0x{nr_pages:x}: "
                                             f"sub-sections 0x{overlap:016x} of section {nr} are already active")
        return KernelError(errno.EEXIST, f"__add_section: section {nr} (pfn 0x{nr << C.PFN_SECTION_SHIFT:x}) "
                                         f"already has a memmap")
    if rc == -errno.ENOMEM:
        a = altmap
        detail = (f"altmap exhausted (base_pfn 0x{a.base_pfn:x} reserve {a.reserve} free {a.free} "
                  f"align {a.align} alloc {a.alloc})" if a is not None else "out of memory")
        return KernelError(errno.ENOMEM, f"sparse_add_section: memmap of pfn 0x{pfn:x} nr_pages 0x{nr_pages:x} "
                                         f"(section {nr}): {detail}")
    return KernelError(-rc, f"sparse_add_section: pfn 0x{pfn:x} nr_pages 0x{nr_pages:x}: error {rc}")


def pageblock_flags_word(mask: int) -> int:
    """The 256-bit ``pageblock_flags`` of a section whose pageblocks ``mask`` are MIGRATE_MOVABLE."""
    return sum(C.MIGRATE_MOVABLE << (C.NR_PAGEBLOCK_BITS * i) for i in range(64) if mask >> i & 1)


def pageblock_mask(flags: int) -> int:
    """Inverse of :func:`pageblock_flags_word` (pageblocks whose 4 bits are MIGRATE_MOVABLE)."""
    return sum(1 << i for i in range(64) if (flags >> (C.NR_PAGEBLOCK_BITS * i)) & 0xF == C.MIGRATE_MOVABLE)


def stats(boot: int, ram: int, alt: int, pages: int, tables: int, fd: int) -> dict:
    """``vmemmap_stats()``: counts by backing and the bytes they come to (MN §7.4)."""
    pmd = C.PMD_SIZE
    return {
        "memmap_bytes": (boot + ram + alt) * pmd + pages * C.PAGE_SIZE,
        "memmap_ram_bytes": (boot + ram) * pmd + (pages + tables) * C.PAGE_SIZE,
        "memmap_altmap_bytes": alt * pmd,
        "boot_pmds": boot,
        "pmds_ram": ram,
        "pmds_altmap": alt,
        "base_pages_ram": pages,
        "pte_tables": tables,
        "fd_subsections": fd,
    }


def batch_args(pfns, out):
    """Coerce a ``pfn_valid_many`` input to a contiguous uint64 array and check ``out``.

    Any integer array-like is accepted; negative values and values of 2**64 or more are not
    valid pfns (they are mapped to 2**64 - 1).  Floats, strings and other objects: TypeError.
    Returns ``(uint64 array, bool out array)`` of the input's shape.
    """
    arr = np.asarray(pfns)
    kind = arr.dtype.kind
    if kind == "O":
        flat = arr.reshape(-1)
        conv = np.empty(flat.shape, dtype=np.uint64)
        for i, v in enumerate(flat.tolist()):
            if isinstance(v, float) or not hasattr(v, "__index__"):
                raise TypeError(f"pfns must be integers; element {i} is {type(v).__name__}")
            v = operator.index(v)
            conv[i] = v if 0 <= v <= U64 else U64
        arr = conv.reshape(arr.shape)
    elif kind == "i":
        arr = np.where(arr < 0, arr.dtype.type(-1), arr).astype(np.uint64)
    elif kind in "ub":
        arr = np.ascontiguousarray(arr, dtype=np.uint64)
    elif arr.size == 0:
        arr = arr.astype(np.uint64)
    else:
        raise TypeError(f"pfns must be an integer array-like, not an array of {arr.dtype}")
    if out is None:
        out = np.empty(arr.shape, dtype=bool)
    else:
        if not isinstance(out, np.ndarray) or out.dtype != np.bool_:
            raise TypeError("out must be a numpy.ndarray of dtype bool")
        if out.shape != arr.shape:
            raise ValueError(f"out has shape {out.shape}, pfns has shape {arr.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out must be C-contiguous and writeable")
    return np.ascontiguousarray(arr, dtype=np.uint64), out


def strict_int(value, what: str, minimum=None) -> int:
    """An ``int`` that is not a ``bool`` (TypeError otherwise, naming ``what``), and with
    ``minimum`` 0 or 1 not negative / positive (ValueError)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        if minimum == 0:
            raise ValueError(f"{what} must not be negative (got {value})")
        if minimum == 1:
            raise ValueError(f"{what} must be positive, got {value}")
        raise ValueError(f"{what} must be >= {minimum}, got {value}")
    return value
