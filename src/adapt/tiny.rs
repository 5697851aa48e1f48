//! `lore model init --tiny`: a byte-level BPE tokenizer trained on the project's own text and a
//! small random-init Llama model, written in the Hugging Face layout, so export → adapt runs
//! offline with nothing downloaded.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde::Serialize;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

use super::lora::{write_safetensors, SplitMix};
use super::staging::Staging;
use super::AdaptError;

/// The end-of-text token of tiny models.
pub const EOS: &str = "<|endoftext|>";

/// The shape of a tiny model.
#[derive(Debug, Clone, Serialize)]
pub struct TinyShape {
    pub vocab: usize,
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub intermediate: usize,
    pub max_positions: usize,
}

impl Default for TinyShape {
    fn default() -> Self {
        TinyShape {
            vocab: 4096,
            hidden: 256,
            layers: 4,
            heads: 8,
            kv_heads: 4,
            intermediate: 688,
            max_positions: 4096,
        }
    }
}

/// What `init_tiny` wrote.
#[derive(Debug, Clone, Serialize)]
pub struct TinyReport {
    pub vocab: usize,
    pub parameters: u64,
    pub corpus_bytes: usize,
}

/// Train a tokenizer on `texts` and write a random-init model of `shape` (projections
/// N(0, 0.02), tied embeddings N(0, 1/hidden), norms 1) into `out`, which must not exist or be
/// empty.
pub fn init_tiny(
    texts: &[String],
    out: &Path,
    shape: &TinyShape,
    seed: u64,
) -> Result<TinyReport, AdaptError> {
    let io = |path: &Path, e: std::io::Error| AdaptError::Io {
        path: path.to_path_buf(),
        source: e,
    };
    if shape.heads == 0
        || shape.kv_heads == 0
        || !shape.hidden.is_multiple_of(shape.heads)
        || !shape.heads.is_multiple_of(shape.kv_heads)
        || !(shape.hidden / shape.heads).is_multiple_of(2)
    {
        return Err(AdaptError::Model {
            path: out.to_path_buf(),
            detail: format!(
                "hidden {} with {} heads and {} key/value heads is not a valid shape",
                shape.hidden, shape.heads, shape.kv_heads
            ),
        });
    }
    let staging = Staging::new(out, ".lore-model-")?;
    let dir = staging.path();

    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(shape.vocab)
        .min_frequency(2)
        .special_tokens(vec![AddedToken::from(EOS, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tokenizer: tokenizers::TokenizerImpl<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevel,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .with_normalizer(None)
        .with_post_processor(None)
        .build()
        .map_err(|e| AdaptError::Tokenizer(e.to_string()))?;
    tokenizer
        .train(&mut trainer, texts.iter())
        .map_err(|e| AdaptError::Tokenizer(e.to_string()))?;
    tokenizer
        .save(dir.join("tokenizer.json"), false)
        .map_err(|e| AdaptError::Tokenizer(e.to_string()))?;
    let vocab = tokenizer.get_vocab_size(true);
    let eos = tokenizer.token_to_id(EOS).unwrap_or(0);
    let write_json = |name: &str, v: serde_json::Value| {
        let path = dir.join(name);
        std::fs::write(
            &path,
            serde_json::to_string_pretty(&v).expect("json") + "\n",
        )
        .map_err(|e| io(&out.join(name), e))
    };
    write_json(
        "tokenizer_config.json",
        serde_json::json!({
            "eos_token": EOS,
            "pad_token": EOS,
            "model_max_length": shape.max_positions,
            "tokenizer_class": "PreTrainedTokenizerFast",
        }),
    )?;
    let head_dim = shape.hidden / shape.heads;
    write_json(
        "config.json",
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "vocab_size": vocab,
            "hidden_size": shape.hidden,
            "intermediate_size": shape.intermediate,
            "num_hidden_layers": shape.layers,
            "num_attention_heads": shape.heads,
            "num_key_value_heads": shape.kv_heads,
            "head_dim": head_dim,
            "hidden_act": "silu",
            "max_position_embeddings": shape.max_positions,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "tie_word_embeddings": true,
            "attention_bias": false,
            "mlp_bias": false,
            "initializer_range": 0.02,
            "bos_token_id": eos,
            "eos_token_id": eos,
            "pad_token_id": eos,
            "torch_dtype": "float32",
        }),
    )?;

    let mut rng = SplitMix(seed);
    let mut rng_embed = SplitMix(seed ^ 0xe4b3);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut parameters = 0u64;
    let mut normal = |shape: (usize, usize)| -> candle_core::Result<Tensor> {
        let v: Vec<f32> = (0..shape.0 * shape.1)
            .map(|_| rng.normal() * 0.02)
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu)
    };
    let ones = |n: usize| Tensor::ones(n, candle_core::DType::F32, &Device::Cpu);
    let (h, i) = (shape.hidden, shape.intermediate);
    let (q, kv) = (shape.heads * head_dim, shape.kv_heads * head_dim);
    // The tied embedding is frozen under LoRA, and with RMSNorm before it the largest logit
    // is about |E_row| · √hidden: N(0, 1/hidden) rows let a tiny model express confident
    // predictions, where 0.02 would cap every logit near 1.
    let embed: Vec<f32> = (0..vocab * h)
        .map(|_| rng_embed.normal() / (h as f32).sqrt())
        .collect();
    tensors.insert(
        "model.embed_tokens.weight".into(),
        Tensor::from_vec(embed, (vocab, h), &Device::Cpu)?,
    );
    for l in 0..shape.layers {
        let p = format!("model.layers.{l}");
        for (name, dims) in [
            ("self_attn.q_proj", (q, h)),
            ("self_attn.k_proj", (kv, h)),
            ("self_attn.v_proj", (kv, h)),
            ("self_attn.o_proj", (h, q)),
            ("mlp.gate_proj", (i, h)),
            ("mlp.up_proj", (i, h)),
            ("mlp.down_proj", (h, i)),
        ] {
            tensors.insert(format!("{p}.{name}.weight"), normal(dims)?);
        }
        tensors.insert(format!("{p}.input_layernorm.weight"), ones(h)?);
        tensors.insert(format!("{p}.post_attention_layernorm.weight"), ones(h)?);
    }
    tensors.insert("model.norm.weight".into(), ones(h)?);
    for t in tensors.values() {
        parameters += t.elem_count() as u64;
    }
    let mut bytes = Vec::new();
    write_safetensors(&tensors, &mut bytes)?;
    std::fs::write(dir.join("model.safetensors"), bytes)
        .map_err(|e| io(&out.join("model.safetensors"), e))?;
    staging.finish()?;
    Ok(TinyReport {
        vocab,
        parameters,
        corpus_bytes: texts.iter().map(String::len).sum(),
    })
}
