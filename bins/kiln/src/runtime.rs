//! Running the libraries' async entry points from the synchronous commands.

/// Runs `future` on a new multi-threaded runtime; `None` (logged) when the
/// runtime cannot start.
pub fn block_on<F: std::future::Future>(future: F) -> Option<F::Output> {
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => Some(runtime.block_on(future)),
        Err(e) => {
            tracing::error!("cannot start the async runtime: {e}");
            None
        }
    }
}
