"""The plain data that flows from readers to checks to reporters.

Everything here is a frozen dataclass: readers build these objects, checks read them
and never open files, reporters turn results into text. Field names keep the names the
ELF specification and the kernel use (``sh_size``, ``r_offset``, ``__versions``) so a
reader of the code can look them up.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple, Protocol


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        return {"error": 0, "warning": 1, "info": 2}[self.value]


class Effect(StrEnum):
    """What the kernel does because of a finding."""

    REFUSE = "refuse"  # the loader returns an error: verdict `refused`
    UNSAFE = "unsafe"  # loads, but an ABI mismatch will bite at run time
    TAINT = "taint"  # loads and taints the kernel
    WARN = "warn"  # loads; the kernel logs a warning or a risk exists
    NONE = "none"  # information only


class Verdict(StrEnum):
    UNREADABLE = "unreadable"
    REFUSED = "refused"
    LOADS_UNSAFE = "loads-unsafe"
    LOADS_TAINTED = "loads-tainted"
    LOADS = "loads"

    @property
    def rank(self) -> int:
        """Precedence when several apply: lower wins."""
        return [
            Verdict.UNREADABLE,
            Verdict.REFUSED,
            Verdict.LOADS_UNSAFE,
            Verdict.LOADS_TAINTED,
            Verdict.LOADS,
        ].index(self)


# --- the module side -------------------------------------------------------------


class TypeSource(Protocol):
    """Struct layouts of one binary (a kernel's BTF, a module's DWARF), read lazily."""

    source: str

    def struct(self, name: str) -> StructLayout | None: ...


class ModuleTypeSource(TypeSource, Protocol):
    """A module's layouts (its DWARF), with what the layout checks ask of it besides."""

    def decl_line(self, name: str) -> tuple[str, int] | None:
        """(file, line) where the module's source declares a function, variable or type."""
        ...

    def used_structs(self) -> dict[str, StructLayout]:
        """The complete structs the module defines and uses, by "struct NAME"."""
        ...


class KernelTypeSource(TypeSource, Protocol):
    """A kernel's layouts (BTF, or a probe compiled against its headers)."""

    def layouts(self, wanted: Mapping[str, str | None]) -> dict[str, StructLayout | None]:
        """Several structs at once: {"struct NAME": the header (as the module's DWARF
        names it) that declares it, or None} → layout, None where unknown."""
        ...


# The records read by the thousand (sections, symbols, __versions entries, exports,
# relocations) are NamedTuples: as immutable as frozen dataclasses, several times
# cheaper to create, which a 4 000-module tree notices.


@dataclass(frozen=True, slots=True)
class ElfHeader:
    ei_class: int  # 1 = ELFCLASS32, 2 = ELFCLASS64
    ei_data: int  # 1 = little endian, 2 = big endian
    e_type: int
    e_machine: int
    e_shoff: int
    e_shentsize: int
    e_shnum: int
    e_shstrndx: int


class Section(NamedTuple):
    # the field shadows tuple.index on purpose: callers read section.index
    index: int  # type: ignore[assignment]
    name: str
    sh_name: int
    sh_type: int
    sh_flags: int
    sh_addr: int
    sh_offset: int
    sh_size: int
    sh_link: int
    sh_info: int
    sh_addralign: int
    sh_entsize: int


@dataclass(frozen=True, slots=True)
class ElfDefect:
    """A way the file fails one of the kernel's ELF validity checks.

    ``check`` names the kernel test (see rules/EL*.toml); ``facts`` holds the numbers the
    kernel would print. The reader records defects in the order the kernel tests them.
    """

    check: str
    facts: Mapping[str, Any] = field(default_factory=dict)


class Symbol(NamedTuple):
    # position in .symtab: the kernel resolves symbols in this order. The field shadows
    # tuple.index on purpose: callers read symbol.index.
    index: int  # type: ignore[assignment]
    name: str
    st_value: int
    st_size: int
    st_bind: int
    st_type: int
    st_shndx: int


class VersionEntry(NamedTuple):
    """One ``struct modversion_info`` record of ``__versions``."""

    name: str
    crc: int


class Export(NamedTuple):
    """A symbol exported by the kernel or by a module."""

    name: str
    crc: int | None  # None: exported without a CRC (no CONFIG_MODVERSIONS)
    gpl_only: bool
    namespace: str  # "" when the symbol is in no namespace
    owner: str  # "vmlinux", an in-tree module path (drivers/usb/core/usbcore) or a module name


class ExportTable(Mapping[str, Export]):
    """The kernel's exports by name, built lazily from compact rows.

    Module.symvers has ~25 000 lines; building an Export object for each costs more than
    checking one module, so objects are made on first lookup.
    """

    __slots__ = ("_cache", "_rows")

    def __init__(self, rows: dict[str, tuple[int | None, bool, str, str]]) -> None:
        self._rows = rows  # name → (crc, gpl_only, namespace, owner)
        self._cache: dict[str, Export] = {}

    def __getitem__(self, name: str) -> Export:
        found = self._cache.get(name)
        if found is None:
            crc, gpl_only, namespace, owner = self._rows[name]
            found = self._cache[name] = Export(name, crc, gpl_only, namespace, owner)
        return found

    def get(self, name: str, default: Export | None = None) -> Export | None:  # type: ignore[override]
        return self[name] if name in self._rows else default

    def __contains__(self, name: object) -> bool:
        return name in self._rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)

    def rows(self) -> dict[str, tuple[int | None, bool, str, str]]:
        return self._rows


class Relocation(NamedTuple):
    r_offset: int
    r_type: int
    symbol: str
    r_addend: int


@dataclass(frozen=True, slots=True)
class ThisModule:
    """The module's own ``struct module`` image in ``.gnu.linkonce.this_module``."""

    sh_size: int
    sh_type: int
    sh_flags: int
    count: int  # how many sections carry this name (6.12 wants exactly one)
    name: str  # the on-disk ``name`` field
    name_offset: int | None
    init_offset: int | None  # r_offset of the relocation against init_module
    exit_offset: int | None  # r_offset of the relocation against cleanup_module
    relocations: tuple[Relocation, ...]
    # byte ranges [start, end) of the section that are not zero in the file (the name)
    nonzero: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True, slots=True)
class ModuleSignature:
    """The trailer ``struct module_signature`` plus what ``modinfo`` shows of it."""

    algo: int
    hash: int
    id_type: int
    signer_len: int
    key_id_len: int
    pad: bytes
    sig_len: int
    signed_size: int  # bytes covered by the signature (the module without the trailer)
    problem: str | None  # why the kernel would reject the block as malformed, if it would
    signer: str | None = None
    key_id: str | None = None
    hash_algo: str | None = None
    # set only when trusted certificates were given: "trusted", "unknown-key",
    # "bad-signature" or "unsupported" (an algorithm abicheck cannot verify)
    verification: str | None = None
    verified_by: str | None = None  # the certificate's subject, or why verification failed
    # why the kernel's pkcs7_parse_message()/pkcs7_verify() refuse the PKCS#7 blob on
    # every kernel generation (errno name, the kernel's log line, in words), if they do
    pkcs7_errno: str | None = None
    pkcs7_says: str = ""
    pkcs7_problem: str = ""
    pkcs7_after: str = ""  # "", "digest_algo" or "pkey_algo": see readers/signature.Pkcs7
    # algorithms of the first SignerInfo; which are supported depends on the kernel
    digest_oid: str = ""
    pkey_oid: str = ""
    has_authattrs: bool = False


class CheckedRelocation(NamedTuple):
    """One relocation of a type whose value the arch's loader range-checks, decoded."""

    r_offset: int
    r_type: int
    r_addend: int
    symbol: str  # the symbol's name, or its section's for a section symbol
    where: str  # the symbol's section name, "" if undefined, or "*ABS*"
    st_value: int
    weak: bool  # STB_WEAK: an undefined weak symbol nobody exports resolves to 0


@dataclass(frozen=True, slots=True)
class RelocationSection:
    name: str
    target: str  # the section the relocations apply to (sh_info)
    count: int
    types: frozenset[int]
    sh_type: int = 4  # SHT_RELA, or SHT_REL (9)
    # entries of the types the arch's loader range-checks (R_X86_64_32; R_AARCH64_ABS32,
    # MOVW_UABS_G0, ADR_PREL_LO21, ...: readers/module.py RANGE_CHECKED), decoded
    checked: tuple[CheckedRelocation, ...] = ()


@dataclass(frozen=True, slots=True)
class Module:
    path: str
    file_size: int
    compression: str | None  # "gzip", "xz", "zstd" or None
    elf_size: int  # bytes of ELF image the kernel sees (signature stripped)
    header: ElfHeader | None
    defects: tuple[ElfDefect, ...]
    sections: tuple[Section, ...]
    signature: ModuleSignature | None
    modinfo: tuple[tuple[str, str], ...]
    modinfo_count: int  # number of .modinfo sections
    versions: tuple[VersionEntry, ...] | None  # None: no __versions section
    versions_size: int
    symtab_count: int  # number of SHT_SYMTAB sections
    undefined: tuple[Symbol, ...]
    common: tuple[Symbol, ...]
    bad_shndx: tuple[Symbol, ...]
    exports: tuple[Export, ...]
    exports_without_crc: tuple[str, ...]  # __ksymtab entries lacking a __kcrctab partner
    this_module: ThisModule | None
    relocation_sections: tuple[RelocationSection, ...]
    # __param: (parameter name, the kernel_param_ops symbol, e.g. param_ops_int)
    params: tuple[tuple[str, str], ...] = ()
    # first value of each .modinfo key: modules with hundreds of alias= lines are
    # asked for their vermagic, license, intree ... by every check
    modinfo_first: Mapping[str, str] = field(default_factory=dict)
    types: ModuleTypeSource | None = None  # the module's own DWARF, read on first use

    def info(self, key: str) -> str | None:
        """First value of a .modinfo key, as the kernel's get_modinfo() returns it."""
        if self.modinfo_first:
            return self.modinfo_first.get(key)
        for k, v in self.modinfo:
            if k == key:
                return v
        return None

    def info_all(self, key: str) -> list[str]:
        return [v for k, v in self.modinfo if k == key]

    @property
    def name(self) -> str:
        """The name the kernel uses: .modinfo ``name``, else the struct module field."""
        name = self.info("name")
        if name:
            return name
        if self.this_module and self.this_module.name:
            return self.this_module.name
        return self.path.rsplit("/", 1)[-1].split(".", 1)[0]

    def section(self, name: str) -> Section | None:
        for s in self.sections:
            if s.name == name:
                return s
        return None


# --- the kernel side -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    offset: int  # bytes
    size: int | None
    type_name: str
    bit_offset: int | None = None
    bit_size: int | None = None


@dataclass(frozen=True, slots=True)
class StructLayout:
    name: str
    size: int
    members: tuple[Member, ...]
    source: str  # "btf:/path", "dwarf:/path", "reference-modules:/path", "profile:..."

    def member(self, name: str) -> Member | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


@dataclass(frozen=True, slots=True)
class GuardedMember:
    """A member of struct module and the preprocessor condition it exists under."""

    name: str
    condition: str  # a C preprocessor expression, "1" when unconditional
    options: tuple[str, ...]  # the CONFIG_ symbols the condition mentions


@dataclass(frozen=True, slots=True)
class KernelTarget:
    """One kernel a module is checked against, with where each fact came from."""

    id: str  # release plus a short hash of the files read: two targets may share a release
    release: str
    source: str  # a path, or "running"
    kind: str  # "headers", "running", "profile"
    digest: str
    arch: str
    version: tuple[int, int, int]
    uts_version: str | None
    distribution: str | None
    config: Mapping[str, str]
    vermagic: str | None
    vermagic_source: str
    exports: Mapping[str, Export] | None  # None: no Module.symvers was available
    struct_module: StructLayout | None = None
    notes: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    # the target's include/linux/module.h: which options guard each struct module member
    module_h: tuple[GuardedMember, ...] = ()
    types: KernelTypeSource | None = None  # the kernel's BTF or probe, read on first use
    # where struct layouts come from, in words ("BTF of /boot/vmlinuz-R", "probe compiled
    # against the headers (gcc 12.2.0, cached)"); and why there are none, when none
    layout_source: str = ""
    layout_gap: str | None = None
    # other inputs that named this same kernel (identical profiles in a fleet directory)
    also_named: tuple[str, ...] = ()

    def enabled(self, option: str) -> bool:
        """True when CONFIG_<option> is y or m."""
        return self.config.get(_config_name(option)) in ("y", "m")

    def value(self, option: str) -> str | None:
        return self.config.get(_config_name(option))


def _config_name(option: str) -> str:
    return option if option.startswith("CONFIG_") else "CONFIG_" + option


# --- results ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Finding:
    rule: str
    name: str
    category: str
    severity: Severity
    effect: Effect
    message: str
    kernel_says: str | None
    evidence: Mapping[str, Any]
    fix: str
    taint: str | None = None  # taint letter the kernel sets because of this finding
    order: tuple[int, ...] = ()  # position in the kernel's own check order
    errno: str | None = None  # what the loader's syscall fails with, for a refusal
    # the C declaration the finding is about when evidence["symbol"] is not it
    declaration: str | None = None


@dataclass(frozen=True, slots=True)
class Taint:
    letter: str
    flag: str
    description: str


@dataclass(frozen=True, slots=True)
class Result:
    module: str
    target: str
    kernel: str
    verdict: Verdict
    taints: tuple[Taint, ...]
    findings: tuple[Finding, ...]
    assumptions: tuple[str, ...] = ()
    # findings not shown: deselected rules, per-module ignores, the baseline; the verdict
    # still counts them, because the kernel does
    suppressed: tuple[str, ...] = ()
