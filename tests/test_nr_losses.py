"""The no-reference training objectives on toy inputs: zero (or low) when the ordering is right,
high when it is wrong, and gradients that push the right way."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.training.nr_losses import (
    embedding_consistency_loss,
    group_mask,
    level_anchor_loss,
    ordered_pairs,
    pair_of_pairs_loss,
    ranking_loss,
    text_alignment_loss,
)

LEVELS = torch.tensor([0.0, 0.2, 0.5, 0.9])
ONE_GROUP = torch.zeros(4, dtype=torch.long)


def test_group_mask_and_ordered_pairs() -> None:
    groups = torch.tensor([0, 0, 1, 1])
    levels = torch.tensor([0.1, 0.5, 0.3, 0.2])
    better, worse = ordered_pairs(levels, group_mask(groups), 0.0)
    assert sorted(zip(better.tolist(), worse.tolist())) == [(0, 1), (3, 2)]


def test_ranking_zero_when_ordered_with_margin_and_positive_when_reversed() -> None:
    mask = group_mask(ONE_GROUP)
    right = 1.0 - LEVELS  # score gaps equal level gaps ≥ 0.5 · level gaps
    assert ranking_loss(right, LEVELS, mask, margin=0.5).item() == 0.0
    wrong = LEVELS.clone()
    # every pair is violated by margin·Δl + Δl = 1.5·Δl; the mean of Δl over the 6 pairs is 0.5
    assert ranking_loss(wrong, LEVELS, mask, margin=0.5).item() == pytest.approx(
        1.5 * 0.5, abs=1e-6
    )


def test_ranking_gradient_raises_the_less_distorted_score() -> None:
    scores = torch.tensor([0.5, 0.5], requires_grad=True)
    levels = torch.tensor([0.1, 0.8])
    ranking_loss(scores, levels, group_mask(torch.zeros(2, dtype=torch.long))).backward()
    assert scores.grad[0] < 0 < scores.grad[1]  # descent raises s_0, lowers s_1


def test_ranking_respects_the_pair_mask_and_min_gap() -> None:
    scores = LEVELS.clone()  # all wrong
    separate = group_mask(torch.arange(4))  # every sample its own content: no pair
    assert ranking_loss(scores, LEVELS, separate).item() == 0.0
    assert ranking_loss(scores, LEVELS, group_mask(ONE_GROUP), min_gap=1.0).item() == 0.0


def test_pair_of_pairs_zero_for_linear_scores_and_positive_for_compressed_gaps() -> None:
    assert pair_of_pairs_loss(1.0 - LEVELS, ONE_GROUP, LEVELS, margin=0.5).item() == 0.0
    # right first-order order, but the widest span (0 → 0.9) gets a tiny gap
    compressed = torch.tensor([0.52, 0.51, 0.505, 0.50])
    assert pair_of_pairs_loss(compressed, ONE_GROUP, LEVELS, margin=0.5).item() > 0.05


def test_pair_of_pairs_gradient_widens_the_wide_gap() -> None:
    levels = torch.tensor([0.0, 0.1, 0.9])
    scores = torch.tensor([0.6, 0.5, 0.55], requires_grad=True)  # gap(0,2)=0.05 < gap(0,1)=0.1
    pair_of_pairs_loss(scores, torch.zeros(3, dtype=torch.long), levels).backward()
    assert scores.grad[2] > 0  # descent lowers the most distorted score, widening gap(0, 2)


def test_pair_of_pairs_ignores_pairs_across_groups() -> None:
    groups = torch.tensor([0, 0, 1, 1])
    levels = torch.tensor([0.0, 0.9, 0.0, 0.1])
    scores = torch.tensor([0.5, 0.49, 0.9, 0.1])  # only comparable across groups
    assert pair_of_pairs_loss(scores, groups, levels).item() == 0.0


def _curve(levels: torch.Tensor) -> torch.Tensor:
    """Unit embeddings whose pairwise distance grows with the level difference."""
    angle = levels * math.pi / 2
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)


def test_embedding_consistency_zero_when_distances_follow_levels() -> None:
    mask = group_mask(ONE_GROUP)
    none = torch.zeros(4, 4, dtype=torch.bool)
    loss = embedding_consistency_loss(_curve(LEVELS), LEVELS, mask, none, margin=0.5)
    assert loss.item() == 0.0


def test_embedding_consistency_positive_when_distances_are_reversed() -> None:
    mask = group_mask(ONE_GROUP)
    none = torch.zeros(4, 4, dtype=torch.bool)
    scrambled = _curve(torch.tensor([0.0, 0.9, 0.5, 0.2]))  # level 0.2 sits farthest from 0
    assert embedding_consistency_loss(scrambled, LEVELS, mask, none).item() > 0.1


def test_embedding_same_level_term_pulls_pairs_together() -> None:
    embeddings = torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True)
    levels = torch.tensor([0.0, 0.0])
    none = torch.zeros(2, 2, dtype=torch.bool)
    both = torch.ones(2, 2, dtype=torch.bool)
    loss = embedding_consistency_loss(embeddings, levels, none, both)
    assert loss.item() == pytest.approx(2.0, abs=1e-5)  # |e0 - e1|² of orthogonal unit vectors
    loss.backward()
    stepped = F.normalize(embeddings.detach() - 0.1 * embeddings.grad, dim=1)
    assert (stepped[0] - stepped[1]).norm() < (embeddings[0] - embeddings[1]).detach().norm()
    identical = embedding_consistency_loss(torch.ones(2, 3), levels, none, both)
    assert identical.item() == pytest.approx(0.0, abs=1e-6)


def test_text_alignment_low_for_matching_prompts_and_high_for_wrong_ones() -> None:
    prompts = F.normalize(torch.randn(5, 384), dim=1)
    targets = torch.tensor([0, 3, 4])
    right = text_alignment_loss(prompts[targets] * 2.0, prompts, targets)
    wrong = text_alignment_loss(prompts[torch.tensor([1, 2, 0])], prompts, targets)
    assert right.item() < 0.05
    assert wrong.item() > 5.0


def test_text_alignment_gradient_moves_towards_the_target_prompt() -> None:
    prompts = F.normalize(torch.randn(4, 16), dim=1)
    projected = torch.randn(1, 16, requires_grad=True)
    target = torch.tensor([2])
    text_alignment_loss(projected, prompts, target).backward()
    before = F.cosine_similarity(projected.detach(), prompts[2:3]).item()
    after = F.cosine_similarity(projected.detach() - 0.5 * projected.grad, prompts[2:3]).item()
    assert after > before


def test_text_alignment_soft_targets_equal_hard_ones_when_one_hot() -> None:
    prompts = F.normalize(torch.randn(3, 8), dim=1)
    projected = torch.randn(2, 8)
    hard = torch.tensor([1, 2])
    soft = F.one_hot(hard, 3).float()
    assert text_alignment_loss(projected, prompts, soft).item() == pytest.approx(
        text_alignment_loss(projected, prompts, hard).item(), rel=1e-6
    )


def test_level_anchor_is_lowest_at_one_minus_level() -> None:
    levels = torch.tensor([0.0, 0.5, 1.0])
    right = level_anchor_loss(1.0 - levels, levels)
    wrong = level_anchor_loss(levels, levels)
    assert right.item() < 0.25
    assert wrong.item() > 5.0
    scores = torch.tensor([0.4], requires_grad=True)
    level_anchor_loss(scores, torch.tensor([0.0])).backward()
    assert scores.grad[0] < 0  # a pristine image is pushed up


def test_losses_validate_their_inputs() -> None:
    with pytest.raises(ShapeMismatchError):
        ranking_loss(torch.zeros(3), torch.zeros(4), torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(InvalidInputError, match="pair_mask"):
        ranking_loss(torch.zeros(3), torch.zeros(3), torch.ones(3, 3))
    with pytest.raises(ShapeMismatchError, match="prompt_embeddings"):
        text_alignment_loss(torch.zeros(2, 8), torch.zeros(3, 4), torch.tensor([0, 1]))


def test_distillation_loss_is_zero_for_a_perfect_student_and_orders_pairs() -> None:
    from reliqa.training.nr_losses import distillation_loss

    teacher = torch.tensor([0.9, 0.6, 0.3, 0.1])
    perfect = distillation_loss(teacher.clone(), teacher, margin=0.5)
    assert float(perfect["match"]) == 0.0 and float(perfect["rank"]) == 0.0
    # right values but one pair swapped: the rank term sees it, the match term too
    swapped = distillation_loss(torch.tensor([0.6, 0.9, 0.3, 0.1]), teacher, margin=0.5)
    assert float(swapped["rank"]) > 0 and float(swapped["match"]) > 0
    # a constant student is ranked wrong on every pair with a gap
    flat = distillation_loss(torch.full((4,), 0.5), teacher, margin=1.0)
    assert float(flat["rank"]) > float(swapped["rank"])
    # gaps at or below min_gap are ignored
    close = distillation_loss(torch.tensor([0.50, 0.52]), torch.tensor([0.51, 0.50]), min_gap=0.02)
    assert float(close["rank"]) == 0.0


def test_distillation_gradient_moves_the_student_towards_the_teacher_order() -> None:
    from reliqa.training.nr_losses import distillation_loss

    student = torch.tensor([0.2, 0.8], requires_grad=True)
    teacher = torch.tensor([0.9, 0.1])
    distillation_loss(student, teacher)["total"].backward()
    assert student.grad is not None
    assert student.grad[0] < 0 < student.grad[1]  # descent raises sample 0, lowers sample 1
    assert teacher.grad is None


def test_distillation_loss_refuses_mismatched_lengths() -> None:
    from reliqa.exceptions import ShapeMismatchError
    from reliqa.training.nr_losses import distillation_loss

    with pytest.raises(ShapeMismatchError):
        distillation_loss(torch.rand(3), torch.rand(4))
