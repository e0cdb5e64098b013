"""The one scorer catalogue (core, timm style): every metric and model that scores images, by name.

One table of :class:`ScorerEntry` — name, kind FR/NR, its :class:`MetricInfo` and the factory that
builds it — and the one name rule: a name is looked up by :func:`name_key` (case and ``-``/``_``
ignored, so ``ms-ssim`` = ``ms_ssim`` and ``hirqa_s`` = ``hirqa-s``) and printed as registered
(:func:`canonical_name`: metrics with ``_``, as Python names; models keep their published names
with ``-``).

The registries above push their entries in (:func:`register`): ``reliqa.metrics``
(``register_metric``) and ``reliqa.models`` (``register_model``); this module imports nothing of
reliqa above the core. ``reliqa/__init__.py`` names those two packages (:func:`provided_by`), and
the first look-up of the whole table imports them, so the table is full whoever asks first.

Every tool reads kind and direction from here: ``reliqa metric``, ``reliqa metrics``,
``reliqa models``, ``reliqa batch``, ``reliqa bench``, the batch report, the viewer and
``reliqa gmc`` (:func:`higher_is_better`, :func:`column_higher_is_better`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from reliqa.exceptions import UnknownNameError

if TYPE_CHECKING:
    import torch

Source = Literal["metric", "model"]


@dataclass(frozen=True)
class MetricInfo:
    """What a scorer (metric or model) is.

    Attributes:
        name: registry name, e.g. ``"ssim"`` (official definition) or ``"ssim_rgb"`` (a variant).
        kind: ``"FR"`` (needs a reference) or ``"NR"`` (image alone).
        higher_is_better: direction of the score.
        score_range: (low, high) bounds of the score; ``float("inf")`` where unbounded.
        differentiable: whether gradients flow to the test image.
        description: one line, including the colour handling (luminance/RGB) and scales.
        reference: where the definition comes from (paper / official implementation).
    """

    name: str
    kind: Literal["FR", "NR"]
    higher_is_better: bool
    score_range: tuple[float, float]
    differentiable: bool
    description: str
    reference: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["score_range"] = [None if abs(v) == float("inf") else v for v in self.score_range]
        return data


@dataclass(frozen=True)
class ScorerEntry:
    """One scorer of the catalogue.

    Attributes:
        info: its metadata (name, kind, direction, range, …); no weights are loaded to read it.
        factory: ``factory(device=torch.device, **options)`` → the scorer as a module
            (``forward(test, reference=None) -> (N,)``) on ``device`` in eval mode.
        source: which registry pushed it: ``"metric"`` or ``"model"``.
        spec: what that registry keeps about it (a :class:`reliqa.models.ModelEntry` for a model).
    """

    info: MetricInfo
    factory: Callable[..., Any]
    source: Source
    spec: object = None

    @property
    def name(self) -> str:
        return self.info.name

    @property
    def kind(self) -> Literal["FR", "NR"]:
        return self.info.kind


_ENTRIES: dict[str, ScorerEntry] = {}  # name_key(name) -> entry
_PROVIDERS: list[str] = []  # packages whose import registers their scorers
_filled = False


def name_key(name: str) -> str:
    """The spelling-free key of a metric or model name: ``"MS-SSIM"``, ``"ms_ssim"`` and
    ``"ms-ssim"`` are one name (lower case, ``-`` read as ``_``)."""
    return name.strip().lower().replace("-", "_")


def provided_by(*packages: str) -> None:
    """Name the packages that register scorers on import (``reliqa/__init__.py``: ``reliqa.metrics``,
    ``reliqa.models``); the first look-up of the whole table imports them."""
    global _filled
    _PROVIDERS.extend(package for package in packages if package not in _PROVIDERS)
    _filled = False


def _fill() -> None:
    global _filled
    if not _filled:
        _filled = True  # before importing: the providers' own look-ups must not recurse
        for package in _PROVIDERS:
            importlib.import_module(package)


def register(info: MetricInfo, factory: Callable[..., Any], *, source: Source, spec: object = None) -> ScorerEntry:
    """Add a scorer under ``info.name`` (a name, in any spelling, registers once).

    Raises:
        ValueError: the name (or another spelling of it) is registered already.
    """
    key = name_key(info.name)
    if key in _ENTRIES:
        raise ValueError(f"{source} {info.name!r} registered twice (as {_ENTRIES[key].source} "
                         f"{_ENTRIES[key].name!r})")
    entry = ScorerEntry(info, factory, source, spec)
    _ENTRIES[key] = entry
    return entry


def find(name: str, *, source: Source | None = None) -> ScorerEntry | None:
    """The entry called ``name`` (either spelling), only among ``source``'s if given; else None."""
    if source is None:
        _fill()
    entry = _ENTRIES.get(name_key(name))
    return entry if entry is not None and source in (None, entry.source) else None


def entries(*, source: Source | None = None) -> list[ScorerEntry]:
    """Every entry (only ``source``'s if given): metrics first, then models, each sorted by name."""
    if source is None:
        _fill()
    chosen = [entry for entry in _ENTRIES.values() if source in (None, entry.source)]
    return sorted(chosen, key=lambda entry: (entry.source != "metric", entry.name))


def canonical_name(name: str) -> str:
    """The catalogue's spelling of ``name`` (``"MS-SSIM"`` → ``"ms_ssim"``, ``"hirqa_s"`` →
    ``"hirqa-s"``); an unknown name comes back unchanged (looking it up raises)."""
    entry = find(name)
    return name if entry is None else entry.name


def list_scorers() -> list[MetricInfo]:
    """Every metric and model that scores images, with its metadata; no weights are loaded.

    Metrics come first (sorted), then models (sorted); a name is never both.
    """
    return [entry.info for entry in entries()]


def list_models() -> list[MetricInfo]:
    """The catalogue entries of reliqa's models, sorted (``reliqa.list_models``: the same kind of
    entry as ``reliqa.list_metrics``); no weights are loaded. The registry's own entries (builder,
    weights file) are :func:`reliqa.models.list_models`."""
    _fill()
    return [entry.info for entry in entries(source="model")]


def get(name: str) -> ScorerEntry:
    """The entry of metric or model ``name``.

    Raises:
        UnknownNameError: no such metric or model (the message lists both).
    """
    entry = find(name)
    if entry is not None:
        return entry
    metric_names = ", ".join(e.name for e in entries(source="metric"))
    model_names = ", ".join(e.name for e in entries(source="model")) or "none yet"
    raise UnknownNameError(
        f"unknown metric or model {name!r}; metrics: {metric_names}; models: {model_names}"
    )


def scorer_info(name: str) -> MetricInfo:
    """The catalogue entry of metric or model ``name`` (no weights loaded).

    Raises:
        UnknownNameError: no such metric or model (the message lists both).
    """
    return get(name).info


def higher_is_better(name: str) -> bool:
    """Direction of scorer ``name``'s values — the one place every tool asks (bench, batch
    report, viewer, ``reliqa gmc --scorer``); unknown names raise :class:`UnknownNameError`."""
    return scorer_info(name).higher_is_better


def column_higher_is_better(column: str) -> bool:
    """Direction of a score column of a results CSV (``reliqa batch`` names its columns after
    the scorers): the catalogue's direction when ``column`` is a scorer name, else True (a
    prediction column is taken as higher = better). ``reliqa gmc``, the viewer's GMC panel
    and the batch report use this rule, so one CSV gives one sign everywhere."""
    entry = find(column)
    return True if entry is None else entry.info.higher_is_better


def create_scorer(name: str, *, device: str | torch.device | None = None, **options: Any) -> Any:
    """Any scorer of the catalogue by name (``reliqa.create_metric``): a classical metric with
    its ``options`` (the same numbers as ``reliqa.metrics.<name>``), or a model with its shipped
    weights, as a :class:`reliqa.metrics.Metric` module on ``device`` (default cpu) in eval mode;
    its ``info`` is its catalogue entry. Either spelling of a name is accepted.

    Raises:
        UnknownNameError: neither a metric nor a model (the message lists both).
        DeviceError: ``device`` does not exist on this machine.
        InvalidInputError: options given for a model (models take none), or bad options.
    """
    from reliqa.checks import resolve_device  # torch: not on `import reliqa`

    entry = get(name)
    return entry.factory(device=resolve_device(device), **options)


__all__ = [
    "MetricInfo",
    "ScorerEntry",
    "canonical_name",
    "column_higher_is_better",
    "create_scorer",
    "entries",
    "find",
    "get",
    "higher_is_better",
    "list_models",
    "list_scorers",
    "name_key",
    "provided_by",
    "register",
    "scorer_info",
]
