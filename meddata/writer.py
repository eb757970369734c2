"""Writing a dataset version: stage each work unit, then compact into checksummed Parquet
shards and publish the manifest last.

Layout while a conversion runs (``<root>`` is ``<out>/<name>/<version>``)::

    <root>/_staging/run.json          what is being converted (adapter, options, source)
    <root>/_staging/journal.jsonl     one line per finished work unit
    <root>/_staging/units/NNNNNNNN.<table>.arrow   the unit's rows (Arrow IPC)

Only once every unit is staged are the shards written, in unit order, so the tables are
byte-identical whatever the worker count and however often the run was interrupted. The
dataset becomes visible when ``meddata.json`` is published; a run killed before that leaves
no manifest, and ``--resume`` continues from the journal.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

from meddata import storage, tensor
from meddata.errors import DatasetExistsError, IncompleteDatasetError, SchemaError
from meddata.manifest import MANIFEST_NAME
from meddata.schema import TableSchema, get_schema
from meddata.tensor import TENSOR_TYPE

STAGING = "_staging"
TARGET_SHARD_BYTES = 256 << 20
ROW_GROUP_BYTES = 16 << 20
ROW_GROUP_MAX_ROWS = 65_536


def rows_to_table(table: str, rows: list[dict[str, Any]] | pa.Table) -> pa.Table:
    """Build an Arrow table from row dicts and conform it to the table's schema."""
    schema = get_schema(table)
    if isinstance(rows, pa.Table):
        return schema.conform(rows)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    arrays, fields = [], []
    for name in names:
        values = [row.get(name) for row in rows]
        col = schema.column(name)
        arrow_type = col.arrow_type if col else _extension_type(name)
        try:
            if arrow_type == TENSOR_TYPE:
                arr = tensor.to_arrow(values)
            else:
                arr = pa.array(values, type=arrow_type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise SchemaError(
                f"Values of column {table}.{name} do not fit type {col.type if col else 'inferred'}.",
                "Fix the adapter so it emits the schema's type.",
            ) from exc
        arrays.append(arr)
        fields.append(pa.field(name, arr.type))
    return schema.conform(pa.Table.from_arrays(arrays, schema=pa.schema(fields)))


def _extension_type(column: str) -> pa.DataType | None:
    """Fixed types for extension columns whose values may all be null in one unit."""
    if column.startswith("label_"):
        return pa.float32()
    if column.startswith("section_"):
        return pa.large_string()
    return None


def unit_file(staging: str, seq: int, table: str) -> str:
    """Path of the staged rows of unit ``seq`` for ``table``."""
    return storage.join(staging, "units", f"{seq:08d}.{table}.arrow")


def unit_shard(staging: str, seq: int, table: str) -> str:
    """Path of the Parquet shard that unit ``seq`` wrote for payload table ``table``."""
    return storage.join(staging, "shards", f"{seq:08d}.{table}.parquet")


def stage_unit(
    fs: fsspec.AbstractFileSystem, staging: str, seq: int, tables: dict[str, pa.Table]
) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Stage one unit's rows at once (see :class:`UnitStager`)."""
    stager = UnitStager(fs, staging, seq)
    stager.add(tables)
    return stager.close()


class UnitStager:
    """Stages one unit, fed in parts: returns (rows per table, shard record per payload table,
    size and SHA-256 per small-table file) on ``close``.

    Payload tables (images, volumes...) are written once, as the unit's final Parquet shard, by
    the worker itself, part by part, so a large unit's bytes are never all in memory and never
    copied through a second staging pass; small tables are collected and staged as one Arrow
    IPC file each, compacted (with primary-key de-duplication) at publish time.
    """

    def __init__(self, fs: fsspec.AbstractFileSystem, staging: str, seq: int) -> None:
        self.fs, self.staging, self.seq = fs, staging, seq
        self._writers: dict[str, _ShardWriter] = {}
        self._seen: dict[str, set[Any]] = {}
        self._small: dict[str, list[pa.Table]] = {}
        self._rows: Counter[str] = Counter()

    def add(self, tables: dict[str, pa.Table]) -> None:
        """Stage one part's rows."""
        for name, table in tables.items():
            if table.num_rows == 0:
                continue
            schema = get_schema(name)
            if schema.kind != "payload":
                self._small.setdefault(name, []).append(table)
                self._rows[name] += table.num_rows
                continue
            if schema.primary_key:
                seen = self._seen.setdefault(name, set())
                keep = _first_seen(table.column(schema.primary_key).to_pylist(), seen)
                table = table.filter(pa.array(keep)) if not all(keep) else table
                if table.num_rows == 0:
                    continue
            writer = self._writers.get(name)
            if writer is None:
                path = unit_shard(self.staging, self.seq, name)
                writer = _ShardWriter(self.fs, path, table.schema, 1 << 62, ROW_GROUP_BYTES)
                self._writers[name] = writer
            elif table.schema != writer.schema:
                table = _unify(table, writer.schema, name)
            for batch in table.to_batches():
                writer.write(batch)
            self._rows[name] += table.num_rows

    def close(
        self,
    ) -> tuple[dict[str, int], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """Finish the unit's shards and write its small tables."""
        shards = {name: writer.close()[0] for name, writer in self._writers.items()}
        files: dict[str, dict[str, Any]] = {}
        for name, parts in self._small.items():
            table = parts[0] if len(parts) == 1 else _concat(parts, name)
            sink = storage.HashingWriter(
                self.fs.open(unit_file(self.staging, self.seq, name), "wb")
            )
            with ipc.new_file(pa.PythonFile(sink, mode="w"), table.schema) as ipc_writer:
                ipc_writer.write_table(table)
            sink.close()
            files[name] = {"bytes": sink.size, "sha256": sink.sha256}
        return dict(self._rows), shards, files

    def abort(self) -> None:
        """Drop what was staged for this unit (its input turned out to be bad)."""
        for name, writer in self._writers.items():
            writer.discard()
            path = unit_shard(self.staging, self.seq, name)
            if self.fs.exists(path):
                self.fs.rm(path)
        self._writers, self._small, self._rows = {}, {}, Counter()


def _concat(parts: list[pa.Table], name: str) -> pa.Table:
    """One table from a unit's parts (a column missing from a later part is null there)."""
    first = parts[0].schema
    return pa.concat_tables([p if p.schema == first else _unify(p, first, name) for p in parts])


@dataclass
class JournalEntry:
    """One finished work unit."""

    seq: int
    key: str
    fingerprint: str
    rows: dict[str, int]
    quarantine: list[dict[str, str]] = field(default_factory=list)
    shards: dict[str, dict[str, Any]] = field(default_factory=dict)
    deid_counts: dict[str, int] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # small-table IPC files


def published_error(where: str) -> DatasetExistsError:
    """The refusal to write over the published version at ``where``."""
    return DatasetExistsError(
        f"A published dataset already exists at {where}.",
        "Versions are immutable: pass --version (version=) to write a new one, or --overwrite "
        "(overwrite=True) to replace it (add --resume to finish an interrupted --overwrite).",
    )


# What a staged unit looks like; a run staged in another format is not resumed.
STAGING_FORMAT = 2


class Staging:
    """The staging area of one dataset version: run description, journal and unit files."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str) -> None:
        self.fs = fs
        self.root = root
        self.path = storage.join(root, STAGING)
        self._journal_path = storage.join(self.path, "journal.jsonl")
        self._entries: dict[int, JournalEntry] = {}

    @classmethod
    def open(
        cls,
        fs: fsspec.AbstractFileSystem,
        root: str,
        run: dict[str, Any],
        *,
        resume: bool,
        overwrite: bool,
    ) -> Staging:
        """Prepare ``root`` for a conversion described by ``run``.

        Refuses to touch a published version unless ``overwrite``; refuses to silently discard
        an interrupted run unless ``resume`` (continue it) or ``overwrite`` (start again);
        ``overwrite`` and ``resume`` together continue an interrupted replacement.
        """
        where = storage.url_of(fs, root)
        staging = cls(fs, root)
        if fs.exists(storage.join(root, MANIFEST_NAME)) and not overwrite:
            raise published_error(where)
        if overwrite and not resume and fs.exists(staging.path):
            # The published version (if any) stays readable until the new one replaces it.
            fs.rm(staging.path, recursive=True)
        elif fs.exists(staging.path):
            if not resume:
                raise IncompleteDatasetError(
                    f"An unfinished conversion (interrupted, or stopped by an error) is staged at {where}.",
                    "Re-run the same command with --resume (resume=True) to finish it, or --overwrite "
                    "(overwrite=True) to start again.",
                )
            try:
                previous = json.loads(fs.cat_file(storage.join(staging.path, "run.json")))
            except (FileNotFoundError, json.JSONDecodeError):
                raise IncompleteDatasetError(
                    f"The conversion staged at {where} was cut before it recorded what it converts.",
                    "Start it again with --overwrite (overwrite=True).",
                ) from None
            if previous != run:
                raise IncompleteDatasetError(
                    f"The conversion staged at {where} used another adapter, options, source, "
                    "de-identification key or options, or another meddata version.",
                    "Resume with the same command line, or pass --overwrite (overwrite=True) to start again.",
                )
            staging._load_journal()
            return staging
        fs.makedirs(storage.join(staging.path, "units"), exist_ok=True)
        fs.pipe_file(
            storage.join(staging.path, "run.json"), json.dumps(run, sort_keys=True).encode()
        )
        return staging

    def _load_journal(self) -> None:
        if not self.fs.exists(self._journal_path):
            return
        raw = self.fs.cat_file(self._journal_path)
        if raw and not raw.endswith(b"\n") and storage.is_local(self.fs):
            # A line cut by a kill or a power cut: drop it, or the next line appended would be
            # glued to it (and lost on every later resume).
            with open(self._journal_path, "r+b") as fh:
                fh.truncate(raw.rfind(b"\n") + 1)
        for line in raw.decode("utf-8", errors="replace").splitlines():
            try:
                entry = JournalEntry(**json.loads(line))
            except (json.JSONDecodeError, TypeError):
                continue  # a line cut by a kill: that unit is simply redone
            if all(self._intact(entry, t) for t in entry.rows):
                self._entries[entry.seq] = entry

    def _intact(self, entry: JournalEntry, table: str) -> bool:
        """Whether the unit's staged file for ``table`` is whole. The journal is not fsynced
        per unit (on ext4 that forced a journal commit per unit and cost 40% of a conversion),
        so after a power cut a line may outlive its file's data: every staged file is checked
        against the size and SHA-256 the journal recorded (on an object store, where a PUT
        is whole or absent, the size alone)."""
        if table in entry.shards:
            path, record = unit_shard(self.path, entry.seq, table), entry.shards[table]
        elif table in entry.files:
            path, record = unit_file(self.path, entry.seq, table), entry.files[table]
        else:
            return False  # journaled by an older version without checksums: redo the unit
        try:
            if self.fs.size(path) != record["bytes"]:
                return False
            return not storage.is_local(self.fs) or (
                storage.sha256_file(self.fs, path) == record["sha256"]
            )
        except (OSError, KeyError):
            return False

    def done(self, seq: int, fingerprint: str) -> bool:
        """True when unit ``seq`` is staged from the same input."""
        entry = self._entries.get(seq)
        return entry is not None and entry.fingerprint == fingerprint

    def record(self, entry: JournalEntry) -> None:
        """Journal a finished unit (one appended line; what it names is re-checked on resume)."""
        self._entries[entry.seq] = entry
        line = json.dumps(entry.__dict__, sort_keys=True) + "\n"
        if storage.is_local(self.fs):
            with open(self._journal_path, "a", encoding="utf-8") as fh:
                fh.write(line)
        else:  # object stores cannot append: rewrite the journal whole
            body = "".join(json.dumps(e.__dict__, sort_keys=True) + "\n" for e in self.entries())
            self.fs.pipe_file(self._journal_path, body.encode())

    def entries(self) -> list[JournalEntry]:
        """Journal entries in unit order."""
        return [self._entries[k] for k in sorted(self._entries)]

    def iter_table(self, table: str) -> Iterator[pa.RecordBatch]:
        """Every staged batch of a small (IPC-staged) table, in unit order."""
        for entry in self.entries():
            if table not in entry.rows or table in entry.shards:
                continue
            with self.fs.open(unit_file(self.path, entry.seq, table), "rb") as fh:
                reader = ipc.open_file(fh)
                for i in range(reader.num_record_batches):
                    yield reader.get_batch(i)

    def publish_shards(self, table: str) -> TableWritten:
        """Move the payload shards the workers wrote into ``tables/<table>/``, in unit order."""
        folder = storage.join(self.root, "tables", table)
        self.fs.makedirs(folder, exist_ok=True)
        shards: list[dict[str, Any]] = []
        for entry in self.entries():
            if table not in entry.shards:
                continue
            rel = f"tables/{table}/part-{len(shards):05d}.parquet"
            self.fs.mv(unit_shard(self.path, entry.seq, table), storage.join(self.root, rel))
            shards.append({**entry.shards[table], "path": rel})
        _refuse_duplicate_ids(self.fs, self.root, table, shards)
        return TableWritten(
            schema=get_schema(table),
            rows=sum(s["rows"] for s in shards),
            bytes=sum(s["bytes"] for s in shards),
            shards=shards,
            duplicates_dropped=0,
        )

    def remove(self) -> None:
        """Delete the staging area (after the manifest is published)."""
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)


class _ShardWriter:
    """Cuts one table into zstd Parquet shards of about ``target_bytes``, row groups of about
    ``row_group_bytes``, hashing each shard as it is written."""

    def __init__(
        self,
        fs: fsspec.AbstractFileSystem,
        path_pattern: str,
        schema: pa.Schema,
        target_bytes: int,
        row_group_bytes: int,
    ) -> None:
        """``path_pattern`` is formatted with the shard index (``.../part-{:05d}.parquet``)."""
        self.fs, self.path_pattern, self.schema = fs, path_pattern, schema
        self.target_bytes, self.row_group_bytes = target_bytes, row_group_bytes
        self.shards: list[dict[str, Any]] = []
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._buffered_rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._sink: storage.HashingWriter | None = None
        self._rows = 0
        self._written = 0

    def write(self, batch: pa.RecordBatch) -> None:
        # Split large batches so one row group never exceeds the target by much.
        if batch.num_rows > 1 and batch.nbytes > self.row_group_bytes:
            step = max(1, batch.num_rows * self.row_group_bytes // batch.nbytes)
            for start in range(0, batch.num_rows, step):
                self.write(batch.slice(start, step))
            return
        self._buffer.append(batch)
        self._buffered += batch.nbytes
        self._buffered_rows += batch.num_rows
        if self._buffered >= self.row_group_bytes or self._buffered_rows >= ROW_GROUP_MAX_ROWS:
            self._flush_group()

    def _flush_group(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            self._open()
        group = pa.Table.from_batches(self._buffer, schema=self.schema)
        assert self._writer is not None
        self._writer.write_table(group, row_group_size=group.num_rows)
        self._rows += group.num_rows
        self._written += self._buffered
        self._buffer, self._buffered, self._buffered_rows = [], 0, 0
        if self._written >= self.target_bytes:
            self._close_shard()

    def _open(self) -> None:
        path = self.path_pattern.format(len(self.shards))
        self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        # Locally, Arrow writes the file natively (a Python file object in between costs about
        # as much as the write) and the checksum is read back from the page cache on close.
        self._sink = (
            None if storage.is_local(self.fs) else storage.HashingWriter(self.fs.open(path, "wb"))
        )
        # Tensor cells are already encoded (png, zstd...) or raw arrays: compressing them again
        # or trying dictionaries on them costs time in this single writer for nothing.
        plain = [f.name for f in self.schema if f.type == TENSOR_TYPE]
        compression: dict[str, str] = {f.name: "zstd" for f in self.schema}
        compression.update({name: "none" for name in plain})
        self._writer = pq.ParquetWriter(
            self._sink if self._sink is not None else path,
            self.schema,
            compression=compression,
            compression_level={f.name: 3 for f in self.schema if f.name not in plain},
            write_statistics=[f.name for f in self.schema if f.name not in plain],
            use_dictionary=[f.name for f in self.schema if f.name not in plain],
        )
        self.shards.append({"path": path, "rows": 0, "bytes": 0, "sha256": ""})

    def _close_shard(self) -> None:
        assert self._writer is not None
        self._writer.close()
        shard = self.shards[-1]
        if self._sink is not None:
            self._sink.close()
            size, digest = self._sink.size, self._sink.sha256
        else:
            size, digest = self.fs.size(shard["path"]), storage.sha256_file(self.fs, shard["path"])
        shard.update(rows=self._rows, bytes=size, sha256=digest)
        self._writer, self._sink, self._rows, self._written = None, None, 0, 0

    def discard(self) -> None:
        """Close without finishing: the file is left for the caller to remove."""
        if self._writer is not None:
            self._writer.close()
        if self._sink is not None:
            self._sink.close()
        self._writer, self._sink, self._buffer = None, None, []

    def close(self) -> list[dict[str, Any]]:
        self._flush_group()
        if self._writer is not None:
            self._close_shard()
        if not self.shards:  # an empty table still gets one (empty) shard with its schema
            self._open()
            self._close_shard()
        return self.shards


def _refuse_duplicate_ids(
    fs: fsspec.AbstractFileSystem, root: str, table: str, shards: list[dict[str, Any]]
) -> None:
    """Payload shards are written by the workers, one per unit: check that no id repeats
    across them (reading only the id column) rather than publish a dataset that fails
    validation."""
    key = get_schema(table).primary_key
    if not key or len(shards) < 2:
        return
    ids = []
    for shard in shards:
        with fs.open(storage.join(root, shard["path"]), "rb") as fh:
            ids.append(pq.read_table(fh, columns=[key]).column(key))
    column = pa.chunked_array([c for chunked in ids for c in chunked.chunks], pa.int64())
    if len(column.unique()) != len(column):
        raise SchemaError(
            f"The adapter emitted the same {key} for different rows of {table} in two work units.",
            "This is an adapter bug (ids must be unique per source object); please report it.",
        )


def _first_seen(keys: list[Any], seen: set[Any]) -> list[bool]:
    keep = []
    for k in keys:
        new = k not in seen
        if new:
            seen.add(k)
        keep.append(new)
    return keep


@dataclass
class TableWritten:
    """The manifest entry of one written table, plus the duplicate count."""

    schema: TableSchema
    rows: int
    bytes: int
    shards: list[dict[str, Any]]
    duplicates_dropped: int

    def manifest_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "schema": self.schema.ref,
            "rows": self.rows,
            "bytes": self.bytes,
            "shards": self.shards,
        }
        if self.duplicates_dropped:
            entry["duplicates_dropped"] = self.duplicates_dropped
        return entry


def write_table(
    fs: fsspec.AbstractFileSystem,
    root: str,
    table: str,
    batches: Iterable[pa.RecordBatch],
    *,
    target_shard_bytes: int = TARGET_SHARD_BYTES,
    row_group_bytes: int = ROW_GROUP_BYTES,
) -> TableWritten:
    """Write ``batches`` as the shards of ``table``, keeping the first row of each primary key."""
    schema = get_schema(table)
    pattern = storage.join(root, "tables", table, "part-{:05d}.parquet")
    arrow_schema: pa.Schema | None = None
    writer: _ShardWriter | None = None
    seen: set[Any] = set()
    dropped = 0
    for batch in batches:
        conformed = schema.conform(pa.Table.from_batches([batch]))
        if arrow_schema is None:
            arrow_schema = conformed.schema
            writer = _ShardWriter(fs, pattern, arrow_schema, target_shard_bytes, row_group_bytes)
        elif conformed.schema != arrow_schema:
            conformed = _unify(conformed, arrow_schema, table)
        if schema.primary_key:
            keep = _first_seen(conformed.column(schema.primary_key).to_pylist(), seen)
            if not all(keep):
                dropped += keep.count(False)
                conformed = conformed.filter(pa.array(keep))
        assert writer is not None
        for rb in conformed.to_batches():
            writer.write(rb)
    if writer is None:
        writer = _ShardWriter(
            fs, pattern, schema.arrow_schema(), target_shard_bytes, row_group_bytes
        )
    shards = [{**s, "path": s["path"][len(root) + 1 :]} for s in writer.close()]
    return TableWritten(
        schema=schema,
        rows=sum(s["rows"] for s in shards),
        bytes=sum(s["bytes"] for s in shards),
        shards=shards,
        duplicates_dropped=dropped,
    )


def _unify(table: pa.Table, target: pa.Schema, name: str) -> pa.Table:
    """Make a later batch match the first batch's schema (extra columns that appear late)."""
    missing = [f for f in target if f.name not in table.column_names]
    for f in missing:
        table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    extra = [n for n in table.column_names if target.get_field_index(n) < 0]
    if extra:
        raise SchemaError(
            f"Table {name} gained extension column(s) {extra} after its first shard was written.",
            "Make the adapter emit the same columns for every unit (use None for missing values).",
        )
    return table.select(target.names).cast(target)


def collect_quarantine(entries: Iterable[JournalEntry]) -> list[dict[str, str]]:
    """All quarantine records of a run, in unit order."""
    return [q for e in entries for q in e.quarantine]


def sum_deid_counts(entries: Iterable[JournalEntry]) -> dict[str, int]:
    """De-identification counts by PHI type over all units."""
    total: Counter[str] = Counter()
    for e in entries:
        total.update(e.deid_counts)
    return dict(sorted(total.items()))


def phi_items_replaced(counts: dict[str, int]) -> int:
    """PHI items replaced, from de-identification counts: text entities plus DICOM attributes
    acted on (file counts and risk flags are not items)."""
    return sum(v for k, v in counts.items() if k not in ("dicom_files", "dicom_burned_in_risk"))
