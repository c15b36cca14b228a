//! The registry I/O timeout: a connection on which no byte moves, in either direction,
//! for [`crate::RegistryOptions::io_timeout`] while kiln waits on it fails with
//! `TimedOut`.
//!
//! It sits under TLS, around every TCP connection the clients open (the registry's, a
//! token realm's, a redirect target's), so one setting bounds every wait: the TLS
//! handshake, a response head that never comes, a body that stalls halfway, and an
//! upload the server stops reading. Any progress (a read or a write that moved bytes)
//! starts the silence over, so a slow but moving transfer of any size never trips it.
//! The failure is an I/O error, which the request's error classifies as a transfer
//! failure: retried when retries are allowed.
//!
//! A connection idle in the pool is also read (hyper watches it for a close), so it is
//! closed after the same silence; the pool then opens a fresh one.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection};
use tokio::time::{Instant, Sleep};

/// A connector whose connections fail after `idle` without progress.
#[derive(Clone)]
pub(crate) struct IdleConnector<C> {
    inner: C,
    idle: Duration,
}

impl<C> IdleConnector<C> {
    pub(crate) fn new(inner: C, idle: Duration) -> IdleConnector<C> {
        IdleConnector { inner, idle }
    }
}

/// The error of a connection attempt.
pub(crate) type ConnectError = Box<dyn std::error::Error + Send + Sync>;

impl<C> tower_service::Service<Uri> for IdleConnector<C>
where
    C: tower_service::Service<Uri>,
    C::Future: Send + 'static,
    C::Response: Read + Write + Connection + Unpin + Send + 'static,
    C::Error: Into<ConnectError>,
{
    type Response = IdleTimeout<C::Response>;
    type Error = ConnectError;
    type Future =
        Pin<Box<dyn Future<Output = Result<IdleTimeout<C::Response>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    /// Connects on the connection runtime ([`crate::io_runtime`]), so the socket and its
    /// timer belong to the runtime that drives the connection, whichever runtime asked.
    fn call(&mut self, uri: Uri) -> Self::Future {
        let idle = self.idle;
        let connecting = self.inner.call(uri);
        let connected = crate::io_runtime::handle().spawn(async move {
            connecting
                .await
                .map(|stream| IdleTimeout::new(stream, idle))
                .map_err(Into::into)
        });
        Box::pin(async move {
            match connected.await {
                Ok(result) => result,
                Err(join) => Err(format!("connecting: {join}").into()),
            }
        })
    }
}

/// A connection that fails when it has been silent for `idle` while polled.
pub(crate) struct IdleTimeout<T> {
    inner: T,
    idle: Duration,
    deadline: Pin<Box<Sleep>>,
}

impl<T> IdleTimeout<T> {
    fn new(inner: T, idle: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
        }
    }

    /// After a poll of the connection: progress starts the silence over; a wait past
    /// the deadline is the timeout.
    fn watch<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.deadline.as_mut().reset(Instant::now() + self.idle);
                Poll::Ready(result)
            }
            Poll::Pending => {
                ready!(self.deadline.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "timed out: no byte received or sent for {} s (the registry I/O timeout)",
                        self.idle.as_secs_f64()
                    ),
                )))
            }
        }
    }
}

impl<T: Read + Unpin> Read for IdleTimeout<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, polled)
    }
}

impl<T: Write + Unpin> Write for IdleTimeout<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, polled)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, polled)
    }
}

impl<T: Connection> Connection for IdleTimeout<T> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}
