"""``drivers/base/memory.c`` (and the device-core bits of ``drivers/base/core.c``): memory
block devices and ``/sys/devices/system/memory``.

"§" refers to docs/spec/sparse-hotplug.md (§8.2-§8.4, §8.6).  The device core's
``dev->offline`` flag is kept per block (``dev_offline``) because it decides the
"already in that state" answers: ``device_online``/``device_offline`` return 1 then, which
``state`` turns into -EINVAL while ``online`` reports success (§8.6).  This layer sits above
:mod:`sparsemem.hotplug`, which calls it through ``MachineState.memory_subsys``
(docs/architecture.md).
"""

from __future__ import annotations

import errno
from collections import Counter
from collections.abc import MutableMapping
from typing import Iterator, Optional

import numpy as np

from . import bootparams as BP
from . import constants as C
from . import memory_failure as MF
from .errors import KernelError
from .hotplug import (
    MEM_GOING_OFFLINE,
    MEM_OFFLINE,
    MEM_ONLINE,
    adjust_present_page_count,
    first_unmovable_pfn,
    mhp_deinit_memmap_on_memory,
    mhp_init_memmap_on_memory,
    mmop,
    offline_pages,
    online_pages,
    test_pages_in_a_zone,
    zone_for_pfn_range,
)
from .printk import warn_on_once

__all__ = [
    "MemoryBlock", "MemoryBlocks", "Sysfs", "memory_dev_init", "create_memory_block_devices",
    "remove_memory_block_devices", "hotplug_memory_register", "unregister_memory_section",
    "link_mem_sections", "walk_memory_blocks", "device_online", "device_offline",
    "memory_subsys_online", "memory_subsys_offline", "memory_block_change_state",
    "memory_block_action", "pages_correctly_probed", "STATE_NAMES", "online_memmap_on_memory",
    "offline_memmap_on_memory",
]

STATE_NAMES = {MEM_ONLINE: "online", MEM_OFFLINE: "offline", MEM_GOING_OFFLINE: "going-offline"}


class MemoryBlock:
    """``struct memory_block`` (§8.2): ``id``, ``start_section_nr``, ``end_section_nr``,
    ``state_value`` (MEM_*), ``section_count``, ``online_type`` (an ``MMOP_*`` number of the
    release, :func:`sparsemem.hotplug.mmop`: it starts at the kzalloc 0, MMOP_ONLINE_KEEP in
    v5.3-v5.6 and MMOP_OFFLINE from v5.7), ``phys_device`` (0 on x86), ``nid`` and the device
    core's ``dev_offline`` flag.  ``state`` is the ``state`` file's word, ``zone`` the zone name
    of an online block (None when offline or mixed), ``removable`` the ``removable`` file.
    ``stored_zone`` is the v5.18 ``mem->zone`` (:attr:`KernelModel.block_stores_zone
    <sparsemem.kernel.KernelModel.block_stores_zone>`): a :class:`~sparsemem.mmzone.Zone` or
    None (always None before 5.18); from 5.18 ``zone`` is its name for an online block.
    ``nr_hwpoison`` is the v6.2 per-block count of hardware-poisoned pages (struct
    memory_block ``nr_hwpoison``, :attr:`KernelModel.hwpoison_block_counter
    <sparsemem.kernel.KernelModel.hwpoison_block_counter>`; always 0 before 6.2).
    ``nr_vmemmap_pages``: the pages at the block's start that hold its own memmap
    (memmap_on_memory, v5.13+; 0 otherwise): v5.13-v6.5 the ``struct memory_block`` field,
    v6.6+ the ``free`` of ``altmap``, the block's ``struct vmem_altmap`` (None otherwise;
    :attr:`KernelModel.memmap_on_memory_rules
    <sparsemem.kernel.KernelModel.memmap_on_memory_rules>`, later-eras-hotplug.md A6)."""

    __slots__ = ("machine", "id", "start_section_nr", "end_section_nr", "state_value", "section_count",
                 "online_type", "phys_device", "nid", "dev_offline", "nr_hwpoison", "stored_zone",
                 "nr_vmemmap_pages", "altmap")

    def __init__(self, machine, block_id: int, state: int, section_count: int):
        spb = machine.sections_per_block
        self.machine = machine
        self.id = block_id
        self.start_section_nr = block_id * spb
        self.end_section_nr = self.start_section_nr + spb - 1
        self.state_value = state
        self.section_count = section_count
        self.online_type = 0
        self.phys_device = 0
        # a boot block (made online) was linked to node 0 at boot (register_one_node ->
        # link_mem_sections; the model boots one node); a hot-added one keeps the model's
        # block_nid_init until link_mem_sections: 0 before v5.4, NUMA_NO_NODE (-1) from v5.4
        # (init_memory_block, 2c91f8fc6c99; later-eras-hotplug-evidence.md §1 row 5.4)
        self.nid = 0 if state == MEM_ONLINE else machine.model.block_nid_init
        self.dev_offline = state == MEM_OFFLINE
        self.nr_hwpoison = 0
        self.stored_zone = None    # mem->zone (5.18); boot blocks: MemoryBlocks sets it
        self.nr_vmemmap_pages = 0  # memmap_on_memory (5.13): set by hotplug after creation
        self.altmap = None         # mem->altmap (6.6)

    @property
    def start(self) -> int:
        """First physical byte."""
        return self.start_section_nr << C.PA_SECTION_SHIFT

    @property
    def size(self) -> int:
        return self.machine.memory_block_size

    @property
    def start_pfn(self) -> int:
        return self.start_section_nr << C.PFN_SECTION_SHIFT

    @property
    def nr_pages(self) -> int:
        return self.machine.sections_per_block * C.PAGES_PER_SECTION

    @property
    def state(self) -> str:
        return STATE_NAMES.get(self.state_value, f"ERROR-UNKNOWN-{self.state_value}")

    @property
    def zone(self):
        if self.state_value != MEM_ONLINE:
            return None
        if self.machine.model.block_stores_zone:
            return None if self.stored_zone is None else self.stored_zone.name
        found = test_pages_in_a_zone(self.machine, self.start_pfn, self.start_pfn + self.nr_pages)
        return None if found is None else found[0].name

    @property
    def removable(self) -> bool:
        return show_removable(self) == "1\n"

    def __repr__(self):
        return (f"<MemoryBlock memory{self.id} [mem {self.start:#x}-{self.start + self.size - 1:#x}] "
                f"{self.state} sections={self.section_count} nid={self.nid}>")


# ---------------------------------------------------------------------------------------------
# creation / removal

class MemoryBlocks(MutableMapping):
    """The machine's memory block devices, ``block id -> MemoryBlock`` (``m.blocks``).

    A mapping like a dict whose boot blocks (:func:`memory_dev_init`) are kept as their
    section counts and made into :class:`MemoryBlock` objects on first access: a large
    machine has thousands of them, and most runs never look at one.  Iteration is in
    ascending id."""

    __slots__ = ("_m", "_made", "_counts", "_present", "_spb", "_early_zones")

    def __init__(self, m, boot_counts: Optional[dict] = None, *, present_nrs=None, sections_per_block: int = 1,
                 early_zones: tuple = ()):
        self._m = m
        # (nid, zone index, start pfn, end pfn) of the zones populated at boot, for the v5.18
        # mem->zone of a boot block made later (early_node_zone_for_memory_block)
        self._early_zones = early_zones
        self._made: dict[int, MemoryBlock] = {}
        # id -> section_count of the boot blocks not made yet (MEM_ONLINE); the dict is taken
        # over.  With ``present_nrs`` (the ascending present section numbers, an array or a
        # list of [first, last] spans) instead, the counts are worked out on first use
        # (:attr:`_boot`).
        self._counts: Optional[dict[int, int]] = (None if present_nrs is not None
                                                  else {} if boot_counts is None else boot_counts)
        self._present = present_nrs
        self._spb = sections_per_block

    @property
    def _boot(self) -> dict[int, int]:
        counts = self._counts
        if counts is None:
            present = self._present
            if isinstance(present, list):       # [first, last] spans of section numbers
                present = np.concatenate([np.arange(a, b + 1, dtype=np.uint64) for a, b in present]) \
                    if present else np.zeros(0, dtype=np.uint64)
            ids = present // np.uint64(self._spb)
            counts = self._counts = Counter(ids.tolist())    # ascending ids, so ascending keys
            self._present = None
        return counts

    def __getitem__(self, block_id: int) -> MemoryBlock:
        blk = self._made.get(block_id)
        if blk is None:
            count = self._boot.pop(block_id)     # KeyError: no such block
            blk = self._made[block_id] = MemoryBlock(self._m, block_id, MEM_ONLINE, count)
            if self._m.model.block_stores_zone:
                blk.stored_zone = self._early_zone(blk)
        return blk

    def _early_zone(self, blk: MemoryBlock):
        """``early_node_zone_for_memory_block(mem, nid)`` (drivers/base/memory.c 5.18.12, via
        ``memory_block_add_nid`` when the boot node is registered): the one zone of the block's
        node that was populated at boot and whose span intersects the block, None when there
        are none or several (e.g. DMA and DMA32 in block 0)."""
        lo, hi = blk.start_pfn, blk.start_pfn + blk.nr_pages
        found = None
        for nid, idx, start, end in self._early_zones:
            if nid == blk.nid and start < hi and lo < end:
                if found is not None:
                    return None
                found = self._m.nodes[nid].zones[idx]
        return found

    def get(self, block_id: int, default=None):
        blk = self._made.get(block_id)
        if blk is None:
            return self[block_id] if block_id in self._boot else default
        return blk

    def __contains__(self, block_id) -> bool:
        return block_id in self._made or block_id in self._boot

    def __setitem__(self, block_id: int, blk: MemoryBlock) -> None:
        self._boot.pop(block_id, None)
        self._made[block_id] = blk

    def __delitem__(self, block_id: int) -> None:
        if self._boot.pop(block_id, None) is None:
            del self._made[block_id]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._made.keys() | self._boot.keys()))

    def __len__(self) -> int:
        return len(self._made) + len(self._boot)

    def __repr__(self):
        return f"<MemoryBlocks {len(self)} blocks ({len(self._made)} made)>"


def _new_block(m, block_id: int, state: int, count: int) -> MemoryBlock:
    blk = MemoryBlock(m, block_id, state, count)
    m.blocks[block_id] = blk
    return blk


def memory_dev_init(m, present_nrs=None, *, present_spans: Optional[list] = None) -> None:
    """``memory_dev_init()`` (§8.4): one MEM_ONLINE block per group of ``sections_per_block``
    sections with at least one present section; ``section_count`` = present sections.
    ``present_nrs``: ``m.sections.present_section_nrs()`` if the caller has it already, or
    ``present_spans``: the same numbers as ascending disjoint ``[first, last]`` spans."""
    if present_spans is not None:
        present_nrs = present_spans
    elif present_nrs is None:
        present_nrs = m.sections.present_section_nrs()
    # the counts per block are made on first use: most runs never look at a boot block; so is
    # the v5.18 zone of a boot block, from the zones as they are now, at boot
    early = tuple((pg.nid, z.idx, z.zone_start_pfn, z.zone_end_pfn) for pg in m.nodes.values()
                  for z in pg.zones if z.present_pages)
    m.blocks = MemoryBlocks(m, present_nrs=present_nrs, sections_per_block=m.sections_per_block,
                            early_zones=early)


def create_memory_block_devices(m, start: int, size: int) -> None:
    """``create_memory_block_devices(start, size)`` (§8.2, v5.3): MEM_OFFLINE blocks with
    ``section_count = sections_per_block``; -EEXIST if one exists (the ones created are
    unregistered again); misaligned → WARN_ON_ONCE and -EINVAL."""
    bs = m.memory_block_size
    if start % bs or size % bs:
        warn_on_once(m, ("create_memory_block_devices",), "drivers/base/memory.c create_memory_block_devices")
        raise KernelError(errno.EINVAL, f"create_memory_block_devices: [mem {start:#x}+{size:#x}] not block aligned")
    ids = range(start // bs, (start + size) // bs)
    for bid in ids:
        if bid in m.blocks:
            raise KernelError(errno.EEXIST, f"create_memory_block_devices: memory{bid} already exists")
    for bid in ids:
        _new_block(m, bid, MEM_OFFLINE, m.sections_per_block)


def remove_memory_block_devices(m, start: int, size: int) -> None:
    """``remove_memory_block_devices(start, size)`` (§8.3)."""
    bs = m.memory_block_size
    if start % bs or size % bs:
        warn_on_once(m, ("remove_memory_block_devices",), "drivers/base/memory.c remove_memory_block_devices")
        return
    for bid in range(start // bs, (start + size) // bs):
        blk = m.blocks.pop(bid, None)
        if blk is None:
            warn_on_once(m, ("remove_memory_block_devices", "missing"),
                         "drivers/base/memory.c remove_memory_block_devices")
            continue
        blk.section_count = 0


def hotplug_memory_register(m, nid: int, section_nr: int) -> None:
    """v5.2 ``hotplug_memory_register`` (§7): bump the section's block, or create it
    MEM_OFFLINE with ``section_count`` 1."""
    bid = section_nr // m.sections_per_block
    blk = m.blocks.get(bid)
    if blk is None:
        blk = _new_block(m, bid, MEM_OFFLINE, 0)
    blk.section_count += 1


def unregister_memory_section(m, section_nr: int) -> None:
    """v5.2 ``unregister_memory_section`` (§7): decrement the block's ``section_count`` and
    unregister it at 0; nothing when no block exists."""
    if not m.sections.present_section_nr(section_nr):
        return
    bid = section_nr // m.sections_per_block
    blk = m.blocks.get(bid)
    if blk is None:
        return
    blk.section_count -= 1
    if blk.section_count <= 0:
        del m.blocks[bid]


def link_mem_sections(m, nid: int, start: int, size: int) -> None:
    """``link_mem_sections`` (§8.1 step 8): the blocks of the range get ``nid``."""
    for blk in walk_memory_blocks(m, start, size):
        blk.nid = nid


def walk_memory_blocks(m, start: int, size: int) -> list[MemoryBlock]:
    """``walk_memory_blocks(start, size)``: the existing blocks of the range, ascending id."""
    if size == 0:
        return []
    bs = m.memory_block_size
    lo, hi = start // bs, (start + size - 1) // bs
    blocks = m.blocks
    if hi - lo + 1 <= len(blocks):
        return [blocks[i] for i in range(lo, hi + 1) if i in blocks]
    return [blocks[i] for i in sorted(blocks) if lo <= i <= hi]


# ---------------------------------------------------------------------------------------------
# state machine (§8.6)

def pages_correctly_probed(m, blk: MemoryBlock) -> bool:
    """``pages_correctly_probed(start_pfn)`` (§8.6): every section of the block must have a
    ``pfn_valid`` first pfn (WARN_ON_ONCE otherwise), be present, valid and not online."""
    S = m.sections
    pfn = blk.start_pfn
    for nr in range(blk.start_section_nr, blk.start_section_nr + m.sections_per_block):
        if not S.pfn_valid(pfn):
            warn_on_once(m, ("pages_correctly_probed",), "drivers/base/memory.c pages_correctly_probed")
            return False
        end = pfn + C.PAGES_PER_SECTION
        if not S.present_section_nr(nr):
            m.log(f"section {nr} pfn[{pfn:x}, {end:x}) not present")
            return False
        if not S.valid_section_nr(nr):
            m.log(f"section {nr} pfn[{pfn:x}, {end:x}) no valid memmap")
            return False
        if S.online_section_nr(nr):
            m.log(f"section {nr} pfn[{pfn:x}, {end:x}) is already online")
            return False
        pfn = end
    return True


def memory_block_action(m, blk: MemoryBlock, action: int) -> int:
    """``memory_block_action(start_section_nr, action, online_type)``: 0 or -errno.
    From 6.2 (:attr:`KernelModel.hwpoison_block_counter
    <sparsemem.kernel.KernelModel.hwpoison_block_counter>`) onlining a block that counts
    hardware-poisoned pages is -EHWPOISON before any work and without a dmesg line
    (6.2.1 drivers/base/memory.c ``memory_block_online``; later-eras-hotplug.md A7.2).
    Before 5.7 (:attr:`KernelModel.pages_correctly_probed
    <sparsemem.kernel.KernelModel.pages_correctly_probed>`) an online first runs
    :func:`pages_correctly_probed` (-EBUSY).  From 5.18 (:attr:`KernelModel.block_stores_zone
    <sparsemem.kernel.KernelModel.block_stores_zone>`; drivers/base/memory.c 5.18.12
    ``memory_block_online``/``memory_block_offline``) the online picks the zone here and stores
    it in ``blk.stored_zone`` when it succeeds; the offline of a block without a stored zone
    (several zones) is -EINVAL before any work and without a line, else it hands the stored
    zone to ``offline_pages`` and clears it when it succeeds.  A block with its memmap inside
    (``blk.nr_vmemmap_pages``, memmap_on_memory, v5.13+) goes through
    :func:`online_memmap_on_memory` / :func:`offline_memmap_on_memory`, its zone chosen here for
    the whole block."""
    stores_zone = m.model.block_stores_zone
    nr_vmemmap = blk.nr_vmemmap_pages
    if action == MEM_ONLINE:
        if m.model.hwpoison_block_counter and blk.nr_hwpoison:
            return -MF.EHWPOISON
        if m.model.pages_correctly_probed and not pages_correctly_probed(m, blk):
            return -errno.EBUSY
        zone = (zone_for_pfn_range(m, blk.online_type, blk.nid, blk.start_pfn, blk.nr_pages)
                if stores_zone or nr_vmemmap else None)
        try:
            if nr_vmemmap:
                online_memmap_on_memory(m, blk, zone)
            else:
                online_pages(m, blk.start_pfn, blk.nr_pages, blk.online_type, blk.nid, zone=zone)
        except KernelError as e:
            return -e.errno
        if stores_zone:
            blk.stored_zone = zone
        return 0
    if stores_zone and blk.stored_zone is None:
        return -errno.EINVAL
    try:
        if nr_vmemmap:
            offline_memmap_on_memory(m, blk, blk.stored_zone if stores_zone else None)
        else:
            offline_pages(m, blk.start_pfn, blk.nr_pages, blk.stored_zone if stores_zone else None)
    except KernelError as e:
        return -e.errno
    blk.stored_zone = None
    return 0


def online_memmap_on_memory(m, blk: MemoryBlock, zone) -> None:
    """``memory_block_online`` of a block whose first ``P = blk.nr_vmemmap_pages`` pages hold its
    memmap (drivers/base/memory.c 5.14.0-rc5, 6.6.0, 6.8.1): ``zone`` is chosen for the whole
    block; ``mhp_init_memmap_on_memory`` puts the P pages into it; ``online_pages`` onlines the
    rest (their present pages, the pages the buddy gets: ``nr_pages - P``); only then are the P
    pages counted present (``adjust_present_page_count``), so the zone and node gain the whole
    block.  A failed ``online_pages`` undoes the P pages (``mhp_deinit_memmap_on_memory``) and
    raises its error."""
    nr_vmemmap = blk.nr_vmemmap_pages
    start = blk.start_pfn
    mhp_init_memmap_on_memory(m, start, nr_vmemmap, zone)
    try:
        online_pages(m, start + nr_vmemmap, blk.nr_pages - nr_vmemmap, blk.online_type, blk.nid, zone=zone)
    except KernelError:
        mhp_deinit_memmap_on_memory(m, start, nr_vmemmap)
        raise
    adjust_present_page_count(m, zone, start, nr_vmemmap)


def offline_memmap_on_memory(m, blk: MemoryBlock, zone) -> None:
    """``memory_block_offline`` of such a block (same releases): the P pages leave the present
    count of the zone of the block's first page first, then ``offline_pages`` over the rest
    (``zone``: the v5.18 stored zone, or None); if it fails they are counted back and its error
    raised, else ``mhp_deinit_memmap_on_memory`` takes them out of the zone."""
    nr_vmemmap = blk.nr_vmemmap_pages
    start = blk.start_pfn
    first = m.page_zone(start)
    adjust_present_page_count(m, first, start, -nr_vmemmap)
    try:
        offline_pages(m, start + nr_vmemmap, blk.nr_pages - nr_vmemmap, zone)
    except KernelError:
        adjust_present_page_count(m, first, start, nr_vmemmap)
        raise
    mhp_deinit_memmap_on_memory(m, start, nr_vmemmap)


def memory_block_change_state(m, blk: MemoryBlock, to: int, frm: int) -> int:
    """``memory_block_change_state(mem, to, from)``."""
    if blk.state_value != frm:
        return -errno.EINVAL
    if to == MEM_OFFLINE:
        blk.state_value = MEM_GOING_OFFLINE
    ret = memory_block_action(m, blk, to)
    blk.state_value = frm if ret else to
    return ret


def memory_subsys_online(m, blk: MemoryBlock) -> int:
    """``memory_subsys_online``: a block whose ``online_type`` is MMOP_OFFLINE (the ``online``
    file, or nothing stored) onlines as MMOP_ONLINE (``ONLINE_KEEP`` before 5.7: the v5.3
    test ``< 0`` is the same, MMOP_OFFLINE being the only negative type), and the type is
    reset to MMOP_OFFLINE afterwards, also on failure (-1 before 5.7, 0 from 5.7:
    drivers/base/memory.c 5.6.4, 5.7.14)."""
    if blk.state_value == MEM_ONLINE:
        return 0
    T = mmop(m.model)
    if blk.online_type == T.OFFLINE:
        blk.online_type = T.ONLINE
    ret = memory_block_change_state(m, blk, MEM_ONLINE, MEM_OFFLINE)
    blk.online_type = T.OFFLINE
    return ret


def memory_subsys_offline(m, blk: MemoryBlock) -> int:
    """``memory_subsys_offline``: before 5.7 a block with a section that is not present is
    -EINVAL here, with no line (``section_count``; gone in 5.7.14 with
    :attr:`KernelModel.pages_correctly_probed <sparsemem.kernel.KernelModel.pages_correctly_probed>`,
    so such a block reaches ``offline_pages`` and its ``memory holes`` test)."""
    if blk.state_value == MEM_OFFLINE:
        return 0
    if m.model.pages_correctly_probed and blk.section_count != m.sections_per_block:
        return -errno.EINVAL
    return memory_block_change_state(m, blk, MEM_OFFLINE, MEM_ONLINE)


def device_online(m, blk: MemoryBlock) -> int:
    """``device_online(&mem->dev)``: 1 if ``dev->offline`` is clear, else the callback."""
    if not blk.dev_offline:
        return 1
    ret = memory_subsys_online(m, blk)
    if ret == 0:
        blk.dev_offline = False
    m.sync_core_dmesg()
    return ret


def device_offline(m, blk: MemoryBlock) -> int:
    """``device_offline(&mem->dev)``: 1 if ``dev->offline`` is set, else the callback."""
    if blk.dev_offline:
        return 1
    ret = memory_subsys_offline(m, blk)
    if ret == 0:
        blk.dev_offline = True
    m.sync_core_dmesg()
    return ret


def _raise(ret: int, what: str, blk: Optional[MemoryBlock] = None):
    if ret == -MF.EHWPOISON and blk is not None:
        raise KernelError(-ret, f"{what}: EHWPOISON: the block counts {blk.nr_hwpoison} hardware-poisoned "
                                f"page(s) (memory_block_online)")
    raise KernelError(-ret, f"{what}: {errno.errorcode.get(-ret, str(-ret))}")


# ---------------------------------------------------------------------------------------------
# attribute files (§8.6)

def show_valid_zones(m, blk: MemoryBlock) -> str:
    """``valid_zones_show``: an online block's zone (``test_pages_in_a_zone``; from 5.18 the
    stored ``mem->zone``), ``none`` for several; an offline block's zone for MMOP_ONLINE
    (``ONLINE_KEEP`` before 5.7; from 5.15 it follows ``online_policy``, so ``auto-movable`` may
    print ``Movable Normal``), then those for MMOP_ONLINE_KERNEL and MMOP_ONLINE_MOVABLE that
    differ from it (drivers/base/memory.c 5.3.0, 5.15.16, 5.18.12)."""
    start, nr = blk.start_pfn, blk.nr_pages
    if blk.state_value == MEM_ONLINE:
        zone = blk.zone  # test_pages_in_a_zone over the block, or mem->zone (blk.machine is m)
        return "none\n" if zone is None else zone + "\n"
    nid = blk.nid
    T = mmop(m.model)
    default = zone_for_pfn_range(m, T.ONLINE, nid, start, nr)
    out = default.name
    for t in (T.KERNEL, T.MOVABLE):
        z = zone_for_pfn_range(m, t, nid, start, nr)
        if z is not default:
            out += " " + z.name
    return out + "\n"


def show_removable(blk: MemoryBlock) -> str:
    """v5.2/v5.3 ``removable_show``: ``1`` unless online; online: the AND over the block's
    present sections of ``is_mem_section_removable(pfn, PAGES_PER_SECTION)`` (mm/memory_hotplug.c
    5.3), which checks the pageblocks from the section's first pfn up to the end of the
    *first page's* zone only (``min(start + nr, zone_end_pfn(page_zone(first page)))``), each
    with ``is_pageblock_removable_nolock``: node online, the page's zone spans it, and
    ``has_unmovable_pages`` (mm/page_alloc.c 5.3), which finds a ``PageReserved`` page
    unmovable *before* it takes the ZONE_MOVABLE shortcut (reserved pages:
    :func:`sparsemem.hotplug.first_unmovable_pfn`; page allocations are not modelled, so the
    rest is movable).

    From v5.6 (:attr:`KernelModel.removable_constant <sparsemem.kernel.KernelModel.removable_constant>`,
    53cdc1cb29e8; later-eras-hotplug.md A7.1) the file reads ``1`` for every block."""
    m = blk.machine
    if m.model.removable_constant or blk.state_value != MEM_ONLINE:
        return "1\n"
    S = m.sections
    for nr in range(blk.start_section_nr, blk.start_section_nr + m.sections_per_block):
        if not S.present_section_nr(nr):
            continue
        pfn = nr << C.PFN_SECTION_SHIFT
        first = m.page_zone(pfn)
        if first is None:
            return "0\n"
        end = min(pfn + C.PAGES_PER_SECTION, first.zone_end_pfn)
        checked = 0  # pages of the pageblocks looked at
        for p in range(pfn, end, C.PAGEBLOCK_NR_PAGES):
            z = m.page_zone(p)
            if z is None or not z.zone_pgdat.online or not z.spans(p):
                return "0\n"
            checked += C.PAGEBLOCK_NR_PAGES
        if checked and first_unmovable_pfn(m, pfn, checked) is not None:
            return "0\n"
    return "1\n"


def _streq(value: str, want: str) -> bool:
    """``sysfs_streq``: equal except for one trailing newline on either side."""
    if value.endswith("\n"):
        value = value[:-1]
    return value == want


def _strtobool(value: str, true_false: bool = False):
    """v5.3 ``strtobool``: y/Y/1 → True, n/N/0 → False, on/off; else None (-EINVAL).
    ``true_false`` (v5.19 ``kstrtobool``, :attr:`KernelModel.kstrtobool_true_false
    <sparsemem.kernel.KernelModel.kstrtobool_true_false>`, 0d6ea3ac94ca; later-eras-hotplug.md
    A7.1): t/T → True, f/F → False as well."""
    if not value:
        return None
    c = value[0]
    if c in ("yY1tT" if true_false else "yY1"):
        return True
    if c in ("nN0fF" if true_false else "nN0"):
        return False
    if c in "oO" and len(value) > 1:
        if value[1] in "nN":
            return True
        if value[1] in "fF":
            return False
    return None


class Sysfs:
    """``/sys/devices/system/memory`` of one machine.

    Paths are relative to that directory (an absolute path under it works too):
    ``block_size_bytes``, ``auto_online_blocks``, ``memoryN/{state,online,phys_index,
    valid_zones,removable,phys_device}`` and the write-only ``soft_offline_page`` /
    ``hard_offline_page`` (:mod:`sparsemem.memory_failure`; a refused ``hard_offline_page``
    write can leave the page poisoned, as ``memory_failure`` sets the flag before it looks at
    the page).  :meth:`read` returns the file's text (with its
    trailing newline), :meth:`write` performs the store and returns the byte count, or raises
    :class:`~sparsemem.errors.KernelError` with the kernel's errno (a missing file: ENOENT, a
    read-only one: EACCES).  ``sysfs[path]`` / ``sysfs[path] = value`` are the same.
    A failed write leaves the state unchanged, with one partial-state path that the kernel has
    too: a refused online write to ``memoryN/state`` changes the block's ``online_type``
    (``MemoryBlock.online_type``, used by a later online).  ``state_store``
    (drivers/base/memory.c, v5.1-v5.3; §8.6) stores the requested type before
    ``device_online``, which refuses a block that is already online (-EINVAL) and keeps it;
    a state change that fails (e.g. an injected MEM_GOING_ONLINE error) resets it to
    MMOP_OFFLINE in ``memory_subsys_online`` (-1 before v5.7, 0 from v5.7).
    """

    ROOT = "/sys/devices/system/memory"
    BLOCK_FILES = ("online", "phys_device", "phys_index", "removable", "state", "valid_zones")
    _RW = {"state", "online", "auto_online_blocks"}
    #: write-only files of CONFIG_MEMORY_FAILURE (:mod:`sparsemem.memory_failure`)
    _WO = ("hard_offline_page", "soft_offline_page")

    def __init__(self, machine):
        self._m = machine

    def _relative(self, path) -> str:
        """``path`` relative to :attr:`ROOT`, without surrounding slashes; TypeError for a
        non-str path (before anything is looked up)."""
        if not isinstance(path, str):
            raise TypeError(f"sysfs path must be a str, not {type(path).__name__}")
        p = path
        if p.startswith(self.ROOT):
            p = p[len(self.ROOT):]
        elif p.startswith("/sys/module/"):
            p = p[len("/sys/"):]   # the module parameters (api.md: key prefix module/memory_hotplug/)
        return p.strip("/")

    def _block_dir(self, name: str):
        """The block whose directory is called ``name`` (exactly ``memory<N>`` with N in
        canonical ASCII decimal, as the kernel names the devices), or None."""
        digits = name[6:] if name.startswith("memory") else ""
        if digits and digits.isascii() and digits.isdigit() and digits == str(int(digits)):
            return self._m.blocks.get(int(digits))
        return None

    def _split(self, path: str):
        p = self._relative(path)
        if p.startswith(BP.PARAM_PREFIX) and p[len(BP.PARAM_PREFIX):] in BP.param_names(self._m.model):
            return BP.PARAM_PREFIX, p[len(BP.PARAM_PREFIX):]
        parts = p.split("/") if p else []
        if len(parts) == 1:
            if parts[0] in ("block_size_bytes", "auto_online_blocks") or parts[0] in self._WO:
                return None, parts[0]
        elif len(parts) == 2 and parts[1] in self.BLOCK_FILES:
            blk = self._block_dir(parts[0])
            if blk is not None:
                return blk, parts[1]
        raise KernelError(errno.ENOENT, f"{self.ROOT}/{p}: No such file or directory")

    def listdir(self, path: str = "") -> list[str]:
        """Entries of the directory (the memory root or ``memoryN``).  A non-str path is a
        TypeError; a name that :meth:`read` would not find (``memory01``, non-ASCII digits)
        is ENOENT, as for :meth:`read`."""
        p = self._relative(path)
        if p == BP.PARAM_PREFIX.rstrip("/"):
            return list(BP.param_names(self._m.model))
        if not p:
            return (["auto_online_blocks", "block_size_bytes", "hard_offline_page"]
                    + [f"memory{i}" for i in sorted(self._m.blocks)] + ["soft_offline_page"])
        if "/" not in p and self._block_dir(p) is not None:
            return list(self.BLOCK_FILES)
        raise KernelError(errno.ENOENT, f"{self.ROOT}/{p}: No such file or directory")

    def blocks(self) -> list[str]:
        """The ``memoryN`` directory names, ascending N."""
        return [f"memory{i}" for i in sorted(self._m.blocks)]

    def read(self, path: str) -> str:
        blk, name = self._split(path)
        m = self._m
        if blk == BP.PARAM_PREFIX:
            return BP.read_param(m, name)
        if blk is None:
            if name in self._WO:
                raise KernelError(errno.EACCES, f"{self.ROOT}/{name}: Permission denied (write-only)")
            if name == "block_size_bytes":
                return f"{m.memory_block_size:x}\n"
            return m.auto_online_type + "\n"
        if name == "state":
            s = STATE_NAMES.get(blk.state_value)
            if s is None:
                warn_on_once(m, ("state_show",), "drivers/base/memory.c state_show")
                s = f"ERROR-UNKNOWN-{blk.state_value}"
            return s + "\n"
        if name == "online":
            return "0\n" if blk.dev_offline else "1\n"
        if name == "phys_index":
            return f"{blk.start_section_nr // m.sections_per_block:08x}\n"
        if name == "phys_device":
            return f"{blk.phys_device}\n"
        if name == "removable":
            return show_removable(blk)
        return show_valid_zones(m, blk)

    def write(self, path: str, value) -> int:
        if isinstance(value, str):
            value = value.encode("utf-8", errors="surrogateescape")
        if not isinstance(value, (bytes, bytearray)):
            raise TypeError(f"sysfs value must be str or bytes, not {type(value).__name__}")
        # kernfs hands the store the written bytes NUL-terminated, and the stores parse C
        # strings (sysfs_streq, strtobool): a NUL ends the value; the whole count is returned
        count = len(value)
        value = bytes(value).split(b"\0", 1)[0].decode("utf-8", errors="replace")
        blk, name = self._split(path)
        m = self._m
        if blk == BP.PARAM_PREFIX:
            if count:
                BP.write_param(m, name, value, lambda v: _strtobool(v, m.model.kstrtobool_true_false))
            return count
        if name not in self._RW and name not in self._WO:
            raise KernelError(errno.EACCES, f"{self.ROOT}/{path.strip('/')}: Permission denied (read-only)")
        if count == 0:
            return 0  # fs/sysfs/file.c sysfs_kf_write: an empty write never reaches the store
        if name in self._WO:
            store = MF.soft_offline_page_store if name == "soft_offline_page" else MF.hard_offline_page_store
            return store(m, value, count)
        if blk is None:
            # auto_online_blocks_store: "online"/"offline" (v5.3); from v5.7 any of the four
            # online-type words (mhp_online_type_from_str)
            words = BP.ONLINE_TYPE_WORDS if m.model.online_type_strings else BP.ONLINE_TYPE_WORDS[:2]
            for word in words:
                if _streq(value, word):
                    m.auto_online_type = word
                    return count
            raise KernelError(errno.EINVAL, f"auto_online_blocks: invalid value {value!r} "
                                            f"(accepted: {', '.join(words)})")
        if name == "state":
            return state_store(m, blk, value, count)
        val = _strtobool(value, m.model.kstrtobool_true_false)
        if val is None:
            raise KernelError(errno.EINVAL, f"memory{blk.id}/online: invalid boolean {value!r}")
        ret = device_online(m, blk) if val else device_offline(m, blk)
        if ret < 0:
            _raise(ret, f"memory{blk.id}/online: {'device_online' if val else 'device_offline'}", blk)
        return count

    __getitem__ = read

    def __setitem__(self, path: str, value) -> None:
        self.write(path, value)

    def __contains__(self, path) -> bool:
        try:
            self._split(path)
        except KernelError:
            return False
        return True


def state_store(m, blk: MemoryBlock, value: str, count: int) -> int:
    """``state_store`` (§8.6): online types set ``online_type`` (the release's ``MMOP_*``
    number, :func:`sparsemem.hotplug.mmop`) then ``device_online``; "offline" →
    ``device_offline``; a positive return (already in that state) is -EINVAL.  The four words
    are the same in every release (5.3.0 compares them one by one after taking the lock,
    5.7.14 looks them up in ``online_type_to_str[]`` before: the outcome is the same)."""
    T = mmop(m.model)
    online_type = None
    for word in ("online", "online_kernel", "online_movable"):
        if _streq(value, word):
            online_type = T.of(word)
    if online_type is not None:
        blk.online_type = online_type
        ret = device_online(m, blk)
    elif _streq(value, "offline"):
        ret = device_offline(m, blk)
    else:
        raise KernelError(errno.EINVAL, f"memory{blk.id}/state: invalid value {value!r}")
    if ret > 0:
        raise KernelError(errno.EINVAL, f"memory{blk.id}/state: block is already {blk.state}")
    if ret < 0:
        _raise(ret, f"memory{blk.id}/state: {value.strip()}", blk)
    return count
