"""``arch/x86/kernel/e820.c``: e820 types, the table sanitizer and the iomem resources the
table becomes (``e820__update_table``, ``e820__reserve_resources``).  Details: docs/iomem.md
"Input formats".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ._common import U64
from .errors import KernelBug
from .resource import (
    IORES_DESC_ACPI_NV_STORAGE,
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_NONE,
    IORES_DESC_PERSISTENT_MEMORY,
    IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    IORES_DESC_RESERVED,
    IORES_DESC_SOFT_RESERVED,
    IORESOURCE_BUSY,
    IORESOURCE_MEM,
    IORESOURCE_SYSTEM_RAM,
    RESOURCE_MAX,
    Resource,
    ResourceTree,
)

__all__ = [
    "E820_TYPE_RAM", "E820_TYPE_RESERVED", "E820_TYPE_ACPI", "E820_TYPE_NVS", "E820_TYPE_UNUSABLE",
    "E820_TYPE_PMEM", "E820_TYPE_PRAM", "E820_TYPE_SOFT_RESERVED", "E820_TYPE_RESERVED_KERN",
    "E820Entry", "e820__update_table", "e820__reserve_resources", "e820_type_to_string",
    "e820_print_type", "e820_type_to_iomem_type", "e820_type_to_iores_desc", "do_mark_busy",
]

# arch/x86/include/asm/e820/types.h
E820_TYPE_RAM = 1
E820_TYPE_RESERVED = 2
E820_TYPE_ACPI = 3
E820_TYPE_NVS = 4
E820_TYPE_UNUSABLE = 5
E820_TYPE_PMEM = 7
E820_TYPE_PRAM = 12
E820_TYPE_SOFT_RESERVED = 0xEFFFFFFF
E820_TYPE_RESERVED_KERN = 128


@dataclass(frozen=True)
class E820Entry:
    """One ``struct e820_entry``: ``addr``, ``size`` (bytes) and ``type``."""

    addr: int
    size: int
    type: int

    @property
    def end(self) -> int:
        """Inclusive end, as dmesg prints it."""
        return self.addr + self.size - 1

    @property
    def name(self) -> str:
        return e820_type_to_string(self.type)

    def __str__(self) -> str:
        return f"[mem {self.addr:#018x}-{self.end:#018x}] {e820_print_type(self.type)}"


def e820_type_to_string(type_: int) -> str:
    """The ``/proc/iomem`` name of an e820 type (``e820_type_to_string``)."""
    return {
        E820_TYPE_RESERVED_KERN: "System RAM",
        E820_TYPE_RAM: "System RAM",
        E820_TYPE_ACPI: "ACPI Tables",
        E820_TYPE_NVS: "ACPI Non-volatile Storage",
        E820_TYPE_UNUSABLE: "Unusable memory",
        E820_TYPE_PRAM: "Persistent Memory (legacy)",
        E820_TYPE_PMEM: "Persistent Memory",
        E820_TYPE_RESERVED: "Reserved",
        E820_TYPE_SOFT_RESERVED: "Soft Reserved",
    }.get(type_, "Unknown E820 type")


def e820_print_type(type_: int) -> str:
    """The dmesg wording of an e820 type (``e820_print_type``)."""
    if type_ in (E820_TYPE_RAM, E820_TYPE_RESERVED_KERN):
        return "usable"
    return {
        E820_TYPE_RESERVED: "reserved",
        E820_TYPE_SOFT_RESERVED: "soft reserved",
        E820_TYPE_ACPI: "ACPI data",
        E820_TYPE_NVS: "ACPI NVS",
        E820_TYPE_UNUSABLE: "unusable",
        E820_TYPE_PMEM: "persistent (type 7)",
        E820_TYPE_PRAM: "persistent (type 12)",
    }.get(type_, f"type {type_}")


def e820_type_to_iomem_type(type_: int) -> int:
    if type_ in (E820_TYPE_RAM, E820_TYPE_RESERVED_KERN):
        return IORESOURCE_SYSTEM_RAM
    return IORESOURCE_MEM


_E820_IORES_DESC = {
    E820_TYPE_ACPI: IORES_DESC_ACPI_TABLES,
    E820_TYPE_NVS: IORES_DESC_ACPI_NV_STORAGE,
    E820_TYPE_PMEM: IORES_DESC_PERSISTENT_MEMORY,
    E820_TYPE_PRAM: IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    E820_TYPE_RESERVED: IORES_DESC_RESERVED,
    E820_TYPE_SOFT_RESERVED: IORES_DESC_SOFT_RESERVED,
}


def e820_type_to_iores_desc(type_: int) -> int:
    return _E820_IORES_DESC.get(type_, IORES_DESC_NONE)


def do_mark_busy(type_: int, start: int) -> bool:
    """Busy unless Reserved / soft-reserved / persistent memory above the first MiB."""
    if start < (1 << 20):
        return True  # legacy BIOS/DOS rom-shadow and MMIO
    return type_ not in (E820_TYPE_RESERVED, E820_TYPE_SOFT_RESERVED, E820_TYPE_PRAM, E820_TYPE_PMEM)


#: e820__update_table does not merge adjacent ranges of these types (they can mark distinct
#: platform ranges, such as one nvdimm region each).
_E820_NOMERGE = (E820_TYPE_PRAM, E820_TYPE_SOFT_RESERVED)


def e820__update_table(entries) -> list[E820Entry]:
    """The kernel's e820 sanitizer (``e820__update_table``, formerly ``sanitize_e820_table``).

    Overlapping ranges are resolved in favour of the highest type number, zero-sized entries
    dropped, adjacent ranges of one type merged (but not type 12 "persistent (type 12)" nor
    soft-reserved ranges, each of which stays an entry of its own), and the result sorted.
    Fewer than two entries are returned unchanged, as in the kernel.
    """
    entries = list(entries)
    if len(entries) < 2:
        return entries
    points = []
    for i, e in enumerate(entries):
        if e.size:
            points.append((e.addr, 0, i))  # starts sort before ends at one address
            points.append((e.addr + e.size, 1, i))
    points.sort(key=lambda p: (p[0], p[1]))
    overlap: list[int] = []
    new: list[E820Entry] = []
    last_type = 0
    last_addr = 0
    for addr, is_end, i in points:
        if is_end:
            overlap.remove(i)
        else:
            overlap.append(i)
        current_type = max((entries[j].type for j in overlap), default=0)
        if current_type != last_type or current_type in _E820_NOMERGE:
            if last_type != 0 and addr - last_addr:
                new.append(E820Entry(last_addr, addr - last_addr, last_type))
            if current_type != 0:
                last_addr = addr
            last_type = current_type
    return new


def e820__reserve_resources(tree: ResourceTree, table) -> list[Resource]:
    """Register one top-level resource per e820 entry, as ``e820__reserve_resources`` (the
    busy ones, ``insert_resource``) and ``e820__reserve_resources_late`` (the others,
    ``insert_resource_expand_to_fit``) do; returns the resources in table order."""
    made = []
    for e in table:
        if e.size == 0 or e.end > RESOURCE_MAX:
            continue
        flags = e820_type_to_iomem_type(e.type)
        if do_mark_busy(e.type, e.addr):
            flags |= IORESOURCE_BUSY
        made.append(Resource(e.addr, e.end, e820_type_to_string(e.type), flags, e820_type_to_iores_desc(e.type)))
    for res in made:
        if res.busy:
            tree.insert_resource(res)
    for res in made:
        if not res.busy and res.parent is None:
            tree.insert_resource_expand_to_fit(res)
    return made


def _e820_change(entries, start: int, size: int, old_type: int, check_type: bool, new_type: Optional[int]):
    """The loop shared by ``__e820__range_update`` (``new_type`` set) and
    ``e820__range_remove`` (``new_type`` None) of arch/x86/kernel/e820.c (same in v5.3 and v6.8):
    walk the table in order, including entries appended during the walk; an entry of
    ``old_type`` (any type for a remove without ``check_type``) that lies inside ``[start,
    start + size)`` is retyped / dropped whole, one that contains the range is split into head,
    (retyped) middle and tail, one that overlaps it partly is cut and the overlap retyped /
    dropped.  Returns ``(table, bytes changed)``; entries the kernel zeroes are left out (the
    sanitizer that follows drops them anyway)."""
    if size > U64 - start:
        size = U64 - start
    end = start + size
    table = [[e.addr, e.size, e.type] for e in entries]
    changed = 0
    i = 0
    while i < len(table):
        entry = table[i]
        i += 1
        addr, esize, etype = entry
        if esize == 0 or (check_type and etype != old_type):
            continue
        entry_end = addr + esize
        if addr >= start and entry_end <= end:  # completely covered
            changed += esize
            if new_type is None:
                entry[1] = 0
            else:
                entry[2] = new_type
            continue
        if addr < start and entry_end > end:  # the range is inside this entry
            if new_type is not None:
                table.append([start, size, new_type])
            table.append([end, entry_end - end, etype])
            entry[1] = start - addr
            changed += size
            continue
        lo, hi = max(start, addr), min(end, entry_end)  # partly covered
        if lo >= hi:
            continue
        if new_type is not None:
            table.append([lo, hi - lo, new_type])
        changed += hi - lo
        entry[1] -= hi - lo
        if addr >= lo:  # the head was cut: what is left starts after the overlap
            entry[0] = hi
    return [E820Entry(a, s, t) for a, s, t in table if s], changed


def e820__range_update(entries, start: int, size: int, old_type: int, new_type: int):
    """``e820__range_update``: give the parts of ``[start, start + size)`` that are of
    ``old_type`` the type ``new_type`` (dmesg: ``e820: update [mem START-END] OLD ==> NEW``).

    Returns ``(table, bytes updated)``, unsanitized as the kernel leaves it (callers run
    :func:`e820__update_table` next).  ``old_type == new_type`` is a ``BUG_ON`` in the kernel:
    :class:`~sparsemem.errors.KernelBug`.  The setup_data updates of v5.3..v6.9 retype RAM to
    ``E820_TYPE_RESERVED_KERN``, which dmesg prints ``usable ==> usable``.
    """
    if old_type == new_type:
        raise KernelBug(f"e820__range_update: old type {old_type} == new type {new_type} (BUG_ON)")
    return _e820_change(entries, start, size, old_type, True, new_type)


def e820__range_remove(entries, start: int, size: int, old_type: int = 0, check_type: bool = True):
    """``e820__range_remove``: drop the parts of ``[start, start + size)`` that are of
    ``old_type`` (of any type when ``check_type`` is false; dmesg then prints no type after
    ``e820: remove [mem START-END]``).  Returns ``(table, bytes removed)``, unsanitized."""
    return _e820_change(entries, start, size, old_type, check_type, None)


__all__ += ["e820__range_update", "e820__range_remove"]
