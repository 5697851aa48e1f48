//! `lore sync github OWNER/NAME`: issues, pull requests, comments and closing events from the
//! GitHub REST API, through the same importer as a dump.
//!
//! * Issues and pull requests: `/repos/O/N/issues?state=all&sort=updated&direction=asc
//!   &per_page=100&since=CURSOR`, page by page along the `Link` header. Each page is imported in
//!   one transaction. The cursor moves only when the whole run has succeeded, to the *oldest*
//!   `updated_at` of the last page: an issue updated while the run paged moves to the end of
//!   the list, the issues after it shift one place back, and one of them can slip into a page
//!   already read; it is no newer than that page's oldest, so the next run (GitHub's `since` is
//!   inclusive) sees it. A killed or rate-limited run fetches its pages again, and the
//!   importer's upsert keeps everything once.
//! * Comments: `/repos/O/N/issues/comments?since=CURSOR`, merged into their issues.
//! * For each closed issue of the pages, `/repos/O/N/issues/N/events`: a `closed` event with a
//!   `commit_id` is GitHub's record of the commit that closed it, stored as a `fixed_by` link
//!   with provenance `github-closed-event` and confidence 1.0.
//! * For each merged pull request of the pages, `/repos/O/N/pulls/N`: its `merge_commit_sha` is
//!   stored as a `merged_as` link with provenance `github-pull-request` (a rebase merge names no
//!   pull request in its commit messages).
//! * Every URL's `ETag` is kept in the file (with the page that followed it) and sent as
//!   `If-None-Match`: an unchanged page answers 304, which writes nothing and, authenticated,
//!   costs no rate limit.
//! * Rate limits: with `X-RateLimit-Remaining: 0` lore waits for `X-RateLimit-Reset` when that is
//!   within `max_wait`, else stops with a clear message (the next run resumes from the cursor);
//!   403/429 with `Retry-After` waits that long. 5xx answers and connection errors are retried
//!   with backoff. The token (`GITHUB_TOKEN`/`GH_TOKEN`) is sent, never printed or stored.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::ingest::issues::{self, formats, Format, ImportOptions, Skips};
use crate::kb::Kb;
use crate::progress::{Progress, Silent};
use crate::store::records::{EdgeDetail, EdgeMeta, Provenance};
use crate::store::{Rel, StoreError};
use crate::{Error, Result};

/// How to sync.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// `owner/name`.
    pub repo: String,
    /// `https://api.github.com`, or a GitHub Enterprise or test server.
    pub api_url: String,
    pub token: Option<String>,
    /// The longest lore waits for a rate limit to reset before it stops.
    pub max_wait: Duration,
    /// Retries of a 5xx answer or a connection error.
    pub retries: u32,
    /// Fetch the events of closed issues for their closing commits.
    pub closing_events: bool,
}

impl SyncOptions {
    pub fn new(repo: &str) -> SyncOptions {
        SyncOptions {
            repo: repo.to_string(),
            api_url: "https://api.github.com".into(),
            token: None,
            max_wait: Duration::from_secs(15 * 60),
            retries: 4,
            closing_events: true,
        }
    }
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncReport {
    pub requests: u64,
    /// Answers 304: unchanged since the last sync.
    pub not_modified: u64,
    pub retries: u64,
    pub rate_limit_waits: u64,
    pub pages: u64,
    pub records: u64,
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub comments: u64,
    /// `fixed_by` links from GitHub's closing events (new ones).
    pub closed_by_commit: u64,
    /// Closing events naming a commit the file does not hold.
    pub closing_commits_missing: u64,
    /// `merged_as` links from merged pull requests' `merge_commit_sha` (new ones).
    pub merge_commits: u64,
    /// Merge commits the file does not hold (not ingested yet, or on a deleted branch).
    pub merge_commits_missing: u64,
    pub skipped: Skips,
    /// The cursor after the sync (the oldest `updated_at` of the last page).
    pub cursor: Option<String>,
    pub elapsed_ms: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    #[error("{repo} is not of the form owner/name")]
    BadRepo { repo: String },
    #[error("GET {url}: {detail}")]
    Http { url: String, detail: String },
    #[error("GET {url} answered {status}: {message}")]
    Status {
        url: String,
        status: u16,
        message: String,
    },
    #[error("GitHub's rate limit is used up until {reset}; lore stopped after committing what it had (run `lore sync` again then, or set GITHUB_TOKEN for a higher limit)")]
    RateLimited { reset: String },
    #[error("GET {url}: the answer is not the JSON lore expects: {detail}")]
    Shape { url: String, detail: String },
}

struct Answer {
    status: u16,
    etag: Option<String>,
    next: Option<String>,
    body: String,
}

struct Client<'a> {
    agent: ureq::Agent,
    options: &'a SyncOptions,
    report: &'a mut SyncReport,
}

impl Client<'_> {
    /// GET `url` with its stored ETag; retries, waits for rate limits.
    fn get(&mut self, url: &str, etag: Option<&str>) -> Result<Answer, SyncError> {
        let mut attempt = 0;
        let mut waits = 0;
        loop {
            self.report.requests += 1;
            let mut request = self
                .agent
                .get(url)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .header("User-Agent", "lore");
            if let Some(token) = &self.options.token {
                request = request.header("Authorization", &format!("Bearer {token}"));
            }
            if let Some(tag) = etag {
                request = request.header("If-None-Match", tag);
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(e) if attempt < self.options.retries => {
                    attempt += 1;
                    self.report.retries += 1;
                    let _ = e;
                    std::thread::sleep(backoff(attempt));
                    continue;
                }
                Err(e) => {
                    return Err(SyncError::Http {
                        url: url.into(),
                        detail: e.to_string(),
                    })
                }
            };
            let status = response.status().as_u16();
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let remaining = header("x-ratelimit-remaining").and_then(|v| v.parse::<u64>().ok());
            let reset = header("x-ratelimit-reset").and_then(|v| v.parse::<i64>().ok());
            let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
            let etag_out = header("etag");
            let next = header("link").and_then(|l| next_link(&l));
            let limited =
                matches!(status, 403 | 429) && (retry_after.is_some() || remaining == Some(0));
            if limited {
                let wait = match (retry_after, reset) {
                    (Some(secs), _) => Duration::from_secs(secs),
                    (None, Some(reset)) => {
                        let now = jiff::Timestamp::now().as_second();
                        Duration::from_secs(reset.saturating_sub(now).max(0) as u64 + 1)
                    }
                    (None, None) => Duration::from_secs(60),
                };
                waits += 1;
                if wait > self.options.max_wait || waits > MAX_WAITS {
                    let reset = reset
                        .and_then(|r| jiff::Timestamp::from_second(r).ok())
                        .map_or_else(
                            || format!("{} s from now", wait.as_secs()),
                            |t| t.to_string(),
                        );
                    return Err(SyncError::RateLimited { reset });
                }
                self.report.rate_limit_waits += 1;
                std::thread::sleep(wait);
                continue;
            }
            if status >= 500 && attempt < self.options.retries {
                attempt += 1;
                self.report.retries += 1;
                std::thread::sleep(backoff(attempt));
                continue;
            }
            let mut response = response;
            let body = response
                .body_mut()
                .with_config()
                .limit(64 << 20)
                .read_to_string()
                .map_err(|e| SyncError::Http {
                    url: url.into(),
                    detail: e.to_string(),
                })?;
            if status == 304 {
                self.report.not_modified += 1;
            } else if !(200..300).contains(&status) {
                let message = serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| v["message"].as_str().map(str::to_string))
                    .unwrap_or_else(|| body.chars().take(200).collect());
                return Err(SyncError::Status {
                    url: url.into(),
                    status,
                    message,
                });
            }
            return Ok(Answer {
                status,
                etag: etag_out,
                next,
                body,
            });
        }
    }
}

/// Rate-limit waits for one request before lore stops.
const MAX_WAITS: u32 = 5;

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(250 << attempt.min(6))
}

/// The `rel="next"` URL of a `Link` header.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params
            .split(';')
            .any(|p| p.trim() == "rel=\"next\"")
            .then(|| {
                url.trim()
                    .trim_start_matches('<')
                    .trim_end_matches('>')
                    .to_string()
            })
    })
}

fn cursor_key(repo: &str) -> String {
    format!("sync.github.{repo}.since")
}

fn comments_cursor_key(repo: &str) -> String {
    format!("sync.github.{repo}.comments_since")
}

fn etag_key(url: &str) -> String {
    format!("sync.etag.{url}")
}

/// Items per page of the list endpoints.
const PER_PAGE: usize = 100;

/// A list page's ETag and the page to read after it when it is unchanged (a 304 carries no
/// body, so the `Link` of the last 200 is kept with the ETag).
fn page_mark(kb: &Kb, url: &str) -> Result<(Option<String>, Option<String>), StoreError> {
    let Some(stored) = meta(kb, &etag_key(url))? else {
        return Ok((None, None));
    };
    let (etag, next) = stored.split_once('\n').unwrap_or((&stored, ""));
    Ok((
        Some(etag.to_string()),
        (!next.is_empty()).then(|| next.to_string()),
    ))
}

/// Where to go after a page: its `rel="next"`, or, for a full page without one, the next page
/// number (a page that was full can grow a successor while it stays unchanged itself).
fn after_page(url: &str, next: Option<String>, count: usize) -> Option<String> {
    next.or_else(|| {
        (count >= PER_PAGE).then(|| {
            let page: u64 = url
                .split(['?', '&'])
                .find_map(|p| p.strip_prefix("page="))
                .and_then(|p| p.parse().ok())
                .unwrap_or(1);
            let rest: Vec<&str> = url.split('&').filter(|p| !p.starts_with("page=")).collect();
            format!("{}&page={}", rest.join("&"), page + 1)
        })
    })
}

/// A list page: unchanged since the last run (with the page after it), or read afresh.
enum Page {
    Unchanged(Option<String>),
    Fresh(Answer, Vec<Value>),
}

fn read_page(client: &mut Client<'_>, kb: &Kb, url: &str) -> Result<Page> {
    let (etag, unchanged_next) = page_mark(kb, url)?;
    let answer = client.get(url, etag.as_deref())?;
    if answer.status == 304 {
        return Ok(Page::Unchanged(unchanged_next));
    }
    let items: Vec<Value> = serde_json::from_str(&answer.body).map_err(|e| SyncError::Shape {
        url: url.into(),
        detail: e.to_string(),
    })?;
    Ok(Page::Fresh(answer, items))
}

/// Keep a committed page's ETag with the page after it; returns that page.
fn keep_page(kb: &Kb, url: &str, answer: &Answer, count: usize) -> Result<Option<String>> {
    let next = after_page(url, answer.next.clone(), count);
    if let Some(tag) = &answer.etag {
        let mark = format!("{tag}\n{}", next.as_deref().unwrap_or(""));
        set_meta(kb, &etag_key(url), &mark)?;
    }
    Ok(next)
}

fn meta(kb: &Kb, key: &str) -> Result<Option<String>, StoreError> {
    Ok(kb
        .read()?
        .meta(key)?
        .and_then(|v| String::from_utf8(v).ok()))
}

fn set_meta(kb: &Kb, key: &str, value: &str) -> Result<(), StoreError> {
    kb.store().write(|tx| tx.set_meta(key, value.as_bytes()))
}

/// Sync `options.repo` into `kb` (see the module documentation).
pub fn sync(kb: &Kb, options: &SyncOptions, progress: &dyn Progress) -> Result<SyncReport> {
    let started = Instant::now();
    let Some((owner, name)) = options
        .repo
        .split_once('/')
        .filter(|(o, n)| !o.is_empty() && !n.is_empty() && !n.contains('/'))
    else {
        return Err(Error::from(SyncError::BadRepo {
            repo: options.repo.clone(),
        }));
    };
    let mut report = SyncReport::default();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let base = format!(
        "{}/repos/{owner}/{name}",
        options.api_url.trim_end_matches('/')
    );
    let cursor = meta(kb, &cursor_key(&options.repo))?;
    let mut client = Client {
        agent,
        options,
        report: &mut report,
    };
    let since = cursor
        .as_deref()
        .map(|c| format!("&since={c}"))
        .unwrap_or_default();
    let import = ImportOptions {
        format: Format::Github,
        repo: Some(options.repo.clone()),
        comments: None,
        git: None,
        szz: true,
    };

    // Issues and pull requests, page by page.
    let mut url = Some(format!(
        "{base}/issues?state=all&sort=updated&direction=asc&per_page={PER_PAGE}{since}"
    ));
    let mut closed: Vec<u64> = Vec::new();
    let mut last_oldest: Option<String> = None;
    let mut merged: Vec<u64> = Vec::new();
    progress.phase("syncing issues", None);
    while let Some(page_url) = url.take() {
        let (answer, records) = match read_page(&mut client, kb, &page_url)? {
            Page::Unchanged(next) => {
                url = next;
                continue;
            }
            Page::Fresh(answer, items) => (answer, items),
        };
        client.report.pages += 1;
        client.report.records += records.len() as u64;
        progress.advance(records.len() as u64);
        let oldest = records
            .iter()
            .filter_map(|r| r["updated_at"].as_str())
            .min()
            .map(str::to_string);
        closed.extend(
            records
                .iter()
                .filter(|r| r["state"] == "closed" && r.get("pull_request").is_none())
                .filter_map(|r| r["number"].as_u64()),
        );
        merged.extend(
            records
                .iter()
                .filter(|r| r["pull_request"]["merged_at"].is_string())
                .filter_map(|r| r["number"].as_u64()),
        );
        if !records.is_empty() {
            let dump = tempfile::Builder::new()
                .suffix(".json")
                .tempfile()
                .map_err(|e| SyncError::Http {
                    url: page_url.clone(),
                    detail: format!("no temporary file: {e}"),
                })?;
            std::fs::write(dump.path(), &answer.body).map_err(|e| SyncError::Http {
                url: page_url.clone(),
                detail: format!("cannot write the page: {e}"),
            })?;
            let imported = kb.import_issues(dump.path(), &import, false, &Silent)?;
            client.report.created += imported.import.created;
            client.report.updated += imported.import.updated;
            client.report.unchanged += imported.import.unchanged;
            for (k, v) in imported.import.skipped.0 {
                *client.report.skipped.0.entry(k).or_default() += v;
            }
        }
        if oldest.is_some() {
            last_oldest = oldest;
        }
        // The page's ETag is kept once the page is committed.
        url = keep_page(kb, &page_url, &answer, records.len())?;
    }
    progress.done();

    // Comments since their own cursor (an interrupted run may have moved the issues' cursor
    // before it reached the comments).
    let comments_cursor = meta(kb, &comments_cursor_key(&options.repo))?;
    let mut last_comment_oldest: Option<String> = None;
    let comments_since = comments_cursor
        .as_deref()
        .map(|c| format!("&since={c}"))
        .unwrap_or_default();
    let mut url = Some(format!(
        "{base}/issues/comments?sort=updated&direction=asc&per_page={PER_PAGE}{comments_since}"
    ));
    while let Some(page_url) = url.take() {
        let (answer, comments) = match read_page(&mut client, kb, &page_url)? {
            Page::Unchanged(next) => {
                url = next;
                continue;
            }
            Page::Fresh(answer, items) => (answer, items),
        };
        let mut by_issue: BTreeMap<u64, Vec<crate::store::records::Comment>> = BTreeMap::new();
        let mut skips = Skips::default();
        for c in &comments {
            let Some(number) = c["issue_url"]
                .as_str()
                .and_then(|u| u.rsplit('/').next())
                .and_then(|n| n.parse().ok())
            else {
                skips.count("comment_without_issue_url");
                continue;
            };
            by_issue
                .entry(number)
                .or_default()
                .push(formats::github_comment(c, &mut skips));
        }
        let merged = issues::merge_comments(kb.store(), &by_issue, Some(&options.repo))?;
        client.report.comments += comments.len() as u64;
        if let Some(oldest) = comments
            .iter()
            .filter_map(|c| c["updated_at"].as_str().or(c["created_at"].as_str()))
            .min()
        {
            last_comment_oldest = Some(oldest.to_string());
        }
        for (k, v) in skips.0.into_iter().chain(merged.skipped.0) {
            *client.report.skipped.0.entry(k).or_default() += v;
        }
        url = keep_page(kb, &page_url, &answer, comments.len())?;
    }

    // GitHub's record of the commit that closed each closed issue.
    if options.closing_events {
        closed.sort_unstable();
        closed.dedup();
        for number in closed {
            let events_url = format!("{base}/issues/{number}/events?per_page=100");
            let etag = meta(kb, &etag_key(&events_url))?;
            let answer = client.get(&events_url, etag.as_deref())?;
            if answer.status == 304 {
                continue;
            }
            let mut events: Vec<Value> =
                serde_json::from_str(&answer.body).map_err(|e| SyncError::Shape {
                    url: events_url.clone(),
                    detail: e.to_string(),
                })?;
            // A busy issue has more than one page of events.
            let mut next = answer.next.clone();
            while let Some(page_url) = next.take() {
                let more = client.get(&page_url, None)?;
                let page: Vec<Value> =
                    serde_json::from_str(&more.body).map_err(|e| SyncError::Shape {
                        url: page_url.clone(),
                        detail: e.to_string(),
                    })?;
                events.extend(page);
                next = more.next;
            }
            let commits: Vec<(String, String)> = events
                .iter()
                .filter(|e| e["event"] == "closed")
                .filter_map(|e| {
                    let sha = e["commit_id"].as_str()?.to_string();
                    let at = e["created_at"].as_str().unwrap_or("").to_string();
                    Some((sha, at))
                })
                .collect();
            let (added, missing) = kb.store().write(|tx| -> Result<(u64, u64), StoreError> {
                let Some(issue) = tx.issue_by_number(number)? else {
                    return Ok((0, 0));
                };
                let (mut added, mut missing) = (0, 0);
                for (sha, at) in &commits {
                    let bytes = decode_sha(sha);
                    let Some(commit) = bytes
                        .as_deref()
                        .map(|b| tx.commit_id(b))
                        .transpose()?
                        .flatten()
                    else {
                        missing += 1;
                        continue;
                    };
                    let meta = EdgeMeta {
                        provenance: Provenance::GithubClosedEvent,
                        confidence: 1.0,
                        evidence: Some(format!("GitHub: #{number} closed by {sha} at {at}")),
                        detail: EdgeDetail::None,
                    };
                    added += u64::from(tx.add_edge(issue, Rel::FixedBy, commit, &meta)?);
                }
                Ok((added, missing))
            })?;
            client.report.closed_by_commit += added;
            client.report.closing_commits_missing += missing;
            // A commit not ingested yet is looked for again next time.
            if let Some(tag) = answer.etag.as_ref().filter(|_| missing == 0) {
                set_meta(kb, &etag_key(&events_url), tag)?;
            }
        }
    }
    // GitHub's record of the commit each merged pull request became.
    merged.sort_unstable();
    merged.dedup();
    for number in merged {
        let pull_url = format!("{base}/pulls/{number}");
        let etag = meta(kb, &etag_key(&pull_url))?;
        let answer = client.get(&pull_url, etag.as_deref())?;
        if answer.status == 304 {
            continue;
        }
        let pull: Value = serde_json::from_str(&answer.body).map_err(|e| SyncError::Shape {
            url: pull_url.clone(),
            detail: e.to_string(),
        })?;
        if let Some(sha) = pull["merge_commit_sha"].as_str() {
            let sha = sha.to_string();
            let (added, missing) = kb.store().write(|tx| -> Result<(u64, u64), StoreError> {
                let Some(pr) = tx.issue_by_number(number)? else {
                    return Ok((0, 0));
                };
                let Some(commit) = decode_sha(&sha)
                    .map(|b| tx.commit_id(&b))
                    .transpose()?
                    .flatten()
                else {
                    return Ok((0, 1));
                };
                let meta = EdgeMeta {
                    provenance: Provenance::GithubPullRequest,
                    confidence: 1.0,
                    evidence: Some(format!("GitHub: #{number} merge_commit_sha {sha}")),
                    detail: EdgeDetail::None,
                };
                Ok((u64::from(tx.add_edge(pr, Rel::MergedAs, commit, &meta)?), 0))
            })?;
            client.report.merge_commits += added;
            client.report.merge_commits_missing += missing;
            if missing > 0 {
                continue;
            }
        }
        if let Some(tag) = &answer.etag {
            set_meta(kb, &etag_key(&pull_url), tag)?;
        }
    }
    // Everything of this run is committed: now the cursors move (never back).
    if let Some(oldest) = last_oldest {
        if cursor.as_deref().is_none_or(|c| oldest.as_str() > c) {
            set_meta(kb, &cursor_key(&options.repo), &oldest)?;
        }
        client.report.cursor = Some(oldest);
    }
    if let Some(oldest) = last_comment_oldest {
        if comments_cursor
            .as_deref()
            .is_none_or(|c| oldest.as_str() > c)
        {
            set_meta(kb, &comments_cursor_key(&options.repo), &oldest)?;
        }
    }
    if report.records > 0 || report.comments > 0 || report.closed_by_commit > 0 {
        kb.update_indexes(progress)?;
    }
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn decode_sha(hex: &str) -> Option<Vec<u8>> {
    if hex.len() != 40 {
        return None;
    }
    (0..40)
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn the_next_link_is_found_among_the_others() {
        let header = r#"<https://api.github.com/repositories/1/issues?page=2>; rel="next", <https://api.github.com/repositories/1/issues?page=5>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.github.com/repositories/1/issues?page=2")
        );
        assert_eq!(next_link(r#"<https://x/?page=1>; rel="prev""#), None);
    }

    #[test]
    fn a_full_page_without_a_link_still_has_a_successor() {
        use super::{after_page, PER_PAGE};
        let url = "https://x/repos/o/n/issues?state=all&per_page=100";
        assert_eq!(after_page(url, None, 3), None);
        assert_eq!(
            after_page(url, None, PER_PAGE).as_deref(),
            Some("https://x/repos/o/n/issues?state=all&per_page=100&page=2")
        );
        assert_eq!(
            after_page(&format!("{url}&page=2"), None, PER_PAGE).as_deref(),
            Some("https://x/repos/o/n/issues?state=all&per_page=100&page=3")
        );
        assert_eq!(after_page(url, Some("L".into()), 1).as_deref(), Some("L"));
    }
}
