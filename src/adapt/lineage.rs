//! Adapters in the lore file: each with its lineage (base model, tokenizer, LoRA shape), its
//! parent, the query and data watermark that trained it, its hyperparameters and its metrics;
//! its weights; and its validation documents, so later adapters can measure forgetting on them.
//!
//! Three tables the adapt stage owns: `adapters` (id → JSON record), `adapter_weights`
//! (id → safetensors with PEFT's keys) and `adapter_eval_sets` (id → postcard documents).

use redb::{ReadableTable, TableDefinition, TableHandle};

use crate::store::Db;
use serde::{Deserialize, Serialize};

use super::data::Document;
use super::lora::LoraConfig;
use super::train::{TrainConfig, TrainOutcome};
use super::AdaptError;

pub const ADAPTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("adapters");
pub const ADAPTER_WEIGHTS: TableDefinition<u64, &[u8]> = TableDefinition::new("adapter_weights");
pub const ADAPTER_EVAL_SETS: TableDefinition<u64, &[u8]> =
    TableDefinition::new("adapter_eval_sets");

/// Copy the adapter tables into a compacted file (see [`crate::store::compact`]).
pub fn copy_tables(
    r: &mut crate::store::compact::Copier<'_>,
) -> Result<(), crate::store::StoreError> {
    r.table(ADAPTERS)?;
    r.table(ADAPTER_WEIGHTS)?;
    r.table(ADAPTER_EVAL_SETS)?;
    Ok(())
}

/// What makes adapters continuations of each other: the same base model, tokenizer and LoRA
/// shape (target modules and rank).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lineage {
    pub model_type: String,
    /// sha256 of the base model's config.json and weight files.
    pub base_model_sha256: String,
    pub tokenizer_sha256: String,
    pub targets: Vec<String>,
    pub rank: usize,
}

/// The data one adapter was trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DataRecord {
    pub export_name: String,
    pub query: String,
    pub template: String,
    pub export_dir: String,
    /// The newest example input time this adapter (and its ancestors) has seen.
    pub watermark: Option<i64>,
    pub new_examples: usize,
    pub replay_examples: usize,
    /// Training documents left out because an adapter of the lineage validates on them.
    #[serde(default)]
    pub held_out: usize,
    pub train_rows: usize,
    pub val_documents: usize,
    pub seq_len: usize,
}

/// Validation loss on one evaluation set (an adapter's held-out documents).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EvalRow {
    /// The adapter whose validation set this is.
    pub set: u64,
    pub documents: usize,
    pub base: Option<f64>,
    /// With the parent adapter (the weights training started from).
    pub before: Option<f64>,
    pub after: Option<f64>,
}

/// One adapter, as recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterRecord {
    pub id: u64,
    pub parent: Option<u64>,
    /// Unix seconds.
    pub created_at: i64,
    /// The base model directory as given (the hash is what identifies it).
    pub base_model_path: String,
    pub lineage: Lineage,
    pub lora: LoraConfig,
    pub data: DataRecord,
    /// Tokens trained on by this adapter and its ancestors.
    pub tokens_seen: u64,
    pub train: TrainConfig,
    pub outcome: TrainOutcome,
    /// sha256 of the weights training started from (the parent's, or a fresh init).
    pub initial_weights_sha256: String,
    pub weights_sha256: String,
    pub evals: Vec<EvalRow>,
}

/// The adapters of a lore file.
pub struct AdapterStore<'a> {
    db: &'a Db,
}

fn corrupt(detail: String) -> AdaptError {
    AdaptError::Store(crate::store::StoreError::Corrupt {
        what: "adapter",
        detail,
    })
}

impl<'a> AdapterStore<'a> {
    pub fn new(db: &'a Db) -> AdapterStore<'a> {
        AdapterStore { db }
    }

    /// Every adapter, oldest first.
    pub fn list(&self) -> Result<Vec<AdapterRecord>, AdaptError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let table = match txn.open_table(ADAPTERS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(redb::Error::from(e).into()),
        };
        let mut out = Vec::new();
        for entry in table.iter().map_err(redb::Error::from)? {
            let (_, v) = entry.map_err(redb::Error::from)?;
            out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt(e.to_string()))?);
        }
        Ok(out)
    }

    pub fn get(&self, id: u64) -> Result<Option<AdapterRecord>, AdaptError> {
        Ok(self.list()?.into_iter().find(|a| a.id == id))
    }

    /// The newest adapter of a lineage.
    pub fn latest(&self, lineage: &Lineage) -> Result<Option<AdapterRecord>, AdaptError> {
        Ok(self
            .list()?
            .into_iter()
            .filter(|a| &a.lineage == lineage)
            .max_by_key(|a| a.id))
    }

    fn blob(&self, table: TableDefinition<u64, &[u8]>, id: u64) -> Result<Vec<u8>, AdaptError> {
        let txn = self.db.begin_read().map_err(redb::Error::from)?;
        let t = txn.open_table(table).map_err(redb::Error::from)?;
        let v = t.get(id).map_err(redb::Error::from)?;
        v.map(|v| v.value().to_vec())
            .ok_or_else(|| corrupt(format!("adapter {id} has no {}", table.name())))
    }

    /// The adapter's weights (safetensors, PEFT keys, f32).
    pub fn weights(&self, id: u64) -> Result<Vec<u8>, AdaptError> {
        self.blob(ADAPTER_WEIGHTS, id)
    }

    /// The adapter's validation documents.
    pub fn eval_set(&self, id: u64) -> Result<Vec<Document>, AdaptError> {
        let bytes = self.blob(ADAPTER_EVAL_SETS, id)?;
        postcard::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))
    }

    /// The ids of an adapter's ancestors, nearest first.
    pub fn ancestors(&self, id: u64) -> Result<Vec<u64>, AdaptError> {
        let all = self.list()?;
        let mut out = Vec::new();
        let mut at = all.iter().find(|a| a.id == id).and_then(|a| a.parent);
        while let Some(p) = at {
            out.push(p);
            at = all.iter().find(|a| a.id == p).and_then(|a| a.parent);
        }
        Ok(out)
    }

    /// Record a new adapter, its weights and its evaluation set in one transaction; the record's
    /// id is assigned here.
    pub fn insert(
        &self,
        record: &mut AdapterRecord,
        weights: &[u8],
        eval_set: &[Document],
    ) -> Result<u64, AdaptError> {
        let txn = self.db.begin_write_for("recording an adapter")?;
        {
            let mut table = txn.open_table(ADAPTERS).map_err(redb::Error::from)?;
            let next = table
                .last()
                .map_err(redb::Error::from)?
                .map_or(1, |(k, _)| k.value() + 1);
            record.id = next;
            // Set 0 is the new adapter's own validation set.
            for row in &mut record.evals {
                if row.set == 0 {
                    row.set = next;
                }
            }
            let json = serde_json::to_vec(record).expect("an adapter record serializes");
            table
                .insert(next, json.as_slice())
                .map_err(redb::Error::from)?;
            let mut w = txn.open_table(ADAPTER_WEIGHTS).map_err(redb::Error::from)?;
            w.insert(next, weights).map_err(redb::Error::from)?;
            let set = postcard::to_allocvec(eval_set).map_err(|e| corrupt(e.to_string()))?;
            let mut e = txn
                .open_table(ADAPTER_EVAL_SETS)
                .map_err(redb::Error::from)?;
            e.insert(next, set.as_slice()).map_err(redb::Error::from)?;
        }
        txn.commit().map_err(redb::Error::from)?;
        Ok(record.id)
    }
}
