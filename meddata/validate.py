"""``validate``: prove a published dataset is whole — manifest, checksums, row counts, schemas,
primary keys and references between tables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fsspec
import polars as pl
import pyarrow.parquet as pq

from meddata import storage
from meddata.dataset import Dataset, check_relative
from meddata.errors import MeddataError
from meddata.home import locate
from meddata.manifest import read_manifest, schema_problems
from meddata.schema import TableSchema, resolve_ref


@dataclass
class ValidationReport:
    """Problems found (empty when the dataset is valid) and what was checked."""

    path: str
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)

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


def validate(target: str, version: str | None = None) -> ValidationReport:
    """Check the dataset at ``target`` (path, URL or name) and report every problem found."""
    fs, root = locate(target, version)
    report = ValidationReport(storage.url_of(fs, root))
    try:
        manifest = read_manifest(fs, root)
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
        if _check_shards(fs, root, table, entry, schema, report):
            intact[table] = schema
    for extra in ("splits", "quarantine", "datasheet"):
        _check_side_files(fs, root, manifest, extra, report)
    if intact:
        try:
            ds = Dataset(fs, root, manifest)
        except MeddataError:
            return report  # already reported above (e.g. a path outside the dataset)
        _check_keys(ds, intact, report)
    return report


def _check_shards(
    fs: fsspec.AbstractFileSystem,
    root: str,
    table: str,
    entry: dict[str, Any],
    schema: TableSchema,
    report: ValidationReport,
) -> bool:
    ok = True
    total = 0
    for shard in entry.get("shards", []):
        rel = shard["path"]
        if not _inside(rel, f"table {table}", report):
            ok = False
            continue
        path = storage.join(root, rel)
        report.checked["shards"] = report.checked.get("shards", 0) + 1
        if not fs.exists(path):
            report.problems.append(f"table {table}: shard {rel} is missing")
            ok = False
            continue
        size = fs.size(path)
        if size != shard["bytes"]:
            report.problems.append(
                f"table {table}: shard {rel} has {size} bytes, manifest says {shard['bytes']}"
            )
            ok = False
        if storage.sha256_file(fs, path) != shard["sha256"]:
            report.problems.append(
                f"table {table}: shard {rel} fails its SHA-256 checksum (corrupted)"
            )
            ok = False
            continue
        with fs.open(path, "rb") as fh:
            meta = pq.ParquetFile(fh)
            rows = meta.metadata.num_rows
            schema_problems_found = [f"shard {rel}: {p}" for p in schema.check(meta.schema_arrow)]
            report.problems += schema_problems_found
            ok = ok and not schema_problems_found
        if rows != shard["rows"]:
            report.problems.append(
                f"table {table}: shard {rel} holds {rows} rows, manifest says {shard['rows']}"
            )
            ok = False
        total += rows
    if ok and total != entry.get("rows"):
        report.problems.append(
            f"table {table}: {total} rows in shards, manifest says {entry.get('rows')}"
        )
        ok = False
    report.checked["rows"] = report.checked.get("rows", 0) + total
    return ok


def _check_side_files(
    fs: fsspec.AbstractFileSystem,
    root: str,
    manifest: dict[str, Any],
    kind: str,
    report: ValidationReport,
) -> None:
    items: list[tuple[str, dict[str, Any]]]
    if kind == "splits":
        items = [(f"split {n}", s) for n, s in (manifest.get("splits") or {}).items()]
    elif kind == "datasheet":
        hashes = (manifest.get("datasheet") or {}).get("sha256") or {}
        items = [(f"datasheet file {rel}", {"path": rel, "sha256": h}) for rel, h in hashes.items()]
    else:
        items = [("quarantine report", manifest.get("quarantine") or {})]
    for label, info in items:
        rel = info.get("path")
        if not rel:
            continue
        if not _inside(rel, label, report):
            continue
        path = storage.join(root, rel)
        if not fs.exists(path):
            report.problems.append(f"{label}: file {rel} is missing")
        elif info.get("sha256") and storage.sha256_file(fs, path) != info["sha256"]:
            report.problems.append(f"{label}: file {rel} fails its SHA-256 checksum")


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
            report.problems.append(
                f"table {table}: keys could not be checked ({type(exc).__name__})"
            )


def _check_table_keys(
    ds: Dataset,
    table: str,
    schema: TableSchema,
    intact: dict[str, TableSchema],
    report: ValidationReport,
) -> None:
    frame = ds.table(table)
    pk = schema.primary_key
    if pk:
        dupes = frame.group_by(pk).len().filter(pl.col("len") > 1).select(pl.len()).collect().item()
        nulls = frame.select(pl.col(pk).null_count()).collect().item()
        if dupes:
            report.problems.append(f"table {table}: {dupes} duplicate value(s) of primary key {pk}")
        if nulls:
            report.problems.append(f"table {table}: {nulls} null primary key(s) in {pk}")
    for col, (ref_table, ref_col) in schema.foreign_keys().items():
        if ref_table not in intact or col not in frame.collect_schema().names():
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
        report.checked["foreign_keys"] = report.checked.get("foreign_keys", 0) + 1
        if dangling:
            report.problems.append(
                f"table {table}: {dangling} value(s) of {col} have no row in {ref_table}.{ref_col} (dangling reference)"
            )
