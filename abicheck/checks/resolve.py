"""What the kernel's simplify_symbols() → resolve_symbol() does with each undefined symbol.

Computed once per (module, target) and shared by the symbol, GPL, namespace, dependency
and modversions checks, which each report their own part of it. Pure computation on the
model: the kernel's exports come from Module.symvers, the run's other modules from their
own ``__ksymtab``.
"""

from __future__ import annotations

from dataclasses import dataclass

from abicheck.context import CheckContext, license_is_gpl_compatible
from abicheck.model import Export, Module, Symbol, VersionEntry
from abicheck.readers.elf import STB_WEAK


@dataclass(frozen=True, slots=True)
class Provider:
    export: Export
    kind: str  # "vmlinux", "in-tree" (a module of the kernel's own tree) or "run"
    name: str  # vmlinux, the in-tree module path, or the run module's name
    position: int | None = None  # the provider's place in the run, for kind "run"
    proprietary: bool = False


@dataclass(frozen=True, slots=True)
class Resolution:
    symbol: Symbol
    provider: Provider | None  # what find_symbol() finds for this module (gplok applied)
    hidden_gpl: Provider | None  # exported, but GPL-only and this module is proprietary
    ignored: bool  # unresolved, but weak or ignored by the arch: not an error
    version: str  # ok | mismatch | missing-entry | no-versions | no-crc | not-checked
    module_crc: int | None
    namespace_missing: bool
    # inherit_taint(): "refuse" when a module already using GPL-only symbols takes one
    # from a proprietary module, "inherit" when it takes on that module's P taint
    proprietary_provider: str = ""


def is_proprietary(module: Module) -> bool:
    return not license_is_gpl_compatible(module.info("license"))


def versions_by_name(ctx: CheckContext) -> dict[str, VersionEntry]:
    """__versions as a dict; the kernel takes the first record with the name."""
    if "versions" not in ctx.memo:
        table: dict[str, VersionEntry] = {}
        for entry in ctx.module.versions or ():
            table.setdefault(entry.name, entry)
        ctx.memo["versions"] = table
    return ctx.memo["versions"]


def check_version(ctx: CheckContext, name: str, crc: int | None) -> tuple[str, int | None]:
    """The kernel's check_version() for one symbol: (outcome, the module's CRC)."""
    if not ctx.modversions:
        return "not-checked", None
    if crc is None:
        return "no-crc", None
    if ctx.module.versions is None:
        return "no-versions", None
    entry = versions_by_name(ctx).get(name)
    if entry is None:
        return "missing-entry", None
    # versions[i].crc (unsigned long) == crcval (u32): upper bits must be zero too
    return ("ok" if entry.crc == crc else "mismatch"), entry.crc


def resolve(ctx: CheckContext) -> list[Resolution]:
    if "resolutions" in ctx.memo:
        return ctx.memo["resolutions"]
    module, target = ctx.module, ctx.target
    kernel = target.exports or {}
    run = ctx.run.exports
    me = ctx.run.position(module)
    gplok = not is_proprietary(module)
    ignore = set(ctx.arch.get("ignore_undefined", ()))
    imported = set(module.info_all("import_ns"))
    out = []
    using_gplonly = False
    for sym in module.undefined:
        found: Provider | None = None
        exp = kernel.get(sym.name)
        if exp is not None:
            kind = "vmlinux" if exp.owner == "vmlinux" else "in-tree"
            found = Provider(exp, kind, exp.owner)
        elif sym.name in run and run[sym.name][0] != me:
            pos, exp = run[sym.name]
            other = ctx.run.entries[pos]
            found = Provider(exp, "run", other.name, pos, other.proprietary)
        hidden = None
        if found is not None and found.export.gpl_only and not gplok:
            hidden, found = found, None
        version, module_crc, ns_missing, conflict = "not-checked", None, False, ""
        if found is not None:
            using_gplonly |= found.export.gpl_only
            if found.kind == "run" and found.proprietary:
                conflict = "refuse" if using_gplonly else "inherit"
            version, module_crc = check_version(ctx, sym.name, found.export.crc)
            ns = found.export.namespace
            ns_missing = bool(ns) and ns not in imported
        ignored = found is None and (sym.st_bind == STB_WEAK or sym.name in ignore)
        out.append(
            Resolution(sym, found, hidden, ignored, version, module_crc, ns_missing, conflict)
        )
    ctx.memo["resolutions"] = out
    return out
