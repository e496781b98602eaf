"""`abicheck prove`: the real kernel, booted under qemu (TCG), beside abicheck's prediction.

One boot per kernel serves every module of a test; the boot times are printed (-s) so
the budget (under 30 s per kernel under TCG on 2 cores) stays visible.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest
from conftest import REPO, run_cli

from abicheck.prove import vm

pytestmark = [pytest.mark.qemu, pytest.mark.slow]

NO_KPROBES = "6.1-a-no-kprobes"
RELOCATION = (
    "module: x86/modules: Skipping invalid relocation target, existing value is nonzero for type 1"
)


def _need_tools() -> None:
    missing = vm.missing_tools()
    if missing:
        pytest.skip(f"prove needs {', '.join(missing)}")


def prove_json(testdata: dict, role: str, modules: list[str], *extra: str) -> tuple[int, dict]:
    _need_tools()
    kernel = testdata["kernels"][role]
    start = time.monotonic()
    res = run_cli(
        [
            "prove",
            *modules,
            "--kernel",
            kernel["headers"],
            "--vmlinux",
            kernel["vmlinuz"],
            "--modules-dir",
            kernel["modules"],
            "--accel",
            "tcg",
            "--format",
            "json",
            *extra,
        ]
    )
    print(f"prove {role}: {time.monotonic() - start:.1f}s wall, {len(modules)} modules")
    assert res.exit_code in (0, 1), res.stderr
    return res.exit_code, res.json()


@pytest.fixture(scope="module")
def init_enodev(testdata, tmp_path_factory) -> str:
    """tests/modules/init_enodev built against 6.1.0-47 (from the test data when
    tools/testdata.py built it, else here, into a temporary directory)."""
    built = os.path.join(testdata["built"]["6.1-a"], "init_enodev.ko")
    if os.path.exists(built):
        return built
    out = tmp_path_factory.mktemp("init_enodev")
    shutil.copytree(os.path.join(REPO, "tests", "modules", "init_enodev"), out, dirs_exist_ok=True)
    headers = testdata["kernels"]["6.1-a"]["headers"]
    proc = subprocess.run(
        ["make", "-s", "-C", headers, f"M={out}", "modules"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"init_enodev not built: {proc.stderr[-300:]}")
    return str(out / "init_enodev.ko")


def test_one_boot_on_6_1_0_47(testdata, init_enodev):
    drift = os.path.join(testdata["cache"], "drift", NO_KPROBES, "hello.ko")
    if not os.path.exists(drift):
        pytest.skip("drifted modules not built: run `python tools/drift.py build-set`")
    hello = os.path.join(testdata["built"]["6.1-a"], "hello.ko")
    # the drifted hello first: the good one, loaded, would make it EEXIST
    code, doc = prove_json(testdata, "6.1-a", [drift, init_enodev, hello])
    assert len(doc["boots"]) == 1 and doc["boots"][0]["failure"] is None
    refused, enodev, loaded = doc["results"]

    assert refused["verdict"] == "refused" and refused["agrees"], refused["disagreements"]
    p = refused["proved"]
    assert p["verdict"] == "refused" and p["errno"] == ["ENOEXEC"]
    assert RELOCATION in [ln.split(", loc ")[0] for ln in p["kernel_lines"]]
    assert p["init_ran"] is False and p["taints_set"] == "OE"

    p = enodev["proved"]
    assert p["verdict"] == "refused" and p["errno"] == ["ENODEV"]
    assert p["init_ran"] is True and p["init_returned"] == -19
    assert "abicheck init_enodev: no device" in p["kernel_lines"]
    # abicheck cannot know what init returns: a disagreement, and exit 1 says so
    assert not enodev["agrees"] and code == 1

    assert loaded["verdict"] == "loads-tainted" and loaded["agrees"]
    p = loaded["proved"]
    assert p["verdict"] == "loads-tainted" and p["errno"] == []
    assert p["module_taint"] == "OE" and p["initstate"] == "live"
    # the O and E taints were set by the drifted hello's load before it: the mask says
    # which load set them, the kernel's taint lines appear only for the first
    assert p["taints_set"] == "" and p["tainted_before"] == p["tainted_after"] == 12288
    assert p["kernel_lines"] == ["abicheck hello"]
    assert p["init_ran"] is True and p["init_returned"] == 0
    assert p["rmmod_rc"] == 0


def test_two_modules_of_one_name_are_each_proved(testdata):
    """The good hello first, then the drifted one: the kernel holds one module of a name,
    so prove unloads the first before loading the second (in one boot), and each gets its
    own verdict instead of EEXIST."""
    drift = os.path.join(testdata["cache"], "drift", NO_KPROBES, "hello.ko")
    if not os.path.exists(drift):
        pytest.skip("drifted modules not built: run `python tools/drift.py build-set`")
    hello = os.path.join(testdata["built"]["6.1-a"], "hello.ko")
    code, doc = prove_json(testdata, "6.1-a", [hello, drift])
    assert code == 0 and len(doc["boots"]) == 1
    good, bad = doc["results"]
    assert (good["proved"]["verdict"], good["agrees"]) == ("loads-tainted", True)
    assert (bad["proved"]["verdict"], bad["proved"]["errno"]) == ("refused", ["ENOEXEC"])
    assert RELOCATION in [ln.split(", loc ")[0] for ln in bad["proved"]["kernel_lines"]]
    assert bad["agrees"]


def test_hello_alone_on_6_1_0_47(testdata):
    hello = os.path.join(testdata["built"]["6.1-a"], "hello.ko")
    code, doc = prove_json(testdata, "6.1-a", [hello])
    assert code == 0
    (r,) = doc["results"]
    p = r["proved"]
    assert r["agrees"] and p["verdict"] == "loads-tainted" and p["taints_set"] == "OE"
    assert p["kernel_lines"] == [
        "hello: loading out-of-tree module taints kernel.",
        "hello: module verification failed: signature and/or required key missing - "
        "tainting kernel",
        "abicheck hello",
    ]
    assert p["init_ran"] is True and p["rmmod_rc"] == 0


def test_hello_for_47_refused_by_6_1_0_56(testdata):
    hello = os.path.join(testdata["built"]["6.1-a"], "hello.ko")
    code, doc = prove_json(testdata, "6.1-b", [hello])
    (r,) = doc["results"]
    p = r["proved"]
    assert r["verdict"] == "refused" and r["agrees"] and code == 0, r["disagreements"]
    assert p["verdict"] == "refused" and p["errno"] == ["ENOEXEC"]
    assert "hello: disagrees about version of symbol module_layout" in p["kernel_lines"]
    assert p["init_ran"] is False and p["rmmod_rc"] is None


def test_missing_qemu_names_the_package(testdata, monkeypatch, tmp_path):
    kernel = testdata["kernels"]["6.1-a"]
    monkeypatch.setenv("PATH", str(tmp_path))
    res = run_cli(
        [
            "prove",
            os.path.join(testdata["built"]["6.1-a"], "hello.ko"),
            "--kernel",
            kernel["headers"],
            "--image",
            kernel["vmlinuz"],
        ]
    )
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "abicheck: error: qemu-system-x86_64 not found: install the Debian package qemu-system-x86"
    ]
