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

from abicheck.readers.dwarf.module import ModuleTypes, module_types
from abicheck.readers.dwarf.sections import DwarfError
from abicheck.readers.dwarf.vmlinux import vmlinux_struct

__all__ = ["DwarfError", "ModuleTypes", "module_types", "vmlinux_struct"]
