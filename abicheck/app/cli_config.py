"""`abicheck config diff|explain|predict`: parsing and wiring only; the work is in
abicheck.kconfig.

Exit codes: 0 no ABI-relevant change, 1 ABI-relevant changes found, 2 usage error or an
input that could not be read (one line `abicheck: error: PATH: problem`).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from abicheck.app.output import error
from abicheck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, AbicheckError

if TYPE_CHECKING:
    from abicheck.kconfig.toolchain import Toolchain

_F = TypeVar("_F", bound=Callable[..., Any])

FORMAT = click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
OUTPUT = click.option(
    "--output-file",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the report here instead of standard output.",
)
SHOW_ALL = click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List every changed option, not only the first ones without effect on modules.",
)
TOOLCHAIN = [
    click.option(
        "--set",
        "make_vars",
        multiple=True,
        metavar="VAR=VALUE",
        help="A make variable, as on make's command line (CC=gcc-12, LD=ld.bfd, PAHOLE=..., "
        "CROSS_COMPILE=..., ARCH=...). Repeatable.",
    ),
    click.option(
        "--path",
        "search_path",
        default=None,
        metavar="PATH",
        help="The PATH the toolchain is looked up in (default: this process's PATH).",
    ),
    click.option(
        "--trust-tree",
        is_flag=True,
        help="Run the tree's Kconfig $(shell,...) commands with /bin/sh, as make does "
        "(any program the tree names). Only for trees you trust.",
    ),
]


# The rule, in every command's --help; docs/security.md says the same at more length.
TRUST_RULE = """

\b
Without --trust-tree, a kernel tree (given with --tree, or found through a
build directory's `source` link) is untrusted input, and its Kconfig
$(shell,...) calls run no shell and no program the tree chooses. The only
processes started are the compiler, linker and pahole of abicheck's own
settings (--set CC=/LD=/PAHOLE=, looked up on --path; never a program inside
the tree), with argument lists abicheck writes: version queries and Kconfig's
feature tests (cc-option, cc-option-bit, as-instr, ld-option, ...). From the
tree such a test takes only flags that match an allow-list (-f..., -m...,
-W..., -g..., -O, -D of a strict character class, ld's --name[=value] and
-z keyword) and name no file or program (no -B, -specs, -fplugin, @file,
-Wl, options, -Wa, options but as-instr's -Wa,--fatal-warnings, -fprofile-*,
-fdump-*, -flto, --plugin, no path but /dev/null), or a snippet on standard
input. Outputs (-o) go only to /dev/null, standard output or a temporary
directory abicheck creates and deletes; the tree's environment settings never
reach a program. Interpreters (python3, perl, sh) and
other programs (objcopy, nm, strip, ...) never run: what Kconfig asks of them
is answered from a table (GNU or LLVM binutils, by the program's name) or
reported as "not run without --trust-tree", and the test then fails as if
the program could not run.

\b
--trust-tree runs every $(shell,...) with /bin/sh in the tree, as `make
olddefconfig` does: any program the tree names, with its arguments.
"""


def _toolchain_options(f: _F) -> _F:
    for option in reversed(TOOLCHAIN):
        f = option(f)
    return f


def _fail(problem: Exception) -> None:
    error(str(problem))
    sys.exit(EXIT_USAGE)


def _emit(text: str, output_file: str | None, fmt: str = "text") -> None:
    # config values and paths come from the trees read: escaped at this edge
    from abicheck.reporters.escape import display_lines, json_text

    text = json_text(text) if fmt == "json" else display_lines(text)
    try:
        if output_file:
            with open(output_file, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            click.echo(text, nl=False)
    except OSError as e:
        _fail(AbicheckError(output_file, f"cannot write the report: {e.strerror or e}"))


def _toolchain(make_vars: Sequence[str], search_path: str | None) -> Toolchain:
    from abicheck.kconfig.toolchain import Toolchain

    overrides = {}
    for item in make_vars:
        name, eq, value = item.partition("=")
        if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise click.UsageError(f"--set {item}: expected VAR=VALUE")
        overrides[name] = value
    return Toolchain(overrides, search_path) if search_path else Toolchain(overrides)


def _series(*releases: str | None) -> tuple[str, ...]:
    out = []
    for r in releases:
        m = re.match(r"(\d+\.\d+)", r or "")
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return tuple(out)


@click.group()
def config() -> None:
    """Kernel config drift: diff two configs, explain an option, predict olddefconfig.

    \b
    abicheck config diff /usr/src/linux-headers-6.1.0-47-amd64 running
    abicheck config diff build/.config /boot/config-6.1.0-56-amd64 --format json
    abicheck config explain CONFIG_DEBUG_INFO_BTF_MODULES --tree ~/src/linux-6.1
    abicheck config predict ~/src/linux-6.1

    A config is a .config file (or config.gz), a headers, build or source directory,
    'running', a saved profile, or a vmlinux/vmlinuz with an embedded config (IKCONFIG).
    Exit codes: 0 nothing that matters to modules, 1 changes that do, 2 error.
    """


@config.command(
    "diff",
    help="Compare config A (what modules are built with) with config B (the kernel's)."
    + TRUST_RULE,
)
@click.argument("a")
@click.argument("b")
@click.option(
    "--tree",
    default=None,
    type=click.Path(file_okay=False),
    metavar="SRC",
    help="A kernel source tree whose Kconfig resolves the options a config leaves out "
    "(default: the tree a directory's `source` link names, if any).",
)
@TOOLCHAIN[2]
@FORMAT
@OUTPUT
@SHOW_ALL
def diff_command(
    a: str,
    b: str,
    tree: str | None,
    trust_tree: bool,
    fmt: str,
    output_file: str | None,
    show_all: bool,
) -> None:
    from abicheck.kconfig import classify, diff, report
    from abicheck.kconfig.kconfig_tree import KconfigTree
    from abicheck.targets.kernel_config import load_kernel_config as load_config

    try:
        sa, sb = load_config(a, tree), load_config(b, tree)
        trees: dict[str, KconfigTree] = {}

        def kconfig(path: str | None) -> KconfigTree | None:
            if path is None:
                return None
            if path not in trees:
                trees[path] = KconfigTree(path, trust_tree=trust_tree)
            return trees[path]

        ta, tb = kconfig(sa.srctree), kconfig(sb.srctree)
        ra, rb = diff.resolve(sa, ta), diff.resolve(sb, tb)
        changes = diff.changes(ra, rb)
        guards = sb.module_h or sa.module_h
        module_h = sb.module_h_path if sb.module_h else sa.module_h_path
        series = _series(sb.release, sa.release)
        findings = []
        for change in changes:
            prompt = ""
            for t in (tb, ta):
                sym = t.symbol(change.option) if t else None
                if sym is not None:
                    prompt = next((n.prompt[0] for n in sym.nodes if n.prompt), "")
                    break
            findings.append(
                classify.classify(
                    change, ra.values, rb.values, guards, module_h, series, prompt=prompt
                )
            )
    except (AbicheckError, OSError) as e:
        _fail(e)
    result = report.DiffResult(
        sa,
        sb,
        classify.sort_findings(findings),
        diff.unresolved(changes, ra, rb),
        {"a": ra.tree, "b": rb.tree},
        {"a": len(ra.defaulted), "b": len(rb.defaulted)},
        module_h,
    )
    text = report.diff_json(result) if fmt == "json" else report.diff_text(result, show_all)
    _emit(text, output_file, fmt)
    sys.exit(EXIT_FINDINGS if report.abi_relevant(result.findings) else EXIT_OK)


@config.command(
    "explain",
    help="Why OPTION has its value in TREE: type, prompt, dependencies, the chain "
    "behind it." + TRUST_RULE,
)
@click.argument("option")
@click.option(
    "--tree",
    required=True,
    type=click.Path(file_okay=False),
    metavar="SRC",
    help="The kernel source tree whose Kconfig defines the option.",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The .config to evaluate (default: SRC/.config, else Kconfig's defaults).",
)
@_toolchain_options
@FORMAT
def explain_command(
    option: str,
    tree: str,
    config_path: str | None,
    make_vars: tuple[str, ...],
    search_path: str | None,
    trust_tree: bool,
    fmt: str,
) -> None:
    import json
    import os

    from abicheck.kconfig import classify, report
    from abicheck.kconfig.explain import explain
    from abicheck.kconfig.kconfig_tree import KconfigTree
    from abicheck.kconfig.model import Change
    from abicheck.kconfig.predict import module_h_of
    from abicheck.targets.kernel_config import is_kconfig_tree

    name = option.upper().removeprefix("CONFIG_")
    try:
        if not is_kconfig_tree(tree):
            raise AbicheckError(tree, "not a kernel source tree (no Kconfig, scripts/kconfig)")
        kt = KconfigTree(tree, _toolchain(make_vars, search_path), trust_tree)
        path = config_path or os.path.join(tree, ".config")
        if config_path or os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                kt.load(f.read())
        info = explain(kt, name)
    except (AbicheckError, OSError) as e:
        _fail(e)
    if info is None:
        _fail(AbicheckError(tree, f"CONFIG_{name} is not defined by this tree's Kconfig"))
    assert info is not None
    # what the option's value means for modules: classified as a change to "n"/"y"
    value = info.value
    flipped = "n" if value in ("y", "m") else "y"
    option_name = "CONFIG_" + name
    change = Change(option_name, value, flipped)
    guards, module_h = module_h_of(tree)
    effects, notes = classify.effects_of(
        change, {option_name: value}, {option_name: flipped}, guards, module_h, ()
    )
    # the classification is of a change away from the current value: say so, or
    # "removes kprobes members" reads as what KPROBES=y does
    rows = [
        (e.impact.value, e.where, f"set to {flipped} instead of {value}, it {e.detail}")
        for e in effects
    ]
    rows += [("note", "", n) for n in notes]
    if fmt == "json":
        d = report.explain_dict(info, [])
        d["abi"] = [
            {"impact": e.impact.value, "where": e.where, "detail": e.detail} for e in effects
        ]
        d["abi_notes"] = notes
        _emit(json.dumps(d, indent=2) + "\n", None, "json")
    else:
        _emit(report.explain_text(info, rows), None)
    sys.exit(EXIT_OK)


@config.command(
    "predict",
    help="What `make olddefconfig` would change in TREE here, and what that breaks." + TRUST_RULE,
)
@click.argument("tree", type=click.Path(file_okay=False))
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="The .config to start from (default: TREE/.config).",
)
@_toolchain_options
@click.option(
    "--write-config",
    default=None,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="Also write the predicted .config here.",
)
@FORMAT
@OUTPUT
@SHOW_ALL
def predict_command(
    tree: str,
    config_path: str | None,
    make_vars: tuple[str, ...],
    search_path: str | None,
    trust_tree: bool,
    write_config: str | None,
    fmt: str,
    output_file: str | None,
    show_all: bool,
) -> None:
    from abicheck.kconfig import report
    from abicheck.kconfig.predict import predict
    from abicheck.targets.kernel_config import is_kconfig_tree

    try:
        if not is_kconfig_tree(tree):
            raise AbicheckError(tree, "not a kernel source tree (no Kconfig, scripts/kconfig)")
        prediction = predict(tree, config_path, _toolchain(make_vars, search_path), trust_tree)
        if write_config:
            with open(write_config, "w", encoding="utf-8") as f:
                f.write(prediction.config_text)
    except (AbicheckError, OSError) as e:
        _fail(e)
    text = (
        report.predict_json(prediction)
        if fmt == "json"
        else report.predict_text(prediction, show_all)
    )
    _emit(text, output_file, fmt)
    sys.exit(EXIT_FINDINGS if report.abi_relevant(prediction.findings) else EXIT_OK)
