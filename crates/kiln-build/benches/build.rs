//! Build-time benchmark: the same Dockerfile (busybox rootfs ADDed to scratch,
//! COPY of a small tree, three RUN steps) built by kiln and by buildah 1.28 in
//! the same run, each into an OCI layout. Prints both wall times and the ratio.
//! Needs root, /usr/bin/buildah and /usr/bin/busybox.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const DOCKERFILE: &str = r#"FROM scratch
ADD rootfs.tar /
COPY tree/ /opt/tree/
RUN for i in $(seq 1 200); do echo "line $i" >> /opt/generated.txt; done
RUN mkdir -p /var/data && cp -r /opt/tree /var/data/copy
RUN rm -rf /opt/tree/dir-0 && echo done > /done
"#;

fn context(dir: &Path) {
    fs_err::write(dir.join("Dockerfile"), DOCKERFILE).unwrap();
    fs_err::write(dir.join("rootfs.tar"), kiln_testkit::busybox::rootfs_tar()).unwrap();
    for d in 0..20 {
        let sub = dir.join(format!("tree/dir-{d}"));
        fs_err::create_dir_all(&sub).unwrap();
        for f in 0..25 {
            fs_err::write(
                sub.join(format!("file-{f}.txt")),
                format!("{d}/{f}\n").repeat(40),
            )
            .unwrap();
        }
    }
}

fn kiln_once(ctx: &Path, work: &Path) -> Duration {
    let mut options =
        kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(ctx.to_path_buf()));
    options.kaniko_dir = work.join("kiln");
    options.no_push = true;
    options.oci_layout_path = Some(work.join("kiln-layout"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let start = Instant::now();
    runtime
        .block_on(kiln_build::build(&options, &kiln_build::NoopObserver))
        .expect("kiln build");
    start.elapsed()
}

fn buildah_once(ctx: &Path, work: &Path) -> Duration {
    let buildah = Path::new("/usr/bin/buildah");
    assert!(
        buildah.is_file(),
        "needs /usr/bin/buildah: install with .ci/install-deps"
    );
    let root = work.join("buildah");
    let run = |args: &[&str]| {
        let out = Command::new(buildah)
            .arg("--root")
            .arg(root.join("storage"))
            .arg("--runroot")
            .arg(root.join("runroot"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "buildah {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ctx_text = ctx.display().to_string();
    let layout = format!("oci:{}:latest", work.join("buildah-layout").display());
    let start = Instant::now();
    run(&[
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "--format",
        "oci",
        "-f",
        &format!("{ctx_text}/Dockerfile"),
        "-t",
        "localhost/bench:1",
        &ctx_text,
    ]);
    run(&["push", "localhost/bench:1", &layout]);
    start.elapsed()
}

fn main() {
    let ctx = tempfile::tempdir().unwrap();
    context(ctx.path());
    let rounds = 3;
    let mut kiln = Vec::new();
    let mut buildah = Vec::new();
    for _ in 0..rounds {
        let work = tempfile::tempdir().unwrap();
        kiln.push(kiln_once(ctx.path(), work.path()));
        let work = tempfile::tempdir().unwrap();
        buildah.push(buildah_once(ctx.path(), work.path()));
    }
    kiln.sort();
    buildah.sort();
    let (k, b) = (kiln[rounds / 2], buildah[rounds / 2]);
    println!("build (ADD rootfs, COPY 500 files, 3 RUN) -> OCI layout, median of {rounds}");
    println!("  kiln    {:>8.3} s", k.as_secs_f64());
    println!(
        "  buildah {:>8.3} s  (bud --layers=false + push to oci:)",
        b.as_secs_f64()
    );
    println!(
        "  ratio   {:>8.2}x (buildah / kiln)",
        b.as_secs_f64() / k.as_secs_f64()
    );
}
