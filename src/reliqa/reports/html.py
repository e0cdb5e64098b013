"""A small, generic writer of self-contained HTML pages.

Every text goes through :func:`html.escape`; every picture is embedded as a base64 data URI,
so the page opens from any folder, offline. Pictures are JPEG at quality 95 without chroma
subsampling: visually lossless for photos and map panels, and 3–5× smaller than PNG.
"""

from __future__ import annotations

import base64
import html
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reliqa.exceptions import InvalidInputError
from reliqa.io import to_uint8_array

PictureSource = np.ndarray | torch.Tensor | Image.Image

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; padding: 0 1.5rem; max-width: 1400px;
  color: #222; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 0.85rem; color: #555; max-width: 100%; }
figure img { display: block; max-width: 100%; height: auto; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; } p.note { color: #555; font-size: 0.9rem; }
"""


def image_data_uri(image: PictureSource, *, image_format: str = "JPEG", quality: int = 95) -> str:
    """A data URI of an image: (H, W[, C]) uint8 array, (3, H, W) / (1, 3, H, W) float tensor in
    [0, 1], or a PIL image. ``image_format`` "JPEG" (4:4:4, ``quality``) or "PNG" (keeps alpha)."""
    if isinstance(image, torch.Tensor):
        image = to_uint8_array(image)
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim not in (2, 3):
            raise InvalidInputError(
                f"picture: expected an (H, W) or (H, W, C) uint8 array, got {image.dtype} "
                f"{image.shape}"
            )
        image = Image.fromarray(image)
    if not isinstance(image, Image.Image):
        raise InvalidInputError(f"picture: cannot embed a {type(image).__name__}")
    if image_format not in ("JPEG", "PNG"):
        raise InvalidInputError(f"picture: format must be 'JPEG' or 'PNG', got {image_format!r}")
    buffer = io.BytesIO()
    if image_format == "JPEG":
        image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling=0)
    else:
        image.save(buffer, format="PNG")
    mime = "image/jpeg" if image_format == "JPEG" else "image/png"
    return f"data:{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@dataclass(frozen=True)
class Picture:
    """One picture of a row: the image, a caption under it, and an optional display width."""

    image: PictureSource
    caption: str = ""
    width: int | None = None


class ReportPage:
    """An HTML page built top to bottom.

    Example:
        >>> page = ReportPage("demo")
        >>> page.heading("Section").paragraph("Some <text>").table(["a"], [[1]])  # doctest: +ELLIPSIS
        <reliqa.reports.html.ReportPage object at ...>
        >>> "&lt;text&gt;" in page.html()
        True
    """

    def __init__(self, title: str, intro: str | None = None) -> None:
        self.title = title
        self._parts: list[str] = [f"<h1>{html.escape(title)}</h1>"]
        if intro:
            self.paragraph(intro)

    def heading(self, text: str, level: int = 2) -> ReportPage:
        """A section heading (h2 by default)."""
        level = min(max(level, 1), 6)
        self._parts.append(f"<h{level}>{html.escape(text)}</h{level}>")
        return self

    def paragraph(self, text: str, *, note: bool = False) -> ReportPage:
        """A paragraph of plain text (``note`` = smaller and grey)."""
        css = ' class="note"' if note else ""
        self._parts.append(f"<p{css}>{html.escape(text)}</p>")
        return self

    def pictures(self, items: Sequence[Picture]) -> ReportPage:
        """A row of pictures with captions (wraps on narrow screens)."""
        figures = []
        for item in items:
            width = f' width="{int(item.width)}"' if item.width else ""
            alt = html.escape(item.caption or "picture", quote=True)
            caption = f"<figcaption>{html.escape(item.caption)}</figcaption>" if item.caption else ""
            figures.append(
                f'<figure><img src="{image_data_uri(item.image)}" alt="{alt}"{width}>{caption}</figure>'
            )
        self._parts.append(f'<div class="row">{"".join(figures)}</div>')
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> ReportPage:
        """A table; floats are shown with 3 decimals."""

        def cell(value: object) -> str:
            text = f"{value:.3f}" if isinstance(value, float) else str(value)
            return html.escape(text)

        head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
        body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
        self._parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
        return self

    def html(self) -> str:
        """The whole page as a string."""
        body = "\n".join(self._parts)
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n"
        )

    def save(self, path: str | os.PathLike) -> Path:
        """Write the page (UTF-8), creating the folder; returns the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(self.html(), encoding="utf-8")
        return target


__all__ = ["Picture", "ReportPage", "image_data_uri"]
