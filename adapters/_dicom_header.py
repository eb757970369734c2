"""Plain header values of a parsed DICOM file, read without pydicom's per-access conversion.

``pydicom.Dataset.get`` converts a raw element on first access (VR lookup, value conversion,
validation, re-insertion), about 25 µs each; mapping one file to its table rows reads some 30
elements, which cost more than parsing the file. So the values the adapter maps are decoded
here straight from the raw bytes: the VRs that are plain ASCII by the standard (CS, DA, UI, AS,
IS, DS, TM, DT), little-endian unsigned integers (US, UL), and the text VRs (LO, SH, UC, ST, LT,
UT) when the file's Specific Character Set is one byte-for-byte codec (none, ISO_IR 6, 100 or
192). An absent element is None without asking pydicom. Anything else (other character sets,
person names, big-endian files, elements already converted, e.g. by de-identification) goes
through pydicom unchanged.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.tag import BaseTag

_ASCII = frozenset({"CS", "DA", "UI", "AS", "IS", "DS", "TM", "DT"})
_TEXT = frozenset({"LO", "SH", "UC"})  # multi-valued (backslash-separated) text
_FREE_TEXT = frozenset({"ST", "LT", "UT"})  # one value; a backslash is just a character
_UNSIGNED = {"US": 2, "UL": 4}
# Specific Character Set values that name one plain codec (the default repertoire is read as
# latin-1, as pydicom does).
_CHARSETS = {"": "latin-1", "ISO_IR 6": "latin-1", "ISO_IR 100": "latin-1", "ISO_IR 192": "utf-8"}
_CHARSET_TAG = BaseTag(0x00080005)
_MULTI = (list, tuple, pydicom.multival.MultiValue)


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
        self._codec = _text_codec(ds) if fast else None

    def has(self, keyword: str) -> bool:
        """Whether the element is present (even if empty)."""
        return _tag(keyword) in self.ds._dict

    def value(self, keyword: str) -> Any:
        """The value as pydicom would give it (str, number, list of them, or None)."""
        if not self.fast:
            return self.ds.get(keyword)
        # The dataset's own mapping: a lookup without converting the element.
        elem = self.ds._dict.get(_tag(keyword))
        if elem is None:
            return None
        if not isinstance(elem, RawDataElement) or not elem.is_little_endian:
            return self.ds.get(keyword)
        if elem.value is None and elem.length:  # larger than dcmread's defer_size: unread
            return self.ds.get(keyword)
        vr = elem.VR or dictionary_VR(elem.tag)
        data = elem.value or b""
        if vr in _ASCII:
            text = data.decode("latin-1")
        elif vr in _UNSIGNED:
            size = _UNSIGNED[vr]
            if not data or len(data) % size:
                return self.ds.get(keyword)  # odd length: let pydicom handle the damage
            ints = [int.from_bytes(data[i : i + size], "little") for i in range(0, len(data), size)]
            return ints[0] if len(ints) == 1 else ints
        elif (vr in _TEXT or vr in _FREE_TEXT) and self._codec is not None and b"\x1b" not in data:
            # (an escape sequence switches character sets: pydicom decodes those)
            try:
                text = data.decode(self._codec)
            except UnicodeDecodeError:
                return self.ds.get(keyword)
            if vr in _FREE_TEXT:
                return text.rstrip(" \x00")
        else:
            return self.ds.get(keyword)
        if "\\" in text:
            return [part.strip(" \x00") for part in text.split("\\")]
        return text.strip(" \x00")

    def text(self, keyword: str) -> str | None:
        """The value as a stripped string; None when absent or empty (first of several)."""
        value = self.value(keyword)
        if isinstance(value, _MULTI):
            value = value[0] if len(value) else None
        text = str(value).strip() if value is not None else ""
        return text or None

    def integer(self, keyword: str) -> int | None:
        """The value as an int (first of several); None when absent, empty or not a number."""
        value = self.value(keyword)
        if isinstance(value, _MULTI):
            value = value[0] if len(value) else None
        if isinstance(value, int):
            return value
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
        items = value if isinstance(value, _MULTI) else [value]
        try:
            return [float(v) for v in items]
        except (TypeError, ValueError):
            return None


def _text_codec(ds: pydicom.Dataset) -> str | None:
    """The one codec text values of ``ds`` are in, or None when pydicom must decode them
    (several character sets, code extensions, an already converted or odd element)."""
    elem = ds._dict.get(_CHARSET_TAG)
    if elem is None:
        return _CHARSETS[""]
    if not isinstance(elem, RawDataElement):
        return None
    name = (elem.value or b"").decode("latin-1").strip(" \x00")
    return _CHARSETS.get(name)
