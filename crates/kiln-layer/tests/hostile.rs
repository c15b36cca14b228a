//! A corpus of hostile layers. Each is applied to `<tmp>/root` next to a
//! canary file `<tmp>/canary` and an empty `<tmp>/outside/` directory; after
//! each, the canary must be untouched, nothing may appear outside the root,
//! and the result is either an error naming the problem or a safe outcome
//! checked inside the root.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::Via;
use common::rawtar::RawTar;
use kiln_layer::Expected;

/// What a case must produce.
enum Outcome {
    /// An error whose message contains this text.
    Error(&'static str),
    /// Success, and this check (given the root and the sandbox dir) holds.
    Safe(fn(&Path, &Path)),
}

struct Case {
    name: &'static str,
    layers: Vec<Vec<u8>>,
    outcome: Outcome,
}

fn abs(path: &Path) -> Vec<u8> {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str().as_bytes().to_vec()
}

/// `<root>/<absolute path of p>`: where an absolute name lands inside the root.
fn inside(root: &Path, p: &Path) -> PathBuf {
    root.join(p.strip_prefix("/").unwrap())
}

fn cases(sandbox: &Path) -> Vec<Case> {
    let canary = abs(&sandbox.join("canary"));
    let outside = abs(&sandbox.join("outside"));
    let sandbox_abs = abs(sandbox);
    let with = |base: &[u8], tail: &[u8]| {
        let mut v = base.to_vec();
        v.extend_from_slice(tail);
        v
    };
    vec![
        Case {
            name: "dot-dot file",
            layers: vec![RawTar::default().file(b"../canary", b"pwned").finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "dot-dot in the middle",
            layers: vec![RawTar::default().file(b"a/../../canary", b"pwned").finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "absolute file name",
            layers: vec![RawTar::default().file(&canary, b"rooted").finish()],
            outcome: Outcome::Safe(|root, sandbox| {
                assert_eq!(std::fs::read(inside(root, &sandbox.join("canary"))).unwrap(), b"rooted");
            }),
        },
        Case {
            name: "relative symlink climbing out, then a file through it",
            layers: vec![RawTar::default().symlink(b"evil", b"../../../../../..").file(b"evil/canary", b"pwned").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert_eq!(std::fs::read(root.join("canary")).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "absolute symlink to the sandbox, then a file through it",
            layers: vec![RawTar::default().symlink(b"evil", &sandbox_abs).file(b"evil/canary", b"pwned").finish()],
            outcome: Outcome::Safe(|root, sandbox| {
                assert_eq!(std::fs::read(inside(root, &sandbox.join("canary"))).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "symlink chain climbing out",
            layers: vec![RawTar::default().symlink(b"a", b"b").symlink(b"b", b"c/../../..").dir(b"c/").file(b"a/canary", b"pwned").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert_eq!(std::fs::read(root.join("canary")).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "symlink planted in one layer, written through in the next",
            layers: vec![
                RawTar::default().symlink(b"etc", &outside).finish(),
                RawTar::default().file(b"etc/passwd", b"pwned").finish(),
            ],
            outcome: Outcome::Safe(|root, sandbox| {
                assert_eq!(std::fs::read(inside(root, &sandbox.join("outside/passwd"))).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "hardlink with dot-dot target",
            layers: vec![RawTar::default().hardlink(b"link", b"../canary").finish()],
            outcome: Outcome::Error("hardlink target: a `..`"),
        },
        Case {
            name: "hardlink to the absolute path of the canary",
            layers: vec![RawTar::default().hardlink(b"link", &canary).finish()],
            outcome: Outcome::Error("hardlink target does not exist"),
        },
        Case {
            name: "hardlink through a symlinked directory",
            layers: vec![RawTar::default().symlink(b"evil", &sandbox_abs).hardlink(b"link", b"evil/canary").finish()],
            outcome: Outcome::Error("hardlink target does not exist"),
        },
        Case {
            name: "hardlink to a symlink to the canary, then written",
            layers: vec![RawTar::default().symlink(b"s", &canary).hardlink(b"h", b"s").file(b"h", b"pwned").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert_eq!(std::fs::read(root.join("h")).unwrap(), b"pwned");
                assert!(std::fs::symlink_metadata(root.join("s")).unwrap().file_type().is_symlink());
            }),
        },
        Case {
            name: "directory replaced by a symlink, then a file inside",
            layers: vec![RawTar::default().dir(b"d/").symlink(b"d", &outside).file(b"d/file", b"pwned").finish()],
            outcome: Outcome::Safe(|root, sandbox| {
                assert_eq!(std::fs::read(inside(root, &sandbox.join("outside/file"))).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "file written over a symlink to the canary",
            layers: vec![RawTar::default().symlink(b"f", &canary).file(b"f", b"pwned").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert!(std::fs::symlink_metadata(root.join("f")).unwrap().is_file());
            }),
        },
        Case {
            name: "directory entry over a symlink to the canary (chmod must not follow)",
            layers: vec![RawTar::default().symlink(b"s", &canary).dir(b"s/").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert!(std::fs::symlink_metadata(root.join("s")).unwrap().is_dir());
            }),
        },
        Case {
            name: "PAX path with dot-dot",
            layers: vec![RawTar::default().pax(&[("path", b"../canary")]).file(b"innocent", b"pwned").finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "PAX linkpath with dot-dot on a hardlink",
            layers: vec![RawTar::default().pax(&[("linkpath", b"../../canary")]).hardlink(b"x", b"fine").finish()],
            outcome: Outcome::Error("hardlink target: a `..`"),
        },
        Case {
            name: "PAX path absolute into the sandbox",
            layers: vec![RawTar::default().pax(&[("path", &with(&outside, b"/x"))]).file(b"innocent", b"rooted").finish()],
            outcome: Outcome::Safe(|root, sandbox| {
                assert_eq!(std::fs::read(inside(root, &sandbox.join("outside/x"))).unwrap(), b"rooted");
            }),
        },
        Case {
            name: "PAX sparse real name with dot-dot",
            layers: vec![RawTar::default()
                .pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0"), ("GNU.sparse.name", b"../canary"), ("GNU.sparse.realsize", b"5")])
                .file(b"GNUSparseFile.1/canary", &sparse_v1(&[(0, 5)], b"pwned"))
                .finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "PAX sparse segment far beyond the declared size",
            layers: vec![RawTar::default()
                .pax(&[("GNU.sparse.major", b"1"), ("GNU.sparse.minor", b"0"), ("GNU.sparse.name", b"s"), ("GNU.sparse.realsize", b"5")])
                .file(b"GNUSparseFile.1/s", &sparse_v1(&[(1 << 40, 5)], b"pwned"))
                .finish()],
            outcome: Outcome::Error("sparse segment beyond the file's size"),
        },
        Case {
            name: "GNU long name with dot-dot",
            layers: vec![RawTar::default().gnu_long_name(&with(&b"a/".repeat(60), b"../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../canary")).file(b"short", b"pwned").finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "whiteout of dot-dot",
            layers: vec![RawTar::default().file(b".wh...", b"").finish()],
            outcome: Outcome::Error("whiteout of an invalid name"),
        },
        Case {
            name: "whiteout with an empty name",
            layers: vec![RawTar::default().file(b"dir/.wh.", b"").finish()],
            outcome: Outcome::Error("whiteout of an invalid name"),
        },
        Case {
            name: "whiteout through a symlink to the sandbox",
            layers: vec![
                RawTar::default().symlink(b"evil", &sandbox_abs).finish(),
                RawTar::default().file(b"evil/.wh.canary", b"").finish(),
            ],
            outcome: Outcome::Safe(|root, _| {
                assert!(std::fs::symlink_metadata(root.join("evil")).unwrap().file_type().is_symlink());
            }),
        },
        Case {
            name: "opaque marker through a symlink climbing out",
            layers: vec![
                RawTar::default().file(b"keep-me-not", b"1").symlink(b"evil", b"../..").finish(),
                RawTar::default().file(b"evil/.wh..wh..opq", b"").finish(),
            ],
            // the opaque dir resolves to the root itself: the root is cleared, nothing else
            outcome: Outcome::Safe(|root, _| {
                assert_eq!(std::fs::read_dir(root).unwrap().count(), 0);
            }),
        },
        Case {
            name: "symlink whose target walks down then climbs out with dot-dots",
            layers: vec![RawTar::default().dir(b"a/b/").symlink(b"up", b"a/b/../../../../..").file(b"up/f", b"pwned").finish()],
            outcome: Outcome::Safe(|root, _| {
                assert_eq!(std::fs::read(root.join("f")).unwrap(), b"pwned");
            }),
        },
        Case {
            name: "symlink loop in a parent",
            layers: vec![RawTar::default().symlink(b"a", b"b").symlink(b"b", b"a").file(b"a/x", b"pwned").finish()],
            outcome: Outcome::Error("resolving parent directory"),
        },
        Case {
            name: "device node outside",
            layers: vec![RawTar::default().char_device(b"../dev-null").finish()],
            outcome: Outcome::Error("`..`"),
        },
        Case {
            name: "file under a regular file",
            layers: vec![RawTar::default().file(b"f", b"1").file(b"f/x", b"2").finish()],
            outcome: Outcome::Error("Not a directory"),
        },
    ]
}

/// Data of a GNU PAX sparse 1.0 member: the map, padded, then the data.
fn sparse_v1(map: &[(u64, u64)], data: &[u8]) -> Vec<u8> {
    let mut out = format!("{}\n", map.len()).into_bytes();
    for (offset, size) in map {
        out.extend_from_slice(format!("{offset}\n{size}\n").as_bytes());
    }
    out.resize(out.len().div_ceil(512) * 512, 0);
    out.extend_from_slice(data);
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn hostile_layers_never_write_outside_the_root() {
    let probe = tempfile::tempdir().unwrap();
    let corpus = cases(probe.path());
    assert!(corpus.len() >= 15);
    let mut failures = Vec::new();
    for index in 0..corpus.len() {
        // as a stream and from a file (mapped, contents written in place)
        for via in Via::BOTH {
            let sandbox = tempfile::tempdir().unwrap();
            let sandbox = sandbox.path();
            // the case list is built per sandbox so absolute paths point at it
            let case = cases(sandbox).into_iter().nth(index).unwrap();
            let label = format!("{} ({via:?})", case.name);
            let root = sandbox.join("root");
            std::fs::create_dir(&root).unwrap();
            std::fs::create_dir(sandbox.join("outside")).unwrap();
            let canary = sandbox.join("canary");
            std::fs::write(&canary, b"canary").unwrap();
            std::fs::set_permissions(&canary, std::fs::Permissions::from_mode(0o640)).unwrap();
            let before = std::fs::metadata(&canary).unwrap();

            let mut result = Ok(());
            for (i, layer) in case.layers.iter().enumerate() {
                if let Err(e) =
                    via.apply(layer, &format!("hostile-{i}"), Expected::default(), &root)
                {
                    result = Err(e);
                    break;
                }
            }

            let after = std::fs::metadata(&canary).unwrap();
            assert_eq!(
                std::fs::read(&canary).unwrap(),
                b"canary",
                "{}: canary content changed",
                label
            );
            assert_eq!(
                (
                    after.mode(),
                    after.uid(),
                    after.gid(),
                    after.nlink(),
                    after.ino()
                ),
                (before.mode(), before.uid(), before.gid(), 1, before.ino()),
                "{}: canary metadata changed",
                label
            );
            assert_eq!(
                listing(sandbox),
                ["canary", "outside", "root"],
                "{}: something appeared outside the root",
                label
            );
            assert!(
                listing(&sandbox.join("outside")).is_empty(),
                "{}: something was written outside",
                label
            );

            match (&case.outcome, result) {
                (Outcome::Error(needle), Err(e)) => {
                    let text = e.to_string();
                    if !text.contains(needle) || !text.contains("hostile-") {
                        failures.push(format!(
                            "{}: error {text:?} should contain {needle:?} and the blob name",
                            label
                        ));
                    }
                }
                (Outcome::Error(needle), Ok(())) => failures.push(format!(
                    "{}: expected an error containing {needle:?}, got success",
                    label
                )),
                (Outcome::Safe(check), Ok(())) => check(&root, sandbox),
                (Outcome::Safe(_), Err(e)) => {
                    failures.push(format!("{}: expected a safe success, got {e}", label))
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
