#!/usr/bin/env python3
"""Fetch Debian's kernel source trees (linux-source-6.1, linux-source-6.12) for the
config tests: kconfiglib loads their Kconfig, `make olddefconfig` runs in copies of them.

    python tools/fetch_source.py            # both series
    python tools/fetch_source.py 6.1        # one
    python tools/fetch_source.py path       # print where the trees go
    python tools/fetch_source.py tiny       # build the small IKCONFIG kernel (~5 min)

The packages are downloaded with `apt-get download` into <cache>/debs (a .deb already
there under its own file name is used as is), checked against the SHA-256 recorded below
when the version matches, and the tarball each ships (usr/src/linux-source-X.tar.xz) is
extracted once into <cache>/src/linux-source-X. <cache>/src/manifest.json records the
tree, its Makefile version and the package it came from; the tests read it.

`tiny` builds the IKCONFIG fixture: linux-source-6.1 configured with `make tinyconfig`,
then CONFIG_IKCONFIG=y and CONFIG_64BIT=y (scripts/config), `make olddefconfig`, and
`make bzImage` in <cache>/src/tiny-6.1/build (O=, the source tree stays clean). The
kernel embeds its .config the kernel's own way (kernel/configs.c: IKCFG_ST, gzip, IKCFG_ED),
in vmlinux and, compressed again (KERNEL_XZ, tinyconfig's choice), in the bzImage;
vmlinux, bzImage and .config are kept in <cache>/src/tiny-6.1.

The cache is $ABICHECK_TESTDATA, else <repo>/.cache/testdata (as for tools/testdata.py).
Nothing from the packages is executed.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
DEBS = os.path.join(CACHE, "debs")
SRC = os.path.join(CACHE, "src")
MANIFEST = os.path.join(SRC, "manifest.json")

SERIES = ("6.1", "6.12")
# The versions the tests were written against; a newer one is used (and said) when the
# archive has moved on, since Debian keeps only the current security update.
LOCK = {
    "linux-source-6.1_6.1.192-2_all.deb": (
        "ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514"
    ),
    "linux-source-6.12_6.12.117-1~deb12u1_all.deb": (
        "e849faf31ca3555757f3a8877cb01af92122f744f75d1f3102734651c4e14703"
    ),
}


def log(msg: str) -> None:
    print(f"fetch_source: {msg}", file=sys.stderr, flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _deb_for(series: str) -> str:
    package = f"linux-source-{series}"
    os.makedirs(DEBS, exist_ok=True)
    found = sorted(f for f in os.listdir(DEBS) if f.startswith(package + "_"))
    if not found:
        log(f"downloading {package}")
        subprocess.run(["apt-get", "download", package], cwd=DEBS, check=True)
        found = sorted(f for f in os.listdir(DEBS) if f.startswith(package + "_"))
    if not found:
        raise SystemExit(f"fetch_source: {package} could not be downloaded")
    name = found[-1]
    path = os.path.join(DEBS, name)
    if name in LOCK and sha256(path) != LOCK[name]:
        raise SystemExit(f"fetch_source: {name}: SHA-256 does not match the one recorded")
    if name not in LOCK:
        log(f"{name} is not the version the tests were written for; using it anyway")
    return path


def makefile_version(tree: str) -> str:
    fields = {}
    with open(os.path.join(tree, "Makefile")) as f:
        for line in f:
            m = re.match(r"^(VERSION|PATCHLEVEL|SUBLEVEL|EXTRAVERSION)\s*=\s*(\S*)", line)
            if m:
                fields[m.group(1)] = m.group(2)
            if len(fields) == 4:
                break
    version = f"{fields['VERSION']}.{fields['PATCHLEVEL']}.{fields['SUBLEVEL']}"
    return version + fields.get("EXTRAVERSION", "")


def fetch(series: str) -> dict:
    deb = _deb_for(series)
    tree = os.path.join(SRC, f"linux-source-{series}")
    stamp = os.path.join(SRC, f".extracted-{os.path.basename(deb)}")
    if not os.path.exists(stamp):
        log(f"extracting {os.path.basename(deb)} into {tree}")
        shutil.rmtree(tree, ignore_errors=True)
        os.makedirs(SRC, exist_ok=True)
        # dpkg-deb streams the data tarball; the inner tarball streams into tar -xJ, so the
        # 150 MB .tar.xz never lands on disk
        deb_tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
        inner = subprocess.Popen(
            ["tar", "-xO", f"./usr/src/linux-source-{series}.tar.xz"],
            stdin=deb_tar.stdout,
            stdout=subprocess.PIPE,
        )
        assert deb_tar.stdout is not None
        deb_tar.stdout.close()
        subprocess.run(["tar", "-xJ", "-C", SRC], stdin=inner.stdout, check=True)
        if inner.wait() or deb_tar.wait():
            raise SystemExit(f"fetch_source: extracting {deb} failed")
        open(stamp, "w").close()
    return {
        "tree": tree,
        "version": makefile_version(tree),
        "package": os.path.basename(deb),
        "sha256": LOCK.get(os.path.basename(deb)) or sha256(deb),
    }


def build_tiny(manifest: dict) -> dict:
    """The small IKCONFIG kernel (see the module docstring)."""
    if "6.1" not in manifest:
        manifest["6.1"] = fetch("6.1")
    tree = manifest["6.1"]["tree"]
    out = os.path.join(SRC, "tiny-6.1")
    build = os.path.join(out, "build")
    kept = {n: os.path.join(out, n) for n in ("vmlinux", "bzImage", "config")}
    if not all(os.path.exists(p) for p in kept.values()):
        os.makedirs(build, exist_ok=True)
        make = ["make", "-s", "-C", tree, f"O={build}"]
        subprocess.run([*make, "tinyconfig"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(
            [
                os.path.join(tree, "scripts", "config"),
                "--file",
                os.path.join(build, ".config"),
                "--enable",
                "IKCONFIG",
                "--enable",
                "64BIT",
            ],
            check=True,
        )
        subprocess.run([*make, "olddefconfig"], check=True)
        log("building the tiny kernel (a few minutes)")
        subprocess.run([*make, f"-j{os.cpu_count() or 2}", "bzImage"], check=True)
        shutil.copy(os.path.join(build, "vmlinux"), kept["vmlinux"])
        shutil.copy(os.path.join(build, "arch", "x86", "boot", "bzImage"), kept["bzImage"])
        shutil.copy(os.path.join(build, ".config"), kept["config"])
        shutil.rmtree(build, ignore_errors=True)
    return {**kept, "from": f"linux-source-6.1 {manifest['6.1']['version']} tinyconfig + IKCONFIG"}


def main(argv: list[str]) -> int:
    if argv[:1] == ["path"]:
        print(SRC)
        return 0
    if argv[:1] == ["tiny"]:
        manifest = {}
        if os.path.exists(MANIFEST):
            with open(MANIFEST) as f:
                manifest = json.load(f)
        manifest["tiny-6.1"] = build_tiny(manifest)
        with open(MANIFEST, "w") as f:
            json.dump(manifest, f, indent=2)
        return 0
    wanted = argv or list(SERIES)
    unknown = [s for s in wanted if s not in SERIES]
    if unknown:
        raise SystemExit(f"fetch_source: unknown series {', '.join(unknown)} (have {SERIES})")
    manifest: dict = {}
    if os.path.exists(MANIFEST):
        with open(MANIFEST) as f:
            manifest = json.load(f)
    for series in wanted:
        manifest[series] = fetch(series)
        log(f"{series}: {manifest[series]['tree']} ({manifest[series]['version']})")
    with open(MANIFEST, "w") as f:
        json.dump(manifest, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
