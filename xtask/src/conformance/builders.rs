//! The builders (kiln and the reference, buildah or Docker), run on the same
//! rewritten Dockerfile and context copy, each pushing to the harness's registry. Every command runs under
//! coreutils `timeout` (which signals the whole process group) and its output
//! goes to a log file the report quotes on failure.

use super::corpus::Case;
use super::rewrite::BuildArg;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Per-builder time limit for one case.
pub const CASE_TIMEOUT: Duration = Duration::from_secs(300);

/// What one builder did with a case.
pub struct Outcome {
    pub success: bool,
    /// Exit status as text (`exit status: 1`, `timed out`).
    pub status: String,
    pub log: PathBuf,
}

/// The inputs both builders share.
pub struct Build<'a> {
    pub case: &'a Case,
    pub context: &'a Path,
    pub dockerfile: &'a Path,
    pub build_args: &'a [BuildArg],
    /// Scratch space for this builder and case.
    pub work: &'a Path,
    /// `HOST/REPO:TAG` to push to.
    pub destination: &'a str,
    /// More kiln flags (the cache cases' `--cache=true --cache-repo …`).
    pub kiln_flags: &'a [String],
}

/// `kiln build` with kaniko's flags.
pub fn kiln(kiln_bin: &Path, build: &Build<'_>) -> Result<Outcome> {
    let mut cmd = timeout_command(kiln_bin);
    cmd.arg("build")
        .arg("--context")
        .arg(build.context)
        .arg("--dockerfile")
        .arg(build.dockerfile)
        .arg("--destination")
        .arg(build.destination)
        .args(["--insecure", "--insecure-pull"])
        .arg("--kaniko-dir")
        .arg(build.work.join("kaniko"))
        .args(build.kiln_flags);
    common_args(&mut cmd, build);
    let log = build.work.join("kiln.log");
    run_logged(cmd, &log)
}

/// `buildah bud` then `buildah push` (TESTBED.md's invocation), then the
/// image is removed from buildah's storage to keep the vfs store small.
///
/// `--format docker`: with `--format oci` buildah drops HEALTHCHECK, SHELL
/// and ONBUILD from the config (the OCI config has no such fields); Docker
/// keeps them, so the docker format is the faithful reference.
pub fn buildah(storage: &Path, build: &Build<'_>) -> Result<Outcome> {
    let log = build.work.join("buildah.log");
    let base = |cmd: &mut Command| {
        cmd.arg("--root")
            .arg(storage.join("root"))
            .arg("--runroot")
            .arg(storage.join("runroot"))
            .args(["--storage-driver", "vfs"]);
    };
    let mut bud = timeout_command(Path::new("buildah"));
    base(&mut bud);
    bud.args([
        "bud",
        "--isolation",
        "chroot",
        "--layers=false",
        "--format",
        "docker",
    ])
    .arg("--tls-verify=false")
    .arg("-f")
    .arg(build.dockerfile)
    .arg("-t")
    .arg(build.destination);
    common_args(&mut bud, build);
    bud.arg(build.context);
    let built = run_logged(bud, &log)?;
    if !built.success {
        return Ok(built);
    }
    let mut push = timeout_command(Path::new("buildah"));
    base(&mut push);
    push.args(["push", "--tls-verify=false"])
        .arg(build.destination)
        .arg(format!("docker://{}", build.destination));
    let pushed = run_logged(push, &build.work.join("buildah-push.log"))?;
    let mut rmi = Command::new("buildah");
    base(&mut rmi);
    rmi.args(["rmi", build.destination])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let _ = rmi.status();
    Ok(Outcome {
        log: if pushed.success {
            built.log
        } else {
            pushed.log
        },
        ..pushed
    })
}

/// `docker build` with Docker 20.10's built-in BuildKit (TESTBED.md: Debian's
/// client, `DOCKER_BUILDKIT=1`, `--network host` as the engine has no bridge),
/// `docker push`, then `docker rmi` to keep the engine's store small.
pub fn docker(engine: &kiln_testkit::Dockerd, build: &Build<'_>) -> Result<Outcome> {
    let client = engine.docker();
    let docker = |args: &[&str]| {
        let mut cmd = timeout_command(Path::new(client.get_program()));
        for (key, value) in client.get_envs() {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        cmd.args(args);
        cmd
    };
    let mut bud = docker(&["build", "--network", "host", "--progress", "plain"]);
    bud.arg("-f")
        .arg(build.dockerfile)
        .arg("-t")
        .arg(build.destination);
    common_args(&mut bud, build);
    bud.arg(build.context);
    let built = run_logged(bud, &build.work.join("docker.log"))?;
    if !built.success {
        return Ok(built);
    }
    let pushed = run_logged(
        docker(&["push", build.destination]),
        &build.work.join("docker-push.log"),
    )?;
    let _ = engine.output(&["rmi", build.destination]);
    Ok(Outcome {
        log: if pushed.success {
            built.log
        } else {
            pushed.log
        },
        ..pushed
    })
}

/// `--build-arg`, `--target` and the environment, the same for every builder.
fn common_args(cmd: &mut Command, build: &Build<'_>) {
    for arg in build.build_args {
        cmd.arg("--build-arg");
        match &arg.value {
            Some(value) => cmd.arg(format!("{}={value}", arg.key)),
            None => cmd.arg(&arg.key),
        };
    }
    if let Some(target) = &build.case.target {
        cmd.arg("--target").arg(target);
    }
    cmd.envs(build.case.env.iter().map(|(k, v)| (k, v)));
}

fn timeout_command(program: &Path) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.arg("--kill-after=10")
        .arg(CASE_TIMEOUT.as_secs().to_string())
        .arg(program);
    cmd
}

/// Runs `cmd` with stdout and stderr into `log`.
fn run_logged(mut cmd: Command, log: &Path) -> Result<Outcome> {
    let file = fs_err::File::create(log)?;
    let err = file.try_clone()?;
    cmd.stdin(Stdio::null())
        .stdout(file.into_parts().0)
        .stderr(err.into_parts().0);
    let status = crate::util::status(&mut cmd).with_context(|| format!("running {cmd:?}"))?;
    let status_text = match status.code() {
        Some(124) | Some(137) => format!("timed out after {} s", CASE_TIMEOUT.as_secs()),
        _ => status.to_string(),
    };
    Ok(Outcome {
        success: status.success(),
        status: status_text,
        log: log.to_path_buf(),
    })
}

/// The last `lines` lines of a log, for the report.
pub fn log_tail(log: &Path, lines: usize) -> String {
    let text = fs_err::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
