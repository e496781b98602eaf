"""Why a symbol has its value: the chain of dependencies, defaults, selects and toolchain
probes behind it, as kconfiglib evaluates them.

``DEBUG_INFO_BTF_MODULES = n because PAHOLE_HAS_SPLIT_BTF = n because PAHOLE_VERSION (0)
>= 119 is false, and PAHOLE_VERSION = 0 because scripts/pahole-version.sh found no
pahole``: each step names the Kconfig file and line it was read from.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import kconfiglib

from abicheck.kconfig.kconfig_tree import KconfigTree, ProbeCall

MAX_DEPTH = 6


@dataclass
class Step:
    symbol: str
    value: str
    reason: str  # one sentence
    where: str  # file:line of the Kconfig text that decides it
    depth: int
    probes: list[ProbeCall] = field(default_factory=list)


@dataclass
class SymbolInfo:
    name: str
    type: str
    value: str
    prompt: str
    defined_at: list[str]
    help: str
    direct_dep: str  # with values: "DEBUG_INFO_BTF [y] && PAHOLE_HAS_SPLIT_BTF [n]"
    selected_by: str
    implied_by: str
    written: str | None  # the value the loaded .config wrote for it, if any
    steps: list[Step]


def value_of(sym: kconfiglib.Symbol) -> str:
    return (
        sym.str_value
        if sym.orig_type not in (kconfiglib.BOOL, kconfiglib.TRISTATE)
        else (kconfiglib.TRI_TO_STR[sym.tri_value])
    )


def _with_values(expr: object) -> str:
    def show(sc: object) -> str:
        if isinstance(sc, kconfiglib.Symbol) and not sc.is_constant and sc.nodes:
            return f"{sc.name} [{value_of(sc)}]"
        if isinstance(sc, kconfiglib.Choice):
            return f"<choice {sc.name or ''}>"
        return kconfiglib.standard_sc_expr_str(sc)

    return kconfiglib.expr_str(expr, show)


def _where(sym: kconfiglib.Symbol) -> str:
    return ", ".join(f"{n.filename}:{n.linenr}" for n in sym.nodes) or "(not defined)"


def _false_terms(expr: object) -> list[object]:
    """The AND-terms of a dependency that evaluate to n."""
    return [t for t in kconfiglib.split_expr(expr, kconfiglib.AND) if kconfiglib.expr_value(t) == 0]


def _symbols_in(expr: object) -> list[kconfiglib.Symbol]:
    # a bare number in an expression is an undefined symbol to kconfiglib: skip those
    return [
        s
        for s in kconfiglib.expr_items(expr)
        if isinstance(s, kconfiglib.Symbol) and not s.is_constant and s.nodes
    ]


def explain(tree: KconfigTree, name: str) -> SymbolInfo | None:
    sym = tree.symbol(name)
    if sym is None or not sym.nodes:
        return None
    steps: list[Step] = []
    _why(tree, sym, 0, steps, set())
    node = sym.nodes[0]
    prompt = next((n.prompt[0] for n in sym.nodes if n.prompt), "")
    return SymbolInfo(
        sym.name,
        kconfiglib.TYPE_TO_STR[sym.orig_type],
        value_of(sym),
        prompt,
        [f"{n.filename}:{n.linenr}" for n in sym.nodes],
        (node.help or "").strip(),
        _with_values(sym.direct_dep),
        _with_values(sym.rev_dep) if sym.rev_dep is not tree.kconf.n else "",
        _with_values(sym.weak_rev_dep) if sym.weak_rev_dep is not tree.kconf.n else "",
        sym.user_value
        if isinstance(sym.user_value, str)
        else (kconfiglib.TRI_TO_STR[sym.user_value] if sym.user_value is not None else None),
        steps,
    )


def _why(
    tree: KconfigTree, sym: kconfiglib.Symbol, depth: int, steps: list[Step], seen: set
) -> None:
    if sym.name in seen or depth > MAX_DEPTH:
        return
    seen.add(sym.name)
    value = value_of(sym)
    probes = tree.toolchain_symbols.get(sym.name, [])
    visible = sym.visibility
    boolish = sym.orig_type in (kconfiglib.BOOL, kconfiglib.TRISTATE)
    where = _where(sym)

    def step(reason: str, at: str = where) -> None:
        steps.append(Step(sym.name, value, reason, at, depth, list(probes)))

    # 1. off because its dependencies are not met
    if boolish and value == "n" and kconfiglib.expr_value(sym.direct_dep) == 0:
        failing = _false_terms(sym.direct_dep)
        step("its dependencies are not met: " + " && ".join(_with_values(t) for t in failing))
        for term in failing:
            for dep in _symbols_in(term):
                _why(tree, dep, depth + 1, steps, seen)
        return
    # 2. forced by a select
    if boolish and kconfiglib.expr_value(sym.rev_dep) and value != "n":
        step("selected by " + _with_values(sym.rev_dep))
        return
    # 3. a user value from the .config (only a visible symbol takes one)
    if visible and sym.user_value is not None:
        step("set in the .config (it has a prompt, so the written value stands)")
        return
    # 4. its active default
    for default, cond in sym.defaults:
        if kconfiglib.expr_value(cond):
            text = _with_values(default)
            if cond is not tree.kconf.y:
                text += " if " + _with_values(cond)
            reason = f"default {text}"
            if probes:
                reason += "; computed from the toolchain: " + "; ".join(
                    _probe_text(p) for p in probes[:3]
                )
            elif sym.user_value is not None and not visible:
                reason += " (the .config's value is ignored: the option has no prompt)"
            step(reason)
            for dep in _symbols_in(default):
                _why(tree, dep, depth + 1, steps, seen)
            return
    if boolish and kconfiglib.expr_value(sym.weak_rev_dep):
        step("implied by " + _with_values(sym.weak_rev_dep))
        return
    if probes:
        step("computed from the toolchain: " + "; ".join(_probe_text(p) for p in probes[:3]))
        return
    step(
        "no default applies and the .config does not set it"
        if not visible
        else "not set in the .config, and its default is n"
    )


def _probe_text(p: ProbeCall) -> str:
    command = p.command
    if command.startswith("{ ") and "} >/dev/null" in command:
        command = command[2 : command.index("; } >/dev/null")]
    text = f"`{_short(command)}` → {p.output or '(empty)'}"
    if p.missing:
        text += f" ({', '.join(sorted(set(p.missing)))} not found on the PATH)"
    if not p.evaluated:
        text += f" (not evaluated: {p.problem})"
    return text + f" at {p.where}"


def _short(command: str, limit: int = 100) -> str:
    import re

    command = re.sub(r"\S*/scripts/", "scripts/", command)
    return command if len(command) <= limit else command[: limit - 1] + "…"


def chain(info: SymbolInfo) -> str:
    """The steps as one sentence: A = n because ...; B = n because ..."""
    return "; ".join(f"{s.symbol} = {s.value} because {s.reason} ({s.where})" for s in info.steps)
