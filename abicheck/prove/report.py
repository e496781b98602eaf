"""``abicheck prove``'s output, in every format of :data:`abicheck.reporters.FORMATS`.

The results shown are the predictions with the findings of the rules fed by prove
(PV001 the kernel disagrees, PV002 the load oopsed or hung) added, so SARIF results,
JUnit failures, GitHub annotations and concise lines carry a disagreement through the
ordinary reporters. Two formats add what only prove knows: text puts one block per
module first (predicted beside proved: the kernel's lines, insmod's errno, taints, init,
rmmod, parameters) and then the text reporter's findings; JSON is the JSON reporter's
document with a ``proved`` object (and ``agrees``, ``disagreements``) in each result and
the boots at the top level.
"""

from __future__ import annotations

import json
from typing import Any

from abicheck import __version__
from abicheck.model import KernelTarget
from abicheck.prove import Load, ProveRun
from abicheck.reporters import FORMATS, Output, Report, make_reporter
from abicheck.reporters.escape import json_text, message_line
from abicheck.reporters.json import result_dict, target_dict

__all__ = ["FORMATS", "render"]


def _load_lines(load: Load) -> list[str]:
    out = [f"  proved:    {load.kernel_verdict}"]
    if load.errno or load.rc:
        out.append(
            f"  insmod:    rc {load.rc} {'/'.join(load.errno)} {load.insmod_stderr}".rstrip()
        )
    out += [f"  kernel:    {ln}" for ln in load.kernel_lines]
    before = load.tainted_before if load.tainted_before is not None else "?"
    after = load.tainted_after if load.tainted_after is not None else "?"
    out.append(
        f"  taints:    mask {before} -> {after}, set by this load: {load.taints_set or 'none'}"
        f", /sys/module/{load.name}/taint: {load.module_taint or '-'}"
    )
    init = (
        "not called"
        if not load.init_ran
        else "called, never returned"
        if load.init_returned is None
        else f"returned {load.init_returned}"
    )
    out.append(f"  init:      {init}, initstate {load.initstate or '-'}")
    if load.params:
        out.append("  params:    " + ", ".join(f"{k}={v}" for k, v in sorted(load.params.items())))
    if load.rmmod_rc is not None:
        rm = "ok" if load.rmmod_rc == 0 else f"rc {load.rmmod_rc} {load.rmmod_stderr}"
        out.append(f"  rmmod:     {rm}")
    return out


def text(run: ProveRun, target: KernelTarget, color: bool = False) -> str:
    out = [f"prove {run.release} ({run.image})"]
    for i, b in enumerate(run.boots):
        why = f": {b.failure}" if b.failure else ""
        out.append(f"boot {i}: {b.seconds:.1f}s under {b.accel}{why}")
    for dep in run.deps:
        out.append(f"dependency {dep.name}: {dep.kernel_verdict}")
    for p in run.proofs:
        out.append("")
        out.append(p.proved.module)
        out.append(f"  predicted: {p.predicted.verdict.value}")
        out += _load_lines(p.proved)
        if p.agrees:
            out.append("  agrees:    yes")
        out += [f"  DISAGREES: {d}" for d in p.disagreements]
    n = sum(not p.agrees for p in run.proofs)
    out.append("")
    out.append(f"{len(run.proofs)} modules, {n} disagreement{'s' * (n != 1)}")
    out.append("")
    head = "\n".join(message_line(ln) for ln in out) + "\n"
    # the findings, prove's among them, as `abicheck check` prints them
    findings = make_reporter("text", color=color).render(Report(run.results, [target]))
    assert isinstance(findings, str)
    return head + findings


def document(run: ProveRun, target: KernelTarget) -> dict[str, Any]:
    results = []
    for p in run.proofs:
        r = result_dict(p.shown)
        r["proved"] = p.proved.as_dict()
        r["agrees"] = p.agrees
        r["disagreements"] = list(p.disagreements)
        results.append(r)
    return {
        "version": 1,
        "tool": {"name": "abicheck", "version": __version__},
        "targets": [target_dict(target)],
        "image": run.image,
        "loader": run.loader,
        "boots": [
            {
                "seconds": b.seconds,
                "accel": b.accel,
                "failure": b.failure,
                "serial_tail": b.serial_tail,
            }
            for b in run.boots
        ],
        "dependencies": [d.as_dict() for d in run.deps],
        "results": results,
    }


def as_json(run: ProveRun, target: KernelTarget) -> str:
    return json_text(json.dumps(document(run, target), indent=2)) + "\n"


def render(run: ProveRun, target: KernelTarget, fmt: str, color: bool = False) -> Output:
    """The run in format ``fmt`` (a name of reporters.FORMATS)."""
    if fmt == "text":
        return text(run, target, color)
    if fmt == "json":
        return as_json(run, target)
    reporter = make_reporter(fmt, color=color)
    return reporter.render(Report(run.results, [target]))
