//! Writing an adapter as a PEFT directory that `PeftModel.from_pretrained` and vLLM load:
//! `adapter_config.json` and `adapter_model.safetensors` (keys
//! `base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight`, A `[r, in]`, B `[out, r]`).

use std::path::Path;

use super::lineage::AdapterRecord;
use super::lora::LoraConfig;
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
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| AdaptError::Io {
            path: path.clone(),
            source: e,
        }
    };
    if let Ok(mut entries) = std::fs::read_dir(out) {
        if entries.next().is_some() {
            return Err(AdaptError::Io {
                path: out.to_path_buf(),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "exists and is not empty",
                ),
            });
        }
    }
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(io(parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".lore-adapter-")
        .tempdir_in(parent)
        .map_err(io(parent))?;
    let config = serde_json::to_string_pretty(&adapter_config(lora, base_model)).expect("json");
    std::fs::write(tmp.path().join("adapter_config.json"), config + "\n")
        .map_err(io(&out.join("adapter_config.json")))?;
    std::fs::write(tmp.path().join("adapter_model.safetensors"), weights)
        .map_err(io(&out.join("adapter_model.safetensors")))?;
    if let Some(record) = record {
        let lineage = serde_json::to_string_pretty(record).expect("json");
        std::fs::write(tmp.path().join("lore_adapter.json"), lineage + "\n")
            .map_err(io(&out.join("lore_adapter.json")))?;
    }
    let _ = std::fs::remove_dir(out);
    let kept = tmp.keep();
    std::fs::rename(&kept, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        io(out)(e)
    })
}
