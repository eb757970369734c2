"""A small labelled, split, multi-shard dataset for the datasheet tests (built with the writer)."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest

import meddata
from meddata import storage
from meddata.dataset import Dataset
from meddata.manifest import FORMAT, FORMAT_VERSION, write_manifest
from meddata.writer import rows_to_table, write_table

LABELS = ["cardiomegaly", "edema"]
N_PERSONS = 12


def _rows(seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    rng = np.random.default_rng(seed)
    persons, occurrences, images, samples = [], [], [], []
    sexes = ["Male", "Female", None]
    ages = ["18-39", "40-59", "60-79", "80+"]
    races = ["White", "Black", "Asian", None]
    split_of = {p: ("train" if p < 8 else "valid" if p < 10 else "test") for p in range(N_PERSONS)}
    image_id = 0
    for p in range(N_PERSONS):
        pid = 1000 + p
        sex = sexes[p % 3]
        persons.append({"person_id": pid, "gender_concept_id": 0, "year_of_birth": 1950 + p})
        for s in range(1 + p % 3):
            study = f"1.2.3.{p}.{s}"
            occ = pid * 10 + s
            occurrences.append(
                {
                    "image_occurrence_id": occ,
                    "person_id": pid,
                    "image_study_uid": study,
                    "image_series_uid": study + ".1",
                    "modality_concept_id": 0,
                    "modality_source_value": "CR" if s % 2 == 0 else "DX",
                }
            )
            for _ in range(1 + (p + s) % 2):
                image_id += 1
                pixels = rng.integers(0, 255, size=(4, 4), dtype=np.uint8)
                images.append(
                    {
                        "image_id": image_id,
                        "image_occurrence_id": occ,
                        "person_id": pid,
                        "pixels": {
                            "data": pixels.tobytes(),
                            "codec": "raw",
                            "dtype": "uint8",
                            "shape": [4, 4],
                        },
                        "rows": 4,
                        "columns": 4,
                    }
                )
                values = [1.0, 0.0, -1.0, None]
                label = {
                    f"label_{n}": values[int(rng.choice(4, p=[0.3, 0.4, 0.1, 0.2]))] for n in LABELS
                }
                samples.append(
                    {
                        "sample_id": image_id,
                        "person_id": pid,
                        "split": split_of[p],
                        "image_id": image_id,
                        "sex": sex,
                        "age_group": ages[(p + s) % 4],
                        "race": races[p % 4],
                        "site": "Site A" if p % 2 else "Site B",
                        "device": ["Acme", "Zenith", None][(p + s) % 3],
                        **label,
                    }
                )
    return {
        "person": persons,
        "image_occurrence": occurrences,
        "image": images,
        "samples": samples,
    }


def build_dataset(out: Path, name: str = "chestx-mini") -> Dataset:
    """Write the dataset under ``out/<name>/1.0`` and open it."""
    fs, base = storage.open_fs(out)
    root = storage.join(base, name, "1.0")
    tables: dict[str, Any] = {}
    for table, rows in _rows().items():
        arrow = rows_to_table(table, rows)
        if table == "samples":  # two shards, to exercise FileSets and multi-shard reads
            half = arrow.num_rows // 2
            batches = [arrow.slice(0, half).combine_chunks(), arrow.slice(half).combine_chunks()]
            parts = [b.to_batches()[0] for b in batches]
            written = write_table(
                fs,
                root,
                table,
                parts,
                target_shard_bytes=1,
                row_group_bytes=min(b.nbytes for b in parts),
            )
        else:
            written = write_table(fs, root, table, arrow.to_batches())
        tables[table] = written.manifest_entry()
    samples = pl.read_parquet([storage.join(root, s["path"]) for s in tables["samples"]["shards"]])
    persons = samples.select("person_id").unique().sort("person_id")
    fair = persons.with_columns(
        pl.when(pl.col("person_id") % 3 == 0)
        .then(pl.lit("test"))
        .otherwise(pl.lit("train"))
        .alias("split")
    )
    fs.makedirs(storage.join(root, "splits"), exist_ok=True)
    buf = io.BytesIO()
    pq.write_table(fair.to_arrow(), buf)
    fs.pipe_file(storage.join(root, "splits/fair.parquet"), buf.getvalue())
    report = {
        "n_persons": N_PERSONS,
        "n_samples": samples.height,
        "splits": {
            "train": {"persons": 8, "samples": 20, "fraction_persons": 0.666667},
            "test": {"persons": 4, "samples": 10, "fraction_persons": 0.333333},
        },
        "max_deviation": {"value": 0.05, "split": "test", "attribute": "sex", "group": "Male"},
        "leakage": {"persons_in_multiple_splits": 0},
    }
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": "1.0",
        "title": "Chest X-ray mini",
        "created": "2026-01-02T03:04:05+00:00",
        "adapter": {"name": "chestx-mini", "version": "1", "options": {}},
        "source": {"fingerprint": "sha256:0", "units": N_PERSONS, "release": None},
        "tables": tables,
        "tasks": {"labels": LABELS, "sensitive_attributes": ["sex", "age_group", "race", "site"]},
        "splits": {
            "official": {"path": None, "strategy": {"kind": "official", "column": "split"}},
            "fair": {
                "path": "splits/fair.parquet",
                "strategy": {"kind": "fair"},
                "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                "report": report,
            },
        },
        "deid": {
            "profile": {"name": "basic"},
            "key_fingerprint": "hmac-sha256:abcd",
            "counts": {"NAME": 3, "DATE": 5},
        },
        "quarantine": {"count": 1, "path": None, "sha256": None},
    }
    write_manifest(fs, root, manifest)
    return meddata.load(root)


@pytest.fixture(scope="session")
def mini(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    """The labelled, split dataset (session-wide, read-only)."""
    return build_dataset(tmp_path_factory.mktemp("mini"))


def table_frame(ds: Dataset, name: str) -> pl.DataFrame:
    """A whole table, read directly with polars from its shards (independent of meddata)."""
    paths = [str(Path(ds.root) / s["path"]) for s in ds.manifest["tables"][name]["shards"]]
    return pl.concat([pl.read_parquet(p) for p in paths], how="vertical_relaxed")


__all__ = ["LABELS", "build_dataset", "mini", "table_frame"]
