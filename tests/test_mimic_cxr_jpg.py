"""The mimic-cxr-jpg adapter on synthesized releases in the exact MIMIC-CXR-JPG layout."""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest

import meddata
from meddata import tensor
from meddata.adapters._cxr_release import LABELS
from meddata.adapters.mimic_cxr_jpg import (
    METADATA_COLUMNS,
    MimicCxrJpgAdapter,
    split_sections,
    study_orders,
)
from meddata.convert import convert
from meddata.errors import DatasetNotFoundError, SourceError
from meddata.validate import validate

META = "mimic-cxr-2.0.0-metadata.csv.gz"


def _read(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write(path: Path, rows: list[dict[str, Any]], header: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return MimicCxrJpgAdapter.synthesize(tmp_path_factory.mktemp("mimic") / "mimic-cxr-jpg", n=6)


@pytest.fixture(scope="module")
def dataset(source: Path, tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    summary = convert(
        "mimic-cxr-jpg",
        source,
        tmp_path_factory.mktemp("out"),
        workers=1,
        show_progress=False,
        deid=False,
    )
    assert summary.quarantined == 0
    return meddata.load(summary.path)


def test_layout(source: Path) -> None:
    meta = _read(source / META)
    row = meta[0]
    assert len(row["dicom_id"].split("-")) == 5 and all(
        len(p) == 8 for p in row["dicom_id"].split("-")
    )
    subject = row["subject_id"]
    assert (
        source
        / "files"
        / f"p{subject[:2]}"
        / f"p{subject}"
        / f"s{row['study_id']}"
        / f"{row['dicom_id']}.jpg"
    ).is_file()
    assert (
        source / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{row['study_id']}.txt"
    ).is_file()
    labels = _read(source / "mimic-cxr-2.0.0-chexpert.csv.gz")
    assert list(labels[0])[2:] == sorted(LABELS)
    assert {r["split"] for r in _read(source / "mimic-cxr-2.0.0-split.csv.gz")} == {
        "train",
        "validate",
        "test",
    }
    # ViewPosition as upstream: PA/AP, LATERAL (and LL), and blank for some images
    views = {r["ViewPosition"] for r in _read(source / META)}
    assert {"LATERAL", ""} <= views and views & {"PA", "AP"}
    assert list(_read(source / META)[0]) == list(METADATA_COLUMNS)
    # the CheXpert labeler's rule: No Finding is 1 only without a positive or uncertain finding
    pathologies = [n for n in LABELS if n not in ("No Finding", "Support Devices")]
    for which in ("chexpert", "negbio"):
        rows = _read(source / f"mimic-cxr-2.0.0-{which}.csv.gz")
        assert any(r["No Finding"] == "1.0" for r in rows)
        for r in rows:
            if any(r[n] in ("1.0", "-1.0") for n in pathologies):
                assert r["No Finding"] == ""


def test_tables_jpeg_bytes_split_labels(dataset: meddata.Dataset, source: Path) -> None:
    meta = {r["dicom_id"]: r for r in _read(source / META)}
    split = {r["dicom_id"]: r["split"] for r in _read(source / "mimic-cxr-2.0.0-split.csv.gz")}
    labels = {r["study_id"]: r for r in _read(source / "mimic-cxr-2.0.0-chexpert.csv.gz")}
    image = dataset.table("image").collect()
    assert len(image) == len(meta)
    samples = (
        dataset.table("samples")
        .collect()
        .join(image.select("image_id", "local_path", "pixels"), on="image_id")
    )
    seen = set()
    for row in samples.iter_rows(named=True):
        dicom_id = row["local_path"].rsplit("/", 1)[1].removesuffix(".jpg")
        m = meta[dicom_id]
        assert row["pixels"]["data"] == (source / row["local_path"]).read_bytes()
        assert row["pixels"]["codec"] == "jpeg"
        assert list(tensor.decode(row["pixels"]).shape) == [int(m["Rows"]), int(m["Columns"])]
        assert row["split"] == split[dicom_id]
        assert row["view_position"] == (m["ViewPosition"] or None)
        for name in LABELS:
            raw = labels[m["study_id"]][name]
            assert row[f"label_{name}"] == (float(raw) if raw else None)
            seen.add(row[f"label_{name}"])
    assert seen == {1.0, 0.0, -1.0, None}
    assert set(samples["split"]) == {"train", "validate", "test"}
    assert "official" in dataset.splits
    occ = dataset.table("image_occurrence").collect()
    assert occ["image_occurrence_date"].null_count() == 0
    assert validate(dataset.path).ok


def test_reports_to_notes(dataset: meddata.Dataset, source: Path) -> None:
    notes = dataset.table("note").collect()
    studies = {r["study_id"] for r in _read(source / META)}
    assert len(notes) == len(studies)
    assert notes["section_impression"].null_count() == 0
    assert notes["section_findings"].null_count() > 0
    assert dataset.table("samples").collect()["note_id"].null_count() == 0
    sections = split_sections(
        " FINDINGS: \n \n Lungs clear.\n \n IMPRESSION: \n \n No acute process.\n"
    )
    assert (
        sections["section_findings"] == "Lungs clear."
        and sections["section_impression"] == "No acute process."
    )


def test_without_reports(tmp_path: Path) -> None:
    src = MimicCxrJpgAdapter.synthesize(tmp_path / "src", n=3, seed=2, reports=False)
    summary = convert(
        "mimic-cxr-jpg", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    assert "note" not in summary.tables and summary.quarantined == 0
    ds = meddata.load(summary.path)
    assert ds.table("samples").collect()["note_id"].null_count() == summary.tables["samples"]
    assert validate(summary.path).ok


def test_not_found_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDDATA_HOME", str(tmp_path))
    with pytest.raises(DatasetNotFoundError) as err:
        meddata.load("mimic-cxr-jpg")
    assert "MIMIC-CXR-JPG v2.0.0 (PhysioNet)" in str(err.value)
    assert f"meddata convert mimic-cxr-jpg /path/to/source -o {tmp_path}" in str(err.value)


def test_bad_input(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src)
    meta = _read(src / META)
    header = list(meta[0])
    rel = [
        f"files/p{r['subject_id'][:2]}/p{r['subject_id']}/s{r['study_id']}/{r['dicom_id']}.jpg"
        for r in meta
    ]
    (src / rel[0]).unlink()
    (src / rel[1]).write_bytes((src / rel[1]).read_bytes()[:300])  # truncated JPEG
    _write(src / META, [*meta, meta[2]], header)  # duplicate row
    labels = _read(src / "mimic-cxr-2.0.0-chexpert.csv.gz")
    _write(
        src / "mimic-cxr-2.0.0-chexpert.csv.gz",
        [*labels, {**labels[0], "study_id": "59999999"}],
        list(labels[0]),
    )
    summary = convert(
        "mimic-cxr-jpg", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = [
        json.loads(x)
        for x in (Path(summary.path) / "quarantine/report.jsonl").read_text().splitlines()
    ]
    reasons = {q["item"]: q["reason"] for q in report}
    assert reasons[rel[0]] == "image file missing"
    assert "corrupt JPEG" in reasons[rel[1]]
    assert "duplicate metadata row" in reasons[meta[2]["dicom_id"]]
    assert any("59999999" in q["item"] and "without images" in q["reason"] for q in report)
    assert summary.tables["samples"] == len(meta) - 2
    assert validate(summary.path).ok
    assert "Dr." not in json.dumps(report)
    _write(src / META, meta, [h for h in header if h != "ViewPosition"])
    with pytest.raises(SourceError, match="ViewPosition"):
        convert("mimic-cxr-jpg", src, tmp_path / "out2", workers=1, show_progress=False, deid=False)


def test_silent_changes_are_quarantined(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src)
    meta = _read(src / META)
    header = list(meta[0])
    # a ragged metadata row (an extra field) and a row with bytes that are not UTF-8 in an id
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for i, r in enumerate(meta):
        values = [r[h] for h in header]
        writer.writerow([*values, "extra"] if i == 0 else values)
    data = buf.getvalue().encode()
    bad_id = meta[1]["dicom_id"]
    data = data.replace(bad_id.encode(), bad_id[:4].encode() + b"\xff" + bad_id[5:].encode(), 1)
    (src / META).write_bytes(gzip.compress(data))
    # a conflicting second split row
    split = _read(src / "mimic-cxr-2.0.0-split.csv.gz")
    other = "test" if split[2]["split"] != "test" else "train"
    _write(
        src / "mimic-cxr-2.0.0-split.csv.gz",
        [*split, {**split[2], "split": other}],
        list(split[0]),
    )
    # a non-numeric label, and a study without a label row
    labels = _read(src / "mimic-cxr-2.0.0-chexpert.csv.gz")
    labels[0]["Edema"] = "yes"
    unlabeled = labels[-1]["study_id"]
    _write(src / "mimic-cxr-2.0.0-chexpert.csv.gz", labels[:-1], list(labels[0]))
    summary = convert(
        "mimic-cxr-jpg", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = [
        json.loads(x)
        for x in (Path(summary.path) / "quarantine/report.jsonl").read_text().splitlines()
    ]
    reasons = {q["item"]: q["reason"] for q in report}
    assert "fields, expected" in reasons[f"{META}: line 2"]
    assert "not valid UTF-8" in reasons[f"{META}: line 3"]
    assert "conflicting split row" in reasons[split[2]["dicom_id"]]
    assert "Edema is not a number" in reasons[f"s{labels[0]['study_id']}"]
    assert "no row in the chexpert label table" in reasons[f"s{unlabeled}"]
    assert summary.tables["samples"] == len(meta) - 2
    ds = meddata.load(summary.path)
    image = ds.table("image").select("image_id", "local_path").collect()
    samples = ds.table("samples").collect().join(image, on="image_id")
    kept = samples.filter(pl.col("local_path").str.contains(split[2]["dicom_id"], literal=True))
    assert kept["split"].to_list() in ([split[2]["split"]], [])  # first row kept (if converted)
    assert validate(summary.path).ok


def test_unknown_headings_end_a_section() -> None:
    text = (
        "FINDINGS: Lungs clear.\n NOTIFICATION: Called Dr. X.\n"
        "IMPRESSION: No acute process.\n RECOMMENDATION(S): CT.\n ADDENDUM: None."
    )
    sections = split_sections(text)
    assert sections["section_findings"] == "Lungs clear."
    assert sections["section_impression"] == "No acute process."


# -- study order ----------------------------------------------------------------------------------
def test_study_order_follows_study_dates(
    dataset: meddata.Dataset, source: Path, tmp_path: Path
) -> None:
    """samples.study_order ranks each subject's studies by StudyDate/StudyTime (not by study id),
    and is the same under de-identification (a per-person shift keeps the order). The release
    has no age: there is no age column."""
    meta = {r["dicom_id"]: r for r in _read(source / META)}
    samples = dataset.table("samples").collect()
    assert samples.schema["study_order"] == pl.Int32 and "age" not in samples.columns
    image = dataset.table("image").select("image_id", "local_path").collect()
    ranks: dict[str, dict[str, int]] = {}
    for row in samples.join(image, on="image_id").iter_rows(named=True):
        m = meta[row["local_path"].rsplit("/", 1)[1].removesuffix(".jpg")]
        ranks.setdefault(m["subject_id"], {})[m["study_id"]] = row["study_order"]
    for subject, studies in ranks.items():
        dates = {
            r["study_id"]: (r["StudyDate"], float(r["StudyTime"]))
            for r in meta.values()
            if r["subject_id"] == subject
        }
        by_date = sorted(studies, key=lambda s: dates[s])
        assert [studies[s] for s in by_date] == list(range(1, len(studies) + 1))
    # the synthetic study ids are random: their order is not the dates' order
    assert any(sorted(s) != sorted(s, key=lambda k: s[k]) for s in ranks.values())
    key = b"m" * 32
    summary = convert(
        "mimic-cxr-jpg", source, tmp_path, workers=1, show_progress=False, deid_key=key
    )
    deid = meddata.load(summary.path).table("samples").collect()
    adapter = MimicCxrJpgAdapter(source, deid_key=key)
    orders = dict(zip(deid["image_id"], deid["study_order"], strict=True))
    for dicom_id, m in meta.items():
        assert orders[adapter.row_id("image", dicom_id)] == ranks[m["subject_id"]][m["study_id"]]
    assert validate(summary.path).ok


def test_study_orders_share_ties_and_skip_bad_dates() -> None:
    rows = [
        {"subject_id": "1", "study_id": "s9", "StudyDate": "21100105", "StudyTime": "80000.5"},
        {"subject_id": "1", "study_id": "s1", "StudyDate": "21100105", "StudyTime": "101500"},
        {
            "subject_id": "1",
            "study_id": "s1",
            "StudyDate": "21100105",
            "StudyTime": "7",
        },  # earliest
        {"subject_id": "1", "study_id": "s5", "StudyDate": "21100301", "StudyTime": ""},
        {"subject_id": "1", "study_id": "s6", "StudyDate": "21100301", "StudyTime": "0"},  # a tie
        {"subject_id": "1", "study_id": "s7", "StudyDate": "2110-03", "StudyTime": "1"},
        {"subject_id": "2", "study_id": "s2", "StudyDate": "20000101", "StudyTime": "x"},
    ]
    assert study_orders(rows) == {
        ("1", "s1"): 1,
        ("1", "s9"): 2,
        ("1", "s5"): 3,
        ("1", "s6"): 3,
        ("2", "s2"): 1,
    }


def test_verify_option(source: Path, tmp_path: Path) -> None:
    summary = convert(
        "mimic-cxr-jpg",
        source,
        tmp_path,
        options={"verify": "decode"},
        workers=1,
        show_progress=False,
        deid=False,
    )
    assert summary.quarantined == 0  # every good JPEG passes the strict check
    assert meddata.load(summary.path).manifest["adapter"]["options"]["verify"] == "decode"
    assert MimicCxrJpgAdapter.option_specs["verify"].choices == ("header", "decode")
    assert validate(summary.path).ok
