"""Hotplug paths of Machine / sparsemem.hotplug (sparse-hotplug.md §5, §6, §7, §8, §9)."""

import errno
import re

import pytest

from helpers import BLK, CUT, EX_LAYOUT, GiB, MiB, observed
from helpers import PAGES_PER_SECTION as SEC
from sparsemem import KernelBug, KernelError, Machine
from sparsemem import constants as C
from sparsemem import hotplug as H
from sparsemem.iomem import parse
from sparsemem.memory_block import create_memory_block_devices, device_online

KERNELS = ("5.2", "5.3")
HOT = 0x180000000  # 6 GiB: above the default layout's RAM


def blocks(m):
    return {b.id: b for b in m.memory_blocks}


@pytest.fixture(params=KERNELS)
def kernel(request):
    return request.param


# ------------------------------------------------------------------ add / online / offline / remove
def test_add_online_offline_remove_cycle(kernel):
    m = Machine(kernel)
    boot = m.snapshot()
    m.add_memory(0, HOT, 2 * BLK)                       # §8.1
    b = blocks(m)
    assert b[48].state == "offline" and b[49].state == "offline"
    assert b[48].section_count == 1 and b[48].online_type == 0   # §8.2: online_type starts at 0
    assert "180000000-18fffffff : System RAM\n" in m.iomem_text()
    assert m.sysfs["memory48/valid_zones"] == "Normal Movable\n"
    m.sysfs["memory48/state"] = "online"
    assert b[48].online_type == -1                      # reset by memory_subsys_online
    assert m.sections.online_section_nr(48)
    normal = m.zones[0][C.ZONE_NORMAL]
    assert normal.zone_end_pfn == (HOT + BLK) >> 12     # §5.5 span growth
    assert normal.present_pages == 0x40000 + 0x8000
    m.sysfs["memory48/state"] = "offline"
    assert m.dmesg[-1] == "Offlined Pages 32768"       # §5.6 pr_info
    assert not m.sections.online_section_nr(48)
    assert normal.zone_end_pfn == (HOT + BLK) >> 12     # v5.3 (and v5.2): no shrink on offline
    m.remove_memory(0, HOT, 2 * BLK)                    # §6.5: shrink at removal
    assert normal.zone_end_pfn == 0x140000
    assert m.snapshot()["nodes"] == boot["nodes"]
    assert m.snapshot()["iomem"] == boot["iomem"]
    assert m.snapshot()["blocks"] == boot["blocks"]


def test_auto_online_and_stop_at_first_failure(kernel):
    m = Machine(kernel, auto_online=True)
    m.add_memory(0, HOT, 2 * BLK)
    assert [blocks(m)[i].state for i in (48, 49)] == ["online", "online"]
    # §8.1 step 10: the walk stops at the first block that fails, add_memory still succeeds
    m.inject_memory_notifier_error("online", -12)
    m.add_memory(0, HOT + 2 * BLK, 2 * BLK)
    assert [blocks(m)[i].state for i in (50, 51)] == ["offline", "offline"]
    assert m.dmesg.count("Injecting error (-12) to MEM_GOING_ONLINE") == 1


def test_zone_choice_movable_and_kernel(kernel):
    m = Machine(kernel)
    m.add_memory(0, HOT, 3 * BLK)
    m.online_memory_block(48, "online_movable")
    assert m.sysfs["memory48/valid_zones"] == "Movable\n"
    # §8.5: KEEP picks Movable when only Movable intersects (the block right after)
    mov = m.zones[0][C.ZONE_MOVABLE]
    assert mov.state() == (HOT >> 12, 0x8000, 0x8000)
    m.online_memory_block(50, "online_kernel")
    assert m.sysfs["memory50/valid_zones"] == "Normal\n"
    # block 49 lies inside both spans now -> neither/both rule -> kernel zone, Movable second
    assert m.sysfs["memory49/valid_zones"] == "Normal Movable\n"
    m2 = Machine(kernel, movable_node=True)
    m2.add_memory(0, HOT, BLK)
    assert m2.sysfs["memory48/valid_zones"] == "Movable Normal\n"


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
@pytest.mark.parametrize("online_type", ["online", "online_kernel"])
def test_hole_below_4g_is_dma32_not_normal(kernel, online_type):
    """§8.5: memory hot-added in the 3-4 GiB hole intersects DMA32's span, so the default
    kernel zone is DMA32 (it used to say "Normal Movable")."""
    m = Machine(kernel)
    m.add_memory(0, 0xc0000000, BLK)
    assert m.sysfs.read("memory24/valid_zones") == "DMA32 Movable\n"
    m.online_memory_block(24, online_type)
    assert m.memory_block(24).zone == "DMA32"
    dma32 = m.zones[0][1]
    assert (dma32.zone_start_pfn, dma32.zone_end_pfn) == (0x1000, 0x100000)   # already spanned
    assert dma32.present_pages == 0xbffe0 - 0x1000 + BLK // 4096


def test_state_and_online_attribute_semantics(kernel):
    m = Machine(kernel)
    m.add_memory(0, HOT, BLK)
    s = m.sysfs
    with pytest.raises(KernelError) as e:
        s["memory48/state"] = "offline"          # already offline -> device core returns 1 -> EINVAL
    assert e.value.errno == errno.EINVAL
    assert s.write("memory48/online", "0") == 1   # the online attribute succeeds on a no-op
    with pytest.raises(KernelError) as e:
        s["memory48/state"] = "bogus"
    assert e.value.errno == errno.EINVAL
    with pytest.raises(KernelError) as e:
        s["memory48/online"] = "maybe"
    assert e.value.errno == errno.EINVAL
    s["memory48/online"] = "on\n"                # strtobool "on"
    assert s["memory48/state"] == "online\n"
    with pytest.raises(KernelError) as e:
        s["memory48/state"] = "online"
    assert e.value.errno == errno.EINVAL
    assert s.write("memory48/online", "y") == 1


def test_failing_transitions_leave_state(kernel):
    m = Machine(kernel, dyndbg=True)   # the pr_debug line below (dynamic debug)
    m.add_memory(0, HOT, BLK)
    before = m.snapshot()
    m.inject_memory_notifier_error("MEM_GOING_OFFLINE", -16)
    with pytest.raises(KernelError) as e:           # block offline: the injection does not matter
        m.offline_memory_block(48)
    assert e.value.errno == errno.EINVAL
    m.inject_memory_notifier_error("MEM_GOING_ONLINE", -12)
    with pytest.raises(KernelError) as e:
        m.sysfs["memory48/state"] = "online"
    assert e.value.errno == errno.ENOMEM
    after = m.snapshot()
    # §5.5: v5.3 does not undo the span growth/memmap init of move_pfn_range_to_zone,
    # and memory_subsys_online resets online_type to -1: exactly that partial state
    assert after["blocks"][-1][1] == before["blocks"][-1][1]   # still MEM_OFFLINE
    assert after["blocks"][-1][2] == -1
    assert after["iomem"] == before["iomem"]
    assert m.zones[0][C.ZONE_NORMAL].zone_end_pfn == (HOT + BLK) >> 12
    assert m.zones[0][C.ZONE_NORMAL].present_pages == 0x40000
    assert not m.sections.online_section_nr(48)
    assert f"online_pages [mem {HOT:#010x}-{HOT + BLK - 1:#010x}] failed" in m.dmesg
    m.inject_memory_notifier_error("online", 0)
    m.online_memory_block(48)
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.offline_memory_block(48)
    assert e.value.errno == errno.EBUSY
    assert m.snapshot() == before
    assert m.dmesg[-1] == (f"memory offlining [mem {HOT:#010x}-{HOT + BLK - 1:#010x}] "
                           f"failed due to notifier failure")


def test_online_block_without_system_ram_is_einval(kernel):
    # §5.5 step 6: the walk finds no busy System RAM -> -EINVAL (memory added by add_pages only)
    m = Machine(kernel)
    H.arch_add_memory(m, 0, HOT, BLK)
    create_memory_block_devices(m, HOT, BLK)
    assert device_online(m, blocks(m)[48]) == -errno.EINVAL
    assert blocks(m)[48].state == "offline"


def test_pages_correctly_probed_ebusy(kernel):
    m = Machine(kernel)
    m.add_memory(0, HOT, BLK)
    H.remove_pages(m, None, HOT >> 12, 0x8000)     # the memmap goes
    if kernel == "5.2":
        # §7: v5.2 __remove_section unregisters the section from its block, which goes at 0
        assert "memory48/state" not in m.sysfs
        return
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.sysfs["memory48/state"] = "online"
    assert e.value.errno == errno.EBUSY
    after = m.snapshot()
    assert after["sections"] == before["sections"] and after["nodes"] == before["nodes"]
    assert any("pages_correctly_probed" in line for line in m.dmesg)


def test_remove_online_block(kernel):
    m = Machine(kernel, auto_online=True)
    m.add_memory(0, HOT, BLK)
    before = m.snapshot()
    line = "removing memory fails, because memory [0x0000000180000000-0x0000000187ffffff] is onlined"
    exc = KernelError if kernel == "5.3" else KernelBug   # §6.6 / §7: -EBUSY vs BUG()
    with pytest.raises(exc) as e:
        m.remove_memory(0, HOT, BLK)
    if kernel == "5.3":
        assert e.value.errno == errno.EBUSY
    assert m.dmesg[-1] == line
    assert m.snapshot() == before


def test_remove_misaligned_is_bug(kernel):
    m = Machine(kernel)
    before = m.snapshot()
    with pytest.raises(KernelBug):
        m.remove_memory(0, HOT + 2 * MiB, BLK)
    assert m.dmesg[-1] == "Block size [0x8000000] unaligned hotplug range: start 0x180200000, size 0x8000000"
    assert m.snapshot() == before


# ------------------------------------------------------------------ removing memory with no usable memmap (§6.1)
@pytest.mark.parametrize("kernel", ["5.1", "5.2", "5.3"])
def test_remove_memory_never_added_faults(kernel):
    """x86 arch_remove_memory reads page_zone(pfn_to_page(start)); with no memmap the vmemmap
    is unmapped and the kernel faults (§6.1): KernelBug, nothing changed."""
    m = Machine(kernel)
    before = m.snapshot()
    with pytest.raises(KernelBug):
        m.remove_memory(0, 0x200000000, BLK)
    assert m.snapshot() == before
    assert m.dmesg[-1] == "BUG: unable to handle page fault for address: ffffea0008000000"
    with pytest.raises(KernelBug):
        H.arch_remove_memory(m, 0, 0x200000000, BLK)
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_remove_memory_added_but_never_onlined_still_works(kernel):
    """A memmap that exists but was never initialised (poisoned) gives no zone (§6.1): the
    removal goes on without span shrinking, as before."""
    m = Machine(kernel)
    before = m.snapshot()
    m.add_memory(0, 0x200000000, BLK)
    m.remove_memory(0, 0x200000000, BLK)
    assert not m.sections.present_section_nr(0x200000000 >> 27)
    after = m.snapshot()
    assert (after["blocks"], after["iomem"], after["nodes"]) == (before["blocks"], before["iomem"], before["nodes"])


# ------------------------------------------------------------------ add_memory order of checks (§8.1)
def test_add_memory_error_order(kernel):
    m = Machine(kernel, dyndbg=True)   # the pr_debug lines below (dynamic debug)
    before = m.snapshot()
    with pytest.raises(KernelError) as e:                 # overlap wins over misalignment
        m.add_memory(0, 0x100100000, BLK)
    assert e.value.errno == errno.EEXIST
    assert m.dmesg[-1] == "Unable to reserve System RAM region: 0000000100100000->0000000108100000"
    # beyond the physical address space: max_mem_size is U64_MAX, the request under the
    # iomem root ((1 << 46) - 1 on x86) fails instead (§8.1); this used to expect E2BIG
    with pytest.raises(KernelError) as e:
        m.add_memory(0, (1 << 46) - BLK, 2 * BLK)
    assert e.value.errno == errno.EEXIST
    assert m.dmesg[-1] == "Unable to reserve System RAM region: 00003ffff8000000->0000400008000000"
    m.max_mem_size = 1 << 40                              # mem=1T: -E2BIG comes first (§8.1)
    with pytest.raises(KernelError) as e:
        m.add_memory(0, (1 << 40) - BLK, 2 * BLK)
    assert e.value.errno == errno.E2BIG
    m.max_mem_size = (1 << 64) - 1
    with pytest.raises(KernelError) as e:                 # size 0: __request_region fails first
        m.add_memory(0, HOT, 0)
    assert e.value.errno == errno.EEXIST
    with pytest.raises(KernelError) as e:
        m.add_memory(0, HOT, BLK + 2 * MiB)
    assert e.value.errno == errno.EINVAL
    assert m.dmesg[-1] == "Block size [0x8000000] unaligned hotplug range: start 0x180000000, size 0x8200000"
    assert m.snapshot() == before
    with pytest.raises(TypeError):
        m.add_memory(0, "0x1", BLK)
    with pytest.raises(ValueError):
        m.add_memory(0, -BLK, BLK)
    with pytest.raises(ValueError):
        m.add_memory(-1, HOT, BLK)
    assert m.snapshot() == before


def test_add_memory_new_node_and_offline_node(kernel):
    m = Machine(kernel)
    m.add_memory(1, HOT, BLK)
    assert m.nodes[1].online and blocks(m)[48].nid == 1
    m.online_memory_block(48)
    assert m.zones[1][C.ZONE_NORMAL].state() == (HOT >> 12, 0x8000, 0x8000)
    assert m.sysfs["memory48/valid_zones"] == "Normal\n"
    m.offline_memory_block(48)
    m.remove_memory(1, HOT, BLK)
    assert not m.nodes[1].online                       # try_offline_node
    assert m.zones[1][C.ZONE_NORMAL].state() == (0, 0, 0)


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_add_memory_beyond_physmem_is_eexist(kernel):
    m = Machine(kernel, dyndbg=True)   # the pr_debug line below (dynamic debug)
    assert m.max_mem_size == (1 << 64) - 1                # U64_MAX by default (§8.1)
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.add_memory(0, 1 << 46, BLK)
    assert e.value.errno == errno.EEXIST
    assert m.dmesg[-1] == "Unable to reserve System RAM region: 0000400000000000->0000400008000000"
    assert m.snapshot() == before


def test_add_memory_above_46_bits_fits_with_5_level_paging():
    m = Machine(max_physmem_bits=52)
    m.add_memory(0, 1 << 46, BLK)
    assert m.sections.valid_section_nr((1 << 46) >> 27)


# ------------------------------------------------------------------ negative block ids (api.md "Errors")
def test_negative_block_id_is_value_error():
    m = Machine()
    before = m.snapshot()
    n = len(m.dmesg)
    with pytest.raises(ValueError):
        m.memory_block(-1)
    with pytest.raises(ValueError):
        m.online_memory_block(-1)
    with pytest.raises(ValueError):
        m.offline_memory_block(-1)
    assert m.snapshot() == before and len(m.dmesg) == n
    with pytest.raises(KernelError) as e:
        m.memory_block(10 ** 6)
    assert e.value.errno == errno.ENODEV


# ------------------------------------------------------------------ observed reports
def _observed(name):
    obs = parse(observed(name).read_text()).observations
    return re.sub(r"^\[\s*\d+\.\d+\]\s*", "", obs[0])


def test_observed_nemu_48(kernel):
    # github.com/intel/nemu/issues/48: 128 MiB blocks, hot-add at 0x100200000
    line = _observed("github.com_intel_nemu_issues_48.txt")
    m = Machine.from_iomem("00001000-0009ffff : System RAM\n00100000-bfffffff : System RAM\n", kernel=kernel)
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.add_memory(0, 0x100200000, 0x40000000)
    assert e.value.errno == errno.EINVAL
    assert m.dmesg[-1] == line
    assert m.snapshot() == before


@pytest.mark.parametrize("layout", ["override", "probe"])
def test_observed_kata_1841(kernel, layout):
    # github.com/kata-containers/kata-containers/issues/1841: 1 GiB blocks, hot-add at 0xc8000000
    line = _observed("github.com_kata-containers_kata-containers_issues_1841.txt")
    if layout == "override":
        m = Machine.from_iomem("00001000-0009ffff : System RAM\n00100000-bfffffff : System RAM\n",
                               kernel=kernel, memory_block_size=GiB)
    else:   # boot RAM ends at 65 GiB: §1.1 step 4 picks 1 GiB
        m = Machine.from_iomem("00001000-0009ffff : System RAM\n00100000-bfffffff : System RAM\n"
                               "200000000-103fffffff : System RAM\n", kernel=kernel)
    assert m.memory_block_size == GiB
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.add_memory(0, 0xc8000000, 0x40000000)
    assert e.value.errno == errno.EINVAL
    assert m.dmesg[-1] == line
    assert m.snapshot() == before


# ------------------------------------------------------------------ §9 examples 6 and 7
def test_example6_misaligned_add_pages(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    before = m.snapshot()
    if kernel == "5.3":
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, 0x100100, 512)
        assert e.value.errno == errno.EINVAL
        assert "Misaligned __add_pages start: 0x100100 end: #1002ff" in m.dmesg
        assert m.dmesg[-3] == CUT
        assert m.snapshot() == before
    else:
        # §7: no check_pfn_span in v5.2; __add_pages widens to the whole section 32
        H.add_pages(m, 0, 0x100100, 512)
        assert not any("Misaligned" in line for line in m.dmesg)
        assert m.sections.valid_section_nr(32) and m.pfn_valid(0x100000) and m.pfn_valid(0x107fff)


def test_example7_misaligned_add_memory(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    before = m.snapshot()
    with pytest.raises(KernelError) as e:
        m.add_memory(0, 0x100100000, BLK)
    assert e.value.errno == errno.EINVAL
    assert m.dmesg[-1] == "Block size [0x8000000] unaligned hotplug range: start 0x100100000, size 0x8000000"
    assert m.snapshot() == before       # the System RAM resource was released again


# ------------------------------------------------------------------ the layer below (contract)
def test_add_pages_altmap_and_zero(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    alt = m._altmap_cls(0x100000 + 512, 0, 8)
    before = m.snapshot()
    for _ in range(2):
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, 0x100000, 0x8000, alt)
        assert e.value.errno == errno.EINVAL
    assert m.dmesg.count("memory add fail, invalid altmap") == 1     # pr_warn_once
    assert m.snapshot() == before
    H.add_pages(m, 0, 0x100000, 0)          # §5.2: section-aligned, nr 0 -> no-op
    assert m.snapshot() == before
    if kernel == "5.3":
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, 0x100200, 0)  # empty mask -> -EINVAL
        assert e.value.errno == errno.EINVAL
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, 0, 0)         # all-ones mask hits boot section 0
        assert e.value.errno == errno.EEXIST
        assert m.snapshot() == before
    else:
        with pytest.raises(KernelBug):
            H.add_pages(m, 0, 0, 0)
    with pytest.raises(TypeError):
        H.add_pages(m, 0, 0x100000, 0x8000, object())


def test_add_pages_no_rollback_and_arch_warn(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    if kernel == "5.3":
        H.add_pages(m, 0, 0x108000 + 512, 512)
    else:
        H.add_pages(m, 0, 0x108000, 0x8000)
    # sections 32 added, 33 already active -> EEXIST (5.3) after the first piece stayed
    if kernel == "5.3":
        with pytest.raises(KernelError) as e:
            H.arch_add_memory(m, 0, 0x100000000, 2 * BLK)
        assert e.value.errno == errno.EEXIST
        assert m.sections.valid_section_nr(32)                   # no rollback (§5.2)
        assert m.max_pfn == 0x110000                             # update_end_of_memory_vars anyway
        # §5.1 shape: banner, then the WARNING line (file:line symbol+off/size; nominal numbers)
        assert m.dmesg[-2:] == [CUT,
                                "WARNING: CPU: 0 PID: 1 at arch/x86/mm/init_64.c:860 add_pages+0x0/0x100"]
    else:
        H.arch_add_memory(m, 0, 0x100000000, 2 * BLK)            # -EEXIST swallowed (§7)
        assert m.sections.valid_section_nr(32) and m.max_pfn == 0x110000


def test_remove_pages_alignment(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    H.add_pages(m, 0, 0x100000, 0x8000)
    before = m.snapshot()
    if kernel == "5.3":
        assert H.remove_pages(m, None, 0x100100, 512) == 0
        assert "Misaligned __remove_pages start: 0x100100 end: #1002ff" in m.dmesg
        assert m.snapshot() == before
        assert H.remove_pages(m, None, 0x100000, 512) == 1          # sub-section removal
        assert not m.pfn_valid(0x100000) and m.pfn_valid(0x100200)
    else:
        with pytest.raises(KernelBug):
            H.remove_pages(m, None, 0x100000, 512)
        assert m.snapshot() == before
        assert H.remove_pages(m, None, 0x100000, 0x8000) == 1
        assert not m.pfn_valid(0x100000)


# ------------------------------------------------------------------ v5.1 __remove_pages (§7)
def _two_sections_with_gap(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    H.add_pages(m, 0, 0x100000, SEC)                      # section 32
    H.add_pages(m, 0, 0x110000, SEC)                      # section 34 (33 never added)
    return m


def test_v51_remove_pages_stops_at_first_invalid_section():
    m = _two_sections_with_gap("5.1")
    n = len(m.dmesg)
    with pytest.raises(KernelError) as e:
        H.remove_pages(m, None, 0x100000, 3 * SEC)
    assert e.value.errno == errno.EINVAL
    assert not m.sections.valid_section_nr(32)            # removed before the failure
    assert m.sections.valid_section_nr(34)                # not reached
    assert m.dmesg[n:] == []                              # v5.1.15 __remove_section: no WARN


def test_v51_arch_remove_memory_warns_and_returns_error():
    m = _two_sections_with_gap("5.1")
    n = len(m.dmesg)
    assert H.arch_remove_memory(m, 0, 0x100000000, 3 * BLK) == -errno.EINVAL
    assert m.dmesg[n:] == [CUT, "WARNING: CPU: 0 PID: 1 at arch/x86/mm/init_64.c:1210 arch_remove_memory+0x0/0x100"]
    assert m.sections.valid_section_nr(34)


def test_v52_remove_pages_goes_on_after_invalid_section():
    m = _two_sections_with_gap("5.2")
    assert H.remove_pages(m, None, 0x100000, 3 * SEC) == 2
    assert not m.sections.valid_section_nr(32) and not m.sections.valid_section_nr(34)
    assert m.dmesg[-2:] == [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:510 __remove_section+0x0/0x100"]


# ------------------------------------------------------------------ the layer below (continued)
def test_move_pfn_range_to_zone_device_altmap(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    H.add_pages(m, 0, 0x100000, 0x8000)
    alt = m._altmap_cls(0x100000, 512, 1024)
    H.move_pfn_range_to_zone(m, 0, C.ZONE_DEVICE, 0x100000, 0x8000, alt)
    dev = m.zones[0][C.ZONE_DEVICE]
    assert dev.state() == (0x100000, 0x8000, 0)
    # only [base + reserve, base + reserve + free) is initialised (§5.5 step 3)
    assert m.sections.page_zonenum(0x100200) == C.ZONE_DEVICE
    assert m.sections.page_zonenum(0x100600) == -1
    assert m.sections.page_zonenum(0x100000) == -1
    H.move_pfn_range_to_zone(m, 0, C.ZONE_DEVICE, 0x100000, 0x8000)   # no altmap: nothing initialised
    assert m.sections.page_zonenum(0x100600) == -1


def test_shrink_all_holes_quirk_v52_vs_v53(kernel):
    # §6.5 / §7: removing the only online block of a zone empties it in v5.3; in v5.2 too
    m = Machine(kernel)
    m.add_memory(0, HOT, BLK)
    m.online_memory_block(48, "online_movable")
    m.offline_memory_block(48)
    m.remove_memory(0, HOT, BLK)
    assert m.zones[0][C.ZONE_MOVABLE].state() == (0, 0, 0)


def test_pfn_to_online_page_macro(kernel):
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    # §9 ex. 1 / §4.3: the tail of online early section 15 counts although not RAM
    assert m.pfn_to_online_page(0x7F800)
    assert not m.pfn_to_online_page(0x80000)
    assert not m.pfn_to_online_page(-1)
    assert not m.pfn_to_online_page(1 << 40)


# ------------------------------------------------------------------ printk of zero (§5.1, §8.1)
def test_printk_hex_of_zero_keeps_the_prefix():
    """lib/vsprintf.c ``number()`` prints the ``0x`` of ``%#lx`` / ``%#010llx`` for zero too
    (``0x0``, ``0x00000000``), unlike glibc's bare ``0`` (issue #10 correction of §5.1 and §8.1)."""
    m = Machine(kernel="5.3", dyndbg=True)   # the offline pr_debug line (dynamic debug)
    with pytest.raises(KernelError):
        H.check_pfn_span(m, 0, 100, "add")
    assert "Misaligned __add_pages start: 0x0 end: #63" in m.dmesg
    with pytest.raises(KernelError):
        m.sysfs["memory0/state"] = "offline"
    assert any(line.startswith("memory offlining [mem 0x00000000-0x07ffffff] failed") for line in m.dmesg)
