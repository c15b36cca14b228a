//! Checks on images with independent tools: skopeo pulls what kiln pushed,
//! umoci unpacks it, and the checks read the files and config from there.

use super::display;
use crate::util::output;
use anyhow::{Context, Result, bail, ensure};
use kiln_testkit::Registry;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An image pulled back and unpacked.
pub struct PulledImage {
    pub digest: String,
    config: serde_json::Value,
    rootfs: PathBuf,
    _dir: tempfile::TempDir,
}

/// Unpacks the single image of an OCI layout into `bundle` (with umoci) and
/// returns the image's Env, as a runner passes it to the job.
pub fn unpack_layout(layout: &Path, bundle: &Path) -> Result<Vec<(String, String)>> {
    let (reference, config) = read_layout(layout)?;
    let out = output(
        Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:{reference}", display(layout)))
            .arg(bundle),
    )?;
    ensure!(
        out.status.success(),
        "umoci unpack {}: {}",
        layout.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let env = config["config"]["Env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str()?.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Ok(env)
}

/// The ref name of the layout's only image, and its config.
fn read_layout(layout: &Path) -> Result<(String, serde_json::Value)> {
    let blob = |digest: &str| -> Result<serde_json::Value> {
        let hex = digest.strip_prefix("sha256:").context("sha256 digest")?;
        Ok(serde_json::from_slice(&fs_err::read(
            layout.join("blobs/sha256").join(hex),
        )?)?)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json"))?)?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json has manifests")?;
    ensure!(
        manifests.len() == 1,
        "{} holds {} images, expected one",
        layout.display(),
        manifests.len()
    );
    let entry = &manifests[0];
    let reference = entry["annotations"]["org.opencontainers.image.ref.name"]
        .as_str()
        .context("the layout's image has no ref name")?
        .to_string();
    let manifest = blob(entry["digest"].as_str().context("digest")?)?;
    let config = blob(
        manifest["config"]["digest"]
            .as_str()
            .context("config digest")?,
    )?;
    Ok((reference, config))
}

/// Pulls `repo_tag` from the registry with skopeo and unpacks it with umoci.
pub fn pull(registry: &Registry, repo_tag: &str, creds: (&str, &str)) -> Result<PulledImage> {
    let dir = tempfile::Builder::new().prefix("kiln-pulled-").tempdir()?;
    let layout = dir.path().join("layout");
    let source = format!("docker://{}/{repo_tag}", registry.host_port());
    let cert_dir = registry.tls().context("TLS registry")?.cert_dir();
    let out = output(
        Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg("--src-cert-dir")
            .arg(cert_dir)
            .arg("--src-creds")
            .arg(format!("{}:{}", creds.0, creds.1))
            .arg(&source)
            .arg(format!("oci:{}:pulled", display(&layout))),
    )?;
    ensure!(
        out.status.success(),
        "skopeo copy {source}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = super::skopeo(registry, creds, &["inspect", "--raw", &source])?;
    ensure!(raw.status.success(), "skopeo inspect {source} failed");
    let digest = kiln_testkit::image::sha256_digest(&raw.stdout);
    let bundle = dir.path().join("bundle");
    unpack_layout(&layout, &bundle)?;
    let (_, config) = read_layout(&layout)?;
    Ok(PulledImage {
        digest,
        config,
        rootfs: bundle.join("rootfs"),
        _dir: dir,
    })
}

/// The digest of the manifest `repo_tag` points at (`repo_tag` is `host/repo:tag`).
pub fn manifest_digest(registry: &Registry, repo_tag: &str, creds: (&str, &str)) -> Result<String> {
    let source = format!("docker://{repo_tag}");
    let raw = super::skopeo(registry, creds, &["inspect", "--raw", &source])?;
    ensure!(
        raw.status.success(),
        "skopeo inspect {source}: {}",
        String::from_utf8_lossy(&raw.stderr)
    );
    Ok(kiln_testkit::image::sha256_digest(&raw.stdout))
}

/// The digest of the single image in an OCI layout.
pub fn layout_manifest_digest(layout: &Path) -> Result<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&fs_err::read(layout.join("index.json"))?)?;
    Ok(index["manifests"][0]["digest"]
        .as_str()
        .context("index.json names no manifest")?
        .to_string())
}

/// The tag must not exist: a failed job pushes nothing.
pub fn expect_no_tag(registry: &Registry, repo_tag: &str, creds: (&str, &str)) -> Result<()> {
    let source = format!("docker://{}/{repo_tag}", registry.host_port());
    let out = super::skopeo(registry, creds, &["inspect", "--raw", &source])?;
    if out.status.success() {
        bail!("{source} exists, but the failed job must push nothing");
    }
    Ok(())
}

impl PulledImage {
    /// The file exists; with `content`, it has exactly that content.
    pub fn expect_file<'a>(&self, path: &str, content: impl Into<Option<&'a str>>) -> Result<()> {
        let full = self.rootfs.join(path);
        ensure!(
            full.symlink_metadata().is_ok(),
            "/{path} is missing from the image"
        );
        if let Some(expected) = content.into() {
            let got = fs_err::read_to_string(&full)?;
            ensure!(
                got == expected,
                "/{path} holds {got:?}, expected {expected:?}"
            );
        }
        Ok(())
    }

    pub fn expect_absent(&self, path: &str) -> Result<()> {
        ensure!(
            self.rootfs.join(path).symlink_metadata().is_err(),
            "/{path} must not be in the image"
        );
        Ok(())
    }

    pub fn expect_owner(&self, path: &str, uid: u32) -> Result<()> {
        let got = fs_err::symlink_metadata(self.rootfs.join(path))?.uid();
        ensure!(got == uid, "/{path} is owned by {got}, expected {uid}");
        Ok(())
    }

    pub fn expect_env(&self, entry: &str) -> Result<()> {
        let env = &self.config["config"]["Env"];
        ensure!(
            env.as_array().into_iter().flatten().any(|e| e == entry),
            "config Env {env} lacks {entry}"
        );
        Ok(())
    }

    pub fn expect_cmd(&self, cmd: &[&str]) -> Result<()> {
        let got = &self.config["config"]["Cmd"];
        ensure!(
            *got == serde_json::json!(cmd),
            "config Cmd is {got}, expected {cmd:?}"
        );
        Ok(())
    }

    pub fn expect_user(&self, user: &str) -> Result<()> {
        let got = &self.config["config"]["User"];
        ensure!(
            *got == serde_json::json!(user),
            "config User is {got}, expected {user:?}"
        );
        Ok(())
    }
}
