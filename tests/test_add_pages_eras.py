"""``__add_pages`` / ``__remove_pages`` per release (issue 10, later-eras-hotplug-evidence.md §5
step 7): the 5.5-5.11 addressable WARN and -E2BIG, a range past the section array in the other
rows, ``nr_pages == 0`` per era (5.5 / 5.7 / 6.0 for adds, 5.6 for removals), the "Misaligned"
WARN site (6.0) and its ``#%lx`` end (fixed in 6.5).  Each switch is seen on both sides of its
row with the releases the evidence read there, through both cores.

"A" is later-eras-hotplug.md, "E" later-eras-hotplug-evidence.md, "§" sparse-hotplug.md.
"""

from __future__ import annotations

import errno

import pytest

from helpers import BLK, CUT
from sparsemem import KernelBug, KernelError, Machine
from sparsemem import hotplug as H

CORES = ("compiled", "reference")
SEC48 = 0x180000                       # pfn of section 48 (0x180000000), above the default RAM
BEYOND = 1 << 34                       # first pfn past MAX_PHYSMEM_BITS 46 (64 TiB)
ADDR_WARN = "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:287 check_hotplug_memory_addressable+0x0/0x100"
X86_WARN = "WARNING: CPU: 0 PID: 1 at arch/x86/mm/init_64.c:860 add_pages+0x0/0x100"


def _addr_text(start: str, last: str) -> str:
    return (f"Hotplugged memory exceeds maximum addressable address, range={start}-{last}, "
            f"maximum=0x7fffffffffff")


@pytest.fixture(params=CORES)
def core(request):
    return request.param


# ------------------------------------------------------------------ addressable check (5.5-5.11)
@pytest.mark.parametrize("kernel,checked", [("5.4", False), ("5.5", True), ("5.11", True), ("5.12", False)])
def test_add_pages_beyond_max_physmem_bits(core, kernel, checked):
    """A4.1 "addressable check" row, E §1 row 5.5 and §2 item 1 (5.4.0 lacks, 5.5.0-rc5 has
    ``check_hotplug_memory_addressable``; 5.12.9 keeps only a VM_BUG_ON): ``__add_pages`` of
    the section at 64 TiB WARNs with the last byte and the one-bit-too-wide maximum and returns
    -E2BIG, before anything changes.  Rows without the check index past ``mem_section[]``
    (E §3.3: KernelBug)."""
    m = Machine(kernel, core=core)
    before, n = m.snapshot(), len(m.dmesg)
    if checked:
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, BEYOND, 0x8000)
        assert e.value.errno == errno.E2BIG
        assert m.dmesg[n:] == [CUT, _addr_text("0x400000000000", "0x400007ffffff"), ADDR_WARN]
    else:
        with pytest.raises(KernelBug):
            H.add_pages(m, 0, BEYOND, 0x8000)
        assert m.dmesg[n:] == []
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ["5.4", "5.5", "5.11", "5.12"])
def test_add_memory_at_64_tib_with_48_phys_bits(core, kernel):
    """E §4 "5.4→5.5 addressable": ``Machine(k, phys_bits=48).add_memory(0, 1 << 46, BLK)``.
    The iomem root ends at 2^48 - 1, so the request reaches ``__add_pages``: 5.4 KernelBug (out
    of ``mem_section``); 5.5-5.11 the addressable WARN, then x86 ``add_pages``'s WARN_ON_ONCE,
    -E2BIG, the resource released (snapshot unchanged; ``max_pfn`` raised as x86
    ``update_end_of_memory_vars`` does on failure, docs/hotplug.md); 5.12 stops earlier in
    ``register_memory_resource`` (``mhp_range_allowed``, bca3feaa0764) with its pr_warn."""
    m = Machine(kernel, core=core, phys_bits=48)
    before, n = m.snapshot(), len(m.dmesg)
    if kernel == "5.4":
        with pytest.raises(KernelBug):
            m.add_memory(0, 1 << 46, BLK)
        return
    with pytest.raises(KernelError) as e:
        m.add_memory(0, 1 << 46, BLK)
    assert e.value.errno == errno.E2BIG
    if kernel == "5.12":
        assert m.dmesg[n:] == ["Hotplug memory [0x400000000000-0x400008000000] exceeds maximum addressable "
                               "range [0x0-0x3fffffffffff]"]
    else:
        assert m.dmesg[n:] == [CUT, _addr_text("0x400000000000", "0x400007ffffff"), ADDR_WARN, CUT, X86_WARN]
        assert m.max_pfn == BEYOND + 0x8000
    assert m.snapshot() == before


# ------------------------------------------------------------------ nr_pages == 0 in __add_pages
@pytest.mark.parametrize("kernel", ["5.4", "5.5", "5.11", "5.12"])
def test_add_pages_pfn0_nr0(core, kernel):
    """A4.1 ``nr_pages == 0`` row, E §2 item 4 (5.5.0-rc5 … 5.11.0 compute PFN_PHYS(0) - 1 =
    U64_MAX): 5.4 (§5.2) one piece ``sparse_add_section(nid, 0, 0)`` whose all-ones mask hits
    boot section 0 → -EEXIST; 5.5-5.11 the addressable WARN with
    ``range=0x0-0xffffffffffffffff`` and -E2BIG; 5.12 (5.12.9: the loop runs to ``end_pfn``,
    ``err`` is the 0 of ``check_pfn_span``) returns 0.  Nothing changes in any of them."""
    m = Machine(kernel, core=core)
    before, n = m.snapshot(), len(m.dmesg)
    if kernel == "5.12":
        H.add_pages(m, 0, 0, 0)
        assert m.dmesg[n:] == []
    else:
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, 0, 0)
        if kernel == "5.4":
            assert e.value.errno == errno.EEXIST
            assert m.dmesg[n:] == []
        else:
            assert e.value.errno == errno.E2BIG
            assert m.dmesg[n:] == [CUT, _addr_text("0x0", "0xffffffffffffffff"), ADDR_WARN]
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ["5.6", "5.7"])
def test_add_pages_nr0_inside_a_section(core, kernel):
    """A4.1 loop row, E §1 row 5.7 "add loop end" and §2 item 18 (5.6.4 loops by section
    number, 5.7.14 to ``end_pfn``): nr 0 at a 2 MiB- but not section-aligned pfn is one piece
    with an empty sub-section mask in 5.6 (-EINVAL, §5.2) and an empty loop returning 0 in 5.7.
    A section-aligned pfn is a no-op in both."""
    m = Machine(kernel, core=core)
    before, n = m.snapshot(), len(m.dmesg)
    H.add_pages(m, 0, SEC48, 0)
    if kernel == "5.6":
        with pytest.raises(KernelError) as e:
            H.add_pages(m, 0, SEC48 + 0x200, 0)
        assert e.value.errno == errno.EINVAL
    else:
        H.add_pages(m, 0, SEC48 + 0x200, 0)
    assert m.dmesg[n:] == []
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel", ["5.19", "6.0", "6.12"])
def test_add_pages_nr0_uninitialised_from_6_0(core, kernel):
    """E §4 "5.19→6.0 nr 0", A4.1 and E §2 item 4 (5.19.0 assigns ``err`` from
    ``check_pfn_span``; 6.0.0-rc1 and 6.0.1 do not): ``H.add_pages(m, 0, 0x180000, 0)`` returns
    in 5.19; from 6.0 the kernel returns an uninitialised value, which the simulation reports
    as KernelBug without changing anything.  A misaligned pfn still gets the initialised
    -EINVAL of the span check in 6.0."""
    m = Machine(kernel, core=core)
    before, n = m.snapshot(), len(m.dmesg)
    if kernel == "5.19":
        H.add_pages(m, 0, SEC48, 0)
        H.add_pages(m, 0, 0, 0)
    else:
        for pfn in (SEC48, 0):
            with pytest.raises(KernelBug, match="uninitialised"):
                H.add_pages(m, 0, pfn, 0)
    assert m.dmesg[n:] == []
    with pytest.raises(KernelError) as e:
        H.add_pages(m, 0, SEC48 + 0x100, 0)
    assert e.value.errno == errno.EINVAL
    assert m.dmesg[-2].startswith("Misaligned __add_pages start: 0x180100 end: ")
    assert m.snapshot() == before


# ------------------------------------------------------------------ nr_pages == 0 in __remove_pages
@pytest.mark.parametrize("kernel", ["5.5", "5.6"])
def test_remove_pages_nr0(core, kernel):
    """E §4 "5.5→5.6 remove nr 0", A5.4 and E §2 item 18 (5.5.0-rc5 loops by section number,
    5.6.4 ``for (; pfn < end_pfn; …)``): ``H.remove_pages(m, None, 0, 0)`` runs to section -1
    in 5.5 (KernelBug) and is a no-op in 5.6; so is nr 0 inside a section (5.5: not modelled,
    ValueError)."""
    m = Machine(kernel, core=core)
    H.add_pages(m, 0, SEC48, 0x8000)
    before, n = m.snapshot(), len(m.dmesg)
    if kernel == "5.5":
        with pytest.raises(KernelBug):
            H.remove_pages(m, None, 0, 0)
        with pytest.raises(ValueError):
            H.remove_pages(m, None, SEC48 + 0x200, 0)
    else:
        assert H.remove_pages(m, None, 0, 0) == 0
        assert H.remove_pages(m, None, SEC48 + 0x200, 0) == 0
    assert H.remove_pages(m, None, SEC48, 0) == 0
    assert m.dmesg[n:] == []
    assert m.snapshot() == before
    assert m.pfn_valid(SEC48)


# ------------------------------------------------------------------ "Misaligned" WARN: site and end
@pytest.mark.parametrize("kernel,site,end", [
    ("5.19", "mm/memory_hotplug.c:320 check_pfn_span", "#180200"),
    ("6.0", "mm/memory_hotplug.c:{line} __{reason}_pages", "#180200"),
    ("6.4", "mm/memory_hotplug.c:{line} __{reason}_pages", "#180200"),
    ("6.5", "mm/memory_hotplug.c:{line} __{reason}_pages", "0x180200"),
])
def test_misaligned_warn_site_and_end(core, kernel, site, end):
    """E §4 "5.19→6.0 WARN site" and "6.4→6.5 typo", A4.1 span row, §5.1 note as corrected
    (5.19.0 WARNs in ``check_pfn_span``; 6.0.0-rc1 in ``__add_pages``/``__remove_pages`` with
    ``__func__``, same text; 6.4.6 prints the end ``#%lx``, 6.5.0 ``%#lx``):
    ``H.add_pages(m, 0, 0x180001, 512)`` → -EINVAL; ``H.remove_pages`` of the same span returns
    0.  Nothing changes."""
    m = Machine(kernel, core=core)
    H.add_pages(m, 0, SEC48, 0x8000)
    before = m.snapshot()
    lines = {"add": 335, "remove": 530}
    n = len(m.dmesg)
    with pytest.raises(KernelError) as e:
        H.add_pages(m, 0, SEC48 + 1, 512)
    assert e.value.errno == errno.EINVAL
    where = site.format(line=lines["add"], reason="add")
    assert m.dmesg[n:] == [CUT, f"Misaligned __add_pages start: 0x180001 end: {end}",
                           f"WARNING: CPU: 0 PID: 1 at {where}+0x0/0x100"]
    n = len(m.dmesg)
    assert H.remove_pages(m, None, SEC48 + 1, 512) == 0
    where = site.format(line=lines["remove"], reason="remove")
    assert m.dmesg[n:] == [CUT, f"Misaligned __remove_pages start: 0x180001 end: {end}",
                           f"WARNING: CPU: 0 PID: 1 at {where}+0x0/0x100"]
    assert m.snapshot() == before


@pytest.mark.parametrize("kernel,warns", [("5.19", True), ("6.0", False)])
def test_check_pfn_span_silent_from_6_0(core, kernel, warns):
    """§5.1 note as corrected / E §1 row 6.0: the 6.0 ``check_pfn_span`` only returns -EINVAL
    (its callers WARN), so called on its own it logs nothing."""
    m = Machine(kernel, core=core)
    n = len(m.dmesg)
    with pytest.raises(KernelError) as e:
        H.check_pfn_span(m, 0x100, 0x200, "add")
    assert e.value.errno == errno.EINVAL
    assert (m.dmesg[n:] == [CUT, "Misaligned __add_pages start: 0x100 end: #2ff",
                            "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:320 check_pfn_span+0x0/0x100"]) == warns
    assert (m.dmesg[n:] == []) != warns
