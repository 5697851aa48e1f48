//! Embedders: text → unit vectors. Every vector is stored under its embedder's model id, so
//! vectors of two embedders are never compared.
//!
//! - [`CooccurrenceEmbedder`], the built-in default: word vectors learned from the lore file's own
//!   text (PPMI of co-occurrences, factored by a randomized SVD), averaged with SIF weights. It
//!   needs no downloaded weights and knows the project's vocabulary (`kv`, `block`, `oom`).
//! - [`BertEmbedder`]: a BERT-family sentence encoder from a local Hugging Face directory
//!   (`config.json`, `tokenizer.json`, `model.safetensors`), run by candle on the CPU or a CUDA
//!   GPU, mean-pooled and normalised.

mod bert;
mod cooccur;
mod linalg;

/// Seeded randomness: unit vectors for tests and benchmarks, and the generator (also what
/// `adapt` initialises and shuffles with).
pub mod random {
    pub use super::linalg::SplitMix;

    /// `n` random unit vectors of `dim` dimensions, the same for the same seed.
    pub fn unit_vectors(n: usize, dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let mut rng = super::linalg::SplitMix(seed);
        (0..n)
            .map(|_| {
                let mut v: Vec<f32> = (0..dim).map(|_| rng.normal()).collect();
                super::normalise(&mut v);
                v
            })
            .collect()
    }
}

use serde::{Deserialize, Serialize};

pub use bert::{BertEmbedder, Device};
pub use cooccur::{CooccurrenceEmbedder, TrainOptions};

/// Settings of the built-in embedder as lore trains it.
pub fn cooccur_options() -> TrainOptions {
    TrainOptions::default()
}

use super::IndexError;

/// Turns texts into unit vectors of one fixed dimension.
pub trait Embedder: Send + Sync {
    /// Names the model and its weights; vectors are stored and compared only under this id.
    fn model_id(&self) -> &str;
    fn dim(&self) -> usize;
    /// One unit vector per text (all zeros when a text has nothing the model knows).
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, IndexError>;
    /// Texts per call that keep the model efficient.
    fn batch_size(&self) -> usize {
        64
    }
}

/// How to rebuild an embedder, as recorded in the lore file under its model id.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum EmbedderSpec {
    /// The built-in embedder's own parameters, kept whole in the file.
    Cooccurrence(Vec<u8>),
    /// A model directory on this machine, read again when a query needs to embed text.
    Bert { dir: String },
}

impl EmbedderSpec {
    pub fn load(&self, device: Device) -> Result<Box<dyn Embedder>, IndexError> {
        match self {
            EmbedderSpec::Cooccurrence(bytes) => {
                Ok(Box::new(CooccurrenceEmbedder::from_bytes(bytes)?))
            }
            EmbedderSpec::Bert { dir } => Ok(Box::new(BertEmbedder::load(
                std::path::Path::new(dir),
                device,
            )?)),
        }
    }
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    dot(a, b)
}

/// The dot product, summed in eight lanes so the compiler can use vector instructions (a
/// single running sum is one long chain of dependent additions).
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let mut sum = lanes.iter().sum::<f32>();
    for (x, y) in ra.iter().zip(rb) {
        sum += x * y;
    }
    sum
}

/// Scale `v` to unit length (left as is when it is zero).
pub fn normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_in_lanes_is_the_dot_product() {
        for n in [0usize, 1, 7, 8, 9, 128, 203] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) / 7.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13 % 17) as f32 - 8.0) / 9.0).collect();
            let plain: f64 = a.iter().zip(&b).map(|(x, y)| f64::from(x * y)).sum();
            assert!(
                (f64::from(super::dot(&a, &b)) - plain).abs() < 1e-4,
                "n = {n}"
            );
        }
        assert_eq!(
            super::dot(&[1.0, 2.0, 3.0], &[1.0, 1.0]),
            3.0,
            "the shorter length"
        );
    }
}
