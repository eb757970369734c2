"""``meddata validate``, cell values: tensor cell headers and lengths (SPEC §6) and task
columns (SPEC §5.3)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meddata import storage
from meddata._validation import ValidationReport, in_threads
from meddata.dataset import Dataset
from meddata.demographics import AGE_GROUP_LABELS, LABEL_VALUES
from meddata.schema import TableSchema
from meddata.tensor import CODECS

#: About how many bytes of tensor data are read per batch to count their lengths.
_LENGTH_BATCH_BYTES = 4 << 20


def check_tensors(ds: Dataset, intact: dict[str, TableSchema], report: ValidationReport) -> None:
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

        for rel, (problems, checked) in zip(shards, in_threads(check, shards), strict=True):
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


def check_tasks(ds: Dataset, report: ValidationReport) -> None:
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
