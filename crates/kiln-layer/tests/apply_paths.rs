//! The two ways of applying a plain blob agree: as a stream (`apply_layer`:
//! the tar parser copies contents out) and from its file
//! (`apply_layer_file`: contents written in place from 4 MiB mappings while
//! the parser seeks past them). Random layers with long and non-UTF-8 names
//! (PAX headers), hardlinks, symlinks, xattrs and files of every size,
//! including ones that straddle a mapping window, give the same tree either
//! way, with every file holding exactly the bytes it was given.

mod common;

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::sync::Arc;

use common::{Via, describe_tree, meta};
use kiln_layer::{Compression, EncodeOptions, Entry, Expected, LayerPath, encode_layer};
use proptest::prelude::*;

/// One generated member below one of three directories.
#[derive(Debug, Clone)]
enum Member {
    File {
        size: usize,
        xattr: bool,
    },
    Symlink(String),
    /// A hardlink to the n-th file generated so far (modulo their count).
    Hardlink(usize),
}

fn member() -> impl Strategy<Value = Member> {
    prop_oneof![
        6 => (
            prop_oneof![8 => 0usize..70_000, 1 => (4usize << 20) - 3000..(4 << 20) + 3000],
            any::<bool>(),
        )
            .prop_map(|(size, xattr)| Member::File { size, xattr }),
        1 => "[a-z/.]{1,40}".prop_map(Member::Symlink),
        1 => any::<usize>().prop_map(Member::Hardlink),
    ]
}

/// A name for the `i`-th member: short, long (over 100 bytes) or not UTF-8.
fn name(i: usize, style: u8) -> Vec<u8> {
    let mut name = format!("m{i}").into_bytes();
    match style {
        1 => name.extend(std::iter::repeat_n(b'n', 150)),
        2 => name.extend_from_slice(b"-\xff\xfe"),
        _ => {}
    }
    name
}

fn content(i: usize, size: usize) -> Arc<[u8]> {
    (0..size)
        .map(|j| (j.wrapping_mul(31) ^ i) as u8)
        .collect::<Vec<u8>>()
        .into()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn stream_and_file_applications_give_the_same_tree(
        members in proptest::collection::vec((member(), 0u8..3, 0usize..3), 1..30)
    ) {
        let dirs = ["a", "a/b", "c"];
        let mut entries: Vec<Entry> = dirs
            .iter()
            .map(|d| Entry::dir(LayerPath::new(d).unwrap(), meta(0o755, 0, 0)))
            .collect();
        let mut files: Vec<(LayerPath, Arc<[u8]>)> = Vec::new();
        for (i, (member, style, dir)) in members.iter().enumerate() {
            let mut path = format!("{}/", dirs[*dir]).into_bytes();
            path.extend(name(i, *style));
            let path = LayerPath::from_os(OsString::from_vec(path)).unwrap();
            match member {
                Member::File { size, xattr } => {
                    let bytes = content(i, *size);
                    let mut m = meta(0o640, 0, 0);
                    if *xattr {
                        m.xattrs.insert(OsString::from("user.n"), format!("{i}").into_bytes());
                    }
                    entries.push(Entry::bytes(path.clone(), bytes.clone(), m));
                    files.push((path, bytes));
                }
                Member::Symlink(target) => {
                    entries.push(Entry::symlink(path, target.as_str(), meta(0o777, 0, 0)));
                }
                Member::Hardlink(n) if !files.is_empty() => {
                    let target = files[n % files.len()].0.clone();
                    entries.push(Entry::hardlink(path, target, meta(0o640, 0, 0)));
                }
                Member::Hardlink(_) => {}
            }
        }
        let options = EncodeOptions { compression: Compression::None, ..Default::default() };
        let (encoded, blob) = encode_layer(entries, &options, Vec::new()).unwrap();
        let expected = Expected {
            digest: Some(encoded.digest.clone()),
            size: Some(encoded.size),
            diff_id: Some(encoded.diff_id.clone()),
        };

        let stream = tempfile::tempdir().unwrap();
        let file = tempfile::tempdir().unwrap();
        let by_stream = Via::Stream.apply(&blob, "random", expected.clone(), stream.path()).unwrap();
        let by_file = Via::File.apply(&blob, "random", expected, file.path()).unwrap();
        prop_assert_eq!(by_stream, by_file);
        prop_assert_eq!(describe_tree(stream.path()), describe_tree(file.path()));
        for (path, bytes) in &files {
            let on_disk = std::fs::read(file.path().join(path.as_os_str())).unwrap();
            prop_assert!(on_disk[..] == bytes[..], "{:?} differs", path);
        }
    }
}
