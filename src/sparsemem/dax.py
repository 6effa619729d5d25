"""Device-dax: the dax bus (``drivers/dax/bus.c``), ``device_dax`` (``drivers/dax/device.c``),
the devices of devdax namespaces, Soft Reserved memory (``drivers/dax/hmem``, 5.5+) and CXL
RAM regions (``drivers/dax/cxl.c``, 6.3+), and the x86 NUMA lookups that give them their
target node (``arch/x86/mm/numa.c``).  The ``kmem`` driver is :mod:`sparsemem.kmem`, daxctl
:mod:`sparsemem.daxctl`.  Spec: docs/spec/kmem.md (K §2, §3), corrected and extended in
docs/spec/kmem-evidence.md; public names: api.md "Device memory as System RAM".

The bus lives in ``machine.dax`` (:class:`DaxBus`), made at boot by :func:`attach` after the
nvdimm bus: the layout's driver claims below Soft Reserved ranges and CXL windows (``hmem.N``,
``daxX.Y``, ``System RAM``) are dropped, as :func:`sparsemem.nvdimm.bus.attach` drops those of
the pmem ranges, and the release's drivers then create and bind the devices again.  Devices
of devdax namespaces are made when a namespace is seen enabled (:func:`devices`).

Not modelled: the sysfs interface of dynamic dax regions (``create``, ``size``, ``mapping``:
``daxctl create-device``, multi-range devices), the ``dax_hmem.region_idle`` and
``device_hmem.disable`` parameters, the per-device sysfs files.
"""

from __future__ import annotations

import errno
import re
from typing import Optional

from . import daxctl as D
from . import kmem as KM
from .errors import KernelError
from .memremap import DevPagemap, make_altmap, memremap_pages, memunmap_pages
from .resource import IORES_DESC_SOFT_RESERVED, IORESOURCE_MEM, Resource

__all__ = ["DaxDevice", "DaxBus", "attach", "devices", "phys_to_target_node", "memory_add_physaddr_to_nid",
           "numa_meminfo", "IORES_DESC_CXL", "NUMA_NO_NODE", "PMD_SIZE"]

NUMA_NO_NODE = -1
#: ``IORES_DESC_CXL`` (include/linux/ioport.h 6.3.8): a CFMWS window of ``drivers/cxl/acpi.c``
IORES_DESC_CXL = 9
#: the align of hmem and CXL dax regions (``PMD_SIZE``)
PMD_SIZE = 2 << 20

_DAX_RE = re.compile(r"dax(\d+)\.(\d+)")
_HMEM_RE = re.compile(r"hmem\.(\d+)")
_WINDOW_RE = re.compile(r"CXL Window \d+")
_REGION_RE = re.compile(r"region(\d+)")


# ---------------------------------------------------------------------------------------------
# arch/x86/mm/numa.c


def numa_meminfo(m) -> tuple[list, list]:
    """``(numa_meminfo, numa_reserved_meminfo)`` as ``[(start, end, nid)]`` (``end`` exclusive)
    after ``numa_cleanup_meminfo`` (arch/x86/mm/numa.c 5.8.1, 6.1.0): SRAT ranges that overlap
    boot RAM (memblock.memory) are clipped to ``[0, max_pfn << 12)`` and merged per node across
    gaps; the ranges without boot RAM form the reserved list.  Without ``numa=`` x86
    ``dummy_numa_init`` makes one node 0 over ``[0, max_pfn << 12)`` and nothing is reserved.

    The simulation boots all RAM on node 0, so numa_meminfo is that one block whatever
    ``numa=`` says about boot RAM (an SRAT range of another node holding boot RAM -- Soft
    Reserved memory booted as RAM before 5.5 or with ``efi=nosoftreserve`` -- is booted on
    node 0); the ``numa=`` ranges without boot RAM are the reserved list.  As in the kernel,
    numa_meminfo is asked first, so a reserved range inside ``[0, max_pfn << 12)`` reads
    node 0."""
    high = m.max_pfn << 12
    ram = [(r.start, r.end + 1) for r in m.iomem.top_level() if r.name == "System RAM"]
    mem = [(0, high, 0)] if high else []
    reserved = [(s, e, nid) for s, e, nid in m.numa if not any(rs < e and s < re_ for rs, re_ in ram)]
    return mem, sorted(reserved)


def _meminfo_to_nid(blocks: list, addr: int) -> int:
    for s, e, nid in blocks:
        if s <= addr < e:
            return nid
    return NUMA_NO_NODE


def phys_to_target_node(m, addr: int) -> int:
    """``phys_to_target_node(addr)`` (arch/x86/mm/numa.c 5.7.14 .. 6.1; CONFIG_NUMA_KEEP_MEMINFO,
    which legacy pmem and hmem select): the node of the numa_meminfo block holding ``addr``,
    else of the reserved (SRAT, no boot RAM) block, else NUMA_NO_NODE."""
    mem, reserved = m.dax.meminfo if m.dax is not None else numa_meminfo(m)
    nid = _meminfo_to_nid(mem, addr)
    return nid if nid != NUMA_NO_NODE else _meminfo_to_nid(reserved, addr)


def memory_add_physaddr_to_nid(m, addr: int) -> int:
    """``memory_add_physaddr_to_nid(addr)`` (x86, 5.1 .. 6.12): the numa_meminfo block holding
    ``addr``, else the node of the first block: never negative."""
    mem, _ = m.dax.meminfo if m.dax is not None else numa_meminfo(m)
    nid = _meminfo_to_nid(mem, addr)
    return nid if nid != NUMA_NO_NODE else (mem[0][2] if mem else 0)


# ---------------------------------------------------------------------------------------------
# the device


class DaxDevice:
    """One device-dax instance (api.md "Device memory as System RAM"; K §2).

    ``name`` (``daxR.N``), ``ranges`` (``[(start, size)]``), ``size``, ``align``,
    ``target_node``, ``mode`` (``"system-ram"`` when bound to kmem, else ``"devdax"``),
    ``enabled`` (bound to a driver), ``kind`` (``"pmem"``, ``"hmem"``, ``"cxl"``), ``driver``
    (``"device_dax"``, ``"kmem"`` or None), ``namespace`` (pmem), ``memmap_on_memory`` (6.8+:
    CXL devices), ``stderr`` (what the last daxctl command printed), and the kmem driver data
    ``kmem_res`` (the ``daxR.N`` resource of each added range), ``kmem_group`` (5.15+ static
    memory group) and ``kmem_leaked`` (resources kmem left behind: 5.1/5.2 always, later after a
    failed hot-remove)."""

    def __init__(self, bus: "DaxBus", name: str, kind: str, ranges: list, align: int, target_node: int, *,
                 kmem_type: bool = False, memmap_on_memory: bool = False, namespace=None):
        self.bus = bus
        self.name = name
        r, i = _DAX_RE.fullmatch(name).groups()   # type: ignore[union-attr]
        self.region_id, self.id = int(r), int(i)
        self.kind = kind
        self.ranges = [(int(s), int(n)) for s, n in ranges]
        self.align = align
        self.target_node = target_node
        #: the dax region carries IORESOURCE_DAX_KMEM (6.3+ hmem and CXL)
        self.kmem_type = kmem_type
        self.memmap_on_memory = memmap_on_memory
        self.namespace = namespace
        self.driver: Optional[str] = None
        self.stderr: list[str] = []
        self.kmem_res: list = []
        self.kmem_group: Optional[dict] = None
        self.kmem_leaked: list = []
        self.pgmap: Optional[DevPagemap] = None   # device_dax's mapping (hmem / CXL; pmem: the namespace's)
        self.claims: list = []       # device_dax's claims (hmem / CXL; pmem: in the namespace)
        self._pmem_map: Optional[dict] = None

    # ------------------------------------------------------------------ sysfs-like
    @property
    def machine(self):
        return self.bus.m

    @property
    def size(self) -> int:
        return sum(n for _, n in self.ranges)

    @property
    def resource(self) -> int:
        """The ``resource`` file: the first range's start (0 without a range)."""
        return self.ranges[0][0] if self.ranges else 0

    @property
    def mode(self) -> str:
        return "system-ram" if self.driver == "kmem" else "devdax"

    @property
    def enabled(self) -> bool:
        return self.driver is not None

    @property
    def state(self) -> str:
        """The ``state`` file of 7.3+ (latest-eras.md L §8): no release of 5.1 .. 6.12 has it."""
        raise KernelError(errno.ENOENT, f"/sys/bus/dax/devices/{self.name}/state: no such file "
                                        f"(the kmem state file exists from 7.3; this is {self.machine.kernel})")

    @state.setter
    def state(self, value) -> None:
        raise KernelError(errno.ENOENT, f"/sys/bus/dax/devices/{self.name}/state: no such file "
                                        f"(the kmem state file exists from 7.3; this is {self.machine.kernel})")

    # ------------------------------------------------------------------ daxctl
    def to_dict(self) -> dict:
        """``daxctl list`` of this device (K §8.3)."""
        return D.dev_to_json(self.machine, self)

    def reconfigure(self, mode: str, *, online: bool = True, movable: bool = True, force: bool = False) -> dict:
        """``daxctl reconfigure-device --mode=MODE [--no-online] [--no-movable] [--force]``
        (K §8.1, §8.2): the device's JSON afterwards; KernelError with daxctl's errno and
        message on a refusal, leaving what the real sequence leaves."""
        return D.reconfigure(self.machine, self, mode, online=online, movable=movable, force=force)

    def online_memory(self) -> int:
        """``daxctl online-memory``: the number of blocks onlined."""
        return D.online_memory(self.machine, self)

    def offline_memory(self) -> int:
        """``daxctl offline-memory``: the number of blocks offlined."""
        return D.offline_memory(self.machine, self)

    def memory_blocks(self) -> list:
        """The memory blocks daxctl counts as this device's (:func:`sparsemem.daxctl.memory_blocks`)."""
        return D.memory_blocks(self.machine, self)

    # ------------------------------------------------------------------ K §9
    def kmem_ranges(self) -> list[tuple[int, int]]:
        """``(start, size)`` of each range kmem hot-adds (or would: the inward alignment to memory
        blocks, K §5; ranges with no full block are left out)."""
        m = self.machine
        bs = m.memory_block_size
        if self.mode == "system-ram":
            return [(r.start, r.size) for r in self.kmem_res if r is not None]
        if not m.model.kmem_per_range:
            s, n = self.ranges[0]
            ks, kn = KM.region_kmem_range(s, n, bs)
            return [(ks, kn)] if 0 < kn and ks + kn <= s + n else []
        out = []
        for s, n in self.ranges:
            r = KM.kmem_range(s, n, bs)
            if r is not None:
                out.append((r[0], r[1] - r[0] + 1))
        return out

    def kmem_stats(self) -> dict:
        """The accounting of K §9: ``dax_size``, ``kmem_bytes`` (hot-added now, or what kmem
        would add when the device is not in system-ram mode: ``"predicted": True``),
        ``lost_alignment`` (with ``lost_head`` / ``lost_tail``), ``lost_metadata`` (pmem:
        ``dataoff + start_pad + end_trunc``), ``memmap_dram`` (struct pages taken from other
        RAM, 64 bytes per 4 KiB page), ``memmap_self`` (memmap_on_memory: in the added blocks
        themselves) and ``zones`` (``memoryN`` -> ``"Movable"``, ``"Normal"`` ... or
        ``"offline"``)."""
        kr = self.kmem_ranges()
        kmem_bytes = sum(n for _, n in kr)
        head = tail = 0
        for (s, n) in self.ranges:
            inside = [(a, b) for a, b in kr if s <= a and a + b <= s + n]
            if inside:
                head += inside[0][0] - s
                tail += s + n - (inside[-1][0] + inside[-1][1])
            else:
                head += n
        ns = self.namespace
        meta = (ns.dataoff + ns.start_pad + ns.end_trunc) if ns is not None else 0
        zones: dict[str, str] = {}
        self_pages = 0
        if self.mode == "system-ram":
            for b in self.memory_blocks():
                zones[f"memory{b.id}"] = b.zone if str(b.state) == "online" and b.zone else "offline"
                self_pages += getattr(b, "nr_vmemmap_pages", 0) or 0
        memmap_self = self_pages << 12
        memmap_total = kmem_bytes // 64
        return {"name": self.name, "mode": self.mode, "predicted": self.mode != "system-ram",
                "dax_size": self.size, "kmem_bytes": kmem_bytes, "lost_alignment": self.size - kmem_bytes,
                "lost_head": head, "lost_tail": tail, "lost_metadata": meta,
                "memmap_dram": memmap_total - memmap_self, "memmap_self": memmap_self, "zones": zones}

    def __repr__(self) -> str:
        rs = ", ".join(f"[mem {s:#x}-{s + n - 1:#x}]" for s, n in self.ranges)
        return f"<DaxDevice {self.name} {self.kind} {rs} node {self.target_node} {self.mode}" \
               f"{'' if self.enabled else ' disabled'}>"


# ---------------------------------------------------------------------------------------------
# device_dax (drivers/dax/device.c)


def _device_dax_probe(m, dev: DaxDevice) -> int:
    """``dev_dax_probe`` (drivers/dax/device.c 5.3.0, 5.10.44, 6.12.0): claim the range(s) busy
    under the device's name (5.1-5.9 the region, "could not reserve region %pR"; 5.10+ per
    range, "mapping%d: %#llx-%#llx could not reserve range"; -EBUSY), then
    ``devm_memremap_pages`` (ZONE_DEVICE)."""
    if dev.kind == "pmem":
        return _pmem_device_dax_probe(m, dev)
    claims = []
    for i, (s, n) in enumerate(dev.ranges):
        try:
            claims.append(m.iomem.request(s, n, dev.name))
        except (KernelError, ValueError):
            for c in claims:
                m.iomem.release(c)
            if m.model.kmem_per_range:
                m.log(f"device_dax {dev.name}: mapping{i}: {s:#x}-{s + n - 1:#x} could not reserve range", "warning")
            else:
                m.log(f"device_dax {dev.name}: could not reserve region [mem {s:#010x}-{s + n - 1:#010x}]", "warning")
            return -errno.EBUSY
    s, n = dev.ranges[0]
    try:
        dev.pgmap = memremap_pages(m, s, n, type="devdax", dev=f"device_dax {dev.name}", byte_range=True, owner=dev)
    except KernelError as exc:
        for c in claims:
            m.iomem.release(c)
        return -exc.errno
    dev.claims = claims
    return 0


def _pmem_device_dax_probe(m, dev: DaxDevice) -> int:
    """``dev_dax_probe`` of a devdax namespace's device: the claim goes under the region (into
    the namespace's resources) and the mapping is the namespace's pgmap, as
    ``__dax_pmem_probe`` set it up (its altmap over the info-block's memmap area)."""
    ns = dev.namespace
    info = dev._pmem_map
    s, n = dev.ranges[0]
    try:
        res = m.iomem.request(s, n, dev.name, parent=ns.region.res)
    except (KernelError, ValueError):
        if m.model.kmem_per_range:
            m.log(f"device_dax {dev.name}: mapping0: {s:#x}-{s + n - 1:#x} could not reserve range", "warning")
        else:
            m.log(f"device_dax {dev.name}: could not reserve region [mem {s:#010x}-{s + n - 1:#010x}]", "warning")
        return -errno.EBUSY
    if info is None:
        m.iomem.release(res)
        return -errno.ENXIO
    altmap = make_altmap(m, *info["altmap"]) if info["altmap"] is not None else None
    kw = {"vmemmap_shift": info["vmemmap_shift"]} if info["vmemmap_shift"] else {}
    try:
        ns.pgmap = memremap_pages(m, info["start"], info["size"], type="devdax", altmap=altmap, dev=info["dev"],
                                  byte_range=True, owner=ns, **kw)
    except KernelError as exc:
        m.iomem.release(res)
        return -exc.errno
    ns.resources.append(res)
    return 0


def _device_dax_remove(m, dev: DaxDevice) -> None:
    """device_dax unbind: devres releases the mapping and the claims."""
    if dev.kind == "pmem":
        ns = dev.namespace
        if ns.pgmap is not None:
            memunmap_pages(m, ns.pgmap, owner=ns)
            ns.pgmap = None
        for res in [r for r in ns.resources if r.name == dev.name]:
            if res.parent is not None:
                m.iomem.release(res)
            ns.resources.remove(res)
        return
    if dev.pgmap is not None:
        memunmap_pages(m, dev.pgmap, owner=dev)
        dev.pgmap = None
    for c in dev.claims:
        if c.parent is not None:
            m.iomem.release(c)
    dev.claims = []


# ---------------------------------------------------------------------------------------------
# the bus (drivers/dax/bus.c) and the driver core's part (drivers/base/{bus,dd}.c)


class DaxBus:
    """``/sys/bus/dax``: the devices by name, the two drivers' ``new_id`` lists, the memregion
    ids in use, the kmem memory groups, and the NUMA lookups of this boot."""

    DRIVERS = ("device_dax", "kmem")

    def __init__(self, m):
        self.m = m
        self.devices: dict[str, DaxDevice] = {}
        self.ids: dict[str, list[str]] = {"device_dax": [], "kmem": []}
        self.memregion_ids: set[int] = set()
        self.memory_groups: dict[int, dict] = {}
        self._group_ids: set[int] = set()
        self.meminfo = numa_meminfo(m)
        #: the pmem devices, by namespace object id
        self._by_ns: dict[int, DaxDevice] = {}

    # ------------------------------------------------------------------ ids
    def memregion_alloc(self) -> int:
        i = 0
        while i in self.memregion_ids:
            i += 1
        self.memregion_ids.add(i)
        return i

    def next_memory_group_id(self) -> int:
        """``xa_alloc`` of the memory-group xarray: the lowest free id."""
        i = 0
        while i in self._group_ids:
            i += 1
        self._group_ids.add(i)
        return i

    def release_memory_group_id(self, i: int) -> None:
        self._group_ids.discard(i)

    # ------------------------------------------------------------------ matching and probing
    def match(self, dev: DaxDevice, drv: str) -> bool:
        """``dax_bus_match``: a name in the driver's ``new_id`` list; else 5.1-6.2 device_dax
        matches everything (``match_always``), 6.3+ the driver whose type the region has
        (IORESOURCE_DAX_KMEM -> kmem, else device_dax: ``dax_match_type``)."""
        if dev.name in self.ids[drv]:
            return True
        if self.m.model.dax_kmem_default:
            return (drv == "kmem") == dev.kmem_type
        return drv == "device_dax"

    def probe(self, dev: DaxDevice, drv: str) -> int:
        """``really_probe``: the driver is set, its probe runs (through ``dax_bus_probe`` from
        5.10: a device of size 0 is -ENXIO first); a failure unsets it and logs the driver
        core's line (pr_debug for -ENODEV/-ENXIO; K §3)."""
        m = self.m
        dev.driver = drv
        if m.model.dax_bus_probe and dev.size == 0:
            rc = -errno.ENXIO
        elif drv == "kmem":
            rc = KM.kmem_probe(m, dev)
        else:
            rc = _device_dax_probe(m, dev)
        if rc:
            dev.driver = None
            if rc in (-errno.ENODEV, -errno.ENXIO):
                if m.model.probe_fail_dev_err:
                    m.log(f"{drv} {dev.name}: probe with driver {drv} rejects match {rc}", "debug", dynamic=True)
                else:
                    m.log(f"{drv}: probe of {dev.name} rejects match {rc}", "debug", dynamic=True)
            elif m.model.probe_fail_dev_err:
                m.log(f"{drv} {dev.name}: probe with driver {drv} failed with error {rc}", "err")
            else:
                m.log(f"{drv}: probe of {dev.name} failed with error {rc}", "warning")
        return rc

    def driver_attach(self, drv: str) -> None:
        """``driver_attach``: probe every unbound device the driver matches (errors ignored)."""
        for name in sorted(self.devices, key=_dev_key):
            dev = self.devices[name]
            if dev.driver is None and self.match(dev, drv):
                self.probe(dev, drv)

    def device_attach(self, dev: DaxDevice) -> int:
        """``bus_probe_device`` of a new device: the first registered driver that matches."""
        for drv in self.DRIVERS:
            if self.match(dev, drv):
                return self.probe(dev, drv)
        return 0

    # ------------------------------------------------------------------ the driver files
    def _check_drv(self, drv: str) -> None:
        if drv not in self.ids:
            raise ValueError(f"dax driver must be one of {', '.join(self.DRIVERS)}, not {drv!r}")

    def new_id(self, drv: str, name: str) -> int:
        """Write ``name`` to ``/sys/bus/dax/drivers/<drv>/new_id`` (``do_id_store``): -EINVAL
        unless ``daxR.N``; the name joins the list and ``driver_attach`` runs (so the probe
        already happens here for an unbound device: kmem-evidence.md)."""
        self._check_drv(drv)
        if not isinstance(name, str) or not _DAX_RE.fullmatch(name.strip()):
            return -errno.EINVAL
        name = name.strip()
        if name not in self.ids[drv]:
            self.ids[drv].append(name)
        self.driver_attach(drv)
        return 0

    def remove_id(self, drv: Optional[str], name: str) -> int:
        """Write ``name`` to ``<drv>/remove_id``."""
        if drv is None:
            return -errno.ENODEV
        self._check_drv(drv)
        if name in self.ids[drv]:
            self.ids[drv].remove(name)
        return 0

    def bind(self, drv: str, name: str) -> int:
        """Write ``name`` to ``<drv>/bind`` (drivers/base/bus.c ``bind_store``): 0 when bound.
        Before 5.14 a device that is bound already, unknown, unmatched or whose probe fails is
        -ENODEV; from 5.14 the probe's own error (-EBUSY for a bound device)."""
        self._check_drv(drv)
        dev = self.devices.get(name.strip()) if isinstance(name, str) else None
        if dev is None or not self.match(dev, drv):
            return -errno.ENODEV
        if dev.driver is not None:
            return -errno.EBUSY if self.m.model.bind_returns_probe_error else -errno.ENODEV
        rc = self.probe(dev, drv)
        if rc and not self.m.model.bind_returns_probe_error:
            return -errno.ENODEV
        return rc

    def unbind(self, dev: DaxDevice) -> int:
        """Write the name to ``<driver>/unbind``: the driver's remove runs and the device is
        unbound whatever it returns."""
        drv = dev.driver
        if drv is None:
            return -errno.ENODEV
        if drv == "kmem":
            KM.kmem_remove(self.m, dev)
        else:
            _device_dax_remove(self.m, dev)
        dev.driver = None
        return 0

    # ------------------------------------------------------------------ devices
    def add_device(self, dev: DaxDevice, probe: bool = True) -> DaxDevice:
        """``devm_create_dev_dax`` + ``device_add``: register and let the bus probe it."""
        self.devices[dev.name] = dev
        if probe:
            self.device_attach(dev)
        return dev


def _dev_key(name: str):
    r, i = _DAX_RE.fullmatch(name).groups()   # type: ignore[union-attr]
    return int(r), int(i)


# ---------------------------------------------------------------------------------------------
# boot


def _strip(tree, res: Resource) -> None:
    """Drop the driver claims below ``res``: ``daxR.N`` and ``System RAM*`` resources with their
    subtrees, and ``hmem.N`` wrappers (their children move up)."""
    for child in list(res.children):
        if child.parent is None:
            continue
        name = child.name
        if _DAX_RE.fullmatch(name) or name.startswith("System RAM"):
            tree.release(child)
        elif _HMEM_RE.fullmatch(name):
            tree.remove_resource(child)
            _strip(tree, res)
            return
        else:
            _strip(tree, child)


def _soft_reserved_tops(tree) -> list:
    return [r for r in tree.top_level() if r.name == "Soft Reserved"]


def attach(m) -> DaxBus:
    """Create the dax bus of a booted machine (kmem.md K §2, kmem-evidence.md §3): the layout's
    claims below Soft Reserved ranges and CXL windows go; CXL windows and regions get the
    flags the CXL drivers give them; 6.3+ CXL RAM regions and 5.5+ Soft Reserved ranges get
    their devices, which bind as the release binds them (``device_dax``; 6.3+ ``kmem``)."""
    bus = DaxBus(m)
    m.dax = bus
    tree = m.iomem
    for top in list(tree.top_level()):
        if _HMEM_RE.fullmatch(top.name) and any(c.name == "Soft Reserved" for c in top.children):
            tree.remove_resource(top)
    windows = [r for r in tree.top_level() if _WINDOW_RE.fullmatch(r.name)]
    for top in _soft_reserved_tops(tree) + windows:
        _strip(tree, top)
    model = m.model
    regions = []
    for w in windows:
        # drivers/cxl/acpi.c: IORESOURCE_MEM, IORES_DESC_CXL; a region is not busy either
        w.flags, w.desc = IORESOURCE_MEM, IORES_DESC_CXL
        for _, r in tree.walk(w):
            if _REGION_RE.fullmatch(r.name):
                r.flags = IORESOURCE_MEM
                regions.append(r)
    if not model.efi_soft_reserve:
        return bus
    # memregion ids: the nvdimm regions (memregion_alloc, 5.6.4 region_devs.c) and the CXL
    # regions the layout names
    bus.memregion_ids.update(range(len(m.regions)))
    if model.dax_kmem_default:
        bus.memregion_ids.update(int(_REGION_RE.fullmatch(r.name).group(1)) for r in regions)  # type: ignore[union-attr]
    if model.dax_kmem_default:
        _hmem_devices(m, bus)
    else:
        # before 6.3 hmem registers its devices from a late initcall of the built-in
        # hmem/device.c, before the cxl_acpi module inserts the CXL windows (which then nest
        # what they contain); 6.3 waits for cxl_acpi (MODULE_SOFTDEP) and defers to CXL
        for w in windows:
            tree.remove_resource(w)
        _hmem_devices(m, bus)
        for w in windows:
            tree.insert_resource(w)
    if model.dax_kmem_default:
        for r in regions:
            _cxl_device(m, bus, r)
    return bus


def _hmem_devices(m, bus: DaxBus) -> None:
    """The hmem devices of this release (K §2.2, kmem-evidence.md §3.2): HMAT targets (the
    ``numa=`` ranges of each node, in order of the node's first range) wholly in Soft Reserved
    memory, 5.5+; from 5.10 also every Soft Reserved range not claimed yet (5.10-6.1: skipped,
    with "HMEM: skip %pr, already claimed", when a target's ``hmem.N`` now sits above it; 6.2+:
    ranges overlapping one registered already are skipped, dev_dbg); 6.3+ ranges that intersect
    a CXL window are left to CXL (dev_dbg "deferring range to CXL")."""
    model = m.model
    tree = m.iomem
    pending: list = []      # (target_nid, start, end)
    order: list[int] = []
    for _, _, nid in m.numa:
        if nid not in order:
            order.append(nid)
    for nid in order:
        for s, e, n in m.numa:
            if n == nid:
                pending.append(("hmat", nid, s, e - 1))
    if model.kmem_per_range:
        pending.append(("walk", None, None, None))
    active: list = []       # 6.2+: hmem_active
    collected: list = []    # 6.3+: registered into hmem_active, devices made afterwards
    for kind, nid, s, e in pending:
        if kind == "walk":
            for sr in _soft_reserved_walk(tree):
                if sr.parent is not tree.root and not _active_tracking(model):
                    m.log(f"HMEM: skip [mem {sr.start:#010x}-{sr.end:#010x} flags {sr.flags:#x}], already claimed",
                          "info")
                    continue
                _register_hmem(m, bus, phys_to_target_node(m, sr.start), sr.start, sr.end, active, collected)
            continue
        if not model.dax_kmem_default and \
                tree.region_intersects(s, e - s + 1, IORESOURCE_MEM, IORES_DESC_SOFT_RESERVED) != 0:
            continue        # not REGION_INTERSECTS: the target's range is not all Soft Reserved
        _register_hmem(m, bus, nid, s, e, active, collected)
    for nid, s, e in sorted(collected, key=lambda x: x[1]):
        # 6.3+: dax_hmem_platform_probe walks hmem_active in address order
        windows = [r for r in tree.top_level_overlapping(s, e) if r.desc == IORES_DESC_CXL]
        if windows:
            m.log(f"hmem_platform hmem_platform.0: deferring range to CXL: [mem {s:#010x}-{e:#010x} flags 0x200]",
                  "debug", dynamic=True)
            continue
        if tree.region_intersects(s, e - s + 1, IORESOURCE_MEM, IORES_DESC_SOFT_RESERVED) != 0:
            continue
        _hmem_probe(m, bus, bus.memregion_alloc(), nid, s, e)


def _active_tracking(model) -> bool:
    """``hmem_active`` replaces the "already claimed" test (hmem/device.c 6.1.10, 6.2.1)."""
    return model.dax_kmem_default or model.hmem_active


def _soft_reserved_walk(tree) -> list:
    """``walk_iomem_res_desc(IORES_DESC_SOFT_RESERVED, IORESOURCE_MEM, 0, -1)``: the Soft
    Reserved resources at any depth, in address order."""
    return [r for _, r in tree.walk() if r.desc == IORES_DESC_SOFT_RESERVED and r.name == "Soft Reserved"]


def _register_hmem(m, bus: DaxBus, nid: int, s: int, e: int, active: list, collected: list) -> None:
    """``hmem_register_device`` (5.10-6.2) / ``hmat_register_target_device`` (5.5-5.9) /
    ``hmem_register_resource`` (6.3+)."""
    model = m.model
    tree = m.iomem
    if _active_tracking(model):
        if any(a <= e and s <= b for a, b in active):
            return          # dev_dbg "hmem range %pr already active"
        active.append((s, e))
    if model.dax_kmem_default:
        collected.append((nid, s, e))
        return
    if tree.region_intersects(s, e - s + 1, IORESOURCE_MEM, IORES_DESC_SOFT_RESERVED) != 0:
        return
    rid = bus.memregion_alloc()
    # platform_device_add_resources + platform_device_add: insert_resource of "hmem.<id>"
    # (IORESOURCE_MEM; 6.1/6.2 with IORES_DESC_SOFT_RESERVED): above a Soft Reserved range of
    # the same extent, inside a larger one
    desc = IORES_DESC_SOFT_RESERVED if model.hmem_resource_desc else 0
    try:
        tree.insert_resource(Resource(s, e, f"hmem.{rid}", IORESOURCE_MEM, desc))
    except KernelError:
        m.log(f"hmem hmem.{rid}: device add failed for [mem {s:#010x}-{e:#010x} flags 0x200]", "err")
        bus.memregion_ids.discard(rid)
        return
    _hmem_probe(m, bus, rid, nid, s, e)


def _hmem_probe(m, bus: DaxBus, rid: int, nid: int, s: int, e: int) -> None:
    """``dax_hmem_probe``: ``alloc_dax_region`` (align 2 MiB: a start or size not a multiple
    fails the probe with -ENOMEM and no device) and one device ``dax<id>.0`` over the range."""
    if s % PMD_SIZE or (e + 1 - s) % PMD_SIZE:
        m.log(f"hmem: probe of hmem.{rid} failed with error -{errno.ENOMEM}", "warning")
        return
    dev = DaxDevice(bus, f"dax{rid}.0", "hmem", [(s, e + 1 - s)], PMD_SIZE, nid,
                    kmem_type=m.model.dax_kmem_default)
    bus.add_device(dev)


def _cxl_device(m, bus: DaxBus, region: Resource) -> None:
    """``cxl_dax_region_probe`` (drivers/dax/cxl.c 6.3.8, 6.8.1): dax region id N of
    ``regionN``, target node ``phys_to_target_node`` (else ``memory_add_physaddr_to_nid``),
    align 2 MiB, IORESOURCE_DAX_KMEM; 6.8+ ``memmap_on_memory``."""
    rid = int(_REGION_RE.fullmatch(region.name).group(1))   # type: ignore[union-attr]
    s, n = region.start, region.size
    nid = phys_to_target_node(m, s)
    if nid == NUMA_NO_NODE:
        nid = memory_add_physaddr_to_nid(m, s)
    if s % PMD_SIZE or n % PMD_SIZE:
        m.log(f"cxl_dax_region dax_region{rid}: probe with driver cxl_dax_region failed with error -{errno.ENOMEM}",
              "err")
        return
    dev = DaxDevice(bus, f"dax{rid}.0", "cxl", [(s, n)], PMD_SIZE, nid, kmem_type=True,
                    memmap_on_memory=m.model.kmem_memmap_on_memory)
    bus.add_device(dev)


# ---------------------------------------------------------------------------------------------
# devdax namespaces


def _pmem_target_node(m, ns) -> int:
    """The region's target node (K §2.1): legacy e820 pmem 5.1-5.6 ``memory_add_physaddr_to_nid``,
    5.7+ ``phys_to_target_node``; NFIT pmem the ``numa=`` node of the range (the SPA range's
    proximity domain), else node 0 (no SRAT: ``acpi_map_pxm_to_node`` hands out node 0)."""
    start = ns.region.res.start
    if ns.region.res.name == "Persistent Memory (legacy)":
        if m.model.e820_pmem_phys_target_node:
            return phys_to_target_node(m, start)
        return memory_add_physaddr_to_nid(m, start)
    for s, e, nid in m.numa:
        if s <= start < e:
            return nid
    return 0


def _pmem_device(m, bus: DaxBus, ns) -> DaxDevice:
    start = ns.start + ns.start_pad + ns.dataoff
    dev = DaxDevice(bus, ns.chardev, "pmem", [(start, ns.size)], ns.align or 0, _pmem_target_node(m, ns),
                    namespace=ns)
    pg = ns.pgmap
    if pg is not None:
        a = pg.altmap
        dev._pmem_map = {"start": pg.start, "size": pg.size, "dev": pg.dev,
                         "altmap": None if a is None else (a.base_pfn, a.reserve, a.free),
                         "vmemmap_shift": getattr(pg, "vmemmap_shift", 0)}
        dev.driver = "device_dax"
    return dev


def devices(m) -> list[DaxDevice]:
    """The dax devices of ``m`` in name order (``Machine.dax_devices``): those made at boot and
    one per enabled devdax namespace (made when first seen; a namespace's device that is not
    bound to kmem goes with the namespace)."""
    bus = m.dax
    if bus is None:
        return []
    live: set[int] = set()
    for region in m.regions:
        for ns in region.namespaces:
            if ns.mode != "devdax" or not ns.enabled:
                continue
            live.add(id(ns))
            dev = bus._by_ns.get(id(ns))
            if dev is None or dev.namespace is not ns:
                dev = _pmem_device(m, bus, ns)
                old = bus.devices.get(dev.name)
                if old is None or old.kind == "pmem":
                    bus._by_ns[id(ns)] = dev
                    bus.devices[dev.name] = dev
    for key, dev in list(bus._by_ns.items()):
        if key not in live and dev.driver != "kmem":
            del bus._by_ns[key]
            if bus.devices.get(dev.name) is dev:
                del bus.devices[dev.name]
    return [bus.devices[n] for n in sorted(bus.devices, key=_dev_key)]


def find(m, start: int, end: int) -> Optional[DaxDevice]:
    """The device with a range overlapping ``[start, end]`` (inclusive), or None."""
    for dev in devices(m):
        if any(s <= end and start <= s + n - 1 for s, n in dev.ranges):
            return dev
    return None


__all__ += ["find"]
