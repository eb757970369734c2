"""De-identification inside `meddata convert`: no identifier survives into any table, the same
person gets the same pseudonym and date shift everywhere, and the key never enters the output."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pydicom
import pytest

import meddata
from meddata.deid import Deidentifier, DeidOptions
from meddata.tensor import TENSOR_TYPE
from meddata.validate import validate
from tests.conftest import run_cli

KEY = bytes(range(32))


def _strings(ds: meddata.Dataset) -> list[str]:
    """Every non-payload string value in every table of ``ds``."""
    out: list[str] = []
    for table in ds.tables:
        arrow = ds.arrow(table).to_table()
        for field in arrow.schema:
            if field.type == TENSOR_TYPE:
                continue
            out += [str(v) for v in arrow.column(field.name).to_pylist() if v is not None]
    return out


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "site.key"
    path.write_bytes(KEY)
    path.chmod(0o600)
    return path


def test_dicom_folder_output_holds_no_identifiers(
    dicom_source: Path, key_file: Path, tmp_path: Path
) -> None:
    out = run_cli(
        "convert",
        "dicom-folder",
        str(dicom_source),
        "-o",
        str(tmp_path),
        "--deid-key-file",
        str(key_file),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    ds = meddata.load(summary["path"])
    values = "\n".join(_strings(ds))
    deid = Deidentifier(KEY, DeidOptions(retain_longitudinal_dates=True))
    persons = set(ds.table("person").collect()["person_id"])
    for path in sorted(dicom_source.rglob("*.dcm")):
        src = pydicom.dcmread(path, stop_before_pixels=True)
        for secret in (
            src.PatientID,
            *str(src.PatientName).split("^"),
            src.AccessionNumber,
            src.InstitutionName,
            src.PatientBirthDate,
            src.StudyInstanceUID,
            src.SOPInstanceUID,
        ):
            assert secret and secret not in values, "an identifier survived de-identification"
        assert path.parent.name not in values and "Smith" not in values
        assert deid.person_id(src.PatientID) in persons
    # dates are shifted by the person's offset, never kept
    occ = ds.table("image_occurrence").join(ds.table("person"), on="person_id").collect()
    src = pydicom.dcmread(sorted(dicom_source.rglob("*.dcm"))[0], stop_before_pixels=True)
    original = dt.datetime.strptime(src.StudyDate, "%Y%m%d").date()
    shifted = deid.shift_date(original, src.PatientID)
    assert shifted != original and shifted in set(occ["image_occurrence_date"])
    manifest = ds.manifest
    assert manifest["deid"]["key_fingerprint"] == deid.key_fingerprint
    assert manifest["deid"]["counts"]["dicom_files"] == summary["tables"]["image"]
    assert KEY.hex() not in json.dumps(manifest)
    assert validate(ds.path).ok
    assert not any(p.name.endswith(".deid-key") for p in Path(summary["path"]).rglob("*"))


def test_same_key_same_tables_other_key_unlinkable(
    dicom_source: Path, key_file: Path, tmp_path: Path
) -> None:
    def person_ids(out: Path, *key: str) -> set[int]:
        res = run_cli("convert", "dicom-folder", str(dicom_source), "-o", str(out), *key, "--json")
        assert res.returncode == 0, res.stderr
        return set(
            meddata.load(json.loads(res.stdout)["path"]).table("person").collect()["person_id"]
        )

    a = person_ids(tmp_path / "a", "--deid-key-file", str(key_file))
    b = person_ids(tmp_path / "b", "--deid-key-file", str(key_file))
    other = tmp_path / "other.key"
    other.write_bytes(bytes(reversed(range(32))))
    c = person_ids(tmp_path / "c", "--deid-key-file", str(other))
    assert a == b and not a & c


def test_generated_key_lies_beside_the_output_with_a_warning(
    dicom_source: Path, tmp_path: Path
) -> None:
    out = run_cli("convert", "dicom-folder", str(dicom_source), "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "warning: created a new de-identification key" in out.stderr
    key = tmp_path / "dicom-folder.deid-key"
    assert key.exists() and oct(key.stat().st_mode)[-3:] == "600"
    again = run_cli(
        "convert", "dicom-folder", str(dicom_source), "-o", str(tmp_path), "--version", "2"
    )
    assert "warning" not in again.stderr  # the same key is reused


def test_no_deid_keeps_source_values(dicom_source: Path, tmp_path: Path) -> None:
    out = run_cli(
        "convert", "dicom-folder", str(dicom_source), "-o", str(tmp_path), "--no-deid", "--json"
    )
    ds = meddata.load(json.loads(out.stdout)["path"])
    assert ds.manifest["deid"] is None
    assert any(v.startswith("MRN") for v in ds.table("person").collect()["person_source_value"])


def test_chexpert_plus_reports_are_deidentified_and_entities_still_align(
    key_file: Path, tmp_path: Path
) -> None:
    from meddata.adapters.chexpert_plus import ChexpertPlusAdapter

    src = ChexpertPlusAdapter.synthesize(tmp_path / "src", n=12, seed=5)
    rows = list(csv.DictReader((src / "df_chexpert_plus_240401.csv").open(encoding="utf-8")))
    names = set()
    for r in rows:
        names |= set(re.findall(r"(?:Dr\.|to) ([A-Z][a-z]+ [A-Z][a-z]+)", r["report"] or ""))
    assert names, "the synthesized reports should carry PHI-like names"
    out = run_cli(
        "convert",
        "chexpert-plus",
        str(src),
        "-o",
        str(tmp_path / "out"),
        "--deid-key-file",
        str(key_file),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    ds = meddata.load(json.loads(out.stdout)["path"])
    text = "\n".join(ds.table("note").collect()["note_text"])
    for name in names:
        assert name not in text
    assert ds.manifest["deid"]["counts"].get("NAME", 0) >= len(names)
    entities = (
        ds.table("note_nlp")
        .join(ds.table("note").select("note_id", "note_text"), on="note_id")
        .collect()
    )
    aligned = entities.filter(pl.col("char_start").is_not_null())
    assert aligned.height > 0
    for row in aligned.iter_rows(named=True):
        assert row["note_text"][row["char_start"] : row["char_end"]] == row["lexical_variant"]


def test_quarantine_report_holds_no_source_paths_under_deid(
    dicom_source: Path, key_file: Path, tmp_path: Path
) -> None:
    import shutil

    src = tmp_path / "src"
    shutil.copytree(dicom_source, src)
    patient_dir = sorted(p for p in src.iterdir() if p.is_dir())[0]  # e.g. DOE_JOHN_MRN0100000
    (patient_dir / "scan notes.txt").write_text("not DICOM")
    out = run_cli(
        "convert",
        "dicom-folder",
        str(src),
        "-o",
        str(tmp_path / "out"),
        "--deid-key-file",
        str(key_file),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    report = Path(summary["path"], "quarantine", "report.jsonl").read_text()
    assert patient_dir.name not in report and "path:" in report
    mapping = Path(summary["path"]).parent.parent / "dicom-folder-1.0.quarantine-paths.jsonl"
    entries = [json.loads(line) for line in mapping.read_text().splitlines()]
    assert any(e["path"].startswith(patient_dir.name) and e["id"] in report for e in entries)
    strict = run_cli(
        "convert",
        "dicom-folder",
        str(src),
        "-o",
        str(tmp_path / "strict"),
        "--deid-key-file",
        str(key_file),
        "--strict",
    )
    assert (
        strict.returncode == 1
        and patient_dir.name not in strict.stderr
        and "quarantine-paths" in strict.stderr
    )


def test_quarantine_ids_replace_patient_paths_but_keep_release_files_and_values(
    tmp_path: Path,
) -> None:
    import json as _json

    from meddata import storage
    from meddata.convert import _PathRedactor

    fs = storage.open_fs(tmp_path)[0]
    redact = _PathRedactor(
        fs, str(tmp_path / "map.jsonl"), b"k" * 32, ("df_*.csv", "labels/*.json")
    )
    records = [
        {"unit": "Doe^John", "item": "Doe^John/1.dcm", "reason": "truncated", "error": ""},
        {
            "unit": "train/patient1",
            "item": "labels/report.json: line 4 ( train/patient1/view1.jpg)",
            "reason": "label Edema outside 1/0/-1/null in labels/report.json; set to null",
            "error": "",
        },
        {"unit": "", "item": "df_plus.csv: column extra", "reason": "ignored", "error": ""},
    ]
    out = redact(records)
    assert out[0]["unit"].startswith("path:") and out[0]["item"].startswith("path:")
    assert out[1]["item"].startswith("labels/report.json: line 4 ( path:")
    assert "train/patient1" not in _json.dumps(out)
    assert out[1]["reason"] == "label Edema outside 1/0/-1/null in labels/report.json; set to null"
    assert out[2]["item"] == "df_plus.csv: column extra"
    mapping = {row["id"]: row["path"] for row in map(_json.loads, (tmp_path / "map.jsonl").open())}
    assert set(mapping.values()) == {
        "Doe^John", "Doe^John/1.dcm", "train/patient1", "train/patient1/view1.jpg"
    }  # fmt: skip


def test_staging_inside_the_dataset_folder_never_holds_source_paths(tmp_path: Path) -> None:
    """A --strict stop (or a kill) leaves _staging/ inside OUT/<name>/<version>: under
    de-identification its journal holds keyed ids only, and --resume finishes with them."""
    import json as _json

    from meddata.adapters.dicom_folder import DicomFolderAdapter
    from tests.conftest import run_cli

    src = DicomFolderAdapter.synthesize(tmp_path / "src", n=3, seed=2)
    first = sorted(p for p in src.iterdir() if p.is_dir())[0]
    first.rename(src / "Doe^Jane")  # a patient's folder named after them, as PACS exports do
    (src / "Zz^Broken").mkdir()
    (src / "Zz^Broken" / "broken.dcm").write_bytes(b"not dicom")
    key = tmp_path / "k"
    key.write_bytes(b"s" * 32)
    key.chmod(0o600)
    base = ["convert", "dicom-folder", str(src), "-o", str(tmp_path / "out"), "--deid-key-file"]
    base = [*base, str(key), "-O", "files_per_unit=1", "--workers", "1"]
    stopped = run_cli(*base, "--strict")  # units before the broken file are journaled
    assert stopped.returncode == 1 and "Zz^Broken" not in stopped.stderr
    staged = tmp_path / "out" / "dicom-folder" / "1.0" / "_staging"
    assert staged.is_dir()
    for path in staged.rglob("*"):
        if path.is_file():
            assert b"Doe^Jane" not in path.read_bytes(), path.name
    assert (staged / "journal.jsonl").read_text().count("path:") >= 2
    path_map = tmp_path / "out" / "dicom-folder-1.0.quarantine-paths.jsonl"
    named = {_json.loads(line)["path"] for line in path_map.read_text().splitlines()}
    assert named == {"Zz^Broken/broken.dcm"}  # only what a quarantine entry names
    assert path_map.stat().st_mode & 0o077 == 0
    done = run_cli(*base, "--resume")
    assert done.returncode == 0, done.stderr
    report = tmp_path / "out" / "dicom-folder" / "1.0" / "quarantine" / "report.jsonl"
    rows = [_json.loads(line) for line in report.read_text().splitlines()]
    mapping = {
        r["id"]: r["path"]
        for r in map(
            _json.loads, (tmp_path / "out" / "dicom-folder-1.0.quarantine-paths.jsonl").open()
        )
    }
    assert [mapping[r["item"]] for r in rows] == ["Zz^Broken/broken.dcm"]


def test_release_file_patterns_match_segment_by_segment(tmp_path: Path) -> None:
    from meddata import storage
    from meddata.convert import _PathRedactor

    fs = storage.open_fs(tmp_path)[0]
    redact = _PathRedactor(fs, str(tmp_path / "map.jsonl"), b"k" * 32, ("df_*.csv",))
    kept, nested = redact(
        [
            {"unit": "", "item": "df_plus.csv: line 3", "reason": "x", "error": ""},
            {"unit": "", "item": "df_x/Doe^John/a.csv", "reason": "x", "error": ""},
        ]
    )
    assert kept["item"] == "df_plus.csv: line 3" and nested["item"].startswith("path:")
    assert redact([nested]) == [nested]  # redacting an id again changes nothing


def test_a_run_staged_by_another_meddata_is_not_resumed(dicom_source: Path, tmp_path: Path) -> None:
    import json as _json

    from meddata.convert import convert
    from meddata.errors import IncompleteDatasetError

    kw: dict = dict(workers=1, show_progress=False, deid=False)
    root = tmp_path / "dicom-folder" / "1.0"
    convert("dicom-folder", dicom_source, tmp_path, **kw)
    (root / "_staging").mkdir()
    run_file = root / "_staging" / "run.json"
    (root / "meddata.json").unlink()
    convert_run = {"meddata": "0.0.1", "staging_format": 1}
    run_file.write_text(_json.dumps(convert_run))
    with pytest.raises(IncompleteDatasetError, match="another meddata version"):
        convert("dicom-folder", dicom_source, tmp_path, resume=True, **kw)


def test_the_path_map_is_appended_to_and_survives_a_cut_line(tmp_path: Path) -> None:
    import json as _json

    from meddata import storage
    from meddata.convert import _PathRedactor

    fs = storage.open_fs(tmp_path)[0]
    path_map = tmp_path / "map.jsonl"
    path_map.write_text('{"id": "stale"}\n')  # left by an earlier run: replaced
    first = _PathRedactor(fs, str(path_map), b"k" * 32)
    for n in range(3):
        first([{"unit": f"Doe^{n}/a.dcm", "item": f"Doe^{n}/a.dcm", "reason": "x", "error": ""}])
    rows = [_json.loads(line) for line in path_map.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == ["Doe^0/a.dcm", "Doe^1/a.dcm", "Doe^2/a.dcm"]
    path_map.write_bytes(path_map.read_bytes()[:-7])  # a kill cut the last line
    again = _PathRedactor(fs, str(path_map), b"k" * 32, resume=True)
    again([{"unit": "Roe/b.dcm", "item": "Roe/b.dcm", "reason": "x", "error": ""}])
    again([{"unit": "Doe^2/a.dcm", "item": "Doe^2/a.dcm", "reason": "x", "error": ""}])
    rows = [_json.loads(line) for line in path_map.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == [
        "Doe^0/a.dcm", "Doe^1/a.dcm", "Doe^2/a.dcm", "Roe/b.dcm"
    ]  # fmt: skip
    assert path_map.stat().st_mode & 0o077 == 0


def test_the_path_map_on_an_object_store_survives_an_interruption() -> None:
    """Without append, each unit's ids are a part of their own: a run that stops leaves them,
    its resume reads them back, and the merge gives one whole map (an earlier run's map and
    parts are replaced by a new run that is not a resume)."""
    import json as _json

    import fsspec

    from meddata.convert import _PathRedactor

    fs = fsspec.filesystem("memory", skip_instance_cache=True)
    path_map = "/bucket/out/ds-1.0.quarantine-paths.jsonl"
    fs.pipe_file(path_map, b'{"id": "stale", "path": "old"}\n')
    fs.pipe_file(path_map + ".parts/old.jsonl", b'{"id": "stale2", "path": "old"}\n')

    def record(n: int) -> dict[str, str]:
        return {"unit": f"Doe^{n}/a.dcm", "item": f"Doe^{n}/a.dcm", "reason": "x", "error": ""}

    first = _PathRedactor(fs, path_map, b"k" * 32)
    first([record(0)])
    first([record(1)])  # then the run is killed: no merge
    assert not fs.exists(path_map) and len(fs.find(path_map + ".parts")) == 2
    again = _PathRedactor(fs, path_map, b"k" * 32, resume=True)
    again([record(2)])
    again.finish(quarantined=3)
    rows = [_json.loads(line) for line in fs.cat_file(path_map).decode().splitlines()]
    assert sorted(r["path"] for r in rows) == ["Doe^0/a.dcm", "Doe^1/a.dcm", "Doe^2/a.dcm"]
    assert not fs.exists(path_map + ".parts")


def test_a_new_run_drops_an_earlier_runs_path_map_at_once(tmp_path: Path) -> None:
    """A run that is not a resume (a new conversion, --overwrite) removes the earlier run's
    map when it starts: stopped before its first quarantined input, its resume would
    otherwise adopt paths that no quarantine entry of the new version names."""
    import fsspec

    from meddata import storage
    from meddata.convert import _PathRedactor

    for fs, path_map in (
        (storage.open_fs(tmp_path)[0], str(tmp_path / "map.jsonl")),
        (fsspec.filesystem("memory", skip_instance_cache=True), "/bucket/map.jsonl"),
    ):
        fs.pipe_file(path_map, b'{"id": "path:old", "path": "src/Doe^John/a.dcm"}\n')
        _PathRedactor(fs, path_map, b"k" * 32)  # the run starts, then stops
        assert not fs.exists(path_map)
        assert _PathRedactor(fs, path_map, b"k" * 32, resume=True).mapping == {}
