//! `encode_layer_applying`: one read of the sources gives the same blob as
//! `encode_layer` and the same tree as `apply_entries` of the layer's
//! members, in every compression; a source that vanished fails with its
//! name; a root the applier cannot use fails with the applier's error.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use kiln_layer::{
    ApplyOptions, Compression, DecodedLayer, EncodeOptions, Entry, Expected, LayerPath, Metadata,
    TarOptions, Timestamp, apply_tar, encode_layer, encode_layer_applying,
};

fn meta(mode: u32, mtime: i64) -> Metadata {
    Metadata {
        mode,
        uid: 0,
        gid: 0,
        mtime: Timestamp::from_secs(mtime),
        ..Metadata::default()
    }
}

fn path(p: &str) -> LayerPath {
    LayerPath::new(p).unwrap()
}

/// A change set over real files in `src`: nested dirs, files from empty to
/// several MiB, bytes, a symlink and a hard link.
fn entries(src: &Path) -> Vec<Entry> {
    let mut out = vec![
        Entry::dir(path("app"), meta(0o755, 1_700_000_000)),
        Entry::dir(path("app/sub"), meta(0o750, 1_700_000_001)),
    ];
    for (i, size) in [0usize, 1, 511, 512, 70_000, 3 << 20].iter().enumerate() {
        let file = src.join(format!("f{i}"));
        let data: Vec<u8> = (0..*size).map(|n| (n * 31 + i) as u8).collect();
        fs_err::write(&file, data).unwrap();
        let dir = if i % 2 == 0 { "app" } else { "app/sub" };
        out.push(Entry::file(
            path(&format!("{dir}/f{i}")),
            file,
            meta(0o644, 1_700_000_100 + i as i64),
        ));
    }
    out.push(Entry::bytes(
        path("app/inline"),
        b"inline\n".to_vec(),
        meta(0o600, 1_800_000_000),
    ));
    out.push(Entry::symlink(
        path("app/link"),
        "sub/f1",
        meta(0o777, 1_700_000_000),
    ));
    out.push(Entry::hardlink(
        path("app/hard"),
        path("app/f0"),
        meta(0o644, 1_700_000_100),
    ));
    out
}

/// Every path under `root` with its kind, mode, size, mtime and content.
fn tree(root: &Path) -> BTreeMap<String, (u32, u64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    for entry in walk(root) {
        let m = fs_err::symlink_metadata(&entry).unwrap();
        let content = if m.file_type().is_file() {
            fs_err::read(&entry).unwrap()
        } else if m.file_type().is_symlink() {
            fs_err::read_link(&entry)
                .unwrap()
                .into_os_string()
                .into_encoded_bytes()
        } else {
            Vec::new()
        };
        let rel = entry.strip_prefix(root).unwrap().display().to_string();
        out.insert(rel, (m.mode(), m.nlink(), m.mtime(), content));
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in fs_err::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if fs_err::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn one_read_gives_the_same_blob_and_the_same_tree() {
    let src = tempfile::tempdir().unwrap();
    let apply = ApplyOptions {
        preserve_owners: false,
        xattrs: false,
    };
    for compression in [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        let options = EncodeOptions {
            compression,
            // mtimes after the epoch are clamped, in the layer and so in the root
            tar: TarOptions {
                source_date_epoch: Some(1_750_000_000),
            },
            threads: Some(2),
        };
        let (expected, blob) = encode_layer(entries(src.path()), &options, Vec::new()).unwrap();

        let teed_root = tempfile::tempdir().unwrap();
        let (layer, teed_blob, stats) = encode_layer_applying(
            entries(src.path()),
            &options,
            Vec::new(),
            teed_root.path(),
            &apply,
        )
        .unwrap();
        assert_eq!(layer, expected, "{compression:?}");
        assert!(teed_blob == blob, "{compression:?}: the blob differs");

        // The reference tree: the layer's own tar applied by the same applier.
        let reference = tempfile::tempdir().unwrap();
        let tar = DecodedLayer::new(&blob[..], "reference", Expected::default()).unwrap();
        let reference_stats = apply_tar(tar, "reference", reference.path(), &apply).unwrap();
        assert_eq!(stats, reference_stats, "{compression:?}");
        let got = tree(teed_root.path());
        assert_eq!(got, tree(reference.path()), "{compression:?}");
        assert_eq!(got["app/inline"].2, 1_750_000_000, "clamped like the layer");
        assert_eq!(got["app/f0"].1, 2, "the hard link is a link");
    }
}

#[test]
fn a_vanished_source_is_named_and_the_applier_error_is_reported() {
    let src = tempfile::tempdir().unwrap();
    let mut set = entries(src.path());
    fs_err::remove_file(src.path().join("f5")).unwrap();
    let root = tempfile::tempdir().unwrap();
    let options = EncodeOptions::default();
    let apply = ApplyOptions::default();
    let err = encode_layer_applying(set.clone(), &options, Vec::new(), root.path(), &apply)
        .unwrap_err()
        .to_string();
    assert!(err.contains("f5"), "{err}");

    // A root that is a file: the applier fails, and its error is the one returned.
    fs_err::write(src.path().join("f5"), b"back").unwrap();
    set.truncate(3);
    let not_a_dir = src.path().join("f0");
    let err = encode_layer_applying(set, &options, Vec::new(), &not_a_dir, &apply)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&not_a_dir.display().to_string()), "{err}");
}
