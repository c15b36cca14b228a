//! Blob transfer progress as build events: kiln-registry's progress hook
//! feeds an unbounded channel (sending never blocks the transfer), and the
//! task awaiting the transfers turns what arrives into
//! [`BuildEvent::BlobProgress`] at a bounded rate: for each blob at most one
//! event per [`INTERVAL`], every completion, and its last count when the
//! transfers end.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kiln_oci::Digest;
use kiln_registry::{BlobProgress, Client, Direction, ProgressHook};

use crate::events::{BuildEvent, BuildObserver, Transfer};

/// The shortest time between two progress events of one blob.
pub const INTERVAL: Duration = Duration::from_millis(100);

/// Runs `work` with a client sharing `client`'s sessions whose blob transfers are
/// reported to `observer`.
pub async fn reporting<T, F, Fut>(client: &Client, observer: &dyn BuildObserver, work: F) -> T
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = T>,
{
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<BlobProgress>();
    let hooked = client.with_progress(ProgressHook::new(move |p| {
        let _ = tx.send(p.clone());
    }));
    let work = work(hooked);
    tokio::pin!(work);
    let mut throttle = Throttle::default();
    loop {
        tokio::select! {
            out = &mut work => {
                while let Ok(p) = rx.try_recv() {
                    throttle.offer(p, observer);
                }
                throttle.flush(observer);
                return out;
            }
            Some(p) = rx.recv() => throttle.offer(p, observer),
        }
    }
}

/// Per blob: when its last event went out, and a newer count not sent yet.
#[derive(Default)]
struct Throttle {
    blobs: BTreeMap<(Digest, bool), (Instant, Option<BlobProgress>)>,
}

impl Throttle {
    fn offer(&mut self, p: BlobProgress, observer: &dyn BuildObserver) {
        let key = (p.digest.clone(), p.direction == Direction::Push);
        let now = Instant::now();
        match self.blobs.get_mut(&key) {
            Some((last, pending)) if p.done < p.total && now.duration_since(*last) < INTERVAL => {
                *pending = Some(p);
            }
            _ => {
                emit(&p, observer);
                self.blobs.insert(key, (now, None));
            }
        }
    }

    fn flush(&mut self, observer: &dyn BuildObserver) {
        for (_, pending) in std::mem::take(&mut self.blobs).into_values() {
            if let Some(p) = pending {
                emit(&p, observer);
            }
        }
    }
}

fn emit(p: &BlobProgress, observer: &dyn BuildObserver) {
    observer.event(&BuildEvent::BlobProgress {
        transfer: match p.direction {
            Direction::Pull => Transfer::Pull,
            Direction::Push => Transfer::Push,
        },
        digest: p.digest.to_string(),
        done: p.done,
        total: Some(p.total),
    });
}
