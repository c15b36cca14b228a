//! Remote contexts against the tools users would otherwise script, in one
//! process, interleaved, as ratios (`cargo bench -p kiln-context --bench
//! remote_fetch`; `KILN_BENCH_MB` sets the size, 200 by default):
//!
//! - a git repository of that many MB of incompressible files over HTTP (git
//!   http-backend behind kiln-testkit's CGI host): kiln-context's shallow fetch
//!   and checkout vs `git clone --depth 1`;
//! - a tar of the same size in S3 (moto): kiln-context's S3 reader piped into
//!   `tar -x` vs `curl --aws-sigv4` of the same object piped into `tar -x`.
//!
//! Each round runs both sides on fresh directories; figures are wall-clock
//! seconds, the ratio is kiln / baseline of the medians.

use std::io::Write;

use std::process::{Command, Stdio};
use std::time::Instant;

use kiln_auth::MapEnvironment;
use kiln_context::{GitCredentials, GitOptions, GitSource, ObjectSource};
use kiln_testkit::git::git;
use kiln_testkit::{GitHttp, GitHttpOptions, MotoS3};

const ROUNDS: usize = 3;

fn main() {
    let mb: usize = std::env::var("KILN_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // Incompressible content: one MiB per file from a xorshift stream.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..mb {
        let mut buf = vec![0u8; 1 << 20];
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let sub = work.join(format!("d{}", i % 16));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("f{i}.bin")), &buf).unwrap();
    }
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "bench"]);
    let srv = dir.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    git(
        &srv,
        &[
            "clone",
            "-q",
            "--bare",
            &work.display().to_string(),
            "big.git",
        ],
    );
    let server = GitHttp::start(&srv, GitHttpOptions::default());
    let url = server.url("big.git");

    let tar_path = dir.path().join("ctx.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar_path)
        .arg("-C")
        .arg(&work)
        .args(["--exclude=.git", "."])
        .status()
        .unwrap();
    assert!(status.success());
    let s3 = MotoS3::start(false);
    s3.create_bucket("bench");
    s3.put("bench", "ctx.tar", &tar_path);
    let env = MapEnvironment::new()
        .with("AWS_ACCESS_KEY_ID", "AKIABENCH")
        .with("AWS_SECRET_ACCESS_KEY", "bench")
        .with("S3_ENDPOINT", s3.endpoint())
        .with("S3_FORCE_PATH_STYLE", "true");
    let object_url = format!("{}/bench/ctx.tar", s3.endpoint());

    let runs = dir.path().join("runs");
    let mut git_kiln = Vec::new();
    let mut git_cli = Vec::new();
    let mut s3_kiln = Vec::new();
    let mut s3_curl = Vec::new();
    for round in 0..ROUNDS {
        let fresh = |name: &str| {
            let d = runs.join(format!("{round}-{name}"));
            std::fs::create_dir_all(&d).unwrap();
            d
        };
        let d = fresh("git-cli");
        git_cli.push(time(|| {
            git(&d, &["clone", "-q", "--depth", "1", &url, "out"]);
        }));
        let d = fresh("git-kiln");
        let (scratch, dest) = (d.join("scratch"), d.join("root"));
        std::fs::create_dir_all(&scratch).unwrap();
        std::fs::create_dir_all(&dest).unwrap();
        git_kiln.push(time(|| {
            GitSource::parse(&url, None)
                .unwrap()
                .unwrap()
                .fetch(
                    &GitOptions::default(),
                    &GitCredentials::default(),
                    &MapEnvironment::new(),
                    &scratch,
                    &dest,
                )
                .unwrap();
        }));
        let d = fresh("s3-curl");
        s3_curl.push(time(|| {
            let status = Command::new("sh")
                .arg("-c")
                .arg(format!(
                    "curl -sS --fail --aws-sigv4 aws:amz:us-east-1:s3 --user AKIABENCH:bench '{object_url}' | tar -x -C '{}'",
                    d.display()
                ))
                .status()
                .unwrap();
            assert!(status.success());
        }));
        let d = fresh("s3-kiln");
        s3_kiln.push(time(|| {
            let mut reader = ObjectSource::parse("s3://bench/ctx.tar")
                .unwrap()
                .unwrap()
                .open(&env)
                .unwrap();
            let mut tar = Command::new("tar")
                .arg("-x")
                .arg("-C")
                .arg(&d)
                .stdin(Stdio::piped())
                .spawn()
                .unwrap();
            let mut stdin = tar.stdin.take().unwrap();
            std::io::copy(&mut reader, &mut stdin).unwrap();
            stdin.flush().unwrap();
            drop(stdin);
            assert!(tar.wait().unwrap().success());
        }));
        std::fs::remove_dir_all(&runs).unwrap();
    }
    report(
        &format!("{mb} MB git over HTTP: kiln-context vs git clone --depth 1"),
        &git_kiln,
        &git_cli,
    );
    report(
        &format!("{mb} MB tar from S3: kiln-context | tar -x vs curl | tar -x"),
        &s3_kiln,
        &s3_curl,
    );
}

fn time(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_secs_f64()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn report(what: &str, kiln: &[f64], baseline: &[f64]) {
    let show = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!("{what}");
    println!("  kiln     s: {}  (median {:.2})", show(kiln), median(kiln));
    println!(
        "  baseline s: {}  (median {:.2})",
        show(baseline),
        median(baseline)
    );
    println!(
        "  ratio kiln/baseline: {:.2}",
        median(kiln) / median(baseline)
    );
}
