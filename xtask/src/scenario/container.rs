//! Plays a container runtime well enough to run a CI job in kiln's debug
//! image the way a default, unprivileged Docker or Kubernetes runner does:
//! new mount and pid namespaces, the image's rootfs as `/` (pivot_root), a
//! minimal `/dev` and `/proc`, bind mounts (the project checkout), Docker's
//! default capability set (no CAP_SYS_ADMIN) and a seccomp filter that, like
//! Docker's default profile, refuses to create namespaces.
//!
//! The parent runs `unshare --mount --pid --fork` on this same xtask binary
//! with the hidden `__container` command; that child (pid 1 of the new pid
//! namespace) sets the container up with `kiln_testkit::container` and execs
//! the job's shell.

use anyhow::{Context, Result, bail};
use std::ffi::CString;
use std::path::PathBuf;
use std::process::Command;

/// What the emulated container runs.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The unpacked image (becomes `/`).
    pub rootfs: PathBuf,
    /// `(host path, path inside)` bind mounts, read-write.
    pub binds: Vec<(PathBuf, String)>,
    /// The full environment of the job.
    pub env: Vec<(String, String)>,
    /// Working directory inside.
    pub cwd: String,
    /// The program and its arguments, resolved inside the rootfs.
    pub argv: Vec<String>,
    /// A privileged runner: all capabilities and no seccomp filter, so
    /// namespaces work inside (kiln then builds in private roots).
    pub privileged: bool,
}

/// Runs `spec` in a fresh emulated container and returns its exit status and
/// combined output.
pub fn run(spec: &ContainerSpec) -> Result<(std::process::ExitStatus, String)> {
    let me = std::env::current_exe().context("finding the xtask binary")?;
    let encoded = serde_json::json!({
        "rootfs": spec.rootfs,
        "binds": spec.binds,
        "env": spec.env,
        "cwd": spec.cwd,
        "argv": spec.argv,
        "privileged": spec.privileged,
    })
    .to_string();
    let output = crate::util::output(
        Command::new("unshare")
            .args(["--mount", "--pid", "--fork", "--propagation", "private"])
            .arg(me)
            .arg("__container")
            .arg(encoded)
            .env_clear(),
    )?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok((output.status, text))
}

/// The `__container` entry point, pid 1 in new mount and pid namespaces.
pub fn enter(encoded: &str) -> Result<()> {
    let v: serde_json::Value = serde_json::from_str(encoded)?;
    let rootfs = PathBuf::from(v["rootfs"].as_str().context("rootfs")?);
    let str_of = |x: &serde_json::Value| x.as_str().unwrap_or_default().to_string();
    let binds: Vec<(PathBuf, String)> = v["binds"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|b| (PathBuf::from(str_of(&b[0])), str_of(&b[1])))
        .collect();
    let env: Vec<(String, String)> = v["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| (str_of(&e[0]), str_of(&e[1])))
        .collect();
    let argv: Vec<String> = v["argv"]
        .as_array()
        .into_iter()
        .flatten()
        .map(str_of)
        .collect();
    let cwd = str_of(&v["cwd"]);
    let privileged = v["privileged"].as_bool().unwrap_or(false);

    kiln_testkit::container::enter(&kiln_testkit::container::ContainerSetup {
        rootfs,
        binds,
        runner_files: true,
        privileged,
    })?;
    std::env::set_current_dir(&cwd).with_context(|| format!("chdir {cwd}"))?;
    exec(&argv, &env)
}

fn exec(argv: &[String], env: &[(String, String)]) -> Result<()> {
    let c_argv: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_str()))
        .collect::<Result<_, _>>()?;
    let c_env: Vec<CString> = env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")))
        .collect::<Result<_, _>>()?;
    let mut argv_ptrs: Vec<*const libc::c_char> = c_argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = c_env.iter().map(|a| a.as_ptr()).collect();
    env_ptrs.push(std::ptr::null());
    // SAFETY: NUL-terminated arrays of valid C strings that outlive the call.
    unsafe { libc::execve(argv_ptrs[0], argv_ptrs.as_ptr(), env_ptrs.as_ptr()) };
    bail!("exec {}: {}", argv[0], std::io::Error::last_os_error())
}
