//! `lore adapt` on the fixture with a tiny model: LoRA gradients against finite differences
//! (the check on the hand-written backward: a wrong or missing gradient fails it), B = 0
//! equals the base model, packed documents kept apart, save → load bit for bit, overfitting a tiny export, continual
//! runs that start from their parent, kill -9 then `--resume`, and bad input.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use lore::adapt::config::ModelDir;
use lore::adapt::data::{self, ExportData};
use lore::adapt::lineage::AdapterRecord;
use lore::adapt::lora::{LoraConfig, LoraSet, SplitMix, ALL_TARGETS};
use lore::adapt::model::{Batch, Model};
use lore::adapt::tiny::{init_tiny, TinyShape};
use lore::adapt::train::TrainConfig;
use lore::adapt::{AdaptOptions, AdaptReport};
use lore::export::{Context, ExportOptions, Split, Template};
use lore::kb::adapt::AdaptData;
use lore::kb::Kb;
use lore::progress::Silent;
use lore::Error;

use crate::common::{lore, stderr, stdout, Fixture};
use crate::queries::fixture_kb;

/// The fixture's lore file, a tiny model made from it, and two exports of commit messages: the
/// commits before 2024-01-20, and all of them.
struct Setup {
    _fixture: Fixture,
    _dir: tempfile::TempDir,
    kb: PathBuf,
    model: PathBuf,
    early: PathBuf,
    all: PathBuf,
    /// Four commits.
    four: PathBuf,
}

const EARLY: &str = "commits where merge = false until 2024-01-19";
const ALL: &str = "commits where merge = false";
const FOUR: &str = "commits where merge = false until 2024-01-19 limit 4";

pub(crate) fn tiny_shape() -> TinyShape {
    TinyShape {
        vocab: 512,
        hidden: 64,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        intermediate: 128,
        max_positions: 1024,
    }
}

fn export(kb: &Kb, query: &str, model: &Path, out: &Path) {
    let options = ExportOptions {
        name: "adapt-test".into(),
        out: out.to_path_buf(),
        force: true,
        tokenizer: Some(model.to_path_buf()),
        seq_len: 256,
        split: Split::Fraction { val: 0.2 },
        context: Context::Oracle { tokens: 256 },
        min_quality: 0.0,
        newer_than: None,
        dry_run: false,
        seed: 0,
        swebench: false,
    };
    let template = Template::built_in("commit_message").unwrap();
    kb.export(query, &template, &options, false, &Silent)
        .unwrap();
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let (fixture, kb_path) = fixture_kb();
        let dir = tempfile::tempdir().unwrap();
        let kb = Kb::open(&kb_path).unwrap();
        let model = dir.path().join("model");
        kb.init_tiny_model(&model, &tiny_shape(), 1).unwrap();
        let early = dir.path().join("early");
        let all = dir.path().join("all");
        export(&kb, EARLY, &model, &early);
        export(&kb, ALL, &model, &all);
        let four = dir.path().join("four");
        export(&kb, FOUR, &model, &four);
        Setup {
            _fixture: fixture,
            _dir: dir,
            kb: kb_path,
            model,
            early,
            all,
            four,
        }
    })
}

/// A private copy of the fixture's lore file (adapters are written into it).
fn kb_copy(dir: &Path) -> Kb {
    let path = dir.join("copy.lore");
    std::fs::copy(&setup().kb, &path).unwrap();
    Kb::open(&path).unwrap()
}

fn lora_config() -> LoraConfig {
    LoraConfig {
        rank: 8,
        alpha: 16.0,
        dropout: 0.0,
        rslora: false,
        targets: ALL_TARGETS.iter().map(|s| s.to_string()).collect(),
    }
}

fn load_model() -> Model {
    Model::load(&ModelDir::open(&setup().model).unwrap(), &Device::Cpu).unwrap()
}

/// The first `n` rows of the full export.
fn some_rows(n: usize) -> Vec<Batch> {
    let d: ExportData = data::read_export(&setup().all).unwrap();
    let mut rows = data::rows(&d.train, d.seq_len);
    rows.truncate(n);
    rows
}

/// Give every B small random values, so every A gets a gradient too.
fn randomize_b(set: &LoraSet, seed: u64) {
    let mut rng = SplitMix(seed);
    for l in set.layers.values() {
        let dims = l.b.as_tensor().dims().to_vec();
        let v: Vec<f32> = (0..dims[0] * dims[1])
            .map(|_| rng.normal() * 0.05)
            .collect();
        l.b.set(&Tensor::from_vec(v, (dims[0], dims[1]), &Device::Cpu).unwrap())
            .unwrap();
    }
}

fn mean_loss(model: &Model, set: &LoraSet, batch: &Batch) -> f64 {
    let (sum, n) = model.loss_sum(batch, Some(set)).unwrap().unwrap();
    sum / n as f64
}

#[test]
fn every_lora_gradient_is_nonzero_and_matches_finite_differences() {
    let model = load_model();
    let set = LoraSet::init(&model.config, &lora_config(), 3, &Device::Cpu).unwrap();
    randomize_b(&set, 4);
    let batch = data::join(&some_rows(2).iter().collect::<Vec<_>>());
    let labels = batch.targets().0.len();
    let out = model
        .loss_and_grads(&batch, &set, true, 1.0 / labels as f64)
        .unwrap()
        .unwrap();
    let named = set.named();
    assert_eq!(
        named.len(),
        2 * 7 * 2,
        "A and B of 7 projections in 2 layers"
    );
    for ((key, var), g) in named.into_iter().zip(&out.grads) {
        let norm = f64::from(
            g.sqr()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
        .sqrt();
        assert!(norm > 0.0, "{key}: zero gradient");
        // The derivative along the gradient's direction is its norm.
        let dir = (g / norm).unwrap();
        let at = var.as_tensor().copy().unwrap();
        let eps = 1e-2;
        var.set(&(&at + (&dir * eps).unwrap()).unwrap()).unwrap();
        let up = mean_loss(&model, &set, &batch);
        var.set(&(&at - (&dir * eps).unwrap()).unwrap()).unwrap();
        let down = mean_loss(&model, &set, &batch);
        var.set(&at).unwrap();
        let numeric = (up - down) / (2.0 * eps);
        let rel = (numeric - norm).abs() / norm;
        assert!(
            rel < 0.05,
            "{key}: gradient {norm:.6e}, finite differences {numeric:.6e} ({rel:.3})"
        );
    }
}

#[test]
fn lora_with_zero_b_is_exactly_the_base_model() {
    let model = load_model();
    let set = LoraSet::init(&model.config, &lora_config(), 3, &Device::Cpu).unwrap();
    let batch = some_rows(1).remove(0);
    let base = model.logits(&batch, None).unwrap();
    let with = model.logits(&batch, Some(&set)).unwrap();
    assert_eq!(
        base.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        with.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
    // And a non-zero B does change them (the comparison above can fail).
    randomize_b(&set, 5);
    let changed = model.logits(&batch, Some(&set)).unwrap();
    assert_ne!(
        base.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        changed.flatten_all().unwrap().to_vec1::<f32>().unwrap()
    );
}

#[test]
fn packed_documents_do_not_see_each_other() {
    let model = load_model();
    let set = LoraSet::init(&model.config, &lora_config(), 3, &Device::Cpu).unwrap();
    randomize_b(&set, 6);
    // Two documents in one row: tokens 0..10 and 10..20, then padding.
    let seq = 32;
    let ids: Vec<u32> = (0..seq as u32).map(|i| 5 + i * 7 % 300).collect();
    let positions: Vec<u32> = (0..seq as u32)
        .map(|i| {
            if i < 10 {
                i
            } else if i < 20 {
                i - 10
            } else {
                0
            }
        })
        .collect();
    let batch = Batch {
        ids: ids.clone(),
        positions: positions.clone(),
        labels: vec![-100; seq],
        rows: 1,
        seq,
    };
    let mut other = batch.clone();
    for t in 10..20 {
        other.ids[t] = 400 - other.ids[t];
    }
    let a = model.logits(&batch, Some(&set)).unwrap();
    let b = model.logits(&other, Some(&set)).unwrap();
    let diff = |from: usize, to: usize| -> f32 {
        let x = a.narrow(0, from, to - from).unwrap();
        let y = b.narrow(0, from, to - from).unwrap();
        (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    assert!(
        diff(0, 10) == 0.0,
        "the first document's logits changed: {}",
        diff(0, 10)
    );
    assert!(
        diff(10, 20) > 1e-3,
        "the second document's own logits did not change"
    );
    // The same document at the start of a row gives the same logits as packed after another.
    let alone = Batch {
        ids: ids[10..20].to_vec(),
        positions: (0..10).collect(),
        labels: vec![-100; 10],
        rows: 1,
        seq: 10,
    };
    let c = model.logits(&alone, Some(&set)).unwrap();
    let packed = a.narrow(0, 10, 10).unwrap();
    let gap = (c - packed)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    assert!(gap < 1e-4, "packed and alone differ by {gap}");
}

#[test]
fn a_saved_adapter_reproduces_its_logits_bit_for_bit() {
    let model = load_model();
    let set = LoraSet::init(&model.config, &lora_config(), 3, &Device::Cpu).unwrap();
    randomize_b(&set, 7);
    let bytes = set.to_safetensors().unwrap();
    let other = LoraSet::init(&model.config, &lora_config(), 99, &Device::Cpu).unwrap();
    other.load_safetensors(&bytes).unwrap();
    let batch = some_rows(1).remove(0);
    assert_eq!(
        model
            .logits(&batch, Some(&set))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap(),
        model
            .logits(&batch, Some(&other))
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()
    );
    assert_eq!(other.to_safetensors().unwrap(), bytes);
}

fn options(work: &Path, train: TrainConfig) -> AdaptOptions {
    AdaptOptions {
        model: setup().model.clone(),
        lora: lora_config(),
        train,
        replay: 0.2,
        from_scratch: false,
        resume: false,
        restart: false,
        device: Device::Cpu,
        work_dir: work.to_path_buf(),
    }
}

fn trained(report: AdaptReport) -> AdapterRecord {
    match report {
        AdaptReport::Trained(r) => *r,
        AdaptReport::NothingNew { .. } => panic!("expected training"),
    }
}

#[test]
fn the_tiny_model_overfits_a_tiny_export() {
    let dir = tempfile::tempdir().unwrap();
    let kb = kb_copy(dir.path());
    let train = TrainConfig {
        lr: 2e-2,
        epochs: 60,
        batch: 4,
        warmup: 0.05,
        eval_every: 1000,
        patience: 0,
        checkpoint_every: 1000,
        ..TrainConfig::default()
    };
    let mut opts = options(dir.path(), train);
    opts.lora.rank = 16;
    let r = trained(
        kb.adapt(
            AdaptData::Export(setup().four.clone()),
            &opts,
            &Silent,
            &|_| {},
        )
        .unwrap(),
    );
    let first = r.evals[0].before.unwrap();
    let last = r.outcome.final_train_loss.unwrap();
    // The random-init model starts above ln(vocab) ≈ 6.2 nats a token; three commit messages
    // with their diffs are learnt by heart within 60 steps.
    assert!(first > 5.0, "starting loss {first}");
    assert!(
        last < 1.0,
        "after {} steps the training loss is still {last}",
        r.outcome.steps
    );
}

#[test]
fn a_second_run_continues_the_first_and_a_third_has_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let kb = kb_copy(dir.path());
    let train = TrainConfig {
        lr: 5e-3,
        epochs: 2,
        batch: 4,
        eval_every: 1000,
        checkpoint_every: 1000,
        ..TrainConfig::default()
    };
    let opts = options(dir.path(), train);
    let one = trained(
        kb.adapt(
            AdaptData::Export(setup().early.clone()),
            &opts,
            &Silent,
            &|_| {},
        )
        .unwrap(),
    );
    assert_eq!(one.parent, None);
    let two = trained(
        kb.adapt(
            AdaptData::Export(setup().all.clone()),
            &opts,
            &Silent,
            &|_| {},
        )
        .unwrap(),
    );
    assert_eq!(two.parent, Some(one.id));
    // Checked, not assumed: the weights run 2 started from are run 1's, byte for byte.
    assert_eq!(two.initial_weights_sha256, one.weights_sha256);
    assert_ne!(two.weights_sha256, one.weights_sha256);
    // Only the commits after run 1's watermark are new; some older ones are replayed.
    let all = data::read_export(&setup().all).unwrap();
    let newer = all
        .train
        .iter()
        .chain(&all.val)
        .filter(|d| Some(d.created_at) > one.data.watermark)
        .count();
    assert_eq!(two.data.new_examples, newer);
    assert!(two.data.replay_examples > 0);
    // Run 1's validation documents are older, so they are in the second export's training
    // split: they are held out, never trained on.
    assert!(one.data.val_documents > 0);
    assert_eq!(two.data.held_out, one.data.val_documents);
    // Run 2 measures forgetting on run 1's validation set.
    let sets: Vec<u64> = two.evals.iter().map(|e| e.set).collect();
    assert_eq!(sets, vec![two.id, one.id]);
    assert!(two
        .evals
        .iter()
        .all(|e| e.base.is_some() && e.before.is_some() && e.after.is_some()));
    // Evaluated later, adapter 2 gives the loss it recorded on adapter 1's set.
    let rows = kb
        .evaluate_adapter(
            two.id,
            &setup().model,
            Some(&[one.id]),
            &Device::Cpu,
            &Silent,
        )
        .unwrap();
    let (now, then) = (rows[0].after.unwrap(), two.evals[1].after.unwrap());
    assert!((now - then).abs() < 1e-5 * then, "{now} vs {then}");
    let three = kb
        .adapt(
            AdaptData::Export(setup().all.clone()),
            &opts,
            &Silent,
            &|_| {},
        )
        .unwrap();
    assert!(matches!(three, AdaptReport::NothingNew { parent: Some(p), .. } if p == two.id));
    assert_eq!(kb.adapters().unwrap().len(), 2);
}

#[test]
fn an_exported_adapter_is_a_peft_directory() {
    let dir = tempfile::tempdir().unwrap();
    let kb = kb_copy(dir.path());
    let train = TrainConfig {
        max_steps: Some(2),
        batch: 4,
        ..TrainConfig::default()
    };
    let r = trained(
        kb.adapt(
            AdaptData::Export(setup().early.clone()),
            &options(dir.path(), train),
            &Silent,
            &|_| {},
        )
        .unwrap(),
    );
    let out = dir.path().join("peft");
    kb.export_adapter(r.id, &out).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["peft_type"], "LORA");
    assert_eq!(config["task_type"], "CAUSAL_LM");
    assert_eq!(config["r"], 8);
    assert_eq!(config["lora_alpha"], 16);
    assert_eq!(config["bias"], "none");
    assert_eq!(config["modules_to_save"], serde_json::Value::Null);
    assert_eq!(config["fan_in_fan_out"], false);
    let bytes = std::fs::read(out.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let a = st
        .tensor("base_model.model.model.layers.1.self_attn.k_proj.lora_A.weight")
        .unwrap();
    assert_eq!(a.shape(), &[8, 64]);
    let b = st
        .tensor("base_model.model.model.layers.0.mlp.down_proj.lora_B.weight")
        .unwrap();
    assert_eq!(b.shape(), &[64, 8]);
    assert_eq!(st.names().len(), 28);
    // Exporting over a non-empty directory is refused.
    assert!(kb.export_adapter(r.id, &out).is_err());
}

#[test]
fn kill_9_then_resume_continues_from_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let kb_path = dir.path().join("copy.lore");
    std::fs::copy(&setup().kb, &kb_path).unwrap();
    let work = dir.path().join("work");
    let model = setup().model.to_str().unwrap().to_string();
    let data = setup().early.to_str().unwrap().to_string();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a: Vec<String> = [
            "adapt",
            "--kb",
            kb_path.to_str().unwrap(),
            "--model",
            &model,
            "--data",
            &data,
            "--epochs",
            "100",
            "--max-steps",
            "200",
            "--batch",
            "1",
            "--checkpoint-every",
            "1",
            "--eval-every",
            "100000",
            "--rank",
            "8",
            "--work-dir",
            work.to_str().unwrap(),
            "--quiet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lore"))
        .args(args(&[]))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a few checkpoints, then kill -9.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let checkpoint = loop {
        let found = std::fs::read_dir(&work).ok().and_then(|mut d| {
            d.find_map(|e| {
                e.ok()
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "bin"))
            })
        });
        if let Some(p) = found {
            std::thread::sleep(std::time::Duration::from_millis(300));
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 120 s"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "training ended before it could be killed"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(checkpoint.exists());
    // Nothing was recorded, and a plain rerun refuses to silently start over.
    let again = lore(&args(&[]).iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--resume"), "{}", stderr(&again));
    let listed = lore(&["adapters", "--kb", kb_path.to_str().unwrap()]);
    assert!(
        stdout(&listed).contains("no adapters yet"),
        "{}",
        stdout(&listed)
    );
    // --resume continues at the checkpoint's step and finishes the plan.
    let resumed = lore(
        &args(&["--resume", "--json"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let last: serde_json::Value =
        serde_json::from_str(stdout(&resumed).lines().last().unwrap()).unwrap();
    let at = last["outcome"]["resumed_from"].as_u64().unwrap();
    assert!(at >= 1, "resumed at {at}");
    let first_logged: serde_json::Value =
        serde_json::from_str(stdout(&resumed).lines().next().unwrap()).unwrap();
    assert_eq!(
        first_logged["step"].as_u64().unwrap(),
        at + 1,
        "the step count continues"
    );
    assert_eq!(last["outcome"]["steps"], last["outcome"]["planned_steps"]);
    assert!(
        !checkpoint.exists(),
        "the checkpoint is removed once the adapter is recorded"
    );
}

#[test]
fn bad_input_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let kb = kb_copy(dir.path());
    let train = TrainConfig {
        max_steps: Some(1),
        ..TrainConfig::default()
    };
    let run = |opts: &AdaptOptions, data: &Path| -> String {
        match kb.adapt(
            AdaptData::Export(data.to_path_buf()),
            opts,
            &Silent,
            &|_| {},
        ) {
            Ok(_) => panic!("expected an error"),
            Err(e) => lore_error_text(&e),
        }
    };
    // A model directory missing files names them.
    let empty = dir.path().join("empty-model");
    std::fs::create_dir_all(&empty).unwrap();
    let mut opts = options(dir.path(), train.clone());
    opts.model = empty.clone();
    let e = run(&opts, &setup().early);
    assert!(
        e.contains("config.json")
            && e.contains("tokenizer.json")
            && e.contains("model.safetensors"),
        "{e}"
    );
    // An architecture lore does not train.
    let gpt2 = dir.path().join("gpt2");
    copy_dir(&setup().model, &gpt2);
    let mut cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(gpt2.join("config.json")).unwrap()).unwrap();
    cfg["model_type"] = "gpt2".into();
    std::fs::write(gpt2.join("config.json"), cfg.to_string()).unwrap();
    opts.model = gpt2;
    let e = run(&opts, &setup().early);
    assert!(e.contains("model_type `gpt2` is not supported"), "{e}");
    // Shards made with another tokenizer are refused by hash.
    let other = dir.path().join("other-model");
    copy_dir(&setup().model, &other);
    let mut tok: serde_json::Value =
        serde_json::from_slice(&std::fs::read(other.join("tokenizer.json")).unwrap()).unwrap();
    tok["added_tokens"][0]["content"] = "<|end|>".into();
    std::fs::write(other.join("tokenizer.json"), tok.to_string()).unwrap();
    opts.model = other;
    let e = run(&opts, &setup().early);
    assert!(e.contains("another tokenizer"), "{e}");
    // An export without shards.
    opts.model = setup().model.clone();
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(
        plain.join("manifest.json"),
        r#"{"examples": [], "tokenizer": null}"#,
    )
    .unwrap();
    let e = run(&opts, &plain);
    assert!(e.contains("--tokenizer"), "{e}");
    // An exploding learning rate stops on a non-finite loss and records nothing.
    let mut hot = options(
        dir.path(),
        TrainConfig {
            lr: 1e12,
            clip: 0.0,
            epochs: 20,
            batch: 1,
            warmup: 0.0,
            eval_every: 100000,
            patience: 0,
            ..TrainConfig::default()
        },
    );
    hot.lora.alpha = 1e30;
    let e = run(&hot, &setup().early);
    assert!(e.contains("not finite"), "{e}");
    assert!(kb.adapters().unwrap().is_empty());
    // A rank vLLM does not serve is only a warning: PEFT loads it.
    let mut odd = options(dir.path(), train);
    odd.lora.rank = 3;
    let warnings = Warnings::default();
    kb.adapt(
        AdaptData::Export(setup().early.clone()),
        &odd,
        &warnings,
        &|_| {},
    )
    .unwrap();
    assert!(warnings
        .0
        .lock()
        .unwrap()
        .iter()
        .any(|w| w.contains("rank 3 is not one vLLM serves")));
}

#[derive(Default)]
struct Warnings(std::sync::Mutex<Vec<String>>);
impl lore::progress::Progress for Warnings {
    fn warn(&self, message: &str) {
        self.0.lock().unwrap().push(message.to_string());
    }
}

fn lore_error_text(e: &Error) -> String {
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn model_init_tiny_writes_a_loadable_model_and_refuses_a_full_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let texts: Vec<String> = (0..50)
        .map(|i| format!("fn f{i}() {{ free the blocks {i} }}"))
        .collect();
    let report = init_tiny(&texts, &out, &tiny_shape(), 0).unwrap();
    let model = ModelDir::open(&out).unwrap();
    assert_eq!(model.config.vocab_size, report.vocab);
    assert_eq!(model.config.parameters(), report.parameters);
    Model::load(&model, &Device::Cpu).unwrap();
    assert!(init_tiny(&texts, &out, &tiny_shape(), 0).is_err());
}
