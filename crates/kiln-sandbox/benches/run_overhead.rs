//! Overhead of one RUN step per isolation mode, next to a plain fork+exec of the same
//! program measured in the same run. Needs root (as the tests).
//!
//! `cargo bench -p kiln-sandbox --bench run_overhead`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kiln_sandbox::{Isolation, RunSpec, Sandbox, SandboxOptions, Stream};

const RUNS: u32 = 50;

fn per_run(mut f: impl FnMut()) -> Duration {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..RUNS {
        f();
    }
    start.elapsed() / RUNS
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    common::busybox_rootfs(dir.path());
    let busybox = dir.path().join("bin/busybox");

    let baseline = per_run(|| {
        let status = Command::new(&busybox).arg("true").status().unwrap();
        assert!(status.success());
    });

    let chroot = Sandbox::new(&SandboxOptions {
        isolation: Isolation::Chroot,
        disposable_container: false,
        scratch_dir: None,
    })
    .unwrap();
    let spec = RunSpec::new(dir.path(), ["/bin/true"]);
    let mut sink = |_: Stream, _: &[u8]| {};
    let chroot_time = per_run(|| {
        chroot.run(&spec, &mut sink).unwrap();
    });

    // In-place mode runs the host's own `true` in `/`: it changes nothing.
    let in_place = Sandbox::new(&SandboxOptions {
        isolation: Isolation::InPlace,
        disposable_container: true,
        scratch_dir: None,
    })
    .unwrap();
    let spec = RunSpec::new(
        Path::new("/"),
        [busybox.as_os_str().to_owned(), "true".into()],
    );
    let in_place_time = per_run(|| {
        in_place.run(&spec, &mut sink).unwrap();
    });

    let probe = per_run(|| kiln_sandbox::probe_namespaces(None).unwrap());

    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let ratio = |d: Duration| d.as_secs_f64() / baseline.as_secs_f64();
    println!("RUN overhead, mean of {RUNS} runs of `true` (busybox):");
    println!("  baseline fork+exec      {:8.3} ms", ms(baseline));
    println!(
        "  chroot mode             {:8.3} ms  ({:.1}x baseline)",
        ms(chroot_time),
        ratio(chroot_time)
    );
    println!(
        "  in-place mode           {:8.3} ms  ({:.1}x baseline)",
        ms(in_place_time),
        ratio(in_place_time)
    );
    println!(
        "  namespace probe (once)  {:8.3} ms  ({:.1}x baseline)",
        ms(probe),
        ratio(probe)
    );
}
