//! The one error type of the crate: every variant says what was being done, to what, and why.

use std::io;
use std::path::PathBuf;

/// Why a RUN step could not be run, or how it failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The command ran and exited with a non-zero code.
    #[error("RUN '{command}' returned a non-zero code: {code}")]
    CommandFailed {
        /// The argv of the command, joined with spaces.
        command: String,
        /// Its exit code.
        code: i32,
    },
    /// The command was killed by a signal.
    #[error("RUN '{command}' was killed by signal {signal}")]
    CommandKilled {
        /// The argv of the command, joined with spaces.
        command: String,
        /// The signal number.
        signal: i32,
    },
    /// Setting up the sandbox or starting the command failed in the child process.
    #[error("RUN '{command}': could not start: {step}: {source}")]
    Setup {
        /// The argv of the command, joined with spaces.
        command: String,
        /// The step that failed (e.g. "mount proc on /proc", "exec /bin/sh").
        step: String,
        /// The OS error of that step.
        source: io::Error,
    },
    /// The USER value could not be resolved against the rootfs.
    #[error("USER '{user}': {reason}")]
    User {
        /// The USER value as written.
        user: String,
        /// Why it could not be resolved.
        reason: String,
    },
    /// An I/O operation in the parent process failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create mount target", "read", ...).
        action: &'static str,
        /// The path it was done to.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A setuid helper (newuidmap, newgidmap) could not write the id maps of the user
    /// namespace of a rootless run.
    #[error("set up the user namespace's id maps with {}: {reason}", helper.display())]
    IdMap {
        /// The helper binary.
        helper: PathBuf,
        /// Its exit status, the map it was given and what it printed.
        reason: String,
    },
    /// The run specification cannot be honoured (bad path, unsupported option in this mode).
    #[error("invalid RUN specification: {0}")]
    InvalidSpec(String),
    /// In-place mode was requested (or is the only option) but kiln does not know it is in a
    /// disposable container.
    #[error("refusing to run in place: {0}")]
    InPlaceRefused(String),
    /// A RUN step is for a platform this machine cannot run natively, and no emulation is
    /// possible; nothing ran.
    #[error(
        "RUN '{command}' is for platform {platform}, which this {host} machine cannot run: {reason}. \
         To build it, either register qemu-user-static for that architecture on the host with \
         the F flag (for example Debian's qemu-user-static package does, through \
         /proc/sys/fs/binfmt_misc), or give kiln the emulator (--emulator \
         /path/to/qemu-<arch>-static, or put it in {dir}) where user namespaces are allowed \
         (Linux 6.7 or later), and kiln registers it in its own user namespace",
        dir = crate::DEFAULT_EMULATOR_DIR
    )]
    NoEmulation {
        /// The argv of the command, joined with spaces.
        command: String,
        /// The platform of the step (`linux/arm64`).
        platform: String,
        /// The host's platform.
        host: String,
        /// Why neither way works here.
        reason: String,
    },
    /// An emulator given to kiln cannot be used.
    #[error("emulator {}: {reason}", path.display())]
    BadEmulator {
        /// The emulator's path as given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// No isolation mode can work here.
    #[error("no RUN isolation is possible here: {0}")]
    NoIsolation(String),
}

impl SandboxError {
    /// The exit code of a command that ran and failed, if that is what happened.
    pub fn exit_code(&self) -> Option<i32> {
        match self {
            SandboxError::CommandFailed { code, .. } => Some(*code),
            _ => None,
        }
    }
}
