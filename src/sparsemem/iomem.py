"""The iomem layer under one name: :mod:`sparsemem.resource` (the ``kernel/resource.c`` tree),
:mod:`sparsemem.e820` (``arch/x86/kernel/e820.c``) and :mod:`sparsemem.layout` (the
``/proc/iomem`` and e820 text parsers), re-exported so that ``sparsemem.iomem.parse``,
``ResourceTree`` etc. keep working.  Details: docs/iomem.md.
"""

from __future__ import annotations

from . import e820 as _e820
from . import layout as _layout
from . import resource as _resource
from .e820 import (  # noqa: F401  (re-exported)
    E820_TYPE_ACPI,
    E820_TYPE_NVS,
    E820_TYPE_PMEM,
    E820_TYPE_PRAM,
    E820_TYPE_RAM,
    E820_TYPE_RESERVED,
    E820_TYPE_RESERVED_KERN,
    E820_TYPE_SOFT_RESERVED,
    E820_TYPE_UNUSABLE,
    E820Entry,
    do_mark_busy,
    e820__reserve_resources,
    e820__update_table,
    e820_print_type,
    e820_type_to_iomem_type,
    e820_type_to_iores_desc,
    e820_type_to_string,
)
from .layout import (  # noqa: F401  (re-exported)
    MAX_PARSE_DEPTH,
    MAX_PARSE_LINES,
    UNPRIVILEGED_MESSAGE,
    ParsedLayout,
    iomem_flags_for_name,
    parse,
    parse_file,
)
from .resource import (  # noqa: F401  (re-exported)
    IORES_DESC_ACPI_NV_STORAGE,
    IORES_DESC_ACPI_TABLES,
    IORES_DESC_CRASH_KERNEL,
    IORES_DESC_DEVICE_PRIVATE_MEMORY,
    IORES_DESC_NONE,
    IORES_DESC_PERSISTENT_MEMORY,
    IORES_DESC_PERSISTENT_MEMORY_LEGACY,
    IORES_DESC_RESERVED,
    IORES_DESC_SOFT_RESERVED,
    IORESOURCE_BUSY,
    IORESOURCE_EXT_TYPE_BITS,
    IORESOURCE_IO,
    IORESOURCE_MEM,
    IORESOURCE_MEM_64,
    IORESOURCE_PREFETCH,
    IORESOURCE_READONLY,
    IORESOURCE_SYSRAM,
    IORESOURCE_SYSTEM_RAM,
    IORESOURCE_TYPE_BITS,
    IORESOURCE_WINDOW,
    KERNEL_IMAGE,
    KERNEL_RESERVED,
    MAX_IORES_LEVEL,
    REGION_DISJOINT,
    REGION_INTERSECTS,
    REGION_MIXED,
    RESOURCE_MAX,
    Resource,
    ResourceTree,
    resource_ext_type,
    resource_type,
)

__all__ = [*_resource.__all__, *_e820.__all__, *_layout.__all__]
