//! Languages lore knows: detection by extension and shebang, each language's grammar and
//! query file (`queries/<language>.scm`, the one place its extraction rules live), and how its
//! module paths are written.

/// A language lore extracts symbols from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    Python,
    Rust,
    C,
    /// C++, and CUDA (`.cu`, `.cuh`) after its launch syntax and qualifiers are blanked out.
    Cpp,
    Go,
    JavaScript,
    TypeScript,
    Tsx,
}

impl Lang {
    pub const ALL: [Lang; 8] = [
        Lang::Python,
        Lang::Rust,
        Lang::C,
        Lang::Cpp,
        Lang::Go,
        Lang::JavaScript,
        Lang::TypeScript,
        Lang::Tsx,
    ];

    pub fn from_name(name: &str) -> Option<Lang> {
        Lang::ALL.into_iter().find(|l| l.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Lang::Python => "python",
            Lang::Rust => "rust",
            Lang::C => "c",
            Lang::Cpp => "cpp",
            Lang::Go => "go",
            Lang::JavaScript => "javascript",
            Lang::TypeScript => "typescript",
            Lang::Tsx => "tsx",
        }
    }

    /// Detect from the path's extension, else from a `#!` line naming an interpreter.
    pub fn detect(path: &str, content: &[u8]) -> Option<Lang> {
        let file = path.rsplit('/').next().unwrap_or(path);
        let ext = file.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
        let by_ext = match ext.as_deref() {
            Some("py" | "pyi") => Some(Lang::Python),
            Some("rs") => Some(Lang::Rust),
            Some("c" | "h") => Some(Lang::C),
            Some("cc" | "cpp" | "cxx" | "hpp" | "hh" | "hxx" | "cu" | "cuh") => Some(Lang::Cpp),
            Some("go") => Some(Lang::Go),
            Some("js" | "mjs" | "cjs" | "jsx") => Some(Lang::JavaScript),
            Some("ts" | "mts" | "cts") => Some(Lang::TypeScript),
            Some("tsx") => Some(Lang::Tsx),
            _ => None,
        };
        by_ext.or_else(|| Lang::from_shebang(content))
    }

    fn from_shebang(content: &[u8]) -> Option<Lang> {
        let line = content.strip_prefix(b"#!")?;
        let line = &line[..line.iter().position(|&b| b == b'\n').unwrap_or(line.len())];
        let line = String::from_utf8_lossy(line);
        let mut words = line.split_whitespace();
        let mut program = words.next()?.rsplit('/').next()?;
        if program == "env" {
            program = words.find(|w| !w.starts_with('-'))?;
        }
        if program.starts_with("python") {
            Some(Lang::Python)
        } else if program == "node" || program == "nodejs" {
            Some(Lang::JavaScript)
        } else if program == "deno" || program == "ts-node" {
            Some(Lang::TypeScript)
        } else {
            None
        }
    }

    /// Is this a CUDA source that needs blanking before the C++ grammar sees it?
    pub fn is_cuda(path: &str) -> bool {
        path.ends_with(".cu") || path.ends_with(".cuh")
    }

    pub fn grammar(self) -> tree_sitter::Language {
        match self {
            Lang::Python => tree_sitter_python::LANGUAGE.into(),
            Lang::Rust => tree_sitter_rust::LANGUAGE.into(),
            Lang::C => tree_sitter_c::LANGUAGE.into(),
            Lang::Cpp => tree_sitter_cpp::LANGUAGE.into(),
            Lang::Go => tree_sitter_go::LANGUAGE.into(),
            Lang::JavaScript => tree_sitter_javascript::LANGUAGE.into(),
            Lang::TypeScript => tree_sitter_typescript::LANGUAGE_TYPESCRIPT.into(),
            Lang::Tsx => tree_sitter_typescript::LANGUAGE_TSX.into(),
        }
    }

    pub fn query_source(self) -> &'static str {
        match self {
            Lang::Python => include_str!("queries/python.scm"),
            Lang::Rust => include_str!("queries/rust.scm"),
            Lang::C => include_str!("queries/c.scm"),
            Lang::Cpp => include_str!("queries/cpp.scm"),
            Lang::Go => include_str!("queries/go.scm"),
            Lang::JavaScript => include_str!("queries/javascript.scm"),
            Lang::TypeScript | Lang::Tsx => include_str!("queries/typescript.scm"),
        }
    }

    /// Separator between the parts of a qualified name.
    pub fn separator(self) -> &'static str {
        match self {
            Lang::Rust | Lang::Cpp => "::",
            _ => ".",
        }
    }
}

/// Blank out CUDA's launch syntax (`<<<grid, block>>>`) and qualifiers (`__global__`…) with
/// spaces, so the C++ grammar parses the file and byte offsets stay the same.
pub fn blank_cuda(source: &[u8]) -> Vec<u8> {
    let mut out = source.to_vec();
    for word in [
        &b"__global__"[..],
        b"__device__",
        b"__host__",
        b"__shared__",
        b"__constant__",
        b"__forceinline__",
        b"__noinline__",
        b"__launch_bounds__",
    ] {
        let mut i = 0;
        while let Some(pos) = memchr::memmem::find(&out[i..], word) {
            let start = i + pos;
            out[start..start + word.len()].fill(b' ');
            i = start + word.len();
        }
    }
    let mut i = 0;
    while let Some(pos) = memchr::memmem::find(&out[i..], b"<<<") {
        let start = i + pos;
        let Some(len) = memchr::memmem::find(&out[start..], b">>>") else {
            break;
        };
        out[start..start + len + 3].fill(b' ');
        i = start + len + 3;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_by_extension_and_shebang() {
        assert_eq!(
            Lang::detect("minillm/worker/memory_utils.py", b""),
            Some(Lang::Python)
        );
        assert_eq!(Lang::detect("csrc/attention.cu", b""), Some(Lang::Cpp));
        assert_eq!(Lang::detect("web/App.tsx", b""), Some(Lang::Tsx));
        assert_eq!(
            Lang::detect("bin/serve", b"#!/usr/bin/env python3\nprint(1)\n"),
            Some(Lang::Python)
        );
        assert_eq!(
            Lang::detect("bin/tool", b"#!/usr/bin/node\n"),
            Some(Lang::JavaScript)
        );
        assert_eq!(Lang::detect("README.md", b"# hi"), None);
        assert_eq!(Lang::detect("Makefile", b"all:\n"), None);
    }

    #[test]
    fn cuda_blanking_keeps_offsets() {
        let src = b"__global__ void k(int* x) {}\nvoid f() { k<<<grid, 128>>>(x); }\n";
        let out = blank_cuda(src);
        assert_eq!(out.len(), src.len());
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("           void k("), "{text}");
        assert!(text.contains("k               (x)"), "{text}");
    }

    #[test]
    fn every_query_compiles_against_its_grammar() {
        for lang in Lang::ALL {
            tree_sitter::Query::new(&lang.grammar(), lang.query_source())
                .unwrap_or_else(|e| panic!("{} query: {e}", lang.name()));
        }
    }
}
