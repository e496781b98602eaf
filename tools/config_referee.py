#!/usr/bin/env python3
"""The real `make olddefconfig` as referee for `abicheck config predict`.

    python tools/config_referee.py [--series 6.1 6.12] [--json OUT]

For each Debian source tree (tools/fetch_source.py) and the Debian .config of the same
series (6.1: 6.1.0-56 against linux-source-6.1 6.1.192; 6.12: 6.12.107 against
linux-source-6.12 6.12.117, an older config against newer sources), runs twice:

- with this machine's PATH (pahole 1.24 installed), and
- with a PATH that hides pahole: a directory of symlinks to every program on the PATH
  except pahole, used alone as PATH;

each time `make -C TREE O=DIR olddefconfig` (the source tree stays clean; O= is Kbuild's
own copy of the tree for outputs) and abicheck's prediction under the same PATH, then
compares the two resulting configs option by option, and abicheck's list of changes with
the real one. Also checks kconfiglib's round trip: with the toolchain the config names
(CC=gcc-12 / x86_64-linux-gnu-gcc-12, pahole present), abicheck's written config must be
the real one line for line, and loading abicheck's output again must change nothing.

Nothing from the trees runs except Kbuild's own `make olddefconfig` (which builds
scripts/kconfig/conf and runs Kconfig's $(shell,...) calls, as any build does).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from abicheck.kconfig.kconfig_tree import KconfigTree  # noqa: E402
from abicheck.kconfig.predict import predict  # noqa: E402
from abicheck.kconfig.toolchain import Toolchain  # noqa: E402
from abicheck.readers.kconfig import parse_config  # noqa: E402

CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
CONFIGS = {
    "6.1": ("6.1-b", "gcc-12"),
    "6.12": ("6.12", "x86_64-linux-gnu-gcc-12"),
}


def log(msg: str) -> None:
    print(f"config_referee: {msg}", file=sys.stderr, flush=True)


def hidden_path(hide: set[str], path: str, where: str) -> str:
    """A directory of symlinks to every program on ``path`` except ``hide``."""
    os.makedirs(where, exist_ok=True)
    for d in path.split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            src = os.path.join(d, name)
            dst = os.path.join(where, name)
            if name in hide or os.path.lexists(dst):
                continue
            if os.path.isfile(src) and os.access(src, os.X_OK):
                os.symlink(src, dst)
    return where


def real_olddefconfig(tree: str, config: str, path: str, out: str, cc: str | None = None) -> dict:
    os.makedirs(out, exist_ok=True)
    shutil.copy(config, os.path.join(out, ".config"))
    env = {**os.environ, "PATH": path}
    cmd = ["make", "-s", "-C", tree, f"O={out}", "olddefconfig"]
    if cc:
        cmd.append(f"CC={cc}")
    t = time.time()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"config_referee: make olddefconfig failed:\n{res.stderr}")
    with open(os.path.join(out, ".config")) as f:
        text = f.read()
    return {"text": text, "values": parse_config(text), "seconds": time.time() - t}


def assignments(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.startswith(("CONFIG_", "# CONFIG_"))]


def compare(before: dict, real: dict, predicted: dict) -> dict:
    names = set(before) | set(real) | set(predicted)
    disagree = sorted(n for n in names if real.get(n) != predicted.get(n))
    real_changes = {n for n in names if before.get(n) != real.get(n)}
    predicted_changes = {n for n in names if before.get(n) != predicted.get(n)}
    return {
        "options": len(names),
        "agree": len(names) - len(disagree),
        "disagree": disagree,
        "real_changes": sorted(real_changes),
        "predicted_changes": sorted(predicted_changes),
        "changes_agree": real_changes == predicted_changes,
    }


def run_series(series: str, manifest: dict, sources: dict, work: str) -> dict:
    role, kernel_cc = CONFIGS[series]
    config = manifest["kernels"][role]["config"]
    tree = sources[series]["tree"]
    path = os.environ.get("PATH", os.defpath)
    nopahole = hidden_path({"pahole"}, path, os.path.join(work, "bin-nopahole"))
    with open(config) as f:
        written = f.read()
    before = parse_config(written)
    out: dict = {"tree": tree, "tree_version": sources[series]["version"], "config": config}
    for label, p in (("with-pahole", path), ("without-pahole", nopahole)):
        real = real_olddefconfig(tree, config, p, os.path.join(work, f"{series}-{label}"))
        t = time.time()
        prediction = predict(tree, config, Toolchain(path=p))
        seconds = time.time() - t
        result = compare(before, real["values"], prediction.after)
        result["text_identical"] = assignments(real["text"]) == assignments(prediction.config_text)
        result["make_seconds"] = round(real["seconds"], 2)
        result["predict_seconds"] = round(seconds, 2)
        result["from_pahole"] = sorted(
            f.option for f in prediction.findings if "pahole" in f.extra.get("tools", [])
        )
        result["by_cause"] = {}
        for f in prediction.findings:
            result["by_cause"].setdefault(f.extra.get("cause_kind", "?"), []).append(f.option)
        result["unevaluated"] = [p.command for p in prediction.unevaluated]
        out[label] = result
        log(
            f"{series} {label}: {result['agree']}/{result['options']} options agree, "
            f"{len(result['real_changes'])} real changes, "
            f"{len(result['predicted_changes'])} predicted, identical text: "
            f"{result['text_identical']}"
        )
    # kconfiglib round trip with the config's own compiler
    tc = Toolchain(overrides={"CC": kernel_cc})
    kt = KconfigTree(tree, tc)
    warnings = kt.load(written)
    first = kt.config_text()
    kt.load(first)
    second = kt.config_text()
    real = real_olddefconfig(
        tree, config, path, os.path.join(work, f"{series}-roundtrip"), kernel_cc
    )
    # each computed once: inside the comprehensions they made this step quadratic (8,790
    # options x a parse of the whole config: 5 of the test's 9 minutes)
    defined = kt.defined()
    first_values = parse_config(first)
    unknown = sorted(n for n in before if n not in defined)
    out["round-trip"] = {
        "cc": kernel_cc,
        "symbols": len(kt.kconf.unique_defined_syms),
        "config_options": len(before),
        "options_unknown_to_kconfiglib": unknown,
        "load_warnings": warnings,
        "parse_warnings": len(kt.parse_warnings),
        "fixed_point": first == second,
        "identical_to_make": assignments(first) == assignments(real["text"]),
        "changed_vs_written": sorted(
            n for n in set(before) | set(first_values) if before.get(n) != first_values.get(n)
        ),
    }
    log(f"{series} round trip: {out['round-trip']}")
    return out


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", nargs="+", default=["6.1", "6.12"])
    ap.add_argument("--json", default=os.path.join(CACHE, "src", "referee.json"))
    args = ap.parse_args(argv)
    with open(os.path.join(CACHE, "manifest.json")) as f:
        manifest = json.load(f)
    with open(os.path.join(CACHE, "src", "manifest.json")) as f:
        sources = json.load(f)
    results = {}
    with tempfile.TemporaryDirectory(prefix="abicheck-referee-") as work:
        for series in args.series:
            results[series] = run_series(series, manifest, sources, work)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    ok = all(
        r[k]["agree"] == r[k]["options"] and r[k]["changes_agree"]
        for r in results.values()
        for k in ("with-pahole", "without-pahole")
    ) and all(
        r["round-trip"]["identical_to_make"] and r["round-trip"]["fixed_point"]
        for r in results.values()
    )
    log(f"written {args.json}; {'all agree' if ok else 'DISAGREEMENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
