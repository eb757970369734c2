"""Amending a published dataset: new split sets (and other side files) are written in full,
checksummed, and then published by one atomic rewrite of the manifest. Tables never change.

Every amendment is a read-modify-write of ``meddata.json``. It runs under the dataset version's
lock (the file ``<name>/<version>.lock`` that ``convert`` holds while it writes that version),
re-reads the manifest inside the lock and applies its change to what it read there, so two
amendments made at the same time (two ``meddata split`` runs) both land. The stored datasheet is
refreshed in the same publish: its statistics then count the new split set.
"""

from __future__ import annotations

import copy
import hashlib
import io
import posixpath
import re
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import polars as pl

from meddata import storage
from meddata.dataset import Dataset, check_relative
from meddata.errors import (
    DatasetBusyError,
    DatasetChangedError,
    IncompleteDatasetError,
    MeddataError,
    SchemaError,
    UsageError,
)
from meddata.manifest import Manifest, read_manifest, write_manifest

_SPLIT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
RESERVED = ("official",)
#: How long an amendment waits for the dataset's lock (another split, or a conversion of the
#: same version) before it gives up.
LOCK_WAIT_S = 300.0


def add_split(
    ds: Dataset,
    name: str,
    assignments: pl.DataFrame,
    *,
    strategy: dict[str, Any],
    report: dict[str, Any],
    overwrite: bool = False,
) -> Dataset:
    """Write ``splits/<name>-<sha256[:12]>.parquet`` (person_id → split), record it in the
    manifest and refresh the stored datasheet, in one publish."""
    if not _SPLIT_NAME.match(name) or name in RESERVED:
        raise UsageError(
            f"{name!r} cannot name a split set.",
            "Use lower-case letters, digits, '-' and '_' (and not 'official', the release's own).",
        )
    _refuse_existing(ds.name, ds.manifest, name, overwrite)  # early: before any file is written
    frame = assignments.select(pl.col("person_id").cast(pl.Int64), pl.col("split").cast(pl.String))
    if frame["person_id"].n_unique() != frame.height:
        raise MeddataError(
            "Refusing to publish a split that puts a person in two splits.",
            "This is a bug in the splitter; please report it with the command you ran.",
        )
    buffer = io.BytesIO()
    frame.sort("person_id").write_parquet(buffer, compression="zstd", statistics=False)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    # A new file name per content: the published file is never rewritten, so a reader (or a
    # crash) between this write and the manifest's sees either the old set or the new one.
    rel = f"splits/{name}-{digest[:12]}.parquet"

    def change(manifest: Manifest) -> list[str]:
        _refuse_existing(ds.name, manifest, name, overwrite)  # again: as published now
        ds.fs.makedirs(storage.join(ds.root, "splits"), exist_ok=True)
        storage.atomic_write_bytes(ds.fs, storage.join(ds.root, rel), data)
        manifest.setdefault("splits", {})[name] = {
            "path": rel,
            "strategy": strategy,
            "sha256": digest,
            "report": report,
        }
        return [rel]

    return amend(ds, change)


def amend(ds: Dataset, change: Callable[[Manifest], list[str]]) -> Dataset:
    """Publish a change to ``ds``'s manifest and return the dataset as published.

    Under the dataset's lock, the manifest is read again and ``change`` edits a copy of it in
    place, writing any new files it needs (under new names) and returning their paths. The
    stored datasheet is then rewritten for the changed manifest, the manifest published, and
    files the new manifest no longer names removed. If anything fails before the manifest is
    written, the files written for it are removed and the published dataset is unchanged.
    """
    with dataset_lock(ds):
        published = read_manifest(ds.fs, ds.root)
        if published.get("tables") != ds.manifest.get("tables"):
            raise DatasetChangedError(
                f"Dataset {ds.name} {ds.version} was converted again after it was loaded here; "
                "nothing was recorded.",
                "Load it again and rerun the command (e.g. rerun `meddata split`).",
            )
        manifest = copy.deepcopy(published)
        written: list[str] = []
        try:
            written += change(manifest)
            entry = _refresh_datasheet(Dataset(ds.fs, ds.root, manifest), published)
            written += list(entry.get("sha256") or {})
            manifest["datasheet"] = entry
            write_manifest(ds.fs, ds.root, manifest)
        except BaseException:
            # Keep what a published manifest names: the one read here, and the one on disk
            # now (an interrupt can land after the manifest was replaced).
            on_disk = _files_on_disk(ds)
            if on_disk is not None:
                _remove(ds, set(written) - _files(published) - on_disk)
            raise
        _remove(ds, _files(published) - _files(manifest))
    return Dataset(ds.fs, ds.root, manifest)


def lock_path(ds: Dataset) -> str:
    """The dataset version's lock file: ``<name>/<version>.lock``, the one ``convert`` holds
    while it writes the version (so an amendment never interleaves with a conversion)."""
    root = ds.root.rstrip("/")
    return storage.join(posixpath.dirname(root), posixpath.basename(root) + ".lock")


@contextmanager
def dataset_lock(ds: Dataset, wait_s: float | None = None) -> Iterator[None]:
    """Hold the dataset version's lock, waiting up to ``wait_s`` (default :data:`LOCK_WAIT_S`)
    for another holder to finish (on object stores too: see ``storage.exclusive``)."""
    path = lock_path(ds)
    deadline = time.monotonic() + (LOCK_WAIT_S if wait_s is None else wait_s)
    delay = 0.005
    told = False
    while True:
        stack = ExitStack()
        try:
            stack.enter_context(storage.exclusive(ds.fs, path))
        except (IncompleteDatasetError, FileNotFoundError):
            # FileNotFoundError: the holder let go between our create and our read of its id.
            if not told and delay >= 0.25:  # say so once the wait is noticeable
                warnings.warn(
                    f"Dataset {ds.name} {ds.version} is locked by another meddata process "
                    f"({storage.lock_holder(ds.fs, path)}); waiting for it to finish.",
                    stacklevel=4,
                )
                told = True
            if time.monotonic() >= deadline:
                raise DatasetBusyError(
                    f"Dataset {ds.name} {ds.version} stayed locked by another process "
                    f"({storage.lock_holder(ds.fs, path)}: a conversion or another split) for "
                    f"{LOCK_WAIT_S if wait_s is None else wait_s:.0f} s; nothing was recorded.",
                    f"Wait for it to finish and rerun; remove {path} only if no meddata "
                    "process is running on this dataset.",
                ) from None
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
            continue
        with stack:
            yield
        return


def _refuse_existing(dataset: str, manifest: Manifest, name: str, overwrite: bool) -> None:
    if name in (manifest.get("splits") or {}) and not overwrite:
        raise UsageError(
            f"Dataset {dataset} already has a split set called {name!r}.",
            "Choose another --name, or pass --overwrite to replace it.",
        )


def _refresh_datasheet(ds: Dataset, published: Manifest) -> dict[str, Any]:
    """Write the datasheet of ``ds`` (the changed manifest) under new names; return its
    manifest entry. The stored answers are kept, and so are the stored statistics of the
    tables, which an amendment never changes: only the split-set facts are computed again, so
    the lock is held for the time it takes to read ``samples``, not every table."""
    from meddata.datasheet import write_dataset_datasheet
    from meddata.datasheet.publish import stored_healthsheet
    from meddata.datasheet.stats import statistics_after_amendment

    try:
        answers = stored_healthsheet(Dataset(ds.fs, ds.root, published))
    except MeddataError as exc:
        warnings.warn(
            f"The stored datasheet of {ds.name} {ds.version} cannot be read ({exc.message}); "
            "it is replaced by one built from the packaged answers.",
            stacklevel=4,
        )
        answers = None
    stored = answers.statistics if answers is not None else None
    return write_dataset_datasheet(ds, answers, statistics_after_amendment(ds, stored))


def _files(manifest: Manifest) -> set[str]:
    """Side files the manifest names (split sets and datasheet files; never tables)."""
    out = {
        str(info["path"])
        for info in (manifest.get("splits") or {}).values()
        if isinstance(info, dict) and info.get("path")
    }
    out |= set(((manifest.get("datasheet") or {}).get("sha256")) or {})
    return out


def _files_on_disk(ds: Dataset) -> set[str] | None:
    """Side files the manifest on disk names; None when it cannot be read (then nothing is
    removed: an unlisted file is harmless, a listed one missing is not)."""
    try:
        return _files(read_manifest(ds.fs, ds.root, check_schema=False))
    except Exception:
        return None


def _remove(ds: Dataset, paths: set[str]) -> None:
    """Remove side files (relative paths) no published manifest names; best effort."""
    for rel in sorted(paths):
        try:
            check_relative(rel)
            path = storage.join(ds.root, rel)
            if ds.fs.exists(path):
                ds.fs.rm(path)
        except (OSError, SchemaError):  # left behind, unlisted: harmless
            pass
