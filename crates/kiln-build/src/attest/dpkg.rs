//! Debian's dpkg database: `/var/lib/dpkg/status` (every package dpkg knows,
//! with its `Status`) and distroless images' `/var/lib/dpkg/status.d/*`
//! (one file per installed package, no `Status` field). deb-control(5)
//! syntax: stanzas separated by blank lines, `Field: value` lines,
//! continuation lines starting with a space or tab.

use super::packages::{Ecosystem, Package};

/// Parses one database file; `path` names it in errors and in
/// [`Package::found_in`]. With `has_status`, only packages whose files are on
/// disk are kept (`Status` state other than `not-installed` and
/// `config-files`, what `dpkg-query -W` lists minus removed packages' config).
pub fn parse(path: &str, bytes: &[u8], has_status: bool) -> Result<Vec<Package>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("/{path}: not UTF-8: {e}"))?;
    let mut packages = Vec::new();
    let mut stanza: Vec<(&str, String)> = Vec::new();
    let mut stanza_line = 1;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.trim().is_empty() {
            if !stanza.is_empty() {
                packages.extend(package(path, stanza_line, &stanza, has_status)?);
                stanza.clear();
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if stanza.is_empty() {
                return Err(format!(
                    "/{path}:{number}:1: a continuation line without a field"
                ));
            }
            continue; // multi-line values (Description, Conffiles) are not used
        }
        let Some((field, value)) = line.split_once(':') else {
            return Err(format!("/{path}:{number}:1: expected `Field: value`"));
        };
        if stanza.is_empty() {
            stanza_line = number;
        }
        stanza.push((field, value.trim().to_string()));
    }
    if !stanza.is_empty() {
        packages.extend(package(path, stanza_line, &stanza, has_status)?);
    }
    Ok(packages)
}

fn package(
    path: &str,
    line: usize,
    stanza: &[(&str, String)],
    has_status: bool,
) -> Result<Option<Package>, String> {
    let field = |name: &str| {
        stanza
            .iter()
            .find(|(f, _)| f.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let name = field("Package")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("/{path}:{line}:1: a stanza without a Package field"))?;
    if has_status {
        let state = field("Status")
            .and_then(|s| s.split_whitespace().nth(2))
            .unwrap_or("not-installed");
        if matches!(state, "not-installed" | "config-files") {
            return Ok(None);
        }
    }
    let version = field("Version")
        .ok_or_else(|| format!("/{path}:{line}:1: package {name} has no Version"))?
        .to_string();
    let architecture = field("Architecture").unwrap_or("").to_string();
    // `Source: name` or `Source: name (version)`.
    let (source, source_version) = match field("Source").filter(|s| !s.is_empty()) {
        None => (None, None),
        Some(s) => match s.split_once('(') {
            Some((n, v)) => (
                Some(n.trim().to_string()),
                Some(v.trim_end_matches(')').trim().to_string()),
            ),
            None => (Some(s.to_string()), None),
        },
    };
    Ok(Some(Package {
        ecosystem: Ecosystem::Deb,
        name: name.to_string(),
        version,
        architecture,
        source: source.filter(|s| s != name),
        source_version,
        found_in: path.to_string(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "\
Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library
 multi-line
 .

Package: gone
Status: deinstall ok config-files
Version: 1.0

Package: libgcc-s1
Status: install ok installed
Architecture: amd64
Source: gcc-12 (12.2.0-14)
Version: 1:12.2.0-14
";

    #[test]
    fn installed_packages_with_their_sources() {
        let packages = parse("var/lib/dpkg/status", STATUS.as_bytes(), true).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "libc6");
        assert_eq!(packages[0].source.as_deref(), Some("glibc"));
        assert_eq!(packages[0].source_version, None);
        assert_eq!(packages[1].version, "1:12.2.0-14");
        assert_eq!(packages[1].source.as_deref(), Some("gcc-12"));
        assert_eq!(packages[1].source_version.as_deref(), Some("12.2.0-14"));
    }

    #[test]
    fn status_d_files_have_no_status_and_errors_name_the_line() {
        let one = "Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n";
        let packages = parse("var/lib/dpkg/status.d/tzdata", one.as_bytes(), false).unwrap();
        assert_eq!(packages.len(), 1);
        let err = parse(
            "var/lib/dpkg/status",
            b"Package: a\nVersion: 1\n\nno colon\n",
            true,
        )
        .unwrap_err();
        assert_eq!(err, "/var/lib/dpkg/status:4:1: expected `Field: value`");
        let err = parse("var/lib/dpkg/status", b"Version: 1\n", true).unwrap_err();
        assert!(err.starts_with("/var/lib/dpkg/status:1:1:"), "{err}");
    }
}
