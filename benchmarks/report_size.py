"""What `reliqa batch --report` leaves on disk for pairs, and how long the command takes.

Twelve pairs of 512 × 384 crops of scikit-image's bundled photos (six Gaussian blur σ 2, six
JPEG quality 20), `--metrics psnr,ssim,relational`, one torch thread. `--source-tree DIR` runs
the CLI of another checkout (its `src/` first on PYTHONPATH), e.g. the commit before issue 18:

    git worktree add /tmp/before d663369
    python benchmarks/report_size.py --source-tree /tmp/before --label before
    python benchmarks/report_size.py --label after      # both go into one record (--out)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter
from skimage import data

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def _pairs(folder: Path) -> Path:
    lines = ["reference,test"]
    for name in PHOTOS:
        crop = np.ascontiguousarray(getattr(data, name)()[:384, :512])
        Image.fromarray(crop).save(folder / f"{name}.png")
        Image.fromarray(crop).filter(ImageFilter.GaussianBlur(2)).save(folder / f"{name}_blur.png")
        Image.fromarray(crop).save(folder / f"{name}_q20.jpg", quality=20)
        lines += [f"{name}.png,{name}_blur.png", f"{name}.png,{name}_q20.jpg"]
    (folder / "pairs.csv").write_text("\n".join(lines) + "\n")
    return folder / "pairs.csv"


def _bytes(path: Path) -> int:
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-tree", type=Path, default=None)
    parser.add_argument("--label", default="after")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/report_size.json"))
    args = parser.parse_args()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if args.source_tree is not None:
        env["PYTHONPATH"] = str(args.source_tree.resolve() / "src")
    folder = Path(tempfile.mkdtemp(prefix="reliqa-report-size-"))
    try:
        pairs = _pairs(folder)
        command = [sys.executable, "-c", "from reliqa.cli import main; main()", "batch", "--pairs",
                   str(pairs), "--metrics", "psnr,ssim,relational", "--out", str(folder / "s.csv"),
                   "--report", str(folder / "report")]
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True, cwd=folder)
        seconds = time.perf_counter() - started
        report = folder / "report"
        entries = {item.name: _bytes(item) if item.is_dir() else item.stat().st_size for item in report.iterdir()}
        load = os.getloadavg()[0]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = json.loads(args.out.read_text()) if args.out.is_file() else {"benchmark": "report_size"}
    record[args.label] = {
        "command": " ".join(["python benchmarks/report_size.py", *sys.argv[1:]]),
        "source_tree": str(args.source_tree) if args.source_tree else "this checkout",
        "commit": subprocess.run(["git", "rev-parse", "HEAD"], cwd=args.source_tree or Path.cwd(),
                                 capture_output=True, text=True, check=False).stdout.strip(),
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pairs": 2 * len(PHOTOS),
        "report_bytes": sum(entries.values()),
        "report_mb": sum(entries.values()) / 1e6,
        "report_kb": sum(entries.values()) / 1e3,
        "entries": entries,
        "seconds": seconds,
        "load_average_1min": load,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record[args.label]))


if __name__ == "__main__":
    main()
