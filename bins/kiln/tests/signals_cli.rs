//! SIGTERM and SIGINT end a build cleanly (issue 19): sent while a RUN command
//! sleeps, kiln exits within 5 s with 128+N, the command's process is gone,
//! the build dir is removed and nothing is pushed. Before this, the default
//! signal action killed kiln on the spot (no exit code, the build dir left).

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kiln_testkit::{FixtureImage, Registry};

mod common;
use common::{kiln, processes_with, signal_and_wait, wait_for_process};

fn stopped_during_run(signo: i32, seconds: u32) {
    let registry = Registry::start_plain();
    FixtureImage::busybox()
        .push(&registry, "base/busybox:1", None)
        .expect("pushing the busybox base");
    let host = registry.host_port();
    let dir = tempfile::tempdir().expect("temp dir");
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).expect("context dir");
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {host}/base/busybox:1\nRUN exec sleep {seconds}\n"),
    )
    .expect("writing the Dockerfile");
    let kaniko_dir = dir.path().join("kaniko");
    let mut child = Command::new(kiln())
        .args(["build", "--insecure", "--insecure-pull", "--context"])
        .arg(&ctx)
        .arg("--kaniko-dir")
        .arg(&kaniko_dir)
        .arg(format!("--destination={host}/stopped/image:1"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .spawn()
        .expect("starting kiln");
    let needle = format!("sleep\0{seconds}\0");
    wait_for_process(&mut child, needle.as_bytes());
    let (status, took) = signal_and_wait(&mut child, signo, Duration::from_secs(10));
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("stderr");
    assert_eq!(status.code(), Some(128 + signo), "{status:?}\n{stderr}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert!(stderr.contains(&format!("signal {signo}")), "{stderr}");
    assert!(
        processes_with(needle.as_bytes()).is_empty(),
        "the RUN's process is alive"
    );
    // The build dir goes to the background remover; give it a moment.
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let left: Vec<String> = std::fs::read_dir(&kaniko_dir)
            .expect("kiln's dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("build-"))
            .chain(
                std::fs::read_dir(kaniko_dir.join("trash"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned()),
            )
            .collect();
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < until,
            "left in {}: {left:?}",
            kaniko_dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tags = Command::new(kiln_testkit::tools::skopeo())
        .args(["inspect", "--tls-verify=false", "--raw"])
        .arg(format!("docker://{host}/stopped/image:1"))
        .output()
        .expect("running skopeo");
    assert!(!tags.status.success(), "the stopped build pushed its image");
    assert!(Path::new(&kaniko_dir).is_dir());
}

#[test]
fn sigterm_during_a_run_ends_the_build_with_143_and_cleans_up() {
    stopped_during_run(libc::SIGTERM, 873);
}

#[test]
fn sigint_during_a_run_ends_the_build_with_130_and_cleans_up() {
    stopped_during_run(libc::SIGINT, 874);
}
