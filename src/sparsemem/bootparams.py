"""The kernel command line of a simulated machine: the memory-hotplug boot options of
``Machine(...)`` checked, put into the words a real command line carries, and turned into
what the release makes of them (api.md "Boot options", later-eras-hotplug-evidence.md §2
item 11, §6).

A release parses each word as the kernel does (``init/main.c`` ``unknown_bootoption``,
``kernel/params.c`` ``parse_one``, the same in every release read, 5.3.0 .. 6.12.0):

- a *dotted* module parameter the release does not have (``memory_hotplug.online_policy=``
  before 5.15, ``memory_hotplug.memmap_on_memory=`` before 5.13) is dropped without a dmesg
  line: it shows only in ``/proc/cmdline`` (:attr:`BootParams.cmdline`);
- a parameter the release has, with a value its setter refuses, leaves the default and logs
  ``Booting kernel: `VALUE' invalid for parameter `NAME'`` (``parse_args``, pr_err);
- ``memhp_default_state=`` accepts any word and ignores one it does not know (before 5.7
  ``online_kernel`` and ``online_movable``).

``dyndbg`` (not a module parameter) puts the two words a user adds to see the debug prints of
memory hotplug on the command line: ``dyndbg="file mm/memory_hotplug.c +p"`` (the boot-time
query of ``lib/dynamic_debug.c`` ``ddebug_dyndbg_boot_param_cb``: the ``pr_debug`` lines of
that file) and ``mminit_loglevel=1`` (``mm/mm_init.c``: the ``mminit::`` warnings of
``mminit_dprintk``, CONFIG_DEBUG_MEMORY_INIT=y in Debian's 6.1/6.12 configs); both known to
every release 5.1 .. 6.12.

Wrong Python types and values no release accepts are ``TypeError``/``ValueError`` before
anything boots (api.md "Errors").  The module parameter files
``/sys/module/memory_hotplug/parameters/*`` are served from here (:func:`param_names`,
:func:`read_param`, :func:`write_param`).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field
from typing import Any, Optional

from . import constants as C
from ._common import kstrtox
from .errors import KernelError
from .kernel import KernelModel

__all__ = ["BootParams", "parse_boot_options", "check_numa", "ONLINE_TYPE_WORDS", "ONLINE_POLICIES",
           "PARAM_PREFIX", "DYNDBG_WORDS",
           "param_names", "read_param", "write_param", "memparse_text", "memmap_waste_line"]

#: the words of ``memhp_default_state=`` / ``auto_online_blocks`` (``online_type_to_str[]``, v5.7)
ONLINE_TYPE_WORDS = ("offline", "online", "online_kernel", "online_movable")
#: ``memory_hotplug.online_policy=`` (``online_policy_to_str[]``, v5.15)
ONLINE_POLICIES = ("contig-zones", "auto-movable")
#: where :class:`~sparsemem.memory_block.Sysfs` serves the module parameters (api.md)
PARAM_PREFIX = "module/memory_hotplug/parameters/"
#: the command-line words of ``dyndbg=True`` (module docstring)
DYNDBG_WORDS = ('dyndbg="file mm/memory_hotplug.c +p"', "mminit_loglevel=1")
#: ``MAX_NUMNODES`` of an x86_64 distribution build (CONFIG_NODES_SHIFT=10)
MAX_NUMNODES = 1 << 10


@dataclass
class BootParams:
    """What a release made of the boot options (the values the layers read).

    ``auto_online``: the online type new memory gets (``memhp_default_online_type``; one of
    :data:`ONLINE_TYPE_WORDS`).  ``memmap_on_memory``: ``False``, ``True`` or ``"force"``
    (what the parameter file shows; always ``False`` before 5.13).  ``online_policy``,
    ``auto_movable_ratio``, ``auto_movable_numa_aware``: the 5.15 parameters (their defaults
    before 5.15, where they do nothing).  ``mem``: the ``mem=`` limit in bytes or None.
    ``possible_nodes``: ``node_possible_map`` as a frozenset, or None for "the nodes of the
    layout".  ``dyndbg``: the debug prints of memory hotplug are enabled (module docstring).
    ``cmdline``: ``/proc/cmdline``.  ``lines``: the boot log lines the options cause.
    """

    auto_online: str = "offline"
    memmap_on_memory: Any = False
    online_policy: str = "contig-zones"
    auto_movable_ratio: int = 301
    auto_movable_numa_aware: bool = True
    mem: Optional[int] = None
    possible_nodes: Optional[frozenset] = None
    movable_node: bool = False
    dyndbg: bool = False
    cmdline: str = ""
    lines: list = field(default_factory=list)
    #: ``numa=``: the firmware's memory affinity (SRAT) as ``((start, end, nid), ...)``, ``end``
    #: exclusive, sorted (kmem.md K §2.1, :func:`sparsemem.dax.phys_to_target_node`); ``()``: none
    numa: tuple = ()
    #: ``efi_soft_reserve``: EFI_MEMORY_SP memory becomes Soft Reserved (False: ``efi=nosoftreserve``)
    efi_soft_reserve: bool = True


def memparse_text(n: int) -> str:
    """``n`` bytes as a command line writes it (``memparse`` reads it back): ``4G``, ``1536M``."""
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n and not n & ((1 << shift) - 1):
            return f"{n >> shift}{suffix}"
    return str(n)


def _invalid(value: str, name: str) -> str:
    """``parse_args`` pr_err for a value the parameter's setter refused."""
    return f"Booting kernel: `{value}' invalid for parameter `{name}'"


def _check_bool(name: str, v) -> bool:
    if not isinstance(v, bool):
        raise TypeError(f"{name} must be a bool, not {type(v).__name__}")
    return v


def parse_boot_options(model: KernelModel, *, movable_node=False, auto_online=False, memmap_on_memory=False,
                       online_policy="contig-zones", auto_movable_ratio=301, auto_movable_numa_aware=True,
                       mem=None, possible_nodes=None, dyndbg=False, numa=None,
                       efi_soft_reserve=True) -> BootParams:
    """Check the options (TypeError/ValueError naming the option and its accepted values) and
    return what ``model``'s release makes of them (module docstring)."""
    p = BootParams(movable_node=_check_bool("movable_node", movable_node))
    words: list[str] = []
    if movable_node:
        words.append("movable_node")

    # memhp_default_state= (auto_online): True/False or one of the four words
    if isinstance(auto_online, bool):
        want = "online" if auto_online else "offline"
    elif isinstance(auto_online, str):
        if auto_online not in ONLINE_TYPE_WORDS:
            raise ValueError(f"auto_online must be True, False or one of {', '.join(ONLINE_TYPE_WORDS)} "
                             f"(memhp_default_state=), not {auto_online!r}")
        want = auto_online
    else:
        raise TypeError(f"auto_online must be a bool or str, not {type(auto_online).__name__}")
    if want != "offline":
        words.append(f"memhp_default_state={want}")
    # before 5.7 setup_memhp_default_state knows only "online"/"offline" and ignores any
    # other word silently (the handler returns 1), so the build default (offline) stays
    known = ONLINE_TYPE_WORDS if model.online_type_strings else ONLINE_TYPE_WORDS[:2]
    p.auto_online = want if want in known else "offline"

    # memory_hotplug.memmap_on_memory= (5.13 bool, 6.6 "force")
    if memmap_on_memory == "force" or memmap_on_memory == "FORCE":
        memmap_on_memory = "force"
    elif not isinstance(memmap_on_memory, bool):
        raise (TypeError if not isinstance(memmap_on_memory, str) else ValueError)(
            f"memmap_on_memory must be False, True or 'force' (memory_hotplug.memmap_on_memory=), "
            f"not {memmap_on_memory!r}")
    if memmap_on_memory is not False:
        name = "memory_hotplug.memmap_on_memory"
        words.append(f"{name}={'force' if memmap_on_memory == 'force' else 1}")
        mode = model.memmap_on_memory_param
        if mode == "force" or memmap_on_memory is True:
            p.memmap_on_memory = memmap_on_memory if mode else False
        elif mode and model.kstrtobool_true_false:
            p.memmap_on_memory = False            # 5.19-6.5: kstrtobool reads the 'f' of force
        elif mode:
            p.lines.append(_invalid("force", name))  # 5.13-5.18: strtobool refuses it

    # memory_hotplug.online_policy= / auto_movable_ratio= / auto_movable_numa_aware= (5.15)
    if online_policy not in ONLINE_POLICIES:
        raise (ValueError if isinstance(online_policy, str) else TypeError)(
            f"online_policy must be one of {', '.join(map(repr, ONLINE_POLICIES))} "
            f"(memory_hotplug.online_policy=), not {online_policy!r}")
    if isinstance(auto_movable_ratio, bool) or not isinstance(auto_movable_ratio, int):
        raise TypeError(f"auto_movable_ratio must be an int, not {type(auto_movable_ratio).__name__}")
    if not 0 <= auto_movable_ratio <= 0xFFFFFFFF:
        raise ValueError(f"auto_movable_ratio must be between 0 and 4294967295 (uint), not {auto_movable_ratio}")
    _check_bool("auto_movable_numa_aware", auto_movable_numa_aware)
    if online_policy != "contig-zones":
        words.append(f"memory_hotplug.online_policy={online_policy}")
    if auto_movable_ratio != 301:
        words.append(f"memory_hotplug.auto_movable_ratio={auto_movable_ratio}")
    if not auto_movable_numa_aware:
        words.append("memory_hotplug.auto_movable_numa_aware=N")
    if model.online_policy_param:
        p.online_policy, p.auto_movable_ratio = online_policy, auto_movable_ratio
        p.auto_movable_numa_aware = auto_movable_numa_aware

    # mem= (x86 parse_memopt: the RAM limit as an address; also max_mem_size)
    if mem is not None:
        if isinstance(mem, bool) or not isinstance(mem, int):
            raise TypeError(f"mem must be an int (bytes) or None, not {type(mem).__name__}")
        if not 0 < mem <= 0xFFFFFFFFFFFFFFFF:
            # parse_memopt: mem=0 is refused (-EINVAL, nothing removed); memparse is 64-bit
            raise ValueError(f"mem must be a number of bytes between 1 and 2**64 - 1 (mem=), not {mem}")
        p.mem = mem
        words.append(f"mem={memparse_text(mem)}")

    # node_possible_map
    if possible_nodes is not None:
        if isinstance(possible_nodes, (str, bytes)) or not hasattr(possible_nodes, "__iter__"):
            raise TypeError(f"possible_nodes must be an iterable of node ids, not {type(possible_nodes).__name__}")
        nodes = []
        for n in possible_nodes:
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"possible_nodes must hold ints, not {type(n).__name__}")
            if not 0 <= n < MAX_NUMNODES:
                raise ValueError(f"possible_nodes: node {n} is outside 0..{MAX_NUMNODES - 1} (MAX_NUMNODES)")
            nodes.append(n)
        if 0 not in nodes:
            # x86 numa_register_memblks: node_possible_map holds every node of the boot memory
            raise ValueError(f"possible_nodes must include node 0 (the node of the boot memory and "
                             f"the boot CPU), not {sorted(nodes)}")
        p.possible_nodes = frozenset(nodes)

    if _check_bool("dyndbg", dyndbg):
        p.dyndbg = True
        words.extend(DYNDBG_WORDS)
    p.numa = check_numa(numa)
    if p.numa and p.possible_nodes is None:
        # x86 numa_init: node_possible_map = numa_nodes_parsed, every SRAT node (memory-only
        # nodes included; arch/x86/mm/numa.c numa_register_memblks 5.3, 6.1)
        p.possible_nodes = frozenset({0} | {nid for _, _, nid in p.numa})
    # efi=nosoftreserve (arch/x86/platform/efi/efi.c, 5.5+): EFI_MEMORY_SP stays conventional RAM
    p.efi_soft_reserve = _check_bool("efi_soft_reserve", efi_soft_reserve)
    if not efi_soft_reserve:
        words.append("efi=nosoftreserve")
    p.cmdline = " ".join(words)
    return p


def check_numa(numa) -> tuple:
    """The ``numa=`` boot option checked: ``None`` or an iterable of ``(start, end, nid)``
    (bytes, ``end`` exclusive, as ``struct numa_memblk``) -> a sorted tuple.  TypeError for
    wrong types; ValueError for an empty range, a node outside ``0..MAX_NUMNODES-1``, or two
    nodes' ranges that overlap (x86 ``numa_cleanup_meminfo`` refuses that: "NUMA: node %d
    [mem ...] overlaps with node %d [mem ...]", -EINVAL, and the kernel falls back to one
    dummy node)."""
    if numa is None:
        return ()
    if isinstance(numa, (str, bytes, dict)) or not hasattr(numa, "__iter__"):
        raise TypeError(f"numa must be a list of (start, end, nid) tuples, not {type(numa).__name__}")
    out = []
    for item in numa:
        if not isinstance(item, (tuple, list)) or len(item) != 3:
            raise TypeError(f"numa entries must be (start, end, nid) tuples, not {item!r}")
        for v in item:
            if isinstance(v, bool) or not isinstance(v, int):
                raise TypeError(f"numa entry {tuple(item)!r}: start, end and nid must be ints")
        start, end, nid = item
        if not 0 <= start < end <= 1 << 64:
            raise ValueError(f"numa entry [{start:#x}, {end:#x}) for node {nid} is empty or outside the "
                             f"64-bit address space (end is exclusive)")
        if not 0 <= nid < MAX_NUMNODES:
            raise ValueError(f"numa node {nid} is outside 0..{MAX_NUMNODES - 1} (MAX_NUMNODES)")
        out.append((start, end, nid))
    out.sort()
    for (s0, e0, n0), (s1, e1, n1) in zip(out, out[1:]):
        if s1 < e0 and n0 != n1:
            raise ValueError(f"NUMA: node {n1} [mem {s1:#010x}-{e1 - 1:#010x}] overlaps with node {n0} "
                             f"[mem {s0:#010x}-{e0 - 1:#010x}]")
    return tuple(out)


def memmap_waste_line(memory_block_size: int) -> str:
    """6.6 ``set_memmap_mode`` with ``force``: the pr_info_once of the pages each block loses
    when its memmap is rounded up to whole pageblocks (its call of ``memory_block_size_bytes()``
    is the one that probes, and so logs, the block size first)."""
    memmap = -(-(memory_block_size >> C.PAGE_SHIFT) * C.STRUCT_PAGE_SIZE // C.PAGE_SIZE)
    aligned = -(-memmap // C.PAGEBLOCK_NR_PAGES) * C.PAGEBLOCK_NR_PAGES
    return f"Memory hotplug will waste {aligned - memmap} pages in each memory block"


# ---------------------------------------------------------------------------------------------
# /sys/module/memory_hotplug/parameters


def param_names(model: KernelModel) -> tuple[str, ...]:
    """The files of ``/sys/module/memory_hotplug/parameters`` in ``model``'s release."""
    names = []
    if model.online_policy_param:
        names += ["auto_movable_numa_aware", "auto_movable_ratio"]
    if model.memmap_on_memory_param:
        names.append("memmap_on_memory")
    if model.online_policy_param:
        names.append("online_policy")
    return tuple(names)


def _no_such(name: str) -> KernelError:
    return KernelError(errno.ENOENT, f"/sys/{PARAM_PREFIX}{name}: No such file or directory")


def read_param(m, name: str) -> str:
    """The text of one parameter file (``param_get_bool`` ``Y``/``N``, ``param_get_uint``, the
    policy name, 6.6 ``get_memmap_mode`` ``force``)."""
    if name not in param_names(m.model):
        raise _no_such(name)
    if name == "memmap_on_memory":
        v = m.memmap_on_memory
        return "force\n" if v == "force" else ("Y\n" if v else "N\n")
    if name == "online_policy":
        return m.online_policy + "\n"
    if name == "auto_movable_ratio":
        return f"{m.auto_movable_ratio}\n"
    return "Y\n" if m.auto_movable_numa_aware else "N\n"


def write_param(m, name: str, value: str, strtobool) -> None:
    """Store one parameter as its setter does (0644 files; ``memmap_on_memory`` is 0444):
    ``sysfs_match_string`` for the policy, ``kstrtouint`` (base 0; -ERANGE above UINT_MAX) for
    the ratio, the release's ``kstrtobool`` (``strtobool``, the caller's parser) for
    numa-awareness; -EINVAL otherwise (kernel/params.c ``param_set_uint``/``param_set_bool``,
    mm/memory_hotplug.c 5.15.16 ``set_online_policy``)."""
    if name not in param_names(m.model):
        raise _no_such(name)
    if name == "memmap_on_memory":
        raise KernelError(errno.EACCES, f"/sys/{PARAM_PREFIX}{name}: Permission denied (read-only, 0444)")
    text = value[:-1] if value.endswith("\n") else value
    if name == "online_policy":
        if text not in ONLINE_POLICIES:
            raise KernelError(errno.EINVAL, f"online_policy: invalid value {value!r} "
                                            f"(expected {' or '.join(ONLINE_POLICIES)})")
        m.online_policy = text
    elif name == "auto_movable_ratio":
        # param_set_uint -> kstrtouint(val, 0): -EINVAL unparsable, -ERANGE above UINT_MAX
        n = kstrtox(value)
        if n is None:
            raise KernelError(errno.EINVAL, f"auto_movable_ratio: invalid unsigned int {value!r}")
        if n > 0xFFFFFFFF:
            raise KernelError(errno.ERANGE, f"auto_movable_ratio: {value!r} is above 4294967295 (uint)")
        m.auto_movable_ratio = n
    else:
        b = strtobool(value)
        if b is None:
            raise KernelError(errno.EINVAL, f"auto_movable_numa_aware: invalid boolean {value!r}")
        m.auto_movable_numa_aware = b

