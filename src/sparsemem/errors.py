"""Errors raised by the simulation: the one errno map of the project.

Every failing kernel operation raises :class:`KernelError`, an :class:`OSError` whose
``errno`` is the kernel's (positive, as ``errno.EINVAL``) and whose message names the numbers
involved.  Situations in which the real kernel would crash, BUG() or spin forever raise
:class:`KernelBug` instead, so that the simulation never does any of those things itself.
"""

from __future__ import annotations

import errno as _errno

__all__ = ["KernelError", "KernelBug", "check", "errno_name"]


class KernelError(OSError):
    """A kernel operation failed with ``-errno``; the message says why, with numbers.

    ``KernelError(errno.EEXIST, "...")`` behaves like ``OSError``: ``.errno`` and
    ``.strerror`` are set, and ``str()`` gives ``[Errno 17] ...``.
    """

    # always set by the constructor (``OSError`` declares both optional)
    errno: int
    strerror: str
    #: set on the ENXIO "failed to enable" of a failed nvdimm probe: that probe's errno
    #: (:func:`sparsemem.nvdimm.namespace.enable_error`); read it with ``getattr(e, ..., None)``
    kernel_errno: int

    def __init__(self, err: int, message: str):
        super().__init__(err, message)

    @property
    def errno_name(self) -> str:
        return errno_name(self.errno)

    def __reduce__(self):
        return (type(self), (self.errno, self.strerror))


class KernelBug(RuntimeError):
    """The real kernel would BUG(), oops or hang here; the simulation refuses instead."""


#: the kernel's name where Python's ``errno.errorcode`` gives a userspace alias: 95 is
#: EOPNOTSUPP in include/uapi/asm-generic/errno.h (glibc's ENOTSUP is the same number)
_KERNEL_NAMES = {_errno.EOPNOTSUPP: "EOPNOTSUPP"}


def errno_name(err: int) -> str:
    """``errno_name(17) == "EEXIST"`` (accepts the kernel's negative form too); 95 is
    ``"EOPNOTSUPP"``, as the kernel names it."""
    err = abs(int(err))
    return _KERNEL_NAMES.get(err) or _errno.errorcode.get(err, f"E{err}")


def check(rc: int, message: str = "") -> int:
    """Map a kernel-style return code to Python: ``rc >= 0`` is returned, ``-errno`` raises."""
    if rc < 0:
        raise KernelError(-rc, message or _errno.errorcode.get(-rc, str(-rc)))
    return rc
