//! Adapt: continual LoRA fine-tuning of a Llama-family model on what `lore export` wrote.
//!
//! ```text
//! export dir ─data→ new + replayed documents ─train→ LoRA weights ─lineage→ the lore file
//!                                                                 └─peft→ a PEFT directory
//! ```
//!
//! Each run continues the newest adapter of its lineage (same base model, tokenizer, target
//! modules and rank): it trains on the examples newer than that adapter's data watermark plus a
//! replayed sample of older ones, then measures the loss on the new validation documents and on
//! every ancestor's (forgetting), against the base model and the parent.

pub mod backward;
pub mod config;
#[cfg(feature = "cuda")]
mod cuda;
pub mod data;
pub mod lineage;
pub mod lora;
pub mod model;
pub mod ops;
pub mod optim;
pub mod peft;
mod staging;
pub mod tiny;
pub mod train;

use std::path::PathBuf;

use candle_core::Device;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::progress::Progress;
use crate::store::Db;
use config::ModelDir;
use data::{Document, ExportData};
use lineage::{AdapterRecord, AdapterStore, DataRecord, EvalRow, Lineage};
use lora::{LoraConfig, LoraSet};
use model::Model;
use train::{Checkpoint, StepLog, TrainConfig};

/// Why an adapt step failed. Nothing is recorded in the lore file when it does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdaptError {
    #[error("model {}: {detail}", path.display())]
    Model { path: PathBuf, detail: String },
    #[error("export {}: {detail}", path.display())]
    Data { path: PathBuf, detail: String },
    #[error("the export was tokenized with another tokenizer (sha256 {export}…) than the model's tokenizer.json ({model}…); export again with --tokenizer {}", model_dir.display())]
    TokenizerMismatch {
        export: String,
        model: String,
        model_dir: PathBuf,
    },
    #[error("the export holds no training documents")]
    EmptyExport,
    #[error("checkpoint {}: {detail}", path.display())]
    Checkpoint { path: PathBuf, detail: String },
    #[error("an unfinished run of this adapter has a checkpoint at step {step} ({}); pass --resume to continue it, or --restart to start over", path.display())]
    Unfinished { path: PathBuf, step: u64 },
    #[error("the loss or its gradient is not finite at step {step}; training stopped and nothing was recorded; {}", match checkpoint {
        Some(p) => format!("the last good checkpoint is kept at {} (lower --lr and pass --resume)", p.display()),
        None => "no checkpoint was written yet (lower --lr)".to_string(),
    })]
    NonFinite {
        step: u64,
        checkpoint: Option<PathBuf>,
    },
    #[error("no adapter {id} in this lore file (`lore adapters` lists them)")]
    NoAdapter { id: u64 },
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl From<redb::Error> for AdaptError {
    fn from(e: redb::Error) -> AdaptError {
        AdaptError::Store(crate::store::StoreError::Db(e))
    }
}

/// How to adapt.
#[derive(Debug, Clone)]
pub struct AdaptOptions {
    pub model: PathBuf,
    pub lora: LoraConfig,
    pub train: TrainConfig,
    /// Replayed old documents per new one.
    pub replay: f64,
    pub from_scratch: bool,
    pub resume: bool,
    /// Discard an unfinished run's checkpoint.
    pub restart: bool,
    pub device: Device,
    /// Where the checkpoint of a run in progress lives.
    pub work_dir: PathBuf,
}

/// What an adapt step did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AdaptReport {
    /// Nothing in the export is newer than the parent's watermark: no training happened.
    NothingNew {
        parent: Option<u64>,
        watermark: Option<i64>,
    },
    Trained(Box<AdapterRecord>),
}

/// The most validation tokens kept with an adapter for later forgetting checks.
const EVAL_SET_TOKENS: usize = 131_072;

fn sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Train the next adapter of its lineage on `data` and record it in `db`.
pub fn adapt(
    db: &Db,
    data: &ExportData,
    options: &AdaptOptions,
    progress: &dyn Progress,
    log: &dyn Fn(&StepLog),
) -> Result<AdaptReport, AdaptError> {
    let dir = ModelDir::open(&options.model)?;
    let tokenizer_sha256 = dir.tokenizer_hash()?;
    if tokenizer_sha256 != data.tokenizer_sha256 {
        return Err(AdaptError::TokenizerMismatch {
            export: data.tokenizer_sha256.chars().take(12).collect(),
            model: tokenizer_sha256.chars().take(12).collect(),
            model_dir: options.model.clone(),
        });
    }
    if data.train.is_empty() && data.val.is_empty() {
        return Err(AdaptError::EmptyExport);
    }
    for t in &options.lora.targets {
        if dir.config.shape_of(t).is_none() {
            return Err(AdaptError::Model {
                path: options.model.clone(),
                detail: format!(
                    "unknown target module `{t}` (known: {})",
                    lora::ALL_TARGETS.join(", ")
                ),
            });
        }
    }
    if !lora::VLLM_RANKS.contains(&options.lora.rank) {
        progress.warn(&format!(
            "rank {} is not one vLLM serves ({}); PEFT loads it",
            options.lora.rank,
            lora::VLLM_RANKS
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    progress.phase("hashing the base model", None);
    let lineage = Lineage {
        model_type: dir.config.model_type.clone(),
        base_model_sha256: dir.hash()?,
        tokenizer_sha256,
        targets: options.lora.targets.clone(),
        rank: options.lora.rank,
    };
    progress.done();
    let store = AdapterStore::new(db);
    let parent = if options.from_scratch {
        None
    } else {
        store.latest(&lineage)?
    };
    let after = parent.as_ref().and_then(|p| p.data.watermark);
    let seed = options.train.seed ^ parent.as_ref().map_or(0, |p| p.id);
    // Validation documents of every adapter of this lineage stay out of training.
    let mut held_out = std::collections::HashSet::new();
    for a in store.list()?.iter().filter(|a| a.lineage == lineage) {
        held_out.extend(store.eval_set(a.id)?.into_iter().map(|d| d.id));
    }
    let selection = data::select(data, after, options.replay, seed, &held_out);
    if selection.new_examples == 0 {
        return Ok(AdaptReport::NothingNew {
            parent: parent.map(|p| p.id),
            watermark: after,
        });
    }
    if selection.train.is_empty() {
        return Err(AdaptError::EmptyExport);
    }
    let fingerprint = fingerprint(&lineage, parent.as_ref(), &selection, options);
    std::fs::create_dir_all(&options.work_dir).map_err(|e| AdaptError::Io {
        path: options.work_dir.clone(),
        source: e,
    })?;
    let ck = Checkpoint {
        path: options.work_dir.join(format!(
            "checkpoint-{}.bin",
            &lineage.base_model_sha256[..16]
        )),
        fingerprint,
    };
    if !options.resume && !options.restart {
        if let Some(step) = train::checkpoint_step(&ck) {
            return Err(AdaptError::Unfinished {
                path: ck.path.clone(),
                step,
            });
        }
    }
    if options.resume && !ck.path.exists() {
        return Err(AdaptError::Checkpoint {
            path: ck.path.clone(),
            detail: "there is no checkpoint to resume".into(),
        });
    }

    progress.phase("loading the base model", None);
    let model = Model::load(&dir, &options.device)?;
    let lora = LoraSet::init(&dir.config, &options.lora, seed, &options.device)?;
    if let Some(p) = &parent {
        lora.load_safetensors(&store.weights(p.id)?)?;
    }
    let initial_weights_sha256 = sha256(&lora.to_safetensors()?);
    progress.done();

    let seq = data.seq_len;
    let train_rows = data::rows(&selection.train, seq);
    let val_rows = data::rows(&selection.val, seq);
    // Evaluation sets: the new validation documents, then every ancestor's.
    let mut sets: Vec<(Option<u64>, Vec<Document>)> = vec![(None, selection.val.clone())];
    if let Some(p) = &parent {
        for id in std::iter::once(p.id).chain(store.ancestors(p.id)?) {
            sets.push((Some(id), store.eval_set(id)?));
        }
    }
    progress.phase("evaluating before training", Some(sets.len() as u64));
    let mut evals = Vec::new();
    for (id, docs) in &sets {
        let rows = data::rows(docs, seq);
        let base = train::eval_loss(&model, None, &rows, options.train.batch)?;
        let before = train::eval_loss(&model, Some(&lora), &rows, options.train.batch)?;
        evals.push(EvalRow {
            set: id.unwrap_or(0),
            documents: docs.len(),
            base,
            before,
            after: None,
        });
        progress.advance(1);
    }
    progress.done();

    let trainer = train::Trainer {
        model: &model,
        lora: &lora,
        config: &options.train,
        checkpoint: &ck,
    };
    let outcome = trainer.run(&train_rows, &val_rows, options.resume, progress, log)?;

    progress.phase("evaluating after training", Some(sets.len() as u64));
    for ((_, docs), row) in sets.iter().zip(&mut evals) {
        let rows = data::rows(docs, seq);
        row.after = train::eval_loss(&model, Some(&lora), &rows, options.train.batch)?;
        progress.advance(1);
    }
    progress.done();

    let weights = lora.to_safetensors()?;
    let mut eval_set = Vec::new();
    let mut kept_tokens = 0;
    for d in &selection.val {
        if kept_tokens + d.ids.len() > EVAL_SET_TOKENS {
            break;
        }
        kept_tokens += d.ids.len();
        eval_set.push(d.clone());
    }
    let mut record = AdapterRecord {
        id: 0,
        parent: parent.as_ref().map(|p| p.id),
        created_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64),
        base_model_path: options.model.display().to_string(),
        lineage,
        lora: options.lora.clone(),
        data: DataRecord {
            export_name: data.name.clone(),
            query: data.query.clone(),
            template: data.template.clone(),
            export_dir: data.dir.display().to_string(),
            watermark: selection.watermark,
            new_examples: selection.new_examples,
            replay_examples: selection.replay_examples,
            held_out: selection.held_out,
            train_rows: train_rows.len(),
            val_documents: selection.val.len(),
            seq_len: seq,
        },
        tokens_seen: parent.as_ref().map_or(0, |p| p.tokens_seen) + outcome.tokens,
        train: options.train.clone(),
        outcome,
        initial_weights_sha256,
        weights_sha256: sha256(&weights),
        evals,
    };
    store.insert(&mut record, &weights, &eval_set)?;
    let _ = std::fs::remove_file(&ck.path);
    Ok(AdaptReport::Trained(Box::new(record)))
}

/// What identifies a run, so a checkpoint is only resumed by the same run.
fn fingerprint(
    lineage: &Lineage,
    parent: Option<&AdapterRecord>,
    selection: &data::Selection,
    options: &AdaptOptions,
) -> String {
    let docs: Vec<(usize, i64, usize)> = selection
        .train
        .iter()
        .chain(&selection.val)
        .map(|d| (d.example, d.created_at, d.ids.len()))
        .collect();
    let key = serde_json::json!({
        "lineage": lineage,
        "parent": parent.map(|p| p.id),
        "lora": options.lora,
        "train": options.train,
        "replay": options.replay,
        "docs": docs,
    });
    sha256(key.to_string().as_bytes())
}

/// The loss of adapter `id` (and of the base model) on the validation sets of `sets` (adapter
/// ids), with the base model at `model`, which must be the adapter's (compared by hash).
pub fn evaluate(
    db: &Db,
    model: &std::path::Path,
    id: u64,
    sets: &[u64],
    device: &Device,
    batch: usize,
    progress: &dyn Progress,
) -> Result<Vec<EvalRow>, AdaptError> {
    let store = AdapterStore::new(db);
    let record = store.get(id)?.ok_or(AdaptError::NoAdapter { id })?;
    let dir = ModelDir::open(model)?;
    progress.phase("hashing the base model", None);
    let hash = dir.hash()?;
    progress.done();
    if hash != record.lineage.base_model_sha256 {
        return Err(AdaptError::Model {
            path: model.to_path_buf(),
            detail: format!(
                "it is not the base model adapter {id} was trained on ({})",
                record.base_model_path
            ),
        });
    }
    let base = Model::load(&dir, device)?;
    let lora = LoraSet::init(&dir.config, &record.lora, 0, device)?;
    lora.load_safetensors(&store.weights(id)?)?;
    progress.phase("evaluating", Some(sets.len() as u64));
    let mut rows = Vec::new();
    for &set in sets {
        if store.get(set)?.is_none() {
            return Err(AdaptError::NoAdapter { id: set });
        }
        let docs = store.eval_set(set)?;
        let batches = data::rows(&docs, record.data.seq_len);
        rows.push(EvalRow {
            set,
            documents: docs.len(),
            base: train::eval_loss(&base, None, &batches, batch)?,
            before: None,
            after: train::eval_loss(&base, Some(&lora), &batches, batch)?,
        });
        progress.advance(1);
    }
    progress.done();
    Ok(rows)
}
