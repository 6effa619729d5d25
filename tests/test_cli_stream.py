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
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from typing import Optional

import numpy as np
import pytest
from test_cli import _env, validate

import sparsemem
from sparsemem import iomem, plot
from sparsemem.kernel import version_range
from sparsemem.report import DEFAULT_KERNELS, REPORT_SCHEMA, load_layout, report_layout

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
# a batch: 1,000 layouts made from the shipped ones with firmware-like perturbations, 10 bad


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


MiB = 1 << 20
PMEM_NAMES = ("Persistent Memory", "Persistent Memory (legacy)")
#: the e820 type a /proc/iomem top-level name comes from, as dmesg prints it up to 6.19
#: (arch/x86/kernel/e820.c e820_print_type / e820_type_to_string, v6.8)
DMESG_WORD = {"System RAM": "usable", "Reserved": "reserved", "ACPI Tables": "ACPI data",
              "ACPI Non-volatile Storage": "ACPI NVS", "Unusable memory": "unusable",
              "Persistent Memory (legacy)": "persistent (type 12)", "Persistent Memory": "persistent (type 7)",
              "Soft Reserved": "soft reserved"}
#: the shipped layouts the batch is made from: every public layout, every constructed
#: existing configuration, every input sample, and the bundled one
SHIPPED = sorted([*LAYOUTS.glob("*.txt"), *(HERE / "data" / "existing").glob("*.iomem.txt"),
                  *INPUTS.glob("*.txt"), BUNDLED])
#: an ndctl list -N beside the layouts made from this existing configuration (report reads
#: STEM.json beside STEM.txt)
NDCTL_BESIDE = {"qemu-fsdax-sector.iomem.txt": HERE / "data" / "existing" / "qemu-fsdax-sector.ndctl.json"}


def _top_level(path: pathlib.Path) -> list[list]:
    """The layout as the kernel built it: ``[start, end, name, nested lines]`` per top-level
    /proc/iomem range (any input form, read by the command's own front end)."""
    tree = iomem.parse(load_layout(str(path)).text)
    out: list[list] = []
    for line in tree.text().splitlines():
        if line[:1].isspace():
            out[-1][3].append(line)
        else:
            rng, name = line.split(" : ", 1)
            start, end = (int(x, 16) for x in rng.split("-"))
            out.append([start, end, name, []])
    return out


def _perturb(top: list[list], rnd: random.Random) -> list[str]:
    """What another firmware (or BIOS setting) would have given the same machine: pmem moved
    past a reserved head or short of a reserved tail (label areas, a 2/16/64/128 MiB
    granularity), the top of RAM moved by 64/128 MiB steps, an ACPI NVS hole punched into
    low RAM, the pmem type switched between NFIT (7) and legacy (12).  Returns what was done;
    ``top`` is changed in place (a changed range loses its nested lines)."""
    done = []
    kinds = rnd.sample(["head", "tail", "ram", "acpi", "type"], rnd.choice([0, 1, 1, 2, 2, 3]))
    pmem = [r for r in top if r[2] in PMEM_NAMES and r[1] - r[0] + 1 >= 512 * MiB]
    for kind in kinds:
        if kind in ("head", "tail") and pmem:
            r = rnd.choice(pmem)
            d = rnd.choice([2, 16, 64, 128]) * MiB
            if kind == "head":
                top.append([r[0], r[0] + d - 1, "Reserved", []])
                r[0] += d
            else:
                top.append([r[1] - d + 1, r[1], "Reserved", []])
                r[1] -= d
            r[3] = []
            done.append(f"pmem {kind} {d >> 20} MiB")
        elif kind == "ram":
            i = max((i for i, r in enumerate(top) if r[2] == "System RAM" and r[0] >= 1 << 32), default=None)
            if i is None:
                continue
            r = top[i]
            nxt = min((x[0] for x in top if x[0] > r[1]), default=1 << 52)
            new_end = r[1] + rnd.choice([-2, -1, 1, 2, 4]) * 128 * MiB + rnd.choice([0, 0, 64 * MiB])
            if r[0] + 256 * MiB < new_end < nxt:
                r[1], r[3] = new_end, []
                done.append("ram top")
        elif kind == "acpi":
            low = [r for r in top if r[2] == "System RAM" and r[1] - r[0] > 256 * MiB and r[1] < 1 << 32]
            if not low:
                continue
            r = rnd.choice(low)
            at = r[0] + rnd.randrange(1, (r[1] - r[0]) // 4096 - 64) * 4096
            n = rnd.randrange(1, 64) * 4096
            top.append([at + n, r[1], "System RAM", []])
            top.append([at, at + n - 1, "ACPI Non-volatile Storage", []])
            r[1], r[3] = at - 1, []
            done.append("acpi hole")
        elif kind == "type" and pmem:
            r = rnd.choice(pmem)
            r[2] = PMEM_NAMES[1 - PMEM_NAMES.index(r[2])]
            r[3] = []
            done.append("pmem type")
    top.sort(key=lambda r: r[0])
    return done


def _write_form(top: list[list], form: str, host: str) -> str:
    """The layout as one of the tools prints it."""
    if form == "iomem":
        return "".join(f"{s:08x}-{e:08x} : {name}\n" + "".join(f"{c}\n" for c in kids) for s, e, name, kids in top)
    e820 = [(s, e, name) for s, e, name, _ in top if name in DMESG_WORD]
    if form == "memmap":  # grep . /sys/firmware/memmap/*/* (the shell's glob order)
        entries = [(str(i), s, e, name) for i, (s, e, name) in enumerate(e820)]
        out = [f"root@{host}:~# grep . /sys/firmware/memmap/*/*"]
        for i, s, e, name in sorted(entries, key=lambda x: x[0]):
            out += [f"/sys/firmware/memmap/{i}/end:{e:#x}", f"/sys/firmware/memmap/{i}/start:{s:#x}",
                    f"/sys/firmware/memmap/{i}/type:{name}"]
        return "\n".join(out) + "\n"
    msgs = ["Linux version 6.8.0-45-generic (buildd@lcy02-amd64-115) #45-Ubuntu SMP PREEMPT_DYNAMIC",
            "Command line: BOOT_IMAGE=/vmlinuz-6.8.0-45-generic root=/dev/sda2 ro quiet",
            "BIOS-provided physical RAM map:"]
    msgs += [f"BIOS-e820: [mem {s:#018x}-{e:#018x}] {DMESG_WORD[name]}" for s, e, name in e820]
    msgs += ["NX (Execute Disable) protection: active", "APIC: Static calls initialized",
             "e820: update [mem 0x00000000-0x00000fff] usable ==> reserved",
             "e820: remove [mem 0x000a0000-0x000fffff] usable",
             "last_pfn = 0x7ffdc max_arch_pfn = 0x400000000"]
    if form == "dmesg":
        return "".join(f"[    0.{i:06d}] {m}\n" for i, m in enumerate(msgs))
    if form == "dmesg -x":
        return "".join(f"kern  :{'notice' if i == 0 else 'info  '}: [    0.{i:06d}] {m}\n" for i, m in enumerate(msgs))
    # journalctl -k
    return "-- Boot 3f5c0e2a9b8d4c1e --\n" + "".join(f"Dec 05 12:38:00 {host} kernel: {m}\n" for m in msgs)


def _expected_regions(top: list[list], form: str) -> list[tuple[int, int]]:
    """The pmem regions the layout shows: every top-level pmem range; in an e820 form the
    kernel's sanitizer merges adjacent entries of one type first, but never legacy pmem
    (type 12: e820_nomerge, arch/x86/kernel/e820.c e820__update_table, v6.12)."""
    out: list[list] = []
    for s, e, name, _ in top:
        if name not in PMEM_NAMES:
            continue
        if form != "iomem" and out and out[-1][1] + 1 == s and out[-1][2] == name == "Persistent Memory":
            out[-1][1] = e
        else:
            out.append([s, e, name])
    return [(s, e - s + 1) for s, e, _ in out]


def _bad_layouts(d: pathlib.Path) -> list[tuple[pathlib.Path, pathlib.Path, str]]:
    """Ten layouts that cannot be read, made from the shipped ones where they can be:
    ``(path, the file the message names, what it says)``."""
    iomem_lines = BUNDLED.read_text().splitlines()
    dmesg_lines = (INPUTS / "qemu-6.8-memmap.dmesg.txt").read_text().splitlines()
    out = []

    def put(name: str, text, expect: str, named: Optional[pathlib.Path] = None):
        p = d / name
        if text is not None:
            (p.write_bytes if isinstance(text, bytes) else p.write_text)(text)
        out.append((p, named or p, expect))

    n = len(iomem_lines) // 2  # a line that is no layout line, pasted into a real /proc/iomem
    put("bad-garbage.txt", "\n".join(iomem_lines[:n] + ["Total online memory: 512G"] + iomem_lines[n:]),
        f"line {n + 1}: not a layout line")
    put("bad-missing.txt", None, "cannot read")
    (d / "bad-directory.txt").mkdir()
    out.append((d / "bad-directory.txt", d / "bad-directory.txt", "cannot read"))
    first = next(i for i, line in enumerate(iomem_lines) if line.startswith("00100000-"))
    put("bad-start-above-end.txt", "\n".join(iomem_lines[:first] + ["00200000-000fffff : System RAM"]),
        f"line {first + 1}: start 0x200000")
    put("bad-overlap.txt", "\n".join(iomem_lines[:first] + ["000f8000-0010ffff : Reserved"]), f"line {first + 1}: ")
    # /proc/iomem read without CAP_SYS_ADMIN: every address 0
    zeros = [re.sub(r"^(\s*)[0-9a-f]+-[0-9a-f]+", r"\g<1>00000000-00000000", line) for line in iomem_lines]
    put("bad-unprivileged.txt", "\n".join(zeros), "root")
    # `dmesg > f` as a user when dmesg_restrict is set: an empty file
    put("bad-empty.txt", "", "no /proc/iomem, e820 or /sys/firmware/memmap lines")
    i = next(i for i, line in enumerate(dmesg_lines) if "BIOS-e820:" in line and line.endswith("usable"))
    put("bad-e820-type.txt", "\n".join(dmesg_lines[:i] + [dmesg_lines[i][:-len("usable")] + "spare"]
                                       + dmesg_lines[i + 1:]), f"line {i + 1}: unknown e820 type 'spare'")
    memmap = (INPUTS / "optane-firmware-memmap.grep.txt").read_text().replace(
        "/sys/firmware/memmap/13/type:Persistent Memory\n", "")
    put("bad-memmap.txt", memmap, "/sys/firmware/memmap/13 has no type")
    # a good layout whose ndctl list -N beside it is cut short
    put("bad-ndctl.txt", (HERE / "data" / "existing" / "qemu-fsdax-sector.iomem.txt").read_text(),
        "ndctl JSON: line", named=d / "bad-ndctl.json")
    (d / "bad-ndctl.json").write_text(NDCTL_BESIDE["qemu-fsdax-sector.iomem.txt"].read_text()[:200])
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """1,000 layout paths in order: 990 made from the shipped layouts (each perturbed as
    another firmware would have given it, and written in one of the forms the tools print),
    the 10 bad ones spread through them.  Returns ``(paths, bad, expected)``: ``bad`` the
    bad ones with what their message names and says, ``expected`` the pmem regions
    ``(start, size)`` of every good one by path."""
    d = tmp_path_factory.mktemp("batch")
    bad = _bad_layouts(d)
    bad_at = {37 + 97 * i: b for i, b in enumerate(bad)}
    tops = {p: _top_level(p) for p in SHIPPED}
    forms = ["iomem", "iomem", "dmesg", "dmesg -x", "journalctl -k", "memmap"]
    paths, expected = [], {}
    for i in range(1000):
        if i in bad_at:
            paths.append(bad_at[i][0])
            continue
        rnd = random.Random(i)
        src = SHIPPED[i % len(SHIPPED)]
        top = [[s, e, name, list(kids)] for s, e, name, kids in tops[src]]
        done = _perturb(top, rnd)
        form = "iomem" if not done and i % 3 == 0 else rnd.choice(forms)
        p = d / f"layout-{i:04d}.txt"
        p.write_text(_write_form(top, form, f"host{i:04d}"))
        if form == "iomem" and not done and src.name in NDCTL_BESIDE:
            p.with_suffix(".json").write_text(NDCTL_BESIDE[src.name].read_text())
        paths.append(p)
        expected[str(p)] = _expected_regions(top, form)
    return paths, bad, expected


def _read_all(fd: int, sink: list) -> None:
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        sink.append(data)


def _read_lines(stream, sink: list) -> None:
    for line in stream:
        sink.append(line)


def test_batch_of_1000_streams_shows_progress_reports_the_10_and_exits_1(batch, tmp_path):
    """The whole batch through the command, stderr a terminal (a pty): every readable
    layout's result on stdout, once, in input order, printed as soon as it is ready (the
    command is held on a FIFO half-way: everything before it is out already); the 10 bad
    ones named on stderr in order, between the progress bar's redraws; exit status 1."""
    paths, bad, expected = batch
    hold = 500
    fifo = tmp_path / "held-layout.txt"
    os.mkfifo(fifo)
    args = [*paths[:hold], fifo, *paths[hold + 1:]]
    bad_paths = {str(p) for p, _, _ in bad}
    good = [str(p) for p in args if str(p) not in bad_paths]
    expected = {**expected, str(fifo): expected[str(paths[hold])]}
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))  # a 100x24 terminal
    tty: list[bytes] = []
    out: list[str] = []
    proc = subprocess.Popen([*CMD, "report", *map(str, args), "--jsonl"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, text=True, env=_env(), cwd=str(REPO))
    os.close(slave)
    threads = [threading.Thread(target=_read_all, args=(master, tty), daemon=True),
               threading.Thread(target=_read_lines, args=(proc.stdout, out), daemon=True)]
    for t in threads:
        t.start()
    try:
        writer = _wait_until_reading(fifo, proc)
        # held in read(): every result before the FIFO has been written and flushed
        before = [p for p in good if p in {str(x) for x in paths[:hold]}]
        deadline = time.monotonic() + 120
        while len(out) < len(before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [json.loads(line)["layouts"][0]["file"] for line in out] == before
        assert proc.poll() is None
        os.write(writer, paths[hold].read_bytes())
        os.close(writer)
        proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    for t in threads:
        t.join(timeout=30)
    os.close(master)
    assert proc.returncode == 1
    objs = [json.loads(line) for line in out]
    # every readable layout, once, in input order, with the pmem regions it shows
    assert [o["layouts"][0]["file"] for o in objs] == good
    for o in objs:
        (lay,) = o["layouts"]
        assert [(r["start"], r["size"]) for r in lay["regions"]] == expected[lay["file"]], lay["file"]
        assert [k["version"] for k in o["kernels"]] == list(DEFAULT_KERNELS)
        assert all(len(r["results"]) == len(DEFAULT_KERNELS) for r in lay["regions"])
    assert validate(objs[0], schema()) == [] and validate(objs[-1], schema()) == []
    # the ndctl JSON beside a layout is read with it
    beside = [o["layouts"][0] for o in objs if pathlib.Path(o["layouts"][0]["file"]).with_suffix(".json").exists()]
    assert beside and all(lay["existing"]["ndctl"] for lay in beside)
    assert all([n["mode"] for n in lay["regions"][0]["results"][0]["namespaces"]] == ["fsdax", "sector"]
               for lay in beside)
    # the terminal: the bar (tqdm: "n/1000", the rate, the unreadable count) and the 10 errors
    text = b"".join(tty).decode("utf-8", "replace")
    lines = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r", "\n").splitlines()
    errors = [line[line.index("sparsemem: error:"):] for line in lines if "sparsemem: error:" in line]
    assert len(errors) == 10
    for (_, named, expect), line in zip(bad, errors):  # in input order too
        assert str(named) in line and expect in line, (expect, line)
    assert "Traceback" not in text
    assert "/1000" in text and "layout/s" in text and "unreadable=10" in text
    assert "sparsemem: 10 of 1000 layouts could not be read or booted" in lines


def test_batch_text_and_json_agree_and_json_is_one_object(batch):
    paths, bad, _ = batch
    some = paths[:120]
    n_bad = len({str(p) for p, _, _ in bad} & {str(p) for p in some})
    js = run("report", *some, "--json")
    jl = run("report", *some, "--jsonl", "--progress")
    assert js.returncode == jl.returncode == 1
    rep = json.loads(js.stdout)
    assert validate(rep, schema()) == []
    assert rep["layouts"] == [json.loads(line)["layouts"][0] for line in jl.stdout.splitlines()]
    # printed layout by layout, the text is still what json.dumps(indent=2) gives the whole
    assert js.stdout == json.dumps(rep, indent=2) + "\n"
    text = run("report", *some)
    assert text.stdout.count("\nlayout ") + text.stdout.startswith("layout ") == len(rep["layouts"])
    assert "/120" not in text.stderr  # stderr is a pipe: no bar
    # --progress forces the bar onto a pipe; its last state stays as a record
    assert n_bad == 1 and "120/120" in jl.stderr and f"unreadable={n_bad}" in jl.stderr
    assert "/120" not in jl.stdout


# ---------------------------------------------------------------------------------------------
# streaming and Ctrl-C: a FIFO in the batch holds the command until the test lets it go


def _wait_until_reading(fifo, proc) -> int:
    """Block until the command has opened the FIFO (it is past every layout before it): a
    non-blocking open for writing fails with ENXIO until a reader has it open.  Returns the
    writer's fd; the command then waits in read() for data that never comes."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO or proc.poll() is not None:
                raise
            time.sleep(0.01)
    _wait_blocked(proc)
    return fd


def _wait_blocked(proc, limit: float = 30.0) -> None:
    """Wait until the command sleeps in the kernel reading the FIFO (its wchan names the
    pipe read), not merely has it open: a SIGINT that arrives between open() and read()
    sets Python's flag before read() starts, which then blocks with the KeyboardInterrupt
    pending (CPython checks it only when a system call returns EINTR or between bytecodes).
    Where /proc does not say, a short pause has to do."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{proc.pid}/wchan") as f:
                wchan = f.read().strip()
        except OSError:
            wchan = ""
        if "pipe" in wchan:
            return
        if wchan in ("", "0"):        # not shown by this kernel
            time.sleep(0.5)
            return
        time.sleep(0.005)


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


#: each input sample, as its tool printed it, with the form it is and the pmem it shows
#: (read off the sample: the user map's / firmware table's persistent ranges)
SAMPLES = {
    "qemu-6.8-memmap.dmesg.txt": ("dmesg", [(0x200000000, 4 << 30)]),
    "qemu-6.1-mem-memmap.dmesg-x.txt": ("dmesg", [(0x300000000, 4 << 30)]),
    "qemu-7.3-memmap.dmesg-r.txt": ("dmesg", [(0x100000000, 2 << 30)]),
    "optane-5.4-efi.journal.txt": ("dmesg", [(0x187C000000, 0x967C000000 - 0x187C000000)]),
    "optane-firmware-memmap.grep.txt": ("firmware-memmap", [(0x187C000000, 0x967C000000 - 0x187C000000)]),
    "optane-firmware-memmap.loop.txt": ("firmware-memmap", [(0x187C000000, 0x967C000000 - 0x187C000000)]),
    "qemu-firmware-memmap.head.txt": ("firmware-memmap", []),
}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_input_sample_through_the_command(name):
    assert sorted(SAMPLES) == sorted(p.name for p in INPUTS.glob("*.txt"))
    proc = run("report", INPUTS / name, "-k", "5.3", "--json")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    (lay,) = json.loads(proc.stdout)["layouts"]
    form, regions = SAMPLES[name]
    assert lay["input"]["format"] == form
    assert [(r["start"], r["size"]) for r in lay["regions"]] == regions
    assert all(r["results"][0]["result"] == "ok" for r in lay["regions"])


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
    assert "this machine's map (no LAYOUT given)" in lay["input"]["notes"]
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
    paths, _, _ = batch
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
    # 60 layouts in one file: the summary, whose size does not grow with the batch; every
    # layout counted by outcome per kernel (ok, padding lost, failed), the worst ones named
    out = tmp_path / "summary.png"
    proc = run("report", *paths[:60], "--plot", out)
    assert proc.returncode == 1 and "plot written to" in proc.stdout
    (h, w, _), colours = _png(out)
    assert h < 2000 and w < 1400
    assert {_rgb(c) for _, _, c in plot._OUTCOMES} <= colours


def test_plot_of_device_memory_and_of_an_existing_configuration(tmp_path):
    """Soft Reserved / CXL memory that kmem gave to the page allocator is drawn (it is not
    top-level System RAM); the sections where an existing configuration's namespaces start
    and end are drawn (two namespaces and free space in one region), not hidden in a break."""
    pytest.importorskip("matplotlib")
    existing = HERE / "data" / "existing"
    out = tmp_path / "hmem.png"
    proc = run("report", existing / "hmem-cxl-kmem.iomem.txt", "--plot", out)
    assert proc.returncode == 0, proc.stderr
    _, colours = _png(out)
    assert _rgb(plot._KMEM) in colours and _rgb(plot._RAM) in colours
    lay = load_layout(str(existing / "qemu-fsdax-sector.iomem.txt"))
    rep = report_layout(lay, ["5.3"], keep_state=True)
    (r0, r1) = rep["_state"]["5.3"]["regions"]
    cols = plot._columns([r0, r1])
    ns0, ns1 = r0["namespaces"]
    for addr in (ns1["start"], ns1["start"] + ns1["raw_size"], ns0["start"] + ns0["raw_size"] - 1):
        assert addr // (128 << 20) in cols, hex(addr)
    out = tmp_path / "fsdax.png"
    assert run("report", existing / "qemu-fsdax-sector.iomem.txt", "--plot", out, "-k", "5.3").returncode == 0
    _, colours = _png(out)
    # the three namespaces' data and the free space; no kmem there
    assert {_rgb(c) for c in (*plot._NS_COLOURS[:3], plot._FREE)} <= colours
    assert _rgb(plot._KMEM) not in colours
    # a devdax namespace bound to kmem: its hot-added range is marked (and in the legend)
    out = tmp_path / "kmem.png"
    assert run("report", existing / "qemu-devdax-kmem.iomem.txt", "--plot", out, "-k", "5.3").returncode == 0
    _, colours = _png(out)
    assert _rgb(plot._KMEM) in colours
