"""Statistics laid out as plain tables (title, header, rows), shared by the Markdown and HTML
renderers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from meddata.datasheet.stats_model import SplitStatistics, Statistics


@dataclass
class StatTable:
    """One table of statistics."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def pct(part: int | float, whole: int | float) -> str:
    """``part`` as a percentage of ``whole``."""
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def split_columns(stats: Statistics) -> list[tuple[str, SplitStatistics]]:
    """``(label, statistics)``: all samples first, then each split of each split set."""
    out: list[tuple[str, SplitStatistics]] = []
    if stats.overall is not None:
        out.append(("all", stats.overall))
    for set_name, splits in stats.splits.items():
        for name, part in splits.items():
            label = name if set_name == "official" else f"{set_name}/{name}"
            out.append((label, part))
    return out


def overview(stats: Statistics) -> StatTable:
    """Headline counts."""
    rows = [
        ["patients", _n(stats.patients)],
        ["samples", _n(stats.samples)],
        ["studies", _n(stats.studies)],
    ]
    rows += [[f"rows in {t}", _n(n)] for t, n in stats.tables.items()]
    rows.append(["quarantined inputs", _n(stats.quarantined)])
    if stats.source_release:
        rows.append(["source release", stats.source_release])
    if stats.adapter:
        rows.append(["converted with", conversion(stats.adapter)])
    if stats.created:
        rows.append(["converted on", stats.created[:10]])
    return StatTable("Overview", ["quantity", "value"], rows, key="overview")


def conversion(adapter: dict[str, Any]) -> str:
    """The adapter and options a dataset was converted with, in words."""
    text = f"meddata adapter {adapter.get('name')}"
    if adapter.get("version"):
        text += f" (version {adapter['version']})"
    options = adapter.get("options") or {}
    if options:
        text += ", options " + ", ".join(f"{k}={v}" for k, v in sorted(options.items()))
    return text


def per_patient(stats: Statistics) -> StatTable:
    """Records per patient."""
    rows = [
        [k, _n(s.patients), _n(s.total), str(s.min), f"{s.median:g}", f"{s.mean:.2f}", str(s.max)]
        for k, s in stats.per_patient.items()
    ]
    header = ["per patient", "patients", "total", "min", "median", "mean", "max"]
    return StatTable("Records per patient", header, rows, key="per_patient")


def counts(title: str, values: dict[str, int], what: str) -> StatTable:
    """A value → count table with shares."""
    total = sum(values.values())
    rows = [[v, _n(n), pct(n, total)] for v, n in sorted(values.items(), key=lambda x: -x[1])]
    return StatTable(title, [what, "count", "share"], rows, key=what)


def demographics(stats: Statistics) -> list[StatTable]:
    """One table per demographic attribute: share of samples (and persons) per split."""
    columns = split_columns(stats)
    if stats.overall is None:
        return []
    out = []
    for attribute, values in stats.overall.demographics.items():
        header = ["value", "persons (all)"] + [f"samples: {label}" for label, _ in columns]
        rows = []
        for value, cat in values.items():
            row = [value, _n(cat.persons)]
            for _, part in columns:
                got = part.demographics.get(attribute, {}).get(value)
                row.append(f"{_n(got.samples)} ({pct(got.samples, part.samples)})" if got else "0")
            rows.append(row)
        out.append(StatTable(f"Demographics: {attribute}", header, rows, key=attribute))
    return out


def labels(stats: Statistics) -> list[StatTable]:
    """One table per split: label prevalence with uncertain (-1) and missing (null) shown."""
    out = []
    for label, part in split_columns(stats):
        rows = []
        for name, c in part.labels.items():
            n = c.total
            rows.append(
                [
                    name,
                    f"{_n(c.positive)} ({pct(c.positive, n)})",
                    f"{_n(c.negative)} ({pct(c.negative, n)})",
                    f"{_n(c.uncertain)} ({pct(c.uncertain, n)})",
                    f"{_n(c.missing)} ({pct(c.missing, n)})",
                ]
            )
        if rows:
            header = ["label", "positive (1)", "negative (0)", "uncertain (-1)", "missing (null)"]
            out.append(StatTable(f"Labels: {label}", header, rows, key=label))
    return out


def missingness(stats: Statistics) -> StatTable:
    """Columns with missing values."""
    rows = [
        [f"{table}.{column}", pct(frac, 1.0)]
        for table, columns in stats.missingness.items()
        for column, frac in columns.items()
        if frac > 0
    ]
    note = "Columns not listed have no missing values; tensor cells are not counted."
    return StatTable("Missing values", ["column", "missing"], rows, note=note, key="missing")


def deid(stats: Statistics) -> StatTable:
    """De-identification counts."""
    d = stats.deid
    if not d.applied:
        rows = [["applied", "no (the manifest records no de-identification run)"]]
    else:
        rows = [["applied", "yes"], ["PHI items replaced", _n(d.total_replaced)]]
        rows += [[f"replaced: {k}", _n(v)] for k, v in d.counts.items()]
        if d.key_fingerprint:
            rows.append(["key fingerprint", d.key_fingerprint])
    return StatTable("De-identification", ["item", "value"], rows, key="deid")


def split_reports(stats: Statistics) -> list[StatTable]:
    """The split reports stored in the manifest (read defensively)."""
    out = []
    for name, report in stats.split_reports.items():
        rows = []
        splits = report.get("splits") if isinstance(report.get("splits"), dict) else {}
        for split, part in (splits or {}).items():
            if isinstance(part, dict):
                frac = part.get("fraction_persons")
                rows.append(
                    [
                        str(split),
                        _n(part.get("persons")),
                        _n(part.get("samples")),
                        f"{frac:.3f}" if isinstance(frac, int | float) else "–",
                    ]
                )
        notes = []
        dev = report.get("max_deviation")
        if isinstance(dev, dict) and dev.get("attribute") is not None:
            value = dev.get("value")
            shown = f"{value:.3f}" if isinstance(value, int | float) else "?"
            notes.append(
                f"largest subgroup deviation {shown} ({dev.get('attribute')}={dev.get('group')} "
                f"in {dev.get('split')})"
            )
        leak = report.get("leakage")
        if isinstance(leak, dict) and "persons_in_multiple_splits" in leak:
            notes.append(f"persons in more than one split: {leak['persons_in_multiple_splits']}")
        header = ["split", "persons", "samples", "fraction of persons"]
        out.append(StatTable(f"Split report: {name}", header, rows, "; ".join(notes), key=name))
    return out


def all_tables(stats: Statistics) -> list[StatTable]:
    """Every statistics table, in reading order (empty ones dropped)."""
    tables = [overview(stats), per_patient(stats)]
    tables += [
        counts("Modalities", stats.modalities, "modality"),
        counts("Devices", stats.devices, "device"),
        counts("Manufacturers", stats.manufacturers, "manufacturer"),
        counts("Sites", stats.sites, "site"),
    ]
    tables += demographics(stats) + labels(stats) + split_reports(stats)
    tables += [missingness(stats), deid(stats)]
    return [t for t in tables if t.rows]


def _n(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
