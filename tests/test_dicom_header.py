"""The fast header reader gives exactly what pydicom gives, on every real file we have."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pydicom
import pytest

from meddata.adapters._dicom_header import Header
from tests.conftest import nibabel_dicoms, pydicom_test_files

KEYWORDS = (
    "PatientID",
    "PatientBirthDate",
    "PatientAge",
    "PatientSex",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "Modality",
    "BodyPartExamined",
    "ViewPosition",
    "Manufacturer",
    "NumberOfFrames",
    "SamplesPerPixel",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "PixelRepresentation",
    "PhotometricInterpretation",
    "PixelSpacing",
    "ImagerPixelSpacing",
    "RescaleSlope",
    "RescaleIntercept",
    "WindowCenter",
    "WindowWidth",
)


def _files() -> list[Path]:
    found: list[Path] = []
    for root in (pydicom_test_files(), nibabel_dicoms()):
        if root.exists():
            found += [p for p in sorted(root.rglob("*")) if p.is_file()]
    return found


def _read(path: Path) -> pydicom.Dataset | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return pydicom.dcmread(path, force=True)
        except Exception:
            return None


def _readings(h: Header) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for kw in KEYWORDS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out.append((kw, h.text(kw), h.integer(kw), h.numbers(kw)))
            except Exception as exc:  # the same failure on both paths is fine
                out.append((kw, type(exc).__name__))
    return out


def test_fast_reads_equal_pydicom_on_every_real_file() -> None:
    files = _files()
    if len(files) < 50:
        pytest.skip("pydicom / nibabel test files not found")
    compared = 0
    for path in files:
        fast_ds, slow_ds = _read(path), _read(path)
        if fast_ds is None or slow_ds is None:
            continue
        fast, slow = _readings(Header(fast_ds)), _readings(Header(slow_ds, fast=False))
        assert fast == slow, path.name
        compared += 1
    assert compared > 50


def test_values_decoded_from_raw_bytes() -> None:
    ds = pydicom.Dataset()
    ds.PixelSpacing = ["0.7", "0.70"]
    ds.Rows = 512
    ds.StudyInstanceUID = "1.2.3"
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "x.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    raw = pydicom.dcmread(path, force=True)
    h = Header(raw)
    assert h.numbers("PixelSpacing") == [0.7, 0.7]
    assert h.integer("Rows") == 512
    assert h.text("StudyInstanceUID") == "1.2.3"
    assert h.text("PatientID") is None and h.integer("NumberOfFrames") is None
    # decoded without pydicom converting (and caching) the elements
    assert type(raw._dict[pydicom.tag.Tag("Rows")]).__name__ == "RawDataElement"


@pytest.mark.parametrize(
    "charset, values",
    [
        (None, {"Manufacturer": "ACME \\ Imaging", "ImageComments": "a\\b  "}),
        ("ISO_IR 100", {"Manufacturer": "Siemens Médical", "StationName": "CT-Ä "}),
        ("ISO_IR 192", {"Manufacturer": "Größe 東京", "ImageComments": "line\\ ü "}),
        ("ISO_IR 144", {"Manufacturer": "Москва"}),  # Cyrillic: pydicom decodes it
        (["", "ISO 2022 IR 87"], {"Manufacturer": "ACME"}),  # code extensions: pydicom
        ("GB18030", {"Manufacturer": "中文"}),
    ],
)
def test_text_values_equal_pydicom_for_each_character_set(
    tmp_path: Path, charset: str | list[str] | None, values: dict[str, str]
) -> None:
    ds = pydicom.Dataset()
    if charset is not None:
        ds.SpecificCharacterSet = charset
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.PatientID = " MRN 001 "
    path = tmp_path / "x.dcm"
    for implicit in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds.save_as(path, implicit_vr=implicit, little_endian=True)
        keywords = [*values, "PatientID", "StationName", "StudyDescription"]
        fast = Header(pydicom.dcmread(path, force=True))
        slow = Header(pydicom.dcmread(path, force=True), fast=False)
        assert [fast.text(k) for k in keywords] == [slow.text(k) for k in keywords], implicit


def test_escape_sequences_and_deferred_values_are_left_to_pydicom(tmp_path: Path) -> None:
    """Text with ISO 2022 escape sequences (no character set declared) and values too large
    to be read at parse time (dcmread's defer_size) read exactly as pydicom reads them."""
    ds = pydicom.Dataset()
    ds.PatientID = "PLACEHOLDER_"
    ds.StudyDescription = "D" * 70_000
    path = tmp_path / "x.dcm"
    ds.save_as(path, implicit_vr=True, little_endian=True)
    # same length: "AB", switch to JIS X 0208, two characters, switch back to ASCII
    path.write_bytes(path.read_bytes().replace(b"PLACEHOLDER_", b"AB\x1b$B;3ED\x1b(B"))
    keywords = ["PatientID", "StudyDescription"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as fh:
            fast = Header(pydicom.dcmread(fh, defer_size=64 << 10, force=True))
            got = [fast.text(k) for k in keywords]
        slow = Header(pydicom.dcmread(path, force=True), fast=False)
        assert got == [slow.text(k) for k in keywords]
    assert got[1] is not None and len(got[1]) == 70_000
