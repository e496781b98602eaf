"""The work behind ``abicheck check``: settings, targets, the run, the gate, the report.

cli.py parses; this wires the pieces together and returns the exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import click

from abicheck.errors import EXIT_USAGE, AbicheckError
from abicheck.model import Result, Severity, Verdict

if TYPE_CHECKING:  # rich is imported lazily, only for a terminal
    from rich.console import Console
    from rich.progress import Progress


def _error(message: str) -> None:
    _say(f"abicheck: error: {message}")


def _say(message: str) -> None:
    # messages name input files and quote their bytes: one escaped line, always
    from abicheck.reporters.escape import message_line

    click.echo(message_line(message), err=True)


def _selectors(values: tuple[str, ...] | None) -> list[str]:
    return [s.strip() for v in values or () for s in v.split(",") if s.strip()]


def run_check(opts: dict[str, Any]) -> int:
    from abicheck import gate
    from abicheck.cli import _parse_param, expand_modules, load_targets
    from abicheck.context import Assumptions
    from abicheck.fingerprint import fingerprint
    from abicheck.reporters import get_reporter
    from abicheck.runner import run_checks
    from abicheck.settings import (
        SettingsError,
        check_selector,
        find_config,
        load_settings,
    )

    try:
        path = None if opts["isolated"] else (opts["config_path"] or find_config())
        settings = load_settings(path)
        cli_select, cli_ignore = _selectors(opts["select"]), _selectors(opts["ignore"])
        extend_select = _selectors(opts["extend_select"])
        extend_ignore = _selectors(opts["extend_ignore"])
        for s in cli_select + cli_ignore + extend_select + extend_ignore:
            check_selector(s, "--select/--ignore")
    except SettingsError as e:
        _error(str(e))
        return EXIT_USAGE
    # the command line beats the file: --select replaces, --extend-select adds
    select = (cli_select or settings.select) + extend_select
    ignore = (cli_ignore or settings.ignore) + extend_ignore
    fmt = opts["fmt"] or settings.format or "text"
    fail_on = opts["fail_on"] or settings.fail_on
    exit_zero = bool(opts["exit_zero"]) or settings.exit_zero
    baseline_path = opts["baseline"] or settings.baseline

    if opts.get("statistics") and fmt not in ("text", "concise"):
        _error(f"--statistics prints a table of counts; it does not combine with --format {fmt}")
        return EXIT_USAGE
    if not opts["modules"]:
        _error("no module given (abicheck check FILE.ko ... or DIR)")
        return EXIT_USAGE

    certs = None
    if opts["trusted_keys"]:
        from abicheck.readers.certs import load_certificates

        try:
            certs = load_certificates(opts["trusted_keys"])
        except AbicheckError as e:
            _error(str(e))
            return EXIT_USAGE
    assumptions = Assumptions(
        loader=opts["assume_loader"] or settings.assume_loader or "kmod",
        sig_enforce=opts["assume_sig_enforce"],
        lockdown=opts["assume_lockdown"],
        secure_boot=opts["assume_secure_boot"],
        trusted_keys=f"{opts['trusted_keys']} ({len(certs)} certificates)" if certs else None,
        params=tuple(_parse_param(p) for p in opts["params"]),
    )
    kernels = list(opts["kernels"]) or settings.kernels
    if opts.get("no_cache"):
        os.environ["ABICHECK_NO_CACHE"] = "1"  # the runner's workers inherit it
    targets, target_errors = load_targets(
        kernels, opts["vmlinux"], opts["modules_dirs"], opts.get("layouts") or "auto"
    )
    for err in target_errors:
        _error(str(err))
    if not targets:
        return EXIT_USAGE
    tree = None
    if opts["build_tree"]:
        from abicheck.targets.buildtree import build_tree_from

        try:
            tree = build_tree_from(opts["build_tree"])
        except AbicheckError as e:
            _error(str(e))
            return EXIT_USAGE
    baseline = None
    record_baseline = False
    if baseline_path:
        if os.path.exists(baseline_path):
            try:
                baseline = gate.load_baseline(baseline_path)
            except AbicheckError as e:
                _error(str(e))
                return EXIT_USAGE
        else:
            record_baseline = True

    paths = expand_modules(opts["modules"])
    output = run_checks(
        paths,
        targets,
        assumptions,
        opts["max_module_size"] << 20,
        certs,
        opts["jobs"],
        tree,
        progress=_progress(opts, len(paths) * len(targets)),
    )
    for error in output.errors:
        _error(str(error))
    # a target input read lazily (a profile's BTF) that failed during the checks: the
    # target is dropped like one that failed to load
    for t in sorted(output.target_errors):
        _error(str(output.target_errors[t]))
        target_errors.append(output.target_errors[t])
    targets = [t for i, t in enumerate(targets) if i not in output.target_errors]
    results = gate.apply(output.results, settings, select, ignore, baseline, fingerprint)
    if opts.get("require_layout") or getattr(settings, "require_layout", False):
        results = gate.require_layouts(results)
    if record_baseline and baseline_path:  # record_baseline is only set with a path
        prints = [
            fingerprint(f, gate.relative(r.module, settings.root), r.kernel)
            for r in results
            for f in r.findings
        ]
        try:
            gate.write_baseline(baseline_path, prints)
        except AbicheckError as e:
            _error(str(e))
            return EXIT_USAGE
        except OSError as e:
            _error(f"{baseline_path}: cannot write the baseline: {e.strerror or e}")
            return EXIT_USAGE
        _say(
            f"abicheck: recorded {len(prints)} findings in {baseline_path}; later runs "
            "report only new ones"
        )
        results = gate.apply(results, settings, ["ALL"], [], set(prints), fingerprint)

    use_color = _use_color(opts["color"], opts["output_file"])
    # what is shown, never what is decided: the exit code below reads the unfiltered results
    shown = _at_least(results, opts.get("severity") or "info")
    unusable = bool(target_errors) or any(r.verdict is Verdict.UNREADABLE for r in results)
    code = gate.exit_code(results, fail_on, exit_zero, unusable)
    if opts.get("statistics"):
        from abicheck.reporters.concise import statistics

        return code if _write(statistics(shown), opts["output_file"], False) else EXIT_USAGE
    reporter = get_reporter(fmt)
    if fmt == "sarif" and not opts["output_file"]:
        from abicheck.reporters.sarif import report as reporter  # one document on stdout
    root = opts.get("project_root") or os.environ.get("GITHUB_WORKSPACE") or settings.root
    extra: dict[str, Any] = (
        {"category": opts["sarif_category"]}
        if fmt == "sarif" and opts.get("sarif_category")
        else {}
    )
    if fmt in ("text", "concise") and opts.get("quiet"):
        extra["quiet"] = True
    if fmt == "sarif" and opts.get("sarif_notes"):
        extra["notes"] = True
    try:
        written = reporter(shown, targets, use_color, project_root=root, fail_on=fail_on, **extra)
    except AbicheckError as e:
        _error(str(e))
        return EXIT_USAGE
    if not _write(written, opts["output_file"], use_color):
        return EXIT_USAGE
    return code


def _at_least(results: list[Result], lowest: str) -> list[Result]:
    """``--severity``: hide findings below ``lowest``; verdicts stay as the kernel decides."""
    rank = Severity(lowest).rank
    if rank == Severity.INFO.rank:
        return results
    return [
        replace(r, findings=tuple(f for f in r.findings if f.severity.rank <= rank))
        for r in results
    ]


def _use_color(color: str, output_file: str | None) -> bool:
    """--color beats the environment; of the two conventions NO_COLOR (no-color.org) beats
    FORCE_COLOR (force-color.org), the user's refusal outranking a tool's insistence; a
    report written to a file never gets escape codes unless --color always asks."""
    if color != "auto":
        return color == "always"
    if output_file is not None or os.environ.get("NO_COLOR"):
        return False
    return os.environ.get("FORCE_COLOR", "") not in ("", "0") or sys.stdout.isatty()


def _write(written: str | list[tuple[str, str]], output_file: str | None, color: bool) -> bool:
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
                _error(f"{name}: cannot write the report: {e.strerror or e}")
                return False
        else:
            click.echo(text, nl=False, color=color)
    return True


def _progress(opts: dict[str, Any], total: int) -> Progress | None:
    """A rich progress bar on stderr for long runs at a terminal; machine formats and
    pipes never see it."""
    wanted = opts.get("progress")
    if wanted is False or (wanted is None and (total < 200 or not sys.stderr.isatty())):
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    progress = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
        console=_stderr_console(),
    )
    return progress


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def extra_modules(root: str, release: str) -> list[str]:
    """Modules a kernel package did not ship: lib/modules/R/{updates,extra,weak-updates}
    and DKMS's build trees (var/lib/dkms/NAME/VERSION/R/ARCH/module)."""
    import glob

    found: list[str] = []
    base = os.path.join(root, "lib", "modules", release)
    for sub in ("updates", "extra", "weak-updates"):
        for dirpath, dirs, files in os.walk(os.path.join(base, sub)):
            dirs.sort()
            found += [
                os.path.join(dirpath, f)
                for f in sorted(files)
                if f.endswith((".ko", ".ko.gz", ".ko.xz", ".ko.zst"))
            ]
    installed = {os.path.basename(p) for p in found}
    pattern = os.path.join(root, "var", "lib", "dkms", "*", "*", release, "*", "module", "*.ko*")
    # a DKMS module is usually also installed under updates/; check each file once
    found += [p for p in sorted(glob.glob(pattern)) if os.path.basename(p) not in installed]
    return found


def run_upgrade(
    to: str,
    from_release: str | None,
    root: str,
    vmlinux: Sequence[str],
    modules_dirs: Sequence[str],
    fmt: str,
) -> int:
    from abicheck.cli import load_targets
    from abicheck.reporters import get_reporter
    from abicheck.runner import broken, check_installed

    release = from_release or os.uname().release
    modules = extra_modules(root, release)
    if not modules:
        _say(f"abicheck: no modules outside the kernel package for {release} under {root}")
        return 0
    targets, errors = load_targets([to], vmlinux, modules_dirs)
    for e in errors:
        _error(str(e))
    if not targets:
        return EXIT_USAGE
    output = check_installed(modules, targets)
    for error in output.errors:
        _error(str(error))
    text = get_reporter(fmt)(output.results, targets, _use_color("auto", None))
    if not _write(text, None, _use_color("auto", None)):
        return EXIT_USAGE
    bad = broken(output.results)
    _say(
        f"abicheck: {len(bad)} of {len(output.results)} module(s) installed for "
        f"{release} will not work with {targets[0].release}"
    )
    return 1 if bad else 0
