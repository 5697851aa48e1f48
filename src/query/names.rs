//! How name patterns match: globs over paths, symbol names, qualified and module-qualified
//! names.

use crate::code::module_qualified;

/// Whether `pattern` names the symbol `qname` in `path`: its name, its qualified name, or its
/// module-qualified name or any trailing part of it (`memory_utils.BlockAllocator.free_blocks`,
/// `worker::memory_utils::free_blocks`), globs allowed.
pub fn symbol_matches(pattern: &str, path: &str, qname: &str) -> bool {
    let name = qname.rsplit(['.', ':']).next().unwrap_or("");
    if glob(pattern, qname) || glob(pattern, name) {
        return true;
    }
    if !pattern.contains(['.', ':']) {
        return false;
    }
    let full = module_qualified(path, qname);
    full == pattern
        || full.ends_with(&format!(".{pattern}"))
        || full.ends_with(&format!("::{pattern}"))
        || glob(pattern, &full)
        || glob(&format!("*.{pattern}"), &full)
        || glob(&format!("*::{pattern}"), &full)
}

/// Glob match with `*` and `?`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A path matches a name if a component or its stem does (`memory_utils`, `memory_*`,
/// `memory_utils.py`), or the path ends with it (`worker/memory_utils.py`).
pub fn path_matches(pattern: &str, path: &str) -> bool {
    if !pattern.contains(['*', '?', '/']) {
        // The common case, without glob machinery: a component or a component's stem.
        return path
            .split('/')
            .any(|c| c == pattern || c.rsplit_once('.').is_some_and(|(stem, _)| stem == pattern));
    }
    if pattern.contains('/') {
        return glob(pattern, path)
            || path.ends_with(pattern)
            || glob(&format!("*{pattern}"), path);
    }
    path.split('/').any(|c| {
        glob(pattern, c)
            || c.rsplit_once('.')
                .is_some_and(|(stem, _)| glob(pattern, stem))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_paths() {
        assert!(glob("memory_*", "memory_utils"));
        assert!(glob("*utils*", "memory_utils.py"));
        assert!(!glob("memory_?", "memory_utils"));
        let path = "minillm/worker/memory_utils.py";
        assert!(path_matches("memory_utils", path));
        assert!(path_matches("memory_*", path));
        assert!(path_matches("worker/memory_utils.py", path));
        assert!(path_matches("minillm/*/memory_utils.py", path));
        assert!(!path_matches("memory", path));
        assert!(path_matches("worker", path));
    }

    #[test]
    fn symbol_patterns() {
        let py = "minillm/worker/memory_utils.py";
        let qname = "BlockAllocator.free_blocks";
        assert!(symbol_matches(
            "memory_utils.BlockAllocator.free_blocks",
            py,
            qname
        ));
        assert!(symbol_matches(
            "worker.memory_utils.BlockAllocator.free_blocks",
            py,
            qname
        ));
        assert!(symbol_matches("free_blocks", py, qname));
        assert!(!symbol_matches(
            "kv_cache.BlockAllocator.free_blocks",
            py,
            qname
        ));
        let rs = "rust/src/worker/memory_utils.rs";
        assert!(symbol_matches(
            "worker::memory_utils::free_blocks",
            rs,
            "free_blocks"
        ));
        assert!(!symbol_matches(
            "orker::memory_utils::free_blocks",
            rs,
            "free_blocks"
        ));
    }
}
