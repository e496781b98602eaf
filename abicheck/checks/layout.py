"""Struct layout drift: struct module as the loader uses it, and the structs a module uses.

The module's view of struct module comes from its relocations (always) and its DWARF
(when built with debug info); the kernel's from its BTF, a debug vmlinux's DWARF,
reference modules, or a profile. Which Kconfig options explain a difference is read from
the target's own include/linux/module.h.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from abicheck import ruledata
from abicheck.checks import check
from abicheck.checks.modversions import another_kernel, shown
from abicheck.context import CheckContext, license_is_gpl_compatible
from abicheck.ctypes_model import Arch, relayout
from abicheck.model import Effect, Finding, GuardedMember, KernelTypeSource, Member, StructLayout
from abicheck.readers.elf import SHF_ALLOC

if TYPE_CHECKING:  # resolve is imported where it is used
    from abicheck.checks.resolve import Provider

RELOC_SIZE = 8  # init/exit are R_X86_64_64 (or R_AARCH64_ABS64): an 8-byte pointer


@dataclass(frozen=True)
class Landing:
    symbol: str  # init_module / cleanup_module
    offset: int  # in the module's layout
    kernel_members: tuple[str, ...]  # what the kernel keeps in those 8 bytes
    nonzero: tuple[str, ...]  # which of them are non-zero when relocations are applied


def _covering(layout: StructLayout, start: int, end: int) -> list[Member]:
    return [m for m in layout.members if m.size and m.offset < end and start < m.offset + m.size]


def _span(m: Member) -> tuple[int, int]:
    return m.offset, m.offset + (m.size or 0)


def initialised_ranges(ctx: CheckContext, kernel: StructLayout) -> list[tuple[int, int, str]]:
    """Byte ranges of the kernel's struct module that hold non-zero values when
    apply_relocations() runs, for this module: (start, end, member)."""
    m = ctx.module
    sections = {s.name for s in m.sections if s.sh_flags & SHF_ALLOC}
    tainted = (
        m.info("intree") is None
        or not license_is_gpl_compatible(m.info("license"))
        or (ctx.target.enabled("MODULE_SIG") and m.signature is None)
        or m.info("staging") is not None
        or m.info("test") is not None
    )
    facts = {
        "always": True,
        "tainted": tainted,
        "signed": m.signature is not None
        and m.signature.problem is None
        and m.signature.verification in (None, "trusted"),
        "gplonly": any(r.export.gpl_only for r in _providers(ctx)),
        "livepatch": m.info("livepatch") is not None,
    }
    out = []
    writers = ruledata.rule("LY002").data.get("written_by", {})
    for name, when in ruledata.rule("LY002").data["initialised"].items():
        if when.startswith("section:"):
            on = when[len("section:") :] in sections
        elif when.startswith("modinfo:"):
            on = m.info(when[len("modinfo:") :]) is not None
        else:
            on = facts.get(when, False)
        if not on:
            continue
        outer, _, inner = name.partition(".")
        member = kernel.member(outer)
        if member is None:
            continue
        start, end = _span(member)
        if inner and ctx.target.types is not None:
            sub = ctx.target.types.struct(member.type_name.removeprefix("struct "))
            part = sub.member(inner) if sub else None
            if part is not None:
                start, end = (
                    member.offset + part.offset,
                    member.offset + part.offset + (part.size or 0),
                )
        who = writers.get(name, "find_module_sections()")
        out.append((start, end, f"{name} (set by {who})"))
    return out


def _providers(ctx: CheckContext) -> list[Provider]:
    from abicheck.checks.resolve import resolve

    return [r.provider for r in resolve(ctx) if r.provider is not None]


def landings(ctx: CheckContext, kernel: StructLayout) -> list[Landing]:
    """Where the module's init/exit relocations land in the kernel's struct module, in
    the order the kernel applies them."""
    tm = ctx.module.this_module
    assert tm is not None
    busy = initialised_ranges(ctx, kernel)
    busy += [(a, b, "the module's own bytes (its name)") for a, b in tm.nonzero]
    out = []
    for r in tm.relocations:
        if r.symbol not in ("init_module", "cleanup_module"):
            continue
        start, end = r.r_offset, r.r_offset + RELOC_SIZE
        members = tuple(_describe(kernel, start, end, ctx.target.types))
        hits = tuple(sorted({n for a, b, n in busy if a < end and start < b}))
        out.append(Landing(r.symbol, r.r_offset, members, hits))
        busy.append((start, end, f"{r.symbol} written just before"))
    return out


def _describe(
    kernel: StructLayout, start: int, end: int, types: KernelTypeSource | None = None
) -> list[str]:
    """The kernel members under [start, end), to the nested member where one is known
    (``source_list.prev`` rather than ``source_list+0x8``)."""
    names = []
    for m in _covering(kernel, start, end):
        lo, hi = max(start, m.offset), min(end, m.offset + (m.size or 0))
        if (lo, hi) == _span(m):
            names.append(m.name)
            continue
        inner = None
        if types is not None and m.type_name.startswith(("struct ", "union ")):
            nested = types.struct(m.type_name.split(" ", 1)[1])
            if nested is not None:
                inner = next(
                    (n.name for n in nested.members if n.offset == lo - m.offset and n.name), None
                )
        names.append(f"{m.name}.{inner}" if inner else f"{m.name}+{lo - m.offset:#x}")
    return names or [f"padding at {start:#x}"]


# -- explaining a drift ------------------------------------------------------------------


def _guards(ctx: CheckContext) -> dict[str, GuardedMember]:
    return {g.name: g for g in ctx.target.module_h}


def explain(
    ctx: CheckContext, kernel: StructLayout, module_view: StructLayout | None, moved: int | None
) -> tuple[str, list[dict[str, str]]]:
    """Which options account for the members present on one side only.

    With the module's DWARF, the member sets are compared; without it, guarded groups of
    kernel members whose span equals the observed shift are the candidates.
    """
    guards = _guards(ctx)
    build = ctx.run.build_tree
    options: dict[str, dict[str, str]] = {}
    if module_view is not None:
        kernel_names = {m.name for m in kernel.members}
        module_names = {m.name for m in module_view.members}
        only_kernel = [m for m in kernel.members if m.name not in module_names]
        only_module = [m for m in module_view.members if m.name not in kernel_names]
        groups = [(m, "kernel") for m in only_kernel] + [(m, "module") for m in only_module]
    else:
        tm = ctx.module.this_module
        pairs = (("init", tm.init_offset), ("exit", tm.exit_offset)) if tm is not None else ()
        observed = {n: o for n, o in pairs if o is not None}
        groups = [(m, "kernel") for m in _span_candidates(kernel, guards, observed)]
    for member, side in groups:
        g = guards.get(member.name)
        for opt in g.options if g else ():
            entry = options.setdefault(
                opt,
                {
                    "option": opt,
                    "kernel": ctx.target.config.get(opt, "absent"),
                    "build_tree": build.config.get(opt, "absent") if build else "unknown",
                    "condition": g.condition if g else "",
                    "members": "",
                },
            )
            entry["members"] = ", ".join(filter(None, [entry["members"], member.name]))
            entry["side"] = side
    if module_view is None and len(options) > 1:
        # offsets alone: several #if blocks have the same span; a build tree settles it
        if build is not None:
            differing = {k: v for k, v in options.items() if v["kernel"] != v["build_tree"]}
            options = differing or options
        if len(options) > 1:
            listed = "; ".join(f"{o['option']} ({o['members']})" for o in options.values())
            if not moved:
                k_init, tm = kernel.member("init"), ctx.module.this_module
                if k_init is not None and tm is not None and tm.init_offset is not None:
                    moved = k_init.offset - tm.init_offset
            return (
                f"the {moved} bytes that moved match several #if blocks of the target's "
                f"module.h, one of which is off in the tree the module was built from: "
                f"{listed} (give --build-tree to tell which)",
                list(options.values()),
            )
    text = "; ".join(
        f"{o['members']} exist only with {o['option']} ({o['kernel']} in the kernel"
        + (
            f", {o['build_tree']} in the tree the module was built from)"
            if o["build_tree"] != "unknown"
            else ")"
        )
        for o in options.values()
    )
    if not text and module_view is not None:
        text = _resized(ctx, kernel, module_view)
    return text or "no option of the target's module.h accounts for it", list(options.values())


def _resized(ctx: CheckContext, kernel: StructLayout, module_view: StructLayout) -> str:
    """Members present on both sides whose size differs: an embedded struct changed (a
    struct mutex under CONFIG_DEBUG_MUTEXES). The options named are those of the build
    tree that differ from the kernel's and name the member's type, as a lead."""
    by_name = {m.name: m for m in kernel.members}
    parts = []
    for m in module_view.members:
        k = by_name.get(m.name)
        if k is None or k.size == m.size:
            continue
        part = f"{m.name} ({m.type_name}) is {m.size} bytes in the module, {k.size} in the kernel"
        build = ctx.run.build_tree
        if build is not None:
            stem = m.type_name.split()[-1].removesuffix("_t").upper()
            leads = sorted(
                o
                for o in set(build.config) | set(ctx.target.config)
                if stem and stem in o and build.config.get(o) != ctx.target.config.get(o)
            )
            if leads:
                part += (
                    " (likely "
                    + ", ".join(
                        f"{o}: {ctx.target.config.get(o, 'absent')} in the kernel, "
                        f"{build.config.get(o, 'absent')} in the build tree"
                        for o in leads[:3]
                    )
                    + ")"
                )
        parts.append(part)
    return "; ".join(parts)


def _span_candidates(
    kernel: StructLayout, guards: dict[str, GuardedMember], observed: dict[str, int]
) -> list[Member]:
    """Kernel members of #if blocks whose removal puts init and exit where the module
    has them (``observed``: member → the module's offset).

    Each block is taken out and the members laid out again with C's alignment rules
    (natural alignment, and the explicit alignment a gap in the real layout reveals), so
    that blocks which share padding with a neighbour are weighed correctly. A block
    before init moves both; one between init and exit moves only exit; that is how a
    module without DWARF still names its candidates.
    """
    observed = {
        name: offset
        for name, offset in observed.items()
        if (member := kernel.member(name)) is not None and member.offset != offset
    }
    if not observed:
        return []
    blocks: dict[str, list[str]] = {}
    for m in kernel.members:
        g = guards.get(m.name)
        if g and g.condition != "1":
            blocks.setdefault(g.condition, []).append(m.name)
    found: list[Member] = []
    for names in blocks.values():
        if any(n in names for n in observed):
            continue
        laid = relayout(_arch(), kernel, set(names))
        if all(laid.get(n) == off for n, off in observed.items()):
            found.extend(m for m in kernel.members if m.name in names)
    return found


@cache
def _arch(name: str = "x86_64") -> Arch:
    """The C ABI to lay struct module out again with. The layouts carry no architecture
    yet, and every target read today is x86-64; the arm64 work passes the target's."""
    return Arch.from_data(ruledata.arch_data()[name])


# -- the checks ------------------------------------------------------------------------------


def _this_module_size_refused(ctx: CheckContext) -> bool:
    """LY001's question, which LY003 asks too."""
    kernel, tm = ctx.target.struct_module, ctx.module.this_module
    if kernel is None or tm is None or tm.sh_size == kernel.size:
        return False
    # the size check came with 6.4 (elf_validity_cache_index_mod()); LY002 judges
    return ctx.generation != "6.1"


@check("LY001")
def this_module_size(ctx: CheckContext) -> Iterator[Finding]:
    if not _this_module_size_refused(ctx):
        return
    kernel, tm = ctx.target.struct_module, ctx.module.this_module
    assert kernel is not None and tm is not None
    yield ctx.finding(
        evidence={
            "module_size": tm.sh_size,
            "kernel_size": kernel.size,
            "kernel_source": kernel.source,
        }
    )


def _about(evidence: dict[str, Any]) -> str:
    """The function an LY002 finding points at in the source: the one that moved."""
    moved_exit = evidence["module_exit"] != evidence["kernel_exit"]
    return "cleanup_module" if moved_exit else "init_module"


@check("LY002")
def struct_module_layout(ctx: CheckContext) -> Iterator[Finding]:
    kernel, tm = ctx.target.struct_module, ctx.module.this_module
    if kernel is None or tm is None or not ctx.elf_usable:
        return
    k_init, k_exit = kernel.member("init"), kernel.member("exit")
    module_view = ctx.module.types.struct("module") if ctx.module.types else None
    same_init = tm.init_offset is None or (k_init is not None and k_init.offset == tm.init_offset)
    same_exit = tm.exit_offset is None or (k_exit is not None and k_exit.offset == tm.exit_offset)
    moved_members = _moved(kernel, module_view) if module_view else []
    if same_init and same_exit and not moved_members and tm.sh_size == kernel.size:
        return
    full = len(kernel.members) > 3  # BTF/DWARF, not just reference modules
    lands = landings(ctx, kernel) if full else []
    refused = next((la for la in lands if la.nonzero), None)
    shift = (k_exit.offset - tm.exit_offset) if k_exit and tm.exit_offset is not None else None
    explanation, options = explain(ctx, kernel, module_view, shift)
    evidence: dict[str, Any] = {
        "kernel_layout_source": kernel.source,
        "module_layout_source": module_view.source if module_view else "relocations",
        "kernel_size": kernel.size,
        "module_size": tm.sh_size,
        "kernel_init": k_init.offset if k_init else None,
        "module_init": tm.init_offset,
        "kernel_exit": k_exit.offset if k_exit else None,
        "module_exit": tm.exit_offset,
        "landings": [
            {
                "symbol": la.symbol,
                "offset": la.offset,
                "kernel_members": list(la.kernel_members),
                "non_zero": list(la.nonzero),
            }
            for la in lands
        ],
        "moved_members": moved_members[:20],
        "options": options,
        "explanation": explanation,
    }
    parts = []
    if not same_exit:
        parts.append(
            f"exit at {tm.exit_offset:#x} in the module, {k_exit.offset:#x} in the kernel"
            if k_exit
            else f"exit at {tm.exit_offset:#x} in the module, absent in the kernel"
        )
    if not same_init:
        parts.append(
            f"init at {tm.init_offset:#x} in the module, {k_init.offset:#x} in the kernel"
            if k_init
            else "init absent"
        )
    if moved_members and not parts:
        parts.append(f"{len(moved_members)} members of struct module moved")
    summary = "; ".join(parts) + f": {explanation}"
    if refused is not None and not ctx.arch.get("abs64_checks_existing", True):
        # arm64's reloc_data() writes the 64-bit address whatever the place holds: no
        # refusal, the kernel's member is overwritten (rules/arch/aarch64.toml); the load
        # oopses when it then walks that member itself
        walked = ctx.arch.get("walked_during_load", {})
        crash = next(
            (
                (la, m, walked[m])
                for la in lands
                if la.nonzero
                for m in la.kernel_members
                if m in walked
            ),
            None,
        )
        refused = None
        if crash is not None:
            la, member, walker = crash
            summary += (
                f". {la.symbol}'s relocation is written over the kernel's {member}, already "
                f"set ({', '.join(la.nonzero)}): the {ctx.target.arch} loader does not check "
                f"the place, and {walker} then follows it: the kernel oopses during the load "
                "(the module stays 'coming', the kernel is tainted D)"
            )
            yield ctx.finding(
                evidence={"summary": summary, "oops": True, **evidence},
                declaration=_about(evidence),
                kernel_says="Unable to handle kernel paging request at virtual address "
                f"<{member} holding {la.symbol}'s address>",
                errno="",
            )
            return
    if refused is not None:
        summary += (
            f". cleanup_module's relocation lands on the kernel's "
            f"{', '.join(refused.kernel_members)}"
            if refused.symbol == "cleanup_module"
            else f". init_module's relocation lands on the kernel's "
            f"{', '.join(refused.kernel_members)}"
        )
        summary += f", already non-zero there: {', '.join(refused.nonzero)}"
        yield ctx.finding(evidence={"summary": summary, **evidence}, declaration=_about(evidence))
        return
    if not full:
        summary += (
            ". The kernel's member at the module's offsets is unknown without its "
            "BTF (--vmlinux): refused or loaded broken"
        )
        yield ctx.finding(
            evidence={"summary": summary, **evidence},
            declaration=_about(evidence),
            effect=Effect.UNSAFE,
            stage="runtime",
            kernel_says="",
        )
        return
    consequences = []
    for la in lands:
        if la.nonzero:
            consequences.append(
                f"{la.symbol} is written over the kernel's {', '.join(la.kernel_members)}, "
                f"already set ({', '.join(la.nonzero)}): the {ctx.target.arch} loader does "
                "not check the place, so that member is corrupted"
            )
        else:
            consequences.append(
                f"{la.symbol} is written into the kernel's {', '.join(la.kernel_members)}"
            )
    if not same_init:
        consequences.append("the kernel's init stays empty: the module's init never runs")
    # delete_module() (6.1, 6.12) tests, in order: source_list empty (else EWOULDBLOCK,
    # "Resource temporarily unavailable"), then init without exit (EBUSY). An address
    # written over source_list makes the list look non-empty: rmmod stops there.
    if any(m.startswith("source_list") for la in lands if la.nonzero for m in la.kernel_members):
        consequences.append(
            "rmmod then finds source_list non-empty (another module seems to use this "
            "one) and fails with EAGAIN (Resource temporarily unavailable)"
        )
    elif not same_exit:
        consequences.append("the kernel's exit stays empty: rmmod refuses (EBUSY)")
    # 6.4+ refuse the size first (LY001, seen on the real 6.12 arm64 kernel): what follows
    # is what the relocations would do past that check, not what this kernel does
    lead = (
        ". LY001 refuses it first; past that check the load would succeed, but "
        if _this_module_size_refused(ctx)
        else ". The load succeeds, but "
    )
    summary += lead + "; ".join(consequences)
    yield ctx.finding(
        evidence={"summary": summary, **evidence},
        declaration=_about(evidence),
        effect=Effect.UNSAFE,
        stage="runtime",
        kernel_says="",
    )


def _moved(kernel: StructLayout, module_view: StructLayout) -> list[dict[str, object]]:
    by_name = {m.name: m for m in kernel.members}
    out = []
    for m in module_view.members:
        k = by_name.get(m.name)
        if k is not None and k.offset != m.offset:
            out.append(
                {
                    "member": m.name,
                    "module": m.offset,
                    "kernel": k.offset,
                    "delta": k.offset - m.offset,
                }
            )
    return out


def _kernel_view(
    ctx: CheckContext,
) -> tuple[dict[str, StructLayout], dict[str, StructLayout | None]]:
    """The structs the module's code uses ("struct NAME" → the module's layout), and the
    kernel's layout of each (None where the kernel's type source has none), shared by
    LY003 and LY004. The declaring header goes with each name, so that a probe compiled
    against the target's headers can include it."""
    if "kernel_view" in ctx.memo:
        return ctx.memo["kernel_view"]
    types, ktypes = ctx.module.types, ctx.target.types
    mine: dict[str, StructLayout] = {}
    theirs: dict[str, StructLayout | None] = {}
    if types is not None:
        mine = {n: lay for n, lay in types.used_structs().items() if n != "struct module"}
        if ktypes is not None and mine:
            wanted = {}
            for n in mine:
                decl = types.decl_line(n)
                wanted[n] = decl[0] if decl else None
            theirs = ktypes.layouts(wanted)
    ctx.memo["kernel_view"] = (mine, theirs)
    return mine, theirs


@check("LY003")
def struct_layouts(ctx: CheckContext) -> Iterator[Finding]:
    mine_all, theirs_all = _kernel_view(ctx)
    ktypes = ctx.target.types
    if ktypes is None:
        return
    drifted: list[tuple[str, StructLayout, StructLayout, list[str]]] = []
    for name, mine in sorted(mine_all.items()):
        theirs = theirs_all.get(name)
        if theirs is None:
            continue
        diff = compare(mine, theirs)
        if diff:
            drifted.append((name, mine, theirs, diff))
    kernel_source = ctx.target.layout_source or ktypes.source
    because = another_kernel(ctx) + (["LY001"] if _this_module_size_refused(ctx) else [])
    if because and len(drifted) > 1:
        # Built against another kernel, already said (and refused) by these rules: the
        # structs differ as a matter of course, and one finding names them.
        names = [name for name, *_ in drifted]
        yield ctx.finding(
            evidence={
                "count": len(drifted),
                "shown": shown([n.removeprefix("struct ") for n in names]),
                "because": " and ".join(because),
                "kernel_source": kernel_source,
                "hint": _hint(ctx),
                "structs": [
                    {
                        "struct": name.removeprefix("struct "),
                        "difference": diff[0],
                        "module_size": mine.size,
                        "kernel_size": theirs.size,
                    }
                    for name, mine, theirs, diff in drifted
                ],
            },
            variant="message_grouped",
        )
        return
    for i, (name, mine, theirs, diff) in enumerate(drifted):
        padding_only = in_module_padding(mine, theirs)
        evidence = {
            "struct": name.removeprefix("struct "),
            "difference": summary(diff),
            # every one, for a reader looking for the member its code uses (task_struct's
            # pid among 200), bounded against a hostile DWARF
            "differences": diff[:MAX_DIFFERENCES],
            # every named member at another offset: name → [module offset, kernel offset]
            "moved": moved_offsets(mine, theirs),
            "module_size": mine.size,
            "kernel_size": theirs.size,
            "kernel_source": kernel_source,
            "hint": _hint(ctx),
        }
        if padding_only:
            # The kernel's extra members sit where the module sees padding: no member
            # the module's code reads or writes moved, so it is not "unsafe" (the real
            # 6.1.0-47 loads and runs the MUTEX_SPIN_ON_OWNER case). What remains is the
            # module's own initialisers (DEFINE_MUTEX's __MUTEX_INITIALIZER), which leave
            # those bytes zero where the kernel's would set them: a warning.
            evidence["members"] = ", ".join(padding_only)
            yield ctx.finding(
                evidence=evidence, order=(i,), effect=Effect.WARN, variant="message_padding"
            )
            continue
        yield ctx.finding(evidence=evidence, order=(i,))


MAX_DIFFERENCES = 512


def summary(diff: list[str], shown: int = 2) -> str:
    """The first differences of a struct, and how many more: "size 9728 in the module,
    9792 in the kernel; sched_info at 0x86c in the module, 0x870 in the kernel; and 187
    more (tasks, pushable_tasks, mm, ...)" rather than the size alone."""
    head = diff[:shown]
    rest = diff[shown:]
    text = "; ".join(head)
    if rest:
        names = [n for n in (_member_of(d) for d in rest[:6]) if n]
        ellipsis = ", ..." if len(rest) > 6 else ""
        text += f"; and {len(rest)} more" + (f" ({', '.join(names)}{ellipsis})" if names else "")
    return text


def _member_of(difference: str) -> str:
    """The member a compare() line is about ("" for the size line)."""
    for prefix in ("member ",):
        if difference.startswith(prefix):
            difference = difference[len(prefix) :]
    if difference.startswith(("size ", "anonymous ")) or difference[:1].isdigit():
        return ""
    return difference.split(" ", 1)[0]


def in_module_padding(mine: StructLayout, theirs: StructLayout) -> list[str]:
    """The kernel-only members of a struct whose only difference is those members, each
    lying wholly in bytes the module's layout leaves as padding ([] otherwise): same size,
    every member of the module at the same offset with the same size."""
    if mine.size != theirs.size:
        return []
    by_name = {m.name: m for m in theirs.members if m.name}
    for m in mine.members:
        if not m.name:
            return []  # anonymous members are matched by order: no claim on them
        k = by_name.get(m.name)
        if k is None or (k.offset, k.bit_offset, k.size) != (m.offset, m.bit_offset, m.size):
            return []
    used = [(m.offset, m.offset + (m.size or 0)) for m in mine.members]
    names = {m.name for m in mine.members}
    extra = [k for k in theirs.members if k.name not in names]
    if not extra or any(not k.name or k.size is None for k in extra):
        return []
    for k in extra:
        assert k.size is not None
        if any(k.offset < end and start < k.offset + k.size for start, end in used):
            return []
    return [f"{k.name} at {k.offset:#x} ({k.size} bytes)" for k in extra]


@check("LY004")
def structs_not_comparable(ctx: CheckContext) -> Iterator[Finding]:
    mine, theirs = _kernel_view(ctx)
    names = sorted(mine)
    if not names:
        return
    if ctx.target.types is None:
        yield ctx.finding(
            evidence={
                "count": len(names),
                "structs": ", ".join(names[:10]),
                "why": "the kernel's layouts are not available"
                + (f" ({ctx.target.layout_gap})" if ctx.target.layout_gap else ""),
            }
        )
        return
    missing = [n for n in names if theirs.get(n) is None]
    if missing:
        yield ctx.finding(
            evidence={
                "count": len(missing),
                "structs": ", ".join(missing[:10]),
                "why": "the kernel's type source does not describe them (the module's own "
                "types, kernel types no built-in code uses, or headers outside the target's "
                "include path)",
            }
        )


@check("LY005")
def layouts_not_checked(ctx: CheckContext) -> Iterator[Finding]:
    if ctx.target.struct_module is not None or ctx.module.this_module is None:
        return
    why = ctx.target.layout_gap or "no layout source"
    if ctx.target.kind == "profile":
        remedy = (
            "Save the profile with layouts: abicheck profile save --kernel HEADERS "
            "(with a C compiler, or --vmlinux /boot/vmlinuz-R)"
        )
    elif "compiler" in why:
        remedy = (
            "Install a C compiler (apt-get install gcc) so that abicheck can compile the "
            "headers, or give --vmlinux /boot/vmlinuz-R"
        )
    else:
        remedy = "Give the kernel's BTF: --vmlinux /boot/vmlinuz-R (or a -dbg vmlinux)"
    yield ctx.finding(evidence={"why": why, "remedy": remedy})


def moved_offsets(mine: StructLayout, theirs: StructLayout) -> dict[str, list[int]]:
    """Each named member of both layouts whose byte offset differs: [module, kernel]."""
    by_name = {m.name: m for m in theirs.members if m.name}
    return {
        m.name: [m.offset, by_name[m.name].offset]
        for m in mine.members
        if m.name in by_name and by_name[m.name].offset != m.offset
    }


def compare(mine: StructLayout, theirs: StructLayout) -> list[str]:
    """Differences a module would trip over: size, and each member's offset and size.

    Named members are matched by name; anonymous unions and structs (several per struct,
    all named "") by their order of appearance.
    """
    out = []
    if mine.size != theirs.size:
        out.append(f"size {mine.size} in the module, {theirs.size} in the kernel")
    by_name = {m.name: m for m in theirs.members if m.name}
    anonymous = [m for m in theirs.members if not m.name]
    seen_anonymous = 0
    for m in mine.members:
        if m.name:
            k = by_name.get(m.name)
            label = m.name
        else:
            k = anonymous[seen_anonymous] if seen_anonymous < len(anonymous) else None
            seen_anonymous += 1
            label = f"anonymous {m.type_name} #{seen_anonymous}"
        if k is None:
            out.append(f"member {label} at {m.offset:#x} exists only in the module")
        elif k.offset != m.offset or k.bit_offset != m.bit_offset:
            out.append(f"{label} at {m.offset:#x} in the module, {k.offset:#x} in the kernel")
        elif k.size != m.size:
            out.append(f"{label} is {m.size} bytes in the module, {k.size} in the kernel")
    names = {m.name for m in mine.members}
    out += [
        f"member {k.name} at {k.offset:#x} exists only in the kernel"
        for k in theirs.members
        if k.name and k.name not in names
    ]
    if len(anonymous) > seen_anonymous:
        out.append(
            f"{len(anonymous) - seen_anonymous} anonymous member(s) exist only in the kernel"
        )
    return out


def _hint(ctx: CheckContext) -> str:
    build = ctx.run.build_tree
    if build is None:
        return "give --build-tree to name the options that differ"
    differ = sorted(
        o
        for o in set(build.config) | set(ctx.target.config)
        if build.config.get(o) != ctx.target.config.get(o)
        and not o.startswith(
            ("CONFIG_CC_", "CONFIG_GCC_", "CONFIG_AS_", "CONFIG_LD_", "CONFIG_PAHOLE_")
        )
    )
    return "options that differ from the kernel's config: " + ", ".join(differ[:8])
