//! `diskfull`: `--kaniko-dir` on a small tmpfs (mounted here, as root, and
//! unmounted after) that fills while a base layer is unpacked, while a RUN
//! writes, and while a layer is encoded. Each build must fail with one error
//! naming the full directory and what was being written ("No space left on
//! device"), and leave the context and the registry as they were.

use super::check;
use super::rig::{Build, Rig, tree_digest};
use super::rng::Rng;
use super::{Scale, Tally};
use anyhow::{Context, Result, bail, ensure};
use kiln_testkit::{FixtureImage, FixtureLayer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const SIZE: &str = "16m";

/// A tmpfs mounted on a directory, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Result<Tmpfs> {
        // SAFETY: geteuid has no preconditions.
        ensure!(
            unsafe { libc::geteuid() } == 0,
            "diskfull needs root to mount a tmpfs; run as root"
        );
        let out = crate::util::output(
            Command::new("mount")
                .args([
                    "-t",
                    "tmpfs",
                    "-o",
                    &format!("size={SIZE},mode=0755"),
                    "tmpfs",
                ])
                .arg(dir),
        )?;
        ensure!(
            out.status.success(),
            "mount tmpfs on {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // kiln's background remover may still be emptying it: retry, then detach.
        for _ in 0..50 {
            if Command::new("umount")
                .arg(&self.0)
                .status()
                .is_ok_and(|s| s.success())
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

struct Case {
    name: &'static str,
    dockerfile: String,
    /// Words the error must contain besides the directory.
    says: &'static [&'static str],
}

pub fn run(rig: &Rig, scale: Scale) -> Result<Tally> {
    let mut rng = Rng::for_family(scale.seed, "diskfull");
    // A base whose second layer is 64 MiB of zeros: a small download that
    // cannot be unpacked into 16 MiB.
    let zeros = {
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(64 << 20);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(
            &mut header,
            "zeros.bin",
            std::io::Read::take(std::io::repeat(0), 64 << 20),
        )?;
        tar.into_inner()?
    };
    let busybox = FixtureLayer::from_tar(&kiln_testkit::busybox::rootfs_tar(), true);
    FixtureImage::from_layers(vec![busybox, FixtureLayer::from_tar(&zeros, true)], &["sh"])
        .push(&rig.registry, "chaos/zeros:1", None)
        .map_err(|e| anyhow::anyhow!("pushing the zeros image: {e}"))?;
    let fill = 9 + rng.below(3);
    let cases = [
        Case {
            name: "unpack",
            dockerfile: format!("FROM {}\nRUN true\n", rig.image("chaos/zeros:1")),
            says: &["No space left on device"],
        },
        Case {
            name: "RUN",
            dockerfile: format!(
                "FROM {}\nRUN dd if=/dev/zero of=/fill bs=1M count=64\n",
                rig.base
            ),
            says: &["No space left on device"],
        },
        Case {
            name: "encoding",
            dockerfile: format!(
                "FROM {}\nRUN head -c {fill}000000 /dev/urandom > /random\n",
                rig.base
            ),
            says: &["No space left on device"],
        },
    ];
    let mut tally = Tally::default();
    for case in &cases {
        let outcome = one_case(rig, case);
        tally.record(&format!("disk full during {}", case.name), outcome);
    }
    Ok(tally)
}

fn one_case(rig: &Rig, case: &Case) -> Result<()> {
    let context = rig.dir(&format!("diskfull-{}-context", case.name.to_lowercase()))?;
    fs_err::write(context.join("Dockerfile"), &case.dockerfile)?;
    fs_err::write(context.join("keep.txt"), "the context must stay as it is\n")?;
    let mount_point = rig.dir(&format!("diskfull-{}-tmpfs", case.name.to_lowercase()))?;
    let _tmpfs = Tmpfs::mount(&mount_point)?;
    let kaniko_dir = mount_point.join("kaniko");
    let context_before = tree_digest(&context)?;
    let host = rig.registry.host_port();
    let tags_before = check::tags(&host)?;
    let destination = format!("chaos/diskfull:{}", case.name.to_lowercase());
    let build = Build {
        context: context.clone(),
        kaniko_dir: kaniko_dir.clone(),
        destination: Some(rig.image(&destination)),
        ..Build::default()
    };
    let log = rig.dir("diskfull-logs")?.join(format!("{}.log", case.name));
    let done = rig.run(&build, &log, Duration::from_secs(300))?;
    ensure!(!done.success(), "the build succeeded on a full disk");
    ensure!(
        done.code == Some(1),
        "exit {:?}/{:?}, not 1",
        done.code,
        done.signal
    );
    let error = done
        .log
        .lines()
        .find(|l| l.contains("build failed"))
        .with_context(|| format!("no `build failed` line:\n    {}", done.tail()))?;
    let dir = mount_point.display().to_string();
    if !error.contains(&dir) || case.says.iter().any(|w| !error.contains(w)) {
        bail!("the error does not name {dir} and {:?}: {error}", case.says);
    }
    ensure!(
        tree_digest(&context)? == context_before,
        "the context changed"
    );
    let tags_after = check::tags(&host)?;
    ensure!(tags_after == tags_before, "the registry's tags changed");
    // The failed build's dir is removed (and with it whatever filled the disk).
    super::rig::wait_work_dirs_gone(&kaniko_dir, Duration::from_secs(30))?;
    Ok(())
}
