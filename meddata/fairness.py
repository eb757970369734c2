"""Per-group model evaluation: AUROC, AUPRC, TPR/FPR at a threshold, calibration error, gaps.

``report`` returns one row per subgroup plus an ``overall`` row; ``summary`` condenses it into
the largest gap, the worst-group value and the equity-scaled value of each metric (FairSeg,
Tian et al. 2024: ``overall / (1 + sum_g |metric_g - overall|)``); ``render`` prints a table.
Metrics come from scikit-learn; only the binned expected calibration error is computed here.

Labels follow the meddata convention: 1 positive, 0 negative; -1 (uncertain), NaN and null are
left out of every metric for that label.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import polars as pl
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from meddata.errors import UsageError

__all__ = ["HIGHER_IS_BETTER", "METRICS", "render", "report", "summary"]

METRICS: tuple[str, ...] = ("auroc", "auprc", "tpr", "fpr", "ece")
#: Direction of each metric; the worst group is the minimum where higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "auroc": True,
    "auprc": True,
    "tpr": True,
    "fpr": False,
    "ece": False,
}
OVERALL = "overall"
UNKNOWN = "Unknown"


def report(
    y_true: Any,
    y_score: Any,
    groups: Sequence[Any] | Mapping[str, Sequence[Any]] | pl.Series,
    *,
    threshold: float = 0.5,
    metrics: Sequence[str] = METRICS,
    n_bins: int = 10,
    label_names: Sequence[str] | None = None,
) -> pl.DataFrame:
    """Per-group metrics of a binary (or multi-label) classifier.

    ``y_true`` and ``y_score`` have shape (n,) or (n, labels); ``groups`` is one sequence of n
    group values or a dict attribute -> sequence. Returns columns ``[label] [attribute] group n
    prevalence <metrics>``: an ``overall`` row then one row per group (null group -> "Unknown").
    A metric is null where undefined (AUROC with one class, TPR without positives, FPR without
    negatives, ECE for scores outside [0, 1]). A score >= ``threshold`` counts as positive.
    """
    unknown = [m for m in metrics if m not in HIGHER_IS_BETTER]
    if unknown:
        raise UsageError(
            f"Unknown fairness metric(s): {', '.join(unknown)}.",
            f"Choose from {', '.join(METRICS)}.",
        )
    truth, names = _as_matrix(y_true, label_names)
    score, _ = _as_matrix(y_score, None)
    if truth.shape != score.shape:
        raise UsageError(
            f"y_true has shape {truth.shape} but y_score has shape {score.shape}.",
            "Pass one score per label and sample.",
        )
    if truth.shape[0] == 0:
        raise UsageError("There is nothing to evaluate: y_true is empty.", "Pass predictions.")
    if n_bins < 1:
        raise UsageError(f"n_bins must be at least 1, not {n_bins}.", "Use e.g. n_bins=10.")
    by_attribute = _as_groups(groups, truth.shape[0])
    unscored = int((np.isin(truth, (0.0, 1.0)) & ~np.isfinite(score)).sum())
    if unscored:  # a model that emits NaN should not go unnoticed
        warnings.warn(
            f"{unscored} labelled prediction(s) with a NaN or infinite score were left out.",
            stacklevel=2,
        )
    multi_label = np.ndim(y_true) == 2 or isinstance(y_true, pl.DataFrame)
    rows: list[dict[str, Any]] = []
    for j, label in enumerate(names):
        for attribute, values in by_attribute.items():
            valid = np.isin(truth[:, j], (0.0, 1.0)) & np.isfinite(score[:, j])
            subsets = [(OVERALL, valid)]
            for group in sorted(set(values[valid].tolist()), key=_group_order):
                subsets.append((group, valid & (values == group)))
            for group, mask in subsets:
                row: dict[str, Any] = {}
                if multi_label:
                    row["label"] = label
                if isinstance(groups, Mapping):
                    row["attribute"] = attribute
                row["group"] = group
                row.update(_metrics(truth[mask, j], score[mask, j], metrics, threshold, n_bins))
                rows.append(row)
    schema: dict[str, Any] = {}
    if multi_label:
        schema["label"] = pl.String
    if isinstance(groups, Mapping):
        schema["attribute"] = pl.String
    schema |= {"group": pl.String, "n": pl.Int64, "prevalence": pl.Float64}
    schema |= {m: pl.Float64 for m in metrics}
    return pl.DataFrame(rows, schema=schema, orient="row")


def summary(df: pl.DataFrame) -> dict[str, Any]:
    """Largest gap, worst group and equity-scaled value of every metric in a ``report`` frame.

    For a frame without ``label`` and ``attribute`` columns (one label, groups given as one
    sequence) the result is keyed by metric: ``{"auroc": {"overall", "worst_group",
    "worst_value", "best_group", "best_value", "largest_gap", "equity_scaled"}}``. Otherwise
    (groups given as a dict, or several labels) it is keyed first by section, e.g.
    ``"attribute=sex"`` or ``"label=edema, attribute=sex"``. The equity-scaled value is reported for
    metrics where higher is better (AUROC, AUPRC, TPR) and is null for FPR and ECE.
    """
    keys = [c for c in ("label", "attribute") if c in df.columns]
    metrics = [m for m in HIGHER_IS_BETTER if m in df.columns]
    sections: dict[str, Any] = {}
    parts = df.partition_by(keys, maintain_order=True, as_dict=True) if keys else {(): df}
    for key, part in parts.items():
        name = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True)) or "all"
        sections[name] = {m: _summarise(part, m) for m in metrics}
    return sections["all"] if not keys else sections


def render(df: pl.DataFrame, *, digits: int = 3) -> str:
    """A Markdown table of a ``report`` frame, followed by the ``summary`` of each metric."""
    headers = df.columns
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join("---:" if _numeric(df, c) else "---" for c in headers) + "|")
    for row in df.iter_rows():
        lines.append("| " + " | ".join(_cell(v, digits) for v in row) + " |")
    summaries = summary(df)
    sections = {"": summaries} if not ({"label", "attribute"} & set(df.columns)) else summaries
    lines.append("")
    for name, per_metric in sections.items():
        if name:
            lines.append(f"{name}:")
        for metric, s in per_metric.items():
            if s["worst_group"] is None:
                continue
            lines.append(
                f"- {metric}: overall {_cell(s['overall'], digits)}, worst group "
                f"{s['worst_group']} {_cell(s['worst_value'], digits)}, largest gap "
                f"{_cell(s['largest_gap'], digits)}, equity-scaled "
                f"{_cell(s['equity_scaled'], digits)}"
            )
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------


def _as_matrix(values: Any, names: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    if isinstance(values, pl.DataFrame):
        matrix = values.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        default = [c.removeprefix("label_") for c in values.columns]
    else:
        if isinstance(values, pl.Series):
            values = values.cast(pl.Float64).fill_null(float("nan")).to_numpy()
        matrix = np.asarray(values, dtype=np.float64)
        if matrix.ndim == 1:
            matrix = matrix[:, None]
        if matrix.ndim != 2:
            raise UsageError(
                f"Expected a 1-D or 2-D array of labels or scores, got {matrix.ndim} dimensions.",
                "Pass shape (n,) or (n, labels).",
            )
        default = [str(i) for i in range(matrix.shape[1])]
    chosen = list(names) if names is not None else default
    if len(chosen) != matrix.shape[1]:
        raise UsageError(
            f"{len(chosen)} label name(s) for {matrix.shape[1]} label column(s).",
            "Give one name per column of y_true.",
        )
    return matrix, chosen


def _as_groups(
    groups: Sequence[Any] | Mapping[str, Sequence[Any]] | pl.Series, n: int
) -> dict[str, np.ndarray]:
    raw: Mapping[str, Any] = groups if isinstance(groups, Mapping) else {"group": groups}
    if not raw:
        raise UsageError("No groups were given.", "Pass e.g. groups={'sex': sex_per_sample}.")
    out: dict[str, np.ndarray] = {}
    for attribute, values in raw.items():
        names = _group_names(values)
        if len(names) != n:
            raise UsageError(
                f"Groups {attribute!r} have {len(names)} value(s) for {n} sample(s).",
                "Pass one group value per sample.",
            )
        if OVERALL in names:
            raise UsageError(
                f"A group of {attribute!r} is called {OVERALL!r}, the name of the report's row "
                "for all samples.",
                "Rename that group before the report.",
            )
        out[str(attribute)] = np.asarray(names, dtype=object)
    return out


def _group_names(values: Any) -> list[str]:
    """Group values as text; missing ones (None, NaN, pandas NA/NaT) become "Unknown"."""
    if isinstance(values, pl.Series):
        if values.dtype.is_float():
            values = values.fill_nan(None)
        return values.cast(pl.String).fill_null(UNKNOWN).to_list()
    return [UNKNOWN if _missing(v) else str(v) for v in values]


def _group_order(name: str) -> tuple[int, float, str]:
    """Numbers in numeric order first (so '2' before '10'), then text; "Unknown" last."""
    if name == UNKNOWN:
        return (2, 0.0, name)
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


def _missing(value: Any) -> bool:
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return True
    return isinstance(value, float | np.floating) and bool(np.isnan(value))


def _metrics(
    truth: np.ndarray,
    score: np.ndarray,
    metrics: Sequence[str],
    threshold: float,
    n_bins: int,
) -> dict[str, Any]:
    n = int(truth.size)
    positives = int(truth.sum())
    out: dict[str, Any] = {"n": n, "prevalence": positives / n if n else None}
    both = 0 < positives < n
    tn = fp = fn = tp = 0
    if {"tpr", "fpr"} & set(metrics) and n:
        matrix = confusion_matrix(truth, score >= threshold, labels=[0, 1])
        tn, fp, fn, tp = (int(v) for v in matrix.ravel())
    for metric in metrics:
        value: float | None = None
        if metric == "auroc" and both:
            value = float(roc_auc_score(truth, score))
        elif metric == "auprc" and positives:
            value = float(average_precision_score(truth, score))
        elif metric == "tpr" and tp + fn:
            value = tp / (tp + fn)
        elif metric == "fpr" and tn + fp:
            value = fp / (tn + fp)
        elif metric == "ece" and n and score.min() >= 0.0 and score.max() <= 1.0:
            value = _ece(truth, score, n_bins)
        out[metric] = value
    return out


def _ece(truth: np.ndarray, score: np.ndarray, n_bins: int) -> float:
    """Expected calibration error over equal-width probability bins."""
    bins = np.minimum((score * n_bins).astype(np.int64), n_bins - 1)
    observed = np.bincount(bins, weights=truth, minlength=n_bins)
    predicted = np.bincount(bins, weights=score, minlength=n_bins)
    return float(np.abs(observed - predicted).sum() / truth.size)


def _summarise(part: pl.DataFrame, metric: str) -> dict[str, Any]:
    overall_rows = part.filter(pl.col("group") == OVERALL)
    overall = overall_rows.get_column(metric)[0] if overall_rows.height else None
    groups = part.filter((pl.col("group") != OVERALL) & pl.col(metric).is_not_null())
    empty = {
        "overall": overall,
        "worst_group": None,
        "worst_value": None,
        "best_group": None,
        "best_value": None,
        "largest_gap": None,
        "equity_scaled": None,
    }
    if groups.height == 0:
        return empty
    values = groups.get_column(metric).to_numpy()
    names = groups.get_column("group").to_list()
    higher = HIGHER_IS_BETTER[metric]
    worst = int(np.argmin(values) if higher else np.argmax(values))
    best = int(np.argmax(values) if higher else np.argmin(values))
    equity = None
    if higher and overall is not None and not math.isnan(overall):
        equity = float(overall / (1.0 + np.abs(values - overall).sum()))
    return {
        "overall": overall,
        "worst_group": names[worst],
        "worst_value": float(values[worst]),
        "best_group": names[best],
        "best_value": float(values[best]),
        "largest_gap": float(values.max() - values.min()),
        "equity_scaled": equity,
    }


def _numeric(df: pl.DataFrame, column: str) -> bool:
    return df.schema[column].is_numeric()


def _cell(value: Any, digits: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)
