"""The environment ``make *config`` gives Kconfig: the toolchain variables of the top
Makefile, ``KERNELVERSION``, ``ARCH``/``SRCARCH``, and the two texts the Makefile itself
computes (``CC_VERSION_TEXT``, ``RUSTC_VERSION_TEXT``).

Kconfig reads these as environment variables (``$(CC)``, ``$(PAHOLE)``); make assigns them
in the Makefile, so a plain environment variable does not override them but a ``make
CC=...`` argument does: that is what :attr:`Toolchain.overrides` stands for.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field

from abicheck.kconfig.launch import Policy, Refused, run

# The top Makefile's defaults for a GCC build (6.1 and 6.12 agree), before CROSS_COMPILE.
CROSS_TOOLS = ("CC", "LD", "AR", "NM", "OBJCOPY", "OBJDUMP", "READELF", "STRIP")
DEFAULTS = {
    "CC": "gcc",
    "LD": "ld",
    "AR": "ar",
    "NM": "nm",
    "OBJCOPY": "objcopy",
    "OBJDUMP": "objdump",
    "READELF": "readelf",
    "STRIP": "strip",
    "HOSTCC": "gcc",
    "HOSTCXX": "g++",
    "HOSTRUSTC": "rustc",
    "RUSTC": "rustc",
    "BINDGEN": "bindgen",
    "PAHOLE": "pahole",
    "PYTHON3": "python3",
    "PERL": "perl",
    "CLANG_FLAGS": "",
}
# Debian packages that provide each tool, for the advice in a finding.
PACKAGES = {
    "pahole": "dwarves",
    "gcc": "gcc",
    "ld": "binutils",
    "as": "binutils",
    "rustc": "rustc",
    "bindgen": "bindgen",
    "python3": "python3",
}
# uname -m → SRCARCH, as the top Makefile's SUBARCH sed and arch/*/Makefile map it
_SRCARCH = {
    "x86_64": "x86",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "armv7l": "arm",
    "ppc64le": "powerpc",
    "ppc64": "powerpc",
    "s390x": "s390",
    "riscv64": "riscv",
    "loongarch64": "loongarch",
}


@dataclass(frozen=True)
class Toolchain:
    """The make variables a build would use: the Makefile's defaults, then ``make
    VAR=VALUE`` overrides, and the PATH the tools are looked up in."""

    overrides: Mapping[str, str] = field(default_factory=dict)
    path: str = field(default_factory=lambda: os.environ.get("PATH", os.defpath))

    def variable(self, name: str) -> str:
        if name in self.overrides:
            return self.overrides[name]
        default = DEFAULTS.get(name, "")
        if name in CROSS_TOOLS:
            return self.overrides.get("CROSS_COMPILE", "") + default
        return default

    def which(self, program: str) -> str | None:
        return shutil.which(program, path=self.path)

    def policy(
        self, env: Mapping[str, str] | None = None, srctree: str = "", trusted: bool = False
    ) -> Policy:
        """What abicheck.kconfig.launch may run: these settings' programs, never the
        tree's (a Kconfig `CC := python3` names no program of this table)."""
        return Policy(
            {name: tuple(self.variable(name).split()) for name in DEFAULTS},
            self.path,
            dict(env or {}),
            trusted,
            srctree,
            self.overrides.get("CROSS_COMPILE", ""),
        )


def makefile_version(srctree: str) -> str:
    fields: dict[str, str] = {}
    with open(os.path.join(srctree, "Makefile"), encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
            if m:
                fields.setdefault(m.group(1), m.group(2))
            if len(fields) == 4:
                break
    version = fields.get("VERSION", "0")
    if fields.get("PATCHLEVEL"):
        version += "." + fields["PATCHLEVEL"]
        if fields.get("SUBLEVEL"):
            version += "." + fields["SUBLEVEL"]
    return version + fields.get("EXTRAVERSION", "")


def arch_names(toolchain: Toolchain) -> tuple[str, str]:
    """(ARCH, SRCARCH) as the Makefile derives them from uname -m unless ARCH= is given."""
    machine = platform.machine()
    arch = toolchain.overrides.get("ARCH") or _SRCARCH.get(machine, machine)
    if arch in ("x86_64", "i386"):
        return arch, "x86"
    return arch, {"x86": "x86"}.get(arch, arch)


def version_text(toolchain: Toolchain, program: str, lc_all: bool) -> str:
    """``$(shell [LC_ALL=C] PROG --version 2>/dev/null | head -n 1)`` minus ``#``."""
    words = program.split()
    if not words:
        return ""
    with tempfile.TemporaryDirectory(prefix="abicheck-probe-") as scratch:
        try:
            out = run(toolchain.policy(), [*words, "--version"], cwd=scratch, c_locale=lc_all)
        except Refused:
            return ""
    if out.status == 127:
        return ""
    lines = out.stdout.decode(errors="replace").splitlines()
    return lines[0].replace("#", "") if lines else ""


def kbuild_environment(srctree: str, toolchain: Toolchain) -> dict[str, str]:
    """What Kconfig sees as environment variables under ``make olddefconfig``."""
    arch, srcarch = arch_names(toolchain)
    env = {
        "srctree": srctree,
        "ARCH": arch,
        "SRCARCH": srcarch,
        "KERNELVERSION": makefile_version(srctree),
        "PATH": toolchain.path,
        "LC_COLLATE": "C",
        "LC_NUMERIC": "C",
    }
    env.update({name: toolchain.variable(name) for name in DEFAULTS})
    with open(os.path.join(srctree, "Makefile"), encoding="utf-8", errors="replace") as f:
        makefile = f.read()
    if re.search(r"^CC_VERSION_TEXT\s*=", makefile, re.M):
        env["CC_VERSION_TEXT"] = version_text(toolchain, env["CC"], lc_all=True)
    if re.search(r"^RUSTC_VERSION_TEXT\s*=", makefile, re.M):
        env["RUSTC_VERSION_TEXT"] = version_text(toolchain, env["RUSTC"], lc_all=False)
    for name, value in toolchain.overrides.items():
        env.setdefault(name, value)
    return env
