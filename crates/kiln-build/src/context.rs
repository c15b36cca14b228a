//! The build context: a directory, a tar (file, stdin, HTTP(S) URL or object
//! in S3, GCS or Azure Blob Storage, streamed) unpacked into the work dir, or
//! a git repository checked out into it (by kiln-context, on a thread of its
//! own: its clients are blocking), narrowed to `--context-sub-path`, with its
//! `.dockerignore`.

use std::path::{Path, PathBuf};

use crate::archive;
use crate::dockerignore::IgnoreMatcher;
use crate::error::BuildError;
use crate::options::ContextSource;

/// A build context ready to copy from.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    ignore: IgnoreMatcher,
    /// Where a tar context was unpacked (`<dir>/root`); removed on drop.
    _unpacked: Option<tempfile::TempDir>,
}

impl BuildContext {
    /// Opens the context. Tar contexts are unpacked under `work_dir`.
    pub fn open(
        source: &ContextSource,
        sub_path: Option<&Path>,
        work_dir: &Path,
    ) -> Result<BuildContext, BuildError> {
        let (base, unpacked) = match source {
            ContextSource::Dir(dir) => {
                let meta = fs_err::metadata(dir).map_err(|e| BuildError::Context {
                    path: dir.clone(),
                    reason: format!("cannot use it as the build context: {}", io_reason(&e)),
                })?;
                if !meta.is_dir() {
                    return Err(BuildError::Context {
                        path: dir.clone(),
                        reason: "is not a directory".into(),
                    });
                }
                (dir.clone(), None)
            }
            ContextSource::TarFile(path) => {
                let file = fs_err::File::open(path).map_err(|e| BuildError::Context {
                    path: path.clone(),
                    reason: format!("cannot open the context tar: {}", io_reason(&e)),
                })?;
                let dir = unpack_tar(file, path, work_dir)?;
                (dir.path().join("root"), Some(dir))
            }
            ContextSource::TarStdin => {
                let dir = unpack_tar(std::io::stdin().lock(), Path::new("-"), work_dir)?;
                (dir.path().join("root"), Some(dir))
            }
            ContextSource::Url(tarball) => {
                let dir = off_runtime(|| {
                    let body = tarball
                        .open(&kiln_auth::ProcessEnvironment)
                        .map_err(BuildError::RemoteContext)?;
                    unpack_tar(body, Path::new(tarball.url()), work_dir)
                })?;
                (dir.path().join("root"), Some(dir))
            }
            ContextSource::Object(object) => {
                let dir = off_runtime(|| {
                    let body = object
                        .open(&kiln_auth::ProcessEnvironment)
                        .map_err(BuildError::RemoteContext)?;
                    unpack_tar(body, Path::new(&object.url()), work_dir)
                })?;
                (dir.path().join("root"), Some(dir))
            }
            ContextSource::Git(git) => {
                let dir = context_dir(work_dir)?;
                let root = dir.path().join("root");
                let scratch = dir.path().join("git");
                for d in [&root, &scratch] {
                    fs_err::create_dir(d).map_err(|e| BuildError::io("creating", d.clone(), e))?;
                }
                let fetched = off_runtime(|| {
                    git.source
                        .fetch(
                            &git.options,
                            &git.credentials,
                            &kiln_auth::ProcessEnvironment,
                            &scratch,
                            &root,
                        )
                        .map_err(BuildError::RemoteContext)
                })?;
                tracing::info!(url = %git.source.display_url(), commit = %fetched.commit, "git context checked out");
                (root, Some(dir))
            }
        };
        let root = match sub_path {
            None => base,
            Some(sub) => {
                let rel = crate::dockerignore::clean(&sub.to_string_lossy());
                if rel.starts_with("..") || rel.starts_with('/') {
                    return Err(BuildError::Context {
                        path: sub.to_path_buf(),
                        reason: "the context sub path must stay inside the context".into(),
                    });
                }
                let root = base.join(rel);
                if !root.is_dir() {
                    return Err(BuildError::Context {
                        path: root,
                        reason: "the context sub path is not a directory in the context".into(),
                    });
                }
                root
            }
        };
        Ok(BuildContext {
            root,
            ignore: IgnoreMatcher::default(),
            _unpacked: unpacked,
        })
    }

    /// The directory COPY sources are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The ignore rules in force.
    pub fn ignore(&self) -> &IgnoreMatcher {
        &self.ignore
    }

    /// Loads `<dockerfile>.dockerignore` if it exists next to the Dockerfile,
    /// otherwise `.dockerignore` at the context root (BuildKit's rule).
    pub fn load_ignore(&mut self, dockerfile: Option<&Path>) -> Result<(), BuildError> {
        let mut candidates = Vec::new();
        if let Some(df) = dockerfile {
            let mut name = df.as_os_str().to_owned();
            name.push(".dockerignore");
            candidates.push(PathBuf::from(name));
        }
        candidates.push(self.root.join(".dockerignore"));
        for candidate in candidates {
            match fs_err::read_to_string(&candidate) {
                Ok(text) => {
                    self.ignore = IgnoreMatcher::parse(&text, &candidate)?;
                    tracing::debug!(path = %candidate.display(), "loaded ignore file");
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(BuildError::io("reading the ignore file", candidate, e)),
            }
        }
        Ok(())
    }
}

/// Runs `f` on a thread of its own: remote contexts use blocking clients,
/// which must not run on (or be dropped by) a tokio worker.
fn off_runtime<T: Send>(f: impl FnOnce() -> Result<T, BuildError> + Send) -> Result<T, BuildError> {
    std::thread::scope(|scope| {
        scope
            .spawn(f)
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// A new `context-*` directory in the work dir, left for the work dir's removal.
fn context_dir(work_dir: &Path) -> Result<tempfile::TempDir, BuildError> {
    fs_err::create_dir_all(work_dir)
        .map_err(|e| BuildError::io("creating the work dir", work_dir, e))?;
    let mut dir = tempfile::Builder::new()
        .prefix("context-")
        .tempdir_in(work_dir)
        .map_err(|e| BuildError::io("creating a context directory in", work_dir, e))?;
    // It lives in the build dir, which is removed in the background with the rest:
    // removing it when the context drops would put that on the build's critical path.
    dir.disable_cleanup(true);
    Ok(dir)
}

fn unpack_tar(
    reader: impl std::io::Read,
    shown: &Path,
    work_dir: &Path,
) -> Result<tempfile::TempDir, BuildError> {
    let dir = context_dir(work_dir)?;
    let root = dir.path().join("root");
    fs_err::create_dir(&root).map_err(|e| BuildError::io("creating", root.clone(), e))?;
    let fail = |reason: String| BuildError::Context {
        path: shown.to_path_buf(),
        reason,
    };
    let stream = archive::decompressed(reader).map_err(|e| fail(format!("reading it: {e}")))?;
    let options = kiln_layer::ApplyOptions {
        preserve_owners: archive::running_as_root(),
        xattrs: false,
    };
    kiln_layer::apply_tar(stream, "the context tar", &root, &options)
        .map_err(|e| fail(e.to_string()))?;
    Ok(dir)
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_context_with_sub_path_and_kaniko_dockerignore() {
        let integration = crate::test_support::kaniko_integration_dir();
        let work = tempfile::tempdir().unwrap();
        let mut ctx =
            BuildContext::open(&ContextSource::Dir(integration.clone()), None, work.path())
                .unwrap();
        ctx.load_ignore(Some(&integration.join("dockerfiles/Dockerfile_test_copy")))
            .unwrap();
        assert!(ctx.ignore().is_ignored("ignore/bar"));
        assert!(!ctx.ignore().is_ignored("ignore/foo"));

        // The per-Dockerfile ignore file wins over the root one.
        let mut ctx =
            BuildContext::open(&ContextSource::Dir(integration.clone()), None, work.path())
                .unwrap();
        ctx.load_ignore(Some(
            &integration.join("dockerfiles/Dockerfile_dockerignore_relative"),
        ))
        .unwrap();
        assert!(ctx.ignore().is_ignored("ignore_relative/bar"));
        assert!(!ctx.ignore().is_ignored("ignore/bar"));

        let ctx = BuildContext::open(
            &ContextSource::Dir(integration.clone()),
            Some(Path::new("context/bar")),
            work.path(),
        )
        .unwrap();
        assert!(ctx.root().join("bat").is_file());
        let err = BuildContext::open(
            &ContextSource::Dir(integration.clone()),
            Some(Path::new("../escape")),
            work.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("inside the context"), "{err}");
    }

    #[test]
    fn missing_context_names_the_path() {
        let work = tempfile::tempdir().unwrap();
        let err = BuildContext::open(
            &ContextSource::Dir(PathBuf::from("/nonexistent/ctx")),
            None,
            work.path(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("/nonexistent/ctx"), "{text}");
        assert!(text.contains("no such file"), "{text}");
    }

    #[test]
    fn gzipped_tar_context_is_unpacked_in_the_work_dir() {
        let work = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let tar_path = src.path().join("ctx.tar.gz");
        {
            let file = fs_err::File::create(&tar_path).unwrap();
            let gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
            let mut builder = tar::Builder::new(gz);
            let mut header = tar::Header::new_gnu();
            header.set_size(3);
            header.set_mode(0o644);
            header.set_uid(0);
            header.set_gid(0);
            header.set_mtime(0);
            builder
                .append_data(&mut header, "sub/Dockerfile", &b"abc"[..])
                .unwrap();
            builder.into_inner().unwrap().finish().unwrap();
        }
        let ctx = BuildContext::open(
            &ContextSource::TarFile(tar_path),
            Some(Path::new("sub")),
            work.path(),
        )
        .unwrap();
        assert!(ctx.root().starts_with(work.path()));
        assert_eq!(fs_err::read(ctx.root().join("Dockerfile")).unwrap(), b"abc");
    }

    #[test]
    fn a_context_tar_cannot_write_through_its_own_symlinks() {
        let work = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let tar_path = src.path().join("evil.tar");
        {
            let mut builder = tar::Builder::new(fs_err::File::create(&tar_path).unwrap());
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            link.set_mode(0o777);
            link.set_uid(0);
            link.set_gid(0);
            link.set_mtime(0);
            builder
                .append_link(&mut link, "link", outside.path())
                .unwrap();
            let mut file = tar::Header::new_gnu();
            file.set_size(4);
            file.set_mode(0o644);
            file.set_uid(0);
            file.set_gid(0);
            file.set_mtime(0);
            builder
                .append_data(&mut file, "link/pwned", &b"evil"[..])
                .unwrap();
            builder.finish().unwrap();
        }
        let _ = BuildContext::open(&ContextSource::TarFile(tar_path), None, work.path());
        assert!(
            !outside.path().join("pwned").exists(),
            "wrote outside the context root"
        );
    }
}
