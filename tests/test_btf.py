"""The BTF and vmlinuz readers agree with pahole and the kernel's own files.

Real data: Debian's vmlinuz images (decompressed here), the BTF-only vmlinux the 6.12
headers ship, and in-tree modules whose .BTF is split BTF on top of vmlinux. pahole
(dwarves) reads the same files; every member of ``struct module`` must come out the
same. Only the bad-input tests build or damage data on purpose, and say so.
"""

from __future__ import annotations

import lzma
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import time
from array import array
from dataclasses import dataclass, field

import pytest
from conftest import kernel

from abicheck.model import StructLayout
from abicheck.readers.btf import (
    BTF_KIND_STRUCT,
    BTF_KIND_UNION,
    Btf,
    BtfError,
    btf_from_elf,
    btf_from_file,
)
from abicheck.readers.elf import ElfImage
from abicheck.readers.vmlinuz import VmlinuzError, extract_vmlinux, read_vmlinux

needs_pahole = pytest.mark.skipif(shutil.which("pahole") is None, reason="pahole missing")

VMLINUZ_ROLES = ("6.1-a", "6.1-b", "6.12")
# struct module members the loader and later checks care about
KEY_MEMBERS = ("name", "init", "exit", "source_list", "target_list", "refcnt")


# -- pahole's output -------------------------------------------------------------------

_LINE = re.compile(r"^(\t+)(.*?);\s*/\*\s*(\d+)(?::\s*(\d+))?\s+(\d+)\s*\*/\s*$")
_OPEN = re.compile(r"^(\t+)(struct|union)\s*\{\s*$")
_SIZE = re.compile(r"/\* size: (\d+), cachelines:")
_FUNC_PTR = re.compile(r"\(\*\s*(\w+)((?:\[\d*\])*)\)")
_PLAIN = re.compile(r"^(.*?)(\w+)((?:\[\d*\])*)$")


@dataclass
class Row:
    """One member as pahole prints it; ``children`` for an inline anonymous type."""

    name: str
    offset: int
    size: int
    type: str
    bit_offset: int | None = None
    bit_size: int | None = None
    children: list[Row] | None = None

    def key(self) -> tuple:
        return (self.name, self.offset, self.size, self.bit_offset, self.bit_size, self.type)


@dataclass
class PaholeStruct:
    size: int
    rows: list[Row] = field(default_factory=list)

    def flat(self) -> list[Row]:
        """Members with anonymous struct/union members replaced by theirs, as C sees
        them (pahole prints nested offsets from the outer struct's start already)."""
        return list(_flatten(self.rows))


def _flatten(rows: list[Row]):
    for row in rows:
        if row.children is not None and not row.name:
            yield from _flatten(row.children)
        else:
            yield row


def norm(type_name: str) -> str:
    # pahole pads its columns ("const char  *"); spaces carry no meaning here
    return re.sub(r"\s+", "", type_name)


def _leaf(decl: str, offset: int, bit: str | None, size: int) -> Row:
    decl = re.sub(r"\s*__attribute__\(\(.*\)\)", "", decl).strip()
    bit_size = None
    bitfield = re.match(r"^(.*\S)\s*:\s*(\d+)$", decl)
    if bitfield:
        decl, bit_size = bitfield[1], int(bitfield[2])
    func_ptr = _FUNC_PTR.search(decl)
    if func_ptr:
        name = func_ptr[1]
        type_name = decl[: func_ptr.start()] + f"(*{func_ptr[2]})" + decl[func_ptr.end() :]
    else:
        plain = _PLAIN.match(decl)
        assert plain, decl
        name, type_name = plain[2], plain[1] + plain[3]
    bit_offset = int(bit) if bit is not None else None
    return Row(name, offset, size, norm(type_name), bit_offset, bit_size)


def parse_pahole(text: str) -> PaholeStruct:
    sizes = _SIZE.findall(text)
    assert sizes, f"no struct in pahole's output:\n{text}"
    # the outermost struct's summary is the last one printed
    out = PaholeStruct(int(sizes[-1]))
    stack: list[tuple[str, list[Row]]] = [("", out.rows)]
    for line in text.splitlines():
        opening = _OPEN.match(line)
        if opening:
            stack.append((opening[2], []))
            continue
        m = _LINE.match(line)
        if not m:
            continue
        _tabs, decl, offset, bit, size = m.groups()
        if decl.startswith("}"):
            kind, children = stack.pop()
            dims = re.match(r"^\}\s*(\w*)((?:\[\d*\])*)", decl)
            assert dims, decl
            row = Row(dims[1], int(offset), int(size), norm(f"{kind} {{...}}{dims[2]}"))
            row.children = children
        else:
            row = _leaf(decl, int(offset), bit, int(size))
        stack[-1][1].append(row)
    assert len(stack) == 1, "unbalanced braces in pahole's output"
    return out


def pahole(struct_name: str, path: str, base: str | None = None) -> PaholeStruct:
    args = ["pahole", "-F", "btf", "-C", struct_name, path]
    if base:
        args[1:1] = ["--btf_base", base]
    res = subprocess.run(args, capture_output=True, text=True, check=True)
    return parse_pahole(res.stdout)


def ours(layout: StructLayout) -> list[tuple]:
    return [
        (m.name, m.offset, m.size, m.bit_offset, m.bit_size, norm(m.type_name))
        for m in layout.members
    ]


def assert_same(layout: StructLayout, expected: PaholeStruct, flat: bool = False) -> None:
    rows = expected.flat() if flat else expected.rows
    assert layout.size == expected.size
    assert ours(layout) == [r.key() for r in rows]


# -- the files ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def vmlinux_files(testdata, tmp_path_factory) -> dict[str, str]:
    """A vmlinux ELF per source: the 6.12 headers' BTF-only one, and one decompressed
    from each vmlinuz."""
    files = {}
    headers_vmlinux = os.path.join(kernel(testdata, "6.12")["headers"], "vmlinux")
    if os.path.exists(headers_vmlinux):
        files["6.12-headers"] = headers_vmlinux
    out = tmp_path_factory.mktemp("vmlinux")
    for role in VMLINUZ_ROLES:
        vmlinuz = kernel(testdata, role).get("vmlinuz")
        if vmlinuz and os.path.exists(vmlinuz):
            path = out / f"vmlinux-{role}"
            path.write_bytes(read_vmlinux(vmlinuz))
            files[f"{role}-vmlinuz"] = str(path)
    return files


SOURCES = ("6.12-headers", *(f"{r}-vmlinuz" for r in VMLINUZ_ROLES))


def source_file(vmlinux_files: dict[str, str], source: str) -> str:
    if source not in vmlinux_files:
        pytest.skip(f"{source}: not in the test data")
    return vmlinux_files[source]


def btf_section(elf: bytes) -> bytes:
    image = ElfImage(elf, len(elf))
    (sec,) = image.find(".BTF")
    return image.data(sec)


def module_copy(path: str, tmp_path) -> str:
    """pahole reads no .ko.xz: an uncompressed copy of an in-tree module."""
    if not path.endswith(".xz"):
        return path
    out = tmp_path / os.path.basename(path)[:-3]
    with lzma.open(path) as f:
        out.write_bytes(f.read())
    return str(out)


# -- vmlinuz -----------------------------------------------------------------------------


@pytest.mark.debian
@pytest.mark.parametrize("role", VMLINUZ_ROLES)
def test_vmlinuz_decompresses_to_vmlinux_with_btf(testdata, role):
    vmlinuz = kernel(testdata, role)["vmlinuz"]
    start = time.perf_counter()
    elf = read_vmlinux(vmlinuz)
    took = time.perf_counter() - start
    print(f"\n{os.path.basename(vmlinuz)}: {len(elf) >> 20} MiB vmlinux in {took:.2f} s")
    assert elf[:4] == b"\x7fELF"
    image = ElfImage(elf, len(elf))
    assert image.header is not None and image.header.e_machine == 62  # EM_X86_64
    assert image.find(".BTF") and image.find(".BTF_ids")
    # already ELF: returned as it is
    assert extract_vmlinux(elf) is elf


@pytest.mark.debian
def test_headers_vmlinux_has_the_same_btf_as_the_kernel_image(vmlinux_files):
    """Debian 6.12's headers ship vmlinux with only the BTF: it is the kernel's BTF."""
    headers = source_file(vmlinux_files, "6.12-headers")
    image = source_file(vmlinux_files, "6.12-vmlinuz")
    with open(headers, "rb") as a, open(image, "rb") as b:
        assert btf_section(a.read()) == btf_section(b.read())


@pytest.mark.debian
def test_truncated_vmlinuz_is_a_clear_error(testdata, tmp_path):
    # synthetic: the real 6.12 image cut in half, and the whole image under a tiny limit
    with open(kernel(testdata, "6.12")["vmlinuz"], "rb") as f:
        data = f.read()
    with pytest.raises(VmlinuzError, match="truncated"):
        extract_vmlinux(data[: len(data) // 2])
    with pytest.raises(VmlinuzError, match="expands beyond 1 MiB"):
        extract_vmlinux(data, limit=1 << 20)
    path = tmp_path / "vmlinuz-cut"
    path.write_bytes(data[:4096])
    with pytest.raises(VmlinuzError, match=r"vmlinuz-cut: no compressed vmlinux"):
        read_vmlinux(str(path))


def test_not_a_vmlinuz_is_a_clear_error(tmp_path):
    # synthetic input
    with pytest.raises(VmlinuzError, match="no compressed vmlinux found"):
        extract_vmlinux(b"MZ" + bytes(range(256)) * 64)
    with pytest.raises(VmlinuzError, match="cannot read"):
        read_vmlinux(str(tmp_path / "missing"))


def test_compressed_elf_formats_and_a_bomb():
    # synthetic: stdlib-compressed fake ELF images, as extract-vmlinux would find them
    import bz2
    import gzip

    import zstandard

    elf = b"\x7fELF" + b"\x02\x01\x01" + bytes(1000)
    packed = {
        "gzip": gzip.compress(elf),
        "xz": lzma.compress(elf, check=lzma.CHECK_CRC32),
        "lzma": lzma.compress(elf, format=lzma.FORMAT_ALONE),
        "bzip2": bz2.compress(elf),
        "zstd": zstandard.ZstdCompressor().compress(elf),
    }
    for kind, blob in packed.items():
        # junk before the stream, the 4-byte size the kernel build appends after it
        assert extract_vmlinux(b"junk" * 100 + blob + b"\x00\x10\x00\x00") == elf, kind
    bomb = b"\x7fELF" + bytes(64 << 20)
    for blob in (gzip.compress(bomb), zstandard.ZstdCompressor().compress(bomb)):
        with pytest.raises(VmlinuzError, match="expands beyond 16 MiB"):
            extract_vmlinux(blob, limit=16 << 20)


@pytest.mark.skipif(shutil.which("lz4") is None, reason="lz4 tool missing")
def test_lz4_legacy_format(tmp_path):
    # synthetic: the kernel's lz4 format is lz4's "legacy" one (lz4 -l); python-lz4 is
    # optional, without it the error says what to install
    elf = b"\x7fELF" + bytes(range(256)) * 40000  # more than one 8 MiB block
    (tmp_path / "vmlinux").write_bytes(elf)
    vmlinux, packed_path = str(tmp_path / "vmlinux"), str(tmp_path / "vmlinux.lz4")
    subprocess.run(["lz4", "-l", "-q", "-f", vmlinux, packed_path], check=True)
    packed = (tmp_path / "vmlinux.lz4").read_bytes()
    try:
        import lz4.block  # noqa: F401
    except ImportError:
        with pytest.raises(VmlinuzError, match="install the python lz4 package"):
            extract_vmlinux(packed)
        return
    assert extract_vmlinux(packed + struct.pack("<I", len(elf))) == elf
    with pytest.raises(VmlinuzError, match="truncated"):
        extract_vmlinux(packed[:-100])


# -- struct module against pahole -------------------------------------------------------


@pytest.mark.debian
@needs_pahole
@pytest.mark.parametrize("source", SOURCES)
def test_struct_module_matches_pahole(vmlinux_files, source):
    path = source_file(vmlinux_files, source)
    layout = btf_from_file(path).struct_layout("module", f"btf:{path}")
    expected = pahole("module", path)
    assert layout.name == "module" and layout.source == f"btf:{path}"
    # every member: name, offset, size, bitfield position and C type
    assert_same(layout, expected)
    rows = {r.name: r for r in expected.rows}
    for name in KEY_MEMBERS:
        member = layout.member(name)
        assert member is not None, name
        assert (member.offset, member.size) == (rows[name].offset, rows[name].size), name
    assert layout.member("init").type_name == "int (*)(void)"
    assert layout.member("exit").type_name == "void (*)(void)"
    assert layout.member("name").type_name == "char[56]"
    # struct module has no anonymous members on these kernels: flat is the same
    flat = btf_from_file(path).struct_layout("module", "x", flatten=True)
    assert flat.members == layout.members


@pytest.mark.debian
def test_struct_module_facts(vmlinux_files):
    """What the kernels themselves say: 6.1 and 6.12 differ, the two 6.1 builds do not."""
    layouts = {
        source: btf_from_file(path).struct_layout("module", path)
        for source, path in vmlinux_files.items()
    }
    for source, layout in layouts.items():
        exit_ = layout.member("exit")
        init = layout.member("init")
        print(
            f"\n{source}: size {layout.size}, init at {init.offset}, exit at {exit_.offset}, "
            f"{len(layout.members)} members"
        )
    if {"6.1-a-vmlinuz", "6.1-b-vmlinuz"} <= layouts.keys():
        a, b = layouts["6.1-a-vmlinuz"], layouts["6.1-b-vmlinuz"]
        assert (a.size, a.members) == (b.size, b.members)
    if {"6.1-a-vmlinuz", "6.12-vmlinuz"} <= layouts.keys():
        old, new = layouts["6.1-a-vmlinuz"], layouts["6.12-vmlinuz"]
        assert old.size != new.size
        assert old.member("exit").offset != new.member("exit").offset


@pytest.mark.debian
@needs_pahole
def test_anonymous_members_and_bitfields_match_pahole(vmlinux_files):
    """struct sk_buff nests anonymous unions and structs three deep and has bitfields."""
    path = source_file(vmlinux_files, "6.12-headers")
    btf = btf_from_file(path)
    expected = pahole("sk_buff", path)
    nested = btf.struct_layout("sk_buff", path)
    assert_same(nested, expected)
    assert nested.members[0].name == "" and nested.members[0].type_name == "union {...}"
    flat = btf.struct_layout("sk_buff", path, flatten=True)
    assert_same(flat, expected, flat=True)
    cloned = flat.member("cloned")
    assert (cloned.bit_offset, cloned.bit_size) == (0, 1)
    assert flat.member("destructor").type_name == "void (*)(struct sk_buff *)"


# -- split BTF -------------------------------------------------------------------------


@pytest.fixture(scope="session")
def base_612(vmlinux_files) -> tuple[str, Btf]:
    path = source_file(vmlinux_files, "6.12-headers")
    return path, btf_from_file(path)


@pytest.mark.debian
@needs_pahole
@pytest.mark.parametrize("struct_name", ["fat_mount_options", "msdos_sb_info"])
def test_split_btf_of_a_612_module_matches_pahole(testdata, base_612, tmp_path, struct_name):
    """fat.ko defines these structs; msdos_sb_info refers to vmlinux's struct mutex."""
    base_path, base = base_612
    ko = os.path.join(kernel(testdata, "6.12")["modules"], "kernel/fs/fat/fat.ko.xz")
    btf = btf_from_file(ko, base)  # the .ko.xz read directly
    assert btf.start_id == base.type_count
    assert btf.start_str_off == base.header.str_len
    assert base.find_struct(struct_name) is None  # only the module defines it
    type_id = btf.find_struct(struct_name)
    assert type_id is not None and type_id >= btf.start_id
    layout = btf.struct_layout(struct_name, f"btf:{ko}")
    assert_same(layout, pahole(struct_name, module_copy(ko, tmp_path), base_path))


@pytest.mark.debian
def test_split_btf_refers_to_base_types(testdata, base_612):
    _path, base = base_612
    ko = os.path.join(kernel(testdata, "6.12")["modules"], "kernel/fs/fat/fat.ko.xz")
    btf = btf_from_file(ko, base)
    members = {m.name: m for m in btf.members(btf.find_struct("msdos_sb_info"))}
    lock = members["fat_lock"].type
    assert lock < btf.start_id and lock == base.find_struct("mutex")
    options = members["options"].type
    assert options >= btf.start_id and btf.name(options) == "fat_mount_options"


@pytest.mark.debian
@needs_pahole
def test_split_btf_of_a_61_module_matches_pahole(testdata, vmlinux_files):
    """6.1's in-tree modules are plain .ko; the base comes from the vmlinuz."""
    base_path = source_file(vmlinux_files, "6.1-a-vmlinuz")
    base = btf_from_file(base_path)
    ko = os.path.join(kernel(testdata, "6.1-a")["modules"], "kernel/fs/fat/fat.ko")
    btf = btf_from_elf(ko, base)
    for struct_name in ("fat_mount_options", "msdos_sb_info"):
        layout = btf.struct_layout(struct_name, ko)
        assert_same(layout, pahole(struct_name, ko, base_path))


@pytest.mark.debian
def test_split_btf_without_its_base_is_a_clear_error(testdata):
    ko = os.path.join(kernel(testdata, "6.1-a")["modules"], "kernel/lib/crc16.ko")
    with pytest.raises(BtfError, match=r"split BTF.*pass the vmlinux BTF as base"):
        btf_from_file(ko)


@pytest.mark.debian
def test_out_of_tree_module_btf_sits_on_the_headers_vmlinux(testdata, base_612):
    """Modules built against the 6.12 headers carry split BTF on the shipped vmlinux."""
    _path, base = base_612
    hello = os.path.join(testdata["built"]["6.12"], "hello.ko")
    if not os.path.exists(hello):
        pytest.skip("hello.ko not built")
    btf = btf_from_file(hello, base)
    assert btf.start_id == base.type_count
    for type_id in range(btf.start_id, btf.type_count):
        btf.type_name(type_id)  # every reference resolves, into the base or the module
        btf.type_size(type_id)
    assert btf.find_struct("module") == base.find_struct("module")


# -- API details on real BTF ---------------------------------------------------------------


@pytest.mark.debian
def test_lookup_and_sizes(base_612):
    _path, btf = base_612
    module = btf.find_struct("module")
    assert btf.find_struct("struct module") == module
    assert btf.find_struct("union module") is None
    assert btf.find_struct("no_such_struct_anywhere") is None
    assert btf.kind(module) == BTF_KIND_STRUCT
    assert btf.type_size(module) == btf.struct_layout(module, "x").size
    assert btf.ptr_size == 8
    # without the ELF class, the width of "long" tells the pointer size (libbpf's way)
    with open(_path, "rb") as f:
        raw = Btf.from_bytes(btf_section(f.read()))
    assert raw.ptr_size == 8
    assert raw.struct_layout("module", "x") == btf.struct_layout("module", "x")
    union_ids = btf.find_structs("union bpf_attr")
    assert union_ids and btf.kind(union_ids[0]) == BTF_KIND_UNION
    with pytest.raises(BtfError, match="no struct or union named 'no_such'"):
        btf.struct_layout("no_such", "x")


@pytest.mark.debian
def test_big_endian_btf_reads_the_same(base_612):
    """Synthetic: the real 6.12 BTF rewritten in big-endian byte order."""
    path, btf = base_612
    with open(path, "rb") as f:
        raw = btf_section(f.read())
    header = struct.unpack_from("<HBBIIIII", raw)
    hdr_len, type_off, type_len = header[3], header[4], header[5]
    types = array("I", raw[hdr_len + type_off : hdr_len + type_off + type_len])
    if sys.byteorder == "little":
        types.byteswap()
    swapped = bytearray(raw)
    struct.pack_into(">HBBIIIII", swapped, 0, *header)
    swapped[hdr_len + type_off : hdr_len + type_off + type_len] = types.tobytes()
    big = Btf.from_bytes(bytes(swapped))
    assert big.endian == ">"
    assert big.struct_layout("module", "x") == btf.struct_layout("module", "x")


# -- bad input ---------------------------------------------------------------------------


def make_btf(types: list[int], strings: bytes = b"\0", **header: int) -> bytes:
    """Synthetic little-endian BTF from raw type-section words."""
    type_sec = struct.pack(f"<{len(types)}I", *types)
    fields = {
        "magic": 0xEB9F,
        "version": 1,
        "flags": 0,
        "hdr_len": 24,
        "type_off": 0,
        "type_len": len(type_sec),
        "str_off": len(type_sec),
        "str_len": len(strings),
    }
    fields.update(header)
    return struct.pack("<HBBIIIII", *fields.values()) + type_sec + strings


def info(kind: int, vlen: int = 0, kind_flag: int = 0) -> int:
    return kind_flag << 31 | kind << 24 | vlen


# synthetic: one INT "int" and a struct s { int a; int b:3; }
GOOD = make_btf(
    [1, info(1), 4, 0x01000020, 5, info(4, 2, 1), 8, 7, 1, 0, 9, 1, 3 << 24 | 32],
    b"\0int\0s\0a\0b\0",
)


def test_synthetic_btf_reads():
    btf = Btf.from_bytes(GOOD)
    layout = btf.struct_layout("s", "synthetic")
    assert [(m.name, m.offset, m.size, m.bit_offset, m.bit_size) for m in layout.members] == [
        ("a", 0, 4, None, None),
        ("b", 4, 4, 0, 3),
    ]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "too short for a BTF header"),
        (b"\x7fELF" + bytes(60), "bad magic 7f45: not BTF"),
        (GOOD[:-1], "truncated: the string section ends"),
        (GOOD[:30], "truncated"),
        (make_btf([1, info(1), 4], b"\0int\0"), "truncated: type id 1 .INT"),
        (make_btf([0, info(25), 0]), "unknown BTF kind 25"),
        (make_btf([0, info(4, 3), 4, 0, 1, 0]), "runs past the end of the type section"),
        (make_btf([], version=2), "BTF version 2"),
        (make_btf([], hdr_len=8), "hdr_len 8 is smaller"),
        (make_btf([0, info(1)], type_len=6), "type_len 6 is not a multiple of 4"),
        (make_btf([], b"\0abc"), "does not end with NUL"),
        (make_btf([], b""), "empty string section"),
    ],
)
def test_bad_btf_is_a_clear_error(data, message):
    # synthetic inputs
    with pytest.raises(BtfError, match=message):
        Btf.from_bytes(data)


def test_bad_references_are_clear_errors():
    # synthetic: a const that refers to itself, a name past the string section, an id
    # past the last type
    loop = Btf.from_bytes(make_btf([0, info(10), 1]))
    with pytest.raises(BtfError, match="reference chain longer than 32"):
        loop.type_size(1)
    with pytest.raises(BtfError, match="nest too deep"):
        loop.type_name(1)
    bad_name = Btf.from_bytes(make_btf([99, info(4), 0]))
    with pytest.raises(BtfError, match="string offset 99 is beyond"):
        bad_name.name(1)
    dangling = Btf.from_bytes(make_btf([0, info(2), 7]))
    with pytest.raises(BtfError, match="type id 7 is out of range"):
        dangling.type_name(1)
    # a struct that holds itself as an anonymous member
    selfish = Btf.from_bytes(make_btf([3, info(4, 1), 4, 0, 1, 0], b"\0\0\0s\0"))
    with pytest.raises(BtfError, match="nest in a loop"):
        selfish.struct_layout("s", "x", flatten=True)


def test_non_btf_files_are_clear_errors(tmp_path):
    # synthetic files; /bin/sh is a real ELF without .BTF
    text = tmp_path / "notes.txt"
    text.write_text("hello, not BTF\n" * 100)
    with pytest.raises(BtfError, match=r"notes\.txt: not BTF, an ELF file"):
        btf_from_file(str(text))
    raw = tmp_path / "vmlinux.btf"
    raw.write_bytes(GOOD[:40])
    with pytest.raises(BtfError, match=r"vmlinux\.btf: truncated"):
        btf_from_file(str(raw))
    with pytest.raises(BtfError, match=r"no \.BTF section"):
        btf_from_file(os.path.realpath("/bin/sh"))
    with pytest.raises(BtfError, match="cannot read"):
        btf_from_file(str(tmp_path / "missing"))


@pytest.mark.debian
def test_damaged_module_btf_raises_only_btf_error(testdata, base_612):
    """Synthetic damage to a real module's BTF: random bytes changed, or the data cut.
    Whatever the damage, reading every type either works or raises BtfError."""
    _path, base = base_612
    ko = os.path.join(kernel(testdata, "6.12")["modules"], "kernel/fs/fat/fat.ko.xz")
    with lzma.open(ko) as f:
        elf = f.read()
    good = btf_section(elf)
    rng = random.Random(612)
    damaged = [good[:cut] for cut in range(0, len(good), 97)]
    for _ in range(300):
        data = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        damaged.append(bytes(data))
    errors = 0
    for data in damaged:
        try:
            btf = Btf.from_bytes(data, base)
            for type_id in range(btf.start_id, btf.type_count):
                btf.type_name(type_id)
                btf.type_size(type_id)
                if btf.kind(type_id) in (BTF_KIND_STRUCT, BTF_KIND_UNION):
                    btf.struct_layout(type_id, "x", flatten=True)
        except BtfError:
            errors += 1
    assert errors > len(damaged) // 4  # the damage was noticed, as BtfError


# -- speed -------------------------------------------------------------------------------


@pytest.mark.debian
@needs_pahole
@pytest.mark.parametrize("source", ["6.12-headers", "6.12-vmlinuz", "6.1-a-vmlinuz"])
def test_speed_against_pahole(vmlinux_files, source):
    """Printed, not asserted: load the BTF and lay out struct module, vs pahole."""
    path = source_file(vmlinux_files, source)
    runs = 3
    start = time.perf_counter()
    for _ in range(runs):
        btf_from_file(path).struct_layout("module", path)
    ours_s = (time.perf_counter() - start) / runs
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(["pahole", "-F", "btf", "-C", "module", path], capture_output=True)
    pahole_s = (time.perf_counter() - start) / runs
    print(
        f"\n{source}: abicheck {ours_s * 1000:.0f} ms, pahole {pahole_s * 1000:.0f} ms "
        f"(ratio {ours_s / pahole_s:.1f})"
    )
