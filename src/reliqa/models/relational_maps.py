"""The relational model's map network: F(test, reference), nine anti-symmetric distortion maps.

Convention (the model's, :mod:`reliqa.models.relational`): images (N, 3, H, W) in [0, 1], test
and reference of the same shape; maps (N, 9, H, W) in [0, 1], 0.5 = no difference. With one
shared pair network ``h``, ``F(t, r) = sigmoid(h(t, r) − h(r, t))``: exactly anti-symmetric.

Architecture (docs/relational.md): both images are folded 4 × 4 → 48 channels (space-to-depth,
no pixel is lost), fused by a 1 × 1 convolution, then a three-level U-Net of depthwise-separable
residual blocks at 1/4, 1/8 and 1/16 resolution; the 1/4-resolution logits are upsampled
bilinearly to full resolution (linear, so anti-symmetry survives).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import torch
from torch import nn
from torch.nn import functional as F

from reliqa.attributes import NUM_ATTRIBUTES
from reliqa.checks import check_tensor_pair
from reliqa.exceptions import InvalidInputError

FOLD: int = 4
"""Space-to-depth factor of the input: the network's finest resolution is 1/FOLD."""

ALIGN: int = 16
"""Inputs are padded (replicate) to a multiple of this: the coarsest level is 1/16."""


# --------------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------------


class SeparableBlock(nn.Module):
    """Residual depthwise-separable block: x + pw2(relu(pw1(dw3x3(x)))), (N, C, h, w) → same.

    No normalisation layer: batch statistics would couple samples and instance statistics
    would make tiles differ from the whole image. The last projection starts at zero, so every
    block starts as the identity and depth does not destabilise training.
    """

    def __init__(self, channels: int, expansion: int = 2) -> None:
        super().__init__()
        hidden = channels * expansion
        self.depthwise = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        self.expand = nn.Conv2d(channels, hidden, 1)
        self.project = nn.Conv2d(hidden, channels, 1)
        for parameter in self.project.parameters():  # weight and bias
            nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # in place on the fresh outputs of the convolutions (the gradients of ReLU and of the
        # sum need neither): no feature map to allocate and page in per operation
        return self.project(F.relu(self.expand(self.depthwise(x)), inplace=True)).add_(x)


def _stage(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(SeparableBlock(channels) for _ in range(depth)))


def _upsample2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


# --------------------------------------------------------------------------------------------
# the map network
# --------------------------------------------------------------------------------------------


class PairNetwork(nn.Module):
    """The shared pair network h, run for both orders of a pair: h(t, r) and h(r, t).

    h(a, b) = U-Net(``fuse`` of a and b centred (x − 0.5) and folded FOLD × FOLD); both orders
    come from one batched pass (:meth:`forward`), which is what the anti-symmetric map network
    needs and all it calls.

    Args:
        widths: channels at 1/4, 1/8 and 1/16 resolution.
        depths: residual blocks per level in the encoder.

    Shapes:
        test, reference: (N, 3, H, W) with H, W multiples of :data:`ALIGN`.
        returns logits (2N, 9, H/4, W/4): the first N rows h(t, r), the last N h(r, t).
    """

    def __init__(
        self, widths: Sequence[int] = (32, 64, 96), depths: Sequence[int] = (2, 2, 2)
    ) -> None:
        super().__init__()
        if len(widths) != 3 or len(depths) != 3:
            raise InvalidInputError(f"widths and depths need 3 levels, got {widths} and {depths}")
        c1, c2, c3 = (int(w) for w in widths)
        folded = 3 * FOLD * FOLD
        self.fuse = nn.Conv2d(2 * folded, c1, 1)
        self.level1 = _stage(c1, depths[0])
        self.down1 = nn.Conv2d(c1, c2, 2, stride=2)
        self.level2 = _stage(c2, depths[1])
        self.down2 = nn.Conv2d(c2, c3, 2, stride=2)
        self.level3 = _stage(c3, depths[2])
        self.lateral3 = nn.Conv2d(c3, c2, 1)
        self.decode2 = SeparableBlock(c2)
        self.lateral2 = nn.Conv2d(c2, c1, 1)
        self.decode1 = SeparableBlock(c1)
        self.head = nn.Conv2d(c1, NUM_ATTRIBUTES, 1)

    def forward(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        return self.decode(self.fused_inputs(test, reference))

    def decode(self, fused: torch.Tensor) -> torch.Tensor:
        """The U-Net from the fused input (N, C1, H/4, W/4) to the logits (N, 9, H/4, W/4)."""
        f1 = self.level1(F.relu(fused, inplace=True))
        f2 = self.level2(F.relu(self.down1(f1), inplace=True))
        f3 = self.level3(F.relu(self.down2(f2), inplace=True))
        d2 = self.decode2(_upsample2(self.lateral3(f3)).add_(f2))
        d1 = self.decode1(_upsample2(self.lateral2(d2)).add_(f1))
        return self.head(d1)

    def fused_inputs(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """``fuse`` of (t, r) and of (r, t), both centred and folded → (2N, C1, H/4, W/4).

        Computed as what it equals, without the folded copies of the images (space-to-depth is
        a strided permutation, slow on a CPU) and without any concatenated copy of the pair:
        ``fuse`` is linear in each image, so each image is convolved once (FOLD × FOLD, stride
        FOLD) with the weights of both input slots and each order is a sum of two halves, the
        centring moved into the bias. ``pixel_unshuffle`` orders a folded channel as (channel,
        row, column), the layout of a convolution weight. Both orders add the same terms, so an
        identical pair gives identical rows bit for bit (F(x, x) = 0.5 exactly).
        """
        weight = self.fuse.weight  # (C1, 2·3·FOLD², 1, 1)
        channels = weight.shape[0]
        bias = cast(torch.Tensor, self.fuse.bias) - 0.5 * weight.sum(dim=(1, 2, 3))
        # (C1, 2, 3, F, F) → rows [first-slot weights; second-slot weights] (2·C1, 3, F, F)
        slots = weight.reshape(channels, 2, 3, FOLD, FOLD).transpose(0, 1).reshape(
            2 * channels, 3, FOLD, FOLD
        )
        on_test = F.conv2d(test, slots, stride=FOLD)
        on_reference = F.conv2d(reference, slots, stride=FOLD)
        fused = torch.cat(
            [
                on_test[:, :channels] + on_reference[:, channels:],
                on_reference[:, :channels] + on_test[:, channels:],
            ]
        )
        return fused.add_(bias[:, None, None])


class RelationalMapNet(nn.Module):
    """Anti-symmetric distortion-map network F(test, ref) = sigmoid(h(t, r) − h(r, t)).

    Args:
        widths, depths: see :class:`PairNetwork`.

    Shapes:
        :meth:`forward`: test, reference (N, 3, H, W) in [0, 1], any H, W ≥ 1 → maps (N, 9, H, W).
    """

    def __init__(
        self, widths: Sequence[int] = (32, 64, 96), depths: Sequence[int] = (2, 2, 2)
    ) -> None:
        super().__init__()
        self.pair = PairNetwork(widths, depths)

    def aligned_logits(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        """Low-resolution anti-symmetric logits for aligned inputs.

        Args:
            test, reference: (N, 3, H, W), H and W multiples of :data:`ALIGN`.

        Returns:
            logits (N, 9, H/4, W/4) with ``logits(t, r) = −logits(r, t)``.
        """
        batch = test.shape[0]
        # One batched pass for both orders: the same kernels see (t, r) and (r, t), which keeps
        # F(x, x) = 0.5 exact and halves the number of kernel launches.
        low = self.pair(test, reference)
        return low[:batch] - low[batch:]

    def forward(self, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
        check_tensor_pair(test, reference, name="relational", channels=(3,))
        height, width = test.shape[-2:]
        low = self.aligned_logits(pad_to_multiple(test), pad_to_multiple(reference))
        return torch.sigmoid(upsample_logits(low)[..., :height, :width])


def upsample_logits(low: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) logits at 1/4 resolution → (N, K, 4h, 4w), bilinear (linear: keeps anti-symmetry)."""
    return F.interpolate(low, scale_factor=float(FOLD), mode="bilinear", align_corners=False)


def pad_to_multiple(image: torch.Tensor, multiple: int = ALIGN) -> torch.Tensor:
    """Pad (N, C, H, W) at the bottom/right by edge replication to multiples of ``multiple``.

    Replication (not reflection) works for any size, even 1 × 1.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    return F.pad(image, (0, pad_w, 0, pad_h), mode="replicate")
