//! Layers made by other tools (GNU tar in its formats, with long names,
//! hardlinks, xattrs, sparse files), applied by kiln, give the same tree as
//! GNU tar's own extraction.

mod common;

use std::io::{Seek, SeekFrom, Write};

use common::{Via, describe_tree, run_ok};
use kiln_layer::Expected;

fn make_tree(root: &std::path::Path) {
    std::fs::create_dir_all(root.join("a/b")).unwrap();
    std::fs::write(root.join("a/b/file"), b"content").unwrap();
    std::fs::write(root.join(format!("a/{}", "L".repeat(180))), b"long").unwrap();
    std::fs::hard_link(root.join("a/b/file"), root.join("a/hard")).unwrap();
    std::os::unix::fs::symlink("b/file", root.join("a/sym")).unwrap();
    xattr::set(root.join("a/b/file"), "user.origin", b"gnu").unwrap();
    let mut sparse = std::fs::File::create(root.join("a/sparse")).unwrap();
    sparse.write_all(b"head").unwrap();
    sparse.seek(SeekFrom::Start(5 << 20)).unwrap();
    sparse.write_all(b"middle").unwrap();
    sparse.set_len(9 << 20).unwrap();
    std::fs::write(root.join("caf\u{e9}"), b"accent").unwrap();
}

#[test]
fn gnu_tar_archives_in_every_format_apply_like_gnu_tar_extracts_them() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    make_tree(&src);
    for (format, extra) in [
        ("gnu", "-S"),
        ("posix", "-S"),
        ("posix", "--sparse-version=0.1"),
        ("posix", ""),
        ("ustar", ""),
    ] {
        let archive = dir.path().join(format!("{format}{extra}.tar"));
        let mut args = vec![
            "-c",
            "--xattrs",
            "--xattrs-include=*",
            "--numeric-owner",
            "--format",
            format,
            "-f",
            archive.to_str().unwrap(),
            "-C",
            src.to_str().unwrap(),
        ];
        if !extra.is_empty() {
            args.push(extra);
        }
        if extra.starts_with("--sparse-version") {
            args.push("-S");
        }
        if format != "posix" {
            // only POSIX (PAX) archives hold xattrs
            args.retain(|a| !a.starts_with("--xattrs"));
        }
        if format == "ustar" {
            // ustar cannot hold the 180-byte name
            args.extend(["--exclude", "./a/LLLL*"]);
        }
        args.push(".");
        run_ok("tar", &args, None);

        let theirs = dir.path().join(format!("theirs-{format}{extra}"));
        std::fs::create_dir(&theirs).unwrap();
        run_ok(
            "tar",
            &[
                "-x",
                "--xattrs",
                "--xattrs-include=*",
                "--same-owner",
                "--same-permissions",
                "-f",
                archive.to_str().unwrap(),
                "-C",
                theirs.to_str().unwrap(),
            ],
            None,
        );
        let bytes = std::fs::read(&archive).unwrap();
        for via in Via::BOTH {
            let ours = dir.path().join(format!("ours-{format}{extra}-{via:?}"));
            std::fs::create_dir(&ours).unwrap();
            via.apply(
                &bytes,
                &format!("{format}{extra}.tar"),
                Expected::default(),
                &ours,
            )
            .unwrap_or_else(|e| panic!("{format}{extra} {via:?}: {e}"));
            assert_eq!(
                describe_tree(&ours),
                describe_tree(&theirs),
                "{format}{extra} {via:?}"
            );
        }
    }
}
