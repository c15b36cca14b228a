//! `ADD --keep-git-dir=true`: the fetched repository becomes the checkout's
//! `.git`, a working repository (not bare, an index of the commit's tree), as
//! BuildKit leaves it.

use std::path::Path;

use super::Fetched;
use crate::ContextError;

/// Moves `fetched`'s repository to `dest/.git` (same file system: both live
/// in the caller's work dir), marks it non-bare and writes its index.
pub fn keep_git_dir(fetched: &Fetched, dest: &Path) -> Result<(), ContextError> {
    let git_dir = dest.join(".git");
    let fail = |what: &'static str, reason: String| ContextError::Git {
        url: fetched.url.clone(),
        reference: fetched.commit.clone(),
        what,
        reason,
        hint: String::new(),
    };
    std::fs::rename(&fetched.git_dir, &git_dir).map_err(|source| ContextError::Write {
        url: fetched.url.clone(),
        path: git_dir.clone(),
        source,
    })?;
    let config_path = git_dir.join("config");
    let mut config =
        gix::config::File::from_path_no_includes(config_path.clone(), gix::config::Source::Local)
            .map_err(|e| fail("reading the repository's config", e.to_string()))?;
    config
        .set_raw_value_by("core", None, "bare", "false")
        .map_err(|e| fail("editing the repository's config", e.to_string()))?;
    let mut bytes = Vec::new();
    config
        .write_to(&mut bytes)
        .map_err(|e| fail("writing the repository's config", e.to_string()))?;
    std::fs::write(&config_path, bytes).map_err(|source| ContextError::Write {
        url: fetched.url.clone(),
        path: config_path.clone(),
        source,
    })?;
    let repo = gix::open_opts(dest, gix::open::Options::isolated())
        .map_err(|e| fail("opening the kept repository", e.to_string()))?;
    let tree = repo
        .head_commit()
        .and_then(|c| c.tree_id().map(|t| t.detach()))
        .map_err(|e| fail("reading HEAD", e.to_string()))?;
    let mut index = repo
        .index_from_tree(&tree)
        .map_err(|e| fail("building the index", e.to_string()))?;
    index
        .write(Default::default(), Default::default())
        .map_err(|e| fail("writing the index", e.to_string()))?;
    Ok(())
}
