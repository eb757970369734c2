"""Synthetic DICOM folders for tests and the quickstart: realistic pixel content (not blank),
several patients, studies, series and modalities, and PHI-like headers for de-identification."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pydicom.uid
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, RLELossless, generate_uid

FIRST = ["John", "Maria", "Wei", "Aisha", "Carlos", "Olga", "Kenji", "Fatima", "Liam", "Grace"]
LAST = ["Doe", "Garcia", "Chen", "Okafor", "Silva", "Ivanova", "Tanaka", "Haddad", "Murphy", "Hope"]
SOP_CLASS = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",
    "CT": "1.2.840.10008.5.1.4.1.1.2",
    "MR": "1.2.840.10008.5.1.4.1.1.4",
}


def chest_like(rng: np.random.Generator, rows: int, cols: int, bits: int = 12) -> np.ndarray:
    """A chest-radiograph-like image: bright mediastinum, two darker lungs, ribs, noise."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    cy, cx = rows * 0.5, cols * 0.5
    img = 0.55 + 0.25 * np.exp(-(((x - cx) / (cols * 0.12)) ** 2))
    for side in (-1, 1):
        lung = (
            ((x - cx - side * cols * 0.2) / (cols * 0.17)) ** 2 + ((y - cy) / (rows * 0.33)) ** 2
        ) < 1
        img = np.where(lung, img - 0.35, img)
    img += 0.05 * np.sin(y / rows * np.pi * rng.uniform(14, 20)) * (np.abs(x - cx) > cols * 0.08)
    img += rng.normal(0, 0.02, size=img.shape)
    img = np.clip(img, 0, 1)
    return (img * (2**bits - 1)).astype(np.uint16)


def ct_like(rng: np.random.Generator, slices: int, size: int) -> np.ndarray:
    """CT-like slices in HU: air outside, soft tissue body, lungs, spine."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    c = size / 2
    out = np.full((slices, size, size), -1000, dtype=np.int16)
    for z in range(slices):
        body = ((x - c) / (size * 0.42)) ** 2 + ((y - c) / (size * 0.32)) ** 2 < 1
        hu = np.where(body, 40, -1000).astype(np.float32)
        for side in (-1, 1):
            lung = ((x - c - side * size * 0.18) / (size * 0.14)) ** 2 + (
                (y - c) / (size * 0.22)
            ) ** 2 < 1
            hu = np.where(lung, -850, hu)
        spine = (x - c) ** 2 + (y - c - size * 0.22) ** 2 < (size * 0.05 + z) ** 2
        hu = np.where(spine, 700, hu)
        hu += rng.normal(0, 15, size=hu.shape)
        out[z] = np.clip(hu, -1024, 3071).astype(np.int16)
    return out


def _base(
    modality: str, patient: dict[str, str], study: dict[str, str], series_uid: str
) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = pydicom.uid.UID(SOP_CLASS[modality])
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.PatientAge = patient["age"]
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = study["date"]
    ds.StudyTime = "101500"
    ds.AccessionNumber = study["accession"]
    ds.ReferringPhysicianName = "Smith^Anna^^Dr"
    ds.InstitutionName = "Springfield General Hospital"
    ds.StudyDescription = f"{modality} study for {patient['name'].replace('^', ' ')}"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.Manufacturer = "ACME Imaging"
    ds.DeviceSerialNumber = "SN-" + patient["id"][-4:]
    ds.add_new(0x00091010, "LO", "private vendor note: " + patient["id"])  # a private tag
    return ds


def _set_pixels(ds: FileDataset, arr: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    ds.Rows, ds.Columns = arr.shape[-2], arr.shape[-1]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = 12 if arr.dtype == np.uint16 else 16
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if arr.dtype == np.int16 else 0
    if arr.ndim == 3:
        ds.NumberOfFrames = arr.shape[0]
    ds.PixelData = arr.tobytes()


def write_dicom_folder(dest: Path, n: int = 8, seed: int = 0) -> Path:
    """Write ``n`` patients (CR/DX chest films, a CT series, an MR image) under ``dest``."""
    rng = np.random.default_rng(seed)
    dest.mkdir(parents=True, exist_ok=True)
    for p in range(n):
        first, last = FIRST[p % len(FIRST)], LAST[(p * 3 + seed) % len(LAST)]
        age = int(rng.integers(19, 95))
        study_day = dt.date(2019, 1, 1) + dt.timedelta(days=int(rng.integers(0, 1500)))
        patient = {
            "name": f"{last}^{first}",
            "id": f"MRN{seed:02d}{p:05d}",
            "birth": (study_day - dt.timedelta(days=int(age * 365.25) + 40)).strftime("%Y%m%d"),
            "sex": "F" if p % 2 else "M",
            "age": f"{age:03d}Y",
        }
        pdir = dest / f"{last.upper()}_{first.upper()}_{patient['id']}"
        for s in range(1 + p % 2):
            day = study_day + dt.timedelta(days=30 * s)
            study = {
                "uid": generate_uid(),
                "date": day.strftime("%Y%m%d"),
                "accession": f"ACC{p:03d}{s}{seed}",
            }
            sdir = pdir / f"study_{day:%Y%m%d}"
            sdir.mkdir(parents=True, exist_ok=True)
            modality = "CR" if (p + s) % 2 == 0 else "DX"
            for v, view in enumerate(("PA", "LATERAL")[: 1 + (p + s) % 2]):
                ds = _base(modality, patient, study, generate_uid())
                ds.ViewPosition = view
                ds.BodyPartExamined = "CHEST"
                ds.ImagerPixelSpacing = [0.139, 0.139]
                shape = ((256, 208), (224, 256), (240, 240))[(p + v) % 3]
                _set_pixels(ds, chest_like(rng, *shape))
                if (p + v) % 4 == 3:
                    ds.compress(RLELossless)
                ds.save_as(sdir / f"{modality}_{view}.dcm", enforce_file_format=True)
        if p % 3 == 0:
            cdir = pdir / "ct"
            cdir.mkdir(parents=True, exist_ok=True)
            study = {
                "uid": generate_uid(),
                "date": study_day.strftime("%Y%m%d"),
                "accession": f"ACC{p:03d}CT",
            }
            series = generate_uid()
            for z, sl in enumerate(ct_like(rng, 3, 64)):
                ds = _base("CT", patient, study, series)
                ds.RescaleSlope, ds.RescaleIntercept = 1, 0
                ds.PixelSpacing = [0.7, 0.7]
                ds.SliceThickness = 2.5
                ds.InstanceNumber = z + 1
                ds.ImagePositionPatient = [0, 0, z * 2.5]
                ds.WindowCenter, ds.WindowWidth = 40, 400
                _set_pixels(ds, sl)
                ds.save_as(cdir / f"slice_{z:03d}.dcm", enforce_file_format=True)
        if p % 4 == 1:
            study = {
                "uid": generate_uid(),
                "date": study_day.strftime("%Y%m%d"),
                "accession": f"ACC{p:03d}MR",
            }
            ds = _base("MR", patient, study, generate_uid())
            mr = (chest_like(rng, 2 * 64, 64, bits=10).reshape(2, 64, 64)).astype(np.uint16)
            _set_pixels(ds, mr)
            (pdir / "mr").mkdir(parents=True, exist_ok=True)
            ds.save_as(pdir / "mr" / "multiframe.dcm", enforce_file_format=True)
    return dest
