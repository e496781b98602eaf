"""The arm64 test data is what it claims (issue 13): Debian's arm64 kernels and modules
cross-built against them, and the referee that boots them under qemu-system-aarch64.

The modules are compared with the real tools (readelf, modinfo), not with abicheck.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys

import pytest
from conftest import REPO, run_cli, sample

sys.path.insert(0, os.path.join(REPO, "tools"))
import testdata as td

ARM64_ROLES = td.ARM64_ROLES
BUILT = [(name, role) for name, roles, _extra in td.BUILDS_ARM64 for role in roles]
EM_AARCH64 = "AArch64"


def readelf_machine(path: str) -> str:
    out = subprocess.run(["readelf", "-h", path], capture_output=True, text=True, check=True)
    return next(ln.split(":", 1)[1].strip() for ln in out.stdout.splitlines() if "Machine:" in ln)


def modinfo_field(path: str, field: str) -> str:
    out = subprocess.run(
        ["modinfo", "-F", field, path], capture_output=True, text=True, check=True
    ).stdout
    return out.strip()


def arm64_kernel(testdata: dict, role: str) -> dict:
    kernel = testdata["kernels"].get(role)
    if kernel is None:
        pytest.skip(f"{role} not fetched: run `python tools/testdata.py all`")
    return kernel


def arm64_built(testdata: dict, role: str) -> str:
    """The folder of the modules cross-built for ``role`` (a skip when they were not)."""
    folder = testdata.get("built", {}).get(role)
    if folder is None:
        pytest.skip(f"{role}'s modules not built: run `python tools/testdata.py build`")
    return folder


def arm64_userland(testdata: dict) -> str:
    userland = testdata.get("userland", {}).get("arm64")
    if userland is None:
        pytest.skip("the arm64 userland not fetched: run `python tools/testdata.py all`")
    return userland


@pytest.mark.parametrize("path", sorted(glob.glob(sample("arm64", "*.ko"))))
def test_committed_samples_are_aarch64(path):
    assert readelf_machine(path) == EM_AARCH64


def test_committed_arm64_profiles_name_the_architecture():
    from abicheck.targets import load_target

    for release in ("6.1.0-47-arm64", "6.12.107+deb12-arm64"):
        target = load_target(sample("kernels", f"{release}.json.gz"))
        assert (target.release, target.arch) == (release, "aarch64")


@pytest.mark.parametrize(("name", "role"), BUILT, ids=[f"{r}:{n}" for n, r in BUILT])
def test_built_modules_are_aarch64_with_arm64_vermagic(testdata, name, role):
    kernel = arm64_kernel(testdata, role)
    path = os.path.join(arm64_built(testdata, role), f"{name}.ko")
    assert readelf_machine(path) == EM_AARCH64
    # what scripts/mod/modpost writes from the arm64 headers' asm/vermagic.h
    assert modinfo_field(path, "vermagic").split() == [
        kernel["release"],
        "SMP",
        "mod_unload",
        "modversions",
        "aarch64",
    ]


def test_drift_struct_keeps_its_dwarf(testdata):
    path = os.path.join(arm64_built(testdata, "6.1-a-arm64"), "drift_struct.ko")
    out = subprocess.run(["readelf", "-S", "-W", path], capture_output=True, text=True).stdout
    assert ".debug_info" in out


@pytest.mark.parametrize("role", ARM64_ROLES)
def test_headers_config_is_arm64(testdata, role):
    kernel = arm64_kernel(testdata, role)
    with open(os.path.join(kernel["headers"], ".config")) as f:
        config = dict(ln.rstrip("\n").partition("=")[::2] for ln in f if "=" in ln)
    assert config["CONFIG_ARM64"] == "y"
    assert config["CONFIG_DEBUG_INFO_BTF"] == "y"
    # the scripts symlink resolves to the host (amd64) linux-kbuild's tools
    modpost = os.path.join(kernel["headers"], "scripts", "mod", "modpost")
    assert (
        "x86-64" in subprocess.run(["file", "-L", modpost], capture_output=True, text=True).stdout
    )


@pytest.mark.parametrize("role", ARM64_ROLES)
def test_image_is_arm64_with_btf(testdata, role):
    kernel = arm64_kernel(testdata, role)
    with open(kernel["image"], "rb") as f:
        data = f.read()
    # arch/arm64/include/asm/image.h: "ARM\x64" at offset 56
    assert data[56:60] == b"ARM\x64"
    # the .BTF section's struct btf_header: magic 0xeB9F, version 1, flags 0, hdr_len 24
    at = data.find(b"\x9f\xeb\x01\x00\x18\x00\x00\x00")
    assert at > 0
    str_off, str_len = (int.from_bytes(data[at + o : at + o + 4], "little") for o in (16, 20))
    strings = data[at + 24 + str_off : at + 24 + str_off + str_len]
    assert b"\0task_struct\0" in strings and b"\0module\0" in strings


@pytest.mark.qemu
@pytest.mark.slow
def test_referee_boots_arm64_and_loads_hello(testdata):
    """`abicheck prove` boots Debian's arm64 kernel under qemu-system-aarch64 with the
    manifest's arm64 busybox and kmod: hello loads, unknown_sym and an amd64 hello are
    refused, as the kernel says."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu referee needs qemu-system-aarch64 (apt-get install qemu-system-arm)")
    kernel = arm64_kernel(testdata, "6.1-a-arm64")
    arm64_built(testdata, "6.1-a-arm64")
    userland = arm64_userland(testdata)
    built = testdata["built"]
    modules = [
        os.path.join(built["6.1-a-arm64"], "hello.ko"),
        os.path.join(built["6.1-a-arm64"], "unknown_sym.ko"),
    ]
    if "6.1-a" in built:
        modules.append(os.path.join(built["6.1-a"], "hello.ko"))
    res = run_cli(
        ["prove", *modules, "--kernel", kernel["headers"], "--image", kernel["image"],
         "--userland", userland, "--accel", "tcg", "--format", "json"]
    )  # fmt: skip
    assert res.exit_code in (0, 1), res.stderr
    doc = res.json()
    assert doc["targets"][0]["release"] == "6.1.0-47-arm64"
    hello, unknown = doc["results"][0]["proved"], doc["results"][1]["proved"]
    # out-of-tree and unsigned (CONFIG_MODULE_SIG=y, not enforced)
    assert hello["verdict"] == "loads-tainted" and hello["module_taint"] == "OE"
    assert "hello: loading out-of-tree module taints kernel." in hello["kernel_lines"]
    assert unknown["verdict"] == "refused" and unknown["errno"] == ["ENOENT", "ESRCH"]
    assert "unknown_sym: Unknown symbol abicheck_no_such_export (err -2)" in unknown["kernel_lines"]
    if len(doc["results"]) > 2:
        amd64 = doc["results"][2]["proved"]
        assert amd64["verdict"] == "refused" and amd64["errno"] == ["ENOEXEC"]
        assert "Invalid architecture in ELF header: 62" in amd64["kernel_lines"]
    assert [r["agrees"] for r in doc["results"]] == [True] * len(modules)
    assert res.exit_code == 0 and len(doc["boots"]) == 1


def test_prove_arm64_without_userland_names_the_packages(tmp_path):
    """`abicheck prove` on an arm64 target from an amd64 host: the VM needs Debian's arm64
    busybox and kmod, and the error says which packages in one line."""
    from abicheck.prove import vm

    if not vm.is_foreign("aarch64"):
        pytest.skip("the host is arm64: its own busybox and kmod serve")
    image = tmp_path / "vmlinuz"
    image.write_bytes(b"\0" * 64)
    res = run_cli(
        [
            "prove",
            sample("arm64", "hello.ko"),
            "--kernel",
            sample("kernels", "6.1.0-47-arm64.json.gz"),
            "--image",
            str(image),
        ]
    )
    assert res.exit_code == 2
    (line,) = res.stderr.strip().splitlines()
    assert "busybox-static:arm64 kmod:arm64" in line and "qemu-system-arm" in line
    assert "--userland DIR" in line


@pytest.mark.qemu
@pytest.mark.slow
def test_prove_boots_arm64_and_loads_hello(testdata):
    """`abicheck prove <arm64 hello.ko> --kernel <arm64 headers> --image <arm64 Image>
    --userland <arm64 userland>`: one TCG boot under qemu-system-aarch64, loads, OE."""
    if shutil.which("qemu-system-aarch64") is None:
        pytest.skip("prove on arm64 needs qemu-system-aarch64 (apt-get install qemu-system-arm)")
    kernel = arm64_kernel(testdata, "6.1-a-arm64")
    built = arm64_built(testdata, "6.1-a-arm64")
    userland = arm64_userland(testdata)
    if "image" not in kernel:
        pytest.skip("6.1-a-arm64's image not fetched: run `python tools/testdata.py all`")
    res = run_cli(
        [
            "prove",
            os.path.join(built, "hello.ko"),
            "--kernel",
            kernel["headers"],
            "--image",
            kernel["image"],
            "--modules-dir",
            kernel["modules"],
            "--userland",
            userland,
            "--format",
            "json",
        ]
    )
    assert res.exit_code == 0, res.stderr
    doc = res.json()
    assert doc["targets"][0]["arch"] == "aarch64"
    assert [b["accel"] for b in doc["boots"]] == ["tcg"] and doc["boots"][0]["failure"] is None
    assert "(Debian, arm64)" in doc["loader"]
    (r,) = doc["results"]
    p = r["proved"]
    assert r["agrees"] and p["verdict"] == "loads-tainted" and p["module_taint"] == "OE"
    assert "hello: loading out-of-tree module taints kernel." in p["kernel_lines"]
    assert p["init_ran"] is True and p["rmmod_rc"] == 0
