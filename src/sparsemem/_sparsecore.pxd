# The C-level face of sparsemem._sparsecore, for Cython code that embeds the table:
#
#     from sparsemem._sparsecore cimport SectionTable
#     cdef SectionTable t = ...
#     with nogil:
#         ok = t.c_pfn_valid(pfn)
#         t.c_pfn_valid_batch(pfns, out, n)
#
# Compile such code with sparsemem.get_include() on the include path (include/sparsemem.h).

cimport cython
from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int32_t, int64_t

cdef extern from "pthread.h" nogil:
    ctypedef struct pthread_rwlock_t:
        pass

cdef extern from "sparsemem.h" nogil:
    ctypedef struct sm_section:
        uint64_t mem_map
        uint64_t subsection_map
        uint64_t init_mask
        uint64_t pte_mask
        uint64_t fd_mask
        uint64_t pb_mask
        uint16_t *zn
        int32_t nid
        uint8_t usage
        uint8_t vmm

    ctypedef struct sm_root:
        uint64_t valid[256]
        sm_section sec[256]


@cython.final
cdef class VmemAltmap:
    cdef public unsigned long long base_pfn
    cdef public unsigned long long reserve
    cdef public unsigned long long free
    cdef public unsigned long long align
    cdef public unsigned long long alloc
    cdef int64_t c_alloc_block_buf(self, uint64_t nr_pfns) noexcept
    cdef void c_free(self, uint64_t nr_pfns) noexcept


@cython.final
cdef class SectionTable:
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
    cdef uint64_t highest_present
    cdef int phase
    cdef bint sparse_init_done
    cdef object warned_once
    cdef int64_t n_boot_pmd, n_pmd_ram, n_pmd_alt, n_pages, n_tables, n_fd, n_zn
    cdef pthread_rwlock_t lock

    cdef bint c_pfn_valid(self, uint64_t pfn) noexcept nogil
    cdef void c_pfn_valid_batch(self, const uint64_t *pfns, uint8_t *out, uint64_t n) noexcept nogil
    cdef sm_section *c_section(self, uint64_t nr) noexcept nogil

    # private helpers (declared here because Cython needs every cdef method in the .pxd)
    cdef inline void _set_valid(self, uint64_t nr, sm_section *s) noexcept
    cdef int _index_init(self, uint64_t nr) except -1
    cdef inline int64_t _nr(self, object nr) except? -2
    cdef inline sm_section *_sec_obj(self, object nr) except? NULL
    cdef inline int _valid_obj(self, object pfn) except -1
    cdef int _zn(self, object pfn) except -2
    cdef inline int _zn_c(self, uint64_t pfn) noexcept
    cdef _enter_hotplug(self, str what)
    cdef _warn(self, str where, str text)
    cdef _warn_once(self, object key, str where, str text)
    cdef VmemAltmap _altmap(self, object altmap)
    cdef inline void _acct(self, sm_section *s, int sign) noexcept
    cdef bint _populate(self, sm_section *s, uint64_t mask, bint full, VmemAltmap altmap) noexcept
    cdef inline void _free_pmd(self, sm_section *s, VmemAltmap altmap) noexcept
    cdef void _depopulate(self, sm_section *s, uint64_t mask, VmemAltmap altmap) noexcept
    cdef inline void _free_whole_memmap(self, sm_section *s) noexcept
    cdef _free_usage(self, sm_section *s, uint64_t nr)
    cdef inline void _mark_present(self, sm_section *s, uint64_t nr, int nid) noexcept
    cdef int _legacy_add_section(self, uint64_t nr, int nid, VmemAltmap altmap) except? -999
    cdef int _add_piece(self, int nid, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except? -999
    cdef _raise_add(self, int rc, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap)
    cdef int _remove_piece(self, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except -1
    cdef _set_online(self, object start_pfn, object end_pfn, bint online, str what)
    cdef inline bint _probe(self, uint64_t pfn, int nid, int zone) noexcept
    cdef inline bint _section_valid(self, uint64_t nr) noexcept
    cdef list _rows(self, bint all_fields)
    cdef int _section_activate(self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except? -999
    cdef int _section_deactivate(self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except -1
