"""Hints (issue 13 item 3): per loss or failure, the alternatives the simulation verified.

Every hint a report gives is applied here through the simulation, independently of
sparsemem.hints: the layout booted under the hint's release, or with the hint's namespace
request, or with its region moved to the hint's range; the region must then enable with the
capacity the hint names, more than the result it explains.  And the default kernels of
`report` (api.md "Command line": 5.2, 5.3 and the newest modelled release).
"""

from __future__ import annotations

import json
import pathlib
import random

import pytest

from sparsemem.cli import main
from sparsemem.explain import lost_capacity
from sparsemem.kernel import NEWEST, kernel_model, newest_release, report_kernels
from sparsemem.layout import parse
from sparsemem.report import DEFAULT_KERNELS, boot_layout, build_report, load_layout, populate

DATA = pathlib.Path(__file__).resolve().parent / "data"
LAYOUTS = DATA / "layouts"
BUNDLED = DATA.parent.parent / "src" / "sparsemem" / "data" / "ndctl-issue-76.txt"
#: every shipped layout: the public ones, the constructed existing configurations, the
#: input samples and the bundled one
SHIPPED = sorted([*LAYOUTS.glob("*.txt"), *(DATA / "existing").glob("*.iomem.txt"),
                  *(DATA / "inputs").glob("*.txt"), BUNDLED])
HINTED = [
    LAYOUTS / "github.com_pmem_pmem.github.io_pull_30.txt",
    LAYOUTS / "lore.kernel.org_0FB85A78-C2EE-4135-9E0F-D5623CE6EA47@lca.pw.txt",
    LAYOUTS / "lore.kernel.org_CAPcyv4h9s1jYROGqkMfKk0MNBUedP=vQ1nJObLRwFiTB405nOg@mail.gmail.com.txt",
    LAYOUTS / "lore.kernel.org_156092354368.979959.6232443923440952359.stgit@dwillia2-desk3.amr.corp.intel.com.txt",
]


def test_default_kernels_are_5_2_5_3_and_the_newest_modelled_release():
    assert newest_release() == "%d.%d" % NEWEST
    assert report_kernels() == DEFAULT_KERNELS == ("5.2", "5.3", newest_release())
    kernel_model(newest_release())          # accepted: it is in the modelled range


def test_report_without_kernel_uses_the_defaults(capsys):
    assert main(["report", str(HINTED[1]), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert [k["version"] for k in rep["kernels"]] == list(DEFAULT_KERNELS)


def _moved(text: str, old_start: int, start: int, end: int) -> str:
    """The layout as /proc/iomem text with the pmem range at ``old_start`` moved to
    ``[start, end]`` (what the nested lines said goes with it)."""
    tree = parse(text)
    res = next(r for r in tree.root.children if r.start == old_start)
    res.children = []
    res.start, res.end = start, end
    return tree.text()


def _apply(lay, kernel: str, index: int, hint: dict) -> dict:
    """The region's result when the hint's alternative is run through the simulation."""
    text, requests = lay.text, None
    if hint["kind"] == "release":
        kernel = hint["change"]["kernel"]
    elif hint["kind"] in ("align", "size"):
        requests = {index: dict(hint["change"])}
    else:
        machine, _ = boot_layout(lay.text, kernel)
        text = _moved(lay.text, machine.regions[index].start, hint["change"]["start"], hint["change"]["end"])
    machine, config = boot_layout(text, kernel, lay.ndctl)
    attempts, _ = populate(machine, config, kernel, requests=requests)
    (a,) = [a for a in attempts if a.region == index]
    return a.result


def _check_hints(lay, rep: dict) -> list[dict]:
    """Apply every hint of the layout's report through the simulation (``_apply``): the
    region must then enable with the capacity the hint names, more than the result it
    explains, and the hint's text must name the alternative.  Returns the hints checked."""
    checked = []
    for reg in rep["regions"]:
        for res in reg["results"]:
            if res["result"] == "ok" and not lost_capacity(res):
                assert res["hints"] == []          # nothing to avoid, nothing said
            for hint in res["hints"]:
                got = _apply(lay, res["kernel"], reg["index"], hint)
                where = (lay.file, reg["dev"], res["kernel"], hint)
                assert got["result"] == "ok", where
                assert got["capacity"] == hint["capacity"] > res["capacity"], where
                change = hint["change"]
                named = {"release": lambda: f"under {kernel_model(change['kernel']).label_for(change['kernel'])}",
                         "align": lambda: "-a " + {4096: "4K", 1 << 21: "2M", 1 << 30: "1G"}[change["align"]],
                         "size": lambda: f"-s {change['size']}",
                         "region": lambda: f"[mem {change['start']:#x}-{change['end']:#x}]"}[hint["kind"]]()
                assert named in hint["text"], where
                checked.append(hint)
    return checked


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name[:40])
def test_every_hint_works_when_applied(path):
    lay = load_layout(str(path))
    rep = build_report([lay], DEFAULT_KERNELS)["layouts"][0]
    checked = _check_hints(lay, rep)
    if path in HINTED or path == BUNDLED:   # those the tests and golden files show hints of
        assert checked


def test_every_hint_of_perturbed_layouts_works(tmp_path):
    """The layouts of the 1,000-layout batch (tests/test_cli_stream.py: the shipped ones
    with firmware-like perturbations, in the tools' forms), every tenth: their hints, of
    every kind, work when applied."""
    from test_cli_stream import SHIPPED as BASES  # noqa: PLC0415 -- the batch's generator
    from test_cli_stream import _perturb, _top_level, _write_form  # noqa: PLC0415

    tops = {p: _top_level(p) for p in BASES}
    kinds: dict = {}
    for i in range(0, 1000, 10):
        rnd = random.Random(i)
        src = BASES[i % len(BASES)]
        top = [[s, e, name, list(kids)] for s, e, name, kids in tops[src]]
        _perturb(top, rnd)
        p = tmp_path / f"layout-{i:04d}.txt"
        p.write_text(_write_form(top, rnd.choice(["iomem", "dmesg", "journalctl -k", "memmap"]), f"h{i}"))
        lay = load_layout(str(p))
        for hint in _check_hints(lay, build_report([lay], DEFAULT_KERNELS)["layouts"][0]):
            kinds[hint["kind"]] = kinds.get(hint["kind"], 0) + 1
    assert set(kinds) == {"release", "align", "size", "region"}, kinds


def test_the_hint_kinds_the_layouts_need():
    """lca.pw region1 (starts 0x15982c000: not sub-section aligned) fails under 5.3: 5.2 and a
    section-aligned region both enable it; the #76 504 GiB region fails under 5.2 for want of
    altmap: align 1G (a larger dataoff) enables it, as does 5.3."""
    lca = build_report([load_layout(str(HINTED[1]))], ["5.3"])["layouts"][0]
    kinds = {h["kind"]: h for h in lca["regions"][1]["results"][0]["hints"]}
    assert set(kinds) >= {"release", "region"}
    assert kinds["release"]["change"] == {"kernel": "5.2"}
    assert kinds["region"]["change"] == {"start": 0x160000000, "end": 0x1ffffffff}
    big = build_report([load_layout(str(HINTED[2]))], ["5.2"])["layouts"][0]
    kinds = {h["kind"]: h for h in big["regions"][0]["results"][0]["hints"]}
    assert kinds["align"]["change"] == {"align": 1 << 30}
    assert kinds["release"]["change"]["kernel"] in DEFAULT_KERNELS and \
        kernel_model(kinds["release"]["change"]["kernel"]).era == "subsection"


def test_no_hint_when_no_alternative_works():
    """The 8 KiB region of the pmem.github.io map cannot hold an info-block under any
    release, align or size: no hint, and indeed the alternatives fail."""
    lay = load_layout(str(HINTED[0]))
    rep = build_report([lay], ["5.3"])["layouts"][0]
    reg = rep["regions"][1]
    assert reg["size"] == 8192 and reg["results"][0]["result"] != "ok" and reg["results"][0]["hints"] == []
    for alt in ({"align": 4096}, {"align": 1 << 30}):
        assert _apply(lay, "5.3", 1, {"kind": "align", "change": alt})["result"] != "ok"
    assert _apply(lay, "5.2", 1, {"kind": "release", "change": {"kernel": "5.2"}})["result"] != "ok"


def test_text_report_shows_dmesg_and_hints_of_a_failure(capsys):
    assert main(["report", str(HINTED[1]), "--kernel", "5.2", "--kernel", "5.3", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    res = rep["layouts"][0]["regions"][1]["results"][1]
    assert res["result"] == "EINVAL" and res["hints"]
    assert main(["report", str(HINTED[1]), "--kernel", "5.2", "--kernel", "5.3"]) == 0
    out = capsys.readouterr().out
    flat = " ".join(out.split())
    assert "dmesg 5.3" in out and res["dmesg"][0] in out
    for hint in res["hints"]:
        assert f"5.3: {hint['text']}" in flat
    # and what the text shows is what the simulation verified
    assert _check_hints(load_layout(str(HINTED[1])), rep["layouts"][0])
