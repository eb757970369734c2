"""`meddata deid text` and `meddata deid dicom`, called through click's test runner."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pydicom
from click.testing import CliRunner

from meddata.cli.deid import deid


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
