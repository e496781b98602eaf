"""The arm64 loader model (rules/arch/aarch64.toml) on Debian's arm64 6.1 and 6.12 kernels
and modules cross-built against their headers, with the real kernel as referee.

Every expectation here was seen on Debian's 6.1.0-47-arm64 under qemu-system-aarch64
(tools/qemu_harness.py --role 6.1-a-arm64, and `abicheck prove`): the kernel line, the
errno, the taints; the qemu-marked tests boot it again.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

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


def _drifted_hello(testdata: dict, work, flips: dict) -> tuple[str, dict]:
    """hello.ko built against a copy of the 6.1.0-47-arm64 headers with ``flips`` applied
    (tools/drift.py apply_flips, as the x86 drift cases)."""
    a = _role(testdata, "6.1-a-arm64")
    if shutil.which(CROSS + "gcc") is None:
        pytest.skip("gcc-aarch64-linux-gnu not installed")
    sys.path.insert(0, os.path.join(REPO, "tools"))
    import drift

    headers = work / "linux-headers-6.1.0-47-arm64"
    shutil.copytree(a["headers"], headers, symlinks=True)
    for link in ("scripts", "tools"):  # relative links: point them where they pointed
        target = os.path.realpath(os.path.join(a["headers"], link))
        if os.path.lexists(headers / link):
            os.unlink(headers / link)
            os.symlink(target, headers / link)
    drift.apply_flips(str(headers), flips)
    src = work / "hello"
    shutil.copytree(os.path.join(REPO, "tests", "modules", "hello"), src)
    subprocess.run(
        ["make", "-s", "-C", str(headers), "ARCH=arm64", f"CROSS_COMPILE={CROSS}", f"M={src}"],
        check=True,
        capture_output=True,
    )
    return str(src / "hello.ko"), a


@pytest.fixture(scope="module")
def kprobes_drift(testdata, tmp_path_factory) -> tuple[str, dict]:
    """CONFIG_KPROBES off: exit moves from 0x340 to 0x320, onto source_list.next."""
    return _drifted_hello(testdata, tmp_path_factory.mktemp("arm64-kprobes"), {"KPROBES": None})


# The options whose drift moves struct module on x86 (tools/drift.py's cases), on arm64.
ARM64_DRIFTS = ["TRACEPOINTS", "JUMP_LABEL", "KALLSYMS", "DEBUG_INFO_BTF_MODULES", "SYSFS"]


@pytest.fixture(scope="module")
def arm64_drifts(testdata, tmp_path_factory) -> dict[str, str]:
    out = {}
    for option in ARM64_DRIFTS:
        work = tmp_path_factory.mktemp(f"arm64-{option.lower()}")
        out[option], _ = _drifted_hello(testdata, work, {option: None})
    return out


@pytest.mark.qemu
@pytest.mark.slow
def test_arm64_drifts_agree_with_the_kernel(arm64_drifts, testdata):
    """Each drift, predicted from the headers alone, against the real 6.1.0-47-arm64 in
    one boot (prove loads same-named modules one after the other): the verdict, the
    kernel's line and the errno agree, and the option named is the one flipped."""
    a = _role(testdata, "6.1-a-arm64")
    userland = testdata.get("userland", {}).get("arm64")
    if not userland or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 or the arm64 userland missing")
    modules = [arm64_drifts[o] for o in ARM64_DRIFTS]
    args = ["--kernel", a["headers"], "--image", a["image"], "--userland", userland]
    res = run_cli(["prove", *modules, *args, "--accel", "tcg", "--format", "json"])
    doc = res.json()
    assert len(doc["results"]) == len(ARM64_DRIFTS)
    for option, r in zip(ARM64_DRIFTS, doc["results"], strict=True):
        assert r["agrees"], (option, r["disagreements"])
        moved = [f for f in r["findings"] if f["rule"] == "LY002"]
        named = {o["option"] for f in moved for o in f["evidence"]["options"]}
        assert not moved or f"CONFIG_{option}" in named, (option, named)
    assert res.exit_code == 0
    # TRACEPOINTS: exit lands on target_list.next, which the load itself then follows
    tracepoints = doc["results"][0]
    assert tracepoints["verdict"] == "refused" and tracepoints["proved"]["verdict"] == "oops"
    assert any(
        ln.startswith("Unable to handle kernel paging request at virtual address")
        for ln in tracepoints["proved"]["kernel_lines"]
    )
    # the oops is a PV002 finding with the oops's first line, a warning only: LY002
    # predicted it (an unpredicted oops is an error, and exit 1)
    (pv002,) = [f for f in tracepoints["findings"] if f["rule"] == "PV002"]
    assert pv002["severity"] == "warning" and pv002["evidence"]["predicted_by"] == "LY002"
    assert pv002["kernel_says"].startswith(
        "Unable to handle kernel paging request at virtual address"
    )
    assert not [f for r in doc["results"] for f in r["findings"] if f["rule"] == "PV001"]


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


@pytest.mark.qemu
@pytest.mark.slow
def test_kprobes_drift_referee(kprobes_drift, testdata):
    """The real 6.1.0-47-arm64: the load succeeds and init runs; rmmod fails with EAGAIN
    because source_list.next now holds cleanup_module's address."""
    ko, a = kprobes_drift
    userland = testdata.get("userland", {}).get("arm64")
    if not userland or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 or the arm64 userland missing")
    res = run_cli(
        [
            "prove",
            ko,
            "--kernel",
            a["headers"],
            "--image",
            a["image"],
            "--userland",
            userland,
            "--accel",
            "tcg",
            "--format",
            "json",
        ]
    )
    assert res.exit_code == 0, res.stdout + res.stderr
    (r,) = res.json()["results"]
    proved = r["proved"]
    assert r["verdict"] == "loads-unsafe"
    assert (proved["verdict"], proved["errno"], proved["taints_set"]) == ("loads-tainted", [], "OE")
    assert (proved["init_ran"], proved["initstate"]) == (True, "live")
    assert proved["rmmod_rc"] == 1
    assert (
        "could not remove module hello: Resource temporarily unavailable"
        in (proved["rmmod_stderr"])
    )


# -- R_AARCH64_ABS32 against a kernel symbol -----------------------------------------------------


@pytest.fixture(scope="module")
def abs32_module(testdata, tmp_path_factory) -> tuple[str, dict]:
    """tests/modules/abs32_arm64: a `.word _printk` in .data, which the assembler emits as
    R_AARCH64_ABS32; cross-built here against the real 6.1.0-47-arm64 headers."""
    a = _role(testdata, "6.1-a-arm64")
    if shutil.which(CROSS + "gcc") is None:
        pytest.skip("gcc-aarch64-linux-gnu not installed")
    src = tmp_path_factory.mktemp("abs32") / "abs32"
    shutil.copytree(os.path.join(REPO, "tests", "modules", "abs32_arm64"), src)
    subprocess.run(
        ["make", "-s", "-C", a["headers"], "ARCH=arm64", f"CROSS_COMPILE={CROSS}", f"M={src}"],
        check=True,
        capture_output=True,
    )
    return str(src / "abs32.ko"), a


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


@pytest.mark.qemu
@pytest.mark.slow
def test_abs32_referee(abs32_module, testdata):
    """The real 6.1.0-47-arm64: "module abs32: overflow in relocation type 258 val
    ffff…", ENOEXEC, as predicted."""
    ko, a = abs32_module
    userland = testdata.get("userland", {}).get("arm64")
    if not userland or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 or the arm64 userland missing")
    args = ["--kernel", a["headers"], "--image", a["image"], "--userland", userland]
    res = run_cli(["prove", ko, *args, "--accel", "tcg", "--format", "json"])
    assert res.exit_code == 0, res.stdout + res.stderr
    (r,) = res.json()["results"]
    assert r["agrees"], r["disagreements"]
    proved = r["proved"]
    assert (proved["verdict"], proved["errno"]) == ("refused", ["ENOEXEC"])
    assert any(
        ln.startswith("module abs32: overflow in relocation type 258 val ffff")
        for ln in proved["kernel_lines"]
    )
