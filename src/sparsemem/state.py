"""The state of one simulated machine, declared once (drgn's ``Program`` under its helpers).

:class:`MachineState` holds every field that the layers above it (:mod:`~sparsemem.hotplug`,
:mod:`~sparsemem.memory_block`, :mod:`~sparsemem.memremap`, :mod:`sparsemem.nvdimm`) read or
write, and the few queries they share; those layers are functions over it.
:class:`~sparsemem.machine.Machine` derives from it and adds boot and the public façade.
Layering: docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, ClassVar, Optional, Protocol

from .bootparams import BootParams
from .kernel import KernelModel
from .mmzone import Pgdat, Zone
from .printk import DEFAULT_LEVEL, Record, core_records
from .resource import ResourceTree

__all__ = ["MachineState", "MemorySubsys"]


class MemorySubsys(Protocol):
    """``drivers/base/memory.c`` as ``mm/memory_hotplug.c`` calls it.

    The memory block layer sits above hotplug (it onlines and offlines pages through it), so
    hotplug does not import it: it calls these through :attr:`MachineState.memory_subsys`,
    which :class:`~sparsemem.machine.Machine` sets to the :mod:`sparsemem.memory_block` module.
    """

    def hotplug_memory_register(self, m: MachineState, nid: int, section_nr: int) -> None: ...

    def unregister_memory_section(self, m: MachineState, section_nr: int) -> None: ...

    def create_memory_block_devices(self, m: MachineState, start: int, size: int) -> None: ...

    def remove_memory_block_devices(self, m: MachineState, start: int, size: int) -> None: ...

    def link_mem_sections(self, m: MachineState, nid: int, start: int, size: int) -> None: ...

    def walk_memory_blocks(self, m: MachineState, start: int, size: int) -> list: ...

    def device_online(self, m: MachineState, blk: Any) -> int: ...


class MachineState:
    """Every field of one machine that the layers share (see the module docstring).

    Boot configuration: ``model`` (:class:`~sparsemem.kernel.KernelModel`), ``kernel`` (its
    name), ``core`` ("compiled" or "reference"), ``hypervisor``, ``movable_node``,
    ``auto_online_type`` (``memhp_default_online_type``, sysfs ``auto_online_blocks``: one of
    ``offline``/``online``/``online_kernel``/``online_movable``; ``auto_online`` is it as a
    bool), the module parameters ``memmap_on_memory``, ``online_policy``,
    ``auto_movable_ratio``, ``auto_movable_numa_aware``, ``possible_nodes``
    (``node_possible_map``; None: the layout's nodes), ``dyndbg`` (the debug prints of
    mm/memory_hotplug.c and ``mminit_loglevel`` enabled), ``cmdline`` (``/proc/cmdline``) and
    ``boot_args`` (the constructor arguments that rebuild the same hardware); what a release
    makes of the options: :mod:`sparsemem.bootparams`.

    ``mm/sparse.c``: ``sections`` (the ``SectionTable`` of the chosen core) and
    ``altmap_cls`` (its ``VmemAltmap``).  Boot results: ``max_pfn``, ``memory_block_size``,
    ``sections_per_block``, ``boot_reserved`` (the memblock allocations of boot that stay
    reserved: pfn ranges).  Log: ``dmesg`` (records with a printk level, :mod:`sparsemem.printk`;
    :meth:`log`) and ``once`` (the keys of the once-per-boot guard).  Hotplug:
    ``max_mem_size`` (``mem=``; U64_MAX by default, §8.1), ``mem_hotplug_lock_unbalanced``
    (5.6-5.8: a failed ``remove_memory`` released ``mem_hotplug_lock`` without holding it,
    :func:`sparsemem.hotplug.remove_memory`),
    ``memory_notifier_error_inject``, ``nodes`` (nid -> :class:`~sparsemem.mmzone.Pgdat`),
    ``blocks`` (block id -> :class:`~sparsemem.memory_block.MemoryBlock`), ``iomem``
    (the :class:`~sparsemem.resource.ResourceTree`, sharing ``dmesg``).  Device memory:
    ``pgmaps`` (live :class:`~sparsemem.memremap.DevPagemap`, by start) and ``pgmap_index``
    (the ``pgmap_array``, created by memremap on first use).  nvdimm: ``nvdimm`` (the
    :class:`~sparsemem.nvdimm.bus.NvdimmBus` or None) and ``nvdimm_regions`` (the explicit
    region ranges of :func:`~sparsemem.nvdimm.bus.carve_regions`, or None).
    """

    # boot configuration
    model: KernelModel
    kernel: str
    core: str
    hypervisor: bool
    movable_node: bool
    auto_online_type: str
    memmap_on_memory: Any
    online_policy: str
    auto_movable_ratio: int
    auto_movable_numa_aware: bool
    possible_nodes: Optional[frozenset]
    cmdline: str
    dyndbg: bool
    boot_args: dict[str, Any]
    # mm/sparse.c
    sections: Any
    altmap_cls: type
    # boot results
    max_pfn: int
    memory_block_size: int
    sections_per_block: int
    # kernel log
    dmesg: list[str]
    once: set
    _core_seen: int  # how many of sections.dmesg are forwarded (sync_core_dmesg)
    # memblock.reserved as far as it is modelled: [start_pfn, end_pfn) of the boot
    # allocations (kernel image without "Kernel code" lines, each node's boot memmap)
    boot_reserved: list[tuple[int, int]]
    # memory hotplug
    max_mem_size: int
    mem_hotplug_lock_unbalanced: bool
    memory_notifier_error_inject: dict[str, int]
    # PG_hwpoison: the pfns soft/hard offlined through sysfs (sparsemem.memory_failure)
    hwpoison: set[int]
    nodes: dict[int, Pgdat]
    blocks: MutableMapping[int, Any]   # memory_block.MemoryBlocks after boot
    iomem: ResourceTree
    # device memory
    pgmaps: list
    pgmap_index: Optional[Any]
    # nvdimm
    nvdimm: Optional[Any]
    nvdimm_regions: Optional[list]
    # device-dax (sparsemem.dax): the firmware's memory affinity (numa=) and the dax bus
    numa: tuple
    dax: Optional[Any]

    #: drivers/base/memory.c as hotplug calls it (set by the class that wires the layers)
    memory_subsys: ClassVar[MemorySubsys]

    def __init__(self, model: KernelModel, core: str, sections: Any, altmap_cls: type, iomem: ResourceTree, *,
                 hypervisor: bool, params: BootParams, max_mem_size: int) -> None:
        self.model = model
        self.kernel = model.name
        self.core = core
        self.hypervisor = hypervisor
        self.movable_node = params.movable_node
        self.auto_online_type = params.auto_online
        self.memmap_on_memory = params.memmap_on_memory
        self.online_policy = params.online_policy
        self.auto_movable_ratio = params.auto_movable_ratio
        self.auto_movable_numa_aware = params.auto_movable_numa_aware
        self.possible_nodes = params.possible_nodes
        self.cmdline = params.cmdline
        self.dyndbg = params.dyndbg
        self.boot_args = {}
        self.sections = sections
        self.altmap_cls = altmap_cls
        self.max_pfn = 0
        self.memory_block_size = 0
        self.sections_per_block = 0
        self.dmesg = []
        self._core_seen = 0
        self.once = set()
        self.boot_reserved = []
        self.max_mem_size = max_mem_size
        self.memory_notifier_error_inject = {}
        self.hwpoison = set()
        self.mem_hotplug_lock_unbalanced = False
        self.nodes = {}
        self.blocks = {}
        iomem.dmesg = self.dmesg
        self.iomem = iomem
        self.pgmaps = []
        self.pgmap_index = None
        self.nvdimm = None
        self.nvdimm_regions = None
        self.numa = params.numa
        self.dax = None

    @property
    def auto_online(self) -> bool:
        """Whether hot-added memory is onlined (``auto_online_type`` is not ``offline``);
        assigning a bool sets the type to ``online`` / ``offline``."""
        return self.auto_online_type != "offline"

    @auto_online.setter
    def auto_online(self, value: bool) -> None:
        self.auto_online_type = "online" if value else "offline"

    # ------------------------------------------------------------------ kernel log
    def sync_core_dmesg(self) -> None:
        """Forward the section table's new WARN lines into :attr:`dmesg`."""
        core = self.sections.dmesg
        if len(core) > self._core_seen:
            for line in core[self._core_seen:]:
                # the core logs one "WARNING: at <file> <symbol>: <text>" record per WARN;
                # dmesg shows the x86 shape (banner, message, WARNING line, §5.1)
                for text, level, dynamic in core_records(line):
                    self._printk(text, level, dynamic)
        self._core_seen = len(core)

    def log(self, line: str, level: str = DEFAULT_LEVEL, *, dynamic: bool = False) -> None:
        """Log one kernel record at printk ``level`` (:data:`sparsemem.printk.LEVELS`) after any
        pending core lines.  ``dynamic``: the call site prints only when the boot enabled it
        (``pr_debug``/``dev_dbg`` under CONFIG_DYNAMIC_DEBUG, ``mminit_dprintk``)."""
        self.sync_core_dmesg()
        self._printk(line, level, dynamic)

    def _printk(self, line: str, level: str, dynamic: bool) -> None:
        """The one place that decides whether a record reaches :attr:`dmesg`: every level is
        kept (the log buffer stores all of them; ``dmesg`` shows all), but a ``dynamic``
        call site prints only when the machine booted with ``dyndbg`` (a distribution kernel
        prints none of them by default: later-eras-hotplug-evidence.md §0.2, §2 item 25)."""
        if dynamic and not self.dyndbg:
            return
        self.dmesg.append(line if level == DEFAULT_LEVEL else Record(line, level))

    # ------------------------------------------------------------------ nodes and zones
    @property
    def single_node(self) -> bool:
        return len(self.nodes) == 1

    def node_data(self, nid: int) -> Pgdat:
        """``NODE_DATA(nid)``, allocated (offline, empty) when the node has none yet."""
        pg = self.nodes.get(nid)
        if pg is None:
            pg = self.nodes[nid] = Pgdat(nid)
        return pg

    def drop_pgdat(self, nid: int) -> None:
        """Free node ``nid``'s pgdat again (a failed hot-add of a new node)."""
        self.nodes.pop(nid, None)

    def page_zone(self, pfn: int) -> Optional[Zone]:
        """``page_zone(pfn_to_page(pfn))`` from the simulated memmap; None when poisoned/absent."""
        S = self.sections
        zi = S.page_zonenum(pfn)
        if zi < 0:
            return None
        nid = 0 if self.single_node else S.pfn_to_nid(pfn)
        pg = self.nodes.get(nid)
        return None if pg is None else pg.zones[zi]
