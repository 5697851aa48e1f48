//! The pieces of a Llama-family forward pass and their hand-written backward.
//!
//! Training does not use candle's autograd: candle 0.11's fused `rms_norm`, `softmax_last_dim`
//! and `rope*` have no backward (gradients through them are dropped without an error), its
//! backward accumulates every gradient into a fresh zero tensor, and its graph keeps every
//! intermediate alive until the backward pass. [`super::backward`] computes the LoRA gradients
//! from a tape of the activations it needs, with the backward of each piece here. The gradient
//! tests in `tests/integration/adapt.rs` check every LoRA weight against finite differences.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor, D};

type Result<T> = candle_core::Result<T>;

static FUSED: AtomicBool = AtomicBool::new(true);

/// Whether lore's own CUDA kernels (`kernels.cu`, the `cuda` feature) replace the composed ops
/// for bf16 tensors on the GPU. On by default; `adapt-bench` turns it off to compare.
pub fn set_fused(on: bool) {
    FUSED.store(on, Ordering::Relaxed);
}

/// Whether `x` goes through a fused kernel.
#[cfg(feature = "cuda")]
fn fused(x: &Tensor) -> bool {
    fused_on(x.device(), x.dtype())
}

pub(super) fn fused_on(device: &Device, dtype: DType) -> bool {
    cfg!(feature = "cuda")
        && device.is_cuda()
        && dtype == DType::BF16
        && FUSED.load(Ordering::Relaxed)
}

/// Call the fused kernel when `$x` takes one; otherwise fall through to the composed ops.
macro_rules! fused_or {
    ($x:expr, $call:expr) => {
        #[cfg(feature = "cuda")]
        if fused($x) {
            #[allow(clippy::needless_return)]
            return $call;
        }
    };
}

/// RMSNorm computed in f32, returned in `x`'s dtype: `x / sqrt(mean(x²) + eps) · w`.
pub fn rms_norm(x: &Tensor, weight: &Tensor, eps: f64) -> Result<Tensor> {
    fused_or!(x, super::cuda::rms_norm(x, weight, eps));
    let dtype = x.dtype();
    let x32 = x.to_dtype(DType::F32)?;
    let ms = x32.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = x32.broadcast_div(&(ms + eps)?.sqrt()?)?;
    normed.to_dtype(dtype)?.broadcast_mul(weight)
}

/// The gradient of [`rms_norm`] with respect to `x` (the weight is frozen) plus `residual`, in
/// f32 and returned in `x`'s dtype. With `n = x · r`, `r = 1/sqrt(mean(x²) + eps)` and
/// `g = dy · w`: `dx = residual + r · (g − n · mean(g · n))`.
pub fn rms_norm_back(
    x: &Tensor,
    weight: &Tensor,
    eps: f64,
    dy: &Tensor,
    residual: Option<&Tensor>,
) -> Result<Tensor> {
    fused_or!(x, super::cuda::rms_norm_back(x, weight, eps, dy, residual));
    let x32 = x.to_dtype(DType::F32)?;
    let r = (x32.sqr()?.mean_keepdim(D::Minus1)? + eps)?
        .sqrt()?
        .recip()?;
    let n = x32.broadcast_mul(&r)?;
    let g = dy
        .to_dtype(DType::F32)?
        .broadcast_mul(&weight.to_dtype(DType::F32)?)?;
    let dot = (&g * &n)?.mean_keepdim(D::Minus1)?;
    let dx = (g - n.broadcast_mul(&dot)?)?
        .broadcast_mul(&r)?
        .to_dtype(x.dtype())?;
    match residual {
        Some(res) => res + dx,
        None => Ok(dx),
    }
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

/// The gradient of [`rope`]: a rotation's transpose is the rotation by the opposite angle.
pub fn rope_back(dy: &Tensor, cos: &Tensor, sin: &Tensor) -> Result<Tensor> {
    rope(dy, cos, &sin.neg()?)
}

/// A projection's output `[b·t, n·d]` as rotated heads `[b, n, t, d]` (contiguous), times
/// `scale`; `cos` and `sin` are `[b·t, d/2]`. `dims` is `(b, t, n, d)`.
pub fn rope_to_heads(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    fused_or!(x, super::cuda::rope_to_heads(x, cos, sin, dims, scale));
    let (b, t, n, d) = dims;
    let heads = x.reshape((b, t, n, d))?.transpose(1, 2)?;
    let table = |c: &Tensor| c.reshape((b, 1, t, d / 2));
    let y = rope(&heads, &table(cos)?, &table(sin)?)?;
    (y * scale)?.contiguous()
}

/// The backward of [`rope_to_heads`]: the gradient of heads `[b, n, t, d]` as that of the
/// projection's output `[b·t, n·d]`.
pub fn rope_back_to_rows(
    dy: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    dims: (usize, usize, usize, usize),
    scale: f64,
) -> Result<Tensor> {
    fused_or!(
        dy,
        super::cuda::rope_back_to_rows(dy, cos, sin, dims, scale)
    );
    let (b, t, n, d) = dims;
    let table = |c: &Tensor| c.reshape((b, 1, t, d / 2));
    let dx = (rope_back(dy, &table(cos)?, &table(sin)?)? * scale)?;
    dx.transpose(1, 2)?.reshape((b * t, n * d))
}

/// `silu(gate) · up`, the MLP's activation.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    fused_or!(gate, super::cuda::swiglu(gate, up));
    gate.silu()? * up
}

/// `silu(gate) · up` and its gradients with respect to `gate` and `up`, computed in f32:
/// with `s = σ(gate)`, `d gate = d · up · s · (1 + gate · (1 − s))` and `d up = d · gate · s`.
pub fn swiglu_back(gate: &Tensor, up: &Tensor, d: &Tensor) -> Result<(Tensor, Tensor)> {
    fused_or!(gate, super::cuda::swiglu_back(gate, up, d));
    let dtype = gate.dtype();
    let g = gate.to_dtype(DType::F32)?;
    let u = up.to_dtype(DType::F32)?;
    let d = d.to_dtype(DType::F32)?;
    let s = (g.neg()?.exp()? + 1.0)?.recip()?;
    let silu = (&g * &s)?;
    let dsilu = (&s * ((&g * (1.0 - &s)?)? + 1.0)?)?;
    let d_gate = (&d * u)?.mul(&dsilu)?;
    let d_up = (d * silu)?;
    Ok((d_gate.to_dtype(dtype)?, d_up.to_dtype(dtype)?))
}

/// The gradient of `p = softmax(s + mask)` with respect to `s`, given `dp` and the f32 row sums
/// `rowdot = Σ_j dp_j p_j` (computed from the attention's output as `dO · O`, which is the same
/// number, so the `[t, t]` product is never summed): `ds = p · (dp − rowdot)`.
pub fn softmax_back(p: &Tensor, dp: &Tensor, rowdot: &Tensor) -> Result<Tensor> {
    fused_or!(p, super::cuda::softmax_back(p, dp, rowdot));
    dp.broadcast_sub(&rowdot.to_dtype(dp.dtype())?)?.mul(p)
}

/// The attention mask of packed rows: where each query's document starts, and (for the composed
/// softmax) the additive `[b, heads, t, t]` mask of 0 and -inf.
pub struct PackedMask {
    dense: Option<Tensor>,
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    starts: Tensor,
}

impl PackedMask {
    /// `positions` is row-major `[b, t]`; a document starts where its position id is 0.
    pub fn new(
        positions: &[u32],
        (b, t, heads): (usize, usize, usize),
        dtype: DType,
        device: &Device,
    ) -> Result<PackedMask> {
        let mut starts = Vec::with_capacity(positions.len());
        for row in positions.chunks(t.max(1)) {
            let mut start = 0u32;
            for (i, &p) in row.iter().enumerate() {
                if p == 0 {
                    start = i as u32;
                }
                starts.push(start);
            }
        }
        let dense = if fused_on(device, dtype) {
            None
        } else {
            let mask = Tensor::from_vec(packed_causal_mask(positions, b, t), (b, 1, t, t), device)?;
            // Expanded once per pass, so every layer's mask add is a plain element-wise add.
            Some(
                mask.to_dtype(dtype)?
                    .broadcast_as((b, heads, t, t))?
                    .contiguous()?,
            )
        };
        Ok(PackedMask {
            dense,
            starts: Tensor::from_vec(starts, positions.len(), device)?,
        })
    }
}

/// `softmax(scores + mask)` over the last dimension of `[b, heads, t, t]` scores.
pub fn causal_softmax(scores: &Tensor, mask: &PackedMask) -> Result<Tensor> {
    match &mask.dense {
        Some(dense) => candle_nn::ops::softmax_last_dim(&(scores + dense)?),
        #[cfg(feature = "cuda")]
        None => super::cuda::causal_softmax(scores, &mask.starts),
        #[cfg(not(feature = "cuda"))]
        None => candle_core::bail!("no dense mask without the cuda feature"),
    }
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

/// The summed cross-entropy of `logits` (`[n, vocab]`) against `targets` (`[n]`, u32) in f32
/// (a `[1]` tensor, left on the device) and, given a `scale`, its gradient with respect to the
/// logits times `scale`, `scale · (softmax − onehot)`, in the logits' dtype. One fused softmax,
/// none of log-softmax's vocabulary-sized intermediates.
pub fn cross_entropy(
    logits: &Tensor,
    targets: &Tensor,
    scale: Option<f64>,
) -> Result<(Tensor, Option<Tensor>)> {
    fused_or!(logits, super::cuda::cross_entropy(logits, targets, scale));
    let x = logits.to_dtype(DType::F32)?.contiguous()?;
    let probs = candle_nn::ops::softmax_last_dim(&x)?;
    drop(x);
    let targets = targets.unsqueeze(1)?.contiguous()?;
    // −log p[t], with p floored so a vanishing probability gives a large, finite loss.
    let picked = probs.gather(&targets, 1)?.clamp(1e-30f32, 1f32)?;
    let loss = picked.log()?.sum_all()?.neg()?.reshape(1)?;
    let Some(scale) = scale else {
        return Ok((loss, None));
    };
    let minus_one = Tensor::full(-1f32, targets.shape(), probs.device())?;
    let grad = (probs.scatter_add(&targets, &minus_one, 1)? * scale)?;
    Ok((loss, Some(grad.to_dtype(logits.dtype())?)))
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

    /// `Σ w · f(x)` through candle's autograd (composed from ops that have a backward) against
    /// the hand-written backward.
    fn check(f: impl Fn(&Tensor) -> Tensor, back: impl Fn(&Tensor, &Tensor) -> Tensor) {
        let dev = Device::Cpu;
        let x = Var::new(
            &[
                [0.3f32, -1.2, 2.0, 0.1],
                [5.0, 4.0, -3.0, 0.0],
                [0.0, 0.5, -0.25, 1.0],
            ],
            &dev,
        )
        .unwrap();
        let w = Tensor::new(
            &[[1f32, 2., 3., 4.], [-1., 0.5, 2., 0.], [0.25, -3., 1., 2.]],
            &dev,
        )
        .unwrap();
        let y = f(x.as_tensor());
        let auto = (y * &w).unwrap().sum_all().unwrap().backward().unwrap();
        let auto = auto.get(&x).unwrap().to_vec2::<f32>().unwrap();
        let hand = back(x.as_tensor(), &w).to_vec2::<f32>().unwrap();
        for (ra, rh) in auto.iter().zip(&hand) {
            for (a, h) in ra.iter().zip(rh) {
                assert!((a - h).abs() < 1e-5, "autograd {auto:?}, by hand {hand:?}");
            }
        }
        assert!(hand.iter().flatten().any(|v| v.abs() > 1e-3));
    }

    #[test]
    fn rms_norm_back_is_the_composed_gradient() {
        let w = Tensor::new(&[0.5f32, 1.5, -1.0, 2.0], &Device::Cpu).unwrap();
        check(
            |x| rms_norm(x, &w, 1e-5).unwrap(),
            |x, dy| rms_norm_back(x, &w, 1e-5, dy, None).unwrap(),
        );
    }

    #[test]
    fn softmax_back_is_the_composed_gradient() {
        check(
            |x| candle_nn::ops::softmax(x, D::Minus1).unwrap(),
            |x, dy| {
                let p = candle_nn::ops::softmax_last_dim(x).unwrap();
                let rowdot = (dy * &p).unwrap().sum_keepdim(D::Minus1).unwrap();
                softmax_back(&p, dy, &rowdot).unwrap()
            },
        );
    }

    #[test]
    fn swiglu_back_is_the_composed_gradient() {
        let up = Tensor::new(
            &[
                [1f32, -2., 0.5, 3.],
                [0.1, 0.2, 0.3, 0.4],
                [-1., -1., 2., 2.],
            ],
            &Device::Cpu,
        )
        .unwrap();
        check(
            |g| (g.silu().unwrap() * &up).unwrap(),
            |g, d| swiglu_back(g, &up, d).unwrap().0,
        );
        check(
            |u| (up.silu().unwrap() * u).unwrap(),
            |u, d| swiglu_back(&up, u, d).unwrap().1,
        );
    }

    #[test]
    fn rope_back_is_the_composed_gradient() {
        // One row, one head, three positions, head size 4: x viewed as [1, 1, 3, 4].
        let angles = [0.3f32, 1.1, -0.7, 2.0, 0.05, -1.4];
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let dev = Device::Cpu;
        let cos = Tensor::from_vec(cos, (1, 1, 3, 2), &dev).unwrap();
        let sin = Tensor::from_vec(sin, (1, 1, 3, 2), &dev).unwrap();
        let view = |t: &Tensor| t.reshape((1, 1, 3, 4)).unwrap();
        check(
            |x| rope(&view(x), &cos, &sin).unwrap().reshape((3, 4)).unwrap(),
            |_, dy| {
                rope_back(&view(dy), &cos, &sin)
                    .unwrap()
                    .reshape((3, 4))
                    .unwrap()
            },
        );
    }

    #[test]
    fn cross_entropy_is_the_composed_loss_and_gradient() {
        let targets = Tensor::new(&[2u32, 0, 3], &Device::Cpu).unwrap();
        let onehot = Tensor::new(
            &[[0f32, 0., 1., 0.], [1., 0., 0., 0.], [0., 0., 0., 1.]],
            &Device::Cpu,
        )
        .unwrap();
        // The loss is a sum, so Σ w · f(x) with f the per-row loss broadcast is not it; check
        // the loss itself, then the gradient through a uniform upstream weight.
        let x = Tensor::new(
            &[
                [0.3f32, -1.2, 2.0, 0.1],
                [5.0, 4.0, -3.0, 0.0],
                [0.0, 0.5, -0.25, 1.0],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let (loss, grad) = cross_entropy(&x, &targets, Some(0.5)).unwrap();
        let grad = grad.unwrap();
        let logp = candle_nn::ops::log_softmax(&x, D::Minus1).unwrap();
        let want = (logp * &onehot).unwrap().sum_all().unwrap().neg().unwrap();
        let (a, b) = (
            loss.to_vec1::<f32>().unwrap()[0],
            want.to_scalar::<f32>().unwrap(),
        );
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        let v = Var::from_tensor(&x).unwrap();
        let auto = (candle_nn::ops::log_softmax(&v, D::Minus1).unwrap() * &onehot)
            .unwrap()
            .sum_all()
            .unwrap()
            .neg()
            .unwrap()
            .affine(0.5, 0.)
            .unwrap()
            .backward()
            .unwrap();
        let auto = auto.get(&v).unwrap().to_vec2::<f32>().unwrap();
        let hand = grad.to_vec2::<f32>().unwrap();
        for (ra, rh) in auto.iter().zip(&hand) {
            for (p, q) in ra.iter().zip(rh) {
                assert!((p - q).abs() < 1e-5, "{auto:?} vs {hand:?}");
            }
        }
    }
}
