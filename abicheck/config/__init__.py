"""Config drift: read kernel configs from any source, diff and classify them by what they
mean for modules, explain a value with kconfiglib, and predict what `make olddefconfig`
would change in a tree on this machine.

The entry points other parts of abicheck use:

- :func:`load_config` (a ``.config``, headers/build/source directory, ``running``, a
  profile, an IKCONFIG image) → :class:`ConfigSource`;
- :func:`resolved_config` → the same config with the options its file leaves out filled
  in from the tree's Kconfig, when a Kconfig tree is known.
"""

from __future__ import annotations

from abicheck.config.model import Change, ConfigSource, Finding, Impact
from abicheck.config.sources import ConfigError, load_config


def resolved_config(source: ConfigSource) -> dict[str, str]:
    """The config's values, with absent options resolved when ``source.srctree`` is set."""
    if source.srctree is None:
        return dict(source.values)
    from abicheck.config.diff import resolve
    from abicheck.config.kconfig_tree import KconfigTree

    return resolve(source, KconfigTree(source.srctree)).values


__all__ = [
    "Change",
    "ConfigError",
    "ConfigSource",
    "Finding",
    "Impact",
    "load_config",
    "resolved_config",
]
