"""Plain header values of a parsed DICOM file, read without pydicom's per-access conversion.

``pydicom.Dataset.get`` converts a raw element on first access (VR lookup, value conversion,
validation, re-insertion), about 25 µs each; mapping one file to its table rows reads some 30
elements, which cost more than parsing the file. The values the adapter maps are almost all
of VRs whose bytes are plain ASCII by the standard (CS, DA, UI, AS, IS, DS) or fixed-size
little-endian integers (US), so they are decoded here straight from the raw bytes. Anything
else (text VRs that depend on the Specific Character Set, big-endian files, elements already
converted, e.g. by de-identification) goes through pydicom unchanged.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

_ASCII = frozenset({"CS", "DA", "UI", "AS", "IS", "DS", "TM", "DT"})
_UNSIGNED = {"US": 2, "UL": 4}


@cache
def _tag(keyword: str) -> BaseTag:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise KeyError(keyword)
    return BaseTag(tag)


class Header:
    """Read-only access to the plain values of ``ds`` by keyword."""

    def __init__(self, ds: pydicom.Dataset, *, fast: bool = True) -> None:
        self.ds = ds
        self.fast = fast

    def _raw(self, keyword: str) -> tuple[str, bytes] | None:
        """(VR, value bytes) when the element can be decoded here, else None."""
        if not self.fast:
            return None
        # The dataset's own mapping: a lookup without converting the element.
        elem = self.ds._dict.get(_tag(keyword))
        if not isinstance(elem, RawDataElement) or not elem.is_little_endian:
            return None
        vr = elem.VR or dictionary_VR(elem.tag)
        if vr not in _ASCII and vr not in _UNSIGNED:
            return None
        return vr, elem.value or b""

    def value(self, keyword: str) -> Any:
        """The value as pydicom would give it (str, number, list of them, or None)."""
        raw = self._raw(keyword)
        if raw is None:
            return self.ds.get(keyword)
        vr, data = raw
        if vr in _UNSIGNED:
            size = _UNSIGNED[vr]
            if not data or len(data) % size:
                return self.ds.get(keyword)  # odd length: let pydicom handle the damage
            ints = [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)]
            return ints[0] if len(ints) == 1 else ints
        text = data.decode("latin-1").strip(" \x00")
        if "\\" in text:
            return [part.strip(" \x00") for part in text.split("\\")]
        return text

    def text(self, keyword: str) -> str | None:
        """The value as a stripped string; None when absent or empty (first of several)."""
        value = self.value(keyword)
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0] if len(value) else None
        text = str(value).strip() if value is not None else ""
        return text or None

    def integer(self, keyword: str) -> int | None:
        """The value as an int (first of several); None when absent, empty or not a number."""
        value = self.value(keyword)
        if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
            value = value[0] if len(value) else None
        try:
            return int(value) if value not in (None, "") else None
        except (TypeError, ValueError):
            try:
                return int(float(value))
            except (TypeError, ValueError):
                return None

    def number(self, keyword: str) -> float | None:
        """The value as a float (first of several); None when absent, empty or not a number."""
        values = self.numbers(keyword)
        return values[0] if values else None

    def numbers(self, keyword: str) -> list[float] | None:
        """All values as floats; None when absent, empty or any is not a number."""
        value = self.value(keyword)
        if value is None or value == "":
            return None
        items = value if isinstance(value, (list, tuple, pydicom.multival.MultiValue)) else [value]
        try:
            return [float(v) for v in items]
        except (TypeError, ValueError):
            return None
