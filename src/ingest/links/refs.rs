//! References to issues and pull requests in free text: GitHub closing keywords, squash-merge
//! titles, merge commits, "Duplicate of #N", and plain `#N` mentions.
//!
//! The closing-keyword rule, as a regular expression (case-insensitive):
//!
//! ```text
//! \b(close[sd]?|fix(e[sd])?|resolve[sd]?):?[ \t]+REF
//! REF = #N | GH-N | owner/repo#N | https://github.com/owner/repo/(issues|pull)/N
//! ```
//!
//! `owner/repo` forms count only when they name this project's repository.

use std::sync::OnceLock;

use regex::Regex;

use crate::store::records::evidence;

/// What a reference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// `Fixes #7`: the text closes the issue.
    Closing,
    /// A squash-merge title `… (#15)`: this commit landed pull request 15.
    SquashTitle,
    /// `Merge pull request #18 from …`: this merge landed pull request 18.
    MergeCommit,
    /// `Duplicate of #7`.
    Duplicate,
    /// Any other `#N`.
    Mention,
}

/// One reference found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRef {
    pub number: u64,
    pub kind: RefKind,
    /// The line it was found on, trimmed (at most 200 characters).
    pub evidence: String,
}

/// What reference parsing skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefSkips {
    /// References to issues of another repository (`other/repo#3`).
    pub other_repo: u64,
}

const REF: &str = r"(?:#(?P<n1>\d+)|[Gg][Hh]-(?P<n2>\d+)|(?P<repo1>[\w.-]+/[\w.-]+)#(?P<n3>\d+)|https?://github\.com/(?P<repo2>[\w.-]+/[\w.-]+)/(?:issues|pull)/(?P<n4>\d+))";

fn closing_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(&format!(
            r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?):?[ \t]+{REF}\b"
        ))
        .expect("valid regex")
    })
}

fn mention_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!(r"(?:^|[^\w&#/]){REF}\b")).expect("valid regex"))
}

fn duplicate_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!(r"(?i)\bduplicate\s+of\s+{REF}\b")).expect("valid regex"))
}

fn squash_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"\(#(\d+)\)\s*$").expect("valid regex"))
}

fn merge_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^Merge pull request #(\d+) from ").expect("valid regex"))
}

/// Parses references for one repository (`owner/name`, compared case-insensitively), or for
/// an unknown one, in which case only `#N` and `GH-N` forms count.
#[derive(Debug, Clone, Default)]
pub struct RefParser {
    repo: Option<String>,
}

impl RefParser {
    pub fn new(repo: Option<&str>) -> RefParser {
        RefParser {
            repo: repo.map(|r| r.trim_end_matches(".git").to_ascii_lowercase()),
        }
    }

    /// The number a REF match names, if it is this repository's.
    fn number(&self, caps: &regex::Captures<'_>, skips: &mut RefSkips) -> Option<u64> {
        for (n, repo) in [
            ("n1", None),
            ("n2", None),
            ("n3", Some("repo1")),
            ("n4", Some("repo2")),
        ] {
            let Some(m) = caps.name(n) else { continue };
            if let Some(repo) = repo.and_then(|r| caps.name(r)) {
                let named = repo.as_str().to_ascii_lowercase();
                if self.repo.as_deref() != Some(named.trim_end_matches(".git")) {
                    skips.other_repo += 1;
                    return None;
                }
            }
            return m.as_str().parse().ok().filter(|&n| n > 0);
        }
        None
    }

    /// References in a commit message: closing keywords anywhere, a squash title or a merge
    /// commit on the subject line, other `#N` as mentions.
    pub fn commit_message(&self, message: &str, skips: &mut RefSkips) -> Vec<IssueRef> {
        let mut out = Vec::new();
        let subject = message.lines().next().unwrap_or("");
        if let Some(c) = merge_re().captures(subject) {
            if let Ok(n) = c[1].parse() {
                out.push(IssueRef {
                    number: n,
                    kind: RefKind::MergeCommit,
                    evidence: evidence(subject),
                });
            }
        } else if let Some(c) = squash_re().captures(subject) {
            if let Ok(n) = c[1].parse() {
                out.push(IssueRef {
                    number: n,
                    kind: RefKind::SquashTitle,
                    evidence: evidence(subject),
                });
            }
        }
        self.scan(message, true, &mut out, skips);
        out
    }

    /// References in an issue or pull request text. Closing keywords close only in pull
    /// requests (`closing` true); in issues they are mentions.
    pub fn issue_text(&self, text: &str, closing: bool, skips: &mut RefSkips) -> Vec<IssueRef> {
        let mut out = Vec::new();
        self.scan(text, closing, &mut out, skips);
        out
    }

    fn scan(&self, text: &str, closing: bool, out: &mut Vec<IssueRef>, skips: &mut RefSkips) {
        // Numbers already claimed by a stronger kind, by line, are not mentions again.
        let mut claimed: Vec<u64> = out.iter().map(|r| r.number).collect();
        for line in text.lines() {
            if closing {
                for caps in closing_re().captures_iter(line) {
                    if let Some(n) = self.number(&caps, skips) {
                        out.push(IssueRef {
                            number: n,
                            kind: RefKind::Closing,
                            evidence: evidence(line),
                        });
                        claimed.push(n);
                    }
                }
            }
            for caps in duplicate_re().captures_iter(line) {
                if let Some(n) = self.number(&caps, skips) {
                    out.push(IssueRef {
                        number: n,
                        kind: RefKind::Duplicate,
                        evidence: evidence(line),
                    });
                    claimed.push(n);
                }
            }
        }
        for line in text.lines() {
            for caps in mention_re().captures_iter(line) {
                let mut ignored = RefSkips::default();
                if let Some(n) = self.number(&caps, &mut ignored) {
                    if !claimed.contains(&n) {
                        out.push(IssueRef {
                            number: n,
                            kind: RefKind::Mention,
                            evidence: evidence(line),
                        });
                        claimed.push(n);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(parser: &RefParser, message: &str) -> Vec<(u64, RefKind)> {
        let mut skips = RefSkips::default();
        parser
            .commit_message(message, &mut skips)
            .into_iter()
            .map(|r| (r.number, r.kind))
            .collect()
    }

    #[test]
    fn closing_keywords_in_every_form() {
        let p = RefParser::new(Some("minillm/minillm"));
        for (text, n) in [
            ("Fixes #7", 7),
            ("fix #7", 7),
            ("FIXED #7", 7),
            ("closes #12", 12),
            ("Close #12", 12),
            ("closed #12", 12),
            ("Resolves: #20", 20),
            ("resolve #20", 20),
            ("resolved #20", 20),
            ("Fix GH-24", 24),
            ("fixes minillm/minillm#24", 24),
            ("Fixes https://github.com/minillm/minillm/issues/24", 24),
            ("closes https://github.com/MiniLLM/minillm/pull/24", 24),
            ("Something (fixes #24)", 24),
        ] {
            assert_eq!(
                refs(&p, &format!("Subject\n\n{text}")),
                vec![(n, RefKind::Closing)],
                "{text}"
            );
        }
    }

    #[test]
    fn not_closing() {
        let p = RefParser::new(Some("minillm/minillm"));
        for text in [
            "prefix #7",
            "hotfix #7",
            "fixes#7",
            "Fixes issue 7",
            "bugfix: #7",
        ] {
            assert!(
                !refs(&p, text).iter().any(|r| r.1 == RefKind::Closing),
                "{text}: {:?}",
                refs(&p, text)
            );
        }
        let mut skips = RefSkips::default();
        let found = p.commit_message("Fixes other/repo#3", &mut skips);
        assert!(found.is_empty(), "{found:?}");
        assert_eq!(skips.other_repo, 1);
        // Without a known repository, only #N and GH-N count.
        let unknown = RefParser::new(None);
        assert!(refs(&unknown, "Fixes minillm/minillm#3").is_empty());
        assert_eq!(refs(&unknown, "Fixes #3"), vec![(3, RefKind::Closing)]);
    }

    #[test]
    fn squash_titles_merges_mentions_and_duplicates() {
        let p = RefParser::new(None);
        assert_eq!(
            refs(&p, "Support head size 256 in paged attention (#15)"),
            vec![(15, RefKind::SquashTitle)]
        );
        assert_eq!(
            refs(
                &p,
                "Merge pull request #18 from dave/feature/kv-cache\n\nAdd it"
            ),
            vec![(18, RefKind::MergeCommit)]
        );
        assert_eq!(
            refs(&p, "Add reset\n\nRelated to #7 and #20."),
            vec![(7, RefKind::Mention), (20, RefKind::Mention)]
        );
        assert_eq!(
            refs(&p, "feat: x (#21)\n\nFixes #19, see #19 and &#38; url/#5"),
            vec![(21, RefKind::SquashTitle), (19, RefKind::Closing)]
        );
        let mut skips = RefSkips::default();
        let found: Vec<_> = p
            .issue_text("Duplicate of #7\nsee also #9", false, &mut skips)
            .into_iter()
            .map(|r| (r.number, r.kind))
            .collect();
        assert_eq!(found, vec![(7, RefKind::Duplicate), (9, RefKind::Mention)]);
        // In an issue (not a PR), "fixes #3" does not close anything.
        let found: Vec<_> = p
            .issue_text("this fixes #3 maybe", false, &mut skips)
            .into_iter()
            .map(|r| (r.number, r.kind))
            .collect();
        assert_eq!(found, vec![(3, RefKind::Mention)]);
    }
}
