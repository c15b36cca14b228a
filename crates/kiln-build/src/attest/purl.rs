//! Package URLs (purl-spec): `pkg:TYPE/NAMESPACE/NAME@VERSION?QUALIFIERS`,
//! each component percent-encoded, qualifiers sorted by key.

use super::os_release::OsRelease;
use super::packages::{Ecosystem, Package};

/// The PURL of an OS package: `pkg:deb/debian/NAME@VERSION?arch=ARCH&distro=debian-12`
/// (namespace: the os-release `ID`, else `debian`/`alpine`), with an
/// `upstream` qualifier naming the source package when it differs.
pub fn for_package(package: &Package, os: &OsRelease) -> String {
    let (kind, default_namespace) = match package.ecosystem {
        Ecosystem::Deb => ("deb", "debian"),
        Ecosystem::Apk => ("apk", "alpine"),
    };
    let namespace = os.id().unwrap_or(default_namespace);
    let mut qualifiers: Vec<(&str, String)> = Vec::new();
    if !package.architecture.is_empty() {
        qualifiers.push(("arch", package.architecture.clone()));
    }
    if let Some(distro) = os.distro() {
        qualifiers.push(("distro", distro));
    }
    if let Some(source) = &package.source {
        let upstream = match &package.source_version {
            Some(v) => format!("{source}@{v}"),
            None => source.clone(),
        };
        qualifiers.push(("upstream", upstream));
    }
    build(
        kind,
        Some(namespace),
        &package.name,
        Some(&package.version),
        &qualifiers,
    )
}

/// A PURL from its parts; qualifiers are sorted by key as the spec asks.
pub fn build(
    kind: &str,
    namespace: Option<&str>,
    name: &str,
    version: Option<&str>,
    qualifiers: &[(&str, String)],
) -> String {
    let mut out = format!("pkg:{kind}/");
    if let Some(ns) = namespace {
        for segment in ns.split('/') {
            out.push_str(&encode(segment));
            out.push('/');
        }
    }
    out.push_str(&encode(name));
    if let Some(v) = version {
        out.push('@');
        out.push_str(&encode(v));
    }
    let mut sorted: Vec<&(&str, String)> =
        qualifiers.iter().filter(|(_, v)| !v.is_empty()).collect();
    sorted.sort_by_key(|(k, _)| *k);
    for (i, (k, v)) in sorted.iter().enumerate() {
        out.push(if i == 0 { '?' } else { '&' });
        out.push_str(k);
        out.push('=');
        out.push_str(&encode(v));
    }
    out
}

/// Percent-encodes everything but ASCII letters, digits and `.-_~`.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debian_purl_encodes_epoch_and_plus() {
        let os = OsRelease::parse("ID=debian\nVERSION_ID=\"12\"\n");
        let p = Package {
            ecosystem: Ecosystem::Deb,
            name: "libstdc++6".into(),
            version: "1:12.2.0-14".into(),
            architecture: "amd64".into(),
            source: Some("gcc-12".into()),
            source_version: Some("12.2.0-14".into()),
            found_in: "var/lib/dpkg/status".into(),
        };
        assert_eq!(
            for_package(&p, &os),
            "pkg:deb/debian/libstdc%2B%2B6@1%3A12.2.0-14?arch=amd64&distro=debian-12&upstream=gcc-12%4012.2.0-14"
        );
    }

    #[test]
    fn alpine_purl_without_os_release() {
        let p = Package {
            ecosystem: Ecosystem::Apk,
            name: "musl".into(),
            version: "1.2.4-r2".into(),
            architecture: "x86_64".into(),
            source: None,
            source_version: None,
            found_in: "lib/apk/db/installed".into(),
        };
        assert_eq!(
            for_package(&p, &OsRelease::default()),
            "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"
        );
    }
}
