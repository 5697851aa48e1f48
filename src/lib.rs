//! lore: one file that knows a software project.
//!
//! The library is a pipeline whose stages are modules, and data flows one way:
//!
//! ```text
//! ingest  ->  store  ->  index  ->  query  ->  export  ->  adapt
//! ```
//!
//! * [`ingest`] reads the outside world — git history, code (tree-sitter symbols), issue and
//!   pull-request dumps — and derives the links between them (closing references, mentions,
//!   SZZ); it writes the store in batches, each batch one transaction.
//! * [`store`] is the single redb file: typed node tables, forward and reverse edge tables whose
//!   edges carry provenance, confidence and evidence, interned strings, watermarks and the schema
//!   version.
//! * [`index`] keeps a full-text index (tantivy) and vectors (HNSW graphs) inside the same file,
//!   updated incrementally, and ranks files for an issue (`locate`).
//! * [`query`] parses, binds, plans and runs the query language.
//! * [`export`] turns the rows of a query into training examples: JSONL, and packed token
//!   shards for a trainer.
//! * [`adapt`] trains LoRA adapters on export's shards, continuing each lineage from its last
//!   adapter, and keeps them, with their lineage and metrics, in the same file.
//!
//! [`kb::Kb`] is the entry point that runs the stages: the command line, the tests and the
//! benchmarks use it. [`progress::Progress`] is how every stage reports long work, and
//! [`code`] holds the code resolution that more than one stage uses.
//!
//! A stage only ever depends on the stages to its left. Each stage has its own
//! `#[non_exhaustive]` error enum that converts into [`Error`].

pub mod adapt;
pub mod allocator;
pub mod code;
pub mod error;
pub mod export;
pub mod index;
pub mod ingest;
pub mod kb;
pub mod progress;
pub mod query;
pub mod serve;
pub mod store;
pub mod sync;
pub mod watch;

pub use error::{Error, Result};
