//! `cargo xtask image [--push REF]`: kiln's own executor images, built by
//! kiln from `images/executor/Dockerfile`.
//!
//! Steps: build kiln as a static binary, lay out the context (binary, CA
//! bundle, static busybox with its applet links, the container marker, and for
//! the debug image Debian's static QEMU user emulators for arm64 and amd64,
//! [`EMULATORS`], which land in kiln's default `--emulator` dir), then
//! run that kiln twice (`--target executor` and `--target debug`) writing
//! OCI layouts under `target/images/`. With `--push REF` the same builds also
//! push `REF` and `REF:debug`-style tags (the debug tag is REF's tag with a
//! `-debug` suffix, or `debug` when REF has no tag).

use crate::util::{
    MissingTool, cargo, ensure_static, output, run as run_cmd, target_dir, workspace_root,
};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The QEMU user emulators the debug image ships in `/kaniko/emulators`
/// (kiln_sandbox::DEFAULT_EMULATOR_DIR), by QEMU's architecture name, taken
/// from the host's Debian qemu-user-static (`.ci/install-deps` installs it).
pub const EMULATORS: [&str; 2] = ["aarch64", "x86_64"];

/// The two images, as OCI layouts.
pub struct Images {
    pub executor: PathBuf,
    pub debug: PathBuf,
}

pub fn run(args: &[String]) -> Result<()> {
    let push = match args {
        [] => None,
        [flag, reference] if flag == "--push" => Some(reference.as_str()),
        _ => bail!("usage: cargo xtask image [--push REF]"),
    };
    let images = build(push, &[])?;
    eprintln!(
        "xtask image: wrote {} and {}",
        images.executor.display(),
        images.debug.display()
    );
    Ok(())
}

/// Builds the static binary and both images; pushes them when `push` is given.
/// `env` is added to kiln's environment (credentials, CA files).
pub fn build(push: Option<&str>, env: &[(String, String)]) -> Result<Images> {
    let root = workspace_root();
    let kiln = static_kiln()?;
    let out = target_dir().join("images");
    let context = out.join("context");
    prepare_context(&context, &kiln)?;
    let work = out.join("work");
    let executor = out.join("executor");
    let debug = out.join("executor-debug");
    for (target, layout, tag) in [
        ("executor", &executor, push.map(str::to_string)),
        ("debug", &debug, push.map(debug_tag)),
    ] {
        if layout.exists() {
            fs_err::remove_dir_all(layout)?;
        }
        let mut cmd = Command::new(&kiln);
        cmd.envs(env.iter().map(|(k, v)| (k, v)));
        cmd.arg("build")
            .arg("--context")
            .arg(&context)
            .arg("--dockerfile")
            .arg(root.join("images/executor/Dockerfile"))
            .arg("--target")
            .arg(target)
            .arg("--oci-layout-path")
            .arg(layout)
            .arg("--kaniko-dir")
            .arg(&work)
            .arg("--reproducible");
        match tag {
            Some(tag) => cmd.arg("--destination").arg(tag),
            None => cmd.arg("--no-push"),
        };
        run_cmd(&mut cmd)?;
    }
    Ok(Images { executor, debug })
}

/// `host/repo:tag` -> `host/repo:tag-debug`; `host/repo` -> `host/repo:debug`.
pub fn debug_tag(reference: &str) -> String {
    let name_end = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[name_end..].rfind(':') {
        Some(_) => format!("{reference}-debug"),
        None => format!("{reference}:debug"),
    }
}

/// Builds kiln with a statically linked C runtime (glibc's static-pie).
pub fn static_kiln() -> Result<PathBuf> {
    let triple = "x86_64-unknown-linux-gnu";
    run_cmd(
        cargo()
            .args([
                "build",
                "--release",
                "--locked",
                "--package",
                "kiln",
                "--target",
                triple,
            ])
            .env("RUSTFLAGS", "-C target-feature=+crt-static"),
    )?;
    let binary = target_dir().join(format!("{triple}/release/kiln"));
    ensure_static(&binary)?;
    Ok(binary)
}

fn prepare_context(context: &Path, kiln: &Path) -> Result<()> {
    if context.exists() {
        fs_err::remove_dir_all(context)?;
    }
    fs_err::create_dir_all(context.join("docker"))?;
    fs_err::copy(kiln, context.join("kiln"))?;
    fs_err::copy(
        "/etc/ssl/certs/ca-certificates.crt",
        context.join("ca-certificates.crt"),
    )
    .context("the CA bundle comes from Debian's ca-certificates")?;
    fs_err::write(
        context.join("kiln-container"),
        "This file marks kiln's own disposable container image.\n",
    )?;
    fs_err::create_dir_all(context.join("bin"))?;
    std::os::unix::fs::symlink("/busybox/sh", context.join("bin/sh"))?;
    // kaniko's warmer path: the same binary answers to the name `warmer`. In a
    // directory, so that COPY keeps it a link (a named source is followed).
    fs_err::create_dir_all(context.join("links"))?;
    std::os::unix::fs::symlink("executor", context.join("links/warmer"))?;
    let busybox_dir = context.join("busybox");
    fs_err::create_dir_all(&busybox_dir)?;
    let busybox = Path::new("/usr/bin/busybox");
    if !busybox.exists() {
        return Err(MissingTool {
            tool: busybox.display().to_string(),
        }
        .into());
    }
    fs_err::copy(busybox, busybox_dir.join("busybox"))?;
    let emulators = context.join("emulators");
    fs_err::create_dir_all(&emulators)?;
    for arch in EMULATORS {
        let name = format!("qemu-{arch}-static");
        let host = Path::new("/usr/bin").join(&name);
        if !host.exists() {
            return Err(MissingTool {
                tool: host.display().to_string(),
            }
            .into());
        }
        // Into the image: a dynamically linked one would not run there.
        crate::util::ensure_static(&host)?;
        fs_err::copy(&host, emulators.join(&name))?;
    }
    let list = output(Command::new(busybox).arg("--list"))?;
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            std::os::unix::fs::symlink("busybox", busybox_dir.join(applet))
                .with_context(|| format!("linking applet {applet}"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::debug_tag;

    #[test]
    fn debug_tags() {
        assert_eq!(
            debug_tag("r:5000/kiln/executor:v1"),
            "r:5000/kiln/executor:v1-debug"
        );
        assert_eq!(
            debug_tag("r:5000/kiln/executor"),
            "r:5000/kiln/executor:debug"
        );
    }
}
