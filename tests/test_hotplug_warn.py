"""The shape of the WARNs the hotplug paths print (sparse-hotplug.md §5.1): the cut-here banner,
the message when the WARN has one (``WARN(cond, fmt, ...)``, forwarded as the x86 kernel
prints it) and the ``WARNING: CPU: 0 PID: 1 at file:line symbol+off/size`` line with nominal
numbers; a bare ``WARN_ON``/``WARN_ON_ONCE`` prints no invented text.  The report picks the
message, not the banner or the WARNING line, as the reason a step failed."""

from __future__ import annotations

import pytest

from helpers import CUT, EX_LAYOUT
from helpers import PAGES_PER_SECTION as SEC
from sparsemem import KernelError, Machine, report
from sparsemem import hotplug as H


def test_warn_with_message_shape():
    m = Machine.from_iomem(EX_LAYOUT, kernel="5.3")
    with pytest.raises(KernelError):
        H.add_pages(m, 0, 0x100100, 512)
    assert m.dmesg[-3:] == [CUT, "Misaligned __add_pages start: 0x100100 end: #1002ff",
                            "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:320 check_pfn_span+0x0/0x100"]
    # the report picks the message, not the banner or the WARNING line
    assert report._failure_line(m.dmesg[-3:]) == "Misaligned __add_pages start: 0x100100 end: #1002ff"


def test_core_warn_with_message_forwarded_in_x86_shape():
    m = Machine.from_iomem(EX_LAYOUT, kernel="5.3")
    H.add_pages(m, 0, 0x100000, 512)
    H.remove_pages(m, None, 0x100200, 512)                # sub-section never added
    assert m.dmesg[-3:] == [CUT, "section already deactivated (0x100200 + 512)",
                            "WARNING: CPU: 0 PID: 1 at mm/sparse.c:760 section_deactivate+0x0/0x100"]
    assert not any(line.startswith("WARNING: at ") for line in m.dmesg)
    assert report._failure_line(m.dmesg[-3:]) == "section already deactivated (0x100200 + 512)"


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_core_warn_on_has_no_invented_text(kernel):
    """__remove_section's WARN_ON_ONCE (§6.3, §7) has no message: banner + WARNING line."""
    m = Machine.from_iomem(EX_LAYOUT, kernel=kernel)
    n = len(m.dmesg)
    assert H.remove_pages(m, None, 0x200000, SEC) == 0
    assert m.dmesg[n:] == [CUT, "WARNING: CPU: 0 PID: 1 at mm/memory_hotplug.c:510 __remove_section+0x0/0x100"]


def test_warning_line_format():
    assert H.warn_lines("drivers/base/memory.c state_show") == [
        CUT, "WARNING: CPU: 0 PID: 1 at drivers/base/memory.c:170 state_show+0x0/0x100"]
    assert H.core_warning_lines("x86/mm: Memory block size: 128MB") == ["x86/mm: Memory block size: 128MB"]
