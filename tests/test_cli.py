"""The command line: exit codes, shorthand, formats, and bad input as one clear line.

Bad inputs here are synthetic on purpose (a text file, an empty file, a corrupt xz
stream, a decompression bomb) or derived from a real module by truncation.
"""

from __future__ import annotations

import gzip
import lzma
import os

import pytest
from conftest import run_abicheck_process, run_cli, sample, sample_kernel

from abicheck import __version__

K47 = sample_kernel("6.1.0-47-amd64")
K56 = sample_kernel("6.1.0-56-amd64")
HELLO = sample("modules", "hello.ko")
with open(HELLO, "rb") as _f:
    HELLO_BYTES = _f.read()


def test_version():
    res = run_cli(["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"abicheck, version {__version__}"


def test_exit_zero_when_only_taints():
    res = run_cli(["check", HELLO, "--kernel", K47])
    assert res.exit_code == 0
    assert "verdict: loads-tainted" in res.stdout


def test_exit_one_on_error_finding():
    res = run_cli(["check", HELLO, "--kernel", K56])
    assert res.exit_code == 1
    assert "MV004 module-layout-mismatch" in res.stdout
    assert "For more information: abicheck rule MV004" in res.stdout


def test_check_is_the_default_command():
    assert (
        run_cli([HELLO, "--kernel", K56]).stdout
        == run_cli(["check", HELLO, "--kernel", K56]).stdout
    )


def test_json_top_level():
    doc = run_cli(["check", HELLO, "--kernel", K47, "--format", "json"]).json()
    assert list(doc) == ["version", "tool", "targets", "results"]
    assert doc["version"] == 1
    assert doc["tool"]["name"] == "abicheck"
    (target,) = doc["targets"]
    assert {"id", "release", "source"} <= set(target)
    assert target["id"].startswith("6.1.0-47-amd64@")
    (result,) = doc["results"]
    assert list(result)[:6] == ["module", "kernel", "target", "verdict", "taints", "assumptions"]
    f = result["findings"][0]
    assert {
        "rule",
        "name",
        "category",
        "severity",
        "message",
        "kernel_says",
        "evidence",
        "fix",
    } <= set(f)


def test_output_file(tmp_path):
    out = tmp_path / "report.json"
    res = run_cli(["check", HELLO, "-k", K47, "--format", "json", "-o", str(out)])
    assert res.exit_code == 0 and res.stdout == ""
    assert '"verdict": "loads-tainted"' in out.read_text()


@pytest.mark.parametrize(
    "make,problem",
    [
        (lambda p: p.mkdir(), "is a directory with no module (.ko, .ko.gz, .ko.xz, .ko.zst) in it"),
        (lambda p: None, "no such file"),
        (
            lambda p: p.write_text("hello, not a module\n"),
            "not an ELF file: the file does not start with \\x7fELF",
        ),
        (lambda p: p.write_bytes(b""), "empty file"),
        (lambda p: p.write_bytes(lzma.compress(HELLO_BYTES)[:300]), "corrupt xz data"),
        (lambda p: p.write_bytes(b"\x28\xb5\x2f\xfd" + b"garbage" * 10), "corrupt zstd data"),
    ],
)
def test_bad_module_is_one_line_and_others_still_checked(tmp_path, make, problem):
    bad = tmp_path / "bad.ko"
    make(bad)
    res = run_cli(["check", str(bad), HELLO, "--kernel", K47, "--format", "json"])
    assert res.exit_code == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith(f"abicheck: error: {bad}: {problem}")
    doc = res.json()
    assert [r["verdict"] for r in doc["results"]] == ["unreadable", "loads-tainted"]
    assert doc["results"][0]["findings"][0]["rule"] == "IN001"


def test_compression_bomb_is_refused(tmp_path):
    bomb = tmp_path / "bomb.ko.gz"
    bomb.write_bytes(gzip.compress(b"\0" * (3 << 20)))  # 3 MiB of zeros in 3 KiB
    res = run_cli(["check", str(bomb), "--kernel", K47, "--max-module-size", "1"])
    assert res.exit_code == 2
    assert "gzip data expands beyond 1 MiB; refusing to decompress" in res.stderr


def test_truncated_module_is_refused_with_the_kernels_message(tmp_path):
    cut = tmp_path / "hello_truncated.ko"
    cut.write_bytes(HELLO_BYTES[:4096])  # derived from a real module
    res = run_cli(["check", str(cut), "--kernel", K47, "--format", "json"])
    assert res.exit_code == 1
    (r,) = res.json()["results"]
    assert r["verdict"] == "refused"
    f = r["findings"][0]
    assert f["rule"] == "EL002"
    assert f["kernel_says"] == "Invalid ELF section header overflow"
    assert "truncated" in f["message"]


def test_missing_headers_dir_is_one_line(tmp_path):
    missing = tmp_path / "linux-headers-nope"
    res = run_cli(["check", HELLO, "--kernel", str(missing), "--kernel", K47, "--format", "json"])
    assert res.exit_code == 2
    assert res.stderr.strip() == (
        f"abicheck: error: {missing}: no such kernel headers directory or profile"
    )
    # the good target is still checked
    assert [r["kernel"] for r in res.json()["results"]] == ["6.1.0-47-amd64"]


def test_directory_without_config_is_not_a_headers_dir(tmp_path):
    res = run_cli(["check", HELLO, "--kernel", str(tmp_path)])
    assert res.exit_code == 2
    assert "no .config or include/config/auto.conf" in res.stderr


def test_directory_of_modules_is_walked():
    doc = run_cli(
        ["check", sample("intree", "6.1.0-47-amd64"), "-k", K47, "--format", "json"]
    ).json()
    assert len(doc["results"]) == 5


def test_rule_documentation():
    res = run_cli(["rule", "MV001"])
    assert res.exit_code == 0
    assert res.stdout.startswith("MV001 (modversion-crc-mismatch)")
    assert "disagrees about version of symbol" in res.stdout
    assert run_cli(["rule", "modversion-crc-mismatch"]).stdout == res.stdout
    bad = run_cli(["rule", "XX999"])
    assert bad.exit_code == 2 and "unknown rule 'XX999'" in bad.stderr


def test_no_traceback_from_a_real_process(tmp_path):
    bad = tmp_path / "x.ko"
    bad.write_text("nope")
    proc = run_abicheck_process(["check", str(bad), "--kernel", K47])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_running_kernel_is_the_default(tmp_path):
    # whatever this machine runs, the target is the running kernel and the output says so
    res = run_cli(["check", HELLO, "--format", "json"])
    assert res.exit_code in (0, 1, 2)
    if res.exit_code != 2:
        assert res.json()["targets"][0]["release"] == os.uname().release
    else:
        assert res.stderr.startswith(f"abicheck: error: running kernel {os.uname().release}")
