//! Submodules (`--git recurse-submodules=true`): each gitlink of the checked-out
//! tree whose path `.gitmodules` names is fetched from its URL (relative URLs
//! against the parent repository's) at the recorded commit and written into its
//! directory, recursively.
//!
//! Only `http`, `https` and `git` URLs are followed: a `file://` or local path
//! in a repository would otherwise read the build machine's files.

use super::checkout::Gitlink;

/// A submodule to fetch: its URL and where it goes.
#[derive(Debug, Clone)]
pub(crate) struct Submodule {
    /// The absolute URL to fetch.
    pub url: url::Url,
    /// The gitlink it fills.
    pub link: Gitlink,
}

/// Pairs `gitlinks` with the URLs `.gitmodules` (its bytes) gives for their
/// paths; `parent` resolves relative URLs. A gitlink `.gitmodules` does not name
/// stays an empty directory, as with git.
pub(crate) fn resolve(
    gitmodules: &[u8],
    gitlinks: &[Gitlink],
    parent: &url::Url,
) -> Result<Vec<Submodule>, String> {
    let config = gix::config::File::from_bytes_no_includes(
        gitmodules,
        gix::config::file::Metadata::api(),
        Default::default(),
    )
    .map_err(|e| format!(".gitmodules: {e}"))?;
    let mut out = Vec::new();
    for section in config.sections_by_name("submodule").into_iter().flatten() {
        let name = section
            .header()
            .subsection_name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        let (Some(path), Some(url)) = (section.value("path"), section.value("url")) else {
            continue;
        };
        let path = path.to_string();
        let Some(link) = gitlinks
            .iter()
            .find(|l| l.path == path.trim_end_matches('/'))
        else {
            continue;
        };
        let url = absolute_url(&url.to_string(), parent)
            .map_err(|e| format!("submodule {name:?} ({path}): {e}"))?;
        out.push(Submodule {
            url,
            link: link.clone(),
        });
    }
    Ok(out)
}

fn absolute_url(url: &str, parent: &url::Url) -> Result<url::Url, String> {
    let resolved = if url.starts_with("./") || url.starts_with("../") {
        let mut base = parent.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(url).map_err(|e| format!("URL {url:?}: {e}"))?
    } else {
        url::Url::parse(url).map_err(|_| {
            format!("URL {url:?} is neither relative (./, ../) nor an http, https or git URL")
        })?
    };
    match resolved.scheme() {
        "http" | "https" | "git" => Ok(resolved),
        other => Err(format!(
            "the {other}:// URL is not followed (only http, https and git)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_urls_resolve_against_the_parent_and_file_urls_are_refused() {
        let parent = url::Url::parse("http://h/repos/main.git").unwrap();
        assert_eq!(
            absolute_url("../lib.git", &parent).unwrap().as_str(),
            "http://h/repos/lib.git"
        );
        assert!(
            absolute_url("file:///etc", &parent)
                .unwrap_err()
                .contains("file://")
        );
        assert!(absolute_url("/etc/x", &parent).is_err());
    }
}
