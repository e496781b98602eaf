"""``--format github``: GitHub Actions workflow commands, one annotation per finding.

``::error file=F,line=N,title=T::MESSAGE`` (``::warning``, ``::notice`` for warnings and
information), which the runner turns into annotations on the run and on the pull
request's files. Escaping follows the runner's own rules (actions/toolkit
``packages/core/src/command.ts``): in the message ``%``, CR and LF become ``%25``,
``%0D``, ``%0A``; in a property value ``:`` and ``,`` too (``%3A``, ``%2C``). Paths are
relative to the project root, which in a workflow should be ``$GITHUB_WORKSPACE`` (the
runner resolves ``file=`` against it).

GitHub Actions shows at most 10 error and 10 warning annotations per step ("GitHub
Actions are limited to 10 warning annotations and 10 error annotations per step",
https://docs.github.com/en/rest/checks/runs, annotations object): the others stay in
the log. The last line, a plain summary, is not a command.
"""

from __future__ import annotations

from collections.abc import Sequence

from abicheck.model import Finding, KernelTarget, Result, Severity
from abicheck.reporters.escape import display, safe_text
from abicheck.reporters.sarif import location

COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


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


def report(
    results: Sequence[Result],
    targets: Sequence[KernelTarget],
    color: bool = False,
    *,
    project_root: str | None = None,
    **_: object,
) -> str:
    """Workflow commands, findings in the kernel's order per result (colour is ignored)."""
    out = [annotation(f, r, project_root) for r in results for f in r.findings]
    counts: dict[str, int] = {}
    for r in results:
        counts[r.verdict.value] = counts.get(r.verdict.value, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in counts.items()) or "nothing checked"
    pairs = "pair" if len(results) == 1 else "pairs"
    # a plain log line, not a command: "abicheck:" starts it
    out.append(safe_text(f"abicheck: {len(results)} (module, kernel) {pairs}: {summary}"))
    return "\n".join(out) + "\n"
