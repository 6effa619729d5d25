"""What a user installing the package meets (issue 13, item 6): the licence as an SPDX
expression, one version for the wheel and ``sparsemem --version``, and an sdist that carries
every file the tests read (``python -m build`` makes it from MANIFEST.in)."""

from __future__ import annotations

import fnmatch
import pathlib
import re

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def test_licence_is_an_spdx_expression_and_the_version_has_one_source():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))  # PEP 639
    assert "version" in project["dynamic"] and "version" not in project
    attr = _pyproject()["tool"]["setuptools"]["dynamic"]["version"]["attr"]
    assert attr == "sparsemem.__version__"
    assert re.search(r'^__version__ = "\d+\.\d+\.\d+"$', (REPO / "src" / "sparsemem" / "__init__.py").read_text(),
                     re.M)
    # the progress bar of batch reports is a dependency, not an extra
    assert any(d.startswith("tqdm") for d in project["dependencies"])


def _manifest_patterns(top: str) -> list[str]:
    pats = []
    for line in (REPO / "MANIFEST.in").read_text().splitlines():
        words = line.split()
        if words[:2] == ["recursive-include", top]:
            pats += words[2:]
    return pats


@pytest.mark.parametrize("top", ["tests", "docs"])
def test_the_sdist_carries_every_test_file(top):
    pats = _manifest_patterns(top)
    assert pats, f"MANIFEST.in includes nothing under {top}/"
    missing = []
    for f in (REPO / top).rglob("*"):
        if not f.is_file() or "__pycache__" in f.parts or f.suffix in (".pyc",):
            continue
        if not any(fnmatch.fnmatch(f.name, p) for p in pats):
            missing.append(str(f.relative_to(REPO)))
    assert not missing, f"not in the sdist (MANIFEST.in): {missing}"
