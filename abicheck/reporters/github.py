"""``--format github``: GitHub Actions workflow commands, one annotation per finding.

``::error file=F,line=N,title=T::MESSAGE`` (``::warning``, ``::notice`` for warnings and
information), which the runner turns into annotations on the run and on the pull
request's files. Escaping follows the runner's own rules (actions/toolkit
``packages/core/src/command.ts``): in the message ``%``, CR and LF become ``%25``,
``%0D``, ``%0A``; in a property value ``:`` and ``,`` too (``%3A``, ``%2C``). Paths are
relative to the project root, which in a workflow should be ``$GITHUB_WORKSPACE`` (the
runner resolves ``file=`` against it).

GitHub Actions shows at most 10 annotations of each type per step ("GitHub Actions are
limited to 10 warning annotations and 10 error annotations per step",
https://docs.github.com/en/rest/checks/runs, annotations object; notices likewise), and
would pick the first ones written. So the most important come first (errors, then
warnings, then notices; within each, the worst verdict first: unreadable, refused,
loads-unsafe, ...), at most :data:`MAX_PER_LEVEL` per type, and what is left out is
not written at all: a plain summary line, then a last ``::notice`` counting the
omissions and naming the outputs that hold everything. That notice takes one of the
ten notice places, so notices are cut at nine when anything is left out.

With ``$GITHUB_STEP_SUMMARY`` set (as on every Actions runner) the report also appends
a job summary in Markdown to that file: the verdict matrix (modules x kernels; the
worst :data:`MAX_SUMMARY_ROWS` modules) and the rules found most often. GitHub takes at
most 1 MiB of summary per step ("Adding a job summary", docs.github.com), which those
bounds keep well under. Every input-controlled string in it is escaped for Markdown.
"""

from __future__ import annotations

import os
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from abicheck import ruledata
from abicheck.model import Finding, KernelTarget, Result, Severity, Verdict
from abicheck.reporters.base import Report
from abicheck.reporters.escape import display, message_line, safe_text
from abicheck.reporters.locations import location, project_path

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}
MAX_PER_LEVEL = 10
MAX_SUMMARY_ROWS = 100
MAX_SUMMARY_RULES = 10


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(f: Finding, result: Result, project_root: str | None = None) -> str:
    file, line = location(f, result.module, project_root)
    title = f"{f.rule} {f.name} ({result.kernel})"
    # The runner's own escaping (%0A ...) keeps the annotation one command and its line
    # breaks exact; display() before it, so that no terminal escape, C1 or undecodable
    # byte reaches the log either.
    lines = [f.message]
    if f.kernel_says:
        lines += ["kernel says: " + s for s in f.kernel_says.split("\n")]
    lines.append(f"fix: {f.fix}")
    message = display("\n".join(lines), keep_newlines=True)
    props = ",".join(
        f"{key}={escape_property(display(value, keep_newlines=True))}"
        for key, value in (("file", file), ("line", str(line)), ("title", title))
    )
    return f"::{COMMAND[f.severity]} {props}::{escape_data(message)}"


def _chosen(
    results: Sequence[Result],
) -> tuple[list[tuple[Finding, Result]], Counter[Severity]]:
    """The annotations to write, most important first, and how many of each severity
    are left out."""
    ordered = sorted(
        ((f, r) for r in results for f in r.findings),
        # sorted() is stable: equal keys keep the kernel's order within a result
        key=lambda fr: (fr[0].severity.rank, fr[1].verdict.rank),
    )
    caps = dict.fromkeys(Severity, MAX_PER_LEVEL)
    totals = Counter(f.severity for f, _ in ordered)
    if any(n > MAX_PER_LEVEL for n in totals.values()):
        caps[Severity.INFO] = MAX_PER_LEVEL - 1  # the closing notice needs a place
    kept: list[tuple[Finding, Result]] = []
    taken: Counter[Severity] = Counter()
    for f, r in ordered:
        if taken[f.severity] < caps[f.severity]:
            taken[f.severity] += 1
            kept.append((f, r))
    return kept, totals - taken


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
) -> str:
    """Workflow commands, the most important first (colour is ignored); appends the job
    summary to ``$GITHUB_STEP_SUMMARY`` when it is set."""
    kept, left_out = _chosen(results)
    out = [annotation(f, r, project_root) for f, r in kept]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "nothing checked"
    pairs = "pair" if len(results) == 1 else "pairs"
    # a plain log line, not a command: "abicheck:" starts it
    out.append(safe_text(f"abicheck: {len(results)} (module, kernel) {pairs}: {summary}"))
    if left_out:
        parts = ", ".join(
            f"{left_out[s]} {COMMAND[s]}{'s' if left_out[s] != 1 else ''}"
            for s in Severity
            if left_out[s]
        )
        n = sum(left_out.values())
        out.append(
            f"::notice title=abicheck::{n} more annotations left out ({parts}): GitHub "
            f"shows {MAX_PER_LEVEL} of each type per step. The job summary counts them; "
            "--format text or --format json lists them all."
        )
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        write_summary(path, results, targets, project_root)
    return "\n".join(out) + "\n"


# --- the job summary ----------------------------------------------------------------------

# CommonMark's backslash-escapable ASCII punctuation that could start markup: emphasis,
# code, links, HTML, tables, headings, lists
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~&])")


def markdown(text: str) -> str:
    """An input-controlled field as literal Markdown text, on one line."""
    return _MARKDOWN.sub(r"\\\1", display(text))


def summary_markdown(
    results: Sequence[Result], targets: Sequence[KernelTarget], project_root: str | None = None
) -> str:
    kernels = [t.release for t in targets] or sorted({r.kernel for r in results})
    for r in results:
        if r.kernel not in kernels:
            kernels.append(r.kernel)
    matrix: dict[str, dict[str, Verdict]] = {}
    for r in results:
        module = project_path(r.module or ".", project_root)
        row = matrix.setdefault(module, {})
        # two targets of one release: the worse verdict
        if r.kernel not in row or r.verdict.rank < row[r.kernel].rank:
            row[r.kernel] = r.verdict
    worst = sorted(matrix, key=lambda m: (sorted(v.rank for v in matrix[m].values()), m))
    counts = Counter(r.verdict.value for r in results)
    lines = [
        "## abicheck",
        "",
        f"{len(matrix)} modules × {len(kernels)} kernels: "
        + (", ".join(f"{n} {v}" for v, n in counts.most_common()) or "nothing checked"),
        "",
        "| module | " + " | ".join(markdown(k) for k in kernels) + " |",
        "|---" * (len(kernels) + 1) + "|",
    ]
    for module in worst[:MAX_SUMMARY_ROWS]:
        row = matrix[module]
        cells = [f"`{row[k].value}`" if k in row else "" for k in kernels]
        lines.append(f"| {markdown(module)} | " + " | ".join(cells) + " |")
    if len(worst) > MAX_SUMMARY_ROWS:
        lines += [
            "",
            f"{len(worst) - MAX_SUMMARY_ROWS} more modules, none worse than those shown: "
            "`--format text` or `--format json` lists them all.",
        ]
    rules = Counter((f.rule, f.severity) for r in results for f in r.findings)
    if rules:
        lines += ["", "### Top rules", "", "| rule | severity | findings |", "|---|---|---|"]
        for (rule_id, severity), n in rules.most_common(MAX_SUMMARY_RULES):
            known = ruledata.get_rule(rule_id)
            name = f" {known.name}" if known else ""
            lines.append(f"| {markdown(rule_id + name)} | {severity.value} | {n} |")
        lines += ["", "`abicheck rule ID` explains a rule."]
    return "\n".join(lines) + "\n"


def write_summary(
    path: str,
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    project_root: str | None = None,
) -> None:
    """Appends, as GitHub asks: several steps (and tools) share one summary file."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(summary_markdown(results, targets, project_root))
    except OSError as e:
        # the annotations are still worth having: say so and go on
        print(message_line(f"abicheck: cannot write the job summary {path}: {e}"), file=sys.stderr)


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class GithubOptions:
    project_root: str | None = None


class GithubReporter:
    Options: ClassVar[type[GithubOptions]] = GithubOptions

    def __init__(self, options: GithubOptions = GithubOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> str:
        return _report(report.results, report.targets, project_root=self.options.project_root)
