"""Fuzzing ``InfoBlock.unpack`` and ``nd_pfn_validate`` (issue #6): mutated valid blocks (byte
flips, truncation/extension, with the checksum fixed up afterwards so that the checks after #5
are reached) and random bytes.  Only the documented outcomes are allowed: ``unpack`` returns an
InfoBlock or raises ValueError; ``nd_pfn_validate`` never raises and returns 0 or a known -errno.
Each call runs in well under a second (no hang)."""

from __future__ import annotations

import errno
import time
import uuid

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import DAX_SIG, PFN_SIG, InfoBlock, sb_checksum

NS_START, NS_SIZE = 0x2_0400_0000, 1 << 30
NS_UUID = uuid.UUID("8a3c1a92-1f0e-4d7e-9a8b-3c2d1e0f4a5b").bytes
PFN_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555").bytes
ERRNOS = {0, -errno.ENODEV, -errno.ENXIO, -errno.EINVAL, -errno.EBUSY}


def _valid(minor: int, sig: bytes = PFN_SIG) -> bytes:
    return InfoBlock.new(sig, PFN_UUID, NS_UUID, dataoff=0x1200000, npfns=257536, mode=2, start_pad=0,
                         end_trunc=0, align=0x200000, version_minor=minor).pack()


BASES = [_valid(m, s) for m in (0, 1, 2, 3, 4) for s in (PFN_SIG, DAX_SIG)]


def fix_checksum(raw: bytes) -> bytes:
    """Re-seal a mutated 4096-byte block so that check #5 passes."""
    b = bytearray(raw)
    b[4088:4096] = sb_checksum(bytes(b)).to_bytes(8, "little")
    return bytes(b)


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
    from sparsemem.kernel import as_model
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
