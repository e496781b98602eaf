"""A reader for BTF, the kernel's compact type format (include/uapi/linux/btf.h).

Why our own: no maintained Python reader exists, and the format is small. BTF is a
header, a type section (``struct btf_type`` records, each followed by kind-specific
data) and a string section. Type ids are implicit: the n-th record is id n, id 0 is
``void``. A module's ``.BTF`` is *split* BTF on top of vmlinux's: its ids continue after
the base's last id and its string offsets after the base's string section.

Speed: a kernel has over 100 000 types. The type section is read once into an array of
32-bit words plus the word offset of every record; names, sizes and layouts are
resolved only when asked for, so finding ``struct module`` costs one pass over the
records and the decoding of a few thousand struct names.

Every malformed input ends in :class:`BtfError` with the problem in words: offsets and
ids are checked where they are used, and reference chains are bounded so a loop in a
corrupt file cannot hang the reader.
"""

from __future__ import annotations

import mmap
import struct
import sys
from array import array
from collections.abc import Iterator
from typing import NamedTuple

from abicheck.ctypes_model import (
    MAX_RESOLVE_DEPTH,
    VARIADIC,
    CMember,
    CType,
    Kind,
    c_name,
    struct_layout,
)
from abicheck.model import StructLayout
from abicheck.readers.elf import ELFMAG, SHT_NOBITS, ElfImage

BTF_MAGIC = 0xEB9F
BTF_VERSION = 1
BTF_HEADER_SIZE = 24  # struct btf_header

BTF_KIND_UNKN = 0
BTF_KIND_INT = 1
BTF_KIND_PTR = 2
BTF_KIND_ARRAY = 3
BTF_KIND_STRUCT = 4
BTF_KIND_UNION = 5
BTF_KIND_ENUM = 6
BTF_KIND_FWD = 7
BTF_KIND_TYPEDEF = 8
BTF_KIND_VOLATILE = 9
BTF_KIND_CONST = 10
BTF_KIND_RESTRICT = 11
BTF_KIND_FUNC = 12
BTF_KIND_FUNC_PROTO = 13
BTF_KIND_VAR = 14
BTF_KIND_DATASEC = 15
BTF_KIND_FLOAT = 16
BTF_KIND_DECL_TAG = 17
BTF_KIND_TYPE_TAG = 18
BTF_KIND_ENUM64 = 19

KIND_NAMES = {
    BTF_KIND_UNKN: "UNKN",
    BTF_KIND_INT: "INT",
    BTF_KIND_PTR: "PTR",
    BTF_KIND_ARRAY: "ARRAY",
    BTF_KIND_STRUCT: "STRUCT",
    BTF_KIND_UNION: "UNION",
    BTF_KIND_ENUM: "ENUM",
    BTF_KIND_FWD: "FWD",
    BTF_KIND_TYPEDEF: "TYPEDEF",
    BTF_KIND_VOLATILE: "VOLATILE",
    BTF_KIND_CONST: "CONST",
    BTF_KIND_RESTRICT: "RESTRICT",
    BTF_KIND_FUNC: "FUNC",
    BTF_KIND_FUNC_PROTO: "FUNC_PROTO",
    BTF_KIND_VAR: "VAR",
    BTF_KIND_DATASEC: "DATASEC",
    BTF_KIND_FLOAT: "FLOAT",
    BTF_KIND_DECL_TAG: "DECL_TAG",
    BTF_KIND_TYPE_TAG: "TYPE_TAG",
    BTF_KIND_ENUM64: "ENUM64",
}

# 32-bit words after struct btf_type: a fixed part plus some per vlen item.
# INT: u32 encoding; ARRAY: struct btf_array; VAR: struct btf_var; DECL_TAG: struct
# btf_decl_tag; STRUCT/UNION: btf_member; ENUM: btf_enum; FUNC_PROTO: btf_param;
# DATASEC: btf_var_secinfo; ENUM64: btf_enum64.
_UNKNOWN = 1 << 40  # pushes the parse past the end, where the record is diagnosed
_FIXED_WORDS = [_UNKNOWN] * 32
_VLEN_WORDS = [0] * 32
for _kind in KIND_NAMES:
    if _kind != BTF_KIND_UNKN:
        _FIXED_WORDS[_kind] = 0
for _kind, _words in ((BTF_KIND_INT, 1), (BTF_KIND_ARRAY, 3), (BTF_KIND_VAR, 1)):
    _FIXED_WORDS[_kind] = _words
_FIXED_WORDS[BTF_KIND_DECL_TAG] = 1
for _kind, _words in (
    (BTF_KIND_STRUCT, 3),
    (BTF_KIND_UNION, 3),
    (BTF_KIND_ENUM, 2),
    (BTF_KIND_FUNC_PROTO, 2),
    (BTF_KIND_DATASEC, 3),
    (BTF_KIND_ENUM64, 3),
):
    _VLEN_WORDS[_kind] = _words

# Kinds whose size_or_type field is a size.
_SIZED = frozenset(
    {
        BTF_KIND_INT,
        BTF_KIND_STRUCT,
        BTF_KIND_UNION,
        BTF_KIND_ENUM,
        BTF_KIND_DATASEC,
        BTF_KIND_FLOAT,
        BTF_KIND_ENUM64,
    }
)
# Kinds that only qualify or rename another type: sizes and layouts look through them.
_MODIFIERS = frozenset(
    {
        BTF_KIND_TYPEDEF,
        BTF_KIND_VOLATILE,
        BTF_KIND_CONST,
        BTF_KIND_RESTRICT,
        BTF_KIND_TYPE_TAG,
    }
)
_QUALIFIERS = {
    BTF_KIND_CONST: "const",
    BTF_KIND_VOLATILE: "volatile",
    BTF_KIND_RESTRICT: "restrict",
}

# determine_ptr_size() in libbpf: BTF does not say how wide a pointer is, the C "long"
# of the same compilation does.
_LONG_NAMES = (
    "long int",
    "long unsigned int",
    "long",
    "unsigned long",
    "long signed int",
    "signed long",
    "unsigned long int",
    "signed long int",
)


class BtfError(ValueError):
    """The bytes are not BTF, or are corrupt or truncated BTF."""


class BtfHeader(NamedTuple):
    magic: int
    version: int
    flags: int
    hdr_len: int
    type_off: int
    type_len: int
    str_off: int
    str_len: int


class BtfType(NamedTuple):
    """One ``struct btf_type`` record, its info word split into its fields."""

    id: int
    name: str
    kind: int
    kind_flag: bool
    vlen: int
    size_or_type: int  # a size for INT, STRUCT, UNION, ENUM..., else a type id

    @property
    def kind_name(self) -> str:
        return KIND_NAMES.get(self.kind, str(self.kind))


class BtfMember(NamedTuple):
    """One ``struct btf_member`` with the bitfield encoding decoded."""

    name: str
    type: int
    bit_offset: int  # from the start of the struct
    bitfield_size: int  # 0: not a bitfield


class Btf:
    """One BTF blob, possibly split on top of a base.

    Build it with :meth:`from_bytes`, or :func:`btf_from_file` / :func:`btf_from_elf`.
    """

    def __init__(
        self,
        header: BtfHeader,
        endian: str,
        words: array,
        offsets: array,
        strings: bytes,
        base: Btf | None,
        ptr_size: int | None,
    ) -> None:
        self.header = header
        self.endian = endian  # "<" or ">"
        self.base = base
        self.start_id: int = base.start_id + len(base) if base else 1
        self.start_str_off: int = base.start_str_off + base.header.str_len if base else 0
        self._words = words
        self._offsets = offsets  # word offset of each record, for ids start_id...
        self._strings = strings
        self._ptr_size = ptr_size
        self._structs: dict[str, list[int]] | None = None
        self._names: dict[int, str] = {}
        self._members: dict[int, list[BtfMember]] = {}
        self.raw = b""  # the blob itself, set by from_bytes()

    def __len__(self) -> int:
        """Types in this blob, not counting void nor the base's types."""
        return len(self._offsets)

    @property
    def type_count(self) -> int:
        """The next free id: void, the base's types and this blob's types."""
        return self.start_id + len(self._offsets)

    # -- parsing -----------------------------------------------------------------------

    @classmethod
    def from_bytes(
        cls,
        data: bytes | bytearray | memoryview,
        base: Btf | None = None,
        ptr_size: int | None = None,
    ) -> Btf:
        """Parse raw BTF (a ``.BTF`` section, or ``/sys/kernel/btf/*``).

        ``base``: the vmlinux BTF when ``data`` is a module's split BTF. ``ptr_size``:
        pointer width in bytes when known (from the ELF class); else guessed like libbpf.
        """
        buf = memoryview(data).cast("B")
        header, endian = _read_header(buf)
        start = header.hdr_len
        types = buf[start + header.type_off : start + header.type_off + header.type_len]
        strings = bytes(buf[start + header.str_off : start + header.str_off + header.str_len])
        _check_strings(strings, base)
        words = array("I")
        if words.itemsize != 4:  # pragma: no cover - every Linux Python has a 4-byte "I"
            raise BtfError("this Python has no 32-bit array type")
        words.frombytes(types)
        if (endian == "<") != (sys.byteorder == "little"):
            words.byteswap()
        first_id = base.type_count if base else 1
        offsets = _index_types(words, first_id)
        btf = cls(header, endian, words, offsets, strings, base, ptr_size)
        btf.raw = bytes(buf[: start + header.str_off + header.str_len])  # for profiles
        return btf

    # -- records and strings ---------------------------------------------------------

    def _locate(self, type_id: int) -> tuple[Btf, int]:
        """The blob holding ``type_id`` and the word offset of its record."""
        btf = self
        while type_id < btf.start_id and btf.base is not None:
            btf = btf.base
        index = type_id - btf.start_id
        if index < 0 or index >= len(btf._offsets):
            hint = "" if self.base else " (corrupt, or split BTF read without its base)"
            raise BtfError(
                f"type id {type_id} is out of range: ids go from 1 to {self.type_count - 1}" + hint
            )
        return btf, btf._offsets[index]

    def string(self, name_off: int) -> str:
        """The string at ``name_off`` (offsets of a split blob continue the base's)."""
        btf = self
        while name_off < btf.start_str_off and btf.base is not None:
            btf = btf.base
        local = name_off - btf.start_str_off
        strings = btf._strings
        if local < 0 or local >= len(strings):
            raise BtfError(
                f"string offset {name_off} is beyond the string section "
                f"({btf.start_str_off + len(strings)} bytes)"
            )
        end = strings.find(b"\0", local)  # the section ends in NUL, checked at parse
        return strings[local:end].decode("utf-8", "backslashreplace")

    def _record(self, type_id: int) -> tuple[array, int, int, int]:
        """(words, offset, info, size_or_type) of the record of ``type_id``."""
        btf, o = self._locate(type_id)
        words = btf._words
        return words, o, words[o + 1], words[o + 2]

    def type(self, type_id: int) -> BtfType:
        if type_id == 0:
            return BtfType(0, "void", BTF_KIND_UNKN, False, 0, 0)
        btf, o = self._locate(type_id)
        name_off, info, size_or_type = btf._words[o : o + 3]
        return BtfType(
            type_id,
            self.string(name_off),
            info >> 24 & 0x1F,
            bool(info >> 31),
            info & 0xFFFF,
            size_or_type,
        )

    def kind(self, type_id: int) -> int:
        if type_id == 0:
            return BTF_KIND_UNKN
        return self._record(type_id)[2] >> 24 & 0x1F

    def name(self, type_id: int) -> str:
        """The record's own name: "" for anonymous types, "void" for id 0."""
        if type_id == 0:
            return "void"
        btf, o = self._locate(type_id)
        return self.string(btf._words[o])

    def _trailer(self, type_id: int, count: int) -> list[int]:
        """The ``count`` words after the record's struct btf_type."""
        words, o, _info, _size = self._record(type_id)
        return list(words[o + 3 : o + 3 + count])

    # -- lookup ---------------------------------------------------------------------

    def find_struct(self, name: str) -> int | None:
        """Type id of the struct or union ``name`` (forward declarations do not count).

        ``name`` may say ``"struct module"`` or ``"union foo"`` to want one kind. A split
        blob's own types are searched before its base's: a module that carries its own
        definition of a struct uses that one.
        """
        found = self.find_structs(name)
        return found[0] if found else None

    def find_structs(self, name: str) -> list[int]:
        """Every struct or union called ``name``, this blob's first, then the base's."""
        kinds: tuple[int, ...] = (BTF_KIND_STRUCT, BTF_KIND_UNION)
        if name.startswith("struct "):
            kinds, name = (BTF_KIND_STRUCT,), name[7:]
        elif name.startswith("union "):
            kinds, name = (BTF_KIND_UNION,), name[6:]
        found: list[int] = []
        btf: Btf | None = self
        while btf is not None:
            ids = btf._struct_index().get(name, ())
            found += [i for i in ids if btf.kind(i) in kinds]
            btf = btf.base
        return found

    def _struct_index(self) -> dict[str, list[int]]:
        # Built once, by the first lookup: decoding the names of the ~9 000 structs
        # and unions of a kernel is cheap, decoding all 100 000+ names is not needed.
        if self._structs is None:
            words, start = self._words, self.start_id
            index: dict[str, list[int]] = {}
            for i, o in enumerate(self._offsets):
                kind = words[o + 1] >> 24 & 0x1F
                if kind in (BTF_KIND_STRUCT, BTF_KIND_UNION) and words[o]:
                    index.setdefault(self.string(words[o]), []).append(start + i)
            self._structs = index
        return self._structs

    def find_by_name(self, name: str, kind: int | None = None) -> list[int]:
        """Every type called ``name`` (of ``kind`` if given): a slow full scan."""
        found: list[int] = []
        btf: Btf | None = self
        while btf is not None:
            words, start = btf._words, btf.start_id
            for i, o in enumerate(btf._offsets):
                if kind is not None and words[o + 1] >> 24 & 0x1F != kind:
                    continue
                if words[o] and btf.string(words[o]) == name:
                    found.append(start + i)
            btf = btf.base
        return found

    def functions(self) -> dict[str, int]:
        """Each FUNC's name → its FUNC_PROTO's id (a full scan; this blob, then its base)."""
        found: dict[str, int] = {}
        btf: Btf | None = self
        while btf is not None:
            words = btf._words
            for o in btf._offsets:
                if words[o + 1] >> 24 & 0x1F == BTF_KIND_FUNC and words[o]:
                    found.setdefault(btf.string(words[o]), words[o + 2])
            btf = btf.base
        return found

    def variables(self, prefix: str = "") -> dict[str, int]:
        """Each VAR of this blob whose name starts with ``prefix`` → its type's id."""
        found: dict[str, int] = {}
        words = self._words
        for o in self._offsets:
            if words[o + 1] >> 24 & 0x1F == BTF_KIND_VAR and words[o]:
                name = self.string(words[o])
                if name.startswith(prefix):
                    found.setdefault(name, words[o + 2])
        return found

    def proto_types(self, proto_id: int) -> list[int]:
        """The return type's id then each parameter's, of a FUNC_PROTO (``struct btf_param``
        records: name_off, type)."""
        words, o, info, ret = self._record(proto_id)
        if info >> 24 & 0x1F != BTF_KIND_FUNC_PROTO:
            return []
        vlen = info & 0xFFFF
        return [ret] + [words[o + 4 + 2 * i] for i in range(vlen)]

    def aggregate_of(self, type_id: int) -> str | None:
        """ "struct NAME" or "union NAME" that a type is, points to or is an array of
        (typedefs and qualifiers skipped); None for anything else or anonymous ones."""
        for _ in range(MAX_RESOLVE_DEPTH):
            type_id = self.resolve(type_id)
            if type_id == 0:
                return None
            words, o, info, size_or_type = self._record(type_id)
            kind = info >> 24 & 0x1F
            if kind == BTF_KIND_PTR:
                type_id = size_or_type
            elif kind == BTF_KIND_ARRAY:
                type_id = words[o + 3]
            elif kind in (BTF_KIND_STRUCT, BTF_KIND_UNION, BTF_KIND_FWD) and words[o]:
                union = kind == BTF_KIND_UNION or (kind == BTF_KIND_FWD and bool(info >> 31))
                return ("union " if union else "struct ") + self.string(words[o])
            else:
                return None
        return None

    # -- sizes ----------------------------------------------------------------------

    @property
    def ptr_size(self) -> int:
        if self._ptr_size is None:
            self._ptr_size = self.base.ptr_size if self.base else self._guess_ptr_size()
        return self._ptr_size

    def _guess_ptr_size(self) -> int:
        words = self._words
        wanted = {self.start_str_off + at for at in _string_offsets(self._strings, _LONG_NAMES)}
        if wanted:
            for o in self._offsets:
                kind = words[o + 1] >> 24 & 0x1F
                if words[o] in wanted and kind == BTF_KIND_INT and words[o + 2] in (4, 8):
                    return words[o + 2]
        # no "long" among the types: assume the 64-bit kernels abicheck is used with
        return 8

    def resolve(self, type_id: int) -> int:
        """Skip typedefs, const, volatile, restrict and type tags."""
        for _ in range(MAX_RESOLVE_DEPTH):
            if type_id == 0:
                return 0
            _words, _o, info, size_or_type = self._record(type_id)
            if info >> 24 & 0x1F not in _MODIFIERS:
                return type_id
            type_id = size_or_type
        raise BtfError(f"type id {type_id}: reference chain longer than {MAX_RESOLVE_DEPTH}")

    def type_size(self, type_id: int) -> int | None:
        """Size in bytes, as sizeof() would say; None for void, functions, forwards."""
        factor = 1
        start = type_id
        for _ in range(MAX_RESOLVE_DEPTH):
            if type_id == 0:
                return None
            words, o, info, size_or_type = self._record(type_id)
            kind = info >> 24 & 0x1F
            if kind in _SIZED:
                return factor * size_or_type
            if kind == BTF_KIND_PTR:
                return factor * self.ptr_size
            if kind in _MODIFIERS or kind == BTF_KIND_VAR:
                type_id = size_or_type
            elif kind == BTF_KIND_ARRAY:
                # struct btf_array: type, index_type, nelems
                factor *= words[o + 5]
                type_id = words[o + 3]
            else:
                return None
        raise BtfError(f"type id {start}: reference chain longer than {MAX_RESOLVE_DEPTH}")

    # -- the C type model (abicheck.ctypes_model builds names and layouts from these) ---

    format = "BTF"

    def node(self, type_id: int) -> CType[int]:
        """The type as the C type model knows it."""
        if type_id == 0:
            return CType(Kind.VOID)
        words, o, info, size_or_type = self._record(type_id)
        kind, kind_flag = info >> 24 & 0x1F, info >> 31
        name = self.string(words[o])
        if kind in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            return CType(Kind.STRUCT if kind == BTF_KIND_STRUCT else Kind.UNION, name, size_or_type)
        if kind in (BTF_KIND_ENUM, BTF_KIND_ENUM64):
            return CType(Kind.ENUM, name, size_or_type)
        if kind == BTF_KIND_FWD:
            return CType(Kind.FWD, name, keyword=_tag_keyword(kind, kind_flag))
        if kind == BTF_KIND_PTR:
            return CType(Kind.POINTER, target=size_or_type)
        if kind == BTF_KIND_TYPEDEF:
            return CType(Kind.TYPEDEF, name, target=size_or_type)
        if kind in _QUALIFIERS:
            return CType(Kind.QUALIFIER, target=size_or_type, qualifier=_QUALIFIERS[kind])
        if kind == BTF_KIND_TYPE_TAG:
            return CType(Kind.TAG, name, target=size_or_type)
        if kind == BTF_KIND_ARRAY:
            elem_type, _index_type, nelems = words[o + 3 : o + 6]
            return CType(Kind.ARRAY, target=elem_type, dims=(nelems,))
        if kind == BTF_KIND_FUNC_PROTO:
            vlen = info & 0xFFFF
            # btf_param: name_off, type; type 0 is the "..." of a variadic function
            params = tuple(t or VARIADIC for t in self._trailer(type_id, 2 * vlen)[1::2])
            return CType(Kind.FUNCTION, target=size_or_type, params=params)
        size = size_or_type if kind in _SIZED else None
        # INT and FLOAT; FUNC, VAR, DATASEC, DECL_TAG are named things, not member types
        return CType(Kind.BASE, name, size)

    def key(self, type_id: int) -> int:
        return type_id

    def fail(self, type_id: int, problem: str) -> BtfError:
        return BtfError(f"type id {type_id}: {problem}")

    def type_name(self, type_id: int) -> str:
        """A C-like name: ``unsigned int``, ``struct list_head``, ``char[56]``,
        ``const char *``, ``int (*)(void)``, ``union {...}`` for an anonymous union."""
        name = self._names.get(type_id)
        if name is None:
            name = self._names[type_id] = c_name(self, type_id)
        return name

    def struct_members(self, type_id: int) -> Iterator[CMember[int]]:
        for m in self.members(type_id):
            yield CMember(m.name, m.type, m.bit_offset, m.bitfield_size)

    # -- structs ----------------------------------------------------------------------

    def members(self, type_id: int) -> list[BtfMember]:
        """The members of a struct or union, bit offsets from its start."""
        found = self._members.get(type_id)
        if found is None:
            found = self._members[type_id] = self._read_members(type_id)
        return list(found)

    def _read_members(self, type_id: int) -> list[BtfMember]:
        words, o, info, _size = self._record(type_id)
        kind = info >> 24 & 0x1F
        if kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raise BtfError(f"type id {type_id} is a {KIND_NAMES.get(kind)}, not a struct/union")
        kind_flag, vlen = info >> 31, info & 0xFFFF
        out = []
        for at in range(o + 3, o + 3 + 3 * vlen, 3):
            name_off, member_type, offset = words[at : at + 3]
            if kind_flag:
                # kind_flag set: bitfield size in the top 8 bits, bit offset below
                bit_offset, bitfield_size = offset & 0xFFFFFF, offset >> 24
            else:
                bit_offset, bitfield_size = offset, 0
                extra_offset, bitfield_size = self._int_bitfield(member_type)
                bit_offset += extra_offset
            out.append(BtfMember(self.string(name_off), member_type, bit_offset, bitfield_size))
        return out

    def _int_bitfield(self, type_id: int) -> tuple[int, int]:
        """Before kind_flag, bitfields were INT types with their own offset and width
        (BTF_INT_OFFSET, BTF_INT_BITS): (extra bit offset, bitfield size or 0)."""
        type_id = self.resolve(type_id)
        if type_id == 0:
            return 0, 0
        words, o, info, size = self._record(type_id)
        if info >> 24 & 0x1F != BTF_KIND_INT:
            return 0, 0
        encoding = words[o + 3]
        int_offset, int_bits = encoding >> 16 & 0xFF, encoding & 0xFF
        if int_offset == 0 and int_bits == size * 8:
            return 0, 0
        return int_offset, int_bits

    def struct_layout(
        self, name_or_id: str | int, source: str, flatten: bool = False
    ) -> StructLayout:
        """Every member of a struct or union with offset, size and C type name.

        ``flatten``: replace anonymous struct/union members by their members, offsets
        made relative to the outer struct, as C lets code name them (``mod->exit`` works
        whether or not ``exit`` sits in an anonymous union).

        The layout's name is the struct's tag (``module``), "" for an anonymous one.
        Bitfields, like pahole's ``164: 8  4``: ``offset`` and ``size`` are those of the
        storage unit of the member's type that holds the bits, ``bit_offset`` counts
        bits from that unit's start and ``bit_size`` is the bitfield's width.
        """
        if isinstance(name_or_id, str):
            type_id = self.find_struct(name_or_id)
            if type_id is None:
                raise BtfError(f"no struct or union named {name_or_id!r} in this BTF")
        else:
            type_id = self.resolve(name_or_id)
        btf_type = self.type(type_id)
        if btf_type.kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            raise BtfError(f"type id {type_id} is a {btf_type.kind_name}, not a struct/union")
        return struct_layout(self, type_id, source, flatten)


# -- helpers -----------------------------------------------------------------------------


def _read_header(buf: memoryview) -> tuple[BtfHeader, str]:
    if len(buf) < BTF_HEADER_SIZE:
        raise BtfError(f"{len(buf)} bytes: too short for a BTF header ({BTF_HEADER_SIZE} bytes)")
    magic_bytes = bytes(buf[:2])
    if magic_bytes == b"\x9f\xeb":
        endian = "<"
    elif magic_bytes == b"\xeb\x9f":
        endian = ">"
    else:
        raise BtfError(f"bad magic {magic_bytes.hex()}: not BTF (BTF starts with 0xeB9F)")
    header = BtfHeader(*struct.unpack_from(endian + "HBBIIIII", buf, 0))
    if header.version != BTF_VERSION:
        raise BtfError(f"BTF version {header.version}, only version {BTF_VERSION} exists")
    if header.hdr_len < BTF_HEADER_SIZE:
        raise BtfError(f"hdr_len {header.hdr_len} is smaller than struct btf_header")
    if header.hdr_len > len(buf):
        raise BtfError(f"truncated: hdr_len {header.hdr_len} but only {len(buf)} bytes")
    if header.type_off % 4:
        raise BtfError(f"type_off {header.type_off} is not 4-byte aligned")
    if header.type_len % 4:
        raise BtfError(f"type_len {header.type_len} is not a multiple of 4")
    for what, off, length in (
        ("type", header.type_off, header.type_len),
        ("string", header.str_off, header.str_len),
    ):
        end = header.hdr_len + off + length
        if end > len(buf):
            raise BtfError(
                f"truncated: the {what} section ends at byte {end}, the data has {len(buf)}"
            )
    return header, endian


def _check_strings(strings: bytes, base: Btf | None) -> None:
    if not strings:
        if base is None:
            raise BtfError("empty string section (a BTF string section starts with NUL)")
        return
    if strings[-1] != 0:
        raise BtfError("the string section does not end with NUL: corrupt or truncated")
    if base is None and strings[0] != 0:
        # libbpf's btf_parse_str_sec() makes the same check: only split BTF, whose
        # offsets continue the base's, may start with a non-empty string
        raise BtfError(
            "the string section does not start with an empty string: split BTF "
            "(a module's .BTF)? pass the vmlinux BTF as base"
        )


def _index_types(words: array, first_id: int) -> array:
    """The word offset of every struct btf_type record, in id order."""
    fixed, per_item = _FIXED_WORDS, _VLEN_WORDS
    offsets = array("I")
    append = offsets.append
    total, pos = len(words), 0
    try:
        while pos < total:
            append(pos)
            info = words[pos + 1]
            kind = info >> 24 & 0x1F
            pos += 3 + fixed[kind] + (info & 0xFFFF) * per_item[kind]
    except IndexError:
        pos = total + 1  # a record header cut short: diagnosed below
    if pos != total:
        _diagnose_last(words, offsets, first_id)
    return offsets


def _diagnose_last(words: array, offsets: array, first_id: int) -> None:
    type_id, o = first_id + len(offsets) - 1, offsets[-1]
    if o + 3 > len(words):
        raise BtfError(f"truncated: type id {type_id} is cut short at the type section's end")
    kind = words[o + 1] >> 24 & 0x1F
    if _FIXED_WORDS[kind] == _UNKNOWN:
        raise BtfError(f"type id {type_id}: unknown BTF kind {kind} (corrupt, or newer BTF)")
    raise BtfError(
        f"truncated: type id {type_id} ({KIND_NAMES[kind]}, vlen {words[o + 1] & 0xFFFF}) "
        "runs past the end of the type section"
    )


def _string_offsets(strings: bytes, names: tuple[str, ...]) -> set[int]:
    found = set()
    for name in names:
        needle = b"\0" + name.encode() + b"\0"
        at = strings.find(needle)
        while at >= 0:
            found.add(at + 1)
            at = strings.find(needle, at + 1)
    return found


def _tag_keyword(kind: int, kind_flag: int) -> str:
    if kind in (BTF_KIND_ENUM, BTF_KIND_ENUM64):
        return "enum"
    # a FWD's kind_flag says whether it declares a union
    if kind == BTF_KIND_UNION or (kind == BTF_KIND_FWD and kind_flag):
        return "union"
    return "struct"


# -- files -------------------------------------------------------------------------------


def btf_from_elf(path: str, base: Btf | None = None) -> Btf:
    """The ``.BTF`` section of an ELF file (vmlinux, a BTF-only vmlinux, a module)."""
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return btf_from_elf_bytes(buf, base, path)
    except (OSError, ValueError) as e:
        if isinstance(e, BtfError):
            raise
        # mmap of an empty file is a ValueError
        raise BtfError(f"{path}: cannot read: {getattr(e, 'strerror', None) or e}") from None


def btf_from_elf_bytes(
    data: bytes | mmap.mmap, base: Btf | None = None, name: str = "ELF image"
) -> Btf:
    # The project's own section-table reader: it never raises on a malformed file, and
    # reads only the section table of a 60 MiB vmlinux.
    image = ElfImage(data, len(data))
    if image.header is None:
        raise BtfError(f"{name}: not a readable ELF file")
    sections = [s for s in image.find(".BTF") if s.sh_type != SHT_NOBITS]
    if not sections:
        raise BtfError(f"{name}: no .BTF section (kernel built without CONFIG_DEBUG_INFO_BTF?)")
    sec = sections[0]
    if not image.readable(sec):
        raise BtfError(f"{name}: the .BTF section lies beyond the end of the file: truncated")
    ptr_size = 8 if image.header.ei_class == 2 else 4
    # a copy, not a view: a view would keep an mmap from closing while a BtfError's
    # traceback lives
    section = data[sec.sh_offset : sec.sh_offset + sec.sh_size]
    try:
        return Btf.from_bytes(section, base, ptr_size)
    except BtfError as e:
        raise BtfError(f"{name}: .BTF: {e}") from None


def btf_from_file(path: str, base: Btf | None = None) -> Btf:
    """BTF from raw BTF (``/sys/kernel/btf/vmlinux``), an ELF file, a compressed module
    (.ko.xz, .ko.gz, .ko.zst) or a vmlinuz; ``base`` for a module's split BTF."""
    from abicheck.errors import ModuleReadError
    from abicheck.readers.compressed import read_module_bytes, sniff
    from abicheck.readers.vmlinuz import VmlinuzError, extract_vmlinux

    try:
        with open(path, "rb") as f:
            head = f.read(0x210)
    except OSError as e:
        raise BtfError(f"{path}: cannot read: {e.strerror or e}") from None
    if head[:2] in (b"\x9f\xeb", b"\xeb\x9f"):
        with open(path, "rb") as f:
            data = f.read()
        try:
            return Btf.from_bytes(data, base)
        except BtfError as e:
            raise BtfError(f"{path}: {e}") from None
    if head[:4] == ELFMAG:
        return btf_from_elf(path, base)
    if head[0x202:0x206] == b"HdrS":  # an x86 bzImage
        with open(path, "rb") as f:
            data = f.read()
        try:
            return btf_from_elf_bytes(extract_vmlinux(data), base, path)
        except VmlinuzError as e:
            raise BtfError(f"{path}: {e}") from None
    if head[:2] == b"MZ" or head[0x38:0x3C] == b"ARM\x64" or head[:3] == b"\x1f\x8b\x08":
        # arm64: a raw Image (Debian), an EFI zboot image, or an Image.gz
        from abicheck.readers.vmlinuz import arm64_image, btf_in_image

        with open(path, "rb") as f:
            data = f.read()
        try:
            image = arm64_image(data)
        except VmlinuzError as e:
            raise BtfError(f"{path}: {e}") from None
        if image is not None:
            blob = btf_in_image(image)
            if blob is None:
                raise BtfError(f"{path}: an arm64 Image without BTF (CONFIG_DEBUG_INFO_BTF)")
            try:
                return Btf.from_bytes(blob, base)
            except BtfError as e:
                raise BtfError(f"{path}: {e}") from None
    if sniff(head) is not None:
        try:
            raw = read_module_bytes(path)
        except ModuleReadError as e:
            raise BtfError(str(e)) from None
        if raw.data[:4] == ELFMAG:
            return btf_from_elf_bytes(raw.data, base, path)
    raise BtfError(f"{path}: not BTF, an ELF file, a compressed module or a vmlinuz")
