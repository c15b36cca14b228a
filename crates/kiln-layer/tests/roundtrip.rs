//! Property: any change set written by kiln and applied by kiln gives back
//! the same names, kinds, modes, owners, mtimes, contents and link targets,
//! and the `tar` crate (an independent parser) reads the same members.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use kiln_layer::{
    ApplyOptions, Entry, EntryKind, LayerPath, Metadata, TarOptions, Timestamp, apply_tar,
    write_tar,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<u8>),
}

fn component() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-z]{1,12}".prop_map(String::into_bytes),
        // long names around the ustar limits, and raw non-UTF-8 bytes
        (90usize..140).prop_map(|n| vec![b'n'; n]),
        prop::collection::vec(
            prop_oneof![Just(0xffu8), Just(0xe9), Just(b'x'), Just(0xc3)],
            1..20
        ),
    ]
    .prop_filter("not a marker or dot name", |c| {
        !c.starts_with(b".") && !c.contains(&b'/') && !c.contains(&0)
    })
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..3000).prop_map(Kind::File),
        Just(Kind::Dir),
        prop::collection::vec(
            prop_oneof![Just(b'/'), Just(b'a'), Just(0xfeu8), Just(b'.')],
            1..150
        )
        .prop_map(Kind::Symlink),
    ]
}

fn meta() -> impl Strategy<Value = Metadata> {
    (
        0u32..0o10000,
        0u64..3_000_000,
        0u64..3_000_000,
        prop_oneof![0i64..2_000_000_000, 8_589_934_592i64..9_000_000_000],
    )
        .prop_map(|(mode, uid, gid, sec)| Metadata {
            mode,
            uid,
            gid,
            mtime: Timestamp::from_secs(sec),
            ..Metadata::default()
        })
}

/// Entries with unique paths, each under a directory `top/` so parents exist.
fn change_set() -> impl Strategy<Value = Vec<(Vec<u8>, Kind, Metadata)>> {
    prop::collection::btree_map(component(), (kind(), meta()), 1..12).prop_map(|m| {
        m.into_iter()
            .map(|(name, (kind, meta))| (name, kind, meta))
            .collect()
    })
}

fn build(set: &[(Vec<u8>, Kind, Metadata)]) -> Vec<Entry> {
    let mut entries = vec![Entry::dir(
        LayerPath::new("top").unwrap(),
        Metadata {
            mode: 0o755,
            ..Metadata::default()
        },
    )];
    for (name, kind, meta) in set {
        let mut path = b"top/".to_vec();
        path.extend_from_slice(name);
        let path = LayerPath::new(path).unwrap();
        // directories need to stay writable/enterable for the check below
        let mut meta = meta.clone();
        let kind = match kind {
            Kind::File(bytes) => {
                EntryKind::File(kiln_layer::FileSource::Bytes(bytes.clone().into()))
            }
            Kind::Dir => {
                meta.mode |= 0o700;
                EntryKind::Dir
            }
            Kind::Symlink(target) => EntryKind::Symlink {
                target: OsString::from_vec(target.clone()),
            },
        };
        entries.push(Entry { path, kind, meta });
    }
    entries
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn written_then_applied_change_sets_come_back_unchanged(set in change_set()) {
        let mut tar = Vec::new();
        write_tar(build(&set), &TarOptions::default(), &mut tar).unwrap();

        // independent parser: same members, sizes and link targets
        let mut archive = tar::Archive::new(&tar[..]);
        let members: BTreeMap<Vec<u8>, (u64, Option<Vec<u8>>)> = archive
            .entries()
            .unwrap()
            .map(|m| {
                let m = m.unwrap();
                let path = m.path_bytes().into_owned();
                let path = path.strip_suffix(b"/").map(<[u8]>::to_vec).unwrap_or(path);
                (path, (m.size(), m.link_name_bytes().map(|l| l.into_owned())))
            })
            .collect();
        prop_assert_eq!(members.len(), set.len() + 1);

        let dir = tempfile::tempdir().unwrap();
        apply_tar(&tar[..], "roundtrip", dir.path(), &ApplyOptions::default()).unwrap();
        for (name, kind, meta) in &set {
            let mut rel = b"top/".to_vec();
            rel.extend_from_slice(name);
            let member = &members[&rel];
            let path: PathBuf = dir.path().join(std::ffi::OsStr::from_bytes(&rel));
            let md = std::fs::symlink_metadata(&path).unwrap();
            prop_assert_eq!((u64::from(md.uid()), u64::from(md.gid())), (meta.uid, meta.gid));
            prop_assert_eq!(md.mtime(), meta.mtime.sec);
            match kind {
                Kind::File(bytes) => {
                    prop_assert!(md.is_file());
                    prop_assert_eq!(md.mode() & 0o7777, meta.mode);
                    prop_assert_eq!(&std::fs::read(&path).unwrap(), bytes);
                    prop_assert_eq!(member.0, bytes.len() as u64);
                }
                Kind::Dir => {
                    prop_assert!(md.is_dir());
                    prop_assert_eq!(md.mode() & 0o7777, meta.mode | 0o700);
                }
                Kind::Symlink(target) => {
                    prop_assert!(md.file_type().is_symlink());
                    let link = std::fs::read_link(&path).unwrap();
                    prop_assert_eq!(link.as_os_str().as_bytes(), &target[..]);
                    prop_assert_eq!(member.1.as_deref(), Some(&target[..]));
                }
            }
        }
    }
}
