"""``--format text``: for people. Colour through rich, only when asked for (a terminal
without NO_COLOR, or --color always); a matrix of verdicts when several kernels are
checked; a summary at the end; a "For more information" line per rule that fired."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from abicheck.model import Effect, KernelTarget, Result, Severity, Verdict

_VERDICT_STYLE = {
    Verdict.UNREADABLE: "bold magenta",
    Verdict.REFUSED: "bold red",
    Verdict.LOADS_UNSAFE: "bold red",
    Verdict.LOADS_TAINTED: "bold yellow",
    Verdict.LOADS: "bold green",
}
_SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def report(
    results: Sequence[Result], targets: Sequence[KernelTarget], color: bool = False, **_: object
) -> str:
    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=color,
        no_color=not color,
        width=100,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
    )
    by_id = {t.id: t for t in targets}
    fired: list[str] = []
    for r in results:
        _result(console, r, by_id.get(r.target), fired)
    if len(targets) > 1 and len(results) > 1:
        _matrix(console, results, targets)
    if len(results) > 1:
        _summary(console, results)
    for rule in fired:
        console.print(f"For more information: abicheck rule {rule}")
    return out.getvalue()


def _result(console: Console, r: Result, target: KernelTarget | None, fired: list[str]) -> None:
    head = Text(r.module, style="bold")
    head.append(f"  →  {r.target}  ({target.source if target else r.target})")
    console.print(head)
    line = Text("  verdict: ")
    line.append(r.verdict.value, style=_VERDICT_STYLE[r.verdict])
    taints = ", ".join(f"{t.letter} ({t.description})" for t in r.taints)
    if taints and r.verdict is Verdict.REFUSED:
        line.append(f"  (the kernel is tainted {taints} before it refuses)")
    elif taints:
        line.append(f"  taints: {taints}")
    console.print(line)
    stop = next((f for f in r.findings if f.effect is Effect.REFUSE), None)
    for f in r.findings:
        row = Text("  ")
        row.append(f"{f.severity.value:<7}", style=_SEVERITY_STYLE[f.severity])
        row.append(f" {f.rule} {f.name}: {f.message}")
        console.print(row)
        if f.kernel_says:
            for i, said in enumerate(f.kernel_says.splitlines()):
                prefix = "kernel says: " if i == 0 else "             "
                console.print(Text(f"          {prefix}{said}", style="dim" if i else ""))
        if f is stop:
            console.print(
                f"          the load stops here: insmod fails with {f.errno}"
                if f.errno
                else "          the load stops here"
            )
        if f.severity is Severity.ERROR:
            console.print(f"          fix: {f.fix}")
        if f.rule not in fired and f.severity is not Severity.INFO:
            fired.append(f.rule)
    if r.suppressed:
        hidden = Counter(r.suppressed)
        console.print(
            Text(
                "  hidden: "
                + ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(hidden.items()))
                + " (settings or baseline)",
                style="dim",
            )
        )
    console.print()


def _matrix(console: Console, results: Sequence[Result], targets: Sequence[KernelTarget]) -> None:
    table = Table(title="verdicts", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("module")
    for t in targets:
        table.add_column(t.release if sum(x.release == t.release for x in targets) == 1 else t.id)
    rows: dict[str, dict[str, Result]] = {}
    for r in results:
        rows.setdefault(r.module, {})[r.target] = r
    for module, cells in rows.items():
        row = [Text(module)]
        for t in targets:
            r = cells.get(t.id)
            if r is None:
                row.append(Text("-"))
                continue
            cell = Text(r.verdict.value, style=_VERDICT_STYLE[r.verdict])
            first = next((f.rule for f in r.findings if f.severity is Severity.ERROR), None)
            if first:
                cell.append(f" {first}")
            row.append(cell)
        table.add_row(*row)
    console.print(table)
    console.print()


def _summary(console: Console, results: Sequence[Result]) -> None:
    verdicts = Counter(r.verdict.value for r in results)
    rules = Counter(f.rule for r in results for f in r.findings if f.severity is not Severity.INFO)
    modules = len({r.module for r in results})
    kernels = len({r.target for r in results})
    console.print(
        Text(
            f"summary: {modules} module(s) × {kernels} kernel(s): "
            + ", ".join(f"{n} {v}" for v, n in verdicts.most_common())
        )
    )
    if rules:
        console.print("top rules: " + ", ".join(f"{rule} ×{n}" for rule, n in rules.most_common(5)))
