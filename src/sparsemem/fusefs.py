"""``sparsemem sysfs mount``: a live machine's :class:`~sparsemem.sysroot.SysRoot` served over
FUSE, so that unchanged tools (util-linux ``lsmem`` / ``chmem``, the kernel's
``tools/testing/selftests/memory-hotplug/mem-on-off-test.sh``) read and write it as they would
the kernel's sysfs and debugfs.

The detail: docs/sysfs-fuse.md.
"""

from __future__ import annotations

import errno
import itertools
import os
import time
from typing import Optional

from .errors import KernelError
from .sysroot import SysRoot

__all__ = ["SysfsOperations", "serve", "load_binding", "FuseUnavailable"]


class FuseUnavailable(RuntimeError):
    """The FUSE binding or libfuse cannot be loaded; the message says what to install."""


def load_binding():
    """Import mfusepy (which loads libfuse), or raise :class:`FuseUnavailable`."""
    try:
        import mfusepy  # noqa: PLC0415 -- optional extra 'fuse' (and it loads libfuse)
    except ImportError:
        raise FuseUnavailable("the FUSE binding is not installed: pip install 'sparsemem[fuse]'") from None
    except (OSError, EnvironmentError) as exc:  # mfusepy raises when libfuse is missing
        raise FuseUnavailable(f"libfuse cannot be loaded ({exc}): install fuse3 "
                              f"(Debian: apt-get install fuse3)") from None
    return mfusepy


class SysfsOperations:
    """The FUSE operations over one :class:`~sparsemem.sysroot.SysRoot` (mfusepy's
    high-level interface: paths start with ``/``, errors are ``OSError`` with an errno)."""

    use_ns = True

    def __init__(self, root: SysRoot):
        self.root = root
        self._fh = itertools.count(1)
        self._open: dict = {}
        self._time = time.time_ns()

    # ------------------------------------------------------------------ metadata
    def getattr(self, path: str, fh: Optional[int] = None) -> dict:
        e = self.root.stat(path)
        size = len(e.target) if e.kind == "link" and e.target is not None else e.size
        return dict(st_mode=e.st_mode, st_nlink=2 if e.kind == "dir" else 1, st_size=size,
                    st_uid=0, st_gid=0, st_atime=self._time, st_mtime=self._time, st_ctime=self._time)

    def readdir(self, path: str, fh: int):
        return [".", ".."] + self.root.listdir(path)

    def readlink(self, path: str) -> str:
        return self.root.readlink(path)

    def access(self, path: str, amode: int) -> int:
        self.root.stat(path)
        return 0

    def statfs(self, path: str) -> dict:
        return dict(f_bsize=4096, f_frsize=4096, f_namemax=255)

    # ------------------------------------------------------------------ files
    def open(self, path: str, flags: int) -> int:
        acc = flags & os.O_ACCMODE
        self.root.check_open(path, read=acc in (os.O_RDONLY, os.O_RDWR),
                             write=acc in (os.O_WRONLY, os.O_RDWR))
        fh = next(self._fh)
        self._open[fh] = None  # the text, filled by the first read from offset 0
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        data = self._open.get(fh)
        if data is None or offset == 0:
            data = self._open[fh] = self.root.read_bytes(path)
        return data[offset:offset + size]

    def write(self, path: str, data: bytes, offset: int, fh: int) -> int:
        return self.root.write(path, bytes(data))

    def truncate(self, path: str, length: int, fh: Optional[int] = None) -> int:
        # an O_TRUNC open of an attribute (``echo x > state``) succeeds and changes nothing
        self.root.stat(path)
        return 0

    def release(self, path: str, fh: int) -> int:
        self._open.pop(fh, None)
        return 0

    def flush(self, path: str, fh: int) -> int:
        return 0

    def create(self, path: str, mode: int, fi=None) -> int:
        raise KernelError(errno.EACCES, f"{path}: Permission denied")

    def _eperm(self, *args, **kwargs):
        raise KernelError(errno.EPERM, "Operation not permitted")

    mkdir = rmdir = unlink = rename = symlink = link = chmod = chown = mknod = _eperm

    def utimens(self, path: str, times=None) -> int:
        self.root.stat(path)
        return 0


def serve(machine, mountpoint: str, *, debug: bool = False) -> None:
    """Serve ``machine`` at ``mountpoint`` in the foreground until it is unmounted or the
    process gets SIGINT/SIGTERM; raises :class:`FuseUnavailable` or ``RuntimeError`` (mount
    failed: libfuse prints why)."""
    mfusepy = load_binding()
    ops = SysfsOperations(SysRoot(machine))
    mfusepy.FUSE(ops, mountpoint, foreground=True, nothreads=True, debug=debug,
                 fsname="sparsemem", subtype="sparsemem", direct_io=True,
                 attr_timeout=0, entry_timeout=0, negative_timeout=0)
