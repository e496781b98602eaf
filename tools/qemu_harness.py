#!/usr/bin/env python3
"""The real kernel as referee: boot a Debian kernel under qemu and insmod modules into it.

    python tools/qemu_harness.py run --role 6.1-a -o results.json            # standard cases
    python tools/qemu_harness.py run --role 6.12 --case A.ko --case P.ko,C.ko -o out.json
    python tools/qemu_harness.py all -o results.json                          # every role
    python tools/qemu_harness.py cases --role 6.1-a                           # list the cases
    python tools/qemu_harness.py run --role 6.1-a-arm64 -o arm64.json         # qemu-system-aarch64

One boot per kernel runs every case. The initramfs holds a static busybox, kmod's own
`insmod`/`rmmod` (the host's /usr/bin/kmod with the libraries `ldd` names, because kmod
is the loader abicheck's predictions assume), the modules and an /init that, per module,
records what the kernel said: insmod's exit code and stderr, the new dmesg lines, the
global taint mask before and after, and /sys/module/NAME/taint. It prints all that as
marked lines on the serial console and powers off. Nothing from the modules or the
kernel packages runs on the host: the host only reads their .modinfo. An arm64 role (the
manifest's kernels[role]["arch"]) boots under qemu-system-aarch64 with Debian's arm64
busybox-static and kmod from the manifest's userland folder (abicheck.prove.vm.ARCHES).

The test data comes from tools/testdata.py (cache: $ABICHECK_TESTDATA, else
<repo>/.cache/testdata); built initramfs images are cached under its qemu/ folder.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# one copy of the VM code, in the package; these names stay importable from here
from abicheck.prove import vm  # noqa: E402
from abicheck.prove.vm import (  # noqa: E402, F401
    APPLETS,
    ARCHES,
    BEGIN,
    BUSYBOX,
    DEFAULT_TIMEOUT,
    DONE,
    INIT_HEAD,
    INIT_TAIL,
    INSMOD_ERRORS,
    KMOD,
    KMOD_LINKS,
    QEMU,
    TAG,
    TAINT_LETTERS,
    BootError,
    Case,
    Cpio,
    add_field,
    arch_name,
    boot,
    depends_of,
    dmesg_line,
    elf_needs,
    escape_nonprintable,
    file_stem,
    foreign_userland,
    guest_paths,
    index_tree,
    init_script,
    initramfs_bytes,
    insmod_errno,
    intree_deps,
    kmod_version,
    missing_tools,
    modinfo,
    module_name,
    new_record,
    parse_serial,
    qemu_command,
    read_bytes,
    read_module_bytes,
    shared_libraries,
    taint_letters,
    taint_of,
)

CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")


def build_initramfs(
    cases: Sequence[Case], cache: str = CACHE, userland: str | None = None, arch: str = ""
) -> str:
    return vm.build_initramfs(cases, cache, userland=userland, arch=arch)


def run_cases(
    vmlinuz: str,
    cases: Sequence[Case],
    timeout: float = DEFAULT_TIMEOUT,
    cache: str = CACHE,
    log_path: str | None = None,
    arch: str = "amd64",
    userland: str | None = None,
) -> dict:
    """``arch`` in Debian's naming (the manifest's) or abicheck's; ``userland``: the
    manifest's userland folder of a foreign arch, None for the host's busybox and kmod."""
    return vm.run_cases(vmlinuz, cases, timeout, cache, log_path, arch, userland)


# --------------------------------------------------------------------------- standard cases

# (case name, [(built role, file)], [in-tree module path under kernel/]) per kernel role.
# Every case is independent: whatever it loaded is removed before the next one.
COMMON_BUILT = [
    "hello.ko",
    "prop_license.ko",
    "gplonly_user.ko",
    "gplonly_prop.ko",
    "ns_import.ko",
    "ns_noimport.ko",
    "unknown_sym.ko",
    "dep_provider.ko",
    "dep_consumer.ko",
    "dep_consumer_nosyms.ko",
    "hello_noversions.ko",
    "hello_renamed_version.ko",
    "hello_truncated.ko",
    "hello_arm64machine.ko",
    "hello.ko.xz",
    "hello.ko.gz",
    "hello.ko.zst",
]
ONLY_61A = [
    "common_sym.ko",
    "wx_section.ko",
    "modinfo_flags.ko",
    "livepatch_flag.ko",
    "hello_noretpoline.ko",
]
UMS_ALAUDA = "drivers/usb/storage/ums-alauda"
PAIRS = [("dep_provider.ko", "dep_consumer.ko"), ("dep_provider.ko", "dep_consumer_nosyms.ko")]

CaseSpec = tuple[str, list[tuple[str, str]], list[str]]


# arm64 roles (tools/testdata.py BUILDS_ARM64): what was cross-built, and hello.ko from
# another ABI/arch as the foreign cases
ARM64_BUILT = [
    "hello.ko",
    "unknown_sym.ko",
    "gplonly_user.ko",
    "gplonly_prop.ko",
    "ns_noimport.ko",
    "params_mod.ko",
]
ARM64_FOREIGN = {
    "6.1-a-arm64": ["6.1-b-arm64", "6.12-arm64", "6.1-a"],
    "6.1-b-arm64": ["6.1-a-arm64"],
    "6.12-arm64": ["6.1-a-arm64"],
}


def arm64_specs(role: str) -> list[CaseSpec]:
    specs: list[CaseSpec] = [(n, [(role, n)], []) for n in ARM64_BUILT]
    specs += [(f"hello.ko@{b}", [(b, "hello.ko")], []) for b in ARM64_FOREIGN.get(role, [])]
    return specs


def standard_specs(role: str) -> list[CaseSpec]:
    """The cases the tests run on one kernel role, with no paths yet (for test ids)."""
    if role.endswith("-arm64"):
        return arm64_specs(role)
    specs: list[CaseSpec] = []
    own = COMMON_BUILT + (ONLY_61A if role == "6.1-a" else [])
    if role in ("6.1-a", "6.12"):
        specs += [(n, [(role, n)], []) for n in own]
        specs += [(f"{p}+{c}", [(role, p), (role, c)], []) for p, c in PAIRS]
        specs += [(f"intree:{UMS_ALAUDA}", [], [UMS_ALAUDA])]
    foreign = {
        "6.1-a": ["6.1-b", "6.12", "6.1-a-rt", "6.1-a-cloud"],
        "6.1-b": ["6.1-a", "6.1-b"],
        "6.12": ["6.1-a"],
    }[role]
    specs += [(f"hello.ko@{b}", [(b, "hello.ko")], []) for b in foreign]
    return specs


def resolve_spec(spec: CaseSpec, manifest: dict, role: str) -> Case:
    name, built, intree = spec
    modules = [os.path.join(manifest["built"][b], f) for b, f in built]
    tree = manifest["kernels"][role]["modules"]
    index = index_tree(tree)
    for rel in intree:
        modules.append(index[file_stem(rel).replace("-", "_")])
    return Case(name, modules, intree_deps(modules, tree))


def spec_available(spec: CaseSpec, manifest: dict, role: str) -> bool:
    """Whether the test data holds every module the case needs (a role may be unbuilt)."""
    _name, built, _intree = spec
    kernel = manifest["kernels"].get(role, {})
    if not kernel.get("vmlinuz") or not kernel.get("modules"):
        return False
    return all(
        b in manifest.get("built", {}) and os.path.exists(os.path.join(manifest["built"][b], f))
        for b, f in built
    )


def standard_cases(manifest: dict, role: str) -> list[Case]:
    """The standard cases of a role whose modules exist."""
    specs = [s for s in standard_specs(role) if spec_available(s, manifest, role)]
    return [resolve_spec(s, manifest, role) for s in specs]


def load_manifest(cache: str = CACHE) -> dict:
    with open(os.path.join(cache, "manifest.json")) as f:
        return json.load(f)


# --------------------------------------------------------------------------- CLI


def summary_line(rec: dict) -> str:
    verdict = "loaded" if rec["loaded"] else f"refused rc={rec['rc']}"
    taint = rec["module_taint"] if rec["loaded"] else f"delta={rec['taint_delta'] or '-'}"
    first = next((ln for ln in rec["dmesg"] if ln), "")
    return f"  {rec['case']:<38} {rec['kind']:<6} {verdict:<16} {taint:<10} {first[:90]}"


def role_arch(manifest: dict, role: str) -> tuple[str, str | None]:
    """abicheck's name for the role's architecture, and the userland folder it boots with
    (None: the host's busybox and kmod)."""
    arch = arch_name(manifest["kernels"][role].get("arch", "amd64"))
    if not vm.is_foreign(arch):
        return arch, None
    userland = manifest.get("userland", {}).get(ARCHES[arch]["debian"])
    if userland is None:
        raise SystemExit(f"{role}: no userland in the manifest: {vm.userland_hint(arch)}")
    return arch, userland


def bootable_here(manifest: dict, role: str) -> bool:
    """Whether the role's kernel is the host's arch, or the manifest has its userland."""
    arch = arch_name(manifest["kernels"][role].get("arch", "amd64"))
    return not vm.is_foreign(arch) or ARCHES[arch]["debian"] in manifest.get("userland", {})


def run_role(
    manifest: dict, role: str, extra: Iterable[str], standard: bool, timeout: float, log_dir: str
) -> dict:
    kernel = manifest["kernels"][role]
    cases = standard_cases(manifest, role) if standard else []
    for spec in extra:
        modules = [os.path.abspath(p) for p in spec.split(",")]
        cases.append(Case(spec, modules, intree_deps(modules, kernel["modules"])))
    log_path = os.path.join(log_dir, f"serial-{role}.log")
    print(f"{role}: booting {kernel['release']} with {len(cases)} cases", file=sys.stderr)
    arch, userland = role_arch(manifest, role)
    doc = run_cases(
        kernel.get("image", kernel["vmlinuz"]),
        cases,
        timeout,
        log_path=log_path,
        arch=arch,
        userland=userland,
    )
    doc["role"] = role
    print(f"{role}: boot took {doc['boot_seconds']:.1f}s (serial log {log_path})", file=sys.stderr)
    for rec in doc["results"]:
        print(summary_line(rec), file=sys.stderr)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run_p = sub.add_parser("run", help="boot one kernel role with its cases")
    run_p.add_argument("--role", required=True)
    run_p.add_argument(
        "--case",
        action="append",
        default=[],
        help="comma-separated modules loaded in order (in-tree deps found by depends=)",
    )
    run_p.add_argument("--no-standard", action="store_true", help="only the --case cases")
    all_p = sub.add_parser("all", help="boot every role that has a kernel image")
    cases_p = sub.add_parser("cases", help="list the standard cases of a role")
    cases_p.add_argument("--role", required=True)
    for p in (run_p, all_p):
        p.add_argument("-o", "--output", required=True, help="results JSON")
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per boot, seconds")
    args = ap.parse_args(argv)

    manifest = load_manifest()
    if args.cmd == "cases":
        for case in standard_cases(manifest, args.role):
            print(f"{case.name}: deps={case.deps} modules={case.modules}")
        return 0
    if args.cmd == "run":
        roles = [args.role]
    else:
        roles = [r for r, k in manifest["kernels"].items() if k.get("vmlinuz")]
        for r in [r for r in roles if not bootable_here(manifest, r)]:
            print(
                f"{r}: skipped ({vm.userland_hint(manifest['kernels'][r]['arch'])})",
                file=sys.stderr,
            )
            roles.remove(r)
    missing = sorted({t for r in roles for t in missing_tools(*role_arch(manifest, r))})
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    log_dir = os.path.dirname(os.path.abspath(args.output))
    if args.cmd == "run":
        docs = [
            run_role(manifest, args.role, args.case, not args.no_standard, args.timeout, log_dir)
        ]
    else:
        docs = [run_role(manifest, r, [], True, args.timeout, log_dir) for r in roles]
    with open(args.output, "w") as f:
        json.dump({"runs": docs}, f, indent=1)
    for d in docs:
        print(f"boot {d['role']} ({d['release']}): {d['boot_seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
