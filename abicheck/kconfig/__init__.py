"""Config drift: read kernel configs from any source, diff and classify them by what they
mean for modules, explain a value with kconfiglib, and predict what `make olddefconfig`
would change in a tree on this machine.

The entry points other parts of abicheck use:

- :func:`~abicheck.targets.kernel_config.load_kernel_config` (a ``.config``, a
  headers/build/source directory, ``running``, a profile, an IKCONFIG image) →
  :class:`~abicheck.targets.kernel_config.ConfigSource`, re-exported here;
- :func:`resolved_config` → the same config with the options its file leaves out filled
  in from the tree's Kconfig, when a Kconfig tree is known.
"""

from __future__ import annotations

from abicheck.kconfig.model import Change, Impact, KconfigFinding, OptionImpact
from abicheck.targets.kernel_config import ConfigError, ConfigSource, load_kernel_config


def resolved_config(source: ConfigSource) -> dict[str, str]:
    """The config's values, with absent options resolved when ``source.srctree`` is set."""
    if source.srctree is None:
        return dict(source.values)
    from abicheck.kconfig.diff import resolve
    from abicheck.kconfig.kconfig_tree import KconfigTree

    return resolve(source, KconfigTree(source.srctree)).values


__all__ = [
    "Change",
    "ConfigError",
    "ConfigSource",
    "Impact",
    "KconfigFinding",
    "OptionImpact",
    "load_kernel_config",
    "resolved_config",
]
