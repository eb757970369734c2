"""The clinical-text PHI recogniser: runs every detector and resolves overlaps."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Sequence

from meddata.deid import patterns
from meddata.deid.names import find_names, propagate
from meddata.deid.spans import PhiSpan, resolve_overlaps

# Higher wins when two candidate spans overlap (then the longer one).
PRIORITY = {
    "EMAIL": 90,
    "URL": 85,
    "IP": 85,
    "DEVICE": 80,
    "ID": 75,
    "PHONE": 70,
    "ADDRESS": 65,
    "DATE": 60,
    "INSTITUTION": 58,
    "TIME": 55,
    "ZIP": 50,
    "CITY": 45,
    "AGE": 40,
    "NAME": 30,
}


def find_phi(
    text: str,
    extra_names: Iterable[str] = (),
    backends: Sequence[Callable[[str], Iterable[PhiSpan]]] = (),
) -> list[PhiSpan]:
    """All PHI spans in ``text``, non-overlapping and sorted by start offset.

    ``backends`` are optional extra recognisers (see :mod:`meddata.deid.backends`); their spans
    lose every overlap with a rule-based span.
    """
    candidates: list[tuple[int, PhiSpan]] = []
    for backend in backends:
        for span in backend(text):
            candidates.append((5, span))
    for detector in (
        patterns.find_contacts,
        patterns.find_ids,
        patterns.find_locations,
        patterns.find_dates,
        patterns.find_times,
        patterns.find_institutions,
        patterns.find_ages,
    ):
        for span in detector(text):
            candidates.append((PRIORITY[span.type], span))
    for span in find_names(text, tuple(extra_names)):
        candidates.append((PRIORITY["NAME"], span))
    candidates = _demote_long_numbers(candidates)
    first = resolve_overlaps(candidates, text)
    names = [s for s in first if s.type == "NAME"]
    for span in propagate(text, names):
        candidates.append((PRIORITY["NAME"] - 1, span))
    return _with_trailing_marks(resolve_overlaps(candidates, text), text)


def _with_trailing_marks(spans: list[PhiSpan], text: str) -> list[PhiSpan]:
    """Spans extended over the combining marks right after them: a span cut short by a
    winner ends at its last letter, which leaves that letter's accent ("Αά" in decomposed
    form) outside, to be kept next to the surrogate."""
    out = []
    for k, span in enumerate(spans):
        end = span.end
        limit = spans[k + 1].start if k + 1 < len(spans) else len(text)
        while end < limit and unicodedata.category(text[end])[0] == "M":
            end += 1
        out.append(span if end == span.end else PhiSpan(span.type, span.start, end))
    return out


def _demote_long_numbers(candidates: list[tuple[int, PhiSpan]]) -> list[tuple[int, PhiSpan]]:
    """Unlabelled long numbers lose to every labelled or shaped detector."""
    labelled = {(s.start, s.end) for p, s in candidates if s.type != "ID"}
    out = []
    for priority, span in candidates:
        if span.type == "ID" and (span.start, span.end) in labelled:
            priority = 10
        out.append((priority, span))
    return out
