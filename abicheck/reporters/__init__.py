"""Reporters turn results into text for people or machines; they never compute verdicts.

Module and file-name text is hostile: every reporter passes it through
:mod:`abicheck.reporters.escape` before it is printed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from abicheck.model import KernelTarget, Result

Reporter = Callable[[Sequence[Result], Sequence[KernelTarget], bool], str]


def get_reporter(name: str) -> Reporter:
    if name == "json":
        from abicheck.reporters.json import report
    elif name == "text":
        from abicheck.reporters.text import report
    elif name == "sarif":
        from abicheck.reporters.sarif import report_files as report
    elif name == "junit":
        from abicheck.reporters.junit import report
    elif name == "github":
        from abicheck.reporters.github import report
    elif name == "concise":
        from abicheck.reporters.concise import report
    else:
        raise KeyError(name)
    return report


FORMATS = ("text", "json", "sarif", "junit", "github", "concise")
