"""A kernel target from a headers package or a kernel build directory.

Debian splits headers in two: the flavour directory (``linux-headers-6.1.0-47-amd64``:
``.config``, ``Module.symvers``, ``include/generated``) and the common one
(``linux-headers-6.1.0-47-common``: ``include/linux``, ``arch/x86/include``), joined by
``include /usr/src/linux-headers-...-common/Makefile`` in the flavour's Makefile. Only
that line is read, never run. A full build tree (``make O=...`` or in-place) works the
same way, with both halves in one place.
"""

from __future__ import annotations

import hashlib
import os
import re

from abicheck import ruledata
from abicheck.errors import TargetError
from abicheck.model import Export, ExportTable, KernelTarget
from abicheck.readers.cheader import PreprocessorError
from abicheck.readers.kconfig import parse_config, unquote
from abicheck.readers.symvers import SymversError, parse_symvers
from abicheck.targets.vermagic import compose_from_config, compose_from_headers

_DEFINE = re.compile(r"#define\s+(\w+)\s+(.*)")


class FileLog:
    """The files a target was built from, and a digest of their bytes."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._hash = hashlib.sha256()

    def read(self, path: str) -> str:
        with open(path, "rb") as f:
            data = f.read()
        self.paths.append(path)
        self._hash.update(os.path.basename(path).encode() + b"\0" + data)
        return data.decode("utf-8", "replace")

    def add(self, label: str, data: bytes) -> None:
        self.paths.append(label)
        self._hash.update(label.encode() + b"\0" + data)

    @property
    def digest(self) -> str:
        return self._hash.hexdigest()


def header_defines(text: str) -> dict[str, str]:
    return {m.group(1): m.group(2).strip() for m in _DEFINE.finditer(text)}


def source_dirs(build: str) -> list[str]:
    """The build directory, then the source/common directory its Makefile includes."""
    dirs = [build]
    makefile = os.path.join(build, "Makefile")
    candidates = []
    if os.path.isfile(makefile):
        with open(makefile, encoding="utf-8", errors="replace") as f:
            for line in f:
                m = re.match(r"\s*include\s+(\S+)/Makefile\s*$", line)
                if m and "$" not in m.group(1):
                    candidates.append(m.group(1))
    source_link = os.path.join(build, "source")
    if os.path.isdir(source_link):
        candidates.append(os.path.realpath(source_link))
    for cand in candidates:
        # a relocated tree (extracted elsewhere than /usr/src) keeps the sibling name
        for path in (
            cand,
            os.path.join(os.path.dirname(os.path.abspath(build)), os.path.basename(cand)),
        ):
            if os.path.isdir(path) and os.path.realpath(path) not in map(os.path.realpath, dirs):
                dirs.append(path)
                break
    return dirs


def include_dirs(dirs: list[str], srcarch: str) -> list[str]:
    """The -I order Kbuild uses: arch generated, arch, generated, include (build first)."""
    out = []
    for sub in (
        f"arch/{srcarch}/include/generated",
        f"arch/{srcarch}/include",
        "include",
        f"arch/{srcarch}/include/generated/uapi",
        f"arch/{srcarch}/include/uapi",
        "include/generated/uapi",
        "include/uapi",
    ):
        for d in dirs:
            path = os.path.join(d, sub)
            if os.path.isdir(path):
                out.append(path)
    return out


def arch_of(config: dict[str, str], uts_machine: str | None) -> str:
    for arch, data in ruledata.arch_data().items():
        if config.get("CONFIG_" + data["kconfig_symbol"]) == "y":
            return arch
    return uts_machine or ""


def version_of(defines: dict[str, str], release: str) -> tuple[int, int, int]:
    try:
        return (
            int(defines["LINUX_VERSION_MAJOR"]),
            int(defines["LINUX_VERSION_PATCHLEVEL"]),
            int(defines["LINUX_VERSION_SUBLEVEL"]),
        )
    except (KeyError, ValueError):
        pass
    if "LINUX_VERSION_CODE" in defines:
        try:
            code = int(defines["LINUX_VERSION_CODE"], 0)
            return code >> 16, (code >> 8) & 0xFF, code & 0xFF
        except ValueError:
            pass
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if not m:
        return (0, 0, 0)
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def distribution_of(uts_version: str | None) -> str | None:
    for name, d in ruledata.loader_data().get("distributions", {}).items():
        if uts_version and d.get("uts_version_contains", "\0") in uts_version:
            return name
    return None


def _first_file(dirs: list[str], *names: str) -> str | None:
    for name in names:
        for d in dirs:
            path = os.path.join(d, name)
            if os.path.isfile(path):
                return path
    return None


def target_from_headers(
    path: str, source: str | None = None, config_override: tuple[str, str] | None = None
) -> KernelTarget:
    """Read a headers or build directory.

    ``config_override`` (label, text) replaces the directory's .config: the running kernel
    passes /proc/config.gz this way when its headers are installed.
    """
    if not os.path.isdir(path):
        raise TargetError(path, "no such kernel headers directory")
    dirs = source_dirs(path)
    log = FileLog()
    notes: list[str] = []

    config_path = _first_file([path], ".config", "include/config/auto.conf")
    if config_override is not None:
        label, text = config_override
        log.add(label, text.encode())
        config = parse_config(text)
    elif config_path is not None:
        config = parse_config(log.read(config_path))
    else:
        raise TargetError(
            path,
            "no .config or include/config/auto.conf: not a kernel headers "
            "or build directory (is the headers package installed?)",
        )

    utsrelease = _first_file(dirs, "include/generated/utsrelease.h")
    release = None
    if utsrelease:
        release = unquote(header_defines(log.read(utsrelease)).get("UTS_RELEASE"))
    if not release:
        kr = _first_file([path], "include/config/kernel.release")
        if kr:
            release = log.read(kr).strip()
    if not release:
        raise TargetError(
            path,
            "no UTS_RELEASE in include/generated/utsrelease.h: the tree "
            "was never prepared (run `make modules_prepare`)",
        )

    defines: dict[str, str] = {}
    for name in (
        "include/generated/uapi/linux/version.h",
        "include/generated/utsversion.h",
        "include/generated/compile.h",
    ):
        found = _first_file(dirs, name)
        if found:
            defines.update(header_defines(log.read(found)))
    uts_version = unquote(defines.get("UTS_VERSION"))
    arch = arch_of(config, unquote(defines.get("UTS_MACHINE")))
    if not arch:
        notes.append("architecture not recognised from the config")
    srcarch = ruledata.arch_data().get(arch, {}).get("srcarch", arch)

    exports: dict[str, Export] | ExportTable | None = None
    symvers = _first_file([path], "Module.symvers")
    if symvers:
        try:
            exports = parse_symvers(log.read(symvers))
        except SymversError as e:
            raise TargetError(symvers, str(e)) from None
    else:
        notes.append("no Module.symvers: symbol checks are skipped")

    try:
        vermagic = compose_from_headers(include_dirs(dirs, srcarch), config)
        vermagic_source = "include/linux/vermagic.h of the target's headers"
    except (PreprocessorError, OSError) as e:
        vermagic = compose_from_config(release, config)
        vermagic_source = f"composed from the config ({e})"

    digest = log.digest
    return KernelTarget(
        id=f"{release}@{digest[:8]}",
        release=release,
        source=source or os.path.abspath(path),
        kind="headers",
        digest=digest,
        arch=arch,
        version=version_of(defines, release),
        uts_version=uts_version,
        distribution=distribution_of(uts_version),
        config=config,
        vermagic=vermagic,
        vermagic_source=vermagic_source,
        exports=exports,
        notes=tuple(notes),
        files=tuple(log.paths),
    )
