"""The pure-Python twin stands alone (issue #9): ``sparsemem.reference`` and
``sparsemem.constants`` import and run where the compiled extension is missing, and answer
what the compiled core answers.  Each check runs a fresh interpreter: once with the extension
made unimportable by a meta-path blocker, once on a copy of the package without the
extension's file (as an unbuilt source tree is)."""

from __future__ import annotations

import ast
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import numpy as np

import sparsemem
from sparsemem import reference

SEC = 1 << 15
SUB = 1 << 9

# builds the same table with whichever SectionTable class `T` is and returns what it observed
EXERCISE = textwrap.dedent('''
    def exercise(T, A):
        t = T(46, "5.3")
        t.memory_present(0, 0, 0x7F000)
        t.sparse_init()
        t.subsection_map_init(0, 0x7F000)
        t.sparse_add_range(0, 0x7F000, 4096)
        t.sparse_add_range(1, 0x100000, 3 * SEC + 5 * SUB)
        a = A(0x200000, reserve=2, free=1024)
        t.sparse_add_section(1, 0x200000, SEC, a)
        t.memmap_init_zone(0, 2, 0, 0x80000)
        removed = t.sparse_remove_range(0x100000 + SEC, SEC)
        t.sparse_remove_section(0x100000, 7 * SUB)
        try:
            t.sparse_add_section(1, 0x100000 + 7 * SUB, SUB)
            t.sparse_add_section(1, 0x100000 + 7 * SUB, SUB)
            err = None
        except Exception as e:  # the second add collides: EEXIST
            err = (type(e).__name__, str(e))
        probes = list(range(0, 0x210000, 4099))
        return {
            "snapshot": t.snapshot(),
            "removed": removed,
            "error": err,
            "valid": [bool(v) for v in t.pfn_valid_many(probes)],
            "scalar": [t.pfn_valid(p) for p in probes[::7]],
            "nids": [t.pfn_to_nid(p) for p in probes[::11]],
            "altmap": (a.base_pfn, a.reserve, a.free, a.align, a.alloc),
            "dmesg": list(t.dmesg),
            "valid_subsections": t.count_valid_subsections(),
        }
''')

CHILD = textwrap.dedent('''
    import sys
    {blocker}
    import sparsemem
    import sparsemem.constants as C
    import sparsemem.reference as R
    SEC, SUB = C.PAGES_PER_SECTION, C.PAGES_PER_SUBSECTION
    {exercise}
    result = exercise(R.SectionTable, R.VmemAltmap)
    assert "sparsemem._sparsecore" not in sys.modules, "the compiled core was imported"
    try:
        import sparsemem._sparsecore
    except ImportError:
        pass
    else:
        raise SystemExit("sparsemem._sparsecore is importable: the test does not test anything")
    try:
        from sparsemem import SectionTable  # the compiled class: not there
    except ImportError:
        pass
    else:
        raise SystemExit("sparsemem.SectionTable without the extension")
    print(repr({{"file": sparsemem.__file__, "result": result}}))
''')

BLOCKER = textwrap.dedent('''
    import importlib.abc
    class _NoCompiledCore(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "sparsemem._sparsecore":
                raise ImportError("blocked for the test: no compiled extension")
            return None
    sys.meta_path.insert(0, _NoCompiledCore())
''')


def _run(code: str, env_extra: dict[str, str], cwd: pathlib.Path) -> dict:
    env = dict(os.environ, **env_extra)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ast.literal_eval(proc.stdout.strip().splitlines()[-1])


def _expected():
    ns = {"SEC": SEC, "SUB": SUB}
    exec(EXERCISE, ns)  # noqa: S102 - the same text the child runs
    want = ns["exercise"](sparsemem.SectionTable, sparsemem.VmemAltmap)
    assert want == ns["exercise"](reference.SectionTable, reference.VmemAltmap)
    assert want["error"] is not None and want["error"][0] == "KernelError"
    assert any(want["valid"]) and not all(want["valid"])
    return want


def test_reference_runs_with_the_extension_blocked(tmp_path):
    code = CHILD.format(blocker=BLOCKER, exercise=EXERCISE)
    got = _run(code, {}, tmp_path)
    assert got["result"] == _expected()


def test_reference_runs_from_a_copy_without_the_extension(tmp_path):
    pkg = pathlib.Path(sparsemem.__file__).resolve().parent
    copy = tmp_path / "site" / "sparsemem"
    shutil.copytree(pkg, copy, ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    assert not list(copy.rglob("_sparsecore*.so"))
    code = CHILD.format(blocker="", exercise=EXERCISE)
    got = _run(code, {"PYTHONPATH": str(tmp_path / "site"), "PYTHONDONTWRITEBYTECODE": "1"}, tmp_path)
    assert pathlib.Path(got["file"]).resolve().is_relative_to(copy.resolve())
    assert got["result"] == _expected()


def test_expected_answers_are_not_trivial():
    """The exercise reaches the states it is meant to (so a broken twin would show)."""
    want = _expected()
    snap = want["snapshot"]["sections"]
    assert len(snap) > 10
    assert want["removed"] == 1
    assert want["altmap"][4] == 512           # one PMD from the altmap
    assert np.count_nonzero(want["valid"]) > 100
