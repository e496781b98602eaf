"""What a check sees: one module, one kernel target, the rest of the run, the assumptions.

Checks receive a :class:`CheckContext` and yield findings built with
:meth:`CheckContext.finding`, which fills in the rule's name, category, severity, message
and the kernel's own log line from ``rules/``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from abicheck import ruledata
from abicheck.model import (
    Effect,
    Export,
    Finding,
    GuardedMember,
    KernelTarget,
    Module,
)

SEVERITY_OF_EFFECT = ruledata.SEVERITY_OF_EFFECT  # kept here for older imports


@dataclass(frozen=True)
class Assumptions:
    """What the files cannot show, stated rather than guessed."""

    loader: str = "kmod"  # kmod insmod/modprobe, busybox insmod, or finit (kernel decompresses)
    # modprobe loads in-tree dependencies named by depmod; insmod does not
    intree_dependencies_loaded: bool = True
    sig_enforce: bool = False  # module.sig_enforce=1 on the command line
    lockdown: str | None = None  # "integrity"/"confidentiality" (lockdown= or Secure Boot)
    secure_boot: bool = False  # booted with UEFI Secure Boot
    trusted_keys: str | None = None  # where --trusted-keys came from
    # --param values: module name ("" for every module) → [(name, value or None)]
    params: tuple[tuple[str, str, str | None], ...] = ()
    # insmod -f / modprobe --force: kmod asks the kernel to ignore __versions and the
    # vermagic (finit_module's MODULE_INIT_IGNORE_MODVERSIONS | _VERMAGIC), or strips both
    # from the image it passes to init_module(): the module the kernel reads has neither
    force: bool = False

    def enforcing(self, target: KernelTarget) -> bool:
        return target.enabled("MODULE_SIG_FORCE") or self.sig_enforce

    def lockdown_mode(self, target: KernelTarget) -> str | None:
        """The lockdown level the kernel would run at, or None."""
        if not target.enabled("SECURITY_LOCKDOWN_LSM"):
            return None
        if target.enabled("LOCK_DOWN_KERNEL_FORCE_CONFIDENTIALITY"):
            return "confidentiality"
        if target.enabled("LOCK_DOWN_KERNEL_FORCE_INTEGRITY"):
            return "integrity"
        if self.lockdown:
            return self.lockdown
        if self.secure_boot and target.enabled("LOCK_DOWN_IN_EFI_SECURE_BOOT"):
            return "integrity"
        return None

    def params_for(self, module_name: str) -> list[tuple[str, str | None]]:
        norm = module_name.replace("-", "_")
        return [(n, v) for m, n, v in self.params if m in ("", norm)]

    def describe(self, target: KernelTarget) -> tuple[str, ...]:
        sig = "enforced" if self.enforcing(target) else "not enforced"
        why = (
            "CONFIG_MODULE_SIG_FORCE"
            if target.enabled("MODULE_SIG_FORCE")
            else "--assume-sig-enforce"
            if self.sig_enforce
            else "the kernel's config"
        )
        lock = self.lockdown_mode(target)
        keys = (
            f"signing keys checked against {self.trusted_keys}"
            if self.trusted_keys
            else "a signed module's key is assumed to be in the kernel's keyring"
        )
        loader = ruledata.loader_data()["loaders"][self.loader]["description"]
        return (
            f"loader: {loader}",
            "in-tree modules this module needs are loaded first (modprobe does this)"
            if self.intree_dependencies_loaded
            else "in-tree dependencies are not loaded",
            "modules of this run are loaded in the order given",
            f"signature enforcement: {sig} ({why}); lockdown: {lock or 'none'}",
            keys,
            "the module is not already loaded, not blacklisted (module_blacklist=), and "
            "module loading is not disabled (kernel.modules_disabled=0)",
        )


def license_is_gpl_compatible(license: str | None) -> bool:
    """include/linux/license.h; a missing license counts as "unspecified"."""
    return (license or "unspecified") in ruledata.loader_data()["license"]["gpl_compatible"]


@dataclass(frozen=True, slots=True)
class RunEntry:
    """What the other checks of a run need to know about one of its modules."""

    path: str
    name: str
    proprietary: bool
    exports: tuple[Export, ...]

    @classmethod
    def of(cls, module: Module) -> RunEntry:
        return cls(
            module.path,
            module.name,
            not license_is_gpl_compatible(module.info("license")),
            module.exports,
        )


@dataclass(frozen=True)
class BuildTree:
    """The tree the modules were built against (--build-tree): its config and module.h."""

    path: str
    config: Mapping[str, str]
    module_h: tuple[GuardedMember, ...] = ()


@dataclass(frozen=True)
class Proved:
    """What ``abicheck prove`` saw the kernel do with one module, beside abicheck's own
    verdict: the input of the rules fed by prove (category ``prove``, PV001/PV002).

    Those rules are registered like any other (one TOML, one ``@check``) so that every
    reporter, --select/--ignore and ``abicheck rule PV001`` treat them alike; but no file
    can show what a live kernel did, so their checks read this record, which only prove
    attaches (:attr:`RunContext.proved`), and stay silent in a static run. The comparison
    itself (``disagreements``) is prove's: it needs the whole predicted result, which no
    single check sees."""

    predicted: str  # abicheck's verdict (Verdict value)
    verdict: str  # the kernel's: loads, loads-tainted, refused, oops, hang, not-run
    errno: tuple[str, ...]  # the errno names insmod's message stands for
    kernel_lines: tuple[str, ...]  # what the kernel logged during the load
    line: str  # the one line that says what the kernel did (a refusal's reason, an oops's first)
    disagreements: tuple[str, ...]  # one sentence each; empty when the kernel agrees
    # the rule whose finding predicted an oops (LY002 on arm64), when one did
    predicted_oops: str | None = None
    load_timeout: float | None = None  # seconds insmod was given before it counted as hung


@dataclass
class RunContext:
    """Everything shared by the checks of one run: its modules, in load order, and the
    assumptions. Entries are summaries, so that worker processes can share them."""

    entries: Sequence[RunEntry] = ()
    assumptions: Assumptions = field(default_factory=Assumptions)
    build_tree: BuildTree | None = None
    # module path -> what the kernel did with it, attached by ``abicheck prove`` only
    proved: Mapping[str, Proved] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        modules: Sequence[Module],
        assumptions: Assumptions | None = None,
        build_tree: BuildTree | None = None,
    ) -> RunContext:
        return cls([RunEntry.of(m) for m in modules], assumptions or Assumptions(), build_tree)

    # the entry being checked, set by the runner: a file given twice in a run (prove's
    # referee loads dep_provider.ko more than once) sits at two positions
    current: int | None = None

    @cached_property
    def _positions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for i, e in enumerate(self.entries):
            out.setdefault(e.path, i)
        return out

    def position(self, module: Module) -> int:
        if self.current is not None and self.entries[self.current].path == module.path:
            return self.current
        return self._positions.get(module.path, -1)

    @cached_property
    def exports(self) -> dict[str, tuple[int, Export]]:
        """Every export of the run's modules: name → (position of the exporter, export).
        The first exporter in the run wins, as the first one loaded would."""
        out: dict[str, tuple[int, Export]] = {}
        for pos, entry in enumerate(self.entries):
            for exp in entry.exports:
                out.setdefault(exp.name, (pos, exp))
        return out


def render(template: str, values: Mapping[str, Any]) -> str:
    """A rule's message template with the finding's evidence (str.format_map: C speed,
    and a KeyError naming the missing evidence if a check forgot it)."""
    return template.format_map(values)


class CheckContext:
    def __init__(self, module: Module, target: KernelTarget, run: RunContext) -> None:
        self.module = module
        self.target = target
        self.run = run
        self.generation, self.generation_verified = ruledata.generation_for(target.version)
        self._order = ruledata.stage_order(self.generation)
        self.memo: dict[str, Any] = {}  # computations several checks share
        self.rule_id: str | None = None  # the check running now (see abicheck.checks)

    # -- kernel facts the checks share ----------------------------------------------------

    @cached_property
    def arch(self) -> dict[str, Any]:
        data = ruledata.arch_data()
        return data.get(self.target.arch, {})

    def arch_message(self, key: str) -> str | None:
        """A line of the arch's loader (rules/arch/*.toml [messages]) as this kernel prints
        it: with the pr_fmt() prefix of the loader's source file where this kernel has one
        (arm64's module.c gained "Modules: " when module PLTs became unconditional, so a
        config without ARM64_MODULE_PLTS has it: ``prefix``, ``prefix_unless``, ``prefixed``)."""
        messages = self.arch.get("messages", {})
        said = messages.get(key)
        if said is None:
            return None
        option = messages.get("prefix_unless")
        if key in messages.get("prefixed", ()) and option and self.target.value(option) is None:
            said = messages.get("prefix", "") + said
        return str(said)

    @cached_property
    def distribution(self) -> dict[str, Any]:
        loader = ruledata.loader_data()
        for name, d in loader.get("distributions", {}).items():
            if name == self.target.distribution:
                return {**loader["upstream"], **d, "name": name}
        return {**loader["upstream"], "name": "upstream"}

    @cached_property
    def modversions(self) -> bool:
        return self.target.enabled("MODVERSIONS")

    @cached_property
    def force_load(self) -> bool:
        return self.target.enabled("MODULE_FORCE_LOAD")

    @property
    def elf_usable(self) -> bool:
        """The module's ELF structure could be read far enough for content checks."""
        return self.module.header is not None and bool(self.module.sections)

    # -- building findings ----------------------------------------------------------------

    @contextmanager
    def running(self, rule_id: str) -> Iterator[None]:
        """Bind :meth:`finding` to ``rule_id`` while its check runs."""
        outer, self.rule_id = self.rule_id, rule_id
        try:
            yield
        finally:
            self.rule_id = outer

    def finding(
        self,
        evidence: Mapping[str, Any] | None = None,
        *,
        order: tuple[int, ...] = (),
        effect: Effect | None = None,
        taint: str | None = None,
        kernel_says: str | None = None,
        stage: str | None = None,
        errno: str | None = None,
        variant: str | None = None,
        declaration: str | None = None,
    ) -> Finding:
        """A finding of the rule whose check is running, with the rule's text filled in.

        ``variant``: a key of the rule's [data] holding another message template
        (e.g. ``message_grouped``), for one rule ID that speaks of one thing or many.
        ``declaration``: the C declaration the finding is about, when it is not the
        evidence's ``symbol`` (shown as the finding's source line).
        """
        if self.rule_id is None:
            raise RuntimeError("CheckContext.finding() called outside a registered check")
        rule = ruledata.rule(self.rule_id)
        evidence = dict(evidence or {})
        effect = effect or rule.effect
        values = {"module": self.module.name, "release": self.target.release, **evidence}
        says = kernel_says if kernel_says is not None else rule.kernel_message(self.generation)
        taint = taint if taint is not None else rule.taint
        if effect is not Effect.TAINT and taint == rule.taint and rule.effect is Effect.TAINT:
            taint = None
        return Finding(
            rule=rule.id,
            name=rule.name,
            category=rule.category,
            severity=ruledata.SEVERITY_OF_EFFECT[effect],
            effect=effect,
            message=render(rule.data[variant] if variant else rule.message, values),
            kernel_says=render(says, values) if says else None,
            evidence=evidence,
            fix=render(rule.fix, values),
            taint=taint,
            order=(self.stage_rank(stage or rule.stage), *order),
            # errno="": the syscall returns no errno (the load oopses and insmod is killed)
            errno=(rule.errno if errno is None else (errno or None))
            if effect is Effect.REFUSE
            else None,
            declaration=declaration,
        )

    def stage_rank(self, stage: str) -> int:
        return self._order.get(stage, len(self._order))
