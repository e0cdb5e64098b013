"""Correlations against scipy, the logistic fit, bootstrap intervals and input checks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from reliqa.evaluation.correlation import (
    bootstrap_ci,
    correlation_report,
    fit_logistic,
    krcc,
    logistic5,
    plcc,
    plcc_logistic,
    read_score_columns,
    read_value_list,
    srcc,
)
from reliqa.exceptions import DataError, InvalidInputError, ShapeMismatchError


@pytest.fixture
def monotone() -> tuple[np.ndarray, np.ndarray]:
    """A monotone but strongly non-linear relation with noise and ties in the MOS."""
    rng = np.random.default_rng(3)
    pred = rng.uniform(0, 4, 300)
    mos = np.round(np.exp(pred) / 10 + rng.normal(0, 0.3, 300), 1)
    return pred, mos


def test_match_scipy(monotone: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = monotone
    assert srcc(pred, mos) == pytest.approx(stats.spearmanr(pred, mos).statistic, abs=1e-12)
    assert krcc(pred, mos) == pytest.approx(stats.kendalltau(pred, mos).statistic, abs=1e-12)
    assert plcc(pred, mos) == pytest.approx(stats.pearsonr(pred, mos).statistic, abs=1e-12)
    assert srcc(-pred, mos) == pytest.approx(-srcc(pred, mos), abs=1e-12)


def test_logistic_beats_linear_on_monotone_nonlinear(
    monotone: tuple[np.ndarray, np.ndarray],
) -> None:
    pred, mos = monotone
    assert plcc_logistic(pred, mos) > plcc(pred, mos) + 0.02
    # Lower-is-better predictions: the logistic flips, the correlation stays positive.
    assert plcc_logistic(-pred, mos) == pytest.approx(plcc_logistic(pred, mos), abs=1e-6)


def test_logistic_recovers_known_curve() -> None:
    x = np.linspace(20, 50, 200)
    truth = (4.0, 0.3, 35.0, 0.01, 3.0)
    fit = fit_logistic(x, logistic5(x, *truth))
    np.testing.assert_allclose(fit(x), logistic5(x, *truth), atol=1e-6)
    np.testing.assert_allclose(fit.params, truth, rtol=1e-4)


def test_bootstrap_interval(monotone: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = monotone
    low, high = bootstrap_ci(pred, mos, srcc, n_boot=200, seed=1)
    assert low < srcc(pred, mos) < high
    assert (low, high) == bootstrap_ci(pred, mos, srcc, n_boot=200, seed=1)
    assert (low, high) != bootstrap_ci(pred, mos, srcc, n_boot=200, seed=2)
    narrow = bootstrap_ci(pred, mos, srcc, n_boot=200, seed=1, level=0.5)
    assert low < narrow[0] < narrow[1] < high


def test_report(monotone: tuple[np.ndarray, np.ndarray]) -> None:
    pred, mos = monotone
    report = correlation_report(pred[:80], mos[:80], n_boot=50, seed=0)
    assert report["n"] == 80
    for key in ("SRCC", "KRCC", "PLCC", "PLCC_logistic"):
        low, high = report[key]["ci"]
        assert low <= report[key]["value"] <= high
    assert report["SRCC"]["value"] == pytest.approx(srcc(pred[:80], mos[:80]))


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="undefined.*pred is constant"):
        srcc(np.ones(10), np.arange(10))
    with pytest.raises(InvalidInputError, match="undefined.*mos is constant"):
        plcc(np.arange(10), np.full(10, 3.0))
    with pytest.raises(InvalidInputError, match=r"pred: NaN or infinite value at index 2, 5"):
        krcc([1, 2, np.nan, 4, 5, np.inf], [1, 2, 3, 4, 5, 6])
    with pytest.raises(ShapeMismatchError, match="pred has 4 values but mos has 3"):
        plcc([1, 2, 3, 4], [1, 2, 3])
    with pytest.raises(InvalidInputError, match="at least 3"):
        srcc([1, 2], [2, 1])


def test_read_score_columns(tmp_path) -> None:
    good = tmp_path / "scores.csv"
    good.write_text("image,pred,mos\na.png,0.5,3\nb.png,0.7,4\n")
    columns = read_score_columns(good, ["pred", "mos"])
    np.testing.assert_array_equal(columns["mos"], [3.0, 4.0])
    with pytest.raises(
        DataError, match=r"no column 'score'; available columns: 'image', 'pred', 'mos'"
    ):
        read_score_columns(good, ["score", "mos"])
    bad = tmp_path / "bad.csv"
    bad.write_text("pred,mos\n1,2\nnan,3\n2,\n4,inf\n5,x\n")
    with pytest.raises(DataError, match=r"column 'pred' .* line 3$"):
        read_score_columns(bad, ["pred"])
    with pytest.raises(DataError, match=r"column 'mos' .* line 4, 5, 6$"):
        read_score_columns(bad, ["mos"])
    values = tmp_path / "std.txt"
    values.write_text("std\n0.5\n0.25\n")
    np.testing.assert_array_equal(read_value_list(values, 2), [0.5, 0.25])
    with pytest.raises(DataError, match="2 values, but the CSV has 3 rows"):
        read_value_list(values, 3)
    values.write_text("0.5\nnan\n")
    with pytest.raises(DataError, match="line 2"):
        read_value_list(values)
