//! `lore repl` (and bare `lore`): an interactive query prompt.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use lore::kb::Kb;
use lore::query::schema::{edge_field_names, Kind, KEYWORDS, RELATIONS};
use lore::query::{Cache, QueryError, Rows, RunOptions};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Editor, Helper};

use super::table::{self, OutputFormat};

const HELP: &str = "Type a query and press Enter; end a line with \\ to continue it.
  issues fixed_by commit touching memory_utils
  commits touching \"minillm/worker/memory_utils.py\" since 2024-01-10 order by date desc limit 5
  issues where label = bug and error ~ \"CUDA\" count by state
  symbols modified_by commits where class = fix count by name
  explain issues fixed_by commit touching memory_utils
Commands:
  .help             this text
  .schema           kinds, their fields, and relations
  .format FORMAT    table, json, jsonl or csv
  .timer on|off     show how long each query takes
  .quit             leave (or Ctrl-D)
Tab completes keywords, relations, fields, file paths and symbol names.
Ctrl-C cancels a running query.";

struct LoreHelper {
    words: Vec<String>,
}

impl Completer for LoreHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let start = line[..pos]
            .rfind(|c: char| c.is_whitespace() || c == '"' || c == '(' || c == ',')
            .map_or(0, |i| i + 1);
        let prefix = &line[start..pos];
        if prefix.is_empty() {
            return Ok((start, Vec::new()));
        }
        let mut out: Vec<Pair> = self
            .words
            .iter()
            .filter(|w| w.starts_with(prefix))
            .take(200)
            .map(|w| Pair {
                display: w.clone(),
                replacement: w.clone(),
            })
            .collect();
        out.dedup_by(|a, b| a.replacement == b.replacement);
        Ok((start, out))
    }
}

impl Hinter for LoreHelper {
    type Hint = String;
}
impl Highlighter for LoreHelper {}
impl Validator for LoreHelper {
    fn validate(&self, ctx: &mut ValidationContext<'_>) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let quotes = input.chars().filter(|c| *c == '"').count();
        let open = input.matches('(').count() > input.matches(')').count();
        Ok(
            if input.trim_end().ends_with('\\') || quotes % 2 == 1 || open {
                ValidationResult::Incomplete
            } else {
                ValidationResult::Valid(None)
            },
        )
    }
}
impl Helper for LoreHelper {}

/// Words for completion: the language's, then paths and symbol names from the file.
fn vocabulary(kb: &Kb) -> anyhow::Result<Vec<String>> {
    let mut words: Vec<String> = Vec::new();
    for k in Kind::ALL {
        words.push(k.words().0.into());
        words.push(k.words().1.into());
        words.extend(k.field_names().iter().map(|f| f.to_string()));
    }
    words.extend(RELATIONS.iter().map(|r| r.name.to_string()));
    words.extend(KEYWORDS.iter().map(|k| k.to_string()));
    words.extend(edge_field_names().iter().map(|k| k.to_string()));
    words.extend([".help", ".schema", ".format", ".timer", ".quit"].map(String::from));
    let read = kb.read()?;
    for (_, path) in read.all_files()? {
        if let Some(name) = path.rsplit('/').next() {
            if let Some((stem, _)) = name.rsplit_once('.') {
                words.push(stem.to_string());
            }
        }
        words.push(path);
    }
    for (_, s) in read.all_symbols()? {
        words.push(read.string(s.name)?);
        words.push(read.string(s.qualified_name)?);
    }
    words.sort();
    words.dedup();
    Ok(words)
}

fn schema_text() -> String {
    let mut out = String::from("kinds and fields:\n");
    for k in Kind::ALL {
        out.push_str(&format!(
            "  {:<10} {}\n",
            k.name(),
            k.field_names().join(", ")
        ));
    }
    out.push_str(&format!(
        "  after a relation, the link: {}\n",
        edge_field_names().join(", ")
    ));
    out.push_str("relations:\n");
    for r in RELATIONS {
        let from: Vec<&str> = r.from.iter().map(|k| k.plural()).collect();
        let to: Vec<&str> = r.to.iter().map(|k| k.plural()).collect();
        out.push_str(&format!(
            "  {:<14} {} -> {}\n",
            r.name,
            from.join("|"),
            to.join("|")
        ));
    }
    out
}

fn history_path() -> Option<PathBuf> {
    std::env::var_os("LORE_HISTORY")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".lore_history")))
}

/// The file's identity on disk: a compaction (`lore compact`, or the end of a large ingest)
/// replaces the file with a new one.
fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

pub fn run(kb: Kb) -> anyhow::Result<()> {
    let path = kb.path().to_path_buf();
    let mut identity = file_identity(&path);
    let mut kb = Arc::new(kb);
    let helper = LoreHelper {
        words: vocabulary(&kb)?,
    };
    let mut editor: Editor<LoreHelper, DefaultHistory> = Editor::new()?;
    editor.set_helper(Some(helper));
    let history = history_path();
    if let Some(h) = &history {
        let _ = editor.load_history(h);
    }
    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // While a query runs the terminal is in normal mode and Ctrl-C is a signal.
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::SeqCst));
    }
    let cache = Arc::new(std::sync::Mutex::new(lore::query::Cache::default()));
    let mut format = OutputFormat::Table;
    let mut timer = false;
    println!(
        "lore {} on {} (.help for help)",
        env!("CARGO_PKG_VERSION"),
        kb.path().display()
    );
    loop {
        let line = match editor.readline("lore> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        let text = line.replace("\\\n", " ").trim().to_string();
        if text.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line.as_str());
        if let Some(cmd) = text.strip_prefix('.') {
            let mut parts = cmd.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some("help"), _) => println!("{HELP}"),
                (Some("schema"), _) => print!("{}", schema_text()),
                (Some("quit" | "exit"), _) => break,
                (Some("format"), Some(f)) => match OutputFormat::from_name(f) {
                    Some(f) => format = f,
                    None => println!("error: unknown format `{f}` (table, json, jsonl, csv)"),
                },
                (Some("format"), None) => println!("format: {}", format.name()),
                (Some("timer"), Some("on")) => timer = true,
                (Some("timer"), Some("off")) => timer = false,
                (Some("timer"), _) => println!("timer: {}", if timer { "on" } else { "off" }),
                _ => println!("error: unknown command `.{cmd}` (.help lists them)"),
            }
            continue;
        }
        // A compaction replaced the file: read the new one (the old one is gone from the disk,
        // so it would never see another commit).
        let now = file_identity(&path);
        if now.is_some() && now != identity {
            match Kb::open_read_only(&path) {
                Ok(reopened) => {
                    kb = Arc::new(reopened);
                    identity = now;
                    *cache.lock().unwrap_or_else(|p| p.into_inner()) = Cache::default();
                }
                Err(e) => println!(
                    "error: {} was replaced and cannot be read: {e}",
                    path.display()
                ),
            }
        }
        cancel.store(false, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel::<Result<Rows, QueryError>>();
        let worker_kb = kb.clone();
        let worker_cache = cache.clone();
        let query = text.clone();
        // The query runs on its own thread, so Ctrl-C can leave it behind.
        std::thread::spawn(move || {
            let options = RunOptions::default();
            let result = match worker_cache.lock() {
                Ok(mut cache) => worker_kb.query_with(&query, &mut cache, options),
                // A query that panicked left the cache poisoned: start afresh.
                Err(_) => worker_kb.query_with(&query, &mut Cache::default(), options),
            };
            let _ = tx.send(result);
        });
        let result = loop {
            match rx.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => break Some(r.map_err(|e: QueryError| super::error_chain(&e))),
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.load(Ordering::SeqCst) => {
                    break None
                }
                Err(mpsc::RecvTimeoutError::Timeout) => continue,
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Some(Err("the query stopped unexpectedly".to_string()))
                }
            }
        };
        match result {
            None => println!("cancelled"),
            Some(Ok(r)) => {
                let mut out = std::io::stdout().lock();
                table::write(&mut out, &r, format, table::width())?;
                if timer {
                    println!("time: {:.2} ms", r.elapsed_ms);
                }
            }
            Some(Err(e)) => println!("error: {e}"),
        }
    }
    if let Some(h) = &history {
        let _ = editor.save_history(h);
    }
    Ok(())
}
