"""simplify_symbols(): every undefined symbol, in symbol-table order.

For each symbol the kernel asks, in this order: is it exported to this module at all
(GPL-only exports are invisible to a proprietary module), may a GPL-using module take it
from its owner (inherit_taint()), does the CRC match (check_version()), is its namespace
imported (verify_namespace_is_imported()). The first "no" fails the symbol; the loop
still visits every symbol, so the kernel logs each failure, and the load fails.
"""

from __future__ import annotations

from collections.abc import Iterator

from abicheck.checks import check
from abicheck.checks.resolve import is_proprietary, resolve
from abicheck.context import CheckContext
from abicheck.model import Effect, Finding
from abicheck.readers.elf import SHN_COMMON


def _symbol_checks_possible(ctx: CheckContext) -> bool:
    return ctx.elf_usable and ctx.target.exports is not None


@check("SY001")
def unknown_symbol(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    for r in resolve(ctx):
        if r.provider is None and r.hidden_gpl is None and not r.ignored:
            yield ctx.finding(evidence={"symbol": r.symbol.name}, order=(r.symbol.index, 0))


@check("SY002")
def invalid_section_index(ctx: CheckContext) -> Iterator[Finding]:
    m = ctx.module
    if not ctx.elf_usable or m.header is None:
        return
    for sym in m.bad_shndx:
        yield ctx.finding(
            evidence={"symbol": sym.name, "st_shndx": sym.st_shndx, "max": m.header.e_shnum - 1},
            order=(sym.index, 0),
        )


@check("SY003")
def common_symbol(ctx: CheckContext) -> Iterator[Finding]:
    for sym in ctx.module.common:
        if sym.st_shndx == SHN_COMMON and not sym.name.startswith("__gnu_lto"):
            yield ctx.finding(evidence={"symbol": sym.name}, order=(sym.index, 0))


@check("GP001")
def gpl_only_symbol(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    for r in resolve(ctx):
        if r.hidden_gpl is not None and not r.ignored:
            yield ctx.finding(
                evidence={
                    "symbol": r.symbol.name,
                    "license": ctx.module.info("license") or "unspecified",
                    "owner": r.hidden_gpl.name,
                },
                order=(r.symbol.index, 0),
            )


@check("GP002")
def proprietary_provider(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    for r in resolve(ctx):
        if r.provider is None or not r.proprietary_provider:
            continue
        if r.proprietary_provider == "refuse":
            yield ctx.finding(
                evidence={"symbol": r.symbol.name, "owner": r.provider.name},
                order=(r.symbol.index, 1),
            )
        elif not is_proprietary(ctx.module):
            yield ctx.finding(
                evidence={"symbol": r.symbol.name, "owner": r.provider.name},
                order=(r.symbol.index, 1),
                effect=Effect.TAINT,
                taint="P",
                kernel_says=f"{ctx.module.name}: module uses symbols "
                f"{r.symbol.name} from proprietary module {r.provider.name}, "
                "inheriting taint.",
            )


@check("NS001")
def namespace_not_imported(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    allow = ctx.target.enabled("MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS")
    for r in resolve(ctx):
        if r.provider is None or not r.namespace_missing:
            continue
        if (
            r.version in ("mismatch", "missing-entry")
            and ctx.distribution["missing_version_entry"] == "refuse"
        ):
            continue  # check_version() failed first; the namespace is never looked at
        yield ctx.finding(
            evidence={
                "symbol": r.symbol.name,
                "namespace": r.provider.export.namespace,
                "owner": r.provider.name,
                "imported": ctx.module.info_all("import_ns"),
            },
            order=(r.symbol.index, 3),
            effect=Effect.WARN if allow else Effect.REFUSE,
        )


@check("DP001")
def needs_intree_module(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    needed: dict[str, list[str]] = {}
    first: dict[str, int] = {}
    for r in resolve(ctx):
        if r.provider is not None and r.provider.kind == "in-tree":
            needed.setdefault(r.provider.name, []).append(r.symbol.name)
            first.setdefault(r.provider.name, r.symbol.index)
    depends = {d for d in (ctx.module.info("depends") or "").split(",") if d}
    for owner, symbols in needed.items():
        short = owner.rsplit("/", 1)[-1]
        yield ctx.finding(
            evidence={
                "owner": owner,
                "module_name": short,
                "symbols": symbols,
                "count": len(symbols),
                "declared": short.replace("-", "_") in {d.replace("-", "_") for d in depends},
            },
            order=(first[owner], 0),
        )


@check("DP002")
def load_order(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    me = ctx.run.position(ctx.module)
    for r in resolve(ctx):
        p = r.provider or r.hidden_gpl
        if p is not None and p.kind == "run" and p.position is not None and p.position > me:
            yield ctx.finding(
                evidence={
                    "symbol": r.symbol.name,
                    "provider": p.name,
                    "provider_path": ctx.run.entries[p.position].path,
                },
                order=(r.symbol.index, 0),
            )


@check("DP003")
def undeclared_dependency(ctx: CheckContext) -> Iterator[Finding]:
    if not _symbol_checks_possible(ctx):
        return
    depends = {d.replace("-", "_") for d in (ctx.module.info("depends") or "").split(",") if d}
    reported = set()
    for r in resolve(ctx):
        p = r.provider
        if p is None or p.kind != "run" or p.name in reported:
            continue
        if p.name.replace("-", "_") not in depends:
            reported.add(p.name)
            yield ctx.finding(
                evidence={"symbol": r.symbol.name, "provider": p.name, "depends": sorted(depends)},
                order=(r.symbol.index, 0),
            )


@check("SY004")
def duplicate_export(ctx: CheckContext) -> Iterator[Finding]:
    """verify_exported_symbols(): an export that vmlinux (or a loaded module) already has."""
    if ctx.target.exports is None:
        return
    me = ctx.module.name.replace("-", "_")
    for i, exp in enumerate(ctx.module.exports):
        other = ctx.target.exports.get(exp.name)
        if other is None:
            continue
        owner_name = other.owner.rsplit("/", 1)[-1].replace("-", "_")
        if owner_name == me:
            continue  # the module's own entry in the kernel's Module.symvers
        if other.owner == "vmlinux":
            yield ctx.finding(
                evidence={"symbol": exp.name, "owner": "vmlinux", "owner_name": "kernel"},
                order=(i,),
            )
        else:
            yield ctx.finding(
                evidence={
                    "symbol": exp.name,
                    "owner": f"the in-tree module {other.owner} (when it is loaded)",
                    "owner_name": owner_name,
                },
                order=(i,),
                effect=Effect.WARN,
            )
