"""``reliqa.compare`` and ``reliqa.rank``: thin functions over the shipped relational model.

Convention:
    - One pair order everywhere (as pyiqa, piq and torchmetrics): **test first, reference
      second**, keywords ``test=`` and ``reference=``.
    - ``compare(test, reference)``: the TEST is judged against the REFERENCE. Maps (9, H, W) in [0, 1]
      (0.5 = no difference, > 0.5 = the test has more of the attribute), a relational score
      (higher = test better; 0 = no difference, negative = worse than the reference) and a
      per-attribute summary: ``mean_signed`` = mean of 2·(m − 0.5) over the image (−1 … 1) and
      ``area`` = fraction of pixels with |m − 0.5| > 0.05.
    - ``rank(candidates, reference)``: candidates sorted by score against the same reference, best
      first (ties keep the given order).
    - Inputs are anything :func:`reliqa.io.load_image` accepts (one image each). Reference and
      test must have the same size unless ``align="resize"``, which resizes the test to the
      reference (bilinear, antialiased) — useful for a codec's or a pipeline's output that was
      cropped or scaled by a few pixels, not for a different framing.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch

from reliqa.attributes import ACTIVE_THRESHOLD, ATTRIBUTES, NEUTRAL
from reliqa.checks import resolve_device
from reliqa.exceptions import (
    InvalidInputError,
    ReliqaError,
    ShapeMismatchError,
    UnknownNameError,
    UsageError,
)
from reliqa.io import ImageSource, describe_source, load_image, resize_to
from reliqa.models.registry import create_model, list_models, model_name
from reliqa.models.relational import DEFAULT_MARGIN, DEFAULT_TILE, NEUTRAL_SCORE, RelationalModel

Align = Literal["none", "resize"]


@dataclass(frozen=True)
class AttributeSummary:
    """One attribute of a comparison: mean signed change (−1 … 1) and changed area (0 … 1)."""

    mean_signed: float
    area: float


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`.

    Attributes:
        score: relational score, higher = test better; :data:`NEUTRAL_SCORE` (0) = no difference.
        maps: (9, H, W) float32 in [0, 1], channel order ``reliqa.ATTRIBUTES``.
        attributes: per attribute name, its :class:`AttributeSummary`.
        test: the test image as used, (3, H, W) (after ``align``), for drawing the maps.
    """

    score: float
    maps: torch.Tensor = field(repr=False)
    attributes: dict[str, AttributeSummary]
    test: torch.Tensor = field(repr=False)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready ``{"score", "attributes": {name: {"mean_signed", "area"}}}``."""
        return {
            "score": self.score,
            "attributes": {
                name: {"mean_signed": summary.mean_signed, "area": summary.area}
                for name, summary in self.attributes.items()
            },
        }


@dataclass(frozen=True)
class RankedCandidate:
    """One entry of :func:`rank`: the candidate as given, its position in the input, its score.

    With ``rank(..., errors="keep")`` a candidate that could not be scored has ``score`` NaN
    and ``error`` = why (it is listed after every scored one).
    """

    image: ImageSource
    index: int
    score: float
    error: str | None = None


def relational_model_names() -> list[str]:
    """The registered relational (map-producing, full-reference) models, sorted."""
    return [entry.name for entry in list_models() if entry.builder is RelationalModel]


def check_relational_name(name: str) -> str:
    """The registered spelling of ``name`` (either spelling: ``relational_plus`` =
    ``relational-plus``) if it is a relational model (no weights are loaded).

    Raises:
        UnknownNameError: no model of that name. UsageError: a model that is not relational
            (e.g. the no-reference ``hirqa``). Both list only the relational models.
    """
    names = relational_model_names()
    canonical = model_name(name)
    if canonical in names:
        return canonical
    offer = f"relational models: {', '.join(names)}"
    if canonical is not None:
        raise UsageError(f"model {name!r} is not a relational (map-producing, full-reference) model; {offer}")
    raise UnknownNameError(f"unknown model {name!r}; {offer}")


def relational_model(
    device: str | torch.device | None = None, name: str = "relational"
) -> RelationalModel:
    """The shipped relational model ``name`` on ``device`` (default cpu; loaded once per device
    and name, hash-checked, eval)."""
    return _relational_model(str(resolve_device(device)), check_relational_name(name))


@functools.lru_cache(maxsize=4)
def _relational_model(device: str, name: str) -> RelationalModel:
    model = create_model(name, device=device)
    if not isinstance(model, RelationalModel):  # pragma: no cover - the name check rules it out
        raise InvalidInputError(f"model {name!r} is not a relational model")
    return model


def _resolve_model(model: str | RelationalModel | None, device: str | torch.device | None) -> RelationalModel:
    """``model=`` means the same everywhere: a registered model name (default: the shipped
    ``relational``) or an already loaded model."""
    if model is None or isinstance(model, str):
        return relational_model(device, model or "relational")
    if not isinstance(model, RelationalModel):
        raise InvalidInputError(
            f"model must be a registered model name or a RelationalModel, got {type(model).__name__}"
        )
    return model


def summarise_maps(maps: torch.Tensor) -> dict[str, AttributeSummary]:
    """Per-attribute ``mean_signed`` and ``area`` of maps (9, H, W)."""
    summary = {}
    # One channel at a time: the temporaries of all nine channels of an 8K pair would be 2.4 GB each.
    for name, channel in zip(ATTRIBUTES, maps):
        deviation = channel - NEUTRAL
        mean_signed = float(2.0 * deviation.mean())
        area = float((deviation.abs() > ACTIVE_THRESHOLD).float().mean())
        summary[name] = AttributeSummary(mean_signed, area)
    return summary


def _load_one(source: ImageSource, role: str) -> torch.Tensor:
    """Load ``source``; an error names the argument (``test``/``reference``) and the source."""
    name = f"{role} {describe_source(source)}"
    image = load_image(source, name=name)
    if image.shape[0] != 1:
        raise InvalidInputError(f"{name}: expected one image, got a batch of {image.shape[0]}")
    return image


def _aligned(
    reference: torch.Tensor, test: torch.Tensor, align: Align, names: tuple[str, str]
) -> torch.Tensor:
    if align not in ("none", "resize"):
        raise InvalidInputError(f"align must be 'none' or 'resize', got {align!r}")
    if reference.shape == test.shape:
        return test
    if align == "none":
        (rh, rw), (th, tw) = reference.shape[-2:], test.shape[-2:]
        raise ShapeMismatchError(
            f"reference {names[0]} is {rw}x{rh} but test {names[1]} is {tw}x{th}; "
            "compare images of the same size, or pass align='resize' (CLI: --align resize)"
        )
    return resize_to(test, reference.shape[-2:])  # the one resize-to-reference rule (io)


@torch.inference_mode()
def compare(
    test: ImageSource,
    reference: ImageSource,
    *,
    align: Align = "none",
    model: str | RelationalModel | None = None,
    device: str | torch.device | None = None,
    tile: int | None = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> Comparison:
    """Compare a test image with its reference: maps, relational score, per-attribute summary.

    Args:
        test: the image judged (path, PIL, numpy, or (3, H, W) / (1, 3, H, W) tensor in [0, 1]).
        reference: the image it is judged against.
        align: ``"none"`` (sizes must match) or ``"resize"`` (test resized to the reference).
        model: a registered model name or a loaded :class:`RelationalModel` (default: the
            shipped ``"relational"`` on ``device``).
        device: where the shipped model runs (default :data:`reliqa.checks.DEFAULT_DEVICE`).
        tile, margin: tiled inference for large images (see ``reliqa.models.relational``).

    Returns:
        A :class:`Comparison`; identical images give maps of exactly 0.5 and score 0; a test
        worse than its reference scores below 0.

    Raises:
        ImageLoadError / InvalidInputError: an input cannot be read or is not one image.
        ShapeMismatchError: sizes differ and ``align="none"``.
        DeviceError: ``device`` is not available here.

    Example:
        >>> import numpy as np
        >>> image = np.full((16, 16, 3), 128, dtype=np.uint8)
        >>> compare(image, image).score
        0.0
    """
    model = _resolve_model(model, device)
    return _compare_loaded(
        test, _load_one(reference, "reference"), describe_source(reference), align, model,
        tile=tile, margin=margin,
    )


@torch.inference_mode()
def _compare_loaded(
    test: ImageSource,
    reference_image: torch.Tensor,
    reference_name: str,
    align: Align,
    model: RelationalModel,
    *,
    tile: int | None = DEFAULT_TILE,
    margin: int = DEFAULT_MARGIN,
) -> Comparison:
    """:func:`compare` with the reference already loaded (``reference_name`` names it)."""
    device_of_model = next(model.parameters()).device
    test_image = _aligned(
        reference_image, _load_one(test, "test"), align, (reference_name, describe_source(test))
    )
    output = model(
        test_image.to(device_of_model),
        reference_image.to(device_of_model),
        tile=tile,
        margin=margin,
    )
    maps = output.maps[0].cpu()
    score = float(output.score[0]) + 0.0  # + 0.0 turns −0.0 into the neutral 0.0
    return Comparison(score=score, maps=maps, attributes=summarise_maps(maps), test=test_image[0])


def rank(
    candidates: Sequence[ImageSource],
    reference: ImageSource,
    *,
    align: Align = "none",
    model: str | RelationalModel | None = None,
    device: str | torch.device | None = None,
    errors: Literal["raise", "keep"] = "raise",
) -> list[RankedCandidate]:
    """Rank candidate versions of one reference, best first, by their relational score.

    Args:
        candidates: one or more images of the reference's size (or any size with
            ``align="resize"``).
        reference: the reference image they are all judged against.
        errors: ``"raise"`` (default) stops at the first unreadable candidate; ``"keep"``
            ranks the others and lists each failure after them (score NaN, ``error`` set).

    Returns:
        :class:`RankedCandidate` entries sorted by score, highest first (stable for ties),
        then, with ``errors="keep"``, the failed candidates in input order.

    Raises:
        InvalidInputError: no candidates; errors of :func:`compare` (with ``errors="raise"``,
            or for the reference itself).
    """
    if len(candidates) == 0:
        raise InvalidInputError("rank needs at least one candidate image")
    if errors not in ("raise", "keep"):
        raise InvalidInputError(f"errors must be 'raise' or 'keep', got {errors!r}")
    model = _resolve_model(model, device)
    reference_image = _load_one(reference, "reference")  # a bad reference fails everything
    reference_name = describe_source(reference)
    scored: list[RankedCandidate] = []
    failed: list[RankedCandidate] = []
    for index, candidate in enumerate(candidates):
        try:
            result = _compare_loaded(candidate, reference_image, reference_name, align, model)
        except ReliqaError as error:
            if errors == "raise":
                raise
            failed.append(RankedCandidate(candidate, index, math.nan, str(error)))
            continue
        scored.append(RankedCandidate(candidate, index, result.score))
    return sorted(scored, key=lambda entry: -entry.score) + failed


__all__ = [
    "NEUTRAL_SCORE",
    "AttributeSummary",
    "Comparison",
    "RankedCandidate",
    "check_relational_name",
    "compare",
    "rank",
    "relational_model",
    "relational_model_names",
    "summarise_maps",
]
