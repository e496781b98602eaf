"""Which Kconfig options guard each member of ``struct module``, read from module.h.

The answer must come from the target's own ``include/linux/module.h``: distributions
patch it (Debian 6.1 turns ``#ifdef CONFIG_DEBUG_INFO_BTF_MODULES`` around the BTF
members into ``#if 1``, Debian 6.12 does not). This reads the struct's body, follows the
``#if/#ifdef/#elif/#else`` nesting, and records for every member the C condition under
which it exists; :func:`present` evaluates that condition for a config.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from abicheck.model import GuardedMember
from abicheck.readers.cheader import Preprocessor, PreprocessorError, defines_from_config

_OPTION = re.compile(r"\bCONFIG_[A-Za-z0-9_]+")
_IDENT = re.compile(r"[A-Za-z_]\w*")
_QUALIFIERS = {
    "const",
    "volatile",
    "struct",
    "union",
    "enum",
    "unsigned",
    "signed",
    "long",
    "short",
    "int",
    "char",
    "void",
    "bool",
}


def struct_body(text: str, struct: str = "module") -> str | None:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", "", text)
    m = re.search(rf"^struct\s+{struct}\s*\{{", text, re.M)
    if not m:
        return None
    depth, i = 1, m.end()
    while i < len(text) and depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end() : i - 1]


def guarded_members(text: str, struct: str = "module") -> list[GuardedMember]:
    body = struct_body(text, struct)
    if body is None:
        return []
    body = body.replace("\\\n", " ")
    frames: list[list[str]] = []  # per #if group: conditions of its branches so far
    out: list[GuardedMember] = []
    pending = ""
    for raw in body.splitlines():
        line = raw.strip()
        if line.startswith("#"):
            directive, _, rest = line[1:].strip().partition(" ")
            rest = rest.strip()
            if directive == "ifdef":
                frames.append([f"defined({rest.split()[0]})"])
            elif directive == "ifndef":
                frames.append([f"!defined({rest.split()[0]})"])
            elif directive == "if":
                frames.append([f"({rest})"])
            elif directive == "elif" and frames:
                frames[-1].append(f"({rest})")
            elif directive == "else" and frames:
                frames[-1].append("1")
            elif directive == "endif" and frames:
                frames.pop()
            continue
        pending += " " + line
        while ";" in pending:
            decl, _, pending = pending.partition(";")
            condition = _condition(frames)
            for name in _declarator_names(decl):
                out.append(
                    GuardedMember(name, condition, tuple(sorted(set(_OPTION.findall(condition)))))
                )
    return out


def _condition(frames: list[list[str]]) -> str:
    parts = []
    for branches in frames:
        current, earlier = branches[-1], branches[:-1]
        terms = [f"!{e}" for e in earlier] + ([] if current == "1" else [current])
        parts.extend(terms)
    return " && ".join(parts) if parts else "1"


def _declarator_names(decl: str) -> list[str]:
    decl = decl.strip()
    # a nested (usually anonymous) struct or union: its members were declared inline
    if "{" in decl:
        decl = decl[decl.rfind("}") + 1 :] if "}" in decl else decl.split("{", 1)[1]
    decl = re.sub(r"__attribute__\s*\(\(.*?\)\)", " ", decl)
    names = []
    for part in _split_top(decl):
        fn = re.search(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\)", part)
        if fn:
            names.append(fn.group(1))
            continue
        bounded = "[" in part or ":" in part
        part = part.split("[", 1)[0].split(":", 1)[0]
        idents = [t for t in _IDENT.findall(part) if not t.startswith("CONFIG")]
        if not bounded:
            # an unbounded declarator may end in attribute macros (core_layout
            # __module_layout_align); before "[" or ":" the last word is the name itself,
            # whatever it looks like (u8 __padding[LOCK_PADSIZE])
            idents = [t for t in idents if not t.startswith("__")] or idents
        if idents and idents[-1] not in _QUALIFIERS:
            names.append(idents[-1])
    return names


def _split_top(decl: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, c in enumerate(decl):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == "," and depth == 0:
            parts.append(decl[start:i])
            start = i + 1
    parts.append(decl[start:])
    return parts


def present(
    member: GuardedMember,
    config: Mapping[str, str],
    defines: Mapping[str, str] | None = None,
) -> bool | None:
    """Whether the member exists under ``config``; None if the condition cannot be told.
    ``defines``: ``defines_from_config(config)`` computed once for many members."""
    if member.condition == "1":
        return True
    pp = Preprocessor([], defines if defines is not None else defines_from_config(config))
    try:
        return bool(pp.evaluate(member.condition))
    except PreprocessorError:
        return None
