"""Speed of reliqa's SSIM, MS-SSIM and GMSD vs pytorch-msssim, piq and scikit-image.

Every library gets the SAME inputs in the same run and computes the SAME definition:
- SSIM: per RGB channel, 11x11 Gaussian window (sigma 1.5), valid positions, no downsampling
  (reliqa ``ssim`` on RGB = the ``ssim_rgb`` metric; pytorch-msssim ``ssim``; piq ``ssim`` with
  ``downsample=False``; scikit-image ``structural_similarity`` with gaussian_weights=True,
  sigma=1.5, use_sample_covariance=False, channel_axis);
- MS-SSIM: per RGB channel, 5 scales, standard weights (sizes here are even at every scale, so
  the libraries' downsampling conventions coincide);
- GMSD: on one luminance channel given to every library, 2x2 average downsampling, T = 170/255².
Values must agree to 1e-4 (asserted) before a time is reported. Times: the libraries take
turns for ``--repeats`` rounds; the best round of each, in ms per image, under
``torch.inference_mode`` (the minimum is the least disturbed by other work on a shared CPU).

piq 0.8 imports torchvision at package import; it cannot be installed here, so the script loads
piq's ``ssim``/``ms_ssim``/``gmsd`` modules without running ``piq/__init__.py`` (install piq
with ``pip install --no-deps piq``). Missing libraries are skipped and reported.

Usage:
    python benchmarks/metrics_speed.py --threads 2 --batch 8 --repeats 5 [--device cuda] [--json-out F]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import sys
import time
import types
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import torch
import torch.nn.functional as F

from reliqa.checks import resolve_device
from reliqa.io import load_image
from reliqa.metrics import gmsd_rgb, ms_ssim_rgb, ssim_rgb
from reliqa.metrics.color import rgb_to_gray_matlab

HEIGHT, WIDTH = 384, 512
TOLERANCE = 1e-4


def make_inputs(batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(test, reference), each (batch, 3, 384, 512): crops of scikit-image photos; test = blur + noise."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    references = []
    for index in range(batch):
        photo = load_image(photos[index % len(photos)])
        references.append(F.interpolate(photo, size=(HEIGHT, WIDTH), mode="bilinear", antialias=True,
                                        align_corners=False).clamp(0, 1))
    reference = torch.cat(references)
    generator = torch.Generator().manual_seed(0)
    blurred = F.avg_pool2d(reference, 3, stride=1, padding=1, count_include_pad=False)
    test = (blurred + 0.03 * torch.randn(reference.shape, generator=generator)).clamp(0, 1)
    return test, reference


def load_piq() -> types.ModuleType | None:
    """piq's metric modules without piq/__init__.py (which needs torchvision); None if absent."""
    spec = importlib.util.find_spec("piq")
    if spec is None or spec.submodule_search_locations is None:
        return None
    package = types.ModuleType("piq")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules.setdefault("piq", package)
    namespace = types.SimpleNamespace()
    for module in ("ssim", "ms_ssim", "gmsd"):
        setattr(namespace, module, importlib.import_module(f"piq.{module}"))
    return namespace  # type: ignore[return-value]


def skimage_ssim(test: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    from skimage.metrics import structural_similarity

    scores = []
    for one_test, one_reference in zip(test.cpu().numpy(), reference.cpu().numpy()):
        scores.append(structural_similarity(one_test, one_reference, channel_axis=0, gaussian_weights=True,
                                            sigma=1.5, use_sample_covariance=False, data_range=1.0))
    return torch.tensor(scores)


def candidates(piq: types.ModuleType | None, with_skimage: bool) -> dict[str, dict[str, Callable]]:
    """metric -> implementation name -> f(test, reference) -> (N,)."""
    table: dict[str, dict[str, Callable]] = {
        # the RGB variants: what pytorch-msssim, piq and scikit-image compute on RGB input
        "ssim": {"reliqa": lambda t, r: ssim_rgb(t, r)},
        "ms_ssim": {"reliqa": lambda t, r: ms_ssim_rgb(t, r)},
        "gmsd": {"reliqa": lambda t, r: gmsd_rgb(t, r)},
    }
    try:
        import pytorch_msssim

        table["ssim"]["pytorch-msssim"] = lambda t, r: pytorch_msssim.ssim(t, r, data_range=1.0, size_average=False)
        table["ms_ssim"]["pytorch-msssim"] = lambda t, r: pytorch_msssim.ms_ssim(
            t, r, data_range=1.0, size_average=False)
    except ImportError:
        pass
    if piq is not None:
        table["ssim"]["piq"] = lambda t, r: piq.ssim.ssim(t, r, data_range=1.0, downsample=False, reduction="none")
        table["ms_ssim"]["piq"] = lambda t, r: piq.ms_ssim.multi_scale_ssim(t, r, data_range=1.0, reduction="none")
        table["gmsd"]["piq"] = lambda t, r: piq.gmsd.gmsd(t, r, data_range=1.0, reduction="none")
    if with_skimage:
        table["ssim"]["scikit-image"] = skimage_ssim
    return table


def time_round_robin(implementations: dict[str, Callable], test: torch.Tensor, reference: torch.Tensor,
                     repeats: int) -> dict[str, float]:
    """Best (minimum) seconds per call of each implementation, after one warm-up call each.

    The implementations take turns in every round, so a load change on the (shared) machine
    hits all of them alike; the minimum is the least disturbed run.
    """
    synchronize = torch.cuda.synchronize if test.is_cuda else (lambda: None)
    best = {name: float("inf") for name in implementations}
    for _name, function in implementations.items():
        function(test, reference)
    synchronize()
    for _ in range(repeats):
        for name, function in implementations.items():
            start = time.perf_counter()
            function(test, reference)
            synchronize()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-skimage", action="store_true", help="skip scikit-image (slow, CPU only)")
    parser.add_argument("--json-out", help="also write the JSON result to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)

    test_rgb, reference_rgb = (image.to(device) for image in make_inputs(args.batch))
    # GMSD is compared on one luminance channel given to every library.
    test_gray, reference_gray = rgb_to_gray_matlab(test_rgb), rgb_to_gray_matlab(reference_rgb)
    inputs = {"ssim": (test_rgb, reference_rgb), "ms_ssim": (test_rgb, reference_rgb),
              "gmsd": (test_gray, reference_gray)}
    piq = load_piq()
    table = candidates(piq, with_skimage=not args.no_skimage and device.type == "cpu")

    results = []
    with torch.inference_mode():
        for metric, implementations in table.items():
            test, reference = inputs[metric]
            ours = implementations["reliqa"](test, reference).float().cpu()
            differences = {}
            for library, function in implementations.items():
                values = function(test, reference).float().cpu()
                differences[library] = float((values - ours).abs().max())
                if differences[library] > TOLERANCE:
                    raise SystemExit(f"{metric}: {library} differs from reliqa by {differences[library]:.2e}")
            seconds = time_round_robin(implementations, test, reference, args.repeats)
            for library in implementations:
                results.append({"metric": metric, "library": library,
                                "ms_per_image": 1000 * seconds[library] / args.batch,
                                "max_abs_diff_vs_reliqa": differences[library]})
    for metric in table:
        rows = [row for row in results if row["metric"] == metric]
        ours = next(row["ms_per_image"] for row in rows if row["library"] == "reliqa")
        others = [row["ms_per_image"] for row in rows if row["library"] != "reliqa"]
        for row in rows:
            row["speedup_of_reliqa"] = row["ms_per_image"] / ours
        if others:
            for row in rows:
                if row["library"] == "reliqa":
                    row["speedup_vs_fastest_other"] = min(others) / ours

    print("| metric | library | ms / image | speed-up of reliqa | max abs diff vs reliqa |")
    print("|---|---|---:|---:|---:|")
    for row in results:
        print(f"| {row['metric']} | {row['library']} | {row['ms_per_image']:.1f} | "
              f"{row['speedup_of_reliqa']:.2f}x | {row['max_abs_diff_vs_reliqa']:.1e} |")
    payload = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.processor() or platform.machine(),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "threads": args.threads, "batch": args.batch, "size": [HEIGHT, WIDTH], "repeats": args.repeats,
        "torch": torch.__version__, "piq": "loaded" if piq is not None else "not installed",
        "results": results,
    }
    print(json.dumps(payload, indent=2))
    if args.json_out:
        with open(args.json_out, "w") as handle:
            json.dump(payload, handle, indent=2)


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
