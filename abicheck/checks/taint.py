"""What check_modinfo() (6.1) or module_augment_kernel_taints() (6.12) read from .modinfo."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext, license_is_gpl_compatible
from abicheck.model import Effect, Finding


def _modinfo_checks_apply(ctx: CheckContext) -> bool:
    return ctx.elf_usable


@check("TN001")
def out_of_tree(ctx: CheckContext) -> Iterator[Finding]:
    if _modinfo_checks_apply(ctx) and ctx.module.info("intree") is None:
        yield ctx.finding()


@check("TN002")
def staging(ctx: CheckContext) -> Iterator[Finding]:
    if _modinfo_checks_apply(ctx) and ctx.module.info("staging") is not None:
        yield ctx.finding()


@check("TN003")
def test_module(ctx: CheckContext) -> Iterator[Finding]:
    if _modinfo_checks_apply(ctx) and ctx.module.info("test") is not None:
        yield ctx.finding()


@check("TN004")
def retpoline(ctx: CheckContext) -> Iterator[Finding]:
    if not _modinfo_checks_apply(ctx):
        return
    option = next(
        (o for o in ("MITIGATION_RETPOLINE", "RETPOLINE") if ctx.target.value(o) is not None), None
    )
    if option and ctx.target.enabled(option) and ctx.module.info("retpoline") is None:
        yield ctx.finding(evidence={"option": "CONFIG_" + option})


@check("TN005")
def livepatch(ctx: CheckContext) -> Iterator[Finding]:
    if not _modinfo_checks_apply(ctx) or ctx.module.info("livepatch") is None:
        return
    if ctx.target.enabled("LIVEPATCH"):
        yield ctx.finding(
            effect=Effect.TAINT,
            taint="K",
            kernel_says=f"{ctx.module.name}: tainting kernel with TAINT_LIVEPATCH",
        )
    else:
        yield ctx.finding(stage="livepatch")


@check("LI001")
def proprietary_license(ctx: CheckContext) -> Iterator[Finding]:
    if not _modinfo_checks_apply(ctx):
        return
    license = ctx.module.info("license")
    if not license_is_gpl_compatible(license):
        yield ctx.finding(evidence={"license": license or "unspecified"})
