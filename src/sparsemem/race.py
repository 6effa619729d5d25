"""Race replay: every interleaving of a section teardown with one lock-free reader.

``explore(kernel, scenario)`` (api.md "Race replay: ``sparsemem.race``") runs the atomic steps
of one writer against those of one reader in every order that keeps each thread's own order,
on a small model of one ``struct mem_section`` (the ``section_mem_map`` word with its flag
bits, the ``usage`` pointer and the object it points to, freed or waiting for a grace period,
and whether the section's memmap is still mapped), and classifies what the reader gets:

- ``"null-deref"``: the reader dereferences a NULL ``usage`` (an oops in the kernel);
- ``"use-after-free"``: the reader dereferences a ``usage`` that was already freed;
- ``"stale"``: the reader returns without faulting, but its answer is not the one the state
  gives at the moment it returns (it answered from a state that no longer holds);
- ``"ok"``: anything else.

The answer maps each outcome that occurs to one example schedule, as step names (the first
such schedule in the enumeration order, which runs the reader as early as it can).

The step orders are rules of a release and come from :mod:`sparsemem.kernel`
(``deactivate_order``, ``usage_kfree_rcu``, ``pfn_valid_rcu``, ``pfn_section_valid_null_safe``,
``pfn_to_online_page_subsection``, ``subsection``); this module compares no versions.  The
rows are those of upstream releases: fixes that distributions and the stable series carried
earlier (CVE-2023-52489 in 6.7.3, 6.6.17, 6.1.x and 5.15.x; the NULL check in 6.9.y) are
*not* modelled, so ``"6.6.30+"`` or ``"6.7.3"`` replay the upstream 6.6 or 6.7 steps.

The scenarios, the steps of each era and the model of RCU are described in docs/race.md; the
step orders are later-eras-hotplug.md A8 and sparse-hotplug.md §7, §10 (#6, #9, #10, #21, #23)
and §11, confirmed in ``mm/sparse.c``, ``include/linux/mmzone.h``,
``include/linux/memory_hotplug.h`` and ``mm/memory_hotplug.c`` of the releases listed there.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Iterable, Iterator, Optional

from . import constants as C
from ._common import encode_null
from .kernel import KernelModel, as_model

__all__ = ["SCENARIOS", "OUTCOMES", "explore", "steps", "replay", "tally", "schedules"]

#: The scenarios :func:`explore` accepts.
SCENARIOS = ("deactivate-vs-pfn_valid", "deactivate-vs-pfn_to_online_page")
#: The outcome kinds, in the order :func:`explore` lists them.
OUTCOMES = ("ok", "null-deref", "use-after-free", "stale")

#: ``SECTION_TAINT_ZONE_DEVICE`` (bit 4, v5.12+: later-eras-hotplug.md A2; the cores' constant,
#: include/sparsemem.h); never set on the System RAM section of the scenario, tested by
#: ``online_device_section``.
_TAINT = C.SECTION_TAINT_ZONE_DEVICE
#: The section of the scenarios: a whole section hot-added at 6 GiB (not early), and a pfn in
#: its sub-section 5.
SECTION_NR = 48
PFN = C.section_nr_to_pfn(SECTION_NR) + 5 * C.PAGES_PER_SUBSECTION + 7
_ALL_SUBSECTIONS = (1 << C.SUBSECTIONS_PER_SECTION) - 1


@dataclass(eq=False)
class _Usage:
    """The object ``ms->usage`` points to (``pageblock_flags`` in v5.1/v5.2)."""

    bits: int  # subsection_map
    freed: bool = False  # given back to the slab


@dataclass(eq=False)
class _World:
    model: KernelModel
    scenario: str
    word: int  # ms->section_mem_map
    usage: Optional[_Usage]  # ms->usage
    victim: _Usage  # the object the writer frees (it holds the only writer-side reference)
    memmap: bool = True  # the section's struct pages are mapped
    in_rcu: bool = False  # the reader is inside rcu_read_lock_sched() .. unlock
    deferred: list[_Usage] = field(default_factory=list)  # kfree_rcu'd, freed when the reader leaves
    loaded: Optional[_Usage] = None  # the reader's copy of ms->usage
    done: bool = False
    result: Optional[bool] = None  # True: pfn valid / a page; False: 0 / NULL
    truth: Optional[bool] = None  # what the state says at the moment the reader returns
    fault: Optional[str] = None


Step = tuple[str, Callable[[_World], None]]


def _initial(model: KernelModel, scenario: str) -> _World:
    """A whole hot-added section: present, memmap (vmemmap) encoded, every sub-section bit set,
    a slab usage; online when the reader is ``pfn_to_online_page`` (System RAM that
    ``offline_pages`` is about to offline), not online for ``pfn_valid`` (e.g. ZONE_DEVICE, as
    in the CVE-2023-52489 report: compaction walking [NORMAL][DEVICE][NORMAL])."""
    flags = C.SECTION_MARKED_PRESENT | C.SECTION_HAS_MEM_MAP
    if scenario == SCENARIOS[1]:
        flags |= C.SECTION_IS_ONLINE
    # sparse_encode_mem_map(vmemmap + section start pfn, nr) = the vmemmap base (§2.4)
    word = C.vmemmap_base(C.MAX_PHYSMEM_BITS_4LVL) | flags
    usage = _Usage(bits=_ALL_SUBSECTIONS if model.subsection else 0)
    return _World(model=model, scenario=scenario, word=word, usage=usage, victim=usage)


# ---------------------------------------------------------------------------------------------
# what the state says (the reader's answer if it ran alone at that instant, without faulting)


def _usage_bit(u: Optional[_Usage]) -> bool:
    return u is not None and not u.freed and bool(u.bits >> C.subsection_map_index(PFN) & 1)


def _truth(w: _World) -> bool:
    m = w.model
    if w.scenario == SCENARIOS[0]:
        if not w.word & C.SECTION_HAS_MEM_MAP or not w.memmap:
            return False
        if not m.subsection:
            return True
        return bool(w.word & C.SECTION_IS_EARLY) or _usage_bit(w.usage)
    if not w.word & C.SECTION_IS_ONLINE or not w.memmap:
        return False
    return _usage_bit(w.usage) if m.pfn_to_online_page_subsection else True


# ---------------------------------------------------------------------------------------------
# the writer: offline_mem_sections (pfn_to_online_page only), then the teardown of the release


def _free(w: _World, rcu: bool) -> None:
    obj = w.victim
    if rcu and w.in_rcu:  # the grace period waits for the reader's read-side section
        w.deferred.append(obj)
    else:
        obj.freed = True  # kfree, or kfree_rcu with no reader inside a read-side section


def _clear_online(w: _World) -> None:
    w.word &= ~C.SECTION_IS_ONLINE


def _clear_subsection_map(w: _World) -> None:
    w.victim.bits ^= _ALL_SUBSECTIONS  # bitmap_xor with the removed range: the whole section


def _decode(w: _World) -> None:
    pass  # reads section_mem_map into a local; changes nothing the reader sees


def _usage_null(w: _World) -> None:
    w.usage = None


def _store_encoded_null(w: _World) -> None:
    w.word = encode_null(SECTION_NR)  # -(nr << 21): no flag bit survives


def _clear_has_mem_map(w: _World) -> None:
    w.word &= ~C.SECTION_HAS_MEM_MAP


def _depopulate(w: _World) -> None:
    w.memmap = False


def _word_zero(w: _World) -> None:
    w.word = 0


def _free_section_usemap(w: _World) -> None:
    w.memmap = False
    _free(w, rcu=False)


def _free_usage(w: _World) -> None:
    _free(w, rcu=w.model.usage_kfree_rcu)


#: The writer's steps by ``KernelModel.deactivate_order`` (labels W1..W7 as in A8); ``"free"``
#: and ``"null"`` are ``kfree`` / ``usage = NULL``, or ``kfree_rcu`` / ``WRITE_ONCE(usage,
#: NULL)`` where ``usage_kfree_rcu`` says so.
_ORDERS: dict[str, tuple[str, ...]] = {
    # sparse-hotplug.md §7 (v5.1/v5.2 sparse_remove_one_section)
    "5.2": ("legacy-decode", "legacy-zero", "pageblock-null", "free_section_usemap"),
    # A8 5.3-5.5 (5.5 tests PageReserved instead of !early: the same for a slab usage)
    "5.3": ("clear_map", "free", "null", "decode", "encode_null", "depopulate"),
    # A8 5.6-5.8 and 5.9-6.7 (W6 differs only for early sections)
    "5.6": ("clear_map", "free", "null", "decode", "clear_has_mem_map", "depopulate", "zero"),
    # A8 6.8+
    "6.8": ("clear_map", "clear_has_mem_map", "free", "null", "decode", "depopulate", "zero"),
}


def _step(key: str, model: KernelModel) -> Step:
    rcu = model.usage_kfree_rcu
    table: dict[str, Step] = {
        "legacy-decode": ("W1 sparse_decode_mem_map", _decode),
        "legacy-zero": ("W2 section_mem_map=0", _word_zero),
        "pageblock-null": ("W3 pageblock_flags=NULL", _usage_null),
        "free_section_usemap": ("W4 free_section_usemap", _free_section_usemap),
        "clear_map": ("W1 clear_subsection_map", _clear_subsection_map),
        "free": ("W2 kfree_rcu(usage)" if rcu else "W2 kfree(usage)", _free_usage),
        "null": ("W3 WRITE_ONCE(usage, NULL)" if rcu else "W3 usage=NULL", _usage_null),
        "decode": ("W4 sparse_decode_mem_map", _decode),
        "encode_null": ("W5 section_mem_map=encode(NULL)", _store_encoded_null),
        "clear_has_mem_map": ("W5 clear HAS_MEM_MAP", _clear_has_mem_map),
        "depopulate": ("W6 depopulate_section_memmap", _depopulate),
        "zero": ("W7 section_mem_map=0", _word_zero),
    }
    return table[key]


def _writer(model: KernelModel, scenario: str) -> tuple[Step, ...]:
    keys = _ORDERS.get(model.deactivate_order)
    if keys is None:  # a value kernel.py does not set: a bug of the table, not user input
        raise AssertionError(f"no step order for deactivate_order={model.deactivate_order!r}")
    order = tuple(_step(k, model) for k in keys)
    if scenario == SCENARIOS[1]:
        # memory is offlined (offline_pages -> offline_mem_sections) before it can be removed
        return (("W0 offline_mem_sections", _clear_online),) + order
    return order


# ---------------------------------------------------------------------------------------------
# the reader


def _return(w: _World, value: bool) -> None:
    w.result, w.done = value, True
    w.truth = _truth(w)
    if w.in_rcu:  # rcu_read_unlock_sched(): the grace period may end, the kfree_rcu runs
        w.in_rcu = False
        for obj in w.deferred:
            obj.freed = True
        w.deferred.clear()


def _oops(w: _World, kind: str) -> None:
    w.fault, w.done = kind, True


def _reader_step(body: Callable[[_World], None]) -> Callable[[_World], None]:
    def run(w: _World) -> None:
        if not w.done:  # after the reader returned, its remaining steps are not executed
            body(w)
    return run


def _deref_bit(w: _World) -> Optional[bool]:
    """test_bit(idx, usage->subsection_map) on the reader's copy of the pointer."""
    u = w.loaded
    if u is None:
        if w.model.pfn_section_valid_null_safe:
            return False  # v6.10: usage ? test_bit(...) : 0
        _oops(w, "null-deref")
        return None
    if u.freed:
        _oops(w, "use-after-free")
        return None
    return bool(u.bits >> C.subsection_map_index(PFN) & 1)


def _valid_section(w: _World) -> None:
    if w.model.pfn_valid_rcu:
        w.in_rcu = True  # rcu_read_lock_sched() just before valid_section()
    if not w.word & C.SECTION_HAS_MEM_MAP:
        _return(w, False)
    elif not w.model.subsection:
        _return(w, True)  # v5.1/v5.2: valid_section is the whole answer


def _early_section(w: _World) -> None:
    if w.word & C.SECTION_IS_EARLY:
        _return(w, True)


def _load_usage(w: _World) -> None:
    w.loaded = w.usage


def _test_bit_then_return(w: _World) -> None:
    bit = _deref_bit(w)
    if bit is not None:
        _return(w, bit)


def _online_section(w: _World) -> None:
    if not w.word & C.SECTION_IS_ONLINE:
        _return(w, False)
    elif not w.model.pfn_to_online_page_subsection:
        _return(w, True)  # the 5.3-5.11 macro: pfn_valid_within() is 1 on x86 -> pfn_to_page()


def _test_bit_or_null(w: _World) -> None:
    bit = _deref_bit(w)
    if bit is False:
        _return(w, False)


def _online_device_section(w: _World) -> None:
    # TAINT set -> get_dev_pagemap(): no pgmap covers System RAM, so a page either way
    _return(w, True)


def _reader(model: KernelModel, scenario: str) -> tuple[Step, ...]:
    if scenario == SCENARIOS[0]:
        if not model.subsection:
            return (("R1 valid_section", _reader_step(_valid_section)),)
        return (("R1 valid_section", _reader_step(_valid_section)),
                ("R2 early_section", _reader_step(_early_section)),
                ("R3 load usage", _reader_step(_load_usage)),
                ("R4 test_bit(subsection_map)", _reader_step(_test_bit_then_return)))
    if not model.pfn_to_online_page_subsection:
        return (("R1 online_section", _reader_step(_online_section)),)
    return (("R1 online_section", _reader_step(_online_section)),
            ("R2 load usage", _reader_step(_load_usage)),
            ("R3 test_bit(subsection_map)", _reader_step(_test_bit_or_null)),
            ("R4 online_device_section", _reader_step(_online_device_section)))


# ---------------------------------------------------------------------------------------------
# running schedules


def _check_scenario(scenario: object) -> str:
    if not isinstance(scenario, str):
        raise TypeError(f"scenario must be a str, one of {', '.join(map(repr, SCENARIOS))}; "
                        f"not {type(scenario).__name__}")
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown race scenario {scenario!r}: expected one of {', '.join(map(repr, SCENARIOS))}")
    return scenario


def _args(kernel: object, scenario: object) -> tuple[KernelModel, str]:
    return as_model(kernel), _check_scenario(scenario)


def _run(model: KernelModel, scenario: str, order: Iterable[int]) -> str:
    """Run one schedule, given as the thread of each step (0 writer, 1 reader)."""
    w = _initial(model, scenario)
    threads = (iter(_writer(model, scenario)), iter(_reader(model, scenario)))
    for t in order:
        _name, fn = next(threads[t])
        fn(w)
    if w.fault is not None:
        return w.fault
    assert w.done, "the reader's last step always returns"
    return "ok" if w.result == w.truth else "stale"


def _orders(nw: int, nr: int) -> Iterator[tuple[int, ...]]:
    """Every interleaving of ``nw`` writer and ``nr`` reader steps, as thread numbers, the
    reader's positions in lexicographic order (reader-first schedules come first)."""
    n = nw + nr
    for pos in itertools.combinations(range(n), nr):
        order = [0] * n
        for p in pos:
            order[p] = 1
        yield tuple(order)


def _names(model: KernelModel, scenario: str, order: tuple[int, ...]) -> list[str]:
    names = ([n for n, _ in _writer(model, scenario)], [n for n, _ in _reader(model, scenario)])
    idx = [0, 0]
    out = []
    for t in order:
        out.append(names[t][idx[t]])
        idx[t] += 1
    return out


@lru_cache(maxsize=None)
def _explore(model: KernelModel, scenario: str) -> tuple[dict[str, tuple[int, ...]], dict[str, int]]:
    nw, nr = len(_writer(model, scenario)), len(_reader(model, scenario))
    first: dict[str, tuple[int, ...]] = {}
    counts = dict.fromkeys(OUTCOMES, 0)
    for order in _orders(nw, nr):
        kind = _run(model, scenario, order)
        counts[kind] += 1
        first.setdefault(kind, order)
    return first, counts


def explore(kernel: str | KernelModel, scenario: str) -> dict[str, list[str]]:
    """Every interleaving of the writer's and the reader's atomic steps in ``scenario`` under the
    rules of ``kernel`` (any release :func:`sparsemem.kernel.kernel_model` accepts, or a
    :class:`~sparsemem.kernel.KernelModel`), replayed on the section model: each outcome kind
    that occurs (``"ok"``, ``"null-deref"``, ``"use-after-free"``, ``"stale"``, in that order)
    with one example schedule as step names.  ValueError for an unknown scenario (naming the
    accepted ones) or a release outside the modelled range (as ``kernel_model`` raises)."""
    model, scenario = _args(kernel, scenario)
    first, _ = _explore(model, scenario)
    return {kind: _names(model, scenario, first[kind]) for kind in OUTCOMES if kind in first}


def tally(kernel: str | KernelModel, scenario: str) -> dict[str, int]:
    """How many of the interleavings end in each outcome kind (all four keys); the counts sum to
    C(writer steps + reader steps, reader steps)."""
    model, scenario = _args(kernel, scenario)
    return dict(_explore(model, scenario)[1])


def steps(kernel: str | KernelModel, scenario: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The writer's and the reader's step names, each in its program order."""
    model, scenario = _args(kernel, scenario)
    return (tuple(n for n, _ in _writer(model, scenario)), tuple(n for n, _ in _reader(model, scenario)))


def schedules(kernel: str | KernelModel, scenario: str) -> Iterator[list[str]]:
    """Every interleaving, as step names, in the order :func:`explore` runs them."""
    model, scenario = _args(kernel, scenario)
    nw, nr = len(_writer(model, scenario)), len(_reader(model, scenario))
    for order in _orders(nw, nr):
        yield _names(model, scenario, order)


def replay(kernel: str | KernelModel, scenario: str, schedule: Iterable[str]) -> str:
    """Run one schedule (step names, e.g. a value of :func:`explore`) and return its outcome
    kind.  ValueError unless ``schedule`` holds every step of both threads exactly once, each
    thread in its program order."""
    model, scenario = _args(kernel, scenario)
    if isinstance(schedule, str) or not isinstance(schedule, Iterable):
        raise TypeError(f"schedule must be a sequence of step names, not {type(schedule).__name__}")
    schedule = list(schedule)
    writer, reader = steps(model, scenario)
    order = []
    for name in schedule:
        if not isinstance(name, str):
            raise TypeError(f"schedule step must be a str, not {type(name).__name__}")
        if name in writer:
            order.append(0)
        elif name in reader:
            order.append(1)
        else:
            raise ValueError(f"unknown step {name!r} for {scenario} under {model.name}: "
                             f"writer {list(writer)}, reader {list(reader)}")
    got_w = [n for n, t in zip(schedule, order) if t == 0]
    got_r = [n for n, t in zip(schedule, order) if t == 1]
    if got_w != list(writer) or got_r != list(reader):
        raise ValueError(f"not an interleaving of {scenario} under {model.name}: each step once, each thread "
                         f"in order (writer {list(writer)}, reader {list(reader)}); got {schedule}")
    return _run(model, scenario, order)
