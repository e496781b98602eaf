"""The real pre-commit, running abicheck's hook from this repository on a temporary git
repo that holds a real module: it passes on a module that loads, fails on one that does
not. Slow: pre-commit builds a virtualenv and installs abicheck into it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import REPO, sample, sample_kernel

pytestmark = pytest.mark.slow


def git(cwd, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture(scope="module")
def head() -> str:
    if shutil.which("pre-commit") is None:
        pytest.skip("pre-commit is not installed (pip install '.[test]')")
    if git(
        REPO,
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
        "abicheck",
        "rules",
        "pyproject.toml",
        ".pre-commit-hooks.yaml",
    ).strip():
        pytest.skip("uncommitted changes to the package: pre-commit installs the commit")
    return git(REPO, "rev-parse", "HEAD").strip()


def run_hook(tmp_path, head: str, module: str, kernel: str) -> subprocess.CompletedProcess:
    repo = tmp_path / "driver"
    (repo / "build").mkdir(parents=True)
    shutil.copy(module, repo / "build" / os.path.basename(module))
    (repo / ".pre-commit-config.yaml").write_text(f"""repos:
- repo: {REPO}
  rev: {head}
  hooks:
  - id: abicheck
    args: [--kernel, {kernel}]
""")
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=ci@example.org", "-c", "user.name=ci", "add", ".")
    env = dict(os.environ, PRE_COMMIT_HOME=str(tmp_path / "cache"))
    return subprocess.run(
        ["pre-commit", "run", "--all-files", "--color", "never"],
        cwd=repo,
        capture_output=True,
        text=True,
        env=env,
    )


def test_hook_passes_a_module_that_loads(tmp_path, head):
    res = run_hook(tmp_path, head, sample("modules", "hello.ko"), sample_kernel("6.1.0-47-amd64"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "abicheck (kernel module ABI)" in res.stdout and "Passed" in res.stdout


def test_hook_fails_a_module_built_for_another_kernel(tmp_path, head):
    res = run_hook(tmp_path, head, sample("modules", "hello.ko"), sample_kernel("6.1.0-56-amd64"))
    assert res.returncode == 1
    assert "Failed" in res.stdout
    assert "MV004 module-layout-mismatch" in res.stdout
