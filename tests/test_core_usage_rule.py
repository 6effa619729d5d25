"""Which ``mem_section_usage`` ``section_deactivate`` frees when a section's bitmap empties, in
both cores and under both values of ``KernelModel.usage_free_rule``.

- ``"unless_early"`` (v5.3-v5.4): free it (kfree, pointer NULL) unless the section was early at
  entry (sparse-hotplug.md §6.4 step 5a).  A boot section that was emptied and re-added is no
  longer early, so emptying it again kfree()s its boot array: §10 #5, "the v5.3 re-added early
  section bug".
- ``"unless_boot"`` (v5.5+): free it only if its page is not PageReserved, i.e. only a usage that
  ``section_activate`` kzalloc'ed; a boot usage keeps its pointer (§6.4 "v5.5" note;
  later-eras-hotplug.md A8 and later-eras-hotplug-evidence.md §2 item 16, §3.2: the NULL store
  is inside the same condition as the kfree).  Kernel: mm/sparse.c ``section_deactivate``,
  "mm/memory_hotplug: Don't free usage map when removing a re-added early section" (Fixes
  326e1b8f83a4), absent at 5.5-rc5, present at 5.6.4.

Each scenario runs on a v5.3 model and on the same model with only the rule changed, so every
difference seen is the rule's.
"""

from __future__ import annotations

import errno

import pytest

from helpers import boot_table
from sparsemem import KernelError
from sparsemem import constants as C
from sparsemem import kernel as kernel_mod
from sparsemem.kernel import ERAS, kernel_model, replace

SEC = C.PAGES_PER_SECTION          # 0x8000
SUB = C.PAGES_PER_SUBSECTION       # 512
ALL = (1 << 64) - 1
BUG = "BUG: kfree() of the boot-time mem_section_usage of section"

V53 = kernel_model("5.3")
RULES = {"unless_early": V53, "unless_boot": replace(V53, usage_free_rule="unless_boot")}


@pytest.fixture(params=list(RULES))
def rule(request):
    return request.param


boot = boot_table  # tests/helpers.py (sparse-hotplug.md §3)


def both_rules(T, ranges):
    """One booted table per rule."""
    return {name: boot(T, model, ranges) for name, model in RULES.items()}


def test_the_switch_values():
    """v5.3 is "unless_early" (and so is the default of the field); the cores accept only the two
    named values."""
    assert V53.usage_free_rule == "unless_early"
    assert kernel_mod.KernelModel.__dataclass_fields__["usage_free_rule"].default == "unless_early"
    assert RULES["unless_boot"].usage_free_rule == "unless_boot"


def test_every_row_has_the_rule_of_its_release():
    """A10 row 5.5: "unless_boot" from 5.5 (5.5-rc5 still frees unless early; the fix was queued
    for the 5.4.14 stable review before 5.5 was released, so it is in 5.5.0), "unless_early"
    before.  Rows 5.1/5.2 never reach section_deactivate and keep the default."""
    for first, _row in ERAS:
        want = "unless_boot" if first[:2] >= (5, 5) else "unless_early"
        assert kernel_model(".".join(map(str, first))).usage_free_rule == want, first
    assert kernel_model("5.4").usage_free_rule == "unless_early"


@pytest.mark.parametrize("value", ["", "unless_reserved", "UNLESS_EARLY", None, True])
def test_an_unknown_rule_is_rejected_by_both_cores(impl, value):
    T, _ = impl
    with pytest.raises(ValueError, match="usage_free_rule.*'unless_early', 'unless_boot'"):
        T(46, replace(V53, usage_free_rule=value))


def test_boot_section_emptied_keeps_its_boot_usage(impl, rule):
    """§6.4 table row 4: an early section emptied at once keeps its boot usage under both rules
    (early at entry, and PageReserved); every flag is cleared and nothing is logged."""
    T, _ = impl
    t = boot(T, RULES[rule], [(SEC, 2 * SEC)])
    assert t.early_section_nr(1) and t.section_usage(1) == "boot"
    assert t.sparse_remove_section(SEC, SEC)
    assert t.section_usage(1) == "boot"
    assert t.subsection_map(1) == 0
    assert not t.present_section_nr(1) and not t.valid_section_nr(1) and not t.pfn_valid(SEC)
    assert t.section_mem_map(1) == (-(1 << 21)) & ALL  # encode(NULL, 1), §2.4
    assert t.vmemmap_stats()["boot_pmds"] == 0
    assert t.dmesg == []


def test_boot_section_partially_removed_and_readded(impl):
    """§6.4 rows 2 and 4, §5.4: sub-sections 3-5 of a boot section removed (the v5.3-v5.8 partial
    boot-memmap free) and added back (no memmap populated: still early), then the section
    drained: the usage is the same boot array throughout and the two rules agree at every step."""
    T, _ = impl
    tables = both_rules(T, [(SEC, 2 * SEC)])
    for t in tables.values():
        assert t.sparse_remove_section(SEC + 3 * SUB, 3 * SUB)
        assert t.subsection_map(1) == ALL ^ (0b111 << 3)
        assert t.section_usage(1) == "boot" and t.early_section_nr(1)
        assert t.vmemmap_stats()["fd_subsections"] == 3
        t.sparse_add_section(0, SEC + 3 * SUB, 3 * SUB)
        assert t.subsection_map(1) == ALL and t.early_section_nr(1) and t.pfn_valid(SEC + 4 * SUB)
        assert t.section_usage(1) == "boot"
    assert tables["unless_early"].snapshot() == tables["unless_boot"].snapshot()
    for t in tables.values():
        assert t.sparse_remove_section(SEC, 10 * SUB)
        assert t.sparse_remove_section(SEC + 10 * SUB, SEC - 10 * SUB)
        assert t.section_usage(1) == "boot" and not t.present_section_nr(1)
        assert t.dmesg == []
    assert tables["unless_early"].snapshot() == tables["unless_boot"].snapshot()
    assert tables["unless_early"].vmemmap_stats() == tables["unless_boot"].vmemmap_stats()


def test_hot_added_section_emptied_frees_its_slab_usage(impl):
    """§6.4 rows 1 and 3: a hot-added section keeps its (slab) usage while sub-sections remain and
    loses it, pointer and all, when the last ones go; the same under both rules."""
    T, _ = impl
    tables = both_rules(T, [(0, SEC)])
    for t in tables.values():
        t.sparse_add_section(0, 32 * SEC, 2 * SUB)
        t.sparse_add_section(0, 32 * SEC + 10 * SUB, SUB)
        assert t.section_usage(32) == "slab" and not t.early_section_nr(32)
        assert t.sparse_remove_section(32 * SEC, 2 * SUB)
        assert t.section_usage(32) == "slab" and t.subsection_map(32) == 1 << 10
        assert t.sparse_remove_section(32 * SEC + 10 * SUB, SUB)
        assert t.section_usage(32) is None and t.subsection_map(32) == 0
        assert t.section_mem_map(32) == (-(32 << 21)) & ALL
        assert t.vmemmap_stats()["base_pages_ram"] == 0
        assert t.dmesg == []
    assert tables["unless_early"].snapshot() == tables["unless_boot"].snapshot()


def test_readded_early_section_v53_frees_the_boot_usage(impl):
    """§10 #5 (v5.3-v5.4): boot section emptied, re-added whole (no longer early: the usage is the
    boot array, reused), emptied again: kfree() of memblock memory, logged, usage gone.  The next
    add allocates a slab usage, whose removal is ordinary."""
    T, _ = impl
    t = boot(T, RULES["unless_early"], [(SEC, 2 * SEC)])
    t.sparse_remove_section(SEC, SEC)
    t.sparse_add_section(0, SEC, SEC)
    assert not t.early_section_nr(1) and t.section_usage(1) == "boot" and t.pfn_valid(SEC)
    t.sparse_remove_section(SEC, SEC)
    assert t.section_usage(1) is None
    assert t.dmesg == [f"{BUG} 1 (memblock memory: the v5.3 re-added early section bug)"]
    t.sparse_add_section(0, SEC, SEC)
    assert t.section_usage(1) == "slab"
    t.sparse_remove_section(SEC, SEC)
    assert t.section_usage(1) is None and len(t.dmesg) == 1


def test_readded_early_section_v55_keeps_the_boot_usage(impl):
    """A8 5.5: the same steps keep the boot usage (not freed, pointer kept) and log nothing; every
    later add reuses it, in one piece or several, and every emptying keeps it."""
    T, _ = impl
    t = boot(T, RULES["unless_boot"], [(SEC, 2 * SEC)])
    t.sparse_remove_section(SEC, SEC)
    t.sparse_add_section(0, SEC, SEC)
    assert not t.early_section_nr(1) and t.section_usage(1) == "boot" and t.pfn_valid(SEC)
    assert t.vmemmap_stats()["pmds_ram"] == 1
    assert t.sparse_remove_section(SEC, SEC)
    assert t.section_usage(1) == "boot" and not t.present_section_nr(1) and not t.pfn_valid(SEC)
    assert t.section_mem_map(1) == (-(1 << 21)) & ALL
    assert t.vmemmap_stats()["pmds_ram"] == 0
    t.sparse_add_section(0, SEC, 4 * SUB)
    t.sparse_add_section(0, SEC + 4 * SUB, 4 * SUB)
    assert t.section_usage(1) == "boot" and t.subsection_map(1) == 0xFF
    assert t.sparse_remove_section(SEC, 4 * SUB)
    assert t.section_usage(1) == "boot" and t.subsection_map(1) == 0xF0 and t.pfn_valid(SEC + 4 * SUB)
    assert t.sparse_remove_section(SEC + 4 * SUB, 4 * SUB)
    assert t.section_usage(1) == "boot" and t.subsection_map(1) == 0
    assert t.vmemmap_stats()["base_pages_ram"] == 0 and t.vmemmap_stats()["pte_tables"] == 0
    assert t.dmesg == []


def test_failed_readd_of_an_early_section(impl, rule):
    """§5.4 -ENOMEM path: section_activate reuses the boot usage, the memmap allocation fails
    (empty altmap) and section_deactivate undoes the bits.  v5.5+: the boot usage stays and the
    table is as before; v5.3: that deactivation kfree()s the boot array (logged, usage gone)."""
    T, A = impl
    t = boot(T, RULES[rule], [(SEC, 2 * SEC)])
    t.sparse_remove_section(SEC, SEC)
    before = t.snapshot()
    with pytest.raises(KernelError) as e:
        t.sparse_add_section(0, SEC, SEC, A(SEC, reserve=0, free=0))
    assert e.value.errno == errno.ENOMEM
    if rule == "unless_boot":
        assert t.snapshot() == before and t.dmesg == []
        assert t.section_usage(1) == "boot"
    else:
        assert t.section_usage(1) is None
        assert t.dmesg == [f"{BUG} 1 (memblock memory: the v5.3 re-added early section bug)"]
    assert not t.present_section_nr(1) and t.subsection_map(1) == 0
