//! AdamW over f32 LoRA weights with f32 moments, clipping by global norm, and a warmup +
//! cosine learning-rate schedule. The moments are plain tensors so checkpoints can save them.

#[cfg(feature = "cuda")]
use candle_core::DType;
use candle_core::{Tensor, Var};

type Result<T> = candle_core::Result<T>;

#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        AdamWConfig {
            lr: 2e-4,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

/// AdamW's state for a list of parameters.
pub struct AdamW {
    pub config: AdamWConfig,
    pub step: u64,
    pub m: Vec<Tensor>,
    pub v: Vec<Tensor>,
}

impl AdamW {
    pub fn new(config: AdamWConfig, params: &[&Var]) -> Result<AdamW> {
        let zeros = |p: &&Var| p.as_tensor().zeros_like();
        Ok(AdamW {
            config,
            step: 0,
            m: params.iter().map(zeros).collect::<Result<_>>()?,
            v: params.iter().map(zeros).collect::<Result<_>>()?,
        })
    }

    /// One update with learning rate `lr` from the given gradients (one per parameter); on the GPU
    /// one fused kernel per parameter (`kernels.cu`), elsewhere composed tensor ops.
    pub fn update(&mut self, params: &[&Var], grads: &[Tensor], lr: f64) -> Result<()> {
        self.step += 1;
        let c = self.config;
        let t = self.step as i32;
        let (bc1, bc2) = (1.0 - c.beta1.powi(t), 1.0 - c.beta2.powi(t));
        for (i, (p, g)) in params.iter().zip(grads).enumerate() {
            #[cfg(feature = "cuda")]
            if super::ops::fused_on(p.device(), DType::BF16) && p.dtype() == DType::F32 {
                let step = super::cuda::AdamWStep {
                    lr: lr as f32,
                    beta1: c.beta1 as f32,
                    beta2: c.beta2 as f32,
                    eps: c.eps as f32,
                    weight_decay: c.weight_decay as f32,
                    bc1: bc1 as f32,
                    bc2: bc2 as f32,
                };
                let next = super::cuda::adamw(p.as_tensor(), g, &self.m[i], &self.v[i], &step)?;
                p.set(&next.get(0)?)?;
                self.m[i] = next.get(1)?;
                self.v[i] = next.get(2)?;
                continue;
            }
            let m = ((&self.m[i] * c.beta1)? + (g * (1.0 - c.beta1))?)?;
            let v = ((&self.v[i] * c.beta2)? + (g.sqr()? * (1.0 - c.beta2))?)?;
            let m_hat = (&m / bc1)?;
            let v_hat = (&v / bc2)?;
            let step = (m_hat / (v_hat.sqrt()? + c.eps)?)?;
            let decayed = (p.as_tensor() * (1.0 - lr * c.weight_decay))?;
            p.set(&(decayed - (step * lr)?)?)?;
            self.m[i] = m;
            self.v[i] = v;
        }
        Ok(())
    }
}

/// The global L2 norm of `grads`, summed on their device and read back once.
pub fn global_norm(grads: &[Tensor]) -> Result<f64> {
    if grads.is_empty() {
        return Ok(0.0);
    }
    let sums = grads
        .iter()
        .map(|g| g.sqr()?.sum_all())
        .collect::<Result<Vec<_>>>()?;
    let total = Tensor::stack(&sums, 0)?.sum_all()?.to_scalar::<f32>()?;
    Ok(f64::from(total).sqrt())
}

/// Scale `grads` so their global norm is at most `max_norm`; returns the norm before clipping.
pub fn clip(grads: &mut [Tensor], max_norm: f64) -> Result<f64> {
    let norm = global_norm(grads)?;
    if max_norm > 0.0 && norm > max_norm && norm.is_finite() {
        let scale = max_norm / (norm + 1e-6);
        for g in grads.iter_mut() {
            *g = (&*g * scale)?;
        }
    }
    Ok(norm)
}

/// Linear warmup over `warmup` steps, then cosine decay to 10% of `peak` at `total`.
pub fn learning_rate(step: u64, warmup: u64, total: u64, peak: f64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let span = total.saturating_sub(warmup).max(1) as f64;
    let progress = ((step - warmup.min(step)) as f64 / span).min(1.0);
    let floor = 0.1 * peak;
    floor + (peak - floor) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_warms_up_then_decays() {
        assert!((learning_rate(0, 10, 100, 1.0) - 0.1).abs() < 1e-12);
        assert!((learning_rate(9, 10, 100, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(10, 10, 100, 1.0) - 1.0).abs() < 1e-12);
        assert!((learning_rate(100, 10, 100, 1.0) - 0.1).abs() < 1e-12);
        assert!(learning_rate(50, 10, 100, 1.0) < learning_rate(30, 10, 100, 1.0));
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        let dev = candle_core::Device::Cpu;
        let p = Var::new(&[1f32, -2.0], &dev).unwrap();
        let mut opt = AdamW::new(AdamWConfig::default(), &[&p]).unwrap();
        let g = Tensor::new(&[0.5f32, -3.0], &dev).unwrap();
        opt.update(&[&p], &[g], 0.1).unwrap();
        // With bias correction the first step is lr · sign(g).
        let got = p.as_tensor().to_vec1::<f32>().unwrap();
        assert!(
            (got[0] - 0.9).abs() < 1e-5 && (got[1] + 1.9).abs() < 1e-5,
            "{got:?}"
        );
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let dev = candle_core::Device::Cpu;
        let mut g = vec![
            Tensor::new(&[3f32], &dev).unwrap(),
            Tensor::new(&[4f32], &dev).unwrap(),
        ];
        let before = clip(&mut g, 1.0).unwrap();
        assert!((before - 5.0).abs() < 1e-9);
        assert!((global_norm(&g).unwrap() - 1.0).abs() < 1e-5);
    }
}
