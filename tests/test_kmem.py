"""kmem per release: every row of kmem.md K §1 on both sides of its boundary (releases read:
docs/spec/kmem-evidence.md §1), the K §7 worked example, and the K §5 failure paths.

Each test names the row; the kernel file and the release pair read are in kmem-evidence.md
(drivers/dax/kmem.c, drivers/dax/bus.c, drivers/dax/hmem/, drivers/base/{bus,dd}.c,
drivers/nvdimm/e820.c, arch/x86/mm/numa.c).
"""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelError, Machine
from sparsemem import kmem as KM
from sparsemem.hotplug import IORESOURCE_SYSRAM_DRIVER_MANAGED

MiB, GiB = 1 << 20, 1 << 30

#: K §7: 8 GiB of "Persistent Memory" at 0x200000000, boot RAM below 8 GiB (128 MiB blocks)
PMEM = """\
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
100000000-1ffffffff : System RAM
200000000-3ffffffff : Persistent Memory
"""
LEGACY = PMEM.replace("Persistent Memory", "Persistent Memory (legacy)")
#: 8 GiB of EFI specific-purpose memory right above the boot RAM (K §2.2)
SOFT = """\
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
100000000-23fffffff : System RAM
240000000-43fffffff : Soft Reserved
"""
SR_NODE1 = [(0x240000000, 0x440000000, 1)]
#: a CXL RAM region of 16 GiB in window 0 (K §2.3)
CXL = """\
00001000-0009fbff : System RAM
00100000-bffdffff : System RAM
100000000-23fffffff : System RAM
1050000000-144fffffff : CXL Window 0
  1050000000-144fffffff : region0
"""


def pmem_dev(kernel, layout=PMEM, size=None, **kw):
    m = Machine(kernel=kernel, iomem=layout, **kw)
    m.regions[0].create_namespace(mode="devdax", map="dev", align=2 * MiB, **({"size": size} if size else {}))
    (dev,) = m.dax_devices
    return m, dev


def pmem_lines(m):
    text = m.iomem_text()
    return text[text.index("Persistent Memory"):].splitlines()


def kmem_lines(m):
    return [str(ln) for ln in m.dmesg if str(ln).startswith(("kmem", "device_dax"))]


# ---------------------------------------------------------------------------------------------
# K §7 worked example


@pytest.mark.parametrize("kernel", ["5.8", "6.12"])
def test_worked_example_128mib_blocks(kernel):
    """K §7: dataoff 130 MiB -> dax0.0 [0x208200000, 0x3ffffffff] (8062 MiB); kmem range
    [0x210000000, 0x3ffffffff] = 7936 MiB = memory66 .. memory127; 126 MiB lost at the head,
    none at the tail; 62 x 2 MiB = 124 MiB of memmap in DRAM."""
    m, dev = pmem_dev(kernel)
    assert dev.ranges == [(0x208200000, 8062 * MiB)] and dev.size == 8062 * MiB
    assert dev.to_dict()["size"] == 8062 * MiB
    out = dev.reconfigure("system-ram")
    assert (out["online_memblocks"], out["total_memblocks"], out["movable"]) == (62, 62, True)
    assert [b.id for b in dev.memory_blocks()] == list(range(66, 128))
    st = dev.kmem_stats()
    assert st["kmem_bytes"] == 7936 * MiB and st["lost_alignment"] == 126 * MiB
    assert (st["lost_head"], st["lost_tail"]) == (126 * MiB, 0)
    assert st["lost_metadata"] == 130 * MiB           # the namespace's memmap reservation, unused
    assert st["memmap_dram"] == 124 * MiB and st["memmap_self"] == 0
    assert set(st["zones"].values()) == {"Movable"} and len(st["zones"]) == 62
    assert pmem_lines(m) == ["Persistent Memory", "  200000000-2081fffff : namespace0.0",
                             "  210000000-3ffffffff : dax0.0", "    210000000-3ffffffff : System RAM (kmem)"]


def test_worked_example_2gib_blocks_on_bare_metal():
    """K §7, second half: >= 64 GiB of boot RAM on bare metal (5.9+) -> 2 GiB blocks; kmem
    range [0x280000000, 0x3ffffffff] = 3 blocks, head loss 1918 MiB."""
    big = PMEM.replace("100000000-1ffffffff : System RAM\n", "100000000-1ffffffff : System RAM\n") + \
        "400000000-10fffffff : System RAM\n".replace("10fffffff", "10ffffffff")
    m, dev = pmem_dev("5.9", big, hypervisor=False)
    assert m.memory_block_size == 2 * GiB
    dev.reconfigure("system-ram")
    st = dev.kmem_stats()
    assert dev.kmem_ranges() == [(0x280000000, 6 * GiB)] and len(dev.memory_blocks()) == 3
    assert st["lost_head"] == 1918 * MiB and st["lost_tail"] == 0


# ---------------------------------------------------------------------------------------------
# row 5.3: hot-remove on unbind (read 5.2.1 -> 5.3.0)


@pytest.mark.parametrize("kernel,removed", [("5.1", False), ("5.2", False), ("5.3", True), ("5.4", True)])
def test_row_5_3_hot_remove_on_unbind(kernel, removed):
    m, dev = pmem_dev(kernel)
    dev.reconfigure("system-ram")
    blocks = len(m.memory_blocks)
    if removed:
        out = dev.reconfigure("devdax", force=True)
        assert out == {"chardev": "dax0.0", "size": dev.size, "target_node": 0, "mode": "devdax"}
        assert len(m.memory_blocks) == blocks - 62
        assert pmem_lines(m)[2] == "  208200000-3ffffffff : dax0.0"   # device_dax's claim again
        return
    # 5.1/5.2: kmem's remove leaks its resource, so device_dax cannot claim the range again;
    # bind fails -ENODEV (<= 5.12), daxctl reports it and leaves the device unbound
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("devdax", force=True)
    assert ei.value.errno == errno.ENODEV
    assert "libdaxctl: daxctl_dev_enable: dax0.0: failed to enable" in dev.stderr
    assert dev.stderr[-2:] == ["error reconfiguring devices: No such device", "reconfigured 0 devices"]
    assert dev.to_dict() == {"chardev": "dax0.0", "size": dev.size, "target_node": 0, "mode": "devdax",
                             "state": "disabled"}
    assert len(m.memory_blocks) == blocks and dev.kmem_leaked
    assert pmem_lines(m)[2:] == ["  210000000-3ffffffff : dax0.0", "    210000000-3ffffffff : System RAM"]
    # device_dax probed twice (new_id's driver_attach, then bind): two claim failures
    assert kmem_lines(m).count(
        "device_dax dax0.0: could not reserve region [mem 0x208200000-0x3ffffffff]") == 2


@pytest.mark.parametrize("kernel,leak", [("5.2", True), ("5.3", False)])
def test_row_5_3_failed_hot_add_releases_the_claim(kernel, leak):
    """kmem.c 5.2.1 returns the add_memory error without release_resource (kmem-evidence.md
    §2 item 1); 5.3.0 releases it.  The hot-add fails here on mem= (max_mem_size, -E2BIG:
    every add before 5.7)."""
    m, dev = pmem_dev(kernel, mem=0x200000000)
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == errno.ENODEV          # bind_store before 5.14
    lines = kmem_lines(m)
    assert lines[0] == f"kmem: probe of dax0.0 failed with error -{errno.E2BIG}"
    assert lines[1:] == [f"kmem: probe of dax0.0 failed with error -{errno.E2BIG}"]
    if leak:
        # the leaked claim is not busy, so the second probe (bind) nests a new claim in it
        # (__request_region descends into a non-busy conflict) and fails the same way
        assert pmem_lines(m)[1:] == ["  200000000-2081fffff : namespace0.0", "  210000000-3ffffffff : dax0.0",
                                     "    210000000-3ffffffff : dax0.0"]
    else:
        assert pmem_lines(m) == ["Persistent Memory", "  200000000-2081fffff : namespace0.0"]
    assert dev.to_dict()["state"] == "disabled" and not m.memory_blocks[-1].start >= 0x200000000


# ---------------------------------------------------------------------------------------------
# row 5.5: Soft Reserved and hmem (bracketed 5.4.0 -> 5.6.4)


@pytest.mark.parametrize("kernel,soft", [("5.4", False), ("5.5", True), ("5.9", True)])
def test_row_5_5_soft_reserved_becomes_an_hmem_device(kernel, soft):
    m = Machine(kernel=kernel, iomem=SOFT, numa=SR_NODE1)
    text = m.iomem_text()
    if not soft:
        assert "100000000-43fffffff : System RAM\n" in text and m.dax_devices == []
        return
    # 5.5-5.9: the HMAT target (the SRAT range of node 1) makes hmem.0; its device is dax0.0
    assert "240000000-43fffffff : hmem.0\n  240000000-43fffffff : Soft Reserved\n" \
           "    240000000-43fffffff : dax0.0\n" in text
    (dev,) = m.dax_devices
    assert (dev.kind, dev.target_node, dev.align, dev.mode, dev.enabled) == ("hmem", 1, 2 * MiB, "devdax", True)


def test_row_5_5_efi_nosoftreserve_keeps_it_ram():
    m = Machine(kernel="5.5", iomem=SOFT, efi_soft_reserve=False)
    assert "100000000-43fffffff : System RAM\n" in m.iomem_text() and m.dax_devices == []
    assert m.cmdline == "efi=nosoftreserve" and m.boot_args["efi_soft_reserve"] is False
    assert m.reboot().dax_devices == [] and m.reboot(efi_soft_reserve=True).dax_devices == []


# ---------------------------------------------------------------------------------------------
# row 5.7: legacy e820 pmem target node (read 5.6.4 -> 5.7.14)


@pytest.mark.parametrize("kernel,node", [("5.6", 0), ("5.7", -1)])
def test_row_5_7_legacy_pmem_target_node(kernel, node):
    m, dev = pmem_dev(kernel, LEGACY)
    assert dev.target_node == node
    if node == 0:
        dev.reconfigure("system-ram")
        assert dev.to_dict()["total_memblocks"] == 62
        return
    assert "target_node" not in dev.to_dict()     # the sysfs file is hidden (K §2)
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == errno.ENODEV
    assert kmem_lines(m).count("kmem dax0.0: rejecting DAX region [mem 0x208200000-0x3ffffffff] with invalid "
                               "node: -1") == 2
    # the device stays unbound ("state": "disabled"), as daxctl leaves it
    assert dev.to_dict()["state"] == "disabled" and not dev.enabled


def test_row_5_7_numa_option_gives_the_target_node():
    m, dev = pmem_dev("5.7", LEGACY, numa=[(0x200000000, 0x400000000, 2)])
    assert dev.target_node == 2
    dev.reconfigure("system-ram")
    assert {b.nid for b in dev.memory_blocks()} == {2} and m.nodes[2].online


# ---------------------------------------------------------------------------------------------
# row 5.8: add_memory_driver_managed, "System RAM (kmem)" (read 5.7.14 -> 5.8.1)


@pytest.mark.parametrize("kernel,name,managed", [("5.7", "System RAM", False), ("5.8", "System RAM (kmem)", True)])
def test_row_5_8_resource_name(kernel, name, managed):
    m, dev = pmem_dev(kernel)
    dev.reconfigure("system-ram", online=False)
    assert pmem_lines(m)[3] == f"    210000000-3ffffffff : {name}"
    (res,) = dev.kmem_res
    assert bool(res.children[0].flags & IORESOURCE_SYSRAM_DRIVER_MANAGED) is managed


# ---------------------------------------------------------------------------------------------
# row 5.10: per-range kmem (read 5.9.1 -> 5.10.0/5.10.44)


SMALL = 64 * MiB      # a devdax namespace with no full 128 MiB block


@pytest.mark.parametrize("kernel", ["5.9", "5.10"])
def test_row_5_10_device_without_a_full_block(kernel):
    m, dev = pmem_dev(kernel, size=SMALL)
    s = dev.ranges[0][0]
    if kernel == "5.9":
        with pytest.raises(KernelError) as ei:
            dev.reconfigure("system-ram")
        assert ei.value.errno == errno.ENODEV
        ks, kn = KM.region_kmem_range(s, dev.size, 128 * MiB)
        assert kmem_lines(m)[0] == f"kmem dax0.0: could not reserve region [0x{ks:016x}-0x{(ks + kn) % (1 << 64):016x}]"
        assert dev.to_dict()["state"] == "disabled"
        return
    # 5.10-5.14: bound with nothing added; daxctl: zero sections, "all ... (0) already online"
    out = dev.reconfigure("system-ram")
    assert out == {"chardev": "dax0.0", "size": dev.size, "target_node": 0, "align": 2 * MiB,
                   "mode": "system-ram", "online_memblocks": 0, "total_memblocks": 0, "movable": False}
    assert kmem_lines(m) == [f"kmem dax0.0: mapping0: {s:#x}-{s + dev.size - 1:#x} too small after alignment"]
    assert "dax0.0: all memory sections (0) already online" in dev.stderr


@pytest.mark.parametrize("kernel,text", [
    ("5.9", "kmem dax0.0: rejecting DAX region [mem 0x208200000-0x3ffffffff] with invalid node: -1"),
    ("5.10", "kmem dax0.0: rejecting DAX region with invalid node: -1")])
def test_row_5_10_invalid_node_message(kernel, text):
    m, dev = pmem_dev(kernel, LEGACY)
    with pytest.raises(KernelError):
        dev.reconfigure("system-ram")
    assert kmem_lines(m)[0] == text


@pytest.mark.parametrize("kernel,align", [("5.9", False), ("5.10", True)])
def test_row_5_10_align_attribute(kernel, align):
    _, dev = pmem_dev(kernel)
    assert ("align" in dev.to_dict()) is align


@pytest.mark.parametrize("kernel,device", [("5.9", False), ("5.10", True)])
def test_row_5_10_hmem_for_every_soft_reserved_range(kernel, device):
    """Without an HMAT target (no numa= range) 5.5-5.9 leave Soft Reserved unused; 5.10 makes
    an hmem device for it (target node phys_to_target_node: node 1 from the SRAT here)."""
    m = Machine(kernel=kernel, iomem=SOFT + "500000000-53fffffff : Soft Reserved\n", numa=SR_NODE1)
    names = [(d.name, d.ranges[0][0]) for d in m.dax_devices]
    if not device:
        assert names == [("dax0.0", 0x240000000)]       # only the HMAT target
        return
    assert names == [("dax0.0", 0x240000000), ("dax1.0", 0x500000000)]
    # the HMAT target's Soft Reserved is below hmem.0 already: skipped, pr_info
    assert any(str(ln).startswith("HMEM: skip [mem 0x240000000-0x43fffffff flags 0x200], already claimed")
               for ln in m.dmesg)
    assert m.dax_devices[1].target_node == -1          # no SRAT range for it


@pytest.mark.parametrize("kernel,text", [
    ("5.9", "kmem dax0.0: DAX region [mem 0x210000000-0x3ffffffff] cannot be hotremoved until the next reboot"),
    ("5.10", "kmem dax0.0: mapping0: 0x210000000-0x3ffffffff cannot be hotremoved until the next reboot")])
def test_rows_5_3_and_5_10_failed_hot_remove(kernel, text):
    """Unbinding kmem while a block is online (the driver core ignores remove's result): the
    memory and the claims stay, and device_dax cannot bind again (K §5.5)."""
    m, dev = pmem_dev(kernel)
    dev.reconfigure("system-ram")
    assert m.dax.unbind(dev) == 0 and not dev.enabled
    assert text in kmem_lines(m)
    assert pmem_lines(m)[2:] == ["  210000000-3ffffffff : dax0.0", "    210000000-3ffffffff : System RAM (kmem)"]
    assert m.dax.bind("device_dax", "dax0.0") == -errno.ENODEV


# ---------------------------------------------------------------------------------------------
# row 5.14: bind returns the probe's error (bracketed 5.12.9 -> 5.14.0-rc5)


@pytest.mark.parametrize("kernel,err", [("5.12", errno.ENODEV), ("5.13", errno.ENODEV), ("5.14", errno.EINVAL)])
def test_row_5_14_bind_error(kernel, err):
    m, dev = pmem_dev(kernel, LEGACY)
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == err
    assert m.dax.bind("kmem", "dax0.0") == -err
    assert m.dax.bind("kmem", "dax9.9") == -errno.ENODEV


def test_row_5_14_bind_of_a_bound_device():
    for kernel, err in (("5.12", errno.ENODEV), ("5.14", errno.EBUSY)):
        m, dev = pmem_dev(kernel)
        assert m.dax.bind("device_dax", "dax0.0") == -err


# ---------------------------------------------------------------------------------------------
# row 5.15: empty devices rejected, memory groups (read 5.14.0-rc5 -> 5.15.16); row 6.4


@pytest.mark.parametrize("kernel", ["5.14", "5.15"])
def test_row_5_15_empty_device_rejected(kernel):
    m, dev = pmem_dev(kernel, size=SMALL)
    s = dev.ranges[0][0]
    if kernel == "5.14":
        dev.reconfigure("system-ram")
        assert dev.mode == "system-ram" and dev.kmem_group is None
        return
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == errno.EINVAL
    too_small = f"kmem dax0.0: mapping0: {s:#x}-{s + dev.size - 1:#x} too small after alignment"
    rejecting = "kmem dax0.0: rejecting DAX region without any memory after alignment"
    assert kmem_lines(m) == [too_small, rejecting, f"kmem: probe of dax0.0 failed with error -{errno.EINVAL}"] * 2


@pytest.mark.parametrize("kernel,max_pages", [("5.14", None), ("5.15", 7936 * MiB), ("6.3", 7936 * MiB),
                                              ("6.4", 7936 * MiB // 4096)])
def test_rows_5_15_and_6_4_memory_group(kernel, max_pages):
    """5.15-6.3 register the group with the byte count as its page maximum; 6.4 PFN_UP."""
    m, dev = pmem_dev(kernel)
    dev.reconfigure("system-ram")
    if max_pages is None:
        assert dev.kmem_group is None and m.dax.memory_groups == {}
        return
    assert dev.kmem_group == {"id": 0, "nid": 0, "max_pages": max_pages, "total_bytes": 7936 * MiB}
    dev.reconfigure("devdax", force=True)
    assert m.dax.memory_groups == {} and dev.kmem_group is None


# ---------------------------------------------------------------------------------------------
# row 6.3: kmem by default for hmem and CXL (read 6.2.1 -> 6.3.8)


@pytest.mark.parametrize("kernel", ["6.2", "6.3"])
def test_row_6_3_hmem_binds_kmem_at_boot(kernel):
    m = Machine(kernel=kernel, iomem=SOFT, numa=SR_NODE1)
    (dev,) = m.dax_devices
    text = m.iomem_text()
    if kernel == "6.2":
        assert dev.mode == "devdax" and "240000000-43fffffff : hmem.0\n" in text
        assert not [b for b in m.memory_blocks if b.start >= 0x240000000]
        return
    # 6.3: no hmem.N resource; the device is kmem's at boot, its blocks offline (no auto-online)
    assert dev.mode == "system-ram" and "hmem.0" not in text
    assert "240000000-43fffffff : Soft Reserved\n  240000000-43fffffff : dax0.0\n" \
           "    240000000-43fffffff : System RAM (kmem)\n" in text
    blocks = dev.memory_blocks()
    assert len(blocks) == 64 and {str(b.state) for b in blocks} == {"offline"}
    assert dev.to_dict() == {"chardev": "dax0.0", "size": 8 * GiB, "target_node": 1, "align": 2 * MiB,
                             "mode": "system-ram", "online_memblocks": 0, "total_memblocks": 64}


@pytest.mark.parametrize("kernel", ["6.2", "6.3", "6.8"])
def test_row_6_3_cxl_ram_region_device(kernel):
    m = Machine(kernel=kernel, iomem=CXL)
    if kernel == "6.2":
        assert m.dax_devices == []
        return
    (dev,) = m.dax_devices
    assert (dev.name, dev.kind, dev.ranges, dev.target_node) == ("dax0.0", "cxl", [(0x1050000000, 16 * GiB)], 0)
    assert dev.mode == "system-ram"
    assert "1050000000-144fffffff : CXL Window 0\n  1050000000-144fffffff : region0\n" \
           "    1050000000-144fffffff : dax0.0\n      1050000000-144fffffff : System RAM (kmem)\n" in m.iomem_text()
    # row 6.8: CXL devices carry memmap_on_memory (K §5.6)
    assert dev.memmap_on_memory is (kernel == "6.8")


@pytest.mark.parametrize("kernel,deferred", [("6.2", False), ("6.3", True)])
def test_row_6_3_hmem_defers_soft_reserved_inside_a_cxl_window(kernel, deferred):
    lay = CXL.replace("  1050000000-144fffffff : region0\n", "  1050000000-144fffffff : Soft Reserved\n")
    m = Machine(kernel=kernel, iomem=lay, numa=[(0x1050000000, 0x1450000000, 1)])
    assert [d.kind for d in m.dax_devices] == ([] if deferred else ["hmem"])


# ---------------------------------------------------------------------------------------------
# row 6.8: memmap_on_memory for kmem; row 6.9: the probe-failure line (read 6.8.1 -> 6.9.0)


@pytest.mark.parametrize("kernel,flag", [("6.7", False), ("6.8", True)])
def test_row_6_8_kmem_passes_memmap_on_memory(kernel, flag):
    assert KM._mhp_flags(Machine(kernel=kernel, iomem=CXL), type("D", (), {"memmap_on_memory": True})()) == \
        (2 if flag else 0)


@pytest.mark.parametrize("kernel,in_device", [("6.7", False), ("6.8", True)])
def test_row_6_8_cxl_memmap_in_its_own_blocks(kernel, in_device):
    """With memory_hotplug.memmap_on_memory=1 the 6.8 kmem passes MHP_MEMMAP_ON_MEMORY for a
    CXL device: each block keeps its memmap in its first pages (K §5.6); 6.7 does not pass it
    (6.7 runs the 6.6 row of the table, where 6.3+ CXL devices exist)."""
    m = Machine(kernel=kernel, iomem=CXL, memmap_on_memory=True)
    (dev,) = m.dax_devices
    st = dev.kmem_stats()
    assert st["kmem_bytes"] == 16 * GiB
    if in_device:
        assert (st["memmap_self"], st["memmap_dram"]) == (16 * GiB // 64, 0)
    else:
        assert (st["memmap_self"], st["memmap_dram"]) == (0, 16 * GiB // 64)


@pytest.mark.parametrize("kernel,line", [
    ("6.8", "kmem: probe of dax0.0 failed with error -22"),
    ("6.9", "kmem dax0.0: probe with driver kmem failed with error -22")])
def test_row_6_9_probe_failure_line(kernel, line):
    m, dev = pmem_dev(kernel, LEGACY)
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == errno.EINVAL
    assert kmem_lines(m)[:2] == ["kmem dax0.0: rejecting DAX region with invalid node: -1", line]


# ---------------------------------------------------------------------------------------------
# memory groups and the auto-movable policy (K §6): needs the block layer's groups


@pytest.mark.xfail(reason="auto-movable with memory groups (MHP_NID_IS_MGID, the group's remaining size) is "
                          "the hotplug core's (issue 10, H3); groups live on the dax device until then",
                   strict=False)
@pytest.mark.parametrize("kernel,zone", [("6.3", "Normal"), ("6.4", "Movable")])
def test_auto_movable_zone_follows_the_group_size(kernel, zone):
    m = Machine(kernel=kernel, iomem=SOFT.replace("100000000-23fffffff", "100000000-83fffffff").replace(
        "240000000-43fffffff", "840000000-87fffffff"), numa=[(0x840000000, 0x880000000, 0)],
        online_policy="auto-movable")
    (dev,) = m.dax_devices
    dev.reconfigure("system-ram", movable=False, force=True)
    assert {b.zone for b in dev.memory_blocks()} == {zone}
