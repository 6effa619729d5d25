"""`python -m build` (issue 13 item 6): an sdist and a wheel, built without a compiler warning
from the generated C (CPython's CFLAGS carry -Wall and -Wsign-compare), carrying what the
tests and the package need, and a wheel that installs and runs.

The build runs on a copy of the source tree (`--no-isolation`: the build requirements of
pyproject.toml are those of the test environment; no network)."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile

import pytest

import sparsemem

REPO = pathlib.Path(__file__).resolve().parent.parent
_SKIP_DIRS = {"__pycache__", "build", "dist", ".git", ".pytest_cache"}
_SKIP_SUFFIXES = (".so", ".pyc", ".c", ".o")


def _copy_tree(dst: pathlib.Path) -> None:
    for name in ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, dst / name)
    for top in ("src", "include", "tests", "docs", "bench"):
        for f in (REPO / top).rglob("*"):
            rel = f.relative_to(REPO)
            if f.is_dir() or _SKIP_DIRS & set(rel.parts) or f.name.endswith(_SKIP_SUFFIXES) \
                    or any(p.endswith(".egg-info") for p in rel.parts):
                continue
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dst / rel)


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    pytest.importorskip("build", reason="pip install build")
    pytest.importorskip("Cython")
    src = tmp_path_factory.mktemp("src")
    out = tmp_path_factory.mktemp("dist")
    _copy_tree(src)
    proc = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(src)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout + proc.stderr


def test_no_warning_from_the_generated_c(dist):
    _, log = dist
    assert "_sparsecore.c" in log                      # the extension was compiled here
    warnings = [ln for ln in log.splitlines() if re.search(r"\.(c|h):\d+(:\d+)?: warning:", ln)]
    assert not warnings, "\n".join(warnings[:20])


def test_sdist_and_wheel_contents(dist):
    out, _ = dist
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    with tarfile.open(sdist) as t:
        names = {n.split("/", 1)[1] for n in t.getnames() if "/" in n}
    for need in ("src/_sparsecore.pyx", "include/sparsemem.h", "tests/data/existing/qemu-devdax.ndctl.json",
                 "tests/data/layouts/github.com_awslabs_damo_pull_84.txt", "docs/spec/api.md", "LICENSE"):
        assert need in names, need
    assert "src/_sparsecore.c" not in names
    with zipfile.ZipFile(wheel) as z:
        wnames = set(z.namelist())
        meta = next(z.read(n).decode() for n in wnames if n.endswith(".dist-info/METADATA"))
    assert any(re.fullmatch(r"sparsemem/_sparsecore\..*\.so", n) for n in wnames)
    for need in ("sparsemem/data/ndctl-issue-76.txt", "sparsemem/include/sparsemem.h", "sparsemem/py.typed",
                 "sparsemem/existing.py", "sparsemem/hints.py"):
        assert need in wnames, need
    assert f"Version: {sparsemem.__version__}" in meta and "License-Expression: MIT" in meta


def test_the_wheel_installs_and_runs(dist, tmp_path):
    out, _ = dist
    (wheel,) = out.glob("*.whl")
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                           "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = ("import sparsemem, sparsemem._sparsecore as c, sys; "
            "sys.exit(0 if sparsemem.__file__.startswith(sys.argv[1]) and c.__file__.startswith(sys.argv[1]) else 1)")
    assert subprocess.run([sys.executable, "-c", code, str(target)], env=env).returncode == 0
    bundled = target / "sparsemem" / "data" / "ndctl-issue-76.txt"
    proc = subprocess.run([sys.executable, "-m", "sparsemem", "report", str(bundled), "--kernel", "5.2",
                           "--kernel", "5.3"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "total usable: 5.2 495.88 GiB, 5.3 496.12 GiB" in proc.stdout
