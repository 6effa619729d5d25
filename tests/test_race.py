"""Race replay (issue 10 item 4; api.md "Race replay: sparsemem.race"): ``section_deactivate``
against a lock-free ``pfn_valid`` / ``pfn_to_online_page``, every interleaving, per release.

The step orders are later-eras-hotplug.md A8 (with A3.1-A3.3 for the readers) and
sparse-hotplug.md §7 (v5.1/v5.2), §10 (#6, #9, #10, #21, #23) and §11; the boundaries were
checked in the kernel sources listed in docs/race.md.  Every release 5.1 .. 6.12 runs its row
of :data:`~sparsemem.kernel.ERAS`.
"""

from __future__ import annotations

from math import comb

import pytest

import sparsemem
from sparsemem import race
from sparsemem.kernel import ERAS, KernelModel, kernel_model

PV, POP = race.SCENARIOS  # "deactivate-vs-pfn_valid", "deactivate-vs-pfn_to_online_page"
RELEASES = ["5.1", "5.2", *(f"5.{m}" for m in range(3, 20)), *(f"6.{m}" for m in range(0, 13))]


def model_for(release: str) -> KernelModel:
    """``kernel_model(release)``: the row of the release table the release runs."""
    return kernel_model(release)


def kinds(release: str, scenario: str) -> set[str]:
    return set(race.explore(model_for(release), scenario))


# ---------------------------------------------------------------------------------------------
# the release table (kernel.py ERAS)


def test_switches_follow_the_release_table():
    """Each switch on both sides of its boundary (A8; A3.1 6.10; A3.3 5.12; §10 #21)."""
    order = {r: model_for(r).deactivate_order for r in ("5.2", "5.3", "5.4", "5.5", "5.6", "5.8", "5.9",
                                                         "6.7", "6.8", "6.10")}
    assert order == {"5.2": "5.2", "5.3": "5.3", "5.4": "5.3", "5.5": "5.3", "5.6": "5.6", "5.8": "5.6",
                     "5.9": "5.6", "6.7": "5.6", "6.8": "6.8", "6.10": "6.8"}
    for name, before, since in (("pfn_to_online_page_subsection", "5.11", "5.12"),
                                ("usage_kfree_rcu", "6.7", "6.8"), ("pfn_valid_rcu", "6.7", "6.8"),
                                ("pfn_section_valid_null_safe", "6.9", "6.10")):
        assert (getattr(model_for(before), name), getattr(model_for(since), name)) == (False, True), name
    assert dict(ERAS)[(6, 10, 0)]["pfn_section_valid_null_safe"] is True


# ---------------------------------------------------------------------------------------------
# the CVE-2023-52489 window and its two fixes


@pytest.mark.parametrize("release", RELEASES)
def test_cve_2023_52489_window_in_pfn_valid(release):
    """§10 #21: the window exists from the sub-section series (v5.3, Fixes f46edbd1b151) to 6.7;
    6.8 (5ec8e8ea8b77: HAS_MEM_MAP cleared first, kfree_rcu, pfn_valid under RCU-sched) has no
    use-after-free but still the NULL dereference; 6.10 (82f0b6f041fa, §10 #23) has neither.
    v5.1/v5.2 ``pfn_valid`` reads only the section word (§4.2, §7)."""
    major, minor = map(int, release.split("."))
    if (major, minor) < (5, 3):
        expected = {"ok"}
    elif (major, minor) < (6, 8):
        expected = {"ok", "null-deref", "use-after-free"}
    elif (major, minor) < (6, 10):
        expected = {"ok", "null-deref"}
    else:
        expected = {"ok"}
    assert kinds(release, PV) == expected


@pytest.mark.parametrize("release", RELEASES)
def test_pfn_to_online_page_window(release):
    """A3.3 and A8: the 5.3-5.11 macro tests only SECTION_IS_ONLINE (one load: nothing to race);
    the 5.12 function also loads ``usage`` and takes no RCU lock in any release, so the
    use-after-free stays after 6.8 and only the NULL dereference goes, in 6.10.  A reader that
    tested ONLINE before the offline returns a page for a section that is no longer online."""
    major, minor = map(int, release.split("."))
    if (major, minor) < (5, 12):
        expected = {"ok"}
    elif (major, minor) < (6, 10):
        expected = {"ok", "null-deref", "use-after-free", "stale"}
    else:
        expected = {"ok", "use-after-free", "stale"}
    assert kinds(release, POP) == expected


# ---------------------------------------------------------------------------------------------
# each boundary on both sides


def test_boundary_5_2_to_5_3():
    """§7 -> §6: sparse_remove_one_section (4 steps, no usage read by the reader) becomes
    section_deactivate with the sub-section bitmap that pfn_valid dereferences."""
    assert race.steps("5.2", PV) == (("W1 sparse_decode_mem_map", "W2 section_mem_map=0",
                                      "W3 pageblock_flags=NULL", "W4 free_section_usemap"),
                                     ("R1 valid_section",))
    assert race.steps("5.3", PV)[1] == ("R1 valid_section", "R2 early_section", "R3 load usage",
                                        "R4 test_bit(subsection_map)")


def test_boundary_5_4_to_5_5_same_race():
    """A8 5.5 (A1 #5: 8068df3b6037, absent at 5.5-rc5, queued for 5.4.14 before 5.5 was
    released): the usage is freed unless its page is PageReserved instead of unless the section
    is early; for a hot-added section (slab usage) both free it, so the race is the same."""
    for scenario in race.SCENARIOS:
        assert race.steps("5.4", scenario) == race.steps("5.5", scenario)
        assert race.tally("5.4", scenario) == race.tally("5.5", scenario)


def test_boundary_5_5_to_5_6():
    """A8 / §10 #6 #9 #10: 5.3-5.5 store sparse_encode_mem_map(NULL) (every flag cleared at once,
    after the usage is freed); 5.6 clears HAS_MEM_MAP alone and zeroes the word last, after the
    memmap is freed.  Both free the usage while HAS_MEM_MAP is still set."""
    w55, _ = race.steps("5.5", PV)
    w56, _ = race.steps("5.6", PV)
    assert w55 == ("W1 clear_subsection_map", "W2 kfree(usage)", "W3 usage=NULL", "W4 sparse_decode_mem_map",
                   "W5 section_mem_map=encode(NULL)", "W6 depopulate_section_memmap")
    assert w56 == ("W1 clear_subsection_map", "W2 kfree(usage)", "W3 usage=NULL", "W4 sparse_decode_mem_map",
                   "W5 clear HAS_MEM_MAP", "W6 depopulate_section_memmap", "W7 section_mem_map=0")
    assert race.tally("5.5", PV) != race.tally("5.6", PV)
    assert kinds("5.5", PV) == kinds("5.6", PV) == {"ok", "null-deref", "use-after-free"}


def test_boundary_5_8_to_5_9_same_race():
    """A8 5.9: W6 changes only for early sections (§10 #13); a hot-added section runs the same
    steps."""
    for scenario in race.SCENARIOS:
        assert race.steps("5.8", scenario) == race.steps("5.9", scenario)
        assert race.explore("5.8", scenario) == race.explore("5.9", scenario)


def test_boundary_5_11_to_5_12_pfn_to_online_page():
    """A3.3 / §10 #15: the macro (one load) becomes the function that reads ``usage``."""
    assert race.steps("5.11", POP)[1] == ("R1 online_section",)
    assert race.steps("5.12", POP)[1] == ("R1 online_section", "R2 load usage", "R3 test_bit(subsection_map)",
                                          "R4 online_device_section")
    assert set(race.explore("5.11", POP)) == {"ok"}
    assert "null-deref" in race.explore("5.12", POP)
    assert race.explore("5.11", PV) == race.explore("5.12", PV)  # pfn_valid unchanged


def test_boundary_6_7_to_6_8():
    """§10 #21: HAS_MEM_MAP is cleared before the usage is freed, with kfree_rcu."""
    w67, _ = race.steps("6.7", PV)
    w68, _ = race.steps("6.8", PV)
    assert w68 == ("W1 clear_subsection_map", "W5 clear HAS_MEM_MAP", "W2 kfree_rcu(usage)",
                   "W3 WRITE_ONCE(usage, NULL)", "W4 sparse_decode_mem_map", "W6 depopulate_section_memmap",
                   "W7 section_mem_map=0")
    assert w67.index("W2 kfree(usage)") < w67.index("W5 clear HAS_MEM_MAP")
    assert "use-after-free" in race.explore("6.7", PV) and "use-after-free" not in race.explore("6.8", PV)
    assert "use-after-free" in race.explore("6.8", POP)  # no RCU read section in pfn_to_online_page


def test_boundary_6_9_to_6_10():
    """§10 #23 / A3.1: the NULL check of 82f0b6f041fa (absent at 6.10-rc5, present at 6.10.0)."""
    for scenario in race.SCENARIOS:
        assert "null-deref" in race.explore(model_for("6.9"), scenario)
        assert "null-deref" not in race.explore(model_for("6.10"), scenario)
    assert race.explore(model_for("6.9"), PV) == race.explore("6.8", PV)


# ---------------------------------------------------------------------------------------------
# every schedule, and the conditions of A8 checked on each


def _interleaves(schedule, writer, reader) -> bool:
    return ([s for s in schedule if s in writer] == list(writer)
            and [s for s in schedule if s in reader] == list(reader) and len(schedule) == len(writer) + len(reader))


@pytest.mark.parametrize("release", ["5.2", "5.3", "5.6", "5.12", "6.8", "6.10"])
@pytest.mark.parametrize("scenario", race.SCENARIOS)
def test_every_interleaving_is_run_once(release, scenario):
    """The number of schedules is C(writer steps + reader steps, reader steps); they are distinct
    interleavings, and replaying each one gives the counts of ``tally``."""
    model = model_for(release)
    writer, reader = race.steps(model, scenario)
    all_schedules = [tuple(s) for s in race.schedules(model, scenario)]
    n = comb(len(writer) + len(reader), len(reader))
    assert len(all_schedules) == len(set(all_schedules)) == n == sum(race.tally(model, scenario).values())
    assert all(_interleaves(s, writer, reader) for s in all_schedules)
    counts = dict.fromkeys(race.OUTCOMES, 0)
    for s in all_schedules:
        counts[race.replay(model, scenario, s)] += 1
    assert counts == race.tally(model, scenario)


def _position(schedule, prefix: str) -> int:
    (i,) = [i for i, s in enumerate(schedule) if s.startswith(prefix)]
    return i


def _a8_pfn_valid(schedule, model: KernelModel) -> str:
    """A8 "Reader pfn_valid", as position rules: R1 before the store that clears HAS_MEM_MAP
    (W5) and R3 after W3 -> NULL dereference (0 from 6.10); R3 before W3 and R4 after the free
    (W2) -> use-after-free, unless the reader is in an RCU-sched section and the free is a
    kfree_rcu (6.8+)."""
    p = {k: _position(schedule, k) for k in ("R1", "R3", "R4", "W2", "W3", "W5")}
    if p["R1"] > p["W5"]:
        return "ok"
    if p["R3"] > p["W3"]:
        return "ok" if model.pfn_section_valid_null_safe else "null-deref"
    if p["R4"] > p["W2"] and not (model.pfn_valid_rcu and model.usage_kfree_rcu):
        return "use-after-free"
    return "ok"


def _a8_pfn_to_online_page(schedule, model: KernelModel) -> str:
    """A3.3 / A8 "Reader pfn_to_online_page" (5.12+): the online test (R1) before the offline
    (W0) lets the reader load ``usage`` (R2): after W3 -> NULL (0 from 6.10); before W3 with
    the bit test (R3) after the free -> use-after-free (no RCU); bit still set (R3 before W1)
    and the answer given (R4) after the offline -> stale page."""
    p = {k: _position(schedule, k) for k in ("R1", "R2", "R3", "R4", "W0", "W1", "W2", "W3")}
    if p["R1"] > p["W0"]:
        return "ok"
    if p["R2"] > p["W3"]:
        return "ok" if model.pfn_section_valid_null_safe else "null-deref"
    if p["R3"] > p["W2"]:
        return "use-after-free"
    if p["R3"] < p["W1"] and p["R4"] > p["W0"]:
        return "stale"
    return "ok"


@pytest.mark.parametrize("release", ["5.3", "5.5", "5.6", "6.7", "6.8", "6.9", "6.10"])
def test_pfn_valid_outcomes_are_the_a8_conditions(release):
    model = model_for(release)
    for s in race.schedules(model, PV):
        assert race.replay(model, PV, s) == _a8_pfn_valid(s, model), s


@pytest.mark.parametrize("release", ["5.12", "6.7", "6.8", "6.10"])
def test_pfn_to_online_page_outcomes_are_the_a8_conditions(release):
    model = model_for(release)
    for s in race.schedules(model, POP):
        assert race.replay(model, POP, s) == _a8_pfn_to_online_page(s, model), s


@pytest.mark.parametrize("release", ["5.1", "5.2", "5.3", "5.5", "5.6", "5.11", "5.12", "6.7", "6.8", "6.9", "6.10"])
@pytest.mark.parametrize("scenario", race.SCENARIOS)
def test_examples_replay_to_their_outcome(release, scenario):
    """Each example is a whole interleaving and replays to the kind it is listed under."""
    model = model_for(release)
    writer, reader = race.steps(model, scenario)
    found = race.explore(model, scenario)
    assert list(found) == [k for k in race.OUTCOMES if k in found]  # api.md order
    for kind, schedule in found.items():
        assert _interleaves(schedule, writer, reader)
        assert race.replay(model, scenario, schedule) == kind


def test_null_deref_example_of_the_cve():
    """The report of CVE-2023-52489 (§10 #21): pfn_valid passed valid_section, then the usage
    was freed and cleared, then the reader loaded it."""
    s = race.explore("6.7", PV)["null-deref"]
    assert s.index("R1 valid_section") < s.index("W3 usage=NULL") < s.index("R3 load usage")
    assert s.index("R3 load usage") < s.index("W5 clear HAS_MEM_MAP")


# ---------------------------------------------------------------------------------------------
# input


def test_release_spellings_and_models():
    """Any string kernel_model accepts (uname -r forms, v prefix, -rc), or a KernelModel."""
    for spelled, plain in (("6.8.0-45-generic", "6.8"), ("v5.10", "5.10"), ("5.14.0-427.13.1.el9_4.x86_64", "5.14"),
                           ("6.6.30+", "6.6"), ("5.12-rc3", "5.12")):
        for scenario in race.SCENARIOS:
            assert race.explore(spelled, scenario) == race.explore(plain, scenario)
    assert race.explore(kernel_model("6.8"), PV) == race.explore("6.8", PV)


@pytest.mark.parametrize("bad", ["4.19", "7.0", "5", "linux", "6.10"])
def test_bad_kernel_raises_as_kernel_model(bad):
    try:
        kernel_model(bad)
    except ValueError as e:
        with pytest.raises(ValueError) as got:
            race.explore(bad, PV)
        assert str(got.value) == str(e)
    else:  # the range grew to this release: the race runs it
        assert race.explore(bad, PV)
    with pytest.raises(TypeError):
        race.explore(6.8, PV)


def test_unknown_scenario():
    with pytest.raises(ValueError) as e:
        race.explore("6.8", "deactivate-vs-compaction")
    assert all(s in str(e.value) for s in race.SCENARIOS) and "deactivate-vs-compaction" in str(e.value)
    with pytest.raises(TypeError):
        race.explore("6.8", None)


def test_replay_rejects_what_is_not_an_interleaving():
    writer, reader = race.steps("6.8", PV)
    with pytest.raises(ValueError, match="not an interleaving"):
        race.replay("6.8", PV, list(reversed(writer)) + list(reader))
    with pytest.raises(ValueError, match="not an interleaving"):
        race.replay("6.8", PV, list(writer) + list(reader[:-1]))
    with pytest.raises(ValueError, match="unknown step"):
        race.replay("6.8", PV, list(writer) + list(reader) + ["R5 return"])
    with pytest.raises(TypeError):
        race.replay("6.8", PV, "R1 valid_section")


def test_lazy_module():
    """``sparsemem.race`` is reachable from the package like the other lazy names."""
    assert "race" in dir(sparsemem)
    assert sparsemem.race is race
