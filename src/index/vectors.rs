//! Vectors of issues, commits and symbols, kept in the lore file under the model id of the
//! embedder that made them, with one HNSW graph (hnsw_rs) per model and kind.
//!
//! - `vectors[(model, node)]` = fingerprint of the embedded text (u64 LE) + the f32 components;
//! - `vector_graphs[(model, kind)]` = the hnsw_rs dump of the graph, and which nodes it holds
//!   with the fingerprint each was inserted with.
//!
//! Updates embed only new or changed text and insert those vectors into the stored graph; a
//! changed node's old point stays in the graph, is dropped from results (every candidate is
//! re-scored against its current vector), and the graph is rebuilt once a fifth of it is stale.
//! Opening a file loads the graphs as they are; it never rebuilds one.
//!
//! Searches ask the graph for more neighbours than wanted, keep those that pass the caller's
//! filter and widen the search until enough pass; when the graph cannot give enough, an exact
//! scan finishes the job. So a filter never makes a search return fewer results than exist.

use crate::progress::Progress;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use hnsw_rs::prelude::{AnnT, DistCosine, Hnsw, HnswIo};
use redb::{ReadableTable, TableDefinition};

use crate::store::{table_missing, Db};
use serde::{Deserialize, Serialize};

use super::documents::{self, Document};
use super::embed::{cosine, Embedder, EmbedderSpec};
use super::IndexError;
use crate::store::{NodeId, NodeKind, Store};

pub const EMBEDDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("embedders");
pub const INDEX_META: TableDefinition<&str, &[u8]> = TableDefinition::new("index_meta");
pub const VECTORS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("vectors");
pub const VECTOR_GRAPHS: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("vector_graphs");

/// `index_meta` key naming the embedder whose vectors queries use.
pub const ACTIVE_EMBEDDER: &str = "embedder";

/// The kinds that get vectors.
pub const VECTOR_KINDS: [NodeKind; 3] = [NodeKind::Issue, NodeKind::Commit, NodeKind::Symbol];

const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 100;
const MAX_LAYERS: usize = 16;
/// Below this many vectors a search is an exact scan.
const EXACT_BELOW: usize = 2_000;
/// Rebuild a graph when this share of its points is stale.
const STALE_SHARE: f64 = 0.2;

#[derive(Serialize, Deserialize, Default)]
struct GraphRecord {
    graph: Vec<u8>,
    data: Vec<u8>,
    /// (node, fingerprint) of every point inserted and still current.
    inserted: Vec<(u64, u64)>,
    /// Points whose node changed or left since they were inserted.
    stale: u64,
}

/// What [`VectorIndex::update`] did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct VectorUpdate {
    pub model: String,
    pub embedded: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub graphs_rebuilt: u64,
    /// Time spent embedding, and updating and storing the graphs.
    pub embed_ms: u64,
    pub graph_ms: u64,
}

type Graph = Hnsw<'static, f32, DistCosine>;

/// The vectors of one kind under one model, loaded for searching.
pub struct KindVectors {
    pub vectors: HashMap<u64, Vec<f32>>,
    graph: Option<Graph>,
}

/// The vector side of a lore file.
pub struct VectorIndex {
    db: Db,
    loaded: Mutex<HashMap<(String, NodeKind), Arc<KindVectors>>>,
}

fn kind_range(kind: NodeKind) -> (u64, u64) {
    (NodeId::new(kind, 0).0, NodeId::new(kind, (1 << 56) - 1).0)
}

fn encode_vector(print: u64, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + v.len() * 4);
    out.extend_from_slice(&print.to_le_bytes());
    for x in v {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out
}

fn decode_vector(bytes: &[u8]) -> (u64, Vec<f32>) {
    let print = u64::from_le_bytes(bytes[..8].try_into().unwrap_or_default());
    let v = bytes[8..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    (print, v)
}

fn is_zero(v: &[f32]) -> bool {
    v.iter().all(|x| *x == 0.0)
}

impl VectorIndex {
    /// Open the vector tables, creating them on a writable handle. On a read-only one, a file
    /// no writer has indexed yet reads as one without vectors.
    pub fn open(db: Db) -> Result<VectorIndex, IndexError> {
        if !db.is_read_only() {
            let txn = db.begin_write()?;
            txn.open_table(EMBEDDERS)?;
            txn.open_table(INDEX_META)?;
            txn.open_table(VECTORS)?;
            txn.open_table(VECTOR_GRAPHS)?;
            txn.commit()?;
        }
        Ok(VectorIndex {
            db,
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The model id queries use, if any vectors were made.
    pub fn active_model(&self) -> Result<Option<String>, IndexError> {
        let txn = self.db.begin_read()?;
        let meta = match txn.open_table(INDEX_META) {
            Err(e) if table_missing(&e) => return Ok(None),
            t => t?,
        };
        Ok(meta
            .get(ACTIVE_EMBEDDER)?
            .map(|v| String::from_utf8_lossy(v.value()).into_owned()))
    }

    /// How to rebuild the embedder of `model`.
    pub fn spec(&self, model: &str) -> Result<Option<EmbedderSpec>, IndexError> {
        let txn = self.db.begin_read()?;
        let t = txn.open_table(EMBEDDERS)?;
        match t.get(model)? {
            Some(v) => Ok(Some(postcard::from_bytes(v.value()).map_err(|e| {
                IndexError::Corrupt {
                    what: format!("stored embedder {model}"),
                    source: e.into(),
                }
            })?)),
            None => Ok(None),
        }
    }

    /// Number of vectors stored under `model`.
    pub fn count(&self, model: &str) -> Result<u64, IndexError> {
        let txn = self.db.begin_read()?;
        let t = match txn.open_table(VECTORS) {
            Err(e) if table_missing(&e) => return Ok(0),
            t => t?,
        };
        let mut n = 0;
        for row in t.range((model, 0u64)..=(model, u64::MAX))? {
            row?;
            n += 1;
        }
        Ok(n)
    }

    /// Embed what is new or changed with `embedder`, record it under its model id (with `spec`
    /// to rebuild it), update the graphs, and make it the model queries use.
    pub fn update(
        &self,
        store: &Store,
        embedder: &dyn Embedder,
        spec: &EmbedderSpec,
        progress: &dyn Progress,
    ) -> Result<VectorUpdate, IndexError> {
        let model = embedder.model_id().to_string();
        let docs: Vec<Document> = {
            let read = store.read()?;
            documents::collect(&read, &VECTOR_KINDS)?
        };
        let mut known: HashMap<u64, u64> = HashMap::new();
        {
            let txn = self.db.begin_read()?;
            let t = txn.open_table(VECTORS)?;
            for row in t.range((model.as_str(), 0u64)..=(model.as_str(), u64::MAX))? {
                let (k, v) = row?;
                let bytes = v.value();
                if bytes.len() >= 8 {
                    known.insert(k.value().1, decode_vector(bytes).0);
                }
            }
        }
        let mut report = VectorUpdate {
            model: model.clone(),
            ..VectorUpdate::default()
        };
        let present: HashSet<u64> = docs.iter().map(|d| d.node.0).collect();
        let mut todo: Vec<&Document> = docs
            .iter()
            .filter(|d| known.get(&d.node.0) != Some(&d.fingerprint()))
            .collect();
        // Texts of similar length share a batch, so a model pads less.
        todo.sort_by_key(|d| (d.title.len() + d.body.len(), d.node));
        report.unchanged = (docs.len() - todo.len()) as u64;
        let removed: Vec<u64> = known
            .keys()
            .filter(|k| !present.contains(k))
            .copied()
            .collect();
        report.removed = removed.len() as u64;

        let spec_bytes = postcard::to_allocvec(spec).expect("in-memory encoding cannot fail");
        let started = std::time::Instant::now();
        progress.phase("embedding", Some(todo.len() as u64));
        for batch in todo.chunks(embedder.batch_size().max(1) * 8) {
            let texts: Vec<String> = batch.iter().map(|d| d.full_text()).collect();
            let mut vectors = Vec::with_capacity(texts.len());
            for chunk in texts.chunks(embedder.batch_size().max(1)) {
                let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                vectors.extend(embedder.embed(&refs)?);
            }
            let txn = self.db.begin_write()?;
            {
                let mut t = txn.open_table(VECTORS)?;
                for (d, v) in batch.iter().zip(&vectors) {
                    t.insert(
                        (model.as_str(), d.node.0),
                        encode_vector(d.fingerprint(), v).as_slice(),
                    )?;
                }
            }
            txn.commit()?;
            report.embedded += batch.len() as u64;
            progress.advance(batch.len() as u64);
        }
        progress.done();

        report.embed_ms = started.elapsed().as_millis() as u64;
        let started = std::time::Instant::now();
        // Graphs, then the removals and the active model, durably.
        let txn = self.db.begin_write()?;
        {
            let mut vt = txn.open_table(VECTORS)?;
            for node in &removed {
                vt.remove((model.as_str(), *node))?;
            }
            let mut gt = txn.open_table(VECTOR_GRAPHS)?;
            for kind in VECTOR_KINDS {
                let (lo, hi) = kind_range(kind);
                let mut current: Vec<(u64, u64, Vec<f32>)> = Vec::new();
                for row in vt.range((model.as_str(), lo)..=(model.as_str(), hi))? {
                    let (k, v) = row?;
                    let (print, vec) = decode_vector(v.value());
                    if !is_zero(&vec) {
                        current.push((k.value().1, print, vec));
                    }
                }
                let old: GraphRecord = match gt.get((model.as_str(), kind as u8))? {
                    Some(v) => postcard::from_bytes(v.value()).unwrap_or_default(),
                    None => GraphRecord::default(),
                };
                let (record, rebuilt) = update_graph(old, &current)?;
                report.graphs_rebuilt += u64::from(rebuilt);
                let bytes = postcard::to_allocvec(&record).expect("in-memory encoding cannot fail");
                gt.insert((model.as_str(), kind as u8), bytes.as_slice())?;
            }
            txn.open_table(EMBEDDERS)?
                .insert(model.as_str(), spec_bytes.as_slice())?;
            txn.open_table(INDEX_META)?
                .insert(ACTIVE_EMBEDDER, model.as_bytes())?;
        }
        txn.commit()?;
        report.graph_ms = started.elapsed().as_millis() as u64;
        self.loaded.lock().unwrap().retain(|(m, _), _| m != &model);
        Ok(report)
    }

    /// Delete every vector, graph and record of `model` (a superseded built-in embedder).
    pub fn remove_model(&self, model: &str) -> Result<(), IndexError> {
        let txn = self.db.begin_write()?;
        {
            let mut vt = txn.open_table(VECTORS)?;
            vt.retain_in((model, 0u64)..=(model, u64::MAX), |_, _| false)?;
            let mut gt = txn.open_table(VECTOR_GRAPHS)?;
            for kind in VECTOR_KINDS {
                gt.remove((model, kind as u8))?;
            }
            txn.open_table(EMBEDDERS)?.remove(model)?;
        }
        txn.commit()?;
        self.loaded.lock().unwrap().retain(|(m, _), _| m != model);
        Ok(())
    }

    /// The vectors and graph of `kind` under `model`, loaded once per process.
    pub fn kind(&self, model: &str, kind: NodeKind) -> Result<Arc<KindVectors>, IndexError> {
        if let Some(k) = self.loaded.lock().unwrap().get(&(model.to_string(), kind)) {
            return Ok(k.clone());
        }
        let txn = self.db.begin_read()?;
        let vt = txn.open_table(VECTORS)?;
        let (lo, hi) = kind_range(kind);
        let mut vectors = HashMap::new();
        for row in vt.range((model, lo)..=(model, hi))? {
            let (k, v) = row?;
            let (_, vec) = decode_vector(v.value());
            if !is_zero(&vec) {
                vectors.insert(k.value().1, vec);
            }
        }
        let gt = txn.open_table(VECTOR_GRAPHS)?;
        let graph = match gt.get((model, kind as u8))? {
            Some(v) if vectors.len() >= EXACT_BELOW => {
                let record: GraphRecord =
                    postcard::from_bytes(v.value()).map_err(|e| IndexError::Corrupt {
                        what: "stored graph".into(),
                        source: e.into(),
                    })?;
                load_graph(&record)?
            }
            _ => None,
        };
        let loaded = Arc::new(KindVectors { vectors, graph });
        self.loaded
            .lock()
            .unwrap()
            .insert((model.to_string(), kind), loaded.clone());
        Ok(loaded)
    }
}

impl KindVectors {
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Dimensions of the vectors (0 when there are none).
    pub fn dim(&self) -> usize {
        self.vectors.values().next().map_or(0, Vec::len)
    }

    /// The `k` nearest nodes to `query` that `accept` admits, nearest first, with cosine
    /// similarity.
    pub fn nearest(
        &self,
        query: &[f32],
        k: usize,
        accept: &mut dyn FnMut(NodeId) -> bool,
    ) -> Vec<(NodeId, f32)> {
        if k == 0 || is_zero(query) {
            return Vec::new();
        }
        let Some(graph) = &self.graph else {
            return self.exact(query, k, accept);
        };
        let mut fetch = (k * 4).max(40);
        loop {
            let ef = fetch.max(64);
            let found = graph.search(query, fetch, ef);
            let mut seen = HashSet::new();
            let mut out = Vec::new();
            for n in &found {
                let node = n.d_id as u64;
                if !seen.insert(node) {
                    continue;
                }
                let Some(v) = self.vectors.get(&node) else {
                    continue;
                };
                if accept(NodeId(node)) {
                    out.push((NodeId(node), cosine(query, v)));
                }
            }
            out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            if out.len() >= k {
                out.truncate(k);
                return out;
            }
            if found.len() < fetch || fetch >= self.vectors.len() {
                // The graph has nothing more to give: finish exactly.
                return self.exact(query, k, accept);
            }
            fetch *= 4;
        }
    }

    /// The exact `k` nearest by a scan of every vector.
    pub fn exact(
        &self,
        query: &[f32],
        k: usize,
        accept: &mut dyn FnMut(NodeId) -> bool,
    ) -> Vec<(NodeId, f32)> {
        let mut scored: Vec<(NodeId, f32)> = self
            .vectors
            .iter()
            .map(|(n, v)| (NodeId(*n), cosine(query, v)))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut out = Vec::with_capacity(k);
        for (n, s) in scored {
            if out.len() == k {
                break;
            }
            if accept(n) {
                out.push((n, s));
            }
        }
        out
    }

    /// Whether searches go through the graph (false: exact scans).
    pub fn has_graph(&self) -> bool {
        self.graph.is_some()
    }
}

fn new_graph(capacity: usize) -> Graph {
    Hnsw::new(
        MAX_CONNECTIONS,
        capacity.max(16),
        MAX_LAYERS,
        EF_CONSTRUCTION,
        DistCosine,
    )
}

/// Bring a stored graph up to `current` (node, fingerprint, vector), rebuilding it when too
/// much of it is stale. Returns the new record and whether it was rebuilt.
fn update_graph(
    old: GraphRecord,
    current: &[(u64, u64, Vec<f32>)],
) -> Result<(GraphRecord, bool), IndexError> {
    let inserted: HashMap<u64, u64> = old.inserted.iter().copied().collect();
    let now: HashMap<u64, u64> = current.iter().map(|(n, p, _)| (*n, *p)).collect();
    let to_insert: Vec<&(u64, u64, Vec<f32>)> = current
        .iter()
        .filter(|(n, p, _)| inserted.get(n) != Some(p))
        .collect();
    let newly_stale = inserted
        .iter()
        .filter(|(n, p)| now.get(n) != Some(p))
        .count() as u64;
    if to_insert.is_empty() && newly_stale == 0 && !old.graph.is_empty() {
        return Ok((old, false));
    }
    let stale = old.stale + newly_stale;
    let graph_points = old.inserted.len() as u64 + old.stale;
    let rebuild = old.graph.is_empty()
        || (stale as f64) > STALE_SHARE * (graph_points + to_insert.len() as u64).max(1) as f64;
    let (graph, record_stale, points) = if rebuild {
        let g = new_graph(current.len());
        let batch: Vec<(&[f32], usize)> = current
            .iter()
            .map(|(n, _, v)| (v.as_slice(), *n as usize))
            .collect();
        g.parallel_insert_slice(&batch);
        (g, 0, current.to_vec())
    } else {
        let g = load_graph(&old)?.unwrap_or_else(|| new_graph(current.len()));
        let batch: Vec<(&[f32], usize)> = to_insert
            .iter()
            .map(|(n, _, v)| (v.as_slice(), *n as usize))
            .collect();
        g.parallel_insert_slice(&batch);
        (g, stale, current.to_vec())
    };
    let (graph_bytes, data_bytes) = dump_graph(&graph)?;
    Ok((
        GraphRecord {
            graph: graph_bytes,
            data: data_bytes,
            inserted: points.iter().map(|(n, p, _)| (*n, *p)).collect(),
            stale: record_stale,
        },
        rebuild,
    ))
}

const BASENAME: &str = "lore";

fn dump_graph(graph: &Graph) -> Result<(Vec<u8>, Vec<u8>), IndexError> {
    if graph.get_nb_point() == 0 {
        return Ok((Vec::new(), Vec::new()));
    }
    let dir = tempfile::tempdir().map_err(IndexError::io("creating a scratch directory"))?;
    let name = graph
        .file_dump(dir.path(), BASENAME)
        .map_err(|e| IndexError::Graph {
            what: "writing the vector graph",
            source: e.into(),
        })?;
    let read = |ext: &str| {
        std::fs::read(dir.path().join(format!("{name}.hnsw.{ext}")))
            .map_err(IndexError::io("reading the vector graph dump"))
    };
    Ok((read("graph")?, read("data")?))
}

fn load_graph(record: &GraphRecord) -> Result<Option<Graph>, IndexError> {
    if record.graph.is_empty() {
        return Ok(None);
    }
    let dir = tempfile::tempdir().map_err(IndexError::io("creating a scratch directory"))?;
    let write = |ext: &str, bytes: &[u8]| {
        std::fs::write(dir.path().join(format!("{BASENAME}.hnsw.{ext}")), bytes)
            .map_err(IndexError::io("writing the vector graph for loading"))
    };
    write("graph", &record.graph)?;
    write("data", &record.data)?;
    // The loader only holds paths and options (points are copied out of the files, not
    // memory-mapped), so leaking it to give the graph a 'static lifetime costs a few bytes per
    // graph loaded.
    let io: &'static mut HnswIo = Box::leak(Box::new(HnswIo::new(dir.path(), BASENAME)));
    let graph: Graph = io
        .load_hnsw::<f32, DistCosine>()
        .map_err(|e| IndexError::Graph {
            what: "loading the vector graph",
            source: e.into(),
        })?;
    Ok(Some(graph))
}

/// `lore check`'s look at the vector tables: every embedder record and graph decodes, and the
/// active embedder has a record. Returns the problems found.
pub fn check_stored(db: &Db) -> Result<Vec<String>, IndexError> {
    let txn = db.begin_read()?;
    let mut problems = Vec::new();
    let embedders = match txn.open_table(EMBEDDERS) {
        Err(e) if table_missing(&e) => return Ok(problems),
        t => t?,
    };
    for row in embedders.iter()? {
        let (model, spec) = row?;
        if postcard::from_bytes::<EmbedderSpec>(spec.value()).is_err() {
            problems.push(format!(
                "the record of embedder {} does not decode",
                model.value()
            ));
        }
    }
    if let Some(active) = txn.open_table(INDEX_META)?.get(ACTIVE_EMBEDDER)? {
        let model = String::from_utf8_lossy(active.value()).into_owned();
        if embedders.get(model.as_str())?.is_none() {
            problems.push(format!("the active embedder {model} has no record"));
        }
    }
    for row in txn.open_table(VECTOR_GRAPHS)?.iter()? {
        let (key, graph) = row?;
        if postcard::from_bytes::<GraphRecord>(graph.value()).is_err() {
            let (model, kind) = key.value();
            problems.push(format!(
                "the vector graph of {model}, kind {kind}, does not decode"
            ));
        }
    }
    for row in txn.open_table(VECTORS)?.iter()? {
        let (key, v) = row?;
        if v.value().len() < 8 || (v.value().len() - 8) % 4 != 0 {
            let (model, node) = key.value();
            problems.push(format!(
                "the vector of node {node} under {model} has {} bytes",
                v.value().len()
            ));
        }
    }
    Ok(problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::embed::random::unit_vectors;

    fn loaded(points: &[(u64, u64, Vec<f32>)]) -> KindVectors {
        let (record, rebuilt) = update_graph(GraphRecord::default(), points).unwrap();
        assert!(rebuilt);
        KindVectors {
            vectors: points.iter().map(|(n, _, v)| (*n, v.clone())).collect(),
            graph: load_graph(&record).unwrap(),
        }
    }

    fn points(n: usize, dim: usize, seed: u64) -> Vec<(u64, u64, Vec<f32>)> {
        unit_vectors(n, dim, seed)
            .into_iter()
            .enumerate()
            .map(|(i, v)| (NodeId::new(NodeKind::Issue, i as u64).0, 1, v))
            .collect()
    }

    #[test]
    fn graph_search_finds_what_an_exact_scan_finds() {
        let pts = points(3000, 16, 1);
        let kv = loaded(&pts);
        assert!(kv.has_graph());
        let queries = unit_vectors(50, 16, 2);
        let mut agree = 0;
        for q in &queries {
            let ann = kv.nearest(q, 10, &mut |_| true);
            let exact = kv.exact(q, 10, &mut |_| true);
            agree += ann
                .iter()
                .filter(|a| exact.iter().any(|e| e.0 == a.0))
                .count();
        }
        let recall = agree as f64 / 500.0;
        assert!(recall >= 0.95, "recall@10 {recall}");
    }

    #[test]
    fn a_filter_never_returns_fewer_results_than_exist() {
        let pts = points(3000, 16, 3);
        let kv = loaded(&pts);
        // Admit one node in a hundred: a top-40-then-filter search would return almost nothing.
        let admitted = |n: NodeId| n.local() % 100 == 7;
        for q in unit_vectors(10, 16, 4) {
            let got = kv.nearest(&q, 10, &mut |n| admitted(n));
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|(n, _)| admitted(*n)));
            let exact = kv.exact(&q, 10, &mut |n| admitted(n));
            assert_eq!(got[0].0, exact[0].0);
        }
        // Fewer admitted nodes than asked for: all of them.
        let got = kv.nearest(&pts[0].2, 10, &mut |n| n.local() < 4);
        assert_eq!(got.len(), 4);
    }

    #[test]
    fn graphs_grow_incrementally_and_are_rebuilt_when_stale() {
        let mut pts = points(3000, 8, 5);
        let (record, _) = update_graph(GraphRecord::default(), &pts[..2900]).unwrap();
        // New points are inserted into the stored graph.
        let (record, rebuilt) = update_graph(record, &pts).unwrap();
        assert!(!rebuilt);
        assert_eq!(load_graph(&record).unwrap().unwrap().get_nb_point(), 3000);
        // A few changed points are inserted again; their old points are stale.
        for p in pts.iter_mut().take(10) {
            p.1 = 2;
        }
        let (record, rebuilt) = update_graph(record, &pts).unwrap();
        assert!(!rebuilt);
        assert_eq!(record.stale, 10);
        // Most points changed: rebuilt from scratch.
        for p in pts.iter_mut() {
            p.1 = 3;
        }
        let (record, rebuilt) = update_graph(record, &pts).unwrap();
        assert!(rebuilt);
        assert_eq!(record.stale, 0);
        assert_eq!(load_graph(&record).unwrap().unwrap().get_nb_point(), 3000);
    }
}
