"""``--format junit``: JUnit XML for CI test-report views (GitLab, Jenkins, Azure, ...).

One ``<testsuite>`` per (module, kernel) pair and one ``<testcase>`` per rule that ran
on it: every registered check runs on every readable pair (a check that does not apply
simply finds nothing), so a clean pair is a suite of passing tests, never an empty file.
An unreadable module ran no check: its suite holds the one failing IN001 testcase.

A rule's findings at or above ``fail_on`` (``error``, ``warning`` or ``info``, as
``--fail-on``; default ``error``) make its testcase fail, with one ``<failure>`` listing
them all (the schemas CI tools follow allow one per testcase); lower ones are printed in
the testcase's ``<system-out>``. Errors only by default, as with the exit code: warnings
such as TN001 (out-of-tree taint) hold for every out-of-tree module and would leave
every suite red. A rule whose findings were all hidden (``--ignore``, per-module
ignores, the baseline) is ``<skipped>``, not passed. Nothing volatile (times, host
names, the tool's version) is written, so two runs give the same bytes.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from abicheck import checks, ruledata
from abicheck.model import Finding, KernelTarget, Result, Severity, Verdict
from abicheck.reporters.escape import display, safe_text
from abicheck.reporters.sarif import location, project_path

UNREADABLE_RULE = "IN001"

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


def _rule_ids(result: Result) -> list[str]:
    if result.verdict is Verdict.UNREADABLE:
        return [UNREADABLE_RULE]
    ids = set(checks.load_all())
    # a finding from a rule outside the registry still needs its testcase
    ids.update(f.rule for f in result.findings)
    ids.update(result.suppressed)
    return sorted(ids)


def _suite(
    result: Result, target: KernelTarget | None, root: str | None, fail_on: Severity
) -> ET.Element:
    module = _clean(project_path(result.module or ".", root))
    name = f"{module} [{_clean(result.kernel)}]"
    by_rule: dict[str, list[Finding]] = {}
    for f in result.findings:
        by_rule.setdefault(f.rule, []).append(f)
    suite = ET.Element("testsuite", name=name)
    props = ET.SubElement(suite, "properties")
    values = [
        ("module", module),
        ("kernel", result.kernel),
        ("target", result.target),
        ("verdict", result.verdict.value),
        ("taints", "".join(t.letter for t in result.taints)),
    ]
    if target is not None:
        source = target.source if target.kind == "running" else project_path(target.source, root)
        values.append(("target_source", source))
    for key, value in values:
        ET.SubElement(props, "property", name=key, value=_clean(value))
    hidden = list(result.suppressed)
    tests = failures = skipped = 0
    for rule_id in _rule_ids(result):
        tests += 1
        try:
            title = f"{rule_id} {ruledata.rule(rule_id).name}"
        except KeyError:
            title = rule_id
        case = ET.SubElement(suite, "testcase", name=title, classname=name)
        found = by_rule.get(rule_id, [])
        failing = [f for f in found if f.severity.rank <= fail_on.rank]
        if not failing and rule_id in hidden:
            skipped += 1
            n = hidden.count(rule_id)
            ET.SubElement(
                case,
                "skipped",
                message=f"{n} finding{'s' if n > 1 else ''} not reported "
                "(--ignore, per-module ignores or the baseline)",
            )
        if failing:
            failures += 1
            first = failing[0]
            more = f" (and {len(failing) - 1} more)" if len(failing) > 1 else ""
            failure = ET.SubElement(
                case, "failure", message=_clean(first.message + more), type=first.severity.value
            )
            failure.text = "\n\n".join(
                _describe(f, location(f, result.module, root)) for f in failing
            )
        passing = [f for f in found if f.severity.rank > fail_on.rank]
        if passing:
            out = ET.SubElement(case, "system-out")
            out.text = "\n\n".join(_describe(f, location(f, result.module, root)) for f in passing)
    suite.set("tests", str(tests))
    suite.set("failures", str(failures))
    suite.set("errors", "0")
    suite.set("skipped", str(skipped))
    return suite


def document(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    project_root: str | None = None,
    fail_on: Severity | str | None = Severity.ERROR,
) -> ET.Element:
    threshold = Severity(fail_on or Severity.ERROR)
    by_id = {t.id: t for t in targets}
    root = ET.Element("testsuites", name="abicheck")
    tests = failures = skipped = 0
    for r in results:
        suite = _suite(r, by_id.get(r.target), project_root, threshold)
        root.append(suite)
        tests += int(suite.get("tests", "0"))
        failures += int(suite.get("failures", "0"))
        skipped += int(suite.get("skipped", "0"))
    root.set("tests", str(tests))
    root.set("failures", str(failures))
    root.set("errors", "0")
    root.set("skipped", str(skipped))
    return root


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
    fail_on: Severity | str | None = Severity.ERROR,
    **_: object,
) -> str:
    """The JUnit XML document (colour is ignored)."""
    root = document(results, targets, project_root, fail_on)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode")
    return safe_text('<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n")
