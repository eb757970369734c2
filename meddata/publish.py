"""Amending a published dataset: new split sets (and other side files) are written in full,
checksummed, and then published by one atomic rewrite of the manifest. Tables never change."""

from __future__ import annotations

import copy
import hashlib
import io
import re
from typing import Any

import polars as pl

from meddata import storage
from meddata.dataset import Dataset
from meddata.errors import MeddataError, UsageError
from meddata.manifest import write_manifest

_SPLIT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
RESERVED = ("official",)


def add_split(
    ds: Dataset,
    name: str,
    assignments: pl.DataFrame,
    *,
    strategy: dict[str, Any],
    report: dict[str, Any],
    overwrite: bool = False,
) -> Dataset:
    """Write ``splits/<name>-<sha256[:12]>.parquet`` (person_id → split) and record it in the
    manifest."""
    if not _SPLIT_NAME.match(name) or name in RESERVED:
        raise UsageError(
            f"{name!r} cannot name a split set.",
            "Use lower-case letters, digits, '-' and '_' (and not 'official', the release's own).",
        )
    if name in ds.splits and not overwrite:
        raise UsageError(
            f"Dataset {ds.name} already has a split set called {name!r}.",
            "Choose another --name, or pass --overwrite to replace it.",
        )
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
    ds.fs.makedirs(storage.join(ds.root, "splits"), exist_ok=True)
    storage.atomic_write_bytes(ds.fs, storage.join(ds.root, rel), data)
    manifest = copy.deepcopy(ds.manifest)
    previous = (manifest.get("splits") or {}).get(name, {}).get("path")
    manifest.setdefault("splits", {})[name] = {
        "path": rel,
        "strategy": strategy,
        "sha256": digest,
        "report": report,
    }
    write_manifest(ds.fs, ds.root, manifest)
    if previous and previous != rel and ds.fs.exists(storage.join(ds.root, previous)):
        ds.fs.rm(storage.join(ds.root, previous))
    return Dataset(ds.fs, ds.root, manifest)
