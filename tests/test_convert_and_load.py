"""Writing and reading datasets: layout, manifest, sharding, determinism, name resolution."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest

import meddata
from meddata import storage, tensor
from meddata.convert import convert
from meddata.errors import (
    DatasetExistsError,
    DatasetNotFoundError,
    FormatVersionError,
    IncompleteDatasetError,
    UsageError,
)
from meddata.manifest import schema_problems


def _shard_hashes(root: Path) -> dict[str, str]:
    manifest = json.loads((root / "meddata.json").read_text())
    return {s["path"]: s["sha256"] for t in manifest["tables"].values() for s in t["shards"]}


def test_layout_and_manifest(dicom_dataset: Path) -> None:
    manifest = json.loads((dicom_dataset / "meddata.json").read_text())
    assert schema_problems(manifest) == []
    assert manifest["format_version"] == "1.0"
    assert dicom_dataset.parts[-2:] == ("dicom-folder", "1.0")
    assert set(manifest["tables"]) == {"person", "image_occurrence", "image", "samples"}
    for table, entry in manifest["tables"].items():
        for shard in entry["shards"]:
            path = dicom_dataset / shard["path"]
            assert path.name.startswith("part-") and path.parent.name == table
            assert storage.sha256_file(*storage.open_fs(path)) == shard["sha256"]
    assert not (dicom_dataset / "_staging").exists()
    assert manifest["source"]["fingerprint"].startswith("sha256:")


def test_load_reads_tables_lazily(dicom_dataset: Path, dicom_source: Path) -> None:
    ds = meddata.load(str(dicom_dataset))
    assert isinstance(ds.table("person"), pl.LazyFrame)
    persons = ds.table("person").collect()
    assert persons.height == 6 and persons["person_id"].is_unique().all()
    samples = ds.samples().collect()
    images = ds.table("image").collect()
    assert samples.height == images.height > 6
    assert set(samples["sex"]) <= {"Male", "Female", "Unknown"}
    # the pixels round-trip exactly to what pydicom decodes from the source file
    occ = ds.table("image_occurrence").collect()
    row = images.join(
        occ.select("image_occurrence_id", "local_path"), on="image_occurrence_id"
    ).row(0, named=True)
    source = pydicom.dcmread(dicom_source / row["local_path"]).pixel_array
    np.testing.assert_array_equal(tensor.decode(row["pixels"]), source)
    assert ds.arrow("image").count_rows() == images.height
    assert "Dataset(dicom-folder@1.0" in repr(ds)


def test_load_from_parent_picks_latest_version(dicom_source: Path, tmp_path: Path) -> None:
    convert(
        "dicom-folder",
        dicom_source,
        tmp_path,
        version="1.2",
        workers=1,
        show_progress=False,
        deid=False,
    )
    convert(
        "dicom-folder",
        dicom_source,
        tmp_path,
        version="1.10",
        workers=1,
        show_progress=False,
        deid=False,
    )
    assert meddata.load(str(tmp_path / "dicom-folder")).version == "1.10"
    assert meddata.load(str(tmp_path / "dicom-folder"), version="1.2").version == "1.2"


def test_published_versions_are_immutable(dicom_source: Path, tmp_path: Path) -> None:
    convert("dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False)
    with pytest.raises(DatasetExistsError, match="--version"):
        convert("dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False)
    convert(
        "dicom-folder",
        dicom_source,
        tmp_path,
        workers=1,
        overwrite=True,
        show_progress=False,
        deid=False,
    )


def test_output_is_byte_identical_across_worker_counts_and_shard_sizes(
    dicom_source: Path, tmp_path: Path
) -> None:
    a = convert(
        "dicom-folder", dicom_source, tmp_path / "a", workers=1, show_progress=False, deid=False
    )
    b = convert(
        "dicom-folder", dicom_source, tmp_path / "b", workers=2, show_progress=False, deid=False
    )
    assert _shard_hashes(Path(a.path)) == _shard_hashes(Path(b.path))
    small = convert(
        "dicom-folder",
        dicom_source,
        tmp_path / "c",
        workers=1,
        show_progress=False,
        target_shard_bytes=1_000,
        row_group_bytes=500,
        deid=False,
    )
    manifest = json.loads((Path(small.path) / "meddata.json").read_text())
    assert len(manifest["tables"]["samples"]["shards"]) > 1
    ds_a, ds_c = meddata.load(a.path), meddata.load(small.path)
    assert ds_a.table("samples").collect().equals(ds_c.table("samples").collect())
    assert ds_a.table("image").collect().equals(ds_c.table("image").collect())


def test_forked_workers_with_a_progress_bar_give_the_same_bytes(
    dicom_source: Path, tmp_path: Path
) -> None:
    """Several units on two forked workers (a progress bar drawn meanwhile) publish what one
    process does, and the main process is left as it was (no objects kept frozen)."""
    import gc

    several = {"files_per_unit": "3"}
    one = convert(
        "dicom-folder",
        dicom_source,
        tmp_path / "one",
        workers=1,
        options=several,
        show_progress=False,
        deid=False,
    )
    two = convert(
        "dicom-folder",
        dicom_source,
        tmp_path / "two",
        workers=2,
        options=several,
        show_progress=True,
        deid=False,
    )
    assert two.units > 2
    assert _shard_hashes(Path(one.path)) == _shard_hashes(Path(two.path))
    assert gc.get_freeze_count() == 0


def test_workers_fork_only_while_no_other_thread_runs_and_caller_freezes_are_kept(
    dicom_source: Path, tmp_path: Path
) -> None:
    import gc
    import sys
    import threading

    from meddata.engine import _worker_context

    if sys.platform.startswith("linux") and threading.active_count() == 1:
        # (other tests may leave a thread running, e.g. the local S3 server's)
        assert _worker_context().get_start_method() == "fork"
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:  # a thread of the caller's could hold a lock across a fork: use a fork server
        assert _worker_context().get_start_method() != "fork"
    finally:
        stop.set()
        other.join()
    gc.freeze()  # the caller's own frozen objects stay frozen
    try:
        convert(
            "dicom-folder",
            dicom_source,
            tmp_path / "out",
            workers=2,
            options={"files_per_unit": "3"},
            show_progress=False,
            deid=False,
        )
        assert gc.get_freeze_count() > 0  # (frozen objects that died are no longer counted)
    finally:
        gc.unfreeze()


def test_load_by_name_through_meddata_home(
    dicom_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MEDDATA_HOME", str(tmp_path / "home"))
    with pytest.raises(DatasetNotFoundError) as err:
        meddata.load("dicom-folder")
    assert "meddata convert dicom-folder" in str(err.value) and str(tmp_path / "home") in str(
        err.value
    )
    convert(
        "dicom-folder", dicom_source, tmp_path / "home", workers=1, show_progress=False, deid=False
    )
    monkeypatch.chdir(tmp_path)
    assert meddata.load("dicom-folder").name == "dicom-folder"
    with pytest.raises(DatasetNotFoundError, match="meddata list"):
        meddata.load("no-such-dataset")
    # A folder here named like the dataset (its raw source, say) does not hide it...
    (tmp_path / "dicom-folder").mkdir()
    assert (
        meddata.load("dicom-folder").path == meddata.load(str(tmp_path / "home/dicom-folder")).path
    )
    # ...and when the name is found nowhere, the error says both places were looked at.
    with pytest.raises(DatasetNotFoundError, match="version 9.9.*--version 9.9") as err:
        meddata.load("dicom-folder", version="9.9")
    assert "./dicom-folder here holds no meddata dataset either" in str(err.value)
    with pytest.raises(DatasetNotFoundError, match="has no version 9.9.*Versions there: 1.0"):
        meddata.load(str(tmp_path / "home" / "dicom-folder"), version="9.9")


def test_unknown_major_format_version_is_refused(dicom_source: Path, tmp_path: Path) -> None:
    root = Path(
        convert(
            "dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False
        ).path
    )
    manifest = json.loads((root / "meddata.json").read_text())
    manifest["format_version"] = "7.0"
    (root / "meddata.json").write_text(json.dumps(manifest))
    with pytest.raises(FormatVersionError, match="format 7.0.*Upgrade meddata"):
        meddata.load(str(root))


def test_unpublished_directory_says_resume(tmp_path: Path) -> None:
    (tmp_path / "x" / "1.0" / "_staging").mkdir(parents=True)
    with pytest.raises(IncompleteDatasetError, match="--resume"):
        meddata.load(str(tmp_path / "x" / "1.0"))


def test_remote_fsspec_output_and_read(dicom_source: Path) -> None:
    summary = convert(
        "dicom-folder",
        dicom_source,
        "memory://bucket/out",
        workers=1,
        show_progress=False,
        deid=False,
    )
    assert summary.path.startswith("memory://")
    ds = meddata.load(summary.path)
    assert ds.table("samples").collect().height == summary.tables["samples"]
    from meddata.validate import validate

    assert validate(summary.path).ok


def test_samples_split_filters_and_unknown_split_set(dicom_dataset: Path) -> None:
    ds = meddata.load(str(dicom_dataset))
    with pytest.raises(UsageError, match="meddata split"):
        ds.samples("train", splits="fair")


def test_missing_source_and_unknown_adapter(tmp_path: Path) -> None:
    from meddata.errors import SourceError

    with pytest.raises(SourceError, match="meddata sample dicom-folder"):
        convert("dicom-folder", tmp_path / "nope", tmp_path, deid=False)
    with pytest.raises(UsageError, match="meddata list"):
        convert("no-such-adapter", tmp_path, tmp_path / "out", deid=False)
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    with pytest.raises(UsageError, match="codec"):
        convert("dicom-folder", src, out, options={"colour": "x"}, deid=False)
    with pytest.raises(UsageError, match="inside the source"):
        convert("dicom-folder", src, src / "out", deid=False)
    with pytest.raises(UsageError, match="Unknown engine"):
        convert("dicom-folder", src, out, engine="spark", deid=False)
    with pytest.raises(UsageError, match="Unknown de-identification option 'retain_dates'"):
        convert("dicom-folder", src, out, deid_options={"retain_dates": 1})
    assert not out.exists() and not (src / "out").exists()  # refused before writing anything


def test_python_convert_de_identifies_by_default_like_the_cli(
    dicom_source: Path, tmp_path: Path
) -> None:
    """Privacy by construction holds for the Python API too: no key given → the key kept beside
    OUT/<name> is created (with a warning), reused by the next run, and no source id survives."""
    raw_ids = {
        str(pydicom.dcmread(p, stop_before_pixels=True).PatientID)
        for p in dicom_source.rglob("*.dcm")
    }
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="new one was saved beside the output") as record:
        first = convert("dicom-folder", dicom_source, out, workers=1, show_progress=False)
    assert record[0].filename == __file__  # the warning points at the caller's line
    key_file = out / "dicom-folder.deid-key"
    assert key_file.exists() and not any(
        p.name.endswith(".deid-key") for p in Path(first.path).rglob("*")
    )
    ds = meddata.load(first.path)
    assert ds.manifest["deid"] is not None
    people = set(ds.table("person").collect()["person_source_value"].to_list())
    assert raw_ids and not people & raw_ids

    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the key now exists: reused, nothing to warn about
        again = convert(
            "dicom-folder", dicom_source, out, version="2", workers=1, show_progress=False
        )
    assert set(meddata.load(again.path).table("person").collect()["person_source_value"]) == people

    plain = convert(
        "dicom-folder", dicom_source, tmp_path / "plain", workers=1, show_progress=False, deid=False
    )
    assert meddata.load(plain.path).manifest["deid"] is None
    assert set(meddata.load(plain.path).table("person").collect()["person_source_value"]) == raw_ids


def test_python_convert_refuses_contradictory_or_keyless_remote_de_identification(
    dicom_source: Path, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="deid=False was given together"):
        convert("dicom-folder", dicom_source, tmp_path, deid=False, deid_key=b"k" * 32)
    with pytest.raises(UsageError, match="remote output"):
        convert("dicom-folder", dicom_source, "memory://meddata-keyless", show_progress=False)
    assert not list(tmp_path.iterdir())  # nothing written by either refusal


def test_samples_of_a_missing_split_set_or_split_name_say_what_exists(
    dicom_source: Path, tmp_path: Path
) -> None:
    from meddata.publish import add_split
    from meddata.splits import make_splits

    ds = meddata.load(
        convert(
            "dicom-folder", dicom_source, tmp_path, workers=1, show_progress=False, deid=False
        ).path
    )
    # dicom-folder has no official split: the hint must name a split set that can be made
    with pytest.raises(UsageError, match="--name fair` and pass splits='fair'"):
        ds.samples("train")
    result = make_splits(ds.table("samples").collect(), seed=0)
    ds = add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)
    assert ds.samples("train", splits="fair").collect().height > 0
    with pytest.raises(UsageError, match="Pass splits='fair' to use the one it has"):
        ds.samples("train")
    with pytest.raises(UsageError, match="has no split 'validation'.*Its splits: train, val, test"):
        ds.samples("validation", splits="fair")
    split_file = Path(ds.path) / ds.splits["fair"]["path"]
    split_file.write_bytes(split_file.read_bytes()[:-20] + b"\0" * 20)  # damaged on disk
    with pytest.raises(meddata.MeddataError, match="does not match its checksum.*validate"):
        ds.samples("train", splits="fair")


def test_a_column_only_some_shards_have_reads_as_null_elsewhere(
    dicom_source: Path, tmp_path: Path
) -> None:
    """SPEC: readers accept unknown extra columns, also when only some shards carry one."""
    import pyarrow.parquet as pq

    path = Path(
        convert(
            "dicom-folder", dicom_source, tmp_path, options={"files_per_unit": "2"},
            show_progress=False, deid=False, workers=1,
        ).path
    )  # fmt: skip
    manifest = json.loads((path / "meddata.json").read_text())
    shards = manifest["tables"]["image"]["shards"]
    assert len(shards) > 2
    second = path / shards[1]["path"]
    table = pq.read_table(second)
    table = table.append_column("site_note", pl.Series(["x"] * table.num_rows).to_arrow())
    pq.write_table(table, second)
    shards[1].update(bytes=second.stat().st_size, sha256=storage.sha256_file(
        storage.open_fs(path)[0], str(second)))  # fmt: skip
    manifest["tables"]["image"]["bytes"] = sum(s["bytes"] for s in shards)
    (path / "meddata.json").write_text(json.dumps(manifest))
    image = meddata.load(path).table("image").collect()
    assert image.height == manifest["tables"]["image"]["rows"]
    assert image["site_note"].null_count() == image.height - table.num_rows
    import fsspec

    remote = fsspec.filesystem("memory")
    remote.put(str(path), "/extra-column/ds", recursive=True)
    far = meddata.load("memory://extra-column/ds")
    assert far.table("image").collect()["site_note"].null_count() == image.height - table.num_rows
    assert "site_note" in far.arrow("image").schema.names
    from meddata.validate import validate

    assert validate(str(path)).ok


def test_overwrite_says_which_split_sets_go_with_the_old_version(
    dicom_source: Path, tmp_path: Path
) -> None:
    from meddata.publish import add_split
    from meddata.splits import make_splits

    kw: dict = dict(workers=1, show_progress=False, deid=False)
    ds = meddata.load(convert("dicom-folder", dicom_source, tmp_path, **kw).path)
    result = make_splits(ds.table("samples").collect(), seed=0)
    add_split(ds, "fair", result.assignments, strategy=result.strategy, report=result.report)
    with pytest.warns(UserWarning, match="split set.*fair.*removed with it"):
        again = convert("dicom-folder", dicom_source, tmp_path, overwrite=True, **kw)
    assert meddata.load(again.path).splits.keys() <= {"official"}
