"""Where a config comes from: every spelling a user may type after ``config diff``.

- a ``.config`` (or ``auto.conf``, or a gzipped ``config.gz``);
- a headers or build directory (its ``.config``, else ``include/config/auto.conf``);
- a kernel source tree (its ``.config``; its Kconfig can then resolve the values);
- ``running``: ``/proc/config.gz``, else ``/boot/config-$(uname -r)``;
- a saved abicheck profile;
- a vmlinux, vmlinuz or module with an embedded config (CONFIG_IKCONFIG).

:func:`load_config` returns a :class:`ConfigSource` with the values as written, the
tree's ``include/linux/module.h`` guards when the source has one, and a Kconfig tree
(``srctree``) when one is known, for :mod:`abicheck.config.resolve`.
"""

from __future__ import annotations

import gzip
import os

from abicheck.config.ikconfig import NoEmbeddedConfig, config_from_bytes
from abicheck.config.kconfig_tree import is_kconfig_tree
from abicheck.config.model import ConfigSource
from abicheck.errors import AbicheckError
from abicheck.readers.kconfig import parse_config

_TEXT_LIMIT = 64 << 20  # a .config is ~250 KiB; an image to search may be ~100 MiB


class ConfigError(AbicheckError):
    """A config source that cannot be read."""


def load_config(spec: str, tree: str | None = None, root: str = "/") -> ConfigSource:
    """A config from what the user typed; ``tree`` names a Kconfig source tree to
    resolve it with (``--tree``)."""
    if spec == "running":
        source = _running(root)
    elif os.path.isdir(spec):
        source = _directory(spec)
    elif os.path.isfile(spec):
        source = _file(spec)
    else:
        raise ConfigError(
            spec,
            "no such file or directory (a .config, a headers, build or "
            "source directory, a profile, a kernel image, or 'running')",
        )
    if tree is not None:
        if not is_kconfig_tree(tree):
            raise ConfigError(tree, "not a kernel source tree (no Kconfig, scripts/kconfig)")
        from dataclasses import replace

        source = replace(source, srctree=os.path.abspath(tree))
        if not source.module_h:
            source = _with_module_h(source, [tree])
    return source


def _values(text: str, label: str) -> dict[str, str]:
    values = parse_config(text)
    if not values:
        raise ConfigError(label, "no CONFIG_ lines: not a kernel config")
    return values


def _running(root: str) -> ConfigSource:
    release = os.uname().release
    proc = os.path.join(root, "proc/config.gz")
    boot = os.path.join(root, f"boot/config-{release}")
    try:
        if os.path.isfile(proc):
            with gzip.open(proc, "rt", encoding="utf-8", errors="replace") as f:
                label, text = proc, f.read()
        elif os.path.isfile(boot):
            with open(boot, encoding="utf-8", errors="replace") as f:
                label, text = boot, f.read()
        else:
            raise ConfigError(f"running kernel {release}", f"no config: neither {proc} nor {boot}")
    except (OSError, EOFError) as e:
        raise ConfigError(f"running kernel {release}", f"cannot read its config: {e}") from None
    source = ConfigSource("running", "running", label, _values(text, label), release=release)
    build = os.path.join(root, f"lib/modules/{release}/build")
    if os.path.isdir(build):
        from abicheck.targets.headers import source_dirs

        source = _with_module_h(source, source_dirs(build))
    return source


def _directory(path: str) -> ConfigSource:
    from abicheck.targets.headers import source_dirs

    if is_kconfig_tree(path):
        config = os.path.join(path, ".config")
        if not os.path.isfile(config):
            raise ConfigError(
                path,
                "a source tree without a .config (copy one there, or give the .config and --tree)",
            )
        text = _read_text(config)
        source = ConfigSource(
            path,
            "source-tree",
            config,
            _values(text, config),
            srctree=os.path.abspath(path),
            release=_kernel_release(path),
        )
        return _with_module_h(source, [path])
    for name in (".config", "include/config/auto.conf"):
        config = os.path.join(path, name)
        if os.path.isfile(config):
            text = _read_text(config)
            dirs = source_dirs(path)
            srctree = next((d for d in dirs if is_kconfig_tree(d)), None)
            notes = ()
            if name != ".config":
                notes = (
                    "read include/config/auto.conf: it lists only enabled options, "
                    "so an option set to n and an absent one look alike",
                )
            source = ConfigSource(
                path,
                "headers",
                config,
                _values(text, config),
                release=_kernel_release(path),
                srctree=srctree,
                notes=notes,
            )
            return _with_module_h(source, dirs)
    raise ConfigError(path, "no .config or include/config/auto.conf in the directory")


def _file(path: str) -> ConfigSource:
    try:
        with open(path, "rb") as f:
            data = f.read(_TEXT_LIMIT)
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            inner = gzip.decompress(data)
        except (OSError, EOFError, ValueError) as e:
            raise ConfigError(path, f"corrupt gzip: {e}") from None
        if inner.lstrip()[:1] == b"{":
            return _profile(path)
        data = inner
    elif data.lstrip()[:1] == b"{":
        return _profile(path)
    if _looks_binary(data):
        try:
            text = config_from_bytes(data, path)
        except NoEmbeddedConfig:
            raise
        return ConfigSource(path, "image", f"{path} (IKCONFIG)", _values(text, path))
    text = data.decode("utf-8", errors="replace")
    return ConfigSource(path, "file", path, _values(text, path))


def _profile(path: str) -> ConfigSource:
    from abicheck.targets.profile import target_from_profile

    target = target_from_profile(path)
    return ConfigSource(
        path,
        "profile",
        path,
        dict(target.config),
        release=target.release,
        module_h=target.module_h,
        module_h_path=f"{path} (module.h guards saved in the profile)" if target.module_h else None,
    )


def _looks_binary(data: bytes) -> bool:
    return b"\0" in data[:4096] or data[:4] == b"\x7fELF"


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None


def _kernel_release(path: str) -> str | None:
    rel = os.path.join(path, "include", "config", "kernel.release")
    try:
        with open(rel, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None


def _with_module_h(source: ConfigSource, dirs: list[str]) -> ConfigSource:
    from dataclasses import replace

    from abicheck.readers.module_h import guarded_members

    for d in dirs:
        path = os.path.join(d, "include", "linux", "module.h")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                guards = tuple(guarded_members(f.read()))
            return replace(source, module_h=guards, module_h_path=path)
    return source
