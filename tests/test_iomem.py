"""Tests for sparsemem.iomem: the kernel/resource.c tree, /proc/iomem and e820 parsing.

Spec: api.md "Machine" (from_iomem, iomem_text, sparsemem.iomem.parse) and "Errors";
sparse-hotplug.md §8.1 (register_memory_resource); memremap-nvdimm.md §3.1 (region_intersects).
Real layouts come from tests/data (tests/helpers.py finds them).
"""

from __future__ import annotations

import copy
import errno
import pickle
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from helpers import SECTION, GiB, MiB, all_layouts, all_observed, layout
from sparsemem.errors import KernelError
from sparsemem.iomem import (
    E820_TYPE_PMEM,
    E820_TYPE_PRAM,
    E820_TYPE_RAM,
    E820_TYPE_RESERVED,
    IORES_DESC_NONE,
    IORES_DESC_PERSISTENT_MEMORY,
    IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    IORESOURCE_BUSY,
    IORESOURCE_MEM,
    IORESOURCE_SYSRAM,
    IORESOURCE_SYSTEM_RAM,
    REGION_DISJOINT,
    REGION_INTERSECTS,
    REGION_MIXED,
    E820Entry,
    Resource,
    ResourceTree,
    e820__update_table,
    parse,
    parse_file,
)

LAYOUTS = all_layouts()
OBSERVED = all_observed()


def layout_lines(path: Path) -> list[str]:
    return [
        ln.rstrip()
        for ln in path.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]


EINJ = "jiaqiyan@google.com"


# --------------------------------------------------------------------------------------------
# every data file parses (tests/data/layouts and tests/data/observed)


@pytest.mark.parametrize("path", LAYOUTS + OBSERVED, ids=lambda p: p.name[:60])
def test_every_shared_file_parses(path):
    parsed = parse_file(path)
    parsed.check_invariants()
    assert parsed.source and parsed.source.startswith("https://")
    if path in OBSERVED:
        assert parsed.format is None and len(parsed) == 0
        assert any("unaligned hotplug range" in o for o in parsed.observations)
    else:
        assert parsed.format in ("iomem", "e820")
        assert len(parsed) > 0


@pytest.mark.parametrize(
    "path",
    [p for p in LAYOUTS if "BIOS-e820" not in p.read_text() and "user:" not in p.read_text()],
    ids=lambda p: p.name[:60],
)
def test_iomem_dump_round_trips(path):
    parsed = parse_file(path)
    assert parsed.format == "iomem"
    want = layout_lines(path)
    got = parsed.text().splitlines()
    if EINJ in path.name:
        # odd indentation and elided parents: every line normalises to top level
        assert got == [ln.strip() for ln in want]
        assert all(d == 0 for d, *_ in parsed.snapshot())
    else:
        assert got == want
    assert parse(parsed.text()) == parsed


def test_observations_and_source():
    p = parse("# source: https://example.org/x\n# a comment\n# observed: hello world\n"
              "\n100000000-1ffffffff : System RAM\n# observed: [  1.0] second\n")
    assert p.source == "https://example.org/x"
    assert p.observations == ["hello world", "[  1.0] second"]
    assert p.snapshot() == ((0, 0x100000000, 0x1FFFFFFFF, "System RAM"),)
    assert p.tree is p


def test_ndctl_76_observations():
    p = parse_file(layout("ndctl_issues_76"))
    assert len(p.observations) == 7
    assert "Conflicting mapping in same section" in p.observations[5]
    # the excerpt stops below 4 GiB
    assert max(r.end for r in p.top_level()) < 4 * GiB


# --------------------------------------------------------------------------------------------
# flags given to parsed names


def test_parsed_flags_follow_the_registering_code():
    p = parse_file(layout("viggo"))
    ram = p.find(0x100000, 0x9FFFFFFF, "System RAM")
    assert ram.flags == IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY and ram.desc == IORES_DESC_NONE
    assert [c.name for c in ram.children] == ["Kernel code", "Kernel data", "Kernel bss"]
    pmem = p.find(0xA0000000, 0xAFFFFFFF)
    assert pmem.name == "Persistent Memory (legacy)"
    assert not pmem.busy and pmem.desc == IORES_DESC_PERSISTENT_MEMORY_LEGACY
    assert pmem.children[0].name == "System RAM" and pmem.children[0].busy
    assert not p.find(0xC0000000, 0xFEBFFFFF).busy  # PCI window
    assert p.find(0, 0xFFF).busy  # Reserved below 1 MiB (do_mark_busy)
    assert not p.find(0xBFFE0000, 0xBFFFFFFF).busy  # Reserved above 1 MiB

    damo = parse_file(layout("damo"))
    dax = damo.find(0x150000000, 0x33FFFFFFF, "dax0.0")
    assert not dax.busy  # kmem: System RAM (kmem) was requested inside it
    ns = damo.find(0x140000000, 0x1481FFFFF)
    assert ns.busy and ns.desc == IORES_DESC_PERSISTENT_MEMORY


# --------------------------------------------------------------------------------------------
# e820


def test_user_defined_map_type12_pieces_stay_separate():
    p = parse_file(layout("pmem.github.io"))
    assert p.format == "e820" and list(p.e820_tables) == ["user"]
    assert [(r.start, r.end, r.name) for r in p.top_level()] == [
        (0x100000, 0xBFFFFFFF, "System RAM"),
        (0xC0000000, 0xDFFFDFFF, "Persistent Memory (legacy)"),
        (0xDFFFE000, 0xDFFFFFFF, "Persistent Memory (legacy)"),
        (0xE0000000, 0xFEFFBFFF, "Persistent Memory (legacy)"),
        (0xFEFFC000, 0xFEFFFFFF, "Persistent Memory (legacy)"),
        (0xFF000000, 0xFFFBFFFF, "Persistent Memory (legacy)"),
        (0xFFFC0000, 0xFFFFFFFF, "Persistent Memory (legacy)"),
        (0x100000000, 0x1BFFFFFFF, "Persistent Memory (legacy)"),
        (0x1C0000000, 0x21FFFFFFF, "System RAM"),
    ]
    for r in p.top_level():
        if r.name.startswith("Persistent"):
            assert r.flags == IORESOURCE_MEM and r.desc == IORES_DESC_PERSISTENT_MEMORY_LEGACY
        else:
            assert r.flags == IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY


def test_bios_e820_map():
    p = parse_file(layout("nvdimm.wiki"))
    assert p.format == "e820"
    assert p.text().splitlines() == [
        "00000000-0009fbff : System RAM",
        "0009fc00-0009ffff : Reserved",
        "000f0000-000fffff : Reserved",
        "00100000-bffdffff : System RAM",
        "bffe0000-bfffffff : Reserved",
        "feffc000-feffffff : Reserved",
        "fffc0000-ffffffff : Reserved",
        "100000000-53fffffff : System RAM",
    ]
    assert p.find(0x9FC00, 0x9FFFF).busy  # below 1 MiB
    assert not p.find(0xBFFE0000, 0xBFFFFFFF).busy

    one = parse_file(layout("swarm07"))
    (r,) = one.top_level()
    assert (r.start, r.end, r.name, r.desc) == (
        0x880000000, 0x27FFFFFFFF, "Persistent Memory", IORES_DESC_PERSISTENT_MEMORY)


def test_user_map_wins_over_bios_map():
    bios = (
        "[    0.000000] e820: BIOS-provided physical RAM map:\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\n"
        "[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x000000013fffffff] usable\n"
    )
    user = (
        "[    0.000000] e820: user-defined physical RAM map:\n"
        "[    0.000000] user: [mem 0x0000000000000000-0x000000000009fbff] usable\n"
        "[    0.000000] user: [mem 0x0000000000100000-0x00000000ffffffff] usable\n"
        "[    0.000000] user: [mem 0x0000000100000000-0x000000013fffffff] persistent (type 12)\n"
    )
    p = parse(bios + user)
    assert set(p.e820_tables) == {"BIOS-e820", "user"}
    assert [(r.start, r.end, r.name) for r in p.top_level()] == [
        (0, 0x9FBFF, "System RAM"),
        (0x100000, 0xFFFFFFFF, "System RAM"),
        (0x100000000, 0x13FFFFFFF, "Persistent Memory (legacy)"),
    ]
    # the same with the user lines first: the kernel still used the user map
    assert parse(user + bios) == p


def test_e820_sanitize_merges_like_the_kernel():
    E = E820Entry
    table = [
        E(0x100000000, GiB, E820_TYPE_RAM),
        E(0x0, 0x9F000, E820_TYPE_RAM),  # unsorted input
        E(0x140000000, GiB, E820_TYPE_RAM),  # adjacent usable: merged
        E(0x180000000, GiB, E820_TYPE_PMEM),
        E(0x1C0000000, GiB, E820_TYPE_PMEM),  # adjacent type 7: merged
        E(0x200000000, GiB, E820_TYPE_PRAM),
        E(0x240000000, GiB, E820_TYPE_PRAM),  # adjacent type 12: kept apart
        E(0x280000000, 2 * GiB, E820_TYPE_RAM),
        E(0x2C0000000, 4096, E820_TYPE_RESERVED),  # overlap: the higher type wins
        E(0x400000000, 0, E820_TYPE_RAM),  # empty: dropped
    ]
    assert e820__update_table(table) == [
        E(0x0, 0x9F000, E820_TYPE_RAM),
        E(0x100000000, 2 * GiB, E820_TYPE_RAM),
        E(0x180000000, 2 * GiB, E820_TYPE_PMEM),
        E(0x200000000, GiB, E820_TYPE_PRAM),
        E(0x240000000, GiB, E820_TYPE_PRAM),
        E(0x280000000, GiB, E820_TYPE_RAM),
        E(0x2C0000000, 4096, E820_TYPE_RESERVED),
        E(0x2C0001000, GiB - 4096, E820_TYPE_RAM),
    ]
    text = "".join(f"BIOS-e820: {e}\n" for e in table if e.size)
    p = parse(text)
    assert [r.name for r in p.top_level()] == [
        "System RAM", "System RAM", "Persistent Memory", "Persistent Memory (legacy)",
        "Persistent Memory (legacy)", "System RAM", "Reserved", "System RAM",
    ]


def test_e820_type_words():
    text = "\n".join(
        f"BIOS-e820: [mem {a:#018x}-{a + 0xFFF:#018x}] {w}"
        for a, w in [
            (0x1000000, "usable"), (0x2000000, "reserved"), (0x3000000, "ACPI data"),
            (0x4000000, "ACPI NVS"), (0x5000000, "unusable"), (0x6000000, "persistent (type 7)"),
            (0x7000000, "persistent (type 12)"), (0x8000000, "type 20"),
            (0x9000000, "soft reserved"),
        ]
    )
    assert [r.name for r in parse(text).top_level()] == [
        "System RAM", "Reserved", "ACPI Tables", "ACPI Non-volatile Storage", "Unusable memory",
        "Persistent Memory", "Persistent Memory (legacy)", "Unknown E820 type", "Soft Reserved",
    ]


def test_iomem_lines_win_over_e820_lines():
    p = parse("BIOS-e820: [mem 0x0000000100000000-0x00000001ffffffff] usable\n"
              "100000000-17fffffff : System RAM\n")
    assert p.format == "iomem"
    assert p.snapshot() == ((0, 0x100000000, 0x17FFFFFFF, "System RAM"),)
    assert p.e820_tables["BIOS-e820"] == [E820Entry(0x100000000, 4 * GiB, E820_TYPE_RAM)]


# --------------------------------------------------------------------------------------------
# region_intersects (memremap-nvdimm.md §3.1)


def test_region_intersects_on_a_real_layout():
    # 100000000-1ffffffff RAM, 200000000-303ffffff legacy pmem, 304000000-43fffffff RAM
    p = parse_file(layout("156092354368"))
    assert p.region_intersects_ram(0x100000000, SECTION) == REGION_INTERSECTS
    assert p.region_intersects_ram(0x200000000, SECTION) == REGION_DISJOINT
    # the section that legacy pmem ends in and RAM completes
    assert p.region_intersects_ram(0x300000000, SECTION) == REGION_MIXED
    # a top-level Persistent Memory resource next to RAM produces MIXED
    assert p.region_intersects_ram(0x1FFFFF000, 0x2000) == REGION_MIXED
    # holes are ignored: RAM plus a hole is still INTERSECTS, a hole alone DISJOINT
    assert p.region_intersects_ram(0xF0000000, 0x20000000) == REGION_INTERSECTS
    assert p.region_intersects_ram(0x1000, 0x1000) == REGION_DISJOINT
    # with a desc: only Persistent Memory (legacy) is the type
    assert p.region_intersects(0x300000000, SECTION, IORESOURCE_MEM,
                               IORES_DESC_PERSISTENT_MEMORY_LEGACY) == REGION_MIXED
    assert p.region_intersects(0x200000000, SECTION, IORESOURCE_MEM,
                               IORES_DESC_PERSISTENT_MEMORY_LEGACY) == REGION_INTERSECTS
    assert ResourceTree.region_name(REGION_MIXED) == "REGION_MIXED"


def test_region_intersects_looks_only_at_top_level():
    p = parse_file(layout("viggo"))
    # a System RAM child (kmem) of a top-level legacy pmem range does not count
    assert p.region_intersects_ram(0xA0000000, SECTION) == REGION_DISJOINT
    # but walk_system_ram_range walks the whole tree and finds it
    assert p.walk_system_ram_range(0xA0000, 0x10000) == [(0xA0000, 0x8000)]
    # the Kernel code child sits inside RAM: INTERSECTS (one top-level match)
    assert p.region_intersects_ram(0x1000000, MiB) == REGION_INTERSECTS


def test_region_intersects_other_only_is_disjoint():
    t = ResourceTree()
    t.insert(0x100000000, GiB, "Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY)
    assert t.region_intersects_ram(0x100000000, GiB) == REGION_DISJOINT
    t.request(0x140000000, GiB, "System RAM", IORESOURCE_SYSTEM_RAM)
    assert t.region_intersects_ram(0x138000000, 2 * SECTION) == REGION_MIXED
    assert t.region_intersects_ram(0x140000000, SECTION) == REGION_INTERSECTS


# --------------------------------------------------------------------------------------------
# walk_system_ram_range


def test_walk_system_ram_range():
    p = parse_file(layout("viggo"))
    # 00001000-0009fbff: the partial last page is dropped
    assert p.walk_system_ram_range(0, 0x100) == [(0x1, 0x9E)]
    # RAM nested in RAM (Kernel code in System RAM) is not reported twice
    assert p.walk_system_ram_range(0x100, 0x1000) == [(0x100, 0x1000)]
    assert p.page_is_ram(0x100) and not p.page_is_ram(0xA8000)
    assert p.walk_system_ram_range(0, 0) == []
    damo = parse_file(layout("damo"))
    assert damo.walk_system_ram_range(0x140000, 0x200000) == [(0x150000, 0x1F0000)]
    assert damo.walk_system_ram_res(0, 1 << 40) == []  # top level only: no RAM there


# --------------------------------------------------------------------------------------------
# request / insert / release


def _tree() -> ResourceTree:
    t = ResourceTree()
    t.insert(0x100000000, 4 * GiB, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)
    t.insert(0x200000000, 4 * GiB, "Persistent Memory", IORESOURCE_MEM, IORES_DESC_PERSISTENT_MEMORY)
    return t


@pytest.mark.parametrize(
    "start,size,conflict",
    [
        (0x100000000, SECTION, "[mem 0x100000000-0x1ffffffff]"),  # inside busy System RAM
        (0x1F8000000, 2 * SECTION, "[mem 0x100000000-0x1ffffffff]"),  # straddles RAM end
        (0x2F8000000, 2 * SECTION, "[mem 0x200000000-0x2ffffffff]"),  # straddles pmem end
        (0x0, 8 * GiB, "[mem 0x100000000-0x1ffffffff]"),  # covers both
    ],
)
def test_request_conflict_is_ebusy_and_changes_nothing(start, size, conflict):
    t = _tree()
    before = copy.deepcopy(t)
    with pytest.raises(KernelError) as ei:
        t.request(start, size, "System RAM", IORESOURCE_SYSTEM_RAM)
    assert ei.value.errno == errno.EBUSY
    assert conflict in str(ei.value)
    assert f"[mem {start:#010x}-{start + size - 1:#010x}]" in str(ei.value)
    assert t == before and t.text() == before.text()
    t.check_invariants()


def test_request_descends_into_non_busy_resources():
    t = _tree()
    ns = t.request(0x200000000, GiB, "namespace0.0")
    assert ns.parent.name == "Persistent Memory"
    assert ns.flags == IORESOURCE_MEM | IORESOURCE_BUSY
    assert ns.desc == IORES_DESC_PERSISTENT_MEMORY  # __request_region copies the parent's
    ram = t.request(0x300000000, GiB, "System RAM", IORESOURCE_SYSTEM_RAM)
    assert ram.parent is t.root and ram.flags == IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY
    # inside the busy namespace: refused
    with pytest.raises(KernelError) as ei:
        t.request(0x200000000, SECTION, "System RAM", IORESOURCE_SYSTEM_RAM)
    assert ei.value.errno == errno.EBUSY and "namespace0.0" in str(ei.value)
    # below System RAM explicitly (a child of a busy resource is allowed when asked for)
    kc = t.request(0x101000000, MiB, "Kernel code", parent=t.find(0x100000000, 0x1FFFFFFFF))
    assert kc.flags & IORESOURCE_SYSRAM  # resource_ext_type(parent)
    assert t.text().splitlines() == [
        "100000000-1ffffffff : System RAM",
        "  101000000-1010fffff : Kernel code",
        "200000000-2ffffffff : Persistent Memory",
        "  200000000-23fffffff : namespace0.0",
        "300000000-33fffffff : System RAM",
    ]
    t.check_invariants()


def test_request_argument_errors():
    t = _tree()
    with pytest.raises(TypeError):
        t.request("0x1000", 4096, "x")
    with pytest.raises(ValueError):
        t.request(-4096, 4096, "x")
    with pytest.raises(ValueError):
        t.request((1 << 64) - 4096, 8192, "x")
    with pytest.raises(KernelError) as ei:
        t.request(0x1000, 0, "x")
    assert ei.value.errno == errno.EBUSY
    with pytest.raises(ValueError):
        t.request(0x1000, 4096, "x", parent=Resource(0, 0xFFFF, "elsewhere"))
    with pytest.raises(ValueError):
        t.region_intersects_ram(0x1000, 0)


def test_insert_swallows_contained_resources():
    t = ResourceTree()
    a = t.insert(0x100000000, SECTION, "namespace0.0", IORESOURCE_MEM | IORESOURCE_BUSY)
    b = t.insert(0x110000000, SECTION, "namespace0.1", IORESOURCE_MEM | IORESOURCE_BUSY)
    c = t.insert(0x300000000, SECTION, "elsewhere")
    region = t.insert(0x100000000, 4 * GiB, "Persistent Memory", desc=IORES_DESC_PERSISTENT_MEMORY)
    assert region.children == [a, b] and a.parent is region and b.parent is region
    assert t.top_level() == [region, c]
    # an identical range goes above the existing one
    same = t.insert(0x300000000, SECTION, "Reserved")
    assert same.children == [c]
    # a resource inside an existing one goes below it
    inner = t.insert(0x100001000, 0x1000, "label")
    assert inner.parent is a
    t.check_invariants()
    assert t.snapshot() == (
        (0, 0x100000000, 0x1FFFFFFFF, "Persistent Memory"),
        (1, 0x100000000, 0x107FFFFFF, "namespace0.0"),
        (2, 0x100001000, 0x100001FFF, "label"),
        (1, 0x110000000, 0x117FFFFFF, "namespace0.1"),
        (0, 0x300000000, 0x307FFFFFF, "Reserved"),
        (1, 0x300000000, 0x307FFFFFF, "elsewhere"),
    )


def test_insert_partial_overlap_is_ebusy_and_changes_nothing():
    t = _tree()
    before = copy.deepcopy(t)
    with pytest.raises(KernelError) as ei:
        t.insert(0x180000000, 4 * GiB, "straddler")
    assert ei.value.errno == errno.EBUSY
    assert "straddler [mem 0x180000000-0x27fffffff]" in str(ei.value)
    assert "[mem 0x100000000-0x1ffffffff]" in str(ei.value)
    assert t == before


def test_release_and_remove_resource():
    t = _tree()
    pmem = t.find(0x200000000, 0x2FFFFFFFF)
    ns = t.request(0x200000000, GiB, "namespace0.0")
    t.request(0x200000000, SECTION, "pfn0.0", parent=ns)
    t.release(ns)
    assert ns.parent is None and pmem.children == []
    assert [r.name for r in t] == ["System RAM", "Persistent Memory"]
    with pytest.raises(KernelError) as ei:
        t.release(ns)
    assert ei.value.errno == errno.EINVAL
    # remove_resource: the children move up
    ns2 = t.request(0x200000000, GiB, "namespace0.0")
    t.request(0x200000000, SECTION, "pfn0.0", parent=ns2)
    t.remove_resource(ns2)
    assert [(d, r.name) for d, r in t.walk()] == [
        (0, "System RAM"), (0, "Persistent Memory"), (1, "pfn0.0")]
    t.check_invariants()


def test_release_region():
    t = _tree()
    t.request(0x280000000, GiB, "dax0.0")
    t.release_region(0x280000000, GiB)  # found inside the non-busy pmem
    assert len(t) == 2 and not t.dmesg
    t.release_region(0x280000000, GiB)
    assert t.dmesg == ["Trying to free nonexistent resource <0000000280000000-00000002bfffffff>"]


def test_release_mem_region_adjustable():
    t = _tree()
    t.release_mem_region_adjustable(0x140000000, SECTION)  # split in two
    assert [(r.start, r.end) for r in t.top_level()][:2] == [
        (0x100000000, 0x13FFFFFFF), (0x148000000, 0x1FFFFFFFF)]
    t.release_mem_region_adjustable(0x100000000, SECTION)  # trim the head
    t.release_mem_region_adjustable(0x1F8000000, SECTION)  # trim the tail
    t.release_mem_region_adjustable(0x148000000, 0x1F8000000 - 0x148000000)  # whole entry
    assert [(r.start, r.end, r.name) for r in t.top_level()] == [
        (0x108000000, 0x13FFFFFFF, "System RAM"), (0x200000000, 0x2FFFFFFFF, "Persistent Memory")]
    with pytest.raises(KernelError) as ei:
        t.release_mem_region_adjustable(0x400000000, SECTION)
    assert ei.value.errno == errno.EINVAL
    t.release_mem_region_adjustable(0x200000000, SECTION)  # not SYSRAM: left to its owner
    assert len(t) == 2
    t.check_invariants()


def test_adjust_resource():
    t = _tree()
    ram = t.top_level()[0]
    with pytest.raises(KernelError) as ei:
        t.adjust_resource(ram, 0x100000000, 5 * GiB)  # would run into pmem
    assert ei.value.errno == errno.EBUSY
    t.adjust_resource(ram, 0x100000000, 2 * GiB)
    assert ram.end == 0x17FFFFFFF


# --------------------------------------------------------------------------------------------
# rendering


def test_text_width_depth_cap_and_unprivileged_view():
    t = ResourceTree()
    parent = None
    for depth in range(8):
        parent = t.insert(0x1000, 0x1000 - depth, f"level{depth}", parent=parent)
    lines = t.text().splitlines()
    assert lines[0] == "00001000-00001fff : level0"
    assert lines[5] == "          00001000-00001ffa : level5"
    assert lines[7] == "          00001000-00001ff8 : level7"  # indentation stops at 5 levels
    assert t.text(privileged=False).splitlines()[0] == "00000000-00000000 : level0"


def test_unprivileged_read_is_refused_with_advice():
    t = _tree()
    t.request(0x200000000, GiB, "namespace0.0")
    with pytest.raises(ValueError) as ei:
        parse(t.text(privileged=False))
    msg = str(ei.value)
    assert "zero" in msg and "without root" in msg and "sudo cat /proc/iomem" in msg
    with pytest.raises(ValueError, match="sudo cat /proc/iomem"):
        parse("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
              "  00000000-00000000 : Kernel code\n")


# --------------------------------------------------------------------------------------------
# malformed input


@pytest.mark.parametrize(
    "text,lineno,needle",
    [
        ("# source: x\n100000000-1ffffffff : System RAM\nhello world\n", 3, "not a /proc/iomem line"),
        ("\n\n200000000-1ffffffff : System RAM\n", 3, "above end"),
        ("100000000-1ffffffff : System RAM\n  0f0000000-100000fff : Kernel code\n", 2, "not inside"),
        ("100000000-1ffffffff : System RAM\n180000000-2ffffffff : Reserved\n", 2, "overlaps"),
        ("100000000-1ffffffff : A\n  100000000-10fffffff : B\n  108000000-11fffffff : C\n", 3,
         "overlaps"),
        ("10000000000000000-10000000000000001 : too wide\n", 1, "64 bits"),
        ("BIOS-e820: [mem 0x0000000000002000-0x0000000000001fff] usable\n", 1, "above end"),
        ("BIOS-e820: [mem 0x0000000000002000-0x0000000000002fff] bogus\n", 1, "not a /proc/iomem"),
    ],
)
def test_malformed_lines_name_the_line(text, lineno, needle):
    with pytest.raises(ValueError) as ei:
        parse(text)
    msg = str(ei.value)
    assert f"line {lineno}:" in msg and needle in msg
    bad = text.splitlines()[lineno - 1].rstrip()
    assert repr(bad) in msg


def test_parse_file_names_the_file(tmp_path):
    f = tmp_path / "bad.txt"
    f.write_text("100000000-1ffffffff : System RAM\nnonsense\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 2: .*'nonsense'"):
        parse_file(f)
    with pytest.raises(TypeError):
        parse(1234)


def test_leading_indentation_and_orphans():
    p = parse("    100000000-1ffffffff : System RAM\n"
              "      101000000-101ffffff : Kernel code\n"
              "    200000000-2ffffffff : Persistent Memory\n")
    assert p.snapshot() == (
        (0, 0x100000000, 0x1FFFFFFFF, "System RAM"),
        (1, 0x101000000, 0x101FFFFFF, "Kernel code"),
        (0, 0x200000000, 0x2FFFFFFFF, "Persistent Memory"),
    )
    # tabs and wide indentation: a deeper line is a child of the nearest shallower line
    q = parse("100000000-1ffffffff : System RAM\n\t101000000-101ffffff : Kernel code\n"
              "\t\t101000000-1010fffff : deeper\n   102000000-102ffffff : Kernel data\n")
    assert [d for d, *_ in q.snapshot()] == [0, 1, 2, 1]


# --------------------------------------------------------------------------------------------
# copies, equality


def test_deepcopy_pickle_and_equality():
    p = parse_file(layout("lca.pw"))
    for q in (copy.deepcopy(p), pickle.loads(pickle.dumps(p))):
        assert q == p and q.text() == p.text() and q.observations == p.observations
        q.check_invariants()
        q.request(0x880000000, GiB, "System RAM", IORESOURCE_SYSTEM_RAM)
        assert q != p
    assert len(p.snapshot()) == len(p) and p.snapshot()[0] == (0, 0, 0xFFF, "Reserved")


# --------------------------------------------------------------------------------------------
# property: random requests and inserts, then text() -> parse() gives the same tree


_ops = st.lists(
    st.tuples(
        st.sampled_from(["request", "insert", "insert_busy"]),
        st.integers(0, 63),  # start, in 4 KiB pages of a 256 KiB window
        st.integers(1, 32),  # size in pages
    ),
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_random_trees_round_trip_through_text(ops):
    t = ResourceTree()
    for i, (kind, page, npages) in enumerate(ops):
        start, size = 0x100000000 + page * 4096, npages * 4096
        before = t.snapshot()
        try:
            if kind == "request":
                t.request(start, size, f"r{i}")
            else:
                flags = IORESOURCE_MEM | (IORESOURCE_BUSY if kind == "insert_busy" else 0)
                t.insert(start, size, f"i{i}", flags)
        except KernelError as e:
            assert e.errno == errno.EBUSY
            assert t.snapshot() == before
        t.check_invariants()
    assume(all(d <= 5 for d, *_ in t.snapshot()))  # /proc/iomem shows 5 levels of nesting
    again = parse(t.text())
    assert again.snapshot() == t.snapshot()
    assert again.text() == t.text()
