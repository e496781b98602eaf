"""apply_relocations(): relocation types and values the arch's loader cannot apply."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import CheckedRelocation, Effect, Finding
from abicheck.readers.elf import SHT_REL


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
        said = ctx.arch_message("unknown_relocation")
        for r_type in sorted(rs.types - known.keys()):
            yield ctx.finding(
                kernel_says=said.format(module=ctx.module.name, r_type=r_type) if said else None,
                evidence={
                    "section": rs.name,
                    "target": rs.target,
                    "r_type": r_type,
                    "type_name": "unknown",
                    "arch": ctx.target.arch,
                },
                order=(i, r_type),
            )


def _range(spec: Mapping[str, Any]) -> tuple[int, int]:
    """The values a range-checked field holds (rules/arch/*.toml [range_checks])."""
    bits = int(spec["bits"])
    if spec.get("signed"):
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def _s64(value: int) -> int:
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >> 63 else value


def _values(ctx: CheckContext, rel: CheckedRelocation) -> tuple[int, int] | None:
    """The values S+A can take at load time (signed 64-bit), or None when they may be small.

    Undefined symbols resolve to a kernel or module address, the module's own symbols to
    its address, per-CPU ones to an address or (x86_64) an offset: rules/arch `kernel_addresses`.
    """
    if rel.where == "*ABS*":
        value = _s64(rel.st_value + rel.r_addend)
        return value, value
    if rel.where == ".data..percpu" and ctx.arch.get("percpu_symbols_are_offsets"):
        return None
    if not rel.where and rel.weak and rel.symbol not in (ctx.target.exports or {}):
        return None  # an unresolved weak symbol is 0
    lo, hi = (_s64(int(str(a), 16)) for a in ctx.arch.get("kernel_addresses", ()))
    return lo + rel.r_addend, hi + rel.r_addend


def _where(ctx: CheckContext, rel: CheckedRelocation) -> str:
    if rel.where:
        return f"defined in {rel.where}, a module address"
    exp = (ctx.target.exports or {}).get(rel.symbol)
    return f"exported by {exp.owner}" if exp else "undefined"


def _checked(ctx: CheckContext) -> Iterator[tuple[int, CheckedRelocation, dict[str, Any]]]:
    checks = {int(k): v for k, v in ctx.arch.get("range_checks", {}).items()}
    if not checks or "kernel_addresses" not in ctx.arch:
        return
    for i, rs in enumerate(ctx.module.relocation_sections):
        for rel in rs.checked:
            if rel.r_type in checks:
                yield i, rel, checks[rel.r_type]


@check("RL002")
def relocation_overflow(ctx: CheckContext) -> Iterator[Finding]:
    """Absolute relocations no kernel or module address fits: always refused."""
    if not ctx.elf_usable or not ctx.arch:
        return
    names = {int(k): v for k, v in ctx.arch.get("relocations", {}).items()}
    messages = ctx.arch.get("messages", {})
    remedy = messages.get(
        "relocation_overflow_fix",
        "Compile the object with -mcmodel=kernel (Kbuild does): it uses sign-extended "
        "R_X86_64_32S, which can hold kernel addresses.",
    )
    for i, rel, spec in _checked(ctx):
        if spec["op"] != "abs":
            continue
        values = _values(ctx, rel)
        lo, hi = _range(spec)
        if values is None or (values[0] <= hi and values[1] >= lo):
            continue  # it may fit
        type_name = names.get(rel.r_type, str(rel.r_type))
        yield ctx.finding(
            evidence={
                "section": ctx.module.relocation_sections[i].target,
                "r_offset": rel.r_offset,
                "r_type": rel.r_type,
                "type_name": type_name,
                "symbol": rel.symbol,
                "where": "an absolute value" if rel.where == "*ABS*" else _where(ctx, rel),
                "fits": f"{lo:#x}..{hi:#x}",
                "remedy": messages.get(spec.get("fix", ""), remedy),
            },
            order=(i, rel.r_offset),
            kernel_says=_overflow_line(ctx, rel),
        )
        return  # the kernel stops at the first


@check("RL003")
def relocation_maybe_out_of_range(ctx: CheckContext) -> Iterator[Finding]:
    """Short place-relative relocations to a symbol outside the module: refused unless the
    module happens to be placed within their range of it."""
    if not ctx.elf_usable or not ctx.arch:
        return
    names = {int(k): v for k, v in ctx.arch.get("relocations", {}).items()}
    window = int(ctx.arch.get("prel_window_bits", 64))
    for i, rel, spec in _checked(ctx):
        if spec["op"] != "prel" or spec.get("plt") or int(spec["bits"]) >= window:
            continue
        if rel.where or (rel.weak and rel.symbol not in (ctx.target.exports or {})):
            continue  # the module's own symbols, or 0
        lo, hi = _range(spec)
        exp = (ctx.target.exports or {}).get(rel.symbol)
        # Against vmlinux the refusal is all but certain: the module lands at a random
        # place of a 2 GiB window (RANDOMIZE_MODULE_REGION_FULL; without KASLR the module
        # region starts 128 MiB below _etext, farther still), so the chance of falling
        # within 1 MiB of one symbol is about 1 in 2,000; the real 6.1.0-47-arm64 and
        # 6.12.107-arm64 refused it. Against another module's symbol the two may well
        # be allocated side by side: a warning.
        certain = exp is not None and exp.owner == "vmlinux"
        yield ctx.finding(
            evidence={
                "section": ctx.module.relocation_sections[i].target,
                "r_offset": rel.r_offset,
                "r_type": rel.r_type,
                "type_name": names.get(rel.r_type, str(rel.r_type)),
                "symbol": rel.symbol,
                "where": _where(ctx, rel),
                "reach": _reach(hi + 1),
                "fits": f"{lo:#x}..{hi:#x}",
            },
            order=(i, rel.r_offset),
            kernel_says=_overflow_line(ctx, rel),
            effect=Effect.REFUSE if certain else None,
            errno="ENOEXEC" if certain else None,
        )


def _overflow_line(ctx: CheckContext, rel: CheckedRelocation) -> str | None:
    said = ctx.arch_message("relocation_overflow")
    if said is None:
        return None  # the rule's own kernel_says
    return said.format(module=ctx.module.name, r_type=rel.r_type, symbol=rel.symbol)


def _reach(size: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size >> shift} {unit}"
    return f"{size} bytes"
