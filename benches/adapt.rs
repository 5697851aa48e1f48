//! `lore adapt`'s training step, measured and checked against PyTorch + PEFT.
//!
//! ```text
//! cargo bench --bench adapt -- throughput --model DIR [--seq 1024] [--batch 8] [--steps 10] [--device cuda]
//! cargo bench --bench adapt -- parity --model DIR --out DIR [--device cpu|cuda]
//! cargo bench --bench adapt -- profile --model DIR [--seq 1024] [--batch 8] [--device cuda]
//! ```
//!
//! `profile` times the parts of a step (JSON): the forward pass alone, forward + backward, the
//! same tokens as short rows (how much attention's O(seq²) costs), and forward + backward
//! without LoRA on a tracked input (what LoRA itself adds).
//!
//! `throughput` trains LoRA r=16 on all seven projections (alpha 32, AdamW, f32 LoRA weights,
//! bf16 base on CUDA) on random tokens, and prints tokens/s, the step time and MFU as JSON, with
//! the same FLOP count as `peft_lora_bench.py` (benches/gpu/README.md), which is run beside it.
//!
//! `parity` writes a PEFT adapter with random A and B, a batch, lore's logits for it and the
//! LoRA gradients of the mean next-token loss, for `benches/gpu/peft_parity.py` to compare
//! with transformers + PEFT on the same weights.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{Device, Tensor};
use lore::adapt::config::ModelDir;
use lore::adapt::lora::{write_safetensors, LoraConfig, LoraSet, SplitMix, ALL_TARGETS};
use lore::adapt::model::{Batch, Model};
use lore::adapt::optim::{self, AdamW, AdamWConfig};

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: usize) -> usize {
    arg(args, name).map_or(default, |v| v.parse().expect("a number"))
}

fn lora16() -> LoraConfig {
    LoraConfig {
        rank: 16,
        alpha: 32.0,
        dropout: 0.0,
        rslora: false,
        targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
    }
}

/// Random tokens; each row one document; labels are the tokens (unshifted).
fn random_batch(vocab: usize, rows: usize, seq: usize, seed: u64) -> Batch {
    let mut rng = SplitMix(seed);
    let ids: Vec<u32> = (0..rows * seq)
        .map(|_| (rng.next_u64() % vocab as u64) as u32)
        .collect();
    let positions: Vec<u32> = (0..rows * seq).map(|i| (i % seq) as u32).collect();
    let labels: Vec<i64> = ids
        .iter()
        .enumerate()
        .map(|(i, &t)| if i % seq == 0 { -100 } else { i64::from(t) })
        .collect();
    Batch {
        ids,
        positions,
        labels,
        rows,
        seq,
    }
}

fn device(args: &[String]) -> Device {
    match arg(args, "--device").as_deref() {
        Some("cuda") => Device::new_cuda(0).expect("a CUDA device (build with --features cuda)"),
        _ => Device::Cpu,
    }
}

fn throughput(args: &[String]) {
    let dev = device(args);
    let dir = ModelDir::open(&PathBuf::from(arg(args, "--model").expect("--model DIR"))).unwrap();
    let model = Model::load(&dir, &dev).unwrap();
    let (seq, rows, steps) = (
        num(args, "--seq", 1024),
        num(args, "--batch", 8),
        num(args, "--steps", 10),
    );
    let lora = LoraSet::init(&dir.config, &lora16(), 0, &dev).unwrap();
    let params: Vec<&candle_core::Var> = lora.named().into_iter().map(|(_, v)| v).collect();
    let mut opt = AdamW::new(AdamWConfig::default(), &params).unwrap();
    let batch = random_batch(dir.config.vocab_size, rows, seq, 1);
    let mut step = || -> f32 {
        let labels = batch.targets().0.len();
        let out = model
            .loss_and_grads(&batch, &lora, true, 1.0 / labels as f64)
            .unwrap()
            .unwrap();
        let mut g = out.grads;
        optim::clip(&mut g, 1.0).unwrap();
        opt.update(&params, &g, 1e-4).unwrap();
        (out.loss_sum / labels as f64) as f32
    };
    let warm = num(args, "--warmup", 3);
    for _ in 0..warm {
        step();
    }
    dev.synchronize().unwrap();
    let t = Instant::now();
    let mut loss = 0.0;
    for _ in 0..steps {
        loss = step();
    }
    dev.synchronize().unwrap();
    let dt = t.elapsed().as_secs_f64();
    let tokens = (rows * seq * steps) as f64 / dt;
    let c = &dir.config;
    let n_params = c.parameters() as f64;
    let attn = 4.0 * c.num_hidden_layers as f64 * seq as f64 * c.hidden_size as f64 * 2.0;
    let flops_tok = 4.0 * n_params + attn;
    println!(
        "{}",
        serde_json::json!({
            "impl": "lore",
            "device": format!("{dev:?}"),
            "params": n_params,
            "trainable": lora.parameters(),
            "seq": seq,
            "batch": rows,
            "steps": steps,
            "tokens_per_s": tokens.round(),
            "step_s": dt / steps as f64,
            "mfu_vs_989TF": tokens * flops_tok / 989e12,
            "loss": loss,
        })
    );
}

fn parity(args: &[String]) {
    let dev = device(args);
    let model_dir = PathBuf::from(arg(args, "--model").expect("--model DIR"));
    let out = PathBuf::from(arg(args, "--out").expect("--out DIR"));
    let dir = ModelDir::open(&model_dir).unwrap();
    let model = Model::load(&dir, &dev).unwrap();
    let lora = LoraSet::init(&dir.config, &lora16(), 11, &dev).unwrap();
    let mut rng = SplitMix(12);
    for l in lora.layers.values() {
        let d = l.b.as_tensor().dims().to_vec();
        let v: Vec<f32> = (0..d[0] * d[1]).map(|_| rng.normal() * 0.02).collect();
        l.b.set(&Tensor::from_vec(v, (d[0], d[1]), &dev).unwrap())
            .unwrap();
    }
    let seq = num(args, "--seq", 64);
    let batch = random_batch(dir.config.vocab_size, 2, seq, 13);
    let logits = model.logits(&batch, Some(&lora)).unwrap();
    let labels = batch.targets().0.len();
    let out = model
        .loss_and_grads(&batch, &lora, false, 1.0 / labels as f64)
        .unwrap()
        .unwrap();
    let loss = Tensor::new(&[(out.loss_sum / labels as f64) as f32], &Device::Cpu).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert("logits".into(), logits.reshape((2, seq, ())).unwrap());
    tensors.insert("loss".into(), loss);
    for ((key, _), grad) in lora.named().into_iter().zip(out.grads) {
        tensors.insert(format!("grad.{key}"), grad);
    }
    let ids: Vec<f32> = batch.ids.iter().map(|&i| i as f32).collect();
    tensors.insert(
        "input_ids".into(),
        Tensor::from_vec(ids, (2, seq), &Device::Cpu).unwrap(),
    );
    std::fs::create_dir_all(&out).unwrap();
    let mut bytes = Vec::new();
    write_safetensors(&tensors, &mut bytes).unwrap();
    std::fs::write(out.join("lore_outputs.safetensors"), bytes).unwrap();
    lore::adapt::peft::write_peft_dir(
        &lora16(),
        &model_dir.display().to_string(),
        &lora.to_safetensors().unwrap(),
        None,
        &out.join("adapter"),
    )
    .unwrap();
    println!("wrote {}", out.display());
}

/// Seconds per call of `f`, after one warm-up call, over `n` calls.
fn time(dev: &Device, n: usize, mut f: impl FnMut()) -> f64 {
    f();
    dev.synchronize().unwrap();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    dev.synchronize().unwrap();
    t.elapsed().as_secs_f64() / n as f64
}

fn profile(args: &[String]) {
    let dev = device(args);
    let dir = ModelDir::open(&PathBuf::from(arg(args, "--model").expect("--model DIR"))).unwrap();
    let model = Model::load(&dir, &dev).unwrap();
    let (seq, rows) = (num(args, "--seq", 1024), num(args, "--batch", 8));
    let lora = LoraSet::init(&dir.config, &lora16(), 0, &dev).unwrap();
    let vocab = dir.config.vocab_size;
    let batch = random_batch(vocab, rows, seq, 1);
    let short = random_batch(vocab, rows * seq / 128, 128, 1);
    let fwd = time(&dev, 3, || {
        model.loss_sum(&batch, Some(&lora)).unwrap().unwrap();
    });
    let step = |b: &Batch| {
        model.loss_and_grads(b, &lora, true, 1.0).unwrap().unwrap();
    };
    let fwd_bwd = time(&dev, 3, || step(&batch));
    let short_rows = time(&dev, 3, || step(&short));
    let tokens = (rows * seq) as f64;
    println!(
        "{}",
        serde_json::json!({
            "seq": seq,
            "batch": rows,
            "forward_s": fwd,
            "forward_backward_s": fwd_bwd,
            "backward_share": (fwd_bwd - fwd) / fwd_bwd,
            "same_tokens_seq128_forward_backward_s": short_rows,
            "attention_share_estimate": (fwd_bwd - short_rows) / fwd_bwd,
            "tokens_per_s_forward_backward": tokens / fwd_bwd,
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args
        .iter()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
    {
        Some("parity") => parity(&args),
        Some("throughput") => throughput(&args),
        Some("profile") => profile(&args),
        // `cargo bench` with no mode (CI's `--no-run` only builds it): say how to use it.
        _ => eprintln!(
            "usage: adapt (throughput|parity|profile) --model DIR [...]; see benches/adapt.rs"
        ),
    }
}
