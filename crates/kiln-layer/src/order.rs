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

/// Sorts entries into layer order. Stable, so exact duplicates keep their
/// relative order (the writer rejects duplicates anyway).
pub fn sort_entries(entries: &mut [Entry]) {
    entries.sort_by(compare_entries);
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
}
