"""The one reporter protocol: options go to the constructor, the run's outcome to
:meth:`Reporter.render`, and what comes back is the text to write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from abicheck.model import KernelTarget, Result

# One text, or (file-name suffix, text) pairs when one report is several files (SARIF
# fleets larger than one upload takes): "", "-2", "-3" ... before the file's extension.
Output = str | list[tuple[str, str]]


@dataclass(frozen=True)
class Report:
    """What a reporter is given: everything is computed before, nothing after."""

    results: Sequence[Result]  # the results shown, target-major
    targets: Sequence[KernelTarget]  # the kernels checked, in the order given
    # the IDs of the rules the run's selection kept, computed once by the caller, for a
    # report that lists what was checked rather than only what fired
    rules: tuple[str, ...] = ()


class Reporter(Protocol):
    # the dataclass of the options its constructor takes, for make_reporter
    Options: ClassVar[type]

    def __init__(self, options: Any) -> None: ...

    def render(self, report: Report) -> Output: ...
