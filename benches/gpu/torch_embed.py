"""The PyTorch baseline for `lore embed`: the same model directory and texts, batches of 32
padded to the longest, at most 256 tokens, mean pooling over the attention mask, L2 norm."""
import json, sys, time
import torch
from transformers import BertModel, PreTrainedTokenizerFast

texts = json.load(open(sys.argv[1]))
model_dir = sys.argv[2]
device = sys.argv[3] if len(sys.argv) > 3 else "cuda"
if len(sys.argv) > 4 and sys.argv[4] == "sorted":
    texts = sorted(texts, key=len)  # as lore batches: similar lengths together
tok = PreTrainedTokenizerFast(tokenizer_file=f"{model_dir}/tokenizer.json", pad_token="[PAD]",
                              unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
model = BertModel.from_pretrained(model_dir, add_pooling_layer=False).to(device).eval()

def run():
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 32):
            enc = tok(texts[i:i + 32], padding="longest", truncation=True, max_length=256,
                      return_tensors="pt").to(device)
            h = model(**enc).last_hidden_state
            m = enc["attention_mask"].unsqueeze(-1).float()
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            out.append(torch.nn.functional.normalize(v, dim=-1).cpu())
    if device == "cuda":
        torch.cuda.synchronize()
    return torch.cat(out)

run()  # warm-up
t = time.perf_counter()
vecs = run()
s = time.perf_counter() - t
print(json.dumps({"texts": len(texts), "seconds": s, "texts_per_s": len(texts) / s,
                  "device": device, "sorted": len(sys.argv) > 4, "torch": torch.__version__}))
