//! `lore adapt`, `lore adapters` and `lore model init`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use lore::adapt::lineage::{AdapterRecord, EvalRow};
use lore::adapt::lora::{LoraConfig, ALL_TARGETS};
use lore::adapt::tiny::TinyShape;
use lore::adapt::train::TrainConfig;
use lore::adapt::{AdaptOptions, AdaptReport};
use lore::export::{Context, ExportOptions, Split, Template};
use lore::kb::adapt::AdaptData;
use lore::kb::Kb;
use lore::progress::Progress;
use lore::watch::WatchAdapt;

use super::progress::Bar;

#[derive(Args)]
pub struct AdaptArgs {
    /// The base model: a Hugging Face directory (config.json, tokenizer.json, *.safetensors) of
    /// a Llama, Qwen2 or Mistral model.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Train on this export (made with `lore export --tokenizer MODEL`).
    #[arg(
        long,
        value_name = "DIR",
        conflicts_with = "query",
        required_unless_present = "query"
    )]
    data: Option<PathBuf>,
    /// Or export the rows of this query first (with --template), with the model's tokenizer.
    #[arg(long)]
    query: Option<String>,
    /// The template for --query.
    #[arg(long, short, default_value = "issue_fix")]
    template: String,
    /// Tokens per packed row, for --query.
    #[arg(long, default_value_t = 1024, value_name = "N")]
    seq_len: usize,
    /// LoRA rank.
    #[arg(long, default_value_t = 16)]
    rank: usize,
    /// LoRA alpha (the update is scaled by alpha / rank).
    #[arg(long, default_value_t = 32.0)]
    alpha: f64,
    /// Dropout on the LoRA input.
    #[arg(long, default_value_t = 0.0)]
    dropout: f32,
    /// Scale by alpha / √rank (rsLoRA).
    #[arg(long)]
    rslora: bool,
    /// The projections to adapt.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj"
    )]
    targets: Vec<String>,
    /// Peak learning rate.
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    /// Share of the steps that warm the learning rate up.
    #[arg(long, default_value_t = 0.05)]
    warmup: f64,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many optimizer steps.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Packed rows per micro-batch.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Micro-batches per optimizer step.
    #[arg(long, default_value_t = 1)]
    accumulate: usize,
    /// Clip gradients to this global norm (0: no clipping).
    #[arg(long, default_value_t = 1.0)]
    clip: f64,
    /// Validate every this many steps.
    #[arg(long, default_value_t = 50)]
    eval_every: u64,
    /// Stop after this many validations without improvement (0: never).
    #[arg(long, default_value_t = 3)]
    patience: usize,
    /// Write a checkpoint every this many steps.
    #[arg(long, default_value_t = 50)]
    checkpoint_every: u64,
    /// Replayed older examples per new one. More replay forgets less and costs more: on peft's
    /// history 0.2 forgot 2.4-4.1% of the loss on earlier data by the third run, 1.0 under 1%
    /// (docs/benchmarks.md).
    #[arg(long, default_value_t = 0.2)]
    replay: f64,
    /// Start a new lineage instead of continuing the latest adapter.
    #[arg(long)]
    from_scratch: bool,
    /// Continue an interrupted run from its checkpoint.
    #[arg(long, conflicts_with = "restart")]
    resume: bool,
    /// Discard an interrupted run's checkpoint and start over.
    #[arg(long)]
    restart: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// cpu or cuda (builds with --features cuda).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Where checkpoints of a run in progress go (default: next to the lore file).
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// One JSON line per step, then the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum AdaptersCommand {
    /// The adapters in the lore file (the default).
    List {
        #[arg(long)]
        json: bool,
    },
    /// The loss of an adapter (and of its base model) on validation sets: its own and its
    /// ancestors', or those of the adapters --on names.
    Eval {
        id: u64,
        /// The base model directory (the adapter's, checked by hash).
        #[arg(long, value_name = "DIR")]
        model: PathBuf,
        /// Adapters whose validation sets to use.
        #[arg(long, value_delimiter = ',', value_name = "IDS")]
        on: Option<Vec<u64>>,
        #[arg(long, default_value = "cpu")]
        device: String,
        #[arg(long)]
        json: bool,
    },
    /// Write one adapter as a PEFT directory (adapter_config.json, adapter_model.safetensors).
    Export {
        id: u64,
        #[arg(long, short, value_name = "DIR")]
        out: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ModelCommand {
    /// Write a small random-init Llama model with a tokenizer trained on the lore file's text.
    Init(InitArgs),
}

#[derive(Args)]
pub struct InitArgs {
    /// The tiny shape (the only one so far).
    #[arg(long, required = true)]
    tiny: bool,
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,
    #[arg(long, default_value_t = 4096)]
    vocab: usize,
    #[arg(long, default_value_t = 256)]
    hidden: usize,
    #[arg(long, default_value_t = 4)]
    layers: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 4)]
    kv_heads: usize,
    #[arg(long, default_value_t = 688)]
    intermediate: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

fn device(name: &str) -> anyhow::Result<candle_core::Device> {
    match name {
        "cpu" => Ok(candle_core::Device::Cpu),
        "cuda" | "gpu" => candle_core::Device::new_cuda(0)
            .map_err(|e| anyhow!("--device cuda: {e} (is lore built with --features cuda?)")),
        other => bail!("--device `{other}`: expected cpu or cuda"),
    }
}

/// The default work directory: `FILE.adapt` beside the lore file.
fn work_dir(kb: &Path) -> PathBuf {
    let mut name = kb.file_name().unwrap_or_default().to_os_string();
    name.push(".adapt");
    kb.with_file_name(name)
}

/// candle allocates a new buffer for every op. glibc hands large freed buffers back to the
/// kernel and page-faults them in again on the next step, which on the CPU cost as much as the
/// arithmetic (the fixture demo's training ran 2× faster with this). A training process keeps
/// its freed memory in the heap instead.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; 32 MiB is glibc's largest mmap threshold.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

/// The adapt options `args` give, checked.
fn adapt_options(kb: &Kb, args: &AdaptArgs) -> anyhow::Result<AdaptOptions> {
    for t in &args.targets {
        if !ALL_TARGETS.contains(&t.as_str()) {
            bail!(
                "--targets: unknown module `{t}` (known: {})",
                ALL_TARGETS.join(", ")
            );
        }
    }
    if args.rank == 0 {
        bail!("--rank must be at least 1");
    }
    if !(0.0..1.0).contains(&args.dropout) {
        bail!("--dropout {} is not a probability below 1", args.dropout);
    }
    if !(0.0..=1.0).contains(&args.warmup) || args.replay < 0.0 || args.lr <= 0.0 {
        bail!("--warmup must be within 0..1, --replay at least 0 and --lr positive");
    }
    if args.batch == 0 || args.accumulate == 0 || args.epochs == 0 {
        bail!("--batch, --accumulate and --epochs must be at least 1");
    }
    let options = AdaptOptions {
        model: args.model.clone(),
        lora: LoraConfig {
            rank: args.rank,
            alpha: args.alpha,
            dropout: args.dropout,
            rslora: args.rslora,
            targets: args.targets.clone(),
        },
        train: TrainConfig {
            lr: args.lr,
            weight_decay: args.weight_decay,
            warmup: args.warmup,
            epochs: args.epochs,
            max_steps: args.max_steps,
            batch: args.batch,
            accumulate: args.accumulate,
            clip: args.clip,
            eval_every: args.eval_every,
            patience: args.patience,
            checkpoint_every: args.checkpoint_every,
            seed: args.seed,
        },
        replay: args.replay,
        from_scratch: args.from_scratch,
        resume: args.resume,
        restart: args.restart,
        device: device(&args.device)?,
        work_dir: args.work_dir.clone().unwrap_or_else(|| work_dir(kb.path())),
    };
    Ok(options)
}

/// The export `--query` trains on (recorded under `adapt-TEMPLATE`).
fn query_export(args: &AdaptArgs, template: &Template) -> ExportOptions {
    ExportOptions {
        name: format!("adapt-{}", template.name),
        out: PathBuf::new(),
        force: true,
        tokenizer: Some(args.model.clone()),
        seq_len: args.seq_len,
        split: Split::Fraction { val: 0.1 },
        context: Context::parse("oracle", args.seq_len / 2).expect("oracle is a context"),
        min_quality: 0.0,
        newer_than: None,
        dry_run: false,
        seed: args.seed,
        swebench: false,
    }
}

/// What `lore watch` trains, from the adapt arguments after its `--`.
pub fn watch_adapt(kb: &Kb, args: &AdaptArgs, min_new: u64) -> anyhow::Result<WatchAdapt> {
    let Some(query) = &args.query else {
        bail!("lore watch trains from a query: give `-- --model DIR --query Q -t TEMPLATE`");
    };
    keep_freed_memory();
    let template = Template::built_in(&args.template)?;
    Ok(WatchAdapt {
        query: query.clone(),
        export: query_export(args, &template),
        template,
        options: adapt_options(kb, args)?,
        min_new,
    })
}

pub fn run(kb: &Kb, quiet: bool, args: AdaptArgs) -> anyhow::Result<()> {
    keep_freed_memory();
    let options = adapt_options(kb, &args)?;
    let source = match (&args.data, &args.query) {
        (Some(dir), _) => AdaptData::Export(dir.clone()),
        (None, Some(query)) => {
            let template = Template::built_in(&args.template)?;
            AdaptData::Query {
                query: query.clone(),
                export: Box::new(query_export(&args, &template)),
                template: Box::new(template),
            }
        }
        (None, None) => bail!("give --data DIR (an export) or --query Q"),
    };
    let bar = Bar::new(quiet || args.json);
    let json = args.json;
    let log = move |step: &lore::adapt::train::StepLog| {
        if json {
            if let Ok(line) = serde_json::to_string(step) {
                println!("{line}");
            }
        }
    };
    let report = kb.adapt(source, &options, &bar, &log)?;
    bar.done();
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string(&report)?)?;
        return Ok(());
    }
    match report {
        AdaptReport::NothingNew { parent, watermark } => {
            let since = watermark.map_or("the start".to_string(), |w| super::render::time(w, 0));
            match parent {
                Some(p) => writeln!(
                    out,
                    "nothing new since adapter {p} (data up to {since}); no training"
                )?,
                None => writeln!(out, "nothing to train on")?,
            }
        }
        AdaptReport::Trained(r) => print_trained(&mut out, &r)?,
    }
    Ok(())
}

/// `2024-03-01 14:05` (UTC).
fn minutes(seconds: i64) -> String {
    super::render::time(seconds, 0).chars().take(16).collect()
}

fn loss(x: Option<f64>) -> String {
    x.map_or("-".into(), |v| format!("{v:.4}"))
}

fn print_trained(out: &mut impl Write, r: &AdapterRecord) -> std::io::Result<()> {
    let o = &r.outcome;
    writeln!(
        out,
        "adapter {}{}: {} steps on {} new and {} replayed examples ({} tokens, {:.1} s{}{})",
        r.id,
        r.parent.map_or(" (new lineage)".to_string(), |p| format!(
            " (continues {p})"
        )),
        o.steps,
        r.data.new_examples,
        r.data.replay_examples,
        o.tokens,
        o.seconds,
        if o.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        o.resumed_from
            .map_or(String::new(), |s| format!(", resumed at step {s}")),
    )?;
    writeln!(out, "validation loss (perplexity after):")?;
    writeln!(
        out,
        "  {:<14} {:>8} {:>8} {:>8} {:>9} {:>10}",
        "set", "base", "before", "after", "change", "ppl after"
    )?;
    for row in &r.evals {
        write_eval(out, r.id, row)?;
    }
    Ok(())
}

fn write_eval(out: &mut impl Write, own: u64, row: &EvalRow) -> std::io::Result<()> {
    let name = if row.set == own {
        format!("new ({} docs)", row.documents)
    } else {
        format!("adapter {}", row.set)
    };
    let change = match (row.before, row.after) {
        (Some(b), Some(a)) if b > 0.0 => format!("{:+.1}%", (a - b) / b * 100.0),
        _ => "-".into(),
    };
    let ppl = row.after.map_or("-".into(), |a| format!("{:.2}", a.exp()));
    writeln!(
        out,
        "  {name:<14} {:>8} {:>8} {:>8} {change:>9} {ppl:>10}",
        loss(row.base),
        loss(row.before),
        loss(row.after)
    )
}

pub fn run_adapters(kb: &Kb, quiet: bool, command: Option<AdaptersCommand>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match command.unwrap_or(AdaptersCommand::List { json: false }) {
        AdaptersCommand::Eval {
            id,
            model,
            on,
            device: name,
            json,
        } => {
            keep_freed_memory();
            let bar = Bar::new(quiet || json);
            let rows = kb.evaluate_adapter(id, &model, on.as_deref(), &device(&name)?, &bar)?;
            bar.done();
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
                return Ok(());
            }
            writeln!(out, "adapter {id}: validation loss")?;
            writeln!(
                out,
                "  {:<14} {:>8} {:>8} {:>10}",
                "set", "base", "adapter", "ppl"
            )?;
            for r in &rows {
                writeln!(
                    out,
                    "  {:<14} {:>8} {:>8} {:>10}",
                    format!("adapter {}", r.set),
                    loss(r.base),
                    loss(r.after),
                    r.after.map_or("-".into(), |a| format!("{:.2}", a.exp()))
                )?;
            }
            Ok(())
        }
        AdaptersCommand::List { json } => {
            let all = kb.adapters()?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&all)?)?;
                return Ok(());
            }
            if all.is_empty() {
                writeln!(out, "no adapters yet (train one with `lore adapt`)")?;
                return Ok(());
            }
            writeln!(
                out,
                "{:>3} {:>6} {:<19} {:<14} {:>4} {:<22} {:>6} {:>9} {:>8} {:>8}",
                "id",
                "parent",
                "created",
                "template",
                "rank",
                "data up to",
                "new",
                "tokens",
                "val",
                "base"
            )?;
            for a in &all {
                let own = a.evals.iter().find(|e| e.set == a.id);
                writeln!(
                    out,
                    "{:>3} {:>6} {:<19} {:<14} {:>4} {:<22} {:>6} {:>9} {:>8} {:>8}",
                    a.id,
                    a.parent.map_or("-".into(), |p| p.to_string()),
                    minutes(a.created_at),
                    a.data.template,
                    a.lora.rank,
                    a.data.watermark.map_or("-".to_string(), minutes),
                    a.data.new_examples,
                    a.tokens_seen,
                    loss(own.and_then(|e| e.after)),
                    loss(own.and_then(|e| e.base)),
                )?;
            }
            Ok(())
        }
        AdaptersCommand::Export { id, out: dir } => {
            let r = kb.export_adapter(id, &dir)?;
            writeln!(
                out,
                "wrote {} (PEFT LoRA r={} on {}; base {})",
                dir.display(),
                r.lora.rank,
                r.lora.targets.join(","),
                r.base_model_path
            )?;
            Ok(())
        }
    }
}

pub fn run_model(kb: &Kb, quiet: bool, command: ModelCommand) -> anyhow::Result<()> {
    let ModelCommand::Init(args) = command;
    let shape = TinyShape {
        vocab: args.vocab,
        hidden: args.hidden,
        layers: args.layers,
        heads: args.heads,
        kv_heads: args.kv_heads,
        intermediate: args.intermediate,
        ..TinyShape::default()
    };
    let bar = Bar::new(quiet);
    bar.phase("training the tokenizer and writing the model", None);
    let report = kb.init_tiny_model(&args.out, &shape, args.seed)?;
    bar.done();
    println!(
        "wrote {}: a Llama model of {} parameters (random init), tokenizer of {} tokens trained on {} bytes of the project's text",
        args.out.display(),
        report.parameters,
        report.vocab,
        report.corpus_bytes
    );
    Ok(())
}
