//! Parse `git log --numstat -z --format=%x01%H` output, so lore's diff stats can be checked
//! against git's own on any repository (the fixture tests and the ingest benchmark do).

use std::collections::BTreeMap;

/// One file line of `--numstat`: path, old path for renames, lines added and removed (`None`
/// for binary files).
pub type NumstatEntry = (String, Option<String>, Option<u32>, Option<u32>);

/// Commit sha (hex) -> its entries, sorted.
pub type Numstat = BTreeMap<String, Vec<NumstatEntry>>;

/// The arguments to give `git log` (after any ref selection) for output [`parse`] reads.
pub const GIT_LOG_ARGS: &[&str] = &["--numstat", "-M", "-z", "--format=%x01%H"];

pub fn parse(raw: &str) -> Numstat {
    let mut out = Numstat::new();
    for chunk in raw.split('\u{1}').filter(|c| !c.is_empty()) {
        if chunk.len() < 40 {
            continue;
        }
        let (sha, rest) = chunk.split_at(40);
        let mut fields = rest
            .split('\0')
            .map(|f| f.trim_start_matches('\n'))
            .filter(|f| !f.is_empty());
        let mut files = Vec::new();
        while let Some(entry) = fields.next() {
            let mut parts = entry.splitn(3, '\t');
            let added = parts.next().and_then(|n| n.parse().ok());
            let removed = parts.next().and_then(|n| n.parse().ok());
            match parts.next() {
                Some(path) if !path.is_empty() => {
                    files.push((path.to_string(), None, added, removed))
                }
                // A rename: the old and the new path follow as fields of their own.
                _ => {
                    let old = fields.next().unwrap_or_default().to_string();
                    let new = fields.next().unwrap_or_default().to_string();
                    files.push((new, Some(old), added, removed));
                }
            }
        }
        files.sort();
        out.insert(sha.to_string(), files);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_binary_and_renamed_entries() {
        let sha = "a".repeat(40);
        let raw = format!("\u{1}{sha}\n\n3\t1\tsrc/a.rs\0-\t-\tlogo.png\01\t1\t\0old.py\0new.py\0");
        let parsed = parse(&raw);
        assert_eq!(
            parsed[&sha],
            vec![
                ("logo.png".into(), None, None, None),
                ("new.py".into(), Some("old.py".into()), Some(1), Some(1)),
                ("src/a.rs".into(), None, Some(3), Some(1)),
            ]
        );
    }
}
