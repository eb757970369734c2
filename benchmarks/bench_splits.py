"""Benchmark meddata's fairness-aware splits against iterative-stratification and scikit-learn.

Same synthetic table for every method: N persons with 1-5 rows each, 14 labels (values 1, 0,
-1 uncertain, null not mentioned; person-level prevalence from 0.5% to ~50%) and 4 sensitive
attributes with rare values (sex, age_group, race, site). Methods:

* meddata ``make_splits`` - train/val/test 0.8/0.1/0.1 and 5 folds, grouped by person,
  stratified on the 4 attributes and all labels;
* iterative-stratification ``MultilabelStratifiedShuffleSplit`` (two stages for 0.8/0.1/0.1)
  and ``MultilabelStratifiedKFold`` on rows, y = label positives + attribute one-hots
  (it cannot group, so persons leak);
* scikit-learn ``StratifiedGroupKFold`` grouped by person with a composite key of the 4
  attributes as y (the usual workaround: it takes one y); 10 folds -> test, val, 8 x train for
  0.8/0.1/0.1, and 5 folds.

Reported per method: wall time, the largest deviation of a subgroup proportion (attribute value)
in any split from the whole table, over samples and over persons, the largest deviation of a
label's positive rate (samples), and the number of persons whose samples land in several
splits. Run ``python benchmarks/bench_splits.py --help`` for options.
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
import warnings
from collections.abc import Callable

import numpy as np
import polars as pl

from meddata.splits import make_splits

ATTRIBUTES = {
    "sex": (["F", "M", "Unknown"], [0.51, 0.485, 0.005]),
    "age_group": (["0-17", "18-39", "40-59", "60-79", "80+"], [0.01, 0.24, 0.33, 0.32, 0.10]),
    "race": (
        ["White", "Black", "Asian", "Hispanic", "AIAN", "NHPI", "Other"],
        [0.58, 0.15, 0.10, 0.10, 0.006, 0.004, 0.06],
    ),
    "site": (
        [f"site{i}" for i in range(8)],
        [0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.04, 0.01],
    ),
}
N_LABELS = 14


def synth(n_persons: int, seed: int = 0) -> pl.DataFrame:
    """The synthetic samples table (one row per sample, 1-5 rows per person)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, 6, n_persons)
    person = rng.permutation(np.arange(n_persons, dtype=np.int64) * 7 + 3)
    pid = np.repeat(person, rows)
    n = pid.size
    cols: dict[str, object] = {"sample_id": np.arange(n, dtype=np.int64), "person_id": pid}
    for name, (values, p) in ATTRIBUTES.items():
        per_person = np.asarray(values, dtype=object)[rng.choice(len(values), n_persons, p=p)]
        cols[name] = np.repeat(per_person, rows)
    prevalence = np.geomspace(0.005, 0.5, N_LABELS)
    latent = rng.random((n_persons, N_LABELS)) < prevalence
    frame = pl.DataFrame(cols)
    labels = []
    for j in range(N_LABELS):
        positive = np.repeat(latent[:, j], rows) & (rng.random(n) < 0.7)
        value = np.where(positive, 1.0, 0.0).astype(np.float32)
        value[rng.random(n) < 0.05] = -1.0
        value[rng.random(n) < 0.35] = np.nan
        labels.append(pl.Series(f"label_{j:02d}", value).fill_nan(None))
    return frame.with_columns(labels).sample(fraction=1.0, shuffle=True, seed=seed)


# ------------------------------------------------------------------------------------------
# Quality measures (identical for every method: a split code per row)
# ------------------------------------------------------------------------------------------


def measure(df: pl.DataFrame, split: np.ndarray) -> dict[str, float]:
    """Largest subgroup / label deviations and leaked persons for a per-row split code."""
    frame = df.with_columns(pl.Series("__s", split))
    labels = [c for c in df.columns if c.startswith("label_")]
    worst_samples = worst_persons = worst_label = 0.0
    pairs = frame.select("person_id", "__s", *ATTRIBUTES).unique(["person_id", "__s"])
    persons = frame.select("person_id", *ATTRIBUTES).unique("person_id")
    for attr in ATTRIBUTES:
        for table, level in ((frame, "samples"), (pairs, "persons")):
            base = df if level == "samples" else persons
            overall = base.group_by(attr).len().with_columns(p=pl.col("len") / base.height)
            per = (
                table.group_by("__s", attr)
                .len()
                .with_columns(p=pl.col("len") / pl.col("len").sum().over("__s"))
            )
            grid = (
                table.select("__s")
                .unique()
                .join(overall.select(attr, "p"), how="cross")
                .join(per.select("__s", attr, pl.col("p").alias("q")), on=["__s", attr], how="left")
                .with_columns(pl.col("q").fill_null(0.0))
            )
            gap = float(grid.select((pl.col("q") - pl.col("p")).abs().max()).item())
            if level == "samples":
                worst_samples = max(worst_samples, gap)
            else:
                worst_persons = max(worst_persons, gap)
    positive = [(pl.col(c) == 1).fill_null(False).mean().alias(c) for c in labels]
    overall_rates = frame.select(positive).row(0)
    per_split = frame.group_by("__s").agg(positive).drop("__s").to_numpy()
    worst_label = float(np.abs(per_split - np.asarray(overall_rates)[None, :]).max())
    leaked = pairs.group_by("person_id").len().filter(pl.col("len") > 1).height
    return {
        "dev_samples": worst_samples,
        "dev_persons": worst_persons,
        "dev_labels": worst_label,
        "leaked": leaked,
    }


# ------------------------------------------------------------------------------------------
# Methods: each returns a split code per row of ``df``
# ------------------------------------------------------------------------------------------


def meddata_split(df: pl.DataFrame, folds: int | None) -> np.ndarray:
    """meddata.make_splits grouped by person, stratified on attributes + labels."""
    result = make_splits(
        df,
        stratify=[*ATTRIBUTES, "labels"],
        folds=folds,
        fractions=None if folds else {"train": 0.8, "val": 0.1, "test": 0.1},
        seed=0,
    )
    joined = df.select("person_id").join(
        result.assignments, on="person_id", how="left", maintain_order="left"
    )
    return joined.get_column("split").cast(pl.Categorical).to_physical().to_numpy()


def _multilabel_y(df: pl.DataFrame) -> np.ndarray:
    labels = [c for c in df.columns if c.startswith("label_")]
    positives = df.select([(pl.col(c) == 1).fill_null(False) for c in labels]).to_numpy()
    onehots = df.select(list(ATTRIBUTES)).to_dummies().to_numpy()
    return np.concatenate([positives, onehots], axis=1).astype(np.int8)


def msss_split(df: pl.DataFrame, folds: int | None) -> np.ndarray:
    """iterative-stratification on rows: two-stage shuffle split, or k folds."""
    from iterstrat.ml_stratifiers import (
        MultilabelStratifiedKFold,
        MultilabelStratifiedShuffleSplit,
    )

    y = _multilabel_y(df)
    x = np.zeros((y.shape[0], 1))
    code = np.zeros(y.shape[0], dtype=np.int64)
    if folds:
        kfold = MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=0)
        for i, (_, test) in enumerate(kfold.split(x, y)):
            code[test] = i
        return code
    first = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=0)
    _, rest = next(first.split(x, y))
    second = MultilabelStratifiedShuffleSplit(n_splits=1, test_size=0.5, random_state=0)
    val, test = next(second.split(x[rest], y[rest]))
    code[rest[val]] = 1
    code[rest[test]] = 2
    return code


def sgkf_split(df: pl.DataFrame, folds: int | None) -> np.ndarray:
    """scikit-learn StratifiedGroupKFold by person, y = composite attribute key."""
    from sklearn.model_selection import StratifiedGroupKFold

    key = df.select(pl.concat_str(list(ATTRIBUTES), separator="|")).to_series()
    y = key.cast(pl.Categorical).to_physical().to_numpy()
    groups = df.get_column("person_id").to_numpy()
    x = np.zeros((y.size, 1))
    n_splits = folds or 10
    code = np.zeros(y.size, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kfold = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=0)
        for i, (_, test) in enumerate(kfold.split(x, y, groups)):
            if folds:
                code[test] = i
            elif i < 2:  # fold 0 -> test (code 2), fold 1 -> val (code 1), the rest train
                code[test] = 2 - i
            else:
                break
    return code


METHODS: dict[str, Callable[[pl.DataFrame, int | None], np.ndarray]] = {
    "meddata": meddata_split,
    "iterstrat (rows)": msss_split,
    "sklearn SGKF": sgkf_split,
}


def run(df: pl.DataFrame, method: str, folds: int | None) -> dict[str, float]:
    gc.collect()
    start = time.perf_counter()
    code = METHODS[method](df, folds)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, **measure(df, code)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--big", type=int, default=1_000_000, help="persons for the timing run")
    parser.add_argument("--skip-peers", action="store_true")
    args = parser.parse_args()

    df = synth(args.persons)
    print(
        f"# {args.persons:,} persons, {df.height:,} samples, {N_LABELS} labels, "
        f"4 sensitive attributes; {platform.machine()}, polars {pl.__version__}"
    )
    header = (
        "| split | method | time (s) | max subgroup dev. (samples) | (persons) "
        "| max label dev. | leaked persons |"
    )
    print(header)
    print("|---|---|---:|---:|---:|---:|---:|")
    summaries: list[str] = []
    for folds, title in ((None, "0.8/0.1/0.1"), (5, "5 folds")):
        results: dict[str, dict[str, float]] = {}
        for method in METHODS:
            if args.skip_peers and method != "meddata":
                continue
            results[method] = r = run(df, method, folds)
            print(
                f"| {title} | {method} | {r['seconds']:.2f} | {r['dev_samples']:.4f} "
                f"| {r['dev_persons']:.4f} | {r['dev_labels']:.4f} | {r['leaked']:,} |",
                flush=True,
            )
        peers = {k: v for k, v in results.items() if k != "meddata"}
        if peers:
            me = results["meddata"]
            fastest = min(peers, key=lambda k: peers[k]["seconds"])
            ratios = [f"time vs {fastest}: {me['seconds'] / peers[fastest]['seconds']:.2f}x"]
            for measure_name, label in (
                ("dev_samples", "subgroup dev. (samples)"),
                ("dev_persons", "subgroup dev. (persons)"),
                ("dev_labels", "label dev."),
            ):
                best = min(peers, key=lambda k: peers[k][measure_name])
                ratio = me[measure_name] / max(peers[best][measure_name], 1e-12)
                ratios.append(f"{label} vs best peer ({best}): {ratio:.2f}x")
            summaries.append(f"- {title}, meddata / peer: " + "; ".join(ratios))
    print("", *summaries, sep="\n")
    if args.big:
        big = synth(args.big, seed=1)
        for folds in (None, 5):
            gc.collect()
            start = time.perf_counter()
            make_splits(big, stratify=[*ATTRIBUTES, "labels"], folds=folds, seed=0)
            seconds = time.perf_counter() - start
            what = "5 folds" if folds else "0.8/0.1/0.1"
            print(
                f"meddata on {args.big:,} persons / {big.height:,} samples, {what}: "
                f"{seconds:.2f} s (including the split report)"
            )


if __name__ == "__main__":
    main()
