"""The real tools against the simulation: util-linux ``lsmem`` on exported trees, ``chmem``
and the kernel's own memory-hotplug selftest through the FUSE mount (api.md "Command line",
sparse-hotplug.md §8.6; util-linux 2.38.1 sys-utils/lsmem.c and chmem.c).

Each group skips with the reason when this machine cannot offer what it needs: util-linux
``lsmem``/``chmem`` 2.38 (apt-get install util-linux), root and /dev/fuse, libfuse (apt-get
install fuse3), mfusepy (pip install '.[fuse]'), ``unshare``, and for the selftest Debian's
``linux-source-6.1`` or ``-6.12`` package, from whose tarball the script is extracted unchanged
into a temporary directory at test time.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import pathlib
import pickle
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

import pytest

import sparsemem
from sparsemem import fusefs
from sparsemem import lsmem as L
from sparsemem.machine import DEFAULT_IOMEM, Machine
from sparsemem.sysroot import MEMORY_DIR, SysRoot, export

REPO = pathlib.Path(__file__).resolve().parent.parent
BUNDLED = pathlib.Path(sparsemem.__file__).resolve().parent / "data" / "ndctl-issue-76.txt"
LAYOUTS = sorted((REPO / "tests" / "data" / "layouts").glob("*.txt")) + [BUNDLED]
KERNELS = ("5.2", "5.3", "6.8")
C_ENV = dict(os.environ, LC_ALL="C", LANG="C")

#: every lsmem option, alone and combined (2.38.1 has no option beyond these)
OPTIONS = [
    [], ["-a"], ["-b"], ["-n"], ["-r"], ["-J"], ["-P"], ["--output-all"], ["-a", "--output-all"],
    ["-o", "RANGE"], ["-o", "SIZE"], ["-o", "STATE"], ["-o", "REMOVABLE"], ["-o", "BLOCK"],
    ["-o", "NODE"], ["-o", "ZONES"], ["-o", "+NODE,ZONES"], ["-o", "zones,size,range"],
    ["-J", "--output-all"], ["-J", "-b", "--output-all"], ["-P", "--output-all"],
    ["-r", "--output-all", "-n"], ["--summary"], ["--summary=only", "-b"],
    ["--summary=always", "-J"], ["--summary=never"], ["-S", "none"], ["-S", "node"],
    ["--split=STATE,ZONES", "-o", "RANGE,ZONES"], ["-b", "-a", "-o", "+ZONES"],
    ["-r", "--summary=always"], ["-P", "-b", "-a"], ["-J", "-a", "-o", "+ZONES,NODE"],
    ["-n", "--summary=always", "-o", "SIZE,RANGE"], ["--all", "--bytes", "--noheadings"],
]


@pytest.fixture
def scratch(tmp_path):
    """A directory for exported trees: in /dev/shm when it is writable (tens of thousands of
    small files: a disk file system with discard takes milliseconds each), else tmp_path."""
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    if base is None:
        yield tmp_path
        return
    d = tempfile.mkdtemp(prefix="sparsemem-test-", dir=base)
    try:
        yield pathlib.Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _lsmem_version():
    exe = shutil.which("lsmem")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, env=C_ENV).stdout
    m = re.search(r"util-linux (\d+\.\d+)", out)
    return m.group(1) if m else None


def need_lsmem():
    v = _lsmem_version()
    if v is None:
        pytest.skip("util-linux lsmem is not installed (apt-get install util-linux)")
    want = ".".join(L.UTIL_LINUX_VERSION.split(".")[:2])
    if v != want:
        pytest.skip(f"lsmem of util-linux {v} is installed; the format followed is {L.UTIL_LINUX_VERSION}")


def real_lsmem(root, opts):
    return subprocess.run(["lsmem", "--sysroot", str(root), *opts], capture_output=True, env=C_ENV)


def our_lsmem(reader, opts):
    """``sparsemem lsmem`` on the same machine, in-process (stdout not a terminal, as for the
    subprocess above): (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    rc = L.main(["x", *opts], stdout=out, stderr=err, reader=reader)
    return rc, out.getvalue().encode(), err.getvalue()


# ---------------------------------------------------------------------------------------------
# lsmem byte for byte


@pytest.mark.real_tools
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda p: p.name[:40])
def test_lsmem_byte_exact_on_exported_tree(layout, kernel, scratch):
    need_lsmem()
    m = Machine.from_iomem(layout.read_text(), kernel=kernel)
    export(m, str(scratch))
    live = SysRoot(m)
    reader = _Memo(live)  # the machine does not change between the runs: read it once
    for opts in OPTIONS:
        want = real_lsmem(scratch, opts)
        rc, out, err = our_lsmem(reader, opts)
        assert (rc, out) == (want.returncode, want.stdout), (opts, want.stderr, err)
    # the live tree and sparsemem's own reader of the exported tree give the same
    for opts in ([], ["--output-all", "-J"]):
        assert our_lsmem(live, opts) == our_lsmem(reader, opts)
        rc2, out2, _ = _our_sysroot(scratch, opts)
        assert (rc2, out2) == our_lsmem(reader, opts)[:2], opts


class _Memo:
    """A :class:`SysRoot` whose answers are remembered (for many runs over one state)."""

    def __init__(self, root):
        self.machine = root.machine
        self._root = root
        self._cache = {}

    def __getattr__(self, name):
        fn = getattr(self._root, name)

        def call(path):
            key = (name, path)
            if key not in self._cache:
                try:
                    self._cache[key] = (True, fn(path))
                except OSError as e:
                    self._cache[key] = (False, e)
            ok, v = self._cache[key]
            if not ok:
                raise v
            return v
        return call


def _our_sysroot(root, opts):
    out, err = io.StringIO(), io.StringIO()
    rc = L.main(["--sysroot", str(root), *opts], stdout=out, stderr=err)
    return rc, out.getvalue().encode(), err.getvalue()


@pytest.mark.real_tools
def test_lsmem_after_hotplug_states(scratch):
    """Offline, going-offline-free mixes, a hot-added node and Movable blocks: the cases the
    boot layouts do not show (two nodes, offline ranges, zone lists of offline blocks)."""
    need_lsmem()
    for kernel in KERNELS:
        m = Machine(kernel, possible_nodes=[0, 1])   # node 1 possible (5.8+ node_possible check)
        m.add_memory(0, 0x180000000, 4 << 27)
        m.add_memory(1, 0x200000000, 2 << 27)
        m.sysfs["memory49/state"] = "online_movable"
        m.sysfs["memory64/state"] = "online"
        m.sysfs["memory33/state"] = "offline"
        d = scratch / kernel
        export(m, str(d))
        for opts in OPTIONS:
            want = real_lsmem(d, opts)
            rc, out, err = our_lsmem(SysRoot(m), opts)
            assert (rc, out) == (want.returncode, want.stdout), (kernel, opts, want.stderr, err)


@pytest.mark.real_tools
def test_lsmem_fails_like_lsmem_without_memory_blocks(scratch):
    """A layout without System RAM has no memory block: lsmem fails ("Failed to read ...",
    with the errno its last failing call left), exit status 1; the table is never printed."""
    need_lsmem()
    m = Machine.from_iomem("100000000-13fffffff : Persistent Memory\n", kernel="5.3")
    assert m.memory_blocks == []
    export(m, str(scratch))
    for opts in ([], ["--summary"], ["-J"], ["-b", "--summary=only"]):
        want = real_lsmem(scratch, opts)
        rc, out, err = our_lsmem(SysRoot(m), opts)
        assert want.returncode == rc == 1 and want.stdout == out == b""
        lsmem_msg = want.stderr.decode().strip().replace(f"{scratch}/", "/")
        assert lsmem_msg.startswith("lsmem: Failed to read /sys/devices/system/memory: ")
        assert err.strip() == lsmem_msg.replace("lsmem: ", "sparsemem lsmem: error: ", 1)
        rc2, _, err2 = _our_sysroot(scratch, opts)
        assert rc2 == 1 and err2.strip() == want.stderr.decode().strip().replace(
            "lsmem: ", "sparsemem lsmem: error: ", 1)
    # no block_size_bytes at all: "This system does not support memory blocks"
    os.remove(scratch / MEMORY_DIR / "block_size_bytes")
    want = real_lsmem(scratch, [])
    rc, _, err = _our_sysroot(scratch, [])
    assert want.returncode == rc == 1
    assert err.strip() == want.stderr.decode().strip().replace("lsmem: ", "sparsemem lsmem: error: ", 1)


@pytest.mark.real_tools
@pytest.mark.parametrize("opts", [
    ["-J", "-r"], ["-a", "-S", "node"], ["-o", "FOO,SIZE"], ["-x"], ["--out", "SIZE"], ["--s"],
    ["--all=3"], ["-o"], ["--output"], ["--summary=bogus"], ["-r", "--summary"],
    ["--summary=only", "-P"], ["--bogus=1"], ["-o", "SIZE,,STATE"], ["-o", ""], ["-S", "X"],
])
def test_lsmem_usage_errors_say_what_lsmem_says(opts, scratch):
    """Option errors: lsmem's message (getopt_long's and lsmem.c's), here with exit status 2
    (the project's usage status; lsmem exits 1)."""
    need_lsmem()
    m = Machine("5.3")
    export(m, str(scratch))
    want = real_lsmem(scratch, opts)
    rc, out, err = our_lsmem(SysRoot(m), opts)
    assert want.returncode == 1 and rc == 2 and out == want.stdout == b""
    theirs = [ln.replace("lsmem: ", "", 1) for ln in want.stderr.decode().splitlines()]
    ours = [ln.replace("sparsemem lsmem: error: ", "", 1) for ln in err.splitlines()]
    assert [t.replace("'lsmem --help'", "'sparsemem lsmem --help'") for t in theirs] == ours


def test_lsmem_cli_and_sysfs_export_cli(tmp_path):
    """The two commands as a user runs them: ``sparsemem sysfs export`` writes the tree (modes,
    links), ``sparsemem lsmem`` prints what lsmem prints for it; a bad layout is exit 1."""
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(sparsemem.__file__).resolve().parent.parent))
    layout = tmp_path / "vm.txt"
    layout.write_text(DEFAULT_IOMEM)
    root = tmp_path / "root"
    cmd = [sys.executable, "-m", "sparsemem"]
    p = subprocess.run(cmd + ["sysfs", "export", str(layout), str(root), "--kernel", "5.3"],
                       capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    mem = root / MEMORY_DIR
    assert (mem / "block_size_bytes").read_text() == "8000000\n"
    assert os.readlink(mem / "memory39" / "node0") == "../../node/node0"
    assert os.readlink(root / "sys/devices/system/node/node0/memory39") == "../../memory/memory39"
    assert (mem / "memory39" / "state").stat().st_mode & 0o777 == 0o644
    assert (mem / "memory39" / "phys_index").stat().st_mode & 0o777 == 0o444
    assert (root / "sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error"
            ).read_text() == "0\n"
    # a second export into the same place refuses to mix trees
    p2 = subprocess.run(cmd + ["sysfs", "export", str(layout), str(root)], capture_output=True, text=True,
                        env=env)
    assert p2.returncode == 1 and "in the way" in p2.stderr, p2.stderr
    ours = subprocess.run(cmd + ["lsmem", str(layout), "-o", "+NODE,ZONES"], capture_output=True, env=env)
    assert ours.returncode == 0
    if _lsmem_version() == ".".join(L.UTIL_LINUX_VERSION.split(".")[:2]):
        assert ours.stdout == real_lsmem(root, ["-o", "+NODE,ZONES"]).stdout
    bad = tmp_path / "bad.txt"
    bad.write_text("100000000-1ffffffff : System RAM\nnot a layout line\n")
    for args in (["lsmem", str(bad)], ["sysfs", "export", str(bad), str(tmp_path / "r2")]):
        p = subprocess.run(cmd + args, capture_output=True, text=True, env=env)
        assert p.returncode == 1 and "line 2" in p.stderr, p.stderr
    p = subprocess.run(cmd + ["lsmem", str(layout), "--kernel", "five"], capture_output=True, text=True,
                       env=env)
    assert p.returncode == 2 and "error:" in p.stderr


# ---------------------------------------------------------------------------------------------
# the FUSE mount


def need_fuse():
    if os.geteuid() != 0:
        pytest.skip("mounting FUSE and private mount namespaces need root")
    if not os.path.exists("/dev/fuse"):
        pytest.skip("/dev/fuse is missing (no FUSE support on this machine)")

    try:
        fusefs.load_binding()
    except fusefs.FuseUnavailable as exc:
        pytest.skip(str(exc))


def need_unshare():
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is not installed")


@contextlib.contextmanager
def mounted(layout_text: str, kernel: str, tmp_path, save: bool = True, dyndbg: bool = False):
    """``sparsemem sysfs mount`` in the background (``--dyndbg``: the pr_debug lines are logged);
    yields (mount point, pickle path); unmounts and checks that the server stopped cleanly
    (exit 0) and saved the machine."""
    layout = tmp_path / f"layout-{kernel}.txt"
    layout.write_text(layout_text)
    mnt = tmp_path / f"mnt-{kernel}"
    mnt.mkdir()
    saved = tmp_path / f"machine-{kernel}.pickle"
    env = dict(os.environ, PYTHONPATH=str(pathlib.Path(sparsemem.__file__).resolve().parent.parent))
    args = [sys.executable, "-m", "sparsemem", "sysfs", "mount", str(layout), str(mnt), "--kernel", kernel]
    if save:
        args += ["--save", str(saved)]
    if dyndbg:
        args.append("--dyndbg")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.skip(f"the FUSE mount failed on this machine: {err.strip()}")
            if time.monotonic() > deadline:
                raise AssertionError("the mount did not appear within 30 s")
            time.sleep(0.05)
        yield mnt, saved
    finally:
        if os.path.ismount(mnt):
            subprocess.run(["umount", str(mnt)], check=False)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"the server did not stop at unmount: {err}")
    assert proc.returncode == 0, err
    if save:
        assert saved.exists(), err


def in_namespace(mnt, script: str, debugfs: bool = False) -> subprocess.CompletedProcess:
    """Run ``script`` (bash) in a private mount namespace where the mount's memory and node
    directories (and debugfs view) are bind-mounted over the real ones; nothing runs unless
    every bind mount succeeded."""
    binds = [f"mount --bind {mnt}/sys/devices/system/memory /sys/devices/system/memory",
             f"mount --bind {mnt}/sys/devices/system/node /sys/devices/system/node"]
    if debugfs:
        binds += ["mountpoint -q /sys/kernel/debug || mount -t debugfs debugfs /sys/kernel/debug",
                  f"mount --bind {mnt}/sys/kernel/debug /sys/kernel/debug"]
    setup = " && ".join(binds)
    return subprocess.run(["unshare", "-m", "--propagation", "private", "bash", "-c",
                           f"{setup} || exit 97\n{script}"], capture_output=True, text=True, env=C_ENV,
                          timeout=600)


@pytest.mark.fuse
@pytest.mark.real_tools
@pytest.mark.parametrize("kernel", ["5.3", "6.8"])
def test_fuse_mount_serves_the_live_machine(kernel, tmp_path):
    """Reads, writes with the kernel's errno, EACCES on read-only files, the node links, the
    debugfs injection file, lsmem --sysroot on the live mount, clean stop and --save."""
    need_fuse()
    twin = Machine(kernel)  # the same machine through the Python API, the oracle
    with mounted(DEFAULT_IOMEM, kernel, tmp_path) as (mnt, saved):
        mem = mnt / MEMORY_DIR
        assert (mem / "block_size_bytes").read_text() == twin.sysfs["block_size_bytes"]
        names = sorted(os.listdir(mem))
        assert names == sorted(twin.sysfs.listdir(""))
        for b in twin.memory_blocks:
            for f in twin.sysfs.listdir(f"memory{b.id}"):
                assert (mem / f"memory{b.id}" / f).read_text() == twin.sysfs[f"memory{b.id}/{f}"]
        assert os.readlink(mem / "memory1" / "node0") == "../../node/node0"
        assert (mem / "memory1" / "node0" / "memory1" / "state").read_text() == "online\n"
        # a write performs the transition; a refused one returns the kernel's errno
        last = twin.memory_blocks[-1].id
        for blk in (1, last):
            path = mem / f"memory{blk}" / "state"
            try:
                twin.sysfs[f"memory{blk}/state"] = "offline"
                want = None
            except OSError as e:
                want = e.errno
            try:
                with open(path, "w") as f:
                    f.write("offline\n")
                got = None
            except OSError as e:
                got = e.errno
            assert got == want
            assert path.read_text() == twin.sysfs[f"memory{blk}/state"]
        with pytest.raises(OSError) as ei:
            with open(mem / "memory1" / "state", "w") as f:
                f.write("offline\n")  # already offline: -EINVAL (§8.6)
        assert ei.value.errno == 22
        with pytest.raises(PermissionError):
            open(mem / "memory1" / "phys_index", "w")
        with pytest.raises(FileNotFoundError):
            (mem / "memory9999" / "state").read_text()
        err = mnt / "sys/kernel/debug/notifier-error-inject/memory/actions/MEM_GOING_ONLINE/error"
        err.write_text("-12\n")
        assert err.read_text() == "-12\n"
        with pytest.raises(OSError) as ei:
            (mem / "memory1" / "state").write_text("online\n")
        assert ei.value.errno == 12  # the injected -ENOMEM
        err.write_text("0")
        (mem / "memory1" / "state").write_text("online\n")
        twin.sysfs["memory1/state"] = "online"
        if _lsmem_version():
            live = real_lsmem(mnt, ["-o", "+NODE,ZONES"])
            rc, out, _ = our_lsmem(SysRoot(twin), ["-o", "+NODE,ZONES"])
            assert (live.returncode, live.stdout) == (rc, out)
    with open(saved, "rb") as f:
        final = pickle.load(f)
    assert [b.state for b in final.memory_blocks] == [b.state for b in twin.memory_blocks]
    assert "Injecting error (-12) to MEM_GOING_ONLINE" in final.dmesg


def _chmem_twin(twin, args):
    """What chmem 2.38.1 does for ``-e/-d -b FIRST-LAST`` (chmem_range): per block of the
    range, skip one already in the state, else write the state file; (exit status, blocks
    changed).  The writes go through the Python API of an identical machine."""
    enable = "-e" in args
    first, _, last = args[-1].partition("-")
    first, last = int(first), int(last or first)
    todo = last - first + 1
    done = 0
    for b in twin.memory_blocks:
        if not first <= b.id <= last:
            continue
        state = twin.sysfs[f"memory{b.id}/state"]
        word = "online" if enable else "offline"
        if state.startswith(word[:6]):
            todo -= 1
            continue
        if enable:
            word = "online_movable" if "Movable" in twin.sysfs[f"memory{b.id}/valid_zones"] else "online"
        try:
            twin.sysfs[f"memory{b.id}/state"] = word
        except OSError:
            continue
        todo -= 1
        done += 1
    return (0 if todo == 0 else 1 if todo == last - first + 1 else 64), done


@pytest.mark.fuse
@pytest.mark.real_tools
@pytest.mark.parametrize("kernel", ["5.2", "5.3", "6.8"])
def test_chmem_through_the_mount(kernel, tmp_path):
    """chmem (no --sysroot in 2.38) in a private mount namespace over the FUSE view: every
    scenario gives the exit status and block states the same writes give through the API."""
    need_fuse()
    need_unshare()
    if shutil.which("chmem") is None:
        pytest.skip("util-linux chmem is not installed (apt-get install util-linux)")
    twin = Machine(kernel)
    last = twin.memory_blocks[-1].id
    scenarios = [["-d", "-b", "2-5"], ["-e", "-b", "2-5"], ["-d", "-b", f"{last}"],
                 ["-d", "-b", f"{last - 2}-{last}"], ["-e", "-b", f"{last - 2}-{last}"],
                 ["-d", "-b", "0"], ["-e", "-b", "3"]]
    with mounted(DEFAULT_IOMEM, kernel, tmp_path) as (mnt, saved):
        for args in scenarios:
            want_rc, _ = _chmem_twin(twin, args)
            p = in_namespace(mnt, "chmem " + " ".join(args))
            assert p.returncode != 97, p.stderr
            assert p.returncode == want_rc, (args, p.stdout, p.stderr)
            states = [(mnt / MEMORY_DIR / f"memory{b.id}" / "state").read_text() for b in twin.memory_blocks]
            assert states == [twin.sysfs[f"memory{b.id}/state"] for b in twin.memory_blocks], args
            if want_rc:
                assert "failed" in p.stderr
        # size form (chmem_size): offline 256M from the top; blocks that refuse are skipped
        p = in_namespace(mnt, "chmem -d 256M")
        assert p.returncode in (0, 64), p.stderr
    with open(saved, "rb") as f:
        final = pickle.load(f)
    offline = [b.id for b in final.memory_blocks if b.state == "offline"]
    assert len(offline) == 2 and all(b.id > 30 for b in final.memory_blocks if b.state == "offline")


@pytest.fixture(scope="session")
def selftest_script(tmp_path_factory):
    """tools/testing/selftests/memory-hotplug/mem-on-off-test.sh, extracted unchanged from
    Debian's linux-source tarball into a temporary directory."""
    tarballs = sorted(glob.glob("/usr/src/linux-source-6.1*.tar.xz") +
                      glob.glob("/usr/src/linux-source-6.12*.tar.xz"))
    if not tarballs:
        pytest.skip("the kernel selftest comes from Debian's linux-source-6.1 (or -6.12) package, "
                    "which is not installed: apt-get install linux-source-6.1")
    tarball = tarballs[0]
    stem = pathlib.Path(tarball).name[: -len(".tar.xz")]
    member = f"{stem}/tools/testing/selftests/memory-hotplug/mem-on-off-test.sh"
    out = tmp_path_factory.mktemp("selftest")
    if shutil.which("tar") and shutil.which("xz"):
        subprocess.run(["tar", "-xJf", tarball, "-C", str(out), "--occurrence=1", member], check=True)
    else:
        with tarfile.open(tarball) as tf:
            tf.extract(member, out, filter="data")
    script = out / member
    if not script.exists():
        pytest.skip(f"{tarball} has no {member}")
    return script


@pytest.mark.fuse
@pytest.mark.real_tools
@pytest.mark.parametrize("kernel,ratio", [("5.2", "100"), ("5.3", "100"), ("5.3", None), ("6.8", None)])
def test_kernel_selftest_through_the_mount(kernel, ratio, selftest_script, tmp_path):
    """mem-on-off-test.sh, unchanged, with sysfs and debugfs bind-mounted from the FUSE view:
    it passes (exit 0), its notifier-injection phases run (no "skip extra tests"), and with
    ``-r 100`` (5.2/5.3, where ``removable`` is computed) every block that reads removable 1
    goes offline and online again while the others are never tried."""
    need_fuse()
    need_unshare()
    if shutil.which("bc") is None:
        pytest.skip("the selftest needs bc (apt-get install bc)")
    # dyndbg: the "failed due to notifier failure" pr_debug lines name the blocks tried
    with mounted(DEFAULT_IOMEM, kernel, tmp_path, dyndbg=True) as (mnt, saved):
        before = {b: (mnt / MEMORY_DIR / b / "removable").read_text()
                  for b in os.listdir(mnt / MEMORY_DIR) if b.startswith("memory")}
        opts = f"-r {ratio}" if ratio else ""
        p = in_namespace(mnt, f"bash {selftest_script} {opts}", debugfs=True)
        assert p.returncode != 97, p.stderr
        assert p.returncode == 0, (p.stdout, p.stderr)
        assert "Test with memory notifier error injection" in p.stdout
        assert "skip" not in p.stderr, p.stderr
        states = {b: (mnt / MEMORY_DIR / b / "state").read_text() for b in before}
        assert set(states.values()) == {"online\n"}  # the script restores every block
    with open(saved, "rb") as f:
        final = pickle.load(f)
    if ratio == "100":
        hot = sorted(int(b[6:]) for b, r in before.items() if r == "1\n")
        offlined = [int(re.search(r"\[mem (0x[0-9a-f]+)-", ln).group(1), 16) // final.memory_block_size
                    for ln in final.dmesg if "failed due to notifier failure" in ln]
        assert sorted(offlined) == hot  # the injection phase tried every removable block
        assert "Injecting error (-12) to MEM_GOING_ONLINE" in final.dmesg
