//! Choosing the isolation mode (probe, marker, explicit flag) and running steps with it.

use std::io;
use std::path::{Path, PathBuf};

use crate::SandboxError;
use crate::binfmt::HOST_BINFMT_MISC;
use crate::chroot::{self, Prepared};
use crate::emulation::{self, Emulation, Emulators};
use crate::idmap::{IdMapping, IdMaps};
use crate::inplace;
use crate::plan::{Op, Plan, Source, Step};
use crate::rootpath::Root;
use crate::spec::{Network, OutputSink, RunOutcome, RunSpec};
use crate::supervise::{Ended, describe_step, run_plan};

/// The file whose presence tells kiln it runs in its own, disposable container image, where
/// in-place mode may change `/`. kiln's image creates it; nothing else should.
pub const KILN_CONTAINER_MARKER: &str = "/kaniko/.kiln-container";

/// The isolation the caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Isolation {
    /// Chroot mode where namespaces work, in-place mode in kiln's container where they do
    /// not, an error elsewhere.
    #[default]
    Auto,
    /// Always chroot mode.
    Chroot,
    /// Always in-place mode (only in a disposable container).
    InPlace,
}

/// How a [`Sandbox`] is chosen.
#[derive(Debug, Clone, Default)]
pub struct SandboxOptions {
    /// The requested isolation.
    pub isolation: Isolation,
    /// The user states explicitly that kiln runs in a disposable container, so in-place mode
    /// may change `/` even without [`KILN_CONTAINER_MARKER`].
    pub disposable_container: bool,
    /// Where the namespace probe makes its scratch directory (kiln's work dir);
    /// `None` means the system temp dir. kiln's image has no `/tmp`.
    pub scratch_dir: Option<PathBuf>,
}

/// The isolation a [`Sandbox`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Namespaces + pivot_root into the stage's rootfs directory.
    Chroot {
        /// A user namespace maps the unprivileged caller to root (and its /etc/subuid range,
        /// see [`Sandbox::id_maps`]).
        user_namespace: bool,
    },
    /// Commands run directly in `/` of kiln's container.
    InPlace,
}

/// Runs RUN steps with the chosen isolation. Cheap to share; `run` may be called from
/// several threads at once.
#[derive(Debug, Clone)]
pub struct Sandbox {
    mode: Mode,
    reason: String,
    /// The id maps of the user namespace when kiln is not root.
    id_mapping: Option<IdMapping>,
    /// Emulators for foreign-platform steps.
    emulators: Emulators,
}

/// Checks that chroot mode can work here: in a forked child, create the namespaces (a user
/// namespace when not root), make mounts private, mount a tmpfs and a proc in a scratch dir
/// and pivot_root into it. Returns why not on failure.
pub fn probe_namespaces(scratch_parent: Option<&Path>) -> Result<(), String> {
    let mapping = (!is_root()).then(IdMapping::detect);
    probe_with(scratch_parent, mapping.as_ref())
}

/// [`probe_namespaces`] with the id maps a rootless run will use.
fn probe_with(scratch_parent: Option<&Path>, userns: Option<&IdMapping>) -> Result<(), String> {
    let dir = scratch_dir(scratch_parent)
        .map_err(|e| format!("cannot create a scratch directory for the probe: {e}"))?;
    let result = (|| {
        for sub in ["proc", "dev"] {
            fs_err::create_dir(dir.join(sub)).map_err(|e| e.to_string())?;
        }
        let root = Root::open(&dir).map_err(|e| e.to_string())?;
        let ops = vec![
            Op::Mount {
                source: Source::Name(c"proc".to_owned()),
                target: c"proc".to_owned(),
                fstype: Some(c"proc".to_owned()),
                flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                data: None,
                readonly: false,
                optional: false,
            },
            Op::Mount {
                source: Source::Name(c"tmpfs".to_owned()),
                target: c"dev".to_owned(),
                fstype: Some(c"tmpfs".to_owned()),
                flags: libc::MS_NOSUID,
                data: None,
                readonly: false,
                optional: false,
            },
        ];
        let descriptions = vec!["mount proc".to_owned(), "mount a tmpfs".to_owned()];
        let setup = chroot::namespace_setup(&root, Network::Default, None, userns, ops, None)
            .map_err(|e| e.to_string())?;
        let plan = Plan::Chroot { setup, exec: None };
        let mut ignore = |_: crate::Stream, _: &[u8]| {};
        match run_plan(&plan, &mut ignore).map_err(|e| e.to_string())? {
            Ended::Exited(0) => Ok(()),
            Ended::Exited(code) => Err(format!("the probe exited with code {code}")),
            Ended::Signaled(sig) => Err(format!("the probe was killed by signal {sig}")),
            Ended::SetupFailed { step, errno } => Err(format!(
                "{}: {}",
                describe_step(step, &descriptions),
                io::Error::from_raw_os_error(errno)
            )),
        }
    })();
    for sub in ["proc", "dev"] {
        let _ = std::fs::remove_dir(dir.join(sub));
    }
    let _ = std::fs::remove_dir(&dir);
    result
}

fn is_root() -> bool {
    // SAFETY: trivial getter.
    unsafe { libc::geteuid() == 0 }
}

fn scratch_dir(parent: Option<&Path>) -> io::Result<PathBuf> {
    let parent = parent.map_or_else(std::env::temp_dir, Path::to_path_buf);
    let template = parent.join("kiln-sandbox-probe-XXXXXX");
    let mut bytes = std::os::unix::ffi::OsStrExt::as_bytes(template.as_os_str()).to_vec();
    bytes.push(0);
    // SAFETY: mkdtemp rewrites the XXXXXX of a NUL-terminated buffer we own.
    let p = unsafe { libc::mkdtemp(bytes.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(io::Error::last_os_error());
    }
    bytes.pop();
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(bytes),
    ))
}

/// The decision of [`Sandbox::new`] from its inputs: the probe result, whether the marker
/// file exists, and the options. Returns the mode and why it was chosen.
pub fn decide(
    options: &SandboxOptions,
    probe: Result<(), String>,
    marker_present: bool,
) -> Result<(Mode, String), SandboxError> {
    let userns = !is_root();
    let chroot = Mode::Chroot {
        user_namespace: userns,
    };
    let ns = if userns {
        "mount/pid/ipc/uts and user namespaces"
    } else {
        "mount/pid/ipc/uts namespaces"
    };
    let disposable_because = if marker_present {
        Some(format!(
            "kiln's container marker {KILN_CONTAINER_MARKER} is present"
        ))
    } else if options.disposable_container {
        Some("the container was declared disposable explicitly".to_owned())
    } else {
        None
    };
    let refusal = format!(
        "in-place mode runs RUN commands directly in / and changes this machine; kiln does that only \
         inside its own container image (marker file {KILN_CONTAINER_MARKER}) or when the container is \
         explicitly declared disposable"
    );
    match (options.isolation, probe) {
        (Isolation::Chroot, Ok(())) => Ok((chroot, format!("chroot mode requested; {ns} work"))),
        (Isolation::Chroot, Err(why)) => Err(SandboxError::NoIsolation(format!(
            "chroot mode was requested but {ns} are not available: {why}"
        ))),
        (Isolation::InPlace, _) => match disposable_because {
            Some(because) => Ok((
                Mode::InPlace,
                format!("in-place mode requested and {because}"),
            )),
            None => Err(SandboxError::InPlaceRefused(refusal)),
        },
        (Isolation::Auto, Ok(())) => Ok((chroot, format!("chroot mode: {ns} work here"))),
        (Isolation::Auto, Err(why)) => match disposable_because {
            Some(because) => Ok((
                Mode::InPlace,
                format!("in-place mode: namespaces are not available ({why}) and {because}"),
            )),
            None => Err(SandboxError::NoIsolation(format!(
                "namespaces are not available ({why}), so chroot mode cannot work, and {refusal}; \
                 allow namespaces (CAP_SYS_ADMIN or user namespaces), or run kiln in its own image"
            ))),
        },
    }
}

impl Sandbox {
    /// Chooses the mode: probes namespaces (except for an explicit in-place request) and
    /// looks for [`KILN_CONTAINER_MARKER`]. The reason is for the log (info level).
    pub fn new(options: &SandboxOptions) -> Result<Sandbox, SandboxError> {
        let mut id_mapping = (!is_root()).then(IdMapping::detect);
        let scratch = options.scratch_dir.as_deref();
        let probe = match options.isolation {
            Isolation::InPlace => Err("not probed: in-place mode requested".to_owned()),
            _ => match probe_with(scratch, id_mapping.as_ref()) {
                // newuidmap/newgidmap refused the ranges: a caller-only map may still work.
                Err(why) if id_mapping.as_ref().is_some_and(IdMapping::uses_helpers) => {
                    let fallback = id_mapping
                        .take()
                        .map(|m| m.caller_only(format!("the subordinate ranges failed: {why}")));
                    let probe = probe_with(scratch, fallback.as_ref());
                    if probe.is_ok() {
                        tracing::debug!(
                            %why,
                            "rootless RUN: newuidmap/newgidmap failed; the user namespace maps only the caller to root"
                        );
                    }
                    id_mapping = fallback;
                    probe
                }
                probe => probe,
            },
        };
        let marker = Path::new(KILN_CONTAINER_MARKER).exists();
        let (mode, reason) = decide(options, probe, marker)?;
        tracing::debug!(?mode, %reason, "RUN isolation chosen");
        Ok(Sandbox {
            mode,
            reason,
            id_mapping,
            emulators: Emulators::default(),
        })
    }

    /// The same sandbox with these emulators for foreign-platform steps (by default
    /// [`Emulators::default`]: only [`DEFAULT_EMULATOR_DIR`](crate::DEFAULT_EMULATOR_DIR)).
    /// Fails when an explicit emulator is missing or its name does not say which
    /// architecture it emulates.
    pub fn with_emulators(mut self, emulators: Emulators) -> Result<Sandbox, SandboxError> {
        emulators.check()?;
        self.emulators = emulators;
        Ok(self)
    }

    /// How the programs of `spec` run here; the error when they cannot.
    fn emulation(&self, spec: &RunSpec) -> Result<Emulation, SandboxError> {
        let Some(platform) = spec.platform.as_deref() else {
            return Ok(Emulation::Native);
        };
        let emulation = emulation::decide(
            platform,
            &spec.command_line(),
            &self.emulators,
            Path::new(HOST_BINFMT_MISC),
            matches!(self.mode, Mode::Chroot { .. }),
        )?;
        match &emulation {
            Emulation::Native => {}
            Emulation::Host(h) => tracing::debug!(
                %platform, handler = %h.path.display(), interpreter = %h.interpreter,
                "RUN under emulation: the host's binfmt_misc handler"
            ),
            Emulation::Register { emulator, .. } => tracing::debug!(
                %platform, emulator = %emulator.display(),
                "RUN under emulation: registering the emulator in the sandbox's own binfmt_misc instance"
            ),
        }
        Ok(emulation)
    }

    /// The uid and gid maps of the user namespace chroot-mode commands run in when kiln is
    /// not root (`None` when kiln is root or in-place: ids on disk are the image's ids).
    /// Files a command creates are owned on disk by the outside ids; a snapshot must
    /// translate them back with [`IdMaps::uid_inside`] and [`IdMaps::gid_inside`].
    pub fn id_maps(&self) -> Option<IdMaps> {
        match self.mode {
            Mode::Chroot {
                user_namespace: true,
            } => self.id_mapping.as_ref().map(IdMapping::maps),
            _ => None,
        }
    }

    /// The chosen mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Why this mode was chosen, in one sentence.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Runs one step, streaming its output to `sink`. A command that exits non-zero or is
    /// killed is an error carrying the exit code (or signal) and the command. Every process
    /// the command left behind is killed before this returns; mount targets kiln created are
    /// removed.
    pub fn run(
        &self,
        spec: &RunSpec,
        sink: &mut dyn OutputSink,
    ) -> Result<RunOutcome, SandboxError> {
        let command = spec.command_line();
        let emulation = self.emulation(spec)?;
        let prepared = match self.mode {
            Mode::Chroot { user_namespace } => {
                let mut spec = spec.clone();
                spec.root =
                    std::fs::canonicalize(&spec.root).map_err(|source| SandboxError::Io {
                        action: "resolve the rootfs directory",
                        path: spec.root.clone(),
                        source,
                    })?;
                // Both come from the same `is_root` check in `new`.
                let mapping = self.id_mapping.as_ref().filter(|_| user_namespace);
                chroot::prepare(&spec, mapping, emulation.registration())?
            }
            Mode::InPlace => inplace::prepare(spec)?,
        };
        let Prepared {
            plan,
            op_descriptions,
            mut created,
            created_workdir,
        } = prepared;
        created.seal();
        tracing::debug!(%command, mode = ?self.mode, "running RUN step");
        let ended = run_plan(&plan, sink);
        let created_mount_targets = created.paths();
        let removal = created.remove_all()?;
        let outcome = RunOutcome {
            created_mount_targets,
            kept_mount_targets: removal.kept,
            restored_parents: removal.restored_parents,
            created_workdir,
        };
        match ended? {
            Ended::Exited(0) => Ok(outcome),
            Ended::Exited(code) => Err(SandboxError::CommandFailed { command, code }),
            Ended::Signaled(signal) => Err(SandboxError::CommandKilled { command, signal }),
            Ended::SetupFailed { step, errno } => {
                let mut step_text = describe_step(step, &op_descriptions);
                let source = if step == Step::Exec as u32 {
                    let argv0 = spec
                        .argv
                        .first()
                        .map(|a| a.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    step_text = format!("{step_text} {argv0}");
                    if errno == libc::ENOENT {
                        io::Error::new(
                            io::ErrorKind::NotFound,
                            "executable file not found in $PATH",
                        )
                    } else {
                        io::Error::from_raw_os_error(errno)
                    }
                } else {
                    io::Error::from_raw_os_error(errno)
                };
                // The sandbox's own binfmt_misc (and, for root, the user namespace made for
                // it) is the emulation's part: say so in the emulation's terms.
                let emulation_step = step == Step::Binfmt as u32
                    || (step == Step::Unshare as u32
                        && emulation.registration().is_some()
                        && self.id_mapping.is_none());
                if emulation_step {
                    return Err(SandboxError::NoEmulation {
                        command,
                        platform: spec.platform.clone().unwrap_or_default(),
                        host: format!("linux/{}", crate::binfmt::host_oci_arch()),
                        reason: format!(
                            "kiln could not {step_text}: {source}{}",
                            if source.raw_os_error() == Some(libc::EPERM) {
                                " (that needs Linux 6.7 or later and user namespaces)"
                            } else {
                                ""
                            }
                        ),
                    });
                }
                Err(SandboxError::Setup {
                    command,
                    step: step_text,
                    source,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(isolation: Isolation, disposable_container: bool) -> SandboxOptions {
        SandboxOptions {
            isolation,
            disposable_container,
            scratch_dir: None,
        }
    }

    #[test]
    fn auto_prefers_chroot_when_the_probe_works() {
        let (mode, reason) = decide(&opts(Isolation::Auto, true), Ok(()), true).unwrap();
        assert!(matches!(mode, Mode::Chroot { .. }));
        assert!(reason.contains("namespaces"), "{reason}");
    }

    #[test]
    fn auto_falls_back_to_in_place_only_in_a_known_disposable_container() {
        let probe = || Err("unshare: Operation not permitted".to_owned());
        let (mode, reason) = decide(&opts(Isolation::Auto, false), probe(), true).unwrap();
        assert_eq!(mode, Mode::InPlace);
        assert!(
            reason.contains(KILN_CONTAINER_MARKER) && reason.contains("Operation not permitted"),
            "{reason}"
        );
        let (mode, reason) = decide(&opts(Isolation::Auto, true), probe(), false).unwrap();
        assert_eq!(mode, Mode::InPlace);
        assert!(reason.contains("explicitly"), "{reason}");
        let err = decide(&opts(Isolation::Auto, false), probe(), false).unwrap_err();
        assert!(matches!(err, SandboxError::NoIsolation(_)));
        let msg = err.to_string();
        assert!(
            msg.contains(KILN_CONTAINER_MARKER) && msg.contains("Operation not permitted"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_requests_are_honoured_or_refused_with_the_reason() {
        let err = decide(
            &opts(Isolation::Chroot, true),
            Err("no userns".into()),
            true,
        )
        .unwrap_err();
        assert!(
            matches!(err, SandboxError::NoIsolation(ref m) if m.contains("no userns")),
            "{err}"
        );
        let err = decide(&opts(Isolation::InPlace, false), Ok(()), false).unwrap_err();
        assert!(matches!(err, SandboxError::InPlaceRefused(_)), "{err}");
        assert_eq!(
            decide(&opts(Isolation::InPlace, false), Ok(()), true)
                .unwrap()
                .0,
            Mode::InPlace
        );
        assert_eq!(
            decide(&opts(Isolation::InPlace, true), Ok(()), false)
                .unwrap()
                .0,
            Mode::InPlace
        );
    }
}
