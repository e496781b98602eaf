"""Prove a prediction: boot the target kernel in a throwaway VM, load the modules as
insmod/modprobe would, and set what the kernel really did beside abicheck's verdict.

    >>> from abicheck.prove import ProveRequest, prove
    >>> run = prove(ProveRequest(["hello.ko"], target, image="/boot/vmlinuz-R"))
    >>> run.proofs[0].agrees

One boot serves every module of the request; a load that oopses or hangs ends that boot
and the modules after it are loaded in a fresh one. The modules only ever run inside the
VM: the host reads their .modinfo, nothing else.

The VM's architecture is the target's (``KernelTarget.arch``, vm.ARCHES). A kernel of
another architecture than the host's boots under emulation (TCG) with that
architecture's Debian busybox-static and kmod, extracted into ``ProveRequest.userland``
(``abicheck prove --userland DIR``); vm.userland_hint says how to get them.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from abicheck import ruledata
from abicheck.context import Assumptions, Proved, RunContext
from abicheck.errors import AbicheckError, ModuleReadError, TargetError
from abicheck.model import KernelTarget, Result, Severity, Verdict
from abicheck.prove import vm

# a kernel line that means the kernel itself went wrong, not the module's load
OOPS = re.compile(r"(Oops:|BUG:|Kernel panic|general protection fault|Call Trace:|RIP: )")
# the first line of an oops, the one a search engine knows (x86 and arm64 wording)
OOPS_START = re.compile(
    r"^(BUG: |Oops: |general protection fault|Unable to handle kernel |Internal error: |"
    r"Kernel panic)"
)


# A working KVM boots a Debian kernel to /init and loads a few modules in 1-3 s. Where
# /dev/kvm exists but guests hang (nested virtualisation, as on the machine these tests
# run on: `-cpu host` aborts, the default CPU never reaches /init), the first KVM boot is
# given this long before TCG takes over; measured: 10 s lost there instead of 30.
KVM_FIRST_BOOT = 10.0


class ProveError(AbicheckError):
    """The VM cannot be made or started: a missing host tool, an unbootable image."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class ProveRequest:
    modules: Sequence[str]
    target: KernelTarget
    image: str  # the bootable kernel image (bzImage)
    modules_dir: str | None = None  # in-tree dependencies, as modprobe finds them
    params: Sequence[tuple[str, str, str | None]] = ()  # (module or "", name, value)
    force: bool = False  # insmod -f
    timeout: float = 120.0  # per boot, seconds
    load_timeout: float = vm.LOAD_TIMEOUT  # per insmod: longer is a hang
    accel: str = "auto"  # "kvm", "tcg", or "auto": kvm when /dev/kvm is usable
    cache_dir: str | None = None  # initramfs images; a temporary dir when None
    # a foreign architecture's extracted Debian busybox-static, kmod and kmod's libraries
    userland: str | None = None


@dataclass(frozen=True)
class Load:
    """What the kernel did with one insmod."""

    module: str
    name: str
    kind: str  # "module", or "dep" (an in-tree dependency loaded first, as modprobe does)
    outcome: str  # "loaded", "refused", "oops", "hang", "not-run"
    rc: int | None  # insmod's exit code
    errno: tuple[str, ...]  # the errno names insmod's message stands for
    kernel_lines: tuple[str, ...]  # every line the kernel logged during the load
    insmod_stderr: str
    tainted_before: int | None
    tainted_after: int | None
    taints_set: str  # the taint letters this load added to the kernel's mask
    module_taint: str | None  # /sys/module/NAME/taint
    init_ran: bool | None  # the kernel called the module's init (initcall_debug)
    init_returned: int | None
    initstate: str | None  # /sys/module/NAME/initstate after the load
    rmmod_rc: int | None
    rmmod_stderr: str
    boot: int  # which boot of the run (0, 1, ...)
    # /sys/module/NAME/parameters/* after the load, as the kernel reads them back
    params: dict[str, str] = field(default_factory=dict)

    @property
    def kernel_verdict(self) -> str:
        if self.outcome != "loaded":
            return self.outcome if self.outcome != "refused" else "refused"
        return "loads-tainted" if self.module_taint else "loads"

    def as_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["errno"] = list(self.errno)
        out["kernel_lines"] = list(self.kernel_lines)
        out["verdict"] = self.kernel_verdict
        return out


@dataclass(frozen=True)
class Proof:
    predicted: Result  # abicheck's verdict and findings, as a static check gives them
    proved: Load
    disagreements: tuple[str, ...]
    # the prediction with the findings of the rules fed by prove (PV001, PV002) added;
    # its verdict is still the predicted one. What every output format shows.
    result: Result | None = None

    @property
    def agrees(self) -> bool:
        return not self.disagreements

    @property
    def shown(self) -> Result:
        return self.result or self.predicted

    @property
    def failed(self) -> bool:
        """A disagreement, or an error finding of prove's rules (an oops or a hang that
        abicheck did not predict): exit 1."""
        return not self.agrees or any(
            f.category == ruledata.PROVE and f.severity is Severity.ERROR
            for f in self.shown.findings
        )


@dataclass(frozen=True)
class Boot:
    seconds: float
    accel: str
    failure: str | None  # why the guest did not finish its /init (a hang, a panic)
    serial_tail: str  # the serial console's last lines when it failed


@dataclass
class ProveRun:
    release: str
    image: str
    proofs: list[Proof] = field(default_factory=list)
    deps: list[Load] = field(default_factory=list)
    boots: list[Boot] = field(default_factory=list)
    loader: str = ""

    @property
    def agrees(self) -> bool:
        return all(p.agrees for p in self.proofs)

    @property
    def failed(self) -> bool:
        return any(p.failed for p in self.proofs)

    @property
    def results(self) -> list[Result]:
        return [p.shown for p in self.proofs]


def vm_arch(target: KernelTarget) -> str:
    """The VM's architecture: the target's, in abicheck's naming."""
    try:
        return vm.arch_name(target.arch)
    except ValueError as e:
        raise ProveError(f"{target.release}: {e}") from None


def check_tools(arch: str = "x86_64", userland: str | None = None) -> None:
    if vm.is_foreign(arch) and userland is None:
        raise ProveError(vm.userland_hint(arch))
    if userland is not None and not os.path.isdir(userland):
        raise ProveError(f"{userland}: no such userland folder: {vm.userland_hint(arch)}")
    missing = vm.missing_tools(arch, userland)
    if missing:
        tool = missing[0]
        raise ProveError(
            f"{tool} not found: install the Debian package {vm.PACKAGES.get(tool, tool)}"
        )


def bootable_image(path: str, arch: str = "x86_64") -> str:
    """``path`` when it is a kernel qemu can boot for ``arch``; a ProveError saying why not."""
    from abicheck.targets.layouts import identify_image

    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as e:
        raise ProveError(f"{path}: cannot read: {e.strerror or e}") from None
    # arch/arm64/include/asm/image.h: the Image header's magic; qemu's arm64 loader also
    # takes it gzipped (Debian's vmlinuz is the plain Image)
    arm64 = head[56:60] == b"ARM\x64"
    if arch == "aarch64":
        if arm64 or head[:2] == b"\x1f\x8b":
            return path
        raise ProveError(
            f"{path} is not an arm64 kernel Image: give the target's /boot/vmlinuz-RELEASE "
            "with --image"
        )
    if arm64:
        raise ProveError(f"{path} is an arm64 kernel Image, but the --kernel is {arch}")
    try:
        kind = identify_image(path).kind
    except TargetError as e:
        raise ProveError(str(e)) from None
    if kind in ("btf-vmlinux", "btf-raw"):
        raise ProveError(
            f"{path} holds only BTF ({kind}) and cannot boot: give the bootable image "
            "(/boot/vmlinuz-RELEASE) with --image"
        )
    if kind != "bzImage":
        raise ProveError(
            f"{path} is an ELF vmlinux, which qemu -kernel cannot boot: give the bootable "
            "image (/boot/vmlinuz-RELEASE) with --image"
        )
    return path


def predict(request: ProveRequest) -> list[Result]:
    """abicheck's own verdicts for the modules, in-process, against the same target."""
    from abicheck.runner import RunOptions, run_checks

    options = RunOptions(assumptions=_assumptions(request), jobs=1)
    paths: list[str | ModuleReadError] = list(request.modules)
    return run_checks(paths, [request.target], options).results


def _assumptions(request: ProveRequest) -> Assumptions:
    return Assumptions(params=tuple(request.params), force=request.force)


def proved_findings(request: ProveRequest, result: Result, proof: Proved) -> Result:
    """``result`` with the findings of the rules fed by prove (category ``prove``) added:
    their checks run on the module again, with what the kernel did attached to the run.
    The verdict stays the prediction's."""
    from abicheck.engine import check_module
    from abicheck.readers.module import read_module

    try:
        module = read_module(result.module)
    except (ModuleReadError, OSError):
        return result  # unreadable: the disagreement stands in the proof, exit 1
    run = RunContext(assumptions=_assumptions(request), proved={result.module: proof})
    ours = check_module(
        module, request.target, run, lambda rule: ruledata.rule(rule).category == ruledata.PROVE
    )
    return replace(result, findings=(*result.findings, *ours.findings))


def kernel_line(load: Load) -> str:
    """The line that says what the kernel did: a refusal's reason and a hang's last word
    are the last line it logged (check_modinfo()'s taint notices come before them), an
    oops's is the oops's own first line, a load's the first."""
    lines = [ln for ln in load.kernel_lines if ln.strip()]
    if not lines:
        return ""
    if load.outcome == "oops":
        return next((ln for ln in lines if OOPS_START.match(ln)), lines[0])
    return lines[-1] if load.outcome in ("refused", "hang") else lines[0]


def _proved(load: Load, result: Result, found: Sequence[str], timeout: float) -> Proved:
    oops = next(
        (f.rule for f in result.findings if f.effect == "refuse" and f.evidence.get("oops")), None
    )
    return Proved(
        predicted=result.verdict.value,
        verdict=load.kernel_verdict,
        errno=load.errno,
        kernel_lines=load.kernel_lines,
        line=kernel_line(load),
        disagreements=tuple(found),
        predicted_oops=oops,
        load_timeout=timeout,
    )


def prove(request: ProveRequest) -> ProveRun:
    arch = vm_arch(request.target)
    check_tools(arch, request.userland)
    image = bootable_image(request.image, arch)
    predicted = predict(request)
    accel = request.accel
    fallback = accel == "auto"
    if vm.is_foreign(arch):
        # another architecture than the host's: only emulation runs it
        if accel == "kvm":
            raise ProveError(f"--accel kvm cannot run an {arch} kernel on this host: use tcg")
        accel = "tcg"
    elif accel == "auto":
        accel = "kvm" if vm.kvm_usable() and _kvm_starts() else "tcg"
    loader = vm.kmod_version(request.userland, arch)
    run = ProveRun(request.target.release, image, loader=loader)
    loads: list[Load] = []  # one per module of the request, in its order
    remaining = list(request.modules)
    with tempfile.TemporaryDirectory(prefix="abicheck-prove-") as tmp:
        cache = request.cache_dir or tmp
        while remaining:
            try:
                done = _one_boot(request, arch, image, accel, cache, remaining, run, loads)
            except ProveError:
                # KVM that opens but does not run a guest (nested virtualisation): the
                # first boot, bounded short, falls back to emulation once
                if not (fallback and accel == "kvm"):
                    raise
                accel = "tcg"
                continue
            remaining = remaining[done:]
    for result, load in zip(predicted, loads, strict=True):
        found = tuple(disagreements(load, result))
        shown = proved_findings(request, result, _proved(load, result, found, request.load_timeout))
        run.proofs.append(Proof(result, load, found, shown))
    return run


def _kvm_starts() -> bool:
    """Whether qemu can start a KVM guest here (nested virtualisation may refuse)."""
    import subprocess

    command = [vm.QEMU, "-accel", "kvm", "-nodefaults", "-display", "none", "-S"]
    command += ["-no-user-config", "-monitor", "none", "-serial", "none"]
    try:
        proc = subprocess.run(command, capture_output=True, timeout=2)
    except subprocess.TimeoutExpired:
        return True  # still running, stopped at the first instruction: it started
    return proc.returncode == 0


def _args(request: ProveRequest, path: str) -> list[str]:
    name = vm.module_name(path)
    return [n if v is None else f"{n}={v}" for m, n, v in request.params if m in ("", name)]


def _one_boot(
    request: ProveRequest,
    arch: str,
    image: str,
    accel: str,
    cache: str,
    modules: list[str],
    run: ProveRun,
    loads: list[Load],
) -> int:
    """Boot once for ``modules``; record their loads; return how many were settled.

    The modules are loaded in order and stay loaded, as an insmod user leaves them, until
    the boot ends; only a module whose name comes again is removed (its consumers first)
    just before the next of that name, since the kernel holds one module of a name."""
    cases = [
        vm.Case(
            "prove",
            modules,
            vm.intree_deps(modules, request.modules_dir) if request.modules_dir else [],
            {m: _args(request, m) for m in modules},
            request.force,
        )
    ]
    # warnings and worse on the console: an oops or a panic reaches the host
    initramfs = vm.build_initramfs(
        cases,
        cache,
        console_level=5,
        userland=request.userland,
        arch=arch,
        load_timeout=request.load_timeout,
    )
    command = vm.qemu_command(
        image, initramfs, accel=accel, extra_append="initcall_debug", arch=arch
    )
    index = len(run.boots)
    # under KVM a healthy boot takes seconds: a first one that does not come back in
    # KVM_FIRST_BOOT is KVM failing, retried under TCG by the caller
    timeout = request.timeout
    if accel == "kvm" and request.accel == "auto" and not run.boots:
        timeout = min(timeout, KVM_FIRST_BOOT)
    text, seconds, failure = vm.boot_raw(command, timeout)
    tail = "\n".join(text.splitlines()[-40:]) if failure else ""
    run.boots.append(Boot(round(seconds, 1), accel, failure, tail))
    records = vm.with_taint_delta(vm.parse_serial(text, cases))
    settled = 0
    stuck: set[str] = set()  # names whose module rmmod could not remove in this boot
    for rec in records:
        load = _load(rec, index, text, failure)
        if rec["kind"] == "dep":
            run.deps.append(load)
            continue
        if load.name in stuck:
            break  # it met the earlier one still loaded (EEXIST): boot afresh for it
        loads.append(load)
        settled += 1
        if load.outcome in ("oops", "hang"):
            break
        if load.outcome == "loaded" and load.rmmod_rc not in (0, None):
            stuck.add(load.name)
    if settled == 0:
        # the kernel never reached the first load: it does not boot here
        why = (failure or "no load was recorded").strip().splitlines()[0]
        if vm.BEGIN not in text and index == 0:
            raise ProveError(f"{image}: the kernel did not boot under {accel}: {why}")
        loads += [_not_run(m, index, f"the kernel did not boot: {why}\n{tail}") for m in modules]
        return len(modules)
    return settled


def _load(rec: dict[str, Any], boot: int, serial: str, failure: str | None) -> Load:
    lines = list(rec["dmesg"])
    if not rec["complete"]:
        # the guest never came back from this insmod: the console holds what it said
        # (warnings and worse), and a hang's watchdog what dmesg had by then
        after = serial.split(rec["guest_path"], 1)[-1].split(vm.DONE, 1)[0]
        console = [
            vm.dmesg_line(ln) for ln in after.splitlines() if ln and not ln.startswith(vm.TAG)
        ]
        lines += [ln for ln in console if ln not in lines]
    oops = rec["oops"] or any(OOPS.search(ln) for ln in lines)
    if not rec["complete"]:
        outcome = "oops" if oops else "hang"
    elif oops:
        outcome = "oops"
    else:
        outcome = "loaded" if rec["loaded"] else "refused"
    name = rec["name"]
    rmmod = next((r for r in rec.get("rmmod", []) if r["module"] == name), None)
    return Load(
        module=rec["module"],
        name=name,
        kind=rec["kind"],
        outcome=outcome,
        rc=rec["rc"],
        errno=tuple(rec["errno"]),
        kernel_lines=tuple(lines),
        insmod_stderr=rec["insmod_stderr"],
        tainted_before=rec["tainted_before"],
        tainted_after=rec["tainted_after"],
        taints_set=rec.get("taint_delta", ""),
        module_taint=rec["module_taint"],
        init_ran=rec["init_called"] is not None,
        init_returned=rec["init_returned"],
        initstate=rec["initstate"].get(name),
        rmmod_rc=rmmod["rc"] if rmmod else None,
        rmmod_stderr=rmmod["stderr"] if rmmod else "",
        boot=boot,
        params=dict(rec["params"].get(name, {})),
    )


def _not_run(module: str, boot: int, why: str) -> Load:
    return Load(
        module, vm.module_name(module), "module", "not-run", None, (), tuple(why.splitlines()),
        "", None, None, "", None, None, None, None, None, "", boot,
    )  # fmt: skip


def logged(line: str, kernel_lines: Sequence[str]) -> bool:
    """Whether the kernel logged ``line``, raw or as util-linux dmesg escapes it; a
    predicted line may stop where the kernel goes on with per-boot values, and a
    ``<placeholder>`` in it (``<address of _printk>``) stands for a value only the
    running kernel knows."""
    lines = [*kernel_lines, *(vm.escape_nonprintable(ln) for ln in kernel_lines)]
    pattern = re.compile(
        "".join(
            ".+?" if part.startswith("<") else re.escape(part)
            for part in re.split(r"(<[^<>]+>)", line)
        )
        + "(,.*)?"
    )
    return any(pattern.fullmatch(ln) for ln in lines)


def disagreements(load: Load, result: Result) -> list[str]:
    """Where the kernel and abicheck's prediction part, one sentence each."""
    if result.verdict == Verdict.UNREADABLE:
        return [f"abicheck could not read the module; the kernel: {load.kernel_verdict}"]
    refusal = next((f for f in result.findings if f.effect == "refuse"), None)
    if load.outcome == "oops" and refusal is not None and refusal.evidence.get("oops"):
        # the prediction was that the load oopses (arm64 struct module drift): agreed when
        # the kernel's first line of it is the one predicted
        says = (refusal.kernel_says or "").splitlines()
        if says and not logged(says[0], load.kernel_lines):
            return [f"{refusal.rule} predicts the oops line {says[0]!r}; the kernel did not log it"]
        return []
    if load.outcome in ("oops", "hang", "not-run"):
        return [f"abicheck predicts {result.verdict}, the kernel: {load.outcome}"]
    refusal = next((f for f in result.findings if f.effect == "refuse"), None)
    predicted_refused = result.verdict == Verdict.REFUSED
    loaded = load.outcome == "loaded"
    if not predicted_refused and not loaded and _possible_refusal(load, result):
        return []  # a warning said the load may be refused, with this line (RL003)
    if predicted_refused == loaded:
        said = f" ({refusal.rule}: {refusal.kernel_says!r})" if refusal else ""
        return [f"abicheck predicts {result.verdict}{said}, the kernel {load.outcome} it"]
    out = []
    if not loaded and refusal is not None:
        says = (refusal.kernel_says or "").splitlines()
        if says and not logged(says[0], load.kernel_lines):
            out.append(f"{refusal.rule} predicts the line {says[0]!r}; the kernel did not log it")
        if refusal.errno and load.errno and refusal.errno not in load.errno:
            out.append(
                f"{refusal.rule} predicts {refusal.errno}, insmod says {'/'.join(load.errno)}"
            )
    if loaded:
        predicted = {t.letter for t in result.taints}
        if predicted != set(load.module_taint or ""):
            out.append(
                f"abicheck predicts taints {''.join(sorted(predicted)) or 'none'}, "
                f"/sys/module/{load.name}/taint is {load.module_taint or 'empty'}"
            )
    return out


def _possible_refusal(load: Load, result: Result) -> bool:
    """A warning whose rule names the refusal it may lead to (rules/RL003.toml: errno and
    kernel line), and the kernel refused with both: what the files could not decide, the
    running kernel did."""
    for f in result.findings:
        rule = ruledata.get_rule(f.rule)
        says = (f.kernel_says or "").splitlines()
        if f.effect != "warn" or rule is None or not rule.errno or not says:
            continue
        if rule.errno in (load.errno or ()) and logged(says[0], load.kernel_lines):
            return True
    return False
