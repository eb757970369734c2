"""The identifying values of a DICOM dataset (person names, IDs, institutions, addresses,
phones, device identity) collected before anything is changed, and how to find them again in
the free text that de-identification keeps (``meddata.deid.dicom``)."""

from __future__ import annotations

import functools
import re
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from meddata.deid.spans import PhiSpan

#: PixelData, FloatPixelData, DoubleFloatPixelData: never changed, and a conversion may have
#: left them unread in the file (pydicom defer_size).
PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})

# Attributes whose values identify the patient, the visit, the staff's organisation, the place
# or the device: each value (and every word of every person name in the dataset) is replaced
# wherever it occurs in the free text that is kept (cleaned descriptors), by the surrogate of
# the kind given here.
_KNOWN_KEYWORDS = {
    "ID": """PatientID OtherPatientIDs IssuerOfPatientID AccessionNumber StudyID AdmissionID
        ServiceEpisodeID RequestedProcedureID PerformedProcedureStepID ScheduledProcedureStepID
        PlacerOrderNumberImagingServiceRequest FillerOrderNumberImagingServiceRequest
        PlacerOrderNumberProcedure FillerOrderNumberProcedure MedicalRecordLocator
        ClinicalTrialSubjectID ClinicalTrialSubjectReadingID InsurancePlanIdentification
        SpecimenAccessionNumber SpecimenIdentifier ContainerIdentifier SlideIdentifier
        ClinicalTrialProtocolEthicsCommitteeApprovalNumber ResultsID InterpretationID
        StudyIDIssuer""",
    "INSTITUTION": """InstitutionName InstitutionalDepartmentName ResponsibleOrganization
        ClinicalTrialSiteName ClinicalTrialCoordinatingCenterName HumanPerformerOrganization
        VerifyingOrganization PatientInstitutionResidence ScheduledPatientInstitutionResidence
        ClinicalTrialProtocolEthicsCommitteeName""",
    "ADDRESS": """InstitutionAddress PatientAddress ReferringPhysicianAddress PersonAddress
        CurrentPatientLocation RequestedProcedureLocation PerformedLocation""",
    "PHONE": """PatientTelephoneNumbers ReferringPhysicianTelephoneNumbers
        PersonTelephoneNumbers OrderCallbackPhoneNumber TelephoneNumberTrial""",
    # device identity: not looked for when the device identity option keeps it
    "DEVICE": """StationName DeviceSerialNumber PlateID GeneratorID CassetteID GantryID
        DetectorID ScheduledStationName PerformedStationName SourceSerialNumber
        TreatmentMachineName StationAETitle RetrieveAETitle ScheduledStationAETitle
        PerformedStationAETitle ScheduledProcedureStepLocation ScheduledStudyLocation""",
}
_KNOWN_TAGS: dict[int, str] = {
    tag: kind
    for kind, words in _KNOWN_KEYWORDS.items()
    for keyword in words.split()
    if (tag := tag_for_keyword(keyword)) is not None
}
# Values that stand for "no value" (a placeholder of an earlier anonymisation): not identifying.
_PLACEHOLDERS = frozenset(
    """anon anonymous anonymized anonymised anonymous^anonymous removed unknown none null n/a
    nil redacted deidentified de-identified 19000101 000000 19000101000000 000y""".split()
)
# Scripts written without spaces between words (CJK, kana, hangul, Thai): a name word of these
# is found inside a run of such letters ("山田太郎"), not only as a whole token.
_UNSPACED = (
    "\u0e00-\u0e7f\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf"
    "\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
)
_NAME_WORD_RE = re.compile(rf"[{_UNSPACED}]+|(?:(?![{_UNSPACED}])[^\W_])+")
_NAME_COMPOUND_RE = re.compile(r"[^\W_]+(?:['’-][^\W_]+)+")
_UNSPACED_RE = re.compile(rf"[{_UNSPACED}]+")


class Known:
    """The identifying values of one dataset, by surrogate kind, and how to find them in text:
    case-insensitively, as whole tokens (``_``, ``-``, ``.``, ``^`` and digits separate the
    words of a name: ``DOE_JOHN_HEAD``), values of five or more characters with a digit also
    inside longer tokens, and words of scripts without spaces inside runs of such letters."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values  # value -> kind (NAME, ID, INSTITUTION, ADDRESS, PHONE, DEVICE)
        self._patterns: tuple[tuple[str, re.Pattern[str]], ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        """The name words, for the recogniser's own name matching."""
        return tuple(v for v, kind in self.values.items() if kind == "NAME")

    def patterns(self) -> tuple[tuple[str, re.Pattern[str]], ...]:
        """One case-insensitive alternation per kind; shared by every dataset with the same
        values (the slices of a series), see :func:`known_patterns`."""
        if self._patterns is None:
            self._patterns = known_patterns(frozenset(self.values.items()))
        return self._patterns

    def spans(self, text: str) -> list[PhiSpan]:
        """Where the known values occur in ``text``: overlapping hits merged (a merge of two
        kinds becomes an ID, whose surrogate replaces every letter and digit)."""
        if not self.values or not text:
            return []
        hits = sorted(
            (m.start(), m.end(), kind)
            for kind, pattern in self.patterns()
            for m in pattern.finditer(text)
            if m.end() > m.start()
        )
        merged: list[tuple[int, int, str]] = []
        for start, end, kind in hits:
            if merged and start < merged[-1][1]:
                first, last, was = merged[-1]
                merged[-1] = (first, max(last, end), was if was == kind else "ID")
            else:
                merged.append((start, end, kind))
        return [PhiSpan(kind, start, end) for start, end, kind in merged]


@functools.lru_cache(maxsize=256)
def known_patterns(values: frozenset[tuple[str, str]]) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """The compiled patterns of a dataset's known values (value, kind), longest value first
    within a kind; cached by the values, as the files of one series share them."""
    by_kind: dict[str, list[str]] = {}
    for value, kind in sorted(values, key=lambda vk: (-len(vk[0]), vk[0])):
        by_kind.setdefault(kind, []).append(_value_pattern(value, kind))
    return tuple(
        (kind, re.compile("|".join(alternatives), re.IGNORECASE))
        for kind, alternatives in by_kind.items()
    )


def _value_pattern(value: str, kind: str) -> str:
    body = r"\s+".join(re.escape(part) for part in value.split())
    if _UNSPACED_RE.fullmatch(value):
        return body  # 山田 inside 山田太郎
    if kind == "NAME" and not any(c.isdigit() for c in value):
        return rf"(?<![^\W\d_]){body}(?![^\W\d_])"  # a name word: not inside another word
    if kind != "NAME" and len(value) >= 5 and any(c.isdigit() for c in value):
        return body  # an identifier with digits: also inside a longer token
    return rf"(?<![^\W_]){body}(?![^\W_])"


def is_placeholder(value: str) -> bool:
    """Whether ``value`` stands for "no value" (an earlier anonymisation's placeholder)."""
    return value.casefold() in _PLACEHOLDERS


def _add_names(value: Any, known: dict[str, str]) -> None:
    """The words of a person name (every component group of ``A^B=C^D=E^F``, every component,
    every word), hyphenated compounds whole too, and for scripts without spaces the group's
    words joined in both orders (王^伟 → 王伟, 伟王)."""
    values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    for one in values:
        text = str(one or "").strip(" \x00")
        if not text or is_placeholder(text):
            continue
        for group in text.split("="):
            unspaced = []
            for component in group.split("^"):
                words = _NAME_WORD_RE.findall(component) + _NAME_COMPOUND_RE.findall(component)
                for word in words:
                    if _UNSPACED_RE.fullmatch(word):
                        unspaced.append(word)
                        if len(word) > 1:
                            known.setdefault(word, "NAME")
                    elif is_placeholder(word):
                        continue
                    elif any(c.isalpha() for c in word):
                        if len(word) > 1:
                            known.setdefault(word, "NAME")
                    elif len(word) >= 3:
                        known.setdefault(word, "ID")  # digits in a name field
            if len(unspaced) > 1:
                known.setdefault("".join(unspaced), "NAME")
                known.setdefault("".join(reversed(unspaced)), "NAME")


def _add_values(value: Any, kind: str, known: dict[str, str]) -> None:
    values = value if isinstance(value, list | tuple | pydicom.multival.MultiValue) else [value]
    for one in values:
        text = " ".join(str(one or "").strip(" \x00").split())
        if len(text) >= 3 and any(c.isalnum() for c in text) and not is_placeholder(text):
            known.setdefault(text, kind)


def collect_known(ds: Dataset, retain_device: bool, known: dict[str, str]) -> None:
    """Every person name and every identifying value (see ``_KNOWN_KEYWORDS``) of ``ds`` and
    its sequences, before anything is changed. Other elements are not parsed."""
    for tag in list(ds.keys()):
        if tag.is_private or tag in PIXEL_TAGS:
            continue
        vr = ds.get_item(tag, keep_deferred=True).VR
        if vr is None or vr == "UN":
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                continue
        kind = _KNOWN_TAGS.get(int(tag))
        if vr not in ("SQ", "PN") and (kind is None or (kind == "DEVICE" and retain_device)):
            continue
        try:
            elem = ds[tag]
            items = list(elem.value or []) if elem.VR == "SQ" else []
        except Exception:  # noqa: BLE001 - damaged: left to the walk, as before this pass
            continue
        if elem.VR == "SQ":
            for item in items:
                collect_known(item, retain_device, known)
        elif elem.VR == "PN":
            _add_names(elem.value, known)
        elif kind is not None and elem.value not in (None, ""):
            _add_values(elem.value, kind, known)
