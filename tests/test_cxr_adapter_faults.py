"""Damaged or unusual CheXpert Plus and MIMIC-CXR-JPG sources: each fault is either a clear
``SourceError`` naming the file or a quarantine entry (without PHI), and nothing good is lost."""

from __future__ import annotations

import csv
import gzip
import io
import json
import random
import shutil
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import meddata
from meddata.adapters._cxr_images import CorruptImage, encoded_image, jpeg_scan_check
from meddata.adapters._radgraph import align_by_text
from meddata.adapters._synth_dicom import chest_like
from meddata.adapters.chexpert_plus import COLUMNS, CSV_NAME, ChexpertPlusAdapter
from meddata.adapters.mimic_cxr_jpg import MimicCxrJpgAdapter
from meddata.convert import convert
from meddata.errors import SourceError
from meddata.validate import validate
from tests.conftest import run_cli

META = "mimic-cxr-2.0.0-metadata.csv.gz"
SPLIT = "mimic-cxr-2.0.0-split.csv.gz"


# -- helpers ----------------------------------------------------------------------------------
def _quarantine(path: str) -> list[dict[str, str]]:
    report = Path(path) / "quarantine" / "report.jsonl"
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines()]


def _convert(src: Path, out: Path, name: str) -> Any:
    return convert(name, src, out, workers=1, show_progress=False, deid=False)


def _cxp_rows(src: Path) -> list[dict[str, str]]:
    with open(src / CSV_NAME, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_cxp(src: Path, rows: list[dict[str, Any]]) -> None:
    with open(src / CSV_NAME, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)


def _read_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_gz(path: Path, rows: list[dict[str, Any]], header: list[str]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=header, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes(gzip.compress(buf.getvalue().encode()))


def _report_path(src: Path, subject: str, study: str) -> Path:
    return src / "files" / f"p{subject[:2]}" / f"p{subject}" / f"s{study}.txt"


@pytest.fixture(scope="module")
def cxp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ChexpertPlusAdapter.synthesize(tmp_path_factory.mktemp("cxp") / "src", n=6, dicom=False)


@pytest.fixture(scope="module")
def mimic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return MimicCxrJpgAdapter.synthesize(tmp_path_factory.mktemp("mimic") / "src", n=6)


@pytest.fixture
def cxp_copy(cxp: Path, tmp_path: Path) -> Path:
    shutil.copytree(cxp, tmp_path / "src")
    return tmp_path / "src"


@pytest.fixture
def mimic_copy(mimic: Path, tmp_path: Path) -> Path:
    shutil.copytree(mimic, tmp_path / "src")
    return tmp_path / "src"


# -- MIMIC-CXR-JPG: damaged tables ------------------------------------------------------------
def test_mimic_truncated_metadata_gz_is_a_source_error(mimic_copy: Path, tmp_path: Path) -> None:
    data = (mimic_copy / META).read_bytes()
    (mimic_copy / META).write_bytes(data[: len(data) // 2])
    with pytest.raises(SourceError, match=f"{META} is truncated or corrupt") as err:
        _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    assert err.value.hint and "again" in err.value.hint
    # the command line names the file too (not click's bare "Aborted.")
    done = run_cli(
        "convert", "mimic-cxr-jpg", str(mimic_copy), "-o", str(tmp_path / "cli"), "--no-deid"
    )
    assert done.returncode == 1
    assert META in done.stderr and "truncated or corrupt" in done.stderr, done.stderr
    assert "Aborted" not in done.stderr and "unexpectedly" not in done.stderr


def test_mimic_damaged_split_gz_is_a_source_error(mimic_copy: Path, tmp_path: Path) -> None:
    rows = _read_gz(mimic_copy / SPLIT)
    # enough rows that the deflate stream is long, then bytes overwritten inside it
    _write_gz(mimic_copy / SPLIT, rows * 40, list(rows[0]))
    data = bytearray((mimic_copy / SPLIT).read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = b"\xa5" * 16
    (mimic_copy / SPLIT).write_bytes(bytes(data))
    with pytest.raises(SourceError, match=SPLIT):
        _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    # a file that is not gzip at all
    (mimic_copy / SPLIT).write_bytes(b"dicom_id,study_id,subject_id,split\n")
    with pytest.raises(SourceError, match=f"{SPLIT} is truncated or corrupt"):
        _convert(mimic_copy, tmp_path / "out2", "mimic-cxr-jpg")


def test_mimic_unclosed_quote_is_a_source_error(mimic_copy: Path, tmp_path: Path) -> None:
    rows = _read_gz(mimic_copy / META)
    header = list(rows[0])
    text = io.StringIO()
    csv.DictWriter(text, fieldnames=header).writeheader()
    body = "\n".join(",".join(r[h] for h in header) for r in rows)
    padding = "x" * 140_000  # more than the csv module's field limit
    (mimic_copy / META).write_bytes(
        gzip.compress((text.getvalue() + body + '\n"' + padding + "\n").encode())
    )
    with pytest.raises(SourceError, match=f"{META} is not valid CSV near line"):
        _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")


# -- MIMIC-CXR-JPG: split values --------------------------------------------------------------
def test_mimic_split_values_are_normalised_or_quarantined(mimic_copy: Path, tmp_path: Path) -> None:
    rows = _read_gz(mimic_copy / SPLIT)
    header = list(rows[0])
    by_subject: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_subject.setdefault(r["subject_id"], []).append(r)
    pool = sorted(by_subject, key=lambda s: -len(by_subject[s]))

    def take(split: str | None = None) -> list[dict[str, str]]:
        subject = next(s for s in pool if split is None or by_subject[s][0]["split"] == split)
        pool.remove(subject)
        return by_subject[subject]

    two = take()  # the subject with the most images: one moved to another split
    assert len(two) >= 2
    two[-1]["split"] = ("test" if two[0]["split"] != "test" else "train").upper()
    for r in take("validate"):
        r["split"] = "valid"
    for r in take("train"):
        r["split"] = "Train"
    blank, bogus = take()[0], take()[0]
    blank["split"], bogus["split"] = "", "holdout-site7"
    _write_gz(mimic_copy / SPLIT, rows, header)
    summary = _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    report = _quarantine(summary.path)
    reasons = {q["item"]: q["reason"] for q in report}
    ds = meddata.load(summary.path)
    samples = ds.table("samples").collect()
    assert set(samples["split"].drop_nulls()) <= {"train", "validate", "test"}
    assert samples["split"].null_count() == 2  # blank and unknown: null, not a new split
    assert summary.tables["samples"] == len(rows)  # nothing dropped
    assert "is blank; split is null" in reasons[blank["dicom_id"]]
    assert "not one of train, validate, test (not shown)" in reasons[bogus["dicom_id"]]
    assert "holdout-site7" not in json.dumps(report)
    assert any(q["item"] == SPLIT and "'Train' read as 'train'" in q["reason"] for q in report)
    assert any("'valid' read as 'validate'" in q["reason"] for q in report)
    assert "2 splits" in reasons[f"p{two[0]['subject_id']}"]
    assert validate(summary.path).ok


# -- MIMIC-CXR-JPG: reports -------------------------------------------------------------------
def test_mimic_report_bad_utf8_is_kept_and_bom_dropped(mimic_copy: Path, tmp_path: Path) -> None:
    meta = _read_gz(mimic_copy / META)
    studies = list(dict.fromkeys((r["subject_id"], r["study_id"]) for r in meta))
    bad, bom = _report_path(mimic_copy, *studies[0]), _report_path(mimic_copy, *studies[1])
    bad.write_bytes(bad.read_bytes().replace(b"INDICATION:", b"INDICATION: caf\xe9 ", 1))
    bom.write_bytes(b"\xef\xbb\xbf" + bom.read_bytes().replace(b"\n", b"\r\n"))
    summary = _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    reasons = {q["item"]: q["reason"] for q in _quarantine(summary.path)}
    assert "not valid UTF-8 (replaced with U+FFFD); note kept" in reasons[f"s{studies[0][1]}.txt"]
    assert f"s{studies[1][1]}.txt" not in reasons
    notes = meddata.load(summary.path).table("note").collect()
    assert len(notes) == len(studies)  # no report lost
    by_study = dict(zip(notes["note_source_value"], notes["note_text"], strict=True))
    assert "INDICATION: caf\ufffd" in by_study[f"s{studies[0][1]}"]
    assert not any(t.startswith("\ufeff") for t in notes["note_text"])
    assert by_study[f"s{studies[1][1]}"].lstrip().startswith("FINAL REPORT")


# -- MIMIC-CXR-JPG: columns -------------------------------------------------------------------
def test_mimic_unexpected_and_missing_columns_are_reported(
    mimic_copy: Path, tmp_path: Path
) -> None:
    meta = _read_gz(mimic_copy / META)
    for r in meta:
        r["SiteNote"] = "x"
    _write_gz(mimic_copy / META, meta, [*meta[0]])
    labels = _read_gz(mimic_copy / "mimic-cxr-2.0.0-chexpert.csv.gz")
    _write_gz(
        mimic_copy / "mimic-cxr-2.0.0-chexpert.csv.gz",
        labels,
        [h for h in labels[0] if h != "Edema"],
    )
    summary = _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    reasons = {q["item"]: q["reason"] for q in _quarantine(summary.path)}
    assert reasons[f"{META}: column SiteNote"] == "unexpected column ignored"
    assert "expected column missing" in reasons["mimic-cxr-2.0.0-chexpert.csv.gz: column Edema"]
    assert summary.tables["samples"] == len(meta)


def test_mimic_plain_csv_with_byte_order_mark(mimic_copy: Path, tmp_path: Path) -> None:
    data = gzip.decompress((mimic_copy / META).read_bytes())
    (mimic_copy / META).unlink()
    (mimic_copy / META.removesuffix(".gz")).write_bytes(b"\xef\xbb\xbf" + data)
    summary = _convert(mimic_copy, tmp_path / "out", "mimic-cxr-jpg")
    assert summary.quarantined == 0
    assert summary.tables["samples"] == len(_read_gz(mimic_copy / SPLIT))


# -- CheXpert Plus: split values --------------------------------------------------------------
def test_cxp_split_values_are_normalised_or_quarantined(cxp_copy: Path, tmp_path: Path) -> None:
    rows = _cxp_rows(cxp_copy)
    patients = list(dict.fromkeys(r["deid_patient_id"] for r in rows))
    mine = {p: [r for r in rows if r["deid_patient_id"] == p] for p in patients}
    valid = next(p for p in patients if mine[p][0]["split"] == "valid")
    train = [p for p in patients if mine[p][0]["split"] == "train"]
    for r in mine[valid]:
        r["split"] = "Valid"
    two = next(p for p in train if len(mine[p]) >= 2)
    mine[two][-1]["split"] = "VALID"  # this patient now in two splits
    blank = mine[next(p for p in train if p != two)][0]
    bogus = mine[next(p for p in train if p != two)][-1]
    blank["split"], bogus["split"] = "", "site7-holdout"
    _write_cxp(cxp_copy, rows)
    summary = _convert(cxp_copy, tmp_path / "out", "chexpert-plus")
    report = _quarantine(summary.path)
    reasons = {q["item"]: q["reason"] for q in report}
    samples = meddata.load(summary.path).table("samples").collect()
    assert set(samples["split"].drop_nulls()) == {"train", "valid"}
    assert samples["split"].null_count() == 2
    assert summary.tables["samples"] == len(rows)
    assert "is blank; split is null" in reasons[blank["path_to_image"]]
    assert "not one of train, valid, test (not shown)" in reasons[bogus["path_to_image"]]
    assert "site7-holdout" not in json.dumps(report)
    assert any(
        q["item"] == CSV_NAME
        and f"'Valid' read as 'valid' ({len(mine[valid])} rows)" in q["reason"]
        for q in report
    )
    assert "2 splits (train, valid)" in reasons[two]
    assert validate(summary.path).ok


# -- CheXpert Plus: demographics --------------------------------------------------------------
def test_cxp_conflicting_demographics_are_reported(cxp_copy: Path, tmp_path: Path) -> None:
    rows = _cxp_rows(cxp_copy)
    patients = list(dict.fromkeys(r["deid_patient_id"] for r in rows))
    mine = {p: [r for r in rows if r["deid_patient_id"] == p] for p in patients}
    multi = [p for p in patients if len(mine[p]) >= 2]
    conflicted, first_blank = multi[0], multi[1]
    first, other = mine[conflicted][0], mine[conflicted][1]
    first["sex"], other["sex"] = "Female", "Male"
    mine[first_blank][0]["sex"] = ""
    for r in mine[first_blank][1:]:
        r["sex"] = "Female"
    _write_cxp(cxp_copy, rows)
    summary = _convert(cxp_copy, tmp_path / "out", "chexpert-plus")
    report = _quarantine(summary.path)
    mentions = [q for q in report if q["item"] == conflicted]
    assert len(mentions) == 1
    reason = mentions[0]["reason"]
    assert reason.startswith("sex differs between the patient's CSV rows")
    lines = [i + 2 for i, r in enumerate(rows) if r is first or r is other]
    assert f"lines {lines[0]} and {lines[1]}" in reason
    assert "Male" not in reason and "Female" not in reason
    assert not any(q["item"] == first_blank for q in report)
    person = meddata.load(summary.path).table("person").collect()
    gender = dict(zip(person["person_source_value"], person["gender_concept_id"], strict=True))
    assert gender[conflicted] == 8532  # the first row's value
    assert gender[first_blank] == 8532  # the first row with a value, not the blank


# -- CheXpert Plus: damaged or unusual files --------------------------------------------------
def test_cxp_unclosed_quote_is_a_source_error(cxp_copy: Path, tmp_path: Path) -> None:
    text = (cxp_copy / CSV_NAME).read_text(encoding="utf-8")
    padding = "x" * 140_000  # more than the csv module's field limit
    (cxp_copy / CSV_NAME).write_text(text + '"' + padding + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=f"{CSV_NAME} is not valid CSV near line"):
        _convert(cxp_copy, tmp_path / "out", "chexpert-plus")


def test_cxp_truncated_csv_is_reported(cxp_copy: Path, tmp_path: Path) -> None:
    rows = _cxp_rows(cxp_copy)
    data = (cxp_copy / CSV_NAME).read_bytes()
    assert data.endswith(rows[-1]["split"].encode() + b"\r\n")
    (cxp_copy / CSV_NAME).write_bytes(data[:-4])  # cut inside the last row's split value
    summary = _convert(cxp_copy, tmp_path / "out", "chexpert-plus")
    reasons = {q["item"]: q["reason"] for q in _quarantine(summary.path)}
    assert "may be truncated" in reasons[CSV_NAME]
    assert "not one of train, valid, test" in reasons[rows[-1]["path_to_image"]]
    assert summary.tables["samples"] == len(rows)


def test_cxp_json_files_with_byte_order_mark(cxp_copy: Path, tmp_path: Path) -> None:
    for rel in (
        "chexbert_labels/report_fixed.json",
        "radgraph-XL-annotations/section_findings.json",
    ):
        path = cxp_copy / rel
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    summary = _convert(cxp_copy, tmp_path / "out", "chexpert-plus")
    assert _quarantine(summary.path) == []
    ds = meddata.load(summary.path)
    nlp = ds.table("note_nlp").collect()
    assert nlp.filter(pl.col("section") == "findings").height > 0


def test_align_by_text_loses_only_the_rows_that_differ() -> None:
    common = "Noacutecardiopulmonaryprocess."
    rows: list[str | None] = [common if i % 4 == 0 else f"text{i}" for i in range(2000)]
    records: list[str | None] = list(rows)
    del records[1200:1500]  # 300 entries missing in a row
    del records[700]  # one entry missing
    records.insert(300, "somethingelse")  # one extra entry
    rows[100] = None  # a ragged row (its entry is still there)
    rows[50] = "edited"  # a row whose text changed
    pairs, together = align_by_text(rows, records)
    assert all(rows[i] == records[j] for i, j in pairs)
    paired = {i for i, _ in pairs}
    lost = set(range(2000)) - paired
    expected = {50, 100, 700, *range(1200, 1500)}
    assert len(lost) == len(expected)
    # rows with the same text are interchangeable (their entries are the same annotation)
    assert all(rows[i] == common for i in lost ^ expected)
    assert (100, 100) in together  # the ragged row's entry is skipped with it


# -- CheXpert Plus: malformed age and report order --------------------------------------------
def test_cxp_malformed_age_and_order_are_quarantined(cxp_copy: Path, tmp_path: Path) -> None:
    """An age that is not a number (or not a plausible one) was silently "Unknown" ("nan" even
    became "80+"): it is now null and quarantined, without the value, like a bad report order."""
    rows = _cxp_rows(cxp_copy)
    bad_ages = {0: "abc", 1: "nan", 2: "-3", 3: "200"}
    for i, value in bad_ages.items():
        rows[i]["age"] = value
    rows[4]["age"] = ""  # blank: null, as published, not a problem
    order_row = next(i for i, r in enumerate(rows) if i > 4)
    rows[order_row]["patient_report_date_order"] = "second"
    _write_cxp(cxp_copy, rows)
    summary = _convert(cxp_copy, tmp_path / "out", "chexpert-plus")
    report = _quarantine(summary.path)
    reasons = {q["item"]: q["reason"] for q in report}
    for i in bad_ages:
        reason = reasons[rows[i]["path_to_image"]]
        assert reason.startswith(f"age (line {i + 2}) is not a number of years from 0 to 130")
        assert "not shown" in reason
    assert rows[4]["path_to_image"] not in reasons
    reason = reasons[rows[order_row]["path_to_image"]]
    assert f"patient_report_date_order (line {order_row + 2}) is not a whole number" in reason
    blob = json.dumps(report)
    assert not any(f'"{v}"' in blob or f" {v} " in blob for v in ("abc", "nan", "200", "second"))
    samples = meddata.load(summary.path).table("samples").collect()
    assert summary.tables["samples"] == len(rows)  # nothing dropped
    assert samples["age"].null_count() == len(bad_ages) + 1
    nulls = samples.filter(pl.col("age").is_null())
    assert set(nulls["age_group"]) == {"Unknown"}
    assert samples["study_order"].null_count() == 1
    assert validate(summary.path).ok


# -- -O verify=decode: damaged image data behind a valid header -------------------------------
def _zero_middle(path: Path, count: int = 600) -> None:
    """Zero ``count`` bytes in the middle of a file: header and end marker stay intact."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 - count // 2
    data[middle : middle + count] = bytes(count)
    path.write_bytes(bytes(data))


def test_mimic_corrupt_jpeg_passes_header_check_but_not_decode(
    mimic_copy: Path, tmp_path: Path
) -> None:
    """A JPEG with 600 zeroed bytes in its entropy-coded data keeps a valid header and end
    marker, and Pillow decodes it without complaint (to garbage). verify=header (the default,
    cheap) keeps it; verify=decode finds it and quarantines it with the reason."""
    from PIL import Image

    jpeg = sorted((mimic_copy / "files").rglob("*.jpg"))[0]
    clean = np.asarray(Image.open(jpeg))
    _zero_middle(jpeg)
    damaged = np.asarray(Image.open(jpeg))  # no error: the damage is silent to Pillow
    assert damaged.shape == clean.shape and np.abs(damaged.astype(int) - clean).mean() > 1
    rel = jpeg.relative_to(mimic_copy).as_posix()
    kept = _convert(mimic_copy, tmp_path / "header", "mimic-cxr-jpg")
    assert not any(q["item"] == rel for q in _quarantine(kept.path))
    summary = convert(
        "mimic-cxr-jpg",
        mimic_copy,
        tmp_path / "decode",
        options={"verify": "decode"},
        workers=1,
        show_progress=False,
        deid=False,
    )
    reasons = {q["item"]: q for q in _quarantine(summary.path)}
    assert reasons[rel]["reason"].startswith("corrupt JPEG: ")
    assert reasons[rel]["error"] == "CorruptImage"
    assert summary.tables["image"] == kept.tables["image"] - 1
    assert summary.quarantined == kept.quarantined + 1  # nothing else quarantined
    assert validate(summary.path).ok


def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    pos, out = 8, []
    while pos < len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        out.append((kind, data[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return out


def _png_bytes(chunks: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(b"\x89PNG\r\n\x1a\n")
    for kind, body in chunks:
        out += struct.pack(">I", len(body)) + kind + body
        out += struct.pack(">I", zlib.crc32(kind + body))
    return bytes(out)


def test_cxp_verify_decode_catches_damaged_png_and_jpeg(cxp_copy: Path, tmp_path: Path) -> None:
    """PNG image data damaged behind valid chunk CRCs (a re-computed CRC: the header check
    passes), and a real .jpg in the tree with zeroed entropy-coded bytes, are quarantined with
    verify=decode and kept with verify=header."""
    from PIL import Image

    rows = _cxp_rows(cxp_copy)
    png_rel = rows[0]["path_to_image"].replace(".jpg", ".png")
    png = cxp_copy / "PNG" / png_rel
    chunks = _png_chunks(png.read_bytes())
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    body = bytearray(chunks[at][1])
    body[len(body) // 2 : len(body) // 2 + 600] = bytes(600)
    chunks[at] = (b"IDAT", bytes(body))
    png.write_bytes(_png_bytes(chunks))
    # the CSV's .jpg suffix, and a real JPEG file there (the other variant the adapter reads)
    jpg_rel = rows[1]["path_to_image"]
    other = cxp_copy / "PNG" / jpg_rel.replace(".jpg", ".png")
    with Image.open(other) as im:
        im.save(cxp_copy / "PNG" / jpg_rel, format="JPEG", quality=90)
    other.unlink()
    _zero_middle(cxp_copy / "PNG" / jpg_rel)
    kept = _convert(cxp_copy, tmp_path / "header", "chexpert-plus")
    assert kept.quarantined == 0 and kept.tables["image"] == len(rows)
    summary = convert(
        "chexpert-plus",
        cxp_copy,
        tmp_path / "decode",
        options={"verify": "decode"},
        workers=1,
        show_progress=False,
        deid=False,
    )
    reasons = {q["item"]: q["reason"] for q in _quarantine(summary.path)}
    assert set(reasons) == {rows[0]["path_to_image"], jpg_rel}
    assert reasons[rows[0]["path_to_image"]].startswith("corrupt PNG: ")
    assert reasons[jpg_rel].startswith("corrupt JPEG: ")
    assert summary.tables["image"] == len(rows) - 2
    assert validate(summary.path).ok


# -- the strict JPEG scan check -----------------------------------------------------------------
def _jpeg(array: np.ndarray, **options: Any) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="JPEG", **options)
    return buf.getvalue()


def _test_images() -> list[bytes]:
    """Valid JPEGs of every sequential layout Pillow writes: grey, colour with 4:2:0, 4:2:2 and
    4:4:4 sampling, optimised tables, restart markers, CMYK, odd sizes."""
    from PIL import Image

    rng = np.random.default_rng(7)
    out = []
    for rows, cols in ((256, 320), (333, 257), (9, 17)):
        grey = chest_like(rng, rows, cols, bits=8).astype(np.uint8)
        colour = np.stack([grey, grey[::-1], 255 - grey], axis=-1)
        out += [
            _jpeg(grey, quality=95),
            _jpeg(grey, quality=75, optimize=True),
            _jpeg(grey, quality=90, restart_marker_blocks=7),
            _jpeg(colour, quality=90),
            _jpeg(colour, quality=90, subsampling=1),
            _jpeg(colour, quality=90, subsampling=0, restart_marker_rows=1),
        ]
        buf = io.BytesIO()
        Image.fromarray(colour).convert("CMYK").save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def test_jpeg_scan_check_accepts_valid_files_and_finds_damage() -> None:
    images = _test_images()
    for data in images:
        assert jpeg_scan_check(data) is True
        encoded_image(data, verify=True)
    grey = chest_like(np.random.default_rng(1), 64, 64, bits=8).astype(np.uint8)
    progressive = _jpeg(grey, progressive=True)
    assert jpeg_scan_check(progressive) is False  # not checked here; Pillow still decodes it
    encoded_image(progressive, verify=True)
    # 600 zeroed bytes at many places: every code stays valid, so only a scan whose length no
    # longer matches its blocks (or a code or run that becomes invalid) shows it
    rng = random.Random(0)
    large = [d for d in images if len(d) > 4000]
    found = tried = 0
    for data in large:
        for _ in range(20):
            start = rng.randrange(1000, len(data) - 1000)
            damaged = data[:start] + bytes(600) + data[start + 600 :]
            encoded_image(damaged)  # the header check passes
            tried += 1
            try:
                encoded_image(damaged, verify=True)
            except CorruptImage as exc:
                assert exc.message.startswith("corrupt JPEG: ") and exc.hint
                found += 1
    assert found >= 0.9 * tried, (found, tried)
    # other damage: cut short, bytes added at the end of the scan, restart markers out of order
    data = images[0]
    end = data.rindex(b"\xff\xd9")
    with pytest.raises(CorruptImage, match="ends before its last block|ends inside a scan"):
        jpeg_scan_check(data[: end - 200] + data[end:])
    with pytest.raises(CorruptImage, match="bytes after a scan's last block"):
        jpeg_scan_check(data[:end] + b"\x55" * 40 + data[end:])
    restarts = images[2]
    first = restarts.index(b"\xff\xd0")
    swapped = restarts[:first] + b"\xff\xd1" + restarts[first + 2 :]
    with pytest.raises(CorruptImage, match="restart markers out of order"):
        jpeg_scan_check(swapped)


def _huffman_scan(data: bytes) -> tuple[dict[int, tuple[bytes, bytes]], bytes, int]:
    """The Huffman tables, the unstuffed scan data and the block count of a one-scan grey JPEG
    without restart markers."""
    pos, tables = 2, {}
    while True:
        marker = data[pos + 1]
        (length,) = struct.unpack_from(">H", data, pos + 2)
        body = data[pos + 4 : pos + 2 + length]
        if marker == 0xC4:
            i = 0
            while i < len(body):
                end = i + 17 + sum(body[i + 1 : i + 17])
                tables[body[i]] = (bytes(body[i + 1 : i + 17]), bytes(body[i + 17 : end]))
                i = end
        elif marker == 0xC0:
            _, rows, cols, _ = struct.unpack_from(">BHHB", body, 0)
            blocks = -(-rows // 8) * -(-cols // 8)
        pos += 2 + length
        if marker == 0xDA:
            break
    scan = data[pos : data.rindex(b"\xff\xd9")].replace(b"\xff\x00", b"\xff")
    return tables, scan, blocks


def test_ac_runs_decode_like_one_symbol_at_a_time() -> None:
    """The several-symbols-at-once lookup walks a scan exactly like a plain one-symbol decoder:
    the same bits used on valid data, the same verdict on damaged data."""
    from meddata.adapters._cxr_images import _EOB, _ac_runs, _decode_blocks, _huffman_lookup

    def plain(scan: bytes, dc: Sequence[int], ac: Sequence[int], blocks: int) -> str:
        bits = int.from_bytes(scan + bytes(4096), "big")
        total = (len(scan) + 4096) * 8
        bit = 0
        for _ in range(blocks):
            entry = dc[(bits >> (total - bit - 16)) & 0xFFFF]
            if not entry:
                return "invalid"
            bit += entry
            k = 1
            while k < 64:
                entry = ac[(bits >> (total - bit - 16)) & 0xFFFF]
                if not entry:
                    return "invalid"
                bit += entry & 31
                k += entry >> 5
            if 64 < k < _EOB:
                return "past the end"
            if bit > len(scan) * 8:
                return "ends before"
        return str(bit)

    rng = random.Random(3)
    grey = chest_like(np.random.default_rng(3), 96, 80, bits=8).astype(np.uint8)
    for options in ({"quality": 95}, {"quality": 60, "optimize": True}):
        tables, scan, blocks = _huffman_scan(_jpeg(grey, **options))
        dc = _huffman_lookup(*tables[0x00], True, 11)
        ac = _huffman_lookup(*tables[0x10], False, 10)
        layout = [(dc, ac, _ac_runs(*tables[0x10], 10))]
        variants = [scan]
        for _ in range(150):
            damaged = bytearray(scan)
            at = rng.randrange(len(scan))
            damaged[at : at + rng.choice((1, 3, 40))] = bytes(rng.randrange(256) for _ in range(3))
            variants.append(bytes(damaged))
        for variant in variants:
            try:
                got = str(_decode_blocks(variant, layout, blocks))
            except CorruptImage as exc:
                got = next(
                    word
                    for word in ("invalid", "past the end", "ends before")
                    if word in exc.message
                )
            assert got == plain(variant, dc, ac, blocks)


def _png16(pixels: np.ndarray, color: int) -> bytes:
    """A 16-bit PNG (colour type 2 RGB, 4 grey+alpha or 6 RGBA; Pillow cannot write these)."""
    height, width = pixels.shape[:2]
    rows = pixels.astype(">u2").reshape(height, -1).view(np.uint8)
    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 on every row
    ihdr = struct.pack(">IIBBBBB", width, height, 16, color, 0, 0, 0)
    return _png_bytes([(b"IHDR", ihdr), (b"IDAT", zlib.compress(raw)), (b"IEND", b"")])


def test_verify_accepts_16_bit_colour_pngs() -> None:
    """16-bit RGB, grey+alpha and RGBA PNGs are valid: Pillow decodes them to 8 bits per sample
    (grey+alpha as RGBA), which verify=decode must not take for damage; their cells record that
    decoded array, so they read back as they say."""
    from meddata import tensor

    rng = np.random.default_rng(7)
    for color, channels, decoded in ((2, 3, 3), (4, 2, 4), (6, 4, 4)):
        pixels = rng.integers(0, 65536, (12, 9, channels), dtype=np.uint16)
        data = _png16(pixels, color)
        fields = encoded_image(data, verify=True)
        assert (fields["rows"], fields["columns"], fields["bits_stored"]) == (12, 9, 16)
        array = tensor.decode(fields["pixels"])
        assert array.shape == (12, 9, decoded) and array.dtype == np.uint8
        cut = _png_chunks(data)
        cut[1] = (b"IDAT", cut[1][1][:-6])  # the stream's end and checksum lost
        with pytest.raises(CorruptImage, match="corrupt PNG"):
            encoded_image(_png_bytes(cut), verify=True)


def test_verify_is_strict_without_touching_pillows_truncation_flag(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """verify=decode never changes Pillow's process-wide LOAD_TRUNCATED_IMAGES (not thread-safe),
    and still refuses truncated or damaged images when another part of the process set it."""
    from PIL import ImageFile

    grey = chest_like(np.random.default_rng(9), 48, 40, bits=8).astype(np.uint8)
    jpeg = _jpeg(grey)
    buf = io.BytesIO()
    from PIL import Image

    Image.fromarray(grey).save(buf, format="PNG")
    png = buf.getvalue()
    for lenient in (False, True):
        monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", lenient)
        encoded_image(jpeg, verify=True)
        encoded_image(png, verify=True)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient
        with pytest.raises(CorruptImage, match="corrupt JPEG"):
            encoded_image(jpeg[: len(jpeg) // 2] + b"\xff\xd9", verify=True)
        chunks = _png_chunks(png)
        at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
        chunks[at] = (b"IDAT", chunks[at][1][: len(chunks[at][1]) // 2])
        with pytest.raises(CorruptImage, match="corrupt PNG"):
            encoded_image(_png_bytes(chunks), verify=True)
        assert ImageFile.LOAD_TRUNCATED_IMAGES is lenient


def test_verify_accepts_every_valid_png_layout() -> None:
    """No false alarms: grey 8- and 16-bit, 1-bit, palette, grey+alpha, RGB, RGBA, interlaced
    and optimised PNGs all pass verify=decode, and a zlib stream cut short does not."""
    from PIL import Image

    rng = np.random.default_rng(5)
    grey = chest_like(rng, 40, 27, bits=8).astype(np.uint8)
    images = [
        Image.fromarray(grey),
        Image.fromarray(grey.astype(np.uint16) * 257),
        Image.fromarray(grey > 128),
        Image.fromarray(grey).convert("P"),
        Image.fromarray(grey).convert("LA"),
        Image.fromarray(grey).convert("RGB"),
        Image.fromarray(grey).convert("RGBA"),
    ]
    encoded = []
    for image in images:
        for options in ({}, {"optimize": True}, {"interlace": 1}):
            buf = io.BytesIO()
            image.save(buf, format="PNG", **options)
            encoded.append(buf.getvalue())
    for data in encoded:
        encoded_image(data, verify=True)
    chunks = _png_chunks(encoded[0])
    at = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    chunks[at] = (b"IDAT", chunks[at][1][:-6])  # the end of the stream and its checksum lost
    short = _png_bytes(chunks)
    encoded_image(short)  # chunk CRCs are right: the header check cannot tell
    with pytest.raises(CorruptImage, match="corrupt PNG"):
        encoded_image(short, verify=True)
