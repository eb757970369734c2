"""Errors raised by de-identification. Messages carry types and counts, never PHI values."""

from __future__ import annotations

from meddata.errors import MeddataError, UsageError


class DeidKeyError(UsageError):
    """The de-identification key file is missing, unreadable or too short."""


class BurnedInAnnotationError(MeddataError):
    """A DICOM image declares burned-in annotation (text in the pixels) and was not allowed."""

    def __init__(self, modality: str | None = None) -> None:
        what = f"modality {modality}" if modality else "unknown modality"
        super().__init__(
            f"DICOM image ({what}) has BurnedInAnnotation=YES: its pixels may show PHI.",
            "It was quarantined; pass --allow-burned-in only if its pixels were cleaned.",
        )
        self.modality = modality
