//! What a RUN step asks for ([`RunSpec`]) and what it gives back ([`RunOutcome`]).

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

/// `PATH` as Docker sets it when the image's environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One RUN step.
#[derive(Clone)]
pub struct RunSpec {
    /// The root filesystem: the stage's rootfs directory in chroot mode, `/` in in-place mode.
    pub root: PathBuf,
    /// The command; `argv[0]` is looked up in the command's `PATH` when it has no `/`
    /// (SHELL form: the caller passes e.g. `["/bin/sh", "-c", "..."]`).
    pub argv: Vec<OsString>,
    /// The environment (ENV and ARG values), in order; a later duplicate key wins.
    /// `PATH` and `HOME` get Docker's defaults when absent.
    pub env: Vec<(String, String)>,
    /// The working directory inside the root (WORKDIR), absolute; created with the user's
    /// ownership when missing, as Docker does.
    pub cwd: PathBuf,
    /// The USER value: empty (root), `name`, `uid`, `name:group`, `uid:gid`.
    pub user: String,
    /// Extra mounts (RUN --mount), applied in order after the standard ones. Chroot mode only.
    pub mounts: Vec<Mount>,
    /// The network the command sees.
    pub network: Network,
    /// The hostname inside the sandbox (chroot mode); `None` keeps the host's.
    pub hostname: Option<String>,
    /// The platform the root's programs are for, OCI's `os/arch[/variant]` (`linux/arm64`,
    /// `linux/arm/v7`). `None` or the host's own architecture: they run natively. Another
    /// architecture runs under emulation (see [`Emulators`](crate::Emulators)) or fails
    /// with [`SandboxError::NoEmulation`](crate::SandboxError::NoEmulation) before it runs.
    pub platform: Option<String>,
}

impl RunSpec {
    /// A spec running `argv` as root in `/` of `root` with the default network and no extra
    /// mounts.
    pub fn new(
        root: impl Into<PathBuf>,
        argv: impl IntoIterator<Item = impl Into<OsString>>,
    ) -> Self {
        RunSpec {
            root: root.into(),
            argv: argv.into_iter().map(Into::into).collect(),
            env: Vec::new(),
            cwd: PathBuf::from("/"),
            user: String::new(),
            mounts: Vec::new(),
            network: Network::Default,
            hostname: None,
            platform: None,
        }
    }

    /// The command as shown in logs and errors: argv joined with spaces.
    pub fn command_line(&self) -> String {
        let parts: Vec<String> = self
            .argv
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        parts.join(" ")
    }
}

/// Environment values are left out: they may carry build arguments users consider private.
impl fmt::Debug for RunSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("RunSpec")
            .field("root", &self.root)
            .field("argv", &self.argv)
            .field("env_keys", &env_keys)
            .field("cwd", &self.cwd)
            .field("user", &self.user)
            .field("mounts", &self.mounts)
            .field("network", &self.network)
            .field("hostname", &self.hostname)
            .field("platform", &self.platform)
            .finish()
    }
}

/// An extra mount for one RUN step. Targets are absolute paths inside the root, resolved
/// inside it (symlinks cannot lead out); missing targets are created before the run and
/// removed after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mount {
    /// Bind a host file or directory (a cache dir, a context dir, a secret file).
    Bind {
        /// The host path.
        source: PathBuf,
        /// The absolute path inside the root.
        target: PathBuf,
        /// Mount read-only.
        readonly: bool,
    },
    /// A fresh tmpfs.
    Tmpfs {
        /// The absolute path inside the root.
        target: PathBuf,
        /// Size limit in bytes (`None`: the kernel default, half of RAM).
        size: Option<u64>,
        /// Mode of the tmpfs root directory (e.g. `0o1777`).
        mode: u32,
    },
}

impl Mount {
    /// The target path inside the root.
    pub fn target(&self) -> &std::path::Path {
        match self {
            Mount::Bind { target, .. } | Mount::Tmpfs { target, .. } => target,
        }
    }
}

/// The network a RUN step sees (RUN --network).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// The host's network (Docker's default for builds).
    #[default]
    Default,
    /// A new network namespace with only the loopback interface, up.
    None,
    /// The host's network, explicitly.
    Host,
}

/// Which output stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stream {
    /// The command's standard output.
    Stdout,
    /// The command's standard error.
    Stderr,
}

/// Receives the command's output live, line by line (without the trailing newline; a final
/// line without newline is delivered at the end; lines longer than 64 KiB arrive in pieces).
/// Order is exact within one stream; between the two streams it is the order of arrival.
pub trait OutputSink {
    /// One line of output.
    fn line(&mut self, stream: Stream, line: &[u8]);
}

impl<F: FnMut(Stream, &[u8])> OutputSink for F {
    fn line(&mut self, stream: Stream, line: &[u8]) {
        self(stream, line)
    }
}

/// What a successful RUN step reports besides its output.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunOutcome {
    /// Paths (inside the root) kiln created as mount targets before the run. All of them were
    /// removed afterwards except those listed in `kept_mount_targets`; the modification times
    /// of their parent directories were restored (their ctime changed).
    pub created_mount_targets: Vec<PathBuf>,
    /// Created mount targets that could not be removed because the command put something in
    /// them (a directory kiln created that is no longer empty). They now belong to the step.
    pub kept_mount_targets: Vec<PathBuf>,
    /// Directories (inside the root) whose access and modification times kiln restored after
    /// removing the targets it created in them: only their ctime differs from before the
    /// run, so a snapshot may treat a ctime-only change of these as no change.
    pub restored_parents: Vec<PathBuf>,
    /// Directories of the WORKDIR path that were created (owned by the user).
    pub created_workdir: Vec<PathBuf>,
}
