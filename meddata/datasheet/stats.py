"""Statistics of a converted dataset, computed from its tables and manifest (never by hand).

Demographic distributions are counted over samples and over distinct persons (a person whose
rows carry two values of an attribute counts once under each). Label counts are over samples.
Per-patient summaries cover the patients that have at least one row of the kind counted.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import polars as pl

from meddata import demographics, storage
from meddata.dataset import Dataset
from meddata.datasheet import stats_model
from meddata.datasheet.stats_model import (
    MISSING,
    Category,
    DeidSummary,
    LabelCounts,
    SplitStatistics,
    Statistics,
    Summary,
)

#: Sample columns shown as demographics (site and device have their own counts).
DEMOGRAPHIC_COLUMNS = demographics.DEMOGRAPHIC_ATTRIBUTES
#: Payload tables counted per patient, with the word used for them.
PER_PATIENT_TABLES: dict[str, str] = {
    "image": "images",
    "volume": "volumes",
    "signal": "signals",
    "video": "videos",
    "pose": "poses",
    "note": "notes",
}
_NOT_DEMOGRAPHIC = {"site", "device", "manufacturer"}
#: What a row of a table with ``modality_source_value`` is, in words.
_KIND = {"image_occurrence": "image", "procedure_occurrence": "procedure"}
#: The modality of rows whose source records none.
NOT_RECORDED = "not recorded"


def compute_statistics(ds: Dataset) -> Statistics:
    """Every measurable fact of ``ds`` that a Healthsheet reports."""
    manifest = ds.manifest
    tables = _table_rows(ds)
    samples = _samples_frame(ds) if "samples" in tables else None
    labels = label_columns(ds, samples)
    attributes = demographic_columns(ds, samples)
    stats = Statistics(
        dataset=ds.name,
        version=ds.version,
        statistics_version=stats_model.STATISTICS_VERSION,
        created=manifest.get("created"),
        source_release=(manifest.get("source") or {}).get("release"),
        adapter=_adapter(manifest.get("adapter")),
        tables=tables,
        patients=_patients(ds, samples),
        samples=samples.height if samples is not None else None,
        studies=_studies(ds),
        per_patient=_per_patient(ds, samples),
        modalities=_modalities(ds),
        devices=_value_counts(samples, "device"),
        manufacturers=_manufacturers(ds),
        sites=_value_counts(samples, "site"),
        labels=list(labels),
        missingness=missingness(ds),
        deid=_deid(manifest.get("deid")),
        quarantined=int((manifest.get("quarantine") or {}).get("count", 0) or 0),
        split_reports=_split_reports(manifest.get("splits")),
    )
    if samples is not None:
        stats.overall = split_statistics(samples, attributes, labels)
        stats.splits = _per_split(ds, samples, attributes, labels)
    return stats


def statistics_after_amendment(ds: Dataset, stored: Statistics | None) -> Statistics:
    """The statistics of ``ds`` after an amendment (a split set added or replaced), given
    those stored before it. Stored statistics of these tables, computed the way this meddata
    computes them (``STATISTICS_VERSION``), are kept with only the split-set facts computed
    again — all that an amendment changes — which reads ``samples`` and the split files, none
    of the other tables (a note table can hold gigabytes of text). Anything else: all computed
    again."""
    now = (ds.name, ds.version, stats_model.STATISTICS_VERSION, _table_rows(ds))
    if (
        stored is None
        or (
            stored.dataset,
            stored.version,
            stored.statistics_version,
            stored.tables,
        )
        != now
    ):
        return compute_statistics(ds)
    samples = _samples_frame(ds) if "samples" in ds.manifest["tables"] else None
    splits: dict[str, dict[str, SplitStatistics]] = {}
    if samples is not None:
        labels = label_columns(ds, samples)
        splits = _per_split(ds, samples, demographic_columns(ds, samples), labels)
    return stored.model_copy(
        update={"splits": splits, "split_reports": _split_reports(ds.manifest.get("splits"))}
    )


def _table_rows(ds: Dataset) -> dict[str, int]:
    return {name: int(entry.get("rows", 0)) for name, entry in ds.manifest["tables"].items()}


def label_columns(ds: Dataset, samples: pl.DataFrame | None) -> dict[str, str]:
    """Label name → its ``label_<name>`` column in ``samples`` (manifest order first)."""
    if samples is None:
        return {}
    present = [c for c in samples.columns if c.startswith("label_")]
    names = [n for n in ds.labels if f"label_{n}" in present]
    names += [c.removeprefix("label_") for c in present if c.removeprefix("label_") not in names]
    return {n: f"label_{n}" for n in names}


def demographic_columns(ds: Dataset, samples: pl.DataFrame | None) -> list[str]:
    """Attribute columns shown as demographics: those listed in the manifest, and known ones
    holding at least one value."""
    if samples is None:
        return []
    listed = (ds.manifest.get("tasks") or {}).get("sensitive_attributes") or []
    out = [a for a in listed if a in samples.columns and a not in _NOT_DEMOGRAPHIC]
    for column in DEMOGRAPHIC_COLUMNS:
        if column in samples.columns and column not in out:
            if samples.get_column(column).null_count() < samples.height:
                out.append(column)
    return out


def split_statistics(
    samples: pl.DataFrame, attributes: Iterable[str], labels: Mapping[str, str]
) -> SplitStatistics:
    """Persons, samples, demographic counts and label counts of ``samples``."""
    demographics: dict[str, dict[str, Category]] = {}
    for attribute in attributes:
        counts = (
            samples.group_by(attribute)
            .agg(pl.len().alias("samples"), pl.col("person_id").n_unique().alias("persons"))
            .with_columns(pl.col(attribute).cast(pl.String).fill_null(MISSING))
            .sort(attribute)
        )
        demographics[attribute] = {
            str(row[attribute]): Category(samples=row["samples"], persons=row["persons"])
            for row in counts.iter_rows(named=True)
        }
    return SplitStatistics(
        persons=samples.get_column("person_id").n_unique(),
        samples=samples.height,
        demographics=demographics,
        labels=label_counts(samples, labels),
    )


def label_counts(samples: pl.DataFrame, labels: Mapping[str, str]) -> dict[str, LabelCounts]:
    """Positive / negative / uncertain / missing counts of each label column."""
    if not labels:
        return {}
    exprs: list[pl.Expr] = []
    for name, column in labels.items():
        value = pl.col(column).cast(pl.Float64).fill_nan(None)
        exprs += [
            (value == 1.0).sum().alias(f"{name}\x00positive"),
            (value == 0.0).sum().alias(f"{name}\x00negative"),
            (value == -1.0).sum().alias(f"{name}\x00uncertain"),
            value.is_null().sum().alias(f"{name}\x00missing"),
        ]
    row = samples.select(exprs).row(0, named=True) if samples.height else {}
    out: dict[str, LabelCounts] = {}
    for name in labels:
        got = {k: int(row.get(f"{name}\x00{k}") or 0) for k in LabelCounts.model_fields}
        got["other"] = samples.height - sum(v for k, v in got.items() if k != "other")
        out[name] = LabelCounts(**got)
    return out


def missingness(ds: Dataset) -> dict[str, dict[str, float]]:
    """Fraction of null values per column of every table (tensor cells are skipped)."""
    out: dict[str, dict[str, float]] = {}
    for table, entry in ds.manifest["tables"].items():
        rows = int(entry.get("rows", 0))
        frame = ds.table(table)
        columns = [c for c, t in frame.collect_schema().items() if not _is_tensor(t)]
        if not columns or rows == 0:
            out[table] = {c: 0.0 for c in columns}
            continue
        nulls = frame.select(pl.col(c).null_count() for c in columns).collect().row(0)
        out[table] = {c: round(n / rows, 6) for c, n in zip(columns, nulls, strict=True)}
    return out


def summarize(counts: pl.Series) -> Summary | None:
    """Summary of per-patient counts (``None`` when there are none)."""
    if counts.len() == 0:
        return None
    return Summary(
        patients=counts.len(),
        total=int(counts.sum()),
        min=int(counts.min()),  # type: ignore[arg-type]
        median=float(counts.median()),  # type: ignore[arg-type]
        mean=round(float(counts.mean()), 6),  # type: ignore[arg-type]
        max=int(counts.max()),  # type: ignore[arg-type]
    )


# --------------------------------------------------------------------------------------------


def _is_tensor(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Struct) and {"data", "codec"} <= {f.name for f in dtype.fields}


def _samples_frame(ds: Dataset) -> pl.DataFrame:
    frame = ds.table("samples")
    schema = frame.collect_schema()
    keep = [c for c, t in schema.items() if not _is_tensor(t) and not isinstance(t, pl.List)]
    return frame.select(keep).collect()


def _patients(ds: Dataset, samples: pl.DataFrame | None) -> int | None:
    if "person" in ds.manifest["tables"]:
        return int(ds.table("person").select(pl.col("person_id").n_unique()).collect().item())
    if samples is not None:
        return samples.get_column("person_id").n_unique()
    return None


def _studies(ds: Dataset) -> int | None:
    tables = ds.manifest["tables"]
    if "image_occurrence" in tables:
        frame = ds.table("image_occurrence").select(pl.col("image_study_uid").n_unique())
        return int(frame.collect().item())
    if "visit_occurrence" in tables:
        frame = ds.table("visit_occurrence").select(pl.col("visit_occurrence_id").n_unique())
        return int(frame.collect().item())
    return None


def _per_patient(ds: Dataset, samples: pl.DataFrame | None) -> dict[str, Summary]:
    counts: dict[str, pl.Series] = {}
    if samples is not None:
        counts["samples"] = samples.group_by("person_id").len().get_column("len")
    tables = ds.manifest["tables"]
    if "image_occurrence" in tables:
        counts["studies"] = (
            ds.table("image_occurrence")
            .drop_nulls("image_study_uid")
            .group_by("person_id")
            .agg(pl.col("image_study_uid").n_unique().alias("n"))
            .collect()
            .get_column("n")
        )
    for table, word in PER_PATIENT_TABLES.items():
        if table in tables and "person_id" in ds.table(table).collect_schema():
            frame = ds.table(table).select("person_id").drop_nulls().group_by("person_id").len()
            counts[word] = frame.collect().get_column("len")
    out = {}
    for key, series in counts.items():
        summary = summarize(series)
        if summary is not None:
            out[key] = summary
    return out


def _modalities(ds: Dataset) -> dict[str, int]:
    """Rows per modality. Where the source records none (PNG/JPEG releases carry no DICOM
    header), the rows are counted as ``not recorded (<site> <kind>)``, never as missing data."""
    out: dict[str, int] = {}
    for table in ds.manifest["tables"]:
        schema = ds.table(table).collect_schema()
        if "modality_source_value" in schema:
            site = (
                pl.col("anatomic_site_source_value").cast(pl.String)
                if "anatomic_site_source_value" in schema
                else pl.lit(None, pl.String)
            )
            counts = (
                ds.table(table)
                .select(pl.col("modality_source_value").cast(pl.String), site.alias("__site"))
                .group_by("modality_source_value", "__site")
                .len()
                .collect()
            )
            for value, where, n in counts.iter_rows():
                key = str(value) if value is not None else not_recorded(table, where)
                out[key] = out.get(key, 0) + int(n)
    for table in ("signal", "video", "pose"):
        if table in ds.manifest["tables"] and "modality_source_value" not in (
            ds.table(table).collect_schema()
        ):
            out[table] = out.get(table, 0) + int(ds.manifest["tables"][table].get("rows", 0))
    return dict(sorted(out.items()))


def not_recorded(table: str, site: str | None = None) -> str:
    """How rows of ``table`` whose source records no modality are counted."""
    kind = _KIND.get(table, table)
    return f"{NOT_RECORDED} ({site} {kind})" if site else f"{NOT_RECORDED} ({kind})"


def _manufacturers(ds: Dataset) -> dict[str, int]:
    out: dict[str, int] = {}
    for table in ds.manifest["tables"]:
        if "manufacturer" in ds.table(table).collect_schema():
            counts = ds.table(table).drop_nulls("manufacturer").group_by("manufacturer").len()
            for value, n in counts.collect().iter_rows():
                out[str(value)] = out.get(str(value), 0) + int(n)
    return dict(sorted(out.items()))


def _value_counts(samples: pl.DataFrame | None, column: str) -> dict[str, int]:
    if samples is None or column not in samples.columns:
        return {}
    if samples.get_column(column).null_count() == samples.height:
        return {}
    counts = samples.group_by(pl.col(column).cast(pl.String).fill_null(MISSING)).len()
    return {str(v): int(n) for v, n in sorted(counts.iter_rows())}


def _per_split(
    ds: Dataset, samples: pl.DataFrame, attributes: list[str], labels: Mapping[str, str]
) -> dict[str, dict[str, SplitStatistics]]:
    out: dict[str, dict[str, SplitStatistics]] = {}
    for set_name, info in (ds.manifest.get("splits") or {}).items():
        tagged = _tag_split(ds, samples, info if isinstance(info, dict) else {})
        if tagged is None:
            continue
        names = sorted(str(n) for n in tagged.get_column("__split").drop_nulls().unique())
        out[set_name] = {
            name: split_statistics(tagged.filter(pl.col("__split") == name), attributes, labels)
            for name in order_splits(names)
        }
    return out


def _tag_split(ds: Dataset, samples: pl.DataFrame, info: dict[str, Any]) -> pl.DataFrame | None:
    """``samples`` with a ``__split`` column for the split set ``info`` (None if unreadable)."""
    path = info.get("path")
    if path is None:
        if "split" not in samples.columns:
            return None
        return samples.with_columns(pl.col("split").cast(pl.String).alias("__split"))
    try:
        with ds.fs.open(storage.join(ds.root, str(path)), "rb") as fh:
            assignments = pl.read_parquet(fh)
    except (OSError, pl.exceptions.PolarsError):
        return None  # `meddata validate` reports a missing or broken split file
    key = next((k for k in ("sample_id", "person_id") if k in assignments.columns), None)
    if key is None or "split" not in assignments.columns or key not in samples.columns:
        return None
    chosen = assignments.select(
        pl.col(key).cast(samples.schema[key]), pl.col("split").cast(pl.String).alias("__split")
    ).unique(subset=[key], keep="first")
    return samples.join(chosen, on=key, how="left")


_ORDER = ("train", "training", "tuning", "val", "valid", "validate", "validation", "dev", "test")


def order_splits(names: Iterable[str]) -> list[str]:
    """Split names in reading order: train, then validation names, then test, then the rest."""

    def key(name: str) -> tuple[int, str]:
        low = name.lower()
        return (_ORDER.index(low) if low in _ORDER else len(_ORDER), low)

    return sorted(names, key=key)


def _adapter(adapter: Any) -> dict[str, Any] | None:
    if not isinstance(adapter, dict) or not adapter.get("name"):
        return None
    return {
        "name": str(adapter["name"]),
        "version": str(adapter.get("version") or ""),
        "options": dict(adapter.get("options") or {}),
    }


def _deid(deid: Any) -> DeidSummary:
    if not isinstance(deid, dict):
        return DeidSummary(applied=False)
    counts = {str(k): int(v) for k, v in (deid.get("counts") or {}).items() if _is_int(v)}
    profile = {k: v for k, v in deid.items() if k not in ("counts", "key_fingerprint")}
    return DeidSummary(
        applied=True,
        total_replaced=sum(counts.values()),
        counts=dict(sorted(counts.items())),
        profile=profile or None,
        key_fingerprint=deid.get("key_fingerprint"),
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _split_reports(splits: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(splits, dict):
        return {}
    return {
        str(name): info["report"]
        for name, info in splits.items()
        if isinstance(info, dict) and isinstance(info.get("report"), dict)
    }
