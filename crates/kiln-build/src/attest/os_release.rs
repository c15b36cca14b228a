//! `os-release(5)`: the distribution's `ID` and `VERSION_ID`, for PURLs and
//! the SBOM's description of the image.

use std::collections::BTreeMap;

/// The fields of an os-release file (shell-style `KEY=value` lines).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    fields: BTreeMap<String, String>,
}

impl OsRelease {
    /// Parses `KEY=value`, `KEY="value"` and `KEY='value'` lines; anything
    /// else (comments, blank lines, malformed lines) is skipped, as
    /// os-release(5) asks of readers.
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            let line = line.trim();
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            if key.is_empty() || line.starts_with('#') {
                continue;
            }
            let value = value.trim();
            let value = match value.as_bytes() {
                [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => {
                    value[1..value.len() - 1].replace("\\\"", "\"")
                }
                _ => value.to_string(),
            };
            fields.insert(key.to_string(), value);
        }
        OsRelease { fields }
    }

    /// A field's value.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// `ID` (`debian`, `alpine`, ...).
    pub fn id(&self) -> Option<&str> {
        self.get("ID")
    }

    /// `ID-VERSION_ID` (`debian-12`, `alpine-3.19.1`): the PURL `distro` qualifier.
    pub fn distro(&self) -> Option<String> {
        Some(format!("{}-{}", self.id()?, self.get("VERSION_ID")?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_and_bare_values() {
        let os = OsRelease::parse(
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\n# c\nVERSION_ID='12'\nID=debian\nbad line\n",
        );
        assert_eq!(os.id(), Some("debian"));
        assert_eq!(os.distro().as_deref(), Some("debian-12"));
        assert_eq!(
            os.get("PRETTY_NAME"),
            Some("Debian GNU/Linux 12 (bookworm)")
        );
        assert_eq!(OsRelease::parse("").distro(), None);
    }
}
