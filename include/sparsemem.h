/*
 * sparsemem.h - the single source of the numbers of the simulated x86_64 SPARSEMEM model
 * (CONFIG_SPARSEMEM_VMEMMAP, CONFIG_SPARSEMEM_EXTREME, 4 KiB pages, 64-byte struct page),
 * plus the small pure-C helpers that the compiled core (src/_sparsecore.pyx) inlines.
 *
 * Values follow docs/spec/sparse-hotplug.md §1-§2 and memremap-nvdimm.md §0.1/§7.
 * Python names them in sparsemem.constants, from the pure-Python table sparsemem/_header.py;
 * tests/test_core_constants.py parses the #defines below and holds that table (and the values
 * the compiled core was built with) to them.  Cython code reaches this header through
 * src/sparsemem/csparsemem.pxd.
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
#define SM_SECTION_TAINT_ZONE_DEVICE (1ULL << 4) /* v5.12+ (1f90a3477df3): a ZONE_DEVICE range starts
                                                  or ends inside this section; only a full
                                                  deactivation (section_mem_map = 0) clears it */
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
#define SM_K_USAGE_FREE_UNLESS_EARLY (1u << 6) /* usage_free_rule: set "unless_early" (v5.3-v5.4),
                                                  clear "unless_boot" (v5.5+: only a slab usage) */
#define SM_K_PROBE_ONLINE          (1u << 7)   /* shrink_probes_online_sections (v5.4+): the span probes
                                                  take a pfn through pfn_to_online_page */
#define SM_K_ONLINE_PAGE_FN        (1u << 8)   /* pfn_to_online_page_subsection (v5.12+): that function
                                                  also tests the sub-section bit and the TAINT slow path */
#define SM_K_TAINT_ZONE_DEVICE     (1u << 9)   /* section_taint_zone_device (v5.12+) */

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

/* One mem_section with its usage and the simulation's bookkeeping: 32 bytes, two per cache
 * line.  What only memmap_init_zone writes (the initialised sub-sections, their zone/nid and
 * the pageblock flags) lives in a separate sm_ext block, allocated on first use. */
typedef struct sm_section {
    uint64_t mem_map;          /* section_mem_map: flags | encoded memmap / early nid */
    uint64_t subsection_map;   /* usage->subsection_map (valid iff usage != NONE) */
    uint64_t vmm_mask;         /* SM_VMM_PTE: sub-sections whose 8 memmap pages exist;
                                  huge PMD (BOOT_PMD, PMD_RAM, PMD_ALTMAP): sub-sections of
                                  memmap filled with 0xFD; SM_VMM_NONE: 0 */
    uint32_t ext;              /* index of the section's sm_ext block, 0: none (all zero) */
    int16_t  nid;              /* node recorded by memory_present / sparse_add_section */
    uint8_t  usage;            /* SM_USAGE_* */
    uint8_t  vmm;              /* SM_VMM_* */
} sm_section;

/* The memmap contents of one section, written by memmap_init_zone only; a section without one
 * reads as all zero (no sub-section initialised, no pageblock MIGRATE_MOVABLE). */
typedef struct sm_ext {
    uint64_t init_mask;        /* sub-sections whose struct pages were initialised */
    uint64_t pb_mask;          /* usage->pageblock_flags: pageblocks set to MIGRATE_MOVABLE
                                  (the only migratetype the simulation writes; 4 bits each
                                  in the kernel's usemap, one bit each here); read only
                                  while the section has a usage */
    uint16_t zn[64];           /* zone/nid word per sub-section (meaningful where init_mask) */
    uint8_t  has_zn;           /* zn was written (memmap_init_zone ran on the section) */
    uint8_t  pad[7];
} sm_ext;

/* One SPARSEMEM_EXTREME root: SECTIONS_PER_ROOT sections, plus words derived from them:
 * - valid: per section, the sub-sections for which pfn_valid is true (kept first, so batch
 *   lookups touch 2 KiB/root);
 * - fresh / plain: one bit per section for the two states that the whole-section loops of
 *   __add_pages / __remove_pages turn into each other (sm_sync_section defines them), so that
 *   those loops find runs of such sections by bit scans and only store.
 * Every change of a section goes through sm_sync_section, except the two loops, which keep
 * the words right themselves. */
typedef struct sm_root {
    uint64_t valid[SM_SECTIONS_PER_ROOT];
    uint64_t fresh[SM_SECTIONS_PER_ROOT / 64];
    uint64_t plain[SM_SECTIONS_PER_ROOT / 64];
    sm_section sec[SM_SECTIONS_PER_ROOT];
} sm_root;

/* the layout promises above, checked by the compiler */
_Static_assert(sizeof(sm_section) == 32, "sm_section is 32 bytes");
_Static_assert(sizeof(sm_root) == SM_SECTIONS_PER_ROOT * 40 + 64, "sm_root is 10 KiB + 64 bytes");

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

/* the sm_ext block of a section, NULL when it has none */
static inline sm_ext *sm_section_ext(sm_ext *const *exts, const sm_section *s)
{
    return s->ext ? exts[s->ext] : NULL;
}

/* ---- the derived words of a root ------------------------------------------------------ */
/* A root as calloc() leaves it, made consistent: every (all-zero) section is fresh. */
static inline void sm_root_init(sm_root *r)
{
    for (unsigned i = 0; i < SM_SECTIONS_PER_ROOT / 64; i++)
        r->fresh[i] = ~0ULL;
}

static inline void sm_bit_assign(uint64_t *bits, uint64_t j, int on)
{
    uint64_t bit = 1ULL << (j & 63);
    bits[j >> 6] = on ? bits[j >> 6] | bit : bits[j >> 6] & ~bit;
}

/* Recompute the derived words of section j of root r after any change to it.  `keep` is the
 * table's SECTION_MAP_LAST_BIT - 1 (the flag bits a new memmap word keeps).
 * fresh: what a whole-section hot-add may take without looking: no usage, no memmap, no
 *        flag bits (so not present), no sm_ext block.
 * plain: what such a hot-add leaves and a whole-section hot-remove may take without looking:
 *        a slab usage with the full bitmap (none in the legacy era), a RAM PMD without 0xFD
 *        marks, a memmap, not early, no sm_ext block. */
static inline void sm_sync_section(sm_root *r, uint64_t j, unsigned kflags, uint64_t keep)
{
    const sm_section *s = &r->sec[j];
    uint64_t full_map = (kflags & SM_K_SUBSECTION) ? ~0ULL : 0;
    r->valid[j] = sm_valid_word(s, kflags);
    sm_bit_assign(r->fresh, j, s->usage == SM_USAGE_NONE && s->vmm == SM_VMM_NONE && !s->vmm_mask && !s->ext
                                   && !(s->mem_map & keep));
    sm_bit_assign(r->plain, j, s->usage == SM_USAGE_SLAB && s->vmm == SM_VMM_PMD_RAM && !s->vmm_mask && !s->ext
                                   && s->subsection_map == full_map
                                   && (s->mem_map & (SM_SECTION_IS_EARLY | SM_SECTION_HAS_MEM_MAP))
                                          == SM_SECTION_HAS_MEM_MAP);
}

/* How many consecutive bits are set in `bits` from bit j on, at most n (j + n <= 256). */
static inline uint64_t sm_run_length(const uint64_t *bits, uint64_t j, uint64_t n)
{
    uint64_t k = 0;
    while (k < n) {
        uint64_t pos = j + k, avail = 64 - (pos & 63), inv = ~(bits[pos >> 6] >> (pos & 63));
        uint64_t ones = inv ? (uint64_t)__builtin_ctzll(inv) : 64;
        if (ones < avail) {
            k += ones;
            break;
        }
        k += avail;
    }
    return k < n ? k : n;
}

/* Set (on) or clear bits j .. j + n - 1 of `bits`. */
static inline void sm_bits_assign_range(uint64_t *bits, uint64_t j, uint64_t n, int on)
{
    while (n) {
        uint64_t off = j & 63, m = 64 - off < n ? 64 - off : n;
        uint64_t mask = (m == 64 ? ~0ULL : ((1ULL << m) - 1)) << off;
        bits[j >> 6] = on ? bits[j >> 6] | mask : bits[j >> 6] & ~mask;
        j += m;
        n -= m;
    }
}

/* ---- fast paths of the __add_pages/__remove_pages section loops ------------------------- */
/* Activate up to `count` whole sections from `nr` on, each fresh (sm_sync_section), with a
 * RAM PMD of memmap and no altmap: exactly what section_activate + sparse_add_section do for
 * such a section (their sm_ext-held fields are zero and stay so).  Stops at the first section
 * that is not fresh or whose root is not allocated; returns how many it did.  `submap` is the
 * bitmap to store (all ones; 0 in the legacy era, which has none); the sections become plain. */
static inline uint64_t sm_add_fresh_sections(sm_root *const *roots, const uint32_t *root_idx, uint64_t nr,
                                             uint64_t count, int32_t nid, uint64_t submap, uint64_t memmap_base,
                                             uint64_t *highest)
{
    /* ext 0 | nid | usage | vmm: the last 8 bytes of the section, in one store */
    uint64_t tail = ((uint64_t)(uint16_t)nid << 32) | ((uint64_t)SM_USAGE_SLAB << 48)
                    | ((uint64_t)SM_VMM_PMD_RAM << 56);
    uint64_t word = SM_SECTION_MARKED_PRESENT | memmap_base | SM_SECTION_HAS_MEM_MAP;
    uint64_t done = 0;
    while (done < count) {
        uint32_t idx = root_idx[nr >> SM_SECTION_ROOT_SHIFT];
        if (!idx)
            break;
        sm_root *r = roots[idx];
        uint64_t j = nr & SM_SECTION_ROOT_MASK, n = SM_SECTIONS_PER_ROOT - j;
        if (n > count - done)
            n = count - done;
        uint64_t k = sm_run_length(r->fresh, j, n);
        sm_section *s = &r->sec[j];
        for (uint64_t i = 0; i < k; i++) {
            s[i].mem_map = word;
            s[i].subsection_map = submap;
            memcpy(&s[i].ext, &tail, sizeof tail);
        }
        memset(&r->valid[j], 0xff, k * sizeof(uint64_t));
        sm_bits_assign_range(r->fresh, j, k, 0);
        sm_bits_assign_range(r->plain, j, k, 1);
        done += k;
        nr += k;
        if (k < n)
            break;
    }
    if (done && nr - 1 > *highest)
        *highest = nr - 1;
    return done;
}

/* Deactivate up to `count` whole sections from `nr` on, each plain (sm_sync_section): what
 * section_deactivate does for them without an altmap (the word becomes `sm_encode_null(nr)`
 * or 0 as `encoded_null` says; the sections become fresh).  Stops at the first other
 * section; returns how many it did. */
static inline uint64_t sm_remove_full_sections(sm_root *const *roots, const uint32_t *root_idx, uint64_t nr,
                                               uint64_t count, int encoded_null)
{
    const uint16_t none = (uint16_t)(SM_USAGE_NONE | (SM_VMM_NONE << 8));
    uint64_t step = encoded_null ? (1ULL << 21) : 0;
    uint64_t done = 0;
    while (done < count) {
        uint32_t idx = root_idx[nr >> SM_SECTION_ROOT_SHIFT];
        if (!idx)
            break;
        sm_root *r = roots[idx];
        uint64_t j = nr & SM_SECTION_ROOT_MASK, n = SM_SECTIONS_PER_ROOT - j;
        if (n > count - done)
            n = count - done;
        uint64_t k = sm_run_length(r->plain, j, n);
        uint64_t word = encoded_null ? sm_encode_null(nr) : 0;
        sm_section *s = &r->sec[j];
        for (uint64_t i = 0; i < k; i++, word -= step) {
            s[i].mem_map = word;
            s[i].subsection_map = 0;
            memcpy(&s[i].usage, &none, sizeof none);
        }
        memset(&r->valid[j], 0, k * sizeof(uint64_t));
        sm_bits_assign_range(r->plain, j, k, 0);
        sm_bits_assign_range(r->fresh, j, k, 1);
        done += k;
        nr += k;
        if (k < n)
            break;
    }
    return done;
}

/* ---- the batch pfn_valid kernel (runs without the GIL) -------------------------------- */
/* roots[idx[r]] is the root of root number r; idx 0 is a shared all-zero root.  The validity
 * word of the last section looked up is kept; from the first pfn that hits it again (the input
 * runs through a section, as a sequential scan does) a tight loop answers pfns from it until
 * one leaves the section.  A separate function, aligned, so that the speed of this loop does
 * not depend on where the code around it puts it. */
__attribute__((noinline, aligned(64), unused))
static void sm_pfn_valid_batch(const uint64_t *pfns, uint8_t *out, uint64_t n,
                               const uint32_t *root_idx, sm_root *const *roots, uint64_t pfn_limit)
{
    uint64_t last_sec = ~0ULL, base = 0, word = 0, i = 0;
    while (i < n) {
        uint64_t pfn = pfns[i], sec = pfn >> SM_PFN_SECTION_SHIFT;
        if (sec != last_sec) {
            if (pfn >= pfn_limit) {
                out[i++] = 0;
                continue;
            }
            last_sec = sec;
            base = sec << SM_PFN_SECTION_SHIFT;
            word = roots[root_idx[sec >> SM_SECTION_ROOT_SHIFT]]->valid[sec & SM_SECTION_ROOT_MASK];
            out[i++] = (uint8_t)((word >> ((pfn >> SM_PFN_SUBSECTION_SHIFT) & 63)) & 1);
            continue;
        }
        do   /* a run in section last_sec, which lies below pfn_limit */
            out[i++] = (uint8_t)((word >> ((pfn >> SM_PFN_SUBSECTION_SHIFT) & 63)) & 1);
        while (i < n && (pfn = pfns[i]) - base < SM_PAGES_PER_SECTION);
    }
}

#endif /* SPARSEMEM_H */
