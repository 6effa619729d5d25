"""Parsing /proc/iomem text: the worst case the parser accepts (MAX_PARSE_LINES siblings), which
was quadratic before sibling insertion became a binary search.  Nothing here asserts a time."""

from __future__ import annotations

from sparsemem.iomem import MAX_PARSE_LINES, parse


def test_parse_max_siblings(benchmark):
    benchmark.group = "iomem-parse"
    text = "".join(f"{i * 0x1000:08x}-{i * 0x1000 + 0xfff:08x} : Reserved\n" for i in range(MAX_PARSE_LINES))
    tree = benchmark.pedantic(parse, args=(text,), rounds=3, iterations=1)
    benchmark.extra_info["lines"] = MAX_PARSE_LINES
    assert len(tree.top_level()) == MAX_PARSE_LINES
