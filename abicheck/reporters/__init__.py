"""Reporters turn results into text for people or machines; they never compute verdicts.

Module and file-name text is hostile: every reporter passes it through
:mod:`abicheck.reporters.escape` before it is printed.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from abicheck.reporters.base import Output, Report, Reporter
from abicheck.reporters.concise import ConciseReporter
from abicheck.reporters.github import GithubReporter
from abicheck.reporters.json import JsonReporter
from abicheck.reporters.junit import JunitReporter
from abicheck.reporters.sarif import SarifReporter
from abicheck.reporters.text import TextReporter

__all__ = ["FORMATS", "Output", "Report", "Reporter", "make_reporter"]

# The one table of formats: --format's choices, in the order --help lists them.
FORMATS: dict[str, type[Reporter]] = {
    "text": TextReporter,
    "json": JsonReporter,
    "sarif": SarifReporter,
    "junit": JunitReporter,
    "github": GithubReporter,
    "concise": ConciseReporter,
}


def make_reporter(name: str, **settings: Any) -> Reporter:
    """The reporter of format ``name``, given those of ``settings`` its options declare.

    The caller states everything it knows once (colour, project root, fail-on ...); each
    format takes the fields of its own options dataclass, and a None leaves that option at
    its default. KeyError for an unknown format.
    """
    cls = FORMATS[name]
    wanted = {f.name for f in fields(cls.Options)}
    options = cls.Options(**{k: v for k, v in settings.items() if k in wanted and v is not None})
    return cls(options)
