#!/usr/bin/env python3
"""Fetch the Debian kernel packages the tests use, and build the test modules against them.

    python tools/testdata.py fetch     # apt-get download + dpkg-deb -x into the cache
    python tools/testdata.py build     # build tests/modules/* against the cached headers
    python tools/testdata.py all       # both (what .ci/run does)
    python tools/testdata.py path      # print the cache directory

The cache is $ABICHECK_TESTDATA, else <repo>/.cache/testdata. Packages are named with a
preferred ABI and checked against the SHA-256 recorded in tools/testdata.lock.json; when
Debian's archive has dropped that ABI (it keeps only current ones), the newest available
ABI of the same series is used instead and recorded in the manifest, which the tests
read. Test data derived from real modules (a section removed with objcopy, a byte
patched) is made here too, each with a comment saying how.

Nothing from the packages is executed except Kbuild itself (make, modpost, gcc), which is
what building a module against headers means.
"""

from __future__ import annotations

import concurrent.futures
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("ABICHECK_TESTDATA") or os.path.join(REPO, ".cache", "testdata")
LOCK = os.path.join(REPO, "tools", "testdata.lock.json")
MODULES_SRC = os.path.join(REPO, "tests", "modules")

# role -> how to find it. "abi" is preferred; "series" is the fallback pattern.
KERNELS = {
    "6.1-a": {
        "abi": "6.1.0-47",
        "series": r"6\.1\.0-\d+",
        "flavour": "amd64",
        "pick": "oldest",
        "image": True,
    },
    "6.1-b": {
        "abi": "6.1.0-56",
        "series": r"6\.1\.0-\d+",
        "flavour": "amd64",
        "pick": "newest",
        "image": True,
    },
    "6.1-a-rt": {"same_abi_as": "6.1-a", "flavour": "rt-amd64", "common": "common-rt"},
    "6.1-a-cloud": {"same_abi_as": "6.1-a", "flavour": "cloud-amd64"},
    "6.12": {
        "abi": "6.12.107+deb12",
        "series": r"6\.12\.\d+\+deb12",
        "flavour": "amd64",
        "pick": "oldest",
        "image": True,
    },
    # arm64 (issue 13): the same ABIs as the amd64 roles, cross-built on this amd64 host.
    # The headers are only extracted (installing them needs gcc-12:arm64); their
    # scripts/tools symlinks resolve to the amd64 linux-kbuild extracted beside them.
    "6.1-a-arm64": {"same_abi_as": "6.1-a", "flavour": "arm64", "arch": "arm64", "image": True},
    "6.1-b-arm64": {"same_abi_as": "6.1-b", "flavour": "arm64", "arch": "arm64", "image": True},
    "6.12-arm64": {"same_abi_as": "6.12", "flavour": "arm64", "arch": "arm64", "image": True},
}

# Make variables that cross-build a module for a role's architecture (gcc-aarch64-linux-gnu).
CROSS = {"arm64": {"ARCH": "arm64", "CROSS_COMPILE": "aarch64-linux-gnu-"}}

# The referee's arm64 userland (abicheck prove --userland): a static busybox, and kmod's own
# insmod (dynamically linked, so with its libraries and the arm64 dynamic loader), since
# kmod is the loader abicheck's predictions assume. Extracted apart from the kernels.
USERLAND = {
    "arm64": [
        "busybox-static",
        "kmod",
        "libkmod2",
        "libc6",
        "liblzma5",
        "libssl3",
        "libzstd1",
    ]
}


def log(msg: str) -> None:
    print(f"testdata: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, **kw)


def available(pattern: str) -> list[str]:
    out = subprocess.run(
        ["apt-cache", "pkgnames", "linux-headers-"], capture_output=True, text=True, check=False
    ).stdout.split()
    rx = re.compile(rf"^linux-headers-({pattern})-amd64$")
    abis = sorted(
        {m.group(1) for p in out if (m := rx.match(p))},
        key=lambda a: [int(x) if x.isdigit() else x for x in re.split(r"[.+-]", a)],
    )
    return abis


def choose_abis() -> dict[str, str]:
    chosen: dict[str, str] = {}
    for role, spec in KERNELS.items():
        if "same_abi_as" in spec:
            continue
        abis = available(spec["series"])
        if spec["abi"] in abis or not abis:
            chosen[role] = spec["abi"]
        else:
            alt = [a for a in abis if a not in chosen.values()]
            chosen[role] = (alt or abis)[0 if spec["pick"] == "oldest" else -1]
            log(f"{role}: {spec['abi']} is gone from the archive, using {chosen[role]}")
    for role, spec in KERNELS.items():
        if "same_abi_as" in spec:
            chosen[role] = chosen[spec["same_abi_as"]]
    return chosen


def packages_for(role: str, abi: str) -> list[str]:
    spec = KERNELS[role]
    flavour = spec["flavour"]
    # ":arm64" for a foreign role's own packages; the common headers are arch all and
    # linux-kbuild (host tools: fixdep, modpost) stays the host's amd64 one
    qual = f":{spec['arch']}" if "arch" in spec else ""
    pkgs = [
        f"linux-headers-{abi}-{flavour}{qual}",
        f"linux-headers-{abi}-{spec.get('common', 'common')}",
    ]
    series = re.match(r"(\d+\.\d+)", abi).group(1)
    pkgs.append(f"linux-kbuild-{series}" if series == "6.1" else f"linux-kbuild-{abi}")
    if spec.get("image"):
        pkgs.append(f"linux-image-{abi}-{flavour}-unsigned{qual}")
    return pkgs


def deb_name(pkg: str) -> str:
    """The file name prefix apt-get download gives a package ("kmod:arm64" -> "kmod")."""
    return pkg.partition(":")[0]


def debs_of(debs: str, pkg: str) -> list[str]:
    arch = pkg.partition(":")[2]
    return sorted(
        f
        for f in os.listdir(debs)
        if f.startswith(deb_name(pkg) + "_") and (not arch or f.endswith(f"_{arch}.deb"))
    )


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch() -> dict:
    debs = os.path.join(CACHE, "debs")
    root = os.path.join(CACHE, "root")
    os.makedirs(debs, exist_ok=True)
    with open(LOCK) as f:
        lock = json.load(f)
    abis = choose_abis()
    manifest = {"cache": CACHE, "kernels": {}, "packages": {}}
    wanted = sorted({p for role, abi in abis.items() for p in packages_for(role, abi)})
    userland = {f"{p}:{arch}": arch for arch, pkgs in USERLAND.items() for p in pkgs}
    if any("arch" in KERNELS[r] for r in abis):
        foreign_architecture({KERNELS[r]["arch"] for r in abis if "arch" in KERNELS[r]})
    missing = [p for p in [*wanted, *userland] if not debs_of(debs, p)]
    if missing:
        log("downloading " + " ".join(missing))
        run(["apt-get", "download", *missing], cwd=debs, stdout=subprocess.DEVNULL)
    for pkg in [*wanted, *userland]:
        files = debs_of(debs, pkg)
        if not files:
            raise SystemExit(f"testdata: {pkg} could not be downloaded")
        path = os.path.join(debs, files[-1])
        digest = sha256(path)
        if files[-1] in lock and lock[files[-1]] != digest:
            raise SystemExit(f"testdata: {files[-1]}: SHA-256 {digest} does not match the lock")
        manifest["packages"][files[-1]] = digest
        # the referee's userland apart (its libc must not mix with the kernels' tree)
        dest = os.path.join(CACHE, f"userland-{userland[pkg]}") if pkg in userland else root
        stamp = os.path.join(dest, ".extracted", files[-1])
        if not os.path.exists(stamp):
            log(f"extracting {files[-1]}")
            run(["dpkg-deb", "-x", path, dest])
            os.makedirs(os.path.dirname(stamp), exist_ok=True)
            open(stamp, "w").close()
    manifest["userland"] = {a: os.path.join(CACHE, f"userland-{a}") for a in USERLAND}
    src = os.path.join(root, "usr", "src")
    for role, abi in abis.items():
        spec = KERNELS[role]
        headers = os.path.join(src, f"linux-headers-{abi}-{spec['flavour']}")
        # Debian's flavour Makefile includes the common one by absolute path
        # (/usr/src/...); point it at the extracted copy. The only file changed.
        mk = os.path.join(headers, "Makefile")
        with open(mk) as f:
            text = f.read()
        fixed = re.sub(r"^include /usr/src/", f"include {src}/", text, flags=re.M)
        if fixed != text:
            with open(mk, "w") as f:
                f.write(fixed)
        release = f"{abi}-{spec['flavour']}"
        entry = {
            "abi": abi,
            "release": release,
            "headers": headers,
            "arch": spec.get("arch", "amd64"),
        }
        modules = os.path.join(root, "lib", "modules", release)
        vmlinuz = os.path.join(root, "boot", f"vmlinuz-{release}")
        if os.path.isfile(vmlinuz):  # the image package: kernel, config, in-tree modules
            entry["modules"] = modules
            entry["vmlinuz"] = vmlinuz
            entry["config"] = os.path.join(root, "boot", f"config-{release}")
            if spec.get("arch") == "arm64":
                entry["image"] = arm64_image(vmlinuz)
        manifest["kernels"][role] = entry
    old = os.path.join(CACHE, "manifest.json")
    if os.path.exists(old):  # keep what an earlier build recorded
        with open(old) as f:
            if "built" in (previous := json.load(f)):
                manifest["built"] = previous["built"]
    with open(old, "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def foreign_architecture(arches: set[str]) -> None:
    """`dpkg --add-architecture` + `apt-get update` once, so apt-get download finds them."""
    have = subprocess.run(
        ["dpkg", "--print-foreign-architectures"], capture_output=True, text=True, check=True
    ).stdout.split()
    if arches <= set(have):
        return
    for arch in sorted(arches - set(have)):
        log(f"dpkg --add-architecture {arch}")
        run(["dpkg", "--add-architecture", arch])
    run(["apt-get", "update", "-q"], stdout=subprocess.DEVNULL)


def arm64_image(vmlinuz: str) -> str:
    """The uncompressed arm64 Image ("ARMd" magic at offset 56): what a BTF reader or
    qemu -kernel takes. Debian's arm64 vmlinuz is one already (checked); an Image.gz
    would be unpacked beside it."""
    with open(vmlinuz, "rb") as f:
        head = f.read(64)
    if head[56:60] == b"ARM\x64":
        return vmlinuz
    image = os.path.join(os.path.dirname(vmlinuz), "Image-" + os.path.basename(vmlinuz)[8:])
    if not os.path.exists(image):
        with open(vmlinuz, "rb") as f:
            data = gzip.decompress(f.read())
        if data[56:60] != b"ARM\x64":
            raise SystemExit(f"testdata: {vmlinuz} is not an arm64 Image")
        with open(image + ".tmp", "wb") as f:
            f.write(data)
        os.replace(image + ".tmp", image)
    return image


# -- building ------------------------------------------------------------------------

# (module, roles to build for, extra make variables)
BUILDS = [
    ("hello", ["6.1-a", "6.1-b", "6.1-a-rt", "6.1-a-cloud", "6.12"], {}),
    ("gplonly_user", ["6.1-a", "6.12"], {}),
    ("prop_license", ["6.1-a", "6.12"], {}),
    # modpost refuses a missing import too, unless the tree allows it; this build does
    ("ns_noimport", ["6.1-a", "6.12"], {"CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS": "y"}),
    ("ns_import", ["6.1-a", "6.12"], {}),
    ("unknown_sym", ["6.1-a", "6.12"], {"KBUILD_MODPOST_WARN": "1"}),
    ("dep_provider", ["6.1-a", "6.12"], {}),
    ("common_sym", ["6.1-a"], {}),
    ("wx_section", ["6.1-a"], {"KBUILD_MODPOST_WARN": "1"}),
    ("modinfo_flags", ["6.1-a"], {}),
    ("livepatch_flag", ["6.1-a"], {}),
    ("params_mod", ["6.1-a", "6.12"], {}),
    ("mcmodel_small", ["6.1-a"], {"KBUILD_MODPOST_WARN": "1"}),
    ("dup_export", ["6.1-a"], {}),
    ("ctor_mod", ["6.1-a"], {}),
    ("init_enodev", ["6.1-a"], {}),
    ("init_hang", ["6.1-a"], {}),
    ("init_hostile", ["6.1-a"], {}),
]

ARM64_ROLES = ["6.1-a-arm64", "6.1-b-arm64", "6.12-arm64"]
# cross-built for arm64 (CROSS adds ARCH/CROSS_COMPILE); the x86-only cases (retpoline,
# mcmodel, W+X, .ctors) have no meaning there. Debian's arm64 .config has
# CONFIG_DEBUG_INFO_DWARF_TOOLCHAIN_DEFAULT=y, so drift_struct carries DWARF as on amd64.
BUILDS_ARM64 = [
    ("hello", ARM64_ROLES, {}),
    ("unknown_sym", ["6.1-a-arm64", "6.12-arm64"], {"KBUILD_MODPOST_WARN": "1"}),
    ("gplonly_user", ["6.1-a-arm64", "6.12-arm64"], {}),
    (
        "ns_noimport",
        ["6.1-a-arm64", "6.12-arm64"],
        {"CONFIG_MODULE_ALLOW_MISSING_NAMESPACE_IMPORTS": "y"},
    ),
    ("params_mod", ["6.1-a-arm64"], {}),
    ("drift_struct", ["6.1-a-arm64"], {}),
]


def build_one(
    name: str, headers: str, out_dir: str, extra: dict[str, str], src_name: str | None = None
) -> str:
    work = os.path.join(out_dir, "work", name)
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(os.path.join(MODULES_SRC, src_name or name), work)
    args = ["make", "-s", "-C", headers, f"M={work}", "modules"]
    args += [f"{k}={v}" for k, v in extra.items()]
    res = subprocess.run(args, capture_output=True, text=True)
    ko = os.path.join(work, f"{src_name or name}.ko")
    if res.returncode != 0 or not os.path.exists(ko):
        raise RuntimeError(f"building {name} against {headers} failed:\n{res.stdout}{res.stderr}")
    dest = os.path.join(out_dir, f"{name}.ko")
    shutil.copy(ko, dest)
    symvers = os.path.join(work, "Module.symvers")
    if os.path.exists(symvers):
        shutil.copy(symvers, os.path.join(out_dir, f"{name}.symvers"))
    return dest


def derive(out_dir: str) -> None:
    """Real modules edited the way real mistakes edit them."""
    hello = os.path.join(out_dir, "hello.ko")
    with open(hello, "rb") as f:
        data = f.read()
    # __versions removed, as a careless objcopy does (debug info refers to the section,
    # so it goes too, as INSTALL_MOD_STRIP=1 would remove it anyway)
    run(
        [
            "objcopy",
            "--strip-debug",
            "--remove-section=__versions",
            hello,
            os.path.join(out_dir, "hello_noversions.ko"),
        ]
    )
    # one __versions entry renamed (same length): _printk now has no entry
    sys.path.insert(0, REPO)
    from abicheck.readers.elf import ElfImage

    versions = next(s for s in ElfImage(data, len(data)).sections if s.name == "__versions")
    pos = data.index(b"_printk\0", versions.sh_offset, versions.sh_offset + versions.sh_size)
    patched = data[:pos] + b"_printX\0" + data[pos + 8 :]
    with open(os.path.join(out_dir, "hello_renamed_version.ko"), "wb") as f:
        f.write(patched)
    # retpoline=Y removed from .modinfo (as a non-retpoline compiler leaves it out)
    with open(os.path.join(out_dir, "hello_noretpoline.ko"), "wb") as f:
        f.write(data.replace(b"retpoline=Y\0", b"xetpoline=Y\0", 1))
    # truncated copy: the first 4 KiB (an interrupted transfer)
    with open(os.path.join(out_dir, "hello_truncated.ko"), "wb") as f:
        f.write(data[:4096])
    # e_machine patched to EM_AARCH64 (183): a module of the wrong architecture
    with open(os.path.join(out_dir, "hello_arm64machine.ko"), "wb") as f:
        f.write(data[:18] + (183).to_bytes(2, "little") + data[20:])
    # GPL-only user relicensed after the build ("GPL" -> "BSD", same length): modpost
    # refuses to build a non-GPL module using GPL-only symbols, a binary vendor's edit
    # (or a kernel that made the symbol GPL-only later) gets past it
    with open(os.path.join(out_dir, "gplonly_user.ko"), "rb") as f:
        user = f.read()
    with open(os.path.join(out_dir, "gplonly_prop.ko"), "wb") as f:
        f.write(user.replace(b"license=GPL\0", b"license=BSD\0", 1))
    # an export renamed to one vmlinux has (crc16 -> kfree, same length, in
    # __ksymtab_strings): modpost refuses to build such a module, a vendor's rename or a
    # kernel that gained the symbol later gets past it
    if os.path.exists(os.path.join(out_dir, "dup_export.ko")):
        with open(os.path.join(out_dir, "dup_export.ko"), "rb") as f:
            dup = f.read()
        strings = next(s for s in ElfImage(dup, len(dup)).sections if s.name == "__ksymtab_strings")
        at = dup.index(b"crc16\0", strings.sh_offset, strings.sh_offset + strings.sh_size)
        with open(os.path.join(out_dir, "dup_vmlinux.ko"), "wb") as f:
            f.write(dup[:at] + b"kfree" + dup[at + 5 :])
    # .ctors added beside the compiler's .init_array, as mixing toolchains does
    ctor_mod = os.path.join(out_dir, "ctor_mod.ko")
    if os.path.exists(ctor_mod):
        ctors = os.path.join(out_dir, "ctors.bin")
        with open(ctors, "wb") as f:
            f.write(b"\0" * 8)
        run(
            [
                "objcopy",
                "--add-section",
                f".ctors={ctors}",
                "--set-section-flags",
                ".ctors=alloc,contents,data",
                ctor_mod,
                os.path.join(out_dir, "ctor_both.ko"),
            ]
        )
    sign(out_dir)
    # compressed copies, as kmod's modules_install makes them
    with open(os.path.join(out_dir, "hello.ko.xz"), "wb") as f:
        f.write(lzma.compress(data, check=lzma.CHECK_CRC32))
    with open(os.path.join(out_dir, "hello.ko.gz"), "wb") as f:
        f.write(gzip.compress(data, mtime=0))
    if shutil.which("zstd"):
        run(["zstd", "-q", "-f", "-19", hello, "-o", os.path.join(out_dir, "hello.ko.zst")])


def derive_gplonly_prop(out_dir: str) -> str:
    """gplonly_prop.ko as derive() makes it on amd64: the GPL-only user relicensed."""
    with open(os.path.join(out_dir, "gplonly_user.ko"), "rb") as f:
        user = f.read()
    dest = os.path.join(out_dir, "gplonly_prop.ko")
    with open(dest, "wb") as f:
        f.write(user.replace(b"license=GPL\0", b"license=BSD\0", 1))
    return dest


def sign(out_dir: str) -> None:
    """Sign hello.ko with Kbuild's own sign-file and a key made here (as a DKMS or MOK
    setup does), then damage copies the ways real signatures get damaged."""
    sign_file = next(
        (
            os.path.join(d, "scripts", "sign-file")
            for d in sorted(glob.glob(os.path.join(CACHE, "root", "usr", "lib", "linux-kbuild-*")))
            if os.path.exists(os.path.join(d, "scripts", "sign-file"))
        ),
        None,
    )
    if sign_file is None or shutil.which("openssl") is None:
        log("sign-file or openssl missing: no signed test modules")
        return
    keys = os.path.join(CACHE, "keys")
    os.makedirs(keys, exist_ok=True)
    key, cert_pem, cert_der = (
        os.path.join(keys, n) for n in ("signing_key.pem", "cert.pem", "cert.der")
    )
    if not os.path.exists(cert_der):
        run(
            [
                "openssl",
                "req",
                "-new",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-sha256",
                "-nodes",
                "-days",
                "36500",
                "-subj",
                "/CN=abicheck test signing key",
                "-keyout",
                key,
                "-out",
                cert_pem,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        run(["openssl", "x509", "-in", cert_pem, "-outform", "DER", "-out", cert_der])
    signed = os.path.join(out_dir, "hello_signed.ko")
    run([sign_file, "sha256", key, cert_der, os.path.join(out_dir, "hello.ko"), signed])
    with open(signed, "rb") as f:
        data = f.read()
    # one byte of .modinfo changed after signing: the signature no longer matches
    with open(os.path.join(out_dir, "hello_signed_tampered.ko"), "wb") as f:
        f.write(data.replace(b"abicheck test module: clean", b"abicheck test module: cleaN", 1))
    # struct module_signature's algo byte set (must be 0 for PKCS#7): EBADMSG
    marker = len(b"~Module signature appended~\n")
    pos = len(data) - marker - 12
    with open(os.path.join(out_dir, "hello_badsig.ko"), "wb") as f:
        f.write(data[:pos] + b"\x01" + data[pos + 1 :])


def build(manifest: dict) -> dict:
    built: dict[str, dict[str, str]] = {}
    jobs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for name, roles, extra in BUILDS + BUILDS_ARM64:
            for role in roles:
                k = manifest["kernels"].get(role)
                if k is None:
                    continue
                extra = {**CROSS.get(k.get("arch", "amd64"), {}), **extra}
                out_dir = os.path.join(CACHE, "build", k["release"])
                os.makedirs(out_dir, exist_ok=True)
                jobs.append(
                    (role, name, pool.submit(build_one, name, k["headers"], out_dir, extra))
                )
        for role, name, job in jobs:
            built.setdefault(role, {})[name] = job.result()
    # the consumer needs the provider's Module.symvers: built after it
    for role in ("6.1-a", "6.12"):
        k = manifest["kernels"].get(role)
        if k is None:
            continue
        out_dir = os.path.join(CACHE, "build", k["release"])
        provider = os.path.join(out_dir, "dep_provider.symvers")
        built[role]["dep_consumer"] = build_one(
            "dep_consumer", k["headers"], out_dir, {"KBUILD_EXTRA_SYMBOLS": provider}
        )
        # without the provider's symbols: no CRCs, no depends= for it
        built[role]["dep_consumer_nosyms"] = build_one(
            "dep_consumer_nosyms",
            k["headers"],
            out_dir,
            {"KBUILD_MODPOST_WARN": "1"},
            src_name="dep_consumer",
        )
        derive(out_dir)
        log(f"built test modules for {k['release']} in {out_dir}")
    for role in ARM64_ROLES:
        if role in built and "gplonly_user" in built[role]:
            built[role]["gplonly_prop"] = derive_gplonly_prop(os.path.dirname(built[role]["hello"]))
    manifest["built"] = {
        role: os.path.join(CACHE, "build", manifest["kernels"][role]["release"]) for role in built
    }
    with open(os.path.join(CACHE, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


SAMPLE_MODULES = [
    "hello",
    "gplonly_prop",
    "ns_noimport",
    "unknown_sym",
    "dep_provider",
    "dep_consumer",
    "hello_noversions",
    "hello_renamed_version",
    "prop_license",
]
SAMPLE_KERNELS = ["6.1-a", "6.1-b", "6.1-a-rt", "6.12"]
SAMPLE_BTF = {"6.1-a", "6.12"}


def samples(manifest: dict) -> None:
    """Refresh samples/ from the cache (a maintainer's step; the result is committed)."""
    sys.path.insert(0, REPO)
    import dataclasses

    from abicheck.targets import load_target
    from abicheck.targets.profile import save_profile

    out = os.path.join(REPO, "samples")
    os.makedirs(os.path.join(out, "modules"), exist_ok=True)
    os.makedirs(os.path.join(out, "kernels"), exist_ok=True)
    built = manifest["built"]["6.1-a"]
    for name in SAMPLE_MODULES:
        # stripped of debug info as `make modules_install INSTALL_MOD_STRIP=1` does
        run(
            [
                "objcopy",
                "--strip-debug",
                os.path.join(built, f"{name}.ko"),
                os.path.join(out, "modules", f"{name}.ko"),
            ]
        )
    root = os.path.join(CACHE, "root")
    for role in SAMPLE_KERNELS:
        k = manifest["kernels"][role]
        # struct module's layout from the image's vmlinuz where there is one (6.12's
        # headers ship a BTF-only vmlinux, used automatically); the full BTF is embedded
        # for the kernels the layout tests use, to keep samples/ small
        target = load_target(k["headers"], k.get("vmlinuz"))
        # record the paths the Debian package installs to, not this cache's
        target = dataclasses.replace(
            target,
            source=target.source.replace(root, ""),
            files=tuple(f.replace(root, "") for f in target.files),
        )
        with_btf = role in SAMPLE_BTF
        save_profile(target, os.path.join(out, "kernels", f"{k['release']}.json.gz"), with_btf)
        log(f"saved samples/kernels/{k['release']}.json.gz")


SAMPLE_MODULES_ARM64 = ["hello", "unknown_sym", "gplonly_prop"]
SAMPLE_KERNELS_ARM64 = ["6.1-a-arm64", "6.12-arm64"]


def samples_arm64(manifest: dict) -> None:
    """samples/arm64/ (modules) and the arm64 profiles in samples/kernels/ (a maintainer's
    step, committed). Kept out of samples/modules/ so that the x86 examples there stay one
    architecture; samples/kernels/ is a fleet of both."""
    sys.path.insert(0, REPO)
    import dataclasses

    from abicheck.targets import load_target
    from abicheck.targets.profile import save_profile

    out = os.path.join(REPO, "samples")
    os.makedirs(os.path.join(out, "arm64"), exist_ok=True)
    built = manifest["built"]["6.1-a-arm64"]
    for name in SAMPLE_MODULES_ARM64:
        run(
            [
                "aarch64-linux-gnu-objcopy",
                "--strip-debug",
                os.path.join(built, f"{name}.ko"),
                os.path.join(out, "arm64", f"{name}.ko"),
            ]
        )
    root = os.path.join(CACHE, "root")
    for role in SAMPLE_KERNELS_ARM64:
        k = manifest["kernels"][role]
        target = load_target(k["headers"], None)
        target = dataclasses.replace(
            target,
            source=target.source.replace(root, ""),
            files=tuple(f.replace(root, "") for f in target.files),
        )
        save_profile(target, os.path.join(out, "kernels", f"{k['release']}.json.gz"), False)
        log(f"saved samples/kernels/{k['release']}.json.gz")


def main() -> None:
    cmd = sys.argv[1] if len(sys.argv) > 1 else "all"
    if cmd == "path":
        print(CACHE)
    elif cmd == "fetch":
        fetch()
    elif cmd == "build":
        with open(os.path.join(CACHE, "manifest.json")) as f:
            build(json.load(f))
    elif cmd == "samples":
        with open(os.path.join(CACHE, "manifest.json")) as f:
            samples(json.load(f))
    elif cmd == "samples-arm64":
        with open(os.path.join(CACHE, "manifest.json")) as f:
            samples_arm64(json.load(f))
    elif cmd == "all":
        build(fetch())
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
