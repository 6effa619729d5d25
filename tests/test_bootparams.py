"""The boot options of ``Machine(...)`` as each release reads them (sparsemem.bootparams; api.md
"Boot options"; later-eras-hotplug-evidence.md §2 items 11, 22, 24, §6 questions 1-5): the
argument checks, ``/proc/cmdline`` (``m.cmdline``), what a release makes of each option on both
sides of its boundary, and ``/sys/module/memory_hotplug/parameters``.

Kernel sources read: ``init/main.c`` ``unknown_bootoption`` and ``kernel/params.c``
``parse_one``/``parse_args`` (a dotted parameter a release lacks is dropped silently; a bad
value is the pr_err ``Booting kernel: `VALUE' invalid for parameter `NAME'``), 5.3.0 .. 6.12.0;
``mm/memory_hotplug.c`` ``setup_memhp_default_state`` (5.6.4: two words, others ignored;
5.7.14: four), ``memmap_on_memory`` (5.14.0-rc5 bool, 6.6.0 ``set_memmap_mode``/
``get_memmap_mode``), ``online_policy`` and friends (5.15.16); ``lib/kstrtox.c`` (5.19.0 t/f).
"""

from __future__ import annotations

import errno

import pytest

from sparsemem import KernelError, Machine
from sparsemem.bootparams import (
    DYNDBG_WORDS,
    PARAM_PREFIX,
    memmap_waste_line,
    memparse_text,
    param_names,
    parse_boot_options,
)
from sparsemem.kernel import kernel_model
from sparsemem.printk import level_of

HOT, BLK = 0x180000000, 0x8000000
PARAMS = "module/memory_hotplug/parameters"
FORCE_ERR = "Booting kernel: `force' invalid for parameter `memory_hotplug.memmap_on_memory'"


# ---------------------------------------------------------------------------------------------
# argument checks: before anything boots (api.md "Errors")

BAD = [
    ("movable_node", 1, TypeError), ("movable_node", "yes", TypeError), ("movable_node", None, TypeError),
    ("auto_online", 1, TypeError), ("auto_online", None, TypeError), ("auto_online", "on", ValueError),
    ("auto_online", "Online", ValueError), ("auto_online", "", ValueError),
    ("memmap_on_memory", 1, TypeError), ("memmap_on_memory", None, TypeError),
    ("memmap_on_memory", "maybe", ValueError), ("memmap_on_memory", "Force", ValueError),
    ("memmap_on_memory", "Y", ValueError),
    ("online_policy", "auto_movable", ValueError), ("online_policy", "", ValueError),
    ("online_policy", 1, TypeError), ("online_policy", None, TypeError),
    ("auto_movable_ratio", True, TypeError), ("auto_movable_ratio", 1.5, TypeError),
    ("auto_movable_ratio", "301", TypeError), ("auto_movable_ratio", -1, ValueError),
    ("auto_movable_ratio", 1 << 32, ValueError),
    ("auto_movable_numa_aware", 1, TypeError), ("auto_movable_numa_aware", "N", TypeError),
    ("mem", True, TypeError), ("mem", "4G", TypeError), ("mem", 4.0 * 2**30, TypeError),
    ("mem", 0, ValueError), ("mem", -1, ValueError), ("mem", 1 << 64, ValueError),
    ("possible_nodes", "01", TypeError), ("possible_nodes", b"\0", TypeError), ("possible_nodes", 1, TypeError),
    ("possible_nodes", [0, "1"], TypeError), ("possible_nodes", [0, True], TypeError),
    ("possible_nodes", [0, 1.0], TypeError), ("possible_nodes", [0, 1024], ValueError),
    ("possible_nodes", [-1, 0], ValueError), ("possible_nodes", [], ValueError), ("possible_nodes", [1], ValueError),
    ("dyndbg", 1, TypeError), ("dyndbg", "+p", TypeError), ("dyndbg", None, TypeError),
]


@pytest.mark.parametrize("name,value,exc", BAD, ids=lambda x: repr(x)[:20])
def test_bad_option_is_refused_before_boot(name, value, exc):
    """A wrong type is TypeError, a value no release accepts ValueError, each naming the option;
    :func:`parse_boot_options` and ``Machine`` agree, in every release."""
    for kernel in ("5.3", "6.12"):
        with pytest.raises(exc, match=name):
            parse_boot_options(kernel_model(kernel), **{name: value})
        with pytest.raises(exc, match=name):
            Machine(kernel, **{name: value})


@pytest.mark.parametrize("name,value", [
    ("auto_online", "online_movable"), ("memmap_on_memory", "FORCE"), ("auto_movable_ratio", 0),
    ("auto_movable_ratio", 0xFFFFFFFF), ("mem", 1), ("mem", (1 << 64) - 1), ("possible_nodes", range(1024)),
    ("possible_nodes", {0: "a", 5: "b"}), ("possible_nodes", iter([0, 0, 3])), ("dyndbg", True),
])
def test_edge_values_are_accepted(name, value):
    parse_boot_options(kernel_model("6.12"), **{name: value})


# ---------------------------------------------------------------------------------------------
# /proc/cmdline

def test_default_command_line_is_empty():
    m = Machine("6.12")
    assert m.cmdline == "" and not m.dyndbg and m.possible_nodes is None and m.max_mem_size == (1 << 64) - 1


def test_command_line_words_in_order():
    """Every option that is not its default puts the word a user writes on the command line;
    a release that lacks the parameter keeps the word (it is in /proc/cmdline) and nothing else."""
    opts = dict(movable_node=True, auto_online="online_movable", memmap_on_memory=True,
                online_policy="auto-movable", auto_movable_ratio=100, auto_movable_numa_aware=False,
                mem=16 << 30, possible_nodes=[0, 1], dyndbg=True)
    want = ("movable_node memhp_default_state=online_movable memory_hotplug.memmap_on_memory=1 "
            "memory_hotplug.online_policy=auto-movable memory_hotplug.auto_movable_ratio=100 "
            "memory_hotplug.auto_movable_numa_aware=N mem=16G "
            'dyndbg="file mm/memory_hotplug.c +p" mminit_loglevel=1')
    for kernel in ("5.2", "5.12", "6.12"):
        m = Machine(kernel, **opts)
        assert m.cmdline == want, kernel
    assert Machine("6.12", memmap_on_memory="FORCE").cmdline == "memory_hotplug.memmap_on_memory=force"
    assert Machine("6.12", auto_online=True).cmdline == "memhp_default_state=online"
    assert Machine("6.12", auto_online="offline").cmdline == ""
    assert " ".join(DYNDBG_WORDS) == Machine("5.3", dyndbg=True).cmdline


@pytest.mark.parametrize("n,text", [(4 << 30, "4G"), (1536 << 20, "1536M"), (3 << 40, "3T"), (1025, "1025"),
                                    (5 << 10, "5K"), ((4 << 30) + (1 << 20), "4097M"), (1, "1")])
def test_mem_word(n, text):
    """``mem=`` as a command line writes it (``memparse`` suffixes K, M, G, T; bytes otherwise)."""
    assert memparse_text(n) == text
    assert Machine("5.3", mem=n if n >= 1 << 30 else 4 << 30).cmdline.startswith("mem=")


def test_unknown_dotted_parameters_are_dropped_silently():
    """5.12 knows neither ``memory_hotplug.memmap_on_memory`` nor ``online_policy``: the words
    stay in /proc/cmdline, dmesg shows nothing about them, the module has no parameter files and
    hot-added memory behaves as without them (init/main.c ``unknown_bootoption``)."""
    m = Machine("5.12", memmap_on_memory=True, online_policy="auto-movable", auto_movable_ratio=0)
    plain = Machine("5.12")
    assert m.dmesg == plain.dmesg
    assert "memory_hotplug.online_policy=auto-movable" in m.cmdline.split()
    assert (m.memmap_on_memory, m.online_policy, m.auto_movable_ratio) == (False, "contig-zones", 301)
    assert m.sysfs.listdir(PARAMS) == []
    for name in ("memmap_on_memory", "online_policy"):
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"{PARAMS}/{name}"]
        assert ei.value.errno == errno.ENOENT
    m.add_memory(0, HOT, BLK)
    plain.add_memory(0, HOT, BLK)
    assert m.snapshot()["sections"] == plain.snapshot()["sections"]


# ---------------------------------------------------------------------------------------------
# memmap_on_memory: 5.12/5.13 (a08a2ae34613), 5.18/5.19 (kstrtobool), 6.5/6.6 (force)

@pytest.mark.parametrize("kernel,files", [
    ("5.12", []), ("5.13", ["memmap_on_memory"]), ("5.14", ["memmap_on_memory"]),
    ("5.15", ["auto_movable_numa_aware", "auto_movable_ratio", "memmap_on_memory", "online_policy"]),
    ("6.12", ["auto_movable_numa_aware", "auto_movable_ratio", "memmap_on_memory", "online_policy"]),
])
def test_parameter_files_per_release(kernel, files):
    m = Machine(kernel)
    assert list(param_names(m.model)) == files == m.sysfs.listdir(PARAMS) == m.sysfs.listdir("/sys/" + PARAMS)
    for name in files:
        assert f"{PARAMS}/{name}" in m.sysfs and f"/sys/{PARAMS}/{name}" in m.sysfs


@pytest.mark.parametrize("kernel,value,reads", [
    ("5.12", True, None), ("5.13", True, "Y\n"), ("5.13", False, "N\n"), ("6.5", True, "Y\n"),
    ("6.6", True, "Y\n"), ("6.6", False, "N\n"), ("6.6", "force", "force\n"), ("6.12", "FORCE", "force\n"),
])
def test_memmap_on_memory_reads(kernel, value, reads):
    m = Machine(kernel, memmap_on_memory=value)
    if reads is None:
        assert m.memmap_on_memory is False and "memmap_on_memory" not in m.sysfs.listdir(PARAMS)
    else:
        assert m.sysfs[f"{PARAMS}/memmap_on_memory"] == reads
        assert m.memmap_on_memory == {"Y\n": True, "N\n": False, "force\n": "force"}[reads]


@pytest.mark.parametrize("kernel,line,reads", [
    ("5.12", False, None),      # no such parameter: the word is dropped silently
    ("5.13", True, "N\n"),      # module_param(bool): strtobool refuses "force": parse_args pr_err
    ("5.18", True, "N\n"),
    ("5.19", False, "N\n"),     # kstrtobool takes the 'f' of "force": false, silently
    ("6.5", False, "N\n"),
    ("6.6", False, "force\n"),  # set_memmap_mode: force
])
def test_memmap_on_memory_force_per_release(kernel, line, reads):
    """``memory_hotplug.memmap_on_memory=force`` on both sides of 5.13, 5.19 and 6.6 (§2 item
    22): the pr_err of ``parse_args`` at level err on 5.13-5.18, nothing on 5.19-6.5 (N), the
    mode from 6.6 with its pr_info_once about the pages each block wastes."""
    m = Machine(kernel, memmap_on_memory="force")
    assert (FORCE_ERR in m.dmesg) is line
    if line:
        assert level_of(m.dmesg[m.dmesg.index(FORCE_ERR)]) == "err"
        assert m.dmesg.index(FORCE_ERR) < m.dmesg.index("x86/mm: Memory block size: 128MB")
    waste = "Memory hotplug will waste 0 pages in each memory block"
    if reads == "force\n":
        assert m.dmesg.index(waste) == m.dmesg.index("x86/mm: Memory block size: 128MB") + 1
        assert level_of(m.dmesg[m.dmesg.index(waste)]) == "info"
    else:
        assert waste not in m.dmesg
    assert "memory_hotplug.memmap_on_memory=force" in m.cmdline.split()
    if reads is None:
        assert m.memmap_on_memory is False and m.sysfs.listdir(PARAMS) == []
    else:
        assert m.sysfs[f"{PARAMS}/memmap_on_memory"] == reads


@pytest.mark.parametrize("bs", [128 << 20, 256 << 20, 2 << 30])
def test_waste_line(bs):
    """64-byte struct pages: every x86 block's memmap is a whole number of pageblocks (128 MiB:
    512 pages, exactly one), so 6.6 logs that 0 pages are wasted (§1 row 6.6)."""
    assert memmap_waste_line(bs) == "Memory hotplug will waste 0 pages in each memory block"
    m = Machine("6.6", memmap_on_memory="force", memory_block_size=bs)
    assert m.dmesg.count(memmap_waste_line(bs)) == 1


def test_memmap_on_memory_file_is_read_only():
    m = Machine("6.12", memmap_on_memory=True)
    with pytest.raises(KernelError) as ei:
        m.sysfs[f"{PARAMS}/memmap_on_memory"] = "N"
    assert ei.value.errno == errno.EACCES
    assert m.sysfs[f"{PARAMS}/memmap_on_memory"] == "Y\n"


# ---------------------------------------------------------------------------------------------
# online_policy, auto_movable_ratio, auto_movable_numa_aware: 5.14/5.15

@pytest.mark.parametrize("kernel", ["5.14", "5.15"])
def test_online_policy_options_per_release(kernel):
    m = Machine(kernel, online_policy="auto-movable", auto_movable_ratio=100, auto_movable_numa_aware=False)
    if kernel == "5.14":
        assert (m.online_policy, m.auto_movable_ratio, m.auto_movable_numa_aware) == ("contig-zones", 301, True)
        for name in ("online_policy", "auto_movable_ratio", "auto_movable_numa_aware"):
            assert f"{PARAMS}/{name}" not in m.sysfs
    else:
        assert (m.online_policy, m.auto_movable_ratio, m.auto_movable_numa_aware) == ("auto-movable", 100, False)
        assert (m.sysfs[f"{PARAMS}/online_policy"], m.sysfs[f"{PARAMS}/auto_movable_ratio"],
                m.sysfs[f"{PARAMS}/auto_movable_numa_aware"]) == ("auto-movable\n", "100\n", "N\n")
    assert m.dmesg == Machine(kernel).dmesg     # known or not: no line either way


def test_defaults_read_back_in_5_15():
    m = Machine("5.15")
    assert [m.sysfs[f"{PARAMS}/{n}"] for n in param_names(m.model)] == ["Y\n", "301\n", "N\n", "contig-zones\n"]


@pytest.mark.parametrize("value,want", [
    ("auto-movable", "auto-movable"), ("auto-movable\n", "auto-movable"), ("contig-zones", "contig-zones"),
    ("auto-movable\n\n", errno.EINVAL), ("auto_movable", errno.EINVAL), ("Auto-movable", errno.EINVAL),
    (" auto-movable", errno.EINVAL), ("", "contig-zones"),
])
def test_online_policy_writes(value, want):
    """``sysfs_match_string``: an exact name, one trailing newline allowed; -EINVAL otherwise
    (the value stays); an empty write never reaches the setter."""
    m = Machine("5.15")
    if isinstance(want, str):
        assert m.sysfs.write(f"{PARAMS}/online_policy", value) == len(value)
        assert m.online_policy == want == m.sysfs[f"{PARAMS}/online_policy"].strip()
    else:
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"{PARAMS}/online_policy"] = value
        assert ei.value.errno == want and m.online_policy == "contig-zones"


@pytest.mark.parametrize("value,want,err", [
    ("0", 0, None), ("100\n", 100, None), ("0x10", 16, None), ("010", 8, None), ("+7", 7, None),
    ("4294967295", 0xFFFFFFFF, None), ("4294967296", None, errno.ERANGE), ("0x100000000", None, errno.ERANGE),
    ("-1", None, errno.EINVAL), ("1.5", None, errno.EINVAL), ("12 ", None, errno.EINVAL),
    ("0x", None, errno.EINVAL), ("ten", None, errno.EINVAL),
])
def test_auto_movable_ratio_writes(value, want, err):
    """``param_set_uint`` → ``kstrtouint(val, 0)``: base prefixes, one trailing newline;
    -ERANGE above UINT_MAX, -EINVAL for anything else unparsable; the value stays on error."""
    m = Machine("6.12")
    if err:
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"{PARAMS}/auto_movable_ratio"] = value
        assert ei.value.errno == err and m.auto_movable_ratio == 301
    else:
        m.sysfs[f"{PARAMS}/auto_movable_ratio"] = value
        assert m.auto_movable_ratio == want and m.sysfs[f"{PARAMS}/auto_movable_ratio"] == f"{want}\n"


@pytest.mark.parametrize("kernel,value,want", [
    ("5.15", "N", False), ("5.15", "0\n", False), ("5.15", "y", True), ("5.15", "on", True), ("5.15", "of", False),
    ("5.15", "false", errno.EINVAL), ("5.15", "true", errno.EINVAL), ("5.15", "2", errno.EINVAL),
    ("5.19", "false", False), ("5.19", "true", True), ("5.19", "Tx", True), ("5.19", "2", errno.EINVAL),
])
def test_auto_movable_numa_aware_writes(kernel, value, want):
    """``param_set_bool`` through the release's ``kstrtobool``: t/f only from 5.19 (§2 item 22)."""
    m = Machine(kernel)
    m.auto_movable_numa_aware = not want if isinstance(want, bool) else True
    if isinstance(want, bool):
        m.sysfs[f"{PARAMS}/auto_movable_numa_aware"] = value
        assert m.auto_movable_numa_aware is want
        assert m.sysfs[f"{PARAMS}/auto_movable_numa_aware"] == ("Y\n" if want else "N\n")
    else:
        with pytest.raises(KernelError) as ei:
            m.sysfs[f"{PARAMS}/auto_movable_numa_aware"] = value
        assert ei.value.errno == want and m.auto_movable_numa_aware is True


@pytest.mark.parametrize("kernel", ["5.14", "5.15"])
def test_parameter_writes_before_their_release_are_enoent(kernel):
    m = Machine(kernel)
    for name, value in (("online_policy", "auto-movable"), ("auto_movable_ratio", "5"),
                        ("auto_movable_numa_aware", "N")):
        path = f"/sys/{PARAMS}/{name}"
        if kernel == "5.14":
            with pytest.raises(KernelError) as ei:
                m.sysfs[path] = value
            assert ei.value.errno == errno.ENOENT
            with pytest.raises(KernelError):
                m.sysfs[path]
        else:
            m.sysfs[path] = value
    assert (m.online_policy, m.auto_movable_ratio) == (("contig-zones", 301) if kernel == "5.14"
                                                       else ("auto-movable", 5))


def test_unknown_parameter_file_is_enoent():
    m = Machine("6.12")
    for bad in ("nosuch", "memmap_on_memory/x", ""):
        with pytest.raises(KernelError) as ei:
            m.sysfs[PARAM_PREFIX + bad]
        assert ei.value.errno == errno.ENOENT


# ---------------------------------------------------------------------------------------------
# auto_online words: 5.6/5.7 (online_type_to_str[], setup_memhp_default_state)

@pytest.mark.parametrize("kernel", ["5.6", "5.7"])
@pytest.mark.parametrize("word", ["offline", "online", "online_kernel", "online_movable", True, False])
def test_auto_online_words(kernel, word):
    """5.6 ``setup_memhp_default_state`` knows online/offline and ignores any other word (the
    handler returns 1: no line, the build default offline stays); 5.7 knows the four.  A block
    hot-added then is onlined as the word says."""
    m = Machine(kernel, auto_online=word)
    name = {True: "online", False: "offline"}.get(word, word)
    known = name in ("offline", "online") or kernel == "5.7"
    assert m.auto_online_type == (name if known else "offline")
    assert m.sysfs["auto_online_blocks"] == m.auto_online_type + "\n"
    assert m.auto_online is (m.auto_online_type != "offline")
    assert ("memhp_default_state=" + name in m.cmdline) is (name != "offline")
    assert m.dmesg == Machine(kernel).dmesg
    m.add_memory(0, HOT, BLK)
    zone = {"offline": None, "online": "Normal", "online_kernel": "Normal", "online_movable": "Movable"}
    blk = m.memory_block(48)
    assert (blk.state, blk.zone if blk.state == "online" else None) == (
        ("offline", None) if zone[m.auto_online_type] is None else ("online", zone[m.auto_online_type]))


@pytest.mark.parametrize("kernel", ["5.6", "5.7"])
@pytest.mark.parametrize("value", ["online", "offline\n", "online_kernel", "online_movable\n", "bogus", "Online"])
def test_auto_online_blocks_writes(kernel, value):
    """``auto_online_blocks_store``: 5.6 online/offline, 5.7 the four words (``sysfs_streq``:
    one trailing newline); -EINVAL otherwise, the value stays."""
    m = Machine(kernel, auto_online=True)
    word = value.strip()
    if word in ("online", "offline") or (kernel == "5.7" and word in ("online_kernel", "online_movable")):
        m.sysfs["auto_online_blocks"] = value
        assert m.sysfs["auto_online_blocks"] == word + "\n"
    else:
        with pytest.raises(KernelError) as ei:
            m.sysfs["auto_online_blocks"] = value
        assert ei.value.errno == errno.EINVAL and m.auto_online_type == "online"


# ---------------------------------------------------------------------------------------------
# mem=, possible_nodes, dyndbg (tests/test_top_half_eras.py has their effects per release)

def test_mem_and_possible_nodes_state():
    m = Machine("5.8", mem=16 << 30, possible_nodes=(1, 0, 1))
    assert m.max_mem_size == 16 << 30 and m.possible_nodes == frozenset({0, 1})
    assert m.boot_args["possible_nodes"] == [0, 1] and m.boot_args["mem"] == 16 << 30
    again = m.reboot()
    assert (again.max_mem_size, again.possible_nodes) == (16 << 30, frozenset({0, 1}))
    m.add_memory(1, HOT, BLK)
    assert m.nodes[1].online


def test_dyndbg_state():
    m = Machine("5.3", dyndbg=True)
    assert m.dyndbg is True and m.boot_args["dyndbg"] is True
    assert m.dmesg == Machine("5.3").dmesg        # nothing at boot is pr_debug
