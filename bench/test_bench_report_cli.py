"""pytest-benchmark: ``sparsemem report`` through the command line on the 1,000-layout batch of
issue 13 (tests/test_cli_stream.py: the shipped layouts with firmware-like perturbations,
written in the forms the tools print, 10 unreadable ones among them).

Each round runs ``python -m sparsemem report LAYOUT...`` in a subprocess, as a user does,
with the default kernels (5.2, 5.3 and the newest modelled release), and records in
``extra_info``: layouts per second of wall time and per CPU-second of the command (its
``os.wait4`` rusage: user + system), and the first-result latency, the time from the start of
the process to the first complete layout result on stdout (wall, and the command's CPU time
at that moment from ``/proc/PID/stat``).  The machine is shared: compare CPU figures.

Groups: ``report CLI: 1000 layouts`` (text, ``--jsonl``, ``--json``, and text under one
kernel).  Under ``--benchmark-disable`` (CI's smoke run) the batch has its first 100 layouts.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from test_cli_stream import _env  # noqa: E402 -- the tests' environment for the command
from test_cli_stream import batch as _batch  # noqa: E402 -- the tests' generator of the batch

CMD = [sys.executable, "-m", "sparsemem", "report"]


class _Factory:
    def __init__(self, root: pathlib.Path):
        self.root = root

    def mktemp(self, name: str) -> pathlib.Path:
        d = self.root / name
        d.mkdir()
        return d


@pytest.fixture(scope="module")
def paths(tmp_path_factory, request):
    made, _bad, _expected = _batch.__wrapped__(_Factory(tmp_path_factory.mktemp("report-batch")))
    return made[:100] if request.config.getoption("benchmark_disable", False) else made


def _stat_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _run(paths, extra) -> dict:
    """One run of the command; its figures."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([*CMD, *map(str, paths), *extra], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=_env())
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    # the first result is complete at its closing line: "total usable:" in text, the end of
    # the first line with --jsonl, the first layout's closing brace with --json
    marker = b"\n" if "--jsonl" in extra else b"\n    }" if "--json" in extra else b"total usable:"
    seen, first, first_cpu, size = b"", None, None, 0
    while True:
        data = os.read(fd, 1 << 16)
        if not data:
            break
        size += len(data)
        if first is None:
            seen += data
            if marker in seen:
                first = time.perf_counter() - t0
                first_cpu = _stat_cpu(proc.pid)
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    cpu = ru.ru_utime + ru.ru_stime
    return {"exit": os.waitstatus_to_exitcode(status), "wall": wall, "cpu": cpu, "first": first,
            "first_cpu": first_cpu, "stdout_bytes": size}


@pytest.mark.parametrize("extra", [[], ["--jsonl"], ["--json"], ["-k", "5.3"]],
                         ids=["text", "jsonl", "json", "text-one-kernel"])
def test_bench_report_cli(benchmark, paths, extra):
    benchmark.group = f"report CLI: {len(paths)} layouts"
    runs = []

    def once():
        runs.append(_run(paths, extra))

    benchmark.pedantic(once, rounds=3 if len(paths) <= 100 else 2, iterations=1)
    n = len(paths)
    best = min(runs, key=lambda r: r["cpu"])
    benchmark.extra_info.update(
        layouts=n, layouts_per_s=round(n / min(r["wall"] for r in runs), 1),
        layouts_per_cpu_s=round(n / best["cpu"], 1),
        first_result_s=round(min(r["first"] for r in runs), 3),
        first_result_cpu_s=round(min(r["first_cpu"] for r in runs), 3),
        stdout_mb=round(best["stdout_bytes"] / 1e6, 2), load=" ".join(f"{x:.2f}" for x in os.getloadavg()))
    assert all(r["exit"] == (1 if n > 37 else 0) for r in runs)  # the first bad layout is the 38th
