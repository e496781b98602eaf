"""One struct from a debug vmlinux, found without walking every unit."""

from __future__ import annotations

import mmap
import struct
from collections.abc import Iterator

from abicheck.model import Section, StructLayout
from abicheck.readers.dwarf.die import (
    _check_unit,
    _children,
    _is_complete_struct,
    _own_name,
    _split_struct_name,
)
from abicheck.readers.dwarf.sections import DwarfError, _Elf, _guard
from abicheck.readers.dwarf.types import _Types
from abicheck.readers.elf import ELFMAG

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
