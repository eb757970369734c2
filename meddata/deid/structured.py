"""Helpers for structured (EHR) fields, used by adapters inside ``convert(unit)``."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import TYPE_CHECKING

from meddata.deid.dates import aggregated

if TYPE_CHECKING:
    from meddata.deid.core import Deidentifier

# 3-digit ZIP prefixes whose population is 20,000 or fewer (HIPAA Safe Harbor, 2000 census):
# they are replaced by "000".
RESTRICTED_ZIP3 = frozenset(
    "036 059 063 102 203 556 692 790 821 823 830 831 878 879 884 890 893".split()
)
_ZIP_RE = re.compile(r"^\s*(\d{3})\d{2}(?:-?\d{4})?\s*$")
_YEAR_RE = re.compile(r"^\s*(\d{4})")


def birth_year(value: date | datetime | str | int | None) -> int | None:
    """The year of a birth date (date, datetime, ISO/DICOM string or year); None if unknown."""
    if value is None:
        return None
    if isinstance(value, date | datetime):
        return value.year
    if isinstance(value, int):
        return value if 1000 <= value <= 9999 else None
    m = _YEAR_RE.match(str(value))
    return int(m.group(1)) if m else None


def cap_age(age: float | int | str | None) -> int | None:
    """An age in whole years with every age over 89 reported as 90; None if not a number."""
    if age is None:
        return None
    try:
        years = int(float(age))
    except (TypeError, ValueError, OverflowError):  # "inf" included
        return None
    if years < 0:
        return None
    return 90 if years > 89 else years


def zip3(value: str | int | None) -> str | None:
    """The first three digits of a US ZIP code ("000" for the restricted prefixes)."""
    if value is None:
        return None
    text = f"{value:05d}" if isinstance(value, int) else str(value)
    m = _ZIP_RE.match(text)
    if m is None:
        return None
    prefix = m.group(1)
    return "000" if prefix in RESTRICTED_ZIP3 else prefix


def pseudonymise_person(deid: Deidentifier, source_person_id: str | int) -> int:
    """The int64 ``person_id`` for a source person identifier."""
    deid.count("PERSON_ID")
    return deid.person_id(str(source_person_id))


def pseudonymise_id(deid: Deidentifier, namespace: str, value: str | int | None) -> str | None:
    """A stable pseudonym for another identifier (MRN, visit number…), per namespace."""
    if value is None or str(value) == "":
        return None
    deid.count("ID")
    return deid.pseudonym(namespace, str(value))


def shift_date(
    deid: Deidentifier, value: date | datetime | None, source_person_id: str
) -> date | datetime | None:
    """A date or datetime moved back by the person's shift (None stays None); one that falls
    more than 89 years before ``options.reference_year`` is written in that year less 90 (a
    date that tells an age over 89, see :func:`meddata.deid.dates.aggregated`); the
    placeholder 1900-01-01 is kept as it is."""
    if value is None:
        return None
    if (value.year, value.month, value.day) == (1900, 1, 1):
        return value  # a placeholder, no one's date: shifted, it would give the shift away
    deid.count("DATE")
    return aggregated(deid.shift_date(value, source_person_id), deid.options.reference_year - 90)


def free_text(deid: Deidentifier, value: str | None, source_person_id: str) -> str | None:
    """A free-text field through the clinical-text recogniser and surrogates."""
    if value is None or value == "":
        return value
    return deid.text(value, source_person_id).text
