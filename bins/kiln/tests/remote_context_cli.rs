//! Remote contexts through the command line, against real servers on
//! 127.0.0.1: a git repository (git http-backend with Basic auth, git daemon)
//! gives the same image as its tree given as a directory, with
//! `--reproducible`; credentials never appear in any output; a failed fetch
//! exits 1 naming the repository and writes no output; an archive URL is
//! streamed (the child's peak RSS stays far below the archive's size). An
//! object in S3 (moto), Azure Blob Storage (Azurite) or Google Cloud Storage
//! (gcp-storage-emulator behind the testkit's `GcsFront`) gives the same image
//! as its tree; a wrong key, a missing bucket, container or object exits 1
//! naming it and the variable to fix, writing nothing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use kiln_testkit::git::git;
use kiln_testkit::{
    Azurite, GcsEmulator, GcsFront, GitDaemon, GitHttp, GitHttpOptions, MotoS3, StaticHttp,
};

mod common;
use common::{kiln, text};

const USER: &str = "ci-bot";
const PASSWORD: &str = "Sup3r-s3cret-git-pa55";

fn write(path: &Path, content: &[u8], mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A context tree with explicit modes (so nothing depends on the umask), and
/// a bare repository `srv/app.git` holding it as its one commit.
fn context_and_repo(dir: &Path) -> (PathBuf, PathBuf) {
    let ctx = dir.join("ctx");
    write(
        &ctx.join("Dockerfile"),
        b"FROM scratch\nCOPY . /app/\n",
        0o644,
    );
    write(&ctx.join("bin/tool"), b"#!/bin/sh\necho tool\n", 0o755);
    write(&ctx.join("data/a.txt"), b"alpha\n", 0o644);
    write(
        &ctx.join("sub/Dockerfile"),
        b"FROM scratch\nCOPY . /sub/\n",
        0o644,
    );
    write(&ctx.join("sub/s.txt"), b"sub\n", 0o644);
    std::os::unix::fs::symlink("data/a.txt", ctx.join("link")).unwrap();
    for d in ["", "bin", "data", "sub"] {
        std::fs::set_permissions(ctx.join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let work = dir.join("work-repo");
    std::fs::create_dir_all(&work).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", ctx.display()))
        .arg(&work)
        .status()
        .unwrap();
    assert!(status.success());
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "context"]);
    let srv = dir.join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(
        &srv,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            "app.git",
        ],
    );
    (ctx, srv)
}

/// `kiln build --no-push --reproducible` of `context`, writing `<out>/digest`
/// and `<out>/layout`; `vars` are added to the environment.
fn build(out: &Path, context: &str, extra: &[&str], vars: &[(&str, &str)]) -> std::process::Output {
    std::fs::create_dir_all(out).unwrap();
    let mut cmd = Command::new(kiln());
    cmd.args([
        "build",
        "--no-push",
        "--reproducible",
        "--verbosity=trace",
        &format!("--context={context}"),
        &format!("--digest-file={}", out.join("digest").display()),
        &format!("--oci-layout-path={}", out.join("layout").display()),
        &format!("--kaniko-dir={}", out.join("kaniko").display()),
    ])
    .args(extra)
    .env_remove("RUST_LOG")
    .env_remove("GIT_USERNAME")
    .env_remove("GIT_PASSWORD")
    .env_remove("GIT_TOKEN")
    .env_remove("GIT_PULL_METHOD");
    for var in OBJECT_STORE_VARS {
        cmd.env_remove(var);
    }
    for (k, v) in vars {
        cmd.env(k, v);
    }
    cmd.output().expect("running kiln")
}

/// Every variable the object-store contexts read, cleared so that only what
/// a test gives counts.
const OBJECT_STORE_VARS: [&str; 11] = [
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "S3_ENDPOINT",
    "S3_FORCE_PATH_STYLE",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "STORAGE_EMULATOR_HOST",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_ENDPOINT",
];

fn digest(out: &Path) -> String {
    std::fs::read_to_string(out.join("digest")).unwrap()
}

#[test]
fn a_git_context_gives_the_same_image_as_its_tree_and_never_shows_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, srv) = context_and_repo(dir.path());
    let server = GitHttp::start(
        &srv,
        GitHttpOptions {
            basic_auth: Some((USER.into(), PASSWORD.into())),
            tls: None,
        },
    );
    let creds = [("GIT_USERNAME", USER), ("GIT_PASSWORD", PASSWORD)];
    let url = server.url("app.git");

    let from_dir = build(
        &dir.path().join("dir"),
        &ctx.display().to_string(),
        &[],
        &[],
    );
    assert!(from_dir.status.success(), "{}", text(&from_dir));
    let from_git = build(&dir.path().join("git"), &format!("{url}#main"), &[], &creds);
    let log = text(&from_git);
    assert!(from_git.status.success(), "{log}");
    assert!(
        !log.contains(PASSWORD),
        "the password appears in the output:\n{log}"
    );
    assert_eq!(
        digest(&dir.path().join("git")),
        digest(&dir.path().join("dir"))
    );

    // kaniko's git:// form over HTTP, with --context-sub-path.
    let kaniko_form = url.replacen("http://", "git://", 1);
    let sub_dir = build(
        &dir.path().join("sub-dir"),
        &ctx.join("sub").display().to_string(),
        &[],
        &[],
    );
    assert!(sub_dir.status.success(), "{}", text(&sub_dir));
    let mut vars = creds.to_vec();
    vars.push(("GIT_PULL_METHOD", "http"));
    let sub_git = build(
        &dir.path().join("sub-git"),
        &kaniko_form,
        &["--context-sub-path=sub"],
        &vars,
    );
    assert!(sub_git.status.success(), "{}", text(&sub_git));
    assert!(!text(&sub_git).contains(PASSWORD));
    assert_eq!(
        digest(&dir.path().join("sub-git")),
        digest(&dir.path().join("sub-dir"))
    );
    assert_ne!(
        digest(&dir.path().join("sub-dir")),
        digest(&dir.path().join("dir"))
    );

    // A wrong password: exit 1, the repository and the fix named, no secret, no output.
    let bad = build(
        &dir.path().join("bad"),
        &url,
        &[],
        &[("GIT_USERNAME", USER), ("GIT_PASSWORD", "not-the-Pa55word")],
    );
    let log = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{log}");
    assert!(log.contains(&url) && log.contains("GIT_PASSWORD"), "{log}");
    assert!(!log.contains("not-the-Pa55word"), "{log}");
    assert!(!dir.path().join("bad/layout").exists() && !dir.path().join("bad/digest").exists());

    // git daemon (GIT_PULL_METHOD=git): the same image again.
    let daemon = GitDaemon::start(&srv);
    let over_git = build(
        &dir.path().join("daemon"),
        &daemon.url("app.git"),
        &[],
        &[("GIT_PULL_METHOD", "git")],
    );
    assert!(over_git.status.success(), "{}", text(&over_git));
    assert_eq!(
        digest(&dir.path().join("daemon")),
        digest(&dir.path().join("dir"))
    );
}

/// Runs `cmd` and returns its output and its peak RSS in KiB (`wait4`'s rusage).
#[allow(clippy::zombie_processes)] // reaped by wait4, which also gives its rusage
fn run_measuring_rss(mut cmd: Command) -> (std::process::ExitStatus, i64, String) {
    use std::os::unix::process::ExitStatusExt;
    let log_path = tempfile::NamedTempFile::new().unwrap();
    let log = std::fs::File::create(log_path.path()).unwrap();
    let child = cmd
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("running kiln");
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child's PID.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32, "wait4 failed");
    let text = std::fs::read_to_string(log_path.path()).unwrap_or_default();
    (
        std::process::ExitStatus::from_raw(status),
        usage.ru_maxrss,
        text,
    )
}

/// A plain tar context (so the bytes on the wire are as large as the archive): a
/// Dockerfile copying `small.txt`, and `big.bin` of `big` bytes of
/// pseudo-random data from `seed` (nothing along the way can compress it
/// away), written as it is generated.
fn big_context_tar(path: &Path, big: u64, seed: u64) {
    let mut builder = tar::Builder::new(std::io::BufWriter::new(
        std::fs::File::create(path).unwrap(),
    ));
    let mut add = |name: &str, size: u64, data: &mut dyn std::io::Read| {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        builder.append_data(&mut header, name, data).unwrap();
    };
    let df = b"FROM scratch\nCOPY small.txt /\n";
    add("Dockerfile", df.len() as u64, &mut &df[..]);
    add("small.txt", 6, &mut &b"small\n"[..]);
    add(
        "big.bin",
        big,
        &mut std::io::Read::take(Noise(seed | 1), big),
    );
    builder.into_inner().unwrap();
}

/// An endless xorshift64 byte stream, eight bytes per step.
struct Noise(u64);

impl std::io::Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        for chunk in buf.chunks_mut(8) {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            chunk.copy_from_slice(&self.0.to_le_bytes()[..chunk.len()]);
        }
        Ok(buf.len())
    }
}

#[test]
fn an_archive_url_streams_into_the_build_dir() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    // A plain tar (so the bytes on the wire are as large as the archive) of
    // 300 MiB: a program holding it in memory would pass 300 MB of RSS.
    const BIG: u64 = 300 << 20;
    big_context_tar(&files.join("ctx.tar"), BIG, 7);
    let server = StaticHttp::start(&files);

    let out = dir.path().join("out");
    let mut cmd = Command::new(kiln());
    cmd.args([
        "build",
        "--no-push",
        &format!("--context={}", server.url("ctx.tar")),
        &format!("--digest-file={}", out.join("digest").display()),
        &format!("--kaniko-dir={}", out.join("kaniko").display()),
    ])
    .env_remove("RUST_LOG");
    let (status, max_rss_kib, log) = run_measuring_rss(cmd);
    assert!(status.success(), "{log}");
    assert!(out.join("digest").is_file());
    eprintln!(
        "peak RSS of kiln building from a {} MiB archive URL: {} MiB",
        BIG >> 20,
        max_rss_kib / 1024
    );
    assert!(
        max_rss_kib < 100 * 1024,
        "peak RSS {max_rss_kib} KiB is not under 100 MiB"
    );

    let missing = dir.path().join("missing");
    let mut cmd = Command::new(kiln());
    cmd.args([
        "build",
        "--no-push",
        &format!("--context={}", server.url("nope.tar.gz")),
        &format!("--digest-file={}", missing.join("digest").display()),
        &format!("--kaniko-dir={}", missing.join("kaniko").display()),
    ]);
    let out = cmd.output().unwrap();
    let log = text(&out);
    assert_eq!(out.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&server.url("nope.tar.gz")) && log.contains("404"),
        "{log}"
    );
    assert!(!missing.join("digest").exists());
}

/// The diff IDs and the layer blobs (paths) of the image in `<out>/layout`.
fn layers(out: &Path) -> Vec<(String, PathBuf)> {
    let layout = out.join("layout");
    let blob = |digest: &str| {
        layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
    };
    let json = |path: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = json(layout.join("index.json"));
    let manifest = json(blob(index["manifests"][0]["digest"].as_str().unwrap()));
    let config = json(blob(manifest["config"]["digest"].as_str().unwrap()));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let blobs = manifest["layers"].as_array().unwrap();
    diff_ids
        .iter()
        .zip(blobs)
        .map(|(d, l)| {
            (
                d.as_str().unwrap().to_string(),
                blob(l["digest"].as_str().unwrap()),
            )
        })
        .collect()
}

#[test]
fn add_of_a_git_repository_with_keep_git_dir_and_checksum() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, srv) = context_and_repo(dir.path());
    let server = GitHttp::start(&srv, GitHttpOptions::default());
    let daemon = GitDaemon::start(&srv);
    let commit = git(&srv.join("app.git"), &["rev-parse", "HEAD"]);

    // The reference: the same tree copied from the context.
    let copy_ctx = dir.path().join("copy-ctx");
    std::fs::create_dir_all(&copy_ctx).unwrap();
    let status = Command::new("cp")
        .arg("-a")
        .arg(&ctx)
        .arg(copy_ctx.join("app"))
        .status()
        .unwrap();
    assert!(status.success());
    write(
        &copy_ctx.join("Dockerfile"),
        b"FROM scratch\nCOPY app /src\n",
        0o644,
    );
    let copied = build(
        &dir.path().join("copied"),
        &copy_ctx.display().to_string(),
        &[],
        &[],
    );
    assert!(copied.status.success(), "{}", text(&copied));

    let add_ctx = dir.path().join("add-ctx");
    let dockerfile = format!(
        "FROM scratch\nADD {}#main /src\nADD --keep-git-dir=true --checksum={commit} {} /kept\n",
        server.url("app.git"),
        daemon.url("app.git"),
    );
    write(&add_ctx.join("Dockerfile"), dockerfile.as_bytes(), 0o644);
    std::fs::set_permissions(&add_ctx, std::fs::Permissions::from_mode(0o755)).unwrap();
    let added = build(
        &dir.path().join("added"),
        &add_ctx.display().to_string(),
        &[],
        &[],
    );
    assert!(added.status.success(), "{}", text(&added));

    let reference = layers(&dir.path().join("copied"));
    let got = layers(&dir.path().join("added"));
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].0, reference[0].0,
        "ADD of the repository differs from COPY of its tree"
    );
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&got[1].1)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(names.lines().any(|l| l == "kept/.git/HEAD"), "{names}");
    assert!(names.lines().any(|l| l == "kept/bin/tool"), "{names}");
    let first = Command::new("tar")
        .arg("-tzf")
        .arg(&got[0].1)
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&first.stdout).contains(".git/"),
        "no .git without --keep-git-dir"
    );

    // A checksum that is not the commit fails the build, naming both.
    let bad_ctx = dir.path().join("bad-ctx");
    let wrong = "0000000000000000000000000000000000000000";
    write(
        &bad_ctx.join("Dockerfile"),
        format!(
            "FROM scratch\nADD --checksum={wrong} {} /src\n",
            server.url("app.git")
        )
        .as_bytes(),
        0o644,
    );
    let bad = build(
        &dir.path().join("bad"),
        &bad_ctx.display().to_string(),
        &[],
        &[],
    );
    let log = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{log}");
    assert!(log.contains(wrong) && log.contains(&commit), "{log}");
    assert!(!dir.path().join("bad/layout").exists());
}

#[test]
fn a_1_gib_object_store_context_builds_in_under_100_mib_and_a_missing_bucket_pushes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // A plain tar of 1 GiB of noise (the issue's figure): held in memory, or
    // buffered anywhere along the way, it would pass the 100 MiB bound.
    const BIG: u64 = 1 << 30;
    let tar_path = dir.path().join("ctx.tar");
    big_context_tar(&tar_path, BIG, 3);
    let s3 = MotoS3::start(false);
    s3.create_bucket("contexts");
    s3.put("contexts", "app/ctx.tar", &tar_path);
    let azure = Azurite::start("kilnacct", AZURE_KEY);
    azure.create_container("contexts");
    azure.put("contexts", "app/ctx.tar", &tar_path);
    let gcs = GcsEmulator::start();
    gcs.create_bucket("contexts");
    gcs.put("contexts", "app/ctx.tar", &tar_path);
    let gcs_front = GcsFront::in_front_of(&gcs);
    std::fs::remove_file(&tar_path).unwrap();
    let endpoint = s3.endpoint();
    let s3_vars = [
        ("AWS_ACCESS_KEY_ID", "AKIAKILNTEST"),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ("AWS_REGION", "us-east-1"),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    let azure_endpoint = azure.endpoint();
    let azure_vars = [
        ("AZURE_STORAGE_ACCESS_KEY", AZURE_KEY),
        ("AZURE_STORAGE_ENDPOINT", azure_endpoint.as_str()),
    ];
    let gcs_host = gcs_front.host();
    let gcs_vars = [("STORAGE_EMULATOR_HOST", gcs_host.as_str())];
    let run = |context: &str, out: &Path, vars: &[(&str, &str)]| {
        let mut cmd = Command::new(kiln());
        cmd.args([
            "build",
            "--no-push",
            &format!("--context={context}"),
            &format!("--digest-file={}", out.join("digest").display()),
            &format!("--oci-layout-path={}", out.join("layout").display()),
            &format!("--kaniko-dir={}", out.join("kaniko").display()),
        ])
        .env_remove("RUST_LOG");
        for var in OBJECT_STORE_VARS {
            cmd.env_remove(var);
        }
        for (k, v) in vars {
            cmd.env(k, v);
        }
        run_measuring_rss(cmd)
    };
    for (store, url, vars, secret) in [
        (
            "S3",
            "s3://contexts/app/ctx.tar",
            &s3_vars[..],
            Some(S3_SECRET),
        ),
        (
            "Azure Blob",
            "https://kilnacct.blob.core.windows.net/contexts/app/ctx.tar",
            &azure_vars[..],
            Some(AZURE_KEY),
        ),
        // The emulator takes no credential: no secret to look for.
        ("GCS", "gs://contexts/app/ctx.tar", &gcs_vars[..], None),
    ] {
        let out = dir.path().join(store);
        let started = std::time::Instant::now();
        let (status, max_rss_kib, log) = run(url, &out, vars);
        assert!(status.success(), "{log}");
        assert!(out.join("digest").is_file());
        eprintln!(
            "peak RSS of kiln building from a {} MiB {store} object: {} MiB (in {:.1} s)",
            BIG >> 20,
            max_rss_kib / 1024,
            started.elapsed().as_secs_f64()
        );
        assert!(
            max_rss_kib < 100 * 1024,
            "{store}: peak RSS {max_rss_kib} KiB is not under 100 MiB"
        );
        assert!(secret.is_none_or(|secret| !log.contains(secret)), "{log}");
        std::fs::remove_dir_all(&out).unwrap();
    }

    let missing = dir.path().join("missing");
    let (status, _, log) = run("s3://no-such-bucket/ctx.tar", &missing, &s3_vars);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("s3://no-such-bucket/ctx.tar") && log.contains("does not exist"),
        "{log}"
    );
    assert!(!missing.join("digest").exists() && !missing.join("layout").exists());
}

/// An Azure account key (base64, as Azure shows them) and a wrong one.
const AZURE_KEY: &str = "a2lsbi1henVyZS10ZXN0LWtleS0wMTIzNDU2Nzg5";
const WRONG_AZURE_KEY: &str = "d3Jvbmcta2lsbi1henVyZS1rZXktOTg3NjU0MzI=";
const S3_SECRET: &str = "kiln-cli-s3-Secret-value";

#[test]
fn object_store_contexts_give_the_same_image_as_their_tree_and_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let (ctx, _) = context_and_repo(dir.path());
    let tar_path = dir.path().join("ctx.tar");
    let status = Command::new("tar")
        .arg("-C")
        .arg(&ctx)
        .arg("-cf")
        .arg(&tar_path)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let from_dir = build(
        &dir.path().join("dir"),
        &ctx.display().to_string(),
        &[],
        &[],
    );
    assert!(from_dir.status.success(), "{}", text(&from_dir));
    let expected = digest(&dir.path().join("dir"));
    let nothing_written = |out: &str| {
        let out = dir.path().join(out);
        !out.join("digest").exists() && !out.join("layout").exists()
    };

    // S3 (moto).
    let s3 = MotoS3::start(false);
    s3.create_bucket("contexts");
    s3.put("contexts", "app/ctx.tar", &tar_path);
    let endpoint = s3.endpoint();
    let s3_vars = [
        ("AWS_ACCESS_KEY_ID", "AKIAKILNTEST"),
        ("AWS_SECRET_ACCESS_KEY", S3_SECRET),
        ("S3_ENDPOINT", endpoint.as_str()),
        ("S3_FORCE_PATH_STYLE", "true"),
    ];
    let got = build(
        &dir.path().join("s3"),
        "s3://contexts/app/ctx.tar",
        &[],
        &s3_vars,
    );
    let log = text(&got);
    assert!(got.status.success(), "{log}");
    assert!(!log.contains(S3_SECRET), "{log}");
    assert_eq!(digest(&dir.path().join("s3")), expected);

    // Azure Blob Storage (Azurite, which checks the Shared Key signature).
    let azure = Azurite::start("kilnacct", AZURE_KEY);
    azure.create_container("contexts");
    azure.put("contexts", "app/ctx.tar", &tar_path);
    let azure_endpoint = azure.endpoint();
    let url = "https://kilnacct.blob.core.windows.net/contexts/app/ctx.tar";
    let got = build(
        &dir.path().join("azure"),
        url,
        &[],
        &[
            ("AZURE_STORAGE_ACCESS_KEY", AZURE_KEY),
            ("AZURE_STORAGE_ENDPOINT", &azure_endpoint),
        ],
    );
    let log = text(&got);
    assert!(got.status.success(), "{log}");
    assert!(!log.contains(AZURE_KEY), "{log}");
    assert_eq!(digest(&dir.path().join("azure")), expected);

    let bad = build(
        &dir.path().join("azure-bad"),
        url,
        &[],
        &[
            ("AZURE_STORAGE_ACCESS_KEY", WRONG_AZURE_KEY),
            ("AZURE_STORAGE_ENDPOINT", &azure_endpoint),
        ],
    );
    let log = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{log}");
    assert!(
        log.contains(url)
            && log.contains("refused the credentials")
            && log.contains("AZURE_STORAGE_ACCESS_KEY"),
        "{log}"
    );
    assert!(!log.contains(WRONG_AZURE_KEY), "{log}");
    assert!(nothing_written("azure-bad"));

    let missing = build(
        &dir.path().join("azure-missing"),
        "https://kilnacct.blob.core.windows.net/nope/ctx.tar",
        &[],
        &[
            ("AZURE_STORAGE_ACCESS_KEY", AZURE_KEY),
            ("AZURE_STORAGE_ENDPOINT", &azure_endpoint),
        ],
    );
    let log = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{log}");
    assert!(log.contains("container \"nope\" does not exist"), "{log}");
    assert!(nothing_written("azure-missing"));

    // GCS: gcp-storage-emulator behind the testkit's front, which adds the
    // ETag and Last-Modified real GCS sends (the bytes are the emulator's).
    // The bucket's `-` reaches the emulator escaped, as object_store sends
    // it. A key file is set too: with STORAGE_EMULATOR_HOST kiln sends no
    // credential, and the key's secret must appear nowhere.
    let gcs = GcsEmulator::start();
    gcs.create_bucket("kiln-contexts");
    gcs.put("kiln-contexts", "app/ctx.tar", &tar_path);
    let front = GcsFront::in_front_of(&gcs);
    let gcs_host = front.host();
    let key_file = dir.path().join("gcs-key.json");
    std::fs::write(
        &key_file,
        format!(
            r#"{{"type":"service_account","client_email":"ci@kiln.iam.gserviceaccount.com","private_key_id":"1","private_key":"-----BEGIN PRIVATE KEY-----\n{GCS_PRIVATE}\n-----END PRIVATE KEY-----\n"}}"#
        ),
    )
    .unwrap();
    let key_path = key_file.display().to_string();
    let gcs_vars = [
        ("STORAGE_EMULATOR_HOST", gcs_host.as_str()),
        ("GOOGLE_APPLICATION_CREDENTIALS", key_path.as_str()),
    ];
    let got = build(
        &dir.path().join("gcs"),
        "gs://kiln-contexts/app/ctx.tar",
        &[],
        &gcs_vars,
    );
    let log = text(&got);
    assert!(got.status.success(), "{log}");
    assert!(!log.contains(GCS_PRIVATE), "{log}");
    assert_eq!(digest(&dir.path().join("gcs")), expected);

    let missing = build(
        &dir.path().join("gcs-missing"),
        "gs://kiln-contexts/app/nope.tar",
        &[],
        &gcs_vars,
    );
    let log = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{log}");
    assert!(
        log.contains("gs://kiln-contexts/app/nope.tar")
            && log.contains("no object \"app/nope.tar\" in bucket \"kiln-contexts\"")
            && log.contains("check the key"),
        "{log}"
    );
    assert!(!log.contains(GCS_PRIVATE), "{log}");
    assert!(nothing_written("gcs-missing"));

    let missing = build(
        &dir.path().join("gcs-no-bucket"),
        "gs://no-such-bucket/app/ctx.tar",
        &[],
        &gcs_vars,
    );
    let log = text(&missing);
    assert_eq!(missing.status.code(), Some(1), "{log}");
    assert!(
        log.contains("gs://no-such-bucket/app/ctx.tar")
            && log.contains("bucket \"no-such-bucket\" does not exist"),
        "{log}"
    );
    assert!(nothing_written("gcs-no-bucket"));
}

/// The private-key part of a (fake) service-account key file.
const GCS_PRIVATE: &str = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-kiln-cli-gcs-key";

#[test]
fn add_of_a_private_repository_gets_the_git_contexts_credentials_on_its_origin_only() {
    let dir = tempfile::tempdir().unwrap();
    let (_, srv) = context_and_repo(dir.path());
    let auth = || GitHttpOptions {
        basic_auth: Some((USER.into(), PASSWORD.into())),
        tls: None,
    };
    let server = GitHttp::start(&srv, auth());
    // The same repositories behind the same password on another port: another
    // origin, to which the credentials must not go.
    let other = GitHttp::start(&srv, auth());

    // A private library repository.
    let lib = dir.path().join("lib-work");
    write(&lib.join("lib.txt"), b"library\n", 0o644);
    git(&lib, &["init", "-q", "-b", "main"]);
    git(&lib, &["add", "-A"]);
    git(&lib, &["commit", "-q", "-m", "lib"]);
    git(
        &srv,
        &[
            "clone",
            "-q",
            "--bare",
            &lib.display().to_string(),
            "lib.git",
        ],
    );
    // The context repository's Dockerfiles ADD it from each origin.
    let work = dir.path().join("work-repo");
    write(
        &work.join("Dockerfile"),
        format!("FROM scratch\nADD {}#main /lib\n", server.url("lib.git")).as_bytes(),
        0o644,
    );
    write(
        &work.join("other/Dockerfile"),
        format!("FROM scratch\nADD {}#main /lib\n", other.url("lib.git")).as_bytes(),
        0o644,
    );
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "ADD the library"]);
    let bare = srv.join("app.git").display().to_string();
    git(&work, &["push", "-q", &bare, "main"]);

    let creds = [("GIT_USERNAME", USER), ("GIT_PASSWORD", PASSWORD)];
    let context = format!("{}#main", server.url("app.git"));
    let added = build(&dir.path().join("added"), &context, &[], &creds);
    let log = text(&added);
    assert!(added.status.success(), "{log}");
    assert!(!log.contains(PASSWORD), "{log}");
    let layers = layers(&dir.path().join("added"));
    assert_eq!(layers.len(), 1);
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&layers[0].1)
        .output()
        .unwrap();
    let names = String::from_utf8_lossy(&listing.stdout).into_owned();
    assert!(names.lines().any(|l| l == "lib/lib.txt"), "{names}");

    // Another origin gets no credentials: the server refuses, the build
    // fails saying why, and the password appears nowhere.
    let refused = build(
        &dir.path().join("refused"),
        &context,
        &["--dockerfile=other/Dockerfile"],
        &creds,
    );
    let log = text(&refused);
    assert_eq!(refused.status.code(), Some(1), "{log}");
    assert!(
        log.contains(&other.url("lib.git"))
            && log.contains("only to the origin of a git --context"),
        "{log}"
    );
    assert!(!log.contains(PASSWORD), "{log}");
    assert!(!dir.path().join("refused/digest").exists());
    eprintln!(
        "ADD from another origin: {}",
        log.lines().rfind(|l| l.contains("ADD")).unwrap_or_default()
    );
}
