"""check_modinfo(): the vermagic string, compared as same_magic() compares it."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck import ruledata
from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding


def _option_for(word: str) -> str:
    components = ruledata.rule("VM001").data["components"]
    if word in components:
        return components[word]
    if word.startswith("RANDSTRUCT_"):
        return "CONFIG_RANDSTRUCT (and its seed)"
    return "arch-specific (MODULE_ARCH_VERMAGIC)"


def compare(module_magic: str, kernel_magic: str, skip_release: bool) -> list[dict[str, str]]:
    """Component-by-component differences between two vermagic strings."""
    mod_words, ker_words = module_magic.split(), kernel_magic.split()
    diffs = []
    if not skip_release and mod_words[:1] != ker_words[:1]:
        diffs.append(
            {
                "component": "release",
                "module": mod_words[0] if mod_words else "",
                "kernel": ker_words[0] if ker_words else "",
                "option": "UTS_RELEASE",
            }
        )
    mod_rest, ker_rest = mod_words[1:], ker_words[1:]
    for word in mod_rest:
        if word not in ker_rest:
            diffs.append(
                {
                    "component": word,
                    "module": word,
                    "kernel": "(absent)",
                    "option": _option_for(word),
                }
            )
    for word in ker_rest:
        if word not in mod_rest:
            diffs.append(
                {
                    "component": word,
                    "module": "(absent)",
                    "kernel": word,
                    "option": _option_for(word),
                }
            )
    if not diffs and module_magic != kernel_magic:
        diffs.append(
            {
                "component": "spacing or order",
                "module": module_magic,
                "kernel": kernel_magic,
                "option": "",
            }
        )
    return diffs


def vermagic_differences(ctx: CheckContext) -> tuple[bool, list[dict[str, str]]] | None:
    """(release skipped, differences) or None when the strings match or can't be compared."""
    modmagic = ctx.module.info("vermagic")
    kernel = ctx.target.vermagic
    if modmagic is None or kernel is None:
        return None
    # same_magic(): with CONFIG_MODVERSIONS and a __versions section, the release (the
    # text up to the first space) is skipped; CRCs decide instead.
    skip = ctx.modversions and ctx.module.versions is not None
    a = modmagic[len(modmagic.split(" ", 1)[0]) :] if skip else modmagic
    b = kernel[len(kernel.split(" ", 1)[0]) :] if skip else kernel
    if a == b:
        return None
    return skip, compare(modmagic, kernel, skip)


def only_modversions_differs(diffs: list[dict[str, str]]) -> bool:
    return bool(diffs) and all(d["component"] == "modversions" for d in diffs)


@check("VM001")
def vermagic_mismatch(ctx: CheckContext) -> Iterator[Finding]:
    result = vermagic_differences(ctx)
    if result is None:
        return
    skipped, diffs = result
    # Even when only the `modversions` word differs, this is the line the kernel logs
    # (check_modinfo() → same_magic() fails): VM001 comes first, MV005 explains it after.
    summary = ", ".join(f"{d['component']}: {d['module']} vs {d['kernel']}" for d in diffs)
    yield ctx.finding(
        evidence={
            "module_vermagic": ctx.module.info("vermagic"),
            "kernel_vermagic": ctx.target.vermagic,
            "release_compared": not skipped,
            "differences": diffs,
            "summary": summary,
        },
        order=(0,),
    )


@check("VM002")
def vermagic_missing(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or ctx.module.info("vermagic") is not None:
        return
    if ctx.force_load:
        yield ctx.finding(
            evidence={"has_modinfo": bool(ctx.module.modinfo_count)}, effect=Effect.TAINT, taint="F"
        )
    else:
        yield ctx.finding(evidence={"has_modinfo": bool(ctx.module.modinfo_count)}, kernel_says="")
