"""``--format concise``: one line per finding, ``path: RULE [kernel] message``, as ruff's
concise output and ``shellcheck -f gcc`` do, so that a run over thousands of modules
can be grepped, sorted and counted with the usual tools. Also ``--statistics``: one line
per rule with its count, like ruff's.

Every field is input-controlled (module paths, kernel releases, messages quoting the
module's bytes) and goes through the escaping helpers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from abicheck.model import KernelTarget, Result, Severity
from abicheck.reporters.base import Report
from abicheck.reporters.escape import display, display_path, safe_text


def finding_lines(results: Sequence[Result]) -> list[str]:
    """The concise lines alone, also used by the text reporter's --quiet mode."""
    return [
        f"{display_path(r.module)}: {f.rule} [{display(r.target)}] {display(f.message)}"
        for r in results
        for f in r.findings
    ]


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    quiet: bool = False,
) -> str:
    lines = finding_lines(results)
    if not quiet:
        # ruff's closing line: the count a person reads first, never a verdict
        severities = Counter(f.severity for r in results for f in r.findings)
        parts = [f"{severities[s]} {s.value}" for s in Severity if severities[s]]
        lines.append(
            f"Found {sum(severities.values())} finding(s)"
            + (f" ({', '.join(parts)})" if parts else "")
            + f" in {len({r.module for r in results})} module(s)"
            + f" × {len({r.target for r in results})} kernel(s)."
        )
    return safe_text("".join(line + "\n" for line in lines))


def statistics(results: Sequence[Result]) -> str:
    """``--statistics``: count, rule ID, severity and kebab name, most frequent first (ties
    by rule ID, so that two runs compare line by line)."""
    counts: Counter[str] = Counter()
    about: dict[str, tuple[str, str]] = {}
    for r in results:
        for f in r.findings:
            counts[f.rule] += 1
            about[f.rule] = (f.severity.value, f.name)
    if not counts:
        return "no findings\n"
    width = len(str(max(counts.values())))
    rows = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return safe_text(
        "".join(
            f"{n:>{width}}  {rule:<6} {about[rule][0]:<7} {display(about[rule][1])}\n"
            for rule, n in rows
        )
    )


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class ConciseOptions:
    quiet: bool = False


class ConciseReporter:
    """``--format concise``: one line per finding, for grep and sort."""

    Options: ClassVar[type[ConciseOptions]] = ConciseOptions

    def __init__(self, options: ConciseOptions = ConciseOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> str:
        return _report(report.results, report.targets, quiet=self.options.quiet)
