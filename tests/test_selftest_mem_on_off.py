"""Port of tools/testing/selftests/memory-hotplug/mem-on-off-test.sh against Machine.sysfs
(cases.md "Memory-hotplug sysfs interface"; sparse-hotplug.md §8.6)."""

import errno
import random

import pytest

from sparsemem import KernelError, Machine

KERNELS = ("5.2", "5.3")
BLK = 128 << 20
RATIO = 10          # the script's default -r 10
ERROR = -12         # the script's default -e -12


def hotpluggable_memory(sysfs, state):
    """hotpluggable_memory(): blocks with removable == 1 in the given state."""
    out = []
    for d in sysfs.blocks():
        if sysfs[f"{d}/removable"] == "1\n" and sysfs[f"{d}/state"] == f"{state}\n":
            out.append(d)
    return out


def online_memory_expect_success(sysfs, d):
    sysfs[f"{d}/state"] = "online"
    assert sysfs[f"{d}/state"] == "online\n", f"{d}: unexpected offline state"


def offline_memory_expect_success(sysfs, d):
    sysfs[f"{d}/state"] = "offline"
    assert sysfs[f"{d}/state"] == "offline\n", f"{d}: unexpected online state"


def online_memory_expect_fail(sysfs, d):
    with pytest.raises(KernelError):
        sysfs[f"{d}/state"] = "online"
    assert sysfs[f"{d}/state"] == "offline\n", f"{d}: unexpected online"


def offline_memory_expect_fail(sysfs, d):
    with pytest.raises(KernelError):
        sysfs[f"{d}/state"] = "offline"
    assert sysfs[f"{d}/state"] == "online\n", f"{d}: unexpected offline"


def inject(m, action, error):
    # echo $error > /sys/kernel/debug/notifier-error-inject/memory/actions/<ACTION>/error
    m.memory_notifier_error_inject[action] = error


def pick(blocks, ratio, rng):
    return [d for d in blocks if rng.randrange(100) < ratio]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("core", ["compiled", "reference"])
def test_mem_on_off(kernel, core):
    m = Machine(kernel, core=core)
    m.add_memory(0, 0x180000000, 16 * BLK)      # hot-pluggable blocks (added offline)
    s = m.sysfs
    rng = random.Random(1)
    # prerequisite: at least one block with removable == 1
    assert hotpluggable_memory(s, "offline") and hotpluggable_memory(s, "online")

    # phase 1: online every offline hot-pluggable block
    for d in hotpluggable_memory(s, "offline"):
        online_memory_expect_success(s, d)
    assert not hotpluggable_memory(s, "offline")

    # phase 2: offline ratio% of the online hot-pluggable blocks (at least one)
    online = hotpluggable_memory(s, "online")
    chosen = pick(online, RATIO, rng) or online[-1:]
    for d in chosen:
        offline_memory_expect_success(s, d)

    # phase 3: online all again
    for d in hotpluggable_memory(s, "offline"):
        online_memory_expect_success(s, d)

    # phase 4: error injection
    for d in pick(hotpluggable_memory(s, "online"), RATIO, rng) or ["memory50"]:
        offline_memory_expect_success(s, d)
    inject(m, "MEM_GOING_ONLINE", ERROR)
    offline = hotpluggable_memory(s, "offline")
    assert offline
    for d in offline:
        online_memory_expect_fail(s, d)
        with pytest.raises(KernelError) as e:
            s[f"{d}/state"] = "online"
        assert e.value.errno == errno.ENOMEM
    inject(m, "MEM_GOING_ONLINE", 0)
    for d in hotpluggable_memory(s, "offline"):
        online_memory_expect_success(s, d)
    inject(m, "MEM_GOING_OFFLINE", ERROR)
    for d in pick(hotpluggable_memory(s, "online"), RATIO, rng) or ["memory50"]:
        offline_memory_expect_fail(s, d)
    inject(m, "MEM_GOING_OFFLINE", 0)
    # online_all_offline_memory (nothing left offline)
    for d in hotpluggable_memory(s, "offline"):
        online_memory_expect_success(s, d)
    assert "Injecting error (-12) to MEM_GOING_ONLINE" in m.dmesg
    assert "Injecting error (-12) to MEM_GOING_OFFLINE" in m.dmesg
    # every block's state matches its sections' ONLINE bits
    for b in m.memory_blocks:
        bits = {m.sections.online_section_nr(n)
                for n in range(b.start_section_nr, b.end_section_nr + 1) if m.sections.present_section_nr(n)}
        assert bits == {b.state == "online"}
