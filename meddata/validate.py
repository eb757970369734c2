"""``validate``: prove a published dataset is whole and follows SPEC.md — manifest, layout,
checksums, row counts, schemas, keys and ids, tensor cells, task columns, split sets and the
quarantine report. Problems name tables, files, columns and counts, never cell values."""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fsspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meddata import storage
from meddata.dataset import Dataset, check_relative
from meddata.demographics import AGE_GROUP_LABELS, LABEL_VALUES
from meddata.errors import MeddataError
from meddata.home import locate
from meddata.manifest import read_manifest, schema_problems
from meddata.schema import TableSchema, resolve_ref
from meddata.tensor import CODECS

#: SPEC §1: ``tables/<table>/part-NNNNN.parquet``.
_SHARD_PATH = re.compile(r"^tables/(?P<table>[^/]+)/part-(?P<n>[0-9]{5,})\.parquet$")
#: SPEC §9: the fields of a quarantine entry, all strings.
_QUARANTINE_FIELDS = ("error", "item", "reason", "unit")
_QUARANTINE_DIR = "quarantine"
#: Shards checked at once (checksums, footers, tensor cells).
_THREADS = min(8, max(2, os.cpu_count() or 1))
#: About how many bytes of tensor data are read per batch to count their lengths.
_LENGTH_BATCH_BYTES = 4 << 20
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass
class ValidationReport:
    """Problems found (empty when the dataset is valid) and what was checked."""

    path: str
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)
    #: Footers of the shards that passed their checksum, read once for every later check.
    _footers: dict[str, pq.FileMetaData] = field(default_factory=dict, repr=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "ok": self.ok,
            "problems": self.problems,
            "checked": self.checked,
        }

    def count(self, what: str, n: int = 1) -> None:
        self.checked[what] = self.checked.get(what, 0) + n


def validate(target: str, version: str | None = None) -> ValidationReport:
    """Check the dataset at ``target`` (path, URL or name) and report every problem found."""
    fs, root = locate(target, version)
    report = ValidationReport(storage.url_of(fs, root))
    try:
        manifest = read_manifest(fs, root, check_schema=False)  # every problem is listed below
    except MeddataError as exc:
        report.problems.append(str(exc))
        return report
    report.problems += schema_problems(manifest)
    if report.problems:  # the manifest's structure is broken: nothing below can be trusted
        return report
    intact: dict[str, TableSchema] = {}
    for table, entry in manifest.get("tables", {}).items():
        try:
            schema = resolve_ref(entry["schema"])
        except MeddataError as exc:
            report.problems.append(f"table {table}: {exc}")
            continue
        named_right = _check_table_name(table, schema, report)
        if _check_shards(fs, root, table, entry, schema, report, layout=named_right):
            if named_right:
                intact[table] = schema
    unreadable: set[str] = set()
    for extra in ("splits", "quarantine", "datasheet"):
        unreadable |= _check_side_files(fs, root, manifest, extra, report)
    _check_unlisted_files(fs, root, manifest, report)
    try:
        ds = Dataset(fs, root, manifest)
    except MeddataError:
        return report  # already reported above (e.g. a path outside the dataset)
    if intact:
        _check_keys(ds, intact, report)
        _guarded("tensor cells", report, lambda: _check_tensors(ds, intact, report))
    if "samples" in intact:
        _guarded("task columns of table samples", report, lambda: _check_tasks(ds, report))
    _guarded("split sets", report, lambda: _check_split_sets(ds, intact, unreadable, report))
    if not any(p.startswith("datasheet") for p in report.problems):
        _check_datasheet(ds, report)
    return report


def _guarded(what: str, report: ValidationReport, check: Callable[[], None]) -> None:
    """Run ``check``; a failure to read is one line (its type only: the text may quote
    values), never a crash."""
    try:
        check()
    except Exception as exc:
        report.problems.append(f"the {what} could not be checked ({type(exc).__name__})")


def _check_table_name(table: str, schema: TableSchema, report: ValidationReport) -> bool:
    """A table is the one its schema describes: readers find ``image`` under ``image``."""
    if table == schema.name:
        return True
    report.problems.append(
        f"table {table}: its schema {schema.ref} is that of table {schema.name} "
        f"(a table's name in the manifest is its schema's table name)"
    )
    return False


def _check_shards(
    fs: fsspec.AbstractFileSystem,
    root: str,
    table: str,
    entry: dict[str, Any],
    schema: TableSchema,
    report: ValidationReport,
    *,
    layout: bool = True,
) -> bool:
    ok = True
    total = 0
    shards = entry.get("shards", [])
    if not shards:
        report.problems.append(
            f"table {table} has no shards (SPEC §1: even an empty table has "
            f"tables/{table}/part-00000.parquet)"
        )
        ok = False
    elif layout:
        _check_layout(table, shards, report)
    inside = [shard for shard in shards if _inside(shard["path"], f"table {table}", report)]
    ok = ok and len(inside) == len(shards)
    # Checksums and footers are read a few shards at a time (hashing and Parquet release the
    # GIL; object stores answer several requests at once); problems are listed in shard order.
    facts = _in_threads(lambda shard: _read_shard(fs, root, table, shard), inside)
    extra_types: dict[str, tuple[str, pa.DataType]] = {}  # column → (first shard, its type)
    for shard, fact in zip(inside, facts, strict=True):
        report.count("shards")
        report.problems += fact.problems
        ok = ok and not fact.problems
        if fact.footer is None:
            continue
        rel = shard["path"]
        arrow_schema = fact.footer.schema.to_arrow_schema()
        found = [f"shard {rel}: {p}" for p in schema.check(arrow_schema)]
        found += _extra_type_conflicts(table, rel, arrow_schema, schema, extra_types)
        report.problems += found
        ok = ok and not found
        rows = fact.footer.num_rows
        if rows != shard["rows"]:
            report.problems.append(
                f"table {table}: shard {rel} holds {rows} rows, manifest says {shard['rows']}"
            )
            ok = False
        total += rows
        report._footers[storage.join(root, rel)] = fact.footer
    if ok and total != entry.get("rows"):
        report.problems.append(
            f"table {table}: {total} rows in shards, manifest says {entry.get('rows')}"
        )
        ok = False
    size_sum = sum(int(shard["bytes"]) for shard in shards)
    if size_sum != entry.get("bytes"):
        report.problems.append(
            f"table {table}: its shards hold {size_sum} bytes, manifest says {entry.get('bytes')}"
        )
    report.count("rows", total)
    return ok


@dataclass
class _ShardFacts:
    problems: list[str]
    footer: pq.FileMetaData | None  # None when the shard is missing, corrupted or unreadable


def _read_shard(
    fs: fsspec.AbstractFileSystem, root: str, table: str, shard: dict[str, Any]
) -> _ShardFacts:
    """One shard's presence, size, SHA-256 and, when those hold, its Parquet footer."""
    rel = shard["path"]
    path = storage.join(root, rel)
    if not fs.exists(path):
        return _ShardFacts([f"table {table}: shard {rel} is missing"], None)
    if fs.isdir(path):
        return _ShardFacts([f"table {table}: shard {rel} is a folder, not a file"], None)
    problems = []
    size = fs.size(path)
    if size != shard["bytes"]:
        problems.append(
            f"table {table}: shard {rel} has {size} bytes, manifest says {shard['bytes']}"
        )
    if storage.sha256_file(fs, path) != shard["sha256"]:
        problems.append(f"table {table}: shard {rel} fails its SHA-256 checksum (corrupted)")
        return _ShardFacts(problems, None)
    try:
        with fs.open(path, "rb") as fh:
            footer = pq.ParquetFile(fh).metadata
    except Exception as exc:  # a checksum that matches a file that is not Parquet
        problems.append(
            f"table {table}: shard {rel} is not a readable Parquet file ({type(exc).__name__})"
        )
        return _ShardFacts(problems, None)
    return _ShardFacts(problems, footer)


def _in_threads(work: Callable[[_T], _R], items: list[_T]) -> list[_R]:
    """``[work(item) for item in items]``, a few items at a time, results in order."""
    if len(items) < 2:
        return [work(item) for item in items]
    with ThreadPoolExecutor(min(len(items), _THREADS)) as pool:
        return list(pool.map(work, items))


def _check_layout(table: str, shards: list[dict[str, Any]], report: ValidationReport) -> None:
    """SPEC §1: ``tables/<table>/part-NNNNN.parquet``, numbered from 00000 without gaps."""
    numbers: list[int] = []
    for shard in shards:
        rel = shard["path"]
        match = _SHARD_PATH.match(rel)
        if match is None or match["table"] != table or f"{int(match['n']):05d}" != match["n"]:
            report.problems.append(
                f"table {table}: shard {rel} is not named tables/{table}/part-NNNNN.parquet "
                "(SPEC §1)"
            )
            continue
        numbers.append(int(match["n"]))
    repeated = {n: k for n, k in Counter(numbers).items() if k > 1}
    for n, k in sorted(repeated.items()):
        report.problems.append(
            f"table {table}: shard tables/{table}/part-{n:05d}.parquet is listed {k} times"
        )
    if len(numbers) == len(shards) and not repeated:
        missing = sorted(set(range(len(shards))) - set(numbers))
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            report.problems.append(
                f"table {table}: its shards are not numbered from part-00000 without gaps "
                f"(no part-{missing[0]:05d}.parquet{more}; SPEC §1)"
            )


def _extra_type_conflicts(
    table: str,
    rel: str,
    arrow_schema: pa.Schema,
    schema: TableSchema,
    seen: dict[str, tuple[str, pa.DataType]],
) -> list[str]:
    """Extra columns (not in the schema) may appear in some shards only, but one column has one
    type in every shard: otherwise the shards cannot be read as one table."""
    problems = []
    for f in arrow_schema:
        if schema.column(f.name) is not None:
            continue  # the schema's columns are checked against the schema
        first = seen.setdefault(f.name, (rel, f.type))
        if first[1] != f.type:
            problems.append(
                f"table {table}: shard {rel}: column {f.name!r} has type {f.type}, but "
                f"{first[1]} in shard {first[0]} (one column has one type in every shard)"
            )
    return problems


def _check_side_files(
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
        if not _inside(rel, label, report):
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


def _check_unlisted_files(
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


def _check_split_sets(
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


def _check_datasheet(ds: Dataset, report: ValidationReport) -> None:
    """The stored Healthsheet must load (the checksum proves only that it was not changed)."""
    if not ds.manifest.get("datasheet"):
        return
    try:
        ds.datasheet  # noqa: B018 - loading is the check
    except MeddataError as exc:
        report.problems.append(f"datasheet: {exc.message}")


def _inside(rel: str, label: str, report: ValidationReport) -> bool:
    try:
        check_relative(rel)
    except MeddataError as exc:
        report.problems.append(f"{label}: {exc.message}")
        return False
    return True


def _check_keys(ds: Dataset, intact: dict[str, TableSchema], report: ValidationReport) -> None:
    for table, schema in intact.items():
        try:
            _check_table_keys(ds, table, schema, intact, report)
        except Exception as exc:  # a shard polars cannot read as declared: report, don't crash
            report.problems.append(  # (the exception's text may quote values: only its type)
                f"table {table}: its shards could not be read as one table "
                f"({type(exc).__name__}), so its keys and ids were not checked"
            )


def _check_table_keys(
    ds: Dataset,
    table: str,
    schema: TableSchema,
    intact: dict[str, TableSchema],
    report: ValidationReport,
) -> None:
    """Primary key unique; non-null columns without nulls; ids (the primary key and foreign
    keys) positive (SPEC §7); foreign keys with a row in the table they name."""
    frame = ds.table(table)
    names = set(frame.collect_schema().names())
    pk = schema.primary_key
    non_null = [
        c.name
        for c in schema.columns
        if not c.nullable and c.type != "tensor" and c.name in names  # tensors: _check_tensors
    ]
    ids = [c for c in dict.fromkeys([pk, *schema.foreign_keys()]) if c and c in names]
    if non_null or ids:
        counts = (
            frame.select(
                *[pl.col(c).null_count().alias(f"null {c}") for c in non_null],
                *[(pl.col(c) < 1).sum().alias(f"low {c}") for c in ids],
            )
            .collect()
            .row(0, named=True)
        )
        for c in non_null:
            if not counts[f"null {c}"]:
                continue
            if c == pk:
                report.problems.append(
                    f"table {table}: {counts[f'null {c}']} null primary key(s) in {pk}"
                )
            else:
                report.problems.append(
                    f"table {table}: {counts[f'null {c}']} null value(s) in column {c}, "
                    "which must not be null"
                )
        for c in ids:
            if counts[f"low {c}"]:
                report.problems.append(
                    f"table {table}: {counts[f'low {c}']} value(s) of {c} are not positive "
                    "(SPEC §7: ids are positive int64)"
                )
    if pk and pk in names:
        dupes = frame.group_by(pk).len().filter(pl.col("len") > 1).select(pl.len()).collect().item()
        if dupes:
            report.problems.append(f"table {table}: {dupes} duplicate value(s) of primary key {pk}")
    for col, (ref_table, ref_col) in schema.foreign_keys().items():
        if ref_table not in intact or col not in names:
            continue
        dangling = (
            frame.select(pl.col(col))
            .drop_nulls()
            .unique()
            .join(ds.table(ref_table).select(pl.col(ref_col).alias(col)), on=col, how="anti")
            .select(pl.len())
            .collect()
            .item()
        )
        report.count("foreign_keys")
        if dangling:
            report.problems.append(
                f"table {table}: {dangling} value(s) of {col} have no row in {ref_table}.{ref_col} (dangling reference)"
            )


def _check_tensors(ds: Dataset, intact: dict[str, TableSchema], report: ValidationReport) -> None:
    """Every tensor cell's header (SPEC §6) — codec, dtype and shape — and, for ``raw`` cells,
    that the bytes are as many as dtype × shape. Nothing is decoded."""
    for table, schema in intact.items():
        columns = [c for c in schema.columns if c.type == "tensor"]
        if not columns:
            continue
        shards = [shard["path"] for shard in ds.manifest["tables"][table]["shards"]]

        def check(rel: str, columns: list[Any] = columns) -> tuple[list[str], int]:
            path = storage.join(ds.root, rel)
            with ds.fs.open(path, "rb") as fh:
                parquet = pq.ParquetFile(fh, metadata=report._footers.get(path))
                problems = []
                for column in columns:
                    if parquet.schema_arrow.get_field_index(column.name) < 0:
                        continue  # an optional tensor column this shard lacks
                    problems += _tensor_problems(parquet, column.name, column.nullable)
                checked = sum(
                    parquet.metadata.num_rows
                    for c in columns
                    if parquet.schema_arrow.get_field_index(c.name) >= 0
                )
                return problems, checked

        for rel, (problems, checked) in zip(shards, _in_threads(check, shards), strict=True):
            report.problems += [f"table {table}: shard {rel}: {p}" for p in problems]
            report.count("tensor_cells", checked)


def _itemsize(dtype: str) -> int | None:
    """The item size of a NumPy dtype name without byte order (``uint8``, ``u2``), else None.
    Object and size-less dtypes (``O``, ``S``) are refused too: no array of them has bytes."""
    if not dtype or any(ch in dtype for ch in "<>=|"):
        return None
    try:
        parsed = np.dtype(dtype)
    except Exception:  # numpy raises TypeError, ValueError or SyntaxError on odd names
        return None
    return parsed.itemsize if parsed.kind != "O" and parsed.itemsize else None


def _tensor_problems(parquet: pq.ParquetFile, column: str, nullable: bool) -> list[str]:
    heads = parquet.read(columns=[f"{column}.codec", f"{column}.dtype", f"{column}.shape"]).column(
        column
    )
    cells = heads.combine_chunks() if heads.num_chunks != 1 else heads.chunk(0)
    frame = pl.from_arrow(
        pa.table(
            {
                "valid": pc.is_valid(cells),
                "codec": cells.field("codec"),
                "dtype": cells.field("dtype"),
                "shape": cells.field("shape"),
            }
        )
    )
    assert isinstance(frame, pl.DataFrame)
    problems = []
    if not nullable and cells.null_count:
        problems.append(
            f"column {column}: {cells.null_count} null tensor cell(s), which must not be null"
        )
    sizes = {d: _itemsize(d) for d in frame.get_column("dtype").drop_nulls().unique().to_list()}
    frame = frame.with_columns(
        pl.col("dtype").replace_strict(sizes, default=None, return_dtype=pl.Int64).alias("item"),
        (
            pl.col("shape").is_null()
            | (pl.col("shape").list.drop_nulls().list.len() != pl.col("shape").list.len())
            | (pl.col("shape").list.min() < 0).fill_null(False)
        ).alias("bad_shape"),
    )
    valid = pl.col("valid")  # a null cell's fields mean nothing
    raw = valid & (pl.col("codec") == "raw") & pl.col("item").is_not_null() & ~pl.col("bad_shape")
    counts = frame.select(
        (valid & (~pl.col("codec").is_in(CODECS)).fill_null(True)).sum().alias("codec"),
        (valid & pl.col("item").is_null()).sum().alias("dtype"),
        (valid & pl.col("bad_shape")).sum().alias("shape"),
        raw.fill_null(False).sum().alias("raw"),
    ).row(0, named=True)
    if counts["codec"]:
        problems.append(
            f"column {column}: {counts['codec']} tensor cell(s) have an unknown codec "
            f"(SPEC §6: {', '.join(CODECS)})"
        )
    if counts["dtype"]:
        problems.append(
            f"column {column}: {counts['dtype']} tensor cell(s) have a dtype that is not a "
            "NumPy dtype name without byte order (SPEC §6)"
        )
    if counts["shape"]:
        problems.append(
            f"column {column}: {counts['shape']} tensor cell(s) have a shape with a null or "
            "negative size"
        )
    if counts["raw"]:
        expected = pl.col("shape").list.eval(
            pl.element().cast(pl.Int64).product()
        ).list.first() * pl.col("item")
        wrong = (
            frame.with_columns(pl.Series("nbytes", _data_lengths(parquet, column)))
            .select((raw & (expected != pl.col("nbytes"))).fill_null(False).sum())
            .item()
        )
        if wrong:
            problems.append(
                f"column {column}: {wrong} raw tensor cell(s) hold a different number of "
                "bytes than their dtype and shape describe (SPEC §6)"
            )
    return problems


def _data_lengths(parquet: pq.ParquetFile, column: str) -> np.ndarray:
    """The byte length of every cell's ``data``, read a few MiB at a time (whole row groups of
    large images are several times slower: every batch's fresh buffers are page-faulted in)."""
    groups = [parquet.metadata.row_group(i) for i in range(parquet.metadata.num_row_groups)]
    widest = max((g.total_byte_size / max(1, g.num_rows) for g in groups), default=1.0)
    rows = max(1, int(_LENGTH_BATCH_BYTES // max(1.0, widest)))
    parts = [
        pc.binary_length(batch.column(0).field("data")).to_numpy(zero_copy_only=False)
        for batch in parquet.iter_batches(batch_size=rows, columns=[f"{column}.data"])
    ]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _check_tasks(ds: Dataset, report: ValidationReport) -> None:
    """SPEC §5.3: every task label is a float32 ``label_<name>`` column of samples holding
    1, 0, -1 or null; the sensitive attributes are samples columns; age groups are SPEC's."""
    tasks = ds.manifest.get("tasks") or {}
    labels = [str(n) for n in tasks.get("labels") or []]
    frame = ds.table("samples")
    columns = frame.collect_schema()
    for name in labels:
        if f"label_{name}" not in columns:
            report.problems.append(
                f"manifest tasks.labels: table samples has no column {f'label_{name}'!r}"
            )
    for name in tasks.get("sensitive_attributes") or []:
        if str(name) not in columns:
            report.problems.append(
                f"manifest tasks.sensitive_attributes: table samples has no column {str(name)!r}"
            )
    present = [f"label_{n}" for n in labels if f"label_{n}" in columns]
    for shard in ds.manifest["tables"]["samples"]["shards"]:
        with ds.fs.open(storage.join(ds.root, shard["path"]), "rb") as fh:
            arrow_schema = pq.ParquetFile(fh).schema_arrow
        for c in present:
            idx = arrow_schema.get_field_index(c)
            if idx >= 0 and arrow_schema.field(idx).type != pa.float32():
                report.problems.append(
                    f"table samples: shard {shard['path']}: column {c!r} has type "
                    f"{arrow_schema.field(idx).type}, SPEC §5.3 says float32"
                )
    checks = [
        (pl.col(c).is_not_null() & ~pl.col(c).is_in(LABEL_VALUES).fill_null(False)).sum().alias(c)
        for c in present
        if columns[c].is_numeric()
    ]
    if "age_group" in columns and columns["age_group"] == pl.String:
        checks.append(
            (pl.col("age_group").is_not_null() & ~pl.col("age_group").is_in(AGE_GROUP_LABELS))
            .sum()
            .alias("age_group")
        )
    if not checks:
        return
    counts = frame.select(checks).collect().row(0, named=True)
    for c, n in counts.items():
        if not n:
            continue
        if c == "age_group":
            report.problems.append(
                f"table samples: {n} value(s) of age_group are not an age group of SPEC §5.3 "
                f"({', '.join(AGE_GROUP_LABELS)})"
            )
        else:
            report.problems.append(
                f"table samples: {n} value(s) of {c!r} are not a label value "
                "(SPEC §5.3: 1, 0, -1 or null)"
            )
