"""The one place in :mod:`abicheck.kconfig` that starts a process, and the rule it enforces.

A kernel tree's Kconfig is untrusted input: its ``$(shell,...)`` calls, its
``scripts/*.sh`` and even its preprocessor variables (``CC := python3``) are chosen by
whoever wrote the tree. Without ``--trust-tree`` a process starts only when :func:`run`
accepts its argument vector:

- the program is one of abicheck's own toolchain settings (CC, LD, PAHOLE, and RUSTC for
  its version only), looked up on abicheck's PATH, never a path inside the tree;
- every argument is one abicheck writes for a version query or for one of Kconfig's
  feature tests (scripts/Kconfig.include: ``cc-option``, ``cc-option-bit``, ``as-instr``,
  ``ld-option``, ``if-success``), or a flag under test that matches :data:`_CC_FLAG`
  (one ``-f``/``-m``/``-W``/``-g``/``-O``/``-D`` flag of a strict character class, no
  ``/``) and names no file or program (:data:`_CC_DENIED`);
- inputs are ``-`` (a snippet on standard input) or ``/dev/null``; outputs go to
  ``/dev/null``, standard output, or abicheck's scratch directory (the working directory);
- the environment is abicheck's (PATH and the Kbuild variables), never the tree's, except
  a C locale.

With ``--trust-tree`` :func:`run_shell` hands a command to ``/bin/sh`` as Kbuild's
``conf`` does. Every start is bounded in time, output size and CPU.
tests/test_config_trust.py proves no other module of :mod:`abicheck.kconfig` imports
:mod:`subprocess` (or any other way to start a process).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO

TOOL_TIMEOUT = 60  # seconds; a compiler probe takes milliseconds, a hung one must not hang us
OUTPUT_LIMIT = 1 << 20  # bytes a probe may print or write; version texts are ~100 bytes
STDIN_LIMIT = 64 << 10  # a Kconfig snippet on standard input is a few lines

# The toolchain variables whose programs may run without --trust-tree, and for which
# argument grammar (see _accepts). Interpreters (PYTHON3, PERL), HOSTCC, BINDGEN and the
# binutils other than ld (NM, AR, OBJCOPY, OBJDUMP, READELF, STRIP) never run.
RUNNABLE = ("CC", "LD", "PAHOLE", "RUSTC")


class Unevaluable(Exception):
    """A command (or part of one) that the safe evaluator does not know how to run."""


class Refused(Unevaluable):
    """A process the rule forbids without --trust-tree."""


@dataclass
class Outcome:
    status: int
    stdout: bytes = b""


@dataclass(frozen=True)
class Policy:
    """What may run: abicheck's toolchain settings, its PATH and environment."""

    programs: Mapping[str, tuple[str, ...]]  # toolchain variable → its configured words
    path: str
    env: Mapping[str, str] = field(default_factory=dict)
    trusted: bool = False
    srctree: str = ""
    cross_compile: str = ""

    def variable_of(self, argv: Sequence[str]) -> str | None:
        """The toolchain variable whose configured words start ``argv``, if any; a
        runnable one first (HOSTCC is often the same gcc as CC)."""
        found = [
            (name not in RUNNABLE, -len(words), name)
            for name, words in self.programs.items()
            if words and tuple(argv[: len(words)]) == words
        ]
        return min(found)[2] if found else None

    def which(self, program: str) -> str | None:
        found = shutil.which(program, path=self.path)
        return os.path.abspath(found) if found else None


# -- the allow-list -------------------------------------------------------------------------

_NAME = r"[A-Za-z0-9][A-Za-z0-9+_.-]*"
_VALUE = r"[A-Za-z0-9_.,+:-]*"
# One flag under test: -f/-m/-W with an optional =value (no '/', so it names no file
# outside the scratch directory; '-Wa,' '-Wl,' '-Wp,' fail on the comma), -g, -O, -D.
_CC_FLAG = re.compile(
    rf"-[fmW]{_NAME}(?:=(?:{_VALUE}|/dev/null))?"
    r"|-g[a-z0-9-]*(?:=[a-z0-9]+)?"
    r"|-O[0-3sgz]?"
    r"|-std=[a-z0-9+]+"
    r"|-[DU][A-Za-z_][A-Za-z0-9_]*(?:=[A-Za-z0-9_]*)?"
)
# Flags of that shape that still load a plugin, run or choose a program, read a named
# file or write one beside the output: gcc(1) and clang(1) option summaries. -flto is
# here because -flto=auto/jobserver makes gcc's lto-wrapper run make.
_CC_DENIED = re.compile(
    r"-f(?:plugin|pass-plugin|profile|auto-profile|cs-profile|dump|callgraph-info"
    r"|stack-usage|record-gcc-switches|record-command-line|opt-info|save|use-ld|lto"
    r"|compare-debug|sanitize-(?:blacklist|ignorelist|system|coverage-(?:allow|ignore|white|black)list)"
    r"|module|prebuilt-module|implicit-module|crash-diagnostics|time-trace|deps|xray"
    r"|diagnostics-(?:add|set)-output|debug-prefix-map|file-prefix-map|macro-prefix-map"
    r"|thinlto|basic-block-sections|embed-bitcode|gnu-tm|openmp|openacc|offload)"
    r"|-mllvm$"
)
# Arguments Kconfig.include's macros and abicheck's script versions write themselves.
_CC_FIXED = frozenset(
    {
        "-c",
        "-S",
        "-E",
        "-P",
        "-Werror",
        "-static",
        "-w",
        "--version",
        "-print-file-name=plugin",
        "-Wa,--fatal-warnings",  # as-instr in 6.12's scripts/Kconfig.include
        "-Wa,--version",  # scripts/as-version.sh
        # clang's old switch, tested by init/Kconfig's CC_HAS_AUTO_VAR_INIT_ZERO_ENABLER
        "-enable-trivial-auto-var-init-zero-knowing-it-will-be-removed-from-clang",
    }
)
_LANGUAGES = frozenset({"c", "assembler", "assembler-with-cpp"})
_PARAM = re.compile(r"[a-z][a-z0-9-]*=[0-9]+")  # --param NAME=NUMBER
_LLVM_OPTION = re.compile(r"-[a-z][a-z0-9-]*=[0-9]+")  # -mllvm -NAME=NUMBER
_LD_FLAG = re.compile(rf"--[a-z][a-z0-9-]*(?:={_VALUE})?")
_LD_DENIED = re.compile(
    r"--(?:plugin|script|output|map|dependency-file|version-script|dynamic-list"
    r"|library|sysroot|dynamic-linker|just-symbols|retain-symbols-file|section-ordering"
    r"|trace|print-map|out-implib|default-script|require-defined|package-metadata"
    r"|Map|spare-dynamic|auxiliary|filter|rpath|audit|depaudit|soname|fini|init)",
    re.I,
)
_LD_FIXED = frozenset(
    {
        "-v",
        "--version",
        "-shared",
        "-Bsymbolic",
        "--pack-dyn-relocs=relr",
        "--use-android-relr-tags",
    }
)
_Z_KEYWORD = re.compile(r"[a-z][a-z0-9-]*(?:=[a-z0-9]+)?")
_SCRATCH_RELATIVE = re.compile(r"[A-Za-z0-9_.+][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_.+-]+)*")


def _in_scratch(path: str, scratch: str) -> bool:
    """A relative name with no '..' (it resolves in the scratch directory, the working
    directory), or an absolute one inside it."""
    if os.path.isabs(path):
        real = os.path.realpath(path)
        return os.path.commonpath([real, os.path.realpath(scratch)]) == os.path.realpath(scratch)
    return bool(_SCRATCH_RELATIVE.fullmatch(path)) and ".." not in path.split("/")


def _accepts(variable: str, args: Sequence[str], scratch: str) -> str | None:
    """None if the argument list is one the rule allows, else why not."""
    if variable == "PAHOLE":
        return None if list(args) == ["--version"] else "pahole runs only as `pahole --version`"
    if variable == "RUSTC":
        ok = list(args) in (["--version"], ["--version", "--verbose"])
        return None if ok else "rustc runs only for its version"
    i = 0
    while i < len(args):
        a = args[i]
        nxt = args[i + 1] if i + 1 < len(args) else None
        if a == "-o":
            if nxt is None or not (nxt in ("/dev/null", "-") or _in_scratch(nxt, scratch)):
                return f"-o {nxt} (output outside abicheck's scratch directory)"
            i += 2
            continue
        if variable == "CC":
            if a == "-x":
                if nxt not in _LANGUAGES:
                    return f"-x {nxt}"
                i += 2
                continue
            if a == "--param":
                if nxt is None or not _PARAM.fullmatch(nxt):
                    return f"--param {nxt}"
                i += 2
                continue
            if a == "-mllvm":
                if nxt is None or not _LLVM_OPTION.fullmatch(nxt):
                    return f"-mllvm {nxt}"
                i += 2
                continue
            if a in _CC_FIXED or a in ("-", "/dev/null"):
                i += 1
                continue
            if _CC_FLAG.fullmatch(a) and not _CC_DENIED.match(a):
                i += 1
                continue
            return f"compiler argument {a!r}"
        # LD
        if a == "-z":
            if nxt is None or not _Z_KEYWORD.fullmatch(nxt):
                return f"-z {nxt}"
            i += 2
            continue
        if a in _LD_FIXED or (_LD_FLAG.fullmatch(a) and not _LD_DENIED.match(a)):
            i += 1
            continue
        if not a.startswith("-") and os.path.isabs(a) and _in_scratch(a, scratch):
            i += 1  # abicheck's own object in its scratch directory
            continue
        return f"linker argument {a!r}"
    return None


def check(policy: Policy, argv: Sequence[str], cwd: str) -> str:
    """The toolchain variable ``argv`` runs; raises :class:`Refused` when the rule
    forbids it (always allowed with --trust-tree)."""
    variable = policy.variable_of(argv)
    if policy.trusted:
        return variable or ""
    if variable is None or variable not in RUNNABLE:
        raise Refused(
            f"{argv[0] if argv else '(nothing)'}: not a compiler, linker or pahole of "
            "abicheck's toolchain settings"
        )
    problem = _accepts(variable, argv[len(policy.programs[variable]) :], cwd)
    if problem:
        raise Refused(f"{' '.join(argv)[:120]}: {problem}")
    return variable


# -- starting -------------------------------------------------------------------------------


def _limits() -> None:  # pragma: no cover - runs in the child between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (TOOL_TIMEOUT, TOOL_TIMEOUT))


def _start(
    argv: list[str], stdin: bytes, env: Mapping[str, str], cwd: str, want: str, shell: bool
) -> Outcome:
    """The only subprocess call of abicheck.kconfig."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stderr: int | IO[bytes] = subprocess.DEVNULL
        if want == "both":
            stderr = subprocess.STDOUT
        elif want == "stderr":
            stderr = err
        try:
            res = subprocess.run(
                argv[0] if shell else argv,
                shell=shell,  # only run_shell, only with --trust-tree
                input=stdin,
                stdout=subprocess.DEVNULL if want == "stderr" else out,
                stderr=stderr,
                env=dict(env),
                cwd=cwd,
                timeout=TOOL_TIMEOUT,
                check=False,
                preexec_fn=_limits,  # limits set in the child, before exec
            )
        except (OSError, subprocess.TimeoutExpired, subprocess.SubprocessError):
            return Outcome(126)
        source = err if want == "stderr" else out
        source.seek(0)
        return Outcome(res.returncode, source.read(OUTPUT_LIMIT))


def run(
    policy: Policy,
    argv: Sequence[str],
    *,
    cwd: str,
    stdin: bytes = b"",
    want: str = "stdout",
    c_locale: bool = False,
    stdin_from_tree: bool = False,
) -> Outcome:
    """Run a toolchain program by argument vector, never through a shell, in ``cwd``
    (abicheck's scratch directory). ``want``: "stdout", "both" (2>&1) or "stderr" (what
    ``$(cmd 2>&1 >/dev/null)`` captures). A snippet the tree wrote on standard input
    gives back only the exit status, so ``#include "/home/..."`` cannot copy a file into
    the report. Raises :class:`Refused`; a program missing from the PATH is 127."""
    check(policy, argv, cwd)
    if len(stdin) > STDIN_LIMIT:
        raise Refused(f"{len(stdin)} bytes on standard input (limit {STDIN_LIMIT})")
    path = policy.which(argv[0])
    if path is None:
        return Outcome(127)  # the shell's "command not found"
    if policy.srctree and not policy.trusted:
        tree = os.path.realpath(policy.srctree)
        if os.path.commonpath([os.path.realpath(path), tree]) == tree:
            raise Refused(f"{path}: a program inside the tree")
    env = {**policy.env, "PATH": policy.path}
    if c_locale:
        env["LC_ALL"] = "C"
    out = _start([path, *argv[1:]], stdin, env, cwd, want, shell=False)
    if stdin_from_tree and not policy.trusted:
        return Outcome(out.status)
    return out


def run_shell(policy: Policy, command: str) -> Outcome:
    """--trust-tree: ``/bin/sh -c COMMAND`` in the tree, as Kbuild's conf runs it."""
    if not policy.trusted:
        raise Refused("a shell command needs --trust-tree")
    env = {**os.environ, **policy.env}
    return _start([command], b"", env, policy.srctree, "stdout", shell=True)
