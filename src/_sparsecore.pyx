# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True, embedsignature.format=clinic, binding=True
"""The compiled core of sparsemem: ``mm/sparse.c`` over flat C arrays.

``SectionTable`` is the ``mem_section`` array of one x86_64 machine with
SPARSEMEM_VMEMMAP + SPARSEMEM_EXTREME: a root index allocated whole and roots of
SECTIONS_PER_ROOT sections allocated on first use, each section with its
``section_mem_map`` word, its usage (sub-section bitmap and pageblock flags), the zone/nid
of its memmap per sub-section, and the vmemmap accounting of
docs/spec/memremap-nvdimm.md §7.  Its answers equal those of the readable
:mod:`sparsemem.reference` twin; the differential tests hold them to that.

Besides the kernel's fields every root keeps one derived word per section: the sub-sections
for which ``pfn_valid`` is true.  ``pfn_valid`` reads only that word, which keeps the batch
lookup within a few KiB per root.  A section is 32 bytes (include/sparsemem.h); what only
``memmap_init_zone`` writes (initialised sub-sections, their zone/nid, pageblock flags) is
kept in a block of its own, allocated the first time that section needs one.

Arguments are checked in C: an exact ``int`` in range passes without calling Python; any
other value (a bool, a numpy integer, a negative or out-of-range number) goes to the shared
checks of :mod:`sparsemem._common`, which either accept it or raise the error that the
reference twin raises for it, so both cores fail with the same exception and message.

Concurrency: every mutating method runs with the GIL held and the table's write lock;
``pfn_valid_many`` releases the GIL and holds the read lock per chunk of 2**20 pfns, so a
batch reader sees every section either before or after a concurrent change.
"""

cimport cython
from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int16_t, int32_t, int64_t
from libc.stdlib cimport calloc, malloc, realloc, free
from libc.string cimport memset

from sparsemem.csparsemem cimport *

import numpy as np

from sparsemem import _common as K
from sparsemem import _header
from sparsemem import constants as C
from sparsemem.errors import KernelBug
from sparsemem.kernel import as_model

cdef extern from *:
    """
    /* A Python int (never anything else) in [0, 2**63) into *out: 1; a negative or larger
     * int: 0.  Never fails.  Reads the digits of a small int directly where CPython lets it
     * (scalar pfn_valid costs about one builtin call this way). */
    static CYTHON_INLINE int sm_int_u63(PyObject *o, uint64_t *out)
    {
    #if CYTHON_USE_PYLONG_INTERNALS && PY_VERSION_HEX < 0x030C0000
        const Py_ssize_t size = Py_SIZE(o);
        const digit *d = ((PyLongObject *)o)->ob_digit;
        if (size == 0) { *out = 0; return 1; }
        if (size == 1) { *out = d[0]; return 1; }
        if (size == 2) { *out = (uint64_t)d[0] | ((uint64_t)d[1] << PyLong_SHIFT); return 1; }
        if (size < 0) return 0;
    #elif PY_VERSION_HEX >= 0x030C0000 && !defined(PYPY_VERSION)
        if (PyUnstable_Long_IsCompact((PyLongObject *)o)) {
            Py_ssize_t v = PyUnstable_Long_CompactValue((PyLongObject *)o);
            if (v < 0) return 0;
            *out = (uint64_t)v;
            return 1;
        }
    #endif
        {
            int overflow = 0;
            long long x = PyLong_AsLongLongAndOverflow(o, &overflow);
            if (overflow || x < 0) return 0;
            *out = (uint64_t)x;
            return 1;
        }
    }
    """
    bint sm_int_u63(object o, uint64_t *out) noexcept

cdef extern from "pthread.h" nogil:
    int pthread_rwlock_init(pthread_rwlock_t *lock, void *attr)
    int pthread_rwlock_destroy(pthread_rwlock_t *lock)
    int pthread_rwlock_rdlock(pthread_rwlock_t *lock)
    int pthread_rwlock_wrlock(pthread_rwlock_t *lock)
    int pthread_rwlock_unlock(pthread_rwlock_t *lock)

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
    SECTION_TAINT_ZONE_DEVICE=SM_SECTION_TAINT_ZONE_DEVICE,
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

if _CONSTANTS != _header.CONSTANTS:  # a build from another header than sparsemem/_header.py
    raise ImportError("sparsemem._sparsecore was built from an include/sparsemem.h whose values differ "
                      "from sparsemem/_header.py: " + ", ".join(
                          sorted(k for k in _CONSTANTS.keys() | _header.CONSTANTS.keys()
                                 if _CONSTANTS.get(k) != _header.CONSTANTS.get(k))))

cdef enum:
    EEXIST_ = 17
    ENOMEM_ = 12
    FRESH = 0
    PRESENT = 1
    BOOTED = 2
    BATCH_CHUNK = 1 << 20
    # sm_ext blocks are allocated this many at a time (one allocation per chunk, not per
    # section); exts[i] for i = 1, 1 + EXT_CHUNK, ... is the start of a chunk (what __dealloc__
    # gives back)
    EXT_CHUNK = 64

# --- blocks kept for the next table ------------------------------------------------------------
# A table frees its roots and memmap-contents chunks (10 KiB each) together when it goes; given
# back to the C library all at once they are often returned to the operating system, and the
# next table (a fleet boots two machines per host) pays a page fault for every page it touches
# again.  Up to POOL_MAX of each kind are kept here instead and handed out zeroed.  Only ever
# used with the GIL held (table creation, its methods and __dealloc__).
cdef enum:
    POOL_MAX = 1024

cdef void *_pool_roots[POOL_MAX]
cdef int _n_pool_roots = 0
cdef void *_pool_chunks[POOL_MAX]
cdef int _n_pool_chunks = 0


cdef void *_pool_take(void **pool, int *n, size_t size) noexcept:
    """A zeroed block of ``size`` bytes: a kept one, else a new one (NULL if none can be had)."""
    cdef void *b
    if n[0]:
        n[0] -= 1
        b = pool[n[0]]
        memset(b, 0, size)
        return b
    return calloc(1, size)


cdef void _pool_give(void **pool, int *n, void *b) noexcept:
    """Keep block ``b`` for a later table, or free it when enough are kept."""
    if b == NULL:
        return
    if n[0] < POOL_MAX:
        pool[n[0]] = b
        n[0] += 1
    else:
        free(b)


cdef uint64_t ALL = 0xffffffffffffffffULL
cdef uint64_t PPS = SM_PAGES_PER_SECTION
cdef uint64_t SUB_MASK = SM_PAGES_PER_SUBSECTION - 1


# ---------------------------------------------------------------------- argument checks
# The fast paths accept exact ints only; everything else (and every error) goes to the Python
# check of sparsemem._common, which accepts the value or raises the twin's exception.

cdef inline bint _fast_u64(object v, uint64_t *out) noexcept:
    """An exact ``int`` in [0, 2**63) into ``*out``; False for anything else (no error set)."""
    return type(v) is int and sm_int_u63(v, out)


cdef inline int _u64(object v, str what, uint64_t *out) except -1:
    """``K.unsigned(v, what)`` into ``*out``."""
    if not _fast_u64(v, out):
        out[0] = K.unsigned(v, what)
    return 0


cdef inline int _nid(object nid) except -1:
    """``K.check_nid(nid)``."""
    cdef uint64_t v
    if _fast_u64(nid, &v) and v < <uint64_t>SM_MAX_NUMNODES:
        return <int>v
    return K.check_nid(nid)


cdef inline int _zone(object zone, bint allow_none) except -2:
    """``K.check_zone(zone, allow_none)``, with -1 for an allowed None."""
    cdef uint64_t v
    if zone is None and allow_none:
        return -1
    if _fast_u64(zone, &v) and v <= <uint64_t>SM_ZONE_DEVICE:
        return <int>v
    return K.check_zone(zone, allow_none)


cdef inline int64_t _small_index(object v, str what) except? -2:
    """A Python int as a non-negative int64, or -1 for negative / too large values; TypeError
    (naming ``what``) for a value that is not an integer."""
    cdef uint64_t x
    if type(v) is not int:
        v = K.index(v, what)
    return <int64_t>x if sm_int_u63(v, &x) else -1


cdef class VmemAltmap:
    """``struct vmem_altmap`` and its bump allocator (memremap-nvdimm.md §6.6).

    ``base_pfn`` is the first pfn the altmap manages, ``reserve`` pfns at its start are never
    handed out, ``free`` pfns are available for memmap, ``align`` counts pfns skipped for
    alignment (never decremented) and ``alloc`` the pfns currently handed out.
    """

    def __init__(self, base_pfn, reserve=0, free=0, align=0, alloc=0):
        cdef uint64_t v[5]
        _u64(base_pfn, "base_pfn", &v[0])
        _u64(reserve, "reserve", &v[1])
        _u64(free, "free", &v[2])
        _u64(align, "align", &v[3])
        _u64(alloc, "alloc", &v[4])
        self.base_pfn, self.reserve, self.free, self.align, self.alloc = v[0], v[1], v[2], v[3], v[4]

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
        cdef uint64_t n
        _u64(nr_pfns, "nr_pfns", &n)
        cdef int64_t pfn = self.c_alloc_block_buf(n)
        return None if pfn < 0 else pfn

    def free_pfns(self, nr_pfns):
        """``vmem_altmap_free``: ``alloc -= nr`` (unsigned, as in the kernel)."""
        cdef uint64_t n
        _u64(nr_pfns, "nr_pfns", &n)
        self.c_free(n)

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
            | (SM_K_USAGE_FREE_UNLESS_EARLY if K.usage_freed_unless_early(model) else 0)
            | (SM_K_PROBE_ONLINE if model.shrink_probes_online_sections else 0)
            | (SM_K_ONLINE_PAGE_FN if model.pfn_to_online_page_subsection else 0)
            | (SM_K_TAINT_ZONE_DEVICE if K.taint_zone_device(model) else 0))


cdef class SectionTable:
    """``mem_section[]`` of one x86_64 machine (SPARSEMEM_VMEMMAP + SPARSEMEM_EXTREME).

    ``SectionTable(max_physmem_bits=46, kernel="5.3")``: 46 for 4-level paging, 52 for
    5-level.  ``kernel`` selects the behaviour era (:mod:`sparsemem.kernel`).  Boot with
    ``memory_present`` per memblock range, ``sparse_init()``, then ``subsection_map_init``
    per range (docs/spec/sparse-hotplug.md §3); hot-add and remove with
    ``sparse_add_section``/``sparse_remove_section`` (§5-§6) or the ``__add_pages``-style
    ``sparse_add_range``/``sparse_remove_range``.

    Concurrency (docs/spec/sparse-hotplug.md §11): every mutating method (and
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
        self.exts = NULL
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
        self.roots[0] = <sm_root *>_pool_take(_pool_roots, &_n_pool_roots, sizeof(sm_root))  # the shared empty root
        if self.roots[0] == NULL:
            raise MemoryError()
        self.nroots = 1
        self.nexts = 1        # index 0: no block
        self.exts_cap = 0
        self.highest_present = 0
        self.phase = FRESH
        self.sparse_init_done = False
        self.warned_once = set()
        self.dmesg = []

    def __dealloc__(self):
        cdef uint32_t i
        if self.roots != NULL:
            for i in range(self.nroots):
                _pool_give(_pool_roots, &_n_pool_roots, self.roots[i])
            free(self.roots)
        if self.exts != NULL:
            for i in range(1, self.nexts, EXT_CHUNK):
                _pool_give(_pool_chunks, &_n_pool_chunks, self.exts[i])
            free(self.exts)
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
        """Host bytes this table holds: root index, root pointers, roots, memmap-contents blocks."""
        return (<object>type(self)).__basicsize__ + self.nr_roots * sizeof(uint32_t) \
            + self.roots_cap * sizeof(sm_root *) + self.nroots * sizeof(sm_root) \
            + self.exts_cap * sizeof(sm_ext *) \
            + (self.nexts - 1 + EXT_CHUNK - 1) // EXT_CHUNK * EXT_CHUNK * sizeof(sm_ext)

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

    # ------------------------------------------------------------------ section queries
    def present_section_nr(self, nr):
        """``present_section_nr``: SECTION_MARKED_PRESENT is set."""
        cdef sm_section *s = _sec_obj(self, nr)
        return s != NULL and (s.mem_map & SM_SECTION_MARKED_PRESENT) != 0

    def valid_section_nr(self, nr):
        """``valid_section_nr``: SECTION_HAS_MEM_MAP is set."""
        cdef sm_section *s = _sec_obj(self, nr)
        return s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP) != 0

    def online_section_nr(self, nr):
        """``online_section_nr``: SECTION_IS_ONLINE is set."""
        cdef sm_section *s = _sec_obj(self, nr)
        return s != NULL and (s.mem_map & SM_SECTION_IS_ONLINE) != 0

    def early_section_nr(self, nr):
        """``early_section``: SECTION_IS_EARLY is set (never in the legacy era)."""
        cdef sm_section *s = _sec_obj(self, nr)
        return (s != NULL and (self.kflags & SM_K_SECTION_IS_EARLY) != 0
                and (s.mem_map & SM_SECTION_IS_EARLY) != 0)

    def subsection_map(self, nr):
        """``usage->subsection_map`` of section ``nr`` (0 without a usage; always 0 in legacy)."""
        cdef sm_section *s = _sec_obj(self, nr)
        if s == NULL or s.usage == SM_USAGE_NONE or not (self.kflags & SM_K_SUBSECTION):
            return 0
        return s.subsection_map

    def section_mem_map(self, nr):
        """The raw ``section_mem_map`` word (flags, encoded memmap or early nid)."""
        cdef sm_section *s = _sec_obj(self, nr)
        return s.mem_map if s != NULL else 0

    def section_nid(self, nr):
        """Node recorded for section ``nr`` by ``memory_present``/``sparse_add_section`` (-1: none)."""
        cdef sm_section *s = _sec_obj(self, nr)
        if s == NULL or not (s.mem_map & SM_SECTION_MARKED_PRESENT):
            return -1
        return s.nid

    def section_usage(self, nr):
        """Where section ``nr``'s usage came from: ``"boot"``, ``"slab"`` or None."""
        cdef sm_section *s = _sec_obj(self, nr)
        return C.USAGE_NAMES[s.usage] if s != NULL else None

    def pageblock_flags(self, nr):
        """``usage->pageblock_flags`` as a 256-bit integer (4 bits per 2 MiB pageblock)."""
        cdef sm_section *s = _sec_obj(self, nr)
        if s == NULL or s.usage == SM_USAGE_NONE:
            return 0
        return K.pageblock_flags_word(_pb_mask(self, s))

    def section_vmemmap(self, nr):
        """How section ``nr``'s memmap is mapped: None, "boot-pmd", "pmd-ram", "pmd-altmap", "pte"."""
        cdef sm_section *s = _sec_obj(self, nr)
        return C.VMM_NAMES[s.vmm] if s != NULL else None

    # ------------------------------------------------------------------ pfn queries
    @cython.binding(False)
    @cython.always_allow_keywords(False)
    def pfn_valid(self, pfn):
        """``pfn_valid`` (§4.2): legacy = ``valid_section``; v5.3 adds the early/bitmap test.

        Any int is accepted; a pfn beyond the physical address space is not valid.
        """
        return _valid_obj(self, pfn) == 1

    def __contains__(self, pfn):
        return _valid_obj(self, pfn) == 1

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

    def pfn_to_nid(self, pfn):
        """Node of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent.

        KernelBug when v5.3-v5.8 freed that struct page (:meth:`page_zonenum`)."""
        cdef int zn = _zn(self, pfn)
        return -1 if zn < 0 else zn >> 3

    def page_zonenum(self, pfn):
        """Zone index of ``pfn``'s struct page, or -1 if its memmap is poisoned/absent.

        KernelBug when the struct page was freed while ``pfn_valid`` stays true: a v5.3-v5.8
        partial removal from an early section (``early_partial_remove_frees_memmap``) fills
        that part of the boot memmap with 0xFD, or unmaps its PMD once all of it is 0xFD, and a
        later read gets garbage or faults (later-eras-hotplug-evidence.md §1 row 5.9, §3.3).
        The same goes for the span probes, which read the struct page too; a sub-section that
        ``memmap_init_zone`` wrote again since (a re-added range, onlined) reads normally."""
        cdef int zn = _zn(self, pfn)
        return -1 if zn < 0 else zn & 7

    # ------------------------------------------------------------------ boot (§3)
    def memory_present(self, nid, start_pfn, end_pfn):
        """``memory_present`` (§3.1): mark the sections of a memblock range present with nid."""
        cdef int c_nid = _nid(nid)
        cdef uint64_t start, end
        _u64(start_pfn, "start_pfn", &start)
        _u64(end_pfn, "end_pfn", &end)
        cdef uint64_t pfn, nr
        cdef sm_section *s
        if start > end:
            raise ValueError(f"memory_present: start_pfn 0x{start:x} > end_pfn 0x{end:x}")
        if self.phase == BOOTED:
            raise RuntimeError("memory_present() after sparse_init() or a hot-add: boot ranges come first")
        self.phase = PRESENT
        start &= ~(PPS - 1)
        if start > self.pfn_limit_:
            _warn_once(self, ("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                       f"Start of range {start} -> {end} exceeds SPARSEMEM max {self.pfn_limit_}")
            start = end = self.pfn_limit_
        elif end > self.pfn_limit_:
            _warn_once(self, ("memmodel", 0), "mm/sparse.c mminit_validate_memmodel_limits",
                       f"End of range {start} -> {end} exceeds SPARSEMEM max {self.pfn_limit_}, truncating")
            end = self.pfn_limit_
        pthread_rwlock_wrlock(&self.lock)
        try:
            pfn = start
            while pfn < end:
                nr = pfn >> SM_PFN_SECTION_SHIFT
                _index_init(self, nr)
                s = self.c_section(nr)
                if s.mem_map == 0:
                    s.mem_map = ((<uint64_t>c_nid) << self.nid_shift) | SM_SECTION_IS_ONLINE
                    s.nid = <int16_t>c_nid
                    s.mem_map |= SM_SECTION_MARKED_PRESENT
                    _sync(self, nr, s)
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
                for j in range(<int>SM_SECTIONS_PER_ROOT):
                    s = &self.roots[self.root_idx[r]].sec[j]
                    if not (s.mem_map & SM_SECTION_MARKED_PRESENT):
                        continue
                    _acct(self, s, -1)
                    s.usage = SM_USAGE_BOOT
                    s.subsection_map = 0
                    s.vmm = SM_VMM_BOOT_PMD
                    s.vmm_mask = 0
                    _clear_ext(self, s, ALL, True)
                    s.mem_map = (s.mem_map & self.keep_mask) | self.vmemmap_base | SM_SECTION_HAS_MEM_MAP | flags
                    _acct(self, s, 1)
                    _sync(self, (<uint64_t>r << SM_SECTION_ROOT_SHIFT) + j, s)
        finally:
            pthread_rwlock_unlock(&self.lock)

    def subsection_map_init(self, pfn, nr_pages):
        """``subsection_map_init`` (§3.5): mark the boot sub-sections a memblock range covers."""
        cdef uint64_t p, left
        _u64(pfn, "pfn", &p)
        _u64(nr_pages, "nr_pages", &left)
        cdef uint64_t p0, left0, step, nr
        cdef sm_section *s
        if not self.sparse_init_done:
            raise RuntimeError("subsection_map_init() needs sparse_init() first")
        if p + left > self.pfn_limit_ or p + left < p:
            raise ValueError(f"subsection_map_init: pfn range [0x{p:x}-0x{(<object>p) + left:x}) exceeds max pfn 0x{self.pfn_limit_:x}")
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
                _sync(self, nr, s)
                p += step
                left -= step
        finally:
            pthread_rwlock_unlock(&self.lock)

    # ------------------------------------------------------------------ hotplug (§5-§7)
    def sparse_add_section(self, nid, start_pfn, nr_pages, altmap=None):
        """``sparse_add_section`` (§5.3) for one section's piece; legacy: ``__add_section`` (§7).

        Raises KernelError(EEXIST) when a requested sub-section is already active (legacy: the
        section already has a memmap) and KernelError(ENOMEM) when the altmap cannot supply a
        PMD.  On -ENOMEM the kernel leaves the documented state of §5.4 step 7: the bits are
        cleared again but ``section_mem_map`` holds ``sparse_encode_mem_map(NULL, nr)``.
        """
        cdef int c_nid = _nid(nid)
        cdef uint64_t start, nr
        _check_range(self, start_pfn, nr_pages, True, "sparse_add_section", &start, &nr)
        cdef VmemAltmap am = _altmap(altmap)
        cdef int rc
        _enter_hotplug(self, "sparse_add_section")
        pthread_rwlock_wrlock(&self.lock)
        try:
            rc = _add_piece(self, c_nid, start, nr, am)
        finally:
            pthread_rwlock_unlock(&self.lock)
        if rc:
            _raise_add(self, rc, start, nr, am)

    def sparse_remove_section(self, start_pfn, nr_pages, altmap=None):
        """``__remove_section`` -> ``sparse_remove_section`` -> ``section_deactivate`` (§6.3-6.4).

        The kernel function is void: a section without a memmap (WARN_ON_ONCE) or a request
        covering inactive sub-sections ("section already deactivated" WARN) changes nothing
        and returns False here, with the warning in ``dmesg``.  Legacy: the whole section
        (``sparse_remove_one_section``).
        """
        cdef uint64_t start, nr
        _check_range(self, start_pfn, nr_pages, True, "sparse_remove_section", &start, &nr)
        cdef VmemAltmap am = _altmap(altmap)
        cdef int done
        _enter_hotplug(self, "sparse_remove_section")
        pthread_rwlock_wrlock(&self.lock)
        try:
            done = _remove_piece(self, start, nr, am)
        finally:
            pthread_rwlock_unlock(&self.lock)
        return done == 1

    def sparse_add_range(self, nid, start_pfn, nr_pages, altmap=None):
        """The section loop of ``__add_pages`` (§5.2 step 3; legacy §7).

        One ``sparse_add_section`` per section piece; the first error stops the loop and is
        raised, and the pieces added before it stay added (the kernel has no rollback).
        Legacy: every section the range touches is added whole and -EEXIST is ignored.
        """
        cdef int c_nid = _nid(nid)
        cdef uint64_t start, nr
        _check_range(self, start_pfn, nr_pages, False, "sparse_add_range", &start, &nr)
        cdef VmemAltmap am = _altmap(altmap)
        cdef uint64_t pfn = start, end = start + nr, step = 0, done, r
        cdef int rc = 0
        cdef bint swallow = (self.kflags & SM_K_SWALLOW_EEXIST) != 0
        cdef uint64_t submap = ALL if (self.kflags & SM_K_SUBSECTION) else 0
        _enter_hotplug(self, "sparse_add_range")
        pthread_rwlock_wrlock(&self.lock)
        try:
            r = start >> (SM_PFN_SECTION_SHIFT + SM_SECTION_ROOT_SHIFT)
            while r <= (end - 1) >> (SM_PFN_SECTION_SHIFT + SM_SECTION_ROOT_SHIFT):
                _index_init(self, r << SM_SECTION_ROOT_SHIFT)
                r += 1
            while pfn < end:
                if am is None and (pfn & (PPS - 1)) == 0 and end - pfn >= PPS:
                    # whole fresh sections (sm_sync_section): the same steps as below, in one C loop
                    done = sm_add_fresh_sections(self.roots, self.root_idx, pfn >> SM_PFN_SECTION_SHIFT,
                                                 (end - pfn) >> SM_PFN_SECTION_SHIFT, c_nid, submap,
                                                 self.vmemmap_base, &self.highest_present)
                    if done:
                        self.n_pmd_ram += done
                        pfn += done << SM_PFN_SECTION_SHIFT
                        continue
                if am is not None and (pfn & (PPS - 1)) == 0 and end - pfn >= PPS:
                    # whole fresh sections backed by the altmap: the same steps, in one C loop
                    done = _add_fresh_altmap(self, pfn >> SM_PFN_SECTION_SHIFT, (end - pfn) >> SM_PFN_SECTION_SHIFT,
                                             c_nid, am)
                    if done:
                        pfn += done << SM_PFN_SECTION_SHIFT
                        continue
                step = min(end - pfn, PPS - (pfn & (PPS - 1)))
                rc = _add_piece(self, c_nid, pfn, step, am)
                if rc == -EEXIST_ and swallow:
                    rc = 0
                if rc:
                    break
                pfn += step
        finally:
            pthread_rwlock_unlock(&self.lock)
        if rc:
            _raise_add(self, rc, pfn, step, am)

    def sparse_remove_range(self, start_pfn, nr_pages, altmap=None):
        """The section loop of ``__remove_pages`` (§6.2 step 4): returns the pieces removed."""
        cdef uint64_t start, nr
        _check_range(self, start_pfn, nr_pages, False, "sparse_remove_range", &start, &nr)
        cdef VmemAltmap am = _altmap(altmap)
        cdef uint64_t pfn = start, end = start + nr, step, done
        cdef int64_t removed = 0
        cdef int encoded_null = (self.kflags & SM_K_ENCODED_NULL) != 0
        _enter_hotplug(self, "sparse_remove_range")
        pthread_rwlock_wrlock(&self.lock)
        try:
            while pfn < end:
                if am is None and (pfn & (PPS - 1)) == 0 and end - pfn >= PPS:
                    # whole plain hot-added sections (a RAM PMD, no marks): section_deactivate in one C loop
                    done = sm_remove_full_sections(self.roots, self.root_idx, pfn >> SM_PFN_SECTION_SHIFT,
                                                   (end - pfn) >> SM_PFN_SECTION_SHIFT, encoded_null)
                    if done:
                        self.n_pmd_ram -= done
                        removed += done
                        pfn += done << SM_PFN_SECTION_SHIFT
                        continue
                step = min(end - pfn, PPS - (pfn & (PPS - 1)))
                removed += _remove_piece(self, pfn, step, am)
                pfn += step
        finally:
            pthread_rwlock_unlock(&self.lock)
        return removed

    # ------------------------------------------------------------------ online state
    def online_mem_sections(self, start_pfn, end_pfn):
        """``online_mem_sections`` (§5.5): set SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        _set_online(self, start_pfn, end_pfn, True, "online_mem_sections")

    def offline_mem_sections(self, start_pfn, end_pfn):
        """``offline_mem_sections`` (§5.6): clear SECTION_IS_ONLINE, WARN_ON sections without memmap."""
        _set_online(self, start_pfn, end_pfn, False, "offline_mem_sections")

    # ------------------------------------------------------------------ memmap contents
    def memmap_init_zone(self, nid, zone, start_pfn, nr_pages):
        """``memmap_init_zone``: link the struct pages of a range to (zone, nid).

        Recorded per 2 MiB sub-section (the granularity of every probe that reads them), only
        where a memmap exists; pageblocks starting inside the range become MIGRATE_MOVABLE.
        """
        cdef int c_nid = _nid(nid)
        cdef int c_zone = _zone(zone, False)
        cdef uint64_t p, left
        _u64(start_pfn, "start_pfn", &p)
        _u64(nr_pages, "nr_pages", &left)
        cdef uint64_t step, mask, off, first, last, nr
        cdef uint16_t zn = <uint16_t>(c_zone | (c_nid << 3))
        cdef sm_section *s
        cdef sm_ext *e
        cdef int i
        if p + left > self.pfn_limit_ or p + left < p:
            raise ValueError(f"memmap_init_zone: pfn range [0x{p:x}-0x{(<object>p) + left:x}) exceeds max pfn 0x{self.pfn_limit_:x}")
        pthread_rwlock_wrlock(&self.lock)
        try:
            while left:
                step = min(left, PPS - (p & (PPS - 1)))
                nr = p >> SM_PFN_SECTION_SHIFT
                s = self.c_section(nr)
                if s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                    mask = sm_subsection_mask(p, step)
                    if s.ext:
                        e = self.exts[s.ext]
                    else:
                        e = _ext_get(self, s)
                        _sync(self, nr, s)  # it has a block now
                    if mask == ALL:
                        # the whole section: every sub-section's word is (zone, nid), whatever
                        # was there (the poison of a first write included)
                        _fill_zn(e, zn)
                        e.has_zn = 1
                    else:
                        if not e.has_zn:
                            for i in range(<int>SM_SUBSECTIONS_PER_SECTION):
                                e.zn[i] = SM_ZN_POISON
                            e.has_zn = 1
                        for i in range(<int>SM_SUBSECTIONS_PER_SECTION):
                            if (mask >> i) & 1:
                                e.zn[i] = zn
                    e.init_mask |= mask
                    if s.usage != SM_USAGE_NONE:
                        off = p & (PPS - 1)
                        first = (off + SM_PAGEBLOCK_NR_PAGES - 1) // SM_PAGEBLOCK_NR_PAGES
                        last = (off + step - 1) // SM_PAGEBLOCK_NR_PAGES
                        if first <= last:
                            e.pb_mask |= sm_subsection_mask(first * SM_PAGEBLOCK_NR_PAGES,
                                                            (last - first + 1) * SM_PAGEBLOCK_NR_PAGES)
                p += step
                left -= step
        finally:
            pthread_rwlock_unlock(&self.lock)

    def page_init_poison(self, pfn, nr_pages):
        """``page_init_poison(pfn_to_page(pfn), sizeof(struct page) * nr_pages)``: the struct
        pages of the range read as never initialised again (``page_zonenum``/``pfn_to_nid``
        -1), as v5.6+ ``remove_pfn_range_from_zone`` leaves them after an offline
        (later-eras-hotplug-evidence.md §1 row 5.6, "mm/memory_hotplug: poison memmap in
        remove_pfn_range_from_zone()").  The kernel fills them with 0xFF only under
        CONFIG_DEBUG_VM; the model's "poisoned" means "not initialised" whatever the build, as
        for a hot-added memmap.  Per 2 MiB sub-section like :meth:`memmap_init_zone` (a
        partially covered one counts as poisoned), only where a memmap exists; pageblock flags
        are not struct pages and stay.  ``nr_pages`` 0 does nothing.  TypeError / ValueError
        (range beyond the address space) before anything changes."""
        cdef uint64_t p, left
        _u64(pfn, "pfn", &p)
        _u64(nr_pages, "nr_pages", &left)
        cdef uint64_t step, nr
        cdef sm_section *s
        if p + left > self.pfn_limit_ or p + left < p:
            raise ValueError(f"page_init_poison: pfn range [0x{p:x}-0x{(<object>p) + left:x}) exceeds max pfn 0x{self.pfn_limit_:x}")
        pthread_rwlock_wrlock(&self.lock)
        try:
            while left:
                step = min(left, PPS - (p & (PPS - 1)))
                nr = p >> SM_PFN_SECTION_SHIFT
                s = self.c_section(nr)
                if s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                    _clear_ext(self, s, sm_subsection_mask(p, step), False)
                p += step
                left -= step
        finally:
            pthread_rwlock_unlock(&self.lock)

    def section_taint_zone_device(self, pfn):
        """``section_taint_zone_device(pfn)`` (v5.12+, mm/memory_hotplug.c): OR
        SECTION_TAINT_ZONE_DEVICE (bit 4) into the word of ``pfn``'s section, whatever that
        section holds; only the final ``section_mem_map = 0`` of a full deactivation clears it
        (later-eras-hotplug-evidence.md §1 row 5.12).  RuntimeError in a kernel without the flag
        (``model.section_taint_zone_device`` False: before v5.12 bit 4 is part of the encoded
        memmap); TypeError / ValueError (pfn beyond the address space) before anything
        changes; KernelBug when the section's root is not allocated (``__pfn_to_section`` is
        NULL and the kernel dereferences it)."""
        cdef uint64_t p, nr
        cdef sm_section *s
        _u64(pfn, "pfn", &p)
        if not (self.kflags & SM_K_TAINT_ZONE_DEVICE):
            raise RuntimeError(K.no_taint_message(self._model))
        if p >= self.pfn_limit_:
            raise ValueError(f"section_taint_zone_device: pfn 0x{p:x} exceeds max pfn 0x{self.pfn_limit_:x}")
        nr = p >> SM_PFN_SECTION_SHIFT
        s = self.c_section(nr)
        if s == NULL:
            raise KernelBug(f"section_taint_zone_device(pfn 0x{p:x}): __pfn_to_section is NULL (the root of "
                            f"section {nr} is not allocated): NULL dereference")
        pthread_rwlock_wrlock(&self.lock)
        s.mem_map |= SM_SECTION_TAINT_ZONE_DEVICE
        _sync(self, nr, s)
        pthread_rwlock_unlock(&self.lock)

    # ------------------------------------------------------------------ span scans (§6.5)
    def find_smallest_section_pfn(self, nid, zone, start_pfn, end_pfn):
        """``find_smallest_section_pfn``: first probe in [start, end) of (nid, zone), else 0.

        Probes every ``shrink_step`` pfns (512 in v5.3, 32768 in v5.2) from ``start_pfn``;
        ``zone=None`` means any zone (the node scan).  Sections without a memmap are skipped
        whole, which gives the same answer as probing them.
        """
        cdef int c_nid = _nid(nid)
        cdef int c_zone = _zone(zone, True)
        cdef uint64_t pfn, end
        _u64(start_pfn, "start_pfn", &pfn)
        _u64(end_pfn, "end_pfn", &end)
        cdef uint64_t step = self._model.shrink_step, nr, nxt
        if end > self.pfn_limit_:
            end = self.pfn_limit_  # no probe beyond the address space is valid
        while pfn < end:
            nr = pfn >> SM_PFN_SECTION_SHIFT
            if not _section_probed(self, nr):
                nxt = (nr + 1) << SM_PFN_SECTION_SHIFT
                pfn += ((nxt - pfn + step - 1) // step) * step
                continue
            if _probe(self, pfn, c_nid, c_zone):
                return pfn
            pfn += step
        return 0

    def find_biggest_section_pfn(self, nid, zone, start_pfn, end_pfn):
        """``find_biggest_section_pfn``: probes end-1, end-1-step, ... >= start; else 0.

        The kernel's loop variable is unsigned: when nothing matches and a probe would go
        below pfn 0 (or ``end_pfn`` is 0), v5.3 spins for ~2^55 iterations; this raises
        KernelBug instead (§6.5).
        """
        cdef int c_nid = _nid(nid)
        cdef int c_zone = _zone(zone, True)
        cdef uint64_t start, end
        _u64(start_pfn, "start_pfn", &start)
        _u64(end_pfn, "end_pfn", &end)
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
            if not _section_probed(self, nr):
                pfn -= <int64_t>((((<uint64_t>pfn) - (nr << SM_PFN_SECTION_SHIFT)) // step + 1) * step)
                continue
            if _probe(self, <uint64_t>pfn, c_nid, c_zone):
                return pfn
            pfn -= <int64_t>step
        if pfn < 0:
            raise KernelBug(K.wrap_message(start, end, step))
        return 0

    # ------------------------------------------------------------------ accounting
    def present_section_nrs(self):
        """Numbers of all present sections, ascending (``for_each_present_section_nr``)."""
        cdef uint64_t r, n = 0, k = 0
        cdef int j
        cdef sm_root *root
        for r in range(self.nr_roots):
            if self.root_idx[r] == 0:
                continue
            root = self.roots[self.root_idx[r]]
            for j in range(<int>SM_SECTIONS_PER_ROOT):
                n += (root.sec[j].mem_map & SM_SECTION_MARKED_PRESENT) != 0
        out = np.empty(n, dtype=np.uint64)
        if n == 0:
            return out
        cdef uint64_t[::1] o = out
        for r in range(self.nr_roots):
            if self.root_idx[r] == 0:
                continue
            root = self.roots[self.root_idx[r]]
            for j in range(<int>SM_SECTIONS_PER_ROOT):
                if root.sec[j].mem_map & SM_SECTION_MARKED_PRESENT:
                    o[k] = (r << SM_SECTION_ROOT_SHIFT) + <uint64_t>j
                    k += 1
        return out

    def vmemmap_stats(self):
        """vmemmap population by backing (memremap-nvdimm.md §7.4), from running counters.

        ``memmap_bytes`` is the memmap mapped now; ``memmap_ram_bytes`` what it takes from RAM
        (boot and RAM PMDs, base pages and PTE tables); ``memmap_altmap_bytes`` from device
        altmaps; ``fd_subsections`` counts sub-section memmaps of huge PMDs filled with 0xFD
        (partially freed, §6.4).
        """
        # K.stats (the reference core's), built here: memremap and the report read it around
        # every hot-add
        cdef int64_t boot = self.n_boot_pmd, ram = self.n_pmd_ram, alt = self.n_pmd_alt
        cdef int64_t pages = self.n_pages, tables = self.n_tables
        cdef int64_t pmd = SM_PMD_SIZE, page = SM_PAGE_SIZE
        return {
            "memmap_bytes": (boot + ram + alt) * pmd + pages * page,
            "memmap_ram_bytes": (boot + ram) * pmd + (pages + tables) * page,
            "memmap_altmap_bytes": alt * pmd,
            "boot_pmds": boot,
            "pmds_ram": ram,
            "pmds_altmap": alt,
            "base_pages_ram": pages,
            "pte_tables": tables,
            "fd_subsections": self.n_fd,
        }

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

    def _derived_word_errors(self):
        """Numbers of the sections whose derived words (validity word, fresh and plain bits,
        include/sparsemem.h) differ from what their fields give: [] unless the core has a bug.
        For the tests; changes nothing."""
        cdef uint64_t r, j, v, f, p
        cdef sm_root *root
        bad = []
        pthread_rwlock_wrlock(&self.lock)
        try:
            for r in range(self.nr_roots):
                if self.root_idx[r] == 0:
                    continue
                root = self.roots[self.root_idx[r]]
                for j in range(SM_SECTIONS_PER_ROOT):
                    v, f, p = root.valid[j], root.fresh[j >> 6], root.plain[j >> 6]
                    sm_sync_section(root, j, self.kflags, self.keep_mask)
                    if root.valid[j] != v or root.fresh[j >> 6] != f or root.plain[j >> 6] != p:
                        bad.append((r << SM_SECTION_ROOT_SHIFT) + j)
                        root.valid[j], root.fresh[j >> 6], root.plain[j >> 6] = v, f, p
        finally:
            pthread_rwlock_unlock(&self.lock)
        return bad

    def snapshot(self):
        """Every observable field of the table, for equality tests (dmesg excluded)."""
        return {
            "kernel": self.kernel,
            "max_physmem_bits": self.bits,
            "highest_present_section_nr": self.highest_present,
            "sections": dict(_rows(self, False)),
            "vmemmap": self.vmemmap_stats(),
        }

    # ------------------------------------------------------------------ pickling
    def __getstate__(self):
        return {
            "version": 1,
            "roots": [r for r in range(self.nr_roots) if self.root_idx[r]],
            "sections": _rows(self, True),
            "highest": self.highest_present,
            "phase": self.phase,
            "sparse_init_done": self.sparse_init_done,
            "warned_once": sorted(self.warned_once),
            "dmesg": list(self.dmesg),
        }

    def __setstate__(self, state):
        cdef sm_section *s
        cdef sm_ext *e
        cdef int i
        cdef uint64_t nr, pb
        pthread_rwlock_wrlock(&self.lock)
        try:
            for r in state["roots"]:
                _index_init(self, <uint64_t>r << SM_SECTION_ROOT_SHIFT)
            for (nr_, mem_map, smap, init, pte, fd, zn, usemap, nid, usage, vmm) in state["sections"]:
                nr = nr_
                _index_init(self, nr)
                s = self.c_section(nr)
                _acct(self, s, -1)
                s.mem_map, s.subsection_map = mem_map, smap
                s.nid, s.usage, s.vmm = nid, usage, vmm
                # one word holds the PTE map or the 0xFD marks, whichever the backing has
                s.vmm_mask = pte if s.vmm == SM_VMM_PTE else (fd if _huge(s) else 0)
                pb = K.pageblock_mask(usemap)
                if init or pb or zn is not None:
                    e = _ext_get(self, s)
                    e.init_mask, e.pb_mask = init, pb
                    if zn is not None:
                        e.has_zn = 1
                        for i in range(<int>SM_SUBSECTIONS_PER_SECTION):
                            e.zn[i] = zn[i]
                else:
                    _clear_ext(self, s, ALL, True)
                _acct(self, s, 1)
                _sync(self, nr, s)
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


# ---------------------------------------------------------------------- private helpers
# Module-level functions rather than methods, so that _sparsecore.pxd (the cimport face) holds
# only the public c_* methods.

cdef inline int _check_range(SectionTable self, object start_pfn, object nr_pages, bint one_section, str what,
                             uint64_t *start, uint64_t *nr) except -1:
    """``K.check_range`` (the hotplug caller contract) on a C fast path: into ``*start``/``*nr``."""
    cdef uint64_t s, n, e
    if _fast_u64(start_pfn, &s) and _fast_u64(nr_pages, &n) and n != 0:
        e = s + n  # both < 2**63: no wrap
        if (e <= self.pfn_limit_
                and (not one_section or (s >> SM_PFN_SECTION_SHIFT) == ((e - 1) >> SM_PFN_SECTION_SHIFT))
                and (not (self.kflags & SM_K_SUBSECTION) or ((s | n) & SUB_MASK) == 0)):
            start[0] = s
            nr[0] = n
            return 0
    s_, n_ = K.check_range(start_pfn, nr_pages, self.pfn_limit_, self.bits, bool(self.kflags & SM_K_SUBSECTION),
                           one_section=one_section, what=what)
    start[0] = s_
    nr[0] = n_
    return 0


cdef inline int _check_span(SectionTable self, object start_pfn, object end_pfn, str what,
                            uint64_t *start, uint64_t *end) except -1:
    """``K.check_span`` on a C fast path: into ``*start``/``*end``."""
    cdef uint64_t s, e
    if _fast_u64(start_pfn, &s) and _fast_u64(end_pfn, &e) and s <= e and e <= self.pfn_limit_:
        start[0] = s
        end[0] = e
        return 0
    s_, e_ = K.check_span(start_pfn, end_pfn, self.pfn_limit_, what)
    start[0] = s_
    end[0] = e_
    return 0


cdef inline VmemAltmap _altmap(object altmap):
    if altmap is not None and not isinstance(altmap, VmemAltmap):
        raise TypeError(f"altmap must be a {__name__}.VmemAltmap or None, not {type(altmap).__name__}")
    return altmap


cdef inline int _enter_hotplug(SectionTable self, str what) except -1:
    if self.phase == PRESENT:
        raise RuntimeError(f"{what}: memory_present() ran but sparse_init() has not: finish booting first")
    self.phase = BOOTED
    return 0


cdef int _warn(SectionTable self, str where, str text) except -1:
    self.dmesg.append(f"WARNING: at {where}: {text}")
    return 0


cdef int _warn_once(SectionTable self, object key, str where, str text) except -1:
    if key not in self.warned_once:
        self.warned_once.add(key)
        _warn(self, where, text)
    return 0


cdef inline void _sync(SectionTable self, uint64_t nr, sm_section *s) noexcept:
    """After any change to section ``nr`` (``s``): its derived words (validity, fresh, plain)."""
    sm_sync_section(self.roots[self.root_idx[nr >> SM_SECTION_ROOT_SHIFT]], nr & SM_SECTION_ROOT_MASK,
                    self.kflags, self.keep_mask)


cdef int _index_init(SectionTable self, uint64_t nr) except -1:
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
    root = <sm_root *>_pool_take(_pool_roots, &_n_pool_roots, sizeof(sm_root))
    if root == NULL:
        raise MemoryError()
    sm_root_init(root)
    self.roots[self.nroots] = root
    self.root_idx[r] = self.nroots
    self.nroots += 1
    return 0


# --- the memmap-contents block of a section (include/sparsemem.h sm_ext) -----------------------
cdef sm_ext *_ext_get(SectionTable self, sm_section *s) except NULL:
    """The section's sm_ext block, allocated (all zero) on first use; never freed before the table."""
    cdef sm_ext **grown
    cdef sm_ext *e
    cdef uint32_t cap
    if s.ext:
        return self.exts[s.ext]
    if self.nexts >= self.exts_cap:
        cap = 16 if self.exts_cap == 0 else 2 * self.exts_cap
        grown = <sm_ext **>realloc(self.exts, cap * sizeof(sm_ext *))
        if grown == NULL:
            raise MemoryError()
        self.exts = grown
        self.exts_cap = cap
    if (self.nexts - 1) % EXT_CHUNK == 0:
        e = <sm_ext *>_pool_take(_pool_chunks, &_n_pool_chunks, EXT_CHUNK * sizeof(sm_ext))
        if e == NULL:
            raise MemoryError()
    else:
        e = self.exts[self.nexts - 1] + 1      # the next (zeroed) block of the current chunk
    self.exts[self.nexts] = e
    s.ext = self.nexts
    self.nexts += 1
    return e


cdef inline void _fill_zn(sm_ext *e, uint16_t zn) noexcept:
    """Every one of the 64 zone/nid words of ``e`` := ``zn`` (four per 64-bit store)."""
    cdef uint64_t word = <uint64_t>zn * 0x0001000100010001ULL
    cdef uint64_t *w = <uint64_t *>e.zn     # zn[64] starts 8-byte aligned (include/sparsemem.h)
    cdef int i
    for i in range(<int>(SM_SUBSECTIONS_PER_SECTION // 4)):
        w[i] = word


cdef inline uint64_t _init_mask(SectionTable self, const sm_section *s) noexcept:
    return self.exts[s.ext].init_mask if s.ext else 0


cdef inline uint64_t _pb_mask(SectionTable self, const sm_section *s) noexcept:
    return self.exts[s.ext].pb_mask if s.ext else 0


cdef inline void _clear_ext(SectionTable self, sm_section *s, uint64_t init_bits, bint pageblocks) noexcept:
    """Clear ``init_bits`` of the initialised sub-sections (page_init_poison / a freed memmap)
    and, with ``pageblocks``, the pageblock flags (a new usage starts zeroed)."""
    cdef sm_ext *e
    if s.ext:
        e = self.exts[s.ext]
        e.init_mask &= ~init_bits
        if pageblocks:
            e.pb_mask = 0


# --- queries ------------------------------------------------------------------------------------
cdef inline sm_section *_sec_obj(SectionTable self, object nr) except? NULL:
    cdef int64_t v = _small_index(nr, "section number")
    if v < 0 or <uint64_t>v >= self.nr_sections:
        return NULL
    return self.c_section(<uint64_t>v)


cdef inline int _valid_obj(SectionTable self, object pfn) except -1:
    cdef uint64_t v
    if type(pfn) is not int:
        pfn = K.index(pfn, "pfn")
    return sm_int_u63(pfn, &v) and self.c_pfn_valid(v)


cdef enum:
    ZN_FREED = -2    # _zn_c: the struct page was freed by a v5.3-v5.8 partial early removal


cdef inline bint _memmap_freed(SectionTable self, const sm_section *s, unsigned sub) noexcept:
    """The struct pages of sub-section ``sub`` of early, valid section ``s`` were freed by a
    v5.3-v5.8 partial removal: its PMD is gone, or it holds the 0xFD marks and has not been
    initialised since (the reference core's ``_memmap_freed``)."""
    if not (self.kflags & SM_K_EARLY_PARTIAL_FREE) or not (s.mem_map & SM_SECTION_IS_EARLY):
        return False
    if s.vmm == SM_VMM_NONE:
        return True
    return _huge(s) and ((s.vmm_mask >> sub) & 1) != 0 and not ((_init_mask(self, s) >> sub) & 1)


cdef inline int _zn_c(SectionTable self, uint64_t pfn) noexcept:
    """The zone/nid word of ``pfn``'s struct page: -1 poisoned/absent, ZN_FREED freed."""
    cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
    cdef unsigned sub
    cdef sm_ext *e
    if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
        return -1
    sub = (pfn >> SM_PFN_SUBSECTION_SHIFT) & 63
    if _memmap_freed(self, s, sub):
        return ZN_FREED
    if not s.ext:
        return -1
    e = self.exts[s.ext]
    if not ((e.init_mask >> sub) & 1):
        return -1
    return e.zn[sub]


cdef int _raise_freed(SectionTable self, uint64_t pfn) except -1:
    cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
    raise KernelBug(K.freed_memmap_message(pfn, s.vmm == SM_VMM_NONE))


cdef int _zn(SectionTable self, object pfn) except -2:
    cdef int64_t v = _small_index(pfn, "pfn")
    cdef int zn
    if v < 0 or <uint64_t>v >= self.pfn_limit_:
        return -1
    zn = _zn_c(self, <uint64_t>v)
    if zn == ZN_FREED:
        _raise_freed(self, <uint64_t>v)
    return zn


cdef inline bint _section_probed(SectionTable self, uint64_t nr) noexcept:
    """A section whose pfns a span probe may take: valid, and online in the v5.4+ mode."""
    cdef sm_section *s = self.c_section(nr)
    if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
        return False
    return not (self.kflags & SM_K_PROBE_ONLINE) or (s.mem_map & SM_SECTION_IS_ONLINE) != 0


cdef inline int _probe(SectionTable self, uint64_t pfn, int nid, int zone) except -1:
    """One probe of the span scans (the reference core's ``_probe``): 1 when it matches."""
    cdef int zn
    cdef unsigned sub
    cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
    cdef uint64_t both = SM_SECTION_IS_ONLINE | SM_SECTION_TAINT_ZONE_DEVICE
    if self.kflags & SM_K_PROBE_ONLINE:
        if s == NULL or not (s.mem_map & SM_SECTION_IS_ONLINE):
            return 0
        if self.kflags & SM_K_ONLINE_PAGE_FN:
            sub = (pfn >> SM_PFN_SUBSECTION_SHIFT) & 63
            if s.usage == SM_USAGE_NONE or not ((s.subsection_map >> sub) & 1):
                return 0
    elif self.kflags & SM_K_SUBSECTION:
        if not self.c_pfn_valid(pfn):
            return 0
    elif s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
        return 0
    zn = _zn_c(self, pfn)
    if zn == ZN_FREED:
        _raise_freed(self, pfn)
    if zn < 0:
        return 0
    if ((self.kflags & SM_K_PROBE_ONLINE) and (self.kflags & SM_K_ONLINE_PAGE_FN)
            and (zn & 7) == SM_ZONE_DEVICE and (s.mem_map & both) == both):
        return 0    # get_dev_pagemap finds the pfn's pgmap: offline
    if (zn >> 3) != nid:
        return 0
    return 1 if zone < 0 or (zn & 7) == zone else 0


cdef list _rows(SectionTable self, bint all_fields):
    cdef uint64_t r, nr, init, pb, pte, fd
    cdef int j, i
    cdef sm_section *s
    cdef sm_ext *e
    rows = []
    for r in range(self.nr_roots):
        if self.root_idx[r] == 0:
            continue
        for j in range(<int>SM_SECTIONS_PER_ROOT):
            s = &self.roots[self.root_idx[r]].sec[j]
            e = sm_section_ext(self.exts, s)
            init = e.init_mask if e != NULL else 0
            pb = e.pb_mask if e != NULL else 0
            pte = s.vmm_mask if s.vmm == SM_VMM_PTE else 0
            fd = s.vmm_mask if _huge(s) else 0
            zn = None if e == NULL or not e.has_zn else tuple([e.zn[i] for i in range(<int>SM_SUBSECTIONS_PER_SECTION)])
            usemap = K.pageblock_flags_word(pb)
            if all_fields:
                if s.mem_map or s.usage or s.vmm or init or zn is not None:
                    rows.append((nr_of(r, j), s.mem_map, s.subsection_map, init, pte, fd,
                                 zn, usemap, s.nid, s.usage, s.vmm))
            elif s.mem_map or s.usage or s.vmm or init:
                if init:
                    zn = tuple([zn[i] if (init >> i) & 1 else -1 for i in range(64)])
                else:
                    zn = None
                rows.append((nr_of(r, j), (s.mem_map, s.subsection_map if s.usage else 0, s.usage,
                                           s.nid if s.mem_map & SM_SECTION_MARKED_PRESENT else -1,
                                           init, s.vmm, pte, fd, usemap if s.usage else 0, zn)))
    return rows


cdef inline uint64_t nr_of(uint64_t r, int j) noexcept:
    return (r << SM_SECTION_ROOT_SHIFT) + <uint64_t>j


# --- vmemmap (MN §7) ----------------------------------------------------------------------------
cdef inline bint _huge(const sm_section *s) noexcept:
    return s.vmm == SM_VMM_BOOT_PMD or s.vmm == SM_VMM_PMD_RAM or s.vmm == SM_VMM_PMD_ALTMAP


cdef inline void _acct(SectionTable self, sm_section *s, int sign) noexcept:
    """Add (sign=1) or remove (sign=-1) section ``s``'s vmemmap from the counters."""
    if s.vmm == SM_VMM_BOOT_PMD:
        self.n_boot_pmd += sign
    elif s.vmm == SM_VMM_PMD_RAM:
        self.n_pmd_ram += sign
    elif s.vmm == SM_VMM_PMD_ALTMAP:
        self.n_pmd_alt += sign
    elif s.vmm == SM_VMM_PTE:
        self.n_tables += sign
        self.n_pages += sign * SM_SUBSECTION_MEMMAP_PAGES * sm_popcount64(s.vmm_mask)
    if _huge(s):
        self.n_fd += sign * sm_popcount64(s.vmm_mask)


cdef bint _populate(SectionTable self, sm_section *s, uint64_t mask, bint full, VmemAltmap altmap) noexcept:
    """``__populate_section_memmap`` for the sub-sections ``mask``; False = -ENOMEM."""
    cdef bint huge = _huge(s)
    _acct(self, s, -1)
    if not full:
        # Rule 1 (v5.3): partial sections use 4 KiB pages from RAM, even with an altmap
        if huge:
            s.vmm_mask &= ~mask            # those 0xFD marks are overwritten
        else:
            if s.vmm == SM_VMM_NONE:
                s.vmm = SM_VMM_PTE
                s.vmm_mask = 0
            s.vmm_mask |= mask             # PTE-mapped sub-sections
    elif huge:
        s.vmm_mask = 0
    elif s.vmm == SM_VMM_PTE:
        s.vmm_mask = ALL
    elif altmap is not None:
        if altmap.c_alloc_block_buf(SM_PMD_PFNS) < 0:
            _acct(self, s, 1)
            return False
        s.vmm = SM_VMM_PMD_ALTMAP
        s.vmm_mask = 0
    else:
        s.vmm = SM_VMM_PMD_RAM
        s.vmm_mask = 0
    _acct(self, s, 1)
    return True


cdef inline void _free_pmd(sm_section *s, VmemAltmap altmap) noexcept:
    """``free_hugepage_table``: back to the altmap if one is passed, else to RAM."""
    if altmap is not None:
        altmap.c_free(SM_PMD_PFNS)
    s.vmm = SM_VMM_NONE
    s.vmm_mask = 0


cdef void _depopulate(SectionTable self, sm_section *s, uint64_t mask, VmemAltmap altmap) noexcept:
    """``vmemmap_free`` of the memmap of sub-sections ``mask`` (MN §7.2)."""
    _acct(self, s, -1)
    if _huge(s):
        if mask == ALL:
            _free_pmd(s, altmap)
        else:
            s.vmm_mask |= mask             # 0xFD marks
            if s.vmm_mask == ALL:
                _free_pmd(s, altmap)
    elif s.vmm == SM_VMM_PTE:
        s.vmm_mask &= ~mask
        if s.vmm_mask == 0:
            s.vmm = SM_VMM_NONE
    _acct(self, s, 1)


cdef inline void _free_whole_memmap(SectionTable self, sm_section *s) noexcept:
    """``free_map_bootmem`` of the whole section (no altmap)."""
    _acct(self, s, -1)
    s.vmm = SM_VMM_NONE
    s.vmm_mask = 0


cdef int _free_usage(SectionTable self, sm_section *s, uint64_t nr) except -1:
    if s.usage == SM_USAGE_BOOT:
        self.dmesg.append(f"BUG: kfree() of the boot-time mem_section_usage of section {nr} "
                          f"(memblock memory: the v5.3 re-added early section bug)")
    s.usage = SM_USAGE_NONE
    s.subsection_map = 0
    return 0


# --- hotplug (§5-§7) ----------------------------------------------------------------------------
cdef inline void _mark_present(SectionTable self, sm_section *s, uint64_t nr, int nid) noexcept:
    s.mem_map |= SM_SECTION_MARKED_PRESENT
    s.nid = <int16_t>nid
    if nr > self.highest_present:
        self.highest_present = nr


cdef int _section_activate(SectionTable self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages,
                           VmemAltmap altmap) except? -999:
    """``section_activate`` (§5.4): 0 or -errno, leaving the documented state."""
    cdef uint64_t mask = sm_subsection_mask(pfn, nr_pages)
    if s.usage == SM_USAGE_NONE:
        # a new, zeroed usage (its bitmap is empty, so the -EEXIST test cannot fire)
        s.usage = SM_USAGE_SLAB
        s.subsection_map = 0
        _clear_ext(self, s, 0, True)
    elif s.subsection_map & mask:
        return -EEXIST_
    s.subsection_map |= mask
    if nr_pages < PPS and (s.mem_map & SM_SECTION_IS_EARLY):
        return 0
    if not _populate(self, s, mask, nr_pages == PPS, altmap):
        _section_deactivate(self, nr, s, pfn, nr_pages, altmap)
        return -ENOMEM_
    return 0


cdef int _section_deactivate(SectionTable self, uint64_t nr, sm_section *s, uint64_t pfn, uint64_t nr_pages,
                             VmemAltmap altmap) except -1:
    """``section_deactivate`` in its exact v5.3 order (§6.4); 0 after the WARN, else 1.  Step 5a
    follows the model's ``usage_free_rule``: v5.3-v5.4 free the usage (kfree, NULL) unless the
    section was early at entry; v5.5+ free it only if it is not a boot array (PageReserved),
    i.e. only a slab usage, and otherwise keep usage and pointer (later-eras-hotplug.md A8)."""
    cdef bint was_early = (s.mem_map & SM_SECTION_IS_EARLY) != 0
    cdef uint64_t mask = sm_subsection_mask(pfn, nr_pages)
    cdef bint empty, free_usage
    if s.usage == SM_USAGE_NONE or (s.subsection_map & mask) != mask:
        _warn(self, "mm/sparse.c section_deactivate", K.deactivated_message(pfn, nr_pages))
        return 0
    s.subsection_map ^= mask
    empty = s.subsection_map == 0
    if empty:
        if self.kflags & SM_K_USAGE_FREE_UNLESS_EARLY:
            free_usage = not was_early
        else:
            free_usage = s.usage == SM_USAGE_SLAB
        if free_usage:
            _free_usage(self, s, nr)
        s.mem_map = sm_encode_null(nr) if (self.kflags & SM_K_ENCODED_NULL) else 0
    if was_early and empty:
        _free_whole_memmap(self, s)
    elif not was_early or (self.kflags & SM_K_EARLY_PARTIAL_FREE):
        _depopulate(self, s, mask, altmap)
    _clear_ext(self, s, mask, False)
    _sync(self, nr, s)
    return 1


cdef int _legacy_add_section(SectionTable self, uint64_t nr, int nid, VmemAltmap altmap) except? -999:
    """v5.2 ``__add_section`` + ``sparse_add_one_section`` on the whole section (§7)."""
    cdef sm_section *s = self.c_section(nr)
    if s != NULL and (s.mem_map & SM_SECTION_HAS_MEM_MAP):
        return -EEXIST_
    _index_init(self, nr)
    s = self.c_section(nr)
    if not _populate(self, s, ALL, True, altmap):
        return -ENOMEM_
    if s.mem_map & SM_SECTION_MARKED_PRESENT:
        _depopulate(self, s, ALL, altmap)
        _sync(self, nr, s)
        return -EEXIST_
    s.usage = SM_USAGE_SLAB
    s.subsection_map = 0
    _clear_ext(self, s, ALL, True)
    _mark_present(self, s, nr, nid)
    s.mem_map = (s.mem_map & self.keep_mask) | self.vmemmap_base | SM_SECTION_HAS_MEM_MAP
    _sync(self, nr, s)
    return 0


cdef int _add_piece(SectionTable self, int nid, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except? -999:
    cdef uint64_t nr = pfn >> SM_PFN_SECTION_SHIFT
    cdef uint64_t sec_pfn = nr << SM_PFN_SECTION_SHIFT
    cdef sm_section *s
    cdef int rc
    cdef uint64_t encoded
    if not (self.kflags & SM_K_SUBSECTION):
        return _legacy_add_section(self, nr, nid, altmap)
    _index_init(self, nr)
    s = self.c_section(nr)
    rc = _section_activate(self, nr, s, pfn, nr_pages, altmap)
    if rc:
        return rc
    _clear_ext(self, s, sm_subsection_mask(pfn, nr_pages), False)  # page_init_poison
    _mark_present(self, s, nr, nid)
    if pfn != sec_pfn and (self.kflags & SM_K_KADDR_BUG):
        encoded = self.page_offset + sec_pfn * (SM_PAGE_SIZE - SM_STRUCT_PAGE_SIZE)
    else:
        encoded = self.vmemmap_base
    s.mem_map = (s.mem_map & self.keep_mask) | encoded | SM_SECTION_HAS_MEM_MAP
    _sync(self, nr, s)
    return 0


cdef uint64_t _add_fresh_altmap(SectionTable self, uint64_t nr, uint64_t count, int nid, VmemAltmap altmap) noexcept:
    """``_add_piece`` of up to ``count`` whole sections from ``nr`` on, each fresh
    (``sm_sync_section``: no usage, no memmap, no flag bits, no sm_ext block) and each given its
    PMD by ``altmap``: what ``section_activate`` (v5.3+) or ``__add_section`` (v5.2) does for
    such a section -- a slab usage (the full sub-section map from v5.3), a PMD from the
    altmap, marked present with ``nid``, the memmap word -- without the per-piece calls.
    Stops before the first section that is not fresh or whose PMD the altmap cannot supply
    (the caller then adds that one piece the general way, which fails as it must); returns
    how many it added.  Roots are allocated by the caller."""
    cdef uint64_t done = 0, j
    cdef uint32_t idx
    cdef sm_root *r
    cdef sm_section *s
    cdef uint64_t submap = ALL if (self.kflags & SM_K_SUBSECTION) else 0
    cdef uint64_t word = SM_SECTION_MARKED_PRESENT | self.vmemmap_base | SM_SECTION_HAS_MEM_MAP
    while done < count:
        idx = self.root_idx[nr >> SM_SECTION_ROOT_SHIFT]
        if idx == 0:
            break
        r = self.roots[idx]
        j = nr & SM_SECTION_ROOT_MASK
        if not ((r.fresh[j >> 6] >> (j & 63)) & 1):
            break
        if altmap.c_alloc_block_buf(SM_PMD_PFNS) < 0:
            break
        s = &r.sec[j]
        s.usage = SM_USAGE_SLAB
        s.subsection_map = submap
        s.vmm = SM_VMM_PMD_ALTMAP
        s.vmm_mask = 0
        s.nid = <int16_t>nid
        s.mem_map = word            # (mem_map & keep) is 0 for a fresh section
        self.n_pmd_alt += 1
        if nr > self.highest_present:
            self.highest_present = nr
        sm_sync_section(r, j, self.kflags, self.keep_mask)
        done += 1
        nr += 1
    return done


cdef int _raise_add(SectionTable self, int rc, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except -1:
    cdef sm_section *s = self.c_section(pfn >> SM_PFN_SECTION_SHIFT)
    cdef uint64_t overlap = 0
    if s != NULL and s.usage != SM_USAGE_NONE:
        overlap = s.subsection_map & sm_subsection_mask(pfn, nr_pages)
    raise K.add_error(rc, bool(self.kflags & SM_K_SUBSECTION), pfn, nr_pages, overlap, altmap)


cdef int _remove_piece(SectionTable self, uint64_t pfn, uint64_t nr_pages, VmemAltmap altmap) except -1:
    cdef uint64_t nr = pfn >> SM_PFN_SECTION_SHIFT
    cdef sm_section *s
    cdef int usage
    s = self.c_section(nr)
    if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
        _warn_once(self, ("remove_section", 0), "mm/memory_hotplug.c __remove_section",
                   f"section {nr} (pfn 0x{pfn:x}) has no valid memmap")
        return 0
    if self.kflags & SM_K_SUBSECTION:
        return _section_deactivate(self, nr, s, pfn, nr_pages, altmap)
    usage = s.usage
    s.mem_map = 0
    s.usage = SM_USAGE_NONE
    _clear_ext(self, s, ALL, False)
    if usage == SM_USAGE_SLAB:
        _depopulate(self, s, ALL, altmap)
    else:
        _free_whole_memmap(self, s)
    _sync(self, nr, s)
    return 1


cdef int _set_online(SectionTable self, object start_pfn, object end_pfn, bint online, str what) except -1:
    cdef uint64_t pfn, e, nr
    cdef sm_section *s
    _check_span(self, start_pfn, end_pfn, what, &pfn, &e)
    pthread_rwlock_wrlock(&self.lock)
    try:
        while pfn < e:
            nr = pfn >> SM_PFN_SECTION_SHIFT
            s = self.c_section(nr)
            if s == NULL or not (s.mem_map & SM_SECTION_HAS_MEM_MAP):
                _warn(self, f"mm/sparse.c {what}", f"section {nr} has no valid memmap")
            else:
                if online:
                    s.mem_map |= SM_SECTION_IS_ONLINE
                else:
                    s.mem_map &= ~SM_SECTION_IS_ONLINE
                _sync(self, nr, s)
            pfn += PPS
    finally:
        pthread_rwlock_unlock(&self.lock)
    return 0
