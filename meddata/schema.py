"""The schema registry: table schemas from ``schemas/tables/*.json`` as ``pyarrow`` schemas.

A schema reference is ``<id>@<major>`` (``omop/person@1``). Readers accept any minor change
(new optional columns) and refuse a major version they do not know.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import pyarrow as pa

from meddata.errors import FormatVersionError, SchemaError, UsageError
from meddata.tensor import TENSOR_TYPE

_SCALAR_TYPES: dict[str, pa.DataType] = {
    "int64": pa.int64(),
    "int32": pa.int32(),
    "float64": pa.float64(),
    "float32": pa.float32(),
    "bool": pa.bool_(),
    "string": pa.string(),
    "large_string": pa.large_string(),
    "date32": pa.date32(),
    "timestamp[us]": pa.timestamp("us"),
    "tensor": TENSOR_TYPE,
}


def arrow_type(name: str) -> pa.DataType:
    """Turn a schema type name (``int64``, ``list<float64>``, ``tensor``…) into an Arrow type."""
    if name.startswith("list<") and name.endswith(">"):
        return pa.list_(arrow_type(name[5:-1]))
    try:
        return _SCALAR_TYPES[name]
    except KeyError:
        raise SchemaError(f"Unknown column type {name!r} in a schema file.") from None


@dataclass(frozen=True)
class Column:
    """One column of a table schema."""

    name: str
    type: str
    required: bool = False
    nullable: bool = True
    description: str = ""
    foreign_key: str | None = None
    extension: bool = False

    @property
    def arrow_type(self) -> pa.DataType:
        return arrow_type(self.type)


@dataclass(frozen=True)
class TableSchema:
    """A versioned table schema (OMOP-aligned, payload or ML view)."""

    id: str
    version: int
    kind: str
    description: str
    primary_key: str | None
    columns: tuple[Column, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return self.id.split("/", 1)[1]

    @property
    def ref(self) -> str:
        return f"{self.id}@{self.version}"

    def column(self, name: str) -> Column | None:
        """The column called ``name``, or None."""
        return next((c for c in self.columns if c.name == name), None)

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema of the known columns, in schema order."""
        return pa.schema(
            [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in self.columns]
        )

    def foreign_keys(self) -> dict[str, tuple[str, str]]:
        """Map of column → (referenced table, referenced column)."""
        out: dict[str, tuple[str, str]] = {}
        for c in self.columns:
            if c.foreign_key:
                table, col = c.foreign_key.split(".")
                out[c.name] = (table, col)
        return out

    def conform(self, table: pa.Table) -> pa.Table:
        """Cast ``table`` to this schema: known columns in order (missing optional ones as nulls),
        unknown extra columns kept after them. Raises SchemaError naming the first bad column."""
        arrays: list[pa.Array | pa.ChunkedArray] = []
        fields: list[pa.Field] = []
        names = set(table.column_names)
        for c in self.columns:
            target = c.arrow_type
            if c.name in names:
                col = table.column(c.name)
                if col.type != target:
                    try:
                        col = col.cast(target)
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                        raise SchemaError(
                            f"Column {self.name}.{c.name} has type {col.type}, expected {c.type}.",
                            "Fix the adapter so it emits the schema's type.",
                        ) from exc
            elif not c.nullable:
                raise SchemaError(
                    f"Table {self.name} is missing its non-null column {c.name!r}.",
                    "Fix the adapter so every row carries it.",
                )
            else:
                col = pa.nulls(table.num_rows, type=target)
            if not c.nullable and col.null_count:
                raise SchemaError(
                    f"Column {self.name}.{c.name} must not be null but has {col.null_count} null(s).",
                    "Fix the adapter so every row carries it.",
                )
            arrays.append(col)
            fields.append(pa.field(c.name, target, nullable=c.nullable))
        for name in table.column_names:
            if self.column(name) is None:
                arrays.append(table.column(name))
                fields.append(table.schema.field(name))
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

    def check(self, schema: pa.Schema) -> list[str]:
        """Problems of an Arrow schema against this one (missing non-null columns, wrong types)."""
        problems = []
        for c in self.columns:
            idx = schema.get_field_index(c.name)
            if idx < 0:
                if not c.nullable:
                    problems.append(f"{self.name}: column {c.name!r} is missing")
                continue
            if schema.field(idx).type != c.arrow_type:
                problems.append(
                    f"{self.name}.{c.name}: type {schema.field(idx).type}, expected {c.type}"
                )
        return problems


def _parse(doc: dict[str, Any]) -> TableSchema:
    cols = tuple(
        Column(
            name=c["name"],
            type=c["type"],
            required=bool(c.get("required", False)),
            nullable=bool(c.get("nullable", True)),
            description=c.get("description", ""),
            foreign_key=c.get("foreign_key"),
            extension=bool(c.get("extension", False)),
        )
        for c in doc["columns"]
    )
    return TableSchema(
        id=doc["id"],
        version=int(doc["version"]),
        kind=doc["kind"],
        description=doc.get("description", ""),
        primary_key=doc.get("primary_key"),
        columns=cols,
    )


@cache
def all_schemas() -> dict[str, TableSchema]:
    """Every table schema this meddata knows, keyed by table name."""
    out: dict[str, TableSchema] = {}
    folder = resources.files("meddata.schemas").joinpath("tables")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".json"):
            schema = _parse(json.loads(entry.read_text(encoding="utf-8")))
            out[schema.name] = schema
    return out


def get_schema(table: str) -> TableSchema:
    """The schema of table ``table`` (``person``, ``image``, ``samples``…)."""
    try:
        return all_schemas()[table]
    except KeyError:
        raise UsageError(
            f"There is no table schema called {table!r}.",
            f"Known tables: {', '.join(sorted(all_schemas()))}.",
        ) from None


def resolve_ref(ref: str) -> TableSchema:
    """The schema for a reference such as ``omop/person@1``; refuses unknown major versions."""
    ident, _, major = ref.partition("@")
    name = ident.split("/", 1)[-1]
    schema = all_schemas().get(name)
    if schema is None or schema.id != ident:
        raise SchemaError(
            f"Unknown table schema {ident!r}.", "Upgrade meddata to read this dataset."
        )
    if not major.isdigit() or int(major) != schema.version:
        raise FormatVersionError(
            f"Table schema {ident} version {major} is not supported (this meddata knows version {schema.version}).",
            "Upgrade meddata to read this dataset.",
        )
    return schema
