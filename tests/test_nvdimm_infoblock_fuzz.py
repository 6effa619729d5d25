"""Fuzzing the info-block reader (memremap-nvdimm.md, "MN", §1, §4; issue #6).

``nd_pfn_validate`` on blocks built from random fields returns the errno of the first failing
check in §4's table order, computed by an oracle written independently of the implementation.
Mutated valid blocks (byte flips, truncation/extension, with the checksum fixed up afterwards so
that the checks after #5 are reached) and random bytes give only the documented outcomes:
``InfoBlock.unpack`` returns an InfoBlock or raises ValueError; ``nd_pfn_validate`` never raises
and returns 0 or a known -errno, and whatever validates can be set up or is refused with an
errno.  Each call runs in well under a second (no hang)."""

from __future__ import annotations

import errno
import time
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sparsemem.kernel import as_model
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import DAX_SIG, PFN_SIG, InfoBlock, sb_checksum

NS_START, NS_SIZE = 0x2_0400_0000, 1 << 30
NS_UUID = uuid.UUID("8a3c1a92-1f0e-4d7e-9a8b-3c2d1e0f4a5b").bytes
PFN_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555").bytes
ERRNOS = {0, -errno.ENODEV, -errno.ENXIO, -errno.EINVAL, -errno.EBUSY}


def _block(minor=3, sig=PFN_SIG, **kw):
    """A valid block (the §3.4 worked example's fields unless overridden)."""
    f = dict(dataoff=0x1200000, npfns=257536, mode=2, start_pad=0, end_trunc=0, align=0x200000)
    f.update(kw)
    return InfoBlock.new(sig, PFN_UUID, NS_UUID, version_minor=minor, **f).pack()


BASES = [_block(m, s) for m in (0, 1, 2, 3, 4) for s in (PFN_SIG, DAX_SIG)]


def fix_checksum(raw) -> bytes:
    """Re-seal a mutated 4096-byte block so that check #5 passes."""
    b = bytearray(raw)
    b[4088:4096] = sb_checksum(bytes(b)).to_bytes(8, "little")
    return bytes(b)


# ------------------------------------------------------------------ the first failing check (§4 table)
def oracle(raw: bytes, init, sig=PFN_SIG) -> int:
    """§4 table, written independently of the implementation."""
    if raw[:16] != sig:
        return -errno.ENODEV                                            # 4
    if sb_checksum(raw) != int.from_bytes(raw[4088:], "little"):
        return -errno.ENODEV                                            # 5
    if raw[32:48] != NS_UUID:
        return -errno.ENODEV                                            # 6
    minor = int.from_bytes(raw[54:56], "little")
    dataoff = int.from_bytes(raw[56:64], "little")
    mode = int.from_bytes(raw[72:76], "little")
    sp = int.from_bytes(raw[76:80], "little") if minor >= 1 else 0      # 7
    align = int.from_bytes(raw[84:88], "little") if minor >= 2 else 0
    if mode not in (1, 2):
        return -errno.ENXIO                                             # 8
    if align == 0 and dataoff:
        align = 1 << (dataoff.bit_length() - 1)                         # 9
    if init is not None:
        if raw[16:32] != init["uuid"]:
            return -errno.ENODEV                                        # 10b
        if init["align"] != align or init["mode"] != mode:
            return -errno.EINVAL                                        # 10c
    if align > NS_SIZE:
        return -errno.EINVAL                                            # 11
    if dataoff >= NS_SIZE:
        return -errno.EBUSY                                             # 12
    if (align and (NS_START + dataoff + sp) % align) or dataoff % 4096:
        return -errno.ENXIO                                             # 13
    return 0


FIELDS = st.fixed_dictionaries({
    "minor": st.integers(0, 4),
    "dataoff": st.sampled_from([0, 4096, 0x1200000, 0x1200001, NS_SIZE, NS_SIZE + 4096, 0x40000000 - 4096]),
    "mode": st.integers(0, 3),
    "start_pad": st.sampled_from([0, 0x4000000, 0x1000, 0x200000]),
    "align": st.sampled_from([0, 4096, 0x200000, 0x40000000, 0x80000000, 0x3]),
})


@settings(max_examples=150, deadline=None)
@given(FIELDS, st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), max_size=4),
       st.booleans(), st.booleans(), st.sampled_from([None, "match", "other"]))
def test_validate_first_failing_check(fields, flips, fix, dax, init_kind):
    raw = bytearray(_block(minor=fields["minor"], dataoff=fields["dataoff"], mode=fields["mode"],
                           start_pad=fields["start_pad"], align=fields["align"]))
    for off, val in flips:
        raw[off] = val
    data = fix_checksum(raw) if fix else bytes(raw)
    init = None
    if init_kind == "match":
        init = {"uuid": PFN_UUID, "align": fields["align"] or 0x200000, "mode": 2}
    elif init_kind == "other":
        init = {"uuid": bytes(16), "align": 0x200000, "mode": 2}
    sig = DAX_SIG if dax else PFN_SIG
    res = P.nd_pfn_validate(data, sig, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID, init=init)
    assert res.rc == oracle(data, init, sig)


def test_validate_known_vectors():
    assert P.nd_pfn_validate(_block(), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID).rc == 0
    assert P.nd_pfn_validate(None, PFN_SIG, ns_start=0, ns_size=1, ns_uuid=NS_UUID).check == 1
    assert P.nd_pfn_validate(_block(), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID,
                             region_is_pmem=False).rc == -errno.ENODEV
    assert P.nd_pfn_validate(b"x" * 10, PFN_SIG, ns_start=0, ns_size=1, ns_uuid=NS_UUID).rc == -errno.ENXIO
    bad = bytearray(_block())
    bad[100] ^= 1
    r = P.nd_pfn_validate(bytes(bad), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID)
    assert (r.rc, r.check) == (-errno.ENODEV, 5)
    r = P.nd_pfn_validate(_block(dataoff=NS_SIZE), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID)
    assert (r.rc, r.message) == (-errno.EBUSY, "pfn array size exceeds capacity of namespace0.0")
    r = P.nd_pfn_validate(_block(), PFN_SIG, ns_start=NS_START + 4096, ns_size=NS_SIZE, ns_uuid=NS_UUID)
    assert (r.rc, r.message) == (-errno.ENXIO, "bad offset: 0x1200000 dax disabled align: 0x200000")
    r = P.nd_pfn_validate(_block(), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID,
                          init={"uuid": PFN_UUID, "align": 4096, "mode": 2})
    assert (r.rc, r.message) == (-errno.EINVAL, "init failed, settings mismatch")
    # minor 1: align defaults to 2^floor(log2(dataoff)) = 16 MiB -> 0x2_0400_0000 + 18 MiB misaligned
    r = P.nd_pfn_validate(_block(minor=1), PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID)
    assert (r.rc, r.sb.align) == (-errno.ENXIO, 0x1000000)


def test_checksum_vectors_from_spec():
    """§1.3 test vectors: the v5.3 worked-example block and the pre-series scenario-A block."""
    assert InfoBlock.unpack(_block()).checksum == 0x94E3837E6C75D85F
    pre = InfoBlock.new(PFN_SIG, PFN_UUID, NS_UUID, version_minor=2, dataoff=0x1200000, npfns=241152, mode=2,
                        start_pad=0x4000000, align=0x200000)
    assert pre.checksum == 0x43F4837E7074985F


# ------------------------------------------------------------------ mutated and random blocks: no crash, no hang
def _unpack(data):
    t0 = time.perf_counter()
    for verify in (True, False):
        try:
            sb = InfoBlock.unpack(data, verify=verify)
        except ValueError:
            continue
        assert isinstance(sb, InfoBlock)
        assert len(sb.pack()) == 4096          # what was read can always be written back
    assert time.perf_counter() - t0 < 1.0


def _validate(data, init=None, sig=PFN_SIG):
    t0 = time.perf_counter()
    vr = P.nd_pfn_validate(data, sig, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID, init=init)
    assert vr.rc in ERRNOS, vr
    assert 1 <= vr.check <= 14
    assert (vr.rc == 0) == (vr.check == 14)
    if vr.rc == 0:
        assert vr.sb is not None and vr.sb.mode in (1, 2)
        # whatever validated can be set up or is refused with an errno, never an exception
        rc, res, _ = P.nvdimm_setup_pfn(_model(), vr.sb, NS_START, NS_SIZE)
        assert rc in ERRNOS and (rc != 0 or res is not None)
    assert time.perf_counter() - t0 < 1.0
    return vr


def _model():
    return as_model("5.3")


mutation = st.lists(st.tuples(st.integers(0, 4095), st.integers(0, 255)), min_size=1, max_size=12)
INIT = st.one_of(st.none(), st.fixed_dictionaries({"uuid": st.sampled_from([PFN_UUID, bytes(16)]),
                                                   "align": st.sampled_from([0, 4096, 0x200000, 1 << 30]),
                                                   "mode": st.sampled_from([1, 2])}))


@settings(max_examples=150, deadline=None)
@given(base=st.sampled_from(BASES), flips=mutation, reseal=st.booleans(), init=INIT)
@example(base=BASES[6], flips=[(84, 0), (85, 0), (86, 0), (87, 0), (56, 0), (57, 0), (58, 0)], reseal=True,
         init=None)                                   # align 0 and dataoff 0: #9 must not compute 1 << -1
@example(base=BASES[6], flips=[(63, 0xFF)], reseal=True, init=None)       # dataoff near 2^64
@example(base=BASES[6], flips=[(72, 0)], reseal=True, init=None)          # mode NONE -> #8 ENXIO
def test_mutated_blocks(base, flips, reseal, init):
    b = bytearray(base)
    for off, val in flips:
        b[off] = val
    raw = fix_checksum(bytes(b)) if reseal else bytes(b)
    _unpack(raw)
    vr = _validate(raw, init)
    if reseal and raw[:16] == PFN_SIG and raw[32:48] == NS_UUID:
        assert vr.check >= 7          # the reseal reaches the checks after the checksum


@settings(max_examples=100, deadline=None)
@given(base=st.sampled_from(BASES), cut=st.integers(0, 8192), reseal=st.booleans())
@example(base=BASES[0], cut=0, reseal=False)
@example(base=BASES[0], cut=4095, reseal=False)
@example(base=BASES[0], cut=4097, reseal=False)
def test_truncated_or_extended(base, cut, reseal):
    data = base[:cut] if cut <= 4096 else base + bytes(cut - 4096)
    if reseal and len(data) >= 4096:
        data = fix_checksum(data[:4096]) + data[4096:]
    if len(data) != 4096:
        with pytest.raises(ValueError, match="4096 bytes"):
            InfoBlock.unpack(data)
        assert _validate(data).rc == -errno.ENXIO    # check #3: short read
    else:
        _unpack(data)
        _validate(data)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=0, max_size=4200), sig=st.sampled_from([PFN_SIG, DAX_SIG]))
def test_random_bytes(data, sig):
    _unpack(data)
    _validate(data, sig=sig)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=4096 - 16, max_size=4096 - 16), sig=st.sampled_from([PFN_SIG, DAX_SIG]),
       parent=st.booleans())
def test_random_sealed_blocks(data, sig, parent):
    """Random fields behind a valid signature and checksum: every check of §4 is reachable."""
    raw = sig + data
    if parent:
        raw = raw[:32] + NS_UUID + raw[48:]
    raw = fix_checksum(raw)
    _unpack(raw)
    _validate(raw, sig=sig)


@pytest.mark.parametrize("bad", [None, memoryview(bytes(4096)), bytearray(4096)])
def test_buffer_types(bad):
    vr = P.nd_pfn_validate(bad, PFN_SIG, ns_start=NS_START, ns_size=NS_SIZE, ns_uuid=NS_UUID)
    assert vr.rc in (-errno.ENODEV, -errno.ENXIO)


@pytest.mark.parametrize("value", [1, 0x10, 0x80, 0xFF])
def test_regression_dataoff_beyond_4g_with_zero_align(value):
    """Found by this fuzzer in CI: a sealed block whose dataoff >= 4 GiB and align 0 makes check #9
    substitute 2^ilog2(dataoff) > 2^32 (an unsigned long in the kernel), which must not raise."""
    for base in BASES:
        test_mutated_blocks.hypothesis.inner_test(base, [(60, value)], True, None)
