"""The clinical-text PHI recogniser: runs every detector and resolves overlaps."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence

from meddata.deid import patterns
from meddata.deid.names import MARKS, find_names, propagate
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
    *,
    reference_year: int | None = None,
) -> list[PhiSpan]:
    """All PHI spans in ``text``, non-overlapping and sorted by start offset.

    ``backends`` are optional extra recognisers (see :mod:`meddata.deid.backends`); their spans
    lose every overlap with a rule-based span. ``reference_year`` is the year ages are counted
    to (``DeidOptions.reference_year``; see :func:`patterns.find_ages`).
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
    ):
        for span in detector(text):
            candidates.append((PRIORITY[span.type], span))
    for span in patterns.find_ages(text, reference_year):
        candidates.append((PRIORITY[span.type], span))
    name_candidates = find_names(text, tuple(extra_names))
    for span in name_candidates:
        candidates.append((PRIORITY["NAME"], span))
    candidates = _demote_long_numbers(candidates)
    first = resolve_overlaps(candidates, text)
    names = [s for s in first if s.type == "NAME"]
    names += _swallowed_names(text, name_candidates, first)
    for span in propagate(text, names):
        candidates.append((PRIORITY["NAME"] - 1, span))
    return _with_trailing_marks(resolve_overlaps(candidates, text), text)


# Spans that may take in the words before them ("Dr. Zoë Oakwood Clinic", "Dr. Zoë Springfield,
# IL"): the name of a person they take in is still looked for in the rest of the text.
_SWALLOWING = frozenset({"INSTITUTION", "CITY"})
_TITLE_BEFORE_RE = re.compile(
    r"(?<![\w.])(?:dr|doctor|mr|mrs|ms|miss|prof|professor|mx)\.?[ \t]+$", re.I
)
_FIRST_WORD_RE = re.compile(rf"[^\W\d_](?:[^\W\d_]|[{MARKS}'’-])*")


def _swallowed_names(text: str, names: list[PhiSpan], taken: list[PhiSpan]) -> list[PhiSpan]:
    """The first word of each name candidate that follows a person's title inside a winning
    institution or city span: the span replaces it there, but its other occurrences ("Zoë
    agreed.") are still names. Only after a title: "Riverside Imaging Center" on a signature
    line is also a name candidate, and "imaging" elsewhere is no name."""
    out = []
    for winner in taken:
        if winner.type not in _SWALLOWING:
            continue
        for name in names:
            if not winner.start <= name.start < name.end <= winner.end:
                continue
            if _TITLE_BEFORE_RE.search(text, max(0, name.start - 12), name.start) is None:
                continue
            word = _FIRST_WORD_RE.match(text, name.start, name.end)
            if word is not None:
                out.append(PhiSpan("NAME", name.start, word.end()))
    return out


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
