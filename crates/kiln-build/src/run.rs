//! RUN: the command line (shell or exec form, heredocs), `--mount`
//! (bind, cache, tmpfs, secret) and `--network`, executed through
//! kiln-sandbox in the stage's rootfs. Secret values are written to a
//! private file outside the rootfs, bind-mounted read-only, and never appear
//! in a layer, the history, a log line or the cache key. Cache mounts and
//! their sharing modes are in `run/cache_mount.rs`.

mod cache_mount;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_dockerfile::instructions::{
    CommandLine, Mount as MountSpec, MountKind, NetworkMode, RunCmd, SecurityMode,
};
use kiln_sandbox::{Mount, Network, RunSpec, Stream};

use crate::events::{BuildEvent, OutputStream, StepId};
use crate::options::SecretSource;
use crate::stage::{BuildEnv, StageRun};

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

/// Host resources a RUN holds for its duration.
#[derive(Default)]
struct Held {
    /// Temporary host files to delete after the run (secrets, scripts, rw copies).
    temp: Vec<PathBuf>,
    /// Cache mounts in use, locked as their sharing mode says until the run ends.
    caches: Vec<cache_mount::CacheDir>,
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

/// Key text of a mount: what it is, never a secret's value.
fn mount_key_text(m: &MountSpec) -> String {
    format!(
        "mount type={:?} target={:?} source={:?} from={:?} id={:?} ro={}",
        m.kind, m.target, m.source, m.from, m.id, m.readonly
    )
}

fn to_sandbox_mount(
    m: &MountSpec,
    stage: &StageRun<'_, '_>,
    env: &BuildEnv<'_>,
    tmp_dir: &Path,
    held: &mut Held,
    key_extra: &mut Vec<String>,
    secret_env: &mut Vec<(String, String)>,
) -> Result<Option<Mount>, String> {
    match m.kind {
        MountKind::Bind => {
            let target = m.target.clone().ok_or("--mount=type=bind needs a target")?;
            let base = match &m.from {
                None => env.context.root().to_path_buf(),
                Some(name) => stage.stage_root(name).ok_or_else(|| {
                    format!("--mount from={name}: neither an earlier stage nor an image reference")
                })?,
            };
            let rel =
                crate::rootfs_path::clean_abs(&format!("/{}", m.source.as_deref().unwrap_or("")));
            let source = crate::rootfs_path::host_of(
                &base,
                &crate::rootfs_path::resolve_in_root(&base, &rel),
            );
            if std::fs::symlink_metadata(&source).is_err() {
                return Err(format!("--mount source {rel} does not exist"));
            }
            key_extra.push(format!("bind {} {}", rel, content_digest(&source)?));
            let source = if m.readonly {
                source
            } else {
                // Writes to a read-write bind mount are discarded: the command gets a copy,
                // so the build context is never modified.
                let copy = tmp_dir.join(format!("bind-{}", held.temp.len()));
                if source.is_dir() {
                    crate::tree_copy::copy_tree(&source, &copy)?;
                } else {
                    fs_err::copy(&source, &copy).map_err(|e| e.to_string())?;
                }
                held.temp.push(copy.clone());
                copy
            };
            Ok(Some(Mount::Bind {
                source,
                target: PathBuf::from(target),
                readonly: m.readonly,
            }))
        }
        MountKind::Cache => {
            let target = m
                .target
                .clone()
                .ok_or("--mount=type=cache needs a target")?;
            let id = m.id.clone().unwrap_or_else(|| target.clone());
            let cache = cache_mount::acquire(
                &env.options.kaniko_dir.join("cache-mounts"),
                &id,
                m.sharing,
                &cache_mount::NewDir {
                    mode: m.mode.unwrap_or(0o755),
                    uid: m.uid.unwrap_or(0),
                    gid: m.gid.unwrap_or(0),
                },
            )?;
            let dir = cache.path.clone();
            held.caches.push(cache);
            Ok(Some(Mount::Bind {
                source: dir,
                target: PathBuf::from(target),
                readonly: m.readonly,
            }))
        }
        MountKind::Tmpfs => {
            let target = m
                .target
                .clone()
                .ok_or("--mount=type=tmpfs needs a target")?;
            Ok(Some(Mount::Tmpfs {
                target: PathBuf::from(target),
                size: m.size,
                mode: 0o1777,
            }))
        }
        MountKind::Secret => {
            let id = match (&m.id, &m.target) {
                (Some(id), _) => id.clone(),
                (None, Some(t)) => Path::new(t)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                (None, None) => return Err("--mount=type=secret needs an id or a target".into()),
            };
            let value = match env.options.secrets.get(&id) {
                Some(SecretSource::File(path)) => fs_err::read(path)
                    .map_err(|e| format!("secret {id:?}: reading its source file: {}", e.kind()))?,
                Some(SecretSource::Env(var)) => std::env::var_os(var)
                    .ok_or_else(|| format!("secret {id:?}: environment variable {var} is not set"))?
                    .into_encoded_bytes(),
                None if m.required => {
                    return Err(format!(
                        "secret {id:?} is required but was not given (--secret id={id},src=...)"
                    ));
                }
                None => return Ok(None),
            };
            // The key sees the secret only as a digest of its digest.
            let inner = kiln_oci::Digest::sha256_of(&value);
            key_extra.push(format!(
                "secret {id} {}",
                kiln_oci::Digest::sha256_of(inner.to_string().as_bytes())
            ));
            if let Some(var) = &m.env {
                // `env=`: the value is in the command's environment only (not in the
                // history, the key or any event); a file too only with a target.
                let text = String::from_utf8(value.clone()).map_err(|_| {
                    format!("secret {id:?} is not UTF-8 and cannot be an environment variable")
                })?;
                secret_env.push((var.clone(), text));
                if m.target.is_none() {
                    return Ok(None);
                }
            }
            let target = m
                .target
                .clone()
                .unwrap_or_else(|| format!("/run/secrets/{id}"));
            let file = tmp_dir.join(format!("secret-{}", held.temp.len()));
            fs_err::write(&file, value).map_err(|e| e.to_string())?;
            fs_err::set_permissions(
                &file,
                std::fs::Permissions::from_mode(m.mode.unwrap_or(0o400)),
            )
            .map_err(|e| e.to_string())?;
            if crate::archive::running_as_root() {
                std::os::unix::fs::lchown(
                    &file,
                    Some(m.uid.unwrap_or(0)),
                    Some(m.gid.unwrap_or(0)),
                )
                .map_err(|e| e.to_string())?;
            }
            held.temp.push(file.clone());
            Ok(Some(Mount::Bind {
                source: file,
                target: PathBuf::from(target),
                readonly: true,
            }))
        }
        MountKind::Ssh => Err("RUN --mount=type=ssh is not supported".into()),
    }
}

/// A digest of a file or directory tree's paths, kinds, modes, owners and
/// contents (not mtimes), for RUN keys with bind mounts.
fn content_digest(path: &Path) -> Result<kiln_oci::Digest, String> {
    use std::os::unix::fs::MetadataExt;
    let mut hasher = kiln_oci::Hasher::sha256();
    let mut todo = vec![PathBuf::new()];
    while let Some(rel) = todo.pop() {
        // `join("")` would append a slash, which a single-file source refuses.
        let full = if rel.as_os_str().is_empty() {
            path.to_path_buf()
        } else {
            path.join(&rel)
        };
        let meta = fs_err::symlink_metadata(&full).map_err(|e| e.to_string())?;
        hasher.update(
            format!(
                "{}\0{:o}\0{}:{}\0",
                rel.display(),
                meta.mode(),
                meta.uid(),
                meta.gid()
            )
            .as_bytes(),
        );
        if meta.is_dir() {
            let mut names: Vec<_> = fs_err::read_dir(&full)
                .map_err(|e| e.to_string())?
                .filter_map(|e| e.ok().map(|e| e.file_name()))
                .collect();
            names.sort();
            todo.extend(names.into_iter().rev().map(|n| rel.join(n)));
        } else if meta.file_type().is_symlink() {
            let target = fs_err::read_link(&full).map_err(|e| e.to_string())?;
            hasher.update(target.as_os_str().as_encoded_bytes());
        } else if meta.is_file() {
            let mut file = fs_err::File::open(&full).map_err(|e| e.to_string())?;
            let mut writer = kiln_oci::DigestWriter::new(std::io::sink());
            std::io::copy(&mut file, &mut writer).map_err(|e| e.to_string())?;
            let (_, digest, _) = writer.finish().map_err(|e| e.to_string())?;
            hasher.update(digest.to_string().as_bytes());
        }
    }
    Ok(hasher.finish())
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
