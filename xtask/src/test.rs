//! `cargo xtask test`: installs the real components the tests need (when
//! missing), then runs the whole test suite: every crate's tests, then the
//! GitLab job scenario in kiln's own executor image, then the bounded chaos
//! run (crashes, signals, registry faults, a lying registry, load, full disks).

use crate::util::{cargo, run as run_cmd, workspace_root};
use std::process::Command;

pub fn run_all() -> anyhow::Result<()> {
    run_cmd(Command::new("bash").arg(workspace_root().join(".ci/install-deps")))?;
    run_cmd(cargo().args(["test", "--workspace", "--locked"]))?;
    // The GitLab job end to end, in kiln's own debug image (issue 7). Run by a
    // fresh xtask: `cargo test` has just rebuilt target/debug/xtask (xtask's
    // own integration tests need it), so this process's executable is gone,
    // and the scenario re-executes its binary as the emulated container's pid 1.
    run_cmd(cargo().args(["xtask", "scenario", "gitlab"]))?;
    // Issue 19, bounded to a few minutes; a fresh seed each run, printed first.
    run_cmd(cargo().args(["xtask", "chaos", "--bounded"]))?;
    Ok(())
}

pub fn run(args: &[String]) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.is_empty(),
        "xtask test takes no arguments, got {args:?}"
    );
    run_all()
}
