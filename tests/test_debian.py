"""Modules built by tools/testdata.py against Debian's headers, checked across kernels.

Assertions are relational where the archive may hand us another ABI than the preferred
one (the CRCs are read from the packages' own Module.symvers and the modules' own
__versions), exact where the fact does not depend on the ABI.
"""

from __future__ import annotations

import os

import pytest
from conftest import built, check_json, finding, kernel, rules_of

from abicheck.readers.module import read_module
from abicheck.targets import load_target

pytestmark = pytest.mark.debian

EXPECTED = {
    # module: (verdict on its own kernel, the error rules in kernel order)
    "hello.ko": ("loads-tainted", []),
    "prop_license.ko": ("loads-tainted", []),
    "gplonly_user.ko": ("loads-tainted", []),
    "gplonly_prop.ko": ("refused", ["GP001"]),
    "ns_import.ko": ("loads-tainted", []),
    "ns_noimport.ko": ("refused", ["NS001"]),
    "unknown_sym.ko": ("refused", ["SY001"]),
    "dep_provider.ko": ("loads-tainted", []),
    "hello_noversions.ko": ("loads-tainted", []),
    "hello_renamed_version.ko": ("refused", ["MV002"]),
    "hello_truncated.ko": ("refused", ["EL002"]),
    "hello_arm64machine.ko": ("refused", ["EL001"]),
    "hello.ko.xz": ("loads-tainted", []),
    "hello.ko.gz": ("refused", ["CP001"]),  # Debian 12 kmod 30 has no zlib
    "hello.ko.zst": ("loads-tainted", []),
}
ONLY_61 = {
    "common_sym.ko": ("refused", ["SY003"]),
    "wx_section.ko": ("refused", ["EL006"]),
    "modinfo_flags.ko": ("loads-tainted", []),
    "livepatch_flag.ko": ("loads-tainted", []),
    "hello_noretpoline.ko": ("loads-tainted", []),
}


def errors(result: dict) -> list[str]:
    return [f["rule"] for f in result["findings"] if f["severity"] == "error"]


@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_each_test_module_on_its_own_kernel(testdata, role):
    expected = dict(EXPECTED, **(ONLY_61 if role == "6.1-a" else {}))
    names = sorted(expected)
    doc = check_json([built(testdata, role, n) for n in names], [kernel(testdata, role)["headers"]])
    got = {os.path.basename(r["module"]): (r["verdict"], errors(r)) for r in doc["results"]}
    assert got == {n: expected[n] for n in names}


def test_taints_of_marker_modules(testdata):
    doc = check_json(
        [
            built(testdata, "6.1-a", n)
            for n in ("modinfo_flags.ko", "livepatch_flag.ko", "hello_noversions.ko")
        ],
        [kernel(testdata, "6.1-a")["headers"]],
    )
    taints = [[t["letter"] for t in r["taints"]] for r in doc["results"]]
    assert taints == [["O", "C", "N", "E"], ["O", "K", "E"], ["F", "O", "E"]]


def test_provider_then_consumer_loads_and_versions_are_checked(testdata):
    role = "6.1-a"
    k = kernel(testdata, role)["headers"]
    doc = check_json(
        [built(testdata, role, "dep_provider.ko"), built(testdata, role, "dep_consumer.ko")], [k]
    )
    assert [r["verdict"] for r in doc["results"]] == ["loads-tainted", "loads-tainted"]
    # the same consumer, built without the provider's Module.symvers: no CRCs recorded
    doc = check_json(
        [built(testdata, role, "dep_provider.ko"), built(testdata, role, "dep_consumer_nosyms.ko")],
        [k],
    )
    r = doc["results"][1]
    assert r["verdict"] == "refused"
    assert [f["evidence"]["symbol"] for f in r["findings"] if f["rule"] == "MV002"] == [
        "abicheck_provider_value",
        "abicheck_provider_ns_value",
    ]
    assert finding(r, "DP003")["evidence"]["provider"] == "dep_provider"


def _module_layout_crcs(testdata, built_role, target_role):
    module = read_module(built(testdata, built_role, "hello.ko"))
    mine = next(v.crc for v in module.versions if v.name == "module_layout")
    target = load_target(kernel(testdata, target_role)["headers"])
    return mine, target.exports["module_layout"].crc, target


@pytest.mark.parametrize(
    "built_role,target_role",
    [
        ("6.1-a", "6.1-b"),
        ("6.1-a", "6.1-a-cloud"),
        ("6.1-a", "6.12"),
        ("6.12", "6.1-a"),
        ("6.1-b", "6.1-a"),
    ],
)
def test_hello_across_kernels(testdata, built_role, target_role):
    mine, theirs, target = _module_layout_crcs(testdata, built_role, target_role)
    doc = check_json(
        [built(testdata, built_role, "hello.ko")], [kernel(testdata, target_role)["headers"]]
    )
    (r,) = doc["results"]
    module = read_module(built(testdata, built_role, "hello.ko"))
    size_check = (
        target.version >= (6, 4, 0)
        and target.struct_module is not None
        and target.struct_module.size != module.this_module.sh_size
    )
    if size_check:
        # 6.4+ refuses a struct module of another size before looking at any CRC
        assert rules_of(r)[0] == "LY001"
    if mine != theirs:
        assert r["verdict"] == "refused"
        assert "MV004" in rules_of(r)
        assert rules_of(r)[0] == ("LY001" if size_check else "MV004")
        assert finding(r, "MV004")["evidence"] == {
            "symbol": "module_layout",
            "module_crc": f"0x{mine:08x}",
            "kernel_crc": f"0x{theirs:08x}",
        }
    else:
        assert "MV004" not in rules_of(r)
    # every CRC the module recorded is compared with the target's export
    mismatched = sorted(
        v.name
        for v in module.versions
        if v.name != "module_layout"
        and v.name in target.exports
        and target.exports[v.name].crc != v.crc
    )
    assert (
        sorted(f["evidence"]["symbol"] for f in r["findings"] if f["rule"] == "MV001") == mismatched
    )


def test_hello_on_rt_flavour_vermagic(testdata):
    doc = check_json(
        [built(testdata, "6.1-a", "hello.ko")], [kernel(testdata, "6.1-a-rt")["headers"]]
    )
    vm = finding(doc["results"][0], "VM001")
    assert [d["component"] for d in vm["evidence"]["differences"]] == ["preempt", "preempt_rt"]


@pytest.mark.parametrize("role", ["6.1-a", "6.1-b", "6.1-a-rt", "6.1-a-cloud", "6.12"])
def test_hello_on_its_own_flavour_has_no_error(testdata, role):
    doc = check_json([built(testdata, role, "hello.ko")], [kernel(testdata, role)["headers"]])
    (r,) = doc["results"]
    assert r["verdict"] == "loads-tainted"
    assert errors(r) == []


@pytest.mark.slow
@pytest.mark.parametrize("role", ["6.1-a", "6.12", "6.1-a-arm64", "6.12-arm64"])
def test_whole_in_tree_module_tree_has_no_false_alarm(testdata, role):
    if role not in testdata["kernels"]:
        pytest.skip(f"{role} not fetched: run `python tools/testdata.py all`")
    k = kernel(testdata, role)
    doc = check_json([k["modules"]], [k["headers"]])
    assert len(doc["results"]) > 3000
    bad = [(r["module"], errors(r)) for r in doc["results"] if errors(r)]
    assert bad == []
    warned = {
        f["rule"] for r in doc["results"] for f in r["findings"] if f["severity"] == "warning"
    }
    assert warned <= {"TN002"}  # staging drivers taint C, nothing else warns
    verdicts = {r["verdict"] for r in doc["results"]}
    assert verdicts <= {"loads", "loads-tainted"}
