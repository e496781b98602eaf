"""``--format sarif``: SARIF 2.1.0 for GitHub code scanning (and any other SARIF consumer).

One run per kernel target, so that each kernel is its own code-scanning *category*
(``runs[].automationDetails.id``): alerts for 6.1.0-47 and 6.12 open and close
independently. What GitHub accepts, from "SARIF support for code scanning"
(https://docs.github.com/en/code-security/code-scanning/integrating-with-code-scanning/sarif-support-for-code-scanning)
and "SARIF results exceed one or more limits"
(https://docs.github.com/en/code-security/code-scanning/troubleshooting-sarif-uploads/results-exceed-limit),
both read in 2026:

- at most 20 runs per file, 25 000 results per run (only the top 5 000 are shown,
  by severity), 25 000 rules per run, 10 MB per gzip-compressed file;
- since mid-2025 a file may not hold two runs of one tool with the same category
  (https://github.blog/changelog/2024-05-06-code-scanning-will-stop-combining-runs-from-a-single-upload/);
- only ``partialFingerprints.primaryLocationLineHash`` is used to match alerts across
  uploads. ``upload-sarif`` computes it from the file's text when it is absent, which for
  a binary ``.ko`` at line 1 gives every finding of the module the same hash: abicheck
  fills it in itself (the action keeps a value that is present);
- an ``automationDetails.id`` in the file takes precedence over the action's ``category``
  input (github/codeql-action, src/upload-lib.ts ``populateRunAutomationDetails``).

A fleet with more kernels than a file may hold is split by :func:`documents`. The
module and source paths are made relative to the project root (the repository), which
is what GitHub matches against its checkout: ``uriBaseId`` ``%SRCROOT%``. A module
outside the root (a distribution's ``/lib/modules`` tree), or a source file outside it
named by the module's DWARF, is made relative to the deepest directory holding all such
paths of the run, ``uriBaseId`` ``MODULEDIR``;
both bases are declared in ``originalUriBaseIds``, so no result carries a ``file:///``
URI and the file stays valid when the tree moves. GitHub lists those alerts without a
file to show them in.

A whole module tree holds thousands of ``note`` results (INFO findings: TN001 taints on
every out-of-tree module, ...), far past the 5 000 results GitHub shows per run: they
are written only when asked (``--sarif-notes``, or ``--fail-on info``, where they fail
the run). Beyond :data:`MAX_SHOWN_RESULTS` per run only the most severe are written.
Whatever is left out is said in the run (``invocations[0].toolExecutionNotifications``
and ``properties.omitted``) and on standard error, with the option that brings it back.
Each run lists only the rules its results reference (GitHub reads no others).

Paths are made project-relative by :mod:`abicheck.reporters.locations`, as in the junit
and github reporters; a baseline must use the same fingerprints (:func:`fingerprint`),
or they will not match the SARIF ones.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, ClassVar
from urllib.parse import quote

from abicheck import __version__, ruledata
from abicheck.fingerprint import (  # noqa: F401  (re-exported)
    FINGERPRINT_VERSION,
    fingerprint,
    identity,
)
from abicheck.model import Finding, KernelTarget, Result, Severity
from abicheck.reporters.base import Output, Report
from abicheck.reporters.escape import json_text, message_line
from abicheck.reporters.locations import location, project_path
from abicheck.ruledoc import rule_as_markdown, rule_as_text

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"

# GitHub's hard limits (see the module docstring); a file beyond them is rejected whole.
MAX_RUNS_PER_FILE = 20
MAX_RESULTS_PER_RUN = 25_000
# ... of which GitHub stores and shows only the top 5 000 "prioritized by severity"
# (github/docs#38085: in practice "Only 5000 were stored"): abicheck chooses them itself,
# by severity then in the report's order, rather than leave the choice to the upload.
MAX_SHOWN_RESULTS = 5_000
MAX_GZIP_BYTES = 10 * 1024 * 1024
# GitHub truncates longer rule descriptions.
_MAX_DESCRIPTION = 1024

SRCROOT = "%SRCROOT%"
OUTSIDE = "MODULEDIR"

LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
# GitHub's properties.problem.severity vocabulary for non-security rules
_PROBLEM_SEVERITY = {
    Severity.ERROR: "error",
    Severity.WARNING: "warning",
    Severity.INFO: "recommendation",
}

# --- fingerprints -------------------------------------------------------------------
#
# Recipe (version 1):
#     sha256 of the compact JSON array
#         ["abicheck/v1", RULE, MODULE, RELEASE, {KEY: evidence[KEY], ...}]
#     (keys sorted, no spaces, UTF-8), first 32 hex digits.
# RULE is the rule ID, MODULE the module's path relative to the project root (POSIX
# separators), RELEASE the target's release (not its id, whose digest changes with every
# rebuilt profile). KEY runs over the identifying evidence of the rule's category below,
# those present in the finding: what names *which* problem (the symbol, the struct, the
# option), never what describes it (CRCs, offsets, counts, addresses, messages), so a
# fingerprint survives a rebuild that changes a CRC or moves a relocation.
# The source line is not part of it either: an alert must follow its code when lines move.
# Changing any of this reopens every alert: bump the version string instead.


def occurrence_fingerprints(
    findings: Sequence[Finding], module_rel: str, target_release: str
) -> list[str]:
    """``FINGERPRINT:N`` per finding, N counting equal fingerprints in order (from 1).

    Two findings can share an identity (two relocations of one symbol in one section);
    the occurrence number keeps them apart, as codeql-action does for equal line hashes.
    """
    seen: dict[str, int] = {}
    out = []
    for f in findings:
        fp = fingerprint(f, module_rel, target_release)
        seen[fp] = seen.get(fp, 0) + 1
        out.append(f"{fp}:{seen[fp]}")
    return out


def artifact_location(path: str, outside: str | None = None) -> dict[str, str]:
    """A relative URI against ``%SRCROOT%`` or, for an absolute path under ``outside``
    (the run's directory of modules outside the root), against ``MODULEDIR``."""
    if os.path.isabs(path):
        if outside is None:
            return {"uri": PurePosixPath(path).as_uri()}
        rel = os.path.relpath(path, outside)
        return {"uri": quote(os.fsencode(rel)), "uriBaseId": OUTSIDE}
    # bytes, not str: a file name that is not UTF-8 is still a URI (%FF), where quote()
    # of the surrogate-escaped str would raise
    return {"uri": quote(os.fsencode(path)), "uriBaseId": SRCROOT}


def _directory_uri(path: str) -> str:
    uri = PurePosixPath(path).as_uri()
    return uri if uri.endswith("/") else uri + "/"


def _outside_dir(paths: Sequence[str]) -> str | None:
    """The deepest directory holding every absolute path, or None when there is none."""
    absolute = [p for p in paths if os.path.isabs(p)]
    if not absolute:
        return None
    common = os.path.commonpath(absolute)
    # one module alone: its commonpath is the file itself
    return os.path.dirname(common) if common in absolute else common


# --- rules ------------------------------------------------------------------------------


def _one_paragraph(text: str) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    if len(text) > _MAX_DESCRIPTION:
        text = text[: _MAX_DESCRIPTION - 1].rstrip() + "…"
    return text


def rule_descriptor(rule: ruledata.Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "shortDescription": {"text": _one_paragraph(rule.summary)},
        "fullDescription": {"text": _one_paragraph(str(rule.docs.get("what", "")) or rule.summary)},
        "help": {"text": rule_as_text(rule), "markdown": rule_as_markdown(rule)},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {
            "tags": ["kernel-module", rule.category],
            "category": rule.category,
            "effect": rule.effect.value,
            # the checks read facts from the files; a wrong result is a bug, not noise
            "precision": "high",
            "problem.severity": _PROBLEM_SEVERITY[rule.severity],
        },
    }


# --- the document -------------------------------------------------------------------------


def _message(f: Finding) -> str:
    # GitHub shows the first sentence as the alert's title: the finding's own message
    lines = [f.message]
    if f.kernel_says:
        lines += ["", "The kernel says:"] + [f"    {s}" for s in f.kernel_says.splitlines()]
    lines += ["", f"Fix: {f.fix}"]
    return "\n".join(lines)


def _category_ids(targets: Sequence[KernelTarget], category: str) -> dict[str, str]:
    """automationDetails.id per target: ``CATEGORY/RELEASE/`` (no run id after the slash).

    The release, not the target id, so that the category stays the same when a profile
    is rebuilt; two targets of one release in one run fall back to their ids, since a
    file may not hold two runs of one category.
    """
    releases = [t.release for t in targets]
    return {
        t.id: f"{category}/{t.release if releases.count(t.release) == 1 else t.id}/"
        for t in targets
    }


def _run(
    target: KernelTarget | None,
    target_id: str,
    automation_id: str,
    results: Sequence[Result],
    root: str,
    notes: bool,
    max_results: int,
) -> dict[str, Any]:
    release = target.release if target else (results[0].kernel if results else target_id)
    # (severity rank, order, result, finding, fingerprint, module path): chosen first,
    # built after, so that a tree's thousands of left-out notes cost no JSON
    chosen: list[tuple[int, int, Result, Finding, str, str]] = []
    omitted_notes = 0
    for r in results:
        module_rel = project_path(r.module or ".", root)
        prints = occurrence_fingerprints(r.findings, module_rel, release)
        for f, fp in zip(r.findings, prints, strict=True):
            if f.severity is Severity.INFO and not notes:
                omitted_notes += 1
                continue
            chosen.append((f.severity.rank, len(chosen), r, f, fp, module_rel))
    omitted_over_limit = 0
    if len(chosen) > max_results:
        kept = sorted(chosen, key=lambda c: (c[0], c[1]))[:max_results]
        omitted_over_limit = len(chosen) - len(kept)
        chosen = sorted(kept, key=lambda c: c[1])
    where = [(c[3], location(c[3], c[2].module, root)) for c in chosen]
    outside = _outside_dir([path for _, (path, _) in where])
    referenced = sorted({c[3].rule for c in chosen})
    rules = [ruledata.rule(i) for i in referenced if i in ruledata.all_rules()]
    index = {r.id: i for i, r in enumerate(rules)}
    out: list[dict[str, Any]] = []
    for (_, _, r, f, fp, module_rel), (_, (path, line)) in zip(chosen, where, strict=True):
        res: dict[str, Any] = {"ruleId": f.rule}
        if f.rule in index:
            res["ruleIndex"] = index[f.rule]
        res |= {
            "level": LEVEL[f.severity],
            "message": {"text": _message(f)},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": artifact_location(path, outside),
                        "region": {"startLine": line},
                    }
                }
            ],
            "partialFingerprints": {
                "primaryLocationLineHash": fp,
                FINGERPRINT_VERSION: fp.rsplit(":", 1)[0],
            },
            "properties": {
                "module": module_rel,
                "kernel": r.kernel,
                "target": r.target,
                "verdict": r.verdict.value,
                "category": f.category,
                "effect": f.effect.value,
                "kernel_says": f.kernel_says,
                "errno": f.errno,
                "taint": f.taint,
                "evidence": dict(f.evidence),
            },
        }
        out.append(res)
    properties: dict[str, Any] = {"target": {"id": target_id, "release": release}}
    if target is not None:
        properties["target"].update(
            kind=target.kind,
            source=target.source if target.kind == "running" else project_path(target.source, root),
            arch=target.arch,
            version=".".join(map(str, target.version)),
            distribution=target.distribution,
        )
    notifications = []
    if omitted_notes:
        notifications.append(
            _notification(
                "omitted-notes",
                f"{omitted_notes} note-level results (info findings) left out: run with "
                "--sarif-notes (or --fail-on info) to include them, or --format json for all",
            )
        )
    if omitted_over_limit:
        notifications.append(
            _notification(
                "omitted-over-limit",
                f"{omitted_over_limit} less severe results left out: GitHub stores at most "
                f"{max_results} results per run; --format json has them all",
            )
        )
    if notifications:
        properties["omitted"] = {"notes": omitted_notes, "overLimit": omitted_over_limit}
    bases: dict[str, Any] = {
        SRCROOT: {
            "uri": _directory_uri(root),
            "description": {"text": "The project root (--project-root)"},
        }
    }
    if outside is not None:
        bases[OUTSIDE] = {
            "uri": _directory_uri(outside),
            "description": {"text": "Modules outside the project root"},
        }
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "abicheck",
                "version": __version__,
                "informationUri": "https://pypi.org/project/kbuild-abicheck/",
                "rules": [rule_descriptor(r) for r in rules],
            }
        },
        "automationDetails": {
            "id": automation_id,
            "description": {"text": f"abicheck: kernel modules checked against {release}"},
        },
        "originalUriBaseIds": bases,
        "results": out,
        "properties": properties,
    }
    if notifications:
        run["invocations"] = [
            {"executionSuccessful": True, "toolExecutionNotifications": notifications}
        ]
    return run


def _notification(id_: str, text: str) -> dict[str, Any]:
    return {"descriptor": {"id": id_}, "level": "note", "message": {"text": text}}


def _wants_notes(notes: bool | None, fail_on: Severity | str | None) -> bool:
    # info findings that fail the run (--fail-on info) must be in the report that says why
    return bool(notes) if notes is not None else str(fail_on or "") == Severity.INFO.value


def runs(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    project_root: str | None = None,
    *,
    category: str = "abicheck",
    notes: bool = False,
    max_results: int = MAX_SHOWN_RESULTS,
) -> list[dict[str, Any]]:
    """One SARIF run per target, in the targets' order."""
    root = os.path.abspath(project_root if project_root is not None else os.getcwd())
    by_target: dict[str, list[Result]] = {t.id: [] for t in targets}
    for r in results:
        by_target.setdefault(r.target, []).append(r)
    known = {t.id: t for t in targets}
    ids = _category_ids(targets, category)
    out = []
    for target_id, rs in by_target.items():
        target = known.get(target_id)
        automation = ids.get(target_id) or f"{category}/{target_id}/"
        out.append(_run(target, target_id, automation, rs, root, notes, max_results))
    return out


def _log(runs_: list[dict[str, Any]]) -> dict[str, Any]:
    return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": runs_}


def documents(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    project_root: str | None = None,
    max_runs: int = MAX_RUNS_PER_FILE,
    *,
    category: str = "abicheck",
    notes: bool = False,
    max_results: int = MAX_SHOWN_RESULTS,
) -> list[dict[str, Any]]:
    """SARIF logs of at most ``max_runs`` runs each, for one upload per file.

    Always at least one document (with no runs when there are no targets).
    """
    if max_runs < 1:
        raise ValueError("max_runs must be at least 1")
    all_runs = runs(
        results, targets, project_root, category=category, notes=notes, max_results=max_results
    )
    chunks = [all_runs[i : i + max_runs] for i in range(0, len(all_runs), max_runs)]
    return [_log(chunk) for chunk in chunks] or [_log([])]


def dumps(doc: dict[str, Any]) -> str:
    # indent forces json's pure-Python encoder: only for the small runs people read
    compact = sum(len(r["results"]) for r in doc["runs"]) > 2000
    return json_text(json.dumps(doc, indent=None if compact else 2, ensure_ascii=False)) + "\n"


def omissions(doc: dict[str, Any]) -> list[str]:
    """What the document left out, one line per kind, for people (standard error)."""
    notes = over = 0
    for run in doc["runs"]:
        omitted = run.get("properties", {}).get("omitted", {})
        notes += omitted.get("notes", 0)
        over += omitted.get("overLimit", 0)
    lines = []
    if notes:
        lines.append(
            f"abicheck: SARIF: {notes} note-level results left out; --sarif-notes includes them"
        )
    if over:
        lines.append(
            f"abicheck: SARIF: {over} less severe results left out, past GitHub's "
            f"{MAX_SHOWN_RESULTS} per run; --format json has them all"
        )
    return lines


def _tell(docs: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """The omissions, and a file past GitHub's upload size, said on standard error."""
    for name, doc in docs:
        for line in omissions(doc):
            print(message_line(line), file=sys.stderr)
        size = len(gzip.compress(name.encode("utf-8"), compresslevel=6))
        if size > MAX_GZIP_BYTES:
            print(
                message_line(
                    f"abicheck: SARIF: {size >> 20} MiB gzip-compressed, over GitHub's "
                    "10 MB upload limit; leave out --sarif-notes or split the kernels"
                ),
                file=sys.stderr,
            )


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
    category: str = "abicheck",
    notes: bool | None = None,
    fail_on: Severity | str | None = None,
) -> str:
    """One SARIF log with a run per target (standard output; colour is ignored).

    Beyond :data:`MAX_RUNS_PER_FILE` targets the log is valid SARIF but more than GitHub
    takes in one upload: write :func:`documents` to several files instead.
    """
    doc = _log(
        runs(
            results,
            targets,
            project_root,
            category=category,
            notes=_wants_notes(notes, fail_on),
        )
    )
    text = dumps(doc)
    _tell([(text, doc)])
    return text


def report_files(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
    max_runs: int = MAX_RUNS_PER_FILE,
    category: str = "abicheck",
    notes: bool | None = None,
    fail_on: Severity | str | None = None,
) -> list[tuple[str, str]]:
    """:func:`documents` as (file-name suffix, text) pairs: ``""``, ``"-2"``, ``"-3"`` ...,
    for ``-o NAME.sarif`` to become ``NAME.sarif``, ``NAME-2.sarif`` ...

    Upload each file in its own ``upload-sarif`` step: given a directory, the action
    merges the files into one upload, which GitHub again limits to 20 runs.
    """
    docs = documents(
        results,
        targets,
        project_root,
        max_runs,
        category=category,
        notes=_wants_notes(notes, fail_on),
    )
    texts = [dumps(doc) for doc in docs]
    _tell(list(zip(texts, docs, strict=True)))
    return [("" if i == 0 else f"-{i + 1}", text) for i, text in enumerate(texts)]


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class SarifOptions:
    project_root: str | None = None
    category: str = "abicheck"  # --sarif-category
    notes: bool | None = None  # --sarif-notes; None: only when --fail-on info
    fail_on: Severity | str | None = None
    # several files when the runs exceed one upload (report_files), else one document
    split: bool = False


class SarifReporter:
    Options: ClassVar[type[SarifOptions]] = SarifOptions

    def __init__(self, options: SarifOptions = SarifOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> Output:
        o = self.options
        write = report_files if o.split else _report
        return write(
            report.results,
            report.targets,
            project_root=o.project_root,
            category=o.category,
            notes=o.notes,
            fail_on=o.fail_on,
        )
