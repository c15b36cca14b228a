//! Lexical path helpers for paths inside an image root, and symlink
//! resolution that never leaves the root (a `..` or an absolute symlink
//! target is interpreted relative to the root, as Docker does).

use std::path::{Component, Path, PathBuf};

/// Cleans an absolute image path: `/a/./b/../c` is `/a/c`; `..` at `/` stays at `/`.
pub fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Joins a (possibly relative) path onto a working directory and cleans it.
pub fn join_workdir(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean_abs(path)
    } else {
        clean_abs(&format!("{workdir}/{path}"))
    }
}

/// Resolves `abs` (an image path) inside `root`, following symlinks of
/// existing components but never leaving `root`. Components that do not exist
/// are appended as they are. Returns the resolved image path (absolute, clean).
pub fn resolve_in_root(root: &Path, abs: &str) -> String {
    let mut resolved: Vec<String> = Vec::new();
    let mut pending: Vec<String> = clean_abs(abs)
        .split('/')
        .filter(|p| !p.is_empty())
        .rev()
        .map(str::to_string)
        .collect();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        if part == "." || part.is_empty() {
            continue;
        }
        resolved.push(part);
        let host = host_path(root, &resolved);
        if let Ok(target) = std::fs::read_link(&host) {
            hops += 1;
            if hops > 40 {
                break;
            }
            resolved.pop();
            let target = target.to_string_lossy().into_owned();
            if target.starts_with('/') {
                resolved.clear();
            }
            for t in target.split('/').rev() {
                pending.push(t.to_string());
            }
        }
    }
    format!("/{}", resolved.join("/"))
}

/// The host path of an image path's components under `root`.
pub fn host_path(root: &Path, components: &[String]) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in components {
        out.push(c);
    }
    out
}

/// The host path for an already resolved, clean absolute image path.
pub fn host_of(root: &Path, abs: &str) -> PathBuf {
    let rel = Path::new(abs.trim_start_matches('/'));
    let mut out = root.to_path_buf();
    for comp in rel.components() {
        if let Component::Normal(c) = comp {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_join() {
        assert_eq!(clean_abs("/a/./b/../c/"), "/a/c");
        assert_eq!(clean_abs("/../.."), "/");
        assert_eq!(join_workdir("/app", "sub/"), "/app/sub");
        assert_eq!(join_workdir("/app", "/abs"), "/abs");
        assert_eq!(join_workdir("/", "."), "/");
    }

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        fs_err::create_dir_all(root.path().join("real/dir")).unwrap();
        std::os::unix::fs::symlink("/real", root.path().join("abs")).unwrap();
        std::os::unix::fs::symlink("../../../real", root.path().join("real/dir/up")).unwrap();
        assert_eq!(
            resolve_in_root(root.path(), "/abs/dir/new"),
            "/real/dir/new"
        );
        assert_eq!(resolve_in_root(root.path(), "/real/dir/up/x"), "/real/x");
    }
}
