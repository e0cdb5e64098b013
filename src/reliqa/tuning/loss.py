"""A differentiable relational objective built on the anti-symmetric distortion maps.

Convention:
    - Pair order: **test first, reference second**. The loss says how far the TEST is from the
      REFERENCE, attribute by attribute; gradients flow to the test (and to the reference if it
      requires them).
    - The maps ``m = F(test, reference)`` (N, 9, H, W) in [0, 1] come from the map network of the
      relational model (not its score head). Each is turned into a signed change
      ``u = 2·(m − 0.5)`` in [−1, 1]: 0 = no difference, > 0 = the test has MORE of the
      attribute.
    - Per sample, with attribute weights ``w_k ≥ 0``, targets ``τ_k`` and spatial weight ``s ≥ 0``:

          L = Σ_k w_k · E_s[(u_k − τ_k)²] / Σ_k w_k,    E_s[f] = Σ_px s·f / Σ_px s

      With the default targets (all 0) ``L ≥ 0`` and ``L(x, x) = 0`` exactly, because the maps
      are exactly 0.5 for identical images (anti-symmetry by construction): an image against
      itself is the minimum. A target ``τ_k = +0.2`` asks for a test that is *more* of attribute
      k than the reference, by 0.2 in map units (e.g. "+0.2 brightness").
    - The loss never depends on particular weights of the network: any map network with the
      contract ``(N, 3, H, W) × 2 → (N, 9, H, W) in [0, 1]`` works.

Example:
    >>> import torch
    >>> from reliqa.tuning import relational_loss
    >>> x = torch.rand(1, 3, 32, 32)
    >>> float(relational_loss(x, x))
    0.0
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple, overload

import torch
from torch import nn

from reliqa.attributes import ATTRIBUTE_INDEX, ATTRIBUTES, NEUTRAL, NUM_ATTRIBUTES
from reliqa.checks import check_tensor_pair, resolve_device
from reliqa.exceptions import InvalidInputError, ShapeMismatchError

AttributeValues = Mapping[str, float] | Sequence[float] | torch.Tensor
"""Per-attribute values: a {name: value} dict (missing names take the default), 9 values in
``reliqa.ATTRIBUTES`` order, or a (9,) / (N, 9) tensor."""

Reduction = Literal["mean", "sum", "none"]


class RelationalTerms(NamedTuple):
    """Per-attribute parts of :func:`relational_loss` (``return_terms=True``).

    Attributes:
        signed: (N, 9) spatially weighted mean of ``u = 2·(m − 0.5)`` per attribute, the
            direction and size of each difference (> 0 = the test has more of it).
        penalty: (N, 9) each attribute's contribution to the per-sample loss, already weighted
            and normalised: ``penalty.sum(dim=1)`` is the per-sample loss.
        maps: (N, 9, H, W) the maps the loss was computed from (with their graph).
    """

    signed: torch.Tensor
    penalty: torch.Tensor
    maps: torch.Tensor


def attribute_vector(
    values: AttributeValues | None, default: float, name: str, like: torch.Tensor
) -> torch.Tensor:
    """Per-attribute values as a (1, 9) or (N, 9) tensor on ``like``'s device and dtype.

    Raises:
        InvalidInputError: an unknown attribute name, a wrong length or shape, a non-finite value.
    """
    if values is None:
        return like.new_full((1, NUM_ATTRIBUTES), default)
    if isinstance(values, Mapping):
        unknown = sorted(set(values) - set(ATTRIBUTES))
        if unknown:
            raise InvalidInputError(
                f"{name}: unknown attribute(s) {', '.join(unknown)}; known: {', '.join(ATTRIBUTES)}"
            )
        vector = like.new_full((1, NUM_ATTRIBUTES), default)
        for key, value in values.items():
            vector[0, ATTRIBUTE_INDEX[key]] = float(value)
    else:
        vector = torch.as_tensor(values, dtype=like.dtype).to(like.device)
        if vector.ndim == 1:
            vector = vector[None]
        if vector.ndim != 2 or vector.shape[1] != NUM_ATTRIBUTES:
            raise InvalidInputError(
                f"{name}: expected {NUM_ATTRIBUTES} values (order {', '.join(ATTRIBUTES)}) or "
                f"a (N, {NUM_ATTRIBUTES}) tensor, got shape {tuple(vector.shape)}"
            )
    if not bool(torch.isfinite(vector).all()):
        raise InvalidInputError(f"{name}: values must be finite")
    return vector


def load_map_network(device: str | torch.device | None = None) -> nn.Module:
    """A new copy of the shipped relational map network on ``device`` (default cpu): eval mode,
    frozen.

    Only the map network's weights (``maps_net.*``) are read from the shipped, hash-checked
    file, so the loss does not depend on the score head (its architecture may change).
    """
    from reliqa.models.relational import SHIPPED_ARCHITECTURE, RelationalMapNet
    from reliqa.models.weights import load_shipped

    state, _card = load_shipped("relational")
    prefix = "maps_net."
    network = RelationalMapNet(SHIPPED_ARCHITECTURE.widths, SHIPPED_ARCHITECTURE.depths)
    network.load_state_dict(
        {key[len(prefix) :]: value for key, value in state.items() if key.startswith(prefix)}
    )
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    return network.eval().to(resolve_device(device))


def shipped_map_network(device: str | torch.device | None = None) -> nn.Module:
    """The shipped map network on ``device`` (default cpu), loaded once per device (see
    :func:`load_map_network`)."""
    return _shipped_map_network(str(resolve_device(device)))


@functools.lru_cache(maxsize=4)
def _shipped_map_network(device: str) -> nn.Module:
    return load_map_network(device)


def _maps(network: nn.Module | None, test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    if network is None:
        network = shipped_map_network(str(test.device))
    else:  # a whole RelationalModel: skip its score head
        network = getattr(network, "maps_net", network)
    maps = network(test, reference)
    if not isinstance(maps, torch.Tensor) or maps.shape != (
        test.shape[0],
        NUM_ATTRIBUTES,
        *test.shape[-2:],
    ):
        got = tuple(maps.shape) if isinstance(maps, torch.Tensor) else type(maps).__name__
        raise InvalidInputError(
            f"map network: expected maps of shape ({test.shape[0]}, {NUM_ATTRIBUTES}, "
            f"{test.shape[-2]}, {test.shape[-1]}), got {got}"
        )
    return maps


def _spatial(spatial_weight: torch.Tensor | None, test: torch.Tensor) -> torch.Tensor | None:
    if spatial_weight is None:
        return None
    if not isinstance(spatial_weight, torch.Tensor):
        raise InvalidInputError(
            f"spatial_weight: expected a tensor, got {type(spatial_weight).__name__}"
        )
    weight = spatial_weight.to(device=test.device, dtype=test.dtype)
    if weight.ndim == 2:
        weight = weight[None, None]
    elif weight.ndim == 3:
        weight = weight[:, None]
    batch, height, width = test.shape[0], test.shape[-2], test.shape[-1]
    if (
        weight.ndim != 4
        or weight.shape[0] not in (1, batch)
        or weight.shape[1] not in (1, NUM_ATTRIBUTES)
        or tuple(weight.shape[-2:]) != (height, width)
    ):
        raise ShapeMismatchError(
            f"spatial_weight: expected (H, W), (N, H, W), (N, 1, H, W) or (N, 9, H, W) with "
            f"H, W = {height}, {width} and N in (1, {batch}), got {tuple(spatial_weight.shape)}"
        )
    if not bool(torch.isfinite(weight).all()) or float(weight.min()) < 0.0:
        raise InvalidInputError("spatial_weight: values must be finite and ≥ 0")
    if bool((weight.sum(dim=(-2, -1)) <= 0).any()):
        raise InvalidInputError("spatial_weight: every sample (and channel) needs some weight > 0")
    return weight


def _weights_and_targets(
    weights: AttributeValues | None, targets: AttributeValues | None, test: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The checked (N|1, 9) weights, their (N|1, 1) sum and the (N|1, 9) targets."""
    w = attribute_vector(weights, 1.0, "weights", test)
    tau = attribute_vector(targets, 0.0, "targets", test)
    if float(w.min()) < 0.0:
        raise InvalidInputError("weights: values must be ≥ 0")
    total = w.sum(dim=1, keepdim=True)
    if bool((total <= 0).any()):
        raise InvalidInputError("weights: at least one attribute needs a weight > 0")
    if w.shape[0] not in (1, test.shape[0]) or tau.shape[0] not in (1, test.shape[0]):
        raise InvalidInputError(
            f"weights/targets: a (N, 9) tensor needs N = {test.shape[0]} (or 1)"
        )
    if float(tau.abs().max()) > 1.0:
        raise InvalidInputError("targets: values must lie in [−1, 1] (map units)")
    return w, total, tau


@overload
def relational_loss(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    weights: AttributeValues | None = ...,
    targets: AttributeValues | None = ...,
    spatial_weight: torch.Tensor | None = ...,
    reduction: Reduction = ...,
    return_terms: Literal[False] = ...,
    network: nn.Module | None = ...,
) -> torch.Tensor: ...


@overload
def relational_loss(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    weights: AttributeValues | None = ...,
    targets: AttributeValues | None = ...,
    spatial_weight: torch.Tensor | None = ...,
    reduction: Reduction = ...,
    return_terms: Literal[True],
    network: nn.Module | None = ...,
) -> tuple[torch.Tensor, RelationalTerms]: ...


def relational_loss(
    test: torch.Tensor,
    reference: torch.Tensor,
    *,
    weights: AttributeValues | None = None,
    targets: AttributeValues | None = None,
    spatial_weight: torch.Tensor | None = None,
    reduction: Reduction = "mean",
    return_terms: bool = False,
    network: nn.Module | None = None,
) -> torch.Tensor | tuple[torch.Tensor, RelationalTerms]:
    """Relational loss of TEST against REFERENCE from the nine distortion maps; lower is better.

    Convention:
        ``u = 2·(F(test, reference) − 0.5)`` per attribute and pixel; per sample
        ``L = Σ_k w_k · E_s[(u_k − τ_k)²] / Σ_k w_k``. With zero targets ``L ≥ 0`` and
        ``L(x, x) = 0`` exactly.

    Arguments:
        test: (N, 3, H, W) float in [0, 1]; gradients flow to it.
        reference: (N, 3, H, W) float in [0, 1], same shape.
        weights: per-attribute weights ≥ 0 (default 1 each): a {name: weight} dict (missing
            names keep 1; set 0 to ignore an attribute, e.g. ``{"brightness": 0, ...}`` to keep
            the look and fix only noise), 9 values, or a (N, 9) tensor.
        targets: per-attribute desired signed change of the test relative to the reference,
            in map units (−1 … 1; default 0 = "match the reference"): e.g.
            ``{"brightness": 0.2}`` asks for a test somewhat brighter than the reference.
        spatial_weight: where the difference matters, ≥ 0: (H, W), (N, H, W), (N, 1, H, W) or
            (N, 9, H, W) (one weight map per attribute). Default: uniform.
        reduction: ``"mean"`` / ``"sum"`` over the batch → (), or ``"none"`` → (N,).
        return_terms: also return the :class:`RelationalTerms` (signed changes, per-attribute
            penalties, maps).
        network: a map network ``(test, reference) → (N, 9, H, W)`` in [0, 1], or a whole
            relational model (its map network is used). Default: the shipped one, frozen, on
            the test's device.

    Returns:
        The loss (shape per ``reduction``), or ``(loss, terms)`` with ``return_terms``.

    Raises:
        InvalidInputError: non-tensor, wrong shape/dtype, NaN/inf or values outside [0, 1];
            bad weights, targets, spatial weight or reduction.
        ShapeMismatchError: test and reference (or the spatial weight) differ in shape.

    Example:
        >>> import torch
        >>> reference = torch.rand(1, 3, 64, 64)
        >>> darker = reference * 0.7
        >>> loss, terms = relational_loss(darker, reference, return_terms=True)
        >>> bool(loss > 0), bool(terms.signed[0, 0] < 0)  # brightness: the test is darker
        (True, True)
    """
    check_tensor_pair(test, reference, name="relational_loss", channels=(3,))
    if reduction not in ("mean", "sum", "none"):
        raise InvalidInputError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    w, total, tau = _weights_and_targets(weights, targets, test)
    spatial = _spatial(spatial_weight, test)

    maps = _maps(network, test, reference)
    signed_map = 2.0 * (maps - NEUTRAL)  # (N, 9, H, W)
    squared = (signed_map - tau[..., None, None]).square()
    if spatial is None:
        per_attribute = squared.mean(dim=(-2, -1))
        signed = signed_map.mean(dim=(-2, -1))
    else:
        norm = spatial.sum(dim=(-2, -1))  # (N|1, 1|9)
        per_attribute = (squared * spatial).sum(dim=(-2, -1)) / norm
        signed = (signed_map * spatial).sum(dim=(-2, -1)) / norm
    penalty = per_attribute * (w / total)
    per_sample = penalty.sum(dim=1)
    loss = per_sample if reduction == "none" else getattr(per_sample, reduction)()
    if return_terms:
        return loss, RelationalTerms(signed, penalty, maps)
    return loss


class RelationalLoss(nn.Module):
    """Module form of :func:`relational_loss` (stores the options; ``forward(test, reference)``).

    Arguments:
        weights, targets, reduction: as in :func:`relational_loss`.
        network: a map network or relational model; default the shipped one. It is kept frozen
            (no gradient to its weights) and moves with the module (``.to(device)``).

    Shapes:
        test, reference: (N, 3, H, W) in [0, 1]; spatial_weight as in :func:`relational_loss`
        → loss () for ``"mean"``/``"sum"``, (N,) for ``"none"``.

    Example:
        >>> import torch
        >>> criterion = RelationalLoss(weights={"noise": 1.0, "brightness": 0.0})
        >>> x = torch.rand(2, 3, 32, 32)
        >>> float(criterion(x, x))
        0.0
    """

    def __init__(
        self,
        *,
        weights: AttributeValues | None = None,
        targets: AttributeValues | None = None,
        reduction: Reduction = "mean",
        network: nn.Module | None = None,
    ) -> None:
        super().__init__()
        if network is None:
            network = load_map_network()
        self.network: nn.Module = getattr(network, "maps_net", network)
        self.network.eval()
        for parameter in self.network.parameters():
            parameter.requires_grad_(False)
        self.weights = weights
        self.targets = targets
        self.reduction: Reduction = reduction

    def train(self, mode: bool = True) -> RelationalLoss:
        """Only this module's flag changes: the map network always stays in eval mode."""
        self.training = mode
        return self

    def forward(
        self,
        test: torch.Tensor,
        reference: torch.Tensor,
        spatial_weight: torch.Tensor | None = None,
    ) -> torch.Tensor:
        loss, _ = self.terms(test, reference, spatial_weight)
        return loss

    def terms(
        self,
        test: torch.Tensor,
        reference: torch.Tensor,
        spatial_weight: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, RelationalTerms]:
        """The loss and its :class:`RelationalTerms`."""
        return relational_loss(
            test,
            reference,
            weights=self.weights,
            targets=self.targets,
            spatial_weight=spatial_weight,
            reduction=self.reduction,
            return_terms=True,
            network=self.network,
        )


__all__ = [
    "AttributeValues",
    "RelationalLoss",
    "RelationalTerms",
    "attribute_vector",
    "load_map_network",
    "relational_loss",
    "shipped_map_network",
]
