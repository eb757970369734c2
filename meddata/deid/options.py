"""Options of de-identification (PS3.15 Annex E options and the date-shift range)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from meddata.deid.dates import current_year
from meddata.errors import UsageError

# The reference years accepted: a year of birth written with four digits ("born in 1936") is
# compared with it, and a surrogate year of birth (the reference year less 90) keeps four digits.
MIN_REFERENCE_YEAR = 1900
MAX_REFERENCE_YEAR = 9999


@dataclass(frozen=True)
class DeidOptions:
    """What to retain or clean beyond the Basic Application Level Confidentiality Profile.

    ``retain_longitudinal_dates`` is Annex E's *Retain Longitudinal Temporal Information with
    Modified Dates* option and concerns DICOM only: when False, DICOM dates and times follow the
    Basic profile (removed, emptied or replaced by dummies, and LongitudinalTemporalInformationModified
    is "REMOVED"); when True, they are shifted back by the person's HMAC-derived offset so that
    intervals survive ("MODIFIED"). Dates in clinical text and structured (EHR) fields are always
    shifted by that same per-person offset, so one person's dates agree across every source.
    ``date_shift_range`` is the inclusive range of days a date is moved back.
    ``reference_year`` is the year ages are counted to in clinical text: a year of birth more
    than 89 years before it ("born in 1931") tells an age over 89 and becomes the reference year
    less 90 (HIPAA Safe Harbor). It defaults to the current year *when the options are made*
    and is recorded with them (:meth:`as_dict`), so the output never depends on the clock: the
    same key, options and input give the same bytes in any year (a resumed run included).
    """

    retain_longitudinal_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    clean_descriptors: bool = True
    allow_burned_in: bool = False
    date_shift_range: tuple[int, int] = (30, 365)
    reference_year: int = field(default_factory=current_year)

    def __post_init__(self) -> None:
        low, high = self.date_shift_range
        if not (0 < low <= high):
            raise UsageError(
                f"date_shift_range must satisfy 0 < low <= high, got ({low}, {high}).",
                "Use a range of days such as (30, 365).",
            )
        year = self.reference_year
        if (
            isinstance(year, bool)
            or not isinstance(year, int)
            or not MIN_REFERENCE_YEAR <= year <= MAX_REFERENCE_YEAR
        ):
            raise UsageError(
                f"reference_year must be a year from {MIN_REFERENCE_YEAR} to "
                f"{MAX_REFERENCE_YEAR}, got {year!r}.",
                "Give a four-digit year such as 2025 (the year ages are counted to).",
            )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DeidOptions:
        """Options from a plain mapping (``convert(deid_options=...)``, a recorded
        :meth:`as_dict`), refusing unknown names; a missing ``reference_year`` is this year."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise UsageError(
                f"Unknown de-identification option {unknown[0]!r}.",
                f"Known options: {', '.join(sorted(known))}.",
            )
        values = dict(options)
        if "date_shift_range" in values:
            values["date_shift_range"] = tuple(values["date_shift_range"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        """The options as plain JSON-ready values (for the manifest and a run's description),
        ``reference_year`` included: :meth:`from_mapping` of them gives these options back."""
        out = asdict(self)
        out["date_shift_range"] = list(self.date_shift_range)
        return out
