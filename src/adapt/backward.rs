//! The LoRA gradients of one batch, computed by hand from a tape of the forward pass.
//!
//! The forward pass ([`Model::run`] with a [`Tape`]) records, per layer, the activations the
//! backward needs: the block inputs, the normed inputs, the rotated queries and keys, the values,
//! the attention probabilities and output, the MLP's gate, up and product, and per LoRA projection
//! its `x Aᵀ` (and dropout mask). The backward walks the layers from the last to the first,
//! dropping each layer's tape as soon as it is done, and computes only what the LoRA matrices
//! need: the gradient of every layer's input and of every A and B. The frozen weights never get
//! one, and nothing is accumulated into zero tensors, as candle's autograd would.

use std::collections::HashMap;

use candle_core::{DType, Tensor, D};

use super::lora::LoraSet;
use super::model::{Batch, Model, Pass};
use super::ops;

type Result<T> = candle_core::Result<T>;

/// What a LoRA projection's backward needs from its forward.
pub(super) struct ProjTape {
    /// `dropout(x) Aᵀ`, `[n, r]`: B's gradient reads it.
    pub(super) xa: Tensor,
    /// The dropout mask scaled by 1/(1 − p), when dropout was on.
    pub(super) keep: Option<Tensor>,
    /// A, and B times the LoRA scale, in the activations' dtype.
    pub(super) a: Tensor,
    pub(super) b: Tensor,
}

/// What one layer's backward needs from its forward.
#[derive(Default)]
pub(super) struct LayerTape {
    /// The layer's input (the residual stream), `[n, hidden]`.
    pub(super) x: Option<Tensor>,
    /// `rms_norm(x)`, the attention projections' input.
    pub(super) h1: Option<Tensor>,
    /// Rotated and scaled queries, `[b, heads, t, d]`.
    pub(super) q: Option<Tensor>,
    /// Rotated keys and the values, `[b, kv_heads, t, d]`.
    pub(super) k: Option<Tensor>,
    pub(super) v: Option<Tensor>,
    /// `softmax(q kᵀ + mask)`, `[b, heads, t, t]`.
    pub(super) probs: Option<Tensor>,
    /// The attention's output, the output projection's input, `[n, heads · d]`.
    pub(super) attn: Option<Tensor>,
    /// The residual stream after attention, and its norm (the MLP's input).
    pub(super) mid: Option<Tensor>,
    pub(super) h2: Option<Tensor>,
    /// The MLP's gate and up projections and `silu(gate) · up`.
    pub(super) gate: Option<Tensor>,
    pub(super) up: Option<Tensor>,
    pub(super) act: Option<Tensor>,
    pub(super) proj: HashMap<&'static str, ProjTape>,
}

/// Every layer's tape, first layer first.
#[derive(Default)]
pub(super) struct Tape {
    pub(super) layers: Vec<LayerTape>,
}

/// A batch's loss and the gradients of every LoRA matrix.
pub struct Gradients {
    /// The summed cross-entropy over the batch's labels (not scaled).
    pub loss_sum: f64,
    pub labels: usize,
    /// The gradient of `scale · loss_sum` for each tensor of [`LoraSet::named`], in that
    /// order, f32.
    pub grads: Vec<Tensor>,
}

fn taken(t: Option<Tensor>, what: &str) -> Result<Tensor> {
    t.ok_or_else(|| candle_core::Error::Msg(format!("the tape lacks {what}")))
}

type Grads = HashMap<(usize, &'static str), (Tensor, Tensor)>;

impl Model {
    /// The summed cross-entropy over the batch's labels and the gradient of
    /// `scale · loss` with respect to every LoRA matrix of `lora` (dropout on when `train`);
    /// `None` when the batch has no label.
    pub fn loss_and_grads(
        &self,
        batch: &Batch,
        lora: &LoraSet,
        train: bool,
        scale: f64,
    ) -> Result<Option<Gradients>> {
        let (at, targets) = batch.targets();
        if at.is_empty() {
            return Ok(None);
        }
        let labels = at.len();
        let mut tape = Tape::default();
        let (x, pass) = self.run(batch, Some(lora), train, Some(&mut tape))?;
        let eps = self.config.rms_norm_eps;
        let h = ops::rms_norm(&x, &self.norm, eps)?;
        // The output layer and the loss, a chunk of labelled rows at a time, so the f32
        // probabilities over the vocabulary never exist for every row at once.
        let mut loss = Tensor::zeros(1, DType::F32, &self.device)?;
        let mut dh_rows = Vec::new();
        let chunk = self.loss_chunk();
        for (at, targets) in at.chunks(chunk).zip(targets.chunks(chunk)) {
            let m = at.len();
            let at = Tensor::from_slice(at, m, &self.device)?;
            let targets = Tensor::from_slice(targets, m, &self.device)?;
            let logits = h.index_select(&at, 0)?.matmul(&self.lm_head.t()?)?;
            let (l, dlogits) = ops::cross_entropy(&logits, &targets, Some(scale))?;
            loss = (loss + l)?;
            let dlogits = taken(dlogits, "the logits' gradient")?;
            dh_rows.push(dlogits.matmul(&self.lm_head)?);
        }
        drop(h);
        let at = Tensor::from_vec(at, labels, &self.device)?;
        let dh = Tensor::zeros(x.shape(), self.dtype, &self.device)?.index_add(
            &at,
            &Tensor::cat(&dh_rows, 0)?,
            0,
        )?;
        drop(dh_rows);
        let mut dx = ops::rms_norm_back(&x, &self.norm, eps, &dh, None)?;
        drop((x, dh));
        let mut grads = Grads::new();
        while let Some(layer_tape) = tape.layers.pop() {
            let i = tape.layers.len();
            dx = self.layer_back(i, layer_tape, dx, &pass, &mut grads)?;
        }
        let mut out = Vec::with_capacity(lora.layers.len() * 2);
        for ((layer, module), l) in &lora.layers {
            let key = (*layer, lora_module(module)?);
            match grads.remove(&key) {
                Some((a, b)) => out.extend([a, b]),
                None => out.extend([l.a.as_tensor().zeros_like()?, l.b.as_tensor().zeros_like()?]),
            }
        }
        Ok(Some(Gradients {
            loss_sum: f64::from(loss.to_vec1::<f32>()?[0]),
            labels,
            grads: out,
        }))
    }

    /// One layer's backward: the gradient of its input from that of its output, and the
    /// gradients of its LoRA matrices into `grads`.
    fn layer_back(
        &self,
        i: usize,
        mut t: LayerTape,
        d_out: Tensor,
        pass: &Pass<'_>,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let layer = &self.layers[i];
        let eps = self.config.rms_norm_eps;
        let proj = std::mem::take(&mut t.proj);
        let back = |dy: &Tensor, x: &Tensor, name: &'static str, grads: &mut Grads| {
            self.project_back(dy, x, i, name, pass, proj.get(name), grads)
        };
        // MLP: out = mid + down(silu(gate(h2)) · up(h2)), h2 = rms_norm(mid).
        let act = taken(t.act.take(), "the MLP product")?;
        let d_act = back(&d_out, &act, "down_proj", grads)?;
        drop(act);
        let (gate, up) = (taken(t.gate.take(), "gate")?, taken(t.up.take(), "up")?);
        let (d_gate, d_up) = ops::swiglu_back(&gate, &up, &d_act)?;
        drop((gate, up, d_act));
        let h2 = taken(t.h2.take(), "the MLP input")?;
        let dh2 = (back(&d_gate, &h2, "gate_proj", grads)? + back(&d_up, &h2, "up_proj", grads)?)?;
        drop((h2, d_gate, d_up));
        let mid = taken(t.mid.take(), "the residual after attention")?;
        let d_mid = ops::rms_norm_back(&mid, &layer.post_norm, eps, &dh2, Some(&d_out))?;
        drop((mid, dh2));
        // Attention: mid = x + o(attention(h1)), h1 = rms_norm(x).
        let attn = taken(t.attn.take(), "the attention output")?;
        let d_attn = back(&d_mid, &attn, "o_proj", grads)?;
        let (dq, dk, dv) = self.attention_back(&mut t, &attn, &d_attn, pass)?;
        drop((attn, d_attn));
        let h1 = taken(t.h1.take(), "the attention input")?;
        let dh1 = ((back(&dq, &h1, "q_proj", grads)? + back(&dk, &h1, "k_proj", grads)?)?
            + back(&dv, &h1, "v_proj", grads)?)?;
        drop((h1, dq, dk, dv));
        let x = taken(t.x.take(), "the layer input")?;
        ops::rms_norm_back(&x, &layer.input_norm, eps, &dh1, Some(&d_mid))
    }

    /// The gradients of the attention's q, k and v projection outputs (`[n, heads · d]`,
    /// `[n, kv · d]` twice) from that of its output.
    fn attention_back(
        &self,
        t: &mut LayerTape,
        attn: &Tensor,
        d_attn: &Tensor,
        pass: &Pass<'_>,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        let cfg = &self.config;
        let batch = pass.batch;
        let (b, s, d) = (batch.rows, batch.seq, cfg.head_dim());
        let (heads, kv) = (cfg.num_attention_heads, cfg.kv_heads());
        let group = heads / kv;
        let d_o = self.heads(d_attn, batch, heads)?.contiguous()?;
        // Σ_j dp_j p_j for each query is dO · O: the softmax backward needs no [t, t] sum.
        let o = self.heads(attn, batch, heads)?;
        let rowdot = (d_o.to_dtype(DType::F32)? * o.to_dtype(DType::F32)?)?
            .sum_keepdim(D::Minus1)?
            .contiguous()?;
        // Query heads stacked per key/value head, as in the forward pass: the matmuls with the
        // keys and values sum over each group.
        let stacked = |x: &Tensor, cols: usize| x.reshape((b, kv, group * s, cols));
        let probs = taken(t.probs.take(), "the attention probabilities")?;
        let v = taken(t.v.take(), "the values")?;
        let d_o = stacked(&d_o, d)?;
        let dv = stacked(&probs, s)?.t()?.matmul(&d_o)?;
        let dp = d_o.matmul(&v.t()?)?.reshape((b, heads, s, s))?;
        drop((v, d_o));
        let ds = stacked(&ops::softmax_back(&probs, &dp, &rowdot)?, s)?;
        drop((probs, dp));
        let (q, k) = (
            taken(t.q.take(), "the queries")?,
            taken(t.k.take(), "the keys")?,
        );
        let dq = ds.matmul(&k)?.reshape((b, heads, s, d))?;
        let dk = ds.t()?.matmul(&stacked(&q, d)?)?;
        drop((ds, q, k));
        let (cos, sin) = &pass.rotary;
        let scale = 1.0 / (d as f64).sqrt();
        let dq = ops::rope_back_to_rows(&dq, cos, sin, (b, s, heads, d), scale)?;
        let dk = ops::rope_back_to_rows(&dk, cos, sin, (b, s, kv, d), 1.0)?;
        let dv = dv.transpose(1, 2)?.reshape((b * s, kv * d))?;
        Ok((dq, dk, dv))
    }

    /// A projection's backward: the gradient of its input `x` from that of its output `dy`,
    /// and (for a LoRA projection) the gradients of A and B into `grads`.
    #[allow(clippy::too_many_arguments)]
    fn project_back(
        &self,
        dy: &Tensor,
        x: &Tensor,
        layer: usize,
        name: &'static str,
        pass: &Pass<'_>,
        tape: Option<&ProjTape>,
        grads: &mut Grads,
    ) -> Result<Tensor> {
        let dy = dy.contiguous()?;
        let dx = dy.matmul(&self.layers[layer].proj[name].weight)?;
        let (Some(set), Some(tape)) = (pass.lora, tape) else {
            return Ok(dx);
        };
        let s = set.config.scale();
        // y = (x_d Aᵀ)(s·B)ᵀ with x_d = dropout(x): with g = dy (s·B), dA = gᵀ x_d,
        // dB = s · dyᵀ (x_d Aᵀ), dx_d = g A.
        let g = dy.matmul(&tape.b)?;
        let input = match &tape.keep {
            Some(k) => (x * k)?,
            None => x.clone(),
        };
        let da = g.t()?.matmul(&input)?.to_dtype(DType::F32)?;
        let db = (dy.t()?.matmul(&tape.xa)?.to_dtype(DType::F32)? * s)?;
        grads.insert((layer, name), (da, db));
        let mut dx_lora = g.matmul(&tape.a)?;
        if let Some(k) = &tape.keep {
            dx_lora = (dx_lora * k)?;
        }
        dx + dx_lora
    }
}

/// The static name of a LoRA target (the set's keys are strings read from its config).
fn lora_module(module: &str) -> Result<&'static str> {
    super::lora::ALL_TARGETS
        .iter()
        .copied()
        .find(|m| *m == module)
        .ok_or_else(|| candle_core::Error::Msg(format!("unknown LoRA target {module}")))
}
