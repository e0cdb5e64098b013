"""The relational scorer: exact anti-symmetry of magnitude × direction, its losses on toy
inputs, the teachers' consensus and their label-free choice, and the cache it trains on
(resume, teacher append, format check)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from reliqa.attributes import ATTRIBUTE_INDEX, NUM_ATTRIBUTES
from reliqa.exceptions import DataError, InvalidInputError, UnknownNameError
from reliqa.io import save_image
from reliqa.models.relational import NEUTRAL_SCORE, RelationalModel, RelationalScorer
from reliqa.models.relational_features import (
    DEEP_MAX_SIDE,
    DEEP_STAGES,
    MAGNITUDE_FEATURES,
    SIMILARITY_CHANNELS,
    STATISTIC_COLUMNS,
    DeepFeatures,
    deep_distances,
    magnitude_features,
    map_statistic_sums,
    masking_activity,
)
from reliqa.training.relational_losses import listwise_infonce_loss, pairwise_logistic_loss
from reliqa.training.relational_scorer import (
    Consensus,
    ScorerTrainConfig,
    load_maps_net,
    select_teachers,
    set_loss,
    set_matrix,
    teacher_agreement,
    train_scorer,
)
from reliqa.training.scorer_cache import (
    FORMAT_VERSION,
    TEACHER_CANDIDATES,
    TEACHER_PREFIX,
    TEACHERS,
    ScorerCacheConfig,
    build_cache,
    cache_photos,
    engine_part,
    load_cache,
    statistics_of,
    teacher_degradations,
    teacher_matrix,
    teacher_scores,
)

TINY_TEACHERS = ("fsim", "gmsd", "ms_ssim", "mdsi")
"""Teachers of the toy caches (MDSI: lower is better, like GMSD)."""


def _statistics(signed: torch.Tensor, activity: torch.Tensor | None = None) -> torch.Tensor:
    """Scorer statistics of signed maps (N, 9, h, w)."""
    if activity is None:
        activity = torch.zeros(signed.shape[0], 1, *signed.shape[-2:])
    return map_statistic_sums(signed, activity) / (signed.shape[-1] * signed.shape[-2])


@pytest.fixture
def random_scorer() -> RelationalScorer:
    generator = torch.Generator().manual_seed(3)
    scorer = RelationalScorer()
    with torch.no_grad():
        scorer.weight.add_(torch.randn(scorer.weight.shape, generator=generator))
    return scorer


def test_no_difference_scores_exactly_zero_and_any_difference_below(
    random_scorer: RelationalScorer,
) -> None:
    scores = random_scorer(_statistics(torch.zeros(3, NUM_ATTRIBUTES, 4, 4)))
    assert torch.all(scores == NEUTRAL_SCORE) and not torch.any(torch.signbit(scores))
    changed = random_scorer(_statistics(torch.rand(5, NUM_ATTRIBUTES, 4, 4) * 2 - 1))
    assert torch.all(changed < 0)


@pytest.mark.parametrize("attribute", ["noise", "brightness", "sharpness"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_a_stronger_change_scores_lower(
    random_scorer: RelationalScorer, attribute: str, sign: float
) -> None:
    """In either direction: the reference is the target look, any change costs."""
    channel = ATTRIBUTE_INDEX[attribute]
    scores = []
    for strength in (0.1, 0.3, 0.6):
        signed = torch.zeros(1, NUM_ATTRIBUTES, 8, 8)
        signed[:, channel, :4] = sign * strength
        scores.append(random_scorer(_statistics(signed)).item())
    assert 0 > scores[0] > scores[1] > scores[2]


def test_the_two_directions_have_their_own_costs(random_scorer: RelationalScorer) -> None:
    noise = ATTRIBUTE_INDEX["noise"]
    signed = torch.zeros(1, NUM_ATTRIBUTES, 8, 8)
    signed[:, noise] = 0.5
    more, less = random_scorer(_statistics(signed)), random_scorer(_statistics(-signed))
    with torch.no_grad():
        random_scorer.weight[noise, 1] = -30.0  # "less noise than the reference" costs nothing
    assert random_scorer(_statistics(-signed)).abs() < 1e-9
    assert random_scorer(_statistics(signed)) == more and less != more


def test_magnitude_features_pool_as_documented() -> None:
    signed = torch.zeros(1, NUM_ATTRIBUTES, 2, 2)
    signed[0, 0] = torch.tensor([[1.0, 0.0], [0.0, -0.5]])
    features = magnitude_features(_statistics(signed))
    assert features.shape == (1, NUM_ATTRIBUTES, 2, MAGNITUDE_FEATURES)
    # u⁺: mean 1/4, rms 1/2, L4 mean (1/4)^(1/4); no texture: the masked means equal the mean
    torch.testing.assert_close(
        features[0, 0, 0], torch.tensor([0.25, 0.5, 0.25**0.25, 0.25, 0.25])
    )
    # u⁻: one pixel at 0.5
    torch.testing.assert_close(
        features[0, 0, 1], torch.tensor([0.125, 0.25, (0.0625 / 4) ** 0.25, 0.125, 0.125])
    )


def test_texture_masking_weighs_flat_regions_more() -> None:
    flat = torch.full((1, 3, 16, 16), 0.5)
    textured = flat.clone()
    textured[..., ::2, :] = 0.9
    assert masking_activity(flat, flat).max() == 0
    assert masking_activity(textured, textured).min() > 0.1
    torch.testing.assert_close(masking_activity(flat, textured), masking_activity(textured, flat))
    signed = torch.full((1, NUM_ATTRIBUTES, 4, 4), 0.5)
    in_flat = magnitude_features(_statistics(signed, masking_activity(flat, flat)))
    in_texture = magnitude_features(_statistics(signed, masking_activity(textured, textured)))
    # the masked mean is a weighted mean of the same u: equal here, since u is uniform
    torch.testing.assert_close(in_flat, in_texture)


def test_pairwise_logistic_loss_prefers_the_right_order() -> None:
    targets = torch.tensor([0.0, -0.5, -1.0])
    right = pairwise_logistic_loss(torch.tensor([0.0, -0.5, -1.0]), targets)
    wrong = pairwise_logistic_loss(torch.tensor([-1.0, -0.5, 0.0]), targets)
    assert right < 1e-4 < wrong
    # pairs closer than the gap are not ranked at all
    assert pairwise_logistic_loss(torch.tensor([1.0, 0.0]), torch.tensor([0.0, 0.01])) == 0
    scores = torch.tensor([-1.0, -0.5, 0.0], requires_grad=True)
    pairwise_logistic_loss(scores, targets).backward()
    assert scores.grad is not None
    assert scores.grad[0] < 0 < scores.grad[2]  # lift the best, lower the worst


def test_consensus_is_a_mean_percentile_in_the_degradation_direction() -> None:
    names = ("fsim", "gmsd", "vifp", "ms_ssim")
    pool = torch.tensor(
        [[0.99, 0.01, 0.95, 0.99], [0.90, 0.10, 0.60, 0.90], [0.70, 0.20, 0.20, 0.70]]
    )
    consensus = Consensus(pool, names)
    c = consensus(pool)
    assert torch.all(c[1:] > c[:-1])  # the third pair is the most degraded by every teacher
    identical = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    assert consensus(identical).item() == 0.0
    degradations = teacher_degradations(pool, names)
    assert torch.all(degradations[:, 1] == pool[:, 1])  # GMSD: lower is better
    assert torch.all(degradations[:, 0] == -pool[:, 0])  # FSIM: higher is better
    with pytest.raises(InvalidInputError, match="columns"):
        teacher_degradations(pool, names[:3])


def test_teachers_are_registered_candidates_and_the_config_names_them() -> None:
    assert set(TEACHERS) <= set(TEACHER_CANDIDATES)
    from_json = ScorerTrainConfig(teachers=["MS-SSIM", "fsim"])  # type: ignore[arg-type]
    assert from_json.teachers == ("ms_ssim", "fsim")
    with pytest.raises(UnknownNameError, match="nope"):
        ScorerTrainConfig(teachers=("fsim", "nope"))
    with pytest.raises(ValueError, match="two"):
        ScorerTrainConfig(teachers=("fsim",))


def test_teacher_choice_keeps_those_that_agree_with_the_others() -> None:
    """Four metrics that order 12 pairs alike and one that orders them at random; the rule
    reads only the metrics (and the engine level, reported), never a human score."""
    generator = torch.Generator().manual_seed(0)
    truth = torch.arange(12.0)
    cache = {
        TEACHER_PREFIX + "gmsd": truth + 0.1 * torch.rand(12, generator=generator),
        TEACHER_PREFIX + "mdsi": truth + 0.1 * torch.rand(12, generator=generator),
        TEACHER_PREFIX + "fsim": -truth + 0.1 * torch.rand(12, generator=generator),
        TEACHER_PREFIX + "dss": -truth + 0.1 * torch.rand(12, generator=generator),
        TEACHER_PREFIX + "vifp": torch.rand(12, generator=generator),
        "set_id": torch.arange(12) // 4,
        "level": truth,
    }
    agreement = teacher_agreement(cache, ("gmsd", "mdsi", "fsim", "dss", "vifp"))
    assert agreement["gmsd"]["consensus"] > 0.85 and agreement["fsim"]["sets"] == 1.0
    assert agreement["vifp"]["consensus"] < 0.85
    assert select_teachers(agreement) == ("gmsd", "mdsi", "fsim", "dss")
    with pytest.raises(DataError, match="vsi"):
        teacher_matrix(cache, ("gmsd", "vsi"))


def test_within_set_loss_ranks_the_reference_first() -> None:
    ordered = torch.tensor([[-0.1, -0.4, -0.8]])
    reversed_order = torch.tensor([[-0.8, -0.4, -0.1]])
    sets = torch.tensor([[0, 1, 2]])
    assert set_loss(ordered[0], sets, 0.05) < set_loss(reversed_order[0], sets, 0.05)
    with_reference = torch.cat([torch.zeros(1, 1), ordered], dim=1)
    assert set_loss(ordered[0], sets, 0.05) == listwise_infonce_loss(with_reference, 0.05)


@pytest.fixture(scope="module")
def tiny_caches(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three photos → a train cache (two sets each) and a validation cache (another seed)."""
    from skimage import data

    from reliqa.io import load_image

    root = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "coffee", "chelsea"):
        save_image(load_image(getattr(data, name)())[..., :200, :200], root / f"{name}.png")
    maps_net = load_maps_net("shipped")
    folders = {"root": root}
    for name, seed in (("train", 0), ("validation", 1)):
        folders[name] = build_cache(
            _tiny_config(root, seed), tmp_path_factory.mktemp(name), maps_net,
            teachers=TINY_TEACHERS, log=False,
        )
    return folders


def _tiny_config(root: Path, seed: int) -> ScorerCacheConfig:
    return ScorerCacheConfig(
        data_root=str(root), split="train", sets_per_photo=2, levels=3, crop_size=176, seed=seed
    )


def test_cache_holds_ordered_sets_and_resumes(tiny_caches: dict[str, Path]) -> None:
    folder = tiny_caches["train"]
    cache = load_cache(folder)
    assert cache["signed"].shape == (len(cache_photos(tiny_caches["root"], "train")) * 2 * 3, NUM_ATTRIBUTES, 44, 44)
    assert statistics_of(cache).shape[1:] == (NUM_ATTRIBUTES, 2, STATISTIC_COLUMNS)
    # the pair's similarity channels, at the maps' resolution, for scorers that read them
    assert cache["similarity"].shape == (cache["signed"].shape[0], len(SIMILARITY_CHANNELS), 44, 44)
    assert statistics_of(cache, similarity=True).shape[1:] == (
        NUM_ATTRIBUTES + len(SIMILARITY_CHANNELS), 2, STATISTIC_COLUMNS
    )
    without = {k: v for k, v in cache.items() if k != "similarity"}
    with pytest.raises(DataError, match="no 'similarity' column"):
        statistics_of(without, similarity=True)
    teachers = teacher_matrix(cache, TINY_TEACHERS)
    assert teachers.shape == (cache["level"].shape[0], len(TINY_TEACHERS))
    assert json.loads((folder / "cache.json").read_text())["teachers"] == list(TINY_TEACHERS)
    sets = set_matrix(cache)
    assert sets.shape[1] == 3
    levels = cache["level"][sets]
    assert torch.all(levels[:, 1:] > levels[:, :-1])
    # the strongest version is more degraded than the mildest by the teachers' consensus too
    c = Consensus(teachers, TINY_TEACHERS)(teachers)[sets]
    assert torch.all(c[:, -1] > c[:, 0])
    # a second run with the same config rewrites nothing (a subset of the teachers neither);
    # another config is refused
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*")}
    maps_net = RelationalModel().maps_net
    for subset in (TINY_TEACHERS, TINY_TEACHERS[:2]):
        build_cache(
            _tiny_config(tiny_caches["root"], 0), folder, maps_net, teachers=subset, log=False
        )
    assert {p.name: p.stat().st_mtime_ns for p in folder.glob("part-*")} == before
    with pytest.raises(DataError, match="another config"):
        build_cache(_tiny_config(tiny_caches["root"], 5), folder, maps_net, log=False)


def test_appending_teachers_computes_only_the_new_columns(
    tiny_caches: dict[str, Path], tmp_path: Path
) -> None:
    copy = shutil.copytree(tiny_caches["train"], tmp_path / "cache")
    before = load_cache(copy)
    # a random map network: had the maps been recomputed, they would differ
    random_maps = RelationalModel().maps_net
    build_cache(
        _tiny_config(tiny_caches["root"], 0), copy, random_maps, teachers=("haarpsi", "MS-SSIM"),
        log=False,
    )
    after = load_cache(copy)
    assert set(after) == set(before) | {TEACHER_PREFIX + "haarpsi"}
    for key, value in before.items():
        assert torch.equal(after[key], value), key
    manifest = json.loads((copy / "cache.json").read_text())
    assert manifest["teachers"] == [*TINY_TEACHERS, "haarpsi"]
    # the new column belongs to the same engine pairs
    config = _tiny_config(tiny_caches["root"], 0)
    photos = cache_photos(config.data_root, "train")
    test, reference, _ = engine_part(config, photos[: config.photos_per_part], 0, 0)
    first = load_file(str(copy / "part-00000-000.safetensors"))
    torch.testing.assert_close(
        teacher_scores(test, reference, ("haarpsi",))[:, 0], first[TEACHER_PREFIX + "haarpsi"]
    )
    # an interrupted append (one part lacks the column) is named, with the command to finish
    part = copy / "part-00000-001.safetensors"
    kept = {k: v for k, v in load_file(str(part)).items() if k != TEACHER_PREFIX + "haarpsi"}
    save_file(kept, str(part))
    with pytest.raises(DataError, match="haarpsi"):
        load_cache(copy)
    build_cache(config, copy, random_maps, teachers=TINY_TEACHERS, log=False)  # completes it
    completed = load_cache(copy)[TEACHER_PREFIX + "haarpsi"]
    assert torch.equal(completed, after[TEACHER_PREFIX + "haarpsi"])


def test_caches_of_another_format_are_refused(tiny_caches: dict[str, Path], tmp_path: Path) -> None:
    """A format-2 cache (one unnamed (N, T) teacher column) cannot take new teachers."""
    copy = shutil.copytree(tiny_caches["train"], tmp_path / "old")
    manifest = copy / "cache.json"
    record = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**record, "format": FORMAT_VERSION - 1}))
    with pytest.raises(DataError, match=f"format {FORMAT_VERSION - 1}.*new cache folder"):
        load_cache(copy)
    with pytest.raises(DataError, match=f"format {FORMAT_VERSION - 1}"):
        build_cache(
            _tiny_config(tiny_caches["root"], 0), copy, RelationalModel().maps_net, log=False
        )
    manifest.unlink()
    with pytest.raises(DataError, match="no cache.json"):
        load_cache(copy)


def test_refreshing_the_maps_keeps_teachers_of_the_same_pairs(
    tiny_caches: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "cache"
    shutil.copytree(tiny_caches["train"], copy)
    before = load_cache(copy)
    random_maps = RelationalModel().maps_net
    build_cache(_tiny_config(tiny_caches["root"], 0), copy, random_maps, refresh_maps=True, log=False)
    after = load_cache(copy)
    assert torch.equal(teacher_matrix(after, TINY_TEACHERS), teacher_matrix(before, TINY_TEACHERS))
    assert not torch.equal(after["signed"], before["signed"])
    # the kept teachers belong to the regenerated pairs: the engine stream is reproducible
    config = _tiny_config(tiny_caches["root"], 0)
    photos = cache_photos(config.data_root, "train")
    test, reference, labels = engine_part(config, photos[: config.photos_per_part], 0, 0)
    first = load_file(str(copy / "part-00000-000.safetensors"))
    torch.testing.assert_close(
        teacher_scores(test, reference, TINY_TEACHERS),
        torch.stack([first[TEACHER_PREFIX + name] for name in TINY_TEACHERS], dim=1),
    )
    assert torch.equal(labels["level"], first["level"])


def test_training_ranks_held_out_sets(tiny_caches: dict[str, Path], tmp_path: Path) -> None:
    config = ScorerTrainConfig(steps=150, val_every=50, cross_items=32, teachers=TINY_TEACHERS)
    summary = train_scorer(
        config, tiny_caches["train"], tiny_caches["validation"], tmp_path,
        load_maps_net("shipped"),
    )
    best = summary["best_validation"]
    assert best["srcc_sets"] > 0.8  # stronger versions score lower on pairs never trained on
    assert best["negative_share"] > 0.9  # a distorted test scores below its reference
    model = RelationalModel()
    model.load_state_dict(load_file(str(tmp_path / "relational.safetensors")))
    log = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert sum('"split": "val"' in line for line in log) == 4


def test_a_scorer_with_similarity_channels_trains_and_ships_them(
    tiny_caches: dict[str, Path], tmp_path: Path
) -> None:
    config = ScorerTrainConfig(
        steps=150, val_every=50, cross_items=32, teachers=TINY_TEACHERS, similarity=True
    )
    summary = train_scorer(
        config, tiny_caches["train"], tiny_caches["validation"], tmp_path,
        load_maps_net("shipped"),
    )
    assert summary["best_validation"]["srcc_sets"] > 0.8
    model = RelationalModel.from_state_dict(load_file(str(tmp_path / "relational.safetensors")))
    assert model.scorer.similarity
    assert model.scorer.weight.shape[0] == NUM_ATTRIBUTES + len(SIMILARITY_CHANNELS)
    # the score reads the channels: without them the same pairs would cost less
    statistics = statistics_of(load_cache(tiny_caches["validation"]), similarity=True)
    without = statistics.clone()
    without[:, NUM_ATTRIBUTES:, :, :3] = 0.0  # Σv, Σv², Σv⁴ of the channels
    without[:, NUM_ATTRIBUTES:, :, 3:5] = 0.0  # their masked sums
    with torch.no_grad():
        assert torch.all(model.scorer(statistics) < model.scorer(without))


def test_an_interrupted_training_resumes_bit_exactly(
    tiny_caches: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reliqa.training.relational_scorer as trainer

    config = ScorerTrainConfig(steps=60, val_every=20, cross_items=32, teachers=TINY_TEACHERS)
    maps_net = load_maps_net("shipped")
    train_scorer(config, tiny_caches["train"], tiny_caches["validation"], tmp_path / "a", maps_net)
    calls = {"n": 0}
    original = trainer.set_loss

    def interrupted(*args: object, **kwargs: object) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] > 45:  # dies in step 45, after the checkpoint of step 39
            raise KeyboardInterrupt
        return original(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "set_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_scorer(
            config, tiny_caches["train"], tiny_caches["validation"], tmp_path / "b", maps_net
        )
    monkeypatch.setattr(trainer, "set_loss", original)
    with pytest.raises(DataError, match="another config"):
        train_scorer(
            ScorerTrainConfig(steps=61, val_every=20, cross_items=32, teachers=TINY_TEACHERS),
            tiny_caches["train"], tiny_caches["validation"], tmp_path / "b", maps_net, resume=True,
        )
    summary = train_scorer(
        config, tiny_caches["train"], tiny_caches["validation"], tmp_path / "b", maps_net,
        resume=True,
    )
    first, second = (load_file(str(tmp_path / run / "relational.safetensors")) for run in "ab")
    assert all(torch.equal(first[key], second[key]) for key in first)
    validations = [
        line for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
        if '"split": "val"' in line
    ]
    assert len(validations) == 4 and summary["teachers"] == list(TINY_TEACHERS)


# ------------------------------------------------------------------------------------------
# relational-plus: the same maps, and ImageNet EfficientNet-Lite0 distances in the score
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def deep_features() -> DeepFeatures:
    return DeepFeatures.from_imagenet()


def test_deep_distances_are_zero_for_identical_images_and_grow_with_blur(
    deep_features: DeepFeatures, astronaut: torch.Tensor
) -> None:
    import kornia

    reference = astronaut[..., :192, :192]
    with torch.inference_mode():
        same = deep_distances(deep_features, reference, reference)
        mild, strong = (
            deep_distances(
                deep_features, kornia.filters.gaussian_blur2d(reference, (9, 9), (s, s)), reference
            )
            for s in (0.8, 2.5)
        )
    assert same.shape == (1, DEEP_STAGES, 3)
    assert same.abs().max() < 1e-5
    assert torch.all(mild > 0)
    # the normalised-feature and structure terms grow with blur at every stage (the texture
    # term, a comparison of channel means, need not: blur moves some means back)
    assert torch.all(strong[..., [0, 2]] > mild[..., [0, 2]]) and strong.sum() > mild.sum()


@pytest.mark.parametrize("max_side", [DEEP_MAX_SIDE, 256])
def test_large_images_are_downscaled_for_the_deep_branch(
    deep_features: DeepFeatures, max_side: int
) -> None:
    """Test and reference go through the backbone downscaled to ``max_side``."""
    big = torch.rand(1, 3, 40, max_side * 2)
    seen: list[tuple[int, ...]] = []
    original = DeepFeatures.forward

    def recording(self: DeepFeatures, images: torch.Tensor) -> list[torch.Tensor]:
        seen.append(tuple(images.shape))
        return original(self, images)

    DeepFeatures.forward = recording  # type: ignore[method-assign]
    try:
        with torch.inference_mode():
            deep_distances(deep_features, big, big.flip(-1), max_side)
    finally:
        DeepFeatures.forward = original  # type: ignore[method-assign]
    assert seen == [(1, 3, 32, max_side)] * 2


def test_a_deep_scorer_refuses_to_score_without_deep_distances() -> None:
    scorer = RelationalScorer(DEEP_STAGES)
    with pytest.raises(InvalidInputError, match="deep"):
        scorer(_statistics(torch.zeros(1, NUM_ATTRIBUTES, 4, 4)))


def test_relational_plus_trains_from_a_deep_cache(
    tiny_caches: dict[str, Path], deep_features: DeepFeatures, tmp_path: Path
) -> None:
    maps_net = load_maps_net("shipped")
    folders = {}
    for name, seed in (("train", 0), ("validation", 1)):
        folders[name] = shutil.copytree(tiny_caches[name], tmp_path / name)
        build_cache(
            _tiny_config(tiny_caches["root"], seed), folders[name], maps_net,
            teachers=TINY_TEACHERS, deep_features=deep_features, log=False,
        )
        assert load_cache(folders[name])["deep"].shape[1:] == (DEEP_STAGES, 3)
    with pytest.raises(DataError, match="--deep"):
        train_scorer(
            ScorerTrainConfig(steps=1, deep=True, teachers=TINY_TEACHERS), tiny_caches["train"],
            folders["validation"],
            tmp_path / "refused", maps_net,
        )
    summary = train_scorer(
        ScorerTrainConfig(
            steps=40, val_every=20, cross_items=32, deep=True, teachers=TINY_TEACHERS
        ),
        folders["train"], folders["validation"], tmp_path / "run", maps_net,
    )
    assert summary["best_validation"]["negative_share"] > 0.9
    model = RelationalModel(deep=True).eval()
    model.load_state_dict(load_file(str(tmp_path / "run" / "relational.safetensors")))
    reference = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert model(reference, reference).score.item() == NEUTRAL_SCORE
        assert model((reference * 0.7).clamp(0, 1), reference).score.item() < 0


def test_set_matrix_orders_each_set_by_level_whatever_the_ids() -> None:
    """Large set ids (photo × 1000 + set) with versions stored out of order."""
    cache = {
        "set_id": torch.tensor([492_001, 492_001, 492_001, 7, 7, 7]),
        "level": torch.tensor([0.9, 0.2, 0.5, 0.6, 0.3, 0.1]),
    }
    sets = set_matrix(cache)
    assert sets.tolist() == [[5, 4, 3], [1, 2, 0]]


def test_the_deep_branch_side_is_checked() -> None:
    with pytest.raises(InvalidInputError, match="deep_max_side"):
        RelationalModel(deep=True, deep_max_side=16)
