"""The local engine: runs ``convert(unit)`` for every work unit on a process pool and stages
the rows from inside the workers, so payload bytes never travel back through a pipe."""

from __future__ import annotations

import gc
import json
import logging
import multiprocessing as mp
import os
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
import pyarrow as pa

from meddata.adapter import Adapter, QuarantineEntry, WorkUnit
from meddata.errors import MeddataError
from meddata.writer import JournalEntry, UnitStager, rows_to_table


@dataclass(frozen=True)
class AdapterSpec:
    """Everything a worker needs to build its own adapter instance (picklable)."""

    cls: type[Adapter]
    source: str
    options: dict[str, str]
    deid_key: bytes | None = None
    deid_options: dict[str, Any] | None = None

    def build(self) -> Adapter:
        return self.cls(
            self.source, self.options, deid_key=self.deid_key, deid_options=self.deid_options
        )


_worker_adapter: Adapter | None = None


def _init_worker(spec: AdapterSpec) -> None:
    global _worker_adapter
    _worker_adapter = spec.build()
    _exit_with_parent(os.getppid())


def _exit_with_parent(parent: int) -> None:
    """End this worker when the process that started it is gone (SIGKILL leaves workers
    blocked on their task queue forever otherwise, holding memory and open files)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="meddata-parent-watch", daemon=True).start()


def run_unit(
    adapter: Adapter, fs: fsspec.AbstractFileSystem, staging: str, seq: int, unit: WorkUnit
) -> JournalEntry:
    """Convert and stage one unit, part by part (``Adapter.convert_parts``). Bad input in the
    unit is quarantined, not fatal; a failure to write the staged rows (disk full,
    permissions, network) stops the run instead, since that is not the input's fault and the
    run can be resumed once it is fixed."""
    stager = UnitStager(fs, staging, seq)
    quarantine: list[QuarantineEntry] = []
    deid_counts: Counter[str] = Counter()
    parts = adapter.convert_parts(unit)
    while True:
        try:
            part = next(parts, None)
            if part is None:
                break
            adapter.collect_deid_counts(part)
            tables = {name: rows_to_table(name, rows) for name, rows in part.tables.items()}
        except Exception as exc:  # bad input (any parser error): quarantine the whole unit
            reason = exc.message if isinstance(exc, MeddataError) else None
            reason = reason or f"could not be converted ({type(exc).__name__})"
            stager.abort()
            quarantine = [QuarantineEntry(unit.key, reason, type(exc).__name__)]
            deid_counts = Counter()
            break
        quarantine += part.quarantine
        deid_counts.update(part.deid_counts)
        stager.add(tables)  # I/O errors propagate
    rows, shards, files = stager.close()
    return JournalEntry(
        seq=seq,
        key=unit.key,
        fingerprint=unit.fingerprint,
        rows=rows,
        shards=shards,
        files=files,
        quarantine=[q.to_dict(unit.key) for q in quarantine],
        deid_counts=dict(deid_counts),
    )


def _worker_run(
    fs: fsspec.AbstractFileSystem, staging: str, seq: int, unit: WorkUnit
) -> JournalEntry:
    assert _worker_adapter is not None
    return run_unit(_worker_adapter, fs, staging, seq, unit)


def run_units(
    spec: AdapterSpec,
    units: Sequence[tuple[int, WorkUnit]],
    fs: fsspec.AbstractFileSystem,
    staging: str,
    *,
    workers: int,
    on_done: Callable[[JournalEntry], None],
    on_started: Callable[[], None] | None = None,
) -> None:
    """Run ``units`` (``(seq, unit)`` pairs) and call ``on_done`` in the main process for each,
    as they finish. ``on_done`` may raise to stop the run (``--strict``). ``on_started`` runs
    once in the main process while the workers convert (for work the main process will need
    afterwards)."""
    if workers <= 1 or len(units) <= 1:
        if on_started is not None:
            on_started()
        adapter = spec.build()
        for seq, unit in units:
            on_done(run_unit(adapter, fs, staging, seq, unit))
        return
    ctx = _worker_context()
    with _prepared_to_fork(ctx):
        done: set[int] = set()

        def finish(entry: JournalEntry) -> None:
            on_done(entry)
            done.add(entry.seq)

        try:
            with ProcessPoolExecutor(
                workers, mp_context=ctx, initializer=_init_worker, initargs=(spec,)
            ) as pool:
                pending: set[Future[JournalEntry]] = set()
                todo: Iterator[tuple[int, WorkUnit]] = iter(units)
                try:
                    for seq, unit in todo:
                        pending.add(pool.submit(_worker_run, fs, staging, seq, unit))
                        if on_started is not None:  # the workers are running from the first submit
                            on_started()
                            on_started = None
                        if len(pending) >= workers * 4:  # bounded in-flight work keeps memory flat
                            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
                            for fut in finished:
                                finish(fut.result())
                    for fut in _as_done(pending):
                        finish(fut.result())
                except BaseException:
                    for fut in pending:
                        fut.cancel()
                    raise
        except BrokenProcessPool:
            # A worker died (a crashing decoder, the OOM killer): find the unit that kills it by
            # running each unfinished unit alone, and quarantine that one.
            for seq, unit in units:
                if seq not in done:
                    finish(_run_isolated(spec, fs, staging, seq, unit, ctx))


@contextmanager
def _prepared_to_fork(ctx: Any) -> Iterator[None]:
    """Before forking workers: import what every worker would otherwise import on its own,
    and freeze the inherited heap so the workers' GC never scans it (nor copies it on write).
    Not frozen when the caller froze objects itself: unfreezing afterwards would release
    theirs too."""
    if ctx.get_start_method() != "fork":
        yield
        return
    _import_lazy_dependencies()
    freeze = gc.get_freeze_count() == 0
    if freeze:
        gc.freeze()
    try:
        yield
    finally:
        if freeze:
            gc.unfreeze()


def _worker_context() -> Any:
    """Fork on Linux when no other Python thread runs: workers start in milliseconds with
    every module the main process has imported (pyarrow, pydicom, the adapter), where a fork
    server or spawn makes each import them again (about 0.5 s of CPU per worker). With other
    threads alive (a notebook kernel, a server), a lock one of them holds could stay locked in
    the child forever: then, and off Linux, a fork server (or spawn)."""
    methods = mp.get_all_start_methods()
    if sys.platform.startswith("linux") and "fork" in methods and threading.active_count() == 1:
        return mp.get_context("fork")
    return mp.get_context("forkserver" if "forkserver" in methods else "spawn")


def _import_lazy_dependencies() -> None:
    """pyarrow imports pandas (when installed) the first time it converts a Python list: do
    it once here, before forking, rather than once in every worker."""
    pa.array([0])


def _run_isolated(
    spec: AdapterSpec,
    fs: fsspec.AbstractFileSystem,
    staging: str,
    seq: int,
    unit: WorkUnit,
    ctx: Any,
) -> JournalEntry:
    try:
        with ProcessPoolExecutor(
            1, mp_context=ctx, initializer=_init_worker, initargs=(spec,)
        ) as pool:
            return pool.submit(_worker_run, fs, staging, seq, unit).result()
    except BrokenProcessPool:
        reason = "the worker process died while converting it (a crash or out of memory)"
        return JournalEntry(
            seq=seq,
            key=unit.key,
            fingerprint=unit.fingerprint,
            rows={},
            quarantine=[QuarantineEntry(unit.key, reason, "WorkerDied").to_dict(unit.key)],
        )


class _RayUnitRunner:
    """A Ray Data actor: builds the adapter once, then converts and stages units. Each row
    carries its own unit, so the constructor's arguments stay small (Ray inlines them instead
    of keeping them in its object store, where a restarted actor could lose them)."""

    def __init__(self, spec: AdapterSpec, fs: fsspec.AbstractFileSystem, staging: str) -> None:
        self.adapter, self.fs, self.staging = spec.build(), fs, staging

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        seq, unit = int(row["seq"]), row["unit"]
        entry = run_unit(self.adapter, self.fs, self.staging, seq, unit)
        return {"entry": json.dumps(entry.__dict__)}


def run_units_ray(
    spec: AdapterSpec,
    units: Sequence[tuple[int, WorkUnit]],
    fs: fsspec.AbstractFileSystem,
    staging: str,
    *,
    workers: int,
    on_done: Callable[[JournalEntry], None],
    on_started: Callable[[], None] | None = None,
) -> None:
    """The same contract as ``run_units``, on Ray Data (a local Ray, or the cluster that
    ``RAY_ADDRESS`` names). Workers stage their own rows, so the published tables are
    byte-identical to the local engine's; on a multi-node cluster the output must be on
    storage every node can reach (object storage or a shared filesystem)."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MeddataError(
            "The ray engine needs Ray Data.", "Install it with: pip install 'meddata[ray]'."
        ) from exc
    if not units:
        return
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if not ray.is_initialized():
        local = not os.environ.get("RAY_ADDRESS")
        ray.init(
            num_cpus=workers if local else None,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.ERROR,
        )
    context = ray.data.DataContext.get_current()
    saved = (context.enable_progress_bars, context.max_errored_blocks)
    # A unit whose worker dies is not retried on another worker (it would kill that one too,
    # for ever): its block is dropped here and the unit is run alone below, as the local engine
    # does, which quarantines a crash and lets a storage error stop the run.
    context.enable_progress_bars, context.max_errored_blocks = False, -1
    items = [{"seq": seq, "unit": unit} for seq, unit in units]
    with warnings.catch_warnings():
        # The retry limits have no named parameters yet; Ray warns about keywords.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        dataset = ray.data.from_items(items, override_num_blocks=len(items)).map(
            _RayUnitRunner,  # type: ignore[arg-type]  # Ray takes a callable class here
            fn_constructor_args=(spec, fs, staging),
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            num_cpus=1,
            max_restarts=0,
            max_task_retries=0,
        )
    if on_started is not None:
        on_started()
    done: set[int] = set()
    try:
        for row in dataset.iter_rows():
            entry = JournalEntry(**json.loads(row["entry"]))
            done.add(entry.seq)
            on_done(entry)
    finally:
        context.enable_progress_bars, context.max_errored_blocks = saved
    for seq, unit in units:
        if seq not in done:
            on_done(_run_isolated(spec, fs, staging, seq, unit, _worker_context()))


def _as_done(pending: set[Future[JournalEntry]]) -> Iterator[Future[JournalEntry]]:
    while pending:
        finished, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from finished


def default_workers() -> int:
    """Worker processes to use by default: the CPUs this process may run on."""
    return max(
        1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    )
