//! Command-line interface: clap definitions, dispatch, and error reporting.

mod import;
mod ingest;
mod progress;
mod query;
mod render;
mod repl;
mod search;
mod show;
mod show_code;
mod show_issue;
mod stats;
mod table;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    #[command(after_help = "Examples:\n  lore stats\n  lore stats --json | jq .nodes")]
    Stats {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
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
    /// Propose likely duplicate issues; accept them as `duplicate_of` links.
    #[command(after_help = "Examples:
  lore duplicates
  lore duplicates --of 12
  lore duplicates --open --min-similarity 0.9 --json
  lore duplicates --accept 12:7                # #12 duplicates #7 (provenance: similarity)")]
    Duplicates(search::DuplicatesArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            let mut stderr = io::stderr().lock();
            let _ = write!(stderr, "error: {err}");
            for cause in err.chain().skip(1) {
                let _ = write!(stderr, ": {cause}");
            }
            let _ = writeln!(stderr);
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        return repl::run(&cli.kb);
    };
    match command {
        Command::Init { file } => {
            let path = file.unwrap_or(cli.kb);
            lore::store::Store::create(&path)?;
            println!("created {}", path.display());
            Ok(())
        }
        Command::Ingest(args) => ingest::run(&cli.kb, cli.quiet, args),
        Command::Stats { json } => stats::run(&cli.kb, json),
        Command::Query(args) => query::run(&cli.kb, args),
        Command::Repl => repl::run(&cli.kb),
        Command::Import { what } => import::run(&cli.kb, cli.quiet, what),
        Command::Show { what } => show::run(&cli.kb, what),
        Command::Index(args) => search::run_index(&cli.kb, cli.quiet, args),
        Command::Embed(args) => search::run_embed(&cli.kb, cli.quiet, args),
        Command::Locate(args) => search::run_locate(&cli.kb, args),
        Command::Eval { what } => search::run_eval(&cli.kb, cli.quiet, what),
        Command::Duplicates(args) => search::run_duplicates(&cli.kb, cli.quiet, args),
    }
}
