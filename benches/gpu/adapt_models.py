"""Random-init Qwen2-shaped models for `lore adapt`'s GPU checks, saved as Hugging Face
directories: `small` (4 layers, 256 wide, q/k/v biases made non-zero so the bias path is
checked) for logit and gradient parity with PEFT, and `qwen05` (Qwen2.5-0.5B's shapes) for the
throughput benchmark, `qwen05-2` (the same with 2 layers) for kernel profiles.
Usage: adapt_models.py small|qwen05|qwen05-2 OUT float32|bfloat16 TOKENIZER_JSON"""
import os, shutil, sys
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

shape, out, dtype, tokenizer = sys.argv[1:5]
if shape == "small":
    cfg = Qwen2Config(vocab_size=1000, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                      rope_theta=1000000.0, tie_word_embeddings=True)
else:
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864,
                      num_hidden_layers=2 if shape == "qwen05-2" else 24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1000000.0, tie_word_embeddings=True)
torch.manual_seed(0)
model = Qwen2ForCausalLM(cfg)
with torch.no_grad():
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            p.normal_(0.0, 0.02)
model = model.to(dtype=getattr(torch, dtype))
model.save_pretrained(out, safe_serialization=True)
shutil.copy(tokenizer, os.path.join(out, "tokenizer.json"))
print(out, sum(p.numel() for p in model.parameters()), "parameters", dtype)
