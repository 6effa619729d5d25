"""An nvdimm pmem region (``nd_region``) and namespace allocation.

Every top-level "Persistent Memory" / "Persistent Memory (legacy)" iomem range is a region
(api.md "Machine").  Capacity is allocated the way ndctl asks the kernel for it: the lowest
free extent that fits the requested size; with ``size=None`` the largest free extent (the
lowest one on a tie).  ``available_size`` is the total free capacity, as sysfs shows it.

From v5.7 a region has an ``align`` attribute (later-eras-nvdimm-evidence.md R9, R15, R19;
drivers/nvdimm/region_devs.c ``default_align`` / ``align_store``, dimm_devs.c
``nd_pmem_available_dpa`` / ``nd_pmem_max_contiguous_dpa``, namespace_devs.c ``space_valid`` /
``__size_store``): a new namespace's size must be a multiple of it, free space is trimmed inward
to it and ``available_size`` counts every allocation widened outward to it, rounded down.  The
model has no DIMMs: an NFIT ("Persistent Memory") region is one mapping whose DPA offsets are the
region offsets; an e820 ("Persistent Memory (legacy)") region has no mapping and the
ND_REGION_PAGEMAP flag (drivers/nvdimm/e820.c), and keeps the 4 KiB allocation of the project
(the kernel offers only its one label-less namespace there).
"""

from __future__ import annotations

import bisect
import errno
import uuid as _uuid
from typing import Optional

from .._common import kstrtox, strict_int
from ..errors import KernelError
from . import pfn as P
from .infoblock import INFO_BLOCK_SIZE, uuid_bytes
from .media import Media
from .namespace import BTT_SIG, MODE_ALIASES, MODES, PFN_MODES, Namespace, enable_error

__all__ = ["Region"]


#: MEMREMAP_COMPAT_ALIGN_MAX (include/linux/memremap.h, v5.7): the default region align
_COMPAT_ALIGN_MAX = 16 << 20


def _uuid_arg(value) -> bytes:
    return _uuid.uuid4().bytes if value is None else uuid_bytes(value)


class Region:
    """``regionN``: ``start``, ``size``, ``available_size``, ``namespaces``, ``create_namespace``."""

    def __init__(self, bus, rid: int, start: int, size: int, res, media: Optional[Media] = None):
        self.bus = bus
        self.id = rid
        self.start = start
        self.size = size
        self.res = res  # the iomem resource the region lives in
        self.media = media if media is not None else Media(size)
        self.namespaces: list[Namespace] = []
        #: the value stored in the ``align`` attribute (None: the default); not on the media, so
        #: a reboot starts from the default again
        self._align: Optional[int] = None

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def dev(self) -> str:
        return f"region{self.id}"

    @property
    def model(self):
        return self.bus.machine.model

    @property
    def pagemap(self) -> bool:
        """ND_REGION_PAGEMAP: an e820 region (``Persistent Memory (legacy)``, drivers/nvdimm/e820.c
        registers it with the flag and no mappings); NFIT regions never set it."""
        return self.res.name == "Persistent Memory (legacy)"

    @property
    def mappings(self) -> int:
        """``ndr_mappings``: 0 for an e820 region, 1 for an NFIT region (no DIMM interleave is
        modelled)."""
        return 0 if self.pagemap else 1

    # ---------------------------------------------------------------- align (v5.7+)
    def default_align(self) -> Optional[int]:
        """``default_align`` of the booted release: None before v5.7; 16 MiB
        (MEMREMAP_COMPAT_ALIGN_MAX), from v5.18 4 KiB for a region under 16 MiB; times the
        mappings when they do not divide it (never, with 0 or 1 mapping)."""
        rule = self.model.region_align
        if not rule:
            return None
        a = _COMPAT_ALIGN_MAX
        if rule == "16m_small_4k" and self.size < _COMPAT_ALIGN_MAX:
            a = P.SZ_4K
        w = max(1, self.mappings)
        return a * w if a % w else a

    @property
    def align(self) -> Optional[int]:
        """The region's ``align`` attribute (api.md "Region.align"): the value stored, else
        :meth:`default_align`; None before v5.7 (the attribute does not exist)."""
        if not self.model.region_align:
            return None
        return self._align if self._align is not None else self.default_align()

    @align.setter
    def align(self, value) -> None:
        self.store_align(value)

    def store_align(self, value) -> None:
        """Write ``value`` (an int, or the text written to sysfs: ``kstrtoul(buf, 0)``) into
        the ``align`` attribute (``align_store``, R9/R19).  ``KernelError``: ENOENT before v5.7
        (no attribute), EINVAL for text that does not parse, ERANGE past 64 bits, ENXIO for a
        region without mappings (e820) in v5.7-v6.0, EINVAL unless value / mappings is a power
        of two of at least 4 KiB, the mappings divide the value and it is at most the region
        size.  A refused value changes nothing."""
        if not self.model.region_align:
            raise KernelError(errno.ENOENT, f"{self.dev}: no align attribute in {self.model.name} (from 5.7)")
        if isinstance(value, str):
            val = kstrtox(value)
            if val is None:
                raise KernelError(errno.EINVAL, f"{self.dev}/align: {value!r} is not a number")
        else:
            val = strict_int(value, "align", minimum=0)
        if val >= 1 << 64:
            raise KernelError(errno.ERANGE, f"{self.dev}/align: {val:#x} does not fit an unsigned long")
        if not self.mappings and not self.model.region_align_store_unmapped:
            raise KernelError(errno.ENXIO, f"{self.dev}/align: a region without mappings has no settable "
                                           f"align before 6.1")
        w = max(1, self.mappings)
        dpa, rem = divmod(val, w)
        if dpa < P.SZ_4K or dpa & (dpa - 1) or val > self.size or rem:
            raise KernelError(errno.EINVAL, f"{self.dev}/align: {val:#x} is not a power of two of at least "
                                            f"4 KiB (per mapping) no larger than the region ({self.size:#x})")
        self._align = val

    def _space_align(self) -> int:
        """The allocation granularity: ``dpa_align`` = align / mappings of an NFIT region from
        v5.7, else 4 KiB (PAGE_SIZE x mappings before v5.7; e820 regions are not allocated)."""
        a = self.align
        if a is None or not self.mappings:
            return P.SZ_4K
        return a // self.mappings

    # ---------------------------------------------------------------- capacity
    def _gaps(self) -> list[tuple[int, int]]:
        used = sorted([(ns.offset, ns.raw_size) for ns in self.namespaces])
        out, pos = [], 0
        for off, sz in used:
            if off > pos:
                out.append((pos, off - pos))
            if off + sz > pos:
                pos = off + sz
        if pos < self.size:
            out.append((pos, self.size - pos))
        return out

    def free_extents(self) -> list[tuple[int, int]]:
        """``(offset, size)`` of each free extent, region-relative, in address order; from v5.7
        each trimmed inward to the region's align (``space_valid``)."""
        gaps = self._gaps()
        a = self._space_align()
        if a <= P.SZ_4K:
            return gaps
        out = []
        for off, sz in gaps:
            s, e = P.aup(off, a), P.adn(off + sz, a)
            if e > s:
                out.append((s, e - s))
        return out

    @property
    def available_size(self) -> int:
        """Free capacity as sysfs ``available_size`` shows it: the free extents before v5.7;
        from v5.7 ``nd_pmem_available_dpa``: the region size less every namespace widened
        outward to the align (overlaps counted twice, as the kernel does), rounded down."""
        a = self._space_align()
        if a <= P.SZ_4K:
            return sum(sz for _, sz in self._gaps())
        busy = sum(P.aup(ns.offset + ns.raw_size, a) - P.adn(ns.offset, a) for ns in self.namespaces)
        return P.adn(self.size - busy, a) if busy < self.size else 0

    @property
    def max_available_extent(self) -> int:
        return max((sz for _, sz in self.free_extents()), default=0)

    def _next_id(self) -> int:
        used = {ns.id for ns in self.namespaces}
        i = 0
        while i in used:
            i += 1
        return i

    def _remove(self, ns: Namespace) -> None:
        if ns in self.namespaces:
            self.namespaces.remove(ns)
        # the namespace's label goes (ndctl destroy-namespace); the others are untouched
        self.media.labels = [lb for lb in self.media.labels if lb["offset"] != ns.offset]

    def _add_label(self, ns: Namespace) -> None:
        """Write ``ns``'s label, keeping the label area in address order (ndctl create)."""
        labels = self.media.labels
        i = bisect.bisect_left([lb["offset"] for lb in labels], ns.offset)
        labels.insert(i, ns.label())

    # ---------------------------------------------------------------- create
    def create_namespace(self, size: Optional[int] = None, mode: str = "fsdax", map: str = "dev",
                         align: Optional[int] = None, uuid=None, *, offset: Optional[int] = None,
                         nsid: Optional[int] = None) -> Namespace:
        """``ndctl create-namespace -r regionN [-s size] [-m mode] [-M map] [-a align]``.

        Raises ``ValueError``/``TypeError`` for malformed arguments, ``KernelError(EINVAL)``
        for a size that is not a multiple of 4 KiB or an unsupported ``align`` (sysfs
        ``align`` store, MN §2), ``KernelError(ENOSPC)`` when no free extent fits, and
        ``KernelError(ENXIO)`` when the kernel fails to enable the personality (its
        ``kernel_errno`` is the probe error; MN §8), e.g. -ENXIO for a sector namespace under
        16 MiB + 4 KiB (``ARENA_MIN_SIZE`` after the BTT's 4 KiB initial offset,
        ``nvdimm_namespace_attach_btt``).  On any failure the region's free
        capacity, labels, media and the iomem tree are as before; the dmesg lines the kernel
        printed stay.  One documented exception: when ``arch_add_memory`` fails part-way (the
        pre-series altmap shortfall of MN §3.4 scenario B) the sections it added stay added.

        ``offset`` (region-relative) and ``nsid`` re-create a namespace whose label already
        says where it is (an existing configuration, :mod:`sparsemem.existing`): the extent
        ``[offset, offset + size)`` must be free (``KernelError(EBUSY)`` otherwise) and the
        namespace is named ``namespace<region>.<nsid>`` (an id in use is ``EBUSY`` too).
        """
        if not isinstance(mode, str):
            raise TypeError(f"mode must be a str, not {type(mode).__name__}")
        mode = MODE_ALIASES.get(mode, mode)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if map not in ("dev", "mem"):
            raise ValueError(f"map must be 'dev' or 'mem', not {map!r}")
        if size is not None:
            strict_int(size, "size", minimum=1)
        if align is not None:
            strict_int(align, "align", minimum=1)
        nsuuid = _uuid_arg(uuid)
        if mode in PFN_MODES:
            align = P.DEFAULT_ALIGN if align is None else align
            if align not in P.SUPPORTED_ALIGNMENTS:
                raise KernelError(errno.EINVAL, f"{self.dev}: align {align:#x} is not one of the supported "
                                                f"alignments {', '.join(hex(a) for a in P.SUPPORTED_ALIGNMENTS)}")
        else:
            align = None
            map = "dev"
        if offset is not None:
            # a label that already says where the namespace is: the kernel does not re-check
            # labels against the align (later-eras-nvdimm-evidence.md R9 "upgrade effect")
            extents = self._gaps()
            strict_int(offset, "offset", minimum=0)
            if size is None:
                size = next((o + sz - offset for o, sz in extents if o <= offset < o + sz), 0)
            if size % P.SZ_4K or offset % P.SZ_4K or not size:
                raise KernelError(errno.EINVAL, f"{self.dev}: namespace at offset {offset:#x} size {size:#x} "
                                                f"is not 4 KiB aligned")
            if not any(o <= offset and offset + size <= o + sz for o, sz in extents):
                raise KernelError(errno.EBUSY, f"{self.dev}: [{offset:#x}, {offset + size:#x}) is not a free "
                                               f"extent of the region")
            off = offset
        elif size is None:
            extents = self.free_extents()
            if not extents:
                raise KernelError(errno.ENOSPC, f"{self.dev}: no free capacity")
            off, size = max(extents, key=lambda e: (e[1], -e[0]))
        else:
            extents = self.free_extents()
            ralign = self.align if self.mappings else None
            if ralign is not None and size % ralign:
                # ndctl validate_namespace_options refuses it before writing sysfs; the kernel's
                # __size_store would say "%llu is not %ldK aligned" (dev_dbg) with -EINVAL (R9)
                raise KernelError(errno.EINVAL, f"{self.dev}: align setting is {ralign:#x} size {size:#x} "
                                                f"is misaligned")
            if size % P.SZ_4K:
                raise KernelError(errno.EINVAL, f"{self.dev}: size {size:#x} is not a multiple of 4 KiB")
            fit = [e for e in extents if e[1] >= size]
            if not fit:
                raise KernelError(errno.ENOSPC, f"{self.dev}: no free extent of {size:#x} bytes "
                                                f"(largest {self.max_available_extent:#x})")
            off = fit[0][0]
        if nsid is not None:
            strict_int(nsid, "nsid", minimum=0)
            if any(n.id == nsid for n in self.namespaces):
                raise KernelError(errno.EBUSY, f"{self.dev}: namespace{self.id}.{nsid} exists already")
        ns = Namespace(self, self._next_id() if nsid is None else nsid, off, size, mode, map, align, nsuuid,
                       _uuid.uuid4().bytes if mode != "raw" else None, 4096 if mode == "sector" else 512)
        saved = self.media.save(off, min(P.INFO_BLOCK_RESERVE, size))
        labels = list(self.media.labels)
        self.namespaces.append(ns)
        try:
            ns._enable()
            if mode == "sector":
                # btt_init writes the arena info block only once nvdimm_namespace_attach_btt's
                # size check passed (drivers/nvdimm/btt.c): nothing is written on a refusal
                assert ns.pfn_uuid is not None  # every mode but raw has one
                self.media.write(off + P.INFO_BLOCK_OFFSET, BTT_SIG + ns.pfn_uuid + bytes(INFO_BLOCK_SIZE - 32))
        except BaseException as e:
            # roll back on *any* exception, so nothing can leave a half-created namespace
            if ns.enabled:
                ns.disable()
            self.namespaces.remove(ns)
            self.media.restore(saved)
            self.media.labels = labels
            if isinstance(e, KernelError):
                raise enable_error(ns.bound_dev, e) from e
            raise
        self._add_label(ns)
        return ns

    # ---------------------------------------------------------------- reporting
    def to_dict(self) -> dict:
        d = {"dev": self.dev, "size": self.size}
        if self.align is not None:
            d["align"] = self.align        # ndctl list -R shows the attribute where it exists (5.7+)
        d.update({"available_size": self.available_size, "max_available_extent": self.max_available_extent,
                  "type": "pmem", "resource": self.start, "namespaces": [ns.to_dict() for ns in self.namespaces]})
        return d

    def snapshot(self) -> dict:
        return {"id": self.id, "start": self.start, "size": self.size, "free": tuple(self.free_extents()),
                "namespaces": tuple(tuple(sorted(ns.snapshot().items())) for ns in self.namespaces),
                "media": self.media.snapshot()}

    def __repr__(self):
        return (f"<Region {self.dev} [mem {self.start:#x}-{self.end - 1:#x}] available {self.available_size:#x} "
                f"{len(self.namespaces)} namespaces>")
