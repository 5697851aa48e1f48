//! The heap for tree-sitter's syntax trees: mimalloc instead of the C library's malloc.
//!
//! The code stage parses tens of thousands of file versions; tree-sitter allocates and frees
//! the nodes of every tree, and glibc's malloc spent about an eighth of the stage in its own
//! bookkeeping (`_int_malloc`, `malloc_consolidate`, `unlink_chunk`). Rust's allocations stay
//! with the system allocator: making mimalloc the global allocator too saved no more time and
//! raised the history stage's peak memory by a third (docs/benchmarks.md).
//!
//! The library does not switch tree-sitter's allocator for programs that embed it: the `lore`
//! binary and the benchmarks call [`route_tree_sitter`] first thing in `main`.

/// Send tree-sitter's C allocations to mimalloc. Call it once, before any tree-sitter object
/// exists (tree-sitter frees every object with the allocator current at the time, so one made
/// before would be freed by the wrong heap); later calls do nothing.
pub fn route_tree_sitter() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use libmimalloc_sys::{mi_calloc, mi_free, mi_malloc, mi_realloc};
        // SAFETY: the four functions are one allocator family, return malloc-aligned memory and
        // are thread-safe; `Once` makes this the only call, and callers run it before creating
        // any tree-sitter object.
        unsafe {
            tree_sitter::set_allocator(Some(tree_sitter::Allocator {
                malloc: mi_malloc,
                calloc: mi_calloc,
                realloc: mi_realloc,
                free: mi_free,
            }));
        }
    });
}
