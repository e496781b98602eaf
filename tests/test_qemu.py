"""The real kernel as referee: abicheck's verdicts against Debian kernels booted under qemu.

One `abicheck prove` per x86_64 kernel role loads every case of that role (tests/referee.py)
in one boot (TCG, no KVM needed) and sets what the kernel did beside abicheck's
prediction for the same modules, against the headers of the same kernel. For every module
the test asserts prove's own agreement and, independently of prove's comparison:

(a) refused vs loaded agree, and nothing oopsed or hung;
(b) when refused, the first line of the first refusing finding's `kernel_says` is one of
    the lines the kernel logged for that insmod (it may log more), and the errno insmod
    reported is the finding's;
(c) when loaded, /sys/module/NAME/taint holds the predicted taint letters (as a set:
    the global taint mask cannot tell one module's taints from an earlier one's).
"""

from __future__ import annotations

import os
import re
import time

import pytest
import referee
from conftest import CACHE, run_cli

from abicheck.prove import vm

PARAMS = [(role, spec.name) for role in referee.ROLES for spec in referee.specs(role)]


def _need_tools() -> None:
    missing = vm.missing_tools()
    if missing:
        pytest.skip(f"qemu referee needs {', '.join(missing)} (apt-get install qemu-system-x86)")


def prove(modules: list[str], kernel: dict, *extra: str) -> tuple[int, dict, float]:
    """`abicheck prove --format json` of ``modules`` on a manifest kernel, under TCG."""
    start = time.monotonic()
    res = run_cli(
        ["prove", *modules, "--kernel", kernel["headers"], *extra, "--accel", "tcg",
         "--format", "json"]
    )  # fmt: skip
    assert res.exit_code in (0, 1), res.stderr
    return res.exit_code, res.json(), time.monotonic() - start


@pytest.fixture(scope="session")
def proved(testdata, request):
    """role -> (cases, prove's exit code, its JSON document), proving each role's kernel
    at most once."""
    _need_tools()
    runs: dict[str, tuple[list[referee.Case], int, dict, float] | Exception] = {}

    def run(role: str) -> tuple[list[referee.Case], int, dict]:
        if role not in runs:
            kernel = testdata["kernels"].get(role, {})
            if not kernel.get("vmlinuz") or not os.path.exists(kernel["vmlinuz"]):
                pytest.skip(f"no kernel image for {role}: run `python tools/testdata.py all`")
            cases = referee.cases(testdata, role)
            modules = [m for c in cases for m in c.modules]
            extra = ["--image", kernel["vmlinuz"], "--modules-dir", kernel["modules"]]
            try:
                runs[role] = (cases, *prove(modules, kernel, *extra))
            except (AssertionError, OSError, ValueError) as e:
                # remembered, so the role's other tests fail at once instead of rebooting
                runs[role] = e
        got = runs[role]
        if isinstance(got, Exception):
            pytest.fail(f"abicheck prove on {role} failed: {got}")
        return got[:3]

    def report_times() -> None:
        plugins = request.config.pluginmanager
        reporter, capture = (
            plugins.get_plugin("terminalreporter"),
            plugins.get_plugin("capturemanager"),
        )
        if reporter is None or capture is None:
            return
        # finalizers run under capture; the times belong in the run's own output
        with capture.global_and_fixture_disabled():
            for role, got in runs.items():
                if not isinstance(got, Exception):
                    cases, _code, doc, took = got
                    boots = ", ".join(f"{b['seconds']:.1f}s" for b in doc["boots"])
                    reporter.write_line(
                        f"abicheck prove {role} ({doc['targets'][0]['release']}): {took:.1f}s, "
                        f"boots {boots}, {len(cases)} cases, {len(doc['results'])} modules"
                    )

    request.addfinalizer(report_times)
    return run


def logged(line: str, kernel_lines: list[str]) -> bool:
    """Whether the kernel logged ``line``, raw or as util-linux dmesg escapes it (\\x7fELF).

    A predicted line may stop where the kernel goes on with values that differ on every
    boot (", loc <address>, val <address>"): a prefix then matches."""
    lines = kernel_lines + [vm.escape_nonprintable(ln) for ln in kernel_lines]
    return any(ln == line or ln.startswith(line + ",") for ln in lines)


def problems(result: dict) -> list[str]:
    """Where the kernel (prove's `proved` object) and abicheck's prediction part, for one
    insmod, and whether prove itself saw the same."""
    name = os.path.basename(result["module"])
    p = result["proved"]
    kernel = f"kernel log: {p['kernel_lines']}; insmod: {p['insmod_stderr']!r}"
    out = [f"{name}: prove disagrees: {d}" for d in result["disagreements"]]
    if not result["agrees"] and not out:
        out.append(f"{name}: prove says it disagrees, and names no disagreement")
    if result["verdict"] == "unreadable":
        return [*out, f"{name}: abicheck could not read it; {kernel}"]
    if p["verdict"] not in ("loads", "loads-tainted", "refused"):
        return [*out, f"{name}: the kernel: {p['verdict']}; {kernel}"]
    refusal = next((f for f in result["findings"] if f["effect"] == "refuse"), None)
    loaded = p["verdict"] != "refused"
    if (result["verdict"] == "refused") == loaded:
        said = f"{refusal['rule']}: {refusal['kernel_says']!r}" if refusal else "no refusal"
        return [*out, f"{name}: abicheck says {result['verdict']} ({said}), kernel "
                f"{p['verdict']}; {kernel}"]  # fmt: skip
    if not loaded:
        if refusal is None:
            return [*out, f"{name}: refused, and no finding refuses it; {kernel}"]
        says = (refusal["kernel_says"] or "").splitlines()
        if not says or not logged(says[0], p["kernel_lines"]):
            out.append(f"{name}: {refusal['rule']} predicts {says[:1]}; {kernel}")
        if not refusal["errno"] or refusal["errno"] not in p["errno"]:
            out.append(
                f"{name}: {refusal['rule']} predicts {refusal['errno']}, insmod says "
                f"{p['errno']}; {kernel}"
            )
    else:
        predicted = {t["letter"] for t in result["taints"]}
        if predicted != set(p["module_taint"] or ""):
            out.append(
                f"{name}: abicheck predicts taints {sorted(predicted)}, "
                f"/sys/module/{p['name']}/taint is {p['module_taint']!r}"
            )
    return out


def case_results(cases: list[referee.Case], doc: dict, case_name: str) -> list[dict] | None:
    """The results of one case's modules in the role's prove run (None: not in the data)."""
    start = 0
    for case in cases:
        if case.name == case_name:
            got = doc["results"][start : start + len(case.modules)]
            assert [r["module"] for r in got] == list(case.modules)
            return got
        start += len(case.modules)
    return None


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("role", referee.ROLES)
def test_prove_boots_each_kernel_once(proved, role):
    """Every case of the role in one boot: nothing oopsed or hung, every in-tree
    dependency (modprobe's part, not under test) loaded, and prove's exit code says the
    kernel agreed with every prediction."""
    cases, code, doc = proved(role)
    assert len(doc["results"]) == sum(len(c.modules) for c in cases)
    assert [b["failure"] for b in doc["boots"]] == [None]
    deps = [(d["name"], d["verdict"]) for d in doc["dependencies"]]
    assert all(v in ("loads", "loads-tainted") for _n, v in deps), deps
    assert code == 0, [r["disagreements"] for r in doc["results"] if not r["agrees"]]


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize(("role", "case_name"), PARAMS, ids=[f"{r}:{c}" for r, c in PARAMS])
def test_kernel_agrees_with_abicheck(proved, role, case_name):
    cases, _code, doc = proved(role)
    results = case_results(cases, doc, case_name)
    if results is None:
        pytest.skip(f"{case_name} is not in the test data for {role}")
    found = [p for r in results for p in problems(r)]
    assert not found, "\n".join(found)


def test_a_repeated_name_is_removed_just_before_the_next():
    """The /init prove boots with (no qemu needed): modules stay loaded until the end of
    the boot, and one whose name comes again is removed, its consumers first, just before
    the next of that name; each rmmod is reported against the load that added it."""
    case = vm.Case("run", ["/x/hello.ko", "/x/dep_provider.ko", "/y/hello.ko", "/x/c.ko"])
    script = vm.init_script([case])
    body = script[script.index("# case 0") :].splitlines()
    assert [ln.split(" '")[0] for ln in body] == [
        "# case 0: run",
        "load 0.0 module /m/00/00/hello.ko",
        "load 0.1 module /m/00/01/dep_provider.ko",
        "rm_loaded hello",
        "load 0.2 module /m/00/02/hello.ko",
        "load 0.3 module /m/00/03/c.ko",
        "unload",
        "",
        "finish",
    ]
    assert 'for h in $(ls /sys/module/$1/holders 2> /dev/null); do rm_loaded "$h"; done' in script


def test_serial_log_is_parsed_per_insmod():
    """The parser alone, on a log shaped as /init writes it (no qemu needed)."""
    cases = [vm.Case("pair", ["/x/dep_provider.ko", "/x/dep_consumer.ko"])]
    log = "\n".join(
        [
            "[    1.0] some kernel noise",
            f"{vm.BEGIN} 6.1.0-47-amd64 0",
            f"{vm.TAG} 0.0 rc 0",
            f"{vm.TAG} 0.0 tainted_before 0",
            f"{vm.TAG} 0.0 tainted_after 12288",
            f"{vm.TAG} 0.0 new dep_provider OE",
            f"{vm.TAG} 0.0 dmesg <4>[    2.315069] dep_provider: loading out-of-tree module",
            f"{vm.TAG} 0.0 end",
            f"{vm.TAG} 0.1 rc 1",
            f"{vm.TAG} 0.1 tainted_before 12288",
            f"{vm.TAG} 0.1 tainted_after 12289",
            f"{vm.TAG} 0.1 stderr insmod: ERROR: could not insert module /m/00/01/dep_consumer"
            ".ko: Unknown symbol in module",
            f"{vm.TAG} 0.1 dmesg <4>[    2.4] dep_consumer: Unknown symbol abicheck_x (err -2)",
            f"{vm.TAG} 0.1 end",
            f"{vm.TAG} 0.0 rmmod dep_provider 0 ",
            f"{vm.DONE} 12289",
        ]
    )
    provider, consumer = vm.with_taint_delta(vm.parse_serial(log, cases))
    assert provider["loaded"] and provider["module_taint"] == "OE"
    assert provider["dmesg"] == ["dep_provider: loading out-of-tree module"]
    assert provider["rmmod"] == [{"module": "dep_provider", "rc": 0, "stderr": ""}]
    assert not consumer["loaded"] and consumer["module_taint"] is None
    assert consumer["errno"] == ["ENOENT", "ESRCH"]
    assert consumer["dmesg"] == ["dep_consumer: Unknown symbol abicheck_x (err -2)"]
    assert consumer["rmmod"] == [] and consumer["taint_delta"] == "P"


@pytest.mark.qemu
@pytest.mark.slow
@pytest.mark.parametrize("role", ["6.1-a", "6.12"])
def test_layout_drift_agrees_with_the_kernel(testdata, role):
    """The modules tools/drift.py built against drifted header copies, in one `abicheck
    prove`: refused on a non-zero relocation target, or loaded with its init or exit
    misplaced, exactly as abicheck predicts; and task_pid.ko, with only task_struct
    drifted, loaded and reading a wrong pid. prove predicts without the drifted tree;
    `abicheck check --build-tree` with it must give the same verdict and rules."""
    _need_tools()
    drift = referee.drift_cases(CACHE, role)
    if drift is None:
        pytest.skip("drifted trees not built: run `python tools/drift.py build-set`")
    kernel = testdata["kernels"][role]
    checked: dict[str, tuple[str, dict]] = {}
    for c in drift:
        for n, m in c["modules"].items():
            out = run_cli(
                ["check", "--format", "json", m, "--kernel", kernel["headers"],
                 "--vmlinux", kernel["vmlinuz"], "--build-tree", c["headers"]]
            )  # fmt: skip
            checked[f"{c['name']}:{n}"] = (m, out.json()["results"][0])
    names = referee.drift_load_order({k: r for k, (_m, r) in checked.items()})
    code, doc, took = prove([checked[n][0] for n in names], kernel, "--vmlinux", kernel["vmlinuz"])
    found, table = [], []
    for name, r in zip(names, doc["results"], strict=True):
        path, want = checked[name]
        assert r["module"] == path
        p = r["proved"]
        table.append(
            f"{name}: abicheck {r['verdict']}, kernel {p['verdict']} errno={p['errno']} "
            f"{p['kernel_lines']}"
        )
        ours = [f["rule"] for f in r["findings"] if f["category"] != "prove"]
        if (r["verdict"], ours) != (want["verdict"], [f["rule"] for f in want["findings"]]):
            found.append(f"{name}: prove predicts {r['verdict']} {ours}, check --build-tree "
                         f"{want['verdict']} {[f['rule'] for f in want['findings']]}")  # fmt: skip
        found += [f"{name}: {x}" for x in problems(r)]
        found += silent_drift_problems(name, r)
    boots = [(b["seconds"], b["failure"]) for b in doc["boots"]]
    print(f"{role}: proved {len(names)} drift modules in {took:.0f}s, boots {boots}")
    print("\n".join(table))
    assert not found, "\n".join(found)
    assert code == 0 and boots == [(boots[0][0], None)]


# task_pid prints the pid it read at its own offset beside the kernel's answer
TASK_PID = re.compile(r"task_pid: current->pid (-?\d+) at offset (\d+), the kernel says (\d+)")


def silent_drift_problems(name: str, r: dict) -> list[str]:
    """task_pid.ko built with task_struct drifted (tools/drift.py 6.1-a-no-sched-info):
    abicheck says loads-unsafe with LY003 on task_struct, and the kernel does load it,
    runs its init, and the pid the module read is not the one the kernel knows."""
    if not name.endswith(":task_pid"):
        return []
    structs = [f["evidence"].get("struct") for f in r["findings"] if f["rule"] == "LY003"]
    p = r["proved"]
    found = [m for m in map(TASK_PID.search, p["kernel_lines"]) if m]
    out = []
    if r["verdict"] != "loads-unsafe" or "task_struct" not in structs:
        out.append(f"{name}: abicheck says {r['verdict']}, LY003 on {structs}")
    if p["verdict"] == "refused" or not p["init_ran"] or not found:
        out.append(f"{name}: the kernel did not run its init: {p['kernel_lines']}")
    elif found[0].group(1) == found[0].group(3):
        out.append(f"{name}: read the right pid though task_struct moved: {found[0][0]}")
    return out
