"""reliqa.tuning: the relational loss (minimum, gradients, guard-rails, options), the pipeline,
gradient and derivative-free tuning, and ``reliqa tune``.

Behaviour is tested with numbers: loss(x, x) = 0 is the minimum, a darkened image's gradient
brightens it, noise's gradient removes it, finite differences match the gradient, and tuning
recovers known pipeline parameters on a small bundled photo within a tolerance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F
from typer.testing import CliRunner

import reliqa
from reliqa.attributes import ATTRIBUTE_INDEX, NUM_ATTRIBUTES
from reliqa.cli import app
from reliqa.exceptions import InvalidInputError, ShapeMismatchError, UnknownNameError
from reliqa.models.weights import WEIGHTS_DIR
from reliqa.tuning import (
    IDENTITY,
    Pipeline,
    RelationalLoss,
    SearchDimension,
    coordinate_search,
    process,
    relational_loss,
    tune_gradient,
)
from reliqa.tuning.example import run_blackbox
from reliqa.tuning.loss import load_map_network
from reliqa.tuning.photos import jpeg_sharpen, load_photo

pytestmark = pytest.mark.skipif(
    not (WEIGHTS_DIR / "relational.safetensors").is_file(),
    reason="shipped relational weights missing",
)


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Small images gain nothing from threads, and on a shared 2-core machine idle OpenMP
    threads spin: one thread keeps this module's CPU time near its work (restored after)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """scikit-image's coffee photo, centre square at 96 × 96, (1, 3, 96, 96)."""
    return load_photo("coffee", 96)


@pytest.fixture(scope="module")
def small_photo() -> torch.Tensor:
    return load_photo("astronaut", 64)


# --------------------------------------------------------------------------------------------
# the loss: minimum, gradients
# --------------------------------------------------------------------------------------------


def test_identical_images_give_exactly_zero_and_that_is_the_minimum(photo: torch.Tensor) -> None:
    assert float(relational_loss(photo, photo)) == 0.0
    generator = torch.Generator().manual_seed(1)
    changed = [
        photo * 0.8,
        (photo + 0.05 * torch.randn(photo.shape, generator=generator)).clamp(0, 1),
        process(photo, {"saturation": 1.4}),
        process(photo, {"denoise": 1.0}),
        process(photo, {"temperature": 0.1}),
        (photo + 0.004).clamp(0, 1),
    ]
    values = relational_loss(
        torch.cat(changed), photo.expand(len(changed), -1, -1, -1), reduction="none"
    )
    assert values.shape == (len(changed),)
    assert bool((values > 0).all()), values
    # swapping test and reference mirrors the maps exactly, so the loss is symmetric
    swapped = relational_loss(
        photo.expand(len(changed), -1, -1, -1), torch.cat(changed), reduction="none"
    )
    torch.testing.assert_close(swapped, values, atol=1e-6, rtol=1e-5)


def test_darkened_image_gradient_brightens_it(photo: torch.Tensor) -> None:
    gain = torch.tensor(1.0, requires_grad=True)
    loss, terms = relational_loss((photo * 0.6) * gain, photo, return_terms=True)
    loss.backward()
    assert (
        float(terms.signed.detach()[0, ATTRIBUTE_INDEX["brightness"]]) < -0.2
    )  # the maps see "darker"
    assert gain.grad is not None and float(gain.grad) < 0  # descent raises the gain: brighter
    pixels = (photo * 0.6).requires_grad_(True)
    relational_loss(pixels, photo).backward()
    assert pixels.grad is not None and float(pixels.grad.sum()) < 0  # on average, brighten


def test_noise_gradient_reduces_the_noise(photo: torch.Tensor) -> None:
    generator = torch.Generator().manual_seed(0)
    # bounded noise of unit variance on a base that leaves room for it: no clipping, so the
    # noise amplitude stays a smooth parameter of the test
    noise = (2 * torch.rand(photo.shape, generator=generator) - 1) * math.sqrt(3)
    base = photo.clamp(0.15, 0.85)
    sigma = torch.tensor(0.06, requires_grad=True)
    loss, terms = relational_loss(base + sigma * noise, base, return_terms=True)
    loss.backward()
    assert float(terms.signed.detach()[0, ATTRIBUTE_INDEX["noise"]]) > 0.2  # the maps see "noisier"
    assert sigma.grad is not None and float(sigma.grad) > 0  # descent lowers the noise
    # and through the pipeline: more denoising lowers the loss of a noisy test
    strength = torch.tensor(0.0, requires_grad=True)
    relational_loss(process(base + 0.06 * noise, {"denoise": strength}), base).backward()
    assert strength.grad is not None and float(strength.grad) < 0


def test_gradient_matches_finite_differences() -> None:
    network = load_map_network().double()
    generator = torch.Generator().manual_seed(3)
    reference = 0.2 + 0.6 * torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64)
    test = (
        reference + 0.1 * torch.randn(1, 3, 16, 16, generator=generator, dtype=torch.float64)
    ).clamp(0.05, 0.95)
    test.requires_grad_(True)

    def loss(x: torch.Tensor) -> torch.Tensor:
        return relational_loss(x, reference, network=network)

    loss(test).backward()
    assert test.grad is not None
    gradient = test.grad.clone()
    for seed in range(3):
        direction = torch.randn(
            test.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
        direction /= direction.norm()
        eps = 1e-4
        with torch.no_grad():
            numeric = (loss(test + eps * direction) - loss(test - eps * direction)) / (2 * eps)
        analytic = (gradient * direction).sum()
        assert math.isclose(float(numeric), float(analytic), rel_tol=1e-3, abs_tol=1e-8), (
            float(numeric),
            float(analytic),
        )
    # element-wise on a few pixels
    for index in [(0, 0, 3, 4), (0, 1, 8, 8), (0, 2, 15, 0)]:
        bump = torch.zeros_like(test)
        bump[index] = 1e-5
        with torch.no_grad():
            numeric = (loss(test + bump) - loss(test - bump)) / 2e-5
        assert math.isclose(float(numeric), float(gradient[index]), rel_tol=2e-3, abs_tol=1e-8)


# --------------------------------------------------------------------------------------------
# guard-rails and options
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (lambda x: x.clone().index_fill_(3, torch.tensor([0]), float("nan")), "NaN"),
        (lambda x: x.clone().index_fill_(3, torch.tensor([0]), float("inf")), "NaN or infinite"),
        (lambda x: x * 1.5, r"\[0, 1\]"),
        (lambda x: x - 0.5, r"\[0, 1\]"),
        (lambda x: x * 255, "divide by 255"),
        (lambda x: x[:, :1], "N, 3, H, W"),
        (lambda x: x[0], "N, 3, H, W"),
        (lambda x: (x * 255).to(torch.uint8), "float"),
        (lambda x: x.numpy(), "(?i)tensor"),
    ],
)
def test_refuses_bad_inputs(small_photo: torch.Tensor, bad: object, message: str) -> None:
    broken = bad(small_photo)  # type: ignore[operator]
    with pytest.raises(InvalidInputError, match=message):
        relational_loss(broken, small_photo)
    with pytest.raises(InvalidInputError, match=message):
        relational_loss(small_photo, broken)
    with pytest.raises(InvalidInputError):
        RelationalLoss(network=load_map_network())(broken, small_photo)


def test_refuses_bad_options(small_photo: torch.Tensor) -> None:
    with pytest.raises(ShapeMismatchError):
        relational_loss(small_photo, small_photo[..., :32])
    with pytest.raises(InvalidInputError, match="unknown attribute"):
        relational_loss(small_photo, small_photo, weights={"bightness": 1.0})
    with pytest.raises(InvalidInputError, match="≥ 0"):
        relational_loss(small_photo, small_photo, weights={"noise": -1.0})
    with pytest.raises(InvalidInputError, match="weight > 0"):
        relational_loss(small_photo, small_photo, weights=[0.0] * NUM_ATTRIBUTES)
    with pytest.raises(InvalidInputError, match="9 values"):
        relational_loss(small_photo, small_photo, weights=[1.0, 2.0])
    with pytest.raises(InvalidInputError, match="targets"):
        relational_loss(small_photo, small_photo, targets={"brightness": 2.0})
    with pytest.raises(ShapeMismatchError, match="spatial_weight"):
        relational_loss(small_photo, small_photo, spatial_weight=torch.ones(8, 8))
    with pytest.raises(InvalidInputError, match="spatial_weight"):
        relational_loss(small_photo, small_photo, spatial_weight=torch.zeros(64, 64))
    with pytest.raises(InvalidInputError, match="reduction"):
        relational_loss(small_photo, small_photo, reduction="max")  # type: ignore[call-overload]


def test_weights_targets_and_spatial_weight_follow_their_definitions(photo: torch.Tensor) -> None:
    test = process(photo, {"exposure": -0.4, "denoise": 1.0})
    loss, terms = relational_loss(test, photo, return_terms=True)
    signed_map = 2 * (terms.maps - 0.5)
    per_attribute = signed_map.square().mean(dim=(-2, -1))
    torch.testing.assert_close(loss, per_attribute.mean(), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(terms.penalty.sum(), loss)
    torch.testing.assert_close(terms.signed, signed_map.mean(dim=(-2, -1)))
    # one attribute only: the loss is that attribute's mean squared signed change
    noise_only = relational_loss(
        test, photo, weights={name: 0.0 for name in ATTRIBUTE_INDEX} | {"noise": 3.0}
    )
    torch.testing.assert_close(noise_only, per_attribute[0, ATTRIBUTE_INDEX["noise"]])
    # a target: x against itself costs the target's square; a brighter test costs less
    k = ATTRIBUTE_INDEX["brightness"]
    _, same = relational_loss(photo, photo, targets={"brightness": 0.3}, return_terms=True)
    assert math.isclose(float(same.penalty[0, k]), 0.09 / NUM_ATTRIBUTES, rel_tol=1e-5)
    _, brighter = relational_loss(
        process(photo, {"exposure": 0.3}), photo, targets={"brightness": 0.3}, return_terms=True
    )
    assert float(brighter.penalty[0, k]) < float(same.penalty[0, k])
    # spatial weight: a weighted mean (uniform weight of any scale = no weight)
    torch.testing.assert_close(
        relational_loss(test, photo, spatial_weight=torch.full((96, 96), 7.0)), loss
    )
    mask = torch.zeros(96, 96)
    mask[:, :48] = 1.0
    left = relational_loss(test, photo, spatial_weight=mask)
    torch.testing.assert_close(left, signed_map[..., :48].square().mean())


def test_module_matches_function_and_keeps_the_network_frozen(photo: torch.Tensor) -> None:
    criterion = RelationalLoss(weights={"brightness": 2.0}, reduction="sum")
    criterion.train()
    assert not criterion.network.training
    test = (photo * 0.7).requires_grad_(True)
    value = criterion(test, photo)
    torch.testing.assert_close(
        value, relational_loss(photo * 0.7, photo, weights={"brightness": 2.0}, reduction="sum")
    )
    value.backward()
    assert test.grad is not None and bool(test.grad.abs().sum() > 0)
    assert all(p.grad is None and not p.requires_grad for p in criterion.network.parameters())
    assert reliqa.RelationalLoss is RelationalLoss and reliqa.relational_loss is relational_loss


def test_deterministic(small_photo: torch.Tensor) -> None:
    test = process(small_photo, {"gamma": 1.4, "sharpen": 1.0})
    first = relational_loss(test, small_photo, reduction="none")
    assert torch.equal(first, relational_loss(test, small_photo, reduction="none"))
    a = tune_gradient(small_photo, test, "relational", tune=["gamma", "sharpen"], steps=4, seed=3)
    b = tune_gradient(small_photo, test, "relational", tune=["gamma", "sharpen"], steps=4, seed=3)
    assert a.params == b.params and a.losses == b.losses


# --------------------------------------------------------------------------------------------
# the pipeline and tuning
# --------------------------------------------------------------------------------------------


def test_pipeline_identity_ranges_and_names(photo: torch.Tensor) -> None:
    torch.testing.assert_close(process(photo, IDENTITY), photo, atol=2e-4, rtol=0)
    out = process(photo.expand(2, -1, -1, -1), {"exposure": torch.tensor([0.0, 5.0])})
    torch.testing.assert_close(out[0:1], photo, atol=2e-4, rtol=0)
    torch.testing.assert_close(out[1:2], process(photo, {"exposure": 2.0}))  # clamped to range
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    with pytest.raises(InvalidInputError, match="unknown pipeline parameter"):
        process(photo, {"brightness": 1.0})
    with pytest.raises(InvalidInputError):
        Pipeline(tune=["exposure", "contrast"])


def test_gradient_tuning_recovers_known_parameters() -> None:
    photo = load_photo("astronaut", 96)
    truth = {"exposure": -0.5, "gamma": 1.3, "saturation": 0.7, "temperature": 0.12, "tint": -0.08}
    reference = process(photo, truth)
    result = tune_gradient(photo, reference, "relational", tune=list(truth), steps=100, lr=0.05)
    errors = {name: abs(result.params[name] - value) for name, value in truth.items()}
    assert errors["exposure"] < 0.02 and errors["gamma"] < 0.02, errors
    assert max(errors.values()) < 0.05, errors
    assert result.losses[result.best_step] < 0.01 * result.losses[0]
    assert 0 < result.converged_step <= 100
    assert len(result.trajectory["gamma"]) == 101
    assert float(relational_loss(result.output, reference)) == pytest.approx(
        result.losses[result.best_step], rel=1e-4, abs=1e-7
    )


def test_loss_names_are_catalogue_names_with_one_computation_each(photo: torch.Tensor) -> None:
    """``--losses ssim`` is the catalogue's ``ssim`` (grey), ``ssim_rgb`` the per-RGB-channel
    one: each loss is |best − metric| of the metric of its own name."""
    import reliqa.metrics
    from reliqa.tuning.optimize import LOSS_NAMES, judged_directly, loss_names, make_loss

    test = process(photo, {"exposure": -0.4, "saturation": 0.6})
    names = loss_names()
    assert set(LOSS_NAMES) <= set(names)
    assert {"ssim_rgb", "ms_ssim_rgb", "gmsd"} <= set(names)
    assert "psnr" not in names and "niqe" not in names  # best value +inf; no reference
    values = {}
    for name in ("ssim", "ssim_rgb", "gmsd"):
        metric = float(reliqa.metrics.create_metric(name)(test, photo).mean())
        values[name] = float(make_loss(name)(test, photo))
        expected = metric if name == "gmsd" else 1.0 - metric  # GMSD: lower is better, best 0
        assert values[name] == pytest.approx(expected, abs=1e-6), name
    assert abs(values["ssim"] - values["ssim_rgb"]) > 1e-4  # two names, two computations
    assert float(make_loss("ssim")(photo, photo)) == pytest.approx(0.0, abs=1e-6)
    assert judged_directly("ssim") == ("ssim",) and judged_directly("ssim_rgb") == ("ssim",)
    for bad in ("psnr", "niqe", "relational-plus", "nope"):
        with pytest.raises(UnknownNameError, match="ssim_rgb"):
            make_loss(bad)


def test_coordinate_search_finds_an_integer_minimum_within_budget() -> None:
    calls: list[dict[str, float]] = []

    def objective(params: dict[str, float]) -> float:
        calls.append(params)
        return (params["q"] - 37) ** 2 + 10 * (params["s"] - 0.25) ** 2

    space = {"q": SearchDimension(5, 95, 16, integer=True), "s": SearchDimension(0, 1, 0.3)}
    result = coordinate_search(objective, space, {"q": 20, "s": 0.0}, budget=60, seed=1)
    assert result.params["q"] == 37 and abs(result.params["s"] - 0.25) < 0.02
    assert len(calls) == len(result.evaluations) <= 60
    assert result.best_so_far[-1] == result.value
    again = coordinate_search(objective, space, {"q": 20, "s": 0.0}, budget=60, seed=1)
    assert again.params == result.params
    short = coordinate_search(objective, space, {"q": 20, "s": 0.0}, budget=5, seed=1)
    assert len(short.evaluations) == 5


def test_blackbox_search_respects_the_size_budget(small_photo: torch.Tensor) -> None:
    low, low_size = jpeg_sharpen(small_photo, 10, 0)
    high, high_size = jpeg_sharpen(small_photo, 90, 0)
    assert low_size < high_size and float(F.mse_loss(high, small_photo)) < float(
        F.mse_loss(low, small_photo)
    )
    from reliqa.tuning.judge import Judge

    # at 64 px the start (quality 20) is over 1.8 bpp: the search must walk back into budget
    judge = Judge.create()
    task = run_blackbox(small_photo, ["relational"], judge=judge, budget=12, budget_bpp=1.8)
    run = task.runs["relational"]
    assert task.info["start_bpp"] > 1.8
    assert run.extra["bpp"] <= 1.8 and run.steps <= 12
    assert judge.scorer is not None, judge.scorer_error  # the shipped relational model loads
    by_score = task.runs["relational_score"]  # … and its score drives a search of its own
    assert by_score.extra["bpp"] <= 1.8 and by_score.steps <= 12


def test_example_reports_each_finished_task_but_the_last() -> None:
    """``on_task`` lets a caller save the tasks done so far; the last one comes back as the
    result (calling it again made ``reliqa tune`` write the same report twice)."""
    from reliqa.tuning.example import run_example

    partial: list[list[str]] = []
    result = run_example(
        "chelsea", size=64, tasks=["recover", "blackbox"], losses=["mse"], steps=1, budget=2,
        on_task=lambda done: partial.append(list(done.tasks)),
    )
    assert partial == [["recover"]]
    assert list(result.tasks) == ["recover", "blackbox"]


# --------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------


def test_tune_command_writes_report_and_json(tmp_path: Path) -> None:
    out = tmp_path / "tune"
    result = CliRunner().invoke(
        app,
        [
            "tune",
            "--out",
            str(out),
            "--image",
            "chelsea",
            "--size",
            "64",
            "--steps",
            "3",
            "--budget",
            "3",
            "--losses",
            "relational,mse",
            "--tasks",
            "recover",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    runs = payload["tasks"]["recover"]["runs"]
    assert set(runs) == {"relational", "mse"}
    assert set(runs["relational"]["error"]) == set(IDENTITY)
    assert len(runs["relational"]["curve"]) == 4
    assert (out / "report.html").stat().st_size > 10_000
    assert (out / "curves.png").is_file() and (out / "recover_maps_after.png").is_file()
    assert json.loads((out / "results.json").read_text())["config"]["steps"] == 3


def test_tune_command_bad_usage(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["tune", "--out", str(tmp_path), "--losses", "psnr"])
    assert result.exit_code == 2 and "unknown" in result.stderr
    result = CliRunner().invoke(app, ["tune", "--out", str(tmp_path), "--size", "100"])
    assert result.exit_code == 1 and "161" in result.stderr
    with pytest.raises(UnknownNameError):
        load_photo("not_a_photo_name", 64)
