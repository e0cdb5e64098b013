"""Shared fixtures. Unit tests use images that ship with scikit-image or are generated;
tests marked ``shared`` read ../shared/data (beside the checkout) and skip when it is absent."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RELIQA_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ../shared/data; skips the test when it is not there (CI has it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def astronaut() -> torch.Tensor:
    """scikit-image's astronaut photo as (1, 3, 512, 512) float32 in [0, 1]."""
    from skimage import data

    from reliqa.io import load_image

    return load_image(data.astronaut())


@pytest.fixture(scope="session")
def photos() -> list[torch.Tensor]:
    """Four bundled colour photos of different sizes, each (1, 3, H, W)."""
    from skimage import data

    from reliqa.io import load_image

    return [load_image(getattr(data, name)()) for name in ("astronaut", "coffee", "chelsea", "rocket")]


def perturb_parameters(module: torch.nn.Module, seed: int, scale: float = 0.1) -> torch.nn.Module:
    """Add seeded Gaussian noise (std ``scale``) to every parameter, in place; returns the module.

    Untrained networks start some layers at zero (residual projections, the scorer's common
    value), which would hide paths from a test; perturbed, every path is active."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(scale * torch.randn(parameter.shape, generator=generator))
    return module


@pytest.fixture(scope="session")
def perturbed() -> Callable[..., torch.nn.Module]:
    """:func:`perturb_parameters`, for tests and fixtures of any scope."""
    return perturb_parameters


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


TID2013_PAIRS = ("I03", "I04", "I06", "I08", "I19")
"""The five TID2013 calibration pairs in ../shared/data/tid2013_calib, in the CSV's order."""


@pytest.fixture(scope="module")
def calibration(shared_data: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, list[float]]]:
    """TID2013 calibration pairs: (test (5, 3, H, W), reference, official metric values per name)."""
    import csv

    from reliqa.io import load_image

    folder = shared_data / "tid2013_calib"
    test = torch.cat([load_image(folder / "dist" / f"{name}.bmp") for name in TID2013_PAIRS])
    reference = torch.cat([load_image(folder / "ref" / f"{name}.bmp") for name in TID2013_PAIRS])
    with open(folder / "official_values.csv", newline="") as handle:
        official = {
            row["metric"]: [float(row[name]) for name in TID2013_PAIRS]
            for row in csv.DictReader(handle)
        }
    return test, reference, official
