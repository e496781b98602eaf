#!/usr/bin/env python3
"""Struct layout drift: modules built against headers whose config drifted from the kernel's.

    python tools/drift.py measure [--role 6.1-a|6.12] [--include-off] [--keep-trees]
    python tools/drift.py build-set
    python tools/drift.py candidates [--role ROLE]   # the options measure would flip

measure prints a table and writes <cache>/drift/measure-<role>.json; --include-off also
flips the guards that are off to y. The drifted copies are removed after measuring (the
hello.ko of each stays, in <cache>/drift/measure-<role>/<option>/) unless --keep-trees.

The classic: a copy of the distribution's headers is `make oldconfig`-ed on a machine
without pahole, CONFIG_DEBUG_INFO_BTF_MODULES turns off, Module.symvers stays the
distribution's. Every CRC matches and vermagic is identical, yet the module's own
`struct module` (.gnu.linkonce.this_module) has another layout: the relocation that
stores cleanup_module lands on a word the kernel already initialised (insmod:
"Skipping invalid relocation target, existing value is nonzero") or on another member.
Debian's 6.1 module.h keeps the BTF members unconditional, so there that option moves
nothing; 6.12's does not.

`make_drifted_headers` copies a role's flavour headers directory into the cache and flips
options the way Kconfig would have written them (.config, include/config/auto.conf,
include/generated/autoconf.h, include/generated/rustc_cfg); `build_against` builds a test
module against it. `measure` flips, one at a time, every option that is on and guards a
member of `struct module` (or of a struct it embeds by value) in that headers package's
own include/linux/module.h, and compares the module's layout with the kernel's BTF.
`build-set` makes the fixed cases the tests use and writes <cache>/drift/manifest.json.

The cache is $ABICHECK_TESTDATA, else <repo>/.cache/testdata (tools/testdata.py fetches
it). Nothing from the packages runs except Kbuild itself (make, modpost, gcc, and pahole
for module BTF), as for tools/testdata.py.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from abicheck.readers.btf import (  # noqa: E402  (after the sys.path line above)
    BTF_KIND_ARRAY,
    BTF_KIND_STRUCT,
    BTF_KIND_UNION,
    Btf,
    btf_from_file,
)
from abicheck.readers.elf import ElfImage  # noqa: E402
from abicheck.readers.module import read_module  # noqa: E402

CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
DRIFT = os.path.join(CACHE, "drift")
MODULES_SRC = os.path.join(REPO, "tests", "modules")

# Where Kconfig's output lives in a headers tree; .config is its input. For an external
# module build Kbuild reads only the first two (auto.conf for make, autoconf.h for the
# compiler); rustc_cfg is kept consistent so the copy is what syncconfig would have made.
CONFIG = ".config"
AUTO_CONF = "include/config/auto.conf"
AUTOCONF_H = "include/generated/autoconf.h"
RUSTC_CFG = "include/generated/rustc_cfg"
GENERATED = (AUTO_CONF, AUTOCONF_H, RUSTC_CFG)

# Options the brief names that are not (or no longer) guards in every module.h: measured
# anyway as controls. Debian's 6.1 module.h has `#if 1` around the BTF members, so there
# DEBUG_INFO_BTF_MODULES should move nothing.
CONTROLS = ("DEBUG_INFO_BTF_MODULES",)


def log(msg: str) -> None:
    print(f"drift: {msg}", file=sys.stderr, flush=True)


def load_manifest() -> dict:
    path = os.path.join(CACHE, "manifest.json")
    if not os.path.exists(path):
        raise SystemExit(f"drift: {path} missing: run tools/testdata.py fetch first")
    with open(path) as f:
        return json.load(f)


def kernel(role: str) -> dict:
    k = load_manifest()["kernels"].get(role)
    if k is None:
        raise SystemExit(f"drift: no kernel role {role!r} in the testdata manifest")
    return k


def common_dir(headers: str) -> str:
    """The -common headers directory the flavour Makefile includes by absolute path."""
    with open(os.path.join(headers, "Makefile")) as f:
        m = re.search(r"^include\s+(/\S+)/Makefile\s*$", f.read(), re.M)
    if m is None or not os.path.isdir(m.group(1)):
        raise RuntimeError(f"{headers}/Makefile does not include an existing -common Makefile")
    return m.group(1)


# -- the config files ----------------------------------------------------------------------


def _name(option: str) -> str:
    return option.removeprefix("CONFIG_")


def _value(value: str | None) -> str | None:
    """The value as .config spells it: None for "not set", y, m, an int or hex number
    verbatim, anything else a string, quoted as Kconfig quotes it."""
    if value is None or value == "n":
        return None
    if value in ("y", "m") or re.fullmatch(r"-?\d+|0[xX][0-9a-fA-F]+", value):
        return value
    if value.startswith('"') and value.endswith('"') and len(value) > 1:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _unquoted(value: str) -> str:
    """A string as auto.conf has it: Kconfig (since 5.18) writes auto.conf strings
    without quotes, while .config, autoconf.h and rustc_cfg keep them."""
    if value.startswith('"'):
        return re.sub(r'\\(["\\])', r"\1", value[1:-1])
    return value


def read_auto_conf(headers: str) -> dict[str, str]:
    """Option name (no CONFIG_) -> value, as Kbuild's make sees them."""
    out = {}
    with open(os.path.join(headers, AUTO_CONF)) as f:
        for line in f:
            m = re.match(r"CONFIG_(\w+)=(.*)$", line.rstrip("\n"))
            if m:
                out[m.group(1)] = m.group(2)
    return out


def _replace_lines(text: str, pattern: str, new: list[str]) -> str:
    """Remove every line matching ``pattern``; put ``new`` where the first one was (Kconfig
    keeps .config in menu order; the other files' order carries no meaning), else at the
    end."""
    rx = re.compile(pattern, re.M)
    first = rx.search(text)
    text = rx.sub("", text)
    block = "".join(line + "\n" for line in new)
    if first is None:
        if text and not text.endswith("\n"):
            text += "\n"
        return text + block
    return text[: first.start()] + block + text[first.start() :]


def _flip_text(path: str, old: str | None, opt: str, value: str | None, text: str) -> str:
    q = re.escape(opt)
    if path == CONFIG:
        line = f"CONFIG_{opt}={value}" if value else f"# CONFIG_{opt} is not set"
        return _replace_lines(text, rf"^(CONFIG_{q}=.*|# CONFIG_{q} is not set)\n", [line])
    if path == AUTO_CONF:
        new = [f"CONFIG_{opt}={_unquoted(value)}"] if value else []
        return _replace_lines(text, rf"^CONFIG_{q}=.*\n", new)
    if path == AUTOCONF_H:
        # `m` is spelled CONFIG_X_MODULE; remove that spelling only if X was m, since
        # another option could be named X_MODULE
        names = q + ("(_MODULE)?" if old == "m" else "")
        if value == "y":
            new = [f"#define CONFIG_{opt} 1"]
        elif value == "m":
            new = [f"#define CONFIG_{opt}_MODULE 1"]
        elif value:
            new = [f"#define CONFIG_{opt} {value}"]
        else:
            new = []
        return _replace_lines(text, rf"^#define CONFIG_{names} .*\n", new)
    if path == RUSTC_CFG:
        # bools and tristates get a bare --cfg too; every value is quoted
        if value in ("y", "m"):
            new = [f"--cfg=CONFIG_{opt}", f'--cfg=CONFIG_{opt}="{value}"']
        elif value:
            quoted = value if value.startswith('"') else f'"{value}"'
            new = [f"--cfg=CONFIG_{opt}={quoted}"]
        else:
            new = []
        return _replace_lines(text, rf"^--cfg=CONFIG_{q}(=.*)?\n", new)
    raise ValueError(path)


def _write(path: str, text: str) -> None:
    # a new file renamed over the old: a hard link (or the original) is never written
    tmp = path + ".drift-tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def apply_flips(headers: str, flips: dict[str, str | None]) -> dict[str, str | None]:
    """Rewrite the config files of ``headers`` (a copy) as Kconfig would have written them
    for ``flips``; return each option's previous value (None: not set)."""
    before = read_auto_conf(headers)
    old = {_name(o): before.get(_name(o)) for o in flips}
    for rel in (CONFIG, *GENERATED):
        path = os.path.join(headers, rel)
        if not os.path.exists(path):  # rustc_cfg is absent from older trees
            continue
        with open(path) as f:
            text = f.read()
        for opt, value in flips.items():
            text = _flip_text(rel, old[_name(opt)], _name(opt), _value(value), text)
        _write(path, text)
    # syncconfig touches include/config/<OPTION> of every option that changed, so that
    # fixdep's dependencies rebuild what used it; a fresh module build does not care, the
    # copy does it anyway to be what Kconfig would have left behind
    for opt in flips:
        marker = os.path.join(headers, "include", "config", _name(opt))
        if os.path.lexists(marker):
            os.unlink(marker)
        open(marker, "w").close()
    # .config older than what was generated from it: with M= Kbuild never runs
    # syncconfig (may-sync-config is cleared for KBUILD_EXTMOD), but a tree whose auto.conf
    # is older than .config is one a full kernel build would "SYNC"; keep it plausible
    now = time.time()
    os.utime(os.path.join(headers, CONFIG), (now - 2, now - 2))
    for rel in GENERATED:
        path = os.path.join(headers, rel)
        if os.path.exists(path):
            os.utime(path, (now - 1, now - 1))
    check_flips(headers, flips)
    return old


def check_flips(headers: str, flips: dict[str, str | None]) -> None:
    """Every file says what ``flips`` says (a failed regex would otherwise go unnoticed)."""
    auto = read_auto_conf(headers)
    with open(os.path.join(headers, AUTOCONF_H)) as f:
        defines = set(re.findall(r"^#define CONFIG_(\w+) ", f.read(), re.M))
    with open(os.path.join(headers, CONFIG)) as f:
        config = f.read()
    for opt, value in flips.items():
        n, v = _name(opt), _value(value)
        want_define = {None: None, "m": f"{n}_MODULE"}.get(v, n)
        line = f"CONFIG_{n}={v}\n" if v else f"# CONFIG_{n} is not set\n"
        in_auto = auto.get(n) != (_unquoted(v) if v else None)
        if in_auto or (want_define and want_define not in defines) or line not in config:
            raise RuntimeError(f"{headers}: flipping CONFIG_{n} to {v} did not take")
        if v is None and ({n, f"{n}_MODULE"} & defines):
            raise RuntimeError(f"{headers}: CONFIG_{n} still defined in autoconf.h")


def _copy_tree(src: str, dest: str) -> None:
    """Copy a flavour headers directory; its relative symlinks (scripts, tools -> the
    kbuild package) are made absolute so they still reach the original targets."""
    shutil.copytree(src, dest, symlinks=True)
    for root, dirs, files in os.walk(dest):
        for entry in dirs + files:
            link = os.path.join(root, entry)
            if not os.path.islink(link):
                continue
            target = os.readlink(link)
            if os.path.isabs(target):
                continue
            original = os.path.join(src, os.path.relpath(link, dest))
            absolute = os.path.normpath(os.path.join(os.path.dirname(original), target))
            os.unlink(link)
            os.symlink(absolute, link)


def set_defines(headers: str, rel: str, defines: dict[str, str]) -> None:
    """Change `#define NAME value` lines of a generated header (bounds.h, asm-offsets.h):
    values Kbuild computes from the config with the compiler in `make prepare`, which a
    headers package cannot run, so an `oldconfig`-ed copy keeps the old ones."""
    path = os.path.join(headers, rel)
    with open(path) as f:
        text = f.read()
    for name, value in defines.items():
        text, n = re.subn(rf"^(#define {re.escape(name)}) \S+", rf"\1 {value}", text, flags=re.M)
        if n != 1:
            raise RuntimeError(f"{path}: no single #define {name}")
    _write(path, text)


def make_drifted_headers(
    role: str,
    flips: dict[str, str | None],
    name: str,
    defines: dict[str, dict[str, str]] | None = None,
) -> str:
    """A copy of ``role``'s flavour headers under <cache>/drift/<name>/ with ``flips``
    applied (option -> "y", "m", None/"n" for off, or a literal value); its path.
    ``defines``: generated header (relative path) -> #define values to change as well
    (see set_defines); empty for a copy as `make oldconfig` alone leaves it.

    The flavour Makefile's `include /.../linux-headers-...-common/Makefile` is absolute,
    so the copy shares the real -common headers: only the config and the files generated
    from it differ, as in a copy someone ran `make oldconfig` in.
    """
    src = kernel(role)["headers"]
    common_dir(src)  # fail early on a Makefile that would include a missing tree
    top = os.path.join(DRIFT, name)
    dest = os.path.join(top, os.path.basename(src))
    shutil.rmtree(top, ignore_errors=True)
    os.makedirs(top)
    _copy_tree(src, dest)
    old = apply_flips(dest, flips) if flips else {}
    for rel, values in (defines or {}).items():
        set_defines(dest, rel, values)
    with open(os.path.join(top, "drift.json"), "w") as f:
        record = {"role": role, "source": src, "flips": flips, "previous": old}
        json.dump({**record, "defines": defines or {}}, f, indent=2)
    return dest


# -- building ----------------------------------------------------------------------------


class BuildError(RuntimeError):
    def __init__(self, message: str, output: str) -> None:
        super().__init__(message)
        self.output = output


def _stamp(headers: str) -> dict[str, tuple[int, int]]:
    out = {}
    for rel in (CONFIG, *GENERATED):
        path = os.path.join(headers, rel)
        if os.path.exists(path):
            st = os.stat(path)
            out[rel] = (st.st_mtime_ns, st.st_size)
    return out


def build_against(
    headers: str,
    module: str = "hello",
    extra: dict[str, str] | None = None,
    work: str | None = None,
) -> str:
    """Build tests/modules/<module> against ``headers``; the path of the .ko.

    The work directory defaults to <headers>/../work/<module>. Raises BuildError with
    Kbuild's output if the build fails, or if Kbuild touched the tree's config files (it
    must not re-run Kconfig: the drift would be undone, or the build would fail).
    """
    work = work or os.path.join(os.path.dirname(headers), "work", module)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(os.path.join(MODULES_SRC, module), work)
    before = _stamp(headers)
    args = ["make", "-C", headers, f"M={work}", "modules"]
    args += [f"{k}={v}" for k, v in (extra or {}).items()]
    res = subprocess.run(args, capture_output=True, text=True)
    output = res.stdout + res.stderr
    with open(os.path.join(work, "build.log"), "w") as f:
        f.write(output)
    if _stamp(headers) != before or re.search(r"^\s*SYNC\s", output, re.M):
        raise BuildError(f"{headers}: Kbuild re-ran Kconfig (config files changed)", output)
    ko = os.path.join(work, f"{module}.ko")
    if res.returncode != 0 or not os.path.exists(ko):
        raise BuildError(f"building {module} against {headers} failed", output)
    return ko


def first_errors(output: str, limit: int = 3) -> str:
    """The first compiler/modpost errors of a failed build, for a table cell."""
    lines = [
        line.strip()
        for line in output.splitlines()
        if re.search(r"\berror\b|ERROR:|undefined!", line) and "Error " not in line
    ]
    if lines:
        return " | ".join(lines[:limit])
    tail = output.strip().splitlines()
    return tail[-1] if tail else "(no output)"


# -- which options guard what ------------------------------------------------------------

_DIRECTIVE = re.compile(r"^\s*#\s*(ifdef|ifndef|if|elif|else|endif)\b(.*)$")
_MEMBER_NAME = re.compile(r"\(\s*\*\s*(\w+)\s*\)|(\w+)\s*(?:\[[^\]]*\]\s*)*(?:__\w+\s*)*;\s*$")
_BY_VALUE = re.compile(r"^\s*(?:const\s+)?struct\s+(\w+)\s+(\w+)\s*(?:\[[^\]]*\])?[^*(]*;\s*$")


@dataclass
class Guard:
    """An option in a preprocessor condition around members of a struct."""

    option: str
    conditions: list[str] = field(default_factory=list)
    members: list[str] = field(default_factory=list)
    via: str = "struct module"  # or "struct module -> mkobj (struct module_kobject)"


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    return text.replace("\\\n", " ")


def struct_body(text: str, name: str) -> list[str] | None:
    """The lines between the braces of the first `struct NAME {` at a line start (a
    second definition, as mutex.h's PREEMPT_RT one, is the other branch of an #if
    around the whole struct, which this does not follow)."""
    m = re.search(rf"^struct {re.escape(name)}\s*\{{", text, re.M)
    if m is None:
        return None
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end() : i - 1].splitlines()


def _struct_guards(lines: list[str]) -> tuple[list[tuple[list[str], str]], list[tuple[str, str]]]:
    """(conditions stack, member name) for each member; (struct tag, member) embedded."""
    stack: list[str] = []
    members: list[tuple[list[str], str]] = []
    embedded: list[tuple[str, str]] = []
    pending = ""
    # members of an anonymous struct/union inside count as the struct's own (C names them
    # so); structs embedded in one are not followed (none carries a guard here)
    depth = 0
    for line in lines:
        d = _DIRECTIVE.match(line)
        if d:
            kind, rest = d.group(1), d.group(2).strip()
            if kind in ("if", "ifdef", "ifndef"):
                stack.append(f"#{kind} {rest}")
            elif kind == "elif" and stack:
                stack[-1] += f" / #elif {rest}"
            elif kind == "else" and stack:
                stack[-1] += " / #else"
            elif kind == "endif" and stack:
                stack.pop()
            continue
        pending += " " + line.strip()
        depth += line.count("{") - line.count("}")
        if not pending.rstrip().endswith(";"):
            continue
        decl, pending = pending.strip(), ""
        m = _MEMBER_NAME.search(decl)
        if m:
            members.append((list(stack), m.group(1) or m.group(2)))
        e = _BY_VALUE.match(decl)
        if e and depth == 0:
            embedded.append((e.group(1), e.group(2)))
    return members, embedded


class HeaderIndex:
    """Where each `struct NAME {` is defined in a headers tree: the x86 arch headers (the
    architecture these kernels are built for) first, so that asm/module.h's
    mod_arch_specific wins over asm-generic's empty fallback, then include/."""

    def __init__(self, common: str) -> None:
        self.where: dict[str, list[str]] = {}
        for sub in (os.path.join("arch", "x86", "include"), "include"):
            for root, _dirs, files in os.walk(os.path.join(common, sub)):
                for f in files:
                    if not f.endswith(".h") or "uapi" in root:
                        continue
                    path = os.path.join(root, f)
                    with open(path, errors="replace") as fh:
                        text = fh.read()
                    for m in re.finditer(r"^struct (\w+)\s*\{", text, re.M):
                        self.where.setdefault(m.group(1), []).append(path)

    def body(self, name: str) -> list[str] | None:
        for path in self.where.get(name, []):
            with open(path, errors="replace") as f:
                found = struct_body(_strip_comments(f.read()), name)
            if found is not None:
                return found
        return None


def struct_module_guards(headers: str, depth: int = 2) -> list[Guard]:
    """Options guarding members of `struct module` in this package's own module.h, then
    those guarding members of the structs it embeds by value (module_layout or
    module_memory, mod_arch_specific, the param_lock mutex...), ``depth`` levels down."""
    common = common_dir(headers)
    with open(os.path.join(common, "include", "linux", "module.h")) as f:
        body = struct_body(_strip_comments(f.read()), "module")
    if body is None:
        raise RuntimeError(f"{common}: no struct module in include/linux/module.h")
    guards: dict[str, Guard] = {}
    index: HeaderIndex | None = None
    queue: list[tuple[list[str], str, int]] = [(body, "struct module", 0)]
    seen = {"module"}
    while queue:
        lines, via, level = queue.pop(0)
        members, embedded = _struct_guards(lines)
        for stack, member in members:
            for cond in stack:
                for opt in dict.fromkeys(re.findall(r"\bCONFIG_(\w+)", cond)):
                    g = guards.setdefault(opt, Guard(opt, via=via))
                    if cond not in g.conditions:
                        g.conditions.append(cond)
                    g.members.append(member)
        if level >= depth:
            continue
        for tag, member in embedded:
            if tag in seen:
                continue
            seen.add(tag)
            index = index or HeaderIndex(common)
            inner = index.body(tag)
            if inner is not None:
                queue.append((inner, f"{via} -> {member} (struct {tag})", level + 1))
    return list(guards.values())


def candidates(role: str, headers: str | None = None) -> tuple[list[Guard], list[Guard]]:
    """(guards whose option is on in this kernel: flipped by measure, those already off)."""
    headers = headers or kernel(role)["headers"]
    auto = read_auto_conf(headers)
    guards = struct_module_guards(headers)
    named = {g.option for g in guards}
    for opt in CONTROLS:
        if opt not in named:
            guards.append(Guard(opt, ["(not a guard in this module.h: control)"], [], "control"))
    on = [g for g in guards if auto.get(g.option) in ("y", "m")]
    off = [g for g in guards if auto.get(g.option) not in ("y", "m")]
    return on, off


# -- measuring ---------------------------------------------------------------------------

_BTF_CACHE: dict[str, Btf] = {}


def kernel_btf(role: str) -> tuple[Btf, str]:
    """The running kernel's own BTF (from its vmlinuz)."""
    path = kernel(role)["vmlinuz"]
    if path not in _BTF_CACHE:
        _BTF_CACHE[path] = btf_from_file(path)
    return _BTF_CACHE[path], path


def member_at(btf: Btf, type_name: str, offset: int) -> str:
    """The kernel member covering byte ``offset`` of ``struct type_name``, as a C path:
    ``target_list.next``, ``mem[2].mtn.node.node[0]+4``, or ``(padding after X)``."""
    tid = btf.find_struct(type_name)
    if tid is None:
        return "?"
    parts: list[str] = []
    last = ""
    for _ in range(16):
        tid = btf.resolve(tid)
        kind = btf.kind(tid)
        if kind == BTF_KIND_ARRAY:
            # struct btf_array follows the record: element type, index type, nelems.
            # Btf has no public accessor for it; this tool reads the record directly.
            words, o, _info, _ = btf._record(tid)
            elem = words[o + 3]
            size = btf.type_size(elem) or 1
            i = offset // size
            if parts:
                parts[-1] += f"[{i}]"
            offset -= i * size
            tid = elem
            continue
        if kind not in (BTF_KIND_STRUCT, BTF_KIND_UNION):
            break
        hit = None
        for m in btf.members(tid):
            start = m.bit_offset // 8
            if m.bitfield_size:
                size = (m.bit_offset + m.bitfield_size + 7) // 8 - start
            else:
                size = btf.type_size(m.type) or 0
            if start <= offset < start + size:
                hit = (m, start)
                break
            if start <= offset:
                last = m.name
        if hit is None:
            parts.append(f"(padding after {last or 'start'})")
            offset = 0
            break
        m, start = hit
        if m.name:  # an anonymous struct/union adds no name to the path
            parts.append(m.name)
        offset -= start
        tid = m.type
    path = ".".join(parts) or "?"
    return path + (f"+{offset}" if offset else "")


def vermagic(path: str) -> str:
    res = subprocess.run(["modinfo", "-F", "vermagic", path], capture_output=True, text=True)
    return res.stdout.strip()


def kernel_vermagic(role: str) -> str:
    """vermagic of one of the kernel's own modules (what the kernel compares with)."""
    root = kernel(role)["modules"]
    for sub, _dirs, files in os.walk(os.path.join(root, "kernel")):
        for f in sorted(files):
            if ".ko" in f:
                return vermagic(os.path.join(sub, f))
    raise RuntimeError(f"{root}: no in-tree module to read the vermagic from")


def pahole_struct(ko: str, names: Iterable[str]) -> dict[str, dict]:
    """size and member offsets of structs as the module's DWARF has them."""
    names = list(names)
    res = subprocess.run(
        ["pahole", "-C", ",".join(names), ko], capture_output=True, text=True, check=False
    )
    out: dict[str, dict] = {}
    current = None
    for line in res.stdout.splitlines():
        m = re.match(r"^(?:struct|union) (\w+) \{", line)
        if m:
            current = out.setdefault(m.group(1), {"size": None, "members": {}})
            continue
        if current is None:
            continue
        s = re.search(r"/\* size: (\d+),", line)
        if s:
            current["size"] = int(s.group(1))
            current = None
            continue
        # pahole expands anonymous structs/unions in place (more tabs) and named ones
        # not at all: every line is a member of this struct, as flatten=True has them
        mm = re.match(
            r"^\t+[^\t].*?(?:\(\*(\w+)\)\(.*\)|(\w+)(?:\[\d+\])*)(?::\d+)?;\s*/\*\s*(\d+)", line
        )
        if mm:
            current["members"].setdefault(mm.group(1) or mm.group(2), int(mm.group(3)))
    return out


@dataclass
class Facts:
    """One module built against one (drifted) tree, beside the kernel's own layout."""

    option: str | None
    built: bool
    error: str | None = None
    module_size: int | None = None  # sh_size of .gnu.linkonce.this_module
    module_dwarf_size: int | None = None  # sizeof(struct module) in the module's DWARF
    module_dwarf_init: int | None = None  # offsetof(struct module, init), same DWARF
    module_dwarf_exit: int | None = None
    module_init: int | None = None  # r_offset of the relocation against init_module
    module_exit: int | None = None  # ... against cleanup_module
    kernel_size: int | None = None
    kernel_init: int | None = None
    kernel_exit: int | None = None
    init_lands_on: str | None = None  # the kernel member at the module's init offset
    exit_lands_on: str | None = None
    vermagic: str | None = None
    vermagic_matches: bool | None = None
    has_btf: bool | None = None  # a .BTF section (module BTF, DEBUG_INFO_BTF_MODULES)
    moved: bool | None = None  # size, init or exit differs from the kernel's
    ko: str | None = None
    guard: dict | None = None


def kernel_layout(role: str) -> tuple[int, int | None, int | None]:
    btf, path = kernel_btf(role)
    layout = btf.struct_layout("module", f"btf:{path}", flatten=True)
    init, exit_ = layout.member("init"), layout.member("exit")
    return layout.size, init and init.offset, exit_ and exit_.offset


def module_facts(role: str, ko: str, option: str | None = None) -> Facts:
    btf, _ = kernel_btf(role)
    ksize, kinit, kexit = kernel_layout(role)
    mod = read_module(ko)
    tm = mod.this_module
    dwarf = pahole_struct(ko, ["module"]).get("module", {})
    facts = Facts(
        option,
        True,
        module_size=tm.sh_size if tm else None,
        module_dwarf_size=dwarf.get("size"),
        module_dwarf_init=dwarf.get("members", {}).get("init"),
        module_dwarf_exit=dwarf.get("members", {}).get("exit"),
        module_init=tm.init_offset if tm else None,
        module_exit=tm.exit_offset if tm else None,
        kernel_size=ksize,
        kernel_init=kinit,
        kernel_exit=kexit,
        vermagic=vermagic(ko),
        has_btf=any(s.name == ".BTF" for s in _sections(ko)),
        ko=ko,
    )
    if facts.module_init is not None:
        facts.init_lands_on = member_at(btf, "module", facts.module_init)
    if facts.module_exit is not None:
        facts.exit_lands_on = member_at(btf, "module", facts.module_exit)
    facts.vermagic_matches = facts.vermagic == kernel_vermagic(role)
    facts.moved = (facts.module_size, facts.module_init, facts.module_exit) != (
        ksize,
        kinit,
        kexit,
    )
    return facts


def _sections(ko: str) -> list:
    with open(ko, "rb") as f:
        data = f.read()
    return list(ElfImage(data, len(data)).sections)


def measure_one(role: str, guard: Guard | None, value: str | None, top: str, keep: bool) -> Facts:
    """hello.ko against a copy with ``guard``'s option set to ``value`` (None: off)."""
    option = guard.option if guard else None
    label = option and (f"{option}={value}" if value else option)
    name = os.path.join(os.path.relpath(top, DRIFT), label or "baseline")
    headers = make_drifted_headers(role, {option: value} if option else {}, name)
    try:
        ko = build_against(headers, "hello")
    except BuildError as e:
        facts = Facts(label, False, error=first_errors(e.output))
    else:
        # the .ko outlives the headers copy
        kept = os.path.join(os.path.dirname(headers), "hello.ko")
        shutil.copy(ko, kept)
        facts = module_facts(role, kept, label)
    finally:
        if not keep:
            shutil.rmtree(headers, ignore_errors=True)
    if guard:
        facts.guard = dataclasses.asdict(guard)
    return facts


def _cell(module: int | None, kern: int | None) -> str:
    return f"{module}" if module == kern else f"{module} vs {kern}"


def _short_error(error: str | None, width: int = 110) -> str:
    # the paths into the cache say nothing a reader of the table needs
    text = re.sub(r"/\S*?/(include|arch)/", r"\1/", error or "")
    return text if len(text) <= width else text[: width - 3] + "..."


def print_table(role: str, rows: list[Facts]) -> None:
    head = (
        "option",
        "built",
        "size mod/kern",
        "init mod/kern",
        "exit mod/kern",
        "exit lands on",
        "vermagic=",
    )
    table: list[tuple[str, ...]] = [head]
    for f in rows:
        if not f.built:
            table.append((f.option or "(none)", "NO", "", "", "", "", _short_error(f.error)))
            continue
        init = _cell(f.module_init, f.kernel_init)
        if f.module_init != f.kernel_init:
            init += f" ({f.init_lands_on})"
        table.append(
            (
                f.option or "(none: baseline)",
                "yes",
                _cell(f.module_size, f.kernel_size),
                init,
                _cell(f.module_exit, f.kernel_exit),
                f.exit_lands_on or "-",
                "yes" if f.vermagic_matches else "NO",
            )
        )
    # the last column (vermagic, or a failed build's error) is not padded
    widths = [max(len(r[i]) for r in table) for i in range(len(head) - 1)]
    print(f"\n== {role} ({kernel(role)['release']})")
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])


def measure(role: str, keep: bool = False, jobs: int = 2, include_off: bool = False) -> list[Facts]:
    """Flip each guard that is on to off (and, with ``include_off``, each that is off to
    y), one at a time, build hello.ko against each copy and compare with the kernel."""
    on, off = candidates(role)
    log(f"{role}: flipping {len(on)} options off: {' '.join(g.option for g in on)}")
    if off:
        what = "flipped to y as well" if include_off else "not flipped"
        log(f"{role}: guards already off, {what}: {' '.join(g.option for g in off)}")
    top = os.path.join(DRIFT, f"measure-{role}")
    shutil.rmtree(top, ignore_errors=True)
    plan: list[tuple[Guard | None, str | None]] = [(None, None)]
    plan += [(g, None) for g in on]
    plan += [(g, "y") for g in off] if include_off else []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(measure_one, role, g, v, top, keep) for g, v in plan]
        rows = [f.result() for f in futures]
    print_table(role, rows)
    out = os.path.join(DRIFT, f"measure-{role}.json")
    with open(out, "w") as f:
        json.dump(
            {
                "role": role,
                "release": kernel(role)["release"],
                "kernel_vermagic": kernel_vermagic(role),
                "kernel_btf": kernel_btf(role)[1],
                "not_flipped_already_off": [dataclasses.asdict(g) for g in off],
                "rows": [dataclasses.asdict(r) for r in rows],
            },
            f,
            indent=2,
        )
    log(f"wrote {out}")
    return rows


# -- the fixed set -------------------------------------------------------------------------


@dataclass
class Case:
    """One drifted tree and the module built against it, for the tests."""

    name: str
    role: str
    flips: dict[str, str | None]
    module: str
    # what build-set checks before recording the case: "exit-moves", "init-moves" (and
    # only init), "size-and-exit-move", "size-init-exit-move", "nothing-moves", or
    # "structs" (the structs in ``differ`` differ from the kernel's, the other structs
    # compared do not)
    expect: str
    defines: dict[str, dict[str, str]] = field(default_factory=dict)
    differ: tuple[str, ...] = ()
    why: str = ""
    # for "structs": the structs compared (default STRUCTS, those drift_struct embeds),
    # and (struct, member) pairs whose offset must differ from the kernel's
    compare: tuple[str, ...] = ()
    moved: tuple[tuple[str, str], ...] = ()


# what the 6.1 kernel did with the modules whose init or exit relocation hits a word it
# had already set (tests/test_qemu.py, test_layout_drift_agrees_with_the_kernel)
QEMU_NONZERO = (
    "qemu: refused, ENOEXEC, 'x86/modules: Skipping invalid relocation target, existing "
    "value is nonzero for type 1', init never ran"
)

# The 6.1 choices come from `measure --role 6.1-a`; what insmod said about each was seen by
# booting the kernels with abicheck prove (tests/test_qemu.py; see each case's `why`).
CASES = [
    Case(
        "6.12-no-btf-modules",
        "6.12",
        {"DEBUG_INFO_BTF_MODULES": None},
        "hello",
        "exit-moves",
        why="the seed: pahole missing at oldconfig; exit lands on source_list.prev",
    ),
    Case(
        "6.1-a-no-tracepoints",
        "6.1-a",
        {"TRACEPOINTS": None},
        "hello",
        "exit-moves",
        why="exit lands on target_list.next, which module_unload_init() has set",
    ),
    Case(
        "6.1-a-no-kprobes",
        "6.1-a",
        {"KPROBES": None},
        "hello",
        "exit-moves",
        why="exit lands on source_list.prev, which module_unload_init() has set",
    ),
    Case(
        "6.1-a-no-kallsyms",
        "6.1-a",
        {"KALLSYMS": None},
        "hello",
        "size-and-exit-move",
        why="size differs (6.1 does not check it); exit lands on static_call_sites, "
        "still zero at relocation time: loads, cannot be unloaded",
    ),
    Case(
        "6.1-a-no-sysfs",
        "6.1-a",
        {"SYSFS": None},
        "hello",
        "init-moves",
        why="param_lock goes: init moves 312 -> 280, core_layout's cacheline alignment "
        "absorbs the rest; the kernel finds no init at 312: loads, init never runs",
    ),
    Case(
        "6.1-a-no-btf-modules",
        "6.1-a",
        {"DEBUG_INFO_BTF_MODULES": None},
        "hello",
        "nothing-moves",
        why="Debian's 6.1 module.h has `#if 1` around the BTF members",
    ),
    Case(
        "6.1-a-undrifted",
        "6.1-a",
        {},
        "drift_struct",
        "structs",
        why="the copy itself changes nothing: DWARF of drift_struct agrees with the BTF",
    ),
    Case(
        "6.1-a-debug-mutexes",
        "6.1-a",
        {"DEBUG_MUTEXES": "y"},
        "drift_struct",
        "structs",
        differ=("mutex",),
        why="struct mutex gains `magic` (32 -> 40); config files alone, builds cleanly; "
        "struct module's param_lock grows too",
    ),
    Case(
        "6.1-a-debug-spinlock",
        "6.1-a",
        {"DEBUG_SPINLOCK": "y"},
        "drift_struct",
        "structs",
        # with the package's SPINLOCK_SIZE 4, mm_types.h's struct page/folio
        # static_asserts fail: a tree whose spinlock_t grew also has a bounds.h saying so
        defines={"include/generated/bounds.h": {"SPINLOCK_SIZE": "24"}},
        differ=("spinlock", "wait_queue_head", "mutex"),
        why="raw_spinlock_t gains magic/owner_cpu/owner: every lock-holding struct grows; "
        "bounds.h SPINLOCK_SIZE set to 24 as `make prepare` would",
    ),
    Case(
        "6.1-a-no-jump-label",
        "6.1-a",
        {"JUMP_LABEL": None},
        "hello",
        "exit-moves",
        why="jump_entries/num_jump_entries go: exit moves 848 -> 840 and lands on "
        "target_list.prev, which module_unload_init() has set; " + QEMU_NONZERO,
    ),
    Case(
        "6.1-a-no-livepatch",
        "6.1-a",
        {"LIVEPATCH": None},
        "hello",
        "exit-moves",
        why="klp/klp_alive/klp_info go: exit moves 848 -> 832 and lands on "
        "target_list.next, which module_unload_init() has set; " + QEMU_NONZERO,
    ),
    Case(
        "6.1-a-stacktrace-build-id",
        "6.1-a",
        {"STACKTRACE_BUILD_ID": "y"},
        "hello",
        "size-init-exit-move",
        why="off in Debian 6.1; build_id[20] appears after the name: size 896 -> 960, "
        "init 312 -> 336 (lands on core_layout.ro_size, set by layout_sections()), exit "
        "848 -> 912 (padding after its_page_array); " + QEMU_NONZERO,
    ),
    Case(
        "6.1-a-no-mutex-spin-on-owner",
        "6.1-a",
        {"MUTEX_SPIN_ON_OWNER": None},
        "drift_struct",
        "structs",
        why="SMP-dependent (depends on SMP): struct mutex loses osq, which sat in the "
        "padding after wait_lock: no size or offset changes, struct module does not move; "
        "abicheck warns (LY003 as a warning: the kernel has osq where the module has "
        "padding, nothing the module uses moved; its static initialiser leaves osq zero, "
        "which is unlocked); qemu: loads",
    ),
    Case(
        "6.1-a-no-sched-info",
        "6.1-a",
        {"SCHED_INFO": None},
        "task_pid",
        "structs",
        compare=("task_struct",),
        differ=("task_struct",),
        moved=(("task_struct", "pid"),),
        why="struct sched_info loses its members (32 -> 0 bytes): task_struct shrinks "
        "9792 -> 9728 and pid moves 2416 -> 2384; struct module does not move. qemu: "
        'loads (no error, no errno), init runs and prints "task_pid: current->pid 0 at '
        'offset 2384, the kernel says 212" (228 on another boot): it read another '
        "member than pid",
    ),
]
# the structs drift_struct embeds in its struct drift_state
STRUCTS = ("spinlock", "wait_queue_head", "mutex")


def struct_facts(role: str, ko: str, structs: tuple[str, ...] = STRUCTS) -> dict:
    """Each of ``structs``' size and member offsets: the module's DWARF vs the kernel's
    BTF (and drift_struct's own struct drift_state's size, when it has one)."""
    btf, _ = kernel_btf(role)
    dwarf = pahole_struct(ko, [*structs, "drift_state"])
    out: dict = {}
    if "drift_state" in dwarf:
        out["drift_state_module_size"] = dwarf["drift_state"].get("size")
    for s in structs:
        layout = btf.struct_layout(s, "btf", flatten=True)
        out[s] = {
            "module_size": dwarf.get(s, {}).get("size"),
            "kernel_size": layout.size,
            "module_members": dwarf.get(s, {}).get("members"),
            "kernel_members": {m.name: m.offset for m in layout.members},
        }
    return out


def check_case(case: Case, facts: Facts, structs: dict | None) -> None:
    """Refuse to record a case that does not show what the tests will assume."""
    moved_exit = facts.module_exit != facts.kernel_exit
    moved_size = facts.module_size != facts.kernel_size
    moved_init = facts.module_init != facts.kernel_init
    bad = {
        "exit-moves": not moved_exit or moved_size,
        "init-moves": facts.module_init == facts.kernel_init or moved_exit or moved_size,
        "size-and-exit-move": not (moved_exit and moved_size) or moved_init,
        "size-init-exit-move": not (moved_exit and moved_size and moved_init),
        "nothing-moves": bool(facts.moved),
        "structs": False,
    }[case.expect]
    if not facts.vermagic_matches:
        bad = True
    for s in case.compare or STRUCTS if structs else ():
        differs = structs[s]["module_size"] != structs[s]["kernel_size"]
        bad |= differs != (s in case.differ)
    for s, member in case.moved:
        mine = ((structs or {}).get(s) or {}).get("module_members") or {}
        theirs = ((structs or {}).get(s) or {}).get("kernel_members") or {}
        bad |= member not in mine or member not in theirs or mine[member] == theirs[member]
    if bad:
        raise SystemExit(f"drift: {case.name}: expected {case.expect}, got {facts}, {structs}")


def build_set() -> dict:
    entries = []
    for case in CASES:
        log(f"{case.name}: {case.role} {case.flips} -> {case.module}")
        headers = make_drifted_headers(case.role, case.flips, case.name, case.defines)
        ko = build_against(headers, case.module)
        kept = os.path.join(DRIFT, case.name, f"{case.module}.ko")
        shutil.copy(ko, kept)
        label = ",".join(f"{k}={v or 'n'}" for k, v in case.flips.items()) or None
        facts = module_facts(case.role, kept, label)
        structs = (
            struct_facts(case.role, kept, case.compare or STRUCTS)
            if case.expect == "structs"
            else None
        )
        check_case(case, facts, structs)
        entry = {
            "name": case.name,
            "role": case.role,
            "release": kernel(case.role)["release"],
            "flips": case.flips,
            "defines": case.defines,
            "headers": headers,
            "modules": {case.module: kept},
            "expect": case.expect,
            "why": case.why,
            "facts": dataclasses.asdict(facts),
        }
        if structs is not None:
            entry["structs"] = structs
        entries.append(entry)
    manifest = {"cache": CACHE, "kernel_vermagic": {}, "cases": entries}
    for role in sorted({c.role for c in CASES}):
        manifest["kernel_vermagic"][role] = kernel_vermagic(role)
    path = os.path.join(DRIFT, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
    log(f"wrote {path}")
    return manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("measure", help="flip struct module's guards one at a time")
    m.add_argument("--role", action="append", choices=["6.1-a", "6.1-b", "6.12"])
    m.add_argument("--keep-trees", action="store_true", help="keep the drifted headers copies")
    m.add_argument("-j", "--jobs", type=int, default=os.cpu_count() or 2)
    m.add_argument(
        "--include-off", action="store_true", help="also flip the guards that are off to y"
    )
    c = sub.add_parser("candidates", help="list the options measure would flip")
    c.add_argument("--role", action="append", choices=["6.1-a", "6.1-b", "6.12"])
    sub.add_parser("build-set", help="the fixed drifted trees and modules the tests use")
    args = ap.parse_args(argv)
    os.makedirs(DRIFT, exist_ok=True)
    if args.cmd == "measure":
        for role in args.role or ["6.1-a", "6.12"]:
            measure(role, args.keep_trees, args.jobs, args.include_off)
    elif args.cmd == "candidates":
        for role in args.role or ["6.1-a", "6.12"]:
            on, off = candidates(role)
            print(f"== {role}")
            for g in on + off:
                state = "on " if g in on else "off"
                conds = "; ".join(g.conditions)
                print(f"  {state} {g.option:28} {conds:45} {','.join(g.members)}  [{g.via}]")
    elif args.cmd == "build-set":
        build_set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
