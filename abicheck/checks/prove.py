"""The rules fed by ``abicheck prove``: what the live kernel did, beside the prediction.

These checks read :class:`~abicheck.context.Proved`, which prove attaches to the run
(``RunContext.proved``) after booting the kernel; a static run attaches none and they
yield nothing. They are ordinary rules (one TOML, one function) so that every output
format, --select/--ignore and the rule documentation carry them with no special case.
"""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext, Proved
from abicheck.model import Effect, Finding

HUNG = ("oops", "hang")


def _proved(ctx: CheckContext) -> Proved | None:
    return ctx.run.proved.get(ctx.module.path)


@check("PV001")
def disagreement(ctx: CheckContext) -> Iterator[Finding]:
    proved = _proved(ctx)
    # an oops or a hang is PV002's, agreed or not
    if proved is None or not proved.disagreements or proved.verdict in HUNG:
        return
    line = proved.line
    # the sentences beyond "abicheck predicts X, the kernel Y", which the message says
    # in its own words
    said = f"abicheck predicts {proved.predicted}"
    details = [d for d in proved.disagreements if not d.startswith(said)]
    yield ctx.finding(
        evidence={
            "predicted": proved.predicted,
            "kernel_verdict": proved.verdict,
            "errno": "/".join(proved.errno) or "none",
            "kernel_line": line,
            "kernel_lines": list(proved.kernel_lines),
            "disagreements": list(proved.disagreements),
            "details": "; ".join(details),
        },
        kernel_says=line,
        variant=None if details else "message_verdicts",
    )


@check("PV002")
def oops_or_hang(ctx: CheckContext) -> Iterator[Finding]:
    proved = _proved(ctx)
    if proved is None or proved.verdict not in HUNG:
        return
    line = proved.line
    evidence = {
        "outcome": proved.verdict,
        "predicted": proved.predicted,
        "predicted_by": proved.predicted_oops,
        "kernel_line": line or "nothing logged",
        "load_timeout": proved.load_timeout,
        "kernel_lines": list(proved.kernel_lines),
    }
    # an oops abicheck's own finding announced is the prediction come true: reported,
    # not failed
    agreed = proved.predicted_oops is not None and not proved.disagreements
    yield ctx.finding(
        evidence=evidence,
        effect=Effect.WARN if agreed else None,
        kernel_says=line,
        variant="message_hang" if proved.verdict == "hang" else None,
    )
