"""Shared demographic mappings: OMOP gender/race/ethnicity concepts and age groups."""

from __future__ import annotations

import datetime as dt
import re

GENDER_CONCEPTS = {"male": 8507, "m": 8507, "female": 8532, "f": 8532, "unknown": 8551, "u": 8551}
RACE_CONCEPTS = {
    "white": 8527,
    "black or african american": 8516,
    "black": 8516,
    "asian": 8515,
    "native hawaiian or other pacific islander": 8557,
    "american indian or alaska native": 8657,
}
ETHNICITY_CONCEPTS = {
    "hispanic": 38003563,
    "hispanic or latino": 38003563,
    "hispanic/latino": 38003563,
    "non-hispanic": 38003564,
    "not hispanic or latino": 38003564,
    "non-hispanic/non-latino": 38003564,
}
#: Sample columns that describe who a person is (the demographic sensitive attributes).
DEMOGRAPHIC_ATTRIBUTES: tuple[str, ...] = (
    "sex",
    "gender",
    "age_group",
    "race",
    "ethnicity",
    "race_ethnicity",
    "insurance",
    "skin_type",
    "fitzpatrick",
)
#: Every column treated as a sensitive attribute: demographics plus where and how data was taken.
SENSITIVE_ATTRIBUTES: tuple[str, ...] = (*DEMOGRAPHIC_ATTRIBUTES, "site", "device", "manufacturer")
AGE_GROUPS = ((0, 17, "0-17"), (18, 39, "18-39"), (40, 59, "40-59"), (60, 79, "60-79"))
#: SPEC §5.3: every value of ``samples.age_group``.
AGE_GROUP_LABELS: tuple[str, ...] = (*(label for _, _, label in AGE_GROUPS), "80+", "Unknown")
#: SPEC §5.3: task label values (positive, negative, uncertain; null is "not mentioned").
LABEL_VALUES = (1.0, 0.0, -1.0)
_DICOM_AGE = re.compile(r"^(\d{1,3})([DWMY])$")


def gender_concept(value: str | None) -> int:
    """OMOP gender concept for a source sex value (0 when it does not map)."""
    return GENDER_CONCEPTS.get((value or "").strip().lower(), 0)


def sex_label(value: str | None) -> str:
    """The sensitive-attribute label for sex: Male, Female or Unknown."""
    concept = gender_concept(value)
    return {8507: "Male", 8532: "Female"}.get(concept, "Unknown")


def race_concept(value: str | None) -> int:
    """OMOP race concept (0 when unmapped, e.g. 'Unknown' or 'Patient Refused')."""
    return RACE_CONCEPTS.get((value or "").strip().lower(), 0)


def ethnicity_concept(value: str | None) -> int:
    """OMOP ethnicity concept (0 when unmapped)."""
    return ETHNICITY_CONCEPTS.get((value or "").strip().lower(), 0)


def age_group(age: float | None) -> str:
    """Age bin used for fairness: 0-17, 18-39, 40-59, 60-79, 80+ or Unknown."""
    if age is None or age < 0:
        return "Unknown"
    for low, high, label in AGE_GROUPS:
        if low <= age <= high:
            return label
    return "80+"


def dicom_age_years(value: str | None) -> float | None:
    """Years from a DICOM Age String such as ``045Y`` or ``006M``."""
    match = _DICOM_AGE.match((value or "").strip())
    if not match:
        return None
    n, unit = int(match.group(1)), match.group(2)
    return {"Y": n, "M": n / 12, "W": n / 52.18, "D": n / 365.25}[unit]


def parse_dicom_date(value: object) -> dt.date | None:
    """A ``datetime.date`` from a DICOM DA value (``YYYYMMDD``), or None."""
    text = str(value or "").strip()
    if len(text) < 8 or not text[:8].isdigit():
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return None
