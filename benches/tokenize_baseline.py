#!/usr/bin/env python3
"""The baseline for `benches/export.rs`: Hugging Face's Python `tokenizers` encoding the same
prompts and completions with the same tokenizer.json, `encode_batch_fast` (no character
offsets, like lore's calls; `encode_batch` where the version lacks it) over all of them (Rust
threads underneath, as many as the machine has). Prints JSON: tokens, seconds (best of N after a
warm-up), tokens per second.

Usage: benches/tokenize_baseline.py TOKENIZER.json TEXTS.jsonl [RUNS]
"""
import json
import sys
import time

from tokenizers import Tokenizer


def main():
    tok = Tokenizer.from_file(sys.argv[1])
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    prompts, completions = [], []
    with open(sys.argv[2]) as f:
        for line in f:
            e = json.loads(line)
            prompts.append(e["prompt"])
            completions.append(e["completion"])
    eos = 1  # lore appends the end token to every completion

    # encode_batch_fast skips character offsets, as lore's tokenizer calls do.
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)

    def once():
        a = encode(prompts, add_special_tokens=True)
        b = encode(completions, add_special_tokens=False)
        return sum(len(x.ids) for x in a) + sum(len(x.ids) + eos for x in b)

    tokens = once()
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - t)
    print(json.dumps({"tokens": tokens, "seconds": best, "tokens_per_s": tokens / best}))


if __name__ == "__main__":
    main()
