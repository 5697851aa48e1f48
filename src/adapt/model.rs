//! A Llama-family decoder (Llama, Qwen2, Mistral) with frozen base weights and LoRA on chosen
//! projections. Packed rows are supported: position ids restart at every document and a
//! block-diagonal causal mask keeps documents from attending to each other.

use std::collections::HashMap;

use candle_core::{DType, Device, Tensor};

use super::backward::{LayerTape, ProjTape, Tape};
use super::config::{ModelConfig, ModelDir};
use super::lora::LoraSet;
use super::ops;
use super::AdaptError;

type Result<T> = candle_core::Result<T>;

/// A frozen projection: weight `[out, in]` and an optional bias.
pub(super) struct Proj {
    pub(super) weight: Tensor,
    bias: Option<Tensor>,
}

pub(super) struct Layer {
    pub(super) input_norm: Tensor,
    pub(super) post_norm: Tensor,
    pub(super) proj: HashMap<&'static str, Proj>,
}

/// The base model, frozen.
pub struct Model {
    pub config: ModelConfig,
    pub dtype: DType,
    pub device: Device,
    embed: Tensor,
    pub(super) layers: Vec<Layer>,
    pub(super) norm: Tensor,
    pub(super) lm_head: Tensor,
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
pub(super) struct Pass<'a> {
    pub(super) batch: &'a Batch,
    /// cos and sin, `[rows · seq, head_dim/2]`.
    pub(super) rotary: (Tensor, Tensor),
    mask: ops::PackedMask,
    pub(super) lora: Option<&'a LoraSet>,
    /// Dropout on LoRA inputs (training only).
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

    /// `x W^T + bias + s · B(A(dropout(x)))`; records what the backward needs in `tape`.
    fn project(
        &self,
        x: &Tensor,
        layer: usize,
        name: &'static str,
        pass: &Pass<'_>,
        tape: Option<&mut HashMap<&'static str, ProjTape>>,
    ) -> Result<Tensor> {
        let p = &self.layers[layer].proj[name];
        let x = x.contiguous()?;
        let mut y = x.matmul(&p.weight.t()?)?;
        if let Some(b) = &p.bias {
            y = y.broadcast_add(b)?;
        }
        let Some(set) = pass.lora else { return Ok(y) };
        let Some(l) = set.layers.get(&(layer, name.to_string())) else {
            return Ok(y);
        };
        let p_drop = set.config.dropout;
        // The kept inputs scaled by 1/(1 − p), as dropout does.
        let keep = if pass.train && p_drop > 0.0 {
            let u = Tensor::rand(0f32, 1f32, x.shape(), &self.device)?;
            let kept = u.ge(f64::from(p_drop))?.to_dtype(self.dtype)?;
            Some((kept / (1.0 - f64::from(p_drop)))?)
        } else {
            None
        };
        let input = match &keep {
            Some(k) => (&x * k)?,
            None => x.clone(),
        };
        // The scale goes on B (a small matrix), not on the [n, out] product.
        let a = l.a.as_tensor().detach().to_dtype(self.dtype)?;
        let b = (l.b.as_tensor().detach() * set.config.scale())?.to_dtype(self.dtype)?;
        let xa = input.matmul(&a.t()?)?;
        let delta = xa.matmul(&b.t()?)?;
        if let Some(tape) = tape {
            tape.insert(name, ProjTape { xa, keep, a, b });
        }
        y + delta
    }

    /// Rotary tables for the batch's positions: `[rows · seq, head_dim/2]` each.
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
        let shape = (n, half);
        let cos = Tensor::from_vec(cos, shape, &self.device)?.to_dtype(self.dtype)?;
        let sin = Tensor::from_vec(sin, shape, &self.device)?.to_dtype(self.dtype)?;
        Ok((cos, sin))
    }

    /// `[b·t, n·d]` → `[b, n, t, d]`.
    pub(super) fn heads(&self, x: &Tensor, batch: &Batch, n: usize) -> Result<Tensor> {
        let d = self.config.head_dim();
        x.reshape((batch.rows, batch.seq, n, d))?.transpose(1, 2)
    }

    /// Self-attention of one layer on the normed input `h`; returns the output projection's
    /// input, `[b·t, heads·d]`, and records the layer's attention in `tape`.
    fn attention(
        &self,
        h: &Tensor,
        layer: usize,
        pass: &Pass<'_>,
        mut tape: Option<&mut LayerTape>,
    ) -> Result<Tensor> {
        let cfg = &self.config;
        let (b, t, d) = (pass.batch.rows, pass.batch.seq, cfg.head_dim());
        let (heads, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let mut projected = |name| {
            let proj = tape.as_deref_mut().map(|t| &mut t.proj);
            self.project(h, layer, name, pass, proj)
        };
        let q = projected("q_proj")?;
        let k = projected("k_proj")?;
        let v = projected("v_proj")?;
        let (cos, sin) = &pass.rotary;
        // The 1/√d scale goes on q, not on the [t, t] scores.
        let q = ops::rope_to_heads(&q, cos, sin, (b, t, heads, d), 1.0 / (d as f64).sqrt())?;
        let k = ops::rope_to_heads(&k, cos, sin, (b, t, kv, d), 1.0)?;
        let v = self.heads(&v, pass.batch, kv)?.contiguous()?;
        // Grouped-query attention without repeating keys and values: the query heads of one
        // key/value head are stacked, `[b, kv, group · t, d]`, which is `[b, heads, t, d]`.
        let group = heads / kv;
        let scores = q
            .reshape((b, kv, group * t, d))?
            .matmul(&k.t()?)?
            .reshape((b, heads, t, t))?;
        let probs = ops::causal_softmax(&scores, &pass.mask)?;
        drop(scores);
        let out = probs
            .reshape((b, kv, group * t, t))?
            .matmul(&v)?
            .reshape((b, heads, t, d))?
            .transpose(1, 2)?
            .reshape((b * t, heads * d))?;
        if let Some(tape) = tape {
            tape.q = Some(q);
            tape.k = Some(k);
            tape.v = Some(v);
            tape.probs = Some(probs);
            tape.attn = Some(out.clone());
        }
        Ok(out)
    }

    /// The residual stream after the last layer, `[rows · seq, hidden]` (before the final
    /// norm); with a tape, every layer records what its backward needs.
    pub(super) fn run<'a>(
        &self,
        batch: &'a Batch,
        lora: Option<&'a LoraSet>,
        train: bool,
        mut tape: Option<&mut Tape>,
    ) -> Result<(Tensor, Pass<'a>)> {
        let (b, t) = (batch.rows, batch.seq);
        let ids = Tensor::from_slice(&batch.ids, b * t, &self.device)?;
        let mut x = self.embed.index_select(&ids, 0)?;
        let heads = self.config.num_attention_heads;
        let mask = ops::PackedMask::new(&batch.positions, (b, t, heads), self.dtype, &self.device)?;
        let pass = Pass {
            batch,
            rotary: self.rotary(batch)?,
            mask,
            lora,
            train,
        };
        let eps = self.config.rms_norm_eps;
        for (i, layer) in self.layers.iter().enumerate() {
            let mut lt = tape.is_some().then(LayerTape::default);
            let h1 = ops::rms_norm(&x, &layer.input_norm, eps)?;
            let attn = self.attention(&h1, i, &pass, lt.as_mut())?;
            let proj = lt.as_mut().map(|t| &mut t.proj);
            let mid = (&x + self.project(&attn, i, "o_proj", &pass, proj)?)?;
            let h2 = ops::rms_norm(&mid, &layer.post_norm, eps)?;
            let proj = lt.as_mut().map(|t| &mut t.proj);
            let gate = self.project(&h2, i, "gate_proj", &pass, proj)?;
            let proj = lt.as_mut().map(|t| &mut t.proj);
            let up = self.project(&h2, i, "up_proj", &pass, proj)?;
            let act = ops::swiglu(&gate, &up)?;
            let proj = lt.as_mut().map(|t| &mut t.proj);
            let out = (&mid + self.project(&act, i, "down_proj", &pass, proj)?)?;
            if let (Some(tape), Some(mut lt)) = (tape.as_deref_mut(), lt) {
                lt.x = Some(x);
                lt.h1 = Some(h1);
                lt.mid = Some(mid);
                lt.h2 = Some(h2);
                lt.gate = Some(gate);
                lt.up = Some(up);
                lt.act = Some(act);
                tape.layers.push(lt);
            }
            x = out;
        }
        Ok((x, pass))
    }

    /// The final hidden states, `[rows · seq, hidden]`.
    pub fn hidden(&self, batch: &Batch, lora: Option<&LoraSet>) -> Result<Tensor> {
        let (x, _) = self.run(batch, lora, false, None)?;
        ops::rms_norm(&x, &self.norm, self.config.rms_norm_eps)
    }

    /// Logits of every position, `[rows · seq, vocab]`, f32.
    pub fn logits(&self, batch: &Batch, lora: Option<&LoraSet>) -> Result<Tensor> {
        let h = self.hidden(batch, lora)?;
        h.matmul(&self.lm_head.t()?)?.to_dtype(DType::F32)
    }

    /// The summed cross-entropy over the batch's labels and how many there are (no dropout, no
    /// gradients); `None` when the batch has no label. Only labelled positions go through the
    /// output layer.
    pub fn loss_sum(&self, batch: &Batch, lora: Option<&LoraSet>) -> Result<Option<(f64, usize)>> {
        let (at, targets) = batch.targets();
        if at.is_empty() {
            return Ok(None);
        }
        let n = at.len();
        let h = self.hidden(batch, lora)?;
        let mut loss = Tensor::zeros(1, DType::F32, &self.device)?;
        for (at, targets) in at
            .chunks(self.loss_chunk())
            .zip(targets.chunks(self.loss_chunk()))
        {
            let m = at.len();
            let at = Tensor::from_slice(at, m, &self.device)?;
            let targets = Tensor::from_slice(targets, m, &self.device)?;
            let logits = h.index_select(&at, 0)?.matmul(&self.lm_head.t()?)?;
            loss = (loss + ops::cross_entropy(&logits, &targets, None)?.0)?;
        }
        Ok(Some((f64::from(loss.to_vec1::<f32>()?[0]), n)))
    }

    /// How many labelled rows go through the output layer at once: about 256 MiB of f32
    /// probabilities.
    pub(super) fn loss_chunk(&self) -> usize {
        ((64usize << 20) / self.config.vocab_size.max(1)).max(16)
    }
}
