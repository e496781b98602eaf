"""Run the registered checks over (module, kernel target) pairs and decide the verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from abicheck import checks, ruledata
from abicheck.context import CheckContext, RunContext
from abicheck.errors import ModuleReadError
from abicheck.model import Effect, Finding, KernelTarget, Module, Result, Taint, Verdict

RuleFilter = Callable[[str], bool]


def _taint(letter: str) -> Taint:
    info = ruledata.loader_data()["taints"][letter]
    return Taint(letter, info["flag"], info["description"])


def verdict_of(findings: Sequence[Finding]) -> tuple[Verdict, tuple[Taint, ...]]:
    """The kernel's outcome from findings already in the kernel's order.

    The first refusal ends the load; taints the kernel set before it stay set (the kernel
    taints itself, not just the module), so they are reported with the refusal.
    """
    refusal = next((f for f in findings if f.effect is Effect.REFUSE), None)
    taints: list[str] = []
    for f in findings:
        if refusal is not None and f.order >= refusal.order:
            break
        if f.effect is Effect.TAINT and f.taint and f.taint not in taints:
            taints.append(f.taint)
    ordered = tuple(_taint(t) for t in taints)
    if refusal is not None:
        return Verdict.REFUSED, ordered
    if any(f.effect is Effect.UNSAFE for f in findings):
        return Verdict.LOADS_UNSAFE, ordered
    if ordered:
        return Verdict.LOADS_TAINTED, ordered
    return Verdict.LOADS, ordered


def check_module(
    module: Module, target: KernelTarget, run: RunContext, selected: RuleFilter | None = None
) -> Result:
    registry = checks.load_all()
    if run.assumptions.force:
        module = as_forced(module)
    ctx = CheckContext(module, target, run)
    findings: list[Finding] = []
    for rule_id in sorted(registry):
        if selected is not None and not selected(rule_id):
            continue
        findings.extend(registry[rule_id](ctx))
    findings.sort(key=lambda f: f.order)
    exclusive = [f for f in findings if ruledata.rule(f.rule).exclusive]
    if exclusive:
        # the load fails before anything else is looked at (rules/*.toml `exclusive`)
        findings = exclusive
    findings = _forced_once(findings)
    verdict, taints = verdict_of(findings)
    if module.types is not None:
        findings = [_with_source(module, f) for f in findings]
    return Result(
        module.path,
        target.id,
        target.release,
        verdict,
        taints,
        tuple(findings),
        run.assumptions.describe(target),
    )


def _forced_once(findings: list[Finding]) -> list[Finding]:
    """try_to_force_load() logs "NAME: REASON: kernel tainted." only while the kernel is
    not yet tainted F: of a module forced for several reasons (no __versions, no
    vermagic, each unversioned symbol), the kernel logs the first reason it meets."""
    out, seen = [], False
    for f in findings:
        if f.taint == "F" and f.effect is Effect.TAINT:
            if seen and f.kernel_says:
                f = replace(f, kernel_says=None)
            seen = True
        out.append(f)
    return out


def as_forced(module: Module) -> Module:
    """The module as the kernel reads it from ``insmod -f`` (kmod 30, libkmod-module.c
    kmod_module_insert_module()): finit_module() with MODULE_INIT_IGNORE_MODVERSIONS |
    MODULE_INIT_IGNORE_VERMAGIC, which setup_load_info() and check_modinfo() honour by
    seeing no __versions and no vermagic; where finit_module() is not used (a compressed
    file the kernel does not decompress) kmod strips __versions (SHF_ALLOC cleared) and
    zeroes vermagic= in the image it passes to init_module(): the same module to the
    kernel. module_sig_check() verifies a signature only when the flags are 0: a forced
    load counts as unsigned. (Not modelled: the init_module() path hands the kernel a
    signed module whose bytes kmod changed, which fails verification with EKEYREJECTED.)
    The kernel then force-loads through try_to_force_load(): MV003 and VM002 say so."""
    modinfo = tuple((k, v) for k, v in module.modinfo if k != "vermagic")
    first = {k: v for k, v in module.modinfo_first.items() if k != "vermagic"}
    return replace(
        module, versions=None, versions_size=0, modinfo=modinfo, modinfo_first=first,
        signature=None,
    )  # fmt: skip


def _with_source(module: Module, f: Finding) -> Finding:
    """The C source line a finding is about, from the module's DWARF, for SARIF and
    annotations: the declaration of the symbol, or the module_init/module_exit line."""
    name = f.declaration or f.evidence.get("symbol")
    if not isinstance(name, str) or module.types is None:
        return f
    where = module.types.decl_line(name)
    if where is None:
        return f
    return replace(f, evidence={**f.evidence, "source": {"file": where[0], "line": where[1]}})


def unreadable_result(error: ModuleReadError, target: KernelTarget) -> Result:
    rule = ruledata.rule("IN001")
    finding = Finding(
        rule.id,
        rule.name,
        rule.category,
        rule.severity,
        rule.effect,
        f"{error.path}: {error.problem}",
        None,
        {"path": error.path, "problem": error.problem},
        rule.fix,
    )
    return Result(error.path or "", target.id, target.release, Verdict.UNREADABLE, (), (finding,))
