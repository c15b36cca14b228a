//! Alpine's apk installed database, `/lib/apk/db/installed`: one stanza per
//! package, separated by blank lines, each line `X:value` with a one-letter
//! key (`P` name, `V` version, `A` architecture, `o` origin: the source
//! package; apk-tools' documented "installed database" fields;
//! `F`/`R`/`Z` file lines and the others are not used here).

use super::packages::{Ecosystem, Package};

/// Parses the database; `path` names it in errors and in [`Package::found_in`].
pub fn parse(path: &str, bytes: &[u8]) -> Result<Vec<Package>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("/{path}: not UTF-8: {e}"))?;
    let mut packages = Vec::new();
    let mut current: Option<(usize, Package)> = None;
    let mut finish = |current: &mut Option<(usize, Package)>| -> Result<(), String> {
        if let Some((line, p)) = current.take() {
            if p.name.is_empty() || p.version.is_empty() {
                return Err(format!(
                    "/{path}:{line}:1: a package without a name (P:) or version (V:)"
                ));
            }
            packages.push(p);
        }
        Ok(())
    };
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l)) {
        if line.is_empty() {
            finish(&mut current)?;
            continue;
        }
        let Some((key, value)) = line.split_once(':').filter(|(k, _)| k.len() == 1) else {
            return Err(format!("/{path}:{number}:1: expected `X:value`"));
        };
        let (_, p) = current.get_or_insert_with(|| {
            (
                number,
                Package {
                    ecosystem: Ecosystem::Apk,
                    name: String::new(),
                    version: String::new(),
                    architecture: String::new(),
                    source: None,
                    source_version: None,
                    found_in: path.to_string(),
                },
            )
        });
        match key {
            "P" => p.name = value.to_string(),
            "V" => p.version = value.to_string(),
            "A" => p.architecture = value.to_string(),
            "o" => p.source = Some(value.to_string()),
            _ => {}
        }
    }
    finish(&mut current)?;
    for p in &mut packages {
        if p.source.as_deref() == Some(p.name.as_str()) {
            p.source = None;
        }
    }
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_with_their_origin() {
        let db = "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\nF:lib\nR:libc.musl-x86_64.so.1\n\nP:libcrypto3\nV:3.1.4-r5\nA:x86_64\nL:Apache-2.0\no:openssl\n";
        let packages = parse("lib/apk/db/installed", db.as_bytes()).unwrap();
        assert_eq!(packages.len(), 2);
        assert_eq!(packages[0].name, "musl");
        assert_eq!(packages[0].source, None);
        assert_eq!(packages[1].source.as_deref(), Some("openssl"));
        let err = parse("lib/apk/db/installed", b"P:a\nV:1\nnonsense\n").unwrap_err();
        assert_eq!(err, "/lib/apk/db/installed:3:1: expected `X:value`");
        let err = parse("lib/apk/db/installed", b"P:a\n").unwrap_err();
        assert!(err.contains(":1:1:"), "{err}");
    }
}
