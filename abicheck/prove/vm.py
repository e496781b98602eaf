"""Boot a kernel under qemu and insmod modules into it: the initramfs, the qemu command
and the serial protocol of ``abicheck prove``.

The initramfs holds a static busybox, kmod's own ``insmod``/``rmmod`` (the host's
/usr/bin/kmod with the libraries ``ldd`` names, because kmod is the loader abicheck's
predictions assume), the modules and an /init that, per module, records what the kernel
said: insmod's exit code and stderr, the new dmesg lines, the global taint mask before
and after, /sys/module/NAME/taint, initstate and parameters. It prints all that as tagged
lines on the serial console and powers off. An insmod still running after the load
timeout is a hang: a watchdog reports what the kernel shows at that moment and powers off
(insmod sleeps in the kernel and cannot be killed). Nothing from the modules or the
kernel packages runs on the host: the host only reads their .modinfo.

A kernel of another architecture than the host's (ARCHES: arm64 on an amd64 host) boots
under that architecture's emulator with Debian's busybox-static and kmod of the same
architecture, taken from an extracted "userland" folder (:func:`foreign_userland`).
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import lzma
import os
import platform
import re
import shlex
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from elftools.elf.elffile import ELFFile

QEMU = "qemu-system-x86_64"
BUSYBOX = "/bin/busybox"
KMOD = "/usr/bin/kmod"

# Per architecture, keyed by abicheck's names (KernelTarget.arch, rules/arch/*.toml): the
# emulator and the Debian package that has it, its machine, the serial console the kernel
# writes to, Debian's name for the architecture and its multiarch library folder. The
# host's own architecture takes the host's busybox and kmod; a foreign one takes Debian's
# from an extracted userland (foreign_userland).
ARCHES: dict[str, dict[str, Any]] = {
    "x86_64": {
        "qemu": QEMU,
        "package": "qemu-system-x86",
        "machine": [],
        "console": "ttyS0",
        "debian": "amd64",
        "triplet": "x86_64-linux-gnu",
    },
    # -M virt: PL011 UART (ttyAMA0), no firmware needed for -kernel (an uncompressed or
    # gzipped Image); -cpu max under TCG, with the cheaper pointer-authentication
    # algorithm (a boot several times faster)
    "aarch64": {
        "qemu": "qemu-system-aarch64",
        "package": "qemu-system-arm",
        "machine": ["-M", "virt", "-cpu", "max,pauth-impdef=on"],
        "console": "ttyAMA0",
        "debian": "arm64",
        "triplet": "aarch64-linux-gnu",
    },
}
# the one mapping from Debian's (and tools/testdata.py's manifest's) names to abicheck's
DEBIAN_ARCH = {spec["debian"]: name for name, spec in ARCHES.items()}

# the Debian package each host tool comes from, for the error that names it
PACKAGES = {
    **{spec["qemu"]: spec["package"] for spec in ARCHES.values()},
    BUSYBOX: "busybox-static",
    KMOD: "kmod",
    "ldd": "libc-bin",
}
# what a foreign userland folder must hold: these packages (and kmod's libraries, named
# by its DT_NEEDED) of the target's architecture, each extracted with dpkg-deb -x DIR
USERLAND_PACKAGES = ("busybox-static", "kmod")


def arch_name(arch: str) -> str:
    """abicheck's name for an architecture given in either naming ("arm64" -> "aarch64")."""
    name = DEBIAN_ARCH.get(arch, arch)
    if name not in ARCHES:
        raise ValueError(f"no VM for architecture {arch!r} (known: {', '.join(ARCHES)})")
    return name


def host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def is_foreign(arch: str) -> bool:
    return arch_name(arch) != host_arch()


def userland_hint(arch: str) -> str:
    """One line: what a foreign-architecture VM needs, as Debian packages."""
    spec = ARCHES[arch_name(arch)]
    pkgs = " ".join(f"{p}:{spec['debian']}" for p in USERLAND_PACKAGES)
    return (
        f"an {arch_name(arch)} kernel boots with {spec['package']} and an {spec['debian']} "
        f"userland: `apt-get download {pkgs}` and kmod's libraries, `dpkg-deb -x` each "
        "into one DIR, and give it with --userland DIR"
    )


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


@dataclass
class Case:
    """Modules insmod'ed in order into one kernel; `deps` (in-tree) go first. They stay
    loaded until the case ends, except that a module whose name comes again is rmmod'ed
    (its consumers first) just before the next one of that name.

    ``args`` holds, per module file, the insmod arguments after the file (NAME=VALUE
    parameters); ``force`` loads with ``insmod -f``.
    """

    name: str
    modules: list[str]
    deps: list[str] = field(default_factory=list)
    args: dict[str, list[str]] = field(default_factory=dict)
    force: bool = False


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

        out: bytes = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        return out
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

    def _entry(
        self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)
    ) -> None:
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
    from elftools.elf.dynamic import DynamicSection
    from elftools.elf.segments import InterpSegment

    elf = ELFFile(io.BytesIO(data))
    interp = next(
        (seg.get_interp_name() for seg in elf.iter_segments() if isinstance(seg, InterpSegment)),
        None,
    )
    dyn = elf.get_section_by_name(".dynamic")
    needed = (
        [str(t.needed) for t in dyn.iter_tags() if t.entry.d_tag == "DT_NEEDED"]  # type: ignore[attr-defined]
        if isinstance(dyn, DynamicSection)
        else []
    )
    return interp, needed


def foreign_userland(root: str, arch: str = "aarch64") -> tuple[str, str, list[tuple[str, str]]]:
    """busybox, kmod and (guest path, host file) for kmod's libraries and loader, from an
    extracted Debian userland (busybox-static, kmod, libkmod2, libc6, ... of that arch).

    kmod's insmod, not busybox's, because kmod is the loader abicheck's predictions assume:
    the two differ in what they print and in how they pass a compressed module."""
    triplet = ARCHES[arch_name(arch)]["triplet"]
    busybox = os.path.join(root, "bin", "busybox")
    kmod = os.path.join(root, "bin", "kmod")
    for tool in (busybox, kmod):
        if not os.path.isfile(tool):
            raise FileNotFoundError(f"{tool} not found: {userland_hint(arch)}")
    libdirs = [
        os.path.join(root, d) for d in (f"lib/{triplet}", f"usr/lib/{triplet}", "lib", "usr/lib")
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
            guest = f"/lib/{triplet}/{name}"
            if guest not in files:
                files[guest] = os.path.realpath(host)
                todo.append(host)
    return busybox, kmod, sorted(files.items())


INIT_HEAD = r"""#!/bin/sh
# Generated by abicheck prove: load each case's modules, report, power off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# only this script's lines on the console (and, when asked, the kernel's warnings and
# worse, so that an oops or a panic reaches the host); the rest goes to dmesg, recorded
echo @PRINTK@ > /proc/sys/kernel/printk
out() { echo "@@ABICHECK@@ $*"; }
# every line of a file, tagged (sed keeps lines that contain anything at all)
outfile() { sed "s/^/@@ABICHECK@@ $1 $2 /" "$3"; }

# seen: ID -- what the kernel shows after an insmod, or while one hangs: the taint mask,
# the new modules (their taint, initstate and readable parameters), the new dmesg lines
seen() {
    ta=$(cat /proc/sys/kernel/tainted)
    dmesg -r -c > /tmp/dmesg
    ls /sys/module > /tmp/after
    out "$1" tainted_before "$tb"
    out "$1" tainted_after "$ta"
    for m in $(grep -vxF -f /tmp/before /tmp/after); do
        out "$1" new "$m" "$(cat /sys/module/$m/taint 2>/dev/null)"
        out "$1" initstate "$m" "$(cat /sys/module/$m/initstate 2>/dev/null)"
        for p in /sys/module/$m/parameters/*; do
            [ -f "$p" ] && [ -r "$p" ] && out "$1" param "$m" "${p##*/}" "$(cat "$p" 2>&1)"
        done
        echo "$m $1" >> /tmp/loaded
    done
    outfile "$1" dmesg /tmp/dmesg
}

# load: ID KIND FILE FLAGS [PARAM...] -- insmod one file and report what the kernel did
load() {
    id=$1
    kind=$2
    file=$3
    flags=$4
    shift 4
    dmesg -c > /dev/null
    ls /sys/module > /tmp/before
    tb=$(cat /proc/sys/kernel/tainted)
    # announced first: a load that never returns is known by its start without an end
    out "$id" start "$kind" "$file"
    /sbin/insmod $flags "$file" "$@" > /tmp/out 2> /tmp/err &
    pid=$!
    # an insmod still in the kernel after @LOAD_TIMEOUT@ s hangs (its init never returns):
    # it cannot be killed, so say what the kernel shows and end this boot; the host boots
    # afresh for the modules after it
    ( sleep @LOAD_TIMEOUT@; seen "$id"; out "$id" hang; finish ) &
    dog=$!
    wait $pid
    rc=$?
    kill $dog 2> /dev/null
    out "$id" rc "$rc"
    seen "$id"
    outfile "$id" stderr /tmp/err
    outfile "$id" stdout /tmp/out
    out "$id" end
    # the kernel died in this load (TAINT_DIE): what follows would run in a broken
    # kernel, so stop here; the host boots afresh for the rest
    if [ $((ta & 128)) -ne 0 ] && [ $((tb & 128)) -eq 0 ]; then
        out "$id" oops
        finish
    fi
}

# rm_loaded: NAME -- rmmod a module this boot loaded, the modules holding it (its
# consumers) first, and report each against the load that added it
rm_loaded() {
    for h in $(ls /sys/module/$1/holders 2> /dev/null); do rm_loaded "$h"; done
    grep -q "^$1 " /tmp/loaded 2> /dev/null || return 0
    lid=$(grep "^$1 " /tmp/loaded | sed -n '$s/.* //p')
    /sbin/rmmod "$1" > /dev/null 2> /tmp/rmerr
    out "$lid" rmmod "$1" "$?" "$(tr '\n' ' ' < /tmp/rmerr)"
    grep -v "^$1 " /tmp/loaded > /tmp/left
    cat /tmp/left > /tmp/loaded
}

# unload: rmmod what this case loaded, last loaded first, so names and exports do not
# leak into the next case
unload() {
    [ -f /tmp/loaded ] || return 0
    for m in $(sed '1!G;h;$!d' /tmp/loaded | sed 's/ .*//'); do
        rm_loaded "$m"
    done
    rm -f /tmp/loaded
}

finish() {
    out done "$(cat /proc/sys/kernel/tainted)"
    sync
    # let the UART drain before the machine goes
    sleep 1
    poweroff -f
}

out begin "$(cat /proc/sys/kernel/osrelease)" "$(cat /proc/sys/kernel/tainted)"
"""

INIT_TAIL = r"""
finish
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


# seconds an insmod may take before it counts as hung; emulation (TCG) runs a module's
# init some 10-50 times slower than hardware, and a healthy init returns in well under 1 s
LOAD_TIMEOUT = 20.0


def init_script(
    cases: Sequence[Case], console_level: int = 1, load_timeout: float = LOAD_TIMEOUT
) -> str:
    body = []
    for i, items in enumerate(guest_paths(cases)):
        case = cases[i]
        body.append(f"# case {i}: {case.name}")
        names: set[str] = set()
        for j, (kind, host, guest) in enumerate(items):
            # the kernel holds one module of a name: an earlier one still loaded goes first
            # (with its consumers), as an insmod user would rmmod it; the rest stay loaded
            name = module_name(host)
            if name in names:
                body.append(f"rm_loaded {shlex.quote(name)}")
            names.add(name)
            flags = "-f" if case.force and kind == "module" else "''"
            args = case.args.get(host, []) if kind == "module" else []
            words = [f"{i}.{j}", kind, shlex.quote(guest), flags, *map(shlex.quote, args)]
            body.append("load " + " ".join(words))
        body.append("unload")
    head = INIT_HEAD.replace("@PRINTK@", str(console_level))
    head = head.replace("@LOAD_TIMEOUT@", f"{load_timeout:g}")
    return head + "\n".join(body) + "\n" + INIT_TAIL


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def initramfs_bytes(
    cases: Sequence[Case],
    console_level: int = 1,
    userland: str | None = None,
    arch: str = "",
    load_timeout: float = LOAD_TIMEOUT,
) -> bytes:
    """`userland`: an extracted foreign-architecture Debian userland (of `arch`); None:
    the host's busybox and kmod."""
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
        busybox, kmod, libs = foreign_userland(userland, arch or "aarch64")
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
    cpio.file("init", init_script(cases, console_level, load_timeout).encode(), 0o755)
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


def build_initramfs(
    cases: Sequence[Case],
    cache: str,
    console_level: int = 1,
    userland: str | None = None,
    arch: str = "",
    load_timeout: float = LOAD_TIMEOUT,
) -> str:
    """The initramfs for these cases, built once and kept under <cache>/qemu/."""
    data = initramfs_bytes(cases, console_level, userland, arch, load_timeout)
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


def kvm_usable() -> bool:
    """Whether this process may open /dev/kvm (present and read-write for us)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def qemu_command(
    vmlinuz: str,
    initramfs: str,
    memory: str = "512M",
    accel: str = "tcg",
    extra_append: str = "",
    arch: str = "x86_64",
) -> list[str]:
    machine = ARCHES[arch_name(arch)]
    append = f"console={machine['console']} loglevel=1 panic=-1 rdinit=/init"
    if extra_append:
        append += " " + extra_append
    return [
        machine["qemu"],
        *machine["machine"],
        "-accel",
        accel,
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


def boot_raw(
    command: list[str], timeout: float, log_path: str | None = None
) -> tuple[str, float, str | None]:
    """Run one VM: the serial log, the seconds it took, and why it failed (None when the
    guest's /init finished and powered off)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            command,
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
        return text, seconds, reason if failed else "the guest never finished its /init"
    return text, seconds, None


# --------------------------------------------------------------------------- parse

TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\] ?")
LEVEL = re.compile(r"^<(\d+)>")


def dmesg_line(raw: str) -> str:
    """`dmesg -r` output without the <level> and [timestamp] prefixes."""
    return TIMESTAMP.sub("", LEVEL.sub("", raw))


def parse_serial(text: str, cases: Sequence[Case]) -> list[dict[str, Any]]:
    """One record per insmod, in load order, from the tagged lines of the serial log."""
    records: dict[str, dict] = {}
    rmmods: dict[str, list[dict]] = {}  # by the load that added the module
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
            rmmods.setdefault(ident, []).append(
                {"module": name, "rc": int(rc), "stderr": err.strip()}
            )
            continue
        rec = records.setdefault(ident, new_record(ident, cases, plan))
        add_field(rec, key, rest)
    out = []
    for ident in sorted(records, key=lambda s: tuple(int(x) for x in s.split("."))):
        rec = records[ident]
        rec["loaded"] = rec["rc"] == 0 and rec["complete"]
        rec["module_taint"] = taint_of(rec)
        rec["errno"] = [] if rec["loaded"] else insmod_errno(rec["insmod_stderr"])
        rec["insmod_stderr"] = "\n".join(rec["insmod_stderr"])
        rec["insmod_stdout"] = "\n".join(rec["insmod_stdout"])
        rec["rmmod"] = rmmods.get(ident, [])
        out.append(rec)
    return out


def new_record(
    ident: str, cases: Sequence[Case], plan: list[list[tuple[str, str, str]]]
) -> dict[str, Any]:
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
        "started": False,
        "oops": False,
        "hang": False,
        "initstate": {},
        "params": {},
        "init_called": None,
        "init_returned": None,
    }


# initcall_debug's lines around a module's init (init/main.c, printed at KERN_DEBUG)
CALLING = re.compile(r"^calling  (.+?) @ \d+$")
RETURNED = re.compile(r"^initcall (.+?) returned (-?\d+) after ")


def add_field(rec: dict[str, Any], key: str, value: str) -> None:
    if key == "start":
        rec["started"] = True
    elif key == "oops":
        rec["oops"] = True
    elif key == "hang":
        rec["hang"] = True
    elif key == "param":
        name, _, rest = value.partition(" ")
        param, _, current = rest.partition(" ")
        rec["params"].setdefault(name, {})[param] = current
    elif key == "initstate":
        name, _, state = value.partition(" ")
        rec["initstate"][name] = state
    elif key == "rc":
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
        line = dmesg_line(value)
        called, returned = CALLING.match(line), RETURNED.match(line)
        if called:
            rec["init_called"] = called.group(1)
            return
        if returned:
            rec["init_returned"] = int(returned.group(2))
            return
        rec["dmesg_levels"].append(int(m.group(1)) & 7 if m else None)
        rec["dmesg"].append(line)
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
    "No such device": ["ENODEV"],
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


def taint_of(rec: dict[str, Any]) -> str | None:
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


def with_taint_delta(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for rec in results:
        delta = (rec["tainted_after"] or 0) & ~(rec["tainted_before"] or 0)
        rec["taint_delta"] = taint_letters(delta)
    return results


def kmod_version(userland: str | None = None, arch: str = "aarch64") -> str:
    if userland is not None:  # a foreign kmod cannot run here: its Debian package version
        debian = ARCHES[arch_name(arch)]["debian"]
        stamps_dir = os.path.join(userland, ".extracted")
        stamps = os.listdir(stamps_dir) if os.path.isdir(stamps_dir) else []
        return next(
            (f"kmod {f.split('_')[1]} (Debian, {debian})" for f in stamps if f.startswith("kmod_")),
            f"kmod (Debian, {debian})",
        )
    out = subprocess.run([KMOD, "--version"], capture_output=True, text=True, check=False)
    return " ".join(out.stdout.split())


def missing_tools(arch: str = "x86_64", userland: str | None = None) -> list[str]:
    """The host tools a boot of ``arch`` needs and this host lacks; with a foreign
    ``userland`` only the emulator (busybox and kmod come from the userland)."""
    qemu = ARCHES[arch_name(arch)]["qemu"]
    if userland is not None:
        return [t for t in (qemu,) if shutil.which(t) is None]
    return [t for t in (qemu, BUSYBOX, KMOD, "ldd") if shutil.which(t) is None]
