"""Benchmarks of the core: compiled SectionTable vs the pure-Python reference vs numpy.

The machine: 1 TiB of boot RAM (pfns [0, 2^28)) plus 3 TiB of pmem hot-added in 2 MiB-aligned
ranges (each starts 14 MiB into a section, as sub-section hotplug allows).  Run with

    pytest bench/ --benchmark-only --benchmark-group-by=group

Each group holds the implementations of one operation; compare medians within one run
(bench/README.md records them).  Nothing here asserts a time.
"""

from __future__ import annotations

import numpy as np
import pytest

import sparsemem
from sparsemem import constants as C
from sparsemem import reference

TiB_PFNS = 1 << 28  # 1 TiB in 4 KiB pages
N = 10_000_000
IMPLS = {"compiled": sparsemem.SectionTable, "reference": reference.SectionTable}


def build_machine(T):
    """Boot 1 TiB of RAM (§3), then add 3 TiB of pmem in 2 MiB-aligned ranges (§5.2 loop)."""
    t = T(46, "5.3")
    t.memory_present(0, 0, TiB_PFNS)
    t.sparse_init()
    t.subsection_map_init(0, TiB_PFNS)
    for i in range(1, 4):
        start = i * TiB_PFNS + 7 * C.PAGES_PER_SUBSECTION
        t.sparse_add_range(0, start, TiB_PFNS - C.PAGES_PER_SECTION)
    return t


@pytest.fixture(scope="module")
def tables():
    return {name: build_machine(T) for name, T in IMPLS.items()}


@pytest.fixture(scope="module")
def pfns():
    rng = np.random.default_rng(20261127)
    return {
        "random": rng.integers(0, 4 * TiB_PFNS, N, dtype=np.uint64),
        "sequential": np.arange(N, dtype=np.uint64) + np.uint64(TiB_PFNS - N // 2),
    }


def numpy_words(t):
    """What a user would build to answer pfn_valid with numpy: the kernel's two words per section."""
    n = t.highest_present_section_nr + 1
    mem_map = np.array([t.section_mem_map(i) for i in range(n)], dtype=np.uint64)
    submap = np.array([t.subsection_map(i) for i in range(n)], dtype=np.uint64)
    return mem_map, submap


def numpy_pfn_valid(mem_map, submap, pfns):
    """§4.2 v5.3 pfn_valid written with numpy over the section words."""
    nr = pfns >> np.uint64(C.PFN_SECTION_SHIFT)
    inside = nr < np.uint64(len(mem_map))
    nr = np.minimum(nr, np.uint64(len(mem_map) - 1))
    mm = mem_map[nr]
    has = (mm & np.uint64(C.SECTION_HAS_MEM_MAP)) != 0
    early = (mm & np.uint64(C.SECTION_IS_EARLY)) != 0
    bit = (submap[nr] >> ((pfns >> np.uint64(C.PFN_SUBSECTION_SHIFT)) & np.uint64(63))) & np.uint64(1)
    return inside & has & (early | (bit != 0))


# ------------------------------------------------------------------ pfn_valid_many
@pytest.mark.parametrize("kind", ["random", "sequential"])
@pytest.mark.parametrize("impl", ["compiled", "numpy", "reference"])
def test_pfn_valid_many(benchmark, tables, pfns, kind, impl):
    benchmark.group = f"pfn_valid_many-{kind}-10M"
    arr = pfns[kind]
    t = tables["compiled"]
    expect = t.pfn_valid_many(arr[:200_000])
    if impl == "compiled":
        out = np.empty(N, dtype=bool)
        res = benchmark.pedantic(t.pfn_valid_many, args=(arr,), kwargs={"out": out}, rounds=9, iterations=1)
    elif impl == "numpy":
        mm, sm = numpy_words(t)
        res = benchmark.pedantic(numpy_pfn_valid, args=(mm, sm, arr), rounds=5, iterations=1)
    else:
        res = benchmark.pedantic(tables["reference"].pfn_valid_many, args=(arr,), rounds=1, iterations=1)
    assert (res[:200_000] == expect).all()
    benchmark.extra_info["pfns"] = N


# ------------------------------------------------------------------ scalar pfn_valid
SCALAR_CALLS = 100_000


@pytest.mark.parametrize("impl", ["abs-builtin", "compiled", "compiled-in", "reference"])
def test_scalar_pfn_valid(benchmark, tables, impl):
    """One call per pfn from a Python loop, tables hot; the builtin abs(pfn) is the yardstick."""
    benchmark.group = "pfn_valid-scalar-100k-calls"
    ps = [int(p) for p in np.random.default_rng(1).integers(0, 4 * TiB_PFNS, 1000, dtype=np.uint64)] * 100

    if impl == "abs-builtin":
        def run(f=abs, ps=ps):
            for p in ps:
                f(p)
    elif impl == "compiled-in":
        def run(t=tables["compiled"], ps=ps):
            for p in ps:
                p in t  # noqa: B015
    else:
        def run(f=tables["compiled" if impl == "compiled" else "reference"].pfn_valid, ps=ps):
            for p in ps:
                f(p)
    benchmark.pedantic(run, rounds=15 if impl != "reference" else 3, iterations=1)
    benchmark.extra_info["calls"] = SCALAR_CALLS


# ------------------------------------------------------------------ one add + remove pair
@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_add_remove_section_pair(benchmark, impl):
    """One sparse_add_section + sparse_remove_section of a whole section: the per-call cost
    (argument checks, lock, section_activate/section_deactivate) of the core's API."""
    benchmark.group = "add+remove-section-pair"
    t = IMPLS[impl](46, "5.3")
    start = 2 * TiB_PFNS

    def pair(add=t.sparse_add_section, remove=t.sparse_remove_section, start=start, n=C.PAGES_PER_SECTION):
        add(0, start, n)
        remove(start, n)

    pair()  # allocate the root once
    benchmark(pair)
    assert t.count_valid_subsections() == 0 and not t.present_section_nr(start >> C.PFN_SECTION_SHIFT)


# ------------------------------------------------------------------ activate + deactivate 1 TiB
@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_activate_deactivate_1tib(benchmark, impl):
    """8192 sections added then removed, one sparse_add_section per section as __add_pages does."""
    benchmark.group = "activate+deactivate-1TiB"
    t = IMPLS[impl](46, "5.3")
    start = 2 * TiB_PFNS

    def cycle():
        t.sparse_add_range(0, start, TiB_PFNS)
        t.sparse_remove_range(start, TiB_PFNS)

    cycle()  # allocate the roots once
    benchmark.pedantic(cycle, rounds=41 if impl == "compiled" else 3, iterations=1)
    assert t.count_valid_subsections() == 0


# ------------------------------------------------------------------ boot the 4 TiB machine
@pytest.mark.parametrize("impl", ["compiled", "reference"])
def test_boot_4tib_machine(benchmark, impl):
    benchmark.group = "boot-4TiB-machine"
    t = benchmark.pedantic(build_machine, args=(IMPLS[impl],), rounds=9 if impl == "compiled" else 1,
                           iterations=1)
    benchmark.extra_info["nbytes"] = t.nbytes
    assert t.count_valid_subsections() == 64 * (8192 + 3 * 8191)


def test_nbytes(benchmark):
    """Host memory of the table itself: an empty 52-bit table and the 4 TiB machine."""
    benchmark.group = "nbytes"
    empty52 = sparsemem.SectionTable(52)
    t = benchmark.pedantic(build_machine, args=(sparsemem.SectionTable,), rounds=1, iterations=1)
    benchmark.extra_info["empty_52bit_nbytes"] = empty52.nbytes
    benchmark.extra_info["machine_4tib_nbytes"] = t.nbytes
    print(f"\nnbytes: empty 52-bit table {empty52.nbytes / 2**20:.3f} MiB, "
          f"4 TiB machine {t.nbytes / 2**20:.3f} MiB")
