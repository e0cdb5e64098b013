"""``hirqa-s`` distilled from a ``hirqa`` photo head on the whole-photo corpus.

The corpus's versions are deterministic (:func:`~reliqa.training.nr_photos.render_version`), so
their pixels are re-made here (once, kept in memory as 8-bit) and the teacher's scores come
from the cached features through the teacher head: the teacher costs nothing per step. The
student (the ``hirqa-s`` network) sees a random window (the same for every version of a photo)
with a random flip and learns

    L = distillation_loss(s, t)          [match + the teacher's order over ALL pairs]
        + w_rank · ranking_loss(within photo, teacher consensus severity)
        + w_clean · clean_margin_loss(every damaged version below its clean photo; with
                                      mild_jpeg_quality also a Pillow JPEG copy of each clean
                                      window at q in that range, milder than the corpus's)

so it inherits the teacher's judgement across photos and kinds of damage and keeps every
damaged copy below its clean photo. The kept step is the one with the best held-out
criterion (:func:`~reliqa.training.nr_photo_head.photo_criterion`) among those whose
clean-beats-damage share is ≥ ``min_clean_wins`` (0.97). No human label.

    reliqa train nr-photo-distill --config configs/nr_hirqa_s_photos.json
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from reliqa.distortions.ops_codec import jpeg_round_trip
from reliqa.exceptions import DataError
from reliqa.io import load_image
from reliqa.models.hirqa import HIRQA_CONFIGS, HiRQA, fit_to_max_side
from reliqa.models.weights import load_shipped
from reliqa.training.checkpoint import Checkpointer, module_state_from_checkpoint
from reliqa.training.common import cosine_lr, seed_everything, set_lr
from reliqa.training.config import TrainConfig, config_to_dict, load_config
from reliqa.training.loop import Every, KeepBest, TimeBudget, run_steps
from reliqa.training.nr_losses import (
    clean_margin_loss,
    distillation_loss,
    group_mask,
    ranking_loss,
)
from reliqa.training.nr_photo_head import (
    PhotoCorpus,
    corpus_severity,
    head_scores,
    input_features,
    load_head_run,
    load_photo_corpus,
    photo_criterion,
)
from reliqa.training.nr_photos import (
    PhotoCorpusConfig,
    half_scale,
    photo_view,
    render_version,
    version_plan,
)
from reliqa.verified import load_verified


@dataclass
class PhotoDistillConfig(TrainConfig):
    """A ``hirqa-s`` distillation run (JSON: configs/nr_hirqa_s_photos.json)."""

    corpus: str = "/work/nr_cache/photos_v1"
    teacher: str = "runs/nr_hirqa_photos"
    run_dir: str = "runs/nr_hirqa_s_photos"
    init_from_shipped: bool = True
    steps: int = 1500
    max_minutes: float | None = None
    photos_per_step: int = 6
    window: int = 320
    lr: float = 5e-4
    weight_decay: float = 0.05
    warmup_steps: int = 50
    grad_clip: float = 1.0
    weight_match: float = 1.0
    weight_order: float = 1.0
    weight_rank: float = 1.0
    margin_rank: float = 0.5
    weight_clean: float = 0.0
    clean_margin: float = 0.05
    val_every: int = 150
    min_clean_wins: float = 0.97
    mild_jpeg_quality: tuple[int, int] | None = None


def corpus_recipe(folder: str | Path) -> PhotoCorpusConfig:
    """The recipe a corpus folder was made with (its ``corpus.json``)."""
    path = Path(folder) / "corpus.json"
    recipe = json.loads(path.read_text())
    recipe.pop("version", None)
    return load_config(PhotoCorpusConfig, recipe)


def render_photo(corpus: PhotoCorpus, pid: int, recipe: PhotoCorpusConfig) -> torch.Tensor:
    """All versions of corpus photo ``pid``: (V, 3, H, W) float in [0, 1], bit-exact with the
    images the corpus's features were computed from."""
    index = corpus.indices[pid]
    folder, name = corpus.names[pid].split("/")
    photo = photo_view(
        fit_to_max_side(load_image(Path(recipe.data_root) / folder / name), recipe.max_side),
        index, recipe,
    )
    plan = version_plan(index, recipe)
    return torch.cat([render_version(photo, t, lv, recipe.seed + index) for t, lv in plan])


def teacher_scores(corpus: PhotoCorpus, teacher_run: str | Path) -> torch.Tensor:
    """(V,) scores of every corpus row by a photo-head run's best head (cached features)."""
    model, config = load_head_run(teacher_run)
    with torch.inference_mode():
        return head_scores(model, input_features(corpus.features, config.statistics))[0]


def _student_criterion(
    student: HiRQA, corpus: PhotoCorpus, recipe: PhotoCorpusConfig, severity: torch.Tensor,
    held_pixels: dict[int, torch.Tensor],
) -> dict[str, float]:
    student.eval()
    full, flipped, half = [], [], []
    with torch.inference_mode():
        for pid in torch.unique(corpus.photo[corpus.held_out_rows]).tolist():
            versions = held_pixels[pid].float() / 255.0
            full.append(student(versions))
            flipped.append(student(versions.flip(-1)))
            half.append(student(half_scale(versions)))
    return photo_criterion(
        torch.cat(full), corpus, severity[corpus.held_out_rows], torch.cat(flipped), torch.cat(half)
    )


def mild_jpeg_copies(
    clean: torch.Tensor, quality: tuple[int, int], generator: torch.Generator
) -> torch.Tensor:
    """(K, 3, h, w) clean windows → (K, 3, h, w) Pillow JPEG copies at a quality drawn uniformly
    from ``quality`` (inclusive). The corpus's JPEG stops at quality 43 (``JPEG_QUALITY``), milder
    than the q50–q90 files cameras and users write; these copies only join the clean-margin
    term (no teacher score is needed to know they are worse than their clean window)."""
    copies = []
    for window in clean:
        level = int(torch.randint(quality[0], quality[1] + 1, (1,), generator=generator))
        pixels = _to_uint8(window).permute(1, 2, 0).numpy()
        decoded, _ = jpeg_round_trip(Image.fromarray(pixels, "RGB"), level)
        array = np.asarray(decoded.convert("RGB"), dtype=np.float32) / 255.0
        copies.append(torch.from_numpy(array).permute(2, 0, 1))
    return torch.stack(copies) if copies else clean.new_zeros((0, *clean.shape[1:]))


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images.clamp(0, 1) * 255.0).round().to(torch.uint8)


def train_photo_distill(config: PhotoDistillConfig) -> dict[str, Any]:
    """Distil; writes ``run_dir/best.safetensors`` (the student's state), ``summary.json`` and,
    at every validation, a step checkpoint in ``run_dir/checkpoints`` that a rerun of the same
    command resumes from (model, optimizer, RNG, history; the time budget starts afresh)."""
    seed_everything(config.seed)
    run = _DistillRun(config)
    done = run.resume()
    run.budget = TimeBudget(config.max_minutes)
    run_steps(
        done, config.steps, run.update, [Every(config.val_every, run.validate)],
        stop_before=lambda _: (
            config.max_minutes is not None and run.budget.spent() > 60 * config.max_minutes
        ),
    )
    summary = {"config": config_to_dict(config), "best": run.best.record,
               "history": run.history, "seconds": round(run.budget.spent(), 1)}
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


class _DistillRun:
    """A distillation run: the set-up, the resume, and the step and validation (writing the
    best student and a checkpoint) that :func:`~reliqa.training.loop.run_steps` calls."""

    def __init__(self, config: PhotoDistillConfig) -> None:
        self.config = config
        self.corpus = corpus = load_photo_corpus(config.corpus)
        self.recipe = corpus_recipe(config.corpus)
        train_rows = torch.nonzero(~corpus.held_out, as_tuple=True)[0]
        self.severity = corpus_severity(corpus)
        self.teacher = teacher_scores(corpus, config.teacher)
        self.student = HiRQA(**HIRQA_CONFIGS["hirqa-s"])  # type: ignore[arg-type]
        if config.init_from_shipped:
            self.student.load_state_dict(load_shipped("hirqa-s")[0])
        self.parameters = [
            p for n, p in self.student.named_parameters() if not n.startswith("text_projection")
        ]
        self.optimizer = torch.optim.AdamW(
            self.parameters, lr=config.lr, weight_decay=config.weight_decay
        )
        self.held_pixels = {
            pid: _to_uint8(render_photo(corpus, pid, self.recipe))
            for pid in torch.unique(corpus.photo[corpus.held_out_rows]).tolist()
        }
        self.train_photos = torch.unique(corpus.photo[train_rows])
        self.pixels: dict[int, torch.Tensor] = {}
        self.generator = torch.Generator().manual_seed(config.seed)
        self.history: list[dict[str, Any]] = []
        self.best = KeepBest("pooled")
        self.run_dir = Path(config.run_dir)
        self.checkpointer = Checkpointer(self.run_dir / "checkpoints", keep=4)
        self.budget = TimeBudget(config.max_minutes)
        self.loss = 0.0

    def resume(self) -> int:
        """Continue from the run folder's last checkpoint, if any; returns its step."""
        resumed = self.checkpointer.resume({"student": self.student}, {"optimizer": self.optimizer})
        if resumed is None:
            return 0
        self.history, best = resumed.extra["history"], resumed.extra["best"]
        self.best = KeepBest("pooled", value=best["pooled"] if best else None, record=best)
        self.generator.set_state(torch.tensor(resumed.extra["generator"], dtype=torch.uint8))
        print(f"resumed at step {resumed.step}", flush=True)
        return int(resumed.step)

    def update(self, index: int) -> None:
        config, corpus, step = self.config, self.corpus, index + 1
        self.student.train()
        # batch-norm statistics stay the initial network's: a step's batch holds 6 contents ×
        # 9 versions, far too correlated for batch statistics (flip differences of 0.9 seen)
        for module in self.student.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.eval()
        set_lr(self.optimizer, cosine_lr(step, config.steps, config.lr, config.warmup_steps))
        index_rows, batch, groups, is_clean = self._batch()
        all_scores = self.student(batch)
        scores = all_scores[: len(index_rows)]
        distilled = distillation_loss(
            scores, self.teacher[index_rows], weight_match=config.weight_match,
            weight_rank=config.weight_order,
        )
        within = ranking_loss(
            scores, self.severity[index_rows], group_mask(corpus.photo[index_rows]),
            config.margin_rank,
        )
        clean = clean_margin_loss(all_scores, groups, is_clean, config.clean_margin)
        total = distilled["total"] + config.weight_rank * within + config.weight_clean * clean
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(self.parameters, config.grad_clip)
        self.optimizer.step()
        self.loss = float(total.detach())

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """A step's batch: one random window (randomly flipped) of every version of
        ``photos_per_step`` training photos, plus the mild JPEG copies of the clean windows.

        Returns:
            The corpus rows of the windows, the images (windows then copies), the photo of
            each image and whether it is a clean window.
        """
        config, corpus = self.config, self.corpus
        chosen = self.train_photos[torch.randperm(len(self.train_photos), generator=self.generator)]
        chosen_ids = chosen[: config.photos_per_step].tolist()
        for pid in chosen_ids:
            if pid not in self.pixels:
                self.pixels[pid] = _to_uint8(render_photo(corpus, pid, self.recipe))
        size = min(config.window, *(min(self.pixels[pid].shape[-2:]) for pid in chosen_ids))
        crops, rows = [], []
        for pid in chosen_ids:
            versions = self.pixels[pid]
            height, width = versions.shape[-2:]
            top = int(torch.randint(height - size + 1, (1,), generator=self.generator))
            left = int(torch.randint(width - size + 1, (1,), generator=self.generator))
            window = versions[..., top : top + size, left : left + size].float() / 255.0
            if bool(torch.rand((), generator=self.generator) < 0.5):
                window = window.flip(-1)
            crops.append(window)
            rows.append(torch.nonzero(corpus.photo == pid, as_tuple=True)[0])
        index = torch.cat(rows)
        groups, is_clean = corpus.photo[index], corpus.clean[index]
        batch = torch.cat(crops)
        if config.mild_jpeg_quality is not None:
            mild = mild_jpeg_copies(batch[is_clean], config.mild_jpeg_quality, self.generator)
            batch = torch.cat([batch, mild])
            groups = torch.cat([groups, groups[is_clean]])
            is_clean = torch.cat([is_clean, torch.zeros(len(mild), dtype=torch.bool)])
        return index, batch, groups, is_clean

    def validate(self, step: int) -> None:
        """The held-out criterion; the best eligible student is written; then a checkpoint."""
        metrics = _student_criterion(
            self.student, self.corpus, self.recipe, self.severity, self.held_pixels
        )
        record = {"step": step, "loss": self.loss, "seconds": round(self.budget.spent()),
                  **metrics}
        self.history.append(record)
        print(json.dumps(record), flush=True)
        if self.best.offer(record, eligible=metrics["clean_wins"] >= self.config.min_clean_wins):
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_file(
                {k: v.detach().contiguous() for k, v in self.student.state_dict().items()},
                str(self.run_dir / "best.safetensors"), metadata={"step": str(step)},
            )
        self.checkpointer.save(
            step, {"student": self.student}, {"optimizer": self.optimizer},
            {"history": self.history, "best": self.best.record,
             "generator": self.generator.get_state().tolist()},
        )


def export_photo_student(
    run_dir: str | Path, *, command: str, name: str = "hirqa-s", weights_dir: Path | None = None,
    step: int | None = None,
) -> Path:
    """Ship a distillation run's best student — or, with ``step``, the student of that
    validation step's checkpoint (e.g. the best one that passes the damage gate) — as ``<name>``
    with its model card."""
    from reliqa.training.cards import export_hirqa

    run = Path(run_dir)
    summary = json.loads((run / "summary.json").read_text())
    if step is None:
        state, _ = load_verified(run / "best.safetensors", None)
        chosen = summary["best"]
    else:
        chosen = next((r for r in summary["history"] if r["step"] == step), None)
        if chosen is None:
            raise DataError(f"{run}: no validation record for step {step}")
        state = module_state_from_checkpoint(
            run / "checkpoints" / f"step_{step:08d}.safetensors", "student"
        )
    return export_hirqa(
        state,
        name,
        command=command,
        training_data=(
            "whole-photo corpus (reliqa train nr-photos, train split of ../shared/data/pristine); "
            f"teacher: the hirqa photo head of {summary['config']['teacher']}; within-photo "
            "order from the full-reference teacher consensus. Opinion-unaware: no human quality "
            "label in any loss, fit, calibration or choice of checkpoint"
        ),
        seed=summary["config"]["seed"],
        config=summary["config"],
        step=chosen["step"],
        figures=("criterion_held_out", {k: v for k, v in chosen.items() if k != "loss"}),
        weights_dir=weights_dir,
    )
