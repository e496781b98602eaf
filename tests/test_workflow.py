"""The GitHub Actions example in docs/ parses, has the steps code scanning needs, and the
abicheck commands it runs work on the committed samples."""

from __future__ import annotations

import json
import os
import shlex

import jsonschema
import pytest
import yaml
from conftest import REPO, run_cli

WORKFLOW = os.path.join(REPO, "docs", "github-actions.yml")


@pytest.fixture(scope="module")
def workflow() -> dict:
    with open(WORKFLOW) as f:
        return yaml.safe_load(f)


def abicheck_steps(workflow: dict) -> list[str]:
    return [
        s["run"]
        for job in workflow["jobs"].values()
        for s in job["steps"]
        if s.get("run", "").startswith("abicheck ")
    ]


def test_workflow_shape(workflow):
    assert set(workflow["jobs"]) == {"annotate", "code-scanning"}
    scanning = workflow["jobs"]["code-scanning"]
    assert scanning["permissions"]["security-events"] == "write"
    uses = [s.get("uses", "") for s in scanning["steps"]]
    assert any(u.startswith("github/codeql-action/upload-sarif@") for u in uses)
    upload = next(s for s in scanning["steps"] if "upload-sarif" in s.get("uses", ""))
    assert upload["with"]["sarif_file"] == "abicheck.sarif"
    for job in workflow["jobs"].values():
        assert any("pip install kbuild-abicheck" in s.get("run", "") for s in job["steps"])


def test_the_commands_it_runs_work(workflow, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    annotate, sarif = abicheck_steps(workflow)
    res = run_cli(shlex.split(annotate)[1:])
    assert res.exit_code == 1  # the samples include modules the kernel refuses
    assert any(line.startswith("::error file=samples/modules/") for line in res.stdout.splitlines())
    args = shlex.split(sarif)[1:]
    args[args.index("--output-file") + 1] = str(tmp_path / "abicheck.sarif")
    res = run_cli(args)
    assert res.exit_code == 0
    with open(tmp_path / "abicheck.sarif") as f:
        doc = json.load(f)
    with open(os.path.join(REPO, "tests", "data", "sarif-schema-2.1.0.json")) as f:
        schema = json.load(f)
    jsonschema.validate(doc, schema)
    assert len(doc["runs"]) == 6  # one per kernel of the fleet (4 amd64, 2 arm64)
