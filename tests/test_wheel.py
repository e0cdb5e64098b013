"""Installing reliqa as people do (issue 18): sdist → wheel → a fresh venv, no repository beside it.

The sources are copied to a temporary folder (the working tree is never written to), the sdist
is built with setuptools' PEP 517 hooks, the wheel is built *from the unpacked sdist* (so the
sdist must carry the weights and static files), and the wheel is installed with
``pip install --no-deps --no-index`` into a fresh venv. Reinstalling torch there would take
minutes and gigabytes, so the fresh venv sees the dependencies of the project's own environment
through a ``.pth`` line naming its site-packages — a plain path line: the ``.pth`` files inside
it (among them the editable install's hook pointing at ``src/``) are not run, so ``import
reliqa`` can only find the installed wheel. Then, from a temporary working folder and with
network proxies pointing nowhere, ``reliqa compare``, ``reliqa score`` and ``reliqa metric``
run, and ``reliqa.__file__`` is checked to be inside the fresh venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter
from skimage import data

ROOT = Path(__file__).resolve().parents[1]
MAX_WHEEL_BYTES = 50 * 1024 * 1024
NEEDED_IN_WHEEL = (
    "reliqa/weights/relational.safetensors",
    "reliqa/weights/relational.json",
    "reliqa/weights/hirqa.safetensors",
    "reliqa/weights/hirqa-s.safetensors",
    "reliqa/weights/niqe_pristine.safetensors",
    "reliqa/web/static/index.html",
    "reliqa/web/static/app.js",
    "reliqa/web/static/sortable.js",
)

pytestmark = pytest.mark.slow


def _run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def _copy_sources(target: Path) -> None:
    """What a source checkout holds for packaging: pyproject, README, the package."""
    target.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, target / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    shutil.copytree(ROOT / "src" / "reliqa", target / "src" / "reliqa", ignore=ignore)


def _build(source: Path, out: Path, hook: str) -> Path:
    """Call setuptools' PEP 517 hook ``hook`` (build_sdist / build_wheel) in ``source``."""
    out.mkdir(exist_ok=True)
    name = _run(
        [sys.executable, "-c", f"import setuptools.build_meta as m; print(m.{hook}({str(out)!r}))"],
        cwd=source,
    ).strip().splitlines()[-1]
    return out / name


def _fresh_venv(folder: Path) -> Path:
    """A venv without pip whose only extra path is the project environment's site-packages."""
    venv.EnvBuilder(with_pip=False, symlinks=True).create(folder)
    python = folder / "bin" / "python"
    purelib = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=folder).strip())
    dependencies = Path(sysconfig.get_paths()["purelib"])
    (purelib / "project_dependencies.pth").write_text(f"{dependencies}\n")
    return python


def _images(folder: Path) -> dict[str, Path]:
    folder.mkdir()
    reference = np.ascontiguousarray(data.astronaut()[64:192, 160:288])
    paths = {"reference": folder / "reference.png", "test": folder / "test.png"}
    Image.fromarray(reference).save(paths["reference"])
    Image.fromarray(reference).filter(ImageFilter.GaussianBlur(2)).save(paths["test"])
    return paths


def test_wheel_installs_and_runs_without_the_repository(tmp_path: Path) -> None:
    _copy_sources(tmp_path / "checkout")
    sdist = _build(tmp_path / "checkout", tmp_path / "dist", "build_sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    wheel = _build(unpacked, tmp_path / "dist", "build_wheel")

    assert wheel.stat().st_size < MAX_WHEEL_BYTES, f"{wheel.name}: {wheel.stat().st_size:,} bytes"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert [name for name in NEEDED_IN_WHEEL if name not in names] == []
    assert not [name for name in names if name.startswith(("tests/", "benchmarks/", "docs/"))]

    python = _fresh_venv(tmp_path / "venv")
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
          "--no-cache-dir", "--disable-pip-version-check", str(wheel)], cwd=tmp_path, timeout=180)
    reliqa = tmp_path / "venv" / "bin" / "reliqa"
    assert reliqa.is_file()

    work = tmp_path / "elsewhere"
    images = _images(work)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env |= {"PATH": f"{tmp_path / 'venv' / 'bin'}:/usr/bin:/bin", "OMP_NUM_THREADS": "1",
            "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "",
            "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"}
    location = _run([str(python), "-c", "import reliqa; print(reliqa.__file__)"], cwd=work, env=env).strip()
    assert Path(location).resolve().is_relative_to((tmp_path / "venv").resolve()), location
    assert not Path(location).resolve().is_relative_to(ROOT.resolve())

    compared = json.loads(_run([str(reliqa), "compare", "--test", str(images["test"]), "--ref",
                                str(images["reference"]), "--json"], cwd=work, env=env))
    assert compared["score"] < 0 and compared["attributes"]["sharpness"]["mean_signed"] < 0
    scored = json.loads(_run([str(reliqa), "score", str(images["test"]), "--json"], cwd=work, env=env))
    assert 0.0 <= scored["results"][0]["score"] <= 1.0
    metric = json.loads(_run([str(reliqa), "metric", "ssim", "--test", str(images["test"]), "--ref",
                              str(images["reference"]), "--json"], cwd=work, env=env))
    assert 0.0 < metric["score"] < 1.0 and metric["metric"] == "ssim"
