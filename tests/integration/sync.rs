//! `lore sync github` against a local HTTP server that answers as GitHub's REST API does
//! (shapes from GitHub's documentation): pages along `Link` headers, ETags and 304s, comments,
//! closing events with a `commit_id`, rate limits, a 502, and a sync killed mid-way.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lore::kb::{IngestOptions, Kb};
use lore::progress::Silent;
use lore::store::records::Provenance;
use lore::store::Rel;
use lore::sync::{sync, SyncOptions, SyncReport};
use serde_json::{json, Value};

use crate::common::{lore, stderr, Fixture};

/// A commit of the fixture that no commit message links to #7.
const CLOSING_COMMIT: &str = "d93e497e294da3061ebeb7ac79203e5bac77eb42";

type Reply = (u16, Vec<(String, String)>, String);

#[derive(Default)]
struct State {
    issues: Vec<Value>,
    comments: Vec<Value>,
    /// `/pulls/N` answers, by number.
    pulls: Vec<Value>,
    /// Requests seen, path and query.
    seen: Vec<String>,
    /// Answers to give before the real one, in order (rate limit, 502…).
    first: Vec<Reply>,
    /// Delay page 2 (to kill the client while it waits).
    slow_page_2: bool,
}

struct FakeGithub {
    addr: String,
    state: Arc<Mutex<State>>,
}

fn etag_of(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:x}\"", h.finish())
}

impl FakeGithub {
    fn start(state: State) -> FakeGithub {
        let server = tiny_http::Server::http("127.0.0.1:0").unwrap();
        let addr = server.server_addr().to_ip().unwrap().to_string();
        let state = Arc::new(Mutex::new(state));
        let shared = state.clone();
        let base = format!("http://{addr}");
        std::thread::spawn(move || {
            for request in server.incoming_requests() {
                let (status, headers, body) = answer(&shared, &base, &request);
                let mut response = tiny_http::Response::from_string(body).with_status_code(status);
                for (k, v) in headers {
                    response = response.with_header(
                        tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes()).unwrap(),
                    );
                }
                let _ = request.respond(response);
            }
        });
        FakeGithub { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

fn answer(state: &Mutex<State>, base: &str, request: &tiny_http::Request) -> Reply {
    let url = request.url().to_string();
    let if_none_match = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("If-None-Match"))
        .map(|h| h.value.as_str().to_string());
    let slow;
    let reply = {
        let mut s = state.lock().unwrap();
        s.seen.push(url.clone());
        if !s.first.is_empty() {
            return s.first.remove(0);
        }
        slow = s.slow_page_2 && url.contains("page=2");
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let page: usize = query
            .split('&')
            .find_map(|p| p.strip_prefix("page="))
            .and_then(|p| p.parse().ok())
            .unwrap_or(1);
        let since = query
            .split('&')
            .find_map(|p| p.strip_prefix("since="))
            .map(str::to_string);
        let newer = |v: &Value| {
            since
                .as_deref()
                .is_none_or(|s| v["updated_at"].as_str().unwrap_or("") >= s)
        };
        if path == "/repos/minillm/minillm/issues" {
            let mut all: Vec<Value> = s.issues.iter().filter(|v| newer(v)).cloned().collect();
            all.sort_by(|a, b| a["updated_at"].as_str().cmp(&b["updated_at"].as_str()));
            let per_page = 2;
            let chunk: Vec<Value> = all
                .iter()
                .skip((page - 1) * per_page)
                .take(per_page)
                .cloned()
                .collect();
            let mut headers = vec![];
            if page * per_page < all.len() {
                let mut next = format!(
                    "{base}{path}?state=all&sort=updated&direction=asc&per_page=100&page={}",
                    page + 1
                );
                if let Some(since) = &since {
                    next.push_str(&format!("&since={since}"));
                }
                headers.push((
                    "Link".to_string(),
                    format!("<{next}>; rel=\"next\", <{base}{path}?page=9>; rel=\"last\""),
                ));
            }
            Some((headers, Value::Array(chunk).to_string()))
        } else if path == "/repos/minillm/minillm/issues/comments" {
            let all: Vec<Value> = s.comments.iter().filter(|v| newer(v)).cloned().collect();
            Some((vec![], Value::Array(all).to_string()))
        } else if let Some(n) = path.strip_prefix("/repos/minillm/minillm/pulls/") {
            let number: u64 = n.parse().unwrap_or(0);
            s.pulls
                .iter()
                .find(|p| p["number"] == number)
                .map(|p| (vec![], p.to_string()))
        } else if let Some(n) = path
            .strip_prefix("/repos/minillm/minillm/issues/")
            .and_then(|r| r.strip_suffix("/events"))
        {
            let events = if n == "7" {
                json!([
                    {"id": 1, "event": "labeled", "commit_id": null, "created_at": "2024-01-12T09:00:00Z"},
                    {"id": 2, "event": "closed", "commit_id": CLOSING_COMMIT, "created_at": "2024-01-12T10:00:00Z"}
                ])
            } else {
                json!([{"id": 3, "event": "closed", "commit_id": null, "created_at": "2024-01-20T10:00:00Z"}])
            };
            Some((vec![], events.to_string()))
        } else {
            None
        }
    };
    if slow {
        std::thread::sleep(Duration::from_secs(5));
    }
    match reply {
        None => (404, vec![], json!({"message": "Not Found"}).to_string()),
        Some((mut headers, body)) => {
            let tag = etag_of(&body);
            if if_none_match.as_deref() == Some(tag.as_str()) {
                return (304, vec![("ETag".into(), tag)], String::new());
            }
            headers.push(("ETag".into(), tag));
            headers.push(("Content-Type".into(), "application/json".into()));
            (200, headers, body)
        }
    }
}

fn issue(number: u64, state: &str, updated: &str, body: &str) -> Value {
    json!({
        "url": format!("https://api.github.com/repos/minillm/minillm/issues/{number}"),
        "repository_url": "https://api.github.com/repos/minillm/minillm",
        "html_url": format!("https://github.com/minillm/minillm/issues/{number}"),
        "number": number, "title": format!("Issue {number}"), "body": body, "state": state,
        "user": {"login": "reporter"}, "labels": [{"name": "bug"}], "comments": 0,
        "created_at": "2024-01-10T00:00:00Z", "updated_at": updated,
        "closed_at": if state == "closed" { json!(updated) } else { Value::Null }
    })
}

fn issues() -> Vec<Value> {
    vec![
        issue(
            7,
            "closed",
            "2024-02-01T00:00:00Z",
            "Double free when sequences fork",
        ),
        issue(
            12,
            "closed",
            "2024-02-02T00:00:00Z",
            "Scheduler crashes on an empty queue",
        ),
        issue(
            25,
            "open",
            "2024-02-03T00:00:00Z",
            "Build fails with nvcc 12.4",
        ),
        issue(
            30,
            "open",
            "2024-02-04T00:00:00Z",
            "ModuleNotFoundError after upgrading",
        ),
        issue(31, "open", "2024-02-05T00:00:00Z", "A question"),
    ]
}

fn comments() -> Vec<Value> {
    vec![
        json!({"id": 11, "issue_url": "https://api.github.com/repos/minillm/minillm/issues/7",
               "user": {"login": "dev"}, "created_at": "2024-02-01T00:00:00Z", "updated_at": "2024-02-01T00:00:00Z",
               "body": "Reproduced on main."}),
        json!({"id": 12, "issue_url": "https://api.github.com/repos/minillm/minillm/issues/7",
               "user": {"login": "dev2"}, "created_at": "2024-02-01T01:00:00Z", "updated_at": "2024-02-01T01:00:00Z",
               "body": "Same here."}),
    ]
}

/// The fixture's history in a fresh file (no issues yet).
fn history_only(fixture: &Fixture) -> std::path::PathBuf {
    let kb = fixture.kb();
    let (k, _) = Kb::open_or_create(&kb).unwrap();
    let options = IngestOptions {
        index: false,
        ..IngestOptions::default()
    };
    k.ingest(&fixture.repo(), &options, &Silent).unwrap();
    kb
}

fn run(kb: &Path, server: &FakeGithub) -> SyncReport {
    let kb = Kb::open(kb).unwrap();
    let options = SyncOptions {
        api_url: server.url(),
        ..SyncOptions::new("minillm/minillm")
    };
    sync(&kb, &options, &Silent).unwrap()
}

fn imported_issues(kb: &Path) -> u64 {
    let kb = Kb::open_read_only(kb).unwrap();
    kb.read()
        .unwrap()
        .issues()
        .unwrap()
        .iter()
        .filter(|(_, r)| !r.stub)
        .count() as u64
}

#[test]
fn three_pages_comments_closing_events_then_nothing_to_write() {
    let fixture = Fixture::build();
    let kb = history_only(&fixture);
    let server = FakeGithub::start(State {
        issues: issues(),
        comments: comments(),
        ..State::default()
    });
    let first = run(&kb, &server);
    assert_eq!(first.pages, 3, "{first:?}");
    // #7 and #12 were stubs (commit messages name them): filling a stub is an update.
    assert_eq!(
        (first.records, first.created, first.updated),
        (5, 3, 2),
        "{first:?}"
    );
    assert_eq!(first.comments, 2);
    assert_eq!(first.closed_by_commit, 1, "{first:?}");
    assert_eq!(imported_issues(&kb), 5);
    {
        let k = Kb::open_read_only(&kb).unwrap();
        let read = k.read().unwrap();
        let seven = read.issue_by_number(7).unwrap().unwrap();
        assert_eq!(read.issue(seven).unwrap().comments.len(), 2);
        let fixes = read.edges_from(seven, Rel::FixedBy).unwrap();
        let by_event: Vec<_> = fixes
            .iter()
            .filter(|e| e.meta.provenance == Provenance::GithubClosedEvent)
            .collect();
        assert_eq!(by_event.len(), 1);
        assert_eq!(
            lore::store::hex(&read.commit(by_event[0].dst).unwrap().sha),
            CLOSING_COMMIT
        );
        assert_eq!(by_event[0].meta.confidence, 1.0);
    }
    let before = crate::common::content_counts(&crate::common::stats_json(&kb));
    // The second run asks for what changed since the cursors: the newest issue and comment
    // again (GitHub's `since` is inclusive), both unchanged.
    let second = run(&kb, &server);
    assert_eq!(
        (second.created, second.updated, second.unchanged),
        (0, 0, 1),
        "{second:?}"
    );
    // A third run: every request is answered 304, nothing is written.
    let third = run(&kb, &server);
    assert!(third.requests > 0);
    assert_eq!(third.not_modified, third.requests, "{third:?}");
    assert_eq!(
        crate::common::content_counts(&crate::common::stats_json(&kb)),
        before
    );
    let seen = server.state.lock().unwrap().seen.clone();
    assert!(
        seen.iter()
            .any(|u| u.contains("since=2024-02-05T00:00:00Z")),
        "{seen:?}"
    );
}

#[test]
fn an_updated_issue_re_derives_its_links() {
    let fixture = Fixture::build();
    let kb = history_only(&fixture);
    let server = FakeGithub::start(State {
        issues: issues(),
        ..State::default()
    });
    run(&kb, &server);
    let mentions = || crate::common::query_csv(&kb, "files mentioned_by issue #25");
    assert!(!mentions().contains("memory_utils.py"));
    server.state.lock().unwrap().issues[2] = issue(
        25,
        "open",
        "2024-03-01T00:00:00Z",
        "It fails in minillm/worker/memory_utils.py",
    );
    let report = run(&kb, &server);
    assert_eq!(report.updated, 1, "{report:?}");
    assert!(
        mentions().contains("minillm/worker/memory_utils.py"),
        "{}",
        mentions()
    );
}

#[test]
fn a_rate_limit_and_a_502_are_waited_out_and_a_long_reset_stops_clearly() {
    let fixture = Fixture::build();
    let kb = history_only(&fixture);
    let reset = (jiff::Timestamp::now().as_second() + 1).to_string();
    let limited: Reply = (
        403,
        vec![
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), reset),
        ],
        json!({"message": "API rate limit exceeded"}).to_string(),
    );
    let bad_gateway: Reply = (502, vec![], "Bad Gateway".into());
    let server = FakeGithub::start(State {
        issues: issues(),
        first: vec![limited, bad_gateway],
        ..State::default()
    });
    let report = run(&kb, &server);
    assert_eq!(report.rate_limit_waits, 1, "{report:?}");
    assert_eq!(report.retries, 1, "{report:?}");
    assert_eq!(imported_issues(&kb), 5);

    // A reset an hour away with --max-wait 0: a clear stop, and the next run resumes.
    let far = (jiff::Timestamp::now().as_second() + 3600).to_string();
    server.state.lock().unwrap().first = vec![(
        403,
        vec![
            ("X-RateLimit-Remaining".into(), "0".into()),
            ("X-RateLimit-Reset".into(), far),
        ],
        json!({"message": "API rate limit exceeded"}).to_string(),
    )];
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "sync",
        "github",
        "minillm/minillm",
        "--api-url",
        &server.url(),
        "--max-wait",
        "0",
    ]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("rate limit is used up until"), "{err}");
    assert!(!err.contains("Bearer"), "{err}");
}

#[test]
fn a_sync_killed_mid_way_resumes_to_exact_counts() {
    let fixture = Fixture::build();
    let kb = history_only(&fixture);
    let server = FakeGithub::start(State {
        issues: issues(),
        comments: comments(),
        slow_page_2: true,
        ..State::default()
    });
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_lore"))
        .env_remove("LORE_KB")
        .args([
            "--kb",
            kb.to_str().unwrap(),
            "-q",
            "sync",
            "github",
            "minillm/minillm",
            "--api-url",
            &server.url(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the client asks for page 2 (page 1 is committed by then), then kill it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !server
        .state
        .lock()
        .unwrap()
        .seen
        .iter()
        .any(|u| u.contains("page=2"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the sync never asked for page 2"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    child.kill().unwrap();
    child.wait().unwrap();
    server.state.lock().unwrap().slow_page_2 = false;
    let out = lore(&["--kb", kb.to_str().unwrap(), "check", "--repair"]);
    assert!(out.status.success(), "{}", crate::common::stdout(&out));
    assert_eq!(
        imported_issues(&kb),
        2,
        "page 1 was committed before the kill"
    );
    let report = run(&kb, &server);
    assert_eq!(report.created + report.updated, 3, "{report:?}");
    assert_eq!(imported_issues(&kb), 5);
    let k = Kb::open_read_only(&kb).unwrap();
    let read = k.read().unwrap();
    let seven = read
        .issue(read.issue_by_number(7).unwrap().unwrap())
        .unwrap();
    assert_eq!(seven.comments.len(), 2, "comments are merged once");
}

#[test]
fn watch_once_syncs_issues_after_the_ingest() {
    let fixture = Fixture::build();
    let kb = fixture.kb();
    let server = FakeGithub::start(State {
        issues: issues(),
        comments: comments(),
        ..State::default()
    });
    let out = lore(&[
        "--kb",
        kb.to_str().unwrap(),
        "-q",
        "watch",
        fixture.repo().to_str().unwrap(),
        "--once",
        "--no-fetch",
        "--github",
        "minillm/minillm",
        "--api-url",
        &server.url(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let line: Value =
        serde_json::from_str(crate::common::stdout(&out).lines().last().unwrap()).unwrap();
    assert!(line["commits_added"].as_u64().unwrap() > 0);
    assert_eq!(line["sync"]["records"], 5, "{line}");
    assert_eq!(line["sync"]["closed_by_commit"], 1, "{line}");
    assert_eq!(imported_issues(&kb), 5);
}

#[test]
fn a_merged_pull_requests_merge_commit_becomes_a_merged_as_link() {
    let fixture = Fixture::build();
    let kb = history_only(&fixture);
    let mut pr = issue(41, "closed", "2024-02-06T00:00:00Z", "Rebased onto main");
    pr["pull_request"] = json!({"url": "https://api.github.com/repos/minillm/minillm/pulls/41",
                                "merged_at": "2024-02-06T00:00:00Z"});
    let mut list = issues();
    list.push(pr);
    let server = FakeGithub::start(State {
        issues: list,
        pulls: vec![
            json!({"number": 41, "state": "closed", "merged_at": "2024-02-06T00:00:00Z",
                           "merge_commit_sha": CLOSING_COMMIT,
                           "base": {"ref": "main"}, "head": {"ref": "rebased"}}),
        ],
        ..State::default()
    });
    let report = run(&kb, &server);
    assert_eq!(report.merge_commits, 1, "{report:?}");
    let k = Kb::open_read_only(&kb).unwrap();
    let read = k.read().unwrap();
    let pr = read.issue_by_number(41).unwrap().unwrap();
    assert!(read.issue(pr).unwrap().is_pr);
    let merged = read.edges_from(pr, Rel::MergedAs).unwrap();
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].meta.provenance, Provenance::GithubPullRequest);
    assert_eq!(
        lore::store::hex(&read.commit(merged[0].dst).unwrap().sha),
        CLOSING_COMMIT
    );
    // No closing-event request for a pull request.
    let seen = server.state.lock().unwrap().seen.clone();
    assert!(
        !seen.iter().any(|u| u.contains("/issues/41/events")),
        "{seen:?}"
    );
}
