#!/usr/bin/env bash
# Continual learning, measured: three `lore adapt` runs on three time slices of a repository's
# commit messages (each continues the last), against one from-scratch run on the union, then
# every adapter evaluated on every slice's validation set. docs/benchmarks.md has the result.
#
#   bash benches/continual.sh REPO [WORKDIR]     (REPO: e.g. a clone of huggingface/peft)
#   REPLAY=1.0 DEVICE=cuda LORE=path/to/cuda/lore bash benches/continual.sh REPO WORKDIR
#
# With a WORKDIR from an earlier run the ingest, model and exports are reused, so they can be
# made here and the directory carried to a GPU machine for the training part.
#
# Slices: non-merge commits on main until 2023-06-30, 2024-03-31 and 2024-12-31 (export's
# time split keeps the newest tenth of each for validation). The model is `lore model init
# --tiny` (a tokenizer trained on the repository's own text, a random-init 4-million-parameter
# Llama), on the CPU unless DEVICE=cuda. REPLAY (default 0.2) is passed to every run.
set -euo pipefail
repo=$1
work=${2:-/tmp/lore-continual}
lore=${LORE:-$(dirname "$0")/../target/release/lore}
mkdir -p "$work"
export LORE_KB=$work/repo.lore
[ -e "$LORE_KB" ] || "$lore" ingest "$repo" --refs main --no-szz --no-index -q
[ -d "$work/model" ] || "$lore" model init --tiny --out "$work/model" -q
device=${DEVICE:-cpu}
train=(--epochs 2 --batch 8 --lr 5e-3 --eval-every 20 --patience 3 --seed 1 --replay "${REPLAY:-0.2}" --device "$device")
slices=(2023-06-30 2024-03-31 2024-12-31)
for i in 0 1 2; do
  [ -e "$work/slice$((i + 1))/manifest.json" ] && continue
  "$lore" export --query "commits where merge = false until ${slices[$i]}" -t commit_message \
    -o "$work/slice$((i + 1))" --tokenizer "$work/model" --seq-len 512 --val 0.1 \
    --name "slice$((i + 1))" --force -q
done
# Adapters 1-3: the continual chain.
for i in 1 2 3; do
  "$lore" adapt --model "$work/model" --data "$work/slice$i" "${train[@]}" -q | tee "$work/adapt$i.txt"
done
# Adapter 4: from scratch on the union (the third slice holds all three).
"$lore" adapt --model "$work/model" --data "$work/slice3" "${train[@]}" --from-scratch -q | tee "$work/adapt4.txt"
"$lore" adapters
for id in 3 4; do
  "$lore" adapters eval "$id" --model "$work/model" --on 1,2,3 --device "$device" -q
done
