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
use common::kiln;

fn processes_with(needle: &[u8]) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .expect("reading /proc")
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            cmdline
                .windows(needle.len())
                .any(|w| w == needle)
                .then_some(pid)
        })
        .collect()
}

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
    let until = Instant::now() + Duration::from_secs(120);
    while processes_with(needle.as_bytes()).is_empty() {
        assert!(Instant::now() < until, "the RUN never started");
        assert!(
            child.try_wait().expect("try_wait").is_none(),
            "kiln ended before its RUN started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, signo) };
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "kiln did not stop"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = sent.elapsed();
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
