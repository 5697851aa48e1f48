#!/usr/bin/env bash
# On the GPU machine: lore's training step by CUDA kernel (Nsight Compute), on a 2-layer
# Qwen2.5-0.5B-shaped model (the per-layer kernels are those of the 24-layer one), seq 1024 x 8,
# one step after one warm-up step. Prints the kernels by total time.
set -uo pipefail
cd "$(dirname "$0")"
gunzip -kf adapt-bench.gz && chmod +x adapt-bench
L=$(dirname "$(find /opt /usr -name libcublas.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
PY=$(ls /opt/torch/.venv/bin/python3 2>/dev/null || which python3)
NCU=$(command -v ncu || find /opt /usr -name ncu -type f -perm -u+x 2>/dev/null | head -1)
[ -d qwen05-2 ] || $PY adapt_models.py qwen05-2 qwen05-2 bfloat16 tokenizer.json
timeout 500 "$NCU" --metrics gpu__time_duration.sum --csv --log-file ncu.csv \
  ./adapt-bench throughput --model qwen05-2 --seq 1024 --batch 8 --steps 1 --warmup 1 --device cuda > /dev/null
$PY - <<'PY' | tee "$OUT/kernels.txt"
import csv, collections
rows = list(csv.DictReader(l for l in open("ncu.csv") if l.startswith('"')))
total = collections.Counter(); count = collections.Counter()
for r in rows:
    if r.get("Metric Name") == "gpu__time_duration.sum":
        v = float(r["Metric Value"].replace(",", ""))
        scale = {"nsecond": 1e-9, "usecond": 1e-6, "msecond": 1e-3, "second": 1.0}.get(r["Metric Unit"], 1e-9)
        name = r["Kernel Name"].split("(")[0][:70]
        total[name] += v * scale; count[name] += 1
all_s = sum(total.values())
print(f"kernels: {sum(count.values())}, GPU time {all_s*1000:.1f} ms (warm-up and timed step)")
for name, t in total.most_common(25):
    print(f"{t*1000:9.2f} ms {100*t/all_s:5.1f}% {count[name]:6d}x  {name}")
PY
