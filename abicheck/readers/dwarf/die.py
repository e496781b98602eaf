"""Walking DIEs forward only and bounded, and reading their attributes: the helpers
the type builder, the module index and the vmlinux lookup share."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, cast

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE, AttributeValue
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DWARFInfo

from abicheck.ctypes_model import Kind
from abicheck.readers.dwarf.sections import DwarfError

if TYPE_CHECKING:  # .debug_types is never read; the type is for the annotations
    from elftools.dwarf.typeunit import TypeUnit

_STRUCT_TAGS = frozenset({"DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_class_type"})
_QUALIFIERS = {
    "DW_TAG_const_type": "const",
    "DW_TAG_volatile_type": "volatile",
    "DW_TAG_restrict_type": "restrict",
    "DW_TAG_atomic_type": "_Atomic",
}
# Tags that only rename or qualify another type: sizes and layouts look through them.
_MODIFIERS = frozenset({"DW_TAG_typedef", *_QUALIFIERS})
_PARAM = "DW_TAG_formal_parameter"
_KINDS = {
    "DW_TAG_structure_type": Kind.STRUCT,
    "DW_TAG_class_type": Kind.STRUCT,
    "DW_TAG_union_type": Kind.UNION,
    "DW_TAG_enumeration_type": Kind.ENUM,
}
_POINTERS = frozenset(
    {"DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"}
)

# DW_AT_specification / DW_AT_abstract_origin chains: a definition points to its
# declaration, an out-of-line copy to its abstract instance; two steps in practice.
_MAX_ORIGIN_DEPTH = 8

_DATA_BITS = {"DW_FORM_data1": 8, "DW_FORM_data2": 16, "DW_FORM_data4": 32, "DW_FORM_data8": 64}

DW_OP_constu = 0x10
DW_OP_plus_uconst = 0x23


# -- DIE helpers -------------------------------------------------------------------------


def _children(die: DIE) -> Iterator[DIE]:
    """A DIE's children, walked forward only.

    pyelftools' own iter_children() follows DW_AT_sibling wherever it points; a corrupt
    sibling pointing backwards would loop for ever. Here a sibling is followed only
    forward and inside the unit, else the subtree is skipped DIE by DIE.
    """
    if not die.has_children:
        return
    cu = die.cu
    end = cu.cu_offset + cu.size
    pos = die.offset + die.size
    while True:
        child = _die_at(cu, pos, end)
        if child.is_null():
            return
        yield child
        pos = _next_sibling(child, end)


def _die_at(cu: CompileUnit | TypeUnit, pos: int, end: int) -> DIE:
    if pos >= end:
        raise DwarfError(
            f"DIEs run past the end of the compilation unit at {cu.cu_offset:#x}: truncated"
        )
    return cu.get_DIE_from_refaddr(pos)


def _next_sibling(die: DIE, end: int) -> int:
    pos = die.offset + die.size
    if not die.has_children:
        return pos
    sibling = die.attributes.get("DW_AT_sibling")
    if sibling is not None and sibling.form != "DW_FORM_ref_addr":
        target = sibling.value + die.cu.cu_offset
        if pos <= target < end:
            return target
    depth = 1
    while depth:
        inner = _die_at(die.cu, pos, end)
        if inner.is_null():
            depth -= 1
        elif inner.has_children:
            depth += 1
        pos = inner.offset + inner.size
    return pos


def _origin(die: DIE) -> DIE | None:
    """The DIE this one completes: a definition's declaration, a concrete instance's
    abstract one."""
    for attr in ("DW_AT_specification", "DW_AT_abstract_origin"):
        if attr in die.attributes:
            return die.get_DIE_from_attribute(attr)
    return None


def _holder(die: DIE, attr: str) -> DIE | None:
    """The DIE that has ``attr``: this one, or the declaration or abstract instance
    behind it."""
    for _ in range(_MAX_ORIGIN_DEPTH):
        if attr in die.attributes:
            return die
        origin = _origin(die)
        if origin is None:
            return None
        die = origin
    return None


def _inherited(die: DIE, attr: str) -> AttributeValue | None:
    holder = _holder(die, attr)
    return None if holder is None else holder.attributes[attr]


def _name(die: DIE) -> str:
    attr = _inherited(die, "DW_AT_name")
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _own_name(die: DIE) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _type(die: DIE) -> DIE | None:
    """The DIE's DW_AT_type; None is void."""
    if "DW_AT_type" not in die.attributes:
        return None
    return die.get_DIE_from_attribute("DW_AT_type")


def _is_declaration(die: DIE) -> bool:
    return bool(
        die.attributes.get("DW_AT_declaration") and die.attributes["DW_AT_declaration"].value
    )


def _is_complete_struct(die: DIE) -> bool:
    return (
        die.tag in _STRUCT_TAGS and not _is_declaration(die) and "DW_AT_byte_size" in die.attributes
    )


def _struct_key(die: DIE) -> str:
    keyword = "union" if die.tag == "DW_TAG_union_type" else "struct"
    return f"{keyword} {_own_name(die)}"


def _split_struct_name(name: str) -> tuple[frozenset[str], str]:
    """("struct module" | "union foo" | "module") -> (tags to accept, bare name)."""
    if name.startswith("struct "):
        return frozenset({"DW_TAG_structure_type", "DW_TAG_class_type"}), name[7:]
    if name.startswith("union "):
        return frozenset({"DW_TAG_union_type"}), name[6:]
    return _STRUCT_TAGS, name


def _uleb(data: list[int] | bytes, at: int) -> int:
    value = shift = 0
    for byte in data[at:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value
    raise DwarfError("truncated LEB128 in a location expression")


def _member_location(die: DIE) -> int:
    """DW_AT_data_member_location in bytes: a constant (DWARF 3+), or the DWARF 2
    expression ``DW_OP_plus_uconst N``; absent for union members, which sit at 0."""
    attr = die.attributes.get("DW_AT_data_member_location")
    if attr is None:
        return 0
    value = attr.value
    if isinstance(value, int):
        return value
    if value and value[0] in (DW_OP_plus_uconst, DW_OP_constu):
        return _uleb(value, 1)
    raise DwarfError(f"DIE {die.offset:#x}: unsupported DW_AT_data_member_location {value!r}")


def _signed(attr: AttributeValue) -> int:
    """A constant that may be negative although stored in an unsigned data form
    (DW_AT_bit_offset of DWARF 2/3)."""
    value = attr.value
    bits = _DATA_BITS.get(attr.form)
    if bits and value >> (bits - 1):
        value -= 1 << bits
    return value


def _upper_bound(attr: AttributeValue) -> int:
    # GCC writes x[0] as DW_AT_count 0; older GCCs wrote an upper bound of -1, in a
    # 4- or 8-byte form. A 1- or 2-byte form holds a real bound: 255 is x[256].
    bits = _DATA_BITS.get(attr.form, 0)
    if bits >= 32 and attr.value == (1 << bits) - 1:
        return -1
    return attr.value


def _units(dwarf: DWARFInfo, name: str) -> Iterator[CompileUnit]:
    """Compilation units in order, each checked to lie inside .debug_info."""
    for cu in dwarf.iter_CUs():
        # iter_CUs() reads .debug_info, so it is there
        _check_unit(cu, cast(DebugSectionDescriptor, dwarf.debug_info_sec).size, name)
        yield cu


def _check_unit(cu: CompileUnit, section_size: int, name: str) -> None:
    version = cu["version"]
    if not 2 <= version <= 5:
        raise DwarfError(
            f"{name}: compilation unit at {cu.cu_offset:#x}: DWARF version {version} "
            "(corrupt, or not DWARF 2 to 5)"
        )
    if cu.cu_offset + cu.size > section_size:
        raise DwarfError(
            f"{name}: compilation unit at {cu.cu_offset:#x} claims {cu.size} bytes, "
            f"past the end of .debug_info ({section_size} bytes): truncated"
        )
    if cu["address_size"] not in (4, 8):
        raise DwarfError(
            f"{name}: compilation unit at {cu.cu_offset:#x}: address size {cu['address_size']}"
        )
