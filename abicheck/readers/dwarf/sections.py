"""ELF section access for DWARF: debug sections read through a window on the mapped
file, decompressed (SHF_COMPRESSED) and relocated (ET_REL modules) on first read, and
the wrapping of pyelftools' errors into :class:`DwarfError`."""

from __future__ import annotations

import io
import mmap
import struct
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, cast

from elftools.common.exceptions import DWARFError, ELFError
from elftools.construct import ConstructError
from elftools.dwarf.dwarfinfo import DebugSectionDescriptor, DwarfConfig, DWARFInfo

from abicheck.errors import ModuleReadError
from abicheck.model import Section
from abicheck.readers.compressed import DEFAULT_LIMIT, decompress
from abicheck.readers.elf import (
    ET_REL,
    SHN_ABS,
    SHN_UNDEF,
    SHT_NOBITS,
    SHT_REL,
    SHT_RELA,
    SHT_SYMTAB,
    ElfImage,
)

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
