"""The rule table: one TOML per rule, one check per rule, docs for every rule, and the
data ships inside the wheel."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tomllib
import zipfile

import pytest
from conftest import REPO, sample, sample_kernel

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


def test_severity_follows_effect_and_is_not_repeated():
    for rule in ruledata.all_rules().values():
        assert ruledata.SEVERITY_OF_EFFECT[rule.effect] == rule.severity, rule.id
        with open(rule.path, "rb") as f:
            assert "severity" not in tomllib.load(f), f"{rule.id}: severity follows from effect"


def test_rule_data_names_what_identifies_and_what_is_exclusive():
    rules = ruledata.all_rules()
    assert [r.id for r in rules.values() if r.exclusive] == ["CF001"]
    assert rules["MV001"].identity == ("symbol",)
    for rule in rules.values():
        assert rule.title, rule.id
        assert all(isinstance(k, str) and k for k in rule.identity), rule.id


def test_readme_table_is_the_rules_table():
    spec = importlib.util.spec_from_file_location("rules_table", REPO + "/tools/rules_table.py")
    assert spec and spec.loader
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    with open(os.path.join(REPO, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    start = readme.index("\n", readme.index("<!-- rules table")) + 1
    end = readme.index("<!-- end of rules table -->")
    assert readme[start:end] == tool.table(), "README out of date: python tools/rules_table.py"


NEW_RULE = """
id = "ZZ001"
name = "demo-rule"
title = "a rule added by a test"
category = "taint"
effect = "warn"
stage = "info"
identity = ["greeting"]
summary = "A demonstration."
message = "{module} says {greeting}"
fix = "Nothing to fix."
kernel_says = ""

[docs]
what = "A rule written as one TOML file and one function, nowhere else."
why = "To prove that is all a rule needs."
"""

NEW_CHECK = """
from abicheck.checks import check


@check("ZZ001")
def demo(ctx):
    # an evidence key named like a control keyword stays evidence
    yield ctx.finding(evidence={"greeting": "hi", "effect": "refuse"}, order=(1,))
"""


def test_a_new_rule_is_one_toml_and_one_function(tmp_path):
    from abicheck import engine, fingerprint
    from abicheck.context import RunContext
    from abicheck.model import Effect, Severity
    from abicheck.readers.module import read_module
    from abicheck.targets.profile import target_from_profile

    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "ZZ001.toml").write_text(NEW_RULE)
    (tmp_path / "checks").mkdir()
    (tmp_path / "checks" / "zz_demo.py").write_text(NEW_CHECK)
    ruledata.EXTRA_RULE_DIRS.append(str(tmp_path / "rules"))
    checks.__path__.append(str(tmp_path / "checks"))
    ruledata.all_rules.cache_clear()
    try:
        assert set(checks.load_all()) == set(ruledata.all_rules()) - ENGINE_RULES
        module = read_module(sample("modules", "hello.ko"))
        target = target_from_profile(sample_kernel("6.1.0-47-amd64"))
        result = engine.check_module(module, target, RunContext.of([module]))
        (f,) = [f for f in result.findings if f.rule == "ZZ001"]
        assert (f.name, f.category, f.effect, f.severity) == (
            "demo-rule",
            "taint",
            Effect.WARN,
            Severity.WARNING,
        )
        assert f.message == "hello says hi"
        assert f.evidence == {"greeting": "hi", "effect": "refuse"}
        assert fingerprint.identity(f) == {"greeting": "hi"}
        assert result.verdict.value != "refused"
    finally:
        ruledata.EXTRA_RULE_DIRS.remove(str(tmp_path / "rules"))
        checks.__path__.remove(str(tmp_path / "checks"))
        checks.REGISTRY.pop("ZZ001", None)
        sys.modules.pop("abicheck.checks.zz_demo", None)
        ruledata.all_rules.cache_clear()
        ruledata.rule.cache_clear()


def test_a_finding_outside_a_check_is_an_error():
    from abicheck.context import CheckContext, RunContext
    from abicheck.readers.module import read_module
    from abicheck.targets.profile import target_from_profile

    module = read_module(sample("modules", "hello.ko"))
    ctx = CheckContext(module, target_from_profile(sample_kernel("6.1.0-47-amd64")), RunContext())
    with pytest.raises(RuntimeError, match="outside a registered check"):
        ctx.finding()


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
