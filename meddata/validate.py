"""``validate``: prove a published dataset is whole — manifest, checksums, row counts, schemas,
primary keys and references between tables."""

from __future__ import annotations

import io
import json
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
        if _check_shards(fs, root, table, entry, schema, report):
            intact[table] = schema
    for extra in ("splits", "quarantine", "datasheet"):
        _check_side_files(fs, root, manifest, extra, report)
    _check_unlisted_files(fs, root, manifest, report)
    try:
        ds = Dataset(fs, root, manifest)
    except MeddataError:
        return report  # already reported above (e.g. a path outside the dataset)
    if intact:
        _check_keys(ds, intact, report)
    if not any(p.startswith("split ") for p in report.problems):
        _check_split_sets(ds, "person" in intact, report)
    if not any(p.startswith("datasheet") for p in report.problems):
        _check_datasheet(ds, report)
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
        if fs.isdir(path):
            report.problems.append(f"table {table}: shard {rel} is a folder, not a file")
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
    size_sum = sum(int(shard["bytes"]) for shard in entry.get("shards", []))
    if size_sum != entry.get("bytes"):
        report.problems.append(
            f"table {table}: its shards hold {size_sum} bytes, manifest says {entry.get('bytes')}"
        )
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
        if not fs.exists(path) or fs.isdir(path):
            report.problems.append(f"{label}: file {rel} is missing")
        elif info.get("sha256") and storage.sha256_file(fs, path) != info["sha256"]:
            report.problems.append(f"{label}: file {rel} fails its SHA-256 checksum")
        elif kind == "quarantine":
            _check_quarantine_report(fs.cat_file(path), int(info.get("count", 0)), report)


def _check_unlisted_files(
    fs: fsspec.AbstractFileSystem, root: str, manifest: dict[str, Any], report: ValidationReport
) -> None:
    """Files under ``tables/`` the manifest does not list: a Parquet reader without meddata
    that globs a table's folder would read them. (A ``_staging/`` folder is not a problem: it
    is an unfinished --overwrite, and the published version is still whole.)"""
    listed = {
        storage.join(root, shard["path"])
        for entry in (manifest.get("tables") or {}).values()
        for shard in entry.get("shards", [])
        if isinstance(shard, dict) and "path" in shard
    }
    tables_dir = storage.join(root, "tables")
    found = fs.find(tables_dir) if fs.isdir(tables_dir) else []
    for path in sorted(found):
        if path not in listed:
            rel = path[len(root) :].lstrip("/")
            report.problems.append(
                f"{rel} is not in the manifest: remove it (readers may pick it up)"
            )


_QUARANTINE_FIELDS = {"unit", "item", "reason", "error"}


def _check_quarantine_report(data: bytes, count: int, report: ValidationReport) -> None:
    """One JSON object per line with the SPEC's fields, as many lines as the manifest counts."""
    lines = data.decode("utf-8", errors="replace").splitlines()
    for n, line in enumerate(lines, 1):
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            entry = None
        if not isinstance(entry, dict) or not _QUARANTINE_FIELDS <= set(entry):
            report.problems.append(
                f"quarantine report: line {n} is not an entry with fields "
                f"{', '.join(sorted(_QUARANTINE_FIELDS))}"
            )
            return
    if len(lines) != count:
        report.problems.append(f"quarantine report: {len(lines)} entries, manifest counts {count}")


def _check_split_sets(ds: Dataset, person_ok: bool, report: ValidationReport) -> None:
    """Each split set's file: readable, person_id → split, no person in two splits (SPEC §8),
    and only persons of the person table."""
    persons = ds.table("person").select("person_id") if person_ok else None
    for name, info in ds.splits.items():
        if info.get("path") is None:
            continue
        label = f"split {name}"
        try:
            frame = pl.read_parquet(io.BytesIO(ds.fs.cat_file(storage.join(ds.root, info["path"]))))
        except Exception as exc:  # not Parquet at all
            report.problems.append(
                f"{label}: file cannot be read as Parquet ({type(exc).__name__})"
            )
            continue
        if not {"person_id", "split"} <= set(frame.columns):
            report.problems.append(
                f"{label}: needs columns person_id and split, has {frame.columns}"
            )
            continue
        twice = frame.height - frame.get_column("person_id").n_unique()
        if twice:
            report.problems.append(
                f"{label}: {twice} person(s) appear in more than one split (leakage)"
            )
        if persons is not None:
            unknown = (
                frame.lazy()
                .select(pl.col("person_id").cast(pl.Int64))
                .join(persons, on="person_id", how="anti")
                .select(pl.len())
                .collect()
                .item()
            )
            if unknown:
                report.problems.append(f"{label}: {unknown} person_id(s) are not in table person")
        report.checked["split_sets"] = report.checked.get("split_sets", 0) + 1


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
