"""The tree a module was built against (--build-tree): a headers, build or source
directory, or a bare .config file. Its config and module.h explain a layout drift."""

from __future__ import annotations

import os

from abicheck.context import BuildTree
from abicheck.errors import TargetError
from abicheck.readers.compressed import DecodeErrors, TooBig, inflate
from abicheck.readers.kconfig import parse_config
from abicheck.targets.headers import source_dirs
from abicheck.targets.layouts import module_h_guards

# A Debian .config is about 250 KiB; past this it is a bomb or not a .config.
CONFIG_LIMIT = 16 << 20


def build_tree_from(path: str) -> BuildTree:
    if os.path.isfile(path):
        problem = None
        try:
            with open(path, "rb") as f:
                raw = f.read(CONFIG_LIMIT + 1)
            if raw[:2] == b"\x1f\x8b":  # a config.gz, as /proc/config.gz
                raw = inflate("gzip", raw, CONFIG_LIMIT)
            if len(raw) > CONFIG_LIMIT:
                raise TooBig
        except TooBig:
            problem = f"larger than {CONFIG_LIMIT >> 20} MiB: not a kernel .config"
        except DecodeErrors as e:
            problem = f"cannot read the config: {e}"
        if problem:
            raise TargetError(path, problem)
        return BuildTree(path, parse_config(raw.decode("utf-8", "replace")))
    if not os.path.isdir(path):
        raise TargetError(path, "no such build tree or .config")
    for name in (".config", "include/config/auto.conf"):
        config = os.path.join(path, name)
        if os.path.isfile(config):
            with open(config, encoding="utf-8", errors="replace") as f:
                return BuildTree(path, parse_config(f.read()), module_h_guards(source_dirs(path)))
    raise TargetError(path, "no .config in the build tree")
