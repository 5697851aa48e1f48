//! Vectors of issues, commits and symbols, kept in the lore file under the model id of the
//! embedder that made them, with one HNSW graph (hnsw_rs) per model and kind.
//!
//! - `vectors[(model, node)]` = a format byte (1), the fingerprint of the embedded text (u64
//!   LE) and the components as f16 (LE). Files written before f16 hold the fingerprint and f32
//!   components (an even length; the f16 record's is odd), which still read.
//! - `vector_graph_parts[(model, kind, part)]` = one graph record in parts of at most
//!   [`PART_BYTES`] (redb gives a value a power-of-two run of pages, so one 14 MiB record would
//!   take 16 MiB): the hnsw_rs dump of the graph, its data file *without* the vectors
//!   `vectors` already holds (the order of the points, and a copy only of those whose vector
//!   changed since they were inserted), and which nodes the graph holds with the fingerprint
//!   each was inserted with. Loading rebuilds hnsw_rs's data file byte for byte.
//!   `vector_graphs[(model, kind)]`, the earlier layout with the whole data file, still reads
//!   and is replaced on the next update.
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
use redb::{ReadableTable, ReadableTableMetadata, TableDefinition};

use crate::store::{table_missing, Db};
use serde::{Deserialize, Serialize};

use super::documents::{self, Document};
use super::embed::{cosine, dot, Embedder, EmbedderSpec};
use super::IndexError;
use crate::store::{NodeId, NodeKind, Store};

/// Embedder records of files written before [`EMBEDDER_PARTS`]; read, and replaced by parts
/// on the next index update.
pub const EMBEDDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("embedders");
/// `(model, part) -> bytes`: how to rebuild each embedder (the built-in one's parameters), in
/// parts (see [`super::parts`]).
pub const EMBEDDER_PARTS: super::parts::PartsTable = TableDefinition::new("embedder_parts");
pub const INDEX_META: TableDefinition<&str, &[u8]> = TableDefinition::new("index_meta");
pub const VECTORS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("vectors");
/// The earlier graph layout (a whole hnsw_rs dump in one value): read, never written.
pub const VECTOR_GRAPHS: TableDefinition<(&str, u8), &[u8]> = TableDefinition::new("vector_graphs");
pub const VECTOR_GRAPH_PARTS: TableDefinition<(&str, u8, u32), &[u8]> =
    TableDefinition::new("vector_graph_parts");

/// The largest part of a stored graph record: a leaf with one part fits a 256 KiB page.
pub const PART_BYTES: usize = super::parts::PART_BYTES;

/// `index_meta` key naming the embedder whose vectors queries use.
pub const ACTIVE_EMBEDDER: &str = "embedder";

/// The kinds that get vectors.
pub const VECTOR_KINDS: [NodeKind; 3] = [NodeKind::Issue, NodeKind::Commit, NodeKind::Symbol];

const MAX_CONNECTIONS: usize = 16;
const EF_CONSTRUCTION: usize = 100;
const MAX_LAYERS: usize = 16;
/// Below this many vectors a kind has no graph and a search is an exact scan. On cargo's file
/// the scan (dot products in eight lanes, a partial selection of the best) beat the graph:
/// 0.44 ms against 0.64 ms p50 for 23,810 commit vectors of 200 dimensions, 0.26 against
/// 0.55 ms for 12,173 symbols; it grows linearly, to about 2 ms at this bound. Building a
/// graph costs seconds per ten thousand vectors.
const EXACT_BELOW: usize = 100_000;
/// Rebuild a graph when this share of its points is stale.
const STALE_SHARE: f64 = 0.2;

#[derive(Serialize, Deserialize, Default)]
struct GraphRecord {
    /// hnsw_rs's graph file.
    graph: Vec<u8>,
    /// hnsw_rs's data file, less the vectors the `vectors` table holds.
    data: GraphData,
    /// (node, fingerprint) of every point inserted and still current.
    inserted: Vec<(u64, u64)>,
    /// Points whose node changed or left since they were inserted.
    stale: u64,
}

/// The points of hnsw_rs's data file in its order: each a node and, where the node's stored
/// vector is not the one the point was inserted with (a changed or removed node's stale
/// point), that vector.
#[derive(Serialize, Deserialize, Default)]
struct GraphData {
    dim: u64,
    points: Vec<(u64, Option<Vec<f32>>)>,
}

/// A graph as hnsw_rs dumps and loads it: both files whole. Also the layout of the earlier
/// `vector_graphs` table.
#[derive(Serialize, Deserialize, Default)]
struct FullGraph {
    graph: Vec<u8>,
    data: Vec<u8>,
    inserted: Vec<(u64, u64)>,
    stale: u64,
}

impl FullGraph {
    /// The stored form: the data file's vectors that `vectors` gives are left out.
    fn compact<'v>(
        self,
        vectors: &dyn Fn(u64) -> Option<&'v [f32]>,
    ) -> Result<GraphRecord, IndexError> {
        let corrupt = |detail: &str| IndexError::Corrupt {
            what: "vector graph dump".into(),
            source: anyhow::anyhow!("{detail}").into(),
        };
        let mut data = GraphData::default();
        if !self.graph.is_empty() {
            // hnsw_rs's data file: magic (u32), dimension (usize), then per point magic,
            // origin id (u64), byte length (u64) and the f32 components, all native-endian.
            let mut at = DataReader(&self.data);
            let magic = DATA_MAGIC.to_ne_bytes();
            if at.take(4) != Some(magic.as_slice()) {
                return Err(corrupt("not hnsw_rs's data file layout"));
            }
            let dim = at.word().ok_or_else(|| corrupt("no dimension"))?;
            data.dim = dim;
            while !at.0.is_empty() {
                if at.take(4) != Some(magic.as_slice()) {
                    return Err(corrupt("a point without its magic number"));
                }
                let node = at.word().ok_or_else(|| corrupt("a point without its id"))?;
                let len = at
                    .word()
                    .ok_or_else(|| corrupt("a point without its length"))?;
                if len != dim * 4 {
                    return Err(corrupt("a point of another dimension"));
                }
                let bytes = at
                    .take(len as usize)
                    .ok_or_else(|| corrupt("a cut point"))?;
                let v: Vec<f32> = bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                let same = vectors(node).is_some_and(|stored| {
                    stored.len() == v.len()
                        && stored
                            .iter()
                            .zip(&v)
                            .all(|(a, b)| a.to_bits() == b.to_bits())
                });
                data.points.push((node, (!same).then_some(v)));
            }
        }
        Ok(GraphRecord {
            graph: self.graph,
            data,
            inserted: self.inserted,
            stale: self.stale,
        })
    }
}

struct DataReader<'a>(&'a [u8]);

impl<'a> DataReader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn word(&mut self) -> Option<u64> {
        self.take(8)
            .map(|b| u64::from_ne_bytes(b.try_into().expect("eight bytes")))
    }
}

impl GraphRecord {
    /// The stored bytes: the record in postcard, LZ4-compressed (the graph's neighbour ids and
    /// distances compress about twofold), its length first (u32 LE).
    fn encode(&self) -> Vec<u8> {
        let body = postcard::to_allocvec(self).expect("in-memory encoding cannot fail");
        lz4_flex::block::compress_prepend_size(&body)
    }

    /// The record [`GraphRecord::encode`] stored; what is wrong when the bytes are damaged.
    fn decode(bytes: &[u8]) -> Result<GraphRecord, String> {
        let claimed = bytes
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or("no length")?;
        if claimed > 1 << 30 {
            return Err(format!("it claims {claimed} bytes"));
        }
        let body = lz4_flex::block::decompress_size_prepended(bytes).map_err(|e| e.to_string())?;
        postcard::from_bytes(&body).map_err(|e| e.to_string())
    }

    /// hnsw_rs's files again, the left-out vectors read from `vectors`. `None` when one of them
    /// is missing or of another dimension (the graph is then rebuilt or not used).
    fn expand<'v>(self, vectors: &dyn Fn(u64) -> Option<&'v [f32]>) -> Option<FullGraph> {
        let mut data = Vec::new();
        if !self.graph.is_empty() {
            let dim = self.data.dim as usize;
            data.reserve(12 + self.data.points.len() * (20 + dim * 4));
            data.extend_from_slice(&DATA_MAGIC.to_ne_bytes());
            data.extend_from_slice(&self.data.dim.to_ne_bytes());
            for (node, kept) in &self.data.points {
                let v = match kept {
                    Some(v) => v.as_slice(),
                    None => vectors(*node)?,
                };
                if v.len() != dim {
                    return None;
                }
                data.extend_from_slice(&DATA_MAGIC.to_ne_bytes());
                data.extend_from_slice(&node.to_ne_bytes());
                data.extend_from_slice(&(dim as u64 * 4).to_ne_bytes());
                for x in v {
                    data.extend_from_slice(&x.to_ne_bytes());
                }
            }
        }
        Some(FullGraph {
            graph: self.graph,
            data,
            inserted: self.inserted,
            stale: self.stale,
        })
    }
}

/// hnsw_rs's magic number at the start of its data file and of each point in it.
const DATA_MAGIC: u32 = 0xa67f_0000;

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

/// The vectors of one kind under one model, loaded for searching: one row per node in a
/// contiguous matrix, so an exact scan streams through memory.
pub struct KindVectors {
    ids: Vec<u64>,
    dim: usize,
    matrix: Vec<f32>,
    row_of: HashMap<u64, usize>,
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

/// The first byte of a vector record with f16 components.
const F16_VECTOR: u8 = 1;

fn encode_vector(print: u64, v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + v.len() * 2);
    out.push(F16_VECTOR);
    out.extend_from_slice(&print.to_le_bytes());
    for x in v {
        out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes());
    }
    out
}

/// Whether `bytes` has the length of a vector record: 1 + 8 + 2·dim (f16, odd) or 8 + 4·dim
/// (f32, from before f16).
fn is_vector_record(bytes: &[u8]) -> bool {
    if bytes.len() % 2 == 1 {
        bytes.len() >= 9 && bytes[0] == F16_VECTOR
    } else {
        bytes.len() >= 8 && (bytes.len() - 8).is_multiple_of(4)
    }
}

/// The fingerprint and components of a vector record (either layout; see the module docs).
fn decode_vector(bytes: &[u8]) -> (u64, Vec<f32>) {
    let word = |b: &[u8]| {
        u64::from_le_bytes(
            b.get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default(),
        )
    };
    if bytes.len() % 2 == 1 {
        let v = bytes
            .get(9..)
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        (word(bytes.get(1..).unwrap_or_default()), v)
    } else {
        let v = bytes
            .get(8..)
            .unwrap_or_default()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        (word(bytes), v)
    }
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
            txn.open_table(EMBEDDER_PARTS)?;
            txn.open_table(INDEX_META)?;
            txn.open_table(VECTORS)?;
            txn.open_table(VECTOR_GRAPH_PARTS)?;
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
        let bytes = match txn.open_table(EMBEDDER_PARTS) {
            Err(e) if table_missing(&e) => None,
            t => super::parts::read(&t?, model)?,
        };
        let bytes = match bytes {
            Some(b) => b,
            None => match txn.open_table(EMBEDDERS)?.get(model)? {
                Some(v) => v.value().to_vec(),
                None => return Ok(None),
            },
        };
        Ok(Some(postcard::from_bytes(&bytes).map_err(|e| {
            IndexError::Corrupt {
                what: format!("stored embedder {model}"),
                source: e.into(),
            }
        })?))
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
        let docs: Vec<Document> = {
            let read = store.read()?;
            documents::collect(&read, &VECTOR_KINDS)?
        };
        self.update_from(&docs, embedder, spec, progress)
    }

    /// [`VectorIndex::update`] from documents already collected: every document of
    /// [`VECTOR_KINDS`] the store holds, as [`documents::collect`] returns them (documents of
    /// other kinds are passed over, so the text index's collection serves both). Vectors of
    /// nodes `docs` lacks are removed.
    pub fn update_from(
        &self,
        docs: &[Document],
        embedder: &dyn Embedder,
        spec: &EmbedderSpec,
        progress: &dyn Progress,
    ) -> Result<VectorUpdate, IndexError> {
        let model = embedder.model_id().to_string();
        let docs: Vec<&Document> = docs
            .iter()
            .filter(|d| d.node.kind().is_some_and(|k| VECTOR_KINDS.contains(&k)))
            .collect();
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
            .copied()
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
            // A removed node's point stays in its graph until a rebuild: keep its vector for
            // rebuilding the graph's data file.
            let mut gone: HashMap<u64, Vec<f32>> = HashMap::new();
            for node in &removed {
                if let Some(v) = vt.remove((model.as_str(), *node))? {
                    gone.insert(*node, decode_vector(v.value()).1);
                }
            }
            let mut gt = txn.open_table(VECTOR_GRAPHS)?;
            let mut pt = txn.open_table(VECTOR_GRAPH_PARTS)?;
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
                let by_node: HashMap<u64, &[f32]> = current
                    .iter()
                    .map(|(n, _, v)| (*n, v.as_slice()))
                    .chain(gone.iter().map(|(n, v)| (*n, v.as_slice())))
                    .collect();
                let lookup = |n: u64| by_node.get(&n).copied();
                // A record that does not decode, or whose vectors are gone, is rebuilt.
                let old = match read_parts(&pt, &model, kind)? {
                    Some(bytes) => GraphRecord::decode(&bytes)
                        .ok()
                        .and_then(|r| r.expand(&lookup))
                        .unwrap_or_default(),
                    None => match gt.remove((model.as_str(), kind as u8))? {
                        Some(v) => postcard::from_bytes(v.value()).unwrap_or_default(),
                        None => FullGraph::default(),
                    },
                };
                if current.len() < EXACT_BELOW {
                    write_parts(&mut pt, &model, kind, &[])?;
                    continue;
                }
                let (full, rebuilt) = update_graph(old, &current)?;
                report.graphs_rebuilt += u64::from(rebuilt);
                let record = full.compact(&lookup)?;
                write_parts(&mut pt, &model, kind, &record.encode())?;
            }
            // Every graph of the earlier layout is rewritten in parts by now or later updates.
            if gt.is_empty()? {
                drop(gt);
                txn.delete_table(VECTOR_GRAPHS)?;
            }
            // The record is written when it changes, not on every update (the built-in
            // embedder's is megabytes).
            let mut specs = txn.open_table(EMBEDDER_PARTS)?;
            if super::parts::read(&specs, &model)?.as_deref() != Some(spec_bytes.as_slice()) {
                super::parts::write(&mut specs, &model, spec_bytes.as_slice())?;
            }
            drop(specs);
            txn.open_table(EMBEDDERS)?.remove(model.as_str())?;
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
            let mut pt = txn.open_table(VECTOR_GRAPH_PARTS)?;
            for kind in VECTOR_KINDS {
                gt.remove((model, kind as u8))?;
                write_parts(&mut pt, model, kind, &[])?;
            }
            txn.open_table(EMBEDDERS)?.remove(model)?;
            super::parts::remove(&mut txn.open_table(EMBEDDER_PARTS)?, model)?;
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
        let mut rows = Vec::new();
        for row in vt.range((model, lo)..=(model, hi))? {
            let (k, v) = row?;
            let (_, vec) = decode_vector(v.value());
            if !is_zero(&vec) {
                rows.push((k.value().1, vec));
            }
        }
        let mut vectors = KindVectors::from_rows(rows);
        vectors.graph = if vectors.len() >= EXACT_BELOW {
            let corrupt = |e: postcard::Error| IndexError::Corrupt {
                what: "stored graph".into(),
                source: e.into(),
            };
            let corrupt_record = |detail: String| IndexError::Corrupt {
                what: "stored graph".into(),
                source: anyhow::anyhow!(detail).into(),
            };
            let full = match txn.open_table(VECTOR_GRAPH_PARTS) {
                Err(e) if table_missing(&e) => None,
                t => read_parts(&t?, model, kind)?,
            };
            let full = match full {
                Some(bytes) => {
                    let record = GraphRecord::decode(&bytes).map_err(corrupt_record)?;
                    // A vector changed or left without its graph being updated (an update cut
                    // short between its transactions): search exactly until the next update.
                    record.expand(&|n| vectors.get(n))
                }
                None => match txn.open_table(VECTOR_GRAPHS) {
                    Err(e) if table_missing(&e) => None,
                    t => match t?.get((model, kind as u8))? {
                        Some(v) => Some(postcard::from_bytes(v.value()).map_err(corrupt)?),
                        None => None,
                    },
                },
            };
            match full {
                Some(full) => load_graph(&full)?,
                None => None,
            }
        } else {
            None
        };
        let loaded = Arc::new(vectors);
        self.loaded
            .lock()
            .unwrap()
            .insert((model.to_string(), kind), loaded.clone());
        Ok(loaded)
    }
}

impl KindVectors {
    /// Vectors `(node, components)` of one dimension (rows of another are left out), without
    /// a graph.
    pub fn from_rows(rows: Vec<(u64, Vec<f32>)>) -> KindVectors {
        let dim = rows.first().map_or(0, |(_, v)| v.len());
        let mut out = KindVectors {
            ids: Vec::with_capacity(rows.len()),
            dim,
            matrix: Vec::with_capacity(rows.len() * dim),
            row_of: HashMap::with_capacity(rows.len()),
            graph: None,
        };
        for (node, v) in rows {
            if v.len() == dim && !out.row_of.contains_key(&node) {
                out.row_of.insert(node, out.ids.len());
                out.ids.push(node);
                out.matrix.extend_from_slice(&v);
            }
        }
        out
    }

    /// The vector of `node`, when it has one.
    pub fn get(&self, node: u64) -> Option<&[f32]> {
        let row = *self.row_of.get(&node)?;
        Some(&self.matrix[row * self.dim..(row + 1) * self.dim])
    }

    /// Every `(node, vector)`, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[f32])> {
        self.ids
            .iter()
            .copied()
            .zip(self.matrix.chunks_exact(self.dim.max(1)))
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Dimensions of the vectors (0 when there are none).
    pub fn dim(&self) -> usize {
        if self.ids.is_empty() {
            0
        } else {
            self.dim
        }
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
                let Some(v) = self.get(node) else {
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
            if found.len() < fetch || fetch >= self.len() {
                // The graph has nothing more to give: finish exactly.
                return self.exact(query, k, accept);
            }
            fetch *= 4;
        }
    }

    /// The exact `k` nearest by a scan of every vector. Only the best few are sorted: the
    /// top `4k` (at least 64) are selected, then sorted and offered to `accept`; the rest are
    /// sorted only when `accept` turns too many of them away.
    pub fn exact(
        &self,
        query: &[f32],
        k: usize,
        accept: &mut dyn FnMut(NodeId) -> bool,
    ) -> Vec<(NodeId, f32)> {
        let mut out = Vec::with_capacity(k);
        if k == 0 || self.dim == 0 || query.len() != self.dim {
            return out;
        }
        let mut scored: Vec<(NodeId, f32)> = self
            .iter()
            .map(|(n, v)| (NodeId(n), dot(query, v)))
            .collect();
        let by_score =
            |a: &(NodeId, f32), b: &(NodeId, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        let head = (k * 4).max(64);
        let rest = if scored.len() > head {
            scored.select_nth_unstable_by(head - 1, by_score);
            scored.split_off(head)
        } else {
            Vec::new()
        };
        scored.sort_unstable_by(by_score);
        let mut offer = |candidates: Vec<(NodeId, f32)>, out: &mut Vec<(NodeId, f32)>| {
            for (n, s) in candidates {
                if out.len() == k {
                    break;
                }
                if accept(n) {
                    out.push((n, s));
                }
            }
        };
        offer(scored, &mut out);
        if out.len() < k && !rest.is_empty() {
            let mut rest = rest;
            rest.sort_unstable_by(by_score);
            offer(rest, &mut out);
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
    old: FullGraph,
    current: &[(u64, u64, Vec<f32>)],
) -> Result<(FullGraph, bool), IndexError> {
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
        FullGraph {
            graph: graph_bytes,
            data: data_bytes,
            inserted: points.iter().map(|(n, p, _)| (*n, *p)).collect(),
            stale: record_stale,
        },
        rebuild,
    ))
}

const BASENAME: &str = "lore";

/// The stored record of the graph of `kind` under `model`, its parts joined.
fn read_parts(
    table: &impl ReadableTable<(&'static str, u8, u32), &'static [u8]>,
    model: &str,
    kind: NodeKind,
) -> Result<Option<Vec<u8>>, IndexError> {
    let mut out: Option<Vec<u8>> = None;
    for row in table.range((model, kind as u8, 0u32)..=(model, kind as u8, u32::MAX))? {
        let (_, part) = row?;
        out.get_or_insert_with(Vec::new)
            .extend_from_slice(part.value());
    }
    Ok(out)
}

/// Replace the stored record of the graph of `kind` under `model` by `bytes` (nothing when
/// empty), in parts of at most [`PART_BYTES`].
fn write_parts(
    table: &mut redb::Table<'_, (&'static str, u8, u32), &'static [u8]>,
    model: &str,
    kind: NodeKind,
    bytes: &[u8],
) -> Result<(), IndexError> {
    let k = kind as u8;
    table.retain_in((model, k, 0u32)..=(model, k, u32::MAX), |_, _| false)?;
    for (i, part) in bytes.chunks(PART_BYTES).enumerate() {
        table.insert((model, k, i as u32), part)?;
    }
    Ok(())
}

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

fn load_graph(record: &FullGraph) -> Result<Option<Graph>, IndexError> {
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
    let mut records: Vec<(String, Vec<u8>)> = Vec::new();
    for row in embedders.iter()? {
        let (model, spec) = row?;
        records.push((model.value().to_string(), spec.value().to_vec()));
    }
    let parts = match txn.open_table(EMBEDDER_PARTS) {
        Err(e) if table_missing(&e) => None,
        t => Some(t?),
    };
    if let Some(parts) = &parts {
        for (model, _) in super::parts::sizes(parts)? {
            let bytes = super::parts::read(parts, &model)?.unwrap_or_default();
            records.push((model, bytes));
        }
    }
    for (model, spec) in &records {
        if postcard::from_bytes::<EmbedderSpec>(spec).is_err() {
            problems.push(format!("the record of embedder {model} does not decode"));
        }
    }
    if let Some(active) = txn.open_table(INDEX_META)?.get(ACTIVE_EMBEDDER)? {
        let model = String::from_utf8_lossy(active.value()).into_owned();
        if !records.iter().any(|(m, _)| *m == model) {
            problems.push(format!("the active embedder {model} has no record"));
        }
    }
    if let Ok(parts) = txn.open_table(VECTOR_GRAPH_PARTS) {
        let mut keys = std::collections::BTreeSet::new();
        for row in parts.iter()? {
            let (key, _) = row?;
            let (model, kind, _) = key.value();
            keys.insert((model.to_string(), kind));
        }
        for (model, kind) in keys {
            let mut bytes = Vec::new();
            for row in
                parts.range((model.as_str(), kind, 0u32)..=(model.as_str(), kind, u32::MAX))?
            {
                bytes.extend_from_slice(row?.1.value());
            }
            if GraphRecord::decode(&bytes).is_err() {
                problems.push(format!(
                    "the vector graph of {model}, kind {kind}, does not decode"
                ));
            }
        }
    }
    let legacy = match txn.open_table(VECTOR_GRAPHS) {
        Err(e) if table_missing(&e) => None,
        t => Some(t?),
    };
    for row in legacy
        .iter()
        .map(|t| t.iter())
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .flatten()
    {
        let (key, graph) = row?;
        if postcard::from_bytes::<FullGraph>(graph.value()).is_err() {
            let (model, kind) = key.value();
            problems.push(format!(
                "the vector graph of {model}, kind {kind}, does not decode"
            ));
        }
    }
    for row in txn.open_table(VECTORS)?.iter()? {
        let (key, v) = row?;
        if !is_vector_record(v.value()) {
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
        let (record, rebuilt) = update_graph(FullGraph::default(), points).unwrap();
        assert!(rebuilt);
        let mut kv =
            KindVectors::from_rows(points.iter().map(|(n, _, v)| (*n, v.clone())).collect());
        kv.graph = load_graph(&record).unwrap();
        kv
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
    fn stored_graphs_leave_out_the_vectors_and_rebuild_the_dump_exactly() {
        let mut pts = points(2500, 8, 7);
        let (full, _) = update_graph(FullGraph::default(), &pts).unwrap();
        // Ten nodes change: their old points stay in the graph, with the old vectors.
        for (i, p) in pts.iter_mut().take(10).enumerate() {
            p.1 = 2;
            p.2 = unit_vectors(1, 8, 100 + i as u64).remove(0);
        }
        let by_node = |pts: &[(u64, u64, Vec<f32>)]| -> HashMap<u64, Vec<f32>> {
            pts.iter().map(|(n, _, v)| (*n, v.clone())).collect()
        };
        let (full, _) = update_graph(full, &pts).unwrap();
        let now = by_node(&pts);
        let lookup = |n: u64| now.get(&n).map(Vec::as_slice);
        let (graph, data) = (full.graph.clone(), full.data.clone());
        let record = full.compact(&lookup).unwrap();
        // Only the ten stale points keep a copy of their vector.
        assert_eq!(record.data.points.len(), 2510);
        assert_eq!(
            record.data.points.iter().filter(|p| p.1.is_some()).count(),
            10
        );
        let bytes = record.encode();
        // Smaller than the dump by at least the 2,500 vectors left out (8 f32 each).
        let left_out = 2500 * 8 * 4;
        assert!(
            bytes.len() + left_out < graph.len() + data.len(),
            "{} bytes",
            bytes.len()
        );
        let back = GraphRecord::decode(&bytes).unwrap();
        let again = back.expand(&lookup).unwrap();
        assert_eq!(again.graph, graph);
        assert_eq!(again.data, data, "the data file is rebuilt byte for byte");
        assert_eq!(load_graph(&again).unwrap().unwrap().get_nb_point(), 2510);
        // A vector the record refers to is gone: no graph, rather than a wrong one.
        let fewer: HashMap<u64, Vec<f32>> = now.into_iter().skip(1).collect();
        let record = GraphRecord::decode(&bytes).unwrap();
        assert!(record
            .expand(&|n| fewer.get(&n).map(Vec::as_slice))
            .is_none());
    }

    #[test]
    fn vectors_are_stored_as_f16_and_f32_records_still_read() {
        let v = vec![0.1f32, -0.5, 0.25, 1e-3];
        let bytes = encode_vector(42, &v);
        assert_eq!(bytes.len(), 1 + 8 + 2 * v.len());
        assert!(is_vector_record(&bytes));
        let (print, back) = decode_vector(&bytes);
        assert_eq!(print, 42);
        for (a, b) in v.iter().zip(&back) {
            assert!((a - b).abs() <= a.abs() / 1024.0, "{a} vs {b}");
        }
        let mut legacy = 7u64.to_le_bytes().to_vec();
        for x in &v {
            legacy.extend_from_slice(&x.to_le_bytes());
        }
        assert!(is_vector_record(&legacy));
        assert_eq!(decode_vector(&legacy), (7, v));
        assert!(!is_vector_record(&legacy[..10]));
        assert!(!is_vector_record(&[9, 0, 0]));
    }

    #[test]
    fn graphs_grow_incrementally_and_are_rebuilt_when_stale() {
        let mut pts = points(3000, 8, 5);
        let (record, _) = update_graph(FullGraph::default(), &pts[..2900]).unwrap();
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
