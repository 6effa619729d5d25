"""npfns as C ``u64`` arithmetic, one rule for ``nd_pfn_init`` and ``__nvdimm_setup_pfn``.

memremap-nvdimm.md ("MN") §3.2 step 9: ``npfns = PHYS_PFN(size - dataoff - end_trunc)`` and §5:
``npfns = PHYS_PFN(range_len - dataoff)``, both on unsigned 64-bit values: a negative
difference wraps modulo 2^64 *first* and is shifted after, ``(x & (2**64 - 1)) >> 12`` -- not
Python's floor division followed by a mask (``(x // 4096) & (2**64 - 1)``), which gives a
different number (2^64 - 1 instead of 2^52 - 1 for x = -4096).
"""

from __future__ import annotations

import errno

import pytest

from helpers import RAM_4G_PMEM_4G as LAYOUT
from helpers import U64_MAX as U64
from helpers import GiB, MiB
from sparsemem.kernel import kernel_model, row_releases
from sparsemem.machine import Machine
from sparsemem.nvdimm import pfn as P
from sparsemem.nvdimm.infoblock import InfoBlock


@pytest.mark.parametrize("x", [-1, -4095, -4096, -4097, -8 * MiB, -(1 << 40) - 123])
def test_negative_byte_count_wraps_then_shifts(x):
    """MN §3.2 step 9 / §5: mask to u64, then PHYS_PFN."""
    got = P._phys_pfn_u64(x)
    assert got == (x & U64) >> 12
    assert got < 1 << 52                       # a shifted u64 has 52 significant bits
    assert got != (x // 4096) & U64            # the old floor-then-mask value


@pytest.mark.parametrize("x", [0, 1, 4095, 4096, 4097, 1 << 40])
def test_non_negative_byte_count_is_plain_phys_pfn(x):
    assert P._phys_pfn_u64(x) == x >> 12 == x // 4096


@pytest.mark.parametrize("kernel", [r for r in row_releases() if kernel_model(r).subsection] + ["6.1.5"])
def test_v53_layout_may_leave_zero_pfns(kernel):
    """MN §3.2 step 8/9: dataoff + end_trunc == size passes the ``dataoff >= size`` check and
    records npfns 0 (start 1 GiB + 2 MiB, size 1 GiB, align 1 GiB: end_trunc 2 MiB,
    dataoff 1 GiB - 2 MiB) -- in 5.3-6.5; 6.6 tests ``dataoff >= size - end_trunc`` and refuses
    it (e96d9a938e89, later-eras-nvdimm-evidence.md R22).  The reserve (64 or, in 6.1.0-6.1.11,
    128 bytes per pfn, R18) still fits below 1 GiB - 2 MiB, so dataoff is the same."""
    model = kernel_model(kernel)
    start, size = GiB + 2 * MiB, GiB
    end_trunc = (start + size) % GiB
    dataoff = -(-(start + 8192 + model.max_struct_page_size * ((size - 8192) // 4096)) // GiB) * GiB - start
    assert (end_trunc, dataoff) == (2 * MiB, GiB - 2 * MiB)
    rc, lay, why = P.compute_layout(model, start, size, P.PFN_MODE_PMEM, GiB)
    if kernel_model(kernel).pfn_init_zero_capacity_refused:
        assert (rc, lay, why) == (-errno.ENXIO, None, "namespace0.0 unable to satisfy requested alignment")
        return
    assert (rc, why) == (0, None)
    assert (lay.end_trunc, lay.dataoff, lay.npfns) == (end_trunc, dataoff, 0)


@pytest.mark.parametrize("kernel", list(row_releases()) + ["6.1.5"])
def test_compute_layout_and_setup_agree_on_npfns(kernel):
    """MN §3.2 step 9 and §5 use the same u64 rule: the npfns nd_pfn_init records is the one
    __nvdimm_setup_pfn computes for the new block (so no "number of pfns truncated" line)."""
    model = kernel_model(kernel)
    for start in (0x2_0000_0000, 0x2_0000_0000 + 2 * MiB, 0x2_0400_0000, GiB + 2 * MiB, 0x1_FFE0_0000):
        for size in (16 * MiB, 256 * MiB + 4096, GiB, GiB + 2 * MiB):
            for align in P.SUPPORTED_ALIGNMENTS:
                for mode in (P.PFN_MODE_PMEM, P.PFN_MODE_RAM):
                    rc, lay, why = P.compute_layout(model, start, size, mode, align)
                    if rc:
                        # 5.7+ (R7): a start that is not a multiple of 2 MiB is refused first
                        assert rc != -errno.EINVAL or (model.compat_align and start % model.compat_align), why
                        continue
                    assert lay.npfns == P._phys_pfn_u64(size - lay.dataoff - lay.start_pad - lay.end_trunc)
                    if mode != P.PFN_MODE_PMEM or not model.subsection:
                        continue  # RAM mode keeps sb.npfns; v5.2 rounds setup's npfns to sections
                    sb = P.new_block(model, P.PFN_SIG, bytes(16), bytes(16), lay, mode, align)
                    rc, setup, _ = P.nvdimm_setup_pfn(model, sb, start, size)
                    assert rc == 0 and setup.npfns == lay.npfns and setup.message is None


def test_npfns_wraps_when_range_shorter_than_dataoff():
    """§5: range_len < dataoff: npfns = PFN(range_len - dataoff) wraps (u64), so no spurious
    "number of pfns truncated" message."""
    m = Machine.from_iomem(LAYOUT, kernel="5.3")
    sb = InfoBlock.new(P.PFN_SIG, bytes(16), bytes(16), dataoff=16 * MiB, npfns=64000, mode=P.PFN_MODE_PMEM,
                       start_pad=248 * MiB, end_trunc=0, align=4096, version_minor=3)
    rc, setup, _ = P.nvdimm_setup_pfn(m.model, sb, 0x2_0000_0000, 256 * MiB)
    assert rc == 0 and setup.message is None
    assert setup.npfns == ((8 * MiB - 16 * MiB) & (2**64 - 1)) >> 12
