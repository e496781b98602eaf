"""What a run reports and how it exits: rule selection, per-module ignores, the baseline.

The verdict is never changed: it is what the kernel would do. Hidden findings are listed
by rule in ``Result.suppressed`` so that a refused module never looks unexplained.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import replace

from abicheck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, AbicheckError
from abicheck.fingerprint import project_path
from abicheck.model import Finding, Result
from abicheck.settings import Settings, fails, module_ignores, rule_filter

Fingerprint = Callable[[Finding, str, str], str]


class BaselineError(AbicheckError):
    pass


def load_baseline(path: str) -> set[str]:
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        return set(doc["fingerprints"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise BaselineError(path, f"not an abicheck baseline: {e}") from None


def write_baseline(path: str, fingerprints: Sequence[str]) -> None:
    try:
        with open(path, "w", encoding="utf-8") as f:
            doc = {"abicheck_baseline": 1, "fingerprints": sorted(set(fingerprints))}
            json.dump(doc, f, indent=1)
            f.write("\n")
    except OSError as e:
        raise BaselineError(path, f"cannot write the baseline: {e.strerror or e}") from None


def relative(path: str, root: str) -> str:
    """A module path relative to the project root (as GitHub wants URIs), if inside it;
    the same mapping SARIF uses, so that baseline and code scanning agree."""
    return project_path(path, root)


def apply(
    results: Sequence[Result],
    settings: Settings,
    select: Sequence[str],
    ignore: Sequence[str],
    baseline: set[str] | None,
    fingerprint: Fingerprint,
) -> list[Result]:
    selected = rule_filter(select, ignore)
    out = []
    for r in results:
        per_module = rule_filter(["ALL"], module_ignores(settings, r.module))
        keep, hidden = [], list(r.suppressed)
        rel = relative(r.module, settings.root) if baseline is not None else ""
        for f in r.findings:
            if (f.rule != "IN001" and not (selected(f.rule) and per_module(f.rule))) or (
                baseline is not None and fingerprint(f, rel, r.kernel) in baseline
            ):
                hidden.append(f.rule)
            else:
                keep.append(f)
        out.append(replace(r, findings=tuple(keep), suppressed=tuple(hidden)))
    return out


def exit_code(results: Sequence[Result], fail_on: str, exit_zero: bool, usage_error: bool) -> int:
    if usage_error:
        return EXIT_USAGE
    if exit_zero:
        return EXIT_OK
    failing = any(fails(f.severity, fail_on) for r in results for f in r.findings)
    return EXIT_FINDINGS if failing else EXIT_OK


def require_layouts(results: Sequence[Result]) -> list[Result]:
    """--require-layout: a kernel whose struct layouts could not be obtained (LY005)
    fails the run. The verdict stays what the kernel would do; only the severity rises."""
    from abicheck.model import Severity

    return [
        replace(
            r,
            findings=tuple(
                replace(f, severity=Severity.ERROR) if f.rule == "LY005" else f for f in r.findings
            ),
        )
        for r in results
    ]
