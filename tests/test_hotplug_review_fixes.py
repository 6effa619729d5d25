"""Regression tests for the hotplug review findings ("§" = ../shared/spec/sparse-hotplug.md)."""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelError, Machine
from sparsemem import hotplug as H
from sparsemem import cli, report
from sparsemem.errors import KernelBug
from sparsemem.kernel import ERAS, kernel_model

MiB = 1 << 20
BLK = 128 * MiB
SEC = 0x8000
EX_LAYOUT = "00000000-00000fff : Reserved\n00001000-7effffff : System RAM\n"
CUT = "------------[ cut here ]------------"


def _zspan(z):
    return (z.zone_start_pfn, z.zone_end_pfn, z.present_pages)


# ------------------------------------------------------------------ 1. boot zone spans (§3, §8.5)
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


# ------------------------------------------------------------------ 2. newer kernels run older rules
def test_kernel_model_rules_and_approximate():
    for v, rules, approx in (("5.1", "5.1", False), ("5.2", "5.2", False), ("5.3", "5.3", False),
                             ("5.3.7", "5.3", False), ("5.10", "5.3", True), ("6.8", "5.3", True)):
        km = kernel_model(v)
        assert (km.rules, km.approximate) == (rules, approx), v
    assert kernel_model("5.10").label == "5.10 (subsection era, v5.3 rules)"
    assert kernel_model("5.3").label == "5.3 (subsection)"
    assert kernel_model("5.2").label == "5.2 (legacy)"
    assert [first for first, _ in ERAS][:3] == [(5, 1), (5, 2), (5, 3)]


def test_cli_labels_approximated_kernel():
    assert cli._kernel_label({"kernel": "5.10", "era": "subsection"}) == "5.10 (subsection era, v5.3 rules)"
    assert cli._kernel_label({"kernel": "5.3", "era": "subsection"}) == "5.3 (subsection)"
    assert cli._kernel_label({"kernel": "5.2", "era": "legacy"}) == "5.2 (legacy)"


# ------------------------------------------------------------------ 3. unmapped first struct page (§6.1)
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


# ------------------------------------------------------------------ 4. WARN shape (§5.1)
def test_warn_with_message_shape():
    m = Machine.from_iomem(EX_LAYOUT, kernel="5.3")
    with pytest.raises(KernelError):
        H.add_pages(m, 0, 0x100100, 512)
    assert m.dmesg[-3:] == [CUT, "Misaligned __add_pages start: 0x100100 end: #1002ff",
                            "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:320 check_pfn_span+0x0/0x100"]
    # the report picks the message, not the banner or the WARNING line
    assert report._failure_line(m.dmesg[-3:]) == "Misaligned __add_pages start: 0x100100 end: #1002ff"


def test_core_warn_with_message_forwarded_in_x86_shape():
    m = Machine.from_iomem(EX_LAYOUT, kernel="5.3")
    H.add_pages(m, 0, 0x100000, 512)
    H.remove_pages(m, None, 0x100200, 512)                # sub-section never added
    assert m.dmesg[-3:] == [CUT, "section already deactivated (0x100200 + 512)",
                            "WARNING: CPU: 0 PID: 1 at mm/sparse.c:760 section_deactivate+0x0/0x100"]
    assert not any(line.startswith("WARNING: at ") for line in m.dmesg)
    assert report._failure_line(m.dmesg[-3:]) == "section already deactivated (0x100200 + 512)"


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_core_warn_on_has_no_invented_text(kernel):
    """__remove_section's WARN_ON_ONCE (§6.3, §7) has no message: banner + WARNING line."""
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    n = len(m.dmesg)
    assert H.remove_pages(m, None, 0x200000, SEC) == 0
    assert m.dmesg[n:] == [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:510 __remove_section+0x0/0x100"]


def test_warning_line_format():
    assert H.warn_lines("drivers/base/memory.c state_show") == [
        CUT, "WARNING: CPU: 0 PID: 1 at drivers/base/memory.c:170 state_show+0x0/0x100"]
    assert H.core_warning_lines("x86/mm: Memory block size: 128MB") == ["x86/mm: Memory block size: 128MB"]


# ------------------------------------------------------------------ 5. v5.1 __remove_pages (§7)
def test_v51_row_switch():
    assert kernel_model("5.1").remove_pages_stops_on_invalid
    assert not kernel_model("5.2").remove_pages_stops_on_invalid
    assert not kernel_model("5.3").remove_pages_stops_on_invalid
    assert kernel_model("5.1").era == kernel_model("5.2").era == "legacy"


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


# ------------------------------------------------------------------ 6. beyond the physical address space (§8.1)
@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_add_memory_beyond_physmem_is_eexist(kernel):
    m = Machine(kernel)
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


# ------------------------------------------------------------------ 7. sysfs listdir types and names (§8.6)
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


# ------------------------------------------------------------------ 8. negative block ids (api.md "Errors")
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
