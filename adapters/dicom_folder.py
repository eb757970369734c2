"""``dicom-folder``: any folder tree of DICOM files (CR, DX, CT, MR, US, SC...) → ``person``,
``image_occurrence`` (one row per series), ``image`` (one row per instance, multi-frame kept as
F×H×W) and ``samples`` (one row per image).

Pixels are decoded with pydicom (compressed transfer syntaxes through the pylibjpeg and
openjpeg plugins) and stored losslessly as tensor cells of the stored values, with the rescale
slope/intercept kept beside them: ``raw`` when the source was uncompressed (its bytes as
shipped, no time spent recompressing), ``zstd`` when it was compressed (option ``codec``). Files without pixel data (SR, RT plans, waveforms,
DICOMDIR), files that are not DICOM, and files whose pixels cannot be decoded go to quarantine
with the reason (never quoting a header value). A file without PatientID belongs to a person
keyed by its study (see ``meddata.deid.dicom.person_key``, the rule ``meddata deid dicom``
follows too), so one study keeps one date shift and unrelated patients are not merged.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import warnings
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError

from meddata import demographics, tensor
from meddata.adapter import Adapter, OptionSpec, UnitResult, WorkUnit
from meddata.adapters._dicom_header import Header
from meddata.deid.dicom import person_key, standard_modality
from meddata.dicom_read import PIXEL_DATA, PIXEL_TAGS, read_dicom
from meddata.errors import MeddataError, UsageError

BYTES_PER_UNIT = 128 << 20  # a unit (and so its payload shard) holds at most this much input
FILES_PER_PART = 32  # files read and mapped at once: what one worker holds in memory
DEFER_BYTES = 64 << 10  # larger elements (the pixel data) are read only when needed
logging.getLogger("pydicom").setLevel(logging.ERROR)
DIRECTORY_RECORDS = 0x00041220


class DicomFolderAdapter(Adapter):
    """Any folder of DICOM files, walked recursively in sorted order."""

    name = "dicom-folder"
    version = "2"  # 2: person_key for files without PatientID, no header values in reasons
    title = "DICOM folder"
    dataset_name = "dicom-folder"
    dataset_version = "1.0"
    source_release = "a folder of DICOM files"
    tables = ("person", "image_occurrence", "image", "samples")
    sensitive_attributes = ("sex", "age_group")
    option_specs = {
        "files_per_unit": OptionSpec(
            "128",
            (),
            "Most files per work unit (also at most 128 MiB): one unit is one payload shard, "
            "one resume step and one task for a worker. Larger units make fewer, larger "
            "shards; smaller units spread a small source over more workers.",
        ),
        "codec": OptionSpec(
            "auto",
            ("auto", "zstd", "raw"),
            "How pixels are stored: auto keeps uncompressed sources raw (as shipped) and stores "
            "decoded compressed sources as zstd; zstd or raw force one codec.",
        ),
    }

    def discover(self) -> Iterator[WorkUnit]:
        """Batches of files (at most ``files_per_unit`` files or 128 MiB each) in sorted path
        order."""
        try:
            per_unit = int(self.options["files_per_unit"])
            if per_unit < 1:
                raise ValueError
        except ValueError:
            raise UsageError(
                f"files_per_unit must be a positive whole number, not {self.options['files_per_unit']!r}.",
                "Pass for example -O files_per_unit=256.",
            ) from None
        batch: list[str] = []
        prints: list[str] = []
        size = 0
        for rel, st in _walk(self.source):
            batch.append(rel)
            prints.append(f"{st.st_size}:{st.st_mtime_ns}")
            size += st.st_size
            if len(batch) >= per_unit or size >= BYTES_PER_UNIT:
                yield WorkUnit(batch[0], tuple(batch), "|".join(prints))
                batch, prints, size = [], [], 0
        if batch:
            yield WorkUnit(batch[0], tuple(batch), "|".join(prints))

    def convert(self, unit: WorkUnit) -> UnitResult:
        """Read, de-identify and map every file of the batch; bad files are quarantined."""
        return self._convert_files(unit.payload)

    def convert_parts(self, unit: WorkUnit) -> Iterator[UnitResult]:
        """The unit 32 files at a time, so a 128 MiB unit is never all in memory."""
        for start in range(0, len(unit.payload), FILES_PER_PART):
            yield self._convert_files(unit.payload[start : start + FILES_PER_PART])

    def _convert_files(self, files: tuple[str, ...]) -> UnitResult:
        result = UnitResult()
        # Uncompressed pixel data is read straight into one buffer per part, which becomes the
        # pixels column as it is (no copy per file); a part's files bound its size.
        pixels = tensor.CellBuffer(sum(_size(self.source / rel) for rel in files))
        for rel in files:
            try:
                with warnings.catch_warnings():
                    # pydicom warnings can quote header values (PHI): never let them reach a log
                    warnings.simplefilter("ignore")
                    with open(self.source / rel, "rb") as fh:
                        self._convert_file(rel, fh, pixels, result)
            except MeddataError as exc:
                result.skip(rel, exc.message, exc)
            except InvalidDicomError as exc:
                result.skip(rel, "not a DICOM file (no DICM preamble or file meta)", exc)
            except Exception as exc:  # pydicom raises many types on damaged files
                result.skip(rel, f"could not be read ({type(exc).__name__})", exc)
        return result

    def _convert_file(
        self, rel: str, fh: BinaryIO, pixels: tensor.CellBuffer, result: UnitResult
    ) -> None:
        ds = read_dicom(fh, defer_size=DEFER_BYTES)
        h = Header(ds)
        if DIRECTORY_RECORDS in ds:
            result.skip(rel, "DICOMDIR index file, not an image")
            return
        if not any(t in ds for t in PIXEL_TAGS):
            # named only when it is a standard term: the element can hold any text (PHI)
            modality = standard_modality(h.text("Modality")) or "unknown"
            if h.has("Rows") and h.has("Columns"):  # an image header whose pixels never came
                kind = "an image" if modality == "unknown" else f"a {modality} image"
                result.skip(
                    rel,
                    f"no pixel data although the header describes {kind}: the file looks truncated",
                )
            else:
                result.skip(
                    rel, f"no pixel data (modality {modality}); dicom-folder converts images only"
                )
            return
        transfer_syntax = Header(ds.file_meta).text("TransferSyntaxUID") or ""
        cell = None
        if self._codec(transfer_syntax) == "raw":
            cell = _as_shipped(h, transfer_syntax, fh.fileno(), pixels)
        if cell is None:
            try:
                decoded = np.asarray(ds.pixel_array)
            except Exception as exc:
                raise MeddataError(_decode_failure(transfer_syntax, exc)) from exc
            cell = tensor.encode(decoded, self._codec(transfer_syntax), level=1)

        source_person = person_key(ds)  # the same key as ``meddata deid dicom``
        birth = demographics.parse_dicom_date(h.text("PatientBirthDate"))
        study_date_raw = demographics.parse_dicom_date(h.text("StudyDate") or h.text("SeriesDate"))
        age = demographics.dicom_age_years(h.text("PatientAge"))
        if age is None and birth:
            # No study date: the age is at least the age today, which is what Safe Harbor caps.
            reference = study_date_raw or demographics.parse_dicom_date(
                h.text("AcquisitionDate") or h.text("ContentDate")
            )
            age = ((reference or dt.date.today()) - birth).days / 365.25
        sex_value = h.text("PatientSex")
        orig_series = h.text("SeriesInstanceUID") or rel
        orig_sop = h.text("SOPInstanceUID") or rel

        deid = self.deid
        if deid is not None:
            deid.dicom(ds, source_person)  # in place; raises when burned-in text is not allowed
        study_date = demographics.parse_dicom_date(h.text("StudyDate") or h.text("SeriesDate"))
        if deid is not None and study_date is None and study_date_raw is not None:
            study_date = self.shift_date(study_date_raw, source_person)

        person_id = self.person_id(source_person)
        year_of_birth = birth.year if birth else None
        if deid is not None and age is not None and age > 89:
            age, year_of_birth = 90.0, None  # HIPAA: ages over 89 are aggregated as 90+
        result.add(
            "person",
            {
                "person_id": person_id,
                "gender_concept_id": demographics.gender_concept(sex_value),
                "year_of_birth": year_of_birth,
                "race_concept_id": 0,
                "ethnicity_concept_id": 0,
                "person_source_value": deid.person_pseudonym(source_person)
                if deid
                else source_person,
                "gender_source_value": sex_value,
                "ethnicity_source_value": None,
            },
        )
        occurrence_id = self.row_id("series", orig_series)
        result.add(
            "image_occurrence",
            {
                "image_occurrence_id": occurrence_id,
                "person_id": person_id,
                "image_occurrence_date": study_date,
                "image_study_uid": h.text("StudyInstanceUID") or self._uid("study", orig_series),
                "image_series_uid": h.text("SeriesInstanceUID") or self._uid("series", orig_series),
                "modality_concept_id": 0,
                "local_path": None if deid else rel,
                "modality_source_value": standard_modality(h.text("Modality"))
                if deid
                else h.text("Modality"),
                "anatomic_site_source_value": h.text("BodyPartExamined"),
            },
        )
        frames = h.integer("NumberOfFrames") or 1
        spp = h.integer("SamplesPerPixel") or 1
        image_id = self.row_id(
            "image", orig_sop, rel
        )  # a copy of an instance elsewhere is kept, not merged
        view = h.text("ViewPosition")
        rows, columns = h.integer("Rows"), h.integer("Columns")
        result.add(
            "image",
            {
                "image_id": image_id,
                "image_occurrence_id": occurrence_id,
                "person_id": person_id,
                "pixels": cell,
                "sop_instance_uid": h.text("SOPInstanceUID"),
                "rows": rows if rows is not None else cell["shape"][-2 if spp == 1 else -3],
                "columns": columns
                if columns is not None
                else cell["shape"][-1 if spp == 1 else -2],
                "frames": frames,
                "samples_per_pixel": spp,
                "photometric_interpretation": "RGB"
                if spp == 3
                else h.text("PhotometricInterpretation"),
                "bits_stored": h.integer("BitsStored"),
                "pixel_spacing": h.numbers("PixelSpacing") or h.numbers("ImagerPixelSpacing"),
                "rescale_slope": h.number("RescaleSlope"),
                "rescale_intercept": h.number("RescaleIntercept"),
                "window_center": h.number("WindowCenter"),
                "window_width": h.number("WindowWidth"),
                "view_position": view,
                "source_codec": transfer_syntax or None,
                "local_path": None if deid else rel,
            },
        )
        result.add(
            "samples",
            {
                "sample_id": image_id,
                "person_id": person_id,
                "split": None,
                "image_id": image_id,
                "view": view,
                "sex": demographics.sex_label(sex_value),
                "age_group": demographics.age_group(age),
                "device": self._device(h),
            },
        )

    def _codec(self, transfer_syntax: str) -> str:
        choice = self.options["codec"]
        if choice != "auto":
            return choice
        return "zstd" if _is_compressed(transfer_syntax) else "raw"

    def _device(self, h: Header) -> str | None:
        if self.deid is not None and not self._deid_options.get("retain_device_identity", False):
            return None
        return h.text("Manufacturer")

    def _uid(self, kind: str, seed: str) -> str:
        return f"2.25.{self.row_id(kind + '-uid', seed)}"

    @classmethod
    def synthesize(cls, dest: str | Path, n: int = 8, seed: int = 0) -> Path:
        """Write ``n`` patients' worth of DICOM files (CR, DX, CT, MR) with PHI-like headers."""
        from meddata.adapters._synth_dicom import write_dicom_folder

        return write_dicom_folder(Path(dest), n=n, seed=seed)


_SHIPPED_SYNTAXES = (pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian)


def _as_shipped(
    h: Header, transfer_syntax: str, fd: int, pixels: tensor.CellBuffer
) -> tensor.TensorCell | None:
    """The pixel bytes exactly as shipped, when they already are the array pydicom would
    return: uncompressed little-endian, one sample per pixel, whole bytes per value, and no bits
    set above BitsStored (pydicom masks those). Skips a decode and a copy per file: the bytes
    are read from the file (descriptor ``fd``) into ``pixels``. Anything else returns None and
    goes through ``pixel_array``."""
    ds = h.ds

    def field(keyword: str, absent: int | None) -> int | None:
        # Absent: the default; present but empty or not a number: None (not shipped as is).
        return h.integer(keyword) if h.has(keyword) else absent

    if transfer_syntax not in _SHIPPED_SYNTAXES or field("SamplesPerPixel", 1) != 1:
        return None
    bits, rows, columns = field("BitsAllocated", None), h.integer("Rows"), h.integer("Columns")
    if bits not in (8, 16, 32) or not rows or not columns or PIXEL_DATA not in ds:
        return None
    stored, representation = field("BitsStored", bits), field("PixelRepresentation", 0)
    if stored is None or representation not in (0, 1):
        return None
    signed = representation == 1
    if signed and stored != bits:
        return None
    frames = h.integer("NumberOfFrames") or 1
    shape = [frames, rows, columns] if frames > 1 else [rows, columns]
    dtype = np.dtype(f"<{'i' if signed else 'u'}{bits // 8}")
    size = int(np.prod(shape)) * dtype.itemsize
    data = _shipped_bytes(ds, fd, size, pixels)
    if data is None:
        return None
    if stored < bits and np.any(np.frombuffer(data, dtype) >> stored):
        if isinstance(data, pa.Buffer):
            pixels.drop_last(data)
        return None  # unused high bits set: pydicom's masked array differs from the bytes
    return tensor.from_encoded(data, "raw", dtype.name, shape)


def _shipped_bytes(
    ds: pydicom.Dataset, fd: int, size: int, pixels: tensor.CellBuffer
) -> bytes | pa.Buffer | None:
    """The first ``size`` bytes of the pixel data: read from the file into ``pixels`` when
    the element was deferred, else from the parsed value; None when there are fewer."""
    elem = ds.get_item(PIXEL_DATA, keep_deferred=True)
    if isinstance(elem, RawDataElement) and elem.value is None:  # deferred: still in the file
        if elem.length < size or elem.value_tell is None:
            return None
        return pixels.read(fd, elem.value_tell, size)
    try:
        data = ds.PixelData
    except (AttributeError, TypeError, ValueError):
        return None
    if not isinstance(data, bytes) or len(data) < size:
        return None
    return data[:size] if len(data) > size else data


@cache
def _is_compressed(transfer_syntax: str) -> bool:
    return bool(transfer_syntax) and pydicom.uid.UID(transfer_syntax).is_compressed


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            st = os.stat(full)
            yield os.path.relpath(full, root).replace(os.sep, "/"), st


def _decode_failure(transfer_syntax: str, exc: Exception) -> str:
    """Why pixel data could not be decoded, in words that hold no header value (pydicom's own
    messages can quote them): the transfer syntax's standard name and the error's type."""
    if not transfer_syntax:
        return "pixel data could not be decoded: the file meta names no transfer syntax"
    uid = pydicom.uid.UID(transfer_syntax)
    name = uid.name if uid.is_transfer_syntax else "an unknown transfer syntax"
    if uid.is_compressed and isinstance(exc, RuntimeError):
        return f"no installed decoder could decode this {name} pixel data ({type(exc).__name__})"
    return f"pixel data could not be decoded ({name}, {type(exc).__name__})"
