"""The relational model's losses on toy inputs: they reward exactly what they should."""

from __future__ import annotations

import pytest
import torch

from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.training.relational_losses import listwise_infonce_loss, weighted_map_mse


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
    assert listwise_infonce_loss(good).item() < 1e-7  # e^(−1/0.05) ≈ 2e-9 per negative
    reversed_order = good.flip(1)
    assert listwise_infonce_loss(reversed_order).item() > 10.0


def test_losses_decrease_when_the_ranking_is_corrected() -> None:
    wrong = torch.tensor([[0.0, -1.0, -0.2, -3.0]])  # versions 1 and 2 in the wrong order
    fixed = torch.tensor([[0.0, -1.0, -2.0, -3.0]])
    assert listwise_infonce_loss(fixed).item() < listwise_infonce_loss(wrong).item()


def test_gradient_pushes_better_versions_up_and_worse_down() -> None:
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0]], requires_grad=True)  # all tied
    listwise_infonce_loss(scores).backward()
    grad = scores.grad[0]
    # gradient descent moves scores by −grad: the best rises, the worst falls
    assert grad[0] < 0 < grad[-1]
    assert grad[1] < grad[2] < grad[3]


@pytest.mark.parametrize("shape", [(4,), (3, 1)])
def test_ranking_losses_need_sets_of_two_or_more(shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidInputError):
        listwise_infonce_loss(torch.zeros(shape))
