"""`meddata deid text` and `meddata deid dicom`, called through click's test runner."""

from __future__ import annotations

import json
import re
import shutil
import stat
from importlib import resources
from pathlib import Path

import pydicom
import pytest
from click.testing import CliRunner

from meddata.cli.deid import deid
from meddata.cli.main import main
from meddata.errors import SourceError, UsageError

TEST_FILES = Path(str(resources.files("pydicom") / "data" / "test_files"))


def _copy_test_files(dest: Path, *names: str) -> None:
    """Copy pydicom's real test files into ``dest``, skipping the test if one is missing."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        if not (TEST_FILES / name).is_file():
            pytest.skip(f"pydicom test file {name} is not installed")
        (dest / name).write_bytes((TEST_FILES / name).read_bytes())


def _summary(output: str) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = json.loads(output.strip().splitlines()[-1])
    return summary


def test_text_with_key_is_stable_and_spans_have_no_values(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("ab" * 32)
    note = "Dictated by: Maria Lopez, MD on 03/14/2021. MRN: 4455667."
    runner = CliRunner()
    first = runner.invoke(deid, ["text", "--key-file", str(key), "--person-id", "p1"], input=note)
    second = runner.invoke(deid, ["text", "--key-file", str(key), "--person-id", "p1"], input=note)
    assert first.exit_code == 0 and first.output == second.output
    assert "Lopez" not in first.output and "4455667" not in first.output
    spans = runner.invoke(deid, ["text", "--key-file", str(key), "--spans"], input=note)
    doc = json.loads(spans.output)
    assert {s["type"] for s in doc["spans"]} == {"NAME", "DATE", "ID"}
    assert all(set(s) == {"type", "start", "end"} for s in doc["spans"])


def test_dicom_folder(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    files = Path(str(resources.files("pydicom") / "data" / "test_files"))
    for name in ("CT_small.dcm", "MR_small.dcm"):
        (src / name).write_bytes((files / name).read_bytes())
    (src / "notes.txt").write_text("not dicom")
    burned = pydicom.dcmread(files / "CT_small.dcm")
    burned.BurnedInAnnotation = "YES"
    burned.save_as(src / "burned.dcm")
    out = tmp_path / "out"
    result = CliRunner().invoke(deid, ["dicom", str(src), str(out)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out.deid-key").exists() and not list(out.glob("*key*"))
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["files"] == {"written": 2, "skipped_not_dicom": 1, "quarantined_burned_in": 1}
    assert summary["counts"]["dicom_files"] == 2
    written = sorted(out.glob("*.dcm"))
    assert len(written) == 2 and all(p.name.startswith("2.25.") for p in written)
    for p in written:
        ds = pydicom.dcmread(p)
        assert ds.PatientIdentityRemoved == "YES"
    report = (out / "quarantine.jsonl").read_text()
    assert "burned" not in report and "notes" not in report and "BurnedInAnnotation" in report
    again = CliRunner().invoke(
        deid,
        ["dicom", str(src), str(tmp_path / "out2"), "--key-file", str(tmp_path / "out.deid-key")],
    )
    assert again.exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out2").glob("*.dcm")) == [p.name for p in written]


def test_text_missing_key_names_no_other_commands_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["deid", "text", "--key-file", str(tmp_path / "nosuch.key")])
    err = capsys.readouterr().err
    assert code == 2 and "Cannot read the de-identification key file" in err
    assert "--deid-key-file" not in err


def test_dicom_empty_in_dir_is_an_error_and_creates_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    code = main(["deid", "dicom", str(tmp_path / "in"), str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "nothing to de-identify" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # no key, no OUT_DIR


def test_dicom_shared_sop_uids_are_all_written_under_distinct_names(tmp_path: Path) -> None:
    names = ("MR_small.dcm", "MR_small_RLE.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm")
    _copy_test_files(tmp_path / "in", *names)
    key = tmp_path / "k"
    key.write_text("ab" * 32)
    runs = []
    for out in (tmp_path / "out", tmp_path / "out2"):
        args = ["dicom", str(tmp_path / "in"), str(out), "--key-file", str(key)]
        result = CliRunner().invoke(deid, args)
        assert result.exit_code == 0, result.output
        assert _summary(result.stdout)["files"] == {"written": 4}
        written = {p.name: pydicom.dcmread(p) for p in out.glob("*.dcm")}
        assert len(written) == 4 and not list(out.glob("*.part"))
        uid = written[min(written, key=len)].SOPInstanceUID
        assert set(written) == {f"{uid}.dcm"} | {f"{uid}-{n}.dcm" for n in (1, 2, 3)}
        runs.append({n: str(ds.file_meta.TransferSyntaxUID) for n, ds in written.items()})
    assert runs[0] == runs[1]  # the same input gets the same name on every run


def test_dicom_without_sop_uid_is_written_under_a_keyed_id(tmp_path: Path) -> None:
    names = ("priv_SQ.dcm", "nested_priv_SQ.dcm", "UN_sequence.dcm", "empty_charset_LEI.dcm")
    _copy_test_files(tmp_path / "in" / "Doe^John", *names)
    result = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert _summary(result.stdout)["files"] == {"written": 4, "written_named_by_id": 4}
    written = sorted((tmp_path / "out").iterdir())
    assert len(written) == 4 and all(re.fullmatch(r"[0-9a-f]{32}\.dcm", p.name) for p in written)
    assert all(pydicom.dcmread(p).PatientIdentityRemoved == "YES" for p in written)
    rows = [json.loads(line) for line in (tmp_path / "out.quarantine-paths.jsonl").open()]
    by_id = {row["id"].removeprefix("path:") + ".dcm": row["path"] for row in rows}
    assert by_id.keys() == {p.name for p in written}
    assert sorted(by_id.values()) == sorted(f"Doe^John/{n}" for n in names)


def test_dicom_quarantine_ids_map_to_paths_beside_out_dir_for_the_owner_only(
    tmp_path: Path,
) -> None:
    src = tmp_path / "in" / "Smith^Jane"
    _copy_test_files(src, "CT_small.dcm")
    (src / "notes.txt").write_text("not dicom")
    burned = pydicom.dcmread(src / "CT_small.dcm")
    burned.BurnedInAnnotation = "YES"
    burned.save_as(src / "burned.dcm")
    out = tmp_path / "out"
    result = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(out)])
    assert result.exit_code == 0, result.output
    paths_map = tmp_path / "out.quarantine-paths.jsonl"
    assert str(paths_map) in result.stderr and "quarantine-paths" in _help()
    assert stat.S_IMODE(paths_map.stat().st_mode) == 0o600
    report = [json.loads(line) for line in (out / "quarantine.jsonl").open()]
    rows = [json.loads(line) for line in paths_map.open()]
    assert all(set(row) == {"id", "path"} for row in rows)
    assert {r["file"] for r in report} == {row["id"] for row in rows}
    assert sorted(row["path"] for row in rows) == ["Smith^Jane/burned.dcm", "Smith^Jane/notes.txt"]
    assert not any("Smith" in p.name or b"Smith" in p.read_bytes() for p in out.iterdir())
    (src / "notes.txt").unlink()
    (src / "burned.dcm").unlink()
    refused = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(out)])
    assert isinstance(refused.exception, UsageError)  # exit 2 from `meddata`: no mixing of runs
    assert "not empty" in str(refused.exception)
    shutil.rmtree(out)
    again = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(out)])
    assert (
        again.exit_code == 0 and not paths_map.exists() and not (out / "quarantine.jsonl").exists()
    )


def test_dicom_with_nothing_de_identifiable_fails_after_reporting(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.txt").write_text("not dicom")
    (src / "b.txt").write_text("nor this")
    result = CliRunner().invoke(deid, ["dicom", str(src), str(tmp_path / "out")])
    assert isinstance(result.exception, SourceError)  # exit 1 from `meddata`
    assert "all 2 were quarantined" in str(result.exception)
    assert _summary(result.stdout)["files"] == {"skipped_not_dicom": 2}


def _help() -> str:
    return CliRunner().invoke(deid, ["dicom", "--help"]).output


def test_dicom_failed_write_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _copy_test_files(tmp_path / "in", "CT_small.dcm")

    def broken_save(self: pydicom.Dataset, filename: Path, **kwargs: object) -> None:
        Path(filename).write_bytes(b"half")
        raise TypeError("disk trouble")

    monkeypatch.setattr(pydicom.Dataset, "save_as", broken_save)
    result = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(tmp_path / "out")])
    assert isinstance(result.exception, SourceError)  # nothing was written: the run failed
    assert _summary(result.stdout)["files"] == {"quarantined_error": 1}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["quarantine.jsonl"]


def test_dicom_files_without_preamble_are_de_identified_into_part10_files(tmp_path: Path) -> None:
    names = ("ExplVR_BigEndNoMeta.dcm", "ExplVR_LitEndNoMeta.dcm", "rtstruct.dcm")
    _copy_test_files(tmp_path / "in", *names)
    result = CliRunner().invoke(deid, ["dicom", str(tmp_path / "in"), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert _summary(result.stdout)["files"] == {"written": 3}
    syntaxes = set()
    for path in (tmp_path / "out").glob("*.dcm"):
        ds = pydicom.dcmread(path)  # no force: a real DICOM file now
        assert ds.PatientIdentityRemoved == "YES"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        syntaxes.add(ds.file_meta.TransferSyntaxUID.name)
    assert "Explicit VR Big Endian" in syntaxes  # the encoding the reader detected is kept


def test_dicom_dicomdir_file_ids_and_unlisted_dates_leave_no_identifier(tmp_path: Path) -> None:
    """A DICOMDIR's file paths named the patient (``77654033/CR1/6154``); an unlisted date
    (StudyUpdateDateTime) revealed the date offset: neither survives ``deid dicom``."""
    src = tmp_path / "in"
    src.mkdir()
    dicomdir = TEST_FILES / "dicomdirtests" / "DICOMDIR"
    if not dicomdir.is_file():
        pytest.skip("pydicom's DICOMDIR test file is not installed")
    shutil.copy(dicomdir, src / "DICOMDIR")
    ct = pydicom.dcmread(TEST_FILES / "CT_small.dcm")
    ct.add_new(0x0008041F, "DT", "20210304101010")  # Study Update DateTime, not in the profile
    ct.save_as(src / "ct.dcm")
    for flags in ([], ["--retain-dates"]):
        target = tmp_path / f"out{len(flags)}"
        result = CliRunner().invoke(deid, ["dicom", str(src), str(target), *flags])
        assert result.exit_code == 0, result.output
        written = sorted(target.glob("*.dcm"))
        assert len(written) == 2
        for path in written:
            raw = path.read_bytes()
            assert b"77654033" not in raw and b"98890234" not in raw, path.name
            assert b"20210304" not in raw, path.name
    out = tmp_path / "out0"
    dirs = [pydicom.dcmread(p) for p in out.glob("*.dcm")]
    records = next(d for d in dirs if "DirectoryRecordSequence" in d).DirectoryRecordSequence
    ids = [r.ReferencedFileID for r in records if "ReferencedFileID" in r]
    assert ids and all(re.fullmatch(r"[0-9A-Z]{8}", part) for parts in ids for part in parts)
