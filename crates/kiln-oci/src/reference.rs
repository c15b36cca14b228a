//! Image references, parsed and normalised the way the Docker CLI does
//! (`distribution/reference`'s `ParseNormalizedNamed` followed by `TagNameOnly`).
//!
//! - `busybox` → `docker.io/library/busybox:latest`; `index.docker.io` is `docker.io`;
//! - the first path component is a registry host only if it contains `.` or `:`, is
//!   `localhost`, or contains uppercase letters; otherwise the reference is on Docker
//!   Hub (`user/app` → `docker.io/user/app`);
//! - repository path components are lowercase `[a-z0-9]` runs joined by `.`, `_`, `__`
//!   or runs of `-`; the whole name is at most 255 characters;
//! - tags match `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`; digests must be valid
//!   (`sha256:` + 64 hex);
//! - `latest` is added only when there is neither a tag nor a digest, so
//!   `repo@sha256:…` has no tag and `repo:tag@sha256:…` keeps both;
//! - a bare 64-hex string is rejected (it would be an image ID, not a name).

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// Docker Hub's name in references.
pub const DOCKER_HUB: &str = "docker.io";
/// The host serving Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;
const TAG_MAX: usize = 128;

/// Why a string is not a valid image reference. Each variant names the offending part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// The empty string.
    #[error("invalid reference format: the image reference is empty")]
    Empty,
    /// 64 hex characters alone: an image ID, not a name.
    #[error("invalid repository name ({input}), cannot specify 64-byte hexadecimal strings")]
    HexIdentifier {
        /// The rejected input.
        input: String,
    },
    /// Uppercase letters in the repository path.
    #[error("invalid reference format {input:?}: repository name {repository:?} must be lowercase")]
    Uppercase {
        /// The rejected input.
        input: String,
        /// The repository path.
        repository: String,
    },
    /// The registry host (or port) is malformed.
    #[error("invalid reference format {input:?}: registry {registry:?} is not a valid host[:port]")]
    InvalidRegistry {
        /// The rejected input.
        input: String,
        /// The registry part.
        registry: String,
    },
    /// A path component is empty or malformed.
    #[error(
        "invalid reference format {input:?}: repository path component {component:?} is invalid (allowed: lowercase letters and digits, separated by '.', '_', '__' or '-')"
    )]
    InvalidPathComponent {
        /// The rejected input.
        input: String,
        /// The offending component.
        component: String,
    },
    /// Malformed tag.
    #[error(
        "invalid reference format {input:?}: tag {tag:?} is invalid (allowed: [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
    )]
    InvalidTag {
        /// The rejected input.
        input: String,
        /// The tag part.
        tag: String,
    },
    /// Malformed digest.
    #[error("invalid reference format {input:?}: digest {digest:?} is invalid: {source}")]
    InvalidDigest {
        /// The rejected input.
        input: String,
        /// The digest part.
        digest: String,
        /// Why.
        #[source]
        source: DigestError,
    },
    /// The full name is longer than 255 characters.
    #[error(
        "invalid reference format {input:?}: repository name is {length} characters long, the maximum is {NAME_MAX}"
    )]
    NameTooLong {
        /// The rejected input.
        input: String,
        /// Length of `registry/repository`.
        length: usize,
    },
}

/// A normalised image reference: registry, repository, and a tag and/or digest.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

/// The host to contact for a registry's API: Docker Hub's `docker.io` is served by
/// `registry-1.docker.io`; every other registry is its own host.
pub fn registry_api_host(registry: &str) -> &str {
    if registry == DOCKER_HUB || registry == LEGACY_DOCKER_HUB {
        DOCKER_HUB_API_HOST
    } else {
        registry
    }
}

fn is_lower_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let mut i = 0;
    let mut expect_alnum = true;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && is_lower_alnum(bytes[i] as char) {
            i += 1;
        }
        if i == start {
            return false;
        }
        expect_alnum = false;
        if i == bytes.len() {
            break;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if i < bytes.len() && bytes[i] == b'_' {
                    i += 1;
                }
            }
            b'-' => {
                while i < bytes.len() && bytes[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
        expect_alnum = true;
    }
    !expect_alnum
}

/// `[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]`
fn valid_domain_component(component: &str) -> bool {
    !component.is_empty()
        && component
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !component.starts_with('-')
        && !component.ends_with('-')
}

/// `(domain-component(\.domain-component)*|\[[0-9a-fA-F:]+\])(:[0-9]+)?`
fn valid_registry(registry: &str) -> bool {
    let (host, port) = if let Some(rest) = registry.strip_prefix('[') {
        let Some((address, after)) = rest.split_once(']') else {
            return false;
        };
        if address.is_empty() || !address.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("[ipv6]", Some(port)),
                None => return false,
            },
        }
    } else {
        match registry.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (registry, None),
        }
    };
    if let Some(port) = port
        && (port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()))
    {
        return false;
    }
    host == "[ipv6]" || host.split('.').all(valid_domain_component)
}

/// `[\w][\w.-]{0,127}`
fn valid_tag(tag: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if word(c))
        && tag.len() <= TAG_MAX
        && chars.all(|c| word(c) || c == '.' || c == '-')
}

/// Docker's rule for whether the first component names a registry.
fn split_registry(name: &str) -> (String, String) {
    let (registry, remainder) = match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.to_lowercase() != first =>
        {
            (first.to_owned(), rest.to_owned())
        }
        _ => (DOCKER_HUB.to_owned(), name.to_owned()),
    };
    let registry = if registry == LEGACY_DOCKER_HUB {
        DOCKER_HUB.to_owned()
    } else {
        registry
    };
    let remainder = if registry == DOCKER_HUB && !remainder.contains('/') {
        format!("{OFFICIAL_PREFIX}{remainder}")
    } else {
        remainder
    };
    (registry, remainder)
}

impl Reference {
    /// Parses and normalises a reference; `latest` is added when there is neither a
    /// tag nor a digest.
    pub fn parse(input: &str) -> Result<Reference, ReferenceError> {
        let mut reference = Reference::parse_named(input)?;
        if reference.tag.is_none() && reference.digest.is_none() {
            reference.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(reference)
    }

    /// Parses and normalises a reference without adding a default tag.
    pub fn parse_named(input: &str) -> Result<Reference, ReferenceError> {
        if input.is_empty() {
            return Err(ReferenceError::Empty);
        }
        if input.len() == 64 && input.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
            return Err(ReferenceError::HexIdentifier {
                input: input.to_owned(),
            });
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((name_and_tag, digest)) => {
                let parsed =
                    digest
                        .parse::<Digest>()
                        .map_err(|source| ReferenceError::InvalidDigest {
                            input: input.to_owned(),
                            digest: digest.to_owned(),
                            source,
                        })?;
                (name_and_tag, Some(parsed))
            }
            None => (input, None),
        };
        let last_slash = name_and_tag.rfind('/');
        let (name, tag) = match name_and_tag.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&name_and_tag[..colon], Some(&name_and_tag[colon + 1..]))
            }
            _ => (name_and_tag, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(ReferenceError::InvalidTag {
                input: input.to_owned(),
                tag: tag.to_owned(),
            });
        }
        let (registry, repository) = split_registry(name);
        if repository.to_lowercase() != repository {
            return Err(ReferenceError::Uppercase {
                input: input.to_owned(),
                repository,
            });
        }
        if !valid_registry(&registry) {
            return Err(ReferenceError::InvalidRegistry {
                input: input.to_owned(),
                registry,
            });
        }
        if let Some(component) = repository
            .split('/')
            .find(|component| !valid_path_component(component))
        {
            return Err(ReferenceError::InvalidPathComponent {
                input: input.to_owned(),
                component: component.to_owned(),
            });
        }
        let length = registry.len() + 1 + repository.len();
        if length > NAME_MAX {
            return Err(ReferenceError::NameTooLong {
                input: input.to_owned(),
                length,
            });
        }
        Ok(Reference {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry as written in references (`docker.io`, `localhost:5000`, ...).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host to contact for this reference's registry API (see [`registry_api_host`]).
    pub fn api_host(&self) -> &str {
        registry_api_host(&self.registry)
    }

    /// The repository path (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to ask the registry for: the digest when there is one, else the tag
    /// (`latest` if neither).
    pub fn tag_or_digest(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// `registry/repository`, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short name Docker shows: `busybox`, `user/app`, `quay.io/x/y`.
    ///
    /// Unlike Docker, a Hub repository whose first component would read as a registry
    /// (`docker.io/a.b/c`) keeps its `docker.io/` prefix, so the short form always
    /// parses back to the same reference.
    pub fn familiar_name(&self) -> String {
        if self.registry != DOCKER_HUB {
            return self.name();
        }
        let short = match self.repository.strip_prefix(OFFICIAL_PREFIX) {
            Some(rest) if !rest.contains('/') => rest,
            _ => &self.repository,
        };
        if split_registry(short).0 == DOCKER_HUB {
            short.to_owned()
        } else {
            self.name()
        }
    }

    /// The short form Docker shows: `busybox:latest`, `user/app@sha256:…`.
    pub fn familiar(&self) -> String {
        let mut text = self.familiar_name();
        self.push_suffix(&mut text);
        text
    }

    /// The same repository with another tag (digest dropped).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, ReferenceError> {
        if !valid_tag(tag) {
            return Err(ReferenceError::InvalidTag {
                input: format!("{}:{tag}", self.name()),
                tag: tag.to_owned(),
            });
        }
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository and tag pinned to a digest.
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    fn push_suffix(&self, text: &mut String) {
        if let Some(tag) = &self.tag {
            text.push(':');
            text.push_str(tag);
        }
        if let Some(digest) = &self.digest {
            text.push('@');
            text.push_str(&digest.to_string());
        }
    }
}

impl fmt::Display for Reference {
    /// The full form: `docker.io/library/busybox:latest`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = self.name();
        self.push_suffix(&mut text);
        f.write_str(&text)
    }
}

impl serde::Serialize for Reference {
    /// As the full form string.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Reference {
    /// From any form [`Reference::parse`] accepts (normalised on the way in).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reference, D::Error> {
        let text = String::deserialize(deserializer)?;
        Reference::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Reference, ReferenceError> {
        Reference::parse(input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn full(input: &str) -> String {
        Reference::parse(input)
            .unwrap_or_else(|e| panic!("{input}: {e}"))
            .to_string()
    }

    #[test]
    fn normalises_like_docker() {
        let cases = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("index.docker.io/user/app:v1", "docker.io/user/app:v1"),
            ("user/app", "docker.io/user/app:latest"),
            ("user/team/app", "docker.io/user/team/app:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x/y:tag", "localhost:5000/x/y:tag"),
            ("127.0.0.1:5000/repo", "127.0.0.1:5000/repo:latest"),
            (
                "registry.example.com/a/b",
                "registry.example.com/a/b:latest",
            ),
            ("[::1]:5000/repo:t", "[::1]:5000/repo:t"),
            (
                "Registry.Example.com/repo",
                "Registry.Example.com/repo:latest",
            ),
            ("Foo/bar", "Foo/bar:latest"),
            ("localhost:5000", "docker.io/library/localhost:5000"),
            ("ab-c__d---e_f/g.h", "docker.io/ab-c__d---e_f/g.h:latest"),
            ("repo:Tag_1.0-rc", "docker.io/library/repo:Tag_1.0-rc"),
        ];
        for (input, expected) in cases {
            assert_eq!(full(input), expected, "{input}");
        }
    }

    #[test]
    fn digests_with_and_without_tags() {
        let by_digest = Reference::parse(&format!("busybox@sha256:{HEX}")).unwrap();
        assert_eq!(by_digest.tag(), None);
        assert_eq!(by_digest.digest().unwrap().hex(), HEX);
        assert_eq!(
            by_digest.to_string(),
            format!("docker.io/library/busybox@sha256:{HEX}")
        );
        assert_eq!(by_digest.tag_or_digest(), format!("sha256:{HEX}"));

        let both = Reference::parse(&format!("host:5000/repo:v1@sha256:{HEX}")).unwrap();
        assert_eq!(both.registry(), "host:5000");
        assert_eq!(both.repository(), "repo");
        assert_eq!(both.tag(), Some("v1"));
        assert_eq!(both.to_string(), format!("host:5000/repo:v1@sha256:{HEX}"));
    }

    #[test]
    fn familiar_and_api_host_forms() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.familiar(), "busybox:latest");
        assert_eq!(r.familiar_name(), "busybox");
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.name(), "docker.io/library/busybox");
        assert_eq!(
            Reference::parse("user/app:v2").unwrap().familiar(),
            "user/app:v2"
        );
        assert_eq!(
            Reference::parse("docker.io/library/a/b")
                .unwrap()
                .familiar_name(),
            "library/a/b"
        );
        assert_eq!(
            Reference::parse("docker.io/a.b/c").unwrap().familiar(),
            "docker.io/a.b/c:latest"
        );
        let local = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(local.familiar(), "localhost:5000/x:latest");
        assert_eq!(local.api_host(), "localhost:5000");
        assert_eq!(registry_api_host("index.docker.io"), "registry-1.docker.io");
        let named = Reference::parse_named("busybox").unwrap();
        assert_eq!(named.tag(), None);
        assert_eq!(named.tag_or_digest(), "latest");
        assert_eq!(
            named.with_tag("v3").unwrap().to_string(),
            "docker.io/library/busybox:v3"
        );
        assert!(named.with_tag("-bad").is_err());
        let pinned = named.with_digest(Digest::sha256_of(b""));
        assert_eq!(pinned.familiar(), format!("busybox@sha256:{HEX}"));
    }

    #[test]
    fn errors_name_the_invalid_part() {
        let long_name = format!("registry.example.com/{}", "a".repeat(240));
        let long_tag = format!("repo:{}", "t".repeat(129));
        let cases = [
            ("", "empty".to_owned()),
            (HEX, "cannot specify 64-byte hexadecimal strings".to_owned()),
            (
                "Busybox",
                "repository name \"library/Busybox\" must be lowercase".to_owned(),
            ),
            (
                "user/App",
                "repository name \"user/App\" must be lowercase".to_owned(),
            ),
            ("repo:-tag", "tag \"-tag\" is invalid".to_owned()),
            (long_tag.as_str(), "tag \"ttt".to_owned()),
            (
                "repo@sha256:abc",
                "digest \"sha256:abc\" is invalid".to_owned(),
            ),
            ("repo@md5:abc", "unsupported algorithm".to_owned()),
            ("host:port/repo", "registry \"host:port\"".to_owned()),
            ("-host.com/repo", "registry \"-host.com\"".to_owned()),
            ("host.com/re..po", "component \"re..po\"".to_owned()),
            ("host.com/repo_", "component \"repo_\"".to_owned()),
            ("a.b_c/repo", "registry \"a.b_c\"".to_owned()),
            ("host.com/a___b", "component \"a___b\"".to_owned()),
            ("host.com//repo", "component \"\"".to_owned()),
            ("user/repo/", "component \"\"".to_owned()),
            ("a b", "component \"a b\"".to_owned()),
            (long_name.as_str(), "maximum is 255".to_owned()),
        ];
        for (input, message) in cases {
            let error = Reference::parse(input).unwrap_err().to_string();
            assert!(error.contains(&message), "{input}: {error}");
        }
    }

    #[test]
    fn serde_uses_the_full_form() {
        let reference: Reference = serde_json::from_str("\"busybox\"").unwrap();
        assert_eq!(
            serde_json::to_string(&reference).unwrap(),
            "\"docker.io/library/busybox:latest\""
        );
        let error = serde_json::from_str::<Reference>("\"Bad\"")
            .unwrap_err()
            .to_string();
        assert!(error.contains("must be lowercase"), "{error}");
    }

    #[test]
    fn display_parses_back_to_the_same_reference() {
        for input in ["busybox", "user/app:v1", "localhost:5000/a/b:c", "[::1]/x"] {
            let reference = Reference::parse(input).unwrap();
            assert_eq!(Reference::parse(&reference.to_string()).unwrap(), reference);
            assert_eq!(Reference::parse(&reference.familiar()).unwrap(), reference);
        }
    }
}
