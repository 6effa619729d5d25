"""``Machine.reboot(**overrides)`` rebuilds from ``boot_args`` (docs/machine.md "Reboot").

Every boot option survives a reboot, set to a value other than its default (the old reboot
with a new ``iomem`` dropped ``auto_online`` and ``movable_node``), and every option can be
overridden.
"""

from __future__ import annotations

import pytest

from helpers import RAM_5G, MiB
from helpers import RAM_5G_PMEM_2G as PMEM
from sparsemem import Machine
from sparsemem.kernel import DEFAULT_KERNEL
from sparsemem.nvdimm import bus

MOVED = RAM_5G + "200000000-27fffffff : Persistent Memory\n"

#: a value other than the constructor's default, for every boot option
NON_DEFAULT = {
    "kernel": "5.2",
    "max_physmem_bits": 52,
    "memory_block_size": 256 * MiB,
    "hypervisor": False,
    "core": "reference",
    "movable_node": True,
    "auto_online": True,
    "iomem": PMEM,
    "phys_bits": 40,
    "memmap_on_memory": True,
    "online_policy": "auto-movable",
    "auto_movable_ratio": 100,
    "auto_movable_numa_aware": False,
    "mem": 16 << 30,
    "possible_nodes": [0, 1],
    "numa": [(0x300000000, 0x340000000, 1)],
    "efi_soft_reserve": False,
    "dyndbg": True,
}
#: another value than NON_DEFAULT to override with (the default where there are only two)
OVERRIDE = {
    "kernel": "5.10",
    "max_physmem_bits": 46,
    "memory_block_size": 512 * MiB,
    "hypervisor": True,
    "core": "compiled",
    "movable_node": False,
    "auto_online": False,
    "iomem": MOVED,
    "phys_bits": 44,
    "memmap_on_memory": "force",
    "online_policy": "contig-zones",
    "auto_movable_ratio": 0,
    "auto_movable_numa_aware": True,
    "mem": 32 << 30,
    "possible_nodes": [0, 2],
    "numa": [(0x300000000, 0x340000000, 2)],
    "efi_soft_reserve": True,
    "dyndbg": False,
}

#: the kernel command-line word of each option that has one (what /proc/cmdline shows)
WORDS = {"memmap_on_memory": "memory_hotplug.memmap_on_memory", "online_policy": "memory_hotplug.online_policy",
         "auto_movable_ratio": "memory_hotplug.auto_movable_ratio",
         "auto_movable_numa_aware": "memory_hotplug.auto_movable_numa_aware", "mem": "mem"}


def _word(m, name):
    """The value of option ``name`` as ``m.cmdline`` carries it (None: not on the line)."""
    for w in m.cmdline.split():
        key, _, value = w.partition("=")
        if key == WORDS[name]:
            return value
    return None


def test_every_option_is_a_boot_arg():
    m = Machine()
    assert set(m.boot_args) == set(NON_DEFAULT) == set(OVERRIDE)
    assert m.boot_args["kernel"] == DEFAULT_KERNEL
    for name, value in NON_DEFAULT.items():
        assert m.boot_args[name] != value, name


@pytest.mark.parametrize("name", sorted(NON_DEFAULT))
def test_reboot_keeps_each_option(name):
    m = Machine(**{name: NON_DEFAULT[name]})
    new = m.reboot()
    assert new.boot_args == m.boot_args
    assert new.boot_args[name] == (m.iomem_text() if name == "iomem" else NON_DEFAULT[name])
    assert new is not m and new.snapshot() == Machine(**m.boot_args).snapshot()


def test_reboot_keeps_all_options_at_once():
    m = Machine(**NON_DEFAULT)
    m.add_memory(0, 0x200000000, 256 * MiB)       # hot-plugged memory is not part of the boot layout
    new = m.reboot()
    assert new.boot_args == m.boot_args
    assert (new.kernel, new.core, new.hypervisor, new.movable_node, new.auto_online, new.memory_block_size,
            new.sections.max_physmem_bits) == ("5.2", "reference", False, True, True, 256 * MiB, 52)
    assert new.iomem_text() == m.boot_args["iomem"] != m.iomem_text()


@pytest.mark.parametrize("name", sorted(OVERRIDE))
def test_override_takes_effect(name):
    m = Machine(**NON_DEFAULT)
    new = m.reboot(**{name: OVERRIDE[name]})
    want = {**m.boot_args, name: OVERRIDE[name]}
    if name == "iomem":
        want["iomem"] = new.iomem_text()
        assert new.regions[0].start == 0x200000000 != m.regions[0].start
    assert new.boot_args == want
    seen = {"kernel": new.kernel, "max_physmem_bits": new.sections.max_physmem_bits,
            "memory_block_size": new.memory_block_size, "hypervisor": new.hypervisor, "core": new.core,
            "movable_node": new.movable_node, "auto_online": new.auto_online, "iomem": new.iomem_text(),
            "phys_bits": new.phys_bits, "possible_nodes": sorted(new.possible_nodes),
            "numa": [tuple(x) for x in new.numa],
            "efi_soft_reserve": "efi=nosoftreserve" not in new.cmdline.split(),
            "dyndbg": new.dyndbg and 'dyndbg="file mm/memory_hotplug.c +p"' in new.cmdline}
    if name in WORDS:
        # the 5.2 row has none of the module parameters: they show only on the command line
        value = _word(new, name)
        seen[name] = {"memmap_on_memory": {None: False, "1": True, "force": "force"},
                      "online_policy": {None: "contig-zones", "auto-movable": "auto-movable"},
                      "auto_movable_ratio": {None: 301, "0": 0, "100": 100},
                      "auto_movable_numa_aware": {None: True, "N": False},
                      "mem": {None: None, "16G": 16 << 30, "32G": 32 << 30}}[name][value]
    assert seen[name] == want[name]


def test_new_layout_keeps_the_other_options():
    """The bug of the old reboot: ``reboot(iomem=...)`` booted with the defaults of
    ``auto_online`` and ``movable_node``."""
    m = Machine(**NON_DEFAULT)
    for new in (m.reboot(iomem=MOVED), m.reboot(MOVED), bus.reboot(m, iomem=MOVED, kernel="5.3")):
        assert new.auto_online is True and new.movable_node is True
        assert {k: v for k, v in new.boot_args.items() if k not in ("iomem", "kernel")} == \
               {k: v for k, v in m.boot_args.items() if k not in ("iomem", "kernel")}
    assert bus.reboot(m, iomem=MOVED, kernel="5.3").kernel == "5.3"
    assert bus.reboot(m).boot_args == m.boot_args


def test_reboot_carries_the_media():
    m = Machine(**NON_DEFAULT)
    ns = m.regions[0].create_namespace(size=256 * MiB)
    (again,) = m.reboot().regions[0].namespaces
    assert again.to_dict() == ns.to_dict()


def test_unknown_override_is_a_type_error():
    m = Machine()
    with pytest.raises(TypeError, match="unknown boot arguments"):
        m.reboot(kernal="5.2")
