//! Export throughput: a whole `lore export` (issue_fix, oracle context) in examples/s, and
//! tokenization + packing of its examples in tokens/s against Hugging Face's Python
//! `tokenizers` (`encode_batch`, `benches/tokenize_baseline.py`) on the same texts with the
//! same tokenizer.json, in the same run. Both sides use every core (rayon underneath both).
//! The token totals must agree: the Python side is the oracle for lore's counts.
//!
//! ```text
//! cargo bench --bench export                                  # the fixture
//! LORE_BENCH_KB=peft.lore cargo bench --bench export          # a real repository
//! LORE_BENCH_QUERY='issues fixed_by commit' LORE_BENCH_TOKENIZER=dir cargo bench --bench export
//! LORE_BENCH_KB=cargo.lore LORE_BENCH_QUERY=commits LORE_BENCH_TEMPLATE=commit_message cargo bench --bench export
//! ```
//!
//! Without `LORE_BENCH_TOKENIZER` a byte-level BPE tokenizer (32,000 tokens) is trained on the
//! examples' own text first. Without python3 and its `tokenizers`, only lore's side runs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use lore::export::shards::{self, Texts, TokenizerDir};
use lore::export::{Context, ExportOptions, Split, Template};
use lore::kb::Kb;
use lore::progress::Silent;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, TokenizerBuilder};

fn fixture_kb(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let repo = dir.join("fixture");
    assert!(Command::new("bash")
        .arg(root.join("fixtures/make-repo.sh"))
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let kb = dir.join("fixture.lore");
    let lore = env!("CARGO_BIN_EXE_lore");
    let run = |args: &[&str]| {
        assert!(Command::new(lore)
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

/// A byte-level BPE tokenizer trained on `corpus`, with `<|endoftext|>` as its end token.
fn train_tokenizer(dir: &Path, corpus: &Path) {
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(32_000)
        .special_tokens(vec![AddedToken::from("<|endoftext|>", true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .show_progress(false)
        .build();
    let mut tokenizer: tokenizers::TokenizerImpl<
        BPE,
        tokenizers::NormalizerWrapper,
        ByteLevel,
        tokenizers::PostProcessorWrapper,
        ByteLevel,
    > = TokenizerBuilder::new()
        .with_model(BPE::default())
        .with_normalizer(None)
        .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
        .with_post_processor(None)
        .with_decoder(Some(ByteLevel::new(false, true, true)))
        .build()
        .unwrap();
    tokenizer
        .train_from_files(&mut trainer, vec![corpus.to_string_lossy().into_owned()])
        .unwrap();
    tokenizer.save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"eos_token": "<|endoftext|>"}"#,
    )
    .unwrap();
}

fn main() {
    let tmp = tempfile::tempdir().unwrap();
    let kb_path = match std::env::var_os("LORE_BENCH_KB") {
        Some(p) => PathBuf::from(p),
        None => fixture_kb(tmp.path()),
    };
    let query = std::env::var("LORE_BENCH_QUERY").unwrap_or_else(|_| "issues".into());
    let template_name = std::env::var("LORE_BENCH_TEMPLATE").unwrap_or_else(|_| "issue_fix".into());
    let kb = Kb::open(&kb_path).unwrap();
    let template = Template::built_in(&template_name).unwrap();
    let out = tmp.path().join("export");
    let options = ExportOptions {
        name: "bench".into(),
        out: out.clone(),
        force: true,
        tokenizer: None,
        seq_len: 4096,
        split: Split::Fraction { val: 0.05 },
        context: Context::Oracle { tokens: 1536 },
        min_quality: 0.0,
        newer_than: None,
        dry_run: false,
        seed: 0,
        swebench: false,
    };
    // Warm the page cache and the repository's object cache, then time a whole export.
    let mut best = f64::MAX;
    let mut report = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = kb
            .export(&query, &template, &options, false, &Silent)
            .unwrap();
        best = best.min(t.elapsed().as_secs_f64());
        report = Some(r);
    }
    let m = report.unwrap().manifest;
    let n = m.counts.train + m.counts.val;
    println!("lore file: {}", kb_path.display());
    println!(
        "export `{query}` ({template_name}, oracle context): {} rows -> {n} examples in {:.3} s = {:.0} examples/s (best of 3)",
        m.counts.rows,
        best,
        n as f64 / best
    );

    // The same examples' texts, tokenized.
    let mut texts = Vec::new();
    for split in ["train", "val"] {
        let lines = std::fs::read_to_string(out.join(format!("{split}.jsonl"))).unwrap();
        for l in lines.lines() {
            let e: serde_json::Value = serde_json::from_str(l).unwrap();
            texts.push((
                e["prompt"].as_str().unwrap().to_string(),
                e["completion"].as_str().unwrap().to_string(),
            ));
        }
    }
    let tok_dir = match std::env::var_os("LORE_BENCH_TOKENIZER") {
        Some(p) => PathBuf::from(p),
        None => {
            let corpus = tmp.path().join("corpus.txt");
            let all: String = texts.iter().map(|(p, c)| format!("{p}\n{c}\n")).collect();
            std::fs::write(&corpus, all).unwrap();
            let dir = tmp.path().join("tokenizer");
            std::fs::create_dir_all(&dir).unwrap();
            train_tokenizer(&dir, &corpus);
            dir
        }
    };
    let tok = TokenizerDir::load(&tok_dir).unwrap();
    let lore_texts: Vec<Texts> = texts
        .iter()
        .map(|(p, c)| Texts {
            prompt: p.clone(),
            completion: format!("\n{c}"),
            templated: false,
        })
        .collect();
    let run = || {
        let tokens = shards::tokenize(&tok, &lore_texts).unwrap();
        let total: usize = tokens
            .iter()
            .map(|t| t.prompt.len() + t.completion.len())
            .sum();
        let (docs, _) = shards::fit(&tokens, 4096);
        let lengths: Vec<usize> = docs.iter().map(|d| d.1.len()).collect();
        let rows = shards::pack(&lengths, 4096);
        (total, rows.len())
    };
    run();
    let mut best = f64::MAX;
    let mut total = 0;
    for _ in 0..5 {
        let t = Instant::now();
        total = run().0;
        best = best.min(t.elapsed().as_secs_f64());
    }
    let lore_rate = total as f64 / best;
    println!(
        "lore tokenize + pack: {total} tokens of {} examples in {:.4} s = {:.0} tokens/s (best of 5, {} threads)",
        texts.len(),
        best,
        lore_rate,
        rayon::current_num_threads()
    );

    // The baseline, on the same texts (the completion with the newline lore puts before it).
    let texts_file = tmp.path().join("texts.jsonl");
    let lines: String = texts
        .iter()
        .map(|(p, c)| {
            serde_json::json!({"prompt": p, "completion": format!("\n{c}")}).to_string() + "\n"
        })
        .collect();
    std::fs::write(&texts_file, lines).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/tokenize_baseline.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(tok_dir.join("tokenizer.json"))
        .arg(&texts_file)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            let py_tokens = v["tokens"].as_u64().unwrap();
            let py_rate = v["tokens_per_s"].as_f64().unwrap();
            assert_eq!(
                py_tokens as usize, total,
                "lore and Python tokenizers disagree on the token count"
            );
            println!(
                "python tokenizers encode_batch: {py_tokens} tokens in {:.4} s = {py_rate:.0} tokens/s (best of 5)",
                v["seconds"].as_f64().unwrap()
            );
            println!(
                "lore / python: {:.2}x (token counts agree)",
                lore_rate / py_rate
            );
        }
        Ok(o) => println!(
            "python baseline skipped: {}",
            String::from_utf8_lossy(&o.stderr)
                .lines()
                .last()
                .unwrap_or("")
        ),
        Err(e) => println!("python baseline skipped: {e}"),
    }
}
