//! `ADD <git URL> <dest>`: BuildKit's semantics. The repository (Docker's
//! `https://HOST/PATH.git[#REF[#COMMIT]]`, or `git://HOST/PATH…` in the git
//! protocol, as BuildKit speaks it) is checked out by kiln-context into the
//! step's staging dir, without `.git` unless `--keep-git-dir=true`; `--checksum`
//! must then name the commit checked out. The checkout is copied like a
//! directory from another stage.

use std::path::{Path, PathBuf};

/// A git source of an ADD, if `source` is one (errors: a malformed git URL).
pub(crate) fn parse(source: &str) -> Result<Option<kiln_context::GitSource>, String> {
    kiln_context::GitSource::parse(source, Some("git")).map_err(|e| format!("ADD {e}"))
}

/// Checks `source` out into `<dir>/root` (on a thread of its own: the git
/// client blocks) and returns that directory.
pub(crate) fn checkout(
    source: &kiln_context::GitSource,
    keep_git_dir: bool,
    checksum: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, String> {
    let root = dir.join("root");
    let scratch = dir.join("scratch");
    for d in [&root, &scratch] {
        fs_err::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let fetched = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                source.fetch(
                    &kiln_context::GitOptions::default(),
                    &kiln_context::GitCredentials::default(),
                    &kiln_auth::ProcessEnvironment,
                    &scratch,
                    &root,
                )
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
    .map_err(|e| format!("ADD {e}"))?;
    if let Some(sum) = checksum {
        let wanted = sum
            .strip_prefix("sha1:")
            .unwrap_or(sum)
            .to_ascii_lowercase();
        if wanted != fetched.commit {
            return Err(format!(
                "ADD --checksum={sum}: {} resolved to commit {}; for a git source the checksum is the full commit id",
                source.display_url(),
                fetched.commit
            ));
        }
    }
    if keep_git_dir {
        kiln_context::keep_git_dir(&fetched, &root).map_err(|e| format!("ADD {e}"))?;
    }
    Ok(root)
}
