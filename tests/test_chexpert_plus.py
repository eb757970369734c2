"""The chexpert-plus adapter on synthesized releases in the exact CheXpert Plus layout."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

import meddata
from meddata import tensor
from meddata.adapters._cxr_release import LABELS
from meddata.adapters._radgraph import align_tokens, parse_radgraph_label, section_start
from meddata.adapters._synth_dicom import FIRST, LAST
from meddata.adapters.chexpert_plus import COLUMNS, CSV_NAME, ChexpertPlusAdapter
from meddata.convert import convert
from meddata.errors import DatasetNotFoundError, SourceError
from meddata.validate import validate
from tests.conftest import run_cli


def _csv_rows(src: Path) -> list[dict[str, str]]:
    with open(src / CSV_NAME, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _write_csv(src: Path, rows: list[dict[str, Any]], header: list[str]) -> None:
    with open(src / CSV_NAME, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _quarantine(path: str) -> list[dict[str, str]]:
    report = Path(path) / "quarantine" / "report.jsonl"
    if not report.exists():
        return []
    return [json.loads(line) for line in report.read_text().splitlines()]


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ChexpertPlusAdapter.synthesize(tmp_path_factory.mktemp("cxp") / "chexpert-plus", n=6)


@pytest.fixture(scope="module")
def dataset(source: Path, tmp_path_factory: pytest.TempPathFactory) -> meddata.Dataset:
    out = tmp_path_factory.mktemp("out")
    summary = convert("chexpert-plus", source, out, workers=1, show_progress=False, deid=False)
    assert summary.quarantined == 0
    return meddata.load(summary.path)


def test_synthesized_layout_is_the_release_layout(source: Path) -> None:
    with open(source / CSV_NAME, newline="", encoding="utf-8") as fh:
        assert tuple(next(csv.reader(fh))) == COLUMNS
    rows = _csv_rows(source)
    assert len({r["deid_patient_id"] for r in rows}) == 6
    assert {r["frontal_lateral"] for r in rows} == {"Frontal", "Lateral"}
    first = rows[0]["path_to_image"]
    assert first.endswith(".jpg") and (source / "PNG" / first.replace(".jpg", ".png")).is_file()
    assert (source / "DICOM" / rows[0]["path_to_dcm"]).is_file()
    for which in ("findings", "impression", "report"):
        lines = (source / "chexbert_labels" / f"{which}_fixed.json").read_text().splitlines()
        assert len(lines) == len(rows) and set(json.loads(lines[0])) == {"path_to_image", *LABELS}
    values = {
        json.loads(line)[n]
        for line in (source / "chexbert_labels/report_fixed.json").read_text().splitlines()
        for n in LABELS
    }
    assert values == {1.0, 0.0, -1.0, None}
    # CheXbert's rule: No Finding is 1 only without a positive or uncertain pathology
    pathologies = [n for n in LABELS if n not in ("No Finding", "Support Devices")]
    for which in ("findings", "impression", "report"):
        objs = [json.loads(x) for x in (source / f"chexbert_labels/{which}_fixed.json").open()]
        assert any(o["No Finding"] == 1.0 for o in objs)
        for o in objs:
            if any(o[n] in (1.0, -1.0) for n in pathologies):
                assert o["No Finding"] is None
    graph = json.loads((source / "radgraph-XL-annotations/section_findings.json").read_text())
    eligible = [r for r in rows if len(r["section_findings"].split()) >= 2]
    assert len(graph) == len(eligible) and set(graph[0]) == {"0"}
    assert any(r["section_comparison"] == "" for r in rows)  # some sections missing


def test_tables_and_validate(dataset: meddata.Dataset, source: Path) -> None:
    rows = _csv_rows(source)
    counts = {t: dataset.table(t).select(pl.len()).collect().item() for t in dataset.tables}
    assert counts["samples"] == counts["image"] == counts["image_occurrence"] == len(rows)
    assert counts["person"] == 6
    assert counts["note"] == len(
        {(r["deid_patient_id"], r["patient_report_date_order"]) for r in rows}
    )
    assert counts["note_nlp"] > 0 and counts["observation"] > 0
    assert dataset.labels == list(LABELS)
    assert validate(dataset.path).ok


def test_labels_keep_uncertain_and_null_distinct(dataset: meddata.Dataset, source: Path) -> None:
    labels = {
        (obj := json.loads(line))["path_to_image"]: obj
        for line in (source / "chexbert_labels/report_fixed.json").read_text().splitlines()
    }
    image = dataset.table("image").select("image_id", "local_path").collect()
    samples = dataset.table("samples").collect().join(image, on="image_id")
    seen = set()
    for row in samples.iter_rows(named=True):
        key = row["local_path"].removeprefix("PNG/").replace(".png", ".jpg")
        for name in LABELS:
            assert row[f"label_{name}"] == labels[key][name]
            seen.add(row[f"label_{name}"])
    assert seen == {1.0, 0.0, -1.0, None}


def test_png_bytes_kept_as_is(dataset: meddata.Dataset, source: Path) -> None:
    image = dataset.table("image").collect()
    shapes = set()
    for row in image.iter_rows(named=True):
        data = (source / row["local_path"]).read_bytes()
        assert row["pixels"]["data"] == data and row["pixels"]["codec"] == "png"
        array = tensor.decode(row["pixels"])
        assert list(array.shape) == row["pixels"]["shape"] == [row["rows"], row["columns"]]
        assert array.dtype == np.uint8 and array.std() > 10  # not blank
        shapes.add(array.shape)
    assert len(shapes) > 1


def test_notes_sections_and_radgraph_offsets(dataset: meddata.Dataset, source: Path) -> None:
    notes = dataset.table("note").collect()
    rows = {(r["deid_patient_id"], r["patient_report_date_order"]): r for r in _csv_rows(source)}
    by_text = {r["report"]: r for r in rows.values()}
    for note in notes.iter_rows(named=True):
        row = by_text[note["note_text"]]
        for col in (
            "section_findings",
            "section_impression",
            "section_accession_number",
            "section_summary",
        ):
            assert note[col] == (row[col] or None)
    assert notes["note_text"].str.contains("FINDINGS:").any()
    assert notes["section_findings"].null_count() > 0  # some reports lack findings
    nlp = (
        dataset.table("note_nlp").collect().join(notes.select("note_id", "note_text"), on="note_id")
    )
    ids = set(nlp["note_nlp_id"])
    assert nlp["char_start"].null_count() == 0
    for r in nlp.iter_rows(named=True):
        piece = r["note_text"][r["char_start"] : r["char_end"]]
        assert piece.replace(" ", "") == r["lexical_variant"].replace(" ", "")
        assert r["offset"] == str(r["char_start"]) and piece in r["snippet"]
        assert r["nlp_system"].startswith("RadGraph-XL")
        kind, certainty = parse_radgraph_label(r["entity_label"])
        assert r["term_exists"] == ("Y" if certainty == "definitely present" else "N")
        assert r["token_end"] >= r["token_start"] >= 0
        for _rel, target in json.loads(r["relations"]):
            assert target in ids
    assert set(nlp["term_exists"]) == {"Y", "N"}
    assert nlp["relations"].str.contains("located_at").any()


def test_person_concepts_and_observations(dataset: meddata.Dataset, source: Path) -> None:
    rows = {r["deid_patient_id"]: r for r in _csv_rows(source)}
    person = dataset.table("person").collect()
    expected = {"Male": 8507, "Female": 8532, "Unknown": 8551}
    for p in person.iter_rows(named=True):
        row = rows[p["person_source_value"]]
        assert p["gender_concept_id"] == expected[row["sex"]]
        assert (
            p["race_source_value"] == row["race"]
            and p["ethnicity_source_value"] == row["ethnicity"]
        )
        assert p["year_of_birth"] is None  # no dates in the release: never invented
        if row["race"] in ("Unknown", "Patient Refused", "Other"):
            assert p["race_concept_id"] == 0
        if row["ethnicity"] == "Non-Hispanic/Non-Latino":
            assert p["ethnicity_concept_id"] == 38003564
    obs = dataset.table("observation").collect()
    assert set(obs["observation_source_value"]) >= {
        "insurance_type",
        "interpreter_needed",
        "deceased",
        "recent_bmi",
    }
    bmi = obs.filter(pl.col("observation_source_value") == "recent_bmi")
    assert bmi["value_as_number"].null_count() == 0
    assert (bmi["value_as_number"].cast(pl.Utf8) != "").all()


def test_samples_split_view_and_attributes(dataset: meddata.Dataset) -> None:
    samples = dataset.table("samples").collect()
    assert set(samples["split"]) <= {"train", "valid"} and "train" in set(samples["split"])
    assert "official" in dataset.splits
    assert set(samples["view"]) == {"Frontal", "Lateral"}
    assert set(samples.filter(pl.col("view") == "Frontal")["view_position"]) <= {"AP", "PA"}
    assert samples["note_id"].null_count() == 0
    for col in ("sex", "age_group", "race", "ethnicity", "insurance"):
        assert samples[col].null_count() == 0
    assert dataset.manifest["tasks"]["sensitive_attributes"] == [
        "sex",
        "age_group",
        "race",
        "ethnicity",
        "insurance",
    ]
    occ = dataset.table("image_occurrence").collect()
    assert occ["image_occurrence_date"].null_count() == len(occ)
    assert occ["image_study_uid"].str.starts_with("2.25.").all()


def test_dicom_option(source: Path, tmp_path: Path) -> None:
    summary = convert(
        "chexpert-plus",
        source,
        tmp_path,
        options={"images": "dicom"},
        workers=1,
        show_progress=False,
        deid=False,
    )
    ds = meddata.load(summary.path)
    assert ds.manifest["adapter"]["options"]["images"] == "dicom"
    image = ds.table("image").collect()
    row = image.row(0, named=True)
    assert row["pixels"]["codec"] == "zstd" and np.dtype(row["pixels"]["dtype"]) == np.uint16
    png = source / "PNG" / row["local_path"].removeprefix("DICOM/").replace(".dcm", ".png")
    from PIL import Image

    with Image.open(png) as im:
        expected = np.asarray(im).astype(np.uint16) * 16
    assert np.array_equal(tensor.decode(row["pixels"]), expected)
    assert set(ds.table("image_occurrence").collect()["modality_source_value"]) == {"CR"}
    assert validate(summary.path).ok


def test_cli_convert_and_load_by_name(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("MEDDATA_HOME", str(home))
    with pytest.raises(DatasetNotFoundError) as err:
        meddata.load("chexpert-plus")
    text = str(err.value)
    assert "CheXpert Plus (Stanford AIMI, 2024)" in text
    assert f"meddata convert chexpert-plus /path/to/source -o {home}" in text
    done = run_cli(
        "convert", "chexpert-plus", str(source), "-o", str(home), "--json", "--workers", "1"
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["tables"]["samples"] == len(_csv_rows(source))
    monkeypatch.chdir(tmp_path)
    ds = meddata.load("chexpert-plus")
    assert ds.table("samples").select(pl.len()).collect().item() == summary["tables"]["samples"]


def test_missing_required_column_is_a_source_error(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    header = [c for c in COLUMNS if c != "deid_patient_id"]
    _write_csv(src, _csv_rows(source), header)
    with pytest.raises(SourceError, match="deid_patient_id"):
        convert("chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False)
    (src / CSV_NAME).unlink()
    with pytest.raises(SourceError, match=CSV_NAME):
        convert("chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False)


def test_dicom_option_without_dicom_tree(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    with pytest.raises(SourceError, match="DICOM"):
        convert(
            "chexpert-plus",
            src,
            tmp_path / "out",
            options={"images": "dicom"},
            workers=1,
            show_progress=False,
            deid=False,
        )


def test_bad_input_is_quarantined_not_dropped(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    rows = _csv_rows(source)
    # a missing image, a truncated PNG, a PNG with a flipped byte
    missing, truncated, flipped = (r["path_to_image"] for r in rows[:3])
    (src / "PNG" / missing.replace(".jpg", ".png")).unlink()
    png = src / "PNG" / truncated.replace(".jpg", ".png")
    png.write_bytes(png.read_bytes()[:500])
    png = src / "PNG" / flipped.replace(".jpg", ".png")
    data = bytearray(png.read_bytes())
    data[200] ^= 0xFF
    png.write_bytes(bytes(data))
    # non-ASCII report text, a duplicate row, an unexpected extra column
    key = (rows[4]["deid_patient_id"], rows[4]["patient_report_date_order"])
    for r in rows:
        if (r["deid_patient_id"], r["patient_report_date_order"]) == key:
            r["report"] += "\n\nSUMMARY: Épanchement pleural – ≥ 2 cm, µ"
    rows.append(dict(rows[5]))
    for r in rows:
        r["site_note"] = "x"
    _write_csv(src, rows, [*COLUMNS, "site_note"])
    # a label row for an image not in the CSV
    with open(src / "chexbert_labels/report_fixed.json", "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps(
                {
                    "path_to_image": "train/patient99999/study1/view1_frontal.jpg",
                    **dict.fromkeys(LABELS),
                }
            )
            + "\n"
        )
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=2, show_progress=False, deid=False
    )
    report = _quarantine(summary.path)
    reasons = {q["item"]: q["reason"] for q in report}
    assert "missing" in reasons[missing]
    assert "corrupt PNG" in reasons[truncated] and "corrupt PNG" in reasons[flipped]
    assert "duplicate CSV row" in reasons[rows[5]["path_to_image"]]
    assert any("unexpected column" in q["reason"] and "site_note" in q["item"] for q in report)
    assert any("patient99999" in q["item"] and "not in the CSV" in q["reason"] for q in report)
    ds = meddata.load(summary.path)
    n_unique = len(rows) - 1
    assert summary.tables["samples"] == n_unique - 3
    assert summary.tables["note"] == len(
        {(r["deid_patient_id"], r["patient_report_date_order"]) for r in rows}
    )
    texts = ds.table("note").collect()["note_text"].to_list()
    assert any("Épanchement pleural – ≥ 2 cm, µ" in t for t in texts)
    assert validate(summary.path).ok
    # no PHI in the quarantine report: no names, no report text
    blob = json.dumps(report)
    for word in (*FIRST, *LAST, "Épanchement", "FINDINGS"):
        assert word not in blob


def _findings_nlp_notes(ds: meddata.Dataset) -> set[str]:
    """note_source_value (patient/reportN) of the notes with findings note_nlp rows."""
    notes = ds.table("note").collect().select("note_id", "note_source_value")
    nlp = ds.table("note_nlp").collect().filter(pl.col("section") == "findings")
    return set(nlp.join(notes, on="note_id")["note_source_value"])


def test_radgraph_realigns_by_text_after_missing_and_extra_entries(
    source: Path, dataset: meddata.Dataset, tmp_path: Path
) -> None:
    """A missing entry, an extra entry and a CSV row missing (its entry then extra) lose only
    those rows' annotations: the alignment re-synchronises on the entries' own text."""
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    rows = _csv_rows(source)
    eligible = _findings_rows(rows)
    assert len(eligible) >= 12
    path = src / "radgraph-XL-annotations/section_findings.json"
    graph = json.loads(path.read_text())
    lost_entries = {0, 5}  # entries for eligible rows 0 and 5 removed
    dropped_row = eligible[9]  # a CSV row removed: its entry is left over
    bogus = {"0": {"text": "Unrelated words nobody wrote.", "entities": {}}}
    kept = [g for k, g in enumerate(graph) if k not in lost_entries]
    kept.insert(6, bogus)  # an extra entry in the middle
    path.write_text(json.dumps(kept))
    _write_csv(src, [r for i, r in enumerate(rows) if i != dropped_row], list(COLUMNS))
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    reasons = [q["reason"] for q in _quarantine(summary.path) if "section_findings" in q["item"]]
    assert any(r.startswith("2 entries match no CSV row's findings text") for r in reasons)
    # rows whose entry is gone: reported by CSV line, no text
    lines = sorted(eligible[k] + 2 - (eligible[k] > dropped_row) for k in lost_entries)
    assert any(
        f"2 of {len(eligible) - 1} CSV rows" in r and f"CSV lines {lines[0]}, {lines[1]})" in r
        for r in reasons
    ), reasons

    # every other report keeps its findings annotations
    def report(i: int) -> str:
        return f"{rows[i]['deid_patient_id']}/report{rows[i]['patient_report_date_order']}"

    gone = {eligible[k] for k in lost_entries} | {dropped_row}
    expected = {report(i) for i in eligible if i not in gone}
    ds = meddata.load(summary.path)
    assert expected <= _findings_nlp_notes(ds)
    assert _findings_nlp_notes(ds) <= _findings_nlp_notes(dataset)
    nlp = (
        ds.table("note_nlp")
        .collect()
        .join(ds.table("note").collect().select("note_id", "note_text"), on="note_id")
    )
    for r in nlp.iter_rows(named=True):  # whatever was kept still lines up
        assert r["note_text"][r["char_start"] : r["char_end"]].replace(" ", "") == r[
            "lexical_variant"
        ].replace(" ", "")
    assert validate(summary.path).ok


def test_align_tokens_survives_replaced_text() -> None:
    text = (
        "IMPRESSION: Small left pleural effusion. Discussed with [NAME] on [DATE]. No pneumothorax."
    )
    tokens = "Small left pleural effusion . Discussed with Dr. Hope on 04/12/2019 . No pneumothorax .".split()
    spans = align_tokens(tokens, text, text.index("Small"))
    assert text[slice(*spans[3])] == "effusion"  # type: ignore[misc]
    assert spans[tokens.index("Hope")] is None
    assert text[slice(*spans[-2])] == "pneumothorax"  # type: ignore[misc]
    assert parse_radgraph_label("OBS-DA") == ("Observation", "definitely absent")
    assert parse_radgraph_label("Observation::measurement::uncertain") == (
        "Observation",
        "uncertain",
    )


def _findings_rows(rows: list[dict[str, str]]) -> list[int]:
    return [i for i, r in enumerate(rows) if len(r["section_findings"].split()) >= 2]


def test_non_utf8_label_lines_and_ragged_rows_are_quarantined(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    rows = _csv_rows(source)
    # bytes that are not UTF-8 in the CheXbert JSON Lines: one line still parses, one does not
    with open(src / "chexbert_labels/report_fixed.json", "ab") as fh:
        fh.write(b'{"path_to_image": "train/patient1/study1/view1_fr\xffontal.jpg"}\n')
        fh.write(b"\xff\xfe{not json\n")
    # a ragged row (one field short) early on, itself with a RadGraph-XL findings entry
    ragged = _findings_rows(rows)[1]
    with open(src / CSV_NAME, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        for i, r in enumerate(rows):
            values = [r[c] for c in COLUMNS]
            writer.writerow(values[:-1] if i == ragged else values)
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = _quarantine(summary.path)
    reasons = [q["reason"] for q in report]
    assert sum("not valid UTF-8" in r for r in reasons) == 2
    assert any(f"line {ragged + 2}" in q["item"] and "fields" in q["reason"] for q in report)
    assert any("ragged" in r for r in reasons)
    # later entries stay aligned: nothing is reported as unmatched
    assert not any("match no CSV row" in r or "have no entry" in r for r in reasons), reasons
    ds = meddata.load(summary.path)
    assert summary.tables["samples"] == len(rows) - 1
    nlp = ds.table("note_nlp").collect()
    sections = set(zip(nlp["note_id"], nlp["section"], strict=True))
    notes = ds.table("note").collect()
    with_findings = notes.filter(pl.col("section_findings").str.split(" ").list.len() >= 2)
    assert {(n, "findings") for n in with_findings["note_id"]} <= sections
    assert validate(summary.path).ok


def test_report_keys_and_malformed_entities(source: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    rows = _csv_rows(source)
    # a patient's report order left empty: each study folder stays its own report
    by_patient: dict[str, set[str]] = {}
    for r in rows:
        by_patient.setdefault(r["deid_patient_id"], set()).add(r["patient_report_date_order"])
    patient = next(p for p, orders in by_patient.items() if len(orders) > 1)
    for r in rows:
        if r["deid_patient_id"] == patient:
            r["patient_report_date_order"] = ""
    # two rows of one report with different report text
    pairs: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        pairs.setdefault((r["deid_patient_id"], r["patient_report_date_order"]), []).append(i)
    first, second = next(ix for k, ix in pairs.items() if len(ix) > 1 and k[0] != patient)[:2]
    rows[second]["report"] = rows[second]["report"] + " Addendum."
    _write_csv(src, rows, list(COLUMNS))
    # malformed RadGraph-XL entities in the first findings entry
    path = src / "radgraph-XL-annotations/section_findings.json"
    graph = json.loads(path.read_text())
    entities = graph[0]["0"]["entities"]
    n_good = len(entities)
    entities["98"] = "not an entity"
    entities["99"] = {"tokens": "x", "label": "OBS-DP", "start_ix": "a", "end_ix": 1}
    path.write_text(json.dumps(graph))
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = _quarantine(summary.path)
    reasons = {q["item"]: q["reason"] for q in report}
    assert "report text differs" in reasons[rows[second]["path_to_image"]]
    assert sum("entity skipped" in q["reason"] for q in report) == 2
    ds = meddata.load(summary.path)
    notes = ds.table("note").collect()
    studies = {(r["deid_patient_id"], r["path_to_image"].rsplit("/", 1)[0]) for r in rows}
    assert len(notes) == len(studies)
    samples = ds.table("samples").collect()
    assert samples["note_id"].null_count() == 1  # only the conflicting row
    # the report with bad entities keeps its note and every good entity
    findings_row = rows[_findings_rows(rows)[0]]
    note = notes.filter(pl.col("note_text") == findings_row["report"])
    assert len(note) == 1
    nlp = ds.table("note_nlp").collect()
    kept = nlp.filter((pl.col("note_id") == note["note_id"][0]) & (pl.col("section") == "findings"))
    assert len(kept) == n_good
    assert validate(summary.path).ok


def test_radgraph_offsets_follow_the_section_heading() -> None:
    text = "HISTORY: Small effusion.\nFINDINGS: Small effusion.\nIMPRESSION: Stable."
    start = section_start(text, "findings", "Small effusion.")
    assert start == text.index("FINDINGS:") + len("FINDINGS: ")
    spans = align_tokens("Small effusion .".split(), text, start)
    assert spans[0] is not None and spans[0][0] > text.index("FINDINGS:")
    assert section_start("Small effusion.", "findings", "effusion.") == 6  # no heading
    assert section_start("IMPRESSION: x", "impression", None) == len("IMPRESSION:")


def test_failed_report_leaves_no_half_converted_rows(
    source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: ChexpertPlusAdapter, *args: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(ChexpertPlusAdapter, "_observations", broken)
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    reasons = [q["reason"] for q in _quarantine(summary.path)]
    assert reasons and all("report could not be converted" in r for r in reasons)
    assert "note" not in summary.tables and "note_nlp" not in summary.tables
    assert summary.tables["samples"] == len(_csv_rows(source))


# -- age and report order (kept for training users) ----------------------------------------------
def test_samples_keep_age_and_study_order(dataset: meddata.Dataset, source: Path) -> None:
    """age and patient_report_date_order survive as samples columns (not only as 5 age bins and
    inside note_source_value, which is null under de-identification)."""
    rows = {r["path_to_image"]: r for r in _csv_rows(source)}
    image = dataset.table("image").select("image_id", "local_path").collect()
    samples = dataset.table("samples").collect()
    assert samples.schema["age"] == pl.Int32 and samples.schema["study_order"] == pl.Int32
    samples = samples.join(image, on="image_id")
    for row in samples.iter_rows(named=True):
        src = rows[row["local_path"].removeprefix("PNG/").replace(".png", ".jpg")]
        assert row["age"] == int(src["age"])
        assert row["study_order"] == int(src["patient_report_date_order"])
    assert samples["age"].null_count() == samples["study_order"].null_count() == 0


def test_age_is_capped_and_study_order_kept_under_deid(source: Path, tmp_path: Path) -> None:
    """Under de-identification ages over 89 are 90 (HIPAA Safe Harbor) and the report order (an
    ordinal, not a date) is kept, so a patient's studies can still be put in order."""
    src = tmp_path / "src"
    shutil.copytree(source, src, ignore=shutil.ignore_patterns("DICOM"))
    rows = _csv_rows(source)
    patients = list(dict.fromkeys(r["deid_patient_id"] for r in rows))
    given = {patients[0]: "97", patients[1]: "89", patients[2]: "90.0"}
    for r in rows:
        r["age"] = given.get(r["deid_patient_id"], r["age"])
    _write_csv(src, rows, list(COLUMNS))
    key = b"k" * 32
    summary = convert(
        "chexpert-plus", src, tmp_path / "out", workers=1, show_progress=False, deid_key=key
    )
    assert summary.quarantined == 0
    ds = meddata.load(summary.path)
    samples = ds.table("samples").collect()
    adapter = ChexpertPlusAdapter(src, deid_key=key)
    by_id = {r["image_id"]: r for r in samples.iter_rows(named=True)}
    expected_age = {patients[0]: 90, patients[1]: 89, patients[2]: 90}
    for r in rows:
        got = by_id[adapter.row_id("image", r["path_to_image"])]
        age = expected_age.get(r["deid_patient_id"]) or min(int(r["age"]), 90)
        assert got["age"] == age
        assert got["study_order"] == int(r["patient_report_date_order"])
        if r["deid_patient_id"] == patients[0]:
            assert got["age_group"] == "80+"
    assert samples["age"].max() == 90
    notes = ds.table("note").collect()
    assert notes["note_source_value"].null_count() == notes["note_date"].null_count() == len(notes)
    assert validate(summary.path).ok


# -- -O verify ------------------------------------------------------------------------------------
def test_verify_option_is_recorded_and_keeps_good_images(source: Path, tmp_path: Path) -> None:
    summary = convert(
        "chexpert-plus",
        source,
        tmp_path,
        options={"verify": "decode"},
        workers=1,
        show_progress=False,
        deid=False,
    )
    assert summary.quarantined == 0
    assert summary.tables["image"] == len(_csv_rows(source))
    ds = meddata.load(summary.path)
    assert ds.manifest["adapter"]["options"]["verify"] == "decode"
    assert ChexpertPlusAdapter.option_specs["verify"].default == "header"
    assert "ms per" in ChexpertPlusAdapter.option_specs["verify"].help  # the cost is documented
    assert validate(summary.path).ok
