//! Shared helpers for the end-to-end tests: fixture contexts, a recording
//! observer, and external tools (umoci, skopeo) that must exist.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use kiln_build::{BuildEvent, BuildObserver, BuildOptions, ContextSource, OutputStream};

/// Records every event.
#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<BuildEvent>>);

impl BuildObserver for Recorder {
    fn event(&self, event: &BuildEvent) {
        self.0.lock().unwrap().push(event.clone());
    }
}

impl Recorder {
    /// Every RUN output line.
    pub fn run_lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                BuildEvent::RunOutput {
                    stream: OutputStream::Stdout,
                    line,
                    ..
                } => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every step start line, as the CLI would print it.
    pub fn step_lines(&self) -> Vec<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                BuildEvent::StepStarted { id, text } => Some(format!("{id}: {text}")),
                _ => None,
            })
            .collect()
    }
}

/// An image unpacked by umoci: the bundle (`rootfs/`, `config.json`), kept
/// while this lives.
pub struct Unpacked {
    _dir: tempfile::TempDir,
    pub bundle: PathBuf,
}

/// A build context directory holding the busybox rootfs as `rootfs.tar`
/// plus `files` (path, content), and a Dockerfile.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

impl Fixture {
    pub fn new(dockerfile: &str, files: &[(&str, &str)]) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(
            dir.path().join("rootfs.tar"),
            kiln_testkit::busybox::rootfs_tar(),
        )
        .unwrap();
        fs_err::write(dir.path().join("Dockerfile"), dockerfile).unwrap();
        for (path, content) in files {
            let p = dir.path().join(path);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(p, content).unwrap();
        }
        Fixture {
            dir,
            work: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Options: this context, a private work dir, no push.
    pub fn options(&self) -> BuildOptions {
        let mut o = BuildOptions::new(ContextSource::Dir(self.dir.path().to_path_buf()));
        o.kaniko_dir = self.work.path().join("kiln");
        o.no_push = true;
        o
    }

    /// [`Fixture::options`] writing the image to `<work>/layout`, and that path.
    pub fn layout_options(&self) -> (BuildOptions, PathBuf) {
        let layout = self.work.path().join("layout");
        let mut o = self.options();
        o.oci_layout_path = Some(layout.clone());
        (o, layout)
    }

    /// Builds with `options` (from [`Fixture::layout_options`]) and unpacks the
    /// image with umoci.
    pub fn build_and_unpack(&self, options: &BuildOptions) -> Unpacked {
        run_tokio(kiln_build::build(options, &kiln_build::NoopObserver)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bundle = umoci_unpack(&self.work.path().join("layout"), "latest", dir.path());
        Unpacked { _dir: dir, bundle }
    }
}

/// Runs skopeo as `configure` sets it up and insists that it succeeds.
pub fn skopeo(configure: impl FnOnce(&mut Command)) -> std::process::Output {
    let mut cmd = Command::new(tool("/usr/bin/skopeo"));
    configure(&mut cmd);
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "skopeo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs buildah with its storage under `root` (`storage`, `runroot`) and the
/// given storage driver, insists that it succeeds, and returns its stdout.
pub fn buildah(root: &Path, driver: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(tool("/usr/bin/buildah"))
        .arg("--root")
        .arg(root.join("storage"))
        .arg("--runroot")
        .arg(root.join("runroot"))
        .args(["--storage-driver", driver])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn tool(path: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(p.is_file(), "needs {path}: install with .ci/install-deps");
    p
}

/// `umoci unpack --image LAYOUT:TAG BUNDLE`; returns the bundle dir.
pub fn umoci_unpack(layout: &Path, tag: &str, into: &Path) -> PathBuf {
    let bundle = into.join("bundle");
    let out = Command::new(tool("/usr/bin/umoci"))
        .arg("unpack")
        .arg("--image")
        .arg(format!("{}:{tag}", layout.display()))
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci unpack failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bundle
}

pub fn run_tokio<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// A minimal HTTP/1.1 file server on 127.0.0.1 for ADD URL tests: serves
/// `files` (path -> body) with a fixed Last-Modified, 404 otherwise. The
/// thread ends with the test process.
pub fn serve_files(files: Vec<(&'static str, Vec<u8>)>) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let path = request_line
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .to_string();
            let found = files.iter().find(|(p, _)| *p == path);
            let (status, body) = match found {
                Some((_, body)) => ("200 OK", body.clone()),
                None => ("404 Not Found", b"not found".to_vec()),
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// A blob of an OCI layout by digest (`sha256:…`).
pub fn layout_blob(layout: &Path, digest: &str) -> Vec<u8> {
    fs_err::read(
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .unwrap()
}

/// Each entry of a gzip-compressed layer tar, as `f` makes it from the
/// entry's path and header, in tar order.
pub fn gzip_layer_entries<T>(
    compressed: &[u8],
    mut f: impl FnMut(String, &tar::Header) -> T,
) -> Vec<T> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(compressed));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            f(e.path().unwrap().display().to_string(), e.header())
        })
        .collect()
}

/// The manifest and config of the first image of an OCI layout.
pub fn layout_documents(layout: &Path) -> (serde_json::Value, serde_json::Value) {
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(&layout_blob(
        layout,
        index["manifests"][0]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    let config = serde_json::from_slice(&layout_blob(
        layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    (manifest, config)
}

/// An unpacked image as lines to compare: path -> type, mode, owner, and the
/// size and content digest or the link target.
pub type FileTree = BTreeMap<String, String>;

/// Whether [`file_tree`] records, for a file with several names, its hard
/// link group (all its names in the tree, sorted).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LinkGroups {
    Ignore,
    Record,
}

/// The [`FileTree`] of everything under `root`.
pub fn file_tree(root: &Path, groups: LinkGroups) -> FileTree {
    let mut files = Vec::new();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        for e in fs_err::read_dir(root.join(&rel)).unwrap() {
            let rel = rel.join(e.unwrap().file_name());
            let m = fs_err::symlink_metadata(root.join(&rel)).unwrap();
            if m.is_dir() {
                todo.push(rel.clone());
            }
            files.push((format!("/{}", rel.display()), m));
        }
    }
    let mut names: BTreeMap<(u64, u64), Vec<String>> = BTreeMap::new();
    for (path, m) in &files {
        if m.is_file() {
            names
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(path.clone());
        }
    }
    files
        .into_iter()
        .map(|(path, m)| {
            let full = root.join(path.trim_start_matches('/'));
            let what = if m.is_dir() {
                "dir".to_string()
            } else if m.is_symlink() {
                format!("symlink -> {}", fs_err::read_link(&full).unwrap().display())
            } else if m.is_file() {
                let data = fs_err::read(&full).unwrap();
                let content = format!("file {} {}", data.len(), kiln_oci::Digest::sha256_of(&data));
                match groups {
                    LinkGroups::Ignore => content,
                    LinkGroups::Record => {
                        let mut group = names[&(m.dev(), m.ino())].clone();
                        group.sort();
                        format!("{content} group {group:?}")
                    }
                }
            } else {
                "special".to_string()
            };
            let line = format!(
                "{what} mode={:o} owner={}:{}",
                m.mode() & 0o7777,
                m.uid(),
                m.gid()
            );
            (path, line)
        })
        .collect()
}

/// `tree` without buildah's own artifacts (TESTBED.md): the empty files and
/// directories RUN leaves at these paths. Filtered on both sides of a
/// comparison, since a base image may have the same paths.
pub fn without_buildah_artifacts(tree: FileTree) -> FileTree {
    tree.into_iter()
        .filter(|(path, line)| {
            !(matches!(
                path.as_str(),
                "/etc/hostname"
                    | "/etc/hosts"
                    | "/etc/resolv.conf"
                    | "/dev"
                    | "/proc"
                    | "/sys"
                    | "/run"
            ) && (line.starts_with("dir") || line.starts_with("file 0 ")))
        })
        .collect()
}

/// Fails with every difference between kiln's tree and buildah's.
pub fn assert_same_tree(kiln: &FileTree, buildah: &FileTree) {
    let mut differences = Vec::new();
    for (path, theirs) in buildah {
        match kiln.get(path) {
            Some(ours) if ours == theirs => {}
            Some(ours) => differences.push(format!("{path}: kiln {ours} / buildah {theirs}")),
            None => differences.push(format!("{path}: only in buildah ({theirs})")),
        }
    }
    for (path, ours) in kiln {
        if !buildah.contains_key(path) {
            differences.push(format!("{path}: only in kiln ({ours})"));
        }
    }
    assert!(
        differences.is_empty(),
        "file trees differ:\n{}",
        differences.join("\n")
    );
}
