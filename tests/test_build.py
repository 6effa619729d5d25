"""The build: POPCNT in the extension, and a Cython module that cimports the table."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

import sparsemem
from sparsemem import _sparsecore


def test_popcount_is_the_popcnt_instruction():
    """Issue #2: __builtin_popcountll must not become a libgcc call (perf-anchors.md trap 1)."""
    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump not installed")
    text = subprocess.run([objdump, "-d", _sparsecore.__file__], capture_output=True, text=True, check=True).stdout
    assert "popcnt" in text
    assert "__popcountdi2" not in text


def test_cimport_from_another_extension(tmp_path):
    """sparsemem/_sparsecore.pxd + get_include(): embed the table and query it without the GIL."""
    pytest.importorskip("Cython")
    src = tmp_path / "embed_probe.pyx"
    src.write_text(textwrap.dedent("""
        # cython: language_level=3
        from libc.stdint cimport uint64_t, uint8_t
        from sparsemem._sparsecore cimport SectionTable
        from sparsemem.csparsemem cimport SM_PAGES_PER_SECTION, sm_subsection_mask

        def probe(SectionTable t, uint64_t pfn):
            cdef bint ok
            cdef uint8_t out[2]
            cdef uint64_t pfns[2]
            pfns[0] = pfn
            pfns[1] = pfn + 512
            with nogil:
                ok = t.c_pfn_valid(pfn)
                t.c_pfn_valid_batch(pfns, out, 2)
            return ok, out[0], out[1]

        def header(uint64_t pfn, uint64_t n):
            return SM_PAGES_PER_SECTION, sm_subsection_mask(pfn, n)
    """))
    setup = tmp_path / "setup.py"
    pkg_parent = pathlib.Path(sparsemem.__file__).resolve().parent.parent
    setup.write_text(textwrap.dedent(f"""
        from setuptools import setup, Extension
        from Cython.Build import cythonize
        ext = Extension("embed_probe", ["embed_probe.pyx"], include_dirs=[{sparsemem.get_include()!r}])
        setup(ext_modules=cythonize([ext], include_path=[{str(pkg_parent)!r}], quiet=True))
    """))
    proc = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        import embed_probe  # noqa: PLC0415 -- the module this test has just built in tmp_path
    finally:
        sys.path.remove(str(tmp_path))
    t = sparsemem.SectionTable()
    t.sparse_add_range(0, 0x100000, 512)
    assert embed_probe.probe(t, 0x100000) == (True, 1, 0)
    assert embed_probe.header(0x100000 + 1024, 1024) == (32768, 0b1100)


PKG = pathlib.Path(sparsemem.__file__).resolve().parent


def _code_lines(path):
    """The lines of a .pxd without comments and blank lines."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        code = line.split("#", 1)[0].rstrip()
        if code.strip():
            out.append(code)
    return out


def test_header_pxd_is_only_the_extern_block():
    """csparsemem.pxd mirrors include/sparsemem.h and nothing else (as croaring.pxd does)."""
    lines = _code_lines(PKG / "csparsemem.pxd")
    top = [line for line in lines if not line.startswith((" ", "\t"))]
    assert top == ["from libc.stdint cimport uint64_t, uint32_t, uint16_t, uint8_t, int32_t, int16_t",
                   'cdef extern from "sparsemem.h" nogil:']
    # every function it declares exists in the header
    header = (pathlib.Path(sparsemem.get_include()) / "sparsemem.h").read_text(encoding="utf-8")
    for line in lines:
        m = re.match(r"\s+[\w *]+?\b(sm_\w+)\(", line)
        if m:
            assert re.search(r"\b%s\(" % m.group(1), header), m.group(1)


def test_core_pxd_exposes_only_the_public_c_methods():
    """The cimport face of the compiled core: c_* methods only, no private helpers."""
    methods = [m.group(1) for line in _code_lines(PKG / "_sparsecore.pxd")
               for m in [re.match(r"\s+cdef\s+[\w *]+?\b(\w+)\(self", line)] if m]
    assert methods == ["c_alloc_block_buf", "c_free", "c_pfn_valid", "c_pfn_valid_batch", "c_section"]
