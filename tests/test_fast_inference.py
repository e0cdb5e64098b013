"""The fast inference paths give the numbers of the reference computations: batch norms folded
into their convolutions (``reliqa.models.fold``), the strided EfficientNet blocks padding their
narrow input, the relational model's fuse layer as one strided convolution, the deep distances
and pooled statistics on channels-last maps, ``hirqa-s``'s input normalisation folded into its
patchify stem, and the percentiles of the ``hirqa`` statistics by
histogram-guided selection."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from reliqa.models import create_model
from reliqa.models import nr_statistics as statistics_module
from reliqa.models.efficientnet_lite import EfficientNetLite0, MBConvBlock
from reliqa.models.fold import ConvBN, conv_bn, fold_batch_norm
from reliqa.models.hirqa import NormalisingPatchStem, PretrainedHiRQA, fit_to_max_side
from reliqa.models.nr_statistics import _order_statistics, image_statistics
from reliqa.models.relational import RelationalModel
from reliqa.models.relational_features import deep_feature_distances
from reliqa.models.relational_maps import FOLD, PairNetwork

TOLERANCE = 1e-5
"""Largest score difference allowed between a fast path and its reference."""


def _random_conv_bn(groups: int, bias: bool, stride: int) -> ConvBN:
    generator = torch.Generator().manual_seed(3)
    conv = nn.Conv2d(8, 12 if groups == 1 else 8, 3, stride, 1, groups=groups, bias=bias)
    bn = nn.BatchNorm2d(conv.out_channels, eps=1e-3)
    with torch.no_grad():
        for tensor in (*conv.parameters(), bn.weight, bn.bias, bn.running_mean):
            tensor.copy_(torch.randn(tensor.shape, generator=generator))
        bn.running_var.copy_(torch.rand(bn.running_var.shape, generator=generator) + 0.1)
    return ConvBN(conv, bn).eval()


def _reference(layer: ConvBN, x: torch.Tensor) -> torch.Tensor:
    """The two layers as written (autograd on takes the unfolded path)."""
    with torch.enable_grad():
        return layer[1](layer[0](x)).detach()


@pytest.mark.parametrize(("groups", "bias", "stride"), [(1, False, 1), (1, True, 2), (8, False, 2)])
def test_a_folded_convolution_equals_convolution_then_batch_norm(
    groups: int, bias: bool, stride: int
) -> None:
    layer = _random_conv_bn(groups, bias, stride)
    x = torch.randn(2, 8, 17, 20)
    with torch.inference_mode():
        fast = layer(x)
    torch.testing.assert_close(fast, _reference(layer, x), rtol=1e-5, atol=1e-5)
    weight, folded_bias = fold_batch_norm(layer[0].weight, layer[0].bias, layer[1])
    assert weight.shape == layer[0].weight.shape and folded_bias.shape == (layer[1].num_features,)


def test_the_folded_weights_follow_changed_statistics_and_loaded_weights() -> None:
    layer = _random_conv_bn(1, False, 1)
    x = torch.randn(1, 8, 9, 9)
    with torch.no_grad():
        before = layer(x)
        layer[1].running_var.mul_(4.0)  # in place: same storage, new version
        after = layer(x)
    assert not torch.allclose(before, after)
    torch.testing.assert_close(after, _reference(layer, x), rtol=1e-5, atol=1e-5)
    other = _random_conv_bn(1, True, 1)
    other[1].running_mean.add_(1.0)
    layer[0].bias = nn.Parameter(torch.zeros(12))  # a bias to load into
    layer.load_state_dict(other.state_dict())
    with torch.no_grad():
        loaded = layer(x)
    torch.testing.assert_close(loaded, _reference(other, x), rtol=1e-5, atol=1e-5)


def test_a_model_built_in_inference_mode_sees_its_loaded_weights() -> None:
    with torch.inference_mode():
        layer = _random_conv_bn(1, False, 1)
        x = torch.randn(1, 8, 9, 9)
        first = layer(x)
        layer[1].running_mean.copy_(layer[1].running_mean + 2.0)  # not versioned
        second = layer(x)
        expected = layer[1](layer[0](x))  # BatchNorm2d's own computation, inference mode
    assert not torch.allclose(first, second)
    torch.testing.assert_close(second, expected, rtol=1e-5, atol=1e-5)


def test_training_keeps_the_unfolded_layers() -> None:
    layer = _random_conv_bn(1, False, 1).train()
    x = torch.randn(4, 8, 9, 9, requires_grad=True)
    running = layer[1].running_mean.clone()
    y = layer(x)
    y.square().mean().backward()
    assert x.grad is not None and not torch.equal(layer[1].running_mean, running)
    # in eval mode with autograd on, the output is BatchNorm2d's own (its backward node)
    layer.eval()
    assert "BatchNorm" in type(conv_bn(layer[0], layer[1], x).grad_fn).__name__


def test_the_patch_stem_folds_the_input_normalisation_exactly() -> None:
    generator = torch.Generator().manual_seed(5)
    conv = nn.Conv2d(3, 16, 4, 4, bias=False)
    bn = nn.BatchNorm2d(16)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=generator))
        bn.running_mean.copy_(torch.randn(16, generator=generator))
        bn.running_var.copy_(torch.rand(16, generator=generator) + 0.1)
    stem = NormalisingPatchStem(conv, bn).eval()
    image = torch.rand(2, 3, 64, 48, generator=generator)
    with torch.inference_mode():
        fast = stem(image)
    with torch.enable_grad():
        reference = bn(conv((image - 0.45) / 0.25)).detach()
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
    # the folded weight's layout makes the output channels-last without a copy of the image
    assert fast.is_contiguous(memory_format=torch.channels_last)
    assert not torch.allclose(fast, bn(conv(image)).detach(), atol=1e-2)  # it does normalise


def _hirqa_reference(model: PretrainedHiRQA, image: torch.Tensor) -> torch.Tensor:
    """``hirqa``'s score without the fast paths: backbone with its batch norms as written
    (autograd on), per-map mean and std by ``torch.std_mean``, percentiles by ``torch.quantile``."""
    image = fit_to_max_side(image, model.max_side)
    with torch.enable_grad():
        maps = model.backbone.stage_features(image)
    pooled = torch.cat([
        statistic.detach()
        for feature in maps
        for statistic in reversed(torch.std_mean(feature.flatten(2), dim=2, correction=0))
    ], dim=1)
    original = statistics_module._quantiles
    statistics_module._quantiles = lambda values, levels: torch.quantile(  # type: ignore[assignment]
        values, torch.tensor(levels), dim=1
    ).T
    try:
        classical = image_statistics(image)
    finally:
        statistics_module._quantiles = original  # type: ignore[assignment]
    with torch.no_grad():
        return torch.sigmoid(model.score_logits(model.embed_features(torch.cat([pooled, classical], 1))))


def test_hirqa_fast_scores_equal_the_reference_on_photos(photos: list[torch.Tensor]) -> None:
    model = create_model("hirqa")
    assert isinstance(model, PretrainedHiRQA)
    for photo in photos:
        fast = model.score(photo)
        assert (fast - _hirqa_reference(model, photo)).abs().max() <= TOLERANCE


def test_hirqa_s_fast_scores_equal_the_reference_on_photos(photos: list[torch.Tensor]) -> None:
    model = create_model("hirqa-s")
    for photo in photos:
        fast = model.score(photo)  # type: ignore[operator]
        with torch.enable_grad():
            reference = model(fit_to_max_side(photo)).detach()
        assert (fast - reference).abs().max() <= TOLERANCE


def test_order_statistics_are_exact(astronaut: torch.Tensor) -> None:
    gray = astronaut.mean(dim=1)
    gradients = (gray[..., 1:, :-1] - gray[..., :-1, :-1]).hypot(gray[..., :-1, 1:] - gray[..., :-1, :-1])
    generator = torch.Generator().manual_seed(0)
    rows = [
        gradients.flatten() * 255.0,
        torch.randint(0, 7, (5001,), generator=generator).float(),  # many ties
        torch.randn(999, generator=generator) ** 5,  # heavy tails, both signs
        torch.full((10,), 0.25),
    ]
    for row in rows:
        ranks = sorted({0, row.numel() // 2, (9 * row.numel()) // 10, row.numel() - 1})
        expected = row.sort().values[ranks]
        assert torch.equal(torch.stack(_order_statistics(row, ranks)), expected)


def _folded(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """The fuse layer's input by definition: both images centred and folded FOLD × FOLD."""
    return torch.cat(
        [F.pixel_unshuffle(first - 0.5, FOLD), F.pixel_unshuffle(second - 0.5, FOLD)], dim=1
    )


def test_the_fuse_layer_equals_folding_both_images_in_both_orders() -> None:
    network = PairNetwork()
    nn.init.normal_(network.fuse.weight)
    nn.init.normal_(network.fuse.bias)
    test, reference = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
    with torch.no_grad():
        fused = network.fused_inputs(test, reference)
        torch.testing.assert_close(
            fused[:2], network.fuse(_folded(test, reference)), rtol=1e-5, atol=1e-5
        )
        torch.testing.assert_close(
            fused[2:], network.fuse(_folded(reference, test)), rtol=1e-5, atol=1e-5
        )


def test_both_orders_in_one_pass_equal_the_network_by_definition(
    perturbed: Callable[..., torch.nn.Module],
) -> None:
    network = perturbed(PairNetwork(), seed=4)
    with torch.no_grad():
        test, reference = torch.rand(2, 3, 32, 48), torch.rand(2, 3, 32, 48)
        both = network(test, reference)
        for rows, (first, second) in ((both[:2], (test, reference)), (both[2:], (reference, test))):
            expected = network.decode(network.fuse(_folded(first, second)))
            torch.testing.assert_close(rows, expected, rtol=1e-5, atol=1e-5)
        # the two orders add the same terms: an identical pair gives identical rows, bit for bit
        same = network(test, test.clone())
        assert torch.equal(same[:2], same[2:])


def _distances_reference(test: list[torch.Tensor], reference: list[torch.Tensor]) -> torch.Tensor:
    """The DISTS/LPIPS-like distances written directly on (N, C, H, W) maps."""
    rows = []
    for a, b in zip(test, reference):
        unit_a = a / (a.square().sum(1, keepdim=True).sqrt() + 1e-10)
        unit_b = b / (b.square().sum(1, keepdim=True).sqrt() + 1e-10)
        normalised = (unit_a - unit_b).square().sum(1).mean(dim=(1, 2))
        mean_a, mean_b = a.mean(dim=(2, 3)), b.mean(dim=(2, 3))
        var_a, var_b = a.var(dim=(2, 3), unbiased=False), b.var(dim=(2, 3), unbiased=False)
        covariance = ((a - mean_a[..., None, None]) * (b - mean_b[..., None, None])).mean((2, 3))
        texture = 1 - ((2 * mean_a * mean_b + 1e-6) / (mean_a**2 + mean_b**2 + 1e-6)).mean(1)
        structure = 1 - ((2 * covariance + 1e-6) / (var_a + var_b + 1e-6)).mean(1)
        rows.append(torch.stack([normalised, texture, structure], dim=1))
    return torch.stack(rows, dim=1)


@pytest.fixture(scope="module")
def relational_plus() -> RelationalModel:
    model = create_model("relational-plus")
    assert isinstance(model, RelationalModel) and model.deep_features is not None
    return model


def test_relational_plus_fast_scores_equal_the_reference(
    relational_plus: RelationalModel, photos: list[torch.Tensor]
) -> None:
    assert relational_plus.deep_features is not None
    for photo in photos:
        reference = photo[..., :192, :256]
        test = F.avg_pool2d(reference, 3, 1, 1)
        with torch.inference_mode():
            fast = relational_plus(test, reference).score
            test_maps = relational_plus.deep_features(test)
            reference_maps = relational_plus.deep_features(reference)
        with torch.enable_grad():  # the batch norms as written
            unfolded = relational_plus(test, reference).score.detach()
        assert (fast - unfolded).abs().max() <= TOLERANCE
        distances = deep_feature_distances(test_maps, reference_maps)
        expected = _distances_reference(
            [m.contiguous() for m in test_maps], [m.contiguous() for m in reference_maps]
        )
        torch.testing.assert_close(distances, expected, rtol=1e-4, atol=1e-5)


def test_relational_plus_keeps_the_neutral_point_and_anti_symmetry(
    relational_plus: RelationalModel, astronaut: torch.Tensor
) -> None:
    reference = astronaut[..., :128, :160]
    test = (reference + 0.05 * torch.randn(reference.shape)).clamp(0, 1)
    with torch.inference_mode():
        same = relational_plus(reference, reference)
        forward, backward = relational_plus(test, reference), relational_plus(reference, test)
    assert same.score.item() == 0.0 and torch.all(same.maps == 0.5)
    assert (forward.maps + backward.maps - 1).abs().max() <= 1e-6
    assert forward.score.item() < 0.0


@pytest.mark.parametrize(("kernel", "size"), [(3, (32, 48)), (5, (33, 47)), (5, (16, 17))])
def test_a_strided_block_pads_its_input_as_the_expanded_map_would_be(
    kernel: int, size: tuple[int, int]
) -> None:
    block = MBConvBlock(8, 12, kernel, 2, 6).eval()
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, tensor in block.state_dict().items():
            if tensor.is_floating_point():
                fill = torch.rand if "running_var" in name else torch.randn
                tensor.copy_(fill(tensor.shape, generator=generator) + ("running_var" in name))
    x = torch.randn(2, 8, *size, generator=generator)
    with torch.enable_grad():  # the layers as written: "SAME" padding of the expanded map
        expanded = F.relu6(block._bn0(block._expand_conv(x)))
        depthwise = F.relu6(block._bn1(block._depthwise_conv(expanded)))
        expected = block._bn2(block._project_conv(depthwise)).detach()
        unfolded = block(x).detach()
    with torch.inference_mode():
        fast = block(x)
    scale = float(expected.abs().max())  # random weights: activations in the tens
    torch.testing.assert_close(unfolded, expected, rtol=1e-5, atol=1e-6 * scale)
    torch.testing.assert_close(fast, expected, rtol=1e-5, atol=1e-6 * scale)


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_the_backbone_normalisation_is_bit_identical_to_its_formula(
    layout: torch.memory_format,
) -> None:
    """``x·(255/128) − 127/128`` on the channels-last copy equals ``(x·255 − 127) / 128`` to the
    bit (exact constants, a power-of-two divisor), keeps autograd and leaves the input alone."""
    images = torch.rand(2, 3, 37, 53, generator=torch.Generator().manual_seed(5))
    images = images.contiguous(memory_format=layout).requires_grad_(True)
    before = images.detach().clone()
    normalised = EfficientNetLite0.normalise(images)
    assert torch.equal(normalised, (before * 255.0 - 127.0) / 128.0)
    assert normalised.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(images.detach(), before)
    normalised.sum().backward()
    assert images.grad is not None
    assert torch.allclose(images.grad, torch.full_like(before, 255.0 / 128.0))
