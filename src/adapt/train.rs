//! The training loop: micro-batches with gradient accumulation, loss on labelled tokens only,
//! AdamW with warmup and cosine decay, clipping, validation every N steps with early stopping,
//! and checkpoints that survive `kill -9` (written to a temporary file, then renamed).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::data::{self, shuffle};
use super::lora::{write_safetensors, LoraSet};
use super::model::{Batch, Model};
use super::optim::{self, AdamW, AdamWConfig};
use super::AdaptError;
use crate::progress::Progress;

/// How to train.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub lr: f64,
    pub weight_decay: f64,
    /// Share of the steps spent warming up.
    pub warmup: f64,
    pub epochs: usize,
    pub max_steps: Option<u64>,
    /// Rows per micro-batch.
    pub batch: usize,
    /// Micro-batches per optimizer step.
    pub accumulate: usize,
    pub clip: f64,
    /// Validate every this many steps (and at the end).
    pub eval_every: u64,
    /// Stop after this many validations without improvement.
    pub patience: usize,
    /// Write a checkpoint every this many steps.
    pub checkpoint_every: u64,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            lr: 2e-4,
            weight_decay: 0.0,
            warmup: 0.05,
            epochs: 1,
            max_steps: None,
            batch: 8,
            accumulate: 1,
            clip: 1.0,
            eval_every: 50,
            patience: 3,
            checkpoint_every: 50,
            seed: 0,
        }
    }
}

/// One line of the training log (`lore adapt --json`).
#[derive(Debug, Clone, Serialize)]
pub struct StepLog {
    pub step: u64,
    pub steps: u64,
    pub loss: f64,
    pub lr: f64,
    pub grad_norm: f64,
    pub tokens_per_s: f64,
    pub val_loss: Option<f64>,
}

/// What training did.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TrainOutcome {
    pub steps: u64,
    pub planned_steps: u64,
    pub resumed_from: Option<u64>,
    pub final_train_loss: Option<f64>,
    pub best_val_loss: Option<f64>,
    pub best_step: u64,
    pub stopped_early: bool,
    pub tokens: u64,
    pub seconds: f64,
}

/// Where a run's checkpoint lives, and which run it belongs to.
pub struct Checkpoint {
    pub path: PathBuf,
    /// Identifies the run (data, model, options): a checkpoint of another run is not resumed.
    pub fingerprint: String,
}

#[derive(Serialize, Deserialize)]
struct CheckpointMeta {
    fingerprint: String,
    step: u64,
    adam_step: u64,
    outcome: TrainOutcome,
    evals_since_best: usize,
}

/// Mean loss per labelled token over `rows`, in batches of `batch` (no gradients kept).
pub fn eval_loss(
    model: &Model,
    lora: Option<&LoraSet>,
    rows: &[Batch],
    batch: usize,
) -> Result<Option<f64>, AdaptError> {
    let mut sum = 0.0;
    let mut count = 0usize;
    for chunk in rows.chunks(batch.max(1)) {
        let refs: Vec<&Batch> = chunk.iter().collect();
        if let Some((loss, n)) = model.loss_sum(&data::join(&refs), lora)? {
            sum += loss;
            count += n;
        }
    }
    Ok((count > 0).then(|| sum / count as f64))
}

fn snapshot(lora: &LoraSet) -> Result<Vec<Tensor>, AdaptError> {
    Ok(lora
        .named()
        .iter()
        .map(|(_, v)| v.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?)
}

fn restore(lora: &LoraSet, weights: &[Tensor]) -> Result<(), AdaptError> {
    for ((_, v), w) in lora.named().iter().zip(weights) {
        v.set(w)?;
    }
    Ok(())
}

fn save_checkpoint(
    ck: &Checkpoint,
    lora: &LoraSet,
    opt: &AdamW,
    best: &[Tensor],
    meta: &CheckpointMeta,
) -> Result<(), AdaptError> {
    let mut tensors = HashMap::new();
    for (i, (key, v)) in lora.named().into_iter().enumerate() {
        tensors.insert(format!("weight.{key}"), v.as_tensor().clone());
        tensors.insert(format!("adam_m.{key}"), opt.m[i].clone());
        tensors.insert(format!("adam_v.{key}"), opt.v[i].clone());
        tensors.insert(format!("best.{key}"), best[i].clone());
    }
    let mut bytes = Vec::new();
    write_safetensors(&tensors, &mut bytes)?;
    let meta_json = serde_json::to_vec(meta).expect("checkpoint meta serializes");
    let io = |e: std::io::Error| AdaptError::Io {
        path: ck.path.clone(),
        source: e,
    };
    let tmp = ck.path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        // Layout: 8-byte length of the JSON, the JSON, then the safetensors bytes.
        f.write_all(&(meta_json.len() as u64).to_le_bytes())
            .map_err(io)?;
        f.write_all(&meta_json).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &ck.path).map_err(io)
}

struct Loaded {
    meta: CheckpointMeta,
    tensors: HashMap<String, Tensor>,
}

fn load_checkpoint(path: &Path, device: &Device) -> Result<Loaded, AdaptError> {
    let bytes = std::fs::read(path).map_err(|e| AdaptError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let corrupt = |detail: String| AdaptError::Checkpoint {
        path: path.to_path_buf(),
        detail,
    };
    let len = bytes
        .get(..8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .ok_or_else(|| corrupt("truncated".into()))?;
    let json = bytes
        .get(8..8 + len)
        .ok_or_else(|| corrupt("truncated".into()))?;
    let meta: CheckpointMeta = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
    let tensors = candle_core::safetensors::load_buffer(&bytes[8 + len..], device)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Loaded { meta, tensors })
}

/// Whether a checkpoint of this run exists at `ck.path`.
pub fn checkpoint_step(ck: &Checkpoint) -> Option<u64> {
    let loaded = load_checkpoint(&ck.path, &Device::Cpu).ok()?;
    (loaded.meta.fingerprint == ck.fingerprint).then_some(loaded.meta.step)
}

/// The micro-batches of every step, in order: each epoch's rows shuffled by the seed.
fn plan(rows: usize, cfg: &TrainConfig) -> Vec<Vec<Vec<usize>>> {
    let mut micro: Vec<Vec<usize>> = Vec::new();
    for epoch in 0..cfg.epochs.max(1) {
        let mut order: Vec<usize> = (0..rows).collect();
        shuffle(&mut order, cfg.seed.wrapping_add(epoch as u64 * 7919));
        micro.extend(order.chunks(cfg.batch.max(1)).map(<[usize]>::to_vec));
    }
    let mut steps: Vec<Vec<Vec<usize>>> = micro
        .chunks(cfg.accumulate.max(1))
        .map(<[Vec<usize>]>::to_vec)
        .collect();
    if let Some(max) = cfg.max_steps {
        steps.truncate(max as usize);
    }
    steps
}

/// One training run: the model, the adapter it trains, how, and where it checkpoints.
pub struct Trainer<'a> {
    pub model: &'a Model,
    pub lora: &'a LoraSet,
    pub config: &'a TrainConfig,
    pub checkpoint: &'a Checkpoint,
}

impl Trainer<'_> {
    /// Train on `train_rows`, validating on `val_rows`; with `resume`, continue from the
    /// checkpoint. On return the adapter holds the best weights by validation loss (the last
    /// ones when there is no validation).
    pub fn run(
        &self,
        train_rows: &[Batch],
        val_rows: &[Batch],
        resume: bool,
        progress: &dyn Progress,
        log: &dyn Fn(&StepLog),
    ) -> Result<TrainOutcome, AdaptError> {
        train(self, train_rows, val_rows, resume, progress, log)
    }
}

fn train(
    run: &Trainer<'_>,
    train_rows: &[Batch],
    val_rows: &[Batch],
    resume: bool,
    progress: &dyn Progress,
    log: &dyn Fn(&StepLog),
) -> Result<TrainOutcome, AdaptError> {
    let (model, lora, cfg, ck) = (run.model, run.lora, run.config, run.checkpoint);
    let steps = plan(train_rows.len(), cfg);
    let total = steps.len() as u64;
    let params: Vec<&candle_core::Var> = lora.named().into_iter().map(|(_, v)| v).collect();
    let adam = AdamWConfig {
        lr: cfg.lr,
        weight_decay: cfg.weight_decay,
        ..AdamWConfig::default()
    };
    let mut opt = AdamW::new(adam, &params)?;
    let mut best = snapshot(lora)?;
    let mut outcome = TrainOutcome {
        planned_steps: total,
        ..TrainOutcome::default()
    };
    let mut evals_since_best = 0usize;
    let mut start = 0u64;
    if resume {
        let loaded = load_checkpoint(&ck.path, &model.device)?;
        if loaded.meta.fingerprint != ck.fingerprint {
            return Err(AdaptError::Checkpoint {
                path: ck.path.clone(),
                detail: "it belongs to another run (other data, model or options)".into(),
            });
        }
        let get = |k: &str| {
            loaded
                .tensors
                .get(k)
                .cloned()
                .ok_or_else(|| AdaptError::Checkpoint {
                    path: ck.path.clone(),
                    detail: format!("it lacks {k}"),
                })
        };
        for (i, (key, v)) in lora.named().into_iter().enumerate() {
            v.set(&get(&format!("weight.{key}"))?)?;
            opt.m[i] = get(&format!("adam_m.{key}"))?;
            opt.v[i] = get(&format!("adam_v.{key}"))?;
            best[i] = get(&format!("best.{key}"))?;
        }
        opt.step = loaded.meta.adam_step;
        start = loaded.meta.step;
        evals_since_best = loaded.meta.evals_since_best;
        outcome = loaded.meta.outcome;
        outcome.resumed_from = Some(start);
    }
    let warmup = (cfg.warmup * total as f64).round() as u64;
    progress.phase("training", Some(total));
    progress.advance(start);
    let began = Instant::now();
    let mut tokens_this_run = 0u64;
    let mut step = start;
    while step < total {
        let micro = &steps[step as usize];
        let batches: Vec<Batch> = micro
            .iter()
            .map(|idx| data::join(&idx.iter().map(|&i| &train_rows[i]).collect::<Vec<_>>()))
            .collect();
        let labels: usize = batches.iter().map(|b| b.targets().0.len()).sum();
        let mut grads: Option<Vec<Tensor>> = None;
        let mut loss_sum = 0.0f64;
        for b in &batches {
            let Some(out) = model.loss_and_grads(b, lora, true, 1.0 / labels.max(1) as f64)? else {
                continue;
            };
            loss_sum += out.loss_sum;
            grads = Some(match grads {
                None => out.grads,
                Some(acc) => acc
                    .iter()
                    .zip(&out.grads)
                    .map(|(a, b)| a + b)
                    .collect::<candle_core::Result<_>>()?,
            });
            tokens_this_run += b.ids.len() as u64;
        }
        let loss = loss_sum / labels.max(1) as f64;
        let lr = optim::learning_rate(step, warmup, total, cfg.lr);
        let mut grads = grads.unwrap_or_default();
        // The norm before clipping; a non-finite loss or gradient would poison the weights.
        let grad_norm = optim::clip(&mut grads, cfg.clip)?;
        if !loss.is_finite() || !grad_norm.is_finite() {
            return Err(AdaptError::NonFinite {
                step: step + 1,
                checkpoint: ck.path.exists().then(|| ck.path.clone()),
            });
        }
        if !grads.is_empty() {
            opt.update(&params, &grads, lr)?;
        }
        step += 1;
        outcome.steps = step;
        outcome.final_train_loss = Some(loss);
        outcome.tokens += batches.iter().map(|b| b.ids.len() as u64).sum::<u64>();
        let tokens_per_s = tokens_this_run as f64 / began.elapsed().as_secs_f64().max(1e-9);
        let mut val_loss = None;
        if !val_rows.is_empty() && (step.is_multiple_of(cfg.eval_every.max(1)) || step == total) {
            let v = eval_loss(model, Some(lora), val_rows, cfg.batch)?;
            val_loss = v;
            if let Some(v) = v {
                if outcome.best_val_loss.is_none_or(|b| v < b) {
                    outcome.best_val_loss = Some(v);
                    outcome.best_step = step;
                    best = snapshot(lora)?;
                    evals_since_best = 0;
                } else {
                    evals_since_best += 1;
                }
            }
        }
        if val_rows.is_empty() {
            best = snapshot(lora)?;
            outcome.best_step = step;
        }
        log(&StepLog {
            step,
            steps: total,
            loss,
            lr,
            grad_norm,
            tokens_per_s,
            val_loss,
        });
        progress.status(&format!(
            "training  loss {loss:.3}  {tokens_per_s:.0} tok/s"
        ));
        progress.advance(1);
        let stop = cfg.patience > 0 && evals_since_best >= cfg.patience;
        if step.is_multiple_of(cfg.checkpoint_every.max(1)) || val_loss.is_some() || stop {
            let mut so_far = outcome.clone();
            so_far.seconds += began.elapsed().as_secs_f64();
            let meta = CheckpointMeta {
                fingerprint: ck.fingerprint.clone(),
                step,
                adam_step: opt.step,
                outcome: so_far,
                evals_since_best,
            };
            save_checkpoint(ck, lora, &opt, &best, &meta)?;
        }
        if stop {
            outcome.stopped_early = true;
            break;
        }
    }
    progress.done();
    outcome.seconds += began.elapsed().as_secs_f64();
    restore(lora, &best)?;
    Ok(outcome)
}
