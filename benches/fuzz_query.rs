//! A fuzz driver for the query language that runs on the stable toolchain (the `fuzz/` target
//! needs cargo-fuzz and a nightly compiler). For `LORE_FUZZ_SECS` seconds (default 600) it feeds
//! the parser, the binder and the executor, on the fixture's lore file, with generated queries:
//! grammar-shaped ones, mutations of the fixture queries, deep nesting (up to 20,000 levels of
//! parentheses and `not`), long flat `and`/`or` chains, huge numbers, impossible dates and long
//! strings. It fails on a panic, on a query whose printed form does not parse back to the same
//! query, and (by crashing) on a stack overflow.
//!
//! ```text
//! cargo bench --bench fuzz_query                       # ten minutes
//! LORE_FUZZ_SECS=60 LORE_FUZZ_SEED=7 cargo bench --bench fuzz_query
//! ```

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::{Duration, Instant};

use lore::query::parser::parse;

#[path = "common/fixture.rs"]
mod fixture;
use fixture::fixture_kb;

const WORDS: &[&str] = &[
    "issues",
    "issue",
    "prs",
    "pr",
    "commits",
    "commit",
    "files",
    "file",
    "symbols",
    "symbol",
    "functions",
    "classes",
    "methods",
    "authors",
    "author",
    "fixed_by",
    "fixes",
    "touching",
    "touched_by",
    "modifies",
    "modified_by",
    "defines",
    "defined_in",
    "mentions",
    "mentioned_by",
    "introduced_by",
    "introduces",
    "references",
    "referenced_by",
    "duplicate_of",
    "authored_by",
    "parent_of",
    "child_of",
    "merged_as",
    "merges",
    "renamed_from",
    "imports",
    "where",
    "and",
    "or",
    "not",
    "(",
    ")",
    "=",
    "!=",
    "~",
    "<",
    ">",
    "<=",
    ">=",
    "since",
    "until",
    "matching",
    "using",
    "bm25",
    "vector",
    "hybrid",
    "similar",
    "to",
    "concerning",
    "limit",
    "order",
    "by",
    "desc",
    "asc",
    "count",
    "return",
    "explain",
    "state",
    "open",
    "closed",
    "label",
    "title",
    "number",
    "created",
    "date",
    "path",
    "name",
    "lines",
    "score",
    "merge",
    "true",
    "false",
    "memory_utils",
    "free_blocks",
    "Scheduler.schedule",
    "memory_*",
    "#7",
    "#0",
    "#-1",
    "#18446744073709551615",
    "#18446744073709551616",
    "2024-01-10",
    "2024-02-30",
    "9999-99-99",
    "0000-01-01",
    "2024-01-10T09:00:00Z",
    "1e400",
    "99999999999999999999",
    "-0",
    "1.5",
    ",",
    ";",
    "--",
    "\"CUDA out of memory\"",
    "\"\"",
    "\"\\\"\"",
    "\"unterminated",
    "issue.number",
    "commit.sha",
    "*",
    "…",
    "é",
    "\u{0}",
    "\t",
    "\n",
];

/// xorshift64*: a run is reproducible from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn words(rng: &mut Rng, n: usize) -> String {
    (0..n)
        .map(|_| rng.pick(WORDS))
        .collect::<Vec<_>>()
        .join(" ")
}

fn deep(rng: &mut Rng) -> String {
    let depth = [10, 255, 256, 257, 1000, 20_000][rng.below(6)];
    match rng.below(4) {
        0 => format!(
            "issues where {}state = open{}",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
        1 => format!("issues where {}state = open", "not ".repeat(depth)),
        2 => format!("issues where {}state = open", "(not ".repeat(depth / 2)),
        _ => format!("issues where {}", "(".repeat(depth)),
    }
}

fn long_chain(rng: &mut Rng) -> String {
    let n = [10, 999, 1000, 1001, 8000][rng.below(5)];
    let op = if rng.below(2) == 0 { " and " } else { " or " };
    let terms: Vec<String> = (0..n).map(|i| format!("number = {i}")).collect();
    format!("issues where {}", terms.join(op))
}

fn mutate(rng: &mut Rng, seed: &str) -> String {
    let mut tokens: Vec<String> = seed.split(' ').map(str::to_string).collect();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(tokens.len() + 1);
        match rng.below(4) {
            0 if at < tokens.len() => {
                tokens.remove(at);
            }
            1 if at < tokens.len() => tokens[at] = rng.pick(WORDS).to_string(),
            2 => tokens.insert(at, rng.pick(WORDS).to_string()),
            _ => {
                let n = rng.below(tokens.len().max(1));
                let dup = tokens[..n.min(tokens.len())].to_vec();
                tokens.splice(at..at, dup);
            }
        }
    }
    tokens.join(" ")
}

fn input(rng: &mut Rng, seeds: &[String]) -> String {
    match rng.below(10) {
        0 => deep(rng),
        1 => long_chain(rng),
        2 => {
            let bytes: Vec<u8> = (0..rng.below(200)).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        }
        3 => format!("issues matching \"{}\"", "x".repeat(rng.below(1 << 20))),
        4 | 5 => {
            let n = 1 + rng.below(12);
            words(rng, n)
        }
        _ => {
            let seed = &seeds[rng.below(seeds.len())];
            mutate(rng, seed)
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let secs: u64 = std::env::var("LORE_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let seed: u64 = std::env::var("LORE_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026);
    let dir = tempfile::tempdir().unwrap();
    let kb = fixture_kb(dir.path());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seeds = Vec::new();
    for name in ["filters.lq", "relations.lq", "search.lq"] {
        let text = std::fs::read_to_string(root.join("fixtures/queries").join(name)).unwrap();
        seeds.extend(
            text.lines()
                .filter_map(|l| l.strip_prefix("query: "))
                .map(str::to_string),
        );
    }
    // A panic is a finding: report it here, once, with its input.
    std::panic::set_hook(Box::new(|_| {}));
    let mut rng = Rng(seed);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let (mut runs, mut parsed, mut answered) = (0u64, 0u64, 0u64);
    while Instant::now() < deadline {
        let text = input(&mut rng, &seeds);
        runs += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let Ok(query) = parse(&text) else {
                return (false, false);
            };
            let printed = query.to_string();
            let again = parse(&printed)
                .unwrap_or_else(|e| panic!("printed as {printed:?}, which does not parse: {e}"));
            assert_eq!(again.to_string(), printed, "printing is not stable");
            (true, kb.query(&text).is_ok())
        }));
        match outcome {
            Ok((p, a)) => {
                parsed += u64::from(p);
                answered += u64::from(a);
            }
            Err(payload) => {
                let message = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                let shown: String = text.chars().take(400).collect();
                eprintln!("FOUND after {runs} inputs (seed {seed}): {message}\ninput ({} bytes): {shown:?}", text.len());
                std::process::exit(1);
            }
        }
    }
    println!(
        "fuzz_query: {runs} inputs in {secs} s (seed {seed}), {parsed} parsed, {answered} answered on the fixture, no panic, no overflow"
    );
}
