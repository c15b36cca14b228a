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

/// Fixed mtime for the Debian tar entries (2024-01-01T00:00:00Z), so the tar
/// and the image made from it are the same on every run.
const DEBIAN_MTIME: &str = "@1704067200";

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
                let tar = debian_rootfs_tar(&self.cache_dir)?;
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
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--preserve-digests"])
        .args(["--src-tls-verify=false", "--dest-tls-verify=false"])
        .arg(format!("docker://{host}/{source}"))
        .arg(format!("docker://{host}/{dest}"))
        .output()
        .context("running skopeo copy")?;
    ensure!(
        out.status.success(),
        "skopeo copy {source} -> {dest}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The cached Debian bookworm minbase rootfs tar, made with debootstrap when missing.
fn debian_rootfs_tar(cache_dir: &Path) -> Result<PathBuf> {
    let tar = cache_dir.join("debian-rootfs.tar");
    if tar.exists() {
        return Ok(tar);
    }
    ensure!(
        Path::new("/usr/sbin/debootstrap").exists(),
        "needs debootstrap to make the Debian base image: apt-get install -y debootstrap"
    );
    let root = tempfile::Builder::new()
        .prefix("debian-rootfs-")
        .tempdir_in(cache_dir)?;
    eprintln!(
        "conformance: debootstrap --variant=minbase bookworm (once, cached in {})",
        tar.display()
    );
    let status = Command::new("debootstrap")
        .args(["--variant=minbase", "bookworm"])
        .arg(root.path())
        .arg("http://deb.debian.org/debian")
        .stdout(std::process::Stdio::null())
        .status()
        .context("running debootstrap")?;
    ensure!(status.success(), "debootstrap failed with {status}");
    trim_rootfs(root.path())?;
    let partial = cache_dir.join("debian-rootfs.tar.partial");
    let mut entries: Vec<String> = fs_err::read_dir(root.path())?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    entries.sort();
    let status = Command::new("tar")
        .args([
            "--sort=name",
            "--numeric-owner",
            "--xattrs",
            "--format=posix",
        ])
        .args(["--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime"])
        .arg(format!("--mtime={DEBIAN_MTIME}"))
        .arg("-C")
        .arg(root.path())
        .arg("-cf")
        .arg(&partial)
        .args(&entries)
        .status()
        .context("running tar")?;
    ensure!(
        status.success(),
        "tar of the Debian rootfs failed with {status}"
    );
    fs_err::rename(&partial, &tar)?;
    Ok(tar)
}

/// Removes what a published Debian image does not carry: apt lists and caches,
/// device nodes (the builders provide /dev), debootstrap's log.
fn trim_rootfs(root: &Path) -> Result<()> {
    for dir in ["var/lib/apt/lists", "var/cache/apt", "dev"] {
        let dir = root.join(dir);
        for entry in fs_err::read_dir(&dir)? {
            let path = entry?.path();
            if path.is_dir() && !path.is_symlink() {
                fs_err::remove_dir_all(&path)?;
            } else {
                fs_err::remove_file(&path)?;
            }
        }
    }
    let log = root.join("debootstrap");
    if log.exists() {
        fs_err::remove_dir_all(log)?;
    }
    Ok(())
}
