"""Text and JSON for `abicheck config diff|explain|predict`. Reporters only format:
everything they print was computed by diff, classify, explain and predict."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from abicheck.kconfig import table
from abicheck.kconfig.explain import SymbolInfo
from abicheck.kconfig.kconfig_tree import ProbeCall
from abicheck.kconfig.model import Impact, KconfigFinding, describe
from abicheck.kconfig.predict import Prediction
from abicheck.kconfig.toolchain import PACKAGES
from abicheck.targets.kernel_config import ConfigSource

NONE_SHOWN = 15  # irrelevant changes listed in text output before "... and N more"


@dataclass
class DiffResult:
    a: ConfigSource
    b: ConfigSource
    findings: list[KconfigFinding]
    unresolved: list[str]
    resolved_with: dict[str, str | None]  # "a"/"b" → Kconfig tree used, or None
    defaulted: dict[str, int]
    module_h: str | None
    notes: list[str] = field(default_factory=list)


def severity(f: KconfigFinding) -> str:
    return table.categories()[f.impact].severity


def counts(findings: Sequence[KconfigFinding]) -> dict[str, int]:
    c = Counter(f.impact.value for f in findings)
    return {i.value: c[i.value] for i in Impact if c[i.value]}


def abi_relevant(findings: Sequence[KconfigFinding]) -> bool:
    return any(f.impact is not Impact.NONE for f in findings)


def _finding_dict(f: KconfigFinding, a: str = "a", b: str = "b") -> dict[str, Any]:
    return {
        "option": f.option,
        a: f.change.old,
        b: f.change.new,
        f"{a}_state": describe(f.change.old),
        f"{b}_state": describe(f.change.new),
        f"{a}_default": f.change.old_default,
        f"{b}_default": f.change.new_default,
        "impact": f.impact.value,
        "severity": severity(f),
        "title": table.categories()[f.impact].title,
        "message": f.message,
        "effects": [
            {"impact": e.impact.value, "where": e.where, "detail": e.detail} for e in f.effects
        ],
        "fix": f.fix,
        "prompt": f.prompt,
        **({"cause": f.cause, "tool": f.tool} if f.cause else {}),
        **{k: v for k, v in f.extra.items() if k not in ("cause_kind",)},
        **({"cause_kind": f.extra["cause_kind"]} if "cause_kind" in f.extra else {}),
    }


def _source_dict(s: ConfigSource, tree: str | None) -> dict[str, Any]:
    return {
        "spec": s.spec,
        "kind": s.kind,
        "file": s.label,
        "release": s.release,
        "options": len(s.values),
        "resolved_with": tree,
        "module_h": s.module_h_path,
        "notes": list(s.notes),
    }


# -- diff -----------------------------------------------------------------------------------


def diff_json(r: DiffResult) -> str:
    return (
        json.dumps(
            {
                "command": "config diff",
                "a": _source_dict(r.a, r.resolved_with.get("a")),
                "b": _source_dict(r.b, r.resolved_with.get("b")),
                "summary": {
                    "changed": len(r.findings),
                    "abi_relevant": sum(f.impact is not Impact.NONE for f in r.findings),
                    "by_impact": counts(r.findings),
                    "unresolved": len(r.unresolved),
                    "defaulted": r.defaulted,
                },
                "module_h": r.module_h,
                "findings": [_finding_dict(f) for f in r.findings],
                "unresolved": r.unresolved,
                "notes": r.notes,
            },
            indent=2,
        )
        + "\n"
    )


def _side(s: ConfigSource, tree: str | None) -> str:
    text = f"{s.label} ({s.kind}, {len(s.values)} options"
    if s.release:
        text += f", {s.release}"
    text += ")"
    if tree:
        text += f"\n      absent options resolved with the Kconfig of {tree}"
    return text


def diff_text(r: DiffResult, show_all: bool = False) -> str:
    out = [
        f"a: {_side(r.a, r.resolved_with.get('a'))}",
        f"b: {_side(r.b, r.resolved_with.get('b'))}",
    ]
    if r.module_h:
        out.append(f"struct module judged from {r.module_h}")
    by = counts(r.findings)
    relevant = sum(v for k, v in by.items() if k != Impact.NONE.value)
    out.append(
        f"{len(r.findings)} options differ, {relevant} of them matter to modules ("
        + ", ".join(f"{k} {v}" for k, v in by.items())
        + ")"
    )
    out.append("")
    out += _findings_text(r.findings, "a", "b", show_all)
    if r.unresolved:
        out.append(
            f"{len(r.unresolved)} options are absent on one side and could not be resolved to "
            "their defaults: no Kconfig files there (headers packages ship none); give "
            "--tree SRC (a kernel source tree of that version) to resolve them."
        )
    out += r.notes
    return "\n".join(out).rstrip() + "\n"


def _findings_text(findings: Sequence[KconfigFinding], a: str, b: str, show_all: bool) -> list[str]:
    out: list[str] = []
    shown_none = 0
    hidden = 0
    for f in findings:
        if f.impact is Impact.NONE and not show_all:
            if shown_none >= NONE_SHOWN:
                hidden += 1
                continue
            shown_none += 1
        label = severity(f)
        old = describe(f.change.old) + (" (default)" if f.change.old_default else "")
        new = describe(f.change.new) + (" (default)" if f.change.new_default else "")
        out.append(f"{label:<7} {f.option}  {a}: {old}  {b}: {new}  [{f.impact.value}]")
        if f.prompt:
            out.append(f"        prompt: {f.prompt}")
        for e in f.effects[:4]:
            out.append(f"        {e.impact.value}: {e.detail} — {e.where}")
        if len(f.effects) > 4:
            out.append(f"        ... and {len(f.effects) - 4} more places")
        for note in f.extra.get("notes", []):
            out.append(f"        note: {note}")
        if f.cause:
            out.append(f"        cause: {f.cause}")
        if f.extra.get("consequence"):
            out.append(f"        consequence: {f.extra['consequence']}")
        if f.impact is not Impact.NONE:
            out.append(f"        fix: {f.fix}")
    if hidden:
        out.append(f"... and {hidden} more options with no known effect on modules (--all)")
    if findings:
        out.append("")
    return out


# -- explain ---------------------------------------------------------------------------------


def explain_dict(info: SymbolInfo, findings: Sequence[KconfigFinding]) -> dict[str, Any]:
    return {
        "command": "config explain",
        "option": "CONFIG_" + info.name,
        "type": info.type,
        "value": info.value,
        "prompt": info.prompt,
        "defined_at": info.defined_at,
        "depends_on": info.direct_dep,
        "selected_by": info.selected_by,
        "implied_by": info.implied_by,
        "written": info.written,
        "help": info.help,
        "because": [
            {
                "option": "CONFIG_" + s.symbol,
                "value": s.value,
                "reason": s.reason,
                "where": s.where,
                "depth": s.depth,
            }
            for s in info.steps
        ],
        "abi": [_finding_dict(f) for f in findings],
    }


def explain_text(info: SymbolInfo, impacts: Sequence[tuple[str, str, str]]) -> str:
    out = [f"CONFIG_{info.name} = {info.value}  ({info.type})"]
    if info.prompt:
        out.append(f"  prompt: {info.prompt}")
    out.append(f"  defined at: {', '.join(info.defined_at)}")
    if info.direct_dep not in ("y", ""):
        out.append(f"  depends on: {info.direct_dep}")
    if info.selected_by:
        out.append(f"  selected by: {info.selected_by}")
    if info.implied_by:
        out.append(f"  implied by: {info.implied_by}")
    if info.written is not None:
        out.append(f"  the .config says: {info.written}")
    out.append("  why:")
    for s in info.steps:
        out.append(f"  {'  ' * (s.depth + 1)}{s.symbol} = {s.value}: {s.reason} ({s.where})")
    if impacts:
        out.append("  matters to modules:")
        for impact, where, detail in impacts:
            out.append(f"    {impact}: {detail}" + (f" — {where}" if where else ""))
    else:
        out.append("  matters to modules: no effect known (no entry in rules/config)")
    if info.help:
        first = info.help.split("\n\n", 1)[0].replace("\n", " ")
        out.append(f"  help: {first}")
    return "\n".join(out) + "\n"


# -- predict ---------------------------------------------------------------------------------


def _probe_dict(p: ProbeCall) -> dict[str, Any]:
    return {"command": p.command, "where": p.where, "problem": p.problem}


def predict_json(p: Prediction) -> str:
    return (
        json.dumps(
            {
                "command": "config predict",
                "tree": p.srctree,
                "config": p.config_path,
                "toolchain": p.environment,
                "trusted_tree": p.trusted,
                "module_h": p.module_h,
                "summary": {
                    "changed": len(p.findings),
                    "abi_relevant": sum(f.impact is not Impact.NONE for f in p.findings),
                    "by_impact": counts(p.findings),
                    "by_tool": {t: len(o) for t, o in p.by_tool().items()},
                },
                "missing_tools": {
                    tool: {
                        "package": PACKAGES.get(tool, tool),
                        "wanted_at": sorted({c.where for c in calls}),
                    }
                    for tool, calls in p.missing_tools.items()
                },
                "findings": [_finding_dict(f, "config", "olddefconfig") for f in p.findings],
                "unevaluated": [_probe_dict(u) for u in p.unevaluated],
                "warnings": p.warnings,
            },
            indent=2,
        )
        + "\n"
    )


def predict_text(p: Prediction, show_all: bool = False) -> str:
    out = [
        f"tree: {p.srctree}",
        f"config: {p.config_path} ({len(p.before)} options)",
        f"toolchain: CC={p.environment.get('CC')} ({p.environment.get('CC_VERSION_TEXT', '')!r})"
        f", PAHOLE={p.environment.get('PAHOLE')}",
    ]
    if p.module_h:
        out.append(f"struct module judged from {p.module_h}")
    used = {t for f in p.findings for t in f.extra.get("missing", [])}
    for tool, calls in p.missing_tools.items():
        if tool in used:
            out.append(
                f"missing tool: {tool} (Debian package {PACKAGES.get(tool, tool)}), wanted by "
                + ", ".join(sorted({c.where for c in calls}))
            )
    # the probes that did not run are said even when nothing changes: "nothing" is then
    # only as good as the tests that ran
    unevaluated = [
        f"not evaluated ({u.where}): {u.problem}; --trust-tree runs it" for u in p.unevaluated
    ]
    if not p.findings:
        out.append("make olddefconfig would change nothing.")
        return "\n".join(out + unevaluated) + "\n"
    by = counts(p.findings)
    relevant = sum(v for k, v in by.items() if k != Impact.NONE.value)
    out.append(
        f"make olddefconfig would change {len(p.findings)} options, {relevant} of them matter "
        "to modules (" + ", ".join(f"{k} {v}" for k, v in by.items()) + ")"
    )
    for tool, options in p.by_tool().items():
        out.append(f"  from {tool}: {', '.join(options)}")
    out.append("")
    out += _findings_text(p.findings, "config", "olddefconfig", show_all)
    out += unevaluated
    return "\n".join(out).rstrip() + "\n"
