"""Pictures of GMC surfaces: a heatmap PNG (matplotlib) and an interactive 3-D HTML (plotly).

Both take a :class:`reliqa.surfaces.result.GMCResult` and draw one panel per correlation:
the fitted surface over quality scale Qs (x) and quality difference Qd (y), the query points,
and the average height in the title. The HTML embeds plotly's JavaScript, so it opens offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from reliqa.exceptions import InvalidInputError

if TYPE_CHECKING:
    from reliqa.surfaces.result import GMCResult


def _surfaces_or_fail(result: GMCResult) -> list[str]:
    names = [name for name in result.values if name in result.surfaces]
    if not names:
        raise InvalidInputError(
            "no GMC surface to plot: every correlation was undefined at too many points"
        )
    return names


def plot_heatmap(result: GMCResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write the fitted surfaces as side-by-side heatmaps (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = _surfaces_or_fail(result)
    figure, axes = plt.subplots(
        1, len(names), figsize=(4.6 * len(names), 4.0), dpi=120, squeeze=False
    )
    for axis, name in zip(axes[0], names):
        surface = result.surfaces[name]
        image = axis.imshow(
            surface.values,
            origin="lower",
            aspect="auto",
            extent=(surface.qs[0], surface.qs[-1], surface.qd[0], surface.qd[-1]),
            cmap="viridis",
            vmin=min(0.0, float(surface.values.min())),
            vmax=1.0,
        )
        defined = ~result.degenerate[name]
        axis.scatter(
            result.qs[defined],
            result.qd[defined],
            s=6,
            c="white",
            edgecolors="black",
            linewidths=0.3,
        )
        axis.scatter(
            result.qs[~defined], result.qd[~defined], s=14, c="red", marker="x", linewidths=0.8
        )
        axis.set_xlabel("quality scale Qs (MOS)")
        axis.set_ylabel("quality difference Qd")
        axis.set_title(
            f"{name}-GMC, average height {result.average_height[name]:.3f}\n(global {name} {result.global_[name]:.3f})"
        )
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output)
    plt.close(figure)
    return output


def plot_surface_html(result: GMCResult, path: str | Path, *, title: str | None = None) -> Path:
    """Write the fitted surfaces as an interactive 3-D plotly page (JS inline) and return the path."""
    try:
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots
    except ImportError:
        raise InvalidInputError(
            "the HTML surface needs plotly: pip install 'reliqa[plots]'"
        ) from None

    names = _surfaces_or_fail(result)
    figure = make_subplots(
        rows=1,
        cols=len(names),
        specs=[[{"type": "scene"}] * len(names)],
        subplot_titles=[
            f"{name}-GMC (average height {result.average_height[name]:.3f})" for name in names
        ],
    )
    for column, name in enumerate(names, start=1):
        surface = result.surfaces[name]
        defined = ~result.degenerate[name]
        figure.add_trace(
            go.Surface(
                x=surface.qs,
                y=surface.qd,
                z=surface.values,
                colorscale="Viridis",
                cmin=0.0,
                cmax=1.0,
                showscale=column == len(names),
                name=name,
            ),
            row=1,
            col=column,
        )
        figure.add_trace(
            go.Scatter3d(
                x=result.qs[defined],
                y=result.qd[defined],
                z=result.values[name][defined],
                mode="markers",
                marker={"size": 2, "color": "black"},
                name=f"{name} at query points",
            ),
            row=1,
            col=column,
        )
    axes = {"xaxis_title": "Qs", "yaxis_title": "Qd", "zaxis_title": "correlation"}
    figure.update_scenes(**axes)
    figure.update_layout(
        title=title or "Granularity-Modulated Correlation",
        height=600,
        width=520 * len(names),
        showlegend=False,
    )
    output = Path(path)
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.write_html(output, include_plotlyjs=True, full_html=True)
    return output
