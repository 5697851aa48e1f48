//! The adapt stage through [`Kb`]: train the next adapter on an export (an existing directory,
//! or one made here from a query), list adapters, write one as a PEFT directory, and make a
//! tiny model from the project's own text.

use std::path::{Path, PathBuf};

use super::Kb;
use crate::adapt::lineage::{AdapterRecord, AdapterStore, EvalRow};
use crate::adapt::tiny::{self, TinyReport, TinyShape};
use crate::adapt::train::StepLog;
use crate::adapt::{self, data, AdaptError, AdaptOptions, AdaptReport};
use crate::export::source::GitSource;
use crate::export::{ExportOptions, Template};
use crate::progress::Progress;
use crate::Result;

/// The most code text a tokenizer is trained on.
const CODE_CORPUS_BYTES: usize = 16 << 20;

/// What an adapt step trains on.
pub enum AdaptData {
    /// A directory `lore export --tokenizer MODEL` wrote.
    Export(PathBuf),
    /// Export the rows of a query through a template first (into the work directory), with
    /// the model's tokenizer.
    Query {
        query: String,
        template: Box<Template>,
        export: Box<ExportOptions>,
    },
}

impl Kb {
    /// Train the next adapter of its lineage (see [`crate::adapt`]) and record it in the file.
    pub fn adapt(
        &self,
        source: AdaptData,
        options: &AdaptOptions,
        progress: &dyn Progress,
        log: &dyn Fn(&StepLog),
    ) -> Result<AdaptReport> {
        let dir = match source {
            AdaptData::Export(dir) => dir,
            AdaptData::Query {
                query,
                template,
                export,
            } => {
                let mut export = *export;
                export.out = options.work_dir.join(format!("export-{}", export.name));
                export.force = true;
                export.tokenizer = Some(options.model.clone());
                export.dry_run = false;
                self.export(&query, &template, &export, false, progress)?;
                export.out
            }
        };
        let data = data::read_export(&dir)?;
        Ok(adapt::adapt(
            &self.store.database(),
            &data,
            options,
            progress,
            log,
        )?)
    }

    /// The loss of adapter `id` on the validation sets of the adapters `sets` (default: its own
    /// and its ancestors'), with its base model at `model`.
    pub fn evaluate_adapter(
        &self,
        id: u64,
        model: &Path,
        sets: Option<&[u64]>,
        device: &candle_core::Device,
        progress: &dyn Progress,
    ) -> Result<Vec<EvalRow>> {
        let db = self.store.database();
        let sets = match sets {
            Some(s) => s.to_vec(),
            None => std::iter::once(id)
                .chain(AdapterStore::new(&db).ancestors(id)?)
                .collect(),
        };
        Ok(adapt::evaluate(&db, model, id, &sets, device, 8, progress)?)
    }

    /// Every adapter in the file, oldest first.
    pub fn adapters(&self) -> Result<Vec<AdapterRecord>> {
        let db = self.store.database();
        Ok(AdapterStore::new(&db).list()?)
    }

    /// Write adapter `id` as a PEFT directory at `out`.
    pub fn export_adapter(&self, id: u64, out: &Path) -> Result<AdapterRecord> {
        let db = self.store.database();
        let store = AdapterStore::new(&db);
        let record = store.get(id)?.ok_or(AdaptError::NoAdapter { id })?;
        adapt::peft::write_peft_dir(
            &record.lora,
            &record.base_model_path,
            &store.weights(id)?,
            Some(&record),
            out,
        )?;
        Ok(record)
    }

    /// The project's own text (issues, pull requests, comments, commit messages and the code at
    /// the head), for training a tokenizer.
    pub fn corpus(&self) -> Result<Vec<String>> {
        let read = self.read()?;
        let mut texts = Vec::new();
        for (_, issue) in read.issues()? {
            texts.push(format!("{}\n{}", issue.title, issue.body));
            texts.extend(issue.comments.iter().map(|c| c.body.clone()));
        }
        for (_, commit) in read.all_commits()? {
            texts.push(commit.message);
        }
        // The code at the head, when the repository is still there (up to 16 MB of it).
        if let Ok(git) = GitSource::of_store(&read) {
            let mut bytes = 0usize;
            for (_, blob) in read.head_files()? {
                let Some(text) = git.text(&read.blob(blob)?.sha) else {
                    continue;
                };
                bytes += text.len();
                if bytes > CODE_CORPUS_BYTES {
                    break;
                }
                texts.push(text);
            }
        }
        Ok(texts)
    }

    /// Write a tiny random-init model with a tokenizer trained on [`Kb::corpus`].
    pub fn init_tiny_model(&self, out: &Path, shape: &TinyShape, seed: u64) -> Result<TinyReport> {
        let texts = self.corpus()?;
        Ok(tiny::init_tiny(&texts, out, shape, seed)?)
    }
}
