"""A kernel's config from whatever names it: the one loader behind `abicheck config diff`,
``--build-tree`` and the running-kernel target.

What a spec may be:

- a ``.config`` (or ``auto.conf``, or a gzipped ``config.gz``);
- a headers or build directory (its ``.config``, else ``include/config/auto.conf``);
- a kernel source tree (its ``.config``; its Kconfig can then resolve the values);
- ``running``: ``/proc/config.gz``, else ``/boot/config-$(uname -r)``;
- a saved abicheck profile;
- a vmlinux, vmlinuz or module with an embedded config (CONFIG_IKCONFIG).

:func:`load_kernel_config` returns a :class:`ConfigSource`: the values as written, the
tree's ``include/linux/module.h`` guards when the source has one, where they came from,
and a Kconfig tree (``srctree``) when one is known, for :mod:`abicheck.kconfig`. Every
read is bounded, gzip included (:func:`abicheck.readers.compressed.inflate`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace

from abicheck.errors import TargetError
from abicheck.model import GuardedMember
from abicheck.readers.compressed import DecodeErrors, TooBig, inflate
from abicheck.readers.ikconfig import config_from_bytes
from abicheck.readers.kconfig import parse_config

# A Debian .config is about 250 KiB; past this it is a bomb or not a .config.
CONFIG_LIMIT = 16 << 20
# A kernel image searched for an embedded config may be ~100 MiB.
IMAGE_LIMIT = 64 << 20


class ConfigError(TargetError):
    """A config source that cannot be read."""


@dataclass(frozen=True)
class ConfigSource:
    """One kernel config, with what abicheck could and could not learn about it.

    Values keep the plain reader's convention (abicheck.readers.kconfig): ``"y"``,
    ``"m"``, ``"n"`` for ``# CONFIG_X is not set``, a number or a quoted string as
    written; an option missing from ``values`` is absent from the file.
    """

    spec: str  # what the user typed
    kind: str  # "file", "headers", "source-tree", "running", "profile", "image"
    label: str  # the file the values were read from
    values: Mapping[str, str]  # as written (the plain reader's mapping)
    release: str | None = None
    srctree: str | None = None  # a Kconfig tree that can resolve this config
    module_h: tuple[GuardedMember, ...] = ()  # the tree's include/linux/module.h guards
    module_h_path: str | None = None
    notes: tuple[str, ...] = ()

    def get(self, option: str) -> str | None:
        return self.values.get(option if option.startswith("CONFIG_") else "CONFIG_" + option)


def load_kernel_config(spec: str, tree: str | None = None, root: str = "/") -> ConfigSource:
    """A config from what the user typed; ``tree`` names a Kconfig source tree to
    resolve it with (``config diff --tree``); ``root`` prefixes /proc, /boot and /lib
    for ``running``."""
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
        source = replace(source, srctree=os.path.abspath(tree))
        if not source.module_h:
            source = _with_module_h(source, [tree])
    return source


def running_config(root: str, release: str) -> tuple[str, str]:
    """The running kernel's config as (the file read, its text): ``/proc/config.gz``,
    else ``/boot/config-<release>``."""
    proc = os.path.join(root, "proc/config.gz")
    boot = os.path.join(root, f"boot/config-{release}")
    if os.path.isfile(proc):
        return proc, _decode(_read_bounded(proc, CONFIG_LIMIT), proc)
    if os.path.isfile(boot):
        return boot, _decode(_read_bounded(boot, CONFIG_LIMIT), boot)
    raise ConfigError(f"running kernel {release}", f"no config: neither {proc} nor {boot}")


def is_kconfig_tree(path: str) -> bool:
    """A kernel source tree: its top Kconfig and scripts/kconfig are there."""
    return os.path.isfile(os.path.join(path, "Kconfig")) and os.path.isdir(
        os.path.join(path, "scripts", "kconfig")
    )


def module_h_guards(dirs: list[str]) -> tuple[GuardedMember, ...]:
    """The guards of struct module's members from the first include/linux/module.h."""
    found = _module_h(dirs)
    return found[1] if found else ()


def _module_h(dirs: list[str]) -> tuple[str, tuple[GuardedMember, ...]] | None:
    from abicheck.readers.module_h import guarded_members

    for d in dirs:
        path = os.path.join(d, "include", "linux", "module.h")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return path, tuple(guarded_members(f.read()))
    return None


def _with_module_h(source: ConfigSource, dirs: list[str]) -> ConfigSource:
    found = _module_h(dirs)
    if found is None:
        return source
    return replace(source, module_h=found[1], module_h_path=found[0])


def _values(text: str, label: str) -> dict[str, str]:
    values = parse_config(text)
    if not values:
        raise ConfigError(label, "no CONFIG_ lines: not a kernel config")
    return values


def _running(root: str) -> ConfigSource:
    release = os.uname().release
    label, text = running_config(root, release)
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
        text = _decode(_read_bounded(config, CONFIG_LIMIT), config)
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
            text = _decode(_read_bounded(config, CONFIG_LIMIT), config)
            dirs = source_dirs(path)
            srctree = next((d for d in dirs if is_kconfig_tree(d)), None)
            notes: tuple[str, ...] = ()
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
    data = _read_bounded(path, IMAGE_LIMIT)
    if data.lstrip()[:1] == b"{":
        return _profile(path)
    if _looks_binary(data):
        text = config_from_bytes(data, path)  # else NoEmbeddedConfig
        return ConfigSource(path, "image", f"{path} (IKCONFIG)", _values(text, path))
    return ConfigSource(path, "file", path, _values(_decode(data, path), path))


def _read_bounded(path: str, limit: int) -> bytes:
    """At most ``limit`` (+1) bytes of the file, a gzip inflated to at most ``limit``: a
    config.gz, a gzipped profile or image. A plain file past the limit is returned cut,
    for the image search; :func:`_decode` refuses it as a config."""
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError as e:
        raise ConfigError(path, f"cannot read: {e.strerror}") from None
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return inflate("gzip", data, limit)
    except TooBig:
        raise ConfigError(path, f"inflates past {limit >> 20} MiB: not a kernel config") from None
    except DecodeErrors as e:
        raise ConfigError(path, f"corrupt gzip: {e}") from None


def _decode(data: bytes, label: str) -> str:
    if len(data) > CONFIG_LIMIT:
        raise ConfigError(label, f"larger than {CONFIG_LIMIT >> 20} MiB: not a kernel config")
    return data.decode("utf-8", errors="replace")


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


def _kernel_release(path: str) -> str | None:
    rel = os.path.join(path, "include", "config", "kernel.release")
    try:
        with open(rel, encoding="utf-8") as f:
            return f.read().strip() or None
    except OSError:
        return None
