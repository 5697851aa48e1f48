//! Code resolution shared by the stages: which language a path is in, how its module paths
//! are written, and lookups from what people write in issues (paths, traceback frames,
//! identifiers) to the repository's files and symbols. Ingest uses them to derive `mentions`
//! links; the index stage uses them to rank files for `locate`; queries use the module paths.

pub mod lang;
pub mod mentions;

pub use lang::Lang;
pub use mentions::{CodeIndex, Mention};

/// A symbol's name with its module path, in its language's notation:
/// `minillm.worker.memory_utils.BlockAllocator.free_blocks` for Python,
/// `worker::memory_utils::free_blocks` for `src/worker/memory_utils.rs` (crate-relative, no
/// `mod`/`lib`/`main`), the path's directories joined with `::` for C, C++ and CUDA, and with
/// `.` otherwise.
pub fn module_qualified(path: &str, qname: &str) -> String {
    let stem = path.rsplit_once('.').map_or(path, |(stem, _)| stem);
    let (module, sep) = match Lang::detect(path, b"") {
        Some(Lang::Rust) => {
            let rel = stem.rsplit_once("src/").map_or(stem, |(_, r)| r);
            let mut parts: Vec<&str> = rel.split('/').collect();
            if matches!(parts.last(), Some(&("mod" | "lib" | "main"))) {
                parts.pop();
            }
            (parts.join("::"), "::")
        }
        Some(Lang::Python) => {
            let mut parts: Vec<&str> = stem.split('/').collect();
            if parts.last() == Some(&"__init__") {
                parts.pop();
            }
            (parts.join("."), ".")
        }
        Some(Lang::C | Lang::Cpp) => (stem.replace('/', "::"), "::"),
        _ => (stem.replace('/', "."), "."),
    };
    if module.is_empty() {
        qname.to_string()
    } else {
        format!("{module}{sep}{qname}")
    }
}

#[cfg(test)]
mod tests {
    use super::module_qualified;

    #[test]
    fn module_qualified_names() {
        let py = "minillm/worker/memory_utils.py";
        assert_eq!(
            module_qualified(py, "BlockAllocator.free_blocks"),
            "minillm.worker.memory_utils.BlockAllocator.free_blocks"
        );
        assert_eq!(
            module_qualified("minillm/common/__init__.py", "X"),
            "minillm.common.X"
        );
        assert_eq!(
            module_qualified("rust/src/worker/memory_utils.rs", "free_blocks"),
            "worker::memory_utils::free_blocks"
        );
        assert_eq!(
            module_qualified("rust/src/cache/mod.rs", "Block"),
            "cache::Block"
        );
        assert_eq!(module_qualified("rust/src/lib.rs", "run"), "run");
        assert_eq!(
            module_qualified("csrc/attn/kernel.cu", "launch"),
            "csrc::attn::kernel::launch"
        );
        assert_eq!(module_qualified("web/app.ts", "main"), "web.app.main");
    }
}
