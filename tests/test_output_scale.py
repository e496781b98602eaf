"""Output at scale: --quiet, --format concise, --statistics and the --severity display
filter, on the shipped samples (the 4,022-module Debian tree is measured by hand and in
the slow test at the end)."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest
from conftest import run_cli, sample, sample_kernel

K47 = sample_kernel("6.1.0-47-amd64")
K56 = sample_kernel("6.1.0-56-amd64")
HELLO = sample("modules", "hello.ko")
MODULES = sample("modules")
CONCISE = re.compile(
    r"^(?P<path>\S.*): (?P<rule>[A-Z]{2}\d{3}) \[(?P<kernel>[^\]]+)\] (?P<msg>.+)$"
)


def _findings(args: list[str]) -> list[tuple[str, str]]:
    res = run_cli(["check", MODULES, "-k", K47, "-k", K56, "--format", "json", *args])
    return sorted(
        (r["module"], f["rule"]) for r in json.loads(res.stdout)["results"] for f in r["findings"]
    )


def test_concise_is_one_line_per_finding():
    res = run_cli(["check", MODULES, "-k", K47, "-k", K56, "--format", "concise"])
    assert res.exit_code == 1
    *lines, last = res.stdout.splitlines()
    parsed = [CONCISE.match(line) for line in lines]
    assert all(parsed), [ln for ln, m in zip(lines, parsed, strict=True) if not m]
    # every module of the directory, the arm64 samples in its subdirectory included
    assert {m["path"] for m in parsed} == {
        os.path.join(root, f)
        for root, _dirs, files in os.walk(MODULES)
        for f in files
        if f.endswith(".ko")
    }
    assert any(m["rule"] == "MV004" and "6.1.0-56" in m["kernel"] for m in parsed)
    assert last.startswith(f"Found {len(lines)} finding(s)")


def test_concise_quiet_has_no_closing_line():
    res = run_cli(["check", HELLO, "-k", K56, "--format", "concise", "--quiet"])
    assert all(CONCISE.match(line) for line in res.stdout.splitlines())


def test_severity_hides_lower_findings_but_not_the_exit_code():
    shown = run_cli(["check", HELLO, "-k", K56, "--format", "concise", "-q", "-S", "error"])
    assert {CONCISE.match(ln)["rule"] for ln in shown.stdout.splitlines()} == {"MV004"}
    assert shown.exit_code == 1
    # TN001 (warning) fails the run under --fail-on warning even when it is not shown
    res = run_cli(["check", HELLO, "-k", K47, "--fail-on", "warning", "--severity", "error"])
    assert res.exit_code == 1
    assert "TN001" not in res.stdout
    assert "verdict: loads-tainted" in res.stdout  # the verdict is the kernel's, unfiltered
    assert run_cli(["check", HELLO, "-k", K47, "--fail-on", "warning"]).exit_code == 1
    assert run_cli(["check", HELLO, "-k", K47, "--severity", "info"]).exit_code == 0


def test_severity_applies_to_machine_formats():
    everything = _findings([])
    errors = _findings(["--severity", "error"])
    assert errors and set(errors) < set(everything)
    assert all(
        rule in {"MV004", "MV002", "DP002", "GP001", "NS001", "SY001", "VM001"}
        for _, rule in errors
    )


def test_quiet_text_is_errors_then_summary():
    res = run_cli(["check", HELLO, "-k", K47, "-q"])
    # one clean module: the summary alone
    assert res.stdout.splitlines() == [
        "summary: 1 module(s) × 1 kernel(s): 1 loads-tainted",
        "top rules: TN001 ×1, SG001 ×1",
    ]
    res = run_cli(["check", MODULES, "-k", K47, "-k", K56, "-q"])
    assert res.exit_code == 1
    assert "verdict:" not in res.stdout and "kernel says" not in res.stdout
    assert "samples/modules/hello.ko: MV004 [6.1.0-56-amd64@" in res.stdout
    assert "verdicts" in res.stdout  # the matrix: failing rows only
    assert "summary: 9 module(s) × 2 kernel(s)" in res.stdout


def test_quiet_matrix_omits_modules_that_load_everywhere():
    res = run_cli(["check", HELLO, "-k", K47, "-k", K47, "-q"])
    assert "verdicts" not in res.stdout
    assert "summary:" in res.stdout


def test_statistics_counts_per_rule():
    res = run_cli(["check", MODULES, "-k", K47, "-k", K56, "--statistics"])
    assert res.exit_code == 1  # the exit code is the run's, whatever is printed
    rows = [line.split() for line in res.stdout.splitlines()]
    counts = {row[1]: int(row[0]) for row in rows}
    everything = _findings([])
    assert counts == {rule: sum(r == rule for _, r in everything) for _, rule in everything}
    assert [int(row[0]) for row in rows] == sorted((int(row[0]) for row in rows), reverse=True)
    assert rows[0][2] in ("error", "warning", "info")


def test_statistics_with_a_machine_format_is_a_usage_error():
    res = run_cli(["check", HELLO, "-k", K47, "--statistics", "--format", "json"])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert len(res.stderr.splitlines()) == 1


def test_statistics_honours_the_severity_filter():
    res = run_cli(["check", HELLO, "-k", K56, "--statistics", "-S", "error"])
    assert [line.split()[1] for line in res.stdout.splitlines()] == ["MV004"]


def test_concise_escapes_hostile_paths(tmp_path):
    hostile = tmp_path / "evil\x1b]0;x\x07::warning::.ko"
    shutil.copy(HELLO, hostile)
    res = run_cli(["check", str(tmp_path), "-k", K47, "--format", "concise"])
    assert "\x1b" not in res.stdout and "\x07" not in res.stdout
    assert "\\x1b" in res.stdout


@pytest.mark.slow
def test_quiet_on_a_whole_debian_tree_is_short(testdata):
    k = testdata["kernels"]["6.1-a"]
    res = run_cli(["check", "--quiet", k["modules"], "--kernel", k["headers"]])
    assert res.exit_code == 0
    assert len(res.stdout.splitlines()) < 10
