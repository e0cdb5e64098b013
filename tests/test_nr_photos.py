"""The whole-photo pipeline of hirqa: classical statistics, the corpus (deterministic, resumable),
the teacher consensus, the content-aware criterion, the objective's terms, head training,
export and distillation — on toy sizes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reliqa.models.nr_statistics import STATISTIC_NAMES, image_statistics
from reliqa.training.nr_losses import clean_margin_loss


def _column(name: str) -> int:
    return STATISTIC_NAMES.index(name)


def test_statistics_respond_to_the_damage_they_describe(astronaut: torch.Tensor) -> None:
    from reliqa.distortions.catalogue import apply_distortion

    photo = torch.nn.functional.interpolate(astronaut, size=(256, 256), antialias=True,
                                            mode="bilinear").clamp(0, 1)
    generator = torch.Generator().manual_seed(0)
    blurred = apply_distortion("gaussian_blur", photo, 0.6)
    noisy = apply_distortion("gaussian_noise", photo, 0.6, generator=generator)
    jpeg = apply_distortion("jpeg", photo, 0.9)
    dark = apply_distortion("exposure_down", photo, 0.9)
    stats = image_statistics(torch.cat([photo, blurred, noisy, jpeg, dark]))
    assert stats.shape == (5, len(STATISTIC_NAMES))
    sharp = _column("log_laplacian_var_s1")
    assert stats[1, sharp] < stats[0, sharp] < stats[2, sharp]
    assert stats[2, _column("log_noise_sigma")] > stats[0, _column("log_noise_sigma")] + 1.0
    assert stats[3, _column("blockiness")] > stats[0, _column("blockiness")] + 0.2
    assert stats[4, _column("luminance_mean")] < stats[0, _column("luminance_mean")] - 0.1


def test_statistics_percentiles_equal_torch_quantile() -> None:
    from reliqa.models.nr_statistics import _quantiles

    values = torch.rand(3, 1001, generator=torch.Generator().manual_seed(1))
    levels = (0.5, 0.9, 0.99)
    expected = torch.quantile(values, torch.tensor(levels), dim=1).T
    torch.testing.assert_close(_quantiles(values, levels), expected)


def test_statistics_refuse_bad_input() -> None:
    from reliqa.exceptions import ReliqaError

    with pytest.raises(ReliqaError, match="images"):
        image_statistics(torch.rand(1, 3, 16, 16))
    with pytest.raises(ReliqaError, match="images"):
        image_statistics(torch.full((1, 3, 64, 64), 2.0))


def test_clean_margin_loss_asks_every_damaged_version_to_lose() -> None:
    groups = torch.tensor([0, 0, 0, 1, 1])
    clean = torch.tensor([True, False, False, True, False])
    good = torch.tensor([0.9, 0.5, 0.8, 0.7, 0.6])
    assert float(clean_margin_loss(good, groups, clean, 0.05)) == 0.0
    bad = torch.tensor([0.9, 0.95, 0.8, 0.7, 0.6])  # version 1 beats its clean photo
    assert float(clean_margin_loss(bad, groups, clean, 0.05)) == pytest.approx((0.1) / 3)
    assert float(clean_margin_loss(bad, groups, torch.zeros(5, dtype=torch.bool), 0.05)) == 0.0


def test_consensus_severity_is_a_percentile_mean_and_zero_when_clean() -> None:
    from reliqa.training.nr_photo_head import consensus_severity

    # columns: ms_ssim, gmsd, fsim, vifp (raw values)
    reference = torch.tensor([[0.99, 0.01, 0.99, 0.9], [0.9, 0.1, 0.9, 0.5]])
    rows = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.99, 0.01, 0.99, 0.9], [0.8, 0.2, 0.8, 0.2]])
    severity = consensus_severity(rows, reference)
    assert severity.tolist() == pytest.approx([0.0, 0.5, 1.0])


def _toy_photos(folder: Path) -> Path:
    """Four generated photos, two of them in the engine's held-out split (names chosen so)."""
    from reliqa.distortions.dataset import is_held_out

    root = folder / "pristine" / "toy"
    root.mkdir(parents=True)
    names: dict[bool, list[str]] = {True: [], False: []}
    index = 0
    while min(len(v) for v in names.values()) < 2:
        name = f"photo_{index}.png"
        held = is_held_out(root / name)
        if len(names[held]) < 2:
            names[held].append(name)
        index += 1
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 200 * 240).reshape(200, 240)
    for name in names[True] + names[False]:
        image = np.stack([ramp, ramp[::-1], np.full_like(ramp, 90)], -1)
        image = np.clip(image + rng.normal(0, 20, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / name)
    return folder / "pristine"


@pytest.mark.slow
def test_corpus_is_deterministic_resumable_and_trains_exports_and_distils(tmp_path: Path) -> None:
    """Corpus of 4 toy photos (2 parts, like two processes) → criterion on every row →
    head training → export that loads strictly into the registered-style model → a student
    distilled from it; the rendered versions equal the ones the features came from."""
    from reliqa.models.hirqa import PretrainedHiRQA
    from reliqa.training.nr_photo_distill import (
        PhotoDistillConfig,
        render_photo,
        train_photo_distill,
    )
    from reliqa.training.nr_photo_head import (
        PhotoHeadConfig,
        export_photo_head,
        load_photo_corpus,
        train_photo_head,
    )
    from reliqa.training.nr_photos import PhotoCorpusConfig, build_photo_corpus

    data = _toy_photos(tmp_path)
    config = PhotoCorpusConfig(data_root=str(data), max_side=200, singles=3, pairs=1)
    out = tmp_path / "corpus"
    assert build_photo_corpus(out, config, part=0, parts=2) == 2
    assert build_photo_corpus(out, config, part=0, parts=2) == 0  # resumes: nothing missing
    assert build_photo_corpus(out, config, part=1, parts=2) == 2
    with pytest.raises(ValueError, match="recipe"):
        build_photo_corpus(out, PhotoCorpusConfig(data_root=str(data), max_side=160))
    corpus = load_photo_corpus(out)
    assert corpus.features.shape == (4 * 5, 4128 + len(STATISTIC_NAMES))
    assert int(corpus.clean.sum()) == 4 and (corpus.teachers[corpus.clean, 0] == 1).all()
    assert int(corpus.held_out.sum()) == 2 * 5 and corpus.flipped.shape[0] == 2 * 5
    summary = train_photo_head(
        PhotoHeadConfig(corpus=str(out), run_dir=str(tmp_path / "run"), steps=6, groups=2,
                        val_every=3, hidden=16, embed_dim=8, max_side=200, weight_clean=1.0,
                        min_clean_wins=0.0),
        corpus,
    )
    assert [record["step"] for record in summary["history"]] == [3, 6]
    assert {"pooled", "within", "clean_wins", "flip", "half"} <= set(summary["history"][0])
    assert summary["best"] is not None
    path = export_photo_head(tmp_path / "run", name="toy", command="test",
                             weights_dir=tmp_path / "weights")
    card = json.loads((tmp_path / "weights" / "toy.json").read_text())
    assert card["architecture"]["statistics"] is True and path.is_file()
    model = PretrainedHiRQA(hidden=16, embed_dim=8, max_side=200, feature_set="all",
                            statistics=True)
    from reliqa.models.weights import load_shipped

    state, _ = load_shipped("toy", tmp_path / "weights")
    model.load_state_dict(state)
    versions = render_photo(corpus, 0, config)
    torch.testing.assert_close(  # the pixel path gives the cached features
        model.eval().features(versions), corpus.features[corpus.photo == 0], atol=2e-3, rtol=1e-2
    )
    student = PhotoDistillConfig(corpus=str(out), teacher=str(tmp_path / "run"),
                                 run_dir=str(tmp_path / "student"), steps=2, photos_per_step=2,
                                 window=48, val_every=2, weight_clean=1.0,
                                 mild_jpeg_quality=(40, 90))
    distilled = train_photo_distill(student)
    assert [record["step"] for record in distilled["history"]] == [2]
    student.steps = 4  # the rerun resumes from the step-2 checkpoint, keeping its history
    resumed = train_photo_distill(student)
    assert [record["step"] for record in resumed["history"]] == [2, 4]
    from reliqa.exceptions import DataError
    from reliqa.training.nr_photo_distill import export_photo_student

    shipped = export_photo_student(tmp_path / "student", command="test", name="hirqa-s", step=2,
                                   weights_dir=tmp_path / "weights")
    card = json.loads(shipped.with_suffix(".json").read_text())
    assert card["checkpoint_step"] == 2 and shipped.is_file()
    with pytest.raises(DataError, match="step 3"):
        export_photo_student(tmp_path / "student", command="test", step=3,
                             weights_dir=tmp_path / "weights")


def test_mild_jpeg_copies_are_pillow_jpeg_of_each_window() -> None:
    """One JPEG copy per clean window, same shape, 8-bit values, at a quality in the range:
    q = 90 fixed gives exactly Pillow's q90 round trip."""
    import io

    import numpy as np
    from PIL import Image

    from reliqa.training.nr_photo_distill import mild_jpeg_copies

    windows = torch.rand(2, 3, 32, 40, generator=torch.Generator().manual_seed(0))
    copies = mild_jpeg_copies(windows, (90, 90), torch.Generator().manual_seed(1))
    assert copies.shape == windows.shape
    assert torch.equal((copies * 255).round() / 255, copies)
    pixels = (windows[1].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
    expected = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
    torch.testing.assert_close(copies[1], torch.from_numpy(expected).permute(2, 0, 1))
    assert (copies - windows).abs().mean() > 0.01  # JPEG of noise is far from the noise


def test_view_corpus_adds_training_contents_without_moving_the_criterion(tmp_path: Path) -> None:
    """A view corpus (cropped training photos) holds only training photos, joins the corpus
    under new photo ids, renders back to the pixels its statistics came from, and leaves the
    severity of every whole-photo row — hence the criterion — exactly as without it."""
    from reliqa.exceptions import DataError
    from reliqa.models.nr_statistics import image_statistics
    from reliqa.training.nr_photo_distill import render_photo
    from reliqa.training.nr_photo_head import corpus_severity, load_photo_corpus
    from reliqa.training.nr_photos import PhotoCorpusConfig, build_photo_corpus, photo_view

    data = _toy_photos(tmp_path)
    whole = PhotoCorpusConfig(data_root=str(data), max_side=240, singles=2, pairs=0)
    views = PhotoCorpusConfig(data_root=str(data), max_side=240, singles=2, pairs=0, seed=7,
                              view_crop=0.85)
    assert build_photo_corpus(tmp_path / "whole", whole) == 4
    assert build_photo_corpus(tmp_path / "views", views) == 2  # the two held-out photos: none
    tiny = PhotoCorpusConfig(data_root=str(data), max_side=240, view_crop=0.5)
    assert build_photo_corpus(tmp_path / "tiny", tiny) == 0  # 100 px views: below the teachers' 161
    assert json.loads((tmp_path / "whole" / "corpus.json").read_text()).keys() == whole.recipe().keys()
    base = load_photo_corpus(tmp_path / "whole")
    corpus = load_photo_corpus(tmp_path / "whole", [tmp_path / "views"])
    rows = len(base.photo)
    assert corpus.features.shape[0] == rows + 2 * 3 and int(corpus.view.sum()) == 2 * 3
    assert not corpus.held_out[rows:].any() and not corpus.view[:rows].any()
    assert set(corpus.photo[rows:].tolist()) == {4, 5}
    assert torch.equal(corpus.held_out_rows, base.held_out_rows)
    assert torch.equal(corpus_severity(corpus)[:rows], corpus_severity(base))
    rendered = render_photo(corpus, 4, views)
    assert rendered.shape[-2:] == (170, 204)  # 85 % of the 200 × 240 photo
    torch.testing.assert_close(
        image_statistics(rendered), corpus.features[corpus.photo == 4][:, -len(STATISTIC_NAMES):],
    )
    photo = torch.rand(1, 3, 200, 240)
    assert torch.equal(photo_view(photo, 3, views), photo_view(photo, 3, views))
    assert not torch.equal(photo_view(photo, 3, views), photo_view(photo, 2, views))
    with pytest.raises(DataError, match="training photos only"):
        load_photo_corpus(tmp_path / "whole", [tmp_path / "whole"])
