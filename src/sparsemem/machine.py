"""One simulated x86_64 machine: boot memory, zones and nodes, memory blocks, sysfs, iomem.

:class:`Machine` owns the section table (the compiled core, or its pure-Python twin with
``core="reference"``), the iomem resource tree (:mod:`sparsemem.iomem`), the ``pg_data_t``
of each node with its five zones, the memory block devices (:mod:`sparsemem.memory_block`)
and ``dmesg``.  The kernel logic lives in :mod:`sparsemem.hotplug`; this module boots and
delegates.  "§" refers to ../shared/spec/sparse-hotplug.md.

Boot (§3, §1.1, §8.4)
    Top-level "System RAM" resources are boot memory, each ``[PFN_UP(start),
    PFN_DOWN(end + 1))`` on node 0: ``memory_present`` per range, ``sparse_init``,
    ``subsection_map_init`` per range (the kernel's order), zones DMA ``[0, 16 MiB)``, DMA32
    ``[16 MiB, 4 GiB)``, Normal above (Movable and Device empty), each spanning the node span
    (first boot page .. end of the highest boot RAM) clamped to the zone's limits, holes
    included (``zone_spanned_pages_in_node``; e.g. DMA32 = ``[0x1000, 0x100000)`` for
    :data:`DEFAULT_IOMEM`) with ``present_pages`` the RAM inside, ``memmap_init_zone`` over
    each zone span (so span scans see the
    right zone and node), ``max_pfn`` = end of the highest boot RAM, the memory block size
    (§1.1: 128 MiB below 64 GiB of ``max_pfn``; ``bare_metal_2g_blocks`` and not
    ``hypervisor`` → 2 GiB; else the largest of 2G/1G/512M/256M dividing the boot end; the
    ``memory_block_size`` argument overrides it like ``set_memory_block_size_order`` and must
    be a power of two in [128 MiB, 64 GiB]), then ``memory_dev_init`` (MEM_ONLINE blocks).
    Top-level "Persistent Memory" / "Persistent Memory (legacy)" resources are not boot
    memory: they are handed to ``sparsemem.nvdimm.bus.attach(machine, resources)`` whose
    result is ``machine.nvdimm``.

Reboot
    :attr:`Machine.boot_args` is a dict of the constructor arguments that rebuild the same
    hardware: ``kernel``, ``max_physmem_bits``, ``memory_block_size`` (the override, or
    None), ``hypervisor``, ``core``, ``movable_node``, ``auto_online`` and ``iomem`` (the
    boot layout as ``/proc/iomem`` text, taken before anything was hot-plugged).
    ``Machine(**m.boot_args)`` is a fresh boot; pass another ``iomem`` to move things.

Memory notifier error injection (the selftest's ``notifier-error-inject``)
    ``machine.memory_notifier_error_inject`` is a dict from action name
    (``"MEM_GOING_ONLINE"``, ``"MEM_GOING_OFFLINE"``; ``"online"`` / ``"offline"`` are
    accepted as aliases when set through :meth:`Machine.inject_memory_notifier_error`) to a
    negative errno (0 clears), as written to
    ``/sys/kernel/debug/notifier-error-inject/memory/actions/<ACTION>/error``.  The
    transition then fails with that errno and logs ``Injecting error (-12) to
    MEM_GOING_ONLINE``.
"""

from __future__ import annotations

import importlib
from typing import Optional

from . import _common as K
from . import constants as C
from . import hotplug as H
from . import memory_block as MB
from .errors import KernelError
from .iomem import ResourceTree, parse
from .kernel import DEFAULT_KERNEL, as_model

__all__ = ["Machine", "Zone", "Pgdat", "DEFAULT_IOMEM", "probe_memory_block_size"]

MiB = 1 << 20
GiB = 1 << 30
MIN_MEMORY_BLOCK_SIZE = C.SECTION_SIZE  # 1 << SECTION_SIZE_BITS (128 MiB)
MAX_BLOCK_SIZE = 2 * GiB
MEM_SIZE_FOR_LARGE_BLOCK = 64 * GiB

#: The layout booted when none is given: a 5 GiB QEMU/KVM guest (RAM below 3 GiB and at
#: 4-5 GiB, the usual e820 holes).
DEFAULT_IOMEM = """\
00000000-00000fff : Reserved
00001000-0009fbff : System RAM
0009fc00-0009ffff : Reserved
000f0000-000fffff : Reserved
00100000-bffdffff : System RAM
bffe0000-bfffffff : Reserved
100000000-13fffffff : System RAM
"""

#: zone index -> [low pfn, high pfn) of the zone's possible range on x86_64
_ZONE_LIMITS = {
    C.ZONE_DMA: (0, (16 * MiB) >> C.PAGE_SHIFT),
    C.ZONE_DMA32: ((16 * MiB) >> C.PAGE_SHIFT, (4 * GiB) >> C.PAGE_SHIFT),
    C.ZONE_NORMAL: ((4 * GiB) >> C.PAGE_SHIFT, 1 << 64),
}


class Zone:
    """``struct zone``: ``zone_start_pfn``, ``spanned_pages``, ``present_pages`` of zone
    ``idx`` (``name``) of node ``nid``; ``zone_pgdat`` is its node."""

    __slots__ = ("nid", "idx", "zone_start_pfn", "spanned_pages", "present_pages", "zone_pgdat")

    def __init__(self, pgdat, idx: int):
        self.nid = pgdat.nid
        self.idx = idx
        self.zone_start_pfn = 0
        self.spanned_pages = 0
        self.present_pages = 0
        self.zone_pgdat = pgdat

    @property
    def name(self) -> str:
        return C.ZONE_NAMES[self.idx]

    @property
    def zone_end_pfn(self) -> int:
        return self.zone_start_pfn + self.spanned_pages

    @property
    def is_empty(self) -> bool:
        return self.spanned_pages == 0

    def spans(self, pfn: int) -> bool:
        """``zone_spans_pfn``."""
        return self.zone_start_pfn <= pfn < self.zone_end_pfn

    def intersects(self, start_pfn: int, nr_pages: int) -> bool:
        """``zone_intersects`` (§8.5): false for an empty zone."""
        if self.spanned_pages == 0:
            return False
        return not (start_pfn >= self.zone_end_pfn or start_pfn + nr_pages <= self.zone_start_pfn)

    def state(self) -> tuple:
        return (self.zone_start_pfn, self.spanned_pages, self.present_pages)

    def __repr__(self):
        return (f"<Zone node {self.nid} {self.name} [{self.zone_start_pfn:#x}-{self.zone_end_pfn:#x}) "
                f"present {self.present_pages}>")


class Pgdat:
    """``pg_data_t`` of one node: ``node_start_pfn``, ``node_spanned_pages``,
    ``node_present_pages``, ``zones`` (indexed by zone number, ZONE_DEVICE = 4), ``online``."""

    __slots__ = ("nid", "node_start_pfn", "node_spanned_pages", "node_present_pages", "zones", "online")

    def __init__(self, nid: int):
        self.nid = nid
        self.node_start_pfn = 0
        self.node_spanned_pages = 0
        self.node_present_pages = 0
        self.online = False
        self.zones = [Zone(self, i) for i in range(C.ZONE_DEVICE + 1)]

    @property
    def node_end_pfn(self) -> int:
        return self.node_start_pfn + self.node_spanned_pages

    def state(self) -> tuple:
        return (self.online, self.node_start_pfn, self.node_spanned_pages, self.node_present_pages,
                tuple(z.state() for z in self.zones))

    def __repr__(self):
        return (f"<Pgdat node {self.nid} [{self.node_start_pfn:#x}-{self.node_end_pfn:#x}) "
                f"present {self.node_present_pages}{'' if self.online else ' offline'}>")


def probe_memory_block_size(model, boot_mem_end: int, hypervisor: bool) -> int:
    """x86 ``probe_memory_block_size`` (§1.1) for a boot memory end in bytes."""
    if boot_mem_end < MEM_SIZE_FOR_LARGE_BLOCK:
        return MIN_MEMORY_BLOCK_SIZE
    if model.bare_metal_2g_blocks and not hypervisor:
        return MAX_BLOCK_SIZE
    bz = MAX_BLOCK_SIZE
    while bz > MIN_MEMORY_BLOCK_SIZE:
        if not boot_mem_end & (bz - 1):
            return bz
        bz >>= 1
    return MIN_MEMORY_BLOCK_SIZE


def _core_module(core: str):
    if core == "compiled":
        return importlib.import_module("sparsemem._sparsecore")
    if core == "reference":
        return importlib.import_module("sparsemem.reference")
    raise ValueError(f"core must be 'compiled' or 'reference', not {core!r}")


class Machine:
    """One simulated x86_64 machine (see the module docstring for boot and reboot).

    ``Machine(kernel="5.3", max_physmem_bits=46, memory_block_size=None, hypervisor=True, *,
    core="compiled", movable_node=False, auto_online=False, iomem=None)``; ``iomem`` is
    ``/proc/iomem`` text (or e820 dmesg lines, or a parsed :class:`ResourceTree`), default
    :data:`DEFAULT_IOMEM`.

    ``dmesg`` (list of str): the kernel log records of this machine, one per line, without
    timestamps or log levels.  It records what a kernel built with dynamic debug enabled
    for mm/memory_hotplug.c would show: the pr_debug lines ``online_pages [mem ...]
    failed``, ``memory offlining [mem ...] failed due to ...`` and ``Unable to reserve
    System RAM region: ...`` (§5.5, §5.6, §8.1) are kept, unprefixed, although a default
    v5.3 kernel does not print them; likewise the ``mminit::...`` line that follows the
    ``mminit_validate_memmodel_limits`` WARN (CONFIG_DEBUG_MEMORY_INIT).  WARNs appear as
    ``------------[ cut here ]------------``, the message (``WARN(cond, fmt)`` only), then
    ``WARNING: CPU: 0 PID: 1 at <file>:<line> <symbol>+0x0/0x100`` with nominal line
    numbers and offsets (:data:`sparsemem.hotplug.WARN_SITES`, §5.1).
    """

    def __init__(self, kernel: str = DEFAULT_KERNEL, max_physmem_bits: int = 46,
                 memory_block_size: Optional[int] = None, hypervisor: bool = True, *,
                 core: str = "compiled", movable_node: bool = False, auto_online: bool = False,
                 iomem=None):
        self.model = as_model(kernel)
        self.kernel = self.model.name
        bits = K.check_bits(max_physmem_bits)
        mod = _core_module(core)
        if memory_block_size is not None:
            bs = K.index(memory_block_size, "memory_block_size")
            if bs < MIN_MEMORY_BLOCK_SIZE or bs > MEM_SIZE_FOR_LARGE_BLOCK or bs & (bs - 1):
                raise ValueError(f"memory_block_size {bs:#x} must be a power of two between 128 MiB and 64 GiB "
                                 f"(set_memory_block_size_order)")
            memory_block_size = bs
        for name, v in (("hypervisor", hypervisor), ("movable_node", movable_node), ("auto_online", auto_online)):
            if not isinstance(v, bool):
                raise TypeError(f"{name} must be a bool, not {type(v).__name__}")
        self.core = core
        self.hypervisor = hypervisor
        self.movable_node = movable_node
        #: ``memhp_auto_online`` (sysfs ``auto_online_blocks``)
        self.auto_online = auto_online
        self.sections = mod.SectionTable(bits, self.kernel)
        self._altmap_cls = mod.VmemAltmap
        self.dmesg: list[str] = []
        self._core_seen = 0
        self._once: set = set()
        self.memory_notifier_error_inject: dict = {}
        #: ``max_mem_size`` (``mem=`` lowers it): U64_MAX by default (§8.1); a range beyond the
        #: physical address space fails at the iomem request instead (-EEXIST)
        self.max_mem_size = K.U64
        self.nodes: dict[int, Pgdat] = {}
        self._blocks: dict[int, MB.MemoryBlock] = {}
        self.pgmaps: list = []
        self.nvdimm = None
        self.sysfs = MB.Sysfs(self)

        tree = self._layout(iomem)
        tree.dmesg = self.dmesg
        self.iomem: ResourceTree = tree
        boot_text = tree.text()
        self.boot_args = dict(kernel=self.kernel, max_physmem_bits=bits, memory_block_size=memory_block_size,
                              hypervisor=hypervisor, core=core, movable_node=movable_node,
                              auto_online=auto_online, iomem=boot_text)
        self._boot(memory_block_size)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_iomem(cls, text, kernel: str = DEFAULT_KERNEL, **kw) -> "Machine":
        """Boot from ``/proc/iomem`` text or BIOS-e820 / ``user:`` dmesg lines (§3)."""
        if text is None:
            raise TypeError("from_iomem() needs the layout text")
        return cls(kernel, iomem=text, **kw)

    @staticmethod
    def _layout(iomem) -> ResourceTree:
        if iomem is None:
            return parse(DEFAULT_IOMEM)
        if isinstance(iomem, ResourceTree):
            return iomem.copy()
        if isinstance(iomem, (str, bytes, bytearray)):
            return parse(iomem)
        raise TypeError(f"iomem must be /proc/iomem text or a ResourceTree, not {type(iomem).__name__}")

    def _boot(self, bs_override) -> None:
        S = self.sections
        limit = S.pfn_limit
        ram, pmem = [], []
        for res in self.iomem.top_level():
            if res.name == "System RAM":
                s, e = (res.start + C.PAGE_SIZE - 1) >> C.PAGE_SHIFT, min((res.end + 1) >> C.PAGE_SHIFT, limit)
                if e > s:
                    ram.append((s, e))
            elif res.name in ("Persistent Memory", "Persistent Memory (legacy)"):
                pmem.append(res)
        for s, e in ram:
            S.memory_present(0, s, e)
        S.sparse_init()
        for s, e in ram:
            S.subsection_map_init(s, e - s)
        pg = self._pgdat(0, create=True)
        pg.online = True
        self.max_pfn = max((e for _, e in ram), default=0)
        if ram:
            pg.node_start_pfn = ram[0][0]
            pg.node_spanned_pages = self.max_pfn - ram[0][0]
            pg.node_present_pages = sum(e - s for s, e in ram)
        node_start, node_end = pg.node_start_pfn, pg.node_start_pfn + pg.node_spanned_pages
        for zi, (lo, hi) in _ZONE_LIMITS.items():
            # zone_spanned_pages_in_node (§3): the node span clamped to the zone's limits,
            # holes included; present_pages counts only the RAM inside it
            zs, ze = min(max(node_start, lo), hi), min(max(node_end, lo), hi)
            if zs >= ze:
                continue
            z = pg.zones[zi]
            z.zone_start_pfn = zs
            z.spanned_pages = ze - zs
            z.present_pages = sum(min(e, ze) - max(s, zs) for s, e in ram if max(s, zs) < min(e, ze))
            S.memmap_init_zone(0, zi, z.zone_start_pfn, z.spanned_pages)
        self._sync_core_dmesg()
        if bs_override is not None:
            bs = bs_override
        else:
            bs = probe_memory_block_size(self.model, self.max_pfn << C.PAGE_SHIFT, self.hypervisor)
        self.memory_block_size = bs
        self.sections_per_block = bs >> C.PA_SECTION_SHIFT
        self.log(f"x86/mm: Memory block size: {bs >> 20}MB")
        MB.memory_dev_init(self)
        if pmem:
            bus = importlib.import_module("sparsemem.nvdimm.bus")
            self.nvdimm = bus.attach(self, pmem)

    # ------------------------------------------------------------------ internals
    @property
    def _single_node(self) -> bool:
        return len(self.nodes) == 1

    def _pgdat(self, nid: int, create: bool = False) -> Optional[Pgdat]:
        pg = self.nodes.get(nid)
        if pg is None and create:
            pg = self.nodes[nid] = Pgdat(nid)
        return pg

    def _drop_pgdat(self, nid: int) -> None:
        self.nodes.pop(nid, None)

    def _sync_core_dmesg(self) -> None:
        """Forward the section table's new WARN lines into :attr:`dmesg`."""
        core = self.sections.dmesg
        if len(core) > self._core_seen:
            for line in core[self._core_seen:]:
                # the core logs one "WARNING: at <file> <symbol>: <text>" record per WARN;
                # dmesg shows the x86 shape (banner, message, WARNING line, §5.1)
                self.dmesg.extend(H.core_warning_lines(line))
        self._core_seen = len(core)

    def log(self, line: str) -> None:
        """Append one kernel log line to :attr:`dmesg` (after any pending core lines)."""
        self._sync_core_dmesg()
        self.dmesg.append(line)

    # ------------------------------------------------------------------ queries
    @property
    def zones(self) -> dict:
        """``{nid: [Zone DMA, DMA32, Normal, Movable, Device]}`` for every node with a pgdat."""
        return {nid: pg.zones for nid, pg in sorted(self.nodes.items())}

    def zone(self, nid: int, idx: int) -> Zone:
        """Zone ``idx`` of node ``nid`` (its pgdat is allocated if needed)."""
        return self._pgdat(K.check_nid(nid), create=True).zones[K.check_zone(idx)]

    @property
    def memory_blocks(self) -> list:
        """The memory block devices, ascending id."""
        return [self._blocks[i] for i in sorted(self._blocks)]

    def memory_block(self, block_id: int):
        """The block with that id; ValueError for a negative id (api.md "Errors"),
        KernelError(ENODEV) if there is none."""
        block_id = K.index(block_id, "block id")
        if block_id < 0:
            raise ValueError(f"block id must be >= 0, not {block_id}")
        blk = self._blocks.get(block_id)
        if blk is None:
            raise KernelError(19, f"memory{block_id}: no such memory block")
        return blk

    def pfn_valid(self, pfn) -> bool:
        """``pfn_valid`` (§4.2)."""
        return self.sections.pfn_valid(pfn)

    def pfn_to_online_page(self, pfn) -> bool:
        """``pfn_to_online_page`` (§4.3, the v5.3 macro)."""
        return H.pfn_to_online_page(self, pfn)

    def iomem_text(self, privileged: bool = True) -> str:
        """The current resource tree as ``/proc/iomem`` shows it."""
        return self.iomem.text(privileged)

    @property
    def regions(self) -> list:
        return self.nvdimm.regions if self.nvdimm else []

    # ------------------------------------------------------------------ System RAM hotplug
    def add_memory(self, nid, start, size) -> None:
        """``add_memory`` (§8.1); see :func:`sparsemem.hotplug.add_memory`."""
        H.add_memory(self, nid, start, size)

    def remove_memory(self, nid, start, size) -> None:
        """``remove_memory`` (§6.6); see :func:`sparsemem.hotplug.remove_memory`."""
        H.remove_memory(self, nid, start, size)

    def online_memory_block(self, block_id, online_type: str = "online") -> None:
        """Same as writing ``online_type`` ("online", "online_kernel", "online_movable") to
        ``memoryN/state`` (-EINVAL if it is already online)."""
        if online_type not in H.ONLINE_TYPES:
            raise ValueError(f"online_type must be one of {sorted(H.ONLINE_TYPES)}, not {online_type!r}")
        blk = self.memory_block(block_id)
        MB.state_store(self, blk, online_type, len(online_type))

    def offline_memory_block(self, block_id) -> None:
        """Same as writing "offline" to ``memoryN/state``."""
        blk = self.memory_block(block_id)
        MB.state_store(self, blk, "offline", 7)

    def inject_memory_notifier_error(self, action: str, error: int = -12) -> None:
        """Set (``error`` < 0) or clear (0) the injected error of a memory notifier action."""
        names = {"online": "MEM_GOING_ONLINE", "offline": "MEM_GOING_OFFLINE"}
        action = names.get(action, action)
        if action not in ("MEM_GOING_ONLINE", "MEM_GOING_OFFLINE"):
            raise ValueError(f"action must be MEM_GOING_ONLINE or MEM_GOING_OFFLINE, not {action!r}")
        error = K.index(error, "error")
        if error > 0 or error < -4095:
            raise ValueError(f"error must be 0 or a negative errno, not {error}")
        if error:
            self.memory_notifier_error_inject[action] = error
        else:
            self.memory_notifier_error_inject.pop(action, None)

    # ------------------------------------------------------------------ device memory
    def memremap_pages(self, start, size, *, type="fsdax", altmap=None):
        from .memremap import memremap_pages
        return memremap_pages(self, start, size, type=type, altmap=altmap)

    def memunmap_pages(self, pgmap) -> None:
        from .memremap import memunmap_pages
        return memunmap_pages(self, pgmap)

    def get_dev_pagemap(self, pfn):
        from .memremap import get_dev_pagemap
        return get_dev_pagemap(self, pfn)

    def reboot(self, iomem=None) -> "Machine":
        from .nvdimm import bus
        return bus.reboot(self, iomem)

    # ------------------------------------------------------------------ comparison
    def snapshot(self) -> dict:
        """Everything observable except dmesg, for equality tests.

        ``max_pfn`` is left out: no user interface shows it, and x86 ``add_pages`` raises it
        even when ``__add_pages`` fails (§5.2), so it is not part of the "failure changes
        nothing" comparison; read :attr:`max_pfn` directly.
        """
        snap = {
            "kernel": self.kernel,
            "sections": self.sections.snapshot(),
            "memory_block_size": self.memory_block_size,
            "auto_online": self.auto_online,
            "nodes": {nid: pg.state() for nid, pg in sorted(self.nodes.items())},
            "blocks": tuple((b.id, b.state_value, b.online_type, b.nid, b.section_count, b.dev_offline, b.zone)
                            for b in self.memory_blocks),
            "iomem": self.iomem.state(),
            "pgmaps": tuple((getattr(p, "start", None), getattr(p, "end", None), getattr(p, "type", None))
                            for p in self.pgmaps),
        }
        if self.nvdimm is not None and hasattr(self.nvdimm, "snapshot"):
            snap["nvdimm"] = self.nvdimm.snapshot()
        return snap

    def __repr__(self):
        return (f"<Machine kernel={self.kernel} core={self.core} max_pfn={self.max_pfn:#x} "
                f"blocks={len(self._blocks)} block_size={self.memory_block_size >> 20}MiB>")
