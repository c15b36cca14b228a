//! Pulls a pushed image back with independent tools: skopeo copies it into an
//! OCI layout, `umoci raw unpack` unpacks the rootfs (as root, owners and
//! xattrs kept), and
//! `skopeo inspect --config` gives the config as pushed.

use anyhow::{Context, Result, ensure};
use std::path::{Path, PathBuf};
use std::process::Command;

/// An image unpacked on disk.
pub struct Pulled {
    pub rootfs: PathBuf,
    pub config: serde_json::Value,
}

/// Pulls `reference` (`HOST/REPO:TAG`, plain HTTP) into `dir` and unpacks it.
pub fn pull(reference: &str, dir: &Path) -> Result<Pulled> {
    fs_err::create_dir_all(dir)?;
    let layout = dir.join("layout");
    run(Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{reference}"))
        .arg(format!("oci:{}:t", layout.display())))?;
    // `raw unpack`: the rootfs only. Plain `unpack` also generates a runtime
    // config and fails on a USER that /etc/passwd lacks (Dockerfile_test_user).
    let rootfs = dir.join("rootfs");
    run(Command::new("umoci")
        .args(["raw", "unpack", "--image"])
        .arg(format!("{}:t", layout.display()))
        .arg(&rootfs))?;
    let config = run(Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--config", "--raw"])
        .arg(format!("docker://{reference}")))?;
    let config = serde_json::from_slice(&config)
        .with_context(|| format!("parsing the config of {reference}"))?;
    fs_err::remove_dir_all(&layout)?;
    Ok(Pulled { rootfs, config })
}

fn run(cmd: &mut Command) -> Result<Vec<u8>> {
    let out = crate::util::output(cmd).with_context(|| format!("running {cmd:?}"))?;
    ensure!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(out.stdout)
}
