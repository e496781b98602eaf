"""Layouts from the headers alone (abicheck/targets/probe.py), on Debian's real headers.

The probe compiles linux/module.h (and the headers of the structs a module uses) with the
system gcc; its DWARF must give, member for member, the layouts of the kernel's own BTF.
The drifted modules of tools/drift.py must get, from the headers alone, the verdict and the
option that --vmlinux gives them (and that the qemu referee confirmed: tests/test_qemu.py).
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from conftest import CACHE, built, kernel, run_cli

from abicheck.targets.headers import source_dirs, target_from_headers
from abicheck.targets.layouts import BtfTypes, with_layouts
from abicheck.targets.probe import ProbeSpec, ProbeTypes, ProbeUnavailable, load_cache

pytestmark = pytest.mark.skipif(shutil.which("gcc") is None, reason="the probe needs gcc")

ROLES = ["6.1-a", "6.1-b", "6.12"]


def _probe(headers: str) -> ProbeTypes:
    target = target_from_headers(headers)
    dirs = tuple(os.path.abspath(d) for d in source_dirs(headers))
    return ProbeTypes(ProbeSpec(dirs, "x86", target.arch, target.config, target.digest))


def _members(layout):
    return [(m.name, m.offset, m.size, m.bit_offset, m.bit_size) for m in layout.members]


@pytest.mark.parametrize("role", ROLES)
def test_probe_struct_module_equals_btf(testdata, role):
    k = kernel(testdata, role)
    probed = _probe(k["headers"]).struct_module()
    btf = BtfTypes(k["vmlinuz"]).struct("module")
    assert btf is not None
    assert probed.size == btf.size
    assert _members(probed) == _members(btf)
    expected = {"6.1-a": (896, 312, 848), "6.1-b": (896, 312, 848), "6.12": (1280, 312, 1200)}
    assert (probed.size, probed.member("init").offset, probed.member("exit").offset) == expected[
        role
    ]


@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_probe_structs_a_module_uses_equal_btf(testdata, role):
    """Every struct a real module's DWARF reaches (hello.ko built with debug info, as
    Kbuild does with Debian's headers: through struct module to task_struct, mm_struct,
    mutexes, kobjects ...), probed from the headers that declare it, comes out as the
    kernel's BTF has it. The wide reach (pointers followed) is used here on purpose: it
    asks the probe for ~150 structs from ~70 headers."""
    from abicheck.readers.dwarf import module_types

    k = kernel(testdata, role)
    types = module_types(built(testdata, role, "hello.ko"))
    assert types is not None, "the test module has no DWARF"
    used = sorted(n for n in types.used_structs() if n != "struct module")
    wanted = {n: (types.decl_line(n) or (None,))[0] for n in used}
    probed = _probe(k["headers"]).layouts(wanted)
    btf = BtfTypes(k["vmlinuz"])
    compared = 0
    for name, layout in probed.items():
        theirs = btf.struct(name.split(" ", 1)[1])
        if layout is None or theirs is None:
            continue
        assert (layout.size, _members(layout)) == (theirs.size, _members(theirs)), name
        compared += 1
    assert compared >= 100, compared
    task = probed["struct task_struct"]
    assert task is not None
    assert task.member("pid").offset == btf.struct("task_struct").member("pid").offset


def _drift_cases() -> list[dict]:
    path = os.path.join(CACHE, "drift", "manifest.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)["cases"]


def _verdict(args: list[str]) -> tuple[str, list[str], list[str], dict]:
    res = run_cli(["check", "--format", "json", *args])
    assert res.exit_code in (0, 1), res.stderr
    doc = res.json()
    (r,) = doc["results"]
    layout = [f for f in r["findings"] if f["rule"] in ("LY001", "LY002", "LY003")]
    options = sorted({o["option"] for f in layout for o in f["evidence"].get("options", [])})
    rules = [
        f["rule"] + (f":{f['evidence']['struct']}" if f["rule"] == "LY003" else "") for f in layout
    ]
    return r["verdict"], rules, options, doc["targets"][0]


@pytest.mark.parametrize("case", _drift_cases(), ids=lambda c: c["name"])
def test_headers_alone_give_the_vmlinux_verdict(testdata, case):
    """The README's main command, with nothing but the headers, catches each drift that
    --vmlinux catches: same verdict, same rules, same option named."""
    k = kernel(testdata, case["role"])
    (ko,) = case["modules"].values()
    probe = _verdict([ko, "--kernel", k["headers"], "--layouts", "probe"])
    image = _verdict([ko, "--kernel", k["headers"], "--vmlinux", k["vmlinuz"]])
    modules = _verdict([ko, "--kernel", k["headers"], "--modules-dir", k["modules"]])
    assert probe[:3] == image[:3] == modules[:3]
    assert probe[3]["layout_source"].startswith("probe compiled against the headers (gcc ")
    assert image[3]["layout_source"] == f"BTF of {k['vmlinuz']}"
    flipped = sorted(f"CONFIG_{o}" for o in case["flips"])
    if case["expect"] in ("exit-moves", "size-and-exit-move", "init-moves"):
        assert probe[0] in ("refused", "loads-unsafe")
        assert probe[2] == flipped
    if case["expect"] == "nothing-moves":
        assert probe[1] == []
    for struct, facts in (case.get("structs") or {}).items():
        if isinstance(facts, dict) and facts["module_size"] != facts["kernel_size"]:
            assert f"LY003:{struct}" in probe[1], (struct, probe[1])


def _ly003(args: list[str], struct: str) -> tuple[str, dict | None]:
    res = run_cli(["check", "--format", "json", *args])
    assert res.exit_code in (0, 1), res.stderr
    (r,) = res.json()["results"]
    found = [f for f in r["findings"] if f["rule"] == "LY003"]
    return r["verdict"], next((f for f in found if f["evidence"]["struct"] == struct), None)


def test_silent_task_struct_drift_is_loads_unsafe_from_headers_alone(testdata):
    """task_pid.ko reads current->pid; built with CONFIG_SCHED_INFO off, its task_struct
    has pid 32 bytes early. struct module does not move: the kernel loads it and the init
    reads another member (tests/test_qemu.py). The headers alone, as --vmlinux, must say
    loads-unsafe with LY003 on task_struct; the module's DWARF and the probe put pid at
    the offsets build-set measured against the kernel's BTF."""
    from abicheck.readers.dwarf import module_types

    case = next((c for c in _drift_cases() if c["name"] == "6.1-a-no-sched-info"), None)
    if case is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    k = kernel(testdata, case["role"])
    ko = case["modules"]["task_pid"]
    facts = case["structs"]["task_struct"]
    mine, theirs = facts["module_members"]["pid"], facts["kernel_members"]["pid"]
    assert (mine, theirs) == (2384, 2416)
    for how in (["--layouts", "probe"], ["--vmlinux", k["vmlinuz"]]):
        verdict, finding = _ly003([ko, "--kernel", k["headers"], *how], "task_struct")
        assert verdict == "loads-unsafe", how
        assert finding is not None and finding["severity"] == "error", how
        ev = finding["evidence"]
        assert (ev["module_size"], ev["kernel_size"]) == (9728, 9792), how
        # every member from sched_info on moved; the list is capped, pid is past the cap
        assert (
            f"sched_info at {0x86C:#x} in the module, {0x870:#x} in the kernel"
            in (ev["differences"])
        )
    types = module_types(ko)
    assert types is not None, "task_pid.ko has no DWARF"
    assert types.struct("task_struct").member("pid").offset == mine
    wanted = {"struct task_struct": (types.decl_line("struct task_struct") or (None,))[0]}
    probed = _probe(k["headers"]).layouts(wanted)["struct task_struct"]
    assert probed is not None and probed.member("pid").offset == theirs


def test_kprobes_drift_from_headers_alone_names_option_and_member(testdata):
    case = next((c for c in _drift_cases() if c["name"] == "6.1-a-no-kprobes"), None)
    if case is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    k = kernel(testdata, "6.1-a")
    res = run_cli(["check", case["modules"]["hello"], "--kernel", k["headers"]])
    assert res.exit_code == 1
    assert "verdict: refused" in res.stdout
    assert "layouts: probe compiled against the headers (gcc " in res.stdout
    assert "exit at 0x338 in the module, 0x350 in the kernel" in res.stdout
    assert "CONFIG_KPROBES (y in the kernel)" in res.stdout
    assert "source_list.prev" in res.stdout
    assert "Skipping invalid relocation target, existing value is nonzero" in res.stdout


def test_build_tree_names_the_option(testdata):
    case = next((c for c in _drift_cases() if c["name"] == "6.1-a-no-kprobes"), None)
    if case is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    k = kernel(testdata, "6.1-a")
    res = run_cli(
        [
            "check",
            "--format",
            "json",
            case["modules"]["hello"],
            "--kernel",
            k["headers"],
            "--build-tree",
            case["headers"],
        ]
    )
    (r,) = res.json()["results"]
    (ly002,) = [f for f in r["findings"] if f["rule"] == "LY002"]
    (option,) = ly002["evidence"]["options"]
    assert (option["option"], option["kernel"], option["build_tree"]) == (
        "CONFIG_KPROBES",
        "y",
        "n",
    )


# -- attachments that belong to another kernel -------------------------------------------------


def test_vmlinux_of_another_release_is_an_error(testdata):
    a, b = kernel(testdata, "6.1-a"), kernel(testdata, "6.1-b")
    res = run_cli(
        [
            "check",
            built(testdata, "6.1-b", "hello.ko"),
            "-k",
            b["headers"],
            "--vmlinux",
            a["vmlinuz"],
        ]
    )
    assert res.exit_code == 2
    assert (
        f"{a['vmlinuz']}: this image is {a['release']}, but the --kernel before it is "
        f"{b['release']}" in res.stderr
    )
    assert "Traceback" not in res.stderr


def test_module_given_as_vmlinux_is_an_error(testdata):
    a = kernel(testdata, "6.1-a")
    ko = built(testdata, "6.1-a", "hello.ko")
    res = run_cli(["check", ko, "-k", a["headers"], "--vmlinux", ko])
    assert res.exit_code == 2
    assert f"{ko}: a relocatable object (a kernel module?), not a kernel image" in res.stderr


def test_modules_dir_of_another_release_is_an_error(testdata):
    a, b = kernel(testdata, "6.1-a"), kernel(testdata, "6.1-b")
    res = run_cli(
        [
            "check",
            built(testdata, "6.1-b", "hello.ko"),
            "-k",
            b["headers"],
            "--modules-dir",
            a["modules"],
        ]
    )
    assert res.exit_code == 2
    assert (
        f"its modules were built for {a['release']}, not for the --kernel before it "
        f"({b['release']})" in res.stderr
    )


# -- never silent ----------------------------------------------------------------------------------


def test_no_compiler_says_layouts_not_checked(testdata, monkeypatch, tmp_path):
    a = kernel(testdata, "6.1-a")
    ko = built(testdata, "6.1-a", "hello.ko")
    monkeypatch.setenv("CC", "abicheck-no-such-compiler")
    res = run_cli(["check", ko, "-k", a["headers"], "--layouts", "probe"])
    assert res.exit_code == 0
    assert (
        "layouts: NOT checked (no C compiler: 'abicheck-no-such-compiler' is not on PATH)"
        in res.stdout
    )
    assert "LY005 layouts-not-checked: struct layouts were NOT checked against" in res.stdout
    doc = run_cli(["check", "--format", "json", ko, "-k", a["headers"], "--layouts", "probe"])
    (r,) = doc.json()["results"]
    ly005 = [f for f in r["findings"] if f["rule"] == "LY005"]
    assert ly005 and ly005[0]["severity"] == "warning"
    assert doc.json()["targets"][0]["layout_gap"] == (
        "no C compiler: 'abicheck-no-such-compiler' is not on PATH"
    )
    strict = run_cli(["check", ko, "-k", a["headers"], "--layouts", "probe", "--require-layout"])
    assert strict.exit_code == 1
    assert "error   LY005" in strict.stdout


def test_randstruct_kernel_is_not_probed(testdata):
    a = kernel(testdata, "6.1-a")
    target = target_from_headers(a["headers"])
    config = {**target.config, "CONFIG_RANDSTRUCT_FULL": "y"}
    dirs = tuple(os.path.abspath(d) for d in source_dirs(a["headers"]))
    with pytest.raises(ProbeUnavailable, match="CONFIG_RANDSTRUCT_FULL=y randomises"):
        ProbeTypes(ProbeSpec(dirs, "x86", "x86_64", config, target.digest))


# -- the cache ------------------------------------------------------------------------------------


def test_cache_is_used_and_validated(testdata, monkeypatch, tmp_path):
    monkeypatch.setenv("ABICHECK_CACHE_DIR", str(tmp_path))
    a = kernel(testdata, "6.1-a")
    first = with_layouts(
        target_from_headers(a["headers"]), source_dirs=source_dirs(a["headers"]), discover=False
    )
    assert (
        first.layout_source
        == "probe compiled against the headers (gcc " + (first.layout_source.split("(gcc ", 1)[1])
    )
    assert first.layout_source.endswith(", compiled now)")
    (entry,) = (tmp_path / "probe").iterdir()
    second = with_layouts(
        target_from_headers(a["headers"]), source_dirs=source_dirs(a["headers"]), discover=False
    )
    assert second.layout_source.endswith(", cached)")
    assert second.struct_module == first.struct_module
    # a damaged entry is data like any other: ignored, and the probe runs again
    for damage in (b"{", b'{"format": 1, "inputs": "x"}', b"\xff" * 100, b"[" * 100000):
        entry.write_bytes(damage)
        assert load_cache(str(entry), "probe:x") is None
        again = with_layouts(
            target_from_headers(a["headers"]),
            source_dirs=source_dirs(a["headers"]),
            discover=False,
        )
        assert again.struct_module == first.struct_module
        assert again.layout_source.endswith(", compiled now)")


# -- a module without DWARF, and profiles -------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("6.1-a-no-kprobes", ["CONFIG_EVENT_TRACING", "CONFIG_KPROBES"]),
        ("6.1-a-no-sysfs", ["CONFIG_SYSFS"]),
        ("6.1-a-no-kallsyms", ["CONFIG_KALLSYMS"]),
    ],
)
def test_without_dwarf_the_candidate_options_are_named(testdata, tmp_path, case, expected):
    """Stripped of its debug info, the module still shows where init/exit sit; the #if
    blocks of the target's module.h whose absence puts them there are the candidates."""
    import subprocess

    found = next((c for c in _drift_cases() if c["name"] == case), None)
    if found is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    stripped = tmp_path / "hello.ko"
    subprocess.run(
        ["strip", "--strip-debug", "-o", str(stripped), found["modules"]["hello"]], check=True
    )
    verdict, rules, options, _ = _verdict(
        [str(stripped), "--kernel", kernel(testdata, "6.1-a")["headers"], "--layouts", "probe"]
    )
    assert rules == ["LY002"]
    assert options == expected
    assert verdict == ("refused" if case == "6.1-a-no-kprobes" else "loads-unsafe")


def test_profile_saved_from_headers_alone_carries_the_probe(testdata, tmp_path):
    case = next((c for c in _drift_cases() if c["name"] == "6.1-a-no-kprobes"), None)
    if case is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    profile = str(tmp_path / "k.json.gz")
    headers = kernel(testdata, "6.1-a")["headers"]
    saved = run_cli(["profile", "save", "-k", headers, "-o", profile, "--layouts", "probe"])
    assert saved.exit_code == 0, saved.stderr
    assert "layouts: probe compiled against the headers" in saved.stderr
    verdict, rules, options, target = _verdict([case["modules"]["hello"], "--kernel", profile])
    assert (verdict, rules, options) == ("refused", ["LY002"], ["CONFIG_KPROBES"])
    assert target["layout_source"].startswith("probe compiled against the headers (gcc ")
    assert target["layout_source"].endswith(f", saved in {profile}")


def test_profile_saved_without_layouts_says_so(testdata, tmp_path, monkeypatch):
    profile = str(tmp_path / "k.json.gz")
    headers = kernel(testdata, "6.1-a")["headers"]
    monkeypatch.setenv("CC", "abicheck-no-such-compiler")
    saved = run_cli(["profile", "save", "-k", headers, "-o", profile, "--layouts", "probe"])
    assert saved.exit_code == 0
    assert f"warning: {profile} holds no struct layouts (no C compiler" in saved.stderr
    monkeypatch.delenv("CC")
    res = run_cli(["check", built(testdata, "6.1-a", "hello.ko"), "--kernel", profile])
    assert (
        "layouts: NOT checked (the profile was saved without layouts (no C compiler: "
        "'abicheck-no-such-compiler' is not on PATH))" in res.stdout
    )
    assert "LY005 layouts-not-checked" in res.stdout
