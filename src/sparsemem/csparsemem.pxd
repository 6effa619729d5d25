# include/sparsemem.h for Cython: its numbers, structs and pure-C helpers, nothing else.
#
#     from sparsemem.csparsemem cimport SM_PAGES_PER_SECTION, sm_subsection_mask
#
# Compile with sparsemem.get_include() on the include path.  The table itself is cimported
# from sparsemem._sparsecore (see _sparsecore.pxd).

from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int32_t, int16_t

cdef extern from "sparsemem.h" nogil:
    # §1 constants
    const unsigned long long SM_PAGE_SHIFT, SM_PAGE_SIZE, SM_SECTION_SIZE_BITS, SM_PA_SECTION_SHIFT
    const unsigned long long SM_PFN_SECTION_SHIFT, SM_PAGES_PER_SECTION, SM_PAGE_SECTION_MASK
    const unsigned long long SM_SUBSECTION_SHIFT, SM_PFN_SUBSECTION_SHIFT, SM_PAGES_PER_SUBSECTION
    const unsigned long long SM_SUBSECTIONS_PER_SECTION, SM_STRUCT_PAGE_SIZE, SM_SECTION_MEMMAP_BYTES
    const unsigned long long SM_SUBSECTION_MEMMAP_PAGES, SM_PMD_SIZE, SM_PMD_PFNS, SM_MEM_SECTION_BYTES
    const unsigned long long SM_SECTIONS_PER_ROOT, SM_SECTION_ROOT_SHIFT, SM_SECTION_ROOT_MASK
    const unsigned long long SM_MAX_PHYSMEM_BITS_4LVL, SM_MAX_PHYSMEM_BITS_5LVL
    const unsigned long long SM_PAGEBLOCK_ORDER, SM_PAGEBLOCK_NR_PAGES, SM_NR_PAGEBLOCK_BITS
    const unsigned long long SM_USEMAP_BYTES, SM_MEM_SECTION_USAGE_BYTES, SM_MIGRATE_MOVABLE
    # §2.2 flag bits of section_mem_map
    const unsigned long long SM_SECTION_MARKED_PRESENT, SM_SECTION_HAS_MEM_MAP, SM_SECTION_IS_ONLINE
    const unsigned long long SM_SECTION_IS_EARLY, SM_SECTION_TAINT_ZONE_DEVICE, SM_SECTION_NID_SHIFT
    # §2.4 virtual layout
    const unsigned long long SM_VMEMMAP_BASE_4LVL, SM_VMEMMAP_BASE_5LVL
    const unsigned long long SM_PAGE_OFFSET_4LVL, SM_PAGE_OFFSET_5LVL
    # zones
    const int SM_ZONE_DMA, SM_ZONE_DMA32, SM_ZONE_NORMAL, SM_ZONE_MOVABLE, SM_ZONE_DEVICE
    const int SM_MAX_NUMNODES
    # behaviour switches (KernelModel fields as bits)
    const unsigned int SM_K_SUBSECTION, SM_K_SECTION_IS_EARLY, SM_K_SWALLOW_EEXIST, SM_K_KADDR_BUG
    const unsigned int SM_K_EARLY_PARTIAL_FREE, SM_K_ENCODED_NULL, SM_K_USAGE_FREE_UNLESS_EARLY
    const unsigned int SM_K_PROBE_ONLINE, SM_K_ONLINE_PAGE_FN, SM_K_TAINT_ZONE_DEVICE
    # vmemmap backing, usage origin, poisoned zone/nid
    const int SM_VMM_NONE, SM_VMM_BOOT_PMD, SM_VMM_PMD_RAM, SM_VMM_PMD_ALTMAP, SM_VMM_PTE
    const int SM_USAGE_NONE, SM_USAGE_BOOT, SM_USAGE_SLAB
    const unsigned int SM_ZN_POISON

    ctypedef struct sm_section:
        uint64_t mem_map
        uint64_t subsection_map
        uint64_t vmm_mask
        uint32_t ext
        int16_t nid
        uint8_t usage
        uint8_t vmm

    ctypedef struct sm_ext:
        uint64_t init_mask
        uint64_t pb_mask
        uint16_t zn[64]
        uint8_t has_zn

    ctypedef struct sm_root:
        uint64_t valid[256]
        uint64_t fresh[4]
        uint64_t plain[4]
        sm_section sec[256]

    # §2.3 helpers
    uint64_t sm_pfn_to_section_nr(uint64_t pfn)
    uint64_t sm_section_nr_to_pfn(uint64_t nr)
    unsigned sm_subsection_map_index(uint64_t pfn)
    uint64_t sm_subsection_mask(uint64_t pfn, uint64_t nr)
    uint64_t sm_valid_word(const sm_section *s, unsigned kflags)
    int sm_popcount64(uint64_t x)
    uint64_t sm_popcount_words(const uint64_t *w, uint64_t n)
    uint64_t sm_encode_null(uint64_t nr)
    sm_ext *sm_section_ext(sm_ext **exts, const sm_section *s)
    sm_section *sm_root_section(sm_root **roots, const uint32_t *root_idx, uint64_t nr, sm_root **rootp)
    # the derived words of a root (valid, fresh, plain)
    void sm_root_init(sm_root *r)
    void sm_sync_section(sm_root *r, uint64_t j, unsigned kflags, uint64_t keep)
    uint64_t sm_run_length(const uint64_t *bits, uint64_t j, uint64_t n)
    void sm_bits_assign_range(uint64_t *bits, uint64_t j, uint64_t n, int on)
    # the section loops of __add_pages / __remove_pages and the batch pfn_valid
    uint64_t sm_add_fresh_sections(sm_root **roots, const uint32_t *root_idx, uint64_t nr, uint64_t count,
                                   int32_t nid, uint64_t submap, uint64_t memmap_base, uint64_t *highest)
    uint64_t sm_remove_full_sections(sm_root **roots, const uint32_t *root_idx, uint64_t nr, uint64_t count,
                                     int encoded_null)
    void sm_pfn_valid_batch(const uint64_t *pfns, uint8_t *out, uint64_t n, const uint32_t *root_idx,
                            sm_root **roots, uint64_t pfn_limit)
