//! `lore serve` under load, against the same work done through the library in the same run.
//!
//! * Queries: C concurrent clients (1, 4, 16) each send R `GET /query` requests (one connection per
//!   request, loopback) to a server with 4 threads; the baseline is C threads calling
//!   `Kb::query` on the same file with the same queries. Throughput and p50/p99 latency.
//! * Webhooks: E signed `issues` events, one after another; the baseline imports the same number
//!   of one-issue dumps through `Kb::import_issues`. Afterwards every accepted event must be in
//!   the file.
//!
//! ```text
//! cargo bench --bench serve
//! LORE_SERVE_REQUESTS=500 LORE_SERVE_EVENTS=200 cargo bench --bench serve
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lore::progress::Silent;
use lore::serve::{signature, ServeOptions, Server};
use serde_json::json;

#[path = "common/fixture.rs"]
mod fixture;

const QUERIES: &[&str] = &[
    "issues count",
    "issues fixed_by commit touching memory_utils",
    "commits where merge = false order by date desc limit 5",
    "issues matching \"free\" using bm25 limit 5",
];
const SECRET: &[u8] = b"bench secret";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `q` for a URL query string: unreserved bytes as they are, everything else `%XX`.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn http(addr: &str, head: &str, body: &[u8]) -> u16 {
    let mut s = TcpStream::connect(addr).unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out[..12.min(out.len())])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Run `work(i)` R times on each of C threads; returns (requests/s, p50 ms, p99 ms).
fn load(
    clients: usize,
    requests: usize,
    work: Arc<dyn Fn(usize) + Send + Sync>,
) -> (f64, f64, f64) {
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let work = work.clone();
            std::thread::spawn(move || {
                (0..requests)
                    .map(|i| {
                        let t = Instant::now();
                        work(c * requests + i);
                        t.elapsed()
                    })
                    .collect::<Vec<Duration>>()
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let total = started.elapsed().as_secs_f64();
    latencies.sort();
    let at = |q: f64| {
        latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)].as_secs_f64()
            * 1000.0
    };
    (latencies.len() as f64 / total, at(0.5), at(0.99))
}

fn issue(number: usize) -> serde_json::Value {
    json!({
        "number": number, "title": format!("Load issue {number}"), "body": "free_blocks again",
        "state": "open", "created_at": "2025-03-01T00:00:00Z", "updated_at": "2025-03-01T00:00:00Z",
        "user": {"login": "bench"}, "labels": [], "comments": 0
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests = env("LORE_SERVE_REQUESTS", 200);
    let events = env("LORE_SERVE_EVENTS", 100);
    let dir = tempfile::tempdir().unwrap();
    let kb = Arc::new(fixture::fixture_kb(dir.path()));
    println!(
        "lore serve load, fixture file, 2 cores; server: 4 threads; {requests} requests per client"
    );

    // Baselines through the library, on the same file, before the server owns it.
    let mut library = Vec::new();
    for clients in [1, 4, 16] {
        let kb = kb.clone();
        library.push(load(
            clients,
            requests,
            Arc::new(move |i| {
                kb.query(QUERIES[i % QUERIES.len()]).unwrap();
            }),
        ));
    }
    let options = fixture::github_import();
    let started = Instant::now();
    for n in 0..events {
        let dump = dir.path().join("one.json");
        std::fs::write(&dump, json!([issue(10_000 + n)]).to_string()).unwrap();
        kb.import_issues(&dump, &options, false, &Silent).unwrap();
    }
    let import_rate = events as f64 / started.elapsed().as_secs_f64();

    let kb = Arc::try_unwrap(kb).unwrap_or_else(|_| panic!("the baselines hold no handle"));
    let server = Server::bind(
        kb,
        ServeOptions {
            addr: "127.0.0.1:0".into(),
            webhook_secret: Some(SECRET.to_vec()),
            github_repo: Some("minillm/minillm".into()),
            ..ServeOptions::default()
        },
    )
    .unwrap();
    let addr = server.local_addr().unwrap().to_string();
    std::thread::spawn(move || server.run());

    println!(
        "| clients | library q/s | HTTP q/s | ratio | HTTP p50 ms | HTTP p99 ms | library p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (clients, lib) in [1, 4, 16].into_iter().zip(&library) {
        let a = addr.clone();
        let over_http = load(
            clients,
            requests,
            Arc::new(move |i| {
                let head = format!(
                    "GET /query?q={} HTTP/1.1",
                    encode(QUERIES[i % QUERIES.len()])
                );
                let status = http(&a, &head, b"");
                assert_eq!(status, 200);
            }),
        );
        println!(
            "| {clients} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
            lib.0,
            over_http.0,
            over_http.0 / lib.0,
            over_http.1,
            over_http.2,
            lib.2
        );
    }

    let before = http_count(&addr);
    let started = Instant::now();
    for n in 0..events {
        let body = json!({"action": "opened", "issue": issue(20_000 + n)}).to_string();
        let head = format!(
            "POST /github HTTP/1.1\r\nX-GitHub-Event: issues\r\nX-Hub-Signature-256: {}",
            signature(SECRET, body.as_bytes())
        );
        assert_eq!(http(&addr, &head, body.as_bytes()), 200);
    }
    let webhook_rate = events as f64 / started.elapsed().as_secs_f64();
    let after = http_count(&addr);
    assert_eq!(
        after,
        before + events as u64,
        "every accepted event is in the file"
    );
    println!(
        "webhooks: {webhook_rate:.1} events/s against {import_rate:.1} one-issue imports/s through the library ({:.2}); {events} accepted, {events} in the file",
        webhook_rate / import_rate
    );
}

fn http_count(addr: &str) -> u64 {
    let mut s = TcpStream::connect(addr).unwrap();
    let body = b"issues count";
    let request = format!(
        "POST /query HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(request.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let json = &out[out.find("\r\n\r\n").unwrap() + 4..];
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v["rows"][0][0].as_u64().unwrap()
}
