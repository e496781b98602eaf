"""Struct layout drift, on modules built against drifted copies of Debian's headers
(tools/drift.py: one option flipped in .config, auto.conf and autoconf.h) and checked
against the real kernels. The qemu referee (abicheck prove, tests/test_qemu.py) confirmed each
reaction asserted here on the real kernel; see the layout issue's closing note.

samples/drift/ holds three of those modules (and the two drifted configs, gzipped):
  hello-6.12-no-btf-modules.ko       Debian 6.12.107 headers, DEBUG_INFO_BTF_MODULES=n (DWARF)
  hello-6.1-no-tracepoints.ko        Debian 6.1.0-47 headers, TRACEPOINTS=n (debug stripped)
  drift_struct-6.1-debug-mutexes.ko  Debian 6.1.0-47 headers, DEBUG_MUTEXES=y (DWARF)
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import CACHE, check_json, finding, kernel, rules_of, run_cli, sample, sample_kernel

from abicheck.readers.module_h import guarded_members, present
from abicheck.targets import load_target
from abicheck.targets.layouts import struct_module_from_reference_modules

K47 = sample_kernel("6.1.0-47-amd64")
K612 = sample_kernel("6.12.107+deb12-amd64")


def one(module: str, kernel_spec: str, *extra: str) -> dict:
    res = run_cli(["check", "--format", "json", module, "--kernel", kernel_spec, *extra])
    assert res.exit_code in (0, 1), res.stderr
    return res.json()["results"][0]


# -- on the committed samples ---------------------------------------------------------------


def test_the_seed_case_on_debian_6_12():
    """pahole missing at oldconfig: CONFIG_DEBUG_INFO_BTF_MODULES=n in the build tree."""
    r = one(
        sample("drift", "hello-6.12-no-btf-modules.ko"),
        K612,
        "--build-tree",
        sample("drift", "config-6.12-no-btf-modules.gz"),
    )
    assert r["verdict"] == "refused"
    assert "LY001" not in rules_of(r)  # cacheline padding keeps the size at 1280
    ly = finding(r, "LY002")
    ev = ly["evidence"]
    assert (ev["module_size"], ev["kernel_size"]) == (1280, 1280)
    assert (ev["module_exit"], ev["kernel_exit"]) == (0x498, 0x4B0)
    assert (ev["module_init"], ev["kernel_init"]) == (0x138, 0x138)
    assert ev["module_layout_source"].startswith("dwarf:")
    assert ev["kernel_layout_source"].startswith("btf:")
    assert ev["landings"][1] == {
        "symbol": "cleanup_module",
        "offset": 0x498,
        "kernel_members": ["source_list.prev"],
        "non_zero": ["source_list (set by module_unload_init())"],
    }
    assert [o["option"] for o in ev["options"]] == ["CONFIG_DEBUG_INFO_BTF_MODULES"]
    assert ev["options"][0]["kernel"] == "y" and ev["options"][0]["build_tree"] == "n"
    assert ev["options"][0]["members"] == (
        "btf_data_size, btf_base_data_size, btf_data, btf_base_data"
    )
    assert ly["kernel_says"] == (
        "module: x86/modules: Invalid relocation target, existing value is nonzero for type 1"
    )
    assert ly["errno"] == "ENOEXEC"
    # the module passes every other gate: same vermagic, same CRCs
    assert [f["rule"] for f in r["findings"] if f["severity"] == "error"] == ["LY002"]


def test_seed_option_moves_nothing_on_debian_6_1():
    """Debian 6.1's module.h keeps the BTF members under `#if 1`: no cry wolf."""
    k = load_target(K47)
    guards = {g.name: g for g in k.module_h}
    assert guards["btf_data"].condition == "(1)"
    assert guards["exit"].options == ("CONFIG_MODULE_UNLOAD",)
    k612 = load_target(K612)
    assert {g.name: g for g in k612.module_h}["btf_data"].options == (
        "CONFIG_DEBUG_INFO_BTF_MODULES",
    )


def test_stripped_module_explained_from_the_offsets_alone():
    r = one(sample("drift", "hello-6.1-no-tracepoints.ko"), K47)
    assert r["verdict"] == "refused"
    ev = finding(r, "LY002")["evidence"]
    assert ev["module_layout_source"] == "relocations"
    assert (ev["module_exit"], ev["kernel_exit"]) == (0x340, 0x350)
    assert ev["landings"][1]["kernel_members"] == ["target_list.next"]
    # from offsets alone, every 16-byte #if block before exit is a candidate
    assert "CONFIG_TRACEPOINTS" in [o["option"] for o in ev["options"]]
    assert "give --build-tree to tell which" in ev["explanation"]
    assert finding(r, "LY002")["kernel_says"] == (
        "module: x86/modules: Skipping invalid relocation target, existing value is nonzero for "
        "type 1"
    )


def test_embedded_struct_growth_and_other_structs():
    r = one(
        sample("drift", "drift_struct-6.1-debug-mutexes.ko"),
        K47,
        "--build-tree",
        sample("drift", "config-6.1-debug-mutexes.gz"),
    )
    assert r["verdict"] == "refused"  # init lands on core_layout.base (qemu: refused)
    ly = finding(r, "LY002")
    assert ly["evidence"]["landings"][0]["kernel_members"] == ["core_layout.base"]
    assert "param_lock (struct mutex) is 40 bytes in the module, 32 in the kernel" in ly["message"]
    assert "CONFIG_DEBUG_MUTEXES: n in the kernel, y in the build tree" in ly["message"]
    structs = {f["evidence"]["struct"]: f for f in r["findings"] if f["rule"] == "LY003"}
    assert structs["mutex"]["evidence"]["module_size"] == 40
    assert structs["mutex"]["evidence"]["kernel_size"] == 32
    assert structs["mutex"]["severity"] == "error" and structs["mutex"]["effect"] == "unsafe"
    assert "CONFIG_DEBUG_MUTEXES" in structs["mutex"]["fix"]
    # the module's own struct is not in the kernel's BTF: said, not silenced
    assert "struct drift_state" in finding(r, "LY004")["message"]


def test_clean_modules_have_no_layout_finding():
    for path in [sample("modules", "hello.ko")] + [
        os.path.join(sample("intree", "6.1.0-47-amd64"), f)
        for f in sorted(os.listdir(sample("intree", "6.1.0-47-amd64")))
    ]:
        r = one(path, K47)
        assert not [f for f in r["findings"] if f["rule"].startswith("LY")], path


def test_module_h_guards_evaluate_like_the_compiler():
    text = """struct module {
    int a;
#ifdef CONFIG_X
    void (*exit)(void);
#elif IS_ENABLED(CONFIG_Y)
    char name[8], other;
#else
    struct list_head b;
#endif
};"""
    g = {m.name: m for m in guarded_members(text)}
    assert g["exit"].condition == "defined(CONFIG_X)"
    assert g["name"].condition == "!defined(CONFIG_X) && (IS_ENABLED(CONFIG_Y))"
    assert g["b"].condition.startswith("!defined(CONFIG_X) && !(IS_ENABLED(CONFIG_Y))")
    assert present(g["name"], {"CONFIG_Y": "m"}) is True
    padded = {
        m.name
        for m in guarded_members(
            "struct module {\n\tu8 __padding[8];\n\tint n : 3;\n"
            "\tstruct module_layout core_layout __module_layout_align;\n};"
        )
    }
    assert padded == {"__padding", "n", "core_layout"}
    assert present(g["name"], {"CONFIG_X": "y", "CONFIG_Y": "m"}) is False


# -- on the drifted trees tools/drift.py builds (Debian packages needed) ----------------------

EXPECTED = {
    # case: (verdict, what the kernel's struct module holds under cleanup_module/init_module)
    "6.12-no-btf-modules": ("refused", "source_list.prev"),
    "6.1-a-no-tracepoints": ("refused", "target_list.next"),
    "6.1-a-no-kprobes": ("refused", "source_list.prev"),
    "6.1-a-no-kallsyms": ("loads-unsafe", "static_call_sites"),
    "6.1-a-no-sysfs": ("loads-unsafe", "gpl_syms"),
    "6.1-a-no-btf-modules": ("loads-tainted", None),
}


@pytest.fixture(scope="module")
def drift() -> dict:
    path = os.path.join(CACHE, "drift", "manifest.json")
    if not os.path.exists(path):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    with open(path) as f:
        return {c["name"]: c for c in json.load(f)["cases"]}


@pytest.mark.debian
@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_drift_case_on_the_real_kernel(testdata, drift, case):
    c = drift[case]
    k = kernel(testdata, c["role"])
    verdict, landing = EXPECTED[case]
    r = one(
        c["modules"]["hello"], k["headers"], "--vmlinux", k["vmlinuz"], "--build-tree", c["headers"]
    )
    assert r["verdict"] == verdict
    if landing is None:
        assert not [f for f in r["findings"] if f["rule"].startswith("LY")]
        return
    ev = finding(r, "LY002")["evidence"]
    members = [m for la in ev["landings"] for m in la["kernel_members"]]
    assert landing in members
    flipped = next(iter(c["flips"]))
    assert f"CONFIG_{flipped}" in [o["option"] for o in ev["options"]]


@pytest.mark.debian
@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_layout_sources_agree(testdata, role):
    """struct module from BTF (vmlinuz) and from the kernel's own modules agree."""
    k = kernel(testdata, role)
    from_btf = load_target(k["headers"], k["vmlinuz"]).struct_module
    from_modules = struct_module_from_reference_modules(k["modules"])
    assert from_modules.source.startswith("reference-modules:")
    assert from_btf.size == from_modules.size
    for name in ("name", "init", "exit"):
        assert from_btf.member(name).offset == from_modules.member(name).offset


@pytest.mark.debian
@pytest.mark.slow
def test_no_layout_finding_on_the_whole_6_1_tree(testdata):
    k = kernel(testdata, "6.1-a")
    doc = check_json([k["modules"]], [k["headers"]])
    del doc
    res = run_cli(
        [
            "check",
            "--format",
            "json",
            k["modules"],
            "--kernel",
            k["headers"],
            "--vmlinux",
            k["vmlinuz"],
            "--select",
            "LY",
        ]
    )
    assert res.exit_code == 0
    doc = res.json()
    assert len(doc["results"]) > 3000
    assert [r["module"] for r in doc["results"] if r["findings"]] == []
