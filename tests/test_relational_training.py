"""The relational map training: warm starts (``init_maps`` continues the map network), and the
numbers of a toy run, recorded before the loop skeleton (issue 19)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reliqa.distortions.dataset import is_held_out
from reliqa.io import save_image
from reliqa.models.weights import WEIGHTS_DIR
from reliqa.training.common import cosine_lr, read_metrics_log
from reliqa.training.config import load_config
from reliqa.training.relational import RelationalTrainConfig, train_relational

SHIPPED = WEIGHTS_DIR / "relational.safetensors"


def _photo_folders(tmp_path: Path, astronaut: torch.Tensor) -> tuple[Path, Path]:
    """Two training crops and one validation crop of the astronaut, in two folders."""
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir()
    val.mkdir()
    save_image(astronaut[..., :96, :96], train / "a.png")
    save_image(astronaut[..., 200:296, 200:296], train / "b.png")
    # validation photos must belong to the engine's held-out split (a hash of the name)
    held_out = next(val / f"{i}.png" for i in range(1000) if is_held_out(val / f"{i}.png"))
    save_image(astronaut[..., 100:196, 300:396], held_out)
    return train, val


def test_a_continuation_that_only_gets_worse_keeps_the_warm_start(
    tmp_path: Path, astronaut: torch.Tensor
) -> None:
    """A destructive learning rate ruins the maps; the warm start, validated before the first
    step, stays the chosen checkpoint, so the exported weights are the starting weights."""
    train, val = _photo_folders(tmp_path, astronaut)
    config = RelationalTrainConfig(
        data_root=str(train),
        data_split="all",
        validation_root=str(val),
        run_dir=str(tmp_path / "run"),
        device="cpu",
        threads=1,
        steps=2,
        batch_size=2,
        crop_size=32,
        lr=50.0,
        warmup_steps=0,
        echo=1,
        num_workers=0,
        val_every=1,
        val_batches=1,
        val_batch_size=2,
        init_maps=str(SHIPPED),
    )
    exported = load_file(str(train_relational(config, quiet=True)))
    shipped = load_file(str(SHIPPED))
    maps = {name for name in shipped if name.startswith("maps_net.")}
    assert maps and maps <= exported.keys()
    for name in maps:
        assert torch.equal(exported[name], shipped[name]), name


@dataclass
class _Recorded:
    """map_loss per step of the toy relational run below: train then validation, steps 1–2
    written by the loop before the skeleton (``_map_phase``), steps 3–4 after a resume since
    the resumed schedule continues (the old loop restarted the warm-up and the cosine at every
    resume; the skeleton kept that, then it was fixed: 2026-12-07)."""

    train: tuple[float, ...] = (
        0.02977912873029709, 0.029414772987365723, 0.024691883474588394, 0.02418752759695053
    )
    val: tuple[float, ...] = (
        0.03584606945514679, 0.035449691116809845, 0.03542162477970123, 0.03541255742311478
    )


def test_map_training_gives_the_recorded_numbers_and_resumes_its_schedule(
    tmp_path: Path, astronaut: torch.Tensor
) -> None:
    """The loop skeleton changed no number: a fresh run, then a resumed one, on a config in
    the old spellings."""
    train, val = _photo_folders(tmp_path, astronaut)
    settings = {  # old spellings on purpose: configs written before the names were unified
        "data_root": str(train), "data_split": "all", "validation_root": str(val),
        "run_dir": str(tmp_path / "run"), "device": "cpu", "threads": 1, "map_steps": 2,
        "batch_size": 2, "crop_size": 32, "lr": 2e-3, "warmup_steps": 1, "echo": 2,
        "num_workers": 0, "val_every": 1, "val_batches": 1, "val_batch_size": 2,
        "log_every": 1, "checkpoint_every": 1,
    }
    torch.manual_seed(0)
    train_relational(load_config(RelationalTrainConfig, settings), quiet=True)
    torch.manual_seed(0)
    train_relational(
        load_config(RelationalTrainConfig, {**settings, "map_steps": 4}), resume=True, quiet=True
    )
    records = read_metrics_log(tmp_path / "run" / "metrics.jsonl")
    # the resumed session continues the schedule of a 4-step run (no second warm-up)
    learning_rates = [r["lr"] for r in records if r["split"] == "train"]
    assert learning_rates[2:] == pytest.approx([cosine_lr(step, 4, 2e-3, 1) for step in (2, 3)])
    recorded = _Recorded()
    for split, expected in (("train", recorded.train), ("val", recorded.val)):
        losses = [r["map_loss"] for r in records if r["split"] == split]
        # 1e-4: the fuse layer's per-slot form (both orders from one convolution per image,
        # 2026-12-07) moved these by float rounding (at most 1.7e-5 relative); a change of the
        # loop or of what the network computes moves them by far more
        assert losses == pytest.approx(expected, rel=1e-4), split
