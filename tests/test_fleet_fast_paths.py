"""The shortcuts that make ``sparsemem fleet`` fast (issue #14) give what the general code
gives: each is checked here against the path it replaces (or against the reference core), on
the shipped layouts, on firmware-like perturbations of them (bench/test_bench_fleet.py) and on
random inputs.  The fleet's rows themselves are checked against ``report`` in
tests/test_fleet.py.
"""

from __future__ import annotations

import copy
import importlib.util
import pathlib
import random
from collections import Counter

import numpy as np
import pytest

from sparsemem import Machine, reference
from sparsemem import constants as C
from sparsemem._sparsecore import SectionTable, VmemAltmap
from sparsemem.kernel import kernel_model
from sparsemem.layout import iomem_flags_for_name, parse
from sparsemem.machine import present_spans
from sparsemem.nvdimm import infoblock as IB
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.media import Media
from sparsemem.report import bundled_layouts
from sparsemem.resource import (
    IORES_DESC_NONE,
    IORESOURCE_SYSTEM_RAM,
    MAX_IORES_LEVEL,
    Resource,
    ResourceTree,
    _resource,
)

HERE = pathlib.Path(__file__).resolve().parent
LAYOUTS = sorted((HERE / "data" / "layouts").glob("*.txt")) + [pathlib.Path(p) for p in bundled_layouts()]
PPS = C.PAGES_PER_SECTION
GiB = 1 << 30


def _bench():
    spec = importlib.util.spec_from_file_location("bench_fleet", HERE.parent / "bench" / "test_bench_fleet.py")
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def _texts(n: int = 60) -> list[str]:
    """The shipped layouts and ``n`` perturbed hosts of the benchmark's inventory."""
    bench = _bench()
    bases = bench._bases()
    return [p.read_text(encoding="utf-8", errors="replace") for p in LAYOUTS] + \
        [bench.perturb(bases[i % len(bases)], random.Random(f"fast:{i}")) for i in range(n)]


TEXTS = _texts()


def _parsed():
    for t in TEXTS:
        try:
            yield parse(t)
        except ValueError:
            continue


# ---------------------------------------------------------------------------------------------
# resource tree


def _general_copy(tree: ResourceTree) -> ResourceTree:
    """ResourceTree.copy's general path (deepcopy with the resources in the memo)."""
    saved = type(tree)._copy_plain
    try:
        type(tree)._copy_plain = lambda self: None     # type: ignore[method-assign]
        return tree.copy()
    finally:
        type(tree)._copy_plain = saved                 # type: ignore[method-assign]


def _links(tree: ResourceTree) -> list:
    return [(d, r.start, r.end, r.name, r.flags, r.desc, r.parent.start if r.parent is not None else None,
             type(r).__name__) for d, r in tree.walk()]


def test_plain_copy_is_the_general_copy():
    for tree in _parsed():
        fast, general = tree.copy(), _general_copy(tree)
        assert _links(fast) == _links(general) == _links(tree)
        assert fast.root.parent is None and all(c.parent is fast.root for c in fast.root.children)
        assert {k: v for k, v in vars(fast).items() if k != "root"} == \
            {k: v for k, v in vars(general).items() if k != "root"}
        originals = {id(r) for _, r in tree.walk()} | {id(tree.root)}
        assert not originals & ({id(r) for _, r in fast.walk()} | {id(fast.root)})
        assert fast.dmesg is not tree.dmesg and getattr(fast, "observations", []) is not \
            getattr(tree, "observations", None)


def test_copy_with_an_attribute_of_a_resource_keeps_its_links():
    """A resource with an attribute of its own takes the general path: the attribute is
    deep-copied with the clones made so far in the memo, so a reference to a resource cloned
    before it points at that resource's clone."""
    tree = parse(TEXTS[-1])
    a, b = tree.root.children[0], tree.root.children[-1]
    b.partner = a                                       # type: ignore[attr-defined]
    new = tree.copy()
    na, nb = new.root.children[0], new.root.children[-1]
    assert nb.partner is na and na is not a             # type: ignore[attr-defined]
    assert _links(new) == _links(tree)


def _text_by_walk(tree: ResourceTree, privileged: bool = True) -> str:
    """``ResourceTree.text`` as it was written over ``walk()``."""
    width = 4 if tree.root.end < 0x10000 else 8
    return "".join("%s%0*x-%0*x : %s\n" % ("  " * min(d, MAX_IORES_LEVEL), width, r.start if privileged else 0,
                                           width, r.end if privileged else 0, r.name) for d, r in tree.walk())


def test_text_is_the_walk():
    deep = "".join(f"{'  ' * d}{0x100000 + d:08x}-{0x1fffff - d:08x} : level{d}\n" for d in range(9))
    for tree in list(_parsed()) + [parse(deep)]:
        for privileged in (True, False):
            assert tree.text(privileged) == _text_by_walk(tree, privileged)


def _outcome(f, *args):
    try:
        return f(*args)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)


def test_region_intersects_ram_is_region_intersects():
    rnd = random.Random(3)
    for tree in _parsed():
        tops = tree.root.children
        points = sorted({0, 1 << 64} | {r.start for r in tops} | {r.end + 1 for r in tops})
        for _ in range(40):
            a, b = sorted(rnd.sample(points, 2)) if len(points) > 1 else (0, 1 << 12)
            start = max(0, a + rnd.choice((0, 0, -4096, 4096)))
            size = max(1, min(b - start + rnd.choice((0, 0, -4096, 4096)), (1 << 64) - start))
            assert _outcome(tree.region_intersects_ram, start, size) == \
                _outcome(tree.region_intersects, start, size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE), (start, size)
    t = parse(TEXTS[0])
    for bad in ((-1, 4096), (0, 0), (True, 4096), ((1 << 64) - 1, 2), (0, 1 << 64), (4096, 1.0)):
        assert _outcome(t.region_intersects_ram, *bad) == \
            _outcome(t.region_intersects, *bad, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)


# ---------------------------------------------------------------------------------------------
# parsing


def test_parsed_flags_are_those_of_the_names():
    """``parse`` remembers the flags of a name (by name, below 1 MiB or not, and the parent's
    desc): each resource has what ``iomem_flags_for_name`` gives it, busy bit of a parent of
    System RAM aside."""
    text = ("00000000-00000fff : Reserved\n00001000-0009ffff : System RAM\n000a0000-000bffff : PCI Bus 0000:00\n"
            "00100000-3fffffff : System RAM\n40000000-4fffffff : Reserved\n50000000-5fffffff : Persistent Memory\n"
            "  50000000-57ffffff : namespace0.0\n60000000-6fffffff : Persistent Memory (legacy)\n"
            "  60000000-67ffffff : namespace1.0\n70000000-7fffffff : Soft Reserved\n  70000000-7fffffff : dax0.0\n"
            "    70000000-7fffffff : System RAM (kmem)\n")
    for _ in range(2):                  # the second time from what the first remembered
        tree = parse(text)
        for _d, r in tree.walk():
            flags, desc = iomem_flags_for_name(r.name, r.start, r.parent.desc if r.parent is not tree.root
                                               else IORES_DESC_NONE)
            busy_cleared = any(c.name.startswith("System RAM") for c in r.children)
            assert (r.flags | (flags & C_BUSY if busy_cleared else 0), r.desc) == (flags, desc), r


C_BUSY = 0x80000000


# ---------------------------------------------------------------------------------------------
# boot


@pytest.mark.parametrize("core", ["compiled", "reference"])
@pytest.mark.parametrize("kernel", ["5.2", "5.3", "6.8"])
def test_present_spans_are_the_present_sections(core, kernel):
    """``Machine`` boots without scanning the table: the sections of its RAM ranges are the
    ones ``memory_present`` marked, and the memory blocks count them as before."""
    for text in TEXTS[:24]:
        try:
            m = Machine(kernel, iomem=text, core=core)
        except ValueError:
            continue
        ram = []
        for res in m.iomem.top_level():
            if res.name == "System RAM":
                s, e = (res.start + C.PAGE_SIZE - 1) >> C.PAGE_SHIFT, min((res.end + 1) >> C.PAGE_SHIFT,
                                                                          m.sections.pfn_limit)
                if e > s:
                    ram.append((s, e))
        t = type(m.sections)(46, kernel)
        for s, e in ram:
            t.memory_present(0, s, e)
        spans = present_spans(ram)
        nrs = [n for a, b in spans for n in range(a, b + 1)]
        assert nrs == t.present_section_nrs().tolist()
        want = Counter((np.asarray(nrs, dtype=np.uint64) // np.uint64(m.sections_per_block)).tolist())
        assert dict(m.blocks._boot) == dict(want) and list(m.blocks) == sorted(want)
        assert m.blocks._boot.__class__ is Counter


# ---------------------------------------------------------------------------------------------
# the compiled core against its reference twin


def _both(kernel, ranges):
    out = []
    for T in (SectionTable, reference.SectionTable):
        t = T(46, kernel)
        for s, e in ranges:
            t.memory_present(0, s, e)
        t.sparse_init()
        for s, e in ranges:
            t.subsection_map_init(s, e - s)
        out.append(t)
    return out


def _altmaps(base, reserve, free):
    return VmemAltmap(base, reserve, free), reference.VmemAltmap(base, reserve, free)


@pytest.mark.parametrize("kernel", ["5.2", "5.3", "5.10", "6.8"])
@pytest.mark.parametrize("case", ["fresh", "exhausted", "busy-middle", "unaligned", "twice"])
def test_sparse_add_range_with_an_altmap_is_the_reference(kernel, case):
    """Whole fresh sections backed by an altmap are added in one C loop: the same sections,
    accounting, altmap and error as the reference core's piece by piece."""
    start = 40 * PPS
    nr = 24 * PPS
    c, r = _both(kernel, [(0x100, 16 * PPS)])
    free = {"exhausted": 10 * 512 + 300}.get(case, nr // 60)
    ac, ar = _altmaps(start, 2, free)
    if case == "busy-middle":       # a section in the middle already added (not fresh)
        for t in (c, r):
            t.sparse_add_range(0, start + 7 * PPS, PPS)
    if case == "unaligned":
        start += 512
        ac, ar = _altmaps(start, 2, free)
    results = []
    for t, a in ((c, ac), (r, ar)):
        try:
            t.sparse_add_range(0, start, nr, a)
            if case == "twice":
                t.sparse_add_range(0, start, nr, a)
            results.append(None)
        except Exception as exc:  # noqa: BLE001 - compared below
            results.append((type(exc), getattr(exc, "errno", None), str(exc)))
    assert results[0] == results[1]
    assert c.snapshot() == r.snapshot()
    assert ac._fields() == ar._fields()
    assert c.dmesg == r.dmesg
    assert c._derived_word_errors() == []


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_memmap_init_zone_is_the_reference(kernel):
    """Whole sections get their zone/nid words in one fill; partial ones as before."""
    c, r = _both(kernel, [(0x100, 16 * PPS)])
    rnd = random.Random(kernel)
    for t in (c, r):
        t.sparse_add_range(0, 32 * PPS, 8 * PPS)
    for _ in range(30):
        a = rnd.randrange(0, 48 * PPS)
        n = rnd.choice((PPS, 3 * PPS, rnd.randrange(1, 4 * PPS), 512 * rnd.randrange(1, 200)))
        zone = rnd.randrange(0, 5)
        for t in (c, r):
            t.memmap_init_zone(0, zone, a, n)
        assert c.snapshot() == r.snapshot()
        for pfn in range(0, 48 * PPS, 4096):
            assert (c.page_zonenum(pfn), c.pfn_to_nid(pfn)) == (r.page_zonenum(pfn), r.pfn_to_nid(pfn))
    assert c._derived_word_errors() == []


def test_many_sections_get_their_memmap_blocks():
    """More sections than one allocation chunk of memmap blocks: every one is its own."""
    t = SectionTable(46, "5.3")
    t.memory_present(0, 0x100, 300 * PPS)
    t.sparse_init()
    t.subsection_map_init(0x100, 300 * PPS - 0x100)
    for i in range(300):
        t.memmap_init_zone(0, i % 3, i * PPS, PPS)
    assert [t.page_zonenum(i * PPS + 7) for i in range(300)] == [i % 3 for i in range(300)]
    again = copy.deepcopy(t)
    assert again.snapshot() == t.snapshot()


# ---------------------------------------------------------------------------------------------
# info-blocks and media


def _numpy_fletcher(data: bytes, le: bool = True) -> int:
    words = np.frombuffer(data, dtype="<u4" if le else ">u4").astype(np.uint64)
    n = len(words)
    lo = int(words.sum(dtype=np.uint64)) & 0xFFFFFFFF
    hi = int(words @ np.arange(n, 0, -1, dtype=np.uint64)) & 0xFFFFFFFF
    return (hi << 32) | lo


def test_fletcher_of_a_sparse_block_is_the_dot_product():
    rnd = random.Random(7)
    for _ in range(400):
        n = rnd.choice((4, 8, 252, 256, 260, 1024, 4096, 4096, 8192))
        b = bytearray(n)
        kind = rnd.randrange(4)
        if kind == 0:
            b[:] = rnd.randbytes(n)
        elif kind == 1:
            k = rnd.randrange(0, min(n, 300) + 1)
            b[:k] = rnd.randbytes(k)
        elif kind == 2:
            for _ in range(rnd.randrange(4)):
                b[rnd.randrange(n)] = rnd.randrange(1, 256)
        else:
            b[:min(n, 96)] = b"\xff" * min(n, 96)
        for le in (True, False):
            assert IB.fletcher64(bytes(b), le) == _numpy_fletcher(bytes(b), le)
        if n == IB.INFO_BLOCK_SIZE:
            zeroed = bytes(b[:IB.CHECKSUM_OFFSET]) + bytes(8)
            assert IB.sb_checksum(bytes(b)) == IB.sb_checksum(b) == _numpy_fletcher(zeroed)


@pytest.mark.parametrize("minor", [0, 1, 2, 3, 4])
def test_unpack_and_compat_copies_are_the_checked_ones(minor):
    """``unpack`` builds without re-checking what its struct formats bound, and
    ``nd_pfn_validate``'s copies skip the checks of values that are valid: the same blocks."""
    rnd = random.Random(minor)
    for _ in range(50):
        sb = IB.InfoBlock.new(rnd.choice(IB.SIGNATURES), rnd.randbytes(16), rnd.randbytes(16),
                              dataoff=rnd.randrange(1 << 40), npfns=rnd.randrange(1 << 40),
                              mode=rnd.randrange(3), start_pad=rnd.randrange(1 << 32),
                              end_trunc=rnd.randrange(1 << 32), align=rnd.randrange(1 << 32),
                              version_minor=minor, flags=rnd.randrange(1 << 32))
        raw = sb.pack()
        got = IB.InfoBlock.unpack(raw)
        want = IB.InfoBlock(**{f: getattr(got, f) for f in got.__dataclass_fields__})
        assert got == want and vars(got) == vars(want) and got.pack() == raw
        assert IB._compat_defaults_valid(got) == IB.apply_compat_defaults(got)
        assert IB._copy_valid(got, align=5) == got.copy(align=5)


def test_new_block_bytes_are_new_and_pack():
    model = kernel_model("5.2")
    rnd = random.Random(1)
    for _ in range(50):
        size = rnd.randrange(64, 4096) << 20
        rc, layout, _why = P.compute_layout(model, 0x140000000, size, IB.PFN_MODE_PMEM, 2 << 20)
        assert rc == 0 and layout is not None
        uu, pu = rnd.randbytes(16), rnd.randbytes(16)
        sb, raw = P.new_block_bytes(model, IB.PFN_SIG, uu, pu, layout, IB.PFN_MODE_PMEM, 2 << 20)
        ref = P.new_block(model, IB.PFN_SIG, uu, pu, layout, IB.PFN_MODE_PMEM, 2 << 20)
        assert sb == ref and sb.checksum == ref.compute_checksum()
        assert raw == ref.pack() and sb.checksum == ref.checksum


def test_whole_page_media_access_is_the_general_one():
    rnd = random.Random(2)
    a, b = Media(1 << 20), Media(1 << 20)
    for _ in range(200):
        page = rnd.randrange(0, 255)
        data = rnd.choice((bytes(4096), rnd.randbytes(4096), bytes(100) + rnd.randbytes(3996)))
        a.write(page * 4096, data)                       # the whole-page path
        b.write(page * 4096, data[:1000])                # the general path, in two pieces
        b.write(page * 4096 + 1000, data[1000:])
        assert a.pages == b.pages
        off = rnd.randrange(0, 255) * 4096
        assert a.read(off, 4096) == b.read(off, 4096) == b.read(off, 2048) + b.read(off + 2048, 2048)


def test_a_resource_built_unchecked_is_a_resource():
    r, s = _resource(1, 2, "x", 3, 4), Resource(1, 2, "x", 3, 4)
    assert vars(r) == vars(s) and list(vars(r)) == list(vars(s)) and type(r) is type(s)
