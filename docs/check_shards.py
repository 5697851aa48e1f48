#!/usr/bin/env python3
"""Check a `lore export --tokenizer` directory the way a PyTorch user would read it: load every
shard with safetensors + numpy and assert shapes, dtypes, masking and document boundaries, and
that each document decodes to an example of the split's JSONL.

Usage: docs/check_shards.py EXPORT_DIR TOKENIZER_DIR
Needs: pip install safetensors numpy tokenizers
"""
import json
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer


def main():
    out, tok_dir = Path(sys.argv[1]), Path(sys.argv[2])
    manifest = json.loads((out / "manifest.json").read_text())
    tok = Tokenizer.from_file(str(tok_dir / "tokenizer.json"))
    seq_len = manifest["options"]["seq_len"]
    # With a chat template the documents hold its markers too; check their text only without.
    plain = not manifest["tokenizer"]["chat_template"]
    checked = 0
    for split in ("train", "val"):
        examples = [json.loads(l) for l in (out / f"{split}.jsonl").read_text().splitlines()]
        texts = {e["prompt"] + "\n" + e["completion"] for e in examples}
        for shard in sorted(out.glob(f"{split}-*.safetensors")):
            t = load_file(str(shard))
            ids, labels, pos, lens = t["input_ids"], t["labels"], t["position_ids"], t["document_lengths"]
            assert ids.dtype == np.int32 and pos.dtype == np.int32 and lens.dtype == np.int32, shard
            assert labels.dtype == np.int64, shard
            rows = ids.shape[0]
            assert ids.shape == labels.shape == pos.shape == (rows, seq_len), shard
            assert lens.shape[0] == rows, shard
            for r in range(rows):
                at = 0
                for n in lens[r]:
                    if n == 0:
                        continue
                    doc = slice(at, at + n)
                    assert (pos[r, doc] == np.arange(n)).all(), "positions restart at 0 per document"
                    assert labels[r, at] == -100, "a document's first token is never a label"
                    trained = labels[r, doc] != -100
                    assert (labels[r, doc][trained] == ids[r, doc][trained]).all(), "labels are the tokens"
                    text = tok.decode(ids[r, doc].tolist(), skip_special_tokens=True)
                    assert not plain or any(text.startswith(x[:200]) or x.startswith(text[:200]) for x in texts), \
                        f"{shard} row {r}: a document that is in no {split} example"
                    at += n
                    checked += 1
                assert (labels[r, at:] == -100).all(), "padding is never a label"
    print(f"ok: {checked} documents in {manifest['tokens']['train_rows'] + manifest['tokens']['val_rows']} rows")


if __name__ == "__main__":
    main()
