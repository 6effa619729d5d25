# The C-level face of sparsemem._sparsecore, for Cython code that embeds the table:
#
#     from sparsemem._sparsecore cimport SectionTable
#     cdef SectionTable t = ...
#     with nogil:
#         ok = t.c_pfn_valid(pfn)
#         t.c_pfn_valid_batch(pfns, out, n)
#
# The public C methods are the c_* ones below; the header's numbers, structs and helpers come
# from sparsemem.csparsemem.  Compile such code with sparsemem.get_include() on the include
# path (include/sparsemem.h).

cimport cython
from libc.stdint cimport uint64_t, uint32_t, uint8_t, int64_t

from sparsemem.csparsemem cimport sm_ext, sm_root, sm_section

cdef extern from "pthread.h" nogil:
    ctypedef struct pthread_rwlock_t:
        pass


@cython.final
cdef class VmemAltmap:
    cdef public unsigned long long base_pfn
    cdef public unsigned long long reserve
    cdef public unsigned long long free
    cdef public unsigned long long align
    cdef public unsigned long long alloc

    # altmap_alloc_block_buf: first pfn of nr_pfns aligned pfns, or -1; vmem_altmap_free
    cdef int64_t c_alloc_block_buf(self, uint64_t nr_pfns) noexcept
    cdef void c_free(self, uint64_t nr_pfns) noexcept


@cython.final
cdef class SectionTable:
    # The table's state.  Cython needs every attribute of a cdef class declared here; they
    # are not an interface: read the table through the c_* methods or the Python methods.
    cdef object _model
    cdef readonly list dmesg
    cdef unsigned int kflags
    cdef int bits
    cdef uint64_t nr_sections
    cdef uint64_t nr_roots
    cdef uint64_t pfn_limit_
    cdef uint64_t vmemmap_base
    cdef uint64_t page_offset
    cdef uint64_t keep_mask
    cdef int nid_shift
    cdef uint32_t *root_idx
    cdef sm_root **roots
    cdef uint32_t nroots
    cdef uint32_t roots_cap
    cdef sm_ext **exts
    cdef uint32_t nexts
    cdef uint32_t exts_cap
    cdef uint64_t highest_present
    cdef int phase
    cdef bint sparse_init_done
    cdef object warned_once
    cdef int64_t n_boot_pmd, n_pmd_ram, n_pmd_alt, n_pages, n_tables, n_fd
    cdef pthread_rwlock_t lock

    # pfn_valid without locking: callers serialise with writers (e.g. hold the GIL)
    cdef bint c_pfn_valid(self, uint64_t pfn) noexcept nogil
    # batch pfn_valid under the table's read lock (may run without the GIL)
    cdef void c_pfn_valid_batch(self, const uint64_t *pfns, uint8_t *out, uint64_t n) noexcept nogil
    # __nr_to_section: the raw section (read-only view), NULL if its root is not allocated
    cdef sm_section *c_section(self, uint64_t nr) noexcept nogil
