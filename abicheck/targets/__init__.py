"""Where a kernel target comes from: a headers or build directory, the running kernel,
or a saved profile. Each constructor returns a :class:`~abicheck.model.KernelTarget`."""

from __future__ import annotations

import os

from abicheck.errors import TargetError
from abicheck.model import KernelTarget


def load_target(
    spec: str,
    vmlinux: str | None = None,
    modules_dir: str | None = None,
    layouts: str = "auto",
) -> KernelTarget:
    """A target from what the user typed after ``--kernel``, with the kernel image
    (``--vmlinux``) and installed modules (``--modules-dir``) that belong to it.

    ``layouts``: "auto" (given sources, then the standard places, then the probe),
    "probe" (skip the standard places: the headers alone), "discover" (the standard
    places but no probe: ``kernel diff`` probes both kernels at once itself), or "none".
    """
    from abicheck.targets.headers import source_dirs, target_from_headers
    from abicheck.targets.layouts import with_layouts
    from abicheck.targets.profile import is_profile, target_from_profile
    from abicheck.targets.running import target_from_running_kernel

    discover, probe = layouts in ("auto", "discover"), layouts in ("auto", "probe")
    if layouts == "none":
        vmlinux = modules_dir = None
    if spec == "running":
        target = target_from_running_kernel()
        build = f"/lib/modules/{target.release}/build"
        dirs = source_dirs(build) if os.path.isdir(build) else []
        return with_layouts(target, vmlinux, modules_dir, dirs, discover, probe)
    if os.path.isdir(spec):
        if not _is_headers(spec) and _is_headers(os.path.join(spec, "build")):
            spec = os.path.join(spec, "build")  # /lib/modules/R: its build link
        dirs = source_dirs(spec)
        return with_layouts(target_from_headers(spec), vmlinux, modules_dir, dirs, discover, probe)
    if os.path.isfile(spec):
        if is_profile(spec):
            return with_layouts(target_from_profile(spec), vmlinux, modules_dir, None, False, False)
        raise TargetError(spec, "not a kernel headers directory or an abicheck profile")
    raise TargetError(spec, "no such kernel headers directory or profile")


def _is_headers(path: str) -> bool:
    return any(
        os.path.isfile(os.path.join(path, name)) for name in (".config", "include/config/auto.conf")
    )
