"""The arm64 loader's range checks (rules/arch/aarch64.toml [range_checks]) on real modules
cross-built at test time against Debian's arm64 headers, with the real kernel as referee.

tests/modules/{movw,pcpu,adr,sabs,nopac}_arm64: a kernel symbol's address by an
overflow-checked MOVW group (always refused: RL002); a 32-bit reference to the module's own
per-CPU variable (an address on arm64, so refused too: RL002); a kernel symbol's address by
`adr` (+/-1 MiB: refused unless the module lands next to the symbol: RL003, an error for
a vmlinux symbol, a warning for another module's); by
signed MOVW groups whose checked one holds every kernel address (loads); and a module built
without PAC/BTI landing pads (loads). Seen on Debian's 6.1.0-47-arm64 under
qemu-system-aarch64 -cpu max:
  module movw: overflow in relocation type 263 val ffffc8f6c82bae34   (ENOEXEC)
  module adr: overflow in relocation type 274 val ffffc8f6c82bae34    (ENOEXEC)
  module pcpu: overflow in relocation type 258 val ffffa8493dc182e8   (ENOEXEC)
  sabs, nopac: loaded, init ran, rmmod succeeded.
and on 6.12.107-arm64 the same, with 6.12's pr_fmt ("Modules: module movw: overflow in
relocation type 263 val ffff9a102ff43d98"). And sabs with its ftrace trampoline section
removed (.text.ftrace_trampoline on 6.1, .init.text.ftrace_trampoline on 6.12) is refused by
module_finalize() with ENOEXEC and no line of its own (EL008).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib

import pytest
from conftest import REPO, kernel, run_cli

from abicheck.readers.module import RANGE_CHECKED, read_module

CROSS = "aarch64-linux-gnu-"
MODULES = ("movw", "pcpu", "adr", "sabs", "nopac")
ROLES = ("6.1-a-arm64", "6.12-arm64")
# 6.12's arch/arm64/kernel/module.c prints through pr_fmt "Modules: "
PREFIX = {"6.1-a-arm64": "", "6.12-arm64": "Modules: "}
# module_finalize() → module_init_ftrace_plt(): the section each generation adds
NOTRAMP = {"6.1-a-arm64": ".text.ftrace_trampoline", "6.12-arm64": ".init.text.ftrace_trampoline"}


def _arch(name: str) -> dict:
    with open(os.path.join(REPO, "rules", "arch", f"{name}.toml"), "rb") as f:
        return tomllib.load(f)


@pytest.mark.parametrize("name", ["aarch64", "x86_64"])
def test_reader_decodes_every_type_a_check_can_flag(name):
    """The reader decodes entries of RANGE_CHECKED only; the checks may flag the "abs"
    types and the "prel" ones narrower than the module window without a PLT."""
    arch = _arch(name)
    window = arch.get("prel_window_bits", 64)
    flaggable = {
        int(t)
        for t, spec in arch["range_checks"].items()
        if spec["op"] == "abs"
        or (spec["op"] == "prel" and not spec.get("plt") and spec["bits"] < window)
    }
    assert RANGE_CHECKED[arch["e_machine"]] == flaggable


def test_range_checks_name_only_types_the_loader_applies():
    arch = _arch("aarch64")
    assert set(arch["range_checks"]) <= set(arch["relocations"])


@pytest.fixture(scope="module")
def built(testdata, tmp_path_factory) -> dict[tuple[str, str], str]:
    """Each test module cross-built against each arm64 headers tree, as Kbuild does."""
    if shutil.which(CROSS + "gcc") is None:
        pytest.skip("gcc-aarch64-linux-gnu not installed")
    out = {}
    for role in ROLES:
        if role not in testdata["kernels"]:
            continue
        headers = kernel(testdata, role)["headers"]
        for name in MODULES:
            src = tmp_path_factory.mktemp(f"{name}-{role}") / name
            shutil.copytree(os.path.join(REPO, "tests", "modules", f"{name}_arm64"), src)
            subprocess.run(
                ["make", "-s", "-C", headers, "ARCH=arm64", f"CROSS_COMPILE={CROSS}", f"M={src}"],
                check=True,
                capture_output=True,
            )
            out[(role, name)] = str(src / f"{name}.ko")
        # sabs without the ftrace trampoline section this generation's module_finalize()
        # looks for (synthetic: objcopy from the real build; a module linked with another
        # linker script than Kbuild's module.lds)
        synthetic = str(tmp_path_factory.mktemp(f"notramp-{role}") / "synthetic-notramp.ko")
        subprocess.run(
            [
                CROSS + "objcopy",
                f"--remove-section={NOTRAMP[role]}",
                out[(role, "sabs")],
                synthetic,
            ],
            check=True,
        )
        out[(role, "notramp")] = synthetic
    if not out:
        pytest.skip("no arm64 headers fetched: run `python tools/testdata.py all`")
    return out


def _module(built: dict, role: str, name: str) -> str:
    if (role, name) not in built:
        pytest.skip(f"{role} not fetched")
    return built[(role, name)]


def _result(testdata: dict, role: str, module: str) -> dict:
    res = run_cli(["check", "--format", "json", module, "-k", kernel(testdata, role)["headers"]])
    assert res.exit_code in (0, 1), res.stderr
    (r,) = res.json()["results"]
    return r


def _rl(r: dict) -> list[dict]:
    return [f for f in r["findings"] if f["rule"].startswith("RL")]


@pytest.mark.parametrize("role", ROLES)
def test_the_modules_carry_the_relocations_they_are_named_for(built, role):
    types = {
        name: {e.r_type for rs in read_module(_module(built, role, name)).relocation_sections
               for e in rs.checked}
        for name in ("movw", "pcpu", "adr", "sabs")
    }  # fmt: skip
    # R_AARCH64_MOVW_UABS_G0, ABS32, ADR_PREL_LO21, MOVW_SABS_G2 (the _NC groups are not
    # decoded; nor are the relocations of the non-allocated .debug_* sections)
    assert types == {"movw": {263}, "pcpu": {258}, "adr": {274}, "sabs": {272}}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "r_type", "type_name", "symbol", "where", "fits", "fix"),
    [
        (
            "movw",
            263,
            "R_AARCH64_MOVW_UABS_G0",
            "_printk",
            "exported by vmlinux",
            "0x0..0xffff",
            "adrp + add",
        ),
        # arm64's per-CPU symbols are addresses (x86_64's are offsets, which fit)
        (
            "pcpu",
            258,
            "R_AARCH64_ABS32",
            "abicheck_pcpu",
            "defined in .data..percpu, a module address",
            "0x0..0xffffffff",
            "pointer-sized field",
        ),
    ],
)
def test_absolute_field_no_kernel_address_fits_is_refused(
    testdata, built, role, name, r_type, type_name, symbol, where, fits, fix
):
    r = _result(testdata, role, _module(built, role, name))
    (f,) = _rl(r)
    assert (r["verdict"], f["rule"], f["severity"], f["errno"]) == (
        "refused",
        "RL002",
        "error",
        "ENOEXEC",
    )
    ev = f["evidence"]
    assert (ev["type_name"], ev["symbol"], ev["where"], ev["fits"]) == (
        type_name,
        symbol,
        where,
        fits,
    )
    assert f["kernel_says"] == (
        f"{PREFIX[role]}module {name}: overflow in relocation type {r_type} val "
        f"<address of {symbol}>"
    )
    assert fix in f["fix"]


@pytest.mark.parametrize("role", ROLES)
def test_adr_to_a_vmlinux_symbol_is_a_refusal(testdata, built, role):
    """+/-1 MiB from a random place of a 2 GiB window: refused but for a ~1/2000 chance
    (the real kernels refused it: test_one_boot_agrees below)."""
    r = _result(testdata, role, _module(built, role, "adr"))
    (f,) = _rl(r)
    assert (r["verdict"], f["rule"], f["severity"], f["errno"]) == (
        "refused",
        "RL003",
        "error",
        "ENOEXEC",
    )
    ev = f["evidence"]
    assert (ev["type_name"], ev["symbol"], ev["reach"]) == (
        "R_AARCH64_ADR_PREL_LO21",
        "_printk",
        "1 MiB",
    )
    assert (
        f["kernel_says"]
        == PREFIX[role] + "module adr: overflow in relocation type 274 val <address of _printk>"
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", ["sabs", "nopac"])
def test_signed_movw_and_no_landing_pads_are_not_flagged(testdata, built, role, name):
    r = _result(testdata, role, _module(built, role, name))
    assert r["verdict"] == "loads-tainted"
    # only the out-of-tree and unsigned taints (O, E), as for hello
    flagged = {f["rule"] for f in r["findings"] if f["severity"] in ("error", "warning")}
    assert flagged == {"TN001", "SG001"}


@pytest.mark.parametrize("role", ROLES)
def test_a_missing_ftrace_trampoline_section_is_refused_silently(testdata, built, role):
    r = _result(testdata, role, _module(built, role, "notramp"))
    first = next(f for f in r["findings"] if f["severity"] == "error")
    assert (r["verdict"], first["rule"], first["errno"], first["kernel_says"]) == (
        "refused",
        "EL008",
        "ENOEXEC",
        None,
    )
    assert first["evidence"]["missing"] == NOTRAMP[role]
    assert "module_finalize()" in first["message"]


def test_nopac_really_lacks_the_landing_pads(built):
    """nopac's init_module starts with the ftrace nops and then no paciasp; hello-like
    Kbuild modules have one (the point of the nopac case)."""
    objdump = shutil.which(CROSS + "objdump")
    if objdump is None:
        pytest.skip("binutils-aarch64-linux-gnu not installed")

    def entry(ko: str) -> list[str]:
        out = subprocess.run(
            [objdump, "-d", "--disassemble=init_module", ko], capture_output=True, text=True
        ).stdout
        return re.findall(r"^\s+[0-9a-f]+:\s+[0-9a-f]{8}\s+(\S+)", out, re.M)[:3]

    assert entry(_module(built, "6.1-a-arm64", "nopac"))[2] != "paciasp"
    assert entry(_module(built, "6.1-a-arm64", "movw"))[2] == "paciasp"


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("role", ROLES)
def test_referee(testdata, built, role):
    """One boot of the real kernel for the four modules: Debian's 6.1.0-47-arm64 and
    6.12.107-arm64."""
    userland = testdata.get("userland", {}).get("arm64")
    if not userland or shutil.which("qemu-system-aarch64") is None:
        pytest.skip("qemu-system-aarch64 or the arm64 userland missing")
    k = kernel(testdata, role)
    modules = [_module(built, role, name) for name in (*MODULES, "notramp")]
    args = ["--kernel", k["headers"], "--image", k["image"], "--userland", userland]
    res = run_cli(["prove", *modules, *args, "--accel", "tcg", "--format", "json"])
    assert res.exit_code == 0, res.stdout + res.stderr
    by_name = {os.path.basename(r["module"])[:-3]: r for r in res.json()["results"]}
    assert all(r["agrees"] for r in by_name.values()), {
        n: r["disagreements"] for n, r in by_name.items()
    }
    for name, r_type in (("movw", 263), ("pcpu", 258), ("adr", 274)):
        proved = by_name[name]["proved"]
        assert (proved["verdict"], proved["errno"]) == ("refused", ["ENOEXEC"])
        line = f"{PREFIX[role]}module {name}: overflow in relocation type {r_type} val "
        assert any(
            re.fullmatch(re.escape(line) + "ffff[0-9a-f]{12}", ln) for ln in proved["kernel_lines"]
        ), proved
    # predicted: movw and pcpu refused (RL002), adr refused (RL003: _printk is vmlinux's)
    assert by_name["movw"]["verdict"] == by_name["pcpu"]["verdict"] == "refused"
    assert by_name["adr"]["verdict"] == "refused"
    for name in ("sabs", "nopac"):
        proved = by_name[name]["proved"]
        assert (proved["verdict"], proved["errno"], proved["init_ran"]) == (
            "loads-tainted",
            [],
            True,
        )
        assert f"abicheck {name}" in proved["kernel_lines"]
        assert proved["rmmod_rc"] == 0
    # without the trampoline section: ENOEXEC, and no line of the loader's
    proved = by_name["synthetic-notramp"]["proved"]
    assert (proved["verdict"], proved["errno"], proved["init_ran"]) == (
        "refused",
        ["ENOEXEC"],
        False,
    )
    # (the kernel prints the taint lines only when a taint is first set: earlier modules of
    # this boot have set them)
    taints = {
        "sabs: loading out-of-tree module taints kernel.",
        "sabs: module verification failed: signature and/or required key missing - tainting kernel",
    }
    assert set(proved["kernel_lines"]) <= taints, proved["kernel_lines"]
