"""Options of de-identification (PS3.15 Annex E options and the date-shift range)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from meddata.errors import UsageError


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
    """

    retain_longitudinal_dates: bool = False
    retain_patient_characteristics: bool = False
    retain_device_identity: bool = False
    clean_descriptors: bool = True
    allow_burned_in: bool = False
    date_shift_range: tuple[int, int] = (30, 365)

    def __post_init__(self) -> None:
        low, high = self.date_shift_range
        if not (0 < low <= high):
            raise UsageError(
                f"date_shift_range must satisfy 0 < low <= high, got ({low}, {high}).",
                "Use a range of days such as (30, 365).",
            )

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> DeidOptions:
        """Options from a plain mapping (``convert(deid_options=...)``), refusing unknown names."""
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
        """The options as plain JSON-ready values (for the manifest)."""
        out = asdict(self)
        out["date_shift_range"] = list(self.date_shift_range)
        return out
