//! Where the cache lives: kaniko's `--cache-repo` (a repository, or `oci:/path`
//! for a local OCI layout), defaulting to the first destination's repository
//! with `/cache` appended.

use std::path::PathBuf;

use kiln_oci::Reference;
use kiln_registry::RepoRef;

use crate::error::CacheError;

/// The cache's location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRepo {
    /// A repository in a registry; one tag per step key.
    Registry(RepoRef),
    /// A local OCI image layout; one `org.opencontainers.image.ref.name` per key.
    Layout(PathBuf),
}

impl CacheRepo {
    /// Reads `--cache-repo`, or derives it from the first `--destination`.
    pub fn from_flags(
        cache_repo: Option<&str>,
        destinations: &[String],
    ) -> Result<Self, CacheError> {
        match cache_repo {
            Some(value) => Self::parse(value),
            None => {
                let first = destinations.first().ok_or(CacheError::NoRepo)?;
                let r = Reference::parse(first).map_err(|e| CacheError::BadRepo {
                    value: first.clone(),
                    reason: format!("the destination is not a valid reference: {e}"),
                })?;
                Ok(CacheRepo::Registry(RepoRef::new(
                    r.registry(),
                    &format!("{}/cache", r.repository()),
                )))
            }
        }
    }

    /// Parses a `--cache-repo` value: `oci:/dir` or `[registry/]repository`
    /// (a tag or digest is refused: the cache owns the tags).
    pub fn parse(value: &str) -> Result<Self, CacheError> {
        if let Some(dir) = value.strip_prefix("oci:") {
            if dir.is_empty() {
                return Err(CacheError::BadRepo {
                    value: value.into(),
                    reason: "oci: needs a directory, e.g. oci:/cache/layers".into(),
                });
            }
            return Ok(CacheRepo::Layout(PathBuf::from(dir)));
        }
        let r = Reference::parse(value).map_err(|e| CacheError::BadRepo {
            value: value.into(),
            reason: e.to_string(),
        })?;
        if r.digest().is_some()
            || value
                .rsplit('/')
                .next()
                .is_some_and(|last| last.contains(':'))
        {
            return Err(CacheError::BadRepo {
                value: value.into(),
                reason: "name a repository without a tag or digest: kiln tags it by step key"
                    .into(),
            });
        }
        Ok(CacheRepo::Registry(RepoRef::new(
            r.registry(),
            r.repository(),
        )))
    }
}

impl std::fmt::Display for CacheRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheRepo::Registry(repo) => write!(f, "{repo}"),
            CacheRepo::Layout(dir) => write!(f, "oci:{}", dir.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_the_destination_repository_plus_cache() {
        let got = CacheRepo::from_flags(None, &["127.0.0.1:5000/group/app:1.0".into()]).unwrap();
        assert_eq!(
            got,
            CacheRepo::Registry(RepoRef::new("127.0.0.1:5000", "group/app/cache"))
        );
        let hub = CacheRepo::from_flags(None, &["alpine".into()]).unwrap();
        assert_eq!(hub.to_string(), "docker.io/library/alpine/cache");
    }

    #[test]
    fn explicit_values() {
        assert_eq!(
            CacheRepo::parse("oci:/tmp/c").unwrap(),
            CacheRepo::Layout(PathBuf::from("/tmp/c"))
        );
        assert_eq!(
            CacheRepo::parse("localhost:5000/cache").unwrap(),
            CacheRepo::Registry(RepoRef::new("localhost:5000", "cache"))
        );
        let e = CacheRepo::parse("localhost:5000/cache:tag").unwrap_err();
        assert!(e.to_string().contains("without a tag"), "{e}");
        assert!(CacheRepo::parse("oci:").is_err());
        assert!(CacheRepo::parse("Bad Name").is_err());
        assert!(CacheRepo::from_flags(None, &[]).is_err());
    }
}
