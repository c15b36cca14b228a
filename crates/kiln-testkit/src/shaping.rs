//! Traffic shaping for the fault proxy, so that a registry on 127.0.0.1 looks
//! like one across a network: a bandwidth limit per connection and direction,
//! and a latency added before each request is forwarded (one round trip).
//! Also a gauge of concurrent blob downloads, for tests of a client's
//! concurrency bound.
//!
//! The limit paces body frames: a frame of `n` bytes is released no earlier
//! than `n / rate` after the previous one was due (or after now, when the
//! link was idle), so a transfer of `B` bytes on one connection takes at
//! least `B / rate`. An idle connection earns no burst credit.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame};
use tokio::time::{Instant, Sleep};

use crate::proxy::{BoxError, ProxyBody};

/// How the proxy shapes each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shaping {
    /// Bytes per second in each direction of one connection.
    pub bytes_per_sec: u64,
    /// Added before each request is forwarded.
    pub latency: Duration,
}

impl Shaping {
    /// `mb_per_sec` (10^6 bytes) per connection and direction, `latency_ms` per request.
    pub fn new(mb_per_sec: u64, latency_ms: u64) -> Shaping {
        Shaping {
            bytes_per_sec: mb_per_sec * 1_000_000,
            latency: Duration::from_millis(latency_ms),
        }
    }
}

/// The pacing of one direction of one connection.
#[derive(Debug)]
pub(crate) struct Pacer {
    bytes_per_sec: u64,
    /// When the last byte paced so far is due.
    due: Option<Instant>,
}

impl Pacer {
    pub(crate) fn shared(shaping: &Shaping) -> Arc<Mutex<Pacer>> {
        Arc::new(Mutex::new(Pacer {
            bytes_per_sec: shaping.bytes_per_sec.max(1),
            due: None,
        }))
    }

    /// When a frame of `n` bytes may go.
    fn release(&mut self, n: usize) -> Instant {
        let now = Instant::now();
        let start = self.due.map_or(now, |d| d.max(now));
        let due = start + Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        self.due = Some(due);
        due
    }
}

/// `body` with each data frame held until its pacer releases it.
pub(crate) fn paced(body: ProxyBody, pacer: Arc<Mutex<Pacer>>) -> ProxyBody {
    Paced {
        inner: body,
        pacer,
        held: None,
    }
    .boxed()
}

struct Paced {
    inner: ProxyBody,
    pacer: Arc<Mutex<Pacer>>,
    held: Option<(Frame<Bytes>, Pin<Box<Sleep>>)>,
}

impl Body for Paced {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            if let Some((_, sleep)) = &mut this.held {
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                let (frame, _) = this.held.take().expect("held");
                return Poll::Ready(Some(Ok(frame)));
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Ready(Some(Ok(frame))) => {
                    let len = frame.data_ref().map_or(0, Bytes::len);
                    if len == 0 {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    let due = this.pacer.lock().expect("pacer").release(len);
                    this.held = Some((frame, Box::pin(tokio::time::sleep_until(due))));
                }
                other => return other,
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.held.is_none() && self.inner.is_end_stream()
    }
}

/// How many tracked bodies are open now, and the most at once.
#[derive(Debug, Default)]
pub(crate) struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    pub(crate) fn max(&self) -> usize {
        self.max.load(Ordering::SeqCst)
    }

    /// `body`, counted as open from now until it is dropped.
    pub(crate) fn track(self: &Arc<Gauge>, body: ProxyBody) -> ProxyBody {
        let open = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.max.fetch_max(open, Ordering::SeqCst);
        Tracked {
            inner: body,
            gauge: self.clone(),
        }
        .boxed()
    }
}

struct Tracked {
    inner: ProxyBody,
    gauge: Arc<Gauge>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.gauge.now.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Paced frames of 1 MB at 10 MB/s: five take at least 0.5 s in all.
    #[test]
    fn pacing_holds_frames_to_the_rate() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let body = Chunks(vec![Bytes::from(vec![0u8; 1_000_000]); 5]).boxed();
            let pacer = Pacer::shared(&Shaping::new(10, 0));
            let started = std::time::Instant::now();
            let got = paced(body, pacer).collect().await.unwrap().to_bytes();
            assert_eq!(got.len(), 5_000_000);
            // a lower bound only: pacing cannot make it faster
            assert!(
                started.elapsed() >= Duration::from_millis(490),
                "{:?}",
                started.elapsed()
            );
        });
    }

    /// A body of these frames, then its end.
    struct Chunks(Vec<Bytes>);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            if self.0.is_empty() {
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Ok(Frame::data(self.0.remove(0)))))
        }
    }
}
