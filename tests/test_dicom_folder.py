"""The dicom-folder adapter on real files from the pydicom and nibabel wheels."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pydicom
import pytest

import meddata
from meddata import tensor
from meddata.convert import convert
from meddata.errors import StrictModeError
from meddata.validate import validate
from tests.conftest import nibabel_dicoms, pydicom_test_files

KEY = bytes(range(32))


@pytest.fixture(scope="module")
def pydicom_dataset(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[meddata.Dataset, list[dict[str, str]]]:
    src = pydicom_test_files()
    if not src.exists():
        pytest.skip(f"pydicom test files not found at {src}")
    out = tmp_path_factory.mktemp("pyd")
    summary = convert("dicom-folder", src, out, workers=2, show_progress=False, deid=False)
    root = Path(summary.path)
    report = [
        json.loads(line) for line in (root / "quarantine" / "report.jsonl").read_text().splitlines()
    ]
    return meddata.load(summary.path), report


def _image_by_path(ds: meddata.Dataset, rel: str) -> dict:
    img = ds.table("image").filter(pl.col("local_path") == rel).collect()
    assert img.height == 1, rel
    return img.row(0, named=True)


@pytest.mark.parametrize(
    "name",
    [
        "CT_small.dcm",
        "MR_small.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "JPEG2000.dcm",
        "SC_rgb_rle_2frame.dcm",
        "rtdose.dcm",
    ],
)
def test_real_images_match_pydicom(
    pydicom_dataset: tuple[meddata.Dataset, list], name: str
) -> None:
    ds, _ = pydicom_dataset
    src = pydicom_test_files() / name
    expected = pydicom.dcmread(src).pixel_array
    row = _image_by_path(ds, name)
    np.testing.assert_array_equal(tensor.decode(row["pixels"]), expected)
    assert row["frames"] == int(
        pydicom.dcmread(src, stop_before_pixels=True).get("NumberOfFrames", 1) or 1
    )


def test_unreadable_inputs_are_quarantined_with_reasons(
    pydicom_dataset: tuple[meddata.Dataset, list],
) -> None:
    ds, report = pydicom_dataset
    reasons = {r["item"]: r["reason"] for r in report}
    assert "not a DICOM file" in reasons["README.txt"]
    assert (
        "pixel data could not be decoded (Explicit VR Little Endian, ValueError)"
        in (reasons["MR_truncated.dcm"])
    )
    if "JPEG-lossy.dcm" in reasons:  # 12-bit JPEG Extended: no decoder here takes it
        assert "no installed decoder could decode this JPEG Extended" in reasons["JPEG-lossy.dcm"]
    assert "no pixel data (modality SR)" in reasons["test-SR.dcm"]
    assert "no pixel data (modality ECG)" in reasons["waveform_ecg.dcm"]
    assert ds.manifest["quarantine"]["count"] == len(report)
    # nothing good is lost: every file is either an image row or a quarantine entry
    files = [
        p for p in pydicom_test_files().rglob("*") if p.is_file() and not p.name.startswith(".")
    ]
    assert ds.table("image").select(pl.len()).collect().item() + len(report) == len(files)
    assert validate(ds.path).ok


def test_multiframe_and_colour_shapes(pydicom_dataset: tuple[meddata.Dataset, list]) -> None:
    ds, _ = pydicom_dataset
    row = _image_by_path(ds, "SC_rgb_rle_2frame.dcm")
    assert row["pixels"]["shape"] == [2, 100, 100, 3] and row["samples_per_pixel"] == 3
    ct = _image_by_path(ds, "CT_small.dcm")
    assert ct["rescale_intercept"] == -1024.0 and ct["pixel_spacing"] == pytest.approx(
        [0.661468, 0.661468]
    )


def test_nibabel_dicoms(tmp_path: Path) -> None:
    src_dir = nibabel_dicoms()
    if not src_dir.exists():
        pytest.skip(f"nibabel DICOMs not found at {src_dir}")
    src = tmp_path / "nib"
    src.mkdir()
    for p in src_dir.iterdir():
        if p.name.endswith(".dcm"):
            shutil.copy(p, src / p.name)
        elif p.name.endswith(".dcm.gz"):
            (src / p.name[:-3]).write_bytes(gzip.decompress(p.read_bytes()))
    summary = convert(
        "dicom-folder", src, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    ds = meddata.load(summary.path)
    assert summary.tables["image"] >= 5
    for rel in ("siemens_dwi_1000.dcm", "0.dcm"):
        np.testing.assert_array_equal(
            tensor.decode(_image_by_path(ds, rel)["pixels"]), pydicom.dcmread(src / rel).pixel_array
        )


def test_strict_stops_at_first_bad_file_with_its_path(tmp_path: Path, dicom_source: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(dicom_source, src)
    victim = sorted(src.rglob("*.dcm"))[0]
    victim.write_bytes(victim.read_bytes()[:300])  # truncated
    with pytest.raises(StrictModeError) as err:
        convert(
            "dicom-folder",
            src,
            tmp_path / "out",
            workers=1,
            strict=True,
            show_progress=False,
            deid=False,
        )
    assert str(victim.relative_to(src)) in str(err.value)
    summary = convert(
        "dicom-folder", src, tmp_path / "out2", workers=1, show_progress=False, deid=False
    )
    assert summary.quarantined == 1


def test_synthesized_headers_carry_phi_like_values(dicom_source: Path) -> None:
    first = pydicom.dcmread(sorted(dicom_source.rglob("*.dcm"))[0])
    assert "^" in str(first.PatientName) and first.PatientID.startswith("MRN")
    assert first.AccessionNumber and first.InstitutionName
    assert any(tag.is_private for tag in first.keys())


def test_pixels_kept_as_shipped_match_pydicom_even_with_unused_high_bits(tmp_path: Path) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    def write(name: str, values: np.ndarray, stored: int, signed: int) -> None:
        meta = FileMetaDataset()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1")
        meta.MediaStorageSOPInstanceUID = generate_uid()
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID = (
            meta.MediaStorageSOPClassUID,
            meta.MediaStorageSOPInstanceUID,
        )
        ds.PatientID, ds.Modality = "P1", "CR"
        ds.Rows, ds.Columns, ds.SamplesPerPixel = values.shape[0], values.shape[1], 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, stored, stored - 1
        ds.PixelRepresentation = signed
        ds.PixelData = values.tobytes()
        ds.save_as(tmp_path / "src" / name, enforce_file_format=True)

    (tmp_path / "src").mkdir()
    write("clean12.dcm", np.array([[1, 2], [3, 4095]], np.uint16), 12, 0)
    write("dirty12.dcm", np.array([[0xF001, 2], [3, 0x8FFF]], np.uint16), 12, 0)  # overlay bits
    write("signed12.dcm", np.array([[1, 2], [3, 0x0FFF]], np.uint16), 12, 1)  # needs sign extension
    ds = meddata.load(
        convert(
            "dicom-folder",
            tmp_path / "src",
            tmp_path / "out",
            workers=1,
            show_progress=False,
            deid=False,
        ).path
    )
    for name in ("clean12.dcm", "dirty12.dcm", "signed12.dcm"):
        expected = pydicom.dcmread(tmp_path / "src" / name).pixel_array
        got = tensor.decode(_image_by_path(ds, name)["pixels"])
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)


def test_pixels_are_shipped_as_is_only_when_the_pixel_description_is_complete() -> None:
    from pydicom.dataset import Dataset

    from meddata.adapters._dicom_header import Header
    from meddata.adapters.dicom_folder import _as_shipped

    def dataset(**changes: object) -> Dataset:
        ds = Dataset()
        ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 1
        ds.BitsAllocated, ds.BitsStored, ds.PixelRepresentation = 16, 16, 0
        ds.PixelData = np.arange(4, dtype=np.uint16).tobytes()
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        return ds

    syntax = pydicom.uid.ExplicitVRLittleEndian
    pixels = tensor.CellBuffer(1024)

    def shipped(ds: Dataset) -> object:
        return _as_shipped(Header(ds), syntax, -1, pixels)  # in memory: no file read

    assert shipped(dataset()) is not None
    assert shipped(dataset(SamplesPerPixel=None)) is not None  # default 1
    for broken in (
        {"PixelRepresentation": ""},  # present but empty: pydicom would refuse it
        {"BitsStored": ""},
        {"SamplesPerPixel": ""},
        {"SamplesPerPixel": 0},
        {"BitsAllocated": None},
        {"Rows": 0},
        {"PixelRepresentation": 2},
    ):
        assert shipped(dataset(**broken)) is None, broken


def test_large_units_are_written_part_by_part_into_one_shard(tmp_path: Path) -> None:
    from meddata.adapters.dicom_folder import DicomFolderAdapter

    src = DicomFolderAdapter.synthesize(tmp_path / "src", n=30, seed=3)  # about 100 files
    big = convert("dicom-folder", src, tmp_path / "big", workers=1, show_progress=False, deid=False)
    small = convert(
        "dicom-folder",
        src,
        tmp_path / "small",
        workers=2,
        show_progress=False,
        options={"files_per_unit": "8"},
        deid=False,
    )
    a, b = meddata.load(big.path), meddata.load(small.path)
    assert big.units == 1 and small.units > 10
    assert len(a.manifest["tables"]["image"]["shards"]) == 1  # one unit, parts of 32 files
    assert len(b.manifest["tables"]["image"]["shards"]) == small.units
    for table in ("image", "person", "image_occurrence", "samples"):
        assert a.arrow(table).to_table().equals(b.arrow(table).to_table()), table


def test_files_per_unit_must_be_a_positive_number(tmp_path: Path, dicom_source: Path) -> None:
    from meddata.errors import UsageError

    with pytest.raises(UsageError, match="files_per_unit"):
        convert(
            "dicom-folder",
            dicom_source,
            tmp_path,
            show_progress=False,
            options={"files_per_unit": "zero"},
            deid=False,
        )


def test_file_cut_inside_its_pixel_data_is_quarantined_and_the_rest_read_exactly(
    tmp_path: Path, dicom_source: Path
) -> None:
    """Pixel data is read lazily, straight into the column's buffer: a file that ends before
    its pixel data does must not shift or spoil its neighbours' pixels."""
    src = tmp_path / "src"
    shutil.copytree(dicom_source, src)
    files = sorted(src.rglob("*.dcm"))
    victim = max(files, key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[: int(victim.stat().st_size * 0.7)])
    summary = convert(
        "dicom-folder",
        src,
        tmp_path / "out",
        workers=1,
        show_progress=False,
        options={"files_per_unit": "4"},
        deid=False,
    )
    ds = meddata.load(summary.path)
    report = (Path(summary.path) / "quarantine" / "report.jsonl").read_text().splitlines()
    reasons = {q["item"]: q["reason"] for q in map(json.loads, report)}
    rel = str(victim.relative_to(src))
    assert "pixel data" in reasons[rel]
    for path in files:
        if path == victim:
            continue
        name = str(path.relative_to(src))
        expected = pydicom.dcmread(path).pixel_array
        np.testing.assert_array_equal(tensor.decode(_image_by_path(ds, name)["pixels"]), expected)


def test_an_image_file_cut_before_its_pixel_data_is_called_truncated(tmp_path: Path) -> None:
    src = pydicom_test_files() / "CT_small.dcm"
    if not src.exists():
        pytest.skip("CT_small.dcm is not in this pydicom wheel")
    raw = src.read_bytes()
    cut = raw.rfind(b"\xe0\x7f\x10\x00")  # the (7FE0,0010) Pixel Data tag, little endian
    assert cut > 0
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "cut.dcm").write_bytes(raw[:cut])
    shutil.copy(pydicom_test_files() / "CT_small.dcm", folder / "whole.dcm")
    summary = convert(
        "dicom-folder", folder, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = (Path(summary.path) / "quarantine" / "report.jsonl").read_text().splitlines()
    assert summary.tables["image"] == 1 and len(report) == 1
    entry = json.loads(report[0])
    assert entry["item"] == "cut.dcm" and "CT image: the file looks truncated" in entry["reason"]


def _no_patient_id_file(path: Path, study: str, name: str, study_date: str) -> None:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = UID("1.2.840.10008.5.1.4.1.1.1")
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, study + ".1"
    ds.PatientName, ds.Modality, ds.StudyDate = name, "CR", study_date
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 2, 2, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(4, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def test_files_without_patient_id_get_the_person_key_deid_dicom_gives_them(
    tmp_path: Path,
) -> None:
    """Without a PatientID, convert and ``meddata deid dicom`` key a file by its study (and
    patient name): the same pseudonym and date shift in both, one per study, and unrelated
    patients are not merged into one person."""
    import datetime as dt

    from click.testing import CliRunner

    from meddata.cli.deid import deid as deid_cli
    from meddata.deid import Deidentifier
    from meddata.deid.dicom import person_key

    src = tmp_path / "src"
    src.mkdir()
    _no_patient_id_file(src / "a1.dcm", "1.2.826.0.1.3680043.8.498.501", "ALPHA^ANNE", "20210304")
    _no_patient_id_file(src / "a2.dcm", "1.2.826.0.1.3680043.8.498.501", "ALPHA^ANNE", "20210304")
    _no_patient_id_file(src / "b.dcm", "1.2.826.0.1.3680043.8.498.502", "BETA^BOB", "20210304")
    key = bytes(range(32))
    key_file = tmp_path / "key"
    key_file.write_text(key.hex())
    key_file.chmod(0o600)
    deid = Deidentifier(key)
    keys = {person_key(pydicom.dcmread(p)) for p in src.glob("*.dcm")}
    assert len(keys) == 2
    summary = convert(
        "dicom-folder", src, tmp_path / "out", workers=1, show_progress=False, deid_key=key
    )
    ds = meddata.load(summary.path)
    persons = ds.table("person").collect()
    assert sorted(zip(persons["person_id"], persons["person_source_value"], strict=True)) == sorted(
        (deid.person_id(k), deid.person_pseudonym(k)) for k in keys
    )
    dates = set(ds.table("image_occurrence").collect()["image_occurrence_date"].to_list())
    result = CliRunner().invoke(
        deid_cli,
        ["dicom", str(src), str(tmp_path / "deid"), "--key-file", str(key_file), "--retain-dates"],
    )
    assert result.exit_code == 0, result.output
    written = [pydicom.dcmread(p) for p in (tmp_path / "deid").glob("*.dcm")]
    assert {str(w.PatientID) for w in written} == set(persons["person_source_value"].to_list())
    shifted = {dt.datetime.strptime(w.StudyDate, "%Y%m%d").date() for w in written}
    assert shifted == dates and len(dates) == 2  # the same shift per person in both tools


def _ct_small_named(tmp_path: Path) -> tuple[Path, pydicom.Dataset]:
    """An empty source folder and CT_small.dcm with a patient's name as its Modality (skips
    when the pydicom wheel lacks the file)."""
    src = pydicom_test_files() / "CT_small.dcm"
    if not src.exists():
        pytest.skip("CT_small.dcm is not in this pydicom wheel")
    folder = tmp_path / "src"
    folder.mkdir()
    ds = pydicom.dcmread(src)
    ds.Modality = "SMITHJANE"
    return folder, ds


def test_quarantine_reasons_never_quote_a_non_standard_modality(tmp_path: Path) -> None:
    folder, ds = _ct_small_named(tmp_path)
    del ds.PixelData
    ds.save_as(folder / "image.dcm")  # rows and columns, no pixel data
    del ds.Rows, ds.Columns
    ds.save_as(folder / "other.dcm")
    ds.Modality = "SR"
    ds.save_as(folder / "sr.dcm")
    shutil.copy(pydicom_test_files() / "CT_small.dcm", folder / "whole.dcm")
    summary = convert(
        "dicom-folder", folder, tmp_path / "out", workers=1, show_progress=False, deid=False
    )
    report = (Path(summary.path) / "quarantine" / "report.jsonl").read_text()
    reasons = {q["item"]: q["reason"] for q in map(json.loads, report.splitlines())}
    assert "SMITHJANE" not in report
    assert "describes an image: the file looks truncated" in reasons["image.dcm"]
    assert "no pixel data (modality unknown)" in reasons["other.dcm"]
    assert "no pixel data (modality SR)" in reasons["sr.dcm"]
    with pytest.raises(StrictModeError) as err:
        convert(
            "dicom-folder",
            folder,
            tmp_path / "strict",
            workers=1,
            strict=True,
            show_progress=False,
            deid=False,
        )
    assert "SMITHJANE" not in str(err.value)


def test_a_non_standard_modality_is_not_kept_under_deidentification(tmp_path: Path) -> None:
    """An audit found a Modality holding a patient's name: converted with de-identification it
    was kept as the image's modality_source_value. Now the header's Modality becomes "OT" and
    only a defined term is stored; without de-identification the value is kept as it is."""
    folder, ds = _ct_small_named(tmp_path)
    ds.save_as(folder / "image.dcm")
    summary = convert(
        "dicom-folder", folder, tmp_path / "out", workers=1, show_progress=False, deid_key=KEY
    )
    root = Path(summary.path)
    found = []
    for shard in root.rglob("*.parquet"):
        table = pl.read_parquet(shard)
        for column in table.select(pl.col(pl.String)).columns:
            if table[column].str.contains("SMITHJANE", literal=True).any():
                found.append((shard.parent.name, column))
    texts = [p for p in root.rglob("*") if p.suffix in (".json", ".jsonl", ".md", ".html")]
    found += [p.name for p in texts if "SMITHJANE" in p.read_text()]
    assert found == []
    occurrence = meddata.load(summary.path).table("image_occurrence").collect()
    assert occurrence["modality_source_value"].to_list() == ["OT"]
    raw = convert(
        "dicom-folder", folder, tmp_path / "raw", workers=1, show_progress=False, deid=False
    )
    kept = meddata.load(raw.path).table("image_occurrence").collect()
    assert kept["modality_source_value"].to_list() == ["SMITHJANE"]
