//! Command-line interface: clap definitions, dispatch, and error reporting.

mod adapt;
mod blame;
mod check;
mod export;
mod import;
mod ingest;
mod progress;
mod query;
mod render;
mod repl;
mod search;
mod serve;
mod show;
mod show_code;
mod show_issue;
mod stats;
mod sync;
mod table;
mod watch;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use lore::kb::Kb;

/// The KB file used when neither `--kb` nor `LORE_KB` names one.
pub const DEFAULT_KB: &str = "project.lore";

#[derive(Parser)]
#[command(
    name = "lore",
    version,
    about = "One file that knows a software project: its history, code, issues and the links between them",
    after_help = "Examples:
  lore ingest path/to/repo              # build ./project.lore from a repository's history
  lore ingest path/to/repo --refs main  # only what is reachable from main
  lore stats                            # what the file holds
  lore import issues issues.json        # GitHub/gh/Jira/JSONL dump, linked to the history
  lore show commit 3fa9c1               # one commit and the files it touched
  lore show issue 7                     # an issue and its links, with evidence
  lore query 'issues fixed_by commit touching memory_utils'
  lore query 'issues matching \"out of memory\" using hybrid'
  lore query 'issues similar to #7 where state = closed'
  lore locate 7                         # which files and symbols issue #7 concerns
  lore eval locate                      # how well that works on past issues
  lore duplicates                       # likely duplicate issues
  lore                                  # the interactive query prompt
  LORE_KB=/data/vllm.lore lore stats --json"
)]
struct Cli {
    /// The lore file to use.
    #[arg(long, global = true, env = "LORE_KB", default_value = DEFAULT_KB, value_name = "FILE")]
    kb: PathBuf,
    /// No progress bars.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Create an empty lore file.
    #[command(after_help = "Examples:\n  lore init\n  lore init /data/vllm.lore")]
    Init {
        /// Where to create it (default: the --kb path).
        file: Option<PathBuf>,
    },
    /// Add a git repository's history to the lore file (incremental: only new commits are read).
    #[command(after_help = "Examples:
  lore ingest .                               # all branches and tags of the current repository
  lore ingest ~/src/vllm.git --kb vllm.lore   # a bare repository
  lore ingest . --refs main --refs 'v1.*'     # selected refs (globs allowed)
  lore ingest ~/src/vllm --repo vllm-project/vllm   # resolve owner/name#N references")]
    Ingest(ingest::IngestArgs),
    /// Counts per entity and relation, file size, watermarks and schema version.
    #[command(
        after_help = "Examples:\n  lore stats\n  lore stats --json | jq .nodes\n  lore stats --storage    # where the file's bytes go, per table"
    )]
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Bytes per table (redb's table statistics: stored, page metadata, fragmentation).
        #[arg(long)]
        storage: bool,
    },
    /// Return the file's free space: every table is rewritten in key order into a fresh file
    /// that replaces it (needs the writer's place; an ingest that grew the file a lot does it).
    #[command(after_help = "Examples:\n  lore compact\n  lore compact --kb /data/vllm.lore")]
    Compact,
    /// Import issues and pull requests (GitHub, gh, Jira, JSONL dumps) and link them.
    Import {
        #[command(subcommand)]
        what: import::ImportWhat,
    },
    /// Run queries: `issues fixed_by commit touching memory_utils`.
    #[command(after_help = "Examples:
  lore query 'issues fixed_by commit touching memory_utils'
  lore query 'commits touching memory_utils since 2024-01-10 order by date desc limit 5' --format csv
  lore query 'issues where label = bug count by state' --format json
  echo 'issues count; commits count' | lore query

The language: docs/query-language.md (grammar: grammar/lore.ebnf). Exit code 1 if a query fails.")]
    Query(query::QueryArgs),
    /// An interactive prompt for queries (also what bare `lore` starts).
    #[command(
        after_help = "Examples:\n  lore repl\n  lore --kb vllm.lore\n\nInside: .help, .schema, .format csv, .timer on, Tab to complete, Ctrl-C to cancel."
    )]
    Repl,
    /// Who wrote each line of a file, at HEAD or any ingested revision (from the file: no
    /// walk of the history).
    #[command(after_help = "Examples:
  lore blame src/cargo/core/resolver/mod.rs
  lore blame minillm/worker/memory_utils.py --at v0.1 -L 20,40
  lore blame README.md --at 3fa9c1 --porcelain     # git blame --porcelain's format
  lore blame setup.py --json | jq '.commits[.hunks[0].commit].author'")]
    Blame(blame::BlameArgs),
    /// Show one item and its links.
    Show {
        #[command(subcommand)]
        what: show::ShowWhat,
    },
    /// Bring the full-text and vector indexes up to date (ingest and import do this too).
    #[command(after_help = "Examples:\n  lore index\n  lore index --json")]
    Index(search::IndexArgs),
    /// Re-embed issues, commits and symbols with another model; queries then use it.
    #[command(after_help = "Examples:
  lore embed --model ~/models/all-MiniLM-L6-v2        # config.json, tokenizer.json, model.safetensors
  lore embed --model ~/models/bge-small-en --device cuda
  lore embed --retrain                                 # learn the built-in embedder again

Vectors are stored under the model's id; vectors of different models are never compared.")]
    Embed(search::EmbedArgs),
    /// Rank the files and symbols an issue concerns, from what existed when it was opened.
    #[command(after_help = "Examples:
  lore locate 7
  lore locate 7 --ranker bm25 --limit 5
  lore locate 7 --now --json

Signals: tracebacks, paths and identifiers in the text; BM25 and vectors over the files' code at
the time; files touched by fixes of similar earlier issues and by similar earlier commits.")]
    Locate(search::LocateArgs),
    /// Evaluate lore on the project's own history.
    Eval {
        #[command(subcommand)]
        what: search::EvalWhat,
    },
    /// Turn the rows of a query into training examples (JSONL, and packed token shards).
    #[command(after_help = "Examples:
  lore export --query 'issues fixed_by commit' -t issue_fix -o data/
  lore export --query 'issues where label = bug' -t issue_fix -o data/ --tokenizer ~/models/qwen --seq-len 4096
  lore export --query 'commits where merge = false' -t commit_message -o msgs/ --split-date 2024-06-01
  lore export --query 'issues fixed_by commit' -o data/ --new-since-last --force --format swebench
  lore export --query 'functions' -t code_qa -o qa/ --dry-run

Templates take issues (issue_fix, issue_answer, classify_issue, duplicate), commits
(commit_message) or symbols (code_qa); --template-file uses your own. docs/export.md has the file format.")]
    Export(export::ExportArgs),
    /// Train the next LoRA adapter on what the project added (continues the latest adapter).
    #[command(after_help = "Examples:
  lore model init --tiny --out model/                      # offline: a tiny model for this project
  lore export --query 'issues fixed_by commit' -t issue_fix -o data/ --tokenizer model/ --seq-len 512
  lore adapt --model model/ --data data/                   # adapter 1
  lore export ... --force && lore adapt --model model/ --data data/   # adapter 2 continues 1
  lore adapt --model ~/models/Qwen2.5-0.5B --query 'commits where merge = false' -t commit_message --device cuda
  lore adapt --model model/ --data data/ --resume          # after an interrupted run

Each run trains on the examples newer than the parent adapter's data watermark, plus --replay
of older ones, and reports the validation loss before and after on the new data and on every
earlier adapter's validation set (forgetting). Nothing new: it says so and exits 0.")]
    Adapt(adapt::AdaptArgs),
    /// List adapters, or write one as a PEFT directory that transformers/PEFT and vLLM load.
    #[command(after_help = "Examples:
  lore adapters
  lore adapters list --json
  lore adapters eval 3 --model model/             # on its own and its ancestors' validation sets
  lore adapters eval 5 --model model/ --on 1,2,3  # on other adapters' validation sets
  lore adapters export 3 --out adapters/3/")]
    Adapters {
        #[command(subcommand)]
        command: Option<adapt::AdaptersCommand>,
    },
    /// Make a base model: `lore model init --tiny --out DIR`.
    #[command(after_help = "Examples:
  lore model init --tiny --out model/
  lore model init --tiny --out model/ --hidden 512 --layers 8")]
    Model {
        #[command(subcommand)]
        command: adapt::ModelCommand,
    },
    /// Check that the lore file is whole: redb's page checksums and lore's own invariants, on a
    /// copy (the file is not changed). Exit 0: whole; 1: damaged; 3: a writer was killed and the
    /// file needs recovery (`--repair`).
    #[command(after_help = "Examples:
  lore check
  lore check --kb /data/vllm.lore --json
  lore check --repair        # after a killed ingest: recover to the last commit

Needs free space in the temporary directory (TMPDIR) for one copy of the file. Run it when no
writer (ingest, watch, serve) has the file open: a file being written reads as not closed.")]
    Check(check::CheckArgs),
    /// Answer queries and GitHub webhooks over HTTP (the process owns the file as its writer).
    #[command(after_help = "Examples:
  lore serve                                   # http://127.0.0.1:7700
  curl 'http://127.0.0.1:7700/query?q=issues+where+state+%3D+open+count'
  curl -d 'issues fixed_by commit touching memory_utils' http://127.0.0.1:7700/query
  lore serve --webhook-secret-file /etc/lore/secret --repo vllm-project/vllm --repo-path ~/src/vllm
  lore serve --addr 0.0.0.0:7700 --token-file /etc/lore/token   # others on the network: a token

GitHub webhook: payload URL http://HOST:7700/github, content type application/json, the same
secret; events: issues, issue comments, pull requests, pushes. docs/serve.md has the details.")]
    Serve(serve::ServeArgs),
    /// Bring issues, pull requests and comments from a tracker's API (GitHub).
    Sync {
        #[command(subcommand)]
        what: sync::SyncWhat,
    },
    /// Keep the file current: fetch, ingest, index, and train the next adapter when enough is new.
    #[command(after_help = "Examples:
  lore watch ~/mirrors/vllm.git --once                   # one pass (cron)
  lore watch ~/mirrors/vllm.git --interval 900 --log watch.jsonl
  lore watch ~/mirrors/vllm.git --once --min-new 50 -- --model ~/models/qwen \\
      --query 'issues fixed_by commit' -t issue_fix --device cuda

Each pass prints one JSON line: commits added, new examples, the adapter trained, what was
skipped and why, and how long each stage took. One watcher per lore file.")]
    Watch(watch::WatchArgs),
    /// Propose likely duplicate issues; accept them as `duplicate_of` links.
    #[command(after_help = "Examples:
  lore duplicates
  lore duplicates --of 12
  lore duplicates --open --min-similarity 0.9 --json
  lore duplicates --accept 12:7                # #12 duplicates #7 (provenance: similarity)")]
    Duplicates(search::DuplicatesArgs),
}

pub fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let cli = Cli::parse();
    let kb = cli.kb.clone();
    let outcome = match lore::store::check::contain(|| run(cli)) {
        Ok(outcome) => outcome,
        Err(panic) => {
            // A panic inside redb while reading the file is how damage shows; any other panic is
            // a bug, and its message has been printed already.
            let Some(place) = DEPENDENCY_PANIC.lock().ok().and_then(|mut p| p.take()) else {
                return ExitCode::from(101);
            };
            let _ = writeln!(
                io::stderr().lock(),
                "error: {} looks damaged: {panic} in {place}; `lore check --kb {}` reports what is wrong",
                kb.display(),
                kb.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let err: &(dyn std::error::Error + 'static) = err.as_ref();
            let _ = writeln!(io::stderr().lock(), "error: {}", error_chain(err));
            ExitCode::FAILURE
        }
    }
}

/// `println!` panics when stdout is a pipe whose reader has gone (`lore show issue 7 | head -1`);
/// that is how a pipeline ends, not an error, so the process exits 0 without a word.
///
/// A panic inside redb (reading a damaged page) is recorded in [`DEPENDENCY_PANIC`] rather than
/// printed: `main` reports it as a damaged file in one line.
fn quiet_on_closed_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        // Only redb reads the file's pages; a panic anywhere else is a bug, printed as such.
        let in_store = info
            .location()
            .and_then(|l| dependency_of(l.file()))
            .filter(|krate| krate.starts_with("redb-"));
        if let Some(place) = in_store {
            if let Ok(mut slot) = DEPENDENCY_PANIC.lock() {
                *slot = Some(place);
                return;
            }
        }
        default(info);
    }));
}

/// Where the last panic inside a dependency happened (`redb-4.5.0`), for `main` to report.
static DEPENDENCY_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// The crate a source path belongs to when it is a dependency's (`…/registry/src/…/redb-4.5.0/…`).
fn dependency_of(file: &str) -> Option<String> {
    let rest = file.split("/registry/src/").nth(1)?;
    rest.split('/').nth(1).map(str::to_string)
}

/// An error and its causes, `: `-separated; a cause whose text the message already shows is
/// left out (query errors draw their cause above the caret).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Some(Command::Check(args)) => check::run(&cli.kb, args),
        command => run_command(cli.kb, cli.quiet, command).map(|()| ExitCode::SUCCESS),
    }
}

fn run_command(path: PathBuf, quiet: bool, command: Option<Command>) -> anyhow::Result<()> {
    // Commands that only read open the file read-only: any number of them run at once, beside
    // one writer, and a file they may not write (mode 444) still opens.
    let open = || Kb::open(&path);
    let read = || Kb::open_read_only(&path);
    match command {
        None | Some(Command::Repl) => repl::run(read()?),
        Some(Command::Init { file }) => {
            let file = file.unwrap_or_else(|| path.clone());
            Kb::create(&file)?;
            println!("created {}", file.display());
            Ok(())
        }
        // Ingest creates the file when it does not exist.
        Some(Command::Ingest(args)) => ingest::run(&path, quiet, args),
        Some(Command::Import { what }) => import::run(&open()?, quiet, what),
        Some(Command::Stats { json, storage }) => stats::run(&read()?, json, storage),
        Some(Command::Compact) => stats::compact(&path),
        Some(Command::Serve(args)) => serve::run(open()?, args),
        Some(Command::Watch(args)) => watch::run(&path, args),
        Some(Command::Sync { what }) => sync::run(&open()?, quiet, what),
        Some(Command::Query(args)) => query::run(&read()?, args),
        Some(Command::Show { what }) => show::run(&read()?, what),
        Some(Command::Blame(args)) => blame::run(&read()?, args),
        Some(Command::Index(args)) => search::run_index(&open()?, quiet, args),
        Some(Command::Embed(args)) => search::run_embed(&path, quiet, args),
        Some(Command::Locate(args)) => search::run_locate(&read()?, args),
        Some(Command::Eval { what }) => search::run_eval(&read()?, quiet, what),
        // A dry run only reads; a real export records itself in the file.
        Some(Command::Export(args)) if args.dry_run => export::run(&read()?, quiet, args),
        Some(Command::Export(args)) => export::run(&open()?, quiet, args),
        Some(Command::Duplicates(args)) if args.accept.is_empty() => {
            search::run_duplicates(&read()?, quiet, args)
        }
        Some(Command::Duplicates(args)) => search::run_duplicates(&open()?, quiet, args),
        Some(Command::Adapt(args)) => adapt::run(&open()?, quiet, args),
        Some(Command::Adapters { command }) => adapt::run_adapters(&read()?, quiet, command),
        Some(Command::Model { command }) => adapt::run_model(&read()?, quiet, command),
        Some(Command::Check(args)) => check::run(&path, args).map(drop),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
