"""A module's own debug info: its struct module, the structs it defines and uses,
where it declares things."""

from __future__ import annotations

import mmap
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

from elftools.dwarf.compileunit import CompileUnit
from elftools.dwarf.die import DIE
from elftools.dwarf.dwarfinfo import DWARFInfo

from abicheck.errors import ModuleReadError
from abicheck.model import StructLayout
from abicheck.readers.compressed import decompress, read_module_bytes, sniff
from abicheck.readers.dwarf.die import (
    _MAX_ORIGIN_DEPTH,
    _MODIFIERS,
    _PARAM,
    _POINTERS,
    _STRUCT_TAGS,
    _children,
    _holder,
    _is_complete_struct,
    _is_declaration,
    _name,
    _origin,
    _own_name,
    _split_struct_name,
    _struct_key,
    _type,
    _units,
)
from abicheck.readers.dwarf.sections import DwarfError, _Elf, _guard
from abicheck.readers.dwarf.types import _Types
from abicheck.readers.elf import ELFMAG

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
