/*
 * sparsemem.h - the single source of the numbers of the simulated x86_64 SPARSEMEM model
 * (CONFIG_SPARSEMEM_VMEMMAP, CONFIG_SPARSEMEM_EXTREME, 4 KiB pages, 64-byte struct page),
 * plus the small pure-C helpers that the compiled core (src/_sparsecore.pyx) inlines.
 *
 * Values follow ../shared/spec/sparse-hotplug.md §1-§2 and memremap-nvdimm.md §0.1/§7.
 * Python reads them back through sparsemem.constants (which imports them from the
 * compiled module), so nothing here is repeated elsewhere.
 */
#ifndef SPARSEMEM_H
#define SPARSEMEM_H

#include <stdint.h>
#include <string.h>

/* ---- §1 constants ---------------------------------------------------------------- */
#define SM_PAGE_SHIFT              12
#define SM_PAGE_SIZE               (1ULL << SM_PAGE_SHIFT)
#define SM_SECTION_SIZE_BITS       27                  /* 128 MiB sections */
#define SM_PA_SECTION_SHIFT        SM_SECTION_SIZE_BITS
#define SM_PFN_SECTION_SHIFT       (SM_SECTION_SIZE_BITS - SM_PAGE_SHIFT)   /* 15 */
#define SM_PAGES_PER_SECTION       (1ULL << SM_PFN_SECTION_SHIFT)           /* 32768 */
#define SM_PAGE_SECTION_MASK       (~(SM_PAGES_PER_SECTION - 1))
#define SM_SUBSECTION_SHIFT        21                  /* 2 MiB sub-sections */
#define SM_PFN_SUBSECTION_SHIFT    (SM_SUBSECTION_SHIFT - SM_PAGE_SHIFT)    /* 9 */
#define SM_PAGES_PER_SUBSECTION    (1ULL << SM_PFN_SUBSECTION_SHIFT)        /* 512 */
#define SM_SUBSECTIONS_PER_SECTION (1 << (SM_SECTION_SIZE_BITS - SM_SUBSECTION_SHIFT)) /* 64 */
#define SM_STRUCT_PAGE_SIZE        64
#define SM_SECTION_MEMMAP_BYTES    (SM_PAGES_PER_SECTION * SM_STRUCT_PAGE_SIZE)  /* 2 MiB = 1 PMD */
#define SM_SUBSECTION_MEMMAP_PAGES 8    /* 512 struct pages * 64 B / 4 KiB */
#define SM_PMD_SIZE                (1ULL << 21)
#define SM_PMD_PFNS                512
#define SM_MEM_SECTION_BYTES       16   /* sizeof(struct mem_section) without PAGE_EXTENSION */
#define SM_SECTIONS_PER_ROOT       256  /* PAGE_SIZE / sizeof(struct mem_section) */
#define SM_SECTION_ROOT_SHIFT      8
#define SM_SECTION_ROOT_MASK       (SM_SECTIONS_PER_ROOT - 1)
#define SM_MAX_PHYSMEM_BITS_4LVL   46
#define SM_MAX_PHYSMEM_BITS_5LVL   52
#define SM_PAGEBLOCK_ORDER         9
#define SM_PAGEBLOCK_NR_PAGES      (1ULL << SM_PAGEBLOCK_ORDER)
#define SM_NR_PAGEBLOCK_BITS       4
#define SM_USEMAP_BYTES            32   /* 64 pageblocks * 4 bits */
#define SM_MEM_SECTION_USAGE_BYTES 40   /* subsection_map + usemap (v5.3 - v6.7) */
#define SM_MIGRATE_MOVABLE         1

/* ---- §2.2 flag bits of section_mem_map ------------------------------------------- */
#define SM_SECTION_MARKED_PRESENT  (1ULL << 0)
#define SM_SECTION_HAS_MEM_MAP     (1ULL << 1)
#define SM_SECTION_IS_ONLINE       (1ULL << 2)
#define SM_SECTION_IS_EARLY        (1ULL << 3)   /* v5.3+ */
#define SM_SECTION_NID_SHIFT       3

/* ---- §2.4 virtual layout used for the encoded memmap (no KASLR) ----------------- */
#define SM_VMEMMAP_BASE_4LVL       0xffffea0000000000ULL
#define SM_VMEMMAP_BASE_5LVL       0xffd4000000000000ULL
#define SM_PAGE_OFFSET_4LVL        0xffff888000000000ULL
#define SM_PAGE_OFFSET_5LVL        0xff11000000000000ULL

/* ---- zones (x86_64: no HIGHMEM) --------------------------------------------------- */
#define SM_ZONE_DMA                0
#define SM_ZONE_DMA32              1
#define SM_ZONE_NORMAL             2
#define SM_ZONE_MOVABLE            3
#define SM_ZONE_DEVICE             4
#define SM_MAX_NUMNODES            1024 /* NODES_SHIFT 10 (MAXSMP) */

/* ---- behaviour switches: KernelModel fields as bits (_kernel_flags in _sparsecore.pyx) -- */
#define SM_K_SUBSECTION            (1u << 0)
#define SM_K_SECTION_IS_EARLY      (1u << 1)
#define SM_K_SWALLOW_EEXIST        (1u << 2)
#define SM_K_KADDR_BUG             (1u << 3)
#define SM_K_EARLY_PARTIAL_FREE    (1u << 4)
#define SM_K_ENCODED_NULL          (1u << 5)
#define SM_K_USAGE_FREE_UNLESS_EARLY (1u << 6)

/* ---- vmemmap backing of one section's PMD slot (memremap-nvdimm.md §7.4) ----------- */
#define SM_VMM_NONE                0   /* nothing mapped */
#define SM_VMM_BOOT_PMD            1   /* 2 MiB from memblock at boot */
#define SM_VMM_PMD_RAM             2   /* 2 MiB huge page from RAM */
#define SM_VMM_PMD_ALTMAP          3   /* 2 MiB huge page from a device altmap */
#define SM_VMM_PTE                 4   /* PTE table + 4 KiB RAM pages per sub-section */

/* usage origin */
#define SM_USAGE_NONE              0
#define SM_USAGE_BOOT              1   /* memblock array from sparse_init_nid (PageReserved) */
#define SM_USAGE_SLAB              2   /* kzalloc'ed by section_activate */

/* memmap zone/nid of one sub-section: zone in bits 0-2, nid from bit 3; this value
 * means "never initialised / poisoned" (page_init_poison fills struct pages with 0xff). */
#define SM_ZN_POISON               0xffffu

/* One mem_section with its usage and the simulation's bookkeeping: one 64-byte cache line. */
typedef struct sm_section {
    uint64_t mem_map;          /* section_mem_map: flags | encoded memmap / early nid */
    uint64_t subsection_map;   /* usage->subsection_map (valid iff usage != NONE) */
    uint64_t init_mask;        /* sub-sections whose struct pages were initialised */
    uint64_t pte_mask;         /* SM_VMM_PTE: sub-sections whose 8 memmap pages exist */
    uint64_t fd_mask;          /* huge PMD: sub-sections of memmap filled with 0xFD */
    uint64_t pb_mask;          /* usage->pageblock_flags: pageblocks set to MIGRATE_MOVABLE
                                  (the only migratetype the simulation writes; 4 bits each
                                  in the kernel's usemap, one bit each here) */
    uint16_t *zn;              /* 64 zone/nid words, allocated on first memmap_init_zone */
    int32_t  nid;              /* node recorded by memory_present / sparse_add_section */
    uint8_t  usage;            /* SM_USAGE_* */
    uint8_t  vmm;              /* SM_VMM_* */
    uint8_t  pad[2];
} sm_section;

/* One SPARSEMEM_EXTREME root: SECTIONS_PER_ROOT sections, plus the derived validity word
 * of each section (what pfn_valid tests), kept first so batch lookups touch 2 KiB/root. */
typedef struct sm_root {
    uint64_t valid[SM_SECTIONS_PER_ROOT];
    sm_section sec[SM_SECTIONS_PER_ROOT];
} sm_root;

/* ---- §2.3 helpers ---------------------------------------------------------------- */
static inline uint64_t sm_pfn_to_section_nr(uint64_t pfn) { return pfn >> SM_PFN_SECTION_SHIFT; }
static inline uint64_t sm_section_nr_to_pfn(uint64_t nr) { return nr << SM_PFN_SECTION_SHIFT; }
static inline unsigned sm_subsection_map_index(uint64_t pfn)
{
    return (unsigned)((pfn & (SM_PAGES_PER_SECTION - 1)) >> SM_PFN_SUBSECTION_SHIFT);
}

/* subsection_mask_set for a range inside one section, nr >= 1: bits index(pfn) ..
 * index(pfn + nr - 1) inclusive (partially covered sub-sections are included). */
static inline uint64_t sm_subsection_mask(uint64_t pfn, uint64_t nr)
{
    unsigned first = sm_subsection_map_index(pfn);
    unsigned last = sm_subsection_map_index(pfn + nr - 1);
    uint64_t upto_last = (last == 63) ? ~0ULL : ((1ULL << (last + 1)) - 1);
    return upto_last & ~((1ULL << first) - 1);
}

/* derived validity word: which sub-sections of the section are pfn_valid (§4.2) */
static inline uint64_t sm_valid_word(const sm_section *s, unsigned kflags)
{
    if (!(s->mem_map & SM_SECTION_HAS_MEM_MAP))
        return 0;
    if (!(kflags & SM_K_SUBSECTION))
        return ~0ULL;                      /* <= v5.2: pfn_valid == valid_section */
    if (s->mem_map & SM_SECTION_IS_EARLY)
        return ~0ULL;                      /* early sections are valid for all pfns */
    return s->usage ? s->subsection_map : 0;
}

__attribute__((target("popcnt")))
static inline int sm_popcount64(uint64_t x) { return __builtin_popcountll(x); }

__attribute__((target("popcnt")))
static inline uint64_t sm_popcount_words(const uint64_t *w, uint64_t n)
{
    uint64_t a = 0, b = 0, c = 0, d = 0, i = 0, whole = n & ~(uint64_t)3;
    for (; i < whole; i += 4) {
        a += __builtin_popcountll(w[i]);
        b += __builtin_popcountll(w[i + 1]);
        c += __builtin_popcountll(w[i + 2]);
        d += __builtin_popcountll(w[i + 3]);
    }
    for (; i < n; i++)
        a += __builtin_popcountll(w[i]);
    return a + b + c + d;
}


/* sparse_encode_mem_map(NULL, nr) written on full deactivation in v5.3-v5.5: -(nr << 21) */
static inline uint64_t sm_encode_null(uint64_t nr) { return (uint64_t)0 - (nr << 21); }

/* __nr_to_section over allocated roots only: NULL when the root of `nr` is not allocated;
 * `*rootp` gets the root (for its validity words). */
static inline sm_section *sm_root_section(sm_root *const *roots, const uint32_t *root_idx, uint64_t nr,
                                          sm_root **rootp)
{
    uint32_t idx = root_idx[nr >> SM_SECTION_ROOT_SHIFT];
    if (!idx)
        return NULL;
    *rootp = roots[idx];
    return &(*rootp)->sec[nr & SM_SECTION_ROOT_MASK];
}

/* ---- fast paths of the __add_pages/__remove_pages section loops ------------------------- */
/* Activate up to `count` whole sections from `nr` on, each fresh (no usage, no memmap, not
 * present), with a RAM PMD of memmap and no altmap: exactly what section_activate +
 * sparse_add_section do for such a section.  Stops at the first section that is not fresh or
 * whose root is not allocated; returns how many it did.  `submap` is the bitmap to store
 * (all ones; 0 in the legacy era, which has none). */
static inline uint64_t sm_add_fresh_sections(sm_root *const *roots, const uint32_t *root_idx, uint64_t nr,
                                             uint64_t count, int32_t nid, uint64_t submap, uint64_t keep,
                                             uint64_t memmap_base, uint64_t *highest)
{
    uint64_t i;
    for (i = 0; i < count; i++, nr++) {
        sm_root *r;
        sm_section *s = sm_root_section(roots, root_idx, nr, &r);
        if (!s || (s->usage | s->vmm | (s->mem_map & SM_SECTION_MARKED_PRESENT)))
            break;
        s->usage = SM_USAGE_SLAB;
        s->subsection_map = submap;
        s->pb_mask = 0;
        s->vmm = SM_VMM_PMD_RAM;
        s->fd_mask = 0;
        s->init_mask = 0;
        s->mem_map = ((s->mem_map | SM_SECTION_MARKED_PRESENT) & keep) | memmap_base | SM_SECTION_HAS_MEM_MAP;
        s->nid = nid;
        r->valid[nr & SM_SECTION_ROOT_MASK] = ~0ULL;
    }
    if (i && nr - 1 > *highest)
        *highest = nr - 1;
    return i;
}

/* Deactivate up to `count` whole hot-added sections from `nr` on, each with a full bitmap
 * (`full_map`), a RAM PMD, no 0xFD marks and not early, without an altmap: what
 * section_deactivate does for them (the word becomes `sm_encode_null(nr)` or 0 as
 * `encoded_null` says).  Stops at the first other section; returns how many it did. */
static inline uint64_t sm_remove_full_sections(sm_root *const *roots, const uint32_t *root_idx, uint64_t nr,
                                               uint64_t count, uint64_t full_map, int encoded_null)
{
    uint64_t i;
    for (i = 0; i < count; i++, nr++) {
        sm_root *r;
        sm_section *s = sm_root_section(roots, root_idx, nr, &r);
        if (!s || s->usage != SM_USAGE_SLAB || s->vmm != SM_VMM_PMD_RAM || s->fd_mask || s->subsection_map != full_map
            || (s->mem_map & (SM_SECTION_IS_EARLY | SM_SECTION_HAS_MEM_MAP)) != SM_SECTION_HAS_MEM_MAP)
            break;
        s->mem_map = encoded_null ? sm_encode_null(nr) : 0;
        s->subsection_map = 0;
        s->usage = SM_USAGE_NONE;
        s->vmm = SM_VMM_NONE;
        s->init_mask = 0;
        r->valid[nr & SM_SECTION_ROOT_MASK] = 0;
    }
    return i;
}

/* ---- the batch pfn_valid kernel (runs without the GIL) -------------------------------- */
/* roots[idx[r]] is the root of root number r; idx 0 is a shared all-zero root. */
static inline void sm_pfn_valid_batch(const uint64_t *pfns, uint8_t *out, uint64_t n,
                                      const uint32_t *root_idx, sm_root *const *roots,
                                      uint64_t pfn_limit)
{
    uint64_t last_sec = ~0ULL, word = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t pfn = pfns[i];
        uint64_t sec = pfn >> SM_PFN_SECTION_SHIFT;
        if (sec != last_sec) {
            if (pfn >= pfn_limit) {
                out[i] = 0;
                continue;
            }
            last_sec = sec;
            word = roots[root_idx[sec >> SM_SECTION_ROOT_SHIFT]]->valid[sec & SM_SECTION_ROOT_MASK];
        }
        out[i] = (uint8_t)((word >> ((pfn >> SM_PFN_SUBSECTION_SHIFT) & 63)) & 1);
    }
}

#endif /* SPARSEMEM_H */
