"""Small synthetic CheXpert-Plus-like datasets written through the core writer.

For tests and benchmarks of the loaders (they must not depend on a real release or on an
adapter): a ``samples`` table with 14 CheXpert labels (1/0/-1/null) and sensitive attributes,
an ``image`` table of PNG (or JPEG/zstd) tensor cells with chest-radiograph-like pixels, and a
``note`` table with short reports.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from typing import Any

import numpy as np
import pyarrow as pa

from meddata import storage
from meddata.manifest import FORMAT, FORMAT_VERSION, write_manifest
from meddata.tensor import encode
from meddata.writer import write_table

CHEXPERT_LABELS = (
    "no_finding",
    "enlarged_cardiomediastinum",
    "cardiomegaly",
    "lung_opacity",
    "lung_lesion",
    "edema",
    "consolidation",
    "pneumonia",
    "atelectasis",
    "pneumothorax",
    "pleural_effusion",
    "pleural_other",
    "fracture",
    "support_devices",
)


def chest_pixels(
    rng: np.random.Generator, rows: int, cols: int, bases: list[np.ndarray]
) -> np.ndarray:
    """A uint8 chest-like image: one of ``bases`` shifted a little, with fresh noise."""
    base = bases[int(rng.integers(len(bases)))]
    dy, dx = (int(v) for v in rng.integers(-6, 7, size=2))
    img = np.roll(base, (dy, dx), axis=(0, 1))[:rows, :cols].astype(np.int16)
    img += rng.integers(-4, 5, size=img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_cxr_dataset(
    out: str | os.PathLike[str],
    n: int = 64,
    *,
    size: tuple[int, int] = (320, 390),
    codec: str = "png",
    seed: int = 0,
    name: str = "synthetic-cxr",
    version: str = "1.0",
    row_group_bytes: int = 16 << 20,
    target_shard_bytes: int = 256 << 20,
    persons: int | None = None,
    with_notes: bool = True,
    corrupt: tuple[int, ...] = (),
    labels: bool = True,
) -> str:
    """Write an ``n``-sample dataset to ``out/<name>/<version>`` (local path or fsspec URL).

    About 80 % of persons are ``train``, 10 % ``valid``, 10 % ``test``. ``corrupt`` lists sample
    indices whose pixel bytes are replaced by garbage. Returns the dataset's path or URL.
    """
    from meddata.adapters._synth_dicom import chest_like

    rng = np.random.default_rng(seed)
    rows, cols = size
    bases = [
        (chest_like(np.random.default_rng(seed + b), rows + 12, cols + 12) >> 4).astype(np.uint8)
        for b in range(8)
    ]
    persons = persons or max(1, n // 3)
    person_of = np.sort(rng.integers(0, persons, size=n))
    split_of_person = rng.choice(["train", "valid", "test"], size=persons, p=[0.8, 0.1, 0.1])
    label_names = CHEXPERT_LABELS if labels else ()
    values = rng.choice(
        [1.0, 0.0, -1.0, np.nan], size=(n, len(CHEXPERT_LABELS)), p=[0.2, 0.4, 0.1, 0.3]
    )
    samples: dict[str, list[Any]] = {
        k: []
        for k in (
            "sample_id",
            "person_id",
            "split",
            "image_id",
            "note_id",
            "view",
            "sex",
            "age_group",
            "race",
        )
    }
    images: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for i in range(n):
        pid = 1000 + int(person_of[i])
        pixels = chest_pixels(rng, rows, cols, bases)
        cell = encode(pixels, codec)
        if i in corrupt:
            cell = {**cell, "data": b"\x89PNG not really" + bytes(16)}
        images.append(
            {
                "image_id": 500_000 + i,
                "image_occurrence_id": 700_000 + i,
                "person_id": pid,
                "pixels": cell,
                "rows": rows,
                "columns": cols,
                "frames": 1,
                "samples_per_pixel": 1,
                "photometric_interpretation": "MONOCHROME2",
                "source_codec": codec,
            }
        )
        samples["sample_id"].append(i + 1)
        samples["person_id"].append(pid)
        samples["split"].append(str(split_of_person[person_of[i]]))
        samples["image_id"].append(500_000 + i)
        samples["note_id"].append(900_000 + i if with_notes else None)
        samples["view"].append("frontal" if i % 4 else "lateral")
        samples["sex"].append(["Male", "Female", "Unknown"][pid % 3])
        samples["age_group"].append(["18-39", "40-59", "60-79", "80+"][pid % 4])
        samples["race"].append(["White", "Black", "Asian", "Unknown"][pid % 4])
        if with_notes:
            notes.append(
                {
                    "note_id": 900_000 + i,
                    "person_id": pid,
                    "note_date": dt.date(2020, 1, 1),
                    "note_type_concept_id": 0,
                    "note_class_concept_id": 0,
                    "note_text": f"FINDINGS: sample {i + 1}. "
                    + "Clear lungs. " * int(rng.integers(1, 6)),
                    "encoding_concept_id": 0,
                    "language_concept_id": 0,
                }
            )
    columns: dict[str, Any] = dict(samples)
    for j, label in enumerate(label_names):
        columns[f"label_{label}"] = pa.array(values[:, j], pa.float32(), from_pandas=True)
    fs, base = storage.open_fs(out)
    root = storage.join(base, name, version)
    if fs.exists(root):
        fs.rm(root, recursive=True)
    fs.makedirs(root, exist_ok=True)
    opts = {"row_group_bytes": row_group_bytes, "target_shard_bytes": target_shard_bytes}
    tables = {
        "samples": pa.table(columns),
        "image": pa.Table.from_pylist(images),
    }
    if with_notes:
        tables["note"] = pa.Table.from_pylist(notes)
    written = {
        t: write_table(fs, root, t, tab.to_batches(max_chunksize=64), **opts)
        for t, tab in tables.items()
    }
    fingerprint = hashlib.sha256(
        f"{name}/{n}/{size}/{codec}/{seed}/{corrupt}/{labels}".encode()
    ).hexdigest()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "title": "Synthetic CheXpert-Plus-like chest X-rays (loader tests and benchmarks)",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "adapter": {"name": "synthetic-cxr", "version": "1", "options": {"codec": codec}},
        "source": {"fingerprint": "sha256:" + fingerprint, "units": n, "release": None},
        "tables": {t: w.manifest_entry() for t, w in written.items()},
        "tasks": {
            "labels": list(label_names),
            "sensitive_attributes": ["sex", "age_group", "race"],
        },
        "splits": {"official": {"path": None, "strategy": {"kind": "official", "column": "split"}}},
        "deid": None,
        "quarantine": {"count": 0, "path": None, "sha256": None},
    }
    write_manifest(fs, root, manifest)
    return storage.url_of(fs, root)
