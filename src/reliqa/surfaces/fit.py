"""GMC surfaces: local-linear kernel regression through the values at the query points,
bandwidths by leave-one-out cross-validation, and the average height."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from reliqa.exceptions import InvalidInputError, ShapeMismatchError
from reliqa.surfaces.inputs import as_points

# --------------------------------------------------------------------------------------------
# Surface fitting and the public entry point
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface:
    """A correlation surface fitted on a regular grid.

    ``qs`` (G,) and ``qd`` (G,) are the grid axes; ``values`` is (G, G) indexed [qd, qs],
    clipped to [−1, 1]; ``bandwidth`` is the local-linear regression's (Qs, Qd) bandwidth.
    """

    qs: np.ndarray
    qd: np.ndarray
    values: np.ndarray
    bandwidth: tuple[float, float]

    @property
    def average_height(self) -> float:
        """Mean of the surface over the grid (the region the query points cover)."""
        return float(self.values.mean())


def local_linear(
    points: np.ndarray,
    values: np.ndarray,
    at: np.ndarray,
    bandwidth: Sequence[float] | np.ndarray,
    *,
    leave_one_out: bool = False,
) -> np.ndarray:
    """Local-linear kernel regression (Gaussian product kernel) of ``values`` (K,) observed at
    ``points`` (K, D), evaluated at ``at`` (E, D) → (E,).

    The estimator of statsmodels' ``KernelReg(reg_type='ll')`` (same weighted least squares,
    same pseudo-inverse), vectorised over evaluation points: statsmodels loops over them in
    Python, which made one cross-validated surface take seconds instead of milliseconds.
    ``leave_one_out=True`` (requires ``at is points``) drops each point from its own fit.
    """
    offsets = points[None, :, :] - at[:, None, :]  # (E, K, D)
    kernel = np.exp(-0.5 * np.sum((offsets / np.asarray(bandwidth)) ** 2, axis=2))  # (E, K)
    if leave_one_out:
        np.fill_diagonal(kernel, 0.0)
    design = np.concatenate([np.ones(offsets.shape[:2] + (1,)), offsets], axis=2)  # (E, K, D+1)
    weighted = design * kernel[:, :, None]
    gram = np.einsum("ekd,ekf->edf", weighted, design)
    moments = np.einsum("ekd,k->ed", weighted, values)
    with np.errstate(over="ignore", invalid="ignore"):  # no kernel mass at a point: NaN there
        return np.einsum("edf,ef->ed", np.linalg.pinv(gram), moments)[:, 0]


def cross_validated_bandwidth(points: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bandwidths (D,) minimising the leave-one-out squared error of :func:`local_linear`,
    by Nelder-Mead from the normal-reference rule 1.06·std·K^(−1/(4+D)) — statsmodels'
    ``bw='cv_ls'`` procedure."""
    from scipy import optimize

    start = 1.06 * points.std(axis=0) * points.shape[0] ** (-1.0 / (4 + points.shape[1]))

    def loss(bandwidth: np.ndarray) -> float:
        if np.any(np.abs(bandwidth) < 1e-12):  # the simplex may probe 0: no fit there
            return math.inf
        fitted = local_linear(points, values, points, np.abs(bandwidth), leave_one_out=True)
        error = float(np.mean((values - fitted) ** 2))
        return error if math.isfinite(error) else math.inf

    return np.abs(optimize.fmin(loss, start, maxiter=1000, maxfun=1000, disp=False))


def fit_surface(
    points: ArrayLike,
    values: ArrayLike,
    *,
    grid: int = 50,
    qs_range: Sequence[float] | None = None,
    qd_range: Sequence[float] | None = None,
) -> Surface:
    """Fit a surface through GMC values by local-linear kernel regression.

    Arguments:
        points: (K, 2) query points (Qs, Qd); rows whose value is NaN are left out.
        values: (K,) correlation at each point.
        grid: number of grid nodes per axis.
        qs_range, qd_range: grid extent (default: the points' extent).

    Gaussian product kernel, bandwidths chosen by least-squares leave-one-out cross-validation
    (:func:`cross_validated_bandwidth`, as statsmodels ``KernelReg(reg_type='ll', bw='cv_ls')``).
    """
    query = as_points(points)
    z = np.asarray(values, dtype=np.float64)
    if z.shape != (query.shape[0],):
        raise ShapeMismatchError(f"values: expected shape ({query.shape[0]},), got {z.shape}")
    usable = np.isfinite(z)
    if usable.sum() < 5:
        raise InvalidInputError(
            f"a surface needs at least 5 non-degenerate points, got {int(usable.sum())}"
        )
    qs_low, qs_high = qs_range if qs_range is not None else (query[:, 0].min(), query[:, 0].max())
    qd_low, qd_high = qd_range if qd_range is not None else (query[:, 1].min(), query[:, 1].max())
    qs_axis = np.linspace(qs_low, qs_high, grid)
    qd_axis = np.linspace(qd_low, qd_high, grid)
    bandwidth = cross_validated_bandwidth(query[usable], z[usable])
    mesh_qs, mesh_qd = np.meshgrid(qs_axis, qd_axis)
    fitted = local_linear(
        query[usable], z[usable], np.column_stack([mesh_qs.ravel(), mesh_qd.ravel()]), bandwidth
    )
    surface = np.clip(fitted.reshape(grid, grid), -1.0, 1.0)
    return Surface(qs_axis, qd_axis, surface, (float(bandwidth[0]), float(bandwidth[1])))
