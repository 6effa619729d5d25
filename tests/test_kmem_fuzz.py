"""Fuzzed layouts with Soft Reserved ranges and CXL windows/regions (kmem.md K §2.2, §2.3),
booted under every release row and driven through daxctl's commands and the dax bus: only the
documented errors (``KernelError``) come out, the resource tree keeps its shape, every kmem
claim holds its System RAM, and a refused ``reconfigure`` of a device in system-ram mode
without ``--force`` changes nothing (K §8.2)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sparsemem import KernelError, Machine
from sparsemem.kernel import row_releases

MiB, GiB = 1 << 20, 1 << 30
KERNELS = row_releases()


@st.composite
def layouts(draw):
    ram_end = 0x100000000 + draw(st.integers(1, 24)) * 128 * MiB
    lines = ["00001000-0009fbff : System RAM", "00100000-bffdffff : System RAM",
             f"100000000-{ram_end - 1:x} : System RAM"]
    numa = []
    cur = ram_end + draw(st.integers(0, 4)) * 64 * MiB
    for i in range(draw(st.integers(0, 3))):
        gran = draw(st.sampled_from([4096, 2 * MiB, 128 * MiB]))
        start = -(-cur // gran) * gran + draw(st.integers(0, 3)) * gran
        size = draw(st.integers(1, 40)) * draw(st.sampled_from([4096, 2 * MiB, 64 * MiB, 256 * MiB]))
        kind = draw(st.sampled_from(["sr", "cxl", "cxl-sr"]))
        end = start + size - 1
        if kind == "sr":
            lines.append(f"{start:x}-{end:x} : Soft Reserved")
        else:
            lines.append(f"{start:x}-{end:x} : CXL Window {i}")
            inner = f"region{i}" if kind == "cxl" else "Soft Reserved"
            lines.append(f"  {start:x}-{end:x} : {inner}")
            if draw(st.booleans()):
                lines.append(f"    {start:x}-{end:x} : dax{i}.0")
                lines.append(f"      {start:x}-{end:x} : System RAM (kmem)")
        if draw(st.booleans()):
            numa.append((start, end + 1, draw(st.integers(0, 3))))
        cur = end + 1
    return "\n".join(lines) + "\n", numa


OPS = st.lists(st.tuples(st.sampled_from(["system-ram", "devdax", "online", "offline", "unbind", "block"]),
                         st.booleans(), st.booleans(), st.booleans(), st.integers(0, 1 << 16)), max_size=8)


def _check(m) -> None:
    m.iomem.check_invariants()
    for dev in m.dax_devices:
        if dev.mode == "system-ram":
            for res in dev.kmem_res:
                if res is not None:
                    assert res.parent is not None and res.children and res.children[0].name.startswith("System RAM")
        dev.to_dict()
        dev.kmem_stats()


@given(layouts(), st.sampled_from(KERNELS), st.sampled_from([False, True, "online_movable"]), OPS,
       st.booleans())
def test_fuzzed_soft_reserved_and_cxl_layouts(lay, kernel, auto_online, ops, adopt):
    text, numa = lay
    boot = Machine.from_iomem if adopt else Machine
    m = boot(text, kernel=kernel, numa=numa or None, auto_online=auto_online) if adopt else \
        boot(kernel=kernel, iomem=text, numa=numa or None, auto_online=auto_online)
    _check(m)
    for op, a, b, c, pick in ops:
        devs = m.dax_devices
        if not devs:
            break
        dev = devs[pick % len(devs)]
        try:
            if op in ("system-ram", "devdax"):
                before = m.snapshot() if (op == "devdax" and dev.mode == "system-ram" and not c) else None
                try:
                    dev.reconfigure(op, online=a or op == "devdax", movable=b, force=c)
                except KernelError:
                    if before is not None and any("refusing to change modes" in ln for ln in dev.stderr):
                        assert m.snapshot() == before
                    raise
            elif op == "online":
                dev.online_memory()
            elif op == "offline":
                dev.offline_memory()
            elif op == "unbind":
                m.dax.unbind(dev)
            else:
                blocks = dev.memory_blocks()
                if blocks:
                    blk = blocks[pick % len(blocks)]
                    if str(blk.state) == "online":
                        m.offline_memory_block(blk.id)
                    else:
                        m.online_memory_block(blk.id, "online_movable" if a else "online")
        except KernelError as exc:
            assert exc.errno > 0
        _check(m)
