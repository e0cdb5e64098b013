"""HaarPSI, MDSI, VSI, SR-SIM and DSS (issue 17): agreement with piq, properties, registry.

piq is the reference implementation here (its weight-free metrics follow the authors' MATLAB or
Python code; where piq departs from it, docs/metrics.md says which one we follow). piq 0.8
imports torchvision at package import, which cannot be installed beside the CPU torch of these
machines, so its metric modules are loaded without ``piq/__init__.py`` (``pip install --no-deps
piq``, done by ``make setup``); the agreement tests skip when piq is absent.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from conftest import TID2013_PAIRS

import reliqa
from reliqa.exceptions import InvalidInputError
from reliqa.io import load_image
from reliqa.metrics import dss, haarpsi, mdsi, srsim, vsi
from reliqa.metrics.dss import dss as dss_kernel
from reliqa.metrics.filters import imresize_matlab
from reliqa.metrics.haarpsi import haarpsi as haarpsi_kernel
from reliqa.metrics.srsim import srsim as srsim_kernel

NEW_METRICS = ("haarpsi", "mdsi", "vsi", "vsi_piq", "srsim", "dss")
PIQ_TOLERANCE = 1e-3


def _load_piq() -> types.SimpleNamespace | None:
    """piq's weight-free metric functions without running piq/__init__.py; None if absent."""
    spec = importlib.util.find_spec("piq")
    if spec is None or spec.submodule_search_locations is None:
        return None
    if "piq" not in sys.modules:
        package = types.ModuleType("piq")
        package.__path__ = list(spec.submodule_search_locations)
        sys.modules["piq"] = package
    names = ("haarpsi", "mdsi", "vsi", "srsim", "dss")
    functions = {name: getattr(importlib.import_module(f"piq.{name}"), name) for name in names}
    functions["imresize"] = importlib.import_module("piq.functional.resize").imresize
    return types.SimpleNamespace(**functions)


@pytest.fixture(scope="module")
def piq() -> types.SimpleNamespace:
    loaded = _load_piq()
    if loaded is None:
        pytest.skip("piq is not installed (pip install --no-deps piq)")
    return loaded


def _piq_scores(piq: types.SimpleNamespace, metric: str, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """piq's value of the definition our ``metric`` follows, image by image.

    Image by image because piq's SR-SIM normalises the saliency maps over the whole batch (the
    reference code normalises each image); for the others it changes nothing.
    """
    if metric == "vsi_piq":
        function: Callable[..., torch.Tensor] = piq.vsi
    else:
        function = getattr(piq, metric)
    return torch.cat([function(test[i:i + 1], reference[i:i + 1], reduction="none") for i in range(len(test))])


def _distortions(reference: torch.Tensor) -> torch.Tensor:
    """Blur, noise, a colour shift and JPEG-like blocking of ``reference`` (N, 3, H, W) → (4N, 3, H, W)."""
    generator = torch.Generator().manual_seed(1)
    blurred = F.avg_pool2d(reference, 5, stride=1, padding=2, count_include_pad=False)
    noisy = (reference + 0.08 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
    shifted = (reference * torch.tensor([1.1, 0.95, 0.8]).view(1, 3, 1, 1)).clamp(0, 1)
    blocky = F.interpolate(F.avg_pool2d(reference, 8, ceil_mode=True), size=reference.shape[-2:], mode="nearest")
    return torch.cat([blurred, noisy, shifted, blocky])


@pytest.fixture(scope="module")
def photo_pairs() -> tuple[torch.Tensor, torch.Tensor]:
    """(test, reference): four distortions of two bundled photos at 384 x 512 (F = 2) and of
    two at 200 x 264 (F = 1, odd-free but not a multiple of 8 after cropping)."""
    from skimage import data

    tests, references = [], []
    for name, size in (("astronaut", (384, 512)), ("coffee", (384, 512)), ("chelsea", (200, 264)),
                       ("rocket", (200, 264))):
        photo = F.interpolate(load_image(getattr(data, name)()), size=size, mode="bilinear",
                              antialias=True, align_corners=False).clamp(0, 1)
        tests.append(_distortions(photo))
        references.append(photo.expand(4, -1, -1, -1))
    return tests, references  # type: ignore[return-value]


# ---------------------------------------------------------------- agreement with piq


@pytest.mark.parametrize("metric", ("haarpsi", "mdsi", "vsi_piq", "srsim", "dss"))
def test_matches_piq_on_bundled_photos(metric: str, piq, photo_pairs) -> None:
    tests, references = photo_pairs
    for test, reference in zip(tests, references):
        ours = reliqa.create_metric(metric)(test, reference)
        theirs = _piq_scores(piq, metric, test, reference)
        assert (ours - theirs).abs().max() <= PIQ_TOLERANCE, (metric, ours.tolist(), theirs.tolist())


@pytest.mark.parametrize("metric", ("haarpsi", "mdsi", "vsi_piq", "srsim", "dss"))
@pytest.mark.parametrize("size", [(48, 64), (61, 77), (130, 97)])
def test_matches_piq_on_generated_pairs(metric: str, size: tuple[int, int], piq) -> None:
    """Smooth random images (odd and even sizes), the test a noisy copy."""
    generator = torch.Generator().manual_seed(size[0])
    reference = F.interpolate(torch.rand(2, 3, size[0] // 4 + 1, size[1] // 4 + 1, generator=generator),
                              size=size, mode="bicubic", align_corners=False).clamp(0, 1)
    test = (reference + 0.05 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
    ours = reliqa.create_metric(metric)(test, reference)
    theirs = _piq_scores(piq, metric, test, reference)
    assert (ours - theirs).abs().max() <= PIQ_TOLERANCE, (metric, ours.tolist(), theirs.tolist())


@pytest.mark.shared
@pytest.mark.parametrize("metric", ("haarpsi", "mdsi", "vsi_piq", "srsim", "dss"))
def test_matches_piq_on_tid2013_calibration_pairs(metric: str, piq, calibration) -> None:
    test, reference, _ = calibration
    ours = reliqa.create_metric(metric)(test, reference)
    theirs = _piq_scores(piq, metric, test, reference)
    assert (ours - theirs).abs().max() <= PIQ_TOLERANCE, (metric, ours.tolist(), theirs.tolist())


@pytest.mark.shared
def test_vsi_official_values_gap_is_the_documented_one(calibration) -> None:
    """Neither our VSI.m reading nor piq reproduces the ``vsi`` row of official_values.csv
    (docs/metrics.md): both are within 0.013 of it, the largest gap on I04. If this fails
    because the gap closed, update the docs and move vsi to the calibrated metrics."""
    test, reference, official = calibration
    for name in ("vsi", "vsi_piq"):
        scores = reliqa.create_metric(name)(test, reference)
        gaps = (scores - torch.tensor(official["vsi"])).abs()
        assert 0.01 < float(gaps.max()) < 0.013, (name, scores.tolist())
        assert int(gaps.argmax()) == TID2013_PAIRS.index("I04")


def test_imresize_matlab_matches_piq_imresize(piq) -> None:
    """piq's imresize reproduces MATLAB's (bicubic, antialiased when shrinking)."""
    image = torch.rand(2, 1, 61, 90) * 255
    shrunk = imresize_matlab(image, scale=0.25)
    assert shrunk.shape[-2:] == (16, 23)
    assert torch.allclose(shrunk, piq.imresize(image, scale=0.25), atol=1e-3)
    grown = imresize_matlab(shrunk, size=(61, 90))
    assert torch.allclose(grown, piq.imresize(shrunk, sizes=(61, 90)), atol=1e-3)


# ---------------------------------------------------------------- properties (no piq needed)


@pytest.mark.parametrize(("shape", "options"), [
    ((2, 3, 384, 512), {"size": (256, 256), "kernel": "linear"}),  # VSI's SDSP, shrinking
    ((2, 1, 256, 256), {"size": (384, 512), "kernel": "linear"}),  # and back
    ((2, 1, 192, 256), {"scale": 0.25}),  # SR-SIM, bicubic
    ((1, 1, 48, 64), {"size": (192, 256)}),
    ((1, 2, 61, 90), {"scale": 0.25}),  # 61 x 0.25 not whole: the exact path throughout
])
def test_imresize_matlab_fast_path_equals_the_exact_contributions(shape, options) -> None:
    """F.interpolate inside + MATLAB's mirrored windows at the border = MATLAB's weights everywhere."""
    from reliqa.metrics.filters import _resize_axis

    image = torch.rand(shape, generator=torch.Generator().manual_seed(3))
    fast = imresize_matlab(image, **options)
    rows, cols = fast.shape[-2:]
    kernel = options.get("kernel", "cubic")
    if "scale" in options:
        scales = (options["scale"], options["scale"])
    else:
        scales = (rows / shape[-2], cols / shape[-1])
    exact = _resize_axis(_resize_axis(image, -2, rows, scales[0], kernel, True), -1, cols, scales[1], kernel, True)
    assert torch.allclose(fast, exact, atol=2e-5)


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    """(1, 3, 192, 256) crop of the astronaut (F = 1)."""
    from skimage import data

    return load_image(data.astronaut())[..., 40:232, 100:356].contiguous()


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_identical_images_give_the_best_value(metric: str, crop: torch.Tensor) -> None:
    module = reliqa.create_metric(metric)
    batch = torch.cat([crop, crop.flip(-1)])
    scores = module(batch, batch)
    best = 1.0 if module.info.higher_is_better else 0.0
    assert torch.allclose(scores, torch.full_like(scores, best), atol=1e-5), scores


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    from kornia.filters import gaussian_blur2d

    size = 2 * int(3 * sigma) + 1
    return gaussian_blur2d(image, (size, size), (sigma, sigma), border_type="reflect")


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_monotone_in_blur_and_noise(metric: str, crop: torch.Tensor) -> None:
    module = reliqa.create_metric(metric)
    sign = 1.0 if module.info.higher_is_better else -1.0
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(crop.shape, generator=generator)
    for levels in (
        [_gaussian_blur(crop, sigma) for sigma in (0.6, 1.2, 2.4, 4.8)],
        [(crop + level * noise).clamp(0, 1) for level in (0.02, 0.05, 0.1, 0.2)],
    ):
        scores = sign * module(torch.cat(levels), crop.expand(len(levels), -1, -1, -1))
        assert torch.all(scores[1:] < scores[:-1]), (metric, scores.tolist())


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_gradient_flows_to_the_test_image(metric: str, crop: torch.Tensor) -> None:
    module = reliqa.create_metric(metric)
    assert module.info.differentiable
    generator = torch.Generator().manual_seed(0)
    test = (crop + 0.05 * torch.randn(crop.shape, generator=generator)).clamp(0, 1).requires_grad_()
    module(test, crop).sum().backward()
    assert test.grad is not None
    assert torch.isfinite(test.grad).all()
    assert test.grad.abs().sum() > 0


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_gradients_stay_finite_on_identical_and_flat_images(metric: str, crop: torch.Tensor) -> None:
    """The losses' hard cases: starting from the reference itself, and images without texture
    (zero gradient magnitudes, zero saliency, zero deviations)."""
    module = reliqa.create_metric(metric)
    flat = torch.full((1, 3, 64, 64), 0.5)
    photo = crop[..., :64, :64]
    for test, reference in ((photo, photo), (flat, flat), (0.9 * flat, flat), (flat, photo), (photo, flat)):
        test = test.clone().requires_grad_()
        score = module(test, reference)
        score.sum().backward()
        assert torch.isfinite(score).all(), (metric, score)
        assert test.grad is not None and torch.isfinite(test.grad).all(), metric


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_batch_equals_one_by_one(metric: str, photo_pairs) -> None:
    tests, references = photo_pairs
    test, reference = tests[2], references[2]
    module = reliqa.create_metric(metric)
    together = module(test, reference)
    alone = torch.cat([module(test[i:i + 1], reference[i:i + 1]) for i in range(len(test))])
    assert torch.allclose(together, alone, atol=1e-5)


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_data_range_255(metric: str, crop: torch.Tensor) -> None:
    test = _gaussian_blur(crop, 1.5)
    assert torch.allclose(reliqa.create_metric(metric, data_range=255)(255 * test, 255 * crop),
                          reliqa.create_metric(metric)(test, crop), atol=1e-4)


@pytest.mark.parametrize("metric", NEW_METRICS)
def test_registry_metadata_and_input_checks(metric: str) -> None:
    info = next(entry for entry in reliqa.list_metrics() if entry.name == metric)
    assert info.kind == "FR"
    assert info.higher_is_better == (metric != "mdsi")
    assert info.differentiable
    minimum = info.extra["min_size"]
    module = reliqa.create_metric(metric)
    small = torch.rand(1, 3, minimum - 1, minimum - 1) if minimum > 1 else None
    if small is not None:
        with pytest.raises(InvalidInputError, match="at least"):
            module(small, small)
    image = torch.rand(1, 3, max(minimum, 8), max(minimum, 8))
    with pytest.raises(InvalidInputError, match="divide by 255"):
        module(255 * image, image)
    with pytest.raises(InvalidInputError, match="reference"):
        module(image)
    with pytest.raises(InvalidInputError, match="shape"):
        module(image[:, :1], image[:, :1])


def test_functional_core_reductions_and_luminance_input(crop: torch.Tensor) -> None:
    test = _gaussian_blur(crop, 1.0)
    pair = torch.cat([test, crop.flip(-1)]), torch.cat([crop, crop])
    for function in (haarpsi, mdsi, vsi, srsim, dss):
        scores = function(*pair)
        assert scores.shape == (2,)
        assert torch.allclose(function(*pair, reduction="mean"), scores.mean())
    # The kernels of HaarPSI, SR-SIM and DSS also take one luminance channel (the reference
    # code's grey input); the catalogue names (reliqa.metrics.haarpsi, …) take RGB.
    for function in (haarpsi_kernel, srsim_kernel, dss_kernel):
        assert function(test[:, :1], crop[:, :1]).shape == (1,)
    with pytest.raises(InvalidInputError, match="variant"):
        vsi(test, crop, variant="octave")  # type: ignore[arg-type]
