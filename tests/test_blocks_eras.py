"""Memory blocks, online/offline checks and the zone choice across releases (issue 10,
later-eras-hotplug-evidence.md §5 steps 8 and 14), each boundary from both sides and in both
cores:

* 5.4 → 5.5: ``__offline_pages`` counts the busy System RAM of the range first and refuses a
  range with holes (-EINVAL, pr_debug ``... failed due to memory holes``) before the multizone
  test (mm/memory_hotplug.c 5.5.0-rc5; evidence §1 row 5.5, §2 item 3; A7.2);
* 5.6 → 5.7: MMOP numbering (include/linux/memory_hotplug.h 5.6.4: OFFLINE -1, ONLINE_KEEP 0,
  KERNEL 1, MOVABLE 2; 5.7.14: OFFLINE 0, ONLINE 1, KERNEL 2, MOVABLE 3), the four online-type
  words of ``auto_online_blocks`` and auto-online with ``memhp_default_online_type``
  (mm/memory_hotplug.c 5.7.14 ``online_memory_block``); ``pages_correctly_probed`` and the
  ``section_count`` test gone (drivers/base/memory.c 5.7.14) (evidence §1 row 5.7, §4);
* 5.9 → 5.10: ``online_pages`` without the System RAM walk, and the WARN_ON_ONCE range test
  at the top of ``online_pages`` and ``offline_pages`` (mm/memory_hotplug.c 5.10.0; the
  ``offline_pages`` half is not in A7.2); 5.13 (inferred, seen in 5.14.0-rc5): a
  pageblock-aligned start is enough (evidence §1 rows 5.10, 5.13);
* 5.14 → 5.15: ``memory_hotplug.online_policy=auto-movable`` (``auto_movable_zone_for_pfn``,
  mm/memory_hotplug.c 5.15.16; A7.3, evidence §1 row 5.15);
* 5.17 → 5.18: the memory block stores its zone (drivers/base/memory.c 5.18.12; A7.1, A7.2,
  A7.4, evidence §1 row 5.18).

The expected numbers are worked out here from the layouts written in the tests (page counts,
addresses), not read from the package.  ``dyndbg=True`` makes the pr_debug lines visible, so a
"no line" expectation is not vacuous.
"""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelBug, KernelError, Machine
from sparsemem import hotplug as H
from sparsemem.kernel import kernel_model
from sparsemem.memory_block import create_memory_block_devices, device_online, link_mem_sections
from sparsemem.resource import IORESOURCE_BUSY, IORESOURCE_SYSTEM_RAM

CORES = ("compiled", "reference")
HOT = 0x180000000            # 6 GiB: block 48, above the RAM of every layout here
BLK = 0x8000000              # 128 MiB
SEC = 0x8000                 # pages per section (and per 128 MiB block)
CUT = "------------[ cut here ]------------"

#: a small VM: RAM from 4 KiB to 3 GiB with the usual holes, and 4-5 GiB
VM = ("00000000-00000fff : Reserved\n"
      "00001000-0009fbff : System RAM\n"
      "0009fc00-0009ffff : Reserved\n"
      "000f0000-000fffff : Reserved\n"
      "00100000-bffdffff : System RAM\n"
      "bffe0000-bfffffff : Reserved\n"
      "100000000-13fffffff : System RAM\n")
#: present pages of VM: [1, 0x9f) + [0x100, 0xbffe0) + [0x100000, 0x140000)
VM_PAGES = (0x9f - 1) + (0xbffe0 - 0x100) + 0x40000
#: 1 GiB of RAM from 0: DMA 0x1000 pages, DMA32 0x3f000, no Normal
ONE_GIB = "00000000-3fffffff : System RAM\n"
ONE_GIB_PAGES = 0x40000


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def _new(dmesg: list, before: int) -> list:
    return list(dmesg[before:])


def _warned(lines: list, symbol: str) -> bool:
    """A WARN_ON_ONCE record pair (banner, WARNING line naming mm/memory_hotplug.c and
    ``symbol``), as printk writes it (§5.1)."""
    return any(a == CUT and b.startswith("WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:") and f" {symbol}+" in b
               for a, b in zip(lines, lines[1:]))


def _refused(m, call, err: int) -> list:
    """Run ``call``, expect KernelError(err) and an unchanged snapshot; the new dmesg lines."""
    before, n = m.snapshot(), len(m.dmesg)
    with pytest.raises(KernelError) as ei:
        call()
    assert ei.value.errno == err
    assert m.snapshot() == before
    return _new(m.dmesg, n)


def test_the_rows_set_the_switches():
    """kernel.py ERAS, one row per boundary read (evidence §1)."""
    rows = lambda name, vs: [getattr(kernel_model(v), name) for v in vs]  # noqa: E731
    assert rows("offline_holes_check", ("5.4", "5.5", "6.12")) == [False, True, True]
    assert rows("mmop_numbering", ("5.6", "5.7")) == ["keep", "offline0"]
    assert rows("pages_correctly_probed", ("5.3", "5.6", "5.7")) == [True, True, False]
    assert rows("online_walks_system_ram", ("5.9", "5.10")) == [True, False]
    assert rows("onoffline_alignment", ("5.9", "5.10", "5.12", "5.13", "5.14", "6.12")) == [
        "", "section", "section", "pageblock", "pageblock", "pageblock"]
    assert rows("block_stores_zone", ("5.17", "5.18", "6.12")) == [False, True, True]


# ------------------------------------------------------------------ 5.4 -> 5.5: memory holes

@pytest.mark.parametrize("kernel", ("5.4", "5.5"))
def test_offline_block_with_holes(kernel, core):
    """Block 23 is [0xb8000000, 0xbfffffff]; its last 128 KiB (0xbffe0000-) are e820
    Reserved inside a present section, so its System RAM covers 0x8000 - 0x20 pages.  5.4.0
    isolates and finds the reserved pages unmovable (page dump, EBUSY); 5.5.0-rc5 counts the
    RAM first: EINVAL, ``memory holes``, and no page dump."""
    m = Machine.from_iomem(VM, kernel=kernel, core=core, dyndbg=True)
    lines = _refused(m, lambda: m.offline_memory_block(23), errno.EINVAL if kernel == "5.5" else errno.EBUSY)
    head = "memory offlining [mem 0xb8000000-0xbfffffff] failed due to "
    if kernel == "5.4":
        assert "page dumped because: unmovable page" in lines
        assert lines[-1] == head + "failure to isolate range"
    else:
        assert lines == [head + "memory holes"]


@pytest.mark.parametrize("kernel", ("5.4", "5.5"))
def test_holes_come_before_multizone(kernel, core):
    """Block 0 of VM spans DMA and DMA32 and has holes (0-0xfff, 0x9fc00-0xfffff): 5.4 stops at
    ``multizone range``, 5.5 at ``memory holes`` (the RAM count runs first), both EINVAL."""
    m = Machine.from_iomem(VM, kernel=kernel, core=core, dyndbg=True)
    lines = _refused(m, lambda: m.offline_memory_block(0), errno.EINVAL)
    reason = "memory holes" if kernel == "5.5" else "multizone range"
    assert lines == [f"memory offlining [mem 0x00000000-0x07ffffff] failed due to {reason}"]


@pytest.mark.parametrize("kernel", ("5.4", "5.5"))
def test_offline_without_holes_unchanged(kernel, core):
    """The count equals the range for hot-added memory: offline works on both sides."""
    m = Machine(kernel, core=core, auto_online=True)
    m.add_memory(0, HOT, BLK)
    m.offline_memory_block(48)
    assert m.memory_block(48).state == "offline"


# ------------------------------------------------------------------ 5.6 -> 5.7: numbering, words, probes

@pytest.mark.parametrize("kernel,numbers", (("5.6", (-1, 0, 1, 2)), ("5.7", (0, 1, 2, 3))))
def test_mmop_numbering(kernel, numbers, core):
    """include/linux/memory_hotplug.h: (OFFLINE, ONLINE[_KEEP], ONLINE_KERNEL, ONLINE_MOVABLE).
    A new block starts at the kzalloc 0 (ONLINE_KEEP in 5.6, OFFLINE in 5.7);
    ``memory_subsys_online`` resets it to MMOP_OFFLINE after an online, and a ``state`` write
    stores the word's number."""
    assert tuple(H.mmop(kernel_model(kernel))) == numbers
    offline, online, kern, movable = numbers
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 2 * BLK)
    b48, b49 = m.memory_block(48), m.memory_block(49)
    assert b48.online_type == 0
    m.sysfs["memory48/online"] = "1"
    assert (b48.state, b48.zone, b48.online_type) == ("online", "Normal", offline)
    # a refused state write keeps the word's number (the partial state of Sysfs)
    with pytest.raises(KernelError):
        m.sysfs["memory48/state"] = "online_kernel"
    assert b48.online_type == kern
    with pytest.raises(KernelError):
        m.sysfs["memory48/state"] = "online_movable"
    assert b48.online_type == movable
    # online_pages takes the release's numbers; MMOP_OFFLINE is no online type
    with pytest.raises(ValueError):
        H.online_pages(m, 49 * SEC, SEC, offline, 0)
    assert H.online_pages(m, 49 * SEC, SEC, movable, 0) == SEC
    assert H.zone_for_pfn_range(m, online, 0, 50 * SEC, SEC).name == "Normal"
    assert b49.state == "offline"          # online_pages alone does not change the block


@pytest.mark.parametrize("kernel", ("5.6", "5.7"))
def test_auto_online_words(kernel, core):
    """``Machine(auto_online="online_kernel")`` is ``memhp_default_state=online_kernel``: 5.6.4
    ignores the word (the build default, offline, stays; ``auto_online_blocks`` reads
    ``offline``), 5.7.14 onlines new blocks to the kernel zone.  Writing ``online_movable`` to
    ``auto_online_blocks``: 5.6 EINVAL, 5.7 accepted and the next add goes to Movable."""
    m = Machine(kernel, core=core, auto_online="online_kernel")
    m.add_memory(0, HOT, BLK)
    b48 = m.memory_block(48)
    if kernel == "5.6":
        assert m.sysfs["auto_online_blocks"] == "offline\n"
        assert b48.state == "offline"
        _refused(m, lambda: m.sysfs.write("auto_online_blocks", "online_movable"), errno.EINVAL)
        return
    assert m.sysfs["auto_online_blocks"] == "online_kernel\n"
    assert (b48.state, b48.zone) == ("online", "Normal")
    m.sysfs["auto_online_blocks"] = "online_movable\n"
    assert m.sysfs["auto_online_blocks"] == "online_movable\n"
    m.add_memory(0, HOT + BLK, BLK)
    assert (m.memory_block(49).state, m.memory_block(49).zone) == ("online", "Movable")
    assert b48.online_type == m.memory_block(49).online_type == 0       # reset to MMOP_OFFLINE


@pytest.mark.parametrize("kernel", ("5.6", "5.7"))
@pytest.mark.parametrize("movable_node,word,zone", (
    (False, True, "Normal"), (True, True, "Movable"), (True, "online_kernel", "Normal")))
def test_auto_online_zone(kernel, movable_node, word, zone, core):
    """Auto-online with ``online`` picks the default zone on both sides (Movable only with
    ``movable_node``, §8.5); ``online_kernel`` (5.7 only: 5.6 ignores the word) overrides
    ``movable_node``."""
    m = Machine(kernel, core=core, auto_online=word, movable_node=movable_node)
    m.add_memory(0, HOT, BLK)
    blk = m.memory_block(48)
    if word is not True and kernel == "5.6":
        assert blk.state == "offline"
    else:
        assert (blk.state, blk.zone) == ("online", zone)


@pytest.mark.parametrize("kernel", ("5.6", "5.7"))
def test_pages_correctly_probed_gone(kernel, core):
    """Block 48 exists but ``__remove_pages`` freed its memmap.  5.6.4: ``pages_correctly_probed``
    WARN_ON_ONCEs (first pfn not ``pfn_valid``) and the write is EBUSY, nothing else changes.
    5.7.14 has no check: ``move_pfn_range_to_zone`` writes the struct pages at vmemmap base
    0xffffea0000000000 + 0x180000 * 64 = 0xffffea0006000000, which is unmapped: an oops
    (evidence §4 "5.6→5.7 probed")."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    H.remove_pages(m, None, HOT >> 12, SEC)
    if kernel == "5.6":
        before, n = m.snapshot(), len(m.dmesg)
        with pytest.raises(KernelError) as ei:
            m.sysfs["memory48/state"] = "online"
        assert ei.value.errno == errno.EBUSY
        after = m.snapshot()
        # the failed state change resets online_type to MMOP_OFFLINE (-1): the documented
        # partial state of a state write; everything else is as before
        assert m.memory_block(48).online_type == -1
        assert {k: v for k, v in after.items() if k != "blocks"} == {k: v for k, v in before.items() if k != "blocks"}
        lines = _new(m.dmesg, n)
        assert len(lines) == 2 and lines[0] == CUT and "pages_correctly_probed+" in lines[1]
        return
    n = len(m.dmesg)
    with pytest.raises(KernelBug, match="page fault"):
        m.sysfs["memory48/state"] = "online"
    assert _new(m.dmesg, n) == ["BUG: unable to handle page fault for address: ffffea0006000000"]


@pytest.mark.parametrize("kernel", ("5.6", "5.7"))
def test_section_count_gone(kernel, core):
    """256 MiB blocks; RAM at 4 GiB is one section, so boot block 16 (0x100000000-0x10fffffff)
    has one present section of two.  5.6.4 ``memory_subsys_offline``: section_count 1 != 2,
    EINVAL without a line.  5.7.14 reaches ``offline_pages``, whose RAM count (0x8000 of
    0x10000 pages) gives EINVAL with the ``memory holes`` line (A7.2)."""
    layout = "00100000-bfffffff : System RAM\n100000000-107ffffff : System RAM\n"
    m = Machine.from_iomem(layout, kernel=kernel, core=core, memory_block_size=0x10000000, dyndbg=True)
    assert m.memory_block(16).section_count == 1
    lines = _refused(m, lambda: m.offline_memory_block(16), errno.EINVAL)
    assert lines == ([] if kernel == "5.6" else
                     ["memory offlining [mem 0x100000000-0x10fffffff] failed due to memory holes"])


# ------------------------------------------------------------------ 5.9 -> 5.10 (-> 5.13): online_pages

def _block_without_ram(kernel, core, ram_bytes: int = 0):
    """Block 48 with a memmap and a linked block device but, of System RAM, only its first
    ``ram_bytes`` (what add_memory would have requested)."""
    m = Machine(kernel, core=core, dyndbg=True)
    H.arch_add_memory(m, 0, HOT, BLK)
    create_memory_block_devices(m, HOT, BLK)
    link_mem_sections(m, 0, HOT, BLK)
    if ram_bytes:
        m.iomem.request(HOT, ram_bytes, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY)
    return m


@pytest.mark.parametrize("kernel", ("5.9", "5.10"))
def test_online_without_system_ram(kernel, core):
    """5.9.1 ``online_pages`` walks System RAM: none → EINVAL and the pr_debug
    ``online_pages [mem 0x180000000-0x187ffffff] failed``; 5.10.0 onlines the whole block:
    Normal present grows from 0x40000 (4-5 GiB) by 0x8000."""
    m = _block_without_ram(kernel, core)
    normal = m.zones[0][2]
    assert normal.present_pages == 0x40000
    n = len(m.dmesg)
    ret = device_online(m, m.memory_block(48))
    if kernel == "5.9":
        assert ret == -errno.EINVAL
        assert m.memory_block(48).state == "offline" and normal.present_pages == 0x40000
        assert _new(m.dmesg, n) == ["online_pages [mem 0x180000000-0x187ffffff] failed"]
    else:
        assert ret == 0
        assert m.memory_block(48).state == "online" and normal.present_pages == 0x40000 + SEC
        assert _new(m.dmesg, n) == []


@pytest.mark.parametrize("kernel", ("5.9", "5.10"))
def test_online_counts_ram_pieces_or_all(kernel, core):
    """Half the block is System RAM: 5.9 counts the 0x4000 pages of the walk, 5.10 all 0x8000."""
    m = _block_without_ram(kernel, core, BLK // 2)
    assert device_online(m, m.memory_block(48)) == 0
    assert m.zones[0][2].present_pages == 0x40000 + (0x4000 if kernel == "5.9" else SEC)
    assert m.sections.online_section_nr(48)


# (pfn, nr_pages) -> outcome per release: 5.9 has no test, 5.10-5.12 want section-aligned pfn
# and nr_pages, 5.13 (read at 5.14.0-rc5) a pageblock-aligned (0x200) start and a
# section-aligned end
ALIGN_CASES = {
    (0x180200, 0x7e00): {"5.9": 0x7e00, "5.10": None, "5.12": None, "5.14": 0x7e00},
    (0x180000, 0x4000): {"5.9": 0x4000, "5.10": None, "5.12": None, "5.14": None},
    (0x180000, 0x8000): {"5.9": 0x8000, "5.10": 0x8000, "5.12": 0x8000, "5.14": 0x8000},
}


@pytest.mark.parametrize("kernel", ("5.9", "5.10", "5.12", "5.14"))
@pytest.mark.parametrize("rng", sorted(ALIGN_CASES))
def test_online_pages_range_check(kernel, rng, core):
    """A direct ``online_pages`` of part of added block 48: the pages onlined, or (None) the
    WARN_ON_ONCE + EINVAL of 5.10.0 / 5.14.0-rc5 with nothing changed and no other line."""
    m = Machine(kernel, core=core, dyndbg=True)
    m.add_memory(0, HOT, BLK)
    want = ALIGN_CASES[rng][kernel]
    if want is not None:
        assert H.online_pages(m, *rng) == want
        return
    lines = _refused(m, lambda: H.online_pages(m, *rng), errno.EINVAL)
    assert len(lines) == 2 and _warned(lines, "online_pages")
    # WARN_ON_ONCE: the second time only the error
    assert _refused(m, lambda: H.online_pages(m, *rng), errno.EINVAL) == []


@pytest.mark.parametrize("kernel", ("5.9", "5.10"))
def test_range_check_nr_zero(kernel, core):
    """``nr_pages`` 0.  5.9.1: ``online_pages`` finds no RAM piece (EINVAL, its failure line,
    end printed as pfn << 12 - 1 = 0x17fffffff); ``__offline_pages`` finds no zone (EINVAL,
    ``multizone range``).  5.10.0: each WARN_ON_ONCEs and is EINVAL before anything else."""
    m = Machine(kernel, core=core, dyndbg=True, auto_online=True)
    m.add_memory(0, HOT, BLK)
    n = len(m.dmesg)
    for call in (H.online_pages, H.offline_pages):
        with pytest.raises(KernelError) as ei:
            call(m, HOT >> 12, 0)
        assert ei.value.errno == errno.EINVAL
    lines = _new(m.dmesg, n)
    if kernel == "5.9":
        assert lines == ["online_pages [mem 0x180000000-0x17fffffff] failed",
                         "memory offlining [mem 0x180000000-0x17fffffff] failed due to multizone range"]
    else:
        assert len(lines) == 4 and _warned(lines[:2], "online_pages") and _warned(lines[2:], "offline_pages")


# ------------------------------------------------------------------ 5.14 -> 5.15: online_policy

def _policy_machine(kernel, core, iomem=VM, **kw):
    return Machine.from_iomem(iomem, kernel=kernel, core=core, online_policy="auto-movable", **kw)


@pytest.mark.parametrize("kernel", ("5.14", "5.15"))
def test_auto_movable_default_ratio(kernel, core):
    """Default ratio 301: KERNEL_EARLY = VM_PAGES (1048446), so 0x8000 movable pages are far
    below 301 * 1048446 / 100.  5.14 has no policy (the option is an unknown parameter):
    ``Normal Movable``, Normal; 5.15: ``Movable Normal``, Movable."""
    m = _policy_machine(kernel, core)
    m.add_memory(0, HOT, BLK)
    first = "Movable" if kernel == "5.15" else "Normal"
    other = "Normal" if first == "Movable" else "Movable"
    assert m.sysfs["memory48/valid_zones"] == f"{first} {other}\n"
    m.sysfs["memory48/state"] = "online"
    assert m.memory_block(48).zone == first


@pytest.mark.parametrize("ratio,zone", ((0, "Normal"), (3, "Normal"), (4, "Movable")))
def test_auto_movable_ratio(ratio, zone, core):
    """``0x8000 <= ratio * 1048446 // 100``: ratio 3 gives 31453 (Normal), 4 gives 41937
    (Movable); ratio 0 is the kernel zone without any test."""
    m = _policy_machine("5.15", core, auto_movable_ratio=ratio)
    assert VM_PAGES == 1048446
    m.add_memory(0, HOT, BLK)
    other = "Movable" if zone == "Normal" else "Normal"
    assert m.sysfs["memory48/valid_zones"] == f"{zone} {other}\n"
    m.sysfs["memory48/online"] = "1"          # MMOP_ONLINE through the online file
    assert m.memory_block(48).zone == zone


@pytest.mark.parametrize("ratio,zones", ((6, ("Movable", "Normal")), (7, ("Movable", "Movable"))))
def test_auto_movable_counts_movable_pages(ratio, zones, core):
    """Two blocks auto-onlined in turn: the second needs 2 * 0x8000 = 65536 <= ratio * 1048446
    // 100, which is 62906 for ratio 6 (no) and 73391 for 7 (yes)."""
    m = _policy_machine("5.15", core, auto_movable_ratio=ratio, auto_online=True)
    m.add_memory(0, HOT, 2 * BLK)
    assert (m.memory_block(48).zone, m.memory_block(49).zone) == zones


@pytest.mark.parametrize("numa_aware,zone", ((True, "Normal"), (False, "Movable")))
def test_auto_movable_numa_aware(numa_aware, zone, core):
    """A block of the new node 1: node 1 has no early kernel pages, so the per-node test (on by
    default) fails and the block goes to node 1's kernel zone (Normal); without it the global
    test alone passes."""
    m = _policy_machine("5.15", core, auto_movable_numa_aware=numa_aware, auto_online=True, possible_nodes=[0, 1])
    m.add_memory(1, HOT, BLK)
    blk = m.memory_block(48)
    assert (blk.nid, blk.zone) == (1, zone)


def test_auto_movable_early_pages_follow_boot_blocks(core):
    """1 GiB from 0 (KERNEL_EARLY 0x40000 = 262144), ratio 13: 13 * 262144 // 100 = 34078 >=
    0x8000, Movable.  Offlining boot block 4 takes its 0x8000 pages out of ``present_early_pages``
    (``adjust_present_page_count``): 13 * 229376 // 100 = 29818, Normal; onlining it again puts
    them back."""
    m = _policy_machine("5.15", core, iomem=ONE_GIB, auto_movable_ratio=13)
    m.add_memory(0, HOT, BLK)
    assert m.sysfs["memory48/valid_zones"] == "Movable Normal\n"
    m.offline_memory_block(4)
    dma32 = m.zones[0][1]
    assert (dma32.present_pages, dma32.present_early_pages) == (ONE_GIB_PAGES - 0x1000 - SEC,) * 2
    assert m.sysfs["memory48/valid_zones"] == "Normal Movable\n"
    m.online_memory_block(4)
    assert m.sysfs["memory48/valid_zones"] == "Movable Normal\n"


def test_auto_movable_ignores_hotplugged_kernel_memory(core):
    """Ratio 23 on 1 GiB: limit 23 * 262144 // 100 = 60293.  Block 48 onlined to Normal
    (online_kernel) adds present pages but no early ones; block 49 goes Movable (0x8000 <=
    60293); for block 50, 0x10000 > 60293: Normal first.  Counting the hot-added Normal pages
    would give 23 * 294912 // 100 = 67829 and Movable."""
    m = _policy_machine("5.15", core, iomem=ONE_GIB, auto_movable_ratio=23)
    m.add_memory(0, HOT, 3 * BLK)
    m.online_memory_block(48, "online_kernel")
    m.online_memory_block(49)
    assert (m.memory_block(48).zone, m.memory_block(49).zone) == ("Normal", "Movable")
    assert m.zones[0][2].present_early_pages == 0
    assert m.sysfs["memory50/valid_zones"] == "Normal Movable\n"


def test_auto_movable_explicit_types_and_runtime_switch(core):
    """``online_kernel``/``online_movable`` are not the policy's: ratio 0 still onlines Movable
    on request.  The policy file is 0644: writing ``auto-movable`` at runtime changes the
    next choice."""
    m = _policy_machine("5.15", core, auto_movable_ratio=0)
    m.add_memory(0, HOT, 2 * BLK)
    m.online_memory_block(48, "online_movable")
    assert m.memory_block(48).zone == "Movable"
    m2 = Machine.from_iomem(VM, kernel="5.15", core=core)
    m2.add_memory(0, HOT, BLK)
    assert m2.sysfs["memory48/valid_zones"] == "Normal Movable\n"
    m2.sysfs["module/memory_hotplug/parameters/online_policy"] = "auto-movable"
    assert m2.sysfs["memory48/valid_zones"] == "Movable Normal\n"


# ------------------------------------------------------------------ 5.17 -> 5.18: stored zone

@pytest.mark.parametrize("kernel", ("5.17", "5.18"))
def test_multizone_block_offline(kernel, core):
    """RAM from 0 to 5 GiB without holes; block 0 holds DMA and DMA32.  5.17: EINVAL with
    ``multizone range``; 5.18: no stored zone, EINVAL in ``memory_block_offline`` with no line.
    ``valid_zones``: ``none`` for block 0 and ``DMA32`` for block 1 on both sides."""
    m = Machine.from_iomem("00000000-13fffffff : System RAM\n", kernel=kernel, core=core, dyndbg=True)
    lines = _refused(m, lambda: m.offline_memory_block(0), errno.EINVAL)
    assert lines == ([] if kernel == "5.18" else
                     ["memory offlining [mem 0x00000000-0x07ffffff] failed due to multizone range"])
    assert (m.sysfs["memory0/valid_zones"], m.sysfs["memory1/valid_zones"]) == ("none\n", "DMA32\n")


@pytest.mark.parametrize("kernel", ("5.17", "5.18"))
def test_multizone_block_with_holes(kernel, core):
    """Block 0 of VM: 5.17 reaches ``offline_pages`` (``memory holes``); 5.18 stops before."""
    m = Machine.from_iomem(VM, kernel=kernel, core=core, dyndbg=True)
    lines = _refused(m, lambda: m.offline_memory_block(0), errno.EINVAL)
    assert lines == ([] if kernel == "5.18" else
                     ["memory offlining [mem 0x00000000-0x07ffffff] failed due to memory holes"])


@pytest.mark.parametrize("kernel", ("5.17", "5.18"))
def test_valid_zones_of_a_boot_block_from_the_populated_zones(kernel, core):
    """RAM 0-1 MiB and 4-5 GiB: the DMA32 zone spans [0x1000, 0x100000) but holds no page.
    Section 0 is present, and its struct pages from pfn 0x1000 belong to DMA32, so 5.17's
    ``test_pages_in_a_zone`` finds two zones (``none``); 5.18 stored the one *populated* zone
    that intersects block 0 at boot (``early_node_zone_for_memory_block``): ``DMA``."""
    layout = "00000000-000fffff : System RAM\n100000000-13fffffff : System RAM\n"
    m = Machine.from_iomem(layout, kernel=kernel, core=core)
    assert m.zones[0][1].present_pages == 0 and m.zones[0][1].spanned_pages == 0x100000 - 0x1000
    assert m.sysfs["memory0/valid_zones"] == ("DMA\n" if kernel == "5.18" else "none\n")
    assert m.memory_block(0).zone == ("DMA" if kernel == "5.18" else None)


@pytest.mark.parametrize("kernel", ("5.17", "5.18"))
def test_stored_zone_lifecycle(kernel, core):
    """5.18: a hot-added block stores nothing until it is onlined, the zone it was onlined to
    while online, and nothing again after the offline; 5.17 never stores one.  The sysfs
    answers are the same on both sides."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    blk = m.memory_block(48)
    assert blk.stored_zone is None
    m.online_memory_block(48, "online_movable")
    assert m.sysfs["memory48/valid_zones"] == "Movable\n"
    assert (blk.stored_zone.name if blk.stored_zone else None) == ("Movable" if kernel == "5.18" else None)
    m.offline_memory_block(48)
    assert blk.stored_zone is None
    m.online_memory_block(48, "online_kernel")
    assert blk.zone == "Normal" and m.sysfs["memory48/valid_zones"] == "Normal\n"


def test_offline_pages_zone_argument(core):
    """5.18 ``offline_pages(start, nr, zone)`` checks that the first and last struct page are in
    that zone (WARN_ON_ONCE, ``multizone range``, EINVAL); 5.17's has no such argument."""
    m = Machine("5.18", core=core, dyndbg=True, auto_online=True)
    m.add_memory(0, HOT, BLK)
    wrong = m.zones[0][3]                     # Movable; the block is in Normal
    lines = _refused(m, lambda: H.offline_pages(m, HOT >> 12, SEC, wrong), errno.EINVAL)
    assert _warned(lines, "offline_pages")
    assert lines[-1] == "memory offlining [mem 0x180000000-0x187ffffff] failed due to multizone range"
    assert H.offline_pages(m, HOT >> 12, SEC, m.zones[0][2]) == SEC
    m17 = Machine("5.17", core=core, auto_online=True)
    m17.add_memory(0, HOT, BLK)
    with pytest.raises(ValueError):
        H.offline_pages(m17, HOT >> 12, SEC, m17.zones[0][2])
