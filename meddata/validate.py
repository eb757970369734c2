"""``validate``: prove a published dataset is whole and follows SPEC.md — manifest, layout,
checksums, row counts, schemas, keys and ids, tensor cells, task columns, split sets and the
quarantine report. Problems name tables, files, columns and counts, never cell values."""

from __future__ import annotations

import fsspec

from meddata import storage
from meddata._validate_cells import check_tasks, check_tensors
from meddata._validate_files import (
    check_datasheet,
    check_side_files,
    check_split_sets,
    check_unlisted_files,
)
from meddata._validate_tables import check_keys, check_shards, check_table_name
from meddata._validation import ValidationReport, guarded
from meddata.dataset import Dataset
from meddata.errors import MeddataError
from meddata.home import locate
from meddata.manifest import read_manifest, schema_problems
from meddata.schema import TableSchema, resolve_ref

__all__ = ["ValidationReport", "validate"]


def validate(target: str, version: str | None = None) -> ValidationReport:
    """Check the dataset at ``target`` (path, URL or name) and report every problem found."""
    fs, root = locate(target, version)
    report = ValidationReport(storage.url_of(fs, root))
    try:
        _check(fs, root, report)
    finally:
        report._footers.clear()  # only for the checks: a report kept by the caller holds none
    return report


def _check(fs: fsspec.AbstractFileSystem, root: str, report: ValidationReport) -> None:
    try:
        manifest = read_manifest(fs, root, check_schema=False)  # every problem is listed below
    except MeddataError as exc:
        report.problems.append(str(exc))
        return
    report.problems += schema_problems(manifest)
    if report.problems:  # the manifest's structure is broken: nothing below can be trusted
        return
    intact: dict[str, TableSchema] = {}
    for table, entry in manifest.get("tables", {}).items():
        try:
            schema = resolve_ref(entry["schema"])
        except MeddataError as exc:
            report.problems.append(f"table {table}: {exc}")
            continue
        named_right = check_table_name(table, schema, report)
        if check_shards(fs, root, table, entry, schema, report, layout=named_right):
            if named_right:
                intact[table] = schema
    unreadable: set[str] = set()
    for extra in ("splits", "quarantine", "datasheet"):
        unreadable |= check_side_files(fs, root, manifest, extra, report)
    check_unlisted_files(fs, root, manifest, report)
    try:
        ds = Dataset(fs, root, manifest)
    except MeddataError:
        return  # already reported above (e.g. a path outside the dataset)
    if intact:
        check_keys(ds, intact, report)
        guarded("tensor cells", report, lambda: check_tensors(ds, intact, report))
    if "samples" in intact:
        guarded("task columns of table samples", report, lambda: check_tasks(ds, report))
    guarded("split sets", report, lambda: check_split_sets(ds, intact, unreadable, report))
    if not any(p.startswith("datasheet") for p in report.problems):
        check_datasheet(ds, report)
