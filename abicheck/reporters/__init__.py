"""Reporters turn results into text for people or machines; they never compute verdicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from abicheck.model import KernelTarget, Result

Reporter = Callable[[Sequence[Result], Sequence[KernelTarget], bool], str]


def get_reporter(name: str) -> Reporter:
    if name == "json":
        from abicheck.reporters.json import report
    elif name == "text":
        from abicheck.reporters.text import report
    else:
        raise KeyError(name)
    return report


FORMATS = ("text", "json")
