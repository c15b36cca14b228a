//! `kiln build --custom-platform linux/amd64,linux/arm64` through the real binary, for
//! the two ways an arm64 RUN is emulated on this amd64 machine:
//! - kiln registers `--emulator /usr/bin/qemu-aarch64-static` in its own user namespace,
//!   with kiln started without root (uid 65534 through setpriv, caller-only id map);
//! - a handler registered "on the host" with the F flag and no `--emulator`: the host kiln
//!   sees is a user and mount namespace the test makes (identity id maps, as root), with
//!   its own binfmt_misc instance mounted at /proc/sys/fs/binfmt_misc, so the real host's
//!   binfmt_misc is never touched while other builds run on this machine.
//!
//! The context holds an amd64 and an arm64 busybox rootfs; `ADD rootfs-$TARGETARCH.tar /`
//! picks one per platform and `RUN uname -m > /arch` records who ran it. The OCI layout
//! holds the index; each platform's layer holds its own architecture's answer.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::text;
use kiln_testkit::foreign::{arm64_rootfs_tar, qemu_user_static};
use kiln_testkit::rootless::{command_as, give_tree};

const DOCKERFILE: &str = "\
FROM scratch
ARG TARGETARCH
ADD rootfs-$TARGETARCH.tar /
RUN uname -m > /arch && echo \"ran on $(uname -m)\"
";

/// A temp dir (0755) holding `ctx/` with both rootfs tars and the Dockerfile.
fn context() -> tempfile::TempDir {
    assert_eq!(
        kiln_testkit::image::host_architecture(),
        "amd64",
        "these tests expect an amd64 host (arm64 is the emulated platform)"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ctx = dir.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("rootfs-amd64.tar"),
        kiln_testkit::busybox::rootfs_tar(),
    )
    .unwrap();
    std::fs::write(ctx.join("rootfs-arm64.tar"), arm64_rootfs_tar()).unwrap();
    std::fs::write(ctx.join("Dockerfile"), DOCKERFILE).unwrap();
    dir
}

/// The build's arguments: both platforms, no push, the layout in `dir/out`.
fn build_args(dir: &Path) -> Vec<String> {
    vec![
        "build".into(),
        format!("--context={}", dir.join("ctx").display()),
        "--custom-platform=linux/amd64".into(),
        "--platform=linux/arm64".into(),
        "--no-push".into(),
        format!("--oci-layout-path={}", dir.join("out").display()),
        format!("--kaniko-dir={}", dir.join("work").display()),
    ]
}

/// Each platform's `/arch` from the layout's index, by architecture.
fn arch_files(layout: &Path) -> Vec<(String, String)> {
    let blob = |d: &str| -> PathBuf {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let json = |p: PathBuf| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let top = json(layout.join("index.json"));
    let index = json(blob(top["manifests"][0]["digest"].as_str().unwrap()));
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let manifest = json(blob(m["digest"].as_str().unwrap()));
            let layers = manifest["layers"].as_array().unwrap();
            let last = blob(layers[layers.len() - 1]["digest"].as_str().unwrap());
            let out = Command::new("tar")
                .arg("-xzOf")
                .arg(&last)
                .arg("arch")
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", text(&out));
            (
                m["platform"]["architecture"].as_str().unwrap().to_owned(),
                String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            )
        })
        .collect()
}

fn expected() -> Vec<(String, String)> {
    vec![
        ("amd64".into(), "x86_64".into()),
        ("arm64".into(), "aarch64".into()),
    ]
}

#[test]
fn kiln_without_root_registers_the_emulator_it_is_given() {
    // SAFETY: trivial getter.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "needs root to set up the unprivileged user (CI runs as root)"
    );
    kiln_testkit::foreign::assert_no_host_handler("aarch64");
    let dir = context();
    let kiln = dir.path().join("kiln");
    std::fs::copy(common::kiln(), &kiln).unwrap();
    give_tree(dir.path(), 65534);
    let out = command_as(65534, &kiln)
        .args(build_args(dir.path()))
        .arg(format!(
            "--emulator={}",
            qemu_user_static("aarch64").display()
        ))
        .env("HOME", dir.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let log = text(&out);
    assert!(out.status.success(), "{log}");
    assert!(log.contains("ran on aarch64"), "{log}");
    assert!(log.contains("[stage 1/1 linux/arm64/v8] STEP"), "{log}");
    assert!(log.contains("built image index sha256:"), "{log}");
    assert!(log.contains("of 2 platforms (linux/amd64 sha256:"), "{log}");
    assert_eq!(arch_files(&dir.path().join("out")), expected());
}

#[test]
fn a_handler_registered_with_the_f_flag_needs_no_emulator() {
    let default = Path::new(kiln_sandbox::DEFAULT_EMULATOR_DIR).join("qemu-aarch64-static");
    assert!(
        !default.exists(),
        "{} exists: this test cannot show that the registered handler alone is enough",
        default.display()
    );
    qemu_user_static("aarch64");
    let dir = context();
    let args: Vec<String> = build_args(dir.path())
        .iter()
        .map(|a| format!("'{a}'"))
        .collect();
    let log = dir.path().join("log");
    let script = format!(
        "set -e\n\
         mount -t binfmt_misc binfmt_misc {binfmt}\n\
         printf '%s' '{registration}' > {binfmt}/register\n\
         RUST_LOG= '{kiln}' {args} > '{log}' 2>&1 || {{ cat '{log}'; exit 1; }}\n",
        binfmt = kiln_sandbox::HOST_BINFMT_MISC,
        registration = kiln_testkit::foreign::AARCH64_REGISTRATION,
        kiln = common::kiln(),
        args = args.join(" "),
        log = log.display(),
    );
    kiln_testkit::foreign::in_private_binfmt_namespace(&script);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("ran on aarch64"), "{log}");
    assert_eq!(arch_files(&dir.path().join("out")), expected());
}

#[test]
fn the_executor_name_also_runs_kiln_manifest() {
    // kiln's image has only /kaniko/executor: the multi-job GitLab example runs
    // `/kaniko/executor manifest create`.
    let dir = tempfile::tempdir().unwrap();
    let executor = dir.path().join("executor");
    std::os::unix::fs::symlink(common::kiln(), &executor).unwrap();
    let out = common::run(&executor, &["manifest", "--help"]);
    assert!(out.status.success(), "{}", text(&out));
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(
        page.contains("create") && page.contains("inspect"),
        "{page}"
    );
    let out = common::run(&executor, &["manifest", "inspect"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
}
