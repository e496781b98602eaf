"""Read a ``.ko`` (plain or compressed, signed or not) into a :class:`Module`.

Layering as in libkmod: file (compressed.py) → ELF (elf.py) → module (here). Only the
sections the loader checks need are read.
"""

from __future__ import annotations

import re
import struct
from typing import TYPE_CHECKING, cast

from abicheck.errors import ModuleReadError
from abicheck.model import (
    CheckedRelocation,
    Export,
    Module,
    Relocation,
    RelocationSection,
    StructLayout,
    Symbol,
    ThisModule,
)
from abicheck.readers import elf as E
from abicheck.readers.compressed import DEFAULT_LIMIT, read_module_bytes
from abicheck.readers.modinfo import parse_modinfo
from abicheck.readers.signature import MARKER, has_marker, parse_signature
from abicheck.readers.versions import parse_ext_versions, parse_versions

if TYPE_CHECKING:  # the DWARF reader is imported on first use
    from abicheck.readers.dwarf import ModuleTypes

THIS_MODULE = ".gnu.linkonce.this_module"


def read_module(path: str, limit: int = DEFAULT_LIMIT, certs: list | None = None) -> Module:
    """Read one module. With ``certs`` (trusted X.509 certificates) its signature is
    verified too, which reads every byte of the module."""
    raw = read_module_bytes(path, limit)
    buf, size = raw.data, len(raw.data)
    if size == 0:
        raise ModuleReadError(path, "empty file")
    if bytes(buf[:4]) != E.ELFMAG:
        what = f"{raw.compression}-compressed data" if raw.compression else "the file"
        raise ModuleReadError(path, f"not an ELF file: {what} does not start with \\x7fELF")

    # module_sig_check() runs first and shortens the image the ELF checks see.
    signature = parse_signature(buf, size, certs)
    if signature is None:
        elf_size = size
    elif signature.problem is None:
        elf_size = signature.signed_size
    else:
        elf_size = size - len(MARKER) if has_marker(buf, size) else size

    img = E.ElfImage(buf, elf_size)
    empty = Module(
        path,
        raw.file_size,
        raw.compression,
        elf_size,
        img.header,
        tuple(img.defects),
        tuple(img.sections),
        signature,
        (),
        0,
        None,
        0,
        0,
        (),
        (),
        (),
        (),
        (),
        None,
        (),
    )
    if img.header is None or not img.sections:
        return empty

    modinfo_secs = img.find(".modinfo")
    modinfo_sec = img.first(".modinfo") or (modinfo_secs[0] if modinfo_secs else None)
    modinfo = parse_modinfo(img.data(modinfo_sec)) if modinfo_sec else ()

    versions_sec = img.first("__versions")
    versions = None
    versions_size = 0
    if versions_sec is not None:
        versions_size = versions_sec.sh_size
        versions = parse_versions(img.data(versions_sec), img.word, img.endian)
    ext_crcs, ext_names = img.first("__version_ext_crcs"), img.first("__version_ext_names")
    if ext_crcs is not None and ext_names is not None:
        # Mainline's extended modversions (kernel/module/version.c since 6.14, "module:
        # Extended modversions"): when present the kernel relies on them instead of
        # __versions. Modelled from the source; no kernel reachable here has them.
        versions = parse_ext_versions(img.data(ext_crcs), img.data(ext_names), img.endian)

    symtab, symtab_count = img.symtab()
    undefined, common, bad = [], [], []
    if symtab is not None:
        for sym in img.unresolved_symbols(symtab):
            if sym.st_shndx == E.SHN_UNDEF:
                if sym.name:
                    undefined.append(sym)
            elif sym.st_shndx == E.SHN_COMMON:
                common.append(sym)
            elif sym.st_shndx not in (E.SHN_ABS, E.SHN_LIVEPATCH):
                bad.append(sym)

    exports, without_crc = _exports(img, symtab)
    this_module = _this_module(img, symtab, dict(modinfo).get("name"))
    relocs = _relocation_sections(img, symtab)
    params = _params(img, symtab)

    return Module(
        path,
        raw.file_size,
        raw.compression,
        elf_size,
        img.header,
        tuple(img.defects),
        tuple(img.sections),
        signature,
        modinfo,
        len(modinfo_secs),
        versions,
        versions_size,
        symtab_count,
        tuple(undefined),
        tuple(common),
        tuple(bad),
        exports,
        without_crc,
        this_module,
        relocs,
        params,
        _first_values(modinfo),
        ModuleDwarf(path) if any(s.name == ".debug_info" for s in img.sections) else None,
    )


# Per e_machine, the relocation types whose entries are decoded for the range checks:
# the ones the arch's apply_relocate_add() checks for overflow with a range narrower than
# the distances between kernel and module addresses (R_X86_64_32; arm64's ABS16/32, MOVW
# UABS_G0-G2/SABS_G0-G2, PREL16, LD_PREL_LO19, ADR_PREL_LO21, TSTBR14, CONDBR19,
# MOVW_PREL_G0). rules/arch/*.toml `[range_checks]` says what each is checked against; a
# test holds the two equal. Common types (CALL26, ADRP, PREL32) are not decoded: their
# range covers every kernel and module address, or a PLT takes over.
RANGE_CHECKED = {
    62: frozenset({10}),
    183: frozenset({258, 259, 262, 263, 265, 267, 270, 271, 272, 273, 274, 279, 280, 287}),
}


def _first_values(modinfo: tuple[tuple[str, str], ...]) -> dict[str, str]:
    first: dict[str, str] = {}
    for key, value in modinfo:
        first.setdefault(key, value)
    return first


def _relocation_sections(
    img: E.ElfImage, symtab: E.Section | None
) -> tuple[RelocationSection, ...]:
    out = []
    checked_types = RANGE_CHECKED.get(img.header.e_machine if img.header else -1, frozenset())
    for sec in img.sections:
        if sec.sh_type not in (E.SHT_RELA, E.SHT_REL) or sec.sh_info >= len(img.sections):
            continue
        target = img.sections[sec.sh_info]
        # apply_relocations() skips relocations for sections that are not loaded
        if not target.sh_flags & E.SHF_ALLOC:
            continue
        count, types = img.relocation_types(sec)
        checked: tuple[CheckedRelocation, ...] = ()
        if types & checked_types and symtab is not None:
            entries = [e for e in img.relocation_entries(sec) if e[1] in checked_types]
            syms = img.symbols_by_index(symtab, {e[2] for e in entries})
            checked = tuple(
                _checked_entry(img, off, r_type, addend, syms.get(r_sym))
                for off, r_type, r_sym, addend in entries
            )
        out.append(RelocationSection(sec.name, target.name, count, types, sec.sh_type, checked))
    return tuple(out)


def _checked_entry(
    img: E.ElfImage, offset: int, r_type: int, addend: int, sym: Symbol | None
) -> CheckedRelocation:
    if sym is None:
        return CheckedRelocation(offset, r_type, addend, "", "", 0, False)
    if sym.st_shndx == E.SHN_ABS:
        where = "*ABS*"
    elif sym.st_shndx == E.SHN_UNDEF or sym.st_shndx >= len(img.sections):
        where = ""
    else:
        where = img.sections[sym.st_shndx].name
    name = sym.name or where  # section symbols have no name of their own
    return CheckedRelocation(
        offset, r_type, addend, name, where, sym.st_value, sym.st_bind == E.STB_WEAK
    )


def _rela_for(img: E.ElfImage, target_index: int) -> E.Section | None:
    for sec in img.sections:
        if sec.sh_type in (E.SHT_RELA, E.SHT_REL) and sec.sh_info == target_index:
            return sec
    return None


def _exports(
    img: E.ElfImage, symtab: E.Section | None
) -> tuple[tuple[Export, ...], tuple[str, ...]]:
    """The module's own exports from ``__ksymtab``/``__ksymtab_gpl`` and their CRCs.

    Each ``struct kernel_symbol`` entry carries three relocations, in field order: the
    symbol's value, its name and its namespace, the last two pointing into
    ``__ksymtab_strings``. Following the relocations (not the ``__kstrtab_*`` helper
    symbols) works for every layout modpost has produced since namespaces exist.
    The CRC of entry ``i`` is the ``i``-th s32 of the matching ``__kcrctab*`` section.
    """
    if symtab is None:
        return (), ()
    strings = img.first("__ksymtab_strings")
    strings_data = img.data(strings) if strings else b""
    out: list[Export] = []
    without_crc: list[str] = []
    for tab_name, crc_name, gpl in (
        ("__ksymtab", "__kcrctab", False),
        ("__ksymtab_gpl", "__kcrctab_gpl", True),
    ):
        tab = img.first(tab_name)
        if tab is None or tab.sh_size == 0:
            continue
        rela = _rela_for(img, tab.index)
        if rela is None:
            continue
        entries = sorted(img.relocation_entries(rela))
        if not entries:
            continue
        syms = img.symbols_by_index(symtab, {e[2] for e in entries})
        field = (entries[1][0] - entries[0][0]) if len(entries) > 1 else tab.sh_size
        entsize = field * 3 if field > 0 else tab.sh_size
        crc_sec = img.first(crc_name)
        crc_data = img.data(crc_sec) if crc_sec else b""
        by_entry: dict[int, dict[int, tuple[int, int]]] = {}
        for r_offset, _type, r_sym, addend in entries:
            by_entry.setdefault(r_offset // entsize, {})[(r_offset % entsize) // field] = (
                r_sym,
                addend,
            )
        for index in sorted(by_entry):
            fields = by_entry[index]

            def string_at(
                slot: int,
                fields: dict[int, tuple[int, int]] = fields,
                syms: dict[int, Symbol] = syms,
            ) -> str:
                if slot not in fields or strings is None:
                    return ""
                return _string_in(
                    strings_data, strings.index, syms.get(fields[slot][0]), fields[slot][1]
                )

            name = string_at(1)
            if not name and 0 in fields and fields[0][0] in syms:
                name = syms[fields[0][0]].name
            crc = None
            if len(crc_data) >= (index + 1) * 4:
                crc = struct.unpack_from(img.endian + "I", crc_data, index * 4)[0]
            else:
                without_crc.append(name)
            out.append(Export(name, crc, gpl, string_at(2), "module"))
    return tuple(out), tuple(without_crc)


def _string_in(data: bytes, section_index: int, sym: Symbol | None, addend: int) -> str:
    """The C string a relocation (symbol + addend) points at inside one section."""
    if sym is None or sym.st_shndx != section_index:
        return ""
    start = sym.st_value + addend
    end = data.find(b"\0", start)
    return data[start : end if end >= 0 else None].decode("utf-8", "replace")


def _params(img: E.ElfImage, symtab: E.Section | None) -> tuple[tuple[str, str], ...]:
    """Module parameters from ``__param``: ``struct kernel_param { const char *name;
    struct module *mod; const struct kernel_param_ops *ops; u16 perm; s8 level; u8 flags;
    union { void *arg; ... }; }``, five words long; name and ops come from relocations."""
    sec = img.first("__param")
    if sec is None or symtab is None:
        return ()
    rela = _rela_for(img, sec.index)
    if rela is None:
        return ()
    word = img.word
    entries = img.relocation_entries(rela)
    syms = img.symbols_by_index(symtab, {e[2] for e in entries})
    fields: dict[int, dict[int, tuple[Symbol | None, int]]] = {}
    for r_offset, _type, r_sym, addend in entries:
        fields.setdefault(r_offset // (5 * word), {})[(r_offset % (5 * word)) // word] = (
            syms.get(r_sym),
            addend,
        )
    out = []
    for index in sorted(fields):
        f = fields[index]
        name = ""
        if 0 in f and f[0][0] is not None:
            sym, addend = cast(tuple[Symbol, int], f[0])  # sym checked just above
            target = img.sections[sym.st_shndx] if sym.st_shndx < len(img.sections) else None
            if target is not None:
                name = _string_in(img.data(target), target.index, sym, addend)
        ops = ""
        if 2 in f and f[2][0] is not None:
            sym, addend = cast(tuple[Symbol, int], f[2])  # sym checked just above
            ops = sym.name
            if not ops and sym.st_shndx < len(img.sections):  # a section symbol
                ops = f"{img.sections[sym.st_shndx].name}+{addend:#x}"
        if name:
            out.append((name, ops))
    return tuple(out)


def _this_module(
    img: E.ElfImage, symtab: E.Section | None, modinfo_name: str | None
) -> ThisModule | None:
    secs = img.find(THIS_MODULE)
    if not secs:
        return None
    sec = img.first(THIS_MODULE) or secs[0]
    data = img.data(sec)
    name, name_offset = "", None
    if modinfo_name:
        pos = data.find(modinfo_name.encode() + b"\0")
        if pos >= 0:
            name, name_offset = modinfo_name, pos
    if name_offset is None and len(data) > img.word * 3:
        # `enum module_state state; struct list_head list; char name[]` has opened
        # struct module since Linux 2.6: the name follows one padded word and two pointers.
        name_offset = img.word * 3
        name = data[name_offset : name_offset + 56].split(b"\0", 1)[0].decode("utf-8", "replace")
    relocs: tuple[Relocation, ...] = ()
    init_offset: int | None = None
    exit_offset: int | None = None
    rela = _rela_for(img, sec.index)
    if rela is not None and symtab is not None:
        entries = img.relocation_entries(rela)
        syms = img.symbols_by_index(symtab, {e[2] for e in entries})

        relocs = tuple(
            Relocation(off, typ, syms[s].name if s in syms else "", add)
            for off, typ, s, add in entries
        )
        for r in relocs:
            if r.symbol == "init_module" and init_offset is None:
                init_offset = r.r_offset
            elif r.symbol == "cleanup_module" and exit_offset is None:
                exit_offset = r.r_offset
    nonzero = _nonzero_ranges(data)
    return ThisModule(
        sec.sh_size,
        sec.sh_type,
        sec.sh_flags,
        len(secs),
        name,
        name_offset,
        init_offset,
        exit_offset,
        relocs,
        nonzero,
    )


_NONZERO = re.compile(rb"[^\x00]+")


def _nonzero_ranges(data: bytes) -> tuple[tuple[int, int], ...]:
    return tuple(m.span() for m in _NONZERO.finditer(data))


class ModuleDwarf:
    """A module's DWARF, read on first use: most modules never need it."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.source = f"dwarf:{path}"
        self._types: ModuleTypes | None = None
        self.error: str | None = None

    def _load(self) -> ModuleTypes | None:
        if self._types is None and self.error is None:
            from abicheck.readers.dwarf import DwarfError, module_types

            try:
                self._types = module_types(self.path)
            except (DwarfError, OSError, ValueError) as e:
                self.error = str(e)
        return self._types

    def struct(self, name: str) -> StructLayout | None:
        types = self._load()
        if types is None:
            return None
        from abicheck.readers.dwarf import DwarfError

        try:
            if name == "module":
                return types.struct_module()
            return types.structs().get(name if " " in name else f"struct {name}")
        except (DwarfError, ValueError) as e:  # a broken DWARF is not a broken module
            self.error = str(e)
            return None

    def struct_module(self) -> StructLayout | None:
        return self.struct("module")

    def decl_line(self, name: str) -> tuple[str, int] | None:
        """Where the module's source declares a function, variable or type."""
        types = self._load()
        if types is None:
            return None
        from abicheck.readers.dwarf import DwarfError

        try:
            return types.decl_line(name)
        except (DwarfError, ValueError) as e:
            self.error = str(e)
            return None

    def used_structs(self) -> dict[str, StructLayout]:
        """The complete structs whose layout the module's own code depends on, by
        "struct NAME" (ModuleTypes.code_structs(): not everything its DWARF reaches)."""
        types = self._load()
        if types is None:
            return {}
        from abicheck.readers.dwarf import DwarfError

        try:
            defined = types.structs()
            return {n: defined[n] for n in sorted(types.code_structs()) if n in defined}
        except (DwarfError, ValueError) as e:
            self.error = str(e)
            return {}
