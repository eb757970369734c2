"""DICOM de-identification: conformance on every real file shipped with pydicom and nibabel."""

from __future__ import annotations

import copy
import gzip
import io
from collections import defaultdict
from importlib import resources
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from meddata.deid import BurnedInAnnotationError, Deidentifier, DeidOptions
from meddata.deid.audit import flatten, is_empty, kept_identifiers, private_tags_left

KEY = bytes(range(32))
# Values that are already the dummy a D action writes (some test files were anonymised before).
BASIC_ONLY = DeidOptions(clean_descriptors=False)
ALL_OPTIONS = DeidOptions(
    retain_longitudinal_dates=True,
    retain_patient_characteristics=True,
    retain_device_identity=True,
    clean_descriptors=True,
    allow_burned_in=True,
)


def _real_files() -> list[Path]:
    pyd = Path(str(resources.files("pydicom") / "data" / "test_files"))
    nib = Path(str(resources.files("nibabel") / "nicom" / "tests" / "data"))
    files = sorted(p for p in pyd.rglob("*") if p.is_file())
    files += sorted(p for p in nib.iterdir() if p.name.endswith((".dcm", ".dcm.gz")))
    return files


def _read(path: Path) -> Dataset:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    return pydicom.dcmread(io.BytesIO(data))


def _load_all() -> list[tuple[str, Dataset | None, str]]:
    out: list[tuple[str, Dataset | None, str]] = []
    for path in _real_files():
        try:
            ds = _read(path)
            ds.PixelData if "PixelData" in ds else None  # noqa: B018 - force the read
            list(ds.iterall())
        except Exception as exc:  # pydicom itself cannot read it: skipped with the reason
            out.append((path.name, None, f"{type(exc).__name__}"))
            continue
        out.append((path.name, ds, ""))
    return out


REAL = _load_all()


def _check_conformance(ds: Dataset, options: DeidOptions) -> None:
    pixels = ds.get("PixelData")
    out = copy.deepcopy(ds)
    Deidentifier(KEY, options).dicom(out)
    assert [(hex(tag), action) for tag, action in kept_identifiers(ds, out, options)] == []
    assert private_tags_left(out) == 0
    assert out.get("PixelData") == pixels
    buffer = io.BytesIO()
    out.save_as(buffer, enforce_file_format=False)
    back = pydicom.dcmread(io.BytesIO(buffer.getvalue()), force=True)
    assert back.PatientIdentityRemoved == "YES"
    assert back.get("PixelData") == pixels


@pytest.mark.parametrize("name,ds,reason", REAL, ids=[r[0] for r in REAL])
def test_basic_profile_conformance_on_real_files(
    name: str, ds: Dataset | None, reason: str
) -> None:
    if ds is None:
        pytest.skip(f"pydicom cannot read {name}: {reason}")
    _check_conformance(ds, BASIC_ONLY)


def test_conformance_with_every_option_on_real_files() -> None:
    checked = 0
    for _, ds, _ in REAL:
        if ds is not None:
            _check_conformance(ds, ALL_OPTIONS)
            checked += 1
    assert checked > 100


def test_uids_consistent_across_files_of_a_study() -> None:
    deid = Deidentifier(KEY)
    by_study: dict[str, set[str]] = defaultdict(set)
    sop_map: dict[str, str] = {}
    for _, ds, _ in REAL:
        if ds is None or "StudyInstanceUID" not in ds:
            continue
        original_study, original_sop = str(ds.StudyInstanceUID), str(ds.get("SOPInstanceUID", ""))
        out = copy.deepcopy(ds)
        deid.dicom(out)
        by_study[original_study].add(str(out.StudyInstanceUID))
        if original_sop:
            sop_map[original_sop] = str(out.SOPInstanceUID)
            meta = getattr(out, "file_meta", None)
            if meta is not None and "MediaStorageSOPInstanceUID" in meta:
                if str(ds.file_meta.MediaStorageSOPInstanceUID) == original_sop:
                    assert meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    assert any(len(_) > 0 for _ in by_study.values())
    assert all(len(new) == 1 for new in by_study.values())
    new_studies = [next(iter(v)) for v in by_study.values()]
    assert len(set(new_studies)) == len(new_studies)
    assert all(u.startswith("2.25.") and len(u) <= 64 for u in new_studies)


def _synthetic() -> Dataset:
    ds = Dataset()
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "MRN123"
    ds.PatientBirthDate = "19400102"
    ds.PatientAge = "093Y"
    ds.PatientSex = "F"
    ds.StudyDate = "20210314"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ds.StudyInstanceUID = "1.2.3.4.5"
    ds.SOPInstanceUID = "1.2.3.4.5.6"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.StudyDescription = "CT chest for Jane Doe, call 617-555-0123"
    ds.DeviceSerialNumber = "SN-99812"
    item = Dataset()
    item.ReferencedSOPInstanceUID = "1.2.3.4.5.7"
    item.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ReferencedImageSequence = Sequence([item])
    ds.add_new(0x00091010, "LO", "private secret")
    inner = Dataset()
    inner.add_new(0x00111001, "LO", "nested private")
    inner.PersonName = "SMITH^BOB"
    ds.add_new(0x0040A730, "SQ", Sequence([inner]))
    return ds


def test_nested_sequences_private_tags_and_method_attributes() -> None:
    ds = _synthetic()
    result = Deidentifier(KEY).dicom(ds)
    assert 0x00091010 not in ds
    assert all(not e.tag.is_private for e in ds.iterall())
    assert len(ds[0x0040A730].value) == 0  # Content Sequence (action D) emptied
    ref = ds.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == Deidentifier(KEY).uid("1.2.3.4.5.7")
    assert ref.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105"]
    assert ds.PatientID == Deidentifier(KEY).person_pseudonym("MRN123")
    assert is_empty(ds.StudyDate) and is_empty(ds.PatientBirthDate)
    assert "PatientAge" not in ds
    assert "Jane" not in ds.StudyDescription and "617-555-0123" not in ds.StudyDescription
    assert "CT chest" in ds.StudyDescription
    # the nested private tag went with the emptied Content Sequence
    assert result.counts["dicom_private_removed"] == 1


def test_options_retain_dates_characteristics_and_device() -> None:
    ds = _synthetic()
    deid = Deidentifier(KEY, ALL_OPTIONS)
    deid.dicom(ds)
    shift = deid.date_shift_days("MRN123")
    from datetime import date, timedelta

    assert ds.StudyDate == (date(2021, 3, 14) - timedelta(days=shift)).strftime("%Y%m%d")
    assert ds.StudyTime == "101500"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert ds.PatientAge == "090Y"  # kept, but capped at 90
    assert ds.PatientSex == "F"
    assert ds.DeviceSerialNumber == "SN-99812"
    codes = {item.CodeValue for item in ds.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113107", "113108", "113109"}


def test_burned_in_annotation_is_quarantined_unless_allowed() -> None:
    ds = _synthetic()
    ds.BurnedInAnnotation = "YES"
    with pytest.raises(BurnedInAnnotationError) as info:
        Deidentifier(KEY).dicom(ds)
    assert "DOE" not in str(info.value) and "MRN123" not in str(info.value)
    assert ds.PatientName == "DOE^JANE"  # untouched: nothing half-done
    result = Deidentifier(KEY, DeidOptions(allow_burned_in=True)).dicom(ds)
    assert "burned_in_annotation_allowed" in result.flags


@pytest.mark.parametrize("modality", ["US", "SC", "XA"])
def test_modalities_that_often_carry_burned_in_text_are_flagged(modality: str) -> None:
    ds = _synthetic()
    ds.Modality = modality
    deid = Deidentifier(KEY)
    result = deid.dicom(ds)
    assert "modality_often_burned_in" in result.flags
    assert deid.take_counts()["dicom_burned_in_risk"] == 1


def test_same_key_same_output_different_key_unlinkable() -> None:
    a, b = _synthetic(), _synthetic()
    Deidentifier(KEY).dicom(a)
    Deidentifier(KEY).dicom(b)
    assert flatten(a) == flatten(b)
    c = _synthetic()
    Deidentifier(bytes(32)).dicom(c)
    assert c.PatientID != a.PatientID and c.StudyInstanceUID != a.StudyInstanceUID


@pytest.mark.parametrize("options", [BASIC_ONLY, ALL_OPTIONS], ids=["basic", "all-options"])
def test_elements_left_unparsed_give_exactly_the_full_walk(
    options: DeidOptions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """De-identifying a freshly read file leaves the elements its rules keep unparsed (faster);
    the result must equal, element for element and count for count, a walk that parses every
    element — on every real file — and keep no identifier."""
    from meddata.deid import dicom as deid_dicom

    compared = 0
    for path in [*_real_files(), *_crafted_files(tmp_path)]:
        try:
            fast, full, original = (_read(path) for _ in range(3))
            list(original.iterall())
        except Exception:
            continue  # pydicom cannot read it (the conformance tests list these)
        if original.get("BurnedInAnnotation", "") == "YES" and not options.allow_burned_in:
            continue
        fast_result = Deidentifier(KEY, options).dicom(fast)
        fast_writes = _writes(fast)  # before comparing: == parses the elements left raw
        monkeypatch.setattr(deid_dicom, "_LEAVE_RAW", False)
        full_result = Deidentifier(KEY, options).dicom(full)
        monkeypatch.setattr(deid_dicom, "_LEAVE_RAW", True)
        assert fast == full, path.name
        assert fast_result.counts == full_result.counts, path.name
        if _writes(full):  # what the full walk can save, the lazy one can (SC_rgb_jpeg.dcm
            assert fast_writes, path.name  # reads as implicit VR under an explicit syntax)
        assert [(hex(t), a) for t, a in kept_identifiers(original, fast, options)] == []
        compared += 1
    assert compared > 100


def _writes(ds: Dataset) -> bool:
    try:
        ds.save_as(io.BytesIO(), enforce_file_format=False)
    except Exception:
        return False
    return True


def _crafted_files(folder: Path) -> list[Path]:
    """Elements no profile rule lists (a person name, an instance UID, free text), inside and
    outside a sequence, in implicit and explicit VR, and a person name the file marks UN."""
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.SecondaryReviewerName = "Roe^Richard"  # PN, unlisted
    ds.MappingResourceUID = "1.2.826.0.1.3680043.8.498.1"  # UI, unlisted
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageComments = "seen by Dr Smith on 2020-01-02"
    ds.Modality, ds.Rows, ds.StudyDate = "CT", 4, "20200102"
    item = Dataset()
    item.SecondaryReviewerName = "Poe^Edgar"
    item.MappingResourceUID = "1.2.826.0.1.3680043.8.498.2"
    item.CodeValue = "123"
    ds.ReferencedImageSequence = Sequence([item])
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.3"
    paths: list[Path] = []
    for syntax in (pydicom.uid.ImplicitVRLittleEndian, pydicom.uid.ExplicitVRLittleEndian):
        ds.file_meta = pydicom.dataset.FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
        ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = folder / f"crafted-{len(paths)}.dcm"
        ds.save_as(path, enforce_file_format=True)
        assert pydicom.dcmread(path).SecondaryReviewerName == "Roe^Richard"
        paths.append(path)
    # explicit VR, PatientName written with VR UN (pydicom reads it back as PN)
    raw = paths[1].read_bytes()
    at = raw.index(b"\x10\x00\x10\x00PN")
    paths.append(folder / "crafted-un.dcm")
    length = int.from_bytes(raw[at + 6 : at + 8], "little")
    paths[2].write_bytes(
        raw[:at] + b"\x10\x00\x10\x00UN\x00\x00" + length.to_bytes(4, "little") + raw[at + 8 :]
    )
    assert str(pydicom.dcmread(paths[2]).PatientName) == "Doe^Jane"
    return paths
