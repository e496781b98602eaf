#!/usr/bin/env python3
"""abicheck's speed, measured beside a peer tool in the same run, reported as ratios.

    python benchmarks/bench.py tree      # whole in-tree module tree vs depmod -n -e -E
    python benchmarks/bench.py cold      # one module from process start vs `python -c pass`
    python benchmarks/bench.py layout    # struct module from each source vs pahole -C module
    python benchmarks/bench.py probe     # layouts from the headers alone: first probe, cached
    python benchmarks/bench.py kdiff     # kernel diff A B from headers, cold and warm, vs diff
    python benchmarks/bench.py all

Uses the Debian packages tools/testdata.py fetched (role 6.1-a by default: Debian's
6.1.0-47-amd64, about 4 000 modules). Each figure is the best of --repeat wall-clock runs
(the machine may be busy; the best run is the least disturbed one).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")


def best_of(cmd: list[str], repeat: int, **kw) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        times.append(time.perf_counter() - start)
    return min(times)


def manifest() -> dict:
    with open(os.path.join(CACHE, "manifest.json")) as f:
        return json.load(f)


def abicheck_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "abicheck", *args]


def bench_tree(role: str, repeat: int) -> dict:
    k = manifest()["kernels"][role]
    root = os.path.dirname(os.path.dirname(os.path.dirname(k["modules"])))  # .../lib/modules/R
    symvers = os.path.join(k["headers"], "Module.symvers")
    count = sum(
        f.endswith((".ko", ".ko.xz", ".ko.zst", ".ko.gz"))
        for _, _, files in os.walk(k["modules"])
        for f in files
    )
    depmod = best_of(["depmod", "-n", "-b", root, "-e", "-E", symvers, k["release"]], repeat)
    check = ["check", "--format", "json", "-o", os.devnull, k["modules"], "--kernel", k["headers"]]
    parallel = best_of(abicheck_cmd(*check), repeat)
    serial = best_of(abicheck_cmd(*check, "--jobs", "1"), repeat)
    return {
        "modules": count,
        "release": k["release"],
        "cpus": os.cpu_count(),
        "depmod_s": round(depmod, 3),
        "abicheck_s": round(parallel, 3),
        "abicheck_jobs1_s": round(serial, 3),
        "ratio": round(parallel / depmod, 2),
        "ratio_jobs1": round(serial / depmod, 2),
    }


def bench_cold(repeat: int) -> dict:
    module = os.path.join(REPO, "samples", "modules", "hello.ko")
    profile = os.path.join(REPO, "samples", "kernels", "6.1.0-47-amd64.json.gz")
    python = best_of([sys.executable, "-c", "pass"], repeat)
    one = best_of(abicheck_cmd("check", module, "--kernel", profile), repeat)
    out = {
        "python_startup_s": round(python, 3),
        "one_module_profile_s": round(one, 3),
        "abicheck_over_python_s": round(one - python, 3),
    }
    headers = (
        manifest()["kernels"]["6.1-a"]["headers"]
        if os.path.exists(os.path.join(CACHE, "manifest.json"))
        else None
    )
    if headers:
        out["one_module_headers_s"] = round(
            best_of(abicheck_cmd("check", module, "--kernel", headers), repeat), 3
        )
    return out


def _best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_layout(repeat: int) -> dict:
    """struct module from each source, beside pahole -C module on the same file."""
    from abicheck.readers.btf import btf_from_file
    from abicheck.readers.vmlinuz import read_vmlinux
    from abicheck.targets.layouts import struct_module_from_reference_modules

    m = manifest()
    out: dict = {}
    if shutil.which("pahole") is None:
        return {"skipped": "pahole not installed"}

    def row(ours: float, file: str, fmt: str) -> dict:
        theirs = best_of(["pahole", "-F", fmt, "-C", "module", file], repeat)
        return {
            "abicheck_s": round(ours, 3),
            "pahole_s": round(theirs, 3),
            "ratio": round(ours / theirs, 2),
        }

    vmlinux = os.path.join(m["kernels"]["6.12"]["headers"], "vmlinux")
    if os.path.exists(vmlinux):
        ours = _best(lambda: btf_from_file(vmlinux).struct_layout("module", "btf"), repeat)
        out["btf_6.12_headers_vmlinux"] = row(ours, vmlinux, "btf")
    vmlinuz = m["kernels"]["6.1-a"].get("vmlinuz")
    if vmlinuz:
        # pahole cannot read a bzImage: it gets the extracted vmlinux, abicheck the vmlinuz
        extracted = os.path.join(CACHE, "bench-vmlinux-6.1")
        if not os.path.exists(extracted):
            with open(extracted, "wb") as f:
                f.write(read_vmlinux(vmlinuz))
        ours = _best(lambda: btf_from_file(vmlinuz).struct_layout("module", "btf"), repeat)
        out["btf_6.1_vmlinuz"] = row(ours, extracted, "btf")
        out["btf_6.1_vmlinuz"]["note"] = "abicheck decompresses the bzImage (xz) itself"
    dbg_json = os.path.join(CACHE, "dbg", "dbg.json")
    if os.path.exists(dbg_json):
        from abicheck.readers.dwarf import vmlinux_struct

        with open(dbg_json) as f:
            dbg = json.load(f)["vmlinux"]
        ours = _best(lambda: vmlinux_struct(dbg, "module"), repeat)
        out["dwarf_6.1_dbg_vmlinux"] = row(ours, dbg, "dwarf")
    modules = m["kernels"]["6.1-a"].get("modules")
    if modules and vmlinuz:
        ours = _best(lambda: struct_module_from_reference_modules(modules), repeat)
        out["reference_modules_6.1"] = {
            "abicheck_s": round(ours, 3),
            "note": "400 in-tree modules; pahole has no such source",
        }
    return out


def bench_probe(repeat: int) -> dict:
    """Layouts from the headers alone (issue: the main command without BTF): the first
    probe (a compile of linux/module.h), a cached one, and one module checked from process
    start with cached layouts, beside `pahole -C module` on the extracted vmlinux and a
    check without layouts (--layouts none) in the same run."""
    import tempfile

    from abicheck.readers.vmlinuz import read_vmlinux
    from abicheck.targets.headers import source_dirs, target_from_headers
    from abicheck.targets.layouts import with_layouts

    m = manifest()
    k = m["kernels"]["6.1-a"]
    headers = k["headers"]
    out: dict = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "ABICHECK_CACHE_DIR": cache}
        os.environ["ABICHECK_CACHE_DIR"] = cache

        def probe_once(fresh: bool) -> None:
            if fresh:
                shutil.rmtree(os.path.join(cache, "probe"), ignore_errors=True)
            target = target_from_headers(headers)
            with_layouts(target, source_dirs=source_dirs(headers), discover=False)

        out["first_probe_s"] = round(_best(lambda: probe_once(True), repeat), 3)
        probe_once(False)
        out["cached_probe_s"] = round(_best(lambda: probe_once(False), repeat), 3)
        if shutil.which("pahole") and k.get("vmlinuz"):
            extracted = os.path.join(CACHE, "bench-vmlinux-6.1")
            if not os.path.exists(extracted):
                with open(extracted, "wb") as f:
                    f.write(read_vmlinux(k["vmlinuz"]))
            out["pahole_C_module_s"] = round(
                best_of(["pahole", "-F", "btf", "-C", "module", extracted], repeat), 3
            )
            out["first_probe_vs_pahole"] = round(out["first_probe_s"] / out["pahole_C_module_s"], 1)
        hello = os.path.join(m["built"]["6.1-a"], "hello.ko")
        check = ["check", "--format", "json", "-o", os.devnull, hello, "--kernel", headers]
        subprocess.run(abicheck_cmd(*check), env=env, check=False, capture_output=True)
        with_cached = best_of(abicheck_cmd(*check, "--layouts", "probe"), repeat, env=env)
        without = best_of(abicheck_cmd(*check, "--layouts", "none"), repeat, env=env)
        out["one_module_cached_layouts_s"] = round(with_cached, 3)
        out["one_module_no_layouts_s"] = round(without, 3)
        out["cached_layouts_add_ms"] = round((with_cached - without) * 1000, 1)
    return out


# Debian's debian/bin/buildcheck.py in spirit: read both Module.symvers into dicts and
# compare them (removed, added, changed), the whole of its symbol check.
BUILDCHECK = """
import sys
def read(path):
    out = {}
    with open(path) as f:
        for line in f:
            crc, name, module, *rest = line.rstrip("\\n").split("\\t")
            out[name] = (crc, module, tuple(rest))
    return out
a, b = read(sys.argv[1]), read(sys.argv[2])
removed = a.keys() - b.keys()
added = b.keys() - a.keys()
changed = [n for n in a.keys() & b.keys() if a[n] != b[n]]
print(len(removed), len(added), len(changed))
"""


def bench_kdiff(repeat: int) -> dict:
    """`abicheck kernel diff A B` on two headers packages (issue 14: "a complete, correct
    ABI diff between two kernels from their headers in under 5 s"): cold (an empty layout
    cache, both kernels' headers probed at once) and warm, beside, in the same run, a plain
    `diff` of the two Module.symvers, the buildcheck-style comparison of their symbols
    above (exports only: no loader identity, structs or config), and `pahole -F btf` printing
    every struct of the probe's BTF of A (what reading the probe's layouts costs a peer)."""
    import glob
    import tempfile

    kernels = manifest()["kernels"]
    out: dict = {}
    for ra, rb in (("6.1-a", "6.1-b"), ("6.1-a", "6.12")):
        a, b = kernels[ra]["headers"], kernels[rb]["headers"]
        sa, sb = os.path.join(a, "Module.symvers"), os.path.join(b, "Module.symvers")
        row: dict = {"a": kernels[ra]["release"], "b": kernels[rb]["release"]}
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "ABICHECK_CACHE_DIR": cache}
            env.pop("ABICHECK_NO_CACHE", None)
            env.pop("ABICHECK_SYSROOT", None)  # the headers alone: no vmlinuz found
            cmd = abicheck_cmd("kernel", "diff", a, b, "--format", "json")
            cold = [_wall_and_cpu(cmd, env, fresh=cache) for _ in range(repeat)]
            warm = [_wall_and_cpu(cmd, env) for _ in range(repeat)]
            row["cold_s"] = round(min(w for w, _ in cold), 2)
            row["warm_s"] = round(min(w for w, _ in warm), 2)
            # CPU seconds (this process's children: python and both compilers): what a
            # busy machine cannot inflate; on two free cores cold wall time is below it
            row["cold_cpu_s"] = round(min(c for _, c in cold), 2)
            row["warm_cpu_s"] = round(min(c for _, c in warm), 2)
            btf = sorted(glob.glob(os.path.join(cache, "probe", "proto-*.btf")))
            if shutil.which("pahole") and btf:
                row["pahole_probe_btf_s"] = round(
                    best_of_rc(["pahole", "-F", "btf", btf[0]], repeat), 3
                )
        row["diff_symvers_s"] = round(best_of_rc(["diff", sa, sb], repeat), 3)
        row["buildcheck_s"] = round(
            best_of_rc([sys.executable, "-c", BUILDCHECK, sa, sb], repeat), 3
        )
        row["cold_vs_buildcheck"] = round(row["cold_s"] / row["buildcheck_s"], 1)
        row["warm_vs_buildcheck"] = round(row["warm_s"] / row["buildcheck_s"], 1)
        row["warm_vs_diff"] = round(row["warm_s"] / row["diff_symvers_s"], 1)
        out[f"{ra} vs {rb}"] = row
    return out


def _wall_and_cpu(cmd: list[str], env: dict, fresh: str | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds of one run; ``fresh``: a cache directory emptied first."""
    import resource

    if fresh is not None:
        shutil.rmtree(os.path.join(fresh, "probe"), ignore_errors=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return wall, cpu


def best_of_rc(cmd: list[str], repeat: int, **kw) -> float:
    """best_of for commands whose exit code says "differences found" (diff, kernel diff)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kw)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "what",
        choices=["tree", "cold", "layout", "probe", "kdiff", "all"],
        nargs="?",
        default="all",
    )
    ap.add_argument("--role", default="6.1-a", help="kernel role in the testdata manifest")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, REPO)
    report = {}
    if args.what in ("tree", "all"):
        report["tree"] = bench_tree(args.role, args.repeat)
    if args.what in ("cold", "all"):
        report["cold"] = bench_cold(args.repeat)
    if args.what in ("layout", "all"):
        report["layout"] = bench_layout(args.repeat)
    if args.what in ("probe", "all"):
        report["probe"] = bench_probe(args.repeat)
    if args.what in ("kdiff", "all"):
        report["kdiff"] = bench_kdiff(args.repeat)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
