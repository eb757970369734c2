"""`validate` refuses datasets that break SPEC.md even when every checksum matches: null or
non-positive ids, split files, table names, the shard layout, the manifest's date, the
quarantine report, task columns and tensor cell headers. Each case is a valid dataset with one
violation, resealed (sizes, checksums, row counts) so that only the violation is wrong."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from meddata.validate import validate
from tests.conftest import manifest_json as _manifest
from tests.conftest import save_manifest_json as _save


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reseal(root: Path, manifest: dict, table: str) -> None:
    entry = manifest["tables"][table]
    for shard in entry["shards"]:
        path = root / shard["path"]
        if path.exists():
            shard.update(
                bytes=path.stat().st_size,
                sha256=_sha(path),
                rows=pq.ParquetFile(path).metadata.num_rows,
            )
    entry["rows"] = sum(s["rows"] for s in entry["shards"])
    entry["bytes"] = sum(s["bytes"] for s in entry["shards"])


def _rewrite(root: Path, table: str, edit: Callable[[pa.Table], pa.Table], shard: int = 0) -> None:
    """Rewrite one shard of ``table`` with ``edit`` and reseal the manifest."""
    manifest = _manifest(root)
    path = root / manifest["tables"][table]["shards"][shard]["path"]
    pq.write_table(edit(pq.read_table(path)), path, compression="zstd")
    _reseal(root, manifest, table)
    _save(root, manifest)


def _set(t: pa.Table, name: str, values: pa.Array) -> pa.Table:
    """``t`` with column ``name`` replaced by (or appended as) ``values``."""
    f = pa.field(name, values.type)
    i = t.schema.get_field_index(name)
    return t.set_column(i, f, values) if i >= 0 else t.append_column(f, values)


def _first_null(t: pa.Table, name: str) -> pa.Table:
    values = t.column(name).to_pylist()
    values[0] = None
    return _set(t, name, pa.array(values, t.schema.field(name).type))


def _problems(root: Path) -> list[str]:
    return validate(str(root)).problems


def _assert_named(root: Path, expected: str) -> None:
    problems = _problems(root)
    assert any(expected in p for p in problems), problems


# 1. non-null columns and positive ids --------------------------------------------------------


@pytest.mark.parametrize(("table", "column"), [("samples", "person_id"), ("image", "person_id")])
def test_nulls_in_non_null_columns_are_named(dataset: Path, table: str, column: str) -> None:
    _rewrite(dataset, table, lambda t: _first_null(t, column))
    _assert_named(dataset, f"table {table}: 1 null value(s) in column {column}, which must not")


@pytest.mark.parametrize(
    ("table", "column", "edit"),
    [
        ("samples", "sample_id", lambda a: pc.negate(a)),  # a primary key
        ("image", "image_occurrence_id", lambda a: pc.multiply(a, 0)),  # a foreign key
        ("person", "person_id", lambda a: pc.negate(a)),
    ],
)
def test_ids_that_are_not_positive_are_named(
    dataset: Path, table: str, column: str, edit: Callable[[pa.ChunkedArray], pa.Array]
) -> None:
    _rewrite(dataset, table, lambda t: _set(t, column, edit(t.column(column))))
    _assert_named(dataset, f"table {table}: ")
    _assert_named(dataset, f"value(s) of {column} are not positive (SPEC §7")


def test_no_value_leaks_into_the_messages(dataset: Path) -> None:
    secret = -987654321
    _rewrite(
        dataset,
        "samples",
        lambda t: _set(t, "sample_id", pa.array([secret] * t.num_rows, pa.int64())),
    )
    problems = _problems(dataset)
    assert problems and not any(str(abs(secret)) in p for p in problems), problems


def test_a_read_failure_in_the_key_check_is_a_readable_line(
    dataset: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meddata.dataset import Dataset

    def broken(self: Dataset, table: str) -> pl.LazyFrame:
        raise pl.exceptions.ComputeError("value 'Jane Doe' could not be cast")

    monkeypatch.setattr(Dataset, "table", broken)
    problems = _problems(dataset)
    assert any(
        "could not be read as one table (ComputeError), so its keys and ids were not checked" in p
        for p in problems
    ), problems
    assert not any("Jane" in p for p in problems)


# 2. split files -------------------------------------------------------------------------------


def _with_split(dataset: Path, name: str = "fair", folds: int | None = None) -> None:
    import meddata
    from meddata.publish import add_split
    from meddata.splits import make_splits

    ds = meddata.load(str(dataset))
    result = make_splits(ds.table("samples").collect(), seed=0, folds=folds)
    add_split(ds, name, result.assignments, strategy=result.strategy, report=result.report)


def _replace_split(dataset: Path, edit: Callable[[pl.DataFrame], pl.DataFrame]) -> None:
    """Rewrite split set 'fair' with ``edit``, named and checksummed as SPEC §8 says."""
    manifest = _manifest(dataset)
    info = manifest["splits"]["fair"]
    old = dataset / info["path"]
    buffer = io.BytesIO()
    edit(pl.read_parquet(old)).write_parquet(buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    old.unlink()
    info.update(path=f"splits/fair-{digest[:12]}.parquet", sha256=digest)
    (dataset / info["path"]).write_bytes(data)
    _save(dataset, manifest)


def _null_first(column: str) -> Callable[[pl.DataFrame], pl.DataFrame]:
    return lambda df: df.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(None).otherwise(pl.col(column)).alias(column)
    )


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda df: df.with_columns(pl.col("person_id").cast(pl.String)),
            "column person_id is large_string, SPEC §8 says int64",
        ),
        (
            lambda df: df.with_columns(pl.col("person_id").cast(pl.Int32, wrap_numerical=True)),
            "column person_id is int32, SPEC §8 says int64",
        ),
        (lambda df: df.with_columns(pl.lit(1).alias("split")), "column split is int32"),
        (_null_first("split"), "1 row(s) with a null split"),
        (_null_first("person_id"), "1 row(s) with a null person_id"),
        (lambda df: pl.concat([df, df.head(1)]), "1 row(s) repeat a person in the same split"),
        (lambda df: df.head(2), "4 person(s) of table samples have no row"),
        (
            lambda df: df.with_columns(pl.lit("banana").alias("split")),
            "6 row(s) have a split its report does not describe (it describes train, val, test)",
        ),
    ],
)
def test_split_file_rules_of_spec_8(
    dataset: Path, edit: Callable[[pl.DataFrame], pl.DataFrame], expected: str
) -> None:
    _with_split(dataset)
    assert validate(str(dataset)).ok
    _replace_split(dataset, edit)
    _assert_named(dataset, f"split fair: {expected}")


def test_a_duplicate_in_one_split_is_not_called_leakage(dataset: Path) -> None:
    _with_split(dataset)
    _replace_split(dataset, lambda df: pl.concat([df, df.head(1)]))
    assert not any("leakage" in p for p in _problems(dataset))


def test_fold_splits_and_a_split_without_report_pass(dataset: Path) -> None:
    import meddata
    from meddata.publish import add_split

    _with_split(dataset, "cv", folds=3)
    ds = meddata.load(str(dataset))
    manual = ds.table("samples").select("person_id").unique().collect()
    add_split(ds, "manual", manual.with_columns(pl.lit("x").alias("split")), strategy={}, report={})
    report = validate(str(dataset))
    assert report.ok and report.checked["split_sets"] == 2, report.problems


def test_a_split_file_not_named_by_its_checksum_is_named(dataset: Path) -> None:
    _with_split(dataset)
    manifest = _manifest(dataset)
    info = manifest["splits"]["fair"]
    (dataset / info["path"]).rename(dataset / "splits" / "fair.parquet")
    info["path"] = "splits/fair.parquet"
    _save(dataset, manifest)
    _assert_named(dataset, "split fair: file splits/fair.parquet is not named splits/fair-")


# 3. table names ------------------------------------------------------------------------------


def test_a_table_named_otherwise_than_its_schema_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tables"]["people"] = manifest["tables"].pop("person")
    _save(dataset, manifest)
    _assert_named(dataset, "table people: its schema omop/person@1 is that of table person")


def test_a_table_declared_with_another_tables_schema_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tables"]["samples"]["schema"] = "omop/person@1"
    _save(dataset, manifest)
    problems = _problems(dataset)
    assert any(
        "table samples: its schema omop/person@1 is that of table person" in p for p in problems
    )
    assert not any("duplicate value" in p for p in problems), problems  # no follow-on noise


# 4. layout and manifest ----------------------------------------------------------------------


def _move_shard(dataset: Path, table: str, rel: str) -> None:
    manifest = _manifest(dataset)
    shard = manifest["tables"][table]["shards"][0]
    (dataset / rel).parent.mkdir(parents=True, exist_ok=True)
    (dataset / shard["path"]).rename(dataset / rel)
    shard["path"] = rel
    _save(dataset, manifest)


@pytest.mark.parametrize(
    ("table", "rel", "expected"),
    [
        (
            "person",
            "tables/person/part-00003.parquet",
            "table person: its shards are not numbered from part-00000 without gaps "
            "(no part-00000.parquet",
        ),
        (
            "person",
            "person.parquet",
            "table person: shard person.parquet is not named tables/person/part-NNNNN.parquet",
        ),
        (
            "image_occurrence",
            "tables/person/part-00001.parquet",
            "shard tables/person/part-00001.parquet is not named "
            "tables/image_occurrence/part-NNNNN.parquet",
        ),
        ("person", "tables/person/part-0.parquet", "is not named tables/person/part-NNNNN"),
    ],
)
def test_shards_outside_the_layout_of_spec_1_are_named(
    dataset: Path, table: str, rel: str, expected: str
) -> None:
    _move_shard(dataset, table, rel)
    _assert_named(dataset, expected)


def test_a_shard_listed_twice_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    entry = manifest["tables"]["image_occurrence"]
    entry["shards"].append(dict(entry["shards"][0]))
    entry["rows"] *= 2
    entry["bytes"] *= 2
    _save(dataset, manifest)
    _assert_named(dataset, "shard tables/image_occurrence/part-00000.parquet is listed 2 times")


def test_a_table_without_shards_is_named_plainly(dataset: Path) -> None:
    manifest = _manifest(dataset)
    entry = manifest["tables"]["image_occurrence"]
    (dataset / entry["shards"][0]["path"]).unlink()
    entry.update(shards=[], rows=0, bytes=0)
    _save(dataset, manifest)
    problems = _problems(dataset)
    assert "table image_occurrence has no shards" in problems[0], problems
    assert not any("Error" in p for p in problems), problems


def _split_shard(dataset: Path, table: str) -> None:
    """Cut ``table``'s one shard into two (part-00000, part-00001)."""
    manifest = _manifest(dataset)
    entry = manifest["tables"][table]
    whole = pq.read_table(dataset / entry["shards"][0]["path"])
    half = whole.num_rows // 2
    entry["shards"] = []
    for n, part in enumerate((whole.slice(0, half), whole.slice(half))):
        rel = f"tables/{table}/part-{n:05d}.parquet"
        pq.write_table(part, dataset / rel)
        entry["shards"].append({"path": rel})
    _reseal(dataset, manifest, table)
    _save(dataset, manifest)


def test_an_extra_column_with_two_types_in_two_shards_is_named(dataset: Path) -> None:
    _split_shard(dataset, "image")
    assert validate(str(dataset)).ok
    _rewrite(dataset, "image", lambda t: _set(t, "note", pa.array(["x"] * t.num_rows)), shard=0)
    assert validate(str(dataset)).ok  # SPEC §4: an extra column some shards lack is fine
    _rewrite(dataset, "image", lambda t: _set(t, "note", pa.array([1] * t.num_rows)), shard=1)
    problems = _problems(dataset)
    assert any(
        "shard tables/image/part-00001.parquet: column 'note' has type int64, but string in "
        "shard tables/image/part-00000.parquet" in p
        for p in problems
    ), problems
    assert not any("could not" in p for p in problems), problems


@pytest.mark.parametrize("created", ["yesterday", "2026-02-30T00:00:00Z", "2026-01-02"])
def test_created_must_be_a_date_time(dataset: Path, created: str) -> None:
    manifest = _manifest(dataset)
    manifest["created"] = created
    _save(dataset, manifest)
    _assert_named(dataset, "manifest created: ")


def test_date_time_check_needs_no_optional_package() -> None:
    from meddata.manifest import is_date_time

    assert is_date_time("2026-01-02T03:04:05+00:00") and is_date_time("2026-01-02T03:04:05.5Z")
    assert not is_date_time("2026-01-02 03:04:05") and not is_date_time("2026-01-02T03:04:05")
    assert not is_date_time("2026-13-01T00:00:00Z")


# 5. quarantine -------------------------------------------------------------------------------


def _quarantine(dataset: Path, entries: list[dict] | None, **fields: object) -> None:
    """Write a quarantine report of ``entries`` (None: none on disk) and record ``fields``."""
    manifest = _manifest(dataset)
    q = {"count": 0, "path": None, "sha256": None}
    if entries is not None:
        path = dataset / "quarantine" / "report.jsonl"
        path.parent.mkdir(exist_ok=True)
        path.write_text("".join(json.dumps(e) + "\n" for e in entries))
        q = {"count": len(entries), "path": "quarantine/report.jsonl", "sha256": _sha(path)}
    q.update(fields)
    manifest["quarantine"] = q
    _save(dataset, manifest)


_ENTRY = {"unit": "u1", "item": "a/b.dcm", "reason": "no pixel data", "error": ""}


def test_a_well_formed_quarantine_report_passes(dataset: Path) -> None:
    _quarantine(dataset, [_ENTRY, _ENTRY])
    assert validate(str(dataset)).ok


@pytest.mark.parametrize(
    ("entries", "fields", "expected"),
    [
        (None, {"count": 2}, "the manifest counts 2 skipped input(s) but names no report file"),
        (
            [_ENTRY],
            {"count": 0, "path": None, "sha256": None},
            "quarantine/report.jsonl is not in the manifest",
        ),
        (
            [_ENTRY, {"unit": 1, "item": None, "reason": [], "error": {}}],
            {},
            "line 2 has fields that are not strings",
        ),
        (
            [{**_ENTRY, "patient_name": "DOE^JOHN"}],
            {},
            "line 1 has fields other than error, item, reason, unit",
        ),
    ],
)
def test_quarantine_rules_of_spec_9(
    dataset: Path, entries: list[dict] | None, fields: dict, expected: str
) -> None:
    _quarantine(dataset, entries, **fields)
    problems = _problems(dataset)
    assert any(expected in p for p in problems), problems
    assert not any("DOE" in p or "patient_name" in p for p in problems), problems


# 6. tasks, labels, sensitive attributes, tensor cells ----------------------------------------


def _with_label(dataset: Path, values: pa.Array | None = None, label: str = "Edema") -> None:
    manifest = _manifest(dataset)
    manifest["tasks"]["labels"] = [label]
    _save(dataset, manifest)

    def add(t: pa.Table) -> pa.Table:
        cycle = [1.0, 0.0, -1.0, None]
        column = (
            values
            if values is not None
            else pa.array([cycle[i % 4] for i in range(t.num_rows)], pa.float32())
        )
        return _set(t, f"label_{label}", column)

    _rewrite(dataset, "samples", add)


def test_a_label_column_with_spec_values_passes(dataset: Path) -> None:
    _with_label(dataset)
    assert validate(str(dataset)).ok


def test_a_label_without_its_column_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tasks"]["labels"] = ["Edema"]
    _save(dataset, manifest)
    _assert_named(dataset, "manifest tasks.labels: table samples has no column 'label_Edema'")


def test_label_values_outside_spec_are_named(dataset: Path) -> None:
    _with_label(dataset, pa.array([7.0] + [float("nan")] + [1.0] * 18, pa.float32()))
    _assert_named(dataset, "table samples: 2 value(s) of 'label_Edema' are not a label value")


def test_a_label_column_that_is_not_float32_is_named(dataset: Path) -> None:
    _with_label(dataset, pa.array([1.0] * 20, pa.float64()))
    _assert_named(dataset, "column 'label_Edema' has type double, SPEC §5.3 says float32")


def test_a_sensitive_attribute_without_its_column_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    manifest["tasks"]["sensitive_attributes"] = ["sex", "zodiac"]
    _save(dataset, manifest)
    _assert_named(dataset, "tasks.sensitive_attributes: table samples has no column 'zodiac'")


def test_age_groups_outside_spec_are_named(dataset: Path) -> None:
    _rewrite(dataset, "samples", lambda t: _first_null(t, "age_group"))  # null is fine
    assert validate(str(dataset)).ok
    _rewrite(dataset, "samples", lambda t: _set(t, "age_group", pa.array(["42"] * t.num_rows)))
    _assert_named(dataset, "table samples: 20 value(s) of age_group are not an age group")


def _edit_cells(field: str, values: Callable[[pa.StructArray], pa.Array]) -> Callable:
    def edit(t: pa.Table) -> pa.Table:
        cells = t.column("pixels").combine_chunks()
        children = [values(cells) if f.name == field else cells.field(f.name) for f in cells.type]
        return _set(t, "pixels", pa.StructArray.from_arrays(children, fields=list(cells.type)))

    return edit


@pytest.mark.parametrize(
    ("field", "values", "expected"),
    [
        ("codec", lambda c: pa.array(["bogus"] * len(c)), "tensor cell(s) have an unknown codec"),
        ("dtype", lambda c: pa.array(["<u2"] * len(c)), "have a dtype that is not a NumPy"),
        ("dtype", lambda c: pa.array(["object"] * len(c)), "have a dtype that is not a NumPy"),
        (
            "shape",
            lambda c: pa.array([[-1, 4]] * len(c), pa.list_(pa.int32())),
            "have a shape with a null or negative size",
        ),
        (
            "shape",
            lambda c: pa.array([[1, 2]] * len(c), pa.list_(pa.int32())),
            "raw tensor cell(s) hold a different number of bytes than their dtype and shape",
        ),
    ],
)
def test_tensor_cell_headers_are_checked(
    dataset: Path, field: str, values: Callable[[pa.StructArray], pa.Array], expected: str
) -> None:
    _rewrite(dataset, "image", _edit_cells(field, values))
    _assert_named(dataset, "table image: shard tables/image/part-00000.parquet: column pixels: ")
    _assert_named(dataset, expected)


def test_raw_lengths_are_counted_cell_by_cell_across_row_groups(dataset: Path) -> None:
    """Lengths are read a few MiB at a time: one wrong cell in the last of many one-row row
    groups is still counted once, and the others pass."""
    manifest = _manifest(dataset)
    path = dataset / manifest["tables"]["image"]["shards"][0]["path"]
    table = pq.read_table(path)
    cells = table.column("pixels").combine_chunks()
    shapes = cells.field("shape").to_pylist()
    shapes[-1] = [1, 1]
    children = [
        pa.array(shapes, cells.type.field("shape").type)
        if f.name == "shape"
        else cells.field(f.name)
        for f in cells.type
    ]
    edited = _set(table, "pixels", pa.StructArray.from_arrays(children, fields=list(cells.type)))
    pq.write_table(edited, path, row_group_size=1, compression="zstd")
    _reseal(dataset, manifest, "image")
    _save(dataset, manifest)
    assert pq.ParquetFile(path).metadata.num_row_groups == table.num_rows > 1
    _assert_named(dataset, "column pixels: 1 raw tensor cell(s) hold a different number of bytes")


def test_a_shard_whose_checksum_holds_but_is_not_parquet_is_named(dataset: Path) -> None:
    manifest = _manifest(dataset)
    path = dataset / manifest["tables"]["person"]["shards"][0]["path"]
    path.write_bytes(b"PAR1 this is not a Parquet file PAR1")
    shard = manifest["tables"]["person"]["shards"][0]
    shard.update(bytes=path.stat().st_size, sha256=_sha(path))
    manifest["tables"]["person"]["bytes"] = sum(
        s["bytes"] for s in manifest["tables"]["person"]["shards"]
    )
    _save(dataset, manifest)
    _assert_named(
        dataset,
        "table person: shard tables/person/part-00000.parquet is not a readable Parquet file",
    )


def test_null_tensor_cells_are_named(dataset: Path) -> None:
    def edit(t: pa.Table) -> pa.Table:
        cells = t.column("pixels").combine_chunks()
        mask = pa.array([i == 0 for i in range(len(cells))])
        children = [cells.field(f.name) for f in cells.type]
        nulled = pa.StructArray.from_arrays(children, fields=list(cells.type), mask=mask)
        return _set(t, "pixels", nulled)

    _rewrite(dataset, "image", edit)
    _assert_named(dataset, "column pixels: 1 null tensor cell(s), which must not be null")
