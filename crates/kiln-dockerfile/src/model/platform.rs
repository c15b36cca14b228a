//! Target/build platforms (`os/arch[/variant]`) for the predefined ARGs.

use std::fmt;

/// An OS/architecture pair, normalised the way containerd does
/// (`aarch64` -> `arm64`, `arm64/v8` -> `arm64`, `arm` -> `arm/v7`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let mut arch = architecture.to_ascii_lowercase();
        let mut variant = variant
            .map(str::to_ascii_lowercase)
            .filter(|v| !v.is_empty());
        match arch.as_str() {
            "x86_64" | "x86-64" => arch = "amd64".into(),
            "aarch64" => arch = "arm64".into(),
            "i386" => arch = "386".into(),
            "armhf" => {
                arch = "arm".into();
                variant = Some("v7".into());
            }
            "armel" => {
                arch = "arm".into();
                variant = Some("v6".into());
            }
            _ => {}
        }
        if arch == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        if arch == "arm" && variant.is_none() {
            variant = Some("v7".into());
        }
        Platform {
            os,
            architecture: arch,
            variant,
        }
    }

    /// Parses `os/arch[/variant]`.
    pub fn parse(s: &str) -> Result<Platform, String> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() => {
                Ok(Platform::new(os, arch, Some(variant)))
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch[/variant]"
            )),
        }
    }

    /// The platform this library was compiled for (Linux + its CPU).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }
}

impl Default for Platform {
    fn default() -> Self {
        Platform::host()
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_normalise() {
        assert_eq!(
            Platform::parse("linux/arm64/v8").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/arm").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert!(Platform::parse("linux").is_err());
    }
}
