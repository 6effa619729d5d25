"""``drivers/dax/kmem.c``: a dax device's memory hot-added as System RAM, per release.

``kmem_probe`` / ``kmem_remove`` are ``dev_dax_kmem_probe`` / ``dev_dax_kmem_remove`` over a
dax device (:class:`sparsemem.dax.DaxDevice`: ``name``, ``ranges``, ``target_node``,
``memmap_on_memory`` and the driver data ``kmem_res`` / ``kmem_group``).  They return 0 or a
negative errno, as the kernel's probe does, and log the driver's ``dev_*`` lines prefixed
``kmem daxX.Y:`` (kmem.md K §3).  The behaviour is kmem.md K §5 (K §5.1 v5.1-v5.9 on the
region, K §5.2 v5.10+ per range, K §5.3 memory groups, K §5.5 hot-remove, K §5.6
memmap_on_memory), with the corrections of docs/spec/kmem-evidence.md; the switches are
:attr:`~sparsemem.kernel.KernelModel.kmem_hot_remove`, ``kmem_driver_managed``,
``kmem_per_range``, ``kmem_memory_group`` and ``kmem_memmap_on_memory``.
"""

from __future__ import annotations

import errno
from typing import Any, Optional

from . import constants as C
from . import hotplug as H
from ._common import U64, hexfmt
from .errors import KernelBug, KernelError
from .resource import IORESOURCE_SYSTEM_RAM

__all__ = ["KMEM_RESOURCE_NAME", "kmem_range", "region_kmem_range", "kmem_probe", "kmem_remove"]

#: the resource name of kmem's memory from v5.8 (``kmem_name``; before: "System RAM")
KMEM_RESOURCE_NAME = "System RAM (kmem)"


def _pa(v: int) -> str:
    """``%pa`` of a ``phys_addr_t``: ``0x`` and 16 zero-padded hex digits."""
    return f"0x{v & U64:016x}"


def _pR(start: int, end: int) -> str:
    """``%pR`` of a plain memory resource: ``[mem 0x...-0x...]`` (at least 8 hex digits)."""
    return f"[mem {start:#010x}-{end:#010x}]"


def kmem_range(start: int, size: int, block_size: int) -> Optional[tuple[int, int]]:
    """``dax_kmem_range`` (kmem.c 5.10.44 .. 6.12.0): the memory-block aligned part
    ``[ALIGN(s, B), ALIGN_DOWN(e + 1, B) - 1]`` (inclusive, computed in u64) of the range
    ``[start, start + size)``, or None when ``start >= end`` ("too small after alignment")."""
    s, e = start, start + size - 1
    bs = block_size
    a = (-(-s // bs) * bs) & U64
    b = (((e + 1) // bs * bs) - 1) & U64
    if a >= b:
        return None
    return a, b


def region_kmem_range(start: int, size: int, block_size: int) -> tuple[int, int]:
    """``(kmem_start, kmem_size)`` of the v5.1-v5.9 probe (K §5.1 step 2): ``ALIGN`` the start,
    take off the head and round the size down to whole blocks, all in unsigned 64-bit (a
    region with no full block wraps, or gives 0)."""
    bs = block_size
    kstart = (-(-start // bs) * bs) & U64
    ksize = (size - (kstart - start)) & U64
    ksize &= ~(bs - 1) & U64
    return kstart, ksize


def _log(m, dev, text: str, level: str) -> None:
    m.log(f"kmem {dev.name}: {text}", level)


def _request(m, start: int, size: int, name: str):
    """``request_mem_region(start, size, name)``: the busy resource, or None when it cannot be
    had (empty or wrapped range, beyond ``iomem_resource``'s end, or a conflict)."""
    end = start + size - 1
    phys_bits = getattr(m, "phys_bits", m.sections.max_physmem_bits)
    if size == 0 or end > U64 or end > (1 << phys_bits) - 1:
        return None
    try:
        return m.iomem.request(start, size, name)
    except (KernelError, ValueError):
        return None


def _hot_add(m, nid: int, start: int, size: int, flags: int) -> None:
    """The hot-add of one kmem range (K §5.1 step 5): ``add_memory`` before v5.8,
    ``add_memory_driver_managed(..., "System RAM (kmem)", flags)`` after."""
    if m.model.kmem_driver_managed:
        H.add_memory_driver_managed(m, nid, start, size, KMEM_RESOURCE_NAME, flags)
    else:
        H.add_memory(m, nid, start, size)


def _mhp_flags(m, dev) -> int:
    """``MHP_MEMMAP_ON_MEMORY`` when kmem passes it (6.8+, ``dev_dax->memmap_on_memory``, K §5.6)."""
    if m.model.kmem_memmap_on_memory and dev.memmap_on_memory:
        return H.MHP_MEMMAP_ON_MEMORY
    return 0


def kmem_probe(m, dev) -> int:
    """``dev_dax_kmem_probe`` (K §5.1-§5.3, §5.6): 0 with the device's memory hot-added (its
    resources in ``dev.kmem_res``), or a negative errno with what the release leaves behind
    (v5.1/v5.2 keep the ``daxX.Y`` resource after a failed hot-add: kmem.c 5.2.1 returns
    without releasing it; later releases release it)."""
    if m.model.kmem_per_range:
        return _probe_ranges(m, dev)
    return _probe_region(m, dev)


def _probe_region(m, dev) -> int:
    """v5.1-v5.9: one kmem range over the dax region (K §5.1)."""
    start, size = dev.ranges[0]
    nid = dev.target_node
    if nid < 0:
        _log(m, dev, f"rejecting DAX region {_pR(start, start + size - 1)} with invalid node: {nid}", "warning")
        return -errno.EINVAL
    kstart, ksize = region_kmem_range(start, size, m.memory_block_size)
    res = _request(m, kstart, ksize, dev.name)
    if res is None:
        _log(m, dev, f"could not reserve region [{_pa(kstart)}-{_pa(kstart + ksize)}]", "warning")
        return -errno.EBUSY
    res.flags = IORESOURCE_SYSTEM_RAM       # System RAM, not busy: the RAM resource nests in it
    try:
        _hot_add(m, nid, kstart, ksize, 0)
    except KernelError as exc:
        if m.model.kmem_hot_remove:
            m.iomem.release(res)
        else:
            dev.kmem_leaked.append(res)     # 5.1/5.2: "return rc" without release_resource
        return -exc.errno
    dev.kmem_res = [res]
    return 0


def _probe_ranges(m, dev) -> int:
    """v5.10+: per range (K §5.2), with the v5.15 memory group (K §5.3)."""
    nid = dev.target_node
    if nid < 0:
        _log(m, dev, f"rejecting DAX region with invalid node: {nid}", "warning")
        return -errno.EINVAL
    bs = m.memory_block_size
    aligned = [kmem_range(s, n, bs) for s, n in dev.ranges]
    group: Optional[dict[str, Any]] = None
    grouped = m.model.kmem_memory_group
    if grouped:
        total = 0
        for i, (r, (s, n)) in enumerate(zip(aligned, dev.ranges)):
            if r is None:
                _log(m, dev, f"mapping{i}: {hexfmt(s)}-{hexfmt(s + n - 1)} too small after alignment", "info")
                continue
            total += r[1] - r[0] + 1
        if not total:
            _log(m, dev, "rejecting DAX region without any memory after alignment", "warning")
            return -errno.EINVAL
        # memory_group_register_static(numa_node, total_len): 5.15-6.3 pass the byte count
        # where the field means pages; 6.4 PFN_UP(total_len) (K §5.3)
        max_pages = total if grouped == "bytes" else -(-total >> C.PAGE_SHIFT)
        if not H.node_possible(m, nid):
            return -errno.EINVAL              # memory_group_register: no message
        bus = m.dax
        group = {"id": bus.next_memory_group_id(), "nid": nid, "max_pages": max_pages, "total_bytes": total}
    res_list: list = [None] * len(dev.ranges)
    flags = _mhp_flags(m, dev)
    mapped = 0
    for i, r in enumerate(aligned):
        s, n = dev.ranges[i]
        if r is None:
            if not grouped:
                _log(m, dev, f"mapping{i}: {hexfmt(s)}-{hexfmt(s + n - 1)} too small after alignment", "info")
            continue
        a, b = r
        res = _request(m, a, b - a + 1, dev.name)
        if res is None:
            _log(m, dev, f"mapping{i}: {hexfmt(a)}-{hexfmt(b)} could not reserve region", "warning")
            if mapped:
                continue
            return _unwind(m, group, -errno.EBUSY)
        res.flags = IORESOURCE_SYSTEM_RAM
        try:
            _hot_add(m, nid, a, b - a + 1, flags)
        except KernelError as exc:
            _log(m, dev, f"mapping{i}: {hexfmt(a)}-{hexfmt(b)} memory add failed", "warning")
            m.iomem.release(res)
            if mapped:
                continue
            return _unwind(m, group, -exc.errno)
        res_list[i] = res
        mapped += 1
    # success even when every range was too small (5.10-5.14: nothing added, K §5.2)
    dev.kmem_res = res_list
    dev.kmem_group = group
    if group is not None:
        m.dax.memory_groups[group["id"]] = group
    return 0


def _unwind(m, group, rc: int) -> int:
    """The probe's error path: ``memory_group_unregister`` (the id goes back to the xarray)."""
    if group is not None:
        m.dax.release_memory_group_id(group["id"])
    return rc


def kmem_remove(m, dev) -> None:
    """``dev_dax_kmem_remove`` (K §5.5): the driver core ignores its result, so the unbind
    always completes.  Before v5.3 nothing is removed (the resources leak for the boot).  5.3-5.9:
    ``remove_memory`` of the one range; failure (an online block) -> dev_err "DAX region %pR
    cannot be hotremoved until the next reboot" and the resources stay.  5.10+: per added
    range, failure -> "mapping%d: %#llx-%#llx cannot be hotremoved until the next reboot";
    the memory group goes only when every range was removed."""
    res_list, dev.kmem_res = dev.kmem_res, []
    if not m.model.kmem_hot_remove:
        dev.kmem_leaked.extend(r for r in res_list if r is not None)
        return
    nid = dev.target_node
    if not m.model.kmem_per_range:
        (res,) = res_list
        try:
            H.remove_memory(m, nid, res.start, res.size)
        except KernelError:
            _log(m, dev, f"DAX region {_pR(res.start, res.end)} cannot be hotremoved until the next reboot", "err")
            dev.kmem_leaked.append(res)
            return
        m.iomem.release(res)
        return
    bs = m.memory_block_size
    success = 0
    for i, (s, n) in enumerate(dev.ranges):
        r = kmem_range(s, n, bs)
        if r is None:
            continue
        a, b = r
        try:
            H.remove_memory(m, nid, a, b - a + 1)
        except KernelError:
            _log(m, dev, f"mapping{i}: {hexfmt(a)}-{hexfmt(b)} cannot be hotremoved until the next reboot", "err")
            if res_list[i] is not None:
                dev.kmem_leaked.append(res_list[i])
            continue
        if res_list[i] is None:
            # a range whose add failed after an earlier one was mapped: remove_resource(NULL)
            raise KernelBug(f"kmem {dev.name}: mapping{i} was never added; dev_dax_kmem_remove releases "
                            f"data->res[{i}] = NULL")
        m.iomem.release(res_list[i])
        success += 1
    group = dev.kmem_group
    if group is not None and success >= len(dev.ranges):
        m.dax.memory_groups.pop(group["id"], None)
        m.dax.release_memory_group_id(group["id"])
        dev.kmem_group = None
