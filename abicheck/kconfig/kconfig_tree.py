"""The one door to kconfiglib: a kernel tree's Kconfig, loaded under a toolchain.

kconfiglib 14.1.0 (unmaintained since 2020) is extended here at run time, never copied:

- ``$(shell,...)`` goes to :class:`~abicheck.kconfig.shell.SafeShell` (no ``/bin/sh``)
  unless the tree is trusted, and every call is recorded with where it was made; any
  process starts through :mod:`abicheck.kconfig.launch` and its allow-list;
- environment lookups read the Kbuild environment of :mod:`abicheck.kconfig.toolchain`
  instead of ``os.environ``, so several trees and toolchains load side by side;
- syntax newer than 14.1.0 is accepted by :mod:`abicheck.kconfig.kconfig_compat`.

Everything kconfiglib-specific (Symbol, expressions, tristate numbers) stays inside this
module and :mod:`abicheck.kconfig.explain`; the rest of abicheck sees plain mappings.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import cached_property

import kconfiglib

from abicheck.errors import AbicheckError
from abicheck.kconfig import kconfig_compat, launch
from abicheck.kconfig.kbuild_scripts import run_script
from abicheck.kconfig.shell import SafeShell, Unevaluable
from abicheck.kconfig.toolchain import Toolchain, kbuild_environment
from abicheck.readers.kconfig import parse_config

# kconfiglib's constructor reads a few settings with os.getenv(); they are set for the
# duration of a load only, under this lock.
_ENV_LOCK = threading.Lock()
_KCONFIGLIB_SETTINGS = (
    "srctree",
    "CONFIG_",
    "KCONFIG_FUNCTIONS",
    "KCONFIG_WARN_UNDEF",
    "KCONFIG_WARN_UNDEF_ASSIGN",
    "KCONFIG_STRICT",
    "KCONFIG_CONFIG_HEADER",
    "KCONFIG_AUTOHEADER_HEADER",
)


class KconfigLoadError(AbicheckError):
    """The tree's Kconfig could not be parsed."""


@dataclass(frozen=True)
class ProbeCall:
    """One ``$(shell,...)`` Kconfig made while loading."""

    command: str
    where: str  # file:line of the Kconfig line that made it
    output: str
    # False: the safe evaluator could not run it (output then ""), or a program in it
    # did not run without --trust-tree (output then as if that program failed)
    evaluated: bool
    problem: str = ""  # why it could not be evaluated
    ran: tuple[str, ...] = ()  # the programs run for it
    notes: tuple[str, ...] = ()  # caveats (a helper script abicheck was not checked on)
    missing: tuple[str, ...] = ()  # programs it needed that are not on the PATH


@dataclass
class LoadRecord:
    """What loading needed from outside the Kconfig files."""

    probes: list[ProbeCall] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)  # the env vars Kconfig read
    # Kconfig lines (file, line) whose text drew on the toolchain: a $(shell,...) ran
    # there, or a tool variable or toolchain-derived preprocessor variable was expanded
    toolchain_sites: set[tuple[str, int]] = field(default_factory=set)
    toolchain_variables: set[str] = field(default_factory=set)


class _Kconfig(kconfig_compat.CompatMixin, kconfiglib.Kconfig):
    """kconfiglib.Kconfig with the preprocessor's two doors to the outside replaced, and
    a record of which Kconfig lines drew on the toolchain."""

    def __init__(
        self, filename: str, env: Mapping[str, str], shell: _ShellDoor, record: LoadRecord
    ) -> None:
        self._abicheck_env = env
        self._abicheck_shell = shell
        self._abicheck_record = record
        self._abicheck_touched = False  # the current expansion drew on the toolchain
        self.transitional: set[str] = set()
        super().__init__(filename, warn=True, warn_to_stderr=False)

    def _fn_val(self, args: list[str]) -> str:
        name = args[0]
        where = (self.filename, self.linenr)
        record = self._abicheck_record
        if name == "shell" and name not in self.variables:
            # never kconfiglib's own _shell_fn, which would hand the text to /bin/sh
            if len(args) != 2:
                raise kconfiglib.KconfigError(f"{where[0]}:{where[1]}: $(shell) takes one argument")
            output = self._abicheck_shell(args[1], f"{where[0]}:{where[1]}")
            self._touch(where)
            return output
        if name in self.variables:
            if name in record.toolchain_variables:
                self._touch(where)
            return super()._fn_val(args)
        if name in self._functions:
            return super()._fn_val(args)
        if name in self._abicheck_env:
            self.env_vars.add(name)
            record.environment[name] = self._abicheck_env[name]
            if name in TOOLCHAIN_ENV:
                self._touch(where)
            return self._abicheck_env[name]
        return ""

    def _touch(self, where: tuple[str, int]) -> None:
        self._abicheck_touched = True
        self._abicheck_record.toolchain_sites.add(where)

    def _parse_assignment(self, s: str) -> None:
        # a variable whose definition ran a probe or read a tool variable carries the
        # toolchain into every line that expands it (cc-version, ld-info ...)
        before = {k: v.value for k, v in self.variables.items()}
        self._abicheck_touched = False
        super()._parse_assignment(s)
        if self._abicheck_touched:
            for k, v in self.variables.items():
                if before.get(k) != v.value:
                    self._abicheck_record.toolchain_variables.add(k)


# Environment variables that name a tool or come from one (the top Makefile's).
TOOLCHAIN_ENV = frozenset(
    {
        "CC",
        "LD",
        "AR",
        "NM",
        "OBJCOPY",
        "OBJDUMP",
        "READELF",
        "STRIP",
        "PAHOLE",
        "RUSTC",
        "BINDGEN",
        "HOSTCC",
        "HOSTCXX",
        "HOSTRUSTC",
        "PYTHON3",
        "CLANG_FLAGS",
        "CC_VERSION_TEXT",
        "RUSTC_VERSION_TEXT",
    }
)


class _ShellDoor:
    """Evaluates one ``$(shell,...)`` safely (or, for a trusted tree, with /bin/sh)."""

    def __init__(self, srctree: str, env: Mapping[str, str], toolchain: Toolchain, trust: bool):
        self.srctree, self.env, self.toolchain, self.trust = srctree, env, toolchain, trust
        self.record: LoadRecord | None = None
        self.cache: dict[str, ProbeCall] = {}

    def __call__(self, command: str, where: str) -> str:
        if command not in self.cache:
            self.cache[command] = self._evaluate(command, where)
        found = self.cache[command]
        assert self.record is not None
        self.record.probes.append(found if found.where == where else replace(found, where=where))
        return found.output

    def _evaluate(self, command: str, where: str) -> ProbeCall:
        policy = self.toolchain.policy(self.env, self.srctree, self.trust)
        if self.trust:
            # --trust-tree: exactly what Kbuild's conf does
            out = launch.run_shell(policy, command)
            return ProbeCall(command, where, _shell_output(out.stdout), True, ran=("/bin/sh -c",))
        shell = SafeShell(self.srctree, self.env, policy, run_script)
        try:
            out = shell.run(command)
        except Unevaluable as e:
            return ProbeCall(command, where, "", False, str(e), tuple(shell.ran))
        problem = "; ".join(f"not run without --trust-tree: {r}" for r in shell.refused)
        return ProbeCall(
            command,
            where,
            _shell_output(out.stdout),
            not shell.refused,
            problem,
            ran=tuple(shell.ran),
            notes=tuple(shell.notes),
            missing=tuple(shell.missing),
        )


def _shell_output(stdout: bytes) -> str:
    # kconfiglib's own _shell_fn: newlines to spaces, trailing newline dropped
    text = stdout.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()).rstrip("\n").replace("\n", " ")


@contextmanager
def _kconfiglib_settings(srctree: str) -> Iterator[None]:
    with _ENV_LOCK:
        saved = {k: os.environ.get(k) for k in _KCONFIGLIB_SETTINGS}
        for k in _KCONFIGLIB_SETTINGS:
            os.environ.pop(k, None)
        os.environ["srctree"] = srctree  # noqa: SIM112  (kconfiglib's own spelling)
        try:
            yield
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


class KconfigTree:
    """A kernel source tree's Kconfig, parsed once, with values loaded on demand."""

    def __init__(
        self,
        srctree: str,
        toolchain: Toolchain | None = None,
        trust_tree: bool = False,
    ) -> None:
        self.srctree = os.path.abspath(srctree)
        self.toolchain = toolchain or Toolchain()
        self.trust_tree = trust_tree
        self.env = kbuild_environment(self.srctree, self.toolchain)
        self.record = LoadRecord()
        door = _ShellDoor(self.srctree, self.env, self.toolchain, trust_tree)
        door.record = self.record
        with _kconfiglib_settings(self.srctree):
            try:
                self.kconf = _Kconfig("Kconfig", self.env, door, self.record)
            except kconfiglib.KconfigError as e:
                raise KconfigLoadError(self.srctree, f"Kconfig: {e}") from None
            except OSError as e:
                raise KconfigLoadError(self.srctree, f"Kconfig: {e}") from None
        self.parse_warnings = list(self.kconf.warnings)
        self.kconf.warnings = []

    # -- values -----------------------------------------------------------------------

    def load(self, config_text: str) -> list[str]:
        """Load a .config's assignments (replacing earlier ones); returns kconfiglib's
        warnings about it (unknown symbols, values out of range ...)."""
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".config", delete=False) as f:
            f.write(config_text)
            path = f.name
        try:
            self.kconf.warnings = []
            self.kconf.load_config(path, replace=True)
        finally:
            os.unlink(path)
        warnings = list(self.kconf.warnings)
        self.kconf.warnings = []
        return warnings

    def config_text(self) -> str:
        """The .config ``make olddefconfig`` would write for the loaded values."""
        text = self.kconf._config_contents(None)
        if self.kconf.transitional:  # read from an old .config, never written back
            drop = tuple(f"CONFIG_{n}=" for n in self.kconf.transitional)
            drop += tuple(f"# CONFIG_{n} is not set" for n in self.kconf.transitional)
            text = "".join(ln for ln in text.splitlines(True) if not ln.startswith(drop))
        return text

    def values(self) -> dict[str, str]:
        """The written config as name → value (the plain reader's format)."""
        return parse_config(self.config_text())

    def defined(self) -> set[str]:
        return {"CONFIG_" + s.name for s in self.kconf.unique_defined_syms}

    def symbol(self, name: str) -> kconfiglib.Symbol | None:
        return self.kconf.syms.get(name.removeprefix("CONFIG_"))

    # -- where toolchain facts enter ---------------------------------------------------

    def unevaluated(self) -> list[ProbeCall]:
        return [p for p in self.record.probes if not p.evaluated]

    @cached_property
    def _nodes_by_file(self) -> dict[str, list[tuple[int, str]]]:
        out: dict[str, list[tuple[int, str]]] = {}
        for node in self.kconf.node_iter():
            if isinstance(node.item, kconfiglib.Symbol):
                out.setdefault(node.filename, []).append((node.linenr, node.item.name))
        for rows in out.values():
            rows.sort()
        return out

    def _symbol_at(self, filename: str, line: int) -> str | None:
        """The symbol whose definition a Kconfig line belongs to."""
        rows = self._nodes_by_file.get(filename)
        if not rows:
            return None
        i = bisect.bisect_right(rows, (line, "\uffff")) - 1
        return rows[i][1] if i >= 0 else None

    @cached_property
    def toolchain_symbols(self) -> dict[str, list[ProbeCall]]:
        """Symbols whose definition draws on the toolchain → the probes made there."""
        out: dict[str, list[ProbeCall]] = {}
        for filename, line in self.record.toolchain_sites:
            name = self._symbol_at(filename, line)
            if name:
                out.setdefault(name, [])
        for p in self.record.probes:
            filename, _, lineno = p.where.rpartition(":")
            name = self._symbol_at(filename, int(lineno)) if lineno.isdigit() else None
            if name and p not in out.setdefault(name, []):
                out[name].append(p)
        return out

    def missing_tools(self) -> dict[str, list[ProbeCall]]:
        """Programs Kconfig needed that are not on the PATH → the probes that wanted them."""
        out: dict[str, list[ProbeCall]] = {}
        for p in self.record.probes:
            for tool in p.missing:
                out.setdefault(tool, [])
                if p not in out[tool]:
                    out[tool].append(p)
        return out
