#!/usr/bin/env bash
# On the GPU machine, after adapt_run.sh made qwen05/: where a lore adapt step's time goes.
# The parts of a step (adapt-bench profile), and, when nsys is there, the kernels by time.
set -uo pipefail
cd "$(dirname "$0")"
gunzip -kf adapt-bench.gz && chmod +x adapt-bench
L=$(dirname "$(find /opt /usr -name libcublas.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
PY=$(ls /opt/torch/.venv/bin/python3 2>/dev/null || which python3)
[ -d qwen05 ] || $PY adapt_models.py qwen05 qwen05 bfloat16 tokenizer.json
[ -n "${SKIP_PARTS:-}" ] || ./adapt-bench profile --model qwen05 --seq 1024 --batch 8 --device cuda | tee "$OUT/profile.json"
NSYS=$(command -v nsys || find / -name nsys -type f -perm -u+x 2>/dev/null | head -1)
if [ -n "$NSYS" ]; then
  echo "nsys: $NSYS"
  timeout 300 "$NSYS" profile --trace=cuda -o "$PWD/step" --force-overwrite true ./adapt-bench throughput --model qwen05 --seq 1024 --batch 8 --steps 2 --warmup 1 --device cuda 2>&1 | tail -5
  ls -la step* 2>&1 | head
  timeout 200 "$NSYS" stats --report cuda_gpu_kern_sum --format csv "$PWD/step.nsys-rep" 2>&1 | head -40 > "$OUT/kernels.csv"
  head -25 "$OUT/kernels.csv" | cut -c1-220
else
  echo "no nsys" | tee "$OUT/kernels.csv"
fi
