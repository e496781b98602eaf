"""Hostile kernel-side inputs (issue 10): profiles, the headers' preprocessor, kernel
images and compressed data. A bad input is one line naming the file and the problem,
exit 2, and the other kernels' results are still reported.

Every malformed file is made here, at test time, from a real sample (a saved Debian
profile, a real module, a real vmlinuz); their names say "synthetic".
"""

from __future__ import annotations

import base64
import bz2
import gzip
import json
import lzma
import os
import shutil
import subprocess
from collections.abc import Callable

import pytest
import zstandard

from abicheck.errors import ModuleReadError, TargetError
from abicheck.readers import compressed
from abicheck.readers.cheader import Preprocessor, PreprocessorError
from abicheck.readers.vmlinuz import VmlinuzError, extract_vmlinux
from abicheck.targets.profile import read_profile_json
from tests.conftest import kernel, run_cli, sample, sample_kernel

GOOD = sample_kernel("6.1.0-47-amd64")
# built against 6.1.0-47 with debug info: the checks read the kernel's BTF for it
DWARF_MODULE = sample("drift", "drift_struct-6.1-debug-mutexes.ko")
HELLO = sample("modules", "hello.ko")


def _profile() -> dict:
    with gzip.open(GOOD) as f:
        return json.load(f)


def _write(tmp_path, name: str, raw: bytes) -> str:
    path = tmp_path / f"synthetic-{name}.json.gz"
    path.write_bytes(gzip.compress(raw, mtime=0))
    return str(path)


def _check_with_bad(bad: str, module: str = HELLO):
    """The module against the bad profile and the good one, JSON on stdout."""
    return run_cli(["check", "--format", "json", module, "--kernel", bad, "--kernel", GOOD])


def _assert_rejected(res, bad: str, field: str) -> None:
    assert res.exit_code == 2, res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("abicheck: error:")]
    assert len(errors) == 1, res.stderr
    assert bad in errors[0] and field in errors[0], errors[0]
    assert "Traceback" not in res.stderr
    # the good kernel's result is still there, and only it
    assert {r["kernel"] for r in res.json()["results"]} == {"6.1.0-47-amd64"}


def _set(path: str, value: object) -> Callable[[dict], None]:
    def edit(d: dict) -> None:
        *parents, last = path.split(".")
        for p in parents:
            d = d[p]
        d[last] = value

    return edit


def _drop(key: str) -> Callable[[dict], None]:
    return lambda d: d.pop(key)


WRONG_TYPES = {
    "release": _set("release", 61),
    "digest": _set("digest", ["x"]),
    "source": _drop("source"),
    "arch": _set("arch", None),
    "version": _set("version", "6.1.0"),
    "config": _set("config", []),
    "exports.crc": lambda d: d["exports"]["crc"].__setitem__(3, "0xdeadbeef"),
    "exports.name": lambda d: d["exports"]["name"].__setitem__(0, 7),
    "exports.gpl_only": lambda d: _set("exports.gpl_only", "2" * len(d["exports"]["name"]))(d),
    "exports.owner": lambda d: d["exports"]["owner"].__setitem__(0, 10**6),
    "exports.namespace": _set("exports.namespace", {}),
    "struct_module.members": _set("struct_module.members", [["state", "0", 4, "enum"]]),
    "struct_module.size": _set("struct_module.size", -1),
    "module_h": _set("module_h", [["state"]]),
    "btf.data": _set("btf.data", 12),
    "notes": _set("notes", [1, 2]),
}


@pytest.mark.parametrize("field", sorted(WRONG_TYPES))
def test_profile_field_of_wrong_type(tmp_path, field):
    d = _profile()
    WRONG_TYPES[field](d)
    bad = _write(tmp_path, field, json.dumps(d).encode())
    res = _check_with_bad(bad)
    _assert_rejected(res, bad, f"profile field '{field}'")


def test_profile_with_empty_config_is_malformed_not_cf001(tmp_path):
    d = _profile()
    d["config"] = {}
    bad = _write(tmp_path, "empty-config", json.dumps(d).encode())
    res = _check_with_bad(bad)
    _assert_rejected(res, bad, "profile field 'config'")
    assert "CF001" not in res.stdout


def test_profile_nested_200000_deep(tmp_path):
    text = json.dumps(_profile())
    deep = text[:-1] + ', "notes": ' + "[" * 200_000 + "]" * 200_000 + "}"
    bad = _write(tmp_path, "deep", deep.encode())
    _assert_rejected(_check_with_bad(bad), bad, "nested too deeply")


def test_profile_with_5000_digit_integer(tmp_path):
    text = json.dumps(_profile())
    assert '"version": [6, 1, ' in text
    huge = text.replace('"version": [6, 1, ', '"version": [6, 1' + "9" * 5000 + ", ", 1)
    bad = _write(tmp_path, "huge-int", huge.encode())
    _assert_rejected(_check_with_bad(bad), bad, "integer too long")


def test_profile_integer_past_64_bits(tmp_path):
    d = _profile()
    d["struct_module"]["size"] = 1 << 70
    bad = _write(tmp_path, "wide-int", json.dumps(d).encode())
    _assert_rejected(_check_with_bad(bad), bad, "profile field 'struct_module.size'")


def _with_btf(raw: bytes) -> dict:
    d = _profile()
    d["btf"]["data"] = base64.b64encode(gzip.compress(raw, mtime=0)).decode()
    return d


def _real_btf() -> bytes:
    return gzip.decompress(base64.b64decode(_profile()["btf"]["data"]))


@pytest.mark.parametrize(
    "name, corrupt",
    [
        ("header", lambda b: b[:8] + b"\xff" * 16 + b[24:]),
        ("magic", lambda b: b"\x00\x00" + b[2:]),
        ("cut", lambda b: b[: len(b) // 3]),
        ("types", lambda b: b[:24] + b"\xff" * 4096 + b[24 + 4096 :]),
    ],
)
def test_profile_corrupt_btf_with_a_dwarf_module(tmp_path, name, corrupt):
    # the BTF is decoded lazily, during the checks of a module with debug info
    bad = _write(tmp_path, f"btf-{name}", json.dumps(_with_btf(corrupt(_real_btf()))).encode())
    res = _check_with_bad(bad, DWARF_MODULE)
    if res.exit_code != 2:
        # a corruption the BTF reader skips over (types it never needs) is not an error,
        # but both kernels must then have a result
        assert res.exit_code in (0, 1) and "Traceback" not in res.stderr
        assert len(res.json()["results"]) == 2
        return
    _assert_rejected(res, bad, "profile field 'btf.data'")


def test_profile_btf_not_base64(tmp_path):
    d = _profile()
    d["btf"]["data"] = "!!not base64"
    bad = _write(tmp_path, "btf-base64", json.dumps(d).encode())
    _assert_rejected(_check_with_bad(bad, DWARF_MODULE), bad, "profile field 'btf.data'")


def test_profile_decompression_is_bounded(tmp_path):
    bomb = tmp_path / "synthetic-bomb.json.gz"
    bomb.write_bytes(gzip.compress(b" " * (4 << 20)))
    with pytest.raises(TargetError, match=r"synthetic-bomb\.json\.gz: decompresses beyond 1 MiB"):
        read_profile_json(str(bomb), limit=1 << 20)
    assert read_profile_json(GOOD)["release"] == "6.1.0-47-amd64"


# -- the headers' C preprocessor ---------------------------------------------------------

PP_CASES = [
    ("010", 8),  # octal
    ("0x10 + 010 + 10", 34),
    ("08", PreprocessorError),
    ("1 << -1", 0),  # GCC: a negative count shifts the other way
    ("-1 >> 70", -1),
    ("1 << 63 < 0", 1),  # intmax_t wraps
    ("1 << 100000000000", 0),
    ("-1 < 0u", 0),  # -1 converted to uintmax_t
    ("~0u > 0", 1),
    ("18446744073709551615 == -1", 1),
    ("18446744073709551616", PreprocessorError),
    ("(-9223372036854775807 - 1) / -1", -(1 << 63)),
    ("7 / -2", -3),
    ("-7 % 2", -1),
    ("0 && 1 / 0", 0),
    ("1 / 0", PreprocessorError),
    ("(" * 50_000 + "1" + ")" * 50_000, PreprocessorError),
    ("!" * 50_001 + "1", 0),
    ("(1 ? -1 : 0u) > 0", 1),
]


@pytest.mark.parametrize("expr, expected", PP_CASES, ids=[c[0][:24] for c in PP_CASES])
def test_preprocessor_if(expr, expected):
    pp = Preprocessor([])
    if expected is PreprocessorError:
        with pytest.raises(PreprocessorError):
            pp.evaluate(expr)
    else:
        assert pp.evaluate(expr) == expected


def test_preprocessor_strings():
    pp = Preprocessor([], {"S": r'"a\x41\101\n" "b"', "X": r'"\x"'})
    assert pp.string("S") == "aAA\nb"
    with pytest.raises(PreprocessorError, match="no following hex digits"):
        pp.string("X")


def test_preprocessor_macro_bombs():
    doubling = {f"A{i + 1}": f"A{i} A{i}" for i in range(60)} | {"A0": "1"}
    with pytest.raises(PreprocessorError, match="macro expansion beyond"):
        Preprocessor([], doubling).evaluate("A60")
    chain = {f"C{i + 1}": f"C{i}" for i in range(5000)} | {"C0": "1"}
    with pytest.raises(PreprocessorError, match="nested more than"):
        Preprocessor([], chain).evaluate("C5000")
    assert Preprocessor([], {"C1": "C0", "C0": "7"}).evaluate("C1") == 7


def test_preprocessor_include_loop(tmp_path):
    (tmp_path / "a.h").write_text('#include "b.h"\n#include "b.h"\n')
    (tmp_path / "b.h").write_text('#include "a.h"\n#include "a.h"\n')
    with pytest.raises(PreprocessorError):
        Preprocessor([str(tmp_path)]).include("a.h")


# -- compressed data -----------------------------------------------------------------------


def _tool(name: str, *args: str) -> Callable[[bytes], bytes]:
    def run(data: bytes) -> bytes:
        if shutil.which(name) is None:
            pytest.skip(f"no {name} command")
        return subprocess.run([name, *args], input=data, capture_output=True, check=True).stdout

    return run


COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress,
    "bzip2": bz2.compress,
    "xz": lzma.compress,
    "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE),
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    "lz4": _tool("lz4", "-l", "-q", "-c"),  # the kernel's lz4 is lz4's legacy format
}


@pytest.mark.parametrize("kind", sorted(COMPRESSORS))
def test_compressions_round_trip(kind):
    with open(HELLO, "rb") as f:
        real = f.read()
    packed = COMPRESSORS[kind](real)
    assert compressed.inflate(kind, packed, 1 << 20) == real
    with pytest.raises(compressed.TooBig):
        compressed.inflate(kind, packed, len(real) - 1)
    assert compressed.inflate(kind, packed, 4, partial=True) == real[:4]
    with pytest.raises(compressed.DecodeErrors):
        compressed.inflate(kind, packed[: len(packed) // 2], 1 << 20)


def test_lzo_round_trip():
    lzo = pytest.importorskip("lzo", reason="python-lzo (the optional 'lzo' extra)")
    if shutil.which("lzop") is None:
        pytest.skip("no lzop command")
    with open(HELLO, "rb") as f:
        real = f.read()
    packed = subprocess.run(["lzop", "-c"], input=real, capture_output=True, check=True).stdout
    assert lzo and compressed.inflate("lzo", packed, 1 << 20) == real


def test_module_bomb_is_refused_at_the_limit(tmp_path, monkeypatch):
    bomb = tmp_path / "synthetic-bomb.ko.zst"
    bomb.write_bytes(zstandard.ZstdCompressor().compress(bytes(8 << 20)))
    monkeypatch.setattr(compressed, "_STEP", 64 << 10)
    with pytest.raises(
        ModuleReadError, match=r"synthetic-bomb\.ko\.zst: zstd data expands beyond 1 MiB"
    ) as e:
        compressed.read_module_bytes(str(bomb), limit=1 << 20)
    # raised outside the decoder's except blocks: no traceback keeps its buffers alive
    assert e.value.__context__ is None
    raw = compressed.read_module_bytes(str(bomb), limit=8 << 20)
    assert raw.compression == "zstd" and len(raw.data) == 8 << 20


# -- kernel images ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_vmlinux(testdata) -> bytes:
    with open(kernel(testdata, "6.1-a")["vmlinuz"], "rb") as f:
        return extract_vmlinux(f.read())


@pytest.mark.debian
def test_lz4_vmlinuz_from_a_real_kernel(tmp_path, real_vmlinux, testdata):
    packed = COMPRESSORS["lz4"](real_vmlinux)
    # the kernel build appends the decompressed size as le32
    image = packed + len(real_vmlinux).to_bytes(4, "little")
    assert extract_vmlinux(image) == real_vmlinux
    # one --kernel whose --vmlinux cannot be read; the other kernel keeps its result
    bad = tmp_path / "synthetic-vmlinuz-lz4-cut"
    bad.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(VmlinuzError):
        extract_vmlinux(bad.read_bytes())
    res = run_cli(
        [
            *("check", "--format", "json", HELLO, "--kernel", GOOD, "--vmlinux", str(bad)),
            *("--kernel", sample_kernel("6.1.0-56-amd64")),
        ]
    )
    assert res.exit_code == 2 and "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("abicheck: error:")]
    assert len(errors) == 1 and str(bad) in errors[0], res.stderr
    assert {r["kernel"] for r in res.json()["results"]} == {"6.1.0-56-amd64"}
    assert os.path.basename(str(bad)).startswith("synthetic")


def test_large_decompressions_take_the_runs_gate(monkeypatch):
    """Past LARGE_FROM bytes a decompression holds the lock the runner shares between its
    workers, so bombs expand one at a time whatever -j (measured: 4 zstd bombs of 3 GiB
    among 44 real modules peak at 156 MiB summed over the process tree at -j 4, 274 MiB at
    -j 8, where each worker holding 128 MiB at once summed to 1.2 GiB)."""
    from abicheck.readers import compressed

    events: list[str] = []

    class Gate:
        def acquire(self) -> None:
            events.append("acquire")

        def release(self) -> None:
            events.append("release")

    monkeypatch.setattr(compressed, "LARGE_FROM", 1 << 20)
    compressed.set_large_gate(Gate())
    try:
        small = gzip.compress(b"\0" * (512 << 10))
        assert len(compressed.inflate("gzip", small, 64 << 20)) == 512 << 10
        assert events == []
        big = gzip.compress(b"\0" * (16 << 20))
        assert len(compressed.inflate("gzip", big, 64 << 20)) == 16 << 20
        assert events == ["acquire", "release"]
        events.clear()
        with pytest.raises(compressed.TooBig):
            compressed.inflate("gzip", big, 8 << 20)
        assert events == ["acquire", "release"]  # released on the error path too
    finally:
        compressed.set_large_gate(None)
