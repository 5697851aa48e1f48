//! The candle BERT embedder on a tiny model made here: a BERT config, random weights saved as
//! safetensors by candle, and a WordPiece tokenizer trained on a few sentences. Checks shapes,
//! unit length, determinism, batching, the model id, and clear errors for a broken directory.

use std::path::Path;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use lore::index::embed::{BertEmbedder, Device as LoreDevice, Embedder};
use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{AddedToken, TokenizerBuilder};

const HIDDEN: usize = 32;

const CORPUS: &str = "double free in free_blocks when sequences fork
the scheduler crashes when the waiting queue is empty
cuda out of memory when the block table grows
support head size 256 in paged attention
kv cache memory grows without bound
the worker should manage kv cache blocks itself
tokenizer panics on empty input
build fails with nvcc 12.4
";

/// Write a tiny BERT model directory into `dir`; `seed_shift` changes the weights.
pub fn tiny_bert(dir: &Path, layers: usize) {
    std::fs::create_dir_all(dir).unwrap();
    // Tokenizer, trained on the corpus.
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, CORPUS.repeat(4)).unwrap();
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut trainer = WordPieceTrainer::builder()
        .vocab_size(300)
        .special_tokens(special.iter().map(|t| AddedToken::from(*t, true)).collect())
        .build();
    let mut tokenizer = TokenizerBuilder::new()
        .with_model(
            WordPiece::builder()
                .unk_token("[UNK]".into())
                .build()
                .unwrap(),
        )
        .with_normalizer(Some(BertNormalizer::default()))
        .with_pre_tokenizer(Some(BertPreTokenizer))
        .with_post_processor(Some(BertProcessing::new(
            ("[SEP]".into(), 3),
            ("[CLS]".into(), 2),
        )))
        .with_decoder(None::<tokenizers::decoders::wordpiece::WordPiece>)
        .build()
        .unwrap();
    tokenizer
        .train_from_files(&mut trainer, vec![corpus.to_string_lossy().into_owned()])
        .unwrap();
    assert_eq!(tokenizer.token_to_id("[CLS]"), Some(2));
    assert_eq!(tokenizer.token_to_id("[SEP]"), Some(3));
    let vocab = tokenizer.get_vocab_size(true);
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();

    // Config and random weights.
    let config = serde_json::json!({
        "vocab_size": vocab,
        "hidden_size": HIDDEN,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "max_position_embeddings": 64,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let config: Config = serde_json::from_value(config).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &config).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

#[test]
fn tiny_bert_gives_deterministic_unit_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny-bert");
    tiny_bert(&dir, 2);
    let e = BertEmbedder::load(&dir, LoreDevice::Cpu).unwrap();
    assert_eq!(e.dim(), HIDDEN);
    assert!(
        e.model_id().starts_with("bert-tiny-bert-"),
        "{}",
        e.model_id()
    );

    let texts = [
        "double free in free_blocks",
        "cuda out of memory when the block table grows and grows",
        "",
    ];
    let batch = e.embed(&texts).unwrap();
    assert_eq!(batch.len(), 3);
    for v in &batch {
        assert_eq!(v.len(), HIDDEN);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
    }
    // Padding in a batch does not change a text's vector; neither does loading again.
    let alone = e.embed(&texts[..1]).unwrap();
    for (a, b) in alone[0].iter().zip(&batch[0]) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }
    let again = BertEmbedder::load(&dir, LoreDevice::Cpu).unwrap();
    assert_eq!(again.model_id(), e.model_id());
    assert_eq!(again.embed(&texts).unwrap(), batch);
    // Different texts, different vectors.
    assert_ne!(batch[0], batch[1]);

    // Other weights, another model id.
    let other_dir = tmp.path().join("tiny-bert-3");
    tiny_bert(&other_dir, 3);
    let other = BertEmbedder::load(&other_dir, LoreDevice::Cpu).unwrap();
    assert_ne!(other.model_id(), e.model_id());
}

#[test]
fn a_broken_model_directory_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let err = BertEmbedder::load(tmp.path(), LoreDevice::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("has no config.json"), "{err}");
    let dir = tmp.path().join("m");
    tiny_bert(&dir, 1);
    std::fs::write(dir.join("config.json"), "{\"hidden_size\": 3}").unwrap();
    let err = BertEmbedder::load(&dir, LoreDevice::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("config.json is not a BERT config"), "{err}");
}
