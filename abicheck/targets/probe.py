"""Struct layouts from a kernel's headers alone: a small C probe, compiled with debug info.

Debian's 6.1 headers, Ubuntu's ``linux-headers-*`` and Fedora's ``kernel-devel`` ship no
BTF ``vmlinux``, yet the headers are exactly what the kernel was compiled from: the same
``struct module``, the same ``.config`` in ``include/generated/autoconf.h``. A
translation unit that includes ``linux/module.h`` (and the headers declaring the structs a
module uses) and holds one pointer to each struct makes the compiler emit their DWARF,
which the DWARF reader turns into layouts. On Debian 6.1.0-47, 6.1.0-56 and 6.12.107 the
result is member for member the layout of the kernel's own BTF (tests/test_probe.py).

What runs: only the C compiler, with an argument list written here, on C headers. Never a
Makefile, script or program of the tree, never the module's code. The headers are input
like any other: the include path holds only the tree's own directories, every header the
compiler read is checked (``-MD``) to lie inside the tree or the compiler's own
directory, and the compiler runs with a timeout, CPU/memory/file-size limits, an empty
environment and a scratch directory.

Results are cached per (tree inputs, compiler, flags) under ``$XDG_CACHE_HOME/abicheck``,
with the size and mtime of every header read, so that a pre-commit run pays for the
compile once; an entry is validated as any other input when read.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from abicheck import __version__, ruledata
from abicheck.model import Member, StructLayout

CACHE_FORMAT = 1
TIMEOUT_SECONDS = 60
MEMORY_LIMIT = 2 << 30  # the probe's gcc needs ~150 MB; a hostile header gets no more
OUTPUT_LIMIT = 64 << 20  # the object and dependency files
MAX_STRUCTS = 4096  # structs asked for in one probe: a module uses a few hundred at most
MAX_CACHE_BYTES = 16 << 20
# Options whose plugin randomises struct layouts per build: a compile here cannot
# reproduce the kernel's (CONFIG_RANDSTRUCT_* since 5.19, GCC_PLUGIN_RANDSTRUCT before).
RANDOMISING = (
    "CONFIG_RANDSTRUCT_FULL",
    "CONFIG_RANDSTRUCT_PERFORMANCE",
    "CONFIG_GCC_PLUGIN_RANDSTRUCT",
)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_HEADER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.+-]*){0,8}\.h")


class ProbeUnavailable(Exception):
    """The probe cannot stand for the kernel here; the message says why, in one line."""


@dataclass(frozen=True)
class ProbeSpec:
    """What a probe of one kernel tree needs: its directories, arch and config."""

    dirs: tuple[str, ...]  # the build (flavour) directory, then its source/common sibling
    srcarch: str
    arch: str
    config: Mapping[str, str]
    digest: str  # the target's digest: its .config, version headers, Module.symvers


def _arch_flags(arch: str) -> list[str]:
    data = ruledata.arch_data().get(arch)
    if not data or "probe_cflags" not in data:
        raise ProbeUnavailable(f"no compiler flags known for architecture {arch or '?'}")
    return [str(f) for f in data["probe_cflags"]]


def compiler_for(config: Mapping[str, str], arch: str) -> str:
    """The compiler matching the one the kernel was built with: $CC, else clang for a
    CONFIG_CC_IS_CLANG kernel, else gcc (with $CROSS_COMPILE or the arch's triplet
    when the kernel's arch is not this machine's)."""
    if os.environ.get("CC"):
        return os.environ["CC"]
    if config.get("CONFIG_CC_IS_CLANG") == "y":
        return "clang"
    data = ruledata.arch_data().get(arch, {})
    if data.get("uname_machine") not in (None, os.uname().machine):
        prefix = os.environ.get("CROSS_COMPILE") or data.get("cross_compile", "")
        return f"{prefix}gcc"
    return "gcc"


def _include_dirs(spec: ProbeSpec) -> list[str]:
    from abicheck.targets.headers import include_dirs

    return include_dirs(list(spec.dirs), spec.srcarch)


def header_for(decl_file: str | None, include_dirs: Iterable[str]) -> str | None:
    """The ``#include <...>`` name of a header a module's DWARF names (a path on the
    machine that built it), when the target's include path holds that header."""
    if not decl_file or not decl_file.endswith(".h"):
        return None
    path = decl_file.replace("\\", "/")
    cut = path.rfind("/include/")
    rel = path[cut + len("/include/") :] if cut >= 0 else path.removeprefix("include/")
    for prefix in ("generated/", "uapi/"):
        rel = rel.removeprefix(prefix)
    if not _HEADER.fullmatch(rel) or ".." in rel.split("/"):
        return None
    for d in include_dirs:
        if os.path.isfile(os.path.join(d, rel)):
            return rel
    return None


def probe_source(headers: Iterable[str], structs: Iterable[str]) -> str:
    """The translation unit: the headers, then one pointer per struct, which makes the
    compiler describe the struct (and what it embeds) in DWARF without allocating it."""
    lines = ["#include <linux/module.h>"]
    lines += [f"#include <{h}>" for h in sorted(set(headers)) if h != "linux/module.h"]
    for i, key in enumerate(sorted(set(structs))):
        lines.append(f"{key} *__abicheck_probe_{i};")
    return "\n".join(lines) + "\n"


def limits() -> None:  # runs in the child between fork and exec
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    resource.setrlimit(resource.RLIMIT_CPU, (TIMEOUT_SECONDS, TIMEOUT_SECONDS))
    resource.setrlimit(resource.RLIMIT_FSIZE, (OUTPUT_LIMIT, OUTPUT_LIMIT))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class Compiler:
    """The C compiler the probe runs. Its identity for the cache is its resolved path,
    size and mtime (no process started); its version is asked only before a compile."""

    def __init__(self, path: str) -> None:
        self.path = path

    @classmethod
    def find(cls, name: str) -> Compiler:
        path = shutil.which(name)
        if path is None:
            raise ProbeUnavailable(f"no C compiler: {name!r} is not on PATH")
        return cls(os.path.realpath(path))

    @cached_property
    def version(self) -> str:
        """ "gcc 12.2.0" """
        try:
            out = subprocess.run(
                [self.path, "-dumpfullversion", "-dumpversion"],
                capture_output=True,
                text=True,
                timeout=10,
                env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"},
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ProbeUnavailable(f"{self.path}: cannot run: {e}") from None
        family = "clang" if "clang" in os.path.basename(self.path) else "gcc"
        lines = out.stdout.strip().splitlines()
        return f"{family} {lines[0] if lines else 'unknown'}"

    def identity(self) -> str:
        try:
            st = os.stat(self.path)
        except OSError as e:
            raise ProbeUnavailable(f"{self.path}: {e.strerror or e}") from None
        return f"{self.path}:{st.st_size}:{st.st_mtime_ns}"


def compiler_argv(spec: ProbeSpec, compiler: Compiler) -> tuple[list[str], str]:
    """The compiler's arguments for a translation unit of the tree (everything but the
    output, the dependency file and the source), and the compiler's own include
    directory, the one place outside the tree a header may come from."""
    incs = _include_dirs(spec)
    first = spec.dirs[-1] if len(spec.dirs) > 1 else spec.dirs[0]
    forced = []
    for name in ("include/linux/kconfig.h", "include/linux/compiler_types.h"):
        found = next(
            (os.path.join(d, name) for d in spec.dirs if os.path.isfile(os.path.join(d, name))),
            None,
        )
        if found is None:
            raise ProbeUnavailable(f"{first}: no {name}: not a kernel headers tree")
        forced += ["-include", found]
    try:
        builtin = subprocess.run(
            [compiler.path, "-print-file-name=include"],
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
            env=compiler_env(),
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        raise ProbeUnavailable(f"{compiler.path}: cannot run: {e}") from None
    argv = [
        compiler.path,
        "-O2",
        "-nostdinc",
        "-isystem",
        builtin,
        "-D__KERNEL__",
        '-DKBUILD_MODNAME="abicheck_probe"',
        '-DKBUILD_BASENAME="abicheck_probe"',
        *_arch_flags(spec.arch),
        *(f"-I{d}" for d in incs),
        *forced,
    ]
    return argv, builtin


def compiler_env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def checked_inputs(spec: ProbeSpec, builtin: str, deps: list[str], work: str) -> list[str]:
    """The headers a compile read (its -MD list), each checked to lie inside the tree or
    the compiler's own directory; the probe's own sources in ``work`` left out."""
    allowed = [os.path.realpath(d) for d in spec.dirs] + [os.path.realpath(builtin)]
    own = os.path.realpath(work) + os.sep
    inputs = []
    directories: dict[str, str] = {}  # a thousand headers live in a few dozen directories
    for dep in deps:
        path = dep if os.path.isabs(dep) else os.path.join(work, dep)
        head, tail = os.path.split(path)
        if os.path.islink(path) or tail in ("", ".", ".."):
            real = os.path.realpath(path)
        else:
            if head not in directories:
                directories[head] = os.path.realpath(head)
            real = os.path.join(directories[head], tail)
        if real.startswith(own):
            continue
        if not any(real == a or real.startswith(a + os.sep) for a in allowed):
            raise ProbeUnavailable(f"a header includes {dep}, outside the headers tree: not probed")
        inputs.append(real)
    return inputs


def _compile(spec: ProbeSpec, compiler: Compiler, source: str) -> tuple[bytes, list[str], str]:
    """Compile the probe; (object bytes, headers read, compiler diagnostics)."""
    base, builtin = compiler_argv(spec, compiler)
    with tempfile.TemporaryDirectory(prefix="abicheck-probe-") as work:
        src = os.path.join(work, "probe.c")
        with open(src, "w") as f:
            f.write(source)
        argv = [
            *base,
            "-c",
            "-g",
            "-MD",
            "-MF",
            os.path.join(work, "probe.d"),
            "-o",
            os.path.join(work, "probe.o"),
            src,
        ]
        try:
            done = subprocess.run(
                argv,
                cwd=work,
                capture_output=True,
                timeout=TIMEOUT_SECONDS,
                stdin=subprocess.DEVNULL,
                env=compiler_env(),
                preexec_fn=limits,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise ProbeUnavailable(
                f"the compiler did not finish within {TIMEOUT_SECONDS} s on the headers"
            ) from None
        except OSError as e:
            raise ProbeUnavailable(f"{compiler.path}: cannot run: {e}") from None
        diagnostics = done.stderr.decode("utf-8", "replace")
        obj = os.path.join(work, "probe.o")
        if done.returncode != 0 or not os.path.isfile(obj):
            return b"", [], diagnostics
        with open(obj, "rb") as f:
            data = f.read(OUTPUT_LIMIT + 1)
        deps = dependencies(os.path.join(work, "probe.d"))
        inputs = checked_inputs(spec, builtin, deps, work)
        return data, inputs, diagnostics


def dependencies(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read(OUTPUT_LIMIT)
    except OSError:
        return []
    text = text.replace("\\\n", " ")
    _, _, rest = text.partition(":")
    return [p.replace("\\ ", " ") for p in re.split(r"(?<!\\)\s+", rest.strip()) if p]


_FAILED_INCLUDE = re.compile(r"probe\.c:(\d+)")


def _struct_keys(names: Iterable[str]) -> list[str]:
    out = []
    for name in names:
        kind, _, bare = name.partition(" ")
        if kind in ("struct", "union") and _IDENT.fullmatch(bare):
            out.append(f"{kind} {bare}")
    return out


class ProbeResult:
    """The structs one probe described, by "struct NAME" / "union NAME"."""

    def __init__(self, structs: dict[str, StructLayout], compiler: str, cached: bool) -> None:
        self.structs = structs
        self.compiler = compiler
        self.cached = cached


def run_probe(
    spec: ProbeSpec,
    wanted: Mapping[str, str | None],
    compiler: Compiler,
    already_read: Iterable[str] = (),
) -> tuple[dict[str, StructLayout], list[str], set[str]]:
    """Compile the probe for ``wanted`` ({"struct NAME": header or None}); returns the
    layouts of every complete struct its DWARF holds, the headers read, and the headers
    that had to be left out because they do not compile on their own.

    Headers in ``already_read`` (what an earlier probe of the tree read through
    linux/module.h) are not included again: some, like linux/task_io_accounting.h, have
    no include guard and would define their struct twice."""
    from abicheck.readers.dwarf import DwarfError, module_types

    incs = _include_dirs(spec)
    seen = set(already_read)
    headers = set()
    for h in {h for h in wanted.values() if h}:
        path = next((os.path.join(d, h) for d in incs if os.path.isfile(os.path.join(d, h))), None)
        if path is not None and os.path.realpath(path) not in seen:
            headers.add(h)
    structs = set(_struct_keys(wanted)) | {"struct module"}
    dropped: set[str] = set()
    for _attempt in range(8):
        source = probe_source(headers, structs)
        data, inputs, diagnostics = _compile(spec, compiler, source)
        if data:
            break
        # drop the headers the errors come from, and the structs only they declare
        lines = source.splitlines()
        bad = set()
        for m in _FAILED_INCLUDE.finditer(diagnostics):
            n = int(m.group(1)) - 1
            if 0 < n < len(lines) and lines[n].startswith("#include <"):
                bad.add(lines[n][len("#include <") : -1])
        if not bad and not headers:
            first = next((ln for ln in diagnostics.splitlines() if "error" in ln), "")
            raise ProbeUnavailable(
                f"the headers do not compile with {compiler.version}: {first[:200]}"
            )
        if not bad:
            # an error outside the extra headers: retry with linux/module.h alone
            dropped |= headers
            headers = set()
        else:
            dropped |= bad
            headers -= bad
    else:
        raise ProbeUnavailable(f"the headers do not compile with {compiler.version}")
    try:
        types = module_types(data)
        if types is None:
            raise ProbeUnavailable("the compiler wrote no debug info")
        layouts = types.structs()
    except DwarfError as e:
        raise ProbeUnavailable(f"cannot read the probe's debug info: {e}") from None
    source_label = f"probe:{spec.dirs[0]}"
    out = {
        key: StructLayout(layout.name, layout.size, layout.members, source_label)
        for key, layout in layouts.items()
    }
    if "struct module" not in out:
        raise ProbeUnavailable("the headers define no struct module")
    return out, inputs, dropped


# -- the cache -------------------------------------------------------------------------------


def cache_dir() -> str | None:
    """$ABICHECK_CACHE_DIR, else $XDG_CACHE_HOME/abicheck, else ~/.cache/abicheck; None
    when ABICHECK_NO_CACHE is set (``--no-cache``)."""
    if os.environ.get("ABICHECK_NO_CACHE"):
        return None
    if os.environ.get("ABICHECK_CACHE_DIR"):
        return os.environ["ABICHECK_CACHE_DIR"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "abicheck")


def cache_key(spec: ProbeSpec, compiler: Compiler, *extra: str) -> str:
    """What a compiled answer depends on: the target, its header dirs, the compiler and the
    arch's flags, and ``extra`` (another probe's own name and inputs, e.g. prototypes.py's)."""
    h = hashlib.sha256()
    for part in (
        str(CACHE_FORMAT),
        __version__,
        spec.digest,
        *(os.path.realpath(d) for d in spec.dirs),
        spec.arch,
        compiler.identity(),
        " ".join(_arch_flags(spec.arch)),
        *extra,
    ):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    return h.hexdigest()[:32]


def layout_json(layout: StructLayout) -> dict[str, Any]:
    return {
        "name": layout.name,
        "size": layout.size,
        "members": [
            [m.name, m.offset, m.size, m.type_name, m.bit_offset, m.bit_size]
            for m in layout.members
        ],
    }


def _int(v: Any, what: str, lo: int = 0, hi: int = 1 << 40) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise ValueError(f"{what} must be an integer in [{lo}, {hi}]")
    return v


def _opt_int(v: Any, what: str) -> int | None:
    return None if v is None else _int(v, what)


def _str(v: Any, what: str, limit: int = 4096) -> str:
    if not isinstance(v, str) or len(v) > limit:
        raise ValueError(f"{what} must be a string of at most {limit} characters")
    return v


def layout_from_json(key: str, d: Any, source: str) -> StructLayout:
    if not isinstance(d, dict) or not isinstance(d.get("members"), list):
        raise ValueError(f"structs.{key} must be an object with a members list")
    members = []
    for i, row in enumerate(d["members"][:10000]):
        if not isinstance(row, list) or len(row) != 6:
            raise ValueError(f"structs.{key}.members[{i}] must be a list of 6 fields")
        members.append(
            Member(
                _str(row[0], "member name", 256),
                _int(row[1], "member offset"),
                _opt_int(row[2], "member size"),
                _str(row[3], "member type"),
                _opt_int(row[4], "bit offset"),
                _opt_int(row[5], "bit size"),
            )
        )
    return StructLayout(
        _str(d.get("name"), f"structs.{key}.name", 256),
        _int(d.get("size"), f"structs.{key}.size"),
        tuple(members),
        source,
    )


class LazyLayouts(Mapping[str, StructLayout]):
    """A cache entry's structs, each validated and built when first asked for: a check
    of one module needs struct module and the few structs it uses, not all 150."""

    def __init__(self, raw: dict[str, Any], source: str) -> None:
        self._raw = raw
        self._source = source
        self._built: dict[str, StructLayout] = {}

    def __getitem__(self, key: str) -> StructLayout:
        found = self._built.get(key)
        if found is None:
            try:
                found = layout_from_json(key, self._raw[key], self._source)
            except ValueError:
                raise KeyError(key) from None  # a damaged entry: as if never probed
            self._built[key] = found
        return found

    def __contains__(self, key: object) -> bool:
        return key in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


@dataclass
class CacheEntry:
    structs: Mapping[str, StructLayout]
    asked: set[str]  # every struct key asked for, found or not
    dropped: set[str]
    compiler: str
    inputs: list[str]  # the headers the compiler read

    def dump(self) -> dict[str, Any]:
        deps = []
        for p in self.inputs:
            try:
                st = os.stat(p)
            except OSError:
                continue
            deps.append([p, st.st_size, st.st_mtime_ns])
        return {
            "format": CACHE_FORMAT,
            "compiler": self.compiler,
            "asked": sorted(self.asked),
            "dropped": sorted(self.dropped),
            "inputs": deps,
            "structs": {k: layout_json(v) for k, v in self.structs.items()},
        }


def load_cache(path: str, source: str) -> CacheEntry | None:
    """A cache entry, or None when absent, stale (a header changed) or malformed."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CACHE_BYTES + 1)
        if len(raw) > MAX_CACHE_BYTES:
            return None
        d = json.loads(raw)
        if not isinstance(d, dict) or d.get("format") != CACHE_FORMAT:
            return None
        inputs = d.get("inputs")
        if not isinstance(inputs, list):
            return None
        paths = []
        for row in inputs:
            if not isinstance(row, list) or len(row) != 3:
                return None
            st = os.stat(_str(row[0], "input"))
            if st.st_size != row[1] or st.st_mtime_ns != row[2]:
                return None  # a header changed since: probe again
            paths.append(row[0])
        structs_json = d.get("structs")
        if not isinstance(structs_json, dict) or "struct module" not in structs_json:
            return None
        structs = LazyLayouts(structs_json, source)
        structs["struct module"]
        asked = {_str(k, "asked", 300) for k in d.get("asked", [])}
        dropped = {_str(k, "dropped", 300) for k in d.get("dropped", [])}
        compiler = _str(d.get("compiler"), "compiler", 200)
        return CacheEntry(structs, asked, dropped, compiler, paths)
    except (OSError, ValueError, TypeError, RecursionError, KeyError):
        return None


def _save_cache(path: str, entry: CacheEntry) -> None:
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".probe-")
        with os.fdopen(fd, "w") as f:
            json.dump(entry.dump(), f, separators=(",", ":"))
        os.replace(tmp, path)  # atomic: parallel runs never read half an entry
    except OSError as e:
        print(f"abicheck: warning: cannot write the layout cache {path}: {e}", file=sys.stderr)


class ProbeTypes:
    """A kernel's struct layouts compiled from its headers: a TypeSource.

    ``struct module`` is probed when first needed; the structs a module uses are asked
    for together through :meth:`layouts`, one compile for all of them (or none when the
    cache has them).
    """

    def __init__(self, spec: ProbeSpec) -> None:
        if any(spec.config.get(o) == "y" for o in RANDOMISING):
            option = next(o for o in RANDOMISING if spec.config.get(o) == "y")
            raise ProbeUnavailable(
                f"{option}=y randomises struct layouts per build: a compile of the "
                "headers cannot reproduce the kernel's (give its BTF: --vmlinux)"
            )
        self.spec = spec
        self.source = f"probe:{spec.dirs[0]}"
        self.compiler = Compiler.find(compiler_for(spec.config, spec.arch))
        self._key = cache_key(spec, self.compiler)
        directory = cache_dir()
        self._cache_path = (
            os.path.join(directory, "probe", self._key + ".json") if directory else None
        )
        self.cached = False
        self.problem: str | None = None  # why the last layouts() could not compile
        self._entry: CacheEntry | None = None

    def _load(self, wanted: Mapping[str, str | None]) -> CacheEntry:
        keys = set(_struct_keys(wanted)) | {"struct module"}
        entry = self._entry
        if entry is None and self._cache_path is not None:
            entry = load_cache(self._cache_path, self.source)
            self.cached = entry is not None
        if entry is not None and keys <= entry.asked:
            self._entry = entry
            return entry
        asked = keys | (entry.asked if entry else set())
        headers = dict.fromkeys(asked)
        headers.update({k: v for k, v in wanted.items() if k in keys})
        if entry is not None:
            for key in entry.asked:  # keep earlier modules' headers in the probe
                headers.setdefault(key, None)
        if entry is None and keys != {"struct module"}:
            entry = self._load({})  # linux/module.h alone first: what it already includes
        structs, inputs, dropped = run_probe(
            self.spec,
            {k: v for k, v in headers.items() if k != "struct module"},
            self.compiler,
            entry.inputs if entry else (),
        )
        if entry is not None:  # keep what earlier probes found (a header may drop out)
            structs = {**entry.structs, **structs}
            inputs = sorted(set(inputs) | set(entry.inputs))
            dropped |= entry.dropped
        entry = CacheEntry(structs, asked, dropped, self.compiler.version, inputs)
        self.cached = False
        if self._cache_path is not None:
            _save_cache(self._cache_path, entry)
        self._entry = entry
        return entry

    def struct_module(self) -> StructLayout:
        return self._load({}).structs["struct module"]

    def struct(self, name: str) -> StructLayout | None:
        entry = self._entry or self._load({})
        for key in (name, f"struct {name}", f"union {name}"):
            if key in entry.structs:
                return entry.structs[key]
        return None

    def layouts(self, wanted: Mapping[str, str | None]) -> dict[str, StructLayout | None]:
        """The layouts of ``wanted`` ({"struct NAME": the header declaring it}), one
        compile for those not yet known."""
        wanted = dict(list(wanted.items())[:MAX_STRUCTS])
        try:
            entry = self._load(wanted)
        except ProbeUnavailable as e:
            # struct module was probed; these structs stay uncompared (LY004 says so)
            self.problem = str(e)
            entry = self._entry or self._load({})
        return {k: entry.structs.get(k) for k in wanted}

    def known(self) -> dict[str, StructLayout]:
        """Every struct probed so far (for a profile saved from the headers alone)."""
        entry = self._entry or self._load({})
        return dict(entry.structs)

    def describe(self) -> str:
        how = "cached" if self.cached else "compiled now"
        version = self._entry.compiler if self._entry else self.compiler.version
        text = f"probe compiled against the headers ({version}, {how})"
        built_with = self.spec.config.get("CONFIG_CC_VERSION_TEXT", "").strip('"')
        if built_with and _release_of(built_with) != version.split(" ", 1)[-1]:
            # struct layout is the C ABI's and does not change between compiler versions;
            # said all the same, since a compiler with other defaults is a known risk
            text += f"; the kernel was built with {built_with}"
        return text


def _release_of(version_text: str) -> str:
    """The version number at the end of a compiler banner: 12.2.0 of gcc-12 (Debian ...) 12.2.0."""
    words = version_text.split()
    return words[-1] if words else ""


class LayoutTable:
    """Layouts saved earlier (a profile made from the headers alone): a TypeSource that
    knows what was probed then, and nothing more."""

    def __init__(self, structs: dict[str, StructLayout], source: str) -> None:
        self.structs = structs
        self.source = source

    def struct(self, name: str) -> StructLayout | None:
        for key in (name, f"struct {name}", f"union {name}"):
            if key in self.structs:
                return self.structs[key]
        return None

    def layouts(self, wanted: Mapping[str, str | None]) -> dict[str, StructLayout | None]:
        return {k: self.structs.get(k) for k in wanted}
