"""Shared fixtures: committed samples, and the Debian packages tools/testdata.py fetched.

Tests that need the downloaded packages are marked ``debian`` and skip, saying how to get
the data, when the cache is absent; CI (.ci/run) fetches it first, so there they run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence

import pytest
from click.testing import CliRunner

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLES = os.path.join(REPO, "samples")
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
# The layout probe's cache: kept inside the repository's cache, never the user's, so that
# a test run starts from what the tests themselves made.
os.environ.setdefault("ABICHECK_CACHE_DIR", os.path.join(REPO, ".cache", "abicheck-tests"))


def sample(*parts: str) -> str:
    return os.path.join(SAMPLES, *parts)


def sample_kernel(release: str) -> str:
    return sample("kernels", f"{release}.json.gz")


@pytest.fixture(scope="session")
def testdata() -> dict:
    path = os.path.join(CACHE, "manifest.json")
    if not os.path.exists(path):
        pytest.skip("Debian test data not fetched: run `python tools/testdata.py all`")
    with open(path) as f:
        manifest = json.load(f)
    if "built" not in manifest:
        pytest.skip("test modules not built: run `python tools/testdata.py build`")
    return manifest


def kernel(manifest: dict, role: str) -> dict:
    return manifest["kernels"][role]


def built(manifest: dict, role: str, name: str) -> str:
    return os.path.join(manifest["built"][role], name)


class CliResult:
    def __init__(self, exit_code: int, stdout: str, stderr: str) -> None:
        self.exit_code, self.stdout, self.stderr = exit_code, stdout, stderr

    def json(self) -> dict:
        return json.loads(self.stdout)


def run_cli(args: Sequence[str]) -> CliResult:
    """Run abicheck in-process, as `abicheck ARGS` would."""
    from abicheck.app.cli import main

    runner = CliRunner()
    res = runner.invoke(main, list(args), catch_exceptions=False)
    return CliResult(res.exit_code, res.stdout, res.stderr)


def run_abicheck_process(args: Sequence[str], **kw) -> subprocess.CompletedProcess:
    """Run abicheck as a separate process (python -m abicheck)."""
    return subprocess.run(
        [sys.executable, "-m", "abicheck", *args], capture_output=True, text=True, **kw
    )


def check_json(modules: Sequence[str], kernels: Sequence[str]) -> dict:
    args = ["check", "--format", "json", *modules]
    for k in kernels:
        args += ["--kernel", k]
    res = run_cli(args)
    assert res.exit_code in (0, 1), res.stderr
    return res.json()


def findings(result: dict) -> list[tuple[str, str]]:
    return [(f["rule"], f["severity"]) for f in result["findings"]]


def rules_of(result: dict) -> list[str]:
    return [f["rule"] for f in result["findings"]]


def finding(result: dict, rule: str) -> dict:
    matches = [f for f in result["findings"] if f["rule"] == rule]
    assert matches, f"no {rule} finding in {rules_of(result)}"
    return matches[0]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "testdata" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.debian)
