//! A Llama-family decoder (Llama, Qwen2, Mistral) with frozen base weights and LoRA on chosen
//! projections. Packed rows are supported: position ids restart at every document and a
//! block-diagonal causal mask keeps documents from attending to each other.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::config::{ModelConfig, ModelDir};
use super::lora::LoraSet;
use super::ops::{self, frozen_linear};
use super::AdaptError;

type Result<T> = candle_core::Result<T>;

/// A frozen projection: weight `[out, in]` and an optional bias.
struct Proj {
    weight: Tensor,
    bias: Option<Tensor>,
}

struct Layer {
    input_norm: Tensor,
    post_norm: Tensor,
    proj: HashMap<&'static str, Proj>,
}

/// The base model, frozen.
pub struct Model {
    pub config: ModelConfig,
    pub dtype: DType,
    pub device: Device,
    embed: Tensor,
    layers: Vec<Layer>,
    norm: Tensor,
    lm_head: Tensor,
    inv_freq: Vec<f32>,
}

/// A batch of packed rows, row-major `[rows, seq]`.
#[derive(Debug, Clone)]
pub struct Batch {
    pub ids: Vec<u32>,
    pub positions: Vec<u32>,
    /// Unshifted labels (the export's layout): -100 where nothing is predicted.
    pub labels: Vec<i64>,
    pub rows: usize,
    pub seq: usize,
}

impl Batch {
    /// The positions whose next token is a label, and those labels.
    pub fn targets(&self) -> (Vec<u32>, Vec<u32>) {
        let mut at = Vec::new();
        let mut targets = Vec::new();
        for r in 0..self.rows {
            for t in 0..self.seq - 1 {
                let label = self.labels[r * self.seq + t + 1];
                if label >= 0 {
                    at.push((r * self.seq + t) as u32);
                    targets.push(label as u32);
                }
            }
        }
        (at, targets)
    }
}

/// What every layer of one forward pass shares.
struct Pass<'a> {
    batch: &'a Batch,
    /// cos and sin, `[rows, 1, seq, head_dim/2]`.
    rotary: (Tensor, Tensor),
    /// `[rows, heads, seq, seq]`, 0 or -inf.
    mask: Tensor,
    lora: Option<&'a LoraSet>,
    train: bool,
}

const PROJECTIONS: [(&str, &str); 7] = [
    ("q_proj", "self_attn"),
    ("k_proj", "self_attn"),
    ("v_proj", "self_attn"),
    ("o_proj", "self_attn"),
    ("gate_proj", "mlp"),
    ("up_proj", "mlp"),
    ("down_proj", "mlp"),
];

impl Model {
    /// Load a checked model directory: f32 on the CPU, bf16 on CUDA.
    pub fn load(dir: &ModelDir, device: &Device) -> std::result::Result<Model, AdaptError> {
        let dtype = if device.is_cuda() {
            DType::BF16
        } else {
            DType::F32
        };
        let mut tensors: HashMap<String, Tensor> = HashMap::new();
        for file in &dir.weight_files {
            let loaded = candle_core::safetensors::load(file, &Device::Cpu).map_err(|e| {
                AdaptError::Model {
                    path: file.clone(),
                    detail: e.to_string(),
                }
            })?;
            tensors.extend(loaded);
        }
        let cfg = &dir.config;
        let mut take = |name: &str| -> std::result::Result<Tensor, AdaptError> {
            let t = tensors.remove(name).ok_or_else(|| AdaptError::Model {
                path: dir.path.clone(),
                detail: format!("the weights lack `{name}`"),
            })?;
            t.to_dtype(dtype)
                .and_then(|t| t.to_device(device))
                .map_err(AdaptError::Candle)
        };
        let embed = take("model.embed_tokens.weight")?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let mut proj = HashMap::new();
            for (name, group) in PROJECTIONS {
                let weight = take(&format!("{p}.{group}.{name}.weight"))?;
                let has_bias = match name {
                    "q_proj" | "k_proj" | "v_proj" => cfg.qkv_bias(),
                    "o_proj" => cfg.o_bias(),
                    _ => false,
                };
                let bias = if has_bias {
                    Some(take(&format!("{p}.{group}.{name}.bias"))?)
                } else {
                    None
                };
                proj.insert(name, Proj { weight, bias });
            }
            layers.push(Layer {
                input_norm: take(&format!("{p}.input_layernorm.weight"))?,
                post_norm: take(&format!("{p}.post_attention_layernorm.weight"))?,
                proj,
            });
        }
        let norm = take("model.norm.weight")?;
        let lm_head = if cfg.tie_word_embeddings {
            embed.clone()
        } else {
            take("lm_head.weight")?
        };
        let want = |t: &Tensor, shape: &[usize], name: &str| {
            if t.dims() != shape {
                return Err(AdaptError::Model {
                    path: dir.path.clone(),
                    detail: format!(
                        "`{name}` has shape {:?}, config.json implies {shape:?}",
                        t.dims()
                    ),
                });
            }
            Ok(())
        };
        want(&embed, &[cfg.vocab_size, cfg.hidden_size], "embed_tokens")?;
        for (i, l) in layers.iter().enumerate() {
            for (name, _) in PROJECTIONS {
                let (inp, out) = cfg.shape_of(name).expect("known projection");
                want(
                    &l.proj[name].weight,
                    &[out, inp],
                    &format!("layers.{i}.{name}"),
                )?;
            }
        }
        Ok(Model {
            inv_freq: ops::inv_freq(cfg.head_dim(), cfg.theta(), cfg.scaling()),
            config: cfg.clone(),
            dtype,
            device: device.clone(),
            embed,
            layers,
            norm,
            lm_head,
        })
    }

    fn project(
        &self,
        x: &Tensor,
        layer: usize,
        name: &'static str,
        lora: Option<&LoraSet>,
        train: bool,
    ) -> Result<Tensor> {
        let p = &self.layers[layer].proj[name];
        let mut y = frozen_linear(x, &p.weight)?;
        if let Some(b) = &p.bias {
            y = y.broadcast_add(b)?;
        }
        let Some(set) = lora else { return Ok(y) };
        let Some(l) = set.layers.get(&(layer, name.to_string())) else {
            return Ok(y);
        };
        let input = if train && set.config.dropout > 0.0 {
            candle_nn::ops::dropout(x, set.config.dropout)?
        } else {
            x.clone()
        };
        let a = l.a.as_tensor().to_dtype(self.dtype)?;
        let b = l.b.as_tensor().to_dtype(self.dtype)?;
        let delta = (input.matmul(&a.t()?)?.matmul(&b.t()?)? * set.config.scale())?;
        y + delta
    }

    /// Rotary tables for the batch's positions: `[rows, 1, seq, head_dim/2]` each.
    fn rotary(&self, batch: &Batch) -> Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let n = batch.positions.len();
        let mut cos = Vec::with_capacity(n * half);
        let mut sin = Vec::with_capacity(n * half);
        for &p in &batch.positions {
            for &f in &self.inv_freq {
                let angle = p as f32 * f;
                cos.push(angle.cos());
                sin.push(angle.sin());
            }
        }
        let shape = (batch.rows, 1, batch.seq, half);
        let cos = Tensor::from_vec(cos, shape, &self.device)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_vec(sin, shape, &self.device)?.to_dtype(self.dtype)?;
        Ok((cos, sin))
    }

    fn attention(&self, h: &Tensor, layer: usize, pass: &Pass<'_>) -> Result<Tensor> {
        let Pass {
            batch,
            rotary,
            mask,
            lora,
            train,
        } = pass;
        let (lora, train) = (*lora, *train);
        let cfg = &self.config;
        let (b, t, d) = (batch.rows, batch.seq, cfg.head_dim());
        let (heads, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let split = |x: Tensor, n: usize| x.reshape((b, t, n, d))?.transpose(1, 2);
        let q = split(self.project(h, layer, "q_proj", lora, train)?, heads)?;
        let k = split(self.project(h, layer, "k_proj", lora, train)?, kv)?;
        let v = split(self.project(h, layer, "v_proj", lora, train)?, kv)?;
        // The 1/√d scale goes on q, not on the [t, t] scores.
        let q = (ops::rope(&q, &rotary.0, &rotary.1)? / (d as f64).sqrt())?;
        let k = ops::rope(&k, &rotary.0, &rotary.1)?;
        let repeat = |x: Tensor| -> Result<Tensor> {
            if heads == kv {
                return x.contiguous();
            }
            x.unsqueeze(2)?
                .broadcast_as((b, kv, heads / kv, t, d))?
                .reshape((b, heads, t, d))
        };
        let (k, v) = (repeat(k)?, repeat(v)?);
        let scores = q.contiguous()?.matmul(&k.t()?.contiguous()?)?;
        let probs = ops::masked_softmax(&scores, mask)?;
        let out = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((b * t, heads * d))?;
        self.project(&out, layer, "o_proj", lora, train)
    }

    /// The final hidden states, `[rows · seq, hidden]`.
    pub fn hidden(&self, batch: &Batch, lora: Option<&LoraSet>, train: bool) -> Result<Tensor> {
        let (b, t) = (batch.rows, batch.seq);
        let ids = Tensor::from_slice(&batch.ids, b * t, &self.device)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        let mask = Tensor::from_vec(
            ops::packed_causal_mask(&batch.positions, b, t),
            (b, 1, t, t),
            &self.device,
        )?
        .to_dtype(self.dtype)?
        // Expanded once per pass, so every layer's mask add is a plain element-wise add.
        .broadcast_as((b, self.config.num_attention_heads, t, t))?
        .contiguous()?;
        let pass = Pass {
            batch,
            rotary: self.rotary(batch)?,
            mask,
            lora,
            train,
        };
        let eps = self.config.rms_norm_eps;
        for (i, layer) in self.layers.iter().enumerate() {
            let h = ops::rms_norm(&x, &layer.input_norm, eps)?;
            x = (x + self.attention(&h, i, &pass)?)?;
            let h = ops::rms_norm(&x, &layer.post_norm, eps)?;
            let gate = self.project(&h, i, "gate_proj", lora, train)?.silu()?;
            let up = self.project(&h, i, "up_proj", lora, train)?;
            x = (x + self.project(&(gate * up)?, i, "down_proj", lora, train)?)?;
        }
        ops::rms_norm(&x, &self.norm, eps)
    }

    /// Logits of every position, `[rows · seq, vocab]`, f32.
    pub fn logits(&self, batch: &Batch, lora: Option<&LoraSet>) -> Result<Tensor> {
        let h = self.hidden(batch, lora, false)?;
        frozen_linear(&h, &self.lm_head)?.to_dtype(DType::F32)
    }

    /// The summed cross-entropy over the batch's labels and how many there are; `None` when
    /// the batch has no label. Only labelled positions go through the output layer.
    pub fn loss_sum(
        &self,
        batch: &Batch,
        lora: Option<&LoraSet>,
        train: bool,
    ) -> Result<Option<(Tensor, usize)>> {
        let (at, targets) = batch.targets();
        if at.is_empty() {
            return Ok(None);
        }
        let n = at.len();
        let h = self.hidden(batch, lora, train)?;
        let at = Tensor::from_vec(at, n, &self.device)?;
        let targets = Tensor::from_vec(targets, n, &self.device)?;
        let logits = frozen_linear(&h.index_select(&at, 0)?, &self.lm_head)?;
        Ok(Some((ops::cross_entropy_sum(&logits, &targets)?, n)))
    }
}
