"""Checks: one small function per rule, registered under the rule's ID.

A check reads the plain model through its :class:`~abicheck.context.CheckContext` and
yields findings; it never opens files. The rule's text (message, fix, the kernel's own
log line) lives in ``rules/<ID>.toml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from abicheck.context import CheckContext
from abicheck.model import Finding

CheckFunction = Callable[[CheckContext], Iterable[Finding]]
REGISTRY: dict[str, CheckFunction] = {}


def check(rule_id: str) -> Callable[[CheckFunction], CheckFunction]:
    def register(func: CheckFunction) -> CheckFunction:
        if rule_id in REGISTRY:
            raise ValueError(f"{rule_id} registered twice")
        REGISTRY[rule_id] = func
        return func

    return register


def load_all() -> dict[str, CheckFunction]:
    """Import every check family so that each registers its rules."""
    from abicheck.checks import (  # noqa: F401
        compression,
        elf,
        layout,
        modversions,
        params,
        relocations,
        signature,
        symbols,
        taint,
        target,
        vermagic,
    )

    return REGISTRY
