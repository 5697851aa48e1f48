#!/usr/bin/env bash
# On the GPU machine: lore's candle BERT embedder on CUDA (and the 16-core CPU) against PyTorch
# on the same model, texts and batching. Run from a folder holding lore.gz (a `--features cuda`
# build), peft-small.lore, texts.json and the two Python scripts; results go to $OUT.
# docs/benchmarks.md ("Embedding on a GPU") says how to prepare that folder.
set -euo pipefail
cd "$(dirname "$0")"
gunzip -kf lore.gz && chmod +x lore
L=$(dirname "$(find /opt /usr -name libcublas.so.13 2>/dev/null | head -1)")
export LD_LIBRARY_PATH=$L:${LD_LIBRARY_PATH:-}
PY=$(ls /opt/torch/.venv/bin/python3 2>/dev/null || which python3)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
[ -d model ] || $PY make_model.py texts.json model 2>&1 | tail -1
for i in 1 2 3 4; do cp peft-small.lore kb$i.lore; done
./lore --kb kb1.lore -q embed --model model --device cuda --json > "$OUT/lore-cuda-warmup.json"
./lore --kb kb2.lore -q embed --model model --device cuda --json > "$OUT/lore-cuda.json"
./lore --kb kb4.lore -q embed --model model --device cuda --json > "$OUT/lore-cuda-2.json"
$PY torch_embed.py texts.json model cuda > "$OUT/torch-cuda.json" 2>/dev/null
$PY torch_embed.py texts.json model cuda sorted > "$OUT/torch-cuda-sorted.json" 2>/dev/null
./lore --kb kb3.lore -q embed --model model --device cpu --json > "$OUT/lore-cpu16.json"
$PY torch_embed.py texts.json model cpu sorted > "$OUT/torch-cpu16-sorted.json" 2>/dev/null
./lore --kb kb2.lore query 'issues similar to "lora dropout in merged weights" limit 3' > "$OUT/query.txt"
cat "$OUT"/*.json "$OUT/query.txt"
