"""Existing configuration adopted (issue 13 item 2; api.md "Existing configuration"):
namespaces, pfn/dax devices and kmem memory read from a /proc/iomem dump and from ndctl /
daxctl JSON, re-created on the booted machine, shown by `report` and used by `fleet`.

The samples are in tests/data/existing (constructed in the kernel's and ndctl's own output
forms, see tests/data/README.md) and tests/data/layouts (the damo #84 and 2018 kmem dumps
are real).  The strongest check: the machine that adopted a dump prints that dump again
(`iomem_text`), i.e. the simulated drivers claim exactly what the real ones claimed.
"""

from __future__ import annotations

import json
import pathlib

import pytest

from sparsemem import Machine, fleet
from sparsemem import existing as E
from sparsemem.cli import main
from sparsemem.explain import lost_capacity
from sparsemem.report import REPORT_SCHEMA, boot_layout, build_report, load_layout, populate

DATA = pathlib.Path(__file__).resolve().parent / "data"
EX = DATA / "existing"
MiB, GiB = 1 << 20, 1 << 30
SECTION = 128 * MiB


def _text(name: str) -> str:
    return (EX / name).read_text()


def _pmem_lines(text: str) -> list[str]:
    """The lines of every Persistent Memory range and what is nested in it."""
    out, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line[:1].isspace():
            inside = "Persistent Memory" in line
        if inside:
            out.append(line)
    return out


def _validate(obj, schema, path="$"):
    """A small JSON-schema check (type, required, properties, additionalProperties, items, enum)."""
    types = schema.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        ok = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool, "null": type(None)}
        assert any(isinstance(obj, ok[t]) and not (t == "integer" and isinstance(obj, bool)) for t in types), path
    if "enum" in schema:
        assert obj in schema["enum"], path
    if isinstance(obj, dict) and "properties" in schema:
        for k in schema.get("required", []):
            assert k in obj, f"{path}.{k} missing"
        if schema.get("additionalProperties") is False:
            assert set(obj) <= set(schema["properties"]), f"{path}: extra {set(obj) - set(schema['properties'])}"
        for k, v in obj.items():
            if k in schema["properties"]:
                _validate(v, schema["properties"][k], f"{path}.{k}")
    if isinstance(obj, list) and "items" in schema:
        for i, v in enumerate(obj):
            _validate(v, schema["items"], f"{path}[{i}]")


# ---------------------------------------------------------------------------------------------
# the dump alone


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_fsdax_namespaces_of_a_dump_are_adopted_and_printed_again(kernel):
    text = _text("qemu-fsdax-sector.iomem.txt")
    m = Machine.from_iomem(text, kernel=kernel)
    r0, r1 = m.regions
    assert [(n.dev, n.mode, n.start, n.raw_size, n.enabled) for n in r0.namespaces] == [
        ("namespace0.0", "fsdax", 0x240000000, GiB, True), ("namespace0.1", "fsdax", 0x280000000, GiB, True)]
    # the claims nd_pmem makes are the dump's (MN §5): the same /proc/iomem lines again
    assert _pmem_lines(m.iomem_text()) == _pmem_lines(text)
    # the free region stays free (Machine.from_iomem creates nothing new); region0 keeps its
    # free tail as available capacity
    assert r1.namespaces == [] and r0.available_size == 6 * GiB


@pytest.mark.parametrize("kernel", ["5.2", "5.3"])
def test_devdax_bound_to_device_dax(kernel):
    text = _text("qemu-devdax.iomem.txt")
    m = Machine.from_iomem(text, kernel=kernel)
    (ns,) = m.regions[0].namespaces
    assert (ns.mode, ns.chardev, ns.start, ns.raw_size) == ("devdax", "dax0.0", 0x240000000, 4 * GiB)
    # dax_pmem claims [start, start + dataoff) as namespace0.0, device_dax the data (K §2.1)
    assert ns.dataoff == 66 * MiB and ns.size == 4 * GiB - 66 * MiB
    assert _pmem_lines(m.iomem_text()) == _pmem_lines(text)


@pytest.mark.parametrize("layout", [EX / "qemu-devdax-kmem.iomem.txt",
                                    DATA / "layouts" / "github.com_awslabs_damo_pull_84.txt"], ids=lambda p: p.name)
@pytest.mark.parametrize("kernel", ["5.1", "5.2", "5.3"])
def test_kmem_memory_is_hot_added_again(layout, kernel):
    """A ``daxX.Y`` holding System RAM is a devdax namespace bound to kmem: its dax range is
    rounded in to whole memory blocks (K §5.1), hot-added and onlined movable (K §8.1)."""
    text = layout.read_text()
    m = Machine.from_iomem(text, kernel=kernel)
    (ns,) = m.regions[0].namespaces
    assert ns.mode == "devdax" and ns.enabled
    bs = m.memory_block_size
    s, e = ns.start + ns.start_pad + ns.dataoff, ns.end - ns.end_trunc
    kstart, kend = -(-s // bs) * bs, e // bs * bs
    assert E.kmem_of(m, ns) == (kstart, kend - kstart)
    blocks = [b for b in m.memory_blocks if kstart <= b.start < kend]
    assert len(blocks) == (kend - kstart) // bs and all(str(b.state) == "online" and b.zone == "Movable"
                                                        for b in blocks)
    assert ns.pgmap is None          # device_dax's ZONE_DEVICE mapping is gone
    # the modelled rules are <= v5.7's, whose kmem names the memory "System RAM" (K §1)
    assert _pmem_lines(m.iomem_text()) == [ln.replace("System RAM (kmem)", "System RAM")
                                           for ln in _pmem_lines(text)]


def test_system_ram_directly_inside_legacy_pmem_is_not_lost():
    """The 2018 kmem dump: System RAM nested in "Persistent Memory (legacy)" is device memory
    already hot-added, counted as usable, not as lost capacity."""
    path = DATA / "layouts" / "lore.kernel.org_20181022201327.F1642450@viggo.jf.intel.com.txt"
    m = Machine.from_iomem(path.read_text(), kernel="5.3")
    assert [(b.start, str(b.state)) for b in m.memory_blocks if 0xa0000000 <= b.start < 0xb0000000] == \
        [(0xa0000000, "online")]
    rep = build_report([load_layout(str(path))], ["5.2", "5.3"])["layouts"][0]
    for r in rep["regions"][0]["results"]:
        assert r["existing"] and r["result"] == "ok" and r["namespace"] is None
        assert r["capacity"] == 128 * MiB and r["lost"]["unallocated"] == 128 * MiB
        assert r["lost"]["padding"] == r["lost"]["other"] == 0
        (k,) = r["kmem"]
        assert (k["start"], k["size"], k["blocks"]) == (0xa0000000, 128 * MiB, 1)
        assert r["memmap"]["ram"] == k["size"] // 64       # K §9 memmap_dram


def test_soft_reserved_and_cxl_kmem_memory():
    """From v5.5 (K §2.2) Soft Reserved memory is device memory (here hmem's dax1.0, bound
    to kmem); before, it boots as System RAM and there is nothing to adopt there."""
    text = _text("hmem-cxl-kmem.iomem.txt")
    old = Machine.from_iomem(text, kernel="5.3")
    assert [a.item.parent for a in old.existing] == ["CXL Window 0"]
    assert "100000000-43fffffff : System RAM\n" in old.iomem_text()    # merged with the RAM below
    m = Machine.from_iomem(text, kernel="6.8")
    hot = [b for b in m.memory_blocks if b.start >= 0x240000000]
    assert sum(b.size for b in hot) == 8 * GiB + 16 * GiB
    assert all(str(b.state) == "online" and b.zone == "Movable" for b in hot)
    iomem = m.iomem_text()
    # the 6.8 kmem names its memory "System RAM (kmem)" (K §1 row 5.8; the hmem device and the
    # CXL region are the release's devices, sparsemem.dax)
    assert "240000000-43fffffff : Soft Reserved\n  240000000-43fffffff : dax1.0\n" \
           "    240000000-43fffffff : System RAM (kmem)\n" in iomem
    assert "    1050000000-144fffffff : dax0.0\n      1050000000-144fffffff : System RAM (kmem)\n" in iomem
    rep = build_report([load_layout(str(EX / "hmem-cxl-kmem.iomem.txt"))], ["6.8"])["layouts"][0]
    assert [(k["dev"], k["parent"], k["size"], k["result"]) for k in rep["kmem"]] == [
        ("dax1.0", "Soft Reserved", 8 * GiB, "ok"), ("dax0.0", "CXL Window 0", 16 * GiB, "ok")]
    assert all(k["memmap"]["ram"] == k["size"] // 64 for k in rep["kmem"])


def test_text_report_lists_device_memory_outside_pmem(capsys):
    assert main(["report", str(EX / "hmem-cxl-kmem.iomem.txt"), "--kernel", "5.3", "--kernel", "6.8"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "5.3: dax0.0 in CXL Window 0 0x1050000000-0x144fffffff 16 GiB: ok; 128 blocks (128 online)" in out
    assert "6.8: dax1.0 in Soft Reserved" in out and "5.3: dax1.0" not in out


def test_constructor_adopts_nothing_and_reboot_reprobes_the_media():
    text = _text("qemu-devdax-kmem.iomem.txt")
    assert Machine(iomem=text).regions[0].namespaces == []
    m = Machine.from_iomem(text, kernel="5.2")
    m2 = m.reboot(kernel="5.3")
    (ns,) = m2.regions[0].namespaces
    # the info-block and label survive; the kmem binding is userspace's and does not (K §3)
    assert (ns.mode, ns.enabled, ns.size) == ("devdax", True, m.regions[0].namespaces[0].size)
    assert E.kmem_of(m2, ns) is None


# ---------------------------------------------------------------------------------------------
# ndctl / daxctl JSON


@pytest.mark.parametrize("json_name", ["qemu-fsdax-sector.ndctl.json", "qemu-fsdax-sector.ndctl-RN.json"])
def test_ndctl_json_supplies_the_mode(json_name):
    """The dump cannot tell fsdax from sector (both claim namespaceX.Y); ndctl list -N / -RN
    can.  And the fsdax namespace's usable size is what ndctl printed (MN §3)."""
    text, js = _text("qemu-fsdax-sector.iomem.txt"), _text(json_name)
    m = Machine.from_iomem(text, kernel="5.3", namespaces=js)
    ns0, ns1 = m.regions[0].namespaces
    assert (ns0.mode, ns0.map, ns0.align, ns1.mode, ns1.blockdev) == ("fsdax", "dev", 2 * MiB, "sector", "pmem0.1s")
    shown = {n["name"]: n["size"] for n in E.parse_ndctl_json(js)[0]}
    assert ns0.size == shown["namespace0.0"]
    assert str(__import__("uuid").UUID(bytes=ns0.uuid)) == "6a7d93f5-60c4-461b-8d19-0409bd323a94"
    assert _pmem_lines(m.iomem_text()) == _pmem_lines(text)


def test_ndctl_json_alone_creates_the_namespace_and_binds_kmem():
    """A map without claims plus ndctl list -N of a devdax namespace in system-ram mode."""
    m = Machine.from_iomem(_text("plain.iomem.txt"), kernel="5.3", namespaces=_text("plain-devdax-kmem.ndctl.json"))
    (ns,) = m.regions[0].namespaces
    assert (ns.dev, ns.mode, ns.start) == ("namespace0.0", "devdax", 0x240000000)
    k = E.kmem_of(m, ns)
    assert k is not None and k[0] % m.memory_block_size == 0
    assert sum(1 for b in m.memory_blocks if k[0] <= b.start < k[0] + k[1] and str(b.state) == "online") == \
        k[1] // m.memory_block_size


def test_daxctl_json_says_system_ram():
    """daxctl list of dax0.0 in system-ram mode turns a device_dax dump into kmem memory."""
    plain = Machine.from_iomem(_text("qemu-devdax.iomem.txt"), kernel="5.3")
    assert E.kmem_of(plain, plain.regions[0].namespaces[0]) is None
    m = Machine.from_iomem(_text("qemu-devdax.iomem.txt"), kernel="5.3",
                           namespaces=_text("qemu-devdax-kmem.daxctl.json"))
    (ns,) = m.regions[0].namespaces
    assert E.kmem_of(m, ns) == (0x248000000, 0x340000000 - 0x248000000)
    # daxctl printed 31 blocks: what the simulation hot-added
    want = json.loads(_text("qemu-devdax-kmem.daxctl.json"))[0]["total_memblocks"]
    assert sum(1 for b in m.memory_blocks if b.start >= 0x248000000) == want


@pytest.mark.parametrize("text,needle", [
    ("[{", "line 1"),
    ('[{"dev": "namespace0.0", "size": "4.00 GiB (4.29 GB)"}]', "not a byte count"),
    ('[{"mode": "fsdax", "size": 1073741824}]', "names no region"),
    ('[{"dev": "namespace7.0", "size": 1073741824}]', "region7"),
    ('[{"dev": "namespace0.0", "mode": "memdax"}]', "mode"),
])
def test_bad_json_is_a_value_error(text, needle):
    with pytest.raises(ValueError, match=needle):
        Machine.from_iomem(_text("plain.iomem.txt"), kernel="5.3", namespaces=text)


# ---------------------------------------------------------------------------------------------
# report and fleet


def test_report_shows_the_existing_configuration_and_defaults_only_free_regions():
    lay = load_layout(str(EX / "qemu-fsdax-sector.iomem.txt"))
    lay.ndctl = _text("qemu-fsdax-sector.ndctl.json")
    rep = build_report([lay], ["5.2", "5.3"])
    _validate(rep, REPORT_SCHEMA)
    r0, r1 = rep["layouts"][0]["regions"]
    for res in r0["results"]:
        assert res["existing"] and [n["dev"] for n in res["namespaces"]] == ["namespace0.0", "namespace0.1"]
        assert all(n["adopted"] for n in res["namespaces"])
        assert res["capacity"] == sum(n["size"] for n in res["namespaces"])
        assert res["lost"]["unallocated"] == 6 * GiB     # no default namespace on the free tail
        assert res["lost"]["total"] == sum(res["lost"][k] for k in ("padding", "metadata", "unallocated", "other"))
    for res in r1["results"]:                              # the free region gets the default
        assert not res["existing"] and res["namespace"]["dev"] == "namespace1.0"
        assert res["namespace"]["raw_size"] == 8 * GiB and "adopted" not in res["namespace"]


def test_report_kmem_columns_and_memmap(capsys):
    path = str(EX / "qemu-devdax-kmem.iomem.txt")
    assert main(["report", path, "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    _validate(rep, REPORT_SCHEMA)
    for res in rep["layouts"][0]["regions"][0]["results"]:
        ns = res["namespace"]
        assert ns["mode"] == "devdax" and ns["kmem"]["size"] == 0x340000000 - 0x248000000
        assert ns["kmem"]["lost_alignment"] == ns["size"] - ns["kmem"]["size"] == 62 * MiB
        assert res["capacity"] == ns["size"] and res["memmap"]["pmem"] == 0
        assert res["memmap"]["ram"] == ns["kmem"]["size"] // 64
    assert main(["report", path]) == 0
    out = capsys.readouterr().out
    assert "devdax dax0.0 kmem" in out and "system RAM        3968 MiB" in out


def test_report_ndctl_option(tmp_path, capsys):
    layout = str(EX / "qemu-fsdax-sector.iomem.txt")
    assert main(["report", layout, "--ndctl", str(EX / "qemu-fsdax-sector.ndctl-RN.json"), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    modes = [n["mode"] for n in rep["layouts"][0]["regions"][0]["results"][0]["namespaces"]]
    assert modes == ["fsdax", "sector"] and rep["layouts"][0]["existing"]["ndctl"] is True
    bad = tmp_path / "bad.json"
    bad.write_text('[{"dev": "namespace0.0", "size": "1 GiB"}]')
    assert main(["report", layout, "--ndctl", str(bad)]) == 1
    assert "bad.json" in capsys.readouterr().err


def test_fleet_uses_the_same_adoption():
    rows = fleet.upgrade_host("h", _text("qemu-devdax-kmem.iomem.txt"), "5.2", "5.3")
    lay = load_layout(str(EX / "qemu-devdax-kmem.iomem.txt"))
    rep = build_report([lay], ["5.2"])["layouts"][0]
    (res,) = rep["regions"][0]["results"]
    C = {name: i for i, name in enumerate(fleet.COLUMNS)}
    (row,) = rows
    assert (row[C["namespace"]], row[C["mode"]], row[C["usable_from"]], row[C["memmap_ram_from"]]) == \
        ("namespace0.0", "devdax", res["capacity"], res["memmap"]["ram"])
    assert row[C["usable_to"]] == res["capacity"] and row[C["enabled_to"]]
    rows = fleet.upgrade_host("h", _text("qemu-fsdax-sector.iomem.txt"), "5.2", "5.3",
                              _text("qemu-fsdax-sector.ndctl.json"))
    assert [(r[C["namespace"]], r[C["mode"]]) for r in rows] == [
        ("namespace0.0", "fsdax"), ("namespace0.1", "sector"), ("namespace1.0", "fsdax")]


# ---------------------------------------------------------------------------------------------
# --check and the free space of an existing configuration; the ndctl JSON beside a layout


def test_check_counts_an_existing_configurations_padding_not_its_free_space(capsys):
    """A region that kept its configuration: the bytes none of its namespaces covers are the
    region's free capacity (what it still offers to ndctl create-namespace, checked here on
    the booted machine), not a loss (api.md "Command line": the default namespace goes on
    free regions only); the padding its namespaces get under a release is still a loss."""
    lay = load_layout(str(EX / "qemu-fsdax-sector.iomem.txt"))
    for kernel in ("5.2", "5.3"):
        m, config = boot_layout(lay.text, kernel)
        populate(m, config, kernel)
        rep = build_report([lay], [kernel])["layouts"][0]
        res = rep["regions"][0]["results"][0]
        assert res["existing"] and res["lost"]["unallocated"] == m.regions[0].available_size == 6 * GiB
        assert lost_capacity(res) == 0 and rep["check"] == []
    assert main(["report", str(EX / "qemu-fsdax-sector.iomem.txt"), "--check"]) == 0
    assert "6 GiB (free)" in capsys.readouterr().out
    # the 2018 dump: the legacy region's bytes beside the hot-added RAM are free too
    old = load_layout(str(DATA / "layouts" / "lore.kernel.org_20181022201327.F1642450@viggo.jf.intel.com.txt"))
    m, config = boot_layout(old.text, "5.3")
    populate(m, config, "5.3")
    rep = build_report([old], ["5.3"])["layouts"][0]
    assert rep["regions"][0]["results"][0]["lost"]["unallocated"] <= m.regions[0].available_size
    assert rep["check"] == []
    # lca.pw: region0 keeps its namespace; 5.2 pads it, which is lost (MN §3.1)
    lca = load_layout(str(DATA / "layouts" / "lore.kernel.org_0FB85A78-C2EE-4135-9E0F-D5623CE6EA47@lca.pw.txt"))
    rep = build_report([lca], ["5.2", "5.3"])["layouts"][0]
    r52, r53 = rep["regions"][0]["results"]
    assert r52["existing"] and r52["lost"]["padding"] > 0 and r53["lost"]["padding"] == 0
    assert {"region": "region0", "kernel": "5.2", "kind": "lost", "bytes": r52["lost"]["padding"],
            "text": f"region0 under 5.2: {r52['lost']['padding'] >> 20} MiB lost ({r52['lost']['padding'] >> 20} MiB "
                    f"padding)"} in rep["check"]
    assert not [c for c in rep["check"] if c["region"] == "region0" and c["kernel"] == "5.3"]


def test_report_reads_the_ndctl_json_beside_a_layout(tmp_path, capsys):
    """host.txt with host.json (ndctl list -N) beside it, as a fleet inventory pairs them:
    the JSON's modes are used, the note says where they came from; --ndctl overrides it; a
    JSON that cannot be read makes that layout unreadable (exit 1, the JSON named)."""
    host = tmp_path / "host.txt"
    host.write_text(_text("qemu-fsdax-sector.iomem.txt"))
    (tmp_path / "host.json").write_text(_text("qemu-fsdax-sector.ndctl.json"))

    def modes(*extra):
        assert main(["report", str(host), "--json", "-k", "5.3", *extra]) == 0
        lay = json.loads(capsys.readouterr().out)["layouts"][0]
        return [n["mode"] for n in lay["regions"][0]["results"][0]["namespaces"]], lay

    got, lay = modes()
    assert got == ["fsdax", "sector"] and lay["existing"]["ndctl"] is True
    assert any(str(tmp_path / "host.json") in n for n in lay["input"]["notes"])
    empty = tmp_path / "none.json"
    empty.write_text("[]\n")
    got, lay = modes("--ndctl", str(empty))      # the dump alone cannot tell sector from fsdax
    assert got == ["fsdax", "fsdax"] and not any("host.json" in n for n in lay["input"]["notes"])
    (tmp_path / "host.json").write_text('[{"dev": "namespace0.0", "size": "1 GiB"}]')
    assert main(["report", str(host), "-k", "5.3"]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'host.json'}: " in err and "not a byte count" in err


@pytest.mark.parametrize("name", sorted(p.name for p in EX.glob("*.iomem.txt")))
def test_one_parsed_layout_serves_every_run(name):
    """report parses a layout once and boots every kernel (and every hint's alternative) from
    that tree: adopting the configuration must leave it as it was, so that a kernel's result
    does not depend on the kernels run before it."""
    lay = load_layout(str(EX / name))
    together = build_report([lay], ["6.8", "5.2", "5.3"])["layouts"][0]
    for i, k in enumerate(["6.8", "5.2", "5.3"]):
        alone = build_report([lay], [k])["layouts"][0]
        for reg, reg_alone in zip(together["regions"], alone["regions"]):
            got, want = ({x: v for x, v in r.items() if x != "hints"}
                         for r in (reg["results"][i], reg_alone["results"][0]))
            assert got == want, (name, k, reg["dev"])
        assert [x for x in together["kmem"] if x["kernel"] == k] == alone["kmem"]
