"""Symbol versions: check_modstruct_version(), check_version() and the exports' CRCs."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.checks.resolve import check_version, resolve
from abicheck.checks.vermagic import only_modversions_differs, vermagic_differences
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding
from abicheck.readers.versions import RECORD_SIZE


def _hex(crc: int | None) -> str | None:
    return None if crc is None else f"0x{crc:08x}"


def _module_layout(ctx: CheckContext) -> tuple[str, int | None, int | None]:
    exp = (ctx.target.exports or {}).get("module_layout")
    kernel_crc = exp.crc if exp else None
    outcome, module_crc = check_version(ctx, "module_layout", kernel_crc)
    return outcome, kernel_crc, module_crc


def _missing_entry_effect(ctx: CheckContext) -> Effect:
    return Effect.REFUSE if ctx.distribution["missing_version_entry"] == "refuse" else Effect.WARN


@check("MV004")
def module_layout_mismatch(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or ctx.target.exports is None:
        return
    outcome, kernel_crc, module_crc = _module_layout(ctx)
    if outcome == "mismatch":
        yield ctx.finding(
            evidence={
                "symbol": "module_layout",
                "module_crc": _hex(module_crc),
                "kernel_crc": _hex(kernel_crc),
            }
        )


@check("MV003")
def modversions_missing(ctx: CheckContext) -> Iterator[Finding]:
    """No __versions at all: each versioned symbol goes through try_to_force_load()."""
    if not ctx.elf_usable or not ctx.modversions or ctx.module.versions is not None:
        return
    first = "module_layout" if (ctx.target.exports or {}).get("module_layout") else None
    if first is None:
        crc_symbols = [r.symbol.name for r in resolve(ctx) if r.version == "no-versions"]
        if not crc_symbols:
            return
        first = crc_symbols[0]
    name = ctx.module.this_module.name if ctx.module.this_module else ctx.module.name
    if ctx.force_load:
        yield ctx.finding(
            evidence={"first_symbol": first},
            effect=Effect.TAINT,
            taint="F",
            stage="modstruct_version",
            kernel_says=f"{name}: {first}: kernel tainted.",
        )
    else:
        yield ctx.finding(
            evidence={"first_symbol": first}, stage="modstruct_version", kernel_says=""
        )


@check("MV005")
def modversions_one_side(ctx: CheckContext) -> Iterator[Finding]:
    vm = vermagic_differences(ctx)
    if vm is None or not only_modversions_differs(vm[1]):
        return
    module_has = "modversions" in (ctx.module.info("vermagic") or "").split()
    # After VM001, which carries the kernel's own line: MV005 says why the strings differ.
    yield ctx.finding(
        evidence={
            "module_vermagic": ctx.module.info("vermagic"),
            "kernel_vermagic": ctx.target.vermagic,
            "module_side": "with" if module_has else "without",
            "kernel_side": "with" if ctx.modversions else "without",
            "has_versions_section": ctx.module.versions is not None,
        },
        order=(1,),
        kernel_says="",
    )


# How many symbols a grouped finding names in its message; the evidence has them all.
GROUPED_SHOWN = 5


def another_kernel(ctx: CheckContext) -> list[str]:
    """The rules that already say the module was built for another kernel: MV004
    (module_layout's CRC differs) and VM001 (the vermagic differs beyond the
    ``modversions`` word, which MV005 explains and which is not another kernel).
    After them, per-symbol and per-struct differences are expected and say nothing new."""
    if "another_kernel" not in ctx.memo:
        why = []
        exports = ctx.elf_usable and ctx.target.exports is not None
        if exports and _module_layout(ctx)[0] == "mismatch":
            why.append("MV004")
        vm = vermagic_differences(ctx)
        if vm is not None and not only_modversions_differs(vm[1]):
            why.append("VM001")
        ctx.memo["another_kernel"] = why
    return ctx.memo["another_kernel"]


def shown(names: list[str]) -> str:
    """The first few names, and how many more the evidence holds."""
    more = len(names) - GROUPED_SHOWN
    return ", ".join(names[:GROUPED_SHOWN]) + (f" and {more} more" if more > 0 else "")


@check("MV001")
def crc_mismatch(ctx: CheckContext) -> Iterator[Finding]:
    mismatches = [
        (r, r.provider) for r in resolve(ctx) if r.version == "mismatch" and r.provider is not None
    ]
    if not mismatches:
        return
    because = another_kernel(ctx)
    # one mismatch stays as it is: a group of one would say less than the symbol's own
    if because and len(mismatches) > 1:
        # A module of another build differs in most CRCs; the kernel refuses it at
        # module_layout or the vermagic before it compares any of them. One finding
        # says so; the evidence keeps every symbol for whoever wants the list.
        names = [r.symbol.name for r, _ in mismatches]
        yield ctx.finding(
            evidence={
                "count": len(mismatches),
                "shown": shown(names),
                "because": " and ".join(because),
                "symbols": names,
                "mismatches": [
                    {
                        "symbol": r.symbol.name,
                        "module_crc": _hex(r.module_crc),
                        "kernel_crc": _hex(provider.export.crc),
                        "owner": provider.name,
                    }
                    for r, provider in mismatches
                ],
            },
            variant="message_grouped",
            order=(mismatches[0][0].symbol.index, 2),
            kernel_says="",
        )
        return
    for r, provider in mismatches:
        yield ctx.finding(
            evidence={
                "symbol": r.symbol.name,
                "module_crc": _hex(r.module_crc),
                "kernel_crc": _hex(provider.export.crc),
                "owner": provider.name,
            },
            order=(r.symbol.index, 2),
        )


@check("MV002")
def missing_entry(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or ctx.target.exports is None:
        return
    effect = _missing_entry_effect(ctx)
    behaviour = (
        "refuses (a Debian patch to check_version())"
        if effect is Effect.REFUSE
        else "warns once and accepts it (upstream check_version())"
    )
    outcome, kernel_crc, _ = _module_layout(ctx)
    if outcome == "missing-entry":
        yield ctx.finding(
            evidence={
                "symbol": "module_layout",
                "kernel_crc": _hex(kernel_crc),
                "owner": "vmlinux",
                "behaviour": behaviour,
                "distribution": ctx.distribution["name"],
            },
            effect=effect,
            stage="modstruct_version",
        )
    for r in resolve(ctx):
        if r.version == "missing-entry" and r.provider is not None:
            yield ctx.finding(
                evidence={
                    "symbol": r.symbol.name,
                    "kernel_crc": _hex(r.provider.export.crc),
                    "owner": r.provider.name,
                    "behaviour": behaviour,
                    "distribution": ctx.distribution["name"],
                },
                effect=effect,
                order=(r.symbol.index, 2),
            )


@check("MV006")
def exports_without_crc(ctx: CheckContext) -> Iterator[Finding]:
    m = ctx.module
    if not ctx.modversions or not m.exports_without_crc:
        return
    name = m.this_module.name if m.this_module else m.name
    effect = Effect.TAINT if ctx.force_load else Effect.REFUSE
    says = f"{name}: no versions for exported symbols: kernel tainted." if ctx.force_load else ""
    yield ctx.finding(
        evidence={"symbols": list(m.exports_without_crc), "count": len(m.exports_without_crc)},
        effect=effect,
        taint="F" if ctx.force_load else None,
        kernel_says=says,
    )


@check("MV007")
def versions_malformed(ctx: CheckContext) -> Iterator[Finding]:
    tail = ctx.module.versions_size % RECORD_SIZE
    if ctx.module.versions is not None and tail:
        yield ctx.finding(
            evidence={
                "sh_size": ctx.module.versions_size,
                "tail": tail,
                "records": len(ctx.module.versions),
            }
        )
