"""Amending a published dataset (meddata.publish): concurrent split sets all land, the stored
datasheet is refreshed in the same publish, and a failed or refused amendment leaves nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import meddata
from meddata import storage
from meddata.dataset import Dataset
from meddata.errors import UsageError
from meddata.publish import (
    DatasetBusyError,
    DatasetChangedError,
    add_split,
    dataset_lock,
    lock_path,
)
from meddata.validate import validate
from tests.conftest import splits_at_once


def _assignments(ds: Dataset, split: str = "train") -> pl.DataFrame:
    persons = ds.table("person").select("person_id").collect()
    return persons.with_columns(pl.lit(split).alias("split"))


def _split(ds: Dataset, name: str, split: str = "train", **kw: Any) -> Dataset:
    return add_split(
        ds, name, _assignments(ds, split), strategy={"kind": "manual"}, report={}, **kw
    )


def _listed_and_present(dataset: Path) -> tuple[set[str], set[str]]:
    manifest = json.loads((dataset / "meddata.json").read_text())
    listed = {i["path"] for i in manifest["splits"].values() if i.get("path")}
    listed |= set((manifest.get("datasheet") or {}).get("sha256") or {})
    present = {
        p.relative_to(dataset).as_posix()
        for folder in ("splits", "datasheet")
        if (dataset / folder).exists()
        for p in (dataset / folder).iterdir()
    }
    return listed, present


def test_amendments_from_stale_loads_both_land(dataset: Path) -> None:
    first, second = meddata.load(str(dataset)), meddata.load(str(dataset))  # both before either
    _split(first, "a")
    _split(second, "b", "test")
    ds = meddata.load(str(dataset))
    assert {"a", "b"} <= set(ds.splits)
    assert set(ds.samples("test", splits="b").collect()["person_id"]) == set(
        ds.table("person").collect()["person_id"]
    )
    listed, present = _listed_and_present(dataset)
    assert listed == present  # nothing unlisted left behind
    assert validate(str(dataset)).ok


def test_a_stale_load_cannot_overwrite_without_asking(dataset: Path) -> None:
    first, second = meddata.load(str(dataset)), meddata.load(str(dataset))
    _split(first, "a")
    with pytest.raises(UsageError, match="already has a split set called 'a'"):
        _split(second, "a", "test")  # its own (stale) manifest has no 'a': checked again
    assert meddata.load(str(dataset)).samples("train", splits="a").collect().height > 0
    listed, present = _listed_and_present(dataset)
    assert listed == present


def test_concurrent_splits_in_threads_all_land(dataset: Path) -> None:
    names = [f"t{i}" for i in range(4)]
    splits_at_once(str(dataset), names)
    ds = meddata.load(str(dataset))
    assert set(names) <= set(ds.splits)
    assert set(names) <= set(ds.datasheet.statistics.splits)
    listed, present = _listed_and_present(dataset)
    assert listed == present
    assert validate(str(dataset)).ok


def test_concurrent_split_commands_both_land(dataset: Path) -> None:
    """`(meddata split D --name a & meddata split D --name b & wait)` records both sets."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "meddata.cli", "split", str(dataset), "--name", name],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    ds = meddata.load(str(dataset))
    assert {"a", "b"} <= set(ds.splits)
    listed, present = _listed_and_present(dataset)
    assert listed == present
    assert validate(str(dataset)).ok


def test_the_lock_is_the_one_convert_holds(dataset: Path) -> None:
    ds = meddata.load(str(dataset))
    # convert holds <out>/<name>/<version>.lock while it writes a version
    assert lock_path(ds) == str(dataset.parent / "1.0.lock")


def test_a_held_lock_is_waited_for_then_refused(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import meddata.publish as publish

    ds = meddata.load(str(dataset))
    released = threading.Event()

    def hold(seconds: float) -> None:
        with storage.exclusive(ds.fs, lock_path(ds)):
            held.set()
            released.wait(seconds)

    held = threading.Event()
    holder = threading.Thread(target=hold, args=(2.0,))
    holder.start()
    held.wait(10)
    with pytest.warns(UserWarning, match="locked by another meddata process.*waiting"):
        _split(ds, "waited")  # waits for the holder to let go, then publishes
    holder.join()
    assert "waited" in meddata.load(str(dataset)).splits

    monkeypatch.setattr(publish, "LOCK_WAIT_S", 0.2)
    with dataset_lock(ds):
        with pytest.raises(DatasetBusyError, match="stayed locked") as info:
            _split(meddata.load(str(dataset)), "refused")
    assert info.value.hint and "1.0.lock" in info.value.hint
    assert "refused" not in meddata.load(str(dataset)).splits
    assert not any(p.name.startswith("refused-") for p in (dataset / "splits").iterdir())


def test_a_dataset_converted_again_meanwhile_is_refused(dataset: Path) -> None:
    ds = meddata.load(str(dataset))
    manifest = json.loads((dataset / "meddata.json").read_text())
    manifest["tables"]["person"]["duplicates_dropped"] = 0  # another conversion's manifest
    (dataset / "meddata.json").write_text(json.dumps(manifest))
    with pytest.raises(DatasetChangedError, match="converted again"):
        _split(ds, "stale")
    assert not (dataset / "splits").exists() or not list((dataset / "splits").iterdir())


def test_stored_datasheet_is_refreshed_with_the_split(dataset: Path) -> None:
    before = meddata.load(str(dataset))
    old_files = set(before.manifest["datasheet"]["sha256"])
    assert "fair" not in (before.datasheet.statistics.splits or {})
    ds = _split(before, "fair")
    again = meddata.load(str(dataset))
    stored = again.datasheet  # the sheet stored in the dataset, not one built now
    assert stored.statistics is not None and "fair" in stored.statistics.splits
    assert list(stored.statistics.splits["fair"]) == ["train"]
    entry = again.manifest["datasheet"]
    markdown = (dataset / entry["markdown"]).read_text()
    assert "fair/train" in markdown  # the per-split tables name the new set
    assert not old_files & set(entry["sha256"])  # new names; the old files are gone
    assert not any((dataset / rel).exists() for rel in old_files)
    assert ds.manifest == again.manifest
    assert validate(str(dataset)).ok


def test_a_split_recomputes_only_the_split_statistics(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under the lock only samples and the split files are read: the stored statistics of the
    tables are kept, and they equal what a full computation gives."""
    from meddata.datasheet import stats

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a table-wide statistic was computed again under the lock")

    before = meddata.load(str(dataset))
    with monkeypatch.context() as patched:
        for name in ("compute_statistics", "missingness", "_modalities", "_per_patient"):
            patched.setattr(stats, name, refuse)
        _split(before, "fair")
        _split(meddata.load(str(dataset)), "fair", split="test", overwrite=True)
    again = meddata.load(str(dataset))
    assert again.datasheet.statistics == stats.compute_statistics(again)
    assert list(again.datasheet.statistics.splits["fair"]) == ["test"]


def test_statistics_computed_another_way_are_computed_again_at_a_split(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored statistics of another STATISTICS_VERSION (an earlier meddata's) are not carried
    forward: the split computes them all again."""
    from meddata.datasheet import stats, stats_model

    computed: list[str] = []
    missingness = stats.missingness

    def counted(ds: Dataset) -> dict[str, dict[str, float]]:
        computed.append(ds.name)
        return missingness(ds)

    monkeypatch.setattr(stats, "missingness", counted)
    _split(meddata.load(str(dataset)), "same")
    assert computed == []  # same version: kept
    monkeypatch.setattr(stats_model, "STATISTICS_VERSION", stats_model.STATISTICS_VERSION + 1)
    _split(meddata.load(str(dataset)), "newer")
    assert computed == ["dicom-folder"]


def test_a_failed_publish_leaves_the_dataset_as_it_was(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import meddata.publish as publish

    before = (dataset / "meddata.json").read_bytes()
    files_before = _listed_and_present(dataset)[1]

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(publish, "write_manifest", fail)
    with pytest.raises(OSError, match="No space"):
        _split(meddata.load(str(dataset)), "fair")
    assert (dataset / "meddata.json").read_bytes() == before
    assert _listed_and_present(dataset)[1] == files_before
    assert not Path(lock_path(meddata.load(str(dataset)))).exists()
    assert validate(str(dataset)).ok


def test_overwrite_replaces_the_file_and_refreshes_the_sheet(dataset: Path) -> None:
    ds = _split(meddata.load(str(dataset)), "fair")
    first = ds.splits["fair"]["path"]
    ds = _split(ds, "fair", "test", overwrite=True)
    assert ds.splits["fair"]["path"] != first and not (dataset / first).exists()
    stats = meddata.load(str(dataset)).datasheet.statistics
    assert list(stats.splits["fair"]) == ["test"]
    listed, present = _listed_and_present(dataset)
    assert listed == present


def test_an_unreadable_stored_datasheet_is_replaced(dataset: Path) -> None:
    ds = meddata.load(str(dataset))
    stored = dataset / ds.manifest["datasheet"]["healthsheet"]
    stored.write_text("{not json")
    assert not validate(str(dataset)).ok
    with pytest.warns(UserWarning, match="cannot be read"):
        _split(ds, "fair")
    again = meddata.load(str(dataset))
    assert "fair" in again.datasheet.statistics.splits
    assert validate(str(dataset)).ok


def test_a_dataset_loaded_before_a_split_says_its_datasheet_was_replaced(dataset: Path) -> None:
    early = meddata.load(str(dataset))
    _split(early, "first")  # names the datasheet by content: a new file, the old one removed
    before = meddata.load(str(dataset))
    _split(meddata.load(str(dataset)), "second")
    with pytest.raises(DatasetChangedError, match="Load the dataset again"):
        before.datasheet  # noqa: B018 - the property read is what is tested
    assert "second" in meddata.load(str(dataset)).datasheet.model_dump_json()
