"""Machine boot, memory block size, sysfs strings (sparse-hotplug.md §1.1, §3, §8.4, §8.6)."""

import errno

import pytest

from helpers import GiB, MiB
from sparsemem import KernelError, Machine
from sparsemem import constants as C
from sparsemem.machine import DEFAULT_IOMEM

KERNELS = ("5.2", "5.3")


@pytest.mark.parametrize("kernel", KERNELS)
def test_default_boot_zones_and_blocks(kernel):
    m = Machine(kernel)
    assert m.max_pfn == 0x140000
    z = m.zones[0]
    # §3 / machine docstring: DMA starts at the first RAM pfn, DMA32 up to 4 GiB, Normal above
    assert z[C.ZONE_DMA].state() == (1, 0x1000 - 1, 0x9f - 1 + (0x1000 - 0x100))
    assert z[C.ZONE_DMA32].zone_start_pfn == 0x1000
    assert z[C.ZONE_NORMAL].state() == (0x100000, 0x40000, 0x40000)
    assert z[C.ZONE_MOVABLE].is_empty and z[C.ZONE_DEVICE].is_empty
    # §8.4: MEM_ONLINE boot blocks, one per present section with 128 MiB blocks
    ids = [b.id for b in m.memory_blocks]
    assert ids == list(range(24)) + list(range(32, 40))
    assert all(b.state == "online" and b.section_count == 1 for b in m.memory_blocks)
    assert m.dmesg[0] == "x86/mm: Memory block size: 128MB"
    # span scans see the boot zones (memmap_init_zone ran)
    assert m.sections.page_zonenum(0x100000) == C.ZONE_NORMAL
    assert m.sections.page_zonenum(0x2000) == C.ZONE_DMA32
    assert m.pfn_valid(0x13ffff) and not m.pfn_valid(0x140000)
    assert m.pfn_to_online_page(0x100000) and not m.pfn_to_online_page(0x140000)


# boot zone and node spans (§3)
def _zspan(z):
    return (z.zone_start_pfn, z.zone_end_pfn, z.present_pages)


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
@pytest.mark.parametrize("core", ["compiled", "reference"])
def test_boot_zones_span_node_span_clamped_to_zone_limits(kernel, core):
    """zone_spanned_pages_in_node: the node span [0x1, 0x140000) clamped to each zone's
    limits, holes included; present_pages stays the RAM count."""
    m = Machine(kernel, core=core)
    dma, dma32, normal = m.zones[0][:3]
    assert _zspan(dma) == (0x1, 0x1000, (0x9f - 0x1) + (0x1000 - 0x100))
    assert _zspan(dma32) == (0x1000, 0x100000, 0xbffe0 - 0x1000)
    assert _zspan(normal) == (0x100000, 0x140000, 0x40000)
    pg = m.nodes[0]
    assert (pg.node_start_pfn, pg.node_end_pfn) == (0x1, 0x140000)
    assert pg.node_present_pages == sum(z.present_pages for z in m.zones[0])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("end,expect", [
    (64 * GiB - 128 * MiB, 128 * MiB),   # §1.1 step 2: below 64 GiB
    (64 * GiB, 2 * GiB),                 # step 4: 2 GiB divides
    (65 * GiB, 1 * GiB),
    (64 * GiB + 512 * MiB, 512 * MiB),
    (64 * GiB + 256 * MiB, 256 * MiB),
    (64 * GiB + 128 * MiB, 128 * MiB),
])
def test_probe_memory_block_size(kernel, end, expect):
    text = f"00001000-0009ffff : System RAM\n100000000-{end - 1:x} : System RAM\n"
    m = Machine.from_iomem(text, kernel=kernel)
    assert m.memory_block_size == expect
    assert m.sysfs["block_size_bytes"] == f"{expect:x}\n"
    # bare_metal_2g_blocks is false in both eras: hypervisor=False changes nothing (§1.1 step 3)
    assert Machine.from_iomem(text, kernel=kernel, hypervisor=False).memory_block_size == expect


@pytest.mark.parametrize("kernel", KERNELS)
def test_block_size_override_and_boot_blocks_with_holes(kernel):
    m = Machine(kernel, memory_block_size=1 * GiB)
    assert m.sysfs["block_size_bytes"] == "40000000\n"
    b = {blk.id: blk for blk in m.memory_blocks}
    assert sorted(b) == [0, 1, 2, 4]
    assert b[2].section_count == 8 and b[4].section_count == 8
    # a boot block with holes cannot be offlined (§8.6 memory_subsys_offline)
    m2 = Machine.from_iomem("00001000-0009ffff : System RAM\n00100000-4fffffff : System RAM\n",
                            kernel=kernel, memory_block_size=1 * GiB)
    blk = m2.memory_block(1)
    assert blk.section_count == 2
    before = m2.snapshot()
    with pytest.raises(KernelError) as e:
        m2.sysfs["memory1/state"] = "offline"
    assert e.value.errno == errno.EINVAL
    assert m2.snapshot() == before
    with pytest.raises(ValueError):
        Machine(kernel, memory_block_size=3 * 128 * MiB)


@pytest.mark.parametrize("kernel", KERNELS)
def test_sysfs_files_exact_strings(kernel):
    m = Machine(kernel)
    s = m.sysfs
    assert s["auto_online_blocks"] == "offline\n"
    assert s["memory32/phys_index"] == "00000020\n"
    assert s["memory1/phys_index"] == "00000001\n"
    assert s["memory32/state"] == "online\n"
    assert s["memory32/online"] == "1\n"
    assert s["memory32/phys_device"] == "0\n"
    assert s["memory32/valid_zones"] == "Normal\n"
    assert s["memory0/valid_zones"] == "none\n"          # DMA + DMA32 in one block
    assert s["memory0/removable"] == "0\n"               # reserved boot pages (e820 holes)
    assert s["memory32/removable"] == "1\n"
    assert s["/sys/devices/system/memory/memory32/state"] == "online\n"
    with pytest.raises(KernelError) as e:
        s["memory24/state"]
    assert e.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as e:
        s["memory32/phys_index"] = "1"
    assert e.value.errno == errno.EACCES
    assert s.write("auto_online_blocks", "online\n") == 7
    assert s["auto_online_blocks"] == "online\n" and m.auto_online
    with pytest.raises(KernelError) as e:
        s["auto_online_blocks"] = "online_movable"
    assert e.value.errno == errno.EINVAL
    assert "memory32" in s.listdir() and "state" in s.listdir("memory32")


# sysfs listdir: argument types and names (§8.6)
def test_sysfs_listdir_rejects_non_str_and_odd_names():
    m = Machine()
    for bad in (None, 5, b"memory0"):
        with pytest.raises(TypeError):
            m.sysfs.listdir(bad)
    for name in ("memory\u0661", "memory01", "memory0/state"):
        with pytest.raises(KernelError) as e:
            m.sysfs.listdir(name)
        assert e.value.errno == errno.ENOENT
    with pytest.raises(KernelError) as e:
        m.sysfs.read("memory\u0661/state")
    assert e.value.errno == errno.ENOENT
    assert m.sysfs.listdir("memory1") == list(m.sysfs.BLOCK_FILES)


@pytest.mark.parametrize("kernel", KERNELS)
def test_from_e820_and_iomem_text_roundtrip(kernel):
    e820 = """\
[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable
[    0.000000] BIOS-e820: [mem 0x000000000009fc00-0x000000000009ffff] reserved
[    0.000000] BIOS-e820: [mem 0x0000000000100000-0x00000000bffdffff] usable
[    0.000000] BIOS-e820: [mem 0x0000000100000000-0x000000013fffffff] usable
"""
    m = Machine.from_iomem(e820, kernel=kernel)
    assert m.max_pfn == 0x140000
    assert "100000000-13fffffff : System RAM\n" in m.iomem_text()
    again = Machine.from_iomem(m.iomem_text(), kernel=kernel)
    assert again.snapshot() == m.snapshot()
    re = Machine(**m.boot_args)
    assert re.snapshot() == m.snapshot()


@pytest.mark.parametrize("kernel", KERNELS)
def test_boot_args_rebuild_before_hotplug(kernel):
    m = Machine(kernel, core="reference")
    fresh = m.snapshot()
    m.add_memory(0, 0x180000000, 0x8000000)
    assert Machine(**m.boot_args).snapshot() == fresh
    assert Machine(**m.boot_args).core == "reference"


@pytest.mark.parametrize("kernel", KERNELS)
def test_compiled_and_reference_boot_identically(kernel):
    assert Machine(kernel).snapshot() == Machine(kernel, core="reference").snapshot()


def test_constructor_errors():
    with pytest.raises(ValueError):
        Machine("5.x")
    with pytest.raises(ValueError):
        Machine(core="fast")
    with pytest.raises(ValueError):
        Machine(max_physmem_bits=40)
    with pytest.raises(TypeError):
        Machine(hypervisor=1)
    with pytest.raises(TypeError):
        Machine(iomem=42)
    assert DEFAULT_IOMEM.endswith("System RAM\n")
