//! The deterministic order in which entries are written to a layer.
//!
//! Paths are compared component by component, so a directory comes right
//! before its own subtree (`a`, `a/b`, `a/b/c`, `a-z`), never interleaved with
//! siblings whose names share a prefix. Inside one directory the members come
//! in three groups, each sorted by name bytes:
//!
//! 1. the opaque marker `.wh..wh..opq` (the OCI spec wants it first so that
//!    an extractor clears the directory before filling it),
//! 2. whiteouts `.wh.NAME` (the spec: whiteouts before sibling entries),
//! 3. everything else.

use std::cmp::Ordering;

use crate::entry::{Entry, EntryKind};

/// Rank of the last component of an entry inside its directory.
fn rank(kind: &EntryKind) -> u8 {
    match kind {
        EntryKind::OpaqueDir => 0,
        EntryKind::Whiteout => 1,
        _ => 2,
    }
}

/// The sort key of an entry: one `(rank, name)` pair per level.
/// Intermediate components are plain directories (rank 2); an opaque
/// marker lives *inside* its directory, so it adds a level `(0, "")`.
fn key(entry: &Entry) -> impl Iterator<Item = (u8, &[u8])> {
    let depth = entry.path.depth();
    let last_rank = rank(&entry.kind);
    let opaque = matches!(entry.kind, EntryKind::OpaqueDir);
    entry
        .path
        .components()
        .enumerate()
        .map(move |(i, name)| {
            let r = if i + 1 == depth && !opaque {
                last_rank
            } else {
                2
            };
            (r, name)
        })
        .chain(opaque.then_some((0u8, &[][..])))
}

/// Compares two entries in layer order (see the module docs).
pub fn compare_entries(a: &Entry, b: &Entry) -> Ordering {
    key(a).cmp(key(b))
}

/// [`key`] as one byte string that compares the same way: per level the
/// rank, the name, then a NUL (names hold no NUL, so a name sorts before
/// every longer name it is a prefix of, as slices do).
fn flat_key(entry: &Entry) -> Vec<u8> {
    let mut flat = Vec::with_capacity(entry.path.as_bytes().len() + 2 * entry.path.depth() + 2);
    for (rank, name) in key(entry) {
        flat.push(rank);
        flat.extend_from_slice(name);
        flat.push(0);
    }
    flat
}

/// Sorts entries into layer order. Stable, so exact duplicates keep their
/// relative order (the writer rejects duplicates anyway). Each key is
/// built once (`flat_key`), which is several times faster on large change
/// sets than comparing component iterators.
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by_cached_key(flat_key);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::{LayerPath, Metadata};

    fn p(s: &str) -> LayerPath {
        LayerPath::new(s).unwrap()
    }

    #[test]
    fn parents_first_opaque_then_whiteouts_then_siblings() {
        let m = Metadata::default;
        let mut entries = vec![
            Entry::dir(p("a-z"), m()),
            Entry::bytes(p("a/z"), &b"x"[..], m()),
            Entry::whiteout(p("a/y")),
            Entry::opaque_dir(p("a")),
            Entry::dir(p("a/b"), m()),
            Entry::bytes(p("a/b/c"), &b"x"[..], m()),
            Entry::dir(p("a"), m()),
            Entry::whiteout(p("0")),
        ];
        sort_entries(&mut entries);
        let names: Vec<String> = entries
            .iter()
            .map(|e| String::from_utf8(e.tar_path()).unwrap())
            .collect();
        for pair in entries.windows(2) {
            assert_eq!(compare_entries(&pair[0], &pair[1]), Ordering::Less);
        }
        assert_eq!(
            names,
            [
                ".wh.0",
                "a",
                "a/.wh..wh..opq",
                "a/.wh.y",
                "a/b",
                "a/b/c",
                "a/z",
                "a-z"
            ]
        );
    }

    proptest::proptest! {
        /// The flat keys sort exactly as [`compare_entries`] orders.
        #[test]
        fn flat_keys_sort_as_compare_entries(
            specs in proptest::collection::vec(
                (proptest::collection::vec(r"a|a-z|ab|b|0|a\.b|a\x01", 1..4), 0u8..3),
                1..40,
            )
        ) {
            let mut entries: Vec<Entry> = specs
                .iter()
                .map(|(parts, kind)| {
                    let path = p(&parts.join("/"));
                    match kind {
                        0 => Entry::opaque_dir(path),
                        1 => Entry::whiteout(path),
                        _ => Entry::dir(path, Metadata::default()),
                    }
                })
                .collect();
            sort_entries(&mut entries);
            for pair in entries.windows(2) {
                proptest::prop_assert_ne!(compare_entries(&pair[0], &pair[1]), Ordering::Greater);
            }
        }
    }
}
