"""Which rules a kernel version runs (sparsemem.kernel, the one place versions are compared).

A version runs the rules of its row of ``ERAS`` (later-eras-hotplug.md A10, one row per release
that changes anything observable, 5.1 .. 6.12, keyed ``(major, minor, patch)``).  The rows after
5.3 set only the switches the layers implement so far (later-eras-hotplug-evidence.md §5 step 2),
so a release on them is approximate and its label says so; a distribution suffix adds that
backports are not modelled.  The v5.1 row differs from v5.2 in ``__remove_pages``
(sparse-hotplug.md §7 and §10)."""

from __future__ import annotations

import pytest

from sparsemem import cli
from sparsemem.kernel import (
    ERAS,
    MODELLED_THROUGH,
    NEWEST,
    OLDEST,
    kernel_model,
    newest_release,
    parse_version,
    report_kernels,
    row_releases,
    version_range,
)

#: later-eras-hotplug.md A10 (corrected: + 5.19, - 5.14) and the 6.1 memory-failure row, and the
#: nvdimm-only rows 5.17, 6.1.12 and 6.9 (later-eras-nvdimm-evidence.md R14, R20, R24), and the
#: kmem rows 5.14, 6.3 and 6.4 (kmem-evidence.md §1)
A10_ROWS = ("5.1", "5.2", "5.3", "5.4", "5.5", "5.6", "5.7", "5.8", "5.9", "5.10", "5.11", "5.12", "5.13",
            "5.14", "5.15", "5.17", "5.18", "5.19", "6.0", "6.1", "6.1.12", "6.2", "6.3", "6.4", "6.5", "6.6",
            "6.8", "6.9", "6.10", "6.12")


def test_one_row_per_release_keyed_by_major_minor_patch():
    assert row_releases() == A10_ROWS
    assert all(len(first) == 3 for first, _ in ERAS)
    firsts = [first for first, _ in ERAS]
    assert firsts == sorted(firsts) and len(set(firsts)) == len(firsts)
    assert (OLDEST, NEWEST) == ((5, 1), (6, 12)) and version_range() == "5.1 .. 6.12"
    assert newest_release() == "6.12" and report_kernels() == ("5.2", "5.3", "6.12")


@pytest.mark.parametrize("version,rules", [
    ("5.1", "5.1"), ("5.2.21", "5.2"), ("5.3", "5.3"), ("5.3.7", "5.3"), ("5.4", "5.4"), ("5.10", "5.10"),
    ("5.14", "5.14"), ("5.16", "5.15"), ("5.17", "5.17"), ("6.1", "6.1"), ("6.3", "6.3"), ("6.4", "6.4"),
    ("6.7", "6.6"), ("6.9", "6.9"), ("6.11", "6.10"), ("6.12", "6.12"),
    # the stable 6.1.12 row (9f55a0a2d94f): 6.1.11 and Debian's ABI-numbered 6.1.0-18 run 6.1
    ("6.1.11", "6.1"), ("6.1.12", "6.1.12"), ("6.1.12-rc1", "6.1.12"), ("6.1.20", "6.1.12"),
    ("6.1.0-18-amd64", "6.1"), ("6.2", "6.2"),
])
def test_release_runs_the_last_row_at_or_before_it(version, rules):
    assert kernel_model(version).rules == rules


def test_rules_approximate_and_labels():
    for v, approx in (("5.1", False), ("5.2", False), ("5.3", False), ("5.3.7", False), ("5.4", True),
                      ("6.12", True)):
        assert kernel_model(v).approximate is approx, v
    assert all(kernel_model(r).approximate == (first > MODELLED_THROUGH) for r, (first, _) in zip(row_releases(), ERAS))
    assert kernel_model("5.3").label == "5.3 (subsection)"
    assert kernel_model("5.2").label == "5.2 (legacy)"
    assert kernel_model("5.10").label == "5.10 (5.10 row; sparse/hotplug rows after 5.3 partly modelled)"
    assert kernel_model("6.3").label == "6.3 (6.3 row; sparse/hotplug rows after 5.3 partly modelled)"
    assert kernel_model("6.12").label == "6.12 (6.12 row; sparse/hotplug rows after 5.3 partly modelled)"
    # 6.1.12 starts its own (stable, nvdimm-only) row since issue 11: 9f55a0a2d94f, evidence R20
    assert kernel_model("6.1.12").label == "6.1.12 (6.1.12 row; sparse/hotplug rows after 5.3 partly modelled)"
    assert kernel_model("6.1.11").label == "6.1.11 (6.1 row; sparse/hotplug rows after 5.3 partly modelled)"


@pytest.mark.parametrize("typed,label", [
    ("v5.3", "v5.3 (subsection)"),
    ("5.3.0-rc1", "5.3.0-rc1 (subsection)"),                       # an -rcN counts as the release
    ("5.3.0-28-generic", "5.3.0-28-generic (subsection; distribution backports not modelled)"),
    ("6.8.0-45-generic", "6.8.0-45-generic (6.8 row; sparse/hotplug rows after 5.3 partly modelled; "
                         "distribution backports not modelled)"),
    ("5.14.0-427.13.1.el9_4.x86_64", "5.14.0-427.13.1.el9_4.x86_64 (5.14 row; sparse/hotplug rows after 5.3 "
                                     "partly modelled; distribution backports not modelled)"),
    ("6.6.30+", "6.6.30+ (6.6 row; sparse/hotplug rows after 5.3 partly modelled; distribution backports "
                "not modelled)"),
    ("6.12.118+deb13-amd64", "6.12.118+deb13-amd64 (6.12 row; sparse/hotplug rows after 5.3 partly modelled; "
                             "distribution backports not modelled)"),
])
def test_version_strings_as_users_write_them(typed, label):
    m = kernel_model(typed)
    assert m.label_for(typed) == label


@pytest.mark.parametrize("version,parsed", [
    ("6.8.0-45-generic", (6, 8, 0)), ("v6.1.12", (6, 1, 12)), ("6.12.0-rc7", (6, 12, 0)),
    ("5.14.0-427.13.1.el9_4.x86_64", (5, 14, 0)), ("6.6.30+", (6, 6, 30)), ("5.1", (5, 1, 0)),
])
def test_parse_version(version, parsed):
    assert parse_version(version) == parsed
    assert kernel_model(version).version == parsed


@pytest.mark.parametrize("version", ["5.0", "4.19.0-25-amd64", "6.13", "7.3", "6.13.0-rc1"])
def test_out_of_range_names_the_range(version):
    with pytest.raises(ValueError, match=r"outside the modelled range 5\.1 \.\. 6\.12"):
        kernel_model(version)


@pytest.mark.parametrize("version", ["6", "linux-6.8", "6.x", ""])
def test_malformed_names_the_range(version):
    with pytest.raises(ValueError, match=r"modelled: 5\.1 \.\. 6\.12"):
        kernel_model(version)


def test_cli_labels():
    assert cli._kernel_label({"kernel": "5.3", "era": "subsection"}) == "5.3 (subsection)"
    assert cli._kernel_label({"kernel": "5.2", "era": "legacy"}) == "5.2 (legacy)"
    # columns are 40 wide for one or two kernels: a partly modelled row is named briefly
    assert cli._kernel_label({"kernel": "6.1", "era": "subsection"}) == "6.1 (6.1 row, partial)"
    assert cli._kernel_label({"kernel": "5.10", "era": "subsection"}) == "5.10 (5.10 row, partial)"


# ------------------------------------------------------------------ each switch on both sides of its row


@pytest.mark.parametrize("name,before,after,values", [
    # 5.3: sub-section series (ba72b4c8cf60, f46edbd1b151)
    ("subsection", "5.2", "5.3", (False, True)),
    ("deactivate_order", "5.2", "5.3", ("5.2", "5.3")),
    # 5.4: memory-failure readers use pfn_to_online_page
    ("memory_failure", "5.3", "5.4", ("5.3", "5.4")),
    # 5.5: EFI soft reservation (262b45ae3ab4)
    ("efi_soft_reserve", "5.4", "5.5", (False, True)),
    ("usage_free_rule", "5.4", "5.5", ("unless_early", "unless_boot")),
    # 5.6: 1f503443e7df, d41e2f3bd546, b943f045a9af
    ("deactivate_writes_encoded_null", "5.5", "5.6", (True, False)),
    ("deactivate_order", "5.5", "5.6", ("5.3", "5.6")),
    # 5.7: "mm/sparsemem: get address to page struct instead of address to pfn"
    ("subsection_memmap_kaddr_bug", "5.6", "5.7", (True, False)),
    # 5.9: ef69bc9f689d, fe124c95df9e
    ("early_partial_remove_frees_memmap", "5.8", "5.9", (True, False)),
    ("bare_metal_2g_blocks", "5.8", "5.9", (False, True)),
    # 5.12: 1f90a3477df3, bca3feaa0764
    ("section_map_last_bit", "5.11", "5.12", (1 << 4, 1 << 5)),
    ("mhp_range_allowed", "5.11", "5.12", (False, True)),
    ("pfn_to_online_page_subsection", "5.11", "5.12", (False, True)),
    # 5.15 and 6.0: SECTION_NID_SHIFT (sparse-hotplug.md §10 #17, #19)
    ("section_nid_shift", "5.14", "5.15", (3, 6)),
    ("section_nid_shift", "5.19", "6.0", (6, 5)),
    # 6.1: memory-failure rules read at 6.1
    ("memory_failure", "6.0", "6.1", ("5.4", "6.1")),
    # 6.2: 5033091de814 (tests/test_hwpoison_eras.py)
    ("hwpoison_block_counter", "6.1", "6.2", (False, True)),
    # 6.8: 5ec8e8ea8b77, f6564fce256a
    ("deactivate_order", "6.7", "6.8", ("5.6", "6.8")),
    ("usage_kfree_rcu", "6.7", "6.8", (False, True)),
    ("pfn_valid_rcu", "6.7", "6.8", (False, True)),
    # 6.10: 82f0b6f041fa
    ("pfn_section_valid_null_safe", "6.9", "6.10", (False, True)),
    # __add_pages / __remove_pages (later-eras-hotplug.md A4.1; tests/test_add_pages_eras.py):
    # 5.5 "add a bounds check to __add_pages", moved to register_memory_resource in 5.12 (bca3feaa0764)
    ("add_pages_addressable_check", "5.4", "5.5", (False, True)),
    ("add_pages_addressable_check", "5.11", "5.12", (True, False)),
    ("remove_pages_end_loop", "5.5", "5.6", (False, True)),
    ("add_pages_end_loop", "5.6", "5.7", (False, True)),
    ("add_pages_err_uninitialised", "5.19", "6.0", (False, True)),
    ("pfn_span_warn_in_caller", "5.19", "6.0", (False, True)),
    ("pfn_span_end_hash_typo", "6.4", "6.5", (True, False)),
    # memory block sysfs (later-eras-hotplug.md A7.1; tests/test_memory_block_eras.py):
    # 53cdc1cb29e8 (5.6), 0d6ea3ac94ca (5.19)
    ("removable_constant", "5.5", "5.6", (False, True)),
    ("kstrtobool_true_false", "5.18", "5.19", (False, True)),
    # boot options (api.md "Boot options"; tests/test_bootparams.py)
    ("online_type_strings", "5.6", "5.7", (False, True)),
    ("memmap_on_memory_param", "5.12", "5.13", ("", "bool")),
    ("memmap_on_memory_param", "6.5", "6.6", ("bool", "force")),
    ("online_policy_param", "5.14", "5.15", (False, True)),
    # kmem and device-dax (kmem-evidence.md §1; tests/test_kmem.py)
    ("kmem_hot_remove", "5.2", "5.3", (False, True)),
    ("e820_pmem_phys_target_node", "5.6", "5.7", (False, True)),
    ("kmem_driver_managed", "5.7", "5.8", (False, True)),
    ("kmem_per_range", "5.9", "5.10", (False, True)),
    ("bind_returns_probe_error", "5.13", "5.14", (False, True)),
    ("kmem_memory_group", "5.14", "5.15", ("", "bytes")),
    ("hmem_resource_desc", "5.19", "6.0", (False, True)),
    ("hmem_active", "6.0", "6.1", (False, True)),
    ("dax_kmem_default", "6.2", "6.3", (False, True)),
    ("kmem_memory_group", "6.3", "6.4", ("bytes", "pages")),
    ("kmem_memmap_on_memory", "6.7", "6.8", (False, True)),
    # memory blocks and online/offline checks (later-eras-hotplug.md A7; tests/test_blocks_eras.py)
    ("offline_holes_check", "5.4", "5.5", (False, True)),
    ("mmop_numbering", "5.6", "5.7", ("keep", "offline0")),
    ("pages_correctly_probed", "5.6", "5.7", (True, False)),
    ("online_walks_system_ram", "5.9", "5.10", (True, False)),
    ("onoffline_alignment", "5.9", "5.10", ("", "section")),
    ("onoffline_alignment", "5.12", "5.13", ("section", "pageblock")),
    ("block_stores_zone", "5.17", "5.18", (False, True)),
    # the top half of hotplug (later-eras-hotplug-evidence.md §1; tests/test_top_half_eras.py)
    ("remove_memory_unpaired_unlock", "5.5", "5.6", (False, True)),
    ("mem_limit_boot_only", "5.6", "5.7", (False, True)),
    ("node_possible_check", "5.7", "5.8", (False, True)),
    ("remove_memory_unpaired_unlock", "5.8", "5.9", (True, False)),
    ("release_failure_message", "5.9", "5.10", (True, False)),
    ("offlined_pages_loglevel", "5.10", "5.11", ("info", "debug")),
    ("remove_memory_has_nid", "5.14", "5.15", (True, False)),
])
def test_switch_on_both_sides_of_its_row(name, before, after, values):
    assert (getattr(kernel_model(before), name), getattr(kernel_model(after), name)) == values
    # the value holds through the last release of the previous row and from the row on
    assert getattr(kernel_model(after + ".99"), name) == values[1]


def test_rows_without_an_implemented_switch_change_nothing_yet():
    """Rows whose A10 switches are all still to build (their comments list them) run exactly the
    switches of the row before, apart from the version fields."""
    def switches(v):
        m = kernel_model(v)
        return {k: val for k, val in vars(m).items() if k not in ("version", "row_release")}
    # 5.10 and 5.18 set online/offline switches (tests/test_blocks_eras.py), 5.19
    # kstrtobool_true_false
    # 5.8 sets node_possible_check and kmem_driver_managed (tests/test_kmem.py), 5.11
    # offlined_pages_loglevel (tests/test_top_half_eras.py)
    for before, row in (("6.10", "6.12"),):
        assert switches(before) == switches(row), row


def test_v51_row_switch():
    assert kernel_model("5.1").remove_pages_stops_on_invalid
    assert not kernel_model("5.2").remove_pages_stops_on_invalid
    assert not kernel_model("5.3").remove_pages_stops_on_invalid
    assert kernel_model("5.1").era == kernel_model("5.2").era == "legacy"
    assert kernel_model("6.12").era == "subsection"
