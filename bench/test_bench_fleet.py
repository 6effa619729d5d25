"""pytest-benchmark: ``sparsemem fleet`` on a 10,000-host synthetic inventory (issue #14).

The inventory is made from the shipped layouts (tests/data/layouts and the bundled one) with
firmware-like perturbations, deterministically (``random.Random`` seeded per host) into a
temporary folder: every pmem range's start moved by a multiple of 2 MiB, 64 MiB or 1 GiB
(possibly negative), its size varied by multiples of 2 MiB / 64 MiB / 1 GiB, and half of them
preceded and half followed directly by a neighbour that is System RAM or another pmem range; half of the System
RAM ranges of 1 GiB or more grow or shrink by multiples of 128 MiB; the ranges after a change
move along so that nothing overlaps.  Only the top-level lines are written (children such as
"Kernel code" do not change what is booted).  Nearly every host is distinct (the count is
recorded), so the per-worker memo of identical hosts does not flatter the numbers.

Groups (hosts per second in ``extra_info``):

* ``fleet: Python API`` -- :func:`sparsemem.fleet.upgrade_host` over every host in this process
  (boot under K1, default namespaces, reboot under K2, K2 memmap), for 5.2 -> 5.3 and
  5.3 -> 6.8; ``hosts_per_cpu_s`` is the figure of issue #14 (target 1,500 per core);
* ``fleet: Dask`` -- :func:`sparsemem.fleet.run_fleet` on a local cluster of 1 and of 2 worker
  processes (cluster start-up not timed), rows written to a CSV file; the peak RSS of every
  worker is recorded;
* ``fleet: batch size`` -- the same with 2 workers for several hosts-per-task values.

Under ``--benchmark-disable`` (CI's smoke run) the inventory has 300 hosts.
"""

from __future__ import annotations

import os
import random
import time

import pytest

from sparsemem import fleet
from sparsemem.iomem import parse

MiB, GiB = 1 << 20, 1 << 30
HERE = os.path.dirname(os.path.abspath(__file__))
LAYOUT_DIRS = [os.path.join(HERE, "..", "tests", "data", "layouts"),
               os.path.join(HERE, "..", "src", "sparsemem", "data")]
PMEM = ("Persistent Memory", "Persistent Memory (legacy)")
K1, K2 = "5.2", "5.3"


def _bases() -> list[list[tuple[int, int, str]]]:
    """Top-level ``(start, end_inclusive, name)`` of every shipped layout with a pmem range."""
    out = []
    for d in LAYOUT_DIRS:
        for fn in sorted(os.listdir(d)):
            if not fn.endswith(".txt"):
                continue
            with open(os.path.join(d, fn), encoding="utf-8", errors="replace") as f:
                try:
                    tree = parse(f.read())
                except ValueError:
                    continue
            top = [(r.start, r.end, r.name) for r in tree.root.children]
            if any(name in PMEM for _, _, name in top):
                out.append(sorted(top))
    return out


def perturb(base: list[tuple[int, int, str]], rnd: random.Random) -> str:
    """One host's ``/proc/iomem`` text: ``base`` with its pmem ranges moved, resized and
    given neighbours (see the module docstring)."""
    lines = []
    cursor = 0
    shift = 0
    for start, end, name in base:
        size = end - start + 1
        if name not in PMEM:
            if name == "System RAM" and size >= GiB and rnd.random() < 0.5:
                size += 128 * MiB * rnd.randint(-4, 8)    # DIMM population varies too
            s = max(start + shift, cursor)
            lines.append((s, s + size - 1, name))
            cursor = s + size
            shift = cursor - (end + 1)
            continue
        unit = rnd.choice((2 * MiB, 64 * MiB, GiB))
        s = max(start + shift + unit * rnd.randint(-4, 8), cursor)
        grow = rnd.choice((0, 0, 2 * MiB, 64 * MiB, GiB)) * rnd.choice((-1, 1)) * rnd.randint(1, 8)
        size = max(size + grow, 64 * MiB) if size + grow > 0 else size
        if rnd.random() < 0.5:      # a neighbour right below it
            n = rnd.choice((64 * MiB, 128 * MiB, 192 * MiB, GiB, 2 * GiB))
            if s - n >= cursor:
                lines.append((s - n, s - 1, rnd.choice(("System RAM", name))))
        lines.append((s, s + size - 1, name))
        cursor = s + size
        if rnd.random() < 0.5:      # and right above it
            kind = rnd.choice(("System RAM", name))
            n = rnd.choice((64 * MiB, 128 * MiB, 192 * MiB, GiB, 2 * GiB))
            lines.append((cursor, cursor + n - 1, kind))
            cursor += n
        shift = cursor - (end + 1)
    return "".join(f"{s:08x}-{e:08x} : {name}\n" for s, e, name in lines)


def make_inventory(root: str, n: int, seed: int = 14) -> list[str]:
    """Write ``n`` perturbed layouts ``host000000.txt`` ... into ``root``; returns their texts."""
    bases = _bases()
    texts = []
    for i in range(n):
        rnd = random.Random(f"{seed}:{i}")
        text = perturb(bases[i % len(bases)], rnd)
        with open(os.path.join(root, f"host{i:06d}.txt"), "w") as f:
            f.write(text)
        texts.append(text)
    return texts


def _n_hosts(config) -> int:
    return 300 if config.getoption("benchmark_disable", False) else 10_000


@pytest.fixture(scope="module")
def inventory(tmp_path_factory, request):
    root = tmp_path_factory.mktemp("fleet-inventory")
    texts = make_inventory(str(root), _n_hosts(request.config))
    return str(root), texts


def _load() -> str:
    try:
        return f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
    except OSError:
        return "load average unknown"


@pytest.mark.parametrize("k1,k2", [(K1, K2), ("5.3", "6.8")])
def test_bench_python_api(benchmark, inventory, k1, k2):
    benchmark.group = "fleet: Python API"
    _root, texts = inventory

    def run():
        fleet.clear_caches()
        rows = 0
        for i, t in enumerate(texts):
            rows += len(fleet.upgrade_host(f"host{i}", t, k1, k2))
        return rows

    t0, c0, s0 = time.perf_counter(), _cpu_seconds(), os.times().system
    rows = benchmark.pedantic(run, rounds=1 if len(texts) > 1000 else 2, iterations=1)
    wall, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
    benchmark.extra_info.update(kernels=f"{k1}->{k2}", hosts=len(texts), distinct=len(set(texts)), rows=rows,
                                system_cpu_s=round(os.times().system - s0, 2),
                                hosts_per_s=round(len(texts) / (benchmark.stats.stats.median
                                                                if benchmark.stats else wall), 1),
                                hosts_per_cpu_s=round(len(texts) * (1 if len(texts) > 1000 else 2) / cpu, 1),
                                load=_load())
    assert rows >= len(texts)
    # every synthetic host is readable and has pmem: a host that became an error row would
    # flatter the figure (its row costs nothing)
    errors = [r for i, t in enumerate(texts[:200]) for r in fleet.upgrade_host(f"host{i}", t, k1, k2)
              if r[-1] is not None]
    assert not errors, errors[:3]


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _worker_rss(client) -> dict:
    def peak():
        import resource  # noqa: PLC0415 -- runs on a Dask worker (shipped by value)

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    return client.run(peak)


def _dask_run(benchmark, root, n_hosts, workers, batch_size, tmp_path):
    from distributed import Client, LocalCluster  # noqa: PLC0415 -- optional extra 'fleet'

    out = str(tmp_path / f"fleet-{workers}-{batch_size}.csv")
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=40) as cluster, Client(cluster) as client:
        client.run(fleet.clear_caches)
        cpu0, client0 = sum(client.run(_cpu_seconds).values()), _cpu_seconds()

        def run():
            return fleet.run_fleet([root], K1, K2, output=out, batch_size=batch_size, client=client,
                                   progress=False)

        summary = benchmark.pedantic(run, rounds=1, iterations=1)
        cpu1, client1 = sum(client.run(_cpu_seconds).values()), _cpu_seconds()
        rss = _worker_rss(client)
    median = benchmark.stats.stats.median if benchmark.stats else None
    # CPU seconds say what a loaded (shared) machine hides in wall time
    benchmark.extra_info.update(
        hosts=summary.hosts, namespaces=summary.namespaces, workers=workers, batch_size=batch_size,
        hosts_per_s=round(summary.hosts / median, 1) if median else None,
        worker_cpu_s=round(cpu1 - cpu0, 2), client_cpu_s=round(client1 - client0, 2),
        hosts_per_worker_cpu_s=round(summary.hosts / max(cpu1 - cpu0, 1e-9), 1),
        peak_rss_mib_per_worker=sorted(round(v / MiB, 1) for v in rss.values()), load=_load())
    assert summary.hosts == n_hosts
    assert summary.unreadable == 0 and summary.namespaces > summary.hosts, summary
    return summary


@pytest.mark.parametrize("workers", [1, 2])
def test_bench_fleet_workers(benchmark, inventory, workers, tmp_path):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed: pip install 'sparsemem[fleet]'")
    benchmark.group = "fleet: Dask"
    root, texts = inventory
    _dask_run(benchmark, root, len(texts), workers, fleet.DEFAULT_BATCH_SIZE, tmp_path)


@pytest.mark.parametrize("batch_size", [16, 64, 128, 256, 512])
def test_bench_fleet_batch_size(benchmark, inventory, batch_size, tmp_path):
    pytest.importorskip("distributed", reason="dask[distributed] is not installed: pip install 'sparsemem[fleet]'")
    benchmark.group = "fleet: batch size (2 workers)"
    root, texts = inventory
    _dask_run(benchmark, root, len(texts), 2, batch_size, tmp_path)
