"""Statistics equal independent polars computations on the same tables."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

import meddata
from meddata.dataset import Dataset
from meddata.datasheet import compute_statistics
from meddata.datasheet.stats_model import MISSING, Statistics
from tests.test_datasheet_fixtures import LABELS, mini, table_frame  # noqa: F401


@pytest.fixture(scope="module")
def stats(mini: Dataset) -> Statistics:  # noqa: F811
    return compute_statistics(mini)


def _counts(frame: pl.DataFrame, column: str) -> dict[str, tuple[int, int]]:
    out = {}
    for key, group in frame.group_by(column):
        value = key[0]
        out[MISSING if value is None else str(value)] = (
            group.height,
            group["person_id"].n_unique(),
        )
    return out


def _labels(frame: pl.DataFrame, label: str) -> dict[str, int]:
    col = frame[f"label_{label}"]
    return {
        "positive": int((col == 1.0).sum()),
        "negative": int((col == 0.0).sum()),
        "uncertain": int((col == -1.0).sum()),
        "missing": col.null_count(),
    }


def test_counts(mini: Dataset, stats: Statistics) -> None:  # noqa: F811
    samples = table_frame(mini, "samples")
    person = table_frame(mini, "person")
    occ = table_frame(mini, "image_occurrence")
    image = table_frame(mini, "image")
    assert stats.patients == person["person_id"].n_unique()
    assert stats.samples == samples.height
    assert stats.studies == occ["image_study_uid"].n_unique()
    per_person = samples.group_by("person_id").len()["len"]
    assert stats.per_patient["samples"].total == samples.height
    assert stats.per_patient["samples"].max == per_person.max()
    assert stats.per_patient["samples"].median == per_person.median()
    images = image.group_by("person_id").len()["len"]
    assert stats.per_patient["images"].mean == pytest.approx(images.mean())
    studies = occ.group_by("person_id").agg(pl.col("image_study_uid").n_unique())
    assert stats.per_patient["studies"].max == studies["image_study_uid"].max()
    modalities = dict(occ.group_by("modality_source_value").len().iter_rows())
    assert stats.modalities == modalities
    devices = {
        (MISSING if k is None else k): v for k, v in samples.group_by("device").len().iter_rows()
    }
    assert stats.devices == devices
    assert stats.sites == dict(samples.group_by("site").len().iter_rows())
    assert stats.tables == {t: e["rows"] for t, e in mini.manifest["tables"].items()}


def test_demographics_and_labels_overall_and_per_split(
    mini: Dataset,  # noqa: F811
    stats: Statistics,
) -> None:
    samples = table_frame(mini, "samples")
    assert stats.overall is not None
    assert set(stats.overall.demographics) == {"sex", "age_group", "race"}  # site has its own
    parts = {"all": samples} | {name: group for (name,), group in samples.group_by("split")}
    fair = pl.read_parquet(f"{mini.root}/splits/fair.parquet")
    tagged = samples.drop("split").join(fair, on="person_id")
    fair_parts = {name: group for (name,), group in tagged.group_by("split")}
    got = {"all": stats.overall} | dict(stats.splits["official"])
    assert list(stats.splits["official"]) == ["train", "valid", "test"]
    assert set(stats.splits["fair"]) == set(fair_parts)
    cases = [(got[k], parts[k]) for k in parts]
    cases += [(stats.splits["fair"][k], fair_parts[k]) for k in fair_parts]
    for computed, frame in cases:
        assert computed.samples == frame.height
        assert computed.persons == frame["person_id"].n_unique()
        for attribute in ("sex", "age_group", "race"):
            expected = _counts(frame, attribute)
            shown = {v: (c.samples, c.persons) for v, c in computed.demographics[attribute].items()}
            assert shown == expected
        for label in LABELS:
            counts = computed.labels[label]
            assert counts.model_dump(exclude={"other"}) == _labels(frame, label)
            assert counts.other == 0


def test_missingness(mini: Dataset, stats: Statistics) -> None:  # noqa: F811
    for table in mini.tables:
        frame = table_frame(mini, table)
        for column, fraction in stats.missingness[table].items():
            assert fraction == pytest.approx(frame[column].null_count() / frame.height, abs=1e-6)
    assert "pixels" not in stats.missingness["image"]  # tensor cells are not counted


def test_manifest_facts(mini: Dataset, stats: Statistics) -> None:  # noqa: F811
    assert stats.deid.applied and stats.deid.counts == {"DATE": 5, "NAME": 3}
    assert stats.deid.total_replaced == 8
    assert stats.quarantined == 1
    assert stats.split_reports == {"fair": mini.manifest["splits"]["fair"]["report"]}


def test_modality_the_source_does_not_record_is_named_not_missing(tmp_path: Path) -> None:
    """MIMIC-CXR-JPG's JPG files carry no modality: counted as not recorded, not '(missing)';
    the conversion options (which label set) are stated in the statistics."""
    from meddata.adapters.mimic_cxr_jpg import MimicCxrJpgAdapter
    from meddata.convert import convert
    from meddata.datasheet import render_markdown

    src = MimicCxrJpgAdapter.synthesize(tmp_path / "src", n=3, seed=1)
    ds = meddata.load(
        convert(
            "mimic-cxr-jpg",
            src,
            tmp_path / "out",
            workers=1,
            show_progress=False,
            deid=False,
            options={"labels": "negbio"},
        ).path
    )
    images = ds.manifest["tables"]["image_occurrence"]["rows"]
    stored = ds.datasheet.statistics  # the sheet convert stored in the dataset
    assert stored.modalities == {"not recorded (CHEST image)": images}
    assert stored.adapter == {
        "name": "mimic-cxr-jpg",
        "version": MimicCxrJpgAdapter.version,
        "options": {"labels": "negbio", "verify": "header"},
    }
    assert stored.source_release == MimicCxrJpgAdapter.source_release
    text = render_markdown(ds.datasheet)
    modalities = text.split("### Modalities", 1)[1].split("###", 1)[0]
    assert MISSING not in modalities and "not recorded (CHEST image)" in modalities
    assert "options labels=negbio" in text
