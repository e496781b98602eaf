"""The command line. Parsing and wiring only: the work happens in engine, readers, targets.

Exit codes: 0 no error finding, 1 at least one error finding (refused or loads-unsafe),
2 usage error or an input that could not be read (the rest of the run is still checked).
"""

from __future__ import annotations

import difflib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import click

from abicheck import __version__, inputs, ruledata
from abicheck.app.output import error as _error
from abicheck.app.output import say
from abicheck.errors import EXIT_USAGE, AbicheckError
from abicheck.model import KernelTarget
from abicheck.readers.compressed import DEFAULT_LIMIT
from abicheck.reporters import FORMATS

# a click command function, or a command already made of one, as option decorators see it
_F = TypeVar("_F", bound=Callable[..., Any])


class DefaultToCheck(click.Group):
    """``abicheck foo.ko ...`` is short for ``abicheck check foo.ko ...``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            self._refuse_typo(args[0])
            args = ["check", *args]
        if args and args[0] == "check":
            args = bind_to_kernel(args)
        elif args and args[0] == "profile":
            args = bind_to_kernel(args, strict=False)
        return super().parse_args(ctx, args)

    def _refuse_typo(self, word: str) -> None:
        # `abicheck chek x.ko` would otherwise report "chek: no such file" and go on to
        # check x.ko: a mistyped command is refused before anything runs (an existing
        # file of that name is a module, as the shorthand promises)
        if word.startswith("-") or os.path.lexists(word) or os.sep in word or "." in word:
            return
        near = difflib.get_close_matches(word, sorted(self.commands), n=1, cutoff=0.6)
        if near:
            _error(f"{word!r} is neither a command nor a file; did you mean {near[0]!r}?")
            sys.exit(EXIT_USAGE)


PER_KERNEL = ("--vmlinux", "--modules-dir")
# argv strings cannot hold a NUL: the tag cannot be confused with a path
_TAG = "\0"


def _is_kernel_option(arg: str) -> bool:
    return arg.partition("=")[0] in ("--kernel", "-k") or (
        arg.startswith("-k") and not arg.startswith("--")  # -kDIR, click's short form
    )


def bind_to_kernel(args: list[str], strict: bool = True) -> list[str]:
    """``--vmlinux``/``--modules-dir`` belong to the ``--kernel`` before them: tag each
    value with that kernel's position (click itself keeps no order across options).

    ``strict``: one given before the first ``--kernel`` when a ``--kernel`` follows is a
    usage error (it would silently go to that next kernel). With no ``--kernel`` at all
    it belongs to the running kernel (or the project's kernels)."""
    out, kernel, i = [], 0, 0
    seen_kernel = False
    orphan: str | None = None
    while i < len(args):
        arg = args[i]
        if arg == "--":  # positional from here on
            out += args[i:]
            break
        name, eq, value = arg.partition("=")
        if _is_kernel_option(arg):
            if orphan is not None and strict:
                raise_usage(
                    f"{orphan} comes before any --kernel; it belongs to the --kernel before "
                    "it: put it after the --kernel it describes"
                )
            kernel += seen_kernel
            seen_kernel = True
        if name in PER_KERNEL:
            if not seen_kernel and orphan is None:
                orphan = name
            if not eq and i + 1 < len(args):
                value, i = args[i + 1], i + 1
            out += [name, f"{kernel}{_TAG}{value}"]
        else:
            out.append(arg)
        i += 1
    return out


def raise_usage(message: str) -> NoReturn:
    """A usage error as one line and exit 2 (click's own would add a usage block)."""
    _error(message)
    sys.exit(EXIT_USAGE)


def _per_kernel(values: Sequence[str], count: int, option: str) -> list[str | None]:
    out: list[str | None] = [None] * max(count, 1)
    for tagged in values:
        index, tag, path = tagged.partition(_TAG)
        if not tag:  # untagged (`upgrade`, the API): the only kernel's
            index, path = "0", tagged
        k = int(index) if index.isdigit() else 0
        if k >= len(out):
            raise click.UsageError(f"{option} {path}: no --kernel for it to belong to")
        out[k] = path
    return out


def load_targets(
    specs: Sequence[str],
    vmlinux: Sequence[str] = (),
    modules_dirs: Sequence[str] = (),
    layouts: str = "auto",
) -> tuple[list[KernelTarget], list[AbicheckError]]:
    """:func:`abicheck.inputs.load_targets` with --vmlinux/--modules-dir values as
    bind_to_kernel tagged them, each given to its own --kernel."""
    count = len(specs)
    return inputs.load_targets(
        specs,
        _per_kernel(vmlinux, count, "--vmlinux"),
        _per_kernel(modules_dirs, count, "--modules-dir"),
        layouts,
    )


@click.group(cls=DefaultToCheck, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="abicheck")
def main() -> None:
    """Predict, before insmod, whether a kernel module loads into a kernel, and why not.

    \b
    abicheck check hello.ko --kernel /usr/src/linux-headers-6.1.0-56-amd64
    abicheck hello.ko                  (the running kernel; `check` may be left out)
    abicheck rule MV001                (what a rule means and how to fix it)

    Exit codes: 0 no error finding, 1 error findings, 2 usage error or unreadable input.
    """


def kernel_artefacts(f: _F | None = None, *, owner: str = "the --kernel before it") -> Any:
    """--vmlinux and --modules-dir: artefacts of one kernel (``owner`` in their help)."""

    def decorate(f: _F) -> _F:
        f = click.option(
            "--modules-dir",
            "modules_dirs",
            multiple=True,
            metavar="DIR",
            help=f"The installed modules (lib/modules/RELEASE) of {owner}: struct module's "
            "size and offsets, from the kernel's own modules.",
        )(f)
        return click.option(
            "--vmlinux",
            "vmlinux",
            multiple=True,
            metavar="FILE",
            help=f"The kernel image (vmlinux, vmlinuz, or a -dbg vmlinux) of {owner}: its "
            "BTF or DWARF gives struct layouts.",
        )(f)

    return decorate(f) if f is not None else decorate


# a shorter click.option for the long list below
def _option(*names: str, **kw: Any) -> Callable[[_F], _F]:
    return click.option(*names, **kw)


@main.command()
@click.argument("modules", nargs=-1, type=click.Path())
@_option(
    "--kernel",
    "-k",
    "kernels",
    multiple=True,
    metavar="TARGET",
    help="Headers or build directory, profile file, directory of profiles, or 'running' "
    "(the default). Repeat for several kernels.",
)
@kernel_artefacts
@_option(
    "--build-tree",
    type=click.Path(),
    default=None,
    metavar="DIR",
    help="The headers, build or source tree (or .config) the modules were built against: "
    "its config and module.h explain a layout drift.",
)
@_option(
    "--layouts",
    type=click.Choice(["auto", "probe", "none"]),
    default="auto",
    show_default=True,
    help="Where the kernel's struct layouts come from. auto: --vmlinux/--modules-dir, "
    "else the headers' vmlinux, /sys/kernel/btf/vmlinux (running kernel), "
    "/boot/vmlinuz-R, /usr/lib/debug (…/vmlinux-R), /lib/modules/R/kernel, then a probe "
    "compiled against the headers with the system C compiler (only the compiler runs, on "
    "the headers; cached in $XDG_CACHE_HOME/abicheck). probe: the headers alone. none: "
    "do not check layouts (said on screen). $ABICHECK_SYSROOT moves /boot, /lib, /usr.",
)
@_option(
    "--require-layout",
    is_flag=True,
    default=None,
    help="Fail (error LY005) when a kernel's struct layouts cannot be obtained.",
)
@_option(
    "--no-cache",
    is_flag=True,
    help="Do not read or write the layout cache ($XDG_CACHE_HOME/abicheck).",
)
@_option(
    "--format",
    "fmt",
    type=click.Choice(tuple(FORMATS)),
    default=None,
    help="Output format (default: text, or the project's setting).",
)
@_option(
    "--output-file",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write the report here instead of standard output.",
)
@_option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the text report. auto: on a terminal, or when FORCE_COLOR is set; never "
    "when NO_COLOR is set or the report goes to a file.",
)
@_option(
    "--quiet",
    "-q",
    is_flag=True,
    help="Print only the error findings (one line each) and the verdict matrix's failing "
    "rows or the summary. Input errors still go to standard error.",
)
@_option(
    "--severity",
    "-S",
    type=click.Choice(["error", "warning", "info"]),
    default=None,
    help="Lowest severity shown (default: info, everything). Display only: the exit code "
    "follows --fail-on whatever is shown.",
)
@_option(
    "--statistics",
    is_flag=True,
    help="Instead of the findings, print how many times each rule fired (text or concise).",
)
@_option(
    "--project-root",
    type=click.Path(file_okay=False),
    default=None,
    help="Paths in SARIF/JUnit/GitHub output and fingerprints are relative to it "
    "(default: $GITHUB_WORKSPACE, else the project's configuration directory).",
)
@_option(
    "--sarif-category",
    default=None,
    metavar="NAME",
    help="SARIF automationDetails category prefix (default: abicheck); separates two "
    "jobs checking the same kernel.",
)
@_option(
    "--sarif-notes",
    is_flag=True,
    default=None,
    help="Write note-level (info) results into SARIF too; left out by default, since a "
    "module tree holds thousands (also on with --fail-on info).",
)
@_option(
    "--select",
    multiple=True,
    metavar="RULES",
    help="Only these rules (IDs, prefixes, names, categories; comma-separated).",
)
@_option("--ignore", multiple=True, metavar="RULES", help="Not these rules.")
@_option("--extend-select", multiple=True, metavar="RULES", help="Add to the selection.")
@_option("--extend-ignore", multiple=True, metavar="RULES", help="Add to the ignored rules.")
@_option(
    "--fail-on",
    type=click.Choice(["error", "warning", "info"]),
    default=None,
    help="Lowest severity that fails the run (default: error); independent of --severity.",
)
@_option(
    "--exit-zero",
    is_flag=True,
    default=None,
    help="Exit 0 even with findings (2 still means unusable input).",
)
@_option(
    "--baseline",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Hide findings recorded in FILE; if FILE does not exist, record today's.",
)
@_option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Project configuration (default: abicheck.toml or pyproject.toml "
    "[tool.abicheck], searched upwards).",
)
@_option("--isolated", is_flag=True, help="Ignore any project configuration.")
@_option(
    "--max-module-size",
    type=int,
    default=DEFAULT_LIMIT >> 20,
    show_default=True,
    metavar="MIB",
    help="Refuse to decompress a module beyond this size.",
)
@_option(
    "--assume-loader",
    type=click.Choice(["kmod", "busybox", "finit"]),
    default=None,
    help="Who loads the module: kmod's insmod/modprobe (default), busybox insmod, or "
    "finit_module() with in-kernel decompression.",
)
@_option(
    "--assume-sig-enforce", is_flag=True, help="Assume module.sig_enforce=1 (signatures required)."
)
@_option(
    "--assume-lockdown",
    type=click.Choice(["integrity", "confidentiality"]),
    default=None,
    help="Assume kernel lockdown at this level.",
)
@_option(
    "--assume-secure-boot",
    is_flag=True,
    help="Assume UEFI Secure Boot (lockdown where the kernel's config ties it to Secure "
    "Boot, CONFIG_LOCK_DOWN_IN_EFI_SECURE_BOOT).",
)
@_option(
    "--trusted-keys",
    type=click.Path(dir_okay=False),
    default=None,
    metavar="FILE",
    help="Certificates the kernel trusts (PEM, DER, or the kernel's vmlinux/vmlinuz whose "
    "built-in keyring is read); signatures are then verified.",
)
@_option(
    "--param",
    "params",
    multiple=True,
    metavar="[MODULE.]NAME[=VALUE]",
    help="A module parameter, as given to insmod; checked against the module's declared "
    "parameters. Repeatable.",
)
@_option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Worker processes for large runs (default: one per CPU).",
)
@_option(
    "--progress/--no-progress",
    default=None,
    help="A progress bar on standard error (default: on a terminal, for long runs).",
)
def check(**opts: Any) -> None:
    """Check MODULES (.ko files, compressed or not, or directories of them).

    --vmlinux and --modules-dir belong to the --kernel before them (one given before
    any --kernel is an error; with no --kernel at all, they are the running kernel's).

    \b
    Examples:
      abicheck check hello.ko --kernel /usr/src/linux-headers-6.1.0-56-amd64
      abicheck check build/ -k K1 --vmlinux /boot/vmlinuz-R1 -k K2 --modules-dir DIR2
      abicheck check DIR --kernel fleet/ --quiet      (only the summary and the errors)
      abicheck check DIR --format concise --severity warning | sort
      abicheck check DIR --statistics                 (findings counted per rule)
    """
    from abicheck.app.commands import run_check
    from abicheck.app.request import CheckRequest, RequestError

    try:
        request = CheckRequest.from_flags(opts)
    except RequestError as e:
        raise_usage(str(e))
    sys.exit(run_check(request))


@main.command()
@click.argument("rule_ids", nargs=-1)
@click.option("--all", "show_all", is_flag=True, help="Every rule.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True
)
def rule(rule_ids: tuple[str, ...], show_all: bool, fmt: str) -> None:
    """Explain a rule: what it detects, why it matters, the kernel's message, the fix."""
    from abicheck.ruledoc import rule_as_dict, rule_as_text

    if show_all:
        chosen = list(ruledata.all_rules().values())
    else:
        if not rule_ids:
            _error("give a rule ID or name (e.g. MV001), or --all")
            sys.exit(EXIT_USAGE)
        chosen = []
        for key in rule_ids:
            r = ruledata.get_rule(key)
            if r is None:
                _error(f"unknown rule {key!r} (abicheck rule --all lists them)")
                sys.exit(EXIT_USAGE)
            chosen.append(r)
    if fmt == "json":
        click.echo(json.dumps([rule_as_dict(r) for r in chosen], indent=2))
    else:
        click.echo("\n\n".join(rule_as_text(r) for r in chosen))


@main.group()
def profile() -> None:
    """Save a kernel's facts to one file, to check against it without its headers."""


@profile.command("save")
@click.option(
    "--kernel",
    "-k",
    "kernel",
    required=True,
    metavar="TARGET",
    help="The kernel to save: headers or build directory, 'running', or a profile.",
)
@click.option(
    "--output-file",
    "-o",
    "output",
    default=None,
    type=click.Path(dir_okay=False),
    help="Profile file to write (required); .gz compresses it.",
)
# the option's first name, kept working for scripts written before -o meant --output-file
@click.option("--output", "output_alias", hidden=True, type=click.Path(dir_okay=False))
@kernel_artefacts
@click.option(
    "--btf/--no-btf",
    "with_btf",
    default=True,
    show_default=True,
    help="Embed the kernel's BTF (about 2 MB compressed) when it is available, or the "
    "layouts the headers probe compiled.",
)
@click.option(
    "--layouts",
    type=click.Choice(["auto", "probe", "none"]),
    default="auto",
    show_default=True,
    help="Where struct layouts come from, as for `check --layouts`.",
)
def profile_save(
    kernel: str,
    output: str | None,
    output_alias: str | None,
    vmlinux: tuple[str, ...],
    modules_dirs: tuple[str, ...],
    with_btf: bool,
    layouts: str,
) -> None:
    """Save the facts of one kernel (exports, CRCs, config, struct layouts, BTF) to FILE.

    \b
    Example:
      abicheck profile save -k /usr/src/linux-headers-R --vmlinux /boot/vmlinuz-R -o R.json.gz
    """
    output = output or output_alias
    if output is None:
        raise_usage("profile save: give the profile file with --output-file/-o FILE")
    from abicheck.targets.profile import save_profile

    targets, errors = load_targets([kernel], vmlinux, modules_dirs, layouts)
    if errors:
        _error(str(errors[0]))
        sys.exit(EXIT_USAGE)
    target = targets[0]
    try:
        save_profile(target, output, with_btf)
    except (AbicheckError, OSError) as e:
        _error(str(e))
        sys.exit(EXIT_USAGE)
    say(f"saved {target.id} ({target.source}) to {output}")
    if target.struct_module is None:
        say(
            f"abicheck: warning: {output} holds no struct layouts ({target.layout_gap}): "
            "layout drift will not be checked against it"
        )
    else:
        say(f"layouts: {target.layout_source}")


@main.command()
@click.option(
    "--to",
    "to",
    required=True,
    metavar="TARGET",
    help="The kernel about to be booted: headers dir, profile, or 'running'.",
)
@click.option(
    "--from",
    "from_release",
    default=None,
    metavar="RELEASE",
    help="The kernel whose extra modules are checked (default: the running one).",
)
@click.option(
    "--root",
    default="/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The system root to look under (for images and tests).",
)
@kernel_artefacts(owner="the --to kernel")
@click.option(
    "--format", "fmt", type=click.Choice(tuple(FORMATS)), default="text", show_default=True
)
def upgrade(
    to: str,
    from_release: str | None,
    root: str,
    vmlinux: tuple[str, ...],
    modules_dirs: tuple[str, ...],
    fmt: str,
) -> None:
    """Before a kernel upgrade: which modules installed outside the kernel package
    (updates/, extra/, DKMS) will not load into the new kernel, and why.

    Run it from a package-manager hook, e.g. /etc/kernel/postinst.d/zz-abicheck:
    `abicheck upgrade --to /usr/src/linux-headers-$1`.
    """
    from abicheck.app.commands import run_upgrade

    sys.exit(run_upgrade(to, from_release, root, vmlinux, modules_dirs, fmt))


from abicheck.app.cli_config import config  # noqa: E402  (registered last: its own module)

main.add_command(config)
from abicheck.app.cli_kernel import register as register_kernel  # noqa: E402

register_kernel(main)
from abicheck.app.cli_prove import register as register_prove  # noqa: E402

register_prove(main)
