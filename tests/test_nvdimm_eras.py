"""The nvdimm / memremap rows of the release table, each on both sides of its boundary
(docs/spec/later-eras-nvdimm-evidence.md §1 rows R1-R25 with the worked examples of §1.1, the
test plan of §5.1; docs/spec/later-eras-nvdimm.md §11-§18).

Every expected number is recomputed here from the formulas of later-eras-nvdimm.md §11 (the
``nd_pfn_init`` arithmetic), MN §1.2/§1.3 (the block bytes and ``nd_fletcher64``) and §15 (the
memmap placement), with the test's own helpers below -- never read back from the package.
The releases on each side are ones the evidence file says were read (§0.1).
"""

from __future__ import annotations

import errno
import struct
import uuid as _uuid

import pytest

from helpers import GiB, KiB, MiB, layout
from sparsemem import KernelError, Machine
from sparsemem import memremap as MR
from sparsemem.errors import KernelBug
from sparsemem.kernel import kernel_model
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import DAX_SIG, PFN_SIG, InfoBlock

S = 64                                   # sizeof(struct page), x86_64
SECTION = 128 * MiB

# ------------------------------------------------------------------ the worked-example layouts (§1)
#: L1: pmem 64 MiB into section 64 after RAM (tests/helpers PMEM_AFTER_RAM_IN_SECTION)
L1 = "100000000-203ffffff : System RAM\n204000000-2ffffffff : Persistent Memory\n"
#: L2: 4 GiB RAM at 4 GiB, 4 GiB pmem at 8 GiB
L2 = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory\n"
#: L3: a 1040 MiB region (1 GiB + 16 MiB) at 8 GiB
L3 = "100000000-1ffffffff : System RAM\n200000000-240ffffff : Persistent Memory\n"
#: L5: the region starts 1 MiB past a 2 MiB boundary
L5 = "100000000-2000fffff : System RAM\n200100000-2ffffffff : Persistent Memory\n"
#: the same 4 GiB region as L2 but an e820 (legacy, PAGEMAP) one
L2_LEGACY = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory (legacy)\n"
N1_START = 0x2_0400_0000


# ------------------------------------------------------------------ independent arithmetic
def aup(x: int, a: int) -> int:
    return -(-x // a) * a


def adn(x: int, a: int) -> int:
    return x // a * a


def nd_pfn_init(start: int, size: int, align: int, *, pmem: bool = True, psz: int = 64) -> dict:
    """later-eras-nvdimm.md §11 common rule (v5.3+): a = max(align, 2 MiB); end_trunc to a;
    dataoff past 8 KiB + psz per pfn (PMEM) or 8 KiB (RAM), aligned to a; npfns the rest."""
    a = max(align, 2 * MiB)
    end = start + size
    end_trunc = end - adn(end, a)
    npfns_r = (size - 8 * KiB) // (4 * KiB)
    if pmem:
        dataoff = aup(start + 8 * KiB + psz * npfns_r, a) - start
    else:
        dataoff = aup(start + 8 * KiB, a) - start
    npfns = (size - dataoff - end_trunc) // (4 * KiB)
    return {"end_trunc": end_trunc, "dataoff": dataoff, "npfns": npfns,
            "usable": size - dataoff - end_trunc}


def fletcher64(data: bytes) -> int:
    """MN §1.3, written out word by word."""
    lo = hi = 0
    for (w,) in struct.iter_unpack("<I", data):
        lo = (lo + w) & 0xFFFFFFFF
        hi = (hi + lo) & (2**64 - 1)
    return ((hi & 0xFFFFFFFF) << 32) | lo


def block_bytes(sig, uuid, parent, minor, dataoff, npfns, mode, align, *, start_pad=0, end_trunc=0,
                psz=64) -> bytes:
    """The 4096 media bytes of an info-block (MN §1.2), checksum at 4088 (MN §1.3)."""
    b = bytearray(4096)
    struct.pack_into("<16s16s16sIHHQQIIII", b, 0, sig, uuid, parent, 0, 1, minor, dataoff, npfns, mode,
                     start_pad, end_trunc, align)
    if minor >= 4:
        struct.pack_into("<IH", b, 88, 4096, psz)
    struct.pack_into("<Q", b, 4088, fletcher64(bytes(b)))
    return bytes(b)


def media_block(m, ns) -> bytes:
    return m.regions[ns.region.id].media.read(ns.offset + 4096, 4096)


def memmap_delta(m, action):
    before = m.sections.vmemmap_stats()
    out = action()
    after = m.sections.vmemmap_stats()
    return out, {k: after[k] - before[k] for k in before}


#: MN §1.3 test-vector uuids
VEC_UUID = _uuid.UUID("11111111-2222-3333-4444-555555555555").bytes
VEC_PARENT = _uuid.UUID("8a3c1a92-1f0e-4d7e-9a8b-3c2d1e0f4a5b").bytes


# ------------------------------------------------------------------ the switches, both sides
@pytest.mark.parametrize("name,before,after,values", [
    ("infoblock_minor", "5.3", "5.4", (3, 4)),                              # R1 edbb52c24441
    ("pfn_validate_v14", "5.3", "5.4", (False, True)),                      # R2
    ("probe_raw_fallback", "5.3", "5.4", ("any", "unless_eopnotsupp")),     # R3
    ("memremap_msgs", "5.3", "5.4", ("5.3", "5.4")),                        # R5
    ("compat_align", "5.6", "5.7", (0, 2 * MiB)),                           # R7 9ffc1d19fc4a
    ("pfn_validate_eopnotsupp", "5.6", "5.7", (False, True)),               # R8
    ("region_align", "5.6", "5.7", ("", "16m")),                            # R9
    ("memremap_msgs", "5.9", "5.10", ("5.4", "5.10")),                      # R12
    ("dax_bus_probe", "5.9", "5.10", (False, True)),                        # R13
    ("compound_devmap", "5.15", "5.17", (False, True)),                     # R14
    ("region_align", "5.17", "5.18", ("16m", "16m_small_4k")),              # R15 d9d290d7e659
    ("max_struct_page_size", "6.0", "6.1", (64, 128)),                      # R18 6e9f05dc66f9
    ("region_align_store_unmapped", "6.0", "6.1", (False, True)),           # R19
    ("max_struct_page_size", "6.1.11", "6.1.12", (128, 64)),                # R20 9f55a0a2d94f
    ("pfn_init_zero_capacity_refused", "6.5", "6.6", (False, True)),        # R22 e96d9a938e89
    ("probe_fail_dev_err", "6.8", "6.9", (False, True)),                    # R24
])
def test_nvdimm_switch_on_both_sides_of_its_row(name, before, after, values):
    assert (getattr(kernel_model(before), name), getattr(kernel_model(after), name)) == values


def test_stable_row_6_1_12_keys_on_the_patch_level():
    """R20: the fix is a 6.1.y stable commit: 6.1.0-6.1.11 keep 128, 6.1.12 (and its -rc1)
    and every later 6.1.y, and 6.2, have 64; Debian's ``6.1.0-18-amd64`` names the ABI, so it
    runs the 6.1.0 row (evidence §3 #13)."""
    sizes = {v: kernel_model(v).max_struct_page_size
             for v in ("6.1", "6.1.5", "6.1.10", "6.1.11", "6.1.12-rc1", "6.1.12", "6.1.20", "6.2", "6.0.1-amd64",
                       "6.1.0-18-amd64")}
    assert sizes == {"6.1": 128, "6.1.5": 128, "6.1.10": 128, "6.1.11": 128, "6.1.12-rc1": 64, "6.1.12": 64,
                     "6.1.20": 64, "6.2": 64, "6.0.1-amd64": 64, "6.1.0-18-amd64": 128}


# ------------------------------------------------------------------ R1: info-block 1.4 (5.3 -> 5.4)
@pytest.mark.parametrize("kernel,minor", [("5.3", 3), ("5.4", 4)])
def test_r1_n1_block_bytes(kernel, minor):
    """§1.1 R1: N1 on L1 writes the same layout in both releases; 5.4 adds version 1.4 and the
    page fields (bytes 54-55, 88-93) -- the media bytes equal the ones built here."""
    m = Machine.from_iomem(L1, kernel=kernel)
    ns = m.regions[0].create_namespace(size=GiB)
    want = nd_pfn_init(N1_START, GiB, 2 * MiB)
    assert (ns.start, ns.dataoff, ns.npfns, ns.size) == (N1_START, want["dataoff"], want["npfns"], want["usable"])
    assert (want["dataoff"], want["npfns"], want["usable"]) == (18 * MiB, 257536, 1054867456)
    raw = media_block(m, ns)
    assert raw == block_bytes(PFN_SIG, ns.pfn_uuid, ns.uuid, minor, want["dataoff"], want["npfns"], 2, 2 * MiB)
    assert raw[54:56] == bytes([minor, 0])
    assert raw[88:94] == (bytes(6) if minor == 3 else bytes.fromhex("001000004000"))
    sb = ns.info_block()
    assert (sb.version_minor, sb.page_size, sb.page_struct_size) == ((3, 0, 0) if minor == 3 else (4, 4096, 64))


@pytest.mark.parametrize("kernel,minor,psz,csum", [
    ("5.3", 3, 64, 0x94E3837E6C75D85F), ("5.4", 4, 64, 0x99161DBE6C76E89F),
    ("6.0", 4, 64, 0x99161DBE6C76E89F), ("6.1", 4, 128, 0x8AD817FE6D76D8DF),
    ("6.1.12", 4, 64, 0x99161DBE6C76E89F)])
def test_r1_r18_checksum_vectors(kernel, minor, psz, csum):
    """MN §1.3 / evidence §1.1 R1, R18: the vector uuids, N1's layout of the release; the block
    the package writes equals the one built and summed here, whose sum is the spec's vector."""
    model = kernel_model(kernel)
    want = nd_pfn_init(N1_START, GiB, 2 * MiB, psz=psz)
    ref = block_bytes(PFN_SIG, VEC_UUID, VEC_PARENT, minor, want["dataoff"], want["npfns"], 2, 2 * MiB, psz=psz)
    assert int.from_bytes(ref[4088:], "little") == csum
    rc, lay, _ = P.compute_layout(model, N1_START, GiB, P.PFN_MODE_PMEM, 2 * MiB)
    assert rc == 0 and (lay.dataoff, lay.npfns) == (want["dataoff"], want["npfns"])
    sb, raw = P.new_block_bytes(model, PFN_SIG, VEC_UUID, VEC_PARENT, lay, P.PFN_MODE_PMEM, 2 * MiB)
    assert raw == ref


@pytest.mark.parametrize("booted", ["5.3", "5.4", "6.8"])
def test_r1_no_release_rewrites_a_valid_block(booted):
    """Evidence §3 #1: a 1.3 block booted under 5.4+ stays 1.3 on the media; only the reader
    defaults the page fields (check #7b, 5.4+)."""
    m = Machine.from_iomem(L1, kernel="5.3")
    ns = m.regions[0].create_namespace(size=GiB)
    raw = media_block(m, ns)
    m2 = m.reboot(kernel=booted)
    (ns2,) = m2.regions[0].namespaces
    assert ns2.enabled and media_block(m2, ns2) == raw
    sb = ns2.info_block()
    assert sb.version_minor == 3
    assert (sb.page_size, sb.page_struct_size) == ((0, 0) if booted == "5.3" else (4096, 64))


# ------------------------------------------------------------------ R2/R3: 9c and no raw fallback
def _n2_block_16m(m):
    """A devdax map=dev block with align 16 MiB (a PowerPC hash-MMU kernel writes one) on
    [8 GiB, 9 GiB) of L2 (§1.1 R2)."""
    ns = m.regions[0].create_namespace(size=GiB, mode="devdax", map="dev")
    want = nd_pfn_init(ns.start, GiB, 16 * MiB)
    sb = InfoBlock.unpack(media_block(m, ns))
    m.regions[0].media.write(ns.offset + 4096, sb.copy(align=16 * MiB, dataoff=want["dataoff"],
                                                       npfns=want["npfns"], end_trunc=0).pack())
    return want


@pytest.mark.parametrize("booted", ["5.3", "5.4", "6.8", "6.9"])
def test_r2_r3_devdax_align_16m(booted):
    m = Machine.from_iomem(L2, kernel="5.3")
    want = _n2_block_16m(m)
    assert (want["dataoff"], want["npfns"]) == (32 * MiB, 253952)
    m2 = m.reboot(kernel=booted)
    (ns,) = m2.regions[0].namespaces
    if booted == "5.3":             # no 9c: validates, the dax region is 16 MiB aligned
        assert ns.enabled and ns.mode == "devdax" and ns.size == want["usable"] == 1040187392
        pmds = (GiB // SECTION)     # 8 full sections, their memmap in the altmap
        assert ns.pgmap.altmap.alloc == pmds * 512
        return
    line = "dax_pmem dax0.0: init failed, alignment mismatch: 2097152:16777216"
    assert not ns.enabled and ns.error == (errno.EOPNOTSUPP, line)
    assert ns.mode == "devdax" and ns.pgmap is None and ns.resources == []       # no raw disk
    driver_core = ("nd_pmem namespace0.0: probe with driver nd_pmem failed with error -95" if booted == "6.9"
                   else "nd_pmem: probe of namespace0.0 failed with error -95")
    assert m2.dmesg[-2:] == [line, driver_core]


# ------------------------------------------------------------------ R3/R8: bad offset 5.6 -> 5.7
MOVED = "100000000-203ffffff : System RAM\n204100000-3000fffff : Persistent Memory\n"


@pytest.mark.parametrize("booted", ["5.3", "5.4", "5.6", "5.7", "6.8"])
def test_r3_r8_moved_region_bad_offset(booted):
    """§1.1 R2 contrast / §17: N1's 5.3 block with its region moved +1 MiB fails check 13 on
    every release: 5.3-5.6 -ENXIO and a raw disk over the info-block; 5.7+ -EOPNOTSUPP, unbound."""
    m = Machine.from_iomem(L1, kernel="5.3")
    ns = m.regions[0].create_namespace(size=GiB)
    raw = media_block(m, ns)
    m2 = m.reboot(iomem=MOVED, kernel=booted)
    (ns2,) = m2.regions[0].namespaces
    line = f"nd_pmem pfn0.0: bad offset: {ns.dataoff:#x} dax disabled align: 0x200000"
    if booted in ("5.3", "5.4", "5.6"):
        assert ns2.enabled and ns2.mode == "raw" and ns2.size == GiB and ns2.error == (errno.ENXIO, line)
    else:
        assert not ns2.enabled and ns2.error == (errno.EOPNOTSUPP, line)
    assert media_block(m2, ns2) == raw
    back = m2.reboot(iomem=L1, kernel="5.3").regions[0].namespaces[0]      # nothing lost
    assert back.enabled and back.mode == "fsdax" and back.size == ns.size


# ------------------------------------------------------------------ R5/R12: memremap texts
@pytest.mark.parametrize("kernel,line,site", [
    ("5.3", "devm_memremap_pages attempted on mixed region [mem 0x200000000-0x207ffffff flags 0x200]",
     "devm_memremap_pages+"),
    ("5.4", "memremap_pages attempted on mixed region [mem 0x200000000-0x207ffffff flags 0x200]", "memremap_pages+"),
    ("5.9", "memremap_pages attempted on mixed region [mem 0x200000000-0x207ffffff flags 0x200]", "memremap_pages+"),
    ("5.10", "attempted on mixed region 0x200000000-0x207ffffff", "pagemap_range+"),
    ("6.12", "attempted on mixed region 0x200000000-0x207ffffff", "pagemap_range+"),
])
def test_r5_r12_ram_overlap_text(kernel, line, site):
    m = Machine.from_iomem(L1, kernel=kernel)
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x2_0000_0000, SECTION, type="devdax")
    assert ei.value.errno == errno.ENXIO and m.snapshot()["sections"] == snap["sections"]
    i = m.dmesg.index(line)
    assert m.dmesg[i + 1].startswith("WARNING: CPU:") and f" {site}" in m.dmesg[i + 1]


@pytest.mark.parametrize("kernel,prefixed", [("5.3", True), ("5.4", False), ("5.10", False)])
def test_r5_conflict_text(kernel, prefixed):
    m = Machine.from_iomem(L2, kernel=kernel)
    MR.memremap_pages(m, 0x2_1000_0000, 16 * MiB, type="devdax", dev="dax_pmem dax0.0")
    with pytest.raises(KernelError) as ei:
        MR.memremap_pages(m, 0x2_1000_0000, 2 * MiB, type="devdax", dev="dax_pmem dax0.1")
    assert ei.value.errno == errno.ENOMEM
    text = "dax_pmem dax0.1: Conflicting mapping in same section" if prefixed else "Conflicting mapping in same section"
    assert m.dmesg[-2] == text


@pytest.mark.parametrize("kernel", ["5.3", "5.4", "6.8"])
def test_r5_release_leak_text(kernel):
    """Device-private memory is released with a NULL altmap, so its altmap pages stay
    allocated (MN §6.3): 5.3 prints the device and function, 5.4+ neither (memunmap_pages)."""
    m = Machine.from_iomem(L2, kernel=kernel)
    alt = MR.make_altmap(m, 0x2_8000_0000 >> 12, 2, 4094)
    pg = MR.memremap_pages(m, 0x2_8000_0000, 256 * MiB, type="private", altmap=alt, dev="dev0")
    m.memunmap_pages(pg)
    if kernel == "5.3":
        assert "dev0: devm_memremap_pages_release: failed to free all reserved pages" in m.dmesg
    else:
        i = m.dmesg.index("failed to free all reserved pages")
        assert " memunmap_pages+" in m.dmesg[i + 1]


@pytest.mark.parametrize("kernel,end", [("6.4", "#"), ("6.5", "0x")])
def test_r21_misaligned_end_through_memremap(kernel, end):
    """R21 (6.4.6 -> 6.5.0): the Misaligned WARN of a 4 KiB- but not 2 MiB-aligned range."""
    m = Machine.from_iomem(L2, kernel=kernel)
    start = 0x2_1000_1000
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(start, 2 * MiB, type="devdax")
    assert ei.value.errno == errno.EINVAL
    first, last = start >> 12, ((start + 2 * MiB) >> 12) - 1
    assert f"Misaligned __add_pages start: {first:#x} end: {end}{last:x}" in m.dmesg


# ------------------------------------------------------------------ R7: start misaligned (5.6 -> 5.7)
def test_r7_n5_pre_series_block():
    """§1.1 R7: 5.2 pads N5 to sections (start_pad 127 MiB, end_trunc 1 MiB, minor 2)."""
    m = Machine.from_iomem(L5, kernel="5.2")
    ns = m.regions[0].create_namespace(size=GiB)
    start = 0x2_0010_0000
    sp = aup(start, SECTION) - start
    et = 1 * MiB          # the namespace ends 1 MiB past a section boundary
    npfns_r = aup((GiB - sp - et - 8 * KiB) // (4 * KiB), SECTION // (4 * KiB))
    dataoff = aup(start + sp + 8 * KiB + S * npfns_r, 2 * MiB) - (start + sp)
    assert (ns.start_pad, ns.end_trunc, ns.dataoff) == (sp, et, dataoff) == (133169152, MiB, 16 * MiB)
    assert ns.size == GiB - sp - et - dataoff == 922746880 and ns.version_minor == 2


@pytest.mark.parametrize("kernel", ["5.3", "5.6", "5.7", "6.12"])
def test_r7_n5_misaligned_start(kernel):
    m = Machine.from_iomem(L5, kernel=kernel)
    r = m.regions[0]
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        r.create_namespace(size=GiB)
    assert ei.value.errno == errno.ENXIO and m.snapshot() == snap
    if kernel in ("5.3", "5.6"):        # block written, enable fails in __add_pages
        assert ei.value.kernel_errno == errno.EINVAL and "memory add fail, invalid altmap" in m.dmesg
    else:                               # refused before anything is written
        assert ei.value.kernel_errno == errno.EINVAL
        assert m.dmesg[-1] == "nd_pmem pfn0.0: namespace0.0: start 0x0000000200100000 misaligned to 0x200000"
        assert "memory add fail, invalid altmap" not in m.dmesg


# ------------------------------------------------------------------ R9: region align (5.6 -> 5.7)
R1032 = "100000000-1ffffffff : System RAM\n200000000-2407fffff : Persistent Memory\n"
R4032 = "100000000-1ffffffff : System RAM\n200000000-2fbffffff : Persistent Memory\n"


@pytest.mark.parametrize("kernel", ["5.6", "5.7", "6.12"])
def test_r9_1032_mib_region(kernel):
    m = Machine.from_iomem(R1032, kernel=kernel)
    r = m.regions[0]
    size = 1032 * MiB
    a = None if kernel == "5.6" else 16 * MiB
    assert r.align == a
    avail = size if a is None else adn(size, a)
    assert r.available_size == r.max_available_extent == avail
    if a is not None:
        snap = m.snapshot()
        with pytest.raises(KernelError) as ei:
            r.create_namespace(size=size)
        assert ei.value.errno == errno.EINVAL and m.snapshot() == snap
        assert str(ei.value).endswith("region0: align setting is 0x1000000 size 0x40800000 is misaligned")
        assert r.to_dict()["align"] == a and list(r.to_dict())[:3] == ["dev", "size", "align"]
    else:
        assert "align" not in r.to_dict()
    ns = r.create_namespace()
    want = nd_pfn_init(0x2_0000_0000, avail, 2 * MiB)
    assert (ns.raw_size, ns.size) == (avail, want["usable"])
    assert want["usable"] == (1063256064 if a is None else 1054867456)


def test_r9_upgrade_widens_busy_range():
    """§1.1 R9 (DERIVED from dimm_devs.c 5.7): a 1032 MiB namespace created on 5.6 at offset 0
    of a 4032 MiB region still comes up on 5.7 (labels are not re-checked), but its busy range
    is widened to 1040 MiB: available 3000 MiB -> 2992 MiB; back on 5.6, 3000 MiB again."""
    m = Machine.from_iomem(R4032, kernel="5.6")
    ns = m.regions[0].create_namespace(size=1032 * MiB)
    assert m.regions[0].available_size == 4032 * MiB - 1032 * MiB == 3000 * MiB
    m2 = m.reboot(kernel="5.7")
    (ns2,) = m2.regions[0].namespaces
    assert ns2.enabled and ns2.raw_size == 1032 * MiB and ns2.size == ns.size
    busy = aup(1032 * MiB, 16 * MiB)
    assert m2.regions[0].available_size == adn(4032 * MiB - busy, 16 * MiB) == 2992 * MiB
    # the free extent starts at the next 16 MiB boundary
    assert m2.regions[0].free_extents() == [(busy, 4032 * MiB - busy)]
    assert m2.reboot(kernel="5.6").regions[0].available_size == 3000 * MiB


# ------------------------------------------------------------------ R15: small regions (5.17 -> 5.18)
R12M = "100000000-1ffffffff : System RAM\n200000000-200bfffff : Persistent Memory\n"


@pytest.mark.parametrize("kernel", ["5.6", "5.17", "5.18", "5.19"])
def test_r15_small_region(kernel):
    m = Machine.from_iomem(R12M, kernel=kernel)
    r = m.regions[0]
    if kernel == "5.17":
        assert r.align == 16 * MiB and r.available_size == 0
        with pytest.raises(KernelError) as ei:
            r.create_namespace()
        assert ei.value.errno == errno.ENOSPC
        return
    assert r.align == (None if kernel == "5.6" else 4 * KiB)
    assert r.available_size == 12 * MiB
    ns = r.create_namespace()
    want = nd_pfn_init(0x2_0000_0000, 12 * MiB, 2 * MiB)
    assert (ns.dataoff, ns.size) == (want["dataoff"], want["usable"]) == (2 * MiB, 10 * MiB)


# ------------------------------------------------------------------ R19 + align store rules (§5.1)
@pytest.mark.parametrize("kernel", ["5.6", "5.7", "6.0", "6.1"])
def test_r9_r19_align_store(kernel):
    m = Machine.from_iomem(L2_LEGACY.replace(" (legacy)", ""), kernel=kernel)
    r = m.regions[0]
    if kernel == "5.6":
        with pytest.raises(KernelError) as ei:
            r.align = 2 * MiB
        assert ei.value.errno == errno.ENOENT and r.align is None
        return
    for bad in (0, 3 * 4 * KiB, 2 * KiB, 8 * GiB, 24 * MiB, "0x3000", "junk", "0x1000000junk"):
        before = (r.align, r.available_size)
        with pytest.raises(KernelError) as ei:
            r.align = bad
        assert ei.value.errno == errno.EINVAL, bad
        assert (r.align, r.available_size) == before
    r.align = "0x200000\n"                       # kstrtoul(buf, 0): the sysfs text
    assert r.align == 2 * MiB
    r.align = 4 * GiB                            # = the region size: allowed
    assert r.align == 4 * GiB
    r.align = 4 * KiB
    ns = r.create_namespace(size=4 * KiB * 1000, mode="raw")
    assert ns.raw_size == 4096000
    assert m.reboot().regions[0].align == 16 * MiB          # the attribute is not on the media
    # an e820 (legacy) region has no mappings: -ENXIO until 6.0, accepted from 6.1 (R19)
    ml = Machine.from_iomem(L2_LEGACY, kernel=kernel)
    rl = ml.regions[0]
    assert rl.align == 16 * MiB
    if kernel in ("5.7", "6.0"):
        with pytest.raises(KernelError) as ei:
            rl.align = 16 * MiB
        assert ei.value.errno == errno.ENXIO
    else:
        rl.align = 2 * MiB
        assert rl.align == 2 * MiB


# ------------------------------------------------------------------ R10/R25: raw on e820 regions
QIAN_CAI = layout("0FB85A78")


def _l4_nfit_twin() -> str:
    """Qian Cai's layout with the two legacy ranges as NFIT regions: raw namespaces there only
    claim their range, so their labels can be written and then booted as e820 regions."""
    return QIAN_CAI.read_text().replace("Persistent Memory (legacy)", "Persistent Memory")


@pytest.mark.parametrize("kernel", ["5.2", "5.3", "5.6", "5.7", "6.8", "6.9"])
def test_r10_r25_qian_cai_legacy_raw(kernel):
    """§2.2 (issue 11 item 4): the raw namespace of each e820 region maps its pages (memmap in
    RAM, no altmap) unless it mixes with RAM; per release the second one fails differently."""
    m = Machine(kernel, iomem=_l4_nfit_twin())
    for r in m.regions:
        if r.align is not None:
            r.align = 4 * KiB            # whole-region namespaces on the twin (5.7+ align store)
        r.create_namespace(mode="raw")
    m2 = m.reboot(iomem=QIAN_CAI.read_text())
    ns0, ns1 = m2.nvdimm.namespaces
    assert m2.regions[0].pagemap and m2.regions[1].pagemap
    assert (ns0.start, ns0.end, ns1.start, ns1.end) == (0x1_0000_0000, 0x1_55E0_0000, 0x1_5982_C000, 0x2_0000_0000)
    if kernel == "5.2":
        # section-expanded [4 GiB, 0x158000000) mixes with RAM: -ENXIO (silent in driver core);
        # the WARN_ONCE is used by namespace0.0, so namespace1.0 fails without a line
        assert ns0.error == (errno.ENXIO, "devm_memremap_pages attempted on mixed region "
                                          "[mem 0x100000000-0x155dfffff flags 0x200]")
        assert not ns0.enabled and not ns1.enabled and ns1.error[0] == errno.ENXIO
        assert sum("attempted on" in ln for ln in m2.dmesg) == 1
        assert not any("probe of" in ln for ln in m2.dmesg)
        return
    # namespace0.0: sections 32-41 whole -> 10 RAM PMDs; section 42 holds the kernel image (early)
    whole = (0x1_5000_0000 - 0x1_0000_0000) // SECTION
    assert ns0.enabled and ns0.pgmap is not None and ns0.pgmap.altmap is None
    assert ns0.pgmap.memmap_ram == whole * SECTION // 4096 * S == 20971520
    assert not ns1.enabled and ns1.pgmap is None and ns1.resources == []
    if kernel in ("5.3", "5.6"):
        first, last = 0x1_5982_C000 >> 12, (0x2_0000_0000 >> 12) - 1
        assert ns1.error == (errno.EINVAL, f"Misaligned __add_pages start: {first:#x} end: #{last:x}")
        assert m2.dmesg[-1] == "nd_pmem: probe of namespace1.0 failed with error -22"
        return
    assert ns1.error == (errno.EOPNOTSUPP, "nd_pmem namespace1.0: [mem 0x15982c000-0x1ffffffff flags 0x200] "
                                           "misaligned, unable to map")
    assert m2.dmesg[-1] == ("nd_pmem namespace1.0: probe with driver nd_pmem failed with error -95" if kernel == "6.9"
                            else "nd_pmem: probe of namespace1.0 failed with error -95")


@pytest.mark.parametrize("kernel", ["5.3", "5.6", "5.7"])
def test_r10_fsdax_on_misaligned_legacy_namespace_is_not_read_at_boot(kernel):
    """Evidence §2.2 (a): fsdax can be created on a legacy namespace whose end is not 2 MiB
    aligned (end_trunc), but from 5.7 the namespace device's common probe refuses it at boot
    before the pfn probe; before 5.7 it comes back."""
    text = "100000000-1ffffffff : System RAM\n200000000-23e8fffff : Persistent Memory (legacy)\n"
    m = Machine(kernel, iomem=text)
    ns = m.regions[0].create_namespace(mode="fsdax")
    assert ns.enabled and ns.end_trunc == MiB and ns.end % (2 * MiB) == MiB
    (ns2,) = m.reboot().regions[0].namespaces
    if kernel == "5.7":
        assert not ns2.enabled and ns2.error[0] == errno.EOPNOTSUPP and "misaligned, unable to map" in ns2.error[1]
    else:
        assert ns2.enabled and ns2.mode == "fsdax" and ns2.size == ns.size


def test_r25_nfit_raw_namespace_maps_nothing():
    """NFIT regions never set ND_REGION_PAGEMAP: a raw namespace only claims its range."""
    m = Machine.from_iomem(L2, kernel="5.3")
    ns, d = memmap_delta(m, lambda: m.regions[0].create_namespace(size=GiB, mode="raw"))
    assert ns.pgmap is None and d["memmap_bytes"] == 0
    ml = Machine.from_iomem(L2_LEGACY, kernel="5.3")
    ns, d = memmap_delta(ml, lambda: ml.regions[0].create_namespace(size=GiB, mode="raw"))
    assert ns.pgmap is not None and d["memmap_ram_bytes"] == GiB // 4096 * S
    ns.disable()
    assert ml.pgmaps == []


# ------------------------------------------------------------------ item 3 / R13 / R22: npfns 0 devdax
def _n3(m):
    return m.regions[0].create_namespace(mode="devdax", map="dev", align=GiB)


@pytest.mark.parametrize("kernel", ["5.2", "5.3", "5.9", "5.10", "6.5", "6.6", "6.12"])
def test_item3_r13_r22_n3_create(kernel):
    """§2.1: N3 (devdax map=dev align 1 GiB over the whole 1040 MiB region) -- dataoff 1 GiB,
    npfns 0.  5.2 and 6.6+ refuse it; 5.3-6.5 bind the nd_dax device with a 0-size dax device
    that the device-dax driver does not bind (5.3-5.9 with a line, 5.10+ silently)."""
    m = Machine.from_iomem(L3, kernel=kernel)
    want = nd_pfn_init(0x2_0000_0000, 1040 * MiB, GiB)
    assert (want["end_trunc"], want["dataoff"], want["npfns"]) == (16 * MiB, GiB, 0)
    if kernel in ("5.2", "6.6", "6.12"):
        snap = m.snapshot()
        with pytest.raises(KernelError) as ei:
            _n3(m)
        assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == errno.ENXIO and m.snapshot() == snap
        assert m.dmesg[-1] == "dax_pmem dax0.0: namespace0.0 unable to satisfy requested alignment"
        assert m.regions[0].available_size == 1040 * MiB
        return
    mark = len(m.dmesg)
    ns, d = memmap_delta(m, lambda: _n3(m))
    assert ns.enabled and ns.size == 0 and ns.npfns == 0 and ns.dataoff == GiB and ns.pgmap is None
    assert ns.dax_enabled is False and ns.to_dict()["daxregion"]["devices"][0]["state"] == "disabled"
    assert d["memmap_bytes"] == 0
    if kernel in ("5.3", "5.9"):
        assert m.dmesg[mark:] == ["device_dax dax0.0: could not reserve region [mem 0x240000000-0x23fffffff]",
                                  "device_dax: probe of dax0.0 failed with error -16"]
    else:
        assert m.dmesg[mark:] == []
    ns.destroy()                        # nothing mapped: no teardown, no KernelBug
    assert m.regions[0].available_size == 1040 * MiB


@pytest.mark.parametrize("booted", ["5.2", "5.3", "6.5", "6.6", "6.9"])
def test_r22_n3_media_booted(booted):
    m = Machine.from_iomem(L3, kernel="5.3")
    _n3(m)
    m2 = m.reboot(kernel=booted)
    (ns,) = m2.regions[0].namespaces
    if booted in ("5.2", "5.3", "6.5"):
        assert ns.enabled and ns.size == 0 and ns.dax_enabled is False
        return
    line = "dax_pmem dax0.0: bad offset with small namespace"
    assert not ns.enabled and ns.error == (errno.EOPNOTSUPP, line)
    assert m2.dmesg[-1] == ("nd_pmem namespace0.0: probe with driver nd_pmem failed with error -95" if booted == "6.9"
                            else "nd_pmem: probe of namespace0.0 failed with error -95")


@pytest.mark.parametrize("kernel", ["5.3"])
def test_item3_fsdax_npfns0_teardown_is_a_kernel_bug(kernel):
    """§2.1: fsdax npfns 0 enables with a pgmap over [8 GiB, 9 GiB); its teardown reads the
    struct page one past the range (a fault on a real kernel, DERIVED): KernelBug stays.
    (5.5+ read that page in ``memunmap_pages`` -- ``page_zone(pfn_to_page(pfn_first))`` at
    5.6.4 and in ``pageunmap_range`` at 6.5.0 -- which the project's memunmap_pages span step,
    owned by the spans work of issue 10, does not do yet: only 5.3 is pinned here.)"""
    m = Machine.from_iomem(L3, kernel=kernel)
    ns = m.regions[0].create_namespace(mode="fsdax", align=GiB)
    assert ns.enabled and ns.size == 0 and ns.pgmap is not None
    with pytest.raises(KernelBug):
        ns.destroy()


# ------------------------------------------------------------------ R14: vmemmap_shift (5.15 -> 5.17)
@pytest.mark.parametrize("kernel", ["5.15", "5.17", "5.18"])
def test_r14_devdax_vmemmap_shift(kernel):
    m = Machine.from_iomem(L2, kernel=kernel)
    r = m.regions[0]
    n2, d2 = memmap_delta(m, lambda: r.create_namespace(size=GiB, mode="devdax", map="mem"))
    mg = Machine.from_iomem(L2, kernel=kernel)
    rg = mg.regions[0]
    rg.create_namespace(size=GiB, mode="raw")                         # N2g starts at 9 GiB
    n2g, d2g = memmap_delta(mg, lambda: rg.create_namespace(size=2 * GiB, mode="devdax", map="mem", align=GiB))
    on = kernel != "5.15"
    # order_base_2(align / 4 KiB): 2 MiB -> 9, 1 GiB -> 18
    assert (n2.pgmap.vmemmap_shift, n2g.pgmap.vmemmap_shift) == ((9, 18) if on else (0, 0))
    # no saving before 5.19: one RAM PMD per section of the whole pgmap range
    assert d2["memmap_ram_bytes"] == GiB // SECTION * 2 * MiB == 16777216
    assert d2g["memmap_ram_bytes"] == 2 * GiB // SECTION * 2 * MiB == 33554432
    assert (n2g.dataoff, n2g.size) == (GiB, GiB)
    fs = r.create_namespace(size=GiB, mode="fsdax", map="mem")         # fsdax never sets it
    assert fs.pgmap.vmemmap_shift == 0


@pytest.mark.parametrize("kernel", ["5.15", "5.17"])
def test_r14_memremap_vmemmap_shift_api(kernel):
    m = Machine.from_iomem(L2, kernel=kernel)
    if kernel == "5.15":
        with pytest.raises(ValueError, match="5.17.*5.15"):
            m.memremap_pages(0x2_0000_0000, SECTION, type="devdax", vmemmap_shift=9)
        assert m.pgmaps == []
    else:
        pg = m.memremap_pages(0x2_0000_0000, SECTION, type="devdax", vmemmap_shift=9)
        assert pg.vmemmap_shift == 9 and pg.to_dict()["vmemmap_shift"] == 9
    for bad in (-1, 64):
        with pytest.raises(ValueError):
            m.memremap_pages(0x2_4000_0000, SECTION, type="devdax", vmemmap_shift=bad)
    with pytest.raises(TypeError):
        m.memremap_pages(0x2_4000_0000, SECTION, type="devdax", vmemmap_shift="9")


# ------------------------------------------------------------------ R18/R20: 128-byte reservation
@pytest.mark.parametrize("kernel,psz", [("6.0", 64), ("6.1", 128), ("6.1.5", 128), ("6.1.10", 128),
                                        ("6.1.11", 128), ("6.1.12", 64), ("6.1.20", 64), ("6.2", 64)])
def test_r18_r20_n1(kernel, psz):
    m = Machine.from_iomem(L1, kernel=kernel)
    ns, d = memmap_delta(m, lambda: m.regions[0].create_namespace(size=GiB))
    want = nd_pfn_init(N1_START, GiB, 2 * MiB, psz=psz)
    assert (ns.dataoff, ns.npfns, ns.size) == (want["dataoff"], want["npfns"], want["usable"])
    assert want["dataoff"] == (34 * MiB if psz == 128 else 18 * MiB)
    assert ns.info_block().page_struct_size == psz
    # the memmap placement does not change: 7 whole sections in the altmap, section 64 early
    # (boot memmap reused), section 72's 64 MiB in RAM base pages
    assert d["pmds_altmap"] == 7 and d["base_pages_ram"] == 64 * MiB // 4096 * S // 4096
    assert ns.pgmap.altmap.free == (want["dataoff"] - 8 * KiB) // 4096


@pytest.mark.parametrize("booted", ["5.2", "5.3", "6.0", "6.1.12", "6.8"])
def test_r18_block_is_valid_everywhere_and_keeps_its_loss(booted):
    """Evidence §1.1 R18: a 6.1.5 block validates on every later and earlier release (128 >= S)
    except 5.2, whose section-expanded range mixes with RAM (§5.2 N1 table); the loss stays."""
    m = Machine.from_iomem(L1, kernel="6.1.5")
    ns = m.regions[0].create_namespace(size=GiB)
    m2 = m.reboot(kernel=booted)
    (ns2,) = m2.regions[0].namespaces
    if booted == "5.2":
        assert not ns2.enabled and ns2.error[0] == errno.ENXIO
        return
    assert ns2.enabled and ns2.size == ns.size == 1038090240 and ns2.info_block().page_struct_size == 128


def test_r18_map_mem_records_128_and_loses_nothing():
    m = Machine.from_iomem(L2, kernel="6.1.5")
    ns = m.regions[0].create_namespace(size=GiB, map="mem")
    want = nd_pfn_init(0x2_0000_0000, GiB, 2 * MiB, pmem=False)
    assert ns.size == want["usable"] and ns.info_block().page_struct_size == 128


# ------------------------------------------------------------------ §5.1 bad input
@pytest.mark.parametrize("kernel", ["5.2", "5.3", "5.4", "5.7", "6.1.5", "6.6", "6.12"])
def test_bad_input_leaves_the_region_unchanged(kernel):
    """§5.1: misaligned start, size not a multiple of the region align, zero capacity, and bad
    arguments: KernelError with the release's errno (or ValueError/TypeError for malformed
    arguments), available_size, labels and media unchanged."""
    cases = []
    m = Machine.from_iomem(L5, kernel=kernel)
    cases.append((m, dict(size=GiB), errno.ENXIO))                 # misaligned start (5.3+), 5.2 pads
    m3 = Machine.from_iomem(L3, kernel=kernel)
    cases.append((m3, dict(mode="devdax", align=GiB), errno.ENXIO))  # zero capacity (5.2, 6.6+)
    m2 = Machine.from_iomem(L2, kernel=kernel)
    cases.append((m2, dict(size=GiB + 2 * MiB), errno.EINVAL))     # not a multiple of 16 MiB (5.7+)
    cases.append((m2, dict(size=GiB, align=16 * MiB), errno.EINVAL))
    cases.append((m2, dict(size=64 * GiB), errno.ENOSPC))
    for mach, kw, err in cases:
        r = mach.regions[0]
        snap, avail = mach.snapshot(), r.available_size
        try:
            ns = r.create_namespace(**kw)
        except KernelError as e:
            assert e.errno == err, (kw, e)
            assert mach.snapshot() == snap and r.available_size == avail
        else:      # the releases that accept it
            assert ns.enabled, kw
    for bad, exc in ((dict(size=0), ValueError), (dict(size=-4096), ValueError), (dict(size="1G"), TypeError),
                     (dict(mode="bogus"), ValueError), (dict(align=-1), ValueError)):
        r = m2.regions[0]
        snap = m2.snapshot()
        with pytest.raises(exc):
            r.create_namespace(**bad)
        assert m2.snapshot() == snap


def test_info_block_of_raw_and_foreign_blocks_is_none():
    m = Machine.from_iomem(L2, kernel="6.8")
    r = m.regions[0]
    raw = r.create_namespace(size=64 * MiB, mode="raw")
    assert raw.info_block() is None
    ns = r.create_namespace(size=64 * MiB, mode="devdax")
    sb = ns.info_block()
    assert sb.signature == DAX_SIG and sb.parent_uuid == ns.uuid and sb.npfns == ns.npfns
    data = bytearray(media_block(m, ns))
    data[300] ^= 1                                         # checksum no longer matches
    r.media.write(ns.offset + 4096, bytes(data))
    assert ns.info_block() is None


@pytest.mark.parametrize("booted", ["5.3", "5.4", "6.12"])
@pytest.mark.parametrize("field,value,check", [("page_size", 64 * KiB, "page size mismatch 65536"),
                                               ("page_struct_size", 40, "struct page size mismatch 40")])
def test_r2_checks_9a_9b_on_crafted_blocks(booted, field, value, check):
    """R2 9a/9b (5.3.0 -> 5.4.0): a PMEM-mode 1.4 block with a page size above 4 KiB (a 64 KiB
    page kernel) or a struct page size below 64 is refused with -EOPNOTSUPP from 5.4 (unbound);
    5.3 does not read the fields.  (S is 64 on every modelled kernel, so only a crafted block
    reaches them.)"""
    m = Machine.from_iomem(L2, kernel="5.4")
    ns = m.regions[0].create_namespace(size=GiB)
    sb = InfoBlock.unpack(media_block(m, ns))
    m.regions[0].media.write(ns.offset + 4096, sb.copy(**{field: value}).pack())
    (ns2,) = m.reboot(kernel=booted).regions[0].namespaces
    if booted == "5.3":
        assert ns2.enabled and ns2.mode == "fsdax" and ns2.size == ns.size
    else:
        assert not ns2.enabled and ns2.error == (errno.EOPNOTSUPP, f"nd_pmem pfn0.0: init failed, {check}")
