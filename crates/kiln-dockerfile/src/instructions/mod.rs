//! Typed instructions: every Dockerfile command with its flags checked.
//!
//! Values that BuildKit expands at build time (paths, ENV values, `--from`,
//! `--chown`, mount options ...) are kept **raw** here; a stage's
//! [`crate::StageEnv::expand`] returns the expanded copy of an instruction.

mod chmod;
mod convert;
mod expose;
mod flags;
mod mount;

pub use chmod::Chmod;
pub(crate) use convert::parse_mounts as parse_mounts_expanded;
pub use convert::{instruction_from_node, parse_trigger};
pub use expose::expose_ports;
pub use mount::{CacheSharing, Mount, MountKind, parse_mount};

use std::time::Duration;

use crate::diagnostic::Span;
use crate::syntax::Heredoc;

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Instruction {
    pub command: Command,
    pub span: Span,
    /// The logical source line (continuations joined), e.g. for build logs.
    pub original: String,
}

/// The instructions of the Dockerfile language.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "instruction", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Command {
    From(FromCmd),
    Run(RunCmd),
    Cmd(CommandLine),
    Entrypoint(CommandLine),
    Copy(CopyCmd),
    Add(CopyCmd),
    Env(KeyValues),
    Label(KeyValues),
    Arg(ArgCmd),
    Expose(Words),
    Volume(Words),
    User(Word),
    Workdir(Word),
    Shell(Words),
    Stopsignal(Word),
    Healthcheck(Healthcheck),
    Onbuild(OnbuildCmd),
    Maintainer(Word),
}

impl Command {
    /// The upper-case instruction name (`RUN`, `COPY`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            Command::From(_) => "FROM",
            Command::Run(_) => "RUN",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Env(_) => "ENV",
            Command::Label(_) => "LABEL",
            Command::Arg(_) => "ARG",
            Command::Expose(_) => "EXPOSE",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Shell(_) => "SHELL",
            Command::Stopsignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Onbuild(_) => "ONBUILD",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// A single-argument instruction's value (USER, WORKDIR, STOPSIGNAL,
/// MAINTAINER).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Word {
    pub value: String,
}

/// A list-valued instruction (EXPOSE, VOLUME, SHELL).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Words {
    pub values: Vec<String>,
}

/// `FROM [--platform=P] IMAGE [AS NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FromCmd {
    /// The image reference as written (expanded with global ARGs by the plan).
    pub image: String,
    /// The stage name, lower-cased.
    pub name: Option<String>,
    /// `--platform`, raw.
    pub platform: Option<String>,
}

/// The exec (JSON) or shell form of RUN/CMD/ENTRYPOINT/HEALTHCHECK CMD.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandLine {
    /// Run through the stage's SHELL (`/bin/sh -c` by default).
    Shell(String),
    /// Executed directly.
    Exec(Vec<String>),
}

/// `RUN [--mount=...]... [--network=...] [--security=...] COMMAND`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunCmd {
    pub command: CommandLine,
    /// Heredocs on the RUN line; bodies are not chomped (see
    /// [`Heredoc::chomp`]).
    pub heredocs: Vec<Heredoc>,
    /// Parsed `--mount` flags. Option values are final only in an expanded
    /// instruction.
    pub mounts: Vec<Mount>,
    /// The raw `--mount` flag values, in order (re-parsed on expansion).
    pub mount_flags: Vec<String>,
    pub network: Option<NetworkMode>,
    pub security: Option<SecurityMode>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    Default,
    None,
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    Sandbox,
    Insecure,
}

/// COPY and ADD (`Command::Copy` / `Command::Add`); ADD-only and COPY-only
/// fields stay at their defaults for the other instruction.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct CopyCmd {
    /// Source paths/URLs, raw (heredoc sources are in `inline`).
    pub sources: Vec<String>,
    /// Heredoc sources: files whose content is in the Dockerfile.
    pub inline: Vec<InlineSource>,
    pub dest: String,
    /// COPY `--from` (stage name, stage index or image), raw.
    pub from: Option<String>,
    pub chown: Option<String>,
    /// `--chmod`, raw; see [`Chmod::parse`].
    pub chmod: Option<String>,
    pub link: bool,
    /// COPY `--parents`.
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD `--checksum`.
    pub checksum: Option<String>,
    /// ADD `--keep-git-dir`.
    pub keep_git_dir: Option<bool>,
    /// ADD `--unpack`.
    pub unpack: Option<bool>,
    /// Whether the arguments were in JSON form.
    pub json: bool,
}

/// A heredoc used as a COPY/ADD source file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InlineSource {
    /// The file name (the heredoc marker).
    pub path: String,
    /// The content, already chomped for `<<-`.
    pub data: String,
    /// Whether `$VAR`s in `data` are expanded (unquoted marker).
    pub expand: bool,
}

/// `ENV`/`LABEL` pairs, raw.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyValues {
    pub pairs: Vec<KeyValue>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
}

/// `ARG NAME[=default] ...`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArgCmd {
    pub args: Vec<ArgDecl>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ArgDecl {
    pub name: String,
    /// The default, raw (`None` for `ARG NAME`).
    pub default: Option<String>,
    /// The doc comment (`# NAME does ...` above the ARG).
    pub doc: Option<String>,
}

/// `HEALTHCHECK NONE` or `HEALTHCHECK [flags] CMD ...`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Healthcheck {
    None,
    Cmd(HealthcheckCmd),
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HealthcheckCmd {
    /// The image-config `Test`: `["CMD", args...]` or `["CMD-SHELL", line]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub start_period: Option<Duration>,
    pub start_interval: Option<Duration>,
    pub retries: Option<u32>,
}

/// `ONBUILD TRIGGER`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct OnbuildCmd {
    /// The trigger text as stored in the image config (`RUN echo hi`).
    pub trigger: String,
    /// The trigger, parsed and checked.
    pub instruction: Box<Instruction>,
}
