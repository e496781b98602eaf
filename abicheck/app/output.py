"""Where the face writes: reports to standard output or a file, messages for people to
standard error, a progress bar on a terminal."""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import click

from abicheck.reporters import Output
from abicheck.reporters.escape import message_line

if TYPE_CHECKING:  # rich is imported lazily, only for a terminal
    from rich.progress import Progress


def say(message: str) -> None:
    # messages name input files and quote their bytes: one escaped line, always
    click.echo(message_line(message), err=True)


def error(message: str) -> None:
    say(f"abicheck: error: {message}")


def use_color(color: str, output_file: str | None) -> bool:
    """--color beats the environment; of the two conventions NO_COLOR (no-color.org) beats
    FORCE_COLOR (force-color.org), the user's refusal outranking a tool's insistence; a
    report written to a file never gets escape codes unless --color always asks."""
    if color != "auto":
        return color == "always"
    if output_file is not None or os.environ.get("NO_COLOR"):
        return False
    return os.environ.get("FORCE_COLOR", "") not in ("", "0") or sys.stdout.isatty()


def write(written: Output, output_file: str | None, color: bool) -> bool:
    """A reporter returns its text, or (suffix, text) pairs when one report is several files
    (SARIF fleets larger than one upload takes). The text is already escaped by the
    reporter. False, after a one-line error, when a file cannot be written."""
    if isinstance(written, str):
        written = [("", written)]
    for suffix, text in written:
        if output_file:
            base, ext = os.path.splitext(output_file)
            name = f"{base}{suffix}{ext}" if suffix else output_file
            try:
                with open(name, "w", encoding="utf-8") as f:
                    f.write(text)
            except OSError as e:
                error(f"{name}: cannot write the report: {e.strerror or e}")
                return False
        else:
            click.echo(text, nl=False, color=color)
    return True


def progress_bar(wanted: bool | None, total: int) -> Progress | None:
    """A rich progress bar on stderr for long runs at a terminal; machine formats and
    pipes never see it."""
    if wanted is False or (wanted is None and (total < 200 or not sys.stderr.isatty())):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=Console(stderr=True),
    )
