"""Kernel version -> behaviour switches: the one place where versions are compared.

Every stateful object of the simulation takes ``kernel="5.3"`` and asks :func:`kernel_model`
for a :class:`KernelModel`.  Code elsewhere reads the named switches of that model and never
compares version numbers itself.  A later era (v5.7 compat-align, v5.9 bare-metal 2 GiB
memory blocks, v5.12 ``SECTION_TAINT_ZONE_DEVICE``, v6.8 RCU usage fix, ...) is a new row of
:data:`ERAS` with the switches that differ, not a scattered ``if``.

The rows cite the commits that introduced each behaviour, as ``docs/spec`` restates them
(sparse-hotplug.md §7 and §10, memremap-nvdimm.md §3 and §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = ["KernelModel", "ERAS", "SINCE", "kernel_model", "parse_version", "DEFAULT_KERNEL", "VERSION_FORMS",
           "version_range"]

DEFAULT_KERNEL = "5.3"

#: Oldest and newest release that the table describes (the spec reads v5.1 .. v6.8).
OLDEST = (5, 1)
NEWEST = (6, 8)

#: ``MAJOR.MINOR[.PATCH]``, optionally after a ``v`` and followed by what ``uname -r`` or a
#: distribution adds: ``-rcN`` (counts as that release), ``-45-generic``,
#: ``-427.13.1.el9_4.x86_64``, ``+``, ``+deb13-amd64``, ``~bpo12+1`` (kept by the caller, not
#: modelled).  The suffix must start with ``-``, ``+``, ``~`` or ``_``.
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?P<suffix>[-+~_].*)?$")

#: The forms :func:`parse_version` accepts, for messages and ``--help``.
VERSION_FORMS = "MAJOR.MINOR[.PATCH] with an optional 'v' and uname/distribution suffix, e.g. " \
    "'5.3', 'v5.10', '6.8.0-45-generic', '5.3.0-rc1', '5.14.0-427.13.1.el9_4.x86_64', '6.6.30+'"


def version_range() -> str:
    """The modelled releases as text, ``"5.1 .. 6.8"`` (from :data:`OLDEST` / :data:`NEWEST`)."""
    return f"{OLDEST[0]}.{OLDEST[1]} .. {NEWEST[0]}.{NEWEST[1]}"


@dataclass(frozen=True)
class KernelModel:
    """Behaviour switches of one kernel release (all booleans unless stated)."""

    version: tuple[int, int, int]
    era: str
    #: 2 MiB sub-section bitmap in ``mem_section_usage``; ``pfn_valid`` consults it
    #: (v5.3, ba72b4c8cf60 "mm/sparsemem: support sub-section hotplug").
    subsection: bool
    #: ``SECTION_IS_EARLY`` flag, bit 3 (v5.3, 326e1b8f83a4).
    section_is_early: bool
    #: legacy ``__add_pages`` ignores -EEXIST from ``__add_section`` (removed in v5.3 v10).
    add_pages_swallows_eexist: bool
    #: ``sparse_index_init`` returns -EEXIST for an allocated root (v5.2; 0 from v5.3).
    sparse_index_init_eexist: bool
    #: v5.3-v5.6: a sub-section add stores ``pfn_to_kaddr(section start)`` as the memmap
    #: (fixed in v5.7 by "mm/sparsemem: get address to page struct instead of address to pfn").
    subsection_memmap_kaddr_bug: bool
    #: v5.3-v5.8: partial removal from an early section frees part of the boot memmap
    #: (fixed in v5.9 by ef69bc9f689d "mm/sparse: never partially remove memmap for early section").
    early_partial_remove_frees_memmap: bool
    #: v5.3-v5.5: full deactivation writes ``sparse_encode_mem_map(NULL, nr)`` (non-zero garbage)
    #: into ``section_mem_map`` (v5.6 1f503443e7df writes 0).
    deactivate_writes_encoded_null: bool
    #: v5.3-v5.4: the usage is freed on full deactivation iff the section was not early
    #: (v5.5 frees it iff its page is not PageReserved).
    usage_freed_unless_early: bool
    #: nvdimm ``trim_pfn_device`` pads namespaces to sections (start_pad/end_trunc); removed
    #: by a3619190d62e "libnvdimm/pfn: stop padding pmem namespaces to section alignment".
    nvdimm_pads_to_sections: bool
    #: ``nd_pfn_init`` restores ``end_trunc`` for ``align`` (274b924088e9, v5.3-rc8).
    nvdimm_end_trunc_for_align: bool
    #: minor version written into new pfn info-blocks (2 before v5.3, 3 in v5.3, 4 from v5.4).
    infoblock_minor: int
    #: ``devm_memremap_pages`` widens the range to whole sections (before 7cc7867fb061, v5.3).
    memremap_expands_to_sections: bool
    #: x86 bare metal uses 2 GiB memory blocks (v5.9, fe124c95df9e).
    bare_metal_2g_blocks: bool
    #: zone/node span shrinking probes every ``shrink_step`` pfns (v5.3: 512, v5.2: 32768).
    shrink_step: int
    #: first bit of the early nid in ``section_mem_map`` (3 until v5.15).
    section_nid_shift: int
    #: SECTION_MAP_LAST_BIT as a mask value (1<<3 in v5.2, 1<<4 in v5.3-v5.11).
    section_map_last_bit: int
    #: ``check_pfn_span`` in ``__add_pages``/``__remove_pages`` (v5.3 "mm/sparsemem: Prepare for
    #: sub-section ranges"); v5.2 widens an add to whole sections silently and BUG_ONs on a
    #: section-misaligned remove (sparse-hotplug.md §5.1, §7).
    check_pfn_span: bool = True
    #: memory block devices are created after ``arch_add_memory`` (v5.3,
    #: ``create_memory_block_devices``); v5.2 registers them per section inside
    #: ``__add_section`` (``hotplug_memory_register``) and unregisters them per section in
    #: ``__remove_section`` (sparse-hotplug.md §7, §8.2).
    memory_blocks_after_arch_add: bool = True
    #: ``remove_memory`` of a range with an online block returns -EBUSY (v5.3
    #: ``try_remove_memory``); v5.2 ``__remove_memory`` BUG()s (sparse-hotplug.md §6.6, §7).
    remove_memory_ebusy: bool = True
    #: ``nd_pmem_probe`` attaches the namespace as raw pmem when pfn/dax probing (validation)
    #: fails (v5.1-v5.3); v5.4 stops falling back for -EOPNOTSUPP (memremap-nvdimm.md §4 "Deltas").
    pmem_probe_falls_back_to_raw: bool = True
    #: v5.1 ``__remove_pages`` returns int and stops at the first section whose
    #: ``__remove_section`` fails (-EINVAL for a section that is not valid, no WARN); x86
    #: ``arch_remove_memory`` WARN_ON_ONCEs the error.  v5.2 is void: ``__remove_section``
    #: WARN_ON_ONCEs an invalid section and the loop goes on (sparse-hotplug.md §7).
    remove_pages_stops_on_invalid: bool = False
    #: where ``devm_memremap_pages`` lives, as its WARNs print it: kernel/memremap.c until
    #: v5.2, mm/memremap.c from v5.3 (memremap-nvdimm.md §0).
    memremap_file: str = "mm/memremap.c"
    #: rules of ``mm/memory-failure.c`` and of the sysfs ``soft_offline_page`` /
    #: ``hard_offline_page`` stores (:mod:`sparsemem.memory_failure`): ``"5.3"`` (read at
    #: 5.3, the same in 5.1/5.2), ``"5.4"`` (both stores look at ``pfn_to_online_page`` first:
    #: "drivers/base/memory.c: don't access uninitialized memmaps in soft_offline_page_store()"
    #: and "mm/memory-failure.c: don't access uninitialized memmaps in memory_failure()",
    #: v5.4, also sent to the stable series), ``"6.1"`` (read at 6.1: pages taken off the buddy, -EHWPOISON,
    #: "unhandlable page"); set by :data:`SINCE`.
    memory_failure: str = "5.3"
    #: EFI_MEMORY_SP memory becomes e820 type 0xefffffff, "Soft Reserved" in /proc/iomem and
    #: not System RAM (262b45ae3ab4 "x86/efi: EFI soft reservation to E820 enumeration",
    #: v5.5); before, it is ordinary RAM (kmem.md K §2.2); set by :data:`SINCE`.
    efi_soft_reserve: bool = False
    #: ``register_memory_resource`` first checks ``mhp_range_allowed`` (the build limit
    #: ``(1 << MAX_PHYSMEM_BITS) - 1``): pr_warn "Hotplug memory [...] exceeds maximum
    #: addressable range [...]" and -E2BIG (bca3feaa0764 "mm/memory_hotplug: prevalidate the
    #: address range being added with platform", v5.12; read at 6.1); set by :data:`SINCE`.
    mhp_range_allowed: bool = False
    #: atomic step order of tearing down a whole hot-added section, as :mod:`sparsemem.race`
    #: replays it (later-eras-hotplug.md A8, sparse-hotplug.md §7 and §10); set by :data:`SINCE`:
    #: ``"5.2"`` ``sparse_remove_one_section``: decode, ``section_mem_map = 0``,
    #: ``pageblock_flags = NULL``, free memmap and usemap (§7; v5.1 the same);
    #: ``"5.3"`` ``section_deactivate``: clear the sub-section bits, ``kfree(usage)``,
    #: ``usage = NULL``, decode, store ``sparse_encode_mem_map(NULL)`` (every flag cleared at
    #: once), free the memmap (ba72b4c8cf60 / f46edbd1b151, the v5.3 sub-section series; read
    #: at 5.4.0 and 5.5-rc5);
    #: ``"5.6"``: as 5.3 but ``HAS_MEM_MAP`` is cleared after the usage is freed and
    #: ``section_mem_map = 0`` comes last, after the memmap is freed (1f503443e7df "reset
    #: section's mem_map when fully deactivated", d41e2f3bd546 "fix hot remove failure in
    #: SPARSEMEM|!VMEMMAP case", b943f045a9af "fix kernel crash with pfn_section_valid check";
    #: read at 5.6.4, 5.9.1, 5.11.0, 5.12.9, 6.6.9);
    #: ``"6.8"``: ``HAS_MEM_MAP`` cleared *before* the usage is freed (5ec8e8ea8b77
    #: "mm/sparsemem: fix race in accessing memory_section->usage", CVE-2023-52489; read at
    #: 6.8.0, 6.9.0, 6.10-rc5).
    deactivate_order: str = "5.2"
    #: the usage is freed with ``kfree_rcu`` after a grace period and its pointer cleared with
    #: ``WRITE_ONCE`` (5ec8e8ea8b77, v6.8; read at 6.8.0); set by :data:`SINCE`.
    usage_kfree_rcu: bool = False
    #: generic ``pfn_valid`` runs its section tests inside ``rcu_read_lock_sched()``
    #: (5ec8e8ea8b77 with the KMSAN follow-up f6564fce256a, both v6.8; read at 6.8.0, 6.9.0);
    #: set by :data:`SINCE`.
    pfn_valid_rcu: bool = False
    #: ``pfn_section_valid`` loads ``ms->usage`` once and answers 0 for NULL (82f0b6f041fa
    #: "mm: prevent derefencing NULL ptr in pfn_section_valid()", v6.10, CVE-2024-41055:
    #: absent at 6.10-rc5, present at 6.10.0); set by :data:`SINCE`.
    pfn_section_valid_null_safe: bool = False
    #: ``pfn_to_online_page`` is a function that also tests the sub-section bit
    #: (``pfn_section_valid``) and ``SECTION_TAINT_ZONE_DEVICE`` (1f90a3477df3 and "mm: teach
    #: pfn_to_online_page() to consider subsection validity", v5.12; read at 5.12.9); before,
    #: a macro testing only ``SECTION_IS_ONLINE`` (read at 5.11.0); set by :data:`SINCE`.
    pfn_to_online_page_subsection: bool = False
    #: first release of the :data:`ERAS` row this model was built from (filled in by
    #: :func:`kernel_model`); see :attr:`rules` and :attr:`approximate`.
    row_release: tuple[int, int] = (5, 3)

    @property
    def rules(self) -> str:
        """The release whose rules are modelled, e.g. ``"5.3"``: the first release of this
        model's row of :data:`ERAS`."""
        return "%d.%d" % self.row_release

    @property
    def approximate(self) -> bool:
        """True when the version is newer than the release its row describes, i.e. it runs
        with older rules (``5.10`` runs with the v5.3 rules until later rows are added).
        Each row describes exactly one release line: ``5.1`` and ``5.2`` are exact."""
        return self.version[:2] > self.row_release

    @property
    def label(self) -> str:
        """How reports name the model: ``"5.3 (subsection)"``, or for an approximated newer
        release ``"5.10 (subsection era, v5.3 rules)"``."""
        return self.label_for(self.name)

    def label_for(self, name: str) -> str:
        """:attr:`label` with the release spelled ``name`` (e.g. as the user typed it:
        ``"v5.3"`` -> ``"v5.3 (subsection)"``)."""
        if self.approximate:
            return f"{name} ({self.era} era, v{self.rules} rules)"
        return f"{name} ({self.era})"

    @property
    def name(self) -> str:
        return "%d.%d" % self.version[:2] if self.version[2] == 0 else "%d.%d.%d" % self.version


_LEGACY = dict(
    memremap_file="kernel/memremap.c",
    era="legacy",
    subsection=False,
    section_is_early=False,
    add_pages_swallows_eexist=True,
    sparse_index_init_eexist=True,
    subsection_memmap_kaddr_bug=False,
    early_partial_remove_frees_memmap=False,
    deactivate_writes_encoded_null=False,
    usage_freed_unless_early=False,
    nvdimm_pads_to_sections=True,
    nvdimm_end_trunc_for_align=True,
    infoblock_minor=2,
    memremap_expands_to_sections=True,
    bare_metal_2g_blocks=False,
    shrink_step=1 << 15,
    section_nid_shift=3,
    section_map_last_bit=1 << 3,
    check_pfn_span=False,
    memory_blocks_after_arch_add=False,
    remove_memory_ebusy=False,
    pmem_probe_falls_back_to_raw=True,
    remove_pages_stops_on_invalid=False,
)

#: v5.1 (checked in 5.1.15): as v5.2 except ``__remove_pages`` / ``__remove_section``
#: return errors (sparse-hotplug.md §7 "v5.1 (checked in 5.1.15)").
_LEGACY_5_1 = dict(_LEGACY, remove_pages_stops_on_invalid=True)

_SUBSECTION = dict(
    _LEGACY,
    memremap_file="mm/memremap.c",
    era="subsection",
    subsection=True,
    section_is_early=True,
    add_pages_swallows_eexist=False,
    sparse_index_init_eexist=False,
    subsection_memmap_kaddr_bug=True,
    early_partial_remove_frees_memmap=True,
    deactivate_writes_encoded_null=True,
    usage_freed_unless_early=True,
    nvdimm_pads_to_sections=False,
    nvdimm_end_trunc_for_align=True,
    infoblock_minor=3,
    memremap_expands_to_sections=False,
    shrink_step=1 << 9,
    section_map_last_bit=1 << 4,
    check_pfn_span=True,
    memory_blocks_after_arch_add=True,
    remove_memory_ebusy=True,
    pmem_probe_falls_back_to_raw=True,
)

#: (first release, switches). A release uses the last row whose first release is <= it.
#: Add later eras here (e.g. ``((5, 4), dict(_SUBSECTION, era="5.4", infoblock_minor=4))``).
ERAS: tuple[tuple[tuple[int, int], dict], ...] = (
    ((5, 1), _LEGACY_5_1),  # v5.1: section-granular hotplug, __remove_pages returns errors
    ((5, 2), _LEGACY),  # v5.2: section-granular hotplug, void __remove_pages
    ((5, 3), _SUBSECTION),  # v5.3: "mm: Sub-section memory hotplug support" (v10)
)


#: Switches of single functions that changed after v5.3 without a row of their own in
#: :data:`ERAS` (the rows are eras of the section/hotplug core and name the rules reports print):
#: (first release, switch, value).  A release gets the value of the last entry whose first
#: release is <= it, after its row; the commit of each is cited at the switch.
SINCE: tuple[tuple[tuple[int, int], str, object], ...] = (
    ((5, 3), "deactivate_order", "5.3"),
    ((5, 4), "memory_failure", "5.4"),
    ((5, 5), "efi_soft_reserve", True),
    ((5, 6), "deactivate_order", "5.6"),
    ((5, 12), "mhp_range_allowed", True),
    ((5, 12), "pfn_to_online_page_subsection", True),
    ((6, 1), "memory_failure", "6.1"),
    ((6, 8), "deactivate_order", "6.8"),
    ((6, 8), "usage_kfree_rcu", True),
    ((6, 8), "pfn_valid_rcu", True),
    ((6, 10), "pfn_section_valid_null_safe", True),  # beyond NEWEST today: takes effect with it
)


def parse_version(version: str) -> tuple[int, int, int]:
    """``"5.3"``, ``"v5.10"``, ``"5.3.1"`` or what ``uname -r`` prints (``"6.8.0-45-generic"``,
    ``"5.3.0-rc1"``, ``"5.14.0-427.13.1.el9_4.x86_64"``, ``"6.6.30+"``) -> ``(major, minor,
    patch)``; an ``-rcN`` counts as that release and a distribution suffix is ignored here.
    ValueError (naming the accepted range and forms) otherwise."""
    if not isinstance(version, str):
        raise TypeError(f"kernel version must be a str such as '5.3', not {type(version).__name__}")
    m = _VERSION_RE.match(version.strip())
    if not m:
        raise ValueError(
            f"malformed kernel version {version!r}: expected {VERSION_FORMS}; modelled: {version_range()}"
        )
    major, minor, patch = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
    if not OLDEST <= (major, minor) <= NEWEST:
        raise ValueError(
            f"kernel version {version!r} is outside the modelled range "
            f"{version_range()} (expected {VERSION_FORMS})"
        )
    return (major, minor, patch)


@lru_cache(maxsize=None)
def kernel_model(version: str = DEFAULT_KERNEL) -> KernelModel:
    """The behaviour switches of ``version`` (a string such as ``"5.2"`` or ``"5.3"``)."""
    if isinstance(version, KernelModel):
        return version
    v = parse_version(version)
    row = first_release = None
    for first, switches in ERAS:
        if v[:2] >= first:
            row, first_release = switches, first
    assert row is not None and first_release is not None  # parse_version guarantees v >= OLDEST
    since = {name: value for first, name, value in SINCE if v[:2] >= first}
    return KernelModel(version=v, row_release=first_release, **{**row, **since})


def newest_release() -> str:
    """The newest modelled release, ``"6.8"`` (:data:`NEWEST`): the top of the range every
    stateful object accepts (:func:`version_range`).  A release newer than the last row of
    :data:`ERAS` runs with that row's rules plus the :data:`SINCE` switches of its release, and
    says so in its label (:attr:`KernelModel.approximate`)."""
    return "%d.%d" % NEWEST


def report_kernels() -> tuple[str, ...]:
    """The releases ``sparsemem report`` compares by default (api.md "Command line": "5.2, 5.3
    and the newest modelled release"): ``("5.2", "5.3", newest_release())``, each once."""
    return tuple(dict.fromkeys(("5.2", "5.3", newest_release())))


def as_model(kernel) -> KernelModel:
    """Accept a version string or a :class:`KernelModel`."""
    if isinstance(kernel, KernelModel):
        return kernel
    return kernel_model(kernel)


__all__ += ["as_model", "replace", "newest_release", "report_kernels"]
