"""One source for the numbers: include/sparsemem.h, its pure-Python table sparsemem._header
(what sparsemem.constants names, with no compiled extension needed) and the values the compiled
core was built with (sparsemem._sparsecore._CONSTANTS) must agree (issue #9, "the twin stands
alone").  The header's ``#define`` lines are parsed and evaluated here."""

from __future__ import annotations

import ast
import operator
import re

import pytest
from conftest import REPO

from sparsemem import _header, constants

HEADER = REPO / "include" / "sparsemem.h"
U64 = (1 << 64) - 1

_DEFINE = re.compile(r"^#define\s+SM_(\w+)\s+(.+?)\s*$")
_NUMBER = re.compile(r"\b(0[xX][0-9a-fA-F]+|\d+)(?:[uU][lL]{0,2}|[lL]{1,2}[uU]?)?\b")
_OPS = {ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.Sub: operator.sub, ast.Add: operator.add,
        ast.Mult: operator.mul, ast.BitOr: operator.or_, ast.BitAnd: operator.and_}


def _eval(node, names: dict[str, int]) -> int:
    """A C integer-constant expression of the header, as a Python int (``~`` on 64 bits)."""
    if isinstance(node, ast.Expression):
        return _eval(node.body, names)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
        return _OPS[type(node.op)](_eval(node.left, names), _eval(node.right, names))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Invert):
        return ~_eval(node.operand, names) & U64
    raise ValueError(f"not a constant expression the test can read: {ast.dump(node)}")


def header_defines(text: str) -> dict[str, int]:
    """``SM_NAME -> value`` of every object-like ``#define SM_...`` with a value."""
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    out: dict[str, int] = {}
    for line in text.splitlines():
        m = _DEFINE.match(line.strip())
        if not m or "(" in m.group(1):
            continue
        expr = _NUMBER.sub(lambda n: str(int(n.group(1), 0)), m.group(2))
        expr = re.sub(r"\bSM_(\w+)", r"\1", expr)
        out[m.group(1)] = _eval(ast.parse(expr, mode="eval"), out)
    return out


def mismatches(table: dict[str, int], defines: dict[str, int]) -> list[str]:
    """Names whose table value differs from the header's (the mask compared as a 64-bit word)."""
    bad = []
    for name, value in table.items():
        want = defines.get(name)
        if want is None:
            bad.append(f"{name}: not #defined in include/sparsemem.h")
        elif (value if name != "PAGE_SECTION_MASK" else value & U64) != want:
            bad.append(f"{name}: table {value:#x}, header {want:#x}")
    return bad


DEFINES = header_defines(HEADER.read_text(encoding="utf-8"))


def test_the_reader_reads_the_header():
    assert DEFINES["PFN_SECTION_SHIFT"] == 15
    assert DEFINES["PAGE_SECTION_MASK"] == U64 ^ 0x7FFF
    assert DEFINES["SUBSECTIONS_PER_SECTION"] == 64
    assert DEFINES["VMEMMAP_BASE_4LVL"] == 0xFFFFEA0000000000
    assert DEFINES["ZN_POISON"] == 0xFFFF
    assert DEFINES["K_USAGE_FREE_UNLESS_EARLY"] == 1 << 6


def test_table_equals_the_header():
    assert mismatches(_header.CONSTANTS, DEFINES) == []


def test_every_define_is_in_the_table_or_c_only():
    assert sorted(set(DEFINES) - set(_header.CONSTANTS) - _header.C_ONLY) == []
    assert sorted(_header.C_ONLY - set(DEFINES)) == []
    assert not _header.C_ONLY & set(_header.CONSTANTS)


def test_a_changed_header_is_caught():
    """The comparison can fail: a header with another section size disagrees with the table."""
    text = HEADER.read_text(encoding="utf-8").replace(
        "#define SM_SECTION_SIZE_BITS       27", "#define SM_SECTION_SIZE_BITS       28")
    assert text != HEADER.read_text(encoding="utf-8")
    bad = mismatches(_header.CONSTANTS, header_defines(text))
    assert any(b.startswith("PAGES_PER_SECTION:") for b in bad)
    assert any(b.startswith("SECTION_SIZE_BITS:") for b in bad)


def test_compiled_core_was_built_from_the_same_numbers():
    core = pytest.importorskip("sparsemem._sparsecore")
    assert core._CONSTANTS == _header.CONSTANTS
    assert mismatches(core._CONSTANTS, DEFINES) == []


def test_constants_module_names_the_table():
    for name, value in _header.CONSTANTS.items():
        assert getattr(constants, name) == value, name
    assert constants.SECTION_SIZE == 1 << DEFINES["SECTION_SIZE_BITS"]
    # the Python mask rounds any int down to its section
    assert (0x12345678 & constants.PAGE_SECTION_MASK) == 0x12345678 - (0x12345678 % constants.PAGES_PER_SECTION)
