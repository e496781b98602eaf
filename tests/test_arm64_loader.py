"""The arm64 loader model (rules/arch/aarch64.toml) on Debian's arm64 6.1 and 6.12 kernels
and modules cross-built against their headers, with the real kernel as referee.

Every expectation here was seen on Debian's 6.1.0-47-arm64 and 6.12.107+deb12-arm64 under
qemu-system-aarch64 (`abicheck prove`): the kernel line, the errno, the taints, init and
rmmod; test_arm64_referee boots both again, every case in one `prove` per kernel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import REPO, kernel, run_cli

CROSS = "aarch64-linux-gnu-"


def _role(testdata: dict, role: str) -> dict:
    if role not in testdata["kernels"] or role not in testdata.get("built", {}):
        pytest.skip(f"{role} not fetched/built: run `python tools/testdata.py all`")
    return kernel(testdata, role)


def _built(testdata: dict, role: str, name: str) -> str:
    path = os.path.join(testdata["built"][role], name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not built for {role}")
    return path


def _result(module: str, *kernel_args: str) -> dict:
    res = run_cli(["check", "--format", "json", module, *kernel_args])
    assert res.exit_code in (0, 1), res.stderr
    (r,) = res.json()["results"]
    return r


def _first_error(r: dict) -> dict:
    return next(f for f in r["findings"] if f["severity"] == "error")


def test_hello_loads_tainted_on_its_kernel(testdata):
    k = _role(testdata, "6.1-a-arm64")
    r = _result(_built(testdata, "6.1-a-arm64", "hello.ko"), "-k", k["headers"])
    assert r["verdict"] == "loads-tainted"
    assert [t["letter"] for t in r["taints"]] == ["O", "E"]


@pytest.mark.parametrize(
    ("name", "rule", "says", "errno"),
    [
        (
            "unknown_sym.ko",
            "SY001",
            "unknown_sym: Unknown symbol abicheck_no_such_export (err -2)",
            "ENOENT",
        ),
        (
            "ns_noimport.ko",
            "NS001",
            "ns_noimport: module uses symbol (acpi_table_parse_cedt) from namespace ACPI, "
            "but does not import it.",
            "EINVAL",
        ),
    ],
)
def test_symbol_refusals_as_the_arm64_kernel_says(testdata, name, rule, says, errno):
    k = _role(testdata, "6.1-a-arm64")
    r = _result(_built(testdata, "6.1-a-arm64", name), "-k", k["headers"])
    first = _first_error(r)
    assert (r["verdict"], first["rule"], first["errno"]) == ("refused", rule, errno)
    assert first["kernel_says"].splitlines()[0] == says


def test_another_abi_is_module_layout(testdata):
    a = _role(testdata, "6.1-a-arm64")
    _role(testdata, "6.1-b-arm64")
    r = _result(_built(testdata, "6.1-b-arm64", "hello.ko"), "-k", a["headers"])
    first = _first_error(r)
    assert (r["verdict"], first["rule"]) == ("refused", "MV004")
    assert first["kernel_says"] == "hello: disagrees about version of symbol module_layout"


def test_arm64_vermagic_words(testdata):
    a = _role(testdata, "6.1-a-arm64")
    r = _result(_built(testdata, "6.1-a-arm64", "hello.ko"), "-k", sample_x86())
    first = _first_error(r)
    assert first["rule"] == "EL001"
    assert first["kernel_says"] == "Invalid architecture in ELF header: 183"
    vm = next(f for f in r["findings"] if f["rule"] == "VM001")
    assert "aarch64: aarch64 vs (absent)" in vm["message"]
    assert a["release"] in vm["kernel_says"]


def sample_x86() -> str:
    return os.path.join(REPO, "samples", "kernels", "6.1.0-47-amd64.json.gz")


def test_x86_module_on_arm64_is_el001(testdata):
    a = _role(testdata, "6.1-a-arm64")
    r = _result(os.path.join(REPO, "samples", "modules", "hello.ko"), "-k", a["headers"])
    first = _first_error(r)
    assert (first["rule"], first["kernel_says"]) == (
        "EL001",
        "Invalid architecture in ELF header: 62",
    )


def test_missing_plt_sections(testdata, tmp_path):
    a = _role(testdata, "6.1-a-arm64")
    objcopy = shutil.which(CROSS + "objcopy") or shutil.which("objcopy")
    assert objcopy
    noplt = str(tmp_path / "hello_noplt.ko")
    subprocess.run(
        [
            objcopy,
            "-R",
            ".plt",
            "-R",
            ".init.plt",
            _built(testdata, "6.1-a-arm64", "hello.ko"),
            noplt,
        ],
        check=True,
    )
    r = _result(noplt, "-k", a["headers"])
    first = _first_error(r)
    assert (r["verdict"], first["rule"], first["errno"]) == ("refused", "EL008", "ENOEXEC")
    assert first["kernel_says"] == "hello: module PLT section(s) missing"
    assert "CONFIG_ARM64_MODULE_PLTS=y" in first["message"]


# -- struct module drift, which arm64 applies where x86 refuses --------------------------------


def _headers_copy(testdata: dict, role: str, work, flips: dict) -> str:
    """A copy of ``role``'s arm64 headers with ``flips`` applied (tools/drift.py apply_flips,
    as the x86 drift cases): what a vendor's `make oldconfig` on copied headers leaves."""
    k = _role(testdata, role)
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import drift

    headers = work / f"linux-headers-{k['release']}"
    shutil.copytree(k["headers"], headers, symlinks=True)
    for link in ("scripts", "tools"):  # relative links: point them where they pointed
        target = os.path.realpath(os.path.join(k["headers"], link))
        if os.path.lexists(headers / link):
            os.unlink(headers / link)
            os.symlink(target, headers / link)
    drift.apply_flips(str(headers), flips)
    return str(headers)


def _kbuild(headers: str, source: str, work, name: str | None = None, make=()) -> str:
    """tests/modules/``source`` cross-built against ``headers``; as module ``name`` when
    given (its .c renamed, so that modules of one run do not share a name)."""
    if shutil.which(CROSS + "gcc") is None:
        pytest.skip("gcc-aarch64-linux-gnu not installed")
    src = work / (name or source)
    shutil.copytree(os.path.join(REPO, "tests", "modules", source), src)
    if name:
        os.rename(src / f"{source}.c", src / f"{name}.c")
        (src / "Kbuild").write_text(f"obj-m += {name}.o\n")
    subprocess.run(
        ["make", "-s", "-C", headers, "ARCH=arm64", f"CROSS_COMPILE={CROSS}", f"M={src}", *make],
        check=True,
        capture_output=True,
    )
    (ko,) = src.glob("*.ko")
    return str(ko)


def _drifted_hello(
    testdata: dict, work, flips: dict, role: str = "6.1-a-arm64"
) -> tuple[str, dict]:
    """hello.ko built against a copy of ``role``'s headers with ``flips`` applied."""
    headers = _headers_copy(testdata, role, work, flips)
    return _kbuild(headers, "hello", work), _role(testdata, role)


@pytest.fixture(scope="module")
def kprobes_drift(testdata, tmp_path_factory) -> tuple[str, dict]:
    """CONFIG_KPROBES off: exit moves from 0x340 to 0x320, onto source_list.next."""
    return _drifted_hello(testdata, tmp_path_factory.mktemp("arm64-kprobes"), {"KPROBES": None})


def test_kprobes_drift_is_overwritten_not_refused(kprobes_drift):
    ko, a = kprobes_drift
    for extra in (["--layouts", "probe"], ["--vmlinux", a["vmlinuz"]]):
        r = _result(ko, "-k", a["headers"], *extra)
        (ly002,) = [f for f in r["findings"] if f["rule"] == "LY002"]
        assert r["verdict"] == "loads-unsafe"
        assert (ly002["evidence"]["module_exit"], ly002["evidence"]["kernel_exit"]) == (
            0x320,
            0x340,
        )
        assert [o["option"] for o in ly002["evidence"]["options"]] == ["CONFIG_KPROBES"]
        assert "written over the kernel's source_list.next" in ly002["message"]
        assert "fails with EAGAIN (Resource temporarily unavailable)" in ly002["message"]


# -- R_AARCH64_ABS32 against a kernel symbol -----------------------------------------------------


@pytest.fixture(scope="module")
def abs32_module(testdata, tmp_path_factory) -> tuple[str, dict]:
    """tests/modules/abs32_arm64: a `.word _printk` in .data, which the assembler emits as
    R_AARCH64_ABS32; cross-built here against the real 6.1.0-47-arm64 headers."""
    a = _role(testdata, "6.1-a-arm64")
    work = tmp_path_factory.mktemp("abs32")
    return _kbuild(a["headers"], "abs32_arm64", work), a


def test_abs32_against_a_kernel_address_overflows(abs32_module):
    ko, a = abs32_module
    r = _result(ko, "-k", a["headers"])
    first = _first_error(r)
    assert (r["verdict"], first["rule"], first["errno"]) == ("refused", "RL002", "ENOEXEC")
    assert first["evidence"]["type_name"] == "R_AARCH64_ABS32"
    assert (first["evidence"]["symbol"], first["evidence"]["where"]) == (
        "_printk",
        "exported by vmlinux",
    )
    assert (
        first["kernel_says"]
        == "module abs32: overflow in relocation type 258 val <address of _printk>"
    )


def test_abs32_line_carries_6_12_module_c_prefix(testdata, tmp_path):
    """6.12's arch/arm64/kernel/module.c prints under pr_fmt "Modules: " (the real
    6.12.107+deb12-arm64 logs "Modules: module abs32: overflow ..."); its config has no
    ARM64_MODULE_PLTS, which is how abicheck tells."""
    k = _role(testdata, "6.12-arm64")
    r = _result(_kbuild(k["headers"], "abs32_arm64", tmp_path), "-k", k["headers"])
    first = _first_error(r)
    assert (first["rule"], first["errno"]) == ("RL002", "ENOEXEC")
    assert first["kernel_says"] == (
        "Modules: module abs32: overflow in relocation type 258 val <address of _printk>"
    )


# -- the referee: every arm64 case, one `abicheck prove` per kernel ------------------------------

# The struct module drifts of tools/drift.py's x86 cases, on arm64. TRACEPOINTS keeps the name
# hello and comes after the refusals, before any load: on 6.1 its load oopses, which ends
# that boot, and the modules that load (their rmmod, at the end of the boot, is part of what
# is checked) get a fresh one.
DRIFTS = ["KPROBES", "JUMP_LABEL", "KALLSYMS", "DEBUG_INFO_BTF_MODULES", "SYSFS", "TRACEPOINTS"]
SIZE = (
    ".gnu.linkonce.this_module section size must match the kernel's built struct module "
    "size at run time"
)
TASK_PID = re.compile(r"task_pid: current->pid (-?\d+) at offset (\d+), the kernel says (\d+)")
EAGAIN = "could not remove module {}: Resource temporarily unavailable"
EBUSY = "could not remove module {}: Device or resource busy"


def _referee_set(testdata: dict, role: str, work) -> dict[str, str]:
    """Every arm64 case of issue 13 as a module for ``role``'s kernel, in load order:
    refusals first (each leaves the kernel as it was), then the loads."""
    k = _role(testdata, role)
    other = {"6.1-a-arm64": "6.1-b-arm64", "6.12-arm64": "6.1-a-arm64"}[role]
    _role(testdata, other)
    noplt = str(work / "hello.ko")  # named hello: a module not linked by Kbuild's ld -r
    subprocess.run(
        [shutil.which(CROSS + "objcopy") or "objcopy", "-R", ".plt", "-R", ".init.plt",
         _built(testdata, role, "hello.ko"), noplt],
        check=True,
    )  # fmt: skip

    def copy(flips: dict, tag: str) -> str:
        d = work / tag
        d.mkdir()
        return _headers_copy(testdata, role, d, flips)

    # (headers, source, folder, module name, make variables): cross-built two at a time
    builds: dict[str, tuple] = {
        # vermagic: headers of a CONFIG_PREEMPT kernel (a vendor's config), every CRC equal
        "vermagic": (copy({"PREEMPT_BUILD": "y"}, "preempt"), "hello", work, "hello_preempt"),
        "abs32": (k["headers"], "abs32_arm64", work, None),
        "task_pid": (copy({"SCHED_INFO": None}, "no-sched-info"), "task_pid", work, None),
    }
    if not os.path.exists(os.path.join(testdata["built"][role], "ns_noimport.ko")):
        # a cache built before tools/testdata.py built it for 6.12-arm64
        builds["ns_noimport"] = (k["headers"], "ns_noimport", work, None,
                                 ["CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS=y"])  # fmt: skip
    for option in DRIFTS:
        tag = f"no-{option.lower()}"
        name = None if option == "TRACEPOINTS" else f"hello_no_{option.lower()}"
        builds[option] = (copy({option: None}, tag), "hello", work / tag, name)
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {case: pool.submit(_kbuild, *job) for case, job in builds.items()}
        made = {case: f.result() for case, f in futures.items()}
    return {
        "unknown_sym": _built(testdata, role, "unknown_sym.ko"),
        "gplonly_prop": _built(testdata, role, "gplonly_prop.ko"),
        "ns_noimport": made.get("ns_noimport") or _built(testdata, role, "ns_noimport.ko"),
        "vermagic": made["vermagic"],
        "x86_64": os.path.join(REPO, "samples", "modules", "hello.ko"),
        "cross_abi": _built(testdata, other, "hello.ko"),
        "noplt": noplt,
        "abs32": made["abs32"],
        "TRACEPOINTS": made["TRACEPOINTS"],
        "own": _built(testdata, role, "hello.ko"),
        "gplonly_user": _built(testdata, role, "gplonly_user.ko"),
        "task_pid": made["task_pid"],
        **{option: made[option] for option in DRIFTS if option != "TRACEPOINTS"},
    }


def _refused(rule: str, line: str, errno: str = "ENOEXEC") -> dict:
    """Predicted and really refused: ``rule`` first, ``line`` logged (a prefix when it ends
    with "…"), insmod failing with ``errno`` (kmod prints ENOENT's message for ESRCH too)."""
    kernel_errno = ["ENOENT", "ESRCH"] if errno == "ENOENT" else [errno]
    return {"verdict": "refused", "rule": rule, "errno": errno, "kernel": "refused",
            "kernel_errno": kernel_errno, "line": line}  # fmt: skip


def _loaded(verdict: str, line: str | None, rule: str | None = None, init: bool = True,
            rmmod: str = "") -> dict:  # fmt: skip
    """Loaded, taints O and E; ``rule`` the unsafe finding; ``rmmod`` what rmmod says
    ("" removed, else the format of kmod's message)."""
    return {"verdict": verdict, "rule": rule, "kernel": "loads-tainted", "line": line,
            "init": init, "rmmod": rmmod}  # fmt: skip


# What the real kernels did, seen under qemu-system-aarch64 (TCG) with Debian's busybox and
# kmod 30; abicheck predicts each of them (the test also asserts prove's own agreement).
def _expected(role: str, release: str) -> dict[str, dict]:
    size = "module {}: " + SIZE
    common = {
        "unknown_sym": _refused(
            "SY001", "unknown_sym: Unknown symbol abicheck_no_such_export (err -2)", "ENOENT"
        ),
        "gplonly_prop": _refused(
            "GP001", "gplonly_user: Unknown symbol ktime_get (err -2)", "ENOENT"
        ),
        "ns_noimport": _refused(
            "NS001",
            "ns_noimport: module uses symbol (acpi_table_parse_cedt) from namespace ACPI, "
            "but does not import it.",
            "EINVAL",
        ),
        "vermagic": _refused(
            "VM001",
            f"hello_preempt: version magic '{release} SMP preempt mod_unload modversions "
            f"aarch64' should be '{release} SMP mod_unload modversions aarch64'",
        ),
        "x86_64": _refused("EL001", "Invalid architecture in ELF header: 62"),
        "noplt": _refused("EL008", "hello: module PLT section(s) missing"),
        # 6.12's arm64 module.c prints its lines under pr_fmt "Modules: " (6.1: none)
        "abs32": _refused(
            "RL002",
            ("Modules: " if role == "6.12-arm64" else "")
            + "module abs32: overflow in relocation type 258 val ffff…",
        ),
        "own": _loaded("loads-tainted", "abicheck hello"),
        "gplonly_user": _loaded("loads-tainted", None),
        # task_pid reads "pid" at its own offset: the kernel's restart_block.futex.val, 0
        "task_pid": _loaded("loads-unsafe", None, "LY003"),
        # JUMP_LABEL: exit lands on target_list.prev; the kernel's exit stays NULL
        "JUMP_LABEL": _loaded("loads-unsafe", "abicheck hello", "LY002", rmmod=EBUSY),
    }
    if role == "6.1-a-arm64":
        return common | {
            "cross_abi": _refused(
                "MV004", "hello: disagrees about version of symbol module_layout"
            ),
            # exit on source_list.next: module_unload_init() set it, the relocation overwrote it
            "KPROBES": _loaded("loads-unsafe", "abicheck hello", "LY002", rmmod=EAGAIN),
            "KALLSYMS": _loaded("loads-unsafe", "abicheck hello", "LY002", rmmod=EBUSY),
            # Debian 6.1's module.h keeps the BTF members unconditional: nothing moves
            "DEBUG_INFO_BTF_MODULES": _loaded("loads-tainted", "abicheck hello"),
            # init moves onto gpl_syms: the kernel finds no init, removes it cleanly
            "SYSFS": _loaded("loads-unsafe", None, "LY002", init=False),
            # exit on target_list.next, which mod_sysfs_setup() follows: the load oopses
            "TRACEPOINTS": {"verdict": "refused", "rule": "LY002", "errno": None,
                            "kernel": "oops", "kernel_errno": [],
                            "line": "Unable to handle kernel paging request at virtual address …"},
        }  # fmt: skip
    # 6.12 checks .gnu.linkonce.this_module's size (since 6.4, rules/LY001.toml): every drift
    # that changes struct module's size is refused before any relocation
    return common | {
        "cross_abi": _refused("LY001", size.format("hello")),
        "KPROBES": _refused("LY001", size.format("hello_no_kprobes")),
        "KALLSYMS": _refused("LY001", size.format("hello_no_kallsyms")),
        "DEBUG_INFO_BTF_MODULES": _refused("LY001", size.format("hello_no_debug_info_btf_modules")),
        "SYSFS": _loaded("loads-unsafe", None, "LY002", init=False),
        "TRACEPOINTS": _refused("LY001", size.format("hello")),
    }


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("role", ["6.1-a-arm64", "6.12-arm64"])
def test_arm64_referee(testdata, role, tmp_path):
    """Every arm64 case of issue 13 against the real kernel in one `abicheck prove` (one
    boot, and a fresh one after a load that oopses): prove agrees with each prediction,
    and the verdict, the rule, the kernel's own line, insmod's errno, whether init ran and
    what rmmod said are the ones seen."""
    k = _role(testdata, role)
    userland = testdata.get("userland", {}).get("arm64")
    if not userland or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 or the arm64 userland missing")
    start = time.monotonic()
    cases = _referee_set(testdata, role, tmp_path)
    built = time.monotonic() - start
    expected = _expected(role, k["release"])
    assert sorted(cases) == sorted(expected)
    args = ["--kernel", k["headers"], "--image", k["image"], "--userland", userland]
    res = run_cli(["prove", *cases.values(), *args, "--accel", "tcg", "--format", "json"])
    assert res.exit_code in (0, 1), res.stderr
    doc = res.json()
    took = time.monotonic() - start - built
    boots = [(b["seconds"], b["failure"]) for b in doc["boots"]]
    print(f"{role}: built in {built:.0f}s, proved in {took:.0f}s, boots {boots}")
    problems = []
    for (case, path), r in zip(cases.items(), doc["results"], strict=True):
        assert r["module"] == path
        problems += [f"{case}: {p}" for p in _referee_problems(case, r, expected[case])]
    assert not problems, "\n".join(problems)
    assert res.exit_code == 0, res.stderr
    # 6.1's oops ends the first boot, before any load; 6.12 refuses that module: one boot
    assert len(doc["boots"]) == (2 if role == "6.1-a-arm64" else 1)


def _referee_problems(case: str, r: dict, want: dict) -> list[str]:
    p = r["proved"]
    errors = [f for f in r["findings"] if f["severity"] == "error"]
    seen = {
        "agrees": r["agrees"],
        "verdict": r["verdict"],
        "rule": errors[0]["rule"] if errors else None,
        "kernel": p["verdict"],
    }
    wanted = {"agrees": True, "verdict": want["verdict"], "rule": want["rule"],
              "kernel": want["kernel"]}  # fmt: skip
    if want["kernel"] in ("refused", "oops"):
        seen |= {"kernel_errno": p["errno"]}
        wanted |= {"kernel_errno": want["kernel_errno"]}
        if want["errno"]:
            seen["errno"], wanted["errno"] = errors[0]["errno"], want["errno"]
    else:
        # kmod's rmmod says it twice (libkmod's line, then its own): its own is checked
        said = p["rmmod_stderr"].rpartition("rmmod: ERROR: ")[2].strip()
        seen |= {"taint": p["module_taint"], "init": p["init_ran"], "rmmod": said,
                 "rmmod_rc": p["rmmod_rc"]}  # fmt: skip
        wanted |= {"taint": "OE", "init": want["init"],
                   "rmmod": want["rmmod"].format(p["name"]),
                   "rmmod_rc": 1 if want["rmmod"] else 0}  # fmt: skip
    out = [
        f"{key}: {seen[key]!r}, expected {wanted[key]!r}"
        for key in wanted
        if seen[key] != wanted[key]
    ]
    line = want["line"]
    lines = p["kernel_lines"]
    if line is not None:
        hit = any(ln.startswith(line[:-1]) if line.endswith("…") else ln == line for ln in lines)
        if not hit:
            out.append(f"the kernel did not log {line!r}: {lines}")
    if case == "task_pid":
        out += _silent_drift_problems(r)
    if want["kernel"] == "oops":
        # the oops is a PV002 finding with the oops's first line, a warning only: LY002
        # predicted it (an unpredicted oops is an error, and exit 1)
        pv002 = [f for f in r["findings"] if f["rule"] == "PV002"]
        if [(f["severity"], f["evidence"].get("predicted_by")) for f in pv002] != [
            ("warning", "LY002")
        ] or not pv002[0]["kernel_says"].startswith("Unable to handle kernel paging request"):
            out.append(f"PV002 for the predicted oops: {pv002}")
    if not r["agrees"]:
        out.append(f"disagreements: {r['disagreements']}")
    return out


def _silent_drift_problems(r: dict) -> list[str]:
    """task_pid.ko built with CONFIG_SCHED_INFO off: LY003 names task_struct.pid at another
    offset, and the kernel runs its init, which reads the module's offset, not pid."""
    (ly003,) = [
        f
        for f in r["findings"]
        if f["rule"] == "LY003" and f["evidence"]["struct"] == "task_struct"
    ]
    mine, theirs = ly003["evidence"]["moved"]["pid"]
    found = [m for m in map(TASK_PID.search, r["proved"]["kernel_lines"]) if m]
    if not found:
        return [f"task_pid printed nothing: {r['proved']['kernel_lines']}"]
    read, offset, said = (int(x) for x in found[0].groups())
    out = []
    if (offset, theirs - mine) != (mine, 32):  # sched_info's 32 bytes
        out.append(f"pid at {offset} in the module; LY003 says {mine} (kernel {theirs})")
    if read == said:
        out.append(f"read the right pid though task_struct moved: {found[0][0]}")
    return out
