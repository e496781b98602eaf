"""``abicheck prove``'s output: text (one block per module, predicted beside proved) and
JSON (the check's result objects, each with a ``proved`` object). Other formats later."""

from __future__ import annotations

import json
from typing import Any

from abicheck import __version__
from abicheck.model import KernelTarget
from abicheck.prove import Load, ProveRun
from abicheck.reporters.escape import json_text, message_line
from abicheck.reporters.json import result_dict, target_dict

FORMATS = ("text", "json")


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
    init = "not called" if not load.init_ran else f"returned {load.init_returned}"
    out.append(f"  init:      {init}, initstate {load.initstate or '-'}")
    if load.rmmod_rc is not None:
        rm = "ok" if load.rmmod_rc == 0 else f"rc {load.rmmod_rc} {load.rmmod_stderr}"
        out.append(f"  rmmod:     {rm}")
    return out


def text(run: ProveRun) -> str:
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
    return "\n".join(message_line(ln) for ln in out) + "\n"


def document(run: ProveRun, target: KernelTarget) -> dict[str, Any]:
    results = []
    for p in run.proofs:
        r = result_dict(p.predicted)
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
