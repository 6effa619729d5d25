"""What the report says beyond the numbers: the layout's ``# observed:`` lines compared with
the prediction, and the findings that ``sparsemem report --check`` turns into exit status 3.

The detail: docs/explain.md.
"""

from __future__ import annotations

import re
from typing import Union

from .inputs import strip_log_prefix

__all__ = ["OBSERVATION_SCHEMA", "CHECK_SCHEMA", "compare_observations", "check_findings",
           "lost_capacity"]

_INT = {"type": "integer"}
_STR = {"type": "string"}
_VALUE = {"type": ["integer", "string", "null"]}

#: One entry of a layout's ``observations`` (report JSON version 2).
OBSERVATION_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["text", "kind", "compared", "results"],
    "properties": {
        "text": _STR,
        "kind": {"type": "string", "enum": ["region-resource", "region-size", "namespace-resource",
                                            "namespace-size", "truncate", "capacity", "warning",
                                            "message", "other"]},
        "compared": {"type": "boolean"},
        "results": {"type": "array", "items": {
            "type": "object", "additionalProperties": False,
            "required": ["kernel", "verdict", "observed", "predicted"],
            "properties": {"kernel": _STR, "verdict": {"type": "string", "enum": ["agree", "differ"]},
                           "observed": _VALUE, "predicted": _VALUE}}},
    },
}

#: One entry of a layout's ``check`` list (report JSON version 2).
CHECK_SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["region", "kernel", "kind", "bytes", "text"],
    "properties": {"region": _STR, "kernel": _STR, "kind": {"type": "string", "enum": ["failed", "lost"]},
                   "bytes": _INT, "text": _STR},
}

_NUM = r"(0x[0-9a-fA-F]+|\d+)"
_SYSFS_RE = re.compile(rf"^/sys/bus/nd/devices/(?P<dev>region\d+|namespace\d+\.\d+)"
                       rf"/(?P<attr>resource|size):\s*{_NUM}\s*$")
_TRUNCATE_RE = re.compile(r"(?P<ns>namespace\d+\.\d+) alignment collision, truncate (?P<n>\d+) bytes")
_CAPACITY_RE = re.compile(r"^pmem(?P<r>\d+)(?:\.(?P<n>\d+))?s?: detected capacity change from \d+ to (?P<b>\d+)\s*$")
_WARNING_RE = re.compile(r"^WARNING: CPU: \d+ PID: \d+ at (?P<file>\S+?):\d+ (?P<func>[\w.]+)\+")
_DEVICE_MSG_RE = re.compile(r"^(?:nd_pmem|nd_pfn|nd_dax|dax_pmem|nd_region|nd_btt) \S+: .+")


def _num(text: str) -> int:
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _plain(line: str) -> str:
    return strip_log_prefix(line)[0].strip()


def _namespaces(layout: dict, kernel: str) -> dict:
    """namespace dev -> (namespace dict, result) for ``kernel``."""
    out = {}
    for reg in layout["regions"]:
        for r in reg["results"]:
            if r["kernel"] == kernel and r["namespace"]:
                out[r["namespace"]["dev"]] = (r["namespace"], r)
    return out


def _dmesg(layout: dict, kernel: str) -> list[str]:
    return [_plain(line) for reg in layout["regions"] for r in reg["results"] if r["kernel"] == kernel
            for line in r["dmesg"]]


def _verdict(kernel: str, observed, predicted) -> dict:
    return {"kernel": kernel, "verdict": "agree" if observed == predicted else "differ",
            "observed": observed, "predicted": predicted}


def compare_observations(layout: dict, observations, kernels) -> list[dict]:
    """The ``observations`` entries of a layout's report (see docs/explain.md):
    ``layout`` is the layout dict of the report (regions with their results), ``observations``
    the texts of its ``# observed:`` lines, ``kernels`` the kernel versions in report order."""
    regions = {reg["dev"]: reg for reg in layout["regions"]}
    out = []
    for text in observations:
        plain = _plain(text)
        kind, results = "other", []
        observed: Union[int, str]          # a number, or the "file function" of a WARNING
        predicted: Union[int, str, None]
        if not regions:
            # an excerpt without its pmem ranges: nothing of the nvdimm side was simulated
            out.append({"text": text, "kind": kind, "compared": False, "results": []})
            continue
        m = _SYSFS_RE.match(plain)
        if m:
            dev, attr, observed = m.group("dev"), m.group("attr"), _num(m.group(3))
            if dev.startswith("region"):
                kind = f"region-{attr}"
                reg = regions.get(dev)
                predicted = None if reg is None else reg["start" if attr == "resource" else "size"]
                results = [_verdict(k, observed, predicted) for k in kernels]
            else:
                kind = f"namespace-{attr}"
                for k in kernels:
                    ns = _namespaces(layout, k).get(dev)
                    predicted = None if ns is None else ns[0]["start" if attr == "resource" else "raw_size"]
                    results.append(_verdict(k, observed, predicted))
        elif (m := _TRUNCATE_RE.search(plain)) is not None:
            kind, observed = "truncate", int(m.group("n"))
            for k in kernels:
                ns = _namespaces(layout, k).get(m.group("ns"))
                predicted = None
                for line in (ns[1]["dmesg"] if ns else ()):
                    p = _TRUNCATE_RE.search(line)
                    if p and p.group("ns") == m.group("ns"):
                        predicted = int(p.group("n"))
                        break
                results.append(_verdict(k, observed, predicted))
        elif (m := _CAPACITY_RE.match(plain)) is not None:
            kind, observed = "capacity", int(m.group("b"))
            dev = f"namespace{m.group('r')}.{m.group('n') or 0}"
            for k in kernels:
                ns = _namespaces(layout, k).get(dev)
                predicted = ns[1]["capacity"] if ns and ns[1]["result"] == "ok" else None
                results.append(_verdict(k, observed, predicted))
        elif (m := _WARNING_RE.match(plain)) is not None:
            kind, observed = "warning", f"{m.group('file')} {m.group('func')}"
            for k in kernels:
                predicted = None
                for line in _dmesg(layout, k):
                    p = _WARNING_RE.match(line)
                    if p:
                        predicted = f"{p.group('file')} {p.group('func')}"
                        if predicted == observed:
                            break
                results.append(_verdict(k, observed, predicted))
        elif _DEVICE_MSG_RE.match(plain):
            kind = "message"
            for k in kernels:
                seen = plain in _dmesg(layout, k)
                results.append({"kernel": k, "verdict": "agree" if seen else "differ",
                                "observed": plain, "predicted": plain if seen else None})
        out.append({"text": text, "kind": kind, "compared": bool(results), "results": results})
    return out


def lost_capacity(result: dict) -> int:
    """Bytes of the region that its namespaces neither use for data nor for the metadata
    their mode needs: ``padding + unallocated + other`` of ``lost`` (0 for a failure, which is
    a finding of its own).

    A region that kept its existing configuration (``result["existing"]``) is different:
    the bytes none of its namespaces covers (``unallocated``) are capacity nobody configured
    yet, which the region still offers to ``ndctl create-namespace`` (the report creates
    nothing there: api.md "Command line", docs/existing.md), so they are not counted; its
    namespaces' padding is."""
    if result["result"] != "ok":
        return 0
    lost = result["lost"]
    free = lost["unallocated"] if result.get("existing") else 0
    return lost["padding"] + lost["unallocated"] - free + lost["other"]


def check_findings(layout: dict, format_size=lambda n: f"{n} bytes") -> list[dict]:
    """The ``check`` entries of a layout's report (see docs/explain.md); sizes in the
    texts are written with ``format_size``."""
    out = []
    for reg in layout["regions"]:
        for r in reg["results"]:
            if r["result"] != "ok":
                out.append({"region": reg["dev"], "kernel": r["kernel"], "kind": "failed",
                            "bytes": reg["size"],
                            "text": f"{reg['dev']} under {r['kernel']}: {r['result']}: {r['message']}"})
                continue
            n = lost_capacity(r)
            if n:
                kinds = ("padding", "other") if r.get("existing") else ("padding", "unallocated", "other")
                parts = [f"{format_size(r['lost'][k])} {k}" for k in kinds if r["lost"][k]]
                out.append({"region": reg["dev"], "kernel": r["kernel"], "kind": "lost", "bytes": n,
                            "text": f"{reg['dev']} under {r['kernel']}: {format_size(n)} lost "
                                    f"({', '.join(parts)})"})
    return out
