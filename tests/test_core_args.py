"""Argument checks of the compiled core's per-call methods (issue #9, "the core validates in
C"): the C fast path accepts exact ints in range; every other value goes to the shared checks
of sparsemem._common.  Either way each call must end exactly as the reference twin's does:
the same exception type and byte-identical message, or the same result and the same state."""

from __future__ import annotations

import numpy as np
import pytest

import sparsemem
from sparsemem import _common as K
from sparsemem import reference

SEC = 1 << 15
SUB = 1 << 9
MAXPFN = 1 << 34  # 46 bits

# values that probe every branch of the fast path and of its fallback
ODD = [0, 1, SUB, SEC, -1, -SUB, 2**62, 2**63 - 1, 2**63, 2**64 - 1, 2**64, 2**70, True, False,
       np.uint64(SEC), np.int64(SUB), np.int64(-1), np.uint64(2**63), 1.5, "512", None]


def _booted(T):
    t = T(46, "5.3")
    t.memory_present(0, 0, 4 * SEC)
    t.sparse_init()
    t.subsection_map_init(0, 4 * SEC)
    t.sparse_add_range(0, 8 * SEC, 2 * SEC)
    t.memmap_init_zone(0, 2, 0, 4 * SEC)
    return t


def _run(make, method, args):
    obj = make()
    try:
        value = getattr(obj, method)(*args)
    except Exception as e:  # noqa: BLE001 - the exception itself is what is compared
        return ("raise", type(e).__name__, str(e), _state(obj))
    if isinstance(value, np.ndarray):
        value = value.tolist()
    return ("ok", value, _state(obj))


def _state(obj):
    if hasattr(obj, "snapshot"):
        return obj.snapshot(), list(obj.dmesg)
    return None


# (method, booted?, a valid argument list[, the positions to vary]); each position is replaced
# by every ODD value.  memory_present's end is varied near the top of the address space only,
# so that an end beyond it (truncated, with the kernel's warning) marks one section, not 2**19.
CALLS = [
    ("sparse_add_section", True, [1, 12 * SEC + SUB, 2 * SUB]),
    ("sparse_remove_section", True, [8 * SEC, SUB]),
    ("sparse_add_range", True, [1, 12 * SEC, SEC + SUB]),
    ("sparse_remove_range", True, [8 * SEC + SUB, SEC]),
    ("memory_present", False, [0, 0, 2 * SEC], (0, 1)),
    ("memory_present", False, [0, MAXPFN - SEC, MAXPFN], (2,)),
    ("subsection_map_init", True, [SUB, SUB]),
    ("online_mem_sections", True, [0, 2 * SEC]),
    ("offline_mem_sections", True, [SEC, 9 * SEC]),
    ("memmap_init_zone", True, [1, 3, 8 * SEC, SEC]),
    ("find_smallest_section_pfn", True, [0, 2, 0, 4 * SEC]),
    ("find_biggest_section_pfn", True, [0, None, SUB, 4 * SEC]),
    ("pfn_valid", True, [SEC]),
    ("pfn_to_nid", True, [SEC]),
    ("page_zonenum", True, [SEC]),
    ("present_section_nr", True, [1]),
    ("subsection_map", True, [9]),
    ("section_nid", True, [9]),
    ("pageblock_flags", True, [1]),
]

def _positions(call):
    return call[3] if len(call) > 3 else range(len(call[2]))


@pytest.mark.parametrize("call", CALLS, ids=[f"{c[0]}{list(_positions(c))}" for c in CALLS])
def test_same_outcome_as_the_reference(call):
    method, booted, args = call[:3]

    def make(T):
        return (lambda: _booted(T)) if booted else (lambda: T(46, "5.3"))

    differ = []
    for pos in _positions(call):
        for value in ODD:
            a = list(args)
            a[pos] = value
            got = _run(make(sparsemem.SectionTable), method, a)
            want = _run(make(reference.SectionTable), method, a)
            if got != want:
                differ.append((pos, value, got[:3], want[:3]))
    assert differ == []


def _altmap_outcome(make, call=None, arg=None):
    try:
        a = make()
        value = getattr(a, call)(arg) if call else None
    except Exception as e:  # noqa: BLE001
        return ("raise", type(e).__name__, str(e))
    return ("ok", value, (a.base_pfn, a.reserve, a.free, a.align, a.alloc))


@pytest.mark.parametrize("field", range(5))
@pytest.mark.parametrize("value", ODD, ids=repr)
def test_altmap_constructor(field, value):
    args = [0x100, 2, 1024, 0, 0]
    args[field] = value
    assert _altmap_outcome(lambda: sparsemem.VmemAltmap(*args)) == \
        _altmap_outcome(lambda: reference.VmemAltmap(*args))


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_altmap_alloc_block_buf(value):
    assert _altmap_outcome(lambda: sparsemem.VmemAltmap(0x100, 2, 1024), "alloc_block_buf", value) == \
        _altmap_outcome(lambda: reference.VmemAltmap(0x100, 2, 1024), "alloc_block_buf", value)


@pytest.mark.parametrize("value", ODD, ids=repr)
def test_altmap_free_pfns(value):
    """``alloc -= nr`` modulo 2**64 for an unsigned long; the argument check of the other calls."""
    got = _altmap_outcome(lambda: sparsemem.VmemAltmap(0x100, 2, 1024, 0, 600), "free_pfns", value)
    try:
        nr = K.unsigned(value, "nr_pfns")
    except (TypeError, ValueError) as e:
        assert got == ("raise", type(e).__name__, str(e))
    else:
        assert got == ("ok", None, (0x100, 2, 1024, 0, (600 - nr) & K.U64))


def test_the_cases_cover_both_ends():
    """Some calls succeed and some raise, in every method: the comparison is not vacuous."""
    for call in CALLS:
        method, booted, args = call[:3]
        kinds = set()
        for pos in _positions(call):
            for v in ODD:
                a = list(args)
                a[pos] = v
                make = (lambda: _booted(sparsemem.SectionTable)) if booted else (lambda: sparsemem.SectionTable())
                kinds.add(_run(make, method, a)[0])
        assert kinds == {"ok", "raise"}, method


def test_errors_name_the_argument():
    t = _booted(sparsemem.SectionTable)
    with pytest.raises(ValueError, match=r"^start_pfn must not be negative \(got -1\)$"):
        t.sparse_add_section(0, -1, SUB)
    with pytest.raises(ValueError, match=r"crosses a section boundary"):
        t.sparse_add_section(0, SEC - SUB, 2 * SUB)
    with pytest.raises(TypeError, match=r"^nid must be an integer, not float$"):
        t.sparse_add_range(1.0, 0, SUB)
    with pytest.raises(ValueError, match=r"^nid 1024 out of range 0..1023$"):
        t.memmap_init_zone(1024, 0, 0, SUB)
    with pytest.raises(ValueError, match=r"^zone index 5 out of range 0..4$"):
        t.find_smallest_section_pfn(0, 5, 0, SEC)
    # a numpy integer or an int beyond 2**63 is a valid argument (the Python fallback)
    t.sparse_add_section(np.int32(1), np.uint64(16 * SEC), np.int64(SUB))
    assert t.section_nid(16) == 1 and t.subsection_map(16) == 1
    assert t.find_biggest_section_pfn(0, None, 0, 2**64 - 1) > 0
