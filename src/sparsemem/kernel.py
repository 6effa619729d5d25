"""Kernel version -> behaviour switches: the one place where versions are compared.

Every stateful object of the simulation takes ``kernel="5.3"`` and asks :func:`kernel_model`
for a :class:`KernelModel`.  Code elsewhere reads the named switches of that model and never
compares version numbers itself.  :data:`ERAS` is the one release table: a row per release
that changes anything observable (later-eras-hotplug.md A10, 5.1 .. 6.12), keyed by
``(major, minor, patch)``, each naming the switches that change (rows are cumulative) with
the commit each comes from, as ``docs/spec`` restates them (sparse-hotplug.md §7 and §10,
memremap-nvdimm.md §3 and §6, later-eras-hotplug-evidence.md §1).

The rows after 5.3 set only the switches the layers implement so far; the A10 switches still
to build are listed in a comment on their row (later-eras-hotplug-evidence.md §5), and a
release on such a row is :attr:`KernelModel.approximate` and says so in its label.
Distribution backports are not modelled: ``6.8.0-45-generic`` runs the upstream 6.8 row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

__all__ = ["KernelModel", "ERAS", "kernel_model", "parse_version", "DEFAULT_KERNEL", "VERSION_FORMS",
           "version_range"]

DEFAULT_KERNEL = "5.3"

#: Oldest and newest release that the table describes (later-eras-hotplug.md A10: v5.1 .. v6.12).
OLDEST = (5, 1)
NEWEST = (6, 12)

#: The last row of :data:`ERAS` whose behaviour is fully modelled.  The sparse/hotplug rows after
#: it set only the switches the layers implement so far (later-eras-hotplug-evidence.md §5), so a
#: release on them is :attr:`KernelModel.approximate`.
MODELLED_THROUGH = (5, 3, 0)

#: What the label of an approximate release says about it.
PARTLY_MODELLED = "sparse/hotplug rows after 5.3 partly modelled"
#: What the label of a release written with a distribution suffix says about it.
NO_BACKPORTS = "distribution backports not modelled"

#: ``MAJOR.MINOR[.PATCH]``, optionally after a ``v`` and followed by what ``uname -r`` or a
#: distribution adds: ``-rcN`` (counts as that release), ``-45-generic``,
#: ``-427.13.1.el9_4.x86_64``, ``+``, ``+deb13-amd64``, ``~bpo12+1`` (kept by the caller, not
#: modelled).  The suffix must start with ``-``, ``+``, ``~`` or ``_``.
_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?P<suffix>[-+~_].*)?$")

#: The forms :func:`parse_version` accepts, for messages and ``--help``.
VERSION_FORMS = "MAJOR.MINOR[.PATCH] with an optional 'v' and uname/distribution suffix, e.g. " \
    "'5.3', 'v5.10', '6.8.0-45-generic', '5.3.0-rc1', '5.14.0-427.13.1.el9_4.x86_64', '6.6.30+'"


def version_range() -> str:
    """The modelled releases as text, ``"5.1 .. 6.12"`` (from :data:`OLDEST` / :data:`NEWEST`)."""
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
    #: nvdimm ``trim_pfn_device`` pads namespaces to sections (start_pad/end_trunc); removed
    #: by a3619190d62e "libnvdimm/pfn: stop padding pmem namespaces to section alignment".
    nvdimm_pads_to_sections: bool
    #: ``nd_pfn_init`` restores ``end_trunc`` for ``align`` (274b924088e9, v5.3-rc8).
    nvdimm_end_trunc_for_align: bool
    #: minor version written into new pfn info-blocks (2 before v5.3, 3 in v5.3, 4 from v5.4: not
    #: set by the 5.4 row yet, later-eras-nvdimm-evidence.md §6 step 3).
    infoblock_minor: int
    #: ``devm_memremap_pages`` widens the range to whole sections (before 7cc7867fb061, v5.3).
    memremap_expands_to_sections: bool
    #: x86 bare metal uses 2 GiB memory blocks (v5.9, fe124c95df9e).
    bare_metal_2g_blocks: bool
    #: zone/node span shrinking probes every ``shrink_step`` pfns (v5.3: 512, v5.2: 32768).
    shrink_step: int
    #: first bit of the early nid in ``section_mem_map`` (3 until v5.14, 6 in v5.15-v5.19, 5 from
    #: v6.0: sparse-hotplug.md §10 #17, #19).
    section_nid_shift: int
    #: SECTION_MAP_LAST_BIT as a mask value (1<<3 in v5.2, 1<<4 in v5.3-v5.11, 1<<5 from v5.12
    #: with SECTION_TAINT_ZONE_DEVICE, 1f90a3477df3).
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
    #: "unhandlable page"); set by its row of :data:`ERAS`.
    memory_failure: str = "5.3"
    #: each memory block counts its hardware-poisoned pages (``nr_hwpoison``, raised by
    #: ``num_poisoned_pages_inc`` from ``page_handle_poison`` -- soft offline -- and from
    #: ``action_result`` -- every ``memory_failure`` outcome but "already hardware poisoned"
    #: and "memory outside kernel control"); ``memory_block_online`` returns -EHWPOISON, with
    #: no dmesg line, before any work while the count is not 0; the count goes with the block
    #: device (``remove_memory_block_devices``), and ``sparse_remove_section`` no longer calls
    #: ``clear_hwpoisoned_pages`` (5033091de814 "mm/hwpoison: introduce per-memory_block
    #: hwpoison counter", v6.2: absent at 6.1.192, present at 6.2.1; later-eras-hotplug.md
    #: A5.4, A7.2, later-eras-hotplug-evidence.md §1 row 6.2, §2 item 8); set by its row of
    #: :data:`ERAS`.
    hwpoison_block_counter: bool = False
    #: EFI_MEMORY_SP memory becomes e820 type 0xefffffff, "Soft Reserved" in /proc/iomem and
    #: not System RAM (262b45ae3ab4 "x86/efi: EFI soft reservation to E820 enumeration",
    #: v5.5); before, it is ordinary RAM (kmem.md K §2.2); set by its row of :data:`ERAS`.
    efi_soft_reserve: bool = False
    #: ``register_memory_resource`` first checks ``mhp_range_allowed`` (the build limit
    #: ``(1 << MAX_PHYSMEM_BITS) - 1``): pr_warn "Hotplug memory [...] exceeds maximum
    #: addressable range [...]" and -E2BIG (bca3feaa0764 "mm/memory_hotplug: prevalidate the
    #: address range being added with platform", v5.12; read at 6.1); set by its row of :data:`ERAS`.
    mhp_range_allowed: bool = False
    #: atomic step order of tearing down a whole hot-added section, as :mod:`sparsemem.race`
    #: replays it (later-eras-hotplug.md A8, sparse-hotplug.md §7 and §10); set by its row of :data:`ERAS`:
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
    #: ``WRITE_ONCE`` (5ec8e8ea8b77, v6.8; read at 6.8.0); set by its row of :data:`ERAS`.
    usage_kfree_rcu: bool = False
    #: generic ``pfn_valid`` runs its section tests inside ``rcu_read_lock_sched()``
    #: (5ec8e8ea8b77 with the KMSAN follow-up f6564fce256a, both v6.8; read at 6.8.0, 6.9.0);
    #: set by its row of :data:`ERAS`.
    pfn_valid_rcu: bool = False
    #: ``pfn_section_valid`` loads ``ms->usage`` once and answers 0 for NULL (82f0b6f041fa
    #: "mm: prevent derefencing NULL ptr in pfn_section_valid()", v6.10, CVE-2024-41055:
    #: absent at 6.10-rc5, present at 6.10.0); set by its row of :data:`ERAS`.
    pfn_section_valid_null_safe: bool = False
    #: ``pfn_to_online_page`` is a function that also tests the sub-section bit
    #: (``pfn_section_valid``) and ``SECTION_TAINT_ZONE_DEVICE`` (1f90a3477df3 and "mm: teach
    #: pfn_to_online_page() to consider subsection validity", v5.12; read at 5.12.9); before,
    #: a macro testing only ``SECTION_IS_ONLINE`` (read at 5.11.0); set by its row of :data:`ERAS`.
    pfn_to_online_page_subsection: bool = False
    #: which usage ``section_deactivate`` frees (kfree + NULL; a kept usage keeps its pointer)
    #: when a section's sub-section bitmap empties: ``"unless_early"`` (v5.3-v5.4: any usage of a
    #: section that was not early at entry, so a re-added early section kfree()s its boot array)
    #: or ``"unless_boot"`` (v5.5+: only a usage whose page is not PageReserved, i.e. one
    #: kzalloc'ed by ``section_activate``; "mm/memory_hotplug: Don't free usage map when
    #: removing a re-added early section", Fixes 326e1b8f83a4; absent at 5.5-rc5, present at
    #: 5.6.4; later-eras-hotplug.md A8, later-eras-hotplug-evidence.md §3.2).
    usage_free_rule: str = "unless_early"
    #: ``__add_pages`` first runs ``check_hotplug_memory_addressable``: when ``(PFN_PHYS(pfn +
    #: nr_pages) - 1) >> MAX_PHYSMEM_BITS`` is not 0 it WARNs "Hotplugged memory exceeds maximum
    #: addressable address, range=%#llx-%#llx, maximum=%#llx" and returns -E2BIG ("mm/memory_hotplug:
    #: add a bounds check to __add_pages", Alastair D'Silva; absent at 5.4.0, present at
    #: 5.5.0-rc5 -> v5.5).  v5.12 (bca3feaa0764) moves the real check to
    #: ``register_memory_resource`` (:attr:`mhp_range_allowed`) and leaves a ``VM_BUG_ON``
    #: (CONFIG_DEBUG_VM only) here (later-eras-hotplug.md A4.1, later-eras-hotplug-evidence.md
    #: §1 row 5.5, §2 items 1 and 4); set by its rows of :data:`ERAS`.
    add_pages_addressable_check: bool = False
    #: ``__add_pages`` loops ``for (; pfn < end_pfn; ...)`` and returns the 0 of
    #: ``check_pfn_span`` when the loop is empty (``nr_pages == 0``); before, by section number
    #: from ``pfn`` to ``pfn + nr_pages - 1`` (sparse-hotplug.md §5.2).  v5.7 (absent at 5.6.4,
    #: present at 5.7.14; later-eras-hotplug.md A4.1, later-eras-hotplug-evidence.md §2 item 18).
    add_pages_end_loop: bool = False
    #: ``__add_pages`` no longer assigns its return value before that loop, so an empty loop
    #: returns an uninitialised ``err`` (5.19.0 assigns it, 6.0.0-rc1 and 6.0.1 do not -> v6.0;
    #: later-eras-hotplug.md A4.1, later-eras-hotplug-evidence.md §2 item 4).
    add_pages_err_uninitialised: bool = False
    #: ``__remove_pages`` loops ``for (; pfn < end_pfn; ...)``, so ``nr_pages == 0`` is a no-op
    #: for every pfn; before, by section number (pfn 0 runs to section -1).  v5.6 (absent at
    #: 5.5.0-rc5, present at 5.6.4; later-eras-hotplug-evidence.md §1 row 5.6, §2 item 18).
    remove_pages_end_loop: bool = False
    #: ``check_pfn_span`` is silent and its callers WARN "Misaligned %s start: ..." with
    #: ``__func__`` (same text; the WARNING line names ``__add_pages``/``__remove_pages``).
    #: v6.0 (5.19.0 WARNs in ``check_pfn_span``, 6.0.0-rc1 in the callers; sparse-hotplug.md §5.1
    #: note as corrected, later-eras-hotplug-evidence.md §1 row 6.0).
    pfn_span_warn_in_caller: bool = False
    #: the "Misaligned" WARN prints its end with ``#%lx`` (``end: #1002ff``, the kernel's typo);
    #: ``%#lx`` (``end: 0x1002ff``) from v6.5 (6.4.6 typo, 6.5.0 fixed; later-eras-hotplug.md
    #: A4.1, later-eras-hotplug-evidence.md §1 row 6.5).
    pfn_span_end_hash_typo: bool = True
    #: the memory block ``removable`` file reads ``1`` always (CONFIG_MEMORY_HOTREMOVE):
    #: ``removable_show`` no longer runs ``is_mem_section_removable`` (53cdc1cb29e8
    #: "drivers/base/memory.c: indicate all memory blocks as removable", v5.6: 5.5.0-rc5
    #: computes it, 5.6.4 prints the constant; later-eras-hotplug.md A7.1,
    #: later-eras-hotplug-evidence.md §1 row 5.6); set by its row of :data:`ERAS`.
    removable_constant: bool = False
    #: ``kstrtobool`` (the device core ``online_store`` of ``memoryN/online``) also takes a
    #: first character ``t``/``T`` as true and ``f``/``F`` as false, so ``true``/``false`` work
    #: (0d6ea3ac94ca "lib/kstrtox.c: add "false"/"true" support to kstrtobool()", v5.19:
    #: 5.18.12 -> 5.19.0; later-eras-hotplug.md A7.1, later-eras-hotplug-evidence.md §1 row
    #: 5.19, §2 item 22); set by its row of :data:`ERAS`.
    kstrtobool_true_false: bool = False
    #: ``memhp_default_state=`` and ``auto_online_blocks`` know the four online-type words
    #: ``offline``/``online``/``online_kernel``/``online_movable`` (``online_type_to_str[]``,
    #: "mm/memory_hotplug: ..." online-type series by David Hildenbrand, v5.7: 5.6.4 knows
    #: two, 5.7.14 four; later-eras-hotplug-evidence.md §1 row 5.7); set by its row of :data:`ERAS`.
    online_type_strings: bool = False
    #: ``memory_hotplug.memmap_on_memory=`` exists: ``""`` (no such parameter: dropped
    #: silently, before 5.13), ``"bool"`` (a08a2ae34613, v5.13, inferred: 5.12.9 lacks,
    #: 5.14.0-rc5 has), ``"force"`` (also ``force``, 6.6: 6.5.0 lacks, 6.6.0 has; later-eras-
    #: hotplug-evidence.md §1 rows 5.13, 6.6); set by its rows of :data:`ERAS`.
    memmap_on_memory_param: str = ""
    #: ``memory_hotplug.online_policy=``, ``auto_movable_ratio=``, ``auto_movable_numa_aware=``
    #: exist (v5.15: 5.14.0-rc5 lacks, 5.15.16 has; later-eras-hotplug-evidence.md §1 row
    #: 5.15); set by its row of :data:`ERAS`.
    online_policy_param: bool = False
    #: first release ``(major, minor, patch)`` of the :data:`ERAS` row this model was built from
    #: (filled in by :func:`kernel_model`); see :attr:`rules` and :attr:`approximate`.
    row_release: tuple[int, int, int] = (5, 3, 0)

    @property
    def rules(self) -> str:
        """The upstream row this release runs, e.g. ``"6.0"`` for 6.1: the first release of
        this model's row of :data:`ERAS` (``"M.m"``, or ``"M.m.p"`` for a row starting at a
        patch release)."""
        return _release_name(self.row_release)

    @property
    def approximate(self) -> bool:
        """True when the release runs on a row after :data:`MODELLED_THROUGH`: the
        sparse/hotplug rows after 5.3 set only the switches the layers implement so far
        (later-eras-hotplug-evidence.md §5), so part of its behaviour is still that of 5.3.
        5.1, 5.2 and 5.3 (any patch release) are exact."""
        return self.row_release > MODELLED_THROUGH

    @property
    def label(self) -> str:
        """How reports name the model: ``"5.3 (subsection)"``, or for a release on a
        partly modelled row ``"6.1 (6.0 row; sparse/hotplug rows after 5.3 partly
        modelled)"``."""
        return self.label_for(self.name)

    def label_for(self, name: str) -> str:
        """:attr:`label` with the release spelled ``name`` (e.g. as the user typed it:
        ``"v5.3"`` -> ``"v5.3 (subsection)"``).  A ``name`` with a distribution suffix
        (``"6.8.0-45-generic"``; not a bare ``-rcN``) adds that distribution backports are
        not modelled."""
        notes = [f"{self.rules} row", PARTLY_MODELLED] if self.approximate else [self.era]
        if _distribution_suffix(name):
            notes.append(NO_BACKPORTS)
        return f"{name} ({'; '.join(notes)})"

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
    # v5.3 sub-section series (ba72b4c8cf60 / f46edbd1b151): ``section_deactivate`` step order
    deactivate_order="5.3",
)

#: The release table: ``((major, minor, patch), switches that change)``, oldest first.  Rows are
#: cumulative (a switch not named keeps the value of the row before; the first three rows name
#: every switch).  A release runs the last row whose first release is <= it (its
#: :attr:`KernelModel.rules`).  One row per release of later-eras-hotplug.md A10 (+ the 6.1
#: memory-failure rules); each switch cites its commit at the :class:`KernelModel` field and in
#: the row's comment.  "To do" lists the A10 switches of the row that the layers do not
#: implement yet (later-eras-hotplug-evidence.md §3.3, §5); until they are, releases after
#: :data:`MODELLED_THROUGH` are approximate.
ERAS: tuple[tuple[tuple[int, int, int], dict], ...] = (
    # v5.1 (checked in 5.1.15): section-granular hotplug, __remove_pages returns errors
    ((5, 1, 0), _LEGACY_5_1),
    # v5.2: section-granular hotplug, void __remove_pages
    ((5, 2, 0), _LEGACY),
    # v5.3: "mm: Sub-section memory hotplug support" (v10)
    ((5, 3, 0), _SUBSECTION),
    # v5.4 (read 5.3.0 -> 5.4.0): memory_failure / soft_offline_page_store use
    # pfn_to_online_page ("mm/memory-failure.c: don't access uninitialized memmaps in
    # memory_failure()").  To do: shrink probes online sections, update_pgdat_span, ZONE_DEVICE
    # not shrunk, try_offline_node "spanned" (2c91f8fc6c99), block nid NUMA_NO_NODE; nvdimm
    # infoblock_minor 4 and pmem_probe_falls_back_to_raw False (later-eras-nvdimm.md, issue 11).
    ((5, 4, 0), dict(memory_failure="5.4")),
    # v5.5 (read 5.4.0 -> 5.5.0-rc5): EFI_MEMORY_SP as "Soft Reserved" (262b45ae3ab4); the
    # usage is freed only when not PageReserved ("mm/memory_hotplug: Don't free usage map when
    # removing a re-added early section", Fixes 326e1b8f83a4; inferred: 5.5-rc5 still frees
    # unless early, 5.6.4 has it, queued for 5.4.14 before 5.5); __add_pages addressable
    # WARN/-E2BIG ("mm/memory_hotplug: add a bounds check to __add_pages").  To do: shrink at
    # offline (feee6b298916), no memmap read on removal, offline holes check, try_remove_memory order.
    ((5, 5, 0), dict(efi_soft_reserve=True, usage_free_rule="unless_boot", add_pages_addressable_check=True)),
    # v5.6 (read 5.5.0-rc5 -> 5.6.4): full deactivation stores 0, not encode(NULL)
    # (1f503443e7df "reset section's mem_map when fully deactivated", d41e2f3bd546,
    # b943f045a9af); __remove_pages loops to end_pfn (nr_pages 0 is a no-op); removable reads 1
    # always (53cdc1cb29e8).  To do: poison at offline, no all-holes scan, memunmap shrink,
    # unpaired mem_hotplug_done (5.6-5.8).
    ((5, 6, 0), dict(deactivate_order="5.6", deactivate_writes_encoded_null=False, remove_pages_end_loop=True,
                     removable_constant=True)),
    # v5.7 (read 5.6.4 -> 5.7.14): sub-section add stores the struct-page address ("mm/sparsemem:
    # get address to page struct instead of address to pfn"); __add_pages loops to end_pfn
    # (nr_pages 0 returns 0).  To do: MMOP numbering and the four online-type strings,
    # pages_correctly_probed gone, mem= only at boot.
    ((5, 7, 0), dict(subsection_memmap_kaddr_bug=False, add_pages_end_loop=True, online_type_strings=True)),
    # v5.8 (read 5.7.14 -> 5.8.1).  To do: node_possible check, "unmovable page" reason,
    # driver-managed resources.
    ((5, 8, 0), {}),
    # v5.9 (read 5.8.1 -> 5.9.1): partial removal from an early section keeps the memmap
    # (ef69bc9f689d); x86 bare metal with >= 64 GiB uses 2 GiB blocks (fe124c95df9e).
    # To do: unpaired-unlock fix.
    ((5, 9, 0), dict(early_partial_remove_frees_memmap=False, bare_metal_2g_blocks=True)),
    # v5.10 (read 5.9.1 -> 5.10.0).  To do: online without the System RAM walk, online_pages
    # alignment WARN, add_memory flags, no "Unable to release resource" line.
    ((5, 10, 0), {}),
    # v5.11 (read 5.10.0 -> 5.11.0).  To do: "Offlined Pages" at debug level (needs dmesg levels).
    ((5, 11, 0), {}),
    # v5.12 (read 5.11.0 -> 5.12.9): SECTION_MAP_LAST_BIT 1<<5 with SECTION_TAINT_ZONE_DEVICE
    # (1f90a3477df3; the nid shift stays 3, so nid & 2 leaves bit 4 set after sparse_init),
    # mhp_range_allowed in register_memory_resource (bca3feaa0764), pfn_to_online_page tests the
    # sub-section bit (race replay); __add_pages keeps only a VM_BUG_ON of the range (no
    # addressable WARN).  To do: pfn_to_online_page function form in hotplug, the TAINT setter
    # in move_pfn_range_to_zone.
    ((5, 12, 0), dict(section_map_last_bit=1 << 5, mhp_range_allowed=True,
                      pfn_to_online_page_subsection=True, add_pages_addressable_check=False)),
    # v5.13 (inferred: 5.12.9 lacks, 5.14.0-rc5 has; a08a2ae34613).  To do: memmap_on_memory
    # (single block), relaxed online_pages alignment.  5.14 falls in this row (A10: no 5.14 row).
    ((5, 13, 0), dict(memmap_on_memory_param="bool")),
    # v5.15 (read 5.14.0-rc5 -> 5.15.16): SECTION_NID_SHIFT 6 ("mm/sparse: set SECTION_NID_SHIFT
    # to 6", sparse-hotplug.md §10 #17; later-eras-hotplug.md A1).  To do: online_policy /
    # auto_movable_ratio, remove_memory nid from the last block, unknown bare parameter notice.
    ((5, 15, 0), dict(section_nid_shift=6, online_policy_param=True)),
    # v5.18 (read 5.17.0-rc5 -> 5.18.12).  To do: the memory block stores its zone.
    ((5, 18, 0), {}),
    # v5.19 (read 5.18.12 -> 5.19.0): kstrtobool takes t/T/f/F, so "true"/"false" work in
    # memoryN/online (0d6ea3ac94ca).
    ((5, 19, 0), dict(kstrtobool_true_false=True)),
    # v6.0 (read 5.19.0 -> 6.0.0-rc1, 6.0.1): section flags as an enum, SECTION_NID_SHIFT =
    # SECTION_MAP_LAST_BIT = 5 ("mm: memory_hotplug: enumerate all supported section flags",
    # sparse-hotplug.md §10 #19; later-eras-hotplug.md A1); the Misaligned WARN sits in
    # __add_pages/__remove_pages, and __add_pages with nr_pages 0 returns an uninitialised value
    # (later-eras-hotplug.md A4.1).
    ((6, 0, 0), dict(section_nid_shift=5, pfn_span_warn_in_caller=True, add_pages_err_uninitialised=True)),
    # v6.1: the memory-failure rules read at 6.1 (sparsemem.memory_failure); not an A10 row
    # (no sparse/hotplug change).
    ((6, 1, 0), dict(memory_failure="6.1")),
    # v6.2 (read 6.1.192 -> 6.2.1): per-memory-block hwpoison counter, -EHWPOISON on online,
    # no hwpoison clearing in sparse_remove_section (5033091de814 "mm/hwpoison: introduce
    # per-memory_block hwpoison counter").
    ((6, 2, 0), dict(hwpoison_block_counter=True)),
    # v6.5 (read 6.4.6 -> 6.5.0): the "Misaligned" end is printed with %#lx (typo fixed).
    ((6, 5, 0), dict(pfn_span_end_hash_typo=False)),
    # v6.6 (read 6.5.0 -> 6.6.0).  To do: memmap_on_memory "force", silent fallback, altmap in
    # the memory block.
    ((6, 6, 0), dict(memmap_on_memory_param="force")),
    # v6.8 (read 6.7.3 -> 6.8.1): HAS_MEM_MAP cleared before the usage is freed, kfree_rcu, RCU
    # pfn_valid (5ec8e8ea8b77, f6564fce256a; CVE-2023-52489; race replay).  To do:
    # memmap_on_memory per block, mixed-altmap removal check.
    ((6, 8, 0), dict(deactivate_order="6.8", usage_kfree_rcu=True, pfn_valid_rcu=True)),
    # v6.10 (bracketed: 6.10.0-rc5 lacks, 6.12.0 has): pfn_section_valid NULL check
    # (82f0b6f041fa, CVE-2024-41055; race replay).  6.11 falls in this row.
    ((6, 10, 0), dict(pfn_section_valid_null_safe=True)),
    # v6.12 (read 6.10.0-rc5 -> 6.12.0): nothing new in the files read; the newest row.
    ((6, 12, 0), {}),
)


def _release_name(v: tuple[int, ...]) -> str:
    """``(6, 1, 0)`` -> ``"6.1"``, ``(6, 1, 12)`` -> ``"6.1.12"``."""
    return "%d.%d" % v[:2] if len(v) < 3 or v[2] == 0 else "%d.%d.%d" % v[:3]


def _distribution_suffix(version: str) -> bool:
    """True when ``version`` carries what ``uname -r`` or a distribution adds (``-45-generic``,
    ``+``, ``.el9_4.x86_64`` after a patch level) rather than nothing or a bare ``-rcN``."""
    m = _VERSION_RE.match(version.strip()) if isinstance(version, str) else None
    suffix = m.group("suffix") if m else None
    return suffix is not None and re.fullmatch(r"-rc\d+", suffix) is None


def row_releases() -> tuple[str, ...]:
    """The first release of every row of :data:`ERAS`, oldest first (``"5.1"`` .. ``"6.12"``)."""
    return tuple(_release_name(first) for first, _ in ERAS)


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
    """The behaviour switches of ``version`` (a string such as ``"5.2"``, ``"6.1.12"`` or
    ``"6.8.0-45-generic"``): the rows of :data:`ERAS` up to the release, applied in order."""
    if isinstance(version, KernelModel):
        return version
    v = parse_version(version)
    switches: dict = {}
    first_release = None
    for first, row in ERAS:
        if v >= first:
            switches.update(row)
            first_release = first
    assert first_release is not None  # parse_version guarantees v >= OLDEST
    return KernelModel(version=v, row_release=first_release, **switches)


def newest_release() -> str:
    """The newest modelled release, ``"6.12"`` (:data:`NEWEST`): the top of the range every
    stateful object accepts (:func:`version_range`) and the first release of the last row of
    :data:`ERAS`."""
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


__all__ += ["as_model", "replace", "newest_release", "report_kernels", "row_releases",
            "MODELLED_THROUGH"]
