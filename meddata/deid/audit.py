"""Auditing DICOM de-identification: which attributes the profile says must change still hold
their original value. Used by the conformance tests and the peer benchmark, and by anyone who
wants to check a de-identifier's output (meddata's or another tool's) against PS3.15 Annex E."""

from __future__ import annotations

from typing import Any

import pydicom

from meddata.deid.options import DeidOptions
from meddata.deid.profile import load_profile

# Values that are already dummies in the pydicom test files, so "unchanged" is not a leak.
DUMMY_VALUES = frozenset({"ANONYMIZED", "19000101", "000000", "19000101000000", "000Y", "0"})
_CHANGED = ("X", "Z", "D", "U")

Path_ = tuple[int, ...]


def flatten(ds: pydicom.Dataset, prefix: Path_ = ()) -> dict[Path_, Any]:
    """Every non-sequence element by its path of (tag, item index, tag, ...)."""
    out: dict[Path_, Any] = {}
    for elem in ds:
        path = (*prefix, int(elem.tag))
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or []):
                out.update(flatten(item, (*path, i)))
        else:
            out[path] = elem.value
    return out


def is_empty(value: Any) -> bool:
    """True for a value that carries nothing (None, empty string, bytes or list)."""
    return value is None or value == "" or value == b"" or (isinstance(value, list) and not value)


def kept_identifiers(
    before: pydicom.Dataset, after: pydicom.Dataset, options: DeidOptions
) -> list[tuple[int, str]]:
    """``(tag, action)`` of each attribute whose action under ``options`` is X, Z, D or U but
    that still holds its original, non-empty, non-dummy value in ``after``."""
    profile = load_profile()
    now = flatten(after)
    kept = []
    for path, value in flatten(before).items():
        rule = profile.rule_for(path[-1])
        if rule is None or is_empty(value) or str(value) in DUMMY_VALUES:
            continue
        action = rule.action(options)
        if action in _CHANGED and path in now and now[path] == value:
            kept.append((path[-1], action))
    return kept


def private_tags_left(ds: pydicom.Dataset) -> int:
    """How many private (odd-group) elements remain, nested ones included."""
    return sum(1 for elem in ds.iterall() if elem.tag.is_private)
