"""The prototypes of a kernel's exported functions, from its headers alone.

``kernel diff`` ranks the structs whose layout changed by how many exports take or
return them. A kernel image's BTF has the prototypes (its FUNC records); a headers
package has no BTF, so the headers probe is asked for them:

1. ``linux/module.h`` and the headers of :data:`HEADERS` are preprocessed (``-E``,
   ``-MD``: every header read is checked to lie inside the tree, as for the probe);
2. every function body at file scope is cut out (:func:`without_bodies`); an export
   counts as declared when its name stands before ``(`` in what is left, not after
   ``.`` or ``->``. Each one gets a line ``__typeof__(name) *__abicheck_fn_name;``;
3. gcc compiles that text with ``-gbtf`` (gcc 12 and later): its BTF holds each
   prototype, as a VAR pointing to a FUNC_PROTO, and every struct the prototypes reach,
   read with the same reader as a kernel image's BTF.

BTF, not DWARF: on the same translation unit (6.1.0-47, 50 headers, 4,860 prototypes)
``-g`` took 1.9 s to compile and pyelftools 1.6 s to read, ``-gbtf`` 0.9 s and 0.16 s.

Which headers (:data:`HEADERS`): tools/probe_headers.py preprocessed each of about a
hundred headers drivers include most (device model, buses, networking, block, file
systems, DMA, sound, media, input...) alone after linux/module.h on 6.1.0-47, counted the
vmlinux exports each declares, and kept, greedily, the header adding the most exports not
yet declared until none added 60: eleven headers, 5,906 of 10,488 vmlinux exports
(linux/module.h alone: 964). The cost is the compiler's front end, which more headers
barely raise (the preprocessing of linux/module.h alone is most of it). Headers absent
from a tree (renamed or removed between releases) are left out, and so are those that do
not compile there, by name in the note.

Both kernels are probed at once: two compilers run side by side (Popen, no threads), and
the result is cached like the probe's (per tree inputs, compiler and header list).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Collection, Generator, Sequence
from dataclasses import dataclass

from abicheck.model import KernelTarget, StructLayout
from abicheck.readers.btf import BTF_KIND_FUNC_PROTO, BTF_KIND_PTR, Btf, BtfError
from abicheck.targets.probe import (
    OUTPUT_LIMIT,
    TIMEOUT_SECONDS,
    Compiler,
    ProbeSpec,
    ProbeUnavailable,
    _include_dirs,
    cache_dir,
    cache_key,
    checked_inputs,
    compiler_argv,
    compiler_env,
    compiler_for,
    dependencies,
    limits,
)

CACHE_FORMAT = 1
PREFIX = "__abicheck_fn_"
MAX_ATTEMPTS = 6  # compiles per stage, each leaving out what broke the previous one

HEADERS = (  # in the order chosen: each adds the most exports the ones before lack
    "net/tcp.h",  # with what it includes: 3,842 of 6.1.0-47's 10,488 vmlinux exports
    "media/v4l2-device.h",
    "linux/jbd2.h",
    "linux/cpufreq.h",
    "linux/serial_core.h",
    "linux/gpio/driver.h",
    "linux/hid.h",
    "linux/efi.h",
    "linux/iommu.h",
    "linux/blk-mq.h",
    "linux/regmap.h",  # the last to add 60 or more
)

_TOKENS = re.compile(rb'"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'|[{}]')
_DECLARED = re.compile(rb"(?<![\w.>])([A-Za-z_]\w{0,127})\s*\(")
_SOURCE_LINE = re.compile(r"probe\.c:(\d+)")
_TEXT_LINE = re.compile(r"probe\.btf\.i:(\d+)")


@dataclass
class Prototypes:
    """The exported functions a tree's headers declare, with their prototypes' BTF."""

    btf: Btf
    functions: dict[str, int]  # export → its FUNC_PROTO's id in btf
    headers: tuple[str, ...]  # compiled, linux/module.h first
    dropped: tuple[str, ...]  # of HEADERS: absent from the tree or not compiling there
    compiler: str
    cached: bool
    source: str  # "probe-btf:DIR": the layouts' producer, for kernel_diff

    def struct(self, name: str, flatten: bool = False) -> StructLayout | None:
        """ "struct NAME" / "union NAME" as these headers define it."""
        try:
            tid = self.btf.find_struct(name)
            return None if tid is None else self.btf.struct_layout(tid, self.source, flatten)
        except BtfError:
            return None

    def describe(self) -> str:
        how = "cached" if self.cached else "compiled now"
        return (
            f"probe of {len(self.headers)} headers ({self.compiler} -gbtf, {how}): "
            f"{len(self.functions):,} exported prototypes"
        )


def _functions(btf: Btf) -> dict[str, int]:
    out = {}
    for name, tid in btf.variables(PREFIX).items():
        ptr = btf.type(tid)
        if ptr.kind == BTF_KIND_PTR and btf.kind(ptr.size_or_type) == BTF_KIND_FUNC_PROTO:
            out[name[len(PREFIX) :]] = ptr.size_or_type  # a variable's export has none
    return out


def _cache_paths(spec: ProbeSpec, compiler: Compiler) -> tuple[str, str] | None:
    directory = cache_dir()
    if directory is None:
        return None
    key = cache_key(spec, compiler, "prototypes", str(CACHE_FORMAT), *HEADERS)
    base = os.path.join(directory, "probe", "proto-" + key)
    return base + ".json", base + ".btf"


def _load_cache(paths: tuple[str, str], source: str) -> Prototypes | None:
    """A cache entry, or None when absent, stale (a header changed) or malformed."""
    try:
        with open(paths[0], "rb") as f:
            d = json.loads(f.read(1 << 20))
        if not isinstance(d, dict) or d.get("format") != CACHE_FORMAT:
            return None
        for row in d["inputs"]:
            st = os.stat(str(row[0]))
            if [st.st_size, st.st_mtime_ns] != row[1:]:
                return None
        with open(paths[1], "rb") as f:
            btf = Btf.from_bytes(f.read(OUTPUT_LIMIT))
        return Prototypes(
            btf,
            _functions(btf),
            tuple(str(h) for h in d["headers"]),
            tuple(str(h) for h in d["dropped"]),
            str(d["compiler"]),
            True,
            source,
        )
    except (OSError, ValueError, TypeError, KeyError, IndexError, BtfError, RecursionError):
        return None


def _save_cache(paths: tuple[str, str], found: Prototypes, inputs: list[str]) -> None:
    deps = []
    for p in inputs:
        try:
            st = os.stat(p)
        except OSError:
            continue
        deps.append([p, st.st_size, st.st_mtime_ns])
    entry = {
        "format": CACHE_FORMAT,
        "compiler": found.compiler,
        "headers": list(found.headers),
        "dropped": list(found.dropped),
        "inputs": deps,
    }
    try:
        directory = os.path.dirname(paths[0])
        os.makedirs(directory, mode=0o700, exist_ok=True)
        for path, data in ((paths[1], found.btf.raw), (paths[0], json.dumps(entry).encode())):
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".proto-")
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)  # the .btf first: a .json always has its .btf
    except OSError:
        pass  # a cache that cannot be written costs the next run a compile, nothing more


class _Step:
    """One compiler run: started now, waited for by the driver."""

    def __init__(self, argv: list[str], work: str, name: str) -> None:
        self.err_path = os.path.join(work, name + ".err")
        with open(self.err_path, "wb") as err:
            try:
                self.proc: subprocess.Popen[bytes] | None = subprocess.Popen(
                    argv,
                    cwd=work,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,  # a file, not a pipe: two compilers never block on output
                    env=compiler_env(),
                    preexec_fn=limits,
                )
            except OSError as e:
                raise ProbeUnavailable(f"{argv[0]}: cannot run: {e}") from None

    def wait(self) -> tuple[int, str]:
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.kill()
            raise ProbeUnavailable(
                f"the compiler did not finish within {TIMEOUT_SECONDS} s on the headers"
            ) from None
        with open(self.err_path, "rb") as f:
            return rc, f.read(1 << 20).decode("utf-8", "replace")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def without_bodies(text: bytes) -> bytes:
    """The preprocessed headers with every function body at file scope replaced by ``;``:
    what is left declares the same types and prototypes, and gcc compiles it 2.4 times as
    fast (the bodies of static inline functions are most of what it parses). A body is a
    ``{`` at file scope after ``)``; struct, union, enum and initialiser braces follow a
    name, a keyword or ``=``. String and character literals are skipped whole."""
    out, last, depth, start, body = [], 0, 0, 0, False
    for m in _TOKENS.finditer(text):
        c = m.group()
        if c == b"{":
            if depth == 0:
                start = m.start()
                before = text[max(0, start - 256) : start].rstrip()
                body = before.endswith(b")")
            depth += 1
        elif c == b"}" and depth > 0:
            depth -= 1
            if depth == 0 and body:
                out += [text[last:start], b";"]
                last, body = m.end(), False
    return b"".join(out) + text[last:]


def _bad_lines(pattern: re.Pattern[str], diagnostics: str) -> set[int]:
    return {int(m.group(1)) for m in pattern.finditer(diagnostics)}


def _first_error(diagnostics: str) -> str:
    return next((ln for ln in diagnostics.splitlines() if "error" in ln), "")[:200]


def _steps(
    spec: ProbeSpec, compiler: Compiler, exports: Collection[str], work: str
) -> Generator[_Step, tuple[int, str], Prototypes]:
    source = f"probe-btf:{spec.dirs[0]}"  # gcc's BTF: not the DWARF probe's "probe:"
    paths = _cache_paths(spec, compiler)
    if paths is not None:
        found = _load_cache(paths, source)
        if found is not None:
            return found
    base, builtin = compiler_argv(spec, compiler)
    incs = _include_dirs(spec)
    headers = [h for h in HEADERS if any(os.path.isfile(os.path.join(d, h)) for d in incs)]
    dropped = [h for h in HEADERS if h not in headers]
    src, text_path = os.path.join(work, "probe.c"), os.path.join(work, "probe.i")
    deps = os.path.join(work, "probe.d")
    for _attempt in range(MAX_ATTEMPTS):
        lines = ["#include <linux/module.h>", *(f"#include <{h}>" for h in headers)]
        with open(src, "w") as f:
            f.write("\n".join(lines) + "\n")
        argv = [*base, "-E", "-P", "-MD", "-MF", deps, "-o", text_path, src]
        rc, diagnostics = yield _Step(argv, work, "preprocess")
        if rc == 0:
            break
        # a header that does not preprocess here: left out, by the line including it
        bad = {
            lines[n - 1][len("#include <") : -1]
            for n in _bad_lines(_SOURCE_LINE, diagnostics)
            if n > 1
        }
        bad &= set(headers)
        if not bad:
            raise ProbeUnavailable(
                f"the headers do not preprocess with {compiler.version}: "
                f"{_first_error(diagnostics)}"
            )
        headers = [h for h in headers if h not in bad]
        dropped += sorted(bad)
    else:
        raise ProbeUnavailable(f"the headers do not preprocess with {compiler.version}")
    inputs = checked_inputs(spec, builtin, dependencies(deps), work)
    with open(text_path, "rb") as f:
        text = f.read(OUTPUT_LIMIT)
    full, text = text, without_bodies(text)
    # declarations are what is left at file scope: calls were in the bodies
    names = {n.decode() for n in _DECLARED.findall(text)}
    declared = sorted(names & set(exports))
    if not text.endswith(b"\n"):
        text += b"\n"
    first = text.count(b"\n") + 2  # the line of the first prototype, after struct module's
    obj = os.path.join(work, "probe.o")
    for _attempt in range(MAX_ATTEMPTS):
        with open(os.path.join(work, "probe.btf.i"), "wb") as f:
            f.write(text)
            f.write(b"struct module *__abicheck_module;\n")  # struct module, always
            f.write(b"".join(f"__typeof__({n}) *{PREFIX}{n};\n".encode() for n in declared))
        argv = [*base, "-c", "-gbtf", "-x", "cpp-output", "-o", obj, "probe.btf.i"]
        rc, diagnostics = yield _Step(argv, work, "compile")
        if rc == 0:
            break
        if "-gbtf" in diagnostics and ("unrecognized" in diagnostics or "unknown" in diagnostics):
            raise ProbeUnavailable(f"{compiler.version} cannot emit BTF (-gbtf: gcc 12 or later)")
        # a name that is not a function declared at file scope after all: left out
        wrong = {n - first for n in _bad_lines(_TEXT_LINE, diagnostics) if n >= first}
        if not wrong and full:
            # a body that was not one after all: the whole text, as preprocessed
            text, full = full if full.endswith(b"\n") else full + b"\n", b""
            first = text.count(b"\n") + 2
            continue
        if not wrong:
            raise ProbeUnavailable(
                f"the prototypes do not compile with {compiler.version}: "
                f"{_first_error(diagnostics)}"
            )
        declared = [n for i, n in enumerate(declared) if i not in wrong]
    else:
        raise ProbeUnavailable(f"the prototypes do not compile with {compiler.version}")
    from abicheck.readers.btf import btf_from_elf

    try:
        btf = btf_from_elf(obj)
    except BtfError as e:
        raise ProbeUnavailable(f"cannot read the probe's BTF: {e}") from None
    found = Prototypes(
        btf,
        _functions(btf),
        ("linux/module.h", *headers),
        tuple(dropped),
        compiler.version,
        False,
        source,
    )
    if paths is not None:
        _save_cache(paths, found, inputs)
    return found


def probe_prototypes(
    jobs: Sequence[tuple[ProbeSpec, Collection[str]]],
) -> list[Prototypes | ProbeUnavailable]:
    """Probe each (tree, its export names) at once, one compiler per tree running side by
    side; each result is the prototypes or why there are none."""
    results: list[Prototypes | ProbeUnavailable | None] = [None] * len(jobs)
    running: dict[int, tuple[Generator[_Step, tuple[int, str], Prototypes], _Step]] = {}
    with tempfile.TemporaryDirectory(prefix="abicheck-proto-") as root:

        def advance(
            i: int, gen: Generator[_Step, tuple[int, str], Prototypes], sent: object
        ) -> None:
            try:
                step = gen.send(sent)  # type: ignore[arg-type]
                running[i] = (gen, step)
            except StopIteration as stop:
                results[i] = stop.value
                running.pop(i, None)
            except ProbeUnavailable as e:
                results[i] = e
                running.pop(i, None)
            except OSError as e:  # the scratch directory
                results[i] = ProbeUnavailable(f"the probe's scratch files: {e}")
                running.pop(i, None)

        try:
            for i, (spec, exports) in enumerate(jobs):
                try:
                    compiler = Compiler.find(compiler_for(spec.config, spec.arch))
                    work = os.path.join(root, str(i))
                    os.mkdir(work)
                    advance(i, _steps(spec, compiler, exports, work), None)
                except ProbeUnavailable as e:
                    results[i] = e
            while running:
                for i, (gen, step) in list(running.items()):
                    try:
                        outcome = step.wait()
                    except ProbeUnavailable as e:
                        results[i] = e
                        running.pop(i)
                        continue
                    advance(i, gen, outcome)
        finally:
            for _gen, step in running.values():
                step.kill()
    return [r if r is not None else ProbeUnavailable("not probed") for r in results]


# -- for kernel diff --------------------------------------------------------------------------


def _spec_of(target: KernelTarget) -> ProbeSpec:
    from abicheck.targets.headers import source_dirs
    from abicheck.targets.layouts import _probe
    from abicheck.targets.probe import ProbeTypes

    if isinstance(target.types, ProbeTypes):
        return target.types.spec
    if target.kind == "headers" and os.path.isdir(target.source):
        return _probe(target, source_dirs(target.source)).spec
    build = f"/lib/modules/{target.release}/build"
    if target.kind == "running" and os.path.isdir(build):
        return _probe(target, source_dirs(build)).spec
    raise ProbeUnavailable(f"no headers to compile (a {target.kind})")


def probe_targets(targets: Sequence[KernelTarget]) -> list[Prototypes | str]:
    """Each target's exported prototypes, the compilers of all running at once; for a
    target that cannot be probed, one line saying why."""
    out: list[Prototypes | str] = []
    jobs: list[tuple[ProbeSpec, Collection[str]]] = []
    for t in targets:
        try:
            jobs.append((_spec_of(t), list(t.exports or ())))
            out.append("")
        except ProbeUnavailable as e:
            out.append(str(e))
    found = iter(probe_prototypes(jobs))
    for i, why in enumerate(out):
        if not why:
            r = next(found)
            out[i] = r if isinstance(r, Prototypes) else str(r)
    return out


def with_struct_module(target: KernelTarget, found: Prototypes) -> KernelTarget:
    """The target with struct module from its prototypes' BTF, when it has no complete
    layout of its own (no BTF nor DWARF found, at most the reference modules' three
    members, which must agree)."""
    from dataclasses import replace

    from abicheck.targets.layouts import _agrees

    old = target.struct_module
    if old is not None and len(old.members) > 3:
        return target
    layout = found.struct("struct module")
    if layout is None:
        return target
    described = found.describe()
    if old is not None:
        if not _agrees(layout, old):
            note = (
                f"the kernel's own modules have struct module of {old.size} bytes, the "
                f"headers {layout.size}: the headers are not this kernel's"
            )
            return replace(target, notes=(*target.notes, note))
        described += f", agreeing with {old.source.split(':', 1)[-1]}"
    return replace(target, struct_module=layout, layout_source=described, layout_gap=None)
