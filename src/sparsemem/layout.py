"""The layout text parsers: ``/proc/iomem`` lines and dmesg e820 tables into a
:class:`~sparsemem.resource.ResourceTree` (:func:`parse`, :func:`parse_file`), and the flags a
parsed ``/proc/iomem`` name gets (:func:`iomem_flags_for_name`).  Details: docs/iomem.md
"Input formats" and "Flags of parsed /proc/iomem lines".
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple, Optional

from .e820 import (
    E820_TYPE_ACPI,
    E820_TYPE_NVS,
    E820_TYPE_PMEM,
    E820_TYPE_PRAM,
    E820_TYPE_RAM,
    E820_TYPE_RESERVED,
    E820_TYPE_SOFT_RESERVED,
    E820_TYPE_UNUSABLE,
    E820Entry,
    do_mark_busy,
    e820__reserve_resources,
    e820__update_table,
    e820_type_to_iomem_type,
    e820_type_to_iores_desc,
)
from .resource import (
    IORES_DESC_CRASH_KERNEL,
    IORES_DESC_NONE,
    IORESOURCE_BUSY,
    IORESOURCE_MEM,
    IORESOURCE_SYSRAM,
    IORESOURCE_SYSTEM_RAM,
    KERNEL_IMAGE,
    MAX_IORES_LEVEL,
    RESOURCE_MAX,
    Resource,
    ResourceTree,
    _mem,
    _request_resource,
    _resource,
)

__all__ = ["MAX_PARSE_DEPTH", "MAX_PARSE_LINES", "UNPRIVILEGED_MESSAGE", "ParsedLayout",
           "iomem_flags_for_name", "parse", "parse_file"]

#: Deepest nesting :func:`parse` accepts.  A real /proc/iomem never indents more than
#: MAX_IORES_LEVEL levels; the cap keeps deepcopy/pickle of the tree (recursive) far from
#: Python's recursion limit.
MAX_PARSE_DEPTH = 32
#: Most resource / e820 lines :func:`parse` accepts (a large server shows a few thousand;
#: the kernel's e820 table holds at most 3200 entries).  Beyond it parsing stops at once with
#: a ValueError naming the line, instead of building millions of Resource objects.
MAX_PARSE_LINES = 1 << 16


# ---------------------------------------------------------------------------------------------
# flags of /proc/iomem names

_E820_NAME_TYPE = {
    "System RAM": E820_TYPE_RAM,
    "Reserved": E820_TYPE_RESERVED,
    "ACPI Tables": E820_TYPE_ACPI,
    "ACPI Non-volatile Storage": E820_TYPE_NVS,
    "Unusable memory": E820_TYPE_UNUSABLE,
    "Persistent Memory": E820_TYPE_PMEM,
    "Persistent Memory (legacy)": E820_TYPE_PRAM,
    "Soft Reserved": E820_TYPE_SOFT_RESERVED,
    "Unknown E820 type": 0,
}
_PCI_FUNCTION_RE = re.compile(r"^[0-9a-f]{4,}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")


def _iomem_flags(name: str, start: int, parent_desc: int) -> tuple[int, int]:
    """:func:`iomem_flags_for_name`, remembered: the answer depends on ``name``, on whether
    ``start`` is below 1 MiB (``do_mark_busy``) and on ``parent_desc`` (a namespace) only."""
    key = (name, start < _LOW_1M, parent_desc)
    got = _FLAGS_SEEN.get(key)
    if got is None:
        if len(_FLAGS_SEEN) >= 4096:
            _FLAGS_SEEN.clear()
        got = _FLAGS_SEEN[key] = iomem_flags_for_name(name, start, parent_desc)
    return got


_LOW_1M = 1 << 20
_FLAGS_SEEN: dict[tuple[str, bool, int], tuple[int, int]] = {}


def iomem_flags_for_name(name: str, start: int, parent_desc: int = IORES_DESC_NONE) -> tuple[int, int]:
    """``(flags, desc)`` that the kernel code registering a resource called ``name`` at
    ``start`` gives it (see the module docstring for the table)."""
    if name in _E820_NAME_TYPE and not name.startswith("System RAM"):
        t = _E820_NAME_TYPE[name]
        flags = e820_type_to_iomem_type(t)
        if do_mark_busy(t, start):
            flags |= IORESOURCE_BUSY
        return flags, e820_type_to_iores_desc(t)
    if name.startswith("System RAM") or name in KERNEL_IMAGE:
        return IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_NONE
    if name == "Crash kernel":
        return IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_CRASH_KERNEL
    if name.startswith("PCI Bus ") or _PCI_FUNCTION_RE.match(name):
        return IORESOURCE_MEM, IORES_DESC_NONE
    if name.startswith("namespace"):
        return IORESOURCE_MEM | IORESOURCE_BUSY, parent_desc
    return IORESOURCE_MEM | IORESOURCE_BUSY, IORES_DESC_NONE


# ---------------------------------------------------------------------------------------------
# parsing


class ParsedLayout(ResourceTree):
    """What :func:`parse` returns: the resource tree (this object *is* a
    :class:`ResourceTree`) plus what else the file said.

    Attributes:
        format: ``"iomem"``, ``"e820"`` or ``None`` (no layout lines, e.g. only observations).
        source: the URL of the ``# source:`` line, or ``None``.
        observations: the text of each ``# observed:`` line, in order.
        e820_tables: every e820 table in the file as printed, by label
            (``"BIOS-e820"``, ``"user"``, ...), entries in file order.
        e820_table: the sanitized table the tree was built from (``format == "e820"``), or
            ``None``.
        filename: the file name given to :func:`parse_file`, or ``None``.

    ``==`` compares the trees only (see :meth:`ResourceTree.__eq__`).
    """

    def __init__(self, dmesg: Optional[list] = None):
        super().__init__(dmesg)
        self.format: Optional[str] = None
        self.source: Optional[str] = None
        self.observations: list[str] = []
        self.e820_tables: dict[str, list[E820Entry]] = {}
        self.e820_table: Optional[list[E820Entry]] = None
        self.filename: Optional[str] = None

    @property
    def tree(self) -> ResourceTree:
        """The tree itself (for symmetry with code that expects ``parsed.tree``)."""
        return self


_IOMEM_RE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<start>[0-9a-fA-F]+)-(?P<end>[0-9a-fA-F]+)[ \t]*:(?:[ \t]*(?P<name>.*))?$"
)
_E820_RE = re.compile(
    r"^(?:.*?kernel:\s*)?"  # syslog "Nov 16 11:16:53 host kernel: "
    r"(?:\[\s*\d+\.\d+\]\s*)?"  # dmesg timestamp
    r"(?:e820:\s*)?"
    r"(?P<who>[A-Za-z][\w-]*): \[mem (?P<start>0x[0-9a-fA-F]+)-(?P<end>0x[0-9a-fA-F]+)\]\s+"
    r"(?P<type>usable|reserved|soft reserved|ACPI data|ACPI NVS|unusable"
    r"|persistent \(type (?P<ptype>\d+)\)|type (?P<ntype>\d+))\s*$"
)
_E820_HEADER_RE = re.compile(
    r"^(?:.*?kernel:\s*)?(?:\[\s*\d+\.\d+\]\s*)?(?:e820:\s*)?"
    r"(?:BIOS-provided|user-defined|modified|extended) physical RAM map:\s*$"
)
_E820_WORDS = {
    "usable": E820_TYPE_RAM,
    "reserved": E820_TYPE_RESERVED,
    "soft reserved": E820_TYPE_SOFT_RESERVED,
    "ACPI data": E820_TYPE_ACPI,
    "ACPI NVS": E820_TYPE_NVS,
    "unusable": E820_TYPE_UNUSABLE,
}
#: Which printed table the kernel finally used: later stages of boot win.
_E820_STAGE = {"BIOS-e820": 0, "BIOS-e801": 0, "BIOS-88": 0, "extended": 1, "user": 2, "modified": 3}

UNPRIVILEGED_MESSAGE = (
    "every address in this /proc/iomem text is zero: it was read without root privileges "
    "(the kernel shows 00000000-00000000 to readers without CAP_SYS_ADMIN); "
    "read it as root instead: sudo cat /proc/iomem"
)


class _Line(NamedTuple):
    lineno: int
    text: str
    indent: int
    start: int
    end: int
    name: str


def parse(text, filename: Optional[str] = None) -> ParsedLayout:
    """Parse ``/proc/iomem`` text or dmesg e820 lines (see the module docstring).

    Returns a :class:`ParsedLayout` (a :class:`ResourceTree` with ``format``, ``source``,
    ``observations``, ``e820_tables`` and ``e820_table``).  Raises ``ValueError`` naming the
    1-based line number (and ``filename`` when given) and quoting the line.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    if not isinstance(text, str):
        raise TypeError(f"parse() needs the layout text as str, not {type(text).__name__}")
    where = f"{filename}, line" if filename else "line"

    def fail(lineno: int, line: str, why: str) -> ValueError:
        return ValueError(f"{where} {lineno}: {why}: {line!r}")

    out = ParsedLayout()
    out.filename = filename
    iomem: list[tuple] = []     # _Line fields, as plain tuples
    e820: list[tuple[int, str, E820Entry]] = []
    first_error: Optional[ValueError] = None

    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            body = stripped[1:].strip()
            key, _, value = body.partition(":")
            if key.strip() == "source" and out.source is None:
                out.source = value.strip()
            elif key.strip() == "observed":
                out.observations.append(value.strip())
            continue
        if len(iomem) + len(e820) >= MAX_PARSE_LINES:
            raise fail(lineno, line, f"more than {MAX_PARSE_LINES} resource lines (a real /proc/iomem "
                                     f"or e820 map has a few thousand at most)")
        m = _IOMEM_RE.match(line)
        if m:
            indent, hs, he, name = m.groups()
            if (len(hs) > 16 or len(he) > 16) and (len(hs.lstrip("0")) > 16 or len(he.lstrip("0")) > 16):
                first_error = first_error or fail(lineno, line, "address wider than 64 bits")
                continue
            start, end = int(hs, 16), int(he, 16)
            if start > end and first_error is None:
                first_error = fail(lineno, line, f"start {start:#x} is above end {end:#x}")
            # an _Line, as a plain tuple (made for every line)
            iomem.append((lineno, line, len(indent.expandtabs(8)) if "\t" in indent else len(indent),
                          start, end, name.strip() if name else ""))
            continue
        if _E820_HEADER_RE.match(stripped):
            continue
        m = _E820_RE.match(stripped)
        if m:
            start, end = int(m.group("start"), 16), int(m.group("end"), 16)
            if end > RESOURCE_MAX or start > RESOURCE_MAX:
                first_error = first_error or fail(lineno, line, "address wider than 64 bits")
                continue
            if start > end:
                first_error = first_error or fail(lineno, line, f"start {start:#x} is above end {end:#x}")
                continue
            number = m.group("ptype") or m.group("ntype")
            t = int(number) if number is not None else _E820_WORDS[m.group("type")]
            e820.append((lineno, m.group("who"), E820Entry(start, end - start + 1, t)))
            continue
        first_error = first_error or fail(
            lineno, line,
            "not a /proc/iomem line ('start-end : name') nor an e820 line "
            "('BIOS-e820: [mem 0x...-0x...] type')")

    if iomem and all(ln[3] == 0 and ln[4] == 0 for ln in iomem):    # _Line start, end
        raise ValueError(f"{filename + ': ' if filename else ''}{UNPRIVILEGED_MESSAGE}")
    if first_error is not None:
        raise first_error

    for _, who, entry in e820:
        out.e820_tables.setdefault(who, []).append(entry)
    if iomem:
        out.format = "iomem"
        _build_iomem(out, iomem, fail)
    elif e820:
        out.format = "e820"
        order = {who: i for i, (_, who, _) in reversed(list(enumerate(e820)))}  # first appearance
        chosen = max(out.e820_tables, key=lambda w: (_E820_STAGE.get(w, 0), order[w]))
        out.e820_table = e820__update_table(out.e820_tables[chosen])
        e820__reserve_resources(out, out.e820_table)
    return out


def _build_iomem(out: ParsedLayout, lines: list[tuple], fail) -> None:
    """Nest the ``/proc/iomem`` lines by indentation and link them into ``out``."""
    line_of: dict[int, tuple] = {}     # id(resource) -> its line's _Line fields
    stack: list[tuple[int, Resource]] = []  # (indent, resource) of the open ancestors
    root = out.root
    for ln in lines:
        lineno, text, indent, start, end, name = ln
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else root
        if len(stack) >= MAX_PARSE_DEPTH:
            raise fail(lineno, text,
                       f"nested more than {MAX_PARSE_DEPTH} levels deep (/proc/iomem indents at most "
                       f"{MAX_IORES_LEVEL} levels)")
        flags, desc = _iomem_flags(name, start, parent.desc if stack else IORES_DESC_NONE)
        # parse() has checked the addresses (at most 64 bits, start <= end) and a line holds
        # no newline: what Resource() would check
        res = _resource(start, end, name, flags, desc)
        if stack and not parent.contains(start, end):
            pl = _Line(*line_of[id(parent)])
            raise fail(lineno, text,
                       f"{_mem(start, end)} is indented as a child of line {pl.lineno} "
                       f"({parent.name} {parent.pr()}) but is not inside it")
        kids = parent.children
        if not kids or kids[-1].end < start:
            # after every sibling (lines in address order): __request_resource appends it
            kids.append(res)
            res.parent = parent
        else:
            conflict = _request_resource(parent, res)
            if conflict is not None:
                cl = _Line(*line_of[id(conflict)])
                raise fail(lineno, text,
                           f"{_mem(start, end)} overlaps its sibling on line {cl.lineno} "
                           f"({conflict.name} {conflict.pr()})")
        line_of[id(res)] = ln
        # add_memory() can only have put System RAM under a resource that was not busy
        # (nothing above reads a parent's busy flag, so clearing it here or after all lines is
        # the same)
        if stack and name.startswith("System RAM") and not parent.flags & IORESOURCE_SYSRAM:
            parent.flags &= ~IORESOURCE_BUSY
        stack.append((indent, res))


def parse_file(path) -> ParsedLayout:
    """:func:`parse` the file at ``path``; error messages name the file and the line."""
    path = os.fspath(path)
    with open(path, encoding="utf-8", errors="replace") as f:
        return parse(f.read(), filename=path)
