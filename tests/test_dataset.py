"""The IterableDataset: sharding over workers and ranks, held-out split, crops, validation set."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from reliqa.distortions.dataset import (
    HELD_OUT_PERCENT,
    DistortionDataset,
    batch_seed,
    is_held_out,
    split_images,
    split_key,
    validation_batches,
)
from reliqa.exceptions import InvalidInputError

POOL = ["brighten", "darken", "warm", "gaussian_blur", "gaussian_noise", "banding", "jitter"]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five small photos in two sub-folders, one smaller than the crop."""
    from skimage import data

    root = tmp_path_factory.mktemp("pristine")
    (root / "set_a").mkdir()
    (root / "set_b").mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        image = Image.fromarray(getattr(data, name)())
        image.resize((image.width // 4, image.height // 4), Image.LANCZOS).save(root / "set_a" / f"{name}.png")
    Image.fromarray(data.camera()[:20, :30]).save(root / "set_b" / "tiny.png")
    return root


def _dataset(root: Path, **options: object) -> DistortionDataset:
    settings = {"split": "all", "crop_size": 32, "batch_size": 2, "num_batches": 6, "pool": POOL}
    settings.update(options)
    return DistortionDataset(root, **settings)  # type: ignore[arg-type]


def test_two_workers_make_every_batch_once_and_match_one_process(photo_folder: Path) -> None:
    dataset = _dataset(photo_folder)
    parallel = list(DataLoader(dataset, batch_size=None, num_workers=2))
    serial = {int(b["index"]): b for b in DataLoader(dataset, batch_size=None, num_workers=0)}
    indices = sorted(int(b["index"]) for b in parallel)
    assert indices == list(range(6))
    tests = torch.cat([b["test"].flatten(1) for b in parallel])
    distinct = torch.cdist(tests, tests) + torch.eye(len(tests)) * 1e9
    assert float(distinct.min()) > 1e-3, "two samples are the same"
    for batch in parallel:  # the data do not depend on the number of workers
        twin = serial[int(batch["index"])]
        for key in ("reference", "test", "truth"):
            torch.testing.assert_close(batch[key], twin[key], atol=1e-5, rtol=0)
        assert torch.equal(batch["swapped"], twin["swapped"])


def test_ddp_ranks_split_the_stream(photo_folder: Path) -> None:
    seen = []
    for rank in range(2):
        dataset = _dataset(photo_folder, rank=rank, world_size=2, num_batches=5)
        seen.append([int(b["index"]) for b in dataset])
    assert seen == [[0, 2, 4], [1, 3]]


def test_batches_have_the_documented_shapes(photo_folder: Path) -> None:
    batch = next(iter(_dataset(photo_folder)))
    assert batch["reference"].shape == (2, 3, 32, 32)
    assert batch["test"].shape == (2, 3, 32, 32)
    assert batch["truth"].shape == (2, 9, 32, 32)
    assert batch["swapped"].dtype == torch.bool
    ordinal = next(iter(_dataset(photo_folder, mode="ordinal", ordinal_levels=3)))
    assert ordinal["versions"].shape == (2, 3, 3, 32, 32)
    assert ordinal["levels"].shape == (2, 3)
    assert ordinal["truth"].shape == (2, 3, 9, 32, 32)
    assert bool((ordinal["levels"].diff(dim=1) > 0).all())


def test_endless_stream_and_epochs(photo_folder: Path) -> None:
    dataset = _dataset(photo_folder, num_batches=None)
    stream = iter(dataset)
    first = [next(stream) for _ in range(3)]
    assert [int(b["index"]) for b in first] == [0, 1, 2]
    again = next(iter(dataset))
    assert torch.equal(again["test"], first[0]["test"])
    dataset.set_epoch(1)
    assert not torch.equal(next(iter(dataset))["test"], first[0]["test"])


def test_crops_cover_scales_and_small_photos(photo_folder: Path) -> None:
    tiny = _dataset([photo_folder / "set_b" / "tiny.png"], crop_size=48, num_batches=1)
    batch = tiny.make_batch(0)
    assert batch["reference"].shape == (2, 3, 48, 48)  # a 20×30 photo is enlarged
    assert float(batch["reference"].min()) >= 0 and float(batch["reference"].max()) <= 1

def test_downscaling_before_the_crop(tmp_path: Path) -> None:
    ramp = np.repeat(np.repeat(np.arange(256, dtype=np.uint8)[None, :, None], 256, axis=0), 3, axis=2)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    for scale in (1.0, 0.5, 0.25):
        crops = _dataset([tmp_path / "ramp.png"], scale_range=(scale, scale), batch_size=4).make_batch(0)
        step = float(crops["reference"].diff(dim=-1).mean()) * 255
        assert step == pytest.approx(1 / scale, rel=0.05)


def test_held_out_split_is_a_fixed_hash_of_the_name() -> None:
    assert split_key("/any/where/kodak24/kodim01.png") == "kodak24/kodim01.png"
    key = "kodak24/kodim01.png"
    expected = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100 < 10
    assert is_held_out(Path("/x/kodak24/kodim01.png")) == expected
    assert is_held_out("kodak24/kodim01.png") == is_held_out("/elsewhere/kodak24/kodim01.png")
    names = [f"set/{i:04d}.png" for i in range(2000)]
    share = sum(map(is_held_out, names)) / len(names)
    assert abs(share - HELD_OUT_PERCENT / 100) < 0.02


def test_split_images_partitions_the_folder(photo_folder: Path) -> None:
    every = split_images(photo_folder, "all")
    assert len(every) == 5
    train = [p for p in every if not is_held_out(p)]
    held = [p for p in every if is_held_out(p)]
    if train:
        assert split_images(photo_folder, "train") == train
    if held:
        assert split_images(photo_folder, "held_out") == held
    with pytest.raises(InvalidInputError, match="split"):
        split_images(photo_folder, "test")  # type: ignore[arg-type]


@pytest.mark.shared
def test_shared_pristine_split(shared_data: Path) -> None:
    pristine = shared_data / "pristine"
    every = split_images(pristine, "all")
    held = split_images(pristine, "held_out")
    train = split_images(pristine, "train")
    assert len(every) >= 200
    assert len(held) + len(train) == len(every)
    assert not set(held) & set(train)
    assert 0.05 * len(every) <= len(held) <= 0.15 * len(every)  # HELD_OUT_PERCENT = 10
    assert len({p.parent.name for p in held}) >= 3  # drawn from several collections
    keys = {split_key(p) for p in held}
    # Pinned members: the documented rule must not drift (docs/engine.md lists the split).
    assert {"kodak24/kodim03.png", "mcmaster18/12.tif", "urban100/img_008.png"} <= keys
    assert "kodak24/kodim01.png" not in keys


def test_validation_batches_are_fixed_and_held_out(photo_folder: Path, tmp_path: Path) -> None:
    held_names = [n for n in (f"photo{i}.png" for i in range(100)) if is_held_out(f"val/{n}")][:2]
    train_name = next(n for n in (f"photo{i}.png" for i in range(100)) if not is_held_out(f"val/{n}"))
    (tmp_path / "val").mkdir()
    source = Image.open(photo_folder / "set_a" / "coffee.png")
    for name in [*held_names, train_name]:
        source.save(tmp_path / "val" / name)
    assert split_images(tmp_path, "held_out") == [tmp_path / "val" / n for n in sorted(held_names)]
    first = validation_batches(tmp_path, num_batches=2, batch_size=2, crop_size=24, pool=POOL)
    again = validation_batches(tmp_path, num_batches=2, batch_size=2, crop_size=24, pool=POOL)
    assert len(first) == 2
    for a, b in zip(first, again):
        assert torch.equal(a["test"], b["test"]) and torch.equal(a["truth"], b["truth"])
    (tmp_path / "val" / held_names[0]).unlink()
    (tmp_path / "val" / held_names[1]).unlink()
    with pytest.raises(InvalidInputError, match="held_out"):
        validation_batches(tmp_path, num_batches=1)


def test_batch_seeds_differ() -> None:
    seeds = {batch_seed(0, epoch, index) for epoch in range(3) for index in range(100)}
    assert len(seeds) == 300
    assert all(0 <= s < 2**63 for s in seeds)


def test_bad_options_raise_clear_errors(photo_folder: Path) -> None:
    with pytest.raises(InvalidInputError, match="scale_range"):
        _dataset(photo_folder, scale_range=(0.0, 1.0))
    with pytest.raises(InvalidInputError, match="mode"):
        _dataset(photo_folder, mode="pairs")
    with pytest.raises(InvalidInputError, match="crop_size"):
        _dataset(photo_folder, crop_size=0)
