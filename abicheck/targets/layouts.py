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

import mmap
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, BinaryIO

from abicheck.errors import ModuleReadError, TargetError
from abicheck.model import KernelTarget, Member, StructLayout
from abicheck.readers.compressed import MODULE_SUFFIXES
from abicheck.targets.kernel_config import module_h_guards

if TYPE_CHECKING:  # both are imported on first use
    from abicheck.readers.btf import Btf
    from abicheck.targets.probe import ProbeTypes


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
    def btf(self) -> Btf:
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

    def layouts(self, wanted: Mapping[str, str | None]) -> dict[str, StructLayout | None]:
        """The layouts of ``wanted`` ({"struct NAME": where the module saw it declared});
        BTF holds every type the kernel's code uses, so the declaring header is moot."""
        return {key: self.struct(key.split(" ", 1)[-1]) for key in wanted}

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


def struct_module_from_reference_modules(
    modules_dir: str, limit: int = 400, target: KernelTarget | None = None
) -> StructLayout:
    """sizeof(struct module) and the offsets of init and exit, as the kernel's own
    modules were built with them: the most common value over up to ``limit`` modules.

    With ``target``, the modules must belong to it: their vermagic's release, and their
    ``module_layout`` CRC where the target's Module.symvers has one (a rebuild of the same
    release changes it), else :class:`TargetError` naming both sides.
    """
    from abicheck.readers.module import read_module

    sizes: Counter[int] = Counter()
    inits: Counter[int] = Counter()
    exits: Counter[int] = Counter()
    names: Counter[int] = Counter()
    releases: Counter[str] = Counter()
    layout_crcs: Counter[int] = Counter()
    seen = 0
    for root, dirs, files in os.walk(modules_dir):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith(MODULE_SUFFIXES):
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
            vermagic = (m.info("vermagic") or "").split()
            if vermagic:
                releases[vermagic[0]] += 1
            for v in m.versions or ():
                if v.name == "module_layout":
                    layout_crcs[v.crc] += 1
            seen += 1
            if seen >= limit:
                break
        if seen >= limit:
            break
    if not sizes:
        raise TargetError(modules_dir, "no in-tree module found to read struct module from")
    if target is not None:
        _check_modules_belong(modules_dir, target, releases, layout_crcs)
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


def _check_modules_belong(
    modules_dir: str, target: KernelTarget, releases: Counter[str], crcs: Counter[int]
) -> None:
    if releases and target.release not in releases:
        theirs = releases.most_common(1)[0][0]
        raise TargetError(
            modules_dir,
            f"its modules were built for {theirs}, not for the --kernel before it "
            f"({target.release}): give the modules directory of that kernel",
        )
    mine = target.exports.get("module_layout") if target.exports else None
    if mine is not None and mine.crc is not None and crcs and mine.crc not in crcs:
        theirs_crc = crcs.most_common(1)[0][0]
        raise TargetError(
            modules_dir,
            f"its modules were built by another build of {target.release}: module_layout "
            f"{theirs_crc:#010x} in them, {mine.crc:#010x} in the --kernel's Module.symvers",
        )


def is_dwarf_only(path: str) -> bool:
    """An ELF vmlinux with DWARF but no BTF (a -dbg package's vmlinux)."""
    from abicheck.readers.elf import ElfImage

    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head != b"\x7fELF":
                return False

            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                names = {s.name for s in ElfImage(buf, len(buf)).sections}
    except (OSError, ValueError):
        return False
    return ".BTF" not in names and ".debug_info" in names


# -- what a --vmlinux is, and whose -------------------------------------------------------

_BANNER = re.compile(rb"Linux version (\S+) \((.{0,200}?)\) (#[^\n\0]{1,200})")
_BZIMAGE_VERSION = re.compile(rb"(\S+) \((.{0,200}?)\) (#[^\n\0]{1,200})")


@dataclass(frozen=True)
class ImageIdentity:
    kind: str  # "bzImage", "vmlinux" (ELF with code), "btf-vmlinux" (BTF only), "btf-raw"
    release: str | None  # from the banner; None where the image carries none
    uts_version: str | None  # "#1 SMP PREEMPT_DYNAMIC Debian 6.1.158-1 (2025-11-09)"


def identify_image(path: str) -> ImageIdentity:
    """What a --vmlinux file is and which kernel it belongs to, from its own bytes: the
    x86 boot header's ``kernel_version`` string (no decompression), or the
    ``linux_banner`` of an ELF vmlinux. Anything else (a module, a text file) is a
    :class:`TargetError`."""
    import struct

    try:
        with open(path, "rb") as f:
            head = f.read(0x400)
            if head[:2] in (b"\x9f\xeb", b"\xeb\x9f"):
                return ImageIdentity("btf-raw", None, None)
            if head[0x202:0x206] == b"HdrS":
                pointer = struct.unpack_from("<H", head, 0x20E)[0]
                found = None
                if pointer:
                    f.seek(pointer + 0x200)
                    found = _BZIMAGE_VERSION.match(f.read(512))
                if found is None:
                    return ImageIdentity("bzImage", None, None)
                return ImageIdentity("bzImage", _text(found.group(1)), _text(found.group(3)))
            if head[0x38:0x3C] == b"ARM\x64" or head[:2] == b"MZ" or head[:2] == b"\x1f\x8b":
                return _arm64_identity(path, f)
            if head[:4] != b"\x7fELF":
                raise TargetError(path, "not a kernel image (no ELF, bzImage or BTF magic)")
            if len(head) < 18 or head[16:18] not in (b"\x02\x00", b"\x00\x02", b"\x03\x00"):
                e_type = head[16:18]
                if e_type in (b"\x01\x00", b"\x00\x01"):
                    raise TargetError(
                        path, "a relocatable object (a kernel module?), not a kernel image"
                    )
                raise TargetError(path, "an ELF file that is not a kernel image")
            with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
                found = _banner(data)
                if found is not None:
                    return ImageIdentity("vmlinux", _text(found.group(1)), _text(found.group(3)))
                has_btf = data.find(b".BTF\0") >= 0
    except OSError as e:
        raise TargetError(path, f"cannot read: {e.strerror or e}") from None
    except (ValueError, struct.error):
        raise TargetError(path, "not a kernel image (too short)") from None
    return ImageIdentity("btf-vmlinux" if has_btf else "vmlinux", None, None)


def _arm64_identity(path: str, f: BinaryIO) -> ImageIdentity:
    """An arm64 Image (raw, gzip'ed or EFI zboot): its banner sits in the Image's data."""
    from abicheck.readers.vmlinuz import VmlinuzError, arm64_image

    f.seek(0)
    try:
        image = arm64_image(f.read())
    except VmlinuzError as e:
        raise TargetError(path, str(e)) from None
    if image is None:
        raise TargetError(path, "not a kernel image (no ELF, bzImage, arm64 Image or BTF magic)")
    found = _banner(image)
    if found is None:
        return ImageIdentity("Image", None, None)
    return ImageIdentity("Image", _text(found.group(1)), _text(found.group(3)))


def _banner(data: bytes | mmap.mmap) -> re.Match[bytes] | None:
    """linux_banner. An image may hold a second copy whose build number is blank
    ("# SMP ..."): the first one with "#<digits>" wins, else the first one."""
    first = None
    at = data.find(b"Linux version ")
    for _ in range(8):
        if at < 0:
            break
        found = _BANNER.match(data, at)
        if found is not None:
            if re.match(rb"#\d", found.group(3)):
                return found
            first = first or found
        at = data.find(b"Linux version ", at + 1)
    return first


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").strip()


def check_image_belongs(path: str, target: KernelTarget, ident: ImageIdentity) -> str | None:
    """Raise when the image's banner names another kernel than ``target``; return a
    warning when the image carries no banner to compare."""
    if ident.release is None:
        return (
            f"{path} carries no release string ({ident.kind}): it cannot be matched "
            f"against {target.release}"
        )
    if ident.release != target.release:
        raise TargetError(
            path,
            f"this image is {ident.release}, but the --kernel before it is {target.release}",
        )
    if target.uts_version and ident.uts_version and ident.uts_version != target.uts_version:
        raise TargetError(
            path,
            f"this image is another build of {target.release}: '{ident.uts_version}', the "
            f"--kernel's headers say '{target.uts_version}'",
        )
    return None


# -- putting it together ----------------------------------------------------------------------


def sysroot() -> str:
    """Where the standard places (/boot, /usr/lib/debug, /lib/modules) are looked for:
    $ABICHECK_SYSROOT (a target's root filesystem, for cross builds), else /."""
    return os.environ.get("ABICHECK_SYSROOT") or "/"


def standard_sources(release: str, headers: str | None) -> list[tuple[str, str]]:
    """(kind, path) of the places a kernel's layouts are looked for, best first."""
    root = sysroot()
    out: list[tuple[str, str]] = []
    if headers:
        out.append(("image", os.path.join(headers, "vmlinux")))
    if root == "/" and release == os.uname().release:
        out.append(("image", "/sys/kernel/btf/vmlinux"))
    for rel in (
        f"boot/vmlinuz-{release}",
        f"usr/lib/debug/boot/vmlinux-{release}",
        f"usr/lib/debug/lib/modules/{release}/vmlinux",
    ):
        out.append(("image", os.path.join(root, rel)))
    out.append(("modules", os.path.join(root, "lib", "modules", release, "kernel")))
    return out


def _from_image(path: str, target: KernelTarget) -> tuple[StructLayout, BtfTypes | None, str]:
    if is_dwarf_only(path):
        return struct_module_from_dwarf(path), None, f"DWARF of {path}"
    types = BtfTypes(path)
    return struct_module_from_btf(types), types, f"BTF of {path}"


def _agrees(full: StructLayout, partial: StructLayout) -> bool:
    """Whether a complete layout (BTF, DWARF, probe) has the size and the init/exit
    offsets that the kernel's own modules were built with."""
    if full.size != partial.size:
        return False
    for name in ("init", "exit"):
        a, b = full.member(name), partial.member(name)
        if b is not None and (a is None or a.offset != b.offset):
            return False
    return True


def _probe(target: KernelTarget, dirs: list[str]) -> ProbeTypes:
    from abicheck import ruledata
    from abicheck.targets.probe import ProbeSpec, ProbeTypes

    srcarch = ruledata.arch_data().get(target.arch, {}).get("srcarch", target.arch)
    absolute = tuple(os.path.abspath(d) for d in dirs)  # the compiler runs elsewhere
    return ProbeTypes(ProbeSpec(absolute, srcarch, target.arch, target.config, target.digest))


def with_layouts(
    target: KernelTarget,
    vmlinux: str | None = None,
    modules_dir: str | None = None,
    source_dirs: list[str] | None = None,
    discover: bool = True,
    probe: bool = True,
) -> KernelTarget:
    """The target with its struct module layout, type source, module.h guards, and one
    line saying where the layouts came from (or why there are none).

    Explicit inputs (``vmlinux``, ``modules_dir``) are checked against the target and
    raise :class:`TargetError` when they belong to another kernel. Otherwise the
    standard places are tried in order (:func:`standard_sources`), then a probe compiled
    against the headers (``source_dirs``). Problems with automatic sources become notes.
    """
    from dataclasses import replace

    from abicheck.targets.probe import ProbeUnavailable

    notes = list(target.notes)
    types = target.types
    layout = target.struct_module
    described = target.layout_source or (f"{layout.source}" if layout else "")
    guards = target.module_h or (module_h_guards(source_dirs) if source_dirs else ())
    reference: StructLayout | None = None
    if vmlinux is not None:
        if not os.path.isfile(vmlinux):
            raise TargetError(vmlinux, "no such vmlinux or vmlinuz")
        warning = check_image_belongs(vmlinux, target, identify_image(vmlinux))
        layout, image_types, described = _from_image(vmlinux, target)
        types = image_types or types
        if warning:
            notes.append(warning)
    if modules_dir is not None:
        if not os.path.isdir(modules_dir):
            raise TargetError(modules_dir, "no such modules directory")
        reference = struct_module_from_reference_modules(modules_dir, target=target)
    if layout is None and discover and target.kind != "profile":
        headers = target.source if target.kind == "headers" else None
        for kind, path in standard_sources(target.release, headers):
            if kind == "modules":
                if reference is None and modules_dir is None and os.path.isdir(path):
                    try:
                        reference = struct_module_from_reference_modules(path, target=target)
                    except TargetError as e:
                        notes.append(str(e))
                continue
            if not os.path.isfile(path):
                continue
            try:
                if path.startswith(os.path.join(sysroot(), "boot")):
                    check_image_belongs(path, target, identify_image(path))
                layout, types, described = _from_image(path, target)
                break
            except TargetError as e:
                notes.append(str(e))
    gap = None
    explicit = modules_dir is not None
    if (layout is None or len(layout.members) <= 3) and probe and source_dirs:
        try:
            probed = _probe(target, source_dirs)
            module_layout = probed.struct_module()
            if reference is not None and not _agrees(module_layout, reference):
                mismatch = (
                    f"the kernel's own modules have struct module of {reference.size} bytes "
                    f"(exit at {_offset(reference, 'exit')}), the headers "
                    f"{module_layout.size} (exit at {_offset(module_layout, 'exit')}): the "
                    "headers are not this kernel's"
                )
                if explicit:
                    raise TargetError(modules_dir, mismatch)
                notes.append(mismatch)
            else:
                layout, types, described = module_layout, probed, probed.describe()
        except ProbeUnavailable as e:
            gap = str(e)
    if reference is not None:
        if layout is None or len(layout.members) <= 3:
            layout = reference
            described = reference.source.replace(
                "reference-modules:", "the kernel's own modules in "
            )
        elif not _agrees(layout, reference):
            mismatch = (
                f"struct module in the kernel's own modules ({reference.size} bytes, exit at "
                f"{_offset(reference, 'exit')}) differs from {described} ({layout.size} "
                f"bytes, exit at {_offset(layout, 'exit')}): they are not the same kernel"
            )
            if explicit:
                raise TargetError(modules_dir, mismatch)
            notes.append(mismatch)
        else:
            described += f", agreeing with {reference.source.split(':', 1)[1]}"
    if layout is None:
        why = (
            gap
            or target.layout_gap
            or ("no BTF, DWARF or headers to compile" if not source_dirs else "no layout source")
        )
        gap = why
    elif layout is not None and len(layout.members) <= 3 and gap:
        described += f" (members unknown: {gap})"
        gap = None
    return replace(
        target,
        struct_module=layout,
        types=types,
        module_h=guards,
        notes=tuple(notes),
        layout_source=described,
        layout_gap=gap,
    )


def _offset(layout: StructLayout, name: str) -> str:
    m = layout.member(name)
    return f"{m.offset:#x}" if m else "?"
