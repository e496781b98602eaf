"""The machine-readable reporters: SARIF, JUnit XML, GitHub workflow commands, JSON schema.

Results come from the committed samples (real modules against saved Debian profiles), so
nothing is downloaded. SARIF is validated against the official OASIS SARIF 2.1.0 schema,
shipped in tests/data so that a clone runs these tests as it is; the JSON report against
the schema abicheck ships. Golden outputs live in tests/golden/; after an intended change,
regenerate them with ``ABICHECK_UPDATE_GOLDEN=1 python -m pytest tests/test_reporters.py``
and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import PurePosixPath

import jsonschema
import pytest
from conftest import REPO, run_cli, sample, sample_kernel

from abicheck import __version__, ruledata
from abicheck.context import Assumptions
from abicheck.model import Effect, Finding, Result, Severity, Verdict
from abicheck.reporters import github, junit, sarif
from abicheck.reporters import json as json_reporter
from abicheck.runner import RunOptions, run_checks
from abicheck.schema import REPORT_SCHEMA, report_schema
from abicheck.targets import load_target

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
GOLDEN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "golden")
K47, K56 = "6.1.0-47-amd64", "6.1.0-56-amd64"

# the golden scenario: clean on 6.1.0-47, MV004 on 6.1.0-56, NS001, two DP002 of one
# rule, a dependency given in the right order, and a file that does not exist
GOLDEN_MODULES = ("hello.ko", "ns_noimport.ko", "dep_consumer.ko", "dep_provider.ko", "missing.ko")


def _check(modules, releases):
    targets = [load_target(sample_kernel(r)) for r in releases]
    paths = [sample("modules", m) for m in modules]
    return run_checks(paths, targets, RunOptions(Assumptions(), 1 << 30)).results, targets


@pytest.fixture(scope="module")
def golden_run():
    return _check(GOLDEN_MODULES, (K47, K56))


@pytest.fixture(scope="module")
def every_sample():
    modules = sorted(f for f in os.listdir(sample("modules")) if f.endswith(".ko"))
    releases = sorted(f.removesuffix(".json.gz") for f in os.listdir(sample("kernels")))
    return _check([*modules, "missing.ko"], releases)


def _result(results, module, release) -> Result:
    return next(r for r in results if r.module.endswith("/" + module) and r.kernel == release)


def _sarif_results(doc, release):
    run = next(r for r in doc["runs"] if r["automationDetails"]["id"] == f"abicheck/{release}/")
    return run["results"]


# --- SARIF ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sarif_validator():
    with open(os.path.join(DATA, "sarif-schema-2.1.0.json"), encoding="utf-8") as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    # the schema declares draft-04; validate with exactly that draft
    assert schema["$schema"] == "http://json-schema.org/draft-04/schema#"
    assert cls is jsonschema.Draft4Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _assert_valid(validator, doc):
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


def test_sarif_is_valid_sarif_2_1_0(sarif_validator, every_sample):
    results, targets = every_sample
    doc = json.loads(sarif.report(results, targets, project_root=REPO))
    _assert_valid(sarif_validator, doc)
    assert doc["version"] == "2.1.0" and doc["$schema"]
    assert len(doc["runs"]) == len(targets) == 6  # the sample fleet: 4 amd64 kernels, 2 arm64


def test_sarif_meets_github_code_scanning(every_sample):
    """What GitHub requires beyond the schema (docs: SARIF support for code scanning)."""
    results, targets = every_sample
    (doc,) = sarif.documents(results, targets, project_root=REPO)
    assert len(doc["runs"]) <= sarif.MAX_RUNS_PER_FILE
    ids = [run["automationDetails"]["id"] for run in doc["runs"]]
    assert len(set(ids)) == len(ids), "two runs of one category in a file are rejected"
    assert ids == [f"abicheck/{t.release}/" for t in targets]
    for run in doc["runs"]:
        rules = run["tool"]["driver"]["rules"]
        # only the rules its results reference: GitHub reads no others
        assert [r["id"] for r in rules] == sorted({res["ruleId"] for res in run["results"]})
        for rule in rules:
            for key in ("shortDescription", "fullDescription"):
                assert 0 < len(rule[key]["text"]) <= 1024
            assert rule["help"]["text"] and rule["help"]["markdown"]
        assert run["results"]
        for res in run["results"]:
            assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
            assert res["message"]["text"]
            assert res["level"] in ("error", "warning", "note")
            (loc,) = res["locations"]
            uri = loc["physicalLocation"]["artifactLocation"]["uri"]
            assert uri.startswith("samples/modules/") and not uri.startswith("/")
            assert loc["physicalLocation"]["region"]["startLine"] >= 1
            assert res["partialFingerprints"]["primaryLocationLineHash"]
            assert res["partialFingerprints"]["abicheck/v1"]


def test_sarif_content(golden_run):
    results, targets = golden_run
    doc = json.loads(sarif.report(results, targets, project_root=REPO))
    r56 = _sarif_results(doc, K56)
    mv004 = [r for r in r56 if r["ruleId"] == "MV004"]
    assert {r["properties"]["module"] for r in mv004} == {
        "samples/modules/hello.ko",
        "samples/modules/ns_noimport.ko",
        "samples/modules/dep_consumer.ko",
        "samples/modules/dep_provider.ko",
    }
    hello = next(r for r in mv004 if r["properties"]["module"] == "samples/modules/hello.ko")
    assert hello["level"] == "error"
    assert hello["locations"][0]["physicalLocation"] == {
        "artifactLocation": {"uri": "samples/modules/hello.ko", "uriBaseId": "%SRCROOT%"},
        "region": {"startLine": 1},
    }
    assert hello["message"]["text"].startswith("module_layout: CRC 0x160c03af in the module")
    assert hello["properties"]["evidence"]["kernel_crc"] == "0x9060323f"
    assert hello["properties"]["verdict"] == "refused"
    ns = next(r for r in _sarif_results(doc, K47) if r["ruleId"] == "NS001")
    assert ns["properties"]["evidence"]["namespace"] == "ACPI"
    # the clean module on its own kernel: warnings (taints) only, no error
    hello47 = [
        r
        for r in _sarif_results(doc, K47)
        if r["properties"]["module"] == "samples/modules/hello.ko"
    ]
    assert {(r["ruleId"], r["level"]) for r in hello47} == {
        ("TN001", "warning"),
        ("SG001", "warning"),
    }
    missing = [r for r in r56 if r["ruleId"] == "IN001"]
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in missing] == [
        "samples/modules/missing.ko"
    ]


def test_sarif_rule_help_comes_from_the_rule_docs():
    # a run lists only the rules its results reference: MV001 and SG003 need not be among
    # them, so their descriptors are built directly
    rules = {i: sarif.rule_descriptor(ruledata.rule(i)) for i in ("MV001", "SG003")}
    mv001, data = rules["MV001"], ruledata.rule("MV001")
    assert mv001["name"] == "modversion-crc-mismatch"
    assert mv001["shortDescription"]["text"] == data.summary
    assert mv001["defaultConfiguration"]["level"] == "error"
    md = mv001["help"]["markdown"]
    for title in ("## What it does", "## Why is this bad", "## How to fix", "## The kernel says"):
        assert title in md
    assert data.docs["how_to_fix"].strip() in md
    assert "disagrees about version of symbol" in md
    assert data.docs["why"].strip() in mv001["help"]["text"]
    assert rules["SG003"]["defaultConfiguration"]["level"] == "note"


def _prints(doc) -> list[tuple[str, str, str]]:
    return [
        (
            res["ruleId"],
            res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
            res["partialFingerprints"]["primaryLocationLineHash"],
        )
        for run in doc["runs"]
        for res in run["results"]
    ]


def test_fingerprints_are_stable_across_runs(golden_run):
    first = sarif.documents(*golden_run, project_root=REPO)[0]
    second = sarif.documents(*_check(GOLDEN_MODULES, (K47, K56)), project_root=REPO)[0]
    assert _prints(first) == _prints(second)
    prints = [p for _, _, p in _prints(first)]
    assert len(set(prints)) == len(prints)


def test_fingerprints_and_uris_survive_a_move_of_the_checkout(golden_run):
    results, targets = golden_run

    def moved(prefix: str):
        out = []
        for r in results:
            name = os.path.basename(r.module)
            out.append(replace(r, module=f"{prefix}/proj/build/{name}"))
        return sarif.documents(out, targets, project_root=f"{prefix}/proj")[0]

    a, b = moved("/a"), moved("/b")
    assert _prints(a) == _prints(b)
    assert {uri for _, uri, _ in _prints(a)} == {f"build/{m}" for m in GOLDEN_MODULES}
    # and the same as where the checkout really is: the path under the root is what counts
    here = [(rule, fp) for rule, _, fp in _prints(sarif.documents(*golden_run, REPO)[0])]
    assert [(rule, fp) for rule, _, fp in _prints(a)] != here  # build/ is not samples/modules/


def _finding(rule: str = "MV001", **evidence) -> Finding:
    data = ruledata.rule(rule)
    return Finding(
        data.id,
        data.name,
        data.category,
        data.severity,
        data.effect,
        "a message",
        None,
        evidence,
        data.fix,
    )


def test_fingerprint_uses_identity_not_description():
    base = _finding(symbol="usb_register", module_crc="0x1", kernel_crc="0x2", owner="vmlinux")
    fp = sarif.fingerprint(base, "build/x.ko", K56)
    assert re.fullmatch(r"[0-9a-f]{32}", fp)
    # a rebuild changes the CRCs: the same problem
    rebuilt = replace(base, evidence={**base.evidence, "module_crc": "0x3"}, message="other")
    assert sarif.fingerprint(rebuilt, "build/x.ko", K56) == fp
    # another symbol, module, kernel or rule: another problem
    assert sarif.fingerprint(replace(base, evidence={"symbol": "kfree"}), "build/x.ko", K56) != fp
    assert sarif.fingerprint(base, "build/y.ko", K56) != fp
    assert sarif.fingerprint(base, "build/x.ko", K47) != fp
    assert sarif.fingerprint(replace(base, rule="MV002"), "build/x.ko", K56) != fp
    # the source line is where, not what: moving code keeps the alert
    moved = replace(base, evidence={**base.evidence, "source": {"file": "x.c", "line": 9}})
    assert sarif.fingerprint(moved, "build/x.ko", K56) == fp
    # the identity is what rules/MV001.toml names, nothing else of the evidence
    assert sarif.identity(base) == {"symbol": "usb_register"}


def test_equal_findings_get_occurrence_numbers():
    f = _finding("RL002", section=".text", symbol="x", where="undefined", r_offset=16)
    g = replace(f, evidence={**f.evidence, "r_offset": 32})
    one, two = sarif.occurrence_fingerprints([f, g], "x.ko", K47)
    assert one.endswith(":1") and two.endswith(":2")
    assert one.rsplit(":", 1)[0] == two.rsplit(":", 1)[0]


def test_source_line_from_dwarf_is_the_location(golden_run):
    results, targets = golden_run
    r = _result(results, "hello.ko", K56)
    mv004 = next(f for f in r.findings if f.rule == "MV004")

    def where(source, root="/a/proj"):
        f = replace(mv004, evidence={**mv004.evidence, "source": source})
        res = replace(r, module="/a/proj/build/hello.ko", findings=(f,))
        (doc,) = sarif.documents([res], targets, project_root=root)
        (out,) = _sarif_results(doc, K56)
        loc = out["locations"][0]["physicalLocation"]
        return loc["artifactLocation"]["uri"], loc["region"]["startLine"]

    assert where({"file": "/a/proj/src/hello.c", "line": 12}) == ("src/hello.c", 12)
    assert where({"file": "src/hello.c", "line": 7}) == ("src/hello.c", 7)
    # a kernel header is not in the repository: the module itself, line 1
    assert where({"file": "/usr/src/linux-headers-x/include/linux/module.h", "line": 3}) == (
        "build/hello.ko",
        1,
    )
    assert where({"file": "src/hello.c", "line": 0}) == ("build/hello.ko", 1)
    assert where("garbage") == ("build/hello.ko", 1)


def test_paths_outside_the_project_get_their_own_base(golden_run):
    results, targets = golden_run
    r = replace(_result(results, "hello.ko", K56), module="/elsewhere/hello ko.ko")
    (doc,) = sarif.documents([r], targets, project_root="/a/proj")
    locations = {
        tuple(sorted(res["locations"][0]["physicalLocation"]["artifactLocation"].items()))
        for res in _sarif_results(doc, K56)
    }
    assert locations == {(("uri", "hello%20ko.ko"), ("uriBaseId", "MODULEDIR"))}
    bases = doc["runs"][1]["originalUriBaseIds"]
    assert bases["MODULEDIR"]["uri"] == "file:///elsewhere/"
    assert bases["%SRCROOT%"]["uri"] == "file:///a/proj/"
    assert sarif.project_path("/a/proj", "/a/proj") == "."
    assert sarif.project_path("/a/project/x.ko", "/a/proj") == "/a/project/x.ko"
    assert sarif.project_path("/a/proj/x.ko", "/a/proj/") == "x.ko"


def _fleet(golden_run, count: int):
    """The golden results spread over ``count`` kernels (copies of the two real ones)."""
    results, targets = golden_run
    fleet_targets, fleet_results = [], []
    for i in range(count):
        base = targets[i % 2]
        t = replace(base, id=f"{base.release}-{i}@0000", release=f"{base.release}-{i}")
        fleet_targets.append(t)
        fleet_results += [
            replace(r, target=t.id, kernel=t.release) for r in results if r.target == base.id
        ]
    return fleet_results, fleet_targets


def test_a_large_fleet_is_split_into_uploadable_files(sarif_validator, golden_run):
    results, targets = _fleet(golden_run, 45)
    docs = sarif.documents(results, targets, project_root=REPO)
    assert [len(d["runs"]) for d in docs] == [20, 20, 5]
    ids = [run["automationDetails"]["id"] for d in docs for run in d["runs"]]
    assert ids == [f"abicheck/{t.release}/" for t in targets]
    for d in docs:
        _assert_valid(sarif_validator, d)
    files = sarif.report_files(results, targets, project_root=REPO)
    assert [suffix for suffix, _ in files] == ["", "-2", "-3"]
    assert json.loads(files[1][1]) == docs[1]
    assert [len(d["runs"]) for d in sarif.documents(results, targets, REPO, max_runs=7)] == [
        7,
        7,
        7,
        7,
        7,
        7,
        3,
    ]
    # one file still holds everything on standard output (valid SARIF, too big for GitHub)
    assert len(json.loads(sarif.report(results, targets, project_root=REPO))["runs"]) == 45


def test_two_targets_of_one_release_get_two_categories(golden_run):
    results, targets = golden_run
    twin = replace(targets[0], id=targets[0].release + "@ffffffff")
    more = [replace(r, target=twin.id) for r in results if r.target == targets[0].id]
    (doc,) = sarif.documents([*results, *more], [*targets, twin], project_root=REPO)
    ids = [run["automationDetails"]["id"] for run in doc["runs"]]
    assert ids == [f"abicheck/{targets[0].id}/", f"abicheck/{K56}/", f"abicheck/{twin.id}/"]
    (nightly,) = sarif.documents(results, targets, REPO, category="nightly")
    assert nightly["runs"][0]["automationDetails"]["id"] == f"nightly/{K47}/"


def test_too_many_results_keep_the_most_severe(golden_run):
    results, targets = golden_run
    (doc,) = sarif.documents(results, targets, project_root=REPO, notes=True, max_results=3)
    run47 = doc["runs"][0]
    assert len(run47["results"]) == 3
    assert [r["level"] for r in run47["results"]] == ["error"] * 3
    total = sum(len(r.findings) for r in results if r.kernel == K47)
    assert run47["properties"]["omitted"]["overLimit"] == total - 3


# --- JUnit XML -----------------------------------------------------------------------------


def _suites(xml: str) -> dict[str, ET.Element]:
    root = ET.fromstring(xml)
    assert root.tag == "testsuites"
    return {s.get("name"): s for s in root.findall("testsuite")}


def _cases(suite: ET.Element) -> dict[str, ET.Element]:
    return {c.get("name"): c for c in suite.findall("testcase")}


def test_junit_one_suite_per_kernel_one_case_per_module(golden_run):
    results, targets = golden_run
    xml = junit.report(results, targets, project_root=REPO)
    suites = _suites(xml)
    assert list(suites) == [K47, K56]
    assert sum(len(s.findall("testcase")) for s in suites.values()) == len(results) == 10
    clean = _cases(suites[K47])["samples/modules/hello.ko"]
    assert clean.get("classname") == K47
    assert clean.find("failure") is None and clean.find("error") is None
    # the verdict and the warnings of a passing pair are shown, not failed
    out = clean.find("system-out").text
    assert "verdict: loads-tainted" in out and "taints: OE" in out and "TN001" in out

    refused = _cases(suites[K56])["samples/modules/hello.ko"]
    failure = refused.find("failure")
    assert failure.get("type") == "error"
    assert failure.get("message").startswith("refused: 1 finding; first: MV004 module_layout")
    assert "kernel says:" in failure.text and "at samples/modules/hello.ko:1" in failure.text

    dep = _cases(suites[K47])["samples/modules/dep_consumer.ko"]
    assert dep.find("failure").get("message").startswith("refused: 2 findings; first: DP002")
    assert dep.find("failure").text.count("error DP002") == 2

    missing = _cases(suites[K56])["samples/modules/missing.ko"]
    assert missing.find("error") is not None and missing.find("failure") is None
    assert suites[K56].get("errors") == "1"

    root = ET.fromstring(xml)
    for key in ("tests", "failures", "errors"):
        assert int(root.get(key)) == sum(int(s.get(key)) for s in suites.values())


def test_junit_clean_run_is_a_passing_suite(golden_run):
    results, targets = golden_run
    clean = [_result(results, "dep_provider.ko", K47)]
    root = ET.fromstring(junit.report(clean, targets, project_root=REPO))
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "1" and suite.get("failures") == "0"


def test_junit_fail_on_and_hidden_findings(golden_run):
    results, targets = golden_run
    r = _result(results, "hello.ko", K47)
    (suite,) = _suites(junit.report([r], targets, project_root=REPO, fail_on="warning")).values()
    failure = suite.find("testcase/failure")
    assert "warning SG001" in failure.text and "warning TN001" in failure.text
    hidden = replace(
        r, findings=tuple(f for f in r.findings if f.rule != "TN001"), suppressed=("TN001",)
    )
    (suite,) = _suites(junit.report([hidden], targets, project_root=REPO)).values()
    out = suite.find("testcase/system-out").text
    assert "1 finding not reported" in out and "TN001" not in out


def test_junit_survives_control_characters(golden_run):
    results, targets = golden_run
    r = _result(results, "hello.ko", K56)
    bad = tuple(replace(f, message=f.message + " \x00\x1b[31m") for f in r.findings)
    xml = junit.report([replace(r, findings=bad)], targets, project_root=REPO)
    assert "\\x00\\x1b[31m" in ET.fromstring(xml).find(".//failure").get("message")


# --- GitHub workflow commands ----------------------------------------------------------------


def _unescape_data(text: str) -> str:
    # the runner's ActionCommand unescaping (actions/runner ActionCommand.cs)
    return text.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


def _unescape_property(text: str) -> str:
    return _unescape_data(text.replace("%3A", ":").replace("%2C", ","))


_COMMAND = re.compile(r"^::(error|warning|notice) ([^:]*)::(.*)$")


def _commands(text: str):
    out = []
    for line in text.splitlines():
        if line.startswith("abicheck: ") or line.startswith("::notice title=abicheck::"):
            continue  # the plain summary line and the closing notice on what was left out
        m = _COMMAND.match(line)
        assert m, line
        props = dict(p.split("=", 1) for p in m.group(2).split(","))
        out.append(
            (
                m.group(1),
                {k: _unescape_property(v) for k, v in props.items()},
                _unescape_data(m.group(3)),
            )
        )
    return out


def test_github_escaping():
    assert github.escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert github.escape_property("a:b,c%d\n") == "a%3Ab%2Cc%25d%0A"
    assert _unescape_property(github.escape_property("x: 1, 100%")) == "x: 1, 100%"


def test_github_annotations(golden_run):
    results, targets = golden_run
    text = github.report(results, targets, project_root=REPO)
    lines = text.splitlines()
    assert any(line.startswith("abicheck: 10 (module, kernel) pairs: ") for line in lines)
    commands = _commands(text)
    per_level = {k: sum(1 for c in commands if c[0] == k) for k in ("error", "warning")}
    total = {
        k: sum(1 for r in results for f in r.findings if github.COMMAND[f.severity] == k)
        for k in ("error", "warning")
    }
    assert per_level == {k: min(n, github.MAX_PER_LEVEL) for k, n in total.items()}
    title = f"MV004 module-layout-mismatch ({K56})"
    mv004 = {
        (kind, props["file"], props["line"])
        for kind, props, _ in commands
        if props["title"] == title
    }
    assert ("error", "samples/modules/hello.ko", "1") in mv004
    kinds = {(props["title"][:5], kind) for kind, props, _ in commands}
    assert ("TN001", "warning") in kinds and ("NS001", "error") in kinds
    ns = next(msg for _, props, msg in commands if props["title"].startswith("NS001"))
    assert ns.splitlines()[0].startswith("acpi_table_parse_cedt is in namespace ACPI")
    assert any(line.startswith("kernel says: ") for line in ns.splitlines())
    assert ns.splitlines()[-1].startswith("fix: ")


def test_github_escapes_what_the_module_brings(golden_run):
    results, targets = golden_run
    r = _result(results, "hello.ko", K56)
    f = replace(r.findings[0], message="100% wrong\nsecond line", severity=Severity.INFO)
    weird = replace(r, module=os.path.join(REPO, "build", "a,b:c.ko"), findings=(f,))
    text = github.report([weird], targets, project_root=REPO)
    assert "\n" not in text.rstrip("\n").splitlines()[0]
    ((kind, props, msg),) = _commands(text)
    assert kind == "notice"
    assert props["file"] == "build/a,b:c.ko"
    assert msg.startswith("100% wrong\nsecond line\n")
    assert text.startswith("::notice file=build/a%2Cb%3Ac.ko,line=1,title=")


# --- through the command line, once the formats are registered ----------------------------------


def _registered(fmt: str) -> None:
    from abicheck.reporters import FORMATS

    if fmt not in FORMATS:
        pytest.skip(f"--format {fmt} is not wired into the command line yet")


def test_cli_sarif_file(sarif_validator, tmp_path):
    _registered("sarif")
    out = tmp_path / "abicheck.sarif"
    args = ["check", "--format", "sarif", "-o", str(out), sample("modules", "hello.ko")]
    res = run_cli([*args, "--kernel", sample_kernel(K47), "--kernel", sample_kernel(K56)])
    assert res.exit_code == 1, res.stderr
    doc = json.loads(out.read_text())
    _assert_valid(sarif_validator, doc)
    assert [r["automationDetails"]["id"] for r in doc["runs"]] == [
        f"abicheck/{K47}/",
        f"abicheck/{K56}/",
    ]


@pytest.mark.parametrize("fmt", ["junit", "github"])
def test_cli_junit_and_github(fmt):
    _registered(fmt)
    args = ["check", "--format", fmt, sample("modules", "hello.ko")]
    res = run_cli([*args, "--kernel", sample_kernel(K56)])
    assert res.exit_code == 1, res.stderr
    if fmt == "junit":
        assert ET.fromstring(res.stdout).get("failures") == "1"
    else:
        assert "::error file=" in res.stdout and "title=MV004 module-layout-mismatch" in res.stdout


# --- the JSON report's schema ----------------------------------------------------------------


@pytest.fixture(scope="module")
def json_validator():
    schema = report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    cls = jsonschema.validators.validator_for(schema)
    assert cls is jsonschema.Draft202012Validator
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_schema_ships_inside_the_package():
    import abicheck

    assert os.path.dirname(REPORT_SCHEMA) == os.path.join(
        os.path.dirname(abicheck.__file__), "schema"
    )
    assert report_schema()["title"].startswith("abicheck report")


def test_json_output_matches_its_schema(json_validator, every_sample):
    results, targets = every_sample
    doc = json.loads(json_reporter.report(results, targets))
    _assert_valid(json_validator, doc)
    verdicts = {r["verdict"] for r in doc["results"]}
    assert {"unreadable", "refused", "loads-tainted"} <= verdicts


def test_json_from_the_command_line_matches_its_schema(json_validator):
    args = ["check", "--format", "json", sample("modules", "hello.ko"), "nonexistent.ko"]
    for release in (K47, K56):
        args += ["--kernel", sample_kernel(release)]
    res = run_cli(args)
    assert res.exit_code == 2, res.stderr
    _assert_valid(json_validator, res.json())


def test_schema_describes_every_key_the_reporter_writes(golden_run):
    results, targets = golden_run
    doc = json_reporter.document(results, targets)
    schema = report_schema()
    defs = schema["$defs"]

    def described(obj: dict, node: dict) -> None:
        assert set(obj) == set(node["properties"]), sorted(set(obj) ^ set(node["properties"]))
        assert set(node["required"]) == set(obj)
        assert node["additionalProperties"] is True  # later versions may add keys

    described(doc, schema)
    described(doc["tool"], schema["properties"]["tool"])
    described(doc["targets"][0], defs["target"])
    result = _result(results, "hello.ko", K47)
    rdoc = next(r for r in doc["results"] if r["module"] == result.module and r["kernel"] == K47)
    described(rdoc, defs["result"])
    described(rdoc["taints"][0], defs["taint"])
    described(rdoc["findings"][0], defs["finding"])
    enum = defs["finding"]["properties"]
    assert enum["category"]["enum"] == list(ruledata.CATEGORIES)
    assert enum["severity"]["enum"] == [s.value for s in Severity]
    assert enum["effect"]["enum"] == [e.value for e in Effect]
    assert defs["result"]["properties"]["verdict"]["enum"] == [v.value for v in Verdict]


def test_schema_rejects_what_it_should(json_validator, golden_run):
    doc = json_reporter.document(*golden_run)
    assert json_validator.is_valid(doc)
    assert not json_validator.is_valid({k: v for k, v in doc.items() if k != "results"})
    bad = json.loads(json.dumps(doc))
    bad["results"][0]["findings"][0]["severity"] = "fatal"
    assert not json_validator.is_valid(bad)
    later = json.loads(json.dumps(doc))
    later["results"][0]["findings"][0]["confidence"] = "high"  # a key a later version adds
    later["results"][0]["findings"][0]["evidence"]["source"] = {"file": "x.c", "line": 3}
    assert json_validator.is_valid(later)
    later["results"][0]["findings"][0]["evidence"]["source"] = {"file": "x.c", "line": 0}
    assert not json_validator.is_valid(later)


# --- golden outputs ------------------------------------------------------------------------------


def _normalise(text: str) -> str:
    """Volatile parts: where the checkout is, the tool's version, the profiles' digests."""
    for prefix in (PurePosixPath(REPO).as_uri(), REPO):
        text = text.replace(prefix, "<REPO>")
    return re.sub(r"(-amd64)@[0-9a-f]{8}", r"\1@<digest>", text)


def _golden_sarif(results, targets) -> str:
    doc = json.loads(sarif.report(results, targets, project_root=REPO))
    for run in doc["runs"]:
        driver = run["tool"]["driver"]
        assert driver["version"] == __version__
        driver["version"] = "<version>"
        # rule texts are asserted above; here only which rules, so a doc edit in rules/
        # does not churn the golden file
        driver["rules"] = [r["id"] for r in driver["rules"]]
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("samples.sarif", _golden_sarif),
        ("samples.junit.xml", lambda rs, ts: junit.report(rs, ts, project_root=REPO)),
        ("samples.github.txt", lambda rs, ts: github.report(rs, ts, project_root=REPO)),
    ],
)
def test_golden(golden_run, name, render):
    got = _normalise(render(*golden_run))
    path = os.path.join(GOLDEN, name)
    if os.environ.get("ABICHECK_UPDATE_GOLDEN"):
        os.makedirs(GOLDEN, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(got)
    with open(path, encoding="utf-8") as f:
        assert got == f.read(), f"{name} changed: ABICHECK_UPDATE_GOLDEN=1 regenerates it"
