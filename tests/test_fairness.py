"""meddata.fairness: per-group metrics agree with scikit-learn; gaps and equity scaling."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import average_precision_score, roc_auc_score

from meddata.errors import UsageError
from meddata.fairness import render, report, summary


def data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    score = np.clip(0.35 * y + 0.65 * rng.random(n), 0.0, 1.0)
    group = rng.choice(["F", "M"], n)
    return y, score, group


def test_matches_scikit_learn_per_group() -> None:
    y, score, group = data()
    df = report(y, score, group, threshold=0.5)
    assert df.columns == ["group", "n", "prevalence", "auroc", "auprc", "tpr", "fpr", "ece"]
    assert df.get_column("group").to_list() == ["overall", "F", "M"]
    for name, mask in [
        ("overall", np.ones_like(y, bool)),
        ("F", group == "F"),
        ("M", group == "M"),
    ]:
        row = df.filter(pl.col("group") == name).row(0, named=True)
        yt, ys = y[mask], score[mask]
        assert row["n"] == mask.sum()
        assert row["prevalence"] == pytest.approx(yt.mean())
        assert row["auroc"] == pytest.approx(roc_auc_score(yt, ys))
        assert row["auprc"] == pytest.approx(average_precision_score(yt, ys))
        assert row["tpr"] == pytest.approx(((ys >= 0.5) & (yt == 1)).sum() / (yt == 1).sum())
        assert row["fpr"] == pytest.approx(((ys >= 0.5) & (yt == 0)).sum() / (yt == 0).sum())


def test_uncertain_and_missing_labels_are_left_out() -> None:
    y, score, group = data()
    y_marked = y.copy()
    y_marked[:10] = -1.0
    y_marked[10:20] = np.nan
    df = report(y_marked, score, group)
    keep = np.arange(y.size) >= 20
    assert df.row(0, named=True)["n"] == keep.sum()
    assert df.row(0, named=True)["auroc"] == pytest.approx(roc_auc_score(y[keep], score[keep]))


def test_single_class_group_has_null_auroc_and_tpr() -> None:
    y = np.array([0, 0, 0, 1, 0, 1], dtype=float)
    score = np.array([0.1, 0.7, 0.2, 0.9, 0.4, 0.6])
    group = ["a", "a", "a", "b", "b", "b"]
    df = report(y, score, group)
    a = df.filter(pl.col("group") == "a").row(0, named=True)
    assert a["auroc"] is None and a["tpr"] is None and a["auprc"] is None
    assert a["fpr"] == pytest.approx(1 / 3)


def test_expected_calibration_error_by_hand() -> None:
    y = np.array([1, 0, 1, 1], dtype=float)
    score = np.array([0.05, 0.05, 0.95, 0.85])
    df = report(y, score, ["g"] * 4, n_bins=2)
    # bin [0, .5): mean y .5 vs mean score .05 -> .45 * 2; bin [.5, 1]: 1 vs .9 -> .1 * 2
    assert df.row(0, named=True)["ece"] == pytest.approx((0.45 * 2 + 0.1 * 2) / 4)
    assert report(y, score * 10, ["g"] * 4).row(0, named=True)["ece"] is None  # not probabilities


def test_summary_gap_worst_and_equity_scaled() -> None:
    df = pl.DataFrame(
        {
            "group": ["overall", "a", "b", "c"],
            "n": [30, 10, 10, 10],
            "prevalence": [0.5, 0.5, 0.5, 0.5],
            "auroc": [0.8, 0.9, 0.7, None],
            "fpr": [0.2, 0.1, 0.4, 0.2],
        }
    )
    s = summary(df)
    assert s["auroc"]["worst_group"] == "b" and s["auroc"]["worst_value"] == pytest.approx(0.7)
    assert s["auroc"]["largest_gap"] == pytest.approx(0.2)
    assert s["auroc"]["equity_scaled"] == pytest.approx(0.8 / (1 + 0.1 + 0.1))
    assert s["fpr"]["worst_group"] == "b"  # higher FPR is worse
    assert s["fpr"]["equity_scaled"] is None


def test_multi_label_and_several_attributes() -> None:
    rng = np.random.default_rng(1)
    n = 300
    y = (rng.random((n, 2)) < 0.4).astype(float)
    score = rng.random((n, 2))
    groups = {"sex": rng.choice(["F", "M", None], n), "site": rng.choice(["s1", "s2"], n)}
    df = report(y, score, groups, label_names=["edema", "effusion"])
    assert df.columns[:3] == ["label", "attribute", "group"]
    assert df.height == 2 * (3 + 1 + 2 + 1)
    assert "Unknown" in df.filter(pl.col("attribute") == "sex").get_column("group").to_list()
    s = summary(df)
    assert set(s) == {
        f"label={lab}, attribute={att}" for lab in ("edema", "effusion") for att in ("sex", "site")
    }
    text = render(df)
    assert text.startswith("| label | attribute | group |")
    assert "label=edema, attribute=sex:" in text and "equity-scaled" in text


def test_polars_frame_input_uses_column_names() -> None:
    y = pl.DataFrame({"label_edema": [1.0, 0.0, None, 1.0], "label_mass": [0.0, 1.0, 1.0, -1.0]})
    score = pl.DataFrame({"a": [0.9, 0.2, 0.5, 0.6], "b": [0.3, 0.8, 0.7, 0.1]})
    df = report(y, score, ["x", "x", "y", "y"])
    assert df.get_column("label").unique(maintain_order=True).to_list() == ["edema", "mass"]


def test_errors() -> None:
    y, score, group = data(20)
    with pytest.raises(UsageError, match="shape"):
        report(y, score[:10], group)
    with pytest.raises(UsageError, match=r"value\(s\) for"):
        report(y, score, group[:5])
    with pytest.raises(UsageError, match="Unknown fairness metric"):
        report(y, score, group, metrics=["accuracy"])
    with pytest.raises(UsageError, match="empty"):
        report([], [], [])


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 80),
    seed=st.integers(0, 10**6),
    threshold=st.floats(0.05, 0.95),
)
def test_metrics_are_bounded_and_groups_partition_overall(n, seed, threshold) -> None:
    rng = np.random.default_rng(seed)
    y = rng.choice([0.0, 1.0, -1.0, np.nan], n)
    score = rng.random(n)
    group = rng.choice(["a", "b", "c"], n)
    df = report(y, score, group, threshold=threshold)
    overall = df.row(0, named=True)
    assert overall["group"] == "overall"
    assert df.get_column("n")[1:].sum() == overall["n"] == np.isin(y, [0, 1]).sum()
    for metric in ("prevalence", "auroc", "auprc", "tpr", "fpr", "ece"):
        values = df.get_column(metric).drop_nulls()
        assert ((values >= 0) & (values <= 1)).all()
    s = summary(df)
    for stats in s.values():
        if stats["equity_scaled"] is not None:
            assert stats["equity_scaled"] <= stats["overall"] + 1e-12


def test_missing_group_values_of_any_kind_are_unknown() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame(
        {
            "y": [1, 0, 1, 0, 1, 0],
            "s": [0.9, 0.2, 0.6, 0.4, 0.7, 0.1],
            "sex": ["M", None, "F", "M", np.nan, "F"],
            "age": [30.0, np.nan, 40.0, 30.0, 40.0, np.nan],
        }
    )
    out = report(frame.y, frame.s, {"sex": frame.sex, "age": frame.age})
    sexes = out.filter(pl.col("attribute") == "sex").get_column("group").to_list()
    ages = out.filter(pl.col("attribute") == "age").get_column("group").to_list()
    assert sexes == ["overall", "F", "M", "Unknown"] and "Unknown" in ages and "nan" not in ages
    series = report([1, 0, 1], [0.8, 0.3, 0.6], pl.Series([1.0, float("nan"), None]))
    assert series.get_column("group").to_list() == ["overall", "1.0", "Unknown"]


def test_a_group_called_overall_is_refused() -> None:
    with pytest.raises(UsageError, match="called 'overall'"):
        report([1, 0, 1, 0], [0.9, 0.1, 0.8, 0.3], ["overall", "overall", "b", "b"])


def test_nan_scores_are_left_out_with_a_warning() -> None:
    with pytest.warns(UserWarning, match="1 labelled prediction"):
        out = report([1, 0, 1, 0], [0.9, float("nan"), 0.8, 0.2], ["a", "a", "b", "b"])
    assert out.filter(pl.col("group") == "overall").get_column("n").item() == 3


def test_numeric_groups_are_in_numeric_order_and_unknown_last() -> None:
    out = report([1, 0] * 4, [0.9, 0.1] * 4, [10, 10, 2, 2, None, None, "x", "x"])
    assert out.get_column("group").to_list() == ["overall", "2", "10", "x", "Unknown"]
