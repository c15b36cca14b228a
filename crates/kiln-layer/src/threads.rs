//! Named scoped threads for the codec's stages (encoding and applying run
//! their reading, hashing and writing on threads of a `std::thread::scope`).

use std::thread::{Scope, ScopedJoinHandle};

/// Spawns `work` on a thread of `scope` named `name` (shown by `top -H`,
/// perf and panics).
pub(crate) fn spawn_named<'scope, T: Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    name: &str,
    work: impl FnOnce() -> T + Send + 'scope,
) -> ScopedJoinHandle<'scope, T> {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn_scoped(scope, work)
        .unwrap_or_else(|e| panic!("spawning the {name} thread: {e}"))
}

/// Waits for a thread's result; its panic, if any, goes on in the caller.
pub(crate) fn join<T>(thread: ScopedJoinHandle<'_, T>) -> T {
    thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}
