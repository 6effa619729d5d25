"""The dax devices of a machine and daxctl's behaviour over them (kmem.md K §2, K §8, as read
in pmem/ndctl v81 daxctl/device.c, daxctl/lib/libdaxctl.c, daxctl/json.c; corrections in
docs/spec/kmem-evidence.md §4): where devices come from, the auto-online guard, the race
warnings, the failure paths and what each leaves, the JSON fields one by one, the existing
configuration, the real ``lsmem`` after a reconfigure, and the numa= / efi_soft_reserve=
boot options.
"""

from __future__ import annotations

import errno
import shutil
import subprocess

import pytest
from test_kmem import CXL, SOFT, SR_NODE1, pmem_dev

from sparsemem import KernelError, Machine
from sparsemem import dax as DX
from sparsemem import daxctl as D
from sparsemem.sysroot import export

MiB, GiB = 1 << 20, 1 << 30
FIELDS = ("chardev", "size", "target_node", "align", "mode", "online_memblocks", "total_memblocks", "movable",
          "state")


def keys_in_order(d):
    """The JSON's keys are a subsequence of util_daxctl_dev_to_json's order (K §8.3)."""
    order = [k for k in FIELDS if k in d]
    assert list(d) == order, list(d)
    return order


# ---------------------------------------------------------------------------------------------
# K §8.3: the JSON, field by field


def test_json_devdax_then_system_ram_then_devdax():
    m, dev = pmem_dev("6.2")
    d = dev.to_dict()
    assert keys_in_order(d) == ["chardev", "size", "target_node", "align", "mode"]
    assert (d["chardev"], d["size"], d["target_node"], d["align"], d["mode"]) == \
        ("dax0.0", 8062 * MiB, 0, 2 * MiB, "devdax")
    out = dev.reconfigure("system-ram")
    assert keys_in_order(out) == ["chardev", "size", "target_node", "align", "mode", "online_memblocks",
                                  "total_memblocks", "movable"]
    assert (out["mode"], out["online_memblocks"], out["total_memblocks"], out["movable"]) == \
        ("system-ram", 62, 62, True)
    assert out == dev.to_dict()
    assert dev.stderr == ["reconfigured 1 device"]


def test_json_no_online_leaves_movable_out():
    """--no-online: the blocks stay offline; the zone scan fails on an offline block, so
    ``movable`` is left out."""
    _, dev = pmem_dev("6.2")
    out = dev.reconfigure("system-ram", online=False)
    assert (out["online_memblocks"], out["total_memblocks"]) == (0, 62) and "movable" not in out


def test_json_no_movable_is_normal():
    m, dev = pmem_dev("6.2")
    out = dev.reconfigure("system-ram", movable=False)
    assert out["movable"] is False and {b.zone for b in dev.memory_blocks()} == {"Normal"}
    assert set(dev.kmem_stats()["zones"].values()) == {"Normal"}


def test_json_one_block_offline_again():
    m, dev = pmem_dev("6.2")
    dev.reconfigure("system-ram")
    m.offline_memory_block(dev.memory_blocks()[5].id)
    d = dev.to_dict()
    assert (d["online_memblocks"], d["total_memblocks"]) == (61, 62) and "movable" not in d
    assert dev.kmem_stats()["zones"][f"memory{dev.memory_blocks()[5].id}"] == "offline"


def test_json_without_align_before_5_10_and_hidden_node():
    _, dev = pmem_dev("5.9")
    assert keys_in_order(dev.to_dict()) == ["chardev", "size", "target_node", "mode"]
    m = Machine(kernel="6.2", iomem=SOFT)          # Soft Reserved above RAM, no SRAT range
    (h,) = m.dax_devices
    assert h.target_node == -1 and keys_in_order(h.to_dict()) == ["chardev", "size", "align", "mode"]


# ---------------------------------------------------------------------------------------------
# K §8.1: reconfigure-device --mode=system-ram


def test_auto_online_guard():
    """v72+: with auto-online on, only --no-movable (without --no-online) or --force pass."""
    for opts in ({}, {"online": False}, {"online": False, "movable": False}):
        m, dev = pmem_dev("6.2", auto_online=True)
        with pytest.raises(KernelError) as ei:
            dev.reconfigure("system-ram", **opts)
        assert ei.value.errno == errno.EBUSY
        assert dev.stderr == ["dax0.0: error: kernel policy will auto-online memory, aborting",
                              "error reconfiguring devices: Device or resource busy", "reconfigured 0 devices"]
        assert dev.mode == "devdax" and dev.enabled      # nothing changed
    m, dev = pmem_dev("6.2", auto_online=True)
    out = dev.reconfigure("system-ram", movable=False)
    # the kernel onlined every block at add time: daxctl warns and finds nothing to do
    assert dev.stderr[0] == "dax0.0:" and dev.stderr[1] == "  WARNING: detected a race while onlining memory"
    assert "dax0.0: all memory sections (62) already online" in dev.stderr
    assert out["online_memblocks"] == 62 and out["movable"] is False
    m, dev = pmem_dev("6.2", auto_online="online_movable")
    assert dev.reconfigure("system-ram", force=True)["movable"] is True


def test_already_system_ram_and_partly_online():
    m, dev = pmem_dev("6.2")
    dev.reconfigure("system-ram", online=False)
    m.online_memory_block(dev.memory_blocks()[0].id, "online_kernel")
    out = dev.reconfigure("system-ram")
    assert dev.stderr[0] == "dax0.0 was already in system-ram mode"
    assert "dax0.0: 1 memory section already online" in dev.stderr
    assert out["online_memblocks"] == 62 and out["movable"] is False      # one block in Normal


def test_failed_kmem_bind_leaves_the_device_unbound():
    """The target node is not possible: 5.15+ memory_group_register_static fails -EINVAL
    (no kmem line), the driver core logs the probe failure, daxctl reports the bind's error."""
    m, dev = pmem_dev("6.2", numa=[(0x200000000, 0x400000000, 1)], possible_nodes=[0])
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("system-ram")
    assert ei.value.errno == errno.EINVAL           # 5.14+: the probe's error
    assert [str(x) for x in m.dmesg if "kmem" in str(x)] == ["kmem: probe of dax0.0 failed with error -22"] * 2
    assert dev.stderr[-3:] == ["libdaxctl: daxctl_dev_enable: dax0.0: failed to enable",
                               "error reconfiguring devices: Invalid argument", "reconfigured 0 devices"]
    assert dev.to_dict()["state"] == "disabled" and dev.mode == "devdax"
    # devdax mode brings device_dax back
    assert dev.reconfigure("devdax")["mode"] == "devdax" and dev.enabled


# ---------------------------------------------------------------------------------------------
# K §8.2: devdax, online-memory, offline-memory


def test_devdax_refuses_online_memory_without_force():
    m, dev = pmem_dev("6.2")
    dev.reconfigure("system-ram")
    snap = m.snapshot()
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("devdax")
    assert ei.value.errno == errno.EBUSY
    assert dev.stderr[:2] == ["dax0.0: found 62 memory sections online", "dax0.0: refusing to change modes"]
    assert m.snapshot() == snap and dev.mode == "system-ram"


def test_devdax_force_with_an_unremovable_block():
    """--force offlines first; a block that cannot go offline stops it with the write's errno,
    the blocks before it offline, the device still kmem's."""
    m, dev = pmem_dev("5.3")
    dev.reconfigure("system-ram", movable=False)
    blocks = dev.memory_blocks()
    m.inject_memory_notifier_error("offline", -errno.EBUSY)
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("devdax", force=True)
    assert ei.value.errno == errno.EBUSY
    assert any(ln.startswith("libdaxctl: offline_one_memblock: dax0.0: Failed to offline") for ln in dev.stderr)
    assert "dax0.0: failed to offline memory: Device or resource busy" in dev.stderr
    assert dev.mode == "system-ram" and str(blocks[0].state) == "online"


def test_no_online_with_devdax_is_refused():
    _, dev = pmem_dev("6.2")
    with pytest.raises(KernelError) as ei:
        dev.reconfigure("devdax", online=False)
    assert ei.value.errno == errno.EINVAL and dev.stderr == ["--no-online is incompatible with --mode=devdax"]


def test_already_devdax():
    _, dev = pmem_dev("6.2")
    assert dev.reconfigure("devdax")["mode"] == "devdax"
    assert dev.stderr == ["dax0.0 was already in devdax mode", "reconfigured 1 device"]


def test_online_and_offline_memory():
    m, dev = pmem_dev("6.2")
    for fn in (dev.online_memory, dev.offline_memory):
        with pytest.raises(KernelError) as ei:
            fn()
        assert ei.value.errno == errno.ENXIO
        assert dev.stderr[0] == "dax0.0: memory operations are not applicable in devdax mode"
    dev.reconfigure("system-ram", online=False)
    assert dev.online_memory() == 62 and dev.stderr[-1] == "onlined memory for 1 device"
    assert dev.online_memory() == 0 and dev.stderr[-1] == "onlined memory for 0 devices"
    assert dev.offline_memory() == 62 and dev.stderr[-1] == "offlined memory for 1 device"
    assert "dax0.0: all memory sections (62) already offline" in (dev.offline_memory(), dev.stderr)[1]


def test_arguments_are_checked():
    _, dev = pmem_dev("6.2")
    with pytest.raises(ValueError):
        dev.reconfigure("ram")
    with pytest.raises(TypeError):
        dev.reconfigure("system-ram", online=1)


def test_state_file_is_7_3_only():
    _, dev = pmem_dev("6.12")
    for _ in range(2):
        with pytest.raises(KernelError) as ei:
            dev.state
        assert ei.value.errno == errno.ENOENT
    with pytest.raises(KernelError):
        dev.state = "online"


# ---------------------------------------------------------------------------------------------
# where devices come from


def test_devices_in_name_order_and_namespace_lifetime():
    lay = SOFT.replace("240000000-43fffffff : Soft Reserved\n", "") + \
        "240000000-33fffffff : Persistent Memory\n400000000-43fffffff : Soft Reserved\n"
    m = Machine(kernel="6.1", iomem=lay, numa=[(0x400000000, 0x440000000, 1)])
    assert [d.name for d in m.dax_devices] == ["dax1.0"]          # memregion id 0 is region0's
    ns = m.regions[0].create_namespace(mode="devdax", size=1 * GiB)
    assert [d.name for d in m.dax_devices] == ["dax0.0", "dax1.0"]
    ns.disable()
    assert [d.name for d in m.dax_devices] == ["dax1.0"]
    ns.enable()
    assert m.dax_devices[0].enabled and m.dax_devices[0].mode == "devdax"


def test_reboot_keeps_numa_and_drops_the_kmem_binding():
    m = Machine(kernel="6.3", iomem=SOFT, numa=SR_NODE1)
    (dev,) = m.dax_devices
    dev.reconfigure("devdax", force=True)
    m2 = m.reboot()
    assert m2.boot_args["numa"] == SR_NODE1 and m2.dax_devices[0].mode == "system-ram"   # 6.3+: kmem at boot
    assert m.reboot(kernel="6.2").dax_devices[0].mode == "devdax"


def test_numa_option_checks():
    with pytest.raises(TypeError):
        Machine(kernel="6.1", numa=[(0, 1)])
    with pytest.raises(ValueError):
        Machine(kernel="6.1", numa=[(5, 5, 1)])
    with pytest.raises(ValueError, match="overlaps"):
        Machine(kernel="6.1", numa=[(0x100000000, 0x200000000, 1), (0x180000000, 0x280000000, 2)])
    with pytest.raises(ValueError):
        Machine(kernel="6.1", numa=[(0, 4096, 1 << 10)])
    with pytest.raises(TypeError):
        Machine(kernel="6.1", efi_soft_reserve="no")
    m = Machine(kernel="6.1", iomem=SOFT, numa=SR_NODE1)
    assert m.possible_nodes == frozenset({0, 1})


def test_phys_to_target_node_prefers_boot_ram():
    """A Soft Reserved range below the end of boot RAM reads node 0 (numa_meminfo is asked
    first and its node-0 block spans [0, max_pfn), arch/x86/mm/numa.c)."""
    lay = SOFT + "440000000-47fffffff : System RAM\n"
    m = Machine(kernel="6.1", iomem=lay, numa=SR_NODE1)
    assert DX.phys_to_target_node(m, 0x240000000) == 0
    assert DX.phys_to_target_node(m, 0x480000000) == -1
    assert DX.memory_add_physaddr_to_nid(m, 0x480000000) == 0


def test_misaligned_hmem_range_makes_no_device():
    """dax_hmem_probe: alloc_dax_region refuses a start or size that is not 2 MiB aligned."""
    m = Machine(kernel="6.1", iomem=SOFT.replace("240000000-43fffffff", "240000000-2400fffff"),
                numa=[(0x240000000, 0x240100000, 1)])
    assert m.dax_devices == []
    assert "hmem: probe of hmem.0 failed with error -12" in [str(x) for x in m.dmesg]


def test_cxl_window_flags():
    m = Machine(kernel="6.8", iomem=CXL)
    (w,) = [r for r in m.iomem.top_level() if r.name == "CXL Window 0"]
    assert (w.busy, w.desc, w.children[0].busy) == (False, DX.IORES_DESC_CXL, False)


# ---------------------------------------------------------------------------------------------
# the existing configuration (api.md "Existing configuration", issue 15 item 5)


def test_dump_with_kmem_soft_reserved_boots_with_the_device_in_system_ram():
    lay = SOFT.replace("240000000-43fffffff : Soft Reserved\n",
                       "240000000-43fffffff : Soft Reserved\n  240000000-43fffffff : dax0.0\n"
                       "    240000000-43fffffff : System RAM (kmem)\n")
    for kernel in ("5.10", "6.2", "6.8"):
        m = Machine.from_iomem(lay, kernel=kernel)
        (dev,) = m.dax_devices
        assert dev.target_node == 1                        # existing.implied_numa
        assert dev.mode == "system-ram" and dev.to_dict()["online_memblocks"] == 64
        assert dev.kmem_stats()["kmem_bytes"] == 8 * GiB
        assert m.iomem_text().count("System RAM (kmem)") == 1


# ---------------------------------------------------------------------------------------------
# util-linux lsmem on the exported tree after a reconfigure


@pytest.mark.real_tools
@pytest.mark.parametrize("kernel", ["5.3", "6.8"])
def test_real_lsmem_after_reconfigure(kernel, tmp_path):
    if shutil.which("lsmem") is None:
        pytest.skip("util-linux lsmem is not installed (apt-get install util-linux)")
    m, dev = pmem_dev(kernel)
    dev.reconfigure("system-ram", movable=False)
    m.offline_memory_block(dev.memory_blocks()[-1].id)
    export(m, str(tmp_path))
    out = subprocess.run(["lsmem", "--sysroot", str(tmp_path), "-b", "-r", "-n", "-o", "RANGE,SIZE,STATE,BLOCK"],
                         capture_output=True, text=True, env={"LC_ALL": "C"}, check=True).stdout.split("\n")
    # the kmem range [0x210000000, 0x3ffffffff]: 61 online blocks then the offline last one
    assert f"0x0000000210000000-0x00000003f7ffffff {61 * 128 * MiB} online 66-126" in out
    assert f"0x00000003f8000000-0x00000003ffffffff {128 * MiB} offline 127" in out
    summary = subprocess.run(["lsmem", "--sysroot", str(tmp_path), "-b", "--summary=only"], capture_output=True,
                             text=True, env={"LC_ALL": "C"}, check=True).stdout
    online = sum(b.size for b in m.memory_blocks if str(b.state) == "online")
    assert f"Total online memory:  {online}" in " ".join(summary.split("\n")).replace("  ", " ") or \
        str(online) in summary
    assert D.memory_blocks(m, dev)[-1].id == 127
