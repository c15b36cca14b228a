//! `--ci-labels`: the OCI annotation keys `org.opencontainers.image.{source,revision,
//! created,version,url}` filled from GitLab CI's predefined variables, written as config
//! labels and (OCI manifests only) manifest annotations.
//!
//! Priority, lowest first: these values, the Dockerfile's `LABEL`, `--label`. The
//! manifest annotations mirror the final labels for these keys, and `--annotation`
//! wins over them. `created` is the image's own creation time, except with
//! `--reproducible` and no `SOURCE_DATE_EPOCH`, where it is `CI_COMMIT_TIMESTAMP`
//! (left out when unset): never the time of the build.

use std::collections::BTreeMap;

/// `org.opencontainers.image.source`: `CI_PROJECT_URL`.
pub const SOURCE: &str = "org.opencontainers.image.source";
/// `org.opencontainers.image.revision`: `CI_COMMIT_SHA`.
pub const REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.created`: see the module docs.
pub const CREATED: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.version`: `CI_COMMIT_TAG`, else `CI_COMMIT_SHORT_SHA`.
pub const VERSION: &str = "org.opencontainers.image.version";
/// `org.opencontainers.image.url`: `CI_JOB_URL`.
pub const URL: &str = "org.opencontainers.image.url";

/// Every key `--ci-labels` may set.
pub const KEYS: [&str; 5] = [SOURCE, REVISION, CREATED, VERSION, URL];

/// What the CI environment says about the build, read once by the caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CiLabels {
    /// Labels other than `created`, from the variables that were set and non-empty.
    pub fixed: BTreeMap<String, String>,
    /// `CI_COMMIT_TIMESTAMP`, the `created` of a reproducible build without
    /// `SOURCE_DATE_EPOCH`.
    pub commit_timestamp: Option<String>,
}

impl CiLabels {
    /// Reads GitLab's variables through `env`.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> CiLabels {
        let get = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut fixed = BTreeMap::new();
        let mut put = |key: &str, value: Option<String>| {
            if let Some(value) = value {
                fixed.insert(key.to_owned(), value);
            }
        };
        put(SOURCE, get("CI_PROJECT_URL"));
        put(REVISION, get("CI_COMMIT_SHA"));
        put(
            VERSION,
            get("CI_COMMIT_TAG").or_else(|| get("CI_COMMIT_SHORT_SHA")),
        );
        put(URL, get("CI_JOB_URL"));
        CiLabels {
            fixed,
            commit_timestamp: get("CI_COMMIT_TIMESTAMP"),
        }
    }

    /// The labels for an image created at `created` (RFC 3339). `created_is_fake` is
    /// true for `--reproducible` without `SOURCE_DATE_EPOCH`, whose `created` is the
    /// epoch, not a real time: the commit's timestamp stands in.
    pub fn for_image(&self, created: &str, created_is_fake: bool) -> BTreeMap<String, String> {
        let mut labels = self.fixed.clone();
        let created = if created_is_fake {
            self.commit_timestamp.clone()
        } else {
            Some(created.to_owned())
        };
        if let Some(created) = created {
            labels.insert(CREATED.to_owned(), created);
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gitlab(name: &str) -> Option<String> {
        let value = match name {
            "CI_PROJECT_URL" => "https://gitlab.example.com/group/app",
            "CI_COMMIT_SHA" => "0123456789abcdef0123456789abcdef01234567",
            "CI_COMMIT_SHORT_SHA" => "01234567",
            "CI_COMMIT_TAG" => "",
            "CI_COMMIT_TIMESTAMP" => "2026-12-01T10:00:00+00:00",
            "CI_JOB_URL" => "https://gitlab.example.com/group/app/-/jobs/42",
            _ => return None,
        };
        Some(value.to_owned())
    }

    #[test]
    fn values_come_from_the_variables_and_an_empty_tag_falls_back_to_the_short_sha() {
        let ci = CiLabels::from_env(&gitlab);
        let labels = ci.for_image("2026-12-06T22:00:00Z", false);
        assert_eq!(labels[SOURCE], "https://gitlab.example.com/group/app");
        assert_eq!(labels[REVISION], "0123456789abcdef0123456789abcdef01234567");
        assert_eq!(labels[VERSION], "01234567");
        assert_eq!(
            labels[URL],
            "https://gitlab.example.com/group/app/-/jobs/42"
        );
        assert_eq!(labels[CREATED], "2026-12-06T22:00:00Z");
        let tagged = |name: &str| match name {
            "CI_COMMIT_TAG" => Some("v1.2.3".to_owned()),
            other => gitlab(other),
        };
        assert_eq!(
            CiLabels::from_env(&tagged).for_image("x", false)[VERSION],
            "v1.2.3"
        );
    }

    #[test]
    fn reproducible_created_is_the_commit_time_or_absent() {
        let ci = CiLabels::from_env(&gitlab);
        assert_eq!(
            ci.for_image("1970-01-01T00:00:00Z", true)[CREATED],
            "2026-12-01T10:00:00+00:00"
        );
        let none = CiLabels::from_env(&|_: &str| None);
        assert!(none.for_image("1970-01-01T00:00:00Z", true).is_empty());
        assert_eq!(none.for_image("t", false).len(), 1);
    }
}
