"""The vermagic string a kernel expects, composed as its include/linux/vermagic.h does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from abicheck.readers.cheader import Preprocessor, PreprocessorError, defines_from_config


def compose_from_headers(include_dirs: Sequence[str], config: Mapping[str, str]) -> str:
    """Evaluate the target's own linux/vermagic.h with its autoconf.h.

    ``RANDSTRUCT`` is not a Kconfig macro: scripts/Makefile.randstruct passes
    ``-DRANDSTRUCT`` when CONFIG_RANDSTRUCT is set, so it is defined here the same way.
    Raises PreprocessorError when the header is missing or cannot be evaluated.
    """
    pp = Preprocessor(include_dirs, {"__KERNEL__": "1", "INCLUDE_VERMAGIC": "1"})
    if not pp.include("generated/autoconf.h"):
        pp.macros.update(defines_from_config(config))
    if config.get("CONFIG_RANDSTRUCT") == "y":
        pp.macros["RANDSTRUCT"] = "1"
    if not pp.include("linux/vermagic.h"):
        raise PreprocessorError("linux/vermagic.h not found in the headers")
    if pp.errors:
        raise PreprocessorError("linux/vermagic.h: #error " + pp.errors[0])
    return pp.string("VERMAGIC_STRING")


def compose_from_config(release: str, config: Mapping[str, str]) -> str:
    """The composition of include/linux/vermagic.h in 6.1 and 6.12, for targets without
    headers (a running kernel with only /proc/config.gz). x86_64 adds no arch part."""

    def on(option: str) -> bool:
        return config.get("CONFIG_" + option) == "y"

    parts = [release + " "]
    parts.append("SMP " if on("SMP") else "")
    if on("PREEMPT_BUILD"):
        parts.append("preempt ")
    elif on("PREEMPT_RT"):
        parts.append("preempt_rt ")
    parts.append("mod_unload " if on("MODULE_UNLOAD") else "")
    parts.append("modversions " if on("MODVERSIONS") else "")
    return "".join(parts)
