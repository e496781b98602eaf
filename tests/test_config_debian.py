"""Config drift on real Debian data: the configs of 6.1.0-47 (amd64, cloud, rt), 6.1.0-56
and 6.12.107 (tools/testdata.py), and Debian's source trees linux-source-6.1 (6.1.192)
and linux-source-6.12 (6.12.117) (tools/fetch_source.py), where kconfiglib loads the
Kconfig and the real `make olddefconfig` referees `config predict`."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import CACHE, kernel, run_cli

from abicheck.readers.ikconfig import NoEmbeddedConfig
from abicheck.targets.kernel_config import load_kernel_config

pytestmark = pytest.mark.debian


def headers(manifest: dict, role: str) -> str:
    return kernel(manifest, role)["headers"]


def diff(a: str, b: str, *extra: str) -> tuple[int, dict]:
    res = run_cli(["config", "diff", a, b, "--format", "json", *extra])
    assert res.exit_code in (0, 1), res.stderr
    return res.exit_code, res.json()


def impacts(d: dict) -> dict[str, str]:
    return {f["option"]: f["impact"] for f in d["findings"]}


# -- diffs of Debian's own configs ---------------------------------------------------------------


def test_rt_against_amd64_reports_the_preempt_model_in_the_vermagic(testdata):
    code, d = diff(headers(testdata, "6.1-a"), headers(testdata, "6.1-a-rt"))
    assert code == 1
    assert d["summary"]["changed"] == 48
    assert d["summary"]["by_impact"] == {"vermagic": 2, "struct-layout": 3, "none": 43}
    top = [(f["option"], f["impact"]) for f in d["findings"][:2]]
    assert top == [("CONFIG_PREEMPT_BUILD", "vermagic"), ("CONFIG_PREEMPT_RT", "vermagic")]
    rt = d["findings"][1]
    assert rt["a_state"] == "absent" and rt["b"] == "y"
    assert any("preempt_rt" in e["detail"] for e in rt["effects"])
    assert impacts(d)["CONFIG_NUMA_BALANCING"] == "struct-layout"
    # headers ship no Kconfig: what one side leaves out stays unresolved, and is said
    assert d["summary"]["unresolved"] == 38


def test_cloud_against_amd64(testdata):
    code, d = diff(headers(testdata, "6.1-a"), headers(testdata, "6.1-a-cloud"))
    assert code == 1
    assert d["summary"]["changed"] == 5200
    assert d["summary"]["by_impact"] == {"struct-layout": 11, "none": 5189}
    assert {"CONFIG_CFG80211", "CONFIG_AX25"} <= {
        o for o, i in impacts(d).items() if i == "struct-layout"
    }
    assert "vermagic" not in d["summary"]["by_impact"]  # same preempt model, SMP, modversions


def test_two_abis_of_one_series_differ_in_drivers_only(testdata):
    code, d = diff(kernel(testdata, "6.1-a")["config"], kernel(testdata, "6.1-b")["config"])
    assert code == 0
    assert sorted(impacts(d)) == [
        "CONFIG_BT_HS",
        "CONFIG_IIO_INV_SENSORS_TIMESTAMP",
        "CONFIG_SND_SEQ_UMP",
    ]
    assert set(impacts(d).values()) == {"none"}


def test_6_1_against_6_12(testdata):
    code, d = diff(kernel(testdata, "6.1-b")["config"], kernel(testdata, "6.12")["config"])
    assert code == 1
    s = d["summary"]
    assert s["changed"] == 1411 and s["abi_relevant"] == 48
    assert s["by_impact"] == {
        "modversions-signing": 2,
        "struct-layout": 14,
        "codegen": 13,
        "toolchain": 19,
        "none": 1363,
    }
    i = impacts(d)
    assert i["CONFIG_MITIGATION_RETPOLINE"] == "codegen"
    assert i["CONFIG_CC_VERSION_TEXT"] == "toolchain"
    assert i["CONFIG_MODULE_DECOMPRESS"] == "modversions-signing"


# -- the source trees: kconfiglib, explain, predict -----------------------------------------------


@pytest.fixture(scope="session")
def sources() -> dict:
    path = os.path.join(CACHE, "src", "manifest.json")
    if not os.path.exists(path):
        pytest.skip("Debian source trees not fetched: run `python tools/fetch_source.py`")
    with open(path) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def no_pahole(tmp_path_factory) -> str:
    """A PATH with every program of this one but pahole (a symlink farm)."""
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
    from config_referee import hidden_path

    return hidden_path({"pahole"}, os.environ["PATH"], str(tmp_path_factory.mktemp("bin")))


def test_kconfiglib_loads_every_symbol_and_round_trips(testdata, sources):
    from abicheck.kconfig.kconfig_tree import KconfigTree
    from abicheck.kconfig.toolchain import Toolchain
    from abicheck.readers.kconfig import parse_config

    config = kernel(testdata, "6.1-b")["config"]  # 6.1.0-56 = 6.1.192, the tree's version
    with open(config) as f:
        text = f.read()
    tree = KconfigTree(sources["6.1"]["tree"], Toolchain(overrides={"CC": "gcc-12"}))
    assert tree.unevaluated() == []
    assert tree.load(text) == []  # no unknown symbol, no bad value
    written = parse_config(text)
    assert set(written) <= tree.defined()
    out = tree.config_text()
    after = parse_config(out)
    changed = {n for n in set(written) | set(after) if written.get(n) != after.get(n)}
    # only what Debian strips from the config it installs comes back (make does the same)
    assert changed == {
        "CONFIG_BUILD_SALT",
        "CONFIG_MODULE_SIG_ALL",
        "CONFIG_MODULE_SIG_KEY",
        "CONFIG_SYSTEM_TRUSTED_KEYS",
    }
    tree.load(out)
    assert tree.config_text() == out  # a fixed point


def test_explain_names_the_chain_down_to_the_missing_tool(sources, testdata, no_pahole):
    res = run_cli(
        [
            "config",
            "explain",
            "CONFIG_DEBUG_INFO_BTF_MODULES",
            "--tree",
            sources["6.1"]["tree"],
            "--config",
            kernel(testdata, "6.1-b")["config"],
            "--path",
            no_pahole,
            "--format",
            "json",
        ]
    )
    assert res.exit_code == 0, res.stderr
    d = res.json()
    assert d["value"] == "n" and d["written"] == "y"
    chain = [(s["option"], s["value"]) for s in d["because"]]
    assert chain[:3] == [
        ("CONFIG_DEBUG_INFO_BTF_MODULES", "n"),
        ("CONFIG_PAHOLE_HAS_SPLIT_BTF", "n"),
        ("CONFIG_PAHOLE_VERSION", "0"),
    ]
    assert "lib/Kconfig.debug" in d["because"][1]["where"]
    assert "pahole not found" in d["because"][2]["reason"]
    # Debian 6.1 pins struct module's BTF members: said, not cried
    assert any("harmless for struct module" in n for n in d["abi_notes"])


@pytest.mark.parametrize("series", ["6.1", "6.12"])
def test_predict_without_pahole(series, sources, testdata, no_pahole):
    role = "6.1-b" if series == "6.1" else "6.12"
    res = run_cli(
        [
            "config",
            "predict",
            sources[series]["tree"],
            "--config",
            kernel(testdata, role)["config"],
            "--path",
            no_pahole,
            "--format",
            "json",
        ]
    )
    assert res.exit_code == 1, res.stderr
    d = res.json()
    f = {x["option"]: x for x in d["findings"]}
    btf = f["CONFIG_DEBUG_INFO_BTF_MODULES"]
    assert btf["config"] == "y" and btf["olddefconfig"] is None
    assert btf["missing"] == ["pahole"] and "dwarves" in btf["fix"]
    assert d["missing_tools"]["pahole"]["package"] == "dwarves"
    assert f["CONFIG_PAHOLE_VERSION"]["olddefconfig"] == "0"
    assert f["CONFIG_CC_VERSION_TEXT"]["tool"] == "gcc"
    # without --trust-tree no interpreter runs: 6.12's `$(PYTHON3) -c "import lxml"`
    # (DRM_MSM_VALIDATE_XML, under DRM_MSM, not built on x86) is the one probe left
    expected = [] if series == "6.1" else ["drivers/gpu/drm/msm/Kconfig:62"]
    assert [u["where"] for u in d["unevaluated"]] == expected
    if series == "6.1":
        # Debian 6.1's module.h pins the BTF members: harmless for struct module
        assert btf["impact"] == "toolchain"
        assert any("harmless for struct module" in n for n in btf["notes"])
        assert set(d["summary"]["by_tool"]) >= {"pahole", "gcc"}
        assert d["summary"]["by_tool"]["pahole"] == 5
    else:
        assert btf["impact"] == "struct-module"
        assert "btf_data" in btf["effects"][0]["detail"]
        assert d["summary"]["by_tool"]["pahole"] == 8


@pytest.mark.slow
def test_predict_agrees_with_make_olddefconfig(sources, testdata, tmp_path):
    """The referee: the real make olddefconfig, with and without pahole, 6.1 and 6.12."""
    if shutil.which("bison") is None or shutil.which("flex") is None:
        pytest.skip("make olddefconfig needs flex and bison (apt-get install flex bison)")
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "tools"))
    import config_referee

    out = tmp_path / "referee.json"
    assert config_referee.main(["--json", str(out)]) == 0
    results = json.loads(out.read_text())
    for series in ("6.1", "6.12"):
        for run in ("with-pahole", "without-pahole"):
            r = results[series][run]
            assert r["agree"] == r["options"] and r["changes_agree"] and r["text_identical"]
        assert results[series]["round-trip"]["identical_to_make"]
    assert len(results["6.1"]["without-pahole"]["real_changes"]) == 10
    assert len(results["6.1"]["without-pahole"]["from_pahole"]) == 5


def test_module_check_with_the_drifted_tree_names_the_option(
    sources, testdata, no_pahole, tmp_path
):
    """The seed's failure end to end: the 6.12 config as make olddefconfig leaves it without
    pahole, as --build-tree of a module built in such a tree (tools/drift.py built it)."""
    # the seed case of tools/drift.py build-set (what .ci/run builds)
    ko = os.path.join(CACHE, "drift", "6.12-no-btf-modules", "hello.ko")
    if not os.path.exists(ko):
        pytest.skip("no drifted module: run `python tools/drift.py build-set`")
    predicted = tmp_path / "drifted.config"
    res = run_cli(
        [
            "config",
            "predict",
            sources["6.12"]["tree"],
            "--config",
            kernel(testdata, "6.12")["config"],
            "--path",
            no_pahole,
            "--write-config",
            str(predicted),
        ]
    )
    assert res.exit_code == 1, res.stderr
    assert load_kernel_config(str(predicted)).get("DEBUG_INFO_BTF_MODULES") is None
    k = kernel(testdata, "6.12")
    res = run_cli(
        [
            "check",
            ko,
            "--kernel",
            k["headers"],
            "--vmlinux",
            k["vmlinuz"],
            "--build-tree",
            str(predicted),
            "--format",
            "json",
        ]
    )
    assert res.exit_code == 1, res.stderr
    text = res.stdout
    assert "LY002" in text and "CONFIG_DEBUG_INFO_BTF_MODULES" in text


# -- IKCONFIG ------------------------------------------------------------------------------------


def test_ikconfig_from_a_small_kernel_built_for_it(sources):
    tiny = sources.get("tiny-6.1")
    if not tiny:
        pytest.skip("no IKCONFIG kernel: run `python tools/fetch_source.py tiny`")
    with open(tiny["config"]) as f:
        written = f.read()
    for image in (tiny["vmlinux"], tiny["bzImage"]):  # ELF, and bzImage (xz) decompressed
        s = load_kernel_config(image)
        assert s.kind == "image" and s.get("IKCONFIG") == "y"
        assert len(s.values) == written.count("CONFIG_")
    res = run_cli(["config", "diff", tiny["bzImage"], tiny["config"]])
    assert res.exit_code == 0 and "0 options differ" in res.stdout


def test_debian_vmlinuz_has_no_embedded_config(testdata):
    vmlinuz = kernel(testdata, "6.1-a")["vmlinuz"]
    with pytest.raises(NoEmbeddedConfig):
        load_kernel_config(vmlinuz)
    res = run_cli(["config", "diff", vmlinuz, "running"])
    assert res.exit_code == 2
    assert (
        res.stderr == f"abicheck: error: {vmlinuz}: no embedded config (IKCFG_ST marker): "
        "the kernel was built without CONFIG_IKCONFIG (Debian's kernels are)\n"
    )
