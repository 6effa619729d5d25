"""The numbers of ``include/sparsemem.h`` as a pure-Python table.

:mod:`sparsemem.constants` names these for Python, so that :mod:`sparsemem.constants` and the
pure-Python twin :mod:`sparsemem.reference` import and run without the compiled extension.
The header stays the single source of the values: ``tests/test_core_constants.py`` parses its
``#define`` lines and checks every entry here against them and against the values that the
compiled core was built with (``sparsemem._sparsecore._CONSTANTS``), and the compiled core
refuses to import when the two disagree.

Keys are the header's names without the ``SM_`` prefix.  ``PAGE_SECTION_MASK`` is the one
value that differs in form: the header's ``~(PAGES_PER_SECTION - 1)`` is an unsigned 64-bit
word, here it is the negative Python int with the same low 64 bits, so that ``pfn &
PAGE_SECTION_MASK`` rounds any Python int down to its section.
"""

from __future__ import annotations

CONSTANTS: dict[str, int] = {
    # §1 constants
    "PAGE_SHIFT": 12,
    "PAGE_SIZE": 1 << 12,
    "SECTION_SIZE_BITS": 27,
    "PA_SECTION_SHIFT": 27,
    "PFN_SECTION_SHIFT": 27 - 12,
    "PAGES_PER_SECTION": 1 << 15,
    "PAGE_SECTION_MASK": -(1 << 15),
    "SUBSECTION_SHIFT": 21,
    "PFN_SUBSECTION_SHIFT": 21 - 12,
    "PAGES_PER_SUBSECTION": 1 << 9,
    "SUBSECTIONS_PER_SECTION": 1 << (27 - 21),
    "STRUCT_PAGE_SIZE": 64,
    "SECTION_MEMMAP_BYTES": (1 << 15) * 64,
    "SUBSECTION_MEMMAP_PAGES": 8,
    "PMD_SIZE": 1 << 21,
    "PMD_PFNS": 512,
    "MEM_SECTION_BYTES": 16,
    "SECTIONS_PER_ROOT": 256,
    "MAX_PHYSMEM_BITS_4LVL": 46,
    "MAX_PHYSMEM_BITS_5LVL": 52,
    "PAGEBLOCK_ORDER": 9,
    "PAGEBLOCK_NR_PAGES": 1 << 9,
    "NR_PAGEBLOCK_BITS": 4,
    "USEMAP_BYTES": 32,
    "MEM_SECTION_USAGE_BYTES": 40,
    "MIGRATE_MOVABLE": 1,
    # §2.2 flag bits of section_mem_map
    "SECTION_MARKED_PRESENT": 1 << 0,
    "SECTION_HAS_MEM_MAP": 1 << 1,
    "SECTION_IS_ONLINE": 1 << 2,
    "SECTION_IS_EARLY": 1 << 3,
    "SECTION_TAINT_ZONE_DEVICE": 1 << 4,
    "SECTION_NID_SHIFT": 3,
    # §2.4 virtual layout (no KASLR)
    "VMEMMAP_BASE_4LVL": 0xFFFFEA0000000000,
    "VMEMMAP_BASE_5LVL": 0xFFD4000000000000,
    "PAGE_OFFSET_4LVL": 0xFFFF888000000000,
    "PAGE_OFFSET_5LVL": 0xFF11000000000000,
    # zones (x86_64: no HIGHMEM)
    "ZONE_DMA": 0,
    "ZONE_DMA32": 1,
    "ZONE_NORMAL": 2,
    "ZONE_MOVABLE": 3,
    "ZONE_DEVICE": 4,
    "MAX_NUMNODES": 1024,
    # vmemmap backing of a section's PMD slot (memremap-nvdimm.md §7.4)
    "VMM_NONE": 0,
    "VMM_BOOT_PMD": 1,
    "VMM_PMD_RAM": 2,
    "VMM_PMD_ALTMAP": 3,
    "VMM_PTE": 4,
    # usage origin
    "USAGE_NONE": 0,
    "USAGE_BOOT": 1,
    "USAGE_SLAB": 2,
    # zone/nid word of a never-initialised (poisoned) sub-section memmap
    "ZN_POISON": 0xFFFF,
}

#: ``#define`` names of the header that only the C code uses (no Python counterpart): the
#: root index arithmetic and the kernel-switch bits that the compiled core derives from a
#: :class:`sparsemem.kernel.KernelModel`.
C_ONLY = frozenset({
    "SECTION_ROOT_SHIFT", "SECTION_ROOT_MASK",
    "K_SUBSECTION", "K_SECTION_IS_EARLY", "K_SWALLOW_EEXIST", "K_KADDR_BUG",
    "K_EARLY_PARTIAL_FREE", "K_ENCODED_NULL", "K_USAGE_FREE_UNLESS_EARLY",
    "K_PROBE_ONLINE", "K_ONLINE_PAGE_FN", "K_TAINT_ZONE_DEVICE",
})
