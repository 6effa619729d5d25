"""``kernel/resource.c``: the iomem resource tree (``iomem_resource``) and its operations.

:class:`ResourceTree` is the root spanning 64 bits, :class:`Resource` one ``struct resource``
(inclusive ``end``); the operations are named after the kernel functions.  Failing operations
raise :class:`~sparsemem.errors.KernelError` and leave the tree unchanged.  Details:
docs/iomem.md "The tree".
"""

from __future__ import annotations

import copy
import errno
import operator
from typing import Iterator, Optional

from ._common import U64
from .constants import PAGE_SHIFT, PAGE_SIZE
from .errors import KernelError

__all__ = [
    "IORESOURCE_IO", "IORESOURCE_MEM", "IORESOURCE_TYPE_BITS", "IORESOURCE_PREFETCH",
    "IORESOURCE_READONLY", "IORESOURCE_MEM_64", "IORESOURCE_WINDOW", "IORESOURCE_SYSRAM",
    "IORESOURCE_EXT_TYPE_BITS", "IORESOURCE_BUSY", "IORESOURCE_SYSTEM_RAM",
    "IORES_DESC_NONE", "IORES_DESC_CRASH_KERNEL", "IORES_DESC_ACPI_TABLES",
    "IORES_DESC_ACPI_NV_STORAGE", "IORES_DESC_PERSISTENT_MEMORY",
    "IORES_DESC_PERSISTENT_MEMORY_LEGACY", "IORES_DESC_DEVICE_PRIVATE_MEMORY",
    "IORES_DESC_RESERVED", "IORES_DESC_SOFT_RESERVED",
    "REGION_INTERSECTS", "REGION_DISJOINT", "REGION_MIXED", "MAX_IORES_LEVEL", "RESOURCE_MAX",
    "KERNEL_IMAGE", "KERNEL_RESERVED", "Resource", "ResourceTree", "resource_type", "resource_ext_type",
]


#: Largest ``resource_size_t`` (the root's inclusive end).
RESOURCE_MAX = U64

# include/linux/ioport.h: resource flags (the subset the simulation uses)
IORESOURCE_TYPE_BITS = 0x00001F00
IORESOURCE_IO = 0x00000100
IORESOURCE_MEM = 0x00000200
IORESOURCE_PREFETCH = 0x00002000
IORESOURCE_READONLY = 0x00004000
IORESOURCE_MEM_64 = 0x00100000
IORESOURCE_WINDOW = 0x00200000
IORESOURCE_EXT_TYPE_BITS = 0x01000000
IORESOURCE_SYSRAM = 0x01000000
IORESOURCE_BUSY = 0x80000000
IORESOURCE_SYSTEM_RAM = IORESOURCE_MEM | IORESOURCE_SYSRAM

# include/linux/ioport.h: I/O resource descriptors
IORES_DESC_NONE = 0
IORES_DESC_CRASH_KERNEL = 1
IORES_DESC_ACPI_TABLES = 2
IORES_DESC_ACPI_NV_STORAGE = 3
IORES_DESC_PERSISTENT_MEMORY = 4
IORES_DESC_PERSISTENT_MEMORY_LEGACY = 5
IORES_DESC_DEVICE_PRIVATE_MEMORY = 6
IORES_DESC_RESERVED = 7
IORES_DESC_SOFT_RESERVED = 8  # v5.5

# include/linux/mm.h: region_intersects() results
REGION_INTERSECTS = 0
REGION_DISJOINT = 1
REGION_MIXED = 2

#: r_show() indents at most this many levels.
MAX_IORES_LEVEL = 5

_REGION_NAMES = {REGION_INTERSECTS: "REGION_INTERSECTS", REGION_DISJOINT: "REGION_DISJOINT",
                 REGION_MIXED: "REGION_MIXED"}

#: The kernel image resources x86 ``setup_arch`` registers under System RAM.
KERNEL_IMAGE = ("Kernel code", "Kernel rodata", "Kernel data", "Kernel bss")
#: Resources whose pages are reserved for the kernel (the image and the crash kernel).
KERNEL_RESERVED = KERNEL_IMAGE + ("Crash kernel",)
#: the attributes :class:`Resource` itself sets (``ResourceTree.copy`` clones these directly)
_RESOURCE_FIELDS = frozenset(("start", "end", "name", "flags", "desc", "parent", "children"))


# ---------------------------------------------------------------------------------------------
# argument checking


def _u64(value, what: str) -> int:
    """An int in [0, 2**64 - 1]: TypeError for non-integers, ValueError when out of range."""
    if type(value) is int and 0 <= value <= RESOURCE_MAX:
        return value
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{what} must be an int, not {type(value).__name__}") from None
    if v < 0:
        raise ValueError(f"{what} must not be negative: {v}")
    if v > RESOURCE_MAX:
        raise ValueError(f"{what} {v:#x} is beyond the 64-bit physical address space")
    return v


def _range(start, size, what: str = "range") -> tuple[int, int]:
    """(start, inclusive end) of a ``start, size`` pair; size must be >= 1 and fit in 64 bits."""
    start = _u64(start, "start")
    size = _u64(size, "size")
    if size == 0:
        raise ValueError(f"{what} at {start:#x} has size 0")
    if start + size - 1 > RESOURCE_MAX:
        raise ValueError(f"{what} {start:#x} + size {size:#x} runs past the 64-bit address space")
    return start, start + size - 1


def _mem(start: int, end: int) -> str:
    """The kernel's ``%pR`` rendering of a memory range (without flags)."""
    return f"[mem {start:#010x}-{end:#010x}]"


# ---------------------------------------------------------------------------------------------
# struct resource


class Resource:
    """One ``struct resource``: ``[start, end]`` inclusive, ``name``, ``flags``, ``desc``.

    ``parent`` is ``None`` while the resource is not in a tree; ``children`` are sorted by
    start.  Identity is object identity (two distinct resources with equal fields are still
    two resources); compare trees with ``ResourceTree.__eq__`` or ``snapshot()``.
    """

    def __init__(self, start: int, end: int, name: str, flags: int = IORESOURCE_MEM,
                 desc: int = IORES_DESC_NONE):
        start = _u64(start, "start")
        end = _u64(end, "end")
        if end < start:
            raise ValueError(f"resource {name!r}: end {end:#x} is below start {start:#x}")
        if not isinstance(name, str):
            raise TypeError(f"resource name must be a str, not {type(name).__name__}")
        if "\n" in name:
            raise ValueError(f"resource name must be one line: {name!r}")
        self.start = start
        self.end = end
        self.name = name
        self.flags = _u64(flags, "flags")
        self.desc = _u64(desc, "desc")
        self.parent: Optional[Resource] = None
        self.children: list[Resource] = []

    @property
    def size(self) -> int:
        """``resource_size()``: ``end - start + 1``."""
        return self.end - self.start + 1

    @property
    def busy(self) -> bool:
        return bool(self.flags & IORESOURCE_BUSY)

    @property
    def depth(self) -> int:
        """Levels below the top of its tree: 0 for a top-level resource (a child of the root),
        -1 for the root itself or a resource that is in no tree."""
        d, p = -1, self.parent
        while p is not None:
            d, p = d + 1, p.parent
        return d

    def contains(self, start: int, end: int) -> bool:
        """``resource_contains``: ``[start, end]`` (inclusive) lies inside this resource."""
        return self.start <= start and end <= self.end

    def overlaps(self, start: int, end: int) -> bool:
        """``resource_overlaps``: ``[start, end]`` (inclusive) shares a byte with it."""
        return self.start <= end and start <= self.end

    def pr(self) -> str:
        """``%pR``-style ``[mem 0x...-0x...]``."""
        return _mem(self.start, self.end)

    def __repr__(self) -> str:
        return (f"Resource({self.pr()} {self.name!r} flags={self.flags:#x} desc={self.desc}"
                f"{', %d children' % len(self.children) if self.children else ''})")


def _resource(start: int, end: int, name: str, flags: int, desc: int) -> Resource:
    """``Resource(start, end, name, flags, desc)`` for a caller that has checked what
    ``Resource.__init__`` checks (ints in [0, 2**64), ``start <= end``, a one-line str name):
    the same object, built without the checks (a parser makes thousands of them)."""
    res = _new_object(Resource)
    res.start = start
    res.end = end
    res.name = name
    res.flags = flags
    res.desc = desc
    res.parent = None
    res.children = []
    return res


_new_object = object.__new__


def _request_resource(root: Resource, new: Resource) -> Optional[Resource]:
    """``__request_resource``: link ``new`` under ``root`` or return the conflict
    (``root`` itself when ``new`` does not fit inside it)."""
    start, end = new.start, new.end
    if end < start or start < root.start or end > root.end:
        return root
    kids = root.children
    lo = _first_ending_at_or_after(kids, start)  # where the kernel's linear walk stops
    if lo < len(kids) and kids[lo].start <= end:
        return kids[lo]
    kids.insert(lo, new)
    new.parent = root
    return None


def _first_ending_at_or_after(kids: list, addr: int) -> int:
    """Index of the first of the sorted, disjoint siblings ``kids`` whose end is >= ``addr``.

    Their ends ascend with their starts, so a binary search finds the sibling that the
    kernel's linear walks stop at: inserting N siblings or walking a range among them costs
    O(log N) per step instead of O(N).
    """
    lo, hi = 0, len(kids)
    if not hi or kids[-1].end < addr:
        return hi       # after every sibling (e.g. a layout read in address order)
    while lo < hi:
        mid = (lo + hi) // 2
        if kids[mid].end < addr:
            lo = mid + 1
        else:
            hi = mid
    return lo


def resource_type(res: Resource) -> int:
    return res.flags & IORESOURCE_TYPE_BITS


def resource_ext_type(res: Resource) -> int:
    return res.flags & IORESOURCE_EXT_TYPE_BITS


class _NotPlain(Exception):
    """A resource with attributes of its own: ``ResourceTree.copy`` takes the general path."""


# ---------------------------------------------------------------------------------------------
# the tree


def _intersect_result(type_: int, other: int) -> int:
    """``region_intersects``'s answer from its counts of matching and other top-level resources."""
    if other == 0:
        return REGION_INTERSECTS if type_ else REGION_DISJOINT
    return REGION_MIXED if type_ else REGION_DISJOINT


class ResourceTree:
    """``iomem_resource`` and the ``kernel/resource.c`` operations on it.

    ``dmesg``: a list to which the kernel's log lines on these paths are appended (pass the
    owning machine's list to share it); a new list when omitted.
    """

    def __init__(self, dmesg: Optional[list] = None):
        # kernel/resource.c: iomem_resource = { "PCI mem", 0, -1, IORESOURCE_MEM }
        self.root = Resource(0, RESOURCE_MAX, "PCI mem", IORESOURCE_MEM)
        self.dmesg: list = [] if dmesg is None else dmesg

    # -- inspection ------------------------------------------------------------------------

    @property
    def iomem_resource(self) -> Resource:
        return self.root

    def walk(self, parent: Optional[Resource] = None) -> Iterator[tuple[int, Resource]]:
        """Depth-first ``(depth, resource)`` in ``/proc/iomem`` order; depth 0 is top level."""
        stack = [(0, c) for c in reversed((parent or self.root).children)]
        while stack:
            depth, res = stack.pop()
            yield depth, res
            if res.children:
                stack.extend([(depth + 1, c) for c in reversed(res.children)])

    def top_level_overlapping(self, start: int, end: int) -> Iterator[Resource]:
        """The top-level resources overlapping ``[start, end]`` (inclusive), in address order."""
        kids = self.root.children
        for i in range(_first_ending_at_or_after(kids, start), len(kids)):
            if kids[i].start > end:
                return
            yield kids[i]

    def __iter__(self) -> Iterator[Resource]:
        return (res for _, res in self.walk())

    def __len__(self) -> int:
        return sum(1 for _ in self.walk())

    def top_level(self) -> list[Resource]:
        """The root's children (the unindented ``/proc/iomem`` lines), in address order."""
        return list(self.root.children)

    def find(self, start: int, end: int, name: Optional[str] = None) -> Optional[Resource]:
        """The first resource (depth-first) with exactly ``[start, end]`` (inclusive) and,
        when given, ``name``; ``None`` if there is none."""
        for res in self:
            if res.start == start and res.end == end and (name is None or res.name == name):
                return res
        return None

    def lookup_resource(self, start: int) -> Optional[Resource]:
        """``lookup_resource(&iomem_resource, start)``: the top-level resource starting there."""
        for res in self.root.children:
            if res.start == start:
                return res
        return None

    def snapshot(self) -> tuple[tuple[int, int, int, str], ...]:
        """``(depth, start, end, name)`` of every resource, in ``/proc/iomem`` order."""
        return tuple((d, r.start, r.end, r.name) for d, r in self.walk())

    def state(self) -> tuple[tuple[int, int, int, str, int, int], ...]:
        """``(depth, start, end, name, flags, desc)`` of every resource, in ``/proc/iomem``
        order: everything that tree equality compares."""
        return tuple((d, r.start, r.end, r.name, r.flags, r.desc) for d, r in self.walk())

    def __eq__(self, other):
        if not isinstance(other, ResourceTree):
            return NotImplemented
        return self.state() == other.state()

    __hash__ = None  # type: ignore[assignment]  # mutable: unhashable, as typeshed writes it for list

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {len(self.root.children)} top-level, {len(self)} resources>"

    def copy(self) -> "ResourceTree":
        """A deep copy (``copy.deepcopy``) of the tree and of everything it holds.  The
        resources are cloned directly (their own fields are ints and strs, shared as
        deepcopy shares them) and entered in the deepcopy memo, so that the generic
        deepcopy of the rest (``dmesg``, a :class:`~sparsemem.layout.ParsedLayout`'s
        attributes, any attribute another layer set on a resource) links to the clones."""
        fast = self._copy_plain()
        if fast is not None:
            return fast
        memo: dict = {}

        def clone(res: Resource, parent: Optional[Resource]) -> Resource:
            new = object.__new__(type(res))
            memo[id(res)] = new
            fields = new.__dict__
            fields.update(res.__dict__)
            fields["parent"] = parent
            kids = res.children
            fields["children"] = memo[id(kids)] = [clone(c, new) for c in kids]
            if len(fields) > len(_RESOURCE_FIELDS):
                for k in fields.keys() - _RESOURCE_FIELDS:
                    fields[k] = copy.deepcopy(res.__dict__[k], memo)
            return new

        new = object.__new__(type(self))    # copy.copy of a plain object, without __reduce_ex__
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["root"] = clone(self.root, None)
        for k, v in self.__dict__.items():
            if k != "root" and v is not None and type(v) not in (str, int, bool):
                fields[k] = copy.deepcopy(v, memo)
        return new

    def _copy_plain(self) -> Optional["ResourceTree"]:
        """:meth:`copy` of a tree whose resources have only their own fields and whose other
        attributes are None, str, int, bool or lists of str (e.g. ``dmesg``): nothing the
        deepcopy memo would have to link, so the clones are made directly.  None when the
        tree is not such a tree (then :meth:`copy` takes the general path)."""
        extra = {}
        for k, v in self.__dict__.items():
            if k == "root" or v is None or type(v) in (str, int, bool):
                continue
            if type(v) is list and all(type(x) is str for x in v):
                extra[k] = list(v)
            elif type(v) in (list, dict) and not v:
                extra[k] = type(v)()
            else:
                return None
        nfields = len(_RESOURCE_FIELDS)

        def clone(res: Resource, parent: Optional[Resource]) -> Resource:
            fields = res.__dict__
            if len(fields) != nfields:
                raise _NotPlain
            new = _new_object(type(res))
            nf = fields.copy()          # the same keys in the same order, then two replaced
            nf["parent"] = parent
            kids = fields["children"]
            nf["children"] = [clone(c, new) for c in kids] if kids else []
            new.__dict__ = nf
            return new

        try:
            root = clone(self.root, None)
        except _NotPlain:
            return None
        new = _new_object(type(self))
        fields = new.__dict__
        fields.update(self.__dict__)
        fields["root"] = root
        fields.update(extra)
        return new

    def text(self, privileged: bool = True) -> str:
        """The tree as ``/proc/iomem`` shows it (``r_show``); ``privileged=False`` gives what
        a reader without CAP_SYS_ADMIN sees (every address zero)."""
        fmt = "%s%08x-%08x : %s\n" if self.root.end >= 0x10000 else "%s%04x-%04x : %s\n"
        out: list[str] = []
        line = out.append

        def show(kids: list, depth: int) -> None:     # depth-first, as walk()
            indent = "  " * min(depth, MAX_IORES_LEVEL)
            for res in kids:
                line(fmt % (indent, res.start, res.end, res.name) if privileged else fmt % (indent, 0, 0, res.name))
                if res.children:
                    show(res.children, depth + 1)

        show(self.root.children, 0)
        return "".join(out)

    __str__ = text

    def check_invariants(self) -> None:
        """Assert the tree shape (children sorted, disjoint, inside parents, parent links)."""
        stack = [self.root]
        while stack:
            p = stack.pop()
            prev = None
            for c in p.children:
                assert c.parent is p, f"{c!r} has parent {c.parent!r}, expected {p!r}"
                assert p.contains(c.start, c.end), f"{c!r} is not inside {p!r}"
                assert prev is None or prev.end < c.start, f"{prev!r} and {c!r} overlap or are unsorted"
                prev = c
                stack.append(c)

    # -- helpers -----------------------------------------------------------------------------

    def _parent_arg(self, parent: Optional[Resource]) -> Resource:
        if parent is None:
            return self.root
        if not isinstance(parent, Resource):
            raise TypeError(f"parent must be a Resource, not {type(parent).__name__}")
        p = parent
        while p.parent is not None:
            p = p.parent
        if p is not self.root:
            raise ValueError(f"parent {parent!r} is not in this resource tree")
        return parent

    def _attached(self, res: Resource) -> bool:
        p = res
        while p.parent is not None:
            p = p.parent
        return p is self.root and res is not self.root

    @staticmethod
    def _index(parent: Resource, res: Resource) -> int:
        for i, c in enumerate(parent.children):
            if c is res:
                return i
        return -1

    def _insert_resource(self, parent: Resource, new: Resource) -> Optional[Resource]:
        """``__insert_resource``: as ``__request_resource``, but a run of siblings that
        ``new`` fully contains become ``new``'s children; returns the conflict or None."""
        while True:
            first = _request_resource(parent, new)
            if first is None or first is parent or first is new:
                return first
            if first.start > new.start or first.end < new.end:
                break
            if first.start == new.start and first.end == new.end:
                break
            parent = first  # new fits inside first: go one level down
        i = j = self._index(parent, first)
        siblings = parent.children
        while True:
            nxt = siblings[j]
            if nxt.start < new.start or nxt.end > new.end:
                return nxt  # partial overlap: bad, and unfixable
            if j + 1 == len(siblings) or siblings[j + 1].start > new.end:
                break
            j += 1
        swallowed = siblings[i : j + 1]
        siblings[i : j + 1] = [new]
        new.parent = parent
        new.children = swallowed
        for c in swallowed:
            c.parent = new
        return None

    @staticmethod
    def _collision(new: Resource, conflict: Resource, parent: Resource, verb: str) -> KernelError:
        if conflict is parent:
            msg = (f"{verb}: {new.name} {new.pr()} does not fit in "
                   f"{parent.name} {parent.pr()}")
        else:
            msg = (f"{verb}: resource collision: {new.name} {new.pr()} conflicts with "
                   f"{conflict.name} {conflict.pr()}")
        return KernelError(errno.EBUSY, msg)

    def _new_detached(self, res: Resource) -> Resource:
        if not isinstance(res, Resource):
            raise TypeError(f"expected a Resource, not {type(res).__name__}")
        if res.parent is not None or res is self.root:
            raise ValueError(f"{res!r} is already in a resource tree")
        if res.children:
            raise ValueError(f"{res!r} still has children; request a fresh resource")
        return res

    # -- requesting ---------------------------------------------------------------------------

    def request_resource(self, res: Resource, parent: Optional[Resource] = None) -> Resource:
        """``request_resource(parent, res)``: link ``res`` (flags and desc as given) under
        ``parent`` (default the root).  It must fit inside ``parent`` and overlap none of
        ``parent``'s children, else ``KernelError(EBUSY)`` naming both ranges."""
        parent = self._parent_arg(parent)
        res = self._new_detached(res)
        conflict = _request_resource(parent, res)
        if conflict is not None:
            raise self._collision(res, conflict, parent, "request_resource")
        return res

    def request(self, start: int, size: int, name: str, flags: int = 0, *,
                desc: Optional[int] = None, parent: Optional[Resource] = None) -> Resource:
        """``__request_region(parent, start, size, name, flags)``; returns the new busy resource.

        The range must fit inside ``parent`` (default: the root, i.e. ``request_mem_region``)
        and must not overlap a sibling, except that when it lies inside a sibling that is not
        busy the request descends into that sibling (repeatedly).  Flags become
        ``resource_type(parent) | resource_ext_type(parent) | IORESOURCE_BUSY | flags`` and
        desc the final parent's desc (``desc=`` overrides it afterwards, as callers such as
        ``devm_request_free_mem_region`` do).  A conflict with a busy resource or a range
        crossing a boundary raises ``KernelError(EBUSY)`` and leaves the tree unchanged.
        ``request(start, 0, ...)``: the kernel's empty range never fits, so ``EBUSY`` too.
        """
        parent = self._parent_arg(parent)
        start = _u64(start, "start")
        size = _u64(size, "size")
        flags = _u64(flags, "flags")
        if not isinstance(name, str):
            raise TypeError(f"resource name must be a str, not {type(name).__name__}")
        if size == 0:
            raise KernelError(errno.EBUSY, f"request_region: {name} at {start:#x} has size 0")
        if start + size - 1 > RESOURCE_MAX:
            raise ValueError(f"{name}: start {start:#x} + size {size:#x} runs past the 64-bit address space")
        res = Resource(start, start + size - 1, name)
        while True:
            res.flags = resource_type(parent) | resource_ext_type(parent) | IORESOURCE_BUSY | flags
            res.desc = parent.desc
            conflict = _request_resource(parent, res)
            if conflict is None:
                break
            if conflict is not parent and not conflict.flags & IORESOURCE_BUSY:
                parent = conflict
                continue
            raise self._collision(res, conflict, parent, "request_region")
        if desc is not None:
            res.desc = _u64(desc, "desc")
        return res

    request_region = request

    def request_mem_region(self, start: int, size: int, name: str) -> Resource:
        """``request_mem_region(start, size, name)`` = ``request(start, size, name)``."""
        return self.request(start, size, name)

    def insert_resource(self, res: Resource, parent: Optional[Resource] = None) -> Resource:
        """``insert_resource(parent, res)``: like :meth:`request_resource`, but existing
        resources that ``res`` fully contains become its children (it may also go below a
        resource that contains it, at any depth).  A partial overlap raises
        ``KernelError(EBUSY)`` naming both ranges; the tree is then unchanged."""
        parent = self._parent_arg(parent)
        res = self._new_detached(res)
        conflict = self._insert_resource(parent, res)
        if conflict is not None:
            res.parent = None
            raise self._collision(res, conflict, parent, "insert_resource")
        return res

    def insert(self, start: int, size: int, name: str, flags: int = IORESOURCE_MEM,
               desc: int = IORES_DESC_NONE, parent: Optional[Resource] = None) -> Resource:
        """:meth:`insert_resource` of a new ``Resource(start, start + size - 1, name, flags,
        desc)`` (flags and desc are taken as given)."""
        s, e = _range(start, size, repr(name))
        return self.insert_resource(Resource(s, e, name, flags, desc), parent)

    def insert_resource_expand_to_fit(self, res: Resource) -> Resource:
        """``insert_resource_expand_to_fit(&iomem_resource, res)``: grow ``res`` to cover every
        resource it partially overlaps, then insert it (logs "Expanded resource ...")."""
        res = self._new_detached(res)
        while True:
            conflict = self._insert_resource(self.root, res)
            if conflict is None or conflict is self.root:
                return res
            res.start = min(res.start, conflict.start)
            res.end = max(res.end, conflict.end)
            self.dmesg.append(f"Expanded resource {res.name} due to conflict with {conflict.name}")

    # -- releasing ------------------------------------------------------------------------------

    def release(self, res: Resource) -> None:
        """``release_resource(res)``: unlink ``res``; its descendants leave the tree with it
        (they stay attached to ``res``).  ``KernelError(EINVAL)`` if ``res`` is not in the tree."""
        self._release_resource(res, release_child=True, who="release_resource")

    release_resource = release

    def remove_resource(self, res: Resource) -> None:
        """``remove_resource(res)``: unlink ``res`` and move its children up into its place."""
        self._release_resource(res, release_child=False, who="remove_resource")

    def _release_resource(self, res: Resource, release_child: bool, who: str) -> None:
        if not isinstance(res, Resource):
            raise TypeError(f"expected a Resource, not {type(res).__name__}")
        parent = res.parent
        i = self._index(parent, res) if parent is not None and self._attached(res) else -1
        if i < 0 or parent is None:
            raise KernelError(errno.EINVAL, f"{who}: {res.name} {res.pr()} is not in the resource tree")
        if release_child or not res.children:
            del parent.children[i]
        else:
            for c in res.children:
                c.parent = parent
            parent.children[i : i + 1] = res.children
            res.children = []
        res.parent = None

    def release_region(self, start: int, size: int, parent: Optional[Resource] = None) -> None:
        """``__release_region(parent, start, size)`` (``release_mem_region``): remove the busy
        resource with exactly that range, looking inside non-busy resources that contain it.
        When there is none the kernel only warns: "Trying to free nonexistent resource"."""
        parent = self._parent_arg(parent)
        start, end = _range(start, size)
        p: Optional[Resource] = parent
        while p is not None:
            for i, res in enumerate(p.children):
                if res.start <= start and res.end >= end:
                    if not res.flags & IORESOURCE_BUSY:
                        p = res
                        break
                    if res.start == start and res.end == end:
                        del p.children[i]
                        res.parent = None
                        return
                    p = None
                    break
            else:
                p = None
        self.dmesg.append(f"Trying to free nonexistent resource <{start:016x}-{end:016x}>")

    def adjust_resource(self, res: Resource, start: int, size: int) -> None:
        """``adjust_resource(res, start, size)``: move/resize ``res`` in place; it must stay
        inside its parent, clear of its siblings and around its children, else ``EBUSY``."""
        start, end = _range(start, size)
        if not self._adjust_resource(res, start, end):
            raise KernelError(errno.EBUSY, f"adjust_resource: {res.name} {res.pr()} cannot become {_mem(start, end)}")

    def _adjust_resource(self, res: Resource, start: int, end: int) -> bool:
        parent = res.parent
        if parent is not None:
            if start < parent.start or end > parent.end:
                return False
            i = self._index(parent, res)
            if i + 1 < len(parent.children) and parent.children[i + 1].start <= end:
                return False
            if i > 0 and start <= parent.children[i - 1].end:
                return False
        for c in res.children:
            if c.start < start or c.end > end:
                return False
        res.start, res.end = start, end
        return True

    def release_mem_region_adjustable(self, start: int, size: int,
                                      parent: Optional[Resource] = None) -> None:
        """``release_mem_region_adjustable(parent, start, size)`` (v5.3 ``remove_memory``):
        release ``[start, start+size)`` from the busy System RAM resource that contains it,
        freeing it when the range matches exactly, trimming its head or tail, or splitting it
        in two (children stay with the lower part).  A containing resource without
        ``IORESOURCE_SYSRAM`` (devm/HMM managed) is left alone and counts as success.
        Errors (``KernelError``): ``EINVAL`` when no resource contains the range or the range
        lies outside ``parent``; ``EBUSY`` when children would be cut."""
        parent = self._parent_arg(parent)
        start, end = _range(start, size)
        where = f"release_mem_region_adjustable {_mem(start, end)}"
        if start < parent.start or end > parent.end:
            raise KernelError(errno.EINVAL, f"{where}: outside {parent.name} {parent.pr()}")
        p = parent
        while True:
            for i, res in enumerate(p.children):
                if res.start >= end:
                    raise KernelError(errno.EINVAL, f"{where}: no System RAM resource contains it")
                if res.start > start or res.end < end:
                    continue
                if not res.flags & IORESOURCE_SYSRAM:
                    return  # HMM/devm resources are released by their owners
                if not res.flags & IORESOURCE_MEM:
                    raise KernelError(errno.EINVAL, f"{where}: {res.name} {res.pr()} is not memory")
                if not res.flags & IORESOURCE_BUSY:
                    p = res
                    break
                if res.start == start and res.end == end:
                    del p.children[i]
                    res.parent = None
                    return
                if res.start == start:
                    ok = self._adjust_resource(res, end + 1, res.end)
                elif res.end == end:
                    ok = self._adjust_resource(res, res.start, start - 1)
                else:
                    tail = Resource(end + 1, res.end, res.name, res.flags, res.desc)
                    ok = self._adjust_resource(res, res.start, start - 1)
                    if ok:
                        p.children.insert(i + 1, tail)
                        tail.parent = p
                if not ok:
                    raise KernelError(errno.EBUSY, f"{where}: children of {res.name} {res.pr()} are in the way")
                return
            else:
                raise KernelError(errno.EINVAL, f"{where}: no System RAM resource contains it")

    # -- queries --------------------------------------------------------------------------------

    def region_intersects(self, start: int, size: int, flags: int, desc: int = IORES_DESC_NONE) -> int:
        """``region_intersects(start, size, flags, desc)`` over the **top-level** resources.

        A top-level resource overlapping ``[start, start+size)`` is of the type when it has all
        of ``flags`` and (unless ``desc`` is ``IORES_DESC_NONE``) that desc, else "other".
        Only others or nothing: ``REGION_DISJOINT``; only the type (holes do not count):
        ``REGION_INTERSECTS``; both: ``REGION_MIXED``.
        """
        s, e = _range(start, size)
        flags = _u64(flags, "flags")
        desc = _u64(desc, "desc")
        type_, other = 0, 0
        for p in self.top_level_overlapping(s, e):
            if (p.flags & flags) == flags and (desc == IORES_DESC_NONE or desc == p.desc):
                type_ += 1
            else:
                other += 1
        return _intersect_result(type_, other)

    def region_intersects_ram(self, start: int, size: int) -> int:
        """``region_intersects(start, size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)``."""
        if (type(start) is int and type(size) is int and start >= 0 and 0 < size <= RESOURCE_MAX
                and start + size - 1 <= RESOURCE_MAX):
            # what region_intersects does for these arguments, without checking them again
            end = start + size - 1
            kids = self.root.children
            type_ = other = 0
            for i in range(_first_ending_at_or_after(kids, start), len(kids)):
                p = kids[i]
                if p.start > end:
                    break
                if (p.flags & IORESOURCE_SYSTEM_RAM) == IORESOURCE_SYSTEM_RAM:
                    type_ += 1
                else:
                    other += 1
            return _intersect_result(type_, other)
        return self.region_intersects(start, size, IORESOURCE_SYSTEM_RAM, IORES_DESC_NONE)

    @staticmethod
    def region_name(result: int) -> str:
        """``REGION_MIXED`` -> ``"REGION_MIXED"``."""
        return _REGION_NAMES[result]

    def _find_next_iomem_res(self, start: int, end: int, flags: int, desc: int,
                             first_lvl: bool) -> Optional[tuple[int, int]]:
        """``find_next_iomem_res``: the part within ``[start, end]`` of the lowest matching
        resource (depth-first over the whole tree unless ``first_lvl``)."""
        if start >= end:
            return None
        # resources wholly below ``start`` (and so their children) can never match: start the
        # depth-first walk at the first top-level resource that reaches ``start``
        tops = self.top_level_overlapping(start, RESOURCE_MAX)
        it = tops if first_lvl else (r for top in tops for r in (top, *(c for _, c in self.walk(top))))
        for p in it:
            if (p.flags & flags) != flags:
                continue
            if desc != IORES_DESC_NONE and desc != p.desc:
                continue
            if p.start > end:
                return None
            if p.end >= start and p.start <= end:
                return max(start, p.start), min(end, p.end)
        return None

    def _walk_res(self, start, end, flags, desc, first_lvl) -> list[tuple[int, int]]:
        start = _u64(start, "start")
        end = _u64(end, "end")
        out = []
        while start < end:
            r = self._find_next_iomem_res(start, end, flags, desc, first_lvl)
            if r is None:
                break
            out.append(r)
            if r[1] == RESOURCE_MAX:
                break
            start = r[1] + 1
        return out

    def walk_iomem_res_desc(self, desc: int, flags: int, start: int, end: int) -> list[tuple[int, int]]:
        """``walk_iomem_res_desc``: the ``(start, end)`` parts (inclusive) of ``[start, end]``
        covered by resources with all of ``flags`` and ``desc`` (any desc when NONE), at any
        depth, in address order."""
        return self._walk_res(start, end, _u64(flags, "flags"), _u64(desc, "desc"), False)

    def walk_system_ram_res(self, start: int, end: int) -> list[tuple[int, int]]:
        """``walk_system_ram_res``: parts of ``[start, end]`` (inclusive) covered by
        top-level busy System RAM."""
        return self._walk_res(start, end, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_NONE, True)

    def walk_system_ram_range(self, start_pfn: int, nr_pages: int) -> list[tuple[int, int]]:
        """``walk_system_ram_range(start_pfn, nr_pages)``: the ``(pfn, nr_pages)`` pieces of
        the pfn range covered by busy System RAM resources **at any depth** (as the kernel
        walks the whole tree), each trimmed to whole pages (``PFN_UP(start)`` ..
        ``PFN_DOWN(end + 1)``); pieces smaller than a page are dropped.  ``nr_pages == 0``
        gives ``[]``."""
        start_pfn = _u64(start_pfn, "start_pfn")
        nr_pages = _u64(nr_pages, "nr_pages")
        if nr_pages == 0:
            return []
        if (start_pfn + nr_pages) << PAGE_SHIFT > RESOURCE_MAX + 1:
            raise ValueError(f"pfn range {start_pfn:#x} + {nr_pages:#x} runs past the 64-bit address space")
        start = start_pfn << PAGE_SHIFT
        end = ((start_pfn + nr_pages) << PAGE_SHIFT) - 1
        out = []
        for rs, re_ in self._walk_res(start, end, IORESOURCE_SYSTEM_RAM | IORESOURCE_BUSY, IORES_DESC_NONE, False):
            pfn = (rs + PAGE_SIZE - 1) >> PAGE_SHIFT
            end_pfn = (re_ + 1) >> PAGE_SHIFT
            if end_pfn > pfn:
                out.append((pfn, end_pfn - pfn))
        return out

    def page_is_ram(self, pfn: int) -> bool:
        """``page_is_ram(pfn)``: the page lies in busy System RAM (any depth)."""
        return bool(self.walk_system_ram_range(pfn, 1))
