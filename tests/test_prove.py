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


def _built(testdata: dict, tmp_path_factory, name: str) -> str:
    """tests/modules/NAME built against 6.1.0-47 (from the test data when
    tools/testdata.py built it, else here, into a temporary directory)."""
    built = os.path.join(testdata["built"]["6.1-a"], f"{name}.ko")
    if os.path.exists(built):
        return built
    out = tmp_path_factory.mktemp(name)
    shutil.copytree(os.path.join(REPO, "tests", "modules", name), out, dirs_exist_ok=True)
    headers = testdata["kernels"]["6.1-a"]["headers"]
    proc = subprocess.run(
        ["make", "-s", "-C", headers, f"M={out}", "modules"], capture_output=True, text=True
    )
    if proc.returncode != 0:
        pytest.skip(f"{name} not built: {proc.stderr[-300:]}")
    return str(out / f"{name}.ko")


@pytest.fixture(scope="module")
def init_enodev(testdata, tmp_path_factory) -> str:
    return _built(testdata, tmp_path_factory, "init_enodev")


@pytest.fixture(scope="module")
def init_hang(testdata, tmp_path_factory) -> str:
    return _built(testdata, tmp_path_factory, "init_hang")


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


def test_a_provider_stays_loaded_across_a_repeated_name(testdata):
    """dep_provider, hello, another hello, dep_consumer: as after those insmods by hand,
    only the first hello is removed before the second; the provider stays loaded and its
    consumer loads, as abicheck (which resolves against the whole run) predicts."""
    built = testdata["built"]["6.1-a"]
    names = ["dep_provider.ko", "hello.ko", "hello.ko.xz", "dep_consumer.ko"]
    code, doc = prove_json(testdata, "6.1-a", [os.path.join(built, n) for n in names])
    assert len(doc["boots"]) == 1
    proved = [r["proved"] for r in doc["results"]]
    assert [p["verdict"] for p in proved] == ["loads-tainted"] * 4
    assert [r["agrees"] for r in doc["results"]] == [True] * 4 and code == 0
    # dep_consumer's init prints what it read through the provider's exports
    assert proved[3]["kernel_lines"] == ["2 3"] and proved[3]["init_returned"] == 0
    # every rmmod succeeded: the first hello's before the second, the rest at the end
    assert [p["rmmod_rc"] for p in proved] == [0, 0, 0, 0]


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


def test_param_reaches_the_module(testdata):
    """--param MODULE.NAME=VALUE goes to insmod, and the kernel reads it back in
    /sys/module/params_mod/parameters (and the module's init prints it)."""
    mod = os.path.join(testdata["built"]["6.1-a"], "params_mod.ko")
    code, doc = prove_json(
        testdata, "6.1-a", [mod], "--param", "params_mod.count=7", "--param", "params_mod.label=hi"
    )
    (r,) = doc["results"]
    p = r["proved"]
    assert code == 0 and r["agrees"] and p["verdict"] == "loads-tainted"
    assert (p["params"]["count"], p["params"]["label"]) == ("7", "hi")
    # the defaults the module declares, untouched
    assert (p["params"]["port"], p["params"]["verbose"]) == ("80", "N")
    # params_mod_init(): count verbose label port nlevels custom
    assert p["kernel_lines"][-1] == "7 0 hi 80 0 0"
    assert not [f for f in r["findings"] if f["category"] == "prove"]


def test_force_loads_a_module_of_another_build_tainted_f(testdata):
    """hello built for 6.1.0-56, insmod -f into 6.1.0-47 (CONFIG_MODULE_FORCE_LOAD=y): kmod
    asks the kernel to ignore __versions and the vermagic, so module_layout's CRC is never
    compared; the kernel force-loads it, logs the first reason once and taints F."""
    hello = os.path.join(testdata["built"]["6.1-b"], "hello.ko")
    code, doc = prove_json(testdata, "6.1-a", [hello], "--force")
    (r,) = doc["results"]
    p = r["proved"]
    assert code == 0 and r["agrees"], r["disagreements"]
    assert r["verdict"] == "loads-tainted" and [t["letter"] for t in r["taints"]] == ["F", "O", "E"]
    (mv003,) = [f for f in r["findings"] if f["rule"] == "MV003"]
    assert mv003["kernel_says"] == "hello: module_layout: kernel tainted."
    # try_to_force_load() logs once: "bad vermagic" comes second and is not logged
    (vm002,) = [f for f in r["findings"] if f["rule"] == "VM002"]
    assert vm002["kernel_says"] is None
    assert p["verdict"] == "loads-tainted" and p["errno"] == [] and p["rc"] == 0
    assert p["kernel_lines"][0] == "hello: module_layout: kernel tainted."
    assert not any("bad vermagic" in ln for ln in p["kernel_lines"])
    assert p["module_taint"] == "FOE" and p["taints_set"] == "FOE"
    assert p["init_returned"] == 0 and p["rmmod_rc"] == 0


@pytest.fixture(scope="module")
def init_hostile(testdata, tmp_path_factory) -> str:
    return _built(testdata, tmp_path_factory, "init_hostile")


@pytest.fixture(scope="module")
def hang_run(testdata, init_enodev, init_hostile, init_hang):
    """One prove run, in-process: init_enodev (a disagreement), init_hostile (one whose
    kernel lines are terminal escapes and a forged workflow command), init_hang (a hang,
    which ends the boot) and hello (loaded in a fresh boot)."""
    _need_tools()
    from abicheck.prove import ProveRequest, prove
    from abicheck.targets import load_target

    k = testdata["kernels"]["6.1-a"]
    hello = os.path.join(testdata["built"]["6.1-a"], "hello.ko")
    target = load_target(k["headers"], k["vmlinuz"], k["modules"])
    request = ProveRequest(
        [init_enodev, init_hostile, init_hang, hello],
        target,
        image=k["vmlinuz"],
        modules_dir=k["modules"],
        accel="tcg",
        load_timeout=5.0,
    )
    start = time.monotonic()
    run = prove(request)
    print(f"prove 6.1-a, a hang: {time.monotonic() - start:.1f}s wall, boots {run.boots}")
    return run, target


def test_a_hang_is_pv002_and_the_next_module_boots_afresh(hang_run):
    run, _ = hang_run
    enodev, _, hang, hello = run.proofs
    assert len(run.boots) == 2 and run.failed
    assert (enodev.proved.boot, hang.proved.boot, hello.proved.boot) == (0, 0, 1)
    load = hang.proved
    assert load.outcome == "hang" and load.rc is None and load.errno == ()
    assert load.init_ran is True and load.init_returned is None and load.initstate == "coming"
    assert load.kernel_lines[-1] == "abicheck init_hang: sleeping for ever"
    (pv002,) = [f for f in hang.shown.findings if f.rule == "PV002"]
    assert pv002.severity.value == "error" and pv002.name == "prove-oops-or-hang"
    assert pv002.message == (
        "insmod did not return within 5 s: the module's init never returned "
        "(the kernel's last line: abicheck init_hang: sleeping for ever)"
    )
    assert pv002.kernel_says == "abicheck init_hang: sleeping for ever"
    assert not [f for f in hang.shown.findings if f.rule == "PV001"]
    # the prediction is untouched: the verdict is abicheck's, not the kernel's
    assert hang.shown.verdict.value == "loads-tainted"
    # the watchdog ended the first boot soon after the 5 s
    assert run.boots[0].failure is None
    # hello, in the second boot, as if alone
    assert hello.agrees and hello.proved.kernel_verdict == "loads-tainted"
    assert hello.proved.kernel_lines[-1] == "abicheck hello" and hello.proved.rmmod_rc == 0
    assert not [f for f in hello.shown.findings if f.category == "prove"]


def test_a_disagreement_is_pv001_with_the_kernels_line_and_errno(hang_run):
    run, _ = hang_run
    enodev = run.proofs[0]
    assert not enodev.agrees and enodev.proved.errno == ("ENODEV",)
    (pv001,) = [f for f in enodev.shown.findings if f.rule == "PV001"]
    assert pv001.severity.value == "error" and pv001.name == "prove-disagreement"
    assert pv001.message == (
        "abicheck predicted loads-tainted, the kernel: refused (errno ENODEV; it logged "
        "'abicheck init_enodev: no device')"
    )
    assert pv001.kernel_says == "abicheck init_enodev: no device"
    assert pv001.evidence["errno"] == "ENODEV"


def test_every_format_carries_prove_findings(hang_run):
    """The same run through each reporter: a disagreement (PV001) and a hang (PV002) are
    findings every format shows, as errors."""
    import json
    import xml.etree.ElementTree as ET

    from abicheck.prove import report
    from abicheck.reporters import FORMATS

    run, target = hang_run
    enodev, _, hang, _ = (p.proved.module for p in run.proofs)
    out = {fmt: report.render(run, target, fmt) for fmt in FORMATS}
    assert all(isinstance(v, str) for v in out.values())

    doc = json.loads(str(out["json"]))
    rules = [[f["rule"] for f in r["findings"] if f["category"] == "prove"] for r in doc["results"]]
    assert rules == [["PV001"], ["PV001"], ["PV002"], []]
    assert doc["results"][2]["proved"]["verdict"] == "hang"

    sarif = json.loads(str(out["sarif"]))
    got = {(r["ruleId"], r["level"]) for run_ in sarif["runs"] for r in run_["results"]}
    assert {("PV001", "error"), ("PV002", "error")} <= got

    root = ET.fromstring(str(out["junit"]))
    failures = [f.get("message", "") + (f.text or "") for f in root.iter("failure")]
    assert any("PV001" in f for f in failures) and any("PV002" in f for f in failures)

    errors = [ln for ln in str(out["github"]).splitlines() if ln.startswith("::error")]
    assert any("PV001" in ln for ln in errors) and any("PV002" in ln for ln in errors)

    concise = str(out["concise"]).splitlines()
    assert any(ln.startswith(enodev) and "PV001" in ln for ln in concise)
    assert any(ln.startswith(hang) and "PV002" in ln for ln in concise)

    text = str(out["text"])
    assert "  proved:    hang" in text and "  init:      called, never returned" in text
    assert "error   PV002 prove-oops-or-hang: insmod did not return within 5 s" in text
    assert "For more information: abicheck rule PV001" in text


def test_the_kernels_lines_are_escaped_in_every_format(hang_run):
    """init_hostile's init logs ESC sequences and a line that is a GitHub workflow
    command; the kernel keeps the bytes, and they reach prove as they were. No format
    lets them through raw."""
    from abicheck.prove import report
    from abicheck.reporters import FORMATS

    run, target = hang_run
    hostile = run.proofs[1]
    assert hostile.proved.kernel_lines[-2:] == (
        "abicheck init_hostile: \x1b[31mred\x1b[0m",
        "::error::forged %0A",
    )
    assert hostile.proved.errno == ("ENODEV",)
    (pv001,) = [f for f in hostile.shown.findings if f.rule == "PV001"]
    assert pv001.kernel_says == "::error::forged %0A"
    for fmt in FORMATS:
        out = str(report.render(run, target, fmt))
        assert "\x1b" not in out, fmt
        assert not any(ln.startswith("::error::forged") for ln in out.splitlines()), fmt
    text = str(report.render(run, target, "text"))
    assert "  kernel:    abicheck init_hostile: \\x1b[31mred\\x1b[0m" in text
    github = str(report.render(run, target, "github"))
    assert "kernel says: ::error::forged %250A" in github
