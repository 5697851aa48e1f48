//! Resolve the refs the user asked for to commit tips.

use std::path::Path;

use gix::ObjectId;

use super::git_error;
use crate::ingest::IngestError;

/// A ref and the commit it points to (tags peeled).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefTip {
    pub name: String,
    pub id: ObjectId,
}

/// Resolve `specs` (empty: all branches and tags, or HEAD when there are none). Refs that do not
/// point to a commit are pushed to `skipped` with a reason.
pub fn resolve(
    repo: &gix::Repository,
    path: &Path,
    specs: &[String],
    skipped: &mut Vec<String>,
) -> Result<Vec<RefTip>, IngestError> {
    let platform = repo.references().map_err(|e| git_error(path, e))?;
    let mut candidates: Vec<gix::Reference<'_>> = Vec::new();
    if specs.is_empty() {
        for iter in [platform.local_branches(), platform.tags()] {
            for r in iter.map_err(|e| git_error(path, e))? {
                candidates.push(r.map_err(|e| git_error(path, e))?);
            }
        }
        if candidates.is_empty() {
            if let Ok(head) = repo.head_id() {
                return Ok(vec![RefTip {
                    name: "HEAD".into(),
                    id: head.detach(),
                }]);
            }
        }
    } else {
        for spec in specs {
            let before = candidates.len();
            if spec.contains('*') {
                for r in platform.all().map_err(|e| git_error(path, e))? {
                    let r = r.map_err(|e| git_error(path, e))?;
                    let full = r.name().as_bstr().to_string();
                    let short = r.name().shorten().to_string();
                    if glob_match(spec, &full) || glob_match(spec, &short) {
                        candidates.push(r);
                    }
                }
            } else if let Some(r) = repo
                .try_find_reference(spec.as_str())
                .map_err(|e| git_error(path, e))?
            {
                candidates.push(r);
            }
            if candidates.len() == before {
                return Err(IngestError::RefNotFound {
                    path: path.into(),
                    spec: spec.clone(),
                });
            }
        }
    }

    let mut tips = Vec::with_capacity(candidates.len());
    for mut r in candidates {
        let name = r.name().as_bstr().to_string();
        match r.peel_to_kind(gix::object::Kind::Commit) {
            Ok(commit) => tips.push(RefTip {
                name,
                id: commit.id,
            }),
            Err(e) => skipped.push(format!("{name}: does not point to a readable commit ({e})")),
        }
    }
    tips.sort_by(|a, b| a.name.cmp(&b.name));
    tips.dedup_by(|a, b| a.name == b.name);
    Ok(tips)
}

/// `*` matches any run of characters (including `/`); everything else is literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = parts.split_first().expect("split yields at least one part");
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn globs() {
        assert!(glob_match("refs/heads/*", "refs/heads/main"));
        assert!(glob_match("refs/heads/*", "refs/heads/feature/x"));
        assert!(glob_match("v1.*", "v1.2.3"));
        assert!(!glob_match("v1.*", "v2.0"));
        assert!(glob_match("*main", "main"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxcyyb"));
        assert!(glob_match("main", "main"));
        assert!(!glob_match("main", "mainline"));
    }
}
