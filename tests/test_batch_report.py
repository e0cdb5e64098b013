"""Issue 18 part B: the ``reliqa batch --report`` page scales with the number of pairs.

It used to store full-resolution float32 maps of every pair (53 MB for 12 small pairs), link
``maps/*.png`` although it is documented as one self-contained page, put a dozen large figures
before the results table and rank "worst" pairs by the first score column (PSNR) instead of the
relational score.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data
from typer.testing import CliRunner

from reliqa.cli import app

runner = CliRunner()


def _pairs(folder: Path) -> Path:
    """Six pairs: three blurred (PSNR high-ish, relational low) and three brightened (PSNR low)."""
    lines = ["reference,test"]
    for photo in ("astronaut", "coffee", "chelsea"):
        clean = np.ascontiguousarray(getattr(data, photo)()[:96, :128])
        Image.fromarray(clean).save(folder / f"{photo}.png")
        blurred = Image.fromarray(clean).filter(ImageFilter.GaussianBlur(2.5))
        blurred.save(folder / f"{photo}_blur.png")
        brighter = np.clip(clean.astype(np.int16) + 45, 0, 255).astype(np.uint8)
        Image.fromarray(brighter).save(folder / f"{photo}_bright.png")
        lines += [f"{photo}.png,{photo}_blur.png", f"{photo}.png,{photo}_bright.png"]
    table = folder / "pairs.csv"
    table.write_text("\n".join(lines) + "\n")
    return table


def test_report_on_pairs_is_one_small_page_table_first_worst_by_relational(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reliqa.models.relational_api import relational_model
    from reliqa.reports import batch_report

    try:
        relational_model()
    except Exception as error:  # noqa: BLE001 - weights absent: nothing to draw maps with
        pytest.skip(f"relational model unavailable: {error}")
    monkeypatch.setattr(batch_report, "MAX_MAP_PICTURES", 4)
    pairs = _pairs(tmp_path)
    report = tmp_path / "report"
    result = runner.invoke(app, [
        "batch", "--pairs", str(pairs), "--metrics", "psnr,relational",
        "--out", str(tmp_path / "scores.csv"), "--report", str(report), "--json",
    ])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["report"] == str(report / "index.html")

    # one file, no maps stored per pair, and small
    assert [path.name for path in report.iterdir()] == ["index.html"]
    page = (report / "index.html").read_text()
    assert len(page) < 400_000
    assert re.findall(r"""(?:src|href)\s*=\s*["'](?!data:)""", page) == []

    # the results table comes before the pictures
    assert page.index("<h2>Results</h2>") < page.index("<h2>Distortion maps")

    # worst = lowest relational score (not lowest PSNR): the blurred pairs lead
    import csv

    with open(tmp_path / "scores.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    by_relational = sorted(rows, key=lambda row: float(row["relational"]))
    by_psnr = sorted(rows, key=lambda row: float(row["psnr"]))
    assert by_relational[0]["image"] != by_psnr[0]["image"]  # the two rankings disagree here
    drawn = re.findall(r'alt="maps of ([^"]+)"', page)
    assert drawn == [row["image"] for row in by_relational[:4]]
    assert all("_blur" in name for name in drawn[:3])
    table = page[page.index('<table class="sortable" id="results"'):]
    first_row = table[table.index("<tbody>"): table.index("</tr>", table.index("<tbody>"))]
    assert by_relational[0]["image"] in first_row
