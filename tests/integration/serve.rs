//! `lore serve` over real HTTP on loopback: queries, health, signed GitHub webhooks, and
//! queries that keep answering while webhooks write.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use lore::kb::Kb;
use serde_json::{json, Value};

use crate::queries::fixture_kb;

const SECRET: &[u8] = b"It's a Secret to Everybody";

struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(kb: &Path, extra: &[&str]) -> Served {
    let dir = kb.parent().unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_lore"))
        .env_remove("LORE_KB")
        .args([
            "--kb",
            kb.to_str().unwrap(),
            "serve",
            "--addr",
            "127.0.0.1:0",
        ])
        .args(["--webhook-secret-file", secret.to_str().unwrap()])
        .args(["--repo", "minillm/minillm"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .rsplit("http://")
        .next()
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    Served { child, addr }
}

/// One HTTP/1.1 request; returns the status and the body.
fn request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A refused body may be answered before it is all sent.
    let _ = stream.write_all(body);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let text_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head");
    let head = String::from_utf8_lossy(&response[..text_end]).to_string();
    let status: u16 = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, response[text_end + 4..].to_vec())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)))
}

fn query(addr: &str, q: &str) -> (u16, Value) {
    let (status, body) = request(addr, "POST", "/query", &[], q.as_bytes());
    (status, json_of(&body))
}

fn count(addr: &str, q: &str) -> u64 {
    let (status, v) = query(addr, q);
    assert_eq!(status, 200, "{v}");
    v["rows"][0][0].as_u64().unwrap()
}

fn webhook(addr: &str, event: &str, body: &[u8], signature: Option<String>) -> (u16, Value) {
    let mut headers = vec![
        ("X-GitHub-Event", event.to_string()),
        ("Content-Type", "application/json".to_string()),
    ];
    if let Some(s) = signature {
        headers.push(("X-Hub-Signature-256", s));
    }
    let (status, body) = request(addr, "POST", "/github", &headers, body);
    (status, json_of(&body))
}

fn signed(event: &str, addr: &str, payload: &Value) -> (u16, Value) {
    let body = payload.to_string().into_bytes();
    webhook(
        addr,
        event,
        &body,
        Some(lore::serve::signature(SECRET, &body)),
    )
}

fn issue(number: u64, title: &str, updated: &str) -> Value {
    json!({
        "number": number, "title": title, "body": "", "state": "open",
        "created_at": "2025-03-01T00:00:00Z", "updated_at": updated,
        "user": {"login": "someone"}, "labels": [], "comments": 0,
        "html_url": format!("https://github.com/minillm/minillm/issues/{number}")
    })
}

#[test]
fn queries_round_trip_over_http() {
    let (_fixture, kb) = fixture_kb();
    let s = serve(&kb, &[]);
    let (status, body) = request(&s.addr, "GET", "/health", &[], b"");
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["counts"]["nodes"]["issues"], 12);
    let (status, body) = request(
        &s.addr,
        "GET",
        "/query?q=issues+where+state+%3D+open+count",
        &[],
        b"",
    );
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["rows"], json!([[2]]));
    let (status, v) = query(&s.addr, "issues fixed_by commit touching memory_utils");
    assert_eq!(status, 200);
    assert_eq!(v["columns"][0], "number");
    let numbers: Vec<&str> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["#7", "#20"]);
    let (status, body) = request(&s.addr, "POST", "/query", &[], br#"{"q": "commits count"}"#);
    assert_eq!(status, 200);
    assert_eq!(json_of(&body)["rows"][0][0], 32);
    let (status, v) = query(&s.addr, "issues fixd_by commit");
    assert_eq!(status, 400);
    assert!(v["error"].as_str().unwrap().contains("fixed_by"), "{v}");
    assert_eq!(request(&s.addr, "GET", "/nowhere", &[], b"").0, 404);
    assert_eq!(request(&s.addr, "DELETE", "/query", &[], b"").0, 405);
}

#[test]
fn a_query_token_is_required_when_configured() {
    let (fixture, kb) = fixture_kb();
    let token = fixture.dir.path().join("token");
    std::fs::write(&token, "t0ken\n").unwrap();
    let s = serve(&kb, &["--token-file", token.to_str().unwrap()]);
    assert_eq!(query(&s.addr, "issues count").0, 401);
    let (status, _) = request(
        &s.addr,
        "POST",
        "/query",
        &[("Authorization", "Bearer wrong".into())],
        b"issues count",
    );
    assert_eq!(status, 401);
    let (status, body) = request(
        &s.addr,
        "POST",
        "/query",
        &[("Authorization", "Bearer t0ken".into())],
        b"issues count",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn webhooks_are_verified_before_anything_is_written() {
    let (_fixture, kb) = fixture_kb();
    let s = serve(&kb, &[]);
    let before = count(&s.addr, "issues count");
    let payload = json!({"action": "opened", "issue": issue(95, "Opened through a webhook", "2025-03-01T00:00:00Z")});
    let body = payload.to_string().into_bytes();
    // Unsigned, wrongly signed, signed with another secret: 401, nothing written.
    assert_eq!(webhook(&s.addr, "issues", &body, None).0, 401);
    assert_eq!(
        webhook(&s.addr, "issues", &body, Some("sha256=00".into())).0,
        401
    );
    let other = lore::serve::signature(b"another secret", &body);
    assert_eq!(webhook(&s.addr, "issues", &body, Some(other)).0, 401);
    assert_eq!(count(&s.addr, "issues count"), before);
    // Garbage, signed: 400. Over 25 MiB: 413. Unknown event: 202. Ping: 200.
    let garbage = b"{not json".to_vec();
    let sig = lore::serve::signature(SECRET, &garbage);
    assert_eq!(webhook(&s.addr, "issues", &garbage, Some(sig)).0, 400);
    let huge = vec![b' '; lore::serve::MAX_WEBHOOK_BODY + 1];
    assert_eq!(
        webhook(&s.addr, "issues", &huge, Some("sha256=00".into())).0,
        413
    );
    assert_eq!(
        signed("star", &s.addr, &json!({"action": "created"})).0,
        202
    );
    assert_eq!(
        signed(
            "ping",
            &s.addr,
            &json!({"zen": "Keep it logically awesome."})
        )
        .0,
        200
    );
    assert_eq!(count(&s.addr, "issues count"), before);
    // Signed right: imported.
    let (status, v) = webhook(
        &s.addr,
        "issues",
        &body,
        Some(lore::serve::signature(SECRET, &body)),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["created"], 1);
    assert_eq!(count(&s.addr, "issues count"), before + 1);
    assert_eq!(
        count(
            &s.addr,
            "issues where number = 95 and title ~ \"webhook\" count"
        ),
        1
    );
}

#[test]
fn a_comment_webhook_adds_to_the_comments_the_file_has() {
    let (_fixture, kb) = fixture_kb();
    let comments_of = |n: u64| {
        let kb = Kb::open_read_only(&kb).unwrap();
        let read = kb.read().unwrap();
        read.issue(read.issue_by_number(n).unwrap().unwrap())
            .unwrap()
            .comments
    };
    let before = comments_of(7);
    assert!(!before.is_empty());
    let s = serve(&kb, &[]);
    let mut seven = issue(
        7,
        "Double free in free_blocks when sequences fork",
        "2030-01-01T00:00:00Z",
    );
    seven["state"] = "closed".into();
    let payload = json!({
        "action": "created",
        "issue": seven,
        "comment": {"user": {"login": "late"}, "created_at": "2030-01-01T00:00:00Z", "body": "Still fixed on main."}
    });
    let (status, v) = signed("issue_comment", &s.addr, &payload);
    assert_eq!(status, 200, "{v}");
    let after = comments_of(7);
    assert_eq!(after.len(), before.len() + 1);
    assert_eq!(after[..before.len()], before[..]);
    assert_eq!(after.last().unwrap().body, "Still fixed on main.");
    // An `issues` event (a comment count, no comments) keeps them.
    seven["updated_at"] = "2030-01-02T00:00:00Z".into();
    let (status, v) = signed(
        "issues",
        &s.addr,
        &json!({"action": "edited", "issue": seven}),
    );
    assert_eq!(status, 200, "{v}");
    assert_eq!(comments_of(7).len(), before.len() + 1);
}

#[test]
fn queries_keep_answering_while_webhooks_write() {
    let (_fixture, kb) = fixture_kb();
    let s = serve(&kb, &[]);
    let before = count(&s.addr, "issues count");
    let events = 20u64;
    let addr = s.addr.clone();
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                for _ in 0..40 {
                    seen.push(count(&addr, "issues count"));
                }
                seen
            })
        })
        .collect();
    for i in 0..events {
        let payload =
            json!({"action": "opened", "issue": issue(200 + i, "Burst", "2025-03-01T00:00:00Z")});
        let (status, v) = signed("issues", &s.addr, &payload);
        assert_eq!(status, 200, "{v}");
    }
    for r in readers {
        let seen = r.join().unwrap();
        assert!(
            seen.windows(2).all(|w| w[0] <= w[1]),
            "a reader went back in time: {seen:?}"
        );
        assert!(
            seen.iter()
                .all(|&n| (before..=before + events).contains(&n)),
            "{seen:?}"
        );
    }
    // Every accepted event is in the file.
    assert_eq!(count(&s.addr, "issues count"), before + events);
}

#[test]
fn a_push_webhook_fetches_and_ingests_the_new_commits() {
    let (fixture, kb) = fixture_kb();
    let mirror = fixture.mirror();
    let s = serve(&kb, &["--repo-path", mirror.to_str().unwrap()]);
    let before = count(&s.addr, "commits count");
    crate::common::git_in(&fixture.repo(), &["checkout", "-q", "main"]);
    std::fs::write(fixture.repo().join("PUSHED.md"), "pushed\n").unwrap();
    crate::common::git_in(&fixture.repo(), &["add", "."]);
    crate::common::git_in(&fixture.repo(), &["commit", "-q", "-m", "A pushed commit"]);
    let (status, v) = signed(
        "push",
        &s.addr,
        &json!({"ref": "refs/heads/main", "after": "0"}),
    );
    assert_eq!(status, 202, "{v}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while count(&s.addr, "commits count") == before {
        assert!(
            std::time::Instant::now() < deadline,
            "the push was never ingested"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(count(&s.addr, "commits count"), before + 1);
}
