"""A rule's documentation, rendered once: as text (``abicheck rule ID``), as Markdown
(SARIF's rule help) or as data (``abicheck rule --format json``)."""

from __future__ import annotations

import textwrap
from typing import Any

from abicheck.ruledata import Rule

# the documentation sections of a rule, in the order every rendering shows them
SECTIONS = (
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
        "docs": {k: rule.docs.get(k, "") for k, _ in SECTIONS},
        "references": list(rule.docs.get("references", [])),
    }


def rule_as_text(rule: Rule) -> str:
    """``abicheck rule ID``: the documentation for a terminal."""
    return _render(rule, markdown=False)


def rule_as_markdown(rule: Rule) -> str:
    """The same documentation in Markdown (SARIF's help.markdown, shown by GitHub)."""
    return _render(rule, markdown=True)


def _render(rule: Rule, markdown: bool) -> str:
    # one walk over the sections for both flavours, so that a section added to the rule
    # data shows in the terminal and on GitHub alike
    taint = rule.taint
    if markdown:
        head = (
            f"**{rule.id}** `{rule.name}` · category: {rule.category} · "
            f"severity: {rule.severity.value} · effect: {rule.effect.value}"
            + (f" · taint: {taint}" if taint else "")
        )
        out = [head, "", rule.summary]
    else:
        out = [
            f"{rule.id} ({rule.name})",
            "",
            f"Category: {rule.category}   Severity: {rule.severity.value}   "
            f"Effect: {rule.effect.value}" + (f"   Taint: {taint}" if taint else ""),
            "",
            rule.summary,
        ]
    for key, title in SECTIONS:
        body = str(rule.docs.get(key, "")).strip()
        if body:
            out += ["", f"## {title}", "", body]
    says = [(gen, text) for gen, text in rule.kernel_says.items() if text]
    if says:
        out += ["", "## The kernel says", ""]
        for gen, text in says:
            if markdown:
                if gen != "default":
                    out.append(f"{gen}:")
                out += ["```", text, "```"]
            else:
                label = "" if gen == "default" else f"({gen}) "
                out.append(textwrap.indent(label + text, "    "))
    refs = rule.docs.get("references", [])
    if refs:
        out += ["", "## References", ""] + [f"- {r}" for r in refs]
    if markdown:
        out += ["", f"Run `abicheck rule {rule.id}` for this text in a terminal."]
    return "\n".join(out)
