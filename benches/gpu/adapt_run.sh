#!/usr/bin/env bash
# On the GPU machine: `lore adapt`'s step against PyTorch + transformers + PEFT on the same GPU.
# Run from a folder holding adapt-bench.gz (`cargo bench --bench adapt --no-run --features
# cuda`, stripped and gzipped), tokenizer.json (any), peft_lora_bench.py and this folder's Python
# scripts; results go to $OUT. docs/benchmarks.md ("Adapt on a GPU") describes the run.
set -uo pipefail   # no -e: a failing step is reported and the rest still runs
cd "$(dirname "$0")"
gunzip -kf adapt-bench.gz && chmod +x adapt-bench
[ -e lore.gz ] && gunzip -kf lore.gz && chmod +x lore
L=$(dirname "$(find /opt /usr -name libcublas.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
PY=$(ls /opt/torch/.venv/bin/python3 2>/dev/null || which python3)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
$PY -c 'import torch, transformers, peft; print(torch.__version__, transformers.__version__, peft.__version__)' | tee "$OUT/versions.txt"
$PY adapt_models.py small small-f32 float32 tokenizer.json
$PY adapt_models.py small small-bf16 bfloat16 tokenizer.json
./adapt-bench parity --model small-f32 --out parity-f32
$PY peft_parity.py small-f32 parity-f32 cuda float32 | tee "$OUT/parity-f32.json"
./adapt-bench parity --model small-bf16 --out parity-bf16 --device cuda
$PY peft_parity.py small-bf16 parity-bf16 cuda bfloat16 | tee "$OUT/parity-bf16.json"
# lore's fused CUDA kernels against the composed candle ops they replace
./adapt-bench kernels --model small-bf16 --device cuda | tee "$OUT/kernels-check.jsonl"
$PY adapt_models.py qwen05 qwen05 bfloat16 tokenizer.json
peak() { # run "$2..." with its output in $1; print the highest memory.used (MiB) seen meanwhile
  local out=$1; shift
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > mem.txt & local w=$!
  "$@" > "$out"; kill $w; sort -n mem.txt | tail -1
}
for run in $(seq 1 "${RUNS:-2}"); do  # RUNS=1 for a shorter session
  for batch in 8 4 2; do  # the smaller batches only when a larger one does not fit
    m=$(peak "$OUT/lore-$run.json" ./adapt-bench throughput --model qwen05 --seq 1024 --batch $batch --steps 10 --device cuda)
    echo "{\"impl\": \"lore\", \"run\": $run, \"batch\": $batch, \"peak_mib_nvidia_smi\": $m}" | tee "$OUT/lore-mem-$run.json"
    grep -q tokens_per_s "$OUT/lore-$run.json" && break
  done
  cat "$OUT/lore-$run.json"
  m=$(peak "$OUT/peft-$run.json" $PY peft_lora_bench.py --seq 1024 --batch 8 --steps 10)
  echo "{\"impl\": \"peft\", \"run\": $run, \"peak_mib_nvidia_smi\": $m}" | tee "$OUT/peft-mem-$run.json"
  cat "$OUT/peft-$run.json"
done
# the same step without lore's fused kernels (candle's own only), once
m=$(peak "$OUT/lore-composed.json" ./adapt-bench throughput --model qwen05 --seq 1024 --batch 8 --steps 10 --device cuda --composed)
echo "{\"impl\": \"lore --composed\", \"peak_mib_nvidia_smi\": $m}" | tee "$OUT/lore-composed-mem.json"
cat "$OUT/lore-composed.json"
# The command line on the GPU: an adapter of the tiny model on a carried export, if present.
if [ -x lore ] && [ -d model ] && [ -d slice1 ]; then
  ./lore init gpu.lore
  ./lore --kb gpu.lore adapt --model model --data slice1 --device cuda --epochs 2 --batch 8 --lr 5e-3 --json > cli.jsonl 2> "$OUT/cli-stderr.txt"
  tail -1 cli.jsonl | tee "$OUT/cli-cuda.json" | head -c 600; echo
  head -3 cli.jsonl > "$OUT/cli-steps.jsonl"
  ./lore --kb gpu.lore adapters | tee "$OUT/cli-adapters.txt"
fi
