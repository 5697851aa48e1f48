//! What `adapt` trains on: the documents of a `lore export` directory (its `manifest.json` and
//! token shards), split into what is new since the parent adapter and what is old, re-packed
//! into rows.

use std::path::{Path, PathBuf};

use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use super::lora::SplitMix;
use super::model::Batch;
use super::AdaptError;
use crate::export::shards;

/// One document of an export: its tokens, how many lead as prompt, and its example.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document {
    /// The example's id in the export (`commit:…`, `issue#…`): the same across exports.
    pub id: String,
    pub ids: Vec<u32>,
    pub prompt_len: usize,
    /// Index into the manifest's examples.
    pub example: usize,
    pub created_at: i64,
}

/// An export directory, read.
#[derive(Debug, Clone)]
pub struct ExportData {
    pub dir: PathBuf,
    pub name: String,
    pub query: String,
    pub template: String,
    pub tokenizer_sha256: String,
    pub seq_len: usize,
    pub train: Vec<Document>,
    pub val: Vec<Document>,
}

fn bad(dir: &Path, detail: impl Into<String>) -> AdaptError {
    AdaptError::Data {
        path: dir.to_path_buf(),
        detail: detail.into(),
    }
}

/// Read an export directory made with `--tokenizer`.
pub fn read_export(dir: &Path) -> Result<ExportData, AdaptError> {
    let manifest_path = dir.join("manifest.json");
    let text = std::fs::read(&manifest_path).map_err(|e| {
        bad(
            dir,
            format!("cannot read manifest.json ({e}); is this a `lore export` directory?"),
        )
    })?;
    let m: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(&manifest_path, e.to_string()))?;
    let tokenizer_sha256 = m["tokenizer"]["sha256"]
        .as_str()
        .ok_or_else(|| {
            bad(
                dir,
                "the export has no token shards: export again with --tokenizer MODEL_DIR",
            )
        })?
        .to_string();
    let seq_len = m["options"]["seq_len"]
        .as_u64()
        .ok_or_else(|| bad(&manifest_path, "no options.seq_len"))? as usize;
    let examples = m["examples"]
        .as_array()
        .ok_or_else(|| bad(&manifest_path, "no examples"))?;
    let created: Vec<Option<(i64, String)>> = examples
        .iter()
        .map(|e| Some((e["created_at"].as_i64()?, e["id"].as_str()?.to_string())))
        .collect();
    let mut data = ExportData {
        dir: dir.to_path_buf(),
        name: m["name"].as_str().unwrap_or("default").to_string(),
        query: m["query"].as_str().unwrap_or_default().to_string(),
        template: m["template"].as_str().unwrap_or_default().to_string(),
        tokenizer_sha256,
        seq_len,
        train: Vec::new(),
        val: Vec::new(),
    };
    let files = m["tokens"]["shards"]
        .as_array()
        .ok_or_else(|| bad(&manifest_path, "no tokens.shards"))?;
    for f in files {
        let name = f
            .as_str()
            .ok_or_else(|| bad(&manifest_path, "a shard name is not text"))?;
        let docs = read_shard(&dir.join(name), seq_len, &created)?;
        if name.starts_with("val") {
            data.val.extend(docs);
        } else {
            data.train.extend(docs);
        }
    }
    Ok(data)
}

fn ints<const N: usize, T>(
    st: &SafeTensors<'_>,
    path: &Path,
    name: &str,
    from: fn([u8; N]) -> T,
) -> Result<Vec<T>, AdaptError> {
    let t = st.tensor(name).map_err(|_| {
        bad(
            path,
            format!("no `{name}` tensor (written by an older lore? export again)"),
        )
    })?;
    Ok(t.data()
        .chunks_exact(N)
        .map(|c| from(c.try_into().expect("chunks_exact")))
        .collect())
}

/// The documents of one shard, unpacked from its rows.
fn read_shard(
    path: &Path,
    seq_len: usize,
    created: &[Option<(i64, String)>],
) -> Result<Vec<Document>, AdaptError> {
    let bytes = std::fs::read(path).map_err(|e| AdaptError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(path, e.to_string()))?;
    let ids = ints(&st, path, "input_ids", i32::from_le_bytes)?;
    let labels = ints(&st, path, "labels", i64::from_le_bytes)?;
    let lengths = ints(&st, path, "document_lengths", i32::from_le_bytes)?;
    let examples = ints(&st, path, "document_examples", i32::from_le_bytes)?;
    if seq_len == 0 || ids.len() % seq_len != 0 || labels.len() != ids.len() {
        return Err(bad(path, "input_ids and labels do not match seq_len"));
    }
    let rows = ids.len() / seq_len;
    if rows == 0 || lengths.len() % rows != 0 || examples.len() != lengths.len() {
        return Err(bad(
            path,
            "document_lengths and document_examples do not match the rows",
        ));
    }
    let max_docs = lengths.len() / rows;
    let mut out = Vec::new();
    for r in 0..rows {
        let mut at = r * seq_len;
        for d in 0..max_docs {
            let len = lengths[r * max_docs + d];
            if len <= 0 {
                continue;
            }
            let len = len as usize;
            let example = examples[r * max_docs + d];
            if at + len > (r + 1) * seq_len || example < 0 {
                return Err(bad(
                    path,
                    format!("row {r}: document {d} does not fit its row"),
                ));
            }
            let example = example as usize;
            let (created_at, id) = created.get(example).cloned().flatten().ok_or_else(|| {
                bad(
                    path,
                    format!("document of example {example}, which the manifest does not date"),
                )
            })?;
            let doc_labels = &labels[at..at + len];
            let prompt_len = doc_labels.iter().position(|&l| l >= 0).unwrap_or(len);
            out.push(Document {
                id,
                ids: ids[at..at + len].iter().map(|&i| i as u32).collect(),
                prompt_len,
                example,
                created_at,
            });
            at += len;
        }
    }
    Ok(out)
}

/// The documents one run trains and validates on.
#[derive(Debug, Clone)]
pub struct Selection {
    pub train: Vec<Document>,
    pub val: Vec<Document>,
    pub new_examples: usize,
    pub replay_examples: usize,
    /// Training documents left out because an adapter of the lineage validates on them.
    pub held_out: usize,
    /// The newest input time among everything selected, or the parent's when nothing is newer.
    pub watermark: Option<i64>,
}

/// New documents (newer than `after`), plus `replay · new` older ones drawn with `seed`.
/// Validation is the new part of the export's validation split; when the export has none, a
/// tenth of the new training documents is held out. Documents in `held_out` (the validation
/// sets of earlier adapters) are never trained on, so forgetting is measured on unseen data.
pub fn select(
    data: &ExportData,
    after: Option<i64>,
    replay: f64,
    seed: u64,
    held_out: &std::collections::HashSet<String>,
) -> Selection {
    let is_new = |d: &&Document| after.is_none_or(|w| d.created_at > w);
    let trainable = |d: &&Document| !held_out.contains(&d.id);
    let held = data.train.iter().filter(|d| !trainable(d)).count();
    let mut train: Vec<Document> = data
        .train
        .iter()
        .filter(is_new)
        .filter(trainable)
        .cloned()
        .collect();
    let mut val: Vec<Document> = data.val.iter().filter(is_new).cloned().collect();
    if val.is_empty() && train.len() >= 2 {
        let keep = train.len() - (train.len() / 10).max(1);
        // The newest documents validate, as a time split would.
        train.sort_by_key(|d| (d.created_at, d.example));
        val = train.split_off(keep);
    }
    let new_examples = train.len() + val.len();
    let watermark = train
        .iter()
        .chain(&val)
        .map(|d| d.created_at)
        .max()
        .max(after);
    let mut old: Vec<Document> = data.train.iter().filter(|d| !is_new(d)).cloned().collect();
    let want = ((train.len() as f64) * replay).round() as usize;
    shuffle(&mut old, seed);
    old.truncate(want);
    let replay_examples = old.len();
    train.extend(old);
    Selection {
        train,
        val,
        new_examples,
        replay_examples,
        held_out: held,
        watermark,
    }
}

/// Fisher–Yates with a seeded generator.
pub fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = SplitMix(seed ^ 0x5eed);
    for i in (1..items.len()).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        items.swap(i, j);
    }
}

/// Pack documents into rows of `seq` tokens (best-fit decreasing, as export does).
pub fn rows(docs: &[Document], seq: usize) -> Vec<Batch> {
    let lengths: Vec<usize> = docs.iter().map(|d| d.ids.len().min(seq)).collect();
    shards::pack(&lengths, seq)
        .into_iter()
        .map(|row| {
            let laid: Vec<shards::Doc<'_>> = row
                .iter()
                .map(|&d| {
                    let doc = &docs[d];
                    (&doc.ids[..lengths[d]], doc.prompt_len, doc.example as i32)
                })
                .collect();
            let a = shards::arrays(&[laid], seq, 0);
            Batch {
                ids: a.input_ids.iter().map(|&i| i as u32).collect(),
                positions: a.position_ids.iter().map(|&p| p as u32).collect(),
                labels: a.labels,
                rows: 1,
                seq,
            }
        })
        .collect()
}

/// Join single rows into one batch.
pub fn join(rows: &[&Batch]) -> Batch {
    let seq = rows.first().map_or(0, |r| r.seq);
    let mut b = Batch {
        ids: Vec::new(),
        positions: Vec::new(),
        labels: Vec::new(),
        rows: 0,
        seq,
    };
    for r in rows {
        b.ids.extend_from_slice(&r.ids);
        b.positions.extend_from_slice(&r.positions);
        b.labels.extend_from_slice(&r.labels);
        b.rows += r.rows;
    }
    b
}

/// Label tokens in a set of rows.
pub fn label_count(rows: &[Batch]) -> usize {
    rows.iter().map(|r| r.targets().0.len()).sum()
}
