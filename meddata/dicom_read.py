"""Reading DICOM files, also those written without a preamble or file meta (older ACR-NEMA
style files that pydicom reads only when forced)."""

from __future__ import annotations

from typing import BinaryIO

import pydicom
from pydicom.errors import InvalidDicomError

PIXEL_DATA = 0x7FE00010
PIXEL_TAGS = (PIXEL_DATA, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloat…
SOP_CLASS = 0x00080016


def read_dicom(fh: BinaryIO, *, defer_size: int | None = None) -> pydicom.Dataset:
    """``pydicom.dcmread``; a file without preamble or file meta is read forced when what comes
    out is DICOM (a SOP class or pixel data), and the transfer syntax the reader detected is
    recorded in its file meta so it can be decoded and saved. Else ``InvalidDicomError``."""
    try:
        ds = pydicom.dcmread(fh, defer_size=defer_size)
    except InvalidDicomError:
        fh.seek(0)
        ds = pydicom.dcmread(fh, force=True, defer_size=defer_size)
        if SOP_CLASS not in ds and not any(t in ds for t in PIXEL_TAGS):
            raise
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        ds.file_meta = meta if meta is not None else pydicom.dataset.FileMetaDataset()
        implicit, little = getattr(ds, "original_encoding", None) or (True, True)
        ds.file_meta.TransferSyntaxUID = (
            pydicom.uid.ImplicitVRLittleEndian
            if implicit
            else pydicom.uid.ExplicitVRLittleEndian
            if little
            else pydicom.uid.ExplicitVRBigEndian
        )
    return ds
