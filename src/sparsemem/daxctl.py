"""``daxctl`` (pmem/ndctl v81: ``daxctl/device.c``, ``daxctl/lib/libdaxctl.c``,
``daxctl/json.c``) over a simulated dax device: ``reconfigure-device``, ``online-memory``,
``offline-memory`` and the device's JSON object (kmem.md K §8, corrected in
docs/spec/kmem-evidence.md).

Every sysfs access of the real tool is an operation of the kernel model here: a write to
``/sys/bus/dax/drivers/<drv>/{new_id,bind,remove_id,unbind}`` goes to the dax bus of
:mod:`sparsemem.dax` (through the device's ``bus``), a read or write of
``/sys/devices/system/node/nodeN/memoryM/{state,removable,valid_zones}`` to
:mod:`sparsemem.memory_block`.  What daxctl prints on stderr is collected in the device's
``stderr`` list; a failure raises :class:`~sparsemem.errors.KernelError` with the errno daxctl
returns and its message.  One deviation: daxctl visits the ``memoryN`` links of the node
directory in ``readdir`` (kernfs hash) order; the model visits them by ascending block id.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from . import memory_block as MB
from .errors import KernelError

__all__ = ["reconfigure", "online_memory", "offline_memory", "dev_to_json", "memory_blocks", "DAX_MODULES",
           "RACE_WARNING"]

#: ``dax_modules[]`` (libdaxctl-private.h): the driver of each mode
DAX_MODULES = {"devdax": "device_dax", "system-ram": "kmem"}

#: ``dev_online_memory``'s warning when some blocks were online already (device.c v81)
RACE_WARNING = ("  WARNING: detected a race while onlining memory\n"
                "  Some memory may not be in the expected zone. It is\n"
                "  recommended to disable any other onlining mechanisms,\n"
                "  and retry. If onlining is to be left to other agents,\n"
                "  use the --no-online option to suppress this warning")


def _strerror(rc: int) -> str:
    return os.strerror(-rc)


class _Run:
    """One daxctl command: its options and its stderr."""

    def __init__(self, m, dev, *, online: bool = True, movable: bool = True, force: bool = False,
                 record: bool = True):
        self.m, self.dev = m, dev
        self.no_online, self.no_movable, self.force = not online, not movable, force
        self.err: list[str] = []
        if record:
            dev.stderr = self.err

    def say(self, text: str) -> None:
        self.err.extend(text.split("\n"))

    def lib(self, fn: str, text: str) -> None:
        """libdaxctl's ``err(ctx, ...)``: ``libdaxctl: <function>: <text>``."""
        self.err.append(f"libdaxctl: {fn}: {text}")


# ---------------------------------------------------------------------------------------------
# libdaxctl: the memory blocks of a device


def memory_blocks(m, dev) -> list:
    """The blocks ``daxctl_memory_op`` visits: every ``memoryN`` linked under
    ``node<target_node>`` (``blk.nid``) whose ``phys_index * block_size`` lies in ``[resource,
    resource + size - 1]`` (``memblock_in_dev``: ``resource`` is the sysfs value, the first
    range's start; ``size`` the device's total), ascending id."""
    start = dev.resource
    end = start + dev.size - 1
    nid = dev.target_node
    return [b for b in m.memory_blocks if b.nid == nid and start <= b.start <= end]


def _is_online(blk) -> bool:
    return MB.STATE_NAMES.get(blk.state_value, "").startswith("online")


def _write_state(m, blk, word: str) -> int:
    """``sysfs_write_attr_quiet(<block>/state, word)``: 0 or -errno (the write includes the NUL)."""
    try:
        rc = MB.state_store(m, blk, word, len(word) + 1)
    except KernelError as exc:
        return -exc.errno
    return rc if rc < 0 else 0


def _memory_op(run: _Run, op: str) -> tuple[int, Any]:
    """``daxctl_memory_op``: ``(count of blocks for which the op returned 0, zone)``, or
    ``(-errno, None)`` at the first block whose op failed (the walk stops there)."""
    m, dev = run.m, run.dev
    if dev.target_node < 0:
        run.lib("daxctl_memory_op", f"{dev.name}: Failed to get node_path")
        return -errno.ENXIO, None
    count, zone, mixed = 0, None, False
    for blk in memory_blocks(m, dev):
        if op == "count":
            rc = 0
        elif op == "is_online":
            rc = 0 if _is_online(blk) else 1
        elif op in ("online", "online_no_movable"):
            if _is_online(blk):
                rc = 1
            else:
                rc = _write_state(m, blk, "online_movable" if op == "online" else "online")
                if rc and _is_online(blk):
                    rc = 0
        elif op == "offline":
            if not _is_online(blk):
                rc = 1
            elif MB.show_removable(blk).strip() == "0":
                run.lib("offline_one_memblock", f"{dev.name}: memory{blk.id} is unremovable")
                rc = -errno.EOPNOTSUPP
            else:
                rc = _write_state(m, blk, "offline")
                if rc:
                    if not _is_online(blk):
                        rc = 1
                    else:
                        run.lib("offline_one_memblock", f"{dev.name}: Failed to offline "
                                f"/sys/devices/system/node/node{dev.target_node}/memory{blk.id}/state: "
                                f"{_strerror(rc)}")
        else:   # "zone": memblock_find_zone
            if not _is_online(blk):
                rc = -errno.ENXIO
            else:
                z = MB.show_valid_zones(m, blk).strip()
                cur = z if z in ("Movable", "Normal") else "mixed"
                if zone is None:
                    zone = cur
                elif zone != cur:
                    mixed = True
                rc = 0
        if rc < 0:
            return rc, None
        if rc == 0:
            count += 1
    if mixed:
        zone = "mixed"
    return count, zone


def _online_with_zone(run: _Run) -> int:
    """``daxctl_memory_online_with_zone``: online every offline block (``online_movable``, or
    ``online`` with --no-movable); the zone check after it runs only when no block was onlined
    here (it returns early with the positive count)."""
    rc, _ = _memory_op(run, "online_no_movable" if run.no_movable else "online")
    if rc:
        return rc
    rc, zone = _memory_op(run, "zone")
    if rc < 0:
        return rc
    if zone != ("Normal" if run.no_movable else "Movable"):
        run.lib("daxctl_memory_online_with_zone", f"{run.dev.name}:\n  WARNING: detected a race while onlining "
                "memory\n  See 'man daxctl-reconfigure-device' for more details")
        return -errno.EBUSY
    return rc


def _dev_online_memory(run: _Run) -> int:
    """``dev_online_memory`` (device.c v81)."""
    dev = run.dev
    name = dev.name
    total, _ = _memory_op(run, "count")
    if total < 0:
        run.say(f"{name}: failed to get number of memory sections")
        return total
    num_on, _ = _memory_op(run, "is_online")
    if num_on < 0:
        run.say(f"{name}: failed to determine online state: {_strerror(num_on)}")
        return num_on
    if num_on:
        run.say(f"{name}:\n{RACE_WARNING}")
    if num_on == total:
        run.say(f"{name}: all memory sections ({num_on}) already online")
        return 1
    if num_on > 0:
        run.say(f"{name}: {num_on} memory section{'' if num_on == 1 else 's'} already online")
    rc = _online_with_zone(run)
    if rc < 0:
        run.say(f"{name}: failed to online memory: {_strerror(rc)}")
        return rc
    num_on, _ = _memory_op(run, "is_online")
    if num_on < 0:
        run.say(f"{name}: failed to determine online state: {_strerror(num_on)}")
        return num_on
    if num_on < total:
        run.say(f"{name}: failed to online {total - num_on} memory sections")
        return -errno.ENXIO
    return 0


def _dev_offline_memory(run: _Run) -> int:
    """``dev_offline_memory`` (device.c v81)."""
    name = run.dev.name
    total, _ = _memory_op(run, "count")
    if total < 0:
        run.say(f"{name}: failed to get number of memory sections")
        return total
    num_on, _ = _memory_op(run, "is_online")
    if num_on < 0:
        run.say(f"{name}: failed to determine online state: {_strerror(num_on)}")
        return num_on
    num_off = total - num_on
    if num_off == total:
        run.say(f"{name}: all memory sections ({num_off}) already offline")
        return 1
    if num_off:
        run.say(f"{name}: {num_off} memory section{'' if num_off == 1 else 's'} already offline")
    rc, _ = _memory_op(run, "offline")
    if rc < 0:
        run.say(f"{name}: failed to offline memory: {_strerror(rc)}")
        return rc
    num_on, _ = _memory_op(run, "is_online")
    if num_on < 0:
        run.say(f"{name}: failed to determine online state: {_strerror(num_on)}")
        return num_on
    if num_on:
        run.say(f"{name}: failed to offline {num_on} memory sections")
        return -errno.ENXIO
    return 0


# ---------------------------------------------------------------------------------------------
# libdaxctl: enable / disable


def _dev_enable(run: _Run, mode: str) -> int:
    """``daxctl_dev_enable``: ``new_id`` then ``bind`` of the mode's driver (``daxctl_bind``; the
    ``new_id`` write already attaches the driver to every matching unbound device); not bound
    afterwards -> "failed to enable" and the ``bind`` write's error, else -ENXIO."""
    dev = run.dev
    if dev.enabled:
        return 0
    drv = DAX_MODULES[mode]
    bus = dev.bus
    bus.new_id(drv, dev.name)
    rc = bus.bind(drv, dev.name)
    if not dev.enabled:
        run.lib("daxctl_dev_enable", f"{dev.name}: failed to enable")
        return rc if rc else -errno.ENXIO
    return 0


def _dev_disable(run: _Run) -> int:
    """``daxctl_dev_disable``: ``remove_id`` and ``unbind`` of the bound driver."""
    dev = run.dev
    if not dev.enabled:
        return 0
    bus = dev.bus
    bus.remove_id(dev.driver, dev.name)
    bus.unbind(dev)
    if dev.enabled:
        run.lib("daxctl_dev_disable", f"{dev.name}: failed to disable")
        return -errno.EBUSY
    return 0


def _will_auto_online(m) -> bool:
    """``daxctl_dev_will_auto_online_memory``: ``auto_online_blocks`` begins with ``online``."""
    return m.sysfs["auto_online_blocks"].startswith("online")


# ---------------------------------------------------------------------------------------------
# the commands


def _mode_system_ram(run: _Run) -> int:
    """``reconfig_mode_system_ram`` (device.c v81; K §8.1)."""
    m, dev = run.m, run.dev
    if run.no_online or not run.no_movable:
        if not run.force and _will_auto_online(m):
            run.say(f"{dev.name}: error: kernel policy will auto-online memory, aborting")
            return -errno.EBUSY
    skip_enable = False
    if dev.enabled:
        if dev.mode == "system-ram":        # disable_devdax_device: daxctl_dev_get_memory != NULL
            run.say(f"{dev.name} was already in system-ram mode")
            skip_enable = True
        else:
            rc = _dev_disable(run)
            if rc:
                run.say(f"{dev.name}: disable failed: {_strerror(rc)}")
                return rc
    if not skip_enable:
        rc = _dev_enable(run, "system-ram")
        if rc:
            return rc
    if run.no_online:
        return 0
    return _dev_online_memory(run)


def _mode_devdax(run: _Run) -> int:
    """``reconfig_mode_devdax`` (device.c v81; K §8.2)."""
    dev = run.dev
    if dev.enabled:
        # disable_system_ram_device
        if dev.mode != "system-ram":
            run.say(f"{dev.name} was already in devdax mode")
            return 1
        if run.force:
            rc = _dev_offline_memory(run)
            if rc < 0:
                return rc
        num_on, _ = _memory_op(run, "is_online")
        if num_on < 0:
            run.say(f"{dev.name}: failed to determine online state: {_strerror(num_on)}")
            return num_on
        if num_on > 0:
            # with -v: "found %d memory sections online" / "refusing to change modes"
            run.say(f"{dev.name}: found {num_on} memory sections online")
            run.say(f"{dev.name}: refusing to change modes")
            return -errno.EBUSY
        rc = _dev_disable(run)
        if rc:
            run.say(f"{dev.name}: disable failed: {_strerror(rc)}")
            return rc
    return _dev_enable(run, "devdax")


def _fail(run: _Run, rc: int, error: str, summary: str) -> KernelError:
    """The command's last two stderr lines and the KernelError carrying every line."""
    run.say(f"{error}: {_strerror(rc)}")
    run.say(summary)
    lines = [ln for ln in run.err if ln.strip()]
    return KernelError(-rc, " | ".join(lines))


def reconfigure(m, dev, mode: str, *, online: bool = True, movable: bool = True, force: bool = False) -> dict:
    """``daxctl reconfigure-device --mode=MODE [--no-online] [--no-movable] [--force] daxX.Y``:
    the device's JSON object afterwards (``do_reconfig``), or KernelError with daxctl's errno
    and its stderr, leaving what the real sequence leaves (K §8.1, §8.2)."""
    if mode not in DAX_MODULES:
        raise ValueError(f"mode must be 'system-ram' or 'devdax', not {mode!r}")
    for what, v in (("online", online), ("movable", movable), ("force", force)):
        if not isinstance(v, bool):
            raise TypeError(f"{what} must be a bool, not {type(v).__name__}")
    run = _Run(m, dev, online=online, movable=movable, force=force)
    if mode == "devdax" and not online:
        run.say("--no-online is incompatible with --mode=devdax")
        raise KernelError(errno.EINVAL, "daxctl reconfigure-device: --no-online is incompatible with --mode=devdax")
    rc = _mode_system_ram(run) if mode == "system-ram" else _mode_devdax(run)
    if rc < 0:
        raise _fail(run, rc, "error reconfiguring devices", "reconfigured 0 devices")
    out = dev_to_json(m, dev)
    run.say("reconfigured 1 device")
    return out


def _xline(m, dev, action: str) -> int:
    """``do_xline`` (``online-memory`` / ``offline-memory``): -ENXIO on a device not in
    system-ram mode; returns the blocks whose state the command changed.  A device whose
    blocks were all in the wanted state already is not counted as processed ("... for 0
    devices"), without an error."""
    run = _Run(m, dev)
    if dev.mode != "system-ram":
        run.say(f"{dev.name}: memory operations are not applicable in devdax mode")
        raise _fail(run, -errno.ENXIO, f"error {action}ing memory", f"{action}ed memory for 0 devices")
    before = sum(_is_online(b) for b in memory_blocks(m, dev))
    rc = _dev_online_memory(run) if action == "onlin" else _dev_offline_memory(run)
    if rc < 0:
        raise _fail(run, rc, f"error {action}ing memory", f"{action}ed memory for 0 devices")
    run.say(f"{action}ed memory for {0 if rc else 1} device{'s' if rc else ''}")
    after = sum(_is_online(b) for b in memory_blocks(m, dev))
    return abs(after - before)


def online_memory(m, dev) -> int:
    """``daxctl online-memory daxX.Y``: the number of blocks it onlined."""
    return _xline(m, dev, "onlin")


def offline_memory(m, dev) -> int:
    """``daxctl offline-memory daxX.Y``: the number of blocks it offlined."""
    return _xline(m, dev, "offlin")


def dev_to_json(m, dev) -> dict:
    """``util_daxctl_dev_to_json`` (daxctl/json.c v81; K §8.3): ``chardev``, ``size``,
    ``target_node`` (when the sysfs file shows one, i.e. >= 0), ``align`` (when the kernel has
    the attribute, 5.10+), ``mode``, and for a system-ram device with a resource
    ``online_memblocks``, ``total_memblocks`` and ``movable`` (left out when the zone scan
    fails, e.g. an offline block; false for no block); ``"state": "disabled"`` when unbound."""
    out: dict[str, Any] = {"chardev": dev.name, "size": dev.size}
    if dev.target_node >= 0:
        out["target_node"] = dev.target_node
    if m.model.kmem_per_range and dev.align > 0:
        out["align"] = dev.align
    system_ram = dev.mode == "system-ram"
    out["mode"] = "system-ram" if system_ram else "devdax"
    if system_ram and dev.resource:
        run = _Run(m, dev, record=False)
        num_sections, _ = _memory_op(run, "count")
        num_online, _ = _memory_op(run, "is_online")
        out["online_memblocks"] = num_online
        out["total_memblocks"] = num_sections
        rc, zone = _memory_op(run, "zone")
        if rc >= 0:
            out["movable"] = zone == "Movable"
    if not dev.enabled:
        out["state"] = "disabled"
    return out
