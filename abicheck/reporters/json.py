"""``--format json``: the stable machine-readable report.

Top level (version 1): ``version``, ``tool``, ``targets``, ``results``. Later versions
may add keys, never remove or change these.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from abicheck import __version__
from abicheck.model import Finding, KernelTarget, Result
from abicheck.reporters.base import Report
from abicheck.reporters.escape import json_text

SCHEMA_VERSION = 1


def target_dict(t: KernelTarget) -> dict[str, Any]:
    return {
        "id": t.id,
        "release": t.release,
        "source": t.source,
        "kind": t.kind,
        "digest": t.digest,
        "arch": t.arch,
        "version": ".".join(map(str, t.version)),
        "distribution": t.distribution,
        "uts_version": t.uts_version,
        "vermagic": t.vermagic,
        "vermagic_source": t.vermagic_source,
        "exports": None if t.exports is None else len(t.exports),
        "notes": list(t.notes),
        "layout_source": t.layout_source or None,
        "layout_gap": t.layout_gap,
        "also_named": list(t.also_named),
        "files": list(t.files),
    }


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "name": f.name,
        "category": f.category,
        "severity": f.severity.value,
        "effect": f.effect.value,
        "message": f.message,
        "kernel_says": f.kernel_says,
        "errno": f.errno,
        "taint": f.taint,
        "evidence": dict(f.evidence),
        "fix": f.fix,
    }


def result_dict(r: Result) -> dict[str, Any]:
    return {
        "module": r.module,
        "kernel": r.kernel,
        "target": r.target,
        "verdict": r.verdict.value,
        "taints": [
            {"letter": t.letter, "flag": t.flag, "description": t.description} for t in r.taints
        ],
        "assumptions": list(r.assumptions),
        "findings": [finding_dict(f) for f in r.findings],
        "suppressed": list(r.suppressed),
    }


def document(results: Sequence[Result], targets: Sequence[KernelTarget]) -> dict[str, Any]:
    return {
        "version": SCHEMA_VERSION,
        "tool": {"name": "abicheck", "version": __version__, "distribution": "kbuild-abicheck"},
        "targets": [target_dict(t) for t in targets],
        "results": [result_dict(r) for r in results],
    }


def report(results: Sequence[Result], targets: Sequence[KernelTarget], color: bool = False) -> str:
    doc = document(results, targets)
    # indent forces json's pure-Python encoder, which costs seconds on a module tree
    return json_text(json.dumps(doc, indent=2 if len(results) <= 100 else None)) + "\n"


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class JsonOptions:
    """The JSON document has no options: it holds everything."""


class JsonReporter:
    Options: ClassVar[type[JsonOptions]] = JsonOptions

    def __init__(self, options: JsonOptions = JsonOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> str:
        return _report(report.results, report.targets)
