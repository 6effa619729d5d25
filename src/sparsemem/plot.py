"""``sparsemem report --plot FILE.png``: the physical address map around every pmem region.

The detail: docs/plot.md.
"""

from __future__ import annotations

import os
import textwrap
import types
from typing import NamedTuple, Optional

import numpy as np

from .kernel import kernel_model
from .report import SECTION_SIZE, SUBSECTIONS, format_size, owner_intervals, subsection_owners

__all__ = ["require_matplotlib", "plot_report", "plot_summary", "summary_record", "CONTEXT", "MAX_PANELS",
           "MAX_SUMMARY_LAYOUTS"]

#: sections shown on each side of a region boundary
CONTEXT = 2
#: most (layout, kernel) panels of one detailed figure; beyond it: the summary figure
MAX_PANELS = 8
#: most layouts named in the summary figure (the rest are counted)
MAX_SUMMARY_LAYOUTS = 40

_RAM = "#8c8c8c"
_HOLE = "#ffffff"
_FREE = "#fde9a9"
_PADDING = "#e0301e"
_NS_COLOURS = ["#1f5fa8", "#2e9e44", "#7b4fb0", "#138d90", "#a8651f", "#b0306a"]


def require_matplotlib():
    """Import matplotlib with the non-interactive Agg backend; ImportError when missing."""
    import matplotlib  # noqa: PLC0415 -- optional extra 'plot'

    matplotlib.use("Agg", force=True)
    _matplotlib()
    return matplotlib


class _Mpl(NamedTuple):
    pyplot: types.ModuleType
    colors: types.ModuleType
    patches: types.ModuleType
    ticker: types.ModuleType


def _matplotlib() -> _Mpl:
    """The matplotlib modules the drawing code uses, imported on first use (after
    :func:`require_matplotlib` chose the backend)."""
    from matplotlib import colors, patches, pyplot, ticker  # noqa: PLC0415 -- optional extra 'plot'

    return _Mpl(pyplot, colors, patches, ticker)


def _lighter(hex_colour: str, amount: float = 0.55) -> str:
    h = hex_colour.lstrip("#")
    r, g, b = (int(h[i:i + 2], 16) for i in (0, 2, 4))
    r, g, b = (int(c + (255 - c) * amount) for c in (r, g, b))
    return f"#{r:02x}{g:02x}{b:02x}"


#: most columns drawn around namespace boundaries inside regions (beyond: region ends only)
MAX_COLUMNS = 40


def _columns(regions: list[dict], context: int = CONTEXT, namespaces: bool = True) -> list[Optional[int]]:
    """Section numbers to draw, in order, with ``None`` where a break goes: around every
    region's ends and, while that stays within :data:`MAX_COLUMNS`, around where each of
    its namespaces starts and ends (an existing configuration: two namespaces and free
    space in one region)."""
    wanted: set[int] = set()
    for reg in regions:
        bounds = {reg["start"], reg["end"] + 1}
        for ns in reg.get("namespaces", ()) if namespaces else ():
            bounds.update((ns["start"], ns["start"] + ns["raw_size"]))
        for boundary in sorted(bounds):
            sec = boundary // SECTION_SIZE
            # the boundary section itself when the boundary is mid-section, else the two sides
            lo = sec - context
            hi = sec + context if boundary % SECTION_SIZE else sec + context - 1
            wanted.update(range(max(lo, 0), hi + 1))
    cols: list[Optional[int]] = []
    prev = None
    for s in sorted(wanted):
        if prev is not None and s != prev + 1:
            cols.append(None)
        cols.append(s)
        prev = s
    if namespaces and len(cols) > MAX_COLUMNS:
        return _columns(regions, context, namespaces=False)
    return cols


def _x_of(cols: list, addr: int) -> Optional[float]:
    """x coordinate of a physical address in the drawn columns (None when not drawn)."""
    sec, off = divmod(addr, SECTION_SIZE)
    if sec in cols:
        return cols.index(sec) + off / SECTION_SIZE
    if off == 0 and sec - 1 in cols:
        return cols.index(sec - 1) + 1.0
    return None


def _hatch_range(ax, cols: list, start: int, end: int, hatch: str = "xx", colour: str = "#c00000",
                 fill: Optional[str] = None) -> None:
    """Cross-hatching (red by default: a failed region) over the sub-sections of ``[start,
    end)`` in the drawn columns (at least one sub-section high, so that a tiny failed region
    is still visible), over a half-transparent ``fill`` colour if given."""
    Rectangle = _matplotlib().patches.Rectangle

    sub = SECTION_SIZE // SUBSECTIONS
    for x, c in enumerate(cols):
        if c is None:
            continue
        lo, hi = max(start, c * SECTION_SIZE), min(end, (c + 1) * SECTION_SIZE)
        if lo >= hi:
            continue
        y0 = (lo - c * SECTION_SIZE) / sub
        y1 = max((hi - c * SECTION_SIZE) / sub, y0 + 1)
        if fill is not None:
            ax.add_patch(Rectangle((x, y0), 1, y1 - y0, facecolor=fill, alpha=0.55, lw=0, zorder=5))
        ax.add_patch(Rectangle((x, y0), 1, y1 - y0, fill=False, hatch=hatch, edgecolor=colour,
                               lw=1.0, zorder=5))


def _legend_key(kind: str, owner: str) -> str:
    if kind == "ram":
        return "System RAM"
    if kind == "hole":
        return "nothing (hole)"
    if kind == "free":
        return "region space, no namespace"
    if kind == "padding":
        return "padding (lost: start_pad/end_trunc)"
    if kind == "memmap":
        return f"{owner} memmap/metadata (dataoff)"
    return f"{owner} data"


def plot_report(report: dict, path: str, context: int = CONTEXT) -> None:
    """Draw the address map of every layout/kernel in ``report`` (built with
    ``keep_state=True``) into the PNG ``path``."""
    require_matplotlib()
    mpl = _matplotlib()
    plt, ListedColormap, Patch = mpl.pyplot, mpl.colors.ListedColormap, mpl.patches.Patch

    panels = []
    for lay in report["layouts"]:
        state = lay.get("_state") or {}
        for kinfo in report["kernels"]:
            k = kinfo["version"]
            if k in state:
                panels.append((lay, kinfo, state[k]))
    if len(panels) > MAX_PANELS or any(lay.get("summary") for lay in report["layouts"]):
        plot_summary(report, path)
        return
    if not panels:
        fig, ax = plt.subplots(figsize=(8, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, "nothing to draw: no layout in this report", ha="center", va="center")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return
    if all(not st["regions"] for _, _, st in panels):
        _plot_ram_panels(panels, path)
        return

    # colours: fixed ones first, namespaces in order of appearance
    ns_order: list[str] = []

    def colour(kind: str, owner: str) -> str:
        if kind == "ram":
            return _RAM
        if kind == "hole":
            return _HOLE
        if kind == "free":
            return _FREE
        if kind == "padding":
            return _PADDING
        if owner not in ns_order:
            ns_order.append(owner)
        base = _NS_COLOURS[ns_order.index(owner) % len(_NS_COLOURS)]
        return base if kind == "data" else _lighter(base)

    prepared = []
    max_cols = 1
    for lay, kinfo, st in panels:
        cols = _columns(st["regions"], context)
        intervals = owner_intervals(st["ram"], st["regions"])
        grid_keys: list[Optional[list[tuple[str, str, bool]]]] = []
        for c in cols:
            if c is None:
                grid_keys.append(None)
            else:
                grid_keys.append(subsection_owners(intervals, c))
        prepared.append((lay, kinfo, st, cols, grid_keys))
        max_cols = max(max_cols, len(cols))

    palette: list[str] = []
    index_of: dict[str, int] = {}
    legend: dict[str, str] = {}

    def idx(kind: str, owner: str) -> int:
        col = colour(kind, owner)
        if col not in index_of:
            index_of[col] = len(palette)
            palette.append(col)
        legend.setdefault(_legend_key(kind, owner), col)
        return index_of[col]

    idx("hole", "")  # index 0 is the break background too
    matrices = []
    for lay, kinfo, st, cols, grid_keys in prepared:
        mat = []
        for keys in grid_keys:
            if keys is None:
                mat.append([0] * SUBSECTIONS)
            else:
                mat.append([idx(kind, owner) for kind, owner, _mixed in keys])
        matrices.append(mat)
    legend.pop("nothing (hole)", None)
    legend["nothing (hole)"] = _HOLE

    n = len(prepared)
    width = max(9.0, 0.55 * max_cols + 3.0)
    fig, axes = plt.subplots(n, 1, figsize=(width, 3.1 * n + 1.4), squeeze=False)
    cmap = ListedColormap(palette)

    kmem_drawn = False
    for ax, (lay, kinfo, st, cols, grid_keys), mat in zip(axes[:, 0], prepared, matrices):
        if not cols:  # a layout without pmem: its RAM and memory blocks
            for key, col in _draw_ram(ax, lay, kinfo, st).items():
                legend.setdefault(key, col)
            continue
        data = np.array(mat, dtype=float).T  # rows = sub-sections, columns = sections
        ax.pcolormesh(np.arange(len(cols) + 1), np.arange(SUBSECTIONS + 1), data, cmap=cmap,
                      vmin=-0.5, vmax=len(palette) - 0.5, edgecolors="none", shading="flat")
        # section borders and breaks
        for x, c in enumerate(cols):
            if c is None:
                ax.axvspan(x, x + 1, color="#f2f2f2", zorder=2)
                left = next((cols[i] for i in range(x - 1, -1, -1) if cols[i] is not None), None)
                right = next((cols[i] for i in range(x + 1, len(cols)) if cols[i] is not None), None)
                hidden = (right - left - 1) if left is not None and right is not None else 0
                ax.text(x + 0.5, SUBSECTIONS / 2, f"// {hidden} sections\n({format_size(hidden * SECTION_SIZE)}) //",
                        rotation=90, ha="center", va="center", fontsize=7, color="#444444", zorder=3)
            ax.axvline(x, color="#333333", lw=0.6, zorder=2)
        ax.axvline(len(cols), color="#333333", lw=0.6, zorder=2)
        for y in (16, 32, 48):
            ax.axhline(y, color="#ffffff", lw=0.3, alpha=0.6, zorder=1)
        ax.set_xlim(0, len(cols))
        ax.set_ylim(0, SUBSECTIONS)
        ax.set_yticks([0, 32, 64])
        ax.set_yticklabels(["+0", "+64M", "+128M"], fontsize=7)
        ax.set_ylabel("sub-sections", fontsize=8)
        ax.set_xticks([x + 0.5 for x, c in enumerate(cols) if c is not None])
        ax.set_xticklabels([f"{c:#x}\n{c * SECTION_SIZE:#x}" for c in cols if c is not None],
                           fontsize=6, rotation=90)
        # region annotations: boundary lines, results (stacked in tiers so they never overlap)
        by_name = {r["dev"]: r for r in lay["regions"]}
        pt_per_col = width * 72 * 0.9 / max(len(cols), 1)
        tiers_end: list[float] = []
        for reg in st["regions"]:
            rep = by_name.get(reg["name"])
            res = next((r for r in (rep or {}).get("results", []) if r["kernel"] == kinfo["version"]), None)
            for addr in (reg["start"], reg["end"] + 1):
                xb = _x_of(cols, addr)
                if xb is not None:
                    ax.plot([xb, xb], [0, SUBSECTIONS], color="black", lw=1.2, ls="--", zorder=4)
            xr = _x_of(cols, reg["start"])
            if xr is None:
                continue
            if res is None:
                label, col = reg["name"], "black"
            elif res["result"] == "ok":
                label, col = f"{reg['name']}: ok, {format_size(res['capacity'])}", "#145a14"
            else:
                label, col = f"{reg['name']}: FAILED {res['result']}", "#c00000"
            span = (len(label) * 8 * 0.62 + 6) / pt_per_col
            tier = next((i for i, e in enumerate(tiers_end) if e <= xr), len(tiers_end))
            if tier == len(tiers_end):
                tiers_end.append(0.0)
            tiers_end[tier] = xr + span
            ax.annotate(label, (xr, SUBSECTIONS), xytext=(2, 3 + 11 * tier), textcoords="offset points",
                        fontsize=8, color=col, fontweight="bold", ha="left", va="bottom",
                        annotation_clip=False)
            if res is not None and res["result"] != "ok":
                _hatch_range(ax, cols, reg["start"], reg["end"] + 1)
            # a devdax namespace's data (or the region) hot-added as System RAM by kmem
            for k in [n["kmem"] for n in (res or {}).get("namespaces") or () if n.get("kmem")] + \
                    [k for k in (res or {}).get("kmem") or () if k["result"] == "ok"]:
                if k["size"]:
                    _hatch_range(ax, cols, k["start"], k["start"] + k["size"], "..", "#ffffff", _KMEM)
                    kmem_drawn = True
        total = next((t for t in lay["totals"] if t["kernel"] == kinfo["version"]), None)
        klabel = kernel_model(kinfo["version"]).label_for(kinfo["version"])
        title = f"{os.path.basename(lay['file'])} - kernel {klabel}"
        if total is not None:
            title += f": {format_size(total['capacity'])} usable"
            if total["failed"]:
                title += f", {total['failed']} namespace(s) FAILED"
        ax.set_title(title, fontsize=10, loc="left", pad=16 + 11 * max(len(tiers_end) - 1, 0))
    handles = [Patch(facecolor=c, edgecolor="#555555", label=k) for k, c in legend.items()]
    if kmem_drawn:
        handles.append(Patch(facecolor=_KMEM, hatch="..", edgecolor="#ffffff",
                             label="hot-added as System RAM (kmem)"))
    fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.2 / fig.get_figheight()),
               ncol=min(4, len(handles)), fontsize=8, frameon=False)
    note = ("one column = one 128 MiB section (label: section nr, address); 64 rows = its "
            "2 MiB sub-sections; dashed lines: region boundaries; red hatching: region whose namespace failed")
    if kmem_drawn:
        note += "; blue, dotted: hot-added as System RAM (kmem)"
    if width < 13:  # two lines where one would run off the figure
        note = note.replace("sub-sections; ", "sub-sections;\n", 1)
    fig.text(0.01, 0.005, note, fontsize=7, color="#444444")
    legend_rows = (len(handles) + 3) // 4
    fig.tight_layout(rect=(0, (0.3 + 0.24 * legend_rows + (0.12 if "\n" in note else 0)) / fig.get_figheight(),
                           1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# layouts without pmem: RAM and memory blocks

_BLOCK_COLOURS = {"online": "#4a9a5b", "offline": "#c9e3cf", "going-offline": "#e8b04a"}
#: device memory (Soft Reserved / CXL) that kmem gave to the page allocator
_KMEM = "#3f7fbf"


def _kmem_spans(lay: dict, kernel: str) -> list[tuple[int, int, str]]:
    """``(start, end, where)`` of the device memory outside pmem regions that ``kernel``
    hot-added as System RAM (the report's ``kmem`` entries that are ``ok``)."""
    return [(k["start"], k["end"] + 1, k["parent"]) for k in lay.get("kmem") or ()
            if k["kernel"] == kernel and k["result"] == "ok" and k["size"]]


def _ram_title(lay: dict, kinfo: dict, st: dict) -> str:
    blocks = st.get("blocks") or []
    ram = sum(e - s for s, e in st["ram"])
    klabel = kernel_model(kinfo["version"]).label_for(kinfo["version"])
    sizes = sorted({size for _, size, _ in blocks})
    bsz = format_size(sizes[0]) if len(sizes) == 1 else "mixed sizes"
    online = sum(n for _, n, state in blocks if state == "online")
    kmem = _kmem_spans(lay, kinfo["version"])
    dev = (f" and {format_size(sum(e - s for s, e, _ in kmem))} device memory as System RAM (kmem, in "
           f"{', '.join(sorted({w for _, _, w in kmem}))})") if kmem else ""
    text = (f"kernel {klabel}: no pmem regions; {format_size(ram)} System RAM in {len(st['ram'])} ranges{dev}; "
            f"{len(blocks)} memory blocks of {bsz} ({format_size(online)} online)")
    return "\n".join([_short(os.path.basename(lay["file"]), 100), *textwrap.wrap(text, 118)])


def _short(text: str, n: int) -> str:
    """``text`` cut in the middle to at most ``n`` characters."""
    if len(text) <= n:
        return text
    half = (n - 3) // 2
    return text[:half] + "..." + text[-(n - 3 - half):]


def _draw_ram(ax, lay: dict, kinfo: dict, st: dict) -> dict:
    """One panel: System RAM ranges (top row) and memory blocks by state (bottom row) along
    the physical address axis; returns the legend entries it used."""
    FuncFormatter = _matplotlib().ticker.FuncFormatter

    blocks = st.get("blocks") or []
    kmem = _kmem_spans(lay, kinfo["version"])
    ends = [e for _, e in st["ram"]] + [s + n for s, n, _ in blocks] + [e for _, e, _ in kmem]
    top = max(ends) if ends else 1 << 30
    used = {}
    for s, e in st["ram"]:
        ax.broken_barh([(s, e - s)], (1.1, 0.8), facecolors=_RAM, edgecolor="none")
        used["System RAM"] = _RAM
    for s, e, _where in kmem:
        ax.broken_barh([(s, e - s)], (1.1, 0.8), facecolors=_KMEM, edgecolor="none")
        used["device memory as System RAM (kmem)"] = _KMEM
    edges = "#ffffff" if len(blocks) <= 400 else "none"
    by_state: dict[str, list] = {}
    for s, n, state in blocks:
        by_state.setdefault(state, []).append((s, n))
    for state, spans in sorted(by_state.items()):
        col = _BLOCK_COLOURS.get(state, "#999999")
        ax.broken_barh(spans, (0.1, 0.8), facecolors=col, edgecolor=edges, linewidth=0.4)
        used[f"memory block {state}"] = col
    ax.set_xlim(0, top)
    ax.set_ylim(0, 2)
    ax.set_yticks([0.5, 1.5])
    ax.set_yticklabels(["memory blocks", "System RAM"], fontsize=8)
    step = SECTION_SIZE  # ticks at a power-of-two multiple of a section, at most 8 of them
    while top / step > 8:
        step *= 2
    ax.set_xticks([i * step for i in range(int(top // step) + 1)])
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{int(x):#x}\n{format_size(int(x))}"))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("physical address (white: a hole, no memory)", fontsize=8)
    ax.set_title(_ram_title(lay, kinfo, st), fontsize=10, loc="left")
    return used


def _plot_ram_panels(panels, path: str) -> None:
    mpl = _matplotlib()
    plt, Patch = mpl.pyplot, mpl.patches.Patch

    fig, axes = plt.subplots(len(panels), 1, figsize=(11, 2.1 * len(panels) + 0.9), squeeze=False)
    legend: dict[str, str] = {}
    for ax, (lay, kinfo, st) in zip(axes[:, 0], panels):
        legend.update(_draw_ram(ax, lay, kinfo, st))
    handles = [Patch(facecolor=c, edgecolor="#555555", label=k) for k, c in legend.items()]
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.45 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# many layouts: one bounded summary figure


def summary_record(lay: dict) -> dict:
    """What :func:`plot_summary` needs of one layout of a report, and nothing more (a batch
    of thousands of layouts keeps only these): its file, its regions' sizes and per kernel
    the capacity, the bytes lost to padding, the free bytes of an existing configuration
    and the failures."""
    per: dict[str, dict] = {}
    for t in lay["totals"]:
        per[t["kernel"]] = {"capacity": t["capacity"], "failed": t["failed"], "padding": 0, "free": 0}
    for reg in lay["regions"]:
        for r in reg["results"]:
            d = per.setdefault(r["kernel"], {"capacity": 0, "failed": 0, "padding": 0, "free": 0})
            if r["result"] == "ok":
                d["padding"] += r["lost"]["padding"]
                if r.get("existing"):
                    d["free"] += r["lost"]["unallocated"]
    return {"file": lay["file"], "pmem": sum(reg["size"] for reg in lay["regions"]), "kernels": per,
            "summary": True}


def _interest(rec: dict) -> tuple:
    """Sort key: layouts with a failed namespace first, then those losing the largest share
    of their pmem to padding."""
    ks = rec["kernels"].values()
    failed = sum(d["failed"] for d in ks)
    lost = max((d["padding"] for d in ks), default=0) / rec["pmem"] if rec["pmem"] else 0.0
    return (-failed, -lost)


#: what happened to a layout under one kernel, for the batch bars: (key, label, colour)
_OUTCOMES = (("ok", "every namespace ok, nothing lost to padding", "#4a9a5b"),
             ("padding", "ok, capacity lost to padding", "#e8b04a"),
             ("failed", "a namespace failed", "#c00000"),
             ("none", "no pmem regions", "#bdbdbd"))


def _outcome(rec: dict, kernel: str) -> Optional[str]:
    t = rec["kernels"].get(kernel)
    if t is None:
        return None
    if not rec["pmem"]:
        return "none"
    return "failed" if t["failed"] else "padding" if t["padding"] else "ok"


def _batch_bars(ax, records: list, kernels: list) -> None:
    """One stacked bar per kernel: how many layouts of the whole batch had every namespace
    ok, lost capacity to padding, had a namespace fail, or had no pmem."""
    Patch = _matplotlib().patches.Patch
    total = len(records)
    for j, k in enumerate(kernels):
        counts = {key: 0 for key, _, _ in _OUTCOMES}
        for rec in records:
            o = _outcome(rec, k)
            if o is not None:
                counts[o] += 1
        left = 0
        for key, _, colour in _OUTCOMES:
            c = counts[key]
            if not c:
                continue
            ax.barh(j, c, left=left, height=0.7, color=colour, edgecolor="white", linewidth=0.5)
            if c >= total / 30:
                ax.text(left + c / 2, j, str(c), ha="center", va="center", fontsize=7,
                        color="white" if key in ("ok", "failed") else "#222222")
            left += c
    ax.set_yticks(range(len(kernels)))
    ax.set_yticklabels([f"kernel {k}" for k in kernels], fontsize=8)
    ax.set_ylim(len(kernels) - 0.5, -0.5)
    ax.set_xlim(0, total)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("layouts", fontsize=8)
    ax.legend(handles=[Patch(facecolor=c, label=label) for _, label, c in _OUTCOMES], fontsize=7, ncol=4,
              loc="upper center", bbox_to_anchor=(0.5, -0.45), frameon=False)


def plot_summary(report: dict, path: str, limit: int = MAX_SUMMARY_LAYOUTS) -> None:
    """One figure for a report of many layouts: per layout and kernel a bar of the usable
    capacity as a share of the layout's pmem (the bytes at its end), the share lost to
    padding hatched after it, the free space of an existing configuration after that, and
    failed namespaces in red.  At most about ``limit`` bars per kernel: when there are more
    layouts, the ones drawn are those with a failed namespace, then those losing most to
    padding (in input order, numbered), and the title counts the rest.  Its size is bounded
    whatever the number of layouts.  ``report["layouts"]`` may hold full layout reports or
    :func:`summary_record` records."""
    require_matplotlib()
    mpl = _matplotlib()
    plt, Patch = mpl.pyplot, mpl.patches.Patch

    kernels = [k["version"] for k in report["kernels"]]
    records = [lay if lay.get("summary") else summary_record(lay) for lay in report["layouts"]]
    nk = max(len(kernels), 1)
    most = max(1, min(limit, 2 * limit // nk))  # at most 2 * limit bars
    numbered = len(records) > most
    if numbered:
        chosen = sorted(sorted(range(len(records)), key=lambda i: _interest(records[i]))[:most])
    else:
        chosen = list(range(len(records)))
    n = len(chosen)
    colours = ["#1f5fa8", "#2e9e44", "#7b4fb0", "#138d90", "#a8651f", "#b0306a"]
    if numbered:
        # the whole batch first, in one bar per kernel (its size does not grow either)
        top_h = 0.32 * nk + 0.9
        fig, (tax, ax) = plt.subplots(2, 1, figsize=(11, 0.12 * n * nk + 0.08 * n + 1.9 + top_h),
                                      gridspec_kw={"height_ratios": [top_h, 0.12 * n * nk + 0.08 * n + 1.0]})
        _batch_bars(tax, records, kernels)
    else:
        fig, ax = plt.subplots(figsize=(11, 0.12 * n * nk + 0.08 * n + 1.6))
    bar_h = 0.8 / nk
    names = []
    any_free = False
    for i, index in enumerate(chosen):
        rec = records[index]
        name = _short(os.path.basename(rec["file"]), 40)
        names.append(f"#{index + 1} {name}" if numbered else name)
        pmem = rec["pmem"]
        for j, k in enumerate(kernels):
            y = i + (j - (nk - 1) / 2) * bar_h
            t = rec["kernels"].get(k)
            if t is None:
                continue
            if not pmem:
                ax.text(0.5, y, "no pmem regions", va="center", ha="left", fontsize=6, color="#666666")
                continue
            share, lost, free = (100.0 * t[x] / pmem for x in ("capacity", "padding", "free"))
            ax.barh(y, share, height=bar_h * 0.9, color=colours[j % len(colours)])
            if t["padding"]:
                ax.barh(y, lost, left=share, height=bar_h * 0.9, color="none", hatch="////",
                        edgecolor=_PADDING, linewidth=0.6)
            if t["free"]:
                any_free = True
                ax.barh(y, free, left=share + lost, height=bar_h * 0.9, color=_FREE, edgecolor="#b8a060",
                        linewidth=0.4)
            label = f" {format_size(t['capacity'])} of {format_size(pmem)}"
            if t["free"]:
                label += f", {format_size(t['free'])} free"
            if t["failed"]:
                label += f", {t['failed']} FAILED"
            ax.text(share + lost + free, y, label, va="center", ha="left", fontsize=6,
                    color="#c00000" if t["failed"] else "#333333", fontweight="bold" if t["failed"] else None)
    ax.set_yticks(range(n))
    ax.set_yticklabels(names, fontsize=7)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 130)
    ax.set_xticks(range(0, 101, 20))
    ax.set_xlabel("usable capacity, % of the layout's pmem (existing configuration kept, the default "
                  "namespace on every other region)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    failed = sum(1 for rec in records if any(t["failed"] for t in rec["kernels"].values()))
    title = f"{len(records)} layouts, kernels {', '.join(kernels)}: {failed} with a failed namespace"
    if numbered:
        tax.set_title(title + "; per kernel:", fontsize=10, loc="left")
        title = (f"the {n} layouts with a failure or the largest share lost to padding, in report order "
                 f"(#: position in the report); {len(records) - n} more not drawn")
    ax.set_title(title, fontsize=10, loc="left")
    handles = [Patch(facecolor=colours[j % len(colours)], label=f"kernel {k}") for j, k in enumerate(kernels)]
    handles.append(Patch(facecolor="none", hatch="////", edgecolor=_PADDING, label="lost to padding"))
    if any_free:
        handles.append(Patch(facecolor=_FREE, edgecolor="#b8a060", label="free (existing configuration)"))
    ax.axvline(100, color="#888888", lw=0.6, ls=":")
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=len(handles), frameon=False)
    fig.tight_layout(rect=(0, 0.35 / fig.get_figheight(), 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
