"""Constants of the simulated x86_64 SPARSEMEM model and the pfn/section helpers.

The values are defined once, in ``include/sparsemem.h``; :mod:`sparsemem._header` is their
pure-Python table (checked against the header and against the compiled core by
tests/test_core_constants.py) and this module names them for Python, without needing the
compiled extension.  See docs/spec/sparse-hotplug.md §1-§2.
"""

from __future__ import annotations

from ._header import CONSTANTS as _K
from .kernel import DEFAULT_KERNEL, as_model

PAGE_SHIFT: int = _K["PAGE_SHIFT"]
PAGE_SIZE: int = _K["PAGE_SIZE"]
SECTION_SIZE_BITS: int = _K["SECTION_SIZE_BITS"]
PA_SECTION_SHIFT: int = _K["PA_SECTION_SHIFT"]
PFN_SECTION_SHIFT: int = _K["PFN_SECTION_SHIFT"]
PAGES_PER_SECTION: int = _K["PAGES_PER_SECTION"]
PAGE_SECTION_MASK: int = _K["PAGE_SECTION_MASK"]
SUBSECTION_SHIFT: int = _K["SUBSECTION_SHIFT"]
PFN_SUBSECTION_SHIFT: int = _K["PFN_SUBSECTION_SHIFT"]
PAGES_PER_SUBSECTION: int = _K["PAGES_PER_SUBSECTION"]
SUBSECTIONS_PER_SECTION: int = _K["SUBSECTIONS_PER_SECTION"]
SECTIONS_PER_ROOT: int = _K["SECTIONS_PER_ROOT"]
MEM_SECTION_BYTES: int = _K["MEM_SECTION_BYTES"]
MAX_PHYSMEM_BITS_4LVL: int = _K["MAX_PHYSMEM_BITS_4LVL"]
MAX_PHYSMEM_BITS_5LVL: int = _K["MAX_PHYSMEM_BITS_5LVL"]
STRUCT_PAGE_SIZE: int = _K["STRUCT_PAGE_SIZE"]
SECTION_MEMMAP_BYTES: int = _K["SECTION_MEMMAP_BYTES"]
SUBSECTION_MEMMAP_PAGES: int = _K["SUBSECTION_MEMMAP_PAGES"]
PMD_SIZE: int = _K["PMD_SIZE"]
PMD_PFNS: int = _K["PMD_PFNS"]
PAGEBLOCK_ORDER: int = _K["PAGEBLOCK_ORDER"]
PAGEBLOCK_NR_PAGES: int = _K["PAGEBLOCK_NR_PAGES"]
NR_PAGEBLOCK_BITS: int = _K["NR_PAGEBLOCK_BITS"]
USEMAP_BYTES: int = _K["USEMAP_BYTES"]
MEM_SECTION_USAGE_BYTES: int = _K["MEM_SECTION_USAGE_BYTES"]
MIGRATE_MOVABLE: int = _K["MIGRATE_MOVABLE"]

SECTION_MARKED_PRESENT: int = _K["SECTION_MARKED_PRESENT"]
SECTION_HAS_MEM_MAP: int = _K["SECTION_HAS_MEM_MAP"]
SECTION_IS_ONLINE: int = _K["SECTION_IS_ONLINE"]
SECTION_IS_EARLY: int = _K["SECTION_IS_EARLY"]
SECTION_TAINT_ZONE_DEVICE: int = _K["SECTION_TAINT_ZONE_DEVICE"]
SECTION_NID_SHIFT: int = _K["SECTION_NID_SHIFT"]

VMEMMAP_BASE_4LVL: int = _K["VMEMMAP_BASE_4LVL"]
VMEMMAP_BASE_5LVL: int = _K["VMEMMAP_BASE_5LVL"]
PAGE_OFFSET_4LVL: int = _K["PAGE_OFFSET_4LVL"]
PAGE_OFFSET_5LVL: int = _K["PAGE_OFFSET_5LVL"]

ZONE_DMA: int = _K["ZONE_DMA"]
ZONE_DMA32: int = _K["ZONE_DMA32"]
ZONE_NORMAL: int = _K["ZONE_NORMAL"]
ZONE_MOVABLE: int = _K["ZONE_MOVABLE"]
ZONE_DEVICE: int = _K["ZONE_DEVICE"]
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable", "Device")
MAX_NUMNODES: int = _K["MAX_NUMNODES"]

VMM_NONE: int = _K["VMM_NONE"]
VMM_BOOT_PMD: int = _K["VMM_BOOT_PMD"]
VMM_PMD_RAM: int = _K["VMM_PMD_RAM"]
VMM_PMD_ALTMAP: int = _K["VMM_PMD_ALTMAP"]
VMM_PTE: int = _K["VMM_PTE"]
USAGE_NONE: int = _K["USAGE_NONE"]
USAGE_BOOT: int = _K["USAGE_BOOT"]
USAGE_SLAB: int = _K["USAGE_SLAB"]
ZN_POISON: int = _K["ZN_POISON"]

#: ``SectionTable.section_usage()`` answers: where a section's usage came from
USAGE_NAMES = {USAGE_NONE: None, USAGE_BOOT: "boot", USAGE_SLAB: "slab"}
#: ``SectionTable.section_vmemmap()`` answers: how a section's memmap is mapped (MN §7.4)
VMM_NAMES = {VMM_NONE: None, VMM_BOOT_PMD: "boot-pmd", VMM_PMD_RAM: "pmd-ram",
             VMM_PMD_ALTMAP: "pmd-altmap", VMM_PTE: "pte"}

SECTION_SIZE: int = 1 << SECTION_SIZE_BITS
SUBSECTION_SIZE: int = 1 << SUBSECTION_SHIFT


def vmemmap_base(bits: int) -> int:
    """``VMEMMAP_START`` of x86_64 with ``max_physmem_bits`` (52: 5-level paging, else 4-level)."""
    return VMEMMAP_BASE_5LVL if bits == MAX_PHYSMEM_BITS_5LVL else VMEMMAP_BASE_4LVL


def page_offset(bits: int) -> int:
    """``PAGE_OFFSET`` (the direct map) of x86_64 with ``max_physmem_bits`` (52: 5-level, else 4-level)."""
    return PAGE_OFFSET_5LVL if bits == MAX_PHYSMEM_BITS_5LVL else PAGE_OFFSET_4LVL


def pfn_to_section_nr(pfn: int) -> int:
    """``pfn_to_section_nr``: the 128 MiB section holding ``pfn``."""
    return pfn >> PFN_SECTION_SHIFT


def section_nr_to_pfn(nr: int) -> int:
    """``section_nr_to_pfn``: the first pfn of section ``nr``."""
    return nr << PFN_SECTION_SHIFT


def subsection_map_index(pfn: int) -> int:
    """``subsection_map_index``: which of the 64 sub-sections of its section holds ``pfn``."""
    return (pfn & (PAGES_PER_SECTION - 1)) >> PFN_SUBSECTION_SHIFT


def PHYS_PFN(addr: int) -> int:
    """``PHYS_PFN``: the pfn of a physical byte address."""
    return addr >> PAGE_SHIFT


def PFN_PHYS(pfn: int) -> int:
    """``PFN_PHYS``: the physical byte address of a pfn."""
    return pfn << PAGE_SHIFT


def decode_section_flags(mem_map: int, kernel: str = DEFAULT_KERNEL) -> str:
    """``"PRESENT|HAS_MEM_MAP|ONLINE|EARLY"``-style view of a ``section_mem_map`` word."""
    model = as_model(kernel)
    names = [(SECTION_MARKED_PRESENT, "PRESENT"), (SECTION_HAS_MEM_MAP, "HAS_MEM_MAP"),
             (SECTION_IS_ONLINE, "ONLINE")]
    if model.section_is_early:
        names.append((SECTION_IS_EARLY, "EARLY"))
    return "|".join(n for bit, n in names if mem_map & bit) or "0"
