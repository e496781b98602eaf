"""Errors that end in one clear line for the user, never a traceback."""

from __future__ import annotations

# Exit codes, documented in the README and in `abicheck --help`.
EXIT_OK = 0  # no error finding
EXIT_FINDINGS = 1  # at least one error finding (refused or loads-unsafe)
EXIT_USAGE = 2  # bad usage, or an input abicheck could not read


class AbicheckError(Exception):
    """A problem with an input, reported as ``path: problem`` and exit code 2."""

    def __init__(self, path: str | None, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem

    def __reduce__(self) -> tuple[type, tuple[str | None, str]]:
        # picklable across the runner's worker processes
        return (type(self), (self.path, self.problem))


class ModuleReadError(AbicheckError):
    """The module file cannot be read as a kernel module at all."""


class TargetError(AbicheckError):
    """The kernel target cannot be read (missing headers dir, no release string ...)."""
