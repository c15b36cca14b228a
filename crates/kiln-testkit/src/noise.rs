//! Deterministic content that does not compress, for fixtures and benches
//! (xorshift64*, so they need no RNG crate): the same seed gives the same
//! content, different seeds different content.

/// `len` bytes that do not compress.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut next = generator(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&next().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// `len` printable ASCII characters (`!` to `z`), for fixtures written as
/// text; they compress only to about 80%.
pub fn text(len: usize, seed: u64) -> String {
    let mut next = generator(seed);
    (0..len)
        .map(|_| char::from(b'!' + (next() % 90) as u8))
        .collect()
}

fn generator(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    move || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}
