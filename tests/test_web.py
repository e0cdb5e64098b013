"""The viewer's HTTP API (FastAPI TestClient): scores, limits, content types, path safety."""

from __future__ import annotations

import io
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from reliqa.evaluation.scorers import resolve_scorer
from reliqa.io import load_image
from reliqa.web.app import STATIC_DIR, create_app
from reliqa.web.viewer import Limits


def png_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims width × height pixels (a decompression bomb)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    reference = np.ascontiguousarray(data.astronaut()[100:196, 150:246])
    noisy = reference.astype(np.int16) + np.random.default_rng(0).integers(-25, 26, reference.shape)
    return reference, np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture()
def root(tmp_path: Path, pair: tuple[np.ndarray, np.ndarray]) -> Path:
    served = tmp_path / "served"
    (served / "sub dir").mkdir(parents=True)
    (served / "ref.png").write_bytes(png_bytes(pair[0]))
    (served / "sub dir" / "tëst 1.png").write_bytes(png_bytes(pair[1]))
    (served / "notes.png").write_text("this is not an image")
    secret = tmp_path / "secret.png"
    secret.write_bytes(png_bytes(pair[0]))
    (served / "link.png").symlink_to(secret)
    (served / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    return served


@pytest.fixture()
def client(root: Path) -> TestClient:
    return TestClient(create_app(root))


def test_page_and_assets_load_nothing_from_the_network(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "reliqa viewer" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    for path in STATIC_DIR.iterdir():
        text = path.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE), path.name
        assert "@import" not in text


def test_info_lists_attributes_and_limits(client: TestClient) -> None:
    info = client.get("/api/info").json()
    assert info["attributes"][0] == "brightness" and len(info["attributes"]) == 9
    assert info["root"] is True and info["limits"]["max_pixels"] == Limits().max_pixels


def test_no_reference_scorers_are_the_catalogues(client: TestClient) -> None:
    """The viewer keeps no name list of its own: every NR scorer of the catalogue that loads."""
    from reliqa.catalogue import list_scorers

    catalogue = [info.name for info in list_scorers() if info.kind == "NR"]
    assert {"hirqa", "hirqa-s", "niqe", "laplacian_var"} <= set(catalogue)
    assert client.get("/api/info").json()["no_reference"] == catalogue


def test_compare_scores_match_the_python_api(client: TestClient, pair: tuple[np.ndarray, np.ndarray]) -> None:
    reference, test = pair
    info = client.get("/api/info").json()
    response = client.post(
        "/api/compare",
        files=[("reference", ("ref.png", png_bytes(reference), "image/png")),
               ("tests", ("same.png", png_bytes(reference), "image/png")),
               ("tests", ("noisy.png", png_bytes(test), "image/png"))],
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    results = {entry["name"]: entry for entry in answer["results"]}
    expected_names = set(info["full_reference"]) | ({"relational"} if info["relational"] else set())
    assert set(results["noisy.png"]["scores"]) == expected_names
    for name in info["full_reference"]:
        expected = float(resolve_scorer(name)(load_image(test), load_image(reference))[0])
        assert results["noisy.png"]["scores"][name] == pytest.approx(expected, rel=1e-5)
    if answer["ranking_by"]:
        assert answer["ranking"][0] == "same.png"  # identical to the reference ranks first
    if info["relational"]:
        maps = results["noisy.png"]["maps"]
        assert list(maps) == info["attributes"] and maps["noise"].startswith("data:image/png;base64,")


def test_compare_from_the_served_folder_and_size_mismatch(client: TestClient, root: Path) -> None:
    Image.new("RGB", (40, 30)).save(root / "small.png")
    response = client.post(
        "/api/compare", data={"reference_path": "ref.png", "test_paths": ["sub dir/tëst 1.png", "small.png"]}
    )
    assert response.status_code == 200, response.text
    results = {entry["name"]: entry for entry in response.json()["results"]}
    assert "error" not in results["sub dir/tëst 1.png"]
    assert "differs from the reference" in results["small.png"]["error"]


def test_files_lists_images_inside_the_root_only(client: TestClient) -> None:
    files = client.get("/api/files").json()["files"]
    assert "ref.png" in files and "sub dir/tëst 1.png" in files
    assert "link.png" not in files and not any(name.startswith("linkdir") for name in files)


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("../secret.png", 403),
        ("sub dir/../../secret.png", 403),
        ("link.png", 403),  # symlink to a file outside the root
        ("linkdir/secret.png", 403),  # symlinked folder outside the root
        ("/etc/passwd", 403),
        ("missing.png", 404),
        ("", 400),
    ],
)
def test_no_path_outside_the_root_can_be_read(client: TestClient, root: Path, path: str, status: int) -> None:
    response = client.get("/api/file", params={"path": path})
    assert response.status_code == status
    assert "error" in response.json()
    compare = client.post("/api/compare", data={"reference_path": path, "test_paths": ["ref.png"]})
    assert compare.status_code == status


def test_served_files_are_images_by_content(client: TestClient) -> None:
    good = client.get("/api/file", params={"path": "sub dir/tëst 1.png"})
    assert good.status_code == 200 and good.headers["content-type"] == "image/png"
    fake = client.get("/api/file", params={"path": "notes.png"})
    assert fake.status_code == 400 and "not an image" in fake.json()["error"]


def test_static_route_cannot_escape(client: TestClient) -> None:
    assert client.get("/static/..%2Fapp.py").status_code in (403, 404)


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"%PDF-1.4 not an image", 400, "not an image"),
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', 400, "not an image"),
        (b"", 400, "empty"),
        (bomb_png(), 413, "pixels"),
    ],
)
def test_uploads_must_be_images(client: TestClient, pair: tuple[np.ndarray, np.ndarray], content: bytes, status: int, message: str) -> None:
    response = client.post(
        "/api/compare",
        files=[("tests", ("test.png", png_bytes(pair[1]), "image/png")),
               ("reference", ("upload.png", content, "image/png"))],
    )
    assert response.status_code == status and message in response.json()["error"]
    # a bad TEST upload is reported on its own row; the good one is still scored
    response = client.post(
        "/api/compare",
        files=[("tests", ("upload.png", content, "image/png")),
               ("tests", ("good.png", png_bytes(pair[1]), "image/png")),
               ("reference", ("ref.png", png_bytes(pair[0]), "image/png"))],
    )
    if status == 400 and message == "empty":
        return  # an empty upload is refused while the request is read
    assert response.status_code == 200, response.json()
    results = {entry["name"]: entry for entry in response.json()["results"]}
    assert message in results["upload.png"]["error"] and results["upload.png"]["image"] is None
    assert results["good.png"]["scores"] and "error" not in results["good.png"]
    assert response.json()["best"] == "good.png"


def test_no_reference_section_keeps_good_results_when_one_upload_is_bad(
    client: TestClient, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    """Issue 11: one bad upload used to lose every no-reference result."""
    response = client.post(
        "/api/score",
        files=[("images", ("good.png", png_bytes(pair[0]), "image/png")),
               ("images", ("bad.png", b"%PDF-1.4 not an image", "image/png"))],
    )
    assert response.status_code == 200
    results = {entry["name"]: entry for entry in response.json()["results"]}
    assert "not an image" in results["bad.png"]["errors"][0]
    assert results["good.png"]["scores"] or not response.json()["scorers"]


def test_upload_and_request_and_pixel_limits(tmp_path: Path, pair: tuple[np.ndarray, np.ndarray]) -> None:
    image = png_bytes(pair[0])
    files = [("reference", ("a.png", image, "image/png")), ("tests", ("b.png", image, "image/png"))]
    small_files = TestClient(create_app(limits=Limits(max_upload_bytes=len(image) - 1)))
    response = small_files.post("/api/compare", files=files)
    assert response.status_code == 413 and "upload limit" in response.json()["error"]
    small_requests = TestClient(create_app(limits=Limits(max_request_bytes=len(image))))
    response = small_requests.post("/api/compare", files=files)
    assert response.status_code == 413 and "request larger" in response.json()["error"]
    few_pixels = TestClient(create_app(limits=Limits(max_pixels=96 * 96 - 1)))
    response = few_pixels.post("/api/compare", files=files)
    assert response.status_code == 413 and "pixels" in response.json()["error"]


def test_no_root_means_no_files(pair: tuple[np.ndarray, np.ndarray]) -> None:
    client = TestClient(create_app())
    assert client.get("/api/files").json() == {"files": []}
    assert client.get("/api/file", params={"path": "x.png"}).status_code == 404


def test_no_reference_scores(client: TestClient, pair: tuple[np.ndarray, np.ndarray]) -> None:
    response = client.post("/api/score", files=[("images", ("a.png", png_bytes(pair[0]), "image/png"))])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["scorers"] == client.get("/api/info").json()["no_reference"]
    for name in answer["scorers"]:
        expected = float(resolve_scorer(name)(load_image(pair[0]))[0])
        value = answer["results"][0]["scores"].get(name)
        assert value is None or value == pytest.approx(expected, rel=1e-5)


def _results_csv(rows: int = 60) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    mos = rng.uniform(0.0, 1.0, rows)
    niqe_like = 10.0 - 5.0 * mos + rng.normal(0.0, 0.8, rows)  # lower = better, like NIQE
    lines = ["image,niqe,mos"] + [f"img{k}.png,{float(s)!r},{float(m)!r}" for k, (s, m) in enumerate(zip(niqe_like, mos))]
    return ("\n".join(lines) + "\n").encode(), niqe_like, mos


def test_gmc_of_an_uploaded_results_csv(client: TestClient) -> None:
    from reliqa.surfaces.gmc import gmc

    content, niqe_like, mos = _results_csv()
    response = client.post(
        "/api/gmc",
        files={"results": ("results.csv", content, "text/csv")},
        data={"score_column": "niqe", "mos_column": "mos"},
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["negated"] is True  # NIQE is lower-is-better: negated before correlating
    expected = gmc(-niqe_like, mos, correlations=("SRCC",))
    assert answer["average_height"]["SRCC"] == pytest.approx(expected.average_height["SRCC"], abs=1e-9)
    assert answer["average_height"]["SRCC"] > 0.5
    grid = answer["grid"]
    assert len(grid["values"]) == len(grid["qd"]) and len(grid["values"][0]) == len(grid["qs"])

    missing = client.post(
        "/api/gmc",
        files={"results": ("results.csv", content, "text/csv")},
        data={"score_column": "ssim", "mos_column": "mos"},
    )
    assert missing.status_code == 400 and "results.csv: no column 'ssim'" in missing.json()["error"]


def test_a_metric_refusing_an_image_is_a_note_not_a_failure(client: TestClient) -> None:
    tiny = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    response = client.post(
        "/api/compare",
        files=[("reference", ("a.png", png_bytes(tiny), "image/png")), ("tests", ("b.png", png_bytes(tiny), "image/png"))],
    )
    assert response.status_code == 200, response.text
    entry = response.json()["results"][0]
    if "psnr" in entry["scores"]:
        # identical images: JSON has no inf, so null and a note, as the CLI's --json (issue 18)
        assert entry["scores"]["psnr"] is None and "psnr: +infinite" in entry["notes"]
    assert entry["identical"] is True and response.json()["best"] is None
    if "ssim" in client.get("/api/info").json()["full_reference"]:
        assert "ssim" in entry["error"] and "ssim" not in entry["scores"]


def test_reference_among_candidates_is_ranked_but_not_opened_on(
    client: TestClient, pair: tuple[np.ndarray, np.ndarray]
) -> None:
    """Issue 18: the reference uploaded again as a candidate was "best" (score 0) and the page
    opened on it; each score says its direction; the maps' strongest attributes lead."""
    response = client.post(
        "/api/compare",
        files=[("tests", ("again.png", png_bytes(pair[0]), "image/png")),
               ("tests", ("noisy.png", png_bytes(pair[1]), "image/png")),
               ("reference", ("ref.png", png_bytes(pair[0]), "image/png"))],
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    results = {entry["name"]: entry for entry in answer["results"]}
    assert results["again.png"]["identical"] is True and results["noisy.png"]["identical"] is False
    assert "identical to the reference" in results["again.png"]["notes"]
    assert answer["best"] == answer["worst"] == "noisy.png"
    for name, better in answer["higher_is_better"].items():
        assert better == (name not in ("gmsd", "mdsi"))  # the lower-is-better metrics
    if client.get("/api/info").json()["relational"]:
        noisy = results["noisy.png"]
        assert set(noisy["strength"]) == set(client.get("/api/info").json()["colours"])
        assert noisy["dominant"][0] == "noise"
        assert all(noisy["strength"][a] >= noisy["strength"][b] for a, b in zip(noisy["dominant"], noisy["dominant"][1:]))


def test_no_reference_answer_says_which_way_is_better(client: TestClient, pair: tuple[np.ndarray, np.ndarray]) -> None:
    response = client.post("/api/score", files=[("images", ("a.png", png_bytes(pair[0]), "image/png"))])
    answer = response.json()
    assert set(answer["higher_is_better"]) == set(answer["scorers"])
    if "niqe" in answer["scorers"]:
        assert answer["higher_is_better"]["niqe"] is False
