"""The no-reference training objective and its synthetic validation (docs/nr.md).

:func:`flatten_ordinal_batch` turns an ordinal batch of the engine into N labelled samples
(content, overall severity, dominant direction, prompt); :func:`nr_objective` is the weighted
sum of the terms of :mod:`reliqa.training.nr_losses` (``rank``, ``cross``, ``higher``,
``embed``, ``text``, ``anchor``) with the weights of :class:`ObjectiveSettings`, and
:func:`photo_objective` its whole-photo form (:class:`PhotoObjectiveSettings`);
:func:`synthetic_validation` / :func:`validation_metrics` give the SRCC figures that select the
``best`` checkpoint. Used by the ordinal-set loop (:mod:`reliqa.training.hirqa_engine`) and the photo
head (:mod:`reliqa.training.nr_photo_head`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr

from reliqa.models.hirqa import HiRQA
from reliqa.training.nr_losses import (
    clean_margin_loss,
    embedding_consistency_loss,
    group_mask,
    level_anchor_loss,
    pair_of_pairs_loss,
    ranking_loss,
    text_alignment_loss,
)
from reliqa.training.prompts import CLEAN_SEVERITY, PromptBank, channel_summary, overall_severity


@dataclass
class ObjectiveSettings:
    """The weights, margins and gaps :func:`nr_objective` reads; shared by the NR training
    configs (their JSON files set these keys at the top level, like any other field)."""

    weight_rank: float = 1.0
    weight_cross: float = 0.5
    weight_higher: float = 0.5
    weight_embed: float = 0.25
    weight_text: float = 0.1
    weight_anchor: float = 0.5
    margin_rank: float = 0.5
    margin_higher: float = 0.3
    margin_embed: float = 0.5
    cross_min_gap: float = 0.2
    same_level_gap: float = 0.03
    temperature: float = 0.07


@dataclass
class PhotoObjectiveSettings(ObjectiveSettings):
    """:class:`ObjectiveSettings` plus what :func:`photo_objective` reads besides: the
    cross-photo ranking (``weight_cross_all``, pairs whose severities differ by more than
    ``cross_all_gap``) and the clean-photo margin (``weight_clean``, ``clean_margin``)."""

    weight_cross_all: float = 1.0
    cross_all_gap: float = 0.15
    weight_clean: float = 0.0
    clean_margin: float = 0.05


@dataclass
class FlatBatch:
    """An ordinal batch flattened to N = B·(K+1) samples, with the labels the losses need.

    Attributes:
        images: (N, 3, C, C); sample ``b·(K+1)`` is content b's pristine crop.
        groups: (N,) content id.
        severity: (N,) overall severity in [0, 1] (0 for the pristine crops).
        direction: (N,) dominant channel × 2 + (sign > 0), -1 for clean samples.
        prompts: (N,) prompt index.
    """

    images: torch.Tensor
    groups: torch.Tensor
    severity: torch.Tensor
    direction: torch.Tensor
    prompts: torch.Tensor


def flatten_ordinal_batch(batch: dict[str, torch.Tensor], bank: PromptBank) -> FlatBatch:
    """Turn a dataset batch (``reference`` (B,3,C,C), ``versions`` (B,K,3,C,C), ``truth``
    (B,K,9,C,C)) into a :class:`FlatBatch` with the pristine crop as an extra version."""
    reference, versions, truth = batch["reference"], batch["versions"], batch["truth"]
    b, k = versions.shape[:2]
    images = torch.cat([reference[:, None], versions], dim=1).flatten(0, 1)
    neutral = torch.full_like(truth[:, :1], 0.5)
    flat_truth = torch.cat([neutral, truth], dim=1).flatten(0, 1).float()
    severity = overall_severity(flat_truth)
    channel_severity, channel_sign = channel_summary(flat_truth)
    dominant = channel_severity.argmax(dim=1)
    sign = channel_sign.gather(1, dominant[:, None])[:, 0]
    direction = torch.where(
        severity < CLEAN_SEVERITY, torch.full_like(dominant, -1), dominant * 2 + (sign > 0).long()
    )
    groups = torch.arange(b, device=images.device).repeat_interleave(k + 1)
    prompts = bank.targets(dominant.cpu(), sign.cpu(), severity.cpu()).to(images.device)
    return FlatBatch(images, groups, severity, direction, prompts)


def nr_objective(
    scores: torch.Tensor,
    embedding: torch.Tensor,
    projected: torch.Tensor,
    batch: FlatBatch,
    prompt_embeddings: torch.Tensor,
    config: ObjectiveSettings,
) -> dict[str, torch.Tensor]:
    """All loss terms and their weighted sum (key ``total``) for one flattened batch."""
    same_content = group_mask(batch.groups)
    severity = batch.severity
    comparable = (batch.direction[:, None] == batch.direction[None, :]) & (
        batch.direction[:, None] >= 0
    )
    cross = comparable & ~same_content
    both_clean = (severity[:, None] < CLEAN_SEVERITY) & (severity[None, :] < CLEAN_SEVERITY)
    close = (severity[:, None] - severity[None, :]).abs() < config.same_level_gap
    same_level = both_clean | (cross & close)
    terms = {
        "rank": ranking_loss(scores, severity, same_content, config.margin_rank),
        "cross": ranking_loss(
            scores, severity, cross, config.margin_rank, min_gap=config.cross_min_gap
        ),
        "higher": pair_of_pairs_loss(scores, batch.groups, severity, config.margin_higher),
        "embed": embedding_consistency_loss(
            embedding, severity, same_content, same_level, config.margin_embed
        ),
        "text": text_alignment_loss(
            projected, prompt_embeddings, batch.prompts, config.temperature
        ),
        "anchor": level_anchor_loss(scores, severity),
    }
    weights = {name: getattr(config, f"weight_{name}") for name in terms}
    terms["total"] = sum(
        weights[name] * value for name, value in terms.items() if weights[name] > 0
    )
    return terms


def photo_objective(
    scores: torch.Tensor, embedding: torch.Tensor, projected: torch.Tensor, photos: torch.Tensor,
    severity: torch.Tensor, prompts: torch.Tensor, prompt_embeddings: torch.Tensor,
    config: PhotoObjectiveSettings,
) -> dict[str, torch.Tensor]:
    """The HiRQA objective on whole photos; every input has one row per version (N,).

    ``rank``: within a photo; ``cross_all``: across photos *and* kinds of damage (the teacher
    consensus is one scale for all), pairs whose severities differ by more than
    ``cross_all_gap``; ``higher``: pair-of-pairs within a photo; ``embed``: embedding distances
    ordered like severity differences within a photo (computed photo by photo: O(G·V³), not
    O(N³)), and clean photos pulled together whatever they show; ``text``: alignment with the
    prompt of the strongest defect and its strength; ``anchor``: BCE of the score against
    1 − severity; ``clean``: every damaged version at least ``clean_margin`` below its clean
    photo, however mild the damage (:func:`~reliqa.training.nr_losses.clean_margin_loss`). Returns the terms and their weighted ``total``.
    """
    same_photo = group_mask(photos)
    triplets = [
        embedding_consistency_loss(
            embedding[members], severity[members],
            torch.ones(int(members.sum()), int(members.sum()), dtype=torch.bool),
            torch.zeros(int(members.sum()), int(members.sum()), dtype=torch.bool),
            config.margin_embed,
        )
        for members in (photos[None, :] == torch.unique(photos)[:, None])
    ]
    clean = severity < CLEAN_SEVERITY
    both_clean = clean[:, None] & clean[None, :] & ~torch.eye(len(clean), dtype=torch.bool)
    unit = torch.nn.functional.normalize(embedding, dim=1)
    squared = (2.0 - 2.0 * unit @ unit.T).clamp(min=0.0)  # ‖a − b‖² of unit vectors
    same_level = squared[both_clean].mean() if both_clean.any() else embedding.sum() * 0.0
    terms = {
        "rank": ranking_loss(scores, severity, same_photo, config.margin_rank),
        "cross_all": ranking_loss(
            scores, severity, ~same_photo, config.margin_rank, min_gap=config.cross_all_gap
        ),
        "higher": pair_of_pairs_loss(scores, photos, severity, config.margin_higher),
        "embed": torch.stack(triplets).mean() + same_level,
        "text": text_alignment_loss(projected, prompt_embeddings, prompts, config.temperature),
        "anchor": level_anchor_loss(scores, severity),
        "clean": clean_margin_loss(scores, photos, severity == 0, config.clean_margin),
    }
    weights = {
        "rank": config.weight_rank, "cross_all": config.weight_cross_all,
        "higher": config.weight_higher, "embed": config.weight_embed,
        "text": config.weight_text, "anchor": config.weight_anchor,
        "clean": config.weight_clean,
    }
    terms["total"] = sum(
        (weights[name] * value for name, value in terms.items() if weights[name] > 0),
        torch.zeros(()),
    )
    return terms


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


@torch.inference_mode()
def synthetic_validation(
    model: HiRQA, batches: list[FlatBatch], device: torch.device
) -> dict[str, float]:
    """Scores on fixed held-out batches against −severity: SRCC within content, across all
    samples, and per dominant distortion direction (``srcc_<attribute><sign>``)."""
    model.eval()
    scores, severity, groups, direction = [], [], [], []
    for offset, batch in enumerate(batches):
        scores.append(model(batch.images.to(device)).float().cpu())
        severity.append(batch.severity.cpu())
        groups.append(batch.groups.cpu() + offset * 10_000)
        direction.append(batch.direction.cpu())
    return validation_metrics(
        torch.cat(scores).numpy(),
        torch.cat(severity).numpy(),
        torch.cat(groups).numpy(),
        torch.cat(direction).numpy(),
    )


def validation_metrics(
    s: np.ndarray, severity: np.ndarray, g: np.ndarray, d: np.ndarray
) -> dict[str, float]:
    """Synthetic validation figures from scores ``s``, severities, content ids ``g`` and dominant
    directions ``d`` (-1 = clean): SRCC against −severity within content, pooled, per direction;
    ``selection`` = mean of the first two (the checkpoint criterion)."""
    from reliqa.attributes import ATTRIBUTES

    v = -severity
    within = [_spearman(s[g == group], v[g == group]) for group in np.unique(g)]
    results = {
        "srcc_within": float(np.nanmean(within)),
        "srcc_all": _spearman(s, v),
        "score_clean": float(s[d < 0].mean()),
        "score_mean": float(s.mean()),
    }
    for code in np.unique(d[d >= 0]):
        # per direction: its samples plus the clean crops of the same contents (level 0)
        keep = (d == code) | ((d < 0) & np.isin(g, g[d == code]))
        name = f"{ATTRIBUTES[code // 2]}{'+' if code % 2 else '-'}"
        results[f"srcc_{name}"] = _spearman(s[keep], v[keep])
    results["selection"] = 0.5 * (results["srcc_within"] + results["srcc_all"])
    return results
