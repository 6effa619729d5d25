"""The sysfs and debugfs files of one machine as a directory tree: what ``lsmem --sysroot``,
``chmem`` and the kernel's memory-hotplug selftest read and write.

The detail: docs/sysfs.md.
"""

from __future__ import annotations

import errno
import os
import stat as _stat
from typing import NamedTuple, Optional

from ._common import kstrtox
from .errors import KernelError

__all__ = ["SysRoot", "Entry", "export", "MEMORY_DIR", "NODE_DIR", "INJECT_DIR", "INJECT_ACTIONS"]

MEMORY_DIR = "sys/devices/system/memory"
NODE_DIR = "sys/devices/system/node"
DEBUGFS_DIR = "sys/kernel/debug"
INJECT_DIR = DEBUGFS_DIR + "/notifier-error-inject/memory"
#: the actions of lib/memory-notifier-error-inject.c
INJECT_ACTIONS = ("MEM_GOING_ONLINE", "MEM_GOING_OFFLINE")
PAGE_SIZE = 4096
MAX_ERRNO = 4095

#: sysfs modes of the memory files (drivers/base/memory.c DEVICE_ATTR_RO/RW/WO); 0444 otherwise
_MODES = {"state": 0o644, "online": 0o644, "auto_online_blocks": 0o644, "probe": 0o200,
          "soft_offline_page": 0o200, "hard_offline_page": 0o200}

# the fixed directories above the attribute directories
_DIRS = {
    "": ("sys",),
    "sys": ("devices", "kernel"),
    "sys/devices": ("system",),
    "sys/devices/system": ("memory", "node"),
    "sys/kernel": ("debug",),
    "sys/kernel/debug": ("notifier-error-inject",),
    "sys/kernel/debug/notifier-error-inject": ("memory",),
    INJECT_DIR: ("actions",),
    INJECT_DIR + "/actions": INJECT_ACTIONS,
}


class Entry(NamedTuple):
    """What ``stat`` would show: ``kind`` ("dir", "file" or "link"), permission ``mode``,
    ``size`` and the link ``target``."""

    kind: str
    mode: int
    size: int = 0
    target: Optional[str] = None

    @property
    def st_mode(self) -> int:
        kind = {"dir": _stat.S_IFDIR, "file": _stat.S_IFREG, "link": _stat.S_IFLNK}[self.kind]
        return kind | self.mode


def _enoent(path: str) -> KernelError:
    return KernelError(errno.ENOENT, f"/{path}: No such file or directory")


class SysRoot:
    """The tree of one live machine (see docs/sysfs.md); paths are relative to the
    system root, with or without a leading ``/``."""

    def __init__(self, machine):
        self.machine = machine

    # ------------------------------------------------------------------ lookup
    @staticmethod
    def _norm(path: str) -> str:
        if not isinstance(path, str):
            raise TypeError(f"path must be a str, not {type(path).__name__}")
        parts = [p for p in path.split("/") if p and p != "."]
        if ".." in parts:
            raise KernelError(errno.ENOENT, f"{path}: '..' is not resolved here")
        return "/".join(parts)

    def _nodes(self) -> list:
        return sorted(nid for nid, pg in self.machine.nodes.items() if pg.online)

    def _blocks_of(self, nid: int) -> list:
        return [b.id for b in self.machine.memory_blocks if b.nid == nid]

    def _block(self, name: str):
        """The block of the directory ``memory<N>`` as the kernel names it, or None."""
        digits = name[6:] if name.startswith("memory") else ""
        if not (digits and digits.isascii() and digits.isdigit() and digits == str(int(digits))):
            return None
        try:
            return self.machine.memory_block(int(digits))
        except KernelError:
            return None

    def stat(self, path: str) -> Entry:
        """The entry at ``path``; ENOENT if there is none."""
        p = self._norm(path)
        if p in _DIRS or p in (MEMORY_DIR, NODE_DIR):
            return Entry("dir", 0o755)
        if p.startswith(MEMORY_DIR + "/"):
            rel = p[len(MEMORY_DIR) + 1:]
            parts = rel.split("/")
            if len(parts) == 1:
                if parts[0].startswith("memory") and self._block(parts[0]) is not None:
                    return Entry("dir", 0o755)
                if parts[0] in self.machine.sysfs.listdir(""):
                    return Entry("file", _MODES.get(parts[0], 0o444), PAGE_SIZE)
            elif len(parts) == 2:
                blk = self._block(parts[0])
                if blk is not None:
                    if parts[1] == f"node{blk.nid}" and blk.nid in self._nodes():
                        return Entry("link", 0o777, target=f"../../node/node{blk.nid}")
                    if parts[1] in self.machine.sysfs.listdir(parts[0]):
                        return Entry("file", _MODES.get(parts[1], 0o444), PAGE_SIZE)
            raise _enoent(p)
        if p.startswith(NODE_DIR + "/"):
            parts = p[len(NODE_DIR) + 1:].split("/")
            nid = _node_id(parts[0])
            if nid is not None and nid in self._nodes():
                if len(parts) == 1:
                    return Entry("dir", 0o755)
                if len(parts) == 2 and parts[1].startswith("memory"):
                    blk = self._block(parts[1])
                    if blk is not None and blk.nid == nid:
                        return Entry("link", 0o777, target=f"../../memory/{parts[1]}")
            raise _enoent(p)
        if p.startswith(INJECT_DIR + "/actions/"):
            parts = p[len(INJECT_DIR) + len("/actions/"):].split("/")
            if parts[0] in INJECT_ACTIONS:
                if len(parts) == 1:
                    return Entry("dir", 0o755)
                if len(parts) == 2 and parts[1] == "error":
                    return Entry("file", 0o600, 0)
        raise _enoent(p)

    def exists(self, path: str) -> bool:
        try:
            self.stat(path)
        except KernelError:
            return False
        return True

    def isdir(self, path: str) -> bool:
        try:
            return self.stat(path).kind == "dir"
        except KernelError:
            return False

    def listdir(self, path: str = "") -> list:
        """The names in the directory ``path``; ENOTDIR for a file or link."""
        p = self._norm(path)
        if self.stat(p).kind != "dir":
            raise KernelError(errno.ENOTDIR, f"/{p}: Not a directory")
        if p in _DIRS:
            return list(_DIRS[p])
        if p == MEMORY_DIR:
            return list(self.machine.sysfs.listdir(""))
        if p.startswith(MEMORY_DIR + "/"):
            name = p[len(MEMORY_DIR) + 1:]
            blk = self._block(name)
            out = list(self.machine.sysfs.listdir(name))
            if blk.nid in self._nodes():
                out.append(f"node{blk.nid}")
            return sorted(out)
        if p == NODE_DIR:
            return [f"node{n}" for n in self._nodes()]
        if p.startswith(NODE_DIR + "/"):
            return [f"memory{b}" for b in self._blocks_of(int(p[len(NODE_DIR) + 5:]))]
        return ["error"]  # an action directory

    def readlink(self, path: str) -> str:
        e = self.stat(path)
        if e.kind != "link" or e.target is None:
            raise KernelError(errno.EINVAL, f"/{self._norm(path)}: not a symbolic link")
        return e.target

    # ------------------------------------------------------------------ contents
    def _file(self, path: str, want_write: bool):
        """(normalised path, entry) of a file that may be opened that way, else the errno
        ``kernfs_fop_open`` / the VFS gives."""
        p = self._norm(path)
        e = self.stat(p)
        if e.kind == "dir":
            raise KernelError(errno.EISDIR, f"/{p}: Is a directory")
        if e.kind == "link":
            # the tools follow the link to a directory
            raise KernelError(errno.EISDIR, f"/{p}: Is a directory")
        if want_write and not e.mode & 0o222:
            raise KernelError(errno.EACCES, f"/{p}: Permission denied")
        if not want_write and not e.mode & 0o444:
            raise KernelError(errno.EACCES, f"/{p}: Permission denied")
        return p, e

    def check_open(self, path: str, read: bool, write: bool) -> None:
        """Raise what ``open`` would for that access mode (EACCES, EISDIR, ENOENT)."""
        if read:
            self._file(path, False)
        if write:
            self._file(path, True)

    def read_bytes(self, path: str) -> bytes:
        """The file's whole text, as one ``read`` from offset 0 returns it."""
        p, _ = self._file(path, False)
        if p.startswith(MEMORY_DIR + "/"):
            return self.machine.sysfs.read(p[len(MEMORY_DIR) + 1:]).encode()
        action = p.split("/")[-2]
        return b"%d\n" % self.machine.memory_notifier_error_inject.get(action, 0)

    def read(self, path: str) -> str:
        return self.read_bytes(path).decode()

    def write(self, path: str, data) -> int:
        """One ``write(2)`` of ``data`` (bytes or str) at offset 0; returns its result."""
        p, _ = self._file(path, True)
        if isinstance(data, str):
            data = data.encode()
        data = bytes(data)
        if p.startswith(MEMORY_DIR + "/"):
            data = data[:PAGE_SIZE]
            if not data:
                return 0
            return self.machine.sysfs.write(p[len(MEMORY_DIR) + 1:], data)
        # fs/libfs.c simple_attr_write: at most 23 bytes are parsed, the whole write is claimed
        text = data[:23].split(b"\0", 1)[0].decode("latin-1")
        val = kstrtox(text, signed=True)    # kstrtoll
        if val is None:
            raise KernelError(errno.EINVAL, f"/{p}: invalid number {text!r}")
        if not -(1 << 63) <= val < (1 << 63):
            raise KernelError(errno.ERANGE, f"/{p}: {text!r} out of range")
        # debugfs_errno_set: clamp_t(int, val, -MAX_ERRNO, 0) of the u64 value
        v = ((val + (1 << 31)) % (1 << 32)) - (1 << 31)
        v = min(max(v, -MAX_ERRNO), 0)
        self.machine.inject_memory_notifier_error(p.split("/")[-2], v)
        return len(data)

    def walk(self, path: str = ""):
        """Every path under ``path`` (depth first, directories before their contents) with
        its entry."""
        p = self._norm(path)
        e = self.stat(p)
        yield p, e
        if e.kind == "dir":
            for name in self.listdir(p):
                yield from self.walk(f"{p}/{name}" if p else name)


def _node_id(name: str) -> Optional[int]:
    digits = name[4:] if name.startswith("node") else ""
    if digits and digits.isascii() and digits.isdigit() and digits == str(int(digits)):
        return int(digits)
    return None


def export(machine, directory: str) -> int:
    """Write the :class:`SysRoot` of ``machine`` under ``directory`` (created if missing; its
    ``sys`` must not exist yet): directories, files with their text and mode (write-only
    files empty), relative symbolic links.  Returns the number of entries written."""
    root = SysRoot(machine)
    os.makedirs(directory, exist_ok=True)
    top = os.path.join(directory, "sys")
    if os.path.lexists(top):
        raise FileExistsError(errno.EEXIST, "a previous tree is in the way (remove it first)", top)
    n = 0
    files = []
    for path, e in root.walk("sys"):
        dest = os.path.join(directory, path)
        if e.kind == "dir":
            os.mkdir(dest, 0o755)
        elif e.kind == "link":
            os.symlink(e.target, dest)
        else:
            data = root.read_bytes(path) if e.mode & 0o444 else b""
            with open(dest, "wb") as f:
                f.write(data)
            files.append((dest, e.mode))
        n += 1
    for dest, mode in files:
        os.chmod(dest, mode)
    return n
