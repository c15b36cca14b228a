//! Applying layers: same tree as GNU tar, OCI whiteout semantics, digest checks.

mod common;

use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;

use common::rawtar::RawTar;
use common::{Via, describe_tree, meta, p, run_ok};
use kiln_layer::{
    ApplyOptions, Compression, EncodeOptions, Entry, EntryKind, Error, Expected, encode_layer,
};
use kiln_oci::Digest;

fn rich_entries(dir: &std::path::Path) -> Vec<Entry> {
    let src = dir.join("src.bin");
    std::fs::write(&src, vec![7u8; 200_000]).unwrap();
    let mut caps = meta(0o755, 0, 0);
    caps.xattrs
        .insert(OsString::from("user.kiln"), b"yes".to_vec());
    let mut d = meta(0o2775, 10, 20);
    d.mtime.sec = 1_234_567_890;
    vec![
        Entry::dir(p("usr"), meta(0o755, 0, 0)),
        Entry::dir(p("usr/bin"), d),
        Entry::file(p("usr/bin/tool"), &src, caps),
        Entry::bytes(p("usr/bin/suid"), &b"s"[..], meta(0o4755, 0, 0)),
        Entry::hardlink(p("usr/bin/tool2"), p("usr/bin/tool"), meta(0o755, 0, 0)),
        Entry::symlink(p("bin"), "usr/bin", meta(0o777, 0, 0)),
        Entry::dir(p("tmp"), meta(0o1777, 0, 0)),
        Entry::bytes(p("home/u/f"), &b"owned"[..], meta(0o600, 1000, 1000)),
        Entry {
            path: p("dev/null"),
            kind: EntryKind::CharDevice { major: 1, minor: 3 },
            meta: meta(0o666, 0, 0),
        },
        Entry {
            path: p("dev/loop0"),
            kind: EntryKind::BlockDevice { major: 7, minor: 0 },
            meta: meta(0o660, 0, 6),
        },
        Entry {
            path: p("run/fifo"),
            kind: EntryKind::Fifo,
            meta: meta(0o644, 0, 0),
        },
        Entry::bytes(
            p(format!("long/{}", "n".repeat(180))),
            &b"l"[..],
            meta(0o644, 0, 0),
        ),
        Entry::bytes(p("caf\u{e9}"), &b"u"[..], meta(0o644, 0, 0)),
    ]
}

#[test]
fn applied_tree_matches_gnu_tar_extraction() {
    // gzip as a stream; plain from a file, its contents written in place
    for (compression, via) in [
        (Compression::Gzip { level: 6 }, Via::Stream),
        (Compression::None, Via::File),
    ] {
        applied_tree_matches_gnu_tar(compression, via);
    }
}

fn applied_tree_matches_gnu_tar(compression: Compression, via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let (encoded, blob) = encode_layer(
        rich_entries(dir.path()),
        &EncodeOptions {
            compression,
            ..Default::default()
        },
        Vec::new(),
    )
    .unwrap();
    let blob_path = dir.path().join("layer.tar.gz");
    std::fs::write(&blob_path, &blob).unwrap();

    let ours = dir.path().join("ours");
    std::fs::create_dir(&ours).unwrap();
    let expected = Expected {
        digest: Some(encoded.digest.clone()),
        size: Some(encoded.size),
        diff_id: Some(encoded.diff_id.clone()),
    };
    let applied = via.apply(&blob, "test-layer", expected, &ours).unwrap();
    assert_eq!(applied.measured.compression, compression.kind());
    assert_eq!(applied.measured.diff_id, encoded.diff_id);
    assert_eq!(applied.stats.bytes, 200_000 + 1 + 5 + 1 + 1);

    let theirs = dir.path().join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    run_ok(
        "tar",
        &[
            "-xaf",
            blob_path.to_str().unwrap(),
            "-C",
            theirs.to_str().unwrap(),
            "--same-owner",
            "--same-permissions",
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=*",
        ],
        None,
    );
    let (a, b) = (describe_tree(&ours), describe_tree(&theirs));
    assert_eq!(a, b);
    assert_eq!(a.len(), 18, "{a:#?}");
    // spot checks that do not rely on GNU tar
    let tool = std::fs::metadata(ours.join("usr/bin/tool")).unwrap();
    assert_eq!(
        tool.ino(),
        std::fs::metadata(ours.join("usr/bin/tool2")).unwrap().ino()
    );
    assert_eq!(
        xattr::get(ours.join("usr/bin/tool"), "user.kiln")
            .unwrap()
            .as_deref(),
        Some(&b"yes"[..])
    );
    let bin = std::fs::metadata(ours.join("usr/bin")).unwrap();
    assert_eq!(
        (bin.mode() & 0o7777, bin.uid(), bin.gid(), bin.mtime()),
        (0o2775, 10, 20, 1_234_567_890)
    );
    assert_eq!(
        std::fs::metadata(ours.join("usr/bin/suid")).unwrap().mode() & 0o7777,
        0o4755
    );
}

fn apply_raw(via: Via, tar: &[u8], root: &std::path::Path) -> Result<kiln_layer::Applied, Error> {
    via.apply(tar, "raw-layer", Expected::default(), root)
}

fn names(root: &std::path::Path) -> Vec<String> {
    describe_tree(root).into_keys().collect()
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_layers_only() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let lower = RawTar::default()
            .dir(b"a/")
            .file(b"a/keep", b"1")
            .file(b"a/gone", b"2")
            .dir(b"a/sub/")
            .file(b"a/sub/deep", b"3")
            .dir(b"o/")
            .file(b"o/old", b"4")
            .dir(b"o/d/")
            .file(b"o/d/old2", b"5")
            .file(b"top", b"6")
            .finish();
        apply_raw(via, &lower, root).unwrap();
        let upper = RawTar::default()
            .dir(b"a/")
            .file(b"a/.wh.gone", b"")
            .file(b"a/.wh.sub", b"")
            .file(b"a/new", b"7")
            .file(b"a/.wh.new", b"") // same layer: must not remove a/new
            .dir(b"o/")
            .file(b"o/.wh..wh..opq", b"")
            .dir(b"o/d/")
            .file(b"o/d/fresh", b"8")
            .file(b".wh.top", b"")
            .file(b".wh.never-existed", b"")
            .finish();
        let applied = apply_raw(via, &upper, root).unwrap();
        assert_eq!(applied.stats.whiteouts, 6);
        assert_eq!(
            names(root),
            ["a", "a/keep", "a/new", "o", "o/d", "o/d/fresh"]
        );
    }
}

#[test]
fn opaque_marker_after_the_new_content_still_keeps_the_new_content() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply_raw(
            via,
            &RawTar::default()
                .dir(b"o/")
                .file(b"o/old", b"x")
                .dir(b"o/s/")
                .file(b"o/s/old", b"y")
                .finish(),
            root,
        )
        .unwrap();
        apply_raw(
            via,
            &RawTar::default()
                .dir(b"o/s/")
                .file(b"o/s/new", b"z")
                .file(b"o/.wh..wh..opq", b"")
                .finish(),
            root,
        )
        .unwrap();
        assert_eq!(names(root), ["o", "o/s", "o/s/new"]);
    }
}

#[test]
fn replacing_kinds_removes_what_was_there() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        apply_raw(
            via,
            &RawTar::default()
                .dir(b"d/")
                .file(b"d/x", b"1")
                .file(b"f", b"2")
                .symlink(b"s", b"f")
                .finish(),
            root,
        )
        .unwrap();
        apply_raw(
            via,
            &RawTar::default()
                .file(b"d", b"now a file")
                .dir(b"f/")
                .file(b"s", b"now a file too")
                .finish(),
            root,
        )
        .unwrap();
        assert_eq!(std::fs::read(root.join("d")).unwrap(), b"now a file");
        assert!(std::fs::symlink_metadata(root.join("f")).unwrap().is_dir());
        assert!(std::fs::symlink_metadata(root.join("s")).unwrap().is_file());
    }
}

#[test]
fn symlinked_parents_resolve_inside_the_root() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // merged-/usr style base, then a layer that writes through `bin/`
        apply_raw(
            via,
            &RawTar::default()
                .dir(b"usr/bin/")
                .symlink(b"bin", b"/usr/bin")
                .finish(),
            root,
        )
        .unwrap();
        apply_raw(
            via,
            &RawTar::default().file(b"bin/tool", b"t").finish(),
            root,
        )
        .unwrap();
        assert_eq!(std::fs::read(root.join("usr/bin/tool")).unwrap(), b"t");
        assert!(
            std::fs::symlink_metadata(root.join("bin"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
    }
}

#[test]
fn compression_is_detected_from_magic_bytes_not_names() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [
        Compression::None,
        Compression::Gzip { level: 1 },
        Compression::Zstd { level: 1 },
    ] {
        let (encoded, blob) = encode_layer(
            rich_entries(dir.path()),
            &EncodeOptions {
                compression,
                ..Default::default()
            },
            Vec::new(),
        )
        .unwrap();
        for via in Via::BOTH {
            let root = tempfile::tempdir().unwrap();
            let applied = via
                .apply(&blob, "blob", Expected::default(), root.path())
                .unwrap();
            assert_eq!(applied.measured.compression, compression.kind());
            assert_eq!(applied.measured.digest, encoded.digest);
            assert_eq!(applied.measured.size, encoded.size);
            assert_eq!(applied.measured.diff_id, encoded.diff_id);
        }
    }
}

#[test]
fn digest_mismatches_and_corruption_are_errors_naming_the_blob() {
    // zstd goes through the decoder thread, a plain stream through the read
    // and hash threads, a plain file through the mapped hasher: all verify
    for compression in [Compression::Zstd { level: 3 }, Compression::None] {
        for via in Via::BOTH {
            mismatches_are_errors_naming_the_blob(compression, via);
        }
    }
}

fn mismatches_are_errors_naming_the_blob(compression: Compression, via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let (encoded, blob) = encode_layer(
        rich_entries(dir.path()),
        &EncodeOptions {
            compression,
            ..Default::default()
        },
        Vec::new(),
    )
    .unwrap();
    let wrong = Digest::sha256_of(b"something else");
    let cases = [
        (
            Expected {
                digest: Some(wrong.clone()),
                ..Default::default()
            },
            "compressed digest mismatch",
        ),
        (
            Expected {
                diff_id: Some(wrong.clone()),
                ..Default::default()
            },
            "diff_id mismatch",
        ),
        (
            Expected {
                size: Some(encoded.size + 1),
                ..Default::default()
            },
            "size mismatch",
        ),
    ];
    for (expected, needle) in cases {
        let root = tempfile::tempdir().unwrap();
        let err = via
            .apply(&blob, "sha256:feedface", expected, root.path())
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("sha256:feedface") && text.contains(needle),
            "{compression:?} {via:?}: {text}"
        );
    }
    // truncated inside the first header, and halfway (in the big file)
    for cut in [100, blob.len() / 2] {
        let root = tempfile::tempdir().unwrap();
        let err = via
            .apply(
                &blob[..cut],
                "truncated-layer",
                Expected::default(),
                root.path(),
            )
            .unwrap_err();
        assert!(
            err.to_string().contains("truncated-layer"),
            "{compression:?} {via:?}: {err}"
        );
    }
}

#[test]
fn change_sets_apply_directly_with_the_same_safety() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("canary"), b"canary").unwrap();
        apply_raw(
            via,
            &RawTar::default()
                .dir(b"old/")
                .file(b"old/x", b"1")
                .file(b"gone", b"2")
                .symlink(b"evil", b"../..")
                .finish(),
            &root,
        )
        .unwrap();
        let entries = rich_entries(dir.path())
            .into_iter()
            .chain([
                Entry::whiteout(p("gone")),
                Entry::dir(p("old"), meta(0o700, 0, 0)),
                Entry::opaque_dir(p("old")),
                Entry::bytes(p("old/new"), &b"3"[..], meta(0o644, 0, 0)),
                Entry::bytes(p("evil/canary"), &b"pwned"[..], meta(0o644, 0, 0)),
            ])
            .collect();
        let stats = kiln_layer::apply_entries(entries, &root, &ApplyOptions::default()).unwrap();
        assert_eq!(stats.whiteouts, 2);
        assert_eq!(std::fs::read(dir.path().join("canary")).unwrap(), b"canary");
        assert!(!root.join("gone").exists());
        assert_eq!(names(&root.join("old")), ["new"]);
        // `evil -> ../..` is followed as if the root were `/`: the file lands in the root
        assert_eq!(std::fs::read(root.join("canary")).unwrap(), b"pwned");
        let tool = std::fs::metadata(root.join("usr/bin/tool")).unwrap();
        assert_eq!(
            tool.ino(),
            std::fs::metadata(root.join("usr/bin/tool2")).unwrap().ino()
        );

        // an unreadable source is reported as such, not as a truncated stream
        let missing = vec![Entry::file(
            p("f"),
            dir.path().join("no-such-file"),
            meta(0o644, 0, 0),
        )];
        let err = kiln_layer::apply_entries(missing, &root, &ApplyOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no-such-file"), "{err}");
    }
}

#[test]
fn very_deep_paths_apply_without_holding_a_descriptor_per_level() {
    for via in Via::BOTH {
        let dir = tempfile::tempdir().unwrap();
        let deep: Vec<u8> = b"d/".repeat(1500).into_iter().chain(*b"leaf").collect();
        let tar = RawTar::default()
            .pax(&[("path", &deep)])
            .file(b"x", b"deep")
            .finish();
        apply_raw(via, &tar, dir.path()).unwrap();
        // too long a path for one open(): walk it through /proc/self/fd
        let mut current = std::fs::File::open(dir.path()).unwrap();
        let mut depth = 0;
        loop {
            use std::os::fd::AsRawFd;
            let next = format!("/proc/self/fd/{}/d", current.as_raw_fd());
            match std::fs::File::open(&next) {
                Ok(f) => {
                    current = f;
                    depth += 1;
                }
                Err(_) => break,
            }
        }
        assert_eq!(depth, 1500);
        use std::os::fd::AsRawFd;
        assert_eq!(
            std::fs::read(format!("/proc/self/fd/{}/leaf", current.as_raw_fd())).unwrap(),
            b"deep"
        );
    }
}

#[test]
fn stored_blobs_of_the_wrong_size_are_refused_and_pipes_read_as_streams() {
    let dir = tempfile::tempdir().unwrap();
    let (encoded, blob) = encode_layer(
        rich_entries(dir.path()),
        &EncodeOptions {
            compression: Compression::None,
            ..Default::default()
        },
        Vec::new(),
    )
    .unwrap();
    let path = dir.path().join("layer.tar");
    std::fs::write(&path, &blob).unwrap();
    let file = std::fs::File::open(&path).unwrap();

    // a size that is not the file's: refused before anything is written
    let root = tempfile::tempdir().unwrap();
    let wrong = Expected {
        size: Some(encoded.size - 1),
        ..Default::default()
    };
    let err = kiln_layer::apply_layer_file(
        &file,
        "sha256:cut",
        wrong,
        root.path(),
        &ApplyOptions::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::DigestMismatch { blob, what: "size", .. } if blob == "sha256:cut"),
        "{err}"
    );
    assert!(names(root.path()).is_empty(), "nothing may be written");

    // a pipe cannot be mapped: it is read as a stream, and verified
    let (reader, mut writer) = std::io::pipe().unwrap();
    let feeder = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &blob));
    let pipe = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
    let root = tempfile::tempdir().unwrap();
    let expected = Expected {
        digest: Some(encoded.digest.clone()),
        size: Some(encoded.size),
        diff_id: Some(encoded.diff_id.clone()),
    };
    let applied = kiln_layer::apply_layer_file(
        &pipe,
        "piped",
        expected,
        root.path(),
        &ApplyOptions::default(),
    )
    .unwrap();
    feeder.join().unwrap().unwrap();
    assert_eq!(applied.measured.digest, encoded.digest);
    assert_eq!(describe_tree(root.path()).len(), 18);
}
