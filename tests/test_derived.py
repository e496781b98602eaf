"""Rules whose failing case is a real module damaged the way real mistakes damage them:
each test derives its file from a committed sample at test time (objcopy, strip, or a
same-length byte patch, said in the test) and checks the passing twin too."""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from conftest import finding, rules_of, run_cli, sample, sample_kernel

from abicheck.readers.elf import ElfImage

K47 = sample_kernel("6.1.0-47-amd64")
HELLO = sample("modules", "hello.ko")
PROVIDER = sample("modules", "dep_provider.ko")
CONSUMER = sample("modules", "dep_consumer.ko")

needs_binutils = pytest.mark.skipif(shutil.which("objcopy") is None, reason="binutils missing")


def check(*paths: str, kernel: str = K47) -> list[dict]:
    res = run_cli(["check", "--format", "json", *paths, "--kernel", kernel])
    assert res.exit_code in (0, 1), res.stderr
    return res.json()["results"]


def patched(tmp_path, source: str, old: bytes, new: bytes, name: str) -> str:
    data = open(source, "rb").read()  # noqa: SIM115 - small real sample
    assert len(old) == len(new) and data.count(old) >= 1
    out = tmp_path / name
    out.write_bytes(data.replace(old, new, 1))
    return str(out)


def section(path: str, name: str):
    data = open(path, "rb").read()  # noqa: SIM115
    return next(s for s in ElfImage(data, len(data)).sections if s.name == name)


@needs_binutils
def test_el003_stripped_of_its_symbol_table(tmp_path):
    out = tmp_path / "hello_stripall.ko"
    subprocess.run(["strip", "--strip-all", HELLO, "-o", str(out)], check=True)
    (r,) = check(str(out))
    assert r["verdict"] == "refused"
    f = finding(r, "EL003")
    assert f["kernel_says"] == "hello: module has no symbols (stripped?)"
    assert "EL003" not in rules_of(check(HELLO)[0])


@needs_binutils
def test_el004_without_struct_module(tmp_path):
    out = tmp_path / "hello_nothis.ko"
    subprocess.run(
        [
            "objcopy",
            "--remove-section",
            ".gnu.linkonce.this_module",
            "--remove-section",
            ".rela.gnu.linkonce.this_module",
            HELLO,
            str(out),
        ],
        check=True,
    )
    (r,) = check(str(out))
    assert r["verdict"] == "refused"
    assert finding(r, "EL004")["kernel_says"] == "hello: No module found in object"
    on_612 = check(str(out), kernel=sample_kernel("6.12.107+deb12-amd64"))[0]
    assert finding(on_612, "EL004")["kernel_says"] == (
        "module hello: Exactly one .gnu.linkonce.this_module section must exist."
    )


def test_el005_no_name_in_modinfo(tmp_path):
    # "name=hello" renamed to "xame=hello": the kernel falls back to struct module's name
    path = patched(tmp_path, HELLO, b"\0name=hello\0", b"\0xame=hello\0", "hello_noname.ko")
    (r,) = check(path)
    f = finding(r, "EL005")
    assert f["severity"] == "warning" and f["evidence"]["fallback"] == "hello"
    assert r["verdict"] == "loads-tainted"


def test_vm002_no_vermagic_is_force_loaded_on_debian(tmp_path):
    path = patched(tmp_path, HELLO, b"\0vermagic=", b"\0xermagic=", "hello_novermagic.ko")
    (r,) = check(path)
    f = finding(r, "VM002")
    assert f["taint"] == "F" and f["kernel_says"] == "hello: bad vermagic: kernel tainted."
    assert r["verdict"] == "loads-tainted"
    assert "F" in [t["letter"] for t in r["taints"]]


@needs_binutils
def test_mv005_built_without_modversions(tmp_path):
    # a module built without CONFIG_MODVERSIONS: no __versions, no "modversions " word
    blank = patched(
        tmp_path,
        HELLO,
        b"mod_unload modversions \0",
        b"mod_unload " + b" " * 12 + b"\0",
        "blank.ko",
    )
    out = tmp_path / "hello_nomodversions.ko"
    subprocess.run(["objcopy", "--remove-section=__versions", blank, str(out)], check=True)
    (r,) = check(str(out))
    f = finding(r, "MV005")
    assert f["evidence"]["module_side"] == "without" and f["evidence"]["kernel_side"] == "with"
    assert r["verdict"] == "refused"
    assert "MV005" not in rules_of(check(HELLO)[0])


@needs_binutils
def test_mv006_exports_without_crcs(tmp_path):
    out = tmp_path / "provider_nocrc.ko"
    subprocess.run(["objcopy", "--remove-section", "__kcrctab_gpl", PROVIDER, str(out)], check=True)
    (r,) = check(str(out))
    f = finding(r, "MV006")
    assert f["evidence"]["count"] == 2 and f["taint"] == "F"
    assert f["kernel_says"] == "dep_provider: no versions for exported symbols: kernel tainted."
    assert "MV006" not in rules_of(check(PROVIDER)[0])


@needs_binutils
def test_mv007_versions_not_whole_records(tmp_path):
    versions = section(HELLO, "__versions")
    with open(HELLO, "rb") as f:
        data = f.read()[versions.sh_offset : versions.sh_offset + versions.sh_size]
    blob = tmp_path / "versions.bin"
    blob.write_bytes(data + b"\0" * 10)  # ten stray bytes after the last record
    out = tmp_path / "hello_badversions.ko"
    subprocess.run(
        ["objcopy", "--update-section", f"__versions={blob}", HELLO, str(out)], check=True
    )
    (r,) = check(str(out))
    f = finding(r, "MV007")
    assert (f["evidence"]["tail"], f["evidence"]["records"]) == (10, 4)
    assert r["verdict"] == "loads-tainted"  # the kernel ignores the tail


def test_sy002_symbol_in_a_section_that_does_not_exist(tmp_path):
    # st_shndx of init_module's definition set to 0x0fff, past e_shnum
    data = bytearray(open(HELLO, "rb").read())  # noqa: SIM115
    img = ElfImage(bytes(data), len(data))
    symtab = next(s for s in img.sections if s.sh_type == 2)
    strtab = img.sections[symtab.sh_link]
    names = bytes(data[strtab.sh_offset : strtab.sh_offset + strtab.sh_size])
    for i in range(symtab.sh_size // 24):
        off = symtab.sh_offset + i * 24
        st_name, _info, _other, shndx = struct.unpack_from("<IBBH", data, off)
        if names[st_name:].split(b"\0", 1)[0] == b"init_module" and shndx:
            struct.pack_into("<H", data, off + 6, 0x0FFF)
            break
    out = tmp_path / "hello_badshndx.ko"
    out.write_bytes(bytes(data))
    (r,) = check(str(out))
    f = finding(r, "SY002")
    assert f["kernel_says"] == (
        "hello: Symbol init_module has an invalid section index 4095 (max 30)"
    )  # 31 sections
    assert r["verdict"] == "refused"


def test_gp002_gpl_user_of_a_proprietary_modules_symbols(tmp_path):
    # the provider relicensed "GPL" -> "BSD" (same length) after the build
    proprietary = patched(tmp_path, PROVIDER, b"license=GPL\0", b"license=BSD\0", "dep_provider.ko")
    provider_then_consumer = check(proprietary, CONSUMER)
    consumer = provider_then_consumer[1]
    assert consumer["verdict"] == "refused"
    f = finding(consumer, "GP002")
    assert f["kernel_says"] == (
        "dep_consumer: module using GPL-only symbols uses symbols "
        "abicheck_provider_value from proprietary module dep_provider."
    )
    assert "GP002" not in rules_of(check(PROVIDER, CONSUMER)[1])


def test_rl001_relocation_type_the_loader_does_not_know(tmp_path):
    # the first R_X86_64_PLT32 (4) of .rela.init.text turned into R_X86_64_GOTPCREL (9)
    data = bytearray(open(HELLO, "rb").read())  # noqa: SIM115
    rela = section(HELLO, ".rela.init.text")
    for i in range(rela.sh_size // 24):
        if data[rela.sh_offset + i * 24 + 8] == 4:
            data[rela.sh_offset + i * 24 + 8] = 9
            break
    out = tmp_path / "hello_gotpcrel.ko"
    out.write_bytes(bytes(data))
    (r,) = check(str(out))
    f = finding(r, "RL001")
    assert f["kernel_says"] == "module: hello: Unknown rela relocation: 9"
    assert f["evidence"]["section"] == ".rela.init.text"
    assert r["verdict"] == "refused"


def test_in002_target_without_module_symvers(tmp_path):
    # a real profile with its exports removed: a headers dir lacking Module.symvers
    import gzip
    import json

    doc = json.loads(gzip.decompress(open(K47, "rb").read()))  # noqa: SIM115
    doc["exports"] = None
    doc["btf"] = None
    target = tmp_path / "no-symvers.json"
    target.write_text(json.dumps(doc))
    (r,) = check(HELLO, kernel=str(target))
    f = finding(r, "IN002")
    assert "Module.symvers" in f["message"] and f["severity"] == "warning"
    assert "IN002" not in rules_of(check(HELLO)[0])
