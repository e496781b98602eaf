"""One model of C types for every format that describes them (BTF, DWARF).

As drgn keeps one ``drgn_type`` and names C types once (``libdrgn/language_c.c``), the
readers here only *build* :class:`CType` nodes from their records; naming a type as C
declares it, flattening anonymous members, placing bitfields in pahole's storage units
and laying a struct out again after removing members live in this module, once.

A reader exposes its types as a :class:`TypeGraph`: nodes are built on demand from a
reference of the reader's own kind (a BTF type id, a DWARF DIE), because a kernel has
over 100 000 types and a check needs a few hundred of them. Struct members are not part
of a node: C types refer to themselves (``struct list_head *next``), and a frozen tree
could not hold that.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar, cast

from abicheck.model import Member, StructLayout

# The bounds every reader shares. libbpf stops resolving after 32 steps
# (MAX_RESOLVE_DEPTH); real chains are far shorter, so a longer one is a loop in a
# corrupt file.
MAX_RESOLVE_DEPTH = 32
# Nesting of declarators and anonymous members: deeper than C code gets, finite.
MAX_NESTING = 64
# Steps to name one type; the longest kernel function-pointer types take a few dozen.
# Corrupt input can make parameter lists refer to each other so that the walk, though
# finite, would take forever.
NAME_BUDGET = 5000
# Members of one flattened struct: as many as one struct can hold (BTF's vlen is 16
# bits); corrupt input can nest anonymous members so that their number doubles at each
# level.
MAX_FLAT_MEMBERS = 0xFFFF


class Kind(StrEnum):
    VOID = "void"
    BASE = "base"  # int, float, and any other leaf known only by its name
    STRUCT = "struct"
    UNION = "union"
    ENUM = "enum"
    FWD = "fwd"  # BTF's forward declaration: named, never laid out
    POINTER = "pointer"
    ARRAY = "array"
    TYPEDEF = "typedef"
    QUALIFIER = "qualifier"  # const, volatile, restrict, _Atomic
    TAG = "tag"  # BTF's type tags (__rcu, __user): invisible in C
    FUNCTION = "function"


class Variadic(Enum):
    VARIADIC = "..."


VARIADIC = Variadic.VARIADIC
"""The ``...`` of a variadic function's parameter list."""

R = TypeVar("R")

# Kinds that only rename or qualify another type: sizes and layouts look through them.
TRANSPARENT = frozenset({Kind.TYPEDEF, Kind.QUALIFIER, Kind.TAG})
_TAGGED = {Kind.STRUCT: "struct", Kind.UNION: "union", Kind.ENUM: "enum"}


@dataclass(frozen=True, slots=True)
class CType(Generic[R]):
    """One C type. ``target`` is what a pointer, array, typedef, qualifier or function
    (its return type) refers to, as a reference the graph resolves again."""

    kind: Kind
    name: str = ""
    size: int | None = None  # of a struct, union, enum or base; None: only declared
    target: R | None = None
    dims: tuple[int, ...] = ()  # an array's element counts, outermost first
    params: tuple[R | Variadic, ...] = ()
    qualifier: str = ""
    keyword: str = ""  # a forward declaration's "struct" or "union"


@dataclass(frozen=True, slots=True)
class CMember(Generic[R]):
    """A struct or union member, its first bit counted from the start of its struct."""

    name: str
    type: R
    bit_offset: int
    bit_size: int = 0  # the width of a bitfield, 0 for other members


class TypeGraph(Protocol[R]):
    """What a reader gives the model: nodes, members and sizes, by reference."""

    format: str  # "BTF", "DWARF": for messages about corrupt input

    def node(self, ref: R) -> CType[R]: ...

    def struct_members(self, ref: R) -> Iterable[CMember[R]]: ...

    def type_size(self, ref: R) -> int | None: ...

    def type_name(self, ref: R) -> str:
        """The reader's cached :func:`c_name`."""
        ...

    def key(self, ref: R) -> Hashable: ...

    def fail(self, ref: R, problem: str) -> Exception:
        """The reader's own error, for ``problem`` at ``ref``."""
        ...


# -- walking references ------------------------------------------------------------------


def resolve(graph: TypeGraph[R], ref: R) -> R:
    """Skip typedefs, qualifiers and type tags."""
    for _ in range(MAX_RESOLVE_DEPTH):
        node = graph.node(ref)
        if node.kind not in TRANSPARENT:
            return ref
        ref = cast(R, node.target)  # a transparent node has one
    raise graph.fail(ref, f"reference chain longer than {MAX_RESOLVE_DEPTH}")


def _skip_tags(graph: TypeGraph[R], ref: R) -> CType[R]:
    for _ in range(MAX_RESOLVE_DEPTH):
        node = graph.node(ref)
        if node.kind != Kind.TAG:
            return node
        ref = cast(R, node.target)
    raise graph.fail(ref, f"reference chain longer than {MAX_RESOLVE_DEPTH}")


# -- C names -----------------------------------------------------------------------------


def c_name(graph: TypeGraph[R], ref: R) -> str:
    """A C-like name: ``unsigned int``, ``struct list_head``, ``char[56]``,
    ``const char *``, ``int (*)(void)``, ``union {...}`` for an anonymous union."""
    return _declare(graph, ref, "", 0, [NAME_BUDGET])


def _declare(graph: TypeGraph[R], ref: R, inner: str, depth: int, budget: list[int]) -> str:
    """C declaration of ``ref`` around the declarator ``inner`` (C's inside-out rule:
    ``char *[4]`` is an array of pointers, ``char (*)[4]`` a pointer to one)."""
    budget[0] -= 1
    if depth > MAX_NESTING or budget[0] < 0:
        raise graph.fail(ref, f"types nest too deep (a loop in corrupt {graph.format}?)")
    node = graph.node(ref)
    # every kind that refers on has a target; void's is None in DWARF, 0 in BTF
    kind, target = node.kind, cast(R, node.target)
    if kind == Kind.VOID:
        return _join("void", inner)
    if kind in _TAGGED or kind == Kind.FWD:
        keyword = node.keyword or _TAGGED[kind]
        return _join(f"{keyword} {node.name or '{...}'}", inner)
    if kind == Kind.POINTER:
        if _skip_tags(graph, target).kind in (Kind.ARRAY, Kind.FUNCTION):
            return _declare(graph, target, f"(*{inner})", depth + 1, budget)
        return _declare(graph, target, "*" + inner, depth + 1, budget)
    if kind == Kind.QUALIFIER:
        if _skip_tags(graph, target).kind == Kind.POINTER:
            # the pointer itself is qualified: char *const
            inner = f"{node.qualifier} {inner}".rstrip()
            return _declare(graph, target, inner, depth + 1, budget)
        return f"{node.qualifier} " + _declare(graph, target, inner, depth + 1, budget)
    if kind == Kind.TAG:
        return _declare(graph, target, inner, depth + 1, budget)
    if kind == Kind.ARRAY:
        dims = "".join(f"[{n}]" for n in node.dims)
        return _declare(graph, target, f"{inner}{dims}", depth + 1, budget)
    if kind == Kind.FUNCTION:
        names = [
            "..." if p is VARIADIC else _declare(graph, p, "", depth + 1, budget)
            for p in node.params
        ]
        params = ", ".join(names) or "void"
        return _declare(graph, target, f"{inner}({params})", depth + 1, budget)
    return _join(node.name, inner)  # BASE, TYPEDEF: known by name


def _join(base: str, inner: str) -> str:
    if not inner:
        return base
    return base + inner if inner[0] == "[" else f"{base} {inner}"


# -- layouts -----------------------------------------------------------------------------


def struct_layout(graph: TypeGraph[R], ref: R, source: str, flatten: bool = False) -> StructLayout:
    """Every member of a struct or union with offset, size and C type name.

    ``flatten``: replace anonymous struct/union members by their members, offsets made
    relative to the outer struct, as C lets code name them (``mod->exit`` works whether
    or not ``exit`` sits in an anonymous union).

    The layout's name is the struct's tag (``module``), "" for an anonymous one.
    """
    node = graph.node(ref)
    walk = _members(graph, ref, 0, flatten, [graph.key(ref)])
    members = tuple(islice(walk, MAX_FLAT_MEMBERS + 1))
    if len(members) > MAX_FLAT_MEMBERS:
        raise graph.fail(ref, f"more than {MAX_FLAT_MEMBERS} members")
    return StructLayout(node.name, node.size or 0, members, source)


def _members(
    graph: TypeGraph[R], ref: R, base_bits: int, flatten: bool, path: list[Hashable]
) -> Iterator[Member]:
    for m in graph.struct_members(ref):
        bit_offset = base_bits + m.bit_offset
        if flatten and not m.name:
            inner = resolve(graph, m.type)
            if graph.node(inner).kind in (Kind.STRUCT, Kind.UNION):
                # C cannot nest a struct in itself; corrupt input can, and the nesting
                # could multiply members without end
                key = graph.key(inner)
                if key in path or len(path) > MAX_NESTING:
                    raise graph.fail(inner, "anonymous members nest in a loop")
                yield from _members(graph, inner, bit_offset, flatten, [*path, key])
                continue
        size = graph.type_size(m.type)
        type_name = graph.type_name(m.type)
        if not m.bit_size:
            yield Member(m.name, bit_offset // 8, size, type_name)
        else:
            offset, bit = bitfield_unit(bit_offset, m.bit_size, size)
            yield Member(m.name, offset, size, type_name, bit, m.bit_size)


def bitfield_unit(bit_offset: int, bit_size: int, unit: int | None) -> tuple[int, int]:
    """Where pahole shows a bitfield (``164: 8  4``): the byte offset of the storage unit
    of the bitfield's type (``unit`` bytes) that holds it, and its first bit in there."""
    unit = unit or 1
    offset = bit_offset // (unit * 8) * unit
    if bit_offset + bit_size > (offset + unit) * 8:
        offset = bit_offset // 8  # a packed bitfield that straddles units
    return offset, bit_offset - offset * 8


# -- laying a struct out again -----------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    """The C ABI facts re-layout needs, from ``rules/arch/<arch>.toml``."""

    pointer_size: int
    long_size: int
    int_size: int
    pointer_align: int
    long_align: int
    long_long_align: int
    int_align: int
    # ____cacheline_aligned: the explicit alignment kernel structs ask for most
    cacheline: int

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Arch:
        align = data["alignment"]
        return cls(
            pointer_size=int(data["pointer_size"]),
            long_size=int(data["long_size"]),
            int_size=int(data["int_size"]),
            pointer_align=int(align["pointer"]),
            long_align=int(align["long"]),
            long_long_align=int(align["long_long"]),
            int_align=int(align["int"]),
            cacheline=int(align["cacheline"]),
        )


def natural_alignment(arch: Arch, m: Member) -> int:
    """The alignment C gives a member by its type alone, guessed from its C name and
    size: a layout read from BTF or a probe carries no alignments."""
    t = m.type_name
    if "*" in t:
        return arch.pointer_align
    if t.endswith("]"):
        element = t[: t.index("[")].strip()
        return natural_alignment(arch, Member("", 0, _scalar_size(arch, element), element))
    widest = max(arch.long_align, arch.long_long_align)
    # an unknown size counts as the widest scalar: aligning too much is the safe guess
    size = m.size or widest
    if t.startswith(("struct ", "union ")):
        return widest if size >= widest else arch.int_align
    return min(widest, 1 << (size.bit_length() - 1)) if size else 1


def _scalar_size(arch: Arch, t: str) -> int:
    if "char" in t or t in ("bool", "u8", "s8", "__u8"):
        return 1
    if "short" in t or t in ("u16", "s16"):
        return 2
    if "long" in t or t in ("size_t",):
        return arch.long_size
    if t in ("u64", "s64"):
        return 8
    return arch.int_size


def relayout(arch: Arch, layout: StructLayout, removed: set[str]) -> dict[str, int]:
    """The offsets of ``layout``'s members once ``removed`` are taken out.

    Each member keeps its natural alignment, and the explicit cache-line alignment that
    a gap in the real layout reveals (padding natural alignment cannot explain, ending on
    a cache-line boundary): ``____cacheline_aligned`` members stay aligned.
    """
    offsets: dict[str, int] = {}
    cursor, prev_end = 0, 0
    for m in layout.members:
        natural = natural_alignment(arch, m)
        gap = m.offset - prev_end
        align = natural
        if gap >= natural and m.offset % arch.cacheline == 0:
            align = arch.cacheline
        prev_end = m.offset + (m.size or 0)
        if m.name in removed:
            continue
        cursor = (cursor + align - 1) // align * align
        offsets[m.name] = cursor
        cursor += m.size or 0
    return offsets
