"""Training of the relational scorer on a cache of pooled map statistics (minutes on CPU).

The map network is frozen; the scorer (:class:`~reliqa.models.relational.RelationalScorer`)
reads only the pooled statistics in a cache made by ``reliqa train scorer-cache``
(:mod:`reliqa.training.scorer_cache`). Its objective, with no human label anywhere:

- **cross-content, cross-type order** from a *consensus of opinion-unaware teachers*: classical
  FR metrics (the config's ``teachers``, by default
  :data:`~reliqa.training.scorer_cache.TEACHERS`, chosen among the cached candidates by the
  label-free rule of :func:`select_teachers`), each turned into a degradation and mapped to its
  percentile over the training cache, then averaged: c ∈ [0, 1], 0 = identical. Pairs are ranked by c with a RankNet loss (pairs closer
  than ``min_gap`` are left unordered), so no single teacher is copied;
- **within-set order** from the engine: each ordinal set [reference, v₁, …, v_K] (the reference
  scores exactly 0) ranked by its levels with the listwise Plackett–Luce loss; this order is
  exact, the teachers' is only a consensus;
- **scale**: a light regression s ≈ −c, so that −1 means "as bad as the worst synthetic
  degradation in the corpus" (about KADID-10k's strongest levels) and 0 means identical.

Hyper-parameters and the checkpoint are chosen on the validation cache (held-out photos,
synthetic only) by the mean of two Spearman correlations: with the consensus across all
pairs, and with the engine level inside each set.

Resumable: at every validation the run writes ``checkpoint.safetensors`` (scorer, Adam state,
the sampling generator, the best state so far; step, best metrics and config in its metadata),
and ``resume=True`` continues from it bit-exactly.

See docs/relational.md ("The relational score") for the reasoning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from scipy.stats import rankdata, spearmanr

from reliqa.exceptions import DataError, WeightsError
from reliqa.models.relational import RelationalMapNet, RelationalModel, RelationalScorer
from reliqa.models.relational_features import DEEP_STAGES, DeepFeatures
from reliqa.models.weights import load_shipped
from reliqa.training.common import MetricsLog, cosine_lr, seed_everything, set_lr
from reliqa.training.config import TrainConfig, config_to_dict, load_config
from reliqa.training.loop import Every, KeepBest, run_steps
from reliqa.training.relational_losses import listwise_infonce_loss, pairwise_logistic_loss
from reliqa.training.scorer_cache import (
    TEACHERS,
    load_cache,
    statistics_of,
    teacher_degradations,
    teacher_matrix,
    teacher_names,
)
from reliqa.verified import load_verified


@dataclass
class ScorerTrainConfig(TrainConfig):
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
        teachers: the metrics of the teachers' consensus (cache columns ``teacher.<name>``).
        similarity: the scorer also pools the classical similarity channels of the pair
            (:func:`~reliqa.models.relational_features.similarity_channels`; cache column ``similarity``).
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
    deep: bool = False
    teachers: tuple[str, ...] = TEACHERS
    similarity: bool = False

    def __post_init__(self) -> None:
        # a JSON config gives a list; names are stored in their registered spelling
        self.teachers = teacher_names(self.teachers)
        if len(self.teachers) < 2:
            raise ValueError(f"a consensus needs at least two teachers, got {self.teachers}")


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
    which puts the metrics on one scale without any human label.

    Args:
        reference_teachers: (N, T) teacher values of the training cache, native directions.
        names: the T metrics, in column order.
    """

    def __init__(self, reference_teachers: torch.Tensor, names: Sequence[str] = TEACHERS) -> None:
        self.names = tuple(names)
        self.sorted = teacher_degradations(reference_teachers, self.names).sort(dim=0).values

    def __call__(self, teachers: torch.Tensor) -> torch.Tensor:
        """(N, T) teacher values → (N,) consensus degradation."""
        degradation = teacher_degradations(teachers, self.names)
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
    scores = scorer(statistics_of(cache, scorer.similarity), deep_of(cache, scorer)).numpy()
    c = consensus(teacher_matrix(cache, consensus.names)).numpy()
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


MIN_TEACHER_AGREEMENT: float = 0.85
"""A candidate enters the teachers' consensus when its Spearman correlation with the consensus
of the other candidates, on the validation cache, reaches this (docs/relational.md)."""


def teacher_agreement(
    cache: dict[str, torch.Tensor], candidates: Sequence[str]
) -> dict[str, dict[str, float]]:
    """How each candidate teacher agrees with the others, with no human label.

    Args:
        cache: a loaded cache (:func:`~reliqa.training.scorer_cache.load_cache`) holding the
            columns ``teacher.<name>`` of every candidate.
        candidates: at least three metric names.

    Returns:
        Per candidate: ``consensus`` — Spearman correlation of its degradation with the mean
        percentile of the *other* candidates over all pairs (across contents and types);
        ``sets`` — mean Spearman correlation with the engine level inside each ordinal set.
    """
    names = teacher_names(candidates)
    if len(names) < 3:
        raise ValueError(f"teacher agreement needs at least three candidates, got {names}")
    degradation = teacher_degradations(teacher_matrix(cache, names), names).numpy()
    percentiles = np.stack([rankdata(column) for column in degradation.T], axis=1)
    percentiles /= degradation.shape[0]
    sets = set_matrix(cache).numpy()
    levels = cache["level"].numpy()
    agreement = {}
    for k, name in enumerate(names):
        others = np.delete(percentiles, k, axis=1).mean(axis=1)
        per_set = [
            spearmanr(degradation[row, k], levels[row]).statistic
            for row in sets
            if np.ptp(degradation[row, k]) > 0
        ]
        agreement[name] = {
            "consensus": float(spearmanr(degradation[:, k], others).statistic),
            "sets": float(np.mean(per_set)) if per_set else float("nan"),
        }
    return agreement


def select_teachers(
    agreement: dict[str, dict[str, float]], minimum: float = MIN_TEACHER_AGREEMENT
) -> tuple[str, ...]:
    """The candidates (in their order) whose ``consensus`` agreement reaches ``minimum``.

    The rule reads only agreement among the metrics themselves on synthetic pairs: a metric
    that orders the pairs unlike the others is not averaged in, whatever it would do on human
    ratings (which are never read here).
    """
    return tuple(name for name, row in agreement.items() if row["consensus"] >= minimum)


CHECKPOINT = "checkpoint.safetensors"
"""The run folder's checkpoint (written at every validation)."""


def save_checkpoint(
    path: Path,
    step: int,
    scorer: RelationalScorer,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    best: dict[str, Any],
    best_state: dict[str, torch.Tensor],
    config: ScorerTrainConfig,
) -> None:
    """Write the state after ``step`` to ``path`` atomically (tensors only, no pickle)."""
    tensors = {f"scorer.{k}": v.detach() for k, v in scorer.state_dict().items()}
    tensors.update({f"best.{k}": v for k, v in best_state.items()})
    tensors["generator"] = generator.get_state()
    for index, state in optimizer.state_dict()["state"].items():
        tensors.update({f"adam.{index}.{k}": torch.as_tensor(v) for k, v in state.items()})
    metadata = {
        "step": str(step), "best": json.dumps(best), "config": json.dumps(config_to_dict(config))
    }
    partial = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(partial), metadata=metadata)
    partial.replace(path)


def load_checkpoint(
    path: Path,
    scorer: RelationalScorer,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    config: ScorerTrainConfig,
) -> tuple[int, dict[str, Any], dict[str, torch.Tensor]]:
    """Restore a :func:`save_checkpoint` file into the given objects.

    Returns:
        (the step it was written after, the best validation metrics, the best scorer state).

    Raises:
        DataError: the file is missing or was written by a run of another config.
    """
    if not path.is_file():
        raise DataError(f"{path}: no checkpoint to resume from")
    tensors, metadata = load_verified(path, None, what="checkpoint")  # our own file: no hash
    if load_config(ScorerTrainConfig, json.loads(metadata["config"])) != config:
        raise DataError(f"{path}: written by a run with another config; start a new run folder")
    scorer.load_state_dict(
        {k[len("scorer.") :]: v for k, v in tensors.items() if k.startswith("scorer.")}
    )
    generator.set_state(tensors["generator"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("adam."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict(
        {"state": state, "param_groups": optimizer.state_dict()["param_groups"]}
    )
    best_state = {k[len("best.") :]: v for k, v in tensors.items() if k.startswith("best.")}
    return int(metadata["step"]), json.loads(metadata["best"]), best_state


def train_scorer(
    config: ScorerTrainConfig,
    train_folder: str | Path,
    validation_folder: str | Path,
    out: str | Path,
    maps_net: RelationalMapNet,
    *,
    resume: bool = False,
) -> dict[str, Any]:
    """Train the scorer on the caches; write ``out/relational.safetensors`` (maps + best scorer).

    Args:
        resume: continue from ``out/checkpoint.safetensors`` (same config) instead of step 0.

    Returns:
        A summary: weights path, teachers, best step, best validation metrics, wall time.

    Raises:
        DataError: a cache lacks a teacher or the deep distances the config needs, or the
            checkpoint to resume from is missing or of another config.
    """
    started = time.time()
    seed_everything(config.seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = _ScorerRun(config, load_cache(train_folder), load_cache(validation_folder), out)
    first = run.resume() if resume else 0
    if not resume:
        run.log_path.unlink(missing_ok=True)
    with MetricsLog(run.log_path) as run.log:
        if first % config.val_every == 0 or first == config.steps:
            run.validate(first)  # the state the checkpoint holds (or the initial one)
        events = [
            Every(config.val_every, run.save, at_end=False),
            Every(config.val_every, run.validate),
        ]
        run_steps(first, config.steps, run.update, events)
    run.scorer.load_state_dict(run.best_state)
    model = RelationalModel(deep=config.deep, similarity=config.similarity)
    model.maps_net.load_state_dict(maps_net.state_dict())
    if model.deep_features is not None:
        model.deep_features.load_state_dict(DeepFeatures.from_imagenet().state_dict())
    model.scorer.load_state_dict(run.scorer.state_dict())
    weights = out / "relational.safetensors"
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(weights))
    summary = {
        "weights": str(weights),
        "config": config_to_dict(config),
        "train_cache": str(train_folder),
        "validation_cache": str(validation_folder),
        "train_pairs": run.count,
        "teachers": list(config.teachers),
        "best_validation": run.best.record,
        "wall_time_s": round(time.time() - started, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


class _ScorerRun:
    """The scorer's full-batch training on a cache: the step, validation (keeping the best
    state in memory) and checkpoint that :func:`~reliqa.training.loop.run_steps` calls."""

    log: MetricsLog

    def __init__(
        self,
        config: ScorerTrainConfig,
        train: dict[str, torch.Tensor],
        validation: dict[str, torch.Tensor],
        out: Path,
    ) -> None:
        self.config, self.validation, self.out = config, validation, out
        train_teachers = teacher_matrix(train, config.teachers)
        self.consensus = Consensus(train_teachers, config.teachers)
        self.target = -self.consensus(train_teachers)
        self.sets = set_matrix(train)
        self.statistics = statistics_of(train, config.similarity)
        self.scorer = RelationalScorer(DEEP_STAGES if config.deep else 0, config.similarity)
        self.deep = deep_of(train, self.scorer)
        self.optimizer = torch.optim.Adam(
            self.scorer.parameters(), lr=config.lr, weight_decay=config.weight_decay
        )
        self.generator = torch.Generator().manual_seed(config.seed)
        self.log_path = out / "metrics.jsonl"
        self.best = KeepBest("objective", value=-float("inf"), record={"objective": -float("inf")})
        self.best_state: dict[str, torch.Tensor] = {}
        self.count = self.target.shape[0]

    def resume(self) -> int:
        """Restore the checkpoint; returns the steps it had done. What the interrupted run
        logged after its checkpoint is dropped (it is done again)."""
        done, best, self.best_state = load_checkpoint(
            self.out / CHECKPOINT, self.scorer, self.optimizer, self.generator, self.config
        )
        self.best = KeepBest("objective", value=best["objective"], record=best)
        if self.log_path.is_file():
            kept = [
                line for line in self.log_path.read_text().splitlines()
                if json.loads(line)["step"] <= done
            ]
            self.log_path.write_text("".join(line + "\n" for line in kept))
        return done + 1

    def update(self, step: int) -> None:
        config = self.config
        set_lr(self.optimizer, cosine_lr(step, config.steps, config.lr, config.steps // 20))
        scores = self.scorer(self.statistics, self.deep)
        drawn = torch.randperm(self.count, generator=self.generator)[: config.cross_items]
        cross = pairwise_logistic_loss(
            scores[drawn], self.target[drawn], min_gap=config.min_gap,
            temperature=config.temperature,
        )
        within = set_loss(scores, self.sets, config.temperature)
        regression = (scores - self.target).square().mean()
        loss = (
            config.lambda_cross * cross
            + config.lambda_set * within
            + config.lambda_regression * regression
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if step % 50 == 0:
            self.log.write(
                step, "train", loss=loss.item(), cross=cross.item(), set=within.item(),
                regression=regression.item(),
            )

    def validate(self, done: int) -> None:
        metrics = validation_metrics(self.scorer, self.validation, self.consensus)
        self.log.write(done, "val", **metrics)
        if self.best.offer({"step": done, **metrics}):
            self.best_state = {k: v.clone() for k, v in self.scorer.state_dict().items()}

    def save(self, done: int) -> None:
        """The state after ``done`` steps, as the checkpoint of step index ``done - 1``."""
        save_checkpoint(
            self.out / CHECKPOINT, done - 1, self.scorer, self.optimizer, self.generator,
            self.best.record or {}, self.best_state, self.config,
        )
