"""Load a base model with transformers, apply the adapter lore exported with
PeftModel.from_pretrained, and compare logits, loss and every LoRA gradient with lore's
(`cargo bench --bench adapt -- parity`). Usage: peft_parity.py MODEL OUT DEVICE float32|bfloat16
Prints one JSON line."""
import json, sys
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from peft import PeftModel

model_dir, out_dir, device, dtype = sys.argv[1:5]
dt = getattr(torch, dtype)
lore = load_file(f"{out_dir}/lore_outputs.safetensors")
ids = lore["input_ids"].long().to(device)
base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dt, attn_implementation="eager").to(device)
model = PeftModel.from_pretrained(base, f"{out_dir}/adapter", is_trainable=True)
for name, p in model.named_parameters():
    if "lora_" in name:
        p.data = p.data.float()
model.train()
with torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
    out = model(input_ids=ids, labels=ids)
logits = out.logits.float()
theirs = lore["logits"].to(device)
out.loss.backward()
rel_errors = {}
for name, p in model.named_parameters():
    if "lora_" not in name:
        continue
    key = "grad." + name.replace(".default", "")
    g_lore = lore[key].to(device).float()
    g = p.grad.float()
    rel_errors[key] = ((g - g_lore).norm() / g.norm().clamp_min(1e-30)).item()
errs = sorted(rel_errors.values())
print(json.dumps({
    "dtype": dtype,
    "device": device,
    "lora_tensors": len(errs),
    "logits_max_abs_diff": (logits - theirs).abs().max().item(),
    "logits_max_abs": logits.abs().max().item(),
    "logits_rel_max": ((logits - theirs).abs().max() / logits.abs().max()).item(),
    "loss_peft": out.loss.item(),
    "loss_lore": lore["loss"].item(),
    "grad_rel_err_median": errs[len(errs) // 2],
    "grad_rel_err_max": errs[-1],
    "worst": max(rel_errors, key=rel_errors.get),
}))
