"""Shared training pieces: configs, safetensors checkpoints (resume = uninterrupted), logs, LR."""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from reliqa.exceptions import DataError, WeightsError
from reliqa.training.checkpoint import Checkpointer
from reliqa.training.common import (
    MetricsLog,
    cosine_lr,
    read_metrics_log,
    setup_distributed,
)
from reliqa.training.config import load_config


@dataclass
class _Config:
    steps: int = 10
    lr: float = 0.1


def test_config_rejects_unknown_keys_and_applies_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"steps": 3, "_comment": "ignored"}))
    assert load_config(_Config, path, lr=None) == _Config(steps=3, lr=0.1)
    assert load_config(_Config, path, lr=0.5).lr == 0.5
    path.write_text(json.dumps({"stpes": 3}))
    with pytest.raises(DataError, match="stpes"):
        load_config(_Config, path)
    with pytest.raises(DataError, match="does not exist"):
        load_config(_Config, tmp_path / "missing.json")


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: range) -> None:
    for step in steps:
        inputs = torch.randn(8, 4, generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        model(inputs).square().mean().backward()
        optimizer.step()


def test_resuming_from_a_checkpoint_continues_exactly(tmp_path: Path) -> None:
    torch.manual_seed(0)
    straight = nn.Linear(4, 3)
    resumed = nn.Linear(4, 3)
    resumed.load_state_dict(straight.state_dict())
    opt_straight = torch.optim.AdamW(straight.parameters(), lr=0.01, betas=(0.8, 0.95))
    opt_resumed = torch.optim.AdamW(resumed.parameters(), lr=0.01, betas=(0.8, 0.95))
    _train(straight, opt_straight, range(6))
    _train(resumed, opt_resumed, range(3))
    checkpointer = Checkpointer(tmp_path, keep=2)
    checkpointer.save(3, {"net": resumed}, {"net": opt_resumed}, {"best": 1.5})
    fresh = nn.Linear(4, 3)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=0.5)
    state = checkpointer.resume({"net": fresh}, {"net": fresh_optimizer})
    assert state is not None and state.step == 3 and state.extra == {"best": 1.5}
    assert fresh_optimizer.param_groups[0]["betas"] == (0.8, 0.95)
    _train(fresh, fresh_optimizer, range(3, 6))
    for a, b in zip(straight.parameters(), fresh.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpointer_keeps_the_last_ones_and_tags(tmp_path: Path) -> None:
    model = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    checkpointer = Checkpointer(tmp_path, keep=2)
    for step in (1, 2, 3):
        checkpointer.save(step, {"m": model}, {"m": optimizer})
    checkpointer.save(2, {"m": model}, {"m": optimizer}, tag="best")
    assert [p.name for p in checkpointer.step_checkpoints()] == [
        "step_00000002.safetensors",
        "step_00000003.safetensors",
    ]
    assert (tmp_path / "best.safetensors").is_file()
    assert Checkpointer(tmp_path / "none").resume({"m": model}, {}) is None
    (tmp_path / "step_00000009.safetensors").write_bytes(b"garbage")
    with pytest.raises(WeightsError):
        checkpointer.resume({"m": model}, {})


def test_metrics_log_writes_json_lines_with_null_for_nan(tmp_path: Path) -> None:
    with MetricsLog(tmp_path / "m.jsonl") as log:
        log.write(5, "train", loss=0.25)
        log.write(10, "val", loss=float("nan"))
    records = read_metrics_log(tmp_path / "m.jsonl")
    assert [(r["step"], r["split"], r["loss"]) for r in records] == [
        (5, "train", 0.25),
        (10, "val", None),
    ]


def test_cosine_schedule_warms_up_then_decays_to_the_floor() -> None:
    assert cosine_lr(0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert cosine_lr(9, 100, 1.0, warmup=10) == pytest.approx(1.0)
    assert cosine_lr(100, 100, 1.0, warmup=10, min_ratio=0.05) == pytest.approx(0.05)
    values = [cosine_lr(s, 100, 1.0, warmup=10) for s in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_a_plain_process_is_a_world_of_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    context = setup_distributed("cpu")
    assert (context.rank, context.world_size, context.is_main, context.is_distributed) == (
        0,
        1,
        True,
        False,
    )
