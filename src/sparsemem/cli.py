"""The ``sparsemem`` command (``python -m sparsemem``).

The detail: docs/cli.md.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import stat
import sys
import textwrap
from typing import Optional, Sequence

# What ``sparsemem --help`` loads anyway (the parser shows defaults read from report and
# fleet), and the small sysfs modules, are imported here.  The simulator (machine), lsmem,
# plot and tqdm are imported where a command needs them: together they would add about 65 ms
# to every start-up of the command, ``--help`` included (measured with ``python -X importtime``).
from . import __version__, fleet, fusefs
from .fleet import DEFAULT_BATCH_SIZE
from .inputs import machine_iomem, strip_log_prefix
from .kernel import DEFAULT_KERNEL, VERSION_FORMS, kernel_model, version_range
from .report import DEFAULT_KERNELS, REPORT_VERSION, bundled_layouts, load_layout, report_layout
from .report import format_size as _format_size
from .sysroot import export

PROG = "sparsemem"

_MAIN_EPILOG = """\
examples:
  sparsemem report                          # the bundled ndctl #76 Optane layout, 5.2 vs 5.3
  sparsemem report /proc/iomem              # your machine (read /proc/iomem as root)
  sparsemem report a.txt b.txt --kernel 5.2 --kernel 5.3 --kernel 5.10
  sparsemem report --json > report.json
  sparsemem report --plot map.png           # needs: pip install 'sparsemem[plot]'
  sparsemem lsmem /proc/iomem --kernel 5.3 -o +NODE,ZONES
  sparsemem sysfs export layout.txt /tmp/root && lsmem --sysroot /tmp/root

exit status: 0 ok, 1 a layout cannot be read (the message names file and line), 2 usage error,
3 report --check found a failure or a capacity loss, 130 interrupted
"""

_REPORT_EPILOG = """\
columns (per region, one column per kernel):
  namespace        the default namespace: fsdax, map=dev, size=None (the whole region),
                   created region after region on one booted machine
  usable           Namespace.size: the data bytes (0 if creation/enabling failed)
  lost             region size - usable, split exactly into:
    padding          start_pad + end_trunc (section padding / align truncation)
    metadata         dataoff (info-block + struct page reservation, rounded to align)
    unallocated      region bytes not in the namespace (all of it when creation failed);
                     "(free)": bytes no existing namespace covers, left for ndctl
                     create-namespace, which --check does not count as lost
                     (and "other": anything else, normally 0; shown only when not 0)
  memmap in pmem   vmemmap bytes taken from the namespace's altmap by enabling it
  memmap in RAM    vmemmap bytes taken from System RAM by enabling it
                   (both: delta of vmemmap_stats() memmap_altmap_bytes / memmap_ram_bytes)
  shared sections  128 MiB sections of the region whose 2 MiB sub-sections belong to more
                   than one owner (System RAM, a namespace's mapped range, another region's
                   unused space); padding belongs to no one
  existing         what the layout already had on the region (kept as it is; no default
                   namespace then): its namespaces' modes, a dax device bound to kmem
  system RAM       bytes of the region hot-added as System RAM by kmem (not lost)
  result           ok, or ERRNO: the kernel log line that explains the failure
  dmesg K          for a failure: every line that kernel K logs on the way
  hint             for a failure or a loss: an alternative the simulation ran and found to
                   work (another release, namespace align or size, a section-aligned
                   region), with the usable capacity it gives
a closing line per layout sums the usable capacity per kernel and the difference; then the
layout's '# observed:' lines that can be checked, each with agree/differ per kernel.

layouts: /proc/iomem; dmesg or journalctl -k output as printed (timestamps, log levels,
'e820: update'/'remove' lines applied as the kernel applied them, the user-defined map of
memmap=/mem= preferred); /sys/firmware/memmap dumps (grep . /sys/firmware/memmap/*/*);
pasted with a shell prompt, a code fence or a byte-order mark.  Several layouts: each result
is printed when ready, in order; a layout that cannot be read is reported on stderr and
skipped (exit status 1 at the end); Ctrl-C prints what is done and exits 130.

exit status: 0 ok, 1 a layout cannot be read, 2 usage error, 3 with --check: a namespace
fails or loses capacity

examples:
  sparsemem report
  sudo sparsemem report /proc/iomem --kernel 5.2 --kernel $(uname -r)
  sudo sparsemem report /proc/iomem --ndctl <(ndctl list -N)
  sparsemem report hosts/*.txt                # each hosts/H.txt with hosts/H.json (ndctl list -N)
  dmesg | sparsemem report -
  journalctl -k -b -1 | sparsemem report - --check
  sparsemem report layouts/*.txt --jsonl > results.jsonl
  sparsemem report --plot map.png
  sparsemem report layouts/*.txt --plot maps/
  sparsemem report layout.txt --kernel 5.2 --kernel 6.8 --upgrade

--upgrade: after the report, per layout, the namespaces made under the first kernel (the
existing configuration and the default namespaces, as above), booted under each later kernel
with the same media and then rolled back: per namespace and kernel the result (ok, ERRNO:
the dmesg line, raw-fallback, dax-unbound), usable, metadata, memmap in pmem / RAM, and
whether the rollback comes up as created.
"""

_SYSFS_EPILOG = """\
export writes DIR/sys/devices/system/{memory,node} and the memory notifier error injection
under DIR/sys/kernel/debug; `lsmem --sysroot DIR` reads it.  mount serves the same tree of a
live machine over FUSE (pip install 'sparsemem[fuse]', and libfuse: apt-get install fuse3)
in the foreground until `umount MOUNTPOINT` or Ctrl-C; writes change the machine.  To run
chmem or the kernel's memory-hotplug selftest unchanged against it, bind-mount it over the
real directories in a private mount namespace (as root):

  unshare -m sh -c 'mount --bind MNT/sys/devices/system/memory /sys/devices/system/memory &&
                    mount --bind MNT/sys/devices/system/node /sys/devices/system/node &&
                    chmem -e 256M'

examples:
  sparsemem sysfs export layout.txt /tmp/root --kernel 5.3 && lsmem --sysroot /tmp/root
  sparsemem sysfs mount layout.txt /mnt/sim --save final.pickle
"""


_FLEET_EPILOG = """\
columns (one row per namespace; -o FILE.csv or FILE.parquet):
  host, region, namespace, mode       which namespace (mode as requested)
  usable_from, usable_to              Namespace.size under K1 and after the reboot under K2
  enabled_from, enabled_to            enabled under K1 / after the reboot
  errno_to, dmesg_to                  why K2's probe failed (errno name, kernel log line)
  memmap_ram_from, memmap_ram_to      struct-page bytes taken from System RAM by enabling it
  errno_from, dmesg_from              why K1 refused it; mode_to: the mode K2 probed
  error                               the host could not be read or booted (other columns empty)
every host: its ndctl JSON's namespaces in order, then the default namespace on every other
region (as 'report' does), under K1; then reboot(kernel=K2) with the same media.

examples:
  sparsemem fleet hosts/ --from 5.2 --to 5.3 -o upgrade.parquet --plot upgrade.png
  sparsemem fleet hosts.tar.gz --from 5.10 --to 6.8 --workers 8 -o upgrade.csv
  sparsemem fleet hosts.zip --from 5.2 --to 5.3 --scheduler tcp://10.0.0.5:8786
needs: pip install 'sparsemem[fleet]' (dask[distributed], pyarrow, tqdm)
"""


class _Parser(argparse.ArgumentParser):
    """argparse with exit status 2 and a one-line message for usage errors."""

    def error(self, message):  # pragma: no cover - exercised through the subprocess tests
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def _kernel_arg(value: str) -> str:
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
    r.add_argument("files", nargs="*", metavar="LAYOUT",
                   help="/proc/iomem (as root), dmesg or journalctl -k output as printed, a "
                        "/sys/firmware/memmap dump, or - for standard input (default: standard "
                        "input when it is a file or pipe, else this machine's /proc/iomem when it "
                        "shows real addresses, else the bundled layout of ndctl issue #76)")
    r.add_argument("--kernel", "-k", action="append", type=_kernel_arg, metavar="V",
                   help=f"kernel version to model, repeatable (default: {' and '.join(DEFAULT_KERNELS)}); "
                        f"modelled: {version_range()}; {VERSION_FORMS}, so $(uname -r) works")
    out = r.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true",
                     help=f"print the report as one JSON object (schema: sparsemem.report.REPORT_SCHEMA, "
                          f"version {REPORT_VERSION})")
    out.add_argument("--jsonl", action="store_true",
                     help="print one JSON object per layout and line, as each is ready (each a report "
                          "of one layout, same schema)")
    r.add_argument("--ndctl", metavar="FILE",
                   help="'ndctl list -N' (or -RN) / 'daxctl list' JSON of the machine: the existing "
                        "namespaces' mode, map, align and size that /proc/iomem cannot show "
                        "(applies to every LAYOUT; without it, a layout STEM.EXT is read with the "
                        "STEM.json beside it, if there is one)")
    r.add_argument("--check", action="store_true",
                   help="exit with status 3 when a namespace fails or loses capacity beyond its "
                        "metadata (padding, unallocated space); the reasons go to stderr")
    r.add_argument("--plot", metavar="FILE.png|DIR/",
                   help="also draw the physical address map around every region (needs matplotlib); "
                        "DIR/ (or an existing directory) writes one PNG per layout")
    r.add_argument("--upgrade", action="store_true",
                   help="also show what happens to the namespaces made under the first --kernel "
                        "when the machine is rebooted with the same media under each later one "
                        "(and rolled back): usable size, metadata, memmap in pmem and RAM, errors; "
                        "needs two or more kernels")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="a progress bar on stderr (default: only when stderr is a terminal and "
                        "there is more than one layout)")

    # lsmem's own options are parsed as getopt_long parses them (sparsemem.lsmem.parse_args):
    # everything after "lsmem" goes there unchanged, "--help" included
    m = sub.add_parser("lsmem", prefix_chars="\0", add_help=False,
                       help="memory blocks of a layout, byte for byte as util-linux lsmem prints them")
    m.add_argument("args", nargs=argparse.REMAINDER)

    s = sub.add_parser("sysfs", formatter_class=fmt, epilog=_SYSFS_EPILOG,
                       help="write a layout's sysfs tree, or serve a live machine over FUSE",
                       description="The memory sysfs of a booted layout, for the real tools.")
    ssub = s.add_subparsers(dest="sysfs_command", metavar="{export,mount}", parser_class=_Parser)
    ssub.required = True
    se = ssub.add_parser("export", help="write DIR/sys/... for lsmem --sysroot DIR",
                         description="Boot a layout and write its sysfs tree under DIR.")
    sm = ssub.add_parser("mount", help="serve a live machine at MOUNTPOINT over FUSE until unmounted",
                         description="Boot a layout and serve its sysfs tree at MOUNTPOINT over FUSE.")
    for sp, where in ((se, "DIR"), (sm, "MOUNTPOINT")):
        sp.add_argument("file", metavar="IOMEM_FILE", help="/proc/iomem text or dmesg e820 lines")
        sp.add_argument("dest", metavar=where, help="the system root to write" if where == "DIR"
                        else "an existing directory to mount on")
        sp.add_argument("--kernel", "-k", type=_kernel_arg, default=DEFAULT_KERNEL, metavar="V",
                        help=f"kernel version to model (default: {DEFAULT_KERNEL})")
    sm.add_argument("--save", metavar="FILE", help="pickle the final machine into FILE at unmount")
    sm.add_argument("--dyndbg", action="store_true",
                    help="boot with dynamic debug for memory hotplug (Machine(dyndbg=True)): the kernel's "
                         "pr_debug lines, such as why an offline failed, reach the saved machine's dmesg")

    f = sub.add_parser("fleet", formatter_class=fmt, epilog=_FLEET_EPILOG,
                       help="upgrade every host of an inventory from K1 to K2 (on Dask)",
                       description="Boot every host of an inventory under K1 with its namespaces, reboot it "
                                   "under K2, and tabulate what each namespace gets.")
    f.add_argument("inventory", nargs="+", metavar="INVENTORY",
                   help="a directory or a tar/zip archive of per-host layouts (each optionally with its "
                        "'ndctl list -N' JSON under the same stem), or a layout file")
    f.add_argument("--from", dest="k1", required=True, type=_kernel_arg, metavar="K1", help="release before")
    f.add_argument("--to", dest="k2", required=True, type=_kernel_arg, metavar="K2", help="release after")
    f.add_argument("-o", "--output", metavar="FILE.csv|FILE.parquet",
                   help="write one row per namespace (CSV, or Parquet by the suffix)")
    cluster = f.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=_positive_int, metavar="N",
                         help="worker processes of the local Dask cluster (default: one per CPU)")
    cluster.add_argument("--scheduler", metavar="ADDRESS",
                         help="use a running Dask scheduler, e.g. tcp://10.0.0.5:8786, and its workers")
    f.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="hosts per Dask task (default: %(default)s)")
    f.add_argument("--plot", metavar="FILE.png",
                   help="also draw the capacity change per host and the failures by errno (needs matplotlib)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar (it is shown only on a terminal)")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


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
    if len(text) <= _col_w[0]:
        return text
    nrs = ", ".join("%#x" % s["section"] for s in secs)
    text = f"{len(secs)} ({nrs})"
    return text if len(text) <= _col_w[0] else f"{len(secs)} sections"


def _cells(res: dict, region_name: str) -> dict:
    ns = res["namespace"]
    lost = res["lost"]
    own = ns["dev"] if ns else region_name
    return {
        "namespace": (f"{ns['dev']} {_hex_range(ns['start'], ns['end'])}" if ns else "-"),
        "usable": format_size(res["capacity"]),
        "lost": format_size(lost["total"]),
        "  padding": format_size(lost["padding"]),
        "  metadata": format_size(lost["metadata"]),
        # an existing configuration's uncovered bytes are the region's free capacity, not lost
        # (explain.lost_capacity)
        "  unallocated": format_size(lost["unallocated"]) + (" (free)" if res.get("existing") and
                                                             lost["unallocated"] else ""),
        "  other": format_size(lost["other"]),
        "existing": _existing_cell(res),
        "system RAM": format_size(_kmem_bytes(res)),
        "memmap in pmem": format_size(res["memmap"]["pmem"]),
        "memmap in RAM": format_size(res["memmap"]["ram"]),
        "shared sections": _shared_cell(res, own),
    }


def _kmem_bytes(res: dict) -> int:
    """Bytes of the region hot-added as System RAM (kmem), in or outside a namespace."""
    n = sum(k["size"] for k in res.get("kmem") or () if k["result"] == "ok")
    return n + sum((ns.get("kmem") or {}).get("size", 0) for ns in res.get("namespaces") or ())


def _existing_cell(res: dict) -> str:
    """What the layout already had on the region: ``devdax dax0.0 kmem``, ``2 namespaces``."""
    if not res.get("existing"):
        return ""
    nss = res.get("namespaces") or []
    if len(nss) > 1:
        text = f"{len(nss)} namespaces ({', '.join(sorted({n['mode'] for n in nss}))})"
        return text if len(text) < _col_w[0] else f"{len(nss)} namespaces"
    if nss:
        ns = nss[0]
        return " ".join(x for x in (ns["mode"], ns.get("chardev") if ns["mode"] == "devdax" else None,
                                     "kmem" if ns.get("kmem") else None) if x)
    return "System RAM (kmem)" if res.get("kmem") else "-"


def format_size(n: int) -> str:
    return _format_size(n)


#: the column width of the report being formatted: _COL_W for one or two kernels, narrower
#: for more so that the report stays within _WIDTH columns (set by format_report)
_col_w = [_COL_W]


def _row(label: str, cells: Sequence[str]) -> str:
    w = _col_w[0]
    return (f"  {label:<{_LABEL_W}}" + "".join(f"{c:<{w}}" for c in cells)).rstrip()


def _kernel_label(r: dict) -> str:
    """Column header of one kernel: ``5.3 (subsection)``; a release on a partly modelled row
    names the row: ``6.1 (6.1 row; sparse/hotplug rows after 5.3 partly modelled)``
    (:attr:`sparsemem.kernel.KernelModel.label`), in narrow columns ``6.1 (6.1 row, partial)``."""
    try:
        model = kernel_model(r["kernel"])
    except (ValueError, TypeError):
        return f"{r['kernel']} ({r['era']})"
    label = model.label_for(r["kernel"])
    if len(label) >= _col_w[0]:      # narrow columns
        label = f"{r['kernel']} ({model.rules} row, partial)" if model.approximate else f"{r['kernel']} ({model.era})"
    return label


def format_report(rep: dict) -> str:
    """The human-readable report (aligned in 100 columns: 40 per kernel for one or two
    kernels, narrower for more)."""
    lines: list[str] = []
    kernels = [k["version"] for k in rep["kernels"]]
    _col_w[0] = _COL_W if len(kernels) <= 2 else max(26, (_WIDTH - _LABEL_W - 2) // len(kernels))
    for li, lay in enumerate(rep["layouts"]):
        if li:
            lines.append("")
        name = os.path.basename(lay["file"]) + (" (bundled)" if lay["bundled"] else "")
        lines.append(f"layout {name}")
        if lay.get("source") and " " not in lay["source"]:   # a URL: on one line, whatever its length
            lines.append(f"  source: {lay['source']}")
        elif lay.get("source"):
            lines.extend(textwrap.wrap(f"source: {lay['source']}", width=_WIDTH, initial_indent="  ",
                                       subsequent_indent="    ", break_long_words=False, break_on_hyphens=False))
        notes = (lay.get("input") or {}).get("notes")
        if notes:
            lines.extend(textwrap.wrap(f"read as {lay['input']['format']}: " + "; ".join(notes), width=_WIDTH,
                                       initial_indent="  ", subsequent_indent="    "))
        if not lay["regions"]:
            lines.append("  no pmem regions in this layout")
            lines.extend(_kmem_lines(lay))
            lines.extend(_dax_lines(lay))
            lines.extend(_observation_lines(lay))
            continue
        for reg in lay["regions"]:
            lines.append("")
            lines.append(f"{reg['dev']}  {_hex_range(reg['start'], reg['end'])}  {format_size(reg['size'])}"
                         f"  sections {reg['first_section']:#x}-{reg['last_section']:#x}")
            by_k = {r["kernel"]: r for r in reg["results"]}
            res = [by_k.get(k) for k in kernels]
            lines.append(_row("", [_kernel_label(r) if r else "" for r in res]))
            cells = [_cells(r, reg["dev"]) if r else {} for r in res]
            if any(len(c.get("namespace", "")) >= _col_w[0] for c in cells):
                # narrow columns: the namespace's name, then its range on a row of its own
                for c, r in zip(cells, res):
                    ns = r["namespace"] if r else None
                    c["namespace"] = ns["dev"] if ns else ("-" if r else "")
                    c["  range"] = _hex_range(ns["start"], ns["end"]) if ns else ""
                cells = [{k: c.get(k, "") for k in ("namespace", "  range", *[x for x in c if x not in
                                                                                ("namespace", "  range")])}
                         for c in cells]
            keys = list(cells[0]) if cells and cells[0] else []
            for key in keys:
                if key in ("  unallocated", "  other") and all(
                        r is None or r["lost"][key.strip()] == 0 for r in res):
                    continue
                if key == "existing" and not any(r and r.get("existing") for r in res):
                    continue
                if key == "system RAM" and not any(r and _kmem_bytes(r) for r in res):
                    continue
                lines.append(_row(key, [c.get(key, "") for c in cells]))
            results = [("ok" if r["result"] == "ok" else f"{r['result']}: {r['message']}") if r else ""
                       for r in res]
            if all(len(t) < _col_w[0] for t in results):
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
            for k, r in zip(kernels, res):
                # what that release prints on the way to the failure, as dmesg shows it
                if r and r["result"] != "ok":
                    shown = r["dmesg"][:_DMESG_LINES]
                    for i, text in enumerate(shown):
                        lines.append(_row(f"dmesg {k}" if i == 0 else "", [text]))
                    if len(r["dmesg"]) > len(shown):
                        lines.append(_row("", [f"... {len(r['dmesg']) - len(shown)} more lines (--json has all)"]))
            for k, r in zip(kernels, res):
                # hook for computed hints (issue 13, item 3): each a str or {"text": ...}
                for hint in (r or {}).get("hints") or ():
                    text = hint["text"] if isinstance(hint, dict) else str(hint)
                    lines.extend(textwrap.wrap(f"{k}: {text}", width=_WIDTH,
                                               initial_indent="  hint" + " " * (_LABEL_W - 4),
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
        lines.extend(textwrap.wrap(line, width=_WIDTH, subsequent_indent="  ", break_on_hyphens=False))
        lines.extend(_kmem_lines(lay))
        lines.extend(_dax_lines(lay))
        lines.extend(_observation_lines(lay))
        lines.extend(_upgrade_lines(lay))
    return "\n".join(lines) + "\n"


def _upgrade_lines(lay: dict) -> list[str]:
    """``--upgrade``: per namespace made under the first kernel, one line per later kernel."""
    up = lay.get("upgrade")
    if not up:
        return []
    out = ["", f"upgrade: namespaces made under {up['from']}, rebooted under {', '.join(up['to'])} and back"]
    if not up["namespaces"]:
        out.append("  no namespace was made")
    for row in up["namespaces"]:
        c = row["created"]
        out.append(f"  {row['dev']} ({row['mode']}) under {up['from']}: usable {format_size(c['usable'])}, "
                   f"metadata {format_size(c['metadata'])}, memmap pmem {format_size(c['memmap']['pmem'])} "
                   f"RAM {format_size(c['memmap']['ram'])}")
        for b in row["booted"]:
            what = b["result"] if b["result"] in ("ok", "raw-fallback", "dax-unbound") else \
                f"{b['result']}: {b['message']}"
            text = (f"{b['kernel']}: {what}; usable {format_size(b['usable'])}, metadata "
                    f"{format_size(b['metadata'])}, memmap pmem {format_size(b['memmap']['pmem'])} RAM "
                    f"{format_size(b['memmap']['ram'])}; back to {up['from']}: "
                    f"{'as created' if b['rollback'] else 'differs'}")
            out.extend(textwrap.wrap(text, width=_WIDTH, initial_indent="    ", subsequent_indent="      "))
    return out


def _kmem_lines(lay: dict) -> list[str]:
    """Device memory outside the pmem regions that the layout shows as System RAM (hmem,
    CXL), per kernel: what became System RAM and what it costs (kmem.md K §9)."""
    ks = lay.get("kmem") or []
    if not ks:
        return []
    out = ["", "device memory as System RAM (kmem), outside the pmem regions"]
    for k in ks:
        what = "ok" if k["result"] == "ok" else f"{k['result']}: {k['message']}"
        text = (f"{k['kernel']}: {k['dev'] or 'System RAM'} in {k['parent']} {_hex_range(k['start'], k['end'])} "
                f"{format_size(k['end'] + 1 - k['start'])}: {what}; {k['blocks']} blocks ({k['online']} online), "
                f"memmap in RAM {format_size(k['memmap']['ram'])}")
        out.extend(textwrap.wrap(text, width=_WIDTH, initial_indent="  ", subsequent_indent="    "))
    return out


def _dax_lines(lay: dict) -> list[str]:
    """Every dax device per kernel as System RAM (kmem.md K §9): what becomes System RAM, what
    alignment and metadata lose, the memmap in DRAM or in the device, the zones, the failure."""
    ds = lay.get("dax") or []
    if not ds:
        return []
    out = ["", "dax devices as System RAM (daxctl reconfigure-device --mode=system-ram)"]
    for d in ds:
        head = (f"{d['kernel']}: {d['dev']} ({d['kind']}, node {d['target_node']}, was {d['mode_before']}) "
                f"{_hex_range(d['start'], d['end'])} {format_size(d['size'])}: ")
        if d["result"] != "ok":
            text = head + f"{d['result']}: {d['message']}"
        else:
            zones = ", ".join(f"{n} {z}" for z, n in sorted(d["zones"].items())) or "no blocks"
            text = head + (f"{format_size(d['kmem_bytes'])} System RAM in {d['blocks']} blocks ({zones}); "
                           f"lost to alignment {format_size(d['lost_alignment'])}, metadata "
                           f"{format_size(d['lost_metadata'])}; memmap in RAM {format_size(d['memmap_dram'])}"
                           + (f", in the device {format_size(d['memmap_self'])}" if d["memmap_self"] else ""))
        out.extend(textwrap.wrap(text, width=_WIDTH, initial_indent="  ", subsequent_indent="    "))
    return out


#: dmesg lines shown per failed namespace and kernel in the text report
_DMESG_LINES = 12


def _obs_value(kind: str, value) -> str:
    if value is None:
        return "none"
    if isinstance(value, int):
        return f"{value:#x}" if kind.endswith("resource") else str(value)
    return str(value)


def _observation_lines(lay: dict) -> list[str]:
    """The layout's '# observed:' lines with agree/differ per kernel (explain.py)."""
    obs = lay.get("observations") or []
    compared = [o for o in obs if o["compared"]]
    if not obs:
        return []
    if not compared:
        return ["", f"observed: {len(obs)} '# observed:' line{'s' if len(obs) != 1 else ''}, "
                    f"nothing in the report to compare with"]
    out = ["", "observed (the layout's '# observed:' lines against each kernel's prediction)"]
    for o in compared:
        text = " ".join(strip_log_prefix(o["text"])[0].split())  # the message, as in the dmesg rows
        out.append("  " + (text if len(text) <= _WIDTH - 2 else text[:_WIDTH - 5] + "..."))
        for r in o["results"]:
            obs_v, pred_v = _obs_value(o["kind"], r["observed"]), _obs_value(o["kind"], r["predicted"])
            if o["kind"] == "message":
                cell = f"{r['kernel']} {r['verdict']}: " + ("predicted too" if r["verdict"] == "agree"
                                                            else "not predicted")
            elif r["verdict"] == "agree":
                cell = f"{r['kernel']} agree: {pred_v}"
            else:
                cell = f"{r['kernel']} differ: predicted {pred_v}, observed {obs_v}"
            out.append(_row("", [cell]))
    rest = len(obs) - len(compared)
    if rest:
        out.append(f"  {rest} other observed line{'s' if rest != 1 else ''}: nothing in the report to compare with")
    return out


# ---------------------------------------------------------------------------------------------
# commands


class _Fail(Exception):
    """A one-line error with an exit status."""

    def __init__(self, message: str, status: int = 1):
        super().__init__(message)
        self.status = status


def _stdin_is_input() -> bool:
    """Standard input is a file or a pipe (``report < f``, ``dmesg | report``), not a terminal,
    /dev/null or a socket."""
    try:
        mode = os.fstat(0).st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISREG(mode) or stat.S_ISFIFO(mode)


def _default_source(command: str) -> tuple[str, Optional[str], bool]:
    """What ``report`` / ``lsmem`` read without a LAYOUT: ``(path, text, bundled)``.  This
    machine's /proc/iomem when it shows real addresses; else the reason goes to stderr and the
    bundled layout is used."""
    text, where = machine_iomem()
    if text is not None:
        return where, text, False
    files = bundled_layouts()
    if not files:
        raise _Fail(f"{where}, and no bundled layout was found in the package (sparsemem/data/*.txt)")
    print(f"{PROG} {command}: {where}; using the bundled layout {os.path.basename(files[0])} instead",
          file=sys.stderr)
    return files[0], None, True


def _load_one(path: Optional[str], text: Optional[str] = None, bundled: bool = False):
    if path is None:  # lsmem without a LAYOUT: as report
        path, text, bundled = ("-", None, False) if _stdin_is_input() else _default_source("lsmem")
    name = "<stdin>" if path == "-" else path
    try:
        return load_layout(path, bundled=bundled, text=text)
    except OSError as exc:
        raise _Fail(f"{name}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        raise _Fail(msg if name in msg else f"{name}: {msg}") from None


class _Progress:
    """A tqdm bar on stderr (or nothing), cleared around every other write to the terminal."""

    def __init__(self, total: int, enabled: bool):
        self.bar = None
        if enabled:
            try:
                from tqdm import tqdm  # noqa: PLC0415 -- start-up: 20 ms, only for a progress bar
            except ImportError:  # pragma: no cover - tqdm is a dependency
                return
            # on a terminal the bar goes away at the end; forced onto a file or pipe
            # (--progress), its last state stays as a record
            try:
                cols = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError, AttributeError):
                cols = 0
            self.bar = tqdm(total=total, unit="layout", file=sys.stderr, dynamic_ncols=cols > 0,
                            ncols=None if cols > 0 else 80, desc=PROG, leave=not _isatty(sys.stderr),
                            mininterval=0.1)

    def write(self, stream, text: str) -> None:
        if self.bar is not None:
            self.bar.clear()
        stream.write(text)
        stream.flush()
        if self.bar is not None:
            self.bar.refresh()

    def update(self, bad: int) -> None:
        if self.bar is not None:
            if bad:
                self.bar.set_postfix(unreadable=bad, refresh=False)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class _JsonStream:
    """``--json`` printed layout by layout: the same text as ``json.dumps(report, indent=2)``
    once closed, valid JSON also after Ctrl-C."""

    def __init__(self, head: dict, out):
        text = json.dumps({**head, "layouts": ["\0"]}, indent=2)
        self.open, self.tail = text.split('"\\u0000"')
        self.head, self.out, self.n = head, out, 0

    def chunk(self, lay: dict) -> str:
        body = json.dumps(lay, indent=2).replace("\n", "\n    ")
        text = (self.open if self.n == 0 else ",\n    ") + body
        self.n += 1
        return text

    def close(self) -> str:
        return self.tail + "\n" if self.n else json.dumps({**self.head, "layouts": []}, indent=2) + "\n"


def _read_ndctl(path: str) -> str:
    """The text of an ``ndctl list`` / ``daxctl list`` JSON file, checked (``_Fail`` naming
    the file when it cannot be read or is not such JSON)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError as exc:
        raise _Fail(f"{path}: cannot read: {exc.strerror or exc}") from None
    from .existing import parse_ndctl_json  # noqa: PLC0415 -- start-up: the simulator, only with JSON

    try:
        parse_ndctl_json(text)
    except ValueError as exc:
        raise _Fail(f"{path}: {exc}") from None
    return text


def _beside_json(path: str) -> Optional[str]:
    """``STEM.json`` beside the layout file ``STEM.EXT`` (``host042.txt`` +
    ``host042.json``, as a ``fleet`` inventory pairs them), or ``None``."""
    if path == "-":
        return None
    js = os.path.splitext(path)[0] + ".json"
    return js if js != path and os.path.isfile(js) else None


def _plot_target(path: str) -> str:
    """``"dir"`` for ``DIR/`` or an existing directory (created if need be), else ``"file"``."""
    if path.endswith(("/", os.sep)) or os.path.isdir(path):
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as exc:
            raise _Fail(f"{path}: cannot create the plot directory: {exc.strerror or exc}") from None
        return "dir"
    return "file"


def _plot_name(directory: str, lay: dict, used: set) -> str:
    stem = os.path.splitext(os.path.basename(lay["file"]))[0] or "layout"
    stem = "".join(c if c.isalnum() or c in "._-@=+" else "_" for c in stem)[:120] or "layout"
    name, i = stem, 1
    while name in used:
        i += 1
        name = f"{stem}-{i}"
    used.add(name)
    return os.path.join(directory, name + ".png")


def _cmd_report(args) -> int:
    kernels = list(dict.fromkeys(args.kernel or DEFAULT_KERNELS))
    if args.upgrade and len(kernels) < 2:
        raise _Fail("argument --upgrade: needs two or more different --kernel values (the first is "
                    "the one the namespaces are made under)", status=2)
    if args.files.count("-") > 1:
        raise _Fail("standard input ('-') can be read only once", status=2)
    plot_mod = plot_kind = None
    if args.plot:
        plot_mod = _plot_module()
        plot_kind = _plot_target(args.plot)
    sources: list[tuple[str, Optional[str], bool]]   # (path, text, bundled)
    if args.files:
        sources = [(p, None, False) for p in args.files]
    elif _stdin_is_input():
        sources = [("-", None, False)]
    else:
        sources = [_default_source("report")]
    ndctl = _read_ndctl(args.ndctl) if args.ndctl else None
    head = {"version": REPORT_VERSION, "kernels": [{"version": k, "era": kernel_model(k).era} for k in kernels]}
    out = sys.stdout
    progress = _Progress(len(sources), args.progress if args.progress is not None
                         else (len(sources) > 1 and _isatty(sys.stderr)))
    stream = _JsonStream(head, out) if args.json else None
    done = 0  # layouts reported
    to_plot: list[dict] = []  # kept only for one --plot FILE of them all
    summary_only = False  # that file will be the summary figure (plot.plot_summary)
    used_names: set = set()
    bad = findings = 0
    status = 0
    try:
        for path, text, bundled in sources:
            try:
                lay = _load_one(path, text, bundled)
                lay.ndctl = ndctl
                beside = None if args.ndctl or bundled or text is not None else _beside_json(path)
                if text is not None and lay.input is not None:
                    lay.input.notes.append("this machine's map (no LAYOUT given)")
                if beside is not None:
                    # as 'fleet' pairs a host's layout with its JSON (docs/existing.md)
                    lay.ndctl = _read_ndctl(beside)
                    if lay.input is not None:
                        lay.input.notes.append(f"existing namespaces also from {beside} (the ndctl JSON "
                                               f"beside the layout)")
                try:
                    rep = report_layout(lay, kernels, keep_state=plot_mod is not None and not summary_only,
                                        upgrade=args.upgrade)
                except (ValueError, OSError) as exc:
                    # the simulation refused the layout while booting it: name the file
                    raise _Fail(_boot_error([lay], exc)) from None
                except Exception as exc:  # noqa: BLE001 - one layout must not end the batch
                    raise _Fail(f"{lay.file}: internal error: {type(exc).__name__}: "
                                f"{' '.join(str(exc).split())}") from None
            except _Fail as exc:
                bad += 1
                progress.write(sys.stderr, f"{PROG}: error: {exc}\n")
                progress.update(bad)
                continue
            public = {k: v for k, v in rep.items() if k != "_state"}
            if stream is not None:
                text_out = stream.chunk(public)
            elif args.jsonl:
                text_out = json.dumps({**head, "layouts": [public]}) + "\n"
            else:
                text_out = ("\n" if done else "") + format_report({**head, "layouts": [public]})
            progress.write(out, text_out)
            done += 1
            if plot_kind == "file" and plot_mod is not None:
                # one file of them all: a detailed map while it stays readable, else the bounded
                # summary, which needs a small record per layout only (memory stays small)
                if summary_only:
                    to_plot.append(plot_mod.summary_record(rep))
                else:
                    to_plot.append(rep)
                    if len(to_plot) * len(kernels) > plot_mod.MAX_PANELS:
                        summary_only = True
                        to_plot = [plot_mod.summary_record(r) for r in to_plot]
            if plot_kind == "dir":
                target = _plot_name(args.plot, rep, used_names)
                _write_plot(plot_mod, {**head, "layouts": [rep]}, target)
            if args.check and rep["check"]:
                findings += 1
                progress.write(sys.stderr, "".join(f"{PROG}: check: {os.path.basename(rep['file'])}: {f['text']}\n"
                                                   for f in rep["check"]))
            progress.update(bad)
    except KeyboardInterrupt:
        progress.close()
        if stream is not None:
            out.write(stream.close())
        out.flush()
        print(f"{PROG}: interrupted: {done} of {len(sources)} layouts reported", file=sys.stderr)
        return 130
    progress.close()
    if stream is not None:
        out.write(stream.close())
    if plot_kind == "file" and to_plot:
        _write_plot(plot_mod, {**head, "layouts": to_plot}, args.plot)
        if not (args.json or args.jsonl):
            out.write(f"plot written to {args.plot}\n")
    elif plot_kind == "dir" and done and not (args.json or args.jsonl):
        out.write(f"plots written to {args.plot} ({done} file{'s' if done != 1 else ''})\n")
    out.flush()
    if bad:
        status = 1
        if len(sources) > 1:
            print(f"{PROG}: {bad} of {len(sources)} layouts could not be read or booted", file=sys.stderr)
    elif findings:
        status = 3
    return status


def _isatty(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def _plot_module(status: int = 1):
    """:mod:`sparsemem.plot` with matplotlib loaded, or ``_Fail`` saying what to install."""
    try:
        from . import plot  # noqa: PLC0415 -- start-up: 6 ms, only for --plot
        plot.require_matplotlib()
    except ImportError:
        raise _Fail("matplotlib is not installed: pip install 'sparsemem[plot]'", status=status) from None
    return plot


def _write_plot(plot_mod, rep: dict, path: str) -> None:
    try:
        plot_mod.plot_report(rep, path)
    except OSError as exc:
        raise _Fail(f"{path}: cannot write the plot: {exc.strerror or exc}") from None


def _boot_error(layouts, exc) -> str:
    msg = " ".join(str(exc).split())
    if any(lay.file in msg for lay in layouts):
        return msg
    names = ", ".join(lay.file for lay in layouts)
    return f"{names}: {msg}"


def _boot_layout(path: str, kernel: Optional[str], dyndbg: bool = False):
    """The machine booted from the layout file ``path`` (``_Fail`` naming the file if not)."""
    from .machine import Machine  # noqa: PLC0415 -- start-up: the simulator, 30 ms, only to boot

    kernel = DEFAULT_KERNEL if kernel is None else kernel
    try:
        _kernel_arg(kernel)
    except argparse.ArgumentTypeError as exc:
        raise _Fail(f"argument --kernel/-k: {exc}", status=2) from None
    lay = _load_one(path)
    try:
        return Machine.from_iomem(lay.text, kernel=kernel, dyndbg=dyndbg)
    except (ValueError, OSError) as exc:
        raise _Fail(_boot_error([lay], exc)) from None


def _cmd_lsmem(args) -> int:
    from .lsmem import main as lsmem_main  # noqa: PLC0415 -- start-up: 8 ms, only for lsmem

    return lsmem_main(args.args, prog=f"{PROG} lsmem", boot=_boot_layout)


def _cmd_sysfs(args) -> int:
    if args.sysfs_command == "export":
        machine = _boot_layout(args.file, args.kernel)
        try:
            n = export(machine, args.dest)
        except OSError as exc:
            raise _Fail(f"{exc.filename or args.dest}: cannot write the tree: {exc.strerror or exc}") from None
        sys.stdout.write(f"{args.dest}: {n} sysfs entries of {args.file} (kernel {machine.kernel}); "
                         f"read with: lsmem --sysroot {args.dest}\n")
        return 0
    if not os.path.isdir(args.dest):
        raise _Fail(f"{args.dest}: not a directory (the mount point must exist)")
    try:
        fusefs.load_binding()
    except fusefs.FuseUnavailable as exc:
        raise _Fail(str(exc)) from None
    if args.save and not os.access(os.path.dirname(os.path.abspath(args.save)), os.W_OK):
        raise _Fail(f"{args.save}: cannot write there")
    machine = _boot_layout(args.file, args.kernel, dyndbg=args.dyndbg)
    print(f"{PROG}: serving {args.file} (kernel {machine.kernel}) at {args.dest}; "
          f"stop with 'umount {args.dest}' or Ctrl-C", file=sys.stderr, flush=True)
    try:
        fusefs.serve(machine, args.dest)
    except RuntimeError as exc:
        raise _Fail(f"{args.dest}: cannot mount ({exc})") from None
    if args.save:
        with open(args.save, "wb") as f:
            pickle.dump(machine, f)
        print(f"{PROG}: machine saved to {args.save}", file=sys.stderr)
    return 0


def _cmd_fleet(args) -> int:
    out = args.output
    try:
        fleet.require_fleet_extra(parquet=bool(out) and out.lower().endswith((".parquet", ".pq")))
    except fleet.MissingExtra as exc:
        raise _Fail(str(exc), status=2) from None
    if args.plot:
        _plot_module(status=2)
    for p in args.inventory:
        if not os.path.exists(p):
            raise _Fail(f"{p}: no such inventory (a directory, a tar/zip archive or a layout file)")
    try:
        summary = fleet.run_fleet(args.inventory, args.k1, args.k2, output=out, workers=args.workers,
                                  scheduler=args.scheduler,
                                  batch_size=args.batch_size,
                                  progress=False if args.no_progress else None)
    except OSError as exc:
        name = getattr(exc, "filename", None) or out or ""
        raise _Fail(f"{name}: {exc.strerror or exc}") from None
    sys.stdout.write(fleet.format_summary(summary))
    if args.plot:
        try:
            fleet.plot_fleet(summary, args.plot)
        except OSError as exc:
            raise _Fail(f"{args.plot}: cannot write the plot: {exc.strerror or exc}") from None
        sys.stdout.write(f"plot written to {args.plot}\n")
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
        if args.command == "sysfs":
            return _cmd_sysfs(args)
        if args.command == "fleet":
            return _cmd_fleet(args)
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
