"""What ``make olddefconfig`` would do to a tree's .config on this machine, before any
build: load the tree's Kconfig under this machine's toolchain (safe probes), load the
.config, and compare what Kconfig would write with what is there.

Each change is classified (abicheck.kconfig.classify, with the tree's own module.h) and
traced to its cause: a toolchain fact that differs (a missing pahole gives
PAHOLE_VERSION=0, another compiler name another CC_VERSION_TEXT), a change of the Kconfig
files since the .config was written (a new option takes its default, a removed one
disappears), or another changed option it depends on.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import kconfiglib

from abicheck.errors import AbicheckError
from abicheck.kconfig import classify as classify_mod
from abicheck.kconfig import table
from abicheck.kconfig.kconfig_tree import KconfigTree, ProbeCall
from abicheck.kconfig.model import Change, Impact, KconfigFinding
from abicheck.kconfig.toolchain import PACKAGES, Toolchain
from abicheck.readers.kconfig import parse_config, unquote
from abicheck.readers.module_h import guarded_members

CONSEQUENCE_STRUCT_MODULE = (
    "every module built in this tree gets another struct module than the kernel this "
    ".config came from: insmod refuses it (a relocation lands on a non-zero word) or its "
    "init/exit never run (LY002)"
)


@dataclass
class Cause:
    kind: str  # "toolchain", "kconfig-new", "kconfig-gone", "dependency", "unknown"
    text: str
    roots: list[str] = field(default_factory=list)  # toolchain options at the origin
    tools: list[str] = field(default_factory=list)  # programs behind it
    missing: list[str] = field(default_factory=list)  # of those, not on the PATH


@dataclass
class Prediction:
    srctree: str
    config_path: str
    environment: dict[str, str]
    before: dict[str, str]
    after: dict[str, str]
    findings: list[KconfigFinding]
    missing_tools: dict[str, list[ProbeCall]]
    unevaluated: list[ProbeCall]
    warnings: list[str]
    config_text: str
    module_h: str | None
    trusted: bool

    def by_tool(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in self.findings:
            for tool in f.extra.get("tools", []):
                out.setdefault(tool, []).append(f.option)
        return out


def predict(
    srctree: str,
    config_path: str | None = None,
    toolchain: Toolchain | None = None,
    trust_tree: bool = False,
    tree: KconfigTree | None = None,
) -> Prediction:
    config_path = config_path or os.path.join(srctree, ".config")
    try:
        with open(config_path, encoding="utf-8", errors="replace") as f:
            written = f.read()
    except OSError as e:
        raise AbicheckError(config_path, f"cannot read the .config: {e.strerror}") from None
    before = parse_config(written)
    if not before:
        raise AbicheckError(config_path, "no CONFIG_ lines: not a kernel config")
    tree = tree or KconfigTree(srctree, toolchain, trust_tree)
    warnings = tree.load(written)
    after_text = tree.config_text()
    after = parse_config(after_text)
    guards, module_h = module_h_of(srctree)
    defined = tree.defined()
    findings = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        change = Change(name, old, new, new_default=old is None)
        sym = tree.symbol(name)
        prompt = next((n.prompt[0] for n in sym.nodes if n.prompt), "") if sym else ""
        finding = classify_mod.classify(
            change,
            before,
            after,
            guards,
            module_h,
            (_series(tree.env["KERNELVERSION"]),),
            prompt=prompt,
        )
        cause = _cause(tree, name, before, after, defined)
        finding = replace(
            finding,
            cause=cause.text,
            tool=", ".join(cause.missing or cause.tools),
            fix=_fix(finding, cause, before),
            extra={
                **finding.extra,
                "cause_kind": cause.kind,
                "roots": cause.roots,
                "tools": cause.tools,
                "missing": cause.missing,
            },
        )
        if finding.impact is Impact.STRUCT_MODULE:
            finding = replace(
                finding,
                extra={**finding.extra, "consequence": CONSEQUENCE_STRUCT_MODULE},
            )
        findings.append(finding)
    return Prediction(
        tree.srctree,
        config_path,
        {
            k: tree.env[k]
            for k in ("CC", "CC_VERSION_TEXT", "LD", "PAHOLE", "RUSTC", "PATH")
            if k in tree.env
        },
        before,
        after,
        classify_mod.sort_findings(findings),
        tree.missing_tools(),
        tree.unevaluated(),
        warnings,
        after_text,
        module_h,
        trust_tree,
    )


def _series(version: str) -> str:
    return ".".join(version.split(".")[:2])


def module_h_of(srctree: str) -> tuple[tuple, str | None]:
    path = os.path.join(srctree, "include", "linux", "module.h")
    if not os.path.isfile(path):
        return (), None
    with open(path, encoding="utf-8", errors="replace") as f:
        return tuple(guarded_members(f.read())), path


# -- causes ---------------------------------------------------------------------------------


def _deps(sym: kconfiglib.Symbol) -> set[kconfiglib.Symbol]:
    exprs = [sym.direct_dep, sym.rev_dep, sym.weak_rev_dep]
    for default, cond in sym.defaults:
        exprs += [default, cond]
    for low, high, cond in sym.ranges:
        exprs += [low, high, cond]
    if sym.choice is not None:
        exprs.append(sym.choice.direct_dep)
    out = set()
    for e in exprs:
        for item in kconfiglib.expr_items(e):
            if isinstance(item, kconfiglib.Symbol) and not item.is_constant and item.nodes:
                out.add(item)
    return out


def _cause(
    tree: KconfigTree,
    name: str,
    before: Mapping[str, str],
    after: Mapping[str, str],
    defined: set[str],
) -> Cause:
    short = name.removeprefix("CONFIG_")
    sym = tree.symbol(name)
    if name not in defined:
        return Cause(
            "kconfig-gone",
            "not in this tree's Kconfig: removed or renamed since "
            "the .config was written, so make olddefconfig drops it",
        )
    probed = tree.toolchain_symbols
    # a toolchain option itself
    if short in probed:
        return _toolchain_cause([short], tree, before, after, direct=True)
    # walk the dependencies back to changed toolchain options
    roots, changed_deps = [], []
    seen = {short}
    frontier = [sym] if sym is not None else []
    depth = 0
    while frontier and depth < 8:
        nxt = []
        for s in frontier:
            for d in _deps(s):
                if d.name in seen:
                    continue
                seen.add(d.name)
                dname = "CONFIG_" + d.name
                differs = before.get(dname) != after.get(dname)
                if d.name in probed and differs:
                    roots.append(d.name)
                elif differs:
                    changed_deps.append(d.name)
                    nxt.append(d)
                else:
                    nxt.append(d)
        frontier = nxt
        depth += 1
    if roots:
        return _toolchain_cause(roots, tree, before, after, direct=False)
    if before.get(name) is None:
        return Cause(
            "kconfig-new",
            "absent from the .config (new in this tree, or its "
            "dependencies were off when it was written): Kconfig writes its default",
        )
    if changed_deps:
        return Cause(
            "dependency",
            "follows from "
            + ", ".join(
                f"CONFIG_{d} ({before.get('CONFIG_' + d, 'absent')} → "
                f"{after.get('CONFIG_' + d, 'absent')})"
                for d in changed_deps[:4]
            ),
        )
    return Cause(
        "kconfig",
        "this tree's Kconfig computes another value from the same inputs "
        "(its defaults or dependencies changed since the .config was written)",
    )


def _toolchain_cause(
    roots: list[str],
    tree: KconfigTree,
    before: Mapping[str, str],
    after: Mapping[str, str],
    direct: bool,
) -> Cause:
    tools, missing, parts = [], [], []
    for root in roots:
        probes = tree.toolchain_symbols.get(root, [])
        tool = table.tool_of("CONFIG_" + root)
        for p in probes:
            missing += [m for m in p.missing if m not in missing]
        if tool and tool not in tools:
            tools.append(tool)
        old, new = before.get("CONFIG_" + root, "absent"), after.get("CONFIG_" + root, "absent")
        text = f"CONFIG_{root} {old} → {new}"
        probe = next((p for p in probes if p.missing), probes[0] if probes else None)
        if probe is not None:
            text += f" ({_probe_summary(probe)})"
        elif root in ("CC_VERSION_TEXT", "RUSTC_VERSION_TEXT"):
            env = tree.env.get(root, "")
            text += f" (the Makefile's `$(CC) --version | head -n 1` gives {env!r})"
        parts.append(text)
    for m in missing:
        if m not in tools:
            tools.insert(0, m)
    prefix = "" if direct else "follows from "
    return Cause("toolchain", prefix + "; ".join(parts), roots, tools, missing)


def _probe_summary(p: ProbeCall) -> str:
    command = re.sub(r"\S*/scripts/", "scripts/", p.command)
    m = re.match(r"\{ (.*); \} >/dev/null 2>&1 && echo", command)
    command = m.group(1) if m else command
    if len(command) > 80:
        command = command[:79] + "…"
    text = f"`{command}` at {p.where}"
    if p.missing:
        text += f": {', '.join(sorted(set(p.missing)))} not found on the PATH"
    elif not p.evaluated:
        text += f": not evaluated ({p.problem})"
    return text


def _fix(finding: KconfigFinding, cause: Cause, before: Mapping[str, str]) -> str:
    if cause.missing:
        installs = ", ".join(f"{t} (Debian package {PACKAGES.get(t, t)})" for t in cause.missing)
        return (
            f"Install {installs} and run `make olddefconfig` again: with it, Kconfig keeps "
            f"{finding.option}={finding.change.old}."
        )
    if "CONFIG_CC_VERSION_TEXT" in cause.text or finding.option == "CONFIG_CC_VERSION_TEXT":
        text = unquote(before.get("CONFIG_CC_VERSION_TEXT")) or ""
        cc = text.split(" ", 1)[0] if text else ""
        if cc:
            return (
                f"Build with the kernel's compiler: make CC={cc} (its --version is "
                f"{text!r}); CC_VERSION_TEXT and the options it flips then stay as written."
            )
    if finding.impact is Impact.NONE:
        return "Nothing to do for modules."
    return finding.fix
