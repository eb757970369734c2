"""Reading a dataset: ``meddata.load(...)`` → ``Dataset``."""

from __future__ import annotations

import hashlib
import io
from typing import TYPE_CHECKING, Any

import fsspec
import polars as pl

from meddata import storage
from meddata.errors import MeddataError, SchemaError, UsageError
from meddata.home import locate
from meddata.manifest import Manifest, read_manifest
from meddata.schema import resolve_ref

if TYPE_CHECKING:  # pyarrow.dataset costs ~0.4 s to import: only load it when a reader needs it
    import pyarrow as pa
    import pyarrow.dataset as pads


def check_relative(path: str) -> None:
    """Refuse a manifest path that points outside the dataset (absolute, or with '..')."""
    if path.startswith(("/", "\\")) or "://" in path or ".." in path.split("/"):
        raise SchemaError(
            f"The manifest names a file outside the dataset ({path!r}).",
            "The manifest is corrupt or was tampered with: restore it or re-run the conversion.",
        )


class Dataset:
    """One published dataset version. Tables are read lazily with polars or pyarrow."""

    def __init__(self, fs: fsspec.AbstractFileSystem, root: str, manifest: Manifest) -> None:
        self.fs = fs
        self.root = root
        self.manifest = manifest
        self._schemas: dict[str, pa.Schema] = {}
        for entry in manifest["tables"].values():
            resolve_ref(entry["schema"])  # refuses unknown major schema versions up front
            for shard in entry["shards"]:
                check_relative(shard["path"])

    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def path(self) -> str:
        """The dataset's location as a path or URL."""
        return storage.url_of(self.fs, self.root)

    @property
    def tables(self) -> list[str]:
        """Names of the tables this dataset holds."""
        return list(self.manifest["tables"])

    @property
    def splits(self) -> dict[str, Any]:
        """The named splits recorded in the manifest (``official`` is the release's own)."""
        return dict(self.manifest.get("splits") or {})

    @property
    def labels(self) -> list[str]:
        """Task label names; their columns in ``samples`` are ``label_<name>``."""
        return list((self.manifest.get("tasks") or {}).get("labels", []))

    @property
    def datasheet(self) -> Any:
        """The dataset's Healthsheet (``meddata.datasheet.Healthsheet``)."""
        from meddata.datasheet import load_healthsheet

        return load_healthsheet(self)

    def shard_urls(self, table: str) -> list[str]:
        """The Parquet shards of ``table``, as paths or URLs."""
        entry = self._entry(table)
        return [
            storage.url_of(self.fs, storage.join(self.root, s["path"])) for s in entry["shards"]
        ]

    def arrow(self, table: str) -> pads.Dataset:
        """``table`` as a ``pyarrow.dataset.Dataset`` (works on any fsspec filesystem); its
        schema is that of all its shards together, as :meth:`table`'s."""
        import pyarrow.dataset as pads

        paths = [storage.join(self.root, s["path"]) for s in self._entry(table)["shards"]]
        schema = self._schema(table) if len(paths) > 1 else None
        return pads.dataset(paths, format="parquet", filesystem=_arrow_fs(self.fs), schema=schema)

    def table(self, table: str) -> pl.LazyFrame:
        """``table`` as a polars LazyFrame. Columns are those of all its shards together: a
        column some shards lack (an adapter's optional extra) reads as null there."""
        if not storage.is_local(self.fs):
            return pl.scan_pyarrow_dataset(self.arrow(table))
        urls = self.shard_urls(table)
        if len(urls) == 1:
            return pl.scan_parquet(urls)
        schema = pl.DataFrame(self._schema(table).empty_table()).schema
        return pl.scan_parquet(urls, schema=schema, missing_columns="insert")

    def _schema(self, table: str) -> pa.Schema:
        """The union of ``table``'s shard schemas, in first-seen column order (read from the
        shard footers once per table)."""
        if table not in self._schemas:
            import pyarrow as pa
            import pyarrow.parquet as pq

            filesystem = _arrow_fs(self.fs)
            try:
                schemas = [
                    pq.read_schema(storage.join(self.root, s["path"]), filesystem=filesystem)
                    for s in self._entry(table)["shards"]
                ]
                same = all(s == schemas[0] for s in schemas[1:])
                self._schemas[table] = (
                    schemas[0] if same else pa.unify_schemas(schemas, promote_options="permissive")
                )
            except (OSError, pa.ArrowException) as exc:
                raise SchemaError(
                    f"The shards of table {table} of {self.name} cannot be read together "
                    f"({type(exc).__name__}).",
                    f"Run `meddata validate {self.path}` to see which shard is missing or damaged.",
                ) from exc
        return self._schemas[table]

    def samples(self, split: str | None = None, splits: str = "official") -> pl.LazyFrame:
        """The ML view, optionally restricted to one split of the named split set ``splits``."""
        frame = self.table("samples")
        if split is None:
            return frame
        info = self.splits.get(splits)
        if info is None:
            known = ", ".join(self.splits) or "none yet"
            name = "fair" if splits == "official" else splits  # 'official' is the release's own
            hint = (
                f"Pass splits={next(iter(self.splits))!r} to use the one it has, or create one"
                if self.splits
                else "Create one"
            )
            raise UsageError(
                f"Dataset {self.name} has no split set called {splits!r} (it has: {known}).",
                f"{hint} with `meddata split {self.path} --name {name}` and pass splits={name!r}.",
            )
        names = list(((info.get("report") or {}).get("splits")) or {})
        if names and split not in names:
            raise UsageError(
                f"Split set {splits!r} of {self.name} has no split {split!r}.",
                f"Its splits: {', '.join(names)}.",
            )
        if info.get("path") is None:  # the release's own split lives in samples.split
            return frame.filter(pl.col("split") == split)
        assignments = self._split_frame(info["path"], info.get("sha256"))
        chosen = assignments.filter(pl.col("split") == split).select("person_id")
        return (
            frame.drop("split")
            .join(chosen, on="person_id", how="semi")
            .with_columns(pl.lit(split).alias("split"))
        )

    def _split_frame(self, rel: str, sha256: str | None) -> pl.LazyFrame:
        """A split set's assignments, read whole (one small file) and checked against the
        manifest's checksum, so a damaged file is named here rather than deep in a query."""
        data = self.fs.cat_file(storage.join(self.root, rel))
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise MeddataError(
                f"The split file {rel} of {self.name} does not match its checksum.",
                f"Run `meddata validate {self.path}`; recreate the split set with "
                "`meddata split ... --overwrite`.",
            )
        return pl.read_parquet(io.BytesIO(data)).lazy()

    def _entry(self, table: str) -> dict[str, Any]:
        try:
            return dict(self.manifest["tables"][table])
        except KeyError:
            raise UsageError(
                f"Dataset {self.name} has no table {table!r}.",
                f"Its tables: {', '.join(self.tables)}.",
            ) from None

    def __repr__(self) -> str:
        rows = ", ".join(f"{t}={e['rows']}" for t, e in self.manifest["tables"].items())
        return f"Dataset({self.name}@{self.version}, {rows}, path={self.path!r})"

    def torch(self, split: str | None = "train", preset: Any = None, **options: Any) -> Any:
        """A ready ``torch.utils.data.DataLoader`` (a ``meddata.torch.MeddataLoader``) over ``split``.

        Options: ``batch_size``, ``num_workers``, ``shuffle``, ``seed``, ``device``, ``cache``,
        ``on_error``, ``splits``, ``rank``/``world_size`` and the preset's own options; see
        ``meddata.torch.make_loader``. ``split=None`` streams every sample.
        """
        from meddata.torch import make_loader

        return make_loader(self, split, preset, **options)

    def torch_dataset(self, split: str | None = "train", preset: Any = None, **options: Any) -> Any:
        """The ``meddata.torch.StreamingDataset`` behind ``torch()``, for your own DataLoader."""
        from meddata.torch import StreamingDataset

        return StreamingDataset(self, split, preset=preset, **options)


def _arrow_fs(fs: fsspec.AbstractFileSystem) -> Any:
    """The pyarrow filesystem for ``fs`` (None for the local disk, which pyarrow reads itself)."""
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return None if storage.is_local(fs) else PyFileSystem(FSSpecHandler(fs))


def load(
    target: str, version: str | None = None, storage_options: dict[str, Any] | None = None
) -> Dataset:
    """Open a dataset by registered name (in ``MEDDATA_HOME``), local path or fsspec URL;
    ``storage_options`` (e.g. ``{"key": ..., "secret": ..., "endpoint_url": ...}`` for S3) go
    to the URL's fsspec filesystem, else its usual environment variables apply."""
    fs, root = locate(str(target), version, storage_options)
    return Dataset(fs, root, read_manifest(fs, root))
