/* The pure-C helpers of include/sparsemem.h on a small calloc'ed table (issue #6).
 * Built and run by tests/test_c_helpers.py; also meant for `valgrind --error-exitcode=1`. */
#include <stdio.h>
#include <stdlib.h>
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
    for (int i = 0; i < 3; i++)
        if (!(roots[i] = calloc(1, sizeof(sm_root))))
            return 2;
    root_idx[1] = 1;   /* sections 256..511 */
    root_idx[2] = 2;   /* sections 512..767; root 3 unallocated */

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

    /* add whole fresh sections 500..515: stops at the unallocated root? no, 512.. is root 2 */
    uint64_t highest = 0;
    uint64_t keep = (1ULL << 4) - 1;
    uint64_t done = sm_add_fresh_sections(roots, root_idx, 500, 16, 3, ~0ULL, keep, SM_VMEMMAP_BASE_4LVL, &highest);
    CHECK(done == 16);
    CHECK(highest == 515);
    CHECK(roots[1]->valid[500 & SM_SECTION_ROOT_MASK] == ~0ULL);
    CHECK(roots[2]->sec[3].nid == 3);
    /* adding again stops at once (not fresh) */
    CHECK(sm_add_fresh_sections(roots, root_idx, 500, 4, 0, ~0ULL, keep, SM_VMEMMAP_BASE_4LVL, &highest) == 0);
    /* runs into the unallocated root 3 at section 768 */
    CHECK(sm_add_fresh_sections(roots, root_idx, 760, 20, 0, ~0ULL, keep, SM_VMEMMAP_BASE_4LVL, &highest) == 8);
    CHECK(highest == 767);

    /* batch pfn_valid over the table, with pfns beyond the limit and in the empty root */
    uint64_t pfn_limit = (uint64_t)NR_ROOTS * SM_SECTIONS_PER_ROOT * SM_PAGES_PER_SECTION;
    uint64_t pfns[6] = {500 * SM_PAGES_PER_SECTION, 516 * SM_PAGES_PER_SECTION, 3, pfn_limit, ~0ULL,
                        767 * SM_PAGES_PER_SECTION + 32767};
    uint8_t out[6];
    sm_pfn_valid_batch(pfns, out, 6, root_idx, roots, pfn_limit);
    CHECK(out[0] == 1 && out[1] == 0 && out[2] == 0 && out[3] == 0 && out[4] == 0 && out[5] == 1);
    sm_pfn_valid_batch(pfns, out, 0, root_idx, roots, pfn_limit);   /* n = 0 touches nothing */

    /* remove: full sections only; the encoded-NULL word in v5.3 */
    done = sm_remove_full_sections(roots, root_idx, 500, 16, ~0ULL, 1);
    CHECK(done == 16);
    CHECK(roots[1]->sec[500 & SM_SECTION_ROOT_MASK].mem_map == sm_encode_null(500));
    CHECK(roots[1]->valid[500 & SM_SECTION_ROOT_MASK] == 0);
    CHECK(sm_remove_full_sections(roots, root_idx, 500, 16, ~0ULL, 1) == 0);
    CHECK(sm_remove_full_sections(roots, root_idx, 760, 100, ~0ULL, 0) == 8);
    CHECK(roots[2]->sec[760 & SM_SECTION_ROOT_MASK].mem_map == 0);
    sm_pfn_valid_batch(pfns, out, 6, root_idx, roots, pfn_limit);
    CHECK(out[0] == 0 && out[5] == 0);

    /* popcount over the validity words of all roots is 0 again */
    uint64_t total = 0;
    for (int i = 1; i < 3; i++)
        total += sm_popcount_words(roots[i]->valid, SM_SECTIONS_PER_ROOT);
    CHECK(total == 0);

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
