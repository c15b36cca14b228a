//! The runtime every registry connection lives on.
//!
//! A [`crate::Client`] is shared by code on several runtimes: the caller's, the pull
//! pipeline's per-stage download runtime, the scheduler's puller, the push pipeline's and
//! the layer cache's. A pooled connection belongs to the runtime that opened it (its
//! socket is registered with that runtime's reactor, its driving task spawned on it), so
//! a connection handed from the pool to a request on another runtime stalls whenever the
//! opening runtime is no longer being driven — for ever, or until a timeout. Connections
//! are therefore opened and driven here, on one small multi-threaded runtime that lives
//! as long as the process; requests on any runtime talk to them through hyper's
//! runtime-independent channels.

use std::future::Future;
use std::sync::OnceLock;

use tokio::runtime::{Builder, Runtime};

/// Worker threads: connections are I/O-bound (TLS is the only CPU work on them).
const WORKERS: usize = 2;

/// The process's connection runtime, started on first use.
pub(crate) fn handle() -> &'static tokio::runtime::Handle {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            Builder::new_multi_thread()
                .worker_threads(WORKERS)
                .thread_name("kiln-registry-io")
                .enable_all()
                .build()
                .expect("starting the registry connection runtime")
        })
        .handle()
}

/// Spawns hyper's connection tasks on the connection runtime.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct IoExecutor;

impl<F> hyper::rt::Executor<F> for IoExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, future: F) {
        handle().spawn(future);
    }
}
