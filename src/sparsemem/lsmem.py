"""util-linux ``lsmem`` over a simulated machine, byte for byte.

The detail: docs/lsmem.md.
"""

from __future__ import annotations

import errno
import os
import sys
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence

from . import __version__
from .kernel import version_range
from .sysroot import SysRoot

__all__ = ["UTIL_LINUX_VERSION", "size_to_human_string", "Reader", "DirReader", "LsmemOptions",
           "LsmemError", "UsageError", "parse_args", "lsmem", "main", "COLUMNS"]

#: the util-linux release whose output format this module reproduces
UTIL_LINUX_VERSION = "2.38.1"

MEMORY_DIR = "sys/devices/system/memory"

# struct memory_block states of lsmem.c
_ONLINE, _OFFLINE, _GOING_OFFLINE, _UNKNOWN = 0, 1, 2, 3

#: lsmem's zone table (enum zone_id order); "None" is a block with more than one zone
_ZONE_NAMES = ("DMA", "DMA32", "Normal", "Highmem", "Movable", "Device", "None", "Unknown")
_ZONE_UNKNOWN = 7
_MAX_NR_ZONES = 8

#: (name, width hint, right-aligned, help) in lsmem's coldescs order
COLUMNS = (
    ("RANGE", 0, False, "start and end address of the memory range"),
    ("SIZE", 5, True, "size of the memory range"),
    ("STATE", 0, True, "online status of the memory range"),
    ("REMOVABLE", 0, True, "memory is removable"),
    ("BLOCK", 0, True, "memory block number or blocks range"),
    ("NODE", 0, True, "numa node of memory"),
    ("ZONES", 0, True, "valid zones for the memory range"),
)
_COL_RANGE, _COL_SIZE, _COL_STATE, _COL_REMOVABLE, _COL_BLOCK, _COL_NODE, _COL_ZONES = range(7)
#: ``int columns[ARRAY_SIZE(coldescs) * 2]``
_MAX_COLUMNS = 2 * len(COLUMNS)
_U64 = (1 << 64) - 1


class LsmemError(Exception):
    """A runtime failure: ``message`` as lsmem prints it after ``lsmem: ``; exit status 1."""

    status = 1


class UsageError(Exception):
    """A usage error: ``message`` as lsmem prints it; ``tryhelp`` adds lsmem's "Try ..." line."""

    def __init__(self, message: Optional[str], tryhelp: bool = False):
        super().__init__(message or "")
        self.message = message
        self.tryhelp = tryhelp


# ---------------------------------------------------------------------------------------------
# lib/strutils.c


def size_to_human_string(n: int) -> str:
    """``size_to_human_string(SIZE_SUFFIX_1LETTER, n)`` of util-linux 2.38.1 (C locale)."""
    shift = 10
    while shift <= 60 and n >= 1 << shift:
        shift += 10
    exp = shift - 10
    letter = "BKMGTPE"[exp // 10]
    if not exp:
        return f"{n}{letter}"
    dec, frac = n >> exp, n & ((1 << exp) - 1)
    if frac:
        # three digits after the point, then round half up to one digit (kept as 0..100)
        if frac >= _U64 // 1000:
            frac = ((frac // 1024) * 1000) // (1 << (exp - 10))
        else:
            frac = (frac * 1000) >> exp
        frac = ((frac + 50) // 100) * 10
        if frac == 100:
            dec, frac = dec + 1, 0
    if frac:
        text = f"{dec}.{frac:02d}"
        if text.endswith("0"):
            text = text[:-1]
        return text + letter
    return f"{dec}{letter}"


# ---------------------------------------------------------------------------------------------
# what lsmem reads


class Reader(Protocol):
    """The file access lsmem needs, with paths relative to the system root
    (``sys/devices/system/memory/...``)."""

    def exists(self, path: str) -> bool: ...

    def isdir(self, path: str) -> bool: ...

    def listdir(self, path: str) -> list: ...

    def read_bytes(self, path: str) -> bytes: ...


class DirReader:
    """:class:`Reader` over a real directory used as system root (``lsmem --sysroot DIR``)."""

    def __init__(self, root: str):
        self.root = root

    def _p(self, path: str) -> str:
        return os.path.join(self.root, path)

    def exists(self, path: str) -> bool:
        return os.path.lexists(self._p(path)) and os.access(self._p(path), os.F_OK)

    def isdir(self, path: str) -> bool:
        return os.path.isdir(self._p(path))

    def listdir(self, path: str) -> list:
        return os.listdir(self._p(path))

    def read_bytes(self, path: str) -> bytes:
        with open(self._p(path), "rb") as f:
            return f.read()


def _read_string(r: Reader, path: str) -> Optional[str]:
    """``ul_path_read_string``: the text without one trailing newline; None when unreadable
    or empty."""
    try:
        data = r.read_bytes(path)[: 8192 - 1]
    except OSError:
        return None
    if data.endswith(b"\n"):
        data = data[:-1]
    data = data.split(b"\0", 1)[0]
    return data.decode("latin-1") if data else None


def _scan_int(text: Optional[str]) -> Optional[int]:
    """``sscanf(text, "%d")``: optional blanks, sign, digits; None when no digits."""
    if text is None:
        return None
    s = text.lstrip(" \t\n\v\f\r")
    i = 1 if s[:1] in ("+", "-") else 0
    j = i
    while j < len(s) and s[j].isdigit() and s[j].isascii():
        j += 1
    if j == i:
        return None
    v = int(s[:j])
    return ((v + (1 << 31)) % (1 << 32)) - (1 << 31)


def _strtoumax(text: str, base: int) -> int:
    """``strtoumax(text, NULL, base)`` for bases 10 and 16: the leading digits, 0 if none,
    saturating at U64 (errno is not looked at for a name)."""
    s = text.lstrip(" \t\n\v\f\r")
    neg = s[:1] == "-"
    if s[:1] in "+-" and s:
        s = s[1:]
    if base == 16 and s[:2].lower() == "0x" and len(s) > 2 and s[2] in "0123456789abcdefABCDEF":
        s = s[2:]
    digits = "0123456789abcdef"[:base]
    j = 0
    while j < len(s) and s[j].lower() in digits:
        j += 1
    if not j:
        return 0
    v = int(s[:j], base)
    if v > _U64:
        return _U64
    return (-v) & _U64 if neg else v


def _isdigit_string(s: str) -> bool:
    return bool(s) and all("0" <= c <= "9" for c in s)


def _versionsort_key(name: str):
    """``versionsort`` for ``memory<digits>`` names: numeric, then by text."""
    return (int(name[6:]), name)


@dataclass
class _Block:
    index: int
    count: int = 1
    state: int = _UNKNOWN
    node: int = 0
    zones: list = field(default_factory=list)
    removable: bool = False


# ---------------------------------------------------------------------------------------------
# options


@dataclass
class LsmemOptions:
    """lsmem's settings after its option loop (lsmem.c ``main``), plus the layout and the
    kernel of ``sparsemem lsmem``."""

    list_all: bool = False
    bytes: bool = False
    json: bool = False
    export: bool = False
    raw: bool = False
    noheadings: bool = False
    want_table: bool = True
    want_summary: bool = True
    columns: list = field(default_factory=list)
    outarg: Optional[str] = None
    splitarg: Optional[str] = None
    sysroot: Optional[str] = None
    layout: Optional[str] = None
    kernel: Optional[str] = None
    help: bool = False
    version: bool = False


# (name, has_arg, key); has_arg 0 none, 1 required, 2 optional (only with "=")
_LONGOPTS = (
    ("all", 0, "a"), ("bytes", 0, "b"), ("help", 0, "h"), ("json", 0, "J"),
    ("noheadings", 0, "n"), ("output", 1, "o"), ("output-all", 0, "output-all"),
    ("pairs", 0, "P"), ("raw", 0, "r"), ("sysroot", 1, "s"), ("split", 1, "S"),
    ("version", 0, "V"), ("summary", 2, "summary"),
    # sparsemem: the machine to list
    ("kernel", 1, "k"),
)
_SHORTOPTS = {"a": 0, "b": 0, "h": 0, "J": 0, "n": 0, "o": 1, "P": 0, "r": 0, "S": 1, "s": 1, "V": 0,
              "k": 1}
#: ``ul_excl_t excl[]`` of lsmem.c: groups of mutually exclusive options, in ASCII order
_EXCL = (("J", "P", "r"), ("S", "a"))


def _getopt(argv: Sequence[str], operands: list):
    """GNU ``getopt_long`` (permuting) over ``argv``: yields ``(key, value)`` in command-line
    order and collects the operands into ``operands``; an error is raised as
    :class:`UsageError` with glibc's text when the scan reaches it."""
    i = 0
    while i < len(argv):
        a = argv[i]
        i += 1
        if a == "--":
            operands.extend(argv[i:])
            return
        if a.startswith("--"):
            body = a[2:]
            name, eq, val = body.partition("=")
            exact = [o for o in _LONGOPTS if o[0] == name]
            cands = exact or [o for o in _LONGOPTS if o[0].startswith(name)]
            if not cands:
                raise UsageError(f"unrecognized option '--{body}'", True)
            if len(cands) > 1:
                poss = " ".join(f"'--{o[0]}'" for o in cands)
                raise UsageError(f"option '--{name}' is ambiguous; possibilities: {poss}", True)
            lname, has_arg, key = cands[0]
            if eq:
                if has_arg == 0:
                    raise UsageError(f"option '--{lname}' doesn't allow an argument", True)
                yield key, val
            elif has_arg == 1:
                if i >= len(argv):
                    raise UsageError(f"option '--{lname}' requires an argument", True)
                i += 1
                yield key, argv[i - 1]
            else:
                yield key, None
            continue
        if a.startswith("-") and a != "-":
            j = 1
            while j < len(a):
                c = a[j]
                j += 1
                if c not in _SHORTOPTS:
                    raise UsageError(f"invalid option -- '{c}'", True)
                if _SHORTOPTS[c]:
                    if j < len(a):
                        yield c, a[j:]
                    elif i < len(argv):
                        i += 1
                        yield c, argv[i - 1]
                    else:
                        raise UsageError(f"option requires an argument -- '{c}'", True)
                    break
                yield c, None
            continue
        operands.append(a)


def _excl_name(c: str) -> str:
    for name, _, key in _LONGOPTS:
        if key == c:
            return f"--{name}"
    return f"-{c}"


def _column_name_to_id(name: str) -> int:
    for i, col in enumerate(COLUMNS):
        if col[0].lower() == name.lower():
            return i
    return -1


def _string_add_to_idarray(lst: str, ary: list, arysz: int) -> int:
    """``string_add_to_idarray`` + ``column_name_to_id`` (lib/strutils.c, lsmem.c): appends
    to ``ary`` ("+" prefix) or replaces it; returns the count or a negative value; prints
    nothing but lsmem's "unknown column" (raised as UsageError)."""
    if not lst:
        return -1
    if lst[0] == "+":
        lst = lst[1:]
    else:
        del ary[:]
    if not lst:
        return -1
    n = 0
    begin = None
    p = 0
    while p < len(lst):
        if len(ary) >= arysz:
            return -2
        if begin is None:
            begin = p
        end = None
        if lst[p] == ",":
            end = p
        if p + 1 == len(lst):
            end = p + 1
        if end is None:
            p += 1
            continue
        if end <= begin:
            return -1
        ident = _column_name_to_id(lst[begin:end])
        if ident == -1:
            raise UsageError(f"unknown column: {lst[begin:]}")
        ary.append(ident)
        n += 1
        begin = None
        if end == len(lst):
            break
        p += 1
    return n


def parse_args(argv: Sequence[str]) -> LsmemOptions:
    """lsmem.c ``main``'s option handling (getopt_long order, exclusive options, summary
    rules, columns) over ``argv``; raises :class:`UsageError`."""
    o = LsmemOptions()
    operands: list = []
    excl_st = [None] * len(_EXCL)
    for key, val in _getopt(argv, operands):
        for g, group in enumerate(_EXCL):
            if key in group:
                if excl_st[g] is None:
                    excl_st[g] = key
                elif excl_st[g] != key:
                    names = " ".join(_excl_name(c) for c in group)
                    raise UsageError(f"mutually exclusive arguments: {names}")
        if key == "a":
            o.list_all = True
        elif key == "b":
            o.bytes = True
        elif key == "J":
            o.json, o.want_summary = True, False
        elif key == "n":
            o.noheadings = True
        elif key == "o":
            o.outarg = val
        elif key == "output-all":
            o.columns = list(range(len(COLUMNS)))
        elif key == "P":
            o.export, o.want_summary = True, False
        elif key == "r":
            o.raw, o.want_summary = True, False
        elif key == "s":
            o.sysroot = val
        elif key == "S":
            o.splitarg = val
        elif key == "summary":
            if val is None:
                o.want_table = False
            elif val == "never":
                o.want_summary = False
            elif val == "only":
                o.want_table = False
            elif val == "always":
                o.want_summary = True
            else:
                raise UsageError("unsupported --summary argument")
        elif key == "k":
            o.kernel = val
        elif key == "h":
            o.help = True
            return o
        elif key == "V":
            o.version = True
            return o
    if len(operands) > 1 or (operands and o.sysroot is not None):
        raise UsageError("bad usage", True)
    # no layout (and no --sysroot): the caller's boot() reads this machine's /proc/iomem or
    # the bundled layout, as `sparsemem report` does (issue 13)
    o.layout = operands[0] if operands else None
    if not o.want_table and not o.want_summary:
        raise UsageError("options --{raw,json,pairs} and --summary=only are mutually exclusive")
    if o.want_table:
        if not o.columns:
            o.columns = [_COL_RANGE, _COL_SIZE, _COL_STATE, _COL_REMOVABLE, _COL_BLOCK]
        if o.outarg is not None and _string_add_to_idarray(o.outarg, o.columns, _MAX_COLUMNS) < 0:
            raise UsageError(None)
    return o


def _split_policy(o: LsmemOptions) -> set:
    """``set_split_policy``: the columns whose difference splits a range."""
    if o.splitarg is None:
        cols = o.columns
    elif o.splitarg.lower() == "none":
        cols = []
    else:
        cols = []
        if _string_add_to_idarray(o.splitarg, cols, len(COLUMNS)) < 0:
            raise UsageError(None)
    return {c for c in cols if c in (_COL_STATE, _COL_NODE, _COL_REMOVABLE, _COL_ZONES)}


# ---------------------------------------------------------------------------------------------
# reading


def _block_node(r: Reader, name: str) -> int:
    """``memory_block_get_node``: the first ``node<digits>`` entry, else -1."""
    for entry in r.listdir(f"{MEMORY_DIR}/{name}"):
        if entry.startswith("node") and _isdigit_string(entry[4:]):
            return int(entry[4:]) if len(entry[4:]) < 19 else -1
    return -1


def _read(r: Reader, o: LsmemOptions, split: set, stdout_isatty: bool):
    """``read_basic_info`` + ``read_info``: (block size, blocks, online, offline, have_nodes,
    have_zones)."""
    if not r.isdir(MEMORY_DIR):
        raise LsmemError(f"cannot open /{MEMORY_DIR}: No such file or directory")
    if not r.exists(f"{MEMORY_DIR}/block_size_bytes"):
        raise LsmemError("This system does not support memory blocks")
    names = sorted((d for d in r.listdir(MEMORY_DIR)
                    if d.startswith("memory") and _isdigit_string(d[6:])), key=_versionsort_key)
    if not names:
        root = "/" if o.sysroot is None else o.sysroot.rstrip("/") + "/"
        # errno is what the last failing call left: isatty() of libsmartcols when the table
        # is built for a non-terminal, else 0
        why = os.strerror(errno.ENOTTY) if (o.want_table and not stdout_isatty) else "Success"
        raise LsmemError(f"Failed to read {root}{MEMORY_DIR}: {why}")
    have_nodes = _block_node(r, names[0]) != -1
    have_zones = r.exists(f"{MEMORY_DIR}/memory0/valid_zones")
    try:
        raw = r.read_bytes(f"{MEMORY_DIR}/block_size_bytes")[:127]
    except OSError as exc:
        raise LsmemError(f"failed to read memory block size: {os.strerror(exc.errno or errno.EIO)}") from None
    if not raw:
        raise LsmemError("failed to read memory block size: Success")
    bsize = _strtoumax(raw.split(b"\0", 1)[0].decode("latin-1"), 16)
    blocks: list = []
    online = offline = 0
    for name in names:
        blk = _Block(index=_strtoumax(name[6:], 10))
        x = _scan_int(_read_string(r, f"{MEMORY_DIR}/{name}/removable"))
        if x is not None:
            blk.removable = x == 1
        st = _read_string(r, f"{MEMORY_DIR}/{name}/state")
        blk.state = {"offline": _OFFLINE, "online": _ONLINE, "going-offline": _GOING_OFFLINE}.get(st or "", _UNKNOWN)
        if have_nodes:
            blk.node = _block_node(r, name)
        if have_zones:
            zones = _read_string(r, f"{MEMORY_DIR}/{name}/valid_zones")
            if zones:
                for tok in [t for t in zones.split(" ") if t][:_MAX_NR_ZONES]:
                    ids = [i for i, z in enumerate(_ZONE_NAMES) if z.lower() == tok.lower()]
                    blk.zones.append(ids[0] if ids else _ZONE_UNKNOWN)
        if blk.state == _ONLINE:
            online = (online + bsize) & _U64
        else:
            offline = (offline + bsize) & _U64
        if blocks and _mergeable(blocks[-1], blk, o, split, have_nodes, have_zones):
            blocks[-1].count += 1
        else:
            blocks.append(blk)
    return bsize, blocks, online, offline, have_nodes, have_zones


def _mergeable(cur: _Block, blk: _Block, o: LsmemOptions, split: set, have_nodes: bool,
               have_zones: bool) -> bool:
    """``is_mergeable``."""
    if o.list_all:
        return False
    if (cur.index + cur.count) & _U64 != blk.index:
        return False
    if _COL_STATE in split and cur.state != blk.state:
        return False
    if _COL_REMOVABLE in split and cur.removable != blk.removable:
        return False
    if _COL_NODE in split and have_nodes and cur.node != blk.node:
        return False
    if _COL_ZONES in split and have_zones:
        if len(cur.zones) != len(blk.zones):
            return False
        for a, b in zip(cur.zones, blk.zones):
            if a == _ZONE_UNKNOWN or a != b:
                return False
    return True


# ---------------------------------------------------------------------------------------------
# printing (libsmartcols 2.38.1)


def _cells(blk: _Block, o: LsmemOptions, bsize: int, have_nodes: bool, have_zones: bool) -> list:
    """``add_scols_line``: one cell per column, None for an unset cell."""
    out = []
    for c in o.columns:
        s = None
        if c == _COL_RANGE:
            start = (blk.index * bsize) & _U64
            end = (start + blk.count * bsize - 1) & _U64
            s = f"0x{start:016x}-0x{end:016x}"
        elif c == _COL_SIZE:
            size = (blk.count * bsize) & _U64
            s = str(size - (1 << 64) if size >> 63 else size) if o.bytes else size_to_human_string(size)
        elif c == _COL_STATE:
            s = {_ONLINE: "online", _OFFLINE: "offline", _GOING_OFFLINE: "on->off"}.get(blk.state, "?")
        elif c == _COL_REMOVABLE:
            if blk.state == _ONLINE:
                s = "yes" if blk.removable else "no"
        elif c == _COL_BLOCK:
            s = str(blk.index) if blk.count == 1 else f"{blk.index}-{blk.index + blk.count - 1}"
        elif c == _COL_NODE:
            if have_nodes:
                s = str(blk.node)
        elif c == _COL_ZONES:
            if have_zones:
                s = "/".join(_ZONE_NAMES[z] for z in blk.zones)
        out.append(s)
    return out


def _safe(s: str) -> str:
    """``mbs_safe_encode``: non-printable bytes as ``\\xNN``."""
    return "".join(ch if " " <= ch <= "~" else f"\\x{ord(ch):02x}" for ch in s)


def _nonblank(s: str) -> str:
    """``fputs_nonblank`` (raw output)."""
    return "".join(f"\\x{ord(ch):02x}" if ch in " \t\\" or not " " <= ch <= "~" else ch for ch in s)


def _quoted(s: str) -> str:
    """``fputs_quoted`` (KEY="value" output)."""
    return '"' + "".join(f"\\x{ord(ch):02x}" if ch in '"\\`$' or not " " <= ch <= "~" else ch
                         for ch in s) + '"'


def _json_str(s: str, lower: bool = False) -> str:
    """``fputs_quoted_case_json``."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif c >= 0x20:
            out.append(ch.lower() if lower and c <= 127 else ch)
        else:
            out.append({8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(c, f"\\u00{c:02x}"))
    out.append('"')
    return "".join(out)


def _format_table(o: LsmemOptions, rows: list) -> str:
    """``scols_print_table`` for lsmem's table (no tree, no wrapping, no truncation flags)."""
    cols = [COLUMNS[c] for c in o.columns]
    names = [c[0] for c in cols]
    if o.json:
        types = []
        for c in o.columns:
            if c == _COL_NODE or (c == _COL_SIZE and o.bytes):
                types.append("number")
            elif c == _COL_REMOVABLE:
                types.append("boolean")
            else:
                types.append("string")
        parts = ["{\n", "   ", _json_str("memory", True), ": [\n"]
        for ri, row in enumerate(rows):
            parts.append(",{\n" if ri else "      {\n")
            vals = []
            for name, t, cell in zip(names, types, row):
                d = cell or ""
                if t == "boolean":
                    v = "false" if (not d or d[0] in "0Nn") else "true"
                elif t == "number":
                    v = d if d else "null"
                else:
                    v = _json_str(d) if d else "null"
                vals.append("         " + _json_str(name, True) + ": " + v)
            parts.append(",\n".join(vals))
            parts.append("\n      }")
        parts.append("\n   ]" if rows else "   ]")
        parts.append("\n}\n")
        return "".join(parts)
    lines = []
    if o.raw:
        if not o.noheadings:
            lines.append(" ".join(_nonblank(n) for n in names))
        for row in rows:
            lines.append(" ".join(_nonblank(c or "") for c in row))
        return "\n".join(lines) + "\n"
    if o.export:
        for row in rows:
            lines.append(" ".join(f"{n}={_quoted(c or '')}" for n, c in zip(names, row)))
        return "\n".join(lines) + "\n"
    # human: width = max(header, data), at least the width hint when the header is narrower
    widths = []
    for ci, (name, hint, right, _) in enumerate(cols):
        w = max([len(_safe(r[ci] or "")) for r in rows] + [0])
        wmin = max(len(name), 1)
        if w < wmin:
            w = wmin
        elif hint >= 1 and w < hint and wmin < hint:
            w = hint
        widths.append(w)
    last = len(cols) - 1

    def line(cells):
        out = []
        for ci, cell in enumerate(cells):
            data = _safe(cell or "")
            right = cols[ci][2]
            w = widths[ci]
            text = ""
            if data:
                text = data.rjust(w) if right else data
            if ci == last:
                out.append(text)
            else:
                out.append(text.ljust(w) + " " if len(text) <= w else text + " ")
        return "".join(out)

    if not o.noheadings:
        lines.append(line(names))
    for row in rows:
        lines.append(line(row))
    return "\n".join(lines) + "\n"


def _summary(o: LsmemOptions, bsize: int, online: int, offline: int) -> str:
    """``print_summary``."""
    items = (("Memory block size:", bsize), ("Total online memory:", online),
             ("Total offline memory:", offline))
    if o.bytes:
        return "".join(f"{label:<23} {v - (1 << 64) if v >> 63 else v:15d}\n" for label, v in items)
    return "".join(f"{label:<23} {size_to_human_string(v):>5}\n" for label, v in items)


def lsmem(reader: Reader, options: LsmemOptions, stdout_isatty: bool = False) -> str:
    """What ``lsmem`` prints on standard output for the tree ``reader`` shows, with
    ``options`` from :func:`parse_args`; raises :class:`LsmemError` where lsmem fails."""
    o = options
    if not o.want_table:
        # the --summary=only shortcut: no table, no split policy
        bsize, _, online, offline, _, _ = _read(reader, o, set(), True)
        return _summary(o, bsize, online, offline)
    split = _split_policy(o)
    bsize, blocks, online, offline, have_nodes, have_zones = _read(reader, o, split, stdout_isatty)
    rows = [_cells(b, o, bsize, have_nodes, have_zones) for b in blocks]
    out = _format_table(o, rows)
    if o.want_summary:
        out += "\n" + _summary(o, bsize, online, offline)
    return out


# ---------------------------------------------------------------------------------------------
# sparsemem lsmem


def usage(prog: str) -> str:
    """The help text: lsmem's options plus the layout and ``--kernel``."""
    lines = ["", "Usage:", f" {prog} [LAYOUT] [--kernel V] [options]",
             f" {prog} --sysroot DIR [options]", "",
             "List the memory blocks of a simulated machine as util-linux lsmem "
             f"{UTIL_LINUX_VERSION} lists them.",
             f"LAYOUT is read as '{prog.rsplit(' ', 1)[0]} report' reads it: - is standard input; none:",
             "standard input when piped, else this machine's /proc/iomem when it shows real",
             "addresses, else the bundled layout.", "",
             "Options:",
             " -k, --kernel <V>     kernel release to boot the layout with (default: 5.3;",
             f"                      modelled: {version_range()}, $(uname -r) works)",
             " -J, --json           use JSON output format",
             " -P, --pairs          use key=\"value\" output format",
             " -a, --all            list each individual memory block",
             " -b, --bytes          print SIZE in bytes rather than in human readable format",
             " -n, --noheadings     don't print headings",
             " -o, --output <list>  output columns",
             "     --output-all     output all columns",
             " -r, --raw            use raw output format",
             " -S, --split <list>   split ranges by specified columns",
             " -s, --sysroot <dir>  read a sysfs tree under <dir> instead of booting a layout",
             "     --summary[=when] print summary information (never,always or only)", "",
             " -h, --help           display this help",
             " -V, --version        display version", "",
             "Available output columns:"]
    lines += [f" {name:>10}  {text}" for name, _, _, text in COLUMNS]
    lines += ["", "examples:", f"  {prog} /proc/iomem", f"  {prog} layout.txt --kernel 6.8 -o +NODE,ZONES",
              f"  {prog} layout.txt --json --bytes", f"  {prog} --sysroot /tmp/root --summary=only",
              "", "exit status: 0 ok, 1 a layout cannot be read or lsmem would fail "
              "(no memory blocks), 2 usage error"]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str], prog: str = "sparsemem lsmem", stdout=None, stderr=None,
         boot=None, reader: Optional[Reader] = None) -> int:
    """``sparsemem lsmem``: returns the exit status.  ``boot(layout, kernel)`` returns the
    booted :class:`~sparsemem.machine.Machine` (its exceptions are the caller's); a
    ``reader`` given is listed instead (the layout operand is then only a placeholder)."""
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    try:
        o = parse_args(argv)
    except UsageError as exc:
        if exc.message:
            stderr.write(f"{prog}: error: {exc.message}\n")
        if exc.tryhelp:
            stderr.write(f"Try '{prog} --help' for more information.\n")
        return 2
    if o.help:
        stdout.write(usage(prog))
        return 0
    if o.version:
        stdout.write(f"{prog} from sparsemem {__version__} (util-linux {UTIL_LINUX_VERSION} format)\n")
        return 0
    if o.sysroot is not None:
        reader = DirReader(o.sysroot)
    elif reader is None:
        reader = SysRoot(boot(o.layout, o.kernel))
    try:
        isatty = stdout.isatty()
    except (AttributeError, ValueError):
        isatty = False
    try:
        text = lsmem(reader, o, stdout_isatty=isatty)
    except UsageError as exc:
        if exc.message:
            stderr.write(f"{prog}: error: {exc.message}\n")
        return 2
    except LsmemError as exc:
        stderr.write(f"{prog}: error: {exc}\n")
        return exc.status
    stdout.write(text)
    return 0
