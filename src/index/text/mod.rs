//! Full-text search: a tantivy index kept inside the lore file ([`RedbDirectory`]), BM25 over
//! each node's title and body with code-aware tokens ([`crate::index::words`]).
//!
//! The index is brought up to date by [`TextIndex::update`] after ingest and import: each node's
//! text has a fingerprint in the `text_index_docs` table, so only new or changed nodes are
//! written, and nodes that left (symbols no longer at the head) are deleted. Opening a file never
//! rebuilds the index. The fingerprints are written after tantivy's commit; a crash between the
//! two only makes the next update re-write the same documents, which replaces them.

pub mod directory;
mod tokenizer;

use crate::progress::Progress;
use std::collections::HashMap;
use std::ops::Bound;

use redb::{ReadableTable, TableDefinition};
use tantivy::collector::TopDocs;
use tantivy::directory::Directory;
use tantivy::query::{BooleanQuery, BoostQuery, Occur, Query, RangeQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{Language, RemoveLongFilter, Stemmer, TextAnalyzer};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

pub use directory::RedbDirectory;
pub use tokenizer::CodeTokenizer;

use super::documents::{self, Document};
use super::IndexError;
use crate::store::{Db, NodeId, NodeKind, Store};

/// node id -> fingerprint of the text indexed for it
pub const TEXT_INDEX_DOCS: TableDefinition<u64, u64> = TableDefinition::new("text_index_docs");

/// The kinds the full-text index holds.
pub const TEXT_KINDS: [NodeKind; 4] = [
    NodeKind::Commit,
    NodeKind::Issue,
    NodeKind::Symbol,
    NodeKind::File,
];

/// The name the analyzer is registered under in the index schema.
pub const ANALYZER: &str = "lore_code";
const TITLE_BOOST: f32 = 2.0;

#[derive(Clone, Copy)]
struct Fields {
    node: Field,
    kind: Field,
    time: Field,
    title: Field,
    body: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let numeric = NumericOptions::default().set_indexed().set_fast();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(ANALYZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let fields = Fields {
        node: b.add_u64_field("node", numeric.clone()),
        kind: b.add_u64_field("kind", numeric.clone()),
        time: b.add_i64_field("time", numeric),
        title: b.add_text_field("title", text.clone()),
        body: b.add_text_field("body", text),
    };
    (b.build(), fields)
}

/// The analyzer for indexing and for queries: code-aware words, long tokens dropped, English
/// stemming.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(CodeTokenizer)
        .filter(RemoveLongFilter::limit(64))
        .filter(Stemmer::new(Language::English))
        .build()
}

/// One full-text hit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextHit {
    pub node: NodeId,
    pub score: f32,
}

/// What a search asks for besides the text.
#[derive(Debug, Clone, Default)]
pub struct TextFilter {
    /// Only these kinds (all when empty).
    pub kinds: Vec<NodeKind>,
    /// Only nodes that came to be strictly before this time (Unix seconds).
    pub before: Option<i64>,
}

/// What [`TextIndex::update`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TextUpdate {
    pub added: u64,
    pub changed: u64,
    pub removed: u64,
    pub unchanged: u64,
    pub elapsed_ms: u64,
}

/// The full-text index of a lore file.
pub struct TextIndex {
    db: Db,
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl TextIndex {
    /// Open the index stored in `store`'s file, creating an empty one the first time.
    pub fn open(store: &Store) -> Result<TextIndex, IndexError> {
        let db = store.database();
        let dir =
            RedbDirectory::open(db.clone()).map_err(IndexError::io("opening the text index"))?;
        TextIndex::open_in(db, dir)
    }

    /// Open over any tantivy directory (the shared test suite runs this over a RAM directory too).
    /// On a read-only handle, a file no writer has indexed yet gets an empty index in memory.
    pub fn open_in<D: tantivy::Directory>(db: Db, dir: D) -> Result<TextIndex, IndexError> {
        let (schema, fields) = schema();
        let index =
            if db.is_read_only() && !Index::exists(&dir).map_err(tantivy::TantivyError::from)? {
                Index::create_in_ram(schema)
            } else {
                Index::open_or_create(dir, schema)?
            };
        index.tokenizers().register(ANALYZER, analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        if !db.is_read_only() {
            let txn = db.begin_write()?;
            txn.open_table(TEXT_INDEX_DOCS)?;
            txn.commit()?;
        }
        Ok(TextIndex {
            db,
            index,
            reader,
            fields,
        })
    }

    /// How many documents the index holds.
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many documents the index's own records say it holds (`text_index_docs`); more than
    /// [`TextIndex::len`] finds only when the file is damaged or an update was cut short.
    pub fn recorded(&self) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        match txn.open_table(TEXT_INDEX_DOCS) {
            Err(e) if crate::store::table_missing(&e) => Ok(0),
            t => Ok(redb::ReadableTableMetadata::len(&t?)?),
        }
    }

    /// Bring the index up to date with the store.
    pub fn update(&self, store: &Store, progress: &dyn Progress) -> Result<TextUpdate, IndexError> {
        let docs = {
            let read = store.read()?;
            documents::collect(&read, &TEXT_KINDS)?
        };
        self.update_from(&docs, progress)
    }

    /// Bring the index up to date with `docs`: every document of [`TEXT_KINDS`] the store
    /// holds, as [`documents::collect`] returns them. Documents the index has and `docs` lacks
    /// are removed.
    pub fn update_from(
        &self,
        docs: &[Document],
        progress: &dyn Progress,
    ) -> Result<TextUpdate, IndexError> {
        let started = std::time::Instant::now();
        let known = self.fingerprints()?;
        let mut report = TextUpdate::default();
        let mut new_prints: Vec<(u64, u64)> = Vec::new();
        let mut present = std::collections::HashSet::with_capacity(docs.len());
        let mut writer: Option<IndexWriter<TantivyDocument>> = None;
        progress.phase("text index", Some(docs.len() as u64));
        for doc in docs {
            progress.advance(1);
            present.insert(doc.node.0);
            let print = doc.fingerprint();
            match known.get(&doc.node.0) {
                Some(&p) if p == print => {
                    report.unchanged += 1;
                    continue;
                }
                Some(_) => report.changed += 1,
                None => report.added += 1,
            }
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(self.writer()?),
            };
            w.delete_term(Term::from_field_u64(self.fields.node, doc.node.0));
            w.add_document(self.tantivy_doc(doc))?;
            new_prints.push((doc.node.0, print));
        }
        let gone: Vec<u64> = known
            .keys()
            .filter(|k| !present.contains(k))
            .copied()
            .collect();
        for &node in &gone {
            let w = match &mut writer {
                Some(w) => w,
                None => writer.insert(self.writer()?),
            };
            w.delete_term(Term::from_field_u64(self.fields.node, node));
        }
        report.removed = gone.len() as u64;
        progress.done();
        if let Some(mut w) = writer {
            w.commit()?;
            w.wait_merging_threads()?;
            let txn = self.db.begin_write()?;
            {
                let mut table = txn.open_table(TEXT_INDEX_DOCS)?;
                for (node, print) in new_prints {
                    table.insert(node, print)?;
                }
                for node in gone {
                    table.remove(node)?;
                }
            }
            txn.commit()?;
            self.reader.reload()?;
        }
        report.elapsed_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    fn writer(&self) -> Result<IndexWriter<TantivyDocument>, IndexError> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .clamp(1, 4);
        Ok(self
            .index
            .writer_with_num_threads(threads, (48 << 20) * threads)?)
    }

    fn fingerprints(&self) -> Result<HashMap<u64, u64>, IndexError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(TEXT_INDEX_DOCS)?;
        let mut out = HashMap::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.insert(k.value(), v.value());
        }
        Ok(out)
    }

    fn tantivy_doc(&self, doc: &Document) -> TantivyDocument {
        let mut d = TantivyDocument::default();
        let kind = doc.node.kind().map_or(0, |k| k as u64);
        d.add_u64(self.fields.node, doc.node.0);
        d.add_u64(self.fields.kind, kind);
        d.add_i64(self.fields.time, doc.time);
        d.add_text(self.fields.title, &doc.title);
        d.add_text(self.fields.body, &doc.body);
        d
    }

    /// The tantivy query for `text`: every distinct token, in title (boosted) or body.
    pub fn query(&self, text: &str, filter: &TextFilter) -> Box<dyn Query> {
        let mut analyzer = analyzer();
        let mut terms: Vec<String> = Vec::new();
        let mut stream = analyzer.token_stream(text);
        while let Some(token) = stream.next() {
            if !terms.contains(&token.text) {
                terms.push(token.text.clone());
            }
        }
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for t in &terms {
            let title = TermQuery::new(
                Term::from_field_text(self.fields.title, t),
                IndexRecordOption::WithFreqs,
            );
            let body = TermQuery::new(
                Term::from_field_text(self.fields.body, t),
                IndexRecordOption::WithFreqs,
            );
            should.push((
                Occur::Should,
                Box::new(BoostQuery::new(Box::new(title), TITLE_BOOST)),
            ));
            should.push((Occur::Should, Box::new(body)));
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> =
            vec![(Occur::Must, Box::new(BooleanQuery::new(should)))];
        if !filter.kinds.is_empty() {
            let kinds: Vec<(Occur, Box<dyn Query>)> = filter
                .kinds
                .iter()
                .map(|k| {
                    let q: Box<dyn Query> = Box::new(TermQuery::new(
                        Term::from_field_u64(self.fields.kind, *k as u64),
                        IndexRecordOption::Basic,
                    ));
                    (Occur::Should, q)
                })
                .collect();
            clauses.push((Occur::Must, filter_only(Box::new(BooleanQuery::new(kinds)))));
        }
        if let Some(before) = filter.before {
            clauses.push((
                Occur::Must,
                filter_only(Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Excluded(Term::from_field_i64(self.fields.time, before)),
                ))),
            ));
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// The best `limit` nodes for `text`, best first.
    pub fn search(
        &self,
        text: &str,
        filter: &TextFilter,
        limit: usize,
    ) -> Result<Vec<TextHit>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let searcher = self.reader.searcher();
        let query = self.query(text, filter);
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        let mut columns = HashMap::new();
        let mut out = Vec::with_capacity(top.len());
        for (score, addr) in top {
            let column = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(e) => e.insert(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("node")?,
                ),
            };
            if let Some(node) = column.first(addr.doc_id) {
                out.push(TextHit {
                    node: NodeId(node),
                    score,
                });
            }
        }
        Ok(out)
    }

    /// Bytes the index takes in the file.
    pub fn stored_bytes(&self) -> Result<u64, IndexError> {
        RedbDirectory::open(self.db.clone())
            .and_then(|d| d.stored_bytes())
            .map_err(IndexError::io("measuring the text index"))
    }

    /// Write the index's files into `dir`, a plain tantivy index directory.
    pub fn export(&self, dir: &std::path::Path) -> Result<(), IndexError> {
        let source = RedbDirectory::open(self.db.clone())
            .map_err(IndexError::io("opening the text index"))?;
        for name in source
            .file_names()
            .map_err(IndexError::io("listing the text index"))?
        {
            let bytes = source
                .atomic_read(std::path::Path::new(&name))
                .map_err(|e| IndexError::Io {
                    what: "reading the text index",
                    source: std::io::Error::other(e),
                })?;
            std::fs::write(dir.join(&name), bytes)
                .map_err(IndexError::io("exporting the text index"))?;
        }
        Ok(())
    }
}

/// A clause that must match but adds nothing to the score.
fn filter_only(q: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(BoostQuery::new(q, 0.0))
}
