"""`meddata split` publishes a leakage-free split set that loaders and `info` then use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest

import meddata
from meddata.errors import UsageError
from meddata.publish import add_split
from meddata.validate import validate
from tests.conftest import run_cli


@pytest.fixture
def dataset(dicom_dataset: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "dicom-folder" / "1.0"
    shutil.copytree(dicom_dataset, copy)
    return copy


def test_split_cli_writes_and_records_a_split_set(dataset: Path, tmp_path: Path) -> None:
    meds = tmp_path / "meds" / "subject_splits.parquet"
    out = run_cli(
        "split",
        str(dataset),
        "--name",
        "fair",
        "--fractions",
        "train=0.5,val=0.25,test=0.25",
        "--seed",
        "3",
        "--export-meds",
        str(meds),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    ds = meddata.load(str(dataset))
    entry = ds.splits["fair"]
    assert entry["path"].startswith("splits/fair-") and entry["strategy"]["seed"] == 3
    assignments = pl.read_parquet(dataset / entry["path"])
    assert assignments["person_id"].is_unique().all()
    assert set(assignments["person_id"]) == set(ds.table("person").collect()["person_id"])
    seen: set[int] = set()
    for name in assignments["split"].unique():
        persons = set(ds.samples(name, splits="fair").collect()["person_id"])
        assert not persons & seen
        seen |= persons
    assert set(pl.read_parquet(meds)["split"]) <= {"train", "tuning", "held_out"}
    assert validate(str(dataset)).ok
    info = run_cli("info", str(dataset))
    assert "split set fair" in info.stdout


def test_split_checksum_is_validated(dataset: Path) -> None:
    run_cli("split", str(dataset), "--name", "fair")
    path = dataset / meddata.load(str(dataset)).splits["fair"]["path"]
    path.write_bytes(path.read_bytes() + b"x")
    assert any("split fair" in p for p in validate(str(dataset)).problems)


def test_split_set_names_and_overwrite(dataset: Path) -> None:
    ds = meddata.load(str(dataset))
    frame = (
        ds.table("person")
        .select("person_id")
        .collect()
        .with_columns(pl.lit("train").alias("split"))
    )
    ds = add_split(ds, "all-train", frame, strategy={"kind": "manual"}, report={})
    with pytest.raises(UsageError, match="--overwrite"):
        add_split(ds, "all-train", frame, strategy={"kind": "manual"}, report={})
    with pytest.raises(UsageError, match="official"):
        add_split(ds, "official", frame, strategy={}, report={})
    leaky = pl.concat([frame, frame.with_columns(pl.lit("test").alias("split"))])
    with pytest.raises(meddata.MeddataError, match="two splits"):
        add_split(ds, "leaky", leaky, strategy={}, report={}, overwrite=True)
    assert json.loads((dataset / "meddata.json").read_text())["splits"]["all-train"][
        "path"
    ].startswith("splits/all-train-")


def test_split_usage_errors(dataset: Path) -> None:
    out = run_cli("split", str(dataset), "--name", "x", "--fractions", "train=0.8", "--folds", "3")
    assert out.returncode == 2 and "cannot be used together" in out.stderr


def test_official_split_is_kept_with_its_report(tmp_path: Path) -> None:
    from meddata.adapters.chexpert_plus import ChexpertPlusAdapter
    from meddata.convert import convert

    src = ChexpertPlusAdapter.synthesize(tmp_path / "src", n=8, seed=2)
    ds = meddata.load(
        convert(
            "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
        ).path
    )
    official = ds.splits["official"]
    assert official["path"] is None and official["strategy"]["kind"] == "official"
    report = official["report"]
    samples = ds.samples().collect()
    assert report["n_samples"] == samples.filter(pl.col("split").is_not_null()).height
    assert set(report["splits"]) == set(samples["split"].drop_nulls())
    assert "persons_in_multiple_splits" in report["leakage"]
    assert ds.samples("valid").collect()["split"].unique().to_list() in ([], ["valid"])
