"""Struct layouts from DWARF: a module's own debug info, and a debug vmlinux.

A module built with CONFIG_DEBUG_INFO carries the layouts its compiler saw: the
``struct module`` of ``__this_module`` (defined in the ``*.mod.c`` compilation unit),
and every struct its code touched. Comparing them with the kernel's layouts (BTF, or a
debug vmlinux read here) finds modules built against headers whose .config drifted.

pyelftools parses the DIEs; two things around it are our own, for speed:

* Relocations. A module is ET_REL: its ``.debug_info`` holds zeros where string and
  section offsets go, and ``.rela.debug_info`` fills them in. pyelftools applies them one
  construct-parsed entry at a time (0.9 s of the 1.1 s it takes to read dummy.ko's 130 kB
  .debug_info); applying them here with ``struct`` takes milliseconds, and only to the
  sections actually read. A linked vmlinux (ET_EXEC) is never relocated: Debian's keeps
  11 million ``.rela.debug_info`` entries from ``--emit-relocs`` whose values are
  already in place.
* Section access. ``ELFFile.get_dwarf_info()`` copies every debug section into memory
  (0.7 s and 350 MB for Debian's vmlinux); here pyelftools reads through a window on the
  mapped file instead, so only the pages the walk touches are read. SHF_COMPRESSED
  sections (CONFIG_DEBUG_INFO_COMPRESSED) are decompressed on first read.

Output has the shape of :mod:`abicheck.readers.btf`: the same C type names (``unsigned
int``, ``struct list_head``, ``char[56]``, ``void (*)(void)``, ``union {...}``), bitfields
as the storage unit's offset and size plus ``bit_offset`` within it and ``bit_size``,
anonymous members named "" unless flattened.

Corrupt input ends in :class:`DwarfError` naming the file and the problem: pyelftools
raises whatever its parser hits (construct errors, KeyError, AssertionError ...), so its
calls are wrapped, and the walks here only move forward, are bounded, and check offsets,
so a loop in a corrupt file cannot hang the reader.
"""

from __future__ import annotations

import io
import mmap
import os
import posixpath
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import islice
from typing import IO, TYPE_CHECKING, cast

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError
from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE, AttributeValue
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DwarfConfig, DWARFInfo

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
from abicheck.errors import ModuleReadError
from abicheck.model import Section, StructLayout
from abicheck.readers.compressed import DEFAULT_LIMIT, decompress, read_module_bytes, sniff
from abicheck.readers.elf import (
    ELFMAG,
    ET_REL,
    SHN_ABS,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    SHT_SYMTAB,
    ElfImage,
)

if TYPE_CHECKING:  # .debug_types is never read; the type is for the annotations
    from elftools.dwarf.typeunit import TypeUnit

# What pyelftools and its bundled construct raise on malformed bytes, besides its own
# error classes: it indexes, asserts and decodes without checking first.
_PARSE_ERRORS = (
    ELFError,
    DWARFError,
    ConstructError,
    struct.error,
    KeyError,
    IndexError,
    ValueError,
    TypeError,
    AttributeError,
    AssertionError,
    NotImplementedError,
    RecursionError,
    OverflowError,
    EOFError,
)

# The sections pyelftools may read while parsing DIEs: the *x forms of DWARF 5 (clang)
# are resolved through .debug_str_offsets, .debug_addr, .debug_loclists and
# .debug_rnglists as soon as a DIE is parsed. Each is materialised on first read only.
_SECTIONS = (
    ".debug_info",
    ".debug_abbrev",
    ".debug_str",
    ".debug_line",
    ".debug_line_str",
    ".debug_str_offsets",
    ".debug_addr",
    ".debug_loclists",
    ".debug_rnglists",
)

# e_machine -> {r_type: (bytes written, PC-relative)}: the absolute and PC-relative
# data relocations compilers put in debug sections. Anything else is refused rather
# than left unapplied, which would silently give wrong names.
_RELOCATIONS: dict[int, dict[int, tuple[int, bool]]] = {
    62: {1: (8, False), 10: (4, False), 11: (4, False), 2: (4, True), 24: (8, True)},  # x86-64
    3: {1: (4, False), 2: (4, True)},  # i386
    183: {257: (8, False), 258: (4, False), 260: (8, True), 261: (4, True)},  # AArch64
    40: {2: (4, False), 3: (4, True)},  # ARM
    21: {38: (8, False), 1: (4, False), 26: (4, True)},  # PowerPC64
    22: {4: (4, False), 22: (8, False), 5: (4, True)},  # s390
    243: {1: (4, False), 2: (8, False)},  # RISC-V
    258: {1: (4, False), 2: (8, False)},  # LoongArch
}
_R_NONE = 0
SHF_COMPRESSED = 0x800
ELFCOMPRESS_ZLIB = 1
ELFCOMPRESS_ZSTD = 2
# (big endian, little endian)
_WORD4 = (struct.Struct(">I"), struct.Struct("<I"))
_WORD8 = (struct.Struct(">Q"), struct.Struct("<Q"))
_MACHINE_NAMES = {62: "x64", 3: "x86", 183: "AArch64", 40: "ARM"}

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


class DwarfError(ValueError):
    """The DWARF is corrupt or truncated, or holds no answer to the question asked."""


# -- sections --------------------------------------------------------------------------


class _LazySection:
    """A seekable section for pyelftools, whose bytes are produced on first read.

    ``load`` returns the section's bytes (relocated, for a module), read from then on
    through a BytesIO, or a (mapped file, start) pair for a window on a mapped file that
    copies only what is read.
    """

    def __init__(
        self, size: int, load: Callable[[], bytes | tuple[bytes | mmap.mmap, int]]
    ) -> None:
        self._size = size
        self._load = load
        self._map: bytes | mmap.mmap | None = None
        self._start = 0
        self._pos = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == 1:
            pos += self._pos
        elif whence == 2:
            pos += self._size
        self._pos = max(pos, 0)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int | None = -1) -> bytes:
        if self._map is None:
            loaded = self._load()
            if not isinstance(loaded, tuple):
                # pyelftools reads a few bytes at a time, hundreds of thousands of times:
                # from now on it calls BytesIO's C methods directly
                buf = io.BytesIO(loaded)
                buf.seek(self._pos)
                # (positional-only C methods in place of these: mypy cannot follow it)
                self.read, self.seek, self.tell = buf.read, buf.seek, buf.tell  # type: ignore[method-assign, assignment]
                return buf.read(n)
            self._map, self._start = loaded
        start = self._pos
        end = self._size if n is None or n < 0 or start + n > self._size else start + n
        if start >= end:
            return b""
        self._pos = end
        # slicing an mmap copies just these bytes and exports no buffer, so the map can
        # be closed while pyelftools objects still hold this stream
        return self._map[self._start + start : self._start + end]


class _Elf:
    """The file's bytes and section table, and the relocation of its debug sections."""

    def __init__(self, data: bytes | mmap.mmap, name: str) -> None:
        self.data = data
        self.name = name
        self.image = ElfImage(data, len(data))
        header = self.image.header
        if header is None or not self.image.sections:
            raise DwarfError(f"{name}: not a readable ELF file")
        self.header = header
        self.little_endian = header.ei_data == 1

    def section(self, name: str) -> Section | None:
        for sec in self.image.sections:
            if sec.name == name and sec.sh_type != SHT_NOBITS:
                return sec
        return None

    def dwarf_info(self) -> DWARFInfo:
        descriptors: dict[str, DebugSectionDescriptor | None] = {}
        for name in _SECTIONS:
            sec = self.section(name)
            if sec is not None and not self.image.readable(sec):
                raise DwarfError(f"{self.name}: {name} lies beyond the end of the file: truncated")
            descriptors[name] = None if sec is None else self._descriptor(sec)
        if self.header.e_type == ET_REL:
            # relocate .debug_info now: a bad relocation then ends in our DwarfError,
            # not in one pyelftools wraps while reading through the stream
            # .debug_info is there: DWARF was found by it before this is called
            cast(DebugSectionDescriptor, descriptors[".debug_info"]).stream.read(0)
        config = DwarfConfig(
            little_endian=self.little_endian,
            default_address_size=8 if self.header.ei_class == 2 else 4,
            machine_arch=_MACHINE_NAMES.get(self.header.e_machine, ""),
        )
        return DWARFInfo(
            config=config,
            debug_info_sec=descriptors[".debug_info"],
            debug_aranges_sec=None,
            debug_abbrev_sec=descriptors[".debug_abbrev"],
            debug_frame_sec=None,
            eh_frame_sec=None,
            debug_str_sec=descriptors[".debug_str"],
            debug_loc_sec=None,
            debug_ranges_sec=None,
            debug_line_sec=descriptors[".debug_line"],
            debug_pubtypes_sec=None,
            debug_pubnames_sec=None,
            debug_addr_sec=descriptors[".debug_addr"],
            debug_str_offsets_sec=descriptors[".debug_str_offsets"],
            debug_line_str_sec=descriptors[".debug_line_str"],
            debug_loclists_sec=descriptors[".debug_loclists"],
            debug_rnglists_sec=descriptors[".debug_rnglists"],
            debug_sup_sec=None,
            gnu_debugaltlink_sec=None,
            debug_types_sec=None,
        )

    def _descriptor(self, sec: Section) -> DebugSectionDescriptor:
        size = self._compressed_header(sec)[1] if sec.sh_flags & SHF_COMPRESSED else sec.sh_size
        if self.header.e_type == ET_REL:
            stream = _LazySection(size, lambda: self._relocated(sec))
        elif sec.sh_flags & SHF_COMPRESSED:
            stream = _LazySection(size, lambda: self._contents(sec))
        else:
            stream = _LazySection(size, lambda: (self.data, sec.sh_offset))
        # a duck-typed stream: pyelftools only seeks, reads and tells
        return DebugSectionDescriptor(
            cast(IO[bytes], stream), sec.name, sec.sh_offset, size, sec.sh_addr
        )

    def _contents(self, sec: Section) -> bytes:
        """The section's bytes, decompressed when SHF_COMPRESSED (a kernel built with
        CONFIG_DEBUG_INFO_COMPRESSED, or objcopy --compress-debug-sections)."""
        data = self.image.data(sec)
        if not sec.sh_flags & SHF_COMPRESSED:
            return data
        ch_type, ch_size, header_size = self._compressed_header(sec)
        packed = data[header_size:]
        if ch_type == ELFCOMPRESS_ZLIB:
            inflate = zlib.decompressobj()
            try:
                out = inflate.decompress(packed, ch_size + 1)
            except zlib.error as e:
                raise DwarfError(f"{self.name}: {sec.name}: corrupt zlib data: {e}") from None
        elif ch_type == ELFCOMPRESS_ZSTD:
            try:
                out = decompress(self.name, packed, "zstd", ch_size + 1)
            except ModuleReadError as e:
                raise DwarfError(f"{e.path}: {sec.name}: {e.problem}") from None
        else:
            raise DwarfError(f"{self.name}: {sec.name}: unknown compression type {ch_type}")
        if len(out) != ch_size:
            raise DwarfError(
                f"{self.name}: {sec.name}: decompresses to {len(out)} bytes, "
                f"its header says {ch_size}: corrupt or truncated"
            )
        return out

    def _compressed_header(self, sec: Section) -> tuple[int, int, int]:
        """(ch_type, ch_size, header size) of an Elf32_Chdr / Elf64_Chdr."""
        endian = "<" if self.little_endian else ">"
        fmt = endian + ("IIQQ" if self.header.ei_class == 2 else "III")
        size = min(sec.sh_size, struct.calcsize(fmt))
        data = self.data[sec.sh_offset : sec.sh_offset + size] if self.image.readable(sec) else b""
        if len(data) < struct.calcsize(fmt):
            raise DwarfError(f"{self.name}: {sec.name}: compressed, but too short for its header")
        fields = struct.unpack_from(fmt, data)
        ch_size = fields[2] if self.header.ei_class == 2 else fields[1]
        if ch_size > DEFAULT_LIMIT:
            raise DwarfError(f"{self.name}: {sec.name}: claims {ch_size} bytes uncompressed")
        return fields[0], ch_size, struct.calcsize(fmt)

    def _relocated(self, sec: Section) -> bytes:
        out = bytearray(self._contents(sec))
        for rel in self.image.sections:
            if rel.sh_type in (SHT_RELA, SHT_REL) and rel.sh_info == sec.index:
                self._apply(out, sec.name, rel)
        return bytes(out)

    def _apply(self, out: bytearray, target: str, rel: Section) -> None:
        """Write S + A (minus P for PC-relative types) at each r_offset, as the linker
        would; P is the offset in the section since a module's sections sit at 0.

        One tight loop over rows struct.iter_unpack() made: ext4.ko has 300 000 entries
        in .rela.debug_info.
        """
        image = self.image
        symtab = image.sections[rel.sh_link] if 0 < rel.sh_link < len(image.sections) else None
        if symtab is None or symtab.sh_type != SHT_SYMTAB or not image.readable(symtab):
            raise DwarfError(f"{self.name}: {rel.name} has no symbol table (sh_link {rel.sh_link})")
        values = self._symbol_values(symtab)
        type_mask, sym_shift = (0xFFFFFFFF, 32) if self.header.ei_class == 2 else (0xFF, 8)
        limit, count = len(out), len(values)
        word: struct.Struct  # set from the first row's recipe before any use
        last_type, width, mask, pc_relative = None, 4, 0, False
        for r_offset, r_info, r_addend in self._rows(rel):
            r_type, r_sym = r_info & type_mask, r_info >> sym_shift
            if r_type != last_type:  # runs of one type: look the recipe up once per run
                if r_type == _R_NONE:
                    continue
                width, pc_relative = self._recipe(rel, r_type)
                word = (_WORD8 if width == 8 else _WORD4)[self.little_endian]
                mask, last_type = (1 << (8 * width)) - 1, r_type
            if r_sym >= count:
                raise DwarfError(f"{self.name}: {rel.name}: symbol index {r_sym} out of range")
            if r_offset + width > limit:
                raise DwarfError(
                    f"{self.name}: {rel.name}: r_offset {r_offset:#x} is beyond {target} "
                    f"({limit} bytes): corrupt or truncated"
                )
            if r_addend is None:  # SHT_REL: the addend is stored in place
                r_addend = word.unpack_from(out, r_offset)[0]
            value = values[r_sym] + r_addend - (r_offset if pc_relative else 0)
            word.pack_into(out, r_offset, value & mask)

    def _recipe(self, rel: Section, r_type: int) -> tuple[int, bool]:
        recipe = _RELOCATIONS.get(self.header.e_machine, {}).get(r_type)
        if recipe is None:
            raise DwarfError(
                f"{self.name}: {rel.name}: relocation type {r_type} of machine "
                f"{self.header.e_machine} is not supported for debug sections"
            )
        return recipe

    def _rows(self, rel: Section) -> Iterator[tuple[int, int, int | None]]:
        """(r_offset, r_info, r_addend or None for SHT_REL) of every entry."""
        endian, is64 = "<" if self.little_endian else ">", self.header.ei_class == 2
        rela = rel.sh_type == SHT_RELA
        fmt = endian + {(True, True): "QQq", (True, False): "IIi", (False, True): "QQ"}.get(
            (rela, is64), "II"
        )
        size = struct.calcsize(fmt)
        raw = self.image.data(rel)
        rows = struct.iter_unpack(fmt, raw[: len(raw) // size * size])
        return rows if rela else ((r_offset, r_info, None) for r_offset, r_info in rows)

    def _symbol_values(self, symtab: Section) -> list[int]:
        """st_value of every symbol, by index (S of a relocation)."""
        endian, is64 = "<" if self.little_endian else ">", self.header.ei_class == 2
        fmt = endian + ("IBBHQQ" if is64 else "IIIBBH")
        size = struct.calcsize(fmt)
        raw = self.image.data(symtab)
        rows = struct.iter_unpack(fmt, raw[: len(raw) // size * size])
        return [row[4] if is64 else row[1] for row in rows]

    def symbols(self) -> list[tuple[str, int, int, int]]:
        """(name, st_shndx, st_value, st_type) of every defined symbol."""
        symtab, _count = self.image.symtab()
        if symtab is None or not self.image.readable(symtab):
            return []
        entsize = 24 if self.header.ei_class == 2 else 16
        found = self.image.symbols_by_index(symtab, range(1, symtab.sh_size // entsize))
        return [
            (s.name, s.st_shndx, s.st_value, s.st_type)
            for _i, s in sorted(found.items())
            if s.name and s.st_shndx not in (SHN_UNDEF, SHN_ABS)
        ]


@contextmanager
def _guard(name: str, doing: str) -> Iterator[None]:
    """Turn whatever pyelftools raises on bad bytes into one DwarfError line."""
    try:
        yield
    except DwarfError as e:
        if str(e).startswith(f"{name}: "):
            raise
        raise DwarfError(f"{name}: {e}") from None  # raised below, which knows no file
    except _PARSE_ERRORS as e:
        raise DwarfError(
            f"{name}: corrupt or truncated DWARF while {doing}: {_describe(e)}"
        ) from None


def _describe(e: Exception) -> str:
    """pyelftools' exception in words; the two commonest say little by themselves."""
    if isinstance(e, KeyError) and e.args and isinstance(e.args[0], int):
        # AbbrevTable.get_abbrev(): a DIE whose abbreviation code the table lacks
        return f"a DIE uses abbreviation code {e.args[0]}, which its unit does not define"
    text = str(e)
    if len(text) > 200:
        text = text[:200] + "..."
    if isinstance(e, AssertionError):
        return f"pyelftools' consistency check failed ({text or 'no detail'})"
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


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


# -- modules -----------------------------------------------------------------------------


class ModuleTypes:
    """A module's DWARF: ``struct module`` of ``__this_module``, the structs the module
    defines and uses, and where its symbols are declared.

    Build it with :func:`module_types`. Nothing is parsed until asked. struct_module()
    reads only the ``*.mod.c`` unit's top level (20-50 ms); the other questions walk every
    DIE once (pyelftools parses about 60 000 DIEs a second: 0.1 s for a one-file module,
    2 s for fat.ko, 20 s for ext4.ko). After a :class:`DwarfError` every question raises
    it.
    """

    def __init__(self, elf: _Elf, path: str) -> None:
        self.path = path
        self.source = f"dwarf:{path}"
        self._elf = elf
        self._dwarf: DWARFInfo | None = None
        self._types = _Types(self.source)
        self._error: DwarfError | None = None
        self._index: _Index | None = None

    # -- public -------------------------------------------------------------------

    def struct_module(self, flatten: bool = False) -> StructLayout | None:
        """Layout of the type of ``__this_module``; None when no CU describes it."""
        with self._checked("reading struct module"):
            variable = self._find_this_module()
            if variable is None:
                return None
            struct_die = self._types.resolve(_type_inherited(variable))
            if struct_die is None or not _is_complete_struct(struct_die):
                raise DwarfError("__this_module's type is not a complete struct")
            return self._types.layout(struct_die, flatten)

    def structs(self, flatten: bool = False) -> dict[str, StructLayout]:
        """Every complete named struct and union the module's CUs define, keyed
        "struct NAME" / "union NAME" (the first definition when CUs repeat one)."""
        with self._checked("reading struct definitions"):
            index = self._built_index()
            return {key: self._types.layout(die, flatten) for key, die in index.structs.items()}

    def struct(self, name: str, flatten: bool = False) -> StructLayout | None:
        """One struct or union by name ("struct list_head", "union foo" or "list_head")."""
        with self._checked(f"reading {name}"):
            die = self._built_index().find_struct(name)
            return None if die is None else self._types.layout(die, flatten)

    def used_structs(self, follow_pointers: bool = True) -> set[str]:
        """Names of the complete structs and unions the module's code depends on.

        Reached from the functions and variables the module defines (their types, the
        parameters and locals of its functions, the header inlines compiled into it), and
        from the prototypes of the external functions and variables it declares; then
        through pointers, typedefs, arrays and members, transitively. A struct seen only
        as a declaration in one CU counts if another CU defines it. Every name returned is
        a key of :meth:`structs`.
        """
        with self._checked("following used types"):
            index = self._built_index()
            return _reach(index, index.roots, follow_pointers)

    def code_structs(self) -> set[str]:
        """Names of the complete structs and unions whose layout the module's own code
        depends on: what LY003 compares. Narrower than :meth:`used_structs`; the rule
        and why are at :func:`_reach_code`. Every name returned is a key of
        :meth:`structs`."""
        with self._checked("following the types the code uses"):
            return _reach_code(self._built_index())

    def decl_line(self, name: str) -> tuple[str, int] | None:
        """(file, line) of a function, variable or struct ("struct module").

        A function known to DWARF only under another name counts: ``init_module`` is an
        alias ``module_init()`` made of the module's init function (same section and
        value in .symtab), so its line is that function's definition.
        """
        with self._checked(f"looking up {name}"):
            index = self._built_index()
            die = index.find_struct(name) if name.startswith(("struct ", "union ")) else None
            die = die or index.defined.get(name) or self._alias(index, name)
            die = die or index.declared.get(name)
            return None if die is None else self._decl(die)

    # -- internals ----------------------------------------------------------------

    @contextmanager
    def _checked(self, doing: str) -> Iterator[None]:
        if self._error is not None:
            raise self._error
        try:
            with _guard(self.path, doing):
                yield
        except DwarfError as e:
            # pyelftools' caches may hold half a parse: later answers would be partial
            self._error = e
            raise

    def _dwarf_info(self) -> DWARFInfo:
        if self._dwarf is None:
            self._dwarf = self._elf.dwarf_info()
        return self._dwarf

    def _find_this_module(self) -> DIE | None:
        if self._index is not None:
            return self._index.defined_variables.get("__this_module")
        # Without walking everything: __this_module is a top-level variable of the
        # *.mod.c unit modpost generates, normally the last CU.
        # Looked for from the end, since reading a CU's top DIE parses its whole
        # abbreviation table (tens of ms for a big CU).
        cus = list(_units(self._dwarf_info(), self.path))[::-1]
        mod_c = next((cu for cu in cus if _own_name(cu.get_top_DIE()).endswith(".mod.c")), None)
        if mod_c is not None:  # then the rest, for a module linked some other way
            cus = [mod_c, *(cu for cu in cus if cu is not mod_c)]
        for cu in cus:
            for die in _children(cu.get_top_DIE()):
                if (
                    die.tag == "DW_TAG_variable"
                    and not _is_declaration(die)
                    and _name(die) == "__this_module"
                ):
                    return die
        return None

    def _built_index(self) -> _Index:
        if self._index is None:
            self._index = _Index.build(self._dwarf_info(), self.path)
        return self._index

    def _alias(self, index: _Index, name: str) -> DIE | None:
        symbols = self._elf.symbols()
        places = {(shndx, value) for sym, shndx, value, _t in symbols if sym == name}
        for sym, shndx, value, _t in symbols:
            if sym != name and (shndx, value) in places and sym in index.defined:
                return index.defined[sym]
        return None

    def _decl(self, die: DIE) -> tuple[str, int] | None:
        # a definition carries its own line; an out-of-line copy borrows its abstract
        # instance's, which may sit in another CU with another file table
        holder = _holder(die, "DW_AT_decl_line")
        if holder is None or "DW_AT_decl_file" not in holder.attributes:
            return None
        number = holder.attributes["DW_AT_decl_file"].value
        # a CompileUnit: no type unit is read (DWARFInfo gets no .debug_types)
        path = _file_name(self._dwarf_info(), cast(CompileUnit, holder.cu), number)
        return None if path is None else (path, holder.attributes["DW_AT_decl_line"].value)


def _type_inherited(die: DIE) -> DIE | None:
    for _ in range(_MAX_ORIGIN_DEPTH):
        if "DW_AT_type" in die.attributes:
            return _type(die)
        origin = _origin(die)
        if origin is None:
            return None
        die = origin
    return None


def _file_name(dwarf: DWARFInfo, cu: CompileUnit, number: int) -> str | None:
    """Path of file ``number`` of the CU's line table (0-based in DWARF 5, 1-based
    before, where directory 0 is the CU's DW_AT_comp_dir)."""
    program = dwarf.line_program_for_CU(cu)
    if program is None:
        return None
    header = program.header
    files, dirs = header["file_entry"], header["include_directory"]
    version = header["version"]
    index = number if version >= 5 else number - 1
    if not 0 <= index < len(files):
        return None
    entry = files[index]
    name = _text(entry.name)
    dir_index = entry.dir_index
    if version >= 5:
        directory = _text(dirs[dir_index]) if 0 <= dir_index < len(dirs) else ""
    elif dir_index == 0:
        comp_dir = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
        directory = _text(comp_dir.value) if comp_dir else ""
    else:
        directory = _text(dirs[dir_index - 1]) if dir_index - 1 < len(dirs) else ""
    return posixpath.join(directory, name) if directory else name


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class _Index:
    """One forward walk of every DIE of every CU, recording what the questions need."""

    def __init__(self) -> None:
        self.structs: dict[str, DIE] = {}  # "struct NAME" -> first complete definition
        self._nested: set[str] = set()  # keys whose definition sits inside a function
        self.defined: dict[str, DIE] = {}  # functions and CU-level variables defined
        self.defined_variables: dict[str, DIE] = {}
        self.declared: dict[str, DIE] = {}  # declarations of either
        self.roots: list[DIE] = []  # where used_structs() starts
        # where code_structs() starts: the same DIEs minus those of the *.mod.c unit;
        # True for an external function's prototype, whose pointers the kernel follows
        self.code_roots: list[tuple[DIE, bool]] = []
        self._generated = False  # walking the *.mod.c unit modpost generates

    def find_struct(self, name: str) -> DIE | None:
        tags, bare = _split_struct_name(name)
        for keyword in ("struct", "union"):
            die = self.structs.get(f"{keyword} {bare}")
            if die is not None and die.tag in tags:
                return die
        return None

    @classmethod
    def build(cls, dwarf: DWARFInfo, name: str) -> _Index:
        index = cls()
        for cu in _units(dwarf, name):
            index._walk(cu)
        return index

    def _walk(self, cu: CompileUnit) -> None:
        # __this_module (a struct module) and the tables modpost emits are not the
        # module author's code: LY001/LY002 judge struct module itself
        self._generated = _own_name(cu.get_top_DIE()).endswith(".mod.c")
        # iter_DIEs() reads forward from the unit's first DIE to its end and nothing
        # else, so it ends on any input; the stack of open DIEs is kept here.
        stack: list[tuple[DIE, bool]] = []  # (DIE, inside a defined function)
        for die in cu.iter_DIEs():
            if die.is_null():
                if stack:
                    stack.pop()
                continue
            in_function = bool(stack) and stack[-1][1]
            depth = len(stack)
            defines_function = self._record(die, depth, in_function)
            if die.has_children:
                stack.append((die, in_function or defines_function))

    def _record(self, die: DIE, depth: int, in_function: bool) -> bool:
        """Index one DIE; True when it is a function definition."""
        tag = die.tag
        if tag in _STRUCT_TAGS:
            self._record_struct(die, in_function)
        elif tag == "DW_TAG_subprogram":
            name = _name(die)
            if _is_declaration(die):
                if "DW_AT_external" in die.attributes:
                    self.declared.setdefault(name, die)
                    self._root(die, prototype=True)
                return False
            if name:
                self._define(name, die)
            self._root(die)
            return True
        elif tag == "DW_TAG_variable":
            if depth == 1:
                name = _name(die)
                if _is_declaration(die):
                    self.declared.setdefault(name, die)
                else:
                    self._define(name, die)
                    self.defined_variables.setdefault(name, die)
                self._root(die)
            elif in_function:
                self._root(die)  # locals, static or not
        elif tag == "DW_TAG_formal_parameter" and in_function:
            self._root(die)
        return False

    def _root(self, die: DIE, prototype: bool = False) -> None:
        self.roots.append(die)
        # THIS_MODULE is &__this_module, declared in every unit that stores it (module
        # parameters, file operations): an address, and struct module is LY001/LY002's
        if not self._generated and not (
            die.tag == "DW_TAG_variable" and _name(die) == "__this_module"
        ):
            self.code_roots.append((die, prototype))

    def _record_struct(self, die: DIE, in_function: bool) -> None:
        if not _own_name(die) or not _is_complete_struct(die):
            return
        key = _struct_key(die)
        # a definition at file scope wins over one local to a function
        if key not in self.structs or (key in self._nested and not in_function):
            self.structs[key] = die
            if in_function:
                self._nested.add(key)
            else:
                self._nested.discard(key)

    def _define(self, name: str, die: DIE) -> None:
        # an abstract instance (DW_AT_inline) carries the declaration; its out-of-line
        # copies point back to it: keep the first, which has DW_AT_decl_line
        if name and name not in self.defined:
            self.defined[name] = die


def _reach(index: _Index, roots: list[DIE], follow_pointers: bool) -> set[str]:
    """Struct names reachable from the roots' types, each DIE visited once."""
    found: set[str] = set()
    seen: set[int] = set()
    todo: list[DIE | None] = []
    for root in roots:
        todo.append(_type_inherited(root))
        if root.tag == "DW_TAG_subprogram" and _is_declaration(root):
            todo += [_type(p) for p in _children(root) if p.tag == "DW_TAG_formal_parameter"]
    while todo:
        die = todo.pop()
        if die is None or die.offset in seen:
            continue
        seen.add(die.offset)
        tag = die.tag
        if tag in _STRUCT_TAGS:
            if not _is_complete_struct(die):
                # a declaration here, perhaps a definition in another CU
                definition = index.structs.get(_struct_key(die)) if _own_name(die) else None
                if definition is not None:
                    todo.append(definition)
                continue
            if _own_name(die):
                found.add(_struct_key(die))
            todo += [_type(m) for m in _children(die) if m.tag == "DW_TAG_member"]
        elif tag in _POINTERS:
            if follow_pointers:
                todo.append(_type(die))
        elif tag in _MODIFIERS or tag == "DW_TAG_array_type":
            todo.append(_type(die))
        elif tag == "DW_TAG_subroutine_type":
            todo.append(_type(die))
            todo += [_type(p) for p in _children(die) if p.tag == "DW_TAG_formal_parameter"]
    # a struct reached only through a CU that merely declares it and defines no other
    return {name for name in found if name in index.structs}


def _reach_code(index: _Index) -> set[str]:
    """Struct names whose layout the module's own code depends on.

    DWARF records the types of things, not which members the code dereferences, so
    "uses" is approximated from what the code holds:

    - roots: the functions (return type, parameters, locals, the header inlines
      compiled in) and variables of the module's own units, and the prototypes of the
      external functions and variables it declares; never the *.mod.c unit, whose
      __this_module reaches most of the kernel through struct module's pointers;
    - by value: typedefs, qualifiers, arrays and embedded members are followed, since
      their bytes are laid out by the module's compiler;
    - pointers: one level, from a root of the module's own code only (a parameter,
      local, variable or return value of its functions: code holding a ``struct foo *``
      is the code that reads ``foo->x``). A pointer inside a struct, or in an external
      prototype, is not followed: the module does not lay out the pointee, and
      following them reached srcu_struct, mm_struct and task_struct from a hello.ko.
      A pointer loaded from a member into a register that DWARF describes nowhere is
      missed; that is the price of not reporting the whole kernel.
    """
    found: set[str] = set()
    seen: set[tuple[int, bool]] = set()
    todo: list[tuple[DIE | None, bool]] = []  # (type, a pointer here may be followed)
    for root, prototype in index.code_roots:
        todo.append((_type_inherited(root), not prototype))
        if root.tag == "DW_TAG_subprogram" and prototype:
            todo += [(_type(p), False) for p in _children(root) if p.tag == _PARAM]
    while todo:
        die, deref = todo.pop()
        if die is None or (die.offset, deref) in seen:
            continue
        seen.add((die.offset, deref))
        tag = die.tag
        if tag in _STRUCT_TAGS:
            if not _is_complete_struct(die):
                definition = index.structs.get(_struct_key(die)) if _own_name(die) else None
                if definition is not None:
                    todo.append((definition, False))
                continue
            if _own_name(die):
                found.add(_struct_key(die))
            todo += [(_type(m), False) for m in _children(die) if m.tag == "DW_TAG_member"]
        elif tag in _POINTERS:
            if deref:
                todo.append((_type(die), False))
        elif tag in _MODIFIERS or tag == "DW_TAG_array_type":
            todo.append((_type(die), deref))
        # a function pointer's prototype is a call into other code: not followed
    return {name for name in found if name in index.structs}


def module_types(path_or_bytes: str | os.PathLike | bytes | mmap.mmap) -> ModuleTypes | None:
    """The DWARF of a module file (.ko, .ko.xz, .ko.gz, .ko.zst) or of its bytes.

    None when the module has no ``.debug_info`` (built without CONFIG_DEBUG_INFO, or
    stripped). Raises :class:`DwarfError` when the file is unreadable or not ELF.
    """
    if isinstance(path_or_bytes, (str, os.PathLike)):
        path = os.fspath(path_or_bytes)
        try:
            raw = read_module_bytes(path)
        except ModuleReadError as e:
            raise DwarfError(str(e)) from None
        # a copy: the map can close now, and corrupt input never leaves a view open
        data = bytes(raw.data)
        if isinstance(raw.data, mmap.mmap):
            raw.data.close()
    else:
        path = "<module bytes>"
        data = bytes(path_or_bytes)
        kind = sniff(data[:8])
        if kind is not None:
            try:
                data = decompress(path, data, kind)
            except ModuleReadError as e:
                raise DwarfError(str(e)) from None
    if data[:4] != ELFMAG:
        raise DwarfError(f"{path}: not an ELF file")
    elf = _Elf(data, path)
    if elf.section(".debug_info") is None:
        return None
    return ModuleTypes(elf, path)


# -- a debug vmlinux -------------------------------------------------------------------


def vmlinux_struct(path: str, name: str = "module", flatten: bool = False) -> StructLayout:
    """A struct's layout from a vmlinux with DWARF (Debian's ``-dbg`` package).

    Walks only what it must: compilation units in order, and in each only the top-level
    DIEs (DW_AT_sibling skips the bodies of functions and types), stopping at the first
    complete definition, as pahole does. In Debian 6.1 ``struct module`` is defined in
    the second CU (arch/x86/kernel/head64.c): about 20 ms. Every CU shares the headers
    and the .config, so each definition is the same (the kernel's BTF, deduplicated from
    all CUs, holds exactly one). A name the DWARF has nowhere fails at once; one that
    only some late CU defines costs up to a walk of every CU's top level (minutes).
    ``name``: "module", "struct module" or "union NAME".
    """
    tags, bare = _split_struct_name(name)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
            if data[:4] != ELFMAG:
                raise DwarfError(f"{path}: not an ELF file")
            elf = _Elf(data, path)
            info = elf.section(".debug_info")
            if info is None or not elf.image.readable(info):
                raise DwarfError(f"{path}: no readable .debug_info (not a debug vmlinux?)")
            if _mentions(elf, info, bare):
                with _guard(path, f"looking for {name}"):
                    found = _first_definition(elf, info, tags, bare, flatten)
                if found is not None:
                    return found
    except OSError as e:
        raise DwarfError(f"{path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        if isinstance(e, DwarfError):
            raise
        raise DwarfError(f"{path}: cannot read: {e}") from None  # mmap of an empty file
    raise DwarfError(f"{path}: no complete definition of {name} in its DWARF")


def _mentions(elf: _Elf, info: Section, name: str) -> bool:
    """Whether any DIE can be named ``name``: a name is a string of .debug_str (through
    DW_FORM_strp or strx) or sits in .debug_info itself (DW_FORM_string)."""
    needle = name.encode() + b"\0"
    for sec in (elf.section(".debug_str"), info):
        if (
            sec is not None
            and elf.data.find(needle, sec.sh_offset, sec.sh_offset + sec.sh_size) >= 0
        ):
            return True
    return False


def _first_definition(
    elf: _Elf, info: Section, tags: frozenset[str], name: str, flatten: bool
) -> StructLayout | None:
    types = _Types(f"dwarf:{elf.name}")
    for offset in _unit_offsets(elf, info):
        # a fresh DWARFInfo per unit: pyelftools caches every unit and DIE it parsed,
        # which for all 2 350 units of a vmlinux is 4 GB
        cu = elf.dwarf_info().get_CU_at(offset)
        _check_unit(cu, info.sh_size, elf.name)
        for die in _children(cu.get_top_DIE()):
            if die.tag in tags and _is_complete_struct(die) and _own_name(die) == name:
                return types.layout(die, flatten)
    return None


def _unit_offsets(elf: _Elf, info: Section) -> Iterator[int]:
    """Offsets of the unit headers in .debug_info, from their unit_length fields alone
    (a generator: the search usually stops in the second of 2 350 units)."""
    endian = "<" if elf.little_endian else ">"
    at = 0
    while at < info.sh_size:
        start = at
        if at + 4 > info.sh_size:
            raise DwarfError(f"unit header at {at:#x} is cut short: truncated")
        length = struct.unpack_from(endian + "I", elf.data, info.sh_offset + at)[0]
        if length == 0xFFFFFFFF:  # 64-bit DWARF
            if at + 12 > info.sh_size:
                raise DwarfError(f"unit header at {at:#x} is cut short: truncated")
            at += 12 + struct.unpack_from(endian + "Q", elf.data, info.sh_offset + at + 4)[0]
        elif length >= 0xFFFFFFF0:
            raise DwarfError(f"unit at {at:#x}: reserved unit_length {length:#x}")
        else:
            at += 4 + length
        if at > info.sh_size:
            raise DwarfError(
                f"unit at {start:#x} runs past the end of .debug_info "
                f"({info.sh_size} bytes): truncated"
            )
        yield start
