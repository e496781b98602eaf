"""The work behind ``abicheck check`` and ``abicheck upgrade``: targets, the run, the
gate, the report.

app/cli.py parses into a CheckRequest; this wires the core's pieces together and returns
the exit code.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace

from abicheck.app.output import error as _error
from abicheck.app.output import progress_bar, say, use_color, write
from abicheck.app.request import CheckRequest
from abicheck.errors import EXIT_FINDINGS, EXIT_OK, EXIT_USAGE, AbicheckError
from abicheck.model import Result, Severity, Verdict


def run_check(request: CheckRequest) -> int:
    from abicheck import gate
    from abicheck.app.cli import load_targets
    from abicheck.context import Assumptions
    from abicheck.fingerprint import fingerprint
    from abicheck.inputs import expand_modules
    from abicheck.reporters import Report, make_reporter
    from abicheck.runner import RunOptions, run_checks

    settings = request.settings
    certs = None
    if request.trusted_keys:
        from abicheck.readers.certs import load_certificates

        try:
            certs = load_certificates(request.trusted_keys)
        except AbicheckError as e:
            _error(str(e))
            return EXIT_USAGE
    assumptions = Assumptions(
        loader=request.assume_loader,
        sig_enforce=request.assume_sig_enforce,
        lockdown=request.assume_lockdown,
        secure_boot=request.assume_secure_boot,
        trusted_keys=f"{request.trusted_keys} ({len(certs)} certificates)" if certs else None,
        params=request.params,
    )
    if request.no_cache:
        os.environ["ABICHECK_NO_CACHE"] = "1"  # the runner's workers inherit it
    targets, target_errors = load_targets(
        request.kernels, request.vmlinux, request.modules_dirs, request.layouts
    )
    for err in target_errors:
        _error(str(err))
    if not targets:
        return EXIT_USAGE
    tree = None
    if request.build_tree:
        from abicheck.targets.buildtree import build_tree_from

        try:
            tree = build_tree_from(request.build_tree)
        except AbicheckError as e:
            _error(str(e))
            return EXIT_USAGE
    baseline_path = request.baseline
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

    paths = expand_modules(request.modules)
    output = run_checks(
        paths,
        targets,
        RunOptions(
            assumptions,
            request.max_module_size << 20,
            certs,
            request.jobs,
            tree,
            progress=progress_bar(request.progress, len(paths) * len(targets)),
        ),
    )
    for error in output.errors:
        _error(str(error))
    # a target input read lazily (a profile's BTF) that failed during the checks: the
    # target is dropped like one that failed to load
    for t in sorted(output.target_errors):
        _error(str(output.target_errors[t]))
        target_errors.append(output.target_errors[t])
    targets = [t for i, t in enumerate(targets) if i not in output.target_errors]
    select, ignore = list(request.select), list(request.ignore)
    results = gate.apply(output.results, settings, select, ignore, baseline, fingerprint)
    if request.require_layout:
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
        say(
            f"abicheck: recorded {len(prints)} findings in {baseline_path}; later runs "
            "report only new ones"
        )
        results = gate.apply(results, settings, ["ALL"], [], set(prints), fingerprint)

    color = use_color(request.color, request.output_file)
    # what is shown, never what is decided: the exit code below reads the unfiltered results
    shown = _at_least(results, request.severity)
    unusable = bool(target_errors) or any(r.verdict is Verdict.UNREADABLE for r in results)
    code = gate.exit_code(results, request.fail_on, request.exit_zero, unusable)
    if request.statistics:
        from abicheck.reporters.concise import statistics

        return code if write(statistics(shown), request.output_file, False) else EXIT_USAGE
    reporter = make_reporter(
        request.fmt,
        color=color,
        quiet=request.quiet,
        project_root=request.project_root or os.environ.get("GITHUB_WORKSPACE") or settings.root,
        fail_on=request.fail_on,
        category=request.sarif_category or None,
        notes=request.sarif_notes or None,
        # SARIF past one upload's runs becomes several files, only where there are files
        split=request.output_file is not None,
    )
    try:
        written = reporter.render(Report(shown, targets, _rules_run(select, ignore)))
    except AbicheckError as e:
        _error(str(e))
        return EXIT_USAGE
    if not write(written, request.output_file, color):
        return EXIT_USAGE
    return code


def _rules_run(select: list[str], ignore: list[str]) -> tuple[str, ...]:
    """The IDs of the rules the selection keeps, for reports that list what was checked."""
    from abicheck import ruledata
    from abicheck.settings import rule_filter

    keep = rule_filter(select, ignore)
    return tuple(rule_id for rule_id in ruledata.all_rules() if keep(rule_id))


def _at_least(results: list[Result], lowest: str) -> list[Result]:
    """``--severity``: hide findings below ``lowest``; verdicts stay as the kernel decides."""
    rank = Severity(lowest).rank
    if rank == Severity.INFO.rank:
        return results
    return [
        replace(r, findings=tuple(f for f in r.findings if f.severity.rank <= rank))
        for r in results
    ]


def run_upgrade(
    to: str,
    from_release: str | None,
    root: str,
    vmlinux: Sequence[str],
    modules_dirs: Sequence[str],
    fmt: str,
) -> int:
    from abicheck.app.cli import load_targets
    from abicheck.inputs import extra_modules
    from abicheck.reporters import Report, make_reporter
    from abicheck.runner import broken, check_installed

    release = from_release or os.uname().release
    modules = extra_modules(root, release)
    if not modules:
        say(f"abicheck: no modules outside the kernel package for {release} under {root}")
        return EXIT_OK
    targets, errors = load_targets([to], vmlinux, modules_dirs)
    for e in errors:
        _error(str(e))
    if not targets:
        return EXIT_USAGE
    output = check_installed(modules, targets)
    for error in output.errors:
        _error(str(error))
    color = use_color("auto", None)
    # every SARIF file of a large fleet, one after the other, as `check` writes them
    reporter = make_reporter(fmt, color=color, split=True)
    if not write(reporter.render(Report(output.results, targets)), None, color):
        return EXIT_USAGE
    bad = broken(output.results)
    say(
        f"abicheck: {len(bad)} of {len(output.results)} module(s) installed for "
        f"{release} will not work with {targets[0].release}"
    )
    return EXIT_FINDINGS if bad else EXIT_OK
