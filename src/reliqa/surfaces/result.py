"""The result of a GMC computation: :class:`GMCResult` (points, values, surfaces, heights).

Apart from :mod:`~reliqa.surfaces.gmc` so that the pictures (:mod:`~reliqa.surfaces.plot`)
can take a result without importing the computation that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reliqa.surfaces.fit import Surface

CORRELATIONS: tuple[str, ...] = ("PLCC", "SRCC", "KRCC")
"""The GMC correlations, in the order of every output."""

@dataclass(frozen=True)
class GMCResult:
    """GMC of one set of predictions.

    ``qs``, ``qd`` (K,) are the query points; ``values[name]`` (K,) the GMC correlation there
    (NaN at a degenerate point: see :attr:`degenerate`); ``surfaces[name]`` the fitted
    :class:`Surface`; ``average_height[name]`` its mean; ``global_`` the ordinary correlation
    over the whole set (SRCC with average ranks, KRCC τ-b, PLCC raw).
    """

    qs: np.ndarray
    qd: np.ndarray
    values: dict[str, np.ndarray]
    surfaces: dict[str, Surface]
    average_height: dict[str, float]
    global_: dict[str, float]
    score_range: tuple[float, float]
    bandwidth_multiplier: float = 1.0
    notes: list[str] = field(default_factory=list)

    @property
    def points(self) -> dict[str, np.ndarray]:
        """``{"Qs": (K,), "Qd": (K,), "PLCC": (K,), …}``."""
        return {"Qs": self.qs, "Qd": self.qd, **self.values}

    @property
    def degenerate(self) -> dict[str, np.ndarray]:
        """Per correlation, (K,) bool: True where it is undefined at that point (value NaN)."""
        return {name: np.isnan(values) for name, values in self.values.items()}

    def __repr__(self) -> str:
        """One short line (the arrays are pages long): points, global and average heights."""
        heights = ", ".join(f"{name} {value:.4g}" for name, value in self.average_height.items())
        global_ = ", ".join(f"{name} {value:.4g}" for name, value in self.global_.items())
        return (
            f"GMCResult({self.qs.size} points; global: {global_}; average height: {heights}; "
            f"score_range=({self.score_range[0]:.4g}, {self.score_range[1]:.4g}))"
        )

    def surface(self, name: str = "SRCC") -> Surface:
        """The fitted surface of one correlation (grid axes and (G, G) values)."""
        return self.surfaces[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"points": [{"Qs", "Qd", "PLCC", …}], "average_height": {…},
        "global": {…}, "degenerate_points": {…}}`` (NaN stays float NaN: JSON writers turn it
        into null)."""
        names = list(self.values)
        rows = [
            {
                "Qs": float(self.qs[k]),
                "Qd": float(self.qd[k]),
                **{n: float(self.values[n][k]) for n in names},
            }
            for k in range(self.qs.size)
        ]
        return {
            "points": rows,
            "average_height": dict(self.average_height),
            "global": dict(self.global_),
            "degenerate_points": {name: int(mask.sum()) for name, mask in self.degenerate.items()},
        }
