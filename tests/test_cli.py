"""The ``sparsemem`` command line, run as a user runs it: ``python -m sparsemem`` in a subprocess.

Golden outputs live in ``tests/golden``; regenerate them after an intended change with
``SPARSEMEM_REGEN_GOLDEN=1 pytest tests/test_cli.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import sparsemem
from sparsemem.cli import main
from sparsemem.lsmem import size_to_human_string as h
from sparsemem.report import DEFAULT_KERNELS, REPORT_SCHEMA, REPORT_VERSION

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
GOLDEN = HERE / "golden"
REGEN = os.environ.get("SPARSEMEM_REGEN_GOLDEN") == "1"


def _env() -> dict:
    env = dict(os.environ)
    # the child imports the same sparsemem as this process: the checkout's src/ after an
    # in-place build, the installed package after `pip install .`

    pkg_parent = str(pathlib.Path(sparsemem.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (pkg_parent, env.get("PYTHONPATH")) if p)
    env.setdefault("COLUMNS", "100")
    env["PYTHONIOENCODING"] = "utf-8"
    # issue 13: with no LAYOUT the command reads this machine's /proc/iomem; these tests want
    # the bundled layout whatever machine runs them (tests/test_cli_stream.py covers the rest)
    env["SPARSEMEM_PROC_IOMEM"] = str(HERE / "no-such-proc-iomem")
    return env


def run(*args, check: bool = False) -> subprocess.CompletedProcess:
    # stdin is /dev/null: a piped stdin is read as the layout when no LAYOUT is given
    proc = subprocess.run([sys.executable, "-m", "sparsemem", *map(str, args)], capture_output=True,
                          text=True, env=_env(), cwd=str(REPO), timeout=600, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def shared_layouts_dir() -> pathlib.Path | None:
    """The public layouts: tests/data/layouts (shipped in the sdist too)."""
    return HERE / "data" / "layouts"


def shared_layout(name_part: str) -> pathlib.Path:
    d = shared_layouts_dir()
    if d is None:
        pytest.skip("tests/data/layouts not found: run the tests from a checkout or an sdist")
    hits = sorted(p for p in d.glob("*.txt") if name_part in p.name)
    if not hits:
        pytest.skip(f"no layout in tests/data/layouts matching {name_part!r}")
    return hits[0]


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"golden file {path} is missing: run SPARSEMEM_REGEN_GOLDEN=1 pytest {__file__}")
    expected = path.read_text(encoding="utf-8")
    assert text == expected, (f"output differs from {path} (if intended: SPARSEMEM_REGEN_GOLDEN=1 pytest "
                              f"tests/test_cli.py and review the diff)")


# ---------------------------------------------------------------------------------------------
# a tiny validator for the JSON-schema-like REPORT_SCHEMA (no new dependency)

_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def _is(value, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, _TYPES[t])


def validate(value, schema: dict, where: str = "$") -> list[str]:
    errors = []
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else list(types)
        if not any(_is(value, t) for t in types):
            return [f"{where}: expected {'/'.join(types)}, got {type(value).__name__}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                errors.append(f"{where}: missing {key!r}")
        props = schema.get("properties", {})
        for key, v in value.items():
            if key in props:
                errors += validate(v, props[key], f"{where}.{key}")
            elif schema.get("additionalProperties", True) is False:
                errors.append(f"{where}: unexpected key {key!r}")
    if isinstance(value, list) and "items" in schema:
        for i, v in enumerate(value):
            errors += validate(v, schema["items"], f"{where}[{i}]")
    return errors


def _schema():
    return REPORT_SCHEMA


def test_validator_rejects_wrong_documents():
    schema = _schema()
    v = REPORT_VERSION  # 2 since issue 13 (ndctl field names, observations, check)
    assert validate({"version": v, "kernels": [], "layouts": []}, schema) == []
    assert validate({"version": v - 1, "kernels": [], "layouts": []}, schema)
    assert validate({"version": v, "kernels": []}, schema)
    assert validate({"version": v, "kernels": [{"version": 5.3, "era": "x"}], "layouts": []}, schema)
    assert validate({"version": v, "kernels": [], "layouts": [], "extra": 0}, schema)


# ---------------------------------------------------------------------------------------------
# report


def test_report_bundled_layout_golden():
    proc = run("report", check=True)
    # no LAYOUT and no readable /proc/iomem (see _env): one line says why, then the bundled one
    assert proc.stderr.count("\n") == 1 and "using the bundled layout ndctl-issue-76.txt" in proc.stderr
    check_golden("report_ndctl76.txt", proc.stdout)
    out = proc.stdout
    assert "region0" in out and "region1" in out
    assert "5.2 (legacy)" in out and "5.3 (subsection)" in out
    assert "total usable:" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_report_second_layout_golden():
    path = shared_layout("156092354368")
    proc = run("report", path, check=True)
    check_golden("report_156092354368.txt", proc.stdout)


def test_report_ndctl76_numbers():
    """#76 under both eras: 5.3 loses no capacity to padding, 5.2 does (or fails)."""
    proc = run("report", "--json", check=True)
    rep = json.loads(proc.stdout)
    (lay,) = rep["layouts"]
    assert lay["bundled"] is True and lay["source"] == "https://github.com/pmem/ndctl/issues/76"
    regions = lay["regions"]
    assert [r["start"] for r in regions] == [0x187C000000, 0x577C000000]
    for reg in regions:
        assert reg["size"] == 252 << 30
        by_k = {r["kernel"]: r for r in reg["results"]}
        new, old = by_k["5.3"], by_k["5.2"]
        assert new["result"] == "ok", new
        assert new["lost"]["padding"] == 0
        ns = new["namespace"]
        assert ns["start"] == reg["start"] and ns["raw_size"] == reg["size"]
        assert new["capacity"] == ns["size"] == ns["raw_size"] - ns["dataoff"] - ns["end_trunc"]
        assert old["result"] != "ok" or old["lost"]["padding"] > 0
        for r in (new, old):
            lost = r["lost"]
            assert lost["total"] == reg["size"] - r["capacity"]
            assert lost["total"] == lost["padding"] + lost["metadata"] + lost["unallocated"] + lost["other"]
            if r["result"] != "ok":
                assert r["errno"] and r["message"]
    # the region0 start section is shared with System RAM in the sub-section era
    r0 = {r["kernel"]: r for r in regions[0]["results"]}["5.3"]
    assert any("System RAM" in s["owners"] for s in r0["shared_sections"])
    tot = {t["kernel"]: t["capacity"] for t in lay["totals"]}
    # default kernels: 5.2, 5.3 and the newest modelled release (api.md "Command line")
    assert lay["capacity_difference"] == [{"kernel": k, "versus": "5.2", "bytes": tot[k] - tot["5.2"]}
                                          for k in DEFAULT_KERNELS[1:]]
    assert tot["5.3"] > tot["5.2"]


def test_report_json_schema():
    proc = run("report", "--json", check=True)
    rep = json.loads(proc.stdout)
    assert rep["version"] == 2  # issue 13 raised it
    assert [k["version"] for k in rep["kernels"]] == ["5.2", "5.3", "6.12"] == list(DEFAULT_KERNELS)
    assert validate(rep, _schema()) == []


def test_report_json_schema_several_layouts_and_kernels():
    a = shared_layout("161058500675")
    b = shared_layout("pmem.github.io")
    proc = run("report", a, b, "--kernel", "5.3", "--kernel", "5.2", "--json", check=True)
    rep = json.loads(proc.stdout)
    assert validate(rep, _schema()) == []
    assert [k["version"] for k in rep["kernels"]] == ["5.3", "5.2"]
    assert len(rep["layouts"]) == 2


def _shared_layout_files():
    d = shared_layouts_dir()
    return sorted(d.glob("*.txt")) if d else []


@pytest.mark.parametrize("path", _shared_layout_files() or [None],
                         ids=lambda p: p.name[:40] if p else "missing")
def test_every_shared_layout_reports_in_subsection_era(path):
    if path is None:
        pytest.skip("tests/data/layouts not found: run the tests from a checkout or an sdist")
    proc = run("report", path, "--kernel", "5.3", "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rep = json.loads(proc.stdout)
    assert validate(rep, _schema()) == []
    for reg in rep["layouts"][0]["regions"]:
        for r in reg["results"]:
            assert r["lost"]["total"] == reg["size"] - r["capacity"]


def test_plot_png_has_several_colours(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "map.png"
    proc = run("report", "--plot", out, check=True)
    assert out.exists() and out.stat().st_size > 10_000
    mpimg = pytest.importorskip("matplotlib.image")

    img = mpimg.imread(str(out))
    colours = np.unique((img[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 1
    assert "plot written to" in proc.stdout


def test_plot_without_matplotlib(tmp_path):
    # hide matplotlib from the child through a sitecustomize-like shim on PYTHONPATH
    shim = tmp_path / "shim"
    (shim / "matplotlib").mkdir(parents=True)
    (shim / "matplotlib" / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    env = _env()
    env["PYTHONPATH"] = os.pathsep.join([str(shim), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-m", "sparsemem", "report", "--plot", str(tmp_path / "x.png")],
                          capture_output=True, text=True, env=env, cwd=str(REPO), timeout=600)
    assert proc.returncode == 1
    assert proc.stderr.strip().endswith("matplotlib is not installed: pip install 'sparsemem[plot]'")
    assert len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------------
# lsmem


def test_lsmem_golden():
    path = shared_layout("nvdimm.wiki.kernel.org")
    proc = run("lsmem", path, check=True)
    check_golden("lsmem_nvdimm_wiki.txt", proc.stdout)
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["RANGE", "SIZE", "STATE", "REMOVABLE", "BLOCK"]
    assert lines[1].startswith("0x0000000000000000-")
    assert any(line.startswith("Memory block size:") for line in lines)
    assert any(line.startswith("Total online memory:") for line in lines)
    assert lines[-1].startswith("Total offline memory:")


def test_lsmem_ndctl76_matches_ram():
    bundled = pathlib.Path(sparsemem.__file__).resolve().parent / "data" / "ndctl-issue-76.txt"
    proc = run("lsmem", bundled, "--kernel", "5.2", check=True)
    lines = proc.stdout.splitlines()
    ranges = [line.split()[0] for line in lines[1:] if line.startswith("0x")]
    assert ranges, proc.stdout
    for r in ranges:
        start, end = (int(x, 16) for x in r.split("-"))
        assert start % (128 << 20) == 0 and (end + 1) % (128 << 20) == 0
    # no memory block inside the pmem regions
    for r in ranges:
        start, end = (int(x, 16) for x in r.split("-"))
        assert end < 0x187C000000 + (128 << 20) or start >= 0x967C000000 - (128 << 20)


def test_lsmem_size_format():
    # util-linux 2.38.1 lib/strutils.c size_to_human_string: thousandths of the unit, rounded
    # to one digit (tests/test_real_tools.py compares with the installed lsmem)

    assert h(0) == "0B"
    assert h(128 << 20) == "128M"
    assert h(1 << 30) == "1G"
    assert h(3 * (1 << 30) + 900 * (1 << 20)) == "3.9G"
    assert h((2 << 30) - (1 << 20)) == "2G"  # rounds up as util-linux does
    assert h((1 << 41) - (61 << 30)) == "1.9T"  # 1.940 TiB: the 1/1024 scale gave "2T"
    assert h((1 << 41) - (40 << 30)) == "2T"  # 1.961 TiB
    assert h(1536 << 20) == "1.5G" and h((1 << 30) + (50 << 20)) == "1G"  # 1.048 rounds down


# ---------------------------------------------------------------------------------------------
# errors and exit status


def test_help_has_examples():
    for args in ([], ["report"], ["lsmem"]):
        proc = run(*args, "--help")
        assert proc.returncode == 0
        assert "examples:" in proc.stdout
    assert "padding" in run("report", "--help").stdout


def test_usage_errors_exit_2():
    # issue 13: `lsmem` without a LAYOUT is no longer a usage error (it reads this machine's map
    # or the bundled layout, as `report` does: tests/test_cli_stream.py)
    for args in ([], ["frobnicate"], ["report", "--kernel", "five"], ["report", "--bogus"],
                 ["report", "--json", "--jsonl"]):
        proc = run(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "error:" in proc.stderr


def test_unreadable_layout_exit_1(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("100000000-1ffffffff : System RAM\nthis is not a layout line\n")
    for cmd in ("report", "lsmem"):
        proc = run(cmd, bad)
        assert proc.returncode == 1, proc.stderr
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert str(bad) in err and "line 2" in err
    missing = tmp_path / "missing.txt"
    proc = run("report", missing)
    assert proc.returncode == 1 and str(missing) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unprivileged_iomem_exit_1(tmp_path):
    zero = tmp_path / "iomem-user.txt"
    zero.write_text("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n"
                    "00000000-00000000 : Persistent Memory (legacy)\n")
    proc = run("report", zero)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "root" in err and str(zero) in err


def test_layout_without_pmem(tmp_path):
    path = shared_layout("nvdimm.wiki.kernel.org")
    proc = run("report", path, check=True)
    assert "no pmem regions" in proc.stdout


def test_main_returns_status_in_process(capsys):
    assert main(["report", "--kernel", "x.y"]) == 2
    assert main(["--version"]) == 0
    capsys.readouterr()
