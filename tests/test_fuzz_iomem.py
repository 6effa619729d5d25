"""Fuzzing the /proc/iomem and e820 parsers and ``Machine.from_iomem`` (issue #6).

Inputs are the real layouts of tests/data/layouts, mutated: lines deleted, duplicated or
swapped, hex digits flipped, indentation changed, random text spliced in.  ``parse`` may only
return a tree or raise ``ValueError`` whose message names the line (``line N:``; the one
documented exception is the "read without root privileges" message, which is about the whole
text).  ``Machine.from_iomem`` on whatever parses may only succeed or raise ValueError /
KernelError."""

from __future__ import annotations

import pickle
import re

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from helpers import all_layouts
from sparsemem import KernelError, Machine
from sparsemem.iomem import MAX_PARSE_DEPTH, MAX_PARSE_LINES, UNPRIVILEGED_MESSAGE, parse

LAYOUTS = all_layouts()
TEXTS = [p.read_text(encoding="utf-8", errors="replace") for p in LAYOUTS]

LINE_RE = re.compile(r"\bline (\d+)\b")


def check_parse(text: str):
    try:
        tree = parse(text)
    except ValueError as e:
        msg = str(e)
        if UNPRIVILEGED_MESSAGE not in msg:
            m = LINE_RE.search(msg)
            assert m, f"ValueError without a line number: {msg}"
            assert 1 <= int(m.group(1)) <= max(1, len(text.splitlines())), msg
        return None
    tree.check_invariants()
    return tree


def check_boot(text: str, kernel: str = "5.3"):
    try:
        m = Machine.from_iomem(text, kernel=kernel)
    except (ValueError, KernelError):
        return None
    # a booted machine answers queries and renders its tree
    m.iomem_text()
    if len(m.memory_blocks) <= 4096:      # snapshot() of a 64 TiB machine takes seconds
        m.snapshot()
    return m


def _mutate(text: str, ops, rnd_text: str) -> str:
    lines = text.splitlines()
    for op, i, j in ops:
        if not lines:
            lines = [rnd_text]
            continue
        i %= len(lines)
        if op == "delete":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "swap":
            j %= len(lines)
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "digit":
            s = lines[i]
            pos = [k for k, c in enumerate(s) if c in "0123456789abcdefABCDEF"]
            if pos:
                k = pos[j % len(pos)]
                lines[i] = s[:k] + "0123456789abcdef"[(int(s[k], 16) + 1 + j) % 16] + s[k + 1:]
        elif op == "indent":
            lines[i] = " " * (j % 12) + lines[i].lstrip()
        elif op == "tab":
            lines[i] = "\t" + lines[i]
        elif op == "text":
            lines.insert(i, rnd_text)
        elif op == "truncate":
            lines[i] = lines[i][: j % (len(lines[i]) + 1)]
    return "\n".join(lines) + "\n"


OPS = st.lists(st.tuples(st.sampled_from(["delete", "dup", "swap", "digit", "indent", "tab", "text", "truncate"]),
                         st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=6)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(idx=st.integers(0, 100), ops=OPS, rnd=st.text(max_size=40), boot=st.integers(0, 3))
def test_mutated_layouts(idx, ops, rnd, boot):
    text = _mutate(TEXTS[idx % len(TEXTS)], ops, rnd)
    tree = check_parse(text)
    if tree is not None and boot == 0:          # booting is the slow part: a quarter of the cases
        check_boot(text)


@pytest.mark.parametrize("path", LAYOUTS, ids=lambda p: p.name[:40])
def test_every_layout_with_every_line_deleted_parses_or_names_a_line(path):
    """Exhaustive single-line deletion (cheap: parsing only)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    for k in range(len(lines)):
        check_parse("\n".join(lines[:k] + lines[k + 1:]))


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=300))
@example(text="00000000-00000000 : x\n")                          # unprivileged form
@example(text="0-ffffffffffffffff : x\n 0-0 : y\n")
@example(text="1-0 : backwards\n")
@example(text="00000000000000000-1 : 17 digits of zero\n")        # leading zeros are not width
@example(text="BIOS-e820: [mem 0x0000000000000000-0xffffffffffffffff] usable\n")
@example(text="BIOS-e820: [mem 0x0000000000001000-0x0000000000000fff] usable\n")
@example(text="BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] type 4294967296\n")
def test_random_text(text):
    if check_parse(text) is not None:
        check_boot(text)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 2**64 + 5), st.integers(0, 2**64 + 5),
                                st.sampled_from(["System RAM", "Reserved", "Persistent Memory",
                                                 "Persistent Memory (legacy)", "Kernel code", "x"])),
                      max_size=12),
       kernel=st.sampled_from(["5.2", "5.3"]))
def test_random_well_formed_lines(lines, kernel):
    """Syntactically valid lines with random numbers and nesting: the tree rules decide."""
    text = "".join(f"{' ' * ind}{a:08x}-{b:08x} : {name}\n" for ind, a, b, name in lines)
    if check_parse(text) is not None:
        check_boot(text, kernel)


def test_nesting_limit_names_the_line():
    text = "".join(" " * i + f"{i:08x}-{0xffffffff - i:08x} : x\n" for i in range(MAX_PARSE_DEPTH + 5))
    with pytest.raises(ValueError, match=rf"line {MAX_PARSE_DEPTH + 1}: nested more than"):
        parse(text)
    ok = "".join(" " * i + f"{i:08x}-{0xffffffff - i:08x} : x\n" for i in range(MAX_PARSE_DEPTH))
    pickle.loads(pickle.dumps(parse(ok)))     # deep but accepted trees still pickle


def test_line_count_limit_fails_fast():
    n = MAX_PARSE_LINES + 10
    text = "".join(f"{i * 0x1000:08x}-{i * 0x1000 + 0xfff:08x} : Reserved\n" for i in range(n))
    with pytest.raises(ValueError, match=rf"line {MAX_PARSE_LINES + 1}: more than {MAX_PARSE_LINES}"):
        parse(text)


def test_many_siblings_parse_in_linear_time():
    """Sibling insertion is a binary search, not the kernel's linear walk (was O(N^2):
    32,000 lines took 13 s; bench/test_bench_iomem.py times it)."""
    text = "".join(f"{i * 0x1000:08x}-{i * 0x1000 + 0xfff:08x} : Reserved\n" for i in range(MAX_PARSE_LINES))
    tree = parse(text)
    assert len(tree.top_level()) == MAX_PARSE_LINES
