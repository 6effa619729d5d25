"""The kernel log as the simulation writes it: WARN records (cut-here banner, message,
``WARNING:`` line), the once-per-boot guard of ``WARN_ONCE``/``pr_*_once``, and the reshaping of
the core's one-line WARN records (§5.1; "§" = docs/spec/sparse-hotplug.md).  Every function
takes the machine state (anything with ``log(line)`` and a ``once`` set).
"""

from __future__ import annotations

from typing import Hashable, Optional, Protocol

__all__ = ["WARN_SITES", "WARN_SYMBOL_SIZE", "CUT_HERE", "WARNING_PREFIX", "Printk", "warning_line",
           "warn_lines", "core_warning_lines", "warn", "warn_once", "warn_on_once", "first_time", "pr_once"]


class Printk(Protocol):
    """What the log functions need of a machine: ``log`` and the once-guard's key set."""

    once: set

    def log(self, line: str) -> None: ...


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
    ``where`` (``"<file> <symbol>"``; line numbers and offsets are nominal, see
    :data:`WARN_SITES`) (§5.1)."""
    file, _, symbol = where.rpartition(" ")
    site_file, line = WARN_SITES.get(symbol, (file, 0))
    return f"WARNING: CPU: 0 PID: 1 at {file or site_file}:{line} {symbol}+0x0/{WARN_SYMBOL_SIZE:#x}"


def warn_lines(where: str, text: Optional[str] = None) -> list[str]:
    """The dmesg records of one WARN, as x86 prints them (§5.1): ``------------[ cut here
    ]------------``, the message (only for ``WARN(cond, fmt...)``; a ``WARN_ON`` has none),
    then :func:`warning_line`.  Register dump and backtrace are not modelled."""
    out = [CUT_HERE]
    if text is not None:
        out.append(text)
    out.append(warning_line(where))
    return out


def core_warning_lines(line: str) -> list[str]:
    """Reshape one of the core's single-line WARN records (``WARNING: at <file> <symbol>:
    <text>``, from ``SectionTable.dmesg``) into the records of :func:`warn_lines`; any other
    line is returned unchanged (as a one-element list)."""
    if not line.startswith("WARNING: at "):
        return [line]
    where, sep, text = line[len("WARNING: at "):].partition(": ")
    if not sep:
        return [line]
    symbol = where.rpartition(" ")[2]
    if symbol in _CORE_WARN_ON:
        return warn_lines(where)
    if symbol in _CORE_WARN_ON_THEN_DPRINTK:
        return warn_lines(where) + [_CORE_WARN_ON_THEN_DPRINTK[symbol] + text]
    return warn_lines(where, text)


def warn(m: Printk, where: str, text: Optional[str] = None) -> None:
    """A ``WARN(1, text)`` at ``where`` (``"<file> <symbol>"``; ``WARN_ON`` when ``text`` is
    None): the records of :func:`warn_lines` (§5.1), after any pending core lines (``m.log``
    forwards them first).  The only WARN emitter; the ``*_once`` forms guard it."""
    for line in warn_lines(where, text):
        m.log(line)


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


def pr_once(m: Printk, key: Hashable, line: str) -> None:
    """``pr_*_once``: log ``line`` once per boot for each ``key`` (the WARN_ONCE guard)."""
    if first_time(m, key):
        m.log(line)
