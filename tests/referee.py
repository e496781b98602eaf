"""The x86_64 referee's cases: which modules each Debian kernel role loads under
`abicheck prove`, in which order, and the drift set of tools/drift.py.

A case is one module, or a provider and its consumer (loaded in that order, the provider
staying loaded for the consumer); the cases of a role are given to one `abicheck prove`,
so one boot serves them all. The order is chosen for that one boot:

- the consumers alone come first: their provider, later in the same run, is not loaded
  yet, so the kernel refuses them with "Unknown symbol" (abicheck: DP002);
- a module whose name comes again (hello.ko, hello.ko.xz, ...) is removed by prove just
  before the next one of that name, so every case meets the kernel as it was;
- a drift module that loads but cannot be removed (no usable exit) goes last, so no
  module of its name meets it still loaded (prove would boot afresh for that one).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from abicheck.prove import vm

ROLES = ["6.1-a", "6.1-b", "6.12"]

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
# consumers that need dep_provider's export, loaded alone before any provider
CONSUMERS = ["dep_consumer.ko", "dep_consumer_nosyms.ko"]
PAIRS = [("dep_provider.ko", "dep_consumer.ko"), ("dep_provider.ko", "dep_consumer_nosyms.ko")]
UMS_ALAUDA = "drivers/usb/storage/ums-alauda"
# hello.ko built for other kernels, loaded into this one
FOREIGN = {
    "6.1-a": ["6.1-b", "6.12", "6.1-a-rt", "6.1-a-cloud"],
    "6.1-b": ["6.1-a", "6.1-b"],
    "6.12": ["6.1-a"],
}


@dataclass(frozen=True)
class Spec:
    """A case before its paths are known: (built role, file) pairs, or an in-tree module."""

    name: str
    built: tuple[tuple[str, str], ...] = ()
    intree: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    modules: tuple[str, ...]  # loaded in this order, one after another


def specs(role: str) -> list[Spec]:
    """The cases of a role, in the order they are loaded."""
    out: list[Spec] = []
    if role in ("6.1-a", "6.12"):
        own = COMMON_BUILT + (ONLY_61A if role == "6.1-a" else [])
        out += [Spec(n, ((role, n),)) for n in CONSUMERS]
        out += [Spec(n, ((role, n),)) for n in own if n not in CONSUMERS]
        out += [Spec(f"{p}+{c}", ((role, p), (role, c))) for p, c in PAIRS]
        out += [Spec(f"intree:{UMS_ALAUDA}", intree=UMS_ALAUDA)]
    out += [Spec(f"hello.ko@{b}", ((b, "hello.ko"),)) for b in FOREIGN[role]]
    return out


def available(spec: Spec, manifest: dict) -> bool:
    """Whether the test data holds every module of the case (a role may be unbuilt)."""
    built = manifest.get("built", {})
    return all(b in built and os.path.exists(os.path.join(built[b], f)) for b, f in spec.built)


def cases(manifest: dict, role: str) -> list[Case]:
    """The cases of a role whose modules exist, with their paths."""
    tree = manifest["kernels"][role]["modules"]
    out = []
    for spec in specs(role):
        if not available(spec, manifest):
            continue
        modules = [os.path.join(manifest["built"][b], f) for b, f in spec.built]
        if spec.intree:
            modules.append(vm.index_tree(tree)[vm.file_stem(spec.intree).replace("-", "_")])
        out.append(Case(spec.name, tuple(modules)))
    return out


# the drift set (tools/drift.py build-set): verdicts in the order their modules are loaded
DRIFT_ORDER = {"refused": 0, "loads": 1, "loads-tainted": 1, "loads-unsafe": 2}


def drift_cases(cache: str, role: str) -> list[dict] | None:
    """The drift cases of a role (None: not built)."""
    path = os.path.join(cache, "drift", "manifest.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return [c for c in json.load(f)["cases"] if c["role"] == role]


def stuck(result: dict) -> bool:
    """Loads with no exit the kernel's struct module knows: rmmod cannot remove it."""
    ly = [f for f in result["findings"] if f["rule"] == "LY002"]
    return bool(ly) and ly[0]["evidence"]["module_exit"] != ly[0]["evidence"]["kernel_exit"]


def drift_load_order(predicted: dict[str, dict]) -> list[str]:
    """Case names (``case:module``) in load order: refusals, loads, unsafe loads, and
    those that cannot be removed last."""
    return sorted(
        predicted,
        key=lambda k: (DRIFT_ORDER.get(predicted[k]["verdict"], 1), stuck(predicted[k])),
    )
