"""Stateful fuzzer over whole machines, in every release row of the kernel table (issue #17).

A seeded random driver boots a layout (the test layouts in ``tests/data/layouts``, the issue's
reproducers, and small synthetic ones with pmem or legacy pmem next to RAM) on a
``core="compiled"`` and a ``core="reference"`` machine and applies the *same* random steps to
both: ``add_memory`` / ``remove_memory``, ``memoryN/state`` / ``online`` /
``auto_online_blocks`` writes and reads, notifier error injection, ``memremap_pages`` /
``memunmap_pages``, ``create_namespace`` in every mode (with good and bad arguments),
namespace ``enable`` / ``disable`` / ``destroy``, ``reboot``, pfn queries, and pickling the
machine mid-scenario and going on with the copy.  After every step it checks:

* the step raised nothing, or only a documented exception type: ``KernelError``,
  ``KernelBug`` (the kernel would crash: the machine is then abandoned, as a crashed kernel
  is), ``ValueError`` / ``TypeError`` for bad input, ``RuntimeError`` for misuse;
* a ``ValueError`` / ``TypeError`` only where the step's own arguments are bad (or the
  documented address-space limits of :data:`VALUE_ERRORS_FOR_VALID_INPUT` apply);
* ``snapshot()`` is unchanged by a refused step (and by every read-only step), except along
  the partial-state paths of :data:`PARTIAL_STATE_PATHS`, each of which names its document;
* both cores agree: same outcome (type, errno, message), same ``snapshot()``, same ``dmesg``;
* ``pickle.loads(pickle.dumps(m))`` has the same snapshot and dmesg;
* ``sparsemem.iomem.parse(m.iomem_text())`` gives the same tree (depth, start, end, name).

Random namespace uuids are drawn from a seeded source, the same for both cores.  A failure
is shrunk (steps dropped one at a time while it still fails) and reported with its seed and
the remaining steps, which :func:`replay` runs again.

CI runs a bounded, seeded slice (``SPARSEMEM_FUZZ_MACHINES`` machines of
``SPARSEMEM_FUZZ_STEPS`` steps per kernel row, default 16 x 40 with ``CI=1``, about 5 s a
row).  A campaign::

    python tests/test_fuzz_stateful.py --machines 400 --steps 80 --seed 1000

prints machines, steps and exceptions by type; ``SPARSEMEM_FUZZ_MACHINES=400
SPARSEMEM_FUZZ_STEPS=80 python -m pytest tests/test_fuzz_stateful.py`` runs the same under
pytest.
"""

from __future__ import annotations

import argparse
import collections
import errno
import os
import pickle
import random
import sys
import time
import traceback
import uuid
from dataclasses import dataclass, field
from unittest import mock

import pytest

from helpers import SECTION, GiB, KiB, MiB, all_layouts
from sparsemem import KernelBug, KernelError, Machine
from sparsemem.iomem import parse
from sparsemem.kernel import row_releases

#: every release row of the kernel table (new rows are fuzzed without touching this file)
KERNELS = row_releases()
CORES = ("compiled", "reference")
DOCUMENTED = (KernelError, KernelBug, ValueError, TypeError, RuntimeError)

#: the issue's reproducers (#17 defects 3 and 4) and the state-integrity layout
FIXED_LAYOUTS = {
    "issue17-ram-in-region": "00100000-bfffffff : System RAM\n100000000-13fffffff : Persistent Memory\n",
    "issue17-L7": ("00100000-bfffffff : System RAM\n100000000-10001efff : System RAM\n"
                   "10001f000-2c001efff : Persistent Memory\n2c001f000-6c001efff : Persistent Memory (legacy)\n"
                   "  6bfe1f000-6c001efff : Reserved\n"),
    "tiny-pmem": "00100000-bfffffff : System RAM\n100000000-100000fff : Persistent Memory\n",
    "legacy-below-4g": ("00001000-0009ffff : System RAM\n00100000-3fffffff : System RAM\n"
                        "40000000-7fffffff : Persistent Memory (legacy)\n80000000-bfffffff : System RAM\n"
                        "100000000-13fffffff : System RAM\n"),
}


# ----------------------------------------------------------------------------- partial state
@dataclass(frozen=True)
class PartialStatePath:
    """A documented way for a refused call to leave state behind.  ``ops``: the step kinds
    that may take it; ``keys``: the only top-level ``snapshot()`` keys it may change;
    ``ns_error``: taken by ``Namespace.enable``, it may also set that namespace's ``error``
    field under ``nvdimm`` (and nothing else there);
    ``blocks_fixed``: the memory blocks' public state (:func:`block_view`: id, state, node,
    section count) must not change, only what the snapshot keeps beyond it (``online_type``)."""

    name: str
    doc: str
    ops: frozenset
    keys: frozenset
    ns_error: bool = False
    blocks_fixed: bool = False


PARTIAL_STATE_PATHS = (
    PartialStatePath(
        "add_memory: pieces added before arch_add_memory failed stay",
        "README 'Guarantees'; sparsemem.hotplug.add_memory_resource docstring; "
        "sparse-hotplug.md §5.2 (v5.3 __add_pages stops at the first error) and §7 (v5.2: blocks "
        "registered per section inside __add_pages, no rollback)",
        frozenset({"add_memory"}), frozenset({"sections", "blocks"})),
    PartialStatePath(
        "memremap_pages: sections added before arch_add_memory failed stay",
        "README 'Guarantees'; sparsemem.memremap.memremap_pages and Region.create_namespace "
        "docstrings; memremap-nvdimm.md §6.1 step 9, §6.2 step 3 (with Namespace.enable, the "
        "failure is also recorded in ns.error)",
        frozenset({"memremap_pages", "create_namespace", "ns_enable"}), frozenset({"sections"}), ns_error=True),
    PartialStatePath(
        "online: a failed online keeps the zone/node span growth and the memmap init",
        "README 'Guarantees'; sparsemem.hotplug.online_pages docstring; sparse-hotplug.md §5.5",
        frozenset({"sysfs_write", "online_block"}), frozenset({"nodes", "sections", "blocks"}),
        blocks_fixed=True),
    PartialStatePath(
        "memoryN/state: a refused online write changes the block's online_type",
        "README 'Guarantees'; sparsemem.memory_block.Sysfs docstring; sparse-hotplug.md §8.6 "
        "(state_store sets online_type before device_online; memory_subsys_online resets it)",
        frozenset({"sysfs_write", "online_block"}), frozenset({"blocks"}), blocks_fixed=True),
    PartialStatePath(
        "Namespace.enable: a failed enable records (errno, dmesg line) in ns.error",
        "sparsemem.nvdimm.namespace.Namespace docstring ('error') and Namespace.enable",
        frozenset({"ns_enable"}), frozenset(), ns_error=True),
)

#: ValueErrors that valid-looking arguments may still meet, by documented limit
VALUE_ERRORS_FOR_VALID_INPUT = (
    # memremap_pages docstring: a range past the physical address space is a ValueError
    ("memremap_pages", "physical address space"),
)


def _drop_ns_error(obj):
    """``obj`` with every ``("error", ...)`` item pair removed (namespace snapshots are tuples
    of sorted ``(key, value)`` pairs), recursively."""
    if isinstance(obj, dict):
        return {k: _drop_ns_error(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        if obj and all(isinstance(p, tuple) and len(p) == 2 and isinstance(p[0], str) for p in obj):
            return tuple((k, _drop_ns_error(v)) for k, v in obj if k != "error")
        return tuple(_drop_ns_error(v) for v in obj)
    return obj


def block_view(m: Machine) -> tuple:
    """The memory blocks as the public attributes show them (without ``online_type``)."""
    return tuple((b.id, b.state, b.nid, b.section_count) for b in m.memory_blocks)


def partial_state_path(op: str, exc: BaseException, before: dict, after: dict,
                       blocks_before: tuple = (), blocks_after: tuple = ()) -> PartialStatePath | None:
    """The documented path that explains ``before`` -> ``after`` (snapshots; ``blocks_*``:
    :func:`block_view`) for a refused ``op``, or None."""
    if not isinstance(exc, KernelError):
        return None            # bad input and misuse are refused before anything changes
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    for path in sorted(PARTIAL_STATE_PATHS, key=lambda p: len(p.keys)):   # the narrowest first
        if op not in path.ops or (path.blocks_fixed and blocks_before != blocks_after):
            continue
        rest = changed - path.keys
        if (path.ns_error and op == "ns_enable" and rest == {"nvdimm"}
                and _drop_ns_error(before["nvdimm"]) == _drop_ns_error(after["nvdimm"])):
            rest = set()
        if not rest:
            return path
    return None


# ----------------------------------------------------------------------------- layouts
def synthetic_layout(rnd: random.Random) -> str:
    """RAM below 3 GiB, maybe RAM above 4 GiB ending anywhere, then 1-3 pmem ranges (either
    kind) right after it or after a gap, sometimes with a Reserved tail or RAM after them."""
    lines = ["00001000-0009ffff : System RAM",
             rnd.choice(["00100000-bfffffff : System RAM", "00100000-3fffffff : System RAM"])]
    pos = 4 * GiB
    hi = rnd.choice([0, 0x1f000, 64 * MiB, 1 * GiB, 1 * GiB + 2 * MiB, 2 * GiB, rnd.randrange(1, 1 << 19) * 4 * KiB])
    if hi:
        lines.append(f"{pos:x}-{pos + hi - 1:x} : System RAM")
        pos += hi
    for _ in range(rnd.randint(1, 3)):
        pos += rnd.choice([0, 0, 4 * KiB, 2 * MiB, 64 * MiB, SECTION, rnd.randrange(0, 1 << 16) * 4 * KiB])
        size = rnd.choice([4 * KiB, 8 * KiB, 16 * MiB, 16 * MiB + 4 * KiB, 64 * MiB, SECTION, 130 * MiB,
                           1 * GiB, 2 * GiB, rnd.randrange(1, 1 << 19) * 4 * KiB])
        name = rnd.choice(["Persistent Memory", "Persistent Memory (legacy)"])
        lines.append(f"{pos:x}-{pos + size - 1:x} : {name}")
        if size > 8 * MiB and rnd.random() < 0.2:
            tail = rnd.choice([4 * KiB, 2 * MiB + 4 * KiB])
            lines.append(f"  {pos + size - tail:x}-{pos + size - 1:x} : Reserved")
        pos += size
        if rnd.random() < 0.3:
            ram = rnd.choice([SECTION, 64 * MiB, 1 * GiB])
            pos += rnd.choice([0, 2 * MiB])
            lines.append(f"{pos:x}-{pos + ram - 1:x} : System RAM")
            pos += ram
    return "\n".join(lines) + "\n"


def data_layouts() -> dict:
    return {p.name: p.read_text() for p in all_layouts()}


def pick_layout(rnd: random.Random) -> tuple[str, str]:
    r = rnd.random()
    if r < 0.45:
        return "synthetic", synthetic_layout(rnd)
    if r < 0.75:
        name = rnd.choice(sorted(FIXED_LAYOUTS))
        return name, FIXED_LAYOUTS[name]
    layouts = data_layouts()
    name = rnd.choice(sorted(layouts))
    return name, layouts[name]


# ----------------------------------------------------------------------------- steps
@dataclass
class Step:
    """One step as plain data: ``op``, its arguments, and whether they are well formed
    (``valid``; a ValueError/TypeError on a valid step is a finding).  Targets (blocks,
    regions, namespaces, pgmaps) are indices resolved at run time, so a step replays on a
    machine whose state differs (shrinking): a missing target makes it a no-op."""

    op: str
    args: tuple = ()
    valid: bool = True

    def __repr__(self):
        return f"Step({self.op!r}, {self.args!r}{'' if self.valid else ', valid=False'})"


READ_ONLY = frozenset({"sysfs_read", "query", "iomem"})
#: steps the kernel cannot refuse: unbinding a namespace's driver (``ndctl disable-namespace``)
#: and then deleting it run devres release actions, which return nothing
CANNOT_FAIL = frozenset({"ns_disable", "ns_destroy"})


def _points(m: Machine, snap: dict) -> list[int]:
    """Interesting physical addresses: the top-level iomem boundaries, the regions', and the
    end of boot memory."""
    pts = {0, 4 * GiB, m.max_pfn << 12}
    for entry in snap["iomem"]:
        if entry[0] == 0:
            pts.update((entry[1], entry[2] + 1))
    for r in m.regions:
        pts.update((r.start, r.end))
    return sorted(p for p in pts if p < 1 << 46)


def _free_starts(m: Machine, snap: dict) -> list[int]:
    """Block-aligned addresses where a block fits between the top-level resources (the first
    and last of each gap, and a few above everything), below the physical address limit."""
    bs = m.memory_block_size
    limit = (1 << 46) - bs
    top = sorted((e[1], e[2]) for e in snap["iomem"] if e[0] == 0)
    out, pos = [], 0
    for s, e in top + [(limit + bs, limit + bs)]:
        first, last = (pos + bs - 1) // bs * bs, (s // bs - 1) * bs
        if first <= last:
            out += [first, last]
        pos = max(pos, e + 1)
    return sorted({p for p in out if 0 <= p <= limit})[:64]


def _pick_block(rnd: random.Random, m: Machine, added: list) -> int:
    """A memory block id: mostly one of the hot-added blocks, else any (or a missing one)."""
    bs = m.memory_block_size
    hot = [(start + k * bs) // bs for _, start, size in added for k in range(size // bs)]
    if hot and rnd.random() < 0.7:
        return rnd.choice(hot)
    ids = [b.id for b in m.memory_blocks]
    return rnd.choice(ids) if ids and rnd.random() < 0.95 else rnd.randrange(1 << 12)


def gen_step(rnd: random.Random, m: Machine, snap: dict, added: list) -> Step:
    """A random step for the state of ``m`` (both cores have the same state)."""
    bs = m.memory_block_size
    pts = _points(m, snap)
    kind = rnd.choices(
        ["add", "remove", "sysfs_write", "sysfs_read", "online_block", "inject", "memremap", "memunmap",
         "create_ns", "ns_op", "reboot", "query", "pickle", "iomem"],
        weights=[12, 6, 14, 4, 5, 2, 10, 6, 12, 12, 2, 4, 3, 2])[0]
    if kind == "add":
        free = _free_starts(m, snap)
        r = rnd.random()
        if free and r < 0.6:           # a free gap (or right above everything)
            base = rnd.choice(free)
        elif m.regions and r < 0.75:   # inside a pmem region (a nested "System RAM")
            reg = rnd.choice(m.regions)
            base = (reg.start + rnd.randrange(max(reg.size, 1))) // bs * bs
        else:
            p = rnd.choice(pts)
            base = (p + bs - 1) // bs * bs if rnd.random() < 0.7 else p // bs * bs
        start = max(base + rnd.choice([-1, 0, 0, 0, 0, 1]) * bs, 0) + rnd.choice([0] * 8 + [2 * MiB, 4 * KiB])
        size = rnd.choice([1, 1, 2, 3]) * bs + rnd.choice([0] * 8 + [2 * MiB])
        return Step("add_memory", (rnd.choice([0, 0, 0, 1]), start, size))
    if kind == "remove":
        # mostly what was hot-added (preferably with its blocks offline): removing memory
        # that was never added, or (v5.1/v5.2) online memory, crashes the kernel (KernelBug)
        offline = {b.start for b in m.memory_blocks if b.state == "offline"}
        ready = [r for r in added if all(s in offline for s in range(r[1], r[1] + r[2], bs))]
        r = rnd.random()
        if not added and r < 0.9:
            return Step("add_memory", (0, (rnd.choice(pts) + bs - 1) // bs * bs + rnd.choice([0, 1]) * bs, bs))
        if ready and r < 0.85:
            nid, start, size = rnd.choice(ready)
        elif added and r < 0.97:
            nid, start, size = rnd.choice(added)
        else:
            nid, start, size = 0, rnd.choice(pts) // bs * bs, bs
        return Step("remove_memory", (nid, start, size))
    if kind == "sysfs_write":
        r = rnd.random()
        if r < 0.08:
            return Step("sysfs_write", ("auto_online_blocks", rnd.choice(["online", "offline", "offline\n", "bogus"])))
        value = rnd.choice(["online", "online_kernel", "online_movable", "offline", "offline", "online\n", "bogus"])
        fname = "state"
        if rnd.random() < 0.25:
            fname, value = "online", rnd.choice(["1", "0", "0", "2"])
        return Step("sysfs_write", (_pick_block(rnd, m, added), fname, value))
    if kind == "sysfs_read":
        fname = rnd.choice(["state", "online", "phys_index", "valid_zones", "removable", "phys_device",
                            "block_size_bytes", "auto_online_blocks", ""])
        return Step("sysfs_read", (_pick_block(rnd, m, added), fname))
    if kind == "online_block":
        how = rnd.choice(["online", "online_kernel", "online_movable", "offline", "offline"])
        return Step("online_block", (_pick_block(rnd, m, added), how))
    if kind == "inject":
        return Step("inject", (rnd.choice(["MEM_GOING_ONLINE", "MEM_GOING_OFFLINE"]), rnd.choice([0, 0, -12, -16])))
    if kind == "memremap":
        if m.regions and rnd.random() < 0.6:
            r = rnd.choice(m.regions)
            p = r.start + rnd.choice([0, 0, r.size // 2, max(r.size - 2 * MiB, 0), r.size])
        else:
            p = rnd.choice(pts)
        align = rnd.choice([4 * KiB, 2 * MiB, 2 * MiB, SECTION])
        start = max(p // align * align + rnd.choice([0, 0, 2 * MiB, -2 * MiB, 64 * MiB]), 0)
        size = rnd.choice([2 * MiB, 4 * MiB, 64 * MiB, SECTION, 130 * MiB, 1 * GiB])
        valid = True
        if rnd.random() < 0.03:
            start += 1
            valid = False
        kind_ = rnd.choice(["fsdax", "devdax", "private", "p2pdma"])
        if rnd.random() < 0.02:
            kind_, valid = "bogus", False
        return Step("memremap_pages", (start, size, kind_), valid=valid)
    if kind == "memunmap":
        return Step("memunmap_pages", (rnd.choice(["live", "live", "seen"]), rnd.randrange(1 << 16)))
    if kind == "create_ns":
        if not m.regions:
            return Step("noop")
        size = rnd.choice([None] * 6 + [4 * KiB, 8 * KiB, 16 * MiB, 16 * MiB + 4 * KiB, 64 * MiB, 130 * MiB,
                                        1 * GiB, rnd.randrange(1, 1 << 20) * 4 * KiB, 6 * KiB])
        mode = rnd.choice(["raw", "sector", "fsdax", "devdax", "fsdax", "devdax", "memory", "dax", "safe"])
        map_ = rnd.choice(["dev", "dev", "dev", "mem"])
        align = rnd.choice([None, None, None, None, 4 * KiB, 2 * MiB, 1 * GiB, 3])
        valid = True
        r = rnd.random()
        if r < 0.02:
            size, valid = rnd.choice([0, -4096, 2.0]), False
        elif r < 0.04:
            mode, valid = "bogus", False
        elif r < 0.06:
            map_, valid = "bogus", False
        return Step("create_namespace", (rnd.randrange(16), size, mode, map_, align), valid=valid)
    if kind == "ns_op":
        return Step(rnd.choice(["ns_enable", "ns_disable", "ns_destroy", "ns_enable", "ns_disable"]),
                    (rnd.randrange(16), rnd.randrange(16)))
    if kind == "reboot":
        return Step("reboot")
    if kind == "query":
        pfn = (rnd.choice(pts) >> 12) + rnd.choice([0, -1, 1, 511, 512, 32767, 32768])
        return Step("query", (max(pfn, 0),))
    if kind == "pickle":
        return Step("pickle")
    return Step("iomem")


class Runner:
    """The compiled and the reference machine of one scenario, driven in lockstep."""

    def __init__(self, seed: int, kernel: str, layout: str, options: dict):
        self.seed = seed
        self.kernel = kernel
        self.layout = layout
        self.options = options
        self.ms = {}
        for c in CORES:
            # a layout's existing namespaces are adopted at boot (sparsemem.existing), with
            # fresh uuids: the same seeded ones for both cores, as in step()
            src = random.Random(f"{seed}/boot")
            with mock.patch("uuid.uuid4", lambda src=src: uuid.UUID(int=src.getrandbits(128), version=4)):
                self.ms[c] = Machine.from_iomem(layout, kernel=kernel, core=c, **options)
        self.seen = {c: [] for c in CORES}      # every pgmap ever handed out, in the same order
        self.added: list = []                   # (nid, start, size) of successful add_memory
        self.crashed = False
        self.index = 0
        self._note_pgmaps()
        #: the last snapshot of each machine (nothing runs between steps, so it is also the
        #: "before" of the next step)
        self.snaps = {c: m.snapshot() for c, m in self.ms.items()}

    def _note_pgmaps(self):
        for c, m in self.ms.items():
            known = {id(p) for p in self.seen[c]}
            for ns in (n for r in m.regions for n in r.namespaces):
                if ns.pgmap is not None and id(ns.pgmap) not in known:
                    self.seen[c].append(ns.pgmap)
                    known.add(id(ns.pgmap))

    # -- applying one step on one machine -------------------------------------------------
    def _apply(self, c: str, step: Step):
        m = self.ms[c]
        op, a = step.op, step.args
        if op == "noop":
            return None
        if op == "add_memory":
            return m.add_memory(*a)
        if op == "remove_memory":
            return m.remove_memory(*a)
        if op == "sysfs_write":
            if a[0] == "auto_online_blocks":
                return m.sysfs.write("auto_online_blocks", a[1])
            return m.sysfs.write(f"memory{a[0]}/{a[1]}", a[2])
        if op == "sysfs_read":
            if a[1] in ("block_size_bytes", "auto_online_blocks"):
                return m.sysfs.read(a[1])
            if not a[1]:
                return tuple(m.sysfs.listdir(f"memory{a[0]}"))
            return m.sysfs.read(f"memory{a[0]}/{a[1]}")
        if op == "online_block":
            if a[1] == "offline":
                return m.offline_memory_block(a[0])
            return m.online_memory_block(a[0], a[1])
        if op == "inject":
            return m.inject_memory_notifier_error(*a)
        if op == "memremap_pages":
            pg = m.memremap_pages(a[0], a[1], type=a[2])
            self.seen[c].append(pg)
            return pg
        if op == "memunmap_pages":
            pool = m.pgmaps if a[0] == "live" else self.seen[c]
            if not pool:
                return None
            return m.memunmap_pages(pool[a[1] % len(pool)])
        if op == "create_namespace":
            if not m.regions:
                return None
            r = m.regions[a[0] % len(m.regions)]
            return r.create_namespace(size=a[1], mode=a[2], map=a[3], align=a[4])
        if op in ("ns_enable", "ns_disable", "ns_destroy"):
            if not m.regions:
                return None
            r = m.regions[a[0] % len(m.regions)]
            if not r.namespaces:
                return None
            ns = r.namespaces[a[1] % len(r.namespaces)]
            return getattr(ns, op[3:])()
        if op == "reboot":
            self.ms[c] = m.reboot()
            return None
        if op == "query":
            pfn = a[0]
            return (m.pfn_valid(pfn), m.pfn_to_online_page(pfn), repr(m.get_dev_pagemap(pfn)))
        if op == "pickle":
            m2, seen2 = pickle.loads(pickle.dumps((m, self.seen[c])))
            assert m2.snapshot() == m.snapshot(), "pickled machine: snapshot differs"
            assert m2.dmesg == m.dmesg, "pickled machine: dmesg differs"
            self.ms[c], self.seen[c] = m2, seen2      # go on with the copy
            return None
        if op == "iomem":
            return m.iomem_text()
        raise AssertionError(f"unknown step {op}")

    # -- one step on both machines, with every check ---------------------------------------
    def step(self, step: Step, stats: Stats) -> None:
        outcomes, befores, afters = {}, self.snaps, {}
        blocks_before = block_view(self.ms["compiled"])
        for c in CORES:
            src = random.Random(f"{self.seed}/{self.index}")
            with mock.patch("uuid.uuid4", lambda src=src: uuid.UUID(int=src.getrandbits(128), version=4)):
                try:
                    res = self._apply(c, step)
                    outcomes[c] = ("ok", _describe(res))
                except DOCUMENTED as e:
                    outcomes[c] = (type(e).__name__, getattr(e, "errno", None), str(e))
                    exc = e
                except AssertionError:
                    raise
                except BaseException as e:     # undocumented: a finding
                    raise AssertionError(f"{step}: undocumented {type(e).__name__}: {e}\n"
                                         f"{traceback.format_exc()}") from e
            afters[c] = self.ms[c].snapshot()
        self.snaps = afters
        self.index += 1
        a, b = (outcomes[c] for c in CORES)
        assert a == b, f"{step}: the cores disagree:\n  compiled:  {a}\n  reference: {b}"
        assert afters["compiled"] == afters["reference"], f"{step}: the cores' snapshots differ"
        assert self.ms["compiled"].dmesg == self.ms["reference"].dmesg, f"{step}: the cores' dmesg differ"
        stats.steps += 1
        stats.ops[step.op] += 1
        outcome = a[0] if a[1:2] in ((None,), ()) or a[0] == "ok" else f"{a[0]}({errno.errorcode.get(a[1], a[1])})"
        stats.by_op[step.op, outcome] += 1
        m = self.ms["compiled"]
        if a[0] == "ok":
            stats.outcomes["ok"] += 1
            if step.op == "add_memory":
                self.added.append(step.args)
            elif step.op == "remove_memory" and step.args in self.added:
                self.added.remove(step.args)
            if step.op in READ_ONLY:
                assert afters["compiled"] == befores["compiled"], f"{step}: a read changed the state"
        else:
            name, err = a[0], a[1]
            stats.outcomes[name if err is None else f"{name}({errno.errorcode.get(err, err)})"] += 1
            if name == "KernelBug":
                # the real kernel crashed here: nothing after it is meaningful on this machine
                stats.kernel_bugs[a[2].split(":")[0]] += 1
                self.crashed = True
                return
            assert step.op not in CANNOT_FAIL, f"{step}: cannot fail in the kernel, but raised {a}"
            if name in ("ValueError", "TypeError") and step.valid:
                assert any(step.op == op and text in a[2] for op, text in VALUE_ERRORS_FOR_VALID_INPUT), \
                    f"{step}: {name} for well-formed arguments: {a[2]}"
            if befores["compiled"] != afters["compiled"]:
                path = partial_state_path(step.op, exc, befores["compiled"], afters["compiled"],
                                          blocks_before, block_view(m))
                changed = sorted(k for k in befores["compiled"] if befores["compiled"][k] != afters["compiled"].get(k))
                assert path is not None, (f"{step}: refused with {a} but changed {changed} outside every "
                                          f"documented partial-state path")
                stats.partial[path.name] += 1
        if step.op == "reboot" and a[0] == "ok":
            self.added = []
        self._note_pgmaps()
        check_nvdimm(m, text := m.iomem_text())
        # iomem_text re-parses to the same tree
        tree = parse(text)
        assert tree.text() == text, f"{step}: iomem_text does not re-parse to itself"
        assert [e[:4] for e in tree.state()] == [e[:4] for e in afters["compiled"]["iomem"]], \
            f"{step}: parse(iomem_text()) is not the machine's tree"


def check_nvdimm(m: Machine, text: str) -> None:
    """Region accounting and namespace claims: the namespaces and the free extents tile the
    region; an enabled namespace holds its iomem claim, a disabled one holds none."""
    for r in m.regions:
        a = r.align if r.align is not None and r.mappings else None
        if a is None:
            assert sum(ns.raw_size for ns in r.namespaces) + r.available_size == r.size, f"{r}: capacity leak"
        else:
            # 5.7+ (issue 11, later-eras-nvdimm-evidence.md R9): nd_pmem_available_dpa counts
            # every namespace widened outward to the region align and rounds the rest down
            busy = sum(-(-(ns.offset + ns.raw_size) // a) * a - ns.offset // a * a for ns in r.namespaces)
            assert r.available_size == (max(r.size - busy, 0) // a * a if busy < r.size else 0), f"{r}: capacity"
        for ns in r.namespaces:
            claimed = f": {ns.dev}\n" in text or f": {ns.chardev}\n" in text
            assert claimed == ns.enabled, f"{ns}: enabled={ns.enabled} but claimed={claimed}"
            # a raw namespace of an e820 region maps its pages too (R25), a 0-size dax device none
            # (issue 11 items 3 and 4)
            maps = ns.mode in ("fsdax", "devdax") and ns.dax_enabled is not False or (ns.mode == "raw"
                                                                                      and ns.maps_pages)
            assert (ns.pgmap is not None) == (ns.enabled and maps), f"{ns}: pgmap"


def _describe(res) -> str:
    return repr(res) if res is None or isinstance(res, (int, str, tuple)) else type(res).__name__ + repr(res)[:200]


@dataclass
class Stats:
    machines: int = 0
    steps: int = 0
    ops: collections.Counter = field(default_factory=collections.Counter)
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    kernel_bugs: collections.Counter = field(default_factory=collections.Counter)
    partial: collections.Counter = field(default_factory=collections.Counter)
    kernels: collections.Counter = field(default_factory=collections.Counter)
    by_op: collections.Counter = field(default_factory=collections.Counter)

    def report(self, verbose: bool = False) -> str:
        lines = [(f"machines {self.machines} (x2 cores), steps {self.steps} "
                 f"(kernels: {', '.join(f'{k} {n}' for k, n in sorted(self.kernels.items()))})")]
        lines.append("outcomes: " + ", ".join(f"{k} {n}" for k, n in self.outcomes.most_common()))
        if self.kernel_bugs:
            lines.append("KernelBug sites: " + ", ".join(f"{k} {n}" for k, n in self.kernel_bugs.most_common()))
        if self.partial:
            lines.append("partial-state paths taken: " + "; ".join(f"{k}: {n}" for k, n in self.partial.most_common()))
        if verbose:
            for op in sorted(self.ops):
                outs = sorted(((k[1], n) for k, n in self.by_op.items() if k[0] == op), key=lambda t: -t[1])
                lines.append(f"  {op} {self.ops[op]}: " + ", ".join(f"{o} {n}" for o, n in outs))
        return "\n".join(lines)


def scenario(seed: int, kernel: str, n_steps: int, stats: Stats, steps: list | None = None) -> list:
    """Run one seeded scenario (or replay ``steps``); returns the steps run.  Raises
    AssertionError on the first failed check."""
    rnd = random.Random(seed)
    name, layout = pick_layout(rnd)
    options = {"auto_online": rnd.random() < 0.3, "movable_node": rnd.random() < 0.15,
                   "hypervisor": rnd.random() < 0.8}
    if rnd.random() < 0.1:
        options["memory_block_size"] = rnd.choice([SECTION, 256 * MiB, 1 * GiB])
    run = Runner(seed, kernel, layout, options)
    stats.machines += 1
    stats.kernels[kernel] += 1
    done = []
    plan = iter(steps) if steps is not None else None
    for _ in range(n_steps if steps is None else len(steps)):
        if run.crashed:
            break
        m = run.ms["compiled"]
        st = next(plan) if plan is not None else gen_step(rnd, m, run.snaps["compiled"], run.added)
        done.append(st)
        try:
            run.step(st, stats)
        except AssertionError as e:
            raise ScenarioFailure(seed, kernel, name, layout, options, done, str(e)) from None
    if not run.crashed:
        for c, m in run.ms.items():          # the final state pickles too
            m2 = pickle.loads(pickle.dumps(m))
            if m2.snapshot() != run.snaps[c] or m2.dmesg != m.dmesg:
                raise ScenarioFailure(seed, kernel, name, layout, options, done, f"{c}: the final state "
                                      f"does not survive pickling")
    return done


class ScenarioFailure(AssertionError):
    def __init__(self, seed, kernel, name, layout, options, steps, why):
        self.seed, self.kernel, self.name, self.layout, self.options = seed, kernel, name, layout, options
        self.steps, self.why = list(steps), why
        super().__init__(self.describe())

    def describe(self) -> str:
        return (f"seed {self.seed} kernel {self.kernel} layout {self.name} options {self.options}\n"
                f"{self.why}\nsteps ({len(self.steps)}):\n  " + "\n  ".join(map(repr, self.steps)))


def replay(seed: int, kernel: str, steps: list) -> None:
    """Run ``steps`` on the scenario of ``seed`` (same layout and options); raises on failure."""
    scenario(seed, kernel, len(steps), Stats(), steps=steps)


def shrink(fail: ScenarioFailure, budget: int = 200) -> ScenarioFailure:
    """Drop steps one at a time while the scenario still fails (at most ``budget`` replays)."""
    best = fail
    i = 0
    while i < len(best.steps) and budget > 0:
        trial = best.steps[:i] + best.steps[i + 1:]
        budget -= 1
        try:
            replay(best.seed, best.kernel, trial)
        except ScenarioFailure as f:
            if f.steps == trial:       # failed at the end of the shorter list: keep it
                best = f
                continue
        i += 1
    return best


def campaign(kernels, machines: int, n_steps: int, seed0: int, stats: Stats) -> None:
    for kernel in kernels:
        for i in range(machines):
            try:
                scenario(seed0 + i, kernel, n_steps, stats)
            except ScenarioFailure as f:
                raise AssertionError(shrink(f).describe()) from None


def _budget() -> tuple[int, int, int]:
    ci = bool(os.environ.get("CI"))
    machines = int(os.environ.get("SPARSEMEM_FUZZ_MACHINES", "16" if ci else "6"))
    steps = int(os.environ.get("SPARSEMEM_FUZZ_STEPS", "40" if ci else "30"))
    seed0 = int(os.environ.get("SPARSEMEM_FUZZ_SEED", "17000"))
    return machines, steps, seed0


@pytest.mark.parametrize("kernel", KERNELS)
def test_stateful_fuzz(kernel):
    """A bounded, seeded slice of the campaign in each release row of the kernel table."""
    machines, steps, seed0 = _budget()
    stats = Stats()
    campaign([kernel], machines, steps, seed0, stats)
    assert stats.machines == machines and stats.steps > 0


def test_partial_state_paths_are_explicit_and_cited():
    """Every path names the document that allows it, and a refusal that changed state
    outside every path is caught (the checker is not vacuous)."""
    for path in PARTIAL_STATE_PATHS:
        assert path.doc and path.ops and (path.keys or path.ns_error)
    before = {"sections": 1, "blocks": 1, "iomem": 1, "nvdimm": {"regions": ((("error", None), ("x", 1)),)}}
    after_ok = dict(before, sections=2)
    after_bad = dict(before, iomem=2)
    err = KernelError(errno.EEXIST, "x")
    assert partial_state_path("add_memory", err, before, after_ok).name.startswith("add_memory")
    assert partial_state_path("add_memory", err, before, after_bad) is None
    assert partial_state_path("add_memory", ValueError("x"), before, after_ok) is None
    ns_err = dict(before, nvdimm={"regions": ((("error", (6, "x")), ("x", 1)),)})
    ns_other = dict(before, nvdimm={"regions": ((("error", None), ("x", 2)),)})
    assert partial_state_path("ns_enable", err, before, ns_err) is not None
    assert partial_state_path("ns_enable", err, before, ns_other) is None
    assert partial_state_path("create_namespace", err, before, ns_err) is None
    # a refused online write may change online_type, not the blocks' public state
    after_blk = dict(before, blocks=2)
    view = ((48, "offline", 0, 1),)
    assert partial_state_path("sysfs_write", err, before, after_blk, view, view) is not None
    assert partial_state_path("sysfs_write", err, before, after_blk, view, ((48, "online", 0, 1),)) is None


def test_fuzzer_catches_a_planted_defect(monkeypatch):
    """A refusal that leaves undocumented state behind is reported, with its steps."""
    real = Machine.add_memory

    def leaky(self, nid, start, size):
        try:
            return real(self, nid, start, size)
        except KernelError:
            self.auto_online = not self.auto_online    # state changed on a refusal
            raise

    monkeypatch.setattr(Machine, "add_memory", leaky)
    steps = [Step("add_memory", (0, 1 * GiB, SECTION))]       # inside boot RAM: EEXIST
    with pytest.raises(ScenarioFailure, match="outside every documented partial-state path"):
        replay(17000, KERNELS[-1], steps)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--machines", type=int, default=100, help="scenarios per kernel row")
    ap.add_argument("--steps", type=int, default=60, help="steps per scenario")
    ap.add_argument("--seed", type=int, default=1, help="first seed")
    ap.add_argument("--kernel", action="append", help="a kernel row (default: every row)")
    args = ap.parse_args(argv)
    stats = Stats()
    t0 = time.monotonic()
    try:
        campaign(args.kernel or KERNELS, args.machines, args.steps, args.seed, stats)
    except AssertionError as e:
        print(stats.report())
        print(f"FAILED: {e}")
        return 1
    print(stats.report(verbose=True))
    print(f"{time.monotonic() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
