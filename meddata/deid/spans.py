"""The span type shared by the recogniser, the surrogate writer and the evaluation."""

from __future__ import annotations

import unicodedata
from typing import NamedTuple


class PhiSpan(NamedTuple):
    """A PHI value found in a text: its type and ``[start, end)`` offsets (never its value)."""

    type: str
    start: int
    end: int


def _in_word(char: str) -> bool:
    """A letter, a digit or a combining mark (the accent of a decomposed "é" is part of it)."""
    return char.isalnum() or unicodedata.category(char)[0] == "M"


def resolve_overlaps(candidates: list[tuple[int, PhiSpan]], text: str) -> list[PhiSpan]:
    """Non-overlapping spans, sorted by start: higher priority wins, then the longer span.

    A span that overlaps a winner keeps its leading free part when that part still holds a
    letter or digit (so "Gibson, Oakwood Clinic" leaves the name "Gibson" to the clinic); the
    part ends at a letter, digit or combining mark, so the accent of a decomposed "é" before
    the winner stays in the span (and is replaced with it).
    """
    ordered = sorted(candidates, key=lambda c: (-c[0], -(c[1].end - c[1].start), c[1].start))
    taken: list[PhiSpan] = []
    occupied = bytearray(len(text) + 1)
    for _, span in ordered:
        start, end = span.start, span.end
        if end <= start:
            continue
        if occupied[start]:
            continue
        if any(occupied[start:end]):
            end = start + occupied[start:end].index(1)
            while end > start and not _in_word(text[end - 1]):
                end -= 1
            if end <= start:
                continue
            span = PhiSpan(span.type, start, end)
        taken.append(span)
        occupied[start:end] = b"\x01" * (end - start)
    taken.sort(key=lambda s: s.start)
    return taken
