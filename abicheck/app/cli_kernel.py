"""`abicheck kernel diff A B`: parsing and wiring only; the work is in
abicheck.kernel_diff and abicheck.reporters.kernel_diff.

Exit codes: 0 nothing that matters to modules differs, 1 it does (or a --modules module
breaks on B), 2 usage error or an input that could not be read.
"""

from __future__ import annotations

import os
import sys

import click

from abicheck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, AbicheckError


@click.group()
def kernel() -> None:
    """Compare two kernels as modules see them."""


@kernel.command("diff")
@click.argument("a")
@click.argument("b")
@click.option(
    "--modules",
    "modules_dir",
    default=None,
    type=click.Path(exists=True),
    metavar="DIR",
    help="Modules built for A (a directory or a .ko): which of them break on B, and on what.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Compile the headers probes afresh instead of reading the layout cache.",
)
def diff_command(a: str, b: str, modules_dir: str | None, fmt: str, no_cache: bool) -> None:
    """What breaks for modules built against kernel A when loaded into kernel B.

    A and B are headers directories, saved profiles, or 'running'.
    """
    from abicheck.kernel_diff import diff_specs
    from abicheck.reporters.escape import message_line
    from abicheck.reporters.kernel_diff import RENDERERS

    if no_cache:
        os.environ["ABICHECK_NO_CACHE"] = "1"
    try:
        result = diff_specs(a, b, modules_dir)
    except AbicheckError as e:
        click.echo(message_line(f"abicheck: error: {e}"), err=True)
        sys.exit(EXIT_USAGE)
    click.echo(RENDERERS[fmt](result), nl=False)
    ident = result.identity
    bad = (
        ident.vermagic_changed
        or ident.module_layout_changed
        or ident.struct_module is not None
        or bool(result.structs)
        or bool(result.config)
        or any(
            k in c.kinds
            for c in result.exports or ()
            for k in ("removed", "crc", "gpl", "namespace")
        )
        or bool(result.broken_modules)
    )
    sys.exit(EXIT_FINDINGS if bad else EXIT_OK)


def register(group: click.Group) -> None:
    group.add_command(kernel)
