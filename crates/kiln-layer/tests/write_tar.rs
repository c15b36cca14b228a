//! The tar writer against GNU tar, gzip, zstd and the `tar` crate's reader.

mod common;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::Read;
use std::os::unix::ffi::OsStringExt;

use common::{meta, p, run_ok};
use kiln_layer::{
    Compression, EncodeOptions, Entry, EntryKind, TarOptions, encode_layer, encode_layer_to_path,
    write_tar,
};
use kiln_oci::Digest;

fn sample_entries(dir: &std::path::Path) -> Vec<Entry> {
    let big = dir.join("big.bin");
    let content: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&big, &content).unwrap();
    let long_name = format!("deep/{}/file.txt", "x".repeat(150));
    let mut caps = meta(0o755, 0, 0);
    caps.xattrs.insert(
        OsString::from("security.capability"),
        vec![
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    caps.xattrs
        .insert(OsString::from("user.note"), b"hello".to_vec());
    let mut named = meta(0o4755, 1000, 2000);
    named.user_name = Some("alice".into());
    named.group_name = Some("staff".into());
    vec![
        Entry::dir(p("deep"), meta(0o755, 0, 0)),
        Entry::bytes(p(&long_name), &b"long"[..], meta(0o644, 0, 0)),
        Entry::file(p("bin/big"), &big, caps),
        Entry::dir(p("bin"), meta(0o755, 0, 0)),
        Entry::bytes(p("bin/suid"), &b"#!/bin/sh\n"[..], named),
        Entry::hardlink(p("bin/alias"), p("bin/suid"), meta(0o4755, 1000, 2000)),
        Entry::symlink(p("bin/sh"), "busybox", meta(0o777, 0, 0)),
        Entry::symlink(
            p("bin/longlink"),
            format!("/{}", "t".repeat(120)),
            meta(0o777, 0, 0),
        ),
        Entry::bytes(
            p("caf\u{e9}/\u{65e5}\u{672c}"),
            &b"utf8"[..],
            meta(0o644, 0, 0),
        ),
        Entry::bytes(
            p(b"raw/\xff\xfename".as_slice()),
            &b"latin"[..],
            meta(0o644, 0, 0),
        ),
        Entry::dir(p("tmp"), meta(0o1777, 0, 0)),
        Entry {
            path: p("dev/null"),
            kind: EntryKind::CharDevice { major: 1, minor: 3 },
            meta: meta(0o666, 0, 0),
        },
        Entry {
            path: p("dev/sda"),
            kind: EntryKind::BlockDevice { major: 8, minor: 0 },
            meta: meta(0o660, 0, 6),
        },
        Entry {
            path: p("run/pipe"),
            kind: EntryKind::Fifo,
            meta: meta(0o600, 0, 0),
        },
        Entry::whiteout(p("etc/removed")),
        Entry::dir(p("etc"), meta(0o755, 0, 0)),
        Entry::opaque_dir(p("etc")),
        Entry::bytes(p("etc/new"), &b"n"[..], meta(0o644, 0, 0)),
        Entry::bytes(p("bigid"), &b""[..], meta(0o644, 3_000_000, 4_000_000)),
    ]
}

#[test]
fn gnu_tar_lists_every_entry_with_its_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let entries = sample_entries(dir.path());
    let tar_path = dir.path().join("layer.tar");
    let encoded = encode_layer_to_path(
        entries,
        &EncodeOptions {
            compression: Compression::None,
            ..Default::default()
        },
        &tar_path,
    )
    .unwrap();
    assert_eq!(encoded.digest, encoded.diff_id);
    let bytes = std::fs::read(&tar_path).unwrap();
    assert_eq!(encoded.size, bytes.len() as u64);
    assert_eq!(encoded.digest, Digest::sha256_of(&bytes));

    let listing = run_ok(
        "tar",
        &["--numeric-owner", "-tvf", tar_path.to_str().unwrap()],
        None,
    );
    let lines: Vec<&str> = listing.lines().collect();
    let names: Vec<&str> = lines
        .iter()
        .map(|l| l.split_whitespace().nth(5).unwrap())
        .collect();
    // deterministic order: parents first; opaque, then whiteouts first in a dir
    assert_eq!(names[0], "bigid");
    assert_eq!(names[1], "bin/");
    let etc = names.iter().position(|n| *n == "etc/").unwrap();
    assert_eq!(
        &names[etc..etc + 4],
        ["etc/", "etc/.wh..wh..opq", "etc/.wh.removed", "etc/new"]
    );
    let find = |needle: &str| {
        lines
            .iter()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle} missing in\n{listing}"))
    };
    // bin/alias sorts first, so it carries the content and bin/suid links to it
    assert!(
        find("bin/alias").starts_with("-rwsr-xr-x 1000/2000"),
        "{listing}"
    );
    assert!(find("bin/suid").starts_with("hrwsr-xr-x"), "{listing}");
    assert!(find("bin/suid").contains("link to bin/alias"), "{listing}");
    assert!(find("tmp/").starts_with("drwxrwxrwt"), "{listing}");
    assert!(
        find("dev/null").starts_with("crw-rw-rw- 0/0") && find("dev/null").contains("1,3"),
        "{listing}"
    );
    assert!(
        find("dev/sda").starts_with("brw-rw----") && find("dev/sda").contains("8,0"),
        "{listing}"
    );
    assert!(find("run/pipe").starts_with("prw-------"), "{listing}");
    assert!(find("bigid").contains("3000000/4000000"), "{listing}");
    assert!(find(&"x".repeat(150)).contains("file.txt"), "{listing}");
    assert!(find("bin/longlink").contains(&"t".repeat(120)), "{listing}");
    assert!(find("bin/big").contains("3000000 "), "{listing}");
    assert!(listing.contains("caf\u{e9}/\u{65e5}\u{672c}"), "{listing}");

    // the tar crate agrees on raw names, xattrs and owner names
    let mut archive = tar::Archive::new(std::fs::File::open(&tar_path).unwrap());
    let mut saw_raw = false;
    let mut saw_caps = false;
    for member in archive.entries().unwrap() {
        let mut member = member.unwrap();
        let path = member.path_bytes().into_owned();
        if path == b"raw/\xff\xfename" {
            saw_raw = true;
        }
        if path == b"bin/big" {
            let mut xattrs = BTreeMap::new();
            for ext in member.pax_extensions().unwrap().unwrap() {
                let ext = ext.unwrap();
                xattrs.insert(ext.key().unwrap().to_owned(), ext.value_bytes().to_vec());
            }
            assert_eq!(xattrs["SCHILY.xattr.user.note"], b"hello");
            assert_eq!(xattrs["SCHILY.xattr.security.capability"].len(), 20);
            let mut content = Vec::new();
            member.read_to_end(&mut content).unwrap();
            assert_eq!(content, std::fs::read(dir.path().join("big.bin")).unwrap());
            saw_caps = true;
        }
        if path == b"bin/suid" {
            assert_eq!(member.header().username_bytes(), Some(&b"alice"[..]));
            assert_eq!(member.header().groupname_bytes(), Some(&b"staff"[..]));
        }
    }
    assert!(saw_raw && saw_caps);

    // GNU tar extracts it (it may not apply every attribute, but it must parse it all)
    let out = dir.path().join("x");
    std::fs::create_dir(&out).unwrap();
    run_ok(
        "tar",
        &[
            "-xf",
            tar_path.to_str().unwrap(),
            "-C",
            out.to_str().unwrap(),
            "--xattrs",
            "--xattrs-include=*",
        ],
        None,
    );
    assert_eq!(
        std::fs::read(
            out.join("raw")
                .join(OsString::from_vec(b"\xff\xfename".to_vec()))
        )
        .unwrap(),
        b"latin"
    );
    assert_eq!(
        std::fs::read(out.join("bin/big")).unwrap(),
        std::fs::read(dir.path().join("big.bin")).unwrap()
    );
}

#[test]
fn same_input_gives_identical_bytes_for_every_compression_and_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [
        Compression::None,
        Compression::Gzip { level: 6 },
        Compression::Zstd { level: 3 },
    ] {
        let mut outputs = Vec::new();
        for threads in [1, 3] {
            let options = EncodeOptions {
                compression,
                threads: Some(threads),
                ..Default::default()
            };
            let (encoded, blob) =
                encode_layer(sample_entries(dir.path()), &options, Vec::new()).unwrap();
            assert_eq!(encoded.digest, Digest::sha256_of(&blob));
            assert_eq!(encoded.size, blob.len() as u64);
            outputs.push((encoded, blob));
        }
        assert_eq!(
            outputs[0], outputs[1],
            "{compression:?} output depends on threads"
        );
    }
}

#[test]
fn gzip_and_zstd_blobs_pass_the_cli_tools_and_decompress_to_the_diff_id() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, _) = encode_layer(
        sample_entries(dir.path()),
        &EncodeOptions {
            compression: Compression::None,
            ..Default::default()
        },
        Vec::new(),
    )
    .unwrap();
    for (compression, tool, ext) in [
        (Compression::Gzip { level: 1 }, "gzip", "gz"),
        (Compression::Gzip { level: 9 }, "gzip", "gz"),
        (Compression::Zstd { level: 3 }, "zstd", "zst"),
    ] {
        let blob_path = dir.path().join(format!("layer.tar.{ext}"));
        let encoded = encode_layer_to_path(
            sample_entries(dir.path()),
            &EncodeOptions {
                compression,
                threads: Some(2),
                ..Default::default()
            },
            &blob_path,
        )
        .unwrap();
        assert_eq!(encoded.diff_id, plain.diff_id, "{compression:?}");
        run_ok(tool, &["-t", blob_path.to_str().unwrap()], None);
        let out = run_ok(
            "sh",
            &[
                "-c",
                &format!("{tool} -dc {} | sha256sum", blob_path.display()),
            ],
            None,
        );
        assert_eq!(
            out.split_whitespace().next().unwrap(),
            plain.diff_id.hex(),
            "{compression:?}"
        );
        if tool == "gzip" {
            // two more independent inflaters: busybox's own, and Python's zlib
            for reader in [
                format!("busybox gzip -dc {} | sha256sum", blob_path.display()),
                format!(
                    "python3 -c 'import gzip,hashlib,sys; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())' {}",
                    blob_path.display()
                ),
            ] {
                let out = run_ok("sh", &["-c", &reader], None);
                assert_eq!(
                    out.split_whitespace().next().unwrap(),
                    plain.diff_id.hex(),
                    "{reader}"
                );
            }
        }
    }
}

#[test]
fn source_date_epoch_clamps_mtimes_only_downwards() {
    let mut old = meta(0o644, 0, 0);
    old.mtime.sec = 100;
    let entries = vec![
        Entry::bytes(p("new"), &b"a"[..], meta(0o644, 0, 0)),
        Entry::bytes(p("old"), &b"b"[..], old),
    ];
    let mut tar = Vec::new();
    write_tar(
        entries,
        &TarOptions {
            source_date_epoch: Some(1000),
        },
        &mut tar,
    )
    .unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mtimes: Vec<u64> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().header().mtime().unwrap())
        .collect();
    assert_eq!(mtimes, [1000, 100]);
}

#[test]
fn files_of_8_gib_and_more_get_a_pax_size() {
    // A sparse 9 GiB source: only the header is checked, the content is not read.
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("huge");
    std::fs::File::create(&source)
        .unwrap()
        .set_len(9 << 30)
        .unwrap();
    struct HeaderOnly(Vec<u8>);
    impl std::io::Write for HeaderOnly {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if self.0.len() >= 4096 {
                return Err(std::io::Error::other("enough"));
            }
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut sink = HeaderOnly(Vec::new());
    let err = write_tar(
        vec![Entry::file(p("huge"), &source, meta(0o644, 0, 0))],
        &TarOptions::default(),
        &mut sink,
    )
    .unwrap_err();
    assert!(err.to_string().contains("enough"), "{err}");
    let mut archive = tar::Archive::new(&sink.0[..]);
    let first = archive.entries().unwrap().next().unwrap().unwrap();
    assert_eq!(first.size(), 9 << 30);
    assert_eq!(&*first.path_bytes(), b"huge");
}

#[test]
fn inconsistent_change_sets_are_rejected_with_the_path() {
    let cases: Vec<(Vec<Entry>, &str)> = vec![
        (
            vec![
                Entry::dir(p("a"), meta(0o755, 0, 0)),
                Entry::bytes(p("a"), &b""[..], meta(0o644, 0, 0)),
            ],
            "two entries",
        ),
        (
            vec![
                Entry::whiteout(p("a")),
                Entry::bytes(p("a"), &b""[..], meta(0o644, 0, 0)),
            ],
            "two entries",
        ),
        (
            vec![Entry::hardlink(p("l"), p("missing"), meta(0o644, 0, 0))],
            "not in the change set",
        ),
        (
            vec![
                Entry::hardlink(p("l"), p("m"), meta(0o644, 0, 0)),
                Entry::hardlink(p("m"), p("l"), meta(0o644, 0, 0)),
            ],
            "cycle",
        ),
        (
            vec![
                Entry::bytes(p("f"), &b""[..], meta(0o644, 0, 0)),
                Entry::opaque_dir(p("f")),
            ],
            "opaque marker on a file",
        ),
        (
            vec![Entry::bytes(p("d/.wh.x"), &b""[..], meta(0o644, 0, 0))],
            "reserved for whiteout markers",
        ),
        (
            vec![Entry::whiteout(p(".wh.x"))],
            "reserved for whiteout markers",
        ),
    ];
    for (entries, needle) in cases {
        let err = write_tar(entries, &TarOptions::default(), &mut Vec::new()).unwrap_err();
        assert!(
            err.to_string().contains(needle),
            "{err} should mention {needle}"
        );
    }
}

/// (path, type, link name, size) of a tar member.
type Member = (Vec<u8>, tar::EntryType, Option<Vec<u8>>, u64);

#[test]
fn hardlink_groups_carry_content_on_the_first_member_in_order() {
    // The file sorts after its link: the writer swaps roles.
    let entries = vec![
        Entry::bytes(p("z/file"), &b"payload"[..], meta(0o644, 0, 0)),
        Entry::hardlink(p("a/link"), p("z/file"), meta(0o644, 0, 0)),
    ];
    let mut tar = Vec::new();
    write_tar(entries, &TarOptions::default(), &mut tar).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let members: Vec<Member> = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.path_bytes().into_owned(),
                e.header().entry_type(),
                e.link_name_bytes().map(|l| l.into_owned()),
                e.size(),
            )
        })
        .collect();
    assert_eq!(
        members[0],
        (b"a/link".to_vec(), tar::EntryType::Regular, None, 7)
    );
    assert_eq!(
        members[1],
        (
            b"z/file".to_vec(),
            tar::EntryType::Link,
            Some(b"a/link".to_vec()),
            0
        )
    );
}
