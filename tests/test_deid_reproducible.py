"""De-identification that does not depend on the clock or on the order files are seen in:
the reference year ages are counted to, the shared patterns of a series' known values, and the
person key of DICOMDIR records of patients without a PatientID."""

from __future__ import annotations

import copy
import json
import pickle
from datetime import date, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID

from meddata.deid import Deidentifier, DeidOptions
from meddata.deid import dates as deid_dates
from meddata.deid.dicom import person_key
from meddata.deid.dicom_known import Known, known_patterns
from meddata.errors import UsageError

KEY = bytes(range(32))
NOTE = "Jane Doe, born in 1930, seen 03/14/2021. Her husband was born in 1938. DOB: 1931"


def _clock(monkeypatch: pytest.MonkeyPatch, year: int) -> None:
    """Make the clock say it is 1 January of ``year`` (for every reader of ``dates.date``)."""

    class _Today(date):
        @classmethod
        def today(cls) -> _Today:
            return cls(year, 1, 1)

    monkeypatch.setattr(deid_dates, "date", _Today)
    assert deid_dates.current_year() == year


# -- 1. the reference year ------------------------------------------------------------------------


def test_reference_year_defaults_to_the_year_the_options_are_made_and_is_recorded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock(monkeypatch, 2031)
    options = DeidOptions()
    assert options.reference_year == 2031
    assert Deidentifier(KEY).options.reference_year == 2031
    recorded = options.as_dict()
    assert recorded["reference_year"] == 2031
    assert Deidentifier(KEY).profile_summary()["options"]["reference_year"] == 2031
    _clock(monkeypatch, 2032)
    assert DeidOptions.from_mapping(json.loads(json.dumps(recorded))) == options  # kept
    assert DeidOptions.from_mapping({}).reference_year == 2032  # not given: this year


@pytest.mark.parametrize("clock", [2020, 2025, 2026, 2040])
def test_output_for_a_fixed_reference_year_does_not_depend_on_the_clock(
    monkeypatch: pytest.MonkeyPatch, clock: int
) -> None:
    options = DeidOptions(reference_year=2025, retain_longitudinal_dates=True)
    _clock(monkeypatch, clock)
    deid = Deidentifier(KEY, options)
    out = deid.text(NOTE, "p1")
    _clock(monkeypatch, 2025)
    reference = Deidentifier(KEY, DeidOptions(reference_year=2025)).text(NOTE, "p1")
    assert out == reference
    assert "1930" not in out.text and "1931" not in out.text and "1935" in out.text
    assert "1938" in out.text  # 87 years before 2025: no age over 89
    assert "born in 1935" in out.text
    assert [s.type for s in deid.find_phi(NOTE)].count("AGE") == 2


def test_a_deidentifier_keeps_its_reference_year_when_the_clock_moves_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A long run (or a resume that reuses its recorded options) across New Year."""
    _clock(monkeypatch, 2025)
    deid = Deidentifier(KEY)
    before = deid.text(NOTE, "p1").text
    worker = pickle.loads(pickle.dumps(deid))  # as sent to a worker process
    _clock(monkeypatch, 2026)
    assert deid.text(NOTE, "p1").text == before
    assert worker.text(NOTE, "p1").text == before
    recorded = DeidOptions.from_mapping(deid.options.as_dict())
    assert Deidentifier(KEY, recorded).text(NOTE, "p1").text == before


@pytest.mark.parametrize(
    "reference_year,expected",
    [
        (2019, "born in 1930"),  # 89 years: kept
        (2020, "born in 1930"),  # over 89: the year of birth of a person aged 90 in 2020
        (2021, "born in 1931"),  # over 89: the year of birth of a person aged 90 in 2021
        (2025, "born in 1935"),
        (2040, "born in 1950"),
    ],
)
def test_the_reference_year_decides_which_years_of_birth_tell_an_age_over_89(
    reference_year: int, expected: str
) -> None:
    out = Deidentifier(KEY, DeidOptions(reference_year=reference_year)).text(
        "She was born in 1930.", "p"
    )
    assert out.text == f"She was {expected}."
    assert bool(out.spans) == (reference_year - 1930 > 89)


def test_the_reference_year_reaches_kept_dicom_text(monkeypatch: pytest.MonkeyPatch) -> None:
    def deidentified(reference_year: int) -> str:
        ds = Dataset()
        ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7001"
        ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.7002"
        ds.PatientID = "4MR1"
        ds.StudyDescription = "CT chest, patient born in 1930"
        Deidentifier(KEY, DeidOptions(reference_year=reference_year)).dicom(ds)
        return str(ds.StudyDescription)

    _clock(monkeypatch, 2030)
    in_2030 = deidentified(2025)
    _clock(monkeypatch, 2024)
    assert deidentified(2025) == in_2030 == "CT chest, patient born in 1935"
    assert deidentified(2019) == "CT chest, patient born in 1930"


@pytest.mark.parametrize("year", [1899, 10000, True, "2025", 2025.0, None])
def test_a_reference_year_that_is_no_four_digit_year_is_refused(year: object) -> None:
    with pytest.raises(UsageError, match="reference_year"):
        DeidOptions(reference_year=year)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="reference_year"):
        DeidOptions.from_mapping({"reference_year": year})


def test_deid_text_cli_takes_a_reference_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meddata.cli.deid import deid

    key = tmp_path / "k"
    key.write_text("ab" * 32)
    key.chmod(0o600)
    runner = CliRunner()
    args = ["text", "--key-file", str(key)]
    out = runner.invoke(deid, [*args, "--reference-year", "2030"], input="Born in 1935.")
    assert out.exit_code == 0, out.output
    assert out.stdout == "Born in 1940."
    _clock(monkeypatch, 2024)  # 89 years after 1935: kept
    assert runner.invoke(deid, args, input="Born in 1935.").stdout == "Born in 1935."
    _clock(monkeypatch, 2026)
    assert runner.invoke(deid, args, input="Born in 1935.").stdout == "Born in 1936."
    bad = runner.invoke(deid, [*args, "--reference-year", "99"], input="x")
    assert bad.exit_code != 0


def test_deid_dicom_cli_records_its_reference_year(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meddata.cli.deid import deid

    src = tmp_path / "in"
    src.mkdir()
    ds = _file(study="1.2.826.0.1.3680043.8.498.1", name="Doe^Jane")
    ds.StudyDescription = "follow-up, born in 1930"
    ds.save_as(src / "a.dcm", enforce_file_format=True)
    key = tmp_path / "k"
    key.write_text("ab" * 32)
    key.chmod(0o600)
    runner = CliRunner()
    _clock(monkeypatch, 2027)
    out = runner.invoke(deid, ["dicom", str(src), str(tmp_path / "o1"), "--key-file", str(key)])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["options"]["reference_year"] == 2027
    again = runner.invoke(
        deid,
        ["dicom", str(src), str(tmp_path / "o2"), "--key-file", str(key)]
        + ["--reference-year", "2027"],
    )
    assert again.exit_code == 0, again.output
    _clock(monkeypatch, 2029)
    later = runner.invoke(
        deid,
        ["dicom", str(src), str(tmp_path / "o3"), "--key-file", str(key)]
        + ["--reference-year", "2027"],
    )
    assert later.exit_code == 0, later.output
    files = [sorted((tmp_path / o).glob("*.dcm")) for o in ("o1", "o2", "o3")]
    assert len(files[0]) == 1
    payloads = {f[0].read_bytes() for f in files}
    assert len(payloads) == 1  # byte-identical whatever the clock says
    assert b"born in 1937" in payloads.pop()


# -- 2. compiled patterns of known values, shared by the files of a series -----------------------


def test_known_value_patterns_are_compiled_once_per_set_of_values() -> None:
    values = {"Quenby": "NAME", "Xiomara": "NAME", "MRN0099887": "ID", "CTROOM7": "DEVICE"}
    one, two = Known(dict(values)), Known(dict(reversed(list(values.items()))))
    assert one.patterns() is two.patterns()  # another slice of the series: the same objects
    assert one.patterns() is one.patterns()
    other = Known({**values, "Zylstra": "NAME"})
    assert other.patterns() is not one.patterns()
    info = known_patterns.cache_info()
    assert info.maxsize == 256
    text = "quenby_xiomara mrn0099887x CTROOM7"
    assert [(s.type, text[s.start : s.end]) for s in two.spans(text)] == [
        ("NAME", "quenby"),
        ("NAME", "xiomara"),
        ("ID", "mrn0099887"),
        ("DEVICE", "CTROOM7"),
    ]


# -- 3. DICOMDIR records of a patient without a PatientID -----------------------------------------


def _file(study: str, name: str, day: str = "20210304") -> Dataset:
    """An image file without PatientID (keyed by its study and name, see person_key)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = study + ".9"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = study + ".5"
    ds.Modality = "CT"
    ds.PatientName = name
    ds.StudyDate = day
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.1")
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _record(kind: str, **values: str) -> Dataset:
    item = Dataset()
    item.DirectoryRecordType = kind
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _dicomdir(records: list[Dataset]) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID("1.2.840.10008.1.3.10")
    ds.file_meta.MediaStorageSOPInstanceUID = UID("1.2.826.0.1.3680043.8.498.55")
    ds.FileSetID = "MEDIA1"
    ds.DirectoryRecordSequence = Sequence(records)
    return ds


STUDY_A = "1.2.826.0.1.3680043.8.498.100"
STUDY_B = "1.2.826.0.1.3680043.8.498.200"


def _shifted(deid: Deidentifier, day: str, person: str) -> str:
    d = date(int(day[:4]), int(day[4:6]), int(day[6:])) - timedelta(deid.date_shift_days(person))
    return d.strftime("%Y%m%d")


def test_dicomdir_records_of_a_patient_without_id_shift_as_the_patients_files() -> None:
    deid = Deidentifier(KEY, DeidOptions(retain_longitudinal_dates=True))
    records = [
        _record("PATIENT", PatientName="Doe^Jane"),
        _record("STUDY", StudyInstanceUID=STUDY_A, StudyDate="20210304"),
        _record("SERIES", SeriesInstanceUID=STUDY_A + ".5", Modality="CT"),
        _record("IMAGE", ReferencedSOPInstanceUIDInFile=STUDY_A + ".9"),
        _record("STUDY", StudyInstanceUID=STUDY_B, StudyDate="20220611"),
        _record("SERIES", SeriesInstanceUID=STUDY_B + ".5", Modality="CT"),
        _record("PATIENT", PatientID="MRN77", PatientName="Roe^Rick"),
        _record("STUDY", StudyInstanceUID="1.2.826.0.1.3680043.8.498.300", StudyDate="20200101"),
    ]
    dicomdir = _dicomdir(records)
    deid.dicom(dicomdir)
    out = dicomdir.DirectoryRecordSequence
    for study, day, index in ((STUDY_A, "20210304", 1), (STUDY_B, "20220611", 4)):
        file = _file(study, "Doe^Jane", day)
        key = person_key(file)
        assert key.startswith("study:" + study + "#")
        deid.dicom(file)
        assert out[index].StudyDate == file.StudyDate == _shifted(deid, day, key)
    assert out[7].StudyDate == _shifted(deid, "20200101", "MRN77")  # a PatientID: as before
    # the instance key of the DICOMDIR itself is not the patient's
    own = person_key(_dicomdir([]))
    assert own.startswith("instance:")
    assert deid.date_shift_days(own) != deid.date_shift_days(person_key(_file(STUDY_A, "Doe^Jane")))


def test_dicomdir_person_keys_follow_the_files_rule() -> None:
    from meddata.deid.dicom import _record_person_keys

    name = "Doe^Jane"
    study_key = person_key(_file(STUDY_A, name))
    no_study = _file(STUDY_A, name)
    del no_study.StudyInstanceUID
    series_key = person_key(no_study)
    del no_study.SeriesInstanceUID
    instance_key = person_key(no_study)
    records = [
        _record("PRIVATE"),  # before any patient: the DICOMDIR's own key
        _record("PATIENT", PatientName=name),
        _record("STUDY", StudyInstanceUID=STUDY_A),
        _record("SERIES", SeriesInstanceUID=STUDY_A + ".5"),
        _record("IMAGE", ReferencedSOPInstanceUIDInFile=STUDY_A + ".9"),
        _record("PATIENT", PatientName=name),  # a study record without its UID
        _record("STUDY"),
        _record("SERIES", SeriesInstanceUID=STUDY_A + ".5"),
        _record("IMAGE", ReferencedSOPInstanceUIDInFile=STUDY_A + ".9"),
        _record("PATIENT", PatientName=name),  # no study or series record at all
        _record("IMAGE", ReferencedSOPInstanceUIDInFile=STUDY_A + ".9"),
        _record("PATIENT", PatientName=name),  # nothing below it: the DICOMDIR's
        _record("PATIENT", PatientID="MRN77"),
        _record("STUDY", StudyInstanceUID=STUDY_B),
    ]
    before = copy.deepcopy(records)
    assert _record_person_keys(records) == [
        None,
        study_key,
        study_key,
        study_key,
        study_key,
        series_key,
        series_key,  # a STUDY record without its UID: the key of the next record
        series_key,
        series_key,
        instance_key,
        instance_key,
        None,
        "MRN77",
        "MRN77",
    ]
    assert records == before  # nothing changed
