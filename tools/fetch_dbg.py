#!/usr/bin/env python3
"""Fetch Debian's debug vmlinux (full DWARF) for the DWARF struct-layout tests.

    python tools/fetch_dbg.py          # download + extract, skipped when already done
    python tools/fetch_dbg.py --force  # extract again even if dbg.json exists

The package is ``linux-image-<release>-dbg`` for the release of test role ``6.1-a``
(6.1.0-47-amd64, from the cache's manifest.json). It is about 855 MB and holds every
in-tree module's debug file too; only ``/usr/lib/debug/boot/vmlinux-<release>`` is
extracted. When Debian's archive has dropped that ABI, the newest available
``linux-image-6.1.0-*-amd64-dbg`` is used and the release actually fetched is recorded,
so tests compare against the matching kernel or skip.

Where things go, under the cache ($ABICHECK_TESTDATA, else <repo>/.cache/testdata):
``debs/`` the .deb, ``dbg/`` the extracted tree and ``dbg/dbg.json``:
``{"release", "package", "deb", "sha256", "vmlinux"}``. Tests read dbg.json.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
DEBS = os.path.join(CACHE, "debs")
DEST = os.path.join(CACHE, "dbg")
RECORD = os.path.join(DEST, "dbg.json")
ROLE = "6.1-a"
DEFAULT_RELEASE = "6.1.0-47-amd64"
FALLBACK = re.compile(r"^linux-image-(6\.1\.0-(\d+)-amd64)-dbg$")


def log(msg: str) -> None:
    print(f"fetch_dbg: {msg}", file=sys.stderr, flush=True)


def wanted_release() -> str:
    """The release of role 6.1-a as the manifest recorded it (it may be a fallback)."""
    try:
        with open(os.path.join(CACHE, "manifest.json")) as f:
            return json.load(f)["kernels"][ROLE]["release"]
    except (OSError, KeyError, ValueError):
        return DEFAULT_RELEASE


def available_dbg() -> dict[str, int]:
    """Releases of the amd64 6.1 dbg packages apt knows, with their ABI number."""
    out = subprocess.run(
        ["apt-cache", "pkgnames", "linux-image-6.1.0-"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    return {m.group(1): int(m.group(2)) for p in out if (m := FALLBACK.match(p))}


def choose_release() -> str:
    release = wanted_release()
    releases = available_dbg()
    if release in releases or not releases:
        # nothing listed (no apt lists?): try the wanted one and let apt-get say why not
        return release
    newest = max(releases, key=releases.__getitem__)
    log(f"linux-image-{release}-dbg is gone from the archive, using {newest}")
    return newest


def download(package: str) -> str:
    os.makedirs(DEBS, exist_ok=True)
    found = sorted(f for f in os.listdir(DEBS) if f.startswith(package + "_"))
    if not found:
        log(f"downloading {package} (about 855 MB)")
        res = subprocess.run(["apt-get", "download", package], cwd=DEBS, check=False)
        if res.returncode != 0:
            raise SystemExit(f"fetch_dbg: apt-get download {package} failed ({res.returncode})")
        found = sorted(f for f in os.listdir(DEBS) if f.startswith(package + "_"))
    if not found:
        raise SystemExit(f"fetch_dbg: {package} could not be downloaded")
    return os.path.join(DEBS, found[-1])


def extract_vmlinux(deb: str, release: str) -> str:
    """Unpack only the vmlinux: the rest of the package is the modules' debug files."""
    os.makedirs(DEST, exist_ok=True)
    log(f"extracting the vmlinux from {os.path.basename(deb)}")
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", deb], stdout=subprocess.PIPE)
    tar = subprocess.run(["tar", "-x", "-C", DEST, "--wildcards", "*vmlinux*"], stdin=dpkg.stdout)
    dpkg.stdout.close()
    if dpkg.wait() != 0 or tar.returncode != 0:
        raise SystemExit(f"fetch_dbg: extracting {deb} failed")
    vmlinux = os.path.join(DEST, "usr", "lib", "debug", "boot", f"vmlinux-{release}")
    if not os.path.isfile(vmlinux):
        raise SystemExit(f"fetch_dbg: {deb} has no usr/lib/debug/boot/vmlinux-{release}")
    return vmlinux


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def already_done() -> dict | None:
    try:
        with open(RECORD) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if os.path.isfile(record.get("vmlinux", "")) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="extract again")
    args = parser.parse_args()
    if not args.force and (record := already_done()):
        log(f"already fetched: {record['vmlinux']}")
        print(record["vmlinux"])
        return
    release = choose_release()
    package = f"linux-image-{release}-dbg"
    deb = download(package)
    vmlinux = extract_vmlinux(deb, release)
    record = {
        "release": release,
        "package": package,
        "deb": os.path.basename(deb),
        "sha256": sha256(deb),
        "vmlinux": vmlinux,
    }
    with open(RECORD, "w") as f:
        json.dump(record, f, indent=2)
    log(f"recorded {RECORD}")
    print(vmlinux)


if __name__ == "__main__":
    main()
