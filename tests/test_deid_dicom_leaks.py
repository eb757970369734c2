"""DICOM de-identification: identifying values that once survived in kept free text, unlisted
URL, AE, date and file-path attributes, and the person key of files without a PatientID."""

from __future__ import annotations

import copy
import io
import re
from datetime import date, timedelta
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from meddata.deid import BurnedInAnnotationError, Deidentifier, DeidOptions
from meddata.deid.dicom import person_key
from tests.conftest import pydicom_test_files

KEY = bytes(range(32))
RETAIN_DATES = DeidOptions(retain_longitudinal_dates=True)


def _base() -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7001"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.7002"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.8.498.7003"
    ds.Modality = "CT"
    ds.PatientName = "Doe^John^Q"
    ds.PatientID = "4MR1"
    ds.StudyDate = "20210304"
    return ds


def _roundtrip(ds: Dataset, syntax: UID = ExplicitVRLittleEndian) -> Dataset:
    """``ds`` written as a file and read back: its elements are raw again, as in a real run
    (the lazy path leaves elements its rules keep unparsed)."""
    ds = copy.deepcopy(ds)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buffer.getvalue()))


def _texts(ds: Dataset) -> list[tuple[str, str]]:
    """(keyword, value) of every string value left, nested ones included (not UIDs)."""
    out = []
    for elem in ds.iterall():
        if elem.VR in ("SQ", "UI", "OB", "OW", "UN") or elem.value in (None, ""):
            continue
        values = list(elem.value) if elem.VM > 1 else [elem.value]
        out += [(elem.keyword, str(v)) for v in values]
    return out


def _leaks(ds: Dataset, secrets: list[str]) -> list[tuple[str, str]]:
    return [
        (keyword, secret)
        for keyword, value in _texts(ds)
        for secret in secrets
        if secret.casefold() in value.casefold()
    ]


def test_identifiers_of_the_dataset_are_removed_from_kept_text() -> None:
    ds = _base()
    ds.OtherPatientIDs = "PT55821"
    ds.OtherPatientNames = "ROE^RICHARD"
    ds.AccessionNumber = "AC9981"
    ds.StudyID = "2008-3"
    ds.ReferringPhysicianName = "HARTMANN^KLAUS"
    ds.InstitutionName = "Springfield Memorial"
    ds.ImageComments = "repeat scan of 4MR1, prior PT55821, study 2008-3"
    ds.StudyDescription = "accession AC9981 / AC9981 at springfield memorial"
    ds.PerformedProcedureStepDescription = "Roe follow-up"
    ds.DerivationDescription = "reprocessed for hartmann"
    request = Dataset()
    request.AccessionNumber = "77654"  # an identifier only a sequence item holds
    request.RequestedProcedureDescription = "head CT 77654"
    ds.RequestAttributesSequence = Sequence([request])
    for source in (ds, _roundtrip(ds), _roundtrip(ds, ImplicitVRLittleEndian)):
        out = copy.deepcopy(source)
        Deidentifier(KEY).dicom(out)
        secrets = ["4MR1", "PT55821", "AC9981", "2008-3", "Roe", "hartmann", "77654", "memorial"]
        assert _leaks(out, secrets) == []
        assert out.ImageComments.startswith("repeat scan of ")
        assert out.PerformedProcedureStepDescription.endswith(" follow-up")
        assert out.DerivationDescription.startswith("reprocessed for ")
        assert out.StudyDescription.startswith("accession ")


def test_the_same_identifier_gets_the_same_surrogate_in_every_text() -> None:
    ds = _base()
    ds.AccessionNumber = "AC9981"
    ds.StudyDescription = "AC9981"
    ds.SeriesDescription = "AC9981"
    Deidentifier(KEY).dicom(ds)
    assert ds.StudyDescription == ds.SeriesDescription != "AC9981"


def test_rtstruct_labels_lose_the_study_id() -> None:
    ds = pydicom.dcmread(pydicom_test_files() / "rtstruct.dcm", force=True)
    assert ds.StudyID == "sep30" and ds.StructureSetLabel == "sep30"
    Deidentifier(KEY).dicom(ds)
    assert _leaks(ds, ["sep30", "Phantom30sep"]) == []
    assert ds.StructureSetLabel and ds.StructureSetName


def test_name_words_joined_by_underscores_hyphens_and_dots_are_found() -> None:
    ds = _base()
    ds.PatientName = "DOE^JOHN^Q"
    ds.ProtocolName = "DOE_JOHN_HEAD"
    ds.SeriesDescription = "doe-john.head^axial"
    ds.StudyDescription = "Head JOHNDOE2 DOE123"
    Deidentifier(KEY).dicom(ds)
    for value in (ds.ProtocolName, ds.SeriesDescription):
        assert not re.search(r"(?i)(?<![a-z])(doe|john)(?![a-z])", value), value
    assert ds.ProtocolName.endswith("_HEAD") and "axial" in ds.SeriesDescription
    assert not re.search(r"(?i)doe(?=123)", ds.StudyDescription)


def test_person_names_in_other_character_sets_are_split_and_found() -> None:
    ds = _base()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    ds.StudyDescription = "Yamada Tarou 山田太郎 CT"
    ds.ImageComments = "患者 山田 太郎 (やまだ たろう)"
    ds.OperatorsName = "王^伟"
    ds.SeriesDescription = "王伟 head"
    Deidentifier(KEY).dicom(ds)
    secrets = ["Yamada", "Tarou", "山田", "太郎", "やまだ", "たろう", "王伟"]
    assert _leaks(ds, secrets) == []
    assert ds.StudyDescription.endswith(" CT") and ds.SeriesDescription.endswith(" head")


def test_unlisted_urls_are_removed_and_ae_titles_follow_device_identity() -> None:
    ds = _base()
    url = "https://pacs.stmary.org/wado/studies/1.2.826.0.1.3680043.8.498.7002?patient=4MR1"
    ds.add_new(0x00081190, "UR", url)  # Retrieve URL
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = "123", "DCM", "x"
    item.add_new(0x0008010E, "UR", "http://dicom.nema.org/resources/ontology/DCM")
    ds.ConceptNameCodeSequence = Sequence([item])
    for source in (ds, _roundtrip(ds)):
        out = copy.deepcopy(source)
        Deidentifier(KEY).dicom(out)
        assert 0x00081190 not in out
        assert _leaks(out, ["stmary", "4MR1"]) == []
        # a coding scheme's URL names no one: kept
        assert out.ConceptNameCodeSequence[0][0x0008010E].value.startswith("http://dicom")
    # the only unlisted AE titles are command elements (never in a file): in memory
    ds.add_new(0x00000600, "AE", "STMARY_CT1")  # Move Destination
    out = copy.deepcopy(ds)
    Deidentifier(KEY).dicom(out)
    assert 0x00000600 not in out
    Deidentifier(KEY, DeidOptions(retain_device_identity=True)).dicom(ds)
    assert 0x00081190 not in ds and ds[0x00000600].value == "STMARY_CT1"


_UNLISTED_DATES = {
    0x0008041F: ("DT", "20210304101010"),  # Study Update DateTime
    0x00080416: ("DT", "20220101000000"),  # Expiration DateTime
    0x00080404: ("DT", "20210305"),  # Item Inventory DateTime
    0x00140102: ("DA", "20210306"),  # Secondary Review Date
    0x00140103: ("TM", "101010"),  # Secondary Review Time
    0x00143076: ("DA", "20200101"),  # Date of Gain Calibration
    0x00144078: ("DA", "20210307"),  # Procedure Expiration Date
    0x0014407A: ("DA", "20210308"),  # Procedure Last Modified Date
}


def _with_unlisted_dates() -> Dataset:
    ds = _base()
    for tag, (vr, value) in _UNLISTED_DATES.items():
        ds.add_new(tag, vr, value)
    item = Dataset()
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    item.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.8.498.7005"
    item.add_new(0x0008041F, "DT", "20210304101010")
    ds.ReferencedImageSequence = Sequence([item])
    return ds


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_unlisted_dates_and_times_are_removed_by_default(syntax: UID) -> None:
    for source in (_with_unlisted_dates(), _roundtrip(_with_unlisted_dates(), syntax)):
        ds = copy.deepcopy(source)
        Deidentifier(KEY).dicom(ds)
        assert [hex(t) for t in _UNLISTED_DATES if t in ds] == []
        assert 0x0008041F not in ds.ReferencedImageSequence[0]


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_unlisted_dates_are_shifted_with_the_profile_dates_when_retained(syntax: UID) -> None:
    deid = Deidentifier(KEY, RETAIN_DATES)
    shift = timedelta(days=deid.date_shift_days("4MR1"))

    def shifted(value: str) -> str:
        day = date(int(value[:4]), int(value[4:6]), int(value[6:8])) - shift
        return day.strftime("%Y%m%d") + value[8:]

    ds = _roundtrip(_with_unlisted_dates(), syntax)
    deid.dicom(ds)
    assert ds.StudyDate == shifted("20210304")
    for tag, (vr, value) in _UNLISTED_DATES.items():
        assert ds[tag].value == (value if vr == "TM" else shifted(value)), hex(tag)
    assert ds.ReferencedImageSequence[0][0x0008041F].value == shifted("20210304101010")


def test_dicomdir_file_ids_are_replaced_consistently_and_records_keep_their_patient_shift() -> None:
    original = pydicom.dcmread(pydicom_test_files() / "dicomdirtests" / "DICOMDIR")
    ds = copy.deepcopy(original)
    deid = Deidentifier(KEY, RETAIN_DATES)
    deid.dicom(ds)
    before = [r for r in original.DirectoryRecordSequence if "ReferencedFileID" in r]
    after = [r for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]
    assert len(before) == len(after) > 0
    mapping: dict[str, str] = {}
    for old, new in zip(before, after, strict=True):
        old_parts, new_parts = list(old.ReferencedFileID), list(new.ReferencedFileID)
        assert len(old_parts) == len(new_parts)
        for a, b in zip(old_parts, new_parts, strict=True):
            assert re.fullmatch(r"[0-9A-Z_]{1,8}", b) and b != a
            assert mapping.setdefault(a, b) == b  # one component, one pseudonym
    assert _leaks(ds, ["77654033", "98890234", "PYDICOM_TEST"]) == []
    # each STUDY record is shifted by its own patient's offset, as that patient's files are
    patient = None
    checked = 0
    for old, new in zip(original.DirectoryRecordSequence, ds.DirectoryRecordSequence, strict=True):
        if old.DirectoryRecordType == "PATIENT":
            patient = str(old.PatientID)
        elif old.DirectoryRecordType == "STUDY" and old.get("StudyDate"):
            assert patient is not None
            day = date(*map(int, (old.StudyDate[:4], old.StudyDate[4:6], old.StudyDate[6:])))
            expected = day - timedelta(days=deid.date_shift_days(patient))
            assert new.StudyDate == expected.strftime("%Y%m%d")
            checked += 1
    assert checked >= 2


def test_files_without_patient_id_are_keyed_by_study_and_name() -> None:
    a, b = _base(), _base()
    del a.PatientID, b.PatientID
    b.PatientName = "Roe^Richard"
    key_a = person_key(a)
    assert key_a.startswith("study:") and key_a != person_key(b)
    c = _base()
    del c.PatientID
    c.StudyInstanceUID = "1.2.826.0.1.3680043.8.498.9999"
    assert person_key(c) != person_key(a)  # another study: not merged
    same_study = copy.deepcopy(a)
    same_study.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.7004"
    assert person_key(same_study) == person_key(a)  # one study keeps one shift
    deid = Deidentifier(KEY)
    pseudonyms = set()
    for ds in (a, b, c, same_study):
        key = person_key(ds)
        deid.dicom(ds)
        assert ds.PatientID == deid.person_pseudonym(key)
        pseudonyms.add(ds.PatientID)
    assert len(pseudonyms) == 3
    blank = _base()
    blank.PatientID = "  "
    assert person_key(blank) == key_a
    assert person_key(_base()) == "4MR1"


def test_messages_never_quote_a_non_standard_modality() -> None:
    ds = _base()
    ds.Modality = "SMITHJANE"
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotationError) as info:
        Deidentifier(KEY).dicom(ds)
    assert "SMITHJANE" not in str(info.value)
    ds.Modality = "US"
    with pytest.raises(BurnedInAnnotationError, match="modality US"):
        Deidentifier(KEY).dicom(ds)


def test_cleaning_keeps_descriptions_without_identifiers_unchanged(tmp_path: Path) -> None:
    ds = _base()
    ds.StudyDescription = "CT HEAD W/O CONTRAST"
    ds.SeriesDescription = "AX 5mm"
    ds.InstitutionName = "Anonymous"  # a placeholder of an earlier anonymisation
    Deidentifier(KEY).dicom(ds)
    assert ds.StudyDescription == "CT HEAD W/O CONTRAST" and ds.SeriesDescription == "AX 5mm"


def test_known_values_are_found_by_the_dicom_matcher_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The dataset's own values are found without the clinical-text recogniser (stubbed out
    here): whole tokens, words joined by ``_``/``-``/``.``, long ids inside tokens, every PN
    component group, ideographic names without spaces."""
    from meddata.deid import recognizer  # imported by the DICOM cleaner when text is cleaned

    monkeypatch.setattr(recognizer, "find_phi", lambda text, names=(), **kw: [])
    ds = _base()
    ds.PatientName = "Quenby^Xiomara=山田^太郎"
    ds.PatientID = "kx42q"
    ds.OtherPatientIDs = ["MRN0099887", "zz9"]
    ds.StudyID = "sep30"
    ds.PerformingPhysicianName = ["Zylstra^Bartholomew", "Nguyen"]
    ds.StationName = "CTROOM7"
    ds.ProtocolName = "QUENBY_XIOMARA_HEAD"
    ds.StudyDescription = "sep30 kx42q xMRN0099887 zz9 山田太郎 CTROOM7"
    ds.SeriesDescription = "zylstra-bartholomew.nguyen axial"
    ds.ImageComments = "Xiomara's scan; quenby xiomara; 太郎"
    Deidentifier(KEY).dicom(ds)
    secrets = ["quenby", "xiomara", "kx42q", "MRN0099887", "zz9", "sep30", "山田", "太郎"]
    secrets += ["zylstra", "bartholomew", "nguyen", "CTROOM7"]
    assert _leaks(ds, secrets) == []
    assert ds.ProtocolName.endswith("_HEAD") and ds.SeriesDescription.endswith(" axial")
    assert "'s scan; " in ds.ImageComments
    kept = _base()
    kept.StationName = "CTROOM7"
    kept.StudyDescription = "CTROOM7 head"
    Deidentifier(KEY, DeidOptions(retain_device_identity=True)).dicom(kept)
    assert kept.StudyDescription == "CTROOM7 head"  # device identity kept: not looked for


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_shifted_dates_that_tell_an_age_over_89_are_aggregated(syntax: UID) -> None:
    """A date shifted by the modified-dates option kept its year: 1925 told an age over 89 in
    2025. Its year is now the reference year less 90 (as PatientAge over 89 becomes "090Y"),
    in kept free text too; PatientBirthDate is emptied by the profile."""
    deid = Deidentifier(KEY, DeidOptions(retain_longitudinal_dates=True, reference_year=2025))
    moved = date(1925, 3, 14) - timedelta(days=deid.date_shift_days("4MR1"))
    old = f"1935{moved:%m%d}"
    ds = _base()
    ds.StudyDate = "19250314"
    ds.PatientBirthDate = "19250314"
    ds.AcquisitionDateTime = "19250314101500"
    ds.add_new(0x00181200, "DA", "19250314")  # DateOfLastCalibration (unlisted)
    ds.ImageComments = "DOB 03/14/1925"
    ds = _roundtrip(ds, syntax)
    deid.dicom(ds)
    assert ds.StudyDate == old and ds.AcquisitionDateTime == old + "101500"
    assert ds[0x00181200].value == old and not ds.get("PatientBirthDate")
    assert "1925" not in ds.ImageComments and "/1935" in ds.ImageComments
    recent = _base()
    recent.StudyDate = "19360102"  # 89 years: shifted as before (into 1935 or not)
    recent.ContentDate = "19000101"  # a placeholder: kept (shifted, it told the shift)
    deid.dicom(recent)
    assert recent.StudyDate == (
        date(1936, 1, 2) - timedelta(days=deid.date_shift_days("4MR1"))
    ).strftime("%Y%m%d")
    assert recent.ContentDate == "19000101"


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_a_non_standard_modality_becomes_ot(syntax: UID) -> None:
    """A Modality outside the defined terms (here a patient's name) was kept as it was."""
    ds = _base()
    ds.Modality = "SMITHJANE"
    ds.ModalitiesInStudy = ["CT", "SMITHJANE"]
    ds = _roundtrip(ds, syntax)
    result = Deidentifier(KEY).dicom(ds)
    assert ds.Modality == "OT" and list(ds.ModalitiesInStudy) == ["CT", "OT"]
    assert result.counts["dicom_modality_replaced"] == 2 and result.modality is None
    assert _leaks(ds, ["SMITHJANE"]) == []
    standard = _roundtrip(_base(), syntax)
    result = Deidentifier(KEY).dicom(standard)
    assert standard.Modality == "CT" and "dicom_modality_replaced" not in result.counts
