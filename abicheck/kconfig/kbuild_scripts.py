"""Python versions of the helper scripts Kconfig calls through ``$(shell,...)``.

Each function mirrors one ``scripts/*.sh`` of the kernel tree (6.1 and 6.12 read; the
differences between them are noted) and runs only the toolchain program the script
would run, by argument vector, through :meth:`SafeShell.tool`. The minimum tool versions
are read from the tree's own ``scripts/min-tool-version.sh``, so a tree that raises them
is honoured. Outputs are byte-for-byte what the script prints, since Kconfig parses them.
"""

from __future__ import annotations

import os
import re

from abicheck.kconfig.shell import Outcome, Refused, SafeShell, Unevaluable, binutils_family


def _leading_version(word: str) -> str:
    """The digits and dots ``word`` starts with (always a match: ``*`` allows none)."""
    m = re.match(r"[0-9.]*", word)
    return m.group(0) if m else ""


def _canonical(version: str, weights: tuple[int, int, int] = (10000, 100, 1)) -> int:
    """get_canonical_version(): missing fields count as 0, a fourth is ignored."""
    fields = [int(x) if x.isdigit() else 0 for x in version.split(".")[:3]]
    fields += [0] * (3 - len(fields))
    return sum(w * f for w, f in zip(weights, fields, strict=True))


def min_tool_version(sh: SafeShell, tool: str) -> str:
    """The version scripts/min-tool-version.sh prints for TOOL on this architecture."""
    path = os.path.join(sh.srctree, "scripts", "min-tool-version.sh")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise Unevaluable(f"scripts/min-tool-version.sh unreadable: {e}") from None
    branch = re.search(rf"^{re.escape(tool)}\)\n(.*?)^\s*;;", text, re.M | re.S)
    if not branch:
        raise Unevaluable(f"scripts/min-tool-version.sh has no {tool}")
    body = branch.group(1)
    # `if [ "$ARCH" = parisc64 ]; then echo A; else echo B; fi` and the like: take the
    # branch whose test matches this ARCH/SRCARCH, else the else branch
    for cond, version in re.findall(
        r'if \[ "\$(?:ARCH|SRCARCH)" = (\S+) \]; then\s*echo (\S+)', body
    ) + re.findall(r'elif \[ "\$(?:ARCH|SRCARCH)" = (\S+) \]; then\s*echo (\S+)', body):
        if cond in (sh.env.get("ARCH"), sh.env.get("SRCARCH")):
            return version
    versions = re.findall(r"echo (\d[\w.]*)", body)
    if not versions:
        raise Unevaluable(f"scripts/min-tool-version.sh: no version for {tool}")
    return versions[-1]


def _say(text: str, status: int = 0) -> Outcome:
    return Outcome(status, (text + "\n").encode() if text else b"")


_CC_PROBE = b"""#if defined(__clang__)
Clang\t__clang_major__  __clang_minor__  __clang_patchlevel__
#elif defined(__INTEL_COMPILER)
ICC\t__INTEL_COMPILER  __INTEL_COMPILER_UPDATE
#elif defined(__GNUC__)
GCC\t__GNUC__  __GNUC_MINOR__  __GNUC_PATCHLEVEL__
#else
unknown
#endif
"""


def cc_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/cc-version.sh CC...: "GCC 120200" (ICC only in 6.1's version)."""
    out = sh.tool([*args, "-E", "-P", "-x", "c", "-"], _CC_PROBE)
    words = out.stdout.decode(errors="replace").split() if out.status == 0 else []
    if not words:
        return Outcome(1)
    name = words[0]
    if name in ("GCC", "Clang") and len(words) >= 4:
        version = ".".join(words[1:4])
        minimum = min_tool_version(sh, "gcc" if name == "GCC" else "llvm")
    elif name == "ICC" and len(words) >= 3:
        v = int(words[1])
        version = f"{v // 100}.{v % 100}.{words[2]}"
        minimum = min_tool_version(sh, "icc")
    else:
        return Outcome(1)
    if _canonical(version) < _canonical(minimum):
        return Outcome(1)
    return _say(f"{name} {_canonical(version)}")


def _first_line(out: Outcome) -> list[str]:
    lines = out.stdout.decode(errors="replace").splitlines()
    return lines[0].split() if lines else []


def ld_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/ld-version.sh LD: "BFD 24000" or "LLD 160006"."""
    words = _first_line(sh.tool([*args, "--version"], c_locale=True))
    if words[:2] == ["GNU", "ld"]:
        version, minimum, name = words[-1], min_tool_version(sh, "binutils"), "BFD"
    elif words[:2] == ["GNU", "gold"]:
        return Outcome(1)
    else:
        while len(words) > 1 and words[0] != "LLD":
            words.pop(0)
        if words[:1] != ["LLD"] or len(words) < 2:
            return Outcome(1)
        version, minimum, name = words[1], min_tool_version(sh, "llvm"), "LLD"
    version = _leading_version(version)  # ${version%%[!0-9.]*}
    if _canonical(version) < _canonical(minimum):
        return Outcome(1)
    return _say(f"{name} {_canonical(version)}")


def as_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/as-version.sh CC FLAGS: "GNU 24000", or "LLVM 0" for the integrated one."""
    if "-fintegrated-as" in args:
        return _say("LLVM 0")
    out = sh.tool(
        [*args, "-Wa,--version", "-c", "-x", "assembler-with-cpp", "/dev/null", "-o", "/dev/null"],
        c_locale=True,
    )
    words = _first_line(out)
    if words[:2] != ["GNU", "assembler"]:
        return Outcome(1)
    version = words[-1].rsplit("-", 1)[0]  # ${version%-*}
    if _canonical(version) < _canonical(min_tool_version(sh, "binutils")):
        return Outcome(1)
    return _say(f"GNU {_canonical(version)}")


def pahole_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/pahole-version.sh PAHOLE: "124" for v1.24, "0" when pahole is missing."""
    if not args or sh.which(args[0]) is None:
        sh.ran.append(" ".join(args) + " (not found)")
        sh.missing.extend(args[:1])
        return _say("0", 1)
    out = sh.tool([*args, "--version"])
    text = out.stdout.decode(errors="replace")
    return Outcome(out.status, re.sub(r"v([0-9]+)\.([0-9]+)", r"\1\2", text).encode())


def rustc_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/rustc-version.sh RUSTC (6.12): 107800 for 1.78.0, "0" without rustc."""
    out = sh.tool([*args, "--version"])
    words = out.stdout.decode(errors="replace").split()
    if out.status != 0 or len(words) < 2:
        return _say("0", 1)
    return _say(str(_canonical(words[1], (100000, 100, 1))))


def rustc_llvm_version(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/rustc-llvm-version.sh RUSTC (6.12): the LLVM rustc was built with."""
    out = sh.tool([*args, "--version", "--verbose"])
    for line in out.stdout.decode(errors="replace").splitlines():
        if re.search(r"LLVM.*[0-9]+\.[0-9]+\.[0-9]+", line):
            words = line.split()
            if len(words) >= 3:
                return _say(str(_canonical(words[2])))
    return _say("0", 1)


def rust_is_available(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/rust_is_available.sh: its first checks (rustc, bindgen present and new
    enough) are decisive when they fail; past them it asks bindgen for libclang and
    inspects the Rust sources, which is not reimplemented."""
    for var in ("RUSTC", "BINDGEN", "CC"):
        if var not in sh.env:
            return Outcome(1)
    for var in ("RUSTC", "BINDGEN"):
        if sh.which(sh.env[var]) is None:
            sh.ran.append(f"command -v {sh.env[var]} (not found)")
            sh.missing.append(sh.env[var])
            return Outcome(1)
    out = sh.tool([sh.env["RUSTC"], "--version"], c_locale=True)
    words = out.stdout.decode(errors="replace").split()
    if out.status or len(words) < 2:
        return Outcome(1)
    version = _leading_version(words[1])
    if _canonical(version, (100000, 100, 1)) < _canonical(
        min_tool_version(sh, "rustc"), (100000, 100, 1)
    ):
        return Outcome(1)
    raise Unevaluable("scripts/rust_is_available.sh past its rustc check (bindgen, libclang)")


_X86_64_FLAGS = ["-S", "-x", "c", "-m64", "-O0", "-mcmodel=kernel", "-fno-PIE"]
_X86_64_FLAGS += ["-fstack-protector", "-", "-o", "-"]
_STACK_PROTECTOR_C = b"int foo(void) { char X[200]; return 3; }\n"


def x86_64_stack_protector(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/gcc-x86_64-has-stack-protector.sh CC FLAGS: %gs-based canary."""
    out = sh.tool(
        [
            *args,
            *_X86_64_FLAGS,
        ],
        _STACK_PROTECTOR_C,
    )
    return Outcome(0 if b"%gs" in out.stdout else 1)


def x86_32_stack_protector(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/gcc-x86_32-has-stack-protector.sh CC FLAGS: %fs-based canary."""
    flags = (
        "-S -x c -m32 -O0 -fstack-protector -mstack-protector-guard-reg=fs "
        "-mstack-protector-guard-symbol=__stack_chk_guard - -o -"
    )
    out = sh.tool([*args, *flags.split()], _STACK_PROTECTOR_C)
    return Outcome(0 if b"%fs" in out.stdout else 1)


_CAN_LINK_C = b'int main(void)\n{\n\tprintf("");\n\treturn 0;\n}\n'


def cc_can_link(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/cc-can-link.sh CC FLAGS: a user-space program links."""
    out = sh.tool([*args, "-x", "c", "-", "-o", "/dev/null"], _CAN_LINK_C)
    return Outcome(0 if out.status == 0 else 1)


def tools_support_relr(args: list[str], sh: SafeShell) -> Outcome:
    """scripts/tools-support-relr.sh (env CC LD NM OBJCOPY): RELR relocation packing.

    6.1's version (``sh -eu``) insists on ``--pack-dyn-relocs=relr --use-android-relr-tags``,
    which only LLD knows; 6.12's falls back to GNU ld's ``-z pack-relative-relocs``."""
    cc, ld, nm, objcopy = (sh.env.get(k, "") for k in ("CC", "LD", "NM", "OBJCOPY"))
    if not all((cc, ld, nm, objcopy)):
        return Outcome(1)
    text = _script_text(sh, "scripts/tools-support-relr.sh")
    tmp = os.path.join(sh.scratch(), "relr")
    if sh.tool([*cc.split(), "-c", "-x", "c", "-", "-o", tmp + ".o"], b"void *p = &p;\n").status:
        return Outcome(1)
    relr = [*ld.split(), tmp + ".o", "-shared", "-Bsymbolic", "--pack-dyn-relocs=relr"]
    if "--use-android-relr-tags" in text:
        if sh.tool([*relr, "--use-android-relr-tags", "-o", tmp]).status:
            return Outcome(1)
    elif sh.tool([*relr, "-o", tmp]).status:
        again = sh.tool(
            [
                *ld.split(),
                tmp + ".o",
                "-shared",
                "-Bsymbolic",
                "-z",
                "pack-relative-relocs",
                "-o",
                tmp,
            ],
            want="both",
        )
        if b"pack-relative-relocs" in again.stdout:
            return Outcome(1)
    # The script ends with `test -z "$($NM $tmp_file 2>&1 >/dev/null)"` and `$OBJCOPY -O
    # binary`: do nm and objcopy read the RELR section ld just wrote? Neither runs
    # without --trust-tree; the answer is yes when both are the GNU binutils of the GNU
    # ld that wrote it (Kbuild's defaults, one package), and not evaluated otherwise.
    families = {binutils_family(sh.policy, v) for v in ("LD", "NM", "OBJCOPY")}
    if families != {"GNU"} or nm.split() != list(sh.policy.programs.get("NM", ())):
        raise Refused(f"{nm} and {objcopy} on a RELR object: not run without --trust-tree")
    if objcopy.split() != list(sh.policy.programs.get("OBJCOPY", ())):
        raise Refused(f"{objcopy} on a RELR object: not run without --trust-tree")
    sh.notes.append(
        f"scripts/tools-support-relr.sh: {nm} and {objcopy} not run; taken to read RELR "
        f"as the {ld} of their binutils wrote it"
    )
    return Outcome(0)


def _script_text(sh: SafeShell, rel: str) -> str:
    try:
        with open(os.path.join(sh.srctree, rel), encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


# The scripts each function was written from: SHA-256 (first 16 hex digits) of the file
# in Debian's linux-source-6.1 (6.1.192) and linux-source-6.12 (6.12.117). Another
# version is still evaluated, and the report says the script was not one of these.
VERIFIED = {
    "scripts/cc-version.sh": {"ebc7b0196c4975df", "2e7a69d846a36a3a"},
    "scripts/ld-version.sh": {"2760ed371a6465b3"},
    "scripts/as-version.sh": {"431def986dc25a72"},
    "scripts/pahole-version.sh": {"7640978c9f22186f"},
    "scripts/cc-can-link.sh": {"f7adbb3ca747604e"},
    "scripts/gcc-x86_64-has-stack-protector.sh": {"ee2f2a268824702b"},
    "scripts/gcc-x86_32-has-stack-protector.sh": {"b3f3577b3265aaa4"},
    "scripts/rust_is_available.sh": {"69a822a7459b6a22", "00e8893f3e8e5900"},
    "scripts/tools-support-relr.sh": {"a4133a44da7542ff", "b52d3e808bcee572"},
    "scripts/rustc-version.sh": {"ec495ec0fe8a9b53"},
    "scripts/rustc-llvm-version.sh": {"ac22cc2339c4df97"},
}

SCRIPTS = {
    "scripts/cc-version.sh": cc_version,
    "scripts/ld-version.sh": ld_version,
    "scripts/as-version.sh": as_version,
    "scripts/pahole-version.sh": pahole_version,
    "scripts/rustc-version.sh": rustc_version,
    "scripts/rustc-llvm-version.sh": rustc_llvm_version,
    "scripts/rust_is_available.sh": rust_is_available,
    "scripts/gcc-x86_64-has-stack-protector.sh": x86_64_stack_protector,
    "scripts/gcc-x86_32-has-stack-protector.sh": x86_32_stack_protector,
    "scripts/cc-can-link.sh": cc_can_link,
    "scripts/tools-support-relr.sh": tools_support_relr,
}


def run_script(rel: str, args: list[str], sh: SafeShell) -> Outcome:
    """Run the tree's script REL the way the shell would reach it: a file that is not
    executable fails (126, "Permission denied"), as Debian's non-executable
    scripts/orc_hash.sh would."""
    import hashlib

    implementation = SCRIPTS.get(rel)
    if implementation is None:
        # a program the tree chose: it fails as if it could not run, and is reported
        raise Refused(f"the tree's script {rel} (abicheck has no safe version of it)")
    path = os.path.join(sh.srctree, rel)
    if not os.path.isfile(path):
        return Outcome(127)
    if not os.access(path, os.X_OK):
        return Outcome(126)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:16]
    if digest not in VERIFIED.get(rel, ()):
        sh.notes.append(f"{rel} is not a version abicheck's Python version was checked against")
    return implementation(args, sh)
