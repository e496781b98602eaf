"""Reporters turn results into text for people or machines; they never compute verdicts.

Module and file-name text is hostile: every reporter passes it through
:mod:`abicheck.reporters.escape` before it is printed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# Called as reporter(results, targets, color, **options): each format takes its own keyword
# options (project_root, fail_on, category, ...) and sarif's report_files returns
# (name, text) pairs rather than one string, so one precise signature cannot cover them all.
Reporter = Callable[..., Any]


def get_reporter(name: str) -> Reporter:
    report: Reporter  # the branches import differently typed functions
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
