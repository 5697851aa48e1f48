//! The index stage: full-text and vector indexes kept inside the lore file, built from the store
//! and brought up to date after every ingest and import.
//!
//! - [`text`]: tantivy BM25 over commits, issues, symbols and files, stored in a redb table
//!   through [`text::RedbDirectory`].
//! - [`embed`]: embedders (the built-in co-occurrence model, candle BERT encoders).
//! - [`vectors`]: vectors per model id and HNSW graphs (hnsw_rs) per model and kind.
//! - [`rank`]: reciprocal rank fusion of rankings.
//! - [`locate`]: bug localization from an issue's text, using only what existed before it.
//!
//! The index reads the store and never writes it, except the `similarity` duplicate links a
//! user accepts (through the store's own write API).

pub mod documents;
pub mod duplicates;
pub mod embed;
pub mod eval;
pub mod locate;
pub mod parts;
pub mod rank;
pub mod text;
pub mod vectors;
pub mod words;

use crate::progress::{join_showing, Progress};
use std::sync::{Arc, OnceLock};

use crate::store::{NodeId, NodeKind, Store, StoreError};
use embed::{CooccurrenceEmbedder, Device, Embedder, EmbedderSpec};
use text::{TextFilter, TextHit, TextIndex, TextUpdate};
use vectors::{VectorIndex, VectorUpdate};

/// Errors of the index stage.
/// Any error a library lore calls can return, kept as the source of an [`IndexError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("full-text index: {0}; if the file is damaged, `lore check` says what is wrong")]
    Text(#[from] tantivy::TantivyError),
    /// Embedding cannot go on (too little text to learn from, no record of the model, a
    /// vector of the wrong size).
    #[error("embedding: {0}")]
    Embed(String),
    /// A model failed to load or run; `what` says which and doing what.
    #[error("embedding: {what}")]
    Model {
        what: String,
        #[source]
        source: BoxError,
    },
    /// A record the index stage wrote cannot be read back.
    #[error("{what} is corrupt; `lore check` says what else is damaged")]
    Corrupt {
        what: String,
        #[source]
        source: BoxError,
    },
    /// The vector graph could not be written or loaded through its temporary files.
    #[error("{what}")]
    Graph {
        what: &'static str,
        #[source]
        source: BoxError,
    },
    /// The active embedder could not be loaded (kept for the session, so it is shared).
    #[error("the active embedder cannot be loaded")]
    EmbedderUnavailable(#[source] Arc<IndexError>),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("database error in the index tables: {0}; if the file is damaged, `lore check` says what is wrong")]
    Db(#[from] redb::Error),
    #[error("{0}")]
    Usage(String),
}

impl IndexError {
    pub fn io(what: &'static str) -> impl Fn(std::io::Error) -> IndexError {
        move |source| IndexError::Io { what, source }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for IndexError {
            fn from(e: $t) -> Self {
                IndexError::Db(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// The built-in embedder is learned again once the file holds this many times the texts it was
/// learned from (its vocabulary would otherwise miss what came later, such as imported issues).
pub const RETRAIN_GROWTH: f64 = 1.1;

/// What [`Indexes::update`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct IndexReport {
    pub text: TextUpdate,
    pub vectors: Option<VectorUpdate>,
    /// Why vectors were not made, when they were not.
    pub vectors_skipped: Option<String>,
    /// Time spent learning the built-in embedder (0 when it was not learned this time).
    pub train_ms: u64,
}

/// What `lore stats` shows of the indexes.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IndexStats {
    pub text_documents: u64,
    pub text_index_bytes: u64,
    /// The embedder queries use.
    pub embedder: Option<String>,
    pub vectors: u64,
}

/// Both indexes of an open lore file.
pub struct Indexes {
    pub text: TextIndex,
    pub vectors: VectorIndex,
    device: Device,
    /// The active embedder, loaded on first use (queries that embed text).
    embedder: OnceLock<Result<Arc<dyn Embedder>, Arc<IndexError>>>,
}

impl Indexes {
    pub fn open(store: &Store) -> Result<Indexes, IndexError> {
        Indexes::open_on(store, Device::Cpu)
    }

    /// Open, running candle embedders on `device`.
    pub fn open_on(store: &Store, device: Device) -> Result<Indexes, IndexError> {
        Ok(Indexes {
            text: TextIndex::open(store)?,
            vectors: VectorIndex::open(store.database())?,
            device,
            embedder: OnceLock::new(),
        })
    }

    /// Bring both indexes up to date with the store. Vectors are made with the active embedder;
    /// the first time, the built-in one is trained on the file's text.
    ///
    /// The documents are read from the store once, for both indexes and the training. When
    /// the built-in embedder has to be learned (again), it learns on a second thread while the
    /// text index is written: the training only reads the documents.
    pub fn update(
        &self,
        store: &Store,
        progress: &dyn Progress,
    ) -> Result<IndexReport, IndexError> {
        let plan = self.plan(store)?;
        let (text, trained) = std::thread::scope(|s| {
            let training = plan.retrain.then(|| s.spawn(|| plan.train()));
            let text = self.text.update_from(&plan.docs, progress);
            let trained =
                training.and_then(|handle| join_showing(handle, "learning word vectors", progress));
            (text, trained)
        });
        self.finish(plan, text?, trained, progress)
    }

    /// The part of an update that only reads the store: the documents the indexes are to hold,
    /// and which embedder makes their vectors. [`IndexPlan::train`] learns the built-in one
    /// when it is due, and [`Indexes::update_planned`] writes both indexes. A caller can learn
    /// while it writes something else; the documents are commits, issues, files and symbols,
    /// so what it writes must leave those alone.
    pub fn plan(&self, store: &Store) -> Result<IndexPlan, IndexError> {
        let docs = {
            let read = store.read()?;
            documents::collect(&read, &text::TEXT_KINDS)?
        };
        let active = match self.vectors.active_model()? {
            Some(model) => {
                let spec = self
                    .vectors
                    .spec(&model)?
                    .ok_or_else(|| missing_embedder(&model))?;
                Some((model, spec))
            }
            None => None,
        };
        // Every document is added, changed or unchanged in the text index: `docs.len()` is the
        // count the text update reports.
        let retrain = match &active {
            Some((_, EmbedderSpec::Cooccurrence(bytes))) => {
                let trained_on = CooccurrenceEmbedder::from_bytes(bytes)?.trained_on();
                docs.len() as f64 >= trained_on as f64 * RETRAIN_GROWTH
            }
            Some((_, EmbedderSpec::Bert { .. })) => false,
            None => true,
        };
        Ok(IndexPlan {
            docs,
            active,
            retrain,
        })
    }

    /// Write what `plan` says: the text index, then the vectors, made with the embedder
    /// `trained` holds (what [`IndexPlan::train`] returned) or else the active one.
    pub fn update_planned(
        &self,
        plan: IndexPlan,
        trained: Option<Trained>,
        progress: &dyn Progress,
    ) -> Result<IndexReport, IndexError> {
        let text = self.text.update_from(&plan.docs, progress)?;
        self.finish(plan, text, trained, progress)
    }

    fn finish(
        &self,
        plan: IndexPlan,
        text: TextUpdate,
        trained: Option<Trained>,
        progress: &dyn Progress,
    ) -> Result<IndexReport, IndexError> {
        let mut train_ms = 0;
        let mut superseded = None;
        let (embedder, spec) = match (plan.active, trained) {
            (active, Some(Trained { embedder, ms })) => {
                train_ms = ms;
                match embedder {
                    Ok(e) => {
                        superseded = active.map(|(model, _)| model);
                        let spec = EmbedderSpec::Cooccurrence(e.to_bytes());
                        (Box::new(e) as Box<dyn Embedder>, spec)
                    }
                    // Too little text for a first embedder: the file has no vectors yet.
                    Err(IndexError::Embed(why)) if active.is_none() => {
                        return Ok(IndexReport {
                            text,
                            vectors: None,
                            vectors_skipped: Some(why),
                            train_ms,
                        })
                    }
                    Err(e) => return Err(e),
                }
            }
            (Some((_, spec)), None) => (spec.load(self.device)?, spec),
            (None, None) => {
                return Err(IndexError::Usage(
                    "the file has no embedder and none was learned for this update".into(),
                ))
            }
        };
        let vectors = self
            .vectors
            .update_from(&plan.docs, embedder.as_ref(), &spec, progress)?;
        if let Some(old) = superseded {
            if old != vectors.model {
                self.vectors.remove_model(&old)?;
            }
        }
        Ok(IndexReport {
            text,
            vectors: Some(vectors),
            vectors_skipped: None,
            train_ms,
        })
    }

    pub fn stats(&self) -> Result<IndexStats, IndexError> {
        let embedder = self.vectors.active_model()?;
        Ok(IndexStats {
            text_documents: self.text.len(),
            text_index_bytes: self.text.stored_bytes()?,
            vectors: match &embedder {
                Some(m) => self.vectors.count(m)?,
                None => 0,
            },
            embedder,
        })
    }

    /// The active embedder, for embedding query text.
    pub fn embedder(&self) -> Result<Arc<dyn Embedder>, IndexError> {
        let got = self.embedder.get_or_init(|| {
            let load = || -> Result<Arc<dyn Embedder>, IndexError> {
                let model = self.vectors.active_model()?.ok_or_else(|| {
                    IndexError::Usage(
                        "this lore file has no vectors yet; run `lore index` (or ingest/import) first"
                            .into(),
                    )
                })?;
                let spec = self
                    .vectors
                    .spec(&model)?
                    .ok_or_else(|| missing_embedder(&model))?;
                Ok(Arc::from(spec.load(self.device)?))
            };
            load().map_err(Arc::new)
        });
        got.clone().map_err(IndexError::EmbedderUnavailable)
    }

    /// Full-text search.
    pub fn search_text(
        &self,
        text: &str,
        filter: &TextFilter,
        limit: usize,
    ) -> Result<Vec<TextHit>, IndexError> {
        self.text.search(text, filter, limit)
    }

    /// The stored vector of a node under the active model.
    pub fn vector_of(&self, node: NodeId) -> Result<Option<Vec<f32>>, IndexError> {
        let Some(model) = self.vectors.active_model()? else {
            return Ok(None);
        };
        let Some(kind) = node.kind() else {
            return Ok(None);
        };
        Ok(self
            .vectors
            .kind(&model, kind)?
            .get(node.0)
            .map(<[f32]>::to_vec))
    }

    /// Embed `text` with the active model.
    pub fn embed_text(&self, text: &str) -> Result<Vec<f32>, IndexError> {
        let e = self.embedder()?;
        Ok(e.embed(&[text])?.pop().unwrap_or_default())
    }

    /// The `k` nodes of `kind` nearest to `query` that `accept` admits.
    pub fn nearest(
        &self,
        kind: NodeKind,
        query: &[f32],
        k: usize,
        accept: &mut dyn FnMut(NodeId) -> bool,
    ) -> Result<Vec<(NodeId, f32)>, IndexError> {
        let Some(model) = self.vectors.active_model()? else {
            return Err(IndexError::Usage(
                "this lore file has no vectors yet; run `lore index` first".into(),
            ));
        };
        let kv = self.vectors.kind(&model, kind)?;
        if !kv.is_empty() && kv.dim() != query.len() {
            return Err(IndexError::Embed(format!(
                "the query vector has {} dimensions but {model}'s have {}",
                query.len(),
                kv.dim()
            )));
        }
        Ok(kv.nearest(query, k, accept))
    }
}

/// Train the built-in embedder on every document of the file.
pub fn train_builtin(
    store: &Store,
    progress: &dyn Progress,
) -> Result<CooccurrenceEmbedder, IndexError> {
    progress.phase("learning word vectors", None);
    let docs = {
        let read = store.read()?;
        documents::collect(&read, &text::TEXT_KINDS)?
    };
    let e = train_on(&docs)?;
    progress.done();
    Ok(e)
}

/// Train the built-in embedder on `docs`.
fn train_on(docs: &[Document]) -> Result<CooccurrenceEmbedder, IndexError> {
    let texts: Vec<String> = docs.iter().map(Document::full_text).collect();
    CooccurrenceEmbedder::train(texts.iter().map(String::as_str), embed::cooccur_options())
}

/// What an index update reads before it writes ([`Indexes::plan`]).
pub struct IndexPlan {
    docs: Vec<Document>,
    /// The active model's name and how to load it.
    active: Option<(String, EmbedderSpec)>,
    /// Whether the built-in embedder is to be learned (again): there is none yet, or the file
    /// has grown [`RETRAIN_GROWTH`] times the texts it learned from.
    retrain: bool,
}

impl IndexPlan {
    /// Learn the built-in embedder when the plan says so (`None` when it does not). Only
    /// computes: call it on any thread.
    pub fn train(&self) -> Option<Trained> {
        self.retrain.then(|| {
            let started = std::time::Instant::now();
            let embedder = train_on(&self.docs);
            Trained {
                embedder,
                ms: started.elapsed().as_millis() as u64,
            }
        })
    }
}

/// A built-in embedder learned for an update, or why it could not be.
pub struct Trained {
    embedder: Result<CooccurrenceEmbedder, IndexError>,
    ms: u64,
}

pub use documents::Document;

/// The active model names an embedder the file has no record of: only damage (or a file
/// edited by hand) does that.
fn missing_embedder(model: &str) -> IndexError {
    IndexError::Corrupt {
        what: format!("the record of the active embedder {model:?}"),
        source: "the embedders table has no entry of that name".into(),
    }
}

/// Copy every index table into a compacted file (see [`crate::store::compact`]).
pub fn copy_tables(
    r: &mut crate::store::compact::Copier<'_>,
) -> Result<(), crate::store::StoreError> {
    r.table(text::directory::TEXT_INDEX_FILES)?;
    r.table(text::directory::TEXT_INDEX_FILE_PARTS)?;
    r.table(text::TEXT_INDEX_DOCS)?;
    r.table(vectors::EMBEDDERS)?;
    r.table(vectors::EMBEDDER_PARTS)?;
    r.table(vectors::INDEX_META)?;
    r.table(vectors::VECTORS)?;
    r.table(vectors::VECTOR_GRAPHS)?;
    r.table(vectors::VECTOR_GRAPH_PARTS)?;
    Ok(())
}
