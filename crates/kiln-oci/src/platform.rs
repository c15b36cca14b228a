//! Platforms (`os/architecture/variant`), their normalisation and matching.
//!
//! The rules follow containerd's `platforms` package, which is what Docker, BuildKit
//! and kaniko use to pick an image out of an index:
//!
//! - names are normalised first: `x86_64`/`x86-64` → `amd64`, `aarch64` → `arm64`,
//!   `i386` → `386`, `armhf` → `arm/v7`, `armel` → `arm/v6`, variant `7` → `v7`, `macos`
//!   → `darwin`;
//! - `arm64` without a variant means `arm64/v8`, `arm` without a variant means `arm/v7`
//!   (so `linux/arm64` and `linux/arm64/v8` are the same platform);
//! - a requested platform also accepts, in order of preference after the exact match,
//!   older variants it can run: `arm/v7` accepts `arm/v6` then `arm/v5`, `amd64/v3`
//!   accepts `v2` then `v1`; `arm64` additionally runs 32-bit `arm` of its variant and
//!   below, after every `arm64` candidate.
//! - `os.version` and `os.features` only take part in matching for Windows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a platform string could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformError {
    /// Empty string or an empty component.
    #[error(
        "invalid platform {input:?}: empty {part} (expected os/arch[/variant], e.g. linux/arm64/v8)"
    )]
    Empty {
        /// The rejected input.
        input: String,
        /// Which part is empty.
        part: &'static str,
    },
    /// More than three components.
    #[error(
        "invalid platform {input:?}: too many '/'-separated parts (expected os/arch[/variant])"
    )]
    TooManyParts {
        /// The rejected input.
        input: String,
    },
    /// A component with characters outside `[A-Za-z0-9_.-]`.
    #[error(
        "invalid platform {input:?}: {part} {value:?} contains characters other than letters, digits, '_', '.', '-'"
    )]
    BadCharacters {
        /// The rejected input.
        input: String,
        /// Which part.
        part: &'static str,
        /// Its value.
        value: String,
    },
}

/// An OCI platform: field names and order as in the image spec.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture (`amd64`, `arm64`, ...).
    pub architecture: String,
    /// Operating system (`linux`, `windows`, ...).
    pub os: String,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
    /// OS features (Windows).
    #[serde(
        rename = "os.features",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_features: Option<Vec<String>>,
    /// CPU variant (`v7`, `v8`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// Deprecated CPU features (Docker manifest lists); kept for round-trips.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
}

fn known_os(name: &str) -> bool {
    matches!(
        name,
        "aix"
            | "android"
            | "darwin"
            | "dragonfly"
            | "freebsd"
            | "hurd"
            | "illumos"
            | "ios"
            | "js"
            | "linux"
            | "nacl"
            | "netbsd"
            | "openbsd"
            | "plan9"
            | "solaris"
            | "wasip1"
            | "windows"
            | "zos"
    )
}

fn normalize_os(os: &str) -> String {
    let os = os.to_ascii_lowercase();
    match os.as_str() {
        "macos" => "darwin".to_owned(),
        _ => os,
    }
}

/// Normalises an architecture and variant; the variant is always explicit for `arm`
/// and `arm64` (`v7`, `v8` by default) and absent for `amd64/v1`.
fn normalize_arch(arch: &str, variant: Option<&str>) -> (String, Option<String>) {
    let arch = arch.to_ascii_lowercase();
    let variant = variant
        .map(str::to_ascii_lowercase)
        .filter(|v| !v.is_empty());
    let with_v = |v: &str| {
        if v.starts_with('v') {
            v.to_owned()
        } else {
            format!("v{v}")
        }
    };
    match arch.as_str() {
        "i386" | "386" => ("386".to_owned(), None),
        "x86_64" | "x86-64" | "amd64" => {
            let variant = variant
                .filter(|v| v != "v1" && v != "1")
                .map(|v| with_v(&v));
            ("amd64".to_owned(), variant)
        }
        "aarch64" | "arm64" => {
            let variant = match variant.as_deref() {
                None | Some("8" | "v8" | "v8.0") => "v8".to_owned(),
                Some("9" | "9.0" | "v9.0") => "v9".to_owned(),
                Some(other) => with_v(other),
            };
            ("arm64".to_owned(), Some(variant))
        }
        "armhf" => ("arm".to_owned(), Some("v7".to_owned())),
        "armel" => ("arm".to_owned(), Some("v6".to_owned())),
        "arm" => {
            let variant = match variant.as_deref() {
                None => "v7".to_owned(),
                Some(other) => with_v(other),
            };
            ("arm".to_owned(), Some(variant))
        }
        _ => (arch, variant),
    }
}

fn variant_number(variant: Option<&str>) -> Option<u32> {
    variant?.strip_prefix('v')?.parse().ok()
}

impl Platform {
    /// A platform with just os and architecture.
    pub fn new(os: &str, architecture: &str) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            ..Platform::default()
        }
    }

    /// The same platform with a variant.
    pub fn with_variant(mut self, variant: &str) -> Platform {
        self.variant = Some(variant.to_owned());
        self
    }

    /// The platform this process runs on (linux plus the normalised CPU architecture).
    pub fn host() -> Platform {
        let os = match std::env::consts::OS {
            "macos" => "darwin",
            other => other,
        };
        Platform::new(os, std::env::consts::ARCH).normalized()
    }

    /// The normalised form: canonical os, architecture and variant names, with the
    /// default variant made explicit for `arm` and `arm64`.
    pub fn normalized(&self) -> Platform {
        let (architecture, variant) = normalize_arch(&self.architecture, self.variant.as_deref());
        Platform {
            architecture,
            os: normalize_os(&self.os),
            os_version: self.os_version.clone().filter(|v| !v.is_empty()),
            os_features: self.os_features.clone().filter(|f| !f.is_empty()),
            variant,
            features: None,
        }
    }

    /// Whether `candidate` is exactly this platform after normalisation.
    pub fn matches(&self, candidate: &Platform) -> bool {
        self.compatibility_rank(candidate) == Some(0)
    }

    /// How well `candidate` serves a request for `self`: `Some(0)` is an exact match,
    /// larger numbers are acceptable but less preferred, `None` means it cannot run.
    pub fn compatibility_rank(&self, candidate: &Platform) -> Option<usize> {
        let wanted = self.normalized();
        let candidate = candidate.normalized();
        if wanted.os != candidate.os {
            return None;
        }
        if wanted.os == "windows" {
            let version_prefix = |v: &Option<String>| {
                v.as_deref()
                    .map(|v| v.split('.').take(3).collect::<Vec<_>>().join("."))
            };
            if wanted.os_version.is_some()
                && version_prefix(&wanted.os_version) != version_prefix(&candidate.os_version)
            {
                return None;
            }
        }
        self.vector().iter().position(|(arch, variant)| {
            *arch == candidate.architecture && *variant == candidate.variant
        })
    }

    /// Architectures/variants this (requested) platform accepts, best first.
    fn vector(&self) -> Vec<(String, Option<String>)> {
        let wanted = self.normalized();
        let mut vector = vec![(wanted.architecture.clone(), wanted.variant.clone())];
        let number = variant_number(wanted.variant.as_deref());
        match wanted.architecture.as_str() {
            "amd64" => {
                let top = number.unwrap_or(1);
                for v in (1..top).rev() {
                    vector.push(("amd64".to_owned(), (v > 1).then(|| format!("v{v}"))));
                }
            }
            "arm" => {
                if let Some(top) = number {
                    for v in (5..top).rev() {
                        vector.push(("arm".to_owned(), Some(format!("v{v}"))));
                    }
                }
            }
            "arm64" => {
                let arm_top = number.unwrap_or(8).min(8);
                for v in (5..=arm_top).rev() {
                    vector.push(("arm".to_owned(), Some(format!("v{v}"))));
                }
            }
            _ => {}
        }
        vector
    }

    /// Index of the best candidate for this platform, if any can run.
    pub fn select_best<'a>(
        &self,
        candidates: impl IntoIterator<Item = &'a Platform>,
    ) -> Option<usize> {
        candidates
            .into_iter()
            .enumerate()
            .filter_map(|(index, candidate)| {
                self.compatibility_rank(candidate).map(|rank| (rank, index))
            })
            .min()
            .map(|(_, index)| index)
    }
}

impl fmt::Display for Platform {
    /// `os/architecture[/variant]`, as written (not normalised).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = PlatformError;

    /// Parses `os/arch[/variant]`, or a lone `os` (host architecture) or lone `arch`
    /// (linux), and normalises the result.
    fn from_str(input: &str) -> Result<Platform, PlatformError> {
        if input.is_empty() {
            return Err(PlatformError::Empty {
                input: input.to_owned(),
                part: "platform",
            });
        }
        let parts: Vec<&str> = input.split('/').collect();
        let names = ["os", "architecture", "variant"];
        if parts.len() > names.len() {
            return Err(PlatformError::TooManyParts {
                input: input.to_owned(),
            });
        }
        for (part, value) in names.iter().zip(&parts) {
            if value.is_empty() {
                return Err(PlatformError::Empty {
                    input: input.to_owned(),
                    part,
                });
            }
            if !value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            {
                return Err(PlatformError::BadCharacters {
                    input: input.to_owned(),
                    part,
                    value: (*value).to_owned(),
                });
            }
        }
        let platform = match parts.as_slice() {
            [single] if known_os(&normalize_os(single)) => Platform {
                os: (*single).to_owned(),
                ..Platform::host()
            },
            [single] => Platform::new("linux", single),
            [os, arch] => Platform::new(os, arch),
            [os, arch, variant] => Platform::new(os, arch).with_variant(variant),
            _ => unreachable!("length checked above"),
        };
        Ok(platform.normalized())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Platform {
        text.parse().unwrap()
    }

    #[test]
    fn parse_normalises_like_containerd() {
        let cases = [
            ("linux/amd64", "linux/amd64"),
            ("linux/x86_64", "linux/amd64"),
            ("Linux/X86-64", "linux/amd64"),
            ("linux/amd64/v1", "linux/amd64"),
            ("linux/amd64/v3", "linux/amd64/v3"),
            ("linux/aarch64", "linux/arm64/v8"),
            ("linux/arm64", "linux/arm64/v8"),
            ("linux/arm64/8", "linux/arm64/v8"),
            ("linux/arm64/v9.0", "linux/arm64/v9"),
            ("linux/armhf", "linux/arm/v7"),
            ("linux/armel", "linux/arm/v6"),
            ("linux/arm", "linux/arm/v7"),
            ("linux/arm/6", "linux/arm/v6"),
            ("linux/i386", "linux/386"),
            ("macos/arm64", "darwin/arm64/v8"),
            ("s390x", "linux/s390x"),
            ("linux/ppc64le", "linux/ppc64le"),
        ];
        for (input, expected) in cases {
            assert_eq!(p(input).to_string(), expected, "{input}");
        }
        assert_eq!(p("linux").os, "linux");
        assert_eq!(p("windows").os, "windows");
    }

    #[test]
    fn parse_errors_name_the_part() {
        let cases = [
            ("", "empty platform"),
            ("linux/", "empty architecture"),
            ("linux/arm/", "empty variant"),
            ("linux/arm/v7/x", "too many"),
            ("linux/am d64", "architecture \"am d64\""),
        ];
        for (input, message) in cases {
            let error = input.parse::<Platform>().unwrap_err().to_string();
            assert!(error.contains(message), "{input}: {error}");
        }
    }

    #[test]
    fn default_variants_match_explicit_ones() {
        assert!(p("linux/arm64").matches(&Platform::new("linux", "arm64").with_variant("v8")));
        assert!(p("linux/arm64/v8").matches(&Platform::new("linux", "arm64")));
        assert!(p("linux/arm").matches(&Platform::new("linux", "arm").with_variant("v7")));
        assert!(p("linux/amd64").matches(&Platform::new("linux", "x86_64")));
        assert!(!p("linux/amd64").matches(&Platform::new("linux", "arm64")));
        assert!(!p("linux/amd64").matches(&Platform::new("windows", "amd64")));
        assert!(!p("linux/arm/v7").matches(&Platform::new("linux", "arm").with_variant("v6")));
    }

    #[test]
    fn compatible_older_variants_rank_after_exact_matches() {
        let candidates = [
            Platform::new("linux", "arm").with_variant("v5"),
            Platform::new("linux", "arm").with_variant("v6"),
            Platform::new("linux", "amd64"),
        ];
        assert_eq!(p("linux/arm/v7").select_best(&candidates), Some(1));
        assert_eq!(p("linux/arm/v6").select_best(&candidates), Some(1));
        assert_eq!(p("linux/arm/v5").select_best(&candidates[1..]), None);
        // arm64 falls back to 32-bit arm, preferring the highest variant.
        assert_eq!(p("linux/arm64").select_best(&candidates), Some(1));
        let with_arm64 = [
            Platform::new("linux", "arm").with_variant("v7"),
            Platform::new("linux", "arm64"),
        ];
        assert_eq!(p("linux/arm64/v8").select_best(&with_arm64), Some(1));
        assert_eq!(
            p("linux/amd64/v3").select_best(&[Platform::new("linux", "amd64")]),
            Some(0)
        );
        assert_eq!(p("linux/amd64").select_best(&[p("linux/amd64/v2")]), None);
    }

    #[test]
    fn windows_matches_on_os_version_prefix() {
        let mut wanted = Platform::new("windows", "amd64");
        wanted.os_version = Some("10.0.17763.1".to_owned());
        let mut candidate = wanted.clone();
        candidate.os_version = Some("10.0.17763.5329".to_owned());
        assert!(wanted.matches(&candidate));
        candidate.os_version = Some("10.0.20348.1".to_owned());
        assert!(!wanted.matches(&candidate));
    }

    #[test]
    fn serde_uses_spec_field_names() {
        let mut platform = Platform::new("windows", "amd64");
        platform.os_version = Some("10.0.17763.1".to_owned());
        platform.os_features = Some(vec!["win32k".to_owned()]);
        let json = serde_json::to_string(&platform).unwrap();
        assert_eq!(
            json,
            r#"{"architecture":"amd64","os":"windows","os.version":"10.0.17763.1","os.features":["win32k"]}"#
        );
        assert_eq!(serde_json::from_str::<Platform>(&json).unwrap(), platform);
    }
}
