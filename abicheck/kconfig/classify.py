"""What a changed option means for modules: its impact category, the places it acts,
and the fix, from rules/config/ and the trees' own include/linux/module.h.

struct module is judged from the module.h of the tree at hand, the way the layout checks
do (abicheck.readers.module_h): Debian 6.1 pins the BTF members with ``#if 1``, so there
CONFIG_DEBUG_INFO_BTF_MODULES moves nothing, and abicheck says so instead of crying wolf.
Only without any module.h does the table in rules/config/struct_module.toml stand in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from abicheck.kconfig import table
from abicheck.kconfig.model import Change, Impact, KconfigFinding, OptionImpact, describe, enabled
from abicheck.model import GuardedMember
from abicheck.readers.module_h import present


def _series_match(entries: Sequence[table.Entry], series: Sequence[str]) -> list[table.Entry]:
    if not series:
        return list(entries)
    chosen = [e for e in entries if not e.series or set(e.series) & set(series)]
    return chosen or list(entries)


def _flipped(change: Change) -> bool:
    """The option went from on to off or back (a y↔m change keeps it on)."""
    return enabled(change.old) != enabled(change.new)


def _differs(change: Change) -> bool:
    if _is_bool_like(change.old) and _is_bool_like(change.new):
        return _flipped(change)
    return change.old != change.new


def _is_bool_like(value: str | None) -> bool:
    return value in (None, "y", "m", "n")


def struct_module_effect(
    change: Change,
    old_config: Mapping[str, str],
    new_config: Mapping[str, str],
    guards: Sequence[GuardedMember],
    module_h: str | None,
) -> tuple[OptionImpact | None, str]:
    """(the effect, or None; a note when module.h deliberately ignores the option)."""
    mentioned = [g for g in guards if change.option in g.options]
    if guards:
        if not mentioned:
            upstream = table.entries(Impact.STRUCT_MODULE, change.option)
            if upstream:
                return None, (
                    f"harmless for struct module: {module_h or 'this tree’s module.h'} does not "
                    f"guard any member on {change.option} (its members "
                    f"{', '.join(upstream[0].data.get('members', []))} exist unconditionally "
                    "there, as Debian 6.1 pins them with #if 1), unlike "
                    + ", ".join(f"linux-source-{s}" for e in upstream for s in e.series)
                )
            return None, ""
        added: list[str] = []
        removed: list[str] = []
        for g in mentioned:
            before, after = present(g, old_config), present(g, new_config)
            if before is None or after is None or before == after:
                continue
            (added if after else removed).append(g.name)
        if not added and not removed:
            return None, ""
        parts = []
        if removed:
            parts.append("removes " + ", ".join(removed))
        if added:
            parts.append("adds " + ", ".join(added))
        where = f"{module_h or 'include/linux/module.h'} struct module"
        return OptionImpact(Impact.STRUCT_MODULE, where, "; ".join(parts)), ""
    rows = table.entries(Impact.STRUCT_MODULE, change.option)
    if rows and _flipped(change):
        members = sorted({m for r in rows for m in r.data.get("members", [])})
        series = sorted({s for r in rows for s in r.series})
        return OptionImpact(
            Impact.STRUCT_MODULE,
            rows[0].where,
            f"members {', '.join(members)} (in linux-source-{', '.join(series)}; no module.h "
            "of these configs was read, and distributions may pin them)",
        ), ""
    return None, ""


def effects_of(
    change: Change,
    old_config: Mapping[str, str],
    new_config: Mapping[str, str],
    guards: Sequence[GuardedMember] = (),
    module_h: str | None = None,
    series: Sequence[str] = (),
) -> tuple[list[OptionImpact], list[str]]:
    out: list[OptionImpact] = []
    notes: list[str] = []
    option = change.option
    if option in ("CONFIG_LOCALVERSION", "CONFIG_LOCALVERSION_AUTO") or _flipped(change):
        for e in _series_match(table.entries(Impact.VERMAGIC, option), series):
            out.append(OptionImpact(Impact.VERMAGIC, e.where, e.detail))
    effect, note = struct_module_effect(change, old_config, new_config, guards, module_h)
    if effect:
        out.append(effect)
    if note:
        notes.append(note)
    for impact in (Impact.LOADER, Impact.STRUCT_LAYOUT, Impact.CODEGEN, Impact.TOOLCHAIN):
        if impact is not Impact.TOOLCHAIN and not _differs(change):
            continue
        for e in _series_match(table.entries(impact, option), series):
            out.append(OptionImpact(impact, e.where, e.detail))
    return _unique(out), notes


def _unique(effects: Iterable[OptionImpact]) -> list[OptionImpact]:
    seen, out = set(), []
    for e in effects:
        if (e.impact, e.where) not in seen:
            seen.add((e.impact, e.where))
            out.append(e)
    return out


def classify(
    change: Change,
    old_config: Mapping[str, str],
    new_config: Mapping[str, str],
    guards: Sequence[GuardedMember] = (),
    module_h: str | None = None,
    series: Sequence[str] = (),
    prompt: str = "",
) -> KconfigFinding:
    effects, notes = effects_of(change, old_config, new_config, guards, module_h, series)
    impact = min((e.impact for e in effects), key=lambda i: i.rank, default=Impact.NONE)
    category = table.categories()[impact]
    primary = [e for e in effects if e.impact is impact]
    detail = "; ".join(f"{e.detail} ({e.where})" for e in primary[:3])
    if len(primary) > 3:
        detail += f"; and {len(primary) - 3} more places"
    message = f"{change.option}: {describe(change.old)} → {describe(change.new)}: {category.title}"
    if detail:
        message += f": {detail}"
    if notes:
        message += f" [{'; '.join(notes)}]"
    fix = category.fix.format(option=change.option, setting=setting(change.option, change.new))
    return KconfigFinding(
        change,
        impact,
        tuple(effects),
        message,
        fix,
        prompt=prompt,
        extra={"notes": notes} if notes else {},
    )


def setting(option: str, value: str | None) -> str:
    """How a .config line reads for this value."""
    if value in (None, "n"):
        return f"# {option} is not set"
    return f"{option}={value}"


def sort_findings(findings: Iterable[KconfigFinding]) -> list[KconfigFinding]:
    return sorted(findings, key=lambda f: (f.impact.rank, f.option))


def severity(finding: KconfigFinding) -> str:
    return table.categories()[finding.impact].severity
