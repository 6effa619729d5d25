"""The names the README imports are typed for a user's type checker (issue #9, item 7).

``sparsemem/__init__`` resolves ``Machine``, ``SectionTable``, ``VmemAltmap`` and
``DevPagemap`` lazily (``__getattr__``), so without its ``TYPE_CHECKING`` block a user's mypy
would see ``Any``/``object`` for them.  This runs mypy on a small user script in a temporary
folder (outside the checkout, against the installed package, which ships ``py.typed`` and the
``.pyi`` of the compiled core) and reads what ``reveal_type`` reports.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

api = pytest.importorskip("mypy.api", reason="mypy is not installed (pip install '.[lint]')")

USER_CODE = textwrap.dedent('''\
    import numpy as np

    from sparsemem import DevPagemap, KernelError, Machine, SectionTable, VmemAltmap

    reveal_type(Machine)
    reveal_type(SectionTable)
    reveal_type(VmemAltmap)
    reveal_type(DevPagemap)
    reveal_type(KernelError)

    m = Machine(kernel="5.3")
    reveal_type(m)
    reveal_type(Machine.from_iomem("", kernel="5.3"))
    reveal_type(m.add_memory(0, 0x180000000, 0x10000000))
    try:
        m.add_memory(0, 0x200200000, 0x40000000)
    except KernelError as e:
        reveal_type(e.errno_name)
        reveal_type(e.errno)

    t = SectionTable(max_physmem_bits=46, kernel="5.3")
    reveal_type(t)
    reveal_type(t.pfn_valid(0x100000))
    reveal_type(t.subsection_map(15))
    reveal_type(t.vmemmap_stats())
    reveal_type(t.pfn_valid_many(np.arange(0x100000, 0x100800)))
    reveal_type(VmemAltmap(0x100000).alloc_block_buf(512))

    import sparsemem
    reveal_type(sparsemem.race.explore("6.8", "deactivate-vs-pfn_valid"))
''')

# what mypy reveals, line by line: a class object as its constructor (checked: what it returns),
# anything else as the type itself (exactly)
EXPECTED = [
    ("returns", "sparsemem.machine.Machine"),
    ("returns", "sparsemem._sparsecore.SectionTable"),
    ("returns", "sparsemem._sparsecore.VmemAltmap"),
    ("returns", "sparsemem.memremap.DevPagemap"),
    ("returns", "sparsemem.errors.KernelError"),
    ("is", "sparsemem.machine.Machine"),
    ("is", "sparsemem.machine.Machine"),
    ("is", "None"),
    ("is", "str"),
    ("is", "int"),
    ("is", "sparsemem._sparsecore.SectionTable"),
    ("is", "bool"),
    ("is", "int"),
    ("is", "dict[str, int]"),
    ("is", "numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.bool[bool]]]"),  # numpy's own shape type
    ("is", "int | None"),
    ("is", "dict[str, list[str]]"),  # a lazy module of the package (sparsemem.race)
]


@pytest.fixture(scope="module")
def revealed(tmp_path_factory) -> list[str]:
    d = tmp_path_factory.mktemp("user")
    (d / "user.py").write_text(USER_CODE)
    # in a separate process, from the user's folder: no project config, no cache in the tree
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--cache-dir", str(d / ".cache"),
         "--python-version", f"{sys.version_info[0]}.{sys.version_info[1]}", "user.py"],
        cwd=d, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "error:" not in out, out
    return re.findall(r'note: Revealed type is "(.*)"', out)


def test_every_reveal_is_reported(revealed):
    assert len(revealed) == len(EXPECTED), revealed


@pytest.mark.parametrize("i", range(len(EXPECTED)))
def test_revealed_type_is_the_real_class(revealed, i):
    how, want = EXPECTED[i]
    got = revealed[i]
    if how == "returns":
        assert got.startswith("def ("), got
        got = got.rpartition(") -> ")[2]
    assert got == want, (want, revealed[i])
