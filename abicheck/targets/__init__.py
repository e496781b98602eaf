"""Where a kernel target comes from: a headers or build directory, the running kernel,
or a saved profile. Each constructor returns a :class:`~abicheck.model.KernelTarget`."""

from __future__ import annotations

import os

from abicheck.errors import TargetError
from abicheck.model import KernelTarget


def load_target(spec: str) -> KernelTarget:
    """A target from what the user typed after ``--kernel``."""
    from abicheck.targets.headers import target_from_headers
    from abicheck.targets.profile import is_profile, target_from_profile
    from abicheck.targets.running import target_from_running_kernel

    if spec == "running":
        return target_from_running_kernel()
    if os.path.isdir(spec):
        return target_from_headers(spec)
    if os.path.isfile(spec):
        if is_profile(spec):
            return target_from_profile(spec)
        raise TargetError(spec, "not a kernel headers directory or an abicheck profile")
    raise TargetError(spec, "no such kernel headers directory or profile")
