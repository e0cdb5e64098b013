"""Training objectives (shared module; each model keeps its losses in its own marked section).

No loss here ever sees a human label: targets are the engine's truth maps and the order of
its ordinal sets. docs/relational.md argues the relational formulations.
"""

from __future__ import annotations

import torch

from reliqa.attributes import ACTIVE_THRESHOLD, NEUTRAL
from reliqa.exceptions import InvalidInputError, ShapeMismatchError

# ============================================================================================
# Relational full-reference model: map regression and ranking of relational scores
# ============================================================================================

MAP_WEIGHT_HIGH: float = 10.0
"""Weight of truth pixels that show a difference (|t − 0.5| > β)."""

CONTRAST_TEMPERATURE: float = 0.05
"""τ of the listwise (Plackett–Luce) ranking term, in relational-score units."""


def weighted_map_mse(
    prediction: torch.Tensor,
    truth: torch.Tensor,
    *,
    beta: float = ACTIVE_THRESHOLD,
    weight_high: float = MAP_WEIGHT_HIGH,
) -> torch.Tensor:
    """Weighted mean squared error between predicted and true distortion maps.

    Each pixel and channel is weighted by ``weight_high`` where the truth shows a difference
    (``|t − 0.5| > beta``) and 1 elsewhere; the weighted squared errors are averaged over all
    elements (not divided by the weight sum, so a sample with more distorted area counts more).
    Most truth pixels are exactly 0.5, so without the weight the network would learn to answer
    0.5 everywhere.

    Args:
        prediction: (N, 9, H, W) in [0, 1].
        truth: (N, 9, H, W) in [0, 1].
        beta: the neutral band around 0.5.
        weight_high: weight inside the active region.

    Returns:
        Scalar loss.

    Raises:
        ShapeMismatchError: the shapes differ.
    """
    if prediction.shape != truth.shape:
        raise ShapeMismatchError(
            f"prediction {tuple(prediction.shape)} and truth {tuple(truth.shape)} differ in shape"
        )
    weight = torch.where((truth - NEUTRAL).abs() > beta, weight_high, 1.0)
    return (weight * (prediction - truth).square()).mean()


def _check_ordered_scores(scores: torch.Tensor) -> None:
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise InvalidInputError(
            f"scores must be (S, L) with L ≥ 2 versions ordered best first, got {tuple(scores.shape)}"
        )


def listwise_infonce_loss(
    scores: torch.Tensor, temperature: float = CONTRAST_TEMPERATURE
) -> torch.Tensor:
    """InfoNCE over the tail of each ordered set (the Plackett–Luce form).

    At each rank k the better version k is the positive and all worse versions k+1 … L−1 of the
    same set are the negatives: ``−log( exp(s_k/τ) / Σ_{j ≥ k} exp(s_j/τ) )``, averaged over
    sets and over k = 0 … L−2 (the last rank has no negative). Unlike the neighbour hinge, a
    version is pushed below every better one, not only its neighbour, and the push fades
    smoothly as the gaps grow.

    Args:
        scores: (S, L) relational scores, column order = best to worst.
        temperature: τ.

    Returns:
        Scalar ≥ 0; about ``Σ_j exp(−gap_j / τ)`` when every gap is large.
    """
    _check_ordered_scores(scores)
    logits = scores / temperature
    # log Σ_{j ≥ k} exp(logits_j) for every k: a reversed cumulative logsumexp.
    tail = torch.logcumsumexp(logits.flip(1), dim=1).flip(1)
    return (tail - logits)[:, :-1].mean()


def pairwise_logistic_loss(
    scores: torch.Tensor,
    targets: torch.Tensor,
    *,
    min_gap: float = 0.05,
    temperature: float = 0.05,
) -> torch.Tensor:
    """RankNet loss over every pair of items whose targets differ by more than ``min_gap``.

    For each such pair (i, j) with ``targets_i > targets_j``: ``log(1 + exp(−(s_i − s_j) / τ))``,
    averaged over the pairs. Pairs closer than ``min_gap`` are left unordered: a teacher's
    small differences are within its own noise, and forcing an order there would teach it.

    Args:
        scores: (N,) predictions (higher = better).
        targets: (N,) pseudo-labels on any scale (higher = better).
        min_gap: smallest target difference that is ranked.
        temperature: τ, in score units.

    Returns:
        Scalar ≥ 0 (0 when no pair qualifies).

    Raises:
        ShapeMismatchError: scores and targets differ in shape or are not 1-D.
    """
    if scores.ndim != 1 or scores.shape != targets.shape:
        raise ShapeMismatchError(
            f"scores {tuple(scores.shape)} and targets {tuple(targets.shape)} must be equal (N,)"
        )
    ordered = (targets[:, None] - targets[None, :]) > min_gap
    if not bool(ordered.any()):
        return scores.sum() * 0.0
    margins = (scores[:, None] - scores[None, :])[ordered] / temperature
    return torch.nn.functional.softplus(-margins).mean()
