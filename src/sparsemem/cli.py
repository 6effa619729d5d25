"""The ``sparsemem`` command (``python -m sparsemem``).

Subcommands:

``sparsemem report [IOMEM_FILE ...] [--kernel V ...] [--json] [--plot FILE.png]``
    Boot each layout under each kernel, create the default fsdax namespace on every pmem
    region and compare usable capacity, padding, metadata, memmap placement, shared sections
    and failures side by side (computation in :mod:`sparsemem.report`).
``sparsemem lsmem IOMEM_FILE [--kernel V]``
    The memory blocks of the booted layout, printed as util-linux ``lsmem`` prints them.

Exit status: 0 success (a namespace that the kernel refuses is a *result*, not an error), 1 a
layout (or the plot output) cannot be read/written or the simulation refused it (one line on
stderr naming the file and line), 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
from typing import Optional, Sequence

from . import __version__
from .kernel import DEFAULT_KERNEL

PROG = "sparsemem"

_MAIN_EPILOG = """\
examples:
  sparsemem report                          # the bundled ndctl #76 Optane layout, 5.2 vs 5.3
  sparsemem report /proc/iomem              # your machine (read /proc/iomem as root)
  sparsemem report a.txt b.txt --kernel 5.2 --kernel 5.3 --kernel 5.10
  sparsemem report --json > report.json
  sparsemem report --plot map.png           # needs: pip install 'sparsemem[plot]'
  sparsemem lsmem /proc/iomem --kernel 5.3

exit status: 0 ok, 1 a layout cannot be read (the message names file and line), 2 usage error
"""

_REPORT_EPILOG = """\
columns (per region, one column per kernel):
  namespace        the default namespace: fsdax, map=dev, size=None (the whole region),
                   created region after region on one booted machine
  usable           Namespace.size: the data bytes (0 if creation/enabling failed)
  lost             region size - usable, split exactly into:
    padding          start_pad + end_trunc (section padding / align truncation)
    metadata         dataoff (info-block + struct page reservation, rounded to align)
    unallocated      region bytes not in the namespace (all of it when creation failed)
                     (and "other": anything else, normally 0; shown only when not 0)
  memmap in pmem   vmemmap bytes taken from the namespace's altmap by enabling it
  memmap in RAM    vmemmap bytes taken from System RAM by enabling it
                   (both: delta of vmemmap_stats() memmap_altmap_bytes / memmap_ram_bytes)
  shared sections  128 MiB sections of the region whose 2 MiB sub-sections belong to more
                   than one owner (System RAM, a namespace's mapped range, another region's
                   unused space); padding belongs to no one
  result           ok, or ERRNO: the kernel log line that explains the failure
a closing line per layout sums the usable capacity per kernel and the difference.

examples:
  sparsemem report
  sparsemem report /proc/iomem --kernel 5.2 --kernel 5.3
  sparsemem report layout1.txt layout2.txt --json
  sparsemem report --plot map.png
"""

_LSMEM_EPILOG = """\
output: RANGE SIZE STATE REMOVABLE BLOCK, adjacent blocks with the same state and removable
flag merged into one range (as util-linux lsmem does by default), then the memory block size
and the total online/offline memory.

examples:
  sparsemem lsmem /proc/iomem
  sparsemem lsmem layout.txt --kernel 5.2
"""


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message for usage errors."""

    def error(self, message):  # pragma: no cover - exercised through the subprocess tests
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _kernel_arg(value: str) -> str:
    from .kernel import kernel_model

    try:
        kernel_model(value)
    except (ValueError, TypeError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return value


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = _Parser(prog=PROG, formatter_class=fmt,
                description="Simulate Linux SPARSEMEM, sub-section hotplug and nvdimm pfn devices "
                            "on real memory layouts (/proc/iomem or e820 dmesg lines).",
                epilog=_MAIN_EPILOG)
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    r = sub.add_parser("report", formatter_class=fmt, epilog=_REPORT_EPILOG,
                       help="capacity, padding, memmap and failures of the default namespace "
                            "on every pmem region, per kernel",
                       description="Boot each layout under each kernel, create the default fsdax "
                                   "namespace on every pmem region and compare the results.")
    r.add_argument("files", nargs="*", metavar="IOMEM_FILE",
                   help="/proc/iomem text or dmesg e820 lines (default: the bundled layout "
                        "of ndctl issue #76)")
    r.add_argument("--kernel", "-k", action="append", type=_kernel_arg, metavar="V",
                   help="kernel version to model, repeatable (default: 5.2 and 5.3)")
    r.add_argument("--json", action="store_true",
                   help="print the report as JSON (schema: sparsemem.report.REPORT_SCHEMA, version 1)")
    r.add_argument("--plot", metavar="FILE.png",
                   help="also draw the physical address map around every region (needs matplotlib)")

    m = sub.add_parser("lsmem", formatter_class=fmt, epilog=_LSMEM_EPILOG,
                       help="memory blocks of a layout, as util-linux lsmem prints them",
                       description="Boot a layout and list its memory blocks like lsmem.")
    m.add_argument("file", metavar="IOMEM_FILE", help="/proc/iomem text or dmesg e820 lines")
    m.add_argument("--kernel", "-k", type=_kernel_arg, default=DEFAULT_KERNEL, metavar="V",
                   help=f"kernel version to model (default: {DEFAULT_KERNEL})")
    return p


# ---------------------------------------------------------------------------------------------
# report formatting

_LABEL_W = 18
_COL_W = 40
_WIDTH = 100


def _hex_range(start: int, end: int) -> str:
    return f"{start:#x}-{end:#x}"


def _short_owner(owner: str) -> str:
    return "RAM" if owner == "System RAM" else owner


def _shared_cell(res: dict, own: Optional[str]) -> str:
    secs = res["shared_sections"]
    if not secs:
        return "0"
    parts = []
    for s in secs:
        others = [_short_owner(o) for o in s["owners"] if o != own]
        parts.append(f"{s['section']:#x} " + "+".join(others))
    text = f"{len(secs)} ({', '.join(parts)})"
    if len(text) <= _COL_W:
        return text
    nrs = ", ".join("%#x" % s["section"] for s in secs)
    text = f"{len(secs)} ({nrs})"
    return text if len(text) <= _COL_W else f"{len(secs)} sections"


def _cells(res: dict, region_name: str) -> dict:
    ns = res["namespace"]
    lost = res["lost"]
    own = ns["name"] if ns else region_name
    return {
        "namespace": (f"{ns['name']} {_hex_range(ns['start'], ns['end'])}" if ns else "-"),
        "usable": format_size(res["capacity"]),
        "lost": format_size(lost["total"]),
        "  padding": format_size(lost["padding"]),
        "  metadata": format_size(lost["metadata"]),
        "  unallocated": format_size(lost["unallocated"]),
        "  other": format_size(lost["other"]),
        "memmap in pmem": format_size(res["memmap"]["pmem"]),
        "memmap in RAM": format_size(res["memmap"]["ram"]),
        "shared sections": _shared_cell(res, own),
    }


def format_size(n: int) -> str:
    from .report import format_size as fs

    return fs(n)


def _row(label: str, cells: Sequence[str]) -> str:
    return (f"  {label:<{_LABEL_W}}" + "".join(f"{c:<{_COL_W}}" for c in cells)).rstrip()


def _kernel_label(r: dict) -> str:
    """Column header of one kernel: ``5.3 (subsection)``; a release newer than the newest
    modelled row says which rules it runs with: ``5.10 (subsection era, v5.3 rules)``
    (:attr:`sparsemem.kernel.KernelModel.label`)."""
    from .kernel import kernel_model

    try:
        model = kernel_model(r["kernel"])
    except (ValueError, TypeError):
        return f"{r['kernel']} ({r['era']})"
    return model.label_for(r["kernel"])


def format_report(rep: dict) -> str:
    """The human-readable report (aligned for two kernels in 100 columns)."""
    lines: list[str] = []
    kernels = [k["version"] for k in rep["kernels"]]
    for li, lay in enumerate(rep["layouts"]):
        if li:
            lines.append("")
        name = os.path.basename(lay["file"]) + (" (bundled)" if lay["bundled"] else "")
        lines.append(f"layout {name}")
        if lay.get("source"):
            lines.append(f"  source: {lay['source']}")
        if not lay["regions"]:
            lines.append("  no pmem regions in this layout")
            continue
        for reg in lay["regions"]:
            lines.append("")
            lines.append(f"{reg['name']}  {_hex_range(reg['start'], reg['end'])}  {format_size(reg['size'])}"
                         f"  sections {reg['first_section']:#x}-{reg['last_section']:#x}")
            by_k = {r["kernel"]: r for r in reg["results"]}
            res = [by_k.get(k) for k in kernels]
            lines.append(_row("", [_kernel_label(r) if r else "" for r in res]))
            cells = [_cells(r, reg["name"]) if r else {} for r in res]
            keys = list(cells[0]) if cells and cells[0] else []
            for key in keys:
                if key in ("  unallocated", "  other") and all(
                        r is None or r["lost"][key.strip()] == 0 for r in res):
                    continue
                lines.append(_row(key, [c.get(key, "") for c in cells]))
            results = [("ok" if r["result"] == "ok" else f"{r['result']}: {r['message']}") if r else ""
                       for r in res]
            if all(len(t) < _COL_W for t in results):
                lines.append(_row("result", results))
            else:
                for i, (k, t) in enumerate(zip(kernels, results)):
                    lines.append(_row("result" if i == 0 else "", [f"{k}: {t}"]))
            for k, r in zip(kernels, res):
                # a bare WARNING says little: add the simulator's explanation
                if r and r["result"] != "ok" and r["detail"] and (r["message"] or "").startswith("WARNING"):
                    lines.extend(textwrap.wrap(f"{k} why: {r['detail']}", width=_WIDTH,
                                               initial_indent=" " * (_LABEL_W + 2),
                                               subsequent_indent=" " * (_LABEL_W + 4)))
        totals = lay["totals"]
        diff = {d["kernel"]: d["bytes"] for d in lay["capacity_difference"]}
        parts = [f"{t['kernel']} {format_size(t['capacity'])}" for t in totals]
        line = "total usable: " + ", ".join(parts)
        for t in totals[1:]:
            d = diff[t["kernel"]]
            line += f"; {t['kernel']} - {totals[0]['kernel']} = {'+' if d >= 0 else ''}{format_size(d)}" \
                    f" ({d:+,} bytes)"
        lines.append("")
        lines.append(line)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# lsmem formatting


def _lsmem_size(n: int) -> str:
    """util-linux ``size_to_human_string(SIZE_SUFFIX_1LETTER, n)``."""
    shift = 10
    while shift <= 60 and n >= (1 << shift):
        shift += 10
    exp = shift - 10
    letter = "BKMGTPE"[exp // 10]
    if not exp:
        return f"{n}{letter}"
    dec, frac = n >> exp, n & ((1 << exp) - 1)
    if frac:
        frac = (frac // (1 << (exp - 10)) + 50) // 100
        if frac == 10:
            dec, frac = dec + 1, 0
    return f"{dec}.{frac}{letter}" if frac else f"{dec}{letter}"


def _block_attr(blk, name, default=None):
    if isinstance(blk, dict):
        return blk.get(name, default)
    return getattr(blk, name, default)


def format_lsmem(machine) -> str:
    blocks = sorted(machine.memory_blocks, key=lambda b: int(_block_attr(b, "id")))
    bsize = None
    sysfs = getattr(machine, "sysfs", None)
    try:
        if sysfs is not None:
            raw = sysfs["block_size_bytes"] if hasattr(sysfs, "__getitem__") else sysfs.read("block_size_bytes")
            bsize = int(str(raw).strip(), 16)
    except Exception:  # noqa: BLE001 - fall back to the blocks themselves
        bsize = None
    if not bsize:
        bsize = int(_block_attr(blocks[0], "size")) if blocks else 128 << 20
    merged: list[dict] = []
    for b in blocks:
        idx = int(_block_attr(b, "id"))
        state = str(_block_attr(b, "state", "online"))
        removable = bool(int(_block_attr(b, "removable", 0) or 0))
        last = merged[-1] if merged else None
        if last and last["index"] + last["count"] == idx and last["state"] == state \
                and last["removable"] == removable:
            last["count"] += 1
            continue
        merged.append({"index": idx, "count": 1, "state": state, "removable": removable})
    rows = []
    online = offline = 0
    for m in merged:
        start = m["index"] * bsize
        size = m["count"] * bsize
        if m["state"] == "online":
            online += size
        else:
            offline += size
        state = {"online": "online", "offline": "offline", "going-offline": "on->off"}.get(m["state"], "?")
        rows.append([
            f"0x{start:016x}-0x{start + size - 1:016x}",
            _lsmem_size(size),
            state,
            ("yes" if m["removable"] else "no") if m["state"] == "online" else "",
            str(m["index"]) if m["count"] == 1 else f"{m['index']}-{m['index'] + m['count'] - 1}",
        ])
    header = ["RANGE", "SIZE", "STATE", "REMOVABLE", "BLOCK"]
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) if rows else len(header[i])
              for i in range(len(header))]

    def fmt(cols):
        out = [cols[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cols[1:], widths[1:])]
        return " ".join(out).rstrip()

    lines = [fmt(header)] + [fmt(r) for r in rows]
    lines.append("")
    lines.append(f"{'Memory block size:':<23} {_lsmem_size(bsize):>5}")
    lines.append(f"{'Total online memory:':<23} {_lsmem_size(online):>5}")
    lines.append(f"{'Total offline memory:':<23} {_lsmem_size(offline):>5}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# commands


class _Fail(Exception):
    """A one-line error with an exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _load(paths: Sequence[str]):
    from .report import bundled_layouts, load_layout

    if not paths:
        files = bundled_layouts()
        if not files:
            raise _Fail("no bundled layout found in the package (sparsemem/data/*.txt)")
        return [load_layout(f, bundled=True) for f in files[:1]]
    out = []
    for p in paths:
        out.append(_load_one(p))
    return out


def _load_one(path: str):
    from .report import load_layout

    try:
        return load_layout(path)
    except OSError as exc:
        raise _Fail(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        msg = str(exc)
        raise _Fail(msg if path in msg else f"{path}: {msg}") from None


def _cmd_report(args) -> int:
    from .report import DEFAULT_KERNELS, build_report, strip_state

    layouts = _load(args.files)
    kernels = args.kernel or list(DEFAULT_KERNELS)
    plot_mod = None
    if args.plot:
        try:
            from . import plot as plot_mod
            plot_mod.require_matplotlib()
        except ImportError:
            raise _Fail("matplotlib is not installed: pip install 'sparsemem[plot]'") from None
    rep = None
    try:
        rep = build_report(layouts, kernels, keep_state=bool(args.plot))
    except (ValueError, OSError) as exc:
        # the simulation refused the layout while booting it: name the file
        raise _Fail(_boot_error(layouts, exc)) from None
    if args.json:
        sys.stdout.write(json.dumps(strip_state(rep), indent=2) + "\n")
    else:
        sys.stdout.write(format_report(rep))
    if plot_mod is not None:
        try:
            plot_mod.plot_report(rep, args.plot)
        except OSError as exc:
            raise _Fail(f"{args.plot}: cannot write the plot: {exc.strerror or exc}") from None
        if not args.json:
            sys.stdout.write(f"plot written to {args.plot}\n")
    return 0


def _boot_error(layouts, exc) -> str:
    msg = " ".join(str(exc).split())
    if any(lay.file in msg for lay in layouts):
        return msg
    names = ", ".join(lay.file for lay in layouts)
    return f"{names}: {msg}"


def _cmd_lsmem(args) -> int:
    lay = _load_one(args.file)
    from .machine import Machine

    try:
        machine = Machine.from_iomem(lay.text, kernel=args.kernel)
    except (ValueError, OSError) as exc:
        raise _Fail(_boot_error([lay], exc)) from None
    sys.stdout.write(format_lsmem(machine))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``sparsemem`` console script; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
    try:
        if args.command == "report":
            return _cmd_report(args)
        if args.command == "lsmem":
            return _cmd_lsmem(args)
        parser.error(f"unknown command {args.command!r}")
    except _Fail as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.status
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError) as exc:  # KernelError is an OSError
        print(f"{PROG}: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - never a traceback on the terminal
        print(f"{PROG}: internal error: {type(exc).__name__}: {' '.join(str(exc).split())}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
