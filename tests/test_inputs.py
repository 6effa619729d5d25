"""The layout-text front end (``sparsemem.inputs``, issue 13 item 1): every form a user has,
as the tools print it, read into the tree the kernel built.

The samples in tests/data/inputs are modelled on real boots (README there).  The e820
update/remove semantics are those of ``__e820__range_update`` / ``e820__range_remove`` in
arch/x86/kernel/e820.c (the same loop in v5.3 and v6.8); the order of the printed tables is
``setup_arch``'s (``e820__memory_setup`` prints BIOS-e820, ``e820__reserve_setup_data`` the
"extended" table, ``e820__finish_early_params`` the user map, ``trim_bios_range`` then updates
page 0 and removes 0xa0000-0xfffff).
"""

from __future__ import annotations

import gzip
import os
import pathlib
import re

import pytest

from sparsemem import iomem
from sparsemem.e820 import (
    E820_TYPE_PRAM,
    E820_TYPE_RAM,
    E820_TYPE_RESERVED,
    E820_TYPE_RESERVED_KERN,
    E820Entry,
    e820__range_remove,
    e820__range_update,
    e820__update_table,
)
from sparsemem.errors import KernelBug
from sparsemem.inputs import ACCEPTED_FORMS, decode_layout, machine_iomem, normalise
from sparsemem.report import build_report, load_layout

HERE = pathlib.Path(__file__).resolve().parent
INPUTS = HERE / "data" / "inputs"
BUNDLED = HERE.parent / "src" / "sparsemem" / "data" / "ndctl-issue-76.txt"


def sample(name: str) -> str:
    return (INPUTS / name).read_text(encoding="utf-8")


def tree_of(text: str, name: str = "t.txt"):
    norm = normalise(text, filename=name)
    return norm, iomem.parse(norm.text, filename=name)


def lines_of(parsed) -> list[str]:
    return parsed.text().splitlines()


# what /proc/iomem of the QEMU 6.8 guest shows (e820 part): the user map with memmap=4G!8G,
# page 0 reserved and the legacy ROM hole's RAM removed (none was RAM there)
QEMU68 = [
    "00000000-00000fff : Reserved",
    "00001000-0009fbff : System RAM",
    "0009fc00-0009ffff : Reserved",
    "000f0000-000fffff : Reserved",
    "00100000-7ffdbfff : System RAM",
    "7ffdc000-7fffffff : Reserved",
    "b0000000-bfffffff : Reserved",
    "fed1c000-fed1ffff : Reserved",
    "feffc000-feffffff : Reserved",
    "fffc0000-ffffffff : Reserved",
    "100000000-1ffffffff : System RAM",
    "200000000-2ffffffff : Persistent Memory (legacy)",
    "300000000-37fffffff : System RAM",
]


def _lineno(text: str, needle: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines(), 1) if needle in line]


# ---------------------------------------------------------------------------------------------
# dmesg as printed


def test_dmesg_user_map_with_update_and_remove_applied():
    text = sample("qemu-6.8-memmap.dmesg.txt")
    norm, parsed = tree_of(text)
    assert lines_of(parsed) == QEMU68
    assert norm.form == "dmesg" and norm.table_label == "user"
    assert set(norm.e820_tables) == {"BIOS-e820", "user"}
    assert "memmap=4G!8G" in norm.command_line
    # the two lines printed after the user map, at their own line numbers in the file
    assert [op.lineno for op in norm.applied] == _lineno(text, "e820: update") + _lineno(text, "e820: remove")
    assert [(op.op, op.start, op.size, op.old, op.new) for op in norm.applied] == [
        ("update", 0, 0x1000, E820_TYPE_RAM, E820_TYPE_RESERVED),
        ("remove", 0xA0000, 0x60000, E820_TYPE_RAM, None)]
    assert any("user-defined map is used" in n for n in norm.notes)


# /proc/iomem of the 6.1 guest booted with memmap=4G!12G mem=12G: RAM above 12 GiB removed by
# mem= (parse_memopt), the legacy pmem range added by memmap= (parse_memmap_one), page 0 and
# the legacy ROM hole as trim_bios_range leaves them
QEMU61_MEM = QEMU68[:10] + ["100000000-2ffffffff : System RAM", "300000000-3ffffffff : Persistent Memory (legacy)"]


def test_mem_and_memmap_user_map_with_levels():
    """dmesg -x of a mem= boot: the remove line that mem= printed comes before the user map
    (which already shows its effect) and is not applied again; the trim_bios_range lines
    after the map are; the facility:level prefixes (kern :debug : on KERN_DEBUG lines) go."""
    text = sample("qemu-6.1-mem-memmap.dmesg-x.txt")
    norm, parsed = tree_of(text)
    assert lines_of(parsed) == QEMU61_MEM
    assert norm.form == "dmesg" and norm.table_label == "user"
    assert "memmap=4G!12G mem=12G" in " ".join(n for n in norm.notes if "command line" in n)
    mem_remove = _lineno(text, "e820: remove [mem 0x300000000-")
    assert [(op.lineno, op.op, op.start, op.start + op.size - 1, op.old) for op in norm.ops][0] == \
        (mem_remove[0], "remove", 0x300000000, 0xFFFFFFFFFFFFFFFE, E820_TYPE_RAM)
    trim = _lineno(text, "e820: update") + _lineno(text, "e820: remove [mem 0x000a")
    assert [op.lineno for op in norm.applied] == trim
    # `dmesg | grep -i e820` of the same boot keeps no user: line: the firmware table with
    # mem='s remove applied as the kernel applied it (RAM ends at 12 GiB), and no pmem
    grepped = "\n".join(line for line in text.splitlines() if "e820" in line.lower())
    norm, parsed = tree_of(grepped)
    assert norm.table_label == "BIOS-e820"
    assert [(op.op, op.start) for op in norm.applied] == [("remove", 0x300000000), ("update", 0), ("remove", 0xA0000)]
    got = lines_of(parsed)
    assert got[-1] == "100000000-2ffffffff : System RAM" and not any("Persistent" in line for line in got)


def test_user_map_wins_only_when_printed():
    """Without the user: lines (``dmesg | grep -i e820`` keeps BIOS-e820 and the e820: lines
    only), the firmware table is used, with the same updates: no pmem at all."""
    text = "\n".join(line for line in sample("qemu-6.8-memmap.dmesg.txt").splitlines()
                     if "e820" in line.lower())
    norm, parsed = tree_of(text)
    assert norm.table_label == "BIOS-e820"
    got = lines_of(parsed)
    assert got[:2] == ["00000000-00000fff : Reserved", "00001000-0009fbff : System RAM"]
    assert "100000000-37fffffff : System RAM" in got
    assert not any("Persistent" in line for line in got)
    # the informational e820 lines (PCI gap, RAM buffer, MMCONFIG "E820 entry") change nothing
    assert any("ignored" in n for n in norm.notes)


def test_setup_data_extended_table_and_reserved_kern_split():
    """journalctl -k of an EFI boot: the 'reserve setup_data' table is the one used; the
    setup_data updates (usable ==> usable: RAM -> E820_TYPE_RESERVED_KERN) keep the System RAM
    split at the setup_data blocks, as /proc/iomem of such a machine shows; the ESRT update
    printed after the table is applied."""
    text = sample("optane-5.4-efi.journal.txt")
    norm, parsed = tree_of(text)
    assert norm.table_label == "extended"
    got = lines_of(parsed)
    assert got[:8] == [
        "00000000-00000fff : Reserved",
        "00001000-0009ffff : System RAM",
        "000a0000-000fffff : Reserved",
        "00100000-5d7b6017 : System RAM",
        "5d7b6018-5d7c3457 : System RAM",
        "5d7c3458-5d7c4017 : System RAM",
        "5d7c4018-5d7d4057 : System RAM",
        "5d7d4058-69f0efff : System RAM",
    ]
    assert "6f2bc000-6f2bffff : System RAM" in got and "6f2c0000-6f2c0fff : Reserved" in got
    assert "6f2c1000-6f7fffff : System RAM" in got
    assert "187c000000-967bffffff : Persistent Memory" in got
    kern = [e for e in norm.e820_table if e.type == E820_TYPE_RESERVED_KERN]
    assert [(e.addr, e.end) for e in kern] == [(0x5D7B6018, 0x5D7C3457), (0x5D7C4018, 0x5D7D4057)]
    assert any("journal marker" in n for n in norm.notes)


def test_kernel_7_wording_gap_lines_and_levels():
    """dmesg -r of a 7.3 boot: <6>/<7> levels, the 7.0 type words and [gap] lines
    (docs/spec/latest-eras.md L §7.1)."""
    norm, parsed = tree_of(sample("qemu-7.3-memmap.dmesg-r.txt"))
    assert norm.table_label == "user"
    got = lines_of(parsed)
    assert got[0] == "00000000-00000fff : Reserved"
    assert "100000000-17fffffff : Persistent Memory (legacy)" in got
    assert "180000000-1bfffffff : System RAM" in got
    assert [op.old for op in norm.applied] == [E820_TYPE_RAM, E820_TYPE_RAM]
    assert not any("gap" in line for line in norm.text.splitlines())


_PLAIN = re.compile(r"^\[\s*(\d+)\.(\d+)\] (.*)$")

#: each printer's prefix for a message at monotonic time ``s``.``us``
PREFIXES = {
    "dmesg": lambda s, us: f"[{s:>5}.{us}] ",
    "dmesg -T": lambda s, us: "[Thu Dec  5 12:38:00 2024] ",
    "dmesg -H": lambda s, us: "[Dec 5 12:38] " if s == 0 and us == "000000" else f"[  +0.{us}] ",
    "dmesg -x": lambda s, us: f"kern  :info  : [{s:>5}.{us}] ",
    "dmesg -r": lambda s, us: f"<6>[{s:>5}.{us}] ",
    "dmesg --time-format=iso": lambda s, us: f"2024-12-05T12:38:0{s},{us}+00:00 ",
    "printk caller id": lambda s, us: f"[{s:>5}.{us}][    T0] ",
    "journalctl -k": lambda s, us: "Dec 05 12:38:00 vm kernel: ",
    "journalctl -o short-iso": lambda s, us: "2024-12-05T12:38:00+0000 vm kernel: ",
    "journalctl -o short-precise": lambda s, us: f"Dec 05 12:38:0{s}.{us} vm kernel: ",
    "journalctl -o short-monotonic": lambda s, us: f"[{s:>5}.{us}] vm kernel: ",
    "journalctl -o short-full": lambda s, us: "Thu 2024-12-05 12:38:00 UTC vm kernel: ",
    "syslog kern.log": lambda s, us: f"Dec  5 12:38:00 vm kernel: [{s:>5}.{us}] ",
    "dmesg --notime": lambda s, us: "",
}


@pytest.mark.parametrize("printer", sorted(PREFIXES))
def test_every_log_printer_gives_the_same_tree(printer):
    plain = sample("qemu-6.8-memmap.dmesg.txt").splitlines()
    out = []
    for line in plain:
        m = _PLAIN.match(line)
        out.append(PREFIXES[printer](int(m.group(1)), m.group(2)) + m.group(3))
    norm, parsed = tree_of("\n".join(out) + "\n")
    assert lines_of(parsed) == QEMU68, printer
    assert [op.lineno for op in norm.applied] == [42, 43]


def test_grepped_log_without_timestamps_still_refuses_garbage():
    """`dmesg --notime | grep e820` has no prefixes and no 'Linux version' line: a line that is
    nothing known is an error, not silently skipped."""
    text = "BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] usable\nhello world\n"
    with pytest.raises(ValueError, match=r"t\.txt, line 2: not a layout line: 'hello world' \(accepted: "):
        normalise(text, filename="t.txt")


def test_several_boots_use_the_last():
    one = sample("qemu-6.8-memmap.dmesg.txt")
    other = one.replace("memmap=4G!8G", "").replace("user: [mem 0x0000000200000000-0x00000002ffffffff] "
                                                     "persistent (type 12)", "user: [mem 0x0000000200000000-"
                                                     "0x00000002ffffffff] usable")
    text = "-- Boot 1a2b3c4d5e6f --\n" + other + "-- Boot 9f8e7d6c5b4a --\n" + one
    norm, parsed = tree_of(text)
    assert lines_of(parsed) == QEMU68
    assert any("2 boots" in n for n in norm.notes)
    # and the other way round
    norm, parsed = tree_of("-- Boot 9f8e7d6c5b4a --\n" + one + "-- Boot 1a2b3c4d5e6f --\n" + other)
    assert "200000000-2ffffffff : Persistent Memory (legacy)" not in lines_of(parsed)


# ---------------------------------------------------------------------------------------------
# /sys/firmware/memmap


def _firmware_table_of_journal():
    norm = normalise(sample("optane-5.4-efi.journal.txt"))
    return e820__update_table(norm.e820_tables["BIOS-e820"])


@pytest.mark.parametrize("name", ["optane-firmware-memmap.grep.txt", "optane-firmware-memmap.loop.txt"])
def test_firmware_memmap_dumps(name):
    """The firmware's table (e820_table_firmware) as /sys/firmware/memmap shows it, in the
    shell's glob order, is the BIOS-e820 table of the same machine's log."""
    norm, parsed = tree_of(sample(name))
    assert norm.form == "firmware-memmap"
    assert parsed.format == "e820" and parsed.e820_table == _firmware_table_of_journal()
    assert "187c000000-967bffffff : Persistent Memory" in lines_of(parsed)
    assert any("shell command line" in n for n in norm.notes)


def test_firmware_memmap_head_and_one_line_forms():
    norm, parsed = tree_of(sample("qemu-firmware-memmap.head.txt"))
    bios = normalise(sample("qemu-6.8-memmap.dmesg.txt")).e820_tables["BIOS-e820"]
    assert parsed.e820_table == e820__update_table(bios)
    # `echo "$(cat $d/start) $(cat $d/end) $(cat $d/type)"` per entry
    one = "0x0 0x9fbff System RAM\n0x9fc00 0x9ffff Reserved\n0x100000 0x7fffffff System RAM\n" \
          "0x100000000 0x1ffffffff Persistent Memory (legacy)\n"
    _, parsed = tree_of(one)
    assert lines_of(parsed)[-1] == "100000000-1ffffffff : Persistent Memory (legacy)"


def test_firmware_memmap_errors_name_the_line():
    text = sample("optane-firmware-memmap.grep.txt").splitlines()
    broken = [line for line in text if line != "/sys/firmware/memmap/13/type:Persistent Memory"]
    with pytest.raises(ValueError, match=r"m\.txt, line \d+: /sys/firmware/memmap/13 has no type"):
        normalise("\n".join(broken), filename="m.txt")
    bad = [line.replace("13/start:0x187c000000", "13/start:lots") for line in text]
    with pytest.raises(ValueError) as e:
        normalise("\n".join(bad), filename="m.txt")
    n = next(i for i, line in enumerate(bad, 1) if "13/start:lots" in line)
    assert f"m.txt, line {n}: /sys/firmware/memmap/13/start is not a 0x... number" in str(e.value)


# ---------------------------------------------------------------------------------------------
# pasted text


def test_pasted_iomem_with_bom_crlf_fence_prompt_and_quote():
    body = BUNDLED.read_text(encoding="utf-8")
    pasted = ("\ufeff```console\r\n"
              "user@optane1:~$ sudo cat /proc/iomem\r\n"
              + "".join(f"> {line}\r\n" for line in body.splitlines())
              + "user@optane1:~$ \r\n```\r\n")
    norm, parsed = tree_of(pasted)
    assert parsed == iomem.parse(body)
    assert parsed.source == "https://github.com/pmem/ndctl/issues/76"
    assert len(parsed.observations) == 9
    assert "stripped a byte-order mark" in norm.notes


def test_root_prompts_and_code_fences_around_dmesg():
    text = "~~~\n[root@host ~]# dmesg | grep BIOS-e820\n" + "\n".join(
        line for line in sample("qemu-6.8-memmap.dmesg.txt").splitlines() if "BIOS-e820" in line) + "\n~~~\n"
    norm, parsed = tree_of(text)
    assert lines_of(parsed)[0] == "00000000-0009fbff : System RAM"
    assert any("1 code-fence line" in n or "2 code-fence lines" in n for n in norm.notes)


def test_errors_keep_the_users_line_numbers():
    """A parser error (two overlapping siblings) after dropped lines names the line of the
    user's file, not of the normalised text."""
    text = ("\ufeff```\n$ sudo cat /proc/iomem\n00000000-00000fff : Reserved\n"
            "00001000-0009fbff : System RAM\n00009000-000fffff : Reserved\n```\n")
    norm = normalise(text, filename="p.txt")
    with pytest.raises(ValueError, match=r"p\.txt, line 5: .*overlaps its sibling on line 4"):
        iomem.parse(norm.text, filename="p.txt")
    with pytest.raises(ValueError, match=r"p\.txt, line 3: not a layout line: 'lsmem output here'"):
        normalise("00000000-00000fff : Reserved\n\nlsmem output here\n", filename="p.txt")


def test_one_line_error_lists_the_accepted_forms():
    with pytest.raises(ValueError) as e:
        normalise('{"dev": "namespace0.0", "mode": "fsdax"}\n', filename="ndctl.json")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("ndctl.json, line 1: not a layout line")
    assert msg.endswith(f"({ACCEPTED_FORMS})")
    for form in ("/proc/iomem", "BIOS-e820", "e820: update", "reserve setup_data", "/sys/firmware/memmap"):
        assert form in msg


def test_bad_e820_lines():
    with pytest.raises(ValueError, match=r"line 1: unknown e820 type 'spare'"):
        normalise("BIOS-e820: [mem 0x0000000000000000-0x000000000009fbff] spare\n")
    with pytest.raises(ValueError, match=r"line 2: start 0x2000 is above end 0xfff"):
        normalise("BIOS-e820: [mem 0x0-0xfff] usable\ne820: update [mem 0x2000-0xfff] usable ==> reserved\n")
    with pytest.raises(ValueError, match=r"line 1: address wider than 64 bits"):
        normalise("user: [mem 0x0-0x10000000000000000] usable\n")
    with pytest.raises(ValueError, match=r"update to the same type"):
        normalise("BIOS-e820: [mem 0x0-0xfff] reserved\ne820: update [mem 0x0-0xfff] reserved ==> reserved\n")


# ---------------------------------------------------------------------------------------------
# the table operations (arch/x86/kernel/e820.c, v5.3 and v6.8)

RAM, RES = E820_TYPE_RAM, E820_TYPE_RESERVED


def test_range_update_cases():
    t = [E820Entry(0x0, 0x9FC00, RAM), E820Entry(0x100000, 0x7FF00000, RAM), E820Entry(0xF0000, 0x10000, RES)]
    # completely covered: retyped in place
    new, n = e820__range_update(t, 0x100000, 0x7FF00000, RAM, RES)
    assert n == 0x7FF00000 and new[1] == E820Entry(0x100000, 0x7FF00000, RES)
    # the range inside one entry: head keeps, middle retyped, tail appended with the old type
    new, n = e820__range_update(t, 0x200000, 0x1000, RAM, RES)
    assert n == 0x1000
    assert new == [E820Entry(0x0, 0x9FC00, RAM), E820Entry(0x100000, 0x100000, RAM), t[2],
                   E820Entry(0x200000, 0x1000, RES), E820Entry(0x201000, 0x7FDFF000, RAM)]
    # partial overlaps at the head and at the tail of two entries; another type is untouched
    new, n = e820__range_update(t, 0x90000, 0x80000, RAM, RES)
    assert n == 0xFC00 + 0x10000
    # (the hole 0x9fc00-0xf0000 stays a hole: an update retypes entries, it adds none)
    assert e820__update_table(new) == [E820Entry(0x0, 0x90000, RAM), E820Entry(0x90000, 0xFC00, RES),
                                       E820Entry(0xF0000, 0x20000, RES), E820Entry(0x110000, 0x7FEF0000, RAM)]
    with pytest.raises(KernelBug):
        e820__range_update(t, 0, 0x1000, RAM, RAM)


def test_range_remove_cases():
    t = [E820Entry(0x0, 0x9FC00, RAM), E820Entry(0x9FC00, 0x400, RES), E820Entry(0xF0000, 0x10000, RES)]
    # trim_bios_range: only RAM is removed from the legacy hole
    new, n = e820__range_remove(t, 0xA0000, 0x60000, RAM, True)
    assert n == 0 and new == t
    # without a type check everything in the range goes, split around it
    new, n = e820__range_remove(t, 0x9F000, 0x58000, 0, False)
    assert n == 0xC00 + 0x400 + 0x7000
    assert e820__update_table(new) == [E820Entry(0x0, 0x9F000, RAM), E820Entry(0xF7000, 0x9000, RES)]
    # mem=: the remove of everything above, with the size clamped to the 64-bit space
    new, n = e820__range_remove(t, 0x80000, (1 << 64) - 0x80000, RAM, True)
    assert new[0] == E820Entry(0x0, 0x80000, RAM)


def test_setup_data_updates_split_system_ram():
    text = ("BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n"
            "BIOS-e820: [mem 0x0000000000100000-0x000000003fffffff] usable\n"
            "e820: update [mem 0x3e73f018-0x3e74f057] usable ==> usable\n"
            "e820: update [mem 0x3e73f018-0x3e74f057] usable ==> usable\n")
    norm, parsed = tree_of(text)
    assert [op.new for op in norm.applied] == [E820_TYPE_RESERVED_KERN] * 2
    assert lines_of(parsed)[1:] == ["00100000-3e73f017 : System RAM", "3e73f018-3e74f057 : System RAM",
                                    "3e74f058-3fffffff : System RAM"]


def test_plain_e820_file_is_passed_through():
    """A file of table lines with no update/remove lines is left to the parser as it is."""
    text = "BIOS-e820: [mem 0x0000000000000000-0x000000000009ffff] usable\n" \
           "user: [mem 0x0000000100000000-0x000000013fffffff] persistent (type 12)\n"
    norm = normalise(text)
    assert norm.text == text and norm.e820_table is None and norm.form == "e820"
    assert iomem.parse(norm.text).e820_table == [E820Entry(0x100000000, 0x40000000, E820_TYPE_PRAM)]


# ---------------------------------------------------------------------------------------------
# bytes and this machine


def test_decode_gzip_utf16_and_utf8_bom():
    body = sample("qemu-6.8-memmap.dmesg.txt")
    assert decode_layout(gzip.compress(body.encode())) == body
    assert decode_layout(body.encode("utf-16")) == body
    norm, parsed = tree_of(decode_layout(b"\xef\xbb\xbf" + body.encode()))
    assert lines_of(parsed) == QEMU68


def test_machine_iomem(tmp_path, monkeypatch):
    zero = tmp_path / "iomem-user"
    zero.write_text("00000000-00000000 : Reserved\n00000000-00000000 : System RAM\n")
    text, why = machine_iomem(str(zero))
    assert text is None and str(zero) in why and "every address as 0" in why
    assert ("not root" in why) == (os.geteuid() != 0)
    text, why = machine_iomem(str(tmp_path / "missing"))
    assert text is None and "does not exist" in why
    real = tmp_path / "iomem"
    real.write_text(BUNDLED.read_text())
    monkeypatch.setenv("SPARSEMEM_PROC_IOMEM", str(real))
    text, where = machine_iomem()
    assert where == str(real) and text == BUNDLED.read_text()


def test_layout_from_dmesg_boots():
    """A report straight from the guest's dmesg: the memmap= region is a 4 GiB pmem region."""
    lay = load_layout(str(INPUTS / "qemu-6.8-memmap.dmesg.txt"))
    rep = build_report([lay], ["5.3"])
    (reg,) = rep["layouts"][0]["regions"]
    assert (reg["start"], reg["size"]) == (0x200000000, 4 << 30)
    assert reg["results"][0]["result"] == "ok"
    assert rep["layouts"][0]["input"]["format"] == "dmesg"
