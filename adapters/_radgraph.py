"""RadGraph-XL annotations of CheXpert Plus reports: reading ``section_<s>.json`` and pairing its
entries with the CSV rows they belong to (``join_radgraph``, ``align_by_text``), placing an
entry's tokens in the stored report text (``align_tokens``, ``section_start``) and reading its
entity labels (``parse_radgraph_label``, ``term_modifiers``).

Upstream, the i-th element of ``section_<s>.json`` belongs to the i-th CSV row (in CSV order,
duplicates included) whose ``section_<s>`` has at least 2 words. Each element carries its own text,
so elements are paired with rows in that order by their text (ignoring whitespace): a missing,
extra or edited row or element loses only its own annotations, and the pairing re-synchronises
after it. A ragged CSV row keeps its place (its entry, when it had one, is skipped). Rows left
without an entry and entries left unused are counted in the quarantine report (with the first CSV
line numbers), never their texts."""

from __future__ import annotations

import bisect
import json
import math
import re
from pathlib import Path
from typing import Any

RADGRAPH_SECTIONS = ("findings", "impression")
# Re-synchronising the alignment (align_by_text): how unlikely by chance (log10) the texts that
# agree after a new point must be, near by and further on, and for how many texts at most; how
# many rows and entries are compared at once; how many places of one text are tried.
ALIGN_NEAR_EVIDENCE = 3.0
ALIGN_FAR_EVIDENCE = 4.0
ALIGN_MAX_RUN = 64
ALIGN_WINDOW = 8
ALIGN_TRIES = 16
MAX_ALIGN_GAP = 80  # characters of other text (a surrogate) a token may follow
_V1_TYPES = {"OBS": "Observation", "ANAT": "Anatomy"}
_V1_CERTAINTY = {"DP": "definitely present", "DA": "definitely absent", "U": "uncertain"}
_WS = re.compile(r"\s+")
Issues = list[tuple[str, str]]


def section_file(section: str) -> str:
    """The release path of a section's RadGraph-XL file, relative to the release root."""
    return f"radgraph-XL-annotations/section_{section}.json"


def join_radgraph(source: Path, raw: list[dict[str, Any]], issues: Issues) -> None:
    """Give each CSV row (``raw``: every row in CSV order, ragged ones included) the RadGraph-XL
    entry of each section paired with it, as ``row["radgraph"][section]`` (its ``text`` and
    ``entities``); what could not be used is reported in ``issues`` (counts, never texts)."""
    for section in RADGRAPH_SECTIONS:
        rel = section_file(section)
        path = source / rel
        if not path.is_file():
            issues.append((rel, "RadGraph-XL file missing; no note_nlp rows for this section"))
            continue
        try:
            records = json.loads(path.read_text(encoding="utf-8-sig", errors="replace"))
            if not isinstance(records, list):
                raise ValueError("not a JSON array")
        except (ValueError, RecursionError) as exc:
            issues.append(
                (
                    rel,
                    f"RadGraph-XL file is not a JSON array ({type(exc).__name__}: truncated "
                    "or damaged?); not used, download it again",
                )
            )
            continue
        column = f"section_{section}"
        rows = [r for r in raw if r.get("ragged") or _eligible(r, column)]
        row_keys = [None if r.get("ragged") else _WS.sub("", r[column]) for r in rows]
        pairs, skipped_together = align_by_text(row_keys, [_radgraph_text(e) for e in records])
        bad = 0
        for i, j in pairs:
            record = _radgraph_record(records[j])
            if record is None or not isinstance(record.get("entities"), dict):
                bad += 1
                continue
            rows[i].setdefault("radgraph", {})[section] = {
                "text": str(record.get("text", "")),
                "entities": record["entities"],
            }
        _alignment_issues(rel, section, rows, records, pairs, skipped_together, bad, issues)


def _alignment_issues(
    rel: str,
    section: str,
    rows: list[dict[str, Any]],
    records: list[Any],
    pairs: list[tuple[int, int]],
    skipped_together: list[tuple[int, int]],
    bad: int,
    issues: Issues,
) -> None:
    """Counts (never texts) of what the text alignment could not use."""
    paired_rows = {i for i, _ in pairs}
    paired_records = {j for _, j in pairs}
    ragged = {j for i, j in skipped_together if rows[i].get("ragged")}
    malformed = {
        j
        for j, e in enumerate(records)
        if j not in paired_records and j not in ragged and _radgraph_text(e) is None
    }
    unmatched = len(records) - len(paired_records) - len(ragged) - len(malformed)
    eligible = [r for r in rows if not r.get("ragged")]
    missing = [
        r["line"] for i, r in enumerate(rows) if i not in paired_rows and not r.get("ragged")
    ]
    if ragged:
        issues.append((rel, f"{len(ragged)} entries belong to ragged CSV rows (skipped); not used"))
    if malformed or bad:
        issues.append(
            (
                rel,
                f"{len(malformed) + bad} entries are not records with a text and an entity "
                "object; not used",
            )
        )
    if unmatched:
        issues.append(
            (
                rel,
                f"{unmatched} entries match no CSV row's {section} text in order (the CSV "
                "lacks their row, or its text differs); not used",
            )
        )
    if missing:
        first = ", ".join(str(line) for line in missing[:5])
        issues.append(
            (
                rel,
                f"{len(missing)} of {len(eligible)} CSV rows with a {section} section of 2+ "
                f"words have no entry with their text (CSV lines {first}"
                f"{', ...' if len(missing) > 5 else ''}); no note_nlp rows from them",
            )
        )


def align_by_text(
    rows: list[str | None], records: list[str | None]
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Pair CSV rows with RadGraph entries that are in the same order, by their texts.

    ``rows`` and ``records`` are whitespace-free texts (None: unknown, a ragged row or a
    malformed entry). Equal texts are paired in order. At a difference the walk re-synchronises
    at the first pair of a longest common subsequence of the next ``ALIGN_WINDOW`` rows and
    entries, when the lists agree from there on texts unlikely to agree by chance
    (``ALIGN_NEAR_EVIDENCE``); otherwise at the nearest later place of row i's text among the
    entries, or of entry j's text among the rows (``ALIGN_TRIES`` tried each), where they agree
    so (``ALIGN_FAR_EVIDENCE``, more the further on: a long run of rows or entries is missing);
    otherwise at that first pair, if any; otherwise it skips one row and one entry (an edited
    text). So a missing, extra or edited row or entry loses only its own pairing, and a text
    common to many rows cannot pull the walk far out of place.

    Returns the pairs ``(row index, record index)`` and the ``(row, record)`` pairs skipped
    together. Linear in the input, apart from a bounded amount of work at each difference."""
    n, m = len(rows), len(records)
    row_at: dict[str, list[int]] = {}
    for i, key in enumerate(rows):
        if key is not None:
            row_at.setdefault(key, []).append(i)
    record_at: dict[str, list[int]] = {}
    for j, key in enumerate(records):
        if key is not None:
            record_at.setdefault(key, []).append(j)

    # How unlikely a chance agreement on a text is: log10 of 1 / its share of the entries. A
    # run of agreeing texts is trusted when these add up to `need` (a chance agreement of the
    # whole run being about 10**-need likely), so many repeats of a common text ("No acute
    # cardiopulmonary process.") count for as much as one distinctive text.
    weight = {key: math.log10(max(m, 2) / len(at)) for key, at in record_at.items()}

    def agrees(i: int, j: int, need: float) -> bool:
        """Whether rows[i:] and records[j:] agree on texts unlikely enough to agree by chance."""
        evidence = 0.0
        for k in range(min(ALIGN_MAX_RUN, n - i, m - j)):
            key = rows[i + k]
            if key is None or key != records[j + k]:
                return False
            evidence += weight[key]
            if evidence >= need:
                return True
        return False

    def near(i: int, j: int) -> tuple[int, int] | None:
        """The first pair of a longest common subsequence of the next ALIGN_WINDOW rows and
        entries, as (rows skipped, entries skipped): the earliest, or after a ragged row the one
        nearest the diagonal (the row keeps its place, as upstream); None when they share no
        text."""
        a, b = rows[i : i + ALIGN_WINDOW], records[j : j + ALIGN_WINDOW]
        if not {x for x in a if x is not None} & {y for y in b if y is not None}:
            return None
        # lcs[x][y]: the LCS length of a[x:] and b[y:]
        lcs = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
        for x in range(len(a) - 1, -1, -1):
            for y in range(len(b) - 1, -1, -1):
                if a[x] is not None and a[x] == b[y]:
                    lcs[x][y] = lcs[x + 1][y + 1] + 1
                else:
                    lcs[x][y] = max(lcs[x + 1][y], lcs[x][y + 1])
        diagonal_first = a[0] is None
        best = min(
            ((abs(x - y), x + y) if diagonal_first else (x + y, abs(x - y))) + (x, y)
            for x in range(len(a))
            for y in range(len(b))
            if a[x] is not None and a[x] == b[y] and lcs[x + 1][y + 1] + 1 == lcs[0][0]
        )
        return best[2], best[3]

    def far(i: int, j: int) -> tuple[int, int] | None:
        """The nearest place where the lists agree again, from the text indexes: entries the
        CSV lacks (row i's text further on) or rows without an entry (entry j's text further
        on), as (rows skipped, entries skipped)."""
        found: list[tuple[int, int]] = []
        for key, at, lo, entries_side in (
            (rows[i], record_at, j, True),
            (records[j], row_at, i, False),
        ):
            positions = at.get(key, []) if key is not None else []
            first = bisect.bisect_left(positions, lo)
            for pos in positions[first : first + ALIGN_TRIES]:
                skip = (0, pos - j) if entries_side else (pos - i, 0)
                # the further the jump, the more places a chance agreement could come from
                need = ALIGN_FAR_EVIDENCE + math.log10(sum(skip))
                if agrees(i + skip[0], j + skip[1], need):
                    found.append(skip)
                    break
        return min(found, key=sum) if found else None

    pairs: list[tuple[int, int]] = []
    together: list[tuple[int, int]] = []
    i = j = 0
    while i < n and j < m:
        if rows[i] is not None and rows[i] == records[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
            continue
        first = near(i, j)
        if first is None or not agrees(i + first[0], j + first[1], ALIGN_NEAR_EVIDENCE):
            first = far(i, j) or first or (1, 1)
        a, b = first
        together.extend(zip(range(i, i + a), range(j, j + b), strict=False))
        i, j = i + a, j + b
    return pairs, together


def _eligible(row: dict[str, Any], column: str) -> bool:
    """Whether a CSV row has a RadGraph-XL entry for ``column`` (a section of 2+ words)."""
    return bool(row[column]) and len(row[column].split()) >= 2


def _radgraph_record(element: Any) -> dict[str, Any] | None:
    """The record of a RadGraph element (``{"0": record}`` or the record itself), or None."""
    record = element.get("0", element) if isinstance(element, dict) else None
    return record if isinstance(record, dict) else None


def _radgraph_text(element: Any) -> str | None:
    """The whitespace-free text of a RadGraph element, or None when it is malformed."""
    record = _radgraph_record(element)
    if record is None or not isinstance(record.get("text"), str):
        return None
    return _WS.sub("", record["text"])


def align_tokens(tokens: list[str], text: str, start: int = 0) -> list[tuple[int, int] | None]:
    """Character span of each token in ``text``, searched in order from ``start``.

    A token is placed at its next occurrence when only whitespace, or at most a short stretch of
    other text (a de-identification surrogate), lies between it and the previous token; else it
    is None (it was replaced or is missing)."""
    spans: list[tuple[int, int] | None] = []
    cursor = start
    for tok in tokens:
        pos = text.find(tok, cursor)
        if pos < 0:
            spans.append(None)
            continue
        gap = text[cursor:pos]
        if gap.strip() and len(gap) > MAX_ALIGN_GAP:
            spans.append(None)
            continue
        spans.append((pos, pos + len(tok)))
        cursor = pos + len(tok)
    return spans


def section_start(text: str, section: str, section_text: str | None) -> int:
    """Where ``section_text`` (the ``section`` of the report) starts in ``text``: searched after
    the section's heading (``FINDINGS:``...), the first occurrence only when there is no heading."""
    headings = list(re.finditer(rf"\b{re.escape(section)}\s*:", text, re.IGNORECASE))
    for m in headings:
        pos = text.find(section_text, m.end()) if section_text else -1
        if pos >= 0:
            return pos
    if headings:
        return headings[0].end()
    pos = text.find(section_text) if section_text else -1
    return max(pos, 0)


def parse_radgraph_label(label: str) -> tuple[str | None, str | None]:
    """(entity type, certainty) from an XL label (``Observation::measurement::definitely present``)
    or a v1 label (``OBS-DP``)."""
    if "::" in label:
        parts = label.split("::")
        return parts[0] or None, parts[-1] or None
    prefix, _, suffix = label.partition("-")
    return _V1_TYPES.get(prefix), _V1_CERTAINTY.get(suffix)


def term_modifiers(kind: str | None, certainty: str | None) -> str | None:
    """OMOP ``term_modifiers`` of an entity (type, negation, uncertainty), or None without a
    certainty."""
    if certainty is None:
        return None
    negated = certainty == "definitely absent"
    uncertain = certainty == "uncertain"
    return (
        f"Type={kind or 'unknown'}, Negation={str(negated).lower()}, "
        f"Uncertain={str(uncertain).lower()}"
    )
