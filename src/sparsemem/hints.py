"""What would avoid a loss or a failure: one-line hints computed by the simulation.

For every region and kernel of a report whose result is a failure or a loss beyond the
metadata its mode needs (:func:`sparsemem.explain.lost_capacity`), :func:`hints_for_layout`
tries alternatives, each by running the layout again through the simulation (boot, the
existing configuration, the default namespace on every other region: ``run`` below), and
keeps only those that work: the region's namespace is created and enabled with **more usable
capacity** than the result it explains (any capacity, for a failure), and no other region
that was ``ok`` fails instead.  Nothing here is a canned answer: a hint names the
alternative and the capacity the simulation gave it.

The alternatives, in this order:

``release``
    the same layout and procedure under another release whose rules differ (one per fully
    modelled row of :data:`sparsemem.kernel.ERAS`, and the report's other kernels), e.g. a legacy section
    padding that the sub-section era does not need (MN §3.1), or a v5.3 ``check_pfn_span``
    refusal that v5.2's section-wide add does not make (§5.1);
``align``
    the default namespace created with another supported ``align`` (4 KiB, 2 MiB, 1 GiB; MN
    §2), i.e. ``ndctl create-namespace -a ALIGN``;
``size``
    the default namespace created with a size that ends on a sub-section (2 MiB) or section
    (128 MiB) boundary, ``ndctl create-namespace -s SIZE``;
``region``
    the region itself on 128 MiB section boundaries (its start rounded up, its end down): what
    firmware (or ``memmap=SIZE!START`` for legacy pmem) would have to provide.

Alternatives that change a namespace (``align``, ``size``) apply only to a region whose
namespace the report created; an existing configuration is kept as it is.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

from .kernel import kernel_model

__all__ = ["HINT_SCHEMA", "hints_for_layout", "ALIGNMENTS", "finding"]

SECTION = 1 << 27
SUBSECTION = 1 << 21
#: the namespace alignments ndctl offers (nvdimm/pfn.py SUPPORTED_ALIGNMENTS, MN §2)
ALIGNMENTS = (4096, 1 << 21, 1 << 30)

#: One entry of a result's ``hints`` (report JSON version 2).
HINT_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["kind", "text", "kernel", "change", "capacity"],
    "properties": {
        "kind": {"type": "string", "enum": ["release", "align", "size", "region"]},
        "text": {"type": "string"},
        "kernel": {"type": "string"},
        "change": {"type": "object"},
        "capacity": {"type": "integer"},
    },
}


def finding(res: dict, lost_capacity) -> bool:
    return res["result"] != "ok" or lost_capacity(res) > 0


def _align_name(a: int) -> str:
    return {4096: "4K", 1 << 21: "2M", 1 << 30: "1G"}.get(a, str(a))


def _better(base: dict, alt: Optional[dict]) -> bool:
    return alt is not None and alt["result"] == "ok" and alt["capacity"] > base["capacity"]


def _no_new_failure(before: Sequence[dict], after: Sequence[dict], index: int) -> bool:
    return all(not (b["result"] == "ok" and a["result"] != "ok")
               for j, (b, a) in enumerate(zip(before, after)) if j != index)


def _region_text(text_of_tree: str, start: int, end: int) -> Optional[tuple[str, int, int]]:
    """The layout's /proc/iomem text with the top-level pmem range ``[start, end]`` moved to
    section boundaries (its nested lines dropped), with the new ``(start, end)``; ``None``
    when the range is aligned already or holds no whole section."""
    ns, ne = -(-start // SECTION) * SECTION, ((end + 1) // SECTION) * SECTION - 1
    if (ns, ne) == (start, end) or ne <= ns:
        return None
    out, inside = [], False
    for line in text_of_tree.splitlines():
        if not line[:1].isspace():
            head = line.split(" : ", 1)
            rng = head[0].split("-")
            inside = len(rng) == 2 and int(rng[0], 16) == start and int(rng[1], 16) == end
            if inside:
                name = head[1] if len(head) > 1 else ""
                line = f"{ns:08x}-{ne:08x} : {name}"
            out.append(line)
        elif not inside:
            out.append(line)
    return "\n".join(out) + "\n", ns, ne


def hints_for_layout(per_kernel: dict, kernels: Sequence[str], run: Callable, tree_text: str,
                     spans: Sequence[tuple[int, int]], created: dict, format_size, lost_capacity,
                     releases: Sequence[str], label: Callable[[str], str]) -> None:
    """Fill ``result["hints"]`` of every result of ``per_kernel`` (``{kernel: [result per
    region]}``).  ``run(kernel, requests=None, text=None)`` gives the per-region results of
    the layout (or of ``text``) under ``kernel`` with ``requests`` (``{region index:
    create_namespace kwargs}``); ``tree_text`` is the layout as /proc/iomem text, ``spans``
    the regions' ``(start, size)``; ``created``
    maps a kernel to the set of region indices whose namespace the report created (not
    adopted); ``releases`` the releases to try; ``label(kernel)`` names a release in a hint."""
    for k in kernels:
        for res in per_kernel[k]:
            res.setdefault("hints", [])
    for k in kernels:
        base_all = per_kernel[k]
        row = kernel_model(k).row_release
        for i, base in enumerate(base_all):
            if not finding(base, lost_capacity):
                continue
            hints = base["hints"]
            what = "enables with" if base["result"] != "ok" else "gives"
            # another release: one per era that is not this kernel's
            eras = {kernel_model(k).era}
            for r in releases:
                if kernel_model(r).row_release == row or kernel_model(r).era in eras:
                    continue
                alt_all = run(r)
                if i < len(alt_all) and _better(base, alt_all[i]) and _no_new_failure(base_all, alt_all, i):
                    alt = alt_all[i]
                    eras.add(kernel_model(r).era)
                    hints.append({"kind": "release", "kernel": r, "change": {"kernel": r},
                                  "capacity": alt["capacity"],
                                  "text": f"under {label(r)} the same procedure {what} "
                                          f"{format_size(alt['capacity'])} usable"
                                          + (f" ({format_size(lost_capacity(alt))} lost)" if lost_capacity(alt) else
                                             " (nothing lost beyond metadata)")})
            if i in created.get(k, ()):
                ns = base["namespace"]
                # another namespace align (MN §2)
                used = ns["align"] if ns and ns["align"] else None
                for a in ALIGNMENTS:
                    if a == (used or 1 << 21):
                        continue
                    alt_all = run(k, requests={i: {"align": a}})
                    if _better(base, alt_all[i]) and _no_new_failure(base_all, alt_all, i):
                        hints.append({"kind": "align", "kernel": k, "change": {"align": a},
                                      "capacity": alt_all[i]["capacity"],
                                      "text": f"a namespace with align {_align_name(a)} (ndctl create-namespace "
                                              f"-a {_align_name(a)}) {what} {format_size(alt_all[i]['capacity'])} "
                                              f"usable"})
                        break
                # a size that ends on a sub-section / section boundary
                start, size = spans[i]
                tried = set()
                for g in (SUBSECTION, SECTION):
                    s = ((start + size) // g) * g - start
                    if s <= 0 or s >= size or s in tried or s % 4096:
                        continue
                    tried.add(s)
                    alt_all = run(k, requests={i: {"size": s}})
                    if _better(base, alt_all[i]) and _no_new_failure(base_all, alt_all, i):
                        hints.append({"kind": "size", "kernel": k, "change": {"size": s},
                                      "capacity": alt_all[i]["capacity"],
                                      "text": f"a namespace of {format_size(s)} (ndctl create-namespace -s {s}), "
                                              f"ending on a {format_size(g)} boundary, {what} "
                                              f"{format_size(alt_all[i]['capacity'])} usable"})
                        break
                # the region on section boundaries
                moved = _region_text(tree_text, start, start + size - 1)
                if moved is not None:
                    text, ns_, ne_ = moved
                    alt_all = run(k, text=text)
                    if i < len(alt_all) and _better(base, alt_all[i]) and _no_new_failure(base_all, alt_all, i):
                        hints.append({"kind": "region", "kernel": k,
                                      "change": {"start": ns_, "end": ne_},
                                      "capacity": alt_all[i]["capacity"],
                                      "text": f"a region on 128 MiB section boundaries, [mem {ns_:#x}-{ne_:#x}] "
                                              f"({format_size(ne_ + 1 - ns_)}; memmap={(ne_ + 1 - ns_) >> 20}M!"
                                              f"{ns_ >> 20}M for legacy pmem), {what} "
                                              f"{format_size(alt_all[i]['capacity'])} usable"})
