"""``sparsemem report`` on real inputs and in batches (issue 13, items 1, 3-6), run as a user
runs it: in a subprocess, with stdin, a terminal (pty) and Ctrl-C (SIGINT) where it matters.
"""

from __future__ import annotations

import errno
import fcntl
import importlib.metadata
import json
import os
import pathlib
import pty
import random
import signal
import struct
import subprocess
import sys
import termios
import threading
import time

import numpy as np
import pytest
from test_cli import _env, validate

import sparsemem
from sparsemem import plot
from sparsemem.kernel import version_range
from sparsemem.report import REPORT_SCHEMA

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent
INPUTS = HERE / "data" / "inputs"
LAYOUTS = HERE / "data" / "layouts"
BUNDLED = REPO / "src" / "sparsemem" / "data" / "ndctl-issue-76.txt"
CMD = [sys.executable, "-m", "sparsemem"]


def run(*args, stdin=subprocess.DEVNULL, env=None, input=None) -> subprocess.CompletedProcess:
    kw = {"input": input} if input is not None else {"stdin": stdin}
    return subprocess.run([*CMD, *map(str, args)], capture_output=True, text=True, env=env or _env(),
                          cwd=str(REPO), timeout=600, **kw)


def schema():
    return REPORT_SCHEMA


# ---------------------------------------------------------------------------------------------
# a batch: 990 perturbed layouts and 10 bad ones


def _good_layout(rnd: random.Random) -> str:
    """A QEMU-like /proc/iomem with System RAM and one legacy pmem range whose start, size and
    the RAM after it are perturbed (section, 64 MiB and 2 MiB offsets)."""
    ram_end = 0x100000000 + rnd.randrange(1, 64) * (128 << 20) + rnd.choice([0, 0, 64 << 20, 2 << 20])
    pmem = rnd.randrange(1, 32) * (256 << 20) + rnd.choice([0, 0, 64 << 20, 2 << 20])
    tail = rnd.randrange(0, 16) * (128 << 20)
    lines = ["00000000-00000fff : Reserved", "00001000-0009fbff : System RAM", "0009fc00-0009ffff : Reserved",
             "000f0000-000fffff : Reserved", "00100000-7ffdbfff : System RAM", "7ffdc000-7fffffff : Reserved",
             "b0000000-bfffffff : Reserved", "  b0000000-bfffffff : PCI MMCONFIG 0000 [bus 00-ff]",
             "fed1c000-fed1ffff : Reserved", f"100000000-{ram_end - 1:x} : System RAM",
             f"{ram_end:x}-{ram_end + pmem - 1:x} : Persistent Memory (legacy)"]
    if tail:
        lines.append(f"{ram_end + pmem:x}-{ram_end + pmem + tail - 1:x} : System RAM")
    return "\n".join(lines) + "\n"


def _bad_layouts(d: pathlib.Path) -> list[tuple[pathlib.Path, str]]:
    """Ten layouts that cannot be read, each with what its message must say."""
    good = _good_layout(random.Random(0)).splitlines()
    out = []

    def put(name: str, text, expect: str):
        p = d / name
        if text is not None:
            (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        out.append((p, expect))

    put("bad-garbage.txt", "\n".join(good[:5] + ["this is not a layout line"] + good[5:]), "line 6: not a layout line")
    put("bad-missing.txt", None, "cannot read")
    put("bad-start-above-end.txt", "\n".join(good[:3] + ["00200000-000fffff : System RAM"]), "line 4: start 0x200000")
    put("bad-overlap.txt", "\n".join(good[:4] + ["000f8000-0010ffff : Reserved"]), "line 5: ")
    put("bad-unprivileged.txt", "00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n", "root")
    put("bad-empty.txt", "", "no /proc/iomem, e820 or /sys/firmware/memmap lines")
    put("bad-binary.txt", bytes(random.Random(1).randrange(256) for _ in range(300)), "line ")
    put("bad-e820-type.txt", "[    0.000000] BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] spare\n",
        "line 1: unknown e820 type 'spare'")
    put("bad-memmap.txt", "/sys/firmware/memmap/0/start:0x0\n/sys/firmware/memmap/0/end:0x9fbff\n",
        "/sys/firmware/memmap/0 has no type")
    (d / "bad-directory.txt").mkdir()
    out.append((d / "bad-directory.txt", "cannot read"))
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """1,000 layout paths in order (990 good, the 10 bad ones spread through them) and the
    bad ones with their expected messages."""
    d = tmp_path_factory.mktemp("batch")
    rnd = random.Random(13)
    bad = _bad_layouts(d)
    bad_at = {50 + 97 * i: b for i, b in enumerate(bad)}
    paths = []
    for i in range(1000):
        if i in bad_at:
            paths.append(bad_at[i][0])
        else:
            p = d / f"layout-{i:04d}.txt"
            p.write_text(_good_layout(rnd))
            paths.append(p)
    return paths, bad


def test_batch_streams_reports_bad_layouts_and_exits_1(batch):
    paths, bad = batch
    proc = run("report", *paths, "--jsonl", "--progress")
    assert proc.returncode == 1, proc.stderr[-2000:]
    objs = [json.loads(line) for line in proc.stdout.splitlines()]
    bad_paths = {str(p) for p, _ in bad}
    # every readable layout, once, in input order
    assert [o["layouts"][0]["file"] for o in objs] == [str(p) for p in paths if str(p) not in bad_paths]
    for o in objs:
        assert validate(o, schema()) == []
        (lay,) = o["layouts"]
        assert len(lay["regions"]) == 1 and lay["regions"][0]["size"] >= 256 << 20
    errors = [line for line in proc.stderr.replace("\r", "\n").splitlines() if line.startswith("sparsemem: error:")]
    assert len(errors) == 10
    for (p, expect), line in zip(bad, errors):  # reported in input order too
        assert str(p) in line and expect in line, (expect, line)
        assert "Traceback" not in line
    assert "sparsemem: 10 of 1000 layouts could not be read or booted" in proc.stderr
    # the forced progress bar counted all 1000 (tqdm writes "n/1000" as it goes)
    assert "1000/1000" in proc.stderr and "unreadable=10" in proc.stderr


def test_batch_text_and_json_agree_and_json_is_one_object(batch):
    paths, bad = batch
    some = [p for p in paths[40:160]]
    js = run("report", *some, "--json")
    jl = run("report", *some, "--jsonl")
    assert js.returncode == jl.returncode == 1
    rep = json.loads(js.stdout)
    assert validate(rep, schema()) == []
    assert rep["layouts"] == [json.loads(line)["layouts"][0] for line in jl.stdout.splitlines()]
    # printed layout by layout, the text is still what json.dumps(indent=2) gives the whole
    assert js.stdout == json.dumps(rep, indent=2) + "\n"
    text = run("report", *some)
    assert text.stdout.count("\nlayout ") + text.stdout.startswith("layout ") == len(rep["layouts"])
    assert "█" not in text.stderr and "/120" not in text.stderr  # stderr is a pipe: no bar


def _read_all(fd: int, sink: list) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        sink.append(data)


def test_progress_bar_on_a_terminal_only(batch):
    """stderr a terminal (a pty): the bar is drawn without being asked; results stay on stdout."""
    paths, bad = batch
    n_bad = len({str(p) for p, _ in bad} & {str(p) for p in paths[:300]})
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100x24 terminal
    got: list[bytes] = []
    reader = threading.Thread(target=_read_all, args=(master, got), daemon=True)
    reader.start()
    proc = subprocess.run([*CMD, "report", *paths[:300]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=slave, env=_env(), cwd=str(REPO), timeout=600)
    os.close(slave)
    reader.join(timeout=30)
    os.close(master)
    tty = b"".join(got).decode("utf-8", "replace")
    assert proc.returncode == 1 and n_bad == 3
    assert "/300" in tty and "layout/s" in tty
    assert tty.count("sparsemem: error:") == n_bad
    assert proc.stdout.decode().count("total usable:") == 300 - n_bad
    assert "/300" not in proc.stdout.decode()


# ---------------------------------------------------------------------------------------------
# streaming and Ctrl-C: a FIFO in the batch holds the command until the test lets it go


def _wait_until_reading(fifo, proc) -> int:
    """Block until the command has opened the FIFO (it is past every layout before it): a
    non-blocking open for writing fails with ENXIO until a reader has it open.  Returns the
    writer's fd; the command then waits in read() for data that never comes."""
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                raise
            time.sleep(0.01)


def _start_with_fifo(tmp_path, n_before: int, *extra):
    fifo = tmp_path / "held.fifo"
    os.mkfifo(fifo)
    rnd = random.Random(7)
    files = []
    for i in range(n_before + 3):
        p = tmp_path / f"s{i}.txt"
        p.write_text(_good_layout(rnd))
        files.append(p)
    args = files[:n_before] + [fifo] + files[n_before:]
    # SIGINT as at a terminal, also where the test runner was started with it ignored (a
    # background job without job control), which Python would otherwise inherit
    proc = subprocess.Popen([*CMD, "report", *map(str, args), *extra], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=str(REPO),
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    return proc, files, fifo


def test_results_print_as_they_are_ready_and_ctrl_c_keeps_them(tmp_path):
    proc, files, fifo = _start_with_fifo(tmp_path, 3)
    try:
        seen = []
        while len([line for line in seen if line.startswith("total usable:")]) < 3:
            line = proc.stdout.readline()
            assert line, "the first results must arrive while the batch is still running"
            seen.append(line)
        # the three reports are out while the command waits on the 4th layout (the FIFO)
        assert proc.poll() is None
        writer = _wait_until_reading(fifo, proc)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # (communicate() would skip what readline() buffered)
        out, err = proc.stdout.read(), proc.stderr.read()
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    text = "".join(seen) + out
    assert [line.split()[1] for line in text.splitlines() if line.startswith("layout ")] == \
        [p.name for p in files[:3]]
    assert "interrupted: 3 of 7 layouts reported" in err
    assert "Traceback" not in err


def test_ctrl_c_with_json_still_prints_valid_json(tmp_path):
    proc, files, fifo = _start_with_fifo(tmp_path, 2, "--json")
    try:
        first = proc.stdout.readline()  # '{' of the object, written with the first layout
        assert first == "{\n"
        buf = [first]
        while '"file": "%s"' % files[1] not in "".join(buf):
            buf.append(proc.stdout.readline())
        assert proc.poll() is None
        writer = _wait_until_reading(fifo, proc)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)  # (communicate() would skip what readline() buffered)
        out, err = proc.stdout.read(), proc.stderr.read()
        os.close(writer)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    rep = json.loads("".join(buf) + out)
    assert [lay["file"] for lay in rep["layouts"]] == [str(files[0]), str(files[1])]
    assert validate(rep, schema()) == []
    assert "interrupted: 2 of 6 layouts reported" in err, err


# ---------------------------------------------------------------------------------------------
# where the layout comes from


def test_stdin_dash_redirect_and_pipe():
    dmesg = (INPUTS / "qemu-6.8-memmap.dmesg.txt").read_text()
    with open(INPUTS / "qemu-6.8-memmap.dmesg.txt") as f:
        redirected = run("report", "-k", "5.3", stdin=f)  # report < file
    dash = run("report", "-", "-k", "5.3", input=dmesg)  # dmesg | report -
    piped = run("report", "-k", "5.3", input=dmesg)  # dmesg | report
    for proc in (redirected, dash, piped):
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("layout <stdin>\n")
        assert "region0  0x200000000-0x2ffffffff  4 GiB" in proc.stdout
        assert "e820 table 'user' with 2 update/remove lines applied (lines 42, 43)" in \
            " ".join(proc.stdout.split())
    assert run("report", "-", "-", input=dmesg).returncode == 2


def test_no_layout_reads_this_machines_iomem_when_it_shows_addresses(tmp_path):
    env = _env()
    real = tmp_path / "iomem"
    real.write_text((LAYOUTS / "lore.kernel.org_161058500675.1840162.7887862152161279354.stgit@dwillia2-"
                     "desk3.amr.corp.intel.com.txt").read_text())
    env["SPARSEMEM_PROC_IOMEM"] = str(real)
    proc = run("report", "--json", env=env)
    assert proc.returncode == 0 and proc.stderr == ""
    (lay,) = json.loads(proc.stdout)["layouts"]
    assert lay["file"] == str(real) and lay["bundled"] is False and lay["regions"]
    # all zeros (a reader without CAP_SYS_ADMIN): one line says why, the bundled layout is used
    real.write_text("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n")
    proc = run("report", "--json", env=env)
    assert proc.returncode == 0
    assert proc.stderr.count("\n") == 1 and "every address as 0" in proc.stderr
    assert "using the bundled layout ndctl-issue-76.txt" in proc.stderr
    assert json.loads(proc.stdout)["layouts"][0]["bundled"] is True


def test_lsmem_without_layout(tmp_path):
    env = _env()
    real = tmp_path / "iomem"
    src = LAYOUTS / "lore.kernel.org_0FB85A78-C2EE-4135-9E0F-D5623CE6EA47@lca.pw.txt"  # a /proc/iomem
    real.write_text(src.read_text())
    env["SPARSEMEM_PROC_IOMEM"] = str(real)
    mine = run("lsmem", env=env)
    assert mine.returncode == 0 and mine.stderr == ""
    assert mine.stdout == run("lsmem", src).stdout
    bundled = run("lsmem")  # _env(): no readable /proc/iomem
    assert bundled.returncode == 0 and "using the bundled layout" in bundled.stderr
    assert bundled.stdout == run("lsmem", BUNDLED).stdout
    with open(src) as f:
        assert run("lsmem", stdin=f).stdout == mine.stdout


# ---------------------------------------------------------------------------------------------
# --check, kernels, --version


def test_check_exit_status():
    proc = run("report", BUNDLED, "--check")
    assert proc.returncode == 3
    checks = [line for line in proc.stderr.splitlines() if line.startswith("sparsemem: check:")]
    assert checks == ["sparsemem: check: ndctl-issue-76.txt: region0 under 5.2: 128 MiB lost (128 MiB padding)",
                      "sparsemem: check: ndctl-issue-76.txt: region1 under 5.2: 128 MiB lost (128 MiB padding)"]
    assert run("report", BUNDLED, "--check", "-k", "5.3").returncode == 0
    assert run("report", BUNDLED, "-k", "5.2").returncode == 0  # without --check: a result, not an error
    lca = LAYOUTS / "lore.kernel.org_0FB85A78-C2EE-4135-9E0F-D5623CE6EA47@lca.pw.txt"
    proc = run("report", lca, "-k", "5.3", "--check")
    assert proc.returncode == 3
    assert "region1 under 5.3: EINVAL: memory add fail, invalid altmap" in proc.stderr
    # the failure's dmesg lines are in the text report
    assert "  dmesg 5.3         memory add fail, invalid altmap" in proc.stdout
    # a layout that cannot be read wins over --check
    assert run("report", BUNDLED, lca, REPO / "no-such-file", "--check").returncode == 1


def test_kernel_versions_as_uname_prints_them():
    proc = run("report", BUNDLED, "-k", "6.8.0-45-generic", "-k", "5.3.0-rc1", "-k", "v5.10", "--json")
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(proc.stdout)
    assert [k["version"] for k in rep["kernels"]] == ["6.8.0-45-generic", "5.3.0-rc1", "v5.10"]
    bad = run("report", "-k", "4.19.0-45-generic")
    assert bad.returncode == 2 and version_range() in bad.stderr
    helptext = " ".join(run("report", "--help").stdout.split())
    assert f"modelled: {version_range()}" in helptext and "6.8.0-45-generic" in helptext


def test_version_matches_the_package_metadata():
    proc = run("--version")
    assert proc.returncode == 0

    assert proc.stdout.strip() == f"sparsemem {sparsemem.__version__}"
    try:
        assert importlib.metadata.version("sparsemem") == sparsemem.__version__
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare checkout
        pass


# ---------------------------------------------------------------------------------------------
# plots


def _png(path):
    mpimg = pytest.importorskip("matplotlib.image")

    img = mpimg.imread(str(path))
    colours = {tuple(c) for c in np.unique((img[..., :3] * 255).round().astype(int).reshape(-1, 3), axis=0)}
    return img.shape, colours


def _rgb(hex_colour: str) -> tuple:
    return tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))


def test_plot_of_a_layout_without_pmem_maps_ram_and_blocks(tmp_path):
    pytest.importorskip("matplotlib")

    src = LAYOUTS / ("nvdimm.wiki.kernel.org_how_to_choose_the_correct_memmap_kernel_parameter_for_pmem"
                     "_on_your_system.txt")
    out = tmp_path / "ram.png"
    proc = run("report", src, "--plot", out)
    assert proc.returncode == 0, proc.stderr
    (h, w, _), colours = _png(out)
    assert _rgb(plot._RAM) in colours and _rgb(plot._BLOCK_COLOURS["online"]) in colours
    assert h < 1000 and w < 1600


def test_plot_dir_writes_one_file_per_layout_and_many_make_a_bounded_summary(tmp_path, batch):
    pytest.importorskip("matplotlib")
    paths, _ = batch
    few = [BUNDLED, LAYOUTS / "nvdimm.wiki.kernel.org_how_to_choose_the_correct_memmap_kernel_parameter_for_pmem_"
           "on_your_system.txt", INPUTS / "qemu-7.3-memmap.dmesg-r.txt"]
    d = tmp_path / "maps"
    proc = run("report", *few, "--plot", f"{d}/", "--jsonl")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in d.iterdir()) == sorted(
        ["ndctl-issue-76.png", "nvdimm.wiki.kernel.org_how_to_choose_the_correct_memmap_kernel_parameter_for_pmem_"
         "on_your_system.png", "qemu-7.3-memmap.dmesg-r.png"])
    for p in d.iterdir():
        (h, w, _), colours = _png(p)
        assert len(colours) > 3 and h < 2000 and w < 2200
    # 60 layouts in one file: the summary, whose size does not grow with the batch
    out = tmp_path / "summary.png"
    proc = run("report", *paths[:60], "--plot", out)
    assert proc.returncode == 1 and "plot written to" in proc.stdout
    (h, w, _), _ = _png(out)
    assert h < 2000 and w < 1400
