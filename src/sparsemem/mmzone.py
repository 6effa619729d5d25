"""``include/linux/mmzone.h``: ``struct zone`` (:class:`Zone`) and ``pg_data_t``
(:class:`Pgdat`) with the x86_64 zone limits (§3, §8.5; "§" = docs/spec/sparse-hotplug.md).
"""

from __future__ import annotations

from . import constants as C

__all__ = ["Zone", "Pgdat", "ZONE_LIMITS"]

MiB = 1 << 20
GiB = 1 << 30

#: zone index -> [low pfn, high pfn) of the zone's possible range on x86_64 (boot, §3)
ZONE_LIMITS = {
    C.ZONE_DMA: (0, (16 * MiB) >> C.PAGE_SHIFT),
    C.ZONE_DMA32: ((16 * MiB) >> C.PAGE_SHIFT, (4 * GiB) >> C.PAGE_SHIFT),
    C.ZONE_NORMAL: ((4 * GiB) >> C.PAGE_SHIFT, 1 << 64),
}


class Zone:
    """``struct zone``: ``zone_start_pfn``, ``spanned_pages``, ``present_pages`` of zone
    ``idx`` (``name``) of node ``nid``; ``zone_pgdat`` is its node.

    ``present_early_pages`` (CONFIG_MEMORY_HOTPLUG, v5.15 include/linux/mmzone.h; kept in every
    release, read only by the v5.15 ``auto-movable`` online policy): the present pages of the
    zone on memory present since boot -- ``present_pages`` at boot (``calculate_node_totalpages``,
    mm/page_alloc.c 5.15.16), then changed with ``present_pages`` when a range whose first
    section is early goes online or offline (``adjust_present_page_count``, mm/memory_hotplug.c
    5.15.16), never by hot-added memory."""

    __slots__ = ("nid", "idx", "zone_start_pfn", "spanned_pages", "present_pages", "zone_pgdat",
                 "present_early_pages")

    def __init__(self, pgdat, idx: int):
        self.nid = pgdat.nid
        self.idx = idx
        self.zone_start_pfn = 0
        self.spanned_pages = 0
        self.present_pages = 0
        self.present_early_pages = 0
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
