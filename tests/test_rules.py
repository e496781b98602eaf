"""The rule table: one TOML per rule, one check per rule, docs for every rule, and the
data ships inside the wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO

from abicheck import checks, ruledata
from abicheck.context import render

ENGINE_RULES = {"IN001"}  # made by the engine for unreadable input, not by a check


def test_every_rule_has_a_check_and_every_check_a_rule():
    rules = set(ruledata.all_rules())
    registered = set(checks.load_all())
    assert registered == rules - ENGINE_RULES


def test_rule_data_is_complete():
    for rule in ruledata.all_rules().values():
        assert rule.docs.get("what"), rule.id
        assert rule.docs.get("why"), rule.id
        assert rule.summary and rule.fix, rule.id
        assert rule.stage in ruledata.stage_order("6.1"), rule.id
        assert rule.stage in ruledata.stage_order("6.12"), rule.id
        if rule.effect.value == "refuse" and rule.id not in ENGINE_RULES:
            assert rule.errno, f"{rule.id} refuses but names no errno"
        if rule.taint:
            assert rule.taint in ruledata.loader_data()["taints"], rule.id


def test_severity_follows_effect():
    from abicheck.context import SEVERITY_OF_EFFECT

    for rule in ruledata.all_rules().values():
        assert SEVERITY_OF_EFFECT[rule.effect] == rule.severity, rule.id


def test_get_rule_by_id_or_name():
    assert ruledata.get_rule("mv001").name == "modversion-crc-mismatch"
    assert ruledata.get_rule("unknown-symbol").id == "SY001"
    assert ruledata.get_rule("nope") is None


def test_templates_fail_loudly_on_missing_evidence():
    with pytest.raises(KeyError, match="symbol"):
        render("{symbol} gone", {})


@pytest.mark.slow
def test_wheel_ships_the_rules_and_an_installed_copy_reads_them(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            REPO,
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("kbuild_abicheck-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "abicheck/rules/MV001.toml" in names
    assert "abicheck/rules/loader.toml" in names
    assert "abicheck/rules/arch/x86_64.toml" in names
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", str(wheel)],
        check=True,
    )
    out = subprocess.run(
        [str(py), "-m", "abicheck", "rule", "MV001"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        check=True,
    ).stdout
    assert out.startswith("MV001 (modversion-crc-mismatch)")
    where = subprocess.run(
        [str(py), "-c", "import abicheck.ruledata as r; print(r.rules_dir())"],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        check=True,
    )
    assert os.path.join("site-packages", "abicheck", "rules") in where.stdout
