# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, embedsignature.format=clinic, binding=True
"""The compiled core of sparsemem: ``mm/sparse.c`` over flat C arrays.

``SectionTable`` is the ``mem_section`` array of one x86_64 machine with
SPARSEMEM_VMEMMAP + SPARSEMEM_EXTREME: a root index allocated whole and roots of
SECTIONS_PER_ROOT sections allocated on first use, each section with its
``section_mem_map`` word, its usage (sub-section bitmap and pageblock flags), the zone/nid
of its memmap per sub-section, and the vmemmap accounting of
../shared/spec/memremap-nvdimm.md §7.  Its answers equal those of the readable
:mod:`sparsemem.reference` twin; the differential tests hold them to that.

Besides the kernel's fields every root keeps one derived word per section: the sub-sections
for which ``pfn_valid`` is true.  ``pfn_valid`` reads only that word, which keeps the batch
lookup within a few KiB per root.

Concurrency: every mutating method runs with the GIL held and the table's write lock;
``pfn_valid_many`` releases the GIL and holds the read lock per chunk of 2**20 pfns, so a
batch reader sees every section either before or after a concurrent change.
"""

cimport cython
from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int32_t, int64_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memset, memcpy

import numpy as np

from sparsemem.errors import KernelBug
from sparsemem.kernel import as_model

cdef extern from "Python.h":
    long long PyLong_AsLongLongAndOverflow(object o, int *overflow) except? -1

cdef extern from "pthread.h" nogil:
    int pthread_rwlock_init(pthread_rwlock_t *lock, void *attr)
    int pthread_rwlock_destroy(pthread_rwlock_t *lock)
    int pthread_rwlock_rdlock(pthread_rwlock_t *lock)
    int pthread_rwlock_wrlock(pthread_rwlock_t *lock)
    int pthread_rwlock_unlock(pthread_rwlock_t *lock)

cdef extern from "sparsemem.h" nogil:
    const unsigned long long SM_PAGE_SHIFT, SM_PAGE_SIZE, SM_SECTION_SIZE_BITS, SM_PA_SECTION_SHIFT
    const unsigned long long SM_PFN_SECTION_SHIFT, SM_PAGES_PER_SECTION, SM_PAGE_SECTION_MASK
    const unsigned long long SM_SUBSECTION_SHIFT, SM_PFN_SUBSECTION_SHIFT, SM_PAGES_PER_SUBSECTION
    const unsigned long long SM_SUBSECTIONS_PER_SECTION, SM_STRUCT_PAGE_SIZE, SM_SECTION_MEMMAP_BYTES
    const unsigned long long SM_SUBSECTION_MEMMAP_PAGES, SM_PMD_SIZE, SM_PMD_PFNS, SM_MEM_SECTION_BYTES
    const unsigned long long SM_SECTIONS_PER_ROOT, SM_SECTION_ROOT_SHIFT, SM_SECTION_ROOT_MASK
    const unsigned long long SM_MAX_PHYSMEM_BITS_4LVL, SM_MAX_PHYSMEM_BITS_5LVL
    const unsigned long long SM_PAGEBLOCK_ORDER, SM_PAGEBLOCK_NR_PAGES, SM_NR_PAGEBLOCK_BITS
    const unsigned long long SM_USEMAP_BYTES, SM_MEM_SECTION_USAGE_BYTES, SM_MIGRATE_MOVABLE
    const unsigned long long SM_SECTION_MARKED_PRESENT, SM_SECTION_HAS_MEM_MAP, SM_SECTION_IS_ONLINE
    const unsigned long long SM_SECTION_IS_EARLY, SM_SECTION_NID_SHIFT
    const unsigned long long SM_VMEMMAP_BASE_4LVL, SM_VMEMMAP_BASE_5LVL
    const unsigned long long SM_PAGE_OFFSET_4LVL, SM_PAGE_OFFSET_5LVL
    const int SM_ZONE_DMA, SM_ZONE_DMA32, SM_ZONE_NORMAL, SM_ZONE_MOVABLE, SM_ZONE_DEVICE
    const int SM_MAX_NUMNODES
    const unsigned int SM_K_SUBSECTION, SM_K_SECTION_IS_EARLY, SM_K_SWALLOW_EEXIST, SM_K_KADDR_BUG
    const unsigned int SM_K_EARLY_PARTIAL_FREE, SM_K_ENCODED_NULL, SM_K_USAGE_FREE_UNLESS_EARLY
    const int SM_VMM_NONE, SM_VMM_BOOT_PMD, SM_VMM_PMD_RAM, SM_VMM_PMD_ALTMAP, SM_VMM_PTE
    const int SM_USAGE_NONE, SM_USAGE_BOOT, SM_USAGE_SLAB
    const unsigned int SM_ZN_POISON

    uint64_t sm_subsection_mask(uint64_t pfn, uint64_t nr)
    uint64_t sm_valid_word(const sm_section *s, unsigned kflags)
    int sm_popcount64(uint64_t x)
    uint64_t sm_popcount_words(const uint64_t *w, uint64_t n)
    uint64_t sm_encode_null(uint64_t nr)
    uint64_t sm_add_fresh_sections(sm_root **roots, const uint32_t *root_idx, uint64_t nr, uint64_t count,
                                   int32_t nid, uint64_t submap, uint64_t keep, uint64_t memmap_base,
                                   uint64_t *highest)
    uint64_t sm_remove_full_sections(sm_root **roots, const uint32_t *root_idx, uint64_t nr, uint64_t count,
                                     uint64_t full_map, int encoded_null)
    void sm_pfn_valid_batch(const uint64_t *pfns, uint8_t *out, uint64_t n, const uint32_t *root_idx,
                            sm_root **roots, uint64_t pfn_limit)

_CONSTANTS = dict(
    PAGE_SHIFT=SM_PAGE_SHIFT, PAGE_SIZE=SM_PAGE_SIZE, SECTION_SIZE_BITS=SM_SECTION_SIZE_BITS,
    PA_SECTION_SHIFT=SM_PA_SECTION_SHIFT, PFN_SECTION_SHIFT=SM_PFN_SECTION_SHIFT,
    PAGES_PER_SECTION=SM_PAGES_PER_SECTION, PAGE_SECTION_MASK=-<long long>SM_PAGES_PER_SECTION,
    SUBSECTION_SHIFT=SM_SUBSECTION_SHIFT, PFN_SUBSECTION_SHIFT=SM_PFN_SUBSECTION_SHIFT,
    PAGES_PER_SUBSECTION=SM_PAGES_PER_SUBSECTION, SUBSECTIONS_PER_SECTION=SM_SUBSECTIONS_PER_SECTION,
    SECTIONS_PER_ROOT=SM_SECTIONS_PER_ROOT, MEM_SECTION_BYTES=SM_MEM_SECTION_BYTES,
    MAX_PHYSMEM_BITS_4LVL=SM_MAX_PHYSMEM_BITS_4LVL, MAX_PHYSMEM_BITS_5LVL=SM_MAX_PHYSMEM_BITS_5LVL,
    STRUCT_PAGE_SIZE=SM_STRUCT_PAGE_SIZE, SECTION_MEMMAP_BYTES=SM_SECTION_MEMMAP_BYTES,
    SUBSECTION_MEMMAP_PAGES=SM_SUBSECTION_MEMMAP_PAGES, PMD_SIZE=SM_PMD_SIZE, PMD_PFNS=SM_PMD_PFNS,
    PAGEBLOCK_ORDER=SM_PAGEBLOCK_ORDER, PAGEBLOCK_NR_PAGES=SM_PAGEBLOCK_NR_PAGES,
    NR_PAGEBLOCK_BITS=SM_NR_PAGEBLOCK_BITS, USEMAP_BYTES=SM_USEMAP_BYTES,
    MEM_SECTION_USAGE_BYTES=SM_MEM_SECTION_USAGE_BYTES, MIGRATE_MOVABLE=SM_MIGRATE_MOVABLE,
    SECTION_MARKED_PRESENT=SM_SECTION_MARKED_PRESENT, SECTION_HAS_MEM_MAP=SM_SECTION_HAS_MEM_MAP,
    SECTION_IS_ONLINE=SM_SECTION_IS_ONLINE, SECTION_IS_EARLY=SM_SECTION_IS_EARLY,
    SECTION_NID_SHIFT=SM_SECTION_NID_SHIFT,
    VMEMMAP_BASE_4LVL=SM_VMEMMAP_BASE_4LVL, VMEMMAP_BASE_5LVL=SM_VMEMMAP_BASE_5LVL,
    PAGE_OFFSET_4LVL=SM_PAGE_OFFSET_4LVL, PAGE_OFFSET_5LVL=SM_PAGE_OFFSET_5LVL,
    ZONE_DMA=SM_ZONE_DMA, ZONE_DMA32=SM_ZONE_DMA32, ZONE_NORMAL=SM_ZONE_NORMAL,
    ZONE_MOVABLE=SM_ZONE_MOVABLE, ZONE_DEVICE=SM_ZONE_DEVICE, MAX_NUMNODES=SM_MAX_NUMNODES,
    VMM_NONE=SM_VMM_NONE, VMM_BOOT_PMD=SM_VMM_BOOT_PMD, VMM_PMD_RAM=SM_VMM_PMD_RAM,
    VMM_PMD_ALTMAP=SM_VMM_PMD_ALTMAP, VMM_PTE=SM_VMM_PTE,
    USAGE_NONE=SM_USAGE_NONE, USAGE_BOOT=SM_USAGE_BOOT, USAGE_SLAB=SM_USAGE_SLAB,
    ZN_POISON=SM_ZN_POISON,
)

cdef enum:
    EEXIST_ = 17
    ENOMEM_ = 12
    FRESH = 0
    PRESENT = 1
    BOOTED = 2
    BATCH_CHUNK = 1 << 20

cdef uint64_t ALL = 0xffffffffffffffffULL
cdef uint64_t PPS = SM_PAGES_PER_SECTION


K = C = None  # sparsemem._common and sparsemem.constants, bound at the end of the module


cdef class VmemAltmap:
    """``struct vmem_altmap`` and its bump allocator (memremap-nvdimm.md §6.6).

    ``base_pfn`` is the first pfn the altmap manages, ``reserve`` pfns at its start are never
    handed out, ``free`` pfns are available for memmap, ``align`` counts pfns skipped for
    alignment (never decremented) and ``alloc`` the pfns currently handed out.
    """

    def __init__(self, base_pfn, reserve=0, free=0, align=0, alloc=0):
        self.base_pfn = K.unsigned(base_pfn, "base_pfn")
        self.reserve = K.unsigned(reserve, "reserve")
        self.free = K.unsigned(free, "free")
        self.align = K.unsigned(align, "align")
        self.alloc = K.unsigned(alloc, "alloc")

    def offset(self):
        """``vmem_altmap_offset``: pfns from ``base_pfn`` that are not device data."""
        return self.reserve + self.free

    def next_pfn(self):
        """``vmem_altmap_next_pfn``."""
        return <uint64_t>(self.base_pfn + self.reserve + self.alloc + self.align)

    def nr_free(self):
        """``vmem_altmap_nr_free``: pfns still available (never negative)."""
        cdef uint64_t allocated = self.alloc + self.align
        return self.free - allocated if self.free > allocated else 0

    cdef int64_t c_alloc_block_buf(self, uint64_t nr_pfns) noexcept:
        cdef uint64_t nr_align, pfn, pad, allocated, avail
        if nr_pfns == 0:
            return -1
        nr_align = nr_pfns & (~nr_pfns + 1)
        pfn = self.base_pfn + self.reserve + self.alloc + self.align
        pad = ((pfn + nr_align - 1) & ~(nr_align - 1)) - pfn
        allocated = self.alloc + self.align
        avail = self.free - allocated if self.free > allocated else 0
        if nr_pfns + pad > avail:
            return -1
        self.alloc += nr_pfns
        self.align += pad
        return <int64_t>(pfn + pad)

    cdef void c_free(self, uint64_t nr_pfns) noexcept:
        self.alloc -= nr_pfns

    def alloc_block_buf(self, nr_pfns):
        """``altmap_alloc_block_buf``: first pfn of ``nr_pfns`` aligned pfns, or None."""
        cdef int64_t pfn = self.c_alloc_block_buf(K.unsigned(nr_pfns, "nr_pfns"))
        return None if pfn < 0 else pfn

    def free_pfns(self, nr_pfns):
        """``vmem_altmap_free``: ``alloc -= nr`` (unsigned, as in the kernel)."""
        self.c_free(K.unsigned(nr_pfns, "nr_pfns"))

    def _fields(self):
        return (self.base_pfn, self.reserve, self.free, self.align, self.alloc)

    def __eq__(self, other):
        if not hasattr(other, "base_pfn"):
            return NotImplemented
        return self._fields() == (other.base_pfn, other.reserve, other.free, other.align, other.alloc)

    __hash__ = None

    def __repr__(self):
        return "VmemAltmap(base_pfn=0x%x, reserve=%d, free=%d, align=%d, alloc=%d)" % self._fields()

    def __reduce__(self):
        return (type(self), self._fields())


cdef unsigned int _kernel_flags(object model):
    """The switches of a KernelModel that the C helpers read, as include/sparsemem.h's SM_K_* bits."""
    return ((SM_K_SUBSECTION if model.subsection else 0)
            | (SM_K_SECTION_IS_EARLY if model.section_is_early else 0)
            | (SM_K_SWALLOW_EEXIST if model.add_pages_swallows_eexist else 0)
            | (SM_K_KADDR_BUG if model.subsection_memmap_kaddr_bug else 0)
            | (SM_K_EARLY_PARTIAL_FREE if model.early_partial_remove_frees_memmap else 0)
            | (SM_K_ENCODED_NULL if model.deactivate_writes_encoded_null else 0)
            | (SM_K_USAGE_FREE_UNLESS_EARLY if model.usage_freed_unless_early else 0))


cdef inline int64_t _small_index(object v) except? -2:
    """A Python int as a non-negative int64, or -1 for negative / too large values."""
    cdef int ovf = 0
    cdef long long x
    if type(v) is not int:
        v = K.index(v, "value")
    x = PyLong_AsLongLongAndOverflow(v, &ovf)
    if ovf != 0 or x < 0:
        return -1
    return x


cdef class SectionTable:
    """``mem_section[]`` of one x86_64 machine (SPARSEMEM_VMEMMAP + SPARSEMEM_EXTREME).

    ``SectionTable(max_physmem_bits=46, kernel="5.3")``: 46 for 4-level paging, 52 for
    5-level.  ``kernel`` selects the behaviour era (:mod:`sparsemem.kernel`).  Boot with
    ``memory_present`` per memblock range, ``sparse_init()``, then ``subsection_map_init``
    per range (../shared/spec/sparse-hotplug.md §3); hot-add and remove with
    ``sparse_add_section``/``sparse_remove_section`` (§5-§6) or the ``__add_pages``-style
    ``sparse_add_range``/``sparse_remove_range``.

    Concurrency (../shared/spec/sparse-hotplug.md §11): every mutating method (and
    ``__setstate__``) holds the table's write lock for the whole call, with the GIL held, so
    writers are serialised and each call is one atomic write, however many sections it
    touches (``sparse_add_range`` of N sections included).  ``pfn_valid_many`` releases the
    GIL and takes the read lock once per chunk of 2**20 pfns: within a chunk every answer
    comes from the same state between two writes, so each section is seen before or after a
    change, never torn (different chunks of one batch may straddle a write).  The scalar
    queries run with the GIL held and so never overlap a writer.  The kernel's
    use-after-free of CVE-2023-52489 (a lockless ``pfn_valid`` loading ``ms->usage`` that
    ``section_deactivate`` has just freed) cannot happen here: the bitmap a reader tests is
    the per-root validity word, and roots (with their words and usage fields) are allocated
    once and freed only by ``__dealloc__``, which cannot run while a reader's method call
    holds a reference to the table; the root-pointer array, which ``realloc`` may move, is
    only read under the read lock.  Tested by tests/test_concurrency.py.
    """

    def __cinit__(self, max_physmem_bits=46, kernel="5.3"):
        self.root_idx = NULL
        self.roots = NULL
        pthread_rwlock_init(&self.lock, NULL)

    def __init__(self, max_physmem_bits=46, kernel="5.3"):
        if self.roots != NULL:
            raise RuntimeError("SectionTable.__init__ called twice")
        cdef int bits = K.check_bits(max_physmem_bits)
        self._model = as_model(kernel)
        self.kflags = _kernel_flags(self._model)
        self.bits = bits
        self.nr_sections = 1ULL << (bits - SM_SECTION_SIZE_BITS)
        self.nr_roots = (self.nr_sections + SM_SECTIONS_PER_ROOT - 1) // SM_SECTIONS_PER_ROOT
        self.pfn_limit_ = 1ULL << (bits - SM_PAGE_SHIFT)
        self.vmemmap_base = SM_VMEMMAP_BASE_4LVL if bits == 46 else SM_VMEMMAP_BASE_5LVL
        self.page_offset = SM_PAGE_OFFSET_4LVL if bits == 46 else SM_PAGE_OFFSET_5LVL
        self.keep_mask = <uint64_t>self._model.section_map_last_bit - 1
        self.nid_shift = self._model.section_nid_shift
        self.root_idx = <uint32_t *>calloc(self.nr_roots, sizeof(uint32_t))
        self.roots_cap = 16
        self.roots = <sm_root **>calloc(self.roots_cap, sizeof(sm_root *))
        if self.root_idx == NULL or self.roots == NULL:
            raise MemoryError()
        self.roots[0] = <sm_root *>calloc(1, sizeof(sm_root))  # the shared empty root
        if self.roots[0] == NULL:
            raise MemoryError()
        self.nroots = 1
        self.highest_present = 0
        self.phase = FRESH
        self.sparse_init_done = False
        self.warned_once = set()
        self.dmesg = []

    def __dealloc__(self):
        cdef uint32_t i
        cdef int j
        if self.roots != NULL:
            for i in range(self.nroots):
                if self.roots[i] != NULL:
                    for j in range(SM_SECTIONS_PER_ROOT):
                        free(self.roots[i].sec[j].zn)
                    free(self.roots[i])
            free(self.roots)
        free(self.root_idx)
        pthread_rwlock_destroy(&self.lock)

    # ------------------------------------------------------------------ properties
    @property
    def kernel(self):
        """The kernel version this table models (e.g. ``"5.3"``)."""
        return self._model.name

    @property
    def model(self):
        """The :class:`sparsemem.kernel.KernelModel` of ``kernel``."""
        return self._model

    @property
    def max_physmem_bits(self):
        """MAX_PHYSMEM_BITS: 46 (4-level paging) or 52 (5-level)."""
        return self.bits

    @property
    def nr_mem_sections(self):
        """NR_MEM_SECTIONS: 2**19 (46 bits) or 2**25 (52 bits)."""
        return self.nr_sections

    @property
    def nr_section_roots(self):
        """NR_SECTION_ROOTS: 2048 (46 bits) or 131072 (52 bits)."""
        return self.nr_roots

    @property
    def pfn_limit(self):
        """First pfn beyond the physical address space (``1 << (MAX_PHYSMEM_BITS - 12)``)."""
        return self.pfn_limit_

    @property
    def highest_present_section_nr(self):
        """``__highest_present_section_nr``: raised when a section becomes present, never lowered."""
        return self.highest_present

    @property
    def nr_roots_allocated(self):
        """Roots of SECTIONS_PER_ROOT sections allocated so far."""
        return self.nroots - 1

    @property
    def nbytes(self):
        """Host bytes this table holds: root index, root pointers, roots, zone/nid arrays."""
        return (<object>type(self)).__basicsize__ + self.nr_roots * sizeof(uint32_t) \
            + self.roots_cap * sizeof(sm_root *) + self.nroots * sizeof(sm_root) \
            + self.n_zn * SM_SUBSECTIONS_PER_SECTION * sizeof(uint16_t)

    # ------------------------------------------------------------------ C-level access
    cdef sm_section *c_section(self, uint64_t nr) noexcept nogil:
        """``__nr_to_section``: NULL for an unallocated root or nr beyond NR_MEM_SECTIONS."""
        cdef uint32_t idx
        if nr >= self.nr_sections:
            return NULL
        idx = self.root_idx[nr >> SM_SECTION_ROOT_SHIFT]
        if idx == 0:
            return NULL
        return &self.roots[idx].sec[nr & SM_SECTION_ROOT_MASK]

    cdef bint c_pfn_valid(self, uint64_t pfn) noexcept nogil:
        """``pfn_valid`` without locking: callers serialise with writers (e.g. hold the GIL)."""
        cdef uint64_t nr
        if pfn >= self.pfn_limit_:
            return False
        nr = pfn >> SM_PFN_SECTION_SHIFT
        return (self.roots[self.root_idx[nr >> SM_SECTION_ROOT_SHIFT]].valid[nr & SM_SECTION_ROOT_MASK]
                >> ((pfn >> SM_PFN_SUBSECTION_SHIFT) & 63)) & 1

    cdef void c_pfn_valid_batch(self, const uint64_t *pfns, uint8_t *out, uint64_t n) noexcept nogil:
        """Batch ``pfn_valid`` under the read lock, one chunk of 2**20 pfns at a time."""
        cdef uint64_t done = 0, chunk
        while done < n:
            chunk = n - done
            if chunk > BATCH_CHUNK:
                chunk = BATCH_CHUNK
            pthread_rwlock_rdlock(&self.lock)
            sm_pfn_valid_batch(pfns + done, out + done, chunk, self.root_idx, self.roots, self.pfn_limit_)
            pthread_rwlock_unlock(&self.lock)
            done += chunk

    cdef inline void _set_valid(self, uint64_t nr, sm_section *s) noexcept:
        self.roots[self.root_idx[nr >> SM_SECTION_ROOT_SHIFT]].valid[nr & SM_SECTION_ROOT_MASK] = \
            sm_valid_word(s, self.kflags)

    cdef int _index_init(self, uint64_t nr) except -1:
        """``sparse_index_init``: allocate the root that holds section ``nr``."""
        cdef uint64_t r = nr >> SM_SECTION_ROOT_SHIFT
        cdef sm_root **grown
        cdef sm_root *root
        if self.root_idx[r]:
            return 0
        if self.nroots == self.roots_cap:
            grown = <sm_root **>realloc(self.roots, 2 * self.roots_cap * sizeof(sm_root *))
            if grown == NULL:
                raise MemoryError()
            self.roots = grown
            self.roots_cap *= 2
        root = <sm_root *>calloc(1, sizeof(sm_root))
        if root == NULL:
            raise MemoryError()
        self.roots[self.nroots] = root
        self.root_idx[r] = self.nroots
        self.nroots += 1
        return 0

    cdef inline int64_t _nr(self, object nr) except? -2:
        cdef int64_t v = _small_index(nr)
        if v < 0 or <uint64_t>v >= self.nr_sections:
            return -1
        return v

    cdef inline sm_section *_sec_obj(self, object nr) except? NULL:
        cdef int64_t v = self._nr(nr)
        if v < 0:
            return NULL
        return self.c_section(<uint64_t>v)

    # ------------------------------------------------------------------ section queries
    def present_section_nr(self, nr):
        """``present_section_nr``: SECTION_MARKED_PRESENT is set."""
        cdef sm_section *s = self._sec_obj(nr)
        return s != NULL and (s.mem_map & SM_SECTION_MARKED_PRESENT) != 0

    def valid_section_nr(self, nr):
        """``valid_section_nr``: SECTION_HAS_MEM_MAP is set."""
        cdef sm_section *s = self._sec_obj(nr)
        return s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP) != 0

    def online_section_nr(self, nr):
        """``online_section_nr``: SECTION_IS_ONLINE is set."""
        cdef sm_section *s = self._sec_obj(nr)
        return s != NULL and (s.mem_map & SM_SECTION_IS_ONLINE) != 0

    def early_section_nr(self, nr):
        """``early_section``: SECTION_IS_EARLY is set (never in the legacy era)."""
        cdef sm_section *s = self._sec_obj(nr)
        return (s != NULL and (self.kflags & SM_K_SECTION_IS_EARLY) != 0
                and (s.mem_map & SM_SECTION_IS_EARLY) != 0)

    def subsection_map(self, nr):
        """``usage->subsection_map`` of section ``nr`` (0 without a usage; always 0 in legacy)."""
        cdef sm_section *s = self._sec_obj(nr)
        if s == NULL or s.usage == SM_USAGE_NONE or not (self.kflags & SM_K_SUBSECTION):
            return 0
        return s.subsection_map

    def section_mem_map(self, nr):
        """The raw ``section_mem_map`` word (flags, encoded memmap or early nid)."""
        cdef sm_section *s = self._sec_obj(nr)
        return s.mem_map if s != NULL else 0

    def section_nid(self, nr):
        """Node recorded for section ``nr`` by ``memory_present``/``sparse_add_section`` (-1: none)."""
        cdef sm_section *s = self._sec_obj(nr)
        if s == NULL or not (s.mem_map & SM_SECTION_MARKED_PRESENT):
            return -1
        return s.nid

    def section_usage(self, nr):
        """Where section ``nr``'s usage came from: ``"boot"``, ``"slab"`` or None."""
        cdef sm_section *s = self._sec_obj(nr)
        return C.USAGE_NAMES[s.usage] if s != NULL else None

    def pageblock_flags(self, nr):
        """``usage->pageblock_flags`` as a 256-bit integer (4 bits per 2 MiB pageblock)."""
        cdef sm_section *s = self._sec_obj(nr)
        if s == NULL or s.usage == SM_USAGE_NONE:
            return 0
        return K.pageblock_flags_word(s.pb_mask)

    def section_vmemmap(self, nr):
        """How section ``nr``'s memmap is mapped: None, "boot-pmd", "pmd-ram", "pmd-altmap", "pte"."""
        cdef sm_section *s = self._sec_obj(nr)
        return C.VMM_NAMES[s.vmm] if s != NULL else None

    # ------------------------------------------------------------------ pfn queries
    cdef inline int _valid_obj(self, object pfn) except -1:
        cdef int ovf = 0
        cdef long long v
        if type(pfn) is not int:
            pfn = K.index(pfn, "pfn")
        v = PyLong_AsLongLongAndOverflow(pfn, &ovf)
        if ovf != 0 or v < 0:
            return 0
        return self.c_pfn_valid(<uint64_t>v)

    @cython.binding(False)
    @cython.always_allow_keywords(False)
    def pfn_valid(self, pfn):
        """``pfn_valid`` (§4.2): legacy = ``valid_section``; v5.3 adds the early/bitmap test.

        Any int is accepted; a pfn beyond the physical address space is not valid.
        """
        return self._valid_obj(pfn) == 1

    def __contains__(self, pfn):
        return self._valid_obj(pfn) == 1

    def pfn_valid_many(self, pfns, out=None):
        """``pfn_valid`` of every element of an integer array-like, as a bool array.

        ``out`` (optional) is a C-contiguous bool array of the same shape.  The loop runs
        without the GIL.
        """
        arr, out = K.batch_args(pfns, out)
        cdef const uint64_t[::1] a = arr.reshape(-1)
        cdef uint8_t[::1] o = out.reshape(-1).view(np.uint8)
        cdef uint64_t n = a.shape[0]
        if n:
            with nogil:
                self.c_pfn_valid_batch(&a[0], &o[0], n)
        return out

    cdef int _zn(self, object pfn) except -2:
        cdef int64_t v = _small_index(pfn)
        if v < 0 or <uint64_t>v >= self.pfn_limit_:
            return -1
        return self._zn_c(<uint64_t>v)

    cdef inline int _zn_c(self, uint64_t pfn) noexcept:
        cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
        cdef unsigned sub
        if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
            return -1
        sub = (pfn >> SM_PFN_SUBSECTION_SHIFT) & 63
        if not ((s.init_mask >> sub) & 1):
            return -1
        return s.zn[sub]

    def pfn_to_nid(self, pfn):
        """Node of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent."""
        cdef int zn = self._zn(pfn)
        return -1 if zn < 0 else zn >> 3

    def page_zonenum(self, pfn):
        """Zone index of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent."""
        cdef int zn = self._zn(pfn)
        return -1 if zn < 0 else zn & 7

    # ------------------------------------------------------------------ helpers
    cdef _enter_hotplug(self, str what):
        if self.phase == PRESENT:
            raise RuntimeError(f"{what}: memory_present() ran but sparse_init() has not: finish booting first")
        self.phase = BOOTED

    cdef _warn(self, str where, str text):
        self.dmesg.append(f"WARNING: at {where}: {text}")

    cdef _warn_once(self, object key, str where, str text):
        if key not in self.warned_once:
            self.warned_once.add(key)
            self._warn(where, text)

    cdef VmemAltmap _altmap(self, object altmap):
        if altmap is not None and not isinstance(altmap, VmemAltmap):
            raise TypeError(f"altmap must be a {__name__}.VmemAltmap or None, not {type(altmap).__name__}")
        return altmap

    cdef inline void _acct(self, sm_section *s, int sign) noexcept:
        """Add (sign=1) or remove (sign=-1) section ``s``'s vmemmap from the counters."""
        if s.vmm == SM_VMM_BOOT_PMD:
            self.n_boot_pmd += sign
        elif s.vmm == SM_VMM_PMD_RAM:
            self.n_pmd_ram += sign
        elif s.vmm == SM_VMM_PMD_ALTMAP:
            self.n_pmd_alt += sign
        elif s.vmm == SM_VMM_PTE:
            self.n_tables += sign
            self.n_pages += sign * SM_SUBSECTION_MEMMAP_PAGES * sm_popcount64(s.pte_mask)
        if s.vmm == SM_VMM_BOOT_PMD or s.vmm == SM_VMM_PMD_RAM or s.vmm == SM_VMM_PMD_ALTMAP:
            self.n_fd += sign * sm_popcount64(s.fd_mask)

    # ------------------------------------------------------------------ boot (§3)
    def memory_present(self, nid, start_pfn, end_pfn):
        """``memory_present`` (§3.1): mark the sections of a memblock range present with nid."""
        nid = K.check_nid(nid)
        cdef uint64_t start = K.unsigned(start_pfn, "start_pfn")
        cdef uint64_t end = K.unsigned(end_pfn, "end_pfn")
        cdef uint64_t pfn, nr
        cdef sm_section *s
        if start > end:
            raise ValueError(f"memory_present: start_pfn 0x{start:x} > end_pfn 0x{end:x}")
        if self.phase == BOOTED:
            raise RuntimeError("memory_present() after sparse_init() or a hot-add: boot ranges come first")
        self.phase = PRESENT
        start &= ~(PPS - 1)
        if start > self.pfn_limit_:
            self._warn_once(("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                            f"Start of range {start} -> {end} exceeds SPARSEMEM max {self.pfn_limit_}")
            start = end = self.pfn_limit_
        elif end > self.pfn_limit_:
            self._warn_once(("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                            f"End of range {start} -> {end} exceeds SPARSEMEM max {self.pfn_limit_}, truncating")
            end = self.pfn_limit_
        pthread_rwlock_wrlock(&self.lock)
        try:
            pfn = start
            while pfn < end:
                nr = pfn >> SM_PFN_SECTION_SHIFT
                self._index_init(nr)
                s = self.c_section(nr)
                if s.mem_map == 0:
                    s.mem_map = ((<uint64_t>nid) << self.nid_shift) | SM_SECTION_IS_ONLINE
                    s.nid = nid
                    s.mem_map |= SM_SECTION_MARKED_PRESENT
                    if nr > self.highest_present:
                        self.highest_present = nr
                pfn += PPS
        finally:
            pthread_rwlock_unlock(&self.lock)

    def sparse_init(self):
        """``sparse_init`` (§3.3-3.4): boot usage and a boot PMD of memmap for every present section."""
        cdef uint32_t r
        cdef int j
        cdef sm_section *s
        cdef uint64_t flags = SM_SECTION_IS_EARLY if (self.kflags & SM_K_SECTION_IS_EARLY) else 0
        if self.phase == BOOTED:
            raise RuntimeError("sparse_init() runs once, before any hot-add")
        self.phase = BOOTED
        self.sparse_init_done = True
        pthread_rwlock_wrlock(&self.lock)
        try:
            for r in range(self.nr_roots):
                if self.root_idx[r] == 0:
                    continue
                for j in range(SM_SECTIONS_PER_ROOT):
                    s = &self.roots[self.root_idx[r]].sec[j]
                    if not (s.mem_map & SM_SECTION_MARKED_PRESENT):
                        continue
                    self._acct(s, -1)
                    s.usage = SM_USAGE_BOOT
                    s.subsection_map = 0
                    s.pb_mask = 0
                    s.vmm = SM_VMM_BOOT_PMD
                    s.fd_mask = 0
                    s.init_mask = 0
                    s.mem_map = (s.mem_map & self.keep_mask) | self.vmemmap_base | SM_SECTION_HAS_MEM_MAP | flags
                    self._acct(s, 1)
                    self._set_valid((<uint64_t>r << SM_SECTION_ROOT_SHIFT) + j, s)
        finally:
            pthread_rwlock_unlock(&self.lock)

    def subsection_map_init(self, pfn, nr_pages):
        """``subsection_map_init`` (§3.5): mark the boot sub-sections a memblock range covers."""
        cdef uint64_t p = K.unsigned(pfn, "pfn")
        cdef uint64_t left = K.unsigned(nr_pages, "nr_pages")
        cdef uint64_t p0, left0, step, nr
        cdef sm_section *s
        if not self.sparse_init_done:
            raise RuntimeError("subsection_map_init() needs sparse_init() first")
        if p + left > self.pfn_limit_ or p + left < p:
            raise ValueError(f"subsection_map_init: pfn range [0x{p:x}-0x{p + left:x}) exceeds max pfn 0x{self.pfn_limit_:x}")
        if not (self.kflags & SM_K_SUBSECTION) or left == 0:
            return
        p0, left0 = p, left
        while left:
            nr = p >> SM_PFN_SECTION_SHIFT
            s = self.c_section(nr)
            if s == NULL or s.usage == SM_USAGE_NONE:
                raise KernelBug(f"subsection_map_init: section {nr} (pfn 0x{p:x}) has no usage: "
                                  f"the kernel dereferences NULL (range not passed to memory_present?)")
            step = min(left, PPS - (p & (PPS - 1)))
            p += step
            left -= step
        p, left = p0, left0
        pthread_rwlock_wrlock(&self.lock)
        try:
            while left:
                nr = p >> SM_PFN_SECTION_SHIFT
                step = min(left, PPS - (p & (PPS - 1)))
                s = self.c_section(nr)
                s.subsection_map |= sm_subsection_mask(p, step)
                self._set_valid(nr, s)
                p += step
                left -= step
        finally:
            pthread_rwlock_unlock(&self.lock)

    # ------------------------------------------------------------------ vmemmap (MN §7)
    cdef bint _populate(self, sm_section *s, uint64_t mask, bint full, VmemAltmap altmap) noexcept:
        """``__populate_section_memmap`` for the sub-sections ``mask``; False = -ENOMEM."""
        cdef bint huge = s.vmm == SM_VMM_BOOT_PMD or s.vmm == SM_VMM_PMD_RAM or s.vmm == SM_VMM_PMD_ALTMAP
        self._acct(s, -1)
        if not full:
            # Rule 1 (v5.3): partial sections use 4 KiB pages from RAM, even with an altmap
            if huge:
                s.fd_mask &= ~mask
            else:
                if s.vmm == SM_VMM_NONE:
                    s.vmm = SM_VMM_PTE
                    s.pte_mask = 0
                s.pte_mask |= mask
        elif huge:
            s.fd_mask = 0
        elif s.vmm == SM_VMM_PTE:
            s.pte_mask = ALL
        elif altmap is not None:
            if altmap.c_alloc_block_buf(SM_PMD_PFNS) < 0:
                self._acct(s, 1)
                return False
            s.vmm = SM_VMM_PMD_ALTMAP
            s.fd_mask = 0
        else:
            s.vmm = SM_VMM_PMD_RAM
            s.fd_mask = 0
        self._acct(s, 1)
        return True

    cdef inline void _free_pmd(self, sm_section *s, VmemAltmap altmap) noexcept:
        """``free_hugepage_table``: back to the altmap if one is passed, else to RAM."""
        if altmap is not None:
            altmap.c_free(SM_PMD_PFNS)
        s.vmm = SM_VMM_NONE
        s.fd_mask = 0

    cdef void _depopulate(self, sm_section *s, uint64_t mask, VmemAltmap altmap) noexcept:
        """``vmemmap_free`` of the memmap of sub-sections ``mask`` (MN §7.2)."""
        self._acct(s, -1)
        if s.vmm == SM_VMM_BOOT_PMD or s.vmm == SM_VMM_PMD_RAM or s.vmm == SM_VMM_PMD_ALTMAP:
            if mask == ALL:
                self._free_pmd(s, altmap)
            else:
                s.fd_mask |= mask
                if s.fd_mask == ALL:
                    self._free_pmd(s, altmap)
        elif s.vmm == SM_VMM_PTE:
            s.pte_mask &= ~mask
            if s.pte_mask == 0:
                s.vmm = SM_VMM_NONE
        self._acct(s, 1)

    cdef inline void _free_whole_memmap(self, sm_section *s) noexcept:
        """``free_map_bootmem`` of the whole section (no altmap)."""
        self._acct(s, -1)
        s.vmm = SM_VMM_NONE
        s.fd_mask = 0
        s.pte_mask = 0

    cdef _free_usage(self, sm_section *s, uint64_t nr):
        if s.usage == SM_USAGE_BOOT:
            self.dmesg.append(f"BUG: kfree() of the boot-time mem_section_usage of section {nr} "
                              f"(memblock memory: the v5.3 re-added early section bug)")
        s.usage = SM_USAGE_NONE
        s.subsection_map = 0

    # ------------------------------------------------------------------ hotplug (§5-§7)
    cdef inline void _mark_present(self, sm_section *s, uint64_t nr, int nid) noexcept:
        s.mem_map |= SM_SECTION_MARKED_PRESENT
        s.nid = nid
        if nr > self.highest_present:
            self.highest_present = nr

    cdef int _section_activate(self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages,
                               VmemAltmap altmap) except? -999:
        """``section_activate`` (§5.4): 0 or -errno, leaving the documented state."""
        cdef uint64_t mask = sm_subsection_mask(pfn, nr_pages)
        cdef bint new_usage = s.usage == SM_USAGE_NONE
        if new_usage:
            s.usage = SM_USAGE_SLAB
            s.subsection_map = 0
            s.pb_mask = 0
        if s.subsection_map & mask:
            if new_usage:
                s.usage = SM_USAGE_NONE
            return -EEXIST_
        s.subsection_map |= mask
        if nr_pages < PPS and (s.mem_map & SM_SECTION_IS_EARLY):
            return 0
        if not self._populate(s, mask, nr_pages == PPS, altmap):
            self._section_deactivate(nr, s, pfn, nr_pages, altmap)
            return -ENOMEM_
        return 0

    cdef int _section_deactivate(self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages,
                                 VmemAltmap altmap) except -1:
        """``section_deactivate`` in its exact v5.3 order (§6.4); False after the WARN."""
        cdef bint was_early = (s.mem_map & SM_SECTION_IS_EARLY) != 0
        cdef uint64_t mask = sm_subsection_mask(pfn, nr_pages)
        cdef bint empty
        if s.usage == SM_USAGE_NONE or (s.subsection_map & mask) != mask:
            self._warn("mm/sparse.c section_deactivate", K.deactivated_message(pfn, nr_pages))
            return 0
        s.subsection_map ^= mask
        empty = s.subsection_map == 0
        if empty:
            if not was_early or not (self.kflags & SM_K_USAGE_FREE_UNLESS_EARLY):
                self._free_usage(s, nr)
            s.mem_map = sm_encode_null(nr) if (self.kflags & SM_K_ENCODED_NULL) else 0
        if was_early and empty:
            self._free_whole_memmap(s)
        elif not was_early or (self.kflags & SM_K_EARLY_PARTIAL_FREE):
            self._depopulate(s, mask, altmap)
        s.init_mask &= ~mask
        self._set_valid(nr, s)
        return 1

    cdef int _legacy_add_section(self, uint64_t nr, int nid, VmemAltmap altmap) except? -999:
        """v5.2 ``__add_section`` + ``sparse_add_one_section`` on the whole section (§7)."""
        cdef sm_section *s = self.c_section(nr)
        if s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP):
            return -EEXIST_
        self._index_init(nr)
        s = self.c_section(nr)
        if not self._populate(s, ALL, True, altmap):
            return -ENOMEM_
        if s.mem_map & SM_SECTION_MARKED_PRESENT:
            self._depopulate(s, ALL, altmap)
            return -EEXIST_
        s.usage = SM_USAGE_SLAB
        s.pb_mask = 0
        s.subsection_map = 0
        s.init_mask = 0
        self._mark_present(s, nr, nid)
        s.mem_map = (s.mem_map & self.keep_mask) | self.vmemmap_base | SM_SECTION_HAS_MEM_MAP
        self._set_valid(nr, s)
        return 0

    cdef int _add_piece(self, int nid, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except? -999:
        cdef uint64_t nr = pfn >> SM_PFN_SECTION_SHIFT
        cdef uint64_t sec_pfn = nr << SM_PFN_SECTION_SHIFT
        cdef sm_section *s
        cdef int rc
        cdef uint64_t encoded
        if not (self.kflags & SM_K_SUBSECTION):
            return self._legacy_add_section(nr, nid, altmap)
        self._index_init(nr)
        s = self.c_section(nr)
        rc = self._section_activate(nr, s, pfn, nr_pages, altmap)
        if rc:
            return rc
        s.init_mask &= ~sm_subsection_mask(pfn, nr_pages)  # page_init_poison
        self._mark_present(s, nr, nid)
        if pfn != sec_pfn and (self.kflags & SM_K_KADDR_BUG):
            encoded = self.page_offset + sec_pfn * (SM_PAGE_SIZE - SM_STRUCT_PAGE_SIZE)
        else:
            encoded = self.vmemmap_base
        s.mem_map = (s.mem_map & self.keep_mask) | encoded | SM_SECTION_HAS_MEM_MAP
        self._set_valid(nr, s)
        return 0

    cdef _raise_add(self, int rc, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap):
        cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
        cdef uint64_t overlap = 0
        if s != NULL and s.usage != SM_USAGE_NONE:
            overlap = s.subsection_map & sm_subsection_mask(pfn, nr_pages)
        raise K.add_error(rc, bool(self.kflags & SM_K_SUBSECTION), pfn, nr_pages, overlap, altmap)

    def sparse_add_section(self, nid, start_pfn, nr_pages, altmap=None):
        """``sparse_add_section`` (§5.3) for one section's piece; legacy: ``__add_section`` (§7).

        Raises KernelError(EEXIST) when a requested sub-section is already active (legacy: the
        section already has a memmap) and KernelError(ENOMEM) when the altmap cannot supply a
        PMD.  On -ENOMEM the kernel leaves the documented state of §5.4 step 7: the bits are
        cleared again but ``section_mem_map`` holds ``sparse_encode_mem_map(NULL, nr)``.
        """
        cdef int c_nid = K.check_nid(nid)
        start, nr = K.check_range(start_pfn, nr_pages, self.pfn_limit_, self.bits,
                                  bool(self.kflags & SM_K_SUBSECTION), one_section=True, what="sparse_add_section")
        cdef VmemAltmap am = self._altmap(altmap)
        cdef int rc
        self._enter_hotplug("sparse_add_section")
        pthread_rwlock_wrlock(&self.lock)
        try:
            rc = self._add_piece(c_nid, start, nr, am)
        finally:
            pthread_rwlock_unlock(&self.lock)
        if rc:
            self._raise_add(rc, start, nr, am)

    cdef int _remove_piece(self, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except -1:
        cdef uint64_t nr = pfn >> SM_PFN_SECTION_SHIFT
        cdef sm_section *s
        cdef int usage
        s = self.c_section(nr)
        if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
            self._warn_once(("remove_section", 0), "mm/memory_hotplug.c __remove_section",
                            f"section {nr} (pfn 0x{pfn:x}) has no valid memmap")
            return 0
        if self.kflags & SM_K_SUBSECTION:
            return self._section_deactivate(nr, s, pfn, nr_pages, altmap)
        usage = s.usage
        s.mem_map = 0
        s.usage = SM_USAGE_NONE
        s.init_mask = 0
        if usage == SM_USAGE_SLAB:
            self._depopulate(s, ALL, altmap)
        else:
            self._free_whole_memmap(s)
        self._set_valid(nr, s)
        return 1

    def sparse_remove_section(self, start_pfn, nr_pages, altmap=None):
        """``__remove_section`` -> ``sparse_remove_section`` -> ``section_deactivate`` (§6.3-6.4).

        The kernel function is void: a section without a memmap (WARN_ON_ONCE) or a request
        covering inactive sub-sections ("section already deactivated" WARN) changes nothing
        and returns False here, with the warning in ``dmesg``.  Legacy: the whole section
        (``sparse_remove_one_section``).
        """
        start, nr = K.check_range(start_pfn, nr_pages, self.pfn_limit_, self.bits,
                                  bool(self.kflags & SM_K_SUBSECTION), one_section=True,
                                  what="sparse_remove_section")
        cdef VmemAltmap am = self._altmap(altmap)
        cdef int done
        self._enter_hotplug("sparse_remove_section")
        pthread_rwlock_wrlock(&self.lock)
        try:
            done = self._remove_piece(start, nr, am)
        finally:
            pthread_rwlock_unlock(&self.lock)
        return done == 1

    def sparse_add_range(self, nid, start_pfn, nr_pages, altmap=None):
        """The section loop of ``__add_pages`` (§5.2 step 3; legacy §7).

        One ``sparse_add_section`` per section piece; the first error stops the loop and is
        raised, and the pieces added before it stay added (the kernel has no rollback).
        Legacy: every section the range touches is added whole and -EEXIST is ignored.
        """
        cdef int c_nid = K.check_nid(nid)
        start, nr = K.check_range(start_pfn, nr_pages, self.pfn_limit_, self.bits,
                                  bool(self.kflags & SM_K_SUBSECTION), one_section=False, what="sparse_add_range")
        cdef VmemAltmap am = self._altmap(altmap)
        cdef uint64_t pfn = start, end = start + nr, step = 0, done, r
        cdef int rc = 0
        cdef bint swallow = (self.kflags & SM_K_SWALLOW_EEXIST) != 0
        cdef uint64_t submap = ALL if (self.kflags & SM_K_SUBSECTION) else 0
        self._enter_hotplug("sparse_add_range")
        pthread_rwlock_wrlock(&self.lock)
        try:
            r = start >> (SM_PFN_SECTION_SHIFT + SM_SECTION_ROOT_SHIFT)
            while r <= (end - 1) >> (SM_PFN_SECTION_SHIFT + SM_SECTION_ROOT_SHIFT):
                self._index_init(r << SM_SECTION_ROOT_SHIFT)
                r += 1
            while pfn < end:
                if am is None and (pfn & (PPS - 1)) == 0 and end - pfn >= PPS:
                    # whole fresh sections: the same steps as below, in one C loop
                    done = sm_add_fresh_sections(self.roots, self.root_idx, pfn >> SM_PFN_SECTION_SHIFT,
                                                 (end - pfn) >> SM_PFN_SECTION_SHIFT, c_nid, submap,
                                                 self.keep_mask, self.vmemmap_base, &self.highest_present)
                    if done:
                        self.n_pmd_ram += done
                        pfn += done << SM_PFN_SECTION_SHIFT
                        continue
                step = min(end - pfn, PPS - (pfn & (PPS - 1)))
                rc = self._add_piece(c_nid, pfn, step, am)
                if rc == -EEXIST_ and swallow:
                    rc = 0
                if rc:
                    break
                pfn += step
        finally:
            pthread_rwlock_unlock(&self.lock)
        if rc:
            self._raise_add(rc, pfn, step, am)

    def sparse_remove_range(self, start_pfn, nr_pages, altmap=None):
        """The section loop of ``__remove_pages`` (§6.2 step 4): returns the pieces removed."""
        start, nr = K.check_range(start_pfn, nr_pages, self.pfn_limit_, self.bits,
                                  bool(self.kflags & SM_K_SUBSECTION), one_section=False,
                                  what="sparse_remove_range")
        cdef VmemAltmap am = self._altmap(altmap)
        cdef uint64_t pfn = start, end = start + nr, step, done
        cdef int64_t removed = 0
        cdef uint64_t full_map = ALL if (self.kflags & SM_K_SUBSECTION) else 0
        cdef int encoded_null = (self.kflags & SM_K_ENCODED_NULL) != 0
        self._enter_hotplug("sparse_remove_range")
        pthread_rwlock_wrlock(&self.lock)
        try:
            while pfn < end:
                if am is None and (pfn & (PPS - 1)) == 0 and end - pfn >= PPS:
                    # whole hot-added sections with a RAM PMD: section_deactivate in one C loop
                    done = sm_remove_full_sections(self.roots, self.root_idx, pfn >> SM_PFN_SECTION_SHIFT,
                                                   (end - pfn) >> SM_PFN_SECTION_SHIFT, full_map, encoded_null)
                    if done:
                        self.n_pmd_ram -= done
                        removed += done
                        pfn += done << SM_PFN_SECTION_SHIFT
                        continue
                step = min(end - pfn, PPS - (pfn & (PPS - 1)))
                removed += self._remove_piece(pfn, step, am)
                pfn += step
        finally:
            pthread_rwlock_unlock(&self.lock)
        return removed

    # ------------------------------------------------------------------ online state
    cdef _set_online(self, object start_pfn, object end_pfn, bint online, str what):
        start, end = K.check_span(start_pfn, end_pfn, self.pfn_limit_, what)
        cdef uint64_t pfn = start, e = end, nr
        cdef sm_section *s
        pthread_rwlock_wrlock(&self.lock)
        try:
            while pfn < e:
                nr = pfn >> SM_PFN_SECTION_SHIFT
                s = self.c_section(nr)
                if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                    self._warn(f"mm/sparse.c {what}", f"section {nr} has no valid memmap")
                elif online:
                    s.mem_map |= SM_SECTION_IS_ONLINE
                else:
                    s.mem_map &= ~SM_SECTION_IS_ONLINE
                pfn += PPS
        finally:
            pthread_rwlock_unlock(&self.lock)

    def online_mem_sections(self, start_pfn, end_pfn):
        """``online_mem_sections`` (§5.5): set SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        self._set_online(start_pfn, end_pfn, True, "online_mem_sections")

    def offline_mem_sections(self, start_pfn, end_pfn):
        """``offline_mem_sections`` (§5.6): clear SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        self._set_online(start_pfn, end_pfn, False, "offline_mem_sections")

    # ------------------------------------------------------------------ memmap contents
    def memmap_init_zone(self, nid, zone, start_pfn, nr_pages):
        """``memmap_init_zone``: link the struct pages of a range to (zone, nid).

        Recorded per 2 MiB sub-section (the granularity of every probe that reads them), only
        where a memmap exists; pageblocks starting inside the range become MIGRATE_MOVABLE.
        """
        cdef int c_nid = K.check_nid(nid)
        cdef int c_zone = K.check_zone(zone)
        cdef uint64_t p = K.unsigned(start_pfn, "start_pfn")
        cdef uint64_t left = K.unsigned(nr_pages, "nr_pages")
        cdef uint64_t step, mask, off, b, first, last
        cdef uint16_t zn = <uint16_t>(c_zone | (c_nid << 3))
        cdef sm_section *s
        cdef int i
        if p + left > self.pfn_limit_ or p + left < p:
            raise ValueError(f"memmap_init_zone: pfn range [0x{p:x}-0x{p + left:x}) exceeds max pfn 0x{self.pfn_limit_:x}")
        pthread_rwlock_wrlock(&self.lock)
        try:
            while left:
                step = min(left, PPS - (p & (PPS - 1)))
                s = self.c_section(p >> SM_PFN_SECTION_SHIFT)
                if s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                    mask = sm_subsection_mask(p, step)
                    if s.zn == NULL:
                        s.zn = <uint16_t *>malloc(SM_SUBSECTIONS_PER_SECTION * sizeof(uint16_t))
                        if s.zn == NULL:
                            raise MemoryError()
                        for i in range(SM_SUBSECTIONS_PER_SECTION):
                            s.zn[i] = SM_ZN_POISON
                        self.n_zn += 1
                    for i in range(SM_SUBSECTIONS_PER_SECTION):
                        if (mask >> i) & 1:
                            s.zn[i] = zn
                    s.init_mask |= mask
                    if s.usage != SM_USAGE_NONE:
                        off = p & (PPS - 1)
                        first = (off + SM_PAGEBLOCK_NR_PAGES - 1) // SM_PAGEBLOCK_NR_PAGES
                        last = (off + step - 1) // SM_PAGEBLOCK_NR_PAGES
                        if first <= last:
                            s.pb_mask |= sm_subsection_mask(first * SM_PAGEBLOCK_NR_PAGES,
                                                            (last - first + 1) * SM_PAGEBLOCK_NR_PAGES)
                p += step
                left -= step
        finally:
            pthread_rwlock_unlock(&self.lock)

    # ------------------------------------------------------------------ span scans (§6.5)
    cdef inline bint _probe(self, uint64_t pfn, int nid, int zone) noexcept:
        cdef int zn
        cdef sm_section *s
        if self.kflags & SM_K_SUBSECTION:
            if not self.c_pfn_valid(pfn):
                return False
        else:
            s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
            if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                return False
        zn = self._zn_c(pfn)
        if zn < 0 or (zn >> 3) != nid:
            return False
        return zone < 0 or (zn & 7) == zone

    cdef inline bint _section_valid(self, uint64_t nr) noexcept:
        cdef sm_section *s = self.c_section(nr)
        return s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP) != 0

    def find_smallest_section_pfn(self, nid, zone, start_pfn, end_pfn):
        """``find_smallest_section_pfn``: first probe in [start, end) of (nid, zone), else 0.

        Probes every ``shrink_step`` pfns (512 in v5.3, 32768 in v5.2) from ``start_pfn``;
        ``zone=None`` means any zone (the node scan).  Sections without a memmap are skipped
        whole, which gives the same answer as probing them.
        """
        cdef int c_nid = K.check_nid(nid)
        z = K.check_zone(zone, allow_none=True)
        cdef int c_zone = -1 if z is None else z
        cdef uint64_t pfn = K.unsigned(start_pfn, "start_pfn")
        cdef uint64_t end = K.unsigned(end_pfn, "end_pfn")
        cdef uint64_t step = self._model.shrink_step, nr, nxt
        if end > self.pfn_limit_:
            end = self.pfn_limit_  # no probe beyond the address space is valid
        while pfn < end:
            nr = pfn >> SM_PFN_SECTION_SHIFT
            if not self._section_valid(nr):
                nxt = (nr + 1) << SM_PFN_SECTION_SHIFT
                pfn += ((nxt - pfn + step - 1) // step) * step
                continue
            if self._probe(pfn, c_nid, c_zone):
                return pfn
            pfn += step
        return 0

    def find_biggest_section_pfn(self, nid, zone, start_pfn, end_pfn):
        """``find_biggest_section_pfn``: probes end-1, end-1-step, ... >= start; else 0.

        The kernel's loop variable is unsigned: when nothing matches and a probe would go
        below pfn 0 (or ``end_pfn`` is 0), v5.3 spins for ~2^55 iterations; this raises
        KernelBug instead (§6.5).
        """
        cdef int c_nid = K.check_nid(nid)
        z = K.check_zone(zone, allow_none=True)
        cdef int c_zone = -1 if z is None else z
        cdef uint64_t start = K.unsigned(start_pfn, "start_pfn")
        cdef uint64_t end = K.unsigned(end_pfn, "end_pfn")
        cdef uint64_t step = self._model.shrink_step, nr, top
        cdef int64_t pfn
        if end == 0:
            raise KernelBug(K.wrap_message(start, end, step))
        top = end - 1
        if top >= self.pfn_limit_:
            top -= ((top - (self.pfn_limit_ - 1) + step - 1) // step) * step
        pfn = <int64_t>top
        while pfn >= 0 and <uint64_t>pfn >= start:
            nr = (<uint64_t>pfn) >> SM_PFN_SECTION_SHIFT
            if not self._section_valid(nr):
                pfn -= <int64_t>((((<uint64_t>pfn) - (nr << SM_PFN_SECTION_SHIFT)) // step + 1) * step)
                continue
            if self._probe(<uint64_t>pfn, c_nid, c_zone):
                return pfn
            pfn -= <int64_t>step
        if pfn < 0:
            raise KernelBug(K.wrap_message(start, end, step))
        return 0

    # ------------------------------------------------------------------ accounting
    def present_section_nrs(self):
        """Numbers of all present sections, ascending (``for_each_present_section_nr``)."""
        out = []
        cdef uint64_t r
        cdef int j
        for r in range(self.nr_roots):
            if self.root_idx[r] == 0:
                continue
            for j in range(SM_SECTIONS_PER_ROOT):
                if self.roots[self.root_idx[r]].sec[j].mem_map & SM_SECTION_MARKED_PRESENT:
                    out.append((r << SM_SECTION_ROOT_SHIFT) + j)
        return np.array(out, dtype=np.uint64)

    def vmemmap_stats(self):
        """vmemmap population by backing (memremap-nvdimm.md §7.4), from running counters.

        ``memmap_bytes`` is the memmap mapped now; ``memmap_ram_bytes`` what it takes from RAM
        (boot and RAM PMDs, base pages and PTE tables); ``memmap_altmap_bytes`` from device
        altmaps; ``fd_subsections`` counts sub-section memmaps of huge PMDs filled with 0xFD
        (partially freed, §6.4).
        """
        return K.stats(self.n_boot_pmd, self.n_pmd_ram, self.n_pmd_alt, self.n_pages, self.n_tables, self.n_fd)

    def count_valid_subsections(self):
        """Number of 2 MiB sub-sections for which ``pfn_valid`` is true (POPCNT over the roots)."""
        cdef uint64_t total = 0
        cdef uint32_t i
        with nogil:
            pthread_rwlock_rdlock(&self.lock)
            for i in range(1, self.nroots):
                total += sm_popcount_words(self.roots[i].valid, SM_SECTIONS_PER_ROOT)
            pthread_rwlock_unlock(&self.lock)
        return total

    cdef list _rows(self, bint all_fields):
        cdef uint64_t r, nr
        cdef int j, i
        cdef sm_section *s
        rows = []
        for r in range(self.nr_roots):
            if self.root_idx[r] == 0:
                continue
            for j in range(SM_SECTIONS_PER_ROOT):
                s = &self.roots[self.root_idx[r]].sec[j]
                nr = (r << SM_SECTION_ROOT_SHIFT) + j
                zn = None if s.zn == NULL else tuple([s.zn[i] for i in range(SM_SUBSECTIONS_PER_SECTION)])
                usemap = K.pageblock_flags_word(s.pb_mask)
                if all_fields:
                    if s.mem_map or s.usage or s.vmm or s.init_mask or s.zn != NULL:
                        rows.append((nr, s.mem_map, s.subsection_map, s.init_mask, s.pte_mask, s.fd_mask,
                                     zn, usemap, s.nid, s.usage, s.vmm))
                elif s.mem_map or s.usage or s.vmm or s.init_mask:
                    if s.init_mask:
                        zn = tuple([zn[i] if (s.init_mask >> i) & 1 else -1 for i in range(64)])
                    else:
                        zn = None
                    rows.append((nr, (s.mem_map, s.subsection_map if s.usage else 0, s.usage,
                                      s.nid if s.mem_map & SM_SECTION_MARKED_PRESENT else -1,
                                      s.init_mask, s.vmm, s.pte_mask if s.vmm == SM_VMM_PTE else 0,
                                      s.fd_mask, usemap if s.usage else 0, zn)))
        return rows

    def snapshot(self):
        """Every observable field of the table, for equality tests (dmesg excluded)."""
        return {
            "kernel": self.kernel,
            "max_physmem_bits": self.bits,
            "highest_present_section_nr": self.highest_present,
            "sections": dict(self._rows(False)),
            "vmemmap": self.vmemmap_stats(),
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        return {
            "version": 1,
            "roots": [r for r in range(self.nr_roots) if self.root_idx[r]],
            "sections": self._rows(True),
            "highest": self.highest_present,
            "phase": self.phase,
            "sparse_init_done": self.sparse_init_done,
            "warned_once": sorted(self.warned_once),
            "dmesg": list(self.dmesg),
        }

    def __setstate__(self, state):
        cdef sm_section *s
        cdef int i
        cdef uint64_t nr
        pthread_rwlock_wrlock(&self.lock)
        try:
            for r in state["roots"]:
                self._index_init(<uint64_t>r << SM_SECTION_ROOT_SHIFT)
            for (nr_, mem_map, smap, init, pte, fd, zn, usemap, nid, usage, vmm) in state["sections"]:
                nr = nr_
                self._index_init(nr)
                s = self.c_section(nr)
                self._acct(s, -1)
                s.mem_map, s.subsection_map, s.init_mask, s.pte_mask, s.fd_mask = mem_map, smap, init, pte, fd
                s.nid, s.usage, s.vmm = nid, usage, vmm
                s.pb_mask = K.pageblock_mask(usemap)
                if zn is not None:
                    if s.zn == NULL:
                        s.zn = <uint16_t *>malloc(SM_SUBSECTIONS_PER_SECTION * sizeof(uint16_t))
                        if s.zn == NULL:
                            raise MemoryError()
                        self.n_zn += 1
                    for i in range(SM_SUBSECTIONS_PER_SECTION):
                        s.zn[i] = zn[i]
                self._acct(s, 1)
                self._set_valid(nr, s)
        finally:
            pthread_rwlock_unlock(&self.lock)
        self.highest_present = state["highest"]
        self.phase = state["phase"]
        self.sparse_init_done = state["sparse_init_done"]
        self.warned_once = {tuple(k) for k in state["warned_once"]}
        self.dmesg = list(state["dmesg"])

    def __reduce__(self):
        return (type(self), (self.bits, self.kernel), self.__getstate__())

    def __repr__(self):
        return (f"<sparsemem.SectionTable kernel={self.kernel} max_physmem_bits={self.bits} "
                f"present={len(self.present_section_nrs())}>")


from sparsemem import _common as K  # noqa: E402  (imports sparsemem.constants, which reads _CONSTANTS)
from sparsemem import constants as C  # noqa: E402  (its names are read at call time)
