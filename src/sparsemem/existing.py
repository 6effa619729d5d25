"""The configuration a machine already has: namespaces, pfn/dax devices and kmem memory read
from a ``/proc/iomem`` dump and from ``ndctl list`` / ``daxctl list`` JSON, and re-created on a
booted machine as the kernel would find it (api.md "Machine", "Existing configuration";
docs/existing.md).

Reading (:func:`read_config`)
=============================

A captured ``/proc/iomem`` shows, inside each "Persistent Memory" range, the resources the
drivers claimed (MN §5, kmem.md K §2.1, K §5.4):

``namespaceX.Y``
    ``nd_pmem`` claims the whole namespace (raw, sector and fsdax, ``pmem_attach_disk`` /
    ``devm_nsio_enable``); ``dax_pmem`` claims only the info-block and memmap area
    ``[start, start + dataoff)`` of a devdax namespace under the same name.
``pfnX.Y`` / ``bttX.Y``
    an fsdax / sector namespace (older kernels name the claim after the personality).
``daxX.Y``
    the data range of a devdax namespace (``device_dax``, busy), or, with a ``System RAM``
    (5.1-5.7) / ``System RAM (kmem)`` (5.8+) child, the memory-block aligned range that
    ``kmem`` hot-added (K §5.1, K §5.4): device memory already given to the page allocator.
``System RAM`` directly inside the range
    device memory hot-added without a dax level (the 2018 kmem series): hot-added as is.

So the mode comes from the claim's name and children, fsdax when unsure (api.md).  A devdax
namespace starts where its metadata claim starts; it ends where its data (or kmem) range
ends, extended to the next claim or the region end when that gap is smaller than a section
or a memory block (what ``end_trunc`` and kmem's block alignment leave unclaimed).  Outside
the pmem ranges (a ``Soft Reserved`` range, a ``CXL Window``), a nested ``System RAM`` /
``System RAM (kmem)`` is hmem / CXL memory already hot-added (K §2.2, K §2.3).

JSON (``ndctl list -N``, ``ndctl list -RN`` / ``-BRN``, a single namespace object, and
``daxctl list`` / ``daxctl list -RD``) supplies what the map cannot show: every object with
``"dev": "namespaceX.Y"`` is a namespace (``mode``, ``map``, ``align``, ``size``, ``uuid``,
``"state": "disabled"``), every object with ``"chardev": "daxX.Y"`` and no ``dev`` a dax
device (``"mode": "system-ram"`` = bound to kmem).  A namespace the dump shows keeps the
dump's range and takes the JSON's mode, map, align and uuid; a namespace only the JSON lists
is allocated as ``ndctl create-namespace`` would allocate it, in the JSON's order, with the
JSON's ``raw_size`` or else its ``size`` (``ndctl`` shows the usable size of an fsdax/devdax
namespace, so the namespace comes out that much smaller: the dump is the better source).
Sizes must be byte counts (``ndctl list`` without ``-u``).

Re-creating (:func:`adopt`, :func:`adopt_namespace`, :func:`adopt_ram`)
=======================================================================

On the booted machine each namespace is created at its offset with its mode, map and align
(``Region.create_namespace(offset=..., nsid=...)``: the booted release writes and validates
the info-block with its own rules, MN §3-§6), disabled again if the JSON says so, and a
devdax namespace bound to kmem is then re-bound as ``daxctl reconfigure-device
--mode=system-ram`` does with the 5.1-5.9 kmem probe (K §3, K §5.1, K §8.1): device_dax
releases its claim and mapping, kmem claims ``[ALIGN_UP(s, B), ALIGN_DOWN(e + 1, B))`` (B the
memory block size) as ``daxX.Y``, hot-adds it (``add_memory``, node 0) and the blocks are
onlined movable.  A failure is the kernel's: ``KernelError`` with its errno, the dmesg line
logged.
"""

from __future__ import annotations

import errno
import json
import re
from dataclasses import dataclass, field
from typing import Optional

from . import constants as C
from . import dax
from . import hotplug as H
from .errors import KernelError
from .kernel import as_model
from .nvdimm.bus import PMEM_NAMES
from .resource import IORESOURCE_BUSY, IORESOURCE_SYSTEM_RAM, RESOURCE_MAX

__all__ = ["ExistingNamespace", "ExistingRam", "ExistingConfig", "read_config", "parse_ndctl_json",
           "adopt", "adopt_namespace", "adopt_ram", "kmem_bind", "kmem_of", "Adopted", "adopt_device_ram",
           "implied_numa", "with_implied_numa"]

_DEV_RE = re.compile(r"^(namespace|pfn|btt|dax)(\d+)\.(\d+)$")
_MODE_OF_CLAIM = {"namespace": "fsdax", "pfn": "fsdax", "btt": "sector", "dax": "devdax"}
_MODE_ALIASES = {"memory": "fsdax", "dax": "devdax", "safe": "sector"}
_MODES = ("raw", "sector", "fsdax", "devdax")


@dataclass
class ExistingNamespace:
    """One namespace of the existing configuration (``region``: index of the machine's region,
    address order; ``offset``/``raw_size``: region-relative range, ``None`` when only the JSON
    knows the namespace and it is allocated as ndctl would; ``size``: the size to request
    then)."""

    region: int
    name: str
    nsid: Optional[int] = None
    mode: str = "fsdax"
    map: str = "dev"
    align: Optional[int] = None
    offset: Optional[int] = None
    raw_size: Optional[int] = None
    size: Optional[int] = None
    #: the usable size ``ndctl list`` showed (JSON ``size``), for comparison
    shown_size: Optional[int] = None
    enabled: bool = True
    #: bound to kmem (its memory hot-added as System RAM)
    kmem: bool = False
    #: ``(start, size)`` of the kmem System RAM the dump shows
    kmem_range: Optional[tuple[int, int]] = None
    chardev: Optional[str] = None
    uuid: Optional[str] = None
    #: where it was read: ``"iomem"``, ``"ndctl"`` or ``"iomem+ndctl"``
    source: str = "iomem"


@dataclass
class ExistingRam:
    """Device memory the dump shows as System RAM outside any namespace: ``dev`` the dax
    device that holds it (``None``: none shown), ``parent`` the top-level range it is in
    (``"Soft Reserved"``, ``"CXL Window 0"``, a pmem range), ``region`` the machine's region
    index when that is a pmem range."""

    start: int
    size: int
    dev: Optional[str]
    parent: str
    region: Optional[int] = None


@dataclass
class ExistingConfig:
    """What :func:`read_config` found: namespaces (in creation order), device RAM, notes."""

    namespaces: list = field(default_factory=list)
    ram: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.namespaces or self.ram)

    def for_region(self, index: int) -> list:
        return [n for n in self.namespaces if n.region == index]

    def ram_in_region(self, index: int) -> list:
        return [r for r in self.ram if r.region == index]

    @property
    def regions(self) -> set:
        """Indices of the regions that have an existing configuration."""
        return {n.region for n in self.namespaces} | {r.region for r in self.ram if r.region is not None}


@dataclass
class Adopted:
    """The outcome of adopting one item: the namespace (or ``None``), the error (or ``None``)."""

    item: object
    namespace: object = None
    error: Optional[BaseException] = None


# ---------------------------------------------------------------------------------------------
# reading


def _ram_children(res) -> list:
    """The System RAM resources nested anywhere below ``res`` (not ``res`` itself)."""
    out = []
    for child in res.children:
        if child.name.startswith("System RAM"):
            out.append(child)
        else:
            out.extend(_ram_children(child))
    return out


def _dev(name: str):
    m = _DEV_RE.match(name)
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def _from_pmem(res, index: int, rstart: int, rend: int, slack: int, cfg: ExistingConfig) -> dict:
    """The claims inside one pmem range -> ``cfg``; returns ``{X: index}`` of the names seen."""
    names: dict[int, int] = {}   # region number X of namespaceX.Y -> index
    items: list[dict] = []   # {"name", "nsid", "mode", "start", "end" (exclusive), "kmem", "dax"}
    for child in sorted(res.children, key=lambda r: r.start):
        d = _dev(child.name)
        if child.name.startswith("System RAM"):
            cfg.ram.append(ExistingRam(child.start, child.size, None, res.name, index))
            continue
        if d is None:
            cfg.notes.append(f"{child.name} [mem {child.start:#x}-{child.end:#x}] in {res.name}: not a "
                             f"namespace, pfn, btt or dax device; left as is")
            continue
        kind, x, y = d
        names.setdefault(x, index)
        rams = _ram_children(child)
        if kind == "dax":
            prev = items[-1] if items else None
            kmem = (rams[0].start, rams[-1].end + 1 - rams[0].start) if rams else None
            if prev is not None and prev["mode"] == "fsdax" and prev["kind"] == "namespace" and not prev["dax"] \
                    and (prev["nsid"] == y or child.start - prev["end"] < slack):
                # the metadata claim of dax_pmem, then the data (or kmem) range (K §2.1)
                prev.update(mode="devdax", end=child.end + 1, dax=child.name, kmem=kmem)
            else:
                start = items[-1]["end"] if items else rstart
                if child.start - start >= slack:
                    start = child.start
                items.append({"name": f"namespace{x}.{y}", "nsid": y, "mode": "devdax", "kind": kind,
                              "start": start, "end": child.end + 1, "dax": child.name, "kmem": kmem})
            continue
        items.append({"name": f"namespace{x}.{y}", "nsid": y, "mode": _MODE_OF_CLAIM[kind], "kind": kind,
                      "start": child.start, "end": child.end + 1, "dax": None, "kmem": None})
    for i, it in enumerate(items):
        if it["mode"] == "devdax":
            # end_trunc and kmem's block alignment leave the tail unclaimed
            nxt = items[i + 1]["start"] if i + 1 < len(items) else rend
            if 0 < nxt - it["end"] < slack:
                it["end"] = nxt
        cfg.namespaces.append(ExistingNamespace(
            region=index, name=it["name"], nsid=it["nsid"], mode=it["mode"], offset=it["start"] - rstart,
            raw_size=it["end"] - it["start"], kmem=it["kmem"] is not None, kmem_range=it["kmem"],
            chardev=it["dax"], source="iomem"))
    return names


def _int_field(ns: dict, key: str, what: str) -> Optional[int]:
    val = ns.get(key)
    if val is None:
        return None
    if isinstance(val, bool) or not isinstance(val, int) or val < 0:
        raise ValueError(f"ndctl JSON: {what} {key} {val!r} is not a byte count (list without -u/--human)")
    return val


def parse_ndctl_json(text) -> tuple[list[dict], list[dict]]:
    """``(namespaces, dax_devices)`` of ``ndctl list -N`` / ``-RN`` / ``-BRN`` or ``daxctl list``
    / ``-RD`` JSON (text, or the decoded object), in document order.

    A namespace is an entry of a ``namespaces`` list, an object with ``"dev":
    "namespaceX.Y"``, or a top-level object (or list entry) that is neither a region, a bus
    nor a dax device; its region is ``X`` of its ``dev``, else that of the enclosing region
    object.  A dax device is an object with ``"chardev": "daxX.Y"`` and no ``dev`` (``daxctl
    list``, a ``daxregion``'s ``devices``).  ``ValueError`` with the reason for anything else
    (malformed JSON, a namespace that names no region, a size that is not a byte count)."""
    if isinstance(text, (str, bytes, bytearray)):
        raw = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        if not raw.strip():
            return [], []
        try:
            doc = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"ndctl JSON: line {exc.lineno}: {exc.msg}") from None
    else:
        doc = text
    if not isinstance(doc, (dict, list)):
        raise ValueError("ndctl JSON: expected ndctl/daxctl list output (an object or a list of objects)")
    namespaces: list = []   # (region, object, index)
    daxes: list = []

    def region_of(dev) -> Optional[int]:
        if isinstance(dev, str) and dev.startswith("region") and dev[6:].isdigit():
            return int(dev[6:])
        return None

    def is_dax(node: dict) -> bool:
        return node.get("dev") is None and isinstance(node.get("chardev"), str) and node["chardev"].startswith("dax")

    def is_container(node: dict) -> bool:
        return region_of(node.get("dev")) is not None or any(k in node for k in ("regions", "buses", "devices")) \
            or ("namespaces" in node and not str(node.get("dev", "")).startswith("namespace"))

    def container(node: dict, region):
        region = region_of(node.get("dev")) if region_of(node.get("dev")) is not None else region
        for key in ("buses", "regions"):
            for x in node.get(key) or ():
                if not isinstance(x, dict):
                    raise ValueError(f"ndctl JSON: an entry of {key!r} is not an object")
                container(x, region)
        for x in node.get("namespaces") or ():
            item(x, region, namespace=True)
        for x in node.get("devices") or ():
            if isinstance(x, dict) and is_dax(x):
                daxes.append(x)

    def item(node, region, namespace=False):
        if not isinstance(node, dict):
            raise ValueError(f"ndctl JSON: namespace #{len(namespaces)} is not an object")
        if not namespace and is_dax(node):
            daxes.append(node)
        elif not namespace and is_container(node):
            container(node, region)
        else:
            namespaces.append((region, node, len(namespaces)))
            daxregion = node.get("daxregion")
            for x in ((daxregion or {}).get("devices") or []) if isinstance(daxregion, dict) else []:
                if isinstance(x, dict) and is_dax(x):
                    daxes.append(x)

    for node in doc if isinstance(doc, list) else [doc]:
        item(node, None)
    out = []
    for region, ns, i in namespaces:
        dev = ns.get("dev")
        what = dev or f"namespace #{i}"
        d = _dev(dev) if isinstance(dev, str) else None
        if dev is not None and (d is None or d[0] != "namespace"):
            raise ValueError(f"ndctl JSON: namespace #{i} has dev {dev!r}: not namespaceX.Y")
        x = d[1] if d else region
        if x is None:
            raise ValueError(f"ndctl JSON: namespace #{i} names no region (no \"dev\": \"namespaceN.M\")")
        mode = ns.get("mode", "fsdax")
        mode = _MODE_ALIASES.get(mode, mode)
        if mode not in _MODES:
            raise ValueError(f"ndctl JSON: {what} has mode {mode!r}: not one of {', '.join(_MODES)}")
        dr = ns.get("daxregion") if isinstance(ns.get("daxregion"), dict) else {}
        devices = [x for x in dr.get("devices") or [] if isinstance(x, dict)]
        m = ns.get("map")
        if m not in (None, "dev", "mem"):
            raise ValueError(f"ndctl JSON: {what} has map {m!r}: not dev or mem")
        out.append({"name": dev, "x": x, "nsid": d[2] if d else None, "mode": mode, "map": m or "dev",
                    "align": _int_field(ns, "align", what), "size": _int_field(ns, "size", what),
                    "raw_size": _int_field(ns, "raw_size", what), "uuid": ns.get("uuid"),
                    "enabled": ns.get("state") != "disabled",
                    "kmem": any(x.get("mode") == "system-ram" for x in devices),
                    "chardev": ns.get("chardev") or next((x.get("chardev") for x in devices), None)})
    dax = []
    for x in daxes:
        d = _dev(x["chardev"])
        if d is None or d[0] != "dax":
            raise ValueError(f"ndctl JSON: a dax device has chardev {x['chardev']!r}: not daxX.Y")
        dax.append({"chardev": x["chardev"], "kmem": x.get("mode") == "system-ram",
                    "enabled": x.get("state") != "disabled", "size": _int_field(x, "size", x["chardev"])})
    return out, dax


def read_config(tree, regions, ndctl_json=None, *, block_size: int = C.SECTION_SIZE,
                booted=None) -> ExistingConfig:
    """The existing configuration of a parsed layout ``tree`` (before boot releases the
    claims) and of ``ndctl_json`` (text or decoded; ``None``: none), for a machine whose pmem
    regions are ``regions`` (``[(start, size), ...]`` in address order, as
    ``Machine.regions``).  ``block_size``: the machine's memory block size; ``booted``: the
    booted machine's resource tree, whose top-level System RAM is boot memory (a release
    before v5.5 boots a Soft Reserved range as System RAM, K §2.2).  ``ValueError``
    for JSON that cannot be read or names a region the layout does not have."""
    cfg = ExistingConfig()
    spans = [(s, s + n) for s, n in regions]
    slack = max(C.SECTION_SIZE, block_size)
    xmap: dict[int, int] = {}
    for res in tree.root.children:
        if res.name in PMEM_NAMES:
            index = next((i for i, (s, e) in enumerate(spans) if s <= res.start < e), None)
            if index is None:
                continue
            rs, re_ = spans[index]
            for x, i in _from_pmem(res, index, rs, re_, slack, cfg).items():
                xmap.setdefault(x, i)
        elif not res.name.startswith("System RAM"):
            for ram in _ram_children(res):
                holder = ram.parent
                dev = holder.name if holder is not res and _dev(holder.name) else None
                cfg.ram.append(ExistingRam(ram.start, ram.size, dev, res.name, None))
    if booted is not None:
        boot = [(r.start, r.end) for r in booted.root.children if r.name == "System RAM"]
        cfg.ram = [r for r in cfg.ram if not any(s <= r.start and r.start + r.size - 1 <= e for s, e in boot)]
    if ndctl_json is None:
        return cfg
    namespaces, daxes = parse_ndctl_json(ndctl_json)
    by_name = {n.name: n for n in cfg.namespaces}
    for j in namespaces:
        index = xmap.get(j["x"], j["x"])
        if index >= len(spans):
            raise ValueError(f"ndctl JSON: {j['name']} is on region{j['x']}, but the layout has "
                             f"{len(spans)} pmem region(s)")
        name = f"namespace{index}.{j['nsid']}" if j["nsid"] is not None else None
        item = by_name.get(name) if name else None
        if item is None:
            item = ExistingNamespace(region=index, name=name or f"namespace{index}.?", nsid=j["nsid"],
                                     source="ndctl", size=j["raw_size"] if j["raw_size"] is not None else j["size"])
            cfg.namespaces.append(item)
            if name:
                by_name[name] = item
        else:
            item.source = "iomem+ndctl"
            if j["mode"] == "devdax" and item.mode != "devdax":
                # only dax_pmem's metadata claim is shown (the dax device is not bound):
                # the namespace runs to the next claim or the region end
                rs, re_ = spans[index]
                later = [n.offset for n in cfg.for_region(index)
                         if n.offset is not None and n.offset > item.offset]
                item.raw_size = (min(later) if later else re_ - rs) - item.offset
        item.mode, item.map, item.align = j["mode"], j["map"], j["align"]
        item.shown_size, item.uuid, item.enabled = j["size"], j["uuid"], j["enabled"]
        item.kmem = item.kmem or j["kmem"]
        item.chardev = item.chardev or j["chardev"]
    for d in daxes:
        x, y = _dev(d["chardev"])[1:]
        target = next((n for n in cfg.namespaces if n.chardev == d["chardev"]), None) or \
            by_name.get(f"namespace{xmap.get(x, x)}.{y}")
        if target is not None and target.mode == "devdax":
            target.kmem = d["kmem"]
            target.chardev = d["chardev"]
        elif not any(r.dev == d["chardev"] for r in cfg.ram):
            cfg.notes.append(f"{d['chardev']}: no devdax namespace of this layout has it; left as is")
    # namespaces with a known range first (they are where they are), then the JSON's in order
    cfg.namespaces.sort(key=lambda n: n.offset is None)
    return cfg


# ---------------------------------------------------------------------------------------------
# re-creating


def _pa(v: int) -> str:
    return f"0x{v & RESOURCE_MAX:016x}"


def kmem_bind(machine, ns, nid: int = 0, online: Optional[str] = "online_movable") -> tuple[int, int]:
    """``daxctl reconfigure-device --mode=system-ram --force`` of the devdax namespace ``ns``'s
    dax device (:meth:`sparsemem.dax.DaxDevice.reconfigure`: the release's kmem probe, K §5,
    and daxctl's onlining, K §8.1; ``online``: ``"online_movable"`` (the default),
    ``"online"`` (``--no-movable``) or None (``--no-online``)); returns the hot-added ``(start,
    size)``.  ``KernelError`` as daxctl reports it, leaving what it leaves (an unbound device
    after a failed kmem bind).  ``nid`` is not used: kmem adds to the device's target node."""
    if ns.mode != "devdax" or not ns.enabled:
        raise KernelError(errno.ENXIO, f"{ns.dev}: not an enabled devdax namespace")
    dev = next((d for d in dax.devices(machine) if d.namespace is ns), None)
    if dev is None:
        raise KernelError(errno.ENXIO, f"{ns.dev}: no dax device")
    dev.reconfigure("system-ram", online=online is not None, movable=online != "online", force=True)
    ranges = dev.kmem_ranges()
    return (ranges[0][0], sum(n for _, n in ranges)) if ranges else (0, 0)


def _online(m, start: int, size: int, online_type: str) -> None:
    for blk in m.memory_blocks:
        if start <= blk.start < start + size and str(blk.state) != "online":
            try:
                m.online_memory_block(blk.id, online_type)
            except KernelError:
                pass          # daxctl: "failed to online N memory sections"; the block stays offline


def adopt_namespace(machine, item: ExistingNamespace):
    """Create ``item`` on ``machine`` (see the module docstring); returns the namespace.
    ``KernelError`` as ``create_namespace`` raises it, or as :func:`kmem_bind` does (the
    namespace then stays, enabled, with its dax device unbound)."""
    region = machine.regions[item.region]
    kw: dict = {"mode": item.mode, "map": item.map}
    if item.align is not None and item.mode in ("fsdax", "devdax"):
        kw["align"] = item.align
    if item.uuid:
        kw["uuid"] = item.uuid
    if item.offset is not None:
        kw.update(offset=item.offset, size=item.raw_size)
    elif item.size is not None:
        kw["size"] = item.size
    if item.nsid is not None and not any(n.id == item.nsid for n in region.namespaces):
        kw["nsid"] = item.nsid
    ns = region.create_namespace(**kw)
    if not item.enabled:
        ns.disable()
    elif item.kmem and ns.mode == "devdax":
        kmem_bind(machine, ns)
    return ns


def _is_claim(res) -> bool:
    d = _dev(res.name)
    return res.name.startswith("System RAM") or (d is not None and d[0] == "dax")


def _container(m, start: int, end: int):
    """The deepest resource of ``m``'s tree that holds ``[start, end]`` and is not a dax or
    System RAM claim (a Soft Reserved range, a CXL region, a pmem range, or the root)."""
    parent = m.iomem.root
    while True:
        nxt = next((c for c in parent.children if c.start <= start and end <= c.end and not _is_claim(c)), None)
        if nxt is None:
            return parent
        parent = nxt


def _hot_add(m, nid: int, start: int, size: int, parent) -> None:
    """``add_memory`` of ``[start, start + size)`` with its "System RAM" resource under
    ``parent`` (the kmem claim, K §5.1 steps 4-5): -E2BIG above ``max_mem_size`` (§8.1; kmem
    is a module, so from 5.7 ``mem=`` no longer applies: :func:`sparsemem.hotplug.check_mem_limit`),
    then ``add_memory_resource``; the resource goes again on failure."""
    H.check_mem_limit(m, start, size)
    res = m.iomem.request(start, size, "System RAM", IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, parent=parent)
    try:
        H.add_memory_resource(m, nid, res)
    except BaseException:
        if res.parent is not None:
            m.iomem.release(res)
        raise


def adopt_ram(machine, ram: ExistingRam, nid: int = 0, online: Optional[str] = "online_movable") -> None:
    """Hot-add device memory the dump shows as System RAM outside a namespace: the dax and
    System RAM claims the booted tree still shows there are released, the dax device's range
    (if the dump shows one) claimed again as kmem claims it (not busy, K §5.1 step 4), and the
    range hot-added under it (K §5.1 step 5) and onlined movable (K §8.1)."""
    m = machine
    end = ram.start + ram.size - 1
    parent = _container(m, ram.start, end)
    for child in list(parent.children):
        if child.start <= end and ram.start <= child.end and _is_claim(child):
            m.iomem.release(child)
    dax = None
    if ram.dev:
        try:
            dax = m.iomem.request(ram.start, ram.size, ram.dev, parent=parent)
        except KernelError:
            m.log(f"kmem {ram.dev}: could not reserve region [{_pa(ram.start)}-{_pa(ram.start + ram.size)}]")
            raise
        dax.flags = IORESOURCE_SYSTEM_RAM
    try:
        _hot_add(m, nid, ram.start, ram.size, dax if dax is not None else parent)
    except KernelError:
        if dax is not None:
            m.iomem.release(dax)
        raise
    if online:
        _online(m, ram.start, ram.size, online)


def kmem_of(machine, ns) -> Optional[tuple[int, int]]:
    """``(start, size)`` of the System RAM that kmem hot-added from ``ns``'s dax device, or
    ``None`` (read from the machine's resource tree: ``daxX.Y`` > ``System RAM``, K §5.4)."""
    if ns.mode != "devdax":
        return None
    for res in ns.region.res.children:
        if res.name == ns.chardev and not res.busy:
            rams = [c for c in res.children if c.name.startswith("System RAM")]
            if rams:
                return rams[0].start, sum(c.size for c in rams)
    return None


def adopt_device_ram(machine, ram: ExistingRam) -> None:
    """Device memory the dump shows as System RAM (a Soft Reserved range, a CXL region, a pmem
    range): when the booted release has a dax device over it (:mod:`sparsemem.dax`), that
    device is put in system-ram mode and its blocks onlined as ``daxctl reconfigure-device
    --mode=system-ram --force`` does (a device the release bound to kmem at boot, 6.3+, only
    gets its blocks onlined, ``daxctl online-memory``); otherwise :func:`adopt_ram` hot-adds
    the range as the dump shows it."""
    dev = dax.find(machine, ram.start, ram.start + ram.size - 1)
    if dev is None:
        adopt_ram(machine, ram)
    elif dev.mode != "system-ram":
        dev.reconfigure("system-ram", force=True)
    else:
        dev.online_memory()


def with_implied_numa(tree, kernel, kw: dict) -> dict:
    """The boot options ``kw`` plus the ``numa`` a dump implies (:func:`implied_numa`) when
    ``kw`` has none, for a machine booting the layout ``tree`` under ``kernel``."""
    if kw.get("numa") is not None:
        return kw
    soft = as_model(kernel).efi_soft_reserve and kw.get("efi_soft_reserve", True) is not False
    implied = implied_numa(tree, soft)
    return {**kw, "numa": implied} if implied else kw


def implied_numa(tree, kernel_soft_reserve: bool = True) -> list[tuple[int, int, int]]:
    """The ``numa=`` ranges a dump implies (kmem.md K §2.1, K §2.2): kmem only adds memory with
    a target node, so a Soft Reserved (``kernel_soft_reserve``: a release that has it) or legacy
    pmem range above the boot RAM that shows System RAM below it had an SRAT range of its own;
    each gets a memory-only node, 1, 2, ... in address order.  Used by
    :meth:`Machine.from_iomem <sparsemem.machine.Machine.from_iomem>` when no ``numa`` is given."""
    tops = tree.root.children
    ram_end = max((r.end + 1 for r in tops if r.name == "System RAM"), default=0)
    out: list[tuple[int, int, int]] = []
    for res in tops:
        inner = [c for c in res.children if c.name == "Soft Reserved"] if res.name.startswith("hmem.") else [res]
        for r in inner:
            kind_ok = (r.name == "Soft Reserved" and kernel_soft_reserve) or r.name == "Persistent Memory (legacy)"
            if kind_ok and r.start >= ram_end and _ram_children(r):
                out.append((r.start, r.end + 1, len(out) + 1))
    return out


def adopt(machine, config: ExistingConfig) -> list[Adopted]:
    """Adopt everything of ``config`` on ``machine`` (device RAM first, then the namespaces in
    order); never raises for what the kernel refuses: each :class:`Adopted` holds the error,
    and a refused namespace keeps ``error == (errno, dmesg line)`` when it was created."""
    out = []
    for ram in config.ram:
        try:
            adopt_device_ram(machine, ram)
            out.append(Adopted(ram))
        except KernelError as exc:
            out.append(Adopted(ram, error=exc))
    for item in config.namespaces:
        before = {id(n) for n in machine.regions[item.region].namespaces}
        mark = len(machine.dmesg)
        try:
            out.append(Adopted(item, adopt_namespace(machine, item)))
        except KernelError as exc:
            left = [n for n in machine.regions[item.region].namespaces if id(n) not in before]
            ns = left[0] if left else None
            if ns is not None:
                lines = [ln for ln in machine.dmesg[mark:] if ln]
                ns.error = (getattr(exc, "kernel_errno", None) or exc.errno, lines[-1] if lines else exc.strerror)
            out.append(Adopted(item, ns, exc))
    return out
