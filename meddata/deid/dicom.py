"""DICOM de-identification: the Basic profile with the Annex E options, applied in place.

Private elements are removed, UIDs remapped by HMAC (``2.25.<int>``), nested sequences walked,
the file meta updated, and the de-identification attributes set. Pixel data is never touched.
Free text that is kept (cleaned descriptors) loses, besides what the clinical-text recogniser
finds, every identifying value of the dataset itself (person names, ids, institutions...).
Attributes the profile does not list are handled by kind: dates like the profile's dates, URLs
removed, AE titles as device identity, DICOMDIR file paths replaced by keyed pseudonyms.
A dataset is keyed (pseudonym, date shift) by :func:`person_key`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from hashlib import sha256
from typing import TYPE_CHECKING, Any

import pydicom
from pydicom.datadict import dictionary_has_tag, dictionary_VR, repeater_has_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from meddata.deid.dates import aggregated
from meddata.deid.dicom_known import PIXEL_TAGS, Known, collect_known, is_placeholder
from meddata.deid.errors import BurnedInAnnotationError
from meddata.deid.profile import load_profile
from meddata.deid.spans import PhiSpan

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
# Unlisted date, time and date-time attributes (StudyUpdateDateTime, ExpirationDateTime…) are
# handled like the profile's own: removed, or shifted (times kept) with the modified-dates option.
_DATE_VRS = frozenset({"DA", "DT", "TM"})
# DICOMDIR (and file-set) attributes that hold path components of the media's files, which
# were often named after the patient (``77654033/CR1/6154``): each component is replaced by a
# keyed pseudonym. File-set ID: the label of the media, replaced the same way.
_FILE_ID_TAGS = frozenset({0x00041500, 0x00041141})
_FILE_SET_ID = 0x00041130
_DIRECTORY_RECORDS = 0x00041220
# Modality and ModalitiesInStudy: a value outside the defined terms (it can hold any text, a
# patient's name included) becomes "OT" (Other).
_MODALITY_TAGS = frozenset({0x00080060, 0x00080061})
# Unlisted URL attributes that name a code or coding scheme, not a place or a person: kept.
_CODE_URL_KEYWORDS = frozenset({"CodingSchemeURL", "URNCodeValue"})
# Standard Modality defined terms (PS3.3 C.7.3.1.1.1, retired ones included, and the common
# SC): the only modality values messages may name (a header value can hold any text).
STANDARD_MODALITIES = frozenset(
    """ANN AR ASMT AU BDUS BI BMD CFM CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES FID
    GM HC HD IO IOL IVOCT IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV
    OSS OT PA PLAN POS PR PT PX REG RESP RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD
    RTSEGANN RTSTRUCT RWV SC SEG SM SMR SR SRF STAIN TEXTUREMAP TG US VA XA XAPROTOCOL XC
    AS CD CF CP CS DD DF DM DS EC FA FS LP MA MS OPR ST VF""".split()
)
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


def standard_modality(value: Any) -> str | None:
    """``value`` when it is a standard Modality defined term (a safe word for a message);
    None for anything else, which could hold any text."""
    text = str(value or "").strip(" \x00").upper()
    return text if text in STANDARD_MODALITIES else None


def _first_text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    if isinstance(value, pydicom.multival.MultiValue):
        value = value[0] if len(value) else None
    return str(value or "").strip(" \x00")


def person_key(ds: Dataset) -> str:
    """The source person id a dataset is keyed by (its pseudonym, person id and date shift),
    one rule for ``meddata deid dicom`` and ``meddata convert``: the PatientID; without one,
    the study (``study:<StudyInstanceUID>``), with a digest of the patient's name when it has
    one (``#<sha256[:16]>``: two patients filed under one study UID stay apart), so one study
    keeps one shift and unrelated patients do not merge; else the series, else the instance (a
    DICOMDIR: its media storage instance); ``UNKNOWN`` when the file names none of them."""
    patient = _first_text(ds, "PatientID")
    if patient:
        return patient
    name = re.sub(r"\s+", " ", str(ds.get("PatientName", "") or "").casefold()).strip(" ^=\x00")
    suffix = (
        "" if not name or is_placeholder(name) else "#" + sha256(name.encode()).hexdigest()[:16]
    )
    for keyword, prefix in (("StudyInstanceUID", "study:"), ("SeriesInstanceUID", "series:")):
        uid = _first_text(ds, keyword)
        if uid:
            return prefix + uid + suffix
    instance = _first_text(ds, "SOPInstanceUID")
    meta = getattr(ds, "file_meta", None)
    if not instance and meta is not None:
        instance = str(meta.get("MediaStorageSOPInstanceUID", "") or "").strip(" \x00")
    if instance:
        return "instance:" + instance
    return "name" + suffix if suffix else "UNKNOWN"


@dataclass
class _Context:
    deid: Deidentifier
    person: str
    shift: int
    known: Known
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


def _shift_day(text: str, days: int, min_year: int | None = None) -> str | None:
    try:
        d = date(int(text[:4]), int(text[4:6]), int(text[6:8])) - timedelta(days=days)
    except ValueError:
        return None
    return aggregated(d, min_year).strftime("%Y%m%d")


def _shift_one(text: str, vr: str, days: int, min_year: int | None = None) -> str | None:
    """One DA (exactly 8 digits) or DT (8 digits and a valid time/offset suffix) value."""
    if vr == "DA":
        return _shift_day(text, days, min_year) if _DA_RE.fullmatch(text) else None
    m = _DT_RE.fullmatch(text)
    if m is None:
        return None
    day = _shift_day(m.group(1), days, min_year)
    return None if day is None else day + m.group(2)


def _shift_da(value: str, days: int, vr: str = "DA", min_year: int | None = None) -> str:
    """A DA/DT value or range (``A-B``, ``A-``, ``-B``) shifted back; anything else blanked.
    A day shifted before ``min_year`` is written in it (see :func:`dates.aggregated`)."""
    text = value.strip()
    single = _shift_one(text, vr, days, min_year)
    if single is not None:
        return single
    for i, ch in enumerate(text):
        if ch != "-":
            continue
        left, right = text[:i].strip(), text[i + 1 :].strip()
        if not left and not right:
            continue
        parts = [_shift_one(p, vr, days, min_year) if p else "" for p in (left, right)]
        if None not in parts:
            return f"{parts[0]}-{parts[1]}"
    return ""


def _clean_text(ctx: _Context, value: str) -> str:
    from meddata.deid import surrogates  # the text recognizer loads only when text is cleaned
    from meddata.deid.recognizer import find_phi

    known = ctx.known.spans(value)
    year = ctx.deid.options.reference_year
    spans = _with_known(known, find_phi(value, ctx.known.names, reference_year=year), value)
    if not spans:
        return value
    out, pos = [], 0
    replacements = surrogates.surrogates_for(
        ctx.deid._key, value, spans, ctx.shift, reference_year=year
    )
    for span, replacement in zip(spans, replacements, strict=True):
        out.append(value[pos : span.start])
        out.append(replacement)  # a yearless date takes the year of the text's other dates
        pos = span.end
        ctx.result.counts[f"text_{span.type}"] += 1
    out.append(value[pos:])
    return "".join(out)


def _with_known(known: list[PhiSpan], found: list[PhiSpan], text: str) -> list[PhiSpan]:
    """The known values' spans, and the parts of the recogniser's spans outside them (that
    hold a letter or digit), sorted."""
    if not known:
        return found
    covered = bytearray(len(text) + 1)
    for span in known:
        covered[span.start : span.end] = b"\x01" * (span.end - span.start)
    out = list(known)
    for span in found:
        i = span.start
        while i < span.end:
            if covered[i]:
                i += 1
                continue
            j = i
            while j < span.end and not covered[j]:
                j += 1
            if any(c.isalnum() for c in text[i:j]):
                out.append(PhiSpan(span.type, i, j))
            i = j
    return sorted(out, key=lambda s: s.start)


def _file_id(ctx: _Context, elem: DataElement) -> None:
    """Each component of a file path (``77654033\\CR1\\6154``) replaced by a keyed pseudonym
    of 8 upper-case hex characters (a valid component): the same component, the same one."""
    if elem.value in (None, ""):
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    out = [
        ctx.deid.pseudonym("dicom-file-id", str(v).strip()).upper()[:8] if str(v).strip() else ""
        for v in values
    ]
    elem.value = out if elem.VM > 1 else out[0]
    ctx.result.counts["dicom_file_id_replaced"] += 1


def _clean(ctx: _Context, elem: DataElement) -> None:
    """Action C: shift dates (modified-dates option) or run text through the recogniser."""
    if elem.value in (None, ""):
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    if elem.VR in ("DA", "DT"):
        # A date that tells an age over 89 is aggregated, as PatientAge is (_cap_age_string).
        # A placeholder (19000101) is no one's date and stays as it is: shifted, the known
        # value would give the person's date shift away.
        floor = ctx.deid.options.reference_year - 90
        out = [
            str(v)
            if is_placeholder(str(v).strip())
            else _shift_da(str(v), ctx.shift, elem.VR, floor)
            for v in values
        ]
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
        if tag in PIXEL_TAGS:
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
        if tag in _MODALITY_TAGS and action in (None, "K", "C"):
            _modality(ctx, ds[tag])
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
    ~25 µs) certainly stays as it is: not a sequence, UID, person name, text, URL, AE title,
    date, time or file path, kept by its rule (or unlisted and standard), and writable as read
    (it has a VR, or the dataset is written implicit VR). Anything in doubt is converted and
    decided as usual."""
    if not isinstance(elem, RawDataElement) or (elem.VR is None and not implicit):
        return False
    vr = elem.VR
    if vr is None or vr == "UN":  # implicit VR, or unknown in the file: as pydicom resolves it
        try:
            vr = dictionary_VR(elem.tag)
        except KeyError:
            return False
    if vr in ("SQ", "UI", "PN", "UN", "UR", "AE") or vr in _FREE_TEXT_VRS or vr in _DATE_VRS:
        return False
    if elem.tag in _FILE_ID_TAGS or elem.tag == _FILE_SET_ID:
        return False
    if rule is None:
        return dictionary_has_tag(elem.tag) or repeater_has_tag(elem.tag)
    return action == "K" and elem.tag != 0x00101010  # (the age is capped)


def _modality(ctx: _Context, elem: DataElement) -> None:
    """Each value of a modality attribute that is not a defined term replaced by "OT"."""
    if elem.value in (None, ""):
        return
    values = list(elem.value) if elem.VM > 1 else [elem.value]
    kept = [v if not str(v).strip(" \x00") or standard_modality(v) else "OT" for v in values]
    replaced = sum(1 for v, k in zip(values, kept, strict=True) if k != v)
    if replaced:
        elem.value = kept if elem.VM > 1 else kept[0]
        ctx.result.counts["dicom_modality_replaced"] += replaced


def _unlisted(ctx: _Context, ds: Dataset, elem: DataElement) -> None:
    """An attribute the profile does not list: walk sequences, remap instance UIDs, remove
    unknown tags, free text and URLs, blank person names, treat dates and times as the profile
    does, AE titles as device identity, file paths by pseudonyms; keep the rest (codes, pixel
    description)."""
    counts = ctx.result.counts
    options = ctx.deid.options
    tag = elem.tag
    if tag == _DIRECTORY_RECORDS:
        _directory_records(ctx, elem)
    elif elem.VR == "SQ":
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
    elif elem.VR in _DATE_VRS:
        if options.retain_longitudinal_dates:
            _clean(ctx, elem)  # dates shifted, times kept
        else:
            del ds[tag]
            counts["dicom_removed"] += 1
    elif elem.VR == "UR" and elem.keyword not in _CODE_URL_KEYWORDS:
        # retrieve, storage and contact URLs: host names, original UIDs, ids in queries
        del ds[tag]
        counts["dicom_removed"] += 1
    elif elem.VR == "AE":  # an application entity title names a device
        if options.retain_device_identity:
            _clean(ctx, elem)
        else:
            del ds[tag]
            counts["dicom_removed"] += 1
    elif tag in _FILE_ID_TAGS:
        _file_id(ctx, elem)
    elif tag == _FILE_SET_ID and elem.value not in (None, ""):
        elem.value = ctx.deid.pseudonym("dicom-file-set-id", str(elem.value)).upper()
        counts["dicom_file_id_replaced"] += 1


def _directory_records(ctx: _Context, elem: DataElement) -> None:
    """DICOMDIR records in order: a PATIENT record and the records after it (its studies,
    series and instances, in the order media writers list them) take the date shift of the
    patient's own files (see :func:`_record_person_keys`)."""
    records = list(elem.value or [])
    contexts: dict[str, _Context] = {}
    for item, key in zip(records, _record_person_keys(records), strict=True):
        if key is None:
            current = ctx
        elif key in contexts:
            current = contexts[key]
        else:
            current = contexts[key] = replace(ctx, person=key, shift=ctx.deid.date_shift_days(key))
        _apply(current, item)


def _record_type(item: Dataset) -> str:
    return str(item.get("DirectoryRecordType", "") or "").strip(" \x00").upper()


def _record_person_keys(records: list[Dataset]) -> list[str | None]:
    """The person key of each DICOMDIR record (None: the DICOMDIR's own), the one
    :func:`person_key` gives the files it lists. Under a PATIENT record with a PatientID: that
    id. Under one without: the key of a file without PatientID, from the patient's name and
    the record's own UIDs: each STUDY record and the records after it, its study
    (``study:<uid>#<name digest>``); without a study, each SERIES record's series; without
    either, each instance record's instance. A record that gives none (the PATIENT record
    itself, unless it has a study or series UID of its own) takes the key of the next record
    of its patient that does; without any, the DICOMDIR's. Computed before any record is
    changed."""
    keys: list[str | None] = []
    patient: Dataset | None = None  # the current PATIENT record without a PatientID
    pending: list[int] = []  # records of that patient waiting for the next key
    study: str | None = None  # the key of the current study (or series) of that patient
    series: str | None = None
    for item in records:
        kind = _record_type(item)
        key: str | None
        if kind == "PATIENT":
            pending.clear()  # the previous patient's: the DICOMDIR's
            patient, study, series = None, None, None
            patient_id = _first_text(item, "PatientID")
            if patient_id:
                keys.append(patient_id)
                continue
            patient = item
            own = {k: _first_text(item, k) for k in ("StudyInstanceUID", "SeriesInstanceUID")}
            key = _file_key(item, **own) if any(own.values()) else None
        elif patient is None:
            keys.append(keys[-1] if keys else None)  # its patient's id, else the DICOMDIR's
            continue
        elif kind == "STUDY":
            uid = _first_text(item, "StudyInstanceUID")
            study = series = None
            key = study = _file_key(patient, StudyInstanceUID=uid) if uid else None
        elif kind == "SERIES" and study is None:
            uid = _first_text(item, "SeriesInstanceUID")
            key = series = _file_key(patient, SeriesInstanceUID=uid) if uid else None
        else:
            key = study or series
            if key is None:
                uid = _first_text(item, "ReferencedSOPInstanceUIDInFile")
                key = _file_key(patient, SOPInstanceUID=uid) if uid else None
        if key is None:
            pending.append(len(keys))
        else:
            for i in pending:
                keys[i] = key
            pending.clear()
        keys.append(key)
    return keys


def _file_key(patient: Dataset, **uids: str) -> str:
    """:func:`person_key` of a file without PatientID that has the name of the PATIENT record
    ``patient`` and the given UIDs."""
    ds = Dataset()
    name = patient.get("PatientName")
    if name is not None:
        ds.PatientName = name
    for keyword, uid in uids.items():
        if uid:
            setattr(ds, keyword, uid)
    return person_key(ds)


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
    raw_modality = str(ds.get("Modality", "") or "").strip(" \x00").upper() or None
    modality = standard_modality(raw_modality)  # named in messages: a standard term only
    result.modality = modality
    burned = str(getattr(ds, "BurnedInAnnotation", "") or "").strip().upper() == "YES"
    if burned and not deid.options.allow_burned_in:
        raise BurnedInAnnotationError(modality)
    if burned:
        result.flags.append("burned_in_annotation_allowed")
    if raw_modality in BURNED_IN_MODALITIES:
        result.flags.append("modality_often_burned_in")
        result.counts["dicom_burned_in_risk"] += 1
    person = source_person_id if source_person_id is not None else person_key(ds)
    known: dict[str, str] = {}
    collect_known(ds, deid.options.retain_device_identity, known)
    ctx = _Context(deid, person, deid.date_shift_days(person), Known(known), result)
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
