"""Where a kernel target comes from: a headers or build directory, the running kernel,
or a saved profile. Each constructor returns a :class:`~abicheck.model.KernelTarget`."""

from __future__ import annotations

import os

from abicheck.errors import TargetError
from abicheck.model import KernelTarget


def load_target(
    spec: str, vmlinux: str | None = None, modules_dir: str | None = None
) -> KernelTarget:
    """A target from what the user typed after ``--kernel``, with the kernel image
    (``--vmlinux``) and installed modules (``--modules-dir``) that belong to it."""
    from abicheck.targets.headers import source_dirs, target_from_headers
    from abicheck.targets.layouts import with_layouts
    from abicheck.targets.profile import is_profile, target_from_profile
    from abicheck.targets.running import target_from_running_kernel

    if spec == "running":
        target = target_from_running_kernel()
        release = target.release
        build = f"/lib/modules/{release}/build"
        dirs = source_dirs(build) if os.path.isdir(build) else []
        return with_layouts(
            target,
            vmlinux,
            modules_dir or _existing(f"/lib/modules/{release}"),
            dirs,
            auto=["/sys/kernel/btf/vmlinux"],
        )
    if os.path.isdir(spec):
        dirs = source_dirs(spec)
        return with_layouts(
            target_from_headers(spec),
            vmlinux,
            modules_dir,
            dirs,
            auto=[os.path.join(spec, "vmlinux")],
        )
    if os.path.isfile(spec):
        if is_profile(spec):
            return with_layouts(target_from_profile(spec), vmlinux, modules_dir)
        raise TargetError(spec, "not a kernel headers directory or an abicheck profile")
    raise TargetError(spec, "no such kernel headers directory or profile")


def _existing(path: str) -> str | None:
    return path if os.path.isdir(path) else None
