"""Run a whole check: read every module, then check each against each target.

Big runs (a module tree) are split over worker processes, one per core. Modules depend on
each other's exports, so the work goes in two phases: each worker reads its share and
sends back only a summary of each module (name, license, exports); the parent merges
them into the run's export table in load order and sends it back; each worker then
checks the modules it kept in memory. The kernel targets are loaded once, before the
workers fork, and shared copy-on-write.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from abicheck.context import Assumptions, BuildTree, RunContext, RunEntry
from abicheck.engine import check_module, unreadable_result
from abicheck.errors import ModuleReadError, TargetError
from abicheck.model import KernelTarget, Module, Result
from abicheck.readers.compressed import DEFAULT_LIMIT
from abicheck.readers.module import read_module

if TYPE_CHECKING:  # annotations only: multiprocessing is imported lazily, for big runs
    from multiprocessing.connection import Connection

    from rich.progress import Progress

# Below this many modules, forking costs more than it saves.
PARALLEL_THRESHOLD = 48


@dataclass(frozen=True)
class RunOptions:
    """How a run reads and checks its modules, beyond the modules and targets themselves."""

    assumptions: Assumptions = field(default_factory=Assumptions)
    limit: int = DEFAULT_LIMIT  # largest decompressed module, in bytes
    certs: list | None = None  # certificates to verify signatures against (--trusted-keys)
    jobs: int | None = None  # worker processes; None: one per CPU
    build_tree: BuildTree | None = None
    # a rich progress bar on stderr, or None; owned by the face, advanced here
    progress: Progress | None = None


@dataclass
class RunOutput:
    errors: list[ModuleReadError]  # unreadable inputs, in input order
    results: list[Result]  # target-major, inputs in order
    # targets whose input failed while being read lazily (a profile's BTF), by their
    # index in the targets given: they have no results, the others keep theirs
    target_errors: dict[int, TargetError] = field(default_factory=dict)


def _read(path: str | ModuleReadError, limit: int, certs: list | None) -> Module | ModuleReadError:
    if isinstance(path, ModuleReadError):
        return path
    try:
        return read_module(path, limit, certs)
    except ModuleReadError as e:
        return e


def run_checks(
    paths: Sequence[str | ModuleReadError],
    targets: Sequence[KernelTarget],
    options: RunOptions | None = None,
) -> RunOutput:
    options = options or RunOptions()
    assumptions, limit, certs = options.assumptions, options.limit, options.certs
    build_tree, progress = options.build_tree, options.progress
    jobs = options.jobs or os.cpu_count() or 1
    if jobs > 1 and len(paths) >= PARALLEL_THRESHOLD and hasattr(os, "fork"):
        with progress or _Null():
            task = (
                progress.add_task("checking", total=len(paths) * len(targets)) if progress else None
            )
            return _run_parallel(
                list(paths),
                targets,
                assumptions,
                limit,
                certs,
                jobs,
                build_tree,
                lambda n: progress.advance(task, n) if progress and task is not None else None,
            )
    with progress or _Null():
        task = progress.add_task("checking", total=len(paths) * len(targets)) if progress else None
        items = [_read(p, limit, certs) for p in paths]
        modules = [m for m in items if isinstance(m, Module)]
        run = RunContext.of(modules, assumptions, build_tree)
        results = []
        failed: dict[int, TargetError] = {}
        for t, target in enumerate(targets):
            mine = []
            run.current = -1
            for item in items:
                try:
                    if isinstance(item, ModuleReadError):
                        mine.append(unreadable_result(item, target))
                    else:
                        run.current += 1
                        mine.append(check_module(item, target, run))
                except TargetError as e:
                    failed[t] = e
                    break
                if progress and task is not None:  # task is None only without progress
                    progress.advance(task)
            if t not in failed:
                results += mine
    return RunOutput([i for i in items if isinstance(i, ModuleReadError)], results, failed)


class _Null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _worker(
    conn: Connection,
    paths: list[tuple[int, str | ModuleReadError]],
    targets: Sequence[KernelTarget],
    assumptions: Assumptions,
    limit: int,
    certs: list | None,
    build_tree: BuildTree | None = None,
) -> None:
    try:
        items = [(i, _read(p, limit, certs)) for i, p in paths]
        conn.send([(i, RunEntry.of(m) if isinstance(m, Module) else m) for i, m in items])
        entries, positions = conn.recv()
        run = RunContext(entries, assumptions, build_tree)
        # i == -1 with a TargetError marks a target that could not be used at all
        out: list[tuple[int, int, Result | TargetError]] = []
        for t, target in enumerate(targets):
            for n, (i, item) in enumerate(items, 1):
                try:
                    if isinstance(item, ModuleReadError):
                        out.append((t, i, unreadable_result(item, target)))
                    else:
                        run.current = positions[i]
                        out.append((t, i, check_module(item, target, run)))
                except TargetError as e:  # this target is unusable; the others go on
                    out.append((t, -1, e))
                    break
                if n % 100 == 0:
                    conn.send(("tick", 100))
        conn.send(("done", out))
    except BaseException:  # report to the parent rather than dying silently
        conn.send(("error", traceback.format_exc()))
    finally:
        conn.close()


def _run_parallel(
    paths: list[str | ModuleReadError],
    targets: Sequence[KernelTarget],
    assumptions: Assumptions,
    limit: int,
    certs: list | None,
    jobs: int,
    build_tree: BuildTree | None = None,
    tick: Callable[[int], object] | None = None,
) -> RunOutput:
    import multiprocessing  # only big runs pay for importing it

    ctx = multiprocessing.get_context("fork")
    from abicheck.readers.compressed import set_large_gate

    set_large_gate(ctx.Lock())  # inherited by the workers: one large decompression at a time
    indexed = list(enumerate(paths))
    # interleave so that large neighbouring modules (one driver family) spread out
    shares = [indexed[w::jobs] for w in range(jobs)]
    workers = []
    for share in shares:
        parent, child = ctx.Pipe()
        proc = ctx.Process(
            target=_worker,
            args=(child, share, list(targets), assumptions, limit, certs, build_tree),
            daemon=True,
        )
        proc.start()
        child.close()
        workers.append((proc, parent))
    summaries: dict[int, RunEntry | ModuleReadError] = {}
    for _proc, conn in workers:
        got = conn.recv()
        _raise_if_error(got)
        summaries.update(got)
    ordered = [summaries[i] for i in range(len(paths))]
    entries = [e for e in ordered if isinstance(e, RunEntry)]
    # each path's position among the readable modules, the run's load order
    readable = [i for i, e in enumerate(ordered) if isinstance(e, RunEntry)]
    positions = {i: k for k, i in enumerate(readable)}
    for _proc, conn in workers:
        conn.send((entries, positions))
    collected: dict[tuple[int, int], Result | TargetError] = {}
    for proc, conn in workers:
        while True:
            got = conn.recv()
            _raise_if_error(got)
            if got[0] == "tick":
                if tick:
                    tick(got[1])
                continue
            collected.update(((t, i), r) for t, i, r in got[1])
            break
        proc.join()
    set_large_gate(None)
    if tick:
        tick(0)
    failed = {t: e for (t, i), e in collected.items() if i == -1}
    results = [
        collected[(t, i)] for t in range(len(targets)) if t not in failed for i in range(len(paths))
    ]
    errors = [e for e in ordered if isinstance(e, ModuleReadError)]
    return RunOutput(errors, results, failed)  # type: ignore[arg-type]


def _raise_if_error(got: object) -> None:
    if isinstance(got, tuple) and len(got) == 2 and got[0] == "error":
        raise RuntimeError("a worker process failed:\n" + got[1])


def check_installed(
    paths: Sequence[str | ModuleReadError], targets: Sequence[KernelTarget]
) -> RunOutput:
    """Modules built for one kernel, checked against another with the default
    assumptions: what `abicheck upgrade --to` and `abicheck kernel diff --modules` run."""
    return run_checks(paths, targets, RunOptions())


def broken(results: Sequence[Result]) -> list[Result]:
    """The results whose module will not work: refused, unsafe once loaded, unreadable."""
    from abicheck.model import Verdict

    bad = (Verdict.REFUSED, Verdict.LOADS_UNSAFE, Verdict.UNREADABLE)
    return [r for r in results if r.verdict in bad]
