"""Compile and run tests/c/test_helpers.c: the pure-C helpers of include/sparsemem.h on a small
calloc'ed table (skipped without gcc).  ``valgrind --error-exitcode=1`` runs it clean too."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO

gcc = shutil.which("gcc")


@pytest.mark.skipif(gcc is None, reason="gcc is not installed")
def test_c_helpers(tmp_path):
    exe = tmp_path / "test_helpers"
    subprocess.run([gcc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "include"),
                    str(REPO / "tests" / "c" / "test_helpers.c"), "-o", str(exe)], check=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


@pytest.mark.skipif(gcc is None or shutil.which("valgrind") is None, reason="gcc or valgrind missing")
def test_c_helpers_valgrind(tmp_path):
    exe = tmp_path / "test_helpers"
    subprocess.run([gcc, "-std=c99", "-O0", "-g", "-I", str(REPO / "include"),
                    str(REPO / "tests" / "c" / "test_helpers.c"), "-o", str(exe)], check=True)
    r = subprocess.run(["valgrind", "--error-exitcode=1", "--leak-check=full", "--errors-for-leak-kinds=all",
                        "-q", str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
