//! Writing an adapter as a PEFT directory that `PeftModel.from_pretrained` and vLLM load:
//! `adapter_config.json` and `adapter_model.safetensors` (keys
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, A `[r, in]`, B `[out, r]`).

use std::path::Path;

use super::lineage::AdapterRecord;
use super::lora::LoraConfig;
use super::staging::Staging;
use super::AdaptError;

/// `adapter_config.json` for an adapter of shape `lora` on the model at `base_model`.
pub fn adapter_config(lora: &LoraConfig, base_model: &str) -> serde_json::Value {
    let alpha = lora.alpha;
    let alpha = if alpha.fract() == 0.0 && alpha.abs() < 1e15 {
        serde_json::json!(alpha as i64)
    } else {
        serde_json::json!(alpha)
    };
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": lora.rank,
        "lora_alpha": alpha,
        "lora_dropout": lora.dropout,
        "target_modules": lora.targets,
        "bias": "none",
        "use_rslora": lora.rslora,
        "modules_to_save": null,
        "fan_in_fan_out": false,
        "inference_mode": true,
        "init_lora_weights": true,
        "use_dora": false,
        "layers_to_transform": null,
        "layers_pattern": null,
        "rank_pattern": {},
        "alpha_pattern": {},
        "revision": null,
    })
}

/// Write an adapter (its `weights`, from [`super::lora::LoraSet::to_safetensors`]) to `out`,
/// which must not exist or be empty, with its lore record as `lore_adapter.json` when given.
/// The files are written into a temporary directory beside `out` and moved into place at the
/// end.
pub fn write_peft_dir(
    lora: &LoraConfig,
    base_model: &str,
    weights: &[u8],
    record: Option<&AdapterRecord>,
    out: &Path,
) -> Result<(), AdaptError> {
    let dir = Staging::new(out, ".lore-adapter-")?;
    let config = serde_json::to_string_pretty(&adapter_config(lora, base_model)).expect("json");
    dir.write("adapter_config.json", (config + "\n").as_bytes())?;
    dir.write("adapter_model.safetensors", weights)?;
    if let Some(record) = record {
        let lineage = serde_json::to_string_pretty(record).expect("json");
        dir.write("lore_adapter.json", (lineage + "\n").as_bytes())?;
    }
    dir.finish()
}
