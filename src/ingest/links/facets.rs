//! Facts pulled out of issue and commit text: error types, model ids, environment
//! (GPU, CUDA, driver, Python, library versions), and the class of a commit.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use regex::Regex;

use crate::store::records::{CommitClass, TextFacets};

fn re(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// Error types named in `text`, in first-seen order: Python exception classes
/// (`ModuleNotFoundError`, `torch.cuda.OutOfMemoryError` → `OutOfMemoryError`), CUDA and NCCL
/// failures, segfaults and Rust panics.
pub fn error_types(text: &str) -> Vec<String> {
    static EXC: OnceLock<Regex> = OnceLock::new();
    static SPECIAL: OnceLock<Regex> = OnceLock::new();
    let mut found: Vec<(usize, String)> = Vec::new();
    for m in re(
        &EXC,
        r"\b(?:[a-z_]+\.)*([A-Z][A-Za-z0-9]*(?:Error|Exception))\b",
    )
    .captures_iter(text)
    {
        let m1 = m.get(1).expect("group");
        found.push((m1.start(), m1.as_str().to_string()));
    }
    let special = re(
        &SPECIAL,
        r"(?i)(CUDA out of memory|CUDA error: [a-z ]+|illegal memory access|NCCL (?:error|WARN|timeout)|nccl[A-Z][A-Za-z]+Error|Segmentation fault|panicked at|core dumped|Killed)",
    );
    for m in special.find_iter(text) {
        let name = match m.as_str().to_ascii_lowercase().as_str() {
            "cuda out of memory" => "CUDA out of memory".to_string(),
            "illegal memory access" => "CUDA illegal memory access".to_string(),
            "panicked at" => "panic".to_string(),
            "segmentation fault" | "core dumped" => "Segmentation fault".to_string(),
            "killed" => continue,
            s if s.starts_with("nccl") => "NCCL error".to_string(),
            s if s.starts_with("cuda error: ") => format!("CUDA error: {}", s[12..].trim()),
            _ => m.as_str().to_string(),
        };
        found.push((m.start(), name));
    }
    found.sort();
    let mut out: Vec<String> = Vec::new();
    for (_, name) in found {
        if !out.contains(&name) {
            out.push(name);
        }
    }
    out
}

/// Hugging Face style model ids (`meta-llama/Llama-3-8B`, `mistralai/Mistral-7B-v0.1`).
pub fn models(text: &str) -> Vec<String> {
    static ID: OnceLock<Regex> = OnceLock::new();
    static FAMILY: OnceLock<Regex> = OnceLock::new();
    let family = re(
        &FAMILY,
        r"(?i)(llama|mistral|mixtral|qwen|gpt|phi|gemma|bert|roberta|t5|falcon|opt-|bloom|deepseek|starcoder|codegen|whisper|vicuna|yi-|internlm|baichuan|chatglm|olmo|pythia|\d+(\.\d+)?[bm]\b)",
    );
    let mut out: Vec<String> = Vec::new();
    for c in re(
        &ID,
        r"(?:^|[\s`'(\[=])([A-Za-z0-9][\w-]*/[A-Za-z0-9][\w.-]*[A-Za-z0-9])",
    )
    .captures_iter(text)
    {
        let id = c[1].to_string();
        let (org, name) = id.split_once('/').expect("has a slash");
        let looks_like_path = name.contains('/')
            || [
                ".py", ".rs", ".cu", ".cpp", ".h", ".md", ".txt", ".json", ".yaml", ".toml", ".git",
            ]
            .iter()
            .any(|ext| name.ends_with(ext))
            || [
                "src", "tests", "docs", "csrc", "lib", "usr", "home", "issues", "pull",
            ]
            .contains(&org);
        if !looks_like_path && family.is_match(name) && !out.contains(&id) {
            out.push(id);
        }
    }
    out
}

/// Environment facts from "System Info"-style blocks and `pip freeze` lines.
pub fn environment(text: &str) -> Vec<(String, String)> {
    static GPU: OnceLock<Regex> = OnceLock::new();
    static KV: OnceLock<Regex> = OnceLock::new();
    static PIN: OnceLock<Regex> = OnceLock::new();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    if let Some(m) = re(
        &GPU,
        r"\b((?:NVIDIA |Tesla )?(?:GeForce RTX \d{4}(?: Ti)?|RTX A?\d{4}|A100|H100|H200|H20|L40S?|L4|A10G?|A30|A40|V100|T4|P100|B200|GB200)(?:[- ](?:SXM\d?|PCIe|NVL))?(?:[- ]\d+GB)?|MI\d{3}X?)\b",
    )
    .find(text)
    {
        env.insert("gpu".into(), m.as_str().trim().to_string());
    }
    let kv = re(
        &KV,
        r"(?im)^[\s*-]*(CUDA(?: runtime)?(?: version)?|CUDA used to build PyTorch|Driver Version|NVIDIA driver(?: version)?|Python(?: version)?|PyTorch(?: version)?|torch(?: version)?|OS|Transformers(?: version)?)\s*:\s*(.+?)\s*$",
    );
    for c in kv.captures_iter(text) {
        let key = c[1].to_ascii_lowercase();
        let key = if key.starts_with("cuda") {
            "cuda"
        } else if key.contains("driver") {
            "driver"
        } else if key.starts_with("python") {
            "python"
        } else if key.starts_with("pytorch") || key.starts_with("torch") {
            "torch"
        } else if key.starts_with("transformers") {
            "pkg:transformers"
        } else {
            "os"
        };
        let value = c[2].trim().trim_matches('`').to_string();
        if !value.is_empty() {
            env.entry(key.to_string()).or_insert(value);
        }
    }
    for c in re(&PIN, r"(?m)^[\s*-]*([A-Za-z][\w.-]*)==([\w.+-]+)\s*$").captures_iter(text) {
        let name = c[1].to_ascii_lowercase();
        let key = if name == "torch" {
            "torch".to_string()
        } else {
            format!("pkg:{name}")
        };
        env.entry(key).or_insert_with(|| c[2].to_string());
    }
    env.into_iter().collect()
}

/// All text facets of `text`.
pub fn text_facets(text: &str) -> TextFacets {
    TextFacets {
        error_types: error_types(text),
        models: models(text),
        environment: environment(text),
    }
}

/// The class of a commit from its message and the paths it touched. In order: reverts,
/// conventional-commit prefixes, dependency bumps, changes confined to docs, tests or
/// dependency manifests, then keywords in the subject.
pub fn commit_class(message: &str, paths: &[String]) -> CommitClass {
    static CONVENTIONAL: OnceLock<Regex> = OnceLock::new();
    static FIX: OnceLock<Regex> = OnceLock::new();
    static REFACTOR: OnceLock<Regex> = OnceLock::new();
    static FEATURE: OnceLock<Regex> = OnceLock::new();
    let subject = message.lines().next().unwrap_or("").trim();
    if subject.starts_with("Revert \"") || message.contains("This reverts commit") {
        return CommitClass::Revert;
    }
    if let Some(c) = re(
        &CONVENTIONAL,
        r"^(?i)(fix|bugfix|hotfix|feat|feature|refactor|perf|style|docs?|tests?|chore|build|ci|deps|revert)(\(([^)]*)\))?!?:",
    )
    .captures(subject)
    {
        let scope = c.get(3).map_or("", |m| m.as_str()).to_ascii_lowercase();
        return match c[1].to_ascii_lowercase().as_str() {
            "fix" | "bugfix" | "hotfix" => CommitClass::Fix,
            "feat" | "feature" => CommitClass::Feature,
            "refactor" | "perf" | "style" => CommitClass::Refactor,
            "doc" | "docs" => CommitClass::Docs,
            "test" | "tests" => CommitClass::Test,
            "deps" => CommitClass::Deps,
            "revert" => CommitClass::Revert,
            _ if scope.starts_with("deps") => CommitClass::Deps,
            _ => CommitClass::Other,
        };
    }
    let lower = subject.to_ascii_lowercase();
    if lower.starts_with("bump ") || lower.starts_with("update dependency") {
        return CommitClass::Deps;
    }
    if !paths.is_empty() {
        if paths.iter().all(|p| is_doc(p)) {
            return CommitClass::Docs;
        }
        if paths.iter().all(|p| is_test(p)) {
            return CommitClass::Test;
        }
        if paths.iter().all(|p| is_manifest(p)) {
            return CommitClass::Deps;
        }
    }
    if re(
        &FIX,
        r"(?i)\b(fix(e[sd])?|bug|crash|panic|error|leak|regression|broken|wrong|incorrect|resolve[sd]?|close[sd]?)\b",
    )
    .is_match(message)
    {
        return CommitClass::Fix;
    }
    if re(
        &REFACTOR,
        r"(?i)^(refactor|move|rename|reformat|clean ?up|simplify|split|extract|reorganize)\b",
    )
    .is_match(subject)
    {
        return CommitClass::Refactor;
    }
    if re(
        &FEATURE,
        r"(?i)^(add|support|implement|introduce|enable|allow|new)\b",
    )
    .is_match(subject)
    {
        return CommitClass::Feature;
    }
    CommitClass::Other
}

fn is_doc(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.starts_with("docs/")
        || lower.contains("/docs/")
        || [".md", ".rst", ".txt", ".adoc"]
            .iter()
            .any(|e| lower.ends_with(e) && !lower.ends_with("requirements.txt"))
}

fn is_test(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    path.starts_with("tests/")
        || path.contains("/tests/")
        || path.starts_with("test/")
        || name.starts_with("test_")
        || name.ends_with("_test.go")
        || name.ends_with("_test.py")
        || name.contains(".test.")
        || name.contains(".spec.")
}

fn is_manifest(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "requirements.txt"
            | "Cargo.toml"
            | "Cargo.lock"
            | "package.json"
            | "package-lock.json"
            | "yarn.lock"
            | "go.mod"
            | "go.sum"
            | "pyproject.toml"
            | "setup.py"
            | "setup.cfg"
            | "poetry.lock"
            | "uv.lock"
    ) || (name.starts_with("requirements") && name.ends_with(".txt"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_from_tracebacks_and_logs() {
        let text = "Traceback (most recent call last):\n  File \"x.py\", line 3, in f\n\
                    torch.cuda.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n\
                    also ModuleNotFoundError: No module named 'x'\nNCCL error in: ...\n\
                    thread 'main' panicked at src/x.rs:1:2";
        assert_eq!(
            error_types(text),
            vec![
                "OutOfMemoryError",
                "CUDA out of memory",
                "ModuleNotFoundError",
                "NCCL error",
                "panic"
            ]
        );
        assert!(error_types("all good").is_empty());
    }

    #[test]
    fn model_ids_but_not_paths() {
        let text = "Running meta-llama/Llama-2-7b-hf and `mistralai/Mistral-7B-v0.1`, \
                    see minillm/worker/memory_utils.py and src/lib.rs and owner/repo";
        assert_eq!(
            models(text),
            vec!["meta-llama/Llama-2-7b-hf", "mistralai/Mistral-7B-v0.1"]
        );
    }

    #[test]
    fn environment_from_system_info() {
        let text = "### System Info\n- GPU: NVIDIA A100-SXM4-80GB\n- CUDA version: 12.1\n\
                    - Driver Version: 535.104.05\n- Python: 3.10.12\n- OS: Ubuntu 22.04\n\
                    torch==2.1.0\ntransformers==4.36.2\n";
        let env = environment(text);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("gpu"), Some("NVIDIA A100-SXM4-80GB"));
        assert_eq!(get("cuda"), Some("12.1"));
        assert_eq!(get("driver"), Some("535.104.05"));
        assert_eq!(get("python"), Some("3.10.12"));
        assert_eq!(get("os"), Some("Ubuntu 22.04"));
        assert_eq!(get("torch"), Some("2.1.0"));
        assert_eq!(get("pkg:transformers"), Some("4.36.2"));
    }

    #[test]
    fn commit_classes() {
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let code = p(&["minillm/x.py"]);
        assert_eq!(commit_class("Revert \"x\"", &code), CommitClass::Revert);
        assert_eq!(
            commit_class("feat: add ALiBi (#21)", &code),
            CommitClass::Feature
        );
        assert_eq!(commit_class("fix(sched): x", &code), CommitClass::Fix);
        assert_eq!(
            commit_class("chore(deps): bump x", &code),
            CommitClass::Deps
        );
        assert_eq!(
            commit_class("Bump torch from 2.1.0 to 2.2.0", &p(&["requirements.txt"])),
            CommitClass::Deps
        );
        assert_eq!(
            commit_class("Document the scheduler", &p(&["README.md"])),
            CommitClass::Docs
        );
        assert_eq!(
            commit_class("More cases", &p(&["tests/test_x.py"])),
            CommitClass::Test
        );
        assert_eq!(
            commit_class("Fix double free in free_blocks", &code),
            CommitClass::Fix
        );
        assert_eq!(
            commit_class("Move helpers into common", &code),
            CommitClass::Refactor
        );
        assert_eq!(
            commit_class("Add KV cache manager", &code),
            CommitClass::Feature
        );
        assert_eq!(commit_class("Trigger CI", &[]), CommitClass::Other);
    }
}
