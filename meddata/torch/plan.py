"""The read plan of a split: which payload row group holds each sample, and how an epoch's
samples are ordered and cut into one slice per (rank, worker).

The plan is built once, in the process that creates the loader, from the small columns only
(the samples table and the payload table's id column); it is pickled into each worker.
Slices are contiguous ranges of the epoch order, so every worker reads few row groups, and
they differ in length by at most one sample whatever the shard and row-group counts.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq

from meddata import storage
from meddata.errors import MeddataError, UsageError

if TYPE_CHECKING:
    from meddata.dataset import Dataset

ATTRIBUTES = ("sex", "age_group", "race", "ethnicity", "insurance", "skin_type", "site", "device")


class SampleError(MeddataError):
    """One sample could not be loaded; the message names it."""


@dataclass
class Plan:
    """Everything a worker needs to stream one split of one dataset."""

    fs: Any
    shard_paths: list[str]
    payload_table: str | None
    payload_columns: tuple[str, ...]
    sample_id: np.ndarray
    person_id: np.ndarray
    labels: np.ndarray  # float32 [n, L]; NaN where the label is null
    label_names: list[str]
    attributes: dict[str, list[str | None]]
    shard: np.ndarray  # int32 [n]
    row_group: np.ndarray  # int32 [n]
    row: np.ndarray  # int64 [n], row inside its row group
    units: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # unit start offsets
    fingerprint: str = ""

    def __len__(self) -> int:
        return int(self.sample_id.shape[0])

    def epoch_order(self, seed: int, epoch: int, shuffle: bool) -> np.ndarray:
        """Sample positions in epoch order: row groups shuffled, then rows inside each one."""
        n = len(self)
        if not shuffle:
            return np.arange(n, dtype=np.int64)
        rng = np.random.default_rng([seed, epoch, 0x5EED])
        bounds = np.append(self.units, n)
        parts = [
            bounds[u] + rng.permutation(bounds[u + 1] - bounds[u])
            for u in rng.permutation(len(self.units))
        ]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def split_bounds(n: int, parts: int) -> list[tuple[int, int]]:
    """Cut ``n`` items into ``parts`` contiguous ranges whose lengths differ by at most one."""
    base, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        stop = start + base + (1 if k < extra else 0)
        out.append((start, stop))
        start = stop
    return out


def buffer_shuffle(items: np.ndarray, buffer_size: int, rng: np.random.Generator) -> np.ndarray:
    """The order a bounded shuffle buffer of ``buffer_size`` emits ``items`` in.

    Computed on positions only, before any byte is read, so a worker holds at most the row
    groups that the window spans and a resumed epoch can skip ahead without reading.
    """
    if buffer_size <= 1 or len(items) <= 1:
        return items.copy()
    out = np.empty_like(items)
    buf = list(items[:buffer_size])
    picks = rng.random(len(items))
    o = 0
    for nxt in items[buffer_size:]:
        j = int(picks[o] * len(buf))
        out[o], buf[j] = buf[j], nxt
        o += 1
    tail = rng.permutation(len(buf))
    for j in tail:
        out[o] = buf[j]
        o += 1
    return out


def build_plan(
    ds: Dataset,
    split: str | None,
    splits: str,
    payload: tuple[str, str, tuple[str, ...]] | None,
    on_error: str,
) -> tuple[Plan, list[str]]:
    """Build the plan of ``split``; returns it and messages for samples that had to be skipped.

    ``payload`` is ``(table, id column, columns to read)`` or None for presets without one.
    """
    labels = ds.labels
    frame = ds.samples(split, splits) if split is not None else ds.samples()
    have = set(frame.collect_schema().names())
    attrs = [a for a in (*ATTRIBUTES, "view") if a in have]
    cols = ["sample_id", "person_id", *[f"label_{n}" for n in labels], *attrs]
    id_col = payload[1] if payload else None
    if id_col is not None:
        if id_col not in have:
            raise UsageError(
                f"Dataset {ds.name} has no samples.{id_col} column, which this preset reads.",
                "Choose a preset for the dataset's modality (see meddata.torch.PRESETS).",
            )
        cols.append(id_col)
    samples = frame.select(cols).collect()
    for column in ("sample_id", "person_id"):
        nulls = samples[column].null_count()
        if nulls:  # NumPy would turn them into floats, then into wrong ids
            raise SampleError(
                f"{nulls} sample(s) of dataset {ds.name} have no {column}, which the format "
                "requires.",
                "Run `meddata validate` on the dataset, then repair or re-convert it.",
            )
    if samples.height == 0:
        raise UsageError(
            f"Split {split!r} of dataset {ds.name} has no samples.",
            f"Its split sets: {', '.join(ds.splits) or 'none (use split=None for all samples)'}.",
        )
    skipped: list[str] = []
    shard_paths: list[str] = []
    if payload is not None and id_col is not None:
        table = payload[0]
        entry = ds.manifest["tables"].get(table)
        if entry is None:
            raise UsageError(f"Dataset {ds.name} has no {table} table.", "Choose another preset.")
        shard_paths = [storage.join(ds.root, s["path"]) for s in entry["shards"]]
        index = _payload_index(ds.fs, shard_paths, id_col)
        samples = samples.join(index, on=id_col, how="left", maintain_order="left")
        missing = samples.filter(pl.col("_shard").is_null())
        if missing.height:
            first = missing.row(0, named=True)
            message = (
                f"Sample {first['sample_id']} refers to {table} row {id_col}={first[id_col]}, "
                f"which does not exist ({missing.height} sample(s) in all)."
            )
            if on_error != "skip":
                raise SampleError(
                    message, "Run `meddata validate` on the dataset, or pass on_error='skip'."
                )
            skipped += [
                f"sample {r['sample_id']}: no {table} row {r[id_col]}"
                for r in missing.iter_rows(named=True)
            ]
            samples = samples.filter(pl.col("_shard").is_not_null())
        samples = samples.sort(["_shard", "_rg", "_row", "sample_id"])
        shard = samples["_shard"].to_numpy().astype(np.int32)
        rg = samples["_rg"].to_numpy().astype(np.int32)
        row = samples["_row"].to_numpy().astype(np.int64)
    else:
        samples = samples.sort("sample_id")
        shard = np.zeros(samples.height, np.int32)
        rg = (np.arange(samples.height) // 1024).astype(np.int32)
        row = np.zeros(samples.height, np.int64)
    key = shard.astype(np.int64) << 32 | rg.astype(np.int64)
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, np.int64)
    label_arr = (
        samples.select([pl.col(f"label_{n}").cast(pl.Float32) for n in labels]).to_numpy()
        if labels
        else np.zeros((samples.height, 0), np.float32)
    ).astype(np.float32)
    plan = Plan(
        fs=ds.fs,
        shard_paths=shard_paths,
        payload_table=payload[0] if payload else None,
        payload_columns=payload[2] if payload else (),
        sample_id=samples["sample_id"].to_numpy().astype(np.int64),
        person_id=samples["person_id"].to_numpy().astype(np.int64),
        labels=np.ascontiguousarray(label_arr),
        label_names=labels,
        attributes={a: samples[a].to_list() for a in attrs},
        shard=shard,
        row_group=rg,
        row=row,
        units=starts.astype(np.int64),
    )
    plan.fingerprint = _fingerprint(ds, split, splits, payload, plan)
    return plan, skipped


def _payload_index(fs: Any, paths: list[str], id_col: str) -> pl.DataFrame:
    """``id → (shard, row group, row)`` from the id column only (row-group metadata included)."""
    frames = []
    for s, path in enumerate(paths):
        with fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            for g in range(pf.num_row_groups):
                ids = pf.read_row_group(g, columns=[id_col]).column(0).to_numpy()
                frames.append(
                    pl.DataFrame(
                        {
                            id_col: ids,
                            "_shard": np.full(len(ids), s, np.int32),
                            "_rg": np.full(len(ids), g, np.int32),
                            "_row": np.arange(len(ids), dtype=np.int64),
                        }
                    )
                )
    if not frames:
        return pl.DataFrame(
            schema={id_col: pl.Int64, "_shard": pl.Int32, "_rg": pl.Int32, "_row": pl.Int64}
        )
    return pl.concat(frames).unique(id_col, keep="first", maintain_order=True)


def _fingerprint(ds: Dataset, split: str | None, splits: str, payload: Any, plan: Plan) -> str:
    """Changes whenever the dataset's bytes or the selected samples change."""
    tables = {
        t: [s["sha256"] for s in e["shards"]]
        for t, e in ds.manifest["tables"].items()
        if t in ("samples", payload[0] if payload else "samples")
    }
    digest = hashlib.sha256(
        json.dumps(
            {"tables": tables, "split": split, "splits": ds.splits.get(splits), "n": len(plan)},
            sort_keys=True,
            default=str,
        ).encode()
    )
    digest.update(plan.sample_id.tobytes())
    return digest.hexdigest()
