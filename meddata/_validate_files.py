"""``meddata validate``, side files: split sets, the quarantine report, the datasheet and
files no manifest lists."""

from __future__ import annotations

import io
import json
from typing import Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from meddata import storage
from meddata._validation import ValidationReport, inside
from meddata.dataset import Dataset
from meddata.errors import MeddataError
from meddata.schema import TableSchema

#: SPEC §9: the fields of a quarantine entry, all strings.
_QUARANTINE_FIELDS = ("error", "item", "reason", "unit")


_QUARANTINE_DIR = "quarantine"


def check_side_files(
    fs: fsspec.AbstractFileSystem,
    root: str,
    manifest: dict[str, Any],
    kind: str,
    report: ValidationReport,
) -> set[str]:
    """Checksums (and split file names) of split sets, the quarantine report and the datasheet
    files; returns the labels of those whose file is missing or damaged."""
    items: list[tuple[str, dict[str, Any]]]
    if kind == "splits":
        items = [(f"split {n}", s) for n, s in (manifest.get("splits") or {}).items()]
    elif kind == "datasheet":
        hashes = (manifest.get("datasheet") or {}).get("sha256") or {}
        items = [(f"datasheet file {rel}", {"path": rel, "sha256": h}) for rel, h in hashes.items()]
    else:
        items = [("quarantine report", manifest.get("quarantine") or {})]
    bad: set[str] = set()
    for label, info in items:
        rel = info.get("path")
        if kind == "quarantine":
            count = int(info.get("count", 0))
            if not rel and count:
                report.problems.append(
                    f"quarantine report: the manifest counts {count} skipped input(s) but "
                    "names no report file (quarantine.path is null)"
                )
        if not rel:
            continue
        if not inside(rel, label, report):
            bad.add(label)
            continue
        if kind == "splits":
            expected = f"splits/{label[len('split ') :]}-{str(info.get('sha256'))[:12]}.parquet"
            if rel != expected:
                report.problems.append(
                    f"{label}: file {rel} is not named {expected} (SPEC §8: "
                    "splits/<set>-<first 12 hex digits of its SHA-256>.parquet)"
                )
        path = storage.join(root, rel)
        if not fs.exists(path) or fs.isdir(path):
            report.problems.append(f"{label}: file {rel} is missing")
            bad.add(label)
        elif info.get("sha256") and storage.sha256_file(fs, path) != info["sha256"]:
            report.problems.append(f"{label}: file {rel} fails its SHA-256 checksum")
            bad.add(label)
        elif kind == "quarantine":
            _check_quarantine_report(fs.cat_file(path), int(info.get("count", 0)), report)
    return bad


def check_unlisted_files(
    fs: fsspec.AbstractFileSystem, root: str, manifest: dict[str, Any], report: ValidationReport
) -> None:
    """Files under ``tables/`` the manifest does not list: a Parquet reader without meddata
    that globs a table's folder would read them. Likewise a quarantine report the manifest
    does not name. (A ``_staging/`` folder is not a problem: it is an unfinished --overwrite,
    and the published version is still whole; nor is a split file no manifest names: an
    amendment interrupted before its manifest was published leaves one, and readers only
    open the files the manifest names.)"""
    listed = {
        storage.join(root, shard["path"])
        for entry in (manifest.get("tables") or {}).values()
        for shard in entry.get("shards", [])
        if isinstance(shard, dict) and "path" in shard
    }
    quarantine = manifest.get("quarantine") or {}
    if quarantine.get("path"):
        listed.add(storage.join(root, str(quarantine["path"])))
    for folder in ("tables", _QUARANTINE_DIR):
        where = storage.join(root, folder)
        found = fs.find(where) if fs.isdir(where) else []
        for path in sorted(found):
            if path in listed:
                continue
            rel = path[len(root) :].lstrip("/")
            if folder == "tables":
                report.problems.append(
                    f"{rel} is not in the manifest: remove it (readers may pick it up)"
                )
            else:
                report.problems.append(
                    f"{rel} is not in the manifest: its quarantine entry names "
                    f"{quarantine.get('path') or 'no report'} and counts "
                    f"{quarantine.get('count', 0)} skipped input(s)"
                )


def _check_quarantine_report(data: bytes, count: int, report: ValidationReport) -> None:
    """One JSON object per line with exactly the SPEC's fields, all strings (SPEC §9), as many
    lines as the manifest counts. Problems name line numbers, never the entries' contents."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    not_entries: list[int] = []
    not_strings: list[int] = []
    extra_fields: list[int] = []
    for n, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or not set(_QUARANTINE_FIELDS) <= set(entry):
            not_entries.append(n)
            continue
        if not all(isinstance(entry[k], str) for k in _QUARANTINE_FIELDS):
            not_strings.append(n)
        if set(entry) - set(_QUARANTINE_FIELDS):
            extra_fields.append(n)
    fields = ", ".join(_QUARANTINE_FIELDS)
    for lines_found, what in (
        (not_entries, f"is not an entry with fields {fields}"),
        (not_strings, f"has fields that are not strings (SPEC §9: {fields} are strings)"),
        (extra_fields, f"has fields other than {fields} (SPEC §9)"),
    ):
        if lines_found:
            more = f" ({len(lines_found)} lines in all)" if len(lines_found) > 1 else ""
            report.problems.append(f"quarantine report: line {lines_found[0]} {what}{more}")
    if len(lines) != count:
        report.problems.append(f"quarantine report: {len(lines)} entries, manifest counts {count}")


def _split_string(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t))


def check_split_sets(
    ds: Dataset, intact: dict[str, TableSchema], unreadable: set[str], report: ValidationReport
) -> None:
    """Each split set's file (SPEC §8): person_id (int64) → split (a string), one row per
    person of ``samples``, no person in two splits, only persons of the person table, and only
    the splits its report describes."""
    persons = ds.table("person").select("person_id") if "person" in intact else None
    sampled = ds.table("samples").select("person_id").unique() if "samples" in intact else None
    for name, info in ds.splits.items():
        label = f"split {name}"
        if info.get("path") is None or label in unreadable:
            continue
        try:
            table = pq.read_table(io.BytesIO(ds.fs.cat_file(storage.join(ds.root, info["path"]))))
        except Exception as exc:  # not Parquet at all
            report.problems.append(
                f"{label}: file cannot be read as Parquet ({type(exc).__name__})"
            )
            continue
        report.count("split_sets")
        if not {"person_id", "split"} <= set(table.column_names):
            report.problems.append(
                f"{label}: needs columns person_id and split, has {table.column_names}"
            )
            continue
        pid_type, split_type = (
            table.schema.field("person_id").type,
            table.schema.field("split").type,
        )
        if pid_type != pa.int64():
            report.problems.append(f"{label}: column person_id is {pid_type}, SPEC §8 says int64")
        if not _split_string(split_type):
            report.problems.append(
                f"{label}: column split is {split_type}, SPEC §8 says a UTF-8 string"
            )
        if pid_type != pa.int64() or not _split_string(split_type):
            continue
        frame = pl.from_arrow(table.select(["person_id", "split"]))
        assert isinstance(frame, pl.DataFrame)
        frame = frame.with_columns(pl.col("split").cast(pl.String))
        _check_split_rows(label, frame, report)
        known = frame.lazy().select("person_id").drop_nulls().unique()
        if persons is not None:
            unknown = _count(known.join(persons, on="person_id", how="anti"))
            if unknown:
                report.problems.append(f"{label}: {unknown} person_id(s) are not in table person")
        if sampled is not None:
            missing = _count(sampled.join(known, on="person_id", how="anti"))
            if missing:
                report.problems.append(
                    f"{label}: {missing} person(s) of table samples have no row "
                    "(SPEC §8: one row per person)"
                )
        described = (info.get("report") or {}).get("splits")
        if isinstance(described, dict) and described:
            others = frame.select(
                (pl.col("split").is_not_null() & ~pl.col("split").is_in(list(described))).sum()
            ).item()
            if others:
                report.problems.append(
                    f"{label}: {others} row(s) have a split its report does not describe "
                    f"(it describes {', '.join(map(str, described))})"
                )


def _check_split_rows(label: str, frame: pl.DataFrame, report: ValidationReport) -> None:
    nulls = frame.null_count().row(0, named=True)
    for column in ("person_id", "split"):
        if nulls[column]:
            report.problems.append(f"{label}: {nulls[column]} row(s) with a null {column}")
    rows = frame.drop_nulls()
    pairs = rows.unique()
    repeated = rows.height - pairs.height
    if repeated:
        report.problems.append(
            f"{label}: {repeated} row(s) repeat a person in the same split (duplicates; "
            "SPEC §8: one row per person)"
        )
    leaked = pairs.group_by("person_id").len().filter(pl.col("len") > 1).height
    if leaked:
        report.problems.append(
            f"{label}: {leaked} person(s) appear in more than one split (leakage)"
        )


def _count(frame: pl.LazyFrame) -> int:
    return int(frame.select(pl.len()).collect().item())


def check_datasheet(ds: Dataset, report: ValidationReport) -> None:
    """The stored Healthsheet must load (the checksum proves only that it was not changed)."""
    if not ds.manifest.get("datasheet"):
        return
    try:
        ds.datasheet  # noqa: B018 - loading is the check
    except MeddataError as exc:
        report.problems.append(f"datasheet: {exc.message}")
