//! A model directory in the Hugging Face layout: `config.json`, `tokenizer.json` and
//! `*.safetensors` (one file, or shards listed by `model.safetensors.index.json`). Only
//! decoder-only Llama-family architectures are accepted: Llama, Qwen2 (Qwen2.5) and Mistral.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::AdaptError;

/// The architectures lore trains, by `model_type`.
pub const SUPPORTED: &[&str] = &["llama", "qwen2", "mistral"];

/// What lore reads of `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    pub model_type: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f64,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes `rope_theta` and the scaling here.
    #[serde(default)]
    pub rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// Llama's switch for q/k/v/o biases; Qwen2 always has q/k/v biases.
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default = "default_act")]
    pub hidden_act: String,
}

fn default_eps() -> f64 {
    1e-6
}
fn default_act() -> String {
    "silu".into()
}

impl ModelConfig {
    /// The rotary base: `rope_theta`, or `rope_parameters.rope_theta`, or 10,000.
    pub fn theta(&self) -> f64 {
        self.rope_theta
            .or_else(|| {
                self.rope_parameters
                    .as_ref()
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(|t| t.as_f64())
            })
            .unwrap_or(10_000.0)
    }

    /// The rotary scaling: `rope_scaling`, or `rope_parameters` when it names a type.
    pub fn scaling(&self) -> Option<&serde_json::Value> {
        self.rope_scaling
            .as_ref()
            .filter(|s| !s.is_null())
            .or(self.rope_parameters.as_ref())
    }

    pub fn kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim
            .unwrap_or(self.hidden_size / self.num_attention_heads)
    }

    /// Whether q/k/v projections carry a bias.
    pub fn qkv_bias(&self) -> bool {
        self.model_type == "qwen2" || self.attention_bias
    }

    /// Whether o_proj carries a bias.
    pub fn o_bias(&self) -> bool {
        self.model_type != "qwen2" && self.attention_bias
    }

    /// The input and output width of a projection.
    pub fn shape_of(&self, module: &str) -> Option<(usize, usize)> {
        let (h, i, d) = (self.hidden_size, self.intermediate_size, self.head_dim());
        Some(match module {
            "q_proj" => (h, self.num_attention_heads * d),
            "k_proj" | "v_proj" => (h, self.kv_heads() * d),
            "o_proj" => (self.num_attention_heads * d, h),
            "gate_proj" | "up_proj" => (h, i),
            "down_proj" => (i, h),
            _ => return None,
        })
    }

    /// Parameters of the base model.
    pub fn parameters(&self) -> u64 {
        let per_layer: usize = super::lora::ALL_TARGETS
            .iter()
            .filter_map(|m| self.shape_of(m))
            .map(|(i, o)| i * o)
            .sum::<usize>()
            + 2 * self.hidden_size;
        let embed = self.vocab_size * self.hidden_size;
        let head = if self.tie_word_embeddings { 0 } else { embed };
        (per_layer * self.num_hidden_layers + embed + head + self.hidden_size) as u64
    }

    fn check(&self, path: &Path) -> Result<(), AdaptError> {
        let bad = |detail: String| AdaptError::Model {
            path: path.to_path_buf(),
            detail,
        };
        if !SUPPORTED.contains(&self.model_type.as_str()) {
            return Err(bad(format!(
                "model_type `{}` is not supported (lore trains {})",
                self.model_type,
                SUPPORTED.join(", ")
            )));
        }
        if self.hidden_act != "silu" {
            return Err(bad(format!(
                "hidden_act `{}` is not supported (only silu)",
                self.hidden_act
            )));
        }
        if self.num_attention_heads == 0
            || self.kv_heads() == 0
            || !self.num_attention_heads.is_multiple_of(self.kv_heads())
        {
            return Err(bad(format!(
                "{} attention heads cannot share {} key/value heads",
                self.num_attention_heads,
                self.kv_heads()
            )));
        }
        if !self.head_dim().is_multiple_of(2) {
            return Err(bad(format!("head_dim {} is odd", self.head_dim())));
        }
        match self.scaling().and_then(|s| {
            s.get("rope_type")
                .or_else(|| s.get("type"))
                .and_then(|t| t.as_str())
        }) {
            None | Some("default") | Some("llama3") => Ok(()),
            Some(other) => Err(bad(format!("rope_scaling `{other}` is not supported"))),
        }
    }
}

/// A model directory, checked: its config, tokenizer and weight files.
#[derive(Debug, Clone)]
pub struct ModelDir {
    pub path: PathBuf,
    pub config: ModelConfig,
    pub weight_files: Vec<PathBuf>,
}

impl ModelDir {
    /// Read and check a model directory; every missing file is named.
    pub fn open(path: &Path) -> Result<ModelDir, AdaptError> {
        let bad = |detail: String| AdaptError::Model {
            path: path.to_path_buf(),
            detail,
        };
        if !path.is_dir() {
            return Err(bad("not a directory (a model directory holds config.json, tokenizer.json and *.safetensors)".into()));
        }
        let mut missing = Vec::new();
        for f in ["config.json", "tokenizer.json"] {
            if !path.join(f).is_file() {
                missing.push(f.to_string());
            }
        }
        let weight_files = weight_files(path).map_err(bad)?;
        if weight_files.is_empty() {
            missing.push("model.safetensors (or model.safetensors.index.json)".into());
        }
        if !missing.is_empty() {
            return Err(bad(format!("missing {}", missing.join(", "))));
        }
        let text = std::fs::read(path.join("config.json"))
            .map_err(|e| bad(format!("config.json: {e}")))?;
        let config: ModelConfig =
            serde_json::from_slice(&text).map_err(|e| bad(format!("config.json: {e}")))?;
        config.check(path)?;
        Ok(ModelDir {
            path: path.to_path_buf(),
            config,
            weight_files,
        })
    }

    /// sha256 over `config.json` and every weight file: the base model's identity in a lineage.
    pub fn hash(&self) -> Result<String, AdaptError> {
        let mut h = Sha256::new();
        for f in std::iter::once(self.path.join("config.json")).chain(self.weight_files.clone()) {
            let mut file = std::fs::File::open(&f).map_err(|e| AdaptError::Io {
                path: f.clone(),
                source: e,
            })?;
            std::io::copy(&mut file, &mut h).map_err(|e| AdaptError::Io {
                path: f.clone(),
                source: e,
            })?;
        }
        Ok(format!("{:x}", h.finalize()))
    }

    /// sha256 of `tokenizer.json` (what export writes into a manifest).
    pub fn tokenizer_hash(&self) -> Result<String, AdaptError> {
        let f = self.path.join("tokenizer.json");
        let bytes = std::fs::read(&f).map_err(|e| AdaptError::Io {
            path: f.clone(),
            source: e,
        })?;
        Ok(format!("{:x}", Sha256::digest(&bytes)))
    }
}

/// The weight files: the shards named by `model.safetensors.index.json`, or `model.safetensors`,
/// or every `*.safetensors` in the directory.
fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read(&index).map_err(|e| format!("{}: {e}", index.display()))?;
        let v: serde_json::Value =
            serde_json::from_slice(&text).map_err(|e| format!("{}: {e}", index.display()))?;
        let mut files: Vec<String> = v["weight_map"]
            .as_object()
            .ok_or_else(|| format!("{}: no weight_map", index.display()))?
            .values()
            .filter_map(|f| f.as_str().map(str::to_string))
            .collect();
        files.sort();
        files.dedup();
        let mut out = Vec::new();
        for f in files {
            let p = dir.join(&f);
            if !p.is_file() {
                return Err(format!(
                    "missing {f} (listed in model.safetensors.index.json)"
                ));
            }
            out.push(p);
        }
        return Ok(out);
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    out.sort();
    Ok(out)
}
