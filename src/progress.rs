//! How long-running library work reports what it is doing. Every stage (ingest, index, and the
//! stages after them) reports through this one trait; the library never draws, the CLI renders
//! it with progress bars.

/// Receives progress of long-running work. All methods default to doing nothing.
pub trait Progress: Sync {
    /// A new phase starts; `total` is the number of steps when known.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// `n` more steps of the current phase are done.
    fn advance(&self, _n: u64) {}
    /// Something the user should know (a skip, a rewritten ref).
    fn warn(&self, _message: &str) {}
    /// A short live status of the current phase (a training loss and speed).
    fn status(&self, _text: &str) {}
    /// The current phase is over.
    fn done(&self) {}
}

/// Wait for a scoped thread, showing the wait as `phase`; a panic in the thread goes on here.
pub fn join_showing<T>(
    handle: std::thread::ScopedJoinHandle<'_, T>,
    phase: &str,
    progress: &dyn Progress,
) -> T {
    progress.phase(phase, None);
    let out = handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    progress.done();
    out
}

/// A [`Progress`] that ignores everything.
pub struct Silent;
impl Progress for Silent {}
