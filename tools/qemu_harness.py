#!/usr/bin/env python3
"""The real kernel as referee: boot a Debian kernel under qemu and insmod modules into it.

    python tools/qemu_harness.py run --role 6.1-a -o results.json            # standard cases
    python tools/qemu_harness.py run --role 6.12 --case A.ko --case P.ko,C.ko -o out.json
    python tools/qemu_harness.py all -o results.json                          # every role
    python tools/qemu_harness.py cases --role 6.1-a                           # list the cases

One boot per kernel runs every case. The initramfs holds a static busybox, kmod's own
`insmod`/`rmmod` (the host's /usr/bin/kmod with the libraries `ldd` names, because kmod
is the loader abicheck's predictions assume), the modules and an /init that, per module,
records what the kernel said: insmod's exit code and stderr, the new dmesg lines, the
global taint mask before and after, and /sys/module/NAME/taint. It prints all that as
marked lines on the serial console and powers off. Nothing from the modules or the
kernel packages runs on the host: the host only reads their .modinfo.

The test data comes from tools/testdata.py (cache: $ABICHECK_TESTDATA, else
<repo>/.cache/testdata); built initramfs images are cached under its qemu/ folder.
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from elftools.elf.elffile import ELFFile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
KMOD = "/usr/bin/kmod"
DEFAULT_TIMEOUT = 900.0

# Every line the guest means for the host starts with this; anything else on the serial
# line (a stray kernel message) is ignored.
TAG = "@@ABICHECK@@"
BEGIN = f"{TAG} begin"
DONE = f"{TAG} done"

# busybox applets /init uses (insmod, rmmod and lsmod are kmod's, not busybox's)
APPLETS = (
    "sh",
    "cat",
    "dmesg",
    "echo",
    "grep",
    "ls",
    "mkdir",
    "mount",
    "poweroff",
    "rm",
    "sed",
    "sleep",
    "sync",
    "tr",
    "wc",
)
KMOD_LINKS = ("insmod", "rmmod", "lsmod", "modinfo")

# Per architecture (the manifest's kernels[role]["arch"]): the emulator, its machine, the
# serial console the kernel writes to. amd64 takes the host's busybox and kmod; a foreign
# architecture takes Debian's own from tools/testdata.py's userland-<arch> folder.
ARCHES: dict[str, dict] = {
    "amd64": {"qemu": QEMU, "machine": [], "console": "ttyS0"},
    # -M virt: PL011 UART (ttyAMA0), no firmware needed for -kernel; -cpu max under TCG,
    # with the cheaper pointer-authentication algorithm (a boot several times faster)
    "arm64": {
        "qemu": "qemu-system-aarch64",
        "machine": ["-M", "virt", "-cpu", "max,pauth-impdef=on"],
        "console": "ttyAMA0",
    },
}


@dataclass
class Case:
    """Modules insmod'ed in order into one kernel; `deps` (in-tree) go first."""

    name: str
    modules: list[str]
    deps: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- .modinfo


def read_module_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    # by magic, as kmod recognises them
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:6] == b"\xfd7zXZ\x00":
        return lzma.decompress(data)
    if data[:4] == b"\x28\xb5\x2f\xfd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(data)
    return data


def modinfo(path: str) -> dict[str, list[str]]:
    """The .modinfo key=value pairs; empty when the file is not a readable module."""
    try:
        elf = ELFFile(io.BytesIO(read_module_bytes(path)))
        sec = elf.get_section_by_name(".modinfo")
        raw = sec.data() if sec is not None else b""
    except Exception:
        # a deliberately broken test module (truncated, foreign) still gets loaded
        return {}
    info: dict[str, list[str]] = {}
    for item in raw.split(b"\0"):
        key, sep, value = item.decode("utf-8", "replace").partition("=")
        if sep:
            info.setdefault(key, []).append(value)
    return info


def file_stem(path: str) -> str:
    base = os.path.basename(path)
    return re.sub(r"\.ko(\.(gz|xz|zst))?$", "", base)


def module_name(path: str) -> str:
    """The name the kernel will know: .modinfo name= (modpost writes it), else the stem."""
    names = modinfo(path).get("name")
    return names[0] if names else file_stem(path).replace("-", "_")


# --------------------------------------------------------------------------- in-tree deps


@functools.lru_cache(maxsize=8)
def index_tree(modules_dir: str) -> dict[str, str]:
    """Module name (underscored, as the kernel compares them) -> file, for an extracted tree."""
    index: dict[str, str] = {}
    for root, _dirs, files in os.walk(os.path.join(modules_dir, "kernel")):
        for f in files:
            if re.search(r"\.ko(\.(gz|xz|zst))?$", f):
                index[file_stem(f).replace("-", "_")] = os.path.join(root, f)
    return index


def intree_deps(modules: Sequence[str], modules_dir: str) -> list[str]:
    """In-tree modules the given ones need, dependencies first, as modprobe would load them.

    Read from each module's depends= (modpost writes what depmod later derives from the
    symbols), so the cache's extracted tree needs no modules.dep and is never written to.
    Names the tree does not hold (the run's own modules, built-ins) are left out.
    """
    index = index_tree(modules_dir)
    own = {module_name(m) for m in modules}
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        key = name.replace("-", "_")
        if key in seen or key in own or key not in index:
            return
        seen.add(key)
        for dep in depends_of(index[key]):
            visit(dep)
        order.append(index[key])

    for m in modules:
        for dep in depends_of(m):
            visit(dep)
    return order


def depends_of(path: str) -> list[str]:
    return [d for v in modinfo(path).get("depends", []) for d in v.split(",") if d]


# --------------------------------------------------------------------------- cpio newc


class Cpio:
    """A newc archive built in memory, so device nodes need no root and output is stable."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1
        self.dirs: set[str] = set()

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)):
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1]]
        fields += [len(name) + 1, 0]
        self.ino += 1
        head = b"070701" + b"".join(b"%08X" % v for v in fields)
        self.buf.write(head + name.encode() + b"\0")
        self._pad()
        self.buf.write(data)
        self._pad()

    def _pad(self) -> None:
        self.buf.write(b"\0" * (-self.buf.tell() % 4))

    def mkdir(self, path: str) -> None:
        path = path.strip("/")
        if not path or path in self.dirs:
            return
        self.mkdir(os.path.dirname(path))
        self.dirs.add(path)
        self._entry(path, stat.S_IFDIR | 0o755)

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self.mkdir(os.path.dirname(path.strip("/")))
        self._entry(path.strip("/"), stat.S_IFREG | mode, data)

    def symlink(self, path: str, target: str) -> None:
        self.mkdir(os.path.dirname(path.strip("/")))
        self._entry(path.strip("/"), stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, path: str, major: int, minor: int) -> None:
        self.mkdir(os.path.dirname(path.strip("/")))
        self._entry(path.strip("/"), stat.S_IFCHR | 0o600, rdev=(major, minor))

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


# --------------------------------------------------------------------------- initramfs


def shared_libraries(binary: str) -> list[str]:
    """Absolute paths `ldd` names for a host binary (the loader too)."""
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        m = re.search(r"(/\S+)\s+\(0x", line)
        if m:
            libs.append(m.group(1))
    return libs


def elf_needs(data: bytes) -> tuple[str | None, list[str]]:
    """PT_INTERP and the DT_NEEDED names of an ELF file (ldd cannot run a foreign binary)."""
    elf = ELFFile(io.BytesIO(data))
    interp = next(
        (seg.get_interp_name() for seg in elf.iter_segments() if seg.header.p_type == "PT_INTERP"),
        None,
    )
    dyn = elf.get_section_by_name(".dynamic")
    needed = [t.needed for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"] if dyn else []
    return interp, needed


def foreign_userland(root: str) -> tuple[str, str, list[tuple[str, str]]]:
    """busybox, kmod and (guest path, host file) for kmod's libraries and loader, from an
    extracted Debian userland (busybox-static, kmod, libkmod2, libc6, ... of that arch).

    kmod's insmod, not busybox's, because kmod is the loader abicheck's predictions assume:
    the two differ in what they print and in how they pass a compressed module."""
    busybox = os.path.join(root, "bin", "busybox")
    kmod = os.path.join(root, "bin", "kmod")
    libdirs = [
        os.path.join(root, d)
        for d in ("lib/aarch64-linux-gnu", "usr/lib/aarch64-linux-gnu", "lib", "usr/lib")
    ]
    files: dict[str, str] = {}
    todo = [kmod]
    while todo:
        interp, needed = elf_needs(read_bytes(todo.pop()))
        if interp and interp not in files:
            files[interp] = os.path.realpath(os.path.join(root, interp.lstrip("/")))
        for name in needed:
            host = next(
                (os.path.join(d, name) for d in libdirs if os.path.exists(os.path.join(d, name))),
                None,
            )
            if host is None:
                raise FileNotFoundError(f"{name} (needed by kmod) not in {root}")
            guest = "/lib/aarch64-linux-gnu/" + name
            if guest not in files:
                files[guest] = os.path.realpath(host)
                todo.append(host)
    return busybox, kmod, sorted(files.items())


INIT_HEAD = r"""#!/bin/sh
# Generated by tools/qemu_harness.py: load each case's modules, report, power off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# only this script's lines on the console; the kernel's go to dmesg, which is recorded
echo 1 > /proc/sys/kernel/printk
out() { echo "@@ABICHECK@@ $*"; }
# every line of a file, tagged (sed keeps lines that contain anything at all)
outfile() { sed "s/^/@@ABICHECK@@ $1 $2 /" "$3"; }

# load: ID KIND FILE -- insmod one file and report what the kernel did
load() {
    id=$1
    dmesg -c > /dev/null
    ls /sys/module > /tmp/before
    tb=$(cat /proc/sys/kernel/tainted)
    /sbin/insmod "$3" > /tmp/out 2> /tmp/err
    rc=$?
    ta=$(cat /proc/sys/kernel/tainted)
    dmesg -r -c > /tmp/dmesg
    ls /sys/module > /tmp/after
    out "$id" start "$2" "$3"
    out "$id" rc "$rc"
    out "$id" tainted_before "$tb"
    out "$id" tainted_after "$ta"
    for m in $(grep -vxF -f /tmp/before /tmp/after); do
        out "$id" new "$m" "$(cat /sys/module/$m/taint 2>/dev/null)"
        echo "$m" >> /tmp/loaded
    done
    outfile "$id" stderr /tmp/err
    outfile "$id" stdout /tmp/out
    outfile "$id" dmesg /tmp/dmesg
    out "$id" end
}

# unload: rmmod this case's modules, last loaded first, so names and exports do not
# leak into the next case
unload() {
    [ -f /tmp/loaded ] || return 0
    for m in $(sed '1!G;h;$!d' /tmp/loaded); do
        /sbin/rmmod "$m" > /dev/null 2> /tmp/rmerr
        out "$1" rmmod "$m" "$?" "$(tr '\n' ' ' < /tmp/rmerr)"
    done
    rm -f /tmp/loaded
}

out begin "$(cat /proc/sys/kernel/osrelease)" "$(cat /proc/sys/kernel/tainted)"
"""

INIT_TAIL = r"""
out done "$(cat /proc/sys/kernel/tainted)"
sync
# let the UART drain before the machine goes
sleep 1
poweroff -f
"""


def guest_paths(cases: Sequence[Case]) -> list[list[tuple[str, str, str]]]:
    """Per case: (kind, host file, guest file); one folder per case keeps equal names apart."""
    plan = []
    for i, case in enumerate(cases):
        items = [("dep", d, f"/m/{i:02d}/dep/{os.path.basename(d)}") for d in case.deps]
        items += [
            ("module", m, f"/m/{i:02d}/{j:02d}/{os.path.basename(m)}")
            for j, m in enumerate(case.modules)
        ]
        plan.append(items)
    return plan


def init_script(cases: Sequence[Case]) -> str:
    body = []
    for i, items in enumerate(guest_paths(cases)):
        body.append(f"# case {i}: {cases[i].name}")
        for j, (kind, _host, guest) in enumerate(items):
            body.append(f"load {i}.{j} {kind} {shlex.quote(guest)}")
        body.append(f"unload {i}")
    return INIT_HEAD + "\n".join(body) + "\n" + INIT_TAIL


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def initramfs_bytes(cases: Sequence[Case], userland: str | None = None) -> bytes:
    """`userland`: an extracted foreign-architecture Debian userland; None: the host's."""
    cpio = Cpio()
    for d in ("dev", "proc", "sys", "tmp", "bin", "sbin"):
        cpio.mkdir(d)
    # the kernel opens /dev/console for init's stdio before devtmpfs is mounted
    cpio.chardev("dev/console", 5, 1)
    if userland is None:
        busybox, kmod = BUSYBOX, KMOD
        # copied under the name the binary asks for; usrmerge symlinks are flattened
        libs = [(lib, os.path.realpath(lib)) for lib in shared_libraries(KMOD)]
    else:
        busybox, kmod, libs = foreign_userland(userland)
    cpio.file("bin/busybox", read_bytes(busybox), 0o755)
    for applet in APPLETS:
        cpio.symlink(f"bin/{applet}", "busybox")
    cpio.file("bin/kmod", read_bytes(kmod), 0o755)
    for name in KMOD_LINKS:
        cpio.symlink(f"sbin/{name}", "../bin/kmod")
    for guest_lib, host_lib in libs:
        cpio.file(guest_lib, read_bytes(host_lib), 0o755)
    for items in guest_paths(cases):
        for _kind, host, guest in items:
            cpio.file(guest, read_bytes(host))
    cpio.file("init", init_script(cases).encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


def build_initramfs(cases: Sequence[Case], cache: str = CACHE, userland: str | None = None) -> str:
    """The initramfs for these cases, built once and kept under <cache>/qemu/."""
    data = initramfs_bytes(cases, userland)
    digest = hashlib.sha256(data).hexdigest()[:16]
    out_dir = os.path.join(cache, "qemu")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"initramfs-{digest}.cpio.gz")
    if not os.path.exists(path):
        fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- boot


class BootError(RuntimeError):
    pass


def qemu_command(
    vmlinuz: str, initramfs: str, memory: str = "512M", arch: str = "amd64"
) -> list[str]:
    machine = ARCHES[arch]
    append = f"console={machine['console']} loglevel=1 panic=-1 rdinit=/init"
    return [
        machine["qemu"],
        *machine["machine"],
        "-accel",
        "tcg",
        "-m",
        memory,
        "-smp",
        "1",
        # no default NIC, disks or VGA: fewer devices to probe under emulation
        "-nodefaults",
        "-no-user-config",
        "-display",
        "none",
        "-serial",
        "stdio",
        "-no-reboot",
        "-kernel",
        vmlinuz,
        "-initrd",
        initramfs,
        "-append",
        append,
    ]


def boot(
    vmlinuz: str,
    initramfs: str,
    timeout: float = DEFAULT_TIMEOUT,
    log_path: str | None = None,
    arch: str = "amd64",
) -> tuple[str, float]:
    """Boot, return the serial log and the seconds it took; the guest powers itself off."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            qemu_command(vmlinuz, initramfs, arch=arch),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
        )
        serial, failed = proc.stdout, proc.returncode != 0
        reason = f"qemu exited {proc.returncode}: {proc.stderr.decode(errors='replace')}"
    except subprocess.TimeoutExpired as e:
        serial, failed = e.stdout or b"", True
        reason = f"timed out after {timeout:.0f}s"
    seconds = time.monotonic() - start
    text = serial.decode("utf-8", "replace").replace("\r", "")
    if log_path:
        with open(log_path, "w") as f:
            f.write(text)
    if failed or DONE not in text:
        tail = "\n".join(text.splitlines()[-30:])
        raise BootError(f"boot of {vmlinuz} failed ({reason}); serial log tail:\n{tail}")
    return text, seconds


# --------------------------------------------------------------------------- parse

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
LEVEL = re.compile(r"^<(\d+)>")


def dmesg_line(raw: str) -> str:
    """`dmesg -r` output without the <level> and [timestamp] prefixes."""
    return TIMESTAMP.sub("", LEVEL.sub("", raw))


def parse_serial(text: str, cases: Sequence[Case]) -> list[dict]:
    """One record per insmod, in load order, from the tagged lines of the serial log."""
    records: dict[str, dict] = {}
    rmmods: dict[int, list[dict]] = {}
    plan = guest_paths(cases)
    for line in text.splitlines():
        if not line.startswith(TAG + " "):
            continue
        parts = line[len(TAG) + 1 :].split(" ", 2)
        if len(parts) < 2 or parts[0] in ("begin", "done"):
            continue
        ident, key = parts[0], parts[1]
        rest = parts[2] if len(parts) > 2 else ""
        if key == "rmmod":
            name, rc, err = [*rest.split(" ", 2), "", ""][:3]
            rmmods.setdefault(int(ident), []).append(
                {"module": name, "rc": int(rc), "stderr": err.strip()}
            )
            continue
        rec = records.setdefault(ident, new_record(ident, cases, plan))
        add_field(rec, key, rest)
    out = []
    for ident in sorted(records, key=lambda s: tuple(int(x) for x in s.split("."))):
        rec = records[ident]
        rec["loaded"] = rec["rc"] == 0
        rec["module_taint"] = taint_of(rec)
        rec["errno"] = [] if rec["loaded"] else insmod_errno(rec["insmod_stderr"])
        rec["insmod_stderr"] = "\n".join(rec["insmod_stderr"])
        rec["insmod_stdout"] = "\n".join(rec["insmod_stdout"])
        rec["rmmod"] = [r for r in rmmods.get(rec["case_index"], []) if r["module"] in rec["new"]]
        out.append(rec)
    return out


def new_record(ident: str, cases: Sequence[Case], plan: list) -> dict:
    ci, mi = (int(x) for x in ident.split("."))
    kind, host, guest = plan[ci][mi]
    return {
        "case": cases[ci].name,
        "case_index": ci,
        "kind": kind,
        "module": host,
        "name": module_name(host),
        "guest_path": guest,
        "rc": None,
        "insmod_stderr": [],
        "insmod_stdout": [],
        "dmesg": [],
        "dmesg_levels": [],
        "new": {},
        "tainted_before": None,
        "tainted_after": None,
        "complete": False,
    }


def add_field(rec: dict, key: str, value: str) -> None:
    if key == "rc":
        rec["rc"] = int(value)
    elif key in ("tainted_before", "tainted_after"):
        rec[key] = int(value)
    elif key == "new":
        name, _, taint = value.partition(" ")
        rec["new"][name] = taint
    elif key == "stderr":
        rec["insmod_stderr"].append(value)
    elif key == "stdout":
        rec["insmod_stdout"].append(value)
    elif key == "dmesg":
        m = LEVEL.match(value)
        rec["dmesg_levels"].append(int(m.group(1)) & 7 if m else None)
        rec["dmesg"].append(dmesg_line(value))
    elif key == "end":
        rec["complete"] = True


# kmod's mod_strerror(): the words insmod prints for the kernel's errno. ENOENT and ESRCH
# share theirs; any other errno is printed with strerror().
INSMOD_ERRORS = {
    "Invalid module format": ["ENOEXEC"],
    "Unknown symbol in module": ["ENOENT", "ESRCH"],
    "Invalid parameters": ["EINVAL"],
    "File exists": ["EEXIST"],
    "Operation not permitted": ["EPERM"],
    "Key was rejected by service": ["EKEYREJECTED"],
    "Bad message": ["EBADMSG"],
    "Required key not available": ["ENOKEY"],
    "Exec format error": ["ENOEXEC"],
    "No such file or directory": ["ENOENT"],
    "Cannot allocate memory": ["ENOMEM"],
    "Text file busy": ["ETXTBSY"],
}


def insmod_errno(stderr: Sequence[str]) -> list[str]:
    """The errno names insmod's `could not insert module FILE: WHY` stands for."""
    for line in stderr:
        why = line.rpartition(": ")[2].strip()
        if "could not insert module" in line and why in INSMOD_ERRORS:
            return INSMOD_ERRORS[why]
    return []


def escape_nonprintable(line: str) -> str:
    """A dmesg line as util-linux dmesg shows it: control bytes as \\xNN (busybox prints raw)."""
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in line)


def taint_of(rec: dict) -> str | None:
    """/sys/module/NAME/taint of the module this insmod added (None when none was added)."""
    if not rec["new"]:
        return None
    if rec["name"] in rec["new"]:
        return rec["new"][rec["name"]]
    return next(iter(rec["new"].values()))


# Taint bits as kernel/panic.c numbers them, for naming a refused module's taint delta.
TAINT_LETTERS = "PFSRMBUDAWCIOELKXTN"


def taint_letters(mask: int) -> str:
    return "".join(letter for bit, letter in enumerate(TAINT_LETTERS) if mask >> bit & 1)


# --------------------------------------------------------------------------- run


def run_cases(
    vmlinuz: str,
    cases: Sequence[Case],
    timeout: float = DEFAULT_TIMEOUT,
    cache: str = CACHE,
    log_path: str | None = None,
    arch: str = "amd64",
    userland: str | None = None,
) -> dict:
    missing = [p for c in cases for p in (*c.deps, *c.modules) if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"modules not found: {missing}")
    initramfs = build_initramfs(cases, cache, userland)
    text, seconds = boot(vmlinuz, initramfs, timeout, log_path, arch)
    results = parse_serial(text, cases)
    for rec in results:
        delta = (rec["tainted_after"] or 0) & ~(rec["tainted_before"] or 0)
        rec["taint_delta"] = taint_letters(delta)
    release = next(
        (ln.split(" ", 3)[2] for ln in text.splitlines() if ln.startswith(BEGIN + " ")), None
    )
    return {
        "vmlinuz": vmlinuz,
        "release": release,
        "initramfs": initramfs,
        "boot_seconds": round(seconds, 1),
        "arch": arch,
        "loader": kmod_version(userland),
        "results": results,
    }


def kmod_version(userland: str | None = None) -> str:
    if userland is not None:  # a foreign kmod cannot run here: its Debian package version
        stamps = os.listdir(os.path.join(userland, ".extracted"))
        return next(
            (f"kmod {f.split('_')[1]} (Debian, arm64)" for f in stamps if f.startswith("kmod_")),
            "kmod",
        )
    out = subprocess.run([KMOD, "--version"], capture_output=True, text=True, check=False)
    return " ".join(out.stdout.split())


# --------------------------------------------------------------------------- standard cases

# (case name, [(built role, file)], [in-tree module path under kernel/]) per kernel role.
# Every case is independent: whatever it loaded is removed before the next one.
COMMON_BUILT = [
    "hello.ko",
    "prop_license.ko",
    "gplonly_user.ko",
    "gplonly_prop.ko",
    "ns_import.ko",
    "ns_noimport.ko",
    "unknown_sym.ko",
    "dep_provider.ko",
    "dep_consumer.ko",
    "dep_consumer_nosyms.ko",
    "hello_noversions.ko",
    "hello_renamed_version.ko",
    "hello_truncated.ko",
    "hello_arm64machine.ko",
    "hello.ko.xz",
    "hello.ko.gz",
    "hello.ko.zst",
]
ONLY_61A = [
    "common_sym.ko",
    "wx_section.ko",
    "modinfo_flags.ko",
    "livepatch_flag.ko",
    "hello_noretpoline.ko",
]
UMS_ALAUDA = "drivers/usb/storage/ums-alauda"
PAIRS = [("dep_provider.ko", "dep_consumer.ko"), ("dep_provider.ko", "dep_consumer_nosyms.ko")]

CaseSpec = tuple[str, list[tuple[str, str]], list[str]]


# arm64 roles (tools/testdata.py BUILDS_ARM64): what was cross-built, and hello.ko from
# another ABI/arch as the foreign cases
ARM64_BUILT = [
    "hello.ko",
    "unknown_sym.ko",
    "gplonly_user.ko",
    "gplonly_prop.ko",
    "ns_noimport.ko",
    "params_mod.ko",
]
ARM64_FOREIGN = {
    "6.1-a-arm64": ["6.1-b-arm64", "6.12-arm64", "6.1-a"],
    "6.1-b-arm64": ["6.1-a-arm64"],
    "6.12-arm64": ["6.1-a-arm64"],
}


def arm64_specs(role: str) -> list[CaseSpec]:
    specs: list[CaseSpec] = [(n, [(role, n)], []) for n in ARM64_BUILT]
    specs += [(f"hello.ko@{b}", [(b, "hello.ko")], []) for b in ARM64_FOREIGN.get(role, [])]
    return specs


def standard_specs(role: str) -> list[CaseSpec]:
    """The cases the tests run on one kernel role, with no paths yet (for test ids)."""
    if role.endswith("-arm64"):
        return arm64_specs(role)
    specs: list[CaseSpec] = []
    own = COMMON_BUILT + (ONLY_61A if role == "6.1-a" else [])
    if role in ("6.1-a", "6.12"):
        specs += [(n, [(role, n)], []) for n in own]
        specs += [(f"{p}+{c}", [(role, p), (role, c)], []) for p, c in PAIRS]
        specs += [(f"intree:{UMS_ALAUDA}", [], [UMS_ALAUDA])]
    foreign = {
        "6.1-a": ["6.1-b", "6.12", "6.1-a-rt", "6.1-a-cloud"],
        "6.1-b": ["6.1-a", "6.1-b"],
        "6.12": ["6.1-a"],
    }[role]
    specs += [(f"hello.ko@{b}", [(b, "hello.ko")], []) for b in foreign]
    return specs


def resolve_spec(spec: CaseSpec, manifest: dict, role: str) -> Case:
    name, built, intree = spec
    modules = [os.path.join(manifest["built"][b], f) for b, f in built]
    tree = manifest["kernels"][role]["modules"]
    index = index_tree(tree)
    for rel in intree:
        modules.append(index[file_stem(rel).replace("-", "_")])
    return Case(name, modules, intree_deps(modules, tree))


def spec_available(spec: CaseSpec, manifest: dict, role: str) -> bool:
    """Whether the test data holds every module the case needs (a role may be unbuilt)."""
    _name, built, _intree = spec
    kernel = manifest["kernels"].get(role, {})
    if not kernel.get("vmlinuz") or not kernel.get("modules"):
        return False
    return all(
        b in manifest.get("built", {}) and os.path.exists(os.path.join(manifest["built"][b], f))
        for b, f in built
    )


def standard_cases(manifest: dict, role: str) -> list[Case]:
    """The standard cases of a role whose modules exist."""
    specs = [s for s in standard_specs(role) if spec_available(s, manifest, role)]
    return [resolve_spec(s, manifest, role) for s in specs]


def load_manifest(cache: str = CACHE) -> dict:
    with open(os.path.join(cache, "manifest.json")) as f:
        return json.load(f)


def missing_tools(arch: str = "amd64") -> list[str]:
    if arch != "amd64":
        return [t for t in (ARCHES[arch]["qemu"],) if shutil.which(t) is None]
    return [t for t in (QEMU, BUSYBOX, KMOD, "ldd") if shutil.which(t) is None]


# --------------------------------------------------------------------------- CLI


def summary_line(rec: dict) -> str:
    verdict = "loaded" if rec["loaded"] else f"refused rc={rec['rc']}"
    taint = rec["module_taint"] if rec["loaded"] else f"delta={rec['taint_delta'] or '-'}"
    first = next((ln for ln in rec["dmesg"] if ln), "")
    return f"  {rec['case']:<38} {rec['kind']:<6} {verdict:<16} {taint:<10} {first[:90]}"


def run_role(
    manifest: dict, role: str, extra: Iterable[str], standard: bool, timeout: float, log_dir: str
) -> dict:
    kernel = manifest["kernels"][role]
    cases = standard_cases(manifest, role) if standard else []
    for spec in extra:
        modules = [os.path.abspath(p) for p in spec.split(",")]
        cases.append(Case(spec, modules, intree_deps(modules, kernel["modules"])))
    log_path = os.path.join(log_dir, f"serial-{role}.log")
    print(f"{role}: booting {kernel['release']} with {len(cases)} cases", file=sys.stderr)
    arch = kernel.get("arch", "amd64")
    userland = manifest.get("userland", {}).get(arch) if arch != "amd64" else None
    doc = run_cases(
        kernel.get("image", kernel["vmlinuz"]),
        cases,
        timeout,
        log_path=log_path,
        arch=arch,
        userland=userland,
    )
    doc["role"] = role
    print(f"{role}: boot took {doc['boot_seconds']:.1f}s (serial log {log_path})", file=sys.stderr)
    for rec in doc["results"]:
        print(summary_line(rec), file=sys.stderr)
    return doc


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    run_p = sub.add_parser("run", help="boot one kernel role with its cases")
    run_p.add_argument("--role", required=True)
    run_p.add_argument(
        "--case",
        action="append",
        default=[],
        help="comma-separated modules loaded in order (in-tree deps found by depends=)",
    )
    run_p.add_argument("--no-standard", action="store_true", help="only the --case cases")
    all_p = sub.add_parser("all", help="boot every role that has a kernel image")
    cases_p = sub.add_parser("cases", help="list the standard cases of a role")
    cases_p.add_argument("--role", required=True)
    for p in (run_p, all_p):
        p.add_argument("-o", "--output", required=True, help="results JSON")
        p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="per boot, seconds")
    args = ap.parse_args(argv)

    manifest = load_manifest()
    if args.cmd == "cases":
        for case in standard_cases(manifest, args.role):
            print(f"{case.name}: deps={case.deps} modules={case.modules}")
        return 0
    arch = manifest["kernels"][args.role].get("arch", "amd64") if args.cmd == "run" else "amd64"
    if missing_tools(arch):
        print(f"missing: {', '.join(missing_tools(arch))}", file=sys.stderr)
        return 2
    log_dir = os.path.dirname(os.path.abspath(args.output))
    if args.cmd == "run":
        docs = [
            run_role(manifest, args.role, args.case, not args.no_standard, args.timeout, log_dir)
        ]
    else:
        roles = [r for r, k in manifest["kernels"].items() if k.get("vmlinuz")]
        docs = [run_role(manifest, r, [], True, args.timeout, log_dir) for r in roles]
    with open(args.output, "w") as f:
        json.dump({"runs": docs}, f, indent=1)
    for d in docs:
        print(f"boot {d['role']} ({d['release']}): {d['boot_seconds']:.1f}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
