"""The DWARF reader agrees with pahole, readelf and the BTF reader on real files.

Real data: the test modules tools/testdata.py builds against Debian's headers (with
CONFIG_DEBUG_INFO, so they carry DWARF), and the debug vmlinux of Debian's
linux-image-6.1.0-47-amd64-dbg that tools/fetch_dbg.py extracts. pahole reads the same
DWARF (``-F dwarf``); readelf shows the section and relocations the kernel's loader uses.
Only the bad-input tests damage data on purpose, and say how.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import struct
import subprocess
import time
from dataclasses import replace

import pytest
from conftest import CACHE, REPO, built, kernel
from test_btf import PaholeStruct, assert_same, parse_pahole

from abicheck.model import StructLayout
from abicheck.readers.btf import btf_from_file
from abicheck.readers.dwarf import DwarfError, ModuleTypes, module_types, vmlinux_struct
from abicheck.readers.elf import ElfImage

needs_pahole = pytest.mark.skipif(shutil.which("pahole") is None, reason="pahole missing")
needs_readelf = pytest.mark.skipif(shutil.which("readelf") is None, reason="readelf missing")

ROLES = ("6.1-a", "6.12")
DBG_RECORD = os.path.join(CACHE, "dbg", "dbg.json")


def pahole_dwarf(struct_name: str, path: str) -> PaholeStruct:
    res = subprocess.run(
        ["pahole", "-F", "dwarf", "-C", struct_name, path],
        capture_output=True,
        text=True,
        check=True,
    )
    # From DWARF pahole also prints alignment attributes (BTF has none); the parser
    # shared with test_btf would read "__attribute__" after an anonymous union as a name
    return parse_pahole(re.sub(r"\s*__attribute__\(\(__aligned__\(\d+\)\)\)", "", res.stdout))


def hello(testdata: dict, role: str) -> str:
    path = built(testdata, role, "hello.ko")
    if not os.path.exists(path):
        pytest.skip(f"{path}: not built")
    return path


def types_of(path: str) -> ModuleTypes:
    types = module_types(path)
    assert types is not None, f"{path}: no .debug_info"
    return types


# -- struct module of __this_module --------------------------------------------------------


@pytest.mark.debian
@needs_pahole
@pytest.mark.parametrize("role", ROLES)
def test_struct_module_matches_pahole(testdata, role):
    path = hello(testdata, role)
    layout = types_of(path).struct_module()
    assert layout is not None
    assert layout.name == "module" and layout.source == f"dwarf:{path}"
    # every member: name, offset, size, bitfield position and C type
    assert_same(layout, pahole_dwarf("module", path))
    assert layout.member("init").type_name == "int (*)(void)"
    assert layout.member("exit").type_name == "void (*)(void)"
    assert layout.member("name").type_name == "char[56]"
    assert layout.member("list").type_name == "struct list_head"


def readelf_section_size(path: str, name: str) -> int:
    out = subprocess.run(["readelf", "-SW", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        fields = line.replace("[ ", "[").split()
        if len(fields) > 6 and fields[1] == name:
            return int(fields[5], 16)  # [Nr] Name Type Address Off Size
    raise AssertionError(f"readelf shows no {name} in {path}")


def readelf_relocations(path: str, section: str) -> dict[str, int]:
    """symbol name -> r_offset of the relocations in ``section``."""
    out = subprocess.run(["readelf", "-rW", path], capture_output=True, text=True).stdout
    found, inside = {}, False
    for line in out.splitlines():
        if line.startswith("Relocation section"):
            inside = f"'{section}'" in line
        elif inside and re.match(r"^[0-9a-f]{16}\s", line):
            fields = line.split()
            found[fields[4]] = int(fields[0], 16)
    return found


@pytest.mark.debian
@needs_readelf
@pytest.mark.parametrize("role", ROLES)
def test_struct_module_matches_the_section_the_loader_reads(testdata, role):
    """sizeof(struct module) is the size of .gnu.linkonce.this_module, and init/exit sit
    where the relocations against init_module/cleanup_module write."""
    path = hello(testdata, role)
    layout = types_of(path).struct_module()
    assert layout.size == readelf_section_size(path, ".gnu.linkonce.this_module")
    relocations = readelf_relocations(path, ".rela.gnu.linkonce.this_module")
    assert layout.member("init").offset == relocations["init_module"]
    assert layout.member("exit").offset == relocations["cleanup_module"]
    print(
        f"\n{role}: struct module {layout.size} bytes, {len(layout.members)} members, "
        f"init at {layout.member('init').offset}, exit at {layout.member('exit').offset}"
    )


@pytest.mark.debian
def test_struct_module_drift_between_kernels(testdata):
    """The 6.1 builds agree with each other, 6.12 moved exit and grew the struct."""
    layouts = {
        role: types_of(hello(testdata, role)).struct_module()
        for role in ("6.1-a", "6.1-b", "6.1-a-rt", "6.1-a-cloud", "6.12")
    }
    base = layouts["6.1-a"]
    for role in ("6.1-b", "6.1-a-rt", "6.1-a-cloud"):
        assert (layouts[role].size, layouts[role].members) == (base.size, base.members), role
    assert layouts["6.12"].size != base.size
    assert layouts["6.12"].member("exit").offset != base.member("exit").offset


@pytest.mark.debian
@pytest.mark.parametrize("role", ROLES)
def test_struct_module_matches_the_kernels_btf(testdata, role):
    """A module built against a kernel's headers has that kernel's struct module."""
    vmlinuz = kernel(testdata, role).get("vmlinuz")
    if not vmlinuz or not os.path.exists(vmlinuz):
        pytest.skip(f"{role}: no vmlinuz")
    ours = types_of(hello(testdata, role)).struct_module()
    btf = btf_from_file(vmlinuz).struct_layout("module", "btf")
    assert ours.size == btf.size
    assert members(ours) == members(btf)


def members(layout: StructLayout) -> list[tuple]:
    return [(m.name, m.offset, m.size) for m in layout.members]


# -- other structs ------------------------------------------------------------------------


@pytest.mark.debian
@needs_pahole
@pytest.mark.parametrize(
    ("module", "struct_name"),
    [
        ("hello.ko", "list_head"),
        ("params_mod.ko", "kernel_param"),
        ("params_mod.ko", "kernel_param_ops"),
        ("params_mod.ko", "kparam_array"),
    ],
)
def test_other_structs_match_pahole(testdata, module, struct_name):
    path = built(testdata, "6.1-a", module)
    types = types_of(path)
    expected = pahole_dwarf(struct_name, path)
    layout = types.struct(struct_name)
    assert_same(layout, expected)
    assert types.structs()[f"struct {struct_name}"] == layout
    assert_same(types.struct(struct_name, flatten=True), expected, flat=True)


@pytest.mark.debian
def test_anonymous_union_of_kernel_param(testdata):
    """struct kernel_param keeps arg/str/arr in an anonymous union at offset 32."""
    types = types_of(built(testdata, "6.1-a", "params_mod.ko"))
    nested = types.struct("struct kernel_param")
    anonymous = [m for m in nested.members if m.name == ""]
    assert [(m.offset, m.size, m.type_name) for m in anonymous] == [(32, 8, "union {...}")]
    flat = types.struct("kernel_param", flatten=True)
    assert [(m.name, m.offset) for m in flat.members if m.offset == 32] == [
        ("arg", 32),
        ("str", 32),
        ("arr", 32),
    ]
    assert flat.member("str").type_name == "const struct kparam_string *"


@pytest.mark.debian
@needs_pahole
def test_bitfields_match_pahole(testdata):
    """struct task_struct (in hello.ko's DWARF through struct module) has bitfields."""
    path = hello(testdata, "6.1-a")
    layout = types_of(path).struct("task_struct")
    bitfields = [m for m in layout.members if m.bit_size is not None]
    assert len(bitfields) > 5
    assert_same(layout, pahole_dwarf("task_struct", path))


# -- used structs, source lines ------------------------------------------------------------


@pytest.mark.debian
def test_used_structs(testdata):
    hello_types = types_of(hello(testdata, "6.1-a"))
    used = hello_types.used_structs()
    assert "struct module" in used  # the type of __this_module, which the module defines
    assert used <= hello_types.structs().keys()
    # without following pointers struct module still counts, struct task_struct (reached
    # through pointers only) does not
    direct = hello_types.used_structs(follow_pointers=False)
    assert "struct module" in direct and "struct task_struct" not in direct
    assert direct < used
    params = types_of(built(testdata, "6.1-a", "params_mod.ko")).used_structs()
    # custom_set() takes a const struct kernel_param *; custom_ops is a kernel_param_ops
    assert {"struct kernel_param", "struct kernel_param_ops", "struct module"} <= params


def source_line(path: str, line: int) -> str:
    with open(path) as f:
        return f.read().splitlines()[line - 1]


@pytest.mark.debian
def test_decl_line(testdata):
    path = hello(testdata, "6.1-a")
    types = types_of(path)
    build_dir = os.path.join(os.path.dirname(path), "work", "hello")
    # init_module is the alias module_init() makes of hello_init: its definition
    file, line = types.decl_line("init_module")
    assert file == os.path.join(build_dir, "hello.c")
    assert types.decl_line("hello_init") == (file, line)
    assert "hello_init(void)" in source_line(file, line)
    # the copy of hello.c the module was built from is the repository's
    with open(os.path.join(REPO, "tests", "modules", "hello", "hello.c")) as f:
        assert "hello_init(void)" in f.read().splitlines()[line - 1]
    file, line = types.decl_line("cleanup_module")
    assert "hello_exit(void)" in source_line(file, line)
    file, line = types.decl_line("__this_module")
    assert file == os.path.join(build_dir, "hello.mod.c")
    assert "__this_module" in source_line(file, line)
    file, line = types.decl_line("struct module")
    assert file.endswith("include/linux/module.h")
    assert source_line(file, line).startswith("struct module {")
    assert types.decl_line("no_such_symbol") is None


# -- inputs --------------------------------------------------------------------------------


@pytest.mark.debian
@pytest.mark.parametrize("suffix", [".xz", ".gz", ".zst"])
def test_compressed_modules_read_the_same(testdata, suffix):
    path = hello(testdata, "6.1-a")
    if not os.path.exists(path + suffix):
        pytest.skip(f"{path}{suffix}: not built")
    expected = types_of(path).struct_module()
    compressed = types_of(path + suffix).struct_module()
    assert (compressed.size, compressed.members) == (expected.size, expected.members)
    with open(path + suffix, "rb") as f:
        from_bytes = types_of(f.read()).struct_module()  # type: ignore[arg-type]
    assert from_bytes.members == expected.members


@pytest.mark.debian
@pytest.mark.skipif(shutil.which("objcopy") is None, reason="objcopy missing")
@pytest.mark.parametrize("method", ["zlib", "zstd"])
def test_compressed_debug_sections(testdata, tmp_path, method):
    """SHF_COMPRESSED sections, as CONFIG_DEBUG_INFO_COMPRESSED builds them: hello.ko
    rewritten here with objcopy --compress-debug-sections."""
    path = hello(testdata, "6.1-a")
    out = tmp_path / f"hello_{method}.ko"
    res = subprocess.run(
        ["objcopy", f"--compress-debug-sections={method}", path, str(out)],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        pytest.skip(f"this objcopy cannot compress with {method}: {res.stderr.strip()}")
    _image, sec = debug_info(out.read_bytes())
    assert sec.sh_flags & 0x800  # SHF_COMPRESSED
    expected, types = types_of(path), types_of(str(out))
    assert types.struct_module().members == expected.struct_module().members
    assert types.structs().keys() == expected.structs().keys()
    assert types.decl_line("init_module") == expected.decl_line("init_module")


@pytest.mark.debian
def test_module_without_debug_info_is_none(testdata):
    # tools/testdata.py made it with objcopy --strip-debug
    assert module_types(built(testdata, "6.1-a", "hello_noversions.ko")) is None


@pytest.mark.debian
def test_unreadable_files_are_dwarf_errors(testdata, tmp_path):
    # the first 4 KiB of hello.ko (tools/testdata.py): the section table is cut off
    truncated = built(testdata, "6.1-a", "hello_truncated.ko")
    with pytest.raises(DwarfError, match=r"hello_truncated\.ko: not a readable ELF file"):
        module_types(truncated)
    with pytest.raises(DwarfError, match="no such file"):
        module_types(str(tmp_path / "missing.ko"))
    text = tmp_path / "text.ko"
    text.write_text("not a module\n")
    with pytest.raises(DwarfError, match=r"text\.ko: not an ELF file"):
        module_types(str(text))


# -- damaged DWARF -------------------------------------------------------------------------


def debug_info(data: bytes):
    image = ElfImage(data, len(data))
    (sec,) = image.find(".debug_info")
    return image, sec


def patched(tmp_path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def ask_everything(types: ModuleTypes) -> None:
    types.struct_module()
    types.structs(flatten=True)
    types.used_structs()
    types.decl_line("init_module")


@pytest.mark.debian
def test_damaged_debug_info_is_a_clear_error(testdata, tmp_path):
    """hello.ko with bytes patched here, each a way .debug_info gets damaged."""
    with open(hello(testdata, "6.1-a"), "rb") as f:
        data = f.read()
    image, sec = debug_info(data)
    header_at = image.header.e_shoff + sec.index * image.header.e_shentsize

    # the section header's sh_size halved: .debug_info cut short, its relocations not
    cut = bytearray(data)
    struct.pack_into("<Q", cut, header_at + 32, sec.sh_size // 2)
    path = patched(tmp_path, "cut.ko", bytes(cut))
    with pytest.raises(DwarfError, match=r"cut\.ko: .*beyond \.debug_info.*truncated"):
        types_of(path).struct_module()

    # the first unit's length says it runs 2 GiB past the section's end
    long_unit = bytearray(data)
    struct.pack_into("<I", long_unit, sec.sh_offset, 0x7FFFFFF0)
    path = patched(tmp_path, "long_unit.ko", bytes(long_unit))
    with pytest.raises(DwarfError, match=r"long_unit\.ko: compilation unit at 0x0 .*truncated"):
        types_of(path).structs()

    # 64 bytes of DIEs overwritten with 0xff: abbreviation codes that do not exist
    garbage = bytearray(data)
    garbage[sec.sh_offset + 0x40 : sec.sh_offset + 0x80] = b"\xff" * 64
    path = patched(tmp_path, "garbage.ko", bytes(garbage))
    types = types_of(path)
    with pytest.raises(DwarfError, match=r"garbage\.ko: corrupt .*abbreviation code"):
        ask_everything(types)
    with pytest.raises(DwarfError):  # and it stays broken: no half answers later
        types.struct_module()

    # the DWARF version of the first unit patched to 9
    version = bytearray(data)
    struct.pack_into("<H", version, sec.sh_offset + 4, 9)
    path = patched(tmp_path, "version.ko", bytes(version))
    with pytest.raises(DwarfError, match=r"version\.ko: .*version.*9"):
        types_of(path).struct_module()


@pytest.mark.debian
def test_random_damage_never_escapes_as_another_exception(testdata):
    """1 to 8 random bytes of hello.ko's .debug_info changed, 40 times (seeded): every
    question either answers or raises DwarfError, and none hangs."""
    with open(hello(testdata, "6.1-a"), "rb") as f:
        data = f.read()
    _image, sec = debug_info(data)
    rng = random.Random(20240611)
    errors = 0
    for _ in range(40):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            damaged[sec.sh_offset + rng.randrange(sec.sh_size)] = rng.randrange(256)
        try:
            ask_everything(types_of(bytes(damaged)))  # type: ignore[arg-type]
        except DwarfError as e:
            assert str(e).startswith("<module bytes>: ")
            errors += 1
    assert errors > 10  # the damage was noticed, as DwarfError


# -- the debug vmlinux ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def dbg_vmlinux() -> dict:
    if not os.path.exists(DBG_RECORD):
        pytest.skip("debug vmlinux not fetched: run `python tools/fetch_dbg.py`")
    with open(DBG_RECORD) as f:
        record = json.load(f)
    if not os.path.exists(record["vmlinux"]):
        pytest.skip(f"{record['vmlinux']}: missing, run `python tools/fetch_dbg.py --force`")
    return record


@pytest.mark.debian
@pytest.mark.slow
@needs_pahole
def test_vmlinux_struct_module_matches_pahole(dbg_vmlinux):
    path = dbg_vmlinux["vmlinux"]
    layout = vmlinux_struct(path)
    assert layout.name == "module" and layout.source == f"dwarf:{path}"
    assert_same(layout, pahole_dwarf("module", path))
    assert vmlinux_struct(path, "struct module") == layout


@pytest.mark.debian
@pytest.mark.slow
def test_vmlinux_struct_module_matches_btf(testdata, dbg_vmlinux):
    """The dbg package's DWARF and the image's BTF describe the same kernel."""
    roles = [
        role
        for role, k in testdata["kernels"].items()
        if k["release"] == dbg_vmlinux["release"] and k.get("vmlinuz")
    ]
    if not roles:
        pytest.skip(f"no vmlinuz of {dbg_vmlinux['release']} in the test data")
    btf = btf_from_file(kernel(testdata, roles[0])["vmlinuz"])
    # pahole made the BTF from every CU's DWARF and deduplicated it: one struct module
    # means every CU defines it alike, so the first CU's definition is the kernel's
    assert len(btf.find_structs("struct module")) == 1
    expected = btf.struct_layout("module", "btf")
    layout = vmlinux_struct(dbg_vmlinux["vmlinux"])
    assert layout.size == expected.size
    assert members(layout) == members(expected)
    # and the module built against these headers agrees
    module = types_of(hello(testdata, roles[0])).struct_module()
    assert members(module) == members(layout)


@pytest.mark.debian
@pytest.mark.slow
@pytest.mark.parametrize("flatten", [False, True])
@pytest.mark.parametrize("struct_name", ["module", "task_struct", "kernel_param"])
def test_btf_and_dwarf_build_one_model(testdata, dbg_vmlinux, struct_name, flatten):
    """Both readers only build abicheck.ctypes_model nodes; naming, flattening and
    bitfield units are the model's, so the same kernel's BTF and DWARF agree exactly:
    every member's name, offset, size, C type name and bit position."""
    roles = [
        role
        for role, k in testdata["kernels"].items()
        if k["release"] == dbg_vmlinux["release"] and k.get("vmlinuz")
    ]
    if not roles:
        pytest.skip(f"no vmlinuz of {dbg_vmlinux['release']} in the test data")
    btf = btf_from_file(kernel(testdata, roles[0])["vmlinuz"])
    from_btf = btf.struct_layout(struct_name, "same", flatten=flatten)
    from_dwarf = vmlinux_struct(dbg_vmlinux["vmlinux"], struct_name, flatten=flatten)
    assert replace(from_dwarf, source="same") == from_btf
    if struct_name == "task_struct":  # its sched_* flags: pahole-style bitfield units
        assert any(m.bit_size for m in from_btf.members)


@pytest.mark.debian
@pytest.mark.slow
def test_vmlinux_other_structs_and_errors(dbg_vmlinux, tmp_path):
    path = dbg_vmlinux["vmlinux"]
    param = vmlinux_struct(path, "kernel_param", flatten=True)
    assert [m.name for m in param.members][-3:] == ["arg", "str", "arr"]
    # a name no DIE has fails at once, without walking the units
    start = time.perf_counter()
    with pytest.raises(DwarfError, match="no complete definition of struct no_such_struct"):
        vmlinux_struct(path, "struct no_such_struct")
    assert time.perf_counter() - start < 10
    with pytest.raises(DwarfError, match="cannot read"):
        vmlinux_struct(str(tmp_path / "missing"))


@pytest.mark.debian
@pytest.mark.slow
@needs_pahole
def test_vmlinux_speed_against_pahole(dbg_vmlinux):
    """Printed: struct module from a 600 MB debug vmlinux, vs pahole on the same file.

    Asserted only far from a full walk of its DWARF, which takes many minutes."""
    path, runs = dbg_vmlinux["vmlinux"], 5
    vmlinux_struct(path)  # the same page cache for both
    start = time.perf_counter()
    for _ in range(runs):
        vmlinux_struct(path)
    ours_s = (time.perf_counter() - start) / runs
    start = time.perf_counter()
    for _ in range(runs):
        subprocess.run(["pahole", "-F", "dwarf", "-C", "module", path], capture_output=True)
    pahole_s = (time.perf_counter() - start) / runs
    print(
        f"\nvmlinux struct module: abicheck {ours_s * 1000:.0f} ms, pahole {pahole_s * 1000:.0f} "
        f"ms (ratio {ours_s / pahole_s:.1f})"
    )
    assert ours_s < 30


@pytest.mark.debian
def test_module_speed(testdata):
    """Printed: every question once, per built test module."""
    lines = []
    for name in ("hello.ko", "params_mod.ko", "dep_consumer.ko"):
        path = built(testdata, "6.1-a", name)
        start = time.perf_counter()
        types = types_of(path)
        types.struct_module()
        first = time.perf_counter() - start
        types.structs()
        types.used_structs()
        types.decl_line("init_module")
        total = time.perf_counter() - start
        lines.append(f"{name}: struct module {first * 1000:.0f} ms, all {total * 1000:.0f} ms")
        assert total < 5
    print("\n" + "\n".join(lines))
