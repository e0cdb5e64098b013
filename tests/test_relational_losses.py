"""The relational model's losses on toy inputs: they reward exactly what they should."""

from __future__ import annotations

import math

import pytest
import torch

from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.losses import (
    listwise_infonce_loss,
    neighbour_hinge_loss,
    ordinal_ranking_loss,
    weighted_map_mse,
)


def test_weighted_mse_weights_active_truth_ten_times() -> None:
    truth = torch.full((1, 9, 2, 2), 0.5)
    truth[0, 5, 0, 0] = 0.2  # one active pixel (|t − 0.5| = 0.3 > 0.05)
    truth[0, 6, 0, 0] = 0.53  # inside the neutral band: weight 1
    prediction = truth.clone()
    prediction[0, 5, 0, 0] += 0.1  # error 0.1 on the active pixel
    active = weighted_map_mse(prediction, truth)
    assert active.item() == pytest.approx(10 * 0.01 / truth.numel())
    prediction = truth.clone()
    prediction[0, 6, 0, 0] += 0.1  # the same error on a neutral-band pixel
    assert weighted_map_mse(prediction, truth).item() == pytest.approx(0.01 / truth.numel())


def test_weighted_mse_is_zero_for_perfect_maps_and_refuses_shape_mismatch() -> None:
    truth = torch.rand(2, 9, 5, 7)
    assert weighted_map_mse(truth, truth).item() == 0.0
    with pytest.raises(ShapeMismatchError):
        weighted_map_mse(truth, truth[..., :6])


def test_hinge_is_zero_when_every_neighbour_margin_is_met() -> None:
    scores = torch.tensor([[0.0, -1.0, -2.5, -3.5]])  # gaps 1.0, 1.5, 1.0 ≥ δ = 1
    assert neighbour_hinge_loss(scores).item() == 0.0


def test_hinge_counts_each_violation_by_its_shortfall() -> None:
    scores = torch.tensor([[0.0, -0.5, -2.5, -2.0]])  # shortfalls 0.5, 0, 1.5
    assert neighbour_hinge_loss(scores).item() == pytest.approx((0.5 + 0.0 + 1.5) / 3)


def test_hinge_only_compares_neighbours() -> None:
    # 0 > -1 > -2 with margins met, although 0 vs -2 would also be fine: zero loss; swapping the
    # last two adds loss only through the pairs they take part in.
    ordered = torch.tensor([[0.0, -1.0, -2.0]])
    swapped = torch.tensor([[0.0, -2.0, -1.0]])
    assert neighbour_hinge_loss(ordered).item() == 0.0
    assert neighbour_hinge_loss(swapped).item() == pytest.approx((0.0 + 2.0) / 2)


def test_infonce_matches_the_plackett_luce_formula() -> None:
    scores = torch.tensor([[0.3, 0.1, -0.2]])
    tau = 0.5
    logits = scores[0] / tau
    expected = (
        -(logits[0] - torch.logsumexp(logits, 0)) - (logits[1] - torch.logsumexp(logits[1:], 0))
    ) / 2
    assert listwise_infonce_loss(scores, tau).item() == pytest.approx(expected.item(), rel=1e-6)


def test_infonce_is_near_zero_when_margins_hold_and_large_when_reversed() -> None:
    good = torch.tensor([[0.0, -1.0, -2.0, -3.0, -4.0]])
    assert listwise_infonce_loss(good).item() < 1e-5  # e^(−1/0.07) ≈ 6e-7 per negative
    reversed_order = good.flip(1)
    assert listwise_infonce_loss(reversed_order).item() > 10.0


def test_losses_decrease_when_the_ranking_is_corrected() -> None:
    wrong = torch.tensor([[0.0, -1.0, -0.2, -3.0]])  # versions 1 and 2 in the wrong order
    fixed = torch.tensor([[0.0, -1.0, -2.0, -3.0]])
    for loss in (neighbour_hinge_loss, listwise_infonce_loss, ordinal_ranking_loss):
        assert loss(fixed).item() < loss(wrong).item()


def test_gradient_pushes_better_versions_up_and_worse_down() -> None:
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0]], requires_grad=True)  # all tied
    ordinal_ranking_loss(scores).backward()
    grad = scores.grad[0]
    # gradient descent moves scores by −grad: the best rises, the worst falls
    assert grad[0] < 0 < grad[-1]
    assert grad[1] < grad[2] < grad[3]


def test_combined_loss_uses_the_documented_weights() -> None:
    scores = torch.tensor([[0.0, -0.3, -0.4, 0.1]])
    expected = 1.0 * neighbour_hinge_loss(scores, 1.0) + 0.5 * listwise_infonce_loss(scores, 0.07)
    assert ordinal_ranking_loss(scores).item() == pytest.approx(expected.item())
    assert math.isfinite(ordinal_ranking_loss(scores * 100).item())  # τ = 0.07 stays stable


@pytest.mark.parametrize("shape", [(4,), (3, 1)])
def test_ranking_losses_need_sets_of_two_or_more(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        ordinal_ranking_loss(torch.zeros(shape))
