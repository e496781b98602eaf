"""module_sig_check(): the first thing load_module() does."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding


def _enforced(ctx: CheckContext) -> bool:
    return ctx.target.enabled("MODULE_SIG_FORCE")


@check("SG001")
def unsigned_module(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.module.signature is not None or not ctx.target.enabled("MODULE_SIG"):
        return
    if _enforced(ctx):
        yield ctx.finding(
            "SG001",
            effect=Effect.REFUSE,
            kernel_says="Loading of unsigned module is rejected",
            enforcement="CONFIG_MODULE_SIG_FORCE=y",
        )
    else:
        yield ctx.finding("SG001", stage="taint_unsigned", enforcement="not enforced")


@check("SG002")
def signature_malformed(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if sig is None or sig.problem is None or not ctx.target.enabled("MODULE_SIG"):
        return
    if sig.id_type != 2 and "id_type" in sig.problem:
        # -ENOPKG is not fatal: "module with unsupported crypto" unless enforced
        says = "module: not signed with expected PKCS#7 message"
        if _enforced(ctx):
            yield ctx.finding(
                "SG002",
                effect=Effect.REFUSE,
                problem=sig.problem,
                kernel_says=says + "\nLoading of module with unsupported crypto is rejected",
            )
        else:
            yield ctx.finding(
                "SG002",
                effect=Effect.TAINT,
                taint="E",
                stage="taint_unsigned",
                problem=sig.problem,
                kernel_says=says,
            )
        return
    says = (
        "module: PKCS#7 signature info has unexpected non-zero params"
        if "non-zero" in sig.problem
        else ""
    )
    yield ctx.finding("SG002", problem=sig.problem, kernel_says=says)


@check("SG003")
def signature_key_unverifiable(ctx: CheckContext) -> Iterator[Finding]:
    sig = ctx.module.signature
    if sig is None or sig.problem is not None or not ctx.target.enabled("MODULE_SIG"):
        return
    yield ctx.finding(
        "SG003",
        signer=sig.signer or "(unknown)",
        key_id=sig.key_id or "(unknown)",
        hash_algo=sig.hash_algo or "(unknown)",
    )
