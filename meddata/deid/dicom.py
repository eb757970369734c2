"""DICOM de-identification: the Basic profile with the Annex E options, applied in place.

Private elements are removed, UIDs remapped by HMAC (``2.25.<int>``), nested sequences walked,
the file meta updated, and the de-identification attributes set. Pixel data is never touched.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR, repeater_has_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from meddata.deid import surrogates
from meddata.deid.errors import BurnedInAnnotationError
from meddata.deid.profile import load_profile
from meddata.deid.recognizer import find_phi

if TYPE_CHECKING:
    from meddata.deid.core import Deidentifier

BURNED_IN_MODALITIES = frozenset({"US", "SC", "XA"})
_TEXT_VRS = frozenset({"LO", "SH", "ST", "LT", "UT", "UC", "PN", "CS", "AE"})
_NUMBER_VRS = frozenset({"US", "SS", "UL", "SL", "FL", "FD", "UV", "SV", "IS", "DS"})
_DUMMY = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "PN": "ANONYMIZED",
    "IS": "0",
    "DS": "0",
}
# PixelData, FloatPixelData, DoubleFloatPixelData: never changed, and a conversion may have
# left them unread in the file (pydicom defer_size).
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
# Elements a rule keeps are left unparsed (see _kept_unread); off only to test equivalence.
_LEAVE_RAW = True
# Attributes holding UIDs of classes, syntaxes and coding schemes: never remapped.
_KEEP_UID_WORDS = ("Class", "TransferSyntax", "CodingScheme", "Implementation", "Creator")
# Free-text VRs an unlisted attribute is removed for, unless it is a known technical attribute.
_FREE_TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC"})
# Unlisted text attributes the profile leaves alone and that describe the equipment, coding or
# pixel data rather than the person: kept as they are.
_SAFE_TEXT_KEYWORDS = frozenset(
    """CodeValue CodingSchemeDesignator CodingSchemeVersion CodeMeaning LongCodeValue
    ConvolutionKernel FilterType ImagedNucleus LUTExplanation LUTLabel Manufacturer
    ManufacturerModelName PositionReferenceIndicator RescaleType SequenceName SoftwareVersions
    WindowCenterWidthExplanation PulseSequenceName ReceiveCoilName TransmitCoilName
    ContrastBolusRoute DimensionDescriptionLabel MultiCoilElementName SegmentAlgorithmName
    ProcessingFunction AcquisitionDeviceProcessingCode PlateType DeidentificationMethod
    ReceiveCoilManufacturerName TransmitCoilManufacturerName""".split()
)
# File meta attributes naming the sending/receiving systems (AE titles, private data).
_META_REMOVE = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028)
_META_PRIVATE = (0x00020100, 0x00020102)
_DA_RE = re.compile(r"\d{8}")
_DT_RE = re.compile(r"(\d{8})(\d{0,6}(?:\.\d{1,6})?(?:[+-]\d{4})?)")
_AGE_RE = re.compile(r"\s*(\d{1,3})\s*([A-Za-z]?)")
_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
}


@dataclass
class DicomResult:
    """What de-identifying one dataset did: counts by action and flags (no values)."""

    counts: Counter[str] = field(default_factory=Counter)
    flags: list[str] = field(default_factory=list)
    modality: str | None = None


@dataclass
class _Context:
    deid: Deidentifier
    person: str
    shift: int
    names: tuple[str, ...]
    result: DicomResult


def _standard_uid(value: str) -> bool:
    from pydicom._uid_dict import UID_dictionary

    return value in UID_dictionary


def _remap_uid(ctx: _Context, elem: DataElement, keep_standard: bool = False) -> None:
    if elem.VR != "UI" or elem.value in (None, ""):
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    mapped = [
        v if not v or (keep_standard and _standard_uid(str(v))) else ctx.deid.uid(str(v))
        for v in values
    ]
    elem.value = mapped if elem.VM > 1 else mapped[0]
    ctx.result.counts["dicom_uid_remapped"] += 1


def _dummy(elem: DataElement) -> Any:
    if elem.VR in _DUMMY:
        return _DUMMY[elem.VR]
    if elem.VR in _TEXT_VRS or elem.VR in ("UR",):
        return "ANONYMIZED"
    if elem.VR in _NUMBER_VRS:
        return 0
    return None


def _shift_day(text: str, days: int) -> str | None:
    try:
        d = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - timedelta(days=days)
    except ValueError:
        return None
    return d.strftime("%Y%m%d")


def _shift_one(text: str, vr: str, days: int) -> str | None:
    """One DA (exactly 8 digits) or DT (8 digits and a valid time/offset suffix) value."""
    if vr == "DA":
        return _shift_day(text, days) if _DA_RE.fullmatch(text) else None
    m = _DT_RE.fullmatch(text)
    if m is None:
        return None
    day = _shift_day(m.group(1), days)
    return None if day is None else day + m.group(2)


def _shift_da(value: str, days: int, vr: str = "DA") -> str:
    """A DA/DT value or range (``A-B``, ``A-``, ``-B``) shifted back; anything else blanked."""
    text = value.strip()
    single = _shift_one(text, vr, days)
    if single is not None:
        return single
    for i, ch in enumerate(text):
        if ch != "-":
            continue
        left, right = text[:i].strip(), text[i + 1 :].strip()
        if not left and not right:
            continue
        parts = [_shift_one(p, vr, days) if p else "" for p in (left, right)]
        if None not in parts:
            return f"{parts[0]}-{parts[1]}"
    return ""


def _clean_text(ctx: _Context, value: str) -> str:
    spans = find_phi(value, ctx.names)
    if not spans:
        return value
    out, pos = [], 0
    key = ctx.deid._key
    for span in spans:
        out.append(value[pos : span.start])
        out.append(surrogates.surrogate(key, span.type, value[span.start : span.end], ctx.shift))
        pos = span.end
        ctx.result.counts[f"text_{span.type}"] += 1
    out.append(value[pos:])
    return "".join(out)


def _clean(ctx: _Context, elem: DataElement) -> None:
    """Action C: shift dates (modified-dates option) or run text through the recogniser."""
    if elem.value in (None, ""):
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    if elem.VR in ("DA", "DT"):
        out = [_shift_da(str(v), ctx.shift, elem.VR) for v in values]
        ctx.result.counts["dicom_date_shifted"] += 1
    elif elem.VR == "TM":
        return
    elif elem.VR in _TEXT_VRS:
        out = [_clean_text(ctx, str(v)) for v in values]
        ctx.result.counts["dicom_cleaned"] += 1
    else:
        elem.value = None
        ctx.result.counts["dicom_emptied"] += 1
        return
    elem.value = out if elem.VM > 1 else out[0]


def _apply(ctx: _Context, ds: Dataset) -> None:
    profile = load_profile()
    options = ctx.deid.options
    counts = ctx.result.counts
    # An element read without a VR can only be written back as read when the dataset is
    # written implicit too (a file whose body is implicit VR under an explicit VR transfer
    # syntax is read, with a warning, and must be converted element by element to be saved).
    implicit = getattr(ds, "is_implicit_VR", None) is True
    for tag in list(ds.keys()):
        if tag in _PIXEL_TAGS:
            continue  # kept as is; converting it here would load pixel data read lazily
        if tag.is_private:
            del ds[tag]
            counts["dicom_private_removed"] += 1
            continue
        rule = profile.rule_for(int(tag))
        action = rule.action(options) if rule is not None else None
        if action == "X":  # removed: no need to parse its value first
            del ds[tag]
            counts["dicom_removed"] += 1
            continue
        raw = ds.get_item(tag, keep_deferred=True)
        if _LEAVE_RAW and _kept_unread(raw, rule, action, implicit):
            continue
        elem = ds[tag]
        if rule is None:
            _unlisted(ctx, ds, elem)
        elif action == "Z" or (action == "D" and elem.VR == "SQ"):
            # A sequence to replace by a dummy (Content Sequence, Graphic Annotation Sequence…)
            # carries free text in its items: without a clean option it becomes empty.
            elem.value = Sequence() if elem.VR == "SQ" else None
            counts["dicom_emptied"] += 1
        elif elem.VR == "SQ":  # U, K, C on a sequence: de-identify its items
            for item in elem.value or []:
                _apply(ctx, item)
        elif action == "U" or (action == "D" and elem.VR == "UI"):
            _remap_uid(ctx, elem)
        elif action == "D":
            elem.value = _dummy(elem)
            counts["dicom_dummy"] += 1
        elif action == "C":
            _clean(ctx, elem)
        elif action == "K" and tag == 0x00101010 and elem.value:
            elem.value = _cap_age_string(str(elem.value))


def _kept_unread(
    elem: DataElement | RawDataElement, rule: Any, action: str | None, implicit: bool
) -> bool:
    """Whether an element not yet parsed (pydicom converts a raw element on first access,
    ~25 µs) certainly stays as it is: not a sequence, UID, person name or text, kept by its
    rule (or unlisted and standard), and writable as read (it has a VR, or the dataset is
    written implicit VR). Anything in doubt is converted and decided as usual."""
    if not isinstance(elem, RawDataElement) or (elem.VR is None and not implicit):
        return False
    vr = elem.VR
    if vr is None or vr == "UN":  # implicit VR, or unknown in the file: as pydicom resolves it
        try:
            vr = dictionary_VR(elem.tag)
        except KeyError:
            return False
    if vr in ("SQ", "UI", "PN", "UN") or vr in _FREE_TEXT_VRS:
        return False
    if rule is None:
        return dictionary_has_tag(elem.tag) or repeater_has_tag(elem.tag)
    return action == "K" and elem.tag != 0x00101010  # (the age is capped)


def _unlisted(ctx: _Context, ds: Dataset, elem: DataElement) -> None:
    """An attribute the profile does not list: walk sequences, remap instance UIDs, remove
    unknown tags and free text, blank person names; keep the rest (codes, pixel description)."""
    counts = ctx.result.counts
    tag = elem.tag
    if elem.VR == "SQ":
        for item in elem.value or []:
            _apply(ctx, item)
    elif elem.VR == "UI":
        if not any(w in (elem.keyword or "") for w in _KEEP_UID_WORDS):
            _remap_uid(ctx, elem, keep_standard=True)
    elif not (dictionary_has_tag(tag) or repeater_has_tag(tag)):
        del ds[tag]
        counts["dicom_unknown_removed"] += 1
    elif elem.VR == "PN":
        if elem.value not in (None, ""):
            elem.value = None
            counts["dicom_emptied"] += 1
    elif elem.VR in _FREE_TEXT_VRS and elem.keyword not in _SAFE_TEXT_KEYWORDS:
        del ds[tag]
        counts["dicom_removed"] += 1


def _cap_age_string(value: str) -> str:
    """A DICOM age string over 89 years ("093Y", "93Y", "093") becomes "090Y"; a value that is
    not an age string at all is blanked."""
    m = _AGE_RE.match(value)
    if m is None:
        return "" if value.strip() else value
    unit = m.group(2).upper()
    if unit in ("", "Y") and int(m.group(1)) > 89:
        return "090Y"
    return value


def _patient_names(ds: Dataset) -> tuple[str, ...]:
    raw = ds.get("PatientName")
    if raw is None or str(raw) == "":
        return ()
    return tuple(p for p in str(raw).replace("^", " ").split() if len(p) > 1)


def _set_method(ds: Dataset, ctx: _Context) -> None:
    options = ctx.deid.options
    used = ["basic"] + [flag for flag in _CODES if flag != "basic" and getattr(options, flag)]
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = ("meddata: " + "; ".join(_CODES[u][1] for u in used))[:64]
    items = []
    for u in used:
        item = Dataset()
        item.CodeValue, item.CodeMeaning = _CODES[u]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if options.retain_longitudinal_dates else "REMOVED"
    )


def deidentify_dataset(
    deid: Deidentifier, ds: Dataset, source_person_id: str | None = None
) -> DicomResult:
    """De-identify ``ds`` in place; see the module docstring."""
    result = DicomResult()
    modality = str(ds.get("Modality", "") or "").upper() or None
    result.modality = modality
    burned = str(getattr(ds, "BurnedInAnnotation", "") or "").strip().upper() == "YES"
    if burned and not deid.options.allow_burned_in:
        raise BurnedInAnnotationError(modality)
    if burned:
        result.flags.append("burned_in_annotation_allowed")
    if modality in BURNED_IN_MODALITIES:
        result.flags.append("modality_often_burned_in")
        result.counts["dicom_burned_in_risk"] += 1
    person = (
        source_person_id if source_person_id is not None else str(ds.get("PatientID", "") or "")
    )
    ctx = _Context(deid, person, deid.date_shift_days(person), _patient_names(ds), result)
    _apply(ctx, ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        for tag in _META_PRIVATE:
            if tag in meta:
                del meta[tag]
                result.counts["dicom_private_removed"] += 1
        for tag in _META_REMOVE:
            if tag in meta:
                del meta[tag]
                result.counts["dicom_removed"] += 1
        if "MediaStorageSOPInstanceUID" in meta:
            _remap_uid(ctx, meta["MediaStorageSOPInstanceUID"])
    pseudonym = deid.person_pseudonym(person)
    ds.PatientID = pseudonym
    ds.PatientName = pseudonym
    _set_method(ds, ctx)
    result.counts["dicom_files"] += 1
    return result


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records (they can quote header values, i.e. PHI)."""
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def deidentify_file(deid: Deidentifier, src: str, dst: str) -> DicomResult:
    """Read ``src``, de-identify it and write ``dst`` (the pixel data bytes unchanged)."""
    with quiet_pydicom():
        ds = pydicom.dcmread(src)
        result = deid.dicom(ds)
        ds.save_as(dst, enforce_file_format=False)
    return result
