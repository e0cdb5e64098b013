"""End to end in headless Chromium: load a reference and two test images, read the scores the
page shows, toggle a map channel and move the opacity slider.

Needs Debian's ``chromium`` (``make browser-deps`` installs it; CI runs that) and Playwright's
Python package, driven with ``executable_path`` — Playwright's own browser download is never
used. Set ``RELIQA_SCREENSHOT=path.png`` to save a screenshot of the viewer on a blurred test
image (docs/images/viewer.png); ``RELIQA_REPORT_SCREENSHOT=path.png`` of a batch report.
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

CHROMIUM = Path("/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,  # headless Chromium: 20-30 s per page test on the 2-core machine
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (run `make browser-deps`)"),
]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("browser images")
    reference = np.ascontiguousarray(data.astronaut()[60:252, 140:332])
    rng = np.random.default_rng(0)
    noisy = np.clip(reference.astype(np.int16) + rng.integers(-30, 31, reference.shape), 0, 255).astype(np.uint8)
    brighter = np.clip(reference.astype(np.int16) + 40, 0, 255).astype(np.uint8)
    blurred = np.asarray(Image.fromarray(reference).filter(ImageFilter.GaussianBlur(2.5)))
    paths = {}
    for name, array in (
        ("reference", reference), ("noisy", noisy), ("brighter", brighter), ("blurred", blurred),
        ("same", reference),  # the reference again, under another name
    ):
        paths[name] = folder / f"{name}.png"
        Image.fromarray(array).save(paths[name])
    return paths


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The viewer app served by uvicorn on a free loopback port, in a background thread."""
    import uvicorn

    from reliqa.web.app import create_app

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    instance = uvicorn.Server(uvicorn.Config(create_app(), log_level="warning"))
    thread = threading.Thread(target=instance.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}/"
    instance.should_exit = True
    thread.join(timeout=10)
    listener.close()


@pytest.fixture(scope="module")
def page(server: str) -> Iterator[object]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    with playwright_api.sync_playwright() as playwright, tempfile.TemporaryDirectory() as profile:
        # A fresh profile per run; Playwright passes it as --user-data-dir.
        context = playwright.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=LAUNCH_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        try:
            tab = context.new_page()
            tab.set_default_timeout(60_000)
            yield tab
        finally:
            context.close()


def _canvas_digest(page: object) -> str:
    pixels = page.evaluate(  # type: ignore[attr-defined]
        "() => { const c = document.querySelector('#overlay');"
        " return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }"
    )
    return hashlib.sha1(bytes(pixels)).hexdigest()


def _dominant(test: Path, reference: Path) -> list[str]:
    from reliqa import compare
    from reliqa.reports.maps import attribute_strengths, dominant_attributes

    return dominant_attributes(attribute_strengths(compare(test, reference).maps))


def test_compare_toggle_and_read_scores(page: object, server: str, images: dict[str, Path]) -> None:
    from reliqa.evaluation.scorers import resolve_scorer
    from reliqa.io import load_image

    page.goto(server)  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#status').textContent === 'ready'")  # type: ignore[attr-defined]
    info = page.evaluate("() => fetch('/api/info').then(r => r.json())")  # type: ignore[attr-defined]
    shown_scores = list(info["full_reference"]) + (["relational"] if info["relational"] else [])
    assert shown_scores, "the viewer has no full-reference scorer to show"

    page.set_input_files("#reference-file", str(images["reference"]))  # type: ignore[attr-defined]
    page.set_input_files("#test-files", [str(images["noisy"]), str(images["brighter"])])  # type: ignore[attr-defined]
    page.click("#compare-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#compare-results:not([hidden])")  # type: ignore[attr-defined]
    assert "error" not in (page.get_attribute("#status", "class") or "")  # type: ignore[attr-defined]

    # The scores the page shows are the Python API's.
    reference = load_image(images["reference"])
    for name in ("noisy", "brighter"):
        test = load_image(images[name])
        row = page.locator("#ranking tbody tr", has_text=f"{name}.png")  # type: ignore[attr-defined]
        for metric in shown_scores:
            cell = row.locator(f"td[data-metric='{metric}']")
            if metric == "relational":
                from reliqa import compare

                expected = float(compare(test, reference).score)
            else:
                expected = float(resolve_scorer(metric)(test, reference)[0])
            assert float(cell.get_attribute("data-value")) == pytest.approx(expected, rel=1e-4, abs=1e-6)
            assert cell.inner_text() != "—"

    if not info["relational"]:
        note = page.inner_text("#attribute-toggles")  # type: ignore[attr-defined]
        assert "relational model" in note
        return

    # The page opens on the best candidate (rank 1) with its dominant map channels on, strongest
    # first (issue 18; every channel was on before).
    selected = page.locator("#ranking tbody tr.selected")  # type: ignore[attr-defined]
    assert selected.count() == 1 and selected.locator("td").first.inner_text() == "1"
    best = selected.locator("td").nth(2).inner_text()
    expected_dominant = _dominant(images[best.removesuffix(".png")], images["reference"])
    channels = page.get_attribute("#overlay", "data-channels") or ""  # type: ignore[attr-defined]
    assert channels.split(",") == expected_dominant
    page.click("#show-worst")  # type: ignore[attr-defined]
    worst = page.locator("#ranking tbody tr.selected")  # type: ignore[attr-defined]
    assert worst.locator("td").first.inner_text() == "2"

    # Toggling a channel draws it over the image; opacity 0 shows the bare image again.
    page.locator("#ranking tbody tr", has_text="noisy.png").click()  # type: ignore[attr-defined]
    page.click("#toggles-none")  # type: ignore[attr-defined]
    bare = _canvas_digest(page)
    page.check("#toggle-noise")  # type: ignore[attr-defined]
    assert page.get_attribute("#overlay", "data-channels") == "noise"  # type: ignore[attr-defined]
    with_noise = _canvas_digest(page)
    assert with_noise != bare
    page.fill("#opacity", "0")  # type: ignore[attr-defined]
    page.dispatch_event("#opacity", "input")  # type: ignore[attr-defined]
    assert _canvas_digest(page) == bare
    page.fill("#opacity", "70")  # type: ignore[attr-defined]
    page.dispatch_event("#opacity", "input")  # type: ignore[attr-defined]
    assert _canvas_digest(page) == with_noise
    page.uncheck("#toggle-noise")  # type: ignore[attr-defined]
    assert _canvas_digest(page) == bare


def test_gmc_heatmap_of_an_uploaded_csv(page: object, server: str, tmp_path: Path) -> None:
    from reliqa.surfaces.gmc import gmc

    rng = np.random.default_rng(1)
    mos = rng.uniform(0.0, 1.0, 50)
    score = mos + rng.normal(0.0, 0.15, 50)
    table = tmp_path / "results.csv"
    table.write_text("image,my_score,mos\n" + "".join(f"i{k}.png,{float(s)!r},{float(m)!r}\n" for k, (s, m) in enumerate(zip(score, mos))))
    page.goto(server)  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#status').textContent === 'ready'")  # type: ignore[attr-defined]
    page.set_input_files("#gmc-file", str(table))  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#gmc-mos').value === 'mos'")  # type: ignore[attr-defined]
    assert page.input_value("#gmc-score") == "my_score"  # type: ignore[attr-defined]
    page.click("#gmc-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#gmc-result:not([hidden])", timeout=120_000)  # type: ignore[attr-defined]
    expected = gmc(score, mos, correlations=("SRCC",)).average_height["SRCC"]
    assert f"SRCC {expected:.4f}" in page.inner_text("#gmc-caption")  # type: ignore[attr-defined]
    coloured = page.evaluate(  # type: ignore[attr-defined]
        "() => { const c = document.querySelector('#gmc-canvas');"
        " const d = c.getContext('2d').getImageData(60, 20, c.width - 80, c.height - 70).data;"
        " let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) n++; return n; }"
    )
    assert coloured > 1000
    # the heatmap has a colour bar (issue 11): drawn right of the grid, labelled
    assert page.get_attribute("#gmc-canvas", "data-colour-bar") == "SRCC"  # type: ignore[attr-defined]
    bar = page.evaluate(  # type: ignore[attr-defined]
        "() => { const c = document.querySelector('#gmc-canvas');"
        " const x = c.width - 90 + 20 + 8, ctx = c.getContext('2d');"
        " const top = ctx.getImageData(x, 22, 1, 1).data, bottom = ctx.getImageData(x, c.height - 52, 1, 1).data;"
        " return [Array.from(top), Array.from(bottom)]; }"
    )
    top, bottom = bar
    assert top[0] > top[2] and bottom[2] > bottom[0]  # red (+1) at the top, blue (−1) below


def _canvas_pixels(page: object) -> np.ndarray:
    size, pixels = page.evaluate(  # type: ignore[attr-defined]
        "() => { const c = document.querySelector('#overlay');"
        " return [[c.height, c.width], Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)]; }"
    )
    return np.array(pixels, dtype=np.int16).reshape(size[0], size[1], 4)[..., :3]


def test_blur_is_shown_as_blur_and_the_reference_is_not_opened_on(
    page: object, server: str, images: dict[str, Path]
) -> None:
    """Issue 18: with the reference among the candidates the page opened on it (no maps), and a
    blurred test was a red smear (compression and structure over the blue "blurrier")."""
    page.goto(server)  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#status').textContent === 'ready'")  # type: ignore[attr-defined]
    info = page.evaluate("() => fetch('/api/info').then(r => r.json())")  # type: ignore[attr-defined]
    if not info["relational"]:
        pytest.skip("the relational model is not available")
    page.set_input_files("#reference-file", str(images["reference"]))  # type: ignore[attr-defined]
    page.set_input_files("#test-files", [str(images["same"]), str(images["blurred"])])  # type: ignore[attr-defined]
    page.click("#compare-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#compare-results:not([hidden])")  # type: ignore[attr-defined]
    page.wait_for_selector("#legend li")  # type: ignore[attr-defined]

    # the identical candidate ranks first (score 0) but the page opens on the blurred one
    first = page.locator("#ranking tbody tr").first  # type: ignore[attr-defined]
    assert "same.png" in first.inner_text() and "identical to the reference" in first.inner_text()
    assert first.locator("td[data-metric='psnr']").inner_text() == "—"  # +inf: null and a note
    assert "psnr: +infinite" in first.inner_text()
    selected = page.locator("#ranking tbody tr.selected")  # type: ignore[attr-defined]
    assert "blurred.png" in selected.inner_text()

    # sharpness leads: first toggle, first legend line ("blurrier"), drawn in its own colour
    channels = (page.get_attribute("#overlay", "data-channels") or "").split(",")  # type: ignore[attr-defined]
    assert channels[0] == "sharpness" and len(channels) <= 3
    legend = page.locator("#legend li").first  # type: ignore[attr-defined]
    assert legend.get_attribute("data-attribute") == "sharpness" and "blurrier" in legend.inner_text()
    toggles = page.locator("#attribute-toggles input[type=checkbox]")  # type: ignore[attr-defined]
    assert toggles.first.get_attribute("value") == "sharpness"
    drawn = _canvas_pixels(page)
    page.click("#toggles-none")  # type: ignore[attr-defined]
    bare = _canvas_pixels(page)
    change = (drawn - bare).reshape(-1, 3).mean(axis=0)
    assert change[2] > 10 and change[2] > change[0] + 10, change  # blue (sharpness), not a red smear

    # with all nine on, every attribute keeps its own colour: the strongest at each pixel
    page.click("#toggles-all")  # type: ignore[attr-defined]
    everything = (_canvas_pixels(page) - bare).reshape(-1, 3).mean(axis=0)
    assert everything[2] > everything[0], everything
    if os.environ.get("RELIQA_SCREENSHOT"):
        page.click("#toggles-dominant")  # type: ignore[attr-defined]
        page.locator("#compare-section").screenshot(path=os.environ["RELIQA_SCREENSHOT"])  # type: ignore[attr-defined]


def test_no_reference_table_says_which_way_is_better(
    page: object, server: str, images: dict[str, Path]
) -> None:
    page.goto(server)  # type: ignore[attr-defined]
    page.wait_for_function("document.querySelector('#status').textContent === 'ready'")  # type: ignore[attr-defined]
    page.set_input_files("#nr-files", [str(images["reference"]), str(images["blurred"])])  # type: ignore[attr-defined]
    page.click("#score-button")  # type: ignore[attr-defined]
    page.wait_for_selector("#nr-table:not([hidden])")  # type: ignore[attr-defined]
    headers = page.locator("#nr-table th")  # type: ignore[attr-defined]
    titles = {headers.nth(k).inner_text(): headers.nth(k).get_attribute("title") for k in range(headers.count())}
    from reliqa.catalogue import higher_is_better

    scorers = page.evaluate("() => fetch('/api/info').then(r => r.json())")["no_reference"]  # type: ignore[attr-defined]
    assert scorers
    for name in scorers:
        better = higher_is_better(name)
        label = f"{name} {'↑' if better else '↓'}"
        assert titles.get(label) == ("higher = better" if better else "lower = better"), titles
    if "niqe" in scorers:
        assert titles["niqe ↓"] == "lower = better"


def test_batch_report_opens_offline_table_first(page: object, images: dict[str, Path], tmp_path: Path) -> None:
    """Issue 18: the batch report is one page (no linked pictures), the results table before the
    map pictures, worst pairs by the relational score; checked as a browser renders it."""
    from reliqa import batch
    from reliqa.reports.batch_report import write_batch_report

    items = batch.items_from_sources([], pairs=_pairs_csv(images, tmp_path))
    out = tmp_path / "scores.csv"
    batch.run_batch(items, ["psnr", "relational"], out)
    report = write_batch_report(out, tmp_path / "report")
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))  # type: ignore[attr-defined]
    page.goto(report.as_uri())  # type: ignore[attr-defined]
    page.wait_for_load_state("load")  # type: ignore[attr-defined]
    assert [url for url in requests if not url.startswith(("file:", "data:"))] == []
    assert [url for url in requests if url.startswith("file:")] == [report.as_uri()]
    broken = page.evaluate("() => Array.from(document.images).filter(i => !i.naturalWidth).length")  # type: ignore[attr-defined]
    assert broken == 0
    headings = page.locator("h2")  # type: ignore[attr-defined]
    titles = [headings.nth(k).inner_text() for k in range(headings.count())]
    assert titles.index("Results") < titles.index("Distortion maps of the worst pairs")
    first = page.locator("#results tbody tr").first.inner_text()  # type: ignore[attr-defined]
    assert "blurred.png" in first  # the lowest relational score, not the lowest PSNR (brighter)
    if os.environ.get("RELIQA_REPORT_SCREENSHOT"):
        page.set_viewport_size({"width": 1100, "height": 900})  # type: ignore[attr-defined]
        page.screenshot(path=os.environ["RELIQA_REPORT_SCREENSHOT"], full_page=True)  # type: ignore[attr-defined]


def _pairs_csv(images: dict[str, Path], folder: Path) -> Path:
    table = folder / "pairs.csv"
    rows = [f"{images['reference']},{images[name]}" for name in ("noisy", "brighter", "blurred")]
    table.write_text("reference,test\n" + "\n".join(rows) + "\n")
    return table
