"""nd_pfn_validate on fuzzed info-blocks: the errno of the first failing check in §4's table order
(memremap-nvdimm.md §4), never a crash; plus enable-time failures leave state unchanged."""

from __future__ import annotations

import errno
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import DAX_SIG, PFN_SIG, InfoBlock, sb_checksum

NS_START, NS_SIZE = 0x2_0400_0000, 1 << 30
NS_UUID = uuid.UUID("8a3c1a92-1f0e-4d7e-9a8b-3c2d1e0f4a5b").bytes
PFN_UUID = uuid.UUID("11111111-2222-3333-4444-555555555555").bytes


def _block(minor=3, **kw):
    f = dict(dataoff=0x1200000, npfns=257536, mode=2, start_pad=0, end_trunc=0, align=0x200000)
    f.update(kw)
    return InfoBlock.new(PFN_SIG, PFN_UUID, NS_UUID, version_minor=minor, **f).pack()


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


def _fix_checksum(raw: bytearray) -> bytes:
    raw[4088:] = bytes(8)
    raw[4088:] = sb_checksum(bytes(raw)).to_bytes(8, "little")
    return bytes(raw)


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
    data = _fix_checksum(raw) if fix else bytes(raw)
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
