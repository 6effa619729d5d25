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
    #: minor version written into new pfn info-blocks (2 before v5.3, 3 in v5.3, 4 from v5.4 with
    #: ``page_size``/``page_struct_size``: edbb52c24441, 5.3.0 -> 5.4.0; later-eras-nvdimm-evidence.md R1).
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
    #: the span probes of ``shrink_zone_span`` (``find_smallest_section_pfn`` /
    #: ``find_biggest_section_pfn``) take a pfn only if ``pfn_to_online_page`` gives its page, i.e.
    #: its section is online (before v5.12 the macro: section number bound and
    #: ``online_section_nr``, no sub-section test; from v5.12 also
    #: :attr:`pfn_to_online_page_subsection`); before, ``pfn_valid`` ("mm/memory_hotplug: don't
    #: access uninitialized memmaps in shrink_zone_span()", David Hildenbrand, v5.4: 5.3.0 probes
    #: with ``pfn_valid``, 5.4.0 with ``pfn_to_online_page``; later-eras-hotplug-evidence.md §1
    #: row 5.4); the cores read it as ``SM_K_PROBE_ONLINE``; set by its row of :data:`ERAS`.
    shrink_probes_online_sections: bool = False
    #: ``move_pfn_range_to_zone`` of ZONE_DEVICE ORs SECTION_TAINT_ZONE_DEVICE (bit 4) into the
    #: section of ``start_pfn`` when it is not section-aligned and into the section of
    #: ``start_pfn + nr_pages`` when that is not; only the final ``section_mem_map = 0`` of a
    #: full deactivation clears it, and ``pfn_to_online_page`` asks ``get_dev_pagemap`` for a pfn
    #: of an online, tainted section (1f90a3477df3 "mm: teach pfn_to_online_page()
    #: about ZONE_DEVICE section collisions", title recalled; v5.12: absent at 5.11.0, present at 5.12.9;
    #: later-eras-hotplug-evidence.md §1 row 5.12); needs :attr:`section_map_last_bit` 1<<5;
    #: the cores read it as ``SM_K_TAINT_ZONE_DEVICE``; set by its row of :data:`ERAS`.
    section_taint_zone_device: bool = False
    #: which usage ``section_deactivate`` frees (kfree + NULL; a kept usage keeps its pointer)
    #: when a section's sub-section bitmap empties: ``"unless_early"`` (v5.3-v5.4: any usage of a
    #: section that was not early at entry, so a re-added early section kfree()s its boot array)
    #: or ``"unless_boot"`` (v5.5+: only a usage whose page is not PageReserved, i.e. one
    #: kzalloc'ed by ``section_activate``; "mm/memory_hotplug: Don't free usage map when
    #: removing a re-added early section", Fixes 326e1b8f83a4; absent at 5.5-rc5, present at
    #: 5.6.4; later-eras-hotplug.md A8, later-eras-hotplug-evidence.md §3.2).
    usage_free_rule: str = "unless_early"
    #: the node span is recomputed as the union of the node's non-empty zone spans
    #: (``update_pgdat_span``) after a zone shrinks, instead of being shrunk by its own probes
    #: (``shrink_pgdat_span``) ("mm/memory_hotplug: fix updating the node span", David
    #: Hildenbrand, v5.4: 5.3.0 has ``shrink_pgdat_span``, 5.4.0 ``update_pgdat_span``;
    #: sparse-hotplug.md §6.5, §10 #3; later-eras-hotplug.md A9); set by its row of :data:`ERAS`.
    node_span_from_zones: bool = False
    #: ``__remove_zone`` (``remove_pfn_range_from_zone`` from v5.5) returns at once for
    #: ZONE_DEVICE: the ZONE_DEVICE zone, and so the node span, keep a removed device range
    #: (same series as :attr:`node_span_from_zones`, v5.4: absent at 5.3.0, present at 5.4.0;
    #: sparse-hotplug.md §6.5, later-eras-hotplug-evidence.md §1 row 5.4); set by its row of
    #: :data:`ERAS`.
    shrink_skips_zone_device: bool = False
    #: ``try_offline_node`` keeps the node online while it spans pages, while any memory block
    #: records its nid (``check_no_memblock_for_node_cb``: e.g. an added block never onlined)
    #: or while a CPU is on it; before, while a present section of its span has a struct page
    #: of the node (2c91f8fc6c99 "mm/memory_hotplug: fix try_offline_node()", v5.4: 5.3.0 probes
    #: the span, 5.4.0 has the callback; later-eras-hotplug.md A9, later-eras-hotplug-evidence.md
    #: §2 item 10); set by its row of :data:`ERAS`.
    try_offline_node_spanned: bool = False
    #: ``mem->nid`` of a new memory block until ``link_mem_sections`` sets it: 0 (zeroed
    #: allocation) before v5.4, ``NUMA_NO_NODE`` (-1) from v5.4 (``init_memory_block``, same fix
    #: as :attr:`try_offline_node_spanned`: 5.3.0 lacks, 5.4.0 has; later-eras-hotplug-evidence.md
    #: §1 row 5.4); set by its row of :data:`ERAS`.
    block_nid_init: int = 0
    #: spans shrink in ``remove_pfn_range_from_zone``, called when a range goes offline
    #: (``__offline_pages`` success) and after a failed ``online_pages``; ``__remove_pages`` has
    #: no zone and removal no longer shrinks (feee6b298916 "mm/memory_hotplug: shrink zones when
    #: offlining memory", v5.5: absent at 5.4.0, present at 5.5.0-rc5; later-eras-hotplug.md A5.4,
    #: A9, later-eras-hotplug-evidence.md §1 row 5.5, §2 item 19); set by its row of :data:`ERAS`.
    shrink_at_offline: bool = False
    #: x86 ``arch_remove_memory`` reads ``page_zone`` of the range's first struct page (which
    #: faults on a never-added range); from v5.5 it only calls ``__remove_pages`` (same commit as
    #: :attr:`shrink_at_offline`: 5.4.0 reads, 5.5.0-rc5 does not; later-eras-hotplug.md A5.4);
    #: set by its row of :data:`ERAS`.
    x86_remove_reads_memmap: bool = True
    #: ``shrink_zone_span`` ends with the "all holes" scan (zone emptied when nothing of it is
    #: left outside the removed range); from v5.6 the zone is emptied only when no edge pfn is
    #: found ("mm/memory_hotplug: don't check for "all holes" in shrink_zone_span()", David
    #: Hildenbrand, title recalled; 5.5.0-rc5 scans, 5.6.4 does not; later-eras-hotplug.md A9,
    #: later-eras-hotplug-evidence.md §2 item 17); set by its row of :data:`ERAS`.
    shrink_all_holes_scan: bool = True
    #: ``remove_pfn_range_from_zone`` first poisons the struct pages of the range
    #: (``page_init_poison``, also for ZONE_DEVICE), so an offlined (or failed-online) range
    #: reads as uninitialised memmap ("mm/memory_hotplug: poison memmap in
    #: remove_pfn_range_from_zone()", David Hildenbrand, title recalled; 5.5.0-rc5 lacks, 5.6.4
    #: has; later-eras-hotplug.md A9, later-eras-hotplug-evidence.md §2 item 17); set by its row
    #: of :data:`ERAS`.
    offline_poisons_memmap: bool = False
    #: ``memunmap_pages`` calls ``remove_pfn_range_from_zone`` for the device range (which for
    #: ZONE_DEVICE only poisons) before ``arch_remove_memory`` (5.5.0-rc5 ``mm/memremap.c`` lacks,
    #: 5.6.4 has; later-eras-hotplug.md A9, later-eras-hotplug-evidence.md §1 row 5.5); set by its
    #: row of :data:`ERAS`.
    shrink_at_memunmap: bool = False
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
    #: what ``add_memory(..., MHP_MEMMAP_ON_MEMORY)`` does (mm/memory_hotplug.c
    #: ``add_memory_resource``, ``mhp_supports_memmap_on_memory``, ``try_remove_memory``;
    #: drivers/base/memory.c ``memory_block_online``/``_offline``): ``""`` the bit means nothing
    #: (before 5.13; 5.10-5.12 test only MHP_MERGE_RESOURCE); ``"5.13"`` one altmap over a
    #: single-block add, an unsupported request -EINVAL before ``arch_add_memory``, the block
    #: records ``nr_vmemmap_pages`` = ``altmap->alloc``, removal refuses a multi-block range
    #: holding such a block (``Refuse to remove ...,wrong granularity``) (a08a2ae34613, v5.13:
    #: inferred, 5.12.9 lacks, 5.14.0-rc5 has; same at 6.5.0); ``"6.6"`` the 6.6 support test,
    #: an unsupported request falls back to a plain add silently, the block owns the altmap
    #: (``free`` = its vmemmap pages) and removal WARNs ``Altmap not fully unmapped`` (6.5.0
    #: lacks, 6.6.0 has; same at 6.7.3); ``"6.8"`` one altmap per block of a multi-block add
    #: (``create_altmaps_and_memory_blocks``), removal of a range where some but not all blocks
    #: have one is WARN_ON_ONCE and -EINVAL ("mm/memory_hotplug: split memmap_on_memory
    #: requests across memblocks", Vishal Verma; 6.7.3 lacks, 6.8.1 has) (later-eras-hotplug.md
    #: A6, later-eras-hotplug-evidence.md §1 rows 5.13, 6.6, 6.8); set by its rows of :data:`ERAS`.
    memmap_on_memory_rules: str = ""
    #: ``memory_hotplug.online_policy=``, ``auto_movable_ratio=``, ``auto_movable_numa_aware=``
    #: exist (v5.15: 5.14.0-rc5 lacks, 5.15.16 has; later-eras-hotplug-evidence.md §1 row
    #: 5.15); set by its row of :data:`ERAS`.
    online_policy_param: bool = False
    # --- the top half of hotplug (later-eras-hotplug-evidence.md §1 rows 5.6-5.15, §5 step 9)
    #: ``register_memory_resource`` refuses a range above ``max_mem_size`` (``mem=``) only while
    #: ``system_state < SYSTEM_RUNNING``: a hot-add at run time succeeds ("mm/memory_hotplug: only
    #: respect mem= parameter during boot stage", Baoquan He, title recalled; v5.7: 5.6.4 tests
    #: ``max_mem_size`` always, 5.7.14 .. 6.12.0 with the ``system_state`` term; row 5.7).
    mem_limit_boot_only: bool = False
    #: ``add_memory_resource`` WARNs "node %d was absent from the node_possible_map" and returns
    #: -EINVAL for a nid outside ``node_possible_map``, after the block-size range check and
    #: before ``mem_hotplug_begin`` (v5.8: absent at 5.7.14, present at 5.8.1 .. 6.12.0; row 5.8).
    node_possible_check: bool = False
    #: ``try_remove_memory`` checks that every block is offline before ``mem_hotplug_begin`` but
    #: its failure still jumps to the ``mem_hotplug_done`` at the end, releasing locks it does
    #: not hold: ``percpu_up_write`` -> ``rcu_sync_exit`` WARN_ON_ONCE twice (kernel/rcu/sync.c
    #: lines 170, 171) (v5.6: 5.5.0-rc5 locks first, 5.6.4, 5.7.14 and 5.8.1 have the bug; fixed in
    #: v5.9, "mm/memory_hotplug: fix unpaired mem_hotplug_begin/done", Jia He, title recalled:
    #: 5.9.1 returns directly; row 5.6, §2 item 7); set by its rows of :data:`ERAS`.
    remove_memory_unpaired_unlock: bool = False
    #: ``remove_memory`` releases the "System RAM" resource through ``__release_memory_resource``,
    #: which pr_warns "Unable to release resource <%pa-%pa> (%d)" when
    #: ``release_mem_region_adjustable`` fails; from v5.10 that function is void and only
    #: WARN_ON_ONCEs an adjust that fails (kernel/resource.c 5.9.1 -> 5.10.0; row 5.10, §2 item 20).
    release_failure_message: bool = True
    #: the level of ``__offline_pages``' "Offlined Pages %ld": ``"info"`` (pr_info, 5.3.0 ..
    #: 5.10.0) or ``"debug"`` (pr_debug, only with dynamic debug; 5.11.0 .. 6.12.0; row 5.11).
    offlined_pages_loglevel: str = "info"
    #: ``remove_memory(nid, start, size)`` offlines the caller's ``nid`` (``try_offline_node``);
    #: from v5.15 ``remove_memory(start, size)`` has no nid and offlines the nid of the last
    #: memory block ``check_memblock_offlined_cb`` visited (none: no node is offlined)
    #: ("mm/memory_hotplug: remove nid parameter from remove_memory() and friends", David
    #: Hildenbrand, title recalled; 5.14.0-rc5 has the argument, 5.15.16 not; row 5.15, §2 item 21).
    remove_memory_has_nid: bool = True
    #: ``__offline_pages`` first counts the pages of busy System RAM resources in the range
    #: (``count_system_ram_pages_cb``); fewer than the range -> pr_debug "memory offlining
    #: [mem %#010llx-%#010llx] failed due to memory holes" and -EINVAL, before the multizone
    #: test ("mm/memory_hotplug: don't allow to online/offline memory blocks with holes", title
    #: recalled; absent at 5.4.0, present at 5.5.0-rc5 and every release read after it;
    #: later-eras-hotplug.md A7.2, later-eras-hotplug-evidence.md §1 row 5.5, §2 item 3); set by
    #: its row of :data:`ERAS`.
    offline_holes_check: bool = False
    #: numbering of ``MMOP_*`` (include/linux/memory_hotplug.h, :func:`sparsemem.hotplug.mmop`):
    #: ``"keep"`` (OFFLINE -1, ONLINE_KEEP 0, ONLINE_KERNEL 1, ONLINE_MOVABLE 2; read at 5.3.0,
    #: 5.6.4) or ``"offline0"`` (OFFLINE 0, ONLINE 1, ONLINE_KERNEL 2, ONLINE_MOVABLE 3: new
    #: blocks start at MMOP_OFFLINE, ``memory_subsys_online`` resets to it and auto-online stores
    #: ``memhp_default_online_type`` in the block; read at 5.7.14, the online-type series by
    #: David Hildenbrand, titles recalled; later-eras-hotplug.md A7.1); set by its row of :data:`ERAS`.
    mmop_numbering: str = "keep"
    #: onlining a memory block first runs ``pages_correctly_probed`` (WARN_ON_ONCE for a first
    #: pfn that is not ``pfn_valid``, pr_warn "section %ld pfn[%lx, %lx) not present" / "no valid
    #: memmap" / "is already online", -EBUSY) and offlining one first tests ``section_count !=
    #: sections_per_block`` (-EINVAL, no line); both gone in v5.7 (5.6.4 has them, 5.7.14 not:
    #: "drivers/base/memory.c: drop pages_correctly_probed()" and the ``section_count`` removal,
    #: titles recalled; later-eras-hotplug.md A7.2, later-eras-hotplug-evidence.md §1 row 5.7);
    #: set by its row of :data:`ERAS`.
    pages_correctly_probed: bool = True
    #: ``online_pages`` onlines only the busy System RAM pieces of the range
    #: (``walk_system_ram_range`` -> ``online_pages_range``; none -> -EINVAL and the pr_debug
    #: "online_pages [mem ...] failed") and counts only them; from v5.10 every page of the range
    #: is onlined and counted (5.9.1 walks, 5.10.0 does not; later-eras-hotplug.md A7.2,
    #: later-eras-hotplug-evidence.md §1 row 5.10); set by its row of :data:`ERAS`.
    online_walks_system_ram: bool = True
    #: the WARN_ON_ONCE + -EINVAL range test at the top of ``online_pages`` and
    #: ``offline_pages`` (before the hotplug lock, no other line): ``""`` none (before v5.10);
    #: ``"section"`` -- ``nr_pages`` 0, or ``pfn | nr_pages`` not a multiple of
    #: PAGES_PER_SECTION (v5.10: absent at 5.9.1, present at 5.10.0 in both functions; the
    #: ``offline_pages`` half is not in later-eras-hotplug.md A7.2); ``"pageblock"`` -- ``nr_pages``
    #: 0, a start that is not pageblock-aligned or an end that is not section-aligned
    #: (memmap_on_memory, a08a2ae34613, v5.13: inferred, 5.12.9 has "section", 5.14.0-rc5
    #: "pageblock"; later-eras-hotplug-evidence.md §1 row 5.13); set by its rows of :data:`ERAS`.
    onoffline_alignment: str = ""
    #: the memory block records its zone (``mem->zone``): boot blocks get the one populated zone
    #: of their node that intersects them (``early_node_zone_for_memory_block``, NULL for none or
    #: several), a successful online the zone onlined to, an offline NULL; ``memory_block_offline``
    #: returns -EINVAL with no line when it is NULL, ``valid_zones`` of an online block prints it
    #: (``none`` for NULL) and ``offline_pages`` gets it instead of running
    #: ``test_pages_in_a_zone`` ("drivers/base/memory: determine and store zone for single-zone
    #: memory blocks", David Hildenbrand, title recalled; absent at 5.17.0-rc5, present at 5.18.12;
    #: later-eras-hotplug.md A7.1, A7.2, A7.4, later-eras-hotplug-evidence.md §1 row 5.18, §2
    #: item 13); set by its row of :data:`ERAS`.
    block_stores_zone: bool = False
    # --- the nvdimm / memremap layer (issue 11; later-eras-nvdimm-evidence.md §1 rows R1-R25,
    # later-eras-nvdimm.md §11-§18); each set by its row of :data:`ERAS`.
    #: bytes of memmap ``nd_pfn_init`` reserves per pfn of a PMEM-mode (map=dev) namespace and
    #: records as ``page_struct_size`` (``MAX_STRUCT_PAGE_SIZE``, drivers/nvdimm/nd.h): 64; 128
    #: in v6.1.0-v6.1.11 (6e9f05dc66f9 "libnvdimm/pfn_dev: increase MAX_STRUCT_PAGE_SIZE": 6.0.1
    #: has 64, 6.1.0-rc7 and 6.1.10 128); 64 again from v6.1.12 (stable 9f55a0a2d94f = upstream
    #: c91d71363084 "nvdimm: Support sizeof(struct page) > MAX_STRUCT_PAGE_SIZE", 6.2.1 has 64;
    #: rows R18, R20).
    max_struct_page_size: int = 64
    #: ``nd_pfn_validate`` checks a PMEM-mode block's ``page_size`` (> PAGE_SIZE) and
    #: ``page_struct_size`` (< sizeof(struct page)), and a devdax block's align against the
    #: supported list, each -EOPNOTSUPP (checks 9a-9c; edbb52c24441 series, v5.4: absent at
    #: 5.3.0, present at 5.4.0; rows R1, R2).
    pfn_validate_v14: bool = False
    #: what ``nd_pmem_probe`` does when the pfn/dax probe of a namespace fails validation:
    #: ``"any"`` -- go on and attach it raw (v5.1-v5.3); ``"unless_eopnotsupp"`` -- -EOPNOTSUPP
    #: fails the namespace probe (left unbound), other errors still fall back (v5.4: 5.3.0 ->
    #: 5.4.0, drivers/nvdimm/pmem.c; row R3).
    probe_raw_fallback: str = "any"
    #: the texts of mm/memremap.c: ``"5.3"`` -- ``devm_memremap_pages`` dev_WARNs "<dev>:
    #: Conflicting mapping in same section", WARN_ONCE "devm_memremap_pages attempted on %s region
    #: %pr", release dev_WARN_ONCE "<dev>: devm_memremap_pages_release: failed to free all
    #: reserved pages" (v5.1-v5.3); ``"5.4"`` -- ``memremap_pages`` WARNs without the device,
    #: "memremap_pages attempted on %s region %pr", ``memunmap_pages`` WARN_ONCE "failed to free
    #: all reserved pages" (5.3.0 -> 5.4.0); ``"5.10"`` -- the checks in ``pagemap_range``,
    #: "attempted on %s region %#llx-%#llx" (multi-range pgmaps, 5.9.1 -> 5.10.0; rows R5, R12).
    memremap_msgs: str = "5.3"
    #: ``memremap_compat_align()`` (mm/memremap.c, 9ffc1d19fc4a "mm/memremap_pages: Introduce
    #: memremap_compat_align()", v5.7: absent at 5.6.4, present at 5.7.14; SUBSECTION_SIZE on
    #: x86): 0 before.  From it: ``nd_pfn_init`` refuses a namespace start that is not a multiple
    #: (-EINVAL, nothing written), ``nd_pfn_validate`` checks 13a/13b, and
    #: ``nvdimm_namespace_common_probe`` refuses a PAGEMAP namespace that maps pages with a start
    #: or end not a multiple (-EOPNOTSUPP) (rows R7, R8, R10).
    compat_align: int = 0
    #: ``nd_pfn_validate`` returns -EOPNOTSUPP for checks 10c, 11, 12, 13 ("libnvdimm/pfn: Prevent
    #: raw mode fallback if pfn-infoblock valid", v5.7: 5.6.4 -> 5.7.14; row R8).
    pfn_validate_eopnotsupp: bool = False
    #: the region ``align`` attribute (drivers/nvdimm/region_devs.c ``default_align``): ``""``
    #: none (before v5.7); ``"16m"`` -- MEMREMAP_COMPAT_ALIGN_MAX (16 MiB, times the mappings when
    #: they do not divide it), namespace sizes a multiple of it, free space trimmed to it
    #: ("libnvdimm/region: Introduce an 'align' attribute", v5.7: 5.6.4 -> 5.7.14); ``"16m_small_4k"``
    #: -- as "16m" but 4 KiB for a region under 16 MiB (d9d290d7e659 "nvdimm/region: Fix default
    #: alignment for small regions", v5.18: absent at 5.17.0-rc5, present at 5.18.12; rows R9, R15).
    region_align: str = ""
    #: the region ``align`` store accepts a region without mappings (e820/legacy regions), as if
    #: it had one; before, -ENXIO (v6.1: absent at 6.0.1, present at 6.1.0-rc7; row R19).
    region_align_store_unmapped: bool = False
    #: device-dax binds through ``dax_bus_probe``, which refuses a 0-size device with a silent
    #: -ENXIO before the driver runs, and ``dev_dax_probe`` reserves per range ("mapping%d:
    #: %#llx-%#llx could not reserve range"); before, ``dev_dax_probe`` requests the (empty)
    #: region and fails "could not reserve region %pR" with -EBUSY (v5.10: 5.9.1 -> 5.10.0;
    #: row R13, issue 11 item 3).
    dax_bus_probe: bool = False
    #: ZONE_DEVICE compound pages: ``memremap_pages`` takes ``pgmap->vmemmap_shift`` and
    #: ``dev_dax_probe`` sets it to ``order_base_2(align / 4 KiB)`` (v5.17: absent at 5.15.16,
    #: present at 5.17.0-rc5; no memmap saving before the 5.19 dedup; row R14).
    compound_devmap: bool = False
    #: ``nd_pfn_init`` refuses ``dataoff >= size - end_trunc`` (a zero-sized device) with
    #: "%s unable to satisfy requested alignment" -ENXIO, and ``nd_pfn_validate`` check 13c
    #: "bad offset with small namespace" -EOPNOTSUPP (e96d9a938e89 "nvdimm/pfn_dev: Prevent the
    #: creation of zero-sized namespaces", v6.6: absent at 6.5.0, present at 6.6.9; row R22).
    pfn_init_zero_capacity_refused: bool = False
    #: driver core prints a failed probe as ``dev_err`` "<drv> <dev>: probe with driver <drv>
    #: failed with error -N"; before, pr_warn "<drv>: probe of <dev> failed with error -N"
    #: (drivers/base/dd.c ``call_driver_probe``, v6.9: 6.8.1 -> 6.9.0; row R24).
    probe_fail_dev_err: bool = False
    #: kmem (drivers/dax/kmem.c) hot-removes its memory on unbind (``remove_memory``; dev_err
    #: "DAX region %pR cannot be hotremoved until the next reboot" when a block is online) and
    #: releases its resource when the hot-add fails; before, unbind and a failed hot-add leak
    #: the ``daxX.Y`` resource (kmem.md K §5.5; 5.2.1 -> 5.3.0, kmem-evidence.md); set by its row.
    kmem_hot_remove: bool = False
    #: legacy e820 pmem (``drivers/nvdimm/e820.c``) takes its target node from
    #: ``phys_to_target_node`` (NUMA_NO_NODE above the boot RAM without an SRAT range) instead of
    #: ``memory_add_physaddr_to_nid`` (never negative) (K §2.1; 5.6.4 -> 5.7.14); set by its row.
    e820_pmem_phys_target_node: bool = False
    #: kmem hot-adds with ``add_memory_driver_managed(..., "System RAM (kmem)")`` instead of
    #: ``add_memory`` ("System RAM") (K §5.1 step 5; 5.7.14 -> 5.8.1); set by its row.
    kmem_driver_managed: bool = False
    #: dax devices carry ranges: kmem aligns and adds each range ("mapping%d: ..." messages, an
    #: all-too-small device binds with nothing added), the ``align`` attribute, hmem devices for
    #: every Soft Reserved range HMAT left unclaimed (K §5.2, §2.2; 5.9.1 -> 5.10.0); set by its row.
    kmem_per_range: bool = False
    #: writing to a driver's ``bind`` file fails with the probe's own error (before: -ENODEV
    #: whatever the probe returned) (drivers/base/bus.c ``bind_store``, dd.c
    #: ``device_driver_attach``; 5.12.9 -> 5.14-rc5, K §3); set by its row.
    bind_returns_probe_error: bool = False
    #: kmem registers a static memory group per device and rejects a device with no memory
    #: after alignment (-EINVAL): ``""`` (no group), ``"bytes"`` (5.15: the maximum passed as
    #: the byte count), ``"pages"`` (6.4: ``PFN_UP(total_len)``) (K §5.3; 5.14-rc5 -> 5.15.16,
    #: 6.3.8 -> 6.4.6); set by its rows.
    kmem_memory_group: str = ""
    #: hmem (unless ``region_idle``) and CXL RAM regions mark their dax region
    #: IORESOURCE_DAX_KMEM and bind to kmem by default; hmem defers ranges that intersect a CXL
    #: window; the ``hmem.N`` platform device no longer has an iomem resource
    #: (``dax_match_type``, ``drivers/dax/cxl.c``, ``drivers/dax/hmem``; K §2.2, §2.3, §3;
    #: 6.2.1 -> 6.3.8); set by its row.
    dax_kmem_default: bool = False
    #: kmem passes MHP_MEMMAP_ON_MEMORY when ``dev_dax->memmap_on_memory`` (true for CXL
    #: devices) (K §5.6; 6.7.3 -> 6.8.1); set by its row.
    kmem_memmap_on_memory: bool = False
    #: the ``hmem.N`` platform device's iomem resource carries IORES_DESC_SOFT_RESERVED
    #: (drivers/dax/hmem/device.c 5.19.0 -> 6.0.1); set by its row.
    hmem_resource_desc: bool = False
    #: hmem registers each range in a private "HMEM devices" tree and skips one overlapping a
    #: range registered already (dev_dbg "hmem range %pr already active"), instead of skipping a
    #: Soft Reserved range that is no longer top-level ("HMEM: skip %pr, already claimed")
    #: (bracketed: 6.1.0-rc7 lacks, 6.1.10 has; kmem-evidence.md); set by its row.
    hmem_active: bool = False
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
    # kmem hot-remove on unbind (kmem.md K §5.5; 5.2.1 -> 5.3.0)
    ((5, 3, 0), dict(_SUBSECTION, kmem_hot_remove=True)),
    # v5.4 (read 5.3.0 -> 5.4.0): memory_failure / soft_offline_page_store use
    # pfn_to_online_page ("mm/memory-failure.c: don't access uninitialized memmaps in
    # memory_failure()"); the shrink probes take online sections only ("mm/memory_hotplug: don't
    # access uninitialized memmaps in shrink_zone_span()"); the node span is the union of the
    # zone spans (update_pgdat_span, "mm/memory_hotplug: fix updating the node span"); ZONE_DEVICE
    # is not shrunk; try_offline_node looks at the span, the memory blocks' nid and the CPUs, and
    # a new block's nid is NUMA_NO_NODE until linked (2c91f8fc6c99 "mm/memory_hotplug: fix
    # try_offline_node()").  nvdimm (5.3.0 -> 5.4.0; later-eras-nvdimm-evidence.md R1-R3,
    # R5): info-block 1.4 with page_size/page_struct_size (edbb52c24441) and validate checks
    # 9a-9c; no raw fallback after -EOPNOTSUPP; memremap_pages texts without the device.
    ((5, 4, 0), dict(memory_failure="5.4", shrink_probes_online_sections=True, node_span_from_zones=True,
                     shrink_skips_zone_device=True, try_offline_node_spanned=True, block_nid_init=-1,
                     infoblock_minor=4, pfn_validate_v14=True, probe_raw_fallback="unless_eopnotsupp",
                     memremap_msgs="5.4")),
    # v5.5 (read 5.4.0 -> 5.5.0-rc5): EFI_MEMORY_SP as "Soft Reserved" (262b45ae3ab4); the
    # usage is freed only when not PageReserved ("mm/memory_hotplug: Don't free usage map when
    # removing a re-added early section", Fixes 326e1b8f83a4; inferred: 5.5-rc5 still frees
    # unless early, 5.6.4 has it, queued for 5.4.14 before 5.5); __add_pages addressable
    # WARN/-E2BIG ("mm/memory_hotplug: add a bounds check to __add_pages"); spans shrink at
    # offline and after a failed online, not at removal, and x86 arch_remove_memory no longer
    # reads the first struct page (feee6b298916 "mm/memory_hotplug: shrink zones when offlining
    # memory"); __offline_pages refuses a range with holes before the multizone test
    # ("mm/memory_hotplug: don't allow to online/offline memory blocks with holes").  To do:
    # try_remove_memory order.
    ((5, 5, 0), dict(efi_soft_reserve=True, usage_free_rule="unless_boot", add_pages_addressable_check=True,
                     shrink_at_offline=True, x86_remove_reads_memmap=False, offline_holes_check=True)),
    # v5.6 (read 5.5.0-rc5 -> 5.6.4): full deactivation stores 0, not encode(NULL)
    # (1f503443e7df "reset section's mem_map when fully deactivated", d41e2f3bd546,
    # b943f045a9af); __remove_pages loops to end_pfn (nr_pages 0 is a no-op); removable reads 1
    # always (53cdc1cb29e8); remove_pfn_range_from_zone poisons the memmap of the range first
    # ("mm/memory_hotplug: poison memmap in remove_pfn_range_from_zone()"), shrink_zone_span has
    # no "all holes" scan ("mm/memory_hotplug: don't check for "all holes" in
    # shrink_zone_span()"), memunmap_pages calls remove_pfn_range_from_zone (titles recalled).
    # To do: unpaired mem_hotplug_done (5.6-5.8).
    ((5, 6, 0), dict(deactivate_order="5.6", deactivate_writes_encoded_null=False, remove_pages_end_loop=True,
                     removable_constant=True, offline_poisons_memmap=True, shrink_all_holes_scan=False,
                     shrink_at_memunmap=True, remove_memory_unpaired_unlock=True)),
    # v5.7 (read 5.6.4 -> 5.7.14): sub-section add stores the struct-page address ("mm/sparsemem:
    # get address to page struct instead of address to pfn"); __add_pages loops to end_pfn
    # (nr_pages 0 returns 0); MMOP_OFFLINE 0 .. MMOP_ONLINE_MOVABLE 3 and the four online-type
    # words (online_type_to_str[]), auto-online with memhp_default_online_type;
    # pages_correctly_probed and the section_count test gone (David Hildenbrand's series,
    # titles recalled); mem= limits hot-add only during boot (Baoquan He, title recalled).
    # nvdimm v5.7 (5.6.4 -> 5.7.14; later-eras-nvdimm-evidence.md R7-R10): memremap_compat_align()
    # (9ffc1d19fc4a): misaligned start refused by nd_pfn_init, validate 13a/13b, PAGEMAP namespaces
    # checked in nvdimm_namespace_common_probe; 10c-13 -EOPNOTSUPP; the region align attribute.
    ((5, 7, 0), dict(compat_align=2 << 20, pfn_validate_eopnotsupp=True, region_align="16m",
                     subsection_memmap_kaddr_bug=False, add_pages_end_loop=True, online_type_strings=True,
                     mmop_numbering="offline0", pages_correctly_probed=False, mem_limit_boot_only=True,
                     e820_pmem_phys_target_node=True)),
    # v5.8 (read 5.7.14 -> 5.8.1): add_memory_resource refuses a nid outside node_possible_map
    # (WARN, -EINVAL).  To do: "unmovable page" reason, driver-managed resources.
    ((5, 8, 0), dict(node_possible_check=True,
                     kmem_driver_managed=True)),
    # v5.9 (read 5.8.1 -> 5.9.1): partial removal from an early section keeps the memmap
    # (ef69bc9f689d); x86 bare metal with >= 64 GiB uses 2 GiB blocks (fe124c95df9e).
    # try_remove_memory returns -EBUSY before taking the hotplug lock without unlocking
    # ("mm/memory_hotplug: fix unpaired mem_hotplug_begin/done", Jia He, title recalled).
    ((5, 9, 0), dict(early_partial_remove_frees_memmap=False, bare_metal_2g_blocks=True,
                     remove_memory_unpaired_unlock=False)),
    # v5.10 (read 5.9.1 -> 5.10.0): online_pages onlines the whole range without the System RAM
    # walk; online_pages and offline_pages WARN_ON_ONCE and -EINVAL for nr_pages 0 or a range
    # that is not section-aligned; release_mem_region_adjustable is void (no "Unable to release
    # resource" line).  To do: add_memory flags.
    # nvdimm v5.10 (5.9.1 -> 5.10.0; R12, R13): pagemap_range texts, dax_bus_probe refuses a
    # 0-size device silently, "mapping%d: ... could not reserve range".
    ((5, 10, 0), dict(memremap_msgs="5.10", dax_bus_probe=True, online_walks_system_ram=False,
                      onoffline_alignment="section", release_failure_message=False,
                     kmem_per_range=True)),
    # v5.11 (read 5.10.0 -> 5.11.0): "Offlined Pages" is pr_debug.
    ((5, 11, 0), dict(offlined_pages_loglevel="debug")),
    # v5.12 (read 5.11.0 -> 5.12.9): SECTION_MAP_LAST_BIT 1<<5 with SECTION_TAINT_ZONE_DEVICE
    # (1f90a3477df3; the nid shift stays 3, so nid & 2 leaves bit 4 set after sparse_init),
    # mhp_range_allowed in register_memory_resource (bca3feaa0764), pfn_to_online_page tests the
    # sub-section bit and asks get_dev_pagemap in a TAINTed section, which move_pfn_range_to_zone
    # sets for a ZONE_DEVICE range with a section-misaligned start or end (1f90a3477df3);
    # __add_pages keeps only a VM_BUG_ON of the range (no addressable WARN).
    ((5, 12, 0), dict(section_map_last_bit=1 << 5, mhp_range_allowed=True, section_taint_zone_device=True,
                      pfn_to_online_page_subsection=True, add_pages_addressable_check=False)),
    # v5.13 (inferred: 5.12.9 lacks, 5.14.0-rc5 has; a08a2ae34613): online_pages/offline_pages
    # take a pageblock-aligned start (section-aligned end); memmap_on_memory for a single-block
    # add (-EINVAL otherwise).  5.14 falls in this row (A10: no 5.14 row).
    ((5, 13, 0), dict(memmap_on_memory_param="bool", onoffline_alignment="pageblock",
                      memmap_on_memory_rules="5.13")),
    # v5.14 (bracketed 5.12.9 -> 5.14.0-rc5, 5.13 unread; kmem-evidence.md): a driver's bind file
    # returns the probe's error ("driver core: Flow the return code from ->probe() through to
    # sysfs bind", title recalled).
    ((5, 14, 0), dict(bind_returns_probe_error=True)),
    # v5.15 (read 5.14.0-rc5 -> 5.15.16): SECTION_NID_SHIFT 6 ("mm/sparse: set SECTION_NID_SHIFT
    # to 6", sparse-hotplug.md §10 #17; later-eras-hotplug.md A1); memory_hotplug.online_policy,
    # auto_movable_ratio, auto_movable_numa_aware and the auto-movable zone choice
    # (auto_movable_zone_for_pfn, "mm/memory_hotplug: memory group aware "auto-movable" online
    # policy" series by David Hildenbrand, titles recalled); remove_memory without a nid offlines
    # the node of the last block it checked.  To do: unknown bare parameter notice.
    ((5, 15, 0), dict(section_nid_shift=6, online_policy_param=True, remove_memory_has_nid=False,
                     kmem_memory_group="bytes")),
    # v5.17 (nvdimm only; bracketed 5.15.16 -> 5.17.0-rc5; R14): device-dax pgmaps get
    # vmemmap_shift = order_base_2(align / 4 KiB) (no memmap saving yet).  5.16 is in the 5.15 row.
    ((5, 17, 0), dict(compound_devmap=True)),
    # v5.18 (read 5.17.0-rc5 -> 5.18.12): the memory block stores its zone ("drivers/base/memory:
    # determine and store zone for single-zone memory blocks", title recalled).
    # nvdimm v5.18 (5.17.0-rc5 -> 5.18.12; R15): a region under 16 MiB gets align 4 KiB
    # (d9d290d7e659).
    ((5, 18, 0), dict(region_align="16m_small_4k", block_stores_zone=True)),
    # v5.19 (read 5.18.12 -> 5.19.0): kstrtobool takes t/T/f/F, so "true"/"false" work in
    # memoryN/online (0d6ea3ac94ca).
    ((5, 19, 0), dict(kstrtobool_true_false=True)),
    # v6.0 (read 5.19.0 -> 6.0.0-rc1, 6.0.1): section flags as an enum, SECTION_NID_SHIFT =
    # SECTION_MAP_LAST_BIT = 5 ("mm: memory_hotplug: enumerate all supported section flags",
    # sparse-hotplug.md §10 #19; later-eras-hotplug.md A1); the Misaligned WARN sits in
    # __add_pages/__remove_pages, and __add_pages with nr_pages 0 returns an uninitialised value
    # (later-eras-hotplug.md A4.1).
    ((6, 0, 0), dict(section_nid_shift=5, pfn_span_warn_in_caller=True, add_pages_err_uninitialised=True,
                     hmem_resource_desc=True)),
    # v6.1: the memory-failure rules read at 6.1 (sparsemem.memory_failure); not an A10 row
    # (no sparse/hotplug change).
    # nvdimm v6.1.0 (6.0.1 -> 6.1.0-rc7, 6.1.10; R18, R19): MAX_STRUCT_PAGE_SIZE 128 (6e9f05dc66f9);
    # the region align store accepts a region without mappings.
    ((6, 1, 0), dict(max_struct_page_size=128, region_align_store_unmapped=True, memory_failure="6.1",
                     hmem_active=True)),
    # v6.1.12 (stable; nvdimm only, R20): MAX_STRUCT_PAGE_SIZE 64 again (9f55a0a2d94f, between the
    # v6.1.11 and v6.1.12 tags; upstream c91d71363084 in v6.2-rc8); 6.1.10 has 128, 6.2.1 64.
    # Debian "6.1.0-18-amd64" names the ABI, not the sublevel: it runs the 6.1.0 row.
    ((6, 1, 12), dict(max_struct_page_size=64)),
    # v6.2 (read 6.1.192 -> 6.2.1): per-memory-block hwpoison counter, -EHWPOISON on online,
    # no hwpoison clearing in sparse_remove_section (5033091de814 "mm/hwpoison: introduce
    # per-memory_block hwpoison counter").
    ((6, 2, 0), dict(hwpoison_block_counter=True)),
    # v6.3 (read 6.2.1 -> 6.3.8; kmem-evidence.md): hmem and CXL RAM dax regions bind to kmem by
    # default (IORESOURCE_DAX_KMEM, dax_match_type), drivers/dax/cxl.c, hmem defers CXL ranges
    # and its platform devices have no iomem resource.
    ((6, 3, 0), dict(dax_kmem_default=True)),
    # v6.4 (read 6.3.8 -> 6.4.6): kmem sizes its memory group in pages (PFN_UP(total_len)).
    ((6, 4, 0), dict(kmem_memory_group="pages")),
    # v6.5 (read 6.4.6 -> 6.5.0): the "Misaligned" end is printed with %#lx (typo fixed).
    ((6, 5, 0), dict(pfn_span_end_hash_typo=False)),
    # v6.6 (read 6.5.0 -> 6.6.0): memmap_on_memory "force", the 6.6 support test, silent
    # fallback to a plain add, the altmap in the memory block ("mm/memory_hotplug: allow memmap
    # on memory hotplug request to fallback", "... embed vmem_altmap details in memory block",
    # titles recalled).
    # nvdimm v6.6 (6.5.0 -> 6.6.9; R22): zero-sized pfn/dax devices refused at nd_pfn_init,
    # validate 13c (e96d9a938e89).
    ((6, 6, 0), dict(pfn_init_zero_capacity_refused=True, memmap_on_memory_param="force",
                     memmap_on_memory_rules="6.6")),
    # v6.8 (read 6.7.3 -> 6.8.1): HAS_MEM_MAP cleared before the usage is freed, kfree_rcu, RCU
    # pfn_valid (5ec8e8ea8b77, f6564fce256a; CVE-2023-52489; race replay); memmap_on_memory per
    # block and the mixed-altmap removal check ("mm/memory_hotplug: split memmap_on_memory
    # requests across memblocks").
    ((6, 8, 0), dict(deactivate_order="6.8", usage_kfree_rcu=True, pfn_valid_rcu=True,
                     memmap_on_memory_rules="6.8",
                     kmem_memmap_on_memory=True)),
    # v6.9 (6.8.1 -> 6.9.0; R24): driver core prints a failed probe with dev_err "probe with
    # driver %s failed with error %d".
    ((6, 9, 0), dict(probe_fail_dev_err=True)),
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
