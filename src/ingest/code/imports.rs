//! Resolve an import, as written, to a file of the repository at HEAD.
//!
//! * Python: `a.b.c` → `a/b/c.py` or `a/b/c/__init__.py` (also under a `src/`-style root: any
//!   path ending in `/a/b/c.py`); relative `.c` / `..c` from the importing file's package.
//! * Rust: `crate::a::b::Item` → `src/a/b.rs`, `src/a/b/mod.rs`, `src/a.rs`, … in the importing
//!   file's crate (longest module path that exists); `self::` and `super::` from its module.
//! * C, C++, CUDA: `"x.h"` next to the importing file, else the one HEAD path ending in `/x.h`;
//!   `<x/y.h>` only by that unique suffix.
//! * JavaScript, TypeScript: `./x`, `../x` with the usual extensions and `index` files.
//!
//! Anything else (the standard library, third-party packages, Go packages) stays unresolved.

use std::collections::{HashMap, HashSet};

use super::Lang;

/// HEAD paths, with an index from file name to paths for suffix lookups.
pub struct HeadPaths {
    paths: HashSet<String>,
    by_name: HashMap<String, Vec<String>>,
}

impl HeadPaths {
    pub fn new<'a>(paths: impl IntoIterator<Item = &'a str>) -> HeadPaths {
        let mut set = HashSet::new();
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for p in paths {
            set.insert(p.to_string());
            let name = p.rsplit('/').next().unwrap_or(p).to_string();
            by_name.entry(name).or_default().push(p.to_string());
        }
        HeadPaths {
            paths: set,
            by_name,
        }
    }

    fn has(&self, p: &str) -> Option<String> {
        self.paths.contains(p).then(|| p.to_string())
    }

    /// The one path that is `suffix` or ends in `/suffix`.
    fn unique_suffix(&self, suffix: &str) -> Option<String> {
        let name = suffix.rsplit('/').next()?;
        let mut found = self
            .by_name
            .get(name)?
            .iter()
            .filter(|p| *p == suffix || p.ends_with(&format!("/{suffix}")));
        let first = found.next()?;
        found.next().is_none().then(|| first.clone())
    }
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(d, _)| d)
}

fn join(dir: &str, rest: &str) -> String {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for seg in rest.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The HEAD file `import` (as written in `importer`) refers to, if it is in the repository.
/// A change to what this resolves changes `IMPORT_RULES` in `ingest.rs` too, so that files
/// ingested before it have their imports derived again.
pub fn resolve(lang: Lang, importer: &str, import: &str, head: &HeadPaths) -> Option<String> {
    let import = import.trim();
    match lang {
        Lang::Python => python(importer, import, head),
        Lang::Rust => rust(importer, import, head),
        Lang::C | Lang::Cpp => c_include(importer, import, head),
        Lang::JavaScript | Lang::TypeScript | Lang::Tsx => js(importer, import, head),
        Lang::Go => None,
    }
}

/// `from package import name`, as extraction records it: package and name.
pub fn python_from(import: &str) -> Option<(&str, &str)> {
    import.strip_prefix("from ")?.split_once(" import ")
}

fn python(importer: &str, import: &str, head: &HeadPaths) -> Option<String> {
    if let Some((package, name)) = python_from(import) {
        // Only when the name is a module of the package; a class or function imported from a
        // module is the module's import, recorded separately.
        let joined = if package.ends_with('.') {
            format!("{package}{name}")
        } else {
            format!("{package}.{name}")
        };
        return python(importer, &joined, head).filter(|p| {
            let stem = p.trim_end_matches(".py").trim_end_matches("/__init__");
            stem.ends_with(&name.replace('.', "/"))
        });
    }
    let module_file = |base: &str| {
        head.has(&format!("{base}.py"))
            .or_else(|| head.has(&format!("{base}/__init__.py")))
    };
    if let Some(rest) = import.strip_prefix('.') {
        // One dot is the importing file's package; each further dot goes up one level.
        let ups = rest.chars().take_while(|c| *c == '.').count();
        let name = &rest[ups..];
        let mut dir = dir_of(importer).to_string();
        for _ in 0..ups {
            dir = dir_of(&dir).to_string();
        }
        let base = join(&dir, &name.replace('.', "/"));
        return if name.is_empty() {
            head.has(&format!("{base}/__init__.py"))
        } else {
            module_file(&base)
        };
    }
    let base = import.replace('.', "/");
    module_file(&base)
        .or_else(|| head.unique_suffix(&format!("{base}.py")))
        .or_else(|| head.unique_suffix(&format!("{base}/__init__.py")))
}

fn rust(importer: &str, import: &str, head: &HeadPaths) -> Option<String> {
    // `use a::b::{c, d}` and `use a::b as c`: the path before any brace or alias.
    let path = import.split(['{', ' ']).next()?.trim_end_matches("::");
    let mut segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    // The crate's source root: the nearest `src` directory above the importing file.
    let src_root = {
        let mut dir = dir_of(importer);
        loop {
            if dir.ends_with("src") || dir.is_empty() {
                break dir.to_string();
            }
            dir = dir_of(dir);
        }
    };
    let module_dir = {
        let d = dir_of(importer).to_string();
        let file = importer.rsplit('/').next().unwrap_or("");
        if matches!(file, "mod.rs" | "lib.rs" | "main.rs") {
            d
        } else {
            join(&d, file.trim_end_matches(".rs"))
        }
    };
    let base = match segs.first().copied() {
        Some("crate") => {
            segs.remove(0);
            src_root
        }
        Some("self") => {
            segs.remove(0);
            module_dir
        }
        Some("super") => {
            let mut dir = module_dir;
            while segs.first() == Some(&"super") {
                segs.remove(0);
                dir = dir_of(&dir).to_string();
            }
            dir
        }
        _ => return None,
    };
    // The longest prefix of the path that is a module file (the rest are items).
    for n in (1..=segs.len()).rev() {
        let rel = segs[..n].join("/");
        let stem = join(&base, &rel);
        if let Some(p) = head
            .has(&format!("{stem}.rs"))
            .or_else(|| head.has(&format!("{stem}/mod.rs")))
        {
            return Some(p);
        }
    }
    None
}

fn c_include(importer: &str, import: &str, head: &HeadPaths) -> Option<String> {
    if let Some(name) = import.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        return head
            .has(&join(dir_of(importer), name))
            .or_else(|| head.unique_suffix(name.trim_start_matches("./")));
    }
    let name = import.strip_prefix('<').and_then(|s| s.strip_suffix('>'))?;
    head.unique_suffix(name)
}

fn js(importer: &str, import: &str, head: &HeadPaths) -> Option<String> {
    let spec = import.trim_matches(['"', '\'', '`']);
    if !(spec.starts_with("./") || spec.starts_with("../")) {
        return None;
    }
    let base = join(dir_of(importer), spec);
    if let Some(p) = head.has(&base) {
        return Some(p);
    }
    for ext in [".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".d.ts"] {
        if let Some(p) = head.has(&format!("{base}{ext}")) {
            return Some(p);
        }
    }
    ["index.ts", "index.tsx", "index.js", "index.jsx"]
        .iter()
        .find_map(|i| head.has(&format!("{base}/{i}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> HeadPaths {
        HeadPaths::new([
            "minillm/__init__.py",
            "minillm/worker/__init__.py",
            "minillm/worker/memory_utils.py",
            "minillm/worker/kv_cache.py",
            "minillm/common/__init__.py",
            "minillm/common/utils.py",
            "minillm/engine/scheduler.py",
            "rust/src/lib.rs",
            "rust/src/tokenizer.rs",
            "rust/src/cache/mod.rs",
            "rust/src/cache/block.rs",
            "csrc/attention.cu",
            "csrc/attention.h",
            "include/minillm/ops.h",
            "web/src/app.ts",
            "web/src/util/index.ts",
        ])
    }

    #[test]
    fn python_absolute_relative_and_packages() {
        let h = head();
        let r = |from: &str, imp: &str| resolve(Lang::Python, from, imp, &h);
        assert_eq!(
            r("minillm/engine/scheduler.py", "minillm.worker.memory_utils").as_deref(),
            Some("minillm/worker/memory_utils.py")
        );
        assert_eq!(
            r("minillm/engine/scheduler.py", "minillm.common").as_deref(),
            Some("minillm/common/__init__.py")
        );
        assert_eq!(
            r("minillm/worker/kv_cache.py", ".memory_utils").as_deref(),
            Some("minillm/worker/memory_utils.py")
        );
        assert_eq!(
            r("minillm/worker/kv_cache.py", "..common.utils").as_deref(),
            Some("minillm/common/utils.py")
        );
        assert_eq!(
            r("minillm/worker/kv_cache.py", ".").as_deref(),
            Some("minillm/worker/__init__.py")
        );
        assert_eq!(
            r("tests/test_x.py", "worker.memory_utils").as_deref(),
            Some("minillm/worker/memory_utils.py")
        );
        assert_eq!(r("minillm/engine/scheduler.py", "collections"), None);
        assert_eq!(r("minillm/engine/scheduler.py", "typing"), None);
    }

    #[test]
    fn rust_crate_self_and_super_paths() {
        let h = head();
        let r = |from: &str, imp: &str| resolve(Lang::Rust, from, imp, &h);
        assert_eq!(
            r("rust/src/lib.rs", "crate::tokenizer::pre_tokenize").as_deref(),
            Some("rust/src/tokenizer.rs")
        );
        assert_eq!(
            r("rust/src/tokenizer.rs", "crate::cache::block::{Block, Id}").as_deref(),
            Some("rust/src/cache/block.rs")
        );
        assert_eq!(
            r("rust/src/cache/mod.rs", "self::block::Block").as_deref(),
            Some("rust/src/cache/block.rs")
        );
        assert_eq!(
            r("rust/src/cache/block.rs", "super::super::tokenizer").as_deref(),
            Some("rust/src/tokenizer.rs")
        );
        assert_eq!(
            r("rust/src/lib.rs", "crate::cache").as_deref(),
            Some("rust/src/cache/mod.rs")
        );
        assert_eq!(r("rust/src/lib.rs", "std::collections::HashMap"), None);
    }

    #[test]
    fn c_includes_and_js_relative_imports() {
        let h = head();
        assert_eq!(
            resolve(Lang::Cpp, "csrc/attention.cu", "\"attention.h\"", &h).as_deref(),
            Some("csrc/attention.h")
        );
        assert_eq!(
            resolve(Lang::Cpp, "csrc/attention.cu", "<minillm/ops.h>", &h).as_deref(),
            Some("include/minillm/ops.h")
        );
        assert_eq!(
            resolve(Lang::Cpp, "csrc/attention.cu", "<cuda_runtime.h>", &h),
            None
        );
        assert_eq!(
            resolve(Lang::TypeScript, "web/src/app.ts", "\"./util\"", &h).as_deref(),
            Some("web/src/util/index.ts")
        );
        assert_eq!(
            resolve(Lang::TypeScript, "web/src/util/index.ts", "'../app'", &h).as_deref(),
            Some("web/src/app.ts")
        );
        assert_eq!(
            resolve(Lang::JavaScript, "web/src/app.ts", "\"react\"", &h),
            None
        );
    }
}
