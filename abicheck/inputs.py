"""Input discovery: which module files and which kernel targets a run is given.

Shared by the command line (abicheck.app) and the public API (abicheck.api), so that a
directory expands to the same modules, in the same order, whichever face was used.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence

from abicheck.errors import AbicheckError, ModuleReadError
from abicheck.model import KernelTarget
from abicheck.readers.compressed import MODULE_SUFFIXES, not_regular


def expand_modules(paths: Sequence[str]) -> list[str | ModuleReadError]:
    """Files as given; directories walked for modules, sorted for a stable order.

    A directory with no module in it is an input error, not silence.
    """
    out: dict[str, str | ModuleReadError] = {}  # ordered; a path given twice is checked once
    for p in paths:
        if os.path.isdir(p):
            found: list[str] = []
            for root, dirs, files in os.walk(p):
                dirs.sort()
                found.extend(os.path.join(root, f) for f in files if f.endswith(MODULE_SUFFIXES))
            if not found:
                out[p] = ModuleReadError(
                    p, "is a directory with no module (" + ", ".join(MODULE_SUFFIXES) + ") in it"
                )
            # a FIFO or device named *.ko is reported from its stat(), never opened
            out.update((f, _regular_or_error(f)) for f in sorted(found))
        else:
            out[p] = p
    return list(out.values())


def _regular_or_error(path: str) -> str | ModuleReadError:
    try:
        why = not_regular(os.stat(path).st_mode)
    except OSError:
        return path  # reading it reports the error (a dangling symlink: "no such file")
    return path if why is None else ModuleReadError(path, why)


def extra_modules(root: str, release: str) -> list[str]:
    """Modules a kernel package did not ship: lib/modules/R/{updates,extra,weak-updates}
    and DKMS's build trees (var/lib/dkms/NAME/VERSION/R/ARCH/module)."""
    found: list[str] = []
    base = os.path.join(root, "lib", "modules", release)
    for sub in ("updates", "extra", "weak-updates"):
        for dirpath, dirs, files in os.walk(os.path.join(base, sub)):
            dirs.sort()
            found += [
                os.path.join(dirpath, f) for f in sorted(files) if f.endswith(MODULE_SUFFIXES)
            ]
    installed = {os.path.basename(p) for p in found}
    pattern = os.path.join(root, "var", "lib", "dkms", "*", "*", release, "*", "module", "*.ko*")
    # a DKMS module is usually also installed under updates/; check each file once
    found += [p for p in sorted(glob.glob(pattern)) if os.path.basename(p) not in installed]
    return found


def fleet(spec: str) -> list[str]:
    """A directory of saved profiles stands for all of them (a fleet); anything else is
    one target."""
    if os.path.isdir(spec) and not any(
        os.path.exists(os.path.join(spec, n)) for n in (".config", "Makefile")
    ):
        profiles = sorted(
            os.path.join(spec, f) for f in os.listdir(spec) if f.endswith((".json", ".json.gz"))
        )
        if profiles:
            return profiles
    return [spec]


def load_targets(
    specs: Sequence[str],
    vmlinux: Sequence[str | None] = (),
    modules_dirs: Sequence[str | None] = (),
    layouts: str = "auto",
) -> tuple[list[KernelTarget], list[AbicheckError]]:
    """Every target the specs name (a fleet directory names several), with the errors of
    those that cannot be read. ``vmlinux`` and ``modules_dirs`` hold one entry (or None)
    per spec, in the specs' order; missing entries are None. No spec: the running kernel."""
    from abicheck.targets import load_target

    specs = list(specs) or ["running"]
    images = [*vmlinux, *[None] * (len(specs) - len(vmlinux))]
    trees = [*modules_dirs, *[None] * (len(specs) - len(modules_dirs))]
    targets, errors = [], []
    for spec, image, tree in zip(specs, images, trees, strict=True):
        for one in fleet(spec):
            try:
                targets.append(load_target(one, image, tree, layouts))
            except AbicheckError as e:
                errors.append(e)
    return collapse_identical(targets), errors


def collapse_identical(targets: Sequence[KernelTarget]) -> list[KernelTarget]:
    """One target per kernel: a kernel named several times (a fleet directory of copies of
    one profile, a headers dir given twice) is checked and counted once. Identical means
    the same id (release and digest) and the same bytes: a profile's digest is what it
    says of itself, so two files claiming one digest are compared whole, and a damaged
    copy stays a target of its own. The first stands for the others, which it lists in
    ``also_named``, so that reports count kernels, not files."""
    from dataclasses import replace

    kept: dict[tuple[str, str], KernelTarget] = {}
    for t in targets:
        key = (t.id, _identity(t))
        first = kept.get(key)
        if first is None:
            kept[key] = t
        elif t.source != first.source and t.source not in first.also_named:
            kept[key] = replace(first, also_named=(*first.also_named, t.source))
    return list(kept.values())


def _identity(target: KernelTarget) -> str:
    """What makes two readings of a kernel the same: a profile's bytes, else the place."""
    if target.kind == "profile" and os.path.isfile(target.source):
        import hashlib

        h = hashlib.sha256()
        with open(target.source, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()
    return os.path.realpath(target.source) if target.source != "running" else "running"
