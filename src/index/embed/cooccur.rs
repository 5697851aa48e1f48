//! The built-in embedder: word vectors learned from the lore file's own text.
//!
//! Training counts how often sub-words occur within a few words of each other across commits,
//! issues, symbols and paths, turns the counts into positive pointwise mutual information (with
//! the usual 0.75 smoothing of context counts), and keeps the top eigenvectors of that matrix,
//! scaled by the square root of their eigenvalues, as word vectors. A text's vector is the
//! average of its words' vectors, each weighted by `a / (a + p(word))` so frequent words count
//! little, then normalised.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::linalg::{top_eigen, Csr};
use super::{normalise, Embedder};
use crate::index::documents::Fnv;
use crate::index::words::sub_word_list;
use crate::index::IndexError;

/// Training settings.
#[derive(Debug, Clone, Copy)]
pub struct TrainOptions {
    pub dim: usize,
    pub max_vocab: usize,
    pub min_count: u32,
    pub window: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            dim: 128,
            max_vocab: 40_000,
            min_count: 2,
            window: 5,
        }
    }
}

const SIF_A: f32 = 1e-3;
/// Words per text taken into account (training and embedding).
const MAX_WORDS: usize = 4_000;

const STOPWORDS: &[&str] = &[
    "a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "is", "it", "be", "as", "at",
    "by", "this", "that", "with", "from", "are", "was", "we", "i", "you", "if", "not", "but", "so",
    "can", "do", "have", "has", "will", "would", "should", "there", "when", "which",
];

#[derive(Serialize, Deserialize)]
struct Params {
    dim: usize,
    /// How many texts training saw.
    trained_on: u64,
    vocab: Vec<String>,
    /// SIF weight per word.
    weights: Vec<f32>,
    /// `vocab.len() × dim`, row-major, rows normalised.
    vectors: Vec<f32>,
}

/// Word vectors learned from a corpus; see the module docs.
pub struct CooccurrenceEmbedder {
    params: Params,
    index: HashMap<String, u32>,
    model_id: String,
}

fn words(text: &str) -> Vec<String> {
    let mut w = sub_word_list(text);
    w.truncate(MAX_WORDS);
    w
}

impl CooccurrenceEmbedder {
    /// Learn word vectors from `texts`. Deterministic for the same texts in the same order.
    pub fn train<'a>(
        texts: impl Iterator<Item = &'a str> + Clone,
        opts: TrainOptions,
    ) -> Result<CooccurrenceEmbedder, IndexError> {
        // Vocabulary. Each text is split into words once: every distinct word gets a number
        // in order of first sight, and each text is kept as its words' numbers.
        let hasher = foldhash::fast::FixedState::with_seed(0x6c6f_7265);
        let mut seen: HashMap<String, u32, _> = HashMap::with_hasher(hasher.clone());
        let mut counts: Vec<u32> = Vec::new();
        let mut tokens: Vec<u32> = Vec::new();
        let mut text_ends: Vec<usize> = Vec::new();
        let mut total_words = 0u64;
        for t in texts {
            for w in words(t) {
                total_words += 1;
                let next = seen.len() as u32;
                let id = *seen.entry(w).or_insert(next);
                if id == next {
                    counts.push(0);
                }
                counts[id as usize] += 1;
                tokens.push(id);
            }
            text_ends.push(tokens.len());
        }
        let trained_on = text_ends.len() as u64;
        let mut vocab: Vec<(String, u32)> = seen
            .into_iter()
            .filter(|(w, id)| {
                counts[*id as usize] >= opts.min_count
                    && w.chars().any(|ch| ch.is_alphabetic())
                    && !STOPWORDS.contains(&w.as_str())
            })
            .collect();
        vocab.sort_by(|a, b| {
            counts[b.1 as usize]
                .cmp(&counts[a.1 as usize])
                .then_with(|| a.0.cmp(&b.0))
        });
        vocab.truncate(opts.max_vocab);
        if vocab.len() < 8 {
            return Err(IndexError::Embed(format!(
                "too little text to learn word vectors from ({} distinct words seen at least {} times; need 8)",
                vocab.len(),
                opts.min_count
            )));
        }
        // A word's number in the vocabulary, by its number of first sight.
        let mut in_vocab: Vec<Option<u32>> = vec![None; counts.len()];
        for (i, (_, id)) in vocab.iter().enumerate() {
            in_vocab[*id as usize] = Some(i as u32);
        }
        let n = vocab.len();

        // Co-occurrences within the window, weighted by 1/distance, symmetric.
        let mut pairs: HashMap<u64, f32, _> = HashMap::with_hasher(hasher);
        let mut start = 0;
        let mut ids: Vec<u32> = Vec::new();
        for end in text_ends {
            ids.clear();
            ids.extend(
                tokens[start..end]
                    .iter()
                    .filter_map(|&t| in_vocab[t as usize]),
            );
            start = end;
            for (i, &a) in ids.iter().enumerate() {
                for (d, &b) in ids[i + 1..].iter().take(opts.window).enumerate() {
                    if a == b {
                        continue;
                    }
                    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
                    *pairs.entry(((lo as u64) << 32) | hi as u64).or_default() +=
                        1.0 / (d + 1) as f32;
                }
            }
        }
        // Sorted, so sums run in one order and training is reproducible.
        let mut pairs: Vec<(u64, f32)> = pairs.into_iter().collect();
        pairs.sort_unstable_by_key(|p| p.0);
        let mut row_sum = vec![0.0f64; n];
        for &(key, c) in &pairs {
            row_sum[(key >> 32) as usize] += f64::from(c);
            row_sum[(key & 0xffff_ffff) as usize] += f64::from(c);
        }
        let ctx: Vec<f64> = row_sum.iter().map(|c| c.powf(0.75)).collect();
        let ctx_total: f64 = ctx.iter().sum();

        // PPMI as a symmetric sparse matrix.
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        for &(key, c) in &pairs {
            let (a, b) = ((key >> 32) as usize, (key & 0xffff_ffff) as usize);
            let pmi_ab = (f64::from(c) * ctx_total / (row_sum[a] * ctx[b])).ln();
            let pmi_ba = (f64::from(c) * ctx_total / (row_sum[b] * ctx[a])).ln();
            let pmi = 0.5 * (pmi_ab + pmi_ba);
            if pmi > 0.0 {
                rows[a].push((b as u32, pmi as f32));
                rows[b].push((a as u32, pmi as f32));
            }
        }
        let mut csr = Csr {
            n,
            row_start: Vec::with_capacity(n + 1),
            cols: Vec::new(),
            vals: Vec::new(),
        };
        csr.row_start.push(0);
        for mut r in rows {
            r.sort_by_key(|e| e.0);
            for (c, v) in r {
                csr.cols.push(c);
                csr.vals.push(v);
            }
            csr.row_start.push(csr.cols.len());
        }

        let dim = opts.dim.min(n.saturating_sub(1)).max(1);
        let (values, u) = top_eigen(&csr, dim, 3, 0x5eed);
        let mut vectors = vec![0.0f32; n * dim];
        for r in 0..n {
            let row = &mut vectors[r * dim..(r + 1) * dim];
            for (c, x) in row.iter_mut().enumerate() {
                *x = u.data[r * dim + c] * (values[c].max(0.0).sqrt() as f32);
            }
            normalise(row);
        }
        let weights = vocab
            .iter()
            .map(|(_, id)| {
                SIF_A / (SIF_A + counts[*id as usize] as f32 / total_words.max(1) as f32)
            })
            .collect();
        let params = Params {
            dim,
            trained_on,
            vocab: vocab.into_iter().map(|(w, _)| w).collect(),
            weights,
            vectors,
        };
        Ok(CooccurrenceEmbedder::from_params(params))
    }

    fn from_params(params: Params) -> CooccurrenceEmbedder {
        let index = params
            .vocab
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i as u32))
            .collect();
        let mut h = Fnv::new();
        h.write(&(params.dim as u64).to_le_bytes());
        for w in &params.vocab {
            h.write(w.as_bytes());
            h.write(&[0]);
        }
        for x in &params.vectors {
            h.write(&x.to_le_bytes());
        }
        let model_id = format!(
            "lore-cooccurrence-{}d-{}w-{:016x}",
            params.dim,
            params.vocab.len(),
            h.0
        );
        CooccurrenceEmbedder {
            params,
            index,
            model_id,
        }
    }

    /// The parameters as stored in the lore file.
    pub fn to_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(&self.params).expect("in-memory encoding cannot fail")
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<CooccurrenceEmbedder, IndexError> {
        let params: Params = postcard::from_bytes(bytes).map_err(|e| IndexError::Corrupt {
            what: "stored built-in embedder".into(),
            source: e.into(),
        })?;
        if params.vectors.len() != params.vocab.len() * params.dim {
            return Err(IndexError::Embed(
                "stored built-in embedder is corrupt: matrix size does not match".into(),
            ));
        }
        Ok(CooccurrenceEmbedder::from_params(params))
    }

    /// How many texts it was trained on.
    pub fn trained_on(&self) -> u64 {
        self.params.trained_on
    }

    /// The vector of one known word.
    pub fn word_vector(&self, word: &str) -> Option<&[f32]> {
        let d = self.params.dim;
        self.index
            .get(word)
            .map(|&i| &self.params.vectors[i as usize * d..(i as usize + 1) * d])
    }

    fn embed_one(&self, text: &str) -> Vec<f32> {
        let d = self.params.dim;
        let mut v = vec![0.0f32; d];
        for w in words(text) {
            if let Some(&i) = self.index.get(&w) {
                let weight = self.params.weights[i as usize];
                let row = &self.params.vectors[i as usize * d..(i as usize + 1) * d];
                for (o, x) in v.iter_mut().zip(row) {
                    *o += weight * x;
                }
            }
        }
        normalise(&mut v);
        v
    }
}

impl Embedder for CooccurrenceEmbedder {
    fn model_id(&self) -> &str {
        &self.model_id
    }

    fn dim(&self) -> usize {
        self.params.dim
    }

    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError> {
        use rayon::prelude::*;
        Ok(texts.par_iter().map(|t| self.embed_one(t)).collect())
    }

    fn batch_size(&self) -> usize {
        1024
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::embed::cosine;

    fn corpus() -> Vec<String> {
        let mut texts = Vec::new();
        for i in 0..60 {
            texts.push(format!(
                "free the kv cache blocks when the request finishes {i} block allocator frees cache"
            ));
            texts.push(format!(
                "tokenizer decodes utf8 bytes into text {i} detokenize decode strings"
            ));
            texts.push(format!(
                "cuda out of memory when the gpu allocator runs out {i} oom memory gpu"
            ));
        }
        texts
    }

    #[test]
    fn words_that_share_contexts_are_closer_than_words_that_do_not() {
        let texts = corpus();
        let e = CooccurrenceEmbedder::train(
            texts.iter().map(String::as_str),
            TrainOptions {
                dim: 8,
                ..TrainOptions::default()
            },
        )
        .unwrap();
        let v = |w: &str| e.word_vector(w).unwrap().to_vec();
        assert!(cosine(&v("cache"), &v("blocks")) > cosine(&v("cache"), &v("tokenizer")));
        let q = e
            .embed(&["kv cache block", "decode utf8 text", "gpu oom"])
            .unwrap();
        let d = e.embed(&["allocator frees blocks"]).unwrap();
        assert!(cosine(&q[0], &d[0]) > cosine(&q[1], &d[0]));
        for v in &q {
            let n: f32 = v.iter().map(|x| x * x).sum();
            assert!((n - 1.0).abs() < 1e-4);
        }
    }

    #[test]
    fn training_is_deterministic_and_round_trips() {
        let texts = corpus();
        let opts = TrainOptions {
            dim: 8,
            ..TrainOptions::default()
        };
        let a = CooccurrenceEmbedder::train(texts.iter().map(String::as_str), opts).unwrap();
        let b = CooccurrenceEmbedder::train(texts.iter().map(String::as_str), opts).unwrap();
        assert_eq!(a.model_id(), b.model_id());
        let c = CooccurrenceEmbedder::from_bytes(&a.to_bytes()).unwrap();
        assert_eq!(a.model_id(), c.model_id());
        assert_eq!(a.embed(&["cache"]).unwrap(), c.embed(&["cache"]).unwrap());
        assert!(CooccurrenceEmbedder::from_bytes(b"junk").is_err());
    }

    #[test]
    fn too_little_text_is_a_clear_error() {
        let err = CooccurrenceEmbedder::train(["one two"].into_iter(), TrainOptions::default())
            .err()
            .unwrap();
        assert!(err.to_string().contains("too little text"), "{err}");
    }
}
