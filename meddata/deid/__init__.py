"""De-identification: HMAC-keyed pseudonyms and date shifts, clinical-text PHI recognition with
surrogates, the DICOM PS3.15 Annex E Basic profile with options, and structured-field helpers.

No PHI value is ever logged, raised or reported: only types, counts and offsets.

The public names load on first use: the text recognizer and the name lists take about 0.1 s to
build, which a run without de-identification (``--no-deid``) should not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from meddata.deid.core import Deidentifier, DeidText
    from meddata.deid.errors import BurnedInAnnotationError, DeidKeyError
    from meddata.deid.keys import fingerprint, load_or_create_key
    from meddata.deid.options import DeidOptions
    from meddata.deid.spans import PhiSpan
    from meddata.deid.structured import birth_year, cap_age, zip3

_HOMES = {
    "BurnedInAnnotationError": "errors",
    "DeidKeyError": "errors",
    "DeidOptions": "options",
    "DeidText": "core",
    "Deidentifier": "core",
    "PhiSpan": "spans",
    "birth_year": "structured",
    "cap_age": "structured",
    "fingerprint": "keys",
    "load_or_create_key": "keys",
    "zip3": "structured",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'meddata.deid' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"meddata.deid.{home}"), name)
    globals()[name] = value
    return value
