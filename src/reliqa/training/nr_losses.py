"""Training objectives of the no-reference model HiRQA (no human label anywhere).

Every loss works on a batch of N samples that carry a distortion ``level`` in [0, 1]
(0 = pristine) and, where it matters, a ``pair_mask`` saying which pairs may be compared
(same content for the within-content losses; same distortion type across contents for the
cross-content ranking). docs/nr.md gives the formulas and why each term is there.

Shapes: scores (N,) in [0, 1]; levels (N,); embeddings (N, D); pair masks (N, N) bool.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from reliqa.exceptions import InvalidInputError, ShapeMismatchError


def _check_same_length(**tensors: torch.Tensor) -> int:
    lengths = {name: tensor.shape[0] for name, tensor in tensors.items()}
    if len(set(lengths.values())) != 1:
        raise ShapeMismatchError(f"batch sizes differ: {lengths}")
    return next(iter(lengths.values()))


def _check_mask(mask: torch.Tensor, size: int, name: str) -> None:
    if mask.shape != (size, size) or mask.dtype != torch.bool:
        raise InvalidInputError(
            f"{name} must be a ({size}, {size}) bool tensor, got {tuple(mask.shape)} {mask.dtype}"
        )


def _hinge_mean(
    required: torch.Tensor | float, achieved: torch.Tensor, like: torch.Tensor
) -> torch.Tensor:
    """``mean relu(required − achieved)`` over the pairs of ``achieved``; 0 (in the graph of
    ``like``) when there is no pair."""
    if achieved.numel() == 0:
        return like.sum() * 0.0
    return F.relu(required - achieved).mean()


def group_mask(groups: torch.Tensor) -> torch.Tensor:
    """Pairs that share a group id (e.g. versions of one content): (N,) → (N, N) bool."""
    return groups[:, None] == groups[None, :]


def ordered_pairs(
    levels: torch.Tensor, pair_mask: torch.Tensor, min_gap: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (better, worse) with ``level[worse] - level[better] > min_gap`` inside the mask.

    Returns two (P,) long tensors: the less distorted and the more distorted member of each pair.
    """
    difference = levels[None, :] - levels[:, None]  # [i, j] = l_j - l_i
    better, worse = torch.nonzero(pair_mask & (difference > min_gap), as_tuple=True)
    return better, worse


def ranking_loss(
    scores: torch.Tensor,
    levels: torch.Tensor,
    pair_mask: torch.Tensor,
    margin: float = 0.5,
    min_gap: float = 0.0,
) -> torch.Tensor:
    """First-order ranking: a less distorted sample scores higher, by a margin growing with the gap.

    ``L = mean over pairs (i, j) in the mask with l_j - l_i > min_gap of
    relu(margin * (l_j - l_i) - (s_i - s_j))``. Zero when every score gap exceeds its margin;
    0 when there is no pair.

    Args:
        scores: (N,) predicted scores.
        levels: (N,) distortion levels (higher = more distorted).
        pair_mask: (N, N) bool, True where two samples may be compared.
        margin: margin per unit of level difference.
        min_gap: pairs closer in level than this are ignored.

    Returns:
        Scalar tensor.
    """
    size = _check_same_length(scores=scores, levels=levels)
    _check_mask(pair_mask, size, "pair_mask")
    better, worse = ordered_pairs(levels, pair_mask, min_gap)
    required = margin * (levels[worse] - levels[better])
    return _hinge_mean(required, scores[better] - scores[worse], scores)


def pair_of_pairs_loss(
    scores: torch.Tensor,
    groups: torch.Tensor,
    levels: torch.Tensor,
    margin: float = 0.5,
    min_gap: float = 0.02,
) -> torch.Tensor:
    """Higher-order ranking: within one content, a wider level span gives a wider score gap.

    For pairs P = (a, b) and Q = (c, d) of the same group with l_a < l_b and l_c < l_d, the
    gap is ``G_P = s_a - s_b`` and the span ``D_P = l_b - l_a``. For every P, Q with
    ``D_P - D_Q > min_gap``: ``relu(margin * (D_P - D_Q) - (G_P - G_Q))``, averaged.

    Args:
        scores: (N,) predicted scores.
        groups: (N,) content id of each sample.
        levels: (N,) distortion levels.
        margin: margin per unit of span difference.
        min_gap: pairs of pairs whose spans differ by less are ignored.

    Returns:
        Scalar tensor (0 when there is no such pair of pairs).
    """
    _check_same_length(scores=scores, groups=groups, levels=levels)
    better, worse = ordered_pairs(levels, group_mask(groups), 0.0)
    if better.numel() < 2:
        return scores.sum() * 0.0
    gap = scores[better] - scores[worse]
    span = levels[worse] - levels[better]
    same_group = groups[better][:, None] == groups[better][None, :]
    span_difference = span[:, None] - span[None, :]
    wide, narrow = torch.nonzero(same_group & (span_difference > min_gap), as_tuple=True)
    required = margin * (span[wide] - span[narrow])
    return _hinge_mean(required, gap[wide] - gap[narrow], scores)


def embedding_consistency_loss(
    embeddings: torch.Tensor,
    levels: torch.Tensor,
    triplet_mask: torch.Tensor,
    same_level_mask: torch.Tensor,
    margin: float = 0.5,
    min_gap: float = 0.05,
    same_level_weight: float = 1.0,
) -> torch.Tensor:
    """Embedding distances grow with the level difference and vanish between same-level samples.

    On unit-normalised embeddings, ``d_ij = ||e_i - e_j||``. Triplet term, for an anchor i and
    j, k with (i, j) and (i, k) in ``triplet_mask`` and ``|l_i - l_k| - |l_i - l_j| > min_gap``:
    ``relu(margin * (|l_i - l_k| - |l_i - l_j|) + d_ij - d_ik)``, averaged. Same-level term:
    the mean of ``d_ij²`` over the pairs (i ≠ j) in ``same_level_mask``, weighted by
    ``same_level_weight``.

    Args:
        embeddings: (N, D) quality embeddings.
        levels: (N,) distortion levels.
        triplet_mask: (N, N) bool, pairs whose distances are compared (same content).
        same_level_mask: (N, N) bool, pairs that should coincide (same distortion and level).
        margin: margin per unit of level-difference difference.
        min_gap: triplets with closer level differences are ignored.
        same_level_weight: weight of the same-level term.

    Returns:
        Scalar tensor.
    """
    size = _check_same_length(embeddings=embeddings, levels=levels)
    _check_mask(triplet_mask, size, "triplet_mask")
    _check_mask(same_level_mask, size, "same_level_mask")
    unit = F.normalize(embeddings, dim=1)
    # Explicit form instead of torch.cdist: cdist's gradient is NaN at zero distance.
    squared = (unit[:, None, :] - unit[None, :, :]).pow(2).sum(-1)
    distance = (squared + 1e-8).sqrt()
    level_difference = (levels[:, None] - levels[None, :]).abs()
    # valid[i, j, k]: j and k both comparable with anchor i, and k is farther in level than j.
    valid = (
        triplet_mask[:, :, None]
        & triplet_mask[:, None, :]
        & (level_difference[:, None, :] - level_difference[:, :, None] > min_gap)
    )
    total = embeddings.sum() * 0.0
    if valid.any():
        required = margin * (level_difference[:, None, :] - level_difference[:, :, None])
        violation = F.relu(required + distance[:, :, None] - distance[:, None, :])
        total = total + violation[valid].mean()
    off_diagonal = same_level_mask & ~torch.eye(size, dtype=torch.bool, device=embeddings.device)
    if off_diagonal.any():
        total = total + same_level_weight * squared[off_diagonal].mean()
    return total


def text_alignment_loss(
    projected: torch.Tensor,
    prompt_embeddings: torch.Tensor,
    targets: torch.Tensor,
    temperature: float = 0.07,
) -> torch.Tensor:
    """InfoNCE between image embeddings projected to the text space and the prompt bank.

    ``p = softmax(cos(z_n, t_k) / temperature)`` over the P prompts; the loss is the cross
    entropy with each sample's prompt (``targets`` (N,) long) or a soft target distribution
    (``targets`` (N, P) float, rows summing to 1, for mixed distortions).

    Args:
        projected: (N, 384) image embeddings after the text projection head.
        prompt_embeddings: (P, 384) sentence embeddings of the prompts (fixed, not trained).
        targets: (N,) prompt indices or (N, P) target distributions.
        temperature: softmax temperature.

    Returns:
        Scalar tensor.
    """
    size = _check_same_length(projected=projected, targets=targets)
    if prompt_embeddings.ndim != 2 or prompt_embeddings.shape[1] != projected.shape[1]:
        raise ShapeMismatchError(
            f"prompt_embeddings must be (P, {projected.shape[1]}), "
            f"got {tuple(prompt_embeddings.shape)}"
        )
    if size == 0:
        return projected.sum() * 0.0
    logits = F.normalize(projected, dim=1) @ F.normalize(prompt_embeddings, dim=1).T / temperature
    if targets.ndim == 1:
        return F.cross_entropy(logits, targets)
    return -(targets * F.log_softmax(logits, dim=1)).sum(1).mean()


def level_anchor_loss(scores: torch.Tensor, levels: torch.Tensor) -> torch.Tensor:
    """Cross-content anchor: binary cross entropy of the score against ``1 - level``.

    Pins pristine images near 1 and strongly distorted ones near 0 whatever their content,
    which within-content ranking alone cannot do. Inputs (N,); returns a scalar.
    """
    _check_same_length(scores=scores, levels=levels)
    target = (1.0 - levels).clamp(0.0, 1.0)
    return F.binary_cross_entropy(scores.clamp(1e-6, 1 - 1e-6), target)


def distillation_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    *,
    weight_match: float = 1.0,
    weight_rank: float = 1.0,
    margin: float = 1.0,
    min_gap: float = 0.02,
) -> dict[str, torch.Tensor]:
    """Teach a student the teacher's scores: value match plus the teacher's pairwise order.

    ``match = mean (s_i − t_i)²`` pins the student's scale to the teacher's (scores stay
    comparable across images); ``rank`` is :func:`ranking_loss` over ALL pairs of the batch
    (any contents, any distortion) with the teacher's ``1 − t`` as the level, i.e.
    ``mean relu(margin · (t_i − t_j) − (s_i − s_j))`` over pairs with ``t_i − t_j > min_gap``:
    the order the teacher gives across contents, which the synthetic labels alone cannot give.

    Args:
        student: (N,) student scores in [0, 1].
        teacher: (N,) teacher scores in [0, 1] (no gradient is taken through them).
        weight_match, weight_rank: weights of the two terms in ``total``.
        margin: margin per unit of teacher score gap.
        min_gap: teacher gaps at or below this are ignored by the ranking term.

    Returns:
        ``{"match": …, "rank": …, "total": …}`` scalar tensors.
    """
    size = _check_same_length(student=student, teacher=teacher)
    target = teacher.detach().to(student.dtype)
    everything = torch.ones(size, size, dtype=torch.bool, device=student.device)
    match = F.mse_loss(student, target) if size else student.sum() * 0.0
    rank = ranking_loss(student, 1.0 - target, everything, margin, min_gap=min_gap)
    return {"match": match, "rank": rank, "total": weight_match * match + weight_rank * rank}


def clean_margin_loss(
    scores: torch.Tensor, groups: torch.Tensor, clean: torch.Tensor, margin: float
) -> torch.Tensor:
    """Damage never helps: within each group, every damaged version scores at least ``margin``
    below the group's clean version, however mild the damage.

    ``L = mean relu(margin − (s_clean(g) − s_i))`` over the damaged samples i of groups that
    hold a clean sample. :func:`ranking_loss` asks for a margin proportional to the severity
    gap, which vanishes for damage the teachers call mild (JPEG q50); this term does not.

    Args:
        scores: (N,) predicted scores.
        groups: (N,) content id of each sample.
        clean: (N,) bool, True for the undamaged version of its group.
        margin: the constant score gap asked for.

    Returns:
        Scalar tensor (0 when no group has both a clean and a damaged sample).
    """
    _check_same_length(scores=scores, groups=groups, clean=clean)
    pairs = group_mask(groups) & clean[:, None] & ~clean[None, :]
    better, worse = torch.nonzero(pairs, as_tuple=True)
    return _hinge_mean(margin, scores[better] - scores[worse], scores)
