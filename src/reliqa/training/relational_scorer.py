"""Training of the relational scorer on a cache of pooled map statistics (minutes on CPU).

The map network is frozen; the scorer (:class:`~reliqa.models.relational.RelationalScorer`)
reads only the pooled statistics in a cache made by ``reliqa train scorer-cache``
(:mod:`reliqa.training.scorer_cache`). Its objective, with no human label anywhere:

- **cross-content, cross-type order** from a *consensus of opinion-unaware teachers*: the
  classical FR metrics FSIMc, GMSD, VIFp and MS-SSIM (:data:`~reliqa.training.scorer_cache.TEACHERS`),
  each turned into a degradation and mapped to its percentile over the training cache, then
  averaged: c ∈ [0, 1], 0 = identical. Pairs are ranked by c with a RankNet loss (pairs closer
  than ``min_gap`` are left unordered), so no single teacher is copied;
- **within-set order** from the engine: each ordinal set [reference, v₁, …, v_K] (the reference
  scores exactly 0) ranked by its levels with the listwise Plackett–Luce loss; this order is
  exact, the teachers' is only a consensus;
- **scale**: a light regression s ≈ −c, so that −1 means "as bad as the worst synthetic
  degradation in the corpus" (about KADID-10k's strongest levels) and 0 means identical.

Hyper-parameters and the checkpoint are chosen on the validation cache (held-out photos,
synthetic only) by the mean of two Spearman correlations: with the consensus across all
pairs, and with the engine level inside each set.

See docs/relational.md ("The relational score") for the reasoning.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from scipy.stats import spearmanr

from reliqa.exceptions import DataError, WeightsError
from reliqa.models.relational import (
    DEEP_STAGES,
    DeepFeatures,
    RelationalMapNet,
    RelationalModel,
    RelationalScorer,
)
from reliqa.models.weights import load_shipped
from reliqa.training.common import config_to_dict, cosine_lr, seed_everything, set_lr
from reliqa.training.relational_losses import listwise_infonce_loss, pairwise_logistic_loss
from reliqa.training.scorer_cache import load_cache, statistics_of, teacher_degradations
from reliqa.verified import load_verified


@dataclass(frozen=True)
class ScorerTrainConfig:
    """Hyper-parameters of the scorer training (chosen on the validation cache).

    Attributes:
        steps: full-batch Adam steps.
        lr: peak learning rate (warm-up 5 %, cosine decay).
        cross_items: pairs drawn per step for the cross-content term.
        temperature: τ of both ranking terms, in score units.
        min_gap: consensus gap below which two pairs are not ranked.
        lambda_cross, lambda_set, lambda_regression: weights of the three terms.
        weight_decay: L2 on the scorer's parameters.
        val_every: steps between validations.
        seed: torch seed (sampling of the cross-content pairs).
        deep: train the ``relational-plus`` scorer (the caches need ``deep``, from
            ``reliqa train scorer-cache --deep``).
    """

    steps: int = 3000
    lr: float = 0.02
    cross_items: int = 1024
    temperature: float = 0.05
    min_gap: float = 0.05
    lambda_cross: float = 1.0
    lambda_set: float = 1.0
    lambda_regression: float = 0.5
    weight_decay: float = 1e-4
    val_every: int = 100
    seed: int = 0
    deep: bool = False


def load_maps_net(source: str) -> RelationalMapNet:
    """The frozen map network: ``"shipped"`` or the path of a relational .safetensors file."""
    state = load_shipped("relational")[0] if source == "shipped" else load_verified(source, None)[0]
    prefix = "maps_net."
    maps_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if not maps_state:
        raise WeightsError(f"{source}: holds no map network (no '{prefix}*' tensors)")
    maps_net = RelationalMapNet()
    maps_net.load_state_dict(maps_state)
    return maps_net.eval()


class Consensus:
    """The teachers' consensus degradation c ∈ [0, 1]: the mean of each teacher's percentile.

    Percentiles are taken against the training cache (its empirical distribution per teacher),
    which puts the four metrics on one scale without any human label.

    Args:
        reference_teachers: (N, T) teacher values of the training cache.
    """

    def __init__(self, reference_teachers: torch.Tensor) -> None:
        self.sorted = teacher_degradations(reference_teachers).sort(dim=0).values

    def __call__(self, teachers: torch.Tensor) -> torch.Tensor:
        """(N, T) teacher values → (N,) consensus degradation."""
        degradation = teacher_degradations(teachers)
        count = self.sorted.shape[0]
        ranks = [
            torch.searchsorted(self.sorted[:, k].contiguous(), degradation[:, k].contiguous())
            for k in range(degradation.shape[1])
        ]
        return torch.stack(ranks, dim=1).float().mean(dim=1) / count


def set_matrix(cache: dict[str, torch.Tensor]) -> torch.Tensor:
    """(S, K) indices of each ordinal set's versions, rising level (K = versions per set)."""
    set_ids = cache["set_id"]
    unique, counts = torch.unique(set_ids, return_counts=True)
    if counts.numel() == 0 or bool((counts != counts[0]).any()):
        raise DataError("cache sets have unequal sizes; was it written by one config?")
    # by level, then (stable) by set: a combined float key would lose the level's digits
    order = torch.argsort(cache["level"], stable=True)
    order = order[torch.argsort(set_ids[order], stable=True)]
    return order.reshape(len(unique), int(counts[0]))


def set_loss(scores: torch.Tensor, sets: torch.Tensor, temperature: float) -> torch.Tensor:
    """Plackett–Luce loss of [reference (0), v₁, …, v_K] per set, best first."""
    ordered = scores[sets]
    with_reference = torch.cat([ordered.new_zeros(ordered.shape[0], 1), ordered], dim=1)
    return listwise_infonce_loss(with_reference, temperature)


def deep_of(cache: dict[str, torch.Tensor], scorer: RelationalScorer) -> torch.Tensor | None:
    """The cache's deep-feature distances when the scorer reads them."""
    if scorer.deep_weight is None:
        return None
    if "deep" not in cache:
        raise DataError("this scorer reads deep-feature distances: make the caches with --deep")
    return cache["deep"]


@torch.no_grad()
def validation_metrics(
    scorer: RelationalScorer, cache: dict[str, torch.Tensor], consensus: Consensus
) -> dict[str, float]:
    """Spearman of the scores with the consensus (all pairs) and with the level (per set)."""
    scores = scorer(statistics_of(cache), deep_of(cache, scorer)).numpy()
    c = consensus(cache["teachers"]).numpy()
    sets = set_matrix(cache).numpy()
    levels = cache["level"].numpy()
    per_set = [
        spearmanr(scores[row], -levels[row]).statistic
        for row in sets
        if np.ptp(scores[row]) > 0
    ]
    metrics = {
        "srcc_consensus": float(spearmanr(scores, -c).statistic),
        "srcc_sets": float(np.mean(per_set)) if per_set else float("nan"),
        "negative_share": float(np.mean(scores < 0)),
    }
    metrics["objective"] = 0.5 * (metrics["srcc_consensus"] + metrics["srcc_sets"])
    return metrics


def train_scorer(
    config: ScorerTrainConfig,
    train_folder: str | Path,
    validation_folder: str | Path,
    out: str | Path,
    maps_net: RelationalMapNet,
) -> dict[str, Any]:
    """Train the scorer on the caches; write ``out/relational.safetensors`` (maps + best scorer).

    Returns:
        A summary: weights path, best step, best validation metrics, wall time.
    """
    started = time.time()
    seed_everything(config.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train, validation = load_cache(train_folder), load_cache(validation_folder)
    consensus = Consensus(train["teachers"])
    target = -consensus(train["teachers"])
    sets = set_matrix(train)
    statistics = statistics_of(train)
    scorer = RelationalScorer(DEEP_STAGES if config.deep else 0)
    deep = deep_of(train, scorer)
    optimizer = torch.optim.Adam(
        scorer.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    generator = torch.Generator().manual_seed(config.seed)
    log_path = out / "metrics.jsonl"
    best: dict[str, Any] = {"objective": -float("inf")}
    best_state: dict[str, torch.Tensor] = {}
    count = target.shape[0]
    with open(log_path, "w") as log:
        for step in range(config.steps + 1):
            if step % config.val_every == 0 or step == config.steps:
                metrics = validation_metrics(scorer, validation, consensus)
                log.write(json.dumps({"step": step, "split": "val", **metrics}) + "\n")
                if metrics["objective"] > best["objective"]:
                    best = {"step": step, **metrics}
                    best_state = {k: v.clone() for k, v in scorer.state_dict().items()}
            if step == config.steps:
                break
            set_lr(optimizer, cosine_lr(step, config.steps, config.lr, config.steps // 20))
            scores = scorer(statistics, deep)
            drawn = torch.randperm(count, generator=generator)[: config.cross_items]
            cross = pairwise_logistic_loss(
                scores[drawn], target[drawn], min_gap=config.min_gap,
                temperature=config.temperature,
            )
            within = set_loss(scores, sets, config.temperature)
            regression = (scores - target).square().mean()
            loss = (
                config.lambda_cross * cross
                + config.lambda_set * within
                + config.lambda_regression * regression
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 50 == 0:
                log.write(
                    json.dumps(
                        {
                            "step": step, "split": "train", "loss": loss.item(),
                            "cross": cross.item(), "set": within.item(),
                            "regression": regression.item(),
                        }
                    )
                    + "\n"
                )
    scorer.load_state_dict(best_state)
    model = RelationalModel(deep=config.deep)
    model.maps_net.load_state_dict(maps_net.state_dict())
    if model.deep_features is not None:
        model.deep_features.load_state_dict(DeepFeatures.from_imagenet().state_dict())
    model.scorer.load_state_dict(scorer.state_dict())
    weights = out / "relational.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    summary = {
        "weights": str(weights),
        "config": config_to_dict(config),
        "train_cache": str(train_folder),
        "validation_cache": str(validation_folder),
        "train_pairs": count,
        "best_validation": best,
        "wall_time_s": round(time.time() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
