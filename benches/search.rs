//! The index stage's speed and quality on a lore file, each against a baseline in the same run:
//!
//! 0. building the full-text index of every document: into the redb-backed directory, against
//!    the same code writing to tantivy's RAM directory and to its memory-mapped directory;
//! 1. full-text top-10: `TextIndex::search` (analysis, query, search, node ids, from the index
//!    kept in the lore file) against standalone tantivy running the same query on the same index
//!    exported to a memory-mapped directory (p50 and p99; the top hits must agree);
//! 2. ANN: recall@10 of the HNSW graph against an exact scan of the same vectors (a partial
//!    top-k selection, not a full sort), for held-out queries (the first eight words of sampled
//!    documents, embedded at run time: texts the index does not hold), and p50 of
//!    both, per kind with a graph;
//! 3. embedding throughput: the built-in embedder, and a candle BERT of MiniLM's shape (6 layers,
//!    384 wide, random weights), on the CPU. Its WordPiece tokenizer is trained on the texts it
//!    embeds, so it cuts them into fewer tokens than a real 30k vocabulary would: texts/s here
//!    is an upper bound for a real MiniLM on the same text.
//!
//! ```text
//! LORE_BENCH_KB=peft.lore cargo bench --bench search
//! LORE_BENCH_KB=peft.lore LORE_BENCH_SKIP_BERT=1 cargo bench --bench search
//! ```
//!
//! Without `LORE_BENCH_KB` it runs on the fixture (too small for the graph to be used).

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use lore::index::documents;
use lore::index::embed::{BertEmbedder, Device as LoreDevice, Embedder};
use lore::index::text::{analyzer, TextFilter, TextIndex, ANALYZER};
use lore::index::vectors::VECTOR_KINDS;
use lore::index::Indexes;
use lore::progress::Silent;
use lore::store::{NodeKind, Store};
use tantivy::collector::TopDocs;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// The exact `k` nearest by cosine: a scan with a partial selection (no full sort).
fn exact_top(vectors: &lore::index::vectors::KindVectors, q: &[f32], k: usize) -> Vec<(u64, f32)> {
    let mut scored: Vec<(u64, f32)> = vectors
        .iter()
        .map(|(n, v)| (n, lore::index::embed::cosine(q, v)))
        .collect();
    let by_score = |a: &(u64, f32), b: &(u64, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if scored.len() > k {
        scored.select_nth_unstable_by(k - 1, by_score);
        scored.truncate(k);
    }
    scored.sort_by(by_score);
    scored
}

fn time_ms<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64() * 1000.0)
}

fn fixture_kb(dir: &Path) -> PathBuf {
    let repo = dir.join("fixture");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert!(std::process::Command::new("bash")
        .arg(root.join("fixtures/make-repo.sh"))
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let kb = dir.join("fixture.lore");
    let lore = env!("CARGO_BIN_EXE_lore");
    let run = |args: &[&str]| {
        assert!(std::process::Command::new(lore)
            .args(["--kb", kb.to_str().unwrap(), "-q"])
            .args(args)
            .status()
            .unwrap()
            .success())
    };
    run(&["ingest", repo.to_str().unwrap()]);
    run(&[
        "import",
        "issues",
        root.join("fixtures/issues/github.json").to_str().unwrap(),
    ]);
    kb
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let kb = match std::env::var_os("LORE_BENCH_KB") {
        Some(p) => PathBuf::from(p),
        None => fixture_kb(tmp.path()),
    };
    let store = Store::open(&kb).unwrap();
    let indexes = Indexes::open(&store).unwrap();
    let read = store.read().unwrap();
    let docs = documents::collect(&read, &[NodeKind::Issue, NodeKind::Commit]).unwrap();
    // Queries: the titles of up to 300 issues and commits, spread over the file.
    let step = (docs.len() / 300).max(1);
    let queries: Vec<String> = docs
        .iter()
        .step_by(step)
        .map(|d| d.title.clone())
        .filter(|t| !t.trim().is_empty())
        .take(300)
        .collect();
    println!(
        "{}: {} documents in the text index, {} queries",
        kb.display(),
        indexes.text.len(),
        queries.len()
    );

    // 0. Building the text index, per directory.
    {
        let scratch = |name: &str| {
            let path = tmp.path().join(name);
            lore::store::Db::from_database(redb::Database::create(&path).unwrap(), &path)
        };

        let db = scratch("redb-dir.redb");
        let dir = lore::index::text::RedbDirectory::open(db.clone()).unwrap();
        let (_, redb_ms) = time_ms(|| {
            TextIndex::open_in(db, dir)
                .unwrap()
                .update(&store, &Silent)
                .unwrap()
        });
        let (_, ram_ms) = time_ms(|| {
            TextIndex::open_in(
                scratch("ram.redb"),
                tantivy::directory::RamDirectory::create(),
            )
            .unwrap()
            .update(&store, &Silent)
            .unwrap()
        });
        let mmap_path = tmp.path().join("mmap-index");
        std::fs::create_dir_all(&mmap_path).unwrap();
        let (_, mmap_ms) = time_ms(|| {
            let mmap = tantivy::directory::MmapDirectory::open(&mmap_path).unwrap();
            TextIndex::open_in(scratch("mmap.redb"), mmap)
                .unwrap()
                .update(&store, &Silent)
                .unwrap()
        });
        println!(
            "building the text index: redb directory {:.0} ms; tantivy RAM directory {:.0} ms ({:.2}x); tantivy mmap directory {:.0} ms ({:.2}x)",
            redb_ms,
            ram_ms,
            redb_ms / ram_ms,
            mmap_ms,
            redb_ms / mmap_ms
        );
    }

    // 1. Full text, lore against standalone tantivy on the same index.
    let export = tmp.path().join("tantivy");
    std::fs::create_dir_all(&export).unwrap();
    indexes.text.export(&export).unwrap();
    let standalone = tantivy::Index::open_in_dir(&export).unwrap();
    standalone.tokenizers().register(ANALYZER, analyzer());
    let reader = standalone.reader().unwrap();
    let filter = TextFilter::default();
    let mut lore_ms = Vec::new();
    let mut direct_ms = Vec::new();
    let mut same_top1 = 0;
    for round in 0..3 {
        for q in &queries {
            let (hits, ms) = time_ms(|| indexes.search_text(q, &filter, 10).unwrap());
            let (top, dms) = time_ms(|| {
                let searcher = reader.searcher();
                let query = indexes.text.query(q, &filter);
                let top = searcher
                    .search(&query, &TopDocs::with_limit(10).order_by_score())
                    .unwrap();
                top.into_iter()
                    .map(|(_, addr)| {
                        searcher
                            .segment_reader(addr.segment_ord)
                            .fast_fields()
                            .u64("node")
                            .unwrap()
                            .first(addr.doc_id)
                            .unwrap()
                    })
                    .collect::<Vec<u64>>()
            });
            if round > 0 {
                lore_ms.push(ms);
                direct_ms.push(dms);
                let ours: Vec<u64> = hits.iter().map(|h| h.node.0).collect();
                same_top1 += usize::from(ours == top);
            }
        }
    }
    lore_ms.sort_by(f64::total_cmp);
    direct_ms.sort_by(f64::total_cmp);
    let (l50, d50) = (percentile(&lore_ms, 0.5), percentile(&direct_ms, 0.5));
    println!(
        "full text top-10: lore p50 {l50:.3} ms p99 {:.3} ms; tantivy p50 {d50:.3} ms p99 {:.3} ms; ratio {:.2}x (same top 10 in {:.0}% of queries)",
        percentile(&lore_ms, 0.99),
        percentile(&direct_ms, 0.99),
        l50 / d50,
        100.0 * same_top1 as f64 / lore_ms.len() as f64
    );

    // 2. ANN against exact search.
    let model = indexes.vectors.active_model().unwrap();
    if let Some(model) = &model {
        for kind in VECTOR_KINDS {
            let kv = indexes.vectors.kind(model, kind).unwrap();
            if kv.is_empty() {
                println!("vectors {}: none", kind.plural());
                continue;
            }
            let mut ids: Vec<u64> = kv.iter().map(|(n, _)| n).collect();
            ids.sort_unstable();
            let sample: Vec<u64> = ids
                .iter()
                .step_by((ids.len() / 200).max(1))
                .copied()
                .take(200)
                .collect();
            // Held-out queries: the first eight words of a sampled document, embedded now, a
            // text the index does not hold (its own vector would be its own best match).
            let of_kind = documents::collect(&read, &[kind]).unwrap();
            let by_node: std::collections::HashMap<u64, &lore::index::Document> =
                of_kind.iter().map(|d| (d.node.0, d)).collect();
            let queries: Vec<Vec<f32>> = sample
                .iter()
                .filter_map(|id| by_node.get(id))
                .map(|d| {
                    let text = d.full_text();
                    let words: Vec<&str> = text.split_whitespace().take(8).collect();
                    indexes.embed_text(&words.join(" ")).unwrap()
                })
                .collect();
            let (mut found, mut total) = (0usize, 0usize);
            let (mut ann_ms, mut exact_ms) = (Vec::new(), Vec::new());
            for q in &queries {
                let (ann, a) = time_ms(|| kv.nearest(q, 10, &mut |_| true));
                let (exact, e) = time_ms(|| exact_top(&kv, q, 10));
                ann_ms.push(a);
                exact_ms.push(e);
                total += exact.len();
                found += ann
                    .iter()
                    .filter(|x| exact.iter().any(|y| y.0 == x.0 .0))
                    .count();
            }
            ann_ms.sort_by(f64::total_cmp);
            exact_ms.sort_by(f64::total_cmp);
            println!(
                "{} {}: {} vectors of {} dims, {} held-out queries, recall@10 {:.3}, p50 {:.3} ms (exact scan with top-k selection p50 {:.3} ms, {:.1}x)",
                if kv.has_graph() { "ANN (graph)" } else { "no graph (lore's exact scan)" },
                kind.plural(),
                kv.len(),
                queries.len(),
                kv.dim(),
                found as f64 / total.max(1) as f64,
                percentile(&ann_ms, 0.5),
                percentile(&exact_ms, 0.5),
                percentile(&exact_ms, 0.5) / percentile(&ann_ms, 0.5)
            );
        }
    }

    // 3. Embedding throughput.
    let texts: Vec<String> = docs.iter().take(2000).map(|d| d.full_text()).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    if let Some(model) = &model {
        let embedder = indexes.embedder().unwrap();
        let (_, ms) = time_ms(|| {
            for chunk in refs.chunks(embedder.batch_size()) {
                embedder.embed(chunk).unwrap();
            }
        });
        println!(
            "embedding, {model}: {} texts in {:.1} ms, {:.0} texts/s",
            refs.len(),
            ms,
            refs.len() as f64 / (ms / 1000.0)
        );
    }
    if std::env::var_os("LORE_BENCH_SKIP_BERT").is_none() {
        let dir = tmp.path().join("minilm-shaped");
        minilm_shaped(&dir, &texts);
        let bert = BertEmbedder::load(&dir, LoreDevice::Cpu).unwrap();
        let sample = &refs[..refs.len().min(256)];
        bert.embed(&sample[..8.min(sample.len())]).unwrap();
        let (_, ms) = time_ms(|| {
            for chunk in sample.chunks(bert.batch_size()) {
                bert.embed(chunk).unwrap();
            }
        });
        println!(
            "embedding, candle BERT of MiniLM's shape (6x384, up to 256 tokens) on {} threads: {} texts in {:.1} ms, {:.1} texts/s",
            std::thread::available_parallelism().map_or(1, |n| n.get()),
            sample.len(),
            ms,
            sample.len() as f64 / (ms / 1000.0)
        );
    }
}

/// A MiniLM-L6-sized BERT with random weights and a tokenizer trained on `texts`.
fn minilm_shaped(dir: &Path, texts: &[String]) {
    use tokenizers::models::wordpiece::{WordPiece, WordPieceTrainer};
    use tokenizers::normalizers::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    use tokenizers::{AddedToken, TokenizerBuilder};
    std::fs::create_dir_all(dir).unwrap();
    let corpus = dir.join("corpus.txt");
    std::fs::write(&corpus, texts.join("\n")).unwrap();
    let special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"];
    let mut trainer = WordPieceTrainer::builder()
        .vocab_size(30522)
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
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
    let config = serde_json::json!({
        "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
        "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0, "max_position_embeddings": 512, "type_vocab_size": 2,
        "initializer_range": 0.02, "layer_norm_eps": 1e-12, "pad_token_id": 0,
        "model_type": "bert"
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let config: Config = serde_json::from_value(config).unwrap();
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb, &config).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}
