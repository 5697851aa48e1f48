//! `lore adapt`'s training step, measured and checked against PyTorch + PEFT.
//!
//! ```text
//! cargo bench --bench adapt -- throughput --model DIR [--seq 1024] [--batch 8] [--steps 10] [--device cuda]
//! cargo bench --bench adapt -- parity --model DIR --out DIR [--device cpu|cuda]
//! cargo bench --bench adapt -- profile --model DIR [--seq 1024] [--batch 8] [--device cuda]
//! cargo bench --bench adapt -- kernels --model DIR --device cuda
//! ```
//!
//! `throughput` and `profile` take `--composed` to run without lore's fused CUDA kernels
//! (candle's own kernels only), for comparison in the same session.
//!
//! `profile` times the parts of a step (JSON): the forward pass alone, forward + backward, and
//! the same tokens as short rows (how much attention's O(seq²) costs).
//!
//! `kernels` checks each fused CUDA kernel against the composed candle ops it replaces on
//! random bf16 inputs, and a whole step's loss and LoRA gradients with and without them on a
//! small model; it prints one JSON line per check and exits non-zero when one is off by more
//! than bf16 rounding explains.
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
use lore::adapt::ops;
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

/// A LoRA r=16 adapter whose B is random N(0, 0.02) too, so every gradient is non-zero.
fn random_lora(config: &lore::adapt::config::ModelConfig, dev: &Device) -> LoraSet {
    let lora = LoraSet::init(config, &lora16(), 11, dev).unwrap();
    let mut rng = SplitMix(12);
    for l in lora.layers.values() {
        let d = l.b.as_tensor().dims().to_vec();
        let v: Vec<f32> = (0..d[0] * d[1]).map(|_| rng.normal() * 0.02).collect();
        l.b.set(&Tensor::from_vec(v, (d[0], d[1]), dev).unwrap())
            .unwrap();
    }
    lora
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

/// The device, and whether lore's fused kernels are used on it (`--composed`: not).
fn device(args: &[String]) -> Device {
    ops::set_fused(!args.iter().any(|a| a == "--composed"));
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
    let lora = random_lora(&dir.config, &dev);
    let seq = num(args, "--seq", 64);
    let batch = random_batch(dir.config.vocab_size, 2, seq, 13);
    let logits = model.logits(&batch, Some(&lora)).unwrap();
    let labels = batch.targets().0.len();
    let step = model
        .loss_and_grads(&batch, &lora, false, 1.0 / labels as f64)
        .unwrap()
        .unwrap();
    let loss = Tensor::new(&[(step.loss_sum / labels as f64) as f32], &Device::Cpu).unwrap();
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    tensors.insert("logits".into(), logits.reshape((2, seq, ())).unwrap());
    tensors.insert("loss".into(), loss);
    for ((key, _), grad) in lora.named().into_iter().zip(step.grads) {
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

/// The largest absolute difference between `a` and `b` over the largest absolute value of `b`.
fn relative_max(a: &Tensor, b: &Tensor) -> (f64, f64) {
    let f = |t: &Tensor| -> Vec<f32> {
        t.to_dtype(candle_core::DType::F32)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (a, b) = (f(a), f(b));
    assert_eq!(a.len(), b.len(), "the two versions differ in size");
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    let scale = b.iter().map(|y| y.abs()).fold(0f32, f32::max);
    (f64::from(diff), f64::from(scale))
}

/// The relative L2 error of `a` against `b`.
fn relative_l2(a: &Tensor, b: &Tensor) -> f64 {
    let a = a.to_dtype(candle_core::DType::F32).unwrap();
    let b = b.to_dtype(candle_core::DType::F32).unwrap();
    let norm = |t: &Tensor| {
        f64::from(
            t.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
        .sqrt()
    };
    norm(&(&a - &b).unwrap()) / norm(&b).max(1e-30)
}

fn kernels(args: &[String]) {
    let dev = device(args);
    assert!(
        dev.is_cuda(),
        "kernels: the fused kernels run on --device cuda"
    );
    let mut rng = SplitMix(7);
    let mut rand = |shape: &[usize], scale: f32| -> Tensor {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| rng.normal() * scale).collect();
        Tensor::from_vec(v, shape, &dev)
            .unwrap()
            .to_dtype(candle_core::DType::BF16)
            .unwrap()
    };
    let mut failed = 0;
    let mut check = |name: &str, f: &dyn Fn() -> Vec<Tensor>| {
        ops::set_fused(true);
        let fused = f();
        ops::set_fused(false);
        let composed = f();
        ops::set_fused(true);
        for (i, (a, b)) in fused.iter().zip(&composed).enumerate() {
            let (diff, scale) = relative_max(a, b);
            // bf16 keeps 8 significant bits: a few roundings apart is 2^-6 of the scale.
            let ok = diff <= scale / 64.0 + 1e-6;
            failed += usize::from(!ok);
            println!(
                "{}",
                serde_json::json!({"check": name, "output": i, "max_abs_diff": diff, "max_abs": scale, "ok": ok})
            );
        }
    };
    let (b, t, heads, d, hidden, inter, vocab) = (2, 128, 4, 32, 128, 352, 5000);
    let n = b * t;
    let x = rand(&[n, hidden], 1.0);
    let w = (rand(&[hidden], 0.2) + 1.0).unwrap();
    let dy = rand(&[n, hidden], 1.0);
    let res = rand(&[n, hidden], 1.0);
    check("rms_norm", &|| vec![ops::rms_norm(&x, &w, 1e-6).unwrap()]);
    check("rms_norm_back", &|| {
        vec![
            ops::rms_norm_back(&x, &w, 1e-6, &dy, None).unwrap(),
            ops::rms_norm_back(&x, &w, 1e-6, &dy, Some(&res)).unwrap(),
        ]
    });
    let (gate, up, da) = (
        rand(&[n, inter], 2.0),
        rand(&[n, inter], 1.0),
        rand(&[n, inter], 1.0),
    );
    check("swiglu", &|| vec![ops::swiglu(&gate, &up).unwrap()]);
    check("swiglu_back", &|| {
        let (g, u) = ops::swiglu_back(&gate, &up, &da).unwrap();
        vec![g, u]
    });
    let half = d / 2;
    let angles: Vec<f32> = (0..n * half)
        .map(|i| ((i / half) % t) as f32 / 10f32.powf((i % half) as f32 / half as f32 * 4.0))
        .collect();
    let table = |f: fn(f32) -> f32| {
        let v: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
        Tensor::from_vec(v, (n, half), &dev)
            .unwrap()
            .to_dtype(candle_core::DType::BF16)
            .unwrap()
    };
    let (cos, sin) = (table(f32::cos), table(f32::sin));
    let q = rand(&[n, heads * d], 1.0);
    let dq = rand(&[b, heads, t, d], 1.0);
    check("rope_to_heads", &|| {
        vec![ops::rope_to_heads(&q, &cos, &sin, (b, t, heads, d), 0.5).unwrap()]
    });
    check("rope_back_to_rows", &|| {
        vec![ops::rope_back_to_rows(&dq, &cos, &sin, (b, t, heads, d), 0.5).unwrap()]
    });
    // Two documents in the first row (the second starts at 50), one in the second.
    let positions: Vec<u32> = (0..n)
        .map(|i| {
            let j = i % t;
            if i < t && j >= 50 {
                j as u32 - 50
            } else {
                j as u32
            }
        })
        .collect();
    let scores = rand(&[b, heads, t, t], 3.0);
    check("causal_softmax", &|| {
        let mask = ops::PackedMask::new(&positions, (b, t, heads), candle_core::DType::BF16, &dev)
            .unwrap();
        vec![ops::causal_softmax(&scores, &mask).unwrap()]
    });
    let p = candle_nn::ops::softmax_last_dim(&scores).unwrap();
    let dp = rand(&[b, heads, t, t], 1.0);
    let rowdot = rand(&[b, heads, t, 1], 0.1)
        .to_dtype(candle_core::DType::F32)
        .unwrap();
    check("softmax_back", &|| {
        vec![ops::softmax_back(&p, &dp, &rowdot).unwrap()]
    });
    let logits = rand(&[300, vocab], 4.0);
    let targets: Vec<u32> = (0..300).map(|i| (i * 7919 % vocab) as u32).collect();
    let targets = Tensor::from_vec(targets, 300, &dev).unwrap();
    check("cross_entropy", &|| {
        let (loss, grad) = ops::cross_entropy(&logits, &targets, Some(0.01)).unwrap();
        vec![loss, grad.unwrap()]
    });
    let f32 = |t: Tensor| t.to_dtype(candle_core::DType::F32).unwrap();
    let (p0, g0) = (f32(rand(&[16, 896], 0.05)), f32(rand(&[16, 896], 0.01)));
    let (m0, v0) = (
        f32(rand(&[16, 896], 0.01)),
        f32(rand(&[16, 896], 0.01)).sqr().unwrap(),
    );
    check("adamw", &|| {
        let p = candle_core::Var::from_tensor(&p0).unwrap();
        let config = AdamWConfig {
            weight_decay: 0.01,
            ..AdamWConfig::default()
        };
        let mut opt = AdamW::new(config, &[&p]).unwrap();
        opt.m[0] = m0.clone();
        opt.v[0] = v0.clone();
        opt.step = 4;
        opt.update(&[&p], std::slice::from_ref(&g0), 1e-3).unwrap();
        vec![p.as_tensor().clone(), opt.m[0].clone(), opt.v[0].clone()]
    });
    // A whole step on a small model: the loss and every LoRA gradient.
    if let Some(model_dir) = arg(args, "--model") {
        let dir = ModelDir::open(&PathBuf::from(model_dir)).unwrap();
        let model = Model::load(&dir, &dev).unwrap();
        let lora = random_lora(&dir.config, &dev);
        let mut batch = random_batch(dir.config.vocab_size, 2, 256, 13);
        // Pack two documents into the first row.
        for i in 100..256 {
            batch.positions[i] = (i - 100) as u32;
        }
        let step = |fused: bool| {
            ops::set_fused(fused);
            model
                .loss_and_grads(&batch, &lora, false, 1.0 / 500.0)
                .unwrap()
                .unwrap()
        };
        let (a, c) = (step(true), step(false));
        ops::set_fused(true);
        let mut errors: Vec<f64> = a
            .grads
            .iter()
            .zip(&c.grads)
            .map(|(x, y)| relative_l2(x, y))
            .collect();
        errors.sort_by(f64::total_cmp);
        let worst = errors.last().copied().unwrap_or(0.0);
        let loss_rel = (a.loss_sum - c.loss_sum).abs() / c.loss_sum.abs();
        // bf16 activations: the two orders of rounding differ by about 1% (the PEFT parity
        // check sees 1.2% median, 2.2% worst between lore and PyTorch).
        let ok = worst < 0.05 && loss_rel < 1e-3;
        failed += usize::from(!ok);
        println!(
            "{}",
            serde_json::json!({
                "check": "step", "loss_fused": a.loss_sum, "loss_composed": c.loss_sum,
                "grad_rel_l2_median": errors[errors.len() / 2], "grad_rel_l2_max": worst, "ok": ok,
            })
        );
    }
    if failed > 0 {
        eprintln!("{failed} checks failed");
        std::process::exit(1);
    }
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
        Some("kernels") => kernels(&args),
        // `cargo bench` with no mode (CI's `--no-run` only builds it): say how to use it.
        _ => eprintln!(
            "usage: adapt (throughput|parity|profile|kernels) --model DIR [...]; see benches/adapt.rs"
        ),
    }
}
