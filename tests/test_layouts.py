"""Every real layout in tests/data/layouts boots, and a whole-region fsdax namespace on each pmem
region gives the era's result (derived from memremap-nvdimm.md §3.1/§3.2/§6; comments cite §)."""

from __future__ import annotations

import errno

import pytest

from helpers import LAYOUTS_DIR as LAYOUTS
from helpers import MiB, all_layouts
from sparsemem.errors import KernelError
from sparsemem.machine import Machine
from sparsemem.nvdimm import bus

FILES = [p.name for p in all_layouts()]
OK, ERR = "ok", "err"

# file prefix -> kernel -> per region: ("ok", start_pad, end_trunc, dataoff) | ("err", kernel_errno, dmesg)
EXPECT = {
    "github.com_awslabs_damo_pull_84": {
        k: [(OK, 0, 0, 0x8200000)] for k in ("5.2", "5.3")},
    "github.com_pmem_ndctl_issues_76": {"5.2": [], "5.3": []},       # RAM only (below 4 GiB)
    "github.com_pmem_pmem.github.io_pull_30": {
        # six type-12 pieces + one: the unaligned pieces share sections (§3.1 trim / §3.2 end_trunc)
        "5.2": [(OK, 0, 0x7ffe000, 0x800000),
                (ERR, errno.ENXIO, "nd_pmem pfn1.0: namespace1.0 unable to satisfy requested alignment"),
                (OK, 0, 0x6ffc000, 0x800000),
                (ERR, errno.ENXIO, "nd_pmem pfn3.0: namespace3.0 unable to satisfy requested alignment"),
                (ERR, errno.ENXIO, "nd_pmem pfn4.0: namespace4.0 unable to satisfy requested alignment"),
                (ERR, errno.ENXIO, "nd_pmem pfn5.0: namespace5.0 unable to satisfy requested alignment"),
                (OK, 0, 0, 0x3200000)],
        "5.3": [(OK, 0, 0x1fe000, 0xa00000),
                (ERR, errno.ENXIO, "nd_pmem pfn1.0: namespace1.0 unable to satisfy requested alignment"),
                (OK, 0, 0x1fc000, 0x800000),
                (ERR, errno.ENXIO, "nd_pmem pfn3.0: namespace3.0 unable to satisfy requested alignment"),
                (OK, 0, 0x1c0000, 0x200000),
                (ERR, errno.ENXIO, "nd_pmem pfn5.0: namespace5.0 unable to satisfy requested alignment"),
                (OK, 0, 0, 0x3200000)]},
    "lore.kernel.org_0FB85A78": {
        # memmap=4G!4G split by the kernel image: v5.2 pads against RAM (§3.1, MIXED); v5.3 maps
        # exact ranges and the second piece does not start 2 MiB aligned -> invalid altmap (§6.2)
        "5.2": [(OK, 0, 0x5e00000, 0x1600000), (OK, 0x67d4000, 0, 0x2a00000)],
        "5.3": [(OK, 0, 0, 0x1600000), (ERR, errno.EINVAL, "memory add fail, invalid altmap")]},
    "lore.kernel.org_156092354368": {
        "5.2": [(OK, 0, 64 * MiB, 0x4200000), (OK, 0, 0, 0x7f200000), (OK, 0, 0, 0x7f200000)],
        "5.3": [(OK, 0, 0, 0x4200000), (OK, 0, 0, 0x7f200000), (OK, 0, 0, 0x7f200000)]},
    "lore.kernel.org_161058500675": {
        "5.2": [(OK, 64 * MiB, 0, 0x4200000)], "5.3": [(OK, 0, 0, 0x4200000)]},
    "lore.kernel.org_20181022201327": {
        # kmem RAM child released at attach; the region is alone in its sections
        k: [(OK, 0, 0, 0x600000)] for k in ("5.2", "5.3")},
    "lore.kernel.org_20190627141953": {k: [(OK, 0, 0, 0x7e200000)] for k in ("5.2", "5.3")},
    "lore.kernel.org_20250910044531": {k: [(OK, 0, 0, 0x4200000)] for k in ("5.2", "5.3")},
    "lore.kernel.org_CAPcyv4h9s1jYROGqkMfKk0MNBUedP": {
        # one 504 GiB region starting 64 MiB into a section (ndctl #76 range as one region):
        # v5.2 widens to 4033 sections with a 4032-section memmap reserve -> altmap -ENOMEM
        # (§3.4 scenario B rule); v5.3 no padding, succeeds
        "5.2": [(ERR, errno.ENOMEM, None)], "5.3": [(OK, 0, 0, 0x1f8200000)]},
    "nvdimm.wiki.kernel.org": {"5.2": [], "5.3": []},
}


def _expect(name):
    for prefix, v in EXPECT.items():
        if name.startswith(prefix):
            return v
    raise AssertionError(f"no expectation for {name}")


def test_every_layout_has_an_expectation():
    assert FILES and all(_expect(f) for f in FILES)


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
@pytest.mark.parametrize("name", FILES)
def test_layout_whole_region_fsdax(name, kernel):
    # the bare regions (Machine(iomem=...) adopts nothing; from_iomem would keep the namespaces
    # and kmem memory some of these dumps show, tests/test_existing.py)
    m = Machine(kernel, iomem=(LAYOUTS / name).read_text())
    exp = _expect(name)[kernel]
    assert len(m.regions) == len(exp)
    for r, e in zip(m.regions, exp):
        mark = len(m.dmesg)
        if e[0] == OK:
            ns = r.create_namespace()
            assert (ns.start_pad, ns.end_trunc, ns.dataoff) == e[1:], r
            assert ns.enabled and ns.raw_size == r.size
            assert any(res.name == ns.dev for res in m.iomem)
        else:
            with pytest.raises(KernelError) as ei:
                r.create_namespace()
            assert ei.value.errno == errno.ENXIO and ei.value.kernel_errno == e[1]
            if e[2]:
                assert e[2] in m.dmesg[mark:]
            assert r.available_size == r.size


def test_ndctl_76_two_regions():
    """ndctl #76 with the two observed regions carved from the one iomem range (bus.carve_regions).
    v5.2 (DERIVED, with nd_region_conflict of v5.1.15, §3.1): namespace0.0 gets end_trunc 64 MiB
    (tail probe reaches region1), namespace1.0 start_pad 64 MiB (head probe starts in region0):
    each prints "alignment collision, truncate 67108864 bytes" as observed, and both enable (the
    observed conflict needed a kernel without region padding).  v5.3: no padding, both enable."""
    text = (LAYOUTS / [f for f in FILES if f.startswith("lore.kernel.org_CAPcyv4h")][0]).read_text()
    for kernel in ("5.2", "5.3"):
        m = Machine.from_iomem(text, kernel=kernel)
        bus.carve_regions(m, [(0x187c000000, 0x3f00000000), (0x577c000000, 0x3f00000000)])
        ns0 = m.regions[0].create_namespace()
        ns1 = m.regions[1].create_namespace()
        if kernel == "5.2":
            assert (ns0.start_pad, ns0.end_trunc) == (0, 64 * MiB)
            assert (ns1.start_pad, ns1.end_trunc) == (64 * MiB, 0)
            assert m.dmesg.count("nd_pmem pfn0.0: namespace0.0 alignment collision, truncate 67108864 bytes") == 1
            assert "nd_pmem pfn1.0: namespace1.0 alignment collision, truncate 67108864 bytes" in m.dmesg
        else:
            assert (ns0.start_pad, ns0.end_trunc, ns1.start_pad, ns1.end_trunc) == (0, 0, 0, 0)
        assert ns0.enabled and ns1.enabled


def test_ndctl_76_legacy_conflict_mechanism():
    """The #76 failure mechanism on v5.2 (§8 inference): a pgmap covering the last section of
    region0 makes region1's section-widened start probe hit it -> "Conflicting mapping in same
    section", -ENOMEM (ENXIO to ndctl)."""
    text = "100000000-187bffffff : System RAM\n187c000000-967bffffff : Persistent Memory\n"
    m = Machine.from_iomem(text, kernel="5.2")
    # region0's namespace as the 2018 kernel mapped it: start_pad 64 MiB, no end_trunc
    m.memremap_pages(0x1880000000, 0x577c000000 - 0x1880000000, type="fsdax")
    with pytest.raises(KernelError) as ei:
        m.memremap_pages(0x577c000000, 0x967c000000 - 0x577c000000 - 64 * MiB, type="fsdax")
    assert ei.value.errno == errno.ENOMEM
    # dev_WARN: message, WARNING line
    assert m.dmesg[-2] == "Conflicting mapping in same section" and "devm_memremap_pages+" in m.dmesg[-1]
