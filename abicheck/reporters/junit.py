"""``--format junit``: JUnit XML for CI test-report views (GitLab, Jenkins, Azure, ...).

One ``<testsuite>`` per kernel target and in it one ``<testcase>`` per module: the
question a CI view answers is "does this module load into this kernel", so that is the
test, as ruff writes one testcase per file rather than per rule. (One testcase per rule
per pair made 197 078 testcases and 53.6 MB for Debian's 4 022-module tree.)

A pair's findings at or above ``fail_on`` (``error``, ``warning`` or ``info``, as
``--fail-on``; default ``error``) make its testcase fail, with one ``<failure>`` (the
schemas CI tools follow allow one per testcase) whose message counts them and whose
text lists them all. Errors only by default, as with the exit code: warnings such as
TN001 (out-of-tree taint) hold for every out-of-tree module and would leave every case
red. Lower findings (one line each), the verdict and the number of hidden findings
(``--ignore``, per-module ignores, the baseline) go to ``<system-out>``. An unreadable module is an
``<error>``, not a failure: nothing was checked. Nothing volatile (times, host names,
the tool's version) is written, so two runs give the same bytes. The document follows
the Jenkins xUnit plugin's ``junit-10.xsd`` (tests/data/junit-10.xsd), the strictest of
the schemas CI tools publish: ``<testcase>`` has no ``<properties>`` and
``<testsuites>`` no ``skipped`` attribute.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

from abicheck.model import Finding, KernelTarget, Result, Severity, Verdict
from abicheck.reporters.base import Report
from abicheck.reporters.escape import display, safe_text
from abicheck.reporters.locations import location, project_path

# XML 1.0 cannot carry most control characters, even as character references; display()
# writes them as visible text first, this catches what it leaves (U+FFFE, U+FFFF)
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _clean(text: str) -> str:
    """One field from an input, as one line of XML-safe text."""
    return _xml(display(text))


def _describe(f: Finding, where: tuple[str, int]) -> str:
    lines = [
        f"{f.severity.value} {f.rule} {f.name}: {_clean(f.message)}",
        f"  at {_clean(where[0])}:{where[1]}",
    ]
    if f.kernel_says:
        lines += [f"  kernel says: {_clean(s)}" for s in f.kernel_says.split("\n")]
    if f.errno:
        lines.append(f"  insmod fails with {f.errno}")
    lines.append(f"  fix: {_clean(f.fix)}")
    if f.evidence:
        evidence = json.dumps(dict(f.evidence), sort_keys=True, ensure_ascii=False)
        lines.append("  evidence: " + _clean(evidence))
    return "\n".join(lines)


def _case(
    result: Result, suite_name: str, root: str | None, fail_on: Severity
) -> tuple[ET.Element, str | None]:
    """The testcase of one (module, kernel) pair, and its outcome: "failure", "error"
    or None (passed)."""
    module = _clean(project_path(result.module or ".", root))
    case = ET.Element("testcase", name=module, classname=suite_name)
    failing = [f for f in result.findings if f.severity.rank <= fail_on.rank]
    passing = [f for f in result.findings if f.severity.rank > fail_on.rank]
    outcome: str | None = None
    if result.verdict is Verdict.UNREADABLE or failing:
        outcome = "error" if result.verdict is Verdict.UNREADABLE else "failure"
        shown = failing or list(result.findings)
        first = shown[0] if shown else None
        n = len(shown)
        head = f"{result.verdict.value}: {n} finding{'s' if n != 1 else ''}"
        message = f"{head}; first: {first.rule} {first.message}" if first else head
        element = ET.SubElement(
            case,
            outcome,
            message=_clean(message),
            type=first.severity.value if first else result.verdict.value,
        )
        element.text = "\n\n".join(_describe(f, location(f, result.module, root)) for f in shown)
    out = [f"verdict: {result.verdict.value}"]
    if result.taints:
        out.append("taints: " + "".join(t.letter for t in result.taints))
    if result.suppressed:
        n = len(result.suppressed)
        out.append(
            f"{n} finding{'s' if n != 1 else ''} not reported "
            "(--ignore, per-module ignores or the baseline)"
        )
    # below --fail-on: one line each, not the full evidence (a tree's thousands of
    # TN001/SG003 would otherwise be most of the file); --format json has the rest
    out += [f"{f.severity.value} {f.rule} {f.name}: {_clean(f.message)}" for f in passing]
    ET.SubElement(case, "system-out").text = "\n".join(out)
    return case, outcome


def _suite(
    target_id: str,
    results: Sequence[Result],
    target: KernelTarget | None,
    root: str | None,
    fail_on: Severity,
) -> ET.Element:
    kernel = target.release if target is not None else (results[0].kernel if results else "")
    name = _clean(kernel or target_id)
    suite = ET.Element("testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    values = [("kernel", kernel), ("target", target_id)]
    if target is not None:
        source = target.source if target.kind == "running" else project_path(target.source, root)
        values.append(("target_source", source))
    for key, value in values:
        ET.SubElement(props, "property", name=key, value=_clean(value))
    failures = errors = 0
    for r in results:
        case, outcome = _case(r, name, root, fail_on)
        suite.append(case)
        failures += outcome == "failure"
        errors += outcome == "error"
    suite.set("tests", str(len(results)))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", "0")
    return suite


def document(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    project_root: str | None = None,
    fail_on: Severity | str | None = Severity.ERROR,
) -> ET.Element:
    threshold = Severity(fail_on or Severity.ERROR)
    by_id = {t.id: t for t in targets}
    by_target: dict[str, list[Result]] = {t.id: [] for t in targets}
    for r in results:
        by_target.setdefault(r.target, []).append(r)
    root = ET.Element("testsuites", name="abicheck")
    tests = failures = errors = 0
    for target_id, rs in by_target.items():
        if not rs:
            continue
        suite = _suite(target_id, rs, by_id.get(target_id), project_root, threshold)
        root.append(suite)
        tests += int(suite.get("tests", "0"))
        failures += int(suite.get("failures", "0"))
        errors += int(suite.get("errors", "0"))
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    return root


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
    fail_on: Severity | str | None = Severity.ERROR,
) -> str:
    """The JUnit XML document (colour is ignored)."""
    root = document(results, targets, project_root, fail_on)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return safe_text('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n")


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class JunitOptions:
    project_root: str | None = None
    fail_on: Severity | str | None = Severity.ERROR


class JunitReporter:
    Options: ClassVar[type[JunitOptions]] = JunitOptions

    def __init__(self, options: JunitOptions = JunitOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> str:
        o = self.options
        return _report(
            report.results, report.targets, project_root=o.project_root, fail_on=o.fail_on
        )
