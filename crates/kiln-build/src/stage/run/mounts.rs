//! RUN's `--mount`s turned into sandbox mounts: bind (a copy when read-write,
//! so the context is never modified), cache, tmpfs and secret (a private file,
//! its value never in the key), with the key text each adds (bind mounts by
//! their content's digest).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use kiln_dockerfile::instructions::{Mount as MountSpec, MountKind};
use kiln_sandbox::Mount;

use crate::options::SecretSource;

use super::super::state::{BuildEnv, StageRun};
use super::cache_mount;

/// Host resources a RUN holds for its duration.
#[derive(Default)]
pub(super) struct Held {
    /// Temporary host files to delete after the run (secrets, scripts, rw copies).
    pub(super) temp: Vec<PathBuf>,
    /// Cache mounts in use, locked as their sharing mode says until the run ends.
    pub(super) caches: Vec<cache_mount::CacheDir>,
}

/// Key text of a mount: what it is, never a secret's value.
pub(super) fn mount_key_text(m: &MountSpec) -> String {
    format!(
        "mount type={:?} target={:?} source={:?} from={:?} id={:?} ro={}",
        m.kind, m.target, m.source, m.from, m.id, m.readonly
    )
}

pub(super) fn to_sandbox_mount(
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
