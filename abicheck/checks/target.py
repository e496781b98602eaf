"""Facts about the kernel target itself that decide every module's fate."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Finding


@check("CF001")
def kernel_without_modules(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.target.value("MODULES") != "y":
        yield ctx.finding(
            evidence={"option": "CONFIG_MODULES", "value": ctx.target.value("MODULES") or "absent"}
        )


@check("IN002")
def target_incomplete(ctx: CheckContext) -> Iterator[Finding]:
    missing = []
    if ctx.target.exports is None:
        missing.append("Module.symvers (symbol, CRC and namespace checks skipped)")
    if ctx.target.vermagic is None:
        missing.append("the kernel's vermagic (vermagic check skipped)")
    if not ctx.generation_verified:
        missing.append(
            f"a verified loader model for {'.'.join(map(str, ctx.target.version))} "
            f"(using the {ctx.generation} model)"
        )
    if missing:
        yield ctx.finding(evidence={"missing": "; ".join(missing), "target": ctx.target.id})
