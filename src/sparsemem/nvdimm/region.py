"""An nvdimm pmem region (``nd_region``) and namespace allocation.

Every top-level "Persistent Memory" / "Persistent Memory (legacy)" iomem range is a region
(api.md "Machine").  Capacity is allocated the way ndctl asks the kernel for it: the lowest
free extent that fits the requested size; with ``size=None`` the largest free extent (the
lowest one on a tie).  ``available_size`` is the total free capacity, as sysfs shows it.
"""

from __future__ import annotations

import bisect
import errno
import uuid as _uuid
from typing import Optional

from .._common import strict_int
from ..errors import KernelError
from . import pfn as P
from .infoblock import INFO_BLOCK_SIZE, uuid_bytes
from .media import Media
from .namespace import BTT_SIG, MODE_ALIASES, MODES, PFN_MODES, Namespace, enable_error

__all__ = ["Region"]


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

    @property
    def end(self) -> int:
        return self.start + self.size

    @property
    def dev(self) -> str:
        return f"region{self.id}"

    # ---------------------------------------------------------------- capacity
    def free_extents(self) -> list[tuple[int, int]]:
        """``(offset, size)`` of each free extent, region-relative, in address order."""
        used = sorted((ns.offset, ns.raw_size) for ns in self.namespaces)
        out, pos = [], 0
        for off, sz in used:
            if off > pos:
                out.append((pos, off - pos))
            pos = max(pos, off + sz)
        if pos < self.size:
            out.append((pos, self.size - pos))
        return out

    @property
    def available_size(self) -> int:
        return sum(sz for _, sz in self.free_extents())

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
        extents = self.free_extents()
        if offset is not None:
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
            if not extents:
                raise KernelError(errno.ENOSPC, f"{self.dev}: no free capacity")
            off, size = max(extents, key=lambda e: (e[1], -e[0]))
        else:
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
        return {"dev": self.dev, "size": self.size, "available_size": self.available_size,
                "max_available_extent": self.max_available_extent, "type": "pmem",
                "resource": self.start, "namespaces": [ns.to_dict() for ns in self.namespaces]}

    def snapshot(self) -> dict:
        return {"id": self.id, "start": self.start, "size": self.size, "free": tuple(self.free_extents()),
                "namespaces": tuple(tuple(sorted(ns.snapshot().items())) for ns in self.namespaces),
                "media": self.media.snapshot()}

    def __repr__(self):
        return (f"<Region {self.dev} [mem {self.start:#x}-{self.end - 1:#x}] available {self.available_size:#x} "
                f"{len(self.namespaces)} namespaces>")
