"""GMC: the authors' KADID-10k reference values, a naive pairwise implementation, corner cases,
surfaces, plots and the ``reliqa gmc`` command."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from typer.testing import CliRunner

from reliqa.cli.app import app
from reliqa.exceptions import InvalidInputError
from reliqa.surfaces.gmc import (
    beta_std,
    cross_validated_bandwidth,
    fit_surface,
    gmc,
    gmc_values,
    latin_hypercube_points,
    local_linear,
    plot_heatmap,
    plot_surface_html,
    regulator_weights,
)

KADID = Path("gmc_reference") / "kadid10k"


def naive_gmc(pred, mos, sigma, weights, points, rank_method="dense"):
    """The definition, literally: every unordered pair, weights in log-space for stability."""
    i, j = np.triu_indices(mos.size, 1)
    a, b = pred[i] - pred[j], mos[i] - mos[j]
    rank_s, rank_y = (
        stats.rankdata(pred, method=rank_method),
        stats.rankdata(mos, method=rank_method),
    )
    ra, rb = rank_s[i] - rank_s[j], rank_y[i] - rank_y[j]
    rows = []
    for qs, qd in points:
        log_w = (
            -((qs - mos[i]) ** 2) / (2 * sigma[i] ** 2)
            - (qs - mos[j]) ** 2 / (2 * sigma[j] ** 2)
            - (qd - np.abs(b)) ** 2 / (2 * (sigma[i] ** 2 + sigma[j] ** 2))
            + np.log(weights[i])
            + np.log(weights[j])
        )
        w = np.exp(log_w - log_w.max())
        rows.append(
            [
                np.sum(w * a * b) / np.sqrt(np.sum(w * a * a) * np.sum(w * b * b)),
                np.sum(w * ra * rb) / np.sqrt(np.sum(w * ra * ra) * np.sum(w * rb * rb)),
                np.sum(w * np.sign(a) * np.sign(b)) / np.sum(w),
            ]
        )
    return np.array(rows)


@pytest.fixture
def tied_data() -> dict[str, np.ndarray]:
    """80 images with heavy ties in MOS, std, weights and predictions (as real MOS data has)."""
    rng = np.random.default_rng(7)
    mos = np.round(rng.uniform(1, 5, 80), 1)
    return {
        "pred": np.round(mos + rng.normal(0, 0.8, 80), 1),
        "mos": mos,
        "std": rng.choice([0.4, 0.6, 0.9], 80),
        "weights": rng.choice([0.5, 1.0, 2.0], 80),
        "points": np.column_stack([rng.uniform(1, 5, 9), rng.uniform(0, 4, 9)]),
    }


# ------------------------------------------------------------------ reference data (CI has it)


@pytest.mark.shared
def test_regulator_reproduces_reference_weights(shared_data: Path) -> None:
    meta = np.genfromtxt(
        shared_data / KADID / "meta_info.csv",
        delimiter=",",
        names=True,
        dtype=None,
        encoding="utf-8",
    )
    reference = np.loadtxt(shared_data / KADID / "regulator_weights.txt")
    np.testing.assert_array_equal(regulator_weights(meta["mos"], meta["std"]), reference)


@pytest.mark.shared
@pytest.mark.parametrize("metric", ["psnr", "ssim", "ms_ssim"])
def test_reference_kadid10k(shared_data: Path, metric: str) -> None:
    folder = shared_data / KADID
    meta = np.genfromtxt(
        folder / "meta_info.csv", delimiter=",", names=True, dtype=None, encoding="utf-8"
    )
    predictions = np.loadtxt(folder / f"pred_{metric}.csv", delimiter=",", skiprows=1)
    expected = np.loadtxt(folder / f"expected_{metric}.csv", delimiter=",", skiprows=1)
    weights = np.loadtxt(folder / "regulator_weights.txt")
    values = gmc_values(predictions[:, 0], predictions[:, 1], meta["std"], weights, expected[:, :2])
    np.testing.assert_allclose(values, expected[:, 2:], rtol=0, atol=1e-9)


# ------------------------------------------------------------------ the definition


def test_matches_naive_pairs(tied_data: dict[str, np.ndarray]) -> None:
    d = tied_data
    ours = gmc_values(d["pred"], d["mos"], d["std"], d["weights"], d["points"], memory_elements=64)
    np.testing.assert_allclose(
        ours, naive_gmc(d["pred"], d["mos"], d["std"], d["weights"], d["points"]), atol=1e-12
    )
    wider = gmc_values(
        d["pred"], d["mos"], d["std"], d["weights"], d["points"], bandwidth_multiplier=1.7
    )
    naive_wider = naive_gmc(d["pred"], d["mos"], 1.7 * d["std"], d["weights"], d["points"])
    np.testing.assert_allclose(wider, naive_wider, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_matches_naive_pairs_random_structure(seed: int) -> None:
    """Singleton and large groups, zero weights, ties across groups, any number of points."""
    rng = np.random.default_rng(seed)
    size = int(rng.integers(5, 60))
    mos = np.round(rng.uniform(1, 5, size), int(rng.integers(0, 3)))
    pred = np.round(rng.normal(mos, 1.0), int(rng.integers(0, 3)))
    if np.ptp(pred) == 0 or np.ptp(mos) == 0:
        pytest.skip("constant draw")
    std = rng.choice([0.3, 0.5, 1.0], size) * rng.uniform(0.5, 1.5)
    weights = rng.choice([0.0, 1.0, 3.0], size, p=[0.2, 0.4, 0.4])
    points = np.column_stack([rng.uniform(0, 6, 5), rng.uniform(0, 4, 5)])
    ours = gmc_values(pred, mos, std, weights, points, memory_elements=int(rng.integers(1, 5000)))
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = naive_gmc(pred, mos, std, weights, points)
    np.testing.assert_allclose(ours, expected, atol=1e-12)


def test_srcc_uses_dense_ranks(tied_data: dict[str, np.ndarray]) -> None:
    d = tied_data
    ours = gmc_values(d["pred"], d["mos"], d["std"], d["weights"], d["points"])[:, 1]
    average_ranks = naive_gmc(
        d["pred"], d["mos"], d["std"], d["weights"], d["points"], rank_method="average"
    )[:, 1]
    assert np.abs(ours - average_ranks).max() > 1e-4  # the tie handling matters here…
    dense = naive_gmc(d["pred"], d["mos"], d["std"], d["weights"], d["points"])[:, 1]
    np.testing.assert_allclose(ours, dense, atol=1e-12)  # …and GMC uses dense ranks


def test_perfect_and_reversed_predictions() -> None:
    mos = np.linspace(1, 5, 60)  # no ties: KRCC-GMC reaches ±1 too
    std = np.full(60, 0.5)
    points = latin_hypercube_points(12, seed=3, score_range=(1, 5))
    np.testing.assert_allclose(
        gmc_values(2 * mos + 1, mos, std, np.ones(60), points), 1.0, atol=1e-12
    )
    np.testing.assert_allclose(gmc_values(-mos, mos, std, np.ones(60), points), -1.0, atol=1e-12)
    monotone = gmc_values(np.exp(mos), mos, std, np.ones(60), points)  # rank correlations only
    np.testing.assert_allclose(monotone[:, 1:], 1.0, atol=1e-12)
    assert np.all(monotone[:, 0] < 1.0 - 1e-3)


def test_latin_hypercube_points() -> None:
    points = latin_hypercube_points(50, seed=4, score_range=(1.0, 4.93))
    assert points.shape == (50, 2)
    strata_qs = np.floor((points[:, 0] - 1.0) / 3.93 * 50)
    strata_qd = np.floor(points[:, 1] / 3.93 * 50)
    assert sorted(strata_qs) == list(range(50)) and sorted(strata_qd) == list(range(50))
    np.testing.assert_array_equal(
        points, latin_hypercube_points(50, seed=4, score_range=(1.0, 4.93))
    )
    assert not np.array_equal(points, latin_hypercube_points(50, seed=5, score_range=(1.0, 4.93)))


def test_regulator_without_std_flattens_the_distribution() -> None:
    rng = np.random.default_rng(0)
    mos = np.concatenate([rng.normal(3.0, 0.3, 400), rng.uniform(1, 5, 100)]).clip(1, 5)
    weights = regulator_weights(mos)
    crowded, rare = np.abs(mos - 3.0) < 0.2, np.abs(mos - 3.0) > 1.5
    assert weights[rare].mean() > 5 * weights[crowded].mean()
    # every image in one density bin shares a weight
    bins = np.floor((mos - mos.min()) / np.ptp(mos) * 100)
    assert all(np.ptp(weights[bins == b]) == 0 for b in np.unique(bins))


def test_beta_std() -> None:
    mos = np.array([1.0, 2.0, 3.0, 5.0])
    np.testing.assert_allclose(
        beta_std(mos, phi=4.0, score_range=(1, 5)), 4 * np.sqrt(np.array([0, 0.1875, 0.25, 0]) / 5)
    )
    assert (
        beta_std(mos, phi=9.0, score_range=(1, 5))[2]
        < beta_std(mos, phi=4.0, score_range=(1, 5))[2]
    )


# ------------------------------------------------------------------ corner cases


def test_zero_std_weighs_only_at_its_own_mos(tied_data: dict[str, np.ndarray]) -> None:
    d = tied_data
    std = d["std"].copy()
    std[:5] = 0.0
    # near (not at) a σ = 0 image's MOS: the definition gives it weight 0 there
    points = np.vstack([d["points"], [[d["mos"][0] + 0.01, 0.3], [d["mos"][1] - 0.002, 1.0]]])
    ours = gmc_values(d["pred"], d["mos"], std, d["weights"], points)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(
        ours, literal_gmc(d["pred"], d["mos"], std, d["weights"], points), atol=1e-12
    )
    # exactly at its MOS the limit (factor 1) keeps the value finite where the literal is 0/0
    at_mos = gmc_values(d["pred"], d["mos"], std, d["weights"], [[d["mos"][0], 0.0]])
    assert np.all(np.isfinite(at_mos))


def test_weights_that_would_underflow_stay_exact() -> None:
    rng = np.random.default_rng(2)
    mos = np.sort(rng.uniform(1, 5, 50))
    pred = mos + rng.normal(0, 0.5, 50)
    narrow = np.full(50, 0.02)  # exp(−(Qs − y)²/2σ²) underflows to 0 far from every MOS
    far_points = np.array([[9.0, 0.5], [-3.0, 2.0], [3.05, 3.9]])
    assert not np.any(np.exp(-((9.0 - mos) ** 2) / (2 * narrow**2)))  # the literal formula: 0/0
    ours = gmc_values(pred, mos, narrow, np.ones(50), far_points)
    assert np.all(np.isfinite(ours))
    np.testing.assert_allclose(
        ours, naive_gmc(pred, mos, narrow, np.ones(50), far_points), atol=1e-9
    )


def test_degenerate_points_are_nan_and_flagged() -> None:
    mos = np.linspace(1, 5, 30)
    pred = mos.copy()
    pred[[3, 4]] = 7.0  # the only weighted pair is tied in prediction…
    weights = np.zeros(30)
    weights[[3, 4]] = 1.0
    values = gmc_values(pred, mos, np.full(30, 0.5), weights, [[1.5, 0.1], [4.0, 2.0]])
    assert np.isnan(values[:, :2]).all()  # …so PLCC and SRCC are undefined…
    np.testing.assert_array_equal(values[:, 2], 0.0)  # …and KRCC is 0 (no concordant pair)
    nothing = gmc_values(pred, mos, np.full(30, 0.5), np.zeros(30), [[2.0, 1.0]])
    assert np.isnan(nothing).all()  # no pair has any weight at all

    result = gmc(pred, mos, np.full(30, 0.5), weights=weights, samples=10)
    assert result.degenerate["PLCC"].all() and not result.degenerate["KRCC"].any()
    assert np.isnan(result.average_height["PLCC"]) and "PLCC" not in result.surfaces
    assert any("PLCC: undefined at 10 of 10 points" in note for note in result.notes)


def test_bad_inputs() -> None:
    mos = np.linspace(1, 5, 20)
    with pytest.raises(InvalidInputError, match="pred is constant"):
        gmc(np.ones(20), mos)
    with pytest.raises(InvalidInputError, match="std: negative value at index 2"):
        gmc(mos, mos, np.where(np.arange(20) == 2, -1.0, 0.5))
    with pytest.raises(InvalidInputError, match=r"mos: NaN or infinite value at index 4"):
        gmc(mos, np.where(np.arange(20) == 4, np.nan, mos))
    with pytest.raises(InvalidInputError, match="points: expected shape"):
        gmc(mos, mos, points=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match="outside score_range"):
        gmc(mos, mos, score_range=(2, 5))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_matches_cpu(tied_data: dict[str, np.ndarray]) -> None:
    d = tied_data
    args = (d["pred"], d["mos"], d["std"], d["weights"], d["points"])
    np.testing.assert_allclose(gmc_values(*args, device="cuda"), gmc_values(*args), atol=1e-12)


# ------------------------------------------------------------------ surfaces and plots


def test_local_linear_matches_statsmodels() -> None:
    from statsmodels.nonparametric.kernel_regression import KernelReg

    rng = np.random.default_rng(1)
    points = np.column_stack([rng.uniform(1, 5, 20), rng.uniform(0, 4, 20)])
    values = 0.5 + 0.2 * np.sin(points[:, 0]) - 0.05 * points[:, 1] + rng.normal(0, 0.02, 20)
    reference = KernelReg(
        values, points, "cc", reg_type="ll", bw=[0.7, 1.1], rng=np.random.default_rng(0)
    )
    at = rng.uniform(1, 4, (20, 2))
    np.testing.assert_allclose(
        local_linear(points, values, at, [0.7, 1.1]), reference.fit(at)[0], atol=1e-10
    )
    selected = KernelReg(
        values, points, "cc", reg_type="ll", bw="cv_ls", rng=np.random.default_rng(0)
    )
    loss = selected.cv_loo  # statsmodels' own leave-one-out criterion
    ours = cross_validated_bandwidth(points, values)
    assert loss(ours, selected.est["ll"]) <= loss(selected.bw, selected.est["ll"]) * (1 + 1e-6)


def test_surface_of_a_plane_is_the_plane() -> None:
    points = latin_hypercube_points(40, seed=0, score_range=(1, 5))
    plane = 0.2 + 0.1 * points[:, 0] - 0.05 * points[:, 1]
    surface = fit_surface(points, plane, grid=11, qs_range=(1, 5), qd_range=(0, 4))
    qs, qd = np.meshgrid(surface.qs, surface.qd)
    np.testing.assert_allclose(surface.values, 0.2 + 0.1 * qs - 0.05 * qd, atol=1e-6)
    assert surface.average_height == pytest.approx(0.2 + 0.1 * 3 - 0.05 * 2, abs=1e-6)


def test_gmc_result_and_plots(tied_data: dict[str, np.ndarray], tmp_path: Path) -> None:
    d = tied_data
    result = gmc(d["pred"], d["mos"], d["std"], samples=25, seed=1, grid=20)
    assert set(result.values) == {"PLCC", "SRCC", "KRCC"} and result.qs.size == 25
    assert result.global_["SRCC"] == pytest.approx(stats.spearmanr(d["pred"], d["mos"]).statistic)
    for name, height in result.average_height.items():
        assert -1 <= height <= 1 and height == pytest.approx(result.surface(name).values.mean())
    payload = result.to_dict()
    assert list(payload["points"][0]) == ["Qs", "Qd", "PLCC", "SRCC", "KRCC"]
    png = plot_heatmap(result, tmp_path / "gmc.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = plot_surface_html(result, tmp_path / "gmc.html").read_text()
    assert 'src="http' not in html and len(html) > 1_000_000  # plotly.js inline: opens offline


# ------------------------------------------------------------------ the command


@pytest.fixture
def scores_csv(tied_data: dict[str, np.ndarray], tmp_path: Path) -> Path:
    path = tmp_path / "scores.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image", "metric", "mos", "std"])
        for k in range(tied_data["mos"].size):
            writer.writerow(
                [f"{k}.png", tied_data["pred"][k], tied_data["mos"][k], tied_data["std"][k]]
            )
    return path


def test_cli_json(scores_csv: Path, tied_data: dict[str, np.ndarray], tmp_path: Path) -> None:
    points = tmp_path / "points.csv"
    np.savetxt(points, tied_data["points"], delimiter=",", header="Qs,Qd", comments="")
    weights = tmp_path / "weights.txt"
    np.savetxt(weights, tied_data["weights"])
    args = ["gmc", str(scores_csv), "--pred-col", "metric", "--mos-col", "mos", "--std-col", "std"]
    run = CliRunner().invoke(
        app, [*args, "--points", str(points), "--weights-file", str(weights), "--json"]
    )
    assert run.exit_code == 0, run.output
    payload = json.loads(run.stdout)
    assert set(payload) >= {"points", "average_height", "global"}
    got = np.array([[p["PLCC"], p["SRCC"], p["KRCC"]] for p in payload["points"]])
    d = tied_data
    np.testing.assert_allclose(
        got, naive_gmc(d["pred"], d["mos"], d["std"], d["weights"], d["points"]), atol=1e-12
    )


def test_cli_errors(scores_csv: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(
        app, ["gmc", str(scores_csv), "--pred-col", "score", "--mos-col", "mos"]
    )
    assert missing.exit_code == 1
    assert "no column 'score'; available columns: 'image', 'metric', 'mos', 'std'" in missing.output
    both = runner.invoke(
        app,
        [
            "gmc",
            str(scores_csv),
            "--pred-col",
            "metric",
            "--mos-col",
            "mos",
            "--std-col",
            "std",
            "--std-file",
            str(scores_csv),
        ],
    )
    assert both.exit_code == 2 and "not both" in both.output
    broken = tmp_path / "broken.csv"
    lines = scores_csv.read_text().splitlines()
    lines[3] = lines[3].replace(lines[3].split(",")[1], "nan", 1)
    lines[7] = lines[7].replace(lines[7].split(",")[1], "inf", 1)
    broken.write_text("\n".join(lines) + "\n")
    bad = runner.invoke(app, ["gmc", str(broken), "--pred-col", "metric", "--mos-col", "mos"])
    assert bad.exit_code == 1 and "column 'metric'" in bad.output and "line 4, 8" in bad.output


def literal_gmc(pred, mos, sigma, weights, points):
    """The definition summed pair by pair in float64 log-space, σ taken exactly as given: an
    image with σ = 0 weighs exp(−(Qs − y)²/0) = 0 unless Qs equals its MOS (the authors' code)."""
    i, j = np.triu_indices(mos.size, 1)
    a, b = pred[i] - pred[j], mos[i] - mos[j]
    rank_s, rank_y = stats.rankdata(pred, method="dense"), stats.rankdata(mos, method="dense")
    ra, rb = rank_s[i] - rank_s[j], rank_y[i] - rank_y[j]
    rows = []
    for qs, qd in points:
        with np.errstate(divide="ignore", invalid="ignore"):
            log_u = np.log(weights) - (qs - mos) ** 2 / (2 * sigma**2)
            log_w = log_u[i] + log_u[j] - (qd - np.abs(b)) ** 2 / (
                2 * (sigma[i] ** 2 + sigma[j] ** 2)
            )
        w = np.exp(log_w - log_w.max())
        rows.append(
            [
                np.sum(w * a * b) / np.sqrt(np.sum(w * a * a) * np.sum(w * b * b)),
                np.sum(w * ra * rb) / np.sqrt(np.sum(w * ra * ra) * np.sum(w * rb * rb)),
                np.sum(w * np.sign(a) * np.sign(b)) / np.sum(w),
            ]
        )
    return np.array(rows)


def test_grouped_sums_match_the_literal_sum_at_the_edges_of_a_0_100_scale() -> None:
    """Issue 11: on a 0–100 set (MOS 2–96, many ties, std 0–23.5 with two zeros, regulator
    weights largest at the sparse top) the point (95.9946, 41.4962) was off by 0.025 while the
    other points agreed: σ = 0 was raised to a floor (0.094 here) in the per-image factor, so the
    std-0 image at MOS 96 weighed ~w there instead of 0."""
    rng = np.random.default_rng(11)
    n = 1500
    mos = np.clip(np.round(rng.beta(2.2, 1.6, n) * 94 + 2), 2, 96)  # integers: many ties
    mos[:4] = [96.0, 96.0, 95.0, 2.0]
    std = np.clip(rng.normal(12, 5, n) * np.sqrt(mos * (100 - mos)) / 50, 0.3, 23.5)
    std[0] = std[3] = 0.0  # the two zeros: one at the top, one at the bottom
    pred = mos + rng.normal(0, 12, n)
    weights = regulator_weights(mos, std)
    weights[:3] *= 40.0  # a few top images with large regulator weights
    assert weights[:3].min() > 10 * np.median(weights)
    points = np.array(
        [[95.9946, 41.4962], [96.0 - 1e-9, 0.2], [2.003, 60.0], [50.0, 20.0], [95.5, 0.0]]
    )
    ours = gmc_values(pred, mos, std, weights, points)
    np.testing.assert_allclose(ours, literal_gmc(pred, mos, std, weights, points), atol=1e-9)
