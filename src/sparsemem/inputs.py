"""The layout-text front end: what users paste or redirect, turned into the text that
:func:`sparsemem.iomem.parse` reads.

The detail: docs/inputs.md.
"""

from __future__ import annotations

import gzip
import os
import re
import sys
from dataclasses import dataclass, field
from typing import Optional

from .e820 import (
    E820_TYPE_ACPI,
    E820_TYPE_NVS,
    E820_TYPE_PMEM,
    E820_TYPE_PRAM,
    E820_TYPE_RAM,
    E820_TYPE_RESERVED,
    E820_TYPE_RESERVED_KERN,
    E820_TYPE_SOFT_RESERVED,
    E820_TYPE_UNUSABLE,
    E820Entry,
    e820__range_remove,
    e820__range_update,
    e820__update_table,
    e820_print_type,
)

__all__ = [
    "ACCEPTED_FORMS",
    "strip_log_prefix",
    "LayoutText",
    "E820Op",
    "normalise",
    "read_layout_bytes",
    "decode_layout",
    "read_layout_file",
    "machine_iomem",
    "PROC_IOMEM",
]

U64 = (1 << 64) - 1

#: What the one-line error says is accepted.
ACCEPTED_FORMS = (
    "accepted: /proc/iomem lines ('start-end : name'); dmesg or journalctl -k output with the "
    "e820 lines ('BIOS-e820: [mem 0x...-0x...] usable', 'user: [mem ...]', 'reserve setup_data: "
    "[mem ...]', 'e820: update [mem ...] usable ==> reserved', 'e820: remove [mem ...]'); "
    "/sys/firmware/memmap dumps ('N/start', 'N/end', 'N/type', e.g. grep . /sys/firmware/memmap/*/*); "
    "'#' comments"
)

#: Where this machine's map is read when no LAYOUT is given (the environment variable
#: ``SPARSEMEM_PROC_IOMEM`` names another file, for tests).
PROC_IOMEM = "/proc/iomem"

# ---------------------------------------------------------------------------------------------
# line forms

_HEX = r"0x[0-9a-fA-F]+"
_IOMEM_RE = re.compile(r"^[ \t]*[0-9a-fA-F]+-[0-9a-fA-F]+[ \t]*:")
_FENCE_RE = re.compile(r"^\s*(?:```|~~~)")
_QUOTE_RE = re.compile(r"^(?:[ \t]*>[ \t]?)+")
_PROMPT_RE = re.compile(
    r"^\s*(?:"
    r"[$%]"  # "$ dmesg", "% dmesg"
    r"|[\w.-]+@[\w.-]+(?::[^\s]*)?\s*[$#%]"  # user@host:~$ / root@host:/tmp#
    r"|\[[\w.-]+@[\w.-]+[^\]]*\]\s*[$#%]"  # [root@host ~]#
    r")(?:\s.*)?$"
)

_MON = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_ISO = r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?"
_HOST_KERNEL = r"\s+\S+\s+kernel(?:\[\d+\])?:"
#: Prefixes that ``dmesg``, ``journalctl``, syslog and printk put before a kernel message; they
#: are stripped repeatedly from the start of a line (``kern  :info  : [    0.000000] ...``).
_LOG_PREFIXES = [re.compile(p) for p in (
    r"<\d{1,3}>",  # dmesg -r, /dev/kmsg
    r"(?:kern|user|mail|daemon|auth|syslog|lpr|news|uucp|cron|authpriv|ftp|local[0-7])\s*:"
    r"\s*(?:emerg|alert|crit|err|warn|notice|info|debug)\s*:",  # dmesg -x
    r"\[\s*\d+\.\d+\]" + _HOST_KERNEL,  # journalctl -o short-monotonic
    rf"(?:{_DAY}\s+)?(?:{_ISO}|{_MON}\s+\d+\s+\d\d:\d\d:\d\d(?:\.\d+)?"
    rf"|\d{{4}}-\d\d-\d\d\s+\d\d:\d\d:\d\d(?:\.\d+)?(?:\s+[A-Z]{{2,5}})?)" + _HOST_KERNEL,  # journal, syslog
    r"\[\s*[+-]?\d+\.\d+(?:\s*<\s*\d+\.\d+\s*>)?\]",  # [    0.000000], dmesg -d, dmesg -H delta
    r"\[\s*[TC]\d+\]",  # CONFIG_PRINTK_CALLER
    rf"\[{_DAY}\s+{_MON}\s+\d+\s+\d\d:\d\d:\d\d\s+\d{{4}}\]",  # dmesg -T
    rf"\[{_MON}\s*\d+\s+\d\d:\d\d\]",  # dmesg -H
    _ISO,  # dmesg --time-format=iso
)]
_JOURNAL_MARK_RE = re.compile(r"^-- (?:Boot [0-9a-f]+|Reboot|Logs begin at .*|Journal begins at .*|No entries)"
                              r".*--\s*$")

_TABLE_HEAD_RE = re.compile(r"^(?:e820:\s*)?(?:BIOS-provided|user-defined|modified|extended) physical RAM map:\s*$")
_TABLE_RE = re.compile(
    rf"^(?:e820:\s*)?(?P<who>reserve setup_data|[A-Za-z][\w-]*): \[mem (?P<start>{_HEX})-(?P<end>{_HEX})\]"
    r"\s+(?P<type>\S.*?)\s*$")
_GAP_RE = re.compile(rf"^(?:e820:\s*)?[A-Za-z][\w -]*: \[gap {_HEX}-{_HEX}\]\s*$")
_UPDATE_RE = re.compile(
    rf"^e820: update \[mem (?P<start>{_HEX})-(?P<end>{_HEX})\]\s*(?P<old>\S.*?)\s+==>\s*(?P<new>\S.*?)\s*$")
_REMOVE_RE = re.compile(rf"^e820: remove \[mem (?P<start>{_HEX})-(?P<end>{_HEX})\]\s*(?P<old>\S.*?)?\s*$")
_FULL_LOG_RE = re.compile(r"^(?:Linux version \d|Command line: )")
_CMDLINE_MEM_RE = re.compile(r"(?:^|\s)((?:memmap|mem)=\S+)")

_MEMMAP_GREP_RE = re.compile(r"^(?:\S*/)?(?P<idx>\d+)/(?P<key>start|end|type):[ \t]*(?P<value>.*?)\s*$")
_MEMMAP_HEAD_RE = re.compile(r"^==>\s*(?:\S*/)?(?P<idx>\d+)/(?P<key>start|end|type)\s*<==\s*$")
_MEMMAP_DIR_RE = re.compile(r"^(?:\S*/)?memmap/(?P<idx>\d+)/?\s*$")
_BARE_HEX_RE = re.compile(rf"^\s*(?P<v>{_HEX})\s*$")

#: e820 type words as dmesg prints them: up to 6.19 and from 7.0 (latest-eras.md L §7.1), and
#: the /proc/iomem (and /sys/firmware/memmap) names of ``e820_type_to_string``.
_TYPE_WORDS = {
    "usable": E820_TYPE_RAM, "System RAM": E820_TYPE_RAM,
    "reserved": E820_TYPE_RESERVED, "device reserved": E820_TYPE_RESERVED, "Reserved": E820_TYPE_RESERVED,
    "soft reserved": E820_TYPE_SOFT_RESERVED, "Soft Reserved": E820_TYPE_SOFT_RESERVED,
    "ACPI data": E820_TYPE_ACPI, "ACPI Tables": E820_TYPE_ACPI,
    "ACPI NVS": E820_TYPE_NVS, "ACPI Non-volatile Storage": E820_TYPE_NVS,
    "unusable": E820_TYPE_UNUSABLE, "Unusable memory": E820_TYPE_UNUSABLE,
    "Persistent Memory": E820_TYPE_PMEM, "Persistent Memory (legacy)": E820_TYPE_PRAM,
    "System RAM (kernel)": E820_TYPE_RESERVED_KERN,
    "Unknown E820 type": 6,
}
_TYPE_NUMBER_RE = re.compile(r"^(?:persistent (?:RAM )?\(type (\d+)\)|type (\d+))$")

#: Which printed table the kernel finally used (the same order as the parser's).
_STAGE = {"BIOS-e820": 0, "BIOS-e801": 0, "BIOS-88": 0, "extended": 1, "user": 2, "modified": 3}
_KNOWN_TABLES = set(_STAGE) | {"reserve setup_data"}
#: entry numbers given to memmap entries printed without their directory
_BARE_BASE = 10_000_000


def _type_of(word: str) -> Optional[int]:
    word = " ".join(word.split())
    if word in _TYPE_WORDS:
        return _TYPE_WORDS[word]
    m = _TYPE_NUMBER_RE.match(word)
    if m:
        n = int(m.group(1) or m.group(2))
        return n if 0 < n <= 0xFFFFFFFF else None
    return None


def strip_log_prefix(line: str) -> tuple[str, bool]:
    """``(message, had_prefix)``: every log prefix removed from the start of ``line``."""
    s = line.strip()
    stripped = False
    again = True
    while again and s:
        again = False
        for rx in _LOG_PREFIXES:
            m = rx.match(s)
            if m:
                s = s[m.end():].lstrip()
                stripped = again = True
                break
    return s, stripped


# ---------------------------------------------------------------------------------------------
# results


@dataclass(frozen=True)
class E820Op:
    """One ``e820: update`` / ``e820: remove`` line: ``op`` is ``"update"`` or ``"remove"``,
    ``start``/``size`` in bytes, ``old``/``new`` e820 types (``old`` None: a remove without
    type check), ``lineno`` 1-based in the user's file."""

    op: str
    start: int
    size: int
    old: Optional[int]
    new: Optional[int]
    lineno: int

    def apply(self, table):
        if self.op == "update":
            assert self.old is not None and self.new is not None  # an update line names both types
            return e820__range_update(table, self.start, self.size, self.old, self.new)[0]
        return e820__range_remove(table, self.start, self.size, self.old or 0, self.old is not None)[0]


@dataclass
class LayoutText:
    """What :func:`normalise` made of a layout text.

    Attributes:
        text: what :func:`sparsemem.iomem.parse` reads (line N is the user's line N, or empty).
        forms: the input forms found, in order of appearance (``"iomem"``, ``"dmesg"``,
            ``"e820"`` (table lines without log prefixes), ``"firmware-memmap"``).
        notes: one sentence per thing done beyond passing lines through (skipped prompts,
            applied e820 updates, the boot used ...), for reports.
        e820_tables: the e820 tables as printed (of the boot used), by label; the
            ``reserve setup_data`` table is labelled ``extended`` as the parser names it.
        e820_table: the table used after applying the update/remove lines, when there were
            any to apply (else ``None``: the parser builds the tree from the printed tables).
        table_label: the label of the printed table used, or ``None``.
        ops: every update/remove line of the boot used; ``applied``: those applied.
        command_line: the kernel command line when the log shows it.
    """

    text: str
    forms: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    e820_tables: dict = field(default_factory=dict)
    e820_table: Optional[list] = None
    table_label: Optional[str] = None
    ops: list = field(default_factory=list)
    applied: list = field(default_factory=list)
    command_line: Optional[str] = None

    @property
    def form(self) -> str:
        """The main form: ``"iomem"`` when there are /proc/iomem lines (the parser uses them),
        else the first form found, else ``"empty"``."""
        if "iomem" in self.forms:
            return "iomem"
        return self.forms[0] if self.forms else "empty"


# ---------------------------------------------------------------------------------------------
# the front end


def normalise(text: str, filename: Optional[str] = None) -> LayoutText:
    """Turn a pasted or redirected layout (see docs/inputs.md) into the text the parser
    reads.  Raises ``ValueError`` naming ``filename``, the 1-based line number, the line and
    the accepted forms for a line that is none of them."""
    if isinstance(text, (bytes, bytearray)):
        text = decode_layout(bytes(text))
    if not isinstance(text, str):
        raise TypeError(f"normalise() needs the layout text as str, not {type(text).__name__}")
    where = f"{filename}, line" if filename else "line"

    def fail(lineno: int, line: str, why: str, forms: bool = True) -> ValueError:
        tail = f" ({ACCEPTED_FORMS})" if forms else ""
        return ValueError(f"{where} {lineno}: {why}: {line.strip()!r}{tail}")

    notes: list[str] = []
    forms: list[str] = []
    if text.startswith("\ufeff"):
        text = text[1:]
        notes.append("stripped a byte-order mark")
    lines = text.splitlines()
    out = [""] * len(lines)
    counts = {"fence": 0, "prompt": 0, "quote": 0, "log": 0, "e820-info": 0, "journal": 0}
    first_unknown: Optional[tuple[int, str]] = None
    full_log = False
    command_line = None
    boots = 0
    boot_start = 1

    # e820 state of the current boot
    table_lines: list[tuple[int, str, E820Entry]] = []  # (index, label, entry)
    ops: list[tuple[int, E820Op]] = []
    # /sys/firmware/memmap state: idx -> {key: (value, index)}
    memmap: dict[int, dict[str, tuple[str, int]]] = {}
    head_key: Optional[tuple[int, str]] = None
    bare: list[tuple[int, str]] = []
    bare_idx = [0]
    dir_idx: Optional[int] = None

    def form(name: str) -> None:
        if name not in forms:
            forms.append(name)

    def new_boot(index: int) -> None:
        nonlocal boots, boot_start
        if table_lines or ops:
            for i, _, _ in table_lines:
                out[i] = ""
            table_lines.clear()
            ops.clear()
            boots += 1
            boot_start = index + 1

    def memmap_put(idx: int, key: str, value: str, index: int) -> None:
        memmap.setdefault(idx, {})[key] = (value.strip(), index)
        form("firmware-memmap")

    for index, raw in enumerate(lines):
        lineno = index + 1
        line = raw.rstrip().lstrip("\ufeff")
        if not line.strip():
            continue
        if _FENCE_RE.match(line):
            counts["fence"] += 1
            continue
        if _QUOTE_RE.match(line):
            line = _QUOTE_RE.sub("", line, count=1)
            counts["quote"] += 1
            if not line.strip():
                continue
        if line.lstrip().startswith("#"):
            out[index] = line
            continue
        if _PROMPT_RE.match(line):
            counts["prompt"] += 1
            continue
        if _IOMEM_RE.match(line):
            out[index] = line
            form("iomem")
            continue
        # /sys/firmware/memmap dumps
        if head_key is not None:
            memmap_put(head_key[0], head_key[1], line, index)
            head_key = None
            continue
        m = _MEMMAP_GREP_RE.match(line.strip())
        if m:
            memmap_put(int(m.group("idx")), m.group("key"), m.group("value"), index)
            continue
        m = _MEMMAP_HEAD_RE.match(line.strip())
        if m:
            head_key = (int(m.group("idx")), m.group("key"))
            continue
        m = _MEMMAP_DIR_RE.match(line.strip())
        if m:
            dir_idx = int(m.group("idx"))
            continue
        msg, had_prefix = strip_log_prefix(line)
        if not had_prefix:
            parts = line.strip().split(None, 2)
            if len(parts) == 3 and all(_BARE_HEX_RE.match(p) for p in parts[:2]) and _type_of(parts[2]) is not None:
                # one "0xSTART 0xEND TYPE" line per entry
                idx = dir_idx if dir_idx is not None else _BARE_BASE + bare_idx[0]
                bare_idx[0] += 1
                dir_idx = None
                for key, value in zip(("start", "end", "type"), parts):
                    memmap_put(idx, key, value, index)
                continue
            if bare or _BARE_HEX_RE.match(line):
                # `cat $d/start $d/end $d/type`: three lines per entry
                bare.append((index, line.strip()))
                if len(bare) == 3:
                    idx = dir_idx if dir_idx is not None else _BARE_BASE + bare_idx[0]
                    bare_idx[0] += 1
                    dir_idx = None
                    for key, (i, value) in zip(("start", "end", "type"), bare):
                        memmap_put(idx, key, value, i)
                    bare.clear()
                continue
        if not msg:
            continue
        if _JOURNAL_MARK_RE.match(msg):
            counts["journal"] += 1
            if msg.startswith("-- Boot") or msg.startswith("-- Reboot"):
                new_boot(index)
            continue
        if _FULL_LOG_RE.match(msg):
            full_log = True
            if msg.startswith("Linux version"):
                new_boot(index)
            else:
                command_line = msg[len("Command line:"):].strip()
            continue
        if _TABLE_HEAD_RE.match(msg) or _GAP_RE.match(msg) or "out of order E820 entry" in msg:
            form("dmesg" if had_prefix else "e820")
            continue
        m = _TABLE_RE.match(msg)
        t = _type_of(m.group("type")) if m else None
        if m and t is None and m.group("who") in _KNOWN_TABLES:
            raise fail(lineno, raw, f"unknown e820 type {m.group('type')!r}")
        if m and t is not None and m.group("who") != "e820":
            start, end = _range(m.group("start"), m.group("end"), lineno, raw, fail)
            who = "extended" if m.group("who") == "reserve setup_data" else m.group("who")
            entry = E820Entry(start, end - start + 1, t)
            table_lines.append((index, who, entry))
            out[index] = f"{who}: [mem {start:#018x}-{end:#018x}] {e820_print_type(t)}"
            form("dmesg" if had_prefix else "e820")
            continue
        m = _UPDATE_RE.match(msg) or _REMOVE_RE.match(msg)
        if m:
            start, end = _range(m.group("start"), m.group("end"), lineno, raw, fail)
            old_word = m.group("old")
            old = _type_of(old_word) if old_word else None
            if old_word and old is None:
                raise fail(lineno, raw, f"unknown e820 type {old_word!r}")
            if m.re is _UPDATE_RE:
                new = _type_of(m.group("new"))
                if new is None:
                    raise fail(lineno, raw, f"unknown e820 type {m.group('new')!r}")
                if new == old:
                    if old != E820_TYPE_RAM:
                        raise fail(lineno, raw, "an e820 update to the same type (the kernel BUG()s on that)", False)
                    new = E820_TYPE_RESERVED_KERN  # setup_data: RAM -> RESERVED_KERN, both print "usable"
                ops.append((index, E820Op("update", start, end - start + 1, old, new, lineno)))
            else:
                ops.append((index, E820Op("remove", start, end - start + 1, old, None, lineno)))
            form("dmesg" if had_prefix else "e820")
            continue
        if "e820" in msg.lower():
            counts["e820-info"] += 1  # e.g. "e820: [mem ...] available for PCI devices"
            continue
        if had_prefix:
            counts["log"] += 1
            continue
        if first_unknown is None:
            first_unknown = (lineno, raw)

    if first_unknown is not None and not full_log:
        lineno, raw = first_unknown
        raise fail(lineno, raw, "not a layout line")
    if bare or head_key is not None:
        i = bare[-1][0] if bare else len(lines) - 1
        raise fail(i + 1, lines[i], "a /sys/firmware/memmap entry needs its start, end and type")

    # /sys/firmware/memmap entries -> BIOS-e820 lines at the entry's last line
    for idx in sorted(memmap):
        got = memmap[idx]
        last = max(i for _, i in got.values())
        missing = [k for k in ("start", "end", "type") if k not in got]
        name = f"/sys/firmware/memmap/{idx}" if idx < _BARE_BASE else "a /sys/firmware/memmap entry"
        if missing:
            raise fail(last + 1, lines[last], f"{name} has no {' and no '.join(missing)}")
        t = _type_of(got["type"][0])
        if t is None:
            i = got["type"][1]
            raise fail(i + 1, lines[i], f"unknown /sys/firmware/memmap type {got['type'][0]!r}")
        for key in ("start", "end"):
            if not _BARE_HEX_RE.match(got[key][0]):
                i = got[key][1]
                raise fail(i + 1, lines[i], f"{name}/{key} is not a 0x... number")
        start, end = _range(got["start"][0], got["end"][0], got["start"][1] + 1, lines[got["start"][1]], fail)
        for _, i in got.values():
            out[i] = ""
        out[last] = f"BIOS-e820: [mem {start:#018x}-{end:#018x}] {e820_print_type(t)}"

    result = LayoutText(text="", forms=forms, notes=notes, command_line=command_line)
    if boots:
        notes.append(f"the log holds {boots + 1} boots; the last one (from line {boot_start}) is used")
    skipped = [_count(n, what) for what, n in (("code-fence line", counts["fence"]),
                                               ("shell command line", counts["prompt"]),
                                               ("journal marker", counts["journal"])) if n]
    if skipped:
        notes.append("skipped " + ", ".join(skipped))
    if counts["log"] or counts["e820-info"]:
        notes.append(f"ignored {_count(counts['log'] + counts['e820-info'], 'kernel log line')} that change "
                     f"no e820 table")

    # e820: the table used, and the update/remove lines printed after it
    tables: dict[str, list[E820Entry]] = {}
    first_seen: dict[str, int] = {}
    last_line: dict[str, int] = {}
    for i, who, entry in table_lines:
        tables.setdefault(who, []).append(entry)
        first_seen.setdefault(who, i)
        last_line[who] = i
    result.e820_tables = tables
    result.ops = [op for _, op in ops]
    if tables and "iomem" not in forms:
        chosen = max(tables, key=lambda w: (_STAGE.get(w, 0), first_seen[w]))
        result.table_label = chosen
        if command_line:
            args = _CMDLINE_MEM_RE.findall(command_line)
            if args and chosen == "user":
                notes.append(f"the command line has {' '.join(args)}: the user-defined map is used")
        to_apply = [op for i, op in ops if i > last_line[chosen]
                    or (op.op == "update" and op.new == E820_TYPE_RESERVED_KERN)]
        if to_apply:
            table = list(tables[chosen])
            for op in to_apply:
                table = op.apply(table)
            final = e820__update_table(table)
            result.e820_table = final
            result.applied = to_apply
            for i, _, _ in table_lines:
                out[i] = ""
            out.append(f"# sparsemem: the e820 table '{chosen}' after the e820 update/remove lines "
                       f"{', '.join(str(op.lineno) for op in to_apply)}")
            for e in final:
                word = "type 128" if e.type == E820_TYPE_RESERVED_KERN else e820_print_type(e.type)
                out.append(f"{chosen}: [mem {e.addr:#018x}-{e.end:#018x}] {word}")
            notes.append(f"e820 table '{chosen}' with {len(to_apply)} update/remove line"
                         f"{'s' if len(to_apply) != 1 else ''} applied (line"
                         f"{'s' if len(to_apply) != 1 else ''} {', '.join(str(op.lineno) for op in to_apply)})")
        elif len(tables) > 1:
            notes.append(f"e820 table '{chosen}' used")
    result.text = "\n".join(out) + ("\n" if out else "")
    return result


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _range(hs: str, he: str, lineno: int, raw: str, fail) -> tuple[int, int]:
    start, end = int(hs, 16), int(he, 16)
    if start > U64 or end > U64:
        raise fail(lineno, raw, "address wider than 64 bits", False)
    if start > end:
        raise fail(lineno, raw, f"start {start:#x} is above end {end:#x}", False)
    return start, end


# ---------------------------------------------------------------------------------------------
# reading


def decode_layout(data: bytes) -> str:
    """Bytes of a layout file as text: gzip-compressed files (``kern.log.2.gz``) are
    decompressed, a UTF-16 byte-order mark (PowerShell redirection) selects UTF-16, anything
    else is UTF-8 (undecodable bytes replaced; a UTF-8 byte-order mark stays for
    :func:`normalise` to strip)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise ValueError(f"not a readable gzip file: {exc}") from None
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16", errors="replace")
    return data.decode("utf-8", errors="replace")


def read_layout_bytes(path: str) -> bytes:
    """The bytes of ``path``; ``-`` is standard input."""
    if path == "-":
        stream = getattr(sys.stdin, "buffer", None)
        if stream is None:  # a replaced sys.stdin (tests): text
            return sys.stdin.read().encode("utf-8")
        return stream.read()
    with open(path, "rb") as f:
        return f.read()


def read_layout_file(path: str) -> str:
    """:func:`decode_layout` of :func:`read_layout_bytes`; raises ``OSError`` when the file
    cannot be read."""
    return decode_layout(read_layout_bytes(path))


def machine_iomem(path: Optional[str] = None) -> tuple[Optional[str], str]:
    """This machine's ``/proc/iomem``: ``(text, path)`` when it can be read and shows real
    addresses, else ``(None, reason)``: one sentence saying why (missing, unreadable, or every
    address zero because the reader is not root)."""
    path = path or os.environ.get("SPARSEMEM_PROC_IOMEM") or PROC_IOMEM
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except FileNotFoundError:
        return None, f"{path} does not exist (not a Linux machine?)"
    except OSError as exc:
        return None, f"cannot read {path}: {exc.strerror or exc}"
    ranges = [ln.split(":", 1)[0].strip() for ln in text.splitlines() if _IOMEM_RE.match(ln)]
    if not ranges:
        return None, f"{path} shows no memory ranges"
    if all(set(r) <= {"0", "-"} for r in ranges):
        uid = os.geteuid() if hasattr(os, "geteuid") else None
        who = f"this process is not root (uid {uid})" if uid not in (None, 0) else \
            "this process lacks CAP_SYS_ADMIN"
        return None, (f"{path} shows every address as 0 because {who}; run as root "
                      f"(sudo) to read this machine's map")
    return text, path
