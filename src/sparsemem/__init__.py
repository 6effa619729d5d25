"""sparsemem: a kernel-faithful simulator of Linux SPARSEMEM and sub-section memory hotplug.

The compiled core (:class:`SectionTable`) models ``mm/sparse.c``; :class:`Machine` adds the
hotplug layer (``mm/memory_hotplug.c``, ``drivers/base/memory.c``), device memory
(``mm/memremap.c``) and the libnvdimm pfn/dax devices (``drivers/nvdimm``).  Every stateful
object takes ``kernel="5.2"`` or ``kernel="5.3"`` (see :mod:`sparsemem.kernel`).

Names are imported lazily, so ``import sparsemem`` stays cheap.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from .errors import KernelBug, KernelError
from .kernel import DEFAULT_KERNEL, KernelModel, kernel_model

if TYPE_CHECKING:  # the lazy names below, typed for a user's type checker
    from . import race as race
    from ._sparsecore import SectionTable as SectionTable
    from ._sparsecore import VmemAltmap as VmemAltmap
    from .dax import DaxDevice as DaxDevice
    from .hotplug import MHP_MEMMAP_ON_MEMORY as MHP_MEMMAP_ON_MEMORY
    from .hotplug import MHP_NONE as MHP_NONE
    from .machine import Machine as Machine
    from .memremap import DevPagemap as DevPagemap

__version__ = "0.1.0"

_LAZY = {
    "SectionTable": "sparsemem._sparsecore",
    "VmemAltmap": "sparsemem._sparsecore",
    "Machine": "sparsemem.machine",
    "DevPagemap": "sparsemem.memremap",
    "DaxDevice": "sparsemem.dax",
    # add_memory(..., flags=): include/linux/memory_hotplug.h mhp_t bits (api.md "Boot options")
    "MHP_NONE": "sparsemem.hotplug",
    "MHP_MEMMAP_ON_MEMORY": "sparsemem.hotplug",
}
#: modules reached as attributes of the package (``sparsemem.race.explore``), imported on use
_LAZY_MODULES = ("race",)

__all__ = [
    "get_include",
    "KernelError",
    "KernelBug",
    "KernelModel",
    "kernel_model",
    "DEFAULT_KERNEL",
    *_LAZY,
    *_LAZY_MODULES,
]


def get_include() -> str:
    """Folder holding ``sparsemem.h``, for Cython code that ``cimport``s the compiled core."""
    here = os.path.dirname(os.path.abspath(__file__))
    packaged = os.path.join(here, "include")
    if os.path.exists(os.path.join(packaged, "sparsemem.h")):
        return packaged
    return os.path.join(os.path.dirname(os.path.dirname(here)), "include")  # source checkout


def __getattr__(name: str) -> object:
    if name in _LAZY_MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sparsemem' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
