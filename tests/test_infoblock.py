"""Tests for sparsemem.nvdimm.infoblock (spec: memremap-nvdimm.md §1, §2, §4; api.md
"nvdimm on-media format")."""

from __future__ import annotations

import dataclasses
import random
import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemem.nvdimm import infoblock as ib
from sparsemem.nvdimm.infoblock import (
    DAX_SIG,
    INFO_BLOCK_OFFSET,
    INFO_BLOCK_RESERVE,
    INFO_BLOCK_SIZE,
    PFN_MODE_NONE,
    PFN_MODE_PMEM,
    PFN_MODE_RAM,
    PFN_SIG,
    InfoBlock,
    apply_compat_defaults,
    fletcher64,
    sb_checksum,
)

U = "11111111-2222-3333-4444-555555555555"
P = "8a3c1a92-1f0e-4d7e-9a8b-3c2d1e0f4a5b"


def ref_fletcher64(data: bytes, le: bool = True) -> int:
    """Slow word-by-word reference of the §1.3 rule."""
    lo = 0
    hi = 0
    for i in range(0, len(data), 4):
        w = int.from_bytes(data[i : i + 4], "little" if le else "big")
        lo = (lo + w) & 0xFFFFFFFF
        hi = (hi + lo) & 0xFFFFFFFFFFFFFFFF
    return ((hi & 0xFFFFFFFF) << 32) | lo


def v53_block(minor: int = 3) -> InfoBlock:
    """§3.4 "After (v5.3)" worked example, as used by the §1.3 test vectors."""
    return InfoBlock.new(
        PFN_SIG, U, P, version_minor=minor, dataoff=0x1200000, npfns=257536,
        mode=PFN_MODE_PMEM, start_pad=0, end_trunc=0, align=0x200000,
    )


def scenario_a_block() -> InfoBlock:
    """§3.4 "Before, scenario A" block (version 1.2), §1.3 third vector."""
    return InfoBlock.new(
        PFN_SIG, U, P, version_minor=2, dataoff=0x1200000, npfns=241152,
        mode=PFN_MODE_PMEM, start_pad=0x4000000, end_trunc=0, align=0x200000,
    )


# --- constants (§0.1, §1.1, §1.2, §2) -----------------------------------------------------


def test_constants():
    """§0.1 / §1.1: offset 4096, size 4096, reserve 8192; §1.2 signatures; §2 modes."""
    assert INFO_BLOCK_OFFSET == 4096 and INFO_BLOCK_SIZE == 4096 and INFO_BLOCK_RESERVE == 8192
    assert PFN_SIG == b"NVDIMM_PFN_INFO\0" and len(PFN_SIG) == 16
    assert DAX_SIG == b"NVDIMM_DAX_INFO\0" and len(DAX_SIG) == 16
    assert (PFN_MODE_NONE, PFN_MODE_RAM, PFN_MODE_PMEM) == (0, 1, 2)


# --- fletcher64 / checksum vectors (§1.3) -------------------------------------------------


def test_fletcher_words_1234():
    """§1.3 vector: LE words [1,2,3,4] -> 0x000000140000000A."""
    assert fletcher64(struct.pack("<4I", 1, 2, 3, 4)) == 0x000000140000000A
    assert ref_fletcher64(struct.pack("<4I", 1, 2, 3, 4)) == 0x000000140000000A


def test_fletcher_zero_block():
    """§1.3 vector: 4096 zero bytes -> 0."""
    assert fletcher64(bytes(4096)) == 0
    assert sb_checksum(bytes(4096)) == 0
    assert fletcher64(b"") == 0


def test_fletcher_big_endian_words():
    """§1.3 step 1: with le false the words are read big-endian."""
    data = struct.pack(">4I", 1, 2, 3, 4)
    assert fletcher64(data, le=False) == 0x000000140000000A
    assert fletcher64(data, le=True) == ref_fletcher64(data, le=True)


def test_fletcher_lo_wraps_mod_2_32():
    """§1.3 step 3: lo is a 32-bit accumulator (wraps), hi keeps only its low 32 bits."""
    data = struct.pack("<3I", 0xFFFFFFFF, 0xFFFFFFFF, 5)
    # lo: 0xFFFFFFFF, 0xFFFFFFFE, 3 ; hi = 0x1FFFFFFFD + 3 = 0x200000000 -> low 32 bits 0
    assert fletcher64(data) == ref_fletcher64(data) == 3


def test_fletcher_length_must_be_multiple_of_4():
    """§1.3 step 1: the buffer is len/4 words; this API refuses a ragged length."""
    with pytest.raises(ValueError, match="multiple of 4"):
        fletcher64(b"abc")


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2048).map(lambda b: b[: len(b) - len(b) % 4]), st.booleans())
def test_fletcher_matches_reference(data, le):
    """§1.3: the vectorised implementation equals the word-by-word rule."""
    assert fletcher64(data, le) == ref_fletcher64(data, le)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=2**32 - 1), st.integers(min_value=1, max_value=40000))
def test_fletcher_matches_reference_large_words(seed, nwords):
    """§1.3: long buffers of large words (many lo wraps) still match the reference."""
    rnd = random.Random(seed)
    data = b"".join(rnd.choice([0xFFFFFFFF, 0xFFFFFFF0, rnd.getrandbits(32)]).to_bytes(4, "little")
                    for _ in range(nwords))
    assert fletcher64(data) == ref_fletcher64(data)


def test_v53_worked_example_checksum():
    """§1.3 vector: the v5.3 worked-example block (1.3) -> 0x94E3837E6C75D85F."""
    sb = v53_block(3)
    raw = sb.pack()
    assert sb.checksum == 0x94E3837E6C75D85F
    assert struct.unpack_from("<Q", raw, 4088)[0] == 0x94E3837E6C75D85F
    assert sb_checksum(raw) == 0x94E3837E6C75D85F


def test_v54_worked_example_checksum():
    """§1.3 vector: the same block as 1.4 with page_size 4096, page_struct_size 64."""
    sb = v53_block(4)
    assert (sb.page_size, sb.page_struct_size) == (4096, 64)
    raw = sb.pack()
    assert sb_checksum(raw) == 0x99161DBE6C76E89F
    assert InfoBlock.unpack(raw).checksum == 0x99161DBE6C76E89F


def test_scenario_a_checksum():
    """§1.3 vector: pre-series scenario-A block (1.2, start_pad 64 MiB) -> 0x43F4837E7074985F."""
    raw = scenario_a_block().pack()
    assert raw[88:4088] == bytes(4000)
    assert sb_checksum(raw) == 0x43F4837E7074985F


def test_v53_bytes_48_to_87():
    """§1.3 example dump of bytes 48..87 of the v5.3 block."""
    dump = ("00000000 0100 0300 0000200100000000 00ee030000000000 "
            "02000000 00000000 00000000 00002000")
    assert v53_block(3).pack()[48:88] == bytes.fromhex(dump.replace(" ", ""))


def test_v53_header_bytes():
    """§1.2: signature then uuids in textual byte order at 0, 16, 32."""
    raw = v53_block(3).pack()
    assert raw[0:16] == PFN_SIG
    assert raw[16:32] == bytes.fromhex("11111111222233334444555555555555")
    assert raw[32:48] == bytes.fromhex("8a3c1a921f0e4d7e9a8b3c2d1e0f4a5b")


def test_sb_checksum_ignores_stored_field():
    """§1.3 nd_sb_checksum: the field at 4088 counts as zero; the input is not modified."""
    raw = bytearray(v53_block(3).pack())
    expected = sb_checksum(raw)
    raw[4088:4096] = b"\xff" * 8
    before = bytes(raw)
    assert sb_checksum(raw) == expected
    assert bytes(raw) == before
    with pytest.raises(ValueError, match="4096"):
        sb_checksum(bytes(4092))


# --- field offsets (§1.2) -----------------------------------------------------------------


@pytest.mark.parametrize(
    "name,offset,fmt,value",
    [
        ("flags", 48, "<I", 0xA1B2C3D4),
        ("version_major", 52, "<H", 0xBEEF),
        ("version_minor", 54, "<H", 4),
        ("dataoff", 56, "<Q", 0x0102030405060708),
        ("npfns", 64, "<Q", 0x1112131415161718),
        ("mode", 72, "<I", 0x21222324),
        ("start_pad", 76, "<I", 0x31323334),
        ("end_trunc", 80, "<I", 0x41424344),
        ("align", 84, "<I", 0x51525354),
        ("page_size", 88, "<I", 0x61626364),
        ("page_struct_size", 92, "<H", 0x7172),
    ],
)
def test_field_offsets(name, offset, fmt, value):
    """§1.2: each integer field lands at its documented offset, little-endian."""
    sb = InfoBlock.new(PFN_SIG, U, P, version_minor=4)
    setattr(sb, name, value)
    raw = sb.pack()
    assert struct.unpack_from(fmt, raw, offset)[0] == value
    assert ib.FIELD_OFFSETS[name] == (offset, struct.calcsize(fmt))
    # Nothing else in the header moved: the other fields decode unchanged.
    back = InfoBlock.unpack(raw)
    assert getattr(back, name) == value


def test_uuid_and_signature_offsets():
    """§1.2: signature at 0, uuid at 16, parent_uuid at 32 (16 bytes each)."""
    u = bytes(range(0x10, 0x20))
    p = bytes(range(0x20, 0x30))
    raw = InfoBlock.new(DAX_SIG, u, p).pack()
    assert raw[0:16] == DAX_SIG and raw[16:32] == u and raw[32:48] == p


def test_padding_and_checksum_offsets():
    """§1.2: padding at 94..4087 (minor >= 4; 88..4087 before), checksum at 4088."""
    pad4 = bytes([0x5A]) * 3994
    raw = InfoBlock(version_minor=4, padding=pad4).pack()
    assert raw[94:4088] == pad4 and len(raw) == 4096
    pad3 = bytes(range(256)) * 15 + bytes(160)
    assert len(pad3) == 4000
    sb = InfoBlock(version_minor=3, padding=pad3)
    raw = sb.pack()
    assert raw[88:4088] == pad3
    assert struct.unpack_from("<Q", raw, 4088)[0] == sb.checksum == sb_checksum(raw)


def test_uuid_inputs_equivalent():
    """§1.2: uuid bytes are the textual hex pairs left to right (UUID, str or bytes)."""
    a = InfoBlock.new(PFN_SIG, uuid.UUID(U), P)
    b = InfoBlock.new(PFN_SIG, U, uuid.UUID(P).bytes)
    assert a == b
    assert a.uuid == uuid.UUID(U).bytes and a.uuid_obj == uuid.UUID(U)
    assert a.parent_uuid_obj == uuid.UUID(P)
    with pytest.raises(ValueError):
        InfoBlock.new(PFN_SIG, b"short", P)


def test_field_range_checked():
    """§1.2: fields are fixed-width unsigned; out-of-range values are refused."""
    with pytest.raises(ValueError, match="u32"):
        InfoBlock(align=1 << 32)
    with pytest.raises(ValueError, match="u16"):
        InfoBlock(page_struct_size=-1)
    sb = InfoBlock()
    sb.npfns = 1 << 64
    with pytest.raises(ValueError, match="npfns"):
        sb.pack()


# --- minor versions (§1.2, §1.4) ----------------------------------------------------------


@pytest.mark.parametrize("minor", [0, 1, 2, 3, 4])
def test_round_trip_every_minor(minor):
    """§1.2/§1.4: unpack(pack(x)) == x and pack(unpack(b)) == b for minors 0..4."""
    sb = InfoBlock.new(DAX_SIG, U, P, version_minor=minor, dataoff=0x400000, npfns=1234,
                       mode=PFN_MODE_RAM, start_pad=0x1000, end_trunc=0x2000, align=0x200000)
    raw = sb.pack()
    assert len(raw) == 4096
    back = InfoBlock.unpack(raw)
    assert back == sb
    assert back.pack() == raw
    if minor < 4:
        assert raw[88:94] == bytes(6)
        assert (back.page_size, back.page_struct_size) == (0, 0)
        assert len(back.padding) == 4000
    else:
        assert len(back.padding) == 3994


def test_minor_below_4_does_not_write_page_fields():
    """§1.2: before minor 4 bytes 88..93 are padding; page_size/page_struct_size stay off media."""
    sb = InfoBlock.new(PFN_SIG, U, P, version_minor=3, dataoff=0x1200000, npfns=257536,
                       align=0x200000, page_size=4096, page_struct_size=64)
    assert sb.pack() == v53_block(3).pack()


def test_minor_below_4_keeps_bytes_88_93_as_padding():
    """§1.2: on a minor-3 block non-zero bytes 88..93 survive a round trip as padding."""
    raw = bytearray(v53_block(3).pack())
    raw[88:94] = bytes([1, 2, 3, 4, 5, 6])
    raw[100] = 0x77
    raw[4088:4096] = struct.pack("<Q", sb_checksum(raw))
    sb = InfoBlock.unpack(bytes(raw))
    assert sb.padding[:6] == bytes([1, 2, 3, 4, 5, 6]) and sb.padding[12] == 0x77
    assert sb.page_size == 0 and sb.page_struct_size == 0
    assert sb.pack() == bytes(raw)


def test_padding_relayout_on_minor_change():
    """§1.2: zero padding follows the layout of the minor; non-zero cannot be re-laid out."""
    sb3 = v53_block(3)
    sb4 = dataclasses.replace(sb3, version_minor=4, page_size=4096, page_struct_size=64)
    assert len(sb4.padding) == 3994
    assert sb4.pack() == v53_block(4).pack()
    with pytest.raises(ValueError, match="padding"):
        InfoBlock(version_minor=4, padding=b"\x01" * 4000)


@settings(max_examples=40, deadline=None)
@given(
    sig=st.sampled_from([PFN_SIG, DAX_SIG]),
    u=st.binary(min_size=16, max_size=16),
    p=st.binary(min_size=16, max_size=16),
    minor=st.integers(0, 6),
    major=st.integers(0, 2**16 - 1),
    flags=st.integers(0, 2**32 - 1),
    dataoff=st.integers(0, 2**64 - 1),
    npfns=st.integers(0, 2**64 - 1),
    mode=st.integers(0, 2**32 - 1),
    sp=st.integers(0, 2**32 - 1),
    et=st.integers(0, 2**32 - 1),
    align=st.integers(0, 2**32 - 1),
    ps=st.integers(0, 2**32 - 1),
    pss=st.integers(0, 2**16 - 1),
    pad_seed=st.integers(0, 2**32 - 1),
)
def test_round_trip_random(sig, u, p, minor, major, flags, dataoff, npfns, mode, sp, et,
                           align, ps, pss, pad_seed):
    """§1.2: arbitrary field values and padding round-trip exactly; checksum per §1.3."""
    rnd = random.Random(pad_seed)
    plen = 3994 if minor >= 4 else 4000
    padding = bytes(rnd.getrandbits(8) for _ in range(plen))
    if minor < 4:
        ps = pss = 0
    sb = InfoBlock(sig, u, p, flags, major, minor, dataoff, npfns, mode, sp, et, align,
                   ps, pss, padding)
    raw = sb.pack()
    assert sb.checksum == sb_checksum(raw) == ref_fletcher64(raw[:4088] + bytes(8))
    back = InfoBlock.unpack(raw)
    assert back == sb
    assert back.pack() == raw


# --- compat defaults (§1.4, §4 #7) --------------------------------------------------------


def test_compat_defaults_minor0():
    """§1.4: minor < 1 -> start_pad = end_trunc = 0; < 2 -> align 0; < 4 -> 64 / PAGE_SIZE."""
    sb = InfoBlock(version_minor=0, start_pad=5, end_trunc=6, align=7, dataoff=0x200000)
    c = apply_compat_defaults(sb)
    assert (c.start_pad, c.end_trunc, c.align) == (0, 0, 0)
    assert (c.page_size, c.page_struct_size) == (4096, 64)
    assert c.dataoff == 0x200000 and c.version_minor == 0
    assert (sb.start_pad, sb.end_trunc, sb.align, sb.page_size) == (5, 6, 7, 0)  # a copy


def test_compat_defaults_minor1():
    """§1.4: minor 1 keeps start_pad/end_trunc, clears align."""
    c = apply_compat_defaults(InfoBlock(version_minor=1, start_pad=5, end_trunc=6, align=7))
    assert (c.start_pad, c.end_trunc, c.align) == (5, 6, 0)
    assert (c.page_size, c.page_struct_size) == (4096, 64)


@pytest.mark.parametrize("minor", [2, 3])
def test_compat_defaults_minor2_3(minor):
    """§1.4: minors 2 and 3 keep align; page fields defaulted; media bytes unchanged."""
    sb = InfoBlock.new(PFN_SIG, U, P, version_minor=minor, start_pad=5, end_trunc=6, align=7)
    c = apply_compat_defaults(sb, page_size=65536)
    assert (c.start_pad, c.end_trunc, c.align) == (5, 6, 7)
    assert (c.page_size, c.page_struct_size) == (65536, 64)
    assert c.pack() == sb.pack()


def test_compat_defaults_minor4_untouched():
    """§1.4: a minor-4 block keeps its recorded page_size/page_struct_size."""
    sb = InfoBlock.new(PFN_SIG, U, P, version_minor=4, page_size=65536, page_struct_size=80,
                       align=7)
    assert apply_compat_defaults(sb) == sb


# --- unpack errors (§1.3, §4 #4, #5; api.md) ----------------------------------------------


@pytest.mark.parametrize("n", [0, 4095, 4097, 8192])
def test_unpack_wrong_length(n):
    """api.md: ValueError on wrong length, naming the length."""
    with pytest.raises(ValueError, match=rf"4096 bytes, got {n}"):
        InfoBlock.unpack(bytes(n))
    with pytest.raises(ValueError, match=rf"got {n}"):
        InfoBlock.unpack(bytes(n), verify=False)


def test_unpack_bad_signature():
    """§4 #4: a signature other than the two 16-byte ones is refused (checked first)."""
    raw = bytearray(v53_block(3).pack())
    raw[0:16] = b"BTT_ARENA_INFO\0\0"
    with pytest.raises(ValueError, match="bad signature"):
        InfoBlock.unpack(bytes(raw))
    # The zero block (never written) also fails on the signature, not the checksum.
    with pytest.raises(ValueError, match="signature"):
        InfoBlock.unpack(bytes(4096))
    # Comparing all 16 bytes: a wrong terminator is a bad signature too.
    raw = bytearray(v53_block(3).pack())
    raw[15] = ord("X")
    with pytest.raises(ValueError, match="signature"):
        InfoBlock.unpack(bytes(raw))


@pytest.mark.parametrize("pos", [16, 48, 54, 60, 88, 93, 94, 2000, 4087, 4088, 4095])
def test_unpack_flipped_byte(pos):
    """§1.3/§4 #5: any flipped byte (field, padding or checksum) is a checksum mismatch."""
    good = v53_block(4).pack()
    raw = bytearray(good)
    raw[pos] ^= 0x01
    with pytest.raises(ValueError, match=r"checksum mismatch: stored 0x[0-9a-f]{16}, computed 0x[0-9a-f]{16}"):
        InfoBlock.unpack(bytes(raw))
    sb = InfoBlock.unpack(bytes(raw), verify=False)
    assert sb.pack(checksum=sb.checksum) == bytes(raw)


def test_unpack_verify_false_reads_raw_fields():
    """§4: the validator reads raw fields (bad signature, stale checksum) without checks."""
    raw = bytearray(v53_block(3).pack())
    raw[0:16] = b"X" * 16
    raw[4088:4096] = struct.pack("<Q", 0x1234)
    sb = InfoBlock.unpack(bytes(raw), verify=False)
    assert sb.signature == b"X" * 16 and sb.checksum == 0x1234
    assert sb.dataoff == 0x1200000 and sb.npfns == 257536 and sb.align == 0x200000
    assert sb.compute_checksum() == sb_checksum(raw)


def test_pack_with_explicit_checksum():
    """§1.3: pack(checksum=...) writes a chosen (possibly wrong) value for fault injection."""
    sb = v53_block(3)
    raw = sb.pack(checksum=0xDEADBEEF)
    assert struct.unpack_from("<Q", raw, 4088)[0] == 0xDEADBEEF == sb.checksum
    with pytest.raises(ValueError, match="stored 0x00000000deadbeef, computed 0x94e3837e6c75d85f"):
        InfoBlock.unpack(raw)
    sb.pack()
    assert sb.checksum == 0x94E3837E6C75D85F


def test_unpack_accepts_buffers():
    """§1.1: the block is read as 4096 bytes from the namespace; any bytes-like works."""
    raw = v53_block(3).pack()
    assert InfoBlock.unpack(bytearray(raw)) == InfoBlock.unpack(memoryview(raw))


def test_new_defaults():
    """§3/§1.2: a fresh block: major 1, zero flags/padding, minor 4 records 4096 / 64."""
    sb = InfoBlock.new()
    assert sb.signature == PFN_SIG and sb.version_major == 1 and sb.flags == 0
    assert sb.version_minor == 4 and (sb.page_size, sb.page_struct_size) == (4096, 64)
    assert sb.padding == bytes(3994)
    assert sb.checksum == sb_checksum(sb.pack())
