//! References to issues and pull requests in free text: GitHub closing keywords, squash-merge
//! titles, merge commits, "Duplicate of #N", and plain `#N` mentions.
//!
//! The closing-keyword rule (case-insensitive; `docs/issues.md` has the table with examples):
//!
//! ```text
//! KEYWORD [part of] [:] [one line break] REF { (, | and | , and | spaces) REF }
//! KEYWORD = \b(close[sd]?|fix(e[sd])?|resolve[sd]?)\b
//! REF = #N | GH-N | owner/repo#N | https://github.com/owner/repo/(issues|pull)/N
//! ```
//!
//! What precedes the keyword on its line qualifies it: a negation (`does not fix`, `won't
//! fix`) makes the references plain references; a hedge (`should fix`, `might fix`, `possibly
//! resolves`, `partly resolves`, `does not fully resolve`, `fixes part of`, `proposal to fix`)
//! keeps them closing at a lower confidence, with the hedge named. `owner/repo` forms count only
//! when they name this project's repository.

use std::sync::OnceLock;

use regex::Regex;

use crate::store::records::evidence;

/// What a reference means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RefKind {
    /// `Fixes #7`: the text closes the issue.
    Closing,
    /// `Should fix #7`, `Partly resolves #7`: a closing claim, hedged ([`IssueRef::hedge`]).
    HedgedClosing,
    /// `Does not fix #7`: a reference that denies closing.
    NegatedClosing,
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
    /// The hedge of a [`RefKind::HedgedClosing`] (`should`, `partial`, …).
    pub hedge: Option<&'static str>,
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
                    hedge: None,
                    kind: RefKind::MergeCommit,
                    evidence: evidence(subject),
                });
            }
        } else if let Some(c) = squash_re().captures(subject) {
            if let Ok(n) = c[1].parse() {
                out.push(IssueRef {
                    number: n,
                    hedge: None,
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
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        // Numbers already claimed by a stronger kind are not mentions again.
        let mut claimed: Vec<u64> = out.iter().map(|r| r.number).collect();
        if closing {
            for r in self.closing_refs(&text, skips) {
                claimed.push(r.number);
                out.push(r);
            }
        }
        for line in text.lines() {
            for caps in duplicate_re().captures_iter(line) {
                if let Some(n) = self.number(&caps, skips) {
                    out.push(IssueRef {
                        number: n,
                        kind: RefKind::Duplicate,
                        hedge: None,
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
                            hedge: None,
                            evidence: evidence(line),
                        });
                        claimed.push(n);
                    }
                }
            }
        }
    }

    /// Every closing keyword with the references it governs: across one line break, and a
    /// list after one keyword; qualified by a negation or a hedge before it.
    fn closing_refs(&self, text: &str, skips: &mut RefSkips) -> Vec<IssueRef> {
        let mut out = Vec::new();
        for k in keyword_re().find_iter(text) {
            let line_start = text[..k.start()].rfind('\n').map_or(0, |i| i + 1);
            let before = text[line_start..k.start()].to_ascii_lowercase();
            let mut at = k.end();
            let mut partial = false;
            if let Some(m) = part_of_re().find(&text[at..]) {
                partial = true;
                at += m.end();
            }
            let Some(lead) = lead_re().find(&text[at..]) else {
                continue;
            };
            at += lead.end();
            let mut numbers = Vec::new();
            while let Some(caps) = ref_at_re().captures(&text[at..]) {
                let whole = caps.get(0).expect("a match").end();
                if let Some(n) = self.number(&caps, skips) {
                    numbers.push(n);
                }
                at += whole;
                // Another reference after a comma, `and`, or spaces continues the list.
                match separator_re().find(&text[at..]) {
                    Some(sep) if ref_at_re().is_match(&text[at + sep.end()..]) => at += sep.end(),
                    _ => break,
                }
            }
            if numbers.is_empty() {
                continue;
            }
            let line_end = text[at..].find('\n').map_or(text.len(), |i| at + i);
            let from = evidence_start(text, line_start, k.start());
            let shown = text[from..line_end].replace('\n', " ");
            let said = evidence(&if from > line_start {
                format!("…{shown}")
            } else {
                shown
            });
            let (kind, hedge) = qualify(&before, partial);
            for number in numbers {
                out.push(IssueRef {
                    number,
                    kind,
                    hedge,
                    evidence: said.clone(),
                });
            }
        }
        out
    }
}

/// Where the evidence of a claim starts: its line, or, when the keyword is far into a long
/// line, a few words before the keyword, so the evidence shows the claim and its qualifier.
fn evidence_start(text: &str, line_start: usize, keyword: usize) -> usize {
    const LEAD: usize = 60;
    if keyword - line_start <= 120 {
        return line_start;
    }
    let mut from = keyword - LEAD;
    while !text.is_char_boundary(from) {
        from += 1;
    }
    // Start at a word.
    match text[from..keyword].find(' ') {
        Some(space) => from + space + 1,
        None => from,
    }
}

/// What the words before a closing keyword (on its line, lowercase) make of it.
fn qualify(before: &str, partial: bool) -> (RefKind, Option<&'static str>) {
    if partial || partial_re().is_match(before) {
        return (RefKind::HedgedClosing, Some("partial"));
    }
    if negation_re().is_match(before) {
        return (RefKind::NegatedClosing, None);
    }
    if let Some(c) = tentative_re().captures(before) {
        let word = c.get(1).map_or("", |m| m.as_str());
        let hedge = TENTATIVE
            .iter()
            .copied()
            .find(|h| word.starts_with(h))
            .unwrap_or("tentative");
        return (RefKind::HedgedClosing, Some(hedge));
    }
    (RefKind::Closing, None)
}

/// Words that make a closing claim tentative, as named in provenance evidence.
const TENTATIVE: [&str; 16] = [
    "should",
    "might",
    "may",
    "could",
    "would",
    "possibly",
    "probably",
    "hopefully",
    "potentially",
    "likely",
    "maybe",
    "perhaps",
    "attempt",
    "try",
    "proposal",
    "intended",
];

fn keyword_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)\b(?:close[sd]?|fix(?:e[sd])?|resolve[sd]?)\b").expect("valid regex")
    })
}

/// A reference at the start of the text.
fn ref_at_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(&format!(r"^{REF}\b")).expect("valid regex"))
}

/// Between the keyword and its first reference: an optional `:`, then spaces or at most one
/// line break (`fixes#7` is not a claim).
fn lead_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^(?::?[ \t]*\n[ \t]*|:?[ \t]+)").expect("valid regex"))
}

/// Between two references of a list.
fn separator_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?i)^(?:[ \t]*,[ \t]*(?:and[ \t]+)?|[ \t]+and[ \t]+|[ \t]+)")
            .expect("valid regex")
    })
}

/// `fixes part of #7`.
fn part_of_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"(?i)^[ \t]+part[ \t]+of\b").expect("valid regex"))
}

/// `partly resolves`, `does not fully resolve`, `partially fixes`.
fn partial_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"(?:\bpartly|\bpartially|\bnot\s+(?:fully|completely|entirely|yet\s+fully))\s*$",
        )
        .expect("valid regex")
    })
}

/// `does not fix`, `doesn't fix`, `won't fix`, `never fixed`, `not fixing`.
fn negation_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?:\bnot|n't|\bnever|\bno\s+longer)(?:\s+\w+)?\s*$").expect("valid regex")
    })
}

/// `should fix`, `might fix`, `possibly resolves`, `proposal to fix`, `trying to fix`.
fn tentative_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r"\b(should|might|may|could|would|possibly|probably|hopefully|potentially|likely|maybe|perhaps|(?:attempt|attempts|attempting|try|tries|trying|proposal|intended|meant)\s+to)\s*$",
        )
        .expect("valid regex")
    })
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

    fn refs_hedged(parser: &RefParser, message: &str) -> Vec<(u64, RefKind, Option<&'static str>)> {
        let mut skips = RefSkips::default();
        parser
            .commit_message(message, &mut skips)
            .into_iter()
            .map(|r| (r.number, r.kind, r.hedge))
            .collect()
    }

    #[test]
    fn closing_references_across_a_line_break_and_in_lists() {
        let p = RefParser::new(Some("owner/repo"));
        let url = |n: u64| format!("https://github.com/owner/repo/issues/{n}");
        let closing = |ns: &[u64]| {
            ns.iter()
                .map(|n| (*n, RefKind::Closing))
                .collect::<Vec<_>>()
        };
        for (text, want) in [
            (format!("Fixes\n{}", url(361)), closing(&[361])),
            (format!("Fixes:\n{}", url(361)), closing(&[361])),
            (format!("Close\n{}", url(12)), closing(&[12])),
            (
                format!("Fixes\r\n{}\r\nFixes\r\n{}", url(1), url(2)),
                closing(&[1, 2]),
            ),
            ("Close #589 #602".into(), closing(&[589, 602])),
            (
                "Closes #307, #308 and #309".into(),
                closing(&[307, 308, 309]),
            ),
            ("Closes #307, and #308".into(), closing(&[307, 308])),
            ("Fixes #1, fixes #2".into(), closing(&[1, 2])),
        ] {
            assert_eq!(refs(&p, &format!("Subject\n\n{text}")), want, "{text:?}");
        }
        // `resolves:` then a URL, and a reference to another repository that is not a claim.
        let mut skips = RefSkips::default();
        let found = p.commit_message(
            &format!(
                "x\n\nresolves:\n{} and related to https://github.com/other/repo/issues/5",
                url(77)
            ),
            &mut skips,
        );
        assert_eq!(
            found.iter().map(|r| (r.number, r.kind)).collect::<Vec<_>>(),
            vec![(77, RefKind::Closing)]
        );
        // Two line breaks end the claim.
        assert!(refs(&p, "Fixes\n\n#5")
            .iter()
            .all(|r| r.1 != RefKind::Closing));
    }

    #[test]
    fn negations_and_hedges() {
        let p = RefParser::new(None);
        for text in [
            "Does not fix #826 but it's a step.",
            "This doesn't fix #826",
            "won't fix #826",
            "It never fixed #826",
        ] {
            assert_eq!(
                refs_hedged(&p, &format!("x\n\n{text}")),
                vec![(826, RefKind::NegatedClosing, None)],
                "{text}"
            );
        }
        for (text, hedge) in [
            ("Should fix:\n#4", "should"),
            ("Proposal to fix #4", "proposal"),
            ("Possibly resolves #4", "possibly"),
            ("Partly resolves #4", "partial"),
            ("This does not fully resolve #4", "partial"),
            ("might fix #4", "might"),
            ("fixes part of #4", "partial"),
            ("Trying to fix #4", "try"),
        ] {
            assert_eq!(
                refs_hedged(&p, &format!("x\n\n{text}")),
                vec![(4, RefKind::HedgedClosing, Some(hedge))],
                "{text}"
            );
        }
        // "Related to" is a mention, not a claim of any kind.
        assert_eq!(
            refs_hedged(&p, "x\n\nRelated to #9"),
            vec![(9, RefKind::Mention, None)]
        );
        // Words elsewhere on the line do not qualify the claim.
        assert_eq!(
            refs_hedged(&p, "x\n\nDo not merge yet; fixes #3"),
            vec![(3, RefKind::Closing, None)]
        );
    }

    #[test]
    fn a_claim_late_in_a_long_line_keeps_its_words_in_the_evidence() {
        let p = RefParser::new(None);
        let line = format!(
            "{} so this should close #9.",
            "Make the crates page about publishing only; ".repeat(6)
        );
        let mut skips = RefSkips::default();
        let found = p.commit_message(&format!("Docs\n\n{line}"), &mut skips);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, RefKind::HedgedClosing);
        assert!(found[0].evidence.starts_with('…'), "{}", found[0].evidence);
        assert!(
            found[0].evidence.ends_with("so this should close #9."),
            "{}",
            found[0].evidence
        );
    }
}
