//! RUN: the command line (shell or exec form, heredocs), `--mount`
//! (bind, cache, tmpfs, secret) and `--network`, executed through
//! kiln-sandbox in the stage's rootfs, its layer the snapshot diff. Secret
//! values are written to a private file outside the rootfs, bind-mounted
//! read-only, and never appear in a layer, the history, a log line or the
//! cache key. `--mount`s are in `run/mounts.rs`, cache mounts and their
//! sharing modes in `run/cache_mount.rs`.

mod cache_mount;
mod mounts;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_dockerfile::instructions::{CommandLine, NetworkMode, RunCmd, SecurityMode};
use kiln_dockerfile::{Command, Instruction};
use kiln_oci::Digest;
use kiln_sandbox::{Mount, Network, RunSpec, Stream};

use crate::events::{BuildEvent, OutputStream, StepId};

use super::cached::Cacheable;
use super::state::{BuildEnv, StageRun, StepResult};
use mounts::{Held, mount_key_text, to_sandbox_mount};

/// Runs a RUN: its key first (a cache hit needs no files), then the command
/// in the sandbox, its layer the snapshot diff.
pub(super) fn step(
    run: &mut StageRun<'_, '_>,
    ins: &Instruction,
    id: &StepId,
) -> StepResult<Option<Digest>> {
    let Command::Run(cmd) = &ins.command else {
        return Err("internal: not a RUN".into());
    };
    // The key comes before the files: a hit needs no filesystem.
    let step = RunStep::prepare(run, cmd, ins.span.start.line, &run.planned_root())?;
    let created_by = step.created_by.clone();
    let key = run.advance_key(step.key_material.as_bytes());
    if let Some(result) = run.cached(Cacheable::Run, &key, &created_by)? {
        return Ok(result);
    }
    run.root()?;
    run.ensure_snapshotter()?;
    if run.env.options.single_snapshot {
        // The stage's one baseline stays; the diff comes at its end.
        step.execute(run.env, id)?;
        run.single_snapshot_steps.push(created_by);
        return Ok(None);
    }
    let snap = run.snapshotter.as_mut().ok_or("internal: no snapshotter")?;
    let running = snap
        .begin()
        .map_err(|e| format!("preparing the RUN's snapshot: {e}"))?;
    step.execute(run.env, id)?;
    let changes = running
        .finish()
        .map_err(|e| format!("snapshotting the RUN's changes: {e}"))?;
    let layer = run.push_layer(changes.into_entries(), created_by.clone())?;
    run.remember(Cacheable::Run, key, created_by, layer.as_ref());
    Ok(layer)
}

/// A RUN ready to execute.
pub struct RunStep {
    spec: RunSpec,
    /// History `created_by`.
    pub created_by: String,
    /// Cache key material (no secret values).
    pub key_material: String,
    /// What the run uses and releases when it ends.
    held: Held,
}

impl RunStep {
    /// Builds the sandbox spec from the instruction and the stage state.
    pub fn prepare(
        stage: &StageRun<'_, '_>,
        cmd: &RunCmd,
        line: u32,
        root: &Path,
    ) -> Result<RunStep, String> {
        let ctx = stage.run_context();
        let env = stage.build_env();
        // One directory per stage: stages may run at the same time.
        let tmp_dir = env
            .work
            .join("run-tmp")
            .join(format!("stage-{}", stage.stage_index()));
        fs_err::create_dir_all(&tmp_dir).map_err(|e| e.to_string())?;
        let mut held = Held::default();
        let mut mounts = Vec::new();
        let mut key_extra = Vec::new();
        let mut secret_env = Vec::new();

        let mut argv: Vec<String> = match &cmd.command {
            CommandLine::Exec(argv) => argv.clone(),
            CommandLine::Shell(text) => {
                let mut argv = ctx.shell.clone();
                argv.push(text.clone());
                argv
            }
        };
        if let (CommandLine::Shell(text), Some(first)) = (&cmd.command, cmd.heredocs.first()) {
            let marker = text
                .trim()
                .trim_start_matches("<<")
                .trim_start_matches('-')
                .trim_matches(['"', '\'']);
            if marker == first.name && cmd.heredocs.len() == 1 {
                // `RUN <<EOF` alone: the heredoc is the script.
                let content = if first.chomp {
                    kiln_dockerfile::syntax::chomp_heredoc(&first.content)
                } else {
                    first.content.clone()
                };
                if content.starts_with("#!") {
                    let script = tmp_dir.join(format!("heredoc-{line}"));
                    fs_err::write(&script, &content).map_err(|e| e.to_string())?;
                    fs_err::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                        .map_err(|e| e.to_string())?;
                    let target = PathBuf::from(format!("/.kiln-heredoc-{line}"));
                    mounts.push(Mount::Bind {
                        source: script.clone(),
                        target: target.clone(),
                        readonly: true,
                    });
                    held.temp.push(script);
                    argv = vec![target.to_string_lossy().into_owned()];
                } else {
                    argv = ctx.shell.clone();
                    argv.push(content);
                }
            } else {
                // Heredocs inside a longer command: hand the shell the whole text.
                let mut script = text.clone();
                for doc in &cmd.heredocs {
                    script.push('\n');
                    script.push_str(&doc.content);
                    script.push_str(&doc.name);
                }
                argv = ctx.shell.clone();
                argv.push(script);
            }
        }

        for mount in &cmd.mounts {
            key_extra.push(mount_key_text(mount));
            if let Some(m) = to_sandbox_mount(
                mount,
                stage,
                env,
                &tmp_dir,
                &mut held,
                &mut key_extra,
                &mut secret_env,
            )? {
                mounts.push(m);
            }
        }
        let network = match cmd.network {
            None | Some(NetworkMode::Default) => Network::Default,
            Some(NetworkMode::None) => Network::None,
            Some(NetworkMode::Host) => Network::Host,
        };
        key_extra.push(format!("network={network:?}"));
        if cmd.security == Some(SecurityMode::Insecure) {
            return Err("RUN --security=insecure is not supported".into());
        }

        let arg_prefix = if ctx.args.is_empty() {
            String::new()
        } else {
            let shown: Vec<String> = ctx.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("|{} {} ", ctx.args.len(), shown.join(" "))
        };
        let created_by = format!("RUN {arg_prefix}{} # buildkit", argv.join(" "));
        let key_material = format!(
            "{created_by}\n{:?}\n{}\n{}\n{}",
            ctx.run_env,
            ctx.user,
            ctx.workdir,
            key_extra.join("\n")
        );
        let mut spec = RunSpec::new(root, argv);
        spec.env = ctx.run_env;
        spec.env.extend(secret_env);
        spec.cwd = PathBuf::from(&ctx.workdir);
        spec.user = ctx.user.clone();
        spec.mounts = mounts;
        spec.network = network;
        // A stage of a foreign platform runs under emulation (or fails, before the
        // command runs, with the sandbox's explanation).
        spec.platform = crate::platforms::foreign_platform(&stage.platform());
        Ok(RunStep {
            spec,
            created_by,
            key_material,
            held,
        })
    }

    /// Runs the command, streaming its output as events.
    pub fn execute(self, env: &BuildEnv<'_>, id: &StepId) -> Result<(), String> {
        let sandbox = env
            .sandbox
            .get_or_init(|| make_sandbox(env.options))
            .as_ref()
            .map_err(|e| e.clone())?;
        if sandbox.mode() == kiln_sandbox::Mode::InPlace && !env.in_place {
            return Err(
                "internal: in-place isolation chosen after the stage roots were laid out".into(),
            );
        }
        let observer = env.observer;
        let mut sink = |stream: Stream, line: &[u8]| {
            observer.event(&BuildEvent::RunOutput {
                id: id.clone(),
                stream: match stream {
                    Stream::Stdout => OutputStream::Stdout,
                    Stream::Stderr => OutputStream::Stderr,
                },
                line: String::from_utf8_lossy(line).into_owned(),
            });
        };
        let result = sandbox.run(&self.spec, &mut sink);
        drop(self.held.caches);
        for path in &self.held.temp {
            let _ = if path.is_dir() {
                fs_err::remove_dir_all(path)
            } else {
                fs_err::remove_file(path)
            };
        }
        result
            .map(|_| ())
            .map_err(|e| match disk_full_note(&self.spec.root) {
                Some(note) => format!("{e} ({note})"),
                None => e.to_string(),
            })
    }
}

/// Why a failed RUN may have failed when the file system holding its root has no
/// space left: the command's own message ("dd: error writing") names a path inside
/// the image, not the directory on the host that filled up.
fn disk_full_note(root: &std::path::Path) -> Option<String> {
    let stat = nix::sys::statvfs::statvfs(root).ok()?;
    let free = stat.blocks_available().saturating_mul(stat.fragment_size());
    (free < 64 * 1024).then(|| {
        format!(
            "No space left on device: the file system holding {} is full",
            root.display()
        )
    })
}

/// The RUN sandbox for the requested isolation (kiln-sandbox decides and explains),
/// with the emulators it may register for foreign-platform steps.
pub fn make_sandbox(
    options: &crate::options::BuildOptions,
) -> Result<kiln_sandbox::Sandbox, String> {
    let isolation = match options.isolation {
        crate::options::Isolation::Auto => kiln_sandbox::Isolation::Auto,
        crate::options::Isolation::Chroot => kiln_sandbox::Isolation::Chroot,
        crate::options::Isolation::InPlace => kiln_sandbox::Isolation::InPlace,
    };
    kiln_sandbox::Sandbox::new(&kiln_sandbox::SandboxOptions {
        isolation,
        disposable_container: false,
        scratch_dir: Some(options.kaniko_dir.clone()),
    })
    .and_then(|sandbox| sandbox.with_emulators(emulators(options)))
    .map_err(|e| e.to_string())
}

/// `--emulator` paths, then the emulator directories.
pub fn emulators(options: &crate::options::BuildOptions) -> kiln_sandbox::Emulators {
    kiln_sandbox::Emulators {
        paths: options.emulators.clone(),
        dirs: options.emulator_dirs.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::disk_full_note;

    // Regression (issue 19, found by `cargo xtask chaos`'s full-disk family): a RUN
    // that failed because kiln's dir filled up said only "returned a non-zero code".
    #[test]
    fn a_failed_run_on_a_full_file_system_names_it() {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "this test mounts a tmpfs: run it as root"
        );
        let dir = tempfile::tempdir().unwrap();
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "mounting a tmpfs on {}",
            dir.path().display()
        );
        let root = dir.path().join("rootfs");
        std::fs::create_dir(&root).unwrap();
        assert_eq!(disk_full_note(&root), None, "an empty tmpfs is not full");
        let filled = std::fs::write(root.join("fill"), vec![1u8; 1 << 20]);
        let note = disk_full_note(&root);
        let _ = std::process::Command::new("umount")
            .arg(dir.path())
            .status();
        assert!(filled.is_err(), "1 MiB fitted into a 256 KiB tmpfs");
        let note = note.expect("a full tmpfs is reported");
        assert!(note.contains("No space left on device"), "{note}");
        assert!(note.contains(&root.display().to_string()), "{note}");
    }
}
