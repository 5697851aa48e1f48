//! BERT-family sentence encoders through candle, from a local Hugging Face model directory.
//!
//! The directory holds `config.json`, `tokenizer.json` and `model.safetensors` (all-MiniLM-L6-v2,
//! bge-small-en, and code models with a BERT architecture). Texts are tokenized in batches,
//! padded to the longest text of the batch and cut at the model's maximum length; the last hidden
//! states are mean-pooled over real tokens (the attention mask) and L2-normalised, as those model
//! cards prescribe.

use std::path::{Path, PathBuf};

use candle_core::{DType, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{PaddingParams, PaddingStrategy, Tokenizer, TruncationParams};

use super::Embedder;
use crate::index::documents::Fnv;
use crate::index::IndexError;

/// Where a candle model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    #[default]
    Cpu,
    /// The first CUDA GPU (builds with `--features cuda`).
    Cuda,
}

/// Longest input, in tokens, whatever the model allows.
const MAX_TOKENS: usize = 256;

/// A BERT sentence encoder; see the module docs.
pub struct BertEmbedder {
    model: BertModel,
    tokenizer: Tokenizer,
    device: candle_core::Device,
    dim: usize,
    model_id: String,
}

fn embed_err(dir: &Path, what: &str, e: impl Into<crate::index::BoxError>) -> IndexError {
    IndexError::Model {
        what: format!("{}: {what}", dir.display()),
        source: e.into(),
    }
}

impl BertEmbedder {
    /// Load the model in `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<BertEmbedder, IndexError> {
        let file = |name: &str| -> Result<PathBuf, IndexError> {
            let p = dir.join(name);
            if p.is_file() {
                Ok(p)
            } else {
                Err(IndexError::Embed(format!(
                    "{} has no {name}; a model directory needs config.json, tokenizer.json and model.safetensors",
                    dir.display()
                )))
            }
        };
        let config_path = file("config.json")?;
        let tokenizer_path = file("tokenizer.json")?;
        let weights_path = file("model.safetensors")?;
        let config_text = std::fs::read_to_string(&config_path)
            .map_err(|e| embed_err(dir, "reading config.json", e))?;
        let config: Config = serde_json::from_str(&config_text)
            .map_err(|e| embed_err(dir, "config.json is not a BERT config", e))?;
        let device = match device {
            Device::Cpu => candle_core::Device::Cpu,
            Device::Cuda => candle_core::Device::new_cuda(0)
                .map_err(|e| embed_err(dir, "opening CUDA device 0", e))?,
        };
        let weights = std::fs::read(&weights_path)
            .map_err(|e| embed_err(dir, "reading model.safetensors", e))?;
        let mut h = Fnv::new();
        h.write(config_text.as_bytes());
        h.write(&weights);
        let vb = VarBuilder::from_buffered_safetensors(weights, DType::F32, &device)
            .map_err(|e| embed_err(dir, "model.safetensors", e))?;
        let model =
            BertModel::load(vb, &config).map_err(|e| embed_err(dir, "loading BERT weights", e))?;
        let mut tokenizer = Tokenizer::from_file(&tokenizer_path)
            .map_err(|e| embed_err(dir, "tokenizer.json", e))?;
        let max_len = config.max_position_embeddings.min(MAX_TOKENS);
        let pad_id = tokenizer
            .token_to_id("[PAD]")
            .unwrap_or(config.pad_token_id as u32);
        let pad_token = tokenizer
            .id_to_token(pad_id)
            .unwrap_or_else(|| "[PAD]".into());
        tokenizer.with_padding(Some(PaddingParams {
            strategy: PaddingStrategy::BatchLongest,
            pad_id,
            pad_token,
            ..PaddingParams::default()
        }));
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..TruncationParams::default()
            }))
            .map_err(|e| embed_err(dir, "tokenizer truncation", e))?;
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        Ok(BertEmbedder {
            model,
            tokenizer,
            device,
            dim: config.hidden_size,
            model_id: format!("bert-{name}-{:016x}", h.0),
        })
    }

    fn embed_batch(&self, texts: &[&str]) -> candle_core::Result<Vec<Vec<f32>>> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.to_vec(), true)
            .map_err(candle_core::Error::msg)?;
        let ids: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_ids(), &self.device))
            .collect::<candle_core::Result<_>>()?;
        let masks: Vec<Tensor> = encodings
            .iter()
            .map(|e| Tensor::new(e.get_attention_mask(), &self.device))
            .collect::<candle_core::Result<_>>()?;
        let ids = Tensor::stack(&ids, 0)?;
        let mask = Tensor::stack(&masks, 0)?;
        let type_ids = ids.zeros_like()?;
        let hidden = self.model.forward(&ids, &type_ids, Some(&mask))?;
        // Mean over real tokens.
        let mask_f = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        let summed = hidden.broadcast_mul(&mask_f)?.sum(1)?;
        let counts = mask_f.sum(1)?.clamp(1e-9, f64::MAX)?;
        let mean = summed.broadcast_div(&counts)?;
        let norms = mean.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let unit = mean.broadcast_div(&norms)?;
        unit.to_dtype(DType::F32)?.to_vec2::<f32>()
    }
}

impl Embedder for BertEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        // An empty text would give a sequence of only special tokens; keep it but mark it.
        self.embed_batch(texts).map_err(|e| IndexError::Model {
            what: format!("running {}", self.model_id),
            source: e.into(),
        })
    }

    fn batch_size(&self) -> usize {
        32
    }
}
