"""The pfn -> pgmap index (MN §6.5: xa_store_range overwrites, xa_erase clears) against a dict."""

from hypothesis import given
from hypothesis import strategies as st

from sparsemem.memremap import _PgmapIndex

ops = st.lists(st.tuples(st.booleans(), st.integers(0, 60), st.integers(0, 12), st.integers(0, 5)), max_size=40)


@given(ops)
def test_index_matches_a_dict(steps):
    idx, model = _PgmapIndex(), {}
    tags = [object() for _ in range(6)]
    for store, lo, n, tag in steps:
        hi = lo + n
        if store:
            idx.store_range(lo, hi, tags[tag])
            model.update({p: tags[tag] for p in range(lo, hi + 1)})
        else:
            idx.erase_range(lo, hi)
            for p in range(lo, hi + 1):
                model.pop(p, None)
        assert all(idx.load(p) is model.get(p) for p in range(-1, 80))
        assert idx.starts == sorted(idx.starts) and idx.starts == [a for a, _, _ in idx.items]
        assert all(b < a2 for (_, b, _), (a2, _, _) in zip(idx.items, idx.items[1:]))
