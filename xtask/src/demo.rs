//! `cargo xtask demo`: kiln's main job on the bundled example, offline.
//!
//! Builds kiln, lays out `fixtures/demo` as a build context with a busybox
//! root filesystem beside it (made from Debian's busybox-static, so no
//! registry or network is needed), builds the multi-stage Dockerfile into an
//! OCI layout under `target/demo/image`, then unpacks the image and runs its
//! command in a container to show the result.

use crate::scenario::{ContainerSpec, run_container, unpack_layout};
use crate::util::{cargo, run as run_cmd, target_dir, workspace_root};
use anyhow::{Result, ensure};
use std::process::Command;

pub fn run(args: &[String]) -> Result<()> {
    ensure!(args.is_empty(), "usage: cargo xtask demo");
    let root = workspace_root();
    run_cmd(cargo().args(["build", "--locked", "--package", "kiln"]))?;
    let kiln = target_dir().join("debug/kiln");
    let out = target_dir().join("demo");
    if out.exists() {
        fs_err::remove_dir_all(&out)?;
    }
    let context = out.join("context");
    fs_err::create_dir_all(&context)?;
    for file in ["Dockerfile", "hello.sh"] {
        fs_err::copy(root.join("fixtures/demo").join(file), context.join(file))?;
    }
    fs_err::write(
        context.join("rootfs.tar"),
        kiln_testkit::busybox::rootfs_tar(),
    )?;
    let layout = out.join("image");
    run_cmd(
        Command::new(&kiln)
            .arg("build")
            .arg("--context")
            .arg(&context)
            .arg("--no-push")
            .arg("--oci-layout-path")
            .arg(&layout)
            .arg("--kaniko-dir")
            .arg(out.join("work"))
            .arg("--build-arg")
            .arg("VERSION=2.0"),
    )?;
    let bundle = out.join("bundle");
    let env = unpack_layout(&layout, &bundle)?;
    let (status, output) = run_container(&ContainerSpec {
        rootfs: bundle.join("rootfs"),
        binds: vec![],
        env,
        cwd: "/home/demo".into(),
        argv: vec!["/usr/local/bin/hello".into()],
        privileged: false,
    })?;
    ensure!(status.success(), "running the image failed: {output}");
    println!("the image at {} says: {}", layout.display(), output.trim());
    println!("inspect it with: skopeo inspect oci:{}", layout.display());
    Ok(())
}
