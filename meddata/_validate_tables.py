"""``meddata validate``, tables: shard layout, checksums, footers, row counts, schemas,
keys and ids."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import fsspec
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from meddata import storage
from meddata._validation import ValidationReport, in_threads, inside
from meddata.dataset import Dataset
from meddata.schema import TableSchema

#: SPEC §1: ``tables/<table>/part-NNNNN.parquet``.
_SHARD_PATH = re.compile(r"^tables/(?P<table>[^/]+)/part-(?P<n>[0-9]{5,})\.parquet$")


def check_table_name(table: str, schema: TableSchema, report: ValidationReport) -> bool:
    """A table is the one its schema describes: readers find ``image`` under ``image``."""
    if table == schema.name:
        return True
    report.problems.append(
        f"table {table}: its schema {schema.ref} is that of table {schema.name} "
        f"(a table's name in the manifest is its schema's table name)"
    )
    return False


def check_shards(
    fs: fsspec.AbstractFileSystem,
    root: str,
    table: str,
    entry: dict[str, Any],
    schema: TableSchema,
    report: ValidationReport,
    *,
    layout: bool = True,
) -> bool:
    """A table's shards: layout (when ``layout``), presence, size, SHA-256, Parquet footer,
    schema and row counts; True when every shard can be read as the table's schema."""
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
    listed = [shard for shard in shards if inside(shard["path"], f"table {table}", report)]
    ok = ok and len(listed) == len(shards)
    # Checksums and footers are read a few shards at a time (hashing and Parquet release the
    # GIL; object stores answer several requests at once); problems are listed in shard order.
    facts = in_threads(lambda shard: _read_shard(fs, root, table, shard), listed)
    extra_types: dict[str, tuple[str, pa.DataType]] = {}  # column → (first shard, its type)
    for shard, fact in zip(listed, facts, strict=True):
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
        if any(c.type == "tensor" for c in schema.columns):  # the only footers read again
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


def check_keys(ds: Dataset, intact: dict[str, TableSchema], report: ValidationReport) -> None:
    """Primary keys, non-null columns, ids and references between the intact tables."""
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
        if not c.nullable and c.type != "tensor" and c.name in names  # tensors: check_tensors
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
