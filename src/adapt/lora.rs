//! LoRA with PEFT's semantics: `y = W x + s · B(A(dropout(x)))` with `s = alpha / r` (or
//! `alpha / √r` with rsLoRA), `A` `[r, in]` drawn kaiming-uniform (a = √5, so uniform in
//! ±1/√in), `B` `[out, r]` zeros. The weights and their optimizer state stay f32 whatever the
//! activations' dtype.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::config::ModelConfig;

/// The projections LoRA can wrap, in the order PEFT lists them.
pub const ALL_TARGETS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
];

/// Ranks vLLM serves adapters of.
pub const VLLM_RANKS: &[usize] = &[1, 8, 16, 32, 64, 128, 256, 320, 512];

/// The shape of an adapter: which projections, what rank, how scaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraConfig {
    pub rank: usize,
    pub alpha: f64,
    pub dropout: f32,
    pub rslora: bool,
    pub targets: Vec<String>,
}

impl LoraConfig {
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.rank as f64).sqrt()
        } else {
            self.alpha / self.rank as f64
        }
    }
}

/// The module path of a projection inside a layer.
pub fn module_path(module: &str) -> &'static str {
    match module {
        "q_proj" | "k_proj" | "v_proj" | "o_proj" => "self_attn",
        _ => "mlp",
    }
}

/// The PEFT key of one LoRA matrix (`which` is `lora_A` or `lora_B`).
pub fn peft_key(layer: usize, module: &str, which: &str) -> String {
    format!(
        "base_model.model.model.layers.{layer}.{}.{module}.{which}.weight",
        module_path(module)
    )
}

/// One wrapped projection.
pub struct LoraLayer {
    pub a: Var,
    pub b: Var,
}

/// All of an adapter's LoRA layers, keyed by (layer, module).
pub struct LoraSet {
    pub config: LoraConfig,
    pub layers: BTreeMap<(usize, String), LoraLayer>,
}

/// The seeded generator (splitmix64) for initialisation and shuffles, so the same seed gives
/// the same adapter on every machine.
pub use crate::index::embed::random::SplitMix;

impl LoraSet {
    /// A fresh adapter: A kaiming-uniform, B zeros.
    pub fn init(
        model: &ModelConfig,
        config: &LoraConfig,
        seed: u64,
        device: &Device,
    ) -> candle_core::Result<LoraSet> {
        let mut rng = SplitMix(seed);
        let mut layers = BTreeMap::new();
        for layer in 0..model.num_hidden_layers {
            for module in &config.targets {
                let (fan_in, out) = model
                    .shape_of(module)
                    .ok_or_else(|| candle_core::Error::Msg(format!("unknown module {module}")))?;
                let bound = 1.0 / (fan_in as f64).sqrt();
                let a: Vec<f32> = (0..config.rank * fan_in)
                    .map(|_| ((rng.uniform() * 2.0 - 1.0) * bound) as f32)
                    .collect();
                let a = Var::from_vec(a, (config.rank, fan_in), device)?;
                let b = Var::zeros((out, config.rank), DType::F32, device)?;
                layers.insert((layer, module.clone()), LoraLayer { a, b });
            }
        }
        Ok(LoraSet {
            config: config.clone(),
            layers,
        })
    }

    /// Every trainable tensor with its PEFT key, in a fixed order.
    pub fn named(&self) -> Vec<(String, &Var)> {
        let mut out = Vec::with_capacity(self.layers.len() * 2);
        for ((layer, module), l) in &self.layers {
            out.push((peft_key(*layer, module, "lora_A"), &l.a));
            out.push((peft_key(*layer, module, "lora_B"), &l.b));
        }
        out
    }

    pub fn parameters(&self) -> u64 {
        self.named()
            .iter()
            .map(|(_, v)| v.as_tensor().elem_count() as u64)
            .sum()
    }

    /// The weights as PEFT's `adapter_model.safetensors` holds them (f32).
    pub fn to_safetensors(&self) -> candle_core::Result<Vec<u8>> {
        let tensors: Vec<(String, Tensor)> = self
            .named()
            .into_iter()
            .map(|(k, v)| Ok((k, v.as_tensor().to_device(&Device::Cpu)?)))
            .collect::<candle_core::Result<_>>()?;
        let map: std::collections::HashMap<String, Tensor> = tensors.into_iter().collect();
        let mut buf = Vec::new();
        write_safetensors(&map, &mut buf)?;
        Ok(buf)
    }

    /// Copy weights saved by [`LoraSet::to_safetensors`] into this adapter; every key must be
    /// present with the same shape.
    pub fn load_safetensors(&self, bytes: &[u8]) -> candle_core::Result<()> {
        let loaded = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        for (key, var) in self.named() {
            let t = loaded
                .get(&key)
                .ok_or_else(|| candle_core::Error::Msg(format!("the adapter lacks {key}")))?;
            if t.dims() != var.as_tensor().dims() {
                return Err(candle_core::Error::Msg(format!(
                    "{key}: shape {:?}, expected {:?}",
                    t.dims(),
                    var.as_tensor().dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?.to_device(var.device())?)?;
        }
        Ok(())
    }
}

/// Serialize named tensors as safetensors into `out`, keys sorted.
pub fn write_safetensors(
    tensors: &std::collections::HashMap<String, Tensor>,
    out: &mut Vec<u8>,
) -> candle_core::Result<()> {
    let mut keys: Vec<&String> = tensors.keys().collect();
    keys.sort();
    let mut data: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::with_capacity(keys.len());
    for k in keys {
        let t = tensors[k].to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let values = t.flatten_all()?.to_vec1::<f32>()?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        data.push((k.clone(), bytes, t.dims().to_vec()));
    }
    let views = data
        .iter()
        .map(|(k, b, shape)| {
            safetensors::tensor::TensorView::new(safetensors::tensor::Dtype::F32, shape.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| candle_core::Error::Msg(e.to_string()))
        })
        .collect::<candle_core::Result<Vec<_>>>()?;
    let bytes =
        safetensors::serialize(views, None).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    out.extend_from_slice(&bytes);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_ones_peft_saves() {
        assert_eq!(
            peft_key(3, "q_proj", "lora_A"),
            "base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight"
        );
        assert_eq!(
            peft_key(0, "down_proj", "lora_B"),
            "base_model.model.model.layers.0.mlp.down_proj.lora_B.weight"
        );
    }
}
