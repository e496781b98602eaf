"""abicheck: predict, before insmod, whether a kernel module will load, and why not.

The public API: :func:`check` and :func:`load_target` (see abicheck/api.py).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "check", "load_target"]


def __getattr__(name: str) -> Any:  # imported on first use: `abicheck --version` stays fast
    if name in ("check", "load_target"):
        from abicheck import api

        return getattr(api, name)
    raise AttributeError(name)
