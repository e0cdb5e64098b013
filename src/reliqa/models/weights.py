"""Shipped weights: safetensors files + JSON model cards in ``reliqa/weights/``, hash-checked.

A model card ``<name>.json`` sits next to ``<name>.safetensors`` and records how the weights
were made (training command, data, seed, commit, measured results) and their ``sha256``.
Loading never unpickles and never touches the network.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from reliqa.exceptions import WeightsError
from reliqa.verified import load_verified, read_card, sha256_of

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


def read_model_card(name: str, weights_dir: Path = WEIGHTS_DIR) -> dict[str, Any]:
    """The JSON model card of shipped weights ``name`` (:func:`reliqa.verified.read_card`: it
    must record the file's sha256)."""
    card_path = weights_dir / f"{name}.json"
    if not card_path.is_file():
        raise WeightsError(f"no shipped weights named {name!r} (missing {card_path})")
    return read_card(card_path, what=f"shipped weights {name!r}")


def load_shipped(name: str, weights_dir: Path = WEIGHTS_DIR) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """State dict and model card of shipped weights ``name``, verified by the card's sha256
    (:func:`reliqa.verified.load_verified`)."""
    card = read_model_card(name, weights_dir)
    state, _metadata = load_verified(weights_dir / card["file"], card["sha256"])
    return state, card


def save_with_card(
    state: dict[str, torch.Tensor], name: str, card: dict[str, Any], weights_dir: Path = WEIGHTS_DIR
) -> Path:
    """Write ``<name>.safetensors`` and ``<name>.json`` (the card gains ``file`` and ``sha256``)."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    path = weights_dir / f"{name}.safetensors"
    save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, str(path))
    card = {**card, "name": name, "file": path.name, "sha256": sha256_of(path)}
    (weights_dir / f"{name}.json").write_text(json.dumps(card, indent=2) + "\n")
    return path
