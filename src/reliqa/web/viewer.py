"""What the viewer computes, without the web layer: :class:`Viewer` (compare, score, GMC of a
results file), the input rules it applies (:class:`Limits`, :func:`check_image_file`,
:func:`resolve_under_root`) and the pictures it sends (:func:`image_data_url`,
:func:`map_data_urls`). :mod:`reliqa.web.app` puts FastAPI routes in front of it (docs/web.md).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from reliqa.attributes import ATTRIBUTE_COLOURS, ATTRIBUTE_DIRECTIONS, ATTRIBUTES
from reliqa.exceptions import ReliqaError, UnknownNameError, WeightsError
from reliqa.io import list_images, load_image, to_uint8_array
from reliqa.reports.html import image_data_uri
from reliqa.reports.maps import attribute_strengths, dominant_attributes

ACCEPTED_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "TIFF", "WEBP", "GIF", "PPM", "JPEG2000")
"""Pillow formats the viewer accepts; Pillow is told to try only these decoders."""

DEFAULT_MAX_UPLOAD_BYTES = 25 * 1024 * 1024
DEFAULT_MAX_REQUEST_BYTES = 100 * 1024 * 1024
DEFAULT_MAX_PIXELS = 6000 * 6000
MAX_TEST_IMAGES = 12
"""Most test images (candidates) in one request."""

DISPLAY_SIDE = 512
"""Longer side of the images and maps sent to the page (scores use full resolution)."""

# The viewer scores every pair with this choice of the catalogue's full-reference metrics (a
# pair waits for all of them, so not every variant; issue 17 added the weight-free HaarPSI,
# MDSI, VSI, SR-SIM and DSS); names, kinds and directions come from reliqa.catalogue.
FULL_REFERENCE_METRICS: tuple[str, ...] = ("psnr", "ssim", "gmsd", "haarpsi", "mdsi", "vsi", "srsim", "dss")
RELATIONAL = "relational"


def no_reference_scorers() -> list[str]:
    """Every no-reference scorer of the catalogue (kind "NR"), in its order."""
    from reliqa.catalogue import list_scorers

    return [info.name for info in list_scorers() if info.kind == "NR"]


class ApiError(Exception):
    """A client error with its HTTP status; answered as ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


# ----------------------------------------------------------------------------------- files


def resolve_under_root(root: Path, relative: str) -> Path:
    """The file ``relative`` names inside ``root``, or an :class:`ApiError`.

    Refuses absolute paths, NUL bytes, and anything whose resolved path (symlinks followed)
    is not inside the resolved root — ``..`` and symlinks out of the root included.
    """
    if not relative or "\0" in relative:
        raise ApiError(400, "path: give a file path relative to the served folder")
    candidate = Path(relative)
    if candidate.is_absolute() or candidate.drive:
        raise ApiError(403, f"path {relative!r}: absolute paths are not allowed")
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ApiError(403, f"path {relative!r}: outside the served folder")
    if not resolved.is_file():
        raise ApiError(404, f"path {relative!r}: no such file in the served folder")
    return resolved


def check_image_file(path: Path, name: str, limits: Limits) -> str:
    """Pillow format of an image file, after checking its content type and pixel count."""
    try:
        with Image.open(path, formats=ACCEPTED_FORMATS) as image:
            pixels = image.width * image.height
            image_format = image.format or "?"
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(
            400, f"{name}: not an image of an accepted type ({', '.join(ACCEPTED_FORMATS)})"
        ) from None
    if pixels > limits.max_pixels:
        raise ApiError(
            413, f"{name}: {pixels:,} pixels, more than the limit of {limits.max_pixels:,}"
        )
    return image_format


# ----------------------------------------------------------------------------------- encoding


def _display(image: torch.Tensor) -> torch.Tensor:
    """(1, C, H, W) → (1, C, h, w) with max(h, w) ≤ DISPLAY_SIDE (area average)."""
    height, width = image.shape[-2:]
    scale = min(1.0, DISPLAY_SIDE / max(height, width))
    if scale == 1.0:
        return image
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(image, size=size, mode="area")


def image_data_url(image: torch.Tensor) -> str:
    """(1, 3, H, W) in [0, 1] → a JPEG data URL at display size."""
    return image_data_uri(to_uint8_array(_display(image)), quality=90)


def map_data_urls(maps: torch.Tensor) -> dict[str, str]:
    """(9, H, W) or (1, 9, H, W) maps → one 8-bit grey PNG data URL per attribute (value·255).

    The page colours them (red = more, blue = less, alpha = intensity) in a canvas.
    """
    maps = maps.reshape(1, len(ATTRIBUTES), *maps.shape[-2:]).float().cpu().clamp(0, 1)
    shown = _display(maps)[0].mul(255).round().byte().numpy()
    return {name: image_data_uri(shown[k], image_format="PNG") for k, name in enumerate(ATTRIBUTES)}


def _as_float(value: Any) -> float:
    return float(value.reshape(-1)[0]) if isinstance(value, torch.Tensor) else float(value)


def _finite_or_none(value: float) -> float | None:
    return value if np.isfinite(value) else None


def _json_score(name: str, value: float, notes: list[str]) -> float | None:
    """A score for JSON, which has no infinity or NaN: those travel as null, as in the CLI's
    ``--json``, with a note saying why (e.g. PSNR of identical images is +infinite)."""
    if np.isfinite(value):
        return value
    if np.isnan(value):
        notes.append(f"{name}: not a number")
    else:
        notes.append(f"{name}: {'+' if value > 0 else '-'}infinite")
    return None


# ----------------------------------------------------------------------------------- service


class Viewer:
    """What the routes call: loads scorers on first use, one inference at a time."""

    def __init__(self, root: Path | None, limits: Limits, device: str) -> None:
        self.root = root.resolve() if root is not None else None
        self.limits = limits
        self.device = device
        self._lock = threading.Lock()
        self._scorers: dict[str, Any] = {}
        self._unavailable: dict[str, str] = {}

    def scorer(self, name: str) -> Any | None:
        """The scorer ``name`` (reliqa.evaluation.scorers), or None when it cannot be built."""
        if name in self._scorers:
            return self._scorers[name]
        if name in self._unavailable:
            return None
        from reliqa.evaluation.scorers import resolve_scorer

        try:
            self._scorers[name] = resolve_scorer(name, device=self.device)
        except (UnknownNameError, WeightsError) as error:
            self._unavailable[name] = str(error)
            return None
        return self._scorers[name]

    def relational_available(self) -> bool:
        """Whether the shipped relational model (``reliqa.compare``) can be loaded."""
        if RELATIONAL not in self._unavailable:
            from reliqa.models.relational_api import relational_model

            try:
                relational_model(self.device)
            except (UnknownNameError, WeightsError) as error:
                self._unavailable[RELATIONAL] = str(error)
        return RELATIONAL not in self._unavailable

    def higher_is_better(self, name: str) -> bool:
        """Direction of a score, from the one scorer catalogue (reliqa.catalogue)."""
        from reliqa.catalogue import higher_is_better

        return higher_is_better(name)

    def info(self) -> dict[str, Any]:
        return {
            "attributes": list(ATTRIBUTES),
            "directions": {name: list(pair) for name, pair in ATTRIBUTE_DIRECTIONS.items()},
            "colours": dict(ATTRIBUTE_COLOURS),
            "full_reference": [n for n in FULL_REFERENCE_METRICS if self.scorer(n) is not None],
            "no_reference": [n for n in no_reference_scorers() if self.scorer(n) is not None],
            "relational": self.relational_available(),
            "root": self.root is not None,
            "limits": {
                "max_upload_bytes": self.limits.max_upload_bytes,
                "max_request_bytes": self.limits.max_request_bytes,
                "max_pixels": self.limits.max_pixels,
                "max_test_images": MAX_TEST_IMAGES,
            },
        }

    def files(self) -> list[str]:
        if self.root is None:
            return []
        names = []
        for path in list_images(self.root, recursive=True):
            resolved = path.resolve()
            if resolved.is_relative_to(self.root) and resolved.is_file():
                names.append(path.relative_to(self.root).as_posix())
        return names

    def root_file(self, relative: str) -> Path:
        if self.root is None:
            raise ApiError(404, "no folder is served (start with reliqa serve --root DIR)")
        return resolve_under_root(self.root, relative)

    def compare(self, tests: Sequence[tuple[str, Path]], reference: tuple[str, Path]) -> dict[str, Any]:
        """Score each test image against the reference (test first, reference second).

        A test image that cannot be read gets an ``error`` entry; the others are still scored.
        """
        ref_name, ref_path = reference
        ref_image = self._load(ref_path, ref_name)
        relational = self.relational_available()
        metrics = {n: s for n in FULL_REFERENCE_METRICS if (s := self.scorer(n)) is not None}
        results: list[dict[str, Any]] = []
        for name, path in tests:
            try:
                test_image = self._load(path, name)
            except ApiError as error:
                results.append({"name": name, "image": None, "scores": {}, "error": error.message})
                continue
            entry: dict[str, Any] = {"name": name, "image": image_data_url(test_image), "scores": {}}
            if test_image.shape != ref_image.shape:
                entry["error"] = (
                    f"{name}: {test_image.shape[-1]}x{test_image.shape[-2]} differs from the "
                    f"reference's {ref_image.shape[-1]}x{ref_image.shape[-2]}"
                )
                results.append(entry)
                continue
            results.append(self._score_pair(entry, test_image, ref_image, metrics, relational))
        ranking_by = RELATIONAL if relational else next(iter(metrics), None)
        ranking = self._ranking(results, ranking_by)
        # best/worst: scored candidates other than the reference itself
        scored = [name for name in ranking if any(
            e["name"] == name and not e.get("identical") and ranking_by is not None
            and e["scores"].get(ranking_by) is not None
            for e in results
        )]
        return {
            "reference": {"name": ref_name, "image": image_data_url(ref_image),
                          "width": ref_image.shape[-1], "height": ref_image.shape[-2]},
            "results": results,
            "higher_is_better": {
                name: self.higher_is_better(name)
                for name in [*metrics, *([RELATIONAL] if relational else [])]
            },
            "ranking_by": ranking_by,
            "ranking": ranking,
            # the page opens on the best candidate and offers the worst next to it
            "best": scored[0] if scored else None,
            "worst": scored[-1] if scored else None,
        }

    def _score_pair(
        self,
        entry: dict[str, Any],
        test_image: torch.Tensor,
        ref_image: torch.Tensor,
        metrics: dict[str, Any],
        relational: bool,
    ) -> dict[str, Any]:
        """Fill ``entry`` with one test image's scores (and maps) against the reference; a
        scorer that fails adds to its ``error`` instead of stopping the others."""
        problems: list[str] = []
        notes: list[str] = []
        # the reference itself among the candidates: ranked, but never opened on
        entry["identical"] = bool(torch.equal(test_image, ref_image))
        if entry["identical"]:
            notes.append("identical to the reference")
        with self._lock, torch.inference_mode():
            for metric_name, metric in metrics.items():
                try:
                    score = _as_float(metric(test_image, ref_image))
                except ReliqaError as error:  # e.g. an image too small for SSIM's window
                    problems.append(str(error))
                else:
                    entry["scores"][metric_name] = _json_score(metric_name, score, notes)
            if relational:
                from reliqa import compare

                try:
                    outcome = compare(test_image, ref_image, device=self.device)
                except ReliqaError as error:
                    problems.append(str(error))
                else:
                    entry["scores"][RELATIONAL] = _json_score(
                        RELATIONAL, _as_float(outcome.score), notes
                    )
                    entry["maps"] = map_data_urls(outcome.maps)
                    entry["summary"] = outcome.to_dict()["attributes"]
                    strengths = attribute_strengths(outcome.maps)
                    entry["strength"] = strengths
                    entry["dominant"] = dominant_attributes(strengths)
        if problems:
            entry["error"] = "; ".join(problems)
        if notes:
            entry["notes"] = notes
        return entry

    def _ranking(self, results: Sequence[dict[str, Any]], by: str | None) -> list[str]:
        """Candidate names, best first, by ``by`` in its own direction; failures last.

        By the relational score this is :func:`reliqa.rank`'s order (a stable sort of the same
        scores), without running the model a second time.
        """
        if by is None:
            return [entry["name"] for entry in results]
        higher_is_better = self.higher_is_better(by)
        scored = [e for e in results if e["scores"].get(by) is not None]
        scored.sort(key=lambda e: float(e["scores"][by]), reverse=higher_is_better)
        return [e["name"] for e in scored] + [e["name"] for e in results if e not in scored]

    def score(self, images: Sequence[tuple[str, Path]]) -> dict[str, Any]:
        scorers = {n: s for n in no_reference_scorers() if (s := self.scorer(n)) is not None}
        results: list[dict[str, Any]] = []
        for name, path in images:
            try:
                image = self._load(path, name)
            except ApiError as error:  # one bad upload must not lose the other results
                results.append({"name": name, "image": None, "scores": {}, "errors": [error.message]})
                continue
            entry: dict[str, Any] = {"name": name, "image": image_data_url(image), "scores": {}}
            notes: list[str] = []
            with self._lock, torch.inference_mode():
                for scorer_name, scorer in scorers.items():
                    try:
                        score = _as_float(scorer(image))
                    except ReliqaError as error:
                        entry.setdefault("errors", []).append(str(error))
                    else:
                        entry["scores"][scorer_name] = _json_score(scorer_name, score, notes)
            if notes:
                entry["notes"] = notes
            results.append(entry)
        return {
            "scorers": list(scorers),
            # the table's headers say which way is better (NIQE: lower), from the catalogue
            "higher_is_better": {name: self.higher_is_better(name) for name in scorers},
            "results": results,
        }

    def gmc(
        self, table: tuple[str, Path], score_column: str, mos_column: str, std_column: str | None
    ) -> dict[str, Any]:
        """GMC surface (SRCC) of one score column of a results CSV against a MOS column.

        A column named after a lower-is-better scorer (e.g. ``niqe``) is negated first, so a
        high surface always means agreement with the MOS — the rule of ``reliqa gmc``
        (:func:`reliqa.catalogue.column_higher_is_better`).
        """
        from reliqa.catalogue import column_higher_is_better
        from reliqa.evaluation.correlation import read_score_columns
        from reliqa.surfaces.gmc import gmc

        name, path = table
        columns = [score_column, mos_column] + ([std_column] if std_column else [])
        lower_is_better = not column_higher_is_better(score_column)
        try:
            values = read_score_columns(path, columns)
            prediction = -values[score_column] if lower_is_better else values[score_column]
            std = values[std_column] if std_column else None
            result = gmc(prediction, values[mos_column], std, correlations=("SRCC",))
        except ReliqaError as error:
            raise ApiError(400, str(error).replace(str(path), name)) from None
        statistic = "SRCC" if "SRCC" in result.surfaces else next(iter(result.surfaces), None)
        if statistic is None:
            raise ApiError(400, "no GMC surface could be fitted: " + "; ".join(result.notes))
        surface = result.surfaces[statistic]
        return {
            "count": int(values[mos_column].size),
            "statistic": statistic,
            "negated": lower_is_better,
            "grid": {
                "qs": surface.qs.tolist(),
                "qd": surface.qd.tolist(),
                "values": [[_finite_or_none(float(v)) for v in row] for row in surface.values],
            },
            "average_height": {k: _finite_or_none(float(v)) for k, v in result.average_height.items()},
            "global": {k: _finite_or_none(float(v)) for k, v in result.global_.items()},
            "notes": list(result.notes),
        }

    def _load(self, path: Path, name: str) -> torch.Tensor:
        check_image_file(path, name, self.limits)
        try:
            return load_image(path, max_pixels=self.limits.max_pixels).to(self.device)
        except ReliqaError as error:
            raise ApiError(400, str(error).replace(str(path), name)) from None
