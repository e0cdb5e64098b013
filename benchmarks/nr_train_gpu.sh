#!/usr/bin/env bash
# The one GPU-machine run behind the shipped hirqa / hirqa-s weights: GPU speed benchmark, both
# trainings side by side on the one GPU (configs/nr_hirqa_gpu.json, configs/nr_hirqa_s_gpu.json),
# synthetic held-out quality of the best checkpoints, and a tarball of the runs in $OUT.
#
# The GPU machine has no ../shared, so the pristine photos travel re-encoded as JPEG q95
# (4:4:4) in .device_carry/pristine_q95/<folder>/<original name>.jpg and are decoded back to
# /tmp/pristine/<folder>/<original name> here: the names, and so the held-out split, are kept.
# Make that folder with:  python benchmarks/nr_train_gpu.sh --pack   (run on the dev machine).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--pack" ]]; then
  python - <<'EOF'
from pathlib import Path
from PIL import Image
source, target = Path("../shared/data/pristine"), Path(".device_carry/pristine_q95")
for path in sorted(p for p in source.rglob("*") if p.is_file()):
    out = target / path.parent.relative_to(source) / (path.name + ".jpg")
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(path).convert("RGB").save(out, quality=95, subsampling=0)
EOF
  exit
fi

OUT=${OUT:-out/nr_gpu}
TRAIN_SECONDS=${TRAIN_SECONDS:-430}   # hard stop of each training process
MAX_MINUTES=${MAX_MINUTES:-5.5}        # the configs' training-time budget (schedule follows it)
mkdir -p "$OUT"
if ! python3 -c "import kornia" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/kornia*.whl || exit 1
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD/src PYTHONUNBUFFERED=1

python3 - <<'EOF'
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image
source, target = Path(".device_carry/pristine_q95"), Path("/tmp/pristine")
def restore(path):
    out = target / path.parent.relative_to(source) / path.name[: -len(".jpg")]
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.open(path).save(out)
with ProcessPoolExecutor(12) as pool:
    list(pool.map(restore, sorted(source.rglob("*.jpg"))))
print("restored", sum(1 for _ in target.rglob("*.*")), "photos")
EOF

nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 benchmarks/nr_speed.py --repeats 3 --out "$OUT/nr_speed_gpu_machine.json" 2>&1 | tee "$OUT/speed.log"

CLI='import sys; sys.argv[0] = "reliqa"; from reliqa.cli import main; main()'
train() {  # name config
  local start=$SECONDS
  timeout "$TRAIN_SECONDS" python3 -c "$CLI" train nr --config "$2" --data /tmp/pristine \
    --run-dir "/tmp/runs/$1" --max-minutes "$MAX_MINUTES" --json >"/tmp/train_$1.log" 2>&1
  local code=$?
  if [[ $code -ne 0 && $code -ne 124 && $((SECONDS - start)) -lt 150 ]]; then
    # The engine failed on the GPU: fall back to CPU DataLoader workers for the time left.
    echo "=== retry with --engine workers (exit $code)" >>"/tmp/train_$1.log"
    timeout $((TRAIN_SECONDS - SECONDS + start)) python3 -c "$CLI" train nr --config "$2" \
      --data /tmp/pristine --run-dir "/tmp/runs/$1" --engine workers --max-minutes 4.5 \
      --json >>"/tmp/train_$1.log" 2>&1
  fi
}
train hirqa configs/nr_hirqa_gpu.json &
train hirqa-s configs/nr_hirqa_s_gpu.json &
wait
tail -n 40 /tmp/train_hirqa.log /tmp/train_hirqa-s.log

python3 benchmarks/nr_quality.py --part synthetic --pristine /tmp/pristine --device cuda \
  --checkpoint hirqa=/tmp/runs/hirqa/checkpoints/best.safetensors \
  --checkpoint hirqa-s=/tmp/runs/hirqa-s/checkpoints/best.safetensors \
  --out "$OUT/nr_quality_synthetic.json" 2>&1 | tail -n 5

cp /tmp/train_hirqa.log /tmp/train_hirqa-s.log /tmp/runs/ 2>/dev/null
tar -czf "$OUT/nr_runs.tar.gz" -C /tmp/runs --exclude 'step_*' .
ls -la "$OUT"
