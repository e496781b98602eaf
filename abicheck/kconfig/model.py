"""Plain data of the config commands: one option's change, and what that change means
for modules (a config and where it came from is
:class:`abicheck.targets.kernel_config.ConfigSource`).

Values keep the plain reader's convention (abicheck.readers.kconfig): ``"y"``, ``"m"``,
``"n"`` for ``# CONFIG_X is not set``, a number or a quoted string as written; ``None``
means the option is absent from the file (not visible, or not in that kernel at all).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Impact(StrEnum):
    """What a changed option does to modules, most severe first (rules/config/)."""

    VERMAGIC = "vermagic"
    STRUCT_MODULE = "struct-module"
    LOADER = "modversions-signing"
    STRUCT_LAYOUT = "struct-layout"
    CODEGEN = "codegen"
    TOOLCHAIN = "toolchain"
    NONE = "none"

    @property
    def rank(self) -> int:
        return list(Impact).index(self)


def describe(value: str | None) -> str:
    """A value as people read it: "not set" for n, "absent" for a missing line."""
    if value is None:
        return "absent"
    if value == "n":
        return "n (not set)"
    return value


def enabled(value: str | None) -> bool:
    return value in ("y", "m")


@dataclass(frozen=True)
class Change:
    """An option whose value differs between two configs."""

    option: str  # CONFIG_FOO
    old: str | None
    new: str | None
    # set when the value on a side was absent from its file and Kconfig supplied it
    old_default: bool = False
    new_default: bool = False


@dataclass(frozen=True)
class OptionImpact:
    """One place where an option acts, as the rule data cites it."""

    impact: Impact
    where: str  # file and struct, or file:line
    detail: str  # which members, which vermagic word, which flag


@dataclass(frozen=True)
class KconfigFinding:
    """A classified change: the option, both values, the impact, the place, the fix."""

    change: Change
    impact: Impact
    effects: tuple[OptionImpact, ...]
    message: str
    fix: str
    cause: str = ""  # predict: why make olddefconfig changes it
    tool: str = ""  # predict: the missing or different tool behind it
    prompt: str = ""  # the option's Kconfig prompt, when a Kconfig tree was read
    extra: Mapping[str, str | Sequence[str]] = field(default_factory=dict)

    @property
    def option(self) -> str:
        return self.change.option
