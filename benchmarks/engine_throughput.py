"""Throughput of the distortion engine: samples/second for 256×256 crops with 1–4 distortions.

Compares, in one run and on the same crops and the same drawn mixes and intensities:

- the batched torch engine (``reliqa.distortions.distort``: masks, composition, truth maps,
  swap) on CPU with 2 threads, and on CUDA when one is available;
- a per-image pipeline written the usual way with numpy / scipy / Pillow / scikit-image: one
  image at a time, per-image noise masks (classic per-pixel Perlin) and region masks of the same
  families, each distortion type with the same parameter table (``ops_*`` LevelTables), Pillow's
  encoders for the codecs, blend with the mask, truth maps. Its outputs are not bit-identical to
  the engine's (different resampling and colour code); it does the same kind and amount of work.

Prints a markdown table and a JSON document. Run:

    python benchmarks/engine_throughput.py [--samples 64] [--batch 32] [--json-out FILE]
"""

from __future__ import annotations

import argparse
import io
import json
import math
import platform
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
import torch
from PIL import Image, ImageFilter
from scipy import ndimage, signal
from skimage import color
from skimage import data as skimage_data

from reliqa.attributes import ATTRIBUTE_INDEX
from reliqa.distortions import (
    DISTORTIONS,
    distort,
    ops_blur,
    ops_codec,
    ops_colour,
    ops_noise,
    ops_structure,
    ops_tone,
)
from reliqa.distortions.masks import DEFAULT_FAMILY_WEIGHTS
from reliqa.distortions.plan import DistortionPlan, sample_plan
from reliqa.io import load_image

CROP = 256


def reference_crops(count: int, seed: int) -> torch.Tensor:
    """(count, 3, 256, 256) random crops of scikit-image's bundled colour photos."""
    photos = [load_image(getattr(skimage_data, n)()) for n in ("astronaut", "coffee", "chelsea", "rocket")]
    generator = torch.Generator().manual_seed(seed)
    crops = []
    for index in range(count):
        photo = photos[index % len(photos)]
        top = int(torch.randint(photo.shape[-2] - CROP + 1, (), generator=generator))
        left = int(torch.randint(photo.shape[-1] - CROP + 1, (), generator=generator))
        crops.append(photo[0, :, top : top + CROP, left : left + CROP])
    return torch.stack(crops).contiguous()


# ---------------------------------------------------------------- per-image numpy baseline


def _value(table: Callable[[torch.Tensor], torch.Tensor], intensity: float) -> float:
    return float(table(torch.tensor([intensity]))[0])


def _to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * x ** (1 / 2.4) - 0.055)


def _luma(x: np.ndarray) -> np.ndarray:
    return x @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)


def _with_luma(x: np.ndarray, new: np.ndarray) -> np.ndarray:
    return x + (new - _luma(x))[..., None]


def _pil(x: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8))


def _array(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _codec(x: np.ndarray, **options: object) -> np.ndarray:
    buffer = io.BytesIO()
    _pil(x).save(buffer, **options)
    buffer.seek(0)
    return _array(Image.open(buffer))


def _gains(x: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    return _to_srgb(_to_linear(x) * np.array(gains, dtype=np.float32))


def _chroma(x: np.ndarray, factor: float) -> np.ndarray:
    lab = color.rgb2lab(x)
    lab[..., 1:] *= factor
    return color.lab2rgb(lab)


def _disk(radius: float) -> np.ndarray:
    r = math.ceil(radius)
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    kernel = (xx**2 + yy**2 <= radius**2 + 1e-6).astype(np.float32)
    return kernel / kernel.sum()


def _line(length: float, angle: float) -> np.ndarray:
    r = math.ceil(length / 2)
    kernel = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    for t in np.linspace(-length / 2, length / 2, max(2, int(length * 2))):
        kernel[round(r + t * math.sin(angle)), round(r + t * math.cos(angle))] = 1
    return kernel / kernel.sum()


def _convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    pad = kernel.shape[0] // 2
    padded = np.pad(x, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    return np.stack([signal.fftconvolve(padded[..., c], kernel, mode="valid") for c in range(3)], -1)


def _jitter(x: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = rng.normal(0, std, (h, w)), rng.normal(0, std, (h, w))
    return np.stack(
        [ndimage.map_coordinates(x[..., c], [yy + dy, xx + dx], order=1, mode="nearest") for c in range(3)], -1
    )


def _lost_blocks(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    h, w, _ = x.shape
    side = max(1, round(min(h, w) / ops_structure.LOST_BLOCKS_PER_SIDE))
    rows, cols = -(-h // side), -(-w // side)
    out = x.copy()
    for block in rng.permutation(rows * cols)[: round(fraction * rows * cols)]:
        r, c = divmod(int(block), cols)
        out[r * side : (r + 1) * side, c * side : (c + 1) * side] = rng.random(3)
    return out


def _pixelate(x: np.ndarray, cell: float) -> np.ndarray:
    image = _pil(x)
    small = image.resize((max(1, round(image.width / cell)), max(1, round(image.height / cell))), Image.BOX)
    return _array(small.resize(image.size, Image.NEAREST))


def _high_boost(x: np.ndarray, amount: float) -> np.ndarray:
    lab = color.rgb2lab(x)
    lightness = lab[..., 0]
    lab[..., 0] = lightness + amount * (lightness - ndimage.gaussian_filter(lightness, ops_blur.HIGH_BOOST_SIGMA))
    return color.lab2rgb(lab)


def _guided_smoothing(x: np.ndarray, eps: float) -> np.ndarray:
    """Self-guided filter on luma (box windows of 2·radius + 1), as the textbook writes it."""
    size = 2 * ops_blur.DENOISE_RADIUS + 1
    box = lambda a: ndimage.uniform_filter(a, size, mode="nearest")
    guide = _luma(x)
    mean_guide = box(guide)
    variance = box(guide * guide) - mean_guide**2
    out = np.empty_like(x)
    for c in range(3):
        mean_p = box(x[..., c])
        a = (box(guide * x[..., c]) - mean_guide * mean_p) / (variance + eps)
        out[..., c] = box(a) * guide + box(mean_p - a * mean_guide)
    return out


Baseline = Callable[[np.ndarray, float, np.random.Generator], np.ndarray]

BASELINE: dict[str, Baseline] = {
    "brighten": lambda x, i, r: x + _value(ops_tone.BRIGHTEN_AMOUNT, i) * 2 * x * (1 - x),
    "darken": lambda x, i, r: x - _value(ops_tone.DARKEN_AMOUNT, i) * 2 * x * (1 - x),
    "gamma_brighten": lambda x, i, r: x ** (2.2 ** -i),
    "gamma_darken": lambda x, i, r: x ** (2.2**i),
    "exposure_up": lambda x, i, r: _to_srgb(_to_linear(x) * 2 ** _value(ops_tone.EXPOSURE_STOPS, i)),
    "exposure_down": lambda x, i, r: _to_srgb(_to_linear(x) * 2 ** -_value(ops_tone.EXPOSURE_STOPS, i)),
    "linear_contrast_up": lambda x, i, r: _with_luma(
        x, _luma(x).mean() + _value(ops_tone.CONTRAST_GAIN, i) * (_luma(x) - _luma(x).mean())
    ),
    "linear_contrast_down": lambda x, i, r: _with_luma(
        x, _luma(x).mean() + _value(ops_tone.CONTRAST_FACTOR, i) * (_luma(x) - _luma(x).mean())
    ),
    "nonlinear_contrast_up": lambda x, i, r: _with_luma(
        x, 0.5 + 0.5 * np.tanh(max(1e-4, _value(ops_tone.S_CURVE_STEEPNESS, i)) * (2 * _luma(x) - 1))
        / np.tanh(max(1e-4, _value(ops_tone.S_CURVE_STEEPNESS, i)))
    ),
    "nonlinear_contrast_down": lambda x, i, r: _with_luma(
        x, _luma(x).mean() + (_luma(x) - _luma(x).mean())
        / (1 + 2 * _value(ops_tone.COMPRESSION_STRENGTH, i) * np.abs(_luma(x) - _luma(x).mean()))
    ),
    "saturation_up": lambda x, i, r: _chroma(x, _value(ops_colour.SATURATION_GAIN, i)),
    "saturation_down": lambda x, i, r: _chroma(x, _value(ops_colour.DESATURATION_FACTOR, i)),
    "warm": lambda x, i, r: _gains(x, (_value(ops_colour.WHITE_BALANCE_RATIO, i) ** 0.5, 1.0,
                                       _value(ops_colour.WHITE_BALANCE_RATIO, i) ** -0.5)),
    "cool": lambda x, i, r: _gains(x, (_value(ops_colour.WHITE_BALANCE_RATIO, i) ** -0.5, 1.0,
                                       _value(ops_colour.WHITE_BALANCE_RATIO, i) ** 0.5)),
    "magenta_tint": lambda x, i, r: _gains(x, (1.0, _value(ops_colour.TINT_RATIO, i) ** -1, 1.0)),
    "green_tint": lambda x, i, r: _gains(x, (1.0, _value(ops_colour.TINT_RATIO, i), 1.0)),
    "gaussian_blur": lambda x, i, r: _array(
        _pil(x).filter(ImageFilter.GaussianBlur(_value(ops_blur.GAUSSIAN_SIGMA, i)))
    ),
    "lens_blur": lambda x, i, r: _convolve(x, _disk(max(0.5, _value(ops_blur.LENS_RADIUS, i)))),
    "motion_blur": lambda x, i, r: _convolve(x, _line(_value(ops_blur.MOTION_LENGTH, i), r.uniform(0, math.pi))),
    "unsharp_mask": lambda x, i, r: _array(
        _pil(x).filter(ImageFilter.UnsharpMask(ops_blur.UNSHARP_SIGMA, int(100 * _value(ops_blur.UNSHARP_AMOUNT, i)), 0))
    ),
    "high_boost_sharpen": lambda x, i, r: _high_boost(x, _value(ops_blur.HIGH_BOOST_AMOUNT, i)),
    "denoise_smoothing": lambda x, i, r: _guided_smoothing(x, max(1e-8, _value(ops_blur.DENOISE_EPS, i))),
    "gaussian_noise": lambda x, i, r: x + r.normal(0, _value(ops_noise.GAUSSIAN_VARIANCE, i) ** 0.5, x.shape),
    "chroma_noise": lambda x, i, r: color.ycbcr2rgb(
        color.rgb2ycbcr(x) + np.concatenate(
            [np.zeros(x.shape[:2] + (1,)), r.normal(0, 255 * _value(ops_noise.CHROMA_VARIANCE, i) ** 0.5, x.shape[:2] + (2,))], -1
        )
    ),
    "shot_noise": lambda x, i, r: _to_srgb(
        r.poisson(_to_linear(x) / max(1e-6, _value(ops_noise.SHOT_SCALE, i))) * _value(ops_noise.SHOT_SCALE, i)
    ),
    "impulse_noise": lambda x, i, r: np.where(
        r.random(x.shape) < _value(ops_noise.IMPULSE_DENSITY, i), (r.random(x.shape) < 0.5).astype(np.float32), x
    ),
    "speckle_noise": lambda x, i, r: x * (1 + r.normal(0, _value(ops_noise.SPECKLE_VARIANCE, i) ** 0.5, x.shape)),
    "jpeg": lambda x, i, r: _codec(x, format="JPEG", quality=round(_value(ops_codec.JPEG_QUALITY, i))),
    "jpeg2000": lambda x, i, r: _codec(
        x, format="JPEG2000", quality_mode="rates", quality_layers=[_value(ops_codec.JPEG2000_RATIO, i)]
    ),
    "webp": lambda x, i, r: _codec(x, format="WEBP", quality=round(_value(ops_codec.WEBP_QUALITY, i))),
    "colour_quantisation": lambda x, i, r: _array(
        _pil(x).quantize(round(_value(ops_codec.PALETTE_COLOURS, i)), method=Image.Quantize.FASTOCTREE,
                         dither=Image.Dither.FLOYDSTEINBERG)
    ),
    "banding": lambda x, i, r: np.round(x * (_value(ops_codec.BANDING_LEVELS, i) - 1)) / (_value(ops_codec.BANDING_LEVELS, i) - 1),
    "pixelation": lambda x, i, r: _pixelate(x, _value(ops_structure.PIXEL_BLOCK, i)),
    "jitter": lambda x, i, r: _jitter(x, _value(ops_structure.JITTER_STD, i), r),
    "lost_blocks": lambda x, i, r: _lost_blocks(x, _value(ops_structure.LOST_FRACTION, i), r),
}


def _smoothstep(x: np.ndarray) -> np.ndarray:
    s = np.clip(x, 0, 1)
    return s * s * (3 - 2 * s)


def _perlin(h: int, w: int, cells: float, rng: np.random.Generator) -> np.ndarray:
    """Classic per-pixel Perlin noise: gather the four corner gradients of every pixel."""
    lattice = math.ceil(cells) + 2
    angles = rng.uniform(0, 2 * math.pi, (lattice, lattice))
    gradients = np.stack([np.cos(angles), np.sin(angles)], -1)
    side = max(h, w)
    v = ((np.arange(h) + 0.5) / side * cells + rng.random())[:, None] * np.ones((1, w))
    u = ((np.arange(w) + 0.5) / side * cells + rng.random())[None, :] * np.ones((h, 1))
    v0, u0 = np.floor(v).astype(int), np.floor(u).astype(int)
    fy, fx = v - v0, u - u0

    def corner(dy: int, dx: int) -> np.ndarray:
        g = gradients[v0 + dy, u0 + dx]
        return g[..., 0] * (fx - dx) + g[..., 1] * (fy - dy)

    fade = lambda t: t * t * t * (t * (t * 6 - 15) + 10)
    wy, wx = fade(fy), fade(fx)
    top = corner(0, 0) + wx * (corner(0, 1) - corner(0, 0))
    bottom = corner(1, 0) + wx * (corner(1, 1) - corner(1, 0))
    return top + wy * (bottom - top)


def numpy_mask(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One mask of a family drawn with the engine's weights, built per image with numpy."""
    names = list(DEFAULT_FAMILY_WEIGHTS)
    weights = np.array([DEFAULT_FAMILY_WEIGHTS[n] for n in names])
    family = names[rng.choice(len(names), p=weights / weights.sum())]
    short, long = min(h, w), max(h, w)
    feather = max(2.0, rng.uniform(*((0.02, 0.05) if family == "blobs" else (0.03, 0.15))) * short)
    yy, xx = np.mgrid[0:h, 0:w] + 0.5
    if family == "full":
        return np.ones((h, w), np.float32)
    if family in ("fractal", "blobs"):
        low, high = (1.0, 4.0) if family == "fractal" else (4.0, 16.0)
        cells = min(math.exp(rng.uniform(math.log(low), math.log(high))), max(1.0, long / 16))
        noise = sum(
            0.5**o * _perlin(h, w, cells * 2**o, rng) for o in range(3) if o == 0 or cells * 2**o <= long / 16
        )
        noise = (noise - noise.mean()) / max(noise.std(), 1e-6)
        coverage = rng.uniform(*((0.2, 0.9) if family == "fractal" else (0.05, 0.3)))
        steepest = max(np.abs(np.diff(noise, axis=0)).max(initial=0), np.abs(np.diff(noise, axis=1)).max(initial=0))
        from scipy.special import ndtri

        return _smoothstep((noise - ndtri(1 - coverage)) / max(steepest * feather, 1e-3) + 0.5)
    if family in ("rectangle", "ellipse"):
        cy, cx = rng.random() * h, rng.random() * w
        ry, rx = rng.uniform(0.15, 0.5) * h, rng.uniform(0.15, 0.5) * w
        if family == "rectangle":
            distance = np.minimum(ry - np.abs(yy - cy), rx - np.abs(xx - cx))
        else:
            distance = (1 - np.hypot((yy - cy) / ry, (xx - cx) / rx)) * min(ry, rx)
        return _smoothstep(distance / feather + 0.5)
    angle, offset = rng.uniform(0, 2 * math.pi), rng.uniform(-0.25, 0.25) * short
    distance = (yy - h / 2) * math.sin(angle) + (xx - w / 2) * math.cos(angle) - offset
    return _smoothstep(distance / feather + 0.5)


def numpy_sample(
    reference: np.ndarray, mix: tuple[str, ...], intensities: list[float], rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One triplet, per image: (reference, test, truth (9, H, W))."""
    h, w, _ = reference.shape
    test = reference.copy()
    truth = np.full((9, h, w), 0.5, np.float32)
    for name, intensity in zip(mix, intensities):
        mask = numpy_mask(h, w, rng)
        distorted = np.clip(BASELINE[name](test, intensity, rng), 0, 1).astype(np.float32)
        test = np.clip(test + mask[..., None] * (distorted - test), 0, 1)
        entry = DISTORTIONS[name]
        truth[ATTRIBUTE_INDEX[entry.attribute]] += 0.5 * entry.sign * intensity * mask
    truth = np.clip(truth, 0, 1)
    if rng.random() < 0.25:
        return test, reference, 1 - truth
    return reference, test, truth


# ---------------------------------------------------------------- timing


def time_engine(crops: torch.Tensor, batch: int, device: str, seed: int, repeats: int) -> float:
    """Samples per second of ``distort`` on batches of ``batch`` crops (after one warm-up)."""
    crops = crops.to(device)
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    chunks = [crops[i : i + batch] for i in range(0, len(crops), batch)]
    distort(chunks[0], generator=seed)  # warm-up: lazy imports, kernels, allocator
    synchronize()
    start = time.perf_counter()
    done = 0
    for repeat in range(repeats):
        for index, chunk in enumerate(chunks):
            distort(chunk, generator=seed + 1 + repeat * len(chunks) + index)
            done += len(chunk)
    synchronize()
    return done / (time.perf_counter() - start)


def time_baseline(crops: torch.Tensor, seed: int) -> float:
    """Samples per second of the per-image numpy pipeline on the same crops and mixes."""
    plan: DistortionPlan = sample_plan(len(crops), CROP, CROP, generator=seed)
    arrays = [c.permute(1, 2, 0).numpy().copy() for c in crops]
    rng = np.random.default_rng(seed)
    numpy_sample(arrays[0], plan.types[0], plan.intensity[0].tolist(), rng)  # warm-up
    start = time.perf_counter()
    for index, array in enumerate(arrays):
        numpy_sample(array, plan.types[index], plan.intensity[index].tolist(), rng)
    return len(arrays) / (time.perf_counter() - start)


def breakdown(crops: torch.Tensor, batch: int, device: str, seed: int) -> dict[str, object]:
    """Where the engine's time goes on ``device``: plan (mixes + masks), the catalogue's
    operations (per type, ms per image), blending, truth maps."""
    import dataclasses

    from reliqa.distortions.compose import apply_plan, truth_maps

    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    op_time: dict[str, float] = {}
    op_images: dict[str, int] = {}

    def timed(name: str, operation: Callable) -> Callable:
        def apply(images: torch.Tensor, intensity: torch.Tensor, generator: object) -> torch.Tensor:
            synchronize()
            start = time.perf_counter()
            out = operation(images, intensity, generator)
            synchronize()
            op_time[name] = op_time.get(name, 0.0) + time.perf_counter() - start
            op_images[name] = op_images.get(name, 0) + len(images)
            return out

        return apply

    catalogue = {n: dataclasses.replace(d, apply=timed(n, d.apply)) for n, d in DISTORTIONS.items()}
    crops = crops.to(device)
    phases = {"plan (mixes, masks)": 0.0, "apply (operations + blending)": 0.0, "truth maps": 0.0}
    distort(crops[:batch], generator=seed, catalogue=catalogue)  # warm-up
    op_time.clear()
    op_images.clear()
    for index in range(0, len(crops), batch):
        chunk = crops[index : index + batch]
        synchronize()
        start = time.perf_counter()
        plan = sample_plan(len(chunk), CROP, CROP, generator=seed + index, device=device)
        synchronize()
        middle = time.perf_counter()
        apply_plan(chunk, plan, generator=seed + index, catalogue=catalogue)
        synchronize()
        end = time.perf_counter()
        truth_maps(plan)
        synchronize()
        phases["plan (mixes, masks)"] += middle - start
        phases["apply (operations + blending)"] += end - middle
        phases["truth maps"] += time.perf_counter() - end
    operations = sum(op_time.values())
    phases["of which: operations"] = operations
    phases["of which: blending, indexing"] = phases["apply (operations + blending)"] - operations
    per_sample = {k: 1000 * v / len(crops) for k, v in phases.items()}
    per_type = {n: 1000 * op_time[n] / op_images[n] for n in sorted(op_time, key=op_time.get, reverse=True)}
    return {"device": device, "ms_per_sample": per_sample, "op_ms_per_image": per_type}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64, help="crops per measurement")
    parser.add_argument("--batch", type=int, default=32, help="engine batch size")
    parser.add_argument("--gpu-batch", type=int, default=128, help="engine batch size on CUDA")
    parser.add_argument("--repeats", type=int, default=2, help="passes over the crops (engine)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", help="also write the JSON here")
    parser.add_argument("--breakdown", action="store_true", help="also time the engine's phases")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    assert set(BASELINE) == set(DISTORTIONS), set(DISTORTIONS) ^ set(BASELINE)
    crops = reference_crops(args.samples, args.seed)
    rows = []
    baseline = time_baseline(crops, args.seed)
    rows.append({"pipeline": "per-image numpy/scipy/Pillow", "device": "cpu", "threads": 1, "batch": 1,
                 "samples_per_s": baseline})
    cpu = time_engine(crops, args.batch, "cpu", args.seed, args.repeats)
    rows.append({"pipeline": "reliqa engine (torch, batched)", "device": "cpu", "threads": args.threads,
                 "batch": args.batch, "samples_per_s": cpu})
    if torch.cuda.is_available():
        gpu_crops = reference_crops(max(args.samples, args.gpu_batch * 2), args.seed)
        gpu = time_engine(gpu_crops, args.gpu_batch, "cuda", args.seed, args.repeats)
        rows.append({"pipeline": "reliqa engine (torch, batched)", "device": torch.cuda.get_device_name(),
                     "threads": args.threads, "batch": args.gpu_batch, "samples_per_s": gpu})
    for row in rows:
        row["speedup_vs_baseline"] = row["samples_per_s"] / baseline

    print("| pipeline | device | CPU threads | batch | samples/s (256×256, 1–4 distortions) | × per-image |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['pipeline']} | {row['device']} | {row['threads']} | {row['batch']} | "
              f"{row['samples_per_s']:.1f} | {row['speedup_vs_baseline']:.1f}× |")
    breakdowns = []
    if args.breakdown:
        for device in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
            batch = args.batch if device == "cpu" else args.gpu_batch
            part = breakdown(reference_crops(max(args.samples, batch), args.seed), batch, device, args.seed)
            breakdowns.append(part)
            print(f"\n{device}: ms per sample — " + ", ".join(f"{k} {v:.2f}" for k, v in part["ms_per_sample"].items()))
            print("slowest operations (ms per image): " + ", ".join(
                f"{n} {v:.2f}" for n, v in list(part["op_ms_per_image"].items())[:8]))
    report = {
        "benchmark": "engine_throughput",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "crop": CROP,
        "samples": args.samples,
        "results": rows,
        "breakdown": breakdowns,
    }
    print(json.dumps(report, indent=2))
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
