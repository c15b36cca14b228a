//! Which local base image stands in for each external image of the corpus,
//! and under which name it is pushed to the harness's registry.
//!
//! Mapping (by repository, after dropping the registry host and `library/`):
//! debian, ubuntu, fedora, ubi7/ubi, ubi8/ubi, distroless/base -> Debian
//! bookworm minbase; alpine, busybox and google/cloud-sdk (its `-alpine` tag,
//! used only as the base of the COPY cache cases) -> the busybox fixture.
//! Anything else (phusion/baseimage, rabbitmq, jboss/base-jdk, composer,
//! php, atomist/sdm-base, kaniko-test/hardlink-base and extraction-base-image)
//! has no stand-in and its cases are skipped. kaniko-test/onbuild-base is
//! built from the corpus itself, as kaniko's harness did. The local name keeps the repository and tag, so that
//! `alpine:3.9` becomes `127.0.0.1:PORT/alpine:3.9`; a digest-pinned
//! reference becomes the tag `sha256-<first 12 hex>` (the digest of a rebuilt
//! stand-in can never match the original one).

/// The locally made image a reference is mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum BaseKind {
    /// The testkit busybox fixture.
    Busybox,
    /// Debian bookworm minbase from debootstrap.
    Debian,
    /// kaniko's `onbuild-base`: buildah's image of the corpus case
    /// `Dockerfile_onbuild_base`, adopted when that case has been built.
    OnbuildBase,
}

/// An external reference mapped to a local `repo:tag` and its base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    /// `repo:tag`, without the registry host.
    pub repo_tag: String,
    /// What the image holds.
    pub kind: BaseKind,
}

/// Maps a fully expanded external reference; `Err` names the image we cannot make.
pub fn localize(reference: &str) -> Result<LocalImage, String> {
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    let mut parts: Vec<&str> = name.split('/').collect();
    if parts.len() > 1 && is_host(parts[0]) {
        parts.remove(0);
    }
    if parts.len() > 1 && parts[0] == "library" {
        parts.remove(0);
    }
    let path = parts.join("/");
    let (repo, tag) = match path.rsplit_once(':') {
        Some((repo, tag)) => (repo.to_string(), tag.to_string()),
        None => match digest {
            Some(d) => {
                let hex = d.trim_start_matches("sha256:");
                (
                    path.clone(),
                    format!("sha256-{}", &hex[..hex.len().min(12)]),
                )
            }
            None => (path.clone(), "latest".to_string()),
        },
    };
    let kind = base_for(&repo).ok_or_else(|| format!("image {reference} has no local stand-in"))?;
    Ok(LocalImage {
        repo_tag: format!("{repo}:{tag}"),
        kind,
    })
}

/// The stand-in for a repository (registry host and `library/` removed).
pub fn base_for(repo: &str) -> Option<BaseKind> {
    match repo {
        "debian" | "ubuntu" | "fedora" | "ubi7/ubi" | "ubi8/ubi" | "distroless/base" => {
            Some(BaseKind::Debian)
        }
        "alpine" | "busybox" | "google/cloud-sdk" => Some(BaseKind::Busybox),
        "kaniko-test/onbuild-base" => Some(BaseKind::OnbuildBase),
        _ => None,
    }
}

/// Whether the first path component of a reference names a registry host.
pub fn is_host(component: &str) -> bool {
    component.contains('.') || component.contains(':') || component == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_corpus_spellings() {
        let check = |reference: &str, repo_tag: &str, kind| {
            assert_eq!(
                localize(reference),
                Ok(LocalImage {
                    repo_tag: repo_tag.to_string(),
                    kind
                }),
                "{reference}"
            );
        };
        check("debian:10.13", "debian:10.13", BaseKind::Debian);
        check(
            "docker.io/debian:bullseye-slim",
            "debian:bullseye-slim",
            BaseKind::Debian,
        );
        check("library/debian:latest", "debian:latest", BaseKind::Debian);
        check("ubuntu", "ubuntu:latest", BaseKind::Debian);
        check(
            "registry.access.redhat.com/ubi8/ubi:8.2",
            "ubi8/ubi:8.2",
            BaseKind::Debian,
        );
        check(
            "alpine@sha256:5ce5f501c457015c4b91f91a",
            "alpine:sha256-5ce5f501c457",
            BaseKind::Busybox,
        );
        check(
            "docker.io/library/busybox:latest@sha256:afe605d2",
            "busybox:latest",
            BaseKind::Busybox,
        );
        assert!(localize("phusion/baseimage:0.11").is_err());
    }
}
