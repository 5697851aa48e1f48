"""Load an adapter directory written by `lore adapters export` with vLLM's own loader code:
PEFTHelper.from_local_dir + validate_legal, then LoRAModel.from_local_checkpoint with the
modules vLLM expects for a Llama model, and compare every loaded A and B with the file.
Runs on the CPU; vLLM is not a lore dependency (install it in a throwaway virtualenv).
Usage: python vllm_check.py ADAPTER_DIR [MAX_LORA_RANK]   Prints one JSON line."""
import json, sys

import torch
from safetensors.torch import load_file
from vllm.config.lora import LoRAConfig
import vllm.lora.lora_model as lora_model_module
from vllm.lora.lora_model import LoRAModel
from vllm.lora.peft_helper import PEFTHelper
from vllm.model_executor.models.llama import LlamaForCausalLM

adapter = sys.argv[1]
max_rank = int(sys.argv[2]) if len(sys.argv) > 2 else 64
helper = PEFTHelper.from_local_dir(adapter, max_position_embeddings=4096)
helper.validate_legal(LoRAConfig(max_lora_rank=max_rank))
# The modules a Llama model in vLLM takes LoRA on, with its packed layers expanded (as vLLM's
# worker does before loading an adapter).
packed = LlamaForCausalLM.packed_modules_mapping
expected = set()
for module in ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]:
    expected.update(packed.get(module, [module]))
# This machine has no GPU: loading to the CPU must not pin memory (vLLM decides that from the
# platform it was built for).
lora_model_module.PIN_MEMORY = False
model = LoRAModel.from_local_checkpoint(adapter, expected, helper, device="cpu", dtype=torch.float32)
saved = load_file(f"{adapter}/adapter_model.safetensors")
mismatches = []
for name, lora in model.loras.items():
    prefix = f"base_model.model.{name}"
    for got, key in ((lora.lora_a, "lora_A"), (lora.lora_b, "lora_B")):
        want = saved[f"{prefix}.{key}.weight"]
        if got.shape != want.shape or not torch.equal(got, want):
            mismatches.append(f"{prefix}.{key}")
print(json.dumps({
    "adapter": adapter,
    "vllm_rank": helper.r,
    "vllm_scaling": helper.vllm_lora_scaling_factor,
    "modules_loaded": len(model.loras),
    "tensors_in_file": len(saved),
    "shapes_and_values_differ": mismatches,
    "example": {k: list(v.shape) for k, v in list(saved.items())[:2]},
}))
