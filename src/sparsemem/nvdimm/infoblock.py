"""The libnvdimm pfn/dax info-block (``struct nd_pfn_sb``) as bytes on the media: layout,
minor versions, :func:`fletcher64` / :func:`sb_checksum`.  Spec: docs/spec/memremap-nvdimm.md
§1, §2, §4 and docs/spec/api.md "nvdimm on-media format"; the byte layout and the round-trip
rules: docs/nvdimm.md "The on-media info-block".
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import struct
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from .. import constants as C
from .._common import U64

__all__ = [
    "INFO_BLOCK_OFFSET",
    "INFO_BLOCK_SIZE",
    "INFO_BLOCK_RESERVE",
    "CHECKSUM_OFFSET",
    "PFN_SIG",
    "DAX_SIG",
    "SIGNATURES",
    "PFN_MODE_NONE",
    "PFN_MODE_RAM",
    "PFN_MODE_PMEM",
    "PAGE_SIZE",
    "MAX_STRUCT_PAGE_SIZE",
    "FIELD_OFFSETS",
    "fletcher64",
    "sb_checksum",
    "InfoBlock",
    "apply_compat_defaults",
    "uuid_bytes",
]

# --- constants (§0.1, §1.1, §1.2, §2) -----------------------------------------------------

#: Namespace byte offset of the info-block (§1.1).
INFO_BLOCK_OFFSET = 4096
#: Size of the info-block in bytes (§1.1, §1.2).
INFO_BLOCK_SIZE = 4096
#: Metadata bytes at the start of a namespace: [0, 4K) untouched, [4K, 8K) the block (§0.1).
INFO_BLOCK_RESERVE = 8192
#: Offset of the 8-byte checksum field (§1.2).
CHECKSUM_OFFSET = 4088

#: fsdax ("pfn" device) signature, compared over all 16 bytes (§1.2).
PFN_SIG = b"NVDIMM_PFN_INFO\0"
#: devdax signature (§1.2).
DAX_SIG = b"NVDIMM_DAX_INFO\0"
#: The two signatures this module accepts when verifying.
SIGNATURES = (PFN_SIG, DAX_SIG)

#: ``enum nd_pfn_mode`` (§1.2, §2).
PFN_MODE_NONE = 0
PFN_MODE_RAM = 1
PFN_MODE_PMEM = 2

#: x86_64 base page size (§0.1); default for the minor < 4 compat ``page_size``.
PAGE_SIZE = C.PAGE_SIZE
#: Memmap slot size assumed by minor < 4 blocks (§0.1, §1.4).
MAX_STRUCT_PAGE_SIZE = 64

# --- layout (§1.2) ------------------------------------------------------------------------

# Offsets 0..87: fields present in every minor version (start_pad/end_trunc/align are simply
# meaningless below minor 1/2, but they occupy the same bytes).
_HEAD = struct.Struct("<16s16s16sIHHQQIIII")
# Offsets 88..93: minor >= 4 only.
_V4 = struct.Struct("<IH")
_CSUM = struct.Struct("<Q")

_HEAD_END = _HEAD.size  # 88
_V4_END = _HEAD_END + _V4.size  # 94
_PAD_LEN_V4 = CHECKSUM_OFFSET - _V4_END  # 3994
_PAD_LEN_OLD = CHECKSUM_OFFSET - _HEAD_END  # 4000

assert _HEAD_END == 88 and _V4_END == 94 and _PAD_LEN_V4 == 3994 and _PAD_LEN_OLD == 4000

#: Field name -> (byte offset, size) as in §1.2 (``padding`` as laid out for minor >= 4).
FIELD_OFFSETS = {
    "signature": (0, 16),
    "uuid": (16, 16),
    "parent_uuid": (32, 16),
    "flags": (48, 4),
    "version_major": (52, 2),
    "version_minor": (54, 2),
    "dataoff": (56, 8),
    "npfns": (64, 8),
    "mode": (72, 4),
    "start_pad": (76, 4),
    "end_trunc": (80, 4),
    "align": (84, 4),
    "page_size": (88, 4),
    "page_struct_size": (92, 2),
    "padding": (94, _PAD_LEN_V4),
    "checksum": (CHECKSUM_OFFSET, 8),
}

_INT_FIELDS = {
    "flags": 32,
    "version_major": 16,
    "version_minor": 16,
    "dataoff": 64,
    "npfns": 64,
    "mode": 32,
    "start_pad": 32,
    "end_trunc": 32,
    "align": 32,
    "page_size": 32,
    "page_struct_size": 16,
    "checksum": 64,
}

#: ``(name, bits, 1 << bits)`` of :data:`_INT_FIELDS`, for the checks of ``InfoBlock.__post_init__``
_INT_LIMITS = tuple((name, bits, 1 << bits) for name, bits in _INT_FIELDS.items())

_M32 = 0xFFFFFFFF

UuidLike = Union[bytes, bytearray, memoryview, str, _uuid.UUID]


# --- checksum (§1.3) ----------------------------------------------------------------------


def fletcher64(data: Union[bytes, bytearray], le: bool = True) -> int:
    """``nd_fletcher64`` (§1.3): Fletcher-style sum over ``len(data) // 4`` 32-bit words.

    Words are read little-endian when ``le`` (big-endian otherwise).  ``lo`` is a 32-bit and
    ``hi`` a 64-bit accumulator, both starting at 0; per word ``lo = (lo + w) mod 2**32`` then
    ``hi = (hi + lo) mod 2**64``.  The result is ``((hi mod 2**32) << 32) | lo``.

    Vectorised with numpy: ``lo`` after word *i* is the prefix sum ``P_i`` mod 2**32, so
    ``hi`` mod 2**32 is the sum of the prefixes mod 2**32, i.e. the sum of ``w_j * (n - j)``
    over the ``n`` words: one dot product with the weights ``n, n-1, ..., 1``.  uint64
    arithmetic wraps mod 2**64, a multiple of 2**32, so the low 32 bits of the wrapped sums
    are exact for any length.

    Raises ``ValueError`` if ``len(data)`` is not a multiple of 4.
    """
    buf = memoryview(data).cast("B")
    n = buf.nbytes
    if n % 4:
        raise ValueError(f"fletcher64: length {n} is not a multiple of 4")
    if n == 0:
        return 0
    return _fletcher_words(buf.tobytes(), n // 4, le)


#: a block whose non-zero bytes all lie in its first this many bytes (64 words) is summed word by
#: word (an info-block written by ``nd_pfn_init`` has 24 such words); any other with numpy
_SPARSE_BYTES = 256
_ZEROS = bytes(INFO_BLOCK_SIZE)


def _fletcher_words(raw: bytes, nwords: int, le: bool) -> int:
    """:func:`fletcher64` of ``nwords`` 32-bit words of which the first ``len(raw) // 4`` are
    ``raw`` (``len(raw)`` a multiple of 4) and the rest zero.

    A zero word adds nothing to ``lo``, nor to ``hi`` (``w_j * (n - j)``).  So when every byte
    after the first :data:`_SPARSE_BYTES` is zero, only the words up to the last non-zero byte
    are summed, word by word in Python (exact integers reduced mod 2**32 at the end: what the
    wrapping sums give); otherwise every word, with the numpy dot product of :func:`fletcher64`.
    """
    n = len(raw)
    tail = n - _SPARSE_BYTES
    if tail <= 0 or raw[_SPARSE_BYTES:] == (_ZEROS[:tail] if tail <= len(_ZEROS) else bytes(tail)):
        k = -(-len(raw[:_SPARSE_BYTES].rstrip(b"\0")) // 4)    # the words up to the last non-zero byte
        if k == 0:
            return 0
        words = _word_struct(k, le).unpack_from(raw)
        lo = sum(words) & _M32
        hi = sum(map(operator.mul, words, range(nwords, nwords - k, -1))) & _M32
        return (hi << 32) | lo
    w = np.frombuffer(raw, dtype="<u4" if le else ">u4").astype(np.uint64)
    lo = int(w.sum(dtype=np.uint64)) & _M32
    hi = int(w @ _fletcher_weights(nwords)[:n // 4]) & _M32
    return (hi << 32) | lo


@functools.lru_cache(maxsize=64)
def _word_struct(k: int, le: bool) -> struct.Struct:
    """``k`` unsigned 32-bit words, little- or big-endian."""
    return struct.Struct(("<" if le else ">") + f"{k}I")


@functools.lru_cache(maxsize=8)
def _fletcher_weights(n: int) -> np.ndarray:
    """``n, n-1, ..., 1`` as uint64 (read-only): how often each word is added into ``hi``."""
    w = np.arange(n, 0, -1, dtype=np.uint64)
    w.flags.writeable = False
    return w


def sb_checksum(data: bytes) -> int:
    """``nd_sb_checksum`` (§1.3): :func:`fletcher64` (LE) of a 4096-byte block whose 8 bytes
    at offset 4088 are taken as zero.  ``data`` itself is not modified.

    Raises ``ValueError`` unless ``len(data) == 4096``.
    """
    buf = memoryview(data).cast("B")
    if buf.nbytes != INFO_BLOCK_SIZE:
        raise ValueError(
            f"info-block must be {INFO_BLOCK_SIZE} bytes, got {buf.nbytes}"
        )
    # The block's words with the checksum field zeroed (the kernel saves, zeroes and restores
    # it): the words before it, and two zero words.
    return _fletcher_words(buf[:CHECKSUM_OFFSET].tobytes(), INFO_BLOCK_SIZE // 4, le=True)


# --- helpers ------------------------------------------------------------------------------


def uuid_bytes(value: UuidLike) -> bytes:
    """The 16 on-media bytes of a uuid (§1.2): textual hex pairs left to right.

    Accepts 16 raw bytes, a :class:`uuid.UUID` or its string form.
    """
    if type(value) is bytes and len(value) == 16:
        return value
    if isinstance(value, _uuid.UUID):
        return value.bytes
    if isinstance(value, str):
        return _uuid.UUID(value).bytes
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) != 16:
            raise ValueError(f"uuid must be 16 bytes, got {len(raw)}")
        return raw
    raise TypeError(f"uuid must be bytes, str or uuid.UUID, not {type(value).__name__}")


def _pad_len(minor: int) -> int:
    return _PAD_LEN_V4 if minor >= 4 else _PAD_LEN_OLD


def _normalise_padding(padding, minor: int) -> bytes:
    """Padding bytes for the layout of ``minor`` (§1.2): 3994 bytes if minor >= 4, else 4000.

    All-zero padding of any length (including empty) is resized; non-zero padding of the
    other layout's length cannot be reinterpreted and raises ``ValueError``.
    """
    raw = bytes(padding) if padding is not None else b""
    want = _pad_len(minor)
    if len(raw) == want:
        return raw
    if raw.count(0) == len(raw):
        return bytes(want)
    raise ValueError(
        f"padding is {len(raw)} bytes but version minor {minor} lays out {want} "
        f"(offset {CHECKSUM_OFFSET - want}); non-zero padding cannot be resized"
    )


# --- the block ----------------------------------------------------------------------------


@dataclass
class InfoBlock:
    """One ``struct nd_pfn_sb`` (§1.2), field for field.

    ``uuid``/``parent_uuid`` are normalised to 16 raw bytes (a :class:`uuid.UUID` or string
    is accepted).  ``padding`` holds the raw padding bytes of the recorded layout (see the
    module docstring); ``b""`` or ``None`` mean zeros.  ``checksum`` is the stored value;
    :meth:`pack` recomputes it.
    """

    signature: bytes = PFN_SIG
    uuid: bytes = bytes(16)
    parent_uuid: bytes = bytes(16)
    flags: int = 0
    version_major: int = 1
    version_minor: int = 4
    dataoff: int = 0
    npfns: int = 0
    mode: int = PFN_MODE_PMEM
    start_pad: int = 0
    end_trunc: int = 0
    align: int = 0
    page_size: int = 0
    page_struct_size: int = 0
    padding: bytes = field(default=b"", repr=False)
    checksum: int = 0

    def __post_init__(self) -> None:
        fields = self.__dict__
        sig = fields["signature"]
        if type(sig) is not bytes:
            sig = bytes(sig)
        if len(sig) != 16:
            raise ValueError(f"signature must be 16 bytes, got {len(sig)}")
        fields["signature"] = sig
        fields["uuid"] = uuid_bytes(fields["uuid"])
        fields["parent_uuid"] = uuid_bytes(fields["parent_uuid"])
        for name, bits, limit in _INT_LIMITS:
            value = fields[name]
            if type(value) is not int:      # a plain int is kept as it is
                if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                    raise TypeError(f"{name} must be an int, not {type(value).__name__}")
                value = fields[name] = int(value)
            if not 0 <= value < limit:
                raise ValueError(f"{name}={value:#x} does not fit in u{bits}")
        padding = fields["padding"]
        if type(padding) is not bytes or len(padding) != _pad_len(fields["version_minor"]):
            fields["padding"] = _normalise_padding(padding, fields["version_minor"])

    # -- construction --------------------------------------------------------------------

    @classmethod
    def new(
        cls,
        sig: bytes = PFN_SIG,
        uuid: UuidLike = bytes(16),
        parent_uuid: UuidLike = bytes(16),
        *,
        dataoff: int = 0,
        npfns: int = 0,
        mode: int = PFN_MODE_PMEM,
        start_pad: int = 0,
        end_trunc: int = 0,
        align: int = 0,
        version_major: int = 1,
        version_minor: int = 4,
        flags: int = 0,
        page_size: Optional[int] = None,
        page_struct_size: Optional[int] = None,
    ) -> "InfoBlock":
        """A freshly written block as ``nd_pfn_init`` fills it (§3): zero flags and padding,
        major 1, and (minor >= 4) ``page_size`` = 4096, ``page_struct_size`` = 64 unless given.
        Below minor 4 those two stay 0 (they are not on the media).  The ``checksum``
        attribute is computed.
        """
        if version_minor >= 4:
            page_size = PAGE_SIZE if page_size is None else page_size
            page_struct_size = MAX_STRUCT_PAGE_SIZE if page_struct_size is None else page_struct_size
        else:
            page_size = 0 if page_size is None else page_size
            page_struct_size = 0 if page_struct_size is None else page_struct_size
        sb = cls(
            signature=sig,
            uuid=uuid,                # type: ignore[arg-type]  # __post_init__ makes any UuidLike bytes
            parent_uuid=parent_uuid,  # type: ignore[arg-type]  # (uuid_bytes), in the dataclass's order
            flags=flags,
            version_major=version_major,
            version_minor=version_minor,
            dataoff=dataoff,
            npfns=npfns,
            mode=mode,
            start_pad=start_pad,
            end_trunc=end_trunc,
            align=align,
            page_size=page_size,
            page_struct_size=page_struct_size,
        )
        # just validated: the image and its sum without checking the fields again
        sb.checksum = _fletcher_words(bytes(sb._raw(0, check=False)), INFO_BLOCK_SIZE // 4, le=True)
        return sb

    def _packed(self) -> bytes:
        """:meth:`pack` of a block that was just built and validated (``new`` or
        ``unpack``) and not changed since: the same bytes, its ``checksum`` attribute already
        holding their sum."""
        buf = self._raw(self.checksum, check=False)
        return bytes(buf)

    # -- accessors -----------------------------------------------------------------------

    @property
    def uuid_obj(self) -> _uuid.UUID:
        """``uuid`` as a :class:`uuid.UUID`."""
        return _uuid.UUID(bytes=self.uuid)

    @property
    def parent_uuid_obj(self) -> _uuid.UUID:
        """``parent_uuid`` as a :class:`uuid.UUID`."""
        return _uuid.UUID(bytes=self.parent_uuid)

    # -- serialisation -------------------------------------------------------------------

    def _raw(self, checksum: int, check: bool = True) -> bytearray:
        """The 4096 media bytes with ``checksum`` stored at 4088 (§1.2); ``check=False``
        only for a block validated since its last change."""
        # Re-validate: attributes may have been assigned since construction.
        if check:
            self.__post_init__()
        buf = bytearray(INFO_BLOCK_SIZE)
        _HEAD.pack_into(
            buf,
            0,
            self.signature,
            self.uuid,
            self.parent_uuid,
            self.flags,
            self.version_major,
            self.version_minor,
            self.dataoff,
            self.npfns,
            self.mode,
            self.start_pad,
            self.end_trunc,
            self.align,
        )
        pad_start = CHECKSUM_OFFSET - len(self.padding)
        if self.version_minor >= 4:
            _V4.pack_into(buf, _HEAD_END, self.page_size, self.page_struct_size)
        buf[pad_start:CHECKSUM_OFFSET] = self.padding
        _CSUM.pack_into(buf, CHECKSUM_OFFSET, checksum & U64)
        return buf

    def compute_checksum(self) -> int:
        """``nd_sb_checksum`` of this block's media image (§1.3)."""
        return fletcher64(self._raw(0), le=True)

    def pack(self, checksum: Optional[int] = None) -> bytes:
        """The exact 4096 on-media bytes (§1.2), checksum computed per §1.3 and stored at 4088.

        Like the kernel writer (fill with checksum 0, sum, store), the computed value is also
        stored in ``self.checksum``.  Passing ``checksum`` writes that value verbatim instead
        (to model a corrupt block); ``self.checksum`` then takes that value.
        """
        buf = self._raw(0)
        value = fletcher64(buf, le=True) if checksum is None else int(checksum) & U64
        _CSUM.pack_into(buf, CHECKSUM_OFFSET, value)
        self.checksum = value
        return bytes(buf)

    @classmethod
    def unpack(cls, data: bytes, verify: bool = True) -> "InfoBlock":
        """Parse 4096 media bytes (§1.2).

        Raises ``ValueError`` if ``len(data) != 4096``; with ``verify`` (default) also, in the
        order of ``nd_pfn_validate`` (§4 #4, #5), if the signature is neither :data:`PFN_SIG`
        nor :data:`DAX_SIG`, or if the stored checksum differs from :func:`sb_checksum`.
        ``verify=False`` reads the raw fields without either check.

        For ``version_minor < 4`` bytes 88..4087 become ``padding`` and
        ``page_size``/``page_struct_size`` are 0 (apply :func:`apply_compat_defaults` for the
        values the kernel assumes).
        """
        buf = memoryview(data).cast("B")
        if buf.nbytes != INFO_BLOCK_SIZE:
            raise ValueError(
                f"info-block must be {INFO_BLOCK_SIZE} bytes, got {buf.nbytes}"
            )
        raw = bytes(buf)
        (
            signature,
            uuid,
            parent_uuid,
            flags,
            version_major,
            version_minor,
            dataoff,
            npfns,
            mode,
            start_pad,
            end_trunc,
            align,
        ) = _HEAD.unpack_from(raw, 0)
        (stored,) = _CSUM.unpack_from(raw, CHECKSUM_OFFSET)
        if verify:
            if signature not in SIGNATURES:
                raise ValueError(
                    f"bad signature: {signature!r} is neither {PFN_SIG!r} nor {DAX_SIG!r}"
                )
            computed = sb_checksum(raw)
            if computed != stored:
                raise ValueError(
                    f"checksum mismatch: stored {stored:#018x}, computed {computed:#018x}"
                )
        if version_minor >= 4:
            page_size, page_struct_size = _V4.unpack_from(raw, _HEAD_END)
            padding = raw[_V4_END:CHECKSUM_OFFSET]
        else:
            page_size = page_struct_size = 0
            padding = raw[_HEAD_END:CHECKSUM_OFFSET]
        # every value fits its field (the struct formats are the field widths, the padding is
        # the length the minor lays out): what __post_init__ would accept unchanged
        sb = object.__new__(cls)
        sb.__dict__.update(
            signature=signature,
            uuid=uuid,
            parent_uuid=parent_uuid,
            flags=flags,
            version_major=version_major,
            version_minor=version_minor,
            dataoff=dataoff,
            npfns=npfns,
            mode=mode,
            start_pad=start_pad,
            end_trunc=end_trunc,
            align=align,
            page_size=page_size,
            page_struct_size=page_struct_size,
            padding=padding,
            checksum=stored,
        )
        return sb

    def copy(self, **changes) -> "InfoBlock":
        """A copy with ``changes`` applied, validated as a new block is (what
        ``dataclasses.replace`` does, without its generic keyword plumbing)."""
        if not changes.keys() <= _FIELD_NAMES:
            return dataclasses.replace(self, **changes)     # its TypeError names the field
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new.__dict__.update(changes)
        new.__post_init__()
        return new


#: the fields :meth:`InfoBlock.copy` may change
_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(InfoBlock))


def _copy_valid(sb: InfoBlock, **changes) -> InfoBlock:
    """:meth:`InfoBlock.copy` of a valid block with ``changes`` that are valid values of their
    fields (none of them ``version_minor`` or ``padding``): the same block, without the
    checks."""
    new = object.__new__(type(sb))
    fields = new.__dict__
    fields.update(sb.__dict__)
    fields.update(changes)
    return new


def _compat_defaults_valid(sb: InfoBlock) -> InfoBlock:
    """:func:`apply_compat_defaults` (with the default ``page_size``) of a valid block, e.g.
    one :meth:`InfoBlock.unpack` read: the defaults are valid values, so the copy needs no
    checks."""
    minor = sb.version_minor
    if minor >= 4:
        return _copy_valid(sb)
    changes: dict = {"page_struct_size": MAX_STRUCT_PAGE_SIZE, "page_size": PAGE_SIZE}
    if minor < 1:
        changes["start_pad"] = 0
        changes["end_trunc"] = 0
    if minor < 2:
        changes["align"] = 0
    return _copy_valid(sb, **changes)


def apply_compat_defaults(sb: InfoBlock, page_size: int = PAGE_SIZE) -> InfoBlock:
    """A copy of ``sb`` with the §1.4 defaults that ``nd_pfn_validate`` (§4 #7) applies to
    its in-memory copy of an older block:

    * minor < 1: ``start_pad = end_trunc = 0``
    * minor < 2: ``align = 0`` (the caller then substitutes 2^floor(log2(dataoff)), §4 #9)
    * minor < 4: ``page_struct_size = 64``, ``page_size = page_size`` (the running kernel's
      PAGE_SIZE)

    ``version_minor`` and the padding bytes are left as read, so packing the result writes
    the same media bytes as packing ``sb`` whenever minor >= 2.
    """
    changes: dict = {}
    minor = sb.version_minor
    if minor < 1:
        changes["start_pad"] = 0
        changes["end_trunc"] = 0
    if minor < 2:
        changes["align"] = 0
    if minor < 4:
        changes["page_struct_size"] = MAX_STRUCT_PAGE_SIZE
        changes["page_size"] = page_size
    return sb.copy(**changes)
