"""Two configs side by side: the options whose values differ, and the options one side
leaves out, resolved to their Kconfig defaults when a Kconfig tree is at hand.

A headers package ships no Kconfig files; then an option absent on one side stays
"absent" and the result says how many such options could not be resolved.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from abicheck.kconfig.model import Change
from abicheck.targets.kernel_config import ConfigSource

if TYPE_CHECKING:
    from abicheck.kconfig.kconfig_tree import KconfigTree


@dataclass
class Resolution:
    """A config's values with the options its file leaves out filled in by Kconfig."""

    values: dict[str, str]
    defaulted: set[str] = field(default_factory=set)  # options Kconfig supplied
    tree: str | None = None
    not_in_tree: set[str] = field(default_factory=set)  # written, but unknown to the tree


def config_text(values: Mapping[str, str]) -> str:
    """A .config with exactly these assignments (kconfiglib reads it like a .config)."""
    lines = []
    for name, value in values.items():
        lines.append(f"# {name} is not set" if value == "n" else f"{name}={value}")
    return "\n".join(lines) + "\n"


def resolve(source: ConfigSource, tree: KconfigTree | None = None) -> Resolution:
    """Fill in what the file leaves out with ``tree`` (a loaded KconfigTree); the
    written values are kept as written, even where Kconfig would now change them
    (that is `config predict`'s question, not the diff's)."""
    if tree is None:
        return Resolution(dict(source.values))
    tree.load(config_text(source.values))
    computed = tree.values()
    values = dict(source.values)
    defaulted = set()
    for name, value in computed.items():
        if name not in values:
            values[name] = value
            defaulted.add(name)
    return Resolution(values, defaulted, tree.srctree, set(source.values) - tree.defined())


def changes(a: Resolution, b: Resolution) -> list[Change]:
    out = []
    for name in sorted(set(a.values) | set(b.values)):
        old, new = a.values.get(name), b.values.get(name)
        if old != new:
            out.append(Change(name, old, new, name in a.defaulted, name in b.defaulted))
    return out


def unresolved(found: list[Change], a: Resolution, b: Resolution) -> list[str]:
    """Options absent on one side whose default could not be computed."""
    out = []
    for c in found:
        if (c.old is None and a.tree is None) or (c.new is None and b.tree is None):
            out.append(c.option)
    return out
