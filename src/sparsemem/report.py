"""``sparsemem report``: what the default fsdax namespace gets on every pmem region, per kernel.

The detail: docs/report.md.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Optional, Sequence

from . import hints, inputs, iomem
from .errors import KernelBug, KernelError, errno_name
from .explain import CHECK_SCHEMA, OBSERVATION_SCHEMA, check_findings, compare_observations, lost_capacity
from .hints import HINT_SCHEMA
from .kernel import kernel_model, report_kernels, row_releases
from .layout import parse

if TYPE_CHECKING:
    from .nvdimm.namespace import Namespace

__all__ = [
    "REPORT_VERSION",
    "REPORT_SCHEMA",
    "DEFAULT_KERNELS",
    "SECTION_SIZE",
    "SUBSECTION_SIZE",
    "Layout",
    "bundled_layouts",
    "load_layout",
    "build_report",
    "report_layout",
    "format_size",
    "owner_intervals",
    "subsection_owners",
]

REPORT_VERSION = 2
#: 5.2, 5.3 and the newest release the kernel table models (:func:`sparsemem.kernel.report_kernels`)
DEFAULT_KERNELS = report_kernels()
SECTION_SIZE = 1 << 27
SUBSECTION_SIZE = 1 << 21
SUBSECTIONS = SECTION_SIZE // SUBSECTION_SIZE

_DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")

# ---------------------------------------------------------------------------------------------
# the JSON contract

_INT = {"type": "integer"}
_STR = {"type": "string"}
_NSTR = {"type": ["string", "null"]}


def _obj(props: dict, required: Optional[Iterable[str]] = None) -> dict:
    return {"type": "object", "required": list(props if required is None else required),
            "properties": props, "additionalProperties": False}


_NAMESPACE_SCHEMA = _obj({
    "dev": _STR, "start": _INT, "end": _INT, "raw_size": _INT, "mode": _STR, "map": _NSTR,
    "align": _INT, "start_pad": _INT, "end_trunc": _INT, "dataoff": _INT, "npfns": _INT,
    "size": _INT, "enabled": {"type": "boolean"}, "blockdev": _STR, "chardev": _STR,
    "adopted": {"type": "boolean"}, "kmem": _obj({"start": _INT, "end": _INT, "size": _INT,
                                                  "lost_alignment": _INT, "blocks": _INT, "online": _INT}),
}, required=("dev", "start", "end", "raw_size", "mode", "map", "align", "start_pad", "end_trunc",
             "dataoff", "npfns", "size", "enabled"))

#: device memory of the layout hot-added as System RAM (kmem) outside a namespace (K §9)
_KMEM_SCHEMA = _obj({
    "kernel": _STR, "dev": _NSTR, "parent": _STR, "start": _INT, "end": _INT, "size": _INT,
    "lost_alignment": _INT, "blocks": _INT, "online": _INT, "result": _STR,
    "errno": {"type": ["integer", "null"]}, "message": _NSTR,
    "memmap": _obj({"pmem": _INT, "ram": _INT}), "dmesg": {"type": "array", "items": _STR},
})

#: every dax device of the layout per kernel, and what it gives as System RAM (K §9): its mode
#: after the existing configuration was adopted (``mode_before``), then ``daxctl
#: reconfigure-device --mode=system-ram --force`` when it was not in system-ram mode
_DAX_SCHEMA = _obj({
    "kernel": _STR, "dev": _STR, "kind": _STR, "start": _INT, "end": _INT, "size": _INT,
    "target_node": _INT, "mode_before": _STR, "result": _STR, "errno": {"type": ["integer", "null"]},
    "message": _NSTR, "kmem_bytes": _INT, "lost_alignment": _INT, "lost_metadata": _INT,
    "memmap_dram": _INT, "memmap_self": _INT, "blocks": _INT,
    "zones": {"type": "object", "additionalProperties": _INT},
})

_RESULT_SCHEMA = _obj({
    "kernel": _STR,
    "era": _STR,
    "result": _STR,
    "errno": {"type": ["integer", "null"]},
    "message": _NSTR,
    "detail": _NSTR,
    "namespace": {"type": ["object", "null"], **{k: v for k, v in _NAMESPACE_SCHEMA.items() if k != "type"}},
    "capacity": _INT,
    "lost": _obj({"total": _INT, "padding": _INT, "metadata": _INT, "unallocated": _INT, "other": _INT}),
    "memmap": _obj({"pmem": _INT, "ram": _INT}),
    "shared_sections": {"type": "array", "items": _obj({
        "section": _INT, "start": _INT, "owners": {"type": "array", "items": _STR}})},
    "dmesg": {"type": "array", "items": _STR},
    "namespaces": {"type": "array", "items": _NAMESPACE_SCHEMA},
    "kmem": {"type": "array", "items": _KMEM_SCHEMA},
    "existing": {"type": "boolean"},
    "hints": {"type": "array", "items": HINT_SCHEMA},
})

_NS_STATE = {"enabled": {"type": "boolean"}, "usable": _INT, "metadata": _INT, "padding": _INT,
             "memmap": _obj({"pmem": _INT, "ram": _INT})}
#: ``report --upgrade`` (docs/report.md "Upgrades"): the namespaces made under the first kernel,
#: booted under each later one and then rolled back to the first
_UPGRADE_SCHEMA = _obj({
    "from": _STR,
    "to": {"type": "array", "items": _STR},
    "namespaces": {"type": "array", "items": _obj({
        "region": _INT, "dev": _STR, "mode": _STR, "created": _obj(_NS_STATE),
        "booted": {"type": "array", "items": _obj({
            "kernel": _STR, "result": _STR, "errno": {"type": ["integer", "null"]}, "message": _NSTR,
            "mode": _NSTR, **_NS_STATE, "rollback": {"type": "boolean"}})},
    })},
})
#: every key of a layout but the optional ``upgrade`` (present with ``--upgrade`` only)
_LAYOUT_REQUIRED = ("file", "bundled", "source", "input", "regions", "totals", "capacity_difference",
                    "observations", "check", "existing", "kmem", "dax")

#: The ``--json`` contract (version 2) as a JSON-schema-like dict.
REPORT_SCHEMA: dict = _obj({
    "version": {"type": "integer", "enum": [REPORT_VERSION]},
    "kernels": {"type": "array", "items": _obj({"version": _STR, "era": _STR})},
    "layouts": {"type": "array", "items": _obj({
        "file": _STR,
        "bundled": {"type": "boolean"},
        "source": _NSTR,
        "input": _obj({"format": _STR, "notes": {"type": "array", "items": _STR}}),
        "regions": {"type": "array", "items": _obj({
            "index": _INT, "dev": _STR, "start": _INT, "end": _INT, "size": _INT,
            "first_section": _INT, "last_section": _INT,
            "results": {"type": "array", "items": _RESULT_SCHEMA},
        })},
        "totals": {"type": "array", "items": _obj({
            "kernel": _STR, "capacity": _INT, "regions": _INT, "failed": _INT})},
        "capacity_difference": {"type": "array", "items": _obj({
            "kernel": _STR, "versus": _STR, "bytes": _INT})},
        "observations": {"type": "array", "items": OBSERVATION_SCHEMA},
        "check": {"type": "array", "items": CHECK_SCHEMA},
        "existing": _obj({"namespaces": {"type": "array", "items": _obj({
            "dev": _STR, "region": _INT, "mode": _STR, "source": _STR, "kmem": {"type": "boolean"}})},
            "ndctl": {"type": "boolean"}, "notes": {"type": "array", "items": _STR}}),
        "kmem": {"type": "array", "items": _KMEM_SCHEMA},
        "dax": {"type": "array", "items": _DAX_SCHEMA},
        "upgrade": _UPGRADE_SCHEMA,
    }, required=_LAYOUT_REQUIRED)},
})


# ---------------------------------------------------------------------------------------------
# layouts


@dataclass
class Layout:
    """One layout file: its text, where it came from, and the parsed tree (for error checks)."""

    file: str
    text: str
    bundled: bool = False
    source: Optional[str] = None
    observations: list = field(default_factory=list)
    #: what :func:`sparsemem.inputs.normalise` made of the file (form, notes), or None
    input: Optional[inputs.LayoutText] = None
    #: ``ndctl list -N`` / ``daxctl list`` JSON text for the existing configuration, or None
    ndctl: Optional[str] = None


def bundled_layouts() -> list[str]:
    """Paths of the layout files shipped in ``sparsemem/data`` (the default of ``report``)."""
    if not os.path.isdir(_DATA_DIR):
        return []
    return sorted(os.path.join(_DATA_DIR, f) for f in os.listdir(_DATA_DIR) if f.endswith(".txt"))


def load_layout(path: str, bundled: bool = False, *, text: Optional[str] = None,
                name: Optional[str] = None) -> Layout:
    """Read and parse ``path`` (``-``: standard input), or ``text`` when given (read from
    ``path`` already), in any form :mod:`sparsemem.inputs` accepts (/proc/iomem, dmesg,
    journalctl -k, /sys/firmware/memmap, pasted with prompts and fences).  ``name`` is what
    messages and the report call it (default: ``path``, ``<stdin>`` for ``-``).

    Raises ``OSError`` when the file cannot be read and ``ValueError`` (naming the file and the
    line) when it is not a layout.
    """
    name = name or ("<stdin>" if path == "-" else path)
    if text is None:
        text = inputs.read_layout_file(path)
    norm = inputs.normalise(text, filename=name)
    parsed = iomem.parse(norm.text, filename=name)
    if parsed.format is None:
        raise ValueError(f"{name}: no /proc/iomem, e820 or /sys/firmware/memmap lines in this file "
                         f"({inputs.ACCEPTED_FORMS})")
    return Layout(file=name, text=norm.text, bundled=bundled, source=parsed.source,
                  observations=list(parsed.observations), input=norm)


# ---------------------------------------------------------------------------------------------
# small helpers


def format_size(n: int) -> str:
    """``268435456 -> '256 MiB'``, ``266287972352 -> '248 GiB'``, ``1536 -> '1.50 KiB'``.

    Binary units; two decimals unless the value is an exact multiple of the unit.
    """
    sign = "-" if n < 0 else ""
    n = abs(int(n))
    units = (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10), ("B", 0))
    for i, (unit, shift) in enumerate(units):
        if n >= 1 << shift or not shift:
            if n % (1 << shift) == 0:
                return f"{sign}{n >> shift} {unit}"
            # below 10 units, an exact value in the next unit reads better than "1.00 MiB"
            if n < 10 << shift:
                small_unit, small = units[i + 1]
                if n % (1 << small) == 0:
                    return f"{sign}{n >> small} {small_unit}"
            return f"{sign}{n / (1 << shift):.2f} {unit}"
    return f"{sign}{n} B"


def _stats(machine) -> dict:
    """``vmemmap_stats()`` of the machine's section table with the two numbers the report needs."""
    st = machine.sections.vmemmap_stats()
    return {"pmem": st["memmap_altmap_bytes"], "ram": st["memmap_ram_bytes"]}


_INFORMATIONAL = ("alignment collision", "detected capacity change", "number of pfns truncated")


def _strip_prefix(line: str) -> str:
    """Drop a ``[  283.340867] `` timestamp."""
    s = line.strip()
    if s.startswith("[") and "]" in s:
        head, _, rest = s.partition("]")
        if head[1:].strip().replace(".", "").isdigit():
            return rest.strip()
    return s


def _failure_line(lines: Sequence[str]) -> Optional[str]:
    """The first non-informational kernel log line of a failed attempt (a ``WARNING:`` line
    only when nothing more specific was logged)."""
    warning = None
    for raw in lines:
        if not raw or raw[:1].isspace():
            continue  # backtrace continuation
        line = _strip_prefix(raw)
        low = line.lower()
        if low.startswith("warning:") and warning is None:
            warning = line
        if not line or "cut here" in low or low.startswith(("warning:", "call trace", "---[", "modules linked", "cpu:",
                                      "hardware name", "rip:", "code:", "rsp:", "rax:", "rdx:",
                                      "rbp:", "r10:", "r13:", "fs:", "cs:", "cr2:")):
            continue
        if any(k in low for k in _INFORMATIONAL):
            continue
        return line
    return warning


def _ns_dict(ns) -> dict:
    start, raw = ns.start, ns.raw_size
    return {
        "dev": ns.dev,
        "start": start,
        "end": start + raw - 1,
        "raw_size": raw,
        "mode": ns.mode,
        "map": ns.map,
        "align": ns.align or 0,  # None for raw/sector namespaces
        "start_pad": ns.start_pad,
        "end_trunc": ns.end_trunc,
        "dataoff": ns.dataoff,
        "npfns": ns.npfns,
        "size": ns.size,
        "enabled": ns.enabled,
        # ndctl list -N names the device node: chardev for devdax, blockdev otherwise
        **({"chardev": ns.chardev} if ns.mode == "devdax" else {"blockdev": ns.blockdev}),
    }


def _system_ram(machine) -> list[tuple[int, int]]:
    """Top-level System RAM ranges ``[start, end)`` of the booted machine."""
    out = []
    for res in machine.iomem.root.children:
        if res.name.startswith("System RAM"):
            out.append((res.start, res.end + 1))
    return out


# ---------------------------------------------------------------------------------------------
# owners of the physical address space


def owner_intervals(ram: Sequence[tuple[int, int]], regions: Sequence[dict]) -> list[tuple[int, int, str, str]]:
    """Half-open intervals ``(start, end, kind, owner)`` covering RAM and every region.

    ``kind`` is one of ``"ram"``, ``"memmap"`` (a namespace's ``dataoff`` area), ``"data"``,
    ``"padding"`` (``start_pad``/``end_trunc``), ``"free"`` (region space no namespace covers).
    ``owner`` is ``"System RAM"``, the namespace name (``dev``), or the region name for free
    space.  ``regions`` are dicts with ``name``, ``start``, ``end`` (inclusive) and
    ``namespaces``: a list of namespace dicts as in the report.
    """
    out = [(s, e, "ram", "System RAM") for s, e in ram]
    for reg in regions:
        r0, r1 = reg["start"], reg["end"] + 1
        cursor = r0
        for ns in sorted(reg.get("namespaces", ()), key=lambda d: d["start"]):
            s, e = ns["start"], ns["start"] + ns["raw_size"]
            if s > cursor:
                out.append((cursor, s, "free", reg["name"]))
            base = s + ns["start_pad"]
            mapped_end = e - ns["end_trunc"]
            data0 = min(base + ns["dataoff"], mapped_end)
            if ns["start_pad"]:
                out.append((s, base, "padding", ns["dev"]))
            if data0 > base:
                out.append((base, data0, "memmap", ns["dev"]))
            if mapped_end > data0:
                out.append((data0, mapped_end, "data", ns["dev"]))
            if ns["end_trunc"]:
                out.append((mapped_end, e, "padding", ns["dev"]))
            cursor = max(cursor, e)
        if cursor < r1:
            out.append((cursor, r1, "free", reg["name"]))
    out.sort()
    return out


def _owners_in(intervals, lo: int, hi: int) -> list[str]:
    owners = []
    for s, e, kind, owner in intervals:
        if s < hi and e > lo and kind != "padding" and owner not in owners:
            owners.append(owner)
    return owners


def shared_sections(intervals, lo: int, hi: int) -> list[dict]:
    """Sections overlapping ``[lo, hi)`` with more than one owner (padding owns nothing)."""
    candidates = set()
    for s, e, _kind, _owner in intervals:
        if e <= lo or s >= hi:
            continue
        for addr in (max(s, lo), min(e, hi) - 1):
            candidates.add(addr // SECTION_SIZE)
    out = []
    for nr in sorted(candidates):
        a = nr * SECTION_SIZE
        owners = _owners_in(intervals, a, a + SECTION_SIZE)
        if len(owners) > 1:
            out.append({"section": nr, "start": a, "owners": owners})
    return out


def subsection_owners(intervals, section: int) -> list[tuple[str, str, bool]]:
    """For each of the 64 sub-sections of ``section``: ``(kind, owner, mixed)`` of the owner
    with most bytes in it (``("hole", "", False)`` when nothing is there); ``mixed`` is true
    when more than one kind/owner has bytes in that sub-section."""
    base = section * SECTION_SIZE
    rel = [iv for iv in intervals if iv[0] < base + SECTION_SIZE and iv[1] > base]
    out = []
    for i in range(SUBSECTIONS):
        lo, hi = base + i * SUBSECTION_SIZE, base + (i + 1) * SUBSECTION_SIZE
        best, best_bytes, n = ("hole", ""), 0, 0
        covered = 0
        for s, e, kind, owner in rel:
            b = min(e, hi) - max(s, lo)
            if b > 0:
                n += 1
                covered += b
                if b > best_bytes:
                    best, best_bytes = (kind, owner), b
        if covered < SUBSECTION_SIZE and n:
            n += 1  # a hole shares it
        out.append((best[0], best[1], n > 1))
    return out


# ---------------------------------------------------------------------------------------------
# the computation


# start-up: ``sparsemem --help`` loads this module for its defaults; the simulator (machine,
# and existing, which stands on it) is not needed until a layout boots (30 ms, see cli.py)
def _machine():
    """:class:`sparsemem.machine.Machine`, imported on first use."""
    from .machine import Machine  # noqa: PLC0415 -- start-up of the command line

    return Machine


def _dax():
    """:mod:`sparsemem.dax`, imported on first use."""
    from . import dax  # noqa: PLC0415 -- start-up of the command line

    return dax


def _existing():
    """:mod:`sparsemem.existing`, imported on first use."""
    from . import existing  # noqa: PLC0415 -- start-up of the command line

    return existing


def _boot(text: str, kernel: str):
    return _machine().from_iomem(text, kernel=kernel)


def create_measured(machine, region, kernel: str, era: str,
                    **request) -> tuple[dict, Optional[Namespace], Optional[BaseException]]:
    """Create one namespace on ``region`` of the booted ``machine`` and measure it as the report does.

    ``request`` holds the ``create_namespace`` arguments (none: the default namespace).
    Returns ``(result, namespace, error)``: ``result`` is one entry of a region's ``results``
    (see docs/report.md; ``shared_sections`` left empty, since it needs every region),
    ``namespace`` the created namespace (or what a failed attempt left behind, else ``None``)
    and ``error`` the exception of a failed attempt (else ``None``).  ``sparsemem fleet``
    builds its rows from the same numbers.
    """
    return _measure(machine, region, kernel, era, lambda: region.create_namespace(**request))


def adopt_measured(machine, item, kernel: str,
                   era: str) -> tuple[dict, Optional[Namespace], Optional[BaseException]]:
    """:func:`create_measured` for one namespace of an existing configuration
    (:func:`sparsemem.existing.adopt_namespace`): the same result dict, its namespace dict with
    ``"adopted": true`` and, for a devdax namespace bound to kmem, ``"kmem"``."""
    existing = _existing()

    region = machine.regions[item.region]
    res, ns, err = _measure(machine, region, kernel, era, lambda: existing.adopt_namespace(machine, item))
    if res["namespace"] is not None:
        res["namespace"]["adopted"] = True
        if ns is not None:
            k = existing.kmem_of(machine, ns)
            if k is not None:
                res["namespace"]["kmem"] = _kmem_dict(machine, k[0], k[1], ns.size)
    return res, ns, err


def _kmem_dict(machine, start: int, size: int, dax_size: int) -> dict:
    """The accounting of K §9 for one hot-added range: ``lost_alignment = dax_size - size``."""
    blocks = [b for b in machine.memory_blocks if start <= b.start < start + size]
    return {"start": start, "end": start + size - 1, "size": size, "lost_alignment": max(dax_size - size, 0),
            "blocks": len(blocks), "online": sum(1 for b in blocks if str(b.state) == "online")}


def _measure(machine, region, kernel: str, era: str,
             action) -> tuple[dict, Optional[Namespace], Optional[BaseException]]:
    """Run ``action()`` (it makes one namespace on ``region``) and measure it (see
    :func:`create_measured`)."""
    rsize = region.size
    dmesg = machine.dmesg
    before_ids = {id(n) for n in region.namespaces}
    n_dmesg = len(dmesg)
    before = _stats(machine)
    ns, err = None, None
    try:
        ns = action()
    except (KernelError, KernelBug, ValueError, TypeError) as exc:
        err = exc
    after = _stats(machine)
    new_lines = dmesg[n_dmesg:]
    if ns is None:
        leftovers = [n for n in region.namespaces if id(n) not in before_ids]
        ns = leftovers[0] if leftovers else None
    nsd = _ns_dict(ns) if ns is not None else None
    detail = None
    if err is None:
        result, errno_, message = "ok", None, None
        capacity = nsd["size"] if nsd else 0
    else:
        if isinstance(err, KernelError) and err.errno:
            # ndctl sees ENXIO ("failed to enable"); the probe's own error says why
            code = getattr(err, "kernel_errno", None) or err.errno
            result, errno_ = errno_name(code), int(code)
        elif isinstance(err, KernelBug):
            result, errno_ = "BUG", None
        else:
            result, errno_ = type(err).__name__, None
        cause = err.__cause__ if isinstance(err.__cause__, KernelError) else err
        detail = " ".join(str(getattr(cause, "strerror", None) or cause).split())
        message = _failure_line(new_lines) or detail
        capacity = 0
    if nsd is not None:
        padding = nsd["start_pad"] + nsd["end_trunc"]
        metadata = nsd["dataoff"]
        unallocated = rsize - nsd["raw_size"]
    else:
        padding = metadata = 0
        unallocated = rsize
    # capacity is 0 after a failure: the attempt's layout is known, but nothing is usable
    other = rsize - capacity - padding - metadata - unallocated
    lost_total = rsize - capacity
    return {
        "kernel": kernel,
        "era": era,
        "result": result,
        "errno": errno_,
        "message": message,
        "detail": detail,
        "namespace": nsd,
        "capacity": capacity,
        "lost": {"total": lost_total, "padding": padding, "metadata": metadata,
                 "unallocated": unallocated, "other": other},
        "memmap": {"pmem": after["pmem"] - before["pmem"], "ram": after["ram"] - before["ram"]},
        "shared_sections": [],
        "dmesg": new_lines,
    }, ns, err


@dataclass
class Attempt:
    """One namespace made on a booted machine: its region's index, the mode asked for, the
    :func:`create_measured` result, the namespace (or what a failure left, or ``None``), the
    exception of a failure, and whether it is adopted (an existing configuration)."""

    region: int
    mode: str
    result: dict
    namespace: Optional[Namespace] = None
    error: Optional[BaseException] = None
    adopted: bool = False


def boot_layout(text: str, kernel: str, ndctl_json=None, *, tree=None):
    """``(machine, config)``: the layout booted under ``kernel`` without adopting anything,
    and the configuration the layout (and ``ndctl_json``, ``ndctl list -N`` / ``daxctl list``
    text) already has (:func:`sparsemem.existing.read_config`), for :func:`populate`.
    ``tree``: ``parse(text)`` when the caller has it already (it is only read: the machine
    boots from a copy).  ``ValueError`` when the layout or the JSON cannot be read."""
    existing = _existing()
    if tree is None:
        tree = parse(text)
    machine = _machine()(kernel, iomem=tree, **existing.with_implied_numa(tree, kernel, {}))
    config = existing.read_config(tree, [(r.start, r.size) for r in machine.regions], ndctl_json,
                                  block_size=machine.memory_block_size, booted=machine.iomem)
    return machine, config


def _ram_measured(machine, ram, kernel: str) -> dict:
    """Adopt device memory shown as System RAM (:func:`sparsemem.existing.adopt_device_ram`) and
    measure it: what becomes System RAM, the memmap it costs, its blocks (K §9)."""
    existing = _existing()

    mark = len(machine.dmesg)
    before = _stats(machine)
    dev = _dax().find(machine, ram.start, ram.start + ram.size - 1)
    err = None
    try:
        existing.adopt_device_ram(machine, ram)
    except KernelError as exc:
        err = exc
    after = _stats(machine)
    if dev is not None:
        # a dax device's memory: its memmap in DRAM by K §9 (a 6.3+ device bound to kmem at
        # boot paid it then; one that was device_dax's gave back its ZONE_DEVICE memmap)
        before = {"pmem": 0, "ram": 0}
        after = {"pmem": 0, "ram": dev.kmem_stats()["memmap_dram"] if err is None else 0}
    lines = machine.dmesg[mark:]
    d = {"kernel": kernel, "dev": ram.dev, "parent": ram.parent,
         **_kmem_dict(machine, ram.start, ram.size if err is None else 0, ram.size)}
    d.update(start=ram.start, end=ram.start + ram.size - 1)
    d.update(result="ok" if err is None else errno_name(err.errno), errno=None if err is None else err.errno,
             message=None if err is None else (_failure_line(lines) or " ".join(str(err.strerror).split())),
             memmap={"pmem": after["pmem"] - before["pmem"], "ram": after["ram"] - before["ram"]}, dmesg=lines)
    return d


def populate(machine, config, kernel: str, era: Optional[str] = None, *,
             requests: Optional[dict] = None) -> tuple[list[Attempt], list[dict]]:
    """What ``report`` (and ``sparsemem fleet`` under K1) does on a booted machine: the
    existing configuration ``config`` adopted (device RAM first, then the namespaces in order,
    each measured), then the default namespace created on every region without an existing
    configuration, in address order (``requests``: ``{region index: create_namespace
    kwargs}`` replaces the default request of a region).  Returns ``(attempts, ram)``: the
    :class:`Attempt` of every namespace in creation order, and the measured device RAM."""
    era = era or kernel_model(kernel).era
    rams = [_ram_measured(machine, r, kernel) for r in config.ram]
    attempts = []
    for item in config.namespaces:
        res, ns, err = adopt_measured(machine, item, kernel, era)
        attempts.append(Attempt(item.region, item.mode, res, ns, err, True))
    taken = config.regions
    for index, region in enumerate(list(machine.regions)):
        if index in taken:
            continue
        req = dict((requests or {}).get(index, {}))
        res, ns, err = create_measured(machine, region, kernel, era, **req)
        attempts.append(Attempt(index, req.get("mode", "fsdax"), res, ns, err))
    return attempts, rams


def _region_result(region, mine: list, rams: list) -> dict:
    """One region's result under one kernel: the single default namespace's result as
    :func:`create_measured` gives it, or the sum over an existing configuration."""
    if len(mine) == 1 and not mine[0].adopted and not rams:
        res = dict(mine[0].result)
        res["namespaces"] = [res["namespace"]] if res["namespace"] else []
        res["kmem"], res["existing"] = [], False
        return res
    results = [a.result for a in mine]
    nss = [r["namespace"] for r in results if r["namespace"]]
    failed = [r for r in results + rams if r["result"] != "ok"]
    rsize = region.size
    capacity = sum(r["capacity"] for r in results) + sum(r["size"] for r in rams if r["result"] == "ok")
    padding = sum(n["start_pad"] + n["end_trunc"] for n in nss)
    metadata = sum(n["dataoff"] for n in nss)
    unallocated = max(rsize - sum(n["raw_size"] for n in nss) - sum(r["size"] for r in rams), 0)
    head = failed[0] if failed else None
    return {
        "kernel": mine[0].result["kernel"] if mine else rams[0]["kernel"],
        "era": mine[0].result["era"] if mine else kernel_model(rams[0]["kernel"]).era,
        "result": head["result"] if head else "ok",
        "errno": head["errno"] if head else None,
        "message": head["message"] if head else None,
        "detail": head.get("detail") if head else None,
        "namespace": nss[0] if nss else None,
        "namespaces": nss,
        "kmem": rams,
        "existing": True,
        "capacity": capacity,
        "lost": {"total": rsize - capacity, "padding": padding, "metadata": metadata, "unallocated": unallocated,
                 "other": rsize - capacity - padding - metadata - unallocated},
        "memmap": {"pmem": sum(r["memmap"]["pmem"] for r in results + rams),
                   "ram": sum(r["memmap"]["ram"] for r in results + rams)},
        "shared_sections": [],
        "dmesg": [ln for r in results + rams for ln in r["dmesg"]],
    }


def dax_measured(machine, kernel: str) -> list[dict]:
    """Every dax device of ``machine`` (:attr:`Machine.dax_devices`) and what it gives as
    System RAM under ``kernel`` (K §9): a device not in system-ram mode is reconfigured as
    ``daxctl reconfigure-device --mode=system-ram --force`` would (the machine is changed);
    ``result`` ``"ok"`` or the errno name with daxctl's last error line."""
    out = []
    for dev in machine.dax_devices:
        mode = dev.mode
        err = None
        if mode != "system-ram":
            try:
                dev.reconfigure("system-ram", force=True)
            except KernelError as exc:
                err = exc
        st = dev.kmem_stats()
        if err is not None:
            st = {**st, "kmem_bytes": 0, "lost_alignment": dev.size, "memmap_dram": 0, "memmap_self": 0,
                  "zones": {}}
        zones: dict = {}
        for z in st["zones"].values():
            zones[z] = zones.get(z, 0) + 1
        start = dev.ranges[0][0] if dev.ranges else 0
        msg = None
        if err is not None:
            lines = [ln for ln in dev.stderr if ln and not ln.startswith(("error reconfiguring", "reconfigured"))]
            msg = lines[-1] if lines else str(err.strerror)
        out.append({"kernel": kernel, "dev": dev.name, "kind": dev.kind, "start": start,
                    "end": start + dev.size - 1, "size": dev.size, "target_node": dev.target_node,
                    "mode_before": mode, "result": "ok" if err is None else errno_name(err.errno),
                    "errno": None if err is None else err.errno, "message": msg,
                    "kmem_bytes": st["kmem_bytes"], "lost_alignment": st["lost_alignment"],
                    "lost_metadata": st["lost_metadata"], "memmap_dram": st["memmap_dram"],
                    "memmap_self": st["memmap_self"], "blocks": len(st["zones"]), "zones": zones})
    return out


def _run_kernel(layout: Layout, kernel: str, *, text: Optional[str] = None,
                requests: Optional[dict] = None, tree=None, blocks: bool = False,
                dax_out: Optional[list] = None) -> tuple:
    """Boot ``layout`` (or ``text``; ``tree``: its parsed tree, when known) under ``kernel``;
    adopt its existing configuration and create the default namespace on every other region
    (:func:`populate`).

    Returns (per-region results, per-region state for the owner map, System RAM ranges, the
    memory blocks as ``(start, size, state)`` (with ``blocks`` only, for the plot: listing
    them costs as much as the rest of a small layout's run; else ``None``), the device RAM
    adopted outside any region, the :class:`sparsemem.existing.ExistingConfig`).
    """
    machine, config = boot_layout(layout.text if text is None else text, kernel, layout.ndctl, tree=tree)
    era = kernel_model(kernel).era
    attempts, rams = populate(machine, config, kernel, era, requests=requests)
    results, states = [], []
    for index, region in enumerate(list(machine.regions)):
        mine = [a for a in attempts if a.region == index]
        res = _region_result(region, mine, [r for r, c in zip(rams, config.ram) if c.region == index])
        results.append(res)
        live = [_ns_dict(n) for n in region.namespaces if n.enabled]
        states.append({"index": index, "name": region.dev, "start": region.start,
                       "end": region.start + region.size - 1, "size": region.size, "namespaces": live,
                       "failed": res["result"] != "ok"})
    ram = _system_ram(machine)
    intervals = owner_intervals(ram, states)
    for res, st in zip(results, states):
        res["shared_sections"] = shared_sections(intervals, st["start"], st["end"] + 1)
    listed = [(b.start, b.size, str(b.state)) for b in machine.memory_blocks] if blocks else None
    outside = [r for r, c in zip(rams, config.ram) if c.region is None]
    if dax_out is not None:
        # last: it changes the machine (K §9, ``dax_measured``)
        dax_out.extend(dax_measured(machine, kernel))
    return results, states, ram, listed, outside, config


def _add_hints(layout: Layout, kernels: Sequence[str], per_kernel: dict, states: list, tree=None) -> None:
    """``result["hints"]`` of every result (:mod:`sparsemem.hints`): alternatives tried by
    running the layout again, each run once (cached by release, requests and text).
    ``tree``: the layout's parsed tree (parsed again if not given)."""
    cache: dict = {}
    tree = parse(layout.text) if tree is None else tree

    def run(kernel, requests=None, text=None):
        key = (kernel, repr(sorted((requests or {}).items())), text)
        if key not in cache:
            try:
                cache[key] = _run_kernel(layout, kernel, text=text, requests=requests,
                                         tree=tree if text is None else None)[0]
            except (ValueError, KernelError, KernelBug):
                cache[key] = []
        return cache[key]

    for k in kernels:
        cache[(k, "[]", None)] = per_kernel[k]
    # the report's kernels, then every fully modelled row (a hint does not cite a partly modelled one)
    releases = list(dict.fromkeys(list(kernels) + [r for r in reversed(row_releases())
                                                   if not kernel_model(r).approximate]))
    if not any(hints.finding(r, lost_capacity) for rs in per_kernel.values() for r in rs):
        for rs in per_kernel.values():
            for r in rs:
                r["hints"] = []
        return
    hints.hints_for_layout(per_kernel, kernels, run, tree.text(),
                           [(st["start"], st["size"]) for st in states],
                           {k: {i for i, r in enumerate(per_kernel[k]) if not r["existing"]} for k in kernels},
                           format_size, lost_capacity, releases, lambda r: kernel_model(r).label_for(r))


def report_layout(layout: Layout, kernels: Sequence[str] = DEFAULT_KERNELS, *, keep_state: bool = False,
                  upgrade: bool = False) -> dict:
    """The report of one layout (see docs/report.md).

    With ``keep_state``, the returned dict also has ``"_state"``: per kernel, the region
    states, RAM ranges and memory blocks the plot needs (not part of the JSON).  With
    ``upgrade``, it also has ``"upgrade"`` (:func:`upgrade_layout`).
    """
    per_kernel = {}
    state = {}
    kmem: list = []
    daxes: list = []
    tree = parse(layout.text)  # once: every run boots a copy of it
    for k in kernels:
        results, states, ram, blocks, outside, config = _run_kernel(layout, k, tree=tree, blocks=keep_state,
                                                                    dax_out=daxes)
        kmem.extend(outside)
        per_kernel[k] = results
        state[k] = {"regions": states, "ram": ram, "blocks": blocks}
    first = kernels[0]
    _add_hints(layout, kernels, per_kernel, state[first]["regions"], tree)
    regions = []
    for i, st in enumerate(state[first]["regions"]):
        regions.append({
            "index": i,
            "dev": st["name"],
            "start": st["start"],
            "end": st["end"],
            "size": st["size"],
            "first_section": st["start"] // SECTION_SIZE,
            "last_section": st["end"] // SECTION_SIZE,
            "results": [per_kernel[k][i] for k in kernels if i < len(per_kernel[k])],
        })
    totals = []
    for k in kernels:
        rs = per_kernel[k]
        totals.append({"kernel": k, "capacity": sum(r["capacity"] for r in rs), "regions": len(rs),
                       "failed": sum(1 for r in rs if r["result"] != "ok")})
    diffs = [{"kernel": t["kernel"], "versus": first, "bytes": t["capacity"] - totals[0]["capacity"]}
             for t in totals[1:]]
    norm = layout.input
    out = {
        "file": layout.file,
        "bundled": layout.bundled,
        "source": layout.source,
        "input": {"format": norm.form if norm is not None else "iomem",
                  "notes": list(norm.notes) if norm is not None else []},
        "regions": regions,
        "totals": totals,
        "capacity_difference": diffs,
        "existing": {"namespaces": [{"dev": n.name, "region": n.region, "mode": n.mode, "source": n.source,
                                     "kmem": n.kmem} for n in config.namespaces],
                     "ndctl": layout.ndctl is not None, "notes": list(config.notes)},
        "kmem": kmem,
        "dax": daxes,
    }
    out["observations"] = compare_observations(out, layout.observations, list(kernels))
    out["check"] = check_findings(out, format_size)
    if upgrade:
        out["upgrade"] = upgrade_layout(layout, kernels, tree=tree)
    if keep_state:
        out["_state"] = state
    return out


def build_report(layouts: Sequence[Layout], kernels: Sequence[str] = DEFAULT_KERNELS, *,
                 keep_state: bool = False, upgrade: bool = False) -> dict:
    """The whole ``--json`` object for ``layouts`` under ``kernels`` (``upgrade``: see
    :func:`upgrade_layout`)."""
    kernels = list(dict.fromkeys(kernels))  # keep order, drop repeats
    for k in kernels:
        kernel_model(k)  # ValueError for a malformed version, before any work
    return {
        "version": REPORT_VERSION,
        "kernels": [{"version": k, "era": kernel_model(k).era} for k in kernels],
        "layouts": [report_layout(lay, kernels, keep_state=keep_state, upgrade=upgrade) for lay in layouts],
    }


def _ns_state(ns) -> dict:
    """What a namespace gives on the booted machine: usable bytes (0 unless enabled), metadata
    (dataoff) and padding (start_pad + end_trunc) of the block in use, and the memmap its pgmap
    took from pmem (altmap pages) and from RAM (:attr:`sparsemem.memremap.DevPagemap.memmap_ram`)."""
    pg = ns.pgmap
    pmem = (pg.altmap.alloc << 12) if pg is not None and pg.altmap is not None else 0
    return {"enabled": bool(ns.enabled), "usable": ns.size if ns.enabled else 0, "metadata": ns.dataoff,
            "padding": ns.start_pad + ns.end_trunc,
            "memmap": {"pmem": pmem, "ram": pg.memmap_ram if pg is not None else 0}}


def upgrade_layout(layout: Layout, kernels: Sequence[str], *, tree=None) -> dict:
    """``report --upgrade`` for one layout (docs/report.md "Upgrades"; issue 11 item 5): boot
    it under ``kernels[0]`` and make what ``report`` makes there (:func:`populate`: the existing
    configuration and the default namespace of every other region), then reboot that machine
    under each later kernel with the same media (``Machine.reboot(kernel=...)``) and, from
    there, back under the first.  Per namespace made: its state under the first kernel and,
    per later kernel, whether it comes up, its usable bytes, metadata, padding, memmap in pmem
    and RAM, the error (errno name and the dmesg line) when it does not, and whether the
    rollback gives the state it was created in."""
    first, later = kernels[0], list(kernels[1:])
    if tree is None:
        tree = parse(layout.text)
    machine, config = boot_layout(layout.text, first, layout.ndctl, tree=tree)
    attempts, _ = populate(machine, config, first)
    made = [(a.region, a.namespace) for a in attempts if a.namespace is not None and a.result["result"] == "ok"]
    rows: list[dict[str, Any]] = [{"region": ri, "dev": ns.dev, "mode": ns.mode, "created": _ns_state(ns),
                                   "booted": []} for ri, ns in made]
    for k in later:
        up = machine.reboot(kernel=k)
        back = up.reboot(kernel=first)
        now = {ns.dev: ns for ns in (up.nvdimm.namespaces if up.nvdimm is not None else [])}
        again = {ns.dev: ns for ns in (back.nvdimm.namespaces if back.nvdimm is not None else [])}
        for row in rows:
            ns = now.get(row["dev"])
            err = ns.error if ns is not None else None
            state = _ns_state(ns) if ns is not None else {
                "enabled": False, "usable": 0, "metadata": 0, "padding": 0, "memmap": {"pmem": 0, "ram": 0}}
            if ns is not None and ns.enabled and ns.dax_enabled is False:
                result = "dax-unbound"      # a 0-size dax device (issue 11 item 3)
            elif ns is not None and ns.enabled and err is None:
                result = "ok"
            elif ns is not None and ns.enabled:
                result = "raw-fallback"
            else:
                result = errno_name(err[0]) if err else "missing"
            old = again.get(row["dev"])
            row["booted"].append({
                "kernel": k, "result": result, "errno": err[0] if err else None,
                "message": err[1] if err else None, "mode": ns.mode if ns is not None else None, **state,
                "rollback": old is not None and _ns_state(old) == row["created"] and old.mode == row["mode"]})
    return {"from": first, "to": later, "namespaces": rows}


def strip_state(report: dict) -> dict:
    """The report without the plot-only ``_state`` entries (what ``--json`` prints)."""
    return {**report, "layouts": [{k: v for k, v in lay.items() if k != "_state"} for lay in report["layouts"]]}


__all__ += ["strip_state", "shared_sections", "create_measured", "adopt_measured", "boot_layout", "populate", "Attempt",
            "upgrade_layout"]
