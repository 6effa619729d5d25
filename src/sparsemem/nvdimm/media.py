"""Sparse persistent media of one nvdimm region.

Bytes are kept per 4 KiB page in a dict (never a full-size buffer); pages never written read
as zeros.  Offsets are **region-relative**, so media follows its region when firmware places
the region elsewhere on the next boot (MN §4.2).  The label area (namespace extents, uuids and
the mode the namespace was created in) is kept next to the data, as the DIMM label storage
area is: it survives reboot with the data.
"""

from __future__ import annotations

from .. import constants as C

__all__ = ["Media", "PAGE"]

PAGE = C.PAGE_SIZE
_ZERO = bytes(PAGE)


class Media:
    """Region-relative sparse byte store plus the namespace label list."""

    __slots__ = ("size", "pages", "labels", "read_only")

    def __init__(self, size: int):
        if not isinstance(size, int) or size < 0:
            raise ValueError(f"media size must be a non-negative int, got {size!r}")
        self.size = size
        self.pages: dict[int, bytes] = {}
        self.labels: list[dict] = []
        self.read_only = False

    def _check(self, offset: int, n: int) -> None:
        if not isinstance(offset, int) or not isinstance(n, int):
            raise TypeError("offset and length must be ints")
        if offset < 0 or n < 0 or offset + n > self.size:
            raise ValueError(f"media access [{offset:#x}, {offset + n:#x}) outside [0, {self.size:#x})")

    def read(self, offset: int, n: int) -> bytes:
        """``nvdimm_read_bytes`` at a region offset."""
        self._check(offset, n)
        if n == PAGE and not offset % PAGE:
            return self.pages.get(offset // PAGE, _ZERO)    # one whole page (bytes: immutable)
        out = bytearray()
        pos, end = offset, offset + n
        while pos < end:
            pg, within = divmod(pos, PAGE)
            take = min(PAGE - within, end - pos)
            out += self.pages.get(pg, _ZERO)[within:within + take]
            pos += take
        return bytes(out)

    def write(self, offset: int, data: bytes) -> None:
        """``nvdimm_write_bytes`` at a region offset (all-zero pages are dropped)."""
        data = bytes(data)
        self._check(offset, len(data))
        if len(data) == PAGE and not offset % PAGE:
            # one whole page: it replaces what was there
            if data == _ZERO:
                self.pages.pop(offset // PAGE, None)
            else:
                self.pages[offset // PAGE] = data
            return
        pos, end, i = offset, offset + len(data), 0
        while pos < end:
            pg, within = divmod(pos, PAGE)
            take = min(PAGE - within, end - pos)
            cur = bytearray(self.pages.get(pg, _ZERO))
            cur[within:within + take] = data[i:i + take]
            if cur == _ZERO:
                self.pages.pop(pg, None)
            else:
                self.pages[pg] = bytes(cur)
            pos += take
            i += take

    def zero(self, offset: int, n: int) -> None:
        """Zero ``n`` bytes (ndctl's info-block wipe on destroy)."""
        self.write(offset, bytes(n))

    def save(self, offset: int, n: int) -> dict:
        """The raw pages covering a range, to put back with :meth:`restore`."""
        first, last = offset // PAGE, (offset + n - 1) // PAGE
        return {pg: self.pages.get(pg) for pg in range(first, last + 1)}

    def restore(self, saved: dict) -> None:
        for pg, data in saved.items():
            if data is None:
                self.pages.pop(pg, None)
            else:
                self.pages[pg] = data

    @property
    def nbytes(self) -> int:
        """Host bytes held for media data."""
        return len(self.pages) * PAGE

    def snapshot(self) -> dict:
        return {"size": self.size, "pages": tuple(sorted(self.pages.items())),
                "labels": tuple(tuple(sorted(lb.items())) for lb in self.labels)}

    def clone(self) -> "Media":
        m = Media(self.size)
        m.pages = dict(self.pages)
        m.labels = [dict(lb) for lb in self.labels]     # a label is flat: ints, strs, None
        m.read_only = self.read_only
        return m
