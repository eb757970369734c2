"""De-identification: HMAC-keyed pseudonyms and date shifts, clinical-text PHI recognition with
surrogates, the DICOM PS3.15 Annex E Basic profile with options, and structured-field helpers.

No PHI value is ever logged, raised or reported: only types, counts and offsets.
"""

from meddata.deid.core import Deidentifier, DeidText
from meddata.deid.errors import BurnedInAnnotationError, DeidKeyError
from meddata.deid.keys import fingerprint, load_or_create_key
from meddata.deid.options import DeidOptions
from meddata.deid.spans import PhiSpan
from meddata.deid.structured import birth_year, cap_age, zip3

__all__ = [
    "BurnedInAnnotationError",
    "DeidKeyError",
    "DeidOptions",
    "DeidText",
    "Deidentifier",
    "PhiSpan",
    "birth_year",
    "cap_age",
    "fingerprint",
    "load_or_create_key",
    "zip3",
]
