"""``sparsemem fleet``: what a kernel upgrade does to every host of a fleet, on Dask.

The detail: docs/fleet.md.
"""

from __future__ import annotations

import array
import collections
import csv
import gc
import logging
import os
import sys
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Optional, Sequence

from .constants import PMD_SIZE
from .errors import KernelBug, errno_name
from .kernel import kernel_model
from .layout import parse
from .report import format_size, populate
from .resource import MAX_IORES_LEVEL

__all__ = [
    "COLUMNS",
    "REQUIRED_COLUMNS",
    "DEFAULT_BATCH_SIZE",
    "HostEntry",
    "FleetSummary",
    "MissingExtra",
    "iter_inventory",
    "count_hosts",
    "upgrade_host",
    "upgrade_batch",
    "run_fleet",
    "format_summary",
    "plot_fleet",
    "require_fleet_extra",
]

#: the columns issue #14 names, in this order
REQUIRED_COLUMNS = ("host", "region", "namespace", "mode", "usable_from", "usable_to",
                    "enabled_from", "enabled_to", "errno_to", "dmesg_to",
                    "memmap_ram_from", "memmap_ram_to")
#: every column of the table (CSV header, Parquet schema), in this order
COLUMNS = REQUIRED_COLUMNS + ("errno_from", "dmesg_from", "mode_to", "error")

_INT_COLUMNS = ("usable_from", "usable_to", "memmap_ram_from", "memmap_ram_to")
_BOOL_COLUMNS = ("enabled_from", "enabled_to")

#: hosts per Dask task: a task costs its worker about 5 ms besides its hosts (about 0.6 ms each),
#: so 256 keeps that under 4 % while a 10,000-host inventory still makes 40 tasks
#: (bench/test_bench_fleet.py "fleet: batch size": 2 workers, 10,000 hosts, 2026-12-06:
#: 64 -> 2,089, 128 -> 2,370, 256 -> 2,428, 512 -> 2,298 hosts/s)
DEFAULT_BATCH_SIZE = 256

_LAYOUT_SKIP_SUFFIXES = (".json",)


class MissingExtra(ImportError):
    """dask[distributed] / pyarrow / tqdm are not installed."""


def require_fleet_extra(parquet: bool = False) -> None:
    """Import what ``fleet`` needs; :class:`MissingExtra` (one line saying what to install)
    when something is missing."""
    missing = []
    for mod, pkg in (("dask", "dask"), ("distributed", "distributed"), ("tqdm", "tqdm")) + \
            ((("pyarrow", "pyarrow"),) if parquet else ()):
        try:
            __import__(mod)
        except ImportError:
            missing.append(pkg)
    if missing:
        raise MissingExtra(f"sparsemem fleet needs {', '.join(missing)}: pip install 'sparsemem[fleet]'")


# ---------------------------------------------------------------------------------------------
# inventories


@dataclass
class HostEntry:
    """One host of an inventory: its name, layout text and ndctl JSON text (or why they could
    not be read)."""

    host: str
    path: str
    text: Optional[str] = None
    ndctl_json: Optional[str] = None
    error: Optional[str] = None


def _host_name(rel: str) -> str:
    base, dot, _ = rel.rpartition(".")
    return base if dot and base and "/" not in rel[len(base):] else rel


def _decode(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def _is_layout_name(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return bool(name) and not name.startswith(".") and not name.lower().endswith(_LAYOUT_SKIP_SUFFIXES)


def _dir_entries(root: str) -> Iterator[HostEntry]:
    rels, jsons = [], set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        reldir = os.path.relpath(dirpath, root)
        for fn in filenames:
            rel = fn if reldir == "." else f"{reldir}/{fn}".replace(os.sep, "/")
            if fn.lower().endswith(".json"):
                jsons.add(rel)
            elif _is_layout_name(rel):
                rels.append(rel)
    rels.sort()
    for rel in rels:
        host = _host_name(rel)
        path = os.path.join(root, rel)
        entry = HostEntry(host, path)
        try:
            with open(path, "rb") as f:
                entry.text = _decode(f.read())
        except OSError as exc:
            entry.error = f"{path}: cannot read: {exc.strerror or exc}"
        js = host + ".json"
        if js in jsons and entry.error is None:
            try:
                with open(os.path.join(root, js), "rb") as f:
                    entry.ndctl_json = _decode(f.read())
            except OSError as exc:
                entry.error = f"{os.path.join(root, js)}: cannot read: {exc.strerror or exc}"
        yield entry


def _tar_entries(path: str) -> Iterator[HostEntry]:
    # a compact index (name, member) first: json members are paired by stem; members are then
    # read in archive order (sequential for compressed archives)
    with tarfile.open(path, "r:*") as tar:
        layouts, jsons = [], {}
        while True:
            ti = tar.next()
            if ti is None:
                break
            if ti.isfile():
                rel = ti.name.removeprefix("./")
                if rel.lower().endswith(".json"):
                    jsons[rel] = ti
                elif _is_layout_name(rel):
                    layouts.append((rel, ti))
            # do not keep every TarInfo of a huge archive (typeshed does not declare the list)
            tar.members = []  # type: ignore[attr-defined]
        for rel, ti in layouts:
            host = _host_name(rel)
            entry = HostEntry(host, f"{path}:{rel}")
            js = jsons.get(host + ".json")
            try:
                # in archive order, so that a compressed archive is only ever read forwards
                for member, attr in sorted(((ti, "text"), (js, "ndctl_json")) if js is not None else ((ti, "text"),),
                                           key=lambda ma: ma[0].offset):
                    f = tar.extractfile(member)
                    assert f is not None  # a regular file (isfile() above)
                    setattr(entry, attr, _decode(f.read()))
            except (OSError, tarfile.TarError) as exc:
                entry.error = f"{path}:{rel}: cannot read: {exc}"
            yield entry


def _zip_entries(path: str) -> Iterator[HostEntry]:
    with zipfile.ZipFile(path) as zf:
        infos = [zi for zi in zf.infolist() if not zi.is_dir()]
        jsons = {zi.filename: zi for zi in infos if zi.filename.lower().endswith(".json")}
        for zi in infos:
            rel = zi.filename
            if rel in jsons or not _is_layout_name(rel):
                continue
            host = _host_name(rel)
            entry = HostEntry(host, f"{path}:{rel}")
            try:
                entry.text = _decode(zf.read(zi))
                js = jsons.get(host + ".json")
                if js is not None:
                    entry.ndctl_json = _decode(zf.read(js))
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:
                entry.error = f"{path}:{rel}: cannot read: {exc}"
            yield entry


def _file_entry(path: str) -> Iterator[HostEntry]:
    host = _host_name(os.path.basename(path))
    entry = HostEntry(host, path)
    try:
        with open(path, "rb") as f:
            entry.text = _decode(f.read())
    except OSError as exc:
        entry.error = f"{path}: cannot read: {exc.strerror or exc}"
    js = os.path.splitext(path)[0] + ".json"
    if entry.error is None and os.path.isfile(js):
        try:
            with open(js, "rb") as f:
                entry.ndctl_json = _decode(f.read())
        except OSError as exc:
            entry.error = f"{js}: cannot read: {exc.strerror or exc}"
    yield entry


def _kind(path: str) -> str:
    if os.path.isdir(path):
        return "dir"
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if zipfile.is_zipfile(path):
        return "zip"
    try:
        if tarfile.is_tarfile(path):
            return "tar"
    except OSError:
        pass
    return "file"


def iter_inventory(paths: Sequence[str]) -> Iterator[HostEntry]:
    """The hosts of the inventories ``paths``, in order: a directory's layouts sorted by their
    path (recursively), an archive's in archive order, a single layout file as one host.

    Raises ``FileNotFoundError`` for a path that does not exist; an entry that cannot be read
    is a :class:`HostEntry` with ``error`` set.
    """
    for p in paths:
        kind = _kind(p)
        yield from {"dir": _dir_entries, "tar": _tar_entries, "zip": _zip_entries, "file": _file_entry}[kind](p)


def count_hosts(paths: Sequence[str]) -> int:
    """How many hosts :func:`iter_inventory` yields (names only: nothing is read)."""
    n = 0
    for p in paths:
        kind = _kind(p)
        if kind == "dir":
            for _dirpath, dirnames, filenames in os.walk(p):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                n += sum(1 for fn in filenames if _is_layout_name(fn))
        elif kind == "tar":
            with tarfile.open(p, "r:*") as tar:
                while True:
                    ti = tar.next()
                    if ti is None:
                        break
                    n += ti.isfile() and _is_layout_name(ti.name)
                    tar.members = []  # type: ignore[attr-defined]  # as in _tar_entries
        elif kind == "zip":
            with zipfile.ZipFile(p) as zf:
                n += sum(1 for zi in zf.infolist() if not zi.is_dir() and _is_layout_name(zi.filename))
        else:
            n += 1
    return n


# ---------------------------------------------------------------------------------------------
# one host


class _LRU(collections.OrderedDict):
    def __init__(self, limit: int):
        super().__init__()
        self.limit = limit

    def get(self, key, default=None):
        try:
            self.move_to_end(key)
            return self[key]
        except KeyError:
            return default

    def put(self, key, value):
        self[key] = value
        self.move_to_end(key)
        if len(self) > self.limit:
            self.popitem(last=False)


# per process (each Dask worker): the rows of identical hosts
_ROWS = _LRU(4096)


def clear_caches() -> None:
    """Forget the memoised rows of this process."""
    _ROWS.clear()


def _boot(text: str, kernel: str, ndctl_json: Optional[str]):
    """``(tree, machine, config)``: what :func:`sparsemem.report.boot_layout` does (parse the
    layout, boot a copy of it under ``kernel``, read its existing configuration), keeping the
    parsed ``tree`` for :func:`_reboot`."""
    from .existing import read_config  # noqa: PLC0415 -- start-up of the command line (see cli.py)
    from .machine import Machine  # noqa: PLC0415 -- start-up of the command line (see cli.py)

    tree = parse(text)
    machine = Machine(kernel, iomem=tree)
    config = read_config(tree, [(r.start, r.size) for r in machine.regions], ndctl_json,
                         block_size=machine.memory_block_size, booted=machine.iomem)
    return tree, machine, config


def _parses_to_itself(tree) -> bool:
    """Whether parsing ``tree.text()`` gives ``tree`` again: a tree that :func:`parse` built
    from ``/proc/iomem`` lines (flags and descs follow from the names and the nesting) and
    nested no deeper than ``text()`` indents (``MAX_IORES_LEVEL``).  An e820 table's tree is
    not: its flags come from the e820 types."""
    if getattr(tree, "format", None) != "iomem":
        return False
    for top in tree.root.children:      # (walk(top) counts the depth of top's children from 0)
        if top.children and any(depth + 1 > MAX_IORES_LEVEL for depth, _ in tree.walk(top)):
            return False
    return True


def _reboot(machine, kernel: str, tree=None):
    """The upgrade: ``machine.reboot(kernel=kernel)`` (api.md ``reboot``: same hardware and
    media, every labelled namespace re-probed by the new release).

    ``tree``: the unchanged parse of the layout ``machine`` booted (:func:`_boot`).  When
    parsing its text again would give it again (:func:`_parses_to_itself`), the new machine
    boots from a copy of it (``reboot(iomem=tree)``) instead of parsing the same text a second
    time: the same layout, so the same machine (``iomem=`` only skips re-carving regions that
    :func:`sparsemem.nvdimm.bus.carve_regions` set, which a fleet host never has)."""
    if tree is not None and machine.nvdimm_regions is None and _parses_to_itself(tree):
        return machine.reboot(tree, kernel=kernel)
    return machine.reboot(kernel=kernel)


def _hot_ram(machine) -> int:
    """vmemmap bytes in System RAM beyond the boot memmap: the PMDs, base pages and PTE tables
    that hot-add populated from RAM (MN §7.4; the boot memmap is boot PMDs only)."""
    st = machine.sections.vmemmap_stats()
    return st["memmap_ram_bytes"] - st["boot_pmds"] * PMD_SIZE


def _probe_memmap_ram(machine, probed: Sequence) -> dict:
    """The System RAM memmap each enabled namespace's probe took during a reboot, by name.

    Enabling only ever populates (MN §7.4 "add": nothing is freed, boot PMDs are untouched),
    so what a probe took is what its ``devm_memremap_pages`` populated, which the pgmap
    records (:attr:`sparsemem.memremap.DevPagemap.memmap_ram`); a namespace without one (raw,
    sector) took nothing.  These are the bytes that disabling the enabled namespaces in
    reverse probe order (last in, first out) gives back, measured as the RAM populated beyond
    the boot memmap (:func:`_hot_ram`; a boot PMD that a v5.3-v5.8 removal frees, MN §7.4
    "remove", is not counted): tests/test_fleet.py checks that both agree, so no section has
    to be removed here.  ``machine`` is unused (kept for callers).
    """
    return {ns.dev: ns.pgmap.memmap_ram if ns.pgmap is not None else 0 for ns in probed if ns.enabled}


def _ns_name(nsd: Optional[dict]) -> Optional[str]:
    """The name in a report's namespace dict (``dev``; ``name`` in report version 1)."""
    if not nsd:
        return None
    return nsd.get("dev") or nsd.get("name")


def _upgrade(text: str, ndctl_json: Optional[str], k1: str, k2: str, filename: str) -> list[tuple]:
    """The rows of one host without the ``host`` column (see docs/fleet.md)."""
    # the existing configuration (the dump's namespaces, dax devices and kmem memory, and the
    # ndctl JSON) adopted, then the default namespace on every other region: what report does
    tree, m, config = _boot(text, k1, ndctl_json)
    if not m.iomem.root.children:
        raise ValueError(f"{filename}: no /proc/iomem or e820 lines in this file")
    era1 = kernel_model(k1).era
    attempts = [(a.region, a.mode, a.result, a.namespace) for a in populate(m, config, k1, era1)[0]]
    if not attempts:
        return []
    attempts.sort(key=lambda a: a[0])    # stable: creation order within a region

    m2 = _reboot(m, k2, tree)
    probed = list(m2.nvdimm.namespaces) if m2.nvdimm is not None else []
    # (enabled, usable, error, mode) of every namespace K2 probed, by name
    after = {ns.dev: (ns.enabled, ns.size if ns.enabled else 0, ns.error, ns.mode) for ns in probed}
    memmap_to = _probe_memmap_ram(m2, probed)

    rows = []
    for ri, mode, res, ns in attempts:
        dev = ns.dev if ns is not None and res["result"] == "ok" else None
        enabled_from = bool(ns is not None and res["result"] == "ok" and ns.enabled)
        enabled_to, usable_to, err2, mode_to = after.get(dev, (False, 0, None, None))
        rows.append((
            f"region{ri}",
            dev if dev is not None else _ns_name(res["namespace"]),
            mode,
            res["capacity"] if enabled_from else 0,
            usable_to,
            enabled_from,
            enabled_to,
            errno_name(err2[0]) if err2 else None,
            err2[1] if err2 else None,
            res["memmap"]["ram"],
            memmap_to.get(dev, 0),
            None if res["result"] == "ok" else res["result"],
            res["message"],
            mode_to,
            None,
        ))
    return rows


class _HostGarbage:
    """The cyclic collector around one host's simulation: paused while the host runs, then
    its youngest generation collected once.

    A host's two machines are reference cycles (resource parent links, machine <-> bus <->
    regions <-> namespaces) that all become garbage together when its rows are made.  Left
    to itself the collector runs every few hundred allocations in the middle of a host,
    finds most of the host still alive and promotes it to the older generations, which it
    then has to traverse again; one collection of the youngest generation after the host
    frees it all in one pass (about a tenth of the time of a host).  Only when the
    collector was enabled.  Hosts that run at the same time (threads of a Dask worker) share
    one pause, which ends when the last of them does; until then each host that ends collects
    as the paused collector would have at that point: the youngest generation, and an older
    one when its count has reached the collector's threshold for it."""

    def __init__(self):
        self._lock = threading.Lock()
        self._depth = 0
        self._paused = False

    def __enter__(self):
        with self._lock:
            if self._depth == 0:
                self._paused = gc.isenabled()
                if self._paused:
                    gc.disable()
            self._depth += 1

    def __exit__(self, *exc):
        with self._lock:
            self._depth -= 1
            paused, last = self._paused, self._depth == 0
            if paused and last:
                self._paused = False
                gc.enable()
        if paused:
            gc.collect(0)
            if not last:        # still paused for the other hosts: the older generations too
                counts, limits = gc.get_count(), gc.get_threshold()
                for gen in (2, 1):
                    if counts[gen] > limits[gen]:
                        gc.collect(gen)
                        break
        return False


_HOST_GC = _HostGarbage()


def upgrade_host(host: str, text: Optional[str], k1: str, k2: str, ndctl_json: Optional[str] = None,
                 *, path: Optional[str] = None, error: Optional[str] = None) -> list[tuple]:
    """The rows (tuples in :data:`COLUMNS` order) of one host upgraded from ``k1`` to ``k2``.

    Never raises for the host's data: a layout or JSON that cannot be read, parsed or booted
    gives one row with ``error`` set (the message names ``path``, default ``host``).
    """
    path = path or host
    if error is None and text is None:
        error = f"{path}: no layout text"
    if error is None and text is not None:   # (text is None has set error)
        key = (text, ndctl_json, k1, k2)
        rows = _ROWS.get(key)
        if rows is None:
            try:
                with _HOST_GC:
                    rows = _upgrade(text, ndctl_json, k1, k2, path)
            except (ValueError, TypeError, OSError, KernelBug) as exc:   # KernelError is an OSError
                msg = " ".join(str(exc).split())
                error = msg if path in msg else f"{path}: {msg}"
            except Exception as exc:  # noqa: BLE001 - one host never fails the fleet
                error = f"{path}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}"
            else:
                _ROWS.put(key, rows)
    if error is not None:
        return [(host,) + (None,) * (len(COLUMNS) - 2) + (error,)]
    return [(host,) + r for r in rows]


def upgrade_batch(batch: Sequence[tuple], k1: str, k2: str) -> list[list[tuple]]:
    """One Dask task: ``batch`` is ``[(host, path, text, ndctl_json, error), ...]``; returns
    each host's rows, in order."""
    return [upgrade_host(host, text, k1, k2, js, path=path, error=err) for host, path, text, js, err in batch]


# ---------------------------------------------------------------------------------------------
# summary


@dataclass
class FleetSummary:
    """What ``fleet`` prints after the table: totals are sums over the rows."""

    k1: str
    k2: str
    hosts: int = 0
    unreadable: int = 0
    without_pmem: int = 0
    namespaces: int = 0
    enabled_from: int = 0
    enabled_to: int = 0
    stop_enabling: int = 0
    start_enabling: int = 0
    hosts_losing_namespaces: int = 0
    usable_from: int = 0
    usable_to: int = 0
    memmap_ram_from: int = 0
    memmap_ram_to: int = 0
    stop_by_errno: collections.Counter = field(default_factory=collections.Counter)
    failed_from_by_errno: collections.Counter = field(default_factory=collections.Counter)
    host_change: array.array = field(default_factory=lambda: array.array("q"))
    output: Optional[str] = None

    def add_host(self, rows: Sequence[tuple]) -> None:
        self.hosts += 1
        if len(rows) == 1 and rows[0][-1] is not None:
            self.unreadable += 1
            return
        if not rows:
            self.without_pmem += 1
            self.host_change.append(0)
            return
        change, lost = 0, False
        for r in rows:
            (_h, _r, _n, _m, u1, u2, e1, e2, _e, _d, mm1, mm2, f1, _df, _mt, _err) = r
            self.namespaces += 1
            self.usable_from += u1
            self.usable_to += u2
            self.memmap_ram_from += mm1
            self.memmap_ram_to += mm2
            change += u2 - u1
            self.enabled_from += e1
            self.enabled_to += e2
            if e1 and not e2:
                self.stop_enabling += 1
                self.stop_by_errno[_e or "disabled"] += 1
                lost = True
            elif e2 and not e1:
                self.start_enabling += 1
            if f1 is not None:
                self.failed_from_by_errno[f1] += 1
        self.hosts_losing_namespaces += lost
        self.host_change.append(change)

    @property
    def change(self) -> int:
        return self.usable_to - self.usable_from

    def percentiles(self, qs=(0, 1, 5, 25, 50, 75, 95, 99, 100)) -> list[tuple[int, int]]:
        """Per-host capacity change (bytes) at each percentile (nearest rank), over the hosts
        that were read."""
        data = sorted(self.host_change)
        if not data:
            return []
        n = len(data)
        out = []
        for q in qs:
            k = max(0, min(n - 1, -(-q * n // 100) - 1)) if q else 0
            out.append((q, data[k]))
        return out


def _signed(n: int) -> str:
    return ("+" if n >= 0 else "") + format_size(n)


def format_summary(s: FleetSummary) -> str:
    """The summary ``fleet`` prints on stdout."""
    lines = [f"fleet {s.k1} -> {s.k2}: {s.hosts:,} hosts"
             + (f" ({s.unreadable:,} unreadable" + (f", {s.without_pmem:,} without pmem)" if s.without_pmem else ")")
                if s.unreadable else (f" ({s.without_pmem:,} without pmem)" if s.without_pmem else ""))
             + f", {s.namespaces:,} namespaces"]
    lines.append(f"  enabled:        {s.enabled_from:,} under {s.k1}, {s.enabled_to:,} under {s.k2}")
    stop = f"  stop enabling:  {s.stop_enabling:,} namespaces on {s.hosts_losing_namespaces:,} hosts"
    if s.stop_by_errno:
        stop += " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(s.stop_by_errno.items(),
                                                                 key=lambda kv: (-kv[1], kv[0]))) + ")"
    lines.append(stop)
    if s.start_enabling:
        lines.append(f"  start enabling: {s.start_enabling:,} namespaces")
    if s.failed_from_by_errno:
        lines.append(f"  refused under {s.k1}: " + ", ".join(
            f"{k} {v:,}" for k, v in sorted(s.failed_from_by_errno.items(), key=lambda kv: (-kv[1], kv[0]))))
    lines.append(f"  usable:         {s.k1} {format_size(s.usable_from)} ({s.usable_from:,} bytes), "
                 f"{s.k2} {format_size(s.usable_to)} ({s.usable_to:,} bytes)")
    lines.append(f"  change:         {_signed(s.change)} ({s.change:+,} bytes)")
    pct = s.percentiles()
    if pct:
        lose = sum(1 for v in s.host_change if v < 0)
        gain = sum(1 for v in s.host_change if v > 0)
        lines.append(f"  hosts:          {lose:,} lose capacity, {gain:,} gain, "
                     f"{len(s.host_change) - lose - gain:,} unchanged")
        lines.append("  per host:       " + ", ".join(
            ("min" if q == 0 else "max" if q == 100 else f"p{q}") + f" {_signed(v)}" for q, v in pct))
    lines.append(f"  memmap in RAM:  {s.k1} {format_size(s.memmap_ram_from)}, {s.k2} {format_size(s.memmap_ram_to)}")
    if s.output:
        lines.append(f"rows written to {s.output}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# output


class _CsvSink:
    def __init__(self, path: str):
        self.f = open(path, "w", newline="", encoding="utf-8")
        self.w = csv.writer(self.f)
        self.w.writerow(COLUMNS)

    def write(self, rows: Sequence[tuple]) -> None:
        self.w.writerows(["" if v is None else ("true" if v is True else "false" if v is False else v)
                          for v in r] for r in rows)

    def close(self) -> None:
        self.f.close()


def _pyarrow():
    """``pyarrow`` with ``pyarrow.parquet`` loaded (the optional extra, for Parquet output)."""
    import pyarrow.parquet  # noqa: PLC0415 -- optional extra 'fleet'

    return pyarrow


def parquet_schema():
    """The pyarrow schema of the Parquet output (column names = :data:`COLUMNS`)."""
    pa = _pyarrow()
    types = {c: pa.string() for c in COLUMNS}
    types.update({c: pa.int64() for c in _INT_COLUMNS})
    types.update({c: pa.bool_() for c in _BOOL_COLUMNS})
    return pa.schema([(c, types[c]) for c in COLUMNS])


class _ParquetSink:
    ROW_GROUP = 65536

    def __init__(self, path: str):
        self.schema = parquet_schema()
        self.writer = _pyarrow().parquet.ParquetWriter(path, self.schema)
        self.buf: list[tuple] = []

    def write(self, rows: Sequence[tuple]) -> None:
        self.buf.extend(rows)
        if len(self.buf) >= self.ROW_GROUP:
            self._flush()

    def _flush(self) -> None:
        pa = _pyarrow()
        if not self.buf:
            return
        cols = list(zip(*self.buf))
        self.writer.write_table(pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, self.schema)], schema=self.schema))
        self.buf = []

    def close(self) -> None:
        self._flush()
        self.writer.close()


class _NullSink:
    def write(self, rows) -> None:
        pass

    def close(self) -> None:
        pass


def _sink(path: Optional[str]):
    if path is None:
        return _NullSink()
    low = path.lower()
    if low.endswith((".parquet", ".pq")):
        return _ParquetSink(path)
    return _CsvSink(path)


# ---------------------------------------------------------------------------------------------
# the run


def _batches(entries: Iterable[HostEntry], size: int) -> Iterator[list[tuple]]:
    batch = []
    for e in entries:
        batch.append((e.host, e.path, e.text, e.ndctl_json, e.error))
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def default_workers() -> int:
    """One worker process per CPU this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _progress(total: Optional[int], enabled: bool):
    from tqdm import tqdm  # noqa: PLC0415 -- start-up of the command line (20 ms, see cli.py)

    return tqdm(total=total, unit="host", disable=not enabled, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1)


def run_fleet(inventories: Sequence[str], k1: str, k2: str, *, output: Optional[str] = None,
              workers: Optional[int] = None, scheduler: Optional[str] = None,
              batch_size: int = DEFAULT_BATCH_SIZE, max_in_flight: Optional[int] = None,
              progress: Optional[bool] = None, client=None) -> FleetSummary:
    """Upgrade every host of ``inventories`` from ``k1`` to ``k2`` on Dask; write the rows to
    ``output`` (``.csv``, or ``.parquet``) in input order; return the summary.

    ``scheduler``: the address of a running Dask scheduler (its workers are used as they are);
    otherwise a local cluster of ``workers`` processes (default: one per CPU), one thread each.
    ``client``: an existing ``distributed.Client`` (then neither is used).  At most
    ``max_in_flight`` batches (default 4 per worker thread) are submitted at a time.
    """
    kernel_model(k1)
    kernel_model(k2)   # ValueError for a malformed release, before any work
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, not {batch_size}")
    require_fleet_extra(parquet=output is not None and output.lower().endswith((".parquet", ".pq")))
    from distributed import Client, LocalCluster  # noqa: PLC0415 -- optional extra 'fleet'

    show = sys.stderr.isatty() if progress is None else progress
    total = count_hosts(inventories) if show else None     # an extra pass over the names only
    summary = FleetSummary(k1, k2, output=output)
    cluster = own_client = None
    if client is None:
        if scheduler:
            client = own_client = Client(scheduler, timeout="30s")
        else:
            n = workers or default_workers()
            cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                   dashboard_address=":0", silence_logs=logging.ERROR)
            client = own_client = Client(cluster)
    try:
        nthreads = sum(client.nthreads().values()) or 1
        window = max_in_flight or max(2, 4 * nthreads)
        sink = _sink(output)
        bar = _progress(total, show)
        try:
            pending: collections.deque = collections.deque()
            for batch in _batches(iter_inventory(inventories), batch_size):
                pending.append(client.submit(upgrade_batch, batch, k1, k2, pure=False))
                while len(pending) >= window:
                    _drain_one(pending, sink, summary, bar)
            while pending:
                _drain_one(pending, sink, summary, bar)
        finally:
            bar.close()
            sink.close()
    finally:
        if own_client is not None:
            own_client.close()
        if cluster is not None:
            cluster.close()
    return summary


def _drain_one(pending, sink, summary: FleetSummary, bar) -> None:
    fut = pending.popleft()
    per_host = fut.result()
    fut.release()
    for rows in per_host:
        sink.write(rows)
        summary.add_host(rows)
    bar.update(len(per_host))


def run_local(inventories: Sequence[str], k1: str, k2: str, *, output: Optional[str] = None) -> FleetSummary:
    """The same table and summary in this process, without Dask (for tests and small
    inventories)."""
    summary = FleetSummary(k1, k2, output=output)
    sink = _sink(output)
    try:
        for batch in _batches(iter_inventory(inventories), DEFAULT_BATCH_SIZE):
            for rows in upgrade_batch(batch, k1, k2):
                sink.write(rows)
                summary.add_host(rows)
    finally:
        sink.close()
    return summary


# ---------------------------------------------------------------------------------------------
# plot


def plot_fleet(summary: FleetSummary, path: str) -> None:
    """``--plot``: the distribution of the per-host capacity change, and the namespaces that
    stop enabling (and those K1 already refused) by errno.  Needs matplotlib."""
    from .plot import require_matplotlib  # noqa: PLC0415 -- start-up (6 ms), only for --plot

    plt = require_matplotlib().pyplot  # optional extra 'plot'

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.6), gridspec_kw={"width_ratios": [3, 2]})
    mib = [v / (1 << 20) for v in summary.host_change]
    if mib:
        lo, hi = min(mib), max(mib)
        if lo == hi:
            lo, hi = lo - 1, hi + 1
        ax1.hist(mib, bins=60, range=(lo, hi), color="#1f5fa8")
        ax1.axvline(0, color="#555555", lw=0.8, ls="--")
        ax1.set_yscale("log")
    ax1.set_xlabel(f"usable capacity change per host, {summary.k1} \u2192 {summary.k2} (MiB)")
    ax1.set_ylabel("hosts")
    same = sum(1 for v in summary.host_change if v == 0)
    ax1.set_title(f"{len(summary.host_change):,} hosts read: {same:,} unchanged, "
                  f"total {_signed(summary.change)}")

    keys = sorted(set(summary.stop_by_errno) | set(summary.failed_from_by_errno),
                  key=lambda k: -(summary.stop_by_errno[k] + summary.failed_from_by_errno[k]))
    if keys:
        ys = range(len(keys))
        stop = [summary.stop_by_errno[k] for k in keys]
        ref = [summary.failed_from_by_errno[k] for k in keys]
        ax2.barh([y - 0.2 for y in ys], stop, height=0.4, color="#e0301e", label=f"stop enabling under {summary.k2}")
        ax2.barh([y + 0.2 for y in ys], ref, height=0.4, color="#8c8c8c", label=f"refused under {summary.k1}")
        ax2.set_yticks(list(ys))
        ax2.set_yticklabels(keys)
        ax2.invert_yaxis()
        ax2.set_xlim(0, max(stop + ref) * 1.18)     # room for the count labels
        ax2.legend(loc="lower right", fontsize=8)
        for y, a, b in zip(ys, stop, ref):
            for off, v in ((-0.2, a), (0.2, b)):
                if v:
                    ax2.text(v, y + off, f" {v:,}", va="center", fontsize=8)
    else:
        ax2.text(0.5, 0.5, "no namespace fails", ha="center", va="center", transform=ax2.transAxes)
        ax2.set_xticks([])
        ax2.set_yticks([])
    ax2.set_xlabel("namespaces")
    ax2.set_title(f"failures by errno ({summary.stop_enabling:,} stop enabling)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
