"""`abicheck kernel diff` on real Debian headers, its counts checked against Module.symvers
parsed here independently."""

from __future__ import annotations

import os
import shutil
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
    # a stable update that changed struct device (Debian bumped the ABI name for it)
    structs = d["structs"]
    assert (structs["compared"], len(structs["changed"])) == (671, 40)
    assert structs["changed"][0] == {
        "name": "device",
        "size": [744, 752],
        "exports": 477,
        "members": [
            {
                "name": "flags",
                "a": None,
                "b": {"offset": 744, "size": 8, "type": "long unsigned int[1]"},
            }
        ],
    }


def test_headers_probe_agrees_with_btf_6_1_47_vs_56(monkeypatch: pytest.MonkeyPatch) -> None:
    a, b = headers("6.1.0-47-amd64"), headers("6.1.0-56-amd64")
    if not os.path.isfile(os.path.join(CACHE, "root", "boot", "vmlinuz-6.1.0-56-amd64")):
        pytest.skip("Debian test data not fetched")
    probed = _changed(_diff(a, b))
    monkeypatch.setenv("ABICHECK_SYSROOT", os.path.join(CACHE, "root"))
    btf = _diff(a, b)
    assert btf["structs"]["note"].startswith("layouts: BTF of both kernels")
    t = _changed(btf)
    assert len(probed.keys() & t.keys()) == 38
    for name in probed.keys() & t.keys():
        assert {**probed[name], "exports": 0} == {**t[name], "exports": 0}, name
    assert sorted(probed.keys() - t.keys()) == ["hid_device", "video_device"]  # modules'


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


def _diff(a: str, b: str, exit_code: int = 1) -> dict:
    res = run_cli(["kernel", "diff", a, b, "--format", "json"])
    assert res.exit_code == exit_code, res.stderr
    return res.json()


def _changed(d: dict) -> dict[str, dict]:
    return {s["name"]: s for s in d["structs"]["changed"]}


def test_headers_probe_agrees_with_btf_6_1_vs_6_12(monkeypatch: pytest.MonkeyPatch) -> None:
    """6.1.0-47's headers carry no BTF: both kernels' headers are probed (gcc -gbtf), and
    the result is the one the kernels' own BTF gives (6.1.0-47's vmlinuz in root/boot)."""
    a, b = headers("6.1.0-47-amd64"), headers("6.12.107+deb12-amd64")
    image = os.path.join(CACHE, "root", "boot", "vmlinuz-6.1.0-47-amd64")
    if not os.path.isfile(image):
        pytest.skip(f"{image}: Debian test data not fetched")
    probed = _diff(a, b)
    monkeypatch.setenv("ABICHECK_SYSROOT", os.path.join(CACHE, "root"))
    btf = _diff(a, b)
    assert btf["a"]["layouts"] == f"BTF of {image}"
    assert probed["a"]["layouts"].startswith("probe of 12 headers (gcc ")
    # struct module: size and init/exit offsets as BTF gives them, every member alike
    sm = probed["loader_identity"]["struct_module"]
    assert sm == btf["loader_identity"]["struct_module"]
    assert sm["size"] == [896, 1280]
    members = {m["name"]: m for m in sm["members"]}
    assert "init" not in members  # at 312 on both
    assert (members["exit"]["a"]["offset"], members["exit"]["b"]["offset"]) == (848, 1200)
    note = probed["structs"]["note"]
    assert note.startswith("layouts: probe of 12 headers on both sides (gcc ")
    assert "5,906 of A's 10,488 vmlinux exports declared there" in note
    assert btf["structs"]["note"].startswith("layouts: BTF of both kernels")
    assert (probed["structs"]["compared"], len(probed["structs"]["changed"])) == (643, 187)
    # every struct both found changed is changed member for member alike; the probe's
    # others are module exports' (hid, v4l2, jbd2), which no vmlinux BTF describes
    p, t = _changed(probed), _changed(btf)
    for name in p.keys() & t.keys():
        assert {**p[name], "exports": 0} == {**t[name], "exports": 0}, name
    assert len(p.keys() & t.keys()) == 178
    assert sorted(p.keys() - t.keys()) == [
        "hid_device",
        "hid_driver",
        "journal_s",
        "v4l2_async_notifier",
        "v4l2_format_info",
        "v4l2_subdev",
        "v4l2_subdev_format",
        "v4l2_subdev_state",
        "video_device",
    ]
    device = p["device"]
    assert (device["exports"], device["size"]) == (477, [744, 768])
    bus = next(m for m in device["members"] if m["name"] == "bus")
    assert (bus["a"]["type"], bus["b"]["type"]) == ("struct bus_type *", "const struct bus_type *")
    ranks = [s["exports"] for s in probed["structs"]["changed"]]
    assert ranks == sorted(ranks, reverse=True)


def test_rt_flavour_locks_from_the_headers_probe() -> None:
    """PREEMPT_RT turns spinlock_t and struct mutex into rt_mutex based locks: what every
    struct embedding one shows, read from the two headers packages alone."""
    d = _diff(headers("6.1.0-47-amd64"), headers("6.1.0-47-rt-amd64"))
    assert d["loader_identity"]["struct_module"] is None  # unchanged, and known
    assert d["loader_identity"]["struct_module_known"]
    changed = _changed(d)

    def members(name: str) -> list[tuple]:
        return [
            (
                m["name"],
                m["a"] and (m["a"]["offset"], m["a"]["size"], m["a"]["type"]),
                m["b"] and (m["b"]["offset"], m["b"]["size"], m["b"]["type"]),
            )
            for m in changed[name]["members"]
        ]

    assert changed["spinlock"]["size"] == [4, 32]
    assert members("spinlock") == [
        ("rlock", (0, 4, "struct raw_spinlock"), None),
        ("lock", None, (0, 32, "struct rt_mutex_base")),
    ]
    assert changed["mutex"]["size"] == [32, 32]
    assert members("mutex") == [
        ("owner", (0, 8, "atomic_long_t"), None),
        ("wait_lock", (8, 4, "raw_spinlock_t"), None),
        ("osq", (12, 4, "struct optimistic_spin_queue"), None),
        ("wait_list", (16, 16, "struct list_head"), None),
        ("rtmutex", None, (0, 32, "struct rt_mutex_base")),
    ]
    assert members("wait_queue_head") == [
        ("lock", (0, 4, "spinlock_t"), (0, 32, "spinlock_t")),
        ("head", (8, 16, "struct list_head"), (32, 16, "struct list_head")),
    ]
    assert changed["device"]["size"] == [744, 832]
    assert (d["structs"]["compared"], len(changed)) == (670, 102)


def test_headers_without_the_files(tmp_path) -> None:
    """Not a headers tree: one line, exit 2. A tree the probe cannot compile: the diff
    runs and says why the structs were not compared."""
    res = run_cli(["kernel", "diff", str(tmp_path), headers("6.1.0-47-amd64")])
    assert res.exit_code == 2
    assert res.stdout == ""
    assert res.stderr.count("\n") == 1 and "no .config" in res.stderr
    real = headers("6.1.0-47-amd64")
    bare = tmp_path / "bare"
    (bare / "include" / "generated").mkdir(parents=True)
    for name in (".config", "Module.symvers", "include/generated/utsrelease.h"):
        shutil.copyfile(os.path.join(real, name), bare / name)
    d = _diff(str(bare), real, exit_code=0)  # the same kernel's files: nothing differs
    assert d["structs"]["changed"] == [] and d["structs"]["compared"] == 0
    assert d["structs"]["note"].startswith("not compared: no BTF on both sides, and no probe (")
    assert "no include/linux/kconfig.h: not a kernel headers tree" in d["structs"]["note"]


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


def test_compiler_without_btf_says_so(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A compiler that cannot write BTF (gcc before 12, clang for x86): the structs are
    not compared and the note says why; struct module still comes from the DWARF probe."""
    cc = tmp_path / "cc-without-btf"
    cc.write_text(
        "#!/bin/sh\n"
        'for a; do [ "$a" = -gbtf ] && '
        "{ echo \"cc1: error: unrecognized command-line option '-gbtf'\" >&2; exit 1; }; done\n"
        'exec gcc "$@"\n'
    )
    cc.chmod(0o755)
    monkeypatch.setenv("CC", str(cc))
    monkeypatch.setenv("ABICHECK_CACHE_DIR", str(tmp_path / "cache"))
    d = _diff(headers("6.1.0-47-amd64"), headers("6.1.0-56-amd64"))
    why = "gcc 12.2.0 cannot emit BTF (-gbtf: gcc 12 or later)"
    assert d["structs"] == {
        "note": "not compared: no BTF on both sides, and no probe "
        f"(6.1.0-47-amd64: {why}; 6.1.0-56-amd64: {why})",
        "compared": 0,
        "changed": [],
    }
    assert d["loader_identity"]["struct_module_known"]
    assert d["a"]["layouts"].startswith("probe compiled against the headers (gcc 12.2.0")


def test_btf_against_headers_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile (BTF, no headers) against a headers package: A's BTF names the structs,
    B's probe lays them out; offsets and sizes compared, as the BTF of both would."""
    b = headers("6.1.0-56-amd64")
    mixed = _diff(sample_kernel("6.1.0-47-amd64"), b)
    note = mixed["structs"]["note"]
    assert note.startswith("layouts: A's BTF against B's headers (probe of 12 headers, gcc ")
    assert "9,670 of A's 10,488 vmlinux exports in its BTF" in note
    assert (mixed["structs"]["compared"], len(mixed["structs"]["changed"])) == (654, 40)
    if not os.path.isfile(os.path.join(CACHE, "root", "boot", "vmlinuz-6.1.0-56-amd64")):
        pytest.skip("Debian test data not fetched")
    monkeypatch.setenv("ABICHECK_SYSROOT", os.path.join(CACHE, "root"))
    btf = _changed(_diff(headers("6.1.0-47-amd64"), b))
    got = _changed(mixed)
    assert got.keys() <= btf.keys()
    assert all(got[name] == btf[name] for name in got)  # exports counted alike, too
