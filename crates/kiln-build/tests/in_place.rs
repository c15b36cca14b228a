//! kaniko's in-place model end to end. The test re-executes itself under
//! `unshare --mount --pid --fork`, pivots into a busybox rootfs copy that
//! plays kiln's own container image (it has `/kaniko/.kiln-container`), drops
//! the capabilities Docker does not grant by default (so namespaces, and
//! chroot isolation, are impossible), and builds a two-stage Dockerfile with
//! `Isolation::Auto`: kiln-sandbox picks in-place mode and every stage is
//! built in `/`; a RUN links names to files of the base, a COPY and an earlier
//! RUN. The outer process then checks the OCI layout with umoci (hard link
//! groups included), and that a chroot build (overlay snapshots) gives the same
//! digest as the in-place one (walk snapshots).
//! Needs root, as in CI.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const DOCKERFILE: &str = "FROM scratch AS base
ADD rootfs.tar /
RUN echo stage1 > /s1.txt

FROM base
COPY data.txt /data.txt
RUN cat /s1.txt /data.txt > /both.txt && rm /bin/vi
RUN ln /etc/passwd /etc/passwd.link && ln /data.txt /tmp/data.link && ln /both.txt /both.link
";

/// Names a RUN linked to files of the base (ADD), a COPY and an earlier RUN: each
/// pair must be one hard link group in the image.
const LINKED: [[&str; 2]; 3] = [
    ["etc/passwd", "etc/passwd.link"],
    ["data.txt", "tmp/data.link"],
    ["both.txt", "both.link"],
];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--inner") {
        inner();
    } else {
        orchestrate();
    }
}

fn orchestrate() {
    let unshare = Path::new("/usr/bin/unshare");
    assert!(
        unshare.exists(),
        "needs /usr/bin/unshare (util-linux): install with .ci/install-deps"
    );
    let umoci = Path::new("/usr/bin/umoci");
    assert!(
        umoci.exists(),
        "needs /usr/bin/umoci: install with .ci/install-deps"
    );
    let container = kiln_testkit::busybox::BusyboxRootfs::create();
    let root = container.path();
    let kaniko = root.join("kaniko");
    fs_err::create_dir_all(kaniko.join("ctx")).unwrap();
    fs_err::write(kaniko.join(".kiln-container"), b"").unwrap();
    fs_err::write(kaniko.join("ctx/Dockerfile"), DOCKERFILE).unwrap();
    fs_err::write(kaniko.join("ctx/data.txt"), "data\n").unwrap();
    fs_err::write(
        kaniko.join("ctx/rootfs.tar"),
        kiln_testkit::busybox::rootfs_tar(),
    )
    .unwrap();

    let exe = std::env::current_exe().unwrap();
    let out = Command::new(unshare)
        .args(["--mount", "--pid", "--fork", "--propagation", "private"])
        .arg(&exe)
        .arg("--inner")
        .arg(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "the build inside the test container failed: {}\n{stdout}",
        out.status
    );
    assert!(stdout.contains("mode: in-place"), "{stdout}");
    // What stays: kiln's dir, the mounts, and the (emptied) parents of ignored
    // paths such as /etc/mtab and /var/run.
    assert!(
        stdout.contains("left after cleanup: dev,etc,kaniko,proc,sys,var\n"),
        "{stdout}"
    );

    let unpacked = tempfile::tempdir().unwrap();
    let bundle = unpacked.path().join("bundle");
    let status = Command::new(umoci)
        .args(["unpack", "--image"])
        .arg(format!("{}:latest", kaniko.join("out").display()))
        .arg(&bundle)
        .status()
        .unwrap();
    assert!(status.success(), "umoci unpack failed");
    let rootfs = bundle.join("rootfs");
    assert_eq!(
        fs_err::read_to_string(rootfs.join("both.txt")).unwrap(),
        "stage1\ndata\n"
    );
    assert!(rootfs.join("bin/busybox").is_file());
    assert!(
        !rootfs.join("bin/vi").exists(),
        "the deletion is in the image"
    );
    assert!(
        !rootfs.join("kaniko").exists(),
        "kiln's own dir leaked into the image"
    );
    for [old, new] in LINKED {
        let inode = |p: &str| {
            let m = fs_err::symlink_metadata(rootfs.join(p)).unwrap();
            (m.dev(), m.ino())
        };
        assert_eq!(
            inode(old),
            inode(new),
            "{old} and {new}: one hard link group"
        );
    }

    // The same build in chroot mode (outside the container) gives the same image.
    let inner_digest = stdout
        .lines()
        .find_map(|l| l.strip_prefix("built "))
        .expect("the inner build printed its digest")
        .to_string();
    let work = tempfile::tempdir().unwrap();
    let mut options =
        kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(kaniko.join("ctx")));
    options.kaniko_dir = work.path().join("kiln");
    options.no_push = true;
    options.reproducible = true;
    options.isolation = kiln_build::Isolation::Chroot;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(kiln_build::build(&options, &kiln_build::NoopObserver))
        .unwrap();
    assert_eq!(
        outcome.digest, inner_digest,
        "in-place and chroot builds differ"
    );
    println!("in_place: two-stage build in / of an emulated container equals the chroot build: ok");
}

/// Makes this process (pid 1 of new pid + mount namespaces) a default
/// Docker-like container rooted at `root` (kiln-testkit's emulation).
fn enter_container(root: &Path) {
    kiln_testkit::container::enter(&kiln_testkit::container::ContainerSetup {
        rootfs: root.to_path_buf(),
        ..Default::default()
    })
    .expect("entering the emulated container");
}

fn inner() {
    let root = PathBuf::from(std::env::args().nth(2).unwrap());
    enter_container(&root);
    let mode = kiln_sandbox::Sandbox::new(&kiln_sandbox::SandboxOptions::default())
        .map(|s| s.mode())
        .expect("kiln-sandbox picks a mode in kiln's container");
    println!(
        "mode: {}",
        if mode == kiln_sandbox::Mode::InPlace {
            "in-place"
        } else {
            "chroot"
        }
    );

    let mut options =
        kiln_build::BuildOptions::new(kiln_build::ContextSource::Dir(PathBuf::from("/kaniko/ctx")));
    options.kaniko_dir = PathBuf::from("/kaniko");
    options.no_push = true;
    options.oci_layout_path = Some(PathBuf::from("/kaniko/out"));
    options.reproducible = true;
    options.cleanup = true;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let observer = |e: &kiln_build::BuildEvent| {
        if let kiln_build::BuildEvent::StepStarted { id, text } = e {
            println!("{id}: {text}");
        }
    };
    match runtime.block_on(kiln_build::build(&options, &observer)) {
        Ok(outcome) => {
            println!("built {}", outcome.digest);
            // --cleanup cleared / again, all but kiln's dir and the mounts.
            let left: Vec<String> = fs_err::read_dir("/")
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            println!("left after cleanup: {}", {
                let mut l = left;
                l.sort();
                l.join(",")
            });
        }
        Err(e) => {
            println!("build failed: {e}");
            std::process::exit(1);
        }
    }
}
