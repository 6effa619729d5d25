"""Kernel upgrades and rollbacks with the same media: the upgrade matrix of
docs/spec/later-eras-nvdimm-evidence.md §5.2 (issue 11 item 2).

Each worked-example namespace (§1: N1, N2, N3, N5) is created under 5.2, 5.3, 5.4, 5.7, 6.1.5
and 6.8, then the machine is rebooted under every later row of the release table
(``row_releases()`` plus 6.1.5 inside the 6.1.0-6.1.11 line) -- and every earlier one, a
rollback below the creator -- and, from there, back under the creator.  Per cell the outcome
is named (:func:`outcome`) and compared with the one the test derives from the evidence
tables and the formulas of later-eras-nvdimm.md §11/§12 (the numbers are recomputed here, not
read from the package); the media (labels and every written page) is the same after every
reboot -- no release rewrites a valid block (evidence §3 #1) -- and the rollback comes up
exactly as the creator left it.
"""

from __future__ import annotations

import errno

import pytest
from test_cli import validate

import sparsemem.report as R
from helpers import GiB, KiB, MiB
from sparsemem import KernelError, Machine
from sparsemem.cli import main
from sparsemem.kernel import parse_version, row_releases
from sparsemem.report import REPORT_SCHEMA, build_report, load_layout, upgrade_layout

L1 = "100000000-203ffffff : System RAM\n204000000-2ffffffff : Persistent Memory\n"
L2 = "100000000-1ffffffff : System RAM\n200000000-2ffffffff : Persistent Memory\n"
L3 = "100000000-1ffffffff : System RAM\n200000000-240ffffff : Persistent Memory\n"
L5 = "100000000-2000fffff : System RAM\n200100000-2ffffffff : Persistent Memory\n"

CREATORS = ("5.2", "5.3", "5.4", "5.7", "6.1.5", "6.8")
#: every row of the table, and 6.1.5 (inside the 6.1.0-6.1.11 line)
RELEASES = tuple(sorted(set(row_releases()) | {"6.1.5"}, key=parse_version))


def v(release: str) -> tuple:
    return parse_version(release)


def later(creator: str) -> list[str]:
    return [r for r in RELEASES if v(r) > v(creator)]


def others(creator: str) -> list[str]:
    """Every later row (the upgrades) and every earlier one (the rollbacks below the creator)."""
    return [r for r in RELEASES if r != creator]


def aup(x: int, a: int) -> int:
    return -(-x // a) * a


def adn(x: int, a: int) -> int:
    return x // a * a


def psz(release: str) -> int:
    """MAX_STRUCT_PAGE_SIZE of the release that writes a block (R18, R20)."""
    return 128 if (6, 1, 0) <= v(release) < (6, 1, 12) else 64


# ------------------------------------------------------------------ the scenarios (§1)
def n1(m):
    return m.regions[0].create_namespace(size=GiB)


def n2(m):
    return m.regions[0].create_namespace(size=GiB, mode="devdax", map="mem")


def n3(m):
    return m.regions[0].create_namespace(mode="devdax", map="dev", align=GiB)


def n5(m):
    return m.regions[0].create_namespace(size=GiB)


SCENARIOS = {"N1": (L1, n1), "N2": (L2, n2), "N3": (L3, n3), "N5": (L5, n5)}


def usable_n1(creator: str) -> int:
    """N1 (fsdax map=dev, 1 GiB at 0x2_0400_0000): 5.2 pads 64 MiB (section 64 holds RAM) and
    reserves for whole sections; 5.3+ reserve P bytes per pfn (§11, MN §3.4)."""
    start = 0x2_0400_0000
    if creator == "5.2":
        sp = aup(start, 128 * MiB) - start
        npfns_r = aup((GiB - sp - 8 * KiB) // (4 * KiB), 32768)
        dataoff = aup(start + sp + 8 * KiB + 64 * npfns_r, 2 * MiB) - (start + sp)
        return GiB - sp - dataoff
    dataoff = aup(start + 8 * KiB + psz(creator) * ((GiB - 8 * KiB) // (4 * KiB)), 2 * MiB) - start
    return GiB - dataoff


def created(scenario: str, creator: str) -> bool:
    """Which releases can create the scenario at all (§5.2)."""
    if scenario == "N3":        # npfns 0: 5.2's legacy trim and 6.6's test refuse it (§2.1, R22)
        return (5, 3, 0) <= v(creator) < (6, 6, 0)
    if scenario == "N5":        # start 1 MiB past 2 MiB: only the padding of 5.2 works (R7)
        return creator == "5.2"
    return True


def expected(scenario: str, creator: str, booted: str) -> tuple:
    """The named outcome of booting the creator's media under ``booted`` (§5.2 tables)."""
    b = v(booted)
    if scenario == "N1":
        if creator != "5.2" and b < (5, 3, 0):
            # the section-expanded range [8 GiB, 9 GiB + 64 MiB) mixes with RAM (MN §6.1)
            return ("unbound", errno.ENXIO)
        return ("enabled", usable_n1(creator))
    if scenario == "N2":       # map=mem: dataoff = 2 MiB everywhere, nothing recorded matters
        return ("enabled", GiB - 2 * MiB)
    if scenario == "N3":
        if b >= (6, 6, 0):     # 13c "bad offset with small namespace" (R22)
            return ("unbound", errno.EOPNOTSUPP)
        return ("enabled-dax-unbound", 0)
    if scenario == "N5":       # the 5.2 block: 7 whole sections, 13a/13b/13c pass
        return ("enabled", GiB - 127 * MiB - MiB - 16 * MiB)
    raise AssertionError(scenario)


def outcome(m) -> tuple:
    """The named outcome of the one namespace of ``m``."""
    (ns,) = m.regions[0].namespaces
    if not ns.enabled:
        return ("unbound", ns.error[0])
    if ns.mode in ("fsdax", "devdax") and ns.dax_enabled is False:
        return ("enabled-dax-unbound", ns.size)
    if ns.error is not None:
        return ("raw-fallback", ns.size)
    return ("enabled", ns.size)


def media_of(m):
    return [r.media.snapshot() for r in m.regions]


def state_of(m):
    (ns,) = m.regions[0].namespaces
    return (ns.enabled, ns.mode, ns.map, ns.size, ns.start_pad, ns.end_trunc, ns.dataoff, ns.npfns, ns.error)


@pytest.mark.parametrize("creator", CREATORS)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_upgrade_matrix(scenario, creator):
    text, make = SCENARIOS[scenario]
    m = Machine.from_iomem(text, kernel=creator)
    if not created(scenario, creator):
        snap = m.snapshot()
        with pytest.raises(KernelError) as ei:
            make(m)
        assert m.snapshot() == snap and ei.value.errno == errno.ENXIO
        return
    make(m)
    assert outcome(m) == expected(scenario, creator, creator)
    media, state = media_of(m), state_of(m)
    for booted in others(creator):
        up = m.reboot(kernel=booted)
        assert outcome(up) == expected(scenario, creator, booted), booted
        assert media_of(up) == media, booted                 # nothing rewritten, nothing lost
        back = up.reboot(kernel=creator)
        assert state_of(back) == state and media_of(back) == media, booted


@pytest.mark.parametrize("booted", ["5.2", "5.3", "5.18", "6.1.5", "6.12"])
def test_n1_memmap_after_upgrade(booted):
    """§5.2 N1 row: the 5.3 block (1 GiB from 0x2_0400_0000, section 64 early) maps 7 whole
    sections from the altmap and section 72's 64 MiB in RAM base pages on every 5.3+ release,
    whatever the writer's page_struct_size; 5.2's section-expanded range mixes with RAM."""
    m = Machine.from_iomem(L1, kernel="5.3")
    n1(m)
    up = m.reboot(kernel=booted)
    (ns,) = up.regions[0].namespaces
    if booted == "5.2":
        assert not ns.enabled
        return
    pg = ns.pgmap
    assert pg.altmap.alloc == 7 * 512                              # 7 PMDs of 2 MiB from pmem
    assert pg.memmap_ram == 64 * MiB // (4 * KiB) * 64 + 4 * KiB   # base pages + one PTE table


def test_n2_rollback_memmap():
    """§5.2 N2 row up to 5.18 (map=mem: 8 RAM PMDs = 16 MiB), rolled back to 5.2: 16 MiB again.
    (5.19's compound-page dedup, 4 227 072 bytes, is the cores' step 9: not modelled here.)"""
    m = Machine.from_iomem(L2, kernel="5.2")
    n2(m)
    for booted in ("5.3", "5.18", "5.2"):
        (ns,) = m.reboot(kernel=booted).regions[0].namespaces
        assert ns.pgmap.memmap_ram == GiB // (128 * MiB) * 2 * MiB == 16 * MiB


# ------------------------------------------------------------------ report --upgrade (issue 11 item 5)
def _layout_file(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_report_upgrade_json(tmp_path):
    """``report --upgrade`` (docs/report.md "Upgrades"): N3's layout, the default namespace
    (fsdax, whole 1040 MiB region) made under 5.3, rebooted under 6.1.5 and 6.8, and back.
    The numbers are the formulas of later-eras-nvdimm.md §11 (P = 64, then 128 for 6.1.5's
    probe: nothing changes, the block was written by 5.3)."""
    path = _layout_file(tmp_path, "l3.txt", L3)
    rep = build_report([load_layout(str(path))], ["5.3", "6.1.5", "6.8"], upgrade=True)
    assert validate(rep, REPORT_SCHEMA) == []
    up = rep["layouts"][0]["upgrade"]
    assert (up["from"], up["to"]) == ("5.3", ["6.1.5", "6.8"])
    (row,) = up["namespaces"]
    size = 1040 * MiB
    dataoff = aup(0x2_0000_0000 + 8 * KiB + 64 * ((size - 8 * KiB) // (4 * KiB)), 2 * MiB) - 0x2_0000_0000
    whole = size // (128 * MiB)                      # sections 64-71 in the altmap, 72 partial in RAM
    tail = size - whole * 128 * MiB
    created = {"enabled": True, "usable": size - dataoff, "metadata": dataoff, "padding": 0,
               "memmap": {"pmem": whole * 2 * MiB, "ram": tail // (4 * KiB) * 64 + 4 * KiB}}
    assert (row["dev"], row["mode"], row["created"]) == ("namespace0.0", "fsdax", created)
    for b in row["booted"]:
        assert b["result"] == "ok" and b["rollback"] is True and b["errno"] is None
        assert {k: b[k] for k in created} == created


def test_report_upgrade_names_failures(tmp_path, monkeypatch):
    """A 5.3 N3 (devdax map=dev align 1 GiB) has npfns 0: 6.5 binds the nd_dax device without a
    dax device, 6.6 refuses the block (13c), and every rollback gives the 5.3 state."""
    lay = load_layout(str(_layout_file(tmp_path, "l3.txt", L3)))
    orig = R.populate

    def devdax_1g(machine, config, kernel, era=None, *, requests=None):
        return orig(machine, config, kernel, era, requests={0: dict(mode="devdax", map="dev", align=GiB)})

    monkeypatch.setattr(R, "populate", devdax_1g)
    up = upgrade_layout(lay, ["5.3", "6.5", "6.6", "6.9"])
    (row,) = up["namespaces"]
    results = [(b["kernel"], b["result"], b["errno"], b["message"], b["rollback"]) for b in row["booted"]]
    assert results == [
        ("6.5", "dax-unbound", None, None, True),
        ("6.6", "EOPNOTSUPP", errno.EOPNOTSUPP, "dax_pmem dax0.0: bad offset with small namespace", True),
        ("6.9", "EOPNOTSUPP", errno.EOPNOTSUPP, "dax_pmem dax0.0: bad offset with small namespace", True)]


def test_report_upgrade_cli(tmp_path, capsys):
    path = str(_layout_file(tmp_path, "l1.txt", L1))
    assert main(["report", path, "--kernel", "5.3", "--upgrade"]) == 2
    assert "--upgrade: needs two or more" in capsys.readouterr().err
    assert main(["report", path, "--kernel", "5.2", "--kernel", "6.8", "--upgrade"]) == 0
    out = capsys.readouterr().out
    tail = out[out.index("upgrade: namespaces made under 5.2, rebooted under 6.8 and back"):].splitlines()
    assert tail[1].startswith("  namespace0.0 (fsdax) under 5.2: usable ")
    assert tail[2].startswith("    6.8: ok; usable ") and tail[2].endswith("back to 5.2: as created")
    assert max(len(line) for line in out.splitlines()) <= 100
    assert main(["report", path, "--kernel", "5.2", "--kernel", "6.8"]) == 0
    assert "upgrade:" not in capsys.readouterr().out
