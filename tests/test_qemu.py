"""The real kernel as referee: abicheck's verdicts against Debian kernels booted under qemu.

tools/qemu_harness.py boots each kernel role once (TCG, no KVM needed) with every case of
that role in one initramfs, insmods with kmod's insmod and records what the kernel did.
Each test then checks abicheck's prediction for the same modules, in the same order,
against the headers of the same kernel:

(a) refused vs loaded agree; when refused, the errno insmod reported is the predicted one;
(b) when refused, the first line of the first refusing finding's `kernel_says` is one of
    the lines the kernel logged for that insmod (it may log more);
(c) when loaded, /sys/module/NAME/taint holds the predicted taint letters (as a set:
    the global taint mask cannot tell one module's taints from an earlier one's).

Disagreements the kernel shows and abicheck does not model yet are xfailed with the
kernel's own words, so they stay visible in the summary (-ra) instead of being hidden.
"""

from __future__ import annotations

import os
import re
import sys

import pytest
from conftest import CACHE, REPO, check_json, run_cli

sys.path.insert(0, os.path.join(REPO, "tools"))
import qemu_harness as qh

ROLES = ["6.1-a", "6.1-b", "6.12"]
PARAMS = [(role, spec[0]) for role in ROLES for spec in qh.standard_specs(role)]

# Linux 6.12 compares .gnu.linkonce.this_module's size with its own struct module in
# elf_validity_cache_copy(), before any modversions check: a module built for another
# kernel is refused there. abicheck does not model this check yet.
THIS_MODULE_SIZE = ".gnu.linkonce.this_module section size must match"


@pytest.fixture(scope="session")
def referee(testdata, tmp_path_factory, request):
    """role -> (cases, harness results), booting each role's kernel at most once."""
    missing = qh.missing_tools()
    if missing:
        pytest.skip(f"qemu referee needs {', '.join(missing)} (apt-get install qemu-system-x86)")
    runs: dict[str, tuple[list[qh.Case], dict] | Exception] = {}
    log_dir = tmp_path_factory.mktemp("qemu")

    def run(role: str) -> tuple[list[qh.Case], dict]:
        if role not in runs:
            kernel = testdata["kernels"].get(role, {})
            vmlinuz = kernel.get("vmlinuz")
            if not vmlinuz or not os.path.exists(vmlinuz):
                pytest.skip(f"no kernel image for {role}: run `python tools/testdata.py all`")
            cases = qh.standard_cases(testdata, role)
            log = str(log_dir / f"serial-{role}.log")
            try:
                runs[role] = (cases, qh.run_cases(vmlinuz, cases, log_path=log))
            except (qh.BootError, OSError) as e:
                # remembered, so the role's other tests fail at once instead of rebooting
                runs[role] = e
        got = runs[role]
        if isinstance(got, Exception):
            pytest.fail(f"qemu run for {role} failed: {got}")
        return got

    def report_boot_times() -> None:
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.get_plugin("terminalreporter"),
            plugins.get_plugin("capturemanager"),
        )
        if reporter is None or capture is None:
            return
        # finalizers run under capture; the boot times belong in the run's own output
        with capture.global_and_fixture_disabled():
            for role, got in runs.items():
                if not isinstance(got, Exception):
                    doc = got[1]
                    reporter.write_line(
                        f"qemu boot {role} ({doc['release']}): {doc['boot_seconds']:.1f}s, "
                        f"{len(got[0])} cases, serial log {log_dir / f'serial-{role}.log'}"
                    )

    request.addfinalizer(report_boot_times)
    return run


def first_refusal(result: dict) -> dict | None:
    return next((f for f in result["findings"] if f["effect"] == "refuse"), None)


def logged(line: str, dmesg: list[str]) -> bool:
    """Whether the kernel logged `line`, raw or as util-linux dmesg escapes it (\\x7fELF).

    A predicted line may stop where the kernel goes on with values that differ on every
    boot (", loc <address>, val <address>"): a prefix then matches."""
    lines = dmesg + [qh.escape_nonprintable(ln) for ln in dmesg]
    return any(ln == line or ln.startswith(line + ",") for ln in lines)


def disagreements(rec: dict, result: dict) -> list[str]:
    """What the kernel did that abicheck did not predict, for one insmod."""
    name = os.path.basename(rec["module"])
    refusal = first_refusal(result)
    predicted_refused = result["verdict"] == "refused"
    kernel = f"kernel log: {rec['dmesg']}; insmod: {rec['insmod_stderr']}"
    if result["verdict"] == "unreadable":
        return [f"{name}: abicheck could not read it; {kernel}"]
    if predicted_refused == rec["loaded"]:
        said = f"{refusal['rule']}: {refusal['kernel_says']!r}" if refusal else "no refusal"
        what = "loaded" if rec["loaded"] else "refused"
        return [f"{name}: abicheck says {result['verdict']} ({said}), kernel {what}; {kernel}"]
    problems = []
    if not rec["loaded"] and refusal is not None:
        says = (refusal["kernel_says"] or "").splitlines()
        if says and not logged(says[0], rec["dmesg"]):
            problems.append(f"{name}: {refusal['rule']} predicts {says[0]!r}; {kernel}")
        if refusal["errno"] and rec["errno"] and refusal["errno"] not in rec["errno"]:
            problems.append(
                f"{name}: {refusal['rule']} predicts {refusal['errno']}, insmod says "
                f"{rec['errno']}; {kernel}"
            )
    if rec["loaded"]:
        predicted = {t["letter"] for t in result["taints"]}
        if predicted != set(rec["module_taint"] or ""):
            problems.append(
                f"{name}: abicheck predicts taints {sorted(predicted)}, "
                f"/sys/module/{rec['name']}/taint is {rec['module_taint']!r}"
            )
    return problems


def known_reason(rec: dict, result: dict) -> str | None:
    """Why a disagreement is expected (and reported as xfail), or None when it is not."""
    refusal = first_refusal(result)
    said = (refusal or {}).get("kernel_says") or ""
    line = next((ln for ln in rec["dmesg"] if THIS_MODULE_SIZE in ln), None)
    if not rec["loaded"] and line and THIS_MODULE_SIZE not in said:
        return f"abicheck does not model the struct module size check yet; the kernel: {line!r}"
    return None


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize(("role", "case_name"), PARAMS, ids=[f"{r}:{c}" for r, c in PARAMS])
def test_kernel_agrees_with_abicheck(referee, testdata, role, case_name):
    cases, doc = referee(role)
    case = next((c for c in cases if c.name == case_name), None)
    if case is None:
        pytest.skip(f"{case_name} is not in the test data for {role}")
    records = [r for r in doc["results"] if r["case"] == case_name]
    # in-tree dependencies are the setup modprobe would do, not under test
    deps = [r for r in records if r["kind"] == "dep"]
    assert all(r["loaded"] for r in deps), [(r["module"], r["dmesg"]) for r in deps]
    loaded = [r for r in records if r["kind"] == "module"]
    assert len(loaded) == len(case.modules) and all(r["complete"] for r in loaded), records

    headers = testdata["kernels"][role]["headers"]
    results = check_json(case.modules, [headers])["results"]
    problems, known = [], []
    for rec, result in zip(loaded, results, strict=True):
        found = disagreements(rec, result)
        reason = known_reason(rec, result) if found else None
        if reason:
            known += [*found, reason]
        else:
            problems += found
    assert not problems, "\n".join(problems)
    if known:
        pytest.xfail("\n".join(known))


def test_serial_log_is_parsed_per_insmod():
    """The parser alone, on a log shaped as /init writes it (no qemu needed)."""
    cases = [qh.Case("pair", ["/x/dep_provider.ko", "/x/dep_consumer.ko"])]
    log = "\n".join(
        [
            "[    1.0] some kernel noise",
            f"{qh.BEGIN} 6.1.0-47-amd64 0",
            f"{qh.TAG} 0.0 rc 0",
            f"{qh.TAG} 0.0 tainted_before 0",
            f"{qh.TAG} 0.0 tainted_after 12288",
            f"{qh.TAG} 0.0 new dep_provider OE",
            f"{qh.TAG} 0.0 dmesg <4>[    2.315069] dep_provider: loading out-of-tree module",
            f"{qh.TAG} 0.0 end",
            f"{qh.TAG} 0.1 rc 1",
            f"{qh.TAG} 0.1 tainted_before 12288",
            f"{qh.TAG} 0.1 tainted_after 12289",
            f"{qh.TAG} 0.1 stderr insmod: ERROR: could not insert module /m/00/01/dep_consumer"
            ".ko: Unknown symbol in module",
            f"{qh.TAG} 0.1 dmesg <4>[    2.4] dep_consumer: Unknown symbol abicheck_x (err -2)",
            f"{qh.TAG} 0.1 end",
            f"{qh.TAG} 0 rmmod dep_provider 0 ",
            f"{qh.DONE} 12289",
        ]
    )
    provider, consumer = qh.parse_serial(log, cases)
    assert provider["loaded"] and provider["module_taint"] == "OE"
    assert provider["dmesg"] == ["dep_provider: loading out-of-tree module"]
    assert provider["rmmod"] == [{"module": "dep_provider", "rc": 0, "stderr": ""}]
    assert not consumer["loaded"] and consumer["module_taint"] is None
    assert consumer["errno"] == ["ENOENT", "ESRCH"]
    assert consumer["dmesg"] == ["dep_consumer: Unknown symbol abicheck_x (err -2)"]
    assert qh.taint_letters(consumer["tainted_after"] & ~consumer["tainted_before"]) == "P"


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_layout_drift_agrees_with_the_kernel(testdata, role, tmp_path):
    """The modules tools/drift.py built against drifted header copies, loaded into the
    real kernel: refused on a non-zero relocation target, or loaded with its init or
    exit misplaced (the harness then sees it loaded), exactly as abicheck predicts; and
    task_pid.ko, with only task_struct drifted, loaded and reading a wrong pid."""
    import json

    missing = qh.missing_tools()
    if missing:
        pytest.skip(f"qemu referee needs {', '.join(missing)}")
    # the drift set of this checkout's cache (as tests/test_probe.py reads it)
    path = os.path.join(CACHE, "drift", "manifest.json")
    if not os.path.exists(path):
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    with open(path) as f:
        drift = [c for c in json.load(f)["cases"] if c["role"] == role]
    kernel = testdata["kernels"][role]
    predicted = {}
    for c in drift:
        for n, m in c["modules"].items():
            out = run_cli(
                [
                    "check",
                    "--format",
                    "json",
                    m,
                    "--kernel",
                    kernel["headers"],
                    "--vmlinux",
                    kernel["vmlinuz"],
                    "--build-tree",
                    c["headers"],
                ]
            )
            predicted[f"{c['name']}:{n}"] = (m, out.json()["results"][0])
    # the modules are called hello, drift_struct or task_pid: one that loads without a
    # usable exit cannot be removed again, so those go last
    order = {"refused": 0, "loads": 1, "loads-tainted": 1, "loads-unsafe": 2}

    def stuck(result: dict) -> bool:  # loads with no exit in the kernel's struct module
        ly = [f for f in result["findings"] if f["rule"] == "LY002"]
        return bool(ly) and ly[0]["evidence"]["module_exit"] != ly[0]["evidence"]["kernel_exit"]

    names = sorted(
        predicted, key=lambda k: (order.get(predicted[k][1]["verdict"], 1), stuck(predicted[k][1]))
    )
    cases = [qh.Case(name, [predicted[name][0]]) for name in names]
    doc = qh.run_cases(kernel["vmlinuz"], cases, log_path=str(tmp_path / "serial.log"))
    problems, table = [], []
    for case, rec in zip(cases, [r for r in doc["results"] if r["kind"] == "module"], strict=True):
        result = predicted[case.name][1]
        table.append(
            f"{case.name}: abicheck {result['verdict']}, kernel "
            f"{'loaded' if rec['loaded'] else 'refused'} errno={rec['errno']} {rec['dmesg']}"
        )
        problems += disagreements(rec, result)
        problems += silent_drift_problems(case.name, rec, result)
    print("\n".join(table))
    assert not problems, "\n".join(problems)


# task_pid prints the pid it read at its own offset beside the kernel's answer
TASK_PID = re.compile(r"task_pid: current->pid (-?\d+) at offset (\d+), the kernel says (\d+)")


def silent_drift_problems(name: str, rec: dict, result: dict) -> list[str]:
    """task_pid.ko built with task_struct drifted (tools/drift.py 6.1-a-no-sched-info):
    abicheck says loads-unsafe with LY003 on task_struct, and the kernel does load it,
    runs its init, and the pid the module read is not the one the kernel knows."""
    if not name.endswith(":task_pid"):
        return []
    structs = [f["evidence"].get("struct") for f in result["findings"] if f["rule"] == "LY003"]
    found = [m for m in map(TASK_PID.search, rec["dmesg"]) if m]
    problems = []
    if result["verdict"] != "loads-unsafe" or "task_struct" not in structs:
        problems.append(f"{name}: abicheck says {result['verdict']}, LY003 on {structs}")
    if not rec["loaded"] or not found:
        problems.append(f"{name}: the kernel did not run its init: {rec['dmesg']}")
    elif found[0].group(1) == found[0].group(3):
        problems.append(f"{name}: read the right pid though task_struct moved: {found[0][0]}")
    return problems
