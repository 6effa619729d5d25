"""memmap_on_memory: ``add_memory(..., flags=MHP_MEMMAP_ON_MEMORY)``, the blocks that hold their
own memmap, their online/offline accounting and their removal, 5.12 against 5.13, 6.5 against
6.6, 6.7 against 6.8 (issue 10 step 13; later-eras-hotplug.md A6; later-eras-hotplug-evidence.md
§1 rows 5.13, 6.6, 6.8, §4 "5.12→5.13", "5.13→(6.5) multi-block", "5.18→5.19 force", "6.5→6.6
force/fallback", "6.6→6.8 per block", "6.6 removal"; api.md "Boot options").

What the kernel does, read in mm/memory_hotplug.c and drivers/base/memory.c:

* 5.12.9: ``add_memory_resource`` tests only MHP_MERGE_RESOURCE; bit 1 means nothing.
* 5.13 (inferred from 5.14.0-rc5; same in 6.5.0): ``mhp_supports_memmap_on_memory(size)`` --
  parameter on, ``size`` one block, the block's memmap ``V = size / 4096 * 64`` bytes a multiple
  of PMD_SIZE and ``size - V`` of a pageblock; else -EINVAL before ``arch_add_memory``.  The
  altmap is ``{base_pfn = PHYS_PFN(start), free = PHYS_PFN(size)}`` and the block records
  ``nr_vmemmap_pages = altmap.alloc``.  ``try_remove_memory`` (parameter on) refuses a range
  that is not one block when a block of it has vmemmap pages: pr_warn ``Refuse to remove %#llx
  - %#llx,wrong granularity``, -EINVAL.
* 6.6.0 (and 6.7.3): the support test of 6.6 (``memory_block_memmap_on_memory_pages``, force
  rounds up to a pageblock); an unsupported request falls back to a plain add; the block owns
  the altmap (``free`` = its vmemmap pages); removal as 5.13, then ``WARN(altmap->alloc,
  "Altmap not fully unmapped")``.
* 6.8.1: ``create_altmaps_and_memory_blocks`` (one altmap per block); removal
  ``memory_blocks_have_altmaps``: some but not all blocks with one → WARN_ON_ONCE, -EINVAL.
* ``memory_block_online``: the zone for the whole block, ``mhp_init_memmap_on_memory`` (the
  vmemmap pages join the zone, not the buddy), ``online_pages`` of the rest, then the vmemmap
  pages are counted present; ``memory_block_offline`` the reverse.

The expected numbers are worked out here from x86-64 sizes (4 KiB pages, 64-byte struct page,
2 MiB PMD and pageblock, 128 MiB sections), not read from the package.  Every scenario runs in
both cores."""

from __future__ import annotations

import errno

import numpy as np
import pytest

import sparsemem
from helpers import BLK, CUT, PAGE_SIZE, PAGES_PER_SECTION, SECTION, GiB, MiB
from sparsemem import MHP_MEMMAP_ON_MEMORY, MHP_NONE, KernelError, Machine
from sparsemem import hotplug as H
from sparsemem.kernel import kernel_model

HOT = 0x180000000          # block 48 (128 MiB blocks), above the default machine's 5 GiB of RAM
HOT_PFN = HOT // PAGE_SIZE
STRUCT_PAGE = 64           # sizeof(struct page), x86-64
PMD = 2 * MiB              # PMD_SIZE; also a pageblock (512 pages) in bytes
PAGEBLOCK_PAGES = 512
NORMAL = 2                 # ZONE_NORMAL
PARAM = "module/memory_hotplug/parameters/memmap_on_memory"
CORES = ("compiled", "reference")


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def vmemmap_pages(block: int, force: bool = False) -> int:
    """The pages a block's own memmap takes: PFN_UP(block / 4096 * 64) (6.6
    ``memory_block_memmap_on_memory_pages``; 5.13 ``altmap.alloc`` after one 2 MiB PMD per
    section), in force mode rounded up to a pageblock."""
    pages = -(-(block // PAGE_SIZE * STRUCT_PAGE) // PAGE_SIZE)
    if force:
        pages = -(-pages // PAGEBLOCK_PAGES) * PAGEBLOCK_PAGES
    return pages


def _errno(fn, *args, **kw) -> int:
    try:
        fn(*args, **kw)
    except KernelError as e:
        return e.errno
    return 0


def _normal(m, nid: int = 0):
    z = m.zone(nid, NORMAL)
    return (z.zone_start_pfn, z.spanned_pages, z.present_pages, m.nodes[nid].node_present_pages)


def _stats_delta(after: dict, before: dict) -> dict:
    return {k: after[k] - before[k] for k in ("pmds_ram", "pmds_altmap", "memmap_ram_bytes", "memmap_altmap_bytes")}


def test_the_switch_follows_the_release():
    """kernel.py ERAS rows 5.13, 6.6, 6.8 (evidence §1: 5.12.9 lacks, 5.14.0-rc5 has; 6.5.0 →
    6.6.0; 6.7.3 → 6.8.1).  5.14 is in the 5.13 row (§1 row 5.14 refuted as a row)."""
    got = {k: kernel_model(k).memmap_on_memory_rules
           for k in ("5.3", "5.12", "5.13", "5.14", "6.5", "6.6", "6.7", "6.8", "6.12")}
    assert got == {"5.3": "", "5.12": "", "5.13": "5.13", "5.14": "5.13", "6.5": "5.13",
                   "6.6": "6.6", "6.7": "6.6", "6.8": "6.8", "6.12": "6.8"}


def test_the_flag_values_are_the_kernel_bits():
    """include/linux/memory_hotplug.h (5.14.0-rc5, 6.6.0): MHP_NONE 0, MHP_MEMMAP_ON_MEMORY
    BIT(1); exported from the package (api.md)."""
    assert (sparsemem.MHP_NONE, sparsemem.MHP_MEMMAP_ON_MEMORY) == (0, 1 << 1)
    assert {"MHP_NONE", "MHP_MEMMAP_ON_MEMORY"} <= set(dir(sparsemem))


# ------------------------------------------------------------------------------ bad input

@pytest.mark.parametrize("flags", ["2", 2.0, None, True, b"\x02"])
def test_flags_of_a_wrong_type_are_a_type_error(core, flags):
    m = Machine("6.8", core=core, memmap_on_memory=True)
    before, dmesg = m.snapshot(), list(m.dmesg)
    with pytest.raises(TypeError, match="flags"):
        m.add_memory(0, HOT, BLK, flags=flags)
    assert (m.snapshot(), m.dmesg) == (before, dmesg)


@pytest.mark.parametrize("flags", [1, 4, 3, -1, 1 << 40])
def test_unknown_flag_bits_are_a_value_error_naming_the_accepted_ones(core, flags):
    """Bit 0 is MHP_MERGE_RESOURCE (kmem's, not add_memory's), bit 2 MHP_NID_IS_MGID: neither is
    accepted; nothing is requested from iomem first."""
    m = Machine("6.8", core=core, memmap_on_memory=True)
    before = m.snapshot()
    with pytest.raises(ValueError, match="MHP_NONE.*MHP_MEMMAP_ON_MEMORY"):
        m.add_memory(0, HOT, BLK, flags=flags)
    assert m.snapshot() == before


def test_an_integer_like_flag_is_accepted(core):
    m = Machine("6.8", core=core, memmap_on_memory=True)
    m.add_memory(0, HOT, BLK, flags=np.int64(MHP_MEMMAP_ON_MEMORY))
    assert m.sections.section_vmemmap(48) == "pmd-altmap"
    m.add_memory(0, HOT + BLK, BLK, flags=MHP_NONE)
    assert m.sections.section_vmemmap(49) == "pmd-ram"


# ------------------------------------------------------------------------------ 5.12 → 5.13

@pytest.mark.parametrize("kernel", ("5.12", "5.13", "5.14"))
def test_single_block_add_5_12_against_5_13(kernel, core):
    """Evidence §4 "5.12→5.13": ``Machine(k, memmap_on_memory=True).add_memory(0, HOT, BLK,
    flags=MHP_MEMMAP_ON_MEMORY)``, online.  5.12: a plain add (the memmap PMD from RAM), no
    parameter file; 5.13 (the inferred row, read at 5.14.0-rc5): the PMD from the block itself
    (MN §7.4 ``pmds_altmap``), ``nr_vmemmap_pages`` = one PMD of pages, the parameter reads
    ``Y``; either way the zone gains the whole block once online."""
    has = kernel != "5.12"
    m = Machine(kernel, core=core, memmap_on_memory=True)
    stats0 = m.sections.vmemmap_stats()
    m.add_memory(0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    delta = _stats_delta(m.sections.vmemmap_stats(), stats0)
    memmap = BLK // PAGE_SIZE * STRUCT_PAGE                  # 2 MiB: one PMD for the one section
    assert delta == ({"pmds_ram": 0, "pmds_altmap": 1, "memmap_ram_bytes": 0, "memmap_altmap_bytes": memmap}
                     if has else
                     {"pmds_ram": 1, "pmds_altmap": 0, "memmap_ram_bytes": memmap, "memmap_altmap_bytes": 0})
    assert m.sections.section_vmemmap(48) == ("pmd-altmap" if has else "pmd-ram")
    blk = m.memory_block(48)
    assert (blk.nr_vmemmap_pages, blk.altmap) == ((memmap // PAGE_SIZE if has else 0), None)
    if has:
        assert m.sysfs[PARAM] == "Y\n"
    else:
        assert _errno(m.sysfs.read, PARAM) == errno.ENOENT
    assert not any("memmap_on_memory" in line for line in m.dmesg)
    z0 = _normal(m)
    m.online_memory_block(48)
    z1 = _normal(m)
    assert (z1[2] - z0[2], z1[3] - z0[3]) == (BLK // PAGE_SIZE, BLK // PAGE_SIZE)
    assert z1[0] + z1[1] == HOT_PFN + BLK // PAGE_SIZE
    assert m.memory_block(48).zone == "Normal"


@pytest.mark.parametrize("kernel", ("5.12", "5.14", "6.5"))
def test_multi_block_add_5_12_against_5_13_to_6_5(kernel, core):
    """Evidence §4 "5.13→(6.5) multi-block": a 2-block add with the flag.  5.12: a plain add
    (the same state as without the flag); 5.13-6.5: ``size != memory_block_size_bytes()`` →
    -EINVAL before ``arch_add_memory``, nothing changes, the "System RAM" resource is released,
    no dmesg line."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    before, dmesg = m.snapshot(), list(m.dmesg)
    rc = _errno(m.add_memory, 0, HOT, 2 * BLK, flags=MHP_MEMMAP_ON_MEMORY)
    if kernel == "5.12":
        plain = Machine(kernel, core=core, memmap_on_memory=True)
        plain.add_memory(0, HOT, 2 * BLK)
        assert rc == 0
        assert m.snapshot() == plain.snapshot()
        assert [m.sections.section_vmemmap(n) for n in (48, 49)] == ["pmd-ram", "pmd-ram"]
    else:
        assert rc == errno.EINVAL
        assert (m.snapshot(), m.dmesg) == (before, dmesg)
        assert "180000000" not in m.iomem_text()


@pytest.mark.parametrize("kernel", ("5.14", "6.5"))
def test_5_13_refuses_with_the_parameter_off(kernel, core):
    """``mhp_supports_memmap_on_memory`` starts with ``memmap_on_memory &&`` (5.14.0-rc5,
    6.5.0): with the parameter off even a one-block request is -EINVAL; a new node's pgdat goes
    again (``rollback_node_hotadd``)."""
    m = Machine(kernel, core=core, possible_nodes=[0, 1])
    before = m.snapshot()
    assert _errno(m.add_memory, 1, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY) == errno.EINVAL
    assert m.snapshot() == before
    assert 1 not in m.nodes


# ------------------------------------------------------------------------------ support test

@pytest.mark.parametrize(("kernel", "mode"), [("5.12", True), ("5.14", True), ("6.6", True), ("6.6", "force"),
                                             ("6.8", True), ("6.8", "force")])
def test_support_test_for_block_sizes(kernel, mode, core):
    """``mhp_supports_memmap_on_memory`` for a block of B bytes on x86 (5.14.0-rc5: V % PMD,
    (B - V) % pageblock; 6.6.0: V page-aligned, P pageblock-aligned, P != B pages, V % PMD).
    With V = B / 64 every term but the PMD one holds for B >= 2 MiB, so the answer is "V is a
    multiple of 2 MiB", i.e. B a multiple of 128 MiB; a size other than the block is never
    supported; 5.12 has no such test (False).  "force" exists from 6.6 (earlier: the force
    scenarios below)."""
    m = Machine(kernel, core=core, memmap_on_memory=mode)
    for block in (64 * MiB, 128 * MiB, 2 * GiB, 64 * GiB):
        want = kernel != "5.12" and (block // 64) % PMD == 0
        assert H.mhp_supports_memmap_on_memory(m, block, block_size=block) is want, block
        assert H.mhp_supports_memmap_on_memory(m, 2 * block, block_size=block) is False
    assert H.mhp_supports_memmap_on_memory(m, BLK) is (kernel != "5.12")


def test_support_test_needs_the_parameter(core):
    for kernel in ("5.14", "6.6", "6.8"):
        m = Machine(kernel, core=core)
        assert H.mhp_supports_memmap_on_memory(m, BLK) is False


# ------------------------------------------------------------------------------ force

@pytest.mark.parametrize("kernel", ("5.18", "5.19"))
def test_force_before_6_6_leaves_the_feature_off(kernel, core):
    """Evidence §4 "5.18→5.19 force": 5.13-5.18 ``strtobool`` refuses ``force`` (the
    ``parse_args`` pr_err), 5.19-6.5 ``kstrtobool`` reads its ``f`` as N silently; either way
    the parameter is N, so a one-block request with the flag is -EINVAL (5.13 rules)."""
    m = Machine(kernel, core=core, memmap_on_memory="force")
    line = "Booting kernel: `force' invalid for parameter `memory_hotplug.memmap_on_memory'"
    assert (line in m.dmesg) is (kernel == "5.18")
    assert m.sysfs[PARAM] == "N\n"
    before = m.snapshot()
    assert _errno(m.add_memory, 0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY) == errno.EINVAL
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ("6.5", "6.6"))
def test_force_and_fallback_6_5_against_6_6(kernel, core):
    """Evidence §4 "6.5→6.6 force/fallback": 6.5: the parameter N, both adds -EINVAL; 6.6:
    ``Memory hotplug will waste 0 pages in each memory block`` (P = 512 is already whole
    pageblocks), parameter ``force``; the 2-block add falls back to a plain add (memmap from
    RAM), the 1-block add gets an altmap with ``free`` = P."""
    m = Machine(kernel, core=core, memmap_on_memory="force")
    if kernel == "6.5":
        assert m.sysfs[PARAM] == "N\n"
        before = m.snapshot()
        assert _errno(m.add_memory, 0, HOT, 2 * BLK, flags=MHP_MEMMAP_ON_MEMORY) == errno.EINVAL
        assert _errno(m.add_memory, 0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY) == errno.EINVAL
        assert m.snapshot() == before
        return
    waste = vmemmap_pages(BLK, force=True) - vmemmap_pages(BLK)
    assert f"Memory hotplug will waste {waste} pages in each memory block" in m.dmesg
    assert waste == 0
    assert m.sysfs[PARAM] == "force\n"
    m.add_memory(0, HOT, 2 * BLK, flags=MHP_MEMMAP_ON_MEMORY)
    assert [m.sections.section_vmemmap(n) for n in (48, 49)] == ["pmd-ram", "pmd-ram"]
    assert [(b.nr_vmemmap_pages, b.altmap) for b in (m.memory_block(48), m.memory_block(49))] == [(0, None)] * 2
    m.add_memory(0, HOT + 2 * BLK, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    blk = m.memory_block(50)
    p = vmemmap_pages(BLK, force=True)
    assert m.sections.section_vmemmap(50) == "pmd-altmap"
    a = blk.altmap
    assert (a.base_pfn, a.reserve, a.free, a.alloc, blk.nr_vmemmap_pages) == (HOT_PFN + 2 * PAGES_PER_SECTION, 0,
                                                                             p, p, p)


@pytest.mark.parametrize("kernel", ("6.5", "6.6", "6.7"))
def test_multi_block_add_falls_back_from_6_6(kernel, core):
    """``memmap_on_memory=True``: 6.5 -EINVAL, 6.6/6.7 a plain add, silently (the same state as
    an add without the flag; no dmesg line)."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    dmesg = list(m.dmesg)
    rc = _errno(m.add_memory, 0, HOT, 2 * BLK, flags=MHP_MEMMAP_ON_MEMORY)
    assert rc == (errno.EINVAL if kernel == "6.5" else 0)
    assert m.dmesg == dmesg
    if rc == 0:
        plain = Machine(kernel, core=core, memmap_on_memory=True)
        plain.add_memory(0, HOT, 2 * BLK)
        assert m.snapshot() == plain.snapshot()


# ------------------------------------------------------------------------------ 6.6 → 6.8

@pytest.mark.parametrize("kernel", ("6.7", "6.8", "6.12"))
def test_multi_block_add_per_block_6_8(kernel, core):
    """Evidence §4 "6.6→6.8 per block": 6.7 falls back (memmap from RAM, no altmaps); 6.8 (and
    6.12, evidence §1 row 6.12: nothing new) gives
    each block its own altmap (``base_pfn`` its start, ``free`` P), every section's PMD from
    its block.  Online both: the zone gains both blocks; ``remove_memory`` of both works and
    gives every PMD back to its altmap (no WARN)."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    boot = m.snapshot()
    stats0 = m.sections.vmemmap_stats()
    m.add_memory(0, HOT, 2 * BLK, flags=MHP_MEMMAP_ON_MEMORY)
    per_block = kernel != "6.7"
    p = vmemmap_pages(BLK)
    blocks = (m.memory_block(48), m.memory_block(49))
    assert [m.sections.section_vmemmap(n) for n in (48, 49)] == ["pmd-altmap" if per_block else "pmd-ram"] * 2
    assert _stats_delta(m.sections.vmemmap_stats(), stats0)["pmds_altmap"] == (2 if per_block else 0)
    if per_block:
        assert [(b.altmap.base_pfn, b.altmap.free, b.altmap.alloc, b.nr_vmemmap_pages) for b in blocks] == [
            (HOT_PFN + i * PAGES_PER_SECTION, p, p, p) for i in (0, 1)]
    else:
        assert [(b.altmap, b.nr_vmemmap_pages) for b in blocks] == [(None, 0)] * 2
    z0 = _normal(m)
    m.online_memory_block(48)
    m.online_memory_block(49)
    assert _normal(m)[2] - z0[2] == 2 * BLK // PAGE_SIZE
    m.offline_memory_block(49)
    m.offline_memory_block(48)
    assert _normal(m) == z0
    n = len(m.dmesg)
    m.remove_memory(0, HOT, 2 * BLK)
    assert not any("Altmap" in line or line == CUT for line in m.dmesg[n:])
    after = m.snapshot()
    assert (after["blocks"], after["iomem"], after["nodes"]) == (boot["blocks"], boot["iomem"], boot["nodes"])
    assert m.sections.vmemmap_stats() == stats0


@pytest.mark.parametrize("kernel", ("5.12", "5.14", "6.6", "6.7", "6.8"))
@pytest.mark.parametrize("altmap_first", (True, False))
def test_removing_a_block_with_its_memmap_inside_together_with_a_plain_one(kernel, core, altmap_first):
    """Evidence §4 "6.6 removal": one 1-block add with the flag next to a plain one, both
    removed at once.  5.12: no such block, the removal works.  5.13-6.7 (5.14.0-rc5, 6.6.0,
    6.7.3 ``try_remove_memory``): the first block with vmemmap pages makes a 2-block range the
    wrong granularity: pr_warn ``Refuse to remove 0x180000000 - 0x190000000,wrong granularity``
    (end exclusive, no space after the comma), -EINVAL.  6.8 (6.8.1
    ``memory_blocks_have_altmaps``): 1 altmap for 2 blocks → WARN_ON_ONCE (no message),
    -EINVAL.  Nothing changes either way."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    first, second = (MHP_MEMMAP_ON_MEMORY, MHP_NONE) if altmap_first else (MHP_NONE, MHP_MEMMAP_ON_MEMORY)
    m.add_memory(0, HOT, BLK, flags=first)
    m.add_memory(0, HOT + BLK, BLK, flags=second)
    before, n = m.snapshot(), len(m.dmesg)
    rc = _errno(m.remove_memory, 0, HOT, 2 * BLK)
    new = m.dmesg[n:]
    if kernel == "5.12":
        assert rc == 0
        return
    assert rc == errno.EINVAL
    assert m.snapshot() == before
    if kernel == "6.8":
        assert new == [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:2243 "
                            "memory_blocks_have_altmaps+0x0/0x100"]
        assert _errno(m.remove_memory, 0, HOT, 2 * BLK) == errno.EINVAL
        assert m.dmesg[n + len(new):] == []     # _ONCE
    else:
        assert new == [f"Refuse to remove {HOT:#x} - {HOT + 2 * BLK:#x},wrong granularity"]
    # one block at a time works in every release
    m.remove_memory(0, HOT, BLK)
    m.remove_memory(0, HOT + BLK, BLK)
    assert 48 not in m.blocks and 49 not in m.blocks


@pytest.mark.parametrize("kernel", ("5.14", "6.5", "6.6", "6.7", "6.8"))
def test_removing_one_block_gives_its_memmap_back(kernel, core):
    """A one-block removal of such a block: 5.13-6.5 pass an altmap whose only field is
    ``alloc = nr_vmemmap_pages``, 6.6+ the block's own; every PMD goes back to it (MN §7.4
    counts as before the add) and 6.6+ do not WARN ``Altmap not fully unmapped``."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    boot, stats0 = m.snapshot(), m.sections.vmemmap_stats()
    m.add_memory(0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    altmap = m.memory_block(48).altmap
    n = len(m.dmesg)
    m.remove_memory(0, HOT, BLK)
    assert m.dmesg[n:] == []
    assert m.sections.vmemmap_stats() == stats0
    after = m.snapshot()
    assert (after["blocks"], after["iomem"], after["nodes"]) == (boot["blocks"], boot["iomem"], boot["nodes"])
    if kernel in ("5.14", "6.5"):
        assert altmap is None
    else:
        assert altmap.alloc == 0


@pytest.mark.parametrize("kernel", ("6.5", "6.6", "6.8"))
def test_altmap_not_fully_unmapped(kernel, core):
    """``WARN(altmap->alloc, "Altmap not fully unmapped")`` (6.6.0 ``try_remove_memory``, 6.8.1
    ``remove_memory_blocks_and_altmaps``; absent in 6.5.0): a block whose section was already
    taken away without its altmap (a direct ``__remove_pages``, which frees the PMD to RAM)
    leaves P pages counted in the altmap at removal.  The section's own ``__remove_section``
    WARN_ON_ONCE comes first in every release."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    m.add_memory(0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    H.remove_pages(m, None, HOT_PFN, PAGES_PER_SECTION)
    n = len(m.dmesg)
    m.remove_memory(0, HOT, BLK)
    remove_section = [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:510 __remove_section+0x0/0x100"]
    site = {"6.6": "try_remove_memory+0x0/0x100", "6.8": "remove_memory_blocks_and_altmaps+0x0/0x100"}
    line = {"6.6": 2209, "6.8": 1421}
    want = remove_section + ([] if kernel == "6.5" else
                             [CUT, "Altmap not fully unmapped",
                              f"WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:{line[kernel]} {site[kernel]}"])
    assert m.dmesg[n:] == want
    assert 48 not in m.blocks


# ------------------------------------------------------------------------------ online/offline

@pytest.mark.parametrize("kernel", ("5.14", "6.6", "6.8"))
@pytest.mark.parametrize("block", (BLK, 2 * GiB))
def test_online_offline_accounting(kernel, core, block):
    """drivers/base/memory.c ``memory_block_online``/``_offline`` (5.14.0-rc5, 6.6.0, 6.8.1):
    the zone and node gain the whole block as present pages, of which ``online_pages`` onlines
    ``B - P`` (the pages the buddy gets; ``Offlined Pages`` of the offline prints that number,
    a pr_debug shown with ``dyndbg``); the vmemmap pages join the zone's span too.  Offline
    gives everything back.  P = 512 for 128 MiB blocks, 8192 (16 sections' PMDs) for 2 GiB."""
    m = Machine(kernel, core=core, memmap_on_memory=True, memory_block_size=block, dyndbg=True)
    bid = HOT // block
    m.add_memory(0, HOT, block, flags=MHP_MEMMAP_ON_MEMORY)
    p = vmemmap_pages(block)
    blk = m.memory_block(bid)
    assert blk.nr_vmemmap_pages == p
    sections = range(HOT // SECTION, (HOT + block) // SECTION)
    assert {m.sections.section_vmemmap(s) for s in sections} == {"pmd-altmap"}
    z0 = _normal(m)
    m.online_memory_block(bid)
    z1 = _normal(m)
    pages = block // PAGE_SIZE
    assert (z1[2] - z0[2], z1[3] - z0[3]) == (pages, pages)
    assert (z1[0], z1[0] + z1[1]) == (z0[0], HOT_PFN + pages)
    assert m.sections.page_zonenum(HOT_PFN) == NORMAL            # a vmemmap page
    assert all(m.sections.online_section_nr(s) for s in sections)
    n = len(m.dmesg)
    m.offline_memory_block(bid)
    assert f"Offlined Pages {pages - p}" in m.dmesg[n:]
    assert _normal(m) == z0
    assert not any(m.sections.online_section_nr(s) for s in sections)


@pytest.mark.parametrize("kernel", ("5.14", "6.8"))
@pytest.mark.parametrize("block", (BLK, 64 * GiB))
def test_failed_online_and_offline_undo_the_vmemmap_pages(kernel, core, block):
    """A MEM_GOING_ONLINE error: ``online_pages`` fails after ``mhp_init_memmap_on_memory``,
    which ``mhp_deinit_memmap_on_memory`` undoes: zone, node and block as before, the sections
    offline again -- also those the vmemmap pages fill by themselves and ``mhp_init`` had marked
    online (a 64 GiB block: P = 262144 pages, 8 whole sections).  A MEM_GOING_OFFLINE error:
    the vmemmap pages taken from the present count first are counted back."""
    m = Machine(kernel, core=core, memmap_on_memory=True, memory_block_size=block)
    start = 64 * GiB if block == 64 * GiB else HOT
    bid = start // block
    m.add_memory(0, start, block, flags=MHP_MEMMAP_ON_MEMORY)
    p = vmemmap_pages(block)
    assert m.memory_block(bid).nr_vmemmap_pages == p
    first = start // SECTION
    sections = range(first, first + block // SECTION)
    before = m.snapshot()
    z0 = _normal(m)
    m.inject_memory_notifier_error("online", -errno.ENOMEM)
    assert _errno(m.online_memory_block, bid) == errno.ENOMEM
    after = m.snapshot()
    assert (after["nodes"], after["blocks"]) == (before["nodes"], before["blocks"])
    assert not any(m.sections.online_section_nr(s) for s in sections)
    m.inject_memory_notifier_error("online", 0)
    m.online_memory_block(bid)
    if p >= PAGES_PER_SECTION:
        assert p // PAGES_PER_SECTION == 8
    online = _normal(m)
    assert online[2] - z0[2] == block // PAGE_SIZE
    m.inject_memory_notifier_error("offline", -errno.EBUSY)
    assert _errno(m.offline_memory_block, bid) == errno.EBUSY
    assert _normal(m) == online
    assert m.memory_block(bid).state == "online"
    m.inject_memory_notifier_error("offline", 0)
    m.offline_memory_block(bid)
    assert _normal(m) == z0


@pytest.mark.parametrize("kernel", ("5.14", "6.8"))
def test_auto_online_onlines_with_the_vmemmap_accounting(kernel, core):
    """``memhp_default_state=online``: the auto-online walk of ``add_memory_resource`` goes
    through the same ``memory_block_online``."""
    m = Machine(kernel, core=core, memmap_on_memory=True, auto_online=True)
    z0 = _normal(m)
    m.add_memory(0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    assert m.memory_block(48).state == "online"
    assert _normal(m)[2] - z0[2] == BLK // PAGE_SIZE
    assert m.sections.section_vmemmap(48) == "pmd-altmap"


@pytest.mark.parametrize("kernel", ("5.14", "6.8"))
def test_sysfs_shows_nothing_new(kernel, core):
    """drivers/base/memory.c (5.14.0-rc5, 6.8.1) adds no attribute for memmap_on_memory: a
    block with its memmap inside lists the same files and reads as a plain one, online in
    ``Movable`` too (``online_movable``: the vmemmap pages go to the block's zone)."""
    m = Machine(kernel, core=core, memmap_on_memory=True)
    plain = Machine(kernel, core=core, memmap_on_memory=True)
    m.add_memory(0, HOT, BLK, flags=MHP_MEMMAP_ON_MEMORY)
    plain.add_memory(0, HOT, BLK)
    files = plain.sysfs.listdir("memory48")
    assert m.sysfs.listdir("memory48") == files
    for mm in (m, plain):
        mm.sysfs["memory48/state"] = "online_movable"
    assert {f: m.sysfs[f"memory48/{f}"] for f in files} == {f: plain.sysfs[f"memory48/{f}"] for f in files}
    assert m.zone(0, 3).present_pages == BLK // PAGE_SIZE
