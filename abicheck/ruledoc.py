"""A rule's documentation as text (``abicheck rule ID``) or as data (``--format json``)."""

from __future__ import annotations

import textwrap
from typing import Any

from abicheck.ruledata import Rule

_SECTIONS = (
    ("what", "What it does"),
    ("why", "Why is this bad"),
    ("example", "Example"),
    ("how_to_fix", "How to fix"),
)


def rule_as_dict(rule: Rule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "category": rule.category,
        "severity": rule.severity.value,
        "effect": rule.effect.value,
        "stage": rule.stage,
        "summary": rule.summary,
        "kernel_says": rule.kernel_says,
        "errno": rule.errno,
        "taint": rule.taint,
        "fix": rule.fix,
        "docs": {k: rule.docs.get(k, "") for k, _ in _SECTIONS},
        "references": list(rule.docs.get("references", [])),
    }


def rule_as_text(rule: Rule) -> str:
    out = [
        f"{rule.id} ({rule.name})",
        "",
        f"Category: {rule.category}   Severity: {rule.severity.value}   "
        f"Effect: {rule.effect.value}" + (f"   Taint: {rule.taint}" if rule.taint else ""),
        "",
        rule.summary,
    ]
    for key, title in _SECTIONS:
        body = rule.docs.get(key, "").strip()
        if body:
            out += ["", f"## {title}", "", body]
    says = [v for v in rule.kernel_says.values() if v]
    if says:
        out += ["", "## The kernel says", ""]
        for gen, text in rule.kernel_says.items():
            if text:
                label = "" if gen == "default" else f"({gen}) "
                out.append(textwrap.indent(label + text, "    "))
    refs = rule.docs.get("references", [])
    if refs:
        out += ["", "## References", ""] + [f"- {r}" for r in refs]
    return "\n".join(out)
