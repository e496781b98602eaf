"""The kernel's ELF validity checks and the sections setup_load_info() insists on."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from abicheck import ruledata
from abicheck.checks import check
from abicheck.context import CheckContext
from abicheck.model import Effect, ElfDefect, Finding
from abicheck.readers.elf import (
    EHDR_SIZE,
    SHF_ALLOC,
    SHF_EXECINSTR,
    SHF_WRITE,
    SHT_NOBITS,
    SHT_STRTAB,
    SHT_SYMTAB,
)

NO_NAME = "(missing .modinfo section or name field)"
_CLASS = {1: "ELFCLASS32", 2: "ELFCLASS64"}
_DATA = {1: "little-endian", 2: "big-endian"}


def _loader_name(ctx: CheckContext) -> str:
    """info->name as the kernel logs it before struct module is usable."""
    return ctx.module.info("name") or NO_NAME


@check("EL001")
def wrong_arch(ctx: CheckContext) -> Iterator[Finding]:
    hdr, arch = ctx.module.header, ctx.arch
    if hdr is None or not arch:
        return
    if hdr.e_machine != arch["e_machine"]:
        yield ctx.finding(
            evidence={
                "e_machine": hdr.e_machine,
                "expected": arch["e_machine"],
                "arch": arch["arch"],
                "what": f"e_machine {hdr.e_machine}",
            }
        )
    elif hdr.ei_class != arch["ei_class"] or hdr.ei_data != arch["ei_data"]:
        what = f"{_CLASS[hdr.ei_class]} {_DATA[hdr.ei_data]}"
        yield ctx.finding(
            evidence={
                "e_machine": hdr.e_machine,
                "expected": arch["e_machine"],
                "arch": arch["arch"],
                "what": what,
            },
            kernel_says="Invalid ELF section header size",
        )


def _defects(ctx: CheckContext) -> list[ElfDefect]:
    """The reader's defects, plus those that depend on which kernel reads the file."""
    m = ctx.module
    defects = list(m.defects)
    # The kernel compares the length with its own sizeof(Elf_Ehdr), not the file's class:
    # a 52-byte ELFCLASS32 header is too short for a 64-bit kernel.
    native = EHDR_SIZE.get(ctx.arch.get("ei_class", 0), 0)
    if m.elf_size < native and not any(d.check == "header_len" for d in defects):
        defects = [ElfDefect("header_len", {"len": m.elf_size})]
    if ctx.generation == "6.1":
        # 6.1 checks the names of SHF_ALLOC sections only
        defects = [
            d for d in defects if not (d.check == "section_name" and not d.facts.get("alloc"))
        ]
    else:
        if m.modinfo_count > 1:
            defects.append(ElfDefect("modinfo_unique", {"count": m.modinfo_count}))
        symtabs = [s for s in m.sections if s.sh_type == SHT_SYMTAB]
        if len(symtabs) == 1 and 0 < symtabs[0].sh_link < len(m.sections):
            strtab = m.sections[symtabs[0].sh_link]
            if strtab.sh_type != SHT_STRTAB:
                defects.append(ElfDefect("strtab_type", {"sh_type": strtab.sh_type}))
    return defects


def _sort_key(order: list[str | list[str]]) -> Callable[[ElfDefect], tuple[int, int, int]]:
    """Kernel order: top-level checks in sequence; a nested list is one loop over the
    sections, running its checks for section 1, then section 2, ..."""
    position: dict[str, tuple[int, int]] = {}
    for i, item in enumerate(order):
        for j, name in enumerate(item if isinstance(item, list) else [item]):
            position[name] = (i, j)

    def key(d: ElfDefect) -> tuple[int, int, int]:
        group, sub = position[d.check]
        return group, d.facts.get("index", 0), sub

    return key


@check("EL002")
def elf_invalid(ctx: CheckContext) -> Iterator[Finding]:
    rule = ruledata.rule("EL002")
    texts = rule.data["defects"]
    order = rule.data["order"][ctx.generation]
    key = _sort_key(order)
    checked = [
        d
        for d in _defects(ctx)
        if d.check in texts
        and d.check != "magic"
        and any(d.check == o or (isinstance(o, list) and d.check in o) for o in order)
    ]
    # the reader refuses files without the ELF magic as unreadable, before any check
    for defect in sorted(checked, key=key):
        text = texts[defect.check]
        facts = {"module": _loader_name(ctx), "len": ctx.module.elf_size, **defect.facts}
        says = text.get(
            "kernel_says_" + ctx.generation.replace(".", "_"), text.get("kernel_says", "")
        )
        yield ctx.finding(
            evidence={
                "problem": text["problem"].format(**facts),
                "check": defect.check,
                **defect.facts,
            },
            order=key(defect),
            kernel_says=says.format(**facts),
        )


@check("EL003")
def no_symbol_table(ctx: CheckContext) -> Iterator[Finding]:
    m = ctx.module
    if not ctx.elf_usable:
        return
    if m.symtab_count == 0 or (ctx.generation != "6.1" and m.symtab_count > 1):
        yield ctx.finding(evidence={"count": m.symtab_count, "name": _loader_name(ctx)})


@check("EL004")
def missing_this_module(ctx: CheckContext) -> Iterator[Finding]:
    m = ctx.module
    if not ctx.elf_usable:
        return
    tm = m.this_module
    v612 = ctx.generation != "6.1"
    name = _loader_name(ctx)
    if tm is None or (v612 and tm.count != 1) or (not v612 and not tm.sh_flags & SHF_ALLOC):
        count = tm.count if tm else 0
        says = (
            f"module {name}: Exactly one .gnu.linkonce.this_module section must exist."
            if v612
            else f"{name}: No module found in object"
        )
        yield ctx.finding(
            evidence={"count": count, "problem": f"{count} such sections"}, kernel_says=says
        )
    elif v612 and tm.sh_type == SHT_NOBITS:
        yield ctx.finding(
            evidence={"count": 1, "problem": "the section is SHT_NOBITS"},
            kernel_says=f"module {name}: .gnu.linkonce.this_module section must have a size set",
        )
    elif v612 and not tm.sh_flags & SHF_ALLOC:
        yield ctx.finding(
            evidence={"count": 1, "problem": "the section lacks SHF_ALLOC"},
            kernel_says=f"module {name}: .gnu.linkonce.this_module must occupy "
            "memory during process execution",
        )


@check("EL005")
def missing_module_name(ctx: CheckContext) -> Iterator[Finding]:
    m = ctx.module
    if not ctx.elf_usable or m.info("name"):
        return
    fallback = m.this_module.name if m.this_module else ""
    yield ctx.finding(
        evidence={"fallback": fallback or "(none)", "has_modinfo": bool(m.modinfo_count)}
    )


@check("EL006")
def writable_executable(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or not ctx.target.enabled("STRICT_MODULE_RWX"):
        return
    for sec in ctx.module.sections:
        if sec.sh_flags & (SHF_WRITE | SHF_EXECINSTR) == SHF_WRITE | SHF_EXECINSTR:
            yield ctx.finding(
                evidence={"section": sec.name, "index": sec.index}, effect=Effect.REFUSE
            )
            return  # the kernel stops at the first


@check("EL007")
def ctors_and_init_array(ctx: CheckContext) -> Iterator[Finding]:
    if not ctx.elf_usable or not ctx.target.enabled("CONSTRUCTORS"):
        return
    names = {s.name for s in ctx.module.sections if s.sh_flags & SHF_ALLOC}
    if ".ctors" in names and ".init_array" in names:
        yield ctx.finding()


@check("EL008")
def arch_sections_missing(ctx: CheckContext) -> Iterator[Finding]:
    """arm64's module_frob_arch_sections(): .plt and .init.plt. Required with
    CONFIG_ARM64_MODULE_PLTS=y, and always in kernels whose Kconfig no longer has the
    option (it went in 6.5, when module PLTs became unconditional): the config says
    which, so no version number is compared. Then module_finalize() looks for the ftrace
    trampoline sections (rules/arch [finalize_sections]) and fails silently without them."""
    required = ctx.arch.get("required_sections")
    if not required or not ctx.elf_usable:
        return
    option = ctx.arch.get("required_sections_when")
    value = ctx.target.value(option) if option else None
    if value not in (None, "y"):
        return  # the option exists and is off: no PLTs, nothing required
    names = {s.name for s in ctx.module.sections}
    evidence = {
        "arch": ctx.target.arch,
        "srcarch": ctx.arch.get("srcarch", ctx.target.arch),
        "why": f"CONFIG_{option}=y" if value == "y" else "always, in this kernel",
    }
    missing = [s for s in required if s not in names]
    if missing:
        said = ctx.arch_message("missing_sections") or ""
        yield ctx.finding(
            evidence={
                "missing": " and ".join(missing),
                **evidence,
                "said": said.format(module=ctx.module.name),
            }
        )
        return
    finalize = ctx.arch.get("finalize_sections", {})
    when = finalize.get("when")
    if when and ctx.target.value(when) != "y":
        return
    missing = [s for s in finalize.get(ctx.generation, ()) if s not in names]
    if missing:
        yield ctx.finding(
            evidence={
                "missing": " and ".join(missing),
                **evidence,
                "why": f"CONFIG_{when}=y" if when else evidence["why"],
                "said": "",
            },
            variant="message_finalize",
            stage="post_relocation",
            kernel_says="",
        )
