"""Rules no other test names, on the real modules of tests/modules built against Debian's
kernels (tools/testdata.py), and on synthetic targets: a real kernel's saved profile with
one option taken out of its configuration."""

from __future__ import annotations

from dataclasses import replace

import pytest
from conftest import built, check_json, finding, kernel, rules_of, sample_kernel

from abicheck.targets.profile import save_profile, target_from_profile


def _result(testdata, name: str, role: str, target: str | None = None) -> dict:
    (r,) = check_json([built(testdata, role, name)], [target or kernel(testdata, role)["headers"]])[
        "results"
    ]
    return r


def _synthetic(tmp_path, release: str, without: str) -> str:
    """A real kernel's profile with ``without`` absent from its .config."""
    real = target_from_profile(sample_kernel(release))
    config = {k: v for k, v in real.config.items() if k != without}
    path = tmp_path / f"synthetic-{release}-without-{without}.json"
    save_profile(replace(real, config=config), str(path))
    return str(path)


def test_tn003_test_module_taints_n(testdata):
    role = "6.1-a"  # the only build of modinfo_flags.ko
    r = _result(testdata, "modinfo_flags.ko", role)
    f = finding(r, "TN003")
    assert (f["effect"], f["taint"], f["severity"]) == ("taint", "N", "warning")
    assert f["kernel_says"] == "modinfo_flags: loading test module taints kernel."
    assert "N" in [t["letter"] for t in r["taints"]]
    assert "TN003" not in rules_of(_result(testdata, "hello.ko", role))


@pytest.mark.parametrize(
    "role,option", [("6.1-a", "CONFIG_RETPOLINE"), ("6.12", "CONFIG_MITIGATION_RETPOLINE")]
)
def test_tn004_module_without_retpoline(testdata, role, option):
    r = _result(testdata, "hello_noretpoline.ko", role)
    f = finding(r, "TN004")
    assert (f["effect"], f["taint"], f["evidence"]) == ("warn", None, {"option": option})
    assert f["kernel_says"].endswith("hello: loading module not compiled with retpoline compiler.")
    assert r["verdict"] == "loads-tainted"  # a warning, not a taint of its own
    assert "TN004" not in rules_of(_result(testdata, "hello.ko", role))


def test_tn005_livepatch_taints_k_where_supported(testdata):
    r = _result(testdata, "livepatch_flag.ko", "6.1-a")
    f = finding(r, "TN005")
    assert (f["effect"], f["taint"]) == ("taint", "K")
    assert f["kernel_says"] == "livepatch_flag: tainting kernel with TAINT_LIVEPATCH"
    assert "K" in [t["letter"] for t in r["taints"]]


def test_tn005_livepatch_refused_without_config_livepatch(testdata, tmp_path):
    target = _synthetic(tmp_path, "6.1.0-47-amd64", "CONFIG_LIVEPATCH")
    r = _result(testdata, "livepatch_flag.ko", "6.1-a", target)
    f = finding(r, "TN005")
    assert (f["effect"], f["errno"]) == ("refuse", "ENOEXEC")
    assert "K" not in [t["letter"] for t in r["taints"]]  # refused: nothing to taint
    assert f["kernel_says"] == (
        "livepatch_flag: module is marked as livepatch module, but livepatch support is disabled"
    )
    assert r["verdict"] == "refused"


def test_cf001_kernel_without_modules_is_the_only_finding(testdata, tmp_path):
    target = _synthetic(tmp_path, "6.1.0-47-amd64", "CONFIG_MODULES")
    r = _result(testdata, "hello_noretpoline.ko", "6.1-a", target)
    # rules/CF001.toml `exclusive`: the syscall fails before anything else is looked at
    assert rules_of(r) == ["CF001"]
    f = finding(r, "CF001")
    assert (f["effect"], f["errno"]) == ("refuse", "ENOSYS")
    assert f["evidence"] == {"option": "CONFIG_MODULES", "value": "absent"}
    assert r["verdict"] == "refused"
