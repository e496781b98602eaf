#!/usr/bin/env python3
"""Build the config-impact table in rules/config/ from real kernel sources.

    python tools/config_table.py             # regenerate from the fetched trees
    python tools/config_table.py --check     # exit 1 if rules/config/ differs from them

Reads Debian's linux-source-6.1 and linux-source-6.12 (tools/fetch_source.py fetches
them) and writes, for each series, where each Kconfig option acts on what a module
shares with the kernel:

- vermagic.toml      the words of VERMAGIC_STRING (include/linux/vermagic.h,
                     arch/x86/include/asm/vermagic.h), option by option;
- struct_module.toml the members of struct module each option guards in that tree's own
                     include/linux/module.h (Debian 6.1 pins the BTF members with `#if 1`);
- structs.toml       the same for widely used structs (locks, task_struct, page, inode,
                     sk_buff, net_device ...): which members an option adds or removes;
- codegen.toml       Makefile lines that change compiler, assembler or linker flags of
                     every object (modules included) under an option;
- modversions.toml   the hand-written entries of rules/config/modversions.in.toml, kept
                     only where the cited file really mentions the option in that series.

Every entry cites file and struct (or file:line), so a reader can check it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tomllib
from collections import defaultdict

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from abicheck.readers.module_h import guarded_members  # noqa: E402

CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
OUT = os.path.join(REPO, "rules", "config")
SERIES = ("6.1", "6.12")

# (struct, candidate headers in the order tried): the structs most modules touch, by
# value or through inline helpers. A file that moved between 6.1 and 6.12 is listed
# under both names.
STRUCTS = [
    ("raw_spinlock", ["include/linux/spinlock_types_raw.h", "include/linux/spinlock_types.h"]),
    ("spinlock", ["include/linux/spinlock_types.h"]),
    ("rwlock_t", ["include/linux/rwlock_types.h"]),
    ("mutex", ["include/linux/mutex_types.h", "include/linux/mutex.h"]),
    ("rw_semaphore", ["include/linux/rwsem.h"]),
    ("lockdep_map", ["include/linux/lockdep_types.h"]),
    ("wait_queue_head", ["include/linux/wait.h"]),
    ("work_struct", ["include/linux/workqueue_types.h", "include/linux/workqueue.h"]),
    ("timer_list", ["include/linux/timer_types.h", "include/linux/timer.h"]),
    ("kobject", ["include/linux/kobject.h"]),
    ("device", ["include/linux/device.h"]),
    ("task_struct", ["include/linux/sched.h"]),
    ("mm_struct", ["include/linux/mm_types.h"]),
    ("page", ["include/linux/mm_types.h"]),
    ("zone", ["include/linux/mmzone.h"]),
    ("inode", ["include/linux/fs.h"]),
    ("file", ["include/linux/fs.h"]),
    ("super_block", ["include/linux/fs.h"]),
    ("sk_buff", ["include/linux/skbuff.h"]),
    ("net_device", ["include/linux/netdevice.h"]),
    ("sock", ["include/net/sock.h"]),
    ("pci_dev", ["include/linux/pci.h"]),
    ("cred", ["include/linux/cred.h"]),
    ("request_queue", ["include/linux/blkdev.h"]),
    ("gendisk", ["include/linux/blkdev.h"]),
]

# Makefiles whose flags reach every object a module build compiles or links.
MAKEFILES = [
    "Makefile",
    "arch/x86/Makefile",
    "scripts/Makefile.kasan",
    "scripts/Makefile.kcsan",
    "scripts/Makefile.kmsan",
    "scripts/Makefile.ubsan",
    "scripts/Makefile.gcc-plugins",
    "scripts/Makefile.randstruct",
    "scripts/Makefile.debug",
    "scripts/Makefile.lib",
    "scripts/Makefile.build",
    "scripts/Makefile.modfinal",
    "scripts/Makefile.modpost",
]
_FLAG_VARS = re.compile(
    r"^\s*(?:export\s+)?("
    r"KBUILD_(?:C|A|CPP|LD|RUST)FLAGS(?:_MODULE|_KERNEL)?|CC_FLAGS_\w+|LDFLAGS_MODULE|"
    r"KBUILD_LDFLAGS_MODULE|RETPOLINE_\w+|stackp-flags-\S+|include-\S+|"
    r"CFLAGS_KASAN\w*|CFLAGS_UBSAN\w*|CFLAGS_KCSAN\w*|CFLAGS_KMSAN\w*|"
    r"gcc-plugin-cflags-\S+|gcc-plugin-\S+|"
    r"(?:KBUILD_)?LDFLAGS|ldflags-\S+|asflags-\S+|ccflags-\S+|cflags-\S+|"
    r"objtool-args-\S+|KBUILD_RUSTFLAGS-\S+)\s*(?:[:+?]?=)"
)
_OPTION = re.compile(r"CONFIG_([A-Z0-9_]+)")


def trees() -> dict[str, str]:
    path = os.path.join(CACHE, "src", "manifest.json")
    if not os.path.exists(path):
        raise SystemExit("config_table: run `python tools/fetch_source.py` first")
    with open(path) as f:
        manifest = json.load(f)
    return {s: manifest[s]["tree"] for s in SERIES if s in manifest}


def read(tree: str, rel: str) -> str | None:
    try:
        with open(os.path.join(tree, rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return None


# -- vermagic -------------------------------------------------------------------------


def vermagic(tree: str) -> list[dict]:
    out = []
    for rel in ("include/linux/vermagic.h", "arch/x86/include/asm/vermagic.h"):
        text = read(tree, rel)
        if text is None:
            continue
        cond: list[str] = []
        for line in text.splitlines():
            m = re.match(r"#\s*(ifdef|elif|if|else|endif)\b(.*)", line.strip())
            if m:
                kind, rest = m.groups()
                if kind in ("ifdef", "if"):
                    cond.append(rest.strip())
                elif kind == "elif" and cond:
                    cond[-1] = rest.strip()
                elif kind == "else" and cond:
                    cond[-1] = "!" + cond[-1]
                elif kind == "endif" and cond:
                    cond.pop()
                continue
            d = re.match(r'#define\s+(MODULE_\w+)\s+"([^"]+)"', line.strip())
            if d and cond and not cond[-1].startswith("!"):
                for opt in _OPTION.findall(cond[-1]):
                    out.append(
                        {
                            "option": "CONFIG_" + opt,
                            "word": d.group(2).strip(),
                            "where": f"{rel} {d.group(1)}",
                        }
                    )
        if rel == "include/linux/vermagic.h" and "#ifdef RANDSTRUCT" in text:
            # RANDSTRUCT is a -D flag (scripts/Makefile.randstruct), not a config symbol
            for opt in ("RANDSTRUCT", "RANDSTRUCT_FULL", "RANDSTRUCT_PERFORMANCE"):
                out.append(
                    {
                        "option": "CONFIG_" + opt,
                        "word": "RANDSTRUCT_<seed hash>",
                        "where": f"{rel} MODULE_RANDSTRUCT (scripts/Makefile.randstruct)",
                    }
                )
    # the release, the first word: KERNELRELEASE = KERNELVERSION + localversion
    for opt in ("LOCALVERSION", "LOCALVERSION_AUTO"):
        out.append(
            {
                "option": "CONFIG_" + opt,
                "word": "the release (UTS_RELEASE)",
                "where": "scripts/setlocalversion, include/linux/vermagic.h UTS_RELEASE",
            }
        )
    return out


# -- struct members -----------------------------------------------------------------------


def struct_guards(tree: str, struct: str, files: list[str]) -> tuple[str, list] | None:
    for rel in files:
        text = read(tree, rel)
        if text is None:
            continue
        # `typedef struct raw_spinlock {` is a struct definition too
        text = re.sub(r"^typedef\s+struct\s+", "struct ", text, flags=re.M)
        if not re.search(rf"^struct\s+{struct}\s*\{{", text, re.M):
            continue
        return rel, guarded_members(text, struct)
    return None


def member_table(tree: str, specs: list[tuple[str, list[str]]]) -> dict[str, list[dict]]:
    by_option: dict[str, list[dict]] = defaultdict(list)
    for struct, files in specs:
        found = struct_guards(tree, struct, files)
        if found is None:
            continue
        rel, members = found
        groups: dict[str, list[str]] = defaultdict(list)
        for m in members:
            for opt in m.options:
                groups[opt].append(m.name)
        for opt, names in groups.items():
            by_option[opt].append({"file": rel, "struct": struct, "members": names})
    return by_option


# -- code generation ------------------------------------------------------------------------


def makefile_flags(tree: str) -> dict[str, list[str]]:
    by_option: dict[str, list[str]] = defaultdict(list)
    for rel in MAKEFILES:
        text = read(tree, rel)
        if text is None:
            continue
        stack: list[list[str]] = []
        lines = text.replace("\\\n", " ").splitlines()
        for line in lines:
            s = line.strip()
            m = re.match(r"(ifdef|ifndef|ifeq|ifneq|else|endif)\b(.*)", s)
            if m:
                kind, rest = m.groups()
                if kind in ("ifdef", "ifndef", "ifeq", "ifneq"):
                    stack.append(_OPTION.findall(rest))
                elif kind == "else" and stack:
                    inner = re.match(r"(ifdef|ifndef|ifeq|ifneq)\b(.*)", rest.strip())
                    stack[-1] = stack[-1] + (_OPTION.findall(inner.group(2)) if inner else [])
                elif kind == "endif" and stack:
                    stack.pop()
                continue
            if not _FLAG_VARS.match(line):
                continue
            options = {o for frame in stack for o in frame} | set(_OPTION.findall(s))
            for opt in sorted(options):
                cite = f"{rel}:{_line_number(text, line)} {' '.join(s.split())[:90]}"
                if cite not in by_option["CONFIG_" + opt]:
                    by_option["CONFIG_" + opt].append(cite)
    return by_option


def _line_number(text: str, joined_line: str) -> int:
    head = joined_line.strip().split(" ")[0]
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip().startswith(head) and line.strip() in joined_line:
            return n
    return 0


# -- hand-written entries, verified -----------------------------------------------------------


def verified_entries(trees_: dict[str, str]) -> list[dict]:
    with open(os.path.join(OUT, "modversions.in.toml"), "rb") as f:
        entries = tomllib.load(f)["option"]
    out = []
    for e in entries:
        series = []
        for s, tree in trees_.items():
            text = read(tree, e["file"])
            bare = e["option"].removeprefix("CONFIG_")
            if text is not None and re.search(rf"(?<![A-Za-z0-9_])(?:CONFIG_)?{bare}\b", text):
                series.append(s)
        if series:
            out.append({**e, "series": series})
        else:
            print(f"config_table: dropped {e['option']}: {e['file']} does not mention it")
    return out


# -- output -----------------------------------------------------------------------------------


def toml_value(v: object) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def write(name: str, header: str, rows: list[dict], check: bool) -> bool:
    text = header.rstrip() + "\n"
    for row in rows:
        text += "\n[[option]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in row.items())
    path = os.path.join(OUT, name)
    old = read(OUT, name)
    if check:
        if old != text:
            print(f"config_table: {path} is out of date")
            return False
        return True
    with open(path, "w") as f:
        f.write(text)
    return True


def header(what: str, trees_: dict[str, str]) -> str:
    versions = ", ".join(f"{s} = {_version(t)}" for s, t in trees_.items())
    sources = [f"linux-source-{s} {_version(t)}" for s, t in trees_.items()]
    return (
        f"# {what}\n# Generated by tools/config_table.py from Debian's linux-source trees "
        f"({versions}); do not edit.\n"
        f"generated_from = {toml_value(sources)}\n"
    )


def _version(tree: str) -> str:
    from abicheck.kconfig.toolchain import makefile_version

    return makefile_version(tree)


def merge_series(per_series: dict[str, dict[str, list]]) -> list[dict]:
    """option → one row per (option, where) with the series it was found in."""
    rows: dict[tuple[str, str], dict] = {}
    for series, table in per_series.items():
        for opt, items in table.items():
            for item in items:
                if isinstance(item, dict):
                    key = (opt, f"{item['file']} struct {item['struct']}")
                    row = rows.setdefault(
                        key,
                        {
                            "option": opt if opt.startswith("CONFIG_") else "CONFIG_" + opt,
                            "where": key[1],
                            "members": item["members"],
                            "series": [],
                        },
                    )
                    row["members"] = sorted(set(row["members"]) | set(item["members"]))
                else:
                    key = (
                        opt,
                        item.split(" ", 1)[0].rsplit(":", 1)[0] + " " + item.split(" ", 1)[1],
                    )
                    row = rows.setdefault(key, {"option": opt, "where": item, "series": []})
                row["series"].append(series)
    return sorted(rows.values(), key=lambda r: (r["option"], r["where"]))


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    trees_ = trees()
    ok = True

    vm: dict[tuple[str, str], dict] = {}
    for s, tree in trees_.items():
        for e in vermagic(tree):
            row = vm.setdefault((e["option"], e["where"]), {**e, "series": []})
            row["series"].append(s)
    ok &= write(
        "vermagic.toml",
        header("Options that change a word of VERMAGIC_STRING.", trees_),
        sorted(vm.values(), key=lambda r: r["option"]),
        args.check,
    )

    sm = {s: member_table(t, [("module", ["include/linux/module.h"])]) for s, t in trees_.items()}
    ok &= write(
        "struct_module.toml",
        header("Options that add or remove members of struct module, per tree.", trees_),
        merge_series(sm),
        args.check,
    )

    st = {s: member_table(t, STRUCTS) for s, t in trees_.items()}
    ok &= write(
        "structs.toml",
        header("Options that add or remove members of widely used structs.", trees_),
        merge_series(st),
        args.check,
    )

    cg = {s: makefile_flags(t) for s, t in trees_.items()}
    ok &= write(
        "codegen.toml",
        header("Options that change the flags every object of a module is built with.", trees_),
        merge_series(cg),
        args.check,
    )

    ok &= write(
        "modversions.toml",
        header(
            "Options that change how the loader checks modules (modversions, signing, "
            "lockdown, namespaces), from modversions.in.toml, each verified in the source.",
            trees_,
        ),
        verified_entries(trees_),
        args.check,
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
