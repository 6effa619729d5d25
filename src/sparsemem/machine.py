"""One simulated x86_64 machine: :class:`Machine` is the :class:`~sparsemem.state.MachineState`
plus boot (§3, §1.1, §8.4), the public façade over the layers (hotplug, memory blocks and
sysfs, device memory, nvdimm), ``snapshot()`` and ``reboot()``.  "§" refers to
docs/spec/sparse-hotplug.md; boot, reboot, dmesg and error injection: docs/machine.md.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, ClassVar, Iterable, MutableMapping, Optional, Union

from . import _common as K
from . import constants as C
from . import dax, existing, memremap
from . import hotplug as H
from . import memory_block as MB
from .bootparams import memmap_waste_line, parse_boot_options
from .errors import KernelError
from .kernel import DEFAULT_KERNEL, as_model
from .layout import parse
from .mmzone import ZONE_LIMITS, Pgdat, Zone
from .nvdimm import bus as nvdimm_bus
from .resource import KERNEL_IMAGE, KERNEL_RESERVED, ResourceTree
from .state import MachineState, MemorySubsys

__all__ = ["Machine", "Zone", "Pgdat", "DEFAULT_IOMEM", "probe_memory_block_size", "present_spans"]

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


#: x86_64 ``CONFIG_PHYSICAL_START``: where the kernel image is when the layout has no
#: "Kernel code/rodata/data/bss" lines (a relocated or KASLR-placed image shows them)
PHYSICAL_START = 16 * MiB
#: the image's extent ``[_text, __bss_stop)`` then: that of the 4.19 x86_64 kernel of the layout
#: tests/data/layouts/lore.kernel.org_20181022201327.F1642450@viggo.jf.intel.com.txt
#: (Kernel code at 0x1000000, Kernel bss ending at 0x305dfff)
DEFAULT_KERNEL_IMAGE_SIZE = 0x305E000 - 0x1000000
#: ``CONFIG_X86_RESERVE_LOW`` default: the low memory x86 never hands to the page allocator
X86_RESERVE_LOW = 64 << 10
#: ``__pa(MAX_DMA_ADDRESS)``: the lowest address of the boot memmap allocation
MAX_DMA_ADDRESS = 16 * MiB


def _free_ranges(ram: list, taken: list) -> list:
    """memblock.memory minus memblock.reserved, as sorted ``[start, end)`` pfn ranges."""
    free = []
    for s, e in ram:
        cur = s
        for ts, te in sorted(taken):
            if te <= cur or ts >= e:
                continue
            if ts > cur:
                free.append((cur, ts))
            cur = max(cur, te)
        if cur < e:
            free.append((cur, e))
    return free


def _memblock_alloc(ram: list, taken: list, nr: int, align: int, min_pfn: int, bottom_up: bool,
                    above: int = 0) -> Optional[int]:
    """``memblock_find_in_range_node`` (mm/memblock.c, 5.3 and 6.8): the highest (top-down, the
    x86 default) or lowest (bottom-up, above the kernel image ``above``) ``align``-aligned free
    range of ``nr`` pages at or above ``min_pfn``; None when nothing fits."""
    free = _free_ranges(ram, taken)
    if bottom_up:
        for s, e in free:
            cand = -(-max(s, min_pfn, above) // align) * align
            if cand + nr <= e:
                return cand
        return None
    for s, e in reversed(free):
        cand = ((e - nr) // align) * align
        if e - nr >= 0 and cand >= max(s, min_pfn):
            return cand
    return None


def present_spans(ram: list) -> list:
    """The sections that ``memory_present`` marks present for the boot ranges ``ram``
    (``[start, end)`` pfn ranges, ``start < end``, inside the address space): every section
    from ``start``'s to ``end - 1``'s (§3.1), as ascending disjoint ``[first, last]`` spans.
    The same numbers as ``sections.present_section_nrs()`` right after those calls, without
    scanning the table."""
    spans: list = []
    for s, e in sorted(ram):
        first, last = s >> C.PFN_SECTION_SHIFT, (e - 1) >> C.PFN_SECTION_SHIFT
        if spans and first <= spans[-1][1] + 1:
            spans[-1][1] = max(spans[-1][1], last)
        else:
            spans.append([first, last])
    return spans


def boot_allocations(m, ram: list, present_nrs=None, *, present_count: Optional[int] = None) -> list:
    """The memblock allocations of boot that are modelled, as ``[start, end)`` pfn ranges; they
    stay reserved (``PageReserved``: ``removable`` 0 where the release computes it, offline
    fails to isolate them, -EBUSY).

    * The low ``X86_RESERVE_LOW`` bytes that are RAM (``trim_low_memory_range``).
    * The kernel image ``[PHYSICAL_START, + DEFAULT_KERNEL_IMAGE_SIZE)`` when the layout has no
      "Kernel code/rodata/data/bss" lines (x86 ``setup_arch`` reserves ``[_text,
      __bss_stop)``); with those lines the iomem resources are the image, and they and any
      "Crash kernel" range are avoided by the allocation below.
    * Each node's boot memmap: ``sparse_init_nid`` takes one buffer of ``map_count *
      section_map_size()`` (2 MiB per present section) from ``sparse_buffer_init`` →
      ``memblock_alloc_try_nid_raw(size, PAGE_SIZE, __pa(MAX_DMA_ADDRESS),
      MEMBLOCK_ALLOC_ACCESSIBLE, nid)`` (mm/sparse.c 5.2/5.3; later releases align to
      ``section_map_size()``, which moves it by less than 2 MiB) and fills it with the
      vmemmap PMDs; x86 allocates top-down from the end of the node's memory (bottom-up above
      the kernel image with ``movable_node``, arch/x86/kernel/setup.c ``setup_arch``).  When
      the buffer does not fit, each section's 2 MiB comes from its own allocation
      (``vmemmap_alloc_block``, 2 MiB aligned) in the same direction.

    Not modelled (smaller, and near the same places): NODE_DATA, the mem_section roots and
    usage maps, page tables, the log buffer, initrd and ACPI tables.
    """
    if not ram:
        return []
    taken, out = [], []
    image_lines = False
    for top in m.iomem.top_level():
        if not top.children:
            continue
        for _, c in m.iomem.walk(top):
            if c.name in KERNEL_RESERVED:
                taken.append((c.start >> C.PAGE_SHIFT, (c.end >> C.PAGE_SHIFT) + 1))
                image_lines = image_lines or c.name in KERNEL_IMAGE
    # trim_low_memory_range (arch/x86/kernel/setup.c 5.3): the first CONFIG_X86_RESERVE_LOW
    # (64 KiB) stay reserved (5.13+ reserves the whole first 1 MiB: later rows)
    low = (0, X86_RESERVE_LOW >> C.PAGE_SHIFT)
    for rs, re_ in ram:
        if rs < low[1]:
            out.append((max(rs, low[0]), min(re_, low[1])))
            taken.append(out[-1])
    image_end = 0
    if not image_lines:
        s = PHYSICAL_START >> C.PAGE_SHIFT
        e = (PHYSICAL_START + DEFAULT_KERNEL_IMAGE_SIZE) >> C.PAGE_SHIFT
        if any(rs <= s and e <= re for rs, re in ram):
            out.append((s, e))
            taken.append((s, e))
            image_end = e
    else:
        image_end = max((e for s, e in taken), default=0)
    if present_count is not None:
        present = present_count
    else:
        present = len(m.sections.present_section_nrs() if present_nrs is None else present_nrs)
    per_section = C.PAGES_PER_SECTION * C.STRUCT_PAGE_SIZE >> C.PAGE_SHIFT  # 2 MiB of memmap
    min_pfn = MAX_DMA_ADDRESS >> C.PAGE_SHIFT
    bottom_up = bool(m.movable_node)
    nr = present * per_section
    start = _memblock_alloc(ram, taken, nr, 1, min_pfn, bottom_up, image_end) if nr else None
    if start is not None:
        out.append((start, start + nr))
    else:
        for _ in range(present):
            one = _memblock_alloc(ram, taken, per_section, per_section, min_pfn, bottom_up, image_end)
            if one is None:
                break
            taken.append((one, one + per_section))
            out.append((one, one + per_section))
    return sorted(out)


#: the narrowest physical address width an x86_64 CPU reports (CPUID 0x80000008; 36 bits is
#: also what arch/x86/kernel/cpu/common.c assumes without that leaf)
MIN_PHYS_BITS = 36


_HMEM_RE = re.compile(r"hmem\.\d+")


def soft_reserved_as_ram(tree: ResourceTree) -> ResourceTree:
    """What a kernel before v5.5 makes of EFI_MEMORY_SP memory (kmem.md K §2.2): ordinary RAM.

    From v5.5 (262b45ae3ab4 "x86/efi: EFI soft reservation to E820 enumeration") the EFI code
    turns such memory into e820 type 0xefffffff, which /proc/iomem shows as "Soft Reserved"
    (with ``hmem.N`` above it and dax/kmem resources below it when a driver took it) and the
    e820 table prints as "soft reserved".  Earlier kernels know no such attribute: the range
    is EFI conventional memory, e820 type 1, "System RAM", merged with adjacent RAM as
    ``e820__update_table`` merges entries of one type.  Returns ``tree`` itself when it has
    no such range, else a new tree in which every top-level "Soft Reserved" range (or
    ``hmem.N`` wrapping one) is "System RAM" without the children a 5.5+ driver gave it.
    """
    def soft(res) -> bool:
        name = res.name
        if name == "Soft Reserved":
            return True
        return (name.startswith("hmem.") and _HMEM_RE.fullmatch(name) is not None
                and any(c.name == "Soft Reserved" for c in res.children))

    tops = tree.root.children
    for r in tops:      # nothing of the kind (most layouts): no call per resource
        if r.name == "Soft Reserved" or r.name.startswith("hmem."):
            break
    else:
        return tree
    tops = tree.top_level()
    if not any(soft(r) for r in tops):
        return tree
    ranges = []  # (start, end, name, lines below it)
    for r in tops:
        if soft(r):
            ranges.append([r.start, r.end, "System RAM", []])
            continue
        below = [f"{'  ' * (depth + 1)}{c.start:08x}-{c.end:08x} : {c.name}" for depth, c in tree.walk(r)]
        ranges.append([r.start, r.end, r.name, below])
    merged: list = []
    for cur in ranges:
        prev = merged[-1] if merged else None
        if prev and prev[2] == cur[2] == "System RAM" and prev[1] + 1 == cur[0]:
            prev[1] = cur[1]
            prev[3].extend(cur[3])
        else:
            merged.append(cur)
    lines = []
    for start, end, name, below in merged:
        lines.append(f"{start:08x}-{end:08x} : {name}")
        lines.extend(below)
    return parse("\n".join(lines) + "\n")


def mem_remove_line(limit: int) -> str:
    """The KERN_DEBUG record of x86 ``parse_memopt`` (``mem=``): ``e820__range_remove(limit,
    ULLONG_MAX - limit, E820_TYPE_RAM, 1)`` prints the range it drops, which ends at
    ``ULLONG_MAX - 1`` (arch/x86/kernel/e820.c 5.3 and 6.1)."""
    return f"e820: remove [mem {limit:#010x}-{K.U64 - 1:#010x}] usable"


def ram_below(tree: ResourceTree, limit: int) -> ResourceTree:
    """What ``mem=limit`` leaves of the boot layout (arch/x86/kernel/e820.c ``parse_memopt``,
    5.3 and 6.1): the RAM at and above ``limit`` leaves the e820 table
    (``e820__range_remove`` of type ``E820_TYPE_RAM``), and ``e820__reserve_resources`` builds
    ``/proc/iomem`` from that table, so a top-level "System RAM" range that starts at or above
    ``limit`` is gone and one that crosses it ends at ``limit - 1`` (its children are cut the
    same way).  Every other range (Reserved, ACPI, persistent memory, Soft Reserved) stays.
    Returns ``tree`` itself when no RAM reaches ``limit``.

    Not modelled: the ``user-defined physical RAM map:`` table that ``e820__finish_early_params``
    prints (pr_info, one ``user: [mem ...] TYPE`` line per entry), as the BIOS-e820 table is
    not logged either; ``/sys/firmware/memmap`` (from ``e820_table_firmware``) keeps the
    removed RAM."""
    tops = [r for r in tree.root.children if r.name == "System RAM" and r.end >= limit]
    if not tops:
        return tree
    tree = tree.copy()

    def cut(res) -> None:
        for child in list(res.children):
            if child.start >= limit:
                tree.release(child)
            elif child.end >= limit:
                cut(child)
        res.end = limit - 1

    for res in [r for r in tree.root.children if r.name == "System RAM" and r.end >= limit]:
        if res.start >= limit:
            tree.release(res)
        else:
            cut(res)
    return tree


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
    mod = _CORES.get(core)
    if mod is not None:
        return mod
    if core == "compiled":
        mod = importlib.import_module("sparsemem._sparsecore")
    elif core == "reference":
        mod = importlib.import_module("sparsemem.reference")
    else:
        raise ValueError(f"core must be 'compiled' or 'reference', not {core!r}")
    _CORES[core] = mod
    return mod


#: the core modules imported so far, by name
_CORES: dict = {}


def _altmap_state(altmap) -> Optional[tuple]:
    """A memory block's altmap (memmap_on_memory, v6.6+) as ``snapshot()`` compares it."""
    if altmap is None:
        return None
    return (altmap.base_pfn, altmap.reserve, altmap.free, altmap.align, altmap.alloc)


class Machine(MachineState):
    """One simulated x86_64 machine: the state (:class:`~sparsemem.state.MachineState`), boot
    and the public façade (boot and reboot: docs/machine.md).

    ``Machine(kernel="5.3", max_physmem_bits=46, memory_block_size=None, hypervisor=True, *,
    core="compiled", movable_node=False, auto_online=False, iomem=None, phys_bits=None, ...)``
    (``phys_bits``: the CPU's physical address width, ``x86_phys_bits``, 36..52; None: the
    build limit ``max_physmem_bits``; it ends ``iomem_resource`` and so bounds hot-add); ``iomem`` is
    ``/proc/iomem`` text (or e820 dmesg lines, or a parsed :class:`ResourceTree`), default
    :data:`DEFAULT_IOMEM`.  The kernel command-line options (``memmap_on_memory``,
    ``online_policy``, ``auto_movable_ratio``, ``auto_movable_numa_aware``, ``mem``,
    ``possible_nodes``, ``dyndbg``, ...) are read per release by :mod:`sparsemem.bootparams`
    (docs/machine.md "Boot options"); ``mem`` also removes the RAM at and above it from the
    boot layout (:func:`ram_below`).

    ``dmesg`` (list of str): the kernel log records of this machine, one per line, without
    timestamps; each has a printk level (:func:`sparsemem.printk.level_of`).  By default it
    shows what a distribution kernel prints (CONFIG_DYNAMIC_DEBUG=y, nothing enabled): **no**
    ``pr_debug`` line -- ``online_pages [mem ...] failed``, ``memory offlining [mem ...]
    failed due to ...``, ``Unable to reserve System RAM region: ...`` (§5.5, §5.6, §8.1),
    from 5.11 ``Offlined Pages N`` -- and no ``mminit::...`` line after the
    ``mminit_validate_memmodel_limits`` WARN (``mminit_loglevel``).  ``dyndbg=True`` (the
    command-line words ``dyndbg="file mm/memory_hotplug.c +p" mminit_loglevel=1``) shows
    them, unprefixed; nothing else changes.  WARNs appear as
    ``------------[ cut here ]------------``, the message (``WARN(cond, fmt)`` only), then
    ``WARNING: CPU: 0 PID: 1 at <file>:<line> <symbol>+0x0/0x100`` with nominal line
    numbers and offsets (:data:`sparsemem.printk.WARN_SITES`, §5.1).
    """

    #: drivers/base/memory.c, as mm/memory_hotplug.c calls it (:class:`~sparsemem.state.MemorySubsys`)
    memory_subsys: ClassVar[MemorySubsys] = MB
    sysfs: MB.Sysfs

    def __init__(self, kernel: str = DEFAULT_KERNEL, max_physmem_bits: int = 46,
                 memory_block_size: Optional[int] = None, hypervisor: bool = True, *,
                 core: str = "compiled", movable_node: bool = False, auto_online: Union[bool, str] = False,
                 iomem=None, phys_bits: Optional[int] = None, memmap_on_memory: Union[bool, str] = False,
                 online_policy: str = "contig-zones", auto_movable_ratio: int = 301,
                 auto_movable_numa_aware: bool = True, mem: Optional[int] = None,
                 possible_nodes: Optional[Iterable[int]] = None, dyndbg: bool = False,
                 numa: Optional[Iterable] = None, efi_soft_reserve: bool = True):
        model = as_model(kernel)
        bits = K.check_bits(max_physmem_bits)
        if phys_bits is not None:
            phys_bits = K.index(phys_bits, "phys_bits")
            if not MIN_PHYS_BITS <= phys_bits <= C.MAX_PHYSMEM_BITS_5LVL:
                raise ValueError(f"phys_bits must be between {MIN_PHYS_BITS} and {C.MAX_PHYSMEM_BITS_5LVL} "
                                 f"(the CPU's physical address width, CPUID 0x80000008), not {phys_bits}")
        mod = _core_module(core)
        if memory_block_size is not None:
            bs = K.index(memory_block_size, "memory_block_size")
            if bs < MIN_MEMORY_BLOCK_SIZE or bs > MEM_SIZE_FOR_LARGE_BLOCK or bs & (bs - 1):
                raise ValueError(f"memory_block_size {bs:#x} must be a power of two between 128 MiB and 64 GiB "
                                 f"(set_memory_block_size_order)")
            memory_block_size = bs
        if not isinstance(hypervisor, bool):
            raise TypeError(f"hypervisor must be a bool, not {type(hypervisor).__name__}")
        params = parse_boot_options(
            model, movable_node=movable_node, auto_online=auto_online, memmap_on_memory=memmap_on_memory,
            online_policy=online_policy, auto_movable_ratio=auto_movable_ratio,
            auto_movable_numa_aware=auto_movable_numa_aware, mem=mem, possible_nodes=possible_nodes,
            dyndbg=dyndbg, numa=numa, efi_soft_reserve=efi_soft_reserve)
        sections = mod.SectionTable(bits, model.name)
        tree = self._layout(iomem)
        # EFI_MEMORY_SP: Soft Reserved from 5.5 unless efi=nosoftreserve (kmem.md K §2.2)
        booted = tree if model.efi_soft_reserve and params.efi_soft_reserve else soft_reserved_as_ram(tree)
        if params.mem is not None:
            booted = ram_below(booted, params.mem)
        # max_mem_size (``mem=`` lowers it): U64_MAX by default (§8.1); a range beyond the
        # physical address space fails at the iomem request instead (-EEXIST)
        super().__init__(model, core, sections, mod.VmemAltmap, booted, hypervisor=hypervisor,
                         params=params, max_mem_size=K.U64 if params.mem is None else params.mem)
        #: ``boot_cpu_data.x86_phys_bits``: x86 ``setup_arch`` ends ``iomem_resource`` at
        #: ``(1 << x86_phys_bits) - 1`` (5.3, 6.1); by default the build limit
        self.phys_bits = bits if phys_bits is None else phys_bits
        self.sysfs = MB.Sysfs(self)
        self.boot_args = dict(kernel=self.kernel, max_physmem_bits=bits, memory_block_size=memory_block_size,
                              hypervisor=hypervisor, core=core, movable_node=movable_node,
                              auto_online=auto_online, iomem=tree.text(), phys_bits=phys_bits,
                              memmap_on_memory=memmap_on_memory, online_policy=online_policy,
                              auto_movable_ratio=auto_movable_ratio,
                              auto_movable_numa_aware=auto_movable_numa_aware, mem=mem,
                              possible_nodes=None if params.possible_nodes is None else sorted(params.possible_nodes),
                              dyndbg=dyndbg, numa=[tuple(x) for x in params.numa] or None,
                              efi_soft_reserve=efi_soft_reserve)
        if params.mem is not None:
            # setup_arch -> parse_early_param -> parse_memopt (before start_kernel's parse_args)
            self.log(mem_remove_line(params.mem), "debug")
        for line in params.lines:
            self.log(line, "err")
        self._boot(memory_block_size)

    # ------------------------------------------------------------------ construction
    #: what :meth:`from_iomem` adopted (:class:`sparsemem.existing.Adopted`, in order)
    existing: tuple = ()

    @classmethod
    def from_iomem(cls, text, kernel: str = DEFAULT_KERNEL, *, namespaces=None, **kw) -> "Machine":
        """Boot from ``/proc/iomem`` text or BIOS-e820 / ``user:`` dmesg lines (§3), then adopt
        the configuration the layout already shows (api.md "Existing configuration"): its
        namespaces, pfn/dax devices and kmem memory, with ``namespaces`` (``ndctl list -N`` /
        ``-RN`` or ``daxctl list`` JSON, text or decoded) for what the map cannot show
        (:mod:`sparsemem.existing`).  What the booted release refuses stays refused: the
        namespace keeps ``enabled == False`` and ``error``; :attr:`existing` lists every
        outcome.  ``Machine(iomem=...)`` boots without adopting anything."""
        if text is None:
            raise TypeError("from_iomem() needs the layout text")
        tree = cls._layout(text)
        # kmem memory in the dump implies an SRAT range for it (existing.implied_numa)
        m = cls(kernel, iomem=tree, **existing.with_implied_numa(tree, kernel, kw))
        config = existing.read_config(tree, [(r.start, r.size) for r in m.regions], namespaces,
                                      block_size=m.memory_block_size, booted=m.iomem)
        if config:
            m.existing = tuple(existing.adopt(m, config))
        return m

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
            elif res.name in nvdimm_bus.PMEM_NAMES:
                pmem.append(res)
        for s, e in ram:
            S.memory_present(0, s, e)
        # the present sections (memory_present), as boot_allocations and memory_dev_init read them
        present = present_spans(ram)
        self.boot_reserved = boot_allocations(self, ram, present_count=sum(b - a + 1 for a, b in present))
        S.sparse_init()
        for s, e in ram:
            S.subsection_map_init(s, e - s)
        pg = self.node_data(0)
        pg.online = True
        self.max_pfn = max((e for _, e in ram), default=0)
        if ram:
            pg.node_start_pfn = ram[0][0]
            pg.node_spanned_pages = self.max_pfn - ram[0][0]
            pg.node_present_pages = sum(e - s for s, e in ram)
        node_start, node_end = pg.node_start_pfn, pg.node_start_pfn + pg.node_spanned_pages
        for zi, (lo, hi) in ZONE_LIMITS.items():
            # zone_spanned_pages_in_node (§3): the node span clamped to the zone's limits,
            # holes included; present_pages counts only the RAM inside it
            zs, ze = min(max(node_start, lo), hi), min(max(node_end, lo), hi)
            if zs >= ze:
                continue
            z = pg.zones[zi]
            z.zone_start_pfn = zs
            z.spanned_pages = ze - zs
            in_zone = 0
            for rs, re_ in ram:
                lo_, hi_ = rs if rs > zs else zs, re_ if re_ < ze else ze
                if lo_ < hi_:
                    in_zone += hi_ - lo_
            z.present_pages = z.present_early_pages = in_zone   # calculate_node_totalpages (5.15)
            S.memmap_init_zone(0, zi, z.zone_start_pfn, z.spanned_pages)
        self.sync_core_dmesg()
        if bs_override is not None:
            bs = bs_override
        else:
            bs = probe_memory_block_size(self.model, self.max_pfn << C.PAGE_SHIFT, self.hypervisor)
        self.memory_block_size = bs
        self.sections_per_block = bs >> C.PA_SECTION_SHIFT
        self.log(f"x86/mm: Memory block size: {bs >> 20}MB", "info")
        if self.memmap_on_memory == "force":
            self.log(memmap_waste_line(bs), "info")
        MB.memory_dev_init(self, present_spans=present)
        if pmem:
            self.nvdimm = nvdimm_bus.attach(self, pmem)
        # device-dax: hmem (Soft Reserved) and CXL RAM devices, bound as the release binds them
        dax.attach(self)

    # ------------------------------------------------------------------ compatibility
    @property
    def _blocks(self) -> MutableMapping[int, Any]:
        """Old private name of :attr:`blocks` (kept for existing callers)."""
        return self.blocks

    @property
    def _altmap_cls(self) -> type:
        """Old private name of :attr:`altmap_cls` (kept for existing callers)."""
        return self.altmap_cls

    # ------------------------------------------------------------------ queries
    @property
    def zones(self) -> dict:
        """``{nid: [Zone DMA, DMA32, Normal, Movable, Device]}`` for every node with a pgdat."""
        return {nid: pg.zones for nid, pg in sorted(self.nodes.items())}

    def zone(self, nid: int, idx: int) -> Zone:
        """Zone ``idx`` of node ``nid`` (its pgdat is allocated if needed)."""
        return self.node_data(K.check_nid(nid)).zones[K.check_zone(idx)]

    @property
    def memory_blocks(self) -> list:
        """The memory block devices, ascending id."""
        return [self.blocks[i] for i in sorted(self.blocks)]

    def memory_block(self, block_id: int):
        """The block with that id; ValueError for a negative id (api.md "Errors"),
        KernelError(ENODEV) if there is none."""
        block_id = K.index(block_id, "block id")
        if block_id < 0:
            raise ValueError(f"block id must be >= 0, not {block_id}")
        blk = self.blocks.get(block_id)
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
    def dax_devices(self) -> list:
        """The device-dax instances in name order (api.md "Device memory as System RAM";
        :mod:`sparsemem.dax`): devdax namespaces, Soft Reserved ranges (hmem, 5.5+) and CXL RAM
        regions (6.3+), each a :class:`sparsemem.dax.DaxDevice`."""
        return dax.devices(self)

    @property
    def regions(self) -> list:
        return self.nvdimm.regions if self.nvdimm else []

    # ------------------------------------------------------------------ System RAM hotplug
    def add_memory(self, nid, start, size, *, flags=0) -> None:
        """``add_memory`` (§8.1); ``flags``: ``sparsemem.MHP_NONE`` or
        ``sparsemem.MHP_MEMMAP_ON_MEMORY`` (memmap inside the added range, as the release
        supports it); see :func:`sparsemem.hotplug.add_memory`."""
        H.add_memory(self, nid, start, size, flags=flags)

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
    def memremap_pages(self, start, size, *, type="fsdax", altmap=None, vmemmap_shift=0):
        """``devm_memremap_pages``; see :func:`sparsemem.memremap.memremap_pages`."""
        return memremap.memremap_pages(self, start, size, type=type, altmap=altmap, vmemmap_shift=vmemmap_shift)

    def memunmap_pages(self, pgmap) -> None:
        """``devm_memremap_pages_release``; see :func:`sparsemem.memremap.memunmap_pages`."""
        return memremap.memunmap_pages(self, pgmap)

    def get_dev_pagemap(self, pfn):
        """``get_dev_pagemap(pfn, NULL)``; see :func:`sparsemem.memremap.get_dev_pagemap`."""
        return memremap.get_dev_pagemap(self, pfn)

    # ------------------------------------------------------------------ reboot
    def reboot(self, iomem=None, **overrides: Any) -> "Machine":
        """A fresh boot of the same hardware and media (api.md ``reboot``, docs/machine.md).

        The new machine is ``type(self)(**{**self.boot_args, **overrides})``: ``iomem`` (None:
        the boot layout) may move the pmem regions (MN §4.2), and any other boot argument may
        be overridden too (e.g. ``kernel="5.3"`` to probe what a v5.2 kernel wrote, MN §4.1);
        an unknown name is a TypeError.  The nvdimm layer then carries the media over and
        re-probes every labelled namespace (:func:`sparsemem.nvdimm.bus.reboot_from`).
        """
        unknown = sorted(set(overrides) - set(self.boot_args))
        if unknown:
            raise TypeError(f"reboot() got unknown boot arguments {unknown}; expected some of "
                            f"{sorted(self.boot_args)}")
        args = {**self.boot_args, **overrides}
        if iomem is not None:
            args["iomem"] = iomem
        new = type(self)(**args)
        nvdimm_bus.reboot_from(self, new, relayout=iomem is not None)
        return new

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
            "auto_online": self.auto_online_type,
            "params": (self.memmap_on_memory, self.online_policy, self.auto_movable_ratio,
                       self.auto_movable_numa_aware),
            "nodes": {nid: pg.state() for nid, pg in sorted(self.nodes.items())},
            "blocks": tuple((b.id, b.state_value, b.online_type, b.nid, b.section_count, b.dev_offline, b.zone,
                             b.nr_vmemmap_pages, _altmap_state(b.altmap))
                            for b in self.memory_blocks),
            "iomem": self.iomem.state(),
            "pgmaps": tuple((getattr(p, "start", None), getattr(p, "end", None), getattr(p, "type", None))
                            for p in self.pgmaps),
        }
        if self.nvdimm is not None and hasattr(self.nvdimm, "snapshot"):
            snap["nvdimm"] = self.nvdimm.snapshot()
        if self.hwpoison:
            snap["hwpoison"] = tuple(sorted(self.hwpoison))
        return snap

    def __repr__(self):
        return (f"<Machine kernel={self.kernel} core={self.core} max_pfn={self.max_pfn:#x} "
                f"blocks={len(self.blocks)} block_size={self.memory_block_size >> 20}MiB>")
