"""Warm starts of the relational map training: ``init_maps`` continues the map network."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file

from reliqa.distortions.dataset import is_held_out
from reliqa.io import save_image
from reliqa.models.weights import WEIGHTS_DIR
from reliqa.training.relational import RelationalTrainConfig, train_relational

SHIPPED = WEIGHTS_DIR / "relational.safetensors"


def test_a_continuation_that_only_gets_worse_keeps_the_warm_start(
    tmp_path: Path, astronaut: torch.Tensor
) -> None:
    """A destructive learning rate ruins the maps; the warm start, validated before the first
    step, stays the chosen checkpoint, so the exported weights are the starting weights."""
    train, val = tmp_path / "train", tmp_path / "val"
    train.mkdir()
    val.mkdir()
    save_image(astronaut[..., :96, :96], train / "a.png")
    save_image(astronaut[..., 200:296, 200:296], train / "b.png")
    # validation photos must belong to the engine's held-out split (a hash of the name)
    held_out = next(val / f"{i}.png" for i in range(1000) if is_held_out(val / f"{i}.png"))
    save_image(astronaut[..., 100:196, 300:396], held_out)
    config = RelationalTrainConfig(
        data_root=str(train),
        data_split="all",
        validation_root=str(val),
        run_dir=str(tmp_path / "run"),
        device="cpu",
        threads=1,
        map_steps=2,
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
