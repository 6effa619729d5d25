/* The pure-C helpers of include/sparsemem.h on a small calloc'ed table (issue #6).
 * Built and run by tests/test_c_helpers.py; also meant for `valgrind --error-exitcode=1`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sparsemem.h"

static int failures;
#define CHECK(cond) do { if (!(cond)) { fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); failures++; } } while (0)

int main(void)
{
    /* sm_subsection_mask */
    CHECK(sm_subsection_mask(0, 1) == 1ULL);
    CHECK(sm_subsection_mask(0, SM_PAGES_PER_SECTION) == ~0ULL);
    CHECK(sm_subsection_mask(511, 2) == 3ULL);
    CHECK(sm_subsection_mask(SM_PAGES_PER_SECTION - 512, 512) == 1ULL << 63);
    CHECK(sm_subsection_mask(5 * SM_PAGES_PER_SECTION + 1024, 1024) == 0xcULL);

    /* sm_popcount_words: every tail length */
    uint64_t w[7] = {~0ULL, 1, 0, 3, 0x8000000000000000ULL, 0xff, 7};
    uint64_t expect[8] = {0, 64, 65, 65, 67, 68, 76, 79};
    for (int n = 0; n <= 7; n++)
        CHECK(sm_popcount_words(w, (uint64_t)n) == expect[n]);

    /* a table of 4 roots (1024 sections); root 0 is the shared empty root */
    enum { NR_ROOTS = 4 };
    uint32_t *root_idx = calloc(NR_ROOTS, sizeof *root_idx);
    sm_root **roots = calloc(3, sizeof *roots);
    if (!root_idx || !roots)
        return 2;
    for (int i = 0; i < 3; i++) {
        if (!(roots[i] = calloc(1, sizeof(sm_root))))
            return 2;
        sm_root_init(roots[i]);
    }
    root_idx[1] = 1;   /* sections 256..511 */
    root_idx[2] = 2;   /* sections 512..767; root 3 unallocated */
    const unsigned kf = SM_K_SUBSECTION | SM_K_SECTION_IS_EARLY;
    const uint64_t keep = (1ULL << 4) - 1;   /* v5.3: SECTION_MAP_LAST_BIT = 1 << 4 */
#define FRESH(r, j) ((int)(((r)->fresh[(j) >> 6] >> ((j) & 63)) & 1))
#define PLAIN(r, j) ((int)(((r)->plain[(j) >> 6] >> ((j) & 63)) & 1))

    /* sm_valid_word */
    sm_section s = {0};
    CHECK(sm_valid_word(&s, SM_K_SUBSECTION) == 0);
    s.mem_map = SM_SECTION_HAS_MEM_MAP | SM_SECTION_MARKED_PRESENT;
    s.usage = SM_USAGE_SLAB;
    s.subsection_map = 0xf0;
    CHECK(sm_valid_word(&s, SM_K_SUBSECTION) == 0xf0);
    CHECK(sm_valid_word(&s, 0) == ~0ULL);
    s.mem_map |= SM_SECTION_IS_EARLY;
    CHECK(sm_valid_word(&s, SM_K_SUBSECTION) == ~0ULL);

    /* the layout promises of the header: 32-byte sections, 10 KiB (+ 64 bytes of bits) roots */
    CHECK(sizeof(sm_section) == 32);
    CHECK(sizeof(sm_root) == 10240 + 64);

    /* bit runs */
    uint64_t bits[4] = {0};
    sm_bits_assign_range(bits, 60, 70, 1);                    /* 60..129 */
    CHECK(bits[0] == 0xfULL << 60 && bits[1] == ~0ULL && bits[2] == 3);
    CHECK(sm_run_length(bits, 60, 200) == 70);
    CHECK(sm_run_length(bits, 64, 10) == 10);
    CHECK(sm_run_length(bits, 59, 10) == 0);
    CHECK(sm_run_length(bits, 129, 1) == 1);
    sm_bits_assign_range(bits, 64, 64, 0);
    CHECK(bits[1] == 0 && bits[0] == 0xfULL << 60 && bits[2] == 3);
    sm_bits_assign_range(bits, 0, 256, 1);
    CHECK(sm_run_length(bits, 0, 256) == 256 && sm_run_length(bits, 255, 1) == 1);

    /* sm_sync_section: a calloc'ed section is fresh, a boot section neither fresh nor plain */
    CHECK(FRESH(roots[1], 5) && !PLAIN(roots[1], 5));
    roots[1]->sec[5].mem_map = SM_SECTION_MARKED_PRESENT | SM_SECTION_HAS_MEM_MAP | SM_SECTION_IS_EARLY;
    roots[1]->sec[5].usage = SM_USAGE_BOOT;
    roots[1]->sec[5].vmm = SM_VMM_BOOT_PMD;
    sm_sync_section(roots[1], 5, kf, keep);
    CHECK(!FRESH(roots[1], 5) && !PLAIN(roots[1], 5) && roots[1]->valid[5] == ~0ULL);
    memset(&roots[1]->sec[5], 0, sizeof(sm_section));
    sm_sync_section(roots[1], 5, kf, keep);
    CHECK(FRESH(roots[1], 5) && roots[1]->valid[5] == 0);

    /* a section with a memmap-contents block (index 1) is not fresh: the loop stops there */
    sm_ext *exts[2] = {NULL, calloc(1, sizeof(sm_ext))};
    if (!exts[1])
        return 2;
    roots[1]->sec[505 & SM_SECTION_ROOT_MASK].ext = 1;
    sm_sync_section(roots[1], 505 & SM_SECTION_ROOT_MASK, kf, keep);
    CHECK(!FRESH(roots[1], 505 & SM_SECTION_ROOT_MASK));
    CHECK(sm_section_ext(exts, &roots[1]->sec[505 & SM_SECTION_ROOT_MASK]) == exts[1]);
    CHECK(sm_section_ext(exts, &roots[1]->sec[506 & SM_SECTION_ROOT_MASK]) == NULL);
    uint64_t highest = 0;
    CHECK(sm_add_fresh_sections(roots, root_idx, 500, 16, 3, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest) == 5);
    CHECK(highest == 504);
    roots[1]->sec[505 & SM_SECTION_ROOT_MASK].ext = 0;
    sm_sync_section(roots[1], 505 & SM_SECTION_ROOT_MASK, kf, keep);

    /* add whole fresh sections 505..515, across the root boundary at 512 (root 2) */
    uint64_t done = sm_add_fresh_sections(roots, root_idx, 505, 11, 3, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest);
    CHECK(done == 11);
    CHECK(highest == 515);
    CHECK(roots[1]->valid[500 & SM_SECTION_ROOT_MASK] == ~0ULL);
    CHECK(roots[2]->sec[3].nid == 3);
    CHECK(roots[2]->sec[3].vmm == SM_VMM_PMD_RAM && roots[2]->sec[3].usage == SM_USAGE_SLAB);
    CHECK(roots[2]->sec[3].mem_map == (SM_SECTION_MARKED_PRESENT | SM_SECTION_HAS_MEM_MAP | SM_VMEMMAP_BASE_4LVL));
    CHECK(roots[2]->sec[3].subsection_map == ~0ULL && roots[2]->sec[3].vmm_mask == 0 && roots[2]->sec[3].ext == 0);
    /* the loop's own bookkeeping equals what sm_sync_section computes */
    for (int j = 0; j < 4; j++) {
        sm_root *r = roots[1 + j / 2];
        unsigned k = (j % 2) ? 3 : 250;
        uint64_t v = r->valid[k], f = r->fresh[k >> 6], pl = r->plain[k >> 6];
        sm_sync_section(r, k, kf, keep);
        CHECK(r->valid[k] == v && r->fresh[k >> 6] == f && r->plain[k >> 6] == pl);
    }
    CHECK(!FRESH(roots[2], 3) && PLAIN(roots[2], 3) && FRESH(roots[2], 4) && !PLAIN(roots[2], 4));
    /* adding again stops at once (not fresh) */
    CHECK(sm_add_fresh_sections(roots, root_idx, 500, 4, 0, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest) == 0);
    /* runs into the unallocated root 3 at section 768 */
    CHECK(sm_add_fresh_sections(roots, root_idx, 760, 20, 0, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest) == 8);
    CHECK(highest == 767);
    /* a count of 0 does nothing; a present section in the middle stops the loop there */
    CHECK(sm_add_fresh_sections(roots, root_idx, 600, 0, 0, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest) == 0);
    roots[2]->sec[602 & SM_SECTION_ROOT_MASK].mem_map = SM_SECTION_MARKED_PRESENT;
    sm_sync_section(roots[2], 602 & SM_SECTION_ROOT_MASK, kf, keep);
    CHECK(sm_add_fresh_sections(roots, root_idx, 600, 5, 0, ~0ULL, SM_VMEMMAP_BASE_4LVL, &highest) == 2);
    CHECK(sm_remove_full_sections(roots, root_idx, 600, 5, 0) == 2);
    roots[2]->sec[602 & SM_SECTION_ROOT_MASK].mem_map = 0;
    sm_sync_section(roots[2], 602 & SM_SECTION_ROOT_MASK, kf, keep);

    /* batch pfn_valid over the table, with pfns beyond the limit and in the empty root */
    uint64_t pfn_limit = (uint64_t)NR_ROOTS * SM_SECTIONS_PER_ROOT * SM_PAGES_PER_SECTION;
    uint64_t pfns[6] = {500 * SM_PAGES_PER_SECTION, 516 * SM_PAGES_PER_SECTION, 3, pfn_limit, ~0ULL,
                        767 * SM_PAGES_PER_SECTION + 32767};
    uint8_t out[6];
    sm_pfn_valid_batch(pfns, out, 6, root_idx, roots, pfn_limit);
    CHECK(out[0] == 1 && out[1] == 0 && out[2] == 0 && out[3] == 0 && out[4] == 0 && out[5] == 1);
    sm_pfn_valid_batch(pfns, out, 0, root_idx, roots, pfn_limit);   /* n = 0 touches nothing */
    /* runs within a section, leaving it, coming back, and running off the address space */
    uint64_t run[10] = {499 * SM_PAGES_PER_SECTION, 500 * SM_PAGES_PER_SECTION, 500 * SM_PAGES_PER_SECTION + 1,
                        500 * SM_PAGES_PER_SECTION + 2, 516 * SM_PAGES_PER_SECTION, 516 * SM_PAGES_PER_SECTION + 1,
                        500 * SM_PAGES_PER_SECTION + 3, 1024 * SM_PAGES_PER_SECTION - 1, pfn_limit, pfn_limit + 1};
    uint8_t got[10], want[10] = {0, 1, 1, 1, 0, 0, 1, 0, 0, 0};
    sm_pfn_valid_batch(run, got, 10, root_idx, roots, pfn_limit);
    CHECK(memcmp(got, want, sizeof want) == 0);
    sm_pfn_valid_batch(run + 1, got, 3, root_idx, roots, pfn_limit);   /* a run that ends the input */
    CHECK(got[0] == 1 && got[1] == 1 && got[2] == 1);

    /* remove: plain sections only (a 0xFD mark stops it); the encoded-NULL word in v5.3 */
    roots[1]->sec[510 & SM_SECTION_ROOT_MASK].vmm_mask = 1;
    sm_sync_section(roots[1], 510 & SM_SECTION_ROOT_MASK, kf, keep);
    CHECK(sm_remove_full_sections(roots, root_idx, 500, 16, 1) == 10);
    roots[1]->sec[510 & SM_SECTION_ROOT_MASK].vmm_mask = 0;
    sm_sync_section(roots[1], 510 & SM_SECTION_ROOT_MASK, kf, keep);
    done = sm_remove_full_sections(roots, root_idx, 510, 6, 1);
    CHECK(done == 6);
    CHECK(roots[1]->sec[500 & SM_SECTION_ROOT_MASK].mem_map == sm_encode_null(500));
    CHECK(roots[2]->sec[3].mem_map == sm_encode_null(515));
    CHECK(roots[2]->sec[3].usage == SM_USAGE_NONE && roots[2]->sec[3].vmm == SM_VMM_NONE);
    CHECK(roots[2]->sec[3].subsection_map == 0 && roots[2]->sec[3].nid == 3);
    CHECK(roots[1]->valid[500 & SM_SECTION_ROOT_MASK] == 0);
    CHECK(FRESH(roots[2], 3) && !PLAIN(roots[2], 3));
    CHECK(sm_remove_full_sections(roots, root_idx, 500, 16, 1) == 0);
    CHECK(sm_remove_full_sections(roots, root_idx, 760, 100, 0) == 8);
    CHECK(roots[2]->sec[760 & SM_SECTION_ROOT_MASK].mem_map == 0);
    sm_pfn_valid_batch(pfns, out, 6, root_idx, roots, pfn_limit);
    CHECK(out[0] == 0 && out[5] == 0);

    /* every section is fresh again */
    for (int i = 1; i < 3; i++)
        for (int w = 0; w < 4; w++)
            CHECK(roots[i]->fresh[w] == ~0ULL && roots[i]->plain[w] == 0);

    /* popcount over the validity words of all roots is 0 again */
    uint64_t total = 0;
    for (int i = 1; i < 3; i++)
        total += sm_popcount_words(roots[i]->valid, SM_SECTIONS_PER_ROOT);
    CHECK(total == 0);

    free(exts[1]);
    for (int i = 0; i < 3; i++)
        free(roots[i]);
    free(roots);
    free(root_idx);
    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("ok\n");
    return 0;
}
