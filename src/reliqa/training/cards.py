"""Shipping trained weights with their model card: one card layout for every exporter.

A card records the model and its architecture, the training command, the training data, the
seed, the commit, the resolved config, the chosen checkpoint's step and the label-free
figures that chose it (``synthetic_validation`` or ``criterion_held_out``); ``results`` is left
empty for the benchmarks to fill. :func:`export_hirqa` is the exporter of the ``hirqa`` /
``hirqa-s`` networks (engine-trained runs and distilled students alike);
:func:`~reliqa.training.nr_photo_head.export_photo_head` ships a photo head through
:func:`ship_with_card`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from reliqa.models.hirqa import HIRQA_CONFIGS, HiRQA
from reliqa.training.common import git_commit


def ship_with_card(
    state: dict[str, torch.Tensor],
    name: str,
    *,
    architecture: dict[str, Any],
    command: str,
    training_data: str,
    seed: int,
    config: dict[str, Any],
    step: int,
    figures: tuple[str, dict[str, Any]],
    weights_dir: Path | None = None,
    **details: Any,
) -> Path:
    """Write ``<name>.safetensors`` and its card into ``weights_dir`` (the shipped weights'
    folder by default); ``details`` (e.g. ``parameters``, ``backbone``) follow the architecture,
    ``figures`` is the (key, values) of the figures that chose the checkpoint."""
    from reliqa.models.weights import WEIGHTS_DIR, save_with_card

    card = {
        "model": name,
        "architecture": architecture,
        **details,
        "training_command": command,
        "training_data": training_data,
        "seed": seed,
        "commit": git_commit(),
        "config": config,
        "checkpoint_step": step,
        figures[0]: figures[1],
        "results": {},
    }
    return save_with_card(state, name, card, weights_dir or WEIGHTS_DIR)


def export_hirqa(
    state: dict[str, torch.Tensor], name: str, **card: Any
) -> Path:
    """Ship a ``hirqa``/``hirqa-s`` state (refused unless it fits the registered architecture
    of ``name``) with its card (:func:`ship_with_card`'s keywords); the card counts the
    parameters of the inference path (no batch-norm statistics, no text head)."""
    architecture = HIRQA_CONFIGS[name]
    HiRQA(**architecture).load_state_dict(state)  # type: ignore[arg-type]  # must fit
    parameters = sum(
        int(v.numel())
        for k, v in state.items()
        if "running" not in k and "num_batches" not in k and not k.startswith("text_projection")
    )
    return ship_with_card(state, name, architecture=architecture, parameters=parameters, **card)
