"""The tree a module was built against (--build-tree): a headers, build or source
directory, or a bare .config file. Its config and module.h explain a layout drift."""

from __future__ import annotations

import gzip
import os

from abicheck.context import BuildTree
from abicheck.errors import TargetError
from abicheck.readers.kconfig import parse_config
from abicheck.targets.headers import source_dirs
from abicheck.targets.layouts import module_h_guards


def build_tree_from(path: str) -> BuildTree:
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                raw = f.read()
            if raw[:2] == b"\x1f\x8b":  # a config.gz, as /proc/config.gz
                raw = gzip.decompress(raw)
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise TargetError(path, f"cannot read the config: {e}") from None
        return BuildTree(path, parse_config(raw.decode("utf-8", "replace")))
    if not os.path.isdir(path):
        raise TargetError(path, "no such build tree or .config")
    for name in (".config", "include/config/auto.conf"):
        config = os.path.join(path, name)
        if os.path.isfile(config):
            with open(config, encoding="utf-8", errors="replace") as f:
                return BuildTree(path, parse_config(f.read()), module_h_guards(source_dirs(path)))
    raise TargetError(path, "no .config in the build tree")
