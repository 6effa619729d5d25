"""drivers/nvdimm/pfn_devs.c: ``trim_pfn_device``, ``nd_pfn_init``, ``nd_pfn_validate`` and
``__nvdimm_setup_pfn`` for both eras.

Spec: docs/spec/memremap-nvdimm.md ("MN") §2 (formulas), §3 (nd_pfn_init: §3.1 v5.1/v5.2,
§3.2 v5.3), §4 (validation table, in order), §5 (pgmap range and altmap); the later releases:
docs/spec/later-eras-nvdimm.md §11-§12 and later-eras-nvdimm-evidence.md rows R1-R22.
Version-dependent rules are read from the kernel model switches ``nvdimm_pads_to_sections``,
``nvdimm_end_trunc_for_align``, ``infoblock_minor``, ``memremap_expands_to_sections``,
``max_struct_page_size`` (R18/R20), ``compat_align`` (R7/R8), ``pfn_validate_v14`` (R2),
``pfn_validate_eopnotsupp`` (R8) and ``pfn_init_zero_capacity_refused`` (R22).

Everything here is arithmetic on plain numbers plus the machine's iomem tree (for the
``region_intersects`` probe of ``trim_pfn_device``) and the other regions of the bus (for
``nd_region_conflict``), so the functions are directly testable.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Optional, Union

from .. import constants as C
from .._common import U64
from ..iomem import REGION_MIXED
from .infoblock import (
    CHECKSUM_OFFSET,
    DAX_SIG,
    INFO_BLOCK_OFFSET,
    INFO_BLOCK_RESERVE,
    INFO_BLOCK_SIZE,
    PFN_MODE_NONE,
    PFN_MODE_PMEM,
    PFN_MODE_RAM,
    PFN_SIG,
    InfoBlock,
    _compat_defaults_valid,
    _copy_valid,
    sb_checksum,
)

__all__ = ["SZ_4K", "SZ_8K", "SZ_2M", "SZ_1G", "SUPPORTED_ALIGNMENTS", "DEFAULT_ALIGN", "trim_pfn_device",
           "PfnLayout", "compute_layout", "nd_pfn_validate", "ValidateResult", "SetupResult",
           "nvdimm_setup_pfn", "aup", "adn"]

# the kernel's SZ_* names, kept as aliases of the project's constants
SZ_4K = C.PAGE_SIZE
SZ_8K = INFO_BLOCK_RESERVE
SZ_2M = C.PMD_SIZE
SZ_1G = 1 << 30
#: ``nd_pfn_supported_alignments`` on x86_64 with THP and PUD THP (MN §2).
SUPPORTED_ALIGNMENTS = (SZ_4K, SZ_2M, SZ_1G)
#: ``PFN_DEFAULT_ALIGNMENT`` with CONFIG_TRANSPARENT_HUGEPAGE (MN §2); from v5.4
#: ``nd_pfn_default_alignment()`` decides it at run time (``has_transparent_hugepage()``, R4) and
#: from v6.6 the 1 GiB entry of the list asks ``has_transparent_pud_hugepage()`` (R23): on every
#: modelled x86_64 machine (PSE, PUD THP) the same 2 MiB and list, so no switch.
DEFAULT_ALIGN = SZ_2M
#: ``sizeof(struct page)`` of the modelled x86_64 kernels (S, MN §0): what check 9b compares a
#: block's ``page_struct_size`` with.  No boot option makes it larger, so the v6.1.12 refusal
#: "Memory debug options prevent using pmem for the page map" (S > 64, R20) is not reachable.
STRUCT_PAGE_SIZE = 64


def aup(x: int, a: int) -> int:
    return -(-x // a) * a


def adn(x: int, a: int) -> int:
    return x // a * a


# PHYS_SECTION_ALIGN_DOWN/UP: through PHYS_PFN (sub-page bits dropped first); not memremap.py's
# byte-address _sec_dn/_sec_up: keep the two pairs apart
def _sec_dn(addr: int) -> int:
    return C.PFN_PHYS(adn(C.PHYS_PFN(addr), C.PAGES_PER_SECTION))


def _sec_up(addr: int) -> int:
    return C.PFN_PHYS(aup(C.PHYS_PFN(addr), C.PAGES_PER_SECTION))


def _phys_pfn_u64(nbytes: int) -> int:
    """``PHYS_PFN`` of a C ``u64`` byte count: a negative difference wraps modulo 2^64 first,
    then is shifted (``(x & U64) >> PAGE_SHIFT``, MN §3.2 step 9, §5)."""
    return (nbytes & U64) >> C.PAGE_SHIFT


def nd_region_conflict(regions, region, start: int, size: int) -> bool:
    """``nd_region_conflict`` (MN §3.1): another region of the bus holds the probe's first byte
    (``o.start <= start < o.end``), or the probe's exclusive end lies in ``(o.start, o.end]``,
    where ``o.end = o.start + o.size`` is the other region's exclusive end -- so a probe ending
    exactly where the other region ends conflicts.  Namespaces of the same region are never
    considered."""
    end = start + size
    for o in regions:
        if o is region:
            continue
        o_end = o.start + o.size  # exclusive (MN §3.1)
        if o.start <= start < o_end:
            return True
        if o.start < end <= o_end:
            return True
    return False


def trim_pfn_device(iomem, regions, region, ns_start: int, ns_size: int, align: int) -> tuple[int, int]:
    """``trim_pfn_device`` of v5.1/v5.2 (MN §3.1 step 4): ``(start_pad, end_trunc)``.

    Head probe [SEC_DN(start), end): REGION_MIXED with System RAM or another region ->
    start_pad = SEC_UP(start) - start.  Tail probe [start, SEC_UP(end)): MIXED, or end not a
    multiple of ``align``, or another region -> end_trunc = end - min(SEC_DN(end), ADN(end, align)).
    """
    start, end = ns_start, ns_start + ns_size
    sp = et = 0
    h0 = _sec_dn(start)
    if (iomem.region_intersects_ram(h0, end - h0) == REGION_MIXED
            or nd_region_conflict(regions, region, h0, end - h0)):
        sp = _sec_up(start) - start
    t1 = _sec_up(end)
    if (iomem.region_intersects_ram(start, t1 - start) == REGION_MIXED
            or end % align
            or nd_region_conflict(regions, region, start, t1 - start)):
        et = end - min(_sec_dn(end), adn(end, align))
    return sp, et


@dataclass
class PfnLayout:
    """What ``nd_pfn_init`` computes for a new block (MN §3)."""

    start_pad: int
    end_trunc: int
    dataoff: int
    npfns: int
    npfns_reserved: int
    version_minor: int


def compute_layout(model, ns_start: int, ns_size: int, mode: int, align: int, *, start_pad: int = 0,
                   end_trunc: int = 0, ns_name: str = "namespace0.0") -> tuple[int, Optional[PfnLayout],
                                                                               Optional[str]]:
    """Steps 5-8 of ``nd_pfn_init`` (MN §3.1 pre-series with the given trim, §3.2 v5.3, and
    later-eras-nvdimm.md §11: the 5.7 start check, the 6.1.0-6.1.11 128-byte reservation, the
    6.6 zero-capacity refusal).

    Returns ``(0, layout, None)`` or ``(-errno, None, reason)``; ``reason`` is the dev_err text
    the kernel prints on the pfn/dax device (it names the namespace ``ns_name``, e.g.
    ``"namespace0.0 unable to satisfy requested alignment"`` or, from v5.7, ``"namespace0.0:
    start 0x0000000200100000 misaligned to 0x200000"``), or None.
    """
    compat = model.compat_align
    if compat and ns_start % compat:
        # v5.7 (R7): checked before end_trunc/dataoff; "%s: start %pa misaligned to %#lx", -EINVAL
        return -errno.EINVAL, None, f"{ns_name}: start 0x{ns_start:016x} misaligned to {compat:#x}"
    a = max(align, compat or SZ_2M)
    if model.nvdimm_pads_to_sections:                       # MN §3.1 steps 4-8
        sp, et = start_pad, end_trunc
        reserve_size = ns_size - sp - et                    # npfns_r counts the trimmed size ...
        npfns_r_align = C.PAGES_PER_SECTION                 # ... rounded up to whole sections
        ram_align = align
        fail_trunc = sp + et                                # step 7 subtracts the trim
    else:                                                   # MN §3.2 steps 5-9
        sp = 0
        end = ns_start + ns_size
        et = end - adn(end, a) if model.nvdimm_end_trunc_for_align else 0
        reserve_size = ns_size
        npfns_r_align = 1
        ram_align = a
        # step 8 ignores end_trunc before v6.6 (so npfns may be 0); v6.6 tests dataoff against
        # size - end_trunc (e96d9a938e89, R22)
        fail_trunc = et if model.pfn_init_zero_capacity_refused else 0
    base = ns_start + sp
    npfns_r = aup(max(reserve_size - SZ_8K, 0) // SZ_4K, npfns_r_align)
    if mode == PFN_MODE_PMEM:
        # MAX_STRUCT_PAGE_SIZE: 64, 128 in v6.1.0-v6.1.11 (R18, R20)
        dataoff = aup(base + SZ_8K + model.max_struct_page_size * npfns_r, a) - base
    elif mode == PFN_MODE_RAM:
        dataoff = aup(base + SZ_8K, ram_align) - base
    else:
        return -errno.ENXIO, None, None
    if dataoff + fail_trunc >= ns_size:
        return -errno.ENXIO, None, f"{ns_name} unable to satisfy requested alignment"
    # dataoff < size - end_trunc here in v5.3+ (with a = max(align, 2 MiB) for both), so npfns
    # is 0 at worst (later-eras-nvdimm-evidence.md §3 #3); u64 as in the kernel regardless
    npfns = _phys_pfn_u64(ns_size - dataoff - sp - et)
    return 0, PfnLayout(sp, et, dataoff, npfns, npfns_r, model.infoblock_minor), None


@dataclass
class ValidateResult:
    """Outcome of :func:`nd_pfn_validate`: ``rc`` (0 or -errno), the in-memory block after the
    compat defaults and align substitution (or None), the check number of §4 that decided, the
    dev_err line (or None) and the raw on-media align (``raw_align``)."""

    rc: int
    sb: Optional[InfoBlock]
    #: the check of MN §4 / later-eras-nvdimm.md §12 that decided: 1-14, or "9a" "9b" "9c"
    #: "13a" "13b" "13c" for the checks later releases added
    check: Union[int, str]
    message: Optional[str] = None
    #: the on-media ``align`` field after the compat defaults of #7 (0 for a minor < 2 block),
    #: *before* the #9 substitution by 2^ilog2(dataoff): what ``alloc_dax_region`` uses (MN §5.2).
    raw_align: int = 0


def nd_pfn_validate(data: Optional[bytes], sig: bytes, *, ns_start: int, ns_size: int, ns_uuid: bytes,
                    ns_name: str = "namespace0.0", region_is_pmem: bool = True, init: Optional[dict] = None,
                    read_error: bool = False, model=None, default_align: int = DEFAULT_ALIGN) -> ValidateResult:
    """``nd_pfn_validate`` (MN §4; later releases: later-eras-nvdimm.md §12), checks in the
    kernel's order; never raises on bad media.

    ``data``: the 4096 bytes at namespace offset 4096 (None = no buffer/namespace, check #1).
    ``init``: None for the probe path (settings adopted from media, #10a), else a dict with the
    configured ``uuid`` (16 bytes), ``align`` and ``mode`` (#10b, #10c).
    ``model``: the booted release's :class:`~sparsemem.kernel.KernelModel` (None: the v5.3
    rules): from v5.4 checks 9a-9c (``pfn_validate_v14``, R2), from v5.7 -EOPNOTSUPP for
    10c-13 (``pfn_validate_eopnotsupp``) and 13a/13b (``compat_align``, R8), from v6.6 13c
    (``pfn_init_zero_capacity_refused``, R22).  ``default_align``: ``nd_pfn->align`` of a
    probe-path device (the default 2 MiB), printed first by 9c.
    Check #14 (bad-block clearing) is a no-op: the simulation keeps no bad-block list.
    """
    v14 = model is not None and model.pfn_validate_v14
    opnotsupp = model is not None and model.pfn_validate_eopnotsupp
    compat = model.compat_align if model is not None else 0
    small = model is not None and model.pfn_init_zero_capacity_refused
    if data is None:
        return ValidateResult(-errno.ENODEV, None, 1)
    if not region_is_pmem:
        return ValidateResult(-errno.ENODEV, None, 2)
    if read_error or len(data) != INFO_BLOCK_SIZE:
        return ValidateResult(-errno.ENXIO, None, 3)
    raw = bytes(data)
    if raw[:16] != sig:
        return ValidateResult(-errno.ENODEV, None, 4)
    stored = int.from_bytes(raw[CHECKSUM_OFFSET:INFO_BLOCK_SIZE], "little")
    if sb_checksum(raw) != stored:
        return ValidateResult(-errno.ENODEV, None, 5)
    sb = InfoBlock.unpack(raw, verify=False)
    if sb.parent_uuid != bytes(ns_uuid):
        return ValidateResult(-errno.ENODEV, sb, 6)
    # #7 (apply_compat_defaults; the minor < 4 page fields are what 5.4+ assumes, #7b, and
    # nothing before 5.4 reads them)
    sb = _compat_defaults_valid(sb)
    if sb.mode not in (PFN_MODE_RAM, PFN_MODE_PMEM):
        return ValidateResult(-errno.ENXIO, sb, 8)
    raw_align = sb.align                                             # #9
    align = raw_align
    if align == 0:
        align = 1 << (sb.dataoff.bit_length() - 1) if sb.dataoff else 0
    # the kernel keeps this in nd_pfn->align, an unsigned long: 2^ilog2(dataoff) may exceed the
    # u32 on-media field (dataoff >= 4 GiB), so it is set on the in-memory copy without the
    # field-width check (this copy is never packed back to media)
    sb = _copy_valid(sb)
    sb.align = align
    if v14:                                                          # 9a-9c (v5.4, R2)
        if sb.mode == PFN_MODE_PMEM and sb.page_size > C.PAGE_SIZE:
            return ValidateResult(-errno.EOPNOTSUPP, sb, "9a", f"init failed, page size mismatch {sb.page_size}",
                                  raw_align)
        if sb.mode == PFN_MODE_PMEM and sb.page_struct_size < STRUCT_PAGE_SIZE:
            return ValidateResult(-errno.EOPNOTSUPP, sb, "9b",
                                  f"init failed, struct page size mismatch {sb.page_struct_size}", raw_align)
        if align not in SUPPORTED_ALIGNMENTS and raw[:16] == DAX_SIG:
            nd_align = default_align if init is None else init["align"]
            return ValidateResult(-errno.EOPNOTSUPP, sb, "9c", f"init failed, alignment mismatch: {nd_align}:{align}",
                                  raw_align)
    if init is not None:
        if sb.uuid != bytes(init["uuid"]):
            return ValidateResult(-errno.ENODEV, sb, 10, raw_align=raw_align)
        if init["align"] != align or init["mode"] != sb.mode:
            return ValidateResult(-errno.EOPNOTSUPP if opnotsupp else -errno.EINVAL, sb, 10,
                                  "init failed, settings mismatch", raw_align)
    if align > ns_size:
        return ValidateResult(-errno.EOPNOTSUPP if opnotsupp else -errno.EINVAL, sb, 11,
                              f"alignment: {align:x} exceeds capacity {ns_size:x}", raw_align)
    if sb.dataoff >= ns_size:
        return ValidateResult(-errno.EOPNOTSUPP if opnotsupp else -errno.EBUSY, sb, 12,
                              f"pfn array size exceeds capacity of {ns_name}", raw_align)
    if (align and (ns_start + sb.dataoff + sb.start_pad) % align) or sb.dataoff % SZ_4K:
        return ValidateResult(-errno.EOPNOTSUPP if opnotsupp else -errno.ENXIO, sb, 13,
                              f"bad offset: {sb.dataoff:#x} dax disabled align: {align:#x}", raw_align)
    if compat:                                                       # 13a, 13b (v5.7, R8)
        if (ns_start + sb.start_pad) % compat:
            return ValidateResult(-errno.EOPNOTSUPP, sb, "13a", "resource start misaligned", raw_align)
        if (ns_start + ns_size - sb.end_trunc) % compat:
            return ValidateResult(-errno.EOPNOTSUPP, sb, "13b", "resource end misaligned", raw_align)
    # 13c (v6.6, R22): res_size - start_pad - end_trunc in unsigned arithmetic
    if small and sb.dataoff >= (ns_size - sb.start_pad - sb.end_trunc) & U64:
        return ValidateResult(-errno.EOPNOTSUPP, sb, "13c", "bad offset with small namespace", raw_align)
    return ValidateResult(0, sb, 14, raw_align=raw_align)


@dataclass
class SetupResult:
    """``__nvdimm_setup_pfn`` output (MN §5): the pgmap range ``[start, end]`` (inclusive),
    altmap fields (or None for RAM mode), npfns, and the optional dev_info line."""

    start: int
    end: int
    altmap: Optional[tuple[int, int, int]]  # (base_pfn, reserve, free)
    npfns: int
    message: Optional[str] = None

    @property
    def size(self) -> int:
        return self.end - self.start + 1


def nvdimm_setup_pfn(model, sb: InfoBlock, ns_start: int, ns_size: int) -> tuple[int, Optional[SetupResult], str]:
    """``__nvdimm_setup_pfn`` (MN §5): ``(0, SetupResult, "")`` or ``(-errno, None, why)``.

    altmap base_pfn: v5.1/v5.2 section-aligned (``SEC_DN(PFN(base))``), v5.3 2 MiB-aligned
    (``ADN(PFN(base), 512)``); reserve = 2 + head; free = PFN(dataoff - 8 KiB).
    """
    sp, et, off = sb.start_pad, sb.end_trunc, sb.dataoff
    start = ns_start + sp
    end = ns_start + ns_size - 1 - et
    if end < start:
        return -errno.ENXIO, None, f"start_pad {sp:#x} + end_trunc {et:#x} exceed the namespace size {ns_size:#x}"
    base_pfn0 = C.PHYS_PFN(start)
    rlen = end - start + 1
    if sb.mode == PFN_MODE_RAM:
        if off < SZ_8K:
            return -errno.EINVAL, None, f"RAM mode dataoff {off:#x} < 8 KiB"
        return 0, SetupResult(start, end, None, sb.npfns), ""
    if sb.mode != PFN_MODE_PMEM:
        return -errno.ENXIO, None, f"pfn mode {sb.mode} is neither ram nor pmem"
    # u64 arithmetic as in the kernel (MN §5): range_len < dataoff wraps npfns to a huge value
    # (so no "number of pfns truncated" line), and dataoff < 8 KiB wraps ``free`` -- the
    # altmap then fails __add_pages' check ("memory add fail, invalid altmap", -EINVAL, §6.2).
    if model.memremap_expands_to_sections:
        base_pfn = adn(base_pfn0, C.PAGES_PER_SECTION)
        npfns = aup(_phys_pfn_u64(rlen - off), C.PAGES_PER_SECTION) & U64
    else:
        base_pfn = adn(base_pfn0, C.PAGES_PER_SUBSECTION)
        npfns = _phys_pfn_u64(rlen - off)
    reserve = 2 + (base_pfn0 - base_pfn)
    free = _phys_pfn_u64(off - SZ_8K)
    msg = None
    if sb.npfns > npfns:
        msg = f"number of pfns truncated from {sb.npfns} to {npfns}"
    return 0, SetupResult(start, end, (base_pfn, reserve, free), npfns, msg), ""


def new_block(model, sig: bytes, uuid: bytes, parent_uuid: bytes, layout: PfnLayout, mode: int,
              align: int) -> InfoBlock:
    """The block ``nd_pfn_init`` fills (MN §3.1 step 8 / §3.2 step 9; from v5.4 version 1.4 with
    ``page_size`` 4096 and ``page_struct_size`` = MAX_STRUCT_PAGE_SIZE, later-eras-nvdimm.md §11.1,
    §11.4: 128 in v6.1.0-v6.1.11, also for map=mem blocks)."""
    psz = model.max_struct_page_size if model.infoblock_minor >= 4 else None
    return InfoBlock.new(sig, uuid, parent_uuid, dataoff=layout.dataoff, npfns=layout.npfns, mode=mode,
                         start_pad=layout.start_pad, end_trunc=layout.end_trunc, align=align,
                         version_minor=model.infoblock_minor, page_struct_size=psz)


def new_block_bytes(model, sig: bytes, uuid: bytes, parent_uuid: bytes, layout: PfnLayout, mode: int,
                    align: int) -> tuple[InfoBlock, bytes]:
    """:func:`new_block` and the bytes ``nd_pfn_init`` writes (``block.pack()``), summed once."""
    sb = new_block(model, sig, uuid, parent_uuid, layout, mode, align)
    return sb, sb._packed()


__all__ += ["nd_region_conflict", "new_block", "new_block_bytes", "PFN_SIG", "DAX_SIG", "INFO_BLOCK_OFFSET",
            "INFO_BLOCK_RESERVE", "PFN_MODE_NONE", "PFN_MODE_RAM", "PFN_MODE_PMEM"]
