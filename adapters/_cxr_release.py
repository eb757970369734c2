"""What the chest X-ray release adapters (``chexpert-plus``, ``mimic-cxr-jpg``) share in reading
their CSV tables: the 14 labels and OMOP concepts both use, reading a table with its
``SourceError`` texts (``read_table``, ``check_columns``), the split values (``normalise_split``
and the quarantine texts about them) and the typed output tables (``typed_table``)."""

from __future__ import annotations

import csv
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

import pyarrow as pa

from meddata.errors import SourceError
from meddata.schema import get_schema

T = TypeVar("T")

# The 14 CheXpert labels (CheXbert in CheXpert Plus; CheXpert and NegBio in MIMIC-CXR-JPG).
LABELS = (
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
    "No Finding",
)
# OMOP concepts used (standard, documented in the OMOP CDM 5.4 field notes).
EHR_TYPE_CONCEPT = 32817
UTF8_CONCEPT = 32678
ENGLISH_CONCEPT = 4180186
# Extension columns of samples (always present, one type in every shard).
SAMPLES_EXTRA = {
    "view_position": pa.string(),
    "study_order": pa.int32(),
    **{f"label_{n}": pa.float32() for n in LABELS},
}
Issues = list[tuple[str, str]]


def read_table(
    path: Path, parse: Callable[[Iterator[list[str]]], T], redownload: str, issues: Issues
) -> T:
    """``parse`` applied to a ``csv.reader`` over a release table (gzipped when its name ends in
    ``.gz``; UTF-8, a byte-order mark dropped, bad bytes replaced with U+FFFD). A table that
    cannot be read to its end (truncated or damaged ``.gz``, a quote that never closes, an
    unreadable file) is a ``SourceError`` naming it, ``redownload`` its hint where a new copy
    helps; a plain table without a final line break is reported in ``issues``."""
    name = path.name
    reader: Any = None
    try:
        with _open(path) as fh:
            reader = csv.reader(fh)
            out = parse(reader)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        why = (
            "it ends before its compressed data does"
            if isinstance(exc, EOFError)
            else "its compressed data is damaged"
            if isinstance(exc, zlib.error)
            else "it is not gzip data, or fails its checksum"
        )
        raise SourceError(
            f"{name} is truncated or corrupt ({why}); meddata cannot tell which rows are missing.",
            redownload,
        ) from exc
    except csv.Error as exc:
        line = reader.line_num if reader is not None else 1
        raise SourceError(
            f"{name} is not valid CSV near line {line} ({type(exc).__name__}: probably a "
            "quote that never closes); the file is damaged or was edited.",
            redownload,
        ) from exc
    except OSError as exc:
        raise SourceError(
            f"{name} could not be read ({type(exc).__name__}).",
            "Check that the file is readable (permissions, a complete download).",
        ) from exc
    if not name.endswith(".gz") and lacks_final_newline(path):
        issues.append(
            (name, "does not end with a line break; it may be truncated (last row suspect)")
        )
    return out


def _open(path: Path) -> IO[str]:
    # utf-8-sig: a byte-order mark would otherwise become part of the first column's name
    if path.name.endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def check_columns(
    name: str,
    header: list[str],
    required: Iterable[str],
    expected: Iterable[str],
    adapter: str,
    hint: str,
    issues: Issues,
) -> None:
    """Check a table's header: a missing ``required`` column is a ``SourceError`` (``hint``
    says what to check); a missing ``expected`` column and an unexpected one (ignored) are
    reported in ``issues``, each once."""
    for col in required:
        if col not in header:
            raise SourceError(f"{name} has no column {col!r}, which {adapter} requires.", hint)
    expected = tuple(expected)
    for col in expected:
        if col not in header:
            issues.append((f"{name}: column {col}", "expected column missing; its values are null"))
    for col in dict.fromkeys(header):
        if expected and col not in expected:
            issues.append((f"{name}: column {col}", "unexpected column ignored"))


def ragged_issue(name: str, line: int, fields: int, expected: int) -> tuple[str, str]:
    """The quarantine entry for a CSV row with a field count other than the header's."""
    return f"{name}: line {line}", f"has {fields} fields, expected {expected}; row skipped"


def lacks_final_newline(path: Path) -> bool:
    """Whether a non-empty text file does not end with a line break (a sign of truncation)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            if fh.tell() == 0:
                return False
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) not in (b"\n", b"\r")
    except OSError:
        return False


# -- splits ---------------------------------------------------------------------------------------
def normalise_split(value: str | None, names: Mapping[str, str]) -> str | None:
    """The release's name for a split value read case-insensitively (``Train`` → ``train``), or
    None when it is blank or not a known split name."""
    return names.get((value or "").strip().lower())


def bad_split_reason(value: str | None, splits: Iterable[str], where: str) -> str:
    """Why a row's split is null: its value (never shown) at ``where`` is blank or unknown."""
    return (
        f"split value {where} is "
        + ("blank" if not value else f"not one of {', '.join(splits)} (not shown)")
        + "; split is null"
    )


def respelled_issues(name: str, counts: Mapping[str, int], names: Mapping[str, str]) -> Issues:
    """One entry per split spelling of table ``name`` read as another (``Valid`` → ``valid``),
    with its row count."""
    return [
        (
            name,
            f"split value {spelling!r} read as {normalise_split(spelling, names)!r} "
            f"({count} row{'s' if count != 1 else ''})",
        )
        for spelling, count in sorted(counts.items())
    ]


def mixed_split_reason(who: str, splits: set[str], order: Iterable[str], name: str) -> str:
    """Why a person (``who``: patient, subject) whose images are in several splits of table
    ``name`` is reported."""
    return (
        f"{who}'s images are in {len(splits)} splits ("
        + ", ".join(s for s in order if s in splits)
        + f") in {name}; kept as published, so the official split holds this person in each "
        "(use a person-grouped split: meddata split)"
    )


# -- output ---------------------------------------------------------------------------------------
def typed_table(
    table: str, rows: list[dict[str, Any]], extra: Mapping[str, pa.DataType]
) -> pa.Table:
    """Build ``table`` from row dicts with the schema's types, and fixed types for the extension
    columns in ``extra`` (always present, so every unit yields the same Arrow schema)."""
    schema = get_schema(table)
    names = dict.fromkeys(k for r in rows for k in r)
    names.update(dict.fromkeys(extra))
    arrays = {}
    for name in names:
        col = schema.column(name)
        typ = col.arrow_type if col is not None else extra.get(name)
        if typ is None and name.startswith("label_"):
            typ = pa.float32()
        arrays[name] = pa.array([r.get(name) for r in rows], type=typ)
    return pa.table(arrays)
