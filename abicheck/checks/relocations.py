"""apply_relocations(): relocation types and values the arch's loader cannot apply."""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Finding
from abicheck.readers.elf import SHT_REL


def loader_line(ctx: CheckContext, key: str, **values: object) -> str | None:
    """The arch loader's own line ``messages.key``, with the pr_fmt() prefix its
    module.c prints in this kernel (``messages.prefix``, for kernels whose config lacks the
    option ``messages.prefix_unless``: the config says which, not a version number)."""
    messages = ctx.arch.get("messages", {})
    said = messages.get(key)
    if said is None:
        return None
    option = messages.get("prefix_unless")
    if option and ctx.target.value(option) is None:
        said = messages.get("prefix", "") + said
    return str(said).format(**values)


@check("RL001")
def unknown_relocation_type(ctx: CheckContext) -> Iterator[Finding]:
    known = {int(k): v for k, v in ctx.arch.get("relocations", {}).items()}
    if not known or not ctx.elf_usable:
        return
    for i, rs in enumerate(ctx.module.relocation_sections):
        if rs.sh_type == SHT_REL:
            yield ctx.finding(
                evidence={
                    "section": rs.name,
                    "target": rs.target,
                    "r_type": 9,
                    "type_name": "SHT_REL section",
                    "arch": ctx.target.arch,
                },
                order=(i,),
                kernel_says=f"module {ctx.module.name}: REL relocation unsupported",
            )
            continue
        for r_type in sorted(rs.types - known.keys()):
            yield ctx.finding(
                kernel_says=loader_line(
                    ctx, "unknown_relocation", module=ctx.module.name, r_type=r_type
                ),
                evidence={
                    "section": rs.name,
                    "target": rs.target,
                    "r_type": r_type,
                    "type_name": "unknown",
                    "arch": ctx.target.arch,
                },
                order=(i, r_type),
            )


@check("RL002")
def relocation_overflow(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or not ctx.arch:
        return
    names = {int(k): v for k, v in ctx.arch.get("relocations", {}).items()}
    r_type = int(ctx.arch.get("narrow_absolute", [10])[0])
    messages = ctx.arch.get("messages", {})
    remedy = messages.get(
        "relocation_overflow_fix",
        "Compile the object with -mcmodel=kernel (Kbuild does): it uses sign-extended "
        "R_X86_64_32S, which can hold kernel addresses.",
    )
    percpu = {".data..percpu"}  # per-CPU offsets are small: they fit
    for i, rs in enumerate(ctx.module.relocation_sections):
        for r_offset, symbol, where in rs.narrow:
            if where == "*ABS*" or where in percpu:
                continue
            if where:
                kind = f"defined in {where}, a module address"
            else:
                exp = (ctx.target.exports or {}).get(symbol)
                kind = f"exported by {exp.owner}" if exp else "undefined"
            yield ctx.finding(
                evidence={
                    "section": rs.target,
                    "r_offset": r_offset,
                    "r_type": r_type,
                    "type_name": names.get(r_type, str(r_type)),
                    "symbol": symbol,
                    "where": kind,
                    "remedy": remedy,
                },
                order=(i, r_offset),
                kernel_says=loader_line(
                    ctx, "relocation_overflow", module=ctx.module.name, r_type=r_type, symbol=symbol
                ),
            )
            return  # the kernel stops at the first
