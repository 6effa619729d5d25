"""A pmem namespace and its personality (raw, sector, fsdax "pfn", devdax "dax").

Enabling follows the v5.1-v5.3 driver stack: ``nd_pmem_probe`` / ``__dax_pmem_probe`` ->
``nvdimm_setup_pfn`` (``nd_pfn_init`` -> ``nd_pfn_validate``, MN §3/§4; ``__nvdimm_setup_pfn``,
MN §5) -> ``devm_request_mem_region`` of the namespace -> ``devm_memremap_pages`` (MN §6).

Errors: the kernel's probe error (``-ENOMEM`` for "Conflicting mapping in same section",
``-ENXIO`` for a System RAM overlap, ...) is what the driver returns; ndctl then sees a device
that did not bind and reports **ENXIO** ("failed to enable", MN §8, cases.md A1).  So
:meth:`Namespace.enable` and ``Region.create_namespace`` raise ``KernelError(ENXIO)`` whose
message names the kernel error, and whose ``kernel_errno`` attribute holds it.
"""

from __future__ import annotations

import errno
import uuid as _uuid
from typing import Any, Optional

from .. import constants as C
from ..errors import KernelError, errno_name
from ..memremap import DevPagemap, make_altmap, memremap_pages, memunmap_pages
from ..printk import CUT_HERE, WARNING_PREFIX, warn_once
from ..resource import REGION_MIXED
from . import pfn as P
from .infoblock import (
    DAX_SIG,
    INFO_BLOCK_OFFSET,
    INFO_BLOCK_RESERVE,
    INFO_BLOCK_SIZE,
    PFN_MODE_PMEM,
    PFN_MODE_RAM,
    PFN_SIG,
    InfoBlock,
)

__all__ = ["Namespace", "MODES", "PFN_MODES", "BTT_SIG", "enable_error", "error_line", "pfn_mode_of", "map_of",
           "probe_failed_line", "log_probe_failed"]

MODES = ("raw", "sector", "fsdax", "devdax")
#: the personalities that sit on a pfn/dax info-block (``nd_pfn``/``nd_dax``)
PFN_MODES = ("fsdax", "devdax")
MODE_ALIASES = {"memory": "fsdax", "dax": "devdax", "safe": "sector"}
#: first 16 bytes of a BTT arena info-block (``BTT_SIG``), probed before pfn/dax.
BTT_SIG = b"BTT_ARENA_INFO\0\0"
#: ``ARENA_MIN_SIZE`` (drivers/nvdimm/btt.h): the smallest BTT arena, 16 MiB
ARENA_MIN_SIZE = 1 << 24
#: ``nd_btt->initial_offset`` of a BTT v1.1 (``nd_btt_version``): its info block sits 4 KiB in
BTT_INITIAL_OFFSET = 4096


def pfn_mode_of(map: str) -> int:
    """ndctl ``--map`` -> info-block ``mode``: ``"dev"`` is PFN_MODE_PMEM, ``"mem"`` PFN_MODE_RAM."""
    return PFN_MODE_PMEM if map == "dev" else PFN_MODE_RAM


def map_of(pfn_mode: int) -> str:
    """Info-block ``mode`` -> ndctl ``map`` (inverse of :func:`pfn_mode_of`)."""
    return "dev" if pfn_mode == PFN_MODE_PMEM else "mem"


def error_line(lines, default: str = "") -> str:
    """The dmesg line that explains a failure: the last one that is not a WARN banner
    (``------------[ cut here ]...`` / ``WARNING: CPU: ...``), e.g. the ``Misaligned
    __add_pages ...`` text rather than the x86 ``add_pages`` WARN_ON_ONCE trailer after it."""
    for line in reversed(lines):
        if not line.startswith((CUT_HERE, WARNING_PREFIX)):
            return line
    return lines[-1] if lines else default


def _pr(start: int, end: int) -> str:
    """``%pr`` of a namespace resource (IORESOURCE_MEM): ``[mem 0x...-0x... flags 0x200]``."""
    return f"[mem {start:#010x}-{end:#010x} flags 0x200]"


def probe_failed_line(model, driver: str, dev: str, err: int) -> str:
    """What the driver core prints when ``driver``'s probe of ``dev`` fails with ``-err``
    (not for -ENODEV / -ENXIO, which it only dev_dbg's): ``"<drv>: probe of <dev> failed
    with error -N"`` (pr_warn) until v6.8, ``"<drv> <dev>: probe with driver <drv> failed
    with error -N"`` (dev_err) from v6.9 (drivers/base/dd.c ``call_driver_probe``, R24)."""
    if model.probe_fail_dev_err:
        return f"{driver} {dev}: probe with driver {driver} failed with error -{err}"
    return f"{driver}: probe of {dev} failed with error -{err}"


def log_probe_failed(m, driver: str, dev: str, err: int) -> None:
    """Log :func:`probe_failed_line` at its printk level: KERN_WARNING (pr_warn) until v6.8,
    KERN_ERR (dev_err) from v6.9."""
    m.log(probe_failed_line(m.model, driver, dev, err), "err" if m.model.probe_fail_dev_err else "warning")


def enable_error(dev: str, err: KernelError) -> KernelError:
    """What ndctl reports when a probe failed with ``err``: ENXIO "failed to enable"."""
    e = KernelError(errno.ENXIO, f"{dev}: failed to enable (probe error -{err.errno} "
                                 f"{errno_name(err.errno)}: {err.strerror})")
    e.kernel_errno = err.errno
    e.__cause__ = err
    return e


class Namespace:
    """One namespace of a :class:`~sparsemem.nvdimm.region.Region` (api.md "Namespace").

    ``start``/``raw_size``: the namespace resource; ``start_pad``/``end_trunc``/``dataoff``/
    ``npfns``: the info-block values in use (0 for raw/sector); ``size``: usable bytes as
    ``ndctl list`` shows them; ``enabled``; ``error``: ``(errno, dmesg line)`` of the last
    failed enable (e.g. a re-probe after reboot), else None.
    """

    def __init__(self, region, nsid: int, offset: int, raw_size: int, mode: str, map: str, align: Optional[int],
                 uuid: bytes, pfn_uuid: Optional[bytes], sector_size: int = 512):
        self.region = region
        self.id = nsid
        self.offset = offset
        self.raw_size = raw_size
        self.mode = mode
        self.map = map
        self.align = align
        self.uuid = uuid
        self.pfn_uuid = pfn_uuid
        self.sector_size = sector_size
        self.start_pad = self.end_trunc = self.dataoff = self.npfns = 0
        self.enabled = False
        self.pgmap: Optional[DevPagemap] = None
        self.resources: list = []
        self.error: Optional[tuple[int, str]] = None
        self.version_minor: Optional[int] = None
        #: devdax: whether the device-dax driver bound the dax device (False for a 0-size
        #: device, issue 11 item 3); None for the other modes or before an enable
        self.dax_enabled: Optional[bool] = None

    # ---------------------------------------------------------------- names
    @property
    def machine(self):
        return self.region.bus.machine

    @property
    def start(self) -> int:
        return self.region.start + self.offset

    @property
    def end(self) -> int:
        return self.start + self.raw_size

    @property
    def dev(self) -> str:
        return f"namespace{self.region.id}.{self.id}"

    @property
    def pfn_dev(self) -> str:
        kind = {"fsdax": "pfn", "devdax": "dax", "sector": "btt"}.get(self.mode, "pfn")
        return f"{kind}{self.region.id}.{self.id}"

    @property
    def is_pfn_mode(self) -> bool:
        """fsdax or devdax: the namespace is used through a pfn/dax info-block."""
        return self.mode in PFN_MODES

    @property
    def bound_dev(self) -> str:
        """The device the personality's driver binds (and ndctl names when it fails):
        :attr:`pfn_dev` for fsdax/devdax, else the namespace itself."""
        return self.pfn_dev if self.is_pfn_mode else self.dev

    @property
    def driver(self) -> str:
        return "dax_pmem" if self.mode == "devdax" else "nd_pmem"

    @property
    def blockdev(self) -> str:
        base = f"pmem{self.region.id}" if self.id == 0 else f"pmem{self.region.id}.{self.id}"
        return base + ("s" if self.mode == "sector" else "")

    @property
    def chardev(self) -> str:
        return f"dax{self.region.id}.{self.id}"

    @property
    def size(self) -> int:
        """Usable data bytes (``pmem_attach_disk`` capacity, MN §5.1; devdax region size §5.2)."""
        if self.is_pfn_mode:
            return max(self.raw_size - self.start_pad - self.end_trunc - self.dataoff, 0)
        return self.raw_size

    @property
    def media(self):
        return self.region.media

    # ---------------------------------------------------------------- labels
    def label(self) -> dict:
        return {"offset": self.offset, "size": self.raw_size, "uuid": self.uuid.hex(), "mode": self.mode,
                "map": self.map, "align": self.align, "pfn_uuid": self.pfn_uuid.hex() if self.pfn_uuid else None,
                "sector_size": self.sector_size, "id": self.id}

    @classmethod
    def from_label(cls, region, lb: dict) -> "Namespace":
        return cls(region, lb["id"], lb["offset"], lb["size"], lb["mode"], lb["map"], lb["align"],
                   bytes.fromhex(lb["uuid"]), bytes.fromhex(lb["pfn_uuid"]) if lb["pfn_uuid"] else None,
                   lb["sector_size"])

    # ---------------------------------------------------------------- enable
    def _log(self, text: str) -> None:
        self.machine.log(f"{self.driver} {self.pfn_dev}: {text}")

    def _read_block(self, probe: bool = False) -> Optional[bytes]:
        """``nvdimm_read_bytes(ndns, SZ_4K, ...)`` of the info block, or None when it does not
        fit in the namespace: ``nsio_rw_bytes`` (drivers/nvdimm/claim.c, v5.1-v5.3) refuses a
        read past the namespace end with -EFAULT after ``dev_WARN_ONCE(&ndns->dev, 1, "request
        out of range")`` (the namespace device is bound to nd_pmem on the probe path, unbound,
        bus "nd", when a pfn/dax/btt device claims it)."""
        if INFO_BLOCK_OFFSET + INFO_BLOCK_SIZE > self.raw_size:
            warn_once(self.machine, ("nsio_rw_bytes",), "drivers/nvdimm/claim.c nsio_rw_bytes",
                      f"{'nd_pmem' if probe else 'nd'} {self.dev}: request out of range")
            return None
        return self.media.read(self.offset + INFO_BLOCK_OFFSET, INFO_BLOCK_SIZE)

    def _request(self, start: int, size: int, name: str):
        iomem = self.machine.iomem
        res = iomem.request(start, size, name, parent=self.region.res)
        self.resources.append(res)
        return res

    def _release_resources(self) -> None:
        iomem = self.machine.iomem
        for res in reversed(self.resources):
            if res.parent is not None:
                iomem.release(res)
        self.resources = []

    def _validate(self, sig: bytes, probe: bool, data: Optional[bytes] = None):
        """``nd_pfn_validate`` of this namespace's block (``data``: the block, if already read);
        ``probe``: the probe path (settings adopted from media), else the init path."""
        init = None
        if not probe:
            init = {"uuid": self.pfn_uuid, "align": self.align, "mode": pfn_mode_of(self.map)}
        if data is None:
            data = self._read_block(probe)
        # a failed read is -ENXIO (MN §4 check #3)
        return P.nd_pfn_validate(b"" if data is None else data, sig, ns_start=self.start,
                                 ns_size=self.raw_size, ns_uuid=self.uuid, ns_name=self.dev, init=init,
                                 region_is_pmem=True, read_error=data is None, model=self.machine.model)

    def _validate_error(self, vr, cls=KernelError) -> KernelError:
        """A failed ``nd_pfn_validate``: log its dev_err line (if any) and return the error."""
        if vr.message:
            self._log(vr.message)
        return cls(-vr.rc, f"nd_pfn_validate of {self.dev}: check #{vr.check} failed"
                           + (f": {vr.message}" if vr.message else ""))

    def _nd_pfn_init(self, sig: bytes) -> tuple[InfoBlock, int]:
        """``nd_pfn_init`` (MN §3): reuse a valid block, or compute and write a new one.
        Returns the block in use and its raw on-media ``align`` field (MN §5.2)."""
        m = self.machine
        model = m.model
        vr = self._validate(sig, probe=False)
        if vr.rc == 0:
            return vr.sb, vr.raw_align
        if vr.rc != -errno.ENODEV:
            raise self._validate_error(vr)
        if self.media.read_only:
            m.log(f"{self.driver} {self.pfn_dev}: region{self.region.id} is read-only, unable to init metadata")
            raise KernelError(errno.ENXIO, f"region{self.region.id} is read-only")
        mode = pfn_mode_of(self.map)
        assert self.align is not None and self.pfn_uuid is not None  # set for every pfn-mode namespace
        sp = et = 0
        if model.nvdimm_pads_to_sections:                       # MN §3.1 step 4
            bus = self.region.bus
            sp, et = P.trim_pfn_device(m.iomem, bus.regions, self.region, self.start, self.raw_size, self.align)
            if sp + et:
                self._log(f"{self.dev} alignment collision, truncate {sp + et} bytes")
        rc, layout, why = P.compute_layout(model, self.start, self.raw_size, mode, self.align,
                                           start_pad=sp, end_trunc=et, ns_name=self.dev)
        if rc:
            if why:
                self._log(why)
            raise KernelError(-rc, f"nd_pfn_init of {self.dev}: {why or 'mode none'} (start {self.start:#x} "
                                   f"size {self.raw_size:#x} start_pad {sp:#x} end_trunc {et:#x})")
        assert layout is not None  # rc == 0
        sb, block = P.new_block_bytes(model, sig, self.pfn_uuid, self.uuid, layout, mode, self.align)
        self.media.write(self.offset + INFO_BLOCK_OFFSET, block)
        return sb, sb.align

    def _enable_pfn(self, probe_sb: Optional[InfoBlock] = None, probe_raw_align: int = 0) -> None:
        """fsdax (``pmem_attach_disk``) / devdax (``__dax_pmem_probe``) enable (MN §3-§6).
        ``probe_raw_align``: the raw on-media align of ``probe_sb`` (``ValidateResult.raw_align``)."""
        m = self.machine
        sig = DAX_SIG if self.mode == "devdax" else PFN_SIG
        if probe_sb is not None:
            sb, raw_align = probe_sb, probe_raw_align
        else:
            sb, raw_align = self._nd_pfn_init(sig)
        rc, setup, why = P.nvdimm_setup_pfn(m.model, sb, self.start, self.raw_size)
        if rc:
            raise KernelError(-rc, f"__nvdimm_setup_pfn of {self.dev}: {why}")
        assert setup is not None  # rc == 0
        if setup.message:
            self._log(setup.message)
        off = sb.dataoff
        shift = 0
        try:
            if self.mode == "devdax":
                # __dax_pmem_probe: metadata reservation, then alloc_dax_region's alignment (MN §5.2)
                try:
                    self._request(self.start, off, self.dev)
                except KernelError as e:
                    self._log("could not reserve metadata")
                    raise KernelError(errno.EBUSY, f"{self.dev}: could not reserve metadata: {e.strerror}") from None
                # alloc_dax_region uses the raw on-media sb.align, not the #9 substitute:
                # a zero align (minor < 2, or align 0 on media) always fails (MN §5.2)
                dstart, dsize = setup.start + off, setup.end + 1 - (setup.start + off)
                if not raw_align or dstart % raw_align or dsize % raw_align:
                    raise KernelError(errno.ENOMEM, f"alloc_dax_region: [mem {dstart:#x}+{dsize:#x}] not aligned "
                                                    f"to sb.align {raw_align:#x}")
                if dsize == 0:
                    # npfns 0 (v5.3-v6.5; issue 11 item 3, later-eras-nvdimm-evidence.md §2.1):
                    # alloc_dax_region accepts the empty range and the dax device is created, so
                    # the nd_dax device binds; the device-dax driver then fails (v5.1-v5.9:
                    # dev_dax_probe cannot reserve an empty region, -EBUSY; v5.10+: dax_bus_probe
                    # refuses a 0-size device with a silent -ENXIO, R13) and maps nothing
                    if not m.model.dax_bus_probe:
                        m.log(f"device_dax {self.chardev}: could not reserve region "
                              f"[mem {dstart:#010x}-{dstart - 1:#010x}]", "warning")
                        log_probe_failed(m, "device_dax", self.chardev, errno.EBUSY)
                    self.dax_enabled = False
                    self._finish_pfn(sb)
                    return
                # dev_dax_probe (drivers/dax/device.c) claims the dax region *before*
                # devm_memremap_pages: a busy range (e.g. System RAM hot-added inside the
                # region) fails with -EBUSY while no section has been touched ("could not
                # reserve region %pR" until v5.9, "mapping%d: %#llx-%#llx could not reserve
                # range" per range from v5.10, R13)
                try:
                    self._request(dstart, dsize, self.chardev)
                except KernelError as e:
                    if m.model.dax_bus_probe:      # dev_warn
                        m.log(f"device_dax {self.chardev}: mapping0: {dstart:#x}-{dstart + dsize - 1:#x} "
                              f"could not reserve range", "warning")
                    else:
                        m.log(f"device_dax {self.chardev}: could not reserve region "
                              f"[mem {dstart:#010x}-{dstart + dsize - 1:#010x}]")
                    raise KernelError(errno.EBUSY, f"{self.chardev}: could not reserve region: {e.strerror}") from None
                # v5.17+: compound pages of the device alignment (dev_dax_probe, R14)
                if m.model.compound_devmap and raw_align > C.PAGE_SIZE:
                    shift = (raw_align // C.PAGE_SIZE - 1).bit_length()      # order_base_2
            else:
                self._request(self.start, self.raw_size, self.dev)
            altmap = None
            if setup.altmap is not None:
                altmap = make_altmap(m, *setup.altmap)
            # the range comes from on-media offsets and need not be page aligned: the kernel
            # truncates with PHYS_PFN and v5.3 then fails check_pfn_span with -EINVAL (MN §5, §6.2)
            self.pgmap = memremap_pages(m, setup.start, setup.size, type=self.mode, altmap=altmap,
                                        dev=f"{self.driver} {self.pfn_dev}", byte_range=True, owner=self,
                                        vmemmap_shift=shift)
        except BaseException:
            # any failure (not only KernelError) leaves no resource claimed
            if self.pgmap is not None:
                memunmap_pages(m, self.pgmap, owner=self)
                self.pgmap = None
            self._release_resources()
            raise
        if self.mode == "devdax":
            self.dax_enabled = True
        self._finish_pfn(sb)

    def _finish_pfn(self, sb: InfoBlock) -> None:
        """Take the settings of the block in use (a bound pfn/dax device)."""
        self.start_pad, self.end_trunc, self.dataoff = sb.start_pad, sb.end_trunc, sb.dataoff
        self.npfns, self.version_minor = sb.npfns, sb.version_minor
        self.align = sb.align
        self.map = map_of(sb.mode)
        self.pfn_uuid = sb.uuid

    @property
    def maps_pages(self) -> bool:
        """``pmem_should_map_pages`` of the namespace device (drivers/nvdimm/namespace_devs.c,
        read unchanged at 5.2.1, 5.3.0, 5.7.14, 6.12.0): the region has ND_REGION_PAGEMAP (an
        e820 "Persistent Memory (legacy)" region, :attr:`Region.pagemap`) and the namespace does
        not mix with System RAM; x86_64 maps pmem write-back (later-eras-nvdimm-evidence.md R25)."""
        if not self.region.pagemap:
            return False
        return self.machine.iomem.region_intersects_ram(self.start, self.raw_size) != REGION_MIXED

    def check_compat_align(self) -> None:
        """``nvdimm_namespace_common_probe`` of the namespace device (v5.7+, R10): a namespace
        that maps pages (:attr:`maps_pages`) must start and end on ``memremap_compat_align()``,
        else dev_err "%pr misaligned, unable to map" and -EOPNOTSUPP, before any claim."""
        ca = self.machine.model.compat_align
        if ca and self.maps_pages and (self.start | self.end) % ca:
            self.machine.log(f"nd_pmem {self.dev}: {_pr(self.start, self.end - 1)} misaligned, unable to map", "err")
            raise KernelError(errno.EOPNOTSUPP, f"{self.dev}: [mem {self.start:#x}-{self.end - 1:#x}] is not "
                                                f"{ca:#x} aligned: misaligned, unable to map")

    def _enable_raw(self) -> None:
        """``nd_pmem_probe`` -> ``pmem_attach_disk`` of the namespace itself (raw), or
        ``nvdimm_namespace_attach_btt`` (sector).  A raw namespace on a PAGEMAP region maps its
        pages (``pmem_should_map_pages``: ``devm_memremap_pages`` over the whole namespace,
        MEMORY_DEVICE_FS_DAX, no altmap, so the memmap is in RAM) in every release
        (later-eras-nvdimm-evidence.md R25, §2.2, issue 11 item 4)."""
        m = self.machine
        if self.mode == "raw":
            self.check_compat_align()
        self._request(self.start, self.raw_size, self.dev)
        if self.mode == "sector":
            self._attach_btt()
        elif self.maps_pages:
            try:
                self.pgmap = memremap_pages(m, self.start, self.raw_size, type="fsdax", altmap=None,
                                            dev=f"nd_pmem {self.dev}", byte_range=True, owner=self)
            except BaseException:
                self._release_resources()
                raise
        self.start_pad = self.end_trunc = self.dataoff = self.npfns = 0

    def _attach_btt(self) -> None:
        """``nvdimm_namespace_attach_btt`` (drivers/nvdimm/btt.c, v5.1-v5.3), after
        ``nd_pmem_probe`` claimed the namespace (``devm_nsio_enable``): a BTT v1.1 starts
        :data:`BTT_INITIAL_OFFSET` into the namespace (``nd_btt_version``, btt_devs.c), and
        fewer than :data:`ARENA_MIN_SIZE` bytes after it fail with -ENXIO (a dev_dbg line only)
        before ``btt_init`` writes any arena metadata; the claim is dropped again."""
        if self.raw_size - BTT_INITIAL_OFFSET < ARENA_MIN_SIZE:
            self._release_resources()
            raise KernelError(errno.ENXIO, f"nvdimm_namespace_attach_btt: {self.dev} must be at least "
                                           f"{ARENA_MIN_SIZE + BTT_INITIAL_OFFSET} bytes, not {self.raw_size} "
                                           f"({self.raw_size:#x})")

    def _enable(self, probe_sb: Optional[InfoBlock] = None, probe_raw_align: int = 0) -> None:
        if self.is_pfn_mode:
            self._enable_pfn(probe_sb, probe_raw_align)
        else:
            self._enable_raw()
        self.enabled = True
        self.error = None

    def enable(self) -> None:
        """``ndctl enable-namespace``: bind the configured personality (init path of
        ``nd_pfn_validate``: a block with this uuid/align/mode is reused, MN §4 #10b/#10c).
        Raises ``KernelError(ENXIO)`` (``kernel_errno`` = the probe error) when the driver fails."""
        if self.enabled:
            return
        if self not in self.region.namespaces:
            raise KernelError(errno.ENODEV, f"{self.dev} was destroyed")
        mark = len(self.machine.dmesg)
        try:
            self._enable()
        except KernelError as e:
            self.error = (e.errno, error_line(self.machine.dmesg[mark:], e.strerror))
            raise enable_error(self.bound_dev, e) from e

    def disable(self) -> None:
        """``ndctl disable-namespace``: unbind; ``devm_memremap_pages_release`` (MN §6.3)."""
        if not self.enabled:
            return
        if self.pgmap is not None:
            memunmap_pages(self.machine, self.pgmap, owner=self)
            self.pgmap = None
        self._release_resources()
        self.enabled = False

    def destroy(self) -> None:
        """``ndctl destroy-namespace -f``: disable, wipe the info-block page, delete the label."""
        self.disable()
        self.region._remove(self)
        self.media.zero(self.offset, min(INFO_BLOCK_RESERVE, self.raw_size))

    def info_block(self) -> Optional[InfoBlock]:
        """The pfn/dax info-block on the media as the booted release reads it (api.md
        "Namespace.info_block"): the 4 KiB at namespace offset 4 KiB parsed when it carries the
        fsdax or devdax signature, a matching checksum and this namespace's uuid as parent
        (``nd_pfn_validate`` checks #4-#6), else None; with the compat defaults of check #7 that
        release applies in memory (minor < 1: no padding, minor < 2: align 0, and from v5.4
        minor < 4: ``page_size`` 4096 and ``page_struct_size`` 64 -- later-eras-nvdimm.md §12 #7b).
        ``version_minor`` and the media bytes are as written: no release rewrites a valid block
        (later-eras-nvdimm-evidence.md §3 #1)."""
        if INFO_BLOCK_OFFSET + INFO_BLOCK_SIZE > self.raw_size:
            return None
        raw = self.media.read(self.offset + INFO_BLOCK_OFFSET, INFO_BLOCK_SIZE)
        try:
            sb = InfoBlock.unpack(raw)
        except ValueError:
            return None
        if sb.parent_uuid != self.uuid:
            return None
        changes: dict[str, int] = {}
        if sb.version_minor < 1:
            changes.update(start_pad=0, end_trunc=0)
        if sb.version_minor < 2:
            changes["align"] = 0
        if sb.version_minor < 4 and self.machine.model.pfn_validate_v14:
            changes.update(page_size=C.PAGE_SIZE, page_struct_size=P.STRUCT_PAGE_SIZE)
        return sb.copy(**changes) if changes else sb

    # ---------------------------------------------------------------- reporting
    def to_dict(self) -> dict:
        """``ndctl list -N`` fields."""
        d: dict[str, Any] = {"dev": self.dev, "mode": self.mode}
        if self.is_pfn_mode:
            d["map"] = self.map
        d["size"] = self.size
        d["uuid"] = str(_uuid.UUID(bytes=self.uuid))
        if (self.is_pfn_mode or self.mode == "sector") and self.pfn_uuid:
            d["raw_uuid"] = str(_uuid.UUID(bytes=self.pfn_uuid))
        d["sector_size"] = 4096 if self.mode == "sector" else 512
        if self.is_pfn_mode:
            d["align"] = self.align
        if self.mode == "devdax":
            d["chardev"] = self.chardev
            dev = {"chardev": self.chardev, "size": self.size}
            if self.dax_enabled is False:
                dev["state"] = "disabled"           # a 0-size dax device (issue 11 item 3)
            d["daxregion"] = {"id": self.region.id, "size": self.size, "align": self.align, "devices": [dev]}
        else:
            d["blockdev"] = self.blockdev
        if not self.enabled:
            d["state"] = "disabled"
        return d

    def snapshot(self) -> dict:
        return {"label": tuple(sorted(self.label().items())), "enabled": self.enabled,
                "start_pad": self.start_pad, "end_trunc": self.end_trunc, "dataoff": self.dataoff,
                "npfns": self.npfns, "resources": tuple((r.start, r.end, r.name) for r in self.resources),
                "error": self.error}

    def __repr__(self):
        return (f"<Namespace {self.dev} {self.mode} [mem {self.start:#x}-{self.end - 1:#x}] size {self.size:#x}"
                f"{'' if self.enabled else ' disabled'}>")
