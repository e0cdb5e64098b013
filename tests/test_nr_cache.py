"""The cached corpus (make once, resume, reuse), the hirqa head training on it, its export, and
the hirqa-s distillation: toy sizes (64-pixel crops, a random backbone, a few steps)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from reliqa.exceptions import InvalidInputError
from reliqa.models.efficientnet_lite import EfficientNetLite0
from reliqa.models.nr import POOLED_DIM, PretrainedHiRQA
from reliqa.models.weights import load_shipped
from reliqa.training.nr_cache import CachedCorpus, CacheRecipe, build_cache, read_shard


def _recipe(root: Path, **changes: object) -> CacheRecipe:
    fields: dict[str, object] = {
        "data": str(root),
        "crop_sizes": [64, 72],
        "batch_size": 2,
        "batches_per_shard": 1,
        "levels": 2,
        "pixels_every": 2,
        "val_batches": 1,
        "val_batch_size": 2,
        "val_crop": 64,
    }
    fields.update(changes)
    return CacheRecipe(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from PIL import Image
    from skimage import data

    root = tmp_path_factory.mktemp("pristine")
    (root / "x").mkdir()
    for name, photo in zip(
        ("p0", "p1", "p2", "p4"), (data.astronaut(), data.coffee(), data.chelsea(), data.rocket())
    ):
        Image.fromarray(photo[::4, ::4]).save(root / "x" / f"{name}.png")  # p4 is held out
    return root


@pytest.fixture(scope="module")
def backbone() -> EfficientNetLite0:
    torch.manual_seed(0)
    return EfficientNetLite0(num_classes=0).eval()


@pytest.fixture(scope="module")
def corpus(pristine: Path, backbone: EfficientNetLite0, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus")
    summary = build_cache(root, _recipe(pristine), shards=3, backbone=backbone, threads=1, quiet=True)
    assert summary["made"] == 3 and summary["shards"] == 3
    return root


@pytest.fixture(scope="module")
def teacher(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-step head run's best checkpoint: the teacher of the distillation tests."""
    from reliqa.training.nr_head import NRHeadConfig, train_nr_head

    head = tmp_path_factory.mktemp("head")
    train_nr_head(
        NRHeadConfig(cache=str(corpus), run_dir=str(head), steps=1, groups=2, val_every=1,
                     threads=1),
        quiet=True,
    )
    return head / "checkpoints" / "best.safetensors"


def test_cache_round_trip_and_labels(corpus: Path, pristine: Path, backbone: EfficientNetLite0) -> None:
    shard = read_shard(corpus / "shard_000000.safetensors")
    n = 2 * 3  # 2 contents × (pristine + 2 levels)
    assert shard["features"].shape == (n, POOLED_DIM) and shard["features"].dtype == torch.float16
    assert shard["pixels"].shape == (n, 3, 64, 64) and shard["pixels"].dtype == torch.uint8
    assert "pixels" not in read_shard(corpus / "shard_000001.safetensors")  # pixels_every=2
    assert read_shard(corpus / "shard_000001.safetensors")["features"].shape[0] == n
    # the pristine crop is version 0 of each content, with severity 0 and no direction
    assert shard["severity"][0] == 0 and shard["direction"][0] == -1
    per_content = shard["severity"].view(2, 3)
    assert (per_content[:, 1:] > per_content[:, :1]).all()
    # the stored features are the pooled features of the stored pixels (fp16 rounding aside)
    model = PretrainedHiRQA()
    model.backbone.load_state_dict(backbone.state_dict())
    recomputed = model.features(shard["pixels"].float() / 255)
    torch.testing.assert_close(shard["features"].float(), recomputed, atol=2e-2, rtol=2e-2)
    # content ids are unique over the corpus
    corpus_data = CachedCorpus(corpus)
    assert corpus_data.num_groups == 6 and corpus_data.per_group == 3
    assert torch.unique(corpus_data.groups).numel() == 6
    val = read_shard(corpus / "val.safetensors")
    assert val["pixels"].shape[0] == val["features"].shape[0] == 2 * 3


def test_cache_resumes_and_refuses_another_recipe(
    corpus: Path, pristine: Path, backbone: EfficientNetLite0
) -> None:
    before = (corpus / "shard_000000.safetensors").stat().st_mtime_ns
    summary = build_cache(corpus, _recipe(pristine), shards=4, backbone=backbone, threads=1, quiet=True)
    assert summary["made"] == 1 and summary["shards"] == 4
    assert (corpus / "shard_000000.safetensors").stat().st_mtime_ns == before
    with pytest.raises(InvalidInputError, match="another recipe"):
        build_cache(corpus, _recipe(pristine, levels=3), shards=5, backbone=backbone, quiet=True)


def test_head_trains_resumes_and_exports(corpus: Path, tmp_path: Path) -> None:
    from reliqa.training.nr_head import NRHeadConfig, export_pretrained_hirqa, train_nr_head

    config = NRHeadConfig(
        cache=str(corpus), run_dir=str(tmp_path / "run"), steps=2, groups=2, val_every=1,
        checkpoint_every=1, log_every=1, threads=1,
    )
    train_nr_head(config, quiet=True)
    config.steps = 3
    summary = train_nr_head(config, quiet=True)
    assert summary["start_step"] == 2
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [1, 2, 3]
    path = export_pretrained_hirqa(tmp_path / "run", command="reliqa train nr-head --config x",
                                   weights_dir=tmp_path / "w")
    state, card = load_shipped("hirqa", tmp_path / "w")
    assert path.stat().st_size < 20 * 2**20 and card["checkpoint_step"] in (1, 2, 3)
    assert not any(k.startswith("backbone._fc") for k in state)
    model = PretrainedHiRQA()
    model.load_state_dict(state, strict=False)
    scores = model.score(torch.rand(2, 3, 64, 80))
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()


def test_distillation_runs_from_a_head_checkpoint(
    corpus: Path, teacher: Path, tmp_path: Path
) -> None:
    from reliqa.training.nr_distill import NRDistillConfig, train_nr_distill

    config = NRDistillConfig(
        cache=str(corpus), teacher=str(teacher),
        init_from=None, run_dir=str(tmp_path / "student"), steps=2, groups=2, crop=48,
        val_every=1, checkpoint_every=1, log_every=1, threads=1, replay=False,
    )
    summary = train_nr_distill(config, quiet=True)
    assert summary["pixel_shards"] == 2 and "initial_val" in summary
    records = [json.loads(line) for line in (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["split"] == "train"]
    assert [r["step"] for r in train] == [1, 2] and all(r["match"] >= 0 for r in train)
    assert (tmp_path / "student" / "checkpoints" / "best.safetensors").is_file()


def test_engine_replay_remakes_the_stored_crops_exactly(corpus: Path) -> None:
    """The student can see every cached content: the engine re-makes any shard's crops
    bit-exactly from the recipe, so shards need not store pixels."""
    from reliqa.training.nr_distill import EngineReplay

    item = next(iter(EngineReplay(str(corpus), [0], seed=0)))
    stored = read_shard(corpus / "shard_000000.safetensors")["pixels"]
    assert int(item["shard"]) == 0 and int(item["batch"]) == 0  # one batch per shard here
    assert torch.equal(item["pixels"], stored)


def test_distillation_with_engine_replay_runs(
    corpus: Path, teacher: Path, tmp_path: Path
) -> None:
    from reliqa.training.nr_distill import NRDistillConfig, train_nr_distill

    config = NRDistillConfig(
        cache=str(corpus), teacher=str(teacher),
        init_from=None, run_dir=str(tmp_path / "student"), steps=2, crop=48, val_every=2,
        checkpoint_every=2, log_every=1, threads=1, replay=True, workers=0,
    )
    summary = train_nr_distill(config, quiet=True)
    assert summary["pixel_shards"] >= 3 and summary["best_selection"] is not None
