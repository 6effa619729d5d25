"""The nvdimm bus of one machine: regions, their media, and the nvdimm half of a reboot.

``attach(machine, pmem_resources)`` turns the booted "Persistent Memory" resources into
regions (releasing the driver claims a captured ``/proc/iomem`` shows under them);
``reboot_from(old, new, relayout)`` carries the media into a rebooted machine and re-probes
every labelled namespace as ``nd_pmem_probe`` does (MN §4).  Details: docs/nvdimm.md.
"""

from __future__ import annotations

import errno
from typing import Optional

from ..errors import KernelError
from .infoblock import DAX_SIG, PFN_SIG
from .namespace import BTT_SIG, Namespace, error_line, log_probe_failed, map_of
from .region import Region

__all__ = ["NvdimmBus", "attach", "reboot", "reboot_from", "PMEM_NAMES"]

PMEM_NAMES = ("Persistent Memory", "Persistent Memory (legacy)")
_CLAIM_PREFIXES = ("namespace", "dax", "pfn", "btt", "System RAM")


class NvdimmBus:
    """``machine.nvdimm``: ``regions`` (address order) and ``snapshot()``."""

    def __init__(self, machine):
        self.machine = machine
        self.regions: list[Region] = []

    def region_at(self, addr: int) -> Optional[Region]:
        for r in self.regions:
            if r.start <= addr < r.end:
                return r
        return None

    @property
    def namespaces(self) -> list[Namespace]:
        return [ns for r in self.regions for ns in r.namespaces]

    def snapshot(self) -> dict:
        return {"regions": tuple(r.snapshot() for r in self.regions)}

    def to_dict(self) -> dict:
        return {"provider": "ACPI.NFIT", "dev": "ndbus0", "regions": [r.to_dict() for r in self.regions]}

    def __repr__(self):
        return f"<NvdimmBus {len(self.regions)} regions>"


def _release_claims(iomem, res) -> None:
    for child in list(res.children):
        if child.name.startswith(_CLAIM_PREFIXES):
            iomem.release(child)


def attach(machine, pmem_resources, regions=None) -> NvdimmBus:
    """Create the bus: one region per resource, or per ``(start, size)`` in ``regions`` (each
    inside one of the resources).  Returns the bus (the caller stores it as ``machine.nvdimm``)."""
    bus = NvdimmBus(machine)
    res_list = sorted(pmem_resources, key=lambda r: r.start)
    for res in res_list:
        _release_claims(machine.iomem, res)
    if regions is None:
        spans = [(r.start, r.size, r) for r in res_list]
    else:
        spans = []
        for start, size in sorted(regions):
            host = next((r for r in res_list if r.start <= start and start + size - 1 <= r.end), None)
            if host is None:
                raise ValueError(f"region [mem {start:#x}+{size:#x}] lies in no Persistent Memory resource")
            spans.append((start, size, host))
    for i, (start, size, res) in enumerate(spans):
        bus.regions.append(Region(bus, i, start, size, res))
    return bus


class _NamespaceProbeError(KernelError):
    """``nd_pmem_probe`` of the namespace device itself failed: the 5.7+ compat-align check of
    ``nvdimm_namespace_common_probe`` (R10) or, from 5.4, a pfn/dax validation that returned
    -EOPNOTSUPP (R3).  The namespace stays unbound; driver core reports it for ``nd_pmem`` and
    the namespace (not the pfn/dax device)."""


def _probe_namespace(ns: Namespace) -> None:
    """``nd_pmem_probe`` of a namespace device: ``nvdimm_namespace_common_probe`` (v5.7+:
    :meth:`Namespace.check_compat_align`, before any personality, R10), then BTT, pfn (fsdax),
    dax (devdax), else raw (probe path, MN §4).

    A validation error other than -ENODEV (e.g. -ENXIO "bad offset", §4 #13): while
    ``model.probe_raw_fallback`` is ``"any"`` (v5.1-v5.3) the probe keeps going and the
    namespace is attached as a raw pmem device (full raw size, enabled); the validator's
    dev_err line stays in dmesg and ``ns.error`` records ``(errno, line)``.  From v5.4
    (``"unless_eopnotsupp"``, R3) -EOPNOTSUPP ends the probe instead: the namespace is left
    unbound (raised here, recorded by :func:`probe_all`), other errors still fall back.
    """
    m = ns.machine
    try:
        ns.check_compat_align()
    except KernelError as e:
        raise _NamespaceProbeError(e.errno, e.strerror) from None
    data = ns._read_block(probe=True)       # None: the namespace is too small to hold one
    if data is not None and data[:16] == BTT_SIG:
        ns.mode = "sector"
        ns._enable()
        return
    failed = None
    for sig, mode in ((PFN_SIG, "fsdax"), (DAX_SIG, "devdax")):
        vr = ns._validate(sig, probe=True, data=data)
        if vr.rc == -errno.ENODEV:
            continue
        ns.mode = mode
        if vr.rc:
            mark = len(m.dmesg)
            if vr.rc == -errno.EOPNOTSUPP and m.model.probe_raw_fallback == "unless_eopnotsupp":
                raise ns._validate_error(vr, _NamespaceProbeError)
            err = ns._validate_error(vr)
            failed = (err.errno, error_line(m.dmesg[mark:], err.strerror))
            continue
        sb = vr.sb
        ns.pfn_uuid, ns.align = sb.uuid, sb.align
        ns.map = map_of(sb.mode)
        ns._enable(probe_sb=sb, probe_raw_align=vr.raw_align)
        return
    ns.mode = "raw"
    ns._enable()
    if failed is not None:
        ns.error = failed      # raw fallback after a failed pfn/dax probe (MN §4 "Deltas: v5.4")


def probe_all(bus: NvdimmBus) -> None:
    """Re-create every labelled namespace of every region and probe it (never raises)."""
    m = bus.machine
    for region in bus.regions:
        for lb in sorted(region.media.labels, key=lambda label: label["offset"]):
            ns = Namespace.from_label(region, lb)
            region.namespaces.append(ns)
            mark = len(m.dmesg)
            try:
                _probe_namespace(ns)
            except KernelError as e:
                ns.enabled = False
                ns.error = (e.errno, error_line(m.dmesg[mark:], e.strerror))
                # driver core's line for a failing probe (drivers/base/dd.c: -ENODEV and -ENXIO
                # are dev_dbg only): the namespace's own nd_pmem probe, or the pfn/dax device's
                # probe (the enable path) for a namespace whose block validated
                if e.errno not in (errno.ENODEV, errno.ENXIO):
                    if isinstance(e, _NamespaceProbeError) or not ns.is_pfn_mode:
                        log_probe_failed(m, "nd_pmem", ns.dev, e.errno)
                    else:
                        log_probe_failed(m, ns.driver, ns.pfn_dev, e.errno)
            except Exception as e:  # reboot never raises for media contents
                ns.enabled = False
                ns.error = (errno.EINVAL, f"{ns.dev}: probe failed: {e}")


def reboot_from(old, new, relayout: bool) -> None:
    """The nvdimm half of a reboot (``Machine.reboot`` boots ``new`` and calls this).

    Unless the layout changed (``relayout``), the regions are carved again as
    :func:`carve_regions` left them on ``old``.  Regions are matched in address order: region
    N's media (labels and info-blocks) goes to the new region N, which must not be smaller
    (namespace offsets are region-relative, MN §4.2); then every labelled namespace is
    re-probed (:func:`probe_all`).  ValueError when the new layout has no or a different
    number of pmem regions, or a smaller one.
    """
    carve = old.nvdimm_regions
    if carve is not None and not relayout and new.nvdimm is not None:
        new.nvdimm = attach(new, [r.res for r in new.nvdimm.regions], regions=carve)
        new.nvdimm_regions = carve
    old_regions = old.nvdimm.regions if old.nvdimm is not None else []
    if new.nvdimm is None:
        if old_regions:
            raise ValueError("the new layout has no Persistent Memory ranges")
        return
    if len(new.nvdimm.regions) != len(old_regions):
        raise ValueError(f"the new layout has {len(new.nvdimm.regions)} pmem regions, the machine had "
                         f"{len(old_regions)}")
    for prev, nr in zip(old_regions, new.nvdimm.regions):
        if nr.size < prev.size:
            raise ValueError(f"{nr.dev} shrank from {prev.size:#x} to {nr.size:#x} bytes")
        media = prev.media.clone()
        media.size = nr.size
        nr.media = media
    probe_all(new.nvdimm)


def reboot(machine, iomem=None, kernel=None):
    """``machine.reboot(iomem, kernel=kernel)`` (``kernel`` None: the same kernel); kept for
    existing callers.  Boot another kernel on the same hardware and media to probe, e.g., a
    v5.2-written block with v5.3 (MN §4.1/§4.2)."""
    return machine.reboot(iomem) if kernel is None else machine.reboot(iomem, kernel=kernel)


def carve_regions(machine, regions) -> NvdimmBus:
    """Re-attach the machine's bus with explicit region ranges (before any namespace exists)."""
    if machine.nvdimm is not None and machine.nvdimm.namespaces:
        raise KernelError(errno.EBUSY, "cannot re-carve regions while namespaces exist")
    res = sorted({id(r.res): r.res for r in machine.nvdimm.regions}.values(), key=lambda r: r.start)
    machine.nvdimm = attach(machine, res, regions=regions)
    machine.nvdimm_regions = list(regions)
    return machine.nvdimm


__all__ += ["carve_regions", "probe_all"]
