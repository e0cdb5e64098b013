"""Issue 19: one config base and loader (old spellings still read), one loop skeleton (the
loops give the numbers they gave before it: tests/test_relational_training.py)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reliqa.exceptions import DataError, InvalidInputError
from reliqa.training.config import ALIASES, TrainConfig, load_config
from reliqa.training.hirqa_engine import NRTrainConfig
from reliqa.training.loop import Every, KeepBest, run_steps
from reliqa.training.nr_photo_distill import PhotoDistillConfig
from reliqa.training.nr_photo_head import PhotoHeadConfig
from reliqa.training.relational import RelationalTrainConfig
from reliqa.training.relational_scorer import ScorerTrainConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def _config_class(path: Path) -> type[TrainConfig]:
    name = path.stem
    if name.startswith("relational_scorer"):
        return ScorerTrainConfig
    if name.startswith("relational"):
        return RelationalTrainConfig
    if name.startswith("nr_hirqa_s_photos"):
        return PhotoDistillConfig
    if name.startswith("nr_hirqa_photos"):
        return PhotoHeadConfig
    return NRTrainConfig


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.json")), ids=lambda p: p.name)
def test_every_committed_config_loads_into_its_class(path: Path) -> None:
    config = load_config(_config_class(path), path)
    raw = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    for key, value in raw.items():
        assert getattr(config, ALIASES.get(key, key)) == (
            tuple(value) if isinstance(getattr(config, ALIASES.get(key, key)), tuple) else value
        ), key


def test_old_spellings_are_read_and_written_under_the_one_name(tmp_path: Path) -> None:
    config = load_config(
        RelationalTrainConfig, {"map_steps": 7, "map_minutes": 2.0, "warmup_steps": 3}
    )
    assert (config.steps, config.max_minutes, config.warmup_steps) == (7, 2.0, 3)
    assert "map_steps" not in json.dumps(dataclasses.asdict(config))
    nr = load_config(NRTrainConfig, {"warmup": 3, "workers": 0, "data": "photos"})
    assert (nr.warmup_steps, nr.num_workers, nr.data_root) == (3, 0, "photos")
    assert load_config(NRTrainConfig, {"steps": 5}, data="elsewhere").data_root == "elsewhere"
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"warmup": 3, "warmup_steps": 4}))
    with pytest.raises(DataError, match="given twice"):
        load_config(PhotoHeadConfig, path)


def test_an_unknown_key_names_the_file_and_the_key(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"steps": 3, "num_worker": 2}))
    with pytest.raises(DataError, match=r"run\.json.*'num_worker'"):
        load_config(RelationalTrainConfig, path)
    path.write_text(json.dumps({"model": "nope"}))
    with pytest.raises(InvalidInputError, match=r"run\.json: model must be one of"):
        load_config(NRTrainConfig, path)
    path.write_text("[1]")
    with pytest.raises(DataError, match="JSON object"):
        load_config(NRTrainConfig, path)


def test_the_skeleton_runs_events_in_order_and_after_the_last_update() -> None:
    seen: list[tuple[str, int]] = []

    def update(done: int) -> bool:
        seen.append(("update", done))
        return False

    events = [
        Every(2, lambda d: seen.append(("log", d)), at_end=False),
        Every(3, lambda d: seen.append(("val", d))),
    ]
    assert run_steps(1, 5, update, events) == 5
    assert seen == [
        ("update", 1), ("log", 2), ("update", 2), ("val", 3), ("update", 3), ("log", 4),
        ("update", 4), ("val", 5),
    ]
    seen.clear()
    assert run_steps(0, 10, update, events, stop_before=lambda done: done == 2) == 2
    assert seen == [("update", 0), ("update", 1), ("log", 2)]
    seen.clear()
    assert run_steps(0, 10, lambda done: done == 0, events) == 1  # a budget spent in update 1
    assert seen == [("val", 1)]


def test_keep_best_follows_the_direction_the_start_value_and_eligibility() -> None:
    best = KeepBest("loss", maximise=False, value=float("inf"))
    assert best.offer({"loss": 2.0}) and not best.offer({"loss": 3.0}) and best.offer({"loss": 1.0})
    assert not best.offer({"loss": float("nan")}) and best.value == 1.0
    first = KeepBest("pooled")
    assert not first.offer({"pooled": 0.9}, eligible=False)
    assert first.offer({"pooled": float("nan")})  # no start value: the first eligible one
    assert not first.offer({"pooled": 1.0})  # nothing beats NaN, as before the skeleton
