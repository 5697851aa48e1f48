//! Reading issue dumps: GitHub REST, `gh … list --json`, Jira JSON export, and lore's generic
//! JSONL. Each format maps onto [`IssueRecord`]; detection looks at the first record's keys.

use std::path::Path;

use serde_json::{Map, Value};

use super::{Format, IssueError, Skips};
use crate::store::records::{Comment, IssueRecord, IssueState, StateEvent};

/// Longest body or comment kept, in bytes; longer ones are cut at a character boundary and
/// counted as `truncated_text`.
pub const MAX_TEXT: usize = 1 << 20;

/// The records of a dump, parsed as JSON, with their line numbers (1 for a whole-file array).
pub struct Dump {
    pub records: Vec<(usize, Value)>,
    /// `{"issues": [...]}` (a Jira export).
    pub jira_envelope: bool,
}

/// Parse `text` as a JSON array, a JSON object, or JSON lines. Errors name the file, line and
/// column.
pub fn parse_dump(path: &Path, text: &str) -> Result<Dump, IssueError> {
    let trimmed = text.trim_start();
    let json_error = |line: usize, column: usize, message: String| IssueError::Json {
        path: path.into(),
        line,
        column,
        message,
    };
    if trimmed.is_empty() {
        return Ok(Dump {
            records: Vec::new(),
            jira_envelope: false,
        });
    }
    if trimmed.starts_with('[') {
        let value: Value = serde_json::from_str(text)
            .map_err(|e| json_error(e.line(), e.column(), e.to_string()))?;
        let Value::Array(items) = value else {
            unreachable!("starts with [")
        };
        return Ok(Dump {
            records: items.into_iter().map(|v| (1, v)).collect(),
            jira_envelope: false,
        });
    }
    // One JSON document, or one document per line.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let first = stream.next();
    let single = stream.next().is_none();
    if single {
        if let Some(first) = first {
            let value = first.map_err(|e| json_error(e.line(), e.column(), e.to_string()))?;
            if let Some(Value::Array(issues)) = value.get("issues") {
                return Ok(Dump {
                    records: issues.iter().cloned().map(|v| (1, v)).collect(),
                    jira_envelope: true,
                });
            }
            return Ok(Dump {
                records: vec![(1, value)],
                jira_envelope: false,
            });
        }
    }
    let mut records = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: Value =
            serde_json::from_str(line).map_err(|e| json_error(i + 1, e.column(), e.to_string()))?;
        records.push((i + 1, value));
    }
    Ok(Dump {
        records,
        jira_envelope: false,
    })
}

/// Decide the format from the first record.
pub fn detect(path: &Path, dump: &Dump) -> Result<Format, IssueError> {
    if dump.jira_envelope {
        return Ok(Format::Jira);
    }
    let Some((_, first)) = dump.records.first() else {
        return Ok(Format::Jsonl);
    };
    let Some(obj) = first.as_object() else {
        return Err(IssueError::UnknownFormat {
            path: path.into(),
            detail: "the first record is not a JSON object".into(),
        });
    };
    let has = |k: &str| obj.contains_key(k);
    if has("fields") && has("key") {
        return Ok(Format::Jira);
    }
    if has("node_id") || has("html_url") || has("repository_url") || has("user") {
        return Ok(Format::Github);
    }
    if has("createdAt") || has("updatedAt") || (has("author") && obj["author"].is_object()) {
        return Ok(Format::Gh);
    }
    if has("number") && (has("kind") || has("created_at") || has("title")) {
        return Ok(Format::Jsonl);
    }
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.truncate(12);
    Err(IssueError::UnknownFormat {
        path: path.into(),
        detail: format!(
            "its first record has keys {keys:?}, which match none of github, gh, jira, jsonl"
        ),
    })
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    at.as_str()
}

/// Cut `s` to [`MAX_TEXT`] bytes at a character boundary.
fn limit(mut s: String, skips: &mut Skips) -> String {
    if s.len() > MAX_TEXT {
        let mut end = MAX_TEXT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        skips.count("truncated_text");
    }
    s
}

/// The value at `path` (`None` when absent or null).
fn value_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    let mut at = v;
    for key in path {
        at = at.get(key)?;
    }
    (!at.is_null()).then_some(at)
}

/// Parse a timestamp: RFC 3339 (`2024-01-11T09:00:00Z`), Jira's `2024-01-11T09:00:00.000+0000`,
/// a date and time without a zone (`2024-01-11 09:00:00`, taken as UTC), a bare date, or a
/// number of seconds (milliseconds when it is that large) since 1970. Anything else is counted
/// as `invalid_date` and treated as absent.
fn date(value: Option<&Value>, skips: &mut Skips) -> Option<i64> {
    let parsed = match value? {
        Value::String(s) => {
            let s = s.trim();
            if s.is_empty() {
                return None;
            }
            parse_time(s)
        }
        Value::Number(n) => n.as_i64().map(|t| {
            if t.abs() >= 100_000_000_000 {
                t / 1000
            } else {
                t
            }
        }),
        _ => None,
    };
    if parsed.is_none() {
        skips.count("invalid_date");
    }
    parsed
}

fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%z"] {
        if let Ok(t) = jiff::Timestamp::strptime(format, s) {
            return Some(t.as_second());
        }
    }
    let utc = |dt: jiff::civil::DateTime| {
        dt.to_zoned(jiff::tz::TimeZone::UTC)
            .ok()
            .map(|z| z.timestamp().as_second())
    };
    // A bare date is midnight; a date with a time keeps its time.
    if s.len() == 10 {
        return s
            .parse::<jiff::civil::Date>()
            .ok()
            .and_then(|d| utc(d.to_datetime(jiff::civil::Time::midnight())));
    }
    s.parse::<jiff::civil::DateTime>().ok().and_then(utc)
}

/// Labels: an array of names or of `{"name": …}` objects. A bare string is taken as one label
/// and an item of another type is dropped, each counted as `wrong_type:labels`.
fn labels(v: Option<&Value>, skips: &mut Skips) -> Vec<String> {
    let mut out: Vec<String> = match v {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|l| {
                let name = l.as_str().or_else(|| str_at(l, &["name"]));
                if name.is_none() {
                    skips.count("wrong_type:labels");
                }
                name
            })
            .map(str::to_string)
            .collect(),
        Some(Value::String(one)) => {
            skips.count("wrong_type:labels");
            vec![one.clone()]
        }
        Some(_) => {
            skips.count("wrong_type:labels");
            Vec::new()
        }
    };
    out.sort();
    out.dedup();
    out
}

/// An issue number: a positive integer, or a string of one (`"12"`, `"#12"`). Absent is counted
/// as `missing_number`; present but not a positive integer (0, −5, 1.5, `"abc"`) as
/// `invalid_number`. Either way the record is skipped.
fn number(v: Option<&Value>, skips: &mut Skips) -> Option<u64> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        skips.count("missing_number");
        return None;
    };
    let n = match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().trim_start_matches('#').parse().ok(),
        _ => None,
    }
    .filter(|&n| n > 0);
    if n.is_none() {
        skips.count("invalid_number");
    }
    n
}

/// A text field: absent or null is empty; a value of another type is dropped and counted as
/// `wrong_type:<field>`.
fn text(v: &Value, path: &[&str], skips: &mut Skips) -> String {
    match value_at(v, path) {
        None => String::new(),
        Some(Value::String(s)) => limit(s.clone(), skips),
        Some(_) => {
            skips.count(&format!("wrong_type:{}", path.join(".")));
            String::new()
        }
    }
}

/// A state among `known` (compared without case); another value is counted as
/// `unknown_state` and the issue is taken as open, a value of another type as
/// `wrong_type:<field>`.
fn state_name(v: &Value, field: &str, known: &[&str], skips: &mut Skips) -> Option<String> {
    match value_at(v, &[field]) {
        None => None,
        Some(Value::String(s)) => {
            let lower = s.trim().to_ascii_lowercase();
            if known.contains(&lower.as_str()) {
                Some(lower)
            } else {
                skips.count("unknown_state");
                None
            }
        }
        Some(_) => {
            skips.count(&format!("wrong_type:{field}"));
            None
        }
    }
}

/// `https://github.com/owner/name/...` or `https://api.github.com/repos/owner/name/...` →
/// `owner/name`.
pub fn repo_of_url(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://api.github.com/repos/")
        .or_else(|| url.strip_prefix("https://github.com/"))?;
    let mut parts = rest.split('/');
    let (owner, name) = (parts.next()?, parts.next()?);
    (!owner.is_empty() && !name.is_empty()).then(|| format!("{owner}/{name}"))
}

/// One parsed record: the issue, and the repository it says it belongs to.
pub struct Parsed {
    pub record: IssueRecord,
    pub repo: Option<String>,
}

fn base(number: u64, source: &str) -> IssueRecord {
    IssueRecord {
        stub: false,
        source: source.into(),
        ..IssueRecord::stub(number, false)
    }
}

/// Parse one record of `format`. `Ok(None)` is a counted skip.
pub fn parse_record(
    format: Format,
    v: &Value,
    skips: &mut Skips,
) -> Result<Option<Parsed>, String> {
    let Some(obj) = v.as_object() else {
        skips.count("not_an_object");
        return Ok(None);
    };
    match format {
        Format::Github => Ok(github(obj, v, skips)),
        Format::Gh => Ok(gh(obj, v, skips)),
        Format::Jira => Ok(jira(v, skips)),
        Format::Jsonl => Ok(jsonl(obj, v, skips)),
        Format::Auto => Err("format must be decided before parsing".into()),
    }
}

fn github(obj: &Map<String, Value>, v: &Value, skips: &mut Skips) -> Option<Parsed> {
    let n = number(obj.get("number"), skips)?;
    let mut r = base(n, "github");
    r.is_pr = obj.contains_key("pull_request") || obj.contains_key("head");
    r.title = text(v, &["title"], skips);
    r.body = text(v, &["body"], skips);
    r.merged_at = date(
        value_at(v, &["pull_request", "merged_at"]).or_else(|| value_at(v, &["merged_at"])),
        skips,
    );
    r.state = match (
        state_name(v, "state", &["open", "closed"], skips),
        r.merged_at,
    ) {
        (_, Some(_)) => IssueState::Merged,
        (Some(s), _) if s == "closed" => IssueState::Closed,
        _ => IssueState::Open,
    };
    r.state_reason = str_at(v, &["state_reason"]).map(str::to_string);
    r.author = str_at(v, &["user", "login"]).map(str::to_string);
    r.labels = labels(obj.get("labels"), skips);
    r.created_at = date(value_at(v, &["created_at"]), skips);
    r.updated_at = date(value_at(v, &["updated_at"]), skips);
    r.closed_at = date(value_at(v, &["closed_at"]), skips);
    r.url = str_at(v, &["html_url"]).map(str::to_string);
    if let Some(Value::Array(comments)) = obj.get("comments") {
        r.comments = comments.iter().map(|c| github_comment(c, skips)).collect();
    }
    for key in ["events", "timeline"] {
        if let Some(Value::Array(events)) = obj.get(key) {
            r.state_history = events
                .iter()
                .filter_map(|e| {
                    let event = str_at(e, &["event"])?;
                    matches!(event, "closed" | "reopened" | "merged").then_some(())?;
                    Some(StateEvent {
                        event: event.into(),
                        at: date(value_at(e, &["created_at"]), skips)?,
                        actor: str_at(e, &["actor", "login"]).map(str::to_string),
                    })
                })
                .collect();
        }
    }
    let repo = str_at(v, &["repository_url"])
        .or_else(|| str_at(v, &["html_url"]))
        .and_then(repo_of_url);
    Some(Parsed { record: r, repo })
}

/// A comment from the GitHub REST API (`user.login`, `created_at`, `body`).
pub fn github_comment(c: &Value, skips: &mut Skips) -> Comment {
    Comment {
        author: str_at(c, &["user", "login"])
            .or_else(|| str_at(c, &["author", "login"]))
            .map(str::to_string),
        created_at: date(value_at(c, &["created_at"]), skips),
        body: limit(str_at(c, &["body"]).unwrap_or("").to_string(), skips),
    }
}

fn gh(obj: &Map<String, Value>, v: &Value, skips: &mut Skips) -> Option<Parsed> {
    let n = number(obj.get("number"), skips)?;
    let mut r = base(n, "gh");
    let url = str_at(v, &["url"]).unwrap_or("");
    r.is_pr = url.contains("/pull/")
        || obj.contains_key("mergedAt")
        || obj.contains_key("headRefName")
        || obj.get("isPullRequest").and_then(Value::as_bool) == Some(true);
    r.title = text(v, &["title"], skips);
    r.body = text(v, &["body"], skips);
    r.merged_at = date(value_at(v, &["mergedAt"]), skips);
    r.state = match state_name(v, "state", &["open", "closed", "merged"], skips).as_deref() {
        Some("merged") => IssueState::Merged,
        _ if r.merged_at.is_some() => IssueState::Merged,
        Some("closed") => IssueState::Closed,
        _ => IssueState::Open,
    };
    r.state_reason = str_at(v, &["stateReason"])
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase);
    r.author = str_at(v, &["author", "login"]).map(str::to_string);
    r.labels = labels(obj.get("labels"), skips);
    r.created_at = date(value_at(v, &["createdAt"]), skips);
    r.updated_at = date(value_at(v, &["updatedAt"]), skips);
    r.closed_at = date(value_at(v, &["closedAt"]), skips);
    r.url = (!url.is_empty()).then(|| url.to_string());
    if let Some(Value::Array(comments)) = obj.get("comments") {
        r.comments = comments
            .iter()
            .map(|c| Comment {
                author: str_at(c, &["author", "login"]).map(str::to_string),
                created_at: date(value_at(c, &["createdAt"]), skips),
                body: limit(str_at(c, &["body"]).unwrap_or("").to_string(), skips),
            })
            .collect();
    }
    let repo = repo_of_url(url);
    Some(Parsed { record: r, repo })
}

/// Jira descriptions are plain text (Server) or Atlassian Document Format (Cloud, v3 API).
fn jira_text(v: Option<&Value>) -> String {
    fn walk(v: &Value, out: &mut String) {
        match v {
            Value::String(s) => out.push_str(s),
            Value::Object(o) => {
                if let Some(Value::String(t)) = o.get("text") {
                    out.push_str(t);
                }
                if let Some(Value::Array(content)) = o.get("content") {
                    for c in content {
                        walk(c, out);
                    }
                    if matches!(
                        o.get("type").and_then(Value::as_str),
                        Some("paragraph" | "codeBlock" | "heading" | "listItem")
                    ) {
                        out.push('\n');
                    }
                }
                if o.get("type").and_then(Value::as_str) == Some("hardBreak") {
                    out.push('\n');
                }
            }
            _ => {}
        }
    }
    let mut out = String::new();
    if let Some(v) = v {
        walk(v, &mut out);
    }
    out
}

fn jira(v: &Value, skips: &mut Skips) -> Option<Parsed> {
    let Some(key) = str_at(v, &["key"]) else {
        skips.count("missing_number");
        return None;
    };
    let Some(n) = key
        .rsplit_once('-')
        .and_then(|(_, n)| n.parse::<u64>().ok())
        .filter(|&n| n > 0)
    else {
        skips.count("invalid_number");
        return None;
    };
    let f = v.get("fields").cloned().unwrap_or(Value::Null);
    let mut r = base(n, "jira");
    r.key = Some(key.to_string());
    // Jira has no pull requests; instances that mirror them use an issue type of that name.
    r.is_pr =
        str_at(&f, &["issuetype", "name"]).is_some_and(|t| t.eq_ignore_ascii_case("pull request"));
    r.title = text(&f, &["summary"], skips);
    r.body = limit(jira_text(f.get("description")), skips);
    let done = str_at(&f, &["status", "statusCategory", "key"]) == Some("done")
        || matches!(
            str_at(&f, &["status", "name"])
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("done" | "closed" | "resolved")
        );
    let merged = str_at(&f, &["status", "name"]).is_some_and(|s| s.eq_ignore_ascii_case("merged"));
    r.state = if merged {
        IssueState::Merged
    } else if done {
        IssueState::Closed
    } else {
        IssueState::Open
    };
    r.state_reason =
        str_at(&f, &["resolution", "name"]).map(|s| match s.to_ascii_lowercase().as_str() {
            "fixed" | "done" => "completed".to_string(),
            "duplicate" => "duplicate".to_string(),
            "won't fix" | "won't do" | "cannot reproduce" => "not_planned".to_string(),
            other => other.to_string(),
        });
    r.author = str_at(&f, &["reporter", "name"])
        .or_else(|| str_at(&f, &["reporter", "displayName"]))
        .or_else(|| str_at(&f, &["creator", "name"]))
        .map(str::to_string);
    r.labels = labels(f.get("labels"), skips);
    r.created_at = date(value_at(&f, &["created"]), skips);
    r.updated_at = date(value_at(&f, &["updated"]), skips);
    r.closed_at = date(value_at(&f, &["resolutiondate"]), skips);
    if merged {
        r.merged_at = r.closed_at;
    }
    r.url = str_at(v, &["self"]).map(str::to_string);
    if let Some(Value::Array(comments)) = f.get("comment").and_then(|c| c.get("comments")) {
        r.comments = comments
            .iter()
            .map(|c| Comment {
                author: str_at(c, &["author", "name"])
                    .or_else(|| str_at(c, &["author", "displayName"]))
                    .map(str::to_string),
                created_at: date(value_at(c, &["created"]), skips),
                body: limit(jira_text(c.get("body")), skips),
            })
            .collect();
    }
    if let Some(Value::Array(histories)) = v.get("changelog").and_then(|c| c.get("histories")) {
        for h in histories {
            let Some(at) = date(value_at(h, &["created"]), skips) else {
                continue;
            };
            let actor = str_at(h, &["author", "name"])
                .or_else(|| str_at(h, &["author", "displayName"]))
                .map(str::to_string);
            for item in h
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if str_at(item, &["field"]) != Some("status") {
                    continue;
                }
                let closed = |s: Option<&str>| {
                    matches!(
                        s.map(str::to_ascii_lowercase).as_deref(),
                        Some("done" | "closed" | "resolved")
                    )
                };
                let (from, to) = (str_at(item, &["fromString"]), str_at(item, &["toString"]));
                let event = match (closed(from), closed(to)) {
                    (false, true) => "closed",
                    (true, false) => "reopened",
                    _ => continue,
                };
                r.state_history.push(StateEvent {
                    event: event.into(),
                    at,
                    actor: actor.clone(),
                });
            }
        }
    }
    Some(Parsed {
        record: r,
        repo: None,
    })
}

fn jsonl(obj: &Map<String, Value>, v: &Value, skips: &mut Skips) -> Option<Parsed> {
    let n = number(obj.get("number"), skips)?;
    let mut r = base(n, "jsonl");
    r.is_pr = matches!(str_at(v, &["kind"]), Some("pr" | "pull_request" | "pull"));
    r.title = text(v, &["title"], skips);
    r.body = text(v, &["body"], skips);
    r.merged_at = date(value_at(v, &["merged_at"]), skips);
    r.state = match state_name(v, "state", &["open", "closed", "merged"], skips).as_deref() {
        Some("merged") => IssueState::Merged,
        _ if r.merged_at.is_some() => IssueState::Merged,
        Some("closed") => IssueState::Closed,
        _ => IssueState::Open,
    };
    r.state_reason = str_at(v, &["state_reason"]).map(str::to_string);
    r.author = str_at(v, &["author"]).map(str::to_string);
    r.labels = labels(obj.get("labels"), skips);
    r.created_at = date(value_at(v, &["created_at"]), skips);
    r.updated_at = date(value_at(v, &["updated_at"]), skips);
    r.closed_at = date(value_at(v, &["closed_at"]), skips);
    r.url = str_at(v, &["url"]).map(str::to_string);
    if let Some(Value::Array(comments)) = obj.get("comments") {
        r.comments = comments
            .iter()
            .map(|c| Comment {
                author: str_at(c, &["author"]).map(str::to_string),
                created_at: date(value_at(c, &["created_at"]), skips),
                body: limit(str_at(c, &["body"]).unwrap_or("").to_string(), skips),
            })
            .collect();
    }
    if let Some(Value::Array(events)) = obj.get("state_history") {
        r.state_history = events
            .iter()
            .filter_map(|e| {
                Some(StateEvent {
                    event: str_at(e, &["event"])?.to_string(),
                    at: date(value_at(e, &["at"]), skips)?,
                    actor: str_at(e, &["actor"]).map(str::to_string),
                })
            })
            .collect();
    }
    let repo = str_at(v, &["repo"])
        .map(str::to_string)
        .or_else(|| r.url.as_deref().and_then(repo_of_url));
    Some(Parsed { record: r, repo })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_in_the_forms_people_export() {
        let mut skips = Skips::default();
        let at = |v: serde_json::Value, skips: &mut Skips| date(Some(&v), skips);
        assert_eq!(
            at(serde_json::json!("2024-01-05T10:00:00Z"), &mut skips),
            Some(1704448800)
        );
        assert_eq!(
            at(serde_json::json!("2024-01-05 10:00:00"), &mut skips),
            Some(1704448800)
        );
        assert_eq!(
            at(serde_json::json!("2024-01-05"), &mut skips),
            Some(1704412800)
        );
        assert_eq!(
            at(serde_json::json!(1704448800), &mut skips),
            Some(1704448800)
        );
        assert_eq!(
            at(serde_json::json!(1704448800000u64), &mut skips),
            Some(1704448800)
        );
        assert_eq!(skips.0.get("invalid_date"), None);
        assert_eq!(at(serde_json::json!("yesterday"), &mut skips), None);
        assert_eq!(at(serde_json::json!(true), &mut skips), None);
        assert_eq!(skips.0.get("invalid_date"), Some(&2));
    }
}
