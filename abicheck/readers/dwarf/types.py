"""The DWARF builder of :mod:`abicheck.ctypes_model`: type DIEs as C type nodes,
their sizes, and struct layouts through the one model."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice
from typing import cast

from elftools.dwarf.die import DIE

from abicheck.ctypes_model import (
    MAX_NESTING,
    MAX_RESOLVE_DEPTH,
    NAME_BUDGET,
    VARIADIC,
    CMember,
    CType,
    Kind,
    Variadic,
    c_name,
    struct_layout,
)
from abicheck.model import StructLayout
from abicheck.readers.dwarf.die import (
    _KINDS,
    _MODIFIERS,
    _POINTERS,
    _QUALIFIERS,
    _STRUCT_TAGS,
    _children,
    _is_complete_struct,
    _is_declaration,
    _member_location,
    _own_name,
    _signed,
    _type,
    _upper_bound,
)
from abicheck.readers.dwarf.sections import DwarfError

# -- types ---------------------------------------------------------------------------------


class _Types:
    """C names, sizes and layouts of type DIEs, cached by DIE offset."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._names: dict[int, str] = {}
        self._sizes: dict[int, int | None] = {}

    # sizes

    def resolve(self, die: DIE | None) -> DIE | None:
        """Skip typedefs and qualifiers."""
        for _ in range(MAX_RESOLVE_DEPTH):
            if die is None or die.tag not in _MODIFIERS:
                return die
            die = _type(die)
        # not None: the loop returns on None
        raise DwarfError(
            f"DIE {cast(DIE, die).offset:#x}: type chain longer than {MAX_RESOLVE_DEPTH}"
        )

    def size(self, die: DIE | None) -> int | None:
        """Size in bytes as sizeof() says; None for void, functions, declarations."""
        if die is None:
            return None
        if die.offset not in self._sizes:
            self._sizes[die.offset] = self._size(die)
        return self._sizes[die.offset]

    def _size(self, die: DIE | None) -> int | None:
        factor = 1
        start = die
        for _ in range(MAX_RESOLVE_DEPTH):
            if die is None:
                return None
            tag = die.tag
            if tag in _STRUCT_TAGS or tag in ("DW_TAG_base_type", "DW_TAG_enumeration_type"):
                if _is_declaration(die) or "DW_AT_byte_size" not in die.attributes:
                    return None
                return factor * die.attributes["DW_AT_byte_size"].value
            if tag in _POINTERS or tag == "DW_TAG_ptr_to_member_type":
                size = die.attributes.get("DW_AT_byte_size")
                return factor * (size.value if size else die.cu["address_size"])
            if tag in _MODIFIERS:
                die = _type(die)
            elif tag == "DW_TAG_array_type":
                for count in self.dimensions(die):
                    factor *= count
                die = _type(die)
            else:
                return None
        # not None: size() calls this with a DIE
        raise DwarfError(
            f"DIE {cast(DIE, start).offset:#x}: type chain longer than {MAX_RESOLVE_DEPTH}"
        )

    def dimensions(self, array: DIE) -> list[int]:
        """Element counts of each DW_TAG_subrange_type, outermost first; 0 for a
        flexible or variable-length array, as BTF has it."""
        counts = []
        for sub in islice(_children(array), MAX_NESTING + 1):
            if sub.tag not in ("DW_TAG_subrange_type", "DW_TAG_enumeration_type"):
                continue
            count = sub.attributes.get("DW_AT_count")
            upper = sub.attributes.get("DW_AT_upper_bound")
            lower = sub.attributes.get("DW_AT_lower_bound")
            if count is not None and isinstance(count.value, int):
                counts.append(max(count.value, 0))
            elif upper is not None and isinstance(upper.value, int) and "ref" not in upper.form:
                low = lower.value if lower is not None and isinstance(lower.value, int) else 0
                counts.append(max(_upper_bound(upper) - low + 1, 0))
            else:
                counts.append(0)
        if len(counts) > MAX_NESTING:
            raise DwarfError(f"DIE {array.offset:#x}: more than {MAX_NESTING} dimensions")
        return counts or [0]

    # the C type model (abicheck.ctypes_model builds names and layouts from these)

    format = "DWARF"

    def node(self, die: DIE | None) -> CType[DIE | None]:
        """The type as the C type model knows it."""
        if die is None:
            return CType(Kind.VOID)
        tag = die.tag
        if tag == "DW_TAG_typedef":
            return CType(Kind.TYPEDEF, _own_name(die), target=_type(die))
        if tag in _STRUCT_TAGS or tag in ("DW_TAG_base_type", "DW_TAG_enumeration_type"):
            size = die.attributes.get("DW_AT_byte_size")
            known = size.value if size is not None and not _is_declaration(die) else None
            return CType(_KINDS.get(tag, Kind.BASE), _own_name(die), known)
        if tag in _POINTERS:
            return CType(Kind.POINTER, target=_type(die))
        if tag in _QUALIFIERS:
            return CType(Kind.QUALIFIER, target=_type(die), qualifier=_QUALIFIERS[tag])
        if tag == "DW_TAG_array_type":
            return CType(Kind.ARRAY, target=_type(die), dims=tuple(self.dimensions(die)))
        if tag == "DW_TAG_subroutine_type":
            return CType(Kind.FUNCTION, target=_type(die), params=self._params(die))
        if tag == "DW_TAG_unspecified_type":
            return CType(Kind.BASE, _own_name(die))
        # what C has no declarator for (DW_TAG_ptr_to_member_type): known by its tag
        return CType(Kind.BASE, _own_name(die) or cast(str, tag))  # a DIE's tag is a name

    def _params(self, proto: DIE) -> tuple[DIE | Variadic | None, ...]:
        params: list[DIE | Variadic | None] = []
        for param in islice(_children(proto), NAME_BUDGET + 1):
            if param.tag == "DW_TAG_formal_parameter":
                params.append(_type(param))
            elif param.tag == "DW_TAG_unspecified_parameters":
                params.append(VARIADIC)
        if len(params) > NAME_BUDGET:
            raise DwarfError(f"DIE {proto.offset:#x}: too many parameters (corrupt DWARF?)")
        return tuple(params)

    def key(self, die: DIE | None) -> int:
        return die.offset if die is not None else -1

    def fail(self, die: DIE | None, problem: str) -> DwarfError:
        where = f"DIE {die.offset:#x}" if die is not None else "a type"
        return DwarfError(f"{where}: {problem}")

    def type_size(self, die: DIE | None) -> int | None:
        return self.size(die)

    def type_name(self, die: DIE | None) -> str:
        return self.name(die)

    def name(self, die: DIE | None) -> str:
        """A C-like name: ``unsigned int``, ``struct list_head``, ``char[56]``,
        ``const char *``, ``int (*)(void)``, ``union {...}`` for an anonymous union."""
        key = self.key(die)
        found = self._names.get(key)
        if found is None:
            found = self._names[key] = c_name(self, die)
        return found

    # layouts

    def layout(self, die: DIE, flatten: bool = False) -> StructLayout:
        """Every member of a struct or union with offset, size and C type name.

        ``flatten``: replace anonymous struct/union members by their members, offsets
        made relative to the outer struct, as C lets code name them.
        """
        if not _is_complete_struct(die):
            raise DwarfError(f"DIE {die.offset:#x} is not a complete struct or union")
        return struct_layout(self, die, self.source, flatten)

    def struct_members(self, die: DIE | None) -> Iterator[CMember[DIE | None]]:
        for child in _children(cast(DIE, die)):  # the model asks only of structs
            if child.tag != "DW_TAG_member":
                continue  # nested type definitions, static members
            member_type = _type(child)
            bit_size = child.attributes.get("DW_AT_bit_size")
            yield CMember(
                _own_name(child),
                member_type,
                self._bit_offset(child, member_type),
                bit_size.value if bit_size is not None else 0,
            )

    def _bit_offset(self, member: DIE, member_type: DIE | None) -> int:
        """Bits from the start of the struct to the member's first bit."""
        attrs = member.attributes
        if "DW_AT_data_bit_offset" in attrs:  # DWARF 4+: counted from the struct's start
            return attrs["DW_AT_data_bit_offset"].value
        location = _member_location(member) * 8
        if "DW_AT_bit_offset" not in attrs or "DW_AT_bit_size" not in attrs:
            return location
        # DWARF 2/3: bits from the most significant bit of a storage unit of
        # DW_AT_byte_size bytes at the member location
        unit = attrs["DW_AT_byte_size"].value if "DW_AT_byte_size" in attrs else None
        unit = unit or self.size(member_type) or 0
        msb_offset = _signed(attrs["DW_AT_bit_offset"])
        if not member.dwarfinfo.config.little_endian:
            return location + msb_offset
        return location + unit * 8 - msb_offset - attrs["DW_AT_bit_size"].value
