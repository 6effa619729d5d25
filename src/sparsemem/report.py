"""``sparsemem report``: what the default fsdax namespace gets on every pmem region, per kernel.

The computation lives here and returns plain data (dicts, lists, ints, strings); the command
line (:mod:`sparsemem.cli`) only formats it, and ``--json`` prints it as is.

What is computed
================

For every layout (``/proc/iomem`` text or dmesg e820 lines) and every kernel version ``V``
(default ``5.2`` and ``5.3``), one machine is booted with ``Machine.from_iomem(text,
kernel=V)``.  Then, **on that same machine, region after region in address order** (as an
administrator running ``ndctl create-namespace`` once per region would), the default
namespace is created over the whole region: ``region.create_namespace()`` (``size=None``,
``mode="fsdax"``, ``map="dev"``, default align).  Because the machine is shared, a namespace
can fail because of the one created before it on the neighbouring region (ndctl issue #76).

For each (region, kernel) the report gives, in bytes:

``capacity``
    ``Namespace.size``: the usable data bytes (what ``ndctl list`` shows as ``size``); 0 when
    the namespace could not be created/enabled.
``lost.total``
    ``region.size - capacity``: everything of the raw region that the user cannot store
    data in.  It is split exactly into
    ``lost.padding`` = ``start_pad + end_trunc`` (legacy section padding and the end
    truncation for ``align``),
    ``lost.metadata`` = ``dataoff`` (info-block area, the struct-page reservation of
    ``map="dev"`` and its rounding up to the alignment),
    ``lost.unallocated`` = ``region.size - raw_size`` (region bytes no namespace covers; the
    whole region when creation failed), and
    ``lost.other`` = the rest (``raw_size - start_pad - end_trunc - dataoff - size``, normally
    0; non-zero only if the kernel truncated ``npfns``).
``memmap.pmem`` / ``memmap.ram``
    What enabling the namespace cost in struct-page memory: the change of
    ``machine.sections.vmemmap_stats()`` across ``create_namespace``
    (``memmap_altmap_bytes``: vmemmap PMDs carved from the namespace's own altmap;
    ``memmap_ram_bytes``: vmemmap pages taken from System RAM, e.g. the base pages of partially
    populated sections in the sub-section era).  Also measured for a failed attempt: a legacy
    failure can leave sections added.
``shared_sections``
    The 128 MiB sections that overlap the region and whose 64 sub-sections (2 MiB each) hold
    bytes of more than one *owner*, after all regions of the layout were processed.  Owners
    are ``System RAM`` (top-level RAM of the booted machine), each namespace (the range its
    pgmap maps: ``[start + start_pad, start + raw_size - end_trunc)``, memmap and data) and,
    for region space no namespace maps, the region itself (``regionN``).  Padding belongs to
    nobody: that is what legacy padding is for, and what it costs.
``result``
    ``"ok"``, or the errno name of the ``KernelError`` (``"ENOMEM"``) with ``message``: the
    first kernel log line the attempt printed that is not informational (``alignment
    collision``, ``cut here`` markers and backtraces are skipped; a ``WARNING:`` line only
    when nothing more specific was logged), e.g. ``"nd_pmem pfn1.0: Conflicting mapping in
    same section"``; the exception text when the log says nothing.  ``errno`` is the probe's
    own error (ndctl itself sees ``ENXIO``, "failed to enable", for every probe failure), and
    ``detail`` the simulator's explanation (the text of that probe error, with numbers).

Per layout, ``totals`` sums the capacity per kernel and ``capacity_difference`` gives each
kernel's total minus the first kernel's total.

JSON (``sparsemem report --json`` / ``--jsonl``), version 2
==========================================================

A stable object, all sizes and addresses exact integers (bytes), kernels in the order
given (``--jsonl``: one such object per layout and line, each with one layout)::

    {
      "version": 2,
      "kernels": [{"version": "5.2", "era": "legacy"}, {"version": "5.3", "era": "subsection"}],
      "layouts": [{
        "file": "…/ndctl-issue-76.txt",  "bundled": true,
        "source": "https://github.com/pmem/ndctl/issues/76",   (or null)
        "regions": [{
          "index": 0, "dev": "region0", "start": 104890302464, "end": 375473242111,
          "size": 270582939648, "first_section": 783, "last_section": 2799,
          "results": [{
            "kernel": "5.2", "era": "legacy",
            "result": "ok" | "ENOMEM" | ...,  "errno": null | 12,  "message": null | "…",
            "detail": null | "…",   (the simulator's explanation: the probe error's text)
            "namespace": null | {"dev", "start", "end", "raw_size", "mode", "map", "align",
                                 "start_pad", "end_trunc", "dataoff", "npfns", "size",
                                 "enabled", "blockdev" | "chardev"},
            "capacity": int,
            "lost": {"total", "padding", "metadata", "unallocated", "other"},
            "memmap": {"pmem", "ram"},
            "shared_sections": [{"section": int, "start": int, "owners": [str, ...]}],
            "dmesg": [str, ...]          (every line the attempt logged)
          }, ...]
        }, ...],
        "totals": [{"kernel": "5.2", "capacity": int, "regions": int, "failed": int}, ...],
        "capacity_difference": [{"kernel": "5.3", "versus": "5.2", "bytes": int}, ...],
        "input": {"format": "iomem" | "dmesg" | "e820" | "firmware-memmap",
                  "notes": [str, ...]},   (what sparsemem.inputs did to read the file)
        "observations": [{"text", "kind", "compared", "results": [{"kernel", "verdict":
                          "agree" | "differ", "observed", "predicted"}]}, ...],
        "check": [{"region", "kernel", "kind": "failed" | "lost", "bytes", "text"}, ...]
      }, ...]
    }

Version 2 (issue 13) names the fields as ``ndctl list`` does where they mean the same: a
region's and a namespace's name is ``dev``, and a namespace has ``blockdev`` (``pmem0``,
``pmem1.1``, ``pmem0s``) or, in devdax mode, ``chardev`` (``dax0.0``); ``size``, ``mode``,
``map`` and ``align`` were ndctl's already.  ``input``, ``observations``
(:func:`sparsemem.explain.compare_observations`) and ``check``
(:func:`sparsemem.explain.check_findings`, what ``--check`` exits 3 on) are new.

A release newer than the newest row of :data:`sparsemem.kernel.ERAS` (e.g. ``"5.10"``) runs
with that row's rules (v5.3 for the sub-section era): ``era`` names the row as for any other
release, and the text report labels the column ``5.10 (subsection era, v5.3 rules)``
(:attr:`sparsemem.kernel.KernelModel.approximate` / ``rules``); the JSON fields stay as they
are, since new fields only come with a new ``version``.

``end`` values are inclusive (as ``/proc/iomem`` prints them).  :data:`REPORT_SCHEMA` is the
same contract as a JSON-schema-like dict (``type``, ``required``, ``properties``, ``items``,
``enum``, ``additionalProperties``).  New fields are only ever added with a new ``version``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from .errors import KernelBug, KernelError, errno_name
from .explain import CHECK_SCHEMA, OBSERVATION_SCHEMA, check_findings, compare_observations
from .kernel import kernel_model

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
DEFAULT_KERNELS = ("5.2", "5.3")
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
}, required=("dev", "start", "end", "raw_size", "mode", "map", "align", "start_pad", "end_trunc",
             "dataoff", "npfns", "size", "enabled"))

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
})

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
    })},
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
    input: Optional[object] = None


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
    from . import inputs, iomem

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


def _boot(text: str, kernel: str):
    from .machine import Machine

    return Machine.from_iomem(text, kernel=kernel)


def create_measured(machine, region, kernel: str, era: str, **request) -> tuple[dict, object, Optional[BaseException]]:
    """Create one namespace on ``region`` of the booted ``machine`` and measure it as the report does.

    ``request`` holds the ``create_namespace`` arguments (none: the default namespace).
    Returns ``(result, namespace, error)``: ``result`` is one entry of a region's ``results``
    (see the module docstring; ``shared_sections`` left empty, since it needs every region),
    ``namespace`` the created namespace (or what a failed attempt left behind, else ``None``)
    and ``error`` the exception of a failed attempt (else ``None``).  ``sparsemem fleet``
    builds its rows from the same numbers.
    """
    rsize = region.size
    dmesg = machine.dmesg
    before_ids = {id(n) for n in region.namespaces}
    n_dmesg = len(dmesg)
    before = _stats(machine)
    ns, err = None, None
    try:
        ns = region.create_namespace(**request)
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


def _run_kernel(layout: Layout, kernel: str) -> tuple[list[dict], list[dict], list[tuple[int, int]], list]:
    """Boot ``layout`` under ``kernel``; create the default namespace on every region.

    Returns (per-region results, per-region state for the owner map, System RAM ranges, the
    memory blocks as ``(start, size, state)``).
    """
    machine = _boot(layout.text, kernel)
    era = kernel_model(kernel).era
    results, states = [], []
    for index, region in enumerate(list(machine.regions)):
        rname = region.dev
        rstart, rsize = region.start, region.size
        res, ns, err = create_measured(machine, region, kernel, era)
        results.append(res)
        live = []
        for n in region.namespaces:
            d = _ns_dict(n)
            if d["enabled"] or err is None and n is ns:
                live.append(d)
        states.append({"index": index, "name": rname, "start": rstart, "end": rstart + rsize - 1,
                       "size": rsize, "namespaces": live, "failed": err is not None})
    ram = _system_ram(machine)
    intervals = owner_intervals(ram, states)
    for res, st in zip(results, states):
        res["shared_sections"] = shared_sections(intervals, st["start"], st["end"] + 1)
    blocks = [(b.start, b.size, str(b.state)) for b in machine.memory_blocks]
    return results, states, ram, blocks


def report_layout(layout: Layout, kernels: Sequence[str] = DEFAULT_KERNELS, *, keep_state: bool = False) -> dict:
    """The report of one layout (see the module docstring).

    With ``keep_state``, the returned dict also has ``"_state"``: per kernel, the region
    states, RAM ranges and memory blocks the plot needs (not part of the JSON).
    """
    per_kernel = {}
    state = {}
    for k in kernels:
        results, states, ram, blocks = _run_kernel(layout, k)
        per_kernel[k] = results
        state[k] = {"regions": states, "ram": ram, "blocks": blocks}
    first = kernels[0]
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
    }
    out["observations"] = compare_observations(out, layout.observations, list(kernels))
    out["check"] = check_findings(out, format_size)
    if keep_state:
        out["_state"] = state
    return out


def build_report(layouts: Sequence[Layout], kernels: Sequence[str] = DEFAULT_KERNELS, *,
                 keep_state: bool = False) -> dict:
    """The whole ``--json`` object for ``layouts`` under ``kernels``."""
    kernels = list(dict.fromkeys(kernels))  # keep order, drop repeats
    for k in kernels:
        kernel_model(k)  # ValueError for a malformed version, before any work
    return {
        "version": REPORT_VERSION,
        "kernels": [{"version": k, "era": kernel_model(k).era} for k in kernels],
        "layouts": [report_layout(lay, kernels, keep_state=keep_state) for lay in layouts],
    }


def strip_state(report: dict) -> dict:
    """The report without the plot-only ``_state`` entries (what ``--json`` prints)."""
    return {**report, "layouts": [{k: v for k, v in lay.items() if k != "_state"} for lay in report["layouts"]]}


__all__ += ["strip_state", "shared_sections", "create_measured"]
