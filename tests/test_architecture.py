"""The package's import graph: no cycle, no arrow up the layering of docs/architecture.md.

Every import of the package is read with ``ast``: module level, inside functions, and the
string literal of ``importlib.import_module("...")``; the compiled core's Python-level
imports are read from ``src/_sparsecore.pyx`` (Cython is not Python, so line by line).  The
layers are read from the table in docs/architecture.md, so the page and the test cannot
drift apart.
"""

from __future__ import annotations

import ast
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parent.parent
SRC = REPO / "src"
PKG = "sparsemem"
DOC = REPO / "docs" / "architecture.md"


# ---------------------------------------------------------------------------------------------
# reading the package


def _module_files() -> dict[str, pathlib.Path]:
    out = {}
    for f in sorted((SRC / PKG).rglob("*.py")):
        parts = f.relative_to(SRC).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


FILES = _module_files()
PYX = SRC / "_sparsecore.pyx"
MODULES = set(FILES) | {f"{PKG}._sparsecore"}


def _resolve(name: str, known: set[str]):
    """The package module that importing ``name`` loads, or None for anything outside."""
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute(module: str, is_package: bool, level: int, target: str | None) -> str:
    """``from <level dots><target>`` inside ``module`` as an absolute name."""
    if not level:
        return target or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([target] if target else []))


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """The package modules that ``source`` (the text of ``module``) imports, anywhere in it."""
    found: set[str] = set()

    def add(name: str) -> None:
        r = _resolve(name, known)
        if r is not None and r != module:
            found.add(r)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for a in node.names:
                add(a.name)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(module, is_package, node.level, node.module)
            for a in node.names:
                full = f"{base}.{a.name}"
                add(full if full in known else base)
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name == "import_module" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                target = node.args[0].value
                if target.startswith("."):
                    pkg = node.args[1].value if len(node.args) > 1 and isinstance(node.args[1], ast.Constant) else PKG
                    level = len(target) - len(target.lstrip("."))
                    target = _absolute(pkg, True, level, target.lstrip(".") or None)
                add(target)
    return found


_PYX_FROM = re.compile(r"^\s*from\s+([\w.]+)\s+import\s+\(?([\w\s,]+?)\)?\s*(?:#.*)?$")
_PYX_IMPORT = re.compile(r"^\s*import\s+([\w.]+)")


def pyx_imports(text: str, known: set[str]) -> set[str]:
    """The Python-level ``import`` / ``from ... import`` lines of a .pyx (``cimport`` excluded)."""
    found = set()
    for line in text.splitlines():
        m = _PYX_FROM.match(line)
        if m:
            base = m.group(1)
            for name in m.group(2).split(","):
                name = name.split(" as ")[0].strip()
                full = f"{base}.{name}"
                r = _resolve(full if full in known else base, known)
                if r:
                    found.add(r)
            continue
        m = _PYX_IMPORT.match(line)
        if m and _resolve(m.group(1), known):
            found.add(_resolve(m.group(1), known))
    return found - {f"{PKG}._sparsecore"}


def import_graph() -> dict[str, set[str]]:
    g = {}
    for mod, f in FILES.items():
        g[mod] = imports_of(f.read_text(encoding="utf-8"), mod, f.name == "__init__.py", MODULES)
    g[f"{PKG}._sparsecore"] = pyx_imports(PYX.read_text(encoding="utf-8"), MODULES) if PYX.exists() else set()
    return g


def layers() -> dict[str, tuple[int, str]]:
    """module -> (layer number, layer name), from the table of docs/architecture.md."""
    out = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.match(r"^\d+ ", cells[0]):
            continue
        number, name = cells[0].split(" ", 1)
        for short in re.findall(r"`([\w.]+)`", cells[1]):
            mod = PKG if short == "__init__" else f"{PKG}.{short}"
            assert mod not in out, f"docs/architecture.md lists {short} twice"
            out[mod] = (int(number), name)
    return out


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


GRAPH = import_graph()
LAYERS = layers()


# ---------------------------------------------------------------------------------------------
# the rules


def test_every_module_has_one_layer():
    missing = sorted(MODULES - set(LAYERS))
    stale = sorted(set(LAYERS) - MODULES)
    assert not missing, f"modules missing from the table of docs/architecture.md: {missing}"
    assert not stale, f"docs/architecture.md lists modules that do not exist: {stale}"


def test_no_import_cycle():
    found = cycles(GRAPH)
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_go_down_the_layers():
    up = []
    for mod, targets in sorted(GRAPH.items()):
        for t in sorted(targets):
            if mod in LAYERS and t in LAYERS and LAYERS[t][0] > LAYERS[mod][0]:
                up.append(f"{mod} ({LAYERS[mod][1]}) imports {t} ({LAYERS[t][1]})")
    assert not up, "imports going up the layers of docs/architecture.md:\n" + "\n".join(up)


# ---------------------------------------------------------------------------------------------
# the reader itself (so that the rules above can fail)

KNOWN = {"sparsemem", "sparsemem.a", "sparsemem.b", "sparsemem.c", "sparsemem.d", "sparsemem.e",
         "sparsemem.sub", "sparsemem.sub.x", "sparsemem._core"}


def test_reader_sees_every_kind_of_import():
    src = '''
import importlib
import os
from . import a
from .b import thing
import sparsemem.c as cc

def later():
    from .d import other
    return importlib.import_module("sparsemem.e")

def also():
    return importlib.import_module("._core", "sparsemem")
'''
    assert imports_of(src, "sparsemem.z", False, KNOWN) == {
        "sparsemem.a", "sparsemem.b", "sparsemem.c", "sparsemem.d", "sparsemem.e", "sparsemem._core"}
    # ".." from a subpackage module reaches the package; "." the subpackage itself
    assert imports_of("from .. import a\nfrom . import x\n", "sparsemem.sub.x", False, KNOWN) == {"sparsemem.a"}
    assert imports_of("from . import x\n", "sparsemem.sub", True, KNOWN) == {"sparsemem.sub.x"}


def test_reader_of_the_pyx():
    text = ("cimport cython\nfrom libc.stdint cimport uint64_t\nimport numpy as np\n"
            "from sparsemem.a import A\nfrom sparsemem import b as K  # noqa\n")
    assert pyx_imports(text, KNOWN) == {"sparsemem.a", "sparsemem.b"}


def test_cycle_and_upward_arrow_are_found():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("mod, target", [("sparsemem.machine", "sparsemem._sparsecore"),
                                         ("sparsemem.machine", "sparsemem.nvdimm.bus"),
                                         ("sparsemem.nvdimm.namespace", "sparsemem.printk")])
def test_known_arrows_are_read(mod, target):
    """Arrows the package has on purpose (an ``importlib`` literal, a subpackage module, a
    ``..`` import): the graph the rules check is the real one."""
    assert target in GRAPH[mod]


# ---------------------------------------------------------------------------------------------
# the twin stands alone (issue 9 item 3)


def test_reference_runs_with_the_extension_removed(tmp_path):
    """``import sparsemem.reference`` (and ``constants``) with only the package's ``.py`` files
    on the path, no compiled ``_sparsecore``: the twin boots a machine and answers pfn_valid,
    and the compiled core is never imported."""
    pkg = tmp_path / PKG
    for f in (SRC / PKG).rglob("*.py"):
        dst = pkg / f.relative_to(SRC / PKG)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    assert not list(pkg.rglob("*.so"))
    code = (
        "import sys\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import sparsemem.reference as r, sparsemem.constants as C\n"
        "assert r.__file__.startswith(sys.argv[1]), r.__file__\n"
        "t = r.SectionTable(46, '5.3')\n"
        "t.memory_present(0, 0, 1 << 20); t.sparse_init(); t.subsection_map_init(0, 1 << 20)\n"
        "t.sparse_add_range(0, 1 << 21, C.PAGES_PER_SUBSECTION)\n"
        "print(t.pfn_valid(5), t.pfn_valid((1 << 21) + 1), t.pfn_valid((1 << 21) + C.PAGES_PER_SUBSECTION))\n"
        "print(sorted(m for m in sys.modules if 'sparsecore' in m))\n"
    )
    proc = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["True True False", "[]"]
