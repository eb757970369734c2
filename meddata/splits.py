"""Fairness-aware dataset splits: grouped by person, stratified jointly on labels and subgroups.

Everything here is a pure function of a polars ``samples`` frame (the meddata ML view: one row
per example with ``person_id``, ``label_*`` columns and sensitive-attribute columns). The CLI
(``meddata split``) writes the returned assignments and report; this module never touches disk.

How a split is made:

1. **Units.** Persons are the unit. With ``by`` set to a coarser column (``site``,
   ``family_id``…) whole groups are the unit; groups that share a person are merged, so no
   person can ever sit in two splits.
2. **Features.** Per person, a label is *positive* if any of the person's rows is 1; uncertain
   (-1), missing (null/NaN) and 0 all count as "not positive" for stratification (the report
   still shows their rates). An attribute takes the person's most frequent non-null value, and
   ``"Unknown"`` when all rows are null. Each label and each attribute value becomes one
   indicator column; a unit's feature is the number of its persons having it, plus one column
   counting its persons (so fractions are met).
3. **Assignment.** Iterative stratification (Sechidis, Tsoumakas & Vlahavas, 2011), generalised
   to joint label + attribute-value indicators and vectorised: features are processed from the
   rarest to the most common; all still-unassigned units holding the feature are distributed in
   one batch so that each split receives what it still lacks of that feature (water-filling on
   the relative need, so small splits are not starved), and within the batch units are ordered
   by their remaining rare features and dealt out in an evenly interleaved sequence, which
   stratifies them implicitly on those features too. Few, unequal groups (``by="site"``) are
   placed one by one, largest first, by a greedy rule over all features instead.
4. **Determinism.** Units are ordered by a 64-bit hash of (seed, unit key) and all ties are
   broken by it, so the result depends on the seed and the data, never on row order.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from meddata import demographics
from meddata.errors import UsageError

__all__ = [
    "DEFAULT_FRACTIONS",
    "SENSITIVE_ATTRIBUTES",
    "SplitResult",
    "make_splits",
    "official_split",
    "parse_fractions",
    "split_report",
    "to_meds_names",
]

LABEL_PREFIX = "label_"
UNKNOWN = "Unknown"
DEFAULT_FRACTIONS: dict[str, float] = {"train": 0.8, "val": 0.1, "test": 0.1}
#: Columns treated as sensitive attributes when present (stratified by default and reported).
SENSITIVE_ATTRIBUTES = demographics.SENSITIVE_ATTRIBUTES
MEDS_NAMES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "tuning",
    "valid": "tuning",
    "validate": "tuning",
    "validation": "tuning",
    "dev": "tuning",
    "tuning": "tuning",
    "test": "held_out",
    "held_out": "held_out",
    "heldout": "held_out",
    "holdout": "held_out",
}
_NAME_ORDER = ("train", "training", "tuning", "val", "valid", "validate", "validation", "dev")
_FRACTION_TOLERANCE = 1e-6
# Above this many units the greedy one-by-one placement is too slow; batches are used instead.
_GREEDY_MAX_UNITS = 10_000
_MASK64 = (1 << 64) - 1
# Within a batch, units are sorted by this many rarest features before their size.
_SIZE_AFTER = 3


@dataclass(frozen=True)
class SplitResult:
    """A split: who goes where, the evidence that it is fair, and how it was made.

    ``assignments`` has one row per person: ``person_id`` (int64), ``split`` (str) and, when
    the split was grouped by a coarser column, that column first (the person's smallest value).
    ``report`` and ``strategy`` are JSON-serialisable dicts for the manifest.
    """

    assignments: pl.DataFrame
    report: dict[str, Any]
    strategy: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------


def parse_fractions(text: str) -> dict[str, float]:
    """Parse ``"train=0.8,val=0.1,test=0.1"`` into ``{"train": 0.8, ...}`` (must sum to 1)."""
    hint = "Write it as NAME=FRACTION pairs separated by commas, e.g. train=0.8,val=0.1,test=0.1."
    out: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"Cannot read split fraction {part!r}.", hint)
        try:
            number = float(value)
        except ValueError:
            raise UsageError(f"Split fraction {part!r} is not a number.", hint) from None
        if name in out:
            raise UsageError(f"Split {name!r} is given twice in {text!r}.", hint)
        out[name] = number
    if not out:
        raise UsageError(f"No split fractions in {text!r}.", hint)
    _check_fractions(out)
    return out


def make_splits(
    samples: pl.DataFrame,
    *,
    by: str = "person_id",
    stratify: Sequence[str] | None = None,
    label_columns: Sequence[str] = (),
    fractions: Mapping[str, float] | None = None,
    folds: int | None = None,
    holdout: Mapping[str, Sequence[str]] | None = None,
    time_column: str | None = None,
    time_holdout_fraction: float | None = None,
    seed: int = 0,
) -> SplitResult:
    """Split persons (or coarser ``by`` groups) into leakage-free, jointly stratified splits.

    ``stratify`` lists attribute columns and/or the literal ``"labels"`` (all ``label_*``
    columns; ``label_columns`` overrides which). ``None`` (the default) stratifies on every
    label and every known sensitive attribute present; ``()`` balances sizes only.
    ``fractions`` (default train/val/test 0.8/0.1/0.1) or ``folds=k`` (``fold0``…) choose the
    splits. ``holdout={"site": ["X"]}`` sends every person with a matching row to ``test``;
    ``time_column`` + ``time_holdout_fraction`` sends the persons who appear latest to ``test``;
    the rest is then split by the remaining (renormalised) fractions or folds. Units are placed
    largest first; with ``by`` groups of unequal sizes the sizes decide most of the assignment
    and the seed mostly breaks ties, so repeated splits over seeds vary little there.
    """
    _check_nonempty(samples)
    _require_columns(samples, ["person_id", by], what="Split")
    check_seed(seed)
    if isinstance(stratify, str):
        stratify = [s.strip() for s in stratify.split(",") if s.strip()]
    labels = _resolve_labels(samples, stratify, label_columns)
    attributes = _resolve_attributes(samples, stratify)
    if holdout and (time_column is not None or time_holdout_fraction is not None):
        raise UsageError(
            "Hold out either by attribute values or by time, not both in one split.",
            "Make two named splits instead.",
        )
    _check_holdout(samples, holdout)
    kind, names, probs = _resolve_targets(
        fractions, folds, ood=bool(holdout) or time_column is not None
    )
    _check_person_ids(samples)
    report_attrs = _report_attributes(samples, attributes, [*(holdout or {})])
    persons = _person_table(samples, labels, report_attrs)
    units = _build_units(samples, persons, by, labels, attributes, seed)
    n_units = units.weight.size
    rng = np.random.default_rng(seed)

    held = np.zeros(n_units, dtype=bool)
    extra: dict[str, Any] = {}
    if holdout:
        kind = "holdout"
        held = _holdout_mask(samples, units, holdout)
    elif time_column is not None or time_holdout_fraction is not None:
        kind = "time"
        held, cutoff = _time_mask(samples, units, time_column, time_holdout_fraction)
        extra["time_cutoff"] = cutoff

    rest = np.flatnonzero(~held)
    if rest.size < len(names):
        what = "group(s)" if by != "person_id" else "person(s)"
        left = " left after the holdout" if held.any() else ""
        raise UsageError(
            f"Cannot make {len(names)} splits from {rest.size} {what}{left}.",
            "Use fewer splits or folds, or split a larger dataset.",
        )
    split_idx = np.full(n_units, len(names), dtype=np.int64)  # index len(names) == "test"
    split_idx[rest] = _assign(
        units.features[rest],
        units.weight[rest],
        units.rows[rest],
        units.hash[rest],
        np.asarray(probs),
        rng,
    )
    split_idx[rest] = _fill_empty_splits(split_idx[rest], units.hash[rest], len(names))
    all_names = [*names, "test"] if held.any() else names
    per_person = split_idx[units.person_unit]
    assignments = units.persons.select(
        *([pl.col("__by").alias(by)] if by != "person_id" else []),
        "person_id",
        pl.Series("split", np.asarray(all_names, dtype=object)[per_person], dtype=pl.String),
    )
    report = _report_from_rows(
        _rows_with_split(samples, assignments, by),
        all_names,
        persons=persons.select("person_id", *report_attrs),
        attributes=report_attrs,
        labels=_all_label_columns(samples),
        by=by,
        exclude=[*(holdout or {}), *([by] if by != "person_id" else [])],
    )
    strategy: dict[str, Any] = {
        "kind": kind,
        "by": by,
        "stratify": [*attributes, *labels],
        "fractions": dict(zip(names, probs, strict=True)) if folds is None else None,
        "folds": len(names) if folds is not None else None,
        "seed": seed,
        "holdout": {k: [str(v) for v in vs] for k, vs in holdout.items()} if holdout else None,
        "time_column": time_column,
        "time_holdout_fraction": time_holdout_fraction,
        "algorithm": "meddata iterative stratification (Sechidis et al. 2011, joint labels "
        "and attribute values, grouped units)",
        **extra,
    }
    return SplitResult(assignments=assignments, report=report, strategy=strategy)


def official_split(
    samples: pl.DataFrame, column: str = "split", *, by: str = "person_id"
) -> SplitResult:
    """Keep a release's own split (``split``, ``strat_fold``…) as a named meddata split.

    Row-level values are kept as strings. A person whose rows carry several splits is assigned
    to their most frequent one in ``assignments`` and counted in
    ``report["leakage"]["persons_in_multiple_splits"]``. Null values become ``"unassigned"``.
    """
    _check_nonempty(samples)
    _require_columns(samples, ["person_id", column, by], what="Official split")
    _check_person_ids(samples)
    rows = samples.with_columns(
        pl.col(column).cast(pl.String).fill_null("unassigned").alias("__split")
    )
    names = _order_names(rows.get_column("__split").unique().to_list())
    by_cols = [by] if by != "person_id" else []
    assignments = (
        rows.group_by(["person_id", "__split"])
        .agg(pl.len().alias("__n"), *[pl.col(c).min() for c in by_cols])
        .sort(["person_id", "__n", "__split"], descending=[False, True, False])
        .unique("person_id", keep="first", maintain_order=True)
        .select(*by_cols, pl.col("person_id").cast(pl.Int64), pl.col("__split").alias("split"))
    )
    report = _report_from_rows(
        rows,
        names,
        attributes=_report_attributes(samples, [], []),
        labels=_all_label_columns(samples),
        by=by,
        exclude=[],
    )
    strategy = {"kind": "official", "by": by, "column": column, "seed": None}
    return SplitResult(assignments=assignments, report=report, strategy=strategy)


def split_report(
    samples: pl.DataFrame,
    assignments: pl.DataFrame,
    *,
    by: str = "person_id",
    attributes: Sequence[str] = (),
    label_columns: Sequence[str] = (),
) -> dict[str, Any]:
    """Counts and proportions of every subgroup and label per split, and the leakage check.

    ``assignments`` maps ``person_id`` (or ``sample_id`` for row-level splits, or ``by``) to
    ``split``. Attribute proportions are over persons (each person's most frequent value);
    label rates (positive / uncertain / missing) are over samples. Empty ``attributes`` or
    ``label_columns`` mean every known sensitive attribute and every ``label_*`` column present.
    """
    _check_nonempty(samples)
    attrs = list(attributes) or _report_attributes(samples, [], [])
    labels = [_label_name(samples, c) for c in label_columns] or _all_label_columns(samples)
    _require_columns(samples, ["person_id", *attrs, *labels], what="Split report")
    rows = _rows_with_split(samples, assignments, by)
    names = _order_names(rows.get_column("__split").drop_nulls().unique().to_list())
    return _report_from_rows(rows, names, attributes=attrs, labels=labels, by=by, exclude=[])


def to_meds_names(assignments: pl.DataFrame) -> pl.DataFrame:
    """Rename splits to MEDS names (train, tuning, held_out); columns ``subject_id``, ``split``."""
    _require_columns(assignments, ["person_id", "split"], what="MEDS export")
    names = assignments.get_column("split").unique().to_list()
    unknown = sorted(str(n) for n in names if str(n).lower() not in MEDS_NAMES)
    if unknown:
        raise UsageError(
            f"Split name(s) {', '.join(unknown)} have no MEDS equivalent.",
            "MEDS knows train, tuning and held_out; export a train/val/test split.",
        )
    mapping = {str(n): MEDS_NAMES[str(n).lower()] for n in names}
    return (
        assignments.select(
            pl.col("person_id").cast(pl.Int64).alias("subject_id"),
            pl.col("split").cast(pl.String).replace_strict(mapping).alias("split"),
        )
        .unique(maintain_order=True)
        .sort("subject_id")
    )


# --------------------------------------------------------------------------------------------
# Input checks and option resolution
# --------------------------------------------------------------------------------------------


def _check_nonempty(samples: pl.DataFrame) -> None:
    if samples.height == 0:
        raise UsageError(
            "There are no samples to split: the samples table is empty.",
            "Convert the dataset first, or check the filter that produced the table.",
        )


def _require_columns(frame: pl.DataFrame, columns: Sequence[str], *, what: str) -> None:
    missing = [c for c in dict.fromkeys(columns) if c not in frame.columns]
    if missing:
        raise UsageError(
            f"{what} needs column(s) {', '.join(missing)}, which the samples table lacks.",
            f"Available columns: {', '.join(frame.columns)}.",
        )


def check_seed(seed: Any) -> int:
    """``seed`` as a non-negative int (NumPy's generators take no negative seeds)."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise UsageError(
            f"The seed must be a non-negative integer, not {seed!r}.", "Use e.g. seed=0."
        )
    return int(seed)


def _check_person_ids(samples: pl.DataFrame) -> None:
    if not samples.schema["person_id"].is_integer():
        raise UsageError(
            f"person_id must be an integer column (meddata's pseudonymous person ids), not "
            f"{samples.schema['person_id']}.",
            "Map your patient identifiers to integers first, e.g. with "
            "pl.col('patient').rank('dense').cast(pl.Int64).",
        )
    nulls = samples.get_column("person_id").null_count()
    if nulls:
        raise UsageError(
            f"{nulls} sample(s) have no person_id, so they cannot be kept out of other splits.",
            "Give every sample a person_id (a pseudonym per patient) before splitting.",
        )


def _check_fractions(fractions: Mapping[str, float]) -> None:
    bad = [k for k, v in fractions.items() if not (v > 0.0 and np.isfinite(v))]
    if bad:
        raise UsageError(
            f"Split fraction(s) for {', '.join(bad)} must be positive numbers.",
            "Drop a split you do not want instead of giving it 0.",
        )
    total = float(sum(fractions.values()))
    if abs(total - 1.0) > _FRACTION_TOLERANCE:
        raise UsageError(
            f"Split fractions sum to {total:g}, not 1.",
            "Adjust them, e.g. train=0.8,val=0.1,test=0.1.",
        )


def _label_name(samples: pl.DataFrame, name: str) -> str:
    if name in samples.columns:
        return name
    if LABEL_PREFIX + name in samples.columns:
        return LABEL_PREFIX + name
    raise UsageError(
        f"Label column {name!r} is not in the samples table.",
        f"Labels present: {', '.join(_all_label_columns(samples)) or 'none'}.",
    )


def _all_label_columns(samples: pl.DataFrame) -> list[str]:
    return [c for c in samples.columns if c.startswith(LABEL_PREFIX)]


def _resolve_labels(
    samples: pl.DataFrame, stratify: Sequence[str] | None, label_columns: Sequence[str]
) -> list[str]:
    if label_columns:
        return [_label_name(samples, c) for c in label_columns]
    if stratify is None or "labels" in stratify:
        return _all_label_columns(samples)
    return [c for c in dict.fromkeys(stratify) if c.startswith(LABEL_PREFIX)]


def _resolve_attributes(samples: pl.DataFrame, stratify: Sequence[str] | None) -> list[str]:
    if stratify is None:
        return [c for c in SENSITIVE_ATTRIBUTES if c in samples.columns]
    attrs = [c for c in dict.fromkeys(stratify) if c != "labels"]
    _require_columns(samples, attrs, what="Stratification")
    return [c for c in attrs if not c.startswith(LABEL_PREFIX)]


def _report_attributes(
    samples: pl.DataFrame, attributes: Sequence[str], extra: Sequence[str]
) -> list[str]:
    known = [c for c in SENSITIVE_ATTRIBUTES if c in samples.columns]
    picked = [c for c in (*attributes, *known, *extra) if not c.startswith(LABEL_PREFIX)]
    return list(dict.fromkeys(picked))


def _resolve_targets(
    fractions: Mapping[str, float] | None, folds: int | None, *, ood: bool
) -> tuple[str, list[str], list[float]]:
    """Return (kind, split names, fractions) for the units that are not held out."""
    if fractions is not None and folds is not None:
        raise UsageError(
            "Give either split fractions or a number of folds, not both.",
            "Use --fractions train=0.8,val=0.1,test=0.1 or --folds 5.",
        )
    if folds is not None:
        if int(folds) != folds or folds < 2:
            raise UsageError(f"Cannot make {folds} folds.", "Use --folds 2 or more.")
        k = int(folds)
        return "folds", [f"fold{i}" for i in range(k)], [1.0 / k] * k
    chosen = dict(fractions) if fractions is not None else dict(DEFAULT_FRACTIONS)
    _check_fractions(chosen)
    if ood:
        chosen.pop("test", None)
        if not chosen:
            raise UsageError(
                "A holdout split needs at least one split besides test.",
                "Add e.g. train=0.9,val=0.1 for the persons who are not held out.",
            )
        total = sum(chosen.values())
        chosen = {k: v / total for k, v in chosen.items()}
    elif len(chosen) < 2:
        raise UsageError(
            "A split needs at least two named parts.", "Use e.g. train=0.8,val=0.1,test=0.1."
        )
    return "stratified", list(chosen), list(chosen.values())


def _order_names(names: Sequence[Any]) -> list[str]:
    def key(name: str) -> tuple[int, int, list[Any]]:
        low = name.lower()
        if low in _NAME_ORDER:
            return (0, _NAME_ORDER.index(low), [])
        if MEDS_NAMES.get(low) == "held_out":
            return (2, 0, [low])
        parts = [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", low)]
        return (1, 0, parts)

    return sorted((str(n) for n in names), key=key)


# --------------------------------------------------------------------------------------------
# Units and their features
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Units:
    persons: pl.DataFrame  # person_id (sorted) [+ by], one row per person
    person_unit: np.ndarray  # unit index of each person, aligned with ``persons``
    features: np.ndarray  # (units, features) int64 counts; last column = persons per unit
    feature_names: list[str]
    weight: np.ndarray  # persons per unit
    rows: np.ndarray  # samples per unit
    hash: np.ndarray  # uint64, from (seed, smallest person_id of the unit)


def _mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a fast, stable, well-spread 64-bit hash of uint64 values."""
    z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def _person_modes(samples: pl.DataFrame, attribute: str) -> pl.DataFrame:
    """Each person's most frequent non-null value of ``attribute`` (ties: smallest value)."""
    return (
        samples.select("person_id", pl.col(attribute).cast(pl.String).alias(attribute))
        .drop_nulls(attribute)
        .group_by("person_id", attribute)
        .len()
        .sort(["person_id", "len", attribute], descending=[False, True, False])
        .unique("person_id", keep="first", maintain_order=True)
        .drop("len")
    )


def _person_table(
    samples: pl.DataFrame, labels: Sequence[str], attributes: Sequence[str]
) -> pl.DataFrame:
    """One row per person (sorted by person_id): sample count, label positives, attribute modes.

    One pass finds each attribute's smallest and largest value per person; only the persons
    whose rows disagree need the slower most-frequent-value computation.
    """
    persons = (
        samples.group_by(pl.col("person_id").cast(pl.Int64))
        .agg(
            pl.len().alias("__rows"),
            *[(pl.col(c).cast(pl.Float64).fill_nan(None) == 1.0).any().alias(c) for c in labels],
            *[pl.col(a).cast(pl.String).min().alias(a) for a in attributes],
            *[pl.col(a).cast(pl.String).max().alias(f"__max_{a}") for a in attributes],
        )
        .sort("person_id")
    )
    for attribute in attributes:
        mixed = persons.filter(pl.col(attribute) != pl.col(f"__max_{attribute}"))
        if mixed.height:
            subset = samples.join(
                mixed.select("person_id"), on=pl.col("person_id").cast(pl.Int64), how="semi"
            )
            modes = _person_modes(subset, attribute).with_columns(
                pl.col("person_id").cast(pl.Int64)
            )
            persons = persons.update(modes, on="person_id")
        persons = persons.with_columns(pl.col(attribute).fill_null(UNKNOWN)).drop(
            f"__max_{attribute}"
        )
    return persons


def _components(samples: pl.DataFrame, persons: pl.DataFrame, by: str) -> np.ndarray:
    """Unit index per person: persons linked through a shared ``by`` value form one unit."""
    person_ids = persons.get_column("person_id").to_numpy()
    pairs = (
        samples.select(pl.col("person_id").cast(pl.Int64), pl.col(by).alias("__g"))
        .drop_nulls("__g")
        .unique()
        .with_columns(pl.col("__g").rank("dense").cast(pl.Int64).alias("__g") - 1)
    )
    p = np.searchsorted(person_ids, pairs.get_column("person_id").to_numpy())
    g = pairs.get_column("__g").to_numpy()
    label = np.arange(person_ids.size, dtype=np.int64)
    group_label = np.full(int(g.max()) + 1 if g.size else 0, np.iinfo(np.int64).max)
    while True:  # min-label propagation over the person–group graph; converges in a few rounds
        np.minimum.at(group_label, g, label[p])
        new = label.copy()
        np.minimum.at(new, p, group_label[g])
        if np.array_equal(new, label):
            break
        label = new
    _, unit = np.unique(label, return_inverse=True)
    return unit.astype(np.int64)


def _build_units(
    samples: pl.DataFrame,
    persons: pl.DataFrame,
    by: str,
    labels: Sequence[str],
    attributes: Sequence[str],
    seed: int,
) -> _Units:
    """Units (persons, or merged ``by`` groups) with their feature counts and hashes."""
    n_persons = persons.height
    if by == "person_id":
        person_unit = np.arange(n_persons, dtype=np.int64)
    else:
        person_unit = _components(samples, persons, by)
        first = samples.group_by(pl.col("person_id").cast(pl.Int64)).agg(
            pl.col(by).min().alias("__by")
        )
        persons = persons.join(first, on="person_id", how="left")
    n_units = int(person_unit.max()) + 1
    blocks: list[np.ndarray] = []
    names: list[str] = []
    for label in labels:
        positive = persons.get_column(label).to_numpy().astype(np.float64)
        blocks.append(np.bincount(person_unit, weights=positive, minlength=n_units)[:, None])
        names.append(label)
    for attribute in attributes:  # one-hot of the attribute's values, summed per unit
        values = sorted(persons.get_column(attribute).unique().to_list())
        codes = (
            persons.get_column(attribute)
            .replace_strict(values, list(range(len(values))), return_dtype=pl.Int64)
            .to_numpy()
        )
        counts = np.bincount(person_unit * len(values) + codes, minlength=n_units * len(values))
        blocks.append(counts.reshape(n_units, len(values)))
        names.extend(f"{attribute}={v}" for v in values)
    weight = np.bincount(person_unit, minlength=n_units).astype(np.int64)
    blocks.append(weight[:, None])
    names.append("__persons__")
    features = np.empty((n_units, len(names)), dtype=np.int32)
    start = 0
    for block in blocks:
        features[:, start : start + block.shape[1]] = block
        start += block.shape[1]
    person_ids = persons.get_column("person_id").to_numpy()
    if by == "person_id":
        smallest = person_ids
    else:
        smallest = np.full(n_units, np.iinfo(np.int64).max)
        np.minimum.at(smallest, person_unit, person_ids)
    seed_mix = _mix64(np.asarray([seed & _MASK64], dtype=np.uint64))[0]
    unit_hash = _mix64(smallest.view(np.uint64) ^ seed_mix)
    rows = np.bincount(
        person_unit, weights=persons.get_column("__rows").to_numpy(), minlength=n_units
    ).astype(np.int64)
    return _Units(persons, person_unit, features, names, weight, rows, unit_hash)


# --------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------


def _assign(
    features: np.ndarray,
    weight: np.ndarray,
    rows: np.ndarray,
    unit_hash: np.ndarray,
    probs: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Split index for every unit."""
    if (weight != 1).any() and weight.size <= _GREEDY_MAX_UNITS:
        return _assign_greedy(features, weight, unit_hash, probs)
    return _assign_iterative(features, rows, unit_hash, probs, rng)


def _fill_empty_splits(assigned: np.ndarray, unit_hash: np.ndarray, n_splits: int) -> np.ndarray:
    """Give every requested split at least one unit when there are enough units.

    Rounding small datasets (6 persons at 0.8/0.1/0.1) can leave a split empty, which makes an
    evaluation impossible; move the lowest-hash unit of the largest split into each empty one.
    """
    out = assigned.copy()
    for empty in np.flatnonzero(np.bincount(out, minlength=n_splits)[:n_splits] == 0):
        counts = np.bincount(out, minlength=n_splits)
        donor = int(np.argmax(counts))
        if counts[donor] <= 1:
            break
        members = np.flatnonzero(out == donor)
        out[members[np.argmin(unit_hash[members])]] = empty
    return out


def _waterfill(need: np.ndarray, probs: np.ndarray, total: float) -> np.ndarray:
    """Targets t_k = max(need_k - L * p_k, 0) summing to ``total``.

    Equalises the relative shortfall of the splits that still need the feature, so when some
    splits are already over-full the others share the reduction in proportion to their size.
    """
    if total <= 0:
        return np.zeros_like(need)
    relative = need / probs
    order = np.argsort(-relative, kind="stable")
    for i in range(1, order.size + 1):
        active = order[:i]
        level = (need[active].sum() - total) / probs[active].sum()
        following = relative[order[i]] if i < order.size else -np.inf
        if level >= following:
            target = np.zeros_like(need)
            target[active] = np.maximum(need[active] - level * probs[active], 0.0)
            return target * (total / target.sum())
    return probs * total  # pragma: no cover - the loop always returns


def _apportion(target: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Integers summing to ``n`` closest to ``target`` (largest remainder, random ties)."""
    total = target.sum()
    scaled = target * (n / total) if total > 0 else np.full(target.size, n / target.size)
    counts = np.floor(scaled).astype(np.int64)
    left = n - int(counts.sum())
    if left > 0:
        order = np.lexsort((rng.random(target.size), -(scaled - counts)))
        counts[order[:left]] += 1
    return counts


def _interleave(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sequence with ``counts[k]`` copies of k, each split's copies evenly spread."""
    phases = rng.random(counts.size)
    positions = np.concatenate(
        [(np.arange(c) + phases[k]) / c for k, c in enumerate(counts) if c > 0]
    )
    split = np.repeat(np.arange(counts.size), counts)
    return split[np.argsort(positions, kind="stable")]


def _pack_bits(present: np.ndarray, members: np.ndarray, columns: Sequence[int]) -> np.ndarray:
    """Pack up to 64 indicator columns into one sort key (first column = highest bit)."""
    key = np.zeros(members.size, dtype=np.uint64)
    for bit, column in enumerate(columns):
        key |= present[members, column].astype(np.uint64) << np.uint64(63 - bit)
    return key


def _assign_iterative(
    features: np.ndarray,
    rows: np.ndarray,
    unit_hash: np.ndarray,
    probs: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Vectorised iterative stratification over many (mostly single-person) units."""
    n_units, n_features = features.shape
    present = features > 0
    desired = probs[:, None] * features.sum(axis=0, dtype=np.float64)[None, :]
    remaining = present.sum(axis=0).astype(np.int64)
    assigned = np.full(n_units, -1, dtype=np.int64)
    unassigned = np.ones(n_units, dtype=bool)
    while True:
        live = np.flatnonzero(remaining > 0)
        if live.size == 0:
            break
        j = int(live[np.argmin(remaining[live])])  # rarest feature still to place
        members = np.flatnonzero(unassigned & present[:, j])
        block = features[members]
        amount = block[:, j].astype(np.float64)
        target = _waterfill(desired[:, j], probs, float(amount.sum()))
        counts = _apportion(target, members.size, rng)
        # Order the batch by its units' remaining features, rarest first, with the unit size
        # (samples) after the few rarest, then by hash, and deal the splits out evenly: every
        # run of similar units is then split in proportion (implicit stratification).
        others = [int(f) for f in live[np.argsort(remaining[live], kind="stable")] if f != j]
        high = _pack_bits(present, members, others[:_SIZE_AFTER])
        low = _pack_bits(present, members, others[_SIZE_AFTER : _SIZE_AFTER + 63])
        size = np.unique(rows[members], return_inverse=True)[1]
        order = np.lexsort((unit_hash[members], low, size, high))
        split = np.empty(members.size, dtype=np.int64)
        split[order] = _interleave(counts, rng)
        assigned[members] = split
        unassigned[members] = False
        for k in range(probs.size):
            desired[k] -= block[split == k].sum(axis=0)
        remaining -= present[members].sum(axis=0)
    return assigned


def _assign_greedy(
    features: np.ndarray, weight: np.ndarray, unit_hash: np.ndarray, probs: np.ndarray
) -> np.ndarray:
    """Place few, unequal groups one by one (largest first) where they cut the deviation most.

    The cost of putting a unit in split k is the change in the sum over features of
    |shortfall| / (p_k * feature total); split sizes weigh as much as all other features.
    """
    totals = features.sum(axis=0).astype(np.float64)
    need = probs[:, None] * totals[None, :]
    scale = np.where(totals > 0, 1.0 / np.maximum(totals, 1.0), 0.0)
    scale[-1] *= max(features.shape[1] - 1, 1)  # split sizes
    norm = scale[None, :] / probs[:, None]
    order = np.lexsort((unit_hash, -weight))
    assigned = np.empty(weight.size, dtype=np.int64)
    for unit in order:  # loops over groups (sites, families), never over rows
        row = features[unit].astype(np.float64)
        cost = ((np.abs(need - row) - np.abs(need)) * norm).sum(axis=1)
        k = int(np.argmin(cost))
        need[k] -= row
        assigned[unit] = k
    return assigned


# --------------------------------------------------------------------------------------------
# Out-of-distribution holdouts
# --------------------------------------------------------------------------------------------


def _check_holdout(samples: pl.DataFrame, holdout: Mapping[str, Sequence[str]] | None) -> None:
    """Refuse holdout columns the samples table lacks or never fills in."""
    if not holdout:
        return
    _require_columns(samples, list(holdout), what="Holdout")
    for column in holdout:
        known = samples.get_column(column).cast(pl.String).str.strip_chars().drop_nulls()
        if not (known != "").any():
            raise UsageError(
                f"Column {column} has no known values in this dataset, so nothing can be "
                "held out by it.",
                "Hold out by a column that is filled in, or hold out by time with --time-column.",
            )


def _holdout_mask(
    samples: pl.DataFrame, units: _Units, holdout: Mapping[str, Sequence[str]]
) -> np.ndarray:
    _require_columns(samples, list(holdout), what="Holdout")
    condition = pl.lit(False)
    for column, values in holdout.items():
        if isinstance(values, str):
            values = [values]
        wanted = [str(v) for v in values]
        condition = condition | pl.col(column).cast(pl.String).is_in(wanted).fill_null(False)
        present = samples.get_column(column).cast(pl.String).drop_nulls().unique()
        absent = sorted(set(wanted) - set(present.to_list()))
        if absent:
            shown = ", ".join(sorted(present.to_list())[:20])
            raise UsageError(
                f"No sample has {column}={', '.join(absent)}, so nothing can be held out.",
                f"Values of {column}: {shown}.",
            )
    matching = samples.filter(condition).get_column("person_id").cast(pl.Int64).unique()
    person_ids = units.persons.get_column("person_id").to_numpy()
    held = np.zeros(units.weight.size, dtype=bool)
    held[units.person_unit[np.searchsorted(person_ids, matching.to_numpy())]] = True
    return held


def _time_mask(
    samples: pl.DataFrame,
    units: _Units,
    time_column: str | None,
    fraction: float | None,
) -> tuple[np.ndarray, str | None]:
    if time_column is None or fraction is None:
        raise UsageError(
            "A time split needs both a time column and the fraction of persons to hold out.",
            "Pass time_column=... and time_holdout_fraction=0.1 (CLI: --time-column and "
            "--time-fraction).",
        )
    _require_columns(samples, [time_column], what="Time split")
    if not 0.0 < fraction < 1.0:
        raise UsageError(
            f"The time holdout fraction must be between 0 and 1, not {fraction}.",
            "Use e.g. 0.1 to test on the latest 10% of persons.",
        )
    earliest = (
        samples.group_by(pl.col("person_id").cast(pl.Int64))
        .agg(pl.col(time_column).min().alias("__t"))
        .join(units.persons.select("person_id"), on="person_id", how="right")
        .sort("person_id")
        .with_columns(pl.Series("__unit", units.person_unit))
        .group_by("__unit")
        .agg(pl.col("__t").min())
        .sort("__unit")
    )
    per_unit = earliest.with_columns(
        pl.Series("__w", units.weight), pl.Series("__h", units.hash)
    ).sort(["__t", "__h"], descending=[True, False], nulls_last=True)
    goal = max(1, round(fraction * float(units.weight.sum())))  # a fraction > 0 holds out someone
    w = per_unit.get_column("__w").to_numpy()
    chosen = (np.cumsum(w) - w < goal) & per_unit.get_column("__t").is_not_null().to_numpy()
    held = np.zeros(units.weight.size, dtype=bool)
    held[per_unit.get_column("__unit").to_numpy()[chosen]] = True
    if not held.any():
        raise UsageError(
            f"No person has a value in {time_column}, so nothing can be held out by time.",
            "Choose a time column that is filled in.",
        )
    cutoff = per_unit.filter(pl.Series(chosen)).get_column("__t").min()
    return held, None if cutoff is None else str(cutoff)


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def _rows_with_split(samples: pl.DataFrame, assignments: pl.DataFrame, by: str) -> pl.DataFrame:
    """``samples`` with a ``__split`` column joined from person-, sample- or group-level rows."""
    if "split" not in assignments.columns:
        raise UsageError(
            "The assignments table has no 'split' column.",
            "Pass the assignments of a SplitResult.",
        )
    for key in ("sample_id", "person_id", by):
        if key in assignments.columns and key in samples.columns:
            right = assignments.select(
                pl.col(key).cast(samples.schema[key]), pl.col("split").alias("__split")
            )
            return samples.join(right, on=key, how="left")
    raise UsageError(
        "The assignments share no key column with the samples.",
        f"Give assignments with person_id, sample_id or {by}.",
    )


def _proportions(frame: pl.DataFrame, column: str, total: int) -> dict[str, float]:
    counts = frame.group_by(column).len()
    return {
        str(v): round(n / total, 6) if total else 0.0
        for v, n in zip(counts.get_column(column), counts.get_column("len"), strict=True)
    }


def _label_rates(rows: pl.DataFrame, labels: Sequence[str]) -> dict[str, dict[str, float]]:
    if not labels:
        return {}
    if rows.height == 0:
        return {c: {"positive": 0.0, "uncertain": 0.0, "missing": 0.0} for c in labels}
    exprs: list[pl.Expr] = []
    for c in labels:
        v = pl.col(c).cast(pl.Float64).fill_nan(None)
        exprs += [
            (v == 1.0).fill_null(False).mean().alias(f"{c}\x00positive"),
            (v == -1.0).fill_null(False).mean().alias(f"{c}\x00uncertain"),
            v.is_null().mean().alias(f"{c}\x00missing"),
        ]
    values = rows.select(exprs).row(0, named=True)
    out: dict[str, dict[str, float]] = {c: {} for c in labels}
    for name, value in values.items():
        label, kind = name.split("\x00")
        out[label][kind] = round(float(value or 0.0), 6)
    return out


def _report_from_rows(
    rows: pl.DataFrame,
    names: Sequence[str],
    *,
    attributes: Sequence[str],
    labels: Sequence[str],
    by: str,
    exclude: Sequence[str],
    persons: pl.DataFrame | None = None,
) -> dict[str, Any]:
    """Build the split report from row-level ``samples`` carrying a ``__split`` column.

    ``persons`` (person_id + attribute modes) may be passed when already computed.
    """
    rows = rows.with_columns(pl.col("person_id").cast(pl.Int64))
    if persons is None:
        persons = _person_table(rows, [], attributes).select("person_id", *attributes)
    pairs = rows.select("person_id", "__split").unique().drop_nulls("__split")
    tagged = pairs.join(persons, on="person_id", how="left")
    n_persons = persons.height
    n_samples = rows.height

    def section(person_rows: pl.DataFrame, sample_rows: pl.DataFrame) -> dict[str, Any]:
        n = person_rows.height
        return {
            "persons": n,
            "samples": sample_rows.height,
            "fraction_persons": round(n / n_persons, 6) if n_persons else 0.0,
            "fraction_samples": round(sample_rows.height / n_samples, 6) if n_samples else 0.0,
            "attributes": {a: _proportions(person_rows, a, n) for a in attributes},
            "labels": _label_rates(sample_rows, labels),
        }

    overall = section(persons, rows)
    for a in attributes:
        overall["attributes"][a] = dict(sorted(overall["attributes"][a].items()))
    splits: dict[str, Any] = {}
    for name in names:
        part = section(
            tagged.filter(pl.col("__split") == name), rows.filter(pl.col("__split") == name)
        )
        for a in attributes:  # every overall subgroup is listed, absent ones as 0
            got = part["attributes"][a]
            part["attributes"][a] = {v: got.get(v, 0.0) for v in overall["attributes"][a]}
        splits[name] = part

    worst: dict[str, Any] = {"value": 0.0, "split": None, "attribute": None, "group": None}
    for name, part in splits.items():
        if part["persons"] == 0:
            continue
        for a in attributes:
            if a in exclude:
                continue
            for v, p in part["attributes"][a].items():
                gap = abs(p - overall["attributes"][a][v])
                if gap > worst["value"]:
                    worst = {"value": round(gap, 6), "split": name, "attribute": a, "group": v}
        for c in labels:
            gap = abs(part["labels"][c]["positive"] - overall["labels"][c]["positive"])
            if gap > worst["value"]:
                worst = {"value": round(gap, 6), "split": name, "attribute": c, "group": "positive"}

    leakage: dict[str, int] = {
        "persons_in_multiple_splits": int(
            pairs.group_by("person_id").len().filter(pl.col("len") > 1).height
        ),
        "samples_without_split": int(rows.get_column("__split").null_count()),
    }
    if by != "person_id" and by in rows.columns:
        leakage["groups_in_multiple_splits"] = int(
            rows.select(by, "__split")
            .drop_nulls()
            .unique()
            .group_by(by)
            .len()
            .filter(pl.col("len") > 1)
            .height
        )
    return {
        "n_persons": n_persons,
        "n_samples": n_samples,
        "splits": splits,
        "overall": overall,
        "max_deviation": worst,
        "leakage": leakage,
    }
