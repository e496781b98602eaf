"""A small public Python API.

    >>> import abicheck
    >>> results = abicheck.check(["hello.ko"], ["/usr/src/linux-headers-6.1.0-47-amd64"])
    >>> results[0].verdict
    <Verdict.LOADS_TAINTED: 'loads-tainted'>

``check()`` returns :class:`abicheck.model.Result` objects (verdict, taints, findings with
rule, severity, message, kernel_says, evidence and fix), one per (module, kernel) pair,
kernel-major. Targets may be specs (headers dir, profile, "running") or KernelTarget
objects from :func:`abicheck.load_target`. Unreadable modules give an ``unreadable``
result; unreadable targets raise :class:`abicheck.errors.TargetError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from abicheck.context import Assumptions
from abicheck.inputs import expand_modules
from abicheck.model import KernelTarget, Result


def load_target(
    spec: str, vmlinux: str | None = None, modules_dir: str | None = None
) -> KernelTarget:
    from abicheck.targets import load_target as _load

    return _load(spec, vmlinux, modules_dir)


def check(
    modules: Iterable[str],
    targets: Sequence[str | KernelTarget] = ("running",),
    assumptions: Assumptions | None = None,
    jobs: int | None = 1,
) -> list[Result]:
    from abicheck.runner import RunOptions, run_checks

    loaded = [t if isinstance(t, KernelTarget) else load_target(t) for t in targets]
    paths = expand_modules(list(modules))
    return run_checks(paths, loaded, RunOptions(assumptions or Assumptions(), jobs=jobs)).results
