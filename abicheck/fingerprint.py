"""Stable identities of findings, for SARIF partialFingerprints and --baseline.

One recipe for both, so that a baseline recorded by one format suppresses exactly what
code scanning tracks. Paths are made project-relative the same way for both.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import PurePosixPath
from typing import Any

from abicheck import ruledata
from abicheck.model import Finding

FINGERPRINT_VERSION = "abicheck/v1"


def identity(finding: Finding) -> dict[str, Any]:
    """The evidence that tells this finding from others of its rule in the same module and
    kernel: the keys its rule lists as ``identity`` in ``rules/<ID>.toml``. A rule without
    them occurs at most once per module and kernel."""
    try:
        keys = ruledata.rule(finding.rule).identity
    except KeyError:  # a finding of a rule this installation does not ship
        return {}
    return {k: finding.evidence[k] for k in keys if k in finding.evidence}


def fingerprint(finding: Finding, module_rel: str, target_release: str) -> str:
    """A finding's stable identity across runs, machines and checkouts: its rule, the
    module's project-relative path, the kernel release and :func:`identity`; never the
    message, offsets or CRCs, which change with every rebuild."""
    payload = [FINGERPRINT_VERSION, finding.rule, module_rel, target_release, identity(finding)]
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    # surrogateescape: a module path that is not UTF-8 hashes as its bytes, not a crash
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:32]


# --- paths ----------------------------------------------------------------------------


def _inside(path: str, root: str) -> str | None:
    if path == root:
        return "."
    if path.startswith(root.rstrip("/") + "/"):
        return os.path.relpath(path, root)
    return None


def project_path(path: str, project_root: str | None = None) -> str:
    """``path`` relative to the project root with ``/`` separators, or absolute if outside.

    Relative inputs are relative to the current directory, as the command line gave them.
    Symbolic links are resolved first (GitHub cannot show a result reported through a
    link); if that leads out of the root while the path as written is inside, the
    written path wins, so a build directory linked from elsewhere still maps into the repo.
    """
    root = os.path.abspath(project_root if project_root is not None else os.getcwd())
    written = os.path.abspath(path)
    try:
        resolved = [(os.path.realpath(written), os.path.realpath(root))]
    except ValueError:  # a NUL byte: no such file can exist, so nothing to resolve
        resolved = []
    for candidate, base in (*resolved, (written, root)):
        rel = _inside(candidate, base)
        if rel is not None:
            return PurePosixPath(*rel.split(os.sep)).as_posix()
    return PurePosixPath(written).as_posix()
