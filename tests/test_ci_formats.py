"""CI formats at scale (issue 12): what GitHub code scanning, GitHub Actions and JUnit
consumers accept and show, checked on real modules and profiles.

- SARIF: GitHub's limits ("SARIF support for code scanning", "SARIF results exceed one
  or more limits", docs.github.com): 25 000 results per run uploaded, 5 000 shown; the
  schema in tests/data/sarif-schema-2.1.0.json.
- JUnit: the Jenkins xUnit plugin's junit-10.xsd (tests/data/junit-10.xsd, source in
  the file).
- GitHub Actions: 10 annotations per type per step; the job summary file.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace

import jsonschema
import pytest
import xmlschema
from conftest import REPO, run_cli, sample, sample_kernel

from abicheck.context import Assumptions
from abicheck.model import Result, Severity
from abicheck.reporters import github, junit, sarif
from abicheck.runner import RunOptions, run_checks
from abicheck.targets import load_target

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
K47, K56 = "6.1.0-47-amd64", "6.1.0-56-amd64"


@pytest.fixture(scope="module")
def real_run():
    """Debian's own in-tree modules (info findings: SG003, DP001) and the out-of-tree
    samples (errors, warnings) against two real kernel profiles."""
    intree = sample("intree", K47)
    modules = sorted(os.path.join(intree, f) for f in os.listdir(intree))
    modules += sorted(
        sample("modules", f) for f in os.listdir(sample("modules")) if f.endswith(".ko")
    )
    targets = [load_target(sample_kernel(r)) for r in (K47, K56)]
    return run_checks(modules, targets, RunOptions(Assumptions(), 1 << 30)).results, targets


@pytest.fixture(scope="module")
def sarif_validator():
    with open(os.path.join(DATA, "sarif-schema-2.1.0.json"), encoding="utf-8") as f:
        schema = json.load(f)
    return jsonschema.Draft4Validator(
        schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )


@pytest.fixture(scope="module")
def junit_schema():
    return xmlschema.XMLSchema(os.path.join(DATA, "junit-10.xsd"))


def _valid(validator, doc) -> None:
    errors = sorted(validator.iter_errors(doc), key=str)
    assert not errors, errors[0]


def _levels(doc) -> Counter[str]:
    return Counter(res["level"] for run in doc["runs"] for res in run["results"])


def _infos(results) -> int:
    return sum(f.severity is Severity.INFO for r in results for f in r.findings)


# --- SARIF ---------------------------------------------------------------------------------


def test_sarif_leaves_notes_out_unless_asked(real_run, sarif_validator, capsys):
    results, targets = real_run
    infos = _infos(results)
    assert infos > 0, "the in-tree samples should bring info findings"

    default = json.loads(sarif.report(results, targets, project_root=REPO))
    _valid(sarif_validator, default)
    assert _levels(default)["note"] == 0 and _levels(default)["error"] > 0
    omitted = sum(run["properties"]["omitted"]["notes"] for run in default["runs"])
    assert omitted == infos
    texts = [
        n["message"]["text"]
        for run in default["runs"]
        for n in run["invocations"][0]["toolExecutionNotifications"]
    ]
    assert all("--sarif-notes" in t for t in texts)
    assert "note-level results left out; --sarif-notes includes them" in capsys.readouterr().err

    asked = json.loads(sarif.report(results, targets, project_root=REPO, notes=True))
    _valid(sarif_validator, asked)
    assert _levels(asked)["note"] == infos
    assert all("invocations" not in run for run in asked["runs"])
    assert capsys.readouterr().err == ""
    # --fail-on info fails the run on them, so the report shows them
    failing = json.loads(sarif.report(results, targets, project_root=REPO, fail_on="info"))
    assert _levels(failing)["note"] == infos


def test_sarif_lists_only_referenced_rules(real_run):
    results, targets = real_run
    for notes in (False, True):
        (doc,) = sarif.documents(results, targets, project_root=REPO, notes=notes)
        for run in doc["runs"]:
            rules = run["tool"]["driver"]["rules"]
            assert [r["id"] for r in rules] == sorted({res["ruleId"] for res in run["results"]})
            for res in run["results"]:
                assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        ids = [run["automationDetails"]["id"] for run in doc["runs"]]
        assert ids == [f"abicheck/{K47}/", f"abicheck/{K56}/"]


def test_sarif_has_no_file_uris_for_modules_outside_the_root(real_run, sarif_validator):
    results, targets = real_run
    root = os.path.join(REPO, "tests")  # every module lies outside it
    doc = json.loads(sarif.report(results, targets, project_root=root, notes=True))
    _valid(sarif_validator, doc)
    for run in doc["runs"]:
        bases = run["originalUriBaseIds"]
        assert bases["%SRCROOT%"]["uri"] == f"file://{root}/"
        assert bases["MODULEDIR"]["uri"] == f"file://{sample()}/"
        for res in run["results"]:
            where = res["locations"][0]["physicalLocation"]["artifactLocation"]
            assert where["uriBaseId"] == "MODULEDIR" and not where["uri"].startswith("file:")
            assert where["uri"].startswith(("intree/", "modules/"))


def test_synthetic_6000_findings_are_cut_to_githubs_limit(real_run, sarif_validator, capsys):
    """A synthetic results list: one real result's findings copied to 6 000 (3 000
    errors, 3 000 warnings), past the 5 000 results per run GitHub keeps."""
    results, targets = real_run
    base = next(r for r in results if r.kernel == K56 and r.findings)
    model = base.findings[0]
    findings = tuple(
        replace(
            model,
            severity=Severity.WARNING if i % 2 else Severity.ERROR,
            evidence={**model.evidence, "synthetic": i},
            message=f"synthetic finding {i}",
        )
        for i in range(6000)
    )
    synthetic = [replace(base, findings=findings)]
    (doc,) = sarif.documents(synthetic, targets[1:], project_root=REPO)
    _valid(sarif_validator, doc)
    (run,) = doc["runs"]
    assert len(run["results"]) == sarif.MAX_SHOWN_RESULTS == 5000
    assert _levels(doc) == {"error": 3000, "warning": 2000}, "the most severe are kept"
    assert run["properties"]["omitted"] == {"notes": 0, "overLimit": 1000}
    (note,) = run["invocations"][0]["toolExecutionNotifications"]
    assert note["message"]["text"].startswith("1000 less severe results left out")
    sarif.report_files(synthetic, targets[1:], project_root=REPO)
    assert "1000 less severe results left out" in capsys.readouterr().err


# --- JUnit -----------------------------------------------------------------------------------


def test_junit_one_testcase_per_pair_valid_against_jenkins_xsd(real_run, junit_schema):
    results, targets = real_run
    xml = junit.report(results, targets, project_root=REPO)
    junit_schema.validate(xml)
    root = ET.fromstring(xml)
    cases = [(c.get("classname"), c.get("name")) for c in root.iter("testcase")]
    assert len(cases) == len(set(cases)) == len(results)
    assert set(cases) == {(r.kernel, os.path.relpath(r.module, REPO)) for r in results}
    failing = sum(any(f.severity is Severity.ERROR for f in r.findings) for r in results)
    assert int(root.get("failures")) == failing > 0
    # one failure per failing pair, naming every error of it
    pair = next(r for r in results if sum(f.severity is Severity.ERROR for f in r.findings) > 1)
    case = next(
        c
        for c in root.iter("testcase")
        if c.get("classname") == pair.kernel and c.get("name") == os.path.relpath(pair.module, REPO)
    )
    (failure,) = case.findall("failure")
    errors = [f for f in pair.findings if f.severity is Severity.ERROR]
    assert all(f"error {f.rule} " in failure.text for f in errors)
    # --fail-on warning: warnings join the failure, still one testcase per pair
    warn = ET.fromstring(junit.report(results, targets, project_root=REPO, fail_on="warning"))
    junit_schema.validate(warn)
    assert len(list(warn.iter("testcase"))) == len(results)
    assert int(warn.get("failures")) >= failing


# --- GitHub Actions -----------------------------------------------------------------------


def test_github_at_most_ten_per_level_then_a_notice(real_run, tmp_path, monkeypatch):
    results, targets = real_run
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    lines = github.report(results, targets, project_root=REPO).splitlines()
    kinds = Counter(line.split(" ", 1)[0] for line in lines if line.startswith("::"))
    assert kinds["::error"] == kinds["::warning"] == github.MAX_PER_LEVEL
    assert kinds["::notice"] <= github.MAX_PER_LEVEL
    # the errors come first, and the last line counts what was left out
    assert lines[0].startswith("::error ")
    total = sum(len(r.findings) for r in results)
    shown = sum(n for k, n in kinds.items()) - 1
    assert lines[-1].startswith(f"::notice title=abicheck::{total - shown} more annotations")
    assert "--format json" in lines[-1]

    text = summary.read_text(encoding="utf-8")
    assert text.startswith("earlier step\n## abicheck\n"), "appended, never overwritten"
    assert "| module | 6\\.1\\.0\\-47\\-amd64 | 6\\.1\\.0\\-56\\-amd64 |" in text
    assert "| samples/modules/hello\\.ko | `loads-tainted` | `refused` |" in text
    assert "### Top rules" in text


def test_github_without_step_summary_writes_no_file(real_run, tmp_path, monkeypatch):
    results, targets = real_run
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.chdir(tmp_path)
    github.report(results[:1], targets, project_root=REPO)
    assert list(tmp_path.iterdir()) == []


def test_github_summary_escapes_markdown():
    assert github.markdown("a|b*c_[x](y)<img>\x1b") == "a\\|b\\*c\\_\\[x\\]\\(y\\)\\<img\\>\\\\x1b"


def test_github_a_small_run_has_no_closing_notice(real_run):
    results, targets = real_run
    one: list[Result] = [next(r for r in results if r.findings)]
    text = github.report(one, targets, project_root=REPO)
    assert "::notice title=abicheck::" not in text
    assert text.splitlines()[-1].startswith("abicheck: 1 (module, kernel) pair: ")


def test_sarif_notes_flag_through_the_command_line(tmp_path):
    args = ["check", sample("intree", K47), "--kernel", sample_kernel(K47), "--isolated"]
    args += ["--format", "sarif", "--project-root", REPO]
    default = run_cli([*args, "-o", str(tmp_path / "a.sarif")])
    assert "--sarif-notes includes them" in default.stderr
    asked = run_cli([*args, "--sarif-notes", "-o", str(tmp_path / "b.sarif")])
    assert "note-level" not in asked.stderr
    notes = [
        _levels(json.loads((tmp_path / name).read_text(encoding="utf-8")))["note"]
        for name in ("a.sarif", "b.sarif")
    ]
    assert notes[0] == 0 < notes[1]
