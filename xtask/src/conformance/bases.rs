//! The base images every case builds on, made offline and pushed to the
//! harness's local registry.
//!
//! Two images stand in for every external image of the corpus (see
//! [`super::images::base_for`]): the testkit busybox fixture, and a Debian
//! bookworm minbase made with debootstrap through the Debian package registry.
//! The Debian rootfs tar is cached in `<target>/conformance/debian-rootfs.tar`
//! so that only the first run pays for debootstrap (about 30 s).
//!
//! Each base is pushed once as `bases/<kind>:src`; every name a Dockerfile uses
//! (`debian:10.13`, `alpine:3.9`, ...) is then a tag copied from it with skopeo,
//! which finds the blobs already there and only writes the manifest.

use super::images::BaseKind;
use anyhow::{Context, Result, ensure};
use kiln_testkit::{FixtureImage, FixtureLayer, Registry};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where buildah's image of `Dockerfile_onbuild_base` is kept.
const ONBUILD_BASE: &str = "bases/onbuild-base:src";

/// The local registry and the base-image tags pushed to it so far.
pub struct Bases {
    registry: Registry,
    cache_dir: PathBuf,
    sources: BTreeSet<&'static str>,
    tags: BTreeSet<String>,
}

impl Bases {
    /// Starts a plain-HTTP registry on 127.0.0.1 (free port); bases are made on demand.
    pub fn start(cache_dir: &Path) -> Result<Bases> {
        fs_err::create_dir_all(cache_dir)?;
        Ok(Bases {
            registry: Registry::start_plain(),
            cache_dir: cache_dir.to_path_buf(),
            sources: BTreeSet::new(),
            tags: BTreeSet::new(),
        })
    }

    /// `127.0.0.1:PORT` of the registry.
    pub fn host(&self) -> String {
        self.registry.host_port()
    }

    /// Makes `HOST/<repo_tag>` hold the `kind` base image.
    pub fn ensure(&mut self, repo_tag: &str, kind: BaseKind) -> Result<()> {
        if self.tags.contains(repo_tag) {
            return Ok(());
        }
        let source = match kind {
            BaseKind::OnbuildBase => ONBUILD_BASE,
            _ => self.ensure_source(kind)?,
        };
        copy_tag(&self.host(), source, repo_tag)?;
        self.tags.insert(repo_tag.to_string());
        Ok(())
    }

    /// Whether `kind` can be provided now (a built base once its case ran).
    pub fn available(&self, kind: BaseKind) -> bool {
        kind != BaseKind::OnbuildBase || self.sources.contains(ONBUILD_BASE)
    }

    /// Adopts the image at `HOST/<repo_tag>` as the onbuild base.
    pub fn adopt_onbuild_base(&mut self, repo_tag: &str) -> Result<()> {
        copy_tag(&self.host(), repo_tag, ONBUILD_BASE)?;
        self.sources.insert(ONBUILD_BASE);
        Ok(())
    }

    /// Pushes the base image itself (once) and returns its `repo:tag`.
    fn ensure_source(&mut self, kind: BaseKind) -> Result<&'static str> {
        let name = match kind {
            BaseKind::Busybox => "bases/busybox:src",
            BaseKind::Debian => "bases/debian:src",
            BaseKind::OnbuildBase => ONBUILD_BASE,
        };
        if self.sources.contains(name) {
            return Ok(name);
        }
        let image = match kind {
            BaseKind::Busybox => FixtureImage::busybox(),
            BaseKind::OnbuildBase => anyhow::bail!("onbuild-base is not built yet"),
            BaseKind::Debian => {
                let tar = kiln_testkit::debian::rootfs_tar(&self.cache_dir)
                    .context("making the Debian base image")?;
                let bytes = fs_err::read(&tar)?;

                FixtureImage::from_layers(vec![FixtureLayer::from_tar(&bytes, false)], &["bash"])
            }
        };
        image
            .push(&self.registry, name, None)
            .with_context(|| format!("pushing base image {name}"))?;
        self.sources.insert(name);
        Ok(name)
    }
}

/// Copies `HOST/source` to `HOST/dest` (blobs already there; only the manifest moves).
fn copy_tag(host: &str, source: &str, dest: &str) -> Result<()> {
    let out = crate::util::output(
        Command::new("skopeo")
            .args(["copy", "--quiet", "--preserve-digests"])
            .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
            .arg(format!("docker://{host}/{source}"))
            .arg(format!("docker://{host}/{dest}")),
    )
    .context("running skopeo copy")?;
    ensure!(
        out.status.success(),
        "skopeo copy {source} -> {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
