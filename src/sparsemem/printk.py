"""The kernel log as the simulation writes it: WARN records (cut-here banner, message,
``WARNING:`` line), the once-per-boot guard of ``WARN_ONCE``/``pr_*_once``, and the reshaping of
the core's one-line WARN records (§5.1; "§" = docs/spec/sparse-hotplug.md).  Every function
takes the machine state (anything with ``log(line, level, dynamic=...)`` and a ``once`` set).

Levels (later-eras-hotplug-evidence.md §2 item 25, §5 step 10): every record has a printk
level (:data:`LEVELS`, ``include/linux/kern_levels.h``); a record logged at ``"default"`` (a
``printk`` without ``KERN_*``, the kernel stores it at ``MESSAGE_LOGLEVEL_DEFAULT``, 4) stays
a plain ``str`` in ``dmesg``, any other is a :class:`Record` (a ``str`` that also has
``.level``; :func:`level_of` reads either).  The log buffer keeps every level, so the level
decides nothing about visibility; what does is the call site: ``pr_debug`` (dynamic debug)
and ``mminit_dprintk`` (``mminit_loglevel``) print nothing unless the boot enabled them
(``dynamic=True``; :meth:`sparsemem.state.MachineState.log` is the one place that decides).
"""

from __future__ import annotations

from typing import Hashable, Optional, Protocol

__all__ = ["WARN_SITES", "WARN_SYMBOL_SIZE", "CUT_HERE", "WARNING_PREFIX", "LEVELS", "DEFAULT_LEVEL", "Record",
           "level_of", "Printk", "warning_line", "warn_lines", "warn_records", "core_warning_lines",
           "core_records", "warn", "warn_once", "warn_on_once", "first_time", "pr_once", "pr_debug"]

#: the printk levels, ``KERN_EMERG`` (0) .. ``KERN_DEBUG`` (7), then ``KERN_DEFAULT`` (a
#: ``printk`` that names none; include/linux/kern_levels.h, 5.3 .. 6.12)
LEVELS = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug", "default")
#: the level of a record logged without one (and of every plain ``str`` in ``dmesg``)
DEFAULT_LEVEL = "default"


class Record(str):
    """One ``dmesg`` record whose level is not :data:`DEFAULT_LEVEL`: its text (the ``str``
    itself, so it compares, hashes and prints as the text) and ``level`` (one of
    :data:`LEVELS`)."""

    level: str

    def __new__(cls, text: str, level: str = DEFAULT_LEVEL) -> "Record":
        rec = str.__new__(cls, text)
        rec.level = level
        return rec

    def __reduce__(self):
        return (Record, (str(self), self.level))


def level_of(record: str) -> str:
    """The printk level of one ``dmesg`` record (:data:`DEFAULT_LEVEL` for a plain ``str``)."""
    return getattr(record, "level", DEFAULT_LEVEL)


class Printk(Protocol):
    """What the log functions need of a machine: ``log`` and the once-guard's key set."""

    once: set

    def log(self, line: str, level: str = DEFAULT_LEVEL, *, dynamic: bool = False) -> None: ...


#: Where each modelled WARN sits: symbol -> (source file, line).  The simulator has no object
#: code, so the numbers are *nominal*: a fixed, plausible line per site (roughly where the
#: function sits in the v5.3 sources, not checked against a build), and every WARNING line
#: uses the offset ``+0x0`` and the size ``/0x100`` (:data:`WARN_SYMBOL_SIZE`).  They are
#: consistent from run to run, so dmesg comparisons stay stable.
WARN_SITES = {
    "check_pfn_span": ("mm/memory_hotplug.c", 320),
    "check_hotplug_memory_addressable": ("mm/memory_hotplug.c", 287),  # v5.5-v5.11
    "__add_pages": ("mm/memory_hotplug.c", 335),  # "Misaligned" WARN from v6.0
    "__remove_pages": ("mm/memory_hotplug.c", 530),  # "Misaligned" WARN from v6.0
    "devm_memremap_pages": ("mm/memremap.c", 188),
    "devm_memremap_pages_release": ("mm/memremap.c", 100),
    "memremap_pages": ("mm/memremap.c", 223),  # v5.4-v5.9 (later-eras-nvdimm-evidence.md R5)
    "memunmap_pages": ("mm/memremap.c", 134),  # v5.4+ leak WARN_ONCE (R5)
    "pagemap_range": ("mm/memremap.c", 198),  # v5.10+ (R12)
    "__remove_section": ("mm/memory_hotplug.c", 510),
    "add_pages": ("arch/x86/mm/init_64.c", 860),
    "arch_remove_memory": ("arch/x86/mm/init_64.c", 1210),
    "mminit_validate_memmodel_limits": ("mm/sparse.c", 180),
    "online_mem_sections": ("mm/sparse.c", 620),
    "offline_mem_sections": ("mm/sparse.c", 640),
    "section_deactivate": ("mm/sparse.c", 760),
    "create_memory_block_devices": ("drivers/base/memory.c", 780),
    "remove_memory_block_devices": ("drivers/base/memory.c", 810),
    "pages_correctly_probed": ("drivers/base/memory.c", 200),
    "state_show": ("drivers/base/memory.c", 170),
    # sites that first exist after v5.3: the line of the first release read that has them
    "add_memory_resource": ("mm/memory_hotplug.c", 1030),  # node_possible WARN, v5.8 (5.8.1)
    "rcu_sync_exit": ("kernel/rcu/sync.c", 170),  # WARN_ON_ONCEs at 170 and 171 (5.6.4 .. 5.8.1)
    "release_mem_region_adjustable": ("kernel/resource.c", 1325),  # adjust WARN_ON_ONCEs, v5.10.0
    "online_pages": ("mm/memory_hotplug.c", 790),  # range WARN_ON_ONCE, v5.10.0
    "offline_pages": ("mm/memory_hotplug.c", 1463),  # range WARN_ON_ONCE, v5.10.0 (zone one: v5.18)
    "try_remove_memory": ("mm/memory_hotplug.c", 2209),  # "Altmap not fully unmapped", v6.6.0-v6.7
    "remove_memory_blocks_and_altmaps": ("mm/memory_hotplug.c", 1421),  # same WARN and a WARN_ON_ONCE, v6.8.1
    "memory_blocks_have_altmaps": ("mm/memory_hotplug.c", 2243),  # mixed altmaps WARN_ON_ONCE, v6.8.1
}
WARN_SYMBOL_SIZE = 0x100
CUT_HERE = "------------[ cut here ]------------"
#: How the WARNING line of a WARN record starts (:func:`warning_line`).
WARNING_PREFIX = "WARNING: CPU:"

#: Core WARN sites (``SectionTable.dmesg``) whose kernel WARN has no message (``WARN_ON`` /
#: ``WARN_ON_ONCE``): the core's explanatory text is dropped when forwarding, because a
#: real kernel prints only the banner and the WARNING line there.
_CORE_WARN_ON = {"__remove_section", "online_mem_sections", "offline_mem_sections"}
#: Core WARN_ON sites followed by a debug print of their own (``mminit_dprintk``, printed
#: only with CONFIG_DEBUG_MEMORY_INIT and ``mminit_loglevel``): the text follows the
#: WARNING line with the kernel's ``mminit::<prefix>`` tag.
_CORE_WARN_ON_THEN_DPRINTK = {"mminit_validate_memmodel_limits": "mminit::pfnvalidation "}


def warning_line(where: str) -> str:
    """The ``WARNING: CPU: 0 PID: 1 at <file>:<line> <symbol>+0x0/0x100`` line of a WARN at
    ``where`` (``"<file> <symbol>"``, or ``"<file>:<line> <symbol>"`` for a function with
    several WARN sites; line numbers and offsets are nominal, see :data:`WARN_SITES`) (§5.1)."""
    file, _, symbol = where.rpartition(" ")
    site_file, line = WARN_SITES.get(symbol, (file, 0))
    file, sep, at = file.partition(":")
    if sep:
        line = int(at)
    return f"WARNING: CPU: 0 PID: 1 at {file or site_file}:{line} {symbol}+0x0/{WARN_SYMBOL_SIZE:#x}"


def warn_records(where: str, text: Optional[str] = None) -> list[tuple[str, str]]:
    """``(text, level)`` of the dmesg records of one WARN, as x86 prints them (§5.1): the
    ``------------[ cut here ]------------`` banner (pr_warn), the message (only for
    ``WARN(cond, fmt...)``; a ``WARN_ON`` has none; ``__warn_printk`` prints it without a
    level), then :func:`warning_line` (pr_warn in ``__warn``; kernel/panic.c 5.3, 6.1).
    Register dump and backtrace are not modelled."""
    out = [(CUT_HERE, "warning")]
    if text is not None:
        out.append((text, DEFAULT_LEVEL))
    out.append((warning_line(where), "warning"))
    return out


def warn_lines(where: str, text: Optional[str] = None) -> list[str]:
    """The texts of :func:`warn_records`."""
    return [line for line, _ in warn_records(where, text)]


def core_records(line: str) -> list[tuple[str, str, bool]]:
    """Reshape one of the core's single-line WARN records (``WARNING: at <file> <symbol>:
    <text>``, from ``SectionTable.dmesg``) into ``(text, level, dynamic)`` records: those of
    :func:`warn_records`, and for a WARN_ON followed by ``mminit_dprintk`` its
    ``mminit::<prefix>`` line, a pr_warn printed only when ``mminit_loglevel`` is above 0
    (mm/internal.h 5.3; ``dynamic``).  Any other line is returned unchanged, at the default
    level."""
    if not line.startswith("WARNING: at "):
        return [(line, DEFAULT_LEVEL, False)]
    where, sep, text = line[len("WARNING: at "):].partition(": ")
    if not sep:
        return [(line, DEFAULT_LEVEL, False)]
    symbol = where.rpartition(" ")[2]
    if symbol in _CORE_WARN_ON:
        return [(t, lv, False) for t, lv in warn_records(where)]
    if symbol in _CORE_WARN_ON_THEN_DPRINTK:
        return ([(t, lv, False) for t, lv in warn_records(where)]
                + [(_CORE_WARN_ON_THEN_DPRINTK[symbol] + text, "warning", True)])
    return [(t, lv, False) for t, lv in warn_records(where, text)]


def core_warning_lines(line: str) -> list[str]:
    """The texts of :func:`core_records` (every record, whether the boot prints it or not)."""
    return [text for text, _, _ in core_records(line)]


def warn(m: Printk, where: str, text: Optional[str] = None) -> None:
    """A ``WARN(1, text)`` at ``where`` (``"<file> <symbol>"``; ``WARN_ON`` when ``text`` is
    None): the records of :func:`warn_records` (§5.1), after any pending core lines (``m.log``
    forwards them first).  The only WARN emitter; the ``*_once`` forms guard it."""
    for line, level in warn_records(where, text):
        m.log(line, level)


def first_time(m: Printk, key: Hashable) -> bool:
    """The once-per-boot guard of ``WARN_ONCE`` / ``pr_*_once``: True (and ``key`` is
    remembered) the first time ``key`` is seen on this machine."""
    if key in m.once:
        return False
    m.once.add(key)
    return True


def warn_once(m: Printk, key: Hashable, where: str, text: Optional[str] = None) -> None:
    """``WARN_ONCE(cond, text)`` (``WARN_ON_ONCE`` when ``text`` is None): :func:`warn`,
    once per boot for each ``key``."""
    if first_time(m, key):
        warn(m, where, text)


def warn_on_once(m: Printk, key: Hashable, where: str) -> None:
    """``WARN_ON_ONCE(cond)`` (no message): once per boot, banner and WARNING line only."""
    warn_once(m, key, where)


def pr_once(m: Printk, key: Hashable, line: str, level: str = DEFAULT_LEVEL) -> None:
    """``pr_*_once``: log ``line`` once per boot for each ``key`` (the WARN_ONCE guard)."""
    if first_time(m, key):
        m.log(line, level)


def pr_debug(m: Printk, line: str) -> None:
    """``pr_debug(...)``: a debug record that a kernel built with CONFIG_DYNAMIC_DEBUG (every
    distribution build) prints only when dynamic debug enables its call site, here
    ``Machine(dyndbg=True)`` (later-eras-hotplug-evidence.md §0.2, §2 item 25)."""
    m.log(line, "debug", dynamic=True)
