"""Checks: one small function per rule, registered under the rule's ID.

A rule is written in two places and nowhere else: its data in ``rules/<ID>.toml`` (name,
category, effect, stage, message, fix, the kernel's own log line, fingerprint identity,
docs) and one function in a module of this package, registered with ``@check("<ID>")``::

    @check("TN004")
    def retpoline(ctx: CheckContext) -> Iterator[Finding]:
        ...
        yield ctx.finding(evidence={"option": "CONFIG_" + option})

Inside a check, :meth:`CheckContext.finding` already knows the rule: :func:`check` wraps
the function so that the context is bound to its rule while the function runs, and the
wrapper drains the generator inside that binding, so a lazy generator cannot emit a
finding under another rule's name. A finding therefore never repeats the ID. Evidence is
one mapping (``evidence={...}``), kept apart from the keywords that steer the finding
(``order``, ``stage``, ``effect``, ``taint``, ``errno``, ``kernel_says``, ``variant``,
``declaration``), so no evidence name can change the finding by accident.

Modules of this package are discovered with :mod:`pkgutil` (:func:`load_all`): a new
family is a new file here, listed nowhere. A directory added to ``__path__`` is searched
too, and ``ruledata.EXTRA_RULE_DIRS`` is the matching hook for rule files: that is how
tests/test_rules.py adds a rule. What a rule does beyond its own findings is data in its
TOML as well, read through :mod:`abicheck.ruledata`: ``identity`` (the evidence keys of
its fingerprint), ``exclusive`` (its finding makes every other moot), ``title`` (its cell
in the README's table, printed by tools/rules_table.py); its severity follows from its
``effect``. A check reads the plain model through its
:class:`~abicheck.context.CheckContext` and never opens files.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Iterable

from abicheck.context import CheckContext
from abicheck.model import Finding

CheckFunction = Callable[[CheckContext], Iterable[Finding]]
REGISTRY: dict[str, CheckFunction] = {}


def check(rule_id: str) -> Callable[[CheckFunction], CheckFunction]:
    """Register the decorated function as the check of ``rule_id`` (``rules/<ID>.toml``)."""

    def register(func: CheckFunction) -> CheckFunction:
        if rule_id in REGISTRY:
            raise ValueError(f"{rule_id} registered twice")

        @functools.wraps(func)
        def run(ctx: CheckContext) -> list[Finding]:
            with ctx.running(rule_id):
                return list(func(ctx))

        REGISTRY[rule_id] = run
        return run

    return register


def load_all() -> dict[str, CheckFunction]:
    """Import every module of this package (and of any directory added to its
    ``__path__``), so that each registers its rules."""
    for info in pkgutil.iter_modules(__path__, __name__ + "."):
        importlib.import_module(info.name)
    return REGISTRY
