"""Property-based fuzzing of every reader and every output format (issue 10).

Each target feeds one reader mutated real files (the committed sample modules and
kernel profiles) and asserts the reader's contract: it returns, or raises its own
documented error type, never anything else, and within a deadline. Mutations are byte
flips, truncations and splices, plus field-aware ones that set a header field (the ELF
header's e_shoff/e_shnum, a section header's sh_offset/sh_size, the BTF header's
lengths) to a boundary value, which reaches the code past the magic-number checks that
random bytes rarely get through.

The budget here is small and the seed fixed (``derandomize``), so CI runs the same few
hundred inputs every time in well under a minute; ``tools/fuzz.py`` runs the same
targets for minutes with random seeds and writes what crashes to a directory. Every
crash found that way is committed under ``tests/data/fuzz/`` as
``synthetic-crash-<target>-NNN.bin`` and replayed by :func:`test_replay_crash`.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import itertools
import json
import lzma
import os
import re
import struct
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from abicheck.errors import ModuleReadError, TargetError
from abicheck.kconfig.shell import Unevaluable, parse, tokenize
from abicheck.readers import elf as E
from abicheck.readers.btf import Btf, BtfError
from abicheck.readers.cheader import Preprocessor, PreprocessorError
from abicheck.readers.dwarf import DwarfError, module_types
from abicheck.readers.kconfig import parse_config, unquote
from abicheck.readers.modinfo import parse_modinfo
from abicheck.readers.module import read_module
from abicheck.readers.signature import parse_signature
from abicheck.readers.symvers import SymversError, parse_symvers
from abicheck.readers.versions import parse_ext_versions, parse_versions

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SAMPLES = os.path.join(REPO, "samples")
CRASHES = os.path.join(HERE, "data", "fuzz")

# CI budget: about 150 inputs per cheap target, fewer for the slow parsers (pyelftools
# reads a 116 kB .debug_info in a fraction of a second, not a millisecond).
EXAMPLES = 150
CI = settings(
    max_examples=EXAMPLES,
    derandomize=True,
    database=None,
    deadline=5000,  # ms; generous on a loaded 2-core machine, still catches a hang
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


# -- seeds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """A real input, and the (offset, width) of the header fields worth mutating."""

    name: str
    data: bytes
    fields: tuple[tuple[int, int], ...] = ()


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if path.endswith(".xz"):
        data = lzma.decompress(data)
    return data


def _elf_fields(data: bytes) -> tuple[tuple[int, int], ...]:
    """The ELF64 header and section header fields, as (offset, width)."""
    fields = [(0x04, 1), (0x05, 1), (0x10, 2), (0x28, 8), (0x3A, 2), (0x3C, 2), (0x3E, 2)]
    (e_shoff,) = struct.unpack_from("<Q", data, 0x28)
    (e_shnum,) = struct.unpack_from("<H", data, 0x3C)
    # sh_name sh_type sh_flags sh_addr sh_offset sh_size sh_link sh_info sh_addralign
    # sh_entsize, at these offsets in each 64-byte Elf64_Shdr
    shdr = ((0, 4), (4, 4), (8, 8), (16, 8), (24, 8), (32, 8), (40, 4), (44, 4), (48, 8), (56, 8))
    for i in range(e_shnum):
        fields += [(e_shoff + 64 * i + at, width) for at, width in shdr]
    return tuple(fields)


def _sections(data: bytes) -> dict[str, bytes]:
    img = E.ElfImage(data, len(data))
    return {s.name: img.data(s) for s in img.sections if img.readable(s)}


@cache
def module_seeds() -> tuple[Seed, ...]:
    """Every committed module: out-of-tree samples, in-tree (signed, with .BTF), drift."""
    paths = [
        os.path.join(SAMPLES, d, f)
        for d in ("modules", "intree/6.1.0-47-amd64", "drift")
        for f in sorted(os.listdir(os.path.join(SAMPLES, d)))
        if f.endswith(".ko")
    ]
    out = []
    for p in paths:
        data = _read(p)
        if len(data) <= 64 * 1024:  # the DWARF target has the big ones
            out.append(Seed(os.path.basename(p), data, _elf_fields(data)))
    return tuple(out)


@cache
def dwarf_seeds() -> tuple[Seed, ...]:
    drift = os.path.join(SAMPLES, "drift")
    paths = [os.path.join(drift, f) for f in sorted(os.listdir(drift)) if f.endswith(".ko")]
    seeds = []
    for p in paths:
        data = _read(p)
        if b".debug_info" in data:
            seeds.append(Seed(os.path.basename(p), data, _elf_fields(data)))
    return tuple(seeds)


def _section_seeds(name: str) -> tuple[Seed, ...]:
    found = [Seed(s.name + ":" + name, _sections(s.data).get(name, b"")) for s in module_seeds()]
    return tuple(s for s in found if s.data)


@cache
def modinfo_seeds() -> tuple[Seed, ...]:
    return _section_seeds(".modinfo")


@cache
def versions_seeds() -> tuple[Seed, ...]:
    return _section_seeds("__versions")


@cache
def signature_seeds() -> tuple[Seed, ...]:
    """The signed in-tree modules; only the trailer matters, so the last 1 kB of each.

    struct module_signature (12 bytes) sits before the marker; its sig_len is the field
    worth mutating."""
    out = []
    for s in module_seeds():
        if s.data.endswith(b"~Module signature appended~\n"):
            tail = s.data[-1024:]
            at = len(tail) - 28 - 12
            out.append(
                Seed(s.name + ":sig", tail, ((at, 1), (at + 1, 1), (at + 2, 1), (at + 8, 4)))
            )
    return tuple(out)


BTF_HEADER_FIELDS = ((0, 2), (2, 1), (3, 1), (4, 4), (8, 4), (12, 4), (16, 4), (20, 4))


@cache
def btf_seeds() -> tuple[Seed, ...]:
    """The split .BTF of the in-tree 6.1 modules, to read on the 6.1.0-47 base."""
    out = []
    for s in module_seeds():
        raw = _sections(s.data).get(".BTF")
        if raw and s.name != "rtllib_crypt_wep.ko":
            # each type record's info word is worth a field too: kind, vlen, kind_flag
            out.append(Seed(s.name + ":BTF", raw, BTF_HEADER_FIELDS + _btf_info_words(raw)))
    return tuple(out)


def _btf_info_words(raw: bytes) -> tuple[tuple[int, int], ...]:
    hdr_len, type_off, type_len = struct.unpack_from("<III", raw, 4)
    start = hdr_len + type_off
    return tuple((at, 4) for at in range(start, min(start + type_len, start + 4096), 4))


@cache
def _profile_47() -> str:
    """The committed 6.1.0-47 profile (it carries the kernel's BTF), as JSON text."""
    with gzip.open(os.path.join(SAMPLES, "kernels", "6.1.0-47-amd64.json.gz"), "rt") as f:
        return f.read()


@cache
def btf_base() -> Btf:
    """The 6.1.0-47 kernel's BTF, the base of the in-tree 6.1 modules' split BTF."""
    blob = json.loads(_profile_47())["btf"]
    return Btf.from_bytes(gzip.decompress(base64.b64decode(blob["data"])))


@cache
def profile_document() -> dict:
    """A real profile cut down to a few entries of each table, so parsing one takes
    milliseconds. Its 1.7 MB kernel BTF is replaced by a module's small split BTF: the
    profile reader's decoding (base64, gzip, header) is fuzzed, though a split blob
    without its base then fails in the BTF reader, which has its own target."""
    d = json.loads(_profile_47())
    ex = d["exports"]
    if ex:
        # every column but the owner names is one entry per symbol (gpl_only a string)
        d["exports"] = {k: (v if k == "owners" else v[:8]) for k, v in ex.items()}
    d["config"] = dict(list(d["config"].items())[:20])
    d["module_h"] = d.get("module_h", [])[:8]
    if d.get("struct_module"):
        d["struct_module"]["members"] = d["struct_module"]["members"][:8]
    if d.get("btf"):
        small = btf_seeds()[0].data
        d["btf"] = dict(d["btf"], data=base64.b64encode(gzip.compress(small)).decode())
    return d


@cache
def profile_seeds() -> tuple[Seed, ...]:
    raw = json.dumps(profile_document()).encode()
    return (Seed("profile.json", raw), Seed("profile.json.gz", gzip.compress(raw, mtime=0)))


@cache
def symvers_text() -> str:
    """A real Module.symvers, rebuilt from the 6.1.0-56 profile's exports."""
    with gzip.open(os.path.join(SAMPLES, "kernels", "6.1.0-56-amd64.json.gz")) as f:
        ex = json.load(f)["exports"]
    lines = []
    for i, name in enumerate(ex["name"][:60]):
        kind = "EXPORT_SYMBOL_GPL" if ex["gpl_only"][i] == "1" else "EXPORT_SYMBOL"
        owner = ex["owners"][ex["owner"][i]]
        lines.append(f"0x{ex['crc'][i] or 0:08x}\t{name}\t{owner}\t{kind}\t{ex['namespace'][i]}")
    return "\n".join(lines) + "\n"


@cache
def config_text() -> str:
    with gzip.open(os.path.join(SAMPLES, "drift", "config-6.1-debug-mutexes.gz"), "rt") as f:
        return "".join(f.readlines()[:300])


@cache
def cheader_text() -> str:
    with open(os.path.join(CRASHES, "seed-linux-6.1-vermagic.h")) as f:
        return f.read()


# The commands scripts/Kconfig.include (6.1, 6.12) hands to $(shell,...), expanded.
SHELL_SEEDS = (
    '{ gcc -Werror -c -x c /dev/null -o /dev/null; } >/dev/null 2>&1 && echo "y" || echo "n"',
    'trap "rm -rf .tmp_$$" EXIT; mkdir .tmp_$$; gcc -Werror -c -x c /dev/null -o .tmp_$$/tmp.o',
    'printf "%b\\n" "movdir64b %rax, %rdx" | gcc -c -x assembler-with-cpp -o /dev/null -',
    "scripts/cc-version.sh gcc",
    "ld -v --no-warn-rwx-segments",
    "command -v pahole",
    'test -n "$1" && echo y || echo n',
    "echo 'int main(void) { return 0; }' | grep -q main",
)


# -- mutations -----------------------------------------------------------------------------

_INTERESTING = (0, 1, 2, 3, 4, 7, 8, 12, 16, 24, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0xFF, 0x100)
_INTERESTING_BIG = (0x7FFF, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 1 << 63)


@st.composite
def mutated(draw: st.DrawFn, seeds: Sequence[Seed], max_ops: int = 4) -> bytes:
    """One seed with up to ``max_ops`` mutations."""
    seed = draw(st.sampled_from(seeds))
    data = bytearray(seed.data)
    for _ in range(draw(st.integers(0, max_ops))):
        n = len(data)
        op = draw(st.sampled_from(("field", "field", "flip", "bytes", "truncate", "splice", "cut")))
        if op == "field" and seed.fields:
            at, width = draw(st.sampled_from(seed.fields))
            if at + width > n:
                continue
            old = int.from_bytes(data[at : at + width], "little")
            value = draw(
                st.sampled_from((*_INTERESTING, *_INTERESTING_BIG, n - 1, n, n + 1, old + 1))
                | st.integers(0, max(old * 2, 1))
            )
            if draw(st.booleans()) and old:
                value = max(old - draw(st.integers(1, 64)), 0)
            data[at : at + width] = (value % (1 << (8 * width))).to_bytes(width, "little")
        elif op == "flip" and n:
            at = draw(st.integers(0, n - 1))
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "bytes" and n:
            at = draw(st.integers(0, n - 1))
            data[at : at + 4] = draw(st.binary(min_size=1, max_size=4))
        elif op == "truncate":
            del data[draw(st.integers(0, n)) :]
        elif op == "splice" and n:
            # a copy of one part of the file over another: valid-looking records in the
            # wrong place (a section header where a symbol should be ...)
            src, dst = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))
            length = draw(st.integers(1, 256))
            data[dst : dst + length] = data[src : src + length]
        elif op == "cut" and n:
            at = draw(st.integers(0, n - 1))
            del data[at : at + draw(st.integers(1, 64))]
    return bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, seeds: Sequence[str]) -> str:
    """Text seeds with line-level and character-level mutations."""
    lines = draw(st.sampled_from(seeds)).split("\n")
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(("char", "dup", "drop", "junk", "cut")))
        i = draw(st.integers(0, max(len(lines) - 1, 0)))
        if not lines:
            lines = [""]
        if op == "char":
            line = lines[i]
            at = draw(st.integers(0, len(line)))
            lines[i] = line[:at] + draw(_snippet(4)) + line[at:]
        elif op == "dup":
            lines[i:i] = [lines[i]] * draw(st.integers(1, 40))
        elif op == "drop":
            del lines[i]
        elif op == "junk":
            lines.insert(i, draw(_snippet(20)))
        elif op == "cut":
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "\n".join(lines)


_HOSTILE_TOKENS = st.sampled_from(
    [
        *"\t\n\r\x00\x01\x1b\x7f\x85\u2028\"'\\$#=:;|&{}()<>`%0xX~",
        *("\ud7ff", "\ufeff", "é", "defined", "&&", "\\x", "\\u", "#if ", "#define A B"),
    ]
)


def _snippet(max_tokens: int) -> st.SearchStrategy[str]:
    return st.lists(_HOSTILE_TOKENS, max_size=max_tokens).map("".join)


# -- targets: each asserts its reader's contract ---------------------------------------------
#
# A target returns normally when the reader kept its contract (returned, or raised its own
# error type); anything else propagates and fails the test.


def _write(data: bytes, suffix: str) -> str:
    fd, path = tempfile.mkstemp(suffix=suffix, prefix="abicheck-fuzz-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def target_module(data: bytes) -> None:
    """read_module(): a Module or ModuleReadError; its lazy DWARF never raises either."""
    path = _write(data, ".ko")
    try:
        try:
            module = read_module(path)
        except ModuleReadError:
            return
        if module.types is not None:  # only a module with .debug_info has it
            module.types.struct("module")
            module.types.used_structs()
    finally:
        os.unlink(path)


def target_elf(data: bytes) -> None:
    """ElfImage records defects and never raises, whatever the bytes."""
    img = E.ElfImage(data, len(data))
    for sec in img.sections:
        img.data(sec)
        if sec.sh_type in (E.SHT_RELA, E.SHT_REL):
            img.relocation_types(sec)
            img.relocation_entries(sec)
    symtab, _count = img.symtab()
    if symtab is not None:
        syms = img.unresolved_symbols(symtab)
        img.symbols_by_index(symtab, range(min(len(syms) + 8, 64)))


def target_modinfo(data: bytes) -> None:
    """parse_modinfo() takes any bytes."""
    for key, value in parse_modinfo(data):
        assert isinstance(key, str) and isinstance(value, str)


def target_versions(data: bytes) -> None:
    """parse_versions()/parse_ext_versions() take any bytes, word size and byte order."""
    for word in (4, 8):
        for endian in "<>":
            entries = parse_versions(data, word, endian)
            assert len(entries) == len(data) // 64
    half = len(data) // 2
    parse_ext_versions(data[:half], data[half:], "<")


def target_signature(data: bytes) -> None:
    """parse_signature() reports a malformed trailer as a problem, never raises."""
    parse_signature(data, len(data), None)


def target_btf(data: bytes) -> None:
    """Btf.from_bytes() and every query on it: a result or BtfError."""
    for base in (btf_base(), None):
        try:
            btf = Btf.from_bytes(data, base, 8)
            first = btf.start_id
            for type_id in range(first, first + min(len(btf), 200)):
                btf.type(type_id)
                btf.type_name(type_id)
                btf.type_size(type_id)
            for name in list(btf._struct_index())[:50]:
                btf.struct_layout(name, "fuzz", flatten=True)
        except BtfError:
            pass


def target_dwarf(data: bytes) -> None:
    """module_types() and the queries abicheck makes: a result, None or DwarfError."""
    try:
        types = module_types(data)
        if types is None:
            return
        types.struct_module()
        types.structs()
        types.used_structs()
        types.decl_line("init_module")
    except DwarfError:
        pass


def target_profile(data: bytes) -> None:
    """target_from_profile() and its lazy BTF: a KernelTarget or TargetError."""
    from abicheck.targets.profile import target_from_profile

    path = _write(data, ".json.gz" if data[:2] == b"\x1f\x8b" else ".json")
    try:
        target = target_from_profile(path)
        if target.types is not None:
            target.types.struct("module")
    except TargetError:
        pass
    finally:
        os.unlink(path)


@st.composite
def mutated_profile(draw: st.DrawFn) -> bytes:
    """Field-aware: a real profile with some values replaced by values of other types."""
    if draw(st.integers(0, 3)) == 0:
        return draw(mutated(profile_seeds()))
    d = json.loads(json.dumps(profile_document()))
    leaf = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        _snippet(8),
        # fresh objects: st.just() would hand out one shared list, which a later
        # mutation could put inside itself
        st.builds(list),
        st.builds(dict),
        st.builds(lambda: ["x", 1]),
    )
    for _ in range(draw(st.integers(1, 4))):
        node: object = d
        path: list[object] = []
        while isinstance(node, (dict, list)) and node and draw(st.integers(0, 2)):
            key = draw(
                st.sampled_from(sorted(node) if isinstance(node, dict) else range(len(node)))
            )
            path.append(key)
            node = node[key]  # type: ignore[index]
        if not path:
            key = draw(st.sampled_from(sorted(d)))
            path = [key]
        parent: object = d
        for key in path[:-1]:
            parent = parent[key]  # type: ignore[index]
        if isinstance(parent, dict) and draw(st.integers(0, 4)) == 0:
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(leaf)  # type: ignore[index]
    raw = json.dumps(d).encode()
    return gzip.compress(raw, mtime=0) if draw(st.booleans()) else raw


def target_symvers(text: str) -> None:
    with contextlib.suppress(SymversError):
        parse_symvers(text)


def target_kconfig(text: str) -> None:
    for value in parse_config(text).values():
        unquote(value)


# what generated/utsrelease.h, asm/vermagic.h and autoconf.h would define
CHEADER_DEFINES = {
    "__KERNEL__": "1",
    "INCLUDE_VERMAGIC": "1",
    "CONFIG_SMP": "1",
    "CONFIG_MODVERSIONS": "1",
    "UTS_RELEASE": '"6.1.0-56-amd64"',
    "MODULE_ARCH_VERMAGIC": '""',
}


def target_cheader(text: str) -> None:
    """The preprocessor on a mutated vermagic.h: a string or PreprocessorError."""
    pp = Preprocessor([], dict(CHEADER_DEFINES))
    try:
        pp.process(text)
        pp.string("VERMAGIC_STRING")
    except PreprocessorError:
        pass


def target_shell(command: str) -> None:
    """tokenize() and parse() accept a command or raise Unevaluable."""
    with contextlib.suppress(Unevaluable):
        parse(tokenize(command))


# -- outputs -------------------------------------------------------------------------------

HOSTILE_STRINGS = (
    "\n::error file=pwned.c,line=1::injected",
    "::set-env name=X::1",
    "a\r::warning::overwritten",
    "\x1b[31mred\x1b[0m",
    "\x00nul",
    "\x07bell\x08\x7f",
    "\x85next-line\u2028sep",
    "]]></failure><failure>",
    "%0A::error::encoded",
    '"}, {"rule": "forged"',
    "<script>&amp;",
    "\ud7ff\ufeff",
)

hostile_text = st.one_of(
    st.sampled_from(HOSTILE_STRINGS),
    st.text(st.characters(max_codepoint=0x3000, exclude_categories=["Cs"]), max_size=24),
    _snippet(24),
)

# raw C0 controls other than newline and tab, DEL, and the C1 controls (a terminal acts
# on ESC and CSI; \r rewrites a line; NUL cuts strings in C consumers)
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@cache
def base_results() -> tuple[list, list]:
    """Real results: real modules checked against a committed profile."""
    from abicheck.context import Assumptions
    from abicheck.runner import RunOptions, run_checks
    from abicheck.targets import load_target

    targets = [load_target(os.path.join(SAMPLES, "kernels", "6.1.0-56-amd64.json.gz"))]
    modules = [
        os.path.join(SAMPLES, "modules", m)
        for m in ("hello.ko", "ns_noimport.ko", "unknown_sym.ko")
    ]
    return run_checks(modules, targets, RunOptions(Assumptions(), 1 << 30)).results, targets


def hostile_results(strings: Sequence[str], results: list, targets: list) -> tuple[list, list]:
    """The real results with every user-controlled string replaced by a hostile one:
    module path, kernel release, target id, finding message, evidence, fix."""
    pick = itertools.cycle(strings)
    out = []
    new_targets = [replace(t, release=next(pick), source=next(pick)) for t in targets]
    for r in results:
        findings = tuple(
            replace(
                f,
                message=next(pick),
                kernel_says=next(pick),
                fix=next(pick),
                evidence={
                    **f.evidence,
                    **{k: next(pick) for k in list(f.evidence)[:3]},
                    "x": next(pick),
                },
            )
            for f in r.findings
        )
        out.append(
            replace(
                r,
                module=next(pick),
                kernel=new_targets[0].release,
                findings=findings,
                assumptions=(next(pick),),
            )
        )
    return out, new_targets


def render_all(results: Sequence, targets: Sequence) -> dict[str, str]:
    from abicheck.reporters import FORMATS, Report, make_reporter

    out = {}
    for name in FORMATS:
        text = make_reporter(name, split=True).render(Report(results, targets))
        out[name] = "".join(t for _, t in text) if isinstance(text, list) else text
    return out


def target_reporters(strings: Sequence[str]) -> None:
    """Every format: no raw control byte; no line starts with "::" except the github
    format's own commands, which hostile text must not add to."""
    results, targets = base_results()
    benign = render_all(*hostile_results(["x"], results, targets))
    hostile = render_all(*hostile_results(list(strings) or ["x"], results, targets))
    for name, text in hostile.items():
        bad = _CONTROL.search(text)
        assert bad is None, f"{name}: raw control byte {bad.group()!r}"
        commands = [line for line in text.splitlines() if line.startswith("::")]
        expected = [line for line in benign[name].splitlines() if line.startswith("::")]
        assert len(commands) == len(expected), f"{name}: a line starts with '::': {commands}"


# -- the harness -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable
    strategy: Callable[[], st.SearchStrategy]
    examples: int = EXAMPLES


TARGETS = (
    Target("module", target_module, lambda: mutated(module_seeds())),
    Target("elf", target_elf, lambda: mutated(module_seeds())),
    Target("modinfo", target_modinfo, lambda: mutated(modinfo_seeds())),
    Target("versions", target_versions, lambda: mutated(versions_seeds())),
    Target("signature", target_signature, lambda: mutated(signature_seeds())),
    Target("btf", target_btf, lambda: mutated(btf_seeds()), 100),
    Target("dwarf", target_dwarf, lambda: mutated(dwarf_seeds()), 25),
    Target("profile", target_profile, mutated_profile, 100),
    Target("symvers", target_symvers, lambda: mutated_text([symvers_text()])),
    Target("kconfig", target_kconfig, lambda: mutated_text([config_text()])),
    Target("cheader", target_cheader, lambda: mutated_text([cheader_text()])),
    Target("shell", target_shell, lambda: mutated_text(list(SHELL_SEEDS))),
    Target(
        "reporters", target_reporters, lambda: st.lists(hostile_text, min_size=1, max_size=6), 40
    ),
)
BY_NAME = {t.name: t for t in TARGETS}

# Targets that fail on today's code (none since the escaping, profile and fingerprint
# fixes landed); a name here gets xfail(strict=False) with the reason.
XFAIL: dict[str, str] = {}


def _param(t: Target) -> object:
    if t.name in XFAIL:
        return pytest.param(
            t, id=t.name, marks=pytest.mark.xfail(strict=False, reason=XFAIL[t.name])
        )
    return pytest.param(t, id=t.name)


@pytest.mark.parametrize("target", [_param(t) for t in TARGETS])
def test_fuzz(target: Target) -> None:
    @settings(CI, max_examples=target.examples)
    @given(target.strategy())
    def run(data: object) -> None:
        target.run(data)

    run()


def test_mutations_change_the_seed() -> None:
    """The strategy really mutates: a harness that fed the seeds unchanged would pass
    every target and prove nothing."""
    seen: set[bytes] = set()

    @settings(CI, max_examples=60)
    @given(mutated(module_seeds()))
    def collect(data: bytes) -> None:
        seen.add(data)

    collect()
    originals = {s.data for s in module_seeds()}
    assert len(seen - originals) >= 40


def test_seeds_are_read_cleanly() -> None:
    """Unmutated, every seed goes all the way through its reader: a seed that the reader
    rejects would leave the code behind the first check unfuzzed."""
    for seed in module_seeds():
        path = _write(seed.data, ".ko")
        try:
            module = read_module(path)
        finally:
            os.unlink(path)
        assert module.header is not None and module.modinfo, seed.name
    assert {s.name for s in module_seeds()} >= {"hello.ko", "crc16.ko", "usb-common.ko"}
    assert len(signature_seeds()) >= 4
    for seed in signature_seeds():
        sig = parse_signature(seed.data, len(seed.data))
        assert sig is not None and sig.problem is None, seed.name
    for seed in versions_seeds():
        assert parse_versions(seed.data, 8, "<")[0].name, seed.name
    structs = 0
    for seed in btf_seeds():
        btf = Btf.from_bytes(seed.data, btf_base(), 8)
        assert len(btf) > 0, seed.name
        structs += len(btf._struct_index())
    assert structs > 0
    for seed in dwarf_seeds():
        types = module_types(seed.data)
        assert types is not None and types.struct_module() is not None, seed.name
    from abicheck.targets.profile import target_from_profile

    for seed in profile_seeds():
        path = _write(seed.data, ".json")
        try:
            target = target_from_profile(path)
        finally:
            os.unlink(path)
        assert len(target.exports) == 8 and target.release == "6.1.0-47-amd64"
        assert target.types is not None
    assert len(parse_symvers(symvers_text())) == 60
    assert parse_config(config_text())["CONFIG_CC_IS_GCC"] == "y"
    pp = Preprocessor([], dict(CHEADER_DEFINES))
    pp.process(cheader_text())
    assert pp.string("VERMAGIC_STRING") == "6.1.0-56-amd64 SMP modversions "
    for command in SHELL_SEEDS:
        assert parse(tokenize(command)).items, command


# -- regression inputs ------------------------------------------------------------------------

# Crashes found by tools/fuzz.py whose fix has not landed yet: xfail(strict=False) with
# the owner file as the reason. Empty: every crash found so far is fixed.
CRASH_OWNERS: dict[str, str] = {}


def load_crash(name: str) -> tuple[Target, object]:
    """The target a synthetic-crash-<target>-NNN.bin file is for, and its input."""
    target = BY_NAME[name.split("-")[2]]
    with open(os.path.join(CRASHES, name), "rb") as f:
        raw = f.read()
    if target.name == "reporters":
        return target, json.loads(raw)
    if target.name in ("symvers", "kconfig", "cheader", "shell"):
        return target, raw.decode("utf-8", "surrogatepass")
    return target, raw


def _crash_files() -> list[object]:
    names = sorted(f for f in os.listdir(CRASHES) if f.startswith("synthetic-crash-"))
    return [
        pytest.param(
            n,
            id=n,
            marks=[pytest.mark.xfail(strict=False, reason=CRASH_OWNERS[n])]
            if n in CRASH_OWNERS
            else [],
        )
        for n in names
    ]


@pytest.mark.parametrize("name", _crash_files())
def test_replay_crash(name: str) -> None:
    target, value = load_crash(name)
    target.run(value)


def test_crash_files_name_a_target() -> None:
    for param in _crash_files():
        name = param.values[0]  # type: ignore[attr-defined]
        assert name.split("-")[2] in BY_NAME, name
