"""Where a finding is shown: a project-relative path and a line, for every format that
points into the project (SARIF, JUnit, GitHub annotations), so that they all agree."""

from __future__ import annotations

import os
from collections.abc import Mapping

from abicheck.fingerprint import project_path
from abicheck.model import Finding

__all__ = ["location", "project_path"]


def location(
    finding: Finding, module_path: str, project_root: str | None = None
) -> tuple[str, int]:
    """Where to show a finding: (project path, line).

    The C source line when the check recorded one (``evidence["source"]``, read from the
    module's DWARF: ``{"file": absolute or project-relative path, "line": N}``) and it lies
    in the project; else the module file itself at line 1 (a binary has no lines, and
    GitHub wants a region on every result).
    """
    source = finding.evidence.get("source")
    if isinstance(source, Mapping):
        file, line = source.get("file"), source.get("line")
        if isinstance(file, str) and file and isinstance(line, int) and line >= 1:
            root = project_root if project_root is not None else os.getcwd()
            rel = project_path(os.path.join(root, file), project_root)
            if not os.path.isabs(rel):
                return rel, line
    return project_path(module_path or ".", project_root), 1
