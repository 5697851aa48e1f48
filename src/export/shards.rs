//! Token shards: examples tokenized with a Hugging Face tokenizer, packed several to a row, and
//! written as safetensors a trainer streams (`lore adapt`, or a PyTorch loop as is).
//!
//! Per row of `seq_len` tokens: `input_ids` (int32), `labels` (int64, unshifted: -100 on prompt
//! tokens, on padding and on each document's first token, as transformers'
//! `DataCollatorWithFlattening` marks them), `position_ids` (int32, restarting at 0 at every
//! document), `document_lengths` (int32, the lengths of the row's documents in order,
//! zero-padded) and `document_examples` (int32, each document's index into the manifest's
//! `examples`, -1 for padding). Rows are filled best-fit decreasing.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use safetensors::tensor::{Dtype, TensorView};
use sha2::{Digest, Sha256};
use tokenizers::Tokenizer;

use super::ExportError;

/// The label of a position that is not trained on.
pub const IGNORE: i64 = -100;
/// Rows per shard file.
pub const ROWS_PER_SHARD: usize = 4096;

/// A tokenizer directory: `tokenizer.json`, and `tokenizer_config.json` for the chat template
/// and special tokens when present.
pub struct TokenizerDir {
    pub tokenizer: Tokenizer,
    /// sha256 of `tokenizer.json`.
    pub hash: String,
    pub chat_template: Option<String>,
    pub eos: Option<(String, u32)>,
    pub bos: Option<String>,
    pub pad_id: u32,
}

fn config_token(config: &serde_json::Value, key: &str) -> Option<String> {
    match &config[key] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

impl TokenizerDir {
    pub fn load(dir: &Path) -> Result<TokenizerDir, ExportError> {
        let file = dir.join("tokenizer.json");
        let bytes = std::fs::read(&file).map_err(|e| ExportError::Tokenizer {
            path: file.clone(),
            detail: format!("cannot read it ({e}); a tokenizer directory needs tokenizer.json"),
        })?;
        let tokenizer = Tokenizer::from_bytes(&bytes).map_err(|e| ExportError::Tokenizer {
            path: file.clone(),
            detail: e.to_string(),
        })?;
        let hash = format!("{:x}", Sha256::digest(&bytes));
        let config: serde_json::Value = match std::fs::read(dir.join("tokenizer_config.json")) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| ExportError::Tokenizer {
                path: dir.join("tokenizer_config.json"),
                detail: e.to_string(),
            })?,
            Err(_) => serde_json::Value::Null,
        };
        let eos = config_token(&config, "eos_token")
            .and_then(|t| tokenizer.token_to_id(&t).map(|id| (t, id)));
        let pad_id = config_token(&config, "pad_token")
            .and_then(|t| tokenizer.token_to_id(&t))
            .or(eos.as_ref().map(|e| e.1))
            .unwrap_or(0);
        Ok(TokenizerDir {
            chat_template: config["chat_template"].as_str().map(str::to_string),
            bos: config_token(&config, "bos_token"),
            eos,
            pad_id,
            tokenizer,
            hash,
        })
    }
}

/// One tokenized example: its prompt tokens and its completion tokens.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub prompt: Vec<u32>,
    pub completion: Vec<u32>,
}

/// Texts to tokenize for one example: either a prompt and a completion, or (with a chat
/// template) the rendered conversation split where the assistant's answer starts.
pub struct Texts {
    pub prompt: String,
    pub completion: String,
    /// Special tokens are in the text already (a chat template wrote them).
    pub templated: bool,
}

/// Tokenize every example in parallel.
pub fn tokenize(tok: &TokenizerDir, texts: &[Texts]) -> Result<Vec<Tokens>, ExportError> {
    texts
        .par_iter()
        .map(|t| {
            let encode = |s: &str, special: bool| {
                tok.tokenizer
                    .encode_fast(s, special)
                    .map(|e| e.get_ids().to_vec())
                    .map_err(|e| ExportError::Tokenize {
                        detail: e.to_string(),
                    })
            };
            let prompt = encode(&t.prompt, !t.templated)?;
            let mut completion = encode(&t.completion, false)?;
            if !t.templated {
                if let Some((_, eos)) = &tok.eos {
                    completion.push(*eos);
                }
            }
            Ok(Tokens { prompt, completion })
        })
        .collect()
}

/// What fitting examples into rows did.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Fit {
    /// Examples whose prompt was cut from the start to fit.
    pub truncated: u64,
    /// Examples dropped: even their completion with a few prompt tokens does not fit.
    pub dropped: u64,
}

/// The least prompt kept when an example is truncated: less says nothing to learn from.
pub const MIN_PROMPT: usize = 16;

/// Cut examples to `seq_len`: the prompt loses tokens from its start (the far context);
/// examples whose completion leaves less than [`MIN_PROMPT`] prompt tokens are dropped.
/// Returns the kept documents (token ids and how many leading tokens are prompt), with the
/// index of the example each came from.
pub fn fit(tokens: &[Tokens], seq_len: usize) -> (Vec<(usize, Vec<u32>, usize)>, Fit) {
    let mut fit = Fit::default();
    let mut docs = Vec::with_capacity(tokens.len());
    for (i, t) in tokens.iter().enumerate() {
        let total = t.prompt.len() + t.completion.len();
        let mut prompt: &[u32] = &t.prompt;
        if total > seq_len {
            if t.completion.len() + MIN_PROMPT.min(t.prompt.len()) > seq_len {
                fit.dropped += 1;
                continue;
            }
            prompt = &t.prompt[t.prompt.len() - (seq_len - t.completion.len())..];
            fit.truncated += 1;
        }
        let mut ids = prompt.to_vec();
        ids.extend_from_slice(&t.completion);
        docs.push((i, ids, prompt.len()));
    }
    (docs, fit)
}

/// Rows of documents, best-fit decreasing: the longest document first, each into the row with
/// the least room that still holds it. Returns, per row, indexes into `lengths`.
pub fn pack(lengths: &[usize], seq_len: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    // Rows by remaining room, for a best-fit lookup.
    let mut by_room: std::collections::BTreeMap<(usize, usize), ()> = Default::default();
    let mut rows: Vec<Vec<usize>> = Vec::new();
    let mut room: Vec<usize> = Vec::new();
    for i in order {
        let len = lengths[i];
        let best = by_room.range((len, 0)..).next().map(|(k, _)| *k);
        let row = match best {
            Some(key) => {
                by_room.remove(&key);
                key.1
            }
            None => {
                rows.push(Vec::new());
                room.push(seq_len);
                rows.len() - 1
            }
        };
        rows[row].push(i);
        room[row] -= len;
        by_room.insert((room[row], row), ());
    }
    rows
}

/// The arrays of one shard.
pub struct ShardArrays {
    pub input_ids: Vec<i32>,
    pub labels: Vec<i64>,
    pub position_ids: Vec<i32>,
    pub document_lengths: Vec<i32>,
    pub document_examples: Vec<i32>,
    pub rows: usize,
    pub max_docs: usize,
}

/// One document laid into a row: its token ids, how many leading ones are prompt, and the
/// index of the example it came from.
pub type Doc<'a> = (&'a [u32], usize, i32);

/// Lay out `rows` (each a list of documents) as arrays.
pub fn arrays(rows: &[Vec<Doc<'_>>], seq_len: usize, pad_id: u32) -> ShardArrays {
    let max_docs = rows.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let n = rows.len();
    let mut a = ShardArrays {
        input_ids: vec![pad_id as i32; n * seq_len],
        labels: vec![IGNORE; n * seq_len],
        position_ids: vec![0; n * seq_len],
        document_lengths: vec![0; n * max_docs],
        document_examples: vec![-1; n * max_docs],
        rows: n,
        max_docs,
    };
    for (r, docs) in rows.iter().enumerate() {
        let mut at = r * seq_len;
        for (d, (ids, prompt_len, example)) in docs.iter().enumerate() {
            a.document_lengths[r * max_docs + d] = ids.len() as i32;
            a.document_examples[r * max_docs + d] = *example;
            for (k, &id) in ids.iter().enumerate() {
                a.input_ids[at + k] = id as i32;
                a.position_ids[at + k] = k as i32;
                // A document's first token has nothing before it to be predicted from.
                if k >= *prompt_len && k > 0 {
                    a.labels[at + k] = i64::from(id);
                }
            }
            at += ids.len();
        }
    }
    a
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], to: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|v| to(*v)).collect()
}

/// Write one shard file.
pub fn write_shard(path: &Path, a: &ShardArrays, seq_len: usize) -> Result<(), ExportError> {
    let ids = le_bytes(&a.input_ids, i32::to_le_bytes);
    let labels = le_bytes(&a.labels, i64::to_le_bytes);
    let positions = le_bytes(&a.position_ids, i32::to_le_bytes);
    let lengths = le_bytes(&a.document_lengths, i32::to_le_bytes);
    let examples = le_bytes(&a.document_examples, i32::to_le_bytes);
    fn view<'d>(
        path: &Path,
        dtype: Dtype,
        shape: Vec<usize>,
        data: &'d [u8],
    ) -> Result<TensorView<'d>, ExportError> {
        TensorView::new(dtype, shape, data).map_err(|e| ExportError::Shard {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }
    let tensors = vec![
        (
            "document_examples",
            view(path, Dtype::I32, vec![a.rows, a.max_docs], &examples)?,
        ),
        (
            "document_lengths",
            view(path, Dtype::I32, vec![a.rows, a.max_docs], &lengths)?,
        ),
        (
            "input_ids",
            view(path, Dtype::I32, vec![a.rows, seq_len], &ids)?,
        ),
        (
            "labels",
            view(path, Dtype::I64, vec![a.rows, seq_len], &labels)?,
        ),
        (
            "position_ids",
            view(path, Dtype::I32, vec![a.rows, seq_len], &positions)?,
        ),
    ];
    let bytes = safetensors::serialize(tensors, None).map_err(|e| ExportError::Shard {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    std::fs::write(path, bytes).map_err(|e| ExportError::Io {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The file name of shard `k` of a split.
pub fn shard_path(dir: &Path, split: &str, k: usize) -> PathBuf {
    dir.join(format!("{split}-{k:05}.safetensors"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_fit_decreasing_fills_rows() {
        let rows = pack(&[6, 5, 4, 3, 2], 8);
        // 6, 5 and 4 each open a row (2, 3 and 4 left); 3 goes to the row with the least room
        // that holds it (5's), 2 to 6's.
        assert_eq!(rows, vec![vec![0, 4], vec![1, 3], vec![2]]);
    }

    #[test]
    fn labels_and_positions_restart_per_document() {
        let a: Vec<u32> = vec![10, 11, 12, 13];
        let b: Vec<u32> = vec![20, 21, 22];
        let rows = vec![vec![(a.as_slice(), 2, 0), (b.as_slice(), 1, 5)]];
        let s = arrays(&rows, 9, 0);
        assert_eq!(s.input_ids, vec![10, 11, 12, 13, 20, 21, 22, 0, 0]);
        assert_eq!(s.position_ids, vec![0, 1, 2, 3, 0, 1, 2, 0, 0]);
        assert_eq!(s.labels, vec![-100, -100, 12, 13, -100, 21, 22, -100, -100]);
        assert_eq!(s.document_lengths, vec![4, 3]);
        assert_eq!(s.document_examples, vec![0, 5]);
    }

    #[test]
    fn long_prompts_lose_their_start_and_hopeless_ones_are_dropped() {
        let tokens = vec![
            Tokens {
                prompt: (0..30).collect(),
                completion: vec![100, 101],
            },
            Tokens {
                prompt: vec![1, 2],
                completion: (0..40).collect(),
            },
            Tokens {
                prompt: vec![7],
                completion: vec![8],
            },
        ];
        let (docs, fit) = fit(&tokens, 20);
        assert_eq!(fit.truncated, 1);
        assert_eq!(fit.dropped, 1);
        assert_eq!(docs[0].1.len(), 20);
        assert_eq!(docs[0].1[..2], [12, 13]);
        assert_eq!(docs[0].2, 18);
        assert_eq!(docs[1], (2, vec![7, 8], 1));
    }
}
