"""Properties of meddata.splits: no leakage, fractions, determinism, rare subgroups, errors."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meddata.errors import UsageError
from meddata.splits import (
    SplitResult,
    make_splits,
    official_split,
    parse_fractions,
    split_report,
    to_meds_names,
)

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEXES = ["F", "M", None]
AGES = ["18-39", "40-59", "60-79", "80+"]
SITES = ["A", "B", "C"]


def table(n_persons: int, seed: int = 0, *, labels: int = 3, max_rows: int = 4) -> pl.DataFrame:
    """A samples table: 1..max_rows rows per person, labels with 1/0/-1/null, 3 attributes."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(1, max_rows + 1, n_persons)
    person = np.repeat(rng.permutation(n_persons * 5)[:n_persons].astype(np.int64), rows)
    n = person.size
    data: dict[str, object] = {
        "sample_id": np.arange(n, dtype=np.int64),
        "person_id": person,
        "sex": pl.Series(
            np.repeat(rng.choice(np.array(SEXES, dtype=object), n_persons), rows).tolist(),
            dtype=pl.String,
        ),
        "age_group": np.repeat(rng.choice(AGES, n_persons, p=[0.3, 0.3, 0.3, 0.1]), rows),
        "site": rng.choice(SITES, n),
        "study_date": np.repeat(rng.integers(0, 3650, n_persons), rows) + rng.integers(0, 30, n),
    }
    for j in range(labels):
        positive = 0.15 / (j + 1)
        value = rng.choice([1.0, 0.0, -1.0], n, p=[positive, 0.95 - positive, 0.05])
        value[rng.random(n) < 0.3] = np.nan
        data[f"label_l{j}"] = value.astype(np.float32)
    frame = pl.DataFrame(data)
    return frame.with_columns(pl.col(f"label_l{j}").fill_nan(None) for j in range(labels))


def person_splits(result: SplitResult) -> dict[int, str]:
    a = result.assignments
    return dict(
        zip(a.get_column("person_id").to_list(), a.get_column("split").to_list(), strict=True)
    )


def assert_no_leakage(samples: pl.DataFrame, result: SplitResult) -> None:
    a = result.assignments
    assert a.get_column("person_id").dtype == pl.Int64
    assert a.get_column("person_id").is_unique().all()
    assert set(a.get_column("person_id")) == set(samples.get_column("person_id"))
    assert a.get_column("split").null_count() == 0
    rows = samples.join(a.select("person_id", "split"), on="person_id")
    per_person = rows.group_by("person_id").agg(pl.col("split").n_unique())
    assert per_person.get_column("split").max() == 1
    assert result.report["leakage"]["persons_in_multiple_splits"] == 0
    assert result.report["leakage"]["samples_without_split"] == 0


# ------------------------------------------------------------------------------------------
# Properties
# ------------------------------------------------------------------------------------------


@SETTINGS
@given(
    n=st.integers(3, 60),
    seed=st.integers(0, 2**32 - 1),
    stratify=st.sampled_from([None, (), ("sex",), ("sex", "age_group", "labels")]),
    folds=st.sampled_from([None, 3]),
)
def test_no_person_in_two_splits_for_any_input(n, seed, stratify, folds) -> None:
    samples = table(n, seed)
    result = make_splits(samples, stratify=stratify, folds=folds, seed=seed)
    assert_no_leakage(samples, result)
    expected = {"fold0", "fold1", "fold2"} if folds else {"train", "val", "test"}
    assert set(result.assignments.get_column("split")) <= expected
    json.dumps(result.report)
    json.dumps(result.strategy)


@SETTINGS
@given(n=st.integers(4, 40), seed=st.integers(0, 1000))
def test_grouped_by_family_keeps_whole_families_together(n, seed) -> None:
    samples = table(n, seed)
    families = samples.select("person_id").unique().sort("person_id")
    families = families.with_columns(family_id=(pl.col("person_id") % 7).cast(pl.String))
    samples = samples.join(families, on="person_id")
    try:
        result = make_splits(samples, by="family_id", fractions={"a": 0.5, "b": 0.5}, seed=seed)
    except UsageError:  # fewer families than splits: a clear error is the right answer
        assert samples.get_column("family_id").n_unique() < 2
        return
    assert_no_leakage(samples, result)
    assert "family_id" in result.assignments.columns
    rows = samples.join(result.assignments.select("person_id", "split"), on="person_id")
    assert rows.group_by("family_id").agg(pl.col("split").n_unique())["split"].max() == 1
    assert result.report["leakage"]["groups_in_multiple_splits"] == 0


def test_groups_sharing_a_person_are_merged() -> None:
    # person 1 visited sites A and B, person 2 visited B and C: A, B, C must be one unit.
    samples = pl.DataFrame(
        {
            "person_id": [1, 1, 2, 2, 3, 4, 5, 6],
            "site": ["A", "B", "B", "C", "C", "D", "E", "F"],
        }
    )
    result = make_splits(samples, by="site", fractions={"x": 0.5, "y": 0.5}, stratify=())
    splits = person_splits(result)
    assert splits[1] == splits[2] == splits[3]
    assert_no_leakage(samples, result)


@pytest.mark.parametrize("n", [100, 1_000, 10_000])
def test_fractions_close_with_tolerance_shrinking_with_size(n: int) -> None:
    samples = table(n, seed=n)
    fractions = {"train": 0.7, "val": 0.2, "test": 0.1}
    result = make_splits(samples, fractions=fractions, seed=3)
    tolerance = 3.0 / np.sqrt(n)  # 0.3 at 100, 0.095 at 1k, 0.03 at 10k persons
    for name, fraction in fractions.items():
        got = result.report["splits"][name]["fraction_persons"]
        assert abs(got - fraction) <= tolerance
        assert abs(got - fraction) <= 8 / n  # in practice within a few persons
    assert result.report["max_deviation"]["value"] <= 5.0 / np.sqrt(n)


def test_folds_have_equal_sizes_and_balanced_subgroups() -> None:
    samples = table(5_000, seed=1)
    result = make_splits(samples, folds=5, stratify=["sex", "age_group", "labels"], seed=1)
    sizes = result.assignments.group_by("split").len().get_column("len")
    assert sizes.max() - sizes.min() <= 3
    assert result.strategy["kind"] == "folds" and result.strategy["folds"] == 5
    overall = result.report["overall"]["attributes"]["age_group"]["80+"]
    for fold in (f"fold{i}" for i in range(5)):
        assert abs(result.report["splits"][fold]["attributes"]["age_group"]["80+"] - overall) < 0.01


@settings(max_examples=15, deadline=None)
@given(n=st.integers(10, 200), seed=st.integers(0, 10**6))
def test_deterministic_and_independent_of_row_order(n, seed) -> None:
    samples = table(n, seed)
    first = make_splits(samples, seed=seed)
    again = make_splits(samples, seed=seed)
    shuffled = make_splits(samples.sample(fraction=1.0, shuffle=True, seed=seed + 1), seed=seed)
    assert first.assignments.equals(again.assignments)
    assert first.assignments.equals(shuffled.assignments)
    assert first.report == shuffled.report


def test_seed_changes_the_split() -> None:
    samples = table(300)
    assert person_splits(make_splits(samples, seed=0)) != person_splits(
        make_splits(samples, seed=1)
    )


@pytest.mark.parametrize("seed", range(8))
def test_rare_subgroup_is_spread_across_splits(seed: int) -> None:
    samples = table(400, seed)
    rare = samples.select("person_id").unique().sort("person_id").head(6)
    samples = samples.with_columns(
        race=pl.when(pl.col("person_id").is_in(rare["person_id"].implode()))
        .then(pl.lit("AIAN"))
        .otherwise(pl.lit("White"))
    )
    result = make_splits(samples, stratify=["race", "sex", "labels"], seed=seed)
    rare_splits = result.assignments.filter(pl.col("person_id").is_in(rare["person_id"].implode()))
    assert rare_splits.get_column("split").n_unique() >= 2


def test_every_subgroup_is_listed_in_every_split_even_when_absent() -> None:
    samples = table(60, seed=2).with_columns(
        age_group=pl.when(pl.col("person_id") == pl.col("person_id").min())
        .then(pl.lit("90+"))
        .otherwise(pl.col("age_group"))
    )
    report = make_splits(samples, seed=0).report
    for part in report["splits"].values():
        assert "90+" in part["attributes"]["age_group"]
        assert sum(part["attributes"]["age_group"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(p["persons"] for p in report["splits"].values()) == report["n_persons"]
    assert sum(p["samples"] for p in report["splits"].values()) == report["n_samples"]


def test_labels_are_aggregated_per_person_with_uncertain_and_missing_not_positive() -> None:
    samples = pl.DataFrame(
        {
            "person_id": [1, 1, 2, 3, 4, 5, 6],
            "label_x": [None, 1.0, -1.0, None, 0.0, 1.0, 0.0],
        },
        schema_overrides={"label_x": pl.Float32},
    )
    result = make_splits(samples, fractions={"a": 0.5, "b": 0.5}, seed=0)
    overall = result.report["overall"]["labels"]["label_x"]
    assert overall == {"positive": pytest.approx(2 / 7), "uncertain": pytest.approx(1 / 7),
                       "missing": pytest.approx(2 / 7)}  # fmt: skip
    # persons 1 and 5 are the only positive persons: iterative stratification separates them
    splits = person_splits(result)
    assert splits[1] != splits[5]


# ------------------------------------------------------------------------------------------
# Out-of-distribution and official splits
# ------------------------------------------------------------------------------------------


def test_holdout_site_puts_every_person_seen_there_in_test() -> None:
    samples = table(500, seed=4)
    result = make_splits(samples, holdout={"site": ["C"]}, seed=0)
    assert_no_leakage(samples, result)
    splits = person_splits(result)
    at_c = set(samples.filter(pl.col("site") == "C").get_column("person_id"))
    assert {p for p, s in splits.items() if s == "test"} == at_c
    rest = result.report["splits"]
    rest_persons = rest["train"]["persons"] + rest["val"]["persons"]
    assert rest["train"]["persons"] / rest_persons == pytest.approx(8 / 9, abs=0.02)
    assert result.strategy["kind"] == "holdout"
    assert result.strategy["holdout"] == {"site": ["C"]}


def test_time_split_holds_out_the_latest_persons() -> None:
    samples = table(400, seed=5)
    result = make_splits(samples, time_column="study_date", time_holdout_fraction=0.2, seed=0)
    assert_no_leakage(samples, result)
    first = (
        samples.group_by("person_id")
        .agg(pl.col("study_date").min())
        .join(result.assignments, on="person_id")
    )
    test_min = first.filter(pl.col("split") == "test").get_column("study_date").min()
    other_max = first.filter(pl.col("split") != "test").get_column("study_date").max()
    assert test_min >= other_max
    assert result.report["splits"]["test"]["fraction_persons"] == pytest.approx(0.2, abs=0.01)
    assert result.strategy["time_cutoff"] == str(test_min)


def test_a_small_time_fraction_still_holds_out_the_latest_person() -> None:
    samples = table(50, seed=5)
    result = make_splits(samples, time_column="study_date", time_holdout_fraction=0.01, seed=0)
    assert_no_leakage(samples, result)
    assert result.report["splits"]["test"]["persons"] == 1


def test_seed_and_person_id_type_are_checked() -> None:
    samples = table(20)
    for bad in (-1, 1.5, "3", True):
        with pytest.raises(UsageError, match="seed must be a non-negative integer"):
            make_splits(samples, seed=bad)
    as_text = samples.with_columns(pl.col("person_id").cast(pl.String) + "x")
    with pytest.raises(UsageError, match="person_id must be an integer column"):
        make_splits(as_text)


def test_official_split_is_kept_and_crossing_persons_are_flagged() -> None:
    samples = pl.DataFrame(
        {
            "sample_id": [1, 2, 3, 4, 5, 6],
            "person_id": [10, 10, 11, 12, 12, 12],
            "strat_fold": [1, 1, 2, 10, 2, 10],
            "sex": ["F", "F", "M", "M", "M", "M"],
        }
    )
    result = official_split(samples, "strat_fold")
    assert person_splits(result) == {10: "1", 11: "2", 12: "10"}
    assert list(result.report["splits"]) == ["1", "2", "10"]
    assert result.report["leakage"]["persons_in_multiple_splits"] == 1
    assert result.strategy == {"kind": "official", "by": "person_id", "column": "strat_fold",
                               "seed": None}  # fmt: skip


def test_split_report_accepts_sample_level_assignments() -> None:
    samples = table(50, seed=6)
    rows = samples.select("sample_id", split=pl.when(pl.col("sample_id") % 2 == 0).then(
        pl.lit("train")).otherwise(pl.lit("test")))  # fmt: skip
    report = split_report(samples, rows, attributes=["sex"])
    assert report["leakage"]["persons_in_multiple_splits"] > 0
    assert set(report["splits"]) == {"train", "test"}
    assert report["max_deviation"]["split"] in {"train", "test"}


# ------------------------------------------------------------------------------------------
# Helpers and errors
# ------------------------------------------------------------------------------------------


def test_parse_fractions() -> None:
    assert parse_fractions("train=0.8, val=0.1,test=0.1") == {"train": 0.8, "val": 0.1, "test": 0.1}
    for bad in ["train=0.8,val=0.1", "train", "train=x,val=1", "a=0.5,a=0.5", "", "a=1,b=0"]:
        with pytest.raises(UsageError):
            parse_fractions(bad)


def test_to_meds_names() -> None:
    assignments = pl.DataFrame({"person_id": [3, 1, 2], "split": ["test", "train", "val"]})
    meds = to_meds_names(assignments)
    assert meds.columns == ["subject_id", "split"]
    assert meds.rows() == [(1, "train"), (2, "tuning"), (3, "held_out")]
    with pytest.raises(UsageError, match="no MEDS equivalent"):
        to_meds_names(pl.DataFrame({"person_id": [1], "split": ["fold0"]}))


def test_clear_errors() -> None:
    samples = table(20)
    cases = [
        (lambda: make_splits(samples.clear()), "empty"),
        (lambda: make_splits(samples.head(1)), "Cannot make 3 splits from 1 person"),
        (lambda: make_splits(samples, fractions={"a": 0.5, "b": 0.4}), "sum to 0.9"),
        (lambda: make_splits(samples, stratify=["skin_type"]), "skin_type"),
        (lambda: make_splits(samples, by="family_id"), "family_id"),
        (lambda: make_splits(samples, label_columns=["nope"]), "nope"),
        (lambda: make_splits(samples, folds=1), "folds"),
        (lambda: make_splits(samples, folds=3, fractions={"a": 1.0}), "not both"),
        (lambda: make_splits(samples, holdout={"site": ["Z"]}), "site=Z"),
        (lambda: make_splits(samples, time_column="study_date"), "time"),
        (
            lambda: make_splits(samples.with_columns(person_id=pl.lit(None, pl.Int64))),
            "no person_id",
        ),
    ]
    for call, fragment in cases:
        with pytest.raises(UsageError, match=fragment) as info:
            call()
        assert info.value.hint, fragment
        assert info.value.exit_code == 2


def test_many_families_use_the_batched_path_without_leakage(monkeypatch) -> None:
    import meddata.splits as splits_module

    monkeypatch.setattr(splits_module, "_GREEDY_MAX_UNITS", 0)
    samples = table(600, seed=7)
    families = samples.select("person_id").unique().sort("person_id")
    samples = samples.join(
        families.with_columns(family_id=pl.col("person_id") // 3), on="person_id"
    )
    result = make_splits(samples, by="family_id", seed=0)
    assert_no_leakage(samples, result)
    assert result.report["leakage"]["groups_in_multiple_splits"] == 0
    assert result.report["splits"]["train"]["fraction_persons"] == pytest.approx(0.8, abs=0.05)


def test_label_columns_in_stratify_are_labels_and_strategy_is_recorded() -> None:
    samples = table(200, seed=8)
    result = make_splits(samples, stratify=["sex", "label_l0"], seed=2)
    assert result.strategy["stratify"] == ["sex", "label_l0"]
    assert result.strategy["fractions"] == {"train": 0.8, "val": 0.1, "test": 0.1}
    assert "label_l0" not in result.report["overall"]["attributes"]
    assert set(result.report["overall"]["labels"]) == {"label_l0", "label_l1", "label_l2"}


def test_person_attribute_is_the_most_frequent_value_and_unknown_when_missing() -> None:
    samples = pl.DataFrame(
        {
            "person_id": [1, 1, 1, 2, 2, 3, 4, 4],
            "sex": ["M", "F", "F", None, None, "M", "M", "F"],
        }
    )
    report = make_splits(samples, fractions={"a": 0.5, "b": 0.5}, seed=0).report
    # person 1 -> F (2 of 3 rows), 2 -> Unknown (all null), 3 -> M, 4 -> F (tie: smallest)
    assert report["overall"]["attributes"]["sex"] == {"F": 0.5, "M": 0.25, "Unknown": 0.25}


@pytest.mark.parametrize("n_persons", [3, 4, 6, 9])
def test_small_datasets_get_every_split(n_persons: int) -> None:
    """Rounding never leaves a requested split empty when there are enough persons."""
    frame = pl.DataFrame(
        {
            "sample_id": list(range(2 * n_persons)),
            "person_id": [i // 2 for i in range(2 * n_persons)],
            "sex": ["Male", "Female"] * n_persons,
        }
    )
    result = make_splits(frame, seed=1)
    assert set(result.assignments["split"]) == {"train", "val", "test"}
    assert result.assignments["person_id"].is_unique().all()
