"""The top half of memory hotplug per release and the log levels of dmesg (issue 10 §5 steps 9
and 10; later-eras-hotplug-evidence.md §1 rows 5.6-5.15, §4): ``mem=`` at boot and its run-time
test (5.7), the ``node_possible_map`` check (5.8), the unpaired ``mem_hotplug_done`` of
``try_remove_memory`` (5.6-5.8), the silent ``release_mem_region_adjustable`` (5.10), "Offlined
Pages" at debug level (5.11), ``remove_memory`` without a nid (5.15), and the records that only
``Machine(dyndbg=True)`` shows.  Each boundary on both sides, in both cores.
"""

from __future__ import annotations

import copy
import errno
import pickle

import pytest

import sparsemem
from helpers import BLK, CUT
from sparsemem import KernelError, Machine, reference
from sparsemem import existing as E
from sparsemem.printk import DEFAULT_LEVEL, Record, level_of

HOT = 0x180000000           # section 48, above the 5 GiB default layout
CORES = ("compiled", "reference")
KMEM_LAYOUT = "tests/data/existing/qemu-devdax-kmem.iomem.txt"


@pytest.fixture(params=CORES)
def core(request):
    return request.param


def _new(m, mark):
    return [str(line) for line in m.dmesg[mark:]]


# ---------------------------------------------------------------------------------------------
# mem= (arch/x86/kernel/e820.c parse_memopt, 5.3 and 6.1; register_memory_resource 5.6.4/5.7.14)

@pytest.mark.parametrize("kernel", ["5.3", "6.12"])
def test_mem_removes_the_ram_above_it_at_boot(kernel, core):
    """``mem=4G`` drops the RAM at and above 4 GiB from the e820 table, so /proc/iomem and the
    boot memory end there; ``e820__range_remove`` logs its KERN_DEBUG line (always stored);
    ``max_mem_size`` is the limit and /proc/cmdline carries ``mem=4G``.  The firmware layout
    stays the hardware: a reboot without ``mem`` has all the RAM again."""
    full = Machine(kernel, core=core)
    m = Machine(kernel, core=core, mem=4 << 30)
    assert m.max_pfn == 0xBFFE0 and full.max_pfn == 0x140000      # the RAM below 4 GiB ends there
    assert "100000000-13fffffff : System RAM" in full.iomem_text()
    assert "100000000" not in m.iomem_text()
    assert m.iomem_text() == full.iomem_text().replace("100000000-13fffffff : System RAM\n", "")
    assert len(m.memory_blocks) == len(full.memory_blocks) - 8
    assert m.max_mem_size == 4 << 30 and m.cmdline == "mem=4G"
    (line,) = [ln for ln in m.dmesg if ln.startswith("e820:")]
    assert line == "e820: remove [mem 0x100000000-0xfffffffffffffffe] usable"
    assert level_of(line) == "debug"          # printk(KERN_DEBUG ...): not a dynamic-debug site
    assert m.dmesg.index(line) < m.dmesg.index("x86/mm: Memory block size: 128MB")
    again = m.reboot(mem=None)
    assert again.iomem_text() == full.iomem_text() and again.max_pfn == full.max_pfn


def test_mem_cuts_a_range_and_its_children_and_keeps_other_types(core):
    """A System RAM range that crosses the limit ends at ``limit - 1`` (``e820__range_remove``
    cuts the entry), its children with it; persistent memory above the limit stays."""
    text = ("00001000-0009fbff : System RAM\n"
            "00100000-13fffffff : System RAM\n"
            "  130000000-137ffffff : Crash kernel\n"
            "  13c000000-13c0fffff : Kernel data\n"
            "140000000-1bfffffff : Persistent Memory (legacy)\n")
    m = Machine("5.3", core=core, iomem=text, mem=0x134000000)
    assert m.iomem_text() == ("00001000-0009fbff : System RAM\n"
                              "00100000-133ffffff : System RAM\n"
                              "  130000000-133ffffff : Crash kernel\n"
                              "140000000-1bfffffff : Persistent Memory (legacy)\n")
    assert m.cmdline == "mem=4928M" and m.max_pfn == 0x134000
    assert len(m.regions) == 1                 # the pmem region is not RAM: mem= leaves it
    m = Machine("5.3", core=core, iomem=text, mem=0x120000000)
    assert "Crash kernel" not in m.iomem_text() and "00100000-11fffffff : System RAM" in m.iomem_text()


@pytest.mark.parametrize("kernel,refused", [("5.6", True), ("5.7", False)])
def test_hot_add_above_mem_at_run_time(kernel, refused, core):
    """5.6 ``register_memory_resource`` refuses a range ending above ``max_mem_size`` with
    -E2BIG and no line; 5.7 ("only respect mem= parameter during boot stage") tests it only
    while ``system_state < SYSTEM_RUNNING``: ``add_memory`` after boot succeeds."""
    m = Machine(kernel, core=core, mem=4 << 30)
    before, mark = m.snapshot(), len(m.dmesg)
    if refused:
        with pytest.raises(KernelError) as ei:
            m.add_memory(0, HOT, BLK)
        assert ei.value.errno == errno.E2BIG and "max_mem_size 0x100000000" in ei.value.strerror
        assert m.snapshot() == before and _new(m, mark) == []
        assert "180000000" not in m.iomem_text()
    else:
        m.add_memory(0, HOT, BLK)
        assert "180000000-187ffffff : System RAM" in m.iomem_text()
        assert m.memory_block(48).state == "offline"
    # below the limit every release adds (the hole under 4 GiB is free in the default layout)
    m.add_memory(0, 0xC0000000, BLK)
    assert m.memory_block(0xC0000000 // BLK).state == "offline"


@pytest.mark.parametrize("kernel,refused", [("5.6", True), ("5.7", False)])
def test_kmem_adoption_above_mem(kernel, refused):
    """kmem is a module: its hot-add runs after a driver bind at run time (kmem.md K §5.1 step 5:
    "5.7+ only during boot, i.e. never for kmem"; Debian's CONFIG_DEV_DAX_KMEM=m), so a layout's
    kmem memory above ``mem=`` is refused before 5.7 (-E2BIG, the namespace stays devdax without
    kmem) and adopted from 5.7."""
    text = open(KMEM_LAYOUT).read()
    m = Machine.from_iomem(text, kernel=kernel, mem=0x240000000)
    (ns,) = m.regions[0].namespaces
    (adopted,) = m.existing
    if refused:
        assert adopted.error is not None and E.kmem_of(m, ns) is None
        assert "kmem: probe of dax0.0 failed with error -7" in m.dmesg     # -E2BIG
    else:
        assert adopted.error is None and E.kmem_of(m, ns) is not None


# ---------------------------------------------------------------------------------------------
# node_possible (add_memory_resource, 5.7.14 -> 5.8.1; arch/x86/mm/numa.c dummy_numa_init)

@pytest.mark.parametrize("possible", [None, [0]])
def test_node_outside_node_possible_map(possible, core):
    """5.8: ``WARN(1, "node %d was absent from the node_possible_map")`` and -EINVAL after the
    range check; nothing changes and ``add_memory`` releases the resource.  Without an SRAT the
    layout's nodes are node 0 alone (``dummy_numa_init``), the default of ``possible_nodes``.
    5.7 creates the node."""
    old = Machine("5.7", core=core, possible_nodes=possible)
    old.add_memory(1, HOT, BLK)
    assert old.nodes[1].online and old.memory_block(48).nid == 1
    m = Machine("5.8", core=core, possible_nodes=possible)
    before = m.snapshot()
    for _ in range(2):                        # WARN, not WARN_ONCE: every attempt logs it
        mark = len(m.dmesg)
        with pytest.raises(KernelError) as ei:
            m.add_memory(1, HOT, BLK)
        assert ei.value.errno == errno.EINVAL and "node 1 was absent" in ei.value.strerror
        assert _new(m, mark) == [CUT, "node 1 was absent from the node_possible_map",
                                 "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:1030 add_memory_resource+0x0/0x100"]
        assert m.snapshot() == before and 1 not in m.nodes and "180000000" not in m.iomem_text()
    # misalignment is checked first (check_hotplug_memory_range precedes the node test)
    with pytest.raises(KernelError) as ei:
        m.add_memory(1, HOT, BLK // 2)
    assert ei.value.errno == errno.EINVAL and "unaligned hotplug range" in ei.value.strerror


def test_possible_node_is_added_in_5_8(core):
    m = Machine("5.8", core=core, possible_nodes=[0, 1])
    m.add_memory(1, HOT, BLK)
    assert m.nodes[1].online and m.memory_block(48).nid == 1
    with pytest.raises(KernelError) as ei:
        m.add_memory(2, HOT + BLK, BLK)
    assert ei.value.errno == errno.EINVAL


# ---------------------------------------------------------------------------------------------
# try_remove_memory: the unpaired mem_hotplug_done (5.5.0-rc5 / 5.6.4 / 5.8.1 / 5.9.1)

RCU_WARNS = [CUT, "WARNING: CPU: 0 PID: 1 at kernel/rcu/sync.c:170 rcu_sync_exit+0x0/0x100",
             CUT, "WARNING: CPU: 0 PID: 1 at kernel/rcu/sync.c:171 rcu_sync_exit+0x0/0x100"]


@pytest.mark.parametrize("kernel,bug", [("5.5", False), ("5.6", True), ("5.8", True), ("5.9", False)])
def test_remove_of_online_memory_unlocks_what_it_never_locked(kernel, bug, core):
    """-EBUSY with the pr_warn in every release; on 5.6-5.8 the failure path also runs
    ``mem_hotplug_done`` without ``mem_hotplug_begin``: ``rcu_sync_exit`` WARN_ON_ONCEs twice
    (gp_state GP_IDLE, gp_count 0), the first time only; 5.9 returns before the lock."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    m.sysfs["memory48/state"] = "online"
    before = m.snapshot()
    pr_warn = "removing memory fails, because memory [0x0000000180000000-0x0000000187ffffff] is onlined"
    for attempt in range(2):
        mark = len(m.dmesg)
        with pytest.raises(KernelError) as ei:
            m.remove_memory(0, HOT, BLK)
        assert ei.value.errno == errno.EBUSY
        assert _new(m, mark) == [pr_warn] + (RCU_WARNS if bug and attempt == 0 else [])
        assert level_of(m.dmesg[mark]) == "warning"
        assert m.snapshot() == before
    assert m.mem_hotplug_lock_unbalanced is bug


# ---------------------------------------------------------------------------------------------
# release_mem_region_adjustable (kernel/resource.c 5.9.1 / 5.10.0)

@pytest.mark.parametrize("kernel,message", [("5.9", True), ("5.10", False)])
def test_release_failure_message(kernel, message, core):
    """A range that two "System RAM" resources hold: ``release_mem_region_adjustable`` finds
    none that contains it (-EINVAL): 5.9 pr_warns ``Unable to release resource <%pa-%pa> (-22)``;
    5.10's void function says nothing.  Both leave the resources (the removal goes on)."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, BLK)
    m.add_memory(0, HOT + BLK, BLK)
    mark = len(m.dmesg)
    m.remove_memory(0, HOT, 2 * BLK)
    want = ["Unable to release resource <0x0000000180000000-0x000000018fffffff> (-22)"] if message else []
    assert _new(m, mark) == want
    assert "180000000-187ffffff : System RAM" in m.iomem_text() and 48 not in m.blocks


@pytest.mark.parametrize("kernel", ["5.9", "5.10"])
def test_release_adjust_failure(kernel, core):
    """Releasing the top half of a resource with a child there: ``__adjust_resource`` fails
    (-EBUSY): 5.9 ``Unable to release resource <...> (-16)``; 5.10 WARN_ON_ONCE in
    ``release_mem_region_adjustable``."""
    m = Machine(kernel, core=core)
    m.add_memory(0, HOT, 2 * BLK)
    m.iomem.insert(HOT + BLK, 0x1000, "Crash kernel")      # any resource nested in that half
    mark = len(m.dmesg)
    m.remove_memory(0, HOT + BLK, BLK)
    if kernel == "5.9":
        assert _new(m, mark) == ["Unable to release resource <0x0000000188000000-0x000000018fffffff> (-16)"]
    else:
        assert _new(m, mark) == [CUT, "WARNING: CPU: 0 PID: 1 at kernel/resource.c:1325 "
                                      "release_mem_region_adjustable+0x0/0x100"]
    assert "180000000-18fffffff : System RAM" in m.iomem_text()


# ---------------------------------------------------------------------------------------------
# remove_memory's nid (mm/memory_hotplug.c 5.14.0-rc5 / 5.15.16)

@pytest.mark.parametrize("kernel,node1_online", [("5.14", True), ("5.15", False)])
def test_remove_memory_offlines_the_node_of_the_last_block(kernel, node1_online, core):
    """``remove_memory(0, ...)`` of node-1 memory: 5.14 tries to offline node 0 (never: it has
    CPUs) and leaves node 1 online; 5.15 has no nid argument and offlines the node of the last
    block it checked, node 1."""
    m = Machine(kernel, core=core, possible_nodes=[0, 1])
    m.add_memory(1, HOT, BLK)
    assert m.nodes[1].online
    m.remove_memory(0, HOT, BLK)
    assert m.nodes[1].online is node1_online and m.nodes[0].online


def test_remove_memory_nid_of_the_last_block_visited(core):
    """5.15: with blocks of two nodes in the range, the last one decides (node 0 here: never
    offlined), so node 1 stays online although its memory is gone."""
    m = Machine("5.15", core=core, possible_nodes=[0, 1])
    m.add_memory(1, HOT, BLK)
    m.add_memory(0, HOT + BLK, BLK)
    m.remove_memory(1, HOT, 2 * BLK)
    assert m.nodes[1].online
    m2 = Machine("5.15", core=core, possible_nodes=[0, 1])
    m2.add_memory(0, HOT, BLK)
    m2.add_memory(1, HOT + BLK, BLK)
    m2.remove_memory(0, HOT, 2 * BLK)
    assert not m2.nodes[1].online


# ---------------------------------------------------------------------------------------------
# log levels and dynamic debug (§2 item 25; §5 step 10)

@pytest.mark.parametrize("kernel,level", [("5.10", "info"), ("5.11", "debug")])
def test_offlined_pages_level(kernel, level, core):
    """"Offlined Pages %ld": pr_info through 5.10.0, pr_debug from 5.11.0, so a distribution
    kernel (CONFIG_DYNAMIC_DEBUG, nothing enabled) prints it only up to 5.10."""
    for dyndbg in (False, True):
        m = Machine(kernel, core=core, dyndbg=dyndbg)
        m.add_memory(0, HOT, BLK)
        m.sysfs["memory48/state"] = "online"
        mark = len(m.dmesg)
        m.sysfs["memory48/state"] = "offline"
        shown = _new(m, mark)
        if level == "info" or dyndbg:
            assert shown == ["Offlined Pages 32768"] and level_of(m.dmesg[-1]) == level
        else:
            assert shown == []


@pytest.mark.parametrize("kernel", ["5.3", "6.12"])
def test_pr_debug_lines_need_dyndbg(kernel, core):
    """``Unable to reserve System RAM region`` (register_memory_resource), ``online_pages [mem
    ...] failed`` and ``memory offlining [mem ...] failed due to ...`` are pr_debug: absent by
    default, present at level debug with ``dyndbg=True``; the outcome is the same either way."""
    seen = {}
    for dyndbg in (False, True):
        m = Machine(kernel, core=core, dyndbg=dyndbg)
        mark = len(m.dmesg)
        with pytest.raises(KernelError) as ei:
            m.add_memory(0, 0x100000000, BLK)                    # boot RAM: -EEXIST
        assert ei.value.errno == errno.EEXIST
        m.add_memory(0, HOT, BLK)
        m.inject_memory_notifier_error("MEM_GOING_ONLINE", -12)
        with pytest.raises(KernelError):
            m.sysfs["memory48/state"] = "online"
        m.inject_memory_notifier_error("MEM_GOING_ONLINE", 0)
        m.sysfs["memory48/state"] = "online"
        m.inject_memory_notifier_error("MEM_GOING_OFFLINE", -16)
        with pytest.raises(KernelError) as ei:
            m.sysfs["memory48/state"] = "offline"
        assert ei.value.errno == errno.EBUSY
        seen[dyndbg] = [(str(ln), level_of(ln)) for ln in m.dmesg[mark:]]
    debug = [("Unable to reserve System RAM region: 0000000100000000->0000000108000000", "debug"),
             ("online_pages [mem 0x180000000-0x187ffffff] failed", "debug"),
             ("memory offlining [mem 0x180000000-0x187ffffff] failed due to notifier failure", "debug")]
    assert [r for r in seen[True] if r[1] == "debug"] == debug
    assert [r for r in seen[True] if r[1] != "debug"] == seen[False]
    assert not any(r[1] == "debug" for r in seen[False])


def test_mminit_line_needs_dyndbg(core):
    """The ``mminit::pfnvalidation`` line after the ``mminit_validate_memmodel_limits``
    WARN_ON is ``mminit_dprintk`` (mm/internal.h 5.3: printed only when ``mminit_loglevel`` is
    above 0; ``dyndbg=True`` puts ``mminit_loglevel=1`` on the command line).  The machine boots
    no RAM beyond the section array, so the core's record comes from a bare table of the same
    core and is forwarded as the machine forwards its own."""
    impl = sparsemem.SectionTable if core == "compiled" else reference.SectionTable
    bare = impl(46, "5.3")
    limit = bare.pfn_limit
    bare.memory_present(0, limit - 0x8000, limit + 0x8000)
    (core_line,) = bare.dmesg
    out = {}
    for dyndbg in (False, True):
        m = Machine("5.3", core=core, dyndbg=dyndbg)
        mark = len(m.dmesg)
        m.sections.dmesg.append(core_line)
        m.sync_core_dmesg()
        out[dyndbg] = _new(m, mark)
    assert out[False] == out[True][:2] and out[True][0] == CUT
    assert out[True][1].startswith("WARNING: CPU: 0 PID: 1 at mm/sparse.c:180 mminit_validate_memmodel_limits")
    assert len(out[True]) == 3 and out[True][2].startswith("mminit::pfnvalidation ")
    assert "mminit_loglevel=1" in Machine("5.3", dyndbg=True).cmdline.split()


def test_records_keep_their_level_through_pickle_and_copy():
    """A record with a level is a ``str`` (it compares as its text) that pickles and copies
    with its level; a record without one is a plain ``str`` at the default level."""
    m = Machine("5.3")
    m.add_memory(0, HOT, BLK)
    m.sysfs["memory48/state"] = "online"
    m.sysfs["memory48/state"] = "offline"
    rec = m.dmesg[-1]
    assert isinstance(rec, Record) and rec == "Offlined Pages 32768" and rec.level == "info"
    assert m.dmesg[0] == "x86/mm: Memory block size: 128MB" and level_of(m.dmesg[0]) == "info"
    assert level_of("plain") == DEFAULT_LEVEL
    for again in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):
        assert again.dmesg == m.dmesg and [level_of(x) for x in again.dmesg] == [level_of(x) for x in m.dmesg]
    m.log("a line", "err")
    assert level_of(m.dmesg[-1]) == "err"


def test_warn_records_levels():
    """A WARN: the cut-here banner and the WARNING line are pr_warn (kernel/panic.c 5.3
    ``__warn``/``__warn_printk``), the message is printed without a level."""
    m = Machine("5.8")
    with pytest.raises(KernelError):
        m.add_memory(3, HOT, BLK)
    assert [level_of(x) for x in m.dmesg[-3:]] == ["warning", DEFAULT_LEVEL, "warning"]


def test_dyndbg_survives_reboot_and_from_iomem():
    m = Machine.from_iomem(open(KMEM_LAYOUT).read(), kernel="5.3", dyndbg=True)
    assert m.dyndbg and m.reboot().dyndbg and not m.reboot(dyndbg=False).dyndbg
    assert m.boot_args["dyndbg"] is True
    assert 'dyndbg="file mm/memory_hotplug.c +p"' in m.cmdline
