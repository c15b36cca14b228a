//! `ADD <git URL> <dest>`: BuildKit's semantics. The repository (Docker's
//! `https://HOST/PATH.git[#REF[#COMMIT]]`, or `git://HOST/PATH…` in the git
//! protocol, as BuildKit speaks it) is checked out by kiln-context into the
//! step's staging dir, without `.git` unless `--keep-git-dir=true`; `--checksum`
//! must then name the commit checked out. The checkout is copied like a
//! directory from another stage.
//!
//! A private repository: the build's git credentials (kaniko's
//! `GIT_USERNAME`, `GIT_PASSWORD`, `GIT_TOKEN`, read by the caller for a git
//! `--context`) are offered only to that context's origin (scheme, host,
//! port), and only when the server asks. The Dockerfile names ADD's hosts, so
//! sending them anywhere else would hand the build's secrets to whoever wrote
//! it; user info in the ADD URL itself is used as written.

use std::path::{Path, PathBuf};

/// A git source of an ADD, if `source` is one (errors: a malformed git URL).
pub(crate) fn parse(source: &str) -> Result<Option<kiln_context::GitSource>, String> {
    kiln_context::GitSource::parse(source, Some("git")).map_err(|e| format!("ADD {e}"))
}

/// Checks `source` out into `<dir>/root` (on a thread of its own: the git
/// client blocks) and returns that directory.
pub(crate) fn checkout(
    source: &kiln_context::GitSource,
    context: Option<&crate::GitContext>,
    keep_git_dir: bool,
    checksum: Option<&str>,
    dir: &Path,
) -> Result<PathBuf, String> {
    let root = dir.join("root");
    let scratch = dir.join("scratch");
    for d in [&root, &scratch] {
        fs_err::create_dir_all(d).map_err(|e| e.to_string())?;
    }
    let same_origin = context.filter(|c| c.source.origin() == source.origin());
    let credentials = same_origin
        .map(|c| c.credentials.clone())
        .unwrap_or_default();
    let fetched = std::thread::scope(|scope| {
        scope
            .spawn(|| {
                source.fetch(
                    &kiln_context::GitOptions::default(),
                    &credentials,
                    &kiln_auth::ProcessEnvironment,
                    &scratch,
                    &root,
                )
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
    .map_err(|e| {
        let text = e.to_string();
        if same_origin.is_none() && text.contains("GIT_USERNAME") {
            format!(
                "ADD {text} (for ADD these variables are sent only to the origin of a git --context{}; \
                 user info in the ADD URL is used as written)",
                context.map_or(String::new(), |c| format!(", {}", c.source.origin()))
            )
        } else {
            format!("ADD {text}")
        }
    })?;
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
