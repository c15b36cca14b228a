//! What every family shares: the kiln binary (built once, debug), a real
//! registry on 127.0.0.1 holding the busybox base image, a temp dir for
//! contexts and `--kaniko-dir`s, and the kiln command line of a build.

use super::proc::{self, Finished};
use crate::util::{cargo, run as run_cmd, target_dir};
use anyhow::{Context, Result, ensure};
use kiln_testkit::{FixtureImage, Registry};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub struct Rig {
    pub registry: Registry,
    pub kiln: PathBuf,
    /// `HOST:PORT/chaos/base:1`, busybox.
    pub base: String,
    work: tempfile::TempDir,
}

/// One kiln build's command line.
#[derive(Debug, Clone, Default)]
pub struct Build {
    pub context: PathBuf,
    pub kaniko_dir: PathBuf,
    pub destination: Option<String>,
    pub cache_repo: Option<String>,
    pub digest_file: Option<PathBuf>,
    pub extra: Vec<String>,
}

impl Rig {
    pub fn start() -> Result<Rig> {
        run_cmd(cargo().args(["build", "-p", "kiln", "--locked"]))?;
        let kiln = target_dir().join("debug/kiln");
        ensure!(kiln.is_file(), "{} was not built", kiln.display());
        let registry = Registry::start_plain();
        let base = format!("{}/chaos/base:1", registry.host_port());
        FixtureImage::busybox()
            .push(&registry, "chaos/base:1", None)
            .map_err(|e| anyhow::anyhow!("pushing the base image: {e}"))?;
        let work = tempfile::Builder::new().prefix("kiln-chaos-").tempdir()?;
        Ok(Rig {
            registry,
            kiln,
            base,
            work,
        })
    }

    /// A fresh directory `name` in the run's temp dir.
    pub fn dir(&self, name: &str) -> Result<PathBuf> {
        let dir = self.work.path().join(name);
        if dir.exists() {
            fs_err::remove_dir_all(&dir)?;
        }
        fs_err::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// `HOST:PORT/REPO` in the rig's registry.
    pub fn image(&self, repo: &str) -> String {
        format!("{}/{repo}", self.registry.host_port())
    }

    /// The kiln command for `build`.
    pub fn command(&self, build: &Build) -> Command {
        let mut cmd = Command::new(&self.kiln);
        cmd.arg("build")
            .arg(format!("--context={}", build.context.display()))
            .arg(format!("--kaniko-dir={}", build.kaniko_dir.display()))
            .args([
                "--insecure",
                "--insecure-pull",
                "--reproducible",
                "--verbosity=info",
            ]);
        match &build.destination {
            Some(d) => cmd.arg(format!("--destination={d}")),
            None => cmd.arg("--no-push"),
        };
        if let Some(repo) = &build.cache_repo {
            cmd.arg("--cache=true").arg(format!("--cache-repo={repo}"));
        }
        if let Some(file) = &build.digest_file {
            cmd.arg(format!("--digest-file={}", file.display()));
        }
        cmd.args(&build.extra);
        cmd
    }

    /// Runs `build` to completion (at most `deadline`), logging to `log`.
    pub fn run(&self, build: &Build, log: &Path, deadline: Duration) -> Result<Finished> {
        proc::run(&mut self.command(build), log, deadline)
    }
}

/// The digest a finished build wrote to its `--digest-file`.
pub fn read_digest(build: &Build) -> Result<String> {
    let file = build
        .digest_file
        .as_ref()
        .context("the build has no --digest-file")?;
    Ok(fs_err::read_to_string(file)?.trim().to_owned())
}

/// Waits until kiln's dir holds no build dir and an empty trash (the
/// background removers have finished), at most `deadline`.
pub fn wait_work_dirs_gone(kaniko_dir: &Path, deadline: Duration) -> Result<()> {
    let until = Instant::now() + deadline;
    loop {
        let left = leftovers(kaniko_dir)?;
        if left.is_empty() {
            return Ok(());
        }
        if Instant::now() >= until {
            anyhow::bail!(
                "after {deadline:?}, {} still holds {left:?}",
                kaniko_dir.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Build dirs and trash entries left in kiln's dir, and temp files in its blob store.
pub fn leftovers(kaniko_dir: &Path) -> Result<Vec<String>> {
    let mut left = Vec::new();
    if !kaniko_dir.exists() {
        return Ok(left);
    }
    for entry in fs_err::read_dir(kaniko_dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name.starts_with("build-") {
            left.push(name);
        }
    }
    for sub in ["trash", "blobs/tmp"] {
        let dir = kaniko_dir.join(sub);
        if dir.is_dir() {
            for entry in fs_err::read_dir(&dir)? {
                left.push(format!("{sub}/{}", entry?.file_name().to_string_lossy()));
            }
        }
    }
    Ok(left)
}

/// A digest of a directory tree (paths, types, modes, sizes, contents), to
/// show it was not changed.
pub fn tree_digest(root: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt;
    let mut listing = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<_> = fs_err::read_dir(&dir)?.collect::<std::io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let meta = fs_err::symlink_metadata(&path)?;
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .display()
                .to_string();
            listing.extend_from_slice(
                format!("{rel} {:o} {} {}\n", meta.mode(), meta.len(), meta.mtime()).as_bytes(),
            );
            if meta.is_dir() {
                stack.push(path);
            } else if meta.is_file() {
                listing.extend_from_slice(
                    kiln_oci::Digest::sha256_of(&fs_err::read(&path)?)
                        .to_string()
                        .as_bytes(),
                );
            }
        }
    }
    Ok(kiln_oci::Digest::sha256_of(&listing).to_string())
}
