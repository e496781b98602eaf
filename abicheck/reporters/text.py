"""``--format text``: for people. Colour through rich, only when asked for (a terminal
without NO_COLOR, or --color always); a matrix of verdicts when several kernels are
checked; a summary at the end; a "For more information" line per rule that fired.

Lines are built as (text, style) segments; rich renders them when there is colour or a
table to draw, plain joining does otherwise (importing rich costs a one-module run a
seventh of its time)."""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from abicheck.model import Effect, KernelTarget, Result, Severity, Verdict
from abicheck.reporters.base import Report
from abicheck.reporters.escape import display, display_path, needs_display, safe_text

if TYPE_CHECKING:  # rich is imported lazily, only when a table is drawn
    from rich.table import Table

Segment = tuple[str, str | None]
Line = list[Segment]

_VERDICT_STYLE = {
    Verdict.UNREADABLE: "bold magenta",
    Verdict.REFUSED: "bold red",
    Verdict.LOADS_UNSAFE: "bold red",
    Verdict.LOADS_TAINTED: "bold yellow",
    Verdict.LOADS: "bold green",
}
_SEVERITY_STYLE = {Severity.ERROR: "red", Severity.WARNING: "yellow", Severity.INFO: "blue"}


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    quiet: bool = False,
) -> str:
    """``quiet``: the error findings one line each, the matrix (only its rows that do not
    load) or the summary; a clean tree of thousands of modules prints two lines."""
    by_id = {t.id: t for t in targets}
    fired: list[str] = []
    lines: list[Line] = []
    matrix_results = results
    if quiet:
        lines = _quiet_lines(results, fired)
        # rows that load everywhere are what --quiet is for hiding
        failing = {r.module for r in results if r.verdict not in _LOADS}
        matrix_results = [r for r in results if r.module in failing]
    else:
        for r in results:
            lines += _result(r, by_id.get(r.target), fired)
    tail: list[Line] = []
    if len(results) > 1 or quiet:
        tail += _summary(results)
    tail += [[(f"For more information: abicheck rule {rule}", None)] for rule in fired]
    matrix = len(targets) > 1 and len(matrix_results) > 1
    plain = "".join("".join(text for text, _ in line) + "\n" for line in lines + tail)
    if needs_display(plain, len(lines) + len(tail)):
        # a segment carries module or file-name bytes: escaped one by one (rare)
        lines = [[(display(text), style) for text, style in line] for line in lines]
        plain = "".join("".join(text for text, _ in line) + "\n" for line in lines + tail)
    # then the whole report, for what only a line as a whole can show
    if not color and not matrix:
        return safe_text(plain)
    return safe_text(_render(lines, tail, matrix_results, targets if matrix else None, color))


_LOADS = (Verdict.LOADS, Verdict.LOADS_TAINTED)


def _quiet_lines(results: Sequence[Result], fired: list[str]) -> list[Line]:
    lines: list[Line] = []
    for r in results:
        for f in r.findings:
            if f.severity is not Severity.ERROR:
                continue
            lines.append(
                [
                    (display_path(r.module), "bold"),
                    (": ", None),
                    (f.rule, _SEVERITY_STYLE[f.severity]),
                    (f" [{r.target}] {f.message}", None),
                ]
            )
            if f.rule not in fired:
                fired.append(f.rule)
    return lines


def _render(
    lines: list[Line],
    tail: list[Line],
    results: Sequence[Result],
    matrix_targets: Sequence[KernelTarget] | None,
    color: bool,
) -> str:
    from rich.console import Console
    from rich.text import Text

    out = io.StringIO()
    console = Console(
        file=out,
        force_terminal=color,
        no_color=not color,
        width=160,
        highlight=False,
        soft_wrap=True,
        emoji=False,
        markup=False,
    )
    for line in lines:
        console.print(Text.assemble(*[(t, s or "") for t, s in line]))
    if matrix_targets is not None:
        console.print(_matrix(results, matrix_targets))
        console.print()
    for line in tail:
        console.print(Text.assemble(*[(t, s or "") for t, s in line]))
    return out.getvalue()


def _result(r: Result, target: KernelTarget | None, fired: list[str]) -> list[Line]:
    lines: list[Line] = [
        [
            (display_path(r.module), "bold"),
            (f"  →  {r.target}  ({target.source if target else r.target})", None),
        ]
    ]
    verdict: Line = [("  verdict: ", None), (r.verdict.value, _VERDICT_STYLE[r.verdict])]
    taints = ", ".join(f"{t.letter} ({t.description})" for t in r.taints)
    if taints and r.verdict is Verdict.REFUSED:
        verdict.append((f"  (the kernel is tainted {taints} before it refuses)", None))
    elif taints:
        verdict.append((f"  taints: {taints}", None))
    lines.append(verdict)
    if target is not None and (target.layout_source or target.layout_gap):
        if target.struct_module is not None:
            lines.append([(f"  layouts: {target.layout_source}", "dim")])
        else:
            lines.append(
                [
                    ("  layouts: ", None),
                    ("NOT checked", "bold yellow"),
                    (f" ({target.layout_gap or 'no layout source'})", None),
                ]
            )
    stop = next((f for f in r.findings if f.effect is Effect.REFUSE), None)
    for f in r.findings:
        lines.append(
            [
                ("  ", None),
                (f"{f.severity.value:<7}", _SEVERITY_STYLE[f.severity]),
                (f" {f.rule} {f.name}: {f.message}", None),
            ]
        )
        if f.kernel_says:
            # the kernel logs one line per newline, so a newline in the module's text
            # starts a line here too (indented, and escaped otherwise)
            for i, said in enumerate(f.kernel_says.split("\n")):
                prefix = "kernel says: " if i == 0 else "             "
                lines.append([(f"          {prefix}{said}", "dim" if i else None)])
        if f is stop:
            lines.append(
                [
                    (
                        f"          the load stops here: insmod fails with {f.errno}"
                        if f.errno
                        else "          the load stops here",
                        None,
                    )
                ]
            )
        if f.severity is Severity.ERROR:
            lines.append([(f"          fix: {f.fix}", None)])
        if f.rule not in fired and f.severity is not Severity.INFO:
            fired.append(f.rule)
    if r.suppressed:
        hidden = Counter(r.suppressed)
        lines.append(
            [
                (
                    "  hidden: "
                    + ", ".join(f"{k} ×{n}" if n > 1 else k for k, n in sorted(hidden.items()))
                    + " (settings or baseline)",
                    "dim",
                )
            ]
        )
    lines.append([])
    return lines


# the words a release name may already carry for its architecture (Debian: -amd64, -arm64)
_ARCH_WORDS = {"x86_64": ("x86_64", "amd64"), "aarch64": ("aarch64", "arm64")}


def _matrix(results: Sequence[Result], targets: Sequence[KernelTarget]) -> Table:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(title="verdicts", title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column("module")
    mixed = len({t.arch for t in targets}) > 1
    for t in targets:
        name = t.release if sum(x.release == t.release for x in targets) == 1 else t.id
        if mixed and t.arch and not any(a in name for a in _ARCH_WORDS.get(t.arch, (t.arch,))):
            name += f" ({t.arch})"  # a fleet of several architectures says which is which
        if t.also_named:
            name += f" ×{1 + len(t.also_named)}"  # identical kernels, one column
        # Text, never str: rich would read markup ("[link=...]") in a plain string
        table.add_column(Text(display(name)))
    rows: dict[str, dict[str, Result]] = {}
    for res in results:
        rows.setdefault(res.module, {})[res.target] = res
    for module, cells in rows.items():
        row = [Text(display_path(module))]
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
    return table


def _summary(results: Sequence[Result]) -> list[Line]:
    verdicts = Counter(r.verdict.value for r in results)
    rules = Counter(f.rule for r in results for f in r.findings if f.severity is not Severity.INFO)
    modules = len({r.module for r in results})
    kernels = len({r.target for r in results})
    lines: list[Line] = [
        [
            (
                f"summary: {modules} module(s) × {kernels} kernel(s): "
                + ", ".join(f"{n} {v}" for v, n in verdicts.most_common()),
                None,
            )
        ]
    ]
    if rules:
        lines.append(
            [("top rules: " + ", ".join(f"{rule} ×{n}" for rule, n in rules.most_common(5)), None)]
        )
    return lines


# the function by a name that render()'s parameter does not hide
_report = report


@dataclass(frozen=True)
class TextOptions:
    color: bool = False
    quiet: bool = False


class TextReporter:
    """``--format text``, the default: for people at a terminal."""

    Options: ClassVar[type[TextOptions]] = TextOptions

    def __init__(self, options: TextOptions = TextOptions()) -> None:
        self.options = options

    def render(self, report: Report) -> str:
        return _report(report.results, report.targets, self.options.color, quiet=self.options.quiet)
