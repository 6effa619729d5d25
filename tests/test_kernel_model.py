"""Which rules a kernel version runs (sparsemem.kernel, the one place versions are compared).

A version runs the rules of its row of ``ERAS``; one newer than the release its row describes
(5.10 on the v5.3 row) is marked approximate and the labels of ``report`` say so.  The v5.1
row differs from v5.2 in ``__remove_pages`` (sparse-hotplug.md §7 and §10)."""

from __future__ import annotations

from sparsemem import cli
from sparsemem.kernel import ERAS, kernel_model


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


def test_v51_row_switch():
    assert kernel_model("5.1").remove_pages_stops_on_invalid
    assert not kernel_model("5.2").remove_pages_stops_on_invalid
    assert not kernel_model("5.3").remove_pages_stops_on_invalid
    assert kernel_model("5.1").era == kernel_model("5.2").era == "legacy"
