"""`abicheck kernel diff A B`: what breaks for modules built against kernel A when they
are loaded into kernel B. The facts come from two loaded targets; this module computes,
abicheck/reporters/kernel_diff.py renders.

Structs are ranked by how many of A's exported functions take or return them (directly,
through pointers, arrays, typedefs and qualifiers), read from the FUNC and FUNC_PROTO
records of BTF: the kernels' own BTF when both have it, else the BTF gcc writes for the
prototypes their headers declare (abicheck.targets.prototypes, both kernels probed).

The diff is plain dict and set arithmetic: benchmarks/kdiff.py measured deepdiff on the
same two profiles (6.1.0-47, 6.1.0-56): 22.7 s against 0.26 s, and counts that disagree
with Module.symvers'.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from abicheck.errors import ModuleReadError

# config diff's classification (abicheck/kconfig/)
from abicheck.kconfig import classify as kconfig_classify
from abicheck.kconfig import diff as kconfig_diff
from abicheck.kconfig.model import Impact
from abicheck.kconfig.model import KconfigFinding as ConfigFinding
from abicheck.model import (
    Export,
    ExportTable,
    GuardedMember,
    KernelTarget,
    Member,
    Result,
    StructLayout,
)

if TYPE_CHECKING:
    from abicheck.readers.btf import Btf
    from abicheck.targets.layouts import BtfTypes
    from abicheck.targets.prototypes import Prototypes

EXPORT_KINDS = ("removed", "added", "crc", "gpl", "namespace", "moved")


@dataclass(frozen=True, slots=True)
class VermagicWord:
    component: str
    a: str
    b: str
    option: str  # the Kconfig option behind the word (rules/VM001.toml)


@dataclass(frozen=True, slots=True)
class MemberChange:
    name: str
    a: Member | None  # None: only in B
    b: Member | None  # None: only in A
    guard: str = ""  # for struct module: the module.h condition the member exists under


@dataclass(frozen=True, slots=True)
class StructChange:
    name: str
    size_a: int
    size_b: int
    members: tuple[MemberChange, ...]
    exports: int = 0  # A's exported functions that take or return it


@dataclass(frozen=True, slots=True)
class GuardMove:
    """A struct module member that one config has and the other lacks, and why."""

    member: str
    condition: str
    options: tuple[str, ...]
    in_a: bool
    in_b: bool


@dataclass(frozen=True, slots=True)
class LoaderIdentity:
    vermagic_a: str | None
    vermagic_b: str | None
    words: tuple[VermagicWord, ...]  # differing words, the release left out (see below)
    release_compared: bool  # False: CONFIG_MODVERSIONS on both, same_magic() skips it
    module_layout_a: int | None
    module_layout_b: int | None
    struct_module: StructChange | None  # None: unchanged, or unknown on a side
    struct_module_known: bool
    guard_moves: tuple[GuardMove, ...]

    @property
    def vermagic_changed(self) -> bool:
        return bool(self.words)

    @property
    def module_layout_changed(self) -> bool:
        return self.module_layout_a != self.module_layout_b


@dataclass(frozen=True, slots=True)
class ExportChange:
    name: str
    a: Export | None
    b: Export | None
    kinds: tuple[str, ...]  # of EXPORT_KINDS

    @property
    def side(self) -> str:
        """Where A had it ("vmlinux" or "modules"); where B has it, for an addition."""
        e = self.a or self.b
        return "vmlinux" if e is not None and e.owner == "vmlinux" else "modules"


@dataclass
class KernelDiff:
    a: KernelTarget
    b: KernelTarget
    identity: LoaderIdentity
    exports: list[ExportChange] | None  # None: a side has no Module.symvers
    export_totals: tuple[int, int]
    structs: list[StructChange]
    structs_compared: int
    struct_note: str
    config: list[ConfigFinding]
    config_other: int  # options that differ with no effect on modules
    modules: list[Result] | None = None
    module_errors: list[str] = field(default_factory=list)

    def count(self, kind: str, side: str | None = None) -> int:
        return sum(
            1 for c in self.exports or () if kind in c.kinds and (side is None or c.side == side)
        )

    @property
    def broken_modules(self) -> list[Result]:
        from abicheck.runner import broken

        return broken(self.modules or [])

    def summary(self) -> list[str]:
        """The headline sentences, most severe first."""
        out: list[str] = []
        ident = self.identity
        if ident.module_layout_changed and ident.module_layout_a is not None:
            out.append("module_layout changed: every module built for A is refused by B")
        if ident.vermagic_changed:
            words = ", ".join(f"{w.component} ({w.option})" for w in ident.words)
            out.append(f"vermagic differs ({words}): every module built for A is refused by B")
        sm = ident.struct_module
        if sm is not None:
            out.append(
                f"struct module changed ({sm.size_a} → {sm.size_b} bytes): a module's "
                ".gnu.linkonce.this_module built for A is wrong for B"
            )
        if self.exports is not None:
            crc, vm = self.count("crc"), self.count("crc", "vmlinux")
            if crc:
                out.append(f"{crc:,} exports changed CRC, {vm:,} of them vmlinux exports")
            for kind, words in (
                ("removed", "exports removed"),
                ("gpl", "exports became or stopped being GPL-only"),
                ("namespace", "exports changed namespace"),
                ("moved", "exports moved between vmlinux and a module"),
                ("added", "exports added"),
            ):
                n = self.count(kind)
                if n:
                    out.append(f"{n:,} {words}")
        if self.structs:
            out.append(
                f"{len(self.structs):,} of {self.structs_compared:,} structs in exported "
                "prototypes changed layout"
            )
        relevant = len(self.config)
        if relevant:
            out.append(f"{relevant} config options that matter to modules differ")
        if self.modules is not None:
            out.append(
                f"{len(self.broken_modules)} of {len(self.modules)} modules given break on B"
            )
        if not out:
            out.append("nothing that matters to modules differs")
        return out


# --- loader identity ----------------------------------------------------------------


def _vermagic_words(a: KernelTarget, b: KernelTarget) -> tuple[tuple[VermagicWord, ...], bool]:
    from abicheck.checks.vermagic import compare

    if a.vermagic is None or b.vermagic is None:
        return (), True
    skip = a.enabled("MODVERSIONS") and b.enabled("MODVERSIONS")
    words = tuple(
        VermagicWord(d["component"], d["module"], d["kernel"], d["option"])
        for d in compare(a.vermagic, b.vermagic, skip)
        if d["component"] != "spacing or order" or not skip
    )
    return words, not skip


def _member_changes(
    a: StructLayout, b: StructLayout, types: bool = True
) -> tuple[MemberChange, ...]:
    def key(m: Member) -> tuple[int, int | None, str, int | None, int | None]:
        return (m.offset, m.size, m.type_name if types else "", m.bit_offset, m.bit_size)

    am, bm = {m.name: m for m in a.members}, {m.name: m for m in b.members}
    out = []
    for m in a.members:
        other = bm.get(m.name)
        if other is None or key(m) != key(other):
            out.append(MemberChange(m.name, m, other))
    out += [MemberChange(m.name, None, m) for m in b.members if m.name not in am]
    return tuple(out)


def diff_struct(
    a: StructLayout, b: StructLayout, exports: int = 0, types: bool = True
) -> StructChange | None:
    """``types``: compare the members' C type names too (not when the two layouts come
    from different BTF producers, which name some types apart: gcc writes
    ``long unsigned int[1][3]`` where pahole writes ``long unsigned int[3]``)."""
    members = _member_changes(a, b, types)
    if a.size == b.size and not members:
        return None
    return StructChange(a.name, a.size, b.size, members, exports)


def _guard_moves(a: KernelTarget, b: KernelTarget) -> tuple[GuardMove, ...]:
    from abicheck.readers.cheader import defines_from_config
    from abicheck.readers.module_h import present

    da, db = defines_from_config(a.config), defines_from_config(b.config)
    guards: dict[str, GuardedMember] = {g.name: g for g in a.module_h}
    guards.update((g.name, g) for g in b.module_h)
    out = []
    for g in guards.values():
        if g.condition == "1":
            continue
        in_a, in_b = present(g, a.config, da), present(g, b.config, db)
        if in_a is not None and in_b is not None and in_a != in_b:
            out.append(GuardMove(g.name, g.condition, g.options, in_a, in_b))
    return tuple(out)


def _producer(layout: StructLayout) -> str:
    """ "btf", "dwarf", "probe" (DWARF of the probe), "probe-btf" (gcc's BTF of it)..."""
    return layout.source.split(":", 1)[0]


def loader_identity(a: KernelTarget, b: KernelTarget) -> LoaderIdentity:
    words, release_compared = _vermagic_words(a, b)

    def crc(t: KernelTarget) -> int | None:
        e = t.exports.get("module_layout") if t.exports is not None else None
        return e.crc if e is not None else None

    sa, sb = a.struct_module, b.struct_module
    change = None
    if sa is not None and sb is not None:
        # C type names only between layouts of one producer (see diff_struct)
        change = diff_struct(sa, sb, types=_producer(sa) == _producer(sb))
    if change is not None:
        guards = {g.name: g.condition for g in (*a.module_h, *b.module_h)}
        change = StructChange(
            change.name,
            change.size_a,
            change.size_b,
            tuple(MemberChange(m.name, m.a, m.b, guards.get(m.name, "")) for m in change.members),
        )
    return LoaderIdentity(
        a.vermagic,
        b.vermagic,
        words,
        release_compared,
        crc(a),
        crc(b),
        change,
        sa is not None and sb is not None,
        _guard_moves(a, b),
    )


# --- exports ------------------------------------------------------------------------


def diff_exports(a: Mapping[str, Export], b: Mapping[str, Export]) -> list[ExportChange]:
    """Removed, added, and changed (CRC, GPL-only, namespace, vmlinux ↔ module)."""
    out = []
    # ExportTable's compact rows: equal rows are an unchanged export, no objects built
    ra = a.rows() if isinstance(a, ExportTable) else {}
    rb = b.rows() if isinstance(b, ExportTable) else {}
    for name in sorted(a.keys() | b.keys()):
        row = ra.get(name)
        if row is not None and row == rb.get(name):
            continue
        ea, eb = a.get(name), b.get(name)
        if eb is None:
            out.append(ExportChange(name, ea, None, ("removed",)))
        elif ea is None:
            out.append(ExportChange(name, None, eb, ("added",)))
        else:
            kinds = []
            if ea.crc != eb.crc:
                kinds.append("crc")
            if ea.gpl_only != eb.gpl_only:
                kinds.append("gpl")
            if ea.namespace != eb.namespace:
                kinds.append("namespace")
            if (ea.owner == "vmlinux") != (eb.owner == "vmlinux"):
                kinds.append("moved")
            if kinds:
                out.append(ExportChange(name, ea, eb, tuple(kinds)))
    return out


# --- structs ------------------------------------------------------------------------


def _btf(t: KernelTarget) -> BtfTypes | None:
    from abicheck.targets.layouts import BtfTypes

    return t.types if isinstance(t.types, BtfTypes) else None


def _count(functions: Mapping[str, int], btf: Btf, exports: Collection[str]) -> Counter[str]:
    """ "struct NAME" → how many of ``exports`` take or return it, from their prototypes."""
    counts: Counter[str] = Counter()
    seen: dict[int, str | None] = {}  # a few thousand types for tens of thousands of uses
    for name in exports:
        proto = functions.get(name)
        if proto is None:
            continue
        named = set()
        for i in btf.proto_types(proto):
            if i not in seen:
                seen[i] = btf.aggregate_of(i)
            named.add(seen[i])
        counts.update(n for n in named if n is not None)
    return counts


def prototype_structs(t: KernelTarget) -> Counter[str]:
    """ "struct NAME" → how many of the target's exported functions take or return it."""
    from abicheck.targets.layouts import BtfTypes

    assert isinstance(t.types, BtfTypes)
    btf = t.types.btf
    return _count(btf.functions(), btf, t.exports or ())


def _flat(btf: Btf, source: str) -> Callable[[str], StructLayout | None]:
    from abicheck.readers.btf import BtfError

    def struct(name: str) -> StructLayout | None:
        try:
            tid = btf.find_struct(name)
            return None if tid is None else btf.struct_layout(tid, source, flatten=True)
        except BtfError:
            return None

    return struct


def _compare(
    counts: Counter[str],
    struct_a: Callable[[str], StructLayout | None],
    struct_b: Callable[[str], StructLayout | None],
    types: bool = True,
) -> tuple[list[StructChange], int]:
    """Both layouts flattened: the members of anonymous structs and unions stand by their
    own names and offsets in the outer struct, as C code names them."""
    out, compared = [], 0
    for name, n in counts.items():
        la, lb = struct_a(name), struct_b(name)
        if la is None or lb is None:
            continue
        compared += 1
        change = diff_struct(la, lb, n, types)
        if change is not None:
            out.append(change)
    out.sort(key=lambda c: (-c.exports, c.name))
    return out, compared


def _missing(named: int, compared: int) -> str:
    return f" ({named - compared:,} not defined on both sides)" if named > compared else ""


def diff_structs(
    a: KernelTarget,
    b: KernelTarget,
    probed: tuple[Prototypes | str, Prototypes | str] | None = None,
) -> tuple[list[StructChange], int, str]:
    """(changed structs ranked by exports, structs compared, where the layouts came from
    or why none were compared).

    BTF on both sides: every exported function the kernel's BTF has. Else the headers
    probe of both (``probed``, abicheck.targets.prototypes): the exports declared in the
    headers it compiles, like with like. A side that cannot be probed (a profile, no
    headers, no -gbtf) but has BTF is compared by its BTF against the other's probe."""
    ba, bb = _btf(a), _btf(b)
    if ba is not None and bb is not None:
        counts = prototype_structs(a)
        out, compared = _compare(counts, _flat(ba.btf, ba.source), _flat(bb.btf, bb.source))
        return (
            out,
            compared,
            f"layouts: BTF of both kernels, {len(counts):,} structs in prototypes"
            + _missing(len(counts), compared),
        )
    if probed is None:
        return [], 0, "not compared: no BTF on both sides, and the headers were not probed"
    pa, pb = probed
    sides = []
    for p, kernel_btf in ((pa, ba), (pb, bb)):
        if not isinstance(p, str):
            sides.append((p.functions, p.btf, p.source))
        elif kernel_btf is not None:
            sides.append((kernel_btf.btf.functions(), kernel_btf.btf, kernel_btf.source))
        else:
            why = "; ".join(
                f"{x.release}: {q}" for x, q in ((a, pa), (b, pb)) if isinstance(q, str)
            )
            return [], 0, f"not compared: no BTF on both sides, and no probe ({why})"
    (fa, btf_a, src_a), (_, btf_b, src_b) = sides
    counts = _count(fa, btf_a, a.exports or ())
    mixed = isinstance(pa, str) or isinstance(pb, str)
    out, compared = _compare(counts, _flat(btf_a, src_a), _flat(btf_b, src_b), types=not mixed)
    owners = (
        {n: row[3] for n, row in a.exports.rows().items()}
        if isinstance(a.exports, ExportTable)
        else {n: e.owner for n, e in (a.exports or {}).items()}
    )
    vmlinux = [n for n, owner in owners.items() if owner == "vmlinux"]
    found = sum(1 for n in vmlinux if n in fa)
    probe = pa if not isinstance(pa, str) else pb
    assert not isinstance(probe, str)
    how = f"{probe.compiler} -gbtf, {'cached' if probe.cached else 'compiled now'}"
    if isinstance(pa, str) or isinstance(pb, str):  # mixed, said so for mypy
        which = (
            "A's BTF against B's headers" if isinstance(pa, str) else "A's headers against B's BTF"
        )
        where = (
            f"layouts: {which} (probe of {len(probe.headers)} headers, {how}; offsets and "
            "sizes compared, not type names, which gcc and pahole write apart)"
        )
    else:
        cached = "cached" if pa.cached and pb.cached else "compiled now"
        where = (
            f"layouts: probe of {len(pa.headers)} headers on both sides "
            f"({pa.compiler} -gbtf, {cached})"
        )
    note = (
        f"{where}: {found:,} of A's {len(vmlinux):,} vmlinux exports "
        f"{'in its BTF' if isinstance(pa, str) else 'declared there'}, {len(counts):,} "
        "structs in their prototypes" + _missing(len(counts), compared)
    )
    dropped = sorted(
        set(pa.dropped if not isinstance(pa, str) else ())
        | set(pb.dropped if not isinstance(pb, str) else ())
    )
    if dropped:
        note += f"; left out: {', '.join(dropped)}"
    return out, compared, note


# --- config -------------------------------------------------------------------------


def _series(*releases: str) -> tuple[str, ...]:
    out: list[str] = []
    for r in releases:
        m = re.match(r"(\d+\.\d+)", r)
        if m and m.group(1) not in out:
            out.append(m.group(1))
    return tuple(out)


def diff_config(a: KernelTarget, b: KernelTarget) -> tuple[list[ConfigFinding], int]:
    """config diff's classification of the options that differ: (those that matter to
    modules, most severe first; how many others differ)."""
    ra = kconfig_diff.Resolution(dict(a.config))
    rb = kconfig_diff.Resolution(dict(b.config))
    guards = b.module_h or a.module_h
    series = _series(b.release, a.release)
    findings = [
        kconfig_classify.classify(c, ra.values, rb.values, guards, None, series)
        for c in kconfig_diff.changes(ra, rb)
    ]
    relevant = [f for f in findings if f.impact is not Impact.NONE]
    return kconfig_classify.sort_findings(relevant), len(findings) - len(relevant)


# --- the whole ----------------------------------------------------------------------


def diff_kernels(
    a: KernelTarget,
    b: KernelTarget,
    modules: Sequence[str | ModuleReadError] | None = None,
    probed: tuple[Prototypes | str, Prototypes | str] | None = None,
) -> KernelDiff:
    exports = (
        diff_exports(a.exports, b.exports)
        if a.exports is not None and b.exports is not None
        else None
    )
    structs, compared, note = diff_structs(a, b, probed)
    config, other = diff_config(a, b)
    result = KernelDiff(
        a,
        b,
        loader_identity(a, b),
        exports,
        (len(a.exports or ()), len(b.exports or ())),
        structs,
        compared,
        note,
        config,
        other,
    )
    if modules is not None:
        from abicheck.runner import check_installed

        output = check_installed(modules, [b])
        result.modules = output.results
        result.module_errors = [str(e) for e in output.errors]
    return result


def _complete(layout: StructLayout | None) -> bool:
    """More than the three members the kernel's own modules tell (name, init, exit)."""
    return layout is not None and len(layout.members) > 3


def diff_specs(a: str, b: str, modules_dir: str | None = None) -> KernelDiff:
    """Load A and B as ``--kernel`` names them (headers, profile, ``running``) and diff
    them; ``modules_dir``: modules built for A, checked against B."""
    from abicheck.targets import load_target

    # no probe while loading: both kernels' headers are compiled at once below (B's
    # on-demand probe serves only the --modules checks)
    ta = load_target(a, layouts="discover")
    tb = load_target(b, layouts="auto" if modules_dir else "discover")
    probed = None
    if _btf(ta) is None or _btf(tb) is None:
        from abicheck.targets.prototypes import Prototypes, probe_targets, with_struct_module

        pa, pb = probe_targets([ta, tb])
        ta = with_struct_module(ta, pa) if isinstance(pa, Prototypes) else ta
        tb = with_struct_module(tb, pb) if isinstance(pb, Prototypes) else tb
        probed = (pa, pb)
        # no -gbtf (gcc < 12, clang): struct module from the DWARF probe, as before
        if isinstance(pa, str) and not _complete(ta.struct_module):
            ta = load_target(a)
        if isinstance(pb, str) and not _complete(tb.struct_module):
            tb = load_target(b)
    modules = None
    if modules_dir is not None:
        from abicheck.inputs import expand_modules

        modules = expand_modules([modules_dir])
    return diff_kernels(ta, tb, modules, probed)
