//! What the engine reports while it works, for the CLI's log lines and progress bars.

use std::time::Duration;

/// Receives build events. Called from the engine's tasks; must be cheap and never block.
pub trait BuildObserver: Send + Sync {
    /// One event.
    fn event(&self, event: &BuildEvent);
}

impl<F: Fn(&BuildEvent) + Send + Sync> BuildObserver for F {
    fn event(&self, event: &BuildEvent) {
        self(event)
    }
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoopObserver;

impl BuildObserver for NoopObserver {
    fn event(&self, _event: &BuildEvent) {}
}

/// Identifies a step for log lines: `[stage 1/2] STEP 3/9: RUN make`, or
/// `[stage 1/2 linux/arm64] STEP 3/9: RUN make` in a build for several platforms.
/// Numbers are 1-based and count only the stages being built (for one platform).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepId {
    /// 1-based index among the stages being built.
    pub stage: usize,
    /// Number of stages being built.
    pub stage_count: usize,
    /// 1-based step number within the stage (FROM is step 1).
    pub step: usize,
    /// Number of steps in the stage, FROM included.
    pub step_count: usize,
    /// The stage's platform, in a build for several platforms.
    pub platform: Option<String>,
}

impl std::fmt::Display for StepId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[stage {}/{}", self.stage, self.stage_count)?;
        if let Some(platform) = &self.platform {
            write!(f, " {platform}")?;
        }
        write!(f, "] STEP {}/{}", self.step, self.step_count)
    }
}

/// Which output stream a RUN line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// Direction of a blob transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Downloading a base-image blob.
    Pull,
    /// Uploading a blob to a destination.
    Push,
}

/// One thing that happened during a build.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildEvent {
    /// The build context is ready (a tar context is unpacked) and its ignore file read.
    ContextLoaded {
        /// The directory COPY sources are relative to.
        root: std::path::PathBuf,
    },
    /// A step starts. `text` is the instruction as written (unexpanded, so build-arg
    /// values and secrets never appear).
    StepStarted {
        /// Position.
        id: StepId,
        /// e.g. `RUN make`.
        text: String,
    },
    /// A step finished.
    StepFinished {
        /// Position.
        id: StepId,
        /// Wall time of the step.
        elapsed: Duration,
        /// Digest of the layer it produced, if any.
        layer: Option<String>,
    },
    /// The deterministic key of a step, computed from its inputs before it runs
    /// (the previous key, platform, instruction, environment and, for COPY/ADD,
    /// the content, mode and owner of every source; never mtimes or secrets).
    StepKey {
        /// Position.
        id: StepId,
        /// The key (`sha256:…`).
        key: String,
    },
    /// The cache key of a step (computed before it runs) and whether it hit.
    CacheLookup {
        /// Position.
        id: StepId,
        /// The key (`sha256:…`).
        key: String,
        /// Whether the cache had it.
        hit: bool,
    },
    /// A line written by a RUN command (without its newline).
    RunOutput {
        /// Position of the RUN step.
        id: StepId,
        /// Which stream.
        stream: OutputStream,
        /// The line.
        line: String,
    },
    /// Progress of a blob transfer.
    BlobProgress {
        /// Pull or push.
        transfer: Transfer,
        /// Blob digest.
        digest: String,
        /// Bytes done so far.
        done: u64,
        /// Total bytes, when known.
        total: Option<u64>,
    },
    /// The image was pushed to a destination.
    Pushed {
        /// The destination as given.
        destination: String,
        /// Manifest digest.
        digest: String,
    },
    /// Something the user should know that does not fail the build.
    Warning {
        /// Human-readable text.
        message: String,
    },
}
