"""`meddata split` publishes a leakage-free split set that loaders and `info` then use."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

import meddata
from meddata.errors import UsageError
from meddata.publish import add_split
from meddata.validate import validate
from tests.conftest import run_cli


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


def _split_files(dataset: Path) -> list[str]:
    folder = dataset / "splits"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_holdout_on_an_unknown_column_is_a_usage_error(dataset: Path) -> None:
    out = run_cli("split", str(dataset), "--name", "ood", "--holdout", "nosuch=B")
    assert out.returncode == 2, out.stderr
    assert "Holdout needs column(s) nosuch" in out.stderr
    assert "Available columns: " in out.stderr and "unexpectedly" not in out.stderr
    assert "ood" not in meddata.load(str(dataset)).splits


def test_holdout_on_a_column_without_values_says_so(dataset: Path) -> None:
    site = meddata.load(str(dataset)).table("samples").collect()["site"]
    assert site.null_count() == site.len()
    out = run_cli("split", str(dataset), "--name", "ood", "--holdout", "site=B")
    assert out.returncode == 2, out.stderr
    assert "site has no known values" in out.stderr
    assert "Values of site: ." not in out.stderr


def test_holdout_without_a_value_is_a_usage_error(dataset: Path) -> None:
    out = run_cli("split", str(dataset), "--name", "ood", "--holdout", "device=")
    assert out.returncode == 2 and "is not COLUMN=VALUE" in out.stderr


def test_export_meds_into_a_folder_writes_subject_splits(dataset: Path, tmp_path: Path) -> None:
    folder = tmp_path / "meds" / "metadata"
    folder.mkdir(parents=True)
    out = run_cli("split", str(dataset), "--name", "fair", "--export-meds", str(folder))
    assert out.returncode == 0, out.stderr
    assert [p.name for p in folder.iterdir()] == ["subject_splits.parquet"]
    meds = pl.read_parquet(folder / "subject_splits.parquet")
    assert meds.columns == ["subject_id", "split"]
    assert set(meds["split"]) <= {"train", "tuning", "held_out"}


@pytest.mark.parametrize("where", ["folder-in-the-way", "file-as-parent"])
def test_unwritable_export_path_records_nothing(dataset: Path, tmp_path: Path, where: str) -> None:
    if where == "folder-in-the-way":
        (tmp_path / "meds" / "subject_splits.parquet").mkdir(parents=True)
        target = tmp_path / "meds"
    else:
        (tmp_path / "meds").write_text("not a folder")
        target = tmp_path / "meds" / "subject_splits.parquet"
    out = run_cli("split", str(dataset), "--name", "fair", "--export-meds", str(target))
    assert out.returncode == 2, out.stderr
    assert "--export-meds cannot write" in out.stderr
    assert "fair" not in meddata.load(str(dataset)).splits and not _split_files(dataset)
    again = run_cli("split", str(dataset), "--name", "fair")
    assert again.returncode == 0, again.stderr


def test_export_without_meds_names_records_nothing(dataset: Path, tmp_path: Path) -> None:
    target = tmp_path / "subject_splits.parquet"
    out = run_cli(
        "split", str(dataset), "--name", "cv", "--folds", "2", "--export-meds", str(target)
    )
    assert out.returncode == 2 and "no MEDS equivalent" in out.stderr
    assert "cv" not in meddata.load(str(dataset)).splits and not _split_files(dataset)
    assert not target.exists()


def test_failed_export_write_records_nothing(
    dataset: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import meddata.cli.split as split_cli
    from meddata.cli.main import main

    def full_disk(path: Path, data: bytes) -> None:
        path.write_bytes(data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(split_cli, "_write_staged", full_disk)
    target = tmp_path / "meds" / "subject_splits.parquet"
    code = main(["split", str(dataset), "--name", "fair", "--export-meds", str(target)])
    assert code == 1
    assert "Cannot write the MEDS export" in capsys.readouterr().err
    assert "fair" not in meddata.load(str(dataset)).splits and not _split_files(dataset)
    assert list(target.parent.iterdir()) == []


def test_refused_split_set_exports_nothing(dataset: Path, tmp_path: Path) -> None:
    assert run_cli("split", str(dataset), "--name", "fair").returncode == 0
    folder = tmp_path / "meds"
    folder.mkdir()
    out = run_cli("split", str(dataset), "--name", "fair", "--export-meds", str(folder))
    assert out.returncode == 2 and "already has a split set" in out.stderr
    assert list(folder.iterdir()) == []


def test_help_names_the_real_split_file() -> None:
    out = run_cli("split", "--help")
    text = " ".join(out.stdout.split())
    assert "splits/NAME-<hash>.parquet" in text and "splits/NAME.parquet" not in text
    assert "subject_splits.parquet inside it" in text


def test_report_without_a_deviating_subgroup_names_none() -> None:
    from meddata.cli.split import render_report

    report = {
        "splits": {"fold0": {"persons": 1, "samples": 2, "fraction_persons": 0.5}},
        "max_deviation": {"value": 0.0, "split": None, "attribute": None, "group": None},
        "leakage": {"persons_in_multiple_splits": 0},
    }
    text = render_report(report)
    assert "largest subgroup deviation: 0.0000\n" in text and "None" not in text
    report["max_deviation"] = {"value": 0.25, "split": "fold0", "attribute": "sex", "group": "F"}
    assert "0.2500 (sex=F in fold0)" in render_report(report)
