"""``--format text``: for people at a terminal (colour only when stdout is one)."""

from __future__ import annotations

from collections.abc import Sequence

import click

from abicheck.model import Effect, KernelTarget, Result, Severity, Verdict

_VERDICT_COLOR = {
    Verdict.UNREADABLE: "magenta",
    Verdict.REFUSED: "red",
    Verdict.LOADS_UNSAFE: "red",
    Verdict.LOADS_TAINTED: "yellow",
    Verdict.LOADS: "green",
}
_SEVERITY_COLOR = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def report(results: Sequence[Result], targets: Sequence[KernelTarget], color: bool = False) -> str:
    def style(text: str, fg: str, bold: bool = False) -> str:
        return click.style(text, fg=fg, bold=bold) if color else text

    by_id = {t.id: t for t in targets}
    lines: list[str] = []
    rules_seen: list[str] = []
    for r in results:
        t = by_id.get(r.target)
        where = f"{t.source}" if t else r.target
        lines.append(style(f"{r.module}", "white", bold=True) + f"  →  {r.target}  ({where})")
        verdict = style(r.verdict.value, _VERDICT_COLOR[r.verdict], bold=True)
        taints = ", ".join(f"{x.letter} ({x.description})" for x in r.taints)
        if taints and r.verdict is Verdict.REFUSED:
            verdict += f"  (the kernel is tainted {taints} before it refuses)"
        elif taints:
            verdict += f"  taints: {taints}"
        lines.append(f"  verdict: {verdict}")
        stop = next((f for f in r.findings if f.effect is Effect.REFUSE), None)
        for f in r.findings:
            sev = style(f"{f.severity.value:<7}", _SEVERITY_COLOR[f.severity])
            lines.append(f"  {sev} {f.rule} {f.name}: {f.message}")
            if f.kernel_says:
                for i, said in enumerate(f.kernel_says.splitlines()):
                    prefix = "kernel says: " if i == 0 else "             "
                    lines.append(f"          {prefix}{said}")
            if f is stop:
                lines.append(
                    f"          the load stops here: insmod fails with {f.errno}"
                    if f.errno
                    else "          the load stops here"
                )
            if f.severity is Severity.ERROR:
                lines.append(f"          fix: {f.fix}")
            if f.rule not in rules_seen and f.severity is not Severity.INFO:
                rules_seen.append(f.rule)
        lines.append("")
    if len(results) > 1:
        counts: dict[str, int] = {}
        for r in results:
            counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
        lines.append("summary: " + ", ".join(f"{n} {v}" for v, n in counts.items()))
    for rule in rules_seen:
        lines.append(f"For more information: abicheck rule {rule}")
    return "\n".join(lines).rstrip("\n") + "\n"
