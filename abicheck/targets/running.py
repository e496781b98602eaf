"""The running kernel as a target: uname, its config, its headers if installed."""

from __future__ import annotations

import glob
import gzip
import os

from abicheck.model import KernelTarget
from abicheck.readers.kconfig import parse_config
from abicheck.readers.symvers import parse_symvers
from abicheck.targets.headers import FileLog, arch_of, distribution_of, target_from_headers
from abicheck.targets.kernel_config import running_config
from abicheck.targets.vermagic import compose_from_config


def _installed_vermagic(root: str, release: str) -> str | None:
    """The vermagic of an installed in-tree module: the kernel's own string, verbatim."""
    from abicheck.errors import ModuleReadError
    from abicheck.readers.module import read_module

    pattern = os.path.join(root, f"lib/modules/{release}/kernel/**/*.ko*")
    for path in glob.iglob(pattern, recursive=True):
        try:
            magic = read_module(path).info("vermagic")
        except ModuleReadError:
            continue
        if magic:
            return magic
    return None


def target_from_running_kernel(root: str = "/") -> KernelTarget:
    uname = os.uname()
    release = uname.release
    config_label, config_text = running_config(root, release)
    build = os.path.join(root, f"lib/modules/{release}/build")
    if os.path.isdir(build):
        target = target_from_headers(
            build, source=f"running ({build})", config_override=(config_label, config_text)
        )
        return _as_running(target)

    log = FileLog()
    log.add(config_label, config_text.encode())
    config = parse_config(config_text)
    notes = [f"no headers at {build}"]
    exports = None
    symvers = os.path.join(root, f"boot/symvers-{release}.gz")
    if os.path.isfile(symvers):
        with gzip.open(symvers, "rb") as f:
            data = f.read()
        log.add(symvers, data)
        exports = parse_symvers(data.decode("utf-8", "replace"))
    else:
        notes.append("no Module.symvers: symbol checks are skipped")
    vermagic = _installed_vermagic(root, release)
    vermagic_source = "an installed in-tree module"
    if vermagic is None:
        vermagic = compose_from_config(release, config)
        vermagic_source = "composed from the running kernel's config"
    uts_version = None
    try:
        with open(os.path.join(root, "proc/sys/kernel/version")) as f:
            uts_version = f.read().strip()
    except OSError:
        uts_version = uname.version
    from abicheck.targets.headers import version_of

    digest = log.digest
    return KernelTarget(
        id=f"{release}@{digest[:8]}",
        release=release,
        source="running",
        kind="running",
        digest=digest,
        arch=arch_of(config, uname.machine),
        version=version_of({}, release),
        uts_version=uts_version,
        distribution=distribution_of(uts_version),
        config=config,
        vermagic=vermagic,
        vermagic_source=vermagic_source,
        exports=exports,
        notes=tuple(notes),
        files=tuple(log.paths),
    )


def _as_running(target: KernelTarget) -> KernelTarget:
    from dataclasses import replace

    return replace(target, kind="running")
