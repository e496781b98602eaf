"""Diffing two kernels' exports: deepdiff against the plain dict diff abicheck uses.

    python benchmarks/kdiff.py [A.json.gz B.json.gz]

Both read the same two saved profiles (default: samples/kernels/6.1.0-47 and 6.1.0-56)
and must agree on the removed, added and changed names; the figures decided that
abicheck.kernel_diff keeps the plain diff and does not depend on deepdiff (nor declares
it: pyproject.toml names only what abicheck imports).

Measured 2026-11-29 on the 2-core test machine, deepdiff 9.1.0, the machine busy:

    plain dict    0.256 s  removed 19, added 84, changed 18254
    deepdiff     22.677 s  removed 17, added 82, changed 17127
    agree: False

89 times slower, and its paths lose names (the counts Module.symvers itself gives are
the plain diff's: tests/test_kernel_diff.py). The one nested part of a profile that a
generic diff could serve, struct layouts, needs offsets compared member by member under
C's naming (anonymous members flattened, bitfield units), which kernel_diff does itself.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def exports(path: Path) -> dict[str, tuple[Any, ...]]:
    with gzip.open(path) as f:
        e = json.load(f)["exports"]
    owners = e["owners"]
    return {
        name: (crc, gpl == "1", ns, owners[o])
        for name, crc, gpl, ns, o in zip(
            e["name"], e["crc"], e["gpl_only"], e["namespace"], e["owner"], strict=True
        )
    }


def plain(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> tuple[set[str], ...]:
    removed, added = a.keys() - b.keys(), b.keys() - a.keys()
    changed = {n for n in a.keys() & b.keys() if a[n] != b[n]}
    return removed, added, changed


def deep(a: dict[str, tuple[Any, ...]], b: dict[str, tuple[Any, ...]]) -> tuple[set[str], ...]:
    from deepdiff import DeepDiff

    d = DeepDiff(a, b)

    def key(path: str) -> str:
        return path.split("['", 1)[1].split("']", 1)[0]

    removed = {key(p) for p in d.get("dictionary_item_removed", ())}
    added = {key(p) for p in d.get("dictionary_item_added", ())}
    changed = {key(p) for p in d.get("values_changed", {})} | {
        key(p) for p in d.get("type_changes", {})
    }
    return removed, added, changed


def main(argv: list[str]) -> None:
    pa, pb = (
        (Path(p) for p in argv)
        if argv
        else (
            ROOT / "samples/kernels/6.1.0-47-amd64.json.gz",
            ROOT / "samples/kernels/6.1.0-56-amd64.json.gz",
        )
    )
    a, b = exports(pa), exports(pb)
    results = {}
    for name, fn in (("plain dict", plain), ("deepdiff", deep)):
        t0 = time.perf_counter()
        got = fn(a, b)
        results[name] = got
        print(
            f"{name:10} {time.perf_counter() - t0:8.3f} s  removed {len(got[0])}, "
            f"added {len(got[1])}, changed {len(got[2])}"
        )
    print("agree:", results["plain dict"] == results["deepdiff"])


if __name__ == "__main__":
    main(sys.argv[1:])
