"""abicheck as a gate: project configuration, rule selection, baseline, exit codes,
fleets, the upgrade check and the public API, on the committed real samples."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import run_cli, sample, sample_kernel

import abicheck
from abicheck.settings import rule_filter

K47 = sample_kernel("6.1.0-47-amd64")
K56 = sample_kernel("6.1.0-56-amd64")
HELLO = sample("modules", "hello.ko")
NS = sample("modules", "ns_noimport.ko")


def rules(doc: dict, index: int = 0) -> list[str]:
    return [f["rule"] for f in doc["results"][index]["findings"]]


# -- selection -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "select,ignore,rule,on",
    [
        (["ALL"], [], "MV001", True),
        (["ALL"], ["MV"], "MV001", False),
        (["ALL"], ["MV"], "SY001", True),
        (["MV"], ["MV001"], "MV001", False),  # the exact ID is more specific
        (["MV001"], ["MV"], "MV001", True),
        (["M"], ["MV0"], "MV001", False),  # the longer prefix wins
        (["MV0"], ["M"], "MV001", True),
        (["ALL"], ["modversion-crc-mismatch"], "MV001", False),  # kebab names
        (["ALL"], ["modversions"], "MV004", False),  # categories
        (["modversions"], ["ALL"], "MV004", True),
        (["MV001"], ["MV001"], "MV001", False),  # a tie: ignore wins
    ],
)
def test_longest_selector_wins(select, ignore, rule, on):
    assert rule_filter(select, ignore)(rule) is on


def test_ignore_hides_findings_but_not_the_verdict():
    res = run_cli(["check", HELLO, "-k", K56, "--format", "json", "--ignore", "MV004"])
    (r,) = res.json()["results"]
    assert r["verdict"] == "refused"  # the kernel does not read our settings
    assert "MV004" not in rules(res.json())
    assert r["suppressed"] == ["MV004"]
    assert res.exit_code == 0  # no visible error finding left


def test_select_only_one_family():
    doc = run_cli(["check", NS, "-k", K47, "--format", "json", "--select", "NS,signature"]).json()
    assert rules(doc) == ["SG001", "NS001"]


def test_fail_on_and_exit_zero():
    assert run_cli(["check", HELLO, "-k", K47]).exit_code == 0
    assert run_cli(["check", HELLO, "-k", K47, "--fail-on", "warning"]).exit_code == 1
    assert run_cli(["check", HELLO, "-k", K56, "--exit-zero"]).exit_code == 0


def test_unknown_rule_selector_is_a_usage_error():
    res = run_cli(["check", HELLO, "-k", K47, "--ignore", "XX9"])
    assert res.exit_code == 2
    assert "unknown rule selector 'XX9'" in res.stderr


# -- project configuration --------------------------------------------------------------------


def project(tmp_path, text: str, name: str = "pyproject.toml"):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / name).write_text(text)
    os.makedirs(tmp_path / "build", exist_ok=True)
    shutil.copy(HELLO, tmp_path / "build" / "hello.ko")
    shutil.copy(NS, tmp_path / "build" / "ns_noimport.ko")
    return tmp_path


def test_pyproject_settings_apply(tmp_path, monkeypatch):
    root = project(
        tmp_path,
        f"""
[project]
name = "driver"
[tool.abicheck]
kernels = ["{K47}"]
ignore = ["TN001", "signature"]
fail-on = "error"
format = "json"
[tool.abicheck.per-module-ignores]
"build/ns_*.ko" = ["NS001"]
""",
    )
    monkeypatch.chdir(root)
    res = run_cli(["check", "build"])
    doc = res.json()
    assert [r["module"] for r in doc["results"]] == ["build/hello.ko", "build/ns_noimport.ko"]
    assert [rules(doc, i) for i in (0, 1)] == [[], []]
    assert res.exit_code == 0
    # the command line beats the file
    res = run_cli(["check", "build", "--select", "NS"])
    assert rules(res.json(), 1) == []  # per-module ignore still applies
    res = run_cli(["check", "build", "--select", "NS", "--isolated", "-k", K47, "--format", "json"])
    assert rules(res.json(), 1) == ["NS001"]
    assert res.exit_code == 1


def test_abicheck_toml(tmp_path, monkeypatch):
    root = project(tmp_path, f'kernels = ["{K56}"]\nselect = ["MV004"]\n', "abicheck.toml")
    monkeypatch.chdir(root)
    res = run_cli(["check", "build/hello.ko", "--format", "json"])
    assert rules(res.json()) == ["MV004"]


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[tool.abicheck\n", "invalid TOML"),
        ("[tool.abicheck]\nselekt = ['MV']\n", "unknown setting 'selekt'"),
        ("[tool.abicheck]\nignore = ['NOPE1']\n", "unknown rule selector 'NOPE1'"),
        ("[tool.abicheck]\nfail-on = 'fatal'\n", "fail-on must be one of"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(tmp_path, monkeypatch, text, problem):
    root = project(tmp_path, text)
    monkeypatch.chdir(root)
    res = run_cli(["check", "build/hello.ko", "-k", K47])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and problem in res.stderr
    assert res.stderr.startswith(f"abicheck: error: {root / 'pyproject.toml'}: ")


def test_unknown_format_is_a_usage_error():
    res = run_cli(["check", HELLO, "-k", K47, "--format", "yaml"])
    assert res.exit_code == 2
    assert "Invalid value for '--format'" in res.stderr


# -- baseline -----------------------------------------------------------------------------------


def test_baseline_records_then_reports_only_new(tmp_path, monkeypatch):
    root = project(tmp_path, "[tool.abicheck]\n")
    monkeypatch.chdir(root)
    base = root / "baseline.json"
    first = run_cli(
        ["check", "build/hello.ko", "-k", K56, "--baseline", str(base), "--format", "json"]
    )
    assert first.exit_code == 0  # recorded, so adopted
    assert "recorded" in first.stderr
    recorded = json.loads(base.read_text())["fingerprints"]
    assert len(recorded) == 3  # MV004, TN001, SG001
    again = run_cli(
        ["check", "build/hello.ko", "-k", K56, "--baseline", str(base), "--format", "json"]
    )
    assert again.exit_code == 0 and rules(again.json()) == []
    new = run_cli(
        [
            "check",
            "build/hello.ko",
            "build/ns_noimport.ko",
            "-k",
            K56,
            "--baseline",
            str(base),
            "--format",
            "json",
        ]
    )
    assert new.exit_code == 1
    assert rules(new.json(), 0) == []
    assert "MV004" in rules(new.json(), 1)


def test_fingerprints_survive_a_moved_checkout(tmp_path, monkeypatch):
    prints = []
    for where in ("a", "b"):
        root = project(tmp_path / where, "[tool.abicheck]\n")
        monkeypatch.chdir(root)
        run_cli(["check", "build/hello.ko", "-k", K56, "--baseline", str(root / "b.json")])
        prints.append(json.loads((root / "b.json").read_text())["fingerprints"])
    assert prints[0] == prints[1]


# -- fleets, upgrade, API ----------------------------------------------------------------------


def test_directory_of_profiles_is_a_fleet():
    res = run_cli(["check", HELLO, "-k", sample("kernels")])
    assert "verdicts" in res.stdout  # the matrix
    doc = run_cli(["check", HELLO, "-k", sample("kernels"), "--format", "json"]).json()
    assert sorted(t["release"] for t in doc["targets"]) == [
        "6.1.0-47-amd64",
        "6.1.0-47-arm64",
        "6.1.0-47-rt-amd64",
        "6.1.0-56-amd64",
        "6.12.107+deb12-amd64",
        "6.12.107+deb12-arm64",
    ]
    # a fleet may mix architectures: an x86_64 module on an arm64 kernel is EL001
    arm = [r for r in doc["results"] if r["kernel"].endswith("-arm64")]
    assert [r["verdict"] for r in arm] == ["refused", "refused"]
    assert all(r["findings"][0]["rule"] == "EL001" for r in arm)


def test_upgrade_checks_extra_and_dkms_modules(tmp_path):
    rel = "6.1.0-47-amd64"
    updates = tmp_path / "lib" / "modules" / rel / "updates" / "dkms"
    dkms = tmp_path / "var" / "lib" / "dkms" / "ns" / "1.0" / rel / "x86_64" / "module"
    updates.mkdir(parents=True)
    dkms.mkdir(parents=True)
    shutil.copy(HELLO, updates / "hello.ko")
    shutil.copy(NS, dkms / "ns_noimport.ko")
    res = run_cli(
        ["upgrade", "--from", rel, "--root", str(tmp_path), "--to", K56, "--format", "json"]
    )
    assert res.exit_code == 1
    doc = res.json()
    assert [os.path.basename(r["module"]) for r in doc["results"]] == ["hello.ko", "ns_noimport.ko"]
    assert [r["verdict"] for r in doc["results"]] == ["refused", "refused"]
    assert "2 of 2 module(s) installed for 6.1.0-47-amd64 will not work with 6.1.0-56" in res.stderr
    ok = run_cli(["upgrade", "--from", rel, "--root", str(tmp_path), "--to", K47])
    assert ok.exit_code == 1  # ns_noimport is refused by its own kernel too


def test_public_api():
    results = abicheck.check([HELLO, NS], [K47, abicheck.load_target(K56)])
    assert [(r.kernel, r.verdict.value) for r in results] == [
        ("6.1.0-47-amd64", "loads-tainted"),
        ("6.1.0-47-amd64", "refused"),
        ("6.1.0-56-amd64", "refused"),
        ("6.1.0-56-amd64", "refused"),
    ]
    assert results[1].findings[-1].rule == "NS001"


def test_rule_list_as_json():
    doc = json.loads(run_cli(["rule", "--all", "--format", "json"]).stdout)
    ids = [r["id"] for r in doc]
    assert ids == sorted(ids) and "MV001" in ids and "LY002" in ids
    mv = next(r for r in doc if r["id"] == "MV001")
    assert mv["name"] == "modversion-crc-mismatch" and mv["docs"]["how_to_fix"]


def test_identical_profiles_are_one_kernel(tmp_path):
    """A fleet directory of copies of one profile (same release, same digest) is one
    kernel: one column saying how many files name it, one result, one SARIF run."""
    for i in range(3):
        shutil.copy(K47, tmp_path / f"copy{i}.json.gz")
    shutil.copy(K56, tmp_path / "other.json.gz")
    text = run_cli(["check", HELLO, "-k", str(tmp_path)])
    assert "6.1.0-47-amd64 ×3" in text.stdout
    assert "summary: 1 module(s) × 2 kernel(s): 1 loads-tainted, 1 refused" in text.stdout
    doc = run_cli(["check", HELLO, "-k", str(tmp_path), "--format", "json"]).json()
    assert len(doc["targets"]) == len(doc["results"]) == 2
    (copies,) = [t for t in doc["targets"] if t["release"] == "6.1.0-47-amd64"]
    assert sorted(os.path.basename(p) for p in [copies["source"], *copies["also_named"]]) == [
        "copy0.json.gz",
        "copy1.json.gz",
        "copy2.json.gz",
    ]
    sarif = json.loads(run_cli(["check", HELLO, "-k", str(tmp_path), "--format", "sarif"]).stdout)
    assert len(sarif["runs"]) == 2
