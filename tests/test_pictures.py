"""Issue 18 part B: map pictures (rows without gaps, strongest first) and report page margins."""

from __future__ import annotations

import numpy as np
import torch


def _blank_row_runs(picture: np.ndarray) -> list[int]:
    """Lengths of the runs of all-white rows strictly inside the picture."""
    blank = (picture >= 250).all(axis=(1, 2))
    runs, length = [], 0
    for value in blank:
        if value:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs  # a trailing run (the bottom margin) is not closed, so not counted


def test_maps_picture_has_no_large_gaps_between_rows() -> None:
    """Panels of a 3:2 image in three rows used to be separated by ~60 px of white."""
    from reliqa.reports.maps import render_maps

    image = torch.rand(3, 120, 180, generator=torch.Generator().manual_seed(0))
    maps = torch.full((9, 120, 180), 0.5)
    maps[:, 30:90, 40:140] = torch.linspace(0.1, 0.9, 9)[:, None, None]
    picture = render_maps(image, maps, title="nine panels")
    assert max(_blank_row_runs(picture), default=0) <= 16
    # the blank outer margin is trimmed too
    assert (picture[:3] >= 250).all() and not (picture[:12] >= 250).all()


def test_maps_picture_puts_the_strongest_attribute_first() -> None:
    from reliqa.reports.maps import attribute_strengths, dominant_attributes

    maps = torch.full((9, 32, 32), 0.5)
    maps[5] = 0.2  # sharpness: blurrier everywhere, intensity 0.6
    maps[8, :16] = 0.8  # structure: intensity 0.6 on half the image → 0.3
    maps[7, :4] = 0.9  # compression: 0.8 on an eighth → 0.1
    strengths = attribute_strengths(maps)
    assert abs(strengths["sharpness"] - 0.6) < 1e-6
    assert dominant_attributes(strengths) == ["sharpness", "structure"]
    assert dominant_attributes({name: 0.01 for name in strengths}) == []


def test_report_pages_have_side_margins() -> None:
    """The demo and tune pages touched the window's edges on narrow screens."""
    from reliqa.reports.html import ReportPage

    page = ReportPage("t").html()
    style = page[page.index("<style>"): page.index("</style>")]
    assert "padding: 0 1.5rem" in style
