"""Where a kernel's struct layouts come from, best source first.

- BTF: a vmlinux's ``.BTF`` (Debian's 6.12 headers ship a BTF-only ``vmlinux``; a vmlinuz
  decompresses to one), or ``/sys/kernel/btf/vmlinux`` of the running kernel;
- DWARF of a debug vmlinux (Debian's ``linux-image-*-dbg``), looked up without a full walk;
- reference modules: every in-tree ``.ko`` carries ``sizeof(struct module)`` as its
  ``.gnu.linkonce.this_module`` size and ``offsetof(init)``/``offsetof(exit)`` as the
  offsets of its relocations against ``init_module``/``cleanup_module``;
- a saved profile.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable
from functools import cached_property

from abicheck.errors import ModuleReadError, TargetError
from abicheck.model import Member, StructLayout


class BtfTypes:
    """A kernel's BTF, loaded on first use (reading a vmlinuz costs about a second)."""

    def __init__(
        self,
        path: str,
        raw: bytes | None = None,
        decode: Callable[[], bytes] | None = None,
        problem: str = "cannot read BTF",  # how a failure is worded: a profile names its field
    ) -> None:
        self.path = path
        self.problem = problem
        self._raw = raw
        self._decode = decode  # a profile's embedded BTF, decompressed only when needed
        self.source = f"btf:{path}"

    @cached_property
    def btf(self):  # -> abicheck.readers.btf.Btf
        from abicheck.readers.btf import Btf, BtfError, btf_from_file

        try:
            if self._raw is None and self._decode is not None:
                self._raw = self._decode()
            if self._raw is not None:
                return Btf.from_bytes(self._raw)
            return btf_from_file(self.path)
        except (BtfError, OSError, ValueError) as e:
            raise TargetError(self.path, f"{self.problem}: {e}") from None

    def raw(self) -> bytes:
        """The raw BTF bytes, for saving in a profile."""
        if self._raw is None and self._decode is not None:
            self._raw = self._decode()
        return self._raw if self._raw is not None else self.btf.raw

    def struct(self, name: str) -> StructLayout | None:
        from abicheck.readers.btf import BtfError

        try:
            tid = self.btf.find_struct(name)
            return None if tid is None else self.btf.struct_layout(tid, self.source)
        except BtfError:
            return None


def struct_module_from_btf(types: BtfTypes) -> StructLayout:
    layout = types.struct("module")
    if layout is None:
        raise TargetError(types.path, "its BTF has no struct module")
    return layout


def struct_module_from_dwarf(path: str) -> StructLayout:
    from abicheck.readers.dwarf import DwarfError, vmlinux_struct

    try:
        return vmlinux_struct(path, "module")
    except (DwarfError, OSError, ValueError) as e:
        raise TargetError(path, f"cannot read struct module from DWARF: {e}") from None


def struct_module_from_reference_modules(modules_dir: str, limit: int = 400) -> StructLayout:
    """sizeof(struct module) and the offsets of init and exit, as the kernel's own
    modules were built with them: the most common value over up to ``limit`` modules."""
    from abicheck.readers.module import read_module

    sizes: Counter[int] = Counter()
    inits: Counter[int] = Counter()
    exits: Counter[int] = Counter()
    names: Counter[int] = Counter()
    seen = 0
    for root, dirs, files in os.walk(modules_dir):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz")):
                continue
            try:
                m = read_module(os.path.join(root, f))
            except ModuleReadError:
                continue
            if m.info("intree") is None or m.this_module is None:
                continue
            tm = m.this_module
            sizes[tm.sh_size] += 1
            if tm.init_offset is not None:
                inits[tm.init_offset] += 1
            if tm.exit_offset is not None:
                exits[tm.exit_offset] += 1
            if tm.name_offset is not None:
                names[tm.name_offset] += 1
            seen += 1
            if seen >= limit:
                break
        if seen >= limit:
            break
    if not sizes:
        raise TargetError(modules_dir, "no in-tree module found to read struct module from")
    members = []
    for name, counter, size in (("name", names, 56), ("init", inits, 8), ("exit", exits, 8)):
        if counter:
            members.append(
                Member(
                    name,
                    counter.most_common(1)[0][0],
                    size,
                    "char[56]" if name == "name" else "function pointer",
                )
            )
    members.sort(key=lambda m: m.offset)
    return StructLayout(
        "module",
        sizes.most_common(1)[0][0],
        tuple(members),
        f"reference-modules:{modules_dir} ({seen} in-tree modules)",
    )


def module_h_guards(dirs: list[str]) -> tuple:
    """The guards of struct module's members from the first include/linux/module.h."""
    from abicheck.readers.module_h import guarded_members

    for d in dirs:
        path = os.path.join(d, "include", "linux", "module.h")
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                return tuple(guarded_members(f.read()))
    return ()


def is_dwarf_only(path: str) -> bool:
    """An ELF vmlinux with DWARF but no BTF (a -dbg package's vmlinux)."""
    from abicheck.readers.elf import ElfImage

    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head != b"\x7fELF":
                return False
            import mmap

            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                names = {s.name for s in ElfImage(buf, len(buf)).sections}
    except (OSError, ValueError):
        return False
    return ".BTF" not in names and ".debug_info" in names


def with_layouts(
    target,
    vmlinux: str | None = None,
    modules_dir: str | None = None,
    source_dirs: list[str] | None = None,
    auto: list[str] | None = None,
):
    """The target with its struct module layout, type source and module.h guards.

    ``vmlinux``/``modules_dir`` are what the user gave; ``auto`` lists BTF files found at
    standard places (a headers dir's vmlinux, /sys/kernel/btf/vmlinux), used when no
    vmlinux was given. Problems with explicit inputs raise; with automatic ones they
    become notes.
    """
    from dataclasses import replace

    notes = list(target.notes)
    types = target.types
    layout = target.struct_module
    guards = target.module_h or (module_h_guards(source_dirs) if source_dirs else ())
    if vmlinux is not None:
        if not os.path.isfile(vmlinux):
            raise TargetError(vmlinux, "no such vmlinux or vmlinuz")
        if is_dwarf_only(vmlinux):
            layout = struct_module_from_dwarf(vmlinux)
        else:
            types = BtfTypes(vmlinux)
            layout = struct_module_from_btf(types)
    else:
        for path in auto or ():
            if os.path.isfile(path):
                candidate = BtfTypes(path)
                try:
                    layout = struct_module_from_btf(candidate)
                    types = candidate
                    break
                except TargetError as e:
                    notes.append(str(e))
    if layout is None and modules_dir is not None:
        if not os.path.isdir(modules_dir):
            raise TargetError(modules_dir, "no such modules directory")
        layout = struct_module_from_reference_modules(modules_dir)
    elif modules_dir is not None and not os.path.isdir(modules_dir):
        raise TargetError(modules_dir, "no such modules directory")
    if layout is None:
        notes.append(
            "no struct module layout (give --vmlinux or --modules-dir): layout "
            "checks use the module's own view only"
        )
    return replace(target, struct_module=layout, types=types, module_h=guards, notes=tuple(notes))
