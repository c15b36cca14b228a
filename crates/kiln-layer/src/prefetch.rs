//! Walking memory that is likely in no CPU cache (page-cache pages read in
//! place through a mapping) with software prefetches running ahead.
//!
//! Measured on the 2-core VMs kiln is built on: SHA-256 over a mapped
//! 543 MB blob runs at 1.0-1.1 GB/s as it is, at 1.85-1.9 GB/s (its speed on
//! cached data) when each KiB is hashed after asking for the 4 KiB beyond
//! it; the hardware prefetchers alone do not keep it fed.

/// Calls `f` on consecutive pieces of `bytes`, `step` bytes long (the last
/// may be shorter), having asked the CPU to fetch the `ahead` bytes that
/// follow each piece; stops at `f`'s first error.
pub(crate) fn walk<E>(
    bytes: &[u8],
    step: usize,
    ahead: usize,
    mut f: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    fetch(bytes, 0, ahead);
    for (i, piece) in bytes.chunks(step).enumerate() {
        fetch(bytes, i * step + ahead, step);
        f(piece)?;
    }
    Ok(())
}

/// Asks for the cache lines of `bytes[from..from + len]` (clamped).
fn fetch(bytes: &[u8], from: usize, len: usize) {
    let from = from.min(bytes.len());
    let to = from.saturating_add(len).min(bytes.len());
    #[cfg(target_arch = "x86_64")]
    for line in bytes[from..to].chunks(64) {
        // SAFETY: SSE is part of the x86_64 baseline, and a prefetch only
        // hints the cache: it never faults, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = &bytes[from..to];
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_every_byte_once_in_order_and_stops_at_an_error() {
        let bytes: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut seen = Vec::new();
        walk(&bytes, 1024, 4096, |piece| {
            assert!(piece.len() <= 1024);
            seen.extend_from_slice(piece);
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(seen, bytes);
        let mut calls = 0;
        let stopped = walk(&bytes, 1024, 4096, |_| {
            calls += 1;
            if calls == 3 { Err("full") } else { Ok(()) }
        });
        assert_eq!((stopped, calls), (Err("full"), 3));
        walk(&[], 1024, 4096, |_| -> Result<(), ()> {
            panic!("nothing to visit")
        })
        .unwrap();
    }
}
