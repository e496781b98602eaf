"""`abicheck kernel diff` on real Debian headers, its counts checked against Module.symvers
parsed here independently."""

from __future__ import annotations

import os
import time

import pytest

from tests.conftest import CACHE, run_cli, sample_kernel

pytestmark = pytest.mark.debian

HEADERS = os.path.join(CACHE, "root", "usr", "src")


def headers(release: str) -> str:
    path = os.path.join(HEADERS, f"linux-headers-{release}")
    if not os.path.isdir(path):
        pytest.skip(f"{path}: Debian test data not fetched (python tools/testdata.py all)")
    return path


def symvers(path: str) -> dict[str, tuple[str, str, str, str]]:
    """name → (crc, owner, export type, namespace), straight from the file's columns."""
    out = {}
    with open(os.path.join(path, "Module.symvers")) as f:
        for line in f:
            crc, name, owner, kind, *ns = line.rstrip("\n").split("\t")
            out[name] = (crc, owner, kind, ns[0] if ns else "")
    return out


def test_6_1_47_vs_56_counts() -> None:
    a, b = headers("6.1.0-47-amd64"), headers("6.1.0-56-amd64")
    sa, sb = symvers(a), symvers(b)
    changed = [n for n in sa.keys() & sb.keys() if sa[n][0] != sb[n][0]]
    expected = {
        "totals": [len(sa), len(sb)],
        "removed": len(sa.keys() - sb.keys()),
        "added": len(sb.keys() - sa.keys()),
        "crc": len(changed),
        "crc_vmlinux": sum(1 for n in changed if sa[n][1] == "vmlinux"),
    }
    assert expected == {
        "totals": [24618, 24683],
        "removed": 19,
        "added": 84,
        "crc": 18254,
        "crc_vmlinux": 6566,
    }
    t0 = time.perf_counter()
    res = run_cli(["kernel", "diff", a, b, "--format", "json"])
    elapsed = time.perf_counter() - t0
    assert res.exit_code == 1, res.stderr
    d = res.json()
    ex = d["exports"]
    counts = ex["counts"]
    got = {
        "totals": ex["totals"],
        "removed": counts["vmlinux"]["removed"] + counts["modules"]["removed"],
        "added": counts["vmlinux"]["added"] + counts["modules"]["added"],
        "crc": counts["vmlinux"]["crc"] + counts["modules"]["crc"],
        "crc_vmlinux": counts["vmlinux"]["crc"],
    }
    assert got == expected
    ident = d["loader_identity"]
    assert ident["vermagic_differences"] == []
    assert ident["module_layout_crc"][0] != ident["module_layout_crc"][1]
    assert ident["struct_module"] is None and ident["struct_module_known"]
    assert d["summary"][:2] == [
        "module_layout changed: every module built for A is refused by B",
        "18,254 exports changed CRC, 6,566 of them vmlinux exports",
    ]
    # the options that differ, as config diff classifies them: none matters to modules
    assert d["config"]["matter_to_modules"] == []
    assert d["config"]["other_differences"] == 4
    # the budget for a complete diff from headers (the layout probe cached)
    print(f"kernel diff 6.1.0-47 → 6.1.0-56 from headers: {elapsed:.2f} s")


def test_struct_module_6_1_vs_6_12() -> None:
    res = run_cli(
        [
            "kernel",
            "diff",
            headers("6.1.0-47-amd64"),
            headers("6.12.107+deb12-amd64"),
            "--format",
            "json",
        ]
    )
    sm = res.json()["loader_identity"]["struct_module"]
    assert sm["size"] == [896, 1280]
    members = {m["name"]: m for m in sm["members"]}
    assert "init" not in members  # unchanged: offset 312 on both
    assert members["exit"]["a"]["offset"] == 848 and members["exit"]["b"]["offset"] == 1200


def test_structs_ranked_by_exports_with_btf_on_both_sides() -> None:
    res = run_cli(
        [
            "kernel",
            "diff",
            sample_kernel("6.1.0-47-amd64"),
            headers("6.12.107+deb12-amd64"),
            "--format",
            "json",
        ]
    )
    structs = res.json()["structs"]
    assert structs["compared"] > 1000
    ranks = [s["exports"] for s in structs["changed"]]
    assert ranks == sorted(ranks, reverse=True) and ranks[0] > 100


def test_rt_flavour_vermagic() -> None:
    res = run_cli(
        [
            "kernel",
            "diff",
            headers("6.1.0-47-amd64"),
            headers("6.1.0-47-rt-amd64"),
            "--format",
            "json",
        ]
    )
    words = res.json()["loader_identity"]["vermagic_differences"]
    assert {(w["component"], w["a"], w["b"], w["option"]) for w in words} == {
        ("preempt", "preempt", "(absent)", "CONFIG_PREEMPT_BUILD"),
        ("preempt_rt", "(absent)", "preempt_rt", "CONFIG_PREEMPT_RT"),
    }


def test_text_and_markdown_lead_with_the_summary() -> None:
    a, b = headers("6.1.0-47-amd64"), headers("6.1.0-56-amd64")
    text = run_cli(["kernel", "diff", a, b]).stdout.splitlines()
    assert text[2] == "  module_layout changed: every module built for A is refused by B"
    md = run_cli(["kernel", "diff", a, b, "--format", "markdown"]).stdout.splitlines()
    assert md[0].startswith("## abicheck kernel diff: A `6.1.0-47-amd64`")
    assert md[2] == "- module_layout changed: every module built for A is refused by B"


def test_modules_share_the_upgrade_runner() -> None:
    built = os.path.join(CACHE, "build", "6.1.0-47-amd64")
    if not os.path.isdir(built):
        pytest.skip("test modules not built")
    res = run_cli(
        [
            "kernel",
            "diff",
            headers("6.1.0-47-amd64"),
            headers("6.1.0-47-rt-amd64"),
            "--modules",
            built,
            "--format",
            "json",
        ]
    )
    mods = res.json()["modules"]
    assert mods and all(m["verdict"] == "refused" for m in mods)
