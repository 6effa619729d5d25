"""What several test files share: sizes, the test-data folders and a few small layouts.

The sizes are written out here rather than read from ``sparsemem.constants``, so that a test
compares the package against numbers it did not compute (x86-64: 4 KiB pages,
``SECTION_SIZE_BITS`` 27, 2 MiB sub-sections, a 128 MiB memory block below 64 GiB of boot
RAM, sparse-hotplug.md §1.1 and §2).

The data are the project's own copies in ``tests/data`` (README there): ``layouts/`` holds the
public memory maps, ``observed/`` the dmesg excerpts with no layout.  A missing file is a test
failure, not a skip.
"""

from __future__ import annotations

import pathlib

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent

# ------------------------------------------------------------------------------------ sizes
KiB, MiB, GiB, TiB = 1 << 10, 1 << 20, 1 << 30, 1 << 40
PAGE_SIZE = 4 * KiB
SECTION = 128 * MiB                               # bytes of one mem_section
SUBSECTION = 2 * MiB                              # bytes of one sub-section (v5.3 and later)
BLK = 128 * MiB                                   # the default memory block size
PAGES_PER_SECTION = SECTION // PAGE_SIZE          # 0x8000
PAGES_PER_SUBSECTION = SUBSECTION // PAGE_SIZE    # 512
U64_MAX = (1 << 64) - 1

# ------------------------------------------------------------------------------------ data
DATA_DIR = HERE / "data"
LAYOUTS_DIR = DATA_DIR / "layouts"
OBSERVED_DIR = DATA_DIR / "observed"


def data_dir() -> pathlib.Path:
    """``tests/data``: the layouts, observed reports and input samples the tests read."""
    return DATA_DIR


def all_layouts() -> list[pathlib.Path]:
    """Every public layout in ``tests/data/layouts``, sorted by name."""
    return sorted(LAYOUTS_DIR.glob("*.txt"))


def all_observed() -> list[pathlib.Path]:
    """Every observed report in ``tests/data/observed``, sorted by name."""
    return sorted(OBSERVED_DIR.glob("*.txt"))


def layout(name_part: str) -> pathlib.Path:
    """The one layout whose file name contains ``name_part``; LookupError unless exactly one."""
    hits = [p for p in all_layouts() if name_part in p.name]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} layouts in {LAYOUTS_DIR} match {name_part!r}: {hits}")
    return hits[0]


def observed(name: str) -> pathlib.Path:
    """``tests/data/observed/<name>``; FileNotFoundError if it is not there."""
    path = OBSERVED_DIR / name
    if not path.is_file():
        raise FileNotFoundError(path)
    return path


# ------------------------------------------------------------------------------------ layouts
#: sparse-hotplug.md §9 examples: a reserved first page, then RAM up to 2 GiB - 16 MiB
EX_LAYOUT = "00000000-00000fff : Reserved\n00001000-7effffff : System RAM\n"
#: RAM from 1 MiB to 3 GiB and from 4 GiB to 5 GiB (the 3-4 GiB hole below 4 GiB)
RAM_5G = "00100000-bfffffff : System RAM\n100000000-13fffffff : System RAM\n"
#: RAM_5G and a 2 GiB pmem region right after it, at 5 GiB
RAM_5G_PMEM_2G = RAM_5G + "140000000-1bfffffff : Persistent Memory\n"
#: 4 GiB of RAM at 4 GiB and a 4 GiB pmem region at 8 GiB (section- and 2 MiB-aligned)
RAM_4G_PMEM_4G = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory\n"
#: pmem starting 64 MiB into section 64, whose first 64 MiB are RAM (memremap-nvdimm.md §3.4
#: scenario A)
PMEM_AFTER_RAM_IN_SECTION = "100000000-203ffffff : System RAM\n204000000-2ffffffff : Persistent Memory\n"

#: the banner a WARN starts with (``CUT_HERE``, include/asm-generic/bug.h)
CUT = "------------[ cut here ]------------"


def boot_table(T, kernel, ranges, nid: int = 0, bits: int = 46):
    """A ``SectionTable`` class ``T`` (compiled or reference) booted the way x86 does
    (sparse-hotplug.md §3): ``memory_present`` per pfn range, ``sparse_init``, then
    ``subsection_map_init`` per range.  ``kernel`` is a version string or a ``KernelModel``."""
    t = T(bits, kernel)
    for s, e in ranges:
        t.memory_present(nid, s, e)
    t.sparse_init()
    for s, e in ranges:
        t.subsection_map_init(s, e - s)
    return t
