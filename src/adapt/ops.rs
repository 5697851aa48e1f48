//! The differentiable pieces of a Llama-family forward pass.
//!
//! candle 0.11's fused `rms_norm`, `softmax_last_dim`, `rope*` and `layer_norm` have no
//! backward: gradients through them are dropped without an error. Everything here is built from
//! ops that do have one, or (softmax, log-softmax) computed outside the graph and attached to
//! their input with a hand-written backward (the gradient tests in `tests/integration/adapt.rs` check every LoRA
//! weight against finite differences). And a plain `matmul` against a frozen weight computes and
//! keeps a gradient for the weight too, which nobody reads: [`frozen_linear`] is a custom op whose
//! backward computes only the input's gradient.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CudaStorage, DType, Layout, Shape, Storage, Tensor, D};

type Result<T> = candle_core::Result<T>;

/// `x W^T` for a frozen `W` (`[out, in]`), with `x` of shape `[n, in]`.
struct FrozenLinear {
    weight: Tensor,
}

impl FrozenLinear {
    fn dims(&self, layout: &Layout) -> Result<(usize, usize, usize)> {
        let (n, k) = layout.shape().dims2()?;
        let (out, k2) = self.weight.dims2()?;
        if k != k2 {
            candle_core::bail!("frozen linear: input width {k}, weight [{out}, {k2}]");
        }
        Ok((n, out, k))
    }
}

impl candle_core::CustomOp1 for FrozenLinear {
    fn name(&self) -> &'static str {
        "frozen-linear"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, out, k) = self.dims(l)?;
        let wt = self.weight.t()?;
        let (storage, wl) = wt.storage_and_layout();
        let Storage::Cpu(w) = &*storage else {
            candle_core::bail!("frozen linear: weight and input on different devices")
        };
        Ok((s.matmul(w, (1, n, out, k), l, wl)?, Shape::from((n, out))))
    }

    fn cuda_fwd(&self, s: &CudaStorage, l: &Layout) -> Result<(CudaStorage, Shape)> {
        let (n, out, k) = self.dims(l)?;
        let wt = self.weight.t()?;
        let (storage, wl) = wt.storage_and_layout();
        let Storage::Cuda(w) = &*storage else {
            candle_core::bail!("frozen linear: weight and input on different devices")
        };
        Ok((s.matmul(w, (1, n, out, k), l, wl)?, Shape::from((n, out))))
    }

    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(grad.matmul(&self.weight)?))
    }
}

/// `x W^T` where `W` gets no gradient; `x` is `[n, in]`.
pub fn frozen_linear(x: &Tensor, weight: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    x.apply_op1(FrozenLinear {
        weight: weight.clone(),
    })
}

/// RMSNorm computed in f32, returned in `x`'s dtype: `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let ms = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(ms + eps)?.sqrt()?)?;
    normed.to_dtype(dtype)?.broadcast_mul(weight)
}

/// Rotary embedding in the Hugging Face layout (the two halves of each head rotate together).
/// `x` is `[b, heads, t, d]`; `cos` and `sin` are `[b, 1, t, d/2]`.
pub fn rope(x: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    let half = x.dim(D::Minus1)? / 2;
    let x1 = x.narrow(D::Minus1, 0, half)?;
    let x2 = x.narrow(D::Minus1, half, half)?;
    let a = (x1.broadcast_mul(cos)? - x2.broadcast_mul(sin)?)?;
    let b = (x2.broadcast_mul(cos)? + x1.broadcast_mul(sin)?)?;
    Tensor::cat(&[a, b], D::Minus1)
}

/// Which function an [`Attached`] result is, for its backward.
enum Attach {
    Softmax,
    LogSoftmax,
    /// The summed cross-entropy; holds the softmax of the logits (f32) and the targets.
    CrossEntropy {
        probs: Tensor,
        targets: Tensor,
    },
}

/// A result computed outside the graph (with fused kernels, its intermediates freed at once),
/// attached to its input with the function's own backward. candle keeps every intermediate of
/// a composed softmax alive until the backward pass; attached, only the input and the result
/// are kept.
struct Attached {
    value: std::sync::Mutex<Option<Tensor>>,
    kind: Attach,
}

impl Attached {
    fn take(&self) -> Result<Tensor> {
        self.value
            .lock()
            .map_err(|_| candle_core::Error::Msg("attached value lock".into()))?
            .take()
            .ok_or_else(|| candle_core::Error::Msg("attached value used twice".into()))
    }
}

impl candle_core::CustomOp1 for Attached {
    fn name(&self) -> &'static str {
        "attached"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> Result<(CpuStorage, Shape)> {
        let value = self.take()?;
        let (storage, layout) = value.storage_and_layout();
        let Storage::Cpu(s) = &*storage else {
            candle_core::bail!("attached value on another device")
        };
        Ok((s.try_clone(layout)?, layout.shape().clone()))
    }

    fn cuda_fwd(&self, _: &CudaStorage, _: &Layout) -> Result<(CudaStorage, Shape)> {
        let value = self.take()?;
        let (storage, layout) = value.storage_and_layout();
        let Storage::Cuda(s) = &*storage else {
            candle_core::bail!("attached value on another device")
        };
        Ok((s.try_clone(layout)?, layout.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let g = grad.to_dtype(DType::F32)?;
        let dx = match &self.kind {
            // y = softmax(x): dx = y · (g − Σ g·y)
            Attach::Softmax => {
                let y = res.to_dtype(DType::F32)?;
                let dot = (&g * &y)?.sum_keepdim(D::Minus1)?;
                (y * g.broadcast_sub(&dot)?)?
            }
            // y = log_softmax(x): dx = g − softmax(x) · Σ g
            Attach::LogSoftmax => {
                let p = res.to_dtype(DType::F32)?.exp()?;
                let total = g.sum_keepdim(D::Minus1)?;
                (g - p.broadcast_mul(&total)?)?
            }
            // loss = Σ −log softmax(x)[t]: dx = g · (softmax(x) − onehot(t)), with g a scalar.
            Attach::CrossEntropy { probs, targets } => {
                let scale = f64::from(g.flatten_all()?.to_vec1::<f32>()?[0]);
                let minus_one = Tensor::full(-1f32, targets.shape(), probs.device())?;
                let dx = probs.scatter_add(targets, &minus_one, 1)?;
                (dx * scale)?
            }
        };
        Ok(Some(dx.to_dtype(arg.dtype())?))
    }
}

fn attach(x: &Tensor, value: Tensor, kind: Attach) -> Result<Tensor> {
    let value = value.contiguous()?;
    x.apply_op1(Attached {
        value: std::sync::Mutex::new(Some(value)),
        kind,
    })
}

/// Softmax over the last dimension with candle's fused kernel, in `x`'s dtype (the kernel
/// accumulates in f32), differentiable.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let y = candle_nn::ops::softmax_last_dim(&x.detach())?;
    attach(&x, y, Attach::Softmax)
}

/// `softmax(x + mask)` over the last dimension, differentiable in `x` only: the mask is added
/// outside the graph, so neither the sum nor a gradient for the mask is kept.
pub fn masked_softmax(x: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let x = x.contiguous()?;
    let masked = x.detach().broadcast_add(mask)?;
    let y = candle_nn::ops::softmax_last_dim(&masked)?;
    attach(&x, y, Attach::Softmax)
}

/// Log-softmax over the last dimension in f32, differentiable.
pub fn log_softmax(x: &Tensor) -> Result<Tensor> {
    let y = candle_nn::ops::log_softmax(&x.detach().to_dtype(DType::F32)?, D::Minus1)?;
    attach(x, y, Attach::LogSoftmax)
}

/// The inverse frequencies of the rotary embedding, with Llama 3's scaling when configured.
pub fn inv_freq(head_dim: usize, theta: f64, scaling: Option<&serde_json::Value>) -> Vec<f32> {
    let mut freqs: Vec<f64> = (0..head_dim / 2)
        .map(|i| 1.0 / theta.powf(2.0 * i as f64 / head_dim as f64))
        .collect();
    let kind = scaling.and_then(|s| s.get("rope_type").or_else(|| s.get("type")));
    if kind.and_then(|k| k.as_str()) == Some("llama3") {
        let s = scaling.expect("checked above");
        let get = |k: &str, d: f64| s.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
        let factor = get("factor", 8.0);
        let low = get("low_freq_factor", 1.0);
        let high = get("high_freq_factor", 4.0);
        let old = get("original_max_position_embeddings", 8192.0);
        let (low_wl, high_wl) = (old / low, old / high);
        for f in &mut freqs {
            let wl = 2.0 * std::f64::consts::PI / *f;
            if wl > low_wl {
                *f /= factor;
            } else if wl >= high_wl {
                let smooth = (old / wl - low) / (high - low);
                *f = (1.0 - smooth) * *f / factor + smooth * *f;
            }
        }
    }
    freqs.into_iter().map(|f| f as f32).collect()
}

/// The additive attention mask of packed rows: token `i` sees token `j` when `j <= i` and both
/// are in the same document (a document starts where its position id is 0). `positions` is
/// row-major `[b, t]`; the mask is `[b, 1, t, t]` with 0 and -inf.
pub fn packed_causal_mask(positions: &[u32], b: usize, t: usize) -> Vec<f32> {
    let mut mask = vec![f32::NEG_INFINITY; b * t * t];
    for r in 0..b {
        let row = &positions[r * t..(r + 1) * t];
        let mut start = 0;
        for i in 0..t {
            if row[i] == 0 {
                start = i;
            }
            let base = (r * t + i) * t;
            mask[base + start..=base + i].fill(0.0);
        }
    }
    mask
}

/// Cross-entropy of `logits` (`[n, vocab]`) against `targets` (`[n]`, u32), summed over the
/// rows (not averaged, so micro-batches can be normalised by the step's token count), in f32.
/// One fused softmax forward; the backward is `softmax − onehot`, so none of log-softmax's
/// vocabulary-sized intermediates exist.
pub fn cross_entropy_sum(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    let x = logits.detach().to_dtype(DType::F32)?.contiguous()?;
    let probs = candle_nn::ops::softmax_last_dim(&x)?;
    drop(x);
    let targets = targets.unsqueeze(1)?.contiguous()?;
    // −log p[t], with p floored so a vanishing probability gives a large, finite loss.
    let picked = probs.gather(&targets, 1)?.clamp(1e-30f32, 1f32)?;
    let loss = picked.log()?.sum_all()?.neg()?.reshape(1)?;
    let out = attach(logits, loss, Attach::CrossEntropy { probs, targets })?;
    out.squeeze(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn the_mask_keeps_documents_apart() {
        // One row: a document of 3 tokens, then one of 2.
        let m = packed_causal_mask(&[0, 1, 2, 0, 1], 1, 5);
        let seen = |i: usize| -> Vec<usize> { (0..5).filter(|&j| m[i * 5 + j] == 0.0).collect() };
        assert_eq!(seen(0), vec![0]);
        assert_eq!(seen(2), vec![0, 1, 2]);
        assert_eq!(seen(3), vec![3]);
        assert_eq!(seen(4), vec![3, 4]);
    }

    #[test]
    fn frozen_linear_matches_matmul_and_gives_the_input_its_gradient() {
        let dev = Device::Cpu;
        let w = Tensor::new(&[[1f32, 2., 3.], [4., 5., 6.]], &dev).unwrap();
        let x = Var::new(&[[1f32, 0., -1.], [0.5, 0.5, 0.5]], &dev).unwrap();
        let y = frozen_linear(x.as_tensor(), &w).unwrap();
        let want = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
        assert_eq!(y.to_vec2::<f32>().unwrap(), want.to_vec2::<f32>().unwrap());
        let grads = y.sum_all().unwrap().backward().unwrap();
        // d(sum(x W^T))/dx = column sums of W, for every row.
        assert_eq!(
            grads.get(x.as_tensor()).unwrap().to_vec2::<f32>().unwrap(),
            vec![vec![5f32, 7., 9.], vec![5., 7., 9.]]
        );
        // Only the input holds a gradient; a plain matmul keeps one for the weight as well.
        assert_eq!(grads.get_ids().count(), 1);
        let plain = x.as_tensor().matmul(&w.t().unwrap()).unwrap();
        let plain_grads = plain.sum_all().unwrap().backward().unwrap();
        assert_eq!(plain_grads.get_ids().count(), 2);
    }
}

#[cfg(test)]
mod attached_tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The gradient of `Σ w·softmax(x) + Σ w·log_softmax(x)` at `x`.
    fn gradient(attached: bool) -> Vec<Vec<f32>> {
        let dev = Device::Cpu;
        let x = Var::new(&[[0.3f32, -1.2, 2.0, 0.1], [5.0, 4.0, -3.0, 0.0]], &dev).unwrap();
        let w = Tensor::new(&[[1f32, 2., 3., 4.], [-1., 0.5, 2., 0.]], &dev).unwrap();
        let (s, l) = if attached {
            (softmax(&x).unwrap(), log_softmax(&x).unwrap())
        } else {
            (
                candle_nn::ops::softmax(&x, D::Minus1).unwrap(),
                candle_nn::ops::log_softmax(&x, D::Minus1).unwrap(),
            )
        };
        let loss =
            ((s * &w).unwrap().sum_all().unwrap() + (l * &w).unwrap().sum_all().unwrap()).unwrap();
        let g = loss.backward().unwrap();
        g.get(&x).unwrap().to_vec2::<f32>().unwrap()
    }

    #[test]
    fn attached_functions_have_the_composed_ones_gradients() {
        let (a, c) = (gradient(true), gradient(false));
        for (ra, rc) in a.iter().zip(&c) {
            for (x, y) in ra.iter().zip(rc) {
                assert!((x - y).abs() < 1e-5, "{a:?} vs {c:?}");
            }
        }
        assert!(a.iter().flatten().any(|v| v.abs() > 1e-3));
    }
}
