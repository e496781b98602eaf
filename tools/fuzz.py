#!/usr/bin/env python3
"""A longer fuzz campaign over the targets of tests/test_fuzz.py.

    nice -n 19 python tools/fuzz.py --minutes 15 --out /tmp/abicheck-fuzz
    nice -n 19 python tools/fuzz.py --minutes 5 --targets btf,dwarf

The same targets and mutation strategies as the CI harness, with random seeds and a large
budget. One process, round-robin over the targets in chunks, so a slow target does not
starve the others. Each distinct crash (exception type and the innermost abicheck frame)
is written once to ``--out`` as ``crash-<target>-<signature hash>.bin``, replaced by any
smaller input that hits the same crash while hypothesis shrinks it; a known crash is then
ignored, so the campaign goes on looking for new ones. An input that runs longer than
``--hang-seconds`` is a crash too (SIGALRM interrupts it). Copy what is worth keeping to
tests/data/fuzz/ as ``synthetic-crash-<target>-NNN.bin``: test_fuzz.py replays them.

Exit code 0 when nothing crashed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests")]

import test_fuzz  # noqa: E402
from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402


class Hang(Exception):
    pass


def _on_alarm(_signum: int, _frame: Any) -> None:
    raise Hang


def encode(value: object) -> bytes:
    """The input as the file test_fuzz.load_crash() reads back."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode()


def signature(e: BaseException) -> str:
    """Exception type plus the innermost frame in abicheck (the reader that broke)."""
    where = "?"
    for frame in traceback.extract_tb(e.__traceback__):
        if f"{os.sep}abicheck{os.sep}" in frame.filename:
            where = f"{os.path.relpath(frame.filename, REPO)}:{frame.lineno}"
    return f"{type(e).__name__} at {where}"


class Campaign:
    def __init__(self, out: str, hang_seconds: float) -> None:
        self.out = out
        self.hang_seconds = hang_seconds
        self.known: dict[str, str] = {}  # signature -> file written
        self.runs = 0
        self.per_target: dict[str, int] = {}

    def wrap(self, target: test_fuzz.Target):
        def run(value: object) -> None:
            self.runs += 1
            signal.setitimer(signal.ITIMER_REAL, self.hang_seconds)
            try:
                target.run(value)
            except (Exception, RecursionError) as e:  # every escape is a finding
                self.record(target.name, value, e)
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)

        return run

    def record(self, name: str, value: object, e: BaseException) -> None:
        sig = f"{name}: {signature(e)}"
        data = encode(value)
        path = self.known.get(sig)
        if path is not None and os.path.getsize(path) <= len(data):
            return
        if path is None:
            digest = hashlib.sha1(sig.encode()).hexdigest()[:10]
            path = os.path.join(self.out, f"crash-{name}-{digest}.bin")
            self.per_target[name] = self.per_target.get(name, 0) + 1
            print(f"NEW {sig} ({len(data)} bytes) -> {path}", flush=True)
            with open(path + ".txt", "w") as f:
                f.write(sig + "\n\n" + "".join(traceback.format_exception(e)))
        self.known[sig] = path
        with open(path, "wb") as f:
            f.write(data)

    def chunk(self, target: test_fuzz.Target, examples: int) -> None:
        @settings(
            max_examples=examples,
            derandomize=False,
            database=None,
            deadline=None,
            phases=(Phase.generate,),
            suppress_health_check=list(HealthCheck),
        )
        @given(target.strategy())
        def go(value: object) -> None:
            self.wrap(target)(value)

        go()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--out", default="fuzz-crashes", help="directory for crashing inputs")
    ap.add_argument("--targets", default="", help="comma-separated; default: all")
    ap.add_argument("--chunk", type=int, default=300, help="inputs per target per round")
    ap.add_argument("--hang-seconds", type=float, default=20.0)
    args = ap.parse_args()

    names = [n for n in args.targets.split(",") if n] or [t.name for t in test_fuzz.TARGETS]
    unknown = set(names) - set(test_fuzz.BY_NAME)
    if unknown:
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")
    os.makedirs(args.out, exist_ok=True)
    signal.signal(signal.SIGALRM, _on_alarm)
    campaign = Campaign(args.out, args.hang_seconds)
    deadline = time.monotonic() + 60 * args.minutes
    rounds = 0
    while time.monotonic() < deadline:
        for name in names:
            if time.monotonic() >= deadline:
                break
            target = test_fuzz.BY_NAME[name]
            # slow targets get fewer inputs per round, in the CI budget's proportion
            n = max(10, args.chunk * target.examples // test_fuzz.EXAMPLES)
            started = time.monotonic()
            try:
                campaign.chunk(target, n)
            except Exception as e:  # a broken strategy must not end the run
                print(f"round {rounds} {name}: harness error {type(e).__name__}: {e}", flush=True)
            print(
                f"round {rounds} {name}: {n} inputs in {time.monotonic() - started:.1f}s",
                flush=True,
            )
        rounds += 1
    print(f"{campaign.runs} inputs, {len(campaign.known)} distinct crashes", flush=True)
    for name, count in sorted(campaign.per_target.items()):
        print(f"  {name}: {count}")
    return 1 if campaign.known else 0


if __name__ == "__main__":
    sys.exit(main())
