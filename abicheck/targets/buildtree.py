"""The tree a module was built against (--build-tree): a headers, build or source
directory, a bare .config or config.gz, a profile, or ``running``. Its config and
module.h explain a layout drift."""

from __future__ import annotations

from abicheck.context import BuildTree
from abicheck.targets.kernel_config import load_kernel_config


def build_tree_from(path: str) -> BuildTree:
    source = load_kernel_config(path)
    return BuildTree(path, dict(source.values), source.module_h)
